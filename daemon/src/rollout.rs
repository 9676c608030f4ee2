//! The rollout stage and its one target so far, Docker on this machine.
//!
//! A release's life:
//!
//! ```text
//!   pending ──healthy──▶ live ──newer release live──▶ retired
//!      │
//!      ├──never healthy / exited──▶ failed      (the previous release keeps serving)
//!      └──hoistd stopped──────────▶ interrupted (marked on the next start)
//! ```
//!
//! Rolling out: pull the image by digest, start a container with `PORT` set, published
//! on 127.0.0.1 only, poll it over HTTP until it answers (Dokku's CHECKS), then switch
//! the router and stop the old container. Whatever fails before the switch leaves the
//! running release alone.
//!
//! Architecture invariant: a rollout starts only from an image stream change
//! (`image_stream`), and only this module creates or removes release containers.

use crate::app::AppName;
use crate::docker::{LABEL_APP, LABEL_INSTANCE, LABEL_RELEASE, LABEL_ROLE};
use crate::logs::{LiveLog, LogDir, Tee};
use crate::router::Routes;
use crate::store::{self, Release, Store};
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::instrument;

/// What can go wrong in a rollout. Each message is shown to the pushing user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("release {number} of {app} never became healthy: {reason}; release {previous} keeps serving")]
    Unhealthy { app: String, number: i64, reason: String, previous: String },
    #[error("dockerd: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("cannot write the release log: {0}")]
    Log(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A request to roll out an image; the image stream sends these.
#[derive(Debug)]
pub struct RolloutRequest {
    pub app: AppName,
    /// `repository@sha256:…`.
    pub image: String,
    pub build_id: Option<i64>,
    /// The log of the build that caused it, which the pushing `git` follows.
    pub cause_log: Option<Arc<LiveLog>>,
    /// Told how it ended.
    pub done: Option<tokio::sync::oneshot::Sender<Result<Release>>>,
}

/// Settings of the Docker target.
#[derive(Debug, Clone)]
pub struct Settings {
    pub instance: String,
    pub app_port: u16,
    pub checks_timeout: Duration,
    pub checks_interval: Duration,
}

/// Releases as containers on the local dockerd.
#[derive(Clone)]
pub struct DockerTarget {
    docker: Docker,
    store: Arc<Store>,
    routes: Routes,
    logs: LogDir,
    settings: Settings,
    http: reqwest::Client,
}

impl DockerTarget {
    pub fn new(docker: Docker, store: Arc<Store>, routes: Routes, logs: LogDir, settings: Settings) -> DockerTarget {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain HTTP client builds");
        DockerTarget { docker, store, routes, logs, settings, http }
    }

    fn container_name(&self, app: &AppName, number: i64) -> String {
        format!("{}-{}-r{}", self.settings.instance, app, number)
    }

    /// Rolls out `request.image` as the app's next release.
    #[instrument(skip_all, fields(app = %request.app, image = %request.image))]
    pub async fn roll_out(&self, request: &RolloutRequest) -> Result<Release> {
        let app = &request.app;
        let release = self.store.create_release(app, &request.image, request.build_id)?;
        let release_log = LiveLog::create(&self.logs.release_log(app, release.number))?;
        let log = Tee::new([Some(release_log), request.cause_log.clone()].into_iter().flatten().collect());
        log.line(format!("-----> Rolling out release {} of {} ({})", release.number, app, request.image));
        match self.start_and_check(app, &release, &log).await {
            Ok(upstream) => {
                let previous = self.store.live_release(app)?;
                self.routes.set(app.as_str(), upstream);
                self.store.make_release_live(app, release.number)?;
                log.line(format!("       release {} is live; traffic switched", release.number));
                if let Some(previous) = previous {
                    // Traffic has moved; stopping the old container need not hold up the push.
                    let (target, name) = (self.clone(), self.container_name(app, previous.number));
                    log.line(format!("       stopping release {}", previous.number));
                    tokio::spawn(async move { target.remove_container(&name).await });
                }
                Ok(self.store.release(app, release.number)?.expect("release exists"))
            }
            Err(reason) => {
                let container = self.container_name(app, release.number);
                let tail = self.container_log_tail(&container, 20).await;
                if !tail.is_empty() {
                    log.line(format!("       last lines of release {}'s output:", release.number));
                    for line in &tail {
                        log.line(format!("       | {line}"));
                    }
                }
                self.remove_container(&container).await;
                self.store.fail_release(app, release.number, &reason)?;
                let previous = match self.store.live_release(app)? {
                    Some(live) => live.number.to_string(),
                    None => "(none yet)".to_string(),
                };
                let error = Error::Unhealthy { app: app.to_string(), number: release.number, reason, previous };
                log.line(format!("       {error}"));
                Err(error)
            }
        }
    }

    /// Starts the release's container and waits until it answers HTTP.
    /// Errors are reasons, for the release record and the user.
    async fn start_and_check(&self, app: &AppName, release: &Release, log: &Tee) -> Result<SocketAddr, String> {
        let name = self.container_name(app, release.number);
        let (repository, digest) = release.image.split_once('@').unwrap_or((&release.image, ""));
        let pull = CreateImageOptionsBuilder::default().from_image(repository).tag(digest).build();
        let mut pulling = self.docker.create_image(Some(pull), None, None);
        while let Some(item) = pulling.next().await {
            item.map_err(|e| format!("cannot pull {}: {e}", release.image))?;
        }

        let port_key = format!("{}/tcp", self.settings.app_port);
        let labels = HashMap::from([
            (LABEL_INSTANCE.to_string(), self.settings.instance.clone()),
            (LABEL_APP.to_string(), app.to_string()),
            (LABEL_RELEASE.to_string(), release.number.to_string()),
            (LABEL_ROLE.to_string(), "release".to_string()),
        ]);
        let body = ContainerCreateBody {
            image: Some(release.image.clone()),
            env: Some(vec![format!("PORT={}", self.settings.app_port)]),
            exposed_ports: Some(vec![port_key.clone()]),
            labels: Some(labels),
            host_config: Some(HostConfig {
                port_bindings: Some(HashMap::from([(
                    port_key,
                    Some(vec![PortBinding { host_ip: Some("127.0.0.1".to_string()), host_port: Some(String::new()) }]),
                )])),
                // tini as PID 1 forwards SIGTERM and reaps, so stopping a release is quick.
                init: Some(true),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.remove_container(&name).await;
        let create = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self
            .docker
            .create_container(Some(create), body)
            .await
            .map_err(|e| format!("cannot create container: {e}"))?;
        self.store.set_release_container(app, release.number, &created.id).map_err(|e| e.to_string())?;
        self.docker.start_container(&name, None).await.map_err(|e| format!("cannot start container: {e}"))?;
        let upstream = self.published_addr(&name).await.map_err(|e| format!("cannot find its port: {e}"))?;
        log.line(format!(
            "       started {name}; checking http://{upstream}/ for up to {} s",
            self.settings.checks_timeout.as_secs()
        ));
        self.wait_healthy(&name, upstream).await?;
        Ok(upstream)
    }

    /// The 127.0.0.1 address dockerd published the app port on.
    async fn published_addr(&self, container: &str) -> Result<SocketAddr, String> {
        let inspect = self.docker.inspect_container(container, None).await.map_err(|e| e.to_string())?;
        let key = format!("{}/tcp", self.settings.app_port);
        let port = inspect
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|ports| ports.get(&key).cloned().flatten())
            .and_then(|bindings| bindings.into_iter().find_map(|b| b.host_port))
            .and_then(|port| port.parse::<u16>().ok())
            .ok_or_else(|| format!("no published port for {key}"))?;
        Ok(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    async fn wait_healthy(&self, container: &str, upstream: SocketAddr) -> Result<(), String> {
        let started = Instant::now();
        let mut last = String::from("no answer yet");
        let mut attempts = 0;
        while started.elapsed() < self.settings.checks_timeout {
            attempts += 1;
            let state = self.docker.inspect_container(container, None).await.map_err(|e| e.to_string())?.state;
            if let Some(state) = state {
                if state.running == Some(false) {
                    return Err(format!("its container exited with code {}", state.exit_code.unwrap_or(-1)));
                }
            }
            match self.http.get(format!("http://{upstream}/")).send().await {
                Ok(response) if response.status().as_u16() < 500 => return Ok(()),
                Ok(response) => last = format!("HTTP {}", response.status()),
                Err(e) => last = if e.is_connect() { "connection refused".to_string() } else { e.to_string() },
            }
            tokio::time::sleep(self.settings.checks_interval).await;
        }
        Err(format!(
            "no HTTP answer below 500 on port {} within {} s ({attempts} checks, last: {last})",
            self.settings.app_port,
            self.settings.checks_timeout.as_secs()
        ))
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

    /// After a restart: routes every app with a live release to its container again,
    /// starting the container if it stopped, and removes containers of releases that
    /// were interrupted.
    pub async fn restore(&self, interrupted: &[Release]) -> Result<()> {
        for release in interrupted {
            if let Ok(app) = AppName::parse(&release.app) {
                self.remove_container(&self.container_name(&app, release.number)).await;
            }
        }
        for app in self.store.apps()? {
            let Some(live) = self.store.live_release(&app.name)? else { continue };
            let name = self.container_name(&app.name, live.number);
            let running = matches!(
                self.docker.inspect_container(&name, None).await,
                Ok(inspect) if inspect.state.as_ref().and_then(|s| s.running) == Some(true)
            );
            if !running {
                if let Err(error) = self.docker.start_container(&name, None).await {
                    tracing::error!(app = %app.name, release = live.number, %error, "cannot start the live release again");
                    continue;
                }
            }
            match self.published_addr(&name).await {
                Ok(upstream) => {
                    self.routes.set(app.name.as_str(), upstream);
                    tracing::info!(app = %app.name, release = live.number, %upstream, "route restored");
                }
                Err(error) => tracing::error!(app = %app.name, %error, "cannot restore route"),
            }
        }
        Ok(())
    }

    /// Stops and removes every container of `app`, and its route.
    pub async fn remove_app(&self, app: &AppName) -> Result<()> {
        self.routes.remove(app.as_str());
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{LABEL_INSTANCE}={}", self.settings.instance), format!("{LABEL_APP}={app}")],
        )]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        for container in self.docker.list_containers(Some(options)).await? {
            if let Some(id) = container.id {
                self.remove_container(&id).await;
            }
        }
        let cache_volume = format!("{}-cache-{}", self.settings.instance, app);
        match self.docker.remove_volume(&cache_volume, None::<bollard::query_parameters::RemoveVolumeOptions>).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(error) => tracing::warn!(volume = %cache_volume, %error, "cannot remove the build cache"),
        }
        Ok(())
    }
}
