//! hoistd killed with SIGKILL in the middle of a build, then started again.

use hoist_tests::{show, wait_for, Hoistd, WorkTree};
use std::time::Duration;

#[test]
fn killed_mid_build_the_build_is_interrupted_and_the_app_keeps_serving() {
    let mut hoistd = Hoistd::start(&[]);
    hoistd.create_app("web1");
    let site = WorkTree::new(&hoistd, "web1", Some("dockerfile-site"));
    site.commit("first");
    let push = site.push(&hoistd.remote("web1"), "main");
    assert!(push.status.success(), "{}", show(&push));

    site.write("Dockerfile", "FROM hoist/stack-base:run\nRUN echo slow build started && sleep 120\n").commit("slow");
    let remote = hoistd.remote("web1");
    let dir = site.dir.clone();
    let pusher = std::thread::spawn(move || WorkTree { dir }.push(&remote, "main"));
    wait_for("build 2 to be running", Duration::from_secs(60), || {
        let builds = hoistd.get_json("/api/v1/apps/web1/builds");
        (builds[0]["id"] == 2 && builds[0]["status"] == "building").then_some(())
    });
    wait_for("the slow step to start", Duration::from_secs(60), || {
        let (_, log) = hoistd.get("/api/v1/apps/web1/builds/2/log");
        log.contains("slow build started").then_some(())
    });
    hoistd.kill9();
    let push = pusher.join().unwrap();
    assert!(!push.status.success(), "a push whose build was cut off must not succeed\n{}", show(&push));
    // While hoistd is down the app's container keeps running (the router is down with it).
    let label = format!("label=org.hoist.instance={}", hoistd.instance);
    let running = std::process::Command::new(hoist_tests::DOCKER)
        .args(["ps", "-q", "--filter", &label, "--filter", "label=org.hoist.role=release"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&running.stdout).lines().count(), 1, "release 1 runs on");

    hoistd.restart();
    let build = hoistd.get_json("/api/v1/apps/web1/builds/2");
    assert_eq!(build["status"], "interrupted", "{build}");
    let (_, log) = hoistd.get("/api/v1/apps/web1/builds/2/log");
    assert!(log.trim_end().ends_with("Interrupted: hoistd stopped during this build; push again"), "{log}");
    let releases = hoistd.get_json("/api/v1/apps/web1/releases");
    assert_eq!(releases.as_array().unwrap().len(), 1, "{releases}");
    assert_eq!(releases[0]["status"], "live");
    let (status, page) = hoistd.visit("web1", "/");
    assert_eq!(status, 200, "the route to the live release is restored\n{page}");
    assert!(page.contains("Built from a Dockerfile"), "{page}");

    // And the app takes pushes again.
    site.write("Dockerfile", "FROM hoist/stack-base:run\nRUN mkdir /www && echo '<h1>after restart</h1>' > /www/index.html\nCMD [\"sh\", \"-c\", \"exec busybox httpd -f -p $PORT -h /www\"]\n")
        .commit("fixed");
    let push = site.push(&hoistd.remote("web1"), "main");
    assert!(push.status.success(), "{}", show(&push));
    assert!(hoistd.visit("web1", "/").1.contains("after restart"));
    assert_eq!(hoistd.get_json("/api/v1/apps/web1/releases")[0]["number"], 2);
}

#[test]
fn a_restart_removes_what_a_kill_left_behind_and_state_is_private() {
    let mut hoistd = Hoistd::start(&[]);
    hoistd.create_app("left");
    let site = WorkTree::new(&hoistd, "left", Some("static-site"));
    site.commit("first");
    assert!(site.push(&hoistd.remote("left"), "main").status.success());
    site.write("index.html", "<h1>second</h1>\n").commit("second");
    assert!(site.push(&hoistd.remote("left"), "main").status.success());

    // What a kill -9 between the switch and the retiring leaves: release 1's container,
    // exited; and a push cut off mid-receive leaves git's quarantine directory.
    let name = format!("{}-left-r1", hoistd.instance);
    wait_for("release 1's container to be retired", Duration::from_secs(30), || {
        let inspect = std::process::Command::new(hoist_tests::DOCKER).args(["inspect", &name]).output().unwrap();
        (!inspect.status.success()).then_some(())
    });
    let labels = [
        format!("org.hoist.instance={}", hoistd.instance),
        "org.hoist.app=left".to_string(),
        "org.hoist.role=release".to_string(),
        "org.hoist.release=1".to_string(),
    ];
    let mut create = std::process::Command::new(hoist_tests::DOCKER);
    create.args(["create", "--name", &name]);
    for label in &labels {
        create.args(["--label", label]);
    }
    let created = create.args(["hoist/stack-base:run", "true"]).output().unwrap();
    assert!(created.status.success(), "{}", show(&created));
    let quarantine = hoistd.dir.join("data/repos/left.git/objects/tmp_objdir-incoming-cutoff");
    std::fs::create_dir_all(&quarantine).unwrap();

    hoistd.restart();
    let inspect = std::process::Command::new(hoist_tests::DOCKER).args(["inspect", &name]).output().unwrap();
    assert!(!inspect.status.success(), "the leftover release container is removed");
    assert!(!quarantine.exists(), "the cut-off push's quarantine is removed");
    assert!(hoistd.visit("left", "/").1.contains("second"), "release 2 serves on");

    // The bare repo's HEAD is the deploy branch, so a clone checks it out without a warning.
    let head = std::process::Command::new("git")
        .args(["symbolic-ref", "HEAD"])
        .current_dir(hoistd.dir.join("data/repos/left.git"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&head.stdout).trim(), "refs/heads/main");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(hoistd.dir.join("data")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the data dir holds tokens and config values");
}
