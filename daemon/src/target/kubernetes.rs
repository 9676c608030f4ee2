//! The kubernetes target: each release is a Helm release of hoist's chart
//! (`deploy/chart/`, built into hoistd), installed with the real `helm`:
//!
//! ```text
//! helm upgrade --install <app> <chart> -n <ns> --atomic --wait --timeout <t> -f values.json
//! ```
//!
//! (`--rollback-on-failure` on Helm 4). While Helm waits, a watcher polls the release's
//! pods, their events and the Deployment with kube-rs, prints every change, and keeps the
//! last log lines of crashing and not-ready pods, so they reach the user even after the
//! rollback has deleted the pods. A release left `pending-*` by a killed helm is rolled
//! back to its last good revision before the next deploy and on restart.
//!
//! The router reaches an app through its Service: a reflector on the EndpointSlices of
//! this hoistd's Services keeps `<app>.<domain>` routed to their ready endpoints, the way an
//! ingress controller does (no kube-proxy needed, pod IPs must be reachable from hoistd).

use super::{Deployed, Failure, Reach, Restored, Result, Target};
use crate::app::AppName;
use crate::config::TargetKind;
use crate::logs::Tee;
use crate::router::Routes;
use crate::store::Release;
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod, Secret};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Seconds an attached one-off process's pod waits after the command's end, so the
/// command's last output reaches the client before its exit status (see `start_pod`).
const ATTACHED_LINGER: &str = "0.5";

/// `deploy/chart/`, built into hoistd by `daemon/build.rs`.
pub const EMBEDDED_CHART: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/chart.tar"));

const SETPRIV: &str = "/usr/bin/setpriv";

/// Label keys the chart puts on everything it makes.
const LABEL_APP: &str = "hoist.dev/app";
const LABEL_INSTANCE: &str = "hoist.dev/instance";
const LABEL_RELEASE: &str = "hoist.dev/release";

/// Settings of the kubernetes target.
#[derive(Debug, Clone)]
pub struct Settings {
    pub instance: String,
    pub kubeconfig: Option<PathBuf>,
    /// Every app in this namespace; `None`: `<instance>-<app>`.
    pub namespace: Option<String>,
    pub helm: PathBuf,
    pub timeout: Duration,
    /// The registry as hoistd pushes to it, and as the cluster's nodes reach it.
    pub registry_pushed: String,
    pub registry_pulled: Option<String>,
    /// The account of hoistd's own registry (user, password), given to the pods that pull
    /// its images; `None` for an external registry.
    pub registry_account: Option<(String, String)>,
    pub chart: PathBuf,
    pub app_port: u16,
    pub min_ready_secs: u32,
    /// A new pod restarting this many times is a crash loop: helm is cancelled and rolls
    /// back without waiting for its timeout. 0: wait for the timeout.
    pub crash_restarts: i32,
    /// Where values files live while helm runs (they hold config values: mode 0600).
    pub work_dir: PathBuf,
    /// Apps' own charts, per build ([`app_chart_dir`]).
    pub app_charts: PathBuf,
}

/// Where the chart an app brought in its repo (`chart/`) is kept for one build.
fn app_chart_dir(root: &Path, app: &AppName, build_id: i64) -> PathBuf {
    root.join(app.as_str()).join(format!("build-{build_id}"))
}

/// What the kubernetes target could not do, in its own words; callers of the seam see it
/// inside [`super::Error::Failed`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes: {0}")]
    Kubernetes(#[from] kube::Error),
    #[error("helm: {0}")]
    Helm(#[from] HelmError),
}

/// A helm run that did not succeed, by what helm itself told: its exit status, or that
/// it could not be started, hung, or printed what could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    #[error("cannot run {program}: {source}")]
    Spawn { program: PathBuf, source: std::io::Error },
    #[error("helm did not finish within {secs} s")]
    Hung { secs: u64 },
    /// helm exited non-zero; `said` is its `Error:` line (or its last line).
    #[error("{said} (helm exited with {status})")]
    Failed { status: std::process::ExitStatus, said: String },
    #[error("cannot read helm's {what}: {reason}")]
    Output { what: &'static str, reason: String },
}

impl From<Error> for super::Error {
    fn from(error: Error) -> super::Error {
        super::Error::of(TargetKind::Kubernetes, error)
    }
}

/// Releases as Helm releases on a Kubernetes cluster.
pub struct KubernetesTarget {
    client: kube::Client,
    settings: Settings,
    /// `--atomic` (Helm 3) or `--rollback-on-failure` (Helm 4).
    atomic_flag: &'static str,
    routes: Routes,
}

/// One line of `helm history -o json`.
#[derive(Debug, Clone, Deserialize)]
struct HistoryEntry {
    revision: i64,
    status: String,
    #[serde(default)]
    description: String,
}

/// A client of the cluster named by `kubeconfig`, else the environment's (`KUBECONFIG`,
/// `~/.kube/config`, the in-cluster service account). `Err`: why not, for the user.
pub async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client, String> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|e| format!("kubeconfig {} is not usable: {e}", path.display()))?
        }
        None => kube::Config::infer().await.map_err(|e| {
            format!("no cluster configured (set kubernetes.kubeconfig or KUBECONFIG, or run in a cluster): {e}")
        })?,
    };
    kube::Client::try_from(config).map_err(|e| format!("cannot make a Kubernetes client: {e}"))
}

impl KubernetesTarget {
    /// Connects to the cluster named by the kubeconfig (or the environment's), checks
    /// helm, and starts following the Services' endpoints into `routes`.
    /// `Err`: why the target cannot be used, for the user.
    pub async fn connect(settings: Settings, routes: Routes) -> Result<Arc<KubernetesTarget>, String> {
        let client = client(settings.kubeconfig.as_deref()).await?;
        let version = helm_version(&settings.helm).await?;
        let atomic_flag = if version.starts_with("v3.") { "--atomic" } else { "--rollback-on-failure" };
        std::fs::create_dir_all(&settings.work_dir)
            .map_err(|e| format!("cannot create {}: {e}", settings.work_dir.display()))?;
        let target = Arc::new(KubernetesTarget { client, settings, atomic_flag, routes });
        tokio::spawn(follow_endpoints(target.client.clone(), target.settings.instance.clone(), target.routes.clone()));
        tracing::info!(helm = %version, "kubernetes target ready");
        Ok(target)
    }

    /// The label selector of release `number`'s pods.
    fn release_selector(&self, app: &AppName, number: i64) -> String {
        format!("{LABEL_APP}={app},{LABEL_INSTANCE}={},{LABEL_RELEASE}={number}", self.settings.instance)
    }

    fn namespace(&self, app: &AppName) -> String {
        match &self.settings.namespace {
            Some(namespace) => namespace.clone(),
            None => format!("{}-{}", self.settings.instance, app),
        }
    }

    /// The image reference as the cluster's nodes pull it.
    fn pulled_image(&self, image: &str) -> String {
        match &self.settings.registry_pulled {
            Some(pulled) => match image.strip_prefix(&self.settings.registry_pushed) {
                Some(rest) => format!("{pulled}{rest}"),
                None => image.to_string(),
            },
            None => image.to_string(),
        }
    }

    /// The chart's `registryAuth` for `image`: hoistd's registry account when the image is
    /// in hoistd's registry, at the address the nodes pull from.
    fn registry_auth(&self, image: &str) -> serde_json::Value {
        let own = image.strip_prefix(&self.settings.registry_pushed).is_some_and(|rest| rest.starts_with('/'));
        match (&self.settings.registry_account, own) {
            (Some((username, password)), true) => {
                let server = self.settings.registry_pulled.as_deref().unwrap_or(&self.settings.registry_pushed);
                serde_json::json!({ "server": server, "username": username, "password": password })
            }
            _ => serde_json::Value::Null,
        }
    }

    fn helm(&self) -> tokio::process::Command {
        // A helm outliving a killed hoistd would finish a rollout nobody records; it dies
        // with hoistd instead (util-linux's setpriv sets the parent-death signal), and the
        // release it leaves pending is repaired on restart.
        let mut command = if Path::new(SETPRIV).is_file() {
            let mut command = tokio::process::Command::new(SETPRIV);
            command.args(["--pdeathsig", "KILL", "--"]).arg(&self.settings.helm);
            command
        } else {
            tokio::process::Command::new(&self.settings.helm)
        };
        if let Some(kubeconfig) = &self.settings.kubeconfig {
            command.arg("--kubeconfig").arg(kubeconfig);
        }
        command.stdin(Stdio::null()).kill_on_drop(true);
        command
    }

    /// Runs helm with `args`; its output lines go to `log` when given. `Err`: the last
    /// lines of its output.
    async fn run_helm(&self, args: &[&str], log: Option<&Tee>) -> Result<String, HelmError> {
        self.run_helm_cancellable(args, log, None).await
    }

    /// Like `run_helm`; when `cancel` says why, helm gets SIGTERM, which makes an
    /// `upgrade --atomic` stop waiting and roll back at once ("Release … has been
    /// cancelled"), instead of at its timeout.
    async fn run_helm_cancellable(
        &self,
        args: &[&str],
        log: Option<&Tee>,
        mut cancel: Option<tokio::sync::watch::Receiver<Option<String>>>,
    ) -> Result<String, HelmError> {
        let mut child = self
            .helm()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| HelmError::Spawn { program: self.settings.helm.clone(), source })?;
        let (stdout, stderr) = (child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
        let mut lines = futures_util::stream::select(
            tokio_stream_lines(BufReader::new(stdout)),
            tokio_stream_lines(BufReader::new(stderr)),
        );
        let mut output = Vec::new();
        // helm's own --timeout bounds the wait; this bounds a helm that hangs anyway.
        let limit = self.settings.timeout + Duration::from_secs(120);
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                line = lines.next() => match line {
                    Some(line) => {
                        if let Some(log) = log {
                            log.line(format!("       helm: {line}"));
                        }
                        output.push(line);
                    }
                    None => break,
                },
                _ = &mut deadline => {
                    let _ = child.kill().await;
                    return Err(HelmError::Hung { secs: limit.as_secs() });
                }
                why = wait_for_cancel(&mut cancel) => {
                    if let Some(log) = log {
                        log.line(format!("       {why}: cancelling helm, so it rolls back now rather than at its timeout"));
                    }
                    // A signal, not the `kill` program: hoist's image has none.
                    if let Some(pid) = child.id().and_then(|pid| rustix::process::Pid::from_raw(pid as i32)) {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                    }
                    cancel = None;
                }
            }
        }
        let status =
            child.wait().await.map_err(|source| HelmError::Spawn { program: self.settings.helm.clone(), source })?;
        if status.success() {
            Ok(output.join("\n"))
        } else {
            // The exit status decides; the `Error:` line only says why, for people.
            let said = output.iter().rev().find(|l| l.starts_with("Error")).or(output.last());
            Err(HelmError::Failed { status, said: said.cloned().unwrap_or_default() })
        }
    }

    /// The release's history, oldest first; empty when there is no release. Whether it
    /// exists is asked of `helm list` (which answers an empty list, not an error), so no
    /// error text is ever read as "not found".
    async fn history(&self, name: &str, namespace: &str) -> Result<Vec<HistoryEntry>, HelmError> {
        let filter = format!("^{name}$");
        let listed = self.run_helm(&["list", "-n", namespace, "-a", "--filter", &filter, "-o", "json"], None).await?;
        let releases: Vec<serde_json::Value> =
            serde_json::from_str(&listed).map_err(|e| HelmError::Output { what: "list", reason: e.to_string() })?;
        if releases.is_empty() {
            return Ok(Vec::new());
        }
        let json = self.run_helm(&["history", name, "-n", namespace, "-o", "json", "--max", "256"], None).await?;
        let mut entries: Vec<HistoryEntry> =
            serde_json::from_str(&json).map_err(|e| HelmError::Output { what: "history", reason: e.to_string() })?;
        entries.sort_by_key(|e| e.revision);
        Ok(entries)
    }

    /// A release left `pending-install/upgrade/rollback` (a helm that was killed) blocks
    /// every later upgrade ("another operation is in progress"): roll it back to its last
    /// good revision, or uninstall it when it never had one.
    /// Returns the revision the release runs as after a rollback.
    async fn repair(&self, name: &str, namespace: &str, log: &Tee) -> Result<Option<i64>, HelmError> {
        let history = self.history(name, namespace).await?;
        let Some(last) = history.last() else { return Ok(None) };
        if !last.status.starts_with("pending") {
            return Ok(None);
        }
        let timeout = format!("{}s", self.settings.timeout.as_secs());
        match history.iter().rev().find(|e| e.status == "deployed" || e.status == "superseded") {
            Some(good) => {
                log.line(format!(
                    "       Helm release {name} was left {} at revision {} (a killed helm); rolling back to revision {}",
                    last.status, last.revision, good.revision
                ));
                let revision = good.revision.to_string();
                self.run_helm(
                    &["rollback", name, &revision, "-n", namespace, "--wait", "--timeout", &timeout],
                    Some(log),
                )
                .await?;
                // The rollback made a new revision: that is what the live release runs as.
                let after = self.history(name, namespace).await?;
                return Ok(deployed_revision(&after));
            }
            None => {
                log.line(format!(
                    "       Helm release {name} was left {} with no good revision; uninstalling it",
                    last.status
                ));
                self.run_helm(&["uninstall", name, "-n", namespace, "--wait", "--timeout", &timeout], Some(log))
                    .await?;
            }
        }
        Ok(None)
    }

    fn values(&self, app: &AppName, release: &Release) -> serde_json::Value {
        serde_json::json!({
            "app": app.as_str(),
            "instance": self.settings.instance,
            "release": release.number,
            "image": self.pulled_image(&release.image),
            "registryAuth": self.registry_auth(&release.image),
            "port": self.settings.app_port,
            "minReadySeconds": self.settings.min_ready_secs,
            "env": release.config,
            "processes": processes(release),
        })
    }

    fn write_values(&self, path: &Path, values: &serde_json::Value) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
        file.write_all(values.to_string().as_bytes())
    }

    async fn deploy_release(&self, app: &AppName, release: &Release, log: &Tee) -> Result<Deployed, Failure> {
        let name = app.as_str();
        let namespace = self.namespace(app);
        self.repair(name, &namespace, log).await.map_err(|e| Failure::before_deploy(e.to_string()))?;
        let before = self.history(name, &namespace).await.map_err(|e| Failure::before_deploy(e.to_string()))?;
        let revision = before.last().map_or(1, |e| e.revision + 1);
        let values_path = self.settings.work_dir.join(format!("{namespace}-{name}-{}.json", release.number));
        self.write_values(&values_path, &self.values(app, release))
            .map_err(|e| Failure::before_deploy(format!("cannot write {}: {e}", values_path.display())))?;

        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (give_up, cancel) = tokio::sync::watch::channel(None);
        let watcher = tokio::spawn(watch_release(
            Watch {
                client: self.client.clone(),
                namespace: namespace.clone(),
                app: app.clone(),
                instance: self.settings.instance.clone(),
                release: release.number,
                crash_restarts: self.settings.crash_restarts,
            },
            log.clone(),
            stopped,
            give_up,
        ));
        let timeout = format!("{}s", self.settings.timeout.as_secs());
        let own_chart = release.build_id.map(|id| app_chart_dir(&self.settings.app_charts, app, id));
        let chart = match own_chart.filter(|dir| dir.join("Chart.yaml").is_file()) {
            Some(dir) => {
                log.line(format!(
                    "       with the app's own chart (chart/ of build {})",
                    release.build_id.unwrap_or(0)
                ));
                dir
            }
            None => self.settings.chart.clone(),
        };
        let chart = chart.to_string_lossy().into_owned();
        let values = values_path.to_string_lossy().into_owned();
        let args = [
            "upgrade",
            "--install",
            name,
            &chart,
            "-n",
            &namespace,
            "--create-namespace",
            self.atomic_flag,
            "--wait",
            "--timeout",
            &timeout,
            "-f",
            &values,
        ];
        log.line(format!(
            "       helm upgrade --install {name} (revision {revision}) -n {namespace} {} --wait --timeout {timeout}",
            self.atomic_flag
        ));
        let started = Instant::now();
        let helm = self.run_helm_cancellable(&args, Some(log), Some(cancel)).await;
        let _ = std::fs::remove_file(&values_path);
        let _ = stop.send(true);
        let seen = watcher.await.unwrap_or_default();

        match helm {
            Ok(_) => {
                log.line(format!("       pods Ready; Helm revision {revision} deployed in {:.1} s", secs(started)));
                self.wait_routed(app).await;
                Ok(Deployed { reach: Reach::Service, revision: Some(revision) })
            }
            Err(helm_error) => {
                seen.print_unprinted_tails(log);
                let undo = judge_undo(revision, self.history(name, &namespace).await);
                log.line(format!("       helm failed after {:.1} s:{}", secs(started), undo.said));
                let mut reason = match seen.summary() {
                    Some(summary) => format!("{summary}; helm: {helm_error}"),
                    None => format!("helm: {helm_error}"),
                };
                if !undo.rolled_back {
                    reason.push_str(" (Helm did not roll back, or hoist cannot tell; the next deploy repairs it)");
                }
                Err(Failure {
                    reason,
                    rolled_back: undo.rolled_back,
                    revision: Some(revision),
                    restored_revision: undo.restored_revision,
                })
            }
        }
    }

    /// The release phase as a pod of its own (`<app>-release-<N>`, never restarted): the
    /// release's image and config, the command through bash; its output to `log` once it
    /// ends; the pod (and the pull secret made for it) deleted whatever happened.
    async fn run_release_pod(
        &self,
        app: &AppName,
        release: &Release,
        command: &str,
        timeout: Duration,
        log: &Tee,
    ) -> Result<(), ReleasePhase> {
        let pod = OneOffPod {
            name: format!("{app}-release-{}", release.number),
            process: "release",
            command: command.to_string(),
            stdin: false,
            tty: None,
            memory_mb: None,
            listed: false,
        };
        let pods = self.start_pod(app, release, &pod).await?;
        log.line(format!("       pod {} in namespace {}", pod.name, self.namespace(app)));
        let ended = wait_pod_end(&pods, &pod.name, timeout).await;
        if let Ok(text) = pods.logs(&pod.name, &LogParams::default()).await {
            for line in text.lines() {
                log.line(format!("       {line}"));
            }
        }
        self.remove_pod(app, &pod.name).await;
        match ended? {
            Some(0) => Ok(()),
            Some(code) => Err(ReleasePhase::Failed { command: command.to_string(), code }),
            None => Err(ReleasePhase::TimedOut { command: command.to_string(), secs: timeout.as_secs() }),
        }
    }

    /// Creates a pod of `release` that runs `pod.command` through bash once (its image
    /// and config, the registry's pull secret), in the app's namespace, replacing a pod
    /// of the same name.
    async fn start_pod(&self, app: &AppName, release: &Release, pod: &OneOffPod) -> Result<Api<Pod>, ReleasePhase> {
        let namespace = self.namespace(app);
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        if namespaces.get_opt(&namespace).await?.is_none() {
            let made: Namespace = serde_json::from_value(serde_json::json!({ "metadata": { "name": namespace } }))
                .expect("a namespace object parses");
            match namespaces.create(&PostParams::default(), &made).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.is_already_exists() => {}
                Err(error) => return Err(error.into()),
            }
        }
        let name = &pod.name;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
        let mut labels = serde_json::json!({
            LABEL_APP: app.as_str(),
            LABEL_INSTANCE: self.settings.instance,
            "hoist.dev/process": pod.process,
            "hoist.dev/one-off": name,
        });
        if pod.listed {
            // `hoist ps` and `hoist logs` list the pods of the live release.
            labels[LABEL_RELEASE] = serde_json::Value::String(release.number.to_string());
        }
        let auth = self.registry_auth(&release.image);
        let mut pull_secrets = Vec::new();
        if let (Some(server), Some(username), Some(password)) =
            (auth["server"].as_str(), auth["username"].as_str(), auth["password"].as_str())
        {
            use base64::Engine;
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            let config = serde_json::json!({ "auths": { server: { "username": username, "password": password, "auth": basic } } });
            let secret: Secret = serde_json::from_value(serde_json::json!({
                "metadata": { "name": format!("{name}-registry"), "labels": labels },
                "type": "kubernetes.io/dockerconfigjson",
                "stringData": { ".dockerconfigjson": config.to_string() },
            }))
            .expect("a secret object parses");
            let _ = secrets.delete(&format!("{name}-registry"), &DeleteParams::default()).await;
            secrets.create(&PostParams::default(), &secret).await?;
            pull_secrets.push(serde_json::json!({ "name": format!("{name}-registry") }));
        }
        let mut env: Vec<serde_json::Value> =
            release.config.iter().map(|(key, value)| serde_json::json!({ "name": key, "value": value })).collect();
        env.push(serde_json::json!({ "name": "PORT", "value": self.settings.app_port.to_string() }));
        let mut container = serde_json::json!({
            "name": pod.process,
            "image": self.pulled_image(&release.image),
            "command": ["/bin/bash", "-c", pod.command],
            "env": env,
        });
        if pod.stdin {
            // The command waits for one line hoistd sends once it is attached, so no output
            // is printed before anyone listens (on a terminal, without echoing that line).
            // Its end waits a moment too: the API server copies each stream on its own and
            // may send the exit status before the last output, and the client stops reading
            // at the status (`hoist run … -- sh -c 'echo x; exit 3'` lost its "x" under
            // load); half a second after the command's end, its output is through.
            let (go_ahead, inner) = match pod.tty {
                None => ("read -r _ &&", vec!["/bin/bash".to_string(), "-c".to_string(), pod.command.clone()]),
                Some(size) => ("stty -echo; read -r _; stty echo;", super::sized_terminal(&pod.command, size)),
            };
            let wrapper = format!("{go_ahead} {{ \"$0\" \"$@\"; code=$?; sleep {ATTACHED_LINGER}; exit $code; }}");
            let command: Vec<String> =
                ["/bin/bash".to_string(), "-c".to_string(), wrapper].into_iter().chain(inner).collect();
            let command = serde_json::json!(command);
            container["command"] = command;
            container["stdin"] = true.into();
            container["stdinOnce"] = true.into();
            container["tty"] = pod.tty.is_some().into();
        }
        if let Some(memory_mb) = pod.memory_mb {
            container["resources"] = serde_json::json!({ "limits": { "memory": format!("{memory_mb}Mi") } });
        }
        let made: Pod = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "labels": labels },
            "spec": { "restartPolicy": "Never", "imagePullSecrets": pull_secrets, "containers": [container] },
        }))
        .expect("a pod object parses");
        let _ = pods.delete(name, &DeleteParams::default().grace_period(0)).await;
        for _ in 0..50 {
            if pods.get_opt(name).await?.is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        pods.create(&PostParams::default(), &made).await?;
        Ok(pods)
    }

    /// Deletes a one-off pod and its pull secret.
    async fn remove_pod(&self, app: &AppName, name: &str) {
        remove_pod(self.client.clone(), &self.namespace(app), name).await
    }

    /// `hoist run` on kubernetes: a pod attached through the API server.
    async fn attach_one_off(
        &self,
        app: &AppName,
        release: &Release,
        process: &super::OneOffSpec,
    ) -> Result<super::OneOff, ReleasePhase> {
        use tokio::io::AsyncWriteExt;
        let number = super::one_off_number();
        let pod = OneOffPod {
            name: format!("{app}-run-{number}"),
            process: "run",
            command: process.command.clone(),
            stdin: true,
            tty: process.tty,
            memory_mb: process.memory_mb,
            listed: false,
        };
        let pods = self.start_pod(app, release, &pod).await?;
        let name = pod.name.clone();
        let running = wait_pod_running(&pods, &name, Duration::from_secs(120)).await;
        if let Err(error) = running {
            self.remove_pod(app, &name).await;
            return Err(error);
        }
        let params = kube::api::AttachParams::default()
            .stdin(true)
            .stdout(true)
            .stderr(pod.tty.is_none())
            .tty(pod.tty.is_some());
        let mut attached = match pods.attach(&name, &params).await {
            Ok(attached) => attached,
            Err(error) => {
                self.remove_pod(app, &name).await;
                return Err(error.into());
            }
        };
        let (Some(mut input), Some(stdout)) = (attached.stdin(), attached.stdout()) else {
            self.remove_pod(app, &name).await;
            return Err(ReleasePhase::CannotStart { reason: "Attach".into(), message: "no streams".into() });
        };
        // A terminal has one stream, and the client's size.
        let stderr = attached.stderr();
        if let (Some((height, width)), Some(mut sizes)) = (process.tty, attached.terminal_size()) {
            use futures_util::SinkExt;
            let _ = sizes.send(kube::api::TerminalSize { height, width }).await;
        }
        // The go-ahead line the command waits for.
        input
            .write_all(b"\n")
            .await
            .map_err(|e| ReleasePhase::CannotStart { reason: "Attach".into(), message: e.to_string() })?;
        let bytes = |reader| {
            tokio_util::io::ReaderStream::new(reader)
                .take_while(|r| std::future::ready(r.is_ok()))
                .map(|r| r.unwrap_or_default())
        };
        let output = match stderr {
            Some(stderr) => futures_util::stream::select(
                bytes(stdout).map(super::Output::Stdout),
                bytes(stderr).map(super::Output::Stderr),
            )
            .boxed(),
            None => bytes(stdout).map(super::Output::Stdout).boxed(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (client, namespace) = (self.client.clone(), self.namespace(app));
        let exit = async move {
            let code = tokio::select! {
                ended = wait_pod_end(&pods, &name, Duration::from_secs(24 * 3600)) => match ended {
                    Ok(Some(code)) => i64::from(code),
                    _ => -1,
                },
                Ok(()) = stopped => -1,
            };
            drop(attached);
            remove_pod(client, &namespace, &name).await;
            code
        };
        let exit = futures_util::FutureExt::boxed(exit);
        Ok(super::OneOff { input: Box::pin(input), output, exit, stop })
    }

    /// Waits (briefly) until the router has an endpoint for the app.
    async fn wait_routed(&self, app: &AppName) {
        for _ in 0..100 {
            if self.routes.get(app.as_str()).is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::warn!(%app, "no ready endpoint of the app's Service reached the router within 10 s");
    }
}

#[async_trait::async_trait]
impl Target for KubernetesTarget {
    async fn sync_files(
        &self,
        app: &AppName,
        release: &Release,
        archive: Vec<u8>,
        signal: Option<&str>,
    ) -> Result<usize> {
        use tokio::io::AsyncWriteExt;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace(app));
        let selector = self.release_selector(app, release.number);
        let mut synced = 0;
        for pod in pods.list(&ListParams::default().labels(&selector)).await.map_err(Error::from)?.items {
            let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            let Some(name) = pod.metadata.name.filter(|_| running) else { continue };
            // `head -c` ends the input itself: the end of stdin does not always reach the
            // process through the API server.
            let unpack = format!("head -c {} | tar -x -C / -f -", archive.len());
            let params = kube::api::AttachParams::default().stdin(true).stdout(false).stderr(true);
            let mut exec = pods.exec(&name, ["sh", "-c", unpack.as_str()], &params).await.map_err(Error::from)?;
            let status = exec.take_status();
            let mut stdin = exec.stdin();
            let failed = |what: String| super::Error::of(TargetKind::Kubernetes, std::io::Error::other(what));
            if let Some(stdin) = stdin.as_mut() {
                stdin.write_all(&archive).await.map_err(|e| failed(format!("sending files to pod {name}: {e}")))?;
                stdin.flush().await.map_err(|e| failed(format!("sending files to pod {name}: {e}")))?;
            }
            let ended = match status {
                Some(status) => tokio::time::timeout(Duration::from_secs(60), status)
                    .await
                    .map_err(|_| failed(format!("pod {name} did not take the files within 60 s")))?,
                None => None,
            };
            drop(stdin);
            if let Some(status) = ended.filter(|s| s.status.as_deref() != Some("Success")) {
                let message = format!("tar in pod {name}: {}", status.message.unwrap_or_default());
                return Err(failed(message));
            }
            if let Some(signal) = signal {
                let params = kube::api::AttachParams::default().stdout(false).stderr(true);
                let mut kill = pods.exec(&name, ["kill", "-s", signal, "1"], &params).await.map_err(Error::from)?;
                if let Some(status) = kill.take_status() {
                    let _ = tokio::time::timeout(Duration::from_secs(30), status).await;
                }
            }
            synced += 1;
        }
        Ok(synced)
    }

    async fn restart_processes(&self, app: &AppName, _release: &Release, kind: &str) -> Result<usize> {
        // What `kubectl rollout restart` does: a new pod template annotation makes the
        // Deployment replace its pods, rolling.
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace(app));
        let name = format!("{app}-{kind}");
        let now = jiff::Timestamp::now().to_string();
        let patch = serde_json::json!({
            "spec": { "template": { "metadata": { "annotations": { "hoist.dev/restarted-at": now } } } }
        });
        let patched = deployments
            .patch(&name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
            .await
            .map_err(Error::from)?;
        Ok(patched.spec.and_then(|s| s.replicas).unwrap_or(1).max(0) as usize)
    }

    async fn run_once(&self, app: &AppName, release: &Release, process: &super::OneOffSpec) -> Result<super::OneOff> {
        self.attach_one_off(app, release, process).await.map_err(|e| super::Error::of(TargetKind::Kubernetes, e))
    }

    async fn run_detached(&self, app: &AppName, release: &Release, process: &super::OneOffSpec) -> Result<String> {
        let number = super::one_off_number();
        let pod = OneOffPod {
            name: format!("{app}-run-{number}"),
            process: "run",
            command: process.command.clone(),
            stdin: false,
            tty: None,
            memory_mb: process.memory_mb,
            listed: true,
        };
        self.start_pod(app, release, &pod).await.map_err(|e| super::Error::of(TargetKind::Kubernetes, e))?;
        Ok(format!("run.{number}"))
    }

    async fn processes(&self, app: &AppName, release: &Release) -> Result<Vec<crate::wire::Process>> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace(app));
        let selector = self.release_selector(app, release.number);
        let mut listed = pods.list(&ListParams::default().labels(&selector)).await.map_err(Error::from)?.items;
        listed.sort_by_key(|pod| pod.metadata.name.clone().unwrap_or_default());
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        let mut processes = Vec::new();
        for pod in listed {
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            let kind = labels.get("hoist.dev/process").cloned().unwrap_or_else(|| "web".to_string());
            let index = counts.entry(kind.clone()).or_default();
            *index += 1;
            // A one-off pod is numbered by its name (`<app>-run-48213`), as `hoist run` said.
            if kind == "run" {
                let name = pod.metadata.name.as_deref().unwrap_or_default();
                *index = name.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(*index);
            }
            let status = pod.status.clone().unwrap_or_default();
            let container = status.container_statuses.clone().unwrap_or_default().into_iter().next();
            let restarts = container.as_ref().map_or(0, |c| i64::from(c.restart_count));
            let state = container.as_ref().and_then(|c| c.state.clone()).unwrap_or_default();
            let ready = container.as_ref().is_some_and(|c| c.ready);
            let (word, since) = if let Some(running) = state.running {
                (if ready { "up" } else { "starting" }, running.started_at.map(|t| t.0.to_string()))
            } else if let Some(waiting) = state.waiting {
                let reason = waiting.reason.unwrap_or_default();
                (if reason == "CrashLoopBackOff" { "crashed" } else { "starting" }, None)
            } else if let Some(terminated) = state.terminated {
                match (terminated.exit_code, kind.as_str()) {
                    (0, "run") => ("complete", None),
                    (0, _) => ("down", None),
                    _ => ("crashed", None),
                }
            } else {
                ("starting", None)
            };
            processes.push(crate::wire::Process {
                kind,
                index: *index,
                state: word.to_string(),
                since,
                restarts,
                release: release.number,
                name: pod.metadata.name.unwrap_or_default(),
            });
        }
        Ok(processes)
    }

    async fn release_phase(
        &self,
        app: &AppName,
        release: &Release,
        command: &str,
        timeout: Duration,
        log: &Tee,
    ) -> Result<(), Failure> {
        self.run_release_pod(app, release, command, timeout, log)
            .await
            .map_err(|reason| Failure::before_deploy(reason.to_string()))
    }

    async fn runtime_logs(
        &self,
        app: &AppName,
        release: &Release,
        tail: usize,
        follow: bool,
    ) -> Result<super::LineStream> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace(app));
        let selector = self.release_selector(app, release.number);
        let mut streams = Vec::new();
        for pod in pods.list(&ListParams::default().labels(&selector)).await.map_err(Error::from)?.items {
            let Some(name) = pod.metadata.name else { continue };
            let params = LogParams { follow, tail_lines: Some(tail as i64), ..Default::default() };
            let reader = pods.log_stream(&name, &params).await.map_err(Error::from)?;
            let prefix = format!("[{name}] ");
            let lines = tokio_stream_lines(tokio::io::BufReader::new(
                tokio_util::compat::FuturesAsyncReadCompatExt::compat(reader),
            ));
            streams.push(lines.map(move |line| format!("{prefix}{line}")).boxed());
        }
        Ok(futures_util::stream::select_all(streams).boxed())
    }

    fn kind(&self) -> TargetKind {
        TargetKind::Kubernetes
    }

    async fn deploy(&self, app: &AppName, release: &Release, log: &Tee) -> Result<Deployed, Failure> {
        self.deploy_release(app, release, log).await
    }

    async fn retire(&self, app: &AppName, previous: &Release) {
        // The Deployment's rolling update has replaced the old pods already; what is left
        // are the detached one-off pods of the previous release.
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace(app));
        let selector = format!("{},hoist.dev/process=run", self.release_selector(app, previous.number));
        let Ok(listed) = pods.list(&ListParams::default().labels(&selector)).await else { return };
        for pod in listed.items {
            if let Some(name) = pod.metadata.name {
                self.remove_pod(app, &name).await;
            }
        }
    }

    async fn remove_app(&self, app: &AppName) -> Result<()> {
        let namespace = self.namespace(app);
        let timeout = format!("{}s", self.settings.timeout.as_secs());
        // Whether there is a release to uninstall is asked (`helm list`), not read from
        // an error's text.
        if !self.history(app.as_str(), &namespace).await.map_err(Error::from)?.is_empty() {
            self.run_helm(&["uninstall", app.as_str(), "-n", &namespace, "--wait", "--timeout", &timeout], None)
                .await
                .map_err(Error::from)?;
        }
        if let Err(error) = std::fs::remove_dir_all(self.settings.app_charts.join(app.as_str())) {
            if error.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(%app, %error, "cannot remove the app's charts");
            }
        }
        if self.settings.namespace.is_none() {
            let namespaces: Api<Namespace> = Api::all(self.client.clone());
            match namespaces.delete(&namespace, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(Error::from(error).into()),
            }
        }
        Ok(())
    }

    fn keep_source(&self, source: &super::SourceFiles<'_>) -> std::io::Result<Option<String>> {
        if !source.files.iter().any(|f| f == "chart/Chart.yaml") {
            return Ok(None);
        }
        let dir = app_chart_dir(&self.settings.app_charts, source.app, source.build_id);
        let files = crate::archive::unpack_folder(source.tar, "chart", &dir)?;
        Ok(Some(format!("-----> Using the app's own chart (chart/, {files} files) on the kubernetes target")))
    }

    async fn restore(&self, app: &AppName, _live: Option<&Release>, _interrupted: &[Release]) -> Result<Restored> {
        let quiet = Tee::default();
        let live_revision = self.repair(app.as_str(), &self.namespace(app), &quiet).await.map_err(Error::from)?;
        Ok(Restored { reach: Some(Reach::Service), live_revision })
    }
}

/// What Helm did after a failed `upgrade --atomic` of `revision`, read from the history
/// asked for afterwards.
#[derive(Debug, PartialEq, Eq)]
struct Undo {
    rolled_back: bool,
    restored_revision: Option<i64>,
    /// For the log, after "helm failed after N s:".
    said: String,
}

fn judge_undo(revision: i64, after: Result<Vec<HistoryEntry>, HelmError>) -> Undo {
    match after {
        // Not knowing is not "uninstalled": the release may still be half deployed.
        Err(error) => Undo {
            rolled_back: false,
            restored_revision: None,
            said: format!(" cannot tell whether Helm rolled it back ({error})"),
        },
        Ok(after) if after.is_empty() => Undo {
            rolled_back: true,
            restored_revision: None,
            said: " Helm uninstalled it (it was the first install)".to_string(),
        },
        Ok(after) => match after.iter().find(|e| e.revision > revision && e.description.starts_with("Rollback")) {
            Some(entry) => Undo {
                rolled_back: true,
                restored_revision: Some(entry.revision),
                said: format!(" Helm rolled it back ({}, revision {})", entry.description, entry.revision),
            },
            None => Undo { rolled_back: false, restored_revision: None, said: String::new() },
        },
    }
}

/// The revision a release runs as: its newest `deployed` entry.
fn deployed_revision(history: &[HistoryEntry]) -> Option<i64> {
    history.iter().rev().find(|e| e.status == "deployed").map(|e| e.revision)
}

/// Resolves with the reason once `cancel` carries one; never when it is `None`.
async fn wait_for_cancel(cancel: &mut Option<tokio::sync::watch::Receiver<Option<String>>>) -> String {
    let Some(receiver) = cancel else { return std::future::pending().await };
    loop {
        if let Some(why) = receiver.borrow_and_update().clone() {
            return why;
        }
        if receiver.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Why a release phase's pod did not succeed; its text is the release's failure reason.
#[derive(Debug, thiserror::Error)]
enum ReleasePhase {
    #[error("cannot run its release command: {0}")]
    Cluster(#[from] kube::Error),
    #[error("its release command `{command}` exited with code {code}")]
    Failed { command: String, code: i32 },
    #[error("its release command `{command}` ran longer than {secs} s (rollout.release_timeout_secs) and was stopped")]
    TimedOut { command: String, secs: u64 },
    #[error("its release command's pod cannot start: {reason}: {message}")]
    CannotStart { reason: String, message: String },
}

/// A pod that runs one command once: the release phase or a one-off process.
struct OneOffPod {
    name: String,
    /// Its `hoist.dev/process` label and container name.
    process: &'static str,
    command: String,
    /// Attached: stdin open, the command held until hoistd says go.
    stdin: bool,
    /// Attached with a terminal of (rows, columns): one output stream.
    tty: Option<(u16, u16)>,
    memory_mb: Option<u64>,
    /// Labelled with its release, so `hoist ps` and `hoist logs` show it.
    listed: bool,
}

/// Deletes a one-off pod and its pull secret.
async fn remove_pod(client: kube::Client, namespace: &str, name: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(client, namespace);
    let _ = pods.delete(name, &DeleteParams::default().grace_period(0)).await;
    let _ = secrets.delete(&format!("{name}-registry"), &DeleteParams::default()).await;
}

/// Waits until the pod's container has ended (its exit code) or `timeout` passed (`None`).
async fn wait_pod_end(pods: &Api<Pod>, name: &str, timeout: Duration) -> Result<Option<i32>, ReleasePhase> {
    let started = Instant::now();
    let mut pull_trouble_since: Option<Instant> = None;
    while started.elapsed() < timeout {
        let state = pod_state(pods, name).await?;
        if let Some(terminated) = state.terminated {
            return Ok(Some(terminated.exit_code));
        }
        cannot_start(state.waiting, &mut pull_trouble_since)?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(None)
}

/// Waits until the pod's container runs (or has already ended).
async fn wait_pod_running(pods: &Api<Pod>, name: &str, timeout: Duration) -> Result<(), ReleasePhase> {
    let started = Instant::now();
    let mut pull_trouble_since: Option<Instant> = None;
    while started.elapsed() < timeout {
        let state = pod_state(pods, name).await?;
        if state.running.is_some() || state.terminated.is_some() {
            return Ok(());
        }
        cannot_start(state.waiting, &mut pull_trouble_since)?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(ReleasePhase::CannotStart {
        reason: "Timeout".into(),
        message: format!("pod {name} did not start within {} s", timeout.as_secs()),
    })
}

async fn pod_state(pods: &Api<Pod>, name: &str) -> Result<k8s_openapi::api::core::v1::ContainerState, kube::Error> {
    let pod = pods.get(name).await?;
    let status = pod.status.unwrap_or_default();
    let container = status.container_statuses.unwrap_or_default().into_iter().next();
    Ok(container.and_then(|c| c.state).unwrap_or_default())
}

/// A waiting container that will not start: a bad image name or config at once, a pull
/// that keeps failing after a minute (one failed pull can work on the next try).
fn cannot_start(
    waiting: Option<k8s_openapi::api::core::v1::ContainerStateWaiting>,
    pull_trouble_since: &mut Option<Instant>,
) -> Result<(), ReleasePhase> {
    let Some(waiting) = waiting else { return Ok(()) };
    let reason = waiting.reason.unwrap_or_default();
    let message = waiting.message.unwrap_or_default();
    match reason.as_str() {
        "InvalidImageName" | "CreateContainerConfigError" | "CreateContainerError" => {
            Err(ReleasePhase::CannotStart { reason, message })
        }
        "ErrImagePull" | "ImagePullBackOff" => {
            let since = *pull_trouble_since.get_or_insert_with(Instant::now);
            match since.elapsed() > Duration::from_secs(60) {
                true => Err(ReleasePhase::CannotStart { reason, message }),
                false => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// The chart's `processes` value: `web` runs the image's own command (the buildpack made
/// it the Procfile's `web:`); every other Procfile type but `release` gets a Deployment
/// running its command. As many replicas as the release's formation says (one of a type
/// it does not name).
fn processes(release: &Release) -> serde_json::Value {
    let processes = super::process_types(release)
        .into_iter()
        .map(|t| {
            let spec = match t.command {
                None => serde_json::json!({ "replicas": t.count }),
                Some(command) => serde_json::json!({ "replicas": t.count, "command": command }),
            };
            (t.kind, spec)
        })
        .collect();
    serde_json::Value::Object(processes)
}

async fn helm_version(helm: &Path) -> Result<String, String> {
    let output = tokio::process::Command::new(helm)
        .args(["version", "--template", "{{.Version}}"])
        .output()
        .await
        .map_err(|e| format!("cannot run {} (install Helm 3 or 4, or set kubernetes.helm): {e}", helm.display()))?;
    if !output.status.success() {
        return Err(format!("{} version failed: {}", helm.display(), String::from_utf8_lossy(&output.stderr)));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn tokio_stream_lines<R: tokio::io::AsyncBufRead + Unpin + Send + 'static>(
    reader: R,
) -> futures_util::stream::BoxStream<'static, String> {
    futures_util::stream::unfold(reader.lines(), |mut lines| async move {
        match lines.next_line().await {
            Ok(Some(line)) => Some((line, lines)),
            _ => None,
        }
    })
    .boxed()
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

/// What the watcher saw of one release's pods.
#[derive(Debug, Default)]
struct Seen {
    /// pod → the last thing said about it.
    states: BTreeMap<String, String>,
    /// pod → the last log lines of a pod that is not Ready, fetched but not printed yet.
    tails: BTreeMap<String, Vec<String>>,
    /// The worst thing seen, for the failure reason.
    trouble: Option<String>,
}

impl Seen {
    fn print_unprinted_tails(&self, log: &Tee) {
        for (pod, lines) in &self.tails {
            if lines.is_empty() {
                continue;
            }
            log.line(format!("       last lines of pod {pod} (not Ready):"));
            for line in lines {
                log.line(format!("       | {line}"));
            }
        }
    }

    fn summary(&self) -> Option<String> {
        self.trouble.clone().or_else(|| self.states.iter().next().map(|(pod, state)| format!("pod {pod}: {state}")))
    }
}

/// Watches the pods of one release (and their events and Deployment) until `stop`,
/// printing each change; crash output is printed as it happens, the output of pods that
/// are not Ready is kept for the end.
/// Which release a watcher follows, and when it gives up.
struct Watch {
    client: kube::Client,
    namespace: String,
    app: AppName,
    instance: String,
    release: i64,
    crash_restarts: i32,
}

async fn watch_release(
    watch: Watch,
    log: Tee,
    mut stop: tokio::sync::watch::Receiver<bool>,
    give_up: tokio::sync::watch::Sender<Option<String>>,
) -> Seen {
    let Watch { client, namespace, app, instance, release, crash_restarts } = watch;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let events: Api<Event> = Api::namespaced(client.clone(), &namespace);
    let deployments: Api<Deployment> = Api::namespaced(client, &namespace);
    let selector = format!("{LABEL_APP}={app},{LABEL_INSTANCE}={instance},{LABEL_RELEASE}={release}");
    let mut seen = Seen::default();
    let mut printed_crashes: HashSet<(String, i32)> = HashSet::new();
    let mut printed_events: HashSet<String> = HashSet::new();
    let mut deployment_state = String::new();
    let mut tails_fetched: HashMap<String, Instant> = HashMap::new();
    loop {
        let stopping = *stop.borrow();
        if let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await {
            for pod in list.items {
                let Some(name) = pod.metadata.name.clone() else { continue };
                let (state, ready, crash) = describe_pod(&pod);
                if seen.states.get(&name) != Some(&state) {
                    log.line(format!("       pod {name}: {state}"));
                    seen.states.insert(name.clone(), state.clone());
                }
                if let Some((restarts, previous)) = crash {
                    seen.trouble = Some(format!("pod {name}: {state}"));
                    if crash_restarts > 0 && restarts >= crash_restarts && give_up.borrow().is_none() {
                        let _ = give_up.send(Some(format!("pod {name} is crash-looping ({restarts} restarts)")));
                    }
                    if printed_crashes.insert((name.clone(), restarts)) {
                        let lines = pod_log_tail(&pods, &name, previous).await;
                        if !lines.is_empty() {
                            log.line(format!("       last lines of pod {name} before it stopped:"));
                            for line in &lines {
                                log.line(format!("       | {line}"));
                            }
                        }
                        seen.tails.remove(&name);
                    }
                } else if !ready && state.starts_with("Running") {
                    let due = tails_fetched.get(&name).is_none_or(|at| at.elapsed() > Duration::from_secs(3));
                    if due || stopping {
                        tails_fetched.insert(name.clone(), Instant::now());
                        seen.tails.insert(name.clone(), pod_log_tail(&pods, &name, false).await);
                        if seen.trouble.is_none() {
                            seen.trouble = Some(format!("pod {name}: {state}"));
                        }
                    }
                } else if ready {
                    seen.tails.remove(&name);
                }
            }
        }
        if let Ok(list) = events.list(&ListParams::default()).await {
            for event in list.items {
                let involved = event.involved_object.name.clone().unwrap_or_default();
                if !seen.states.contains_key(&involved) {
                    continue;
                }
                let key = event.metadata.uid.clone().unwrap_or_default();
                if printed_events.insert(key) {
                    log.line(format!(
                        "       event pod/{involved}: {} {}",
                        event.reason.unwrap_or_default(),
                        event.message.unwrap_or_default().trim()
                    ));
                }
            }
        }
        if let Ok(deployment) = deployments.get(&format!("{app}-web")).await {
            let status = deployment.status.unwrap_or_default();
            let wanted = deployment.spec.and_then(|s| s.replicas).unwrap_or(1);
            let mut state = format!(
                "{} updated, {} ready, {} available of {wanted}",
                status.updated_replicas.unwrap_or(0),
                status.ready_replicas.unwrap_or(0),
                status.available_replicas.unwrap_or(0)
            );
            for condition in status.conditions.unwrap_or_default() {
                if condition.reason.as_deref() == Some("ProgressDeadlineExceeded") {
                    state.push_str(&format!(" ({})", condition.message.unwrap_or_default()));
                }
            }
            if state != deployment_state {
                log.line(format!("       deployment {app}-web: {state}"));
                deployment_state = state;
            }
        }
        if stopping {
            return seen;
        }
        tokio::select! {
            _ = stop.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// A pod in a few words; whether it is Ready; and, when a container has stopped, its
/// restart count and whether its output is the previous instance's.
fn describe_pod(pod: &Pod) -> (String, bool, Option<(i32, bool)>) {
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.unwrap_or_else(|| "Pending".to_string());
    let ready = status.conditions.unwrap_or_default().iter().any(|c| c.type_ == "Ready" && c.status == "True");
    let mut words = vec![phase];
    words.push(if ready { "Ready".to_string() } else { "not Ready".to_string() });
    let mut crash = None;
    for container in status.container_statuses.unwrap_or_default() {
        let state = container.state.unwrap_or_default();
        if let Some(waiting) = state.waiting.as_ref().and_then(|w| w.reason.clone()) {
            if waiting != "ContainerCreating" {
                words.push(waiting);
            }
        }
        if let Some(terminated) = &state.terminated {
            words.push(format!("exited with code {}", terminated.exit_code));
            crash = Some((container.restart_count, false));
        }
        if container.restart_count > 0 {
            let last_exit = container.last_state.and_then(|s| s.terminated).map(|t| t.exit_code);
            if let Some(code) = last_exit {
                words.push(format!("last exit code {code}"));
            }
            words.push(format!("{} restarts", container.restart_count));
            if crash.is_none() {
                crash = Some((container.restart_count, true));
            }
        }
    }
    (words.join(", "), ready, crash)
}

async fn pod_log_tail(pods: &Api<Pod>, name: &str, previous: bool) -> Vec<String> {
    let params = LogParams { previous, tail_lines: Some(20), ..Default::default() };
    match pods.logs(name, &params).await {
        Ok(text) => crate::logs::tail(&text, 20).into_iter().map(str::to_string).collect(),
        Err(error) => vec![format!("(cannot read its output: {error})")],
    }
}

/// Keeps `routes` pointed at the ready endpoints of this hoistd's Services, until hoistd
/// stops. A reflector watch, so a pod that stops being Ready leaves the route at once.
async fn follow_endpoints(client: kube::Client, instance: String, routes: Routes) {
    let slices: Api<EndpointSlice> = Api::all(client);
    let config = watcher::Config::default().labels(&format!("{LABEL_INSTANCE}={instance}"));
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(slices, config)).default_backoff();
    tokio::pin!(stream);
    let mut routed: HashSet<String> = HashSet::new();
    let mut warned = false;
    while let Some(event) = stream.next().await {
        if let Err(error) = event {
            if !warned {
                tracing::warn!(%error, "cannot watch the cluster's endpoints; retrying");
                warned = true;
            }
            continue;
        }
        warned = false;
        let mut upstreams: BTreeMap<String, Vec<SocketAddr>> = BTreeMap::new();
        for slice in reader.state() {
            let Some(app) = slice.metadata.labels.as_ref().and_then(|l| l.get(LABEL_APP)).cloned() else { continue };
            let port = slice
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some("http"))
                .and_then(|p| p.port)
                .and_then(|p| u16::try_from(p).ok());
            let Some(port) = port else { continue };
            let addresses = upstreams.entry(app).or_default();
            for endpoint in &slice.endpoints {
                let ready = endpoint.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                if !ready {
                    continue;
                }
                for address in &endpoint.addresses {
                    if let Ok(ip) = address.parse::<IpAddr>() {
                        addresses.push(SocketAddr::new(ip, port));
                    }
                }
            }
        }
        for app in routed.iter() {
            if upstreams.get(app).is_none_or(Vec::is_empty) {
                routes.remove(app);
            }
        }
        routed.clear();
        for (app, mut addresses) in upstreams {
            if addresses.is_empty() {
                continue;
            }
            addresses.sort();
            routes.set_all(&app, addresses);
            routed.insert(app);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(revision: i64, status: &str, description: &str) -> HistoryEntry {
        HistoryEntry { revision, status: status.to_string(), description: description.to_string() }
    }

    #[test]
    fn a_history_that_cannot_be_read_is_no_rollback() {
        // Once read as "Helm uninstalled it": a failed `helm history` said nothing of the kind.
        let undo = judge_undo(3, Err(HelmError::Hung { secs: 60 }));
        assert!(!undo.rolled_back && undo.restored_revision.is_none(), "{undo:?}");
        assert!(undo.said.contains("cannot tell"), "{undo:?}");
        let undo = judge_undo(1, Ok(vec![]));
        assert!(undo.rolled_back && undo.said.contains("uninstalled"), "{undo:?}");
        let history = vec![
            entry(2, "superseded", "Upgrade complete"),
            entry(3, "failed", "Upgrade failed"),
            entry(4, "deployed", "Rollback to 2"),
        ];
        assert_eq!(
            judge_undo(3, Ok(history)),
            Undo {
                rolled_back: true,
                restored_revision: Some(4),
                said: " Helm rolled it back (Rollback to 2, revision 4)".to_string()
            }
        );
        let undo =
            judge_undo(3, Ok(vec![entry(2, "deployed", "Upgrade complete"), entry(3, "failed", "Upgrade failed")]));
        assert!(!undo.rolled_back, "{undo:?}");
    }

    #[test]
    fn a_repaired_release_runs_as_the_rollbacks_revision() {
        let history =
            vec![entry(2, "superseded", ""), entry(3, "pending-upgrade", ""), entry(4, "deployed", "Rollback to 2")];
        assert_eq!(deployed_revision(&history), Some(4));
        assert_eq!(deployed_revision(&[entry(1, "failed", "")]), None);
    }

    #[test]
    fn a_crash_looping_pod_is_described_with_its_exit_code() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "api-web-1"},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [{
                    "name": "web", "image": "i", "imageID": "", "ready": false, "restartCount": 2,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 3}}
                }]
            }
        }))
        .unwrap();
        let (state, ready, crash) = describe_pod(&pod);
        assert_eq!(state, "Running, not Ready, CrashLoopBackOff, last exit code 3, 2 restarts");
        assert!(!ready);
        assert_eq!(crash, Some((2, true)));
    }
}
