//! Starting hoistd: state, registry, recovery after a restart, the pipeline's stages,
//! and the two listeners (API + git, and the app router). `main` only calls this.

use crate::api::{self, ApiState};
use crate::build::{self, Builder};
use crate::buildpack::{self, Catalog};
use crate::config::{BuildEngine, Config};

use crate::image_stream::ImageStreams;
use crate::logs::LogDir;
use crate::pipeline::{Pipeline, Stages};
use crate::receive::{HookEnv, Repos};
use crate::registry::{self, Registry};
use crate::rollout::{self, Rollouts};
use crate::router::{self, Routes};
use crate::stack::{self, CaCertificates, StackSpec, Stacks};
use crate::store::Store;
use crate::target::{docker::DockerTarget, kubernetes::KubernetesTarget, Targets};
use crate::version_source::VersionSources;
use crate::{auth, docker, store};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
    #[error(transparent)]
    Buildpacks(#[from] buildpack::Error),
    #[error(transparent)]
    Stack(#[from] stack::Error),
    #[error(transparent)]
    Tls(#[from] crate::tls::Error),
    #[error(transparent)]
    Ssh(#[from] crate::ssh::Error),
    #[error("build.engine = kubernetes: {0}")]
    BuildEngine(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A started hoistd.
pub struct Daemon {
    pub api_addr: SocketAddr,
    pub router_addr: SocketAddr,
    /// Printed once, on the first start.
    pub new_admin_token: Option<String>,
    /// Where git over SSH listens (if it does) and the host key's fingerprint.
    pub ssh: Option<(SocketAddr, String)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Daemon {
    /// Starts everything; returns once both listeners accept connections.
    pub async fn start(mut config: Config) -> Result<Daemon> {
        let data_dir = config.data_dir.clone();
        prepare_data_dir(&data_dir)?;
        let open_files = crate::listener::raise_open_files_limit();
        let store = Arc::new(Store::open(&data_dir.join("hoist.db"))?);
        let (admin_token, created) = auth::load_or_create_admin_token(&data_dir, config.admin_token.as_deref())?;
        let token_key = auth::TokenKey::load_or_create(&data_dir)?;
        let host_key = crate::ssh::HostKey::load_or_create(&data_dir)?;
        // Builds as pods need no dockerd, and the docker target is then off: hoistd runs
        // in the cluster without a Docker socket.
        let docker = match config.build.engine {
            BuildEngine::Docker => Some(docker::connect(&config.docker_host).await?),
            BuildEngine::Kubernetes => None,
        };
        let mut tasks = Vec::new();
        let tls = match &config.tls {
            Some(tls) => Some(crate::tls::server_config(&tls.cert, &tls.key)?),
            None => None,
        };
        let listeners = Listeners::bind(&config, &data_dir, tls.is_some()).await?;
        let notify = registry::Notify {
            url: format!("http://{}/internal/v1/registry/events", listeners.internal_addr),
            token: auth::new_token(),
        };
        let (registry, registry_credentials) = start_registry(&mut config, &data_dir, &notify, &mut tasks).await?;

        let hook_token = auth::new_token();
        let logs = LogDir::new(data_dir.join("logs")).with_secrets(
            vec![admin_token.clone(), hook_token.clone(), notify.token.clone()]
                .into_iter()
                .chain(registry_credentials.as_ref().map(|c| c.password.clone()))
                .collect(),
        );
        let routes = Routes::default();
        let targets = make_targets(&config, docker.as_ref(), &data_dir, &routes, registry_credentials.as_ref()).await;
        let retention = crate::retention::Retention::new(
            docker.clone(),
            registry.clone(),
            store.clone(),
            config.instance.clone(),
            config.rollout.keep_releases,
        );
        let rollouts = Rollouts::new(store.clone(), targets, routes.clone(), logs.clone(), retention.clone())
            .with_release_timeout(Duration::from_secs(config.rollout.release_timeout_secs.max(1)));
        let (builder, buildpack_names, engine, run_images) =
            make_builder(&config, docker.as_ref(), &data_dir, &registry).await?;
        let work_root = recover(&store, &logs, engine.as_ref(), &data_dir, &rollouts).await?;

        let rollout_requests = rollout::start_stage(rollouts.clone());
        let image_streams = ImageStreams::new(store.clone(), rollout_requests.clone());
        let image_watch = crate::image_watch::ImageWatch::new(
            store.clone(),
            image_streams.clone(),
            registry.clone(),
            config.registry.addr.to_string(),
        );
        tasks.push(image_watch.clone().start_polling(Duration::from_secs(config.registry.image_poll_secs.max(1))));
        let exporter = crate::export::Exporter::new(registry.clone(), run_images);
        let pipeline = Pipeline::start(
            Stages {
                store: store.clone(),
                builder: builder.clone(),
                registry: registry.clone(),
                exporter: exporter.clone(),
                docker: docker.clone(),
                image_streams: image_streams.clone(),
                targets: rollouts.targets().clone(),
            },
            config.build.parallel,
        );
        let hook = HookEnv {
            program: std::env::current_exe().map_err(Error::OwnProgram)?,
            url: format!("http://{}/internal/v1/receive", listeners.internal_addr),
            token: hook_token,
        };
        let intake = crate::intake::Intake {
            store: store.clone(),
            repos: Repos::new(data_dir.join("repos")),
            logs: logs.clone(),
            pipeline: pipeline.clone(),
            limits: crate::receive::SizeLimits {
                max_file: config.receive.max_file_mb * 1024 * 1024,
                max_total: config.receive.max_push_mb * 1024 * 1024,
                max_files: config.receive.max_files,
            },
            work_root,
            keep_logs: config.build.keep_logs.max(1),
        };
        let repos = Repos::new(data_dir.join("repos"));
        let apps = Arc::new(crate::apps::Apps {
            store,
            repos: repos.clone(),
            logs: logs.clone(),
            builder,
            rollouts,
            retention,
            rollout_requests,
            default_target: config.rollout.target,
            intake,
            image_watch,
            image_streams,
            registry: registry.clone(),
            exporter,
            buildpacks: buildpack_names,
            url_policy: crate::outside_url::Policy {
                allow_local: config.receive.allow_local_urls,
                own_registry: config.registry.addr.to_string(),
            },
            fetch_timeout: Duration::from_secs(config.receive.fetch_timeout_secs),
            admin_token: auth::AdminToken::new(&data_dir, admin_token.clone()),
            token_key,
            pushes: Arc::default(),
            audit_keep_days: config.audit.keep_days.max(1),
            dev_root: data_dir.join("dev"),
            app_urls: crate::apps::AppUrls {
                scheme: if tls.is_some() { "https" } else { "http" },
                domain: config.router_domain.clone(),
                port: listeners.router_addr.port(),
            },
        });
        let pruning = apps.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                pruning.prune_audit();
                tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
            }
        }));
        let ssh_addr = listeners.ssh.as_ref().map(|(_, addr)| *addr);
        let state = Arc::new(ApiState {
            apps: apps.clone(),
            logs,
            repos: repos.clone(),
            hook: hook.clone(),
            registry_events_token: notify.token.clone(),
            ssh: ssh_addr.map(|addr| crate::wire::SshEndpoint {
                address: addr.to_string(),
                host_key: host_key.fingerprint.clone(),
            }),
        });
        let (api_addr, router_addr) = (listeners.api_addr, listeners.router_addr);
        let app_router = router::router(routes, config.router_domain.clone(), config.http.trusted_proxies.clone());
        let ssh_server = crate::ssh::SshServer::new(apps, repos, hook, &host_key);
        listeners.serve(&config, open_files, tls, api::router(state), app_router, ssh_server, &mut tasks);
        let scheme = if config.tls.is_some() { "https" } else { "http" };
        write_listening(&data_dir, api_addr, router_addr, config.registry.addr, ssh_addr)?;
        tracing::info!(%api_addr, scheme, %router_addr, ssh = ?ssh_addr, host_key = %host_key.fingerprint, data_dir = %data_dir.display(), "hoistd ready");
        Ok(Daemon {
            api_addr,
            router_addr,
            new_admin_token: created.then_some(admin_token),
            ssh: ssh_addr.map(|addr| (addr, host_key.fingerprint.clone())),
            tasks,
        })
    }

    /// Stops the listeners and the registry.
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Makes the data dir and its folders; tokens, config values and every app's source
/// live there, so it is the owner's only.
fn prepare_data_dir(data_dir: &Path) -> Result<()> {
    for dir in [data_dir.to_path_buf(), data_dir.join("repos"), data_dir.join("logs")] {
        std::fs::create_dir_all(&dir).map_err(|source| Error::DataDir { path: dir.clone(), source })?;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|source| Error::DataDir { path: data_dir.to_path_buf(), source })
}

/// hoistd's sockets, bound before anything else so a port 0 in the config becomes the real
/// port everything else is told (the hook's URL, the registry's notifications) and is
/// written down for whoever started hoistd (`<data>/listening`, removed until then).
struct Listeners {
    api: tokio::net::TcpListener,
    router: tokio::net::TcpListener,
    /// With TLS, hoistd's own callers (its git hook, its registry) use a plain listener
    /// on loopback; without, the API listener itself.
    internal: Option<tokio::net::TcpListener>,
    api_addr: SocketAddr,
    router_addr: SocketAddr,
    internal_addr: SocketAddr,
    /// git over SSH, unless `ssh.enabled` is off.
    ssh: Option<(tokio::net::TcpListener, SocketAddr)>,
}

impl Listeners {
    async fn bind(config: &Config, data_dir: &Path, tls: bool) -> Result<Listeners> {
        let _ = std::fs::remove_file(data_dir.join("listening"));
        let bind = |addr: SocketAddr| async move {
            let listener =
                tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Listen { addr, source })?;
            let bound = listener.local_addr().map_err(|source| Error::Listen { addr, source })?;
            Ok::<_, Error>((listener, bound))
        };
        let (api, api_addr) = bind(config.api_addr).await?;
        let (router, router_addr) = bind(config.router_addr).await?;
        let (internal, internal_addr) = if tls {
            let (listener, addr) = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
            (Some(listener), addr)
        } else {
            (None, api_addr)
        };
        let ssh = if config.ssh.enabled { Some(bind(config.ssh.addr).await?) } else { None };
        Ok(Listeners { api, router, internal, api_addr, router_addr, internal_addr, ssh })
    }

    /// Serves the API (and the internal listener) and the app router, each bounded.
    fn serve(
        self,
        config: &Config,
        open_files: u64,
        tls: Option<Arc<rustls::ServerConfig>>,
        api_router: axum::Router,
        app_router: axum::Router,
        ssh_server: crate::ssh::SshServer,
        tasks: &mut Vec<tokio::task::JoinHandle<()>>,
    ) {
        if let Some((listener, _)) = self.ssh {
            tasks.push(tokio::spawn(ssh_server.serve(listener)));
        }
        use crate::listener::serve;
        let count = if self.internal.is_some() { 3 } else { 2 };
        let limits = crate::listener::Limits {
            max_connections: crate::listener::connection_cap(config.http.max_connections, open_files, count),
            header_timeout: Duration::from_secs(config.http.header_timeout_secs),
            tls_handshake_timeout: Duration::from_secs(config.http.tls_handshake_timeout_secs),
        };
        if let Some(internal) = self.internal {
            tasks.push(tokio::spawn(serve("internal", internal, None, api_router.clone(), limits)));
        }
        tasks.push(tokio::spawn(serve("api", self.api, tls, api_router, limits)));
        tasks.push(tokio::spawn(serve("router", self.router, None, app_router, limits)));
    }
}

/// The registry images go to: an external one (waited for), or Debian's docker-registry
/// started and supervised with its account. A port 0 picks a free port (a separate
/// program cannot be handed a bound socket), again if another process took it between.
async fn start_registry(
    config: &mut Config,
    data_dir: &Path,
    notify: &registry::Notify,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<(Registry, Option<registry::Credentials>)> {
    if config.registry.external {
        registry::wait_ready(config.registry.addr, Duration::from_secs(10), &PathBuf::from("(external registry)"))
            .await?;
        return Ok((Registry::new(config.registry.addr, None), None));
    }
    let credentials = registry::Credentials::load_or_create(&data_dir.join("registry"))?;
    let choose = config.registry.addr.port() == 0;
    let mut attempt = 0;
    let task = loop {
        if choose {
            config.registry.addr = free_addr(config.registry.addr)
                .map_err(|source| Error::Listen { addr: config.registry.addr, source })?;
        }
        let started = registry::start_supervised(
            &config.registry.program,
            config.registry.addr,
            &data_dir.join("registry"),
            config.registry.notifications.then_some(notify),
            &credentials,
        )
        .await;
        match started {
            Err(registry::Error::AddrInUse { .. }) if choose && attempt < 5 => attempt += 1,
            other => break other?,
        }
    };
    tasks.push(task);
    Ok((Registry::new(config.registry.addr, Some(credentials.clone())), Some(credentials)))
}

/// The targets by kind: docker with a dockerd, kubernetes when a cluster and helm are there.
async fn make_targets(
    config: &Config,
    docker: Option<&bollard::Docker>,
    data_dir: &Path,
    routes: &Routes,
    registry_credentials: Option<&registry::Credentials>,
) -> Targets {
    let registry_addr = config.registry.addr.to_string();
    let docker_target = match docker {
        None => Err("this hoistd runs without dockerd (build.engine = kubernetes); use target kubernetes".to_string()),
        Some(docker) => Ok(Arc::new(DockerTarget::new(
            docker.clone(),
            crate::target::docker::Settings {
                instance: config.instance.clone(),
                app_port: config.rollout.app_port,
                checks_timeout: Duration::from_secs(config.rollout.checks_timeout_secs),
                checks_interval: Duration::from_millis(config.rollout.checks_interval_ms),
                settle: Duration::from_secs(config.rollout.settle_secs),
                registry_credentials: registry_credentials
                    .map(|c| (registry_addr.clone(), c.for_docker(&registry_addr))),
                app_limits: crate::target::docker::AppLimits {
                    memory_mb: config.rollout.app_memory_mb,
                    pids: config.rollout.app_pids_limit,
                },
            },
        )) as Arc<dyn crate::target::Target>),
    };
    let kubernetes_target = connect_kubernetes(config, data_dir, routes.clone(), registry_credentials)
        .await
        .map(|target| target as Arc<dyn crate::target::Target>);
    if let Err(why) = &kubernetes_target {
        tracing::info!(reason = %why, "kubernetes target not available");
    }
    Targets::default()
        .with(crate::config::TargetKind::Docker, docker_target)
        .with(crate::config::TargetKind::Kubernetes, kubernetes_target)
}

/// Work cut off by a crash or kill: marks it, cleans builders, scratch folders and
/// quarantines, and restores routes. Returns the (empty) folder for builds' scratch.
async fn recover(
    store: &Store,
    logs: &LogDir,
    engine: &dyn build::Engine,
    data_dir: &Path,
    rollouts: &Rollouts,
) -> Result<PathBuf> {
    let (interrupted_builds, interrupted_releases) = store.recover_after_restart()?;
    for id in &interrupted_builds {
        if let Some(build) = store.build(*id)? {
            match logs.open(&logs.build_log(&build.app, build.id)) {
                Ok(log) => log.line("=====> Interrupted: hoistd stopped during this build; push again"),
                Err(error) => tracing::warn!(build = id, %error, "cannot write the interruption to the build's log"),
            }
        }
        tracing::warn!(build = id, "build interrupted by a restart");
    }
    engine.recover().await;
    // Builds' scratch folders: whatever is here belongs to builds a stop cut off.
    let work_root = data_dir.join("work");
    let _ = std::fs::remove_dir_all(&work_root);
    std::fs::create_dir_all(&work_root).map_err(|source| Error::DataDir { path: work_root.clone(), source })?;
    let repos = Repos::new(data_dir.join("repos"));
    repos.remove_retired();
    let quarantines = repos.remove_stale_quarantines();
    if quarantines > 0 {
        tracing::info!(quarantines, "removed the objects of pushes cut off by a stop");
    }
    rollouts.restore(&interrupted_releases).await?;
    Ok(work_root)
}

/// The build stage on its engine, with the buildpacks hoistd has; their names; the
/// engine; and where the export finds the stacks' run images.
async fn make_builder(
    config: &Config,
    docker: Option<&bollard::Docker>,
    data_dir: &Path,
    registry: &Registry,
) -> Result<(Builder, Vec<String>, Arc<dyn build::Engine>, crate::export::RunImages)> {
    let dir = buildpacks_dir(config, &data_dir.join("buildpacks"))?;
    let catalog = Catalog::load(&dir)?;
    let names = catalog.names();
    tracing::info!(buildpacks = %names.join(","), dir = %catalog.dir.display(), "buildpacks loaded");
    let limits =
        build::Limits { memory_mb: config.build.memory_mb, cpus: config.build.cpus, pids: config.build.pids_limit };
    let (engine, runs): (Arc<dyn build::Engine>, _) = match docker {
        Some(docker) => {
            let stacks = make_stacks(config, docker, &dir)?;
            let warm = (config.build.warm_secs > 0).then(|| {
                build::docker::Warm::new(Duration::from_secs(config.build.warm_secs), data_dir.join("builders"))
            });
            let engine =
                build::docker::DockerEngine::new(docker.clone(), stacks.clone(), config.instance.clone(), limits, warm);
            (Arc::new(engine), crate::export::RunImages::Dockerd { docker: docker.clone(), stacks })
        }
        None => (Arc::new(pod_engine(config, registry, limits).await?), crate::export::RunImages::Registry),
    };
    tracing::info!(engine = %engine.describe(), "builds run on");
    let builder = Builder::new(
        engine.clone(),
        Arc::new(catalog),
        VersionSources::new(&config.build.npm_registry, &config.build.go_proxy),
        build::Settings {
            instance: config.instance.clone(),
            timeout: Duration::from_secs(config.build.timeout_secs),
            app_port: config.rollout.app_port,
            output_limit: config.build.log_limit_mb * 1024 * 1024,
        },
    );
    Ok((builder, names, engine, runs))
}

/// The kubernetes build engine: pods in `build.namespace`, else hoistd's own namespace.
async fn pod_engine(
    config: &Config,
    registry: &Registry,
    limits: build::Limits,
) -> Result<build::kubernetes::PodEngine> {
    let client =
        crate::target::kubernetes::client(config.kubernetes.kubeconfig.as_deref()).await.map_err(Error::BuildEngine)?;
    let export_image = config.build.export_image.clone().ok_or_else(|| {
        Error::BuildEngine(
            "build.export_image (HOIST_BUILD_EXPORT_IMAGE) must name hoistd's own image, which exports in build pods"
                .to_string(),
        )
    })?;
    let namespace = config.build.namespace.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
            .map(|n| n.trim().to_string())
            .unwrap_or_else(|_| "hoist".to_string())
    });
    Ok(build::kubernetes::PodEngine::new(
        client,
        registry.clone(),
        build::kubernetes::Settings {
            instance: config.instance.clone(),
            namespace,
            export_image,
            limits,
            keep_failed: Duration::from_secs(config.build.keep_failed_secs),
            cache_size: config.build.cache_size.clone(),
            cache_class: config.build.cache_class.clone(),
            timeout: Duration::from_secs(config.build.timeout_secs),
        },
    ))
}

/// The kubernetes target, or why it cannot be used. Its chart is `kubernetes.chart`, or
/// the one built into hoistd, unpacked into the data dir.
async fn connect_kubernetes(
    config: &Config,
    data_dir: &std::path::Path,
    routes: Routes,
    registry_credentials: Option<&registry::Credentials>,
) -> std::result::Result<Arc<KubernetesTarget>, String> {
    let registry_account = registry_credentials.map(|c| (c.username.clone(), c.password.clone()));
    let chart = match &config.kubernetes.chart {
        Some(chart) => chart.clone(),
        None => {
            let dir = data_dir.join("chart");
            crate::archive::replace_dir_with_tar(crate::target::kubernetes::EMBEDDED_CHART, &dir)
                .map_err(|e| format!("cannot unpack the chart into {}: {e}", dir.display()))?;
            dir
        }
    };
    let settings = crate::target::kubernetes::Settings {
        instance: config.instance.clone(),
        kubeconfig: config.kubernetes.kubeconfig.clone(),
        namespace: config.kubernetes.namespace.clone(),
        helm: config.kubernetes.helm.clone(),
        timeout: Duration::from_secs(config.kubernetes.timeout_secs),
        registry_pushed: config.registry.addr.to_string(),
        registry_pulled: config.kubernetes.registry.clone(),
        registry_account,
        chart,
        app_port: config.rollout.app_port,
        min_ready_secs: config.kubernetes.min_ready_secs,
        crash_restarts: config.kubernetes.crash_restarts,
        work_dir: data_dir.join("helm"),
        app_charts: data_dir.join("charts"),
    };
    KubernetesTarget::connect(settings, routes).await
}

/// The buildpacks folder: `build.buildpacks_dir` when set, else the ones built into
/// hoistd, unpacked into `unpack_into`.
fn buildpacks_dir(config: &Config, unpack_into: &Path) -> Result<PathBuf> {
    Ok(match &config.build.buildpacks_dir {
        Some(dir) => dir.clone(),
        None => buildpack::unpack_embedded(unpack_into)?,
    })
}

/// The stacks the buildpacks of `dir` build on, made in `docker`.
fn make_stacks(config: &Config, docker: &bollard::Docker, dir: &Path) -> Result<Stacks> {
    let certificates = CaCertificates::read(&config.build.ca_certificates)?;
    Ok(Stacks::new(docker.clone(), stack::stacks_dir(dir), config.build.stack_images.clone(), certificates))
}

/// `hoistd stacks prepare NAME [VERSION]`: makes a stack's images now rather than at
/// the first build that needs them, printing progress.
/// `refresh`: made again from today's packages even if they exist.
pub async fn prepare_stack(
    config: Config,
    name: &str,
    suite: &str,
    version: Option<String>,
    refresh: bool,
    push: Option<String>,
) -> Result<()> {
    let docker = docker::connect(&config.docker_host).await?;
    let scratch = std::env::temp_dir().join(format!("hoist-stacks-{}", std::process::id()));
    let stacks = make_stacks(&config, &docker, &buildpacks_dir(&config, &scratch.join("buildpacks"))?)?;
    let (log, printer) = printed_log(&scratch).await?;
    let spec = StackSpec { name: name.to_string(), suite: suite.to_string(), version };
    let result = match refresh {
        true => stacks.refresh(&spec, &log).await,
        false => stacks.ensure(&spec, &log).await,
    };
    // Into a registry, where build pods and an in-cluster hoistd find them.
    let pushed = match (&result, &push) {
        (Ok(images), Some(addr)) => Some(push_stack(&docker, addr, &spec, images, &log).await),
        _ => None,
    };
    // Else the run image into hoistd's own registry, if hoistd runs: the first rebase or
    // build after a refresh then finds it there instead of pushing it (0.8 s for the base
    // stack on this project's machine).
    let registered = match (&result, &push) {
        (Ok(images), None) => Some(put_run_image(&config, &docker, &spec, &images.run, &log).await),
        _ => None,
    };
    drop(log);
    let _ = printer.await;
    let _ = std::fs::remove_dir_all(&scratch);
    let images = result?;
    println!("stack {}: {} and {}", spec.describe(), images.build, images.run);
    if let Some(pushed) = pushed {
        let (build, run) = pushed?;
        println!("pushed: {build} and {run}");
    }
    match registered {
        Some(Ok(Some(reference))) => println!("in hoistd's registry: {reference}"),
        Some(Ok(None)) => println!(
            "no hoistd answers on {}: its first build or rebase on this stack puts the run image in its registry",
            config.data_dir.display()
        ),
        Some(Err(error)) => println!(
            "the run image was not put in hoistd's registry ({error}): its first build or rebase on this stack does it"
        ),
        None => {}
    }
    if refresh {
        println!("apps built on it move to the refreshed run image with: hoist rebase --all");
        println!(
            "(that also makes again, once, each language stack made from the refreshed OS image, and moves its apps: about a minute per stack)"
        );
    }
    Ok(())
}

/// Pushes the run image `local` of stack `spec` where hoistd's exporter looks for it, in the
/// registry of the hoistd that runs on `config`'s data dir (its `listening` file names the
/// registry's address, its `registry/password` the account). `None`: no hoistd runs there.
async fn put_run_image(
    config: &Config,
    docker: &bollard::Docker,
    spec: &StackSpec,
    local: &str,
    log: &crate::logs::LiveLog,
) -> Result<Option<String>> {
    let listening = config.data_dir.join("listening");
    let Ok(text) = std::fs::read_to_string(&listening) else { return Ok(None) };
    let addr = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["registry"].as_str().and_then(|a| a.parse::<SocketAddr>().ok()));
    // A hoistd killed without a clean stop leaves the file behind: its registry must answer.
    let Some(addr) = addr else { return Ok(None) };
    if registry::wait_ready(addr, Duration::from_secs(2), &listening).await.is_err() {
        return Ok(None);
    }
    let credentials = match config.registry.external {
        true => None,
        false => registry::Credentials::load(&config.data_dir.join("registry"))?,
    };
    let registry = Registry::new(addr, credentials);
    let (name, tag) = crate::export::run_image_place(spec);
    let repository = format!("{addr}/{name}");
    registry.push(docker, local, &repository, &tag, log).await?;
    Ok(Some(format!("{repository}:{tag}")))
}

/// A log whose lines are printed to stdout as they come (in `scratch`); drop it, then
/// await the printer.
async fn printed_log(scratch: &Path) -> Result<(Arc<crate::logs::LiveLog>, tokio::task::JoinHandle<()>)> {
    std::fs::create_dir_all(scratch).map_err(|source| Error::DataDir { path: scratch.to_path_buf(), source })?;
    let logs = LogDir::new(scratch.to_path_buf());
    let path = scratch.join("printed.log");
    let log = logs.open(&path).map_err(|source| Error::DataDir { path: scratch.to_path_buf(), source })?;
    let lines = logs.follow(&path, 0, true).await.ok().flatten();
    let printer = tokio::spawn(async move {
        let Some(mut lines) = lines else { return };
        while let Ok(Some(record)) = lines.next().await {
            println!("{}", record.text);
        }
    });
    Ok((log, printer))
}

/// `hoistd export`, the last step of a build pod: exports what assemble left in `/app`,
/// `/deps` and `/layers` as the plan in `HOIST_EXPORT_PLAN` says, straight to the
/// registry, prints `{"digest": …}` as its last line (after
/// [`build::kubernetes::EXPORT_RESULT`]) and leaves it in `result` (the pod's termination
/// message); the digest. With `after`, it first waits for that file (assemble's status,
/// written whole) and exports only if it says 0: none when it did not.
pub async fn export_in_pod(
    plan: &str,
    result: &Path,
    after: Option<&Path>,
) -> std::result::Result<Option<String>, String> {
    let outcome = async {
        if let Some(after) = after {
            let status = loop {
                match std::fs::read_to_string(after) {
                    Ok(status) => break status,
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                        tokio::time::sleep(Duration::from_millis(20)).await
                    }
                    Err(error) => return Err(format!("cannot read {}: {error}", after.display())),
                }
            };
            if status.trim() != "0" {
                return Ok(Err(format!("assemble did not succeed (status {}): nothing exported", status.trim())));
            }
        }
        let plan: crate::export::Plan =
            serde_json::from_str(plan).map_err(|e| format!("HOIST_EXPORT_PLAN is not an export plan: {e}"))?;
        let addr = plan.repository.split('/').next().unwrap_or_default();
        let addr: SocketAddr = addr.parse().map_err(|_| format!("the plan's registry {addr:?} is not host:port"))?;
        let exporter = crate::export::Exporter::new(Registry::new(addr, None), crate::export::RunImages::Registry);
        let work = PathBuf::from("/workspace/export");
        std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
        let (log, printer) = printed_log(&work.join("log")).await.map_err(|e| e.to_string())?;
        let folders = [Path::new("/app"), Path::new("/deps"), Path::new(build::LAYERS_DIR)];
        let exported = exporter.export_plan(&plan, folders, &work, &log).await;
        drop(log);
        let _ = printer.await;
        exported.map(|exported| Ok(exported.digest)).map_err(|e| e.to_string())
    }
    .await;
    // The export's outcome: a digest; nothing, since assemble failed (hoistd says why);
    // or what went wrong.
    let message = match &outcome {
        Ok(Ok(digest)) => {
            let result = build::kubernetes::ExportResult { digest: digest.clone() };
            let result = serde_json::to_string(&result).unwrap_or_default();
            println!("{}{result}", build::kubernetes::EXPORT_RESULT);
            result
        }
        Ok(Err(skipped)) => skipped.clone(),
        Err(error) => error.clone(),
    };
    if let Err(error) = std::fs::write(result, &message) {
        eprintln!("hoistd export: cannot write the result to {}: {error}", result.display());
    }
    outcome.map(Result::ok)
}

/// Pushes a stack's two images to the registry at `addr` as `stacks/<name>:<tag>`.
async fn push_stack(
    docker: &bollard::Docker,
    addr: &str,
    spec: &StackSpec,
    images: &stack::StackImages,
    log: &crate::logs::LiveLog,
) -> Result<(String, String)> {
    let socket: SocketAddr = addr
        .parse()
        .map_err(|_| Error::BuildEngine(format!("--push {addr:?}: give the registry as host:port (an IP address)")))?;
    let registry = Registry::new(socket, None);
    let repository = format!("{addr}/{}", spec.repository());
    let mut pushed = Vec::new();
    for (local, kind) in [(&images.build, "build"), (&images.run, "run")] {
        let tag = spec.tag(kind);
        registry.push(docker, local, &repository, &tag, log).await?;
        pushed.push(format!("{repository}:{tag}"));
    }
    let run = pushed.pop().unwrap_or_default();
    Ok((pushed.pop().unwrap_or_default(), run))
}

/// A port nobody listens on right now, on `addr`'s interface.
fn free_addr(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind(SocketAddr::new(addr.ip(), 0))?.local_addr()
}

/// `<data>/listening`: the addresses hoistd listens on, once it answers (JSON), so a
/// caller that asked for port 0 learns the ports it got. Written whole or not at all.
fn write_listening(
    data_dir: &Path,
    api: SocketAddr,
    router: SocketAddr,
    registry: SocketAddr,
    ssh: Option<SocketAddr>,
) -> Result<()> {
    let path = data_dir.join("listening");
    let ssh = ssh.map_or(String::new(), |ssh| format!(", \"ssh\": \"{ssh}\""));
    let text = format!("{{\"api\": \"{api}\", \"router\": \"{router}\", \"registry\": \"{registry}\"{ssh}}}\n");
    let partial = data_dir.join("listening.tmp");
    std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, &path))
        .map_err(|source| Error::DataDir { path, source })
}
