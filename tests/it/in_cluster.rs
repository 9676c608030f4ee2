//! hoist in the cluster, as its README tells a user to install it: hoistd's own image
//! (deploy/hoistd-image), its chart (deploy/helm/hoistd) in a namespace of the test
//! cluster, builds as pods with no Docker socket anywhere, apps served through the
//! chart's router Service, and a hoistd pod deleted mid-build leaving nothing running
//! unrecorded.

use hoist_tests::{bin_dir, binary, repo_root, show, wait_for, Cluster};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// An in-cluster hoistd, reached through its Services from the host (kube-proxy).
struct InCluster<'a> {
    cluster: &'a Cluster,
    namespace: String,
    api: String,
    router: String,
    token: String,
    work: std::path::PathBuf,
}

impl InCluster<'_> {
    fn kubectl(&self, args: &[&str]) -> Output {
        self.cluster.kubectl(&[&["-n", &self.namespace], args].concat())
    }

    fn kubectl_may_fail(&self, args: &[&str]) -> Output {
        self.cluster.kubectl_may_fail(&[&["-n", &self.namespace], args].concat())
    }

    fn cli(&self, args: &[&str]) -> Output {
        let output = Command::new(binary("hoist"))
            .args(args)
            .env("HOIST_URL", format!("http://{}", self.api))
            .env("HOIST_TOKEN", &self.token)
            .output()
            .unwrap();
        assert!(output.status.success(), "hoist {args:?} failed\n{}\n{}", show(&output), self.hoistd_log());
        output
    }

    fn get_json(&self, path: &str) -> serde_json::Value {
        let response = reqwest::blocking::Client::new()
            .get(format!("http://{}{path}", self.api))
            .bearer_auth(&self.token)
            .send()
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(response.status().is_success(), "GET {path}: {}", response.status());
        response.json().unwrap()
    }

    fn visit(&self, app: &str) -> Option<String> {
        let response = reqwest::blocking::Client::new()
            .get(format!("http://{}/", self.router))
            .header("host", format!("{app}.localhost"))
            .timeout(Duration::from_secs(10))
            .send()
            .ok()?;
        response.status().is_success().then(|| response.text().unwrap_or_default())
    }

    /// A git working copy of `example` (or empty), its remote this hoistd's app `app`.
    fn work_tree(&self, app: &str, example: Option<&str>) -> std::path::PathBuf {
        let dir = self.work.join(app);
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(example) = example {
            let from = repo_root().join("examples").join(example);
            assert!(Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", from.display()))
                .arg(&dir)
                .status()
                .unwrap()
                .success());
        }
        git(&dir, &["init", "-q", "-b", "main"]);
        dir
    }

    fn push(&self, dir: &std::path::Path, app: &str) -> Output {
        let remote = format!("http://hoist:{}@{}/git/{app}.git", self.token, self.api);
        git_may_fail(dir, &["push", &remote, "main"])
    }

    fn build_pods(&self) -> Vec<String> {
        let output =
            self.kubectl(&["get", "pods", "-l", "hoist.dev/build", "-o", "jsonpath={.items[*].metadata.name}"]);
        String::from_utf8_lossy(&output.stdout).split_whitespace().map(str::to_string).collect()
    }

    fn hoistd_log(&self) -> String {
        text(&self.kubectl_may_fail(&["logs", "statefulset/hoist-hoistd", "--tail", "40"]))
    }

    fn wait_ready(&self) {
        let output = self.kubectl_may_fail(&["rollout", "status", "statefulset/hoist-hoistd", "--timeout=120s"]);
        assert!(output.status.success(), "hoistd did not become ready\n{}", show(&output));
        wait_for("hoistd's API through its Service", Duration::from_secs(60), || {
            reqwest::blocking::get(format!("http://{}/api/v1/openapi.json", self.api))
                .ok()?
                .status()
                .is_success()
                .then_some(())
        });
    }
}

fn git(dir: &std::path::Path, args: &[&str]) -> Output {
    let output = git_may_fail(dir, args);
    assert!(output.status.success(), "git {args:?} failed\n{}", show(&output));
    output
}

fn git_may_fail(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new("git")
        .args(["-c", "user.name=hoist-test", "-c", "user.email=test@hoist.invalid"])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap()
}

fn commit(dir: &std::path::Path, message: &str) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
}

/// Build pods seen while watching: name → its spec, as the API server had it.
type Seen = Arc<Mutex<std::collections::BTreeMap<String, serde_json::Value>>>;

/// Watches the namespace's build pods in the background until `stop` is set.
fn watch_build_pods(cluster: &Cluster, namespace: &str, seen: Seen, stop: Arc<std::sync::atomic::AtomicBool>) {
    let mut command = cluster.command("kubectl");
    command.args(["-n", namespace, "get", "pods", "-l", "hoist.dev/build", "-o", "json"]);
    std::thread::spawn(move || {
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            if let Ok(output) = command.output() {
                if let Ok(list) = serde_json::from_slice::<serde_json::Value>(&output.stdout) {
                    for pod in list["items"].as_array().into_iter().flatten() {
                        let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_string();
                        seen.lock().unwrap().insert(name, pod["spec"].clone());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    });
}

/// Docker events between `since` and now that name this test's apps or registry: an
/// in-cluster build must make none (other tests share dockerd, so a bare count would not do).
fn docker_events_naming(since: i64, names: &[&str]) -> Vec<String> {
    let until = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let output = Command::new("/usr/bin/docker")
        .args(["events", "--since", &since.to_string(), "--until", &until.to_string(), "--format", "{{json .}}"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| names.iter().any(|name| line.contains(name)))
        .map(str::to_string)
        .collect()
}

/// Prints how long the test has run, at each step (seen with --nocapture, or on failure).
fn step(started: std::time::Instant, what: &str) {
    eprintln!("[in_cluster {:>6.1} s] {what}", started.elapsed().as_secs_f64());
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[test]
fn hoist_installed_by_its_chart_builds_in_pods_without_docker_and_survives_its_pod_being_deleted() {
    let t0 = std::time::Instant::now();
    let cluster = Cluster::connect();
    let namespace = cluster.namespace.clone();
    let root = repo_root();
    let hoistd = binary("hoistd");

    // hoistd's image, as README says (of the debug build the tests run).
    let image = Command::new("bash")
        .arg(root.join("deploy/hoistd-image"))
        .arg(&cluster.registry)
        .env("HOIST_IMAGE_BIN_DIR", bin_dir())
        .envs(cluster.command("true").get_envs().filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))))
        .output()
        .unwrap();
    assert!(image.status.success(), "deploy/hoistd-image failed\n{}", show(&image));
    let image = String::from_utf8_lossy(&image.stdout).trim().lines().last().unwrap_or_default().to_string();
    let (repository, tag) = image.rsplit_once(':').expect("REGISTRY/hoist/hoistd:TAG");
    step(t0, "hoistd's image made and pushed");
    // The base stack, where build pods find it.
    let stacks =
        Command::new(&hoistd).args(["stacks", "prepare", "base", "--push", &cluster.registry]).output().unwrap();
    assert!(stacks.status.success(), "{}", show(&stacks));

    // The chart is `helm lint` clean, warnings included.
    let lint =
        cluster.command("helm").args(["lint", "--strict"]).arg(root.join("deploy/helm/hoistd")).output().unwrap();
    assert!(lint.status.success(), "helm lint --strict deploy/helm/hoistd failed\n{}", show(&lint));
    // Without registry.address the registry is the one image.repository names; a loopback
    // one is refused, saying what to set (pods cannot reach it).
    let template = |repository: &str| {
        cluster
            .command("helm")
            .args(["template", "hoist"])
            .arg(root.join("deploy/helm/hoistd"))
            .args(["--set", &format!("image.repository={repository}/hoist/hoistd"), "--set", "image.tag=t"])
            .output()
            .unwrap()
    };
    let derived = template(&cluster.pod_registry());
    let expected = format!("HOIST_REGISTRY_ADDR, value: \"{}\"", cluster.pod_registry());
    assert!(derived.status.success() && text(&derived).contains(&expected), "{expected}\n{}", show(&derived));
    let loopback = template("127.0.0.1:5100");
    assert!(!loopback.status.success() && text(&loopback).contains("loopback address"), "{}", show(&loopback));

    let install = cluster
        .command("helm")
        .args(["upgrade", "--install", "hoist"])
        .arg(root.join("deploy/helm/hoistd"))
        .args(["-n", &namespace, "--wait", "--timeout", "180s"])
        .args(["--set", &format!("image.repository={repository}"), "--set", &format!("image.tag={tag}")])
        .args(["--set", &format!("registry.address={}", cluster.pod_registry())])
        .args(["--set", &format!("instance={namespace}"), "--set", "build.keepFailedSecs=3"])
        .args(["--set", "build.memoryMb=1024"])
        .output()
        .unwrap();
    assert!(install.status.success(), "helm install of deploy/helm/hoistd failed\n{}", show(&install));
    step(t0, "chart installed");
    let service_ip = |name: &str| {
        let output = cluster.kubectl(&["-n", &namespace, "get", "svc", name, "-o", "jsonpath={.spec.clusterIP}"]);
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    // As README says: kubectl get secret hoist-admin-token … | base64 -d
    let token = cluster.kubectl(&[
        "-n",
        &namespace,
        "get",
        "secret",
        "hoist-admin-token",
        "-o",
        "go-template={{.data.token | base64decode}}",
    ]);
    let token = String::from_utf8_lossy(&token.stdout).trim().to_string();
    assert!(token.len() >= 32, "the chart's admin token is too short: {token:?}");
    let work = std::env::temp_dir().join(format!("hoist-in-cluster-{namespace}"));
    let _ = std::fs::remove_dir_all(&work);
    let hoist = InCluster {
        cluster: &cluster,
        namespace: namespace.clone(),
        api: format!("{}:7070", service_ip("hoist-api")),
        router: format!("{}:8080", service_ip("hoist-router")),
        token,
        work,
    };
    hoist.wait_ready();
    let apps = ["ic-static", "ic-node", "ic-fail", "ic-slow"];
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| session(&hoist, &hoistd, t0)));
    // The apps' namespaces are the in-cluster hoistd's; the test's own goes with `cluster`.
    let _ = cluster.command("helm").args(["uninstall", "hoist", "-n", &namespace]).output();
    for app in apps {
        let _ = cluster.kubectl_may_fail(&["delete", "namespace", &format!("{namespace}-{app}"), "--wait=false"]);
    }
    let _ = cluster.kubectl_may_fail(&["delete", "pvc", "--all", "-n", &namespace, "--wait=false"]);
    let _ = std::fs::remove_dir_all(&hoist.work);
    if let Err(panic) = result {
        eprintln!("--- hoistd's log ---\n{}", hoist.hoistd_log());
        std::panic::resume_unwind(panic);
    }
}

fn session(hoist: &InCluster<'_>, hoistd: &std::path::Path, t0: std::time::Instant) {
    let info = hoist.cli(&["apps", "create", "ic-static"]);
    assert!(text(&info).contains("target kubernetes"), "{}", text(&info));
    let seen: Seen = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    watch_build_pods(hoist.cluster, &hoist.namespace, seen.clone(), stop.clone());

    // The static example: a copy of the source, so in-cluster hoistd writes its layers
    // itself with no build pod; served through the chart's router Service.
    let started = now();
    let site = hoist.work_tree("ic-static", Some("static-site"));
    commit(&site, "static");
    let push = hoist.push(&site, "ic-static");
    let output = text(&push);
    assert!(push.status.success(), "the in-cluster push failed\n{output}\n{}", hoist.hoistd_log());
    for expected in ["no builder to run", "Exporting:", "release 1 is live"] {
        assert!(output.contains(expected), "missing {expected:?} in\n{output}");
    }
    let page = wait_for("ic-static through the router Service", Duration::from_secs(30), || hoist.visit("ic-static"));
    assert!(page.contains("Hello from hoist"), "{page}");

    step(t0, "static app live");
    // A version that crashes at start: hoistd in its pod sees the crash loop and stops
    // helm (a signal; the image has no `kill` program), so Helm rolls back now, not at
    // its timeout, and release 1 keeps answering.
    std::fs::write(site.join("Procfile"), "web: echo crashing-on-purpose; exit 3\n").unwrap();
    commit(&site, "crash");
    let push = hoist.push(&site, "ic-static");
    let output = text(&push);
    assert!(!push.status.success(), "a crashing version must be rejected\n{output}");
    for expected in ["crashing-on-purpose", "is crash-looping (2 restarts): cancelling helm", "Helm rolled it back"] {
        assert!(output.contains(expected), "missing {expected:?} in\n{output}");
    }
    assert!(!output.contains("context deadline exceeded"), "helm ran to its timeout\n{output}");
    assert!(hoist.visit("ic-static").is_some_and(|p| p.contains("Hello from hoist")), "release 1 stopped serving");
    std::fs::remove_file(site.join("Procfile")).unwrap();
    commit(&site, "no crash");
    step(t0, "crash loop rolled back");
    // A Node app: its stack is not in the registry yet; the push says how to put it
    // there, the user does, and the next push builds (npm install in the pod).
    hoist.cli(&["apps", "create", "ic-node"]);
    let node = hoist.work_tree("ic-node", Some("node-express"));
    commit(&node, "node");
    let mut push = hoist.push(&node, "ic-node");
    let mut output = text(&push);
    if !push.status.success() {
        let command = output
            .lines()
            .find_map(|line| line.split('`').nth(1).filter(|c| c.starts_with("hoistd stacks prepare node")))
            .unwrap_or_else(|| panic!("a missing stack should say how to make it\n{output}"))
            .to_string();
        let args: Vec<&str> = command.split_whitespace().skip(1).collect();
        let args: Vec<String> = args
            .iter()
            .map(|a| if *a == hoist.cluster.pod_registry() { hoist.cluster.registry.clone() } else { a.to_string() })
            .collect();
        let prepared = Command::new(hoistd).args(&args).output().unwrap();
        assert!(prepared.status.success(), "{command}\n{}", show(&prepared));
        push = hoist.push(&node, "ic-node");
        output = text(&push);
    }
    assert!(push.status.success(), "the in-cluster Node push failed\n{output}\n{}", hoist.hoistd_log());
    for expected in ["Building in pod ", "-build-ic-node-", " (node localhost)", "Running assemble of buildpack node"] {
        assert!(output.contains(expected), "missing {expected:?} in\n{output}");
    }
    let page = wait_for("ic-node through the router Service", Duration::from_secs(30), || hoist.visit("ic-node"));
    assert!(!page.is_empty());
    step(t0, "node app live");
    // The host's dockerd took no part.
    let events =
        docker_events_naming(started, &["ic-static", "ic-node", &hoist.cluster.pod_registry(), &hoist.namespace]);
    assert!(events.is_empty(), "dockerd saw the in-cluster builds:\n{}", events.join("\n"));

    // The build pods ran with the build limits, as the hoist user, without Docker.
    let pods = seen.lock().unwrap().clone();
    assert!(!pods.keys().any(|name| name.contains("-build-ic-static-")), "a copy needs no pod: {:?}", pods.keys());
    let node_pod = pods.iter().find(|(name, _)| name.contains("-build-ic-node-")).map(|(_, spec)| spec.clone());
    let node_pod = node_pod.unwrap_or_else(|| panic!("no build pod of ic-node was seen: {:?}", pods.keys()));
    // Assemble and the export waiting for it side by side (the kubelet reports each
    // step's end late), after the one init step that makes the output folders.
    let names = |key: &str| -> Vec<String> {
        node_pod[key].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str().map(String::from)).collect()
    };
    assert_eq!(
        (names("initContainers"), names("containers")),
        (vec!["folders".to_string()], vec!["assemble".to_string(), "export".to_string()]),
        "{node_pod}"
    );
    let containers = node_pod["containers"].as_array().unwrap();
    let assemble = containers.iter().find(|c| c["name"] == "assemble").unwrap();
    assert_eq!(assemble["resources"]["limits"]["memory"], "1Gi", "{assemble}");
    assert!(assemble["resources"]["limits"]["cpu"].is_string(), "{assemble}");
    assert_eq!(node_pod["securityContext"]["runAsNonRoot"], true);
    assert_no_docker_socket_or_privilege(&node_pod);

    step(t0, "checked the build pods");
    // A build whose assemble exits 1: rejected with its output; its pod goes after keepFailedSecs.
    hoist.cli(&["apps", "create", "ic-fail"]);
    let failing = hoist.work_tree("ic-fail", Some("static-site"));
    std::fs::create_dir_all(failing.join(".s2i/bin")).unwrap();
    std::fs::write(failing.join(".s2i/bin/assemble"), "#!/bin/sh\necho assemble-breaks-on-purpose\nexit 1\n").unwrap();
    set_executable(&failing.join(".s2i/bin/assemble"));
    commit(&failing, "fails");
    let push = hoist.push(&failing, "ic-fail");
    let output = text(&push);
    assert!(!push.status.success(), "a failing assemble must reject the push\n{output}");
    assert!(output.contains("assemble-breaks-on-purpose") && output.contains("exit code 1"), "{output}");
    wait_for("the failed build's pod to go after keepFailedSecs", Duration::from_secs(30), || {
        (!hoist.build_pods().iter().any(|p| p.contains("-build-ic-fail-"))).then_some(())
    });
    // One that needs more memory than the pod's limit: killed, and the push says so.
    std::fs::write(
        failing.join(".s2i/bin/assemble"),
        "#!/bin/sh\necho eating-memory\nhead -c 1500M /dev/zero | tail -n 1 > /dev/null\nexit 1\n",
    )
    .unwrap();
    commit(&failing, "too big");
    let push = hoist.push(&failing, "ic-fail");
    let output = text(&push);
    assert!(!push.status.success(), "an out-of-memory build must reject the push\n{output}");
    assert!(output.contains("eating-memory") && output.contains("ran out of memory (limit 1024 MiB"), "{output}");

    step(t0, "failing build rejected, its pod gone");
    // hoistd's pod deleted mid-build: the build is interrupted, its pod removed, and the
    // next push deploys; apps and their releases survive.
    hoist.cli(&["apps", "create", "ic-slow"]);
    let slow = hoist.work_tree("ic-slow", Some("static-site"));
    std::fs::create_dir_all(slow.join(".s2i/bin")).unwrap();
    std::fs::write(slow.join(".s2i/bin/assemble"), "#!/bin/sh\necho slow-build-started\nsleep 120\ncp -r . /app\n")
        .unwrap();
    set_executable(&slow.join(".s2i/bin/assemble"));
    commit(&slow, "slow");
    let pushing = {
        let (dir, remote) = (slow.clone(), format!("http://hoist:{}@{}/git/ic-slow.git", hoist.token, hoist.api));
        std::thread::spawn(move || git_may_fail(&dir, &["push", &remote, "main"]))
    };
    wait_for("ic-slow's build pod running assemble", Duration::from_secs(60), || {
        let output = hoist.kubectl_may_fail(&["logs", "-l", "hoist.dev/app=ic-slow", "-c", "assemble"]);
        String::from_utf8_lossy(&output.stdout).contains("slow-build-started").then_some(())
    });
    step(t0, "deleting hoistd's pod mid-build");
    let uid = |hoist: &InCluster<'_>| {
        let output = hoist.kubectl_may_fail(&["get", "pod", "hoist-hoistd-0", "-o", "jsonpath={.metadata.uid}"]);
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    let before = uid(hoist);
    hoist.kubectl(&["delete", "pod", "-l", "app.kubernetes.io/name=hoistd", "--wait=false"]);
    let push = pushing.join().unwrap();
    assert!(!push.status.success(), "a push cut off by hoistd's restart must not be accepted\n{}", text(&push));
    wait_for("a new hoistd pod", Duration::from_secs(60), || {
        let now = uid(hoist);
        (!now.is_empty() && now != before).then_some(())
    });
    hoist.wait_ready();
    wait_for("no build pod left after hoistd's restart", Duration::from_secs(30), || {
        hoist.build_pods().is_empty().then_some(())
    });
    let builds = hoist.get_json("/api/v1/apps/ic-slow/builds");
    for build in builds.as_array().unwrap() {
        assert_ne!(build["status"], "building", "a build is left building after the restart: {builds}");
    }
    assert!(hoist.visit("ic-static").is_some_and(|p| p.contains("Hello from hoist")), "ic-static stopped serving");
    step(t0, "hoistd back, nothing left building");
    std::fs::remove_dir_all(slow.join(".s2i")).unwrap();
    commit(&slow, "fast again");
    let push = hoist.push(&slow, "ic-slow");
    assert!(push.status.success(), "the push after the restart failed\n{}\n{}", text(&push), hoist.hoistd_log());

    step(t0, "the next push deployed");
    // An OS fix in the cluster: the base stack made again from today's packages (images of
    // its own prefix, so other tests' stacks stay as they are) and pushed where build pods
    // and the exporter find it; `hoist rebase --all` moves the apps on it to the new run
    // image with no build, rolled out by helm; an app on another stack stays.
    let nothing = hoist.cli(&["rebase", "ic-static"]);
    assert!(text(&nothing).contains("already; nothing to do"), "{}", text(&nothing));
    let refresh = Command::new(hoistd)
        .args(["stacks", "prepare", "base", "--refresh", "--push", &hoist.cluster.registry])
        .env("HOIST_STACK_IMAGES", "hoisttest-icrebase")
        .output()
        .unwrap();
    assert!(refresh.status.success(), "{}", show(&refresh));
    let builds = hoist.get_json("/api/v1/apps/ic-static/builds").as_array().map(Vec::len);
    let rebased = hoist.cli(&["rebase", "--all"]);
    let answer = text(&rebased);
    for expected in
        ["ic-static: release ", "is live on the current run image of stack base (bookworm)", "ic-node: release "]
    {
        assert!(answer.contains(expected), "missing {expected:?} in\n{answer}\n{}", hoist.hoistd_log());
    }
    assert!(answer.contains("of stack node") && answer.contains("already; nothing to do"), "{answer}");
    assert_eq!(hoist.get_json("/api/v1/apps/ic-static/builds").as_array().map(Vec::len), builds, "no build ran");
    let releases = hoist.get_json("/api/v1/apps/ic-static/releases");
    let live = releases.as_array().unwrap().iter().find(|r| r["status"] == "live").cloned().unwrap_or_default();
    let cause = live["cause"].as_str().unwrap_or_default();
    assert!(cause.starts_with("rebase (stack base (bookworm), run image sha256:"), "{releases}");
    assert!(hoist.visit("ic-static").is_some_and(|p| p.contains("Hello from hoist")), "ic-static after its rebase");
    step(t0, "rebased onto a refreshed stack");
    // No pod in hoist's namespace mounts the Docker socket or runs privileged.
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let all = hoist.kubectl(&["get", "pods", "-o", "json"]);
    let all: serde_json::Value = serde_json::from_slice(&all.stdout).unwrap();
    for pod in all["items"].as_array().unwrap() {
        assert_no_docker_socket_or_privilege(&pod["spec"]);
    }
    for spec in seen.lock().unwrap().values() {
        assert_no_docker_socket_or_privilege(spec);
    }
}

fn set_executable(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn assert_no_docker_socket_or_privilege(spec: &serde_json::Value) {
    let text = spec.to_string();
    assert!(!text.contains("docker.sock"), "a pod mounts the Docker socket: {text}");
    assert!(!text.contains("hostPath"), "a pod mounts a host path: {text}");
    assert!(spec["hostNetwork"] != true, "a pod uses the host's network: {text}");
    let containers = spec["containers"].as_array().into_iter().chain(spec["initContainers"].as_array()).flatten();
    for container in containers {
        assert!(container["securityContext"]["privileged"] != true, "a privileged container: {container}");
    }
}
