//! `hoist dev` against a live hoistd: the CLI watches a working tree (the `notify`
//! crate, real file writes) and deploys each save through the real build and rollout.

use hoist_tests::{binary, wait_for, Cluster, Hoistd, WorkTree};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running `hoist dev` and everything it printed so far.
struct Dev {
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Dev {
    fn start(hoistd: &Hoistd, dir: &std::path::Path, args: &[&str]) -> Dev {
        let mut child = Command::new(binary("hoist"))
            .arg("dev")
            .args(args)
            .arg("--dir")
            .arg(dir)
            .env("HOIST_URL", hoistd.api_url())
            .env("HOIST_TOKEN", &hoistd.token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap().push_str(&format!("{line}\n"));
                }
            });
        }
        Dev { child, output }
    }

    fn text(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until the output holds `wanted`.
    fn wait_for(&self, what: &str, wanted: &str, secs: u64) {
        let started = std::time::Instant::now();
        while !self.text().contains(wanted) {
            assert!(
                started.elapsed() < Duration::from_secs(secs),
                "gave up waiting {secs} s for {what} ({wanted:?}); hoist dev said:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Builds started and syncs made.
    fn deploys(&self) -> usize {
        self.text().lines().filter(|l| l.starts_with("[dev]") && l.contains(" → ")).count()
    }

    /// Ctrl-C, as a terminal sends it; the exit status.
    fn interrupt(mut self) -> (std::process::ExitStatus, String) {
        Command::new("kill").args(["-INT", &self.child.id().to_string()]).status().unwrap();
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        (status, self.text())
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn hoist_dev_deploys_each_save_of_a_working_tree_and_keeps_the_last_good_release() {
    let hoistd = Hoistd::start(&[]);
    // A working tree, never committed, with a file git would not add.
    let tree = WorkTree::new(&hoistd, "devsite", Some("static-site"));
    tree.write(".gitignore", "notes.txt\n").write("index.html", "<h1>one</h1>\n");
    let dev = Dev::start(&hoistd, &tree.dir, &["devsite", "--create", "--debounce-ms", "300"]);
    dev.wait_for("the first deploy", "build 1 live", 120);
    assert!(dev.text().contains("created app devsite"), "{}", dev.text());
    assert!(hoistd.visit("devsite", "/").1.contains("one"));

    // A save is live; only the changed file travels, and a static site's file is synced
    // into the running release without a build.
    tree.write("index.html", "<h1>two</h1>\n");
    dev.wait_for("the edit", "index.html changed → synced into release 1 without a build", 60);
    assert!(hoistd.visit("devsite", "/").1.contains("two"));
    let text = dev.text();
    let line = text.lines().find(|l| l.contains("index.html changed →")).unwrap();
    assert!(line.contains("(1 of 2 files sent, 13 B;"), "{text}");

    // A file git ignores deploys nothing; five saves inside the debounce window deploy once.
    tree.write("notes.txt", "scratch\n");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(dev.deploys(), 2, "an ignored file deployed\n{}", dev.text());
    for i in 0..5 {
        tree.write("index.html", &format!("<h1>burst {i}</h1>\n"));
        std::thread::sleep(Duration::from_millis(40));
    }
    wait_for("the burst", Duration::from_secs(30), || hoistd.visit("devsite", "/").1.contains("burst 4").then_some(()));
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(dev.deploys(), 3, "five saves, one deploy\n{}", dev.text());

    // A build input (here a broken assemble) builds: the failure is shown, the last good
    // release serves, and the next good save goes live.
    tree.write(".s2i/bin/assemble", "#!/bin/sh\necho broken on purpose >&2\nexit 1\n");
    Command::new("chmod").arg("+x").arg(tree.dir.join(".s2i/bin/assemble")).status().unwrap();
    dev.wait_for("the failure", "build 2 failed", 60);
    assert!(dev.text().contains("broken on purpose"), "{}", dev.text());
    assert!(hoistd.visit("devsite", "/").1.contains("burst 4"), "the last good release serves");
    tree.remove(".s2i/bin/assemble");
    tree.write("index.html", "<h1>fixed</h1>\n");
    dev.wait_for("the fix", "build 3 live", 60);
    assert!(hoistd.visit("devsite", "/").1.contains("fixed"));

    // A dev build is never promoted.
    let promote = hoistd.cli_may_fail(&["images", "promote", "devsite", "latest", "stable"]);
    assert_ne!(promote.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&promote.stderr).contains("working tree (hoist dev), which is never promoted"),
        "{}",
        hoist_tests::show(&promote)
    );

    // Ctrl-C stops watching; the app keeps running.
    let (status, text) = dev.interrupt();
    assert!(status.success(), "{status}\n{text}");
    assert!(text.contains("app devsite keeps running"), "{text}");
    assert!(hoistd.visit("devsite", "/").1.contains("fixed"));

    // Again with --down: nothing to send (hoistd has every content), then the app goes.
    let dev = Dev::start(&hoistd, &tree.dir, &["devsite", "--down"]);
    dev.wait_for("the second session's deploy", "build 4 live", 60);
    assert!(dev.text().contains("(0 of 2 files sent, 0 B;"), "{}", dev.text());
    let (status, text) = dev.interrupt();
    assert!(status.success() && text.contains("removed (--down)"), "{text}");
    let apps = hoistd.get_json("/api/v1/apps");
    assert!(apps.as_array().unwrap().iter().all(|a| a["name"] != "devsite"), "{apps}");
}

#[test]
fn an_app_that_asks_for_sync_and_a_signal_reloads_without_a_build() {
    let hoistd = Hoistd::start(&[]);
    // gunicorn reloads its workers, with the code as it is now, on HUP.
    let tree = WorkTree::new(&hoistd, "devpy", None);
    tree.write("requirements.txt", "gunicorn==23.0.0\n")
        .write("greeting.py", "TEXT = 'first'\n")
        .write(
            "app.py",
            "import greeting\n\ndef app(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [f'{greeting.TEXT}\\n'.encode()]\n",
        )
        .write("Procfile", "web: gunicorn app:app\n")
        .write(".hoist/dev.toml", "sync = true\nsignal = \"HUP\"\n");
    let dev = Dev::start(&hoistd, &tree.dir, &["devpy", "--create", "--debounce-ms", "200"]);
    dev.wait_for("the first deploy", "build 1 live", 300);
    assert_eq!(hoistd.visit("devpy", "/").1, "first\n");
    tree.write("greeting.py", "TEXT = 'second'\n");
    dev.wait_for("the sync", "greeting.py changed → synced into release 1 without a build", 60);
    wait_for("gunicorn's new workers", Duration::from_secs(20), || {
        (hoistd.visit("devpy", "/").1 == "second\n").then_some(())
    });
    // A change of the same size: Python's cached bytecode is checked by the source's
    // mtime and size, so a synced file must be newer than the cache.
    tree.write("greeting.py", "TEXT = 'Second'\n");
    wait_for("the same-size change", Duration::from_secs(20), || {
        (hoistd.visit("devpy", "/").1 == "Second\n").then_some(())
    });
    let (status, text) = dev.interrupt();
    assert!(status.success(), "{text}");
}

#[test]
fn hoist_dev_on_the_kubernetes_target_builds_and_syncs_into_the_pods() {
    let cluster = Cluster::connect();
    let hoistd = Hoistd::start_with(&cluster.hoistd_settings(60));
    let tree = WorkTree::new(&hoistd, "kube-dev", Some("static-site"));
    tree.write("index.html", "<h1>in the cluster</h1>\n");
    let dev = Dev::start(&hoistd, &tree.dir, &["kube-dev", "--create", "--debounce-ms", "200"]);
    dev.wait_for("the first deploy", "build 1 live", 180);
    assert!(hoistd.visit("kube-dev", "/").1.contains("in the cluster"));
    // A save goes into the running pod through the API server's exec.
    tree.write("index.html", "<h1>synced into the pod</h1>\n");
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        dev.wait_for("the sync", "synced into release 1 without a build", 60)
    }))
    .is_err()
    {
        panic!("no sync\n{}\n{}", dev.text(), hoistd.log_tail(40));
    }
    wait_for("the synced page", Duration::from_secs(10), || {
        hoistd.visit("kube-dev", "/").1.contains("synced into the pod").then_some(())
    });
    let (status, text) = dev.interrupt();
    assert!(status.success(), "{text}");
}
