//! The docker target, the embedded default: releases as containers on the local dockerd.
//!
//! Deploying: pull the image by digest, start `<instance>-<app>-r<N>` with `PORT` and the
//! config vars set, published on 127.0.0.1 only, tini as PID 1; poll it over HTTP until it
//! answers below 500 (Dokku's CHECKS), the container exits, or the checks time out. The
//! rollout stage then switches the router to it and retires the old container.
//!
//! Architecture invariant: the only code that creates or removes release containers.

use super::{Deployed, Failure, Reach, Restored, Result, Target};
use crate::app::AppName;
use crate::config::TargetKind;
use crate::docker::{LABEL_APP, LABEL_INSTANCE, LABEL_PROCESS, LABEL_RELEASE, LABEL_ROLE};
use crate::logs::Tee;
use crate::store::Release;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::{FutureExt, StreamExt};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Settings of the docker target.
#[derive(Debug, Clone)]
pub struct Settings {
    pub instance: String,
    pub app_port: u16,
    pub checks_timeout: Duration,
    pub checks_interval: Duration,
    /// How long a release must keep running and answering after traffic moved to it
    /// before the previous release is stopped.
    pub settle: Duration,
    /// Limits of an app container unless its config says otherwise.
    pub app_limits: AppLimits,
    /// hoistd's own registry (`host:port`) and its account, for pulling its images.
    pub registry_credentials: Option<(String, bollard::auth::DockerCredentials)>,
}

/// Limits of one app container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppLimits {
    pub memory_mb: u64,
    pub pids: i64,
}

impl AppLimits {
    /// The defaults, overridden by the app's `HOIST_MEMORY_MB` and `HOIST_PIDS_LIMIT`
    /// config vars (a value that is not a positive number is refused).
    pub fn for_release(self, config: &std::collections::BTreeMap<String, String>) -> Result<AppLimits, Unready> {
        let read = |name: &str| -> Result<Option<u64>, Unready> {
            match config.get(name) {
                None => Ok(None),
                Some(value) => match value.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(Some(n)),
                    _ => Err(Unready::BadLimit { name: name.to_string(), value: value.clone() }),
                },
            }
        };
        Ok(AppLimits {
            memory_mb: read("HOIST_MEMORY_MB")?.unwrap_or(self.memory_mb),
            pids: read("HOIST_PIDS_LIMIT")?.map_or(self.pids, |n| n.min(i64::MAX as u64) as i64),
        })
    }
}

/// What the docker target could not do, in its own words; callers of the seam see it
/// inside [`super::Error::Failed`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("dockerd: {0}")]
    Docker(#[from] bollard::errors::Error),
}

/// Why a release's container did not serve; its text is the release's failure reason,
/// shown to the user who caused it.
#[derive(Debug, thiserror::Error)]
pub enum Unready {
    #[error(
        "config var {name}={value:?} is not a positive whole number; set it with `hoist config set APP {name}=512`"
    )]
    BadLimit { name: String, value: String },
    #[error("cannot pull {image}: {source}")]
    Pull { image: String, source: bollard::errors::Error },
    #[error("cannot create container: {0}")]
    Create(bollard::errors::Error),
    #[error("cannot start container: {0}")]
    Start(bollard::errors::Error),
    #[error("cannot find its port: {0}")]
    Inspect(bollard::errors::Error),
    #[error("cannot find its port: no published port for {0}")]
    NoPort(String),
    #[error(transparent)]
    Stopped(#[from] Stopped),
    #[error("no HTTP answer below 500 on port {port} within {secs} s ({attempts} checks, last: {last})")]
    NoAnswer { port: u16, secs: u64, attempts: u32, last: Check },
    /// Went live, then stopped during the settling period.
    #[error("{what} {after_secs:.1} s after it went live")]
    StoppedAfterLive { what: Stopped, after_secs: f64 },
    /// Went live, then failed two checks in a row during the settling period.
    #[error("it stopped answering {after_secs:.1} s after it went live ({check})")]
    StoppedAnswering { check: Check, after_secs: f64 },
    /// The release phase's command failed.
    #[error("its release command `{command}` exited with code {code}")]
    ReleaseCommandFailed { command: String, code: i64 },
    #[error("its release command `{command}` ran longer than {secs} s (rollout.release_timeout_secs) and was stopped")]
    ReleaseCommandTimedOut { command: String, secs: u64 },
    #[error("cannot wait for its release command: {0}")]
    ReleaseCommandLost(bollard::errors::Error),
}

/// A container that stopped running, or that its restart policy brought back.
#[derive(Debug, thiserror::Error)]
pub enum Stopped {
    #[error("its container is gone: {0}")]
    Gone(bollard::errors::Error),
    #[error("its container exited with code {0}")]
    Exited(i64),
    #[error("its process exited and was restarted {}", times(*.0))]
    RestartedClean(i64),
    #[error("its process exited with code {code} and was restarted {}", times(*restarts))]
    Restarted { code: i64, restarts: i64 },
}

fn times(n: i64) -> String {
    if n == 1 {
        "once".to_string()
    } else {
        format!("{n} times")
    }
}

/// What one HTTP check of a release found wrong.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Check {
    #[error("no answer yet")]
    NoAnswerYet,
    #[error("HTTP {0}")]
    Status(reqwest::StatusCode),
    #[error("connection refused")]
    Refused,
    #[error("{0}")]
    Other(String),
}

impl From<Error> for super::Error {
    fn from(error: Error) -> super::Error {
        super::Error::of(TargetKind::Docker, error)
    }
}

/// How soon a release's port is tried again while nothing answers on it yet.
const UNSERVED_RETRY: Duration = Duration::from_millis(20);

/// Releases as containers on the local dockerd.
#[derive(Clone)]
pub struct DockerTarget {
    docker: Docker,
    settings: Settings,
    http: reqwest::Client,
}

impl DockerTarget {
    pub fn new(docker: Docker, settings: Settings) -> DockerTarget {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain HTTP client builds");
        DockerTarget { docker, settings, http }
    }

    fn container_name(&self, app: &AppName, number: i64) -> String {
        format!("{}-{}-r{}", self.settings.instance, app, number)
    }

    /// The container of one process of a release: web.1 keeps the name releases always
    /// had (`<instance>-<app>-r<N>`), the others `…-r<N>-<type>.<index>`.
    fn process_name(&self, app: &AppName, number: i64, slot: &Slot) -> String {
        match (slot.kind.as_str(), slot.index) {
            ("web", 1) => self.container_name(app, number),
            (kind, index) => format!("{}-{kind}.{index}", self.container_name(app, number)),
        }
    }

    /// Starts one process of the release; a web process is waited for until it answers
    /// HTTP, and its address returned. Errors are reasons, for the release record.
    async fn start_process(
        &self,
        app: &AppName,
        release: &Release,
        slot: &Slot,
        log: &Tee,
    ) -> Result<Option<SocketAddr>, Unready> {
        let name = self.process_name(app, release.number, slot);
        let mut body = self.container_body(app, release)?;
        if let Some(labels) = body.labels.as_mut() {
            labels.insert(LABEL_PROCESS.to_string(), slot.label());
        }
        if let Some(command) = &slot.command {
            body.cmd = Some(through_bash(command));
        }
        let web = slot.command.is_none();
        let port_key = format!("{}/tcp", self.settings.app_port);
        if web {
            body.exposed_ports = Some(vec![port_key.clone()]);
        }
        if let Some(host) = body.host_config.as_mut() {
            if web {
                host.port_bindings = Some(HashMap::from([(
                    port_key,
                    Some(vec![PortBinding { host_ip: Some("127.0.0.1".to_string()), host_port: Some(String::new()) }]),
                )]));
            }
            host.restart_policy =
                Some(RestartPolicy { name: Some(RestartPolicyNameEnum::UNLESS_STOPPED), maximum_retry_count: None });
        }
        self.remove_container(&name).await;
        let create = CreateContainerOptionsBuilder::default().name(&name).build();
        self.docker.create_container(Some(create), body).await.map_err(Unready::Create)?;
        self.docker.start_container(&name, None).await.map_err(Unready::Start)?;
        if !web {
            log.line(format!("       started {name} ({})", slot.label()));
            return Ok(None);
        }
        let upstream = match self.published_addr(&name).await {
            Ok(upstream) => upstream,
            Err(error) => return Err(self.exited(&name).await.map_or(error, Unready::Stopped)),
        };
        log.line(format!(
            "       started {name} ({}); checking http://{upstream}/ for up to {} s",
            slot.label(),
            self.settings.checks_timeout.as_secs()
        ));
        self.wait_healthy(&name, upstream).await?;
        Ok(Some(upstream))
    }

    /// The containers of the release's processes (not its release phase or one-offs).
    async fn process_containers(&self, app: &AppName, number: i64) -> Result<Vec<(String, String)>, Error> {
        let web_1 = self.container_name(app, number);
        let mut found = Vec::new();
        for container in self.release_containers(app).await? {
            let labels = container.labels.clone().unwrap_or_default();
            if labels.get(LABEL_RELEASE).map(String::as_str) != Some(number.to_string().as_str()) {
                continue;
            }
            let name = container.names.iter().flatten().next().map(|n| n.trim_start_matches('/').to_string());
            let Some(name) = name else { continue };
            // web.1 of a release made before processes were labelled has no label.
            let process = match labels.get(LABEL_PROCESS) {
                Some(process) => process.clone(),
                None if name == web_1 => "web.1".to_string(),
                None => continue,
            };
            found.push((process, name));
        }
        found.sort_by(|a, b| process_order(&a.0).cmp(&process_order(&b.0)));
        Ok(found)
    }

    /// Pulls the release's image by digest (with hoistd's registry account when it is
    /// hoistd's registry).
    async fn pull(&self, release: &Release) -> Result<(), Unready> {
        let (repository, digest) = release.image.split_once('@').unwrap_or((&release.image, ""));
        let pull = CreateImageOptionsBuilder::default().from_image(repository).tag(digest).build();
        let credentials = self
            .settings
            .registry_credentials
            .as_ref()
            .filter(|(addr, _)| repository.strip_prefix(addr.as_str()).is_some_and(|rest| rest.starts_with('/')))
            .map(|(_, credentials)| credentials.clone());
        let mut pulling = self.docker.create_image(Some(pull), None, credentials);
        while let Some(item) = pulling.next().await {
            item.map_err(|source| Unready::Pull { image: release.image.clone(), source })?;
        }
        Ok(())
    }

    /// A container of the release: its image, config and `PORT`, limits and labels; the
    /// caller adds what differs (published port and restart policy, or a command).
    fn container_body(&self, app: &AppName, release: &Release) -> Result<ContainerCreateBody, Unready> {
        let labels = HashMap::from([
            (LABEL_INSTANCE.to_string(), self.settings.instance.clone()),
            (LABEL_APP.to_string(), app.to_string()),
            (LABEL_RELEASE.to_string(), release.number.to_string()),
            (LABEL_ROLE.to_string(), "release".to_string()),
        ]);
        let limits = self.settings.app_limits.for_release(&release.config)?;
        let mut env: Vec<String> = release.config.iter().map(|(key, value)| format!("{key}={value}")).collect();
        env.push(format!("PORT={}", self.settings.app_port));
        Ok(ContainerCreateBody {
            image: Some(release.image.clone()),
            env: Some(env),
            labels: Some(labels),
            host_config: Some(HostConfig {
                // tini as PID 1 forwards SIGTERM and reaps, so stopping a release is quick.
                init: Some(true),
                memory: Some((limits.memory_mb * 1024 * 1024) as i64),
                memory_swap: Some((limits.memory_mb * 1024 * 1024) as i64),
                pids_limit: Some(limits.pids),
                // An app (a Dockerfile's may run as root) keeps the capabilities serving
                // needs, not the ones that forge packets, make devices or gain privileges.
                cap_drop: Some(["NET_RAW", "MKNOD", "AUDIT_WRITE", "SETFCAP", "SYS_CHROOT"].map(String::from).to_vec()),
                security_opt: Some(vec!["no-new-privileges".to_string()]),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// A one-off container of the release with `command`, attached before it starts.
    async fn start_one_off(
        &self,
        app: &AppName,
        release: &Release,
        process: &super::OneOffSpec,
    ) -> Result<super::OneOff, Unready> {
        use bollard::container::LogOutput;
        use bollard::query_parameters::{AttachContainerOptionsBuilder, WaitContainerOptionsBuilder};
        let (name, mut body) = self.one_off_body(app, release, process).await?;
        body.attach_stdin = Some(true);
        body.attach_stdout = Some(true);
        body.attach_stderr = Some(true);
        body.open_stdin = Some(true);
        body.stdin_once = Some(true);
        body.tty = Some(process.tty.is_some());
        if let Some(size) = process.tty {
            // Sized before the command starts: dockerd before API 1.42 has no ConsoleSize,
            // and a resize after the start races the command.
            body.cmd = Some(super::sized_terminal(&process.command, size));
        }
        let create = CreateContainerOptionsBuilder::default().name(&name).build();
        self.docker.create_container(Some(create), body).await.map_err(Unready::Create)?;
        let attach =
            AttachContainerOptionsBuilder::default().stdin(true).stdout(true).stderr(true).stream(true).build();
        let attached = match self.docker.attach_container(&name, Some(attach)).await {
            Ok(attached) => attached,
            Err(error) => {
                self.remove_container(&name).await;
                return Err(Unready::Start(error));
            }
        };
        if let Err(error) = self.docker.start_container(&name, None).await {
            self.remove_container(&name).await;
            return Err(Unready::Start(error));
        }
        let output = attached
            .output
            .take_while(|item| std::future::ready(item.is_ok()))
            .filter_map(|item| {
                std::future::ready(match item {
                    Ok(LogOutput::StdErr { message }) => Some(super::Output::Stderr(message)),
                    Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                        Some(super::Output::Stdout(message))
                    }
                    _ => None,
                })
            })
            .boxed();
        let target = self.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let exit = async move {
            let mut waiting = target.docker.wait_container(&name, Some(WaitContainerOptionsBuilder::default().build()));
            let code = tokio::select! {
                ended = waiting.next() => match ended {
                    Some(Ok(done)) => done.status_code,
                    // bollard reports a non-zero exit as an error that carries the code.
                    Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
                    _ => -1,
                },
                Ok(()) = stopped => -1,
            };
            target.remove_container(&name).await;
            code
        }
        .boxed();
        Ok(super::OneOff { input: attached.input, output, exit, stop })
    }

    /// A one-off container of `release` not yet created: its name (`…-run-<id>`) and body,
    /// labelled as process `run.<id>`, with no restart policy.
    async fn one_off_body(
        &self,
        app: &AppName,
        release: &Release,
        process: &super::OneOffSpec,
    ) -> Result<(String, ContainerCreateBody), Unready> {
        self.pull(release).await?;
        let id = super::one_off_number();
        let name = format!("{}-run-{id}", self.container_name(app, release.number));
        let mut body = self.container_body(app, release)?;
        body.cmd = Some(through_bash(&process.command));
        if let Some(labels) = body.labels.as_mut() {
            labels.insert(LABEL_PROCESS.to_string(), format!("run.{id}"));
        }
        if let (Some(memory_mb), Some(host)) = (process.memory_mb, body.host_config.as_mut()) {
            host.memory = Some((memory_mb * 1024 * 1024) as i64);
            host.memory_swap = host.memory;
        }
        Ok((name, body))
    }

    /// Starts a one-off container in the background (`hoist run --detach`). It stays,
    /// exited, after its end, so its output can still be read with `hoist logs`, until the
    /// release is retired.
    async fn start_detached(
        &self,
        app: &AppName,
        release: &Release,
        process: &super::OneOffSpec,
    ) -> Result<String, Unready> {
        let (name, body) = self.one_off_body(app, release, process).await?;
        let process_name =
            body.labels.as_ref().and_then(|l| l.get(LABEL_PROCESS).cloned()).unwrap_or_else(|| "run".to_string());
        let create = CreateContainerOptionsBuilder::default().name(&name).build();
        self.docker.create_container(Some(create), body).await.map_err(Unready::Create)?;
        if let Err(error) = self.docker.start_container(&name, None).await {
            self.remove_container(&name).await;
            return Err(Unready::Start(error));
        }
        Ok(process_name)
    }

    /// Runs the release phase's command in a container of the release and streams its
    /// output to `log`; the container is removed at the end, whatever happened.
    async fn run_release_command(
        &self,
        app: &AppName,
        release: &Release,
        command: &str,
        timeout: Duration,
        log: &Tee,
    ) -> Result<(), Unready> {
        self.pull(release).await?;
        let name = format!("{}-release", self.container_name(app, release.number));
        let mut body = self.container_body(app, release)?;
        // Through bash, as Procfile lines run.
        body.cmd = Some(through_bash(command));
        self.remove_container(&name).await;
        let create = CreateContainerOptionsBuilder::default().name(&name).build();
        self.docker.create_container(Some(create), body).await.map_err(Unready::Create)?;
        let ran = async {
            self.docker.start_container(&name, None).await.map_err(Unready::Start)?;
            let options = LogsOptionsBuilder::default().stdout(true).stderr(true).follow(true).build();
            let mut output = self.docker.logs(&name, Some(options));
            let mut partial = String::new();
            while let Some(Ok(chunk)) = output.next().await {
                partial.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
                while let Some(end) = partial.find('\n') {
                    let line: String = partial.drain(..=end).collect();
                    log.line(format!("       {}", line.trim_end()));
                }
            }
            if !partial.trim().is_empty() {
                log.line(format!("       {}", partial.trim_end()));
            }
            let inspect = self.docker.inspect_container(&name, None).await.map_err(Unready::ReleaseCommandLost)?;
            let state = inspect.state.unwrap_or_default();
            match state.exit_code.unwrap_or(-1) {
                0 => Ok(()),
                code => Err(Unready::ReleaseCommandFailed { command: command.to_string(), code }),
            }
        };
        let result = match tokio::time::timeout(timeout, ran).await {
            Ok(result) => result,
            Err(_) => Err(Unready::ReleaseCommandTimedOut { command: command.to_string(), secs: timeout.as_secs() }),
        };
        self.remove_container(&name).await;
        result
    }

    /// The 127.0.0.1 address dockerd published the app port on.
    async fn published_addr(&self, container: &str) -> Result<SocketAddr, Unready> {
        let inspect = self.docker.inspect_container(container, None).await.map_err(Unready::Inspect)?;
        let key = format!("{}/tcp", self.settings.app_port);
        let port = inspect
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|ports| ports.get(&key).cloned().flatten())
            .and_then(|bindings| bindings.into_iter().find_map(|b| b.host_port))
            .and_then(|port| port.parse::<u16>().ok())
            .ok_or(Unready::NoPort(key))?;
        Ok(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// Why the container is not running, if it stopped or restarted since it started
    /// (the restart policy brings a crashed process back, so a crash loop can look
    /// "running": the restart count tells).
    async fn exited(&self, container: &str) -> Option<Stopped> {
        let inspect = match self.docker.inspect_container(container, None).await {
            Ok(inspect) => inspect,
            Err(error) => return Some(Stopped::Gone(error)),
        };
        let restarts = inspect.restart_count.unwrap_or(0);
        let state = inspect.state.unwrap_or_default();
        let code = state.exit_code.unwrap_or(-1);
        if state.running == Some(false) {
            return Some(Stopped::Exited(code));
        }
        // Once restarted, dockerd no longer tells the code the process exited with.
        (restarts > 0).then_some(match code {
            0 => Stopped::RestartedClean(restarts),
            code => Stopped::Restarted { code, restarts },
        })
    }

    /// One HTTP check: `Err` says what was wrong.
    async fn answers(&self, upstream: SocketAddr) -> Result<(), Check> {
        match self.http.get(format!("http://{upstream}/")).send().await {
            Ok(response) if response.status().as_u16() < 500 => Ok(()),
            Ok(response) => Err(Check::Status(response.status())),
            Err(e) => Err(if e.is_connect() { Check::Refused } else { Check::Other(e.to_string()) }),
        }
    }

    /// Waits for the release's first answer. While nothing answers at all (the port is
    /// refused, or dockerd's proxy resets the connection: each costs a millisecond on
    /// loopback), the port is tried every [`UNSERVED_RETRY`], so a release goes live
    /// within that of its first answer; the container is inspected, and an answer that
    /// is an error retried, every `checks_interval`.
    async fn wait_healthy(&self, container: &str, upstream: SocketAddr) -> Result<(), Unready> {
        let started = Instant::now();
        let mut last = Check::NoAnswerYet;
        let mut attempts = 0;
        let mut inspected: Option<Instant> = None;
        while started.elapsed() < self.settings.checks_timeout {
            attempts += 1;
            if inspected.is_none_or(|at| at.elapsed() >= self.settings.checks_interval) {
                if let Some(exited) = self.exited(container).await {
                    return Err(exited.into());
                }
                inspected = Some(Instant::now());
            }
            let checked = Instant::now();
            match self.answers(upstream).await {
                Ok(()) => return Ok(()),
                Err(what) => last = what,
            }
            let unserved = !matches!(last, Check::Status(_)) && checked.elapsed() < UNSERVED_RETRY;
            let pause = if unserved {
                UNSERVED_RETRY.min(self.settings.checks_interval)
            } else {
                self.settings.checks_interval
            };
            tokio::time::sleep(pause).await;
        }
        Err(Unready::NoAnswer {
            port: self.settings.app_port,
            secs: self.settings.checks_timeout.as_secs(),
            attempts,
            last,
        })
    }

    /// Every release container of the app, running or not.
    async fn release_containers(&self, app: &AppName) -> Result<Vec<bollard::models::ContainerSummary>, Error> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                format!("{LABEL_INSTANCE}={}", self.settings.instance),
                format!("{LABEL_APP}={app}"),
                format!("{LABEL_ROLE}=release"),
            ],
        )]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        Ok(self.docker.list_containers(Some(options)).await?)
    }

    /// A release that will not serve: the last output of `container` (the process that
    /// failed) to the log, and every container of the release removed.
    async fn give_up(&self, app: &AppName, release: &Release, container: &str, reason: Unready, log: &Tee) -> Failure {
        let tail = self.container_log_tail(container, 20).await;
        if !tail.is_empty() {
            log.line(format!("       last lines of {container}'s output:"));
            for line in &tail {
                log.line(format!("       | {line}"));
            }
        }
        self.remove_release(app, release.number).await;
        Failure::before_deploy(reason.to_string())
    }

    /// Removes every container of release `number` of the app (its processes, release
    /// phase, one-offs).
    async fn remove_release(&self, app: &AppName, number: i64) {
        let containers = match self.release_containers(app).await {
            Ok(containers) => containers,
            Err(error) => {
                tracing::warn!(%app, release = number, %error, "cannot list the release's containers");
                return;
            }
        };
        let number = number.to_string();
        for container in containers {
            let of_release = container.labels.as_ref().and_then(|l| l.get(LABEL_RELEASE)) == Some(&number);
            if let (true, Some(id)) = (of_release, container.id) {
                self.remove_container(&id).await;
            }
        }
    }

    async fn container_log_tail(&self, container: &str, lines: usize) -> Vec<String> {
        let options = LogsOptionsBuilder::default().stdout(true).stderr(true).tail(&lines.to_string()).build();
        let mut output = self.docker.logs(container, Some(options));
        let mut text = String::new();
        while let Some(Ok(chunk)) = output.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        crate::logs::tail(&text, lines).into_iter().map(str::to_string).collect()
    }

    async fn remove_container(&self, name: &str) {
        let stop = StopContainerOptionsBuilder::default().t(5).build();
        let _ = self.docker.stop_container(name, Some(stop)).await;
        let remove = RemoveContainerOptionsBuilder::default().force(true).build();
        match self.docker.remove_container(name, Some(remove)).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(error) => tracing::warn!(container = name, %error, "cannot remove container"),
        }
    }
}

fn secs(duration: Duration) -> String {
    format!("{:.0}", duration.as_secs_f64())
}

#[async_trait::async_trait]
impl Target for DockerTarget {
    async fn runtime_logs(
        &self,
        app: &AppName,
        release: &Release,
        tail: usize,
        follow: bool,
    ) -> Result<super::LineStream> {
        let mut containers = self.process_containers(app, release.number).await?;
        if containers.is_empty() {
            // Asking turns a release whose container is gone into an error, not an empty stream.
            let container = self.container_name(app, release.number);
            self.docker.inspect_container(&container, None).await.map_err(Error::from)?;
            containers.push(("web.1".to_string(), container));
        }
        // One process: its lines as they are; several: each line says whose it is.
        let several = containers.len() > 1;
        let streams = containers.into_iter().map(|(process, container)| {
            let options =
                LogsOptionsBuilder::default().stdout(true).stderr(true).follow(follow).tail(&tail.to_string()).build();
            self.docker
                .logs(&container, Some(options))
                .take_while(|chunk| std::future::ready(chunk.is_ok()))
                .flat_map(move |chunk| {
                    let text = chunk.map(|c| String::from_utf8_lossy(&c.into_bytes()).into_owned()).unwrap_or_default();
                    let lines: Vec<String> = text
                        .lines()
                        .map(|line| if several { format!("{process}: {line}") } else { line.to_string() })
                        .collect();
                    futures_util::stream::iter(lines)
                })
                .boxed()
        });
        Ok(futures_util::stream::select_all(streams).boxed())
    }

    fn kind(&self) -> TargetKind {
        TargetKind::Docker
    }

    async fn deploy(&self, app: &AppName, release: &Release, log: &Tee) -> Result<Deployed, Failure> {
        let web_1 = self.container_name(app, release.number);
        if let Err(reason) = self.pull(release).await {
            return Err(self.give_up(app, release, &web_1, reason, log).await);
        }
        let slots = slots(release);
        if slots.len() > 1 {
            let shown: Vec<String> = slots.iter().map(Slot::label).collect();
            log.line(format!("       processes: {}", shown.join(", ")));
        }
        let started =
            futures_util::future::join_all(slots.iter().map(|slot| self.start_process(app, release, slot, log))).await;
        let mut upstreams = Vec::new();
        for (slot, result) in slots.iter().zip(started) {
            match result {
                Ok(Some(upstream)) => upstreams.push(upstream),
                Ok(None) => {}
                Err(reason) => {
                    let name = self.process_name(app, release.number, slot);
                    return Err(self.give_up(app, release, &name, reason, log).await);
                }
            }
        }
        Ok(Deployed { reach: Reach::Addresses(upstreams), revision: None })
    }

    async fn processes(&self, app: &AppName, release: &Release) -> Result<Vec<crate::wire::Process>> {
        let mut processes = Vec::new();
        for (process, name) in self.process_containers(app, release.number).await? {
            let (kind, index) = process.rsplit_once('.').unwrap_or((process.as_str(), "1"));
            let Ok(inspect) = self.docker.inspect_container(&name, None).await else { continue };
            let state = inspect.state.unwrap_or_default();
            let word = if state.restarting == Some(true) {
                "restarting"
            } else if state.running == Some(true) {
                "up"
            } else if state.exit_code.unwrap_or(0) != 0 {
                "crashed"
            } else if kind == "run" {
                // A detached one-off that ended well.
                "complete"
            } else {
                "down"
            };
            processes.push(crate::wire::Process {
                kind: kind.to_string(),
                index: index.parse().unwrap_or(1),
                state: word.to_string(),
                since: state.started_at.filter(|t| !t.starts_with("0001")),
                restarts: inspect.restart_count.unwrap_or(0),
                release: release.number,
                name,
            });
        }
        Ok(processes)
    }

    async fn sync_files(
        &self,
        app: &AppName,
        release: &Release,
        archive: Vec<u8>,
        signal: Option<&str>,
    ) -> Result<usize> {
        let mut synced = 0;
        for (process, name) in self.process_containers(app, release.number).await? {
            let options = bollard::query_parameters::UploadToContainerOptionsBuilder::default().path("/").build();
            let body = bollard::body_full(bytes::Bytes::from(archive.clone()));
            self.docker.upload_to_container(&name, Some(options), body).await.map_err(Error::from)?;
            // tini, PID 1, passes the signal on to the app; one-offs are left alone.
            if let Some(signal) = signal.filter(|_| !process.starts_with("run.")) {
                let options = bollard::query_parameters::KillContainerOptionsBuilder::default().signal(signal).build();
                self.docker.kill_container(&name, Some(options)).await.map_err(Error::from)?;
            }
            synced += 1;
        }
        Ok(synced)
    }

    async fn restart_processes(&self, app: &AppName, release: &Release, kind: &str) -> Result<usize> {
        let mut restarted = 0;
        for (process, name) in self.process_containers(app, release.number).await? {
            if process.rsplit_once('.').map_or(process.as_str(), |(k, _)| k) != kind {
                continue;
            }
            let options = bollard::query_parameters::RestartContainerOptionsBuilder::default().t(5).build();
            self.docker.restart_container(&name, Some(options)).await.map_err(Error::from)?;
            restarted += 1;
        }
        Ok(restarted)
    }

    async fn run_once(&self, app: &AppName, release: &Release, process: &super::OneOffSpec) -> Result<super::OneOff> {
        self.start_one_off(app, release, process).await.map_err(|e| super::Error::of(TargetKind::Docker, e))
    }

    async fn run_detached(&self, app: &AppName, release: &Release, process: &super::OneOffSpec) -> Result<String> {
        self.start_detached(app, release, process).await.map_err(|e| super::Error::of(TargetKind::Docker, e))
    }

    async fn release_phase(
        &self,
        app: &AppName,
        release: &Release,
        command: &str,
        timeout: Duration,
        log: &Tee,
    ) -> Result<(), Failure> {
        self.run_release_command(app, release, command, timeout, log)
            .await
            .map_err(|reason| Failure::before_deploy(reason.to_string()))
    }

    async fn settle(&self, app: &AppName, release: &Release, log: &Tee) -> Result<(), Failure> {
        if self.settings.settle.is_zero() {
            return Ok(());
        }
        log.line(format!(
            "       settling: release {} must keep running and answering for {} s",
            release.number,
            secs(self.settings.settle)
        ));
        let mut watched = Vec::new();
        for slot in slots(release) {
            let name = self.process_name(app, release.number, &slot);
            let upstream = match slot.command {
                None => Some(self.published_addr(&name).await.map_err(|e| Failure::before_deploy(e.to_string()))?),
                Some(_) => None,
            };
            watched.push((name, upstream, 0));
        }
        let started = Instant::now();
        while started.elapsed() < self.settings.settle {
            tokio::time::sleep(self.settings.checks_interval).await;
            for (name, upstream, failed_checks) in watched.iter_mut() {
                if let Some(exited) = self.exited(name).await {
                    let after_secs = started.elapsed().as_secs_f64();
                    let reason = Unready::StoppedAfterLive { what: exited, after_secs };
                    return Err(self.give_up(app, release, name, reason, log).await);
                }
                let Some(upstream) = upstream else { continue };
                match self.answers(*upstream).await {
                    Ok(()) => *failed_checks = 0,
                    // One slow answer is not a failure; two in a row are.
                    Err(_) if *failed_checks == 0 => *failed_checks = 1,
                    Err(what) => {
                        let after_secs = started.elapsed().as_secs_f64();
                        let reason = Unready::StoppedAnswering { check: what, after_secs };
                        return Err(self.give_up(app, release, name, reason, log).await);
                    }
                }
            }
        }
        Ok(())
    }

    async fn retire(&self, app: &AppName, previous: &Release) {
        // Traffic has moved already; stopping the old containers need not hold up the push.
        let (target, app, number) = (self.clone(), app.clone(), previous.number);
        tokio::spawn(async move { target.remove_release(&app, number).await });
    }

    async fn remove_app(&self, app: &AppName) -> Result<()> {
        // Release containers only: builds are the build stage's to stop.
        for container in self.release_containers(app).await? {
            if let Some(id) = container.id {
                self.remove_container(&id).await;
            }
        }
        Ok(())
    }

    async fn restore(&self, app: &AppName, live: Option<&Release>, interrupted: &[Release]) -> Result<Restored> {
        for release in interrupted {
            self.remove_release(app, release.number).await;
        }
        // A kill between the switch and the retiring of the old release leaves that one
        // behind, exited or running: only the live release's containers stay.
        let keep = live.map(|l| l.number.to_string());
        for container in self.release_containers(app).await? {
            let release = container.labels.as_ref().and_then(|l| l.get(LABEL_RELEASE)).cloned();
            if release != keep {
                if let Some(id) = container.id {
                    tracing::info!(%app, container = %id, "removing a release container that is not live");
                    self.remove_container(&id).await;
                }
            }
        }
        let Some(live) = live else { return Ok(Restored::default()) };
        let mut upstreams = Vec::new();
        for (process, name) in self.process_containers(app, live.number).await? {
            let running = matches!(
                self.docker.inspect_container(&name, None).await,
                Ok(inspect) if inspect.state.as_ref().and_then(|s| s.running) == Some(true)
            );
            if !running {
                self.docker.start_container(&name, None).await.map_err(Error::from)?;
            }
            if process.starts_with("web.") {
                match self.published_addr(&name).await {
                    Ok(upstream) => upstreams.push(upstream),
                    Err(error) => {
                        tracing::error!(%app, release = live.number, %error, "cannot find a web process's port")
                    }
                }
            }
        }
        Ok(Restored { reach: Some(Reach::Addresses(upstreams)), live_revision: None })
    }
}

/// One process of a release: `web.1`, `worker.2`; `command` is `None` for web, which
/// runs the image's own command (the Procfile's `web:` or the buildpack's run script).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot {
    kind: String,
    index: u32,
    command: Option<String>,
}

impl Slot {
    fn label(&self) -> String {
        format!("{}.{}", self.kind, self.index)
    }
}

/// Each process a release runs ([`super::process_types`]), numbered from 1 per type.
fn slots(release: &Release) -> Vec<Slot> {
    super::process_types(release)
        .into_iter()
        .flat_map(|t| (1..=t.count).map(move |index| Slot { kind: t.kind.clone(), index, command: t.command.clone() }))
        .collect()
}

/// A command line run as Procfile lines run: the whole line through bash.
fn through_bash(command: &str) -> Vec<String> {
    vec!["/bin/bash".to_string(), "-c".to_string(), command.to_string()]
}

/// `web.2` sorts after `web.1` and before `worker.1`, and `web.10` after `web.9`.
fn process_order(process: &str) -> (bool, String, u32) {
    let (kind, index) = process.rsplit_once('.').unwrap_or((process, "0"));
    (kind != "web", kind.to_string(), index.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_runs_web_and_every_procfile_type_but_release_as_its_formation_says() {
        let release = Release {
            app: AppName::parse("web1").unwrap(),
            number: 3,
            image: "r@sha256:1".to_string(),
            build_id: None,
            status: crate::store::ReleaseStatus::Pending,
            target: TargetKind::Docker,
            revision: None,
            config_version: 0,
            config: Default::default(),
            cause: String::new(),
            processes: [("web", "serve"), ("worker", "work"), ("release", "migrate"), ("clock", "tick")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
            formation: [("web", 2), ("clock", 0)].map(|(k, v)| (k.to_string(), v)).into(),
            error: None,
            created_at: String::new(),
            finished_at: None,
        };
        let labels: Vec<String> = slots(&release).iter().map(Slot::label).collect();
        assert_eq!(labels, ["web.1", "web.2", "worker.1"], "web first, release never, clock scaled to 0");
        assert_eq!(slots(&release)[0].command, None, "web runs the image's own command");
        assert_eq!(slots(&release)[2].command.as_deref(), Some("work"));
        let mut order = vec!["worker.1", "web.10", "web.2", "web.9", "clock.1"];
        order.sort_by_key(|p| process_order(p));
        assert_eq!(order, ["web.2", "web.9", "web.10", "clock.1", "worker.1"]);
    }

    #[test]
    fn why_a_release_did_not_serve_reads_as_before() {
        let limits = AppLimits { memory_mb: 512, pids: 100 };
        let config = std::collections::BTreeMap::from([("HOIST_MEMORY_MB".to_string(), "lots".to_string())]);
        let refused = limits.for_release(&config).unwrap_err().to_string();
        assert!(refused.starts_with("config var HOIST_MEMORY_MB=\"lots\" is not a positive whole number"), "{refused}");
        let config = std::collections::BTreeMap::from([("HOIST_PIDS_LIMIT".to_string(), "64".to_string())]);
        assert_eq!(limits.for_release(&config).unwrap(), AppLimits { memory_mb: 512, pids: 64 });
        let cases: Vec<(Unready, &str)> = vec![
            (Stopped::Exited(3).into(), "its container exited with code 3"),
            (Stopped::RestartedClean(1).into(), "its process exited and was restarted once"),
            (
                Stopped::Restarted { code: 2, restarts: 4 }.into(),
                "its process exited with code 2 and was restarted 4 times",
            ),
            (
                Unready::NoAnswer { port: 5000, secs: 30, attempts: 60, last: Check::Refused },
                "no HTTP answer below 500 on port 5000 within 30 s (60 checks, last: connection refused)",
            ),
            (
                Unready::StoppedAfterLive { what: Stopped::Exited(1), after_secs: 2.04 },
                "its container exited with code 1 2.0 s after it went live",
            ),
            (
                Unready::StoppedAnswering { check: Check::Status(reqwest::StatusCode::BAD_GATEWAY), after_secs: 1.0 },
                "it stopped answering 1.0 s after it went live (HTTP 502 Bad Gateway)",
            ),
        ];
        for (unready, text) in cases {
            assert_eq!(unready.to_string(), text);
        }
    }
}
