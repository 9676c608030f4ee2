//! The hostile probe's defects (issue 17), each reproduced against a live hoistd the way
//! the probe made it: the push, request or setting an attacker or a careless user sends,
//! a clear refusal, hoistd still up and another app still serving.

use hoist_tests::{binary, show, wait_for, Hoistd, WorkTree};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Makes branch main of `site` one commit whose tree has the files `paths` (each
/// holding "x"), with `git fast-import`, which writes trees no checkout could.
fn commit_paths(site: &WorkTree, paths: impl Iterator<Item = String>) {
    let mut stream = b"commit refs/heads/main\ncommitter t <t@hoist.invalid> 0 +0000\ndata 7\ncrafted\n".to_vec();
    for path in paths {
        stream.extend_from_slice(format!("M 100644 inline {path}\ndata 1\nx\n").as_bytes());
    }
    stream.push(b'\n');
    let mut import = Command::new("git")
        .args(["fast-import", "--quiet", "--force"])
        .current_dir(&site.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    import.stdin.take().unwrap().write_all(&stream).unwrap();
    let output = import.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", show(&output));
}

#[test]
fn deep_trees_tree_bombs_and_huge_small_files_are_refused_and_hoistd_stays_up() {
    let hoistd = Hoistd::start(&[("HOIST_MAX_FILES", "2000")]);
    hoistd.deploy_bystander();

    // One file 20,000 folders deep (a 1.25 MiB pack): once a stack overflow that took
    // hoistd and every app's router down.
    hoistd.create_app("deep");
    let site = WorkTree::new(&hoistd, "deep", None);
    commit_paths(&site, std::iter::once(format!("{}f", "d/".repeat(20_000))));
    let push = site.push(&hoistd.remote("deep"), "main");
    let stderr = String::from_utf8_lossy(&push.stderr);
    assert!(!push.status.success(), "{}", show(&push));
    assert!(stderr.contains("folders nest more than 256 deep"), "{stderr}");
    hoistd.bystander_serves();

    // 3,000 files (the probe used 3,000,000 empty ones in a 6 KiB pack) past a limit
    // of 2,000: refused from the tree objects, before anything is unpacked.
    hoistd.create_app("bomb");
    let site = WorkTree::new(&hoistd, "bomb", None);
    commit_paths(&site, (0..3000).map(|i| format!("d{}/f{i}", i % 10)));
    let push = site.push(&hoistd.remote("bomb"), "main");
    let stderr = String::from_utf8_lossy(&push.stderr);
    assert!(!push.status.success(), "{}", show(&push));
    assert!(stderr.contains("more than 2000 files and folders (receive.max_files)"), "{stderr}");
    assert!(hoistd.get_json("/api/v1/apps/bomb/builds").as_array().unwrap().is_empty(), "no build was started");

    // A 2 MiB .s2i/environment (the probe's 400 MB one took hoistd to 1.84 GB): the build
    // fails naming the file; nothing reads it whole. (The site brings its own assemble:
    // the environment is assemble's, and a plain static site runs none.)
    hoistd.create_app("bigenv");
    let site = WorkTree::new(&hoistd, "bigenv", Some("static-site"));
    site.write(".s2i/bin/assemble", "#!/bin/sh\ncp -r \"$SOURCE_DIR\"/. \"$APP_DIR\"/\n");
    Command::new("chmod").arg("+x").arg(site.dir.join(".s2i/bin/assemble")).status().unwrap();
    site.write(".s2i/environment", &"A=b\n".repeat(512 * 1024)).commit("big environment");
    let push = site.push(&hoistd.remote("bigenv"), "main");
    let stderr = String::from_utf8_lossy(&push.stderr);
    assert!(!push.status.success(), "{}", show(&push));
    assert!(stderr.contains(".s2i/environment is 2097152 bytes; hoist reads at most 1048576 bytes"), "{stderr}");
    hoistd.bystander_serves();
}

#[test]
fn the_cli_sends_the_token_to_hoistd_only() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("web1");
    // The "repo host": it records whether anyone knocked.
    let repo_host = TcpListener::bind("127.0.0.1:0").unwrap();
    repo_host.set_nonblocking(true).unwrap();
    let repo_url = format!("http://127.0.0.1:{}/team/web1.git", repo_host.local_addr().unwrap().port());
    for with_url in [false, true] {
        let mut args = vec!["apps", "set-repo", "web1", repo_url.as_str()];
        let api = hoistd.api_url();
        if with_url {
            args.extend(["--url", api.as_str()]);
        }
        let set = hoistd.cli(&args);
        assert!(String::from_utf8_lossy(&set.stdout).contains(&repo_url), "{}", show(&set));
        assert!(repo_host.accept().is_err(), "the CLI connected to the repo host (with --url: {with_url})");
    }
    assert_eq!(hoistd.get_json("/api/v1/apps/web1")["repo_url"], repo_url.as_str());
}

#[test]
fn secrets_of_many_lines_are_masked_and_secrets_stay_off_the_command_line() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("keyed");
    let key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7probe\nVGhpcyBpcyBub3QgYSByZWFsIGtleSwganVzdCBhIHRlc3Q=\n-----END PRIVATE KEY-----\n";
    let key_file = hoistd.dir.join("key.pem");
    std::fs::write(&key_file, key).unwrap();
    hoistd.cli(&["config", "set", "--secret", "keyed", "TLS_KEY", "--from-file", &key_file.display().to_string()]);
    // NAME=- reads stdin, so the value never shows in `ps`.
    let mut stdin_set = Command::new(binary("hoist"))
        .args(["config", "set", "--secret", "keyed", "API_TOKEN=-"])
        .env("HOIST_URL", hoistd.api_url())
        .env("HOIST_TOKEN", &hoistd.token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    stdin_set.stdin.take().unwrap().write_all(b"tok-from-stdin-123\n").unwrap();
    let output = stdin_set.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", show(&output));

    // A careless assemble prints both.
    let site = WorkTree::new(&hoistd, "keyed", Some("static-site"));
    site.write(
        ".s2i/bin/assemble",
        "#!/bin/sh\nset -e\necho \"key: $TLS_KEY\"\necho \"token: $API_TOKEN\"\nmkdir -p /app && cp -r /workspace/source/. /app/\n",
    );
    Command::new("chmod").arg("+x").arg(site.dir.join(".s2i/bin/assemble")).status().unwrap();
    site.commit("leaky");
    let push = site.push(&hoistd.remote("keyed"), "main");
    assert!(push.status.success(), "{}", show(&push));
    let pushed = String::from_utf8_lossy(&push.stderr).to_string();
    let stored = hoistd.get("/api/v1/apps/keyed/builds/1/log").1;
    let raw_log = std::fs::read_to_string(hoistd.dir.join("data/logs/keyed/build-1.log")).unwrap();
    for (what, text) in [("the push", &pushed), ("the log API", &stored), ("the stored log", &raw_log)] {
        for line in key.lines().chain(["tok-from-stdin-123"]) {
            assert!(!text.contains(line), "{line:?} shows in {what}:\n{text}");
        }
    }
    assert!(pushed.contains("token: ********"), "{pushed}");
    // The build's cache volume carries the instance's labels, so cleanup by label finds it.
    let volumes = Command::new(hoist_tests::DOCKER)
        .args(["volume", "ls", "-q", "--filter", &format!("label=org.hoist.instance={}", hoistd.instance)])
        .args(["--filter", "label=org.hoist.role=cache", "--filter", "label=org.hoist.app=keyed"])
        .output()
        .unwrap();
    let volumes = String::from_utf8_lossy(&volumes.stdout).to_string();
    assert_eq!(volumes.trim(), format!("{}-cache-keyed", hoistd.instance), "{volumes}");
    let config = hoistd.get_json("/api/v1/apps/keyed/config");
    assert_eq!(config["vars"]["TLS_KEY"], "********", "{config}");

    // A value no environment can hold is refused, and nothing is saved.
    let (status, body) = hoistd.call("PATCH", "/api/v1/apps/keyed/config", Some(r#"{"BAD": "a\u0000b"}"#));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("NUL"), "{body}");
    assert!(hoistd.get_json("/api/v1/apps/keyed/config")["vars"].get("BAD").is_none(), "nothing was saved");

    // Deleting the app removes its build cache.
    let destroyed = hoistd.cli(&["apps", "destroy", "keyed", "--confirm", "keyed"]);
    assert!(destroyed.status.success(), "{}", show(&destroyed));
    let inspect = Command::new(hoist_tests::DOCKER).args(["volume", "inspect", volumes.trim()]).output().unwrap();
    assert!(!inspect.status.success(), "the build cache is gone with the app");
}

#[test]
fn local_urls_credentials_in_urls_and_dot_segments_are_refused_by_default() {
    let hoistd = Hoistd::start(&[("HOIST_ALLOW_LOCAL_URLS", "false")]);
    hoistd.create_app("web1");
    let registry = format!("127.0.0.1:{}", hoistd.registry_port);
    let cases = [
        (format!(r#"{{"repo": "file://{}/data/repos/web1.git"}}"#, hoistd.dir.display()), "file:// URLs"),
        (format!(r#"{{"repo": "{}/data/repos/web1.git"}}"#, hoistd.dir.display()), "local paths"),
        (r#"{"repo": "https://ghp_0123456789abcdef@github.com/a/b.git"}"#.to_string(), "carries credentials"),
        (r#"{"repo": "https://user%3Apass@github.com/a/b.git"}"#.to_string(), "carries credentials"),
        (r#"{"repo": "http://169.254.169.254/latest/meta-data"}"#.to_string(), "link-local"),
        (r#"{"repo": "ssh://127.0.0.1/x.git"}"#.to_string(), "loopback"),
        (r#"{"repo": "http://2130706433/x.git"}"#.to_string(), "loopback"),
    ];
    for (body, expected) in &cases {
        let (status, answer) = hoistd.call("PATCH", "/api/v1/apps/web1", Some(body));
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer.contains(expected), "{body}: {answer}");
        assert!(!answer.contains("ghp_0123456789abcdef"), "the token is not echoed: {answer}");
    }
    assert!(hoistd.get_json("/api/v1/apps/web1")["repo_url"].is_null(), "nothing was saved");
    for (image, expected) in [
        ("169.254.169.254/team/edge:latest", "link-local"),
        ("127.0.0.1:1/team/edge:latest", "loopback"),
        ("registry.example/team/../other:latest", "path segment"),
    ] {
        let body = format!(r#"{{"name": "follower", "image": "{image}"}}"#);
        let (status, answer) = hoistd.call("POST", "/api/v1/apps", Some(&body));
        assert_eq!(status, 400, "{image}: {answer}");
        assert!(answer.contains(expected), "{image}: {answer}");
    }
    // hoistd's own registry stays allowed.
    let body = format!(r#"{{"name": "follower", "image": "{registry}/team/edge:latest"}}"#);
    assert_eq!(hoistd.call("POST", "/api/v1/apps", Some(&body)).0, 201);
}

#[test]
fn silent_clients_are_cut_off_and_cannot_starve_the_listeners() {
    let hoistd = Hoistd::start(&[("HOIST_HEADER_TIMEOUT_SECS", "2"), ("HOIST_MAX_CONNECTIONS", "20")]);
    let api = format!("127.0.0.1:{}", hoistd.api_port);
    let router = format!("127.0.0.1:{}", hoistd.router_port);

    // Half-sent requests are closed once the header deadline passes.
    let mut half = TcpStream::connect(&api).unwrap();
    half.write_all(b"GET /api/v1/apps HTTP/1.1\r\nHost: x\r\n").unwrap();
    half.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = half.read_to_end(&mut rest);
    assert!(started.elapsed() < Duration::from_secs(15), "closed after {:?}", started.elapsed());

    // 60 silent sockets on each listener (three times the cap): hoistd keeps answering.
    let idle: Vec<TcpStream> =
        (0..60).flat_map(|_| [TcpStream::connect(&api).unwrap(), TcpStream::connect(&router).unwrap()]).collect();
    assert_eq!(hoistd.get("/api/v1/apps").0, 200, "the API answers past idle sockets");
    drop(idle);

    // Two Host headers: 400, as RFC 9112 says.
    let mut twice = TcpStream::connect(&router).unwrap();
    twice.write_all(b"GET / HTTP/1.1\r\nHost: a.localhost\r\nHost: b.localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    twice.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(hoistd.get("/api/v1/apps").0, 200);
}

#[test]
fn unauthenticated_callers_learn_nothing_about_apps_or_paths() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("exists");
    hoistd.cli(&["webhooks", "exists"]);
    let client = reqwest::blocking::Client::new();
    let answer = |app: &str| {
        let response = client
            .post(format!("{}/hooks/{app}", hoistd.api_url()))
            .header("x-github-event", "push")
            .header("x-hub-signature-256", "sha256=00")
            .body("{}")
            .send()
            .unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };
    let (existing, missing) = (answer("exists"), answer("missing"));
    assert_eq!(existing.0, 401, "{existing:?}");
    assert_eq!(existing, missing, "an existing app answers like a missing one");
    let (status, body) = hoistd.call_as(None, "GET", "/api/v1/apps", None);
    assert_eq!(status, 401);
    assert!(!body.contains(&hoistd.dir.display().to_string()), "{body}");
}

#[test]
fn dockerfile_builds_and_app_containers_have_limits() {
    let hoistd = Hoistd::start(&[("HOIST_BUILD_MEMORY_MB", "64")]);
    // A RUN that holds 200 MB (dd's one block).
    hoistd.create_app("hog");
    let site = WorkTree::new(&hoistd, "hog", None);
    site.write("Dockerfile", "FROM debian:bookworm-slim\nRUN dd if=/dev/zero of=/dev/null bs=200M count=1\n");
    site.commit("hog");
    let push = site.push(&hoistd.remote("hog"), "main");
    let stderr = String::from_utf8_lossy(&push.stderr);
    assert!(!push.status.success(), "{}", show(&push));
    assert!(stderr.contains("ran out of memory (limit 64 MiB, build.memory_mb)"), "{stderr}");

    // A release runs with the default limits, or the app's own.
    hoistd.deploy_bystander();
    let container = |app: &str| hoistd.running_containers(app).into_iter().next().unwrap_or_default();
    let limits = |id: &str| {
        let inspect = Command::new(hoist_tests::DOCKER)
            .args(["inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.CapDrop}}", id])
            .output()
            .unwrap();
        String::from_utf8_lossy(&inspect.stdout).trim().to_string()
    };
    let first = limits(&container("bystander"));
    assert!(first.starts_with(&format!("{} 1024 ", 1024u64 * 1024 * 1024)) && first.contains("NET_RAW"), "{first}");
    hoistd.cli(&["config", "set", "bystander", "HOIST_MEMORY_MB=128"]);
    let id = wait_for("the new release's container", Duration::from_secs(60), || {
        let id = container("bystander");
        limits(&id).starts_with(&format!("{} ", 128u64 * 1024 * 1024)).then_some(id)
    });
    assert!(!id.is_empty());
    hoistd.bystander_serves();
}
