//! `hoist dev`: a working tree as a build's source, the second way source arrives besides
//! a git commit. The CLI sends the tree's manifest (path, size, mode and SHA-256 of each
//! file); hoistd answers which contents it lacks; the CLI sends only those, in a tar
//! after the manifest. Contents are kept per app by hash (`<data>/dev/<app>/blobs`), so a
//! one-file change sends one file.
//!
//! Everything a tree may be is checked here before anything is written: the same limits
//! as a push (`receive.max_files`, `max_file_mb`, `max_push_mb`), folder depth, path
//! length and names a checkout can hold, and every blob's hash as it is received.
//!
//! Architecture invariant: knows files, hashes and tar, never HTTP, the store or Docker;
//! the intake makes the build.

use crate::archive;
use crate::receive::{self, SizeLimits, MAX_PATH_BYTES, MAX_TREE_DEPTH};
use crate::wire;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Why a tree was refused; the text goes to the developer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the tree is refused: {0}")]
    Refused(#[from] receive::Error),
    #[error("the tree is refused: {0}")]
    Invalid(String),
    #[error("the tree lacks the contents of {path} ({sha256}); send it (hoist dev does)")]
    MissingBlob { path: String, sha256: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The first entry of a dev build's tar: the tree's manifest, or
pub const MANIFEST_ENTRY: &str = "tree.json";
/// the hash of the tree offered to `…/dev/missing` just before (its manifest is not sent
/// twice).
pub const TREE_REF_ENTRY: &str = "tree.ref";
/// The folder of the tar's other entries: `blobs/<sha256>`.
pub const BLOBS_PREFIX: &str = "blobs/";

/// A tree, checked: its files in path order, and its hash.
#[derive(Debug, Clone)]
pub struct Tree {
    pub files: Vec<wire::DevFile>,
    pub base: Option<String>,
    /// SHA-256 over every file's path, mode and content hash.
    pub hash: String,
}

impl Tree {
    /// Checks `sent` against the limits; sorts it.
    pub fn check(sent: wire::DevTree, limits: SizeLimits) -> Result<Tree> {
        if sent.files.len() as u64 > limits.max_files {
            return Err(receive::Error::TooManyFiles { max: limits.max_files }.into());
        }
        let mut files = sent.files;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut total: u64 = 0;
        let mut seen = BTreeSet::new();
        for file in &files {
            check_path(&file.path)?;
            if !seen.insert(file.path.as_str()) {
                return Err(Error::Invalid(format!("{} is listed twice", file.path)));
            }
            if !is_sha256(&file.sha256) {
                return Err(Error::Invalid(format!("{}: {:?} is not a SHA-256 in hex", file.path, file.sha256)));
            }
            if file.size > limits.max_file {
                return Err(receive::Error::TooBig(format!(
                    "{} is {} MiB; a file may be at most {} MiB (receive.max_file_mb)",
                    file.path,
                    file.size >> 20,
                    limits.max_file >> 20
                ))
                .into());
            }
            total = total.saturating_add(file.size);
            if total > limits.max_total {
                return Err(receive::Error::TooBig(format!(
                    "the tree's files are more than {} MiB (receive.max_push_mb)",
                    limits.max_total >> 20
                ))
                .into());
            }
        }
        // A file may not also be a folder of another (`a` and `a/b`).
        for file in &files {
            let mut prefix = file.path.as_str();
            while let Some((parent, _)) = prefix.rsplit_once('/') {
                if seen.contains(parent) {
                    return Err(Error::Invalid(format!("{parent} is a file and a folder")));
                }
                prefix = parent;
            }
        }
        if let Some(base) = &sent.base {
            if base.len() > 64 || !base.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::Invalid(format!("base commit {base:?} is not a commit id")));
            }
        }
        let hash = tree_hash(&files);
        Ok(Tree { files, base: sent.base, hash })
    }

    /// The tree `change` describes: `offered` (the tree last offered, whose hash it
    /// names in `since`) with its removed paths gone and its files put in.
    pub fn apply(offered: &Tree, change: wire::DevTree, limits: SizeLimits) -> Result<Tree> {
        if change.since.as_deref() != Some(offered.hash.as_str()) {
            return Err(Error::Invalid(format!(
                "tree {} is not the one last offered; send the whole manifest",
                change.since.unwrap_or_default()
            )));
        }
        let mut files: BTreeMap<String, wire::DevFile> =
            offered.files.iter().map(|f| (f.path.clone(), f.clone())).collect();
        for path in &change.removed {
            files.remove(path);
        }
        for file in change.files {
            files.insert(file.path.clone(), file);
        }
        let whole = wire::DevTree { files: files.into_values().collect(), base: change.base, ..Default::default() };
        Tree::check(whole, limits)
    }

    /// The hashes of contents `blobs` does not hold yet, each once.
    pub fn missing(&self, blobs: &Blobs) -> Vec<String> {
        let wanted: BTreeSet<&str> = self.files.iter().map(|f| f.sha256.as_str()).collect();
        wanted.into_iter().filter(|sha| !blobs.has(sha)).map(str::to_string).collect()
    }

    /// Writes the tree as a build's source tar (folders, then files, in path order, with
    /// fixed metadata); the paths of its files.
    pub fn write_tar(&self, blobs: &Blobs, dest: &Path) -> Result<Vec<String>> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let mut tar = archive::Writer::create(dest, 0).map_err(io(dest))?;
        let mut folders = BTreeSet::new();
        for file in &self.files {
            let mut at = 0;
            while let Some(slash) = file.path[at..].find('/') {
                folders.insert(format!("{}/", &file.path[..at + slash]));
                at += slash + 1;
            }
        }
        for folder in &folders {
            tar.dir(folder).map_err(io(dest))?;
        }
        for file in &self.files {
            let blob = blobs.path(&file.sha256);
            let opened = std::fs::File::open(&blob)
                .map_err(|_| Error::MissingBlob { path: file.path.clone(), sha256: file.sha256.clone() })?;
            let size = opened.metadata().map_err(io(&blob))?.len();
            let mode = if file.executable { 0o755 } else { 0o644 };
            tar.file_from(&file.path, mode, size, opened).map_err(io(&blob))?;
        }
        tar.finish().and_then(|mut file| file.flush()).map_err(io(dest))?;
        Ok(self.files.iter().map(|f| f.path.clone()).collect())
    }
}

/// What a received dev build's tar held.
#[derive(Debug)]
pub struct Received {
    pub tree: Tree,
    pub files: usize,
    pub bytes: u64,
}

/// Reads a dev build's tar (`tree.json`, or `tree.ref` naming the `offered` tree, then
/// `blobs/<sha256>` entries): checks the manifest, stores each blob after checking its
/// hash, and checks that every content the tree names is then held.
pub fn receive(archive: &Path, blobs: &Blobs, limits: SizeLimits, offered: Option<Tree>) -> Result<Received> {
    let io = |source| Error::Io { path: archive.to_path_buf(), source };
    // Plain or gzipped (what `hoist dev` sends), told by gzip's magic bytes.
    let mut file = std::fs::File::open(archive).map_err(io)?;
    let mut magic = [0u8; 2];
    let gzipped = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    std::io::Seek::rewind(&mut file).map_err(io)?;
    let input: Box<dyn Read> = match gzipped {
        true => Box::new(flate2::read::GzDecoder::new(file)),
        false => Box::new(file),
    };
    let mut reader = tar::Archive::new(input);
    let mut entries = reader.entries().map_err(io)?;
    let first =
        entries.next().ok_or_else(|| Error::Invalid(format!("the tar is empty; {MANIFEST_ENTRY} comes first")))?;
    let mut first = first.map_err(io)?;
    let name = first.path().map_err(io)?.to_string_lossy().into_owned();
    let mut manifest = Vec::new();
    first.by_ref().take(64 << 20).read_to_end(&mut manifest).map_err(io)?;
    let tree = match name.as_str() {
        MANIFEST_ENTRY => {
            let sent: wire::DevTree =
                serde_json::from_slice(&manifest).map_err(|e| Error::Invalid(format!("{MANIFEST_ENTRY}: {e}")))?;
            Tree::check(sent, limits)?
        }
        TREE_REF_ENTRY => {
            let named = String::from_utf8_lossy(&manifest).trim().to_string();
            match offered {
                Some(tree) if tree.hash == named => tree,
                _ => {
                    return Err(Error::Invalid(format!(
                        "tree {named} was not offered just before; send its manifest as {MANIFEST_ENTRY}"
                    )))
                }
            }
        }
        _ => return Err(Error::Invalid(format!("{MANIFEST_ENTRY} or {TREE_REF_ENTRY} must be the tar's first entry"))),
    };
    let sizes: BTreeMap<&str, u64> = tree.files.iter().map(|f| (f.sha256.as_str(), f.size)).collect();
    let (mut files, mut bytes) = (0, 0);
    for entry in entries {
        let entry = entry.map_err(io)?;
        let name = entry.path().map_err(io)?.to_string_lossy().into_owned();
        let Some(sha) = name.strip_prefix(BLOBS_PREFIX).filter(|sha| is_sha256(sha)) else {
            return Err(Error::Invalid(format!("unexpected entry {name:?}: only {BLOBS_PREFIX}<sha256> follow")));
        };
        let Some(&size) = sizes.get(sha) else {
            return Err(Error::Invalid(format!("{name} is not a content of the tree")));
        };
        if entry.size() != size {
            return Err(Error::Invalid(format!("{name} is {} bytes; the manifest says {size}", entry.size())));
        }
        bytes += blobs.put(sha, entry)?;
        files += 1;
    }
    for file in &tree.files {
        if !blobs.has(&file.sha256) {
            return Err(Error::MissingBlob { path: file.path.clone(), sha256: file.sha256.clone() });
        }
    }
    Ok(Received { tree, files, bytes })
}

/// The tree last taken for an app and the build made of it (`<data>/dev/<app>/last.json`):
/// what a release of that build holds, so the next tree's difference can be synced.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Last {
    pub files: Vec<wire::DevFile>,
    pub build: i64,
    /// The mtime the last sync gave its files (seconds since the epoch).
    #[serde(default)]
    pub synced_mtime: u64,
}

impl Last {
    pub fn read(path: &Path) -> Option<Last> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let io = |source| Error::Io { path: path.to_path_buf(), source };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let partial = path.with_extension("partial");
        std::fs::write(&partial, serde_json::to_vec(self).expect("a manifest serialises")).map_err(io)?;
        std::fs::rename(&partial, path).map_err(io)
    }
}

/// The files of `tree` that differ from `last` when they can be copied into a running
/// release instead of building: none removed, none of them a build's input (`Procfile`,
/// `.s2i/`, `.hoist/`, `Dockerfile`) and no new file among `markers` (it could change what
/// detection picks). `None`: it must build.
pub fn sync_plan<'t>(last: &Last, tree: &'t Tree, markers: &[String]) -> Option<Vec<&'t wire::DevFile>> {
    let before: BTreeMap<&str, &wire::DevFile> = last.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let now: BTreeSet<&str> = tree.files.iter().map(|f| f.path.as_str()).collect();
    if before.keys().any(|path| !now.contains(path)) {
        return None;
    }
    let mut changed = Vec::new();
    for file in &tree.files {
        let old = before.get(file.path.as_str());
        if old.is_some_and(|old| old == &file) {
            continue;
        }
        let input = file.path == "Procfile"
            || file.path.starts_with(".s2i/")
            || file.path.starts_with(".hoist/")
            || file.path == "Dockerfile";
        if input || (old.is_none() && markers.contains(&file.path)) {
            return None;
        }
        changed.push(file);
    }
    (!changed.is_empty()).then_some(changed)
}

/// The app's own `.hoist/dev.toml`: `sync = true` says its files may be copied into
/// the running release (assemble copies the source to `/app` unchanged and the process
/// reads it again), `signal = "HUP"` what to send its processes afterwards (gunicorn
/// reloads its workers on HUP).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppDev {
    #[serde(default)]
    pub sync: bool,
    #[serde(default)]
    pub signal: Option<String>,
}

/// The signals `.hoist/dev.toml` may name.
pub const SIGNALS: &[&str] = &["HUP", "USR1", "USR2", "INT", "TERM"];

impl AppDev {
    /// The tree's `.hoist/dev.toml`, if it has one.
    pub fn of(tree: &Tree, blobs: &Blobs) -> Result<Option<AppDev>> {
        let Some(file) = tree.files.iter().find(|f| f.path == ".hoist/dev.toml") else { return Ok(None) };
        let text = std::fs::read_to_string(blobs.path(&file.sha256))
            .map_err(|source| Error::Io { path: PathBuf::from(&file.path), source })?;
        let mut dev: AppDev =
            toml::from_str(&text).map_err(|e| Error::Invalid(format!(".hoist/dev.toml: {}", e.message())))?;
        if let Some(signal) = &mut dev.signal {
            let name = signal.trim().trim_start_matches("SIG").to_ascii_uppercase();
            if !SIGNALS.contains(&name.as_str()) {
                return Err(Error::Invalid(format!(
                    ".hoist/dev.toml: signal {signal:?} is not one of {}",
                    SIGNALS.join(", ")
                )));
            }
            *signal = name;
        }
        Ok(Some(dev))
    }
}

/// The mtime a sync gives its files: now, and always later than the sync before (caches
/// such as Python's `.pyc` compare the source's mtime in whole seconds, and its size).
pub fn sync_mtime(last: &Last) -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    now.max(last.synced_mtime + 1)
}

/// The changed files as a tar to unpack at `/` of a release: under `app/`, owned by the
/// app's user, with `mtime`.
pub fn sync_archive(blobs: &Blobs, files: &[&wire::DevFile], mtime: u64) -> Result<Vec<u8>> {
    let io = |path: PathBuf| move |source| Error::Io { path, source };
    let mut tar = archive::Writer::new(archive::APP_UID);
    tar.set_mtime(mtime);
    for file in files {
        let blob = blobs.path(&file.sha256);
        let data = std::fs::read(&blob).map_err(io(blob))?;
        tar.file(&format!("app/{}", file.path), if file.executable { 0o755 } else { 0o644 }, &data)
            .map_err(io(PathBuf::from(&file.path)))?;
    }
    tar.finish().map_err(io(PathBuf::from("app")))
}

/// An app's file contents by SHA-256 (`<data>/dev/<app>/blobs`).
#[derive(Debug, Clone)]
pub struct Blobs {
    dir: PathBuf,
}

impl Blobs {
    pub fn new(dir: PathBuf) -> Blobs {
        Blobs { dir }
    }

    fn path(&self, sha: &str) -> PathBuf {
        self.dir.join(sha)
    }

    pub fn has(&self, sha: &str) -> bool {
        is_sha256(sha) && self.path(sha).is_file()
    }

    /// Stores `data` as `sha` if its hash is that; its size.
    fn put(&self, sha: &str, mut data: impl Read) -> Result<u64> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let partial = self.dir.join(format!(".{sha}.partial"));
        let mut out = std::fs::File::create(&partial).map_err(io(&partial))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = data.read(&mut buffer).map_err(io(&partial))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            out.write_all(&buffer[..n]).map_err(io(&partial))?;
            size += n as u64;
        }
        let got = hex(&hasher.finalize());
        if got != sha {
            let _ = std::fs::remove_file(&partial);
            return Err(Error::Invalid(format!("{BLOBS_PREFIX}{sha} has the hash {got}")));
        }
        std::fs::rename(&partial, self.path(sha)).map_err(io(&partial))?;
        Ok(size)
    }

    /// Removes every content `tree` does not name (the next change needs only these).
    pub fn keep_only(&self, tree: &Tree) {
        let keep: BTreeSet<&str> = tree.files.iter().map(|f| f.sha256.as_str()).collect();
        let Ok(listed) = std::fs::read_dir(&self.dir) else { return };
        for entry in listed.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep.contains(name.as_str()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// A path as a checkout holds it: relative, `/`-separated, every name one git accepts,
/// not too deep or long.
fn check_path(path: &str) -> Result<()> {
    if path.len() > MAX_PATH_BYTES {
        return Err(receive::Error::TooDeep(format!("a path is longer than {MAX_PATH_BYTES} bytes")).into());
    }
    let names: Vec<&str> = path.split('/').collect();
    if names.len() > MAX_TREE_DEPTH {
        return Err(receive::Error::TooDeep(format!("{path} is deeper than {MAX_TREE_DEPTH} folders")).into());
    }
    if !names.iter().all(|name| receive::is_checkout_name(name)) {
        return Err(receive::Error::BadPath(path.chars().take(200).collect()).into());
    }
    Ok(())
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The tree's identity: the same files give the same hash, whatever order they came in.
fn tree_hash(sorted: &[wire::DevFile]) -> String {
    let mut hasher = Sha256::new();
    for file in sorted {
        hasher.update(file.path.as_bytes());
        hasher.update([0, u8::from(file.executable)]);
        hasher.update(file.sha256.as_bytes());
        hasher.update(b"\n");
    }
    hex(&hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &[u8]) -> wire::DevFile {
        wire::DevFile {
            path: path.to_string(),
            sha256: hex(&Sha256::digest(content)),
            size: content.len() as u64,
            executable: false,
        }
    }

    const LIMITS: SizeLimits = SizeLimits { max_file: 1 << 20, max_total: 4 << 20, max_files: 10 };

    #[test]
    fn trees_are_checked_like_pushes_and_hashed_in_path_order() {
        let a = Tree::check(
            wire::DevTree { files: vec![file("b", b"2"), file("a/x", b"1")], ..Default::default() },
            LIMITS,
        );
        let b = Tree::check(
            wire::DevTree { files: vec![file("a/x", b"1"), file("b", b"2")], ..Default::default() },
            LIMITS,
        );
        assert_eq!(a.unwrap().hash, b.unwrap().hash);
        for bad in ["../x", "/x", "a//b", ".git/config", "a/.git/x", "a\\b", ""] {
            let tree = wire::DevTree { files: vec![file(bad, b"1")], ..Default::default() };
            assert!(Tree::check(tree, LIMITS).is_err(), "{bad:?}");
        }
        let deep = vec!["d"; MAX_TREE_DEPTH + 1].join("/");
        assert!(Tree::check(wire::DevTree { files: vec![file(&deep, b"1")], ..Default::default() }, LIMITS).is_err());
        let many: Vec<_> = (0..11).map(|i| file(&format!("f{i}"), b"1")).collect();
        assert!(Tree::check(wire::DevTree { files: many, ..Default::default() }, LIMITS).is_err());
        let mut big = file("big", b"1");
        big.size = 2 << 20;
        assert!(Tree::check(wire::DevTree { files: vec![big], ..Default::default() }, LIMITS).is_err());
        let both = vec![file("a", b"1"), file("a/b", b"2")];
        assert!(Tree::check(wire::DevTree { files: both, ..Default::default() }, LIMITS).is_err());
        let twice = vec![file("a", b"1"), file("a", b"2")];
        assert!(Tree::check(wire::DevTree { files: twice, ..Default::default() }, LIMITS).is_err());
    }

    #[test]
    fn a_change_applies_to_the_tree_last_offered_only() {
        let offered =
            Tree::check(wire::DevTree { files: vec![file("a", b"1"), file("b", b"2")], ..Default::default() }, LIMITS)
                .unwrap();
        let change = |since: &str| wire::DevTree {
            files: vec![file("a", b"one"), file("c", b"3")],
            removed: vec!["b".to_string()],
            since: Some(since.to_string()),
            ..Default::default()
        };
        let applied = Tree::apply(&offered, change(&offered.hash), LIMITS).unwrap();
        let whole = Tree::check(
            wire::DevTree { files: vec![file("c", b"3"), file("a", b"one")], ..Default::default() },
            LIMITS,
        )
        .unwrap();
        assert_eq!(applied.hash, whole.hash);
        assert!(Tree::apply(&offered, change("0123"), LIMITS).is_err(), "another tree's change");
        let bad =
            wire::DevTree { files: vec![file("../x", b"1")], since: Some(offered.hash.clone()), ..Default::default() };
        assert!(Tree::apply(&offered, bad, LIMITS).is_err(), "a change is checked as a whole tree");
    }

    #[test]
    fn an_apps_dev_toml_may_ask_for_sync_and_a_signal() {
        let dir = std::env::temp_dir().join(format!("hoist-dev-toml-{}", std::process::id()));
        let blobs = Blobs::new(dir.clone());
        let with = |text: &str| {
            let f = file(".hoist/dev.toml", text.as_bytes());
            blobs.put(&f.sha256, text.as_bytes()).unwrap();
            AppDev::of(&Tree::check(wire::DevTree { files: vec![f], ..Default::default() }, LIMITS).unwrap(), &blobs)
        };
        assert_eq!(
            with("sync = true\nsignal = \"SIGhup\"\n").unwrap(),
            Some(AppDev { sync: true, signal: Some("HUP".into()) })
        );
        assert!(with("signal = \"KILL\"\n").is_err());
        assert!(with("sink = true\n").is_err());
        let none = Tree::check(wire::DevTree { files: vec![file("a", b"1")], ..Default::default() }, LIMITS).unwrap();
        assert_eq!(AppDev::of(&none, &blobs).unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_changed_file_syncs_but_removals_inputs_and_new_markers_build() {
        let last = Last { files: vec![file("index.html", b"1"), file("a.css", b"x")], build: 3, synced_mtime: 0 };
        assert!(sync_mtime(&Last { synced_mtime: u64::MAX / 2, ..last.clone() }) == u64::MAX / 2 + 1);
        let check =
            |files: Vec<wire::DevFile>| Tree::check(wire::DevTree { files, ..Default::default() }, LIMITS).unwrap();
        let markers = vec!["index.html".to_string(), "package.json".to_string()];
        let edited = check(vec![file("index.html", b"2"), file("a.css", b"x")]);
        let plan = sync_plan(&last, &edited, &markers).unwrap();
        assert_eq!(plan.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["index.html"]);
        let added = check(vec![file("index.html", b"1"), file("a.css", b"x"), file("b.html", b"b")]);
        assert_eq!(sync_plan(&last, &added, &markers).unwrap().len(), 1, "a new page syncs");
        for builds in [
            vec![file("index.html", b"1")],
            vec![file("index.html", b"1"), file("a.css", b"x"), file("package.json", b"{}")],
            vec![file("index.html", b"1"), file("a.css", b"x"), file("Procfile", b"web: x")],
            vec![file("index.html", b"1"), file("a.css", b"x"), file(".s2i/bin/assemble", b"x")],
            vec![file("index.html", b"1"), file("a.css", b"x")],
        ] {
            assert!(sync_plan(&last, &check(builds.clone()), &markers).is_none(), "{builds:?}");
        }
    }

    #[test]
    fn only_missing_contents_travel_and_a_wrong_hash_is_refused() {
        let dir = std::env::temp_dir().join(format!("hoist-dev-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let blobs = Blobs::new(dir.join("blobs"));
        let tree = Tree::check(
            wire::DevTree {
                files: vec![file("index.html", b"hi"), file("copy.html", b"hi"), file("x", b"x")],
                ..Default::default()
            },
            LIMITS,
        )
        .unwrap();
        assert_eq!(tree.missing(&blobs).len(), 2, "the same content is asked once");
        blobs.put(&file("x", b"x").sha256, &b"x"[..]).unwrap();
        assert_eq!(tree.missing(&blobs), vec![file("x", b"hi").sha256]);
        assert!(blobs.put(&file("x", b"x").sha256, &b"not x"[..]).is_err());
        // A dev build's tar: the manifest, then the one content missing.
        let sent = dir.join("sent.tar");
        let mut tar = archive::Writer::create(&sent, 0).unwrap();
        let manifest = serde_json::to_vec(&wire::DevTree { files: tree.files.clone(), ..Default::default() }).unwrap();
        tar.file(MANIFEST_ENTRY, 0o644, &manifest).unwrap();
        tar.file(&format!("{BLOBS_PREFIX}{}", file("", b"hi").sha256), 0o644, b"hi").unwrap();
        tar.finish().unwrap().flush().unwrap();
        let received = receive(&sent, &blobs, LIMITS, None).unwrap();
        assert_eq!((received.files, received.bytes), (1, 2));
        let source = dir.join("source.tar");
        let files = received.tree.write_tar(&blobs, &source).unwrap();
        assert_eq!(files, ["copy.html", "index.html", "x"]);
        assert_eq!(archive::read_file(&source, "index.html", 10).unwrap().unwrap(), b"hi");
        // The tree offered before is named by its hash, not sent again.
        let by_ref = dir.join("by-ref.tar");
        let mut tar = archive::Writer::create(&by_ref, 0).unwrap();
        tar.file(TREE_REF_ENTRY, 0o644, received.tree.hash.as_bytes()).unwrap();
        tar.finish().unwrap().flush().unwrap();
        assert!(receive(&by_ref, &blobs, LIMITS, None).is_err(), "nothing was offered");
        let again = receive(&by_ref, &blobs, LIMITS, Some(received.tree.clone())).unwrap();
        assert_eq!((again.files, again.tree.hash), (0, received.tree.hash.clone()));
        // Gzipped, as hoist dev sends it.
        let gzipped = dir.join("by-ref.tar.gz");
        let mut gzip =
            flate2::write::GzEncoder::new(std::fs::File::create(&gzipped).unwrap(), flate2::Compression::fast());
        gzip.write_all(&std::fs::read(&by_ref).unwrap()).unwrap();
        gzip.finish().unwrap();
        let unzipped = receive(&gzipped, &blobs, LIMITS, Some(received.tree.clone())).unwrap();
        assert_eq!(unzipped.tree.hash, received.tree.hash);
        blobs.keep_only(
            &Tree::check(wire::DevTree { files: vec![file("x", b"x")], ..Default::default() }, LIMITS).unwrap(),
        );
        assert!(!blobs.has(&file("", b"hi").sha256) && blobs.has(&file("", b"x").sha256));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
