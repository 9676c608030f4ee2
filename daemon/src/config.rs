//! hoistd's configuration: a TOML file, then `HOIST_*` environment overrides, over
//! embedded defaults that run everything on one machine.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// What can go wrong loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("environment variable {name}={value:?} is not valid: {reason}")]
    Env { name: &'static str, value: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The whole configuration of one hoistd.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where state lives: the SQLite database, bare repos, logs, the admin token.
    pub data_dir: PathBuf,
    /// The API and git-over-HTTP listener.
    pub api_addr: SocketAddr,
    /// The app router: `<app>.<router_domain>` by Host header.
    pub router_addr: SocketAddr,
    /// Apps are served as `<app>.<router_domain>`.
    pub router_domain: String,
    /// A name that prefixes every container and volume this hoistd creates, so two
    /// hoistds (tests do this) can share one dockerd.
    pub instance: String,
    /// Where dockerd listens.
    pub docker_host: String,
    pub registry: RegistryConfig,
    pub build: BuildConfig,
    pub rollout: RolloutConfig,
    pub kubernetes: KubernetesConfig,
    pub receive: ReceiveConfig,
    pub http: HttpConfig,
    /// HTTPS for the API and git: PEM files. Unset: plain HTTP.
    pub tls: Option<TlsConfig>,
    pub ssh: SshConfig,
    pub audit: AuditConfig,
    /// The admin token to use instead of the one in the data dir (written there): from
    /// `HOIST_ADMIN_TOKEN` only, never the file, so hoist's chart can keep it in a Secret.
    #[serde(skip)]
    pub admin_token: Option<String>,
}

/// git over SSH.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SshConfig {
    /// Where it listens (port 0: any free port, written to `<data>/listening` as `ssh`).
    pub addr: SocketAddr,
    /// Off: no SSH listener at all.
    pub enabled: bool,
}

impl Default for SshConfig {
    fn default() -> Self {
        SshConfig { addr: "127.0.0.1:2222".parse().unwrap(), enabled: true }
    }
}

/// The audit log.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// How many days an entry is kept (pruned at start and daily).
    pub keep_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { keep_days: 365 }
    }
}

/// A certificate chain and its private key, PEM.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// hoistd's HTTP listeners (API and git, app router).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Connections each listener keeps open at once (lowered to fit the open files
    /// limit); more wait until one closes.
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers.
    pub header_timeout_secs: u64,
    /// Seconds a client has to finish a TLS handshake.
    pub tls_handshake_timeout_secs: u64,
    /// Addresses of proxies in front of the router whose `X-Forwarded-*` headers are
    /// believed; anyone else's are replaced.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_connections: 1024,
            header_timeout_secs: 15,
            tls_handshake_timeout_secs: 10,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Receiving pushes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiveConfig {
    /// MiB the pushed commit's files may take unpacked, all together.
    pub max_push_mb: u64,
    /// MiB one file may take unpacked.
    pub max_file_mb: u64,
    /// Files, folders and links the pushed commit may have, counted from its tree
    /// objects before anything is unpacked (a few KiB of trees can name millions of
    /// empty files).
    pub max_files: u64,
    /// Allow repo URLs and followed images on this machine: `file://` URLs, local paths,
    /// loopback and link-local hosts (hoistd's own registry is always allowed). Off:
    /// hoistd runs as root and would read any repository here or the cloud's metadata.
    pub allow_local_urls: bool,
    /// Seconds a webhook's `git fetch` may take before it is stopped and the build fails.
    pub fetch_timeout_secs: u64,
}

impl Default for ReceiveConfig {
    fn default() -> Self {
        ReceiveConfig {
            max_push_mb: 1024,
            max_file_mb: 512,
            max_files: 200_000,
            allow_local_urls: false,
            fetch_timeout_secs: 300,
        }
    }
}

/// The OCI registry images are pushed to and run from.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// host:port of the registry, reached over plain HTTP on loopback.
    pub addr: SocketAddr,
    /// true: use a registry that runs already; false: hoistd starts and supervises
    /// Debian's `docker-registry` on `addr` with storage under the data dir.
    pub external: bool,
    /// The registry program started when not external.
    pub program: PathBuf,
    /// The supervised registry tells hoistd of every push (apps following an image roll
    /// out within seconds).
    pub notifications: bool,
    /// Seconds between two checks of the images apps follow (for pushes no notification
    /// tells of: external registries).
    pub image_poll_secs: u64,
}

/// The build stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuildConfig {
    /// How many apps may build at the same time.
    pub parallel: usize,
    /// A build running longer than this is stopped and failed.
    pub timeout_secs: u64,
    /// Folder with one folder per buildpack (and `stacks/`). Unset: the buildpacks built
    /// into hoistd, unpacked into `<data_dir>/buildpacks` at start.
    pub buildpacks_dir: Option<PathBuf>,
    /// Memory of one builder container, in MiB; a build that needs more is stopped.
    pub memory_mb: u64,
    /// CPUs one builder container may use.
    pub cpus: f64,
    /// Processes one builder container may run at once.
    pub pids_limit: i64,
    /// Extra CA certificates every stack trusts (files, or folders of `*.crt`): the
    /// certificates of a TLS-intercepting proxy, say. Missing paths are skipped.
    pub ca_certificates: Vec<PathBuf>,
    /// Where Node versions are listed (the npm registry).
    pub npm_registry: String,
    /// Where Go versions are listed (the Go module proxy).
    pub go_proxy: String,
    /// MiB of a build's output kept in its log (and shown to the pusher); the rest is
    /// dropped with a line saying so.
    pub log_limit_mb: u64,
    /// An app keeps the logs of this many of its last builds; older ones are deleted
    /// when a new build starts.
    pub keep_logs: usize,
    /// The repository prefix of the stack images hoistd makes in dockerd
    /// (`<prefix>/os:bookworm`, `<prefix>/stack-node:22.12.0-run`): hoistds sharing a
    /// dockerd share their stacks under one prefix, and refresh them apart under two.
    pub stack_images: String,
    /// Where builders run: `docker` (the host's dockerd, the default) or `kubernetes`
    /// (a pod per build; no Docker anywhere; what hoist's own chart sets).
    pub engine: BuildEngine,
    /// kubernetes engine: the namespace of build pods and cache claims. Unset: the
    /// namespace hoistd's pod runs in, else `hoist`.
    pub namespace: Option<String>,
    /// kubernetes engine: hoistd's own image, which runs `hoistd export` in build pods.
    pub export_image: Option<String>,
    /// kubernetes engine: a failed build's pod is kept this long, then removed.
    pub keep_failed_secs: u64,
    /// docker engine: an app's builder stays up this long after its build, and the app's
    /// next build runs in it (no container start; a build tool's daemon stays warm: the
    /// Maven buildpack's). 0: a builder for each build, removed after it.
    pub warm_secs: u64,
    /// kubernetes engine: the size of each app's dependency cache claim.
    pub cache_size: String,
    /// kubernetes engine: the storage class of cache claims. Unset: the cluster's default.
    pub cache_class: Option<String>,
}

/// Where builders run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildEngine {
    Docker,
    Kubernetes,
}

impl std::str::FromStr for BuildEngine {
    type Err = String;
    fn from_str(s: &str) -> Result<BuildEngine, String> {
        match s {
            "docker" => Ok(BuildEngine::Docker),
            "kubernetes" => Ok(BuildEngine::Kubernetes),
            _ => Err(format!("unknown build engine {s:?}: use docker or kubernetes")),
        }
    }
}

/// The rollout stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutConfig {
    /// Where the releases of a new app run unless it names a target.
    pub target: TargetKind,
    /// The port an app listens on inside its container; passed as `PORT`.
    pub app_port: u16,
    /// How long a new release has to answer HTTP before it is failed (Dokku's CHECKS).
    pub checks_timeout_secs: u64,
    /// Pause between two health checks (an HTTP GET on loopback and a container
    /// inspect): short, since a release goes live at its first answer.
    pub checks_interval_ms: u64,
    /// docker target: how long a new release must keep running and answering after
    /// traffic moved to it; if it crashes or stops answering meanwhile, traffic moves back
    /// and the previous release, still running, keeps serving (Kubernetes' minReadySeconds).
    pub settle_secs: u64,
    /// How long a Procfile `release:` command (the release phase) may run before the
    /// release is failed (the running release keeps serving).
    pub release_timeout_secs: u64,
    /// An app keeps the images of this many of its last releases that served (rollback
    /// can go back that far); older ones are removed from dockerd and the registry.
    pub keep_releases: usize,
    /// docker target: memory of one app container, in MiB, unless the app's config var
    /// `HOIST_MEMORY_MB` says otherwise.
    pub app_memory_mb: u64,
    /// docker target: processes one app container may run at once, unless the app's
    /// config var `HOIST_PIDS_LIMIT` says otherwise.
    pub app_pids_limit: i64,
}

/// Where an app's releases run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// Containers on the local dockerd, behind hoistd's router.
    Docker,
    /// A Helm release of hoist's chart on a Kubernetes cluster.
    Kubernetes,
}

impl TargetKind {
    pub const ALL: [TargetKind; 2] = [TargetKind::Docker, TargetKind::Kubernetes];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Docker => "docker",
            TargetKind::Kubernetes => "kubernetes",
        }
    }

    pub fn parse(s: &str) -> Option<TargetKind> {
        TargetKind::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TargetKind {
    type Err = String;
    fn from_str(s: &str) -> Result<TargetKind, String> {
        TargetKind::parse(s).ok_or_else(|| format!("unknown target {s:?}: use docker or kubernetes"))
    }
}

/// The kubernetes target: where the cluster is and how hoist deploys to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesConfig {
    /// The kubeconfig to use. Unset: `KUBECONFIG`, then `~/.kube/config`, then the
    /// in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    /// Put every app in this namespace. Unset: each app gets `<instance>-<app>`.
    pub namespace: Option<String>,
    /// The helm program (Helm 3 or 4).
    pub helm: PathBuf,
    /// How long Helm waits for a release's pods to be Ready before it rolls back.
    pub timeout_secs: u64,
    /// The registry as the cluster's nodes reach it (`host:port`). Unset: `registry.addr`.
    pub registry: Option<String>,
    /// The chart every app is deployed with. Unset: the chart built into hoistd. An app
    /// may bring its own in its repo (`chart/`), which wins over both.
    pub chart: Option<PathBuf>,
    /// Seconds a new pod must stay Ready before it counts as available (`minReadySeconds`).
    pub min_ready_secs: u32,
    /// A new pod restarting this many times is a crash loop: the rollout is rolled back
    /// at once instead of at the timeout. 0: always wait for the timeout.
    pub crash_restarts: i32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("/var/lib/hoist"),
            api_addr: "127.0.0.1:7070".parse().unwrap(),
            router_addr: "127.0.0.1:8080".parse().unwrap(),
            router_domain: "localhost".to_string(),
            instance: "hoist".to_string(),
            docker_host: "unix:///var/run/docker.sock".to_string(),
            registry: RegistryConfig::default(),
            build: BuildConfig::default(),
            rollout: RolloutConfig::default(),
            kubernetes: KubernetesConfig::default(),
            receive: ReceiveConfig::default(),
            http: HttpConfig::default(),
            tls: None,
            ssh: SshConfig::default(),
            audit: AuditConfig::default(),
            admin_token: None,
        }
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            addr: "127.0.0.1:5000".parse().unwrap(),
            external: false,
            program: PathBuf::from("docker-registry"),
            notifications: true,
            image_poll_secs: 15 * 60,
        }
    }
}

impl Default for BuildConfig {
    fn default() -> Self {
        BuildConfig {
            parallel: 2,
            timeout_secs: 15 * 60,
            buildpacks_dir: None,
            memory_mb: 2048,
            cpus: 2.0,
            pids_limit: 4096,
            // Debian's folder for local CA certificates: the host's extra ones.
            ca_certificates: vec![PathBuf::from("/usr/local/share/ca-certificates")],
            npm_registry: "https://registry.npmjs.org".to_string(),
            go_proxy: "https://proxy.golang.org".to_string(),
            stack_images: "hoist".to_string(),
            log_limit_mb: 16,
            keep_logs: 50,
            engine: BuildEngine::Docker,
            namespace: None,
            export_image: None,
            keep_failed_secs: 300,
            warm_secs: 600,
            cache_size: "2Gi".to_string(),
            cache_class: None,
        }
    }
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            kubeconfig: None,
            namespace: None,
            helm: PathBuf::from("helm"),
            timeout_secs: 120,
            registry: None,
            chart: None,
            min_ready_secs: 0,
            crash_restarts: 2,
        }
    }
}

impl Default for RolloutConfig {
    fn default() -> Self {
        RolloutConfig {
            target: TargetKind::Docker,
            app_port: 5000,
            checks_timeout_secs: 60,
            checks_interval_ms: 100,
            settle_secs: 5,
            release_timeout_secs: 600,
            keep_releases: 5,
            app_memory_mb: 1024,
            app_pids_limit: 1024,
        }
    }
}

impl Config {
    /// Loads `path` if given (a missing file is an error), then applies the environment.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let mut config = match path {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
                Config::from_toml(&text)
                    .map_err(|source| Error::Parse { path: path.to_path_buf(), source: Box::new(source) })?
            }
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    /// Parses a TOML document; absent keys keep their defaults.
    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// Applies `HOIST_*` overrides read through `var`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<()> {
        fn parse<T: std::str::FromStr>(name: &'static str, value: String) -> Result<T>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| Error::Env { name, value, reason: e.to_string() })
        }
        if let Some(v) = var("HOIST_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = var("HOIST_API_ADDR") {
            self.api_addr = parse("HOIST_API_ADDR", v)?;
        }
        if let Some(v) = var("HOIST_ROUTER_ADDR") {
            self.router_addr = parse("HOIST_ROUTER_ADDR", v)?;
        }
        if let Some(v) = var("HOIST_RELEASE_TIMEOUT_SECS") {
            self.rollout.release_timeout_secs = parse("HOIST_RELEASE_TIMEOUT_SECS", v)?;
        }
        if let Some(v) = var("HOIST_SSH_ADDR") {
            self.ssh.addr = parse("HOIST_SSH_ADDR", v)?;
        }
        if let Some(v) = var("HOIST_SSH") {
            self.ssh.enabled = parse("HOIST_SSH", v)?;
        }
        if let Some(v) = var("HOIST_AUDIT_KEEP_DAYS") {
            self.audit.keep_days = parse("HOIST_AUDIT_KEEP_DAYS", v)?;
        }
        if let Some(v) = var("HOIST_ROUTER_DOMAIN") {
            self.router_domain = v;
        }
        if let Some(v) = var("HOIST_INSTANCE") {
            self.instance = v;
        }
        if let Some(v) = var("HOIST_DOCKER_HOST") {
            self.docker_host = v;
        }
        if let Some(v) = var("HOIST_REGISTRY_ADDR") {
            self.registry.addr = parse("HOIST_REGISTRY_ADDR", v)?;
        }
        if let Some(v) = var("HOIST_REGISTRY_EXTERNAL") {
            self.registry.external = parse("HOIST_REGISTRY_EXTERNAL", v)?;
        }
        if let Some(v) = var("HOIST_REGISTRY_NOTIFICATIONS") {
            self.registry.notifications = parse("HOIST_REGISTRY_NOTIFICATIONS", v)?;
        }
        if let Some(v) = var("HOIST_IMAGE_POLL_SECS") {
            self.registry.image_poll_secs = parse("HOIST_IMAGE_POLL_SECS", v)?;
        }
        if let Some(v) = var("HOIST_ADMIN_TOKEN").filter(|v| !v.trim().is_empty()) {
            self.admin_token = Some(v.trim().to_string());
        }
        if let Some(v) = var("HOIST_BUILD_ENGINE") {
            self.build.engine = parse("HOIST_BUILD_ENGINE", v)?;
        }
        if let Some(v) = var("HOIST_BUILD_NAMESPACE") {
            self.build.namespace = Some(v);
        }
        if let Some(v) = var("HOIST_BUILD_EXPORT_IMAGE") {
            self.build.export_image = Some(v);
        }
        if let Some(v) = var("HOIST_BUILD_KEEP_FAILED_SECS") {
            self.build.keep_failed_secs = parse("HOIST_BUILD_KEEP_FAILED_SECS", v)?;
        }
        if let Some(v) = var("HOIST_BUILD_WARM_SECS") {
            self.build.warm_secs = parse("HOIST_BUILD_WARM_SECS", v)?;
        }
        if let Some(v) = var("HOIST_BUILD_CACHE_SIZE") {
            self.build.cache_size = v;
        }
        if let Some(v) = var("HOIST_BUILD_CACHE_CLASS") {
            self.build.cache_class = Some(v);
        }
        if let Some(v) = var("HOIST_BUILD_PARALLEL") {
            self.build.parallel = parse("HOIST_BUILD_PARALLEL", v)?;
        }
        if let Some(v) = var("HOIST_STACK_IMAGES") {
            self.build.stack_images = v;
        }
        if let Some(v) = var("HOIST_BUILDPACKS_DIR") {
            self.build.buildpacks_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = var("HOIST_BUILD_MEMORY_MB") {
            self.build.memory_mb = parse("HOIST_BUILD_MEMORY_MB", v)?;
        }
        if let Some(v) = var("HOIST_BUILD_LOG_LIMIT_MB") {
            self.build.log_limit_mb = parse("HOIST_BUILD_LOG_LIMIT_MB", v)?;
        }
        if let Some(v) = var("HOIST_BUILD_TIMEOUT_SECS") {
            self.build.timeout_secs = parse("HOIST_BUILD_TIMEOUT_SECS", v)?;
        }
        if let Some(v) = var("HOIST_CHECKS_TIMEOUT_SECS") {
            self.rollout.checks_timeout_secs = parse("HOIST_CHECKS_TIMEOUT_SECS", v)?;
        }
        if let (Some(cert), Some(key)) = (var("HOIST_TLS_CERT"), var("HOIST_TLS_KEY")) {
            self.tls = Some(TlsConfig { cert: PathBuf::from(cert), key: PathBuf::from(key) });
        }
        if let Some(v) = var("HOIST_MAX_PUSH_MB") {
            self.receive.max_push_mb = parse("HOIST_MAX_PUSH_MB", v)?;
        }
        if let Some(v) = var("HOIST_MAX_FILE_MB") {
            self.receive.max_file_mb = parse("HOIST_MAX_FILE_MB", v)?;
        }
        if let Some(v) = var("HOIST_MAX_FILES") {
            self.receive.max_files = parse("HOIST_MAX_FILES", v)?;
        }
        if let Some(v) = var("HOIST_ALLOW_LOCAL_URLS") {
            self.receive.allow_local_urls = parse("HOIST_ALLOW_LOCAL_URLS", v)?;
        }
        if let Some(v) = var("HOIST_FETCH_TIMEOUT_SECS") {
            self.receive.fetch_timeout_secs = parse("HOIST_FETCH_TIMEOUT_SECS", v)?;
        }
        if let Some(v) = var("HOIST_MAX_CONNECTIONS") {
            self.http.max_connections = parse("HOIST_MAX_CONNECTIONS", v)?;
        }
        if let Some(v) = var("HOIST_HEADER_TIMEOUT_SECS") {
            self.http.header_timeout_secs = parse("HOIST_HEADER_TIMEOUT_SECS", v)?;
        }
        if let Some(v) = var("HOIST_TRUSTED_PROXIES") {
            self.http.trusted_proxies = v
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().parse())
                .collect::<Result<_, _>>()
                .map_err(|e: std::net::AddrParseError| Error::Env {
                    name: "HOIST_TRUSTED_PROXIES",
                    value: v.clone(),
                    reason: e.to_string(),
                })?;
        }
        if let Some(v) = var("HOIST_KEEP_BUILD_LOGS") {
            self.build.keep_logs = parse("HOIST_KEEP_BUILD_LOGS", v)?;
        }
        if let Some(v) = var("HOIST_KEEP_RELEASES") {
            self.rollout.keep_releases = parse("HOIST_KEEP_RELEASES", v)?;
        }
        if let Some(v) = var("HOIST_SETTLE_SECS") {
            self.rollout.settle_secs = parse("HOIST_SETTLE_SECS", v)?;
        }
        if let Some(v) = var("HOIST_TARGET") {
            self.rollout.target = parse("HOIST_TARGET", v)?;
        }
        if let Some(v) = var("HOIST_KUBECONFIG").or_else(|| var("KUBECONFIG")) {
            if self.kubernetes.kubeconfig.is_none() || var("HOIST_KUBECONFIG").is_some() {
                self.kubernetes.kubeconfig = Some(PathBuf::from(v));
            }
        }
        if let Some(v) = var("HOIST_KUBERNETES_NAMESPACE") {
            self.kubernetes.namespace = Some(v);
        }
        if let Some(v) = var("HOIST_HELM") {
            self.kubernetes.helm = PathBuf::from(v);
        }
        if let Some(v) = var("HOIST_KUBERNETES_TIMEOUT_SECS") {
            self.kubernetes.timeout_secs = parse("HOIST_KUBERNETES_TIMEOUT_SECS", v)?;
        }
        if let Some(v) = var("HOIST_KUBERNETES_REGISTRY") {
            self.kubernetes.registry = Some(v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_then_env() {
        let mut config =
            Config::from_toml("data_dir = \"/tmp/h\"\n[registry]\nexternal = true\n[build]\nparallel = 4\n").unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/tmp/h"));
        assert!(config.registry.external);
        assert_eq!(config.build.parallel, 4);
        assert_eq!(config.rollout.app_port, 5000, "absent keys keep defaults");
        config
            .apply_env(|name| match name {
                "HOIST_BUILD_PARALLEL" => Some("1".into()),
                "HOIST_API_ADDR" => Some("127.0.0.1:9999".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.build.parallel, 1);
        assert_eq!(config.api_addr.port(), 9999);
        let err =
            config.apply_env(|name| (name == "HOIST_API_ADDR").then(|| "nowhere".into())).unwrap_err().to_string();
        assert!(err.contains("HOIST_API_ADDR=\"nowhere\""), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(Config::from_toml("api_adr = \"127.0.0.1:1\"").is_err());
    }
}
