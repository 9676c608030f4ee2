//! Hostile input, as an attacker or a careless user sends it: each gets a 4xx or a
//! failed build with a message, hoistd stays up, and other apps are untouched.

use hoist_tests::{show, Hoistd, WorkTree};
use std::process::Command;

fn git(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@hoist.invalid"])
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "git {args:?}\n{}", show(&output));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn crafted_trees_symlinks_out_of_the_tree_and_many_refs_are_handled() {
    let hoistd = Hoistd::start(&[]);
    hoistd.deploy_bystander();

    // A tree entry named `..`, made with git's own plumbing (a checkout would refuse it).
    hoistd.create_app("crafted");
    let site = WorkTree::new(&hoistd, "crafted", Some("static-site"));
    site.commit("first");
    let blob = git(&site.dir, &["hash-object", "-w", "--stdin"], Some("escape\n"));
    let index = git(&site.dir, &["rev-parse", "HEAD:index.html"], None);
    let tree = git(&site.dir, &["mktree"], Some(&format!("100644 blob {blob}\t..\n100644 blob {index}\tindex.html\n")));
    let commit = git(&site.dir, &["commit-tree", &tree, "-m", "crafted"], None);
    git(&site.dir, &["update-ref", "refs/heads/main", &commit], None);
    let push = site.push(&hoistd.remote("crafted"), "main");
    let stderr = String::from_utf8_lossy(&push.stderr);
    assert!(!push.status.success(), "a tree with `..` is refused\n{}", show(&push));
    assert!(stderr.contains("has an entry named \"..\""), "{stderr}");
    assert!(hoistd.get_json("/api/v1/apps/crafted")["live_release"].is_null());

    // Symlinks pointing outside the tree resolve inside the container, never on the host.
    let secret = format!("host-secret-{}", std::process::id());
    let host_file = std::env::temp_dir().join(format!("hoist-hostile-{}", std::process::id()));
    std::fs::write(&host_file, &secret).unwrap();
    hoistd.create_app("links");
    let site = WorkTree::new(&hoistd, "links", Some("static-site"));
    std::os::unix::fs::symlink(&host_file, site.dir.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc/hostname", site.dir.join("up.txt")).unwrap();
    site.commit("links");
    let push = site.push(&hoistd.remote("links"), "main");
    assert!(push.status.success(), "symlinks are files like any other\n{}", show(&push));
    let (_, leaked) = hoistd.visit("links", "/leak.txt");
    assert!(!leaked.contains(&secret), "a host file reached the app: {leaked}");
    let _ = std::fs::remove_file(&host_file);

    // 2,500 refs in one push: stored, and the deploy branch still deploys. Not more: git's
    // own client over HTTP (`send-pack --stateless-rpc`, git 2.39) spends time that grows
    // with the square of the refs, 45 s of CPU for 10,000 (2.6 s for 2,500), against
    // 0.75 s for 10,000 pushed to a plain repo on disk; hoistd's part is the same.
    hoistd.create_app("manyrefs");
    let site = WorkTree::new(&hoistd, "manyrefs", Some("static-site"));
    site.commit("first");
    let head = git(&site.dir, &["rev-parse", "HEAD"], None);
    let refs: String = (0..2_500).map(|i| format!("create refs/tags/t{i} {head}\n")).collect();
    git(&site.dir, &["update-ref", "--stdin"], Some(&refs));
    let push = site.git_may_fail(&["push", &hoistd.remote("manyrefs"), "main", "--tags"]);
    assert!(push.status.success(), "{}", show(&push));
    // The tags are counted, not named one by one.
    let stderr = String::from_utf8_lossy(&push.stderr);
    assert!(stderr.contains("and 2490 more refs stored or deleted; only main deploys"), "{}", show(&push));
    assert!(stderr.matches("stored; only main deploys").count() <= 11, "{}", show(&push));
    assert_eq!(hoistd.visit("manyrefs", "/").0, 200);
    hoistd.bystander_serves();
}

#[test]
fn huge_bodies_and_builds_that_leave_processes_behind_are_contained() {
    // Builders are kept 15 s after a build (build.warm_secs), so that this test sees one go.
    let hoistd = Hoistd::start(&[("HOIST_BUILD_WARM_SECS", "15")]);
    hoistd.deploy_bystander();

    // A 50 MB JSON body: refused with JSON, before it is read whole.
    let body = hoistd.dir.join("big.json");
    std::fs::write(&body, format!("{{\"name\": \"{}\"}}", "a".repeat(50 * 1024 * 1024))).unwrap();
    // hoistd answers and closes while curl is still sending; the kernel may then reset the
    // connection before curl reads the answer (curl reports the 100 Continue it saw), so a
    // few tries: one must read the refusal.
    let refused = |answer: &str| answer.ends_with("\n413") && answer.starts_with("{\"error\":");
    let mut answers = Vec::new();
    for _ in 0..3 {
        let curl = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", "-H", &format!("Authorization: Bearer {}", hoistd.token)])
            .args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(format!("@{}", body.display()))
            .arg(format!("{}/api/v1/apps", hoistd.api_url()))
            .output()
            .unwrap();
        answers.push(String::from_utf8_lossy(&curl.stdout).to_string());
        if answers.last().is_some_and(|answer| refused(answer)) {
            break;
        }
    }
    assert!(refused(answers.last().unwrap()), "{answers:?}");

    // An assemble that leaves a process running: the build ends; the processes stay in the
    // app's builder, kept for its next build, and go with it when no build comes.
    hoistd.create_app("forker");
    let site = WorkTree::new(&hoistd, "forker", Some("static-site"));
    site.write(
        ".s2i/bin/assemble",
        "#!/bin/sh\nset -e\n(sleep 600 &) ; nohup sleep 600 >/dev/null 2>&1 &\nmkdir -p /app && cp -r /workspace/source/. /app/\necho left two sleepers behind\n",
    );
    Command::new("chmod").arg("+x").arg(site.dir.join(".s2i/bin/assemble")).status().unwrap();
    site.commit("forker");
    let push = site.push(&hoistd.remote("forker"), "main");
    assert!(push.status.success(), "{}", show(&push));
    assert!(String::from_utf8_lossy(&push.stderr).contains("left two sleepers behind"));
    let builders = || {
        let ps = Command::new(hoist_tests::DOCKER)
            .args(["ps", "-aq", "--filter", &format!("label=org.hoist.instance={}", hoistd.instance)])
            .args(["--filter", "label=org.hoist.role=builder"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&ps.stdout).split_whitespace().map(str::to_string).collect::<Vec<_>>()
    };
    let kept = builders();
    assert_eq!(kept.len(), 1, "the app's builder is kept for its next build: {kept:?}");
    let top = Command::new(hoist_tests::DOCKER).args(["top", &kept[0]]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&top.stdout).matches("sleep 600").count(), 2, "{}", show(&top));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(45);
    while !builders().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the builder is removed 15 s after its build: {:?}", builders());
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    hoistd.bystander_serves();
    assert_eq!(hoistd.get("/api/v1/apps").0, 200, "hoistd is still up");
}
