//! Stacks: the builder and run images buildpacks build in and apps run on. hoistd makes
//! them itself from `buildpacks/stacks/`, the first time a build needs one, and keeps them.
//!
//! Three levels, each `FROM` the one before:
//!
//! ```text
//!  debian:bookworm-slim     made on the host with debootstrap (tests/env/up, deploy/run-hoistd):
//!                           nothing can be pulled here, so it is the root everything starts from
//!  hoist/debian:<suite>     another Debian suite (trixie, …): debootstrap --foreign inside a build
//!                           FROM the bookworm image, second stage in the new root (suite.Dockerfile;
//!                           testing.Dockerfile for the suites in TESTING_SUITES)
//!  hoist/os:<suite>         + ca-certificates, the extra CA certificates hoistd was given, the
//!                           `hoist` user (1001), /app /deps /workspace (os.Dockerfile)
//!  hoist/stack-<name>:[<version>-]build|run
//!                           + the toolchain (build) or the runtime (run): <name>/{build,run}.Dockerfile,
//!                           with build args OS, SUITE and VERSION
//! ```
//!
//! Every image carries a label with a hash of what made it: its Dockerfile, its build
//! args, its parent's image id and, for `os`, the certificates. An image whose label
//! differs is built again, so a changed Dockerfile, certificate or parent never leaves a
//! stale stack behind, and an unchanged one is never built twice. Two builds that need
//! the same image wait for one another instead of building it twice.
//!
//! Architecture invariant: the only module that builds stack images; it knows Docker
//! and the stacks folder, never apps, releases or registries.

use crate::logs::LiveLog;
use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Mutex;

/// The image every suite starts from, made on the host with debootstrap.
pub const BOOTSTRAP_IMAGE: &str = "debian:bookworm-slim";
/// The suite [`BOOTSTRAP_IMAGE`] is.
pub const BOOTSTRAP_SUITE: &str = "bookworm";
/// Debian testing and unstable: made by `testing.Dockerfile`, since bookworm's
/// debootstrap does not know their names and their Release files outlive Valid-Until.
pub const TESTING_SUITES: &[&str] = &["forky", "sid"];

/// The Dockerfile (in `buildpacks/stacks/`) that makes the root image of `suite`.
pub fn suite_dockerfile(suite: &str) -> &'static str {
    match TESTING_SUITES.contains(&suite) {
        true => "testing.Dockerfile",
        false => "suite.Dockerfile",
    }
}
const LABEL_KEY: &str = "org.hoist.stack-key";

/// What can go wrong making a stack.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the base image {BOOTSTRAP_IMAGE} is missing from dockerd; make it with `bash tests/env/up` \
         (deploy/run-hoistd runs it), which builds it with debootstrap"
    )]
    BootstrapMissing,
    #[error("stack {stack:?} has no {file} in {dir}")]
    Missing { stack: String, file: String, dir: PathBuf },
    #[error("building stack image {image} failed: {message}; its output is above")]
    Build { image: String, message: String },
    #[error("dockerd: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One stack to make: a folder of `buildpacks/stacks/`, on a suite, at a version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct StackSpec {
    pub name: String,
    pub suite: String,
    /// The runtime version, when the stack has one (`22.12.0`, `17`).
    pub version: Option<String>,
}

/// The two images of a made stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackImages {
    pub build: String,
    pub run: String,
}

impl StackSpec {
    /// `<prefix>/stack-node:22.12.0-build`, or `<prefix>/stack-base:build` without a
    /// version (the prefix is `hoist` unless `build.stack_images` says otherwise).
    pub fn image(&self, prefix: &str, kind: &str) -> String {
        format!("{prefix}/stack-{}:{}", self.name, self.tag(kind))
    }

    /// The tag of its `kind` image, in dockerd and in a registry alike: `22.12.0-build`,
    /// or `build` without a version.
    pub fn tag(&self, kind: &str) -> String {
        match &self.version {
            Some(version) => format!("{version}-{kind}"),
            None => kind.to_string(),
        }
    }

    /// The repository of the stack's images in a registry: `stacks/<name>` (the build
    /// image for build pods, the run image that apps' images are composed on).
    pub fn repository(&self) -> String {
        format!("stacks/{}", self.name)
    }

    /// For people: `node 22.12.0 (bookworm)`.
    pub fn describe(&self) -> String {
        match &self.version {
            Some(version) => format!("{} {version} ({})", self.name, self.suite),
            None => format!("{} ({})", self.name, self.suite),
        }
    }
}

/// Extra CA certificates every stack trusts: (file name, PEM bytes).
#[derive(Debug, Clone, Default)]
pub struct CaCertificates(pub Vec<(String, Vec<u8>)>);

impl CaCertificates {
    /// Reads `paths`; each may be a file or a folder whose `*.crt` files are taken.
    /// Missing paths are skipped: the default is a folder many machines do not have.
    pub fn read(paths: &[PathBuf]) -> Result<CaCertificates> {
        let mut certificates = Vec::new();
        for path in paths {
            let files = if path.is_dir() {
                let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                    .map_err(|source| Error::Io { path: path.clone(), source })?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "crt"))
                    .collect();
                files.sort();
                files
            } else if path.is_file() {
                vec![path.clone()]
            } else {
                continue;
            };
            for file in files {
                let bytes = std::fs::read(&file).map_err(|source| Error::Io { path: file.clone(), source })?;
                let name = format!("{}-{}", certificates.len(), file.file_name().unwrap_or_default().to_string_lossy());
                let name = if name.ends_with(".crt") { name } else { format!("{name}.crt") };
                certificates.push((name, bytes));
            }
        }
        Ok(CaCertificates(certificates))
    }
}

/// Makes stacks on demand; cheap to clone.
#[derive(Clone)]
pub struct Stacks {
    docker: Docker,
    dir: PathBuf,
    /// The repository prefix of the images (`build.stack_images`).
    prefix: String,
    certificates: Arc<CaCertificates>,
    /// One lock per image tag, so two builds never make the same image at once.
    locks: Arc<std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>>,
}

impl Stacks {
    /// `dir` is the `stacks` folder of the buildpacks.
    pub fn new(docker: Docker, dir: PathBuf, prefix: String, certificates: CaCertificates) -> Stacks {
        Stacks { docker, dir, prefix, certificates: Arc::new(certificates), locks: Default::default() }
    }

    /// Makes (or finds) both images of `spec`, writing progress to `log`.
    pub async fn ensure(&self, spec: &StackSpec, log: &LiveLog) -> Result<StackImages> {
        self.make(spec, false, log).await
    }

    /// Makes both images of `spec` again from today's Debian packages (the OS image too,
    /// upgraded), whatever is there; builds and `hoist rebase` use them from then on.
    pub async fn refresh(&self, spec: &StackSpec, log: &LiveLog) -> Result<StackImages> {
        self.make(spec, true, log).await
    }

    async fn make(&self, spec: &StackSpec, fresh: bool, log: &LiveLog) -> Result<StackImages> {
        let os = self.ensure_os(&spec.suite, fresh, log).await?;
        let mut images: Vec<String> = Vec::new();
        for kind in ["build", "run"] {
            let dockerfile_path = self.dir.join(&spec.name).join(format!("{kind}.Dockerfile"));
            let dockerfile = std::fs::read(&dockerfile_path).map_err(|_| Error::Missing {
                stack: spec.name.clone(),
                file: format!("{kind}.Dockerfile"),
                dir: self.dir.join(&spec.name),
            })?;
            let mut args = vec![("OS".to_string(), os.clone()), ("SUITE".to_string(), spec.suite.clone())];
            if let Some(version) = &spec.version {
                args.push(("VERSION".to_string(), version.clone()));
            }
            // A run image may copy its runtime out of the build image just made.
            let mut parents = vec![os.clone()];
            if let Some(build) = images.first() {
                args.push(("BUILD".to_string(), build.clone()));
                parents.push(build.clone());
            }
            let image = spec.image(&self.prefix, kind);
            let what = format!("stack {} ({kind} image)", spec.describe());
            self.ensure_image(&image, &parents, &dockerfile, &[], &args, &what, fresh, log).await?;
            images.push(image);
        }
        let run = images.pop().expect("two images");
        let build = images.pop().expect("two images");
        Ok(StackImages { build, run })
    }

    /// `hoist/os:<suite>`, made when missing or stale.
    async fn ensure_os(&self, suite: &str, fresh: bool, log: &LiveLog) -> Result<String> {
        let parent = self.ensure_suite(suite, log).await?;
        let dockerfile = self.read_stack_file("os.Dockerfile")?;
        let mut files = vec![("ca-certificates/".to_string(), Vec::new())];
        for (name, bytes) in &self.certificates.0 {
            files.push((format!("ca-certificates/{name}"), bytes.clone()));
        }
        let image = format!("{}/os:{suite}", self.prefix);
        let args = [("FROM".to_string(), parent.clone())];
        let what = format!("the {suite} base with {} extra CA certificates", self.certificates.0.len());
        self.ensure_image(&image, std::slice::from_ref(&parent), &dockerfile, &files, &args, &what, fresh, log).await?;
        Ok(image)
    }

    /// The root image of `suite`.
    async fn ensure_suite(&self, suite: &str, log: &LiveLog) -> Result<String> {
        if self.docker.inspect_image(BOOTSTRAP_IMAGE).await.is_err() {
            return Err(Error::BootstrapMissing);
        }
        if suite == BOOTSTRAP_SUITE {
            return Ok(BOOTSTRAP_IMAGE.to_string());
        }
        let dockerfile = self.read_stack_file(suite_dockerfile(suite))?;
        let image = format!("{}/debian:{suite}", self.prefix);
        let args = [("SUITE".to_string(), suite.to_string())];
        let what = format!("Debian {suite} (debootstrap; about two minutes, once)");
        self.ensure_image(&image, &[BOOTSTRAP_IMAGE.to_string()], &dockerfile, &[], &args, &what, false, log).await?;
        Ok(image)
    }

    fn read_stack_file(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.dir.join(name);
        std::fs::read(&path).map_err(|source| Error::Io { path, source })
    }

    /// Builds `image` unless it exists with the same key (which covers the ids of the
    /// `parents`); `files` go into the context beside the Dockerfile (names ending in `/`
    /// are folders). `fresh`: built again without dockerd's cache, whatever is there.
    #[allow(clippy::too_many_arguments)]
    async fn ensure_image(
        &self,
        image: &str,
        parents: &[String],
        dockerfile: &[u8],
        files: &[(String, Vec<u8>)],
        args: &[(String, String)],
        what: &str,
        fresh: bool,
        log: &LiveLog,
    ) -> Result<()> {
        let lock = self.locks.lock().unwrap_or_else(|p| p.into_inner()).entry(image.to_string()).or_default().clone();
        let _one_at_a_time = lock.lock().await;
        let mut parent_ids = String::new();
        for parent in parents {
            parent_ids.push_str(&self.docker.inspect_image(parent).await?.id.unwrap_or_default());
        }
        let key = image_key(dockerfile, files, args, &parent_ids);
        let current = self.docker.inspect_image(image).await.ok().and_then(|i| i.config).and_then(|c| c.labels);
        if !fresh && current.as_ref().and_then(|labels| labels.get(LABEL_KEY)) == Some(&key) {
            return Ok(());
        }
        match (fresh, current.is_some()) {
            (true, _) => log.line(format!("-----> Refreshing {what}: {image} (today's packages)")),
            // After a refresh of the OS image it starts from, most often.
            (false, true) => log.line(format!(
                "-----> Preparing {what} again: {image} (what it is made from changed: its Dockerfile, its arguments or the image it starts from)"
            )),
            (false, false) => log.line(format!("-----> Preparing {what}: {image} (first use; kept for later builds)")),
        }
        let context =
            build_context(dockerfile, files).map_err(|source| Error::Io { path: self.dir.clone(), source })?;
        let build_args: HashMap<&str, &str> = args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        // Stacks are shared by every hoistd on this dockerd (keyed by what made them), so
        // they carry a role, not an instance: no instance's cleanup removes them.
        let labels = HashMap::from([(LABEL_KEY, key.as_str()), (crate::docker::LABEL_ROLE, "stack")]);
        let options = BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(image)
            .rm(true)
            .forcerm(true)
            .buildargs(&build_args)
            .labels(&labels)
            .nocache(fresh)
            .build();
        let mut output = self.docker.build_image(options, None, Some(bollard::body_full(context.into())));
        let mut recent: std::collections::VecDeque<String> = Default::default();
        let started = std::time::Instant::now();
        while let Some(item) = output.next().await {
            match item {
                Ok(info) => {
                    for line in info.stream.unwrap_or_default().lines().filter(|l| !l.trim().is_empty()) {
                        // Steps tell the progress; the rest is shown only if the build fails.
                        if line.starts_with("Step ") {
                            log.line(format!("       {line}"));
                        }
                        recent.push_back(line.to_string());
                        if recent.len() > 25 {
                            recent.pop_front();
                        }
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    for line in &recent {
                        log.line(format!("       | {line}"));
                    }
                    return Err(Error::Build { image: image.to_string(), message: error.trim().to_string() });
                }
                Err(e) => return Err(e.into()),
            }
        }
        log.line(format!("       {image} ready in {:.0} s", started.elapsed().as_secs_f64()));
        Ok(())
    }
}

/// The hash that says whether an image is what these inputs make.
fn image_key(dockerfile: &[u8], files: &[(String, Vec<u8>)], args: &[(String, String)], parent_id: &str) -> String {
    let mut hash = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    field(dockerfile);
    for (name, bytes) in files {
        field(name.as_bytes());
        field(bytes);
    }
    let mut args = args.to_vec();
    args.sort();
    for (name, value) in &args {
        field(name.as_bytes());
        field(value.as_bytes());
    }
    field(parent_id.as_bytes());
    hex::encode(&hash.finalize()[..12])
}

fn build_context(dockerfile: &[u8], files: &[(String, Vec<u8>)]) -> std::io::Result<Vec<u8>> {
    let mut tar = crate::archive::Writer::new(0);
    tar.file("Dockerfile", 0o644, dockerfile)?;
    for (name, bytes) in files {
        if name.ends_with('/') {
            tar.dir(name)?;
        } else {
            tar.file(name, 0o644, bytes)?;
        }
    }
    tar.finish()
}

/// The stacks folder of a buildpacks folder.
pub fn stacks_dir(buildpacks_dir: &Path) -> PathBuf {
    buildpacks_dir.join("stacks")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_and_keys() {
        let node = StackSpec { name: "node".into(), suite: "bookworm".into(), version: Some("22.12.0".into()) };
        assert_eq!(node.image("hoist", "build"), "hoist/stack-node:22.12.0-build");
        let base = StackSpec { name: "base".into(), suite: "bookworm".into(), version: None };
        assert_eq!(base.image("other", "run"), "other/stack-base:run");
        let args = [("A".to_string(), "1".to_string()), ("B".to_string(), "2".to_string())];
        let reversed = [args[1].clone(), args[0].clone()];
        assert_eq!(image_key(b"FROM x", &[], &args, "sha256:1"), image_key(b"FROM x", &[], &reversed, "sha256:1"));
        assert_ne!(image_key(b"FROM x", &[], &args, "sha256:1"), image_key(b"FROM x", &[], &args, "sha256:2"));
        let cert = [("ca/a.crt".to_string(), b"pem".to_vec())];
        assert_ne!(image_key(b"FROM x", &cert, &args, "p"), image_key(b"FROM x", &[], &args, "p"));
    }

    #[test]
    fn testing_and_unstable_have_their_own_root_dockerfile() {
        assert_eq!(suite_dockerfile("trixie"), "suite.Dockerfile");
        assert_eq!(suite_dockerfile("forky"), "testing.Dockerfile");
        assert_eq!(suite_dockerfile("sid"), "testing.Dockerfile");
        let dir = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"))
            .join("../buildpacks/stacks");
        for suite in ["trixie", "forky"] {
            assert!(dir.join(suite_dockerfile(suite)).is_file(), "{suite}");
        }
    }
}
