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
use crate::buildpack::{self, Buildpack, Detection};
use crate::docker::{LABEL_APP, LABEL_INSTANCE, LABEL_ROLE};
use crate::logs::LiveLog;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use tracing::instrument;

/// What can go wrong in a build. Each message is shown to the pushing user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Detect(#[from] buildpack::Error),
    #[error("stack image {image} is missing from dockerd; run tests/env/up to build the stacks")]
    StackMissing { image: String },
    #[error("assemble of buildpack {buildpack:?} failed with exit code {code}; see its output above")]
    AssembleFailed { buildpack: String, code: i64 },
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

/// The source of one commit, ready to build.
#[derive(Debug, Clone)]
pub struct Source {
    pub app: AppName,
    pub build_id: i64,
    pub commit: String,
    /// A tar of the commit's tree, paths relative to its root, deterministic metadata.
    pub tar: std::sync::Arc<Vec<u8>>,
    /// Every file path in the tree, for detection.
    pub files: Vec<String>,
}

/// An image the build left in dockerd.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// `repository:tag` as known to dockerd.
    pub reference: String,
    pub buildpack: String,
}

/// Settings of the build stage.
#[derive(Debug, Clone)]
pub struct Settings {
    pub instance: String,
    pub buildpacks_dir: PathBuf,
    pub timeout: Duration,
    /// `PORT` an app listens on, baked into its image.
    pub app_port: u16,
}

/// Runs builds against dockerd.
#[derive(Clone)]
pub struct Builder {
    docker: Docker,
    settings: Settings,
}

impl Builder {
    pub fn new(docker: Docker, settings: Settings) -> Builder {
        Builder { docker, settings }
    }

    /// Builds `source` into the local image `reference`, writing progress to `log`.
    #[instrument(skip_all, fields(app = %source.app, build = source.build_id))]
    pub async fn build(&self, source: &Source, reference: &str, log: &LiveLog) -> Result<BuiltImage> {
        let detection = buildpack::detect(&source.files)?;
        log.line(format!(
            "-----> Detected {} app ({}): buildpack {}",
            detection.language, detection.marker, detection.buildpack
        ));
        let work = async {
            if detection.buildpack == buildpack::DOCKERFILE {
                self.docker_build(source, source.tar.as_ref().clone(), reference, log).await
            } else {
                let buildpack = buildpack::load(&self.settings.buildpacks_dir, &detection)?;
                self.buildpack_build(source, &detection, &buildpack, reference, log).await
            }
        };
        match tokio::time::timeout(self.settings.timeout, work).await {
            Ok(Ok(())) => Ok(BuiltImage { reference: reference.to_string(), buildpack: detection.buildpack }),
            Ok(Err(e)) => Err(e),
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

    /// `docker build` of `context`, its output streamed to `log`.
    async fn docker_build(&self, source: &Source, context: Vec<u8>, reference: &str, log: &LiveLog) -> Result<()> {
        let options = BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(reference)
            .rm(true)
            .forcerm(true)
            .labels(&self.labels(source))
            .build();
        let mut output = self.docker.build_image(options, None, Some(bollard::body_full(context.into())));
        while let Some(item) = output.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = info.stream {
                        for line in text.lines().filter(|line| !is_docker_build_noise(line)) {
                            log.line(indent(line));
                        }
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    log.line(indent(&error));
                    return Err(Error::DockerBuild(error.trim().to_string()));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn ensure_image(&self, image: &str) -> Result<()> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
                Err(Error::StackMissing { image: image.to_string() })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Runs the buildpack's assemble in a builder container, then builds the run image.
    async fn buildpack_build(
        &self,
        source: &Source,
        detection: &Detection,
        buildpack: &Buildpack,
        reference: &str,
        log: &LiveLog,
    ) -> Result<()> {
        self.ensure_image(&buildpack.build_image()).await?;
        self.ensure_image(&buildpack.run_image()).await?;
        let container = self.builder_container(source);
        let result = self.assemble(source, detection, buildpack, &container, log).await;
        let outputs = match result {
            Ok(()) => self.collect_outputs(&container).await,
            Err(e) => Err(e),
        };
        let remove = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        if let Err(error) = self.docker.remove_container(&container, Some(remove)).await {
            tracing::warn!(%container, %error, "cannot remove builder container");
        }
        let (app_tar, deps_tar) = outputs?;
        let run_script = if detection.s2i_run {
            archive::read_file(&source.tar, ".s2i/bin/run")?.unwrap_or_default()
        } else {
            std::fs::read(buildpack.dir.join("bin/run"))?
        };
        let procfile = archive::read_file(&source.tar, "Procfile")?
            .and_then(|p| buildpack::procfile_web_command(&String::from_utf8_lossy(&p)));

        log.line("-----> Assembling the app image");
        let mut context = archive::Writer::new(archive::APP_UID);
        let deps_files = context.append_rebased(&deps_tar, 1, "deps/")?;
        let app_files = context.append_rebased(&app_tar, 1, "app/")?;
        context.file("run", 0o755, &run_script)?;
        let dockerfile = run_dockerfile(&RunImage {
            from: &buildpack.run_image(),
            has_deps: deps_files > 0,
            has_app: app_files > 0,
            port: self.settings.app_port,
            web_command: procfile.as_deref(),
        });
        context.file("Dockerfile", 0o644, dockerfile.as_bytes())?;
        self.docker_build(source, context.finish()?, reference, log).await
    }

    async fn assemble(
        &self,
        source: &Source,
        detection: &Detection,
        buildpack: &Buildpack,
        container: &str,
        log: &LiveLog,
    ) -> Result<()> {
        // The builder's files: source, empty outputs, the buildpack's scripts.
        let mut files = archive::Writer::new(archive::APP_UID);
        files.dir("workspace/source/")?;
        files.append_rebased(&source.tar, 0, "workspace/source/")?;
        files.dir("workspace/app/")?;
        files.dir("workspace/deps/")?;
        let mut scripts = archive::Writer::new(0);
        for script in ["assemble", "run"] {
            scripts.file(&format!("bin/{script}"), 0o755, &std::fs::read(buildpack.dir.join("bin").join(script))?)?;
        }
        files.append_rebased(&scripts.finish()?, 0, "hoist/buildpack/")?;
        let assemble = if detection.s2i_assemble {
            log.line("-----> Using .s2i/bin/assemble from the repo");
            "/workspace/source/.s2i/bin/assemble"
        } else {
            "/hoist/buildpack/bin/assemble"
        };

        let mut labels = self.labels(source);
        labels.insert(LABEL_ROLE.to_string(), "builder".to_string());
        let cache_volume = format!("{}-cache-{}", self.settings.instance, source.app);
        let body = ContainerCreateBody {
            image: Some(buildpack.build_image()),
            cmd: Some(vec![assemble.to_string()]),
            user: Some(archive::APP_UID.to_string()),
            working_dir: Some("/workspace/source".to_string()),
            env: Some(vec![
                format!("HOIST_APP={}", source.app),
                format!("HOIST_COMMIT={}", source.commit),
                "SOURCE_DIR=/workspace/source".to_string(),
                "APP_DIR=/workspace/app".to_string(),
                "DEPS_DIR=/workspace/deps".to_string(),
                "CACHE_DIR=/cache".to_string(),
                "HOME=/workspace".to_string(),
            ]),
            labels: Some(labels),
            host_config: Some(HostConfig {
                mounts: Some(vec![Mount {
                    target: Some("/cache".to_string()),
                    source: Some(cache_volume),
                    typ: Some(MountType::VOLUME),
                    ..Default::default()
                }]),
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
        self.docker.upload_to_container(container, Some(upload), bollard::body_full(files.finish()?.into())).await?;
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
                log.line(indent(&line));
            }
        }
        if !partial.is_empty() {
            log.line(indent(&partial));
        }
        let code = self.exit_code(container).await?;
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

    /// The `app/` and `deps/` folders assemble left, as tars rooted at `app/` and `deps/`.
    async fn collect_outputs(&self, container: &str) -> Result<(Vec<u8>, Vec<u8>)> {
        let download = |path: &str| {
            let options = DownloadFromContainerOptionsBuilder::default().path(path).build();
            self.docker.download_from_container(container, Some(options)).map_ok(|bytes| bytes.to_vec()).try_concat()
        };
        let app = download("/workspace/app").await?;
        let deps = download("/workspace/deps").await?;
        Ok((app, deps))
    }
}

/// What goes into an app's run image.
struct RunImage<'a> {
    from: &'a str,
    has_deps: bool,
    has_app: bool,
    port: u16,
    web_command: Option<&'a str>,
}

/// The Dockerfile of an app's run image. Dependencies come first, each in its own
/// layer, so a change of app code leaves the dependency layer as it was.
fn run_dockerfile(image: &RunImage<'_>) -> String {
    let mut lines = vec![format!("FROM {}", image.from)];
    if image.has_deps {
        lines.push("COPY --chown=1001:1001 deps /deps".to_string());
    }
    if image.has_app {
        lines.push("COPY --chown=1001:1001 app /app".to_string());
    }
    lines.push("COPY run /hoist/run".to_string());
    lines.push("USER 1001".to_string());
    lines.push("WORKDIR /app".to_string());
    lines.push(format!("ENV PORT={} HOME=/app", image.port));
    lines.push(format!("EXPOSE {}", image.port));
    match image.web_command {
        Some(command) => lines.push(format!(
            "CMD [\"/bin/sh\", \"-c\", {}]",
            serde_json::to_string(&format!("exec {command}")).expect("a string serialises")
        )),
        None => lines.push("CMD [\"/hoist/run\"]".to_string()),
    }
    lines.join("\n") + "\n"
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
    fn run_image_puts_deps_before_app() {
        let dockerfile = run_dockerfile(&RunImage {
            from: "hoist/stack-base:run",
            has_deps: true,
            has_app: true,
            port: 5000,
            web_command: Some("./serve \"$PORT\""),
        });
        let deps = dockerfile.find("deps /deps").unwrap();
        let app = dockerfile.find("app /app").unwrap();
        assert!(deps < app, "{dockerfile}");
        assert!(dockerfile.contains(r#"CMD ["/bin/sh", "-c", "exec ./serve \"$PORT\""]"#), "{dockerfile}");
        assert!(is_docker_build_noise(" ---> Running in 61927d140c7a"));
        assert!(!is_docker_build_noise("Step 2/11 : COPY app /app"));
        let plain =
            run_dockerfile(&RunImage { from: "x", has_deps: false, has_app: true, port: 5000, web_command: None });
        assert!(!plain.contains("deps"), "{plain}");
        assert!(plain.ends_with("CMD [\"/hoist/run\"]\n"), "{plain}");
    }
}
