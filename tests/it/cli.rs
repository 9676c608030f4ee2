//! The `hoist` CLI against a live hoistd, as a newcomer uses it: login, create, a git
//! remote without the token in it, push, follow the build from another terminal,
//! `--json`, runtime logs, destroy; and its error paths with their exit codes.

use hoist_tests::{binary, show, wait_for, Hoistd, WorkTree};
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// `hoist` with its own config dir (where `login` saves), no token or URL in the
/// environment, run in `dir`.
fn hoist(home: &std::path::Path, dir: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(binary("hoist"))
        .args(args)
        .current_dir(dir)
        .env_remove("HOIST_URL")
        .env_remove("HOIST_TOKEN")
        .env("XDG_CONFIG_HOME", home)
        .env("HOIST_DATA_DIR", home.join("no-data-dir"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn ok(output: Output) -> String {
    assert!(output.status.success(), "{}", show(&output));
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn fails_with(output: Output, code: i32, message: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{}", show(&output));
    assert!(stderr.contains(message), "{message:?} missing from: {stderr}");
}

#[test]
fn a_newcomer_logs_in_pushes_follows_the_build_and_scripts_with_json() {
    let hoistd = Hoistd::start(&[]);
    let home = hoistd.dir.join("cli-home");
    std::fs::create_dir_all(&home).unwrap();
    let app = WorkTree::new(&hoistd, "web1", Some("static-site"));
    let run = |args: &[&str]| hoist(&home, &app.dir, args, "");
    let url = hoistd.api_url();

    // Not logged in yet; then a wrong token; then the right one, asked for on stdin.
    fails_with(run(&["apps", "list"]), 4, "no token for http://127.0.0.1:7070: run `hoist login");
    fails_with(hoist(&home, &app.dir, &["login", &url], "wrong-token\n"), 4, "wrong token");
    assert!(
        !home.join("hoist/credentials").exists()
            || !std::fs::read_to_string(home.join("hoist/credentials")).unwrap().contains("wrong-token")
    );
    let login = ok(hoist(&home, &app.dir, &["login", &url], &format!("{}\n", hoistd.token)));
    assert!(login.contains(&format!("logged in to {url}")), "{login}");
    let credentials = home.join("hoist/credentials");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&credentials).unwrap().permissions().mode() & 0o777, 0o600);

    assert!(ok(run(&["apps", "create", "web1"])).contains("created app web1"));
    ok(run(&["git:remote", "web1"]));
    let remote_url =
        ok(Command::new("git").args(["remote", "get-url", "hoist"]).current_dir(&app.dir).output().unwrap());
    assert!(!remote_url.contains(&hoistd.token), "the token is not in the remote: {remote_url}");

    // Push a build that takes a moment, and follow it from "another terminal".
    app.write(".s2i/bin/assemble", "#!/bin/sh\nset -e\nfor i in 1 2 3 4 5; do echo step $i; sleep 0.3; done\nmkdir -p /app && cp -r /workspace/source/. /app/\n");
    Command::new("chmod").arg("+x").arg(app.dir.join(".s2i/bin/assemble")).status().unwrap();
    app.commit("slow steps");
    let dir = app.dir.clone();
    let config_home = home.clone();
    let pusher = std::thread::spawn(move || {
        Command::new("git")
            .args(["push", "hoist", "main"])
            .current_dir(&dir)
            .env("XDG_CONFIG_HOME", &config_home)
            .output()
            .unwrap()
    });
    wait_for("build 1", Duration::from_secs(60), || (hoistd.get("/api/v1/apps/web1/builds/1").0 == 200).then_some(()));
    let followed = ok(run(&["logs", "web1", "--build", "1", "-f"]));
    let push = pusher.join().unwrap();
    assert!(push.status.success(), "{}", show(&push));
    for expected in ["step 1", "step 5", "Done: release 1 is live"] {
        assert!(followed.contains(expected), "{expected:?} missing from the followed log:\n{followed}");
    }
    let first_line = followed.lines().next().unwrap_or("");
    assert!(first_line.contains("web1"), "followed from the first line: {followed}");

    // --json everywhere; tables otherwise.
    let releases: serde_json::Value = serde_json::from_str(&ok(run(&["releases", "web1", "--json"]))).unwrap();
    assert_eq!((releases[0]["number"].as_i64(), releases[0]["status"].as_str()), (Some(1), Some("live")), "{releases}");
    let apps: serde_json::Value = serde_json::from_str(&ok(run(&["--json", "apps", "list"]))).unwrap();
    assert_eq!(apps[0]["name"], "web1");
    let info: serde_json::Value = serde_json::from_str(&ok(run(&["apps", "info", "web1", "--json"]))).unwrap();
    assert_eq!(info["live_release"]["number"], 1);
    let builds: serde_json::Value = serde_json::from_str(&ok(run(&["builds", "web1", "--json"]))).unwrap();
    assert_eq!(builds[0]["status"], "succeeded");
    let table = ok(run(&["releases", "web1"]));
    assert!(table.starts_with("RELEASE  STATUS") && table.contains("build 1"), "{table}");
    let ps = ok(run(&["ps", "web1"]));
    assert!(ps.contains("=== web1: release 1 on docker"), "{ps}");
    let ndjson = ok(run(&["logs", "web1", "--build", "1", "--json"]));
    let last: serde_json::Value = serde_json::from_str(ndjson.lines().last().unwrap()).unwrap();
    assert_eq!(last["end"]["status"], "succeeded", "{ndjson}");
    let config = ok(run(&["config", "set", "web1", "GREETING=hi", "--json"]));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&config).unwrap()["release"]["number"], 2);

    // Runtime output: busybox httpd -v logs each request.
    hoistd.visit("web1", "/");
    let runtime = wait_for("a request in the app's output", Duration::from_secs(20), || {
        let output = ok(run(&["logs", "web1", "--tail", "10"]));
        output.contains("response:200").then_some(output)
    });
    assert!(runtime.lines().count() <= 10, "{runtime}");

    // Error paths and their exit codes.
    fails_with(run(&["releases", "nope"]), 5, "no app named \"nope\"");
    fails_with(run(&["logs", "web1", "--build", "99"]), 5, "has no build \"99\"");
    fails_with(run(&["apps", "create", "Bad_Name"]), 6, "invalid app name");
    fails_with(run(&["rollback", "web1", "77"]), 5, "has no release 77");
    fails_with(run(&["--token", "wrong", "apps", "list"]), 4, "wrong token");
    fails_with(hoist(&home, &app.dir, &["apps", "destroy", "web1"], "web2\n"), 6, "not deleted");
    assert_eq!(hoistd.get("/api/v1/apps/web1").0, 200, "a wrong confirmation deletes nothing");
    assert!(ok(run(&["completions", "bash"])).contains("git:remote"));
    assert!(ok(run(&["apps", "destroy", "web1", "--confirm", "web1"])).contains("deleted app web1"));
    assert_eq!(hoistd.get("/api/v1/apps/web1").0, 404);
    assert!(ok(run(&["logout"])).contains(&format!("logged out of {url}")));
    fails_with(run(&["apps", "list"]), 4, "no token for http://127.0.0.1:7070");
}

#[test]
fn with_hoistd_down_every_verb_says_so_with_exit_code_3() {
    let dir = std::env::temp_dir().join(format!("hoist-cli-down-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    for args in [vec!["apps", "list"], vec!["logs", "x", "-f"], vec!["releases", "x", "--json"]] {
        let mut all = vec!["--url", url.as_str(), "--token", "t"];
        all.extend(args);
        fails_with(hoist(&dir, &dir, &all, ""), 3, &format!("cannot reach hoistd at {url}"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
