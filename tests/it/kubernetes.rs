//! The kubernetes target against the real test cluster and the real helm: a push becomes
//! a Helm release whose pods must be Ready, a bad version is rolled back with its output
//! shown, config and rollback make new releases, and a killed hoistd leaves nothing stuck.

use crate::releases::ENV_PROCFILE;
use hoist_tests::{show, wait_for, Cluster, Hoistd, WorkTree};
use std::time::Duration;

fn text(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// hoist's releases as (number, status, revision).
fn releases(hoistd: &Hoistd, app: &str) -> Vec<(i64, String, Option<i64>)> {
    let releases = hoistd.get_json(&format!("/api/v1/apps/{app}/releases"));
    releases
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["number"].as_i64().unwrap(), r["status"].as_str().unwrap().to_string(), r["revision"].as_i64()))
        .collect()
}

/// Every hoist release with a revision matches `helm history`: live ↔ deployed,
/// retired ↔ superseded, rolled back ↔ failed.
fn assert_history_agrees(hoistd: &Hoistd, cluster: &Cluster, app: &str) {
    let history = cluster.helm_history(app);
    for (number, status, revision) in releases(hoistd, app) {
        let Some(revision) = revision else { continue };
        let helm = history.iter().find(|(r, _, _)| *r == revision);
        let helm_status = helm.map(|(_, s, _)| s.as_str()).unwrap_or("(missing)");
        let expected = match status.as_str() {
            "live" => "deployed",
            "retired" => "superseded",
            "rolled_back" => "failed",
            other => other,
        };
        assert_eq!(helm_status, expected, "release {number} ({status}) is revision {revision}; helm: {history:?}");
    }
}

fn app_with_env_page(hoistd: &Hoistd, app: &str) -> WorkTree {
    let site = WorkTree::new(hoistd, app, Some("static-site"));
    site.write("index.html", "<h1>version one</h1>\n").write("Procfile", ENV_PROCFILE).commit("version one");
    site
}

#[test]
fn kubernetes_push_goes_live_a_crash_is_rolled_back_and_config_and_rollback_make_releases() {
    let cluster = Cluster::connect();
    let hoistd = Hoistd::start_with(&cluster.hoistd_settings(25));
    let app = "kube-life";
    hoistd.create_app(app);
    assert_eq!(hoistd.get_json(&format!("/api/v1/apps/{app}"))["target"], "kubernetes");
    let site = app_with_env_page(&hoistd, app);

    let push = site.push(&hoistd.remote(app), "main");
    let output = text(&push);
    assert!(push.status.success(), "first push failed\n{}\n{}", show(&push), hoistd.log_tail(40));
    for expected in ["helm upgrade --install kube-life (revision 1)", "--atomic", "Running, Ready", "release 1 is live"]
    {
        assert!(output.contains(expected), "missing {expected:?} in\n{output}");
    }
    assert!(hoistd.visit(app, "/").1.contains("version one"));
    assert_eq!(hoistd.visit(app, "/env.txt").1.trim(), "greeting=none");
    assert_eq!(releases(&hoistd, app), [(1, "live".to_string(), Some(1))]);
    // The pods' output, by pod.
    let output = text(&hoistd.cli(&["logs", app, "--tail", "5"]));
    assert!(output.contains(&format!("[{app}-web-")) && output.contains("greeting=none"), "{output}");
    assert_history_agrees(&hoistd, &cluster, app);

    // A version that exits at start: its output and events reach the push, Helm rolls
    // back, the push is rejected, and release 1 keeps answering.
    site.write("Procfile", "web: echo crashing-on-purpose; exit 3\n").commit("crash");
    let push = site.push(&hoistd.remote(app), "main");
    let output = text(&push);
    assert!(!push.status.success(), "a crashing version must be rejected\n{output}");
    for expected in [
        "| crashing-on-purpose",
        "exited with code 3",
        "event pod/",
        "Helm rolled it back (Rollback to 1",
        "rolled back to release 1, which keeps serving",
        // Not at Helm's timeout: hoistd sees the crash loop and cancels helm.
        "is crash-looping (2 restarts): cancelling helm",
    ] {
        assert!(output.contains(expected), "missing {expected:?} in\n{output}");
    }
    assert!(hoistd.visit(app, "/").1.contains("version one"));
    let after_crash = releases(&hoistd, app);
    assert_eq!(after_crash[0], (2, "rolled_back".to_string(), Some(2)), "{after_crash:?}");
    let reason = hoistd.get_json(&format!("/api/v1/apps/{app}/releases"))[0]["error"].as_str().unwrap().to_string();
    assert!(reason.contains("code 3") && reason.contains("helm:"), "{reason}");
    let history = cluster.helm_history(app);
    let last = history.last().unwrap();
    assert_eq!((last.0, last.1.as_str()), (3, "deployed"), "{history:?}");
    assert!(last.2.contains("Rollback to 1"), "{history:?}");
    assert_history_agrees(&hoistd, &cluster, app);

    // A config change is a new release of the live image; the pod sees the value.
    let set = hoistd.cli(&["config", "set", app, "GREETING=hi"]);
    assert!(String::from_utf8_lossy(&set.stdout).contains("release 3 of kube-life is live"), "{}", show(&set));
    wait_for("the new pod to answer with the new config", Duration::from_secs(30), || {
        (hoistd.visit(app, "/env.txt").1.trim() == "greeting=hi").then_some(())
    });
    // The value is in a Secret, not in the Deployment.
    let deployment = cluster.kubectl(&["get", "deploy", "kube-life-web", "-n", &cluster.namespace, "-o", "json"]);
    assert!(!String::from_utf8_lossy(&deployment.stdout).contains("\"hi\""), "config values stay out of the spec");

    // Rollback to 1: release 1's image and config, as a new release.
    let rollback = hoistd.cli(&["rollback", app, "1"]);
    assert!(
        String::from_utf8_lossy(&rollback.stdout).contains("release 4 of kube-life is live"),
        "{}",
        show(&rollback)
    );
    wait_for("release 1's config to be back", Duration::from_secs(30), || {
        (hoistd.visit(app, "/env.txt").1.trim() == "greeting=none").then_some(())
    });
    let statuses: Vec<(i64, String)> = releases(&hoistd, app).into_iter().map(|(n, s, _)| (n, s)).collect();
    let expected: Vec<(i64, String)> =
        [(4, "live"), (3, "retired"), (2, "rolled_back"), (1, "retired")].map(|(n, s)| (n, s.to_string())).to_vec();
    assert_eq!(statuses, expected);
    assert_history_agrees(&hoistd, &cluster, app);
    let cli = hoistd.cli(&["releases", app]);
    assert!(String::from_utf8_lossy(&cli.stdout).contains("reason: pod"), "{}", show(&cli));
}

#[test]
fn kubernetes_release_whose_readiness_never_passes_is_rolled_back_with_its_output() {
    let cluster = Cluster::connect();
    let hoistd = Hoistd::start_with(&cluster.hoistd_settings(15));
    let app = "kube-ready";
    hoistd.create_app(app);
    let site = app_with_env_page(&hoistd, app);
    let push = site.push(&hoistd.remote(app), "main");
    assert!(push.status.success(), "{}\n{}", show(&push), hoistd.log_tail(40));

    // Listens, but not on $PORT: the readiness probe never passes.
    site.write("Procfile", "web: echo listening-on-the-wrong-port; exec busybox httpd -f -p 9999 -h /app\n")
        .commit("wrong port");
    let push = site.push(&hoistd.remote(app), "main");
    let output = text(&push);
    assert!(!push.status.success(), "{output}");
    for expected in ["not Ready", "| listening-on-the-wrong-port", "rolled back to release 1"] {
        assert!(output.contains(expected), "missing {expected:?} in\n{output}");
    }
    assert!(hoistd.visit(app, "/").1.contains("version one"));
    assert_eq!(releases(&hoistd, app)[0].1, "rolled_back");
    assert_history_agrees(&hoistd, &cluster, app);
}

#[test]
fn killing_hoistd_during_a_kubernetes_rollout_leaves_no_release_stuck() {
    let cluster = Cluster::connect();
    let mut hoistd = Hoistd::start_with(&cluster.hoistd_settings(120));
    let app = "kube-kill";
    hoistd.create_app(app);
    let site = app_with_env_page(&hoistd, app);
    let push = site.push(&hoistd.remote(app), "main");
    assert!(push.status.success(), "{}\n{}", show(&push), hoistd.log_tail(40));

    // A version that never becomes Ready, so Helm waits; hoistd is killed meanwhile.
    site.write("Procfile", "web: exec busybox httpd -f -p 9999 -h /app\n").commit("never ready");
    let pushing = std::process::Command::new("git")
        .args(["push", &hoistd.remote(app), "main"])
        .current_dir(&site.dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("helm to be upgrading", Duration::from_secs(120), || {
        let history = cluster.helm_history(app);
        history.last().filter(|(_, status, _)| status == "pending-upgrade").map(|_| ())
    });
    hoistd.kill9();
    let _ = pushing.wait_with_output();
    std::thread::sleep(Duration::from_secs(1));
    let stuck = cluster.helm_history(app);
    assert_eq!(stuck.last().unwrap().1, "pending-upgrade", "helm dies with hoistd: {stuck:?}");

    hoistd.restart();
    let history = cluster.helm_history(app);
    let last = history.last().unwrap();
    assert_eq!(last.1, "deployed", "the restart repaired the release: {history:?}");
    assert!(last.2.contains("Rollback to 1"), "{history:?}");
    let statuses: Vec<(i64, String)> = releases(&hoistd, app).into_iter().map(|(n, s, _)| (n, s)).collect();
    assert_eq!(statuses, [(2, "interrupted".to_string()), (1, "live".to_string())]);
    wait_for("release 1 to answer again", Duration::from_secs(30), || {
        hoistd.visit(app, "/").1.contains("version one").then_some(())
    });

    site.write("Procfile", ENV_PROCFILE).write("index.html", "<h1>version three</h1>\n").commit("three");
    let push = site.push(&hoistd.remote(app), "main");
    assert!(push.status.success(), "the next push deploys\n{}\n{}", show(&push), hoistd.log_tail(40));
    assert!(hoistd.visit(app, "/").1.contains("version three"));
    assert_history_agrees(&hoistd, &cluster, app);
}

#[test]
fn kubernetes_runs_every_procfile_process_type_and_an_app_can_bring_its_own_chart() {
    let cluster = Cluster::connect();
    let hoistd = Hoistd::start_with(&cluster.hoistd_settings(60));
    let app = "kube-procs";
    hoistd.create_app(app);
    let site = app_with_env_page(&hoistd, app);
    site.write("Procfile", &format!("{ENV_PROCFILE}worker: while true; do echo working; sleep 5; done\n"))
        .commit("a worker");
    let push = site.push(&hoistd.remote(app), "main");
    assert!(push.status.success(), "{}\n{}", show(&push), hoistd.log_tail(40));
    assert!(text(&push).contains("Procfile process types besides web: worker"), "{}", show(&push));
    let ready = |deployment: &str| {
        let output = cluster.kubectl(&[
            "get",
            "deploy",
            deployment,
            "-n",
            &cluster.namespace,
            "-o",
            "jsonpath={.status.readyReplicas}",
        ]);
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    assert_eq!(ready("kube-procs-web"), "1");
    assert_eq!(ready("kube-procs-worker"), "1");
    let logs = cluster.kubectl(&["logs", "deploy/kube-procs-worker", "-n", &cluster.namespace]);
    assert!(String::from_utf8_lossy(&logs.stdout).contains("working"), "{}", show(&logs));
    // ps:restart of a type restarts its Deployment's pods, as `kubectl rollout restart`.
    let restart = hoistd.cli(&["ps:restart", app, "worker"]);
    assert!(String::from_utf8_lossy(&restart.stdout).contains("every worker process"), "{}", show(&restart));
    let restarted = cluster.kubectl(&[
        "get",
        "deploy",
        "kube-procs-worker",
        "-n",
        &cluster.namespace,
        "-o",
        "jsonpath={.spec.template.metadata.annotations.hoist\\.dev/restarted-at}",
    ]);
    assert!(String::from_utf8_lossy(&restarted.stdout).starts_with("20"), "{}", show(&restarted));
    // ps:scale sets each Deployment's replicas, zero included.
    hoistd.cli(&["ps:scale", app, "web=2", "worker=0"]);
    assert_eq!(ready("kube-procs-web"), "2");
    let workers = cluster.kubectl(&[
        "get",
        "deploy",
        "kube-procs-worker",
        "-n",
        &cluster.namespace,
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(String::from_utf8_lossy(&workers.stdout), "0");
    let ps: serde_json::Value = serde_json::from_slice(&hoistd.cli(&["ps", app, "--json"]).stdout).unwrap();
    let kinds: Vec<&str> = ps.as_array().unwrap().iter().map(|p| p["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["web", "web"], "{ps}");

    // hoist run: a pod of the live release attached through the API server, stdin in,
    // output and the exit status out, removed at its end.
    let script = "read line; echo \"got $line on $PORT\"; echo oops >&2; exit 3";
    let run = hoistd.cli_with_input(&["run", app, "--", "sh", "-c", script], "hello\n");
    assert_eq!(run.status.code(), Some(3), "{}", show(&run));
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "got hello on 5000", "{}", show(&run));
    assert!(String::from_utf8_lossy(&run.stderr).contains("oops"), "{}", show(&run));
    // The end of stdin reaches the process: `cat` ends.
    let cat = hoistd.cli_with_input(&["run", app, "--", "cat"], "one\ntwo\n");
    assert_eq!(
        (cat.status.code(), String::from_utf8_lossy(&cat.stdout).to_string()),
        (Some(0), "one\ntwo\n".to_string()),
        "{}",
        show(&cat)
    );
    let on_tty = hoistd.cli_on_terminal(&["run", app, "--", "tty; stty size; exit 4"]);
    let shown = String::from_utf8_lossy(&on_tty.stdout).to_string();
    assert!(shown.contains("/dev/pts/") && shown.contains("24 80"), "{}", show(&on_tty));
    assert_eq!(on_tty.status.code(), Some(4), "{}", show(&on_tty));
    // --detach: a pod hoist ps lists and hoist logs reads.
    let detached = hoistd.cli(&["run", app, "--detach", "--", "echo detached-$((6*7))"]);
    let said = String::from_utf8_lossy(&detached.stdout).to_string();
    let process = said.split_whitespace().find(|w| w.starts_with("run.")).expect("named").to_string();
    hoist_tests::wait_for("the detached pod to end", Duration::from_secs(90), || {
        let ps: serde_json::Value = serde_json::from_slice(&hoistd.cli(&["ps", app, "--json"]).stdout).unwrap();
        ps.as_array()
            .unwrap()
            .iter()
            .any(|p| format!("run.{}", p["index"]) == process && p["state"] == "complete")
            .then_some(())
    });
    let logs = hoistd.cli(&["logs", app, "--tail", "50"]);
    assert!(String::from_utf8_lossy(&logs.stdout).contains("detached-42"), "{}", show(&logs));
    let left = cluster.kubectl(&["get", "pods", "-n", &cluster.namespace, "-l", "hoist.dev/process=run", "-o", "name"]);
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).lines().count(),
        1,
        "only the detached pod stays\n{}",
        show(&left)
    );

    // The app's own chart (hoist's, plus a ConfigMap) receives the same values.
    let chart = hoist_tests::repo_root().join("deploy/chart");
    let status = std::process::Command::new("cp").arg("-a").arg(&chart).arg(site.dir.join("chart")).status().unwrap();
    assert!(status.success());
    site.write(
        "chart/templates/marker.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.app }}-marker\ndata:\n  release: {{ .Values.release | quote }}\n",
    )
    .commit("own chart");
    let push = site.push(&hoistd.remote(app), "main");
    assert!(push.status.success(), "{}\n{}", show(&push), hoistd.log_tail(40));
    assert!(text(&push).contains("with the app's own chart"), "{}", show(&push));
    let marker = cluster.kubectl(&[
        "get",
        "configmap",
        "kube-procs-marker",
        "-n",
        &cluster.namespace,
        "-o",
        "jsonpath={.data.release}",
    ]);
    // Release 1 was the push, 2 the scale, 3 this one.
    assert_eq!(String::from_utf8_lossy(&marker.stdout), "3");
    assert_eq!(hoistd.visit(app, "/env.txt").1.trim(), "greeting=none");
}

#[test]
fn kubernetes_runs_the_release_phase_in_a_pod_before_helm_and_a_failing_one_keeps_the_old_release() {
    let cluster = Cluster::connect();
    let hoistd = Hoistd::start_with(&cluster.hoistd_settings(60));
    let app = "kube-migr";
    hoistd.create_app(app);
    hoistd.cli(&["config", "set", app, "GREETING=from-config"]);
    let site = app_with_env_page(&hoistd, app);
    site.write("Procfile", &format!("{ENV_PROCFILE}release: echo \"release phase sees $GREETING\"\n"))
        .commit("a release phase");
    let push = site.push(&hoistd.remote(app), "main");
    assert!(push.status.success(), "{}\n{}", show(&push), hoistd.log_tail(40));
    let said = text(&push);
    assert!(said.contains("release phase sees from-config") && said.contains("release phase done in"), "{said}");
    let pods =
        cluster.kubectl(&["get", "pods", "-n", &cluster.namespace, "-l", "hoist.dev/process=release", "-o", "name"]);
    assert_eq!(String::from_utf8_lossy(&pods.stdout).trim(), "", "the release phase's pod is removed");

    site.write("index.html", "<h1>version two</h1>\n")
        .write("Procfile", &format!("{ENV_PROCFILE}release: echo nope; exit 4\n"))
        .commit("failing release phase");
    let push = site.push(&hoistd.remote(app), "main");
    let said = text(&push);
    assert!(!push.status.success(), "{said}");
    assert!(said.contains("nope") && said.contains("exited with code 4"), "{said}");
    assert!(hoistd.visit(app, "/").1.contains("version one"), "the old release keeps serving");
}
