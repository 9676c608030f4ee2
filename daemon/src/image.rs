//! OCI images as hoist writes them, without `docker build`: reproducible gzip layers
//! written from folders, and the config and manifest that put them on a stack's run
//! image. Composing is one function for a build and for a rebase: the run image's config
//! and layers, then the app's layers, with the settings hoist gives every app image
//! ([`Spec`]). What made the image (its stack, run image, layers and their keys) is kept
//! in the image itself (label [`LABEL_METADATA`]), so a later build can reuse a layer
//! and a rebase can swap the run image without anything else to remember.
//!
//! Architecture invariant: no Docker, no network; files and bytes only.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const MANIFEST_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const CONFIG_TYPE: &str = "application/vnd.docker.container.image.v1+json";
pub const LAYER_TYPE: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// The label that holds [`Metadata`] as JSON.
pub const LABEL_METADATA: &str = "io.hoist.image";
/// The time every hoist-written image says it was made: the same files give the same
/// digest (as Cloud Native Buildpacks and jib do).
pub const CREATED: &str = "1980-01-01T00:00:01Z";

/// Where buildpacks put an app's own programs; first on its `PATH`.
pub const APP_BIN: &str = "/app/bin";

/// What can go wrong reading an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the image's {what}: {source}")]
    Json { what: &'static str, source: serde_json::Error },
    #[error("the image's {0} is not what an image config holds")]
    Shape(&'static str),
    #[error("cannot write a layer: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A blob as a manifest names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub size: u64,
    pub digest: String,
}

/// An image manifest (Docker's schema 2, which dockerd pushes and every runtime pulls).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

impl Manifest {
    pub fn parse(bytes: &[u8]) -> Result<Manifest> {
        serde_json::from_slice(bytes).map_err(|source| Error::Json { what: "manifest", source })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest serialises")
    }
}

/// A layer hoist wrote or reuses: its blob, what it holds uncompressed, and the key of
/// what made it (when it has one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub name: String,
    pub digest: String,
    pub diff_id: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl Layer {
    pub fn descriptor(&self) -> Descriptor {
        Descriptor { media_type: LAYER_TYPE.to_string(), size: self.size, digest: self.digest.clone() }
    }
}

/// The settings hoist gives an app image on top of its run image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// Added to the run image's environment (replacing a variable of the same name).
    pub env: Vec<(String, String)>,
    pub cmd: Vec<String>,
    pub user: String,
    pub workdir: String,
    pub port: u16,
    pub labels: std::collections::BTreeMap<String, String>,
}

/// The stack an image was built on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stack {
    /// `base`, `node`, …
    pub name: String,
    pub suite: String,
    #[serde(default)]
    pub version: Option<String>,
    /// The run image in the registry: `<repository>@<digest>`.
    pub run_image: String,
}

/// What made an image, kept in its label [`LABEL_METADATA`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub stack: Stack,
    pub spec: Spec,
    /// The app's layers, above the run image's, bottom first.
    pub layers: Vec<Layer>,
    /// How `/app` was made from the source, when it was a copy: while the deps layer's
    /// key stays the same, the next build makes `/app` the same way, with no builder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_copy: Option<AppCopy>,
}

impl Spec {
    /// The names hoist gives every app image; an assemble cannot change them.
    const OWN_NAMES: [&'static str; 2] = ["PORT", "HOME"];

    /// This spec with the variables of a `$LAYERS_DIR/launch.env` (`NAME=VALUE` lines,
    /// blank and `#` lines skipped) added, each replacing one of the same name: what an
    /// assemble gives the app's processes (the Java buildpack's `JAVA_TOOL_OPTIONS`). The
    /// app's config vars still win at run time. `Err` says which line is wrong.
    pub fn with_launch_env(&self, text: &str) -> std::result::Result<Spec, String> {
        let mut spec = self.clone();
        for line in text.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')) {
            let (name, value) = line.split_once('=').ok_or_else(|| format!("{line:?}: each line is NAME=VALUE"))?;
            let mut chars = name.chars();
            let first = chars.next().is_some_and(|c| c == '_' || c.is_ascii_alphabetic());
            if !first || !chars.all(|c| c == '_' || c.is_ascii_alphanumeric()) {
                return Err(format!("{name:?} is not a variable name (letters, digits and _, not first a digit)"));
            }
            if Self::OWN_NAMES.contains(&name) {
                return Err(format!("{name} is hoist's to set"));
            }
            spec.env.retain(|(n, _)| n != name);
            spec.env.push((name.to_string(), value.to_string()));
        }
        Ok(spec)
    }
}

/// `/app` as a copy of the source tree: what a `[copy]` buildpack's app is, and what an
/// assemble says its `/app` was in `$LAYERS_DIR/app.copy` (`exclude NAME` and
/// `link NAME TARGET` lines).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppCopy {
    /// Names at the source's root that are not in `/app`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Symbolic links at `/app`'s root (`node_modules` → `/deps/node_modules`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<(String, String)>,
}

impl AppCopy {
    /// Reads an `app.copy` file; `Err` says which line is wrong.
    pub fn parse(text: &str) -> std::result::Result<AppCopy, String> {
        let name = |word: Option<&str>, line: &str| match word {
            Some(n) if !n.is_empty() && n != "." && n != ".." && !n.contains('/') => Ok(n.to_string()),
            _ => Err(format!("{line:?}: NAME is one name at the root of /app")),
        };
        let mut copy = AppCopy::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("exclude") => copy.exclude.push(name(words.next(), line)?),
                Some("link") => {
                    let link = name(words.next(), line)?;
                    let target = words.next().ok_or_else(|| format!("{line:?}: link NAME TARGET"))?;
                    copy.links.push((link, target.to_string()));
                }
                _ => return Err(format!("{line:?}: each line is `exclude NAME` or `link NAME TARGET`")),
            }
            if words.next().is_some() {
                return Err(format!("{line:?}: more words than expected"));
            }
        }
        Ok(copy)
    }
}

/// An image config (the parts hoist reads and writes typed; the rest kept as it came).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default)]
    pub config: RunConfig,
    pub rootfs: RootFs,
    #[serde(default)]
    pub history: Vec<History>,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

/// What a container of the image runs with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub exposed_ports: Option<BTreeMap<String, Empty>>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

/// `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_layer: Option<bool>,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

impl Config {
    pub fn parse(bytes: &[u8]) -> Result<Config> {
        serde_json::from_slice(bytes).map_err(|source| Error::Json { what: "config", source })
    }
}

/// The run image an app image is put on: its manifest and config as the registry holds them.
#[derive(Debug, Clone)]
pub struct Base {
    /// `<repository>@<digest>` in the registry.
    pub reference: String,
    pub manifest: Manifest,
    pub config: Config,
}

/// A composed image: the bytes to upload.
#[derive(Debug, Clone)]
pub struct Composed {
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    /// `sha256:…` of `manifest`: the image's digest.
    pub digest: String,
}

/// The image of `layers` on `base` with `spec`; `stack` and the layers are recorded in
/// the image's metadata label.
pub fn compose(
    base: &Base,
    stack: &Stack,
    spec: &Spec,
    layers: &[Layer],
    app_copy: Option<&AppCopy>,
) -> Result<Composed> {
    let mut config = base.config.clone();
    if config.rootfs.diff_ids.len() != base.manifest.layers.len() {
        return Err(Error::Shape("rootfs.diff_ids (not one per layer of the run image)"));
    }
    config.created = Some(CREATED.to_string());
    if config.architecture.is_empty() {
        config.architecture = "amd64".to_string();
    }
    if config.os.is_empty() {
        config.os = "linux".to_string();
    }
    // What dockerd recorded of the container that made the run image says nothing of this one.
    config.rest.remove("container");
    config.rest.remove("container_config");

    let run = &mut config.config;
    let mut env = run.env.take().unwrap_or_default();
    for (name, value) in &spec.env {
        env.retain(|v| v.split_once('=').map_or(v.as_str(), |(n, _)| n) != name);
        env.push(format!("{name}={value}"));
    }
    // As on Heroku, the app's own programs run by name (`web: go-getting-started`): the
    // buildpacks install them in /app/bin.
    for entry in env.iter_mut() {
        if let Some(path) = entry.strip_prefix("PATH=") {
            if !path.split(':').any(|dir| dir == APP_BIN) {
                *entry = format!("PATH={APP_BIN}:{path}");
            }
        }
    }
    if !env.iter().any(|entry| entry.starts_with("PATH=")) {
        env.push(format!("PATH={APP_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
    }
    run.env = Some(env);
    run.cmd = Some(spec.cmd.clone());
    run.entrypoint = None;
    run.user = Some(spec.user.clone());
    run.working_dir = Some(spec.workdir.clone());
    run.exposed_ports = Some(BTreeMap::from([(format!("{}/tcp", spec.port), Empty {})]));
    let mut labels = run.labels.take().unwrap_or_default();
    labels.extend(spec.labels.clone());
    let metadata =
        Metadata { stack: stack.clone(), spec: spec.clone(), layers: layers.to_vec(), app_copy: app_copy.cloned() };
    labels.insert(LABEL_METADATA.to_string(), serde_json::to_string(&metadata).expect("metadata serialises"));
    run.labels = Some(labels);

    config.rootfs.diff_ids.extend(layers.iter().map(|l| l.diff_id.clone()));
    config.history.extend(layers.iter().map(|l| History {
        created: Some(CREATED.to_string()),
        created_by: Some(format!("hoist: {} layer", l.name)),
        empty_layer: None,
        rest: Default::default(),
    }));

    let config = serde_json::to_vec(&config).expect("a config serialises");
    let mut manifest_layers = base.manifest.layers.clone();
    manifest_layers.extend(layers.iter().map(Layer::descriptor));
    let manifest = Manifest {
        schema_version: 2,
        media_type: MANIFEST_TYPE.to_string(),
        config: Descriptor { media_type: CONFIG_TYPE.to_string(), size: config.len() as u64, digest: sha256(&config) },
        layers: manifest_layers,
    }
    .to_bytes();
    Ok(Composed { digest: sha256(&manifest), config, manifest })
}

/// The metadata of an image config, if hoist wrote the image.
pub fn metadata(config: &[u8]) -> Result<Option<Metadata>> {
    let config = Config::parse(config)?;
    let Some(text) = config.config.labels.as_ref().and_then(|labels| labels.get(LABEL_METADATA)) else {
        return Ok(None);
    };
    serde_json::from_str(text).map(Some).map_err(|source| Error::Json { what: "metadata label", source })
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Writes through to `inner`, hashing and counting what passes.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hash.update(&buf[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A layer being written to a file: a tar, hashed as it is (its diff id), gzipped,
/// hashed again (its digest).
pub struct LayerWriter {
    tar: crate::archive::Writer<Hashing<flate2::write::GzEncoder<Hashing<std::io::BufWriter<std::fs::File>>>>>,
    path: PathBuf,
    name: String,
}

impl LayerWriter {
    /// A layer named `name` (`deps`, `app`, …) written to `path`. Entries are owned by
    /// the app's user.
    pub fn create(path: &Path, name: &str) -> std::io::Result<LayerWriter> {
        let file =
            Hashing { inner: std::io::BufWriter::new(std::fs::File::create(path)?), hash: Sha256::new(), bytes: 0 };
        // Fast compression: layers go to a registry next door; the time is the user's.
        let gzip = flate2::GzBuilder::new().mtime(0).write(file, flate2::Compression::fast());
        let tar = crate::archive::Writer::wrap(
            Hashing { inner: gzip, hash: Sha256::new(), bytes: 0 },
            crate::archive::APP_UID,
        );
        Ok(LayerWriter { tar, path: path.to_path_buf(), name: name.to_string() })
    }

    pub fn tar(&mut self) -> &mut crate::archive::Writer<impl Write> {
        &mut self.tar
    }

    /// Ends the layer; `key` is what made it, when it has one.
    pub fn finish(self, key: Option<String>) -> std::io::Result<(Layer, PathBuf)> {
        let uncompressed = self.tar.finish()?;
        let diff_id = format!("sha256:{}", hex::encode(uncompressed.hash.finalize()));
        let mut file = uncompressed.inner.finish()?;
        file.flush()?;
        let digest = format!("sha256:{}", hex::encode(file.hash.finalize()));
        let layer = Layer { name: self.name, digest, diff_id, size: file.bytes, key };
        Ok((layer, self.path))
    }
}

/// Writes the folder `dir` as a layer at `path`, its files under `prefix` (`app/`).
pub fn layer_of_folder(
    dir: &Path,
    prefix: &str,
    path: &Path,
    name: &str,
    key: Option<String>,
) -> std::io::Result<Layer> {
    let mut writer = LayerWriter::create(path, name)?;
    writer.tar().dir(prefix)?;
    writer.tar().append_tree(dir, prefix)?;
    Ok(writer.finish(key)?.0)
}

/// The diff id [`layer_of_folder`] would give `dir` under `prefix`: the same tar, hashed,
/// neither compressed nor written. Hashing is a fraction of compressing, so a folder that
/// is as it was (a Spring Boot app's 18 MiB of dependency jars) costs a read, not a gzip.
pub fn diff_id_of_folder(dir: &Path, prefix: &str) -> std::io::Result<String> {
    let hashing = Hashing { inner: std::io::sink(), hash: Sha256::new(), bytes: 0 };
    let mut tar = crate::archive::Writer::wrap(hashing, crate::archive::APP_UID);
    tar.dir(prefix)?;
    tar.append_tree(dir, prefix)?;
    Ok(format!("sha256:{}", hex::encode(tar.finish()?.hash.finalize())))
}

/// Writes the source tree `tar` as a layer at `path`, its files under `app/`, as `copy`
/// says: the same bytes as [`layer_of_folder`] of a folder made that way.
pub fn layer_of_source(tar: &Path, copy: &AppCopy, path: &Path, name: &str) -> std::io::Result<Layer> {
    let mut writer = LayerWriter::create(path, name)?;
    writer.tar().dir("app/")?;
    writer.tar().append_rebased_except(tar, 0, "app/", &copy.exclude, &copy.links)?;
    Ok(writer.finish(None)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Base {
        let config = Config::parse(
            br#"{
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/usr/bin", "HOME=/root"], "Cmd": ["bash"], "Labels": {"org.hoist.role": "stack"},
                       "Volumes": null},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:r1", "sha256:r2"]},
            "history": [{"created_by": "debootstrap"}, {"created_by": "RUN apt-get", "comment": "kept"}],
            "container_config": {"Hostname": "abc"}
        }"#,
        )
        .unwrap();
        let layer = |d: &str| Descriptor { media_type: LAYER_TYPE.into(), size: 10, digest: d.into() };
        Base {
            reference: "127.0.0.1:5000/stacks/base@sha256:base".into(),
            manifest: Manifest {
                schema_version: 2,
                media_type: MANIFEST_TYPE.into(),
                config: Descriptor { media_type: CONFIG_TYPE.into(), size: 1, digest: "sha256:c".into() },
                layers: vec![layer("sha256:b1"), layer("sha256:b2")],
            },
            config,
        }
    }

    fn spec() -> Spec {
        Spec {
            env: vec![("PORT".into(), "5000".into()), ("HOME".into(), "/app".into())],
            cmd: vec!["/hoist/run".into()],
            user: "1001".into(),
            workdir: "/app".into(),
            port: 5000,
            labels: [("org.opencontainers.image.revision".to_string(), "abc".to_string())].into(),
        }
    }

    fn stack() -> Stack {
        Stack {
            name: "base".into(),
            suite: "bookworm".into(),
            version: None,
            run_image: "stacks/base@sha256:base".into(),
        }
    }

    #[test]
    fn launch_env_adds_and_replaces_and_says_what_is_wrong() {
        let spec = Spec {
            env: vec![("PORT".into(), "8080".into()), ("HOME".into(), "/app".into()), ("A".into(), "1".into())],
            cmd: vec![],
            user: "1001".into(),
            workdir: "/app".into(),
            port: 8080,
            labels: Default::default(),
        };
        let text = "# made by assemble\n\nJAVA_TOOL_OPTIONS=-XX:SharedArchiveFile=/app/a.jsa -Xshare:auto\nA=x=y\n";
        let with = spec.with_launch_env(text).unwrap();
        assert_eq!(
            with.env,
            [
                ("PORT".into(), "8080".into()),
                ("HOME".into(), "/app".into()),
                ("JAVA_TOOL_OPTIONS".into(), "-XX:SharedArchiveFile=/app/a.jsa -Xshare:auto".into()),
                ("A".into(), "x=y".into()),
            ]
        );
        assert_eq!(spec.with_launch_env("").unwrap(), spec);
        assert!(spec.with_launch_env("PORT=1\n").unwrap_err().contains("PORT is hoist's"));
        assert!(spec.with_launch_env("1A=1\n").unwrap_err().contains("not a variable name"));
        assert!(spec.with_launch_env("A B=1\n").unwrap_err().contains("not a variable name"));
        assert!(spec.with_launch_env("JUSTTEXT\n").unwrap_err().contains("NAME=VALUE"));
    }

    #[test]
    fn compose_puts_the_app_layers_on_the_run_image_and_records_what_made_it() {
        let app =
            Layer { name: "app".into(), digest: "sha256:a".into(), diff_id: "sha256:ad".into(), size: 7, key: None };
        let composed = compose(&base(), &stack(), &spec(), std::slice::from_ref(&app), None).unwrap();
        let manifest = Manifest::parse(&composed.manifest).unwrap();
        let digests: Vec<&str> = manifest.layers.iter().map(|l| l.digest.as_str()).collect();
        assert_eq!(digests, ["sha256:b1", "sha256:b2", "sha256:a"]);
        assert_eq!(manifest.config.digest, sha256(&composed.config));
        assert_eq!(composed.digest, sha256(&composed.manifest));
        let config = Config::parse(&composed.config).unwrap();
        assert_eq!(config.rootfs.diff_ids, ["sha256:r1", "sha256:r2", "sha256:ad"]);
        assert_eq!(config.config.env.as_deref().unwrap(), ["PATH=/app/bin:/usr/bin", "PORT=5000", "HOME=/app"]);
        assert_eq!(config.config.user.as_deref(), Some("1001"));
        assert_eq!(config.history.len(), 3);
        assert_eq!(config.history[1].rest["comment"], "kept", "what hoist does not know is kept");
        assert!(config.config.rest.contains_key("Volumes"));
        assert!(!config.rest.contains_key("container_config"));
        assert_eq!(config.config.labels.as_ref().unwrap()["org.hoist.role"], "stack");
        let recorded = metadata(&composed.config).unwrap().unwrap();
        assert_eq!(recorded.layers, std::slice::from_ref(&app));
        assert_eq!(recorded.stack, stack());
        // The same inputs give the same bytes.
        let again = compose(&base(), &stack(), &spec(), &[app], None).unwrap();
        assert_eq!(again.digest, composed.digest);
    }

    #[test]
    fn a_config_that_does_not_match_its_manifest_is_refused() {
        let mut broken = base();
        broken.manifest.layers.pop();
        assert!(matches!(compose(&broken, &stack(), &spec(), &[], None), Err(Error::Shape(_))));
        assert!(metadata(br#"{"config":{"Labels":{}},"rootfs":{"type":"layers","diff_ids":[]}}"#).unwrap().is_none());
        assert!(metadata(br#"{"config":{"Labels":null},"rootfs":{"type":"layers","diff_ids":[]}}"#).unwrap().is_none());
    }

    #[test]
    fn the_same_folder_gives_the_same_layer() {
        let dir = std::env::temp_dir().join(format!("hoist-image-{}", std::process::id()));
        let tree = dir.join("tree");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("sub/b.txt"), "b").unwrap();
        std::fs::write(tree.join("a.txt"), "a").unwrap();
        std::os::unix::fs::symlink("/deps/node_modules", tree.join("node_modules")).unwrap();
        let first = layer_of_folder(&tree, "app/", &dir.join("1.tar.gz"), "app", None).unwrap();
        // Another time and another order of creation: the same layer.
        std::fs::write(tree.join("a.txt"), "a").unwrap();
        let second = layer_of_folder(&tree, "app/", &dir.join("2.tar.gz"), "app", None).unwrap();
        assert_eq!(first, second);
        assert_eq!(std::fs::metadata(dir.join("1.tar.gz")).unwrap().len(), first.size);
        let mut names = Vec::new();
        let file = std::fs::File::open(dir.join("1.tar.gz")).unwrap();
        for entry in tar::Archive::new(flate2::read::GzDecoder::new(file)).entries().unwrap() {
            let entry = entry.unwrap();
            names.push(entry.path().unwrap().to_string_lossy().into_owned());
        }
        assert_eq!(names, ["app/", "app/a.txt", "app/node_modules", "app/sub/", "app/sub/b.txt"]);
        std::fs::write(tree.join("a.txt"), "changed").unwrap();
        let third = layer_of_folder(&tree, "app/", &dir.join("3.tar.gz"), "app", None).unwrap();
        assert_ne!(third.digest, first.digest);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_app_copy_file_is_read_strictly() {
        let copy =
            AppCopy::parse("# node\nexclude .git\nexclude node_modules\n\nlink node_modules /deps/node_modules\n");
        assert_eq!(
            copy,
            Ok(AppCopy {
                exclude: vec![".git".into(), "node_modules".into()],
                links: vec![("node_modules".into(), "/deps/node_modules".into())]
            })
        );
        for wrong in ["exclude a/b", "exclude ..", "link x", "copy everything", "exclude a b", "exclude"] {
            assert!(AppCopy::parse(wrong).is_err(), "{wrong:?} was taken");
        }
    }

    #[test]
    fn a_source_layer_is_the_tree_without_the_excluded_names_and_owned_by_the_app_user() {
        let dir = std::env::temp_dir().join(format!("hoist-image-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tar = dir.join("source.tar");
        let mut source = crate::archive::Writer::create(&tar, 0).unwrap();
        source.dir(".s2i/").unwrap();
        source.file(".s2i/environment", 0o644, b"A=1").unwrap();
        source.file("Procfile", 0o644, b"web: x").unwrap();
        source.file("index.html", 0o644, b"<h1>hi</h1>").unwrap();
        source.dir("css/").unwrap();
        source.file("css/a.css", 0o644, b"a").unwrap();
        source.file("css/Procfile", 0o644, b"kept: only the root's is left out").unwrap();
        source.symlink("latest", "index.html").unwrap();
        std::io::Write::flush(&mut source.finish().unwrap()).unwrap();
        let copy = AppCopy {
            exclude: vec![".s2i".to_string(), "Procfile".to_string()],
            links: vec![("node_modules".to_string(), "/deps/node_modules".to_string())],
        };
        let first = layer_of_source(&tar, &copy, &dir.join("1.tar.gz"), "app").unwrap();
        let second = layer_of_source(&tar, &copy, &dir.join("2.tar.gz"), "app").unwrap();
        assert_eq!(first, second, "the same tree gives the same layer");
        // The same bytes as the folder a builder would have made that way.
        let tree = dir.join("tree");
        std::fs::create_dir_all(tree.join("css")).unwrap();
        std::fs::write(tree.join("index.html"), "<h1>hi</h1>").unwrap();
        std::fs::write(tree.join("css/a.css"), "a").unwrap();
        std::fs::write(tree.join("css/Procfile"), "kept: only the root's is left out").unwrap();
        std::os::unix::fs::symlink("index.html", tree.join("latest")).unwrap();
        std::os::unix::fs::symlink("/deps/node_modules", tree.join("node_modules")).unwrap();
        let folder = layer_of_folder(&tree, "app/", &dir.join("3.tar.gz"), "app", None).unwrap();
        assert_eq!(folder, first, "a copy made by hoistd is the layer a builder's copy gives");
        let file = std::fs::File::open(dir.join("1.tar.gz")).unwrap();
        let mut entries = Vec::new();
        for entry in tar::Archive::new(flate2::read::GzDecoder::new(file)).entries().unwrap() {
            let entry = entry.unwrap();
            let owner = (entry.header().uid().unwrap(), entry.header().mtime().unwrap());
            assert_eq!(owner, (crate::archive::APP_UID, crate::archive::FIXED_MTIME));
            entries.push(entry.path().unwrap().to_string_lossy().trim_end_matches('/').to_string());
        }
        assert_eq!(
            entries,
            ["app", "app/css", "app/css/Procfile", "app/css/a.css", "app/index.html", "app/latest", "app/node_modules"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
