//! Buildpacks: which one fits a source tree (pure detection), and the catalog of
//! buildpacks on disk (`buildpacks/<name>/{buildpack.toml,bin/assemble,bin/run}`).
//!
//! Detection order, first match wins:
//! 1. `Dockerfile` at the root: the `dockerfile` buildpack (the repo builds itself).
//! 2. A language marker: `pom.xml` (maven), `package.json` (node), `requirements.txt` or
//!    `pyproject.toml` (python), `go.mod` (go), `Cargo.toml` (rust), `index.html` (static).
//! 3. `.s2i/bin/assemble` alone: the `base` stack running the repo's own script.
//!
//! `.s2i/bin/assemble` and `.s2i/bin/run` replace the buildpack's scripts (OpenShift
//! source-to-image semantics), and a `Procfile` `web:` line replaces the start command.
//!
//! Architecture invariant: detection is a pure function of the file names at the root;
//! it never reads Docker or the disk.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// What can go wrong detecting or loading a buildpack.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no buildpack matched: looked for Dockerfile, {markers}, .s2i/bin/assemble at the root of the commit; \
         add one of them, e.g. a Dockerfile or .s2i/bin/assemble",
        markers = MARKERS.iter().map(|(file, _, _)| *file).collect::<Vec<_>>().join(", ")
    )]
    NoMatch,
    #[error(
        "detected a {language} app ({marker}), but this hoistd has no {name:?} buildpack in {dir} yet; \
         add a Dockerfile to build it yourself"
    )]
    NotInstalled { language: &'static str, marker: &'static str, name: String, dir: PathBuf },
    #[error("buildpack {name:?} in {dir} is broken: {reason}")]
    Broken { name: String, dir: PathBuf, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Language markers in detection order: (file, buildpack, language).
const MARKERS: &[(&str, &str, &str)] = &[
    ("pom.xml", "maven", "Java (Maven)"),
    ("package.json", "node", "Node.js"),
    ("requirements.txt", "python", "Python"),
    ("pyproject.toml", "python", "Python"),
    ("go.mod", "go", "Go"),
    ("Cargo.toml", "rust", "Rust"),
    ("index.html", "static", "static site"),
];

/// The buildpack name of projects that bring a Dockerfile.
pub const DOCKERFILE: &str = "dockerfile";

/// What detection decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    /// The buildpack's name.
    pub buildpack: String,
    /// The language, for humans.
    pub language: &'static str,
    /// The file that decided it.
    pub marker: &'static str,
    /// `.s2i/bin/assemble` is present and replaces the buildpack's own.
    pub s2i_assemble: bool,
    /// `.s2i/bin/run` is present and replaces the buildpack's own.
    pub s2i_run: bool,
}

/// Picks the buildpack for a source tree, given the paths of its files relative to
/// the root (directories need not be listed).
pub fn detect<S: AsRef<str>>(files: &[S]) -> Result<Detection> {
    let has = |name: &str| files.iter().any(|f| f.as_ref() == name);
    let s2i_assemble = has(".s2i/bin/assemble");
    let s2i_run = has(".s2i/bin/run");
    let detection = |buildpack: &str, language, marker| Detection {
        buildpack: buildpack.to_string(),
        language,
        marker,
        s2i_assemble,
        s2i_run,
    };
    if has("Dockerfile") {
        return Ok(detection(DOCKERFILE, "Docker", "Dockerfile"));
    }
    for (marker, buildpack, language) in MARKERS {
        if has(marker) {
            return Ok(detection(buildpack, language, marker));
        }
    }
    if s2i_assemble {
        return Ok(detection("base", "custom (source-to-image)", ".s2i/bin/assemble"));
    }
    Err(Error::NoMatch)
}

/// The `web:` command of a Procfile, if it has one.
pub fn procfile_web_command(procfile: &str) -> Option<String> {
    procfile.lines().find_map(|line| {
        let (process, command) = line.split_once(':')?;
        (process.trim() == "web" && !command.trim().is_empty()).then(|| command.trim().to_string())
    })
}

/// A buildpack on disk.
#[derive(Debug, Clone)]
pub struct Buildpack {
    pub name: String,
    /// Its folder: `bin/assemble` and `bin/run` live here.
    pub dir: PathBuf,
    pub manifest: Manifest,
}

/// `buildpack.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The stack it builds on: images `hoist/stack-<stack>:build` and `:run`.
    pub stack: String,
    /// One line for humans.
    pub description: String,
}

impl Buildpack {
    /// The builder image of its stack.
    pub fn build_image(&self) -> String {
        format!("hoist/stack-{}:build", self.manifest.stack)
    }

    /// The run image of its stack.
    pub fn run_image(&self) -> String {
        format!("hoist/stack-{}:run", self.manifest.stack)
    }
}

/// Loads the buildpack `detection` chose from `buildpacks_dir`.
pub fn load(buildpacks_dir: &Path, detection: &Detection) -> Result<Buildpack> {
    let name = &detection.buildpack;
    let dir = buildpacks_dir.join(name);
    let broken = |reason: String| Error::Broken { name: name.clone(), dir: dir.clone(), reason };
    let manifest_path = dir.join("buildpack.toml");
    let text = match std::fs::read_to_string(&manifest_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotInstalled {
                language: detection.language,
                marker: detection.marker,
                name: name.clone(),
                dir: buildpacks_dir.to_path_buf(),
            })
        }
        Err(e) => return Err(broken(format!("cannot read buildpack.toml: {e}"))),
    };
    let manifest: Manifest = toml::from_str(&text).map_err(|e| broken(format!("buildpack.toml: {e}")))?;
    for script in ["bin/assemble", "bin/run"] {
        if !dir.join(script).is_file() {
            return Err(broken(format!("{script} is missing")));
        }
    }
    Ok(Buildpack { name: name.clone(), dir, manifest })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(files: &[&str], expected: Option<&str>) {
        match (detect(files), expected) {
            (Ok(d), Some(name)) => assert_eq!(d.buildpack, name, "{files:?}"),
            (Err(Error::NoMatch), None) => {}
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
    fn s2i_scripts_override() {
        let d = detect(&["index.html", ".s2i/bin/run"]).unwrap();
        assert_eq!((d.buildpack.as_str(), d.s2i_assemble, d.s2i_run), ("static", false, true));
    }

    #[test]
    fn no_match_says_what_was_looked_for() {
        let message = detect(&["README.md"]).unwrap_err().to_string();
        assert!(message.contains("Dockerfile, pom.xml, package.json"), "{message}");
        assert!(message.contains("index.html"), "{message}");
    }

    #[test]
    fn procfile() {
        assert_eq!(
            procfile_web_command("worker: x\nweb: ./serve --port $PORT\n").as_deref(),
            Some("./serve --port $PORT")
        );
        assert_eq!(procfile_web_command("worker: x\n"), None);
        assert_eq!(procfile_web_command("web:\n"), None);
    }

    #[test]
    fn buildpacks_in_the_tree_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../buildpacks");
        let static_site = load(&dir, &detect(&["index.html"]).unwrap()).unwrap();
        assert_eq!(static_site.run_image(), "hoist/stack-base:run");
        let missing = load(&dir, &detect(&["pom.xml"]).unwrap()).unwrap_err().to_string();
        assert!(missing.contains("no \"maven\" buildpack"), "{missing}");
    }
}
