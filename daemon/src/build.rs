//! The build stage: turns the source of one commit into an image in the local dockerd.
//!
//! Two ways, chosen by [`crate::buildpack::detect`]:
//! - a Dockerfile at the root: `docker build` of the source as it is;
//! - a buildpack: its `assemble` runs in a builder container of its stack, as the
//!   unprivileged `hoist` user, with the app's build cache mounted at `/cache`; the
//!   `app/` and `deps/` it leaves are copied into an image `FROM` the stack's run image,
//!   `deps/` first, so an unchanged dependency layer stays the same layer.
//!
//! Architecture invariant: the build stage knows nothing about registries, releases or
//! routing; it returns a local image reference and writes to the build log.

use crate::app::AppName;
use crate::archive;
use crate::buildpack::{self, Buildpack, Catalog, Detection};
use crate::docker::{LABEL_APP, LABEL_INSTANCE, LABEL_ROLE};
use crate::logs::LiveLog;
use crate::runtime_version::{self, Default as DefaultVersion};
use crate::stack::{self, StackImages, StackSpec, Stacks};
use crate::version_source::{self, VersionSources};
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tracing::instrument;

/// What can go wrong in a build. Each message is shown to the pushing user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Detect(#[from] buildpack::Error),
    #[error(transparent)]
    RuntimeVersion(#[from] runtime_version::Error),
    #[error(transparent)]
    VersionSource(#[from] version_source::Error),
    #[error(transparent)]
    Stack(#[from] stack::Error),
    #[error("assemble of buildpack {buildpack:?} failed with exit code {code}; see its output above")]
    AssembleFailed { buildpack: String, code: i64 },
    #[error(
        "the build ran out of memory (limit {limit_mb} MiB, build.memory_mb) and was stopped; \
         raise build.memory_mb (HOIST_BUILD_MEMORY_MB) or make the build use less"
    )]
    OutOfMemory { limit_mb: u64 },
    #[error("docker build failed: {0}")]
    DockerBuild(String),
    #[error("the build took longer than {0:?} and was stopped; raise build.timeout_secs or make it faster")]
    Timeout(Duration),
    #[error("dockerd: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("cannot prepare the build context: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Output without a line break longer than this is cut into lines of this size.
const MAX_LINE: usize = 64 * 1024;

/// The source of one commit, ready to build.
#[derive(Debug, Clone)]
pub struct Source {
    pub app: AppName,
    pub build_id: i64,
    pub commit: String,
    /// The build's scratch folder; the source and everything made from it live there.
    pub work: std::sync::Arc<WorkDir>,
    /// A tar of the commit's tree (in `work`), paths relative to its root.
    pub tar: std::path::PathBuf,
    /// Every file path in the tree, for detection.
    pub files: Vec<String>,
    /// The app's `buildpack` setting: overrides detection when set.
    pub buildpack_setting: Option<String>,
    /// The app's config vars when the build started: `assemble` sees them (after
    /// `.s2i/environment`, so the operator's value wins over the repo's).
    pub config: crate::store::ConfigVars,
}

/// A build's scratch folder (`<data>/work/<name>`): the pushed source as a tar, the
/// builder's outputs, the image's context. Everything as big as the app goes through
/// files here, streamed, never whole into memory. Removed when the last `Source` holding
/// it is dropped; hoistd empties `<data>/work` when it starts.
#[derive(Debug)]
pub struct WorkDir(std::path::PathBuf);

impl WorkDir {
    pub fn create(root: &std::path::Path, name: &str) -> std::io::Result<WorkDir> {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir)?;
        Ok(WorkDir(dir))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A file as a stream of chunks for a request body, read as it is sent.
async fn file_stream(path: &std::path::Path) -> std::io::Result<tokio_util::io::ReaderStream<tokio::fs::File>> {
    Ok(tokio_util::io::ReaderStream::new(tokio::fs::File::open(path).await?))
}

/// What a build made, for the push stage.
#[derive(Debug, Clone)]
pub enum Built {
    /// An image `docker build` left in dockerd (`repository:tag`), from the repo's Dockerfile.
    Image { reference: String },
    /// A buildpack's outputs, which the export stage makes an image of.
    Assembled(Box<Assembled>),
}

impl Built {
    pub fn buildpack(&self) -> &str {
        match self {
            Built::Image { .. } => buildpack::DOCKERFILE,
            Built::Assembled(assembled) => &assembled.buildpack,
        }
    }
}

/// What a buildpack build left for the export, in the build's work dir.
#[derive(Debug, Clone)]
pub struct Assembled {
    pub buildpack: String,
    pub stack: StackSpec,
    /// The stack's run image in dockerd (`hoist/stack-node:22.12.0-run`).
    pub run_image: String,
    /// `/app` as assemble left it.
    pub app: std::path::PathBuf,
    /// `/deps` as assemble left it.
    pub deps: std::path::PathBuf,
    /// `$LAYERS_DIR`: each folder a layer of its own under `/app`, in name order, between
    /// the deps and the app (a Spring Boot jar's dependencies, for example).
    pub layers: std::path::PathBuf,
    /// `/hoist/run`, the start script when there is no Procfile.
    pub run_script: Vec<u8>,
    /// The key of what made `deps` (lock files, runtime, stack, buildpack); `None`: it
    /// cannot be told, so the layer is written every time (and uploaded only if new).
    pub deps_key: Option<String>,
    pub spec: crate::image::Spec,
}

/// The folders a builder's `/app`, `/deps` and `$LAYERS_DIR` are: folders of the work
/// dir, mounted into the builder, so what assemble writes is read once, where it lies,
/// never copied out through dockerd's archive API.
struct Outputs {
    app: std::path::PathBuf,
    deps: std::path::PathBuf,
    layers: std::path::PathBuf,
}

impl Outputs {
    fn create(work: &std::path::Path) -> std::io::Result<Outputs> {
        let outputs = Outputs { app: work.join("app"), deps: work.join("deps"), layers: work.join("layers") };
        for dir in [&outputs.app, &outputs.deps, &outputs.layers] {
            std::fs::create_dir_all(dir)?;
            // The builder runs as the hoist user; hoistd may not be root, so the folder
            // is open to all when it cannot be given away (the work dir is hoistd's own).
            let uid = archive::APP_UID as u32;
            if std::os::unix::fs::chown(dir, Some(uid), Some(uid)).is_err() {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))?;
            }
        }
        Ok(outputs)
    }

    fn mounts(&self) -> Vec<Mount> {
        [(&self.app, "/app"), (&self.deps, "/deps"), (&self.layers, LAYERS_DIR)]
            .into_iter()
            .map(|(source, target)| Mount {
                target: Some(target.to_string()),
                source: Some(source.to_string_lossy().into_owned()),
                typ: Some(MountType::BIND),
                ..Default::default()
            })
            .collect()
    }
}

/// Where assemble may leave folders that become layers of their own (under `/app`).
const LAYERS_DIR: &str = "/layers";

/// `memory_mb` as the byte count Docker's build API takes (an i32).
fn build_memory_bytes(memory_mb: u64) -> i32 {
    i32::try_from(memory_mb.saturating_mul(1024 * 1024)).unwrap_or(i32::MAX)
}

/// Limits of one builder container.
#[derive(Debug, Clone)]
pub struct Limits {
    pub memory_mb: u64,
    pub cpus: f64,
    pub pids: i64,
}

/// Settings of the build stage.
#[derive(Debug, Clone)]
pub struct Settings {
    pub instance: String,
    pub timeout: Duration,
    /// `PORT` an app listens on, baked into its image.
    pub app_port: u16,
    pub limits: Limits,
    /// Bytes of build output kept in the build's log.
    pub output_limit: u64,
}

/// Runs builds against dockerd.
#[derive(Clone)]
pub struct Builder {
    docker: Docker,
    catalog: Arc<Catalog>,
    stacks: Stacks,
    versions: VersionSources,
    settings: Settings,
}

impl Builder {
    pub fn new(
        docker: Docker,
        catalog: Arc<Catalog>,
        stacks: Stacks,
        versions: VersionSources,
        settings: Settings,
    ) -> Builder {
        Builder { docker, catalog, stacks, versions, settings }
    }

    /// Whether `hoist dev` may copy changed files into a release built by `buildpack`
    /// instead of building (`[dev] sync` of its `buildpack.toml`).
    pub fn syncs(&self, buildpack: &str) -> bool {
        self.catalog.get(buildpack).is_some_and(|b| b.manifest.dev.sync)
    }

    /// Files whose arrival can change what detection picks.
    pub fn markers(&self) -> Vec<String> {
        let mut markers = self.catalog.markers();
        markers.push("Dockerfile".to_string());
        markers
    }

    /// The stacks builds run on.
    pub fn stacks(&self) -> &Stacks {
        &self.stacks
    }

    /// The volume that holds an app's dependency caches across builds.
    fn cache_volume(&self, app: &AppName) -> String {
        format!("{}-cache-{}", self.settings.instance, app)
    }

    /// The app's dependency cache volume, made with the instance's labels (a volume that
    /// a mount made would carry none, and cleanup by label would miss it).
    async fn ensure_cache_volume(&self, app: &AppName) -> Result<String> {
        let name = self.cache_volume(app);
        let labels = HashMap::from([
            (LABEL_INSTANCE.to_string(), self.settings.instance.clone()),
            (LABEL_APP.to_string(), app.to_string()),
            (crate::docker::LABEL_ROLE.to_string(), "cache".to_string()),
        ]);
        let options = bollard::models::VolumeCreateRequest {
            name: Some(name.clone()),
            labels: Some(labels),
            ..Default::default()
        };
        self.docker.create_volume(options).await?;
        Ok(name)
    }

    /// Stops and removes the app's builder containers (the app is being deleted, whatever
    /// its target): a build in flight ends with its app.
    pub async fn stop_builds(&self, app: &AppName) {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                format!("{LABEL_INSTANCE}={}", self.settings.instance),
                format!("{LABEL_APP}={app}"),
                format!("{}=builder", crate::docker::LABEL_ROLE),
            ],
        )]);
        let options =
            bollard::query_parameters::ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let containers = match self.docker.list_containers(Some(options)).await {
            Ok(containers) => containers,
            Err(error) => {
                tracing::warn!(%app, %error, "cannot list the app's builder containers");
                return;
            }
        };
        for id in containers.into_iter().filter_map(|c| c.id) {
            let remove = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
            if let Err(error) = self.docker.remove_container(&id, Some(remove)).await {
                tracing::warn!(%app, container = %id, %error, "cannot remove a builder container");
            }
        }
    }

    /// Removes the app's dependency cache (the app is being deleted).
    pub async fn remove_cache(&self, app: &AppName) {
        let volume = self.cache_volume(app);
        match self.docker.remove_volume(&volume, None::<bollard::query_parameters::RemoveVolumeOptions>).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(error) => tracing::warn!(%volume, %error, "cannot remove the build cache"),
        }
    }

    /// Builds `source`: a Dockerfile into the local image `reference`, a buildpack's
    /// assemble into outputs for the export stage; progress goes to `log`.
    #[instrument(skip_all, fields(app = %source.app, build = source.build_id))]
    pub async fn build(&self, source: &Source, reference: &str, log: &LiveLog) -> Result<Built> {
        log.limit_output(self.settings.output_limit);
        let detection = self.catalog.detect(&source.files, source.buildpack_setting.as_deref())?;
        log.line(format!(
            "-----> Detected {} app ({}): buildpack {}",
            detection.language, detection.reason, detection.buildpack
        ));
        if !detection.also_matched.is_empty() {
            let others: Vec<String> =
                detection.also_matched.iter().map(|(name, marker)| format!("{name} ({marker})")).collect();
            log.line(format!(
                "       also found: {}; {} goes first (set the app's buildpack to choose another)",
                others.join(", "),
                detection.buildpack
            ));
        }
        let work = async {
            if detection.buildpack == buildpack::DOCKERFILE {
                self.docker_build(source, &source.tar, reference, log).await?;
                Ok(Built::Image { reference: reference.to_string() })
            } else {
                let buildpack = self.catalog.get(&detection.buildpack).expect("detection names a buildpack it has");
                Ok(Built::Assembled(Box::new(self.buildpack_build(source, &detection, buildpack, log).await?)))
            }
        };
        match tokio::time::timeout(self.settings.timeout, work).await {
            Ok(result) => result,
            Err(_) => {
                // The builder container outlives the dropped future; a docker build is
                // cancelled by dockerd when its connection closes.
                let remove = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
                let _ = self.docker.remove_container(&self.builder_container(source), Some(remove)).await;
                Err(Error::Timeout(self.settings.timeout))
            }
        }
    }

    fn builder_container(&self, source: &Source) -> String {
        format!("{}-build-{}-{}", self.settings.instance, source.app, source.build_id)
    }

    fn labels(&self, source: &Source) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_INSTANCE.to_string(), self.settings.instance.clone()),
            (LABEL_APP.to_string(), source.app.to_string()),
            ("org.opencontainers.image.revision".to_string(), source.commit.clone()),
        ])
    }

    /// The stack `buildpack` builds on for this source: its runtime version resolved
    /// from the app's version files, before anything is built.
    async fn choose_stack(&self, source: &Source, buildpack: &Buildpack, log: &LiveLog) -> Result<StackSpec> {
        let stack = buildpack.manifest.stack.clone();
        let Some(runtime) = &buildpack.manifest.runtime else {
            return Ok(StackSpec { name: stack, suite: stack::BOOTSTRAP_SUITE.to_string(), version: None });
        };
        let mut request = None;
        for file in &runtime.files {
            if let Some(bytes) = archive::read_file(&source.tar, &file.path, archive::SMALL_FILE_MAX)? {
                let text = String::from_utf8_lossy(&bytes);
                if let Some(found) = runtime_version::read_request(file.format, &file.path, &text) {
                    request = Some(found);
                    break;
                }
            }
        }
        let candidates = self.versions.candidates(runtime).await?;
        let default = match runtime.default.as_str() {
            "lts" => DefaultVersion::NodeLts,
            other => DefaultVersion::Matching(other.to_string()),
        };
        let resolution = runtime_version::resolve(&runtime.name, request.as_ref(), &candidates, &default)?;
        log.line(format!("-----> {}", resolution.note));
        if let Some(warning) = &resolution.warning {
            log.line(format!(" !     Warning: {warning}"));
        }
        let suite = version_source::debian_suite(&resolution.candidate).unwrap_or(&runtime.suite).to_string();
        Ok(StackSpec { name: stack, suite, version: Some(resolution.candidate.version.to_string()) })
    }

    /// `docker build` of `context`, its output streamed to `log`.
    async fn docker_build(
        &self,
        source: &Source,
        context: &std::path::Path,
        reference: &str,
        log: &LiveLog,
    ) -> Result<()> {
        let limits = &self.settings.limits;
        let options = BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(reference)
            .rm(true)
            .forcerm(true)
            .labels(&self.labels(source))
            // The build limits hold for every RUN step as for an assemble. (Docker's
            // build API takes memory as a 32-bit count of bytes, so at most 2 GiB; and it
            // has no pids limit: the build's time limit stops a fork bomb.)
            .memory(build_memory_bytes(limits.memory_mb))
            .memswap(build_memory_bytes(limits.memory_mb))
            .cpuperiod(100_000)
            .cpuquota((limits.cpus * 100_000.0).max(1_000.0) as i32)
            .build();
        let mut output =
            self.docker.build_image(options, None, Some(bollard::body_try_stream(file_stream(context).await?)));
        while let Some(item) = output.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = info.stream {
                        for line in text.lines().filter(|line| !is_docker_build_noise(line)) {
                            log.output(indent(line));
                        }
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    log.line(indent(&error));
                    // 137: the step was killed, which the memory limit does.
                    if error.contains("non-zero code: 137") {
                        return Err(Error::OutOfMemory { limit_mb: limits.memory_mb });
                    }
                    return Err(Error::DockerBuild(error.trim().to_string()));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Runs the buildpack's assemble in a builder container of its stack; what it left in
    /// `/app`, `/deps` and `$LAYERS_DIR` is in the work dir for the export stage.
    async fn buildpack_build(
        &self,
        source: &Source,
        detection: &Detection,
        buildpack: &Buildpack,
        log: &LiveLog,
    ) -> Result<Assembled> {
        let spec = self.choose_stack(source, buildpack, log).await?;
        let stack = self.stacks.ensure(&spec, log).await?;
        let container = self.builder_container(source);
        let outputs = Outputs::create(source.work.path())?;
        let result = self.assemble(source, detection, buildpack, &stack, &spec, &container, &outputs, log).await;
        let remove = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        if let Err(error) = self.docker.remove_container(&container, Some(remove)).await {
            tracing::warn!(%container, %error, "cannot remove builder container");
        }
        result?;
        let run_script = if detection.s2i_run {
            archive::read_file(&source.tar, ".s2i/bin/run", archive::SMALL_FILE_MAX)?.unwrap_or_default()
        } else {
            std::fs::read(buildpack.dir.join("bin/run"))?
        };
        let procfile = archive::read_file(&source.tar, "Procfile", archive::SMALL_FILE_MAX)?
            .and_then(|p| buildpack::procfile_web_command(&String::from_utf8_lossy(&p)));
        let deps_key = self.deps_key(source, detection, buildpack, &stack, &spec).await?;
        let port = self.settings.app_port;
        let mut labels: std::collections::BTreeMap<String, String> = self.labels(source).into_iter().collect();
        labels.insert("org.opencontainers.image.created".to_string(), crate::image::CREATED.to_string());
        let spec_of_image = crate::image::Spec {
            env: vec![("PORT".to_string(), port.to_string()), ("HOME".to_string(), "/app".to_string())],
            cmd: run_command(procfile.as_deref()),
            user: archive::APP_UID.to_string(),
            workdir: "/app".to_string(),
            port,
            labels,
        };
        Ok(Assembled {
            buildpack: buildpack.name.clone(),
            stack: spec,
            run_image: stack.run,
            app: outputs.app,
            deps: outputs.deps,
            layers: outputs.layers,
            run_script,
            deps_key,
            spec: spec_of_image,
        })
    }

    /// The key of what makes the deps layer: the buildpack's `deps_key` files, its
    /// scripts, the runtime version and the stack's build image; `None` when the
    /// buildpack names no files, or the repo brings its own assemble.
    async fn deps_key(
        &self,
        source: &Source,
        detection: &Detection,
        buildpack: &Buildpack,
        stack: &StackImages,
        spec: &StackSpec,
    ) -> Result<Option<String>> {
        if buildpack.manifest.deps_key.is_empty() || detection.s2i_assemble {
            return Ok(None);
        }
        let build_image = self.docker.inspect_image(&stack.build).await?.id.unwrap_or_default();
        let mut parts: Vec<Vec<u8>> = vec![
            buildpack.name.clone().into_bytes(),
            std::fs::read(buildpack.dir.join("bin/assemble"))?,
            build_image.into_bytes(),
            spec.version.clone().unwrap_or_default().into_bytes(),
        ];
        // What reaches assemble besides the files: the repo's .s2i/environment and the
        // app's config vars. All of them read in one pass over the source.
        let mut wanted: Vec<(&str, u64)> =
            buildpack.manifest.deps_key.iter().map(|file| (file.as_str(), 64 * archive::SMALL_FILE_MAX)).collect();
        wanted.push((".s2i/environment", archive::SMALL_FILE_MAX));
        let mut files = archive::read_files(&source.tar, &wanted)?;
        if let Some(bytes) = files.pop().flatten() {
            parts.push(bytes);
        }
        for (name, value) in source.config.iter() {
            parts.push(format!("{name}={value}").into_bytes());
        }
        for (file, bytes) in buildpack.manifest.deps_key.iter().zip(files) {
            parts.push(file.clone().into_bytes());
            parts.push(bytes.unwrap_or_else(|| b"(absent)".to_vec()));
        }
        Ok(Some(key_of(&parts)))
    }

    #[allow(clippy::too_many_arguments)]
    async fn assemble(
        &self,
        source: &Source,
        detection: &Detection,
        buildpack: &Buildpack,
        stack: &StackImages,
        spec: &StackSpec,
        container: &str,
        outputs: &Outputs,
        log: &LiveLog,
    ) -> Result<()> {
        // The builder's files: the source and the buildpack's scripts. /app and /deps,
        // where assemble leaves its outputs, are in the stack, owned by the hoist user:
        // the paths a build writes are the paths the app runs from.
        let files_path = source.work.path().join("builder.tar");
        let mut files = archive::Writer::create(&files_path, archive::APP_UID)?;
        files.dir("workspace/source/")?;
        files.append_rebased(&source.tar, 0, "workspace/source/")?;
        files.set_uid(0);
        for script in ["assemble", "run"] {
            let path = format!("hoist/buildpack/bin/{script}");
            files.file(&path, 0o755, &std::fs::read(buildpack.dir.join("bin").join(script))?)?;
        }
        files.finish()?.flush()?;
        let assemble = if detection.s2i_assemble {
            log.line("-----> Using .s2i/bin/assemble from the repo");
            "/workspace/source/.s2i/bin/assemble"
        } else {
            "/hoist/buildpack/bin/assemble"
        };

        let mut env = vec![
            format!("HOIST_APP={}", source.app),
            format!("HOIST_COMMIT={}", source.commit),
            "SOURCE_DIR=/workspace/source".to_string(),
            "APP_DIR=/app".to_string(),
            "DEPS_DIR=/deps".to_string(),
            "CACHE_DIR=/cache".to_string(),
            format!("LAYERS_DIR={LAYERS_DIR}"),
            "HOME=/workspace".to_string(),
            format!("PORT={}", self.settings.app_port),
        ];
        if let Some(version) = &spec.version {
            env.push(format!("HOIST_RUNTIME_VERSION={version}"));
        }
        // S2I's .s2i/environment reaches assemble (and so the build tools it runs).
        if let Some(bytes) = archive::read_file(&source.tar, ".s2i/environment", archive::SMALL_FILE_MAX)? {
            let variables = buildpack::parse_s2i_environment(&String::from_utf8_lossy(&bytes));
            if !variables.is_empty() {
                let names: Vec<&str> = variables.iter().map(|(name, _)| name.as_str()).collect();
                log.line(format!("-----> .s2i/environment sets {}", names.join(", ")));
            }
            env.extend(variables.into_iter().map(|(name, value)| format!("{name}={value}")));
        }
        if !source.config.is_empty() {
            let names: Vec<&str> = source.config.keys().map(String::as_str).collect();
            log.line(format!("-----> The app's config vars reach the build: {}", names.join(", ")));
            env.extend(source.config.iter().map(|(name, value)| format!("{name}={value}")));
        }

        let mut labels = self.labels(source);
        labels.insert(LABEL_ROLE.to_string(), "builder".to_string());
        let cache_volume = self.ensure_cache_volume(&source.app).await?;
        let limits = &self.settings.limits;
        let memory = (limits.memory_mb * 1024 * 1024) as i64;
        let body = ContainerCreateBody {
            image: Some(stack.build.clone()),
            cmd: Some(vec![assemble.to_string()]),
            user: Some(archive::APP_UID.to_string()),
            working_dir: Some("/workspace/source".to_string()),
            env: Some(env),
            labels: Some(labels),
            host_config: Some(HostConfig {
                mounts: Some(
                    [Mount {
                        target: Some("/cache".to_string()),
                        source: Some(cache_volume),
                        typ: Some(MountType::VOLUME),
                        ..Default::default()
                    }]
                    .into_iter()
                    .chain(outputs.mounts())
                    .collect(),
                ),
                // Memory and swap alike: a build that needs more is stopped, not swapped.
                memory: Some(memory),
                memory_swap: Some(memory),
                nano_cpus: Some((limits.cpus * 1e9) as i64),
                pids_limit: Some(limits.pids),
                // dockerd keeps the builder's output too: bounded, whatever assemble prints.
                log_config: Some(bollard::models::HostConfigLogConfig {
                    typ: Some("json-file".to_string()),
                    config: Some(HashMap::from([
                        ("max-size".to_string(), "10m".to_string()),
                        ("max-file".to_string(), "2".to_string()),
                    ])),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        // A container left by a build that hoistd did not finish would block the name.
        let remove = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        let _ = self.docker.remove_container(container, Some(remove)).await;
        let create = CreateContainerOptionsBuilder::default().name(container).build();
        self.docker.create_container(Some(create), body).await?;
        let upload = UploadToContainerOptionsBuilder::default().path("/").build();
        self.docker
            .upload_to_container(container, Some(upload), bollard::body_try_stream(file_stream(&files_path).await?))
            .await?;
        self.docker.start_container(container, None).await?;
        log.line(format!("-----> Running assemble of buildpack {}", buildpack.name));

        let follow = LogsOptionsBuilder::default().follow(true).stdout(true).stderr(true).build();
        let mut output = self.docker.logs(container, Some(follow));
        let mut partial = String::new();
        while let Some(chunk) = output.next().await {
            let chunk = chunk?;
            partial.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
            while let Some(end) = partial.find('\n') {
                let line: String = partial.drain(..=end).collect();
                log.output(indent(&line));
            }
            // Output without line breaks must not grow without bound either.
            // The piece is masked before it is cut, and as much as the longest secret is
            // held back for the next piece, so a secret is never split in two.
            if partial.len() > MAX_LINE {
                let masked = log.masked(&partial);
                let mut cut = masked.len() - log.longest_secret().min(masked.len());
                while !masked.is_char_boundary(cut) {
                    cut -= 1;
                }
                if cut > 0 {
                    log.output(indent(&masked[..cut]));
                }
                partial = masked[cut..].to_string();
            }
        }
        if !partial.is_empty() {
            log.output(indent(&partial));
        }
        if log.dropped_output_lines() > 0 {
            log.line(format!("       ({} more lines of output were not kept)", log.dropped_output_lines()));
        }
        let code = self.exit_code(container).await?;
        let out_of_memory = self
            .docker
            .inspect_container(container, None)
            .await
            .ok()
            .and_then(|inspect| inspect.state)
            .and_then(|state| state.oom_killed)
            .unwrap_or(false);
        if out_of_memory {
            return Err(Error::OutOfMemory { limit_mb: limits.memory_mb });
        }
        if code != 0 {
            return Err(Error::AssembleFailed { buildpack: buildpack.name.clone(), code });
        }
        Ok(())
    }

    async fn exit_code(&self, container: &str) -> Result<i64> {
        let mut wait = self.docker.wait_container(container, None::<bollard::query_parameters::WaitContainerOptions>);
        match wait.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(e.into()),
            None => Ok(-1),
        }
    }
}

/// The command an app image starts: the Procfile's web line, else the buildpack's run
/// script.
fn run_command(web_command: Option<&str>) -> Vec<String> {
    match web_command {
        // As Heroku does: the whole line through bash, so `a; b`, `exec x` and `$PORT` work;
        // bash runs a lone command in its own place, so signals reach it.
        Some(command) => vec!["/bin/bash".to_string(), "-c".to_string(), command.to_string()],
        None => vec!["/hoist/run".to_string()],
    }
}

/// A key of `parts` (each length-prefixed, so no two lists share one).
fn key_of(parts: &[Vec<u8>]) -> String {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    hex::encode(hash.finalize())
}

/// Lines of the classic builder's output that say nothing to a user.
fn is_docker_build_noise(line: &str) -> bool {
    let line = line.trim();
    line.is_empty()
        || line.starts_with("---> ")
        || line.starts_with("Removing intermediate container")
        || line.starts_with("Successfully built")
}

/// Indents build output under hoist's `----->` headings, like Heroku's.
fn indent(text: &str) -> String {
    text.lines().map(|l| format!("       {l}")).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_command_and_the_deps_key() {
        assert_eq!(run_command(Some("./serve \"$PORT\"")), ["/bin/bash", "-c", "./serve \"$PORT\""]);
        assert_eq!(run_command(None), ["/hoist/run"]);
        assert!(is_docker_build_noise(" ---> Running in 61927d140c7a"));
        assert!(!is_docker_build_noise("Step 2/11 : COPY app /app"));
        let parts = |a: &str, b: &str| vec![a.as_bytes().to_vec(), b.as_bytes().to_vec()];
        assert_eq!(key_of(&parts("ab", "c")), key_of(&parts("ab", "c")));
        assert_ne!(key_of(&parts("ab", "c")), key_of(&parts("a", "bc")), "parts are length-prefixed");
    }
}
