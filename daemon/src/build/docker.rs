//! The docker build engine: builds on the host's dockerd. A Dockerfile is built with
//! `docker build`; a buildpack's `assemble` runs in a builder container of its stack with
//! `/app`, `/deps` and `$LAYERS_DIR` bind-mounted from the build's work dir, so the export
//! (on the host, in hoistd) reads what assemble wrote where it lies.
//!
//! With `build.warm_secs` (the default), an app's builder is not removed after its build:
//! it stays up that long, idle, and the app's next build runs assemble in it with `docker
//! exec` (after emptying what the last one left), so it skips the container's start, and
//! a build tool's daemon that the last assemble left running (the Maven buildpack's
//! server) is still warm. One per app; its outputs are folders of the app
//! (`<data>/builders/<app>`), which the export reads before the app's next build starts
//! (an app's builds run one at a time, through their rollout).
//!
//! Architecture invariant: everything here talks to dockerd; nothing here knows the
//! registry (the export stage does) or Kubernetes.

use super::{indent, Assembly, Engine, Error, Job, Limits, Result, Source, LAYERS_DIR};
use crate::app::AppName;
use crate::archive;
use crate::docker::{LABEL_APP, LABEL_INSTANCE, LABEL_ROLE};
use crate::logs::LiveLog;
use crate::stack::{StackImages, StackSpec, Stacks};
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

/// Builds on dockerd; cheap to clone.
#[derive(Clone)]
pub struct DockerEngine {
    docker: Docker,
    stacks: Stacks,
    instance: String,
    limits: Limits,
    warm: Option<Warm>,
}

/// A warm builder's preparation for a build, then assemble (`$0`) in the source folder.
const WARM_PREPARE: &str =
    "mkdir -p /workspace/source || exit 222; for dir in /app /deps /layers /workspace/source; do \
      find \"$dir\" -mindepth 1 -maxdepth 1 -exec rm -rf {} + || exit 222; done; \
    find /workspace -mindepth 1 -maxdepth 1 ! -name source ! -name next -exec rm -rf {} + || exit 222; \
    find /workspace/next/source -mindepth 1 -maxdepth 1 -exec mv -t /workspace/source {} + || exit 222; \
    rm -rf /workspace/next || exit 222; \
    cd /workspace/source && exec \"$0\"";

/// The exit code of [`WARM_PREPARE`] when the builder cannot be made ready.
const WARM_PREPARE_FAILED: i64 = 222;

/// The exit code of a process killed with SIGKILL (128 + 9).
const KILLED: i64 = 137;

/// Builders kept up between an app's builds: how long, where their outputs are, and
/// which build used each last (its reaper removes it only if no build came since).
#[derive(Clone)]
pub struct Warm {
    keep: Duration,
    root: std::path::PathBuf,
    uses: Arc<tokio::sync::Mutex<HashMap<AppName, u64>>>,
}

impl Warm {
    /// Builders kept `keep` after each build, their outputs in folders of `root`.
    pub fn new(keep: Duration, root: std::path::PathBuf) -> Warm {
        Warm { keep, root, uses: Arc::default() }
    }

    /// A build of `app` starts using its builder; the number of this use. Waits for a
    /// removal under way (see [`DockerEngine::remove_if_unused`]).
    async fn begin(&self, app: &AppName) -> u64 {
        let mut uses = self.uses.lock().await;
        let use_number = uses.entry(app.clone()).or_default();
        *use_number += 1;
        *use_number
    }

    async fn forget(&self, app: &AppName) {
        self.uses.lock().await.remove(app);
    }
}

impl DockerEngine {
    pub fn new(docker: Docker, stacks: Stacks, instance: String, limits: Limits, warm: Option<Warm>) -> DockerEngine {
        DockerEngine { docker, stacks, instance, limits, warm }
    }

    /// The builder an app keeps between builds (one per app).
    fn warm_container(&self, app: &AppName) -> String {
        format!("{}-builder-{}", self.instance, app)
    }

    /// The volume that holds an app's dependency caches across builds.
    fn cache_volume(&self, app: &AppName) -> String {
        format!("{}-cache-{}", self.instance, app)
    }

    /// The app's dependency cache volume, made with the instance's labels (a volume that
    /// a mount made would carry none, and cleanup by label would miss it).
    async fn ensure_cache_volume(&self, app: &AppName) -> Result<String> {
        let name = self.cache_volume(app);
        let labels = HashMap::from([
            (LABEL_INSTANCE.to_string(), self.instance.clone()),
            (LABEL_APP.to_string(), app.to_string()),
            (LABEL_ROLE.to_string(), "cache".to_string()),
        ]);
        let options = bollard::models::VolumeCreateRequest {
            name: Some(name.clone()),
            labels: Some(labels),
            ..Default::default()
        };
        self.docker.create_volume(options).await?;
        Ok(name)
    }

    fn container(&self, source: &Source) -> String {
        format!("{}-build-{}-{}", self.instance, source.app, source.build_id)
    }

    fn labels(&self, source: &Source) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_INSTANCE.to_string(), self.instance.clone()),
            (LABEL_APP.to_string(), source.app.to_string()),
            ("org.opencontainers.image.revision".to_string(), source.commit.clone()),
        ])
    }

    async fn remove_containers(&self, labels: Vec<String>) {
        let filters = HashMap::from([("label".to_string(), labels)]);
        let options =
            bollard::query_parameters::ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let containers = match self.docker.list_containers(Some(options)).await {
            Ok(containers) => containers,
            Err(error) => {
                tracing::warn!(%error, "cannot list builder containers");
                return;
            }
        };
        for id in containers.into_iter().filter_map(|c| c.id) {
            let remove = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
            match self.docker.remove_container(&id, Some(remove)).await {
                Ok(()) => tracing::info!(container = %id, "removed a builder container"),
                Err(error) => tracing::warn!(container = %id, %error, "cannot remove a builder container"),
            }
        }
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

    /// The builder's files, as a tar to upload at `/`: the source and the buildpack's
    /// scripts. /app and /deps, where assemble leaves its outputs, are in the stack,
    /// owned by the hoist user: the paths a build writes are the paths the app runs from.
    /// `warm`: for a builder kept between builds, whose assemble moves the source into
    /// place from `/workspace/next` (see [`WARM_PREPARE`]).
    fn builder_files(job: &Job<'_>, warm: bool) -> Result<std::path::PathBuf> {
        let files_path = job.source.work.path().join("builder.tar");
        let mut files = archive::Writer::create(&files_path, archive::APP_UID)?;
        let source_at = match warm {
            true => {
                files.dir("workspace/next/")?;
                "workspace/next/source/"
            }
            false => "workspace/source/",
        };
        files.dir(source_at)?;
        files.append_rebased(&job.source.tar, 0, source_at)?;
        files.set_uid(0);
        for (script, bytes) in &job.scripts {
            files.file(&format!("hoist/buildpack/bin/{script}"), 0o755, bytes)?;
        }
        files.finish()?.flush()?;
        Ok(files_path)
    }

    fn assemble_command(job: &Job<'_>) -> String {
        match job.s2i_assemble {
            true => "/workspace/source/.s2i/bin/assemble",
            false => "/hoist/buildpack/bin/assemble",
        }
        .to_string()
    }

    /// assemble's environment on this engine; `warm`: in a builder kept between builds.
    fn assemble_env(job: &Job<'_>, warm: bool) -> Vec<String> {
        let mut env = job.env.clone();
        env.push("SOURCE_DIR=/workspace/source".to_string());
        env.push("HOME=/workspace".to_string());
        // A buildpack may leave a daemon running for the next build only in a warm one.
        env.push(format!("HOIST_BUILDER={}", if warm { "warm" } else { "once" }));
        env
    }

    /// A builder container of the job's stack: the build limits, the app's cache volume
    /// at /cache and `outputs`, running `cmd`; `warm`: kept between builds (see [`Warm`]).
    async fn create_builder(
        &self,
        job: &Job<'_>,
        name: &str,
        outputs: &Outputs,
        cmd: Vec<String>,
        env: Vec<String>,
        warm: bool,
    ) -> Result<()> {
        let source = job.source;
        let mut labels = self.labels(source);
        labels.insert(LABEL_ROLE.to_string(), "builder".to_string());
        let cache_volume = self.ensure_cache_volume(&source.app).await?;
        let limits = &self.limits;
        let memory = (limits.memory_mb * 1024 * 1024) as i64;
        let body = ContainerCreateBody {
            image: Some(job.stack.build.clone()),
            cmd: Some(cmd),
            user: Some(archive::APP_UID.to_string()),
            // dockerd makes a missing working folder, owned by root: the source's is made
            // by the upload, or (a warm builder) by the hoist user.
            working_dir: Some(if warm { "/workspace" } else { "/workspace/source" }.to_string()),
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
                // A warm builder's first process only waits: an init reaps the orphans of
                // the daemons its builds leave running.
                init: Some(warm),
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
        let _ = self.docker.remove_container(name, Some(remove)).await;
        let create = CreateContainerOptionsBuilder::default().name(name).build();
        self.docker.create_container(Some(create), body).await?;
        Ok(())
    }

    async fn upload(&self, container: &str, files: &std::path::Path) -> Result<()> {
        let upload = UploadToContainerOptionsBuilder::default().path("/").build();
        self.docker
            .upload_to_container(container, Some(upload), bollard::body_try_stream(file_stream(files).await?))
            .await?;
        Ok(())
    }

    /// Runs assemble in a builder of its own, `container`; its outputs land in `outputs`.
    async fn run_assemble(&self, job: &Job<'_>, container: &str, outputs: &Outputs, log: &LiveLog) -> Result<()> {
        let files = Self::builder_files(job, false)?;
        let env = Self::assemble_env(job, false);
        self.create_builder(job, container, outputs, vec![Self::assemble_command(job)], env, false).await?;
        self.upload(container, &files).await?;
        self.docker.start_container(container, None).await?;
        log.line(format!("-----> Running assemble of buildpack {}", job.buildpack));

        let follow = LogsOptionsBuilder::default().follow(true).stdout(true).stderr(true).build();
        let mut output = self.docker.logs(container, Some(follow));
        let mut lines = super::OutputLines::new(log);
        while let Some(chunk) = output.next().await {
            lines.push(&chunk?.into_bytes());
        }
        lines.finish();
        let code = self.exit_code(container).await?;
        if self.oom_killed(container).await {
            return Err(Error::OutOfMemory { limit_mb: self.limits.memory_mb });
        }
        if code != 0 {
            return Err(Error::AssembleFailed { buildpack: job.buildpack.to_string(), code });
        }
        Ok(())
    }

    /// Runs assemble in the app's warm builder, started if it is not up on the stack's
    /// current build image; its outputs land in the app's folders of `warm`.
    async fn run_warm(&self, job: &Job<'_>, warm: &Warm, outputs: &Outputs, log: &LiveLog) -> Result<()> {
        let container = self.warm_container(&job.source.app);
        let files = Self::builder_files(job, true)?;
        let image = self.docker.inspect_image(&job.stack.build).await?.id;
        let running = self.docker.inspect_container(&container, None).await.ok().filter(|inspect| {
            inspect.state.as_ref().and_then(|state| state.running).unwrap_or(false) && inspect.image == image
        });
        if running.is_some() {
            log.line(format!(
                "-----> Builder kept from the app's last build (up to {} s between builds)",
                warm.keep.as_secs()
            ));
        } else {
            // No build's environment: each build gives its own to its exec.
            let wait = vec!["sleep".to_string(), "infinity".to_string()];
            self.create_builder(job, &container, outputs, wait, vec![], true).await?;
            self.docker.start_container(&container, None).await?;
        }
        self.upload(&container, &files).await?;
        log.line(format!("-----> Running assemble of buildpack {}", job.buildpack));
        // One exec: what the last build left goes (its outputs and its home), the source
        // moves into place, and assemble runs. The source folder itself stays (emptied), so
        // a daemon started in it keeps its working folder.
        let command = vec!["sh".to_string(), "-c".to_string(), WARM_PREPARE.to_string(), Self::assemble_command(job)];
        let code = self.exec(&container, command, Self::assemble_env(job, true), "/", log).await?;
        if code == WARM_PREPARE_FAILED {
            return Err(Error::WarmBuilder { code });
        }
        if code != 0 {
            let out_of_memory = self.oom_killed(&container).await;
            // The container lives on after the kernel killed one of its processes: 137
            // (SIGKILL) is that kill, as nothing else of hoist's kills a process in it.
            if out_of_memory || code == KILLED {
                return Err(Error::OutOfMemory { limit_mb: self.limits.memory_mb });
            }
            return Err(Error::AssembleFailed { buildpack: job.buildpack.to_string(), code });
        }
        Ok(())
    }

    /// Whether dockerd saw the kernel kill a process of `container` for its memory limit.
    async fn oom_killed(&self, container: &str) -> bool {
        let inspect = self.docker.inspect_container(container, None).await.ok();
        inspect.and_then(|inspect| inspect.state).and_then(|state| state.oom_killed).unwrap_or(false)
    }

    /// Runs `cmd` in `container` as the hoist user, its output into `log`.
    async fn exec(&self, container: &str, cmd: Vec<String>, env: Vec<String>, dir: &str, log: &LiveLog) -> Result<i64> {
        let options = bollard::exec::CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd),
            env: Some(env),
            user: Some(archive::APP_UID.to_string()),
            working_dir: Some(dir.to_string()),
            ..Default::default()
        };
        let exec = self.docker.create_exec(container, options).await?;
        if let bollard::exec::StartExecResults::Attached { mut output, .. } =
            self.docker.start_exec(&exec.id, None).await?
        {
            let mut lines = super::OutputLines::new(log);
            while let Some(chunk) = output.next().await {
                lines.push(&chunk?.into_bytes());
            }
            lines.finish();
        }
        Ok(self.docker.inspect_exec(&exec.id).await?.exit_code.unwrap_or(-1))
    }

    /// Removes the app's warm builder if use `number` was its last; a build that starts
    /// meanwhile waits, then makes another.
    async fn remove_if_unused(&self, app: &AppName, number: u64) {
        let Some(warm) = &self.warm else { return };
        let mut uses = warm.uses.lock().await;
        if uses.get(app) == Some(&number) {
            uses.remove(app);
            self.remove_warm_container(app).await;
            tracing::info!(%app, "removed the app's builder: no build came for {:?}", warm.keep);
        }
    }

    /// Removes the app's warm builder, if it has one.
    async fn remove_warm(&self, app: &AppName) {
        if let Some(warm) = &self.warm {
            warm.forget(app).await;
            self.remove_warm_container(app).await;
        }
    }

    /// The app's warm builder container gone, with its volumes.
    async fn remove_warm_container(&self, app: &AppName) {
        let remove = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        let _ = self.docker.remove_container(&self.warm_container(app), Some(remove)).await;
    }
}

#[async_trait::async_trait]
impl Engine for DockerEngine {
    fn describe(&self) -> String {
        "dockerd".to_string()
    }

    async fn stack(&self, spec: &StackSpec, log: &LiveLog) -> Result<(StackImages, String)> {
        let images = self.stacks.ensure(spec, log).await?;
        let id = self.docker.inspect_image(&images.build).await?.id.unwrap_or_default();
        Ok((images, id))
    }

    async fn dockerfile(&self, source: &Source, reference: &str, log: &LiveLog) -> Result<()> {
        let limits = &self.limits;
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
            self.docker.build_image(options, None, Some(bollard::body_try_stream(file_stream(&source.tar).await?)));
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

    async fn assemble(&self, job: &Job<'_>, log: &LiveLog) -> Result<Assembly> {
        if let Some(warm) = &self.warm {
            let app = &job.source.app;
            let outputs = Outputs::create(&warm.root.join(app.as_str()))?;
            let number = warm.begin(app).await;
            match self.run_warm(job, warm, &outputs, log).await {
                // A build that failed on its own (a compile error) leaves a builder as
                // good as a success does: the next one empties it first.
                result @ (Ok(()) | Err(Error::AssembleFailed { .. })) => {
                    // Removed when no build of the app came for `keep`.
                    let (engine, app, keep) = (self.clone(), app.clone(), warm.keep);
                    tokio::spawn(async move {
                        tokio::time::sleep(keep).await;
                        engine.remove_if_unused(&app, number).await;
                    });
                    result?;
                    return Ok(Assembly::Outputs { app: outputs.app, deps: outputs.deps, layers: outputs.layers });
                }
                Err(error) => {
                    // Out of memory, or dockerd failed: nothing is left for the next build.
                    self.remove_warm(app).await;
                    return Err(error);
                }
            }
        }
        let container = self.container(job.source);
        let outputs = Outputs::create(job.source.work.path())?;
        let result = self.run_assemble(job, &container, &outputs, log).await;
        let remove = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        if let Err(error) = self.docker.remove_container(&container, Some(remove)).await {
            tracing::warn!(%container, %error, "cannot remove builder container");
        }
        result?;
        Ok(Assembly::Outputs { app: outputs.app, deps: outputs.deps, layers: outputs.layers })
    }

    async fn cancel(&self, source: &Source) {
        // The builder container outlives the dropped future; a docker build is
        // cancelled by dockerd when its connection closes.
        let remove = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        let _ = self.docker.remove_container(&self.container(source), Some(remove)).await;
        self.remove_warm(&source.app).await;
    }

    async fn stop_builds(&self, app: &AppName) {
        if let Some(warm) = &self.warm {
            warm.forget(app).await;
        }
        self.remove_containers(vec![
            format!("{LABEL_INSTANCE}={}", self.instance),
            format!("{LABEL_APP}={app}"),
            format!("{LABEL_ROLE}=builder"),
        ])
        .await;
    }

    async fn remove_cache(&self, app: &AppName) {
        // What the app's last build left in its warm builder's folders, too.
        if let Some(warm) = &self.warm {
            let _ = tokio::fs::remove_dir_all(warm.root.join(app.as_str())).await;
        }
        let volume = self.cache_volume(app);
        match self.docker.remove_volume(&volume, None::<bollard::query_parameters::RemoveVolumeOptions>).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(error) => tracing::warn!(%volume, %error, "cannot remove the build cache"),
        }
    }

    async fn recover(&self) {
        self.remove_containers(vec![format!("{LABEL_INSTANCE}={}", self.instance), format!("{LABEL_ROLE}=builder")])
            .await;
        // The warm builders' outputs: their builders are gone.
        if let Some(warm) = &self.warm {
            let _ = std::fs::remove_dir_all(&warm.root);
        }
    }
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

/// A file as a stream of chunks for a request body, read as it is sent.
async fn file_stream(path: &std::path::Path) -> std::io::Result<tokio_util::io::ReaderStream<tokio::fs::File>> {
    Ok(tokio_util::io::ReaderStream::new(tokio::fs::File::open(path).await?))
}

/// `memory_mb` as the byte count Docker's build API takes (an i32).
fn build_memory_bytes(memory_mb: u64) -> i32 {
    i32::try_from(memory_mb.saturating_mul(1024 * 1024)).unwrap_or(i32::MAX)
}

/// Lines of the classic builder's output that say nothing to a user.
fn is_docker_build_noise(line: &str) -> bool {
    let line = line.trim();
    line.is_empty()
        || line.starts_with("---> ")
        || line.starts_with("Removing intermediate container")
        || line.starts_with("Successfully built")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warm_builder_empties_the_folders_assemble_writes() {
        for dir in ["/app", "/deps", LAYERS_DIR, "/workspace/source"] {
            assert!(WARM_PREPARE.contains(&format!("{dir} ")), "{dir}");
        }
    }

    #[test]
    fn docker_build_noise() {
        assert!(is_docker_build_noise(" ---> Running in 61927d140c7a"));
        assert!(!is_docker_build_noise("Step 2/11 : COPY app /app"));
        assert_eq!(build_memory_bytes(1), 1024 * 1024);
        assert_eq!(build_memory_bytes(1 << 40), i32::MAX);
    }
}
