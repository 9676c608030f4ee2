//! `hoist dev APP`: deploys the working tree as it is, then watches it (the `notify`
//! crate) and deploys again on every save — the build and rollout timeline, then the
//! app's output, in one terminal. Only contents hoistd lacks travel: the tree's manifest
//! (path, size, mode, SHA-256) goes first, hoistd answers which contents it needs.
//!
//! What is sent is what `git add -A` would take: `.gitignore`s (with or without a git
//! repository), `.git/info/exclude` and `.hoistignore` are honoured, `.git/` and editor
//! temp files are never sent, and symlinks are skipped.

use crate::client::{exit, Client, Failure};
use hoist_wire as wire;
use reqwest::Method;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// `hoist dev`'s options.
pub struct Options {
    pub app: String,
    pub dir: PathBuf,
    pub create: bool,
    pub down: bool,
    pub debounce: Duration,
}

/// A file as last hashed: kept so an unchanged file (same size and mtime) is not read again.
#[derive(Clone)]
struct Hashed {
    size: u64,
    modified: Option<SystemTime>,
    sha256: String,
    executable: bool,
}

/// The working tree as last seen.
#[derive(Default)]
struct Seen {
    files: BTreeMap<String, Hashed>,
}

pub async fn run(client: Client, options: Options) -> anyhow::Result<()> {
    let root = options.dir.canonicalize().map_err(|e| {
        Failure::new(exit::USAGE, format!("cannot use {} as the working tree: {e}", options.dir.display()))
    })?;
    ensure_app(&client, &options.app, options.create).await?;
    let (tx, mut changes) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if event.kind.is_access() || event.paths.iter().all(|p| is_noise(p)) {
                return;
            }
            let _ = tx.send(());
        }
    })?;
    notify::Watcher::watch(&mut watcher, &root, notify::RecursiveMode::Recursive)?;
    say(&format!("watching {} for app {} (Ctrl-C stops watching; the app keeps running)", root.display(), options.app));

    let mut seen = Seen::default();
    let mut offered: Option<Offered> = None;
    let mut sent: Option<String> = None;
    let mut follower: Option<tokio::task::JoinHandle<()>> = None;
    let mut saved_at = Instant::now();
    let mut first = true;
    loop {
        // Deploy what changed (the first time: everything); an unchanged tree (a save of
        // an ignored file) deploys nothing.
        {
            let (manifest, changed) = {
                let root = root.clone();
                let previous = std::mem::take(&mut seen);
                let (tree, now_seen) = tokio::task::spawn_blocking(move || scan(&root, previous)).await??;
                let changed = tree.1;
                seen = now_seen;
                (tree.0, changed)
            };
            let hash = tree_key(&manifest);
            if sent.as_deref() != Some(hash.as_str()) {
                let what = match (first, changed.as_slice()) {
                    (true, _) => "the working tree".to_string(),
                    (false, [one]) => format!("{one} changed"),
                    (false, [one, two]) => format!("{one} and {two} changed"),
                    (false, [one, rest @ ..]) => format!("{one} and {} more changed", rest.len()),
                    (false, []) => "a file was removed".to_string(),
                };
                match send(&client, &options.app, &root, manifest, &mut offered).await {
                    Ok((taken, wire_bytes)) => {
                        sent = Some(hash);
                        let traffic = format!(
                            "{} of {} files sent, {}; {} with the manifest",
                            taken.received_files,
                            taken.files,
                            bytes(taken.received_bytes),
                            bytes(wire_bytes)
                        );
                        match (taken.build, taken.release) {
                            (Some(build), _) => {
                                say(&format!("{what} → build {build} ({traffic})"));
                                // A newer build supersedes the one followed so far.
                                if let Some(old) = follower.take() {
                                    old.abort();
                                }
                                let followed = follow(client.clone(), options.app.clone(), build, saved_at);
                                follower = Some(tokio::spawn(followed));
                            }
                            (None, release) => say(&format!(
                                "{what} → synced into release {} without a build ({traffic}), live in {:.1} s",
                                release.unwrap_or_default(),
                                saved_at.elapsed().as_secs_f64()
                            )),
                        }
                    }
                    Err(error) => say(&format!("{what}, but the tree was not taken: {error:#}; fix it and save again")),
                }
            }
            first = false;
        }
        // Wait for a save, then for quiet: a burst of saves is one build.
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            got = changes.recv() => if got.is_none() { break },
        }
        saved_at = Instant::now();
        while let Ok(Some(())) = tokio::time::timeout(options.debounce, changes.recv()).await {}
    }
    if let Some(follower) = follower {
        follower.abort();
    }
    drop(watcher);
    if options.down {
        client.json(Method::DELETE, &format!("/api/v1/apps/{}", options.app), None).await?;
        say(&format!("stopped watching; app {} removed (--down)", options.app));
    } else {
        say(&format!("stopped watching; app {} keeps running (hoist dev --down removes it)", options.app));
    }
    Ok(())
}

/// Creates the app when asked to (or when the user says yes on a terminal).
async fn ensure_app(client: &Client, app: &str, create: bool) -> anyhow::Result<()> {
    let response = client.http.get(format!("{}/api/v1/apps/{app}", client.url)).bearer_auth(&client.token).send().await;
    let response = response.map_err(|e| client.unreachable(e))?;
    if response.status() != reqwest::StatusCode::NOT_FOUND {
        Client::checked(response).await?;
        return Ok(());
    }
    let create = create || {
        use std::io::{BufRead, IsTerminal};
        std::io::stdin().is_terminal() && {
            eprint!("app {app} does not exist; create it? [y/N] ");
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim().eq_ignore_ascii_case("y")
        }
    };
    if !create {
        return Err(Failure::new(
            exit::NOT_FOUND,
            format!("no app named {app}; create it with `hoist dev {app} --create` (or `hoist apps create {app}`)"),
        )
        .into());
    }
    client.json(Method::POST, "/api/v1/apps", Some(serde_json::json!({ "name": app }))).await?;
    say(&format!("created app {app}"));
    Ok(())
}

/// Sends the tree: the manifest, then a tar of it and the contents hoistd lacks; what
/// hoistd answered, and the bytes of both requests' bodies.
async fn send(
    client: &Client,
    app: &str,
    root: &Path,
    manifest: wire::DevTree,
    offered: &mut Option<Offered>,
) -> anyhow::Result<(wire::DevBuild, u64)> {
    let path = format!("/api/v1/apps/{app}/dev/missing");
    // What changed since the tree offered before, if hoistd has it; else everything.
    let mut wire_bytes = 0;
    let mut missing = None;
    if let Some(before) = offered.as_ref() {
        let change = before.change(&manifest);
        let body = serde_json::to_value(&change)?;
        wire_bytes += serde_json::to_vec(&body)?.len() as u64;
        match client.typed::<wire::DevMissing>(Method::POST, &path, Some(body)).await {
            Ok(answer) => missing = Some(answer),
            Err(error) if format!("{error:#}").contains("send the whole manifest") => {}
            Err(error) => return Err(error),
        }
    }
    let missing = match missing {
        Some(missing) => missing,
        None => {
            let body = serde_json::to_value(&manifest)?;
            wire_bytes += serde_json::to_vec(&body)?.len() as u64;
            client.typed(Method::POST, &path, Some(body)).await?
        }
    };
    *offered = Some(Offered { tree: missing.tree.clone(), files: manifest.files.clone() });
    let (root, wanted, tree) = (root.to_path_buf(), missing.missing, missing.tree);
    let archive = tokio::task::spawn_blocking(move || upload(&root, &manifest, &tree, &wanted)).await??;
    wire_bytes += archive.len() as u64;
    let response = client
        .http
        .post(format!("{}/api/v1/apps/{app}/dev/builds", client.url))
        .bearer_auth(&client.token)
        .header(reqwest::header::CONTENT_TYPE, "application/x-tar")
        .body(archive)
        .send()
        .await
        .map_err(|e| client.unreachable(e))?;
    let response = Client::checked(response).await?;
    Ok((response.json().await?, wire_bytes))
}

/// The tree hoistd was last offered (its hash as hoistd computed it) and its files.
pub struct Offered {
    tree: String,
    files: Vec<wire::DevFile>,
}

impl Offered {
    /// `now` as a change since this tree: the files changed or added, the paths removed.
    fn change(&self, now: &wire::DevTree) -> wire::DevTree {
        let before: BTreeMap<&str, &wire::DevFile> = self.files.iter().map(|f| (f.path.as_str(), f)).collect();
        let kept: std::collections::BTreeSet<&str> = now.files.iter().map(|f| f.path.as_str()).collect();
        wire::DevTree {
            files: now.files.iter().filter(|f| before.get(f.path.as_str()) != Some(f)).cloned().collect(),
            base: now.base.clone(),
            since: Some(self.tree.clone()),
            removed: self.files.iter().filter(|f| !kept.contains(f.path.as_str())).map(|f| f.path.clone()).collect(),
        }
    }
}

/// The upload, gzipped: `tree.ref` (the tree just offered, by hoistd's hash), then each
/// wanted content once as `blobs/<sha256>`.
fn upload(root: &Path, manifest: &wire::DevTree, tree: &str, wanted: &[String]) -> anyhow::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    append(&mut tar, "tree.ref", tree.as_bytes())?;
    for sha in wanted {
        let Some(file) = manifest.files.iter().find(|f| &f.sha256 == sha) else { continue };
        let data = std::fs::read(root.join(&file.path))?;
        // Changed since it was hashed: the next save sends it again.
        if hex(&Sha256::digest(&data)) != *sha {
            anyhow::bail!("{} changed while it was being sent", file.path);
        }
        append(&mut tar, &format!("blobs/{sha}"), &data)?;
    }
    // tar's 512-byte blocks are most of a small change's bytes; gzip takes them away.
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(&tar.into_inner()?)?;
    Ok(gzip.finish()?)
}

fn append(tar: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, path, data)
}

/// One line of a build's or the app's output, with `prefix`. It is anyone's text: on a
/// terminal only colours pass, as `hoist logs` prints it.
fn print_record(prefix: &str, record: &serde_json::Value) {
    use std::io::IsTerminal;
    let text = record["text"].as_str().unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let _ = match out.is_terminal() {
        true => writeln!(out, "{prefix}{}", crate::terminal_safe(text)),
        false => writeln!(out, "{prefix}{text}"),
    };
}

/// Follows build `id`'s timeline, then the app's output until the next build.
async fn follow(client: Client, app: String, id: i64, saved_at: Instant) {
    let path = format!("/api/v1/apps/{app}/builds/{id}/log?follow=true");
    let end = client.follow(&path, |_, record| print_record("       ", &record)).await;
    let status = match &end {
        Ok(end) => end["status"].as_str().unwrap_or("").to_string(),
        Err(error) => format!("not followed ({error:#})"),
    };
    if status != "succeeded" {
        say(&format!(
            "build {id} {}: the release that was live keeps serving; watching for the next save",
            status.replace('_', " ")
        ));
        return;
    }
    say(&format!("build {id} live in {:.1} s", saved_at.elapsed().as_secs_f64()));
    let path = format!("/api/v1/apps/{app}/logs?follow=true&tail=0");
    let prefix = format!("[{app}] ");
    let _ = client.follow(&path, |_, record| print_record(&prefix, &record)).await;
}

/// The working tree's files and which changed since `previous`: walked as git would add
/// them, each hashed unless its size and mtime are as before.
fn scan(root: &Path, previous: Seen) -> anyhow::Result<((wire::DevTree, Vec<String>), Seen)> {
    use std::os::unix::fs::PermissionsExt;
    let mut seen = Seen::default();
    let mut changed = Vec::new();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(false)
        .require_git(false)
        .add_custom_ignore_filename(".hoistignore")
        .filter_entry(|entry| entry.file_name() != ".git")
        .build();
    for entry in walker {
        let entry = entry?;
        if !entry.file_type().is_some_and(|t| t.is_file()) || is_noise(entry.path()) {
            continue;
        }
        let relative = entry.path().strip_prefix(root)?;
        let Some(path) = relative.to_str().map(str::to_string) else { continue };
        let metadata = entry.metadata()?;
        let (size, modified) = (metadata.len(), metadata.modified().ok());
        let executable = metadata.permissions().mode() & 0o111 != 0;
        let hashed = match previous.files.get(&path) {
            Some(before) if before.size == size && before.modified == modified && modified.is_some() => {
                Hashed { executable, ..before.clone() }
            }
            _ => {
                let sha256 = hash_file(entry.path())?;
                if previous.files.get(&path).is_none_or(|before| before.sha256 != sha256) {
                    changed.push(path.clone());
                }
                Hashed { size, modified, sha256, executable }
            }
        };
        seen.files.insert(path, hashed);
    }
    let files = seen
        .files
        .iter()
        .map(|(path, h)| wire::DevFile {
            path: path.clone(),
            sha256: h.sha256.clone(),
            size: h.size,
            executable: h.executable,
        })
        .collect();
    Ok(((wire::DevTree { files, base: base_commit(root), ..Default::default() }, changed), seen))
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buffer)? {
            0 => return Ok(hex(&hasher.finalize())),
            n => hasher.update(&buffer[..n]),
        }
    }
}

/// The commit the tree is a checkout of, if git says so.
fn base_commit(root: &Path) -> Option<String> {
    let output = std::process::Command::new("git")
        .args(["-C", &root.to_string_lossy(), "rev-parse", "--verify", "-q", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let commit = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (output.status.success() && !commit.is_empty()).then_some(commit)
}

/// Editor temp and backup files and anything under `.git/`: never sent, never a reason
/// to build (vim's `.x.swp` and `4913`, emacs's `#x#` and `.#x`, `x~`).
fn is_noise(path: &Path) -> bool {
    if path.components().any(|c| c.as_os_str() == ".git") {
        return true;
    }
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".swo")
        || name == "4913"
        || name.starts_with(".#")
        || (name.starts_with('#') && name.ends_with('#'))
}

/// What identifies a manifest's content (the server's tree hash is its own).
fn tree_key(manifest: &wire::DevTree) -> String {
    let mut hasher = Sha256::new();
    for file in &manifest.files {
        hasher.update(file.path.as_bytes());
        hasher.update([0, u8::from(file.executable)]);
        hasher.update(file.sha256.as_bytes());
    }
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

/// One line of `hoist dev`'s own: `[dev] 14:02:11 …`.
fn say(text: &str) {
    let now = jiff::Zoned::now().strftime("%H:%M:%S").to_string();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "[dev] {now} {text}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_files_and_git_are_noise() {
        for noisy in [".git/index", "a/.index.js.swp", "a/4913", "x~", "#x#", ".#x", "a/.git/HEAD"] {
            assert!(is_noise(Path::new(noisy)), "{noisy}");
        }
        for kept in ["index.js", ".gitignore", "a/b.txt", ".hoistignore", "git/x"] {
            assert!(!is_noise(Path::new(kept)), "{kept}");
        }
    }

    #[test]
    fn the_scan_honours_ignore_files_without_a_repository_and_reports_changes() {
        let root = std::env::temp_dir().join(format!("hoist-dev-scan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("node_modules/x")).unwrap();
        std::fs::write(root.join(".gitignore"), "node_modules/\n*.log\n").unwrap();
        std::fs::write(root.join(".hoistignore"), "secret.txt\n").unwrap();
        for (path, text) in [("index.js", "1"), ("node_modules/x/a.js", "x"), ("debug.log", "l"), ("secret.txt", "s")] {
            std::fs::write(root.join(path), text).unwrap();
        }
        let ((tree, changed), seen) = scan(&root, Seen::default()).unwrap();
        let paths: Vec<&str> = tree.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, [".gitignore", ".hoistignore", "index.js"]);
        assert_eq!(changed.len(), 3);
        std::fs::write(root.join("debug.log"), "more").unwrap();
        let ((same, changed), seen) = scan(&root, seen).unwrap();
        assert!(changed.is_empty() && tree_key(&same) == tree_key(&tree), "an ignored file changes nothing");
        std::fs::write(root.join("index.js"), "22").unwrap();
        let ((_, changed), _) = scan(&root, seen).unwrap();
        assert_eq!(changed, ["index.js"]);
        let _ = std::fs::remove_dir_all(&root);
    }
}
