//! The harness of hoist's integration tests (in the manner of ripgrep's `tests/util.rs`):
//! a fresh temp dir per test, a real hoistd on free ports with its own real registry,
//! the real `git` client, and on failure a report with the daemon's log tail.
//!
//! Tests need what `tests/env/up` installs and starts (dockerd, docker-registry, the
//! stack images). A test that finds them missing fails and says so.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Debian's docker client (the newer one in /usr/local/bin lacks buildx).
pub const DOCKER: &str = "/usr/bin/docker";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The directory of the workspace's binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    // target/debug/deps/it-<hash> → target/debug
    exe.parent().and_then(Path::parent).expect("test binary lives in target/<profile>/deps").to_path_buf()
}

/// Path of a workspace binary, checked to exist.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (tests/run does)",
        path.display()
    );
    path
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn check_environment() {
    let docker = Command::new(DOCKER).args(["version", "--format", "{{.Server.Version}}"]).output();
    let docker_ok = matches!(&docker, Ok(out) if out.status.success());
    assert!(docker_ok, "dockerd does not answer: run tests/env/up first (it installs and starts it)\n{docker:?}");
    let registry = Command::new("docker-registry").arg("--version").output();
    assert!(registry.is_ok(), "docker-registry is not installed: run tests/env/up first");
    ensure_base_stack();
}

/// Makes the base stack (`hoist/stack-base:build|run`, which test Dockerfiles start
/// `FROM`) once per test run, the way hoistd makes every stack.
pub fn ensure_base_stack() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let output = Command::new(binary("hoistd")).args(["stacks", "prepare", "base"]).output().unwrap();
        assert!(output.status.success(), "hoistd stacks prepare base failed\n{}", show(&output));
    });
}

/// A running hoistd of one test.
pub struct Hoistd {
    pub dir: PathBuf,
    pub instance: String,
    pub api_port: u16,
    pub router_port: u16,
    pub registry_port: u16,
    /// Where git over SSH listens.
    pub ssh_port: u16,
    pub token: String,
    /// The hoistd program this test runs (the workspace's, unless the test copied it).
    program: PathBuf,
    child: Option<Child>,
    http: reqwest::blocking::Client,
}

impl Hoistd {
    /// Starts a fresh hoistd in a new temp dir. `env` adds HOIST_* settings.
    pub fn start(env: &[(&str, &str)]) -> Hoistd {
        Hoistd::start_program(binary("hoistd"), env)
    }

    /// Starts a hoistd with settings given as owned pairs (e.g. [`Cluster::hoistd_settings`]).
    pub fn start_with(env: &[(String, String)]) -> Hoistd {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Hoistd::start(&env)
    }

    /// Starts `program` (a copy of hoistd, say) the way [`Hoistd::start`] starts hoistd.
    pub fn start_program(program: PathBuf, env: &[(&str, &str)]) -> Hoistd {
        // reqwest is built without a TLS crypto provider of its own in this workspace.
        let _ = rustls::crypto::ring::default_provider().install_default();
        check_environment();
        let instance = format!("t{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let dir = std::env::temp_dir().join(format!("hoist-it-{instance}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut config = String::new();
        for (key, value) in env {
            config.push_str(&format!("{key}={value}\n"));
        }
        std::fs::write(dir.join("env"), config).unwrap();
        let mut hoistd = Hoistd {
            dir,
            instance,
            // 0: hoistd binds (or, for its registry, picks) a free port itself and writes
            // it to `data/listening`, so two tests never race for one.
            api_port: 0,
            router_port: 0,
            registry_port: 0,
            ssh_port: 0,
            token: String::new(),
            program,
            child: None,
            http: reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        };
        hoistd.spawn();
        hoistd
    }

    fn spawn(&mut self) {
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("hoistd.log")).unwrap();
        let stdout = stderr.try_clone().unwrap();
        let mut command = Command::new(&self.program);
        command
            .env("HOIST_DATA_DIR", self.dir.join("data"))
            .env("HOIST_API_ADDR", format!("127.0.0.1:{}", self.api_port))
            .env("HOIST_ROUTER_ADDR", format!("127.0.0.1:{}", self.router_port))
            .env("HOIST_REGISTRY_ADDR", format!("127.0.0.1:{}", self.registry_port))
            .env("HOIST_SSH_ADDR", format!("127.0.0.1:{}", self.ssh_port))
            .env("HOIST_INSTANCE", &self.instance)
            .env("HOIST_LOG", "info,hoist=debug")
            // The tests' Git hosts and registries run on this machine; hostile tests set
            // it back to false to see local URLs refused.
            .env("HOIST_ALLOW_LOCAL_URLS", "true")
            // Every successful push waits out the settling period (5 s by default): 2 s
            // here keeps settling in every rollout the tests make and shortens the run;
            // a test of what happens while settling sets its own.
            .env("HOIST_SETTLE_SECS", "2")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let env = std::fs::read_to_string(self.dir.join("env")).unwrap();
        for line in env.lines() {
            if let Some((key, value)) = line.split_once('=') {
                command.env(key, value);
            }
        }
        self.child = Some(command.spawn().expect("hoistd starts"));
        let deadline = Instant::now() + Duration::from_secs(30);
        // The ports it got (a restart asks for the same ones again).
        let listening = self.dir.join("data/listening");
        loop {
            if let Ok(text) = std::fs::read_to_string(&listening) {
                let addresses: serde_json::Value = serde_json::from_str(&text).expect("data/listening is JSON");
                let port = |key: &str| -> u16 {
                    addresses[key].as_str().and_then(|a| a.rsplit(':').next()).and_then(|p| p.parse().ok()).unwrap()
                };
                (self.api_port, self.router_port, self.registry_port) = (port("api"), port("router"), port("registry"));
                self.ssh_port = port("ssh");
                break;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("hoistd exited with {status} while starting\n{}", self.log_tail(40));
            }
            assert!(
                Instant::now() < deadline,
                "hoistd did not write data/listening within 30 s\n{}",
                self.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let token_path = self.dir.join("data/admin-token");
        loop {
            if let Ok(token) = std::fs::read_to_string(&token_path) {
                self.token = token.trim().to_string();
                let ready = match self.tls_cert() {
                    // HTTPS: curl, trusting the test's own certificate.
                    Some(cert) => Command::new("curl")
                        .args(["-sf", "-o", "/dev/null", "--cacert"])
                        .arg(&cert)
                        .args(["-H", &format!("Authorization: Bearer {}", self.token)])
                        .arg(format!("{}/api/v1/apps", self.api_url()))
                        .status()
                        .is_ok_and(|s| s.success()),
                    None => {
                        let probe =
                            self.http.get(format!("{}/api/v1/apps", self.api_url())).bearer_auth(&self.token).send();
                        matches!(probe, Ok(response) if response.status() == 200)
                    }
                };
                if ready {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("hoistd exited with {status} while starting\n{}", self.log_tail(40));
            }
            assert!(Instant::now() < deadline, "hoistd did not answer within 30 s\n{}", self.log_tail(40));
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: no chance to clean up, like a crash or an OOM kill.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Starts hoistd again on the same data dir and ports.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn api_url(&self) -> String {
        let scheme = if self.tls_cert().is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.api_port)
    }

    /// The certificate this hoistd serves HTTPS with, when the test gave it one.
    pub fn tls_cert(&self) -> Option<PathBuf> {
        let env = std::fs::read_to_string(self.dir.join("env")).unwrap_or_default();
        env.lines().find_map(|l| l.strip_prefix("HOIST_TLS_CERT=")).map(PathBuf::from)
    }

    /// The git remote of `app`, with the admin token as password.
    pub fn remote(&self, app: &str) -> String {
        format!("http://hoist:{}@127.0.0.1:{}/git/{app}.git", self.token, self.api_port)
    }

    /// An API call with the admin token: (status, body).
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        self.call_as(Some(&self.token), method, path, body)
    }

    /// An API call with the given token, or none.
    pub fn call_as(&self, token: Option<&str>, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.api_url()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        let response = request.send().unwrap_or_else(|e| panic!("{path}: {e}\n{}", self.log_tail(30)));
        (response.status().as_u16(), response.text().unwrap())
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        self.call("GET", path, None)
    }

    /// GET that must succeed, parsed as JSON.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}\n{}", self.log_tail(30));
        serde_json::from_str(&body).unwrap()
    }

    /// Runs the `hoist` CLI against this hoistd; fails the test if it fails.
    pub fn cli(&self, args: &[&str]) -> Output {
        let output = self.cli_may_fail(args);
        assert!(output.status.success(), "hoist {args:?} failed\n{}", show(&output));
        output
    }

    /// Runs the `hoist` CLI against this hoistd, whatever it answers.
    pub fn cli_may_fail(&self, args: &[&str]) -> Output {
        self.cli_as(&self.token, args)
    }

    /// Runs the `hoist` CLI with `token` (a user's, say), whatever it answers.
    pub fn cli_as(&self, token: &str, args: &[&str]) -> Output {
        Command::new(binary("hoist"))
            .args(args)
            .env("HOIST_URL", self.api_url())
            .env("HOIST_TOKEN", token)
            .output()
            .unwrap()
    }

    /// Runs the `hoist` CLI with `input` on its stdin, whatever it answers.
    pub fn cli_with_input(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(binary("hoist"))
            .args(args)
            .env("HOIST_URL", self.api_url())
            .env("HOIST_TOKEN", &self.token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs the `hoist` CLI on a terminal (util-linux's `script` gives it a pty): its
    /// output as the terminal showed it, and its exit status.
    pub fn cli_on_terminal(&self, args: &[&str]) -> Output {
        let line = std::iter::once(binary("hoist").display().to_string())
            .chain(args.iter().map(|a| format!("'{}'", a.replace('\'', "'\\''"))))
            .collect::<Vec<_>>()
            .join(" ");
        Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .env("HOIST_URL", self.api_url())
            .env("HOIST_TOKEN", &self.token)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub fn create_app(&self, name: &str) {
        let output = self.cli(&["apps", "create", name]);
        assert!(String::from_utf8_lossy(&output.stdout).contains("created app"), "{}", show(&output));
    }

    /// GET `http://<app>.localhost:<router>/path` through hoistd's router: (status, body).
    pub fn visit(&self, app: &str, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("http://127.0.0.1:{}{path}", self.router_port))
            .header("host", format!("{app}.localhost:{}", self.router_port))
            .send()
            .unwrap_or_else(|e| panic!("router: {e}\n{}", self.log_tail(30)));
        (response.status().as_u16(), response.text().unwrap())
    }

    /// Deploys a static site, `bystander`: another app that must keep serving through
    /// whatever a test throws at this hoistd.
    pub fn deploy_bystander(&self) {
        self.create_app("bystander");
        let site = WorkTree::new(self, "bystander", Some("static-site"));
        site.commit("first");
        let push = site.push(&self.remote("bystander"), "main");
        assert!(push.status.success(), "{}", show(&push));
    }

    /// The bystander still serves, and hoistd still answers.
    pub fn bystander_serves(&self) {
        let (status, page) = self.visit("bystander", "/");
        assert_eq!(status, 200, "the other app keeps serving: {page}");
        assert_eq!(self.get("/api/v1/apps").0, 200, "hoistd is still up");
    }

    /// The ids of the app's running release containers (not its builder), by hoist's labels.
    pub fn running_containers(&self, app: &str) -> Vec<String> {
        self.running_containers_in_role(app, "release")
    }

    /// The ids of the app's running containers of one role (`release`, `builder`, …).
    pub fn running_containers_in_role(&self, app: &str, role: &str) -> Vec<String> {
        let ps = Command::new(DOCKER)
            .args(["ps", "-q", "--filter", &format!("label=org.hoist.instance={}", self.instance)])
            .args(["--filter", &format!("label=org.hoist.app={app}")])
            .args(["--filter", &format!("label=org.hoist.role={role}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&ps.stdout).split_whitespace().map(str::to_string).collect()
    }

    /// The password of hoistd's registry account (user `hoist`), as hoistd keeps it.
    pub fn registry_password(&self) -> String {
        std::fs::read_to_string(self.dir.join("data/registry/password")).unwrap().trim().to_string()
    }

    /// The last `n` lines of hoistd's own log (stdout and stderr).
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("hoistd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!("--- hoistd log (last {n} lines) ---\n{}", lines[lines.len().saturating_sub(n)..].join("\n"))
    }
}

impl Drop for Hoistd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail(80));
            let registry = std::fs::read_to_string(self.dir.join("data/registry/registry.log")).unwrap_or_default();
            let lines: Vec<&str> = registry.lines().collect();
            eprintln!("--- registry log (last 10 lines) ---\n{}", lines[lines.len().saturating_sub(10)..].join("\n"));
        }
        self.kill9();
        // The registry dies with hoistd only on a clean stop; stop it through its pid file.
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("data/registry/registry.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let label = format!("label=org.hoist.instance={}", self.instance);
        let ids = Command::new(DOCKER).args(["ps", "-aq", "--filter", &label]).output().unwrap();
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = Command::new(DOCKER).args(["rm", "-f", "-v", id]).output();
        }
        // The images of its registry that dockerd holds (built, pulled by digest): left,
        // they would pile up run after run. Removed by name, so an image that another name
        // holds too (a stack's) only loses this one.
        let images = Command::new(DOCKER)
            .args(["images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}"])
            .output()
            .unwrap();
        let prefix = format!("127.0.0.1:{}/", self.registry_port);
        let names: Vec<String> = String::from_utf8_lossy(&images.stdout)
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let (repository, tag, digest) = (fields.next()?, fields.next()?, fields.next()?);
                repository.starts_with(&prefix).then(|| match tag {
                    "<none>" => format!("{repository}@{digest}"),
                    _ => format!("{repository}:{tag}"),
                })
            })
            .collect();
        if !names.is_empty() {
            let _ = Command::new(DOCKER).arg("rmi").arg("-f").args(&names).output();
        }
        let volumes = Command::new(DOCKER)
            .args(["volume", "ls", "-q", "--filter", &format!("name={}-cache-", self.instance)])
            .output()
            .unwrap();
        for volume in String::from_utf8_lossy(&volumes.stdout).split_whitespace() {
            let _ = Command::new(DOCKER).args(["volume", "rm", "-f", volume]).output();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A command's exit status and output, for failure messages.
pub fn show(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A local git working copy of a test app.
pub struct WorkTree {
    pub dir: PathBuf,
}

impl WorkTree {
    /// A new repo on branch main holding a copy of `examples/<example>` (or nothing).
    pub fn new(hoistd: &Hoistd, name: &str, example: Option<&str>) -> WorkTree {
        let dir = hoistd.dir.join("src").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(example) = example {
            let from = repo_root().join("examples").join(example);
            let status = Command::new("cp").arg("-a").arg(format!("{}/.", from.display())).arg(&dir).status().unwrap();
            assert!(status.success());
        }
        let tree = WorkTree { dir };
        tree.git(&["init", "-q", "-b", "main"]);
        tree
    }

    pub fn write(&self, path: &str, text: &str) -> &Self {
        let path = self.dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    pub fn remove(&self, path: &str) -> &Self {
        std::fs::remove_file(self.dir.join(path)).unwrap();
        self
    }

    /// Runs git; panics with its output when it fails.
    pub fn git(&self, args: &[&str]) -> Output {
        let output = self.git_may_fail(args);
        assert!(output.status.success(), "git {args:?} failed\n{}", show(&output));
        output
    }

    /// Runs git and returns whatever happened.
    pub fn git_may_fail(&self, args: &[&str]) -> Output {
        Command::new("git")
            .args(["-c", "user.name=hoist-test", "-c", "user.email=test@hoist.invalid"])
            .args(args)
            .current_dir(&self.dir)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "/bin/true")
            .output()
            .unwrap()
    }

    pub fn commit(&self, message: &str) -> &Self {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self
    }

    /// `git push <remote> <refspec>`, whatever happens.
    pub fn push(&self, remote: &str, refspec: &str) -> Output {
        self.git_may_fail(&["push", remote, refspec])
    }
}

/// Polls `check` every 200 ms until it returns Some, or panics after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting {timeout:?} for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The Kubernetes test cluster that `tests/env/cluster up` started.
pub struct Cluster {
    /// `KUBECONFIG`, `PATH` (with kubectl and helm) and `HOIST_TEST_REGISTRY`.
    env: Vec<(String, String)>,
    pub registry: String,
    /// A namespace of this test's own, deleted on drop.
    pub namespace: String,
}

impl Cluster {
    /// Connects to the running test cluster and makes a namespace for the test.
    /// Fails, saying what to run, when the cluster is not up.
    pub fn connect() -> Cluster {
        let script = repo_root().join("tests/env/cluster");
        let output = Command::new("bash").arg(&script).arg("env").output().unwrap();
        assert!(output.status.success(), "tests/env/cluster env failed\n{}", show(&output));
        let mut env = Vec::new();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Some((key, value)) = line.trim_start_matches("export ").split_once('=') else { continue };
            let value = value.replace("$PATH", &std::env::var("PATH").unwrap_or_default());
            env.push((key.to_string(), value));
        }
        let registry = env.iter().find(|(k, _)| k == "HOIST_TEST_REGISTRY").map(|(_, v)| v.clone()).unwrap_or_default();
        let namespace = format!("t{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let cluster = Cluster { env, registry, namespace };
        let nodes = cluster.kubectl_may_fail(&[
            "get",
            "nodes",
            "-o",
            "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}",
        ]);
        assert!(
            nodes.status.success() && String::from_utf8_lossy(&nodes.stdout).contains("True"),
            "the Kubernetes test cluster is not up: run `bash tests/env/cluster up` (tests/run does)\n{}",
            show(&nodes)
        );
        cluster.kubectl(&["create", "namespace", &cluster.namespace]);
        cluster
    }

    /// The registry as pods reach it (the host's address; `registry` is its loopback one).
    pub fn pod_registry(&self) -> String {
        self.env.iter().find(|(k, _)| k == "HOIST_TEST_POD_REGISTRY").map(|(_, v)| v.clone()).unwrap_or_default()
    }

    /// `program` with the cluster's environment (KUBECONFIG, PATH with kubectl and helm).
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    pub fn kubectl_may_fail(&self, args: &[&str]) -> Output {
        self.command("kubectl").args(["--request-timeout=30s"]).args(args).output().expect("kubectl runs")
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        let output = self.kubectl_may_fail(args);
        assert!(output.status.success(), "kubectl {args:?} failed\n{}", show(&output));
        output
    }

    /// The settings that make a test's hoistd deploy to this cluster: apps on the
    /// kubernetes target in this test's namespace, images in the cluster's registry (the
    /// one its nodes pull from), Helm waiting `timeout_secs` before it rolls back.
    pub fn hoistd_settings(&self, timeout_secs: u32) -> Vec<(String, String)> {
        let value = |key: &str| self.env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_default();
        let helm = std::env::split_paths(&value("PATH"))
            .map(|dir| dir.join("helm"))
            .find(|path| path.is_file())
            .expect("the cluster's PATH has helm");
        [
            ("HOIST_TARGET", "kubernetes".to_string()),
            ("HOIST_KUBECONFIG", value("KUBECONFIG")),
            ("HOIST_HELM", helm.display().to_string()),
            ("HOIST_KUBERNETES_NAMESPACE", self.namespace.clone()),
            ("HOIST_KUBERNETES_TIMEOUT_SECS", timeout_secs.to_string()),
            ("HOIST_REGISTRY_ADDR", self.registry.clone()),
            ("HOIST_REGISTRY_EXTERNAL", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// `helm history <release> -o json` in the test's namespace: (revision, status,
    /// description), oldest first.
    pub fn helm_history(&self, release: &str) -> Vec<(i64, String, String)> {
        let output = self.helm(&["history", release, "-o", "json"]);
        assert!(output.status.success(), "helm history failed\n{}", show(&output));
        let entries: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        entries
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["revision"].as_i64().unwrap(),
                    e["status"].as_str().unwrap().to_string(),
                    e["description"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// Runs helm in the test's namespace, whatever happens.
    pub fn helm(&self, args: &[&str]) -> Output {
        self.command("helm").args(args).args(["--namespace", &self.namespace]).output().expect("helm runs")
    }

    /// Builds `dockerfile` (with `files`) with dockerd and pushes it to the cluster's
    /// registry; returns the image reference.
    pub fn push_image(&self, name: &str, dockerfile: &str, files: &[(&str, &str)]) -> String {
        let dir = std::env::temp_dir().join(format!("hoist-image-{}-{name}", self.namespace));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
        for (path, text) in files {
            std::fs::write(dir.join(path), text).unwrap();
        }
        ensure_base_stack();
        let image = format!("{}/hoist-test/{name}:{}", self.registry, self.namespace);
        let build = Command::new(DOCKER).args(["build", "-q", "-t", &image]).arg(&dir).output().unwrap();
        assert!(build.status.success(), "docker build failed\n{}", show(&build));
        let push = Command::new(DOCKER).args(["push", &image]).output().unwrap();
        assert!(push.status.success(), "docker push failed\n{}", show(&push));
        let _ = std::fs::remove_dir_all(&dir);
        image
    }

    /// GET / of a Deployment's pod through `kubectl port-forward` on 127.0.0.1.
    pub fn get_through_port_forward(&self, deployment: &str, port: u16) -> String {
        use std::io::{BufRead, BufReader};
        let mut forward = self
            .command("kubectl")
            .args(["port-forward", "-n", &self.namespace, &format!("deploy/{deployment}"), &format!(":{port}")])
            .arg("--address=127.0.0.1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        // Kept open until the request is done: kubectl writes a line per connection.
        let mut stdout = BufReader::new(forward.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        // "Forwarding from 127.0.0.1:41234 -> 8080"
        let local = line.split_whitespace().nth(2).unwrap_or("").to_string();
        let body = reqwest::blocking::get(format!("http://{local}/")).and_then(|r| r.text());
        let _ = forward.kill();
        drop(stdout);
        let output = forward.wait_with_output().unwrap();
        body.unwrap_or_else(|e| panic!("port-forward said {line:?}; GET failed: {e}\n{}", show(&output)))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let events = self.kubectl_may_fail(&["get", "events", "-n", &self.namespace, "--sort-by=.lastTimestamp"]);
            eprintln!("--- events in namespace {} ---\n{}", self.namespace, String::from_utf8_lossy(&events.stdout));
        }
        let _ = self.kubectl_may_fail(&["delete", "namespace", &self.namespace, "--wait=false"]);
    }
}

/// `sha256=<hex HMAC-SHA256 of body>`: how GitHub (and hoist's generic form) sign a
/// webhook; Gitea sends the hex alone. Written here apart from hoist's own code, so a
/// test of hoist's check does not use the code it checks.
pub fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
