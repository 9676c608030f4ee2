//! The export stage: what a buildpack's `assemble` left becomes an image in the registry,
//! without `docker build` and without dockerd holding the image.
//!
//! ```text
//!  assembled (app/, deps/, layers/*, run script, spec)
//!    ─▶ the stack's run image in the registry (docker push once per dockerd image id)
//!    ─▶ layers: run script, deps (reused by key), buildpack layers, app — each a
//!       reproducible gzip tar, written once to the work dir, hashed on the way
//!    ─▶ blobs the app's repository lacks: run layers mounted from the stack's repository,
//!       the others uploaded ─▶ config ─▶ manifest (tag build-N) ─▶ digest
//! ```
//!
//! A layer is reused only if the key of what made it matches the previous image's and
//! its blob is in the registry: the registry keeps a blob only once all of it arrived and
//! matched its digest, so a hoistd killed during an export leaves nothing a later build
//! would reuse. `rebase` swaps an image's run layers for the stack's current run image
//! by writing a new config and manifest over the same app layers: no build.
//!
//! Architecture invariant: the registry is reached through `registry` only; the image's
//! bytes are made by `image` only.

use crate::app::AppName;
use crate::build::{self, Assembled};
use crate::image::{self, Base, Layer, Metadata};
use crate::logs::LiveLog;
use crate::registry::{self, Registry};
use crate::stack::{self, StackSpec, Stacks};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// What can go wrong in an export or a rebase. Each message is shown to the user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Registry(#[from] registry::Error),
    #[error(transparent)]
    Image(#[from] image::Error),
    #[error(transparent)]
    Stack(#[from] stack::Error),
    #[error("cannot write the image's layers: {0}")]
    Io(#[from] std::io::Error),
    #[error("dockerd: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error(
        "{image} was not built by a buildpack of this hoistd (a Dockerfile made it, it was pushed to the registry, or \
         a hoistd from before rebase built it), so it has no run image to swap; push the app again to rebuild it \
         on its stack"
    )]
    NotRebasable { image: String },
    #[error("{image} is not in hoistd's registry ({registry}); only images hoist keeps can be rebased")]
    Elsewhere { image: String, registry: String },
    #[error("layer {layer} ({digest}) of {image} is gone from the registry; push the app again to rebuild it")]
    LayerGone { image: String, layer: String, digest: String },
    #[error("the export plan is not usable: {0}")]
    Plan(String),
    #[error(
        "the dependency layer of the running image ({digest}) left the registry during this build, so the copy of \
         the source has nothing to stand on; push again (the next build runs assemble)"
    )]
    DepsGone { digest: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The most bytes an image config may have (hoist's are a few KiB).
const CONFIG_MAX: usize = 4 * 1024 * 1024;

/// An exported image.
#[derive(Debug, Clone)]
pub struct Exported {
    pub digest: String,
}

/// A rebased image.
#[derive(Debug, Clone)]
pub struct Rebased {
    /// The new image's digest; `None`: it is on the current run image already.
    pub digest: Option<String>,
    /// `name (version)` of its stack.
    pub stack: String,
    /// The run image's digest it is on now.
    pub run_digest: String,
}

/// Writes images to the registry; cheap to clone.
#[derive(Clone)]
pub struct Exporter {
    registry: Registry,
    runs: RunImages,
    /// Run images in the registry, by the id of the dockerd image they were pushed from.
    run_images: Arc<tokio::sync::Mutex<HashMap<String, Base>>>,
}

/// Where the stacks' run images come from.
#[derive(Clone)]
pub enum RunImages {
    /// Made in dockerd by `stack`, pushed to the registry once per image id.
    Dockerd { docker: bollard::Docker, stacks: Stacks },
    /// In the registry already, as `stacks/<name>:<tag>` (`hoistd stacks prepare --push`
    /// put them there): where there is no dockerd, in a build pod or an in-cluster hoistd.
    Registry,
}

/// What an export needs besides the assembled folders: what the build stage decided.
/// A build pod gets it as JSON (`hoistd export`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// `<registry>/<app>`.
    pub repository: String,
    pub tag: String,
    /// The image the app runs now, whose layers with the same key are reused.
    pub previous: Option<String>,
    pub buildpack: String,
    pub stack: StackSpec,
    /// The stack's run image as the exporter finds it (see [`RunImages`]).
    pub run_image: String,
    pub run_script: Vec<u8>,
    pub deps_key: Option<String>,
    pub spec: image::Spec,
}

impl Plan {
    /// The app's repository name in the registry (`web1` of `127.0.0.1:5000/web1`).
    pub fn app(&self) -> Result<AppName> {
        let name = self.repository.rsplit('/').next().unwrap_or_default();
        AppName::parse(name).map_err(|e| Error::Plan(format!("repository {:?}: {e}", self.repository)))
    }
}

/// Where in the registry the run image of stack `spec` goes: its repository and tag
/// (node 22.12.0 → `stacks/node`, `22.12.0-run`).
pub fn run_image_place(spec: &StackSpec) -> (String, String) {
    (spec.repository(), spec.tag("run"))
}

/// A byte count as people read it.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.0} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

impl Exporter {
    pub fn new(registry: Registry, runs: RunImages) -> Exporter {
        Exporter { registry, runs, run_images: Default::default() }
    }

    /// The run image `local` of stack `spec` in the registry, its manifest and config as
    /// the registry holds them: a dockerd image is pushed when it is not the image pushed
    /// last; a registry one is looked up.
    async fn run_image(&self, spec: &StackSpec, local: &str, log: &LiveLog) -> Result<Base> {
        let docker = match &self.runs {
            RunImages::Dockerd { docker, .. } => docker,
            RunImages::Registry => {
                let (name, tag) = run_image_place(spec);
                let (bytes, digest) = self.registry.manifest(&name, &tag).await?;
                let manifest = image::Manifest::parse(&bytes)?;
                let config = self.registry.small_blob(&name, &manifest.config.digest, CONFIG_MAX).await?;
                let config = image::Config::parse(&config)?;
                return Ok(Base { reference: format!("{name}@{digest}"), manifest, config });
            }
        };
        let id = docker.inspect_image(local).await?.id.unwrap_or_default();
        let mut known = self.run_images.lock().await;
        if let Some(base) = known.get(&id) {
            return Ok(base.clone());
        }
        let (name, tag) = run_image_place(spec);
        // Put there already (by `hoistd stacks prepare`, or before hoistd restarted): the
        // image's id is its config's digest, so the tag's manifest tells; and all its
        // blobs must be there still (a registry can lose them).
        let mut held = match self.registry.manifest(&name, &tag).await {
            Ok((bytes, digest)) => {
                image::Manifest::parse(&bytes).ok().filter(|m| m.config.digest == id).map(|m| (m, digest))
            }
            Err(_) => None,
        };
        if let Some((manifest, _)) = &held {
            for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
                if !self.registry.has_blob(&name, &blob.digest).await.unwrap_or(false) {
                    held = None;
                    break;
                }
            }
        }
        let (manifest, digest) = match held {
            Some(held) => held,
            None => {
                let repository = format!("{}/{name}", self.registry.addr());
                log.line(format!("-----> Putting the run image of stack {} in the registry (once)", spec.describe()));
                let digest = self.registry.push(docker, local, &repository, &tag, log).await?;
                let (bytes, digest) = self.registry.manifest(&name, &digest).await?;
                (image::Manifest::parse(&bytes)?, digest)
            }
        };
        let config = self.registry.small_blob(&name, &manifest.config.digest, CONFIG_MAX).await?;
        let config = image::Config::parse(&config)?;
        let base = Base { reference: format!("{name}@{digest}"), manifest, config };
        known.insert(id, base.clone());
        Ok(base)
    }

    /// What hoist recorded in `image` (the app's running image), for the build stage;
    /// `None` when hoist did not write it or it cannot be read. Its `/app` copy is kept
    /// only while the deps layer it stands on is in the registry.
    pub async fn previous_metadata(&self, app: &AppName, image: &str) -> Option<Metadata> {
        let mut metadata = match self.metadata_of(image).await {
            Ok((_, _, metadata)) => metadata?,
            Err(error) => {
                tracing::warn!(%app, %error, "cannot read the running image's metadata; every layer is written anew");
                return None;
            }
        };
        if metadata.app_copy.is_some() {
            let deps = metadata.layers.iter().find(|layer| layer.name == "deps");
            let present = match deps {
                Some(layer) => self.registry.has_blob(app.as_str(), &layer.digest).await.unwrap_or(false),
                None => false,
            };
            if !present {
                metadata.app_copy = None;
            }
        }
        Some(metadata)
    }

    /// The metadata of `image` (`host:port/<app>@sha256:…`) if hoist wrote it.
    async fn metadata_of(&self, image: &str) -> Result<(String, image::Manifest, Option<Metadata>)> {
        let own = format!("{}/", self.registry.addr());
        let elsewhere = || Error::Elsewhere { image: image.to_string(), registry: self.registry.addr().to_string() };
        let (name, digest) = image.strip_prefix(&own).and_then(|rest| rest.split_once('@')).ok_or_else(elsewhere)?;
        let (bytes, _) = self.registry.manifest(name, digest).await?;
        let manifest = image::Manifest::parse(&bytes)?;
        let config = self.registry.small_blob(name, &manifest.config.digest, CONFIG_MAX).await?;
        Ok((name.to_string(), manifest, image::metadata(&config)?))
    }

    /// Exports `assembled` as tag `tag` of the app's repository. `previous` is what hoist
    /// recorded in the image the app runs now ([`Exporter::previous_metadata`]): a layer
    /// of it with the same key is reused.
    pub async fn export(
        &self,
        app: &AppName,
        assembled: &Assembled,
        tag: &str,
        previous: Option<&Metadata>,
        work: &Path,
        log: &LiveLog,
    ) -> Result<Exported> {
        let started = Instant::now();
        let mut base = self.run_image(&assembled.stack, &assembled.run_image, log).await?;
        let reusable = |name: &str, key: &Option<String>| {
            let layer = previous?.layers.iter().find(|l| l.name == name)?;
            (key.is_some() && layer.key == *key).then(|| layer.clone())
        };

        // The layers, bottom first; reused ones are not written.
        let mut reused = None;
        if let Some(layer) = reusable("deps", &assembled.deps_key) {
            if self.registry.has_blob(app.as_str(), &layer.digest).await? {
                reused = Some(layer);
            }
        }
        if let (build::Outputs::Source { .. }, Some(_), None) = (&assembled.outputs, &assembled.deps_key, &reused) {
            let layer = previous.and_then(|p| p.layers.iter().find(|l| l.name == "deps"));
            return Err(Error::DepsGone { digest: layer.map(|l| l.digest.clone()).unwrap_or_default() });
        }
        let app_copy = app_copy(assembled, log);
        // The running image's layers of assemble's own folders, whose blobs the registry
        // still has: one whose folder hashes the same is reused as it is.
        let mut unchanged = Vec::new();
        for layer in previous.map(|p| p.layers.as_slice()).unwrap_or_default() {
            if !matches!(layer.name.as_str(), "run" | "app")
                && self.registry.has_blob(app.as_str(), &layer.digest).await?
            {
                unchanged.push(layer.clone());
            }
        }
        let write_started = Instant::now();
        let (assembled_copy, work_copy, reuse_deps) = (assembled.clone(), work.to_path_buf(), reused.clone());
        let written =
            tokio::task::spawn_blocking(move || write_layers(&assembled_copy, &work_copy, reuse_deps, &unchanged))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))??;
        let write_time = write_started.elapsed();
        let layers: Vec<Layer> = written.iter().map(|(layer, _)| layer.clone()).collect();

        let mut notes = Vec::new();
        for (layer, file) in &written {
            let by_key = reused.as_ref().is_some_and(|r| r.digest == layer.digest);
            match (file, &layer.key) {
                (None, Some(key)) if by_key => {
                    notes.push(format!("{} layer reused (key {}…, 0 B)", layer.name, key.get(..8).unwrap_or(key)))
                }
                (None, _) => notes.push(format!("{} layer unchanged ({}, reused)", layer.name, size(layer.size))),
                _ => notes.push(format!("{} layer {}", layer.name, size(layer.size))),
            }
        }
        log.line(format!("-----> Exporting: {}", notes.join(", ")));

        // Blobs: the run image's mounted, ours uploaded, each only if the repository lacks it.
        let push_started = Instant::now();
        let name = app.as_str();
        let stack_name = assembled.stack.repository();
        if let Err(error) = self.mount_run_layers(name, &base, &stack_name).await {
            // The registry lost the run image since it was pushed (its storage was emptied
            // or collected): push it again, once, rather than fail every build until restart.
            tracing::warn!(%app, %error, run = %base.reference, "the run image is gone from the registry; pushing it again");
            self.run_images.lock().await.retain(|_, known| known.reference != base.reference);
            base = self.run_image(&assembled.stack, &assembled.run_image, log).await?;
            self.mount_run_layers(name, &base, &stack_name).await?;
        }
        let (mut new_layers, mut sent) = (0, 0u64);
        for (layer, file) in &written {
            let Some(file) = file else { continue };
            if self.registry.has_blob(name, &layer.digest).await? {
                continue;
            }
            self.registry.upload_blob(name, &layer.digest, registry::Blob::File(file.clone())).await?;
            new_layers += 1;
            sent += layer.size;
        }
        let stack = image::Stack {
            name: assembled.stack.name.clone(),
            suite: assembled.stack.suite.clone(),
            version: assembled.stack.version.clone(),
            run_image: base.reference.clone(),
        };
        let spec = launch_spec(assembled, log);
        let composed = image::compose(&base, &stack, &spec, &layers, app_copy.as_ref())?;
        self.put(name, tag, &composed).await?;
        log.line(format!(
            "-----> Pushing {}/{name} ({new_layers} new layer{}, {})",
            self.registry.addr(),
            if new_layers == 1 { "" } else { "s" },
            size(sent)
        ));
        log.line(format!(
            "       digest {} (export {:.2} s: layers {:.2} s, push {:.2} s)",
            composed.digest,
            started.elapsed().as_secs_f64(),
            write_time.as_secs_f64(),
            push_started.elapsed().as_secs_f64()
        ));
        Ok(Exported { digest: composed.digest })
    }

    /// Exports what assemble left in `app`, `deps` and `layers` as `plan` says: what a
    /// build pod runs (`hoistd export`).
    pub async fn export_plan(&self, plan: &Plan, folders: [&Path; 3], work: &Path, log: &LiveLog) -> Result<Exported> {
        let [app_dir, deps, layers] = folders;
        let assembled = build::Assembled {
            buildpack: plan.buildpack.clone(),
            stack: plan.stack.clone(),
            run_image: plan.run_image.clone(),
            outputs: build::Outputs::Folders {
                app: app_dir.to_path_buf(),
                deps: deps.to_path_buf(),
                layers: layers.to_path_buf(),
            },
            run_script: plan.run_script.clone(),
            deps_key: plan.deps_key.clone(),
            spec: plan.spec.clone(),
        };
        let app = plan.app()?;
        let previous = match &plan.previous {
            Some(image) => self.previous_metadata(&app, image).await,
            None => None,
        };
        self.export(&app, &assembled, &plan.tag, previous.as_ref(), work, log).await
    }

    /// Makes every layer of `base` a blob of repository `name`.
    async fn mount_run_layers(&self, name: &str, base: &Base, from: &str) -> Result<()> {
        for layer in &base.manifest.layers {
            if !self.registry.has_blob(name, &layer.digest).await?
                && !self.registry.mount_blob(name, &layer.digest, from).await?
            {
                return Err(registry::Error::Blob {
                    name: name.to_string(),
                    digest: layer.digest.clone(),
                    message: format!("the registry would not link it from {from}"),
                }
                .into());
            }
        }
        Ok(())
    }

    /// Uploads `composed`'s config and puts its manifest as `tag` of repository `name`.
    async fn put(&self, name: &str, tag: &str, composed: &image::Composed) -> Result<()> {
        let config_digest = image::sha256(&composed.config);
        if !self.registry.has_blob(name, &config_digest).await? {
            self.registry.upload_blob(name, &config_digest, registry::Blob::Bytes(composed.config.clone())).await?;
        }
        self.registry.put_manifest(name, tag, image::MANIFEST_TYPE, composed.manifest.clone()).await?;
        Ok(())
    }

    /// A new image of `image` (what `app` runs) on the current run image of its stack
    /// (made anew when its inputs changed), its own layers unchanged: no build runs.
    pub async fn rebase(&self, app: &AppName, image: &str, log: &LiveLog) -> Result<Rebased> {
        let (name, manifest, metadata) = self.metadata_of(image).await?;
        let metadata = metadata.ok_or_else(|| Error::NotRebasable { image: image.to_string() })?;
        let spec = StackSpec {
            name: metadata.stack.name.clone(),
            suite: metadata.stack.suite.clone(),
            version: metadata.stack.version.clone(),
        };
        let run = match &self.runs {
            RunImages::Dockerd { stacks, .. } => stacks.ensure(&spec, log).await?.run,
            RunImages::Registry => spec.image("stacks", "run"),
        };
        let base = self.run_image(&spec, &run, log).await?;
        let run_digest = base.reference.rsplit_once('@').map_or("", |(_, d)| d).to_string();
        if base.reference == metadata.stack.run_image {
            return Ok(Rebased { digest: None, stack: spec.describe(), run_digest });
        }
        // The app's layers are the manifest's top ones, as many as the metadata names.
        let ours = &manifest.layers[manifest.layers.len().saturating_sub(metadata.layers.len())..];
        for (layer, descriptor) in metadata.layers.iter().zip(ours) {
            if descriptor.digest != layer.digest || !self.registry.has_blob(&name, &layer.digest).await? {
                return Err(Error::LayerGone {
                    image: image.to_string(),
                    layer: layer.name.clone(),
                    digest: layer.digest.clone(),
                });
            }
        }
        self.mount_run_layers(&name, &base, &spec.repository()).await?;
        let stack = image::Stack { run_image: base.reference.clone(), ..metadata.stack.clone() };
        let composed = image::compose(&base, &stack, &metadata.spec, &metadata.layers, metadata.app_copy.as_ref())?;
        let hex = composed.digest.trim_start_matches("sha256:");
        let tag = format!("rebase-{}", hex.get(..12).unwrap_or(hex));
        self.put(&name, &tag, &composed).await?;
        tracing::info!(%app, from = image, to = %composed.digest, run = %base.reference, "rebased");
        Ok(Rebased { digest: Some(composed.digest), stack: spec.describe(), run_digest })
    }
}

/// Writes the layers of `assembled` into `work`, bottom first: the run script, the deps
/// (or `reused`), each folder of `layers/`, the app. Each comes with the file it was
/// written to, `None` when reused: the deps by key, or a folder whose tar hashes as the
/// layer of its name in `unchanged` did. Empty folders give no layer.
fn write_layers(
    assembled: &Assembled,
    work: &Path,
    reused: Option<Layer>,
    unchanged: &[Layer],
) -> std::io::Result<Vec<(Layer, Option<PathBuf>)>> {
    let as_before = |dir: &Path, prefix: &str, name: &str, key: &Option<String>| -> std::io::Result<Option<Layer>> {
        let Some(layer) = unchanged.iter().find(|l| l.name == name) else { return Ok(None) };
        // The same bytes as before, whatever made them this time: the new key is as true.
        let same = image::diff_id_of_folder(dir, prefix)? == layer.diff_id;
        Ok(same.then(|| Layer { key: key.clone(), ..layer.clone() }))
    };
    let mut layers = Vec::new();
    let mut run = image::LayerWriter::create(&work.join("layer-run.tar.gz"), "run")?;
    run.tar().set_uid(0);
    run.tar().dir("hoist/")?;
    run.tar().file("hoist/run", 0o755, &assembled.run_script)?;
    let (layer, path) = run.finish(None)?;
    layers.push((layer, Some(path)));
    let (app, deps, extra) = match &assembled.outputs {
        build::Outputs::Folders { app, deps, layers } => (app, deps, layers),
        build::Outputs::Source { tar, copy } => {
            // With a deps key, the deps layer is the running image's (checked before).
            if let Some(layer) = reused {
                layers.push((layer, None));
            }
            let path = work.join("layer-app.tar.gz");
            layers.push((image::layer_of_source(tar, copy, &path, "app")?, Some(path)));
            return Ok(layers);
        }
    };
    match reused {
        Some(layer) => layers.push((layer, None)),
        None if !is_empty(deps)? => match as_before(deps, "deps/", "deps", &assembled.deps_key)? {
            Some(layer) => layers.push((layer, None)),
            None => {
                let path = work.join("layer-deps.tar.gz");
                let layer = image::layer_of_folder(deps, "deps/", &path, "deps", assembled.deps_key.clone())?;
                layers.push((layer, Some(path)));
            }
        },
        None => {}
    }
    if extra.is_dir() {
        let mut folders: Vec<(String, PathBuf)> = std::fs::read_dir(extra)?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect();
        folders.sort();
        for (folder, dir) in folders {
            if is_empty(&dir)? {
                continue;
            }
            // `1-dependencies` orders the folder; the layer is `dependencies`.
            let name = match folder.split_once('-') {
                Some((number, name)) if number.chars().all(|c| c.is_ascii_digit()) && !name.is_empty() => name,
                _ => folder.as_str(),
            };
            if let Some(layer) = as_before(&dir, "app/", name, &None)? {
                layers.push((layer, None));
                continue;
            }
            let path = work.join(format!("layer-extra-{folder}.tar.gz"));
            layers.push((image::layer_of_folder(&dir, "app/", &path, name, None)?, Some(path)));
        }
    }
    let path = work.join("layer-app.tar.gz");
    layers.push((image::layer_of_folder(app, "app/", &path, "app", None)?, Some(path)));
    Ok(layers)
}

/// What the new image records of how its `/app` was made, for the next build: a copy
/// of the source, when that holds with its deps key (a `[copy]` buildpack's app has no
/// deps to key it by, and needs no record). An assemble says so in
/// `$LAYERS_DIR/app.copy`; one that also left layers or a `launch.env` of its own made more
/// than a copy.
fn app_copy(assembled: &Assembled, log: &LiveLog) -> Option<image::AppCopy> {
    assembled.deps_key.as_ref()?;
    let layers = match &assembled.outputs {
        build::Outputs::Source { copy, .. } => return Some(copy.clone()),
        build::Outputs::Folders { layers, .. } => layers,
    };
    let text = match read_small_file(&layers.join(build::APP_COPY), APP_COPY_MAX) {
        Ok(text) => text?,
        Err(error) => {
            log.line(format!(
                " !     {}/{}: {error}; the next build runs assemble",
                build::LAYERS_DIR,
                build::APP_COPY
            ));
            return None;
        }
    };
    let folders = std::fs::read_dir(layers).ok()?.filter_map(|e| e.ok()).any(|e| e.path().is_dir());
    // A copy made with no builder would not have the variables assemble gave its processes.
    let launch_env = std::fs::symlink_metadata(layers.join(build::LAUNCH_ENV)).is_ok();
    match image::AppCopy::parse(&text) {
        Ok(copy) if !folders && !launch_env => Some(copy),
        Ok(_) => None,
        Err(error) => {
            log.line(format!(
                " !     {}/{} is not usable ({error}); the next build runs assemble",
                build::LAYERS_DIR,
                build::APP_COPY
            ));
            None
        }
    }
}

/// The image's settings with what assemble left in `$LAYERS_DIR/launch.env` for the app's
/// processes (see [`image::Spec::with_launch_env`]). A file that is not usable is named in
/// the build log and left out: the app runs as it would without it.
fn launch_spec(assembled: &Assembled, log: &LiveLog) -> image::Spec {
    let build::Outputs::Folders { layers, .. } = &assembled.outputs else {
        return assembled.spec.clone();
    };
    let unusable = |why: String| {
        log.line(format!(" !     {}/{}: {why}; the app runs without it", build::LAYERS_DIR, build::LAUNCH_ENV));
        assembled.spec.clone()
    };
    match read_small_file(&layers.join(build::LAUNCH_ENV), APP_COPY_MAX) {
        Ok(None) => assembled.spec.clone(),
        Ok(Some(text)) => match assembled.spec.with_launch_env(&text) {
            Ok(spec) => {
                let names: Vec<&str> = spec
                    .env
                    .iter()
                    .filter(|variable| !assembled.spec.env.contains(variable))
                    .map(|(name, _)| name.as_str())
                    .collect();
                if !names.is_empty() {
                    log.line(format!("-----> The app's processes get {} from assemble", names.join(", ")));
                }
                spec
            }
            Err(why) => unusable(why),
        },
        Err(error) => unusable(error.to_string()),
    }
}

/// The most bytes an `app.copy` or a `launch.env` may have (hoist's buildpacks write a
/// few lines).
const APP_COPY_MAX: u64 = 64 * 1024;

/// A file a builder left, read as text if it is a plain file of at most `max` bytes:
/// `Ok(None)` when there is none. A builder runs the app's own code (npm's install
/// scripts), so a link is not followed and a fifo or a device is not opened for reading.
fn read_small_file(path: &Path, max: u64) -> std::io::Result<Option<String>> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let file = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => std::fs::File::from(fd),
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(rustix::io::Errno::LOOP) => return Err(std::io::Error::other("is a link, not a file")),
        Err(errno) => return Err(errno.into()),
    };
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(std::io::Error::other("is not a plain file"));
    }
    if metadata.len() > max {
        return Err(std::io::Error::other(format!("is {} bytes; hoist reads at most {max}", metadata.len())));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(file, max), &mut text)?;
    Ok(Some(text))
}

fn is_empty(dir: &Path) -> std::io::Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_that_hashes_as_before_is_reused_and_a_changed_one_written() {
        let dir = std::env::temp_dir().join(format!("hoist-unchanged-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (app, deps, layers, work) = (dir.join("app"), dir.join("deps"), dir.join("layers"), dir.join("work"));
        for folder in [&app, &deps, &work, &layers.join("1-dependencies/target/lib")] {
            std::fs::create_dir_all(folder).unwrap();
        }
        std::fs::write(app.join("app.jar"), "classes").unwrap();
        std::fs::write(layers.join("1-dependencies/target/lib/spring.jar"), "spring 3.5").unwrap();
        let assembled = Assembled {
            buildpack: "maven".into(),
            stack: crate::stack::StackSpec {
                name: "java".into(),
                suite: "bookworm".into(),
                version: Some("17".into()),
            },
            run_image: "hoist/stack-java:17-run".into(),
            outputs: build::Outputs::Folders { app: app.clone(), deps, layers: layers.clone() },
            run_script: b"#!/bin/sh\n".to_vec(),
            deps_key: None,
            spec: image::Spec {
                env: vec![],
                cmd: vec!["/hoist/run".into()],
                user: "1001".into(),
                workdir: "/app".into(),
                port: 5000,
                labels: Default::default(),
            },
        };
        let names = |written: &[(Layer, Option<PathBuf>)]| -> Vec<(String, bool)> {
            written.iter().map(|(layer, file)| (layer.name.clone(), file.is_some())).collect()
        };
        let first = write_layers(&assembled, &work, None, &[]).unwrap();
        let written = |name: &str| {
            [("run", true), ("dependencies", name == "written"), ("app", true)].map(|(n, w)| (n.to_string(), w))
        };
        assert_eq!(names(&first), written("written"));
        let before: Vec<Layer> = first.into_iter().map(|(layer, _)| layer).collect();

        let again = write_layers(&assembled, &work, None, &before).unwrap();
        assert_eq!(names(&again), written("reused"));
        assert_eq!(again[1].0, before[1], "the same layer, digest and all");

        std::fs::write(layers.join("1-dependencies/target/lib/spring.jar"), "spring 3.6").unwrap();
        let changed = write_layers(&assembled, &work, None, &before).unwrap();
        assert_eq!(names(&changed), written("written"));
        assert_ne!(changed[1].0.diff_id, before[1].diff_id);
        assert_eq!(
            changed[1].0.diff_id,
            image::diff_id_of_folder(&layers.join("1-dependencies"), "app/").unwrap(),
            "the hash alone is the written layer's diff id"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn what_a_builder_left_is_read_only_as_a_small_plain_file() {
        let dir = std::env::temp_dir().join(format!("hoist-export-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("app.copy");
        std::fs::write(&file, "exclude .git\n").unwrap();
        assert_eq!(read_small_file(&file, 64).unwrap().as_deref(), Some("exclude .git\n"));
        assert_eq!(read_small_file(&dir.join("missing"), 64).unwrap(), None);
        let big = read_small_file(&file, 4).unwrap_err().to_string();
        assert!(big.contains("is 13 bytes; hoist reads at most 4"), "{big}");
        // A link (to a secret of hoistd's host) is not followed.
        std::os::unix::fs::symlink("/etc/hostname", dir.join("link")).unwrap();
        assert!(read_small_file(&dir.join("link"), 64).unwrap_err().to_string().contains("is a link"));
        // A fifo with no writer would block a plain open for ever.
        let fifo = dir.join("fifo");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, rustix::fs::Mode::RUSR, 0).unwrap();
        assert!(read_small_file(&fifo, 64).unwrap_err().to_string().contains("not a plain file"));
        assert!(read_small_file(&dir, 64).is_err(), "a folder");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
