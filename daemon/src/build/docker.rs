//! The docker build engine: builds on the host's dockerd. A Dockerfile is built with
//! `docker build`; a buildpack's `assemble` runs in a builder container of its stack with
//! `/app`, `/deps` and `$LAYERS_DIR` bind-mounted from the build's work dir, so the export
//! (on the host, in hoistd) reads what assemble wrote where it lies.
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

/// Builds on dockerd; cheap to clone.
#[derive(Clone)]
pub struct DockerEngine {
    docker: Docker,
    stacks: Stacks,
    instance: String,
    limits: Limits,
}

impl DockerEngine {
    pub fn new(docker: Docker, stacks: Stacks, instance: String, limits: Limits) -> DockerEngine {
        DockerEngine { docker, stacks, instance, limits }
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

    /// Runs assemble in `container`; its outputs land in `outputs`.
    async fn run_assemble(&self, job: &Job<'_>, container: &str, outputs: &Outputs, log: &LiveLog) -> Result<()> {
        let source = job.source;
        // The builder's files: the source and the buildpack's scripts. /app and /deps,
        // where assemble leaves its outputs, are in the stack, owned by the hoist user:
        // the paths a build writes are the paths the app runs from.
        let files_path = source.work.path().join("builder.tar");
        let mut files = archive::Writer::create(&files_path, archive::APP_UID)?;
        files.dir("workspace/source/")?;
        files.append_rebased(&source.tar, 0, "workspace/source/")?;
        files.set_uid(0);
        for (script, bytes) in &job.scripts {
            files.file(&format!("hoist/buildpack/bin/{script}"), 0o755, bytes)?;
        }
        files.finish()?.flush()?;
        let assemble = match job.s2i_assemble {
            true => "/workspace/source/.s2i/bin/assemble",
            false => "/hoist/buildpack/bin/assemble",
        };
        let mut env = job.env.clone();
        env.push("SOURCE_DIR=/workspace/source".to_string());
        env.push("HOME=/workspace".to_string());

        let mut labels = self.labels(source);
        labels.insert(LABEL_ROLE.to_string(), "builder".to_string());
        let cache_volume = self.ensure_cache_volume(&source.app).await?;
        let limits = &self.limits;
        let memory = (limits.memory_mb * 1024 * 1024) as i64;
        let body = ContainerCreateBody {
            image: Some(job.stack.build.clone()),
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
        log.line(format!("-----> Running assemble of buildpack {}", job.buildpack));

        let follow = LogsOptionsBuilder::default().follow(true).stdout(true).stderr(true).build();
        let mut output = self.docker.logs(container, Some(follow));
        let mut lines = super::OutputLines::new(log);
        while let Some(chunk) = output.next().await {
            lines.push(&chunk?.into_bytes());
        }
        lines.finish();
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
            return Err(Error::AssembleFailed { buildpack: job.buildpack.to_string(), code });
        }
        Ok(())
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
    }

    async fn stop_builds(&self, app: &AppName) {
        self.remove_containers(vec![
            format!("{LABEL_INSTANCE}={}", self.instance),
            format!("{LABEL_APP}={app}"),
            format!("{LABEL_ROLE}=builder"),
        ])
        .await;
    }

    async fn remove_cache(&self, app: &AppName) {
        let volume = self.cache_volume(app);
        match self.docker.remove_volume(&volume, None::<bollard::query_parameters::RemoveVolumeOptions>).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(error) => tracing::warn!(%volume, %error, "cannot remove the build cache"),
        }
    }

    async fn recover(&self) {
        self.remove_containers(vec![format!("{LABEL_INSTANCE}={}", self.instance), format!("{LABEL_ROLE}=builder")])
            .await;
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
    fn docker_build_noise() {
        assert!(is_docker_build_noise(" ---> Running in 61927d140c7a"));
        assert!(!is_docker_build_noise("Step 2/11 : COPY app /app"));
        assert_eq!(build_memory_bytes(1), 1024 * 1024);
        assert_eq!(build_memory_bytes(1 << 40), i32::MAX);
    }
}
