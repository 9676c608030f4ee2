//! Git-host webhooks against a real upstream repository served by `git daemon`: the
//! payloads GitHub, GitLab and Gitea document, signed as they sign them.

use hoist_tests::{show, wait_for, Hoistd, WorkTree};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// An upstream repository on a local "Git host": a bare repo served by `git daemon`.
struct Upstream {
    daemon: Child,
    url: String,
    work: WorkTree,
}

impl Upstream {
    fn start(hoistd: &Hoistd, name: &str) -> Upstream {
        let base = hoistd.dir.join("githost");
        std::fs::create_dir_all(&base).unwrap();
        let bare = base.join(format!("{name}.git"));
        let init = Command::new("git").args(["init", "-q", "--bare", "-b", "main"]).arg(&bare).output().unwrap();
        assert!(init.status.success(), "{}", show(&init));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // git-daemon itself, not `git daemon`: git runs it as a child of its own, which
        // a kill of `git` at the test's end left serving (one per test run).
        let exec_path = Command::new("git").arg("--exec-path").output().unwrap();
        let exec_path = String::from_utf8_lossy(&exec_path.stdout).trim().to_string();
        let daemon = Command::new(std::path::Path::new(&exec_path).join("git-daemon"))
            .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(&base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let work = WorkTree::new(hoistd, &format!("{name}-upstream"), Some("static-site"));
        work.git(&["remote", "add", "origin", &bare.display().to_string()]);
        let url = format!("git://127.0.0.1:{port}/{name}.git");
        wait_for("git daemon to serve", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
        });
        Upstream { daemon, url, work }
    }

    /// Commits `page` as index.html and pushes it to the host; returns the commit.
    fn push_page(&self, branch: &str, page: &str) -> String {
        self.work.write("index.html", page).commit(page);
        let push = self.work.git_may_fail(&["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")]);
        assert!(push.status.success(), "{}", show(&push));
        let head = self.work.git(&["rev-parse", "HEAD"]);
        String::from_utf8_lossy(&head.stdout).trim().to_string()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

fn post(hoistd: &Hoistd, app: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, serde_json::Value) {
    let mut request = reqwest::blocking::Client::new()
        .post(format!("{}/hooks/{app}", hoistd.api_url()))
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.body(body.to_vec()).send().unwrap();
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {status} {text}")))
}

fn github_push(branch: &str, after: &str) -> String {
    format!(
        r#"{{"ref":"refs/heads/{branch}","before":"9049f1265b7d61be4a8904a9a27120d2064dab3b","after":"{after}",
        "created":false,"deleted":false,"forced":false,"base_ref":null,
        "commits":[{{"id":"{after}","message":"Update the page"}}],"head_commit":{{"id":"{after}","message":"Update the page"}},
        "repository":{{"name":"shop","full_name":"acme/shop"}},"pusher":{{"name":"Codertocat","email":"c@example.com"}},
        "sender":{{"login":"Codertocat"}}}}"#
    )
}

fn builds(hoistd: &Hoistd, app: &str) -> usize {
    hoistd.get_json(&format!("/api/v1/apps/{app}/builds")).as_array().unwrap().len()
}

fn live_page(hoistd: &Hoistd, app: &str, expected: &str) {
    wait_for(&format!("{expected:?} to be live"), Duration::from_secs(120), || {
        let (status, page) = hoistd.visit(app, "/");
        (status == 200 && page.contains(expected)).then_some(())
    });
}

#[test]
fn signed_pushes_from_github_gitlab_and_gitea_build_that_commit_and_anything_else_is_refused() {
    let hoistd = Hoistd::start(&[]);
    let upstream = Upstream::start(&hoistd, "shop");
    let first = upstream.push_page("main", "<h1>shop one</h1>");
    let create = hoistd.cli(&["apps", "create", "shop", "--repo", &upstream.url]);
    assert!(String::from_utf8_lossy(&create.stdout).contains("created app shop"), "{}", show(&create));
    let webhooks = hoistd.cli(&["webhooks", "shop"]);
    let text = String::from_utf8_lossy(&webhooks.stdout).to_string();
    assert!(text.contains(&format!("{}/hooks/shop", hoistd.api_url())), "{text}");
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("secret:"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_string();
    let again = String::from_utf8_lossy(&hoistd.cli(&["webhooks", "shop"]).stdout).to_string();
    assert!(!again.contains(&secret), "the secret is shown once: {again}");

    // GitHub: a ping, then a signed push → that exact commit is fetched, built, live.
    let (status, answer) = post(
        &hoistd,
        "shop",
        &[("x-github-event", "ping"), ("x-hub-signature-256", &hoist_tests::sign(&secret, b"{}"))],
        b"{}",
    );
    assert_eq!((status, answer["result"].as_str()), (200, Some("pong")), "{answer}");
    let body = github_push("main", &first);
    let signature = hoist_tests::sign(&secret, body.as_bytes());
    let github =
        [("x-github-event", "push"), ("x-github-delivery", "d-1"), ("x-hub-signature-256", signature.as_str())];
    let (status, answer) = post(&hoistd, "shop", &github, body.as_bytes());
    assert_eq!((status, answer["result"].as_str()), (202, Some("queued")), "{answer}");
    live_page(&hoistd, "shop", "shop one");
    let log = hoistd.get("/api/v1/apps/shop/builds/1/log").1;
    assert!(
        log.contains("GitHub push of")
            && log.contains("by Codertocat")
            && log.contains(&format!("Fetching {}", &first[..12])),
        "{log}"
    );
    assert_eq!(hoistd.get_json("/api/v1/apps/shop/builds/1")["commit"], first.as_str());

    // The same delivery again: answered, built once.
    let (status, answer) = post(&hoistd, "shop", &github, body.as_bytes());
    assert_eq!((status, answer["result"].as_str()), (200, Some("duplicate")), "{answer}");
    // The same signed body replayed under a new delivery id, or none: built once too.
    for replay in
        [&github[..], &[github[0], ("x-github-delivery", "d-replayed"), github[2]][..], &[github[0], github[2]][..]]
    {
        let (status, answer) = post(&hoistd, "shop", replay, body.as_bytes());
        assert_eq!((status, answer["result"].as_str()), (200, Some("duplicate")), "{answer}");
    }
    assert_eq!(builds(&hoistd, "shop"), 1, "a replay builds nothing");

    // Refused, nothing queued: a wrong secret, no signature, a truncated or oversized body.
    let forged = hoist_tests::sign("not-the-secret", body.as_bytes());
    let (status, answer) =
        post(&hoistd, "shop", &[("x-github-event", "push"), ("x-hub-signature-256", &forged)], body.as_bytes());
    assert_eq!(status, 401, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("does not match"), "{answer}");
    let (status, _) = post(&hoistd, "shop", &[("x-github-event", "push")], body.as_bytes());
    assert_eq!(status, 401);
    let truncated = &body.as_bytes()[..body.len() / 2];
    let signed = hoist_tests::sign(&secret, truncated);
    let (status, answer) =
        post(&hoistd, "shop", &[("x-github-event", "push"), ("x-hub-signature-256", &signed)], truncated);
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("not the JSON push payload of GitHub"), "{answer}");
    let huge = vec![b' '; 6 * 1024 * 1024];
    let signed = hoist_tests::sign(&secret, &huge);
    let (status, _) = post(&hoistd, "shop", &[("x-github-event", "push"), ("x-hub-signature-256", &signed)], &huge);
    assert_eq!(status, 413);
    // Another branch: ignored.
    let other = upstream.push_page("feature", "<h1>not for prod</h1>");
    let body_other = github_push("feature", &other);
    let signed = hoist_tests::sign(&secret, body_other.as_bytes());
    let (status, answer) =
        post(&hoistd, "shop", &[("x-github-event", "push"), ("x-hub-signature-256", &signed)], body_other.as_bytes());
    assert_eq!(status, 202, "{answer}");
    assert!(answer["message"].as_str().unwrap().starts_with("ignored: branch feature does not deploy"), "{answer}");
    assert_eq!(builds(&hoistd, "shop"), 1, "none of these queued a build");

    // GitLab: the secret is the token.
    let second = upstream.push_page("main", "<h1>shop two</h1>");
    let gitlab = format!(
        r#"{{"object_kind":"push","event_name":"push","before":"{first}","after":"{second}","ref":"refs/heads/main",
        "checkout_sha":"{second}","user_name":"John Smith","user_username":"jsmith","project_id":15,"commits":[],"total_commits_count":1}}"#
    );
    let headers =
        [("x-gitlab-event", "Push Hook"), ("x-gitlab-token", secret.as_str()), ("x-gitlab-event-uuid", "g-1")];
    let (status, answer) = post(&hoistd, "shop", &headers, gitlab.as_bytes());
    assert_eq!(status, 202, "{answer}");
    live_page(&hoistd, "shop", "shop two");
    let (status, _) =
        post(&hoistd, "shop", &[("x-gitlab-event", "Push Hook"), ("x-gitlab-token", "wrong")], gitlab.as_bytes());
    assert_eq!(status, 401);

    // Gitea / Forgejo: a bare hex signature.
    let third = upstream.push_page("main", "<h1>shop three</h1>");
    let gitea = format!(
        r#"{{"secret":"","ref":"refs/heads/main","before":"{second}","after":"{third}",
        "commits":[{{"id":"{third}","message":"three"}}],"pusher":{{"login":"gitea","username":"gitea"}}}}"#
    );
    let signed = hoist_tests::sign(&secret, gitea.as_bytes());
    let hex = signed.strip_prefix("sha256=").unwrap();
    let headers = [("x-gitea-event", "push"), ("x-gitea-signature", hex), ("x-gitea-delivery", "t-1")];
    let (status, answer) = post(&hoistd, "shop", &headers, gitea.as_bytes());
    assert_eq!(status, 202, "{answer}");
    live_page(&hoistd, "shop", "shop three");
    assert_eq!(builds(&hoistd, "shop"), 3);

    // A rotated secret: the old one stops working.
    hoistd.cli(&["webhooks", "shop", "--rotate"]);
    let (status, _) = post(&hoistd, "shop", &github, body.as_bytes());
    assert_eq!(status, 401, "the old secret no longer signs");
}

#[test]
fn a_webhook_whose_commit_cannot_be_fetched_fails_a_build_that_says_why() {
    let hoistd = Hoistd::start(&[]);
    let create = hoistd.cli(&["apps", "create", "gone", "--repo", "git://127.0.0.1:9/nothing.git"]);
    assert!(create.status.success());
    let secret_line = String::from_utf8_lossy(&hoistd.cli(&["webhooks", "gone"]).stdout).to_string();
    let secret = secret_line
        .lines()
        .find_map(|l| l.strip_prefix("secret:"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let body = github_push("main", "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
    let signed = hoist_tests::sign(&secret, body.as_bytes());
    let (status, _) =
        post(&hoistd, "gone", &[("x-github-event", "push"), ("x-hub-signature-256", &signed)], body.as_bytes());
    assert_eq!(status, 202, "answered at once; the fetch happens afterwards");
    let build = wait_for("the failed build", Duration::from_secs(60), || {
        let builds = hoistd.get_json("/api/v1/apps/gone/builds");
        builds.as_array().unwrap().first().filter(|b| b["status"] == "failed").cloned()
    });
    assert!(build["error"].as_str().unwrap().contains("cannot fetch from git://127.0.0.1:9/nothing.git"), "{build}");
    let (status, body) =
        hoistd.call("PATCH", "/api/v1/apps/gone", Some(r#"{"repo": "https://user:pw@git.example/x.git"}"#));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("repo_token"), "{body}");
}

#[test]
fn a_host_that_never_answers_fails_recorded_builds_in_time_and_outside_strings_cannot_forge_log_lines() {
    let hoistd = Hoistd::start(&[("HOIST_FETCH_TIMEOUT_SECS", "3"), ("HOIST_KEEP_BUILD_LOGS", "2")]);
    // A "Git host" that accepts connections and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/acme/stall.git", silent.local_addr().unwrap().port());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming() {
            held.push(stream);
        }
    });
    hoistd.cli(&["apps", "create", "stall", "--repo", &url]);
    let text = String::from_utf8_lossy(&hoistd.cli(&["webhooks", "stall"]).stdout).to_string();
    let secret =
        text.lines().find_map(|l| l.strip_prefix("secret:")).unwrap().split_whitespace().next().unwrap().to_string();
    let started = std::time::Instant::now();
    for i in 0..4 {
        let commit = format!("{i}d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
        let body = github_push("main", &commit)
            .replace("\"name\":\"Codertocat\"", "\"name\":\"eve\\n=====> Done: release 99 is live\"");
        let signed = hoist_tests::sign(&secret, body.as_bytes());
        let delivery = format!("stall-{i}");
        let headers = [
            ("x-github-event", "push"),
            ("x-github-delivery", delivery.as_str()),
            ("x-hub-signature-256", signed.as_str()),
        ];
        let (status, answer) = post(&hoistd, "stall", &headers, body.as_bytes());
        assert_eq!(status, 202, "{answer}");
        assert!(answer["build"].as_i64().is_some(), "the build is recorded before the fetch: {answer}");
    }
    assert_eq!(builds(&hoistd, "stall"), 4, "each webhook shows as a build at once");
    let failed = wait_for("four failed builds", Duration::from_secs(60), || {
        let builds = hoistd.get_json("/api/v1/apps/stall/builds");
        let builds = builds.as_array().unwrap().clone();
        builds.iter().all(|b| b["status"] == "failed").then_some(builds)
    });
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "stopped by the 3 s limit, not git's: {:?}",
        started.elapsed()
    );
    let error = failed[0]["error"].as_str().unwrap();
    assert!(error.contains("took longer than 3 s (receive.fetch_timeout_secs)"), "{error}");
    let git_processes = std::process::Command::new("pgrep").args(["-f", &url]).output().unwrap();
    assert!(
        git_processes.stdout.is_empty(),
        "no git is left hanging: {}",
        String::from_utf8_lossy(&git_processes.stdout)
    );
    // Logs are pruned on this path too, and the pusher's newline forged nothing.
    let logs: Vec<_> = std::fs::read_dir(hoistd.dir.join("data/logs/stall")).unwrap().collect();
    assert!(logs.len() <= 2, "keep_logs holds: {} logs", logs.len());
    let newest = failed[0]["id"].as_i64().unwrap();
    let log = hoistd.get(&format!("/api/v1/apps/stall/builds/{newest}/log")).1;
    assert!(!log.lines().any(|line| line.starts_with("=====> Done")), "{log}");
    assert!(log.contains("by eve =====> Done: release 99 is live"), "the name is kept, on its line: {log}");
}

/// Builds a site image saying `text` and pushes it as `reference` with the real docker,
/// logged in to hoistd's registry as a user does it: `hoist registry login`.
fn push_image(hoistd: &Hoistd, dir: &std::path::Path, reference: &str, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM hoist/stack-base:run\nRUN mkdir /www && echo '{text}' > /www/index.html\nCMD [\"sh\", \"-c\", \"exec busybox httpd -f -p $PORT -h /www\"]\n"
        ),
    )
    .unwrap();
    // Each hoistd's login in a docker config of its own: tests run side by side.
    let docker_config = hoistd.dir.join("docker-config");
    let login = Command::new(hoist_tests::binary("hoist"))
        .args(["registry", "login", "--docker", hoist_tests::DOCKER])
        .env("HOIST_URL", hoistd.api_url())
        .env("HOIST_TOKEN", &hoistd.token)
        .env("DOCKER_CONFIG", &docker_config)
        .output()
        .unwrap();
    assert!(login.status.success(), "{}", show(&login));
    let docker = |args: &[&str]| {
        let output =
            Command::new(hoist_tests::DOCKER).args(args).env("DOCKER_CONFIG", &docker_config).output().unwrap();
        assert!(output.status.success(), "docker {args:?}\n{}", show(&output));
    };
    docker(&["build", "-q", "-t", reference, &dir.display().to_string()]);
    docker(&["push", "-q", reference]);
}

fn releases(hoistd: &Hoistd, app: &str) -> usize {
    hoistd.get_json(&format!("/api/v1/apps/{app}/releases")).as_array().unwrap().len()
}

fn newest_source(hoistd: &Hoistd, app: &str) -> String {
    let stream = hoistd.get_json(&format!("/api/v1/apps/{app}/image-stream"));
    stream["tags"]["latest"][0]["source"].as_str().unwrap_or("").to_string()
}

#[test]
fn an_app_following_an_image_rolls_out_when_the_registry_tells_of_a_push() {
    // No polling to speak of: only the registry's notification can bring the new digest.
    let hoistd = Hoistd::start(&[("HOIST_IMAGE_POLL_SECS", "3600")]);
    let image = format!("127.0.0.1:{}/team/edge:latest", hoistd.registry_port);
    let dir = hoistd.dir.join("edge-image");
    push_image(&hoistd, &dir, &image, "edge one");
    let create = hoistd.cli(&["apps", "create", "edge", "--image", &image]);
    assert!(create.status.success(), "{}", show(&create));
    live_page(&hoistd, "edge", "edge one");

    push_image(&hoistd, &dir, &image, "edge two");
    live_page(&hoistd, "edge", "edge two");
    assert_eq!(newest_source(&hoistd, "edge"), "notification");
    assert_eq!(releases(&hoistd, "edge"), 2);
    assert_eq!(builds(&hoistd, "edge"), 0, "nothing was built");

    // Without the account, nobody reads, pushes or deletes in hoistd's registry.
    let registry = format!("http://127.0.0.1:{}", hoistd.registry_port);
    let anonymous = reqwest::blocking::Client::new();
    for (method, path) in [
        ("GET", "/v2/_catalog"),
        ("GET", "/v2/team/edge/manifests/latest"),
        ("DELETE", "/v2/team/edge/manifests/latest"),
        ("POST", "/v2/team/edge/blobs/uploads/"),
    ] {
        let response = anonymous
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{registry}{path}"))
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{method} {path}");
    }
    let other_config = hoistd.dir.join("no-login");
    let push = Command::new(hoist_tests::DOCKER)
        .args(["push", "-q", &image])
        .env("DOCKER_CONFIG", &other_config)
        .output()
        .unwrap();
    assert!(!push.status.success(), "a push without the account is refused\n{}", show(&push));
    live_page(&hoistd, "edge", "edge two");

    // Only the registry may send events.
    let (status, _) = post_to(&hoistd, "/internal/v1/registry/events", &[("authorization", "Bearer guess")], b"{}");
    assert_eq!(status, 401);
    let (status, body) = hoistd.call("POST", "/api/v1/apps", Some(r#"{"name": "bad", "image": "edge:latest"}"#));
    assert_eq!(status, 400, "{body}");
}

#[test]
fn notifications_and_polling_together_roll_out_each_new_digest_once() {
    let hoistd = Hoistd::start(&[("HOIST_IMAGE_POLL_SECS", "1")]);
    let image = format!("127.0.0.1:{}/team/both:latest", hoistd.registry_port);
    let dir = hoistd.dir.join("both-image");
    push_image(&hoistd, &dir, &image, "both one");
    hoistd.cli(&["apps", "create", "both", "--image", &image]);
    live_page(&hoistd, "both", "both one");
    push_image(&hoistd, &dir, &image, "both two");
    live_page(&hoistd, "both", "both two");
    // Several polls later, the same digest is still one release.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(releases(&hoistd, "both"), 2, "{}", hoistd.get("/api/v1/apps/both/image-stream").1);
    let stream = hoistd.get_json("/api/v1/apps/both/image-stream");
    assert_eq!(stream["tags"]["latest"].as_array().unwrap().len(), 2, "{stream}");
}

#[test]
fn with_notifications_off_a_poll_finds_the_new_digest() {
    let hoistd = Hoistd::start(&[("HOIST_IMAGE_POLL_SECS", "2"), ("HOIST_REGISTRY_NOTIFICATIONS", "false")]);
    let image = format!("127.0.0.1:{}/team/polled:latest", hoistd.registry_port);
    let dir = hoistd.dir.join("polled-image");
    push_image(&hoistd, &dir, &image, "polled one");
    hoistd.cli(&["apps", "create", "polled", "--image", &image]);
    live_page(&hoistd, "polled", "polled one");
    // Another app follows a registry that accepts connections and never answers (it
    // sorts first, so a poll that asks one registry after the other, unbounded, never
    // got past it): the followed image's new digest still arrives.
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stalled_image = format!("0.0.0.0:{}/team/never:latest", stalled.local_addr().unwrap().port());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in stalled.incoming() {
            held.push(stream);
        }
    });
    hoistd.cli(&["apps", "create", "stalled", "--image", &stalled_image]);
    std::thread::sleep(Duration::from_secs(3));
    push_image(&hoistd, &dir, &image, "polled two");
    live_page(&hoistd, "polled", "polled two");
    assert_eq!(newest_source(&hoistd, "polled"), "poll");
}

fn post_to(hoistd: &Hoistd, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut request = reqwest::blocking::Client::new().post(format!("{}{path}", hoistd.api_url()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.body(body.to_vec()).send().unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

#[test]
fn promoting_latest_to_stable_rolls_out_the_apps_following_stable() {
    let hoistd = Hoistd::start(&[("HOIST_IMAGE_POLL_SECS", "3600")]);
    // A hoist-built app, and a second app following its image's `stable` tag.
    hoistd.create_app("web");
    let site = WorkTree::new(&hoistd, "web", Some("static-site"));
    site.write("index.html", "<h1>candidate one</h1>\n").commit("one");
    assert!(site.push(&hoistd.remote("web"), "main").status.success());
    let stable = format!("127.0.0.1:{}/web:stable", hoistd.registry_port);
    let create = hoistd.cli(&["apps", "create", "web-prod", "--image", &stable]);
    assert!(create.status.success(), "{}", show(&create));

    let promote = hoistd.cli(&["images", "promote", "web", "latest", "stable"]);
    assert!(String::from_utf8_lossy(&promote.stdout).contains("web:stable is now sha256:"), "{}", show(&promote));
    live_page(&hoistd, "web-prod", "candidate one");
    // The registry's notification, the promotion itself and the first look hoistd takes
    // at a new app's tag (made when it is created, so it may land after the promotion)
    // race to tell; one records it.
    let source = newest_source(&hoistd, "web-prod");
    assert!(["promotion", "notification", "poll"].contains(&source.as_str()), "{source}");

    // A new build goes to web only; web-prod moves when promoted again.
    site.write("index.html", "<h1>candidate two</h1>\n").commit("two");
    assert!(site.push(&hoistd.remote("web"), "main").status.success());
    assert!(hoistd.visit("web-prod", "/").1.contains("candidate one"));
    hoistd.cli(&["images", "promote", "web", "latest", "stable"]);
    live_page(&hoistd, "web-prod", "candidate two");
    assert_eq!(releases(&hoistd, "web-prod"), 2, "one rollout per promotion, notified or not");
    let stream = hoistd.get_json("/api/v1/apps/web/image-stream");
    assert_eq!(stream["tags"]["stable"].as_array().unwrap().len(), 2, "{stream}");
    let (status, body) =
        hoistd.call("POST", "/api/v1/apps/web/image-stream/promote", Some(r#"{"from": "nope", "to": "x"}"#));
    assert_eq!(status, 404, "{body}");
}
