//! Releases without a build, on the docker target: config vars and rollback.

use hoist_tests::{show, Hoistd, WorkTree};

/// A web process that serves the app's files and its GREETING config var as /env.txt.
pub const ENV_PROCFILE: &str =
    "web: echo \"greeting=${GREETING:-none}\" | tee /app/env.txt && exec busybox httpd -f -p \"$PORT\" -h /app\n";

fn releases(hoistd: &Hoistd, app: &str) -> Vec<(i64, String, String)> {
    let releases = hoistd.get_json(&format!("/api/v1/apps/{app}/releases"));
    releases
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["number"].as_i64().unwrap(),
                r["status"].as_str().unwrap().to_string(),
                r["cause"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn config_changes_and_rollbacks_make_releases_without_a_build_on_docker() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("cfg1");
    // Config set before the first deploy is kept for it.
    let early = hoistd.cli(&["config", "set", "cfg1", "GREETING=early"]);
    assert!(String::from_utf8_lossy(&early.stdout).contains("no release is live yet"), "{}", show(&early));
    let site = WorkTree::new(&hoistd, "cfg1", Some("static-site"));
    site.write("Procfile", ENV_PROCFILE).commit("serve env");
    let push = site.push(&hoistd.remote("cfg1"), "main");
    assert!(push.status.success(), "{}", show(&push));
    assert_eq!(hoistd.visit("cfg1", "/env.txt").1.trim(), "greeting=early");

    let set = hoistd.cli(&["config", "set", "cfg1", "GREETING=hi", "OTHER=x"]);
    assert!(String::from_utf8_lossy(&set.stdout).contains("release 2 of cfg1 is live"), "{}", show(&set));
    assert_eq!(hoistd.visit("cfg1", "/env.txt").1.trim(), "greeting=hi");
    hoistd.cli(&["config", "unset", "cfg1", "GREETING"]);
    assert_eq!(hoistd.visit("cfg1", "/env.txt").1.trim(), "greeting=none");

    let rollback = hoistd.cli(&["rollback", "cfg1", "2"]);
    assert!(String::from_utf8_lossy(&rollback.stdout).contains("release 4 of cfg1 is live"), "{}", show(&rollback));
    assert_eq!(hoistd.visit("cfg1", "/env.txt").1.trim(), "greeting=hi");
    let config = hoistd.get_json("/api/v1/apps/cfg1/config");
    assert_eq!(config["vars"]["GREETING"], "hi", "a rollback brings back release 2's config: {config}");
    assert_eq!(config["version"], 4, "{config}");

    let expected: Vec<(i64, String, String)> = [
        (4, "live", "rollback to 2"),
        (3, "retired", "config -GREETING (v3)"),
        (2, "retired", "config GREETING OTHER (v2)"),
        (1, "retired", "build 1"),
    ]
    .into_iter()
    .map(|(n, s, c)| (n, s.to_string(), c.to_string()))
    .collect();
    assert_eq!(releases(&hoistd, "cfg1"), expected);
    // Config values never appear in the release list (they may be secrets).
    assert!(!hoistd.get("/api/v1/apps/cfg1/releases").1.contains("greeting=hi"));
    let builds = hoistd.get_json("/api/v1/apps/cfg1/builds");
    assert_eq!(builds.as_array().unwrap().len(), 1, "no release after the first needed a build: {builds}");

    // Bad input: each answers with what to do, and nothing changes.
    let (status, body) = hoistd.call("PATCH", "/api/v1/apps/cfg1/config", Some(r#"{"1BAD": "x"}"#));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid config var name"), "{body}");
    let (status, body) = hoistd.call("PATCH", "/api/v1/apps/cfg1/config", Some(r#"{"PORT": "1"}"#));
    assert_eq!(status, 400, "{body}");
    let (status, body) = hoistd.call("POST", "/api/v1/apps/cfg1/rollback", Some(r#"{"release": 99}"#));
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("has no release 99"), "{body}");
    let (status, body) = hoistd.call("POST", "/api/v1/apps/cfg1/rollback", Some("{}"));
    assert_eq!(status, 400, "{body}");
    assert_eq!(releases(&hoistd, "cfg1").len(), 4);
    assert_eq!(hoistd.visit("cfg1", "/env.txt").1.trim(), "greeting=hi");
}

#[test]
fn an_app_on_a_target_that_is_not_configured_is_refused_with_the_reason() {
    let hoistd = Hoistd::start(&[("HOIST_KUBECONFIG", "/nonexistent/kubeconfig")]);
    let (status, body) = hoistd.call("POST", "/api/v1/apps", Some(r#"{"name": "k1", "target": "kubernetes"}"#));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("kubernetes target is not available") && body.contains("/nonexistent/kubeconfig"), "{body}");
    let (status, body) = hoistd.call("POST", "/api/v1/apps", Some(r#"{"name": "k1", "target": "moon"}"#));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("use docker or kubernetes"), "{body}");
}

/// The app's images in dockerd (by hoist's labels), as their digests.
fn local_image_digests(hoistd: &Hoistd, app: &str) -> Vec<String> {
    let output = std::process::Command::new(hoist_tests::DOCKER)
        .args(["images", "--digests", "--format", "{{.Digest}}"])
        .args(["--filter", &format!("label=org.hoist.instance={}", hoistd.instance)])
        .args(["--filter", &format!("label=org.hoist.app={app}")])
        .output()
        .unwrap();
    let mut digests: Vec<String> = String::from_utf8_lossy(&output.stdout).lines().map(str::to_string).collect();
    digests.sort();
    digests.dedup();
    digests
}

fn in_registry(hoistd: &Hoistd, app: &str, digest: &str) -> bool {
    let url = format!("http://127.0.0.1:{}/v2/{app}/manifests/{digest}", hoistd.registry_port);
    let response = reqwest::blocking::Client::new()
        .get(url)
        .basic_auth("hoist", Some(hoistd.registry_password()))
        .header(
            "accept",
            "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
        )
        .send()
        .unwrap();
    response.status().is_success()
}

#[test]
fn old_images_leave_dockerd_and_the_registry_and_a_deleted_app_leaves_none() {
    let mut hoistd = Hoistd::start(&[("HOIST_KEEP_RELEASES", "2"), ("HOIST_SETTLE_SECS", "0")]);
    hoistd.create_app("keep");
    let site = WorkTree::new(&hoistd, "keep", Some("static-site"));
    let mut digests = Vec::new();
    for version in 1..=4 {
        site.write("index.html", &format!("<h1>version {version}</h1>\n")).commit(&format!("v{version}"));
        let push = site.push(&hoistd.remote("keep"), "main");
        assert!(push.status.success(), "{}", show(&push));
        let release = &hoistd.get_json("/api/v1/apps/keep/releases")[0];
        digests.push(release["image"].as_str().unwrap().rsplit_once('@').unwrap().1.to_string());
    }
    let mut kept = vec![digests[2].clone(), digests[3].clone()];
    kept.sort();
    assert_eq!(local_image_digests(&hoistd, "keep"), kept, "dockerd keeps the last 2 releases' images");
    assert!(!in_registry(&hoistd, "keep", &digests[0]), "release 1's manifest is deleted");
    assert!(in_registry(&hoistd, "keep", &digests[2]));

    // Rollback reaches as far as the images kept, and says why not beyond.
    let (status, body) = hoistd.call("POST", "/api/v1/apps/keep/rollback", Some(r#"{"release": 1}"#));
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("its image was removed") && body.contains("rollout.keep_releases"), "{body}");
    assert!(hoistd.visit("keep", "/").1.contains("version 4"), "nothing changed");
    let rollback = hoistd.cli(&["rollback", "keep", "3"]);
    assert!(String::from_utf8_lossy(&rollback.stdout).contains("release 5 of keep is live"), "{}", show(&rollback));
    assert!(hoistd.visit("keep", "/").1.contains("version 3"));
    let gc = hoistd.cli(&["gc"]);
    assert!(String::from_utf8_lossy(&gc.stdout).contains("each app keeps its last 2 releases"), "{}", show(&gc));

    // The registry frees the deleted manifests' blobs when hoistd starts again.
    hoistd.restart();
    assert!(hoistd.log_tail(200).contains("registry garbage collected"), "{}", hoistd.log_tail(60));

    let (status, body) = hoistd.call("DELETE", "/api/v1/apps/keep", None);
    assert_eq!(status, 204, "{body}");
    assert_eq!(local_image_digests(&hoistd, "keep"), Vec::<String>::new(), "a deleted app leaves no image");
    for digest in &digests {
        assert!(!in_registry(&hoistd, "keep", digest), "nor a manifest");
    }
}

#[test]
fn a_procfile_release_command_runs_before_traffic_moves_and_a_failing_one_rejects_the_push() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("migr");
    hoistd.cli(&["config", "set", "migr", "MIGRATION_TARGET=db-one"]);
    let site = WorkTree::new(&hoistd, "migr", Some("static-site"));
    let procfile = |release: &str| format!("{ENV_PROCFILE}release: {release}\n");
    site.write("index.html", "<h1>first</h1>\n")
        .write("Procfile", &procfile("echo \"migrating $MIGRATION_TARGET\"; echo done >&2"))
        .commit("with a release phase");
    let push = site.push(&hoistd.remote("migr"), "main");
    let said = format!("{}{}", String::from_utf8_lossy(&push.stdout), String::from_utf8_lossy(&push.stderr));
    assert!(push.status.success(), "{}", show(&push));
    assert!(said.contains("-----> Release phase: echo \"migrating $MIGRATION_TARGET\""), "{said}");
    assert!(said.contains("migrating db-one"), "the release phase has the app's config: {said}");
    assert!(said.contains("release phase done in"), "{said}");
    let phase = said.find("release phase done").unwrap();
    let switched = said.find("traffic switched").unwrap();
    assert!(phase < switched, "the release phase ends before traffic moves: {said}");
    // Its lines are the release stage of the build's timeline.
    let records = hoistd.get("/api/v1/apps/migr/builds/1/log?format=ndjson").1;
    assert!(records.lines().any(|l| l.contains("\"stage\":\"release\"") && l.contains("migrating")), "{records}");

    // A failing release command rejects the push; the running release keeps serving.
    site.write("index.html", "<h1>second</h1>\n")
        .write("Procfile", &procfile("echo \"cannot migrate\"; exit 3"))
        .commit("a failing release phase");
    let push = site.push(&hoistd.remote("migr"), "main");
    let said = format!("{}{}", String::from_utf8_lossy(&push.stdout), String::from_utf8_lossy(&push.stderr));
    assert!(!push.status.success(), "{said}");
    assert!(said.contains("cannot migrate") && said.contains("exited with code 3"), "{said}");
    assert!(said.contains("release 1 keeps serving"), "{said}");
    assert!(hoistd.visit("migr", "/").1.contains("first"));
    let release_2 = &hoistd.get_json("/api/v1/apps/migr/releases")[0];
    assert_eq!(release_2["status"], "failed", "{release_2}");
    assert!(release_2["error"].as_str().unwrap().contains("exited with code 3"), "{release_2}");
    // A config change is a new release of the live image: its release phase (the live
    // build's command) runs again, with the new config.
    let set = hoistd.cli(&["config", "set", "migr", "MIGRATION_TARGET=db-two"]);
    assert!(String::from_utf8_lossy(&set.stdout).contains("release 3 of migr is live"), "{}", show(&set));
    let log = hoistd.get("/api/v1/apps/migr/releases/3/log").1;
    assert!(log.contains("migrating db-two"), "{log}");
    assert!(hoistd.visit("migr", "/").1.contains("first"));
}

/// `hoist run` with `input` on its stdin: (exit code, stdout, stderr).
fn hoist_run(hoistd: &Hoistd, args: &[&str], input: &str) -> (Option<i32>, String, String) {
    let output = hoistd.cli_with_input(&[&["run"], args].concat(), input);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn hoist_run_starts_a_one_off_process_of_the_live_release_with_stdin_and_its_exit_status() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("runner");
    hoistd.cli(&["config", "set", "runner", "GREETING=hi"]);
    let site = WorkTree::new(&hoistd, "runner", Some("static-site"));
    site.commit("first");
    assert!(site.push(&hoistd.remote("runner"), "main").status.success());

    // A program and its arguments, stdin passed through, both outputs, the exit status.
    let script = "read line; echo \"got $line and $GREETING\"; echo oops >&2; exit 3";
    let (code, stdout, stderr) = hoist_run(&hoistd, &["runner", "--", "sh", "-c", script], "hello\n");
    assert_eq!(code, Some(3), "{stdout}{stderr}");
    assert_eq!(stdout.trim(), "got hello and hi");
    assert!(stderr.contains("oops"), "{stderr}");
    // One argument is a shell command line, as Heroku takes it.
    let (code, stdout, _) = hoist_run(&hoistd, &["runner", "echo port=$PORT; pwd"], "");
    assert_eq!(code, Some(0));
    assert_eq!(stdout.trim(), "port=5000\n/app".trim(), "{stdout}");
    // Nothing is left behind.
    let left = std::process::Command::new("/usr/bin/docker")
        .args(["ps", "-aq", "--filter", &format!("name={}-runner-r1-run", hoistd.instance)])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "", "the one-off container is removed");
    // hoist ps: each process with its state, since when, and its restarts.
    let ps = |hoistd: &Hoistd| -> serde_json::Value {
        serde_json::from_slice(&hoistd.cli(&["ps", "runner", "--json"]).stdout).unwrap()
    };
    let processes = ps(&hoistd);
    assert_eq!(processes[0]["type"], "web", "{processes}");
    assert_eq!(processes[0]["index"], 1, "{processes}");
    assert_eq!(processes[0]["state"], "up", "{processes}");
    assert_eq!(processes[0]["restarts"], 0, "{processes}");
    assert!(processes[0]["since"].as_str().is_some_and(|s| s.starts_with("20")), "{processes}");
    let human = String::from_utf8_lossy(&hoistd.cli(&["ps", "runner"]).stdout).to_string();
    assert!(human.contains("web.1  up  ") && human.contains("ago)  restarts 0"), "{human}");
    // A crash: dockerd brings the process back, and ps counts it.
    let container = processes[0]["name"].as_str().unwrap().to_string();
    // Every process of the app's user but PID 1 (tini), which then exits with the app.
    std::process::Command::new("/usr/bin/docker")
        .args(["exec", &container, "sh", "-c", "kill -9 -1"])
        .output()
        .unwrap();
    let restarted = hoist_tests::wait_for("the crashed process to be back", std::time::Duration::from_secs(30), || {
        let processes = ps(&hoistd);
        (processes[0]["restarts"] == 1 && processes[0]["state"] == "up").then_some(processes)
    });
    assert_eq!(restarted[0]["state"], "up");
    // On a terminal, the process gets one, sized as the client's, and its exit status.
    let on_tty = hoistd.cli_on_terminal(&["run", "runner", "--", "tty; stty size; exit 4"]);
    let shown = String::from_utf8_lossy(&on_tty.stdout).to_string();
    assert!(shown.contains("/dev/pts/"), "{}", show(&on_tty));
    // `script` without a terminal of its own has no size: hoist asks for 24 × 80.
    assert!(shown.contains("24 80"), "{}", show(&on_tty));
    assert_eq!(on_tty.status.code(), Some(4), "{}", show(&on_tty));
    // A missing app: exit code 5, as every verb.
    let (code, _, stderr) = hoist_run(&hoistd, &["nope", "--", "true"], "");
    assert_eq!(code, Some(5), "{stderr}");
    // The audit log has it, the program only.
    let audit = hoistd.get_json("/api/v1/audit?app=runner");
    assert!(
        audit.as_array().unwrap().iter().any(|e| e["action"] == "run" && e["detail"].as_str().unwrap().contains("sh")),
        "{audit}"
    );

    // --detach: the process runs in the background with the size asked; hoist ps lists
    // it until the release is retired, and its output is in hoist logs.
    let line = "sleep 1; echo detached-$((6*7)) with $GREETING";
    let (code, stdout, stderr) = hoist_run(&hoistd, &["runner", "--detach", "--size", "256m", "--", line], "");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let process = stdout.split_whitespace().find(|w| w.starts_with("run.")).expect("the process is named").to_string();
    let (kind, index) = process.split_once('.').unwrap();
    let done = hoist_tests::wait_for("the detached process to end", std::time::Duration::from_secs(30), || {
        ps(&hoistd)
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["type"] == kind && p["index"].to_string() == index)
            .cloned()
            .filter(|p| p["state"] == "complete")
    });
    let memory = std::process::Command::new("/usr/bin/docker")
        .args(["inspect", "-f", "{{.HostConfig.Memory}}", done["name"].as_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&memory.stdout).trim(), (256 * 1024 * 1024).to_string());
    let logs = hoistd.cli(&["logs", "runner", "--tail", "20"]);
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains(&format!("{process}: detached-42 with hi")),
        "{}",
        show(&logs)
    );
    let (code, _, stderr) = hoist_run(&hoistd, &["runner", "--size", "lots", "--", "true"], "");
    assert_eq!(code, Some(6), "{stderr}");
    assert!(stderr.contains("give memory as 512m, 2g"), "{stderr}");
}

#[test]
fn ps_scale_runs_every_procfile_type_web_behind_the_router_and_the_formation_outlives_a_deploy() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("fleet");
    let site = WorkTree::new(&hoistd, "fleet", Some("static-site"));
    let procfile = "web: hostname > /app/who.txt && exec busybox httpd -f -p \"$PORT\" -h /app\n\
                    worker: while true; do echo working; sleep 1; done\n";
    site.write("Procfile", procfile).commit("web and worker");
    let push = site.push(&hoistd.remote("fleet"), "main");
    assert!(push.status.success(), "{}", show(&push));
    let ps = |hoistd: &Hoistd| -> Vec<(String, String)> {
        let processes: serde_json::Value =
            serde_json::from_slice(&hoistd.cli(&["ps", "fleet", "--json"]).stdout).unwrap();
        processes
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (format!("{}.{}", p["type"].as_str().unwrap(), p["index"]), p["state"].as_str().unwrap().to_string())
            })
            .collect()
    };
    let up =
        |names: &[&str]| -> Vec<(String, String)> { names.iter().map(|n| (n.to_string(), "up".to_string())).collect() };
    assert_eq!(ps(&hoistd), up(&["web.1", "worker.1"]), "every Procfile type runs on docker");

    // Three web processes behind the router, taken in turn.
    let scaled = hoistd.cli(&["ps:scale", "fleet", "web=3"]);
    assert!(String::from_utf8_lossy(&scaled.stdout).contains("fleet scaled to web=3"), "{}", show(&scaled));
    assert_eq!(ps(&hoistd), up(&["web.1", "web.2", "web.3", "worker.1"]));
    let seen: std::collections::BTreeSet<String> =
        (0..12).map(|_| hoistd.visit("fleet", "/who.txt").1.trim().to_string()).collect();
    assert_eq!(seen.len(), 3, "three containers answer through the router: {seen:?}");
    let logs = hoistd.cli(&["logs", "fleet", "--tail", "20"]);
    assert!(String::from_utf8_lossy(&logs.stdout).contains("worker.1: working"), "{}", show(&logs));

    // Scaled to no web process, the router says so with a 503; back to one, it serves.
    hoistd.cli(&["ps:scale", "fleet", "web=0"]);
    let (status, body) = hoistd.visit("fleet", "/who.txt");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("scaled to 0") && body.contains("hoist ps:scale fleet web=1"), "{body}");
    hoistd.cli(&["ps:scale", "fleet", "web=2"]);
    assert_eq!(hoistd.visit("fleet", "/who.txt").0, 200);

    // A new deploy keeps the formation.
    site.write("index.html", "<h1>second</h1>\n").commit("second");
    assert!(site.push(&hoistd.remote("fleet"), "main").status.success());
    assert_eq!(ps(&hoistd), up(&["web.1", "web.2", "worker.1"]), "the formation outlives a deploy");
    let releases = hoistd.get_json("/api/v1/apps/fleet/releases");
    assert_eq!(releases[0]["formation"]["web"], 2, "{releases}");

    // A rolling restart is a new release; a type the release does not have is refused.
    let restart = hoistd.cli(&["ps:restart", "fleet"]);
    assert!(String::from_utf8_lossy(&restart.stdout).contains("fleet restarted: release"), "{}", show(&restart));
    assert!(hoistd.visit("fleet", "/").1.contains("second"));
    // Restarting another type restarts its processes in place: no new release.
    let worker_since = |hoistd: &Hoistd| -> String {
        let processes: serde_json::Value =
            serde_json::from_slice(&hoistd.cli(&["ps", "fleet", "--json"]).stdout).unwrap();
        let worker = processes.as_array().unwrap().iter().find(|p| p["type"] == "worker").cloned().unwrap();
        worker["since"].as_str().unwrap().to_string()
    };
    let (before, releases_before) = (worker_since(&hoistd), hoistd.get_json("/api/v1/apps/fleet/releases"));
    let restart = hoistd.cli(&["ps:restart", "fleet", "worker"]);
    let said = String::from_utf8_lossy(&restart.stdout).to_string();
    assert!(said.contains("every worker process of release") && said.contains("restarted"), "{}", show(&restart));
    assert_ne!(worker_since(&hoistd), before, "the worker started again");
    let releases_after = hoistd.get_json("/api/v1/apps/fleet/releases");
    assert_eq!(releases_after[0]["number"], releases_before[0]["number"], "no new release");
    assert_eq!(ps(&hoistd), up(&["web.1", "web.2", "worker.1"]));
    let unknown = hoistd.cli_may_fail(&["ps:scale", "fleet", "clock=1"]);
    assert_eq!(unknown.status.code(), Some(6), "{}", show(&unknown));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("has no process type \"clock\""), "{}", show(&unknown));
}
