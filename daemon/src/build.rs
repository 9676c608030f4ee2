//! The build stage: turns the source of one commit into an image.
//!
//! Three ways, chosen by [`crate::buildpack::detect`]:
//! - a Dockerfile at the root: `docker build` of the source as it is;
//! - a buildpack: its `assemble` runs in a builder of its stack, as the unprivileged
//!   `hoist` user, with the app's build cache at `/cache`; the `app/` and `deps/` it
//!   leaves become the image's layers, `deps/` first, so an unchanged dependency layer
//!   stays the same layer;
//! - a `[copy]` buildpack (a static site): the app is the source as it is, so no builder
//!   runs and the export writes the app layer from the pushed tree ([`Outputs::Source`]).
//!
//! Where builders run is the [`Engine`] seam, with two implementations:
//!
//! ```text
//!  Builder (detection, runtime version, env, deps key, image spec)
//!    ├─ docker::DockerEngine      dockerd on this machine: builder containers, outputs
//!    │                            bind-mounted into the work dir, exported by hoistd
//!    └─ kubernetes::PodEngine     a pod per build in hoist's namespace: the source sent
//!                                 to its assemble container, `hoistd export` beside it
//!                                 waits for assemble and pushes the layers
//! ```
//!
//! Architecture invariant: the build stage knows nothing about releases or routing; an
//! engine returns the builder's outputs or, when it exported itself, the image's digest.

use crate::app::AppName;
use crate::archive;
use crate::buildpack::{self, Buildpack, Catalog, Detection};
use crate::logs::LiveLog;
use crate::runtime_version::{self, Default as DefaultVersion};
use crate::stack::{self, StackImages, StackSpec};
use crate::version_source::{self, VersionSources};
use std::sync::Arc;
use std::time::Duration;
use tracing::instrument;

pub mod docker;
pub mod kubernetes;

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
    #[error(
        "the app's builder kept from its last build could not be emptied (exit {code}); it was removed: push again, \
         or set build.warm_secs (HOIST_BUILD_WARM_SECS) to 0 to start a builder for each build"
    )]
    WarmBuilder { code: i64 },
    #[error("cannot prepare the build context: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Pod(#[from] kubernetes::Error),
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

/// What a build made, for the push stage.
#[derive(Debug, Clone)]
pub enum Built {
    /// An image `docker build` left in dockerd (`repository:tag`), from the repo's Dockerfile.
    Image { reference: String },
    /// A buildpack's outputs, which the export stage makes an image of.
    Assembled(Box<Assembled>),
    /// An image the engine exported itself (a build pod): in the registry as the tag.
    Exported { buildpack: String, digest: String },
}

impl Built {
    pub fn buildpack(&self) -> &str {
        match self {
            Built::Image { .. } => buildpack::DOCKERFILE,
            Built::Assembled(assembled) => &assembled.buildpack,
            Built::Exported { buildpack, .. } => buildpack,
        }
    }
}

/// What a buildpack build left for the export, in the build's work dir.
#[derive(Debug, Clone)]
pub struct Assembled {
    pub buildpack: String,
    pub stack: StackSpec,
    /// The stack's run image (`hoist/stack-node:22.12.0-run` in dockerd, or
    /// `<registry>/stacks/node:22.12.0-run`).
    pub run_image: String,
    pub outputs: Outputs,
    /// `/hoist/run`, the start script when there is no Procfile.
    pub run_script: Vec<u8>,
    /// The key of what made `deps` (lock files, runtime, stack, buildpack); `None`: it
    /// cannot be told, so the layer is written every time (and uploaded only if new).
    pub deps_key: Option<String>,
    pub spec: crate::image::Spec,
}

/// What becomes the image's layers above the run image.
#[derive(Debug, Clone)]
pub enum Outputs {
    /// What assemble left in the build's work dir.
    Folders {
        /// `/app`.
        app: std::path::PathBuf,
        /// `/deps`.
        deps: std::path::PathBuf,
        /// `$LAYERS_DIR`: each folder a layer of its own under `/app`, in name order,
        /// between the deps and the app (a Spring Boot jar's dependencies, for example).
        layers: std::path::PathBuf,
    },
    /// The pushed source tree (`tar`) as `/app`, as `copy` says, made with no builder:
    /// a `[copy]` buildpack's app, or one whose assemble said its `/app` is such a copy
    /// while the deps key stays the same (the deps layer is then the running image's).
    Source { tar: std::path::PathBuf, copy: crate::image::AppCopy },
}

/// The seam between the build stage and where builders run.
#[async_trait::async_trait]
pub trait Engine: Send + Sync {
    /// Where builds run, for logs: `dockerd`, `pods in namespace hoist`.
    fn describe(&self) -> String;
    /// Both images of `spec` as this engine's builders reach them, and an id of the
    /// build image (for the deps key: a new build image makes new dependencies).
    async fn stack(&self, spec: &StackSpec, log: &LiveLog) -> Result<(StackImages, String)>;
    /// Builds the repo's Dockerfile into `reference`.
    async fn dockerfile(&self, source: &Source, reference: &str, log: &LiveLog) -> Result<()>;
    /// Runs assemble: the outputs for the export stage, or the image it exported.
    async fn assemble(&self, job: &Job<'_>, log: &LiveLog) -> Result<Assembly>;
    /// Stops what a build that ran out of time left running.
    async fn cancel(&self, source: &Source);
    /// Stops the app's builds (the app is being deleted).
    async fn stop_builds(&self, app: &AppName);
    /// Removes the app's dependency cache (the app is being deleted).
    async fn remove_cache(&self, app: &AppName);
    /// At start: removes builders that a stop cut off (their builds are marked interrupted).
    async fn recover(&self);
}

/// One assemble for an engine.
pub struct Job<'a> {
    pub source: &'a Source,
    pub buildpack: &'a str,
    /// The buildpack's scripts (`assemble`, `run`) by name.
    pub scripts: Vec<(&'static str, Vec<u8>)>,
    /// The repo brings its own `.s2i/bin/assemble`.
    pub s2i_assemble: bool,
    pub stack: &'a StackImages,
    /// assemble's environment but `SOURCE_DIR` and `HOME`, which depend on the engine.
    pub env: Vec<String>,
    /// What the export needs, for engines that export themselves.
    pub export: crate::export::Plan,
}

/// What an engine's assemble gave.
pub enum Assembly {
    Outputs { app: std::path::PathBuf, deps: std::path::PathBuf, layers: std::path::PathBuf },
    Exported { digest: String },
}

/// Where assemble may leave folders that become layers of their own (under `/app`).
pub const LAYERS_DIR: &str = "/layers";

/// The file in [`LAYERS_DIR`] where assemble may say that `/app` is a copy of the source
/// (see [`crate::image::AppCopy`]): while the deps key stays the same, later builds make
/// `/app` that way without a builder. Only what the deps key covers may decide it.
pub const APP_COPY: &str = "app.copy";

/// The file in [`LAYERS_DIR`] where assemble may give the app's processes variables of
/// its own (`NAME=VALUE` lines, see [`crate::image::Spec::with_launch_env`]).
pub const LAUNCH_ENV: &str = "launch.env";

/// Build output into a log as lines: output without line breaks must not grow without
/// bound either. A piece is masked before it is cut, and as much as the longest secret is
/// held back for the next piece, so a secret is never split in two.
pub(crate) struct OutputLines<'a> {
    log: &'a LiveLog,
    partial: String,
}

impl<'a> OutputLines<'a> {
    pub(crate) fn new(log: &'a LiveLog) -> OutputLines<'a> {
        OutputLines { log, partial: String::new() }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.push_until(bytes, None);
    }

    /// As [`OutputLines::push`], up to the first line that ends with `end` (kept out of
    /// the log, but for what came before it on its line); true once it came, and what
    /// follows it is dropped.
    pub(crate) fn push_until(&mut self, bytes: &[u8], end: Option<&str>) -> bool {
        self.partial.push_str(&String::from_utf8_lossy(bytes));
        while let Some(at) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=at).collect();
            if let Some(before) = end.and_then(|end| line.trim_end_matches(['\n', '\r']).strip_suffix(end)) {
                if !before.is_empty() {
                    self.log.output(indent(before));
                }
                self.partial.clear();
                return true;
            }
            self.log.output(indent(&line));
        }
        if self.partial.len() > MAX_LINE {
            let masked = self.log.masked(&self.partial);
            let mut cut = masked.len() - self.log.longest_secret().min(masked.len());
            while !masked.is_char_boundary(cut) {
                cut -= 1;
            }
            if cut > 0 {
                self.log.output(indent(&masked[..cut]));
            }
            self.partial = masked[cut..].to_string();
        }
        false
    }

    pub(crate) fn finish(self) {
        if !self.partial.is_empty() {
            self.log.output(indent(&self.partial));
        }
        if self.log.dropped_output_lines() > 0 {
            self.log.line(format!("       ({} more lines of output were not kept)", self.log.dropped_output_lines()));
        }
    }
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
    /// Bytes of build output kept in the build's log.
    pub output_limit: u64,
}

/// Where a build's image goes.
#[derive(Debug, Clone)]
pub struct Destination {
    /// `<registry>/<app>`.
    pub repository: String,
    /// `build-N`.
    pub tag: String,
    /// The image the app runs now: its layers with the same key are reused.
    pub previous: Option<String>,
    /// What hoist recorded in that image, when hoist made it.
    pub previous_metadata: Option<crate::image::Metadata>,
}

/// Runs builds on an [`Engine`]; cheap to clone.
#[derive(Clone)]
pub struct Builder {
    engine: Arc<dyn Engine>,
    catalog: Arc<Catalog>,
    versions: VersionSources,
    settings: Settings,
}

impl Builder {
    pub fn new(
        engine: Arc<dyn Engine>,
        catalog: Arc<Catalog>,
        versions: VersionSources,
        settings: Settings,
    ) -> Builder {
        Builder { engine, catalog, versions, settings }
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

    /// Stops the app's builds (the app is being deleted, whatever its target): a build
    /// in flight ends with its app.
    pub async fn stop_builds(&self, app: &AppName) {
        self.engine.stop_builds(app).await;
    }

    /// Removes the app's dependency cache (the app is being deleted).
    pub async fn remove_cache(&self, app: &AppName) {
        self.engine.remove_cache(app).await;
    }

    /// Builds `source`: a Dockerfile into the local image `destination`, a buildpack's
    /// assemble into outputs for the export stage (or, for an engine that exports, into
    /// the image); progress goes to `log`.
    #[instrument(skip_all, fields(app = %source.app, build = source.build_id))]
    pub async fn build(&self, source: &Source, destination: &Destination, log: &LiveLog) -> Result<Built> {
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
                let reference = format!("{}:{}", destination.repository, destination.tag);
                self.engine.dockerfile(source, &reference, log).await?;
                Ok(Built::Image { reference })
            } else {
                let buildpack = self.catalog.get(&detection.buildpack).expect("detection names a buildpack it has");
                self.buildpack_build(source, &detection, buildpack, destination, log).await
            }
        };
        match tokio::time::timeout(self.settings.timeout, work).await {
            Ok(result) => result,
            Err(_) => {
                self.engine.cancel(source).await;
                Err(Error::Timeout(self.settings.timeout))
            }
        }
    }

    fn labels(&self, source: &Source) -> std::collections::BTreeMap<String, String> {
        std::collections::BTreeMap::from([
            (crate::docker::LABEL_INSTANCE.to_string(), self.settings.instance.clone()),
            (crate::docker::LABEL_APP.to_string(), source.app.to_string()),
            ("org.opencontainers.image.revision".to_string(), source.commit.clone()),
            ("org.opencontainers.image.created".to_string(), crate::image::CREATED.to_string()),
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

    /// assemble's environment, but what depends on the engine (`SOURCE_DIR`, `HOME`).
    fn assemble_env(&self, source: &Source, spec: &StackSpec, log: &LiveLog) -> Result<Vec<String>> {
        let mut env = vec![
            format!("HOIST_APP={}", source.app),
            format!("HOIST_COMMIT={}", source.commit),
            "APP_DIR=/app".to_string(),
            "DEPS_DIR=/deps".to_string(),
            "CACHE_DIR=/cache".to_string(),
            format!("LAYERS_DIR={LAYERS_DIR}"),
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
        Ok(env)
    }

    /// Runs the buildpack's assemble on the engine: its outputs for the export stage, or
    /// the image the engine exported.
    async fn buildpack_build(
        &self,
        source: &Source,
        detection: &Detection,
        buildpack: &Buildpack,
        destination: &Destination,
        log: &LiveLog,
    ) -> Result<Built> {
        let spec = self.choose_stack(source, buildpack, log).await?;
        let (stack, build_image_id) = self.engine.stack(&spec, log).await?;
        let run_script = if detection.s2i_run {
            archive::read_file(&source.tar, ".s2i/bin/run", archive::SMALL_FILE_MAX)?.unwrap_or_default()
        } else {
            std::fs::read(buildpack.dir.join("bin/run"))?
        };
        let procfile = archive::read_file(&source.tar, "Procfile", archive::SMALL_FILE_MAX)?
            .and_then(|p| buildpack::procfile_web_command(&String::from_utf8_lossy(&p)));
        let port = self.settings.app_port;
        let image_spec = crate::image::Spec {
            env: vec![("PORT".to_string(), port.to_string()), ("HOME".to_string(), "/app".to_string())],
            cmd: run_command(procfile.as_deref()),
            user: archive::APP_UID.to_string(),
            workdir: "/app".to_string(),
            port,
            labels: self.labels(source),
        };
        // A copy needs no builder: the export writes the app layer from the source.
        let copied = |copy: crate::image::AppCopy, deps_key: Option<String>| {
            Built::Assembled(Box::new(Assembled {
                buildpack: buildpack.name.clone(),
                stack: spec.clone(),
                run_image: stack.run.clone(),
                outputs: Outputs::Source { tar: source.tar.clone(), copy },
                run_script: run_script.clone(),
                deps_key,
                spec: image_spec.clone(),
            }))
        };
        if let (Some(copy), false) = (&buildpack.manifest.copy, detection.s2i_assemble) {
            log.line(format!(
                "-----> {}: the app is the source as it is (without {}); no builder to run",
                buildpack.manifest.language,
                copy.exclude.join(", ")
            ));
            let copy = crate::image::AppCopy { exclude: copy.exclude.clone(), links: Vec::new() };
            return Ok(copied(copy, None));
        }
        let env = self.assemble_env(source, &spec, log)?;
        if detection.s2i_assemble {
            log.line("-----> Using .s2i/bin/assemble from the repo");
        }
        let deps_key = self.deps_key(source, detection, buildpack, &build_image_id, &spec)?;
        if let Some(copy) = reusable_copy(destination.previous_metadata.as_ref(), deps_key.as_deref()) {
            log.line(format!(
                "-----> Dependencies unchanged (deps key {}…), and assemble made /app a copy of the source with \
                 them: the same copy, no builder to run",
                deps_key.as_deref().unwrap_or_default().get(..8).unwrap_or_default()
            ));
            return Ok(copied(copy, deps_key));
        }
        let plan = crate::export::Plan {
            repository: destination.repository.clone(),
            tag: destination.tag.clone(),
            previous: destination.previous.clone(),
            buildpack: buildpack.name.clone(),
            stack: spec.clone(),
            run_image: stack.run.clone(),
            run_script: run_script.clone(),
            deps_key: deps_key.clone(),
            spec: image_spec.clone(),
        };
        let job = Job {
            source,
            buildpack: &buildpack.name,
            scripts: Builder::scripts(buildpack)?,
            s2i_assemble: detection.s2i_assemble,
            stack: &stack,
            env,
            export: plan,
        };
        Ok(match self.engine.assemble(&job, log).await? {
            Assembly::Exported { digest } => Built::Exported { buildpack: buildpack.name.clone(), digest },
            Assembly::Outputs { app, deps, layers } => Built::Assembled(Box::new(Assembled {
                buildpack: buildpack.name.clone(),
                stack: spec,
                run_image: stack.run,
                outputs: Outputs::Folders { app, deps, layers },
                run_script,
                deps_key,
                spec: image_spec,
            })),
        })
    }

    /// The buildpack's scripts a builder gets (a `[copy]` one has no `assemble`: it runs
    /// in a builder only when the repo brings its own).
    fn scripts(buildpack: &Buildpack) -> Result<Vec<(&'static str, Vec<u8>)>> {
        let mut scripts = vec![("run", std::fs::read(buildpack.dir.join("bin/run"))?)];
        let assemble = buildpack.dir.join("bin/assemble");
        if assemble.is_file() {
            scripts.push(("assemble", std::fs::read(assemble)?));
        }
        Ok(scripts)
    }

    /// The key of what makes the deps layer: the buildpack's `deps_key` files, its
    /// scripts, the runtime version and the stack's build image; `None` when the
    /// buildpack names no files, or the repo brings its own assemble.
    fn deps_key(
        &self,
        source: &Source,
        detection: &Detection,
        buildpack: &Buildpack,
        build_image_id: &str,
        spec: &StackSpec,
    ) -> Result<Option<String>> {
        if buildpack.manifest.deps_key.is_empty() || detection.s2i_assemble {
            return Ok(None);
        }
        let mut parts: Vec<Vec<u8>> = vec![
            buildpack.name.clone().into_bytes(),
            std::fs::read(buildpack.dir.join("bin/assemble"))?,
            build_image_id.as_bytes().to_vec(),
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
}

/// How the running image's `/app` was copied from its source, when that still holds for
/// a build whose deps key is `deps_key`: its assemble said so (`$LAYERS_DIR/app.copy`)
/// and its deps layer was made from the same inputs (lock files, runtime, stack,
/// buildpack, config vars), which are everything that decided it.
fn reusable_copy(previous: Option<&crate::image::Metadata>, deps_key: Option<&str>) -> Option<crate::image::AppCopy> {
    let previous = previous?;
    let deps = previous.layers.iter().find(|layer| layer.name == "deps")?;
    (deps_key.is_some() && deps.key.as_deref() == deps_key).then(|| previous.app_copy.clone())?
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
        let parts = |a: &str, b: &str| vec![a.as_bytes().to_vec(), b.as_bytes().to_vec()];
        assert_eq!(key_of(&parts("ab", "c")), key_of(&parts("ab", "c")));
        assert_ne!(key_of(&parts("ab", "c")), key_of(&parts("a", "bc")), "parts are length-prefixed");
    }

    #[test]
    fn output_is_followed_up_to_the_line_that_ends_it_whatever_the_pieces() {
        let dir = std::env::temp_dir().join(format!("hoist-output-lines-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let texts = |path: &std::path::Path| -> Vec<String> {
            std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["text"].as_str().unwrap().to_string())
                .collect()
        };
        let end = "-----> hoist: assemble in pod-1 ended";
        let output = format!("first\nsecond, no line break{end}\nafter the end\n");
        // Every way of cutting the output into two pieces gives the same lines.
        for cut in 0..output.len() {
            let log = LiveLog::create(&dir.join(format!("cut-{cut}.log"))).unwrap();
            let mut lines = OutputLines::new(&log);
            let ended = lines.push_until(&output.as_bytes()[..cut], Some(end))
                || lines.push_until(&output.as_bytes()[cut..], Some(end));
            lines.finish();
            assert!(ended, "cut at {cut}");
            assert_eq!(texts(log.path()), [indent("first\n"), indent("second, no line break")], "cut at {cut}");
        }
        // Without the line, everything is output, and push says nothing ended.
        let log = LiveLog::create(&dir.join("no-end.log")).unwrap();
        let mut lines = OutputLines::new(&log);
        assert!(!lines.push_until(b"one\n-----> hoist: assemble in pod-2 ended\n", Some(end)));
        lines.finish();
        assert_eq!(texts(log.path()).len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_copy_of_the_running_image_holds_only_with_the_same_deps_key() {
        use crate::image::{AppCopy, Layer, Metadata};
        let layer = |name: &str, key: Option<&str>| Layer {
            name: name.into(),
            digest: "sha256:d".into(),
            diff_id: "sha256:i".into(),
            size: 1,
            key: key.map(str::to_string),
        };
        let copy =
            AppCopy { exclude: vec!["node_modules".into()], links: vec![("node_modules".into(), "/deps/x".into())] };
        let metadata = |layers: Vec<Layer>, app_copy: Option<AppCopy>| Metadata {
            stack: crate::image::Stack {
                name: "node".into(),
                suite: "bookworm".into(),
                version: None,
                run_image: "r".into(),
            },
            spec: crate::image::Spec {
                env: vec![],
                cmd: vec![],
                user: "1001".into(),
                workdir: "/app".into(),
                port: 5000,
                labels: Default::default(),
            },
            layers,
            app_copy,
        };
        let running =
            metadata(vec![layer("run", None), layer("deps", Some("k1")), layer("app", None)], Some(copy.clone()));
        assert_eq!(reusable_copy(Some(&running), Some("k1")), Some(copy.clone()));
        assert_eq!(reusable_copy(Some(&running), Some("k2")), None, "other lock files: assemble runs");
        assert_eq!(reusable_copy(Some(&running), None), None, "no key (the repo's own assemble): assemble runs");
        assert_eq!(reusable_copy(None, Some("k1")), None, "the first build");
        let said_nothing = metadata(vec![layer("deps", Some("k1")), layer("app", None)], None);
        assert_eq!(reusable_copy(Some(&said_nothing), Some("k1")), None, "assemble did not say /app was a copy");
        let no_deps = metadata(vec![layer("app", None)], Some(copy));
        assert_eq!(reusable_copy(Some(&no_deps), Some("k1")), None, "no deps layer to reuse");
    }
}
