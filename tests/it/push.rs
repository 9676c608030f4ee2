//! git push → build → registry → image stream → rollout, and every way it can fail.

use hoist_tests::{show, wait_for, Hoistd, WorkTree};
use std::time::Duration;

/// Opens the gate of a Dockerfile `RUN` step that waits for /tmp/open: finds the build's
/// container by the marker its command echoes, and creates the file in it.
fn open_gate(marker: &str) {
    let container = wait_for("the gated RUN step to start", Duration::from_secs(60), || {
        let ps = std::process::Command::new(hoist_tests::DOCKER)
            .args(["ps", "--no-trunc", "--format", "{{.ID}} {{.Command}}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&ps.stdout)
            .lines()
            .find(|line| line.contains(marker))
            .and_then(|line| line.split_whitespace().next().map(str::to_string))
    });
    let exec = std::process::Command::new(hoist_tests::DOCKER)
        .args(["exec", &container, "touch", "/tmp/open"])
        .output()
        .unwrap();
    assert!(exec.status.success(), "{}", show(&exec));
}

fn text(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn static_site_goes_live_and_an_update_becomes_release_2() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("web1");
    let site = WorkTree::new(&hoistd, "web1", Some("static-site"));
    site.commit("first");

    let push = site.push(&hoistd.remote("web1"), "main");
    let output = text(&push);
    assert!(push.status.success(), "first push failed\n{}", show(&push));
    for expected in ["Detected static site app (index.html)", "Pushing 127.0.0.1:", "release 1 is live"] {
        assert!(
            output.contains(&format!("remote: {expected}")) || output.contains(expected),
            "missing {expected:?} in\n{output}"
        );
    }
    assert!(output.contains("remote: "), "the build streams as remote: lines\n{output}");
    let (status, page) = hoistd.visit("web1", "/");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Hello from hoist"), "{page}");

    site.write("index.html", "<h1>Second version</h1>\n").commit("second");
    let push = site.push(&hoistd.remote("web1"), "main");
    assert!(push.status.success(), "second push failed\n{}", show(&push));
    assert!(hoistd.visit("web1", "/").1.contains("Second version"));

    let releases = hoistd.get_json("/api/v1/apps/web1/releases");
    let statuses: Vec<(i64, &str)> = releases
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["number"].as_i64().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(statuses, [(2, "live"), (1, "retired")]);

    // The image stream keeps both digests of `latest`, newest first, each from its build.
    let stream = hoistd.get_json("/api/v1/apps/web1/image-stream");
    let latest = stream["tags"]["latest"].as_array().unwrap();
    assert_eq!(latest.len(), 2, "{stream}");
    assert_eq!(latest[0]["build_id"], 2);
    assert!(latest[0]["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_ne!(latest[0]["digest"], latest[1]["digest"]);

    // The build log is kept and served.
    let builds = hoistd.get_json("/api/v1/apps/web1/builds");
    assert_eq!(builds[0]["status"], "succeeded", "{builds}");
    assert_eq!(builds[0]["buildpack"], "static");
    let log = hoistd.cli(&["builds", "web1", "log", "2"]);
    assert!(String::from_utf8_lossy(&log.stdout).contains("release 2 is live"), "{}", show(&log));

    // Only one release container runs; the old one is stopped once traffic moved.
    let label = format!("label=org.hoist.instance={}", hoistd.instance);
    wait_for("release 1's container to go", Duration::from_secs(30), || {
        let ps =
            std::process::Command::new(hoist_tests::DOCKER).args(["ps", "-q", "--filter", &label]).output().unwrap();
        (String::from_utf8_lossy(&ps.stdout).lines().count() == 1).then_some(())
    });

    // A static site is a copy of the source: no builder ran, so it has no build cache.
    let volume = format!("{}-cache-web1", hoistd.instance);
    let inspect = |what: &str| {
        std::process::Command::new(hoist_tests::DOCKER).args(["volume", "inspect", what]).output().unwrap()
    };
    assert!(!inspect(&volume).status.success(), "a static site's build made a cache volume");
    // Deleting the app stops it and removes its containers (its build cache: probe.rs).
    hoistd.cli(&["apps", "destroy", "web1", "--confirm", "web1"]);
    assert_eq!(hoistd.visit("web1", "/").0, 404);
    let ps = std::process::Command::new(hoist_tests::DOCKER).args(["ps", "-aq", "--filter", &label]).output().unwrap();
    assert!(ps.stdout.is_empty(), "no container of the app is left");
}

#[test]
fn broken_dockerfile_is_rejected_and_the_old_release_keeps_serving() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("shop");
    let site = WorkTree::new(&hoistd, "shop", Some("dockerfile-site"));
    site.commit("works");
    let push = site.push(&hoistd.remote("shop"), "main");
    assert!(push.status.success(), "{}", show(&push));
    assert!(hoistd.visit("shop", "/").1.contains("Built from a Dockerfile"));

    site.write(
        "Dockerfile",
        "FROM hoist/stack-base:run\nRUN echo compiling && echo 'error: missing semicolon' >&2 && exit 3\n",
    )
    .commit("broken");
    let push = site.push(&hoistd.remote("shop"), "main");
    let output = text(&push);
    assert!(!push.status.success(), "a failed build must reject the push\n{output}");
    assert!(output.contains("remote:        compiling"), "the build's own output reaches the pusher\n{output}");
    assert!(output.contains("error: missing semicolon"), "{output}");
    assert!(output.contains("build of app \"shop\" failed"), "{output}");
    assert!(output.contains("pre-receive hook declined"), "{output}");

    assert!(hoistd.visit("shop", "/").1.contains("Built from a Dockerfile"), "the old release still serves");
    let builds = hoistd.get_json("/api/v1/apps/shop/builds");
    assert_eq!(builds[0]["status"], "failed", "{builds}");
    assert!(builds[0]["error"].as_str().unwrap().contains("docker build failed"), "{builds}");
    assert_eq!(hoistd.get_json("/api/v1/apps/shop/releases").as_array().unwrap().len(), 1);
    // The rejected commit did not move the branch.
    let remote_head = site.git(&["ls-remote", &hoistd.remote("shop"), "refs/heads/main"]);
    let first = site.git(&["rev-parse", "HEAD~1"]);
    assert_eq!(
        String::from_utf8_lossy(&remote_head.stdout).split_whitespace().next(),
        String::from_utf8_lossy(&first.stdout).split_whitespace().next()
    );
}

#[test]
fn a_release_that_never_answers_is_failed_and_the_old_one_keeps_serving() {
    let hoistd = Hoistd::start(&[("HOIST_CHECKS_TIMEOUT_SECS", "8")]);
    hoistd.create_app("api");
    let site = WorkTree::new(&hoistd, "api", Some("dockerfile-site"));
    site.commit("works");
    let push = site.push(&hoistd.remote("api"), "main");
    assert!(push.status.success(), "{}", show(&push));

    // Builds fine, then dies at start: the health check must catch it.
    site.write(
        "Dockerfile",
        "FROM hoist/stack-base:run\nCMD [\"sh\", \"-c\", \"echo 'fatal: DATABASE_URL is not set' >&2; exit 1\"]\n",
    )
    .commit("crashes at start");
    let push = site.push(&hoistd.remote("api"), "main");
    let output = text(&push);
    assert!(!push.status.success(), "a release that never became healthy rejects the push\n{output}");
    assert!(output.contains("release 2 of api never became healthy"), "{output}");
    assert!(output.contains("fatal: DATABASE_URL is not set"), "the container's last lines reach the pusher\n{output}");
    assert!(output.contains("release 1 keeps serving"), "{output}");

    assert!(hoistd.visit("api", "/").1.contains("Built from a Dockerfile"));
    let releases = hoistd.get_json("/api/v1/apps/api/releases");
    assert_eq!(releases[0]["status"], "failed", "{releases}");
    assert_eq!(releases[1]["status"], "live", "{releases}");
}

#[test]
fn a_release_that_answers_then_crashes_is_switched_back_while_the_old_one_still_runs() {
    // It crashes 3 s after its first answers: within the default settling period.
    let hoistd = Hoistd::start(&[("HOIST_SETTLE_SECS", "5")]);
    hoistd.create_app("flaky");
    let site = WorkTree::new(&hoistd, "flaky", Some("static-site"));
    site.commit("good");
    let push = site.push(&hoistd.remote("flaky"), "main");
    assert!(push.status.success(), "{}", show(&push));

    // Answers its health check, then exits 3 s later (the hostile probe's case).
    site.write("index.html", "<h1>flaky version</h1>\n")
        .write("Procfile", "web: busybox httpd -f -p \"$PORT\" -h /app & sleep 3; echo giving-up; exit 1\n")
        .commit("crashes after its first answers");
    let push = site.push(&hoistd.remote("flaky"), "main");
    let output = text(&push);
    assert!(!push.status.success(), "a release that crashes while settling rejects the push\n{output}");
    for expected in ["traffic switched", "settling", "after it went live", "traffic switched back", "| giving-up"] {
        assert!(output.contains(expected), "missing {expected:?} in\n{output}");
    }
    assert!(output.contains("release 1 keeps serving"), "{output}");
    for _ in 0..10 {
        assert!(hoistd.visit("flaky", "/").1.contains("Hello from hoist"), "release 1 serves again");
    }
    let releases = hoistd.get_json("/api/v1/apps/flaky/releases");
    assert_eq!(releases[0]["status"], "failed", "{releases}");
    assert_eq!(releases[1]["status"], "live", "{releases}");
}

#[test]
fn a_release_whose_process_exits_at_once_is_failed_by_its_restart_not_the_timeout() {
    // A long timeout: only the restart count can end this check early.
    let hoistd = Hoistd::start(&[("HOIST_CHECKS_TIMEOUT_SECS", "600")]);
    hoistd.create_app("quits");
    let site = WorkTree::new(&hoistd, "quits", Some("static-site"));
    site.commit("good");
    assert!(site.push(&hoistd.remote("quits"), "main").status.success());
    site.write("Procfile", "web: echo missing-config; exit 2\n").commit("quits");
    let push = site.push(&hoistd.remote("quits"), "main");
    let output = text(&push);
    assert!(!push.status.success(), "{output}");
    // Exited (code 2) or restarted already (dockerd then forgets the code): either way at once.
    assert!(
        output.contains("exited with code 2") || output.contains("its process exited and was restarted"),
        "{output}"
    );
    assert!(output.contains("| missing-config"), "{output}");
    assert!(hoistd.visit("quits", "/").1.contains("Hello from hoist"));
}

#[test]
fn a_repo_no_buildpack_matches_is_rejected_with_what_was_looked_for() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("docs");
    let repo = WorkTree::new(&hoistd, "docs", None);
    repo.write("README.md", "# just words\n").commit("readme");
    let push = repo.push(&hoistd.remote("docs"), "main");
    let output = text(&push);
    assert!(!push.status.success(), "{output}");
    assert!(output.contains("no buildpack matched: looked for Dockerfile, pom.xml, package.json"), "{output}");
    assert!(output.contains("add one of them"), "{output}");
    assert_eq!(hoistd.visit("docs", "/").0, 404);
}

#[test]
fn other_branches_are_stored_without_deploying() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("blog");
    let site = WorkTree::new(&hoistd, "blog", Some("static-site"));
    site.commit("first");
    site.git(&["checkout", "-q", "-b", "feature"]);
    let push = site.push(&hoistd.remote("blog"), "feature");
    let output = text(&push);
    assert!(push.status.success(), "{output}");
    assert!(output.contains("refs/heads/feature stored; only main deploys"), "{output}");
    assert!(hoistd.get_json("/api/v1/apps/blog/builds").as_array().unwrap().is_empty());
    assert_eq!(hoistd.visit("blog", "/").0, 404);
}

#[test]
fn pushes_to_one_app_queue_one_at_a_time_and_the_newest_replaces_the_waiting_one() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("busy");
    let base = WorkTree::new(&hoistd, "busy", Some("dockerfile-site"));
    base.commit("first");
    let push = base.push(&hoistd.remote("busy"), "main");
    assert!(push.status.success(), "{}", show(&push));

    // Three developers push on top of the same commit, one right after the other.
    let clone = |name: &str, dockerfile: &str| {
        let tree = WorkTree::new(&hoistd, name, None);
        tree.git(&["pull", "-q", &hoistd.remote("busy"), "main"]);
        tree.write("Dockerfile", dockerfile).commit(name);
        tree
    };
    // The first build waits at a gate the test opens, so the others surely queue behind it.
    // The marker is unique per run, so Docker's build cache never skips the step.
    let gate = format!("hoist-test-gate-{}", hoistd.instance);
    let slow = clone(
        "slow",
        &"FROM hoist/stack-base:run\nRUN echo GATE; i=0; while [ ! -e /tmp/open ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done; \
         mkdir /www && echo slow > /www/index.html\nCMD [\"sh\", \"-c\", \"exec busybox httpd -f -p $PORT -h /www\"]\n"
            .replace("GATE", &gate),
    );
    let middle = clone("middle", "FROM hoist/stack-base:run\nRUN mkdir /www && echo middle > /www/index.html\nCMD [\"sh\", \"-c\", \"exec busybox httpd -f -p $PORT -h /www\"]\n");
    let newest = clone("newest", "FROM hoist/stack-base:run\nRUN mkdir /www && echo newest > /www/index.html\nCMD [\"sh\", \"-c\", \"exec busybox httpd -f -p $PORT -h /www\"]\n");
    let start_push = |tree: &WorkTree| {
        let (dir, remote) = (tree.dir.clone(), hoistd.remote("busy"));
        std::thread::spawn(move || WorkTree { dir }.push(&remote, "main"))
    };
    let build_status = |id: i64| {
        let (status, body) = hoistd.get(&format!("/api/v1/apps/busy/builds/{id}"));
        (status == 200)
            .then(|| serde_json::from_str::<serde_json::Value>(&body).unwrap()["status"].as_str().unwrap().to_string())
    };

    let slow_push = start_push(&slow);
    wait_for("build 2 to run", Duration::from_secs(60), || (build_status(2)? == "building").then_some(()));
    let middle_push = start_push(&middle);
    wait_for("build 3 to queue", Duration::from_secs(30), || (build_status(3)? == "queued").then_some(()));
    let newest_push = start_push(&newest);
    wait_for("build 4 to queue", Duration::from_secs(30), || (build_status(4)? == "queued").then_some(()));
    assert_eq!(build_status(2).unwrap(), "building", "the first build was still running while two more waited");
    open_gate(&gate);

    let middle_push = middle_push.join().unwrap();
    let output = text(&middle_push);
    assert!(!middle_push.status.success(), "a superseded push is refused\n{output}");
    assert!(output.contains("Superseded by build 4"), "{output}");
    assert_eq!(build_status(3).unwrap(), "superseded");

    let slow_push = slow_push.join().unwrap();
    assert!(slow_push.status.success(), "{}", show(&slow_push));
    assert!(hoistd.visit("busy", "/").1.contains("slow"));

    // The newest push waited its turn; by then its base was no longer the branch's head,
    // so git could not have moved the branch to it: it is refused before building.
    let newest_push = newest_push.join().unwrap();
    let output = text(&newest_push);
    assert!(!newest_push.status.success(), "{output}");
    assert!(output.contains("Waiting for the build before it to finish"), "{output}");
    assert!(output.contains("refs/heads/main moved to"), "{output}");
    assert!(output.contains("fetch, rebase or merge, and push again"), "{output}");
    assert_eq!(build_status(4).unwrap(), "failed");
    assert!(hoistd.visit("busy", "/").1.contains("slow"), "the slow push's release still serves");
    assert_eq!(hoistd.get_json("/api/v1/apps/busy/releases").as_array().unwrap().len(), 2);

    // Rebased on the new head, it goes through.
    newest.git(&["pull", "-q", "--rebase", "-X", "theirs", &hoistd.remote("busy"), "main"]);
    let push = newest.push(&hoistd.remote("busy"), "main");
    assert!(push.status.success(), "{}", show(&push));
    assert!(hoistd.visit("busy", "/").1.contains("newest"));
}

#[test]
fn a_deleted_apps_build_never_goes_live_in_a_new_app_of_the_same_name() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("re1");
    let gate = format!("hoist-test-gate-re1-{}", hoistd.instance);
    let site = WorkTree::new(&hoistd, "re1", None);
    site.write(
        "Dockerfile",
        &"FROM hoist/stack-base:run\nRUN echo GATE; i=0; while [ ! -e /tmp/open ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done; \
         mkdir /www && echo old-app > /www/index.html\nCMD [\"sh\", \"-c\", \"exec busybox httpd -f -p $PORT -h /www\"]\n"
            .replace("GATE", &gate),
    )
    .commit("gated");
    let (dir, remote) = (site.dir.clone(), hoistd.remote("re1"));
    let pusher = std::thread::spawn(move || WorkTree { dir }.push(&remote, "main"));
    wait_for("the build to run", Duration::from_secs(60), || {
        let (_, body) = hoistd.get("/api/v1/apps/re1/builds/1");
        body.contains("\"building\"").then_some(())
    });
    let (status, body) = hoistd.call("DELETE", "/api/v1/apps/re1", None);
    assert_eq!(status, 204, "{body}");
    hoistd.create_app("re1");
    open_gate(&gate);

    let push = pusher.join().unwrap();
    let output = text(&push);
    assert!(!push.status.success(), "{output}");
    assert!(output.contains("app re1 was deleted during this build; nothing was deployed"), "{output}");
    let releases = hoistd.get_json("/api/v1/apps/re1/releases");
    assert_eq!(releases, serde_json::json!([]), "the new app has no release of the old one's build");
    let (status, page) = hoistd.visit("re1", "/");
    assert_eq!(status, 404, "{page}");
    // The old repo waited for its push (git works in it) and is removed once it ended.
    let retired = hoistd.dir.join("data/repos/.deleted");
    wait_for("the deleted app's repo to be removed", Duration::from_secs(10), || {
        std::fs::read_dir(&retired).map_or(true, |mut entries| entries.next().is_none()).then_some(())
    });
    assert!(hoistd.dir.join("data/repos/re1.git/hooks/pre-receive").exists(), "the new app's repo is its own");
}

#[test]
fn a_push_that_unpacks_past_the_limits_is_refused_before_anything_is_inflated() {
    let hoistd = Hoistd::start(&[("HOIST_MAX_FILE_MB", "50"), ("HOIST_MAX_PUSH_MB", "80")]);
    hoistd.create_app("bomb");
    let site = WorkTree::new(&hoistd, "bomb", Some("static-site"));
    site.commit("site");
    assert!(site.push(&hoistd.remote("bomb"), "main").status.success());

    // 200 MB of zeros packs to a few hundred KB: a zip bomb for anything that inflates it.
    let zeros = std::fs::File::create(site.dir.join("zeros.bin")).unwrap();
    zeros.set_len(200 * 1024 * 1024).unwrap();
    site.commit("zeros");
    let push = site.push(&hoistd.remote("bomb"), "main");
    let output = text(&push);
    assert!(!push.status.success(), "{output}");
    assert!(output.contains("zeros.bin is 200.0 MiB unpacked; a file may be at most 50.0 MiB"), "{output}");

    // Many files under the per-file limit, together past the total.
    site.remove("zeros.bin");
    for i in 0..3 {
        let file = std::fs::File::create(site.dir.join(format!("part{i}.bin"))).unwrap();
        file.set_len(40 * 1024 * 1024).unwrap();
    }
    site.commit("parts");
    let push = site.push(&hoistd.remote("bomb"), "main");
    let output = text(&push);
    assert!(!push.status.success(), "{output}");
    assert!(output.contains("more than 80.0 MiB unpacked (receive.max_push_mb)"), "{output}");
    assert!(hoistd.visit("bomb", "/").1.contains("Hello from hoist"), "the running release is untouched");
    assert_eq!(hoistd.get_json("/api/v1/apps/bomb/builds").as_array().unwrap().len(), 1, "nothing was built");
}
