//! Starting hoistd: state, registry, recovery after a restart, the pipeline's stages,
//! and the two listeners (API + git, and the app router). `main` only calls this.

use crate::api::{self, ApiState};
use crate::app::AppName;
use crate::build::{self, Builder};
use crate::config::Config;
use crate::docker::{LABEL_INSTANCE, LABEL_ROLE};
use crate::image_stream::ImageStreams;
use crate::logs::{LiveLog, LogDir};
use crate::pipeline::{self, Pipeline, Stages};
use crate::receive::{HookEnv, Repos};
use crate::registry::{self, Registry};
use crate::rollout::{self, DockerTarget};
use crate::router::{self, Routes};
use crate::store::Store;
use crate::{auth, docker, store};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What can stop hoistd from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create the data dir {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Auth(#[from] auth::Error),
    #[error(transparent)]
    Docker(#[from] docker::Error),
    #[error(transparent)]
    Registry(#[from] registry::Error),
    #[error(transparent)]
    Rollout(#[from] rollout::Error),
    #[error("cannot listen on {addr}: {source}; is another hoistd running? set another address in the config")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot find hoistd's own program to run as git hook: {0}")]
    OwnProgram(std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A started hoistd.
pub struct Daemon {
    pub api_addr: SocketAddr,
    pub router_addr: SocketAddr,
    /// Printed once, on the first start.
    pub new_admin_token: Option<String>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Daemon {
    /// Starts everything; returns once both listeners accept connections.
    pub async fn start(config: Config) -> Result<Daemon> {
        let data_dir = config.data_dir.clone();
        for dir in [data_dir.clone(), data_dir.join("repos"), data_dir.join("logs")] {
            std::fs::create_dir_all(&dir).map_err(|source| Error::DataDir { path: dir.clone(), source })?;
        }
        let store = Arc::new(Store::open(&data_dir.join("hoist.db"))?);
        let (admin_token, created) = auth::load_or_create_admin_token(&data_dir)?;
        let docker = docker::connect(&config.docker_host).await?;
        let mut tasks = Vec::new();

        if config.registry.external {
            registry::wait_ready(config.registry.addr, Duration::from_secs(10), &PathBuf::from("(external registry)"))
                .await?;
        } else {
            tasks.push(
                registry::start_supervised(&config.registry.program, config.registry.addr, &data_dir.join("registry"))
                    .await?,
            );
        }
        let registry = Registry::new(config.registry.addr);

        let logs = LogDir::new(data_dir.join("logs"));
        let routes = Routes::default();
        let target = DockerTarget::new(
            docker.clone(),
            store.clone(),
            routes.clone(),
            logs.clone(),
            rollout::Settings {
                instance: config.instance.clone(),
                app_port: config.rollout.app_port,
                checks_timeout: Duration::from_secs(config.rollout.checks_timeout_secs),
                checks_interval: Duration::from_millis(config.rollout.checks_interval_ms),
            },
        );

        // Work cut off by a crash or kill: mark it, clean its containers, restore routes.
        let (interrupted_builds, interrupted_releases) = store.recover_after_restart()?;
        for id in &interrupted_builds {
            if let Some(build) = store.build(*id)? {
                if let Ok(app) = AppName::parse(&build.app) {
                    if let Ok(log) = LiveLog::create(&logs.build_log(&app, build.id)) {
                        log.line("=====> Interrupted: hoistd stopped during this build; push again");
                    }
                }
            }
            tracing::warn!(build = id, "build interrupted by a restart");
        }
        remove_builder_containers(&docker, &config.instance).await;
        target.restore(&interrupted_releases).await?;

        let rollouts = pipeline::start_rollout_stage(target.clone());
        let image_streams = ImageStreams::new(store.clone(), rollouts);
        let builder = Builder::new(
            docker.clone(),
            build::Settings {
                instance: config.instance.clone(),
                buildpacks_dir: config.build.buildpacks_dir.clone(),
                timeout: Duration::from_secs(config.build.timeout_secs),
                app_port: config.rollout.app_port,
            },
        );
        let pipeline = Pipeline::start(
            Stages { store: store.clone(), builder, registry, docker: docker.clone(), image_streams },
            config.build.parallel,
        );

        let api_listener = tokio::net::TcpListener::bind(config.api_addr)
            .await
            .map_err(|source| Error::Listen { addr: config.api_addr, source })?;
        let router_listener = tokio::net::TcpListener::bind(config.router_addr)
            .await
            .map_err(|source| Error::Listen { addr: config.router_addr, source })?;
        let api_addr = api_listener.local_addr().map_err(|source| Error::Listen { addr: config.api_addr, source })?;
        let router_addr =
            router_listener.local_addr().map_err(|source| Error::Listen { addr: config.router_addr, source })?;

        let hook = HookEnv {
            program: std::env::current_exe().map_err(Error::OwnProgram)?,
            url: format!("http://{api_addr}/internal/v1/receive"),
            token: auth::new_token(),
        };
        let state = Arc::new(ApiState {
            store,
            repos: Repos::new(data_dir.join("repos")),
            logs,
            pipeline,
            target,
            admin_token: admin_token.clone(),
            hook,
            token_path: auth::admin_token_path(&data_dir),
        });
        let api = api::router(state).into_make_service_with_connect_info::<SocketAddr>();
        tasks.push(tokio::spawn(async move {
            if let Err(error) = axum::serve(api_listener, api).await {
                tracing::error!(%error, "API listener stopped");
            }
        }));
        let app_router = router::router(routes, config.router_domain.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(error) = axum::serve(router_listener, app_router).await {
                tracing::error!(%error, "router listener stopped");
            }
        }));
        tracing::info!(%api_addr, %router_addr, data_dir = %data_dir.display(), "hoistd ready");
        Ok(Daemon { api_addr, router_addr, new_admin_token: created.then_some(admin_token), tasks })
    }

    /// Stops the listeners and the registry.
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Builder containers outlive a hoistd that was killed mid-build; remove them.
async fn remove_builder_containers(docker: &bollard::Docker, instance: &str) {
    use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_INSTANCE}={instance}"), format!("{LABEL_ROLE}=builder")],
    )]);
    let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let Ok(containers) = docker.list_containers(Some(options)).await else { return };
    for container in containers {
        if let Some(id) = container.id {
            let remove = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
            let _ = docker.remove_container(&id, Some(remove)).await;
            tracing::info!(container = %id, "removed a builder container left by an interrupted build");
        }
    }
}
