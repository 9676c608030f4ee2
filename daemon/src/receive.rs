//! Receive: git over smart HTTP into one bare repo per app, served by the real
//! `git http-backend` as a CGI program; and the pre-receive hook that hands pushed
//! commits to the pipeline and streams the build back as `remote:` lines.
//!
//! How a push flows:
//!
//! ```text
//!  git push ──HTTP──▶ api (auth) ──CGI──▶ git http-backend ──▶ receive-pack
//!                                                              └─ hooks/pre-receive
//!                                                                  = `hoistd hook pre-receive`
//!                                                                  ──POST /internal/v1/receive──▶ api
//!                                                                  ◀── build log lines, outcome ──
//! ```
//! While the hook runs, the pushed objects sit in git's quarantine directory; hoistd
//! reads the commit from there with git2 (as an alternate object directory) and takes
//! a tar of its tree before the hook returns. A failed build makes the hook exit 1, so
//! git rejects the push and the branch does not move.
//!
//! Architecture invariant: only this module runs git or knows its protocol.

use crate::app::AppName;
use crate::archive;
use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio_util::io::ReaderStream;

/// What can go wrong receiving a push.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("git repository of app {app}: {source}")]
    Git { app: String, source: git2::Error },
    #[error("cannot write the repository of app {app} at {path}: {source}")]
    Io { app: String, path: PathBuf, source: std::io::Error },
    #[error("cannot run git http-backend: {0}; install git (tests/env/up does)")]
    Backend(std::io::Error),
    #[error("commit {commit} of app {app} cannot be read: {source}")]
    Commit { app: String, commit: String, source: git2::Error },
    #[error("push refused before building: {0}")]
    TooBig(String),
    #[error("push refused before building: the commit has an entry named {0:?}, which no checkout can hold (an empty, '.', '..' or '.git' name, or one that is not UTF-8); remove it from the history you push")]
    BadPath(String),
    #[error("push refused before building: {0}")]
    TooDeep(String),
    #[error("push refused before building: the commit has more than {max} files and folders (receive.max_files); keep generated and vendored trees out of the repo, or raise the limit")]
    TooManyFiles { max: u64 },
    #[error("cannot fetch from {url}: {message}; check the app's repo URL and credentials")]
    Fetch { url: String, message: String },
}

/// How big a pushed commit may be once unpacked, checked from git's object headers
/// before anything is inflated (a pack of a few MB can hold gigabytes of zeros).
#[derive(Debug, Clone, Copy)]
pub struct SizeLimits {
    /// Bytes of one file.
    pub max_file: u64,
    /// Bytes of all files of the commit.
    pub max_total: u64,
    /// Entries (files, folders, links) of the commit's tree, counted from the tree
    /// objects before anything is exported: a few KiB of trees can name millions of files.
    pub max_files: u64,
}

/// Folders deeper than this are refused: real projects stay far below it, and nothing
/// that unpacks or runs an app copes with thousands of levels.
pub const MAX_TREE_DEPTH: usize = 256;

/// Paths longer than this (bytes, Linux's PATH_MAX) are refused: no checkout can hold them.
pub const MAX_PATH_BYTES: usize = 4096;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The 40 zeros git sends for a ref that is created or deleted.
pub const ZERO_OID: &str = "0000000000000000000000000000000000000000";

/// The bare repositories, one per app: `<root>/<app>.git`.
#[derive(Debug, Clone)]
pub struct Repos {
    root: PathBuf,
}

impl Repos {
    pub fn new(root: PathBuf) -> Repos {
        Repos { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, app: &AppName) -> PathBuf {
        self.root.join(format!("{app}.git"))
    }

    /// Creates the app's bare repo with hoist's pre-receive hook; its `HEAD` names the
    /// deploy branch, so a clone checks that out.
    pub fn create(&self, app: &AppName, deploy_branch: &str) -> Result<()> {
        let path = self.path(app);
        let git = |source| Error::Git { app: app.to_string(), source };
        let repo = git2::Repository::init_bare(&path).map_err(git)?;
        repo.set_head(&format!("refs/heads/{deploy_branch}")).map_err(git)?;
        let mut config = repo.config().map_err(git)?;
        config.set_bool("http.receivepack", true).map_err(git)?;
        config.set_bool("http.uploadpack", true).map_err(git)?;
        // A deploy branch must not be rewritten behind hoist's back silently; force pushes
        // are fine (they deploy), deletions of refs are allowed but never deploy.
        config.set_bool("receive.denyNonFastForwards", false).map_err(git)?;
        let hook = path.join("hooks/pre-receive");
        let io = |source| Error::Io { app: app.to_string(), path: hook.clone(), source };
        std::fs::create_dir_all(path.join("hooks")).map_err(io)?;
        std::fs::write(&hook, PRE_RECEIVE_HOOK).map_err(io)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
        Ok(())
    }

    /// Removes what pushes cut off left in every repo: git's quarantine directories
    /// (`objects/tmp_objdir-incoming-*`) of pushes that never finished. Only safe while no
    /// push runs, i.e. when hoistd starts.
    pub fn remove_stale_quarantines(&self) -> usize {
        let mut removed = 0;
        let Ok(repos) = std::fs::read_dir(&self.root) else { return 0 };
        for repo in repos.flatten() {
            let Ok(objects) = std::fs::read_dir(repo.path().join("objects")) else { continue };
            for entry in objects.flatten() {
                if entry.file_name().to_string_lossy().starts_with("tmp_objdir-incoming-")
                    && std::fs::remove_dir_all(entry.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Moves a deleted app's repo out of the way (a new app of the same name gets a new
    /// one) into `.deleted/`, and returns where it went: the caller removes it once no
    /// `git` runs in it. Removing it under a running push made git die (`Unable to read
    /// current working directory`) before the hook's last lines, the reason the push is
    /// refused, reached the pusher.
    pub fn retire(&self, app: &AppName) -> Result<Option<PathBuf>> {
        let path = self.path(app);
        let retired = self.root.join(RETIRED);
        let io = |path: &Path, source| Error::Io { app: app.to_string(), path: path.to_path_buf(), source };
        std::fs::create_dir_all(&retired).map_err(|e| io(&retired, e))?;
        let to = retired.join(format!("{app}.git.{}", crate::auth::new_token()));
        match std::fs::rename(&path, &to) {
            Ok(()) => Ok(Some(to)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(io(&path, source)),
        }
    }

    /// Removes the repos of deleted apps that waited for their pushes: all of them, so
    /// only when no push runs (when hoistd starts).
    pub fn remove_retired(&self) {
        let _ = std::fs::remove_dir_all(self.root.join(RETIRED));
    }
}

/// The folder under the repos' root where deleted apps' repos wait for their last push;
/// not an app name, so no git request reaches it.
const RETIRED: &str = ".deleted";

/// The hook every app repo gets. hoistd passes the program and where to call back in
/// the environment of `git http-backend`, which git hands down to its hooks.
const PRE_RECEIVE_HOOK: &str = "#!/bin/sh
# Installed by hoistd: hands the pushed commit to hoist's pipeline and prints the build.
if [ -z \"$HOIST_HOOK_PROGRAM\" ]; then
  echo 'hoist: this repository only accepts pushes through hoistd' >&2
  exit 1
fi
exec \"$HOIST_HOOK_PROGRAM\" hook pre-receive
";

/// What the hook sends to hoistd.
#[derive(Debug, Serialize, Deserialize)]
pub struct HookRequest {
    pub app: String,
    /// `<old> <new> <ref>` lines from git, parsed.
    pub updates: Vec<RefUpdate>,
    /// Where the pushed objects are while the hook runs (git's quarantine).
    pub object_dirs: Vec<PathBuf>,
    /// The id hoistd gave the `git` it started for this push (`HOIST_PUSH`): whose push
    /// it is.
    #[serde(default)]
    pub push: String,
}

/// One ref a push updates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefUpdate {
    pub old: String,
    pub new: String,
    pub name: String,
}

/// Parses the pre-receive hook's standard input.
pub fn parse_ref_updates(input: &str) -> Vec<RefUpdate> {
    input
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            Some(RefUpdate { old: parts.next()?.into(), new: parts.next()?.into(), name: parts.next()?.into() })
        })
        .collect()
}

/// A message from hoistd to the hook: a line to print, or how the push ends.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HookMessage {
    Line { line: String },
    End { ok: bool, message: String },
}

/// The tree of `commit` as a deterministic tar, and the paths of its files.
/// `object_dirs` are searched too (the quarantine of a push in progress).
pub fn export_commit(
    repo_path: &Path,
    object_dirs: &[PathBuf],
    app: &AppName,
    commit: &str,
    limits: SizeLimits,
    dest: &Path,
) -> Result<Vec<String>> {
    let commit_error = |source| Error::Commit { app: app.to_string(), commit: commit.to_string(), source };
    let repo = git2::Repository::open_bare(repo_path).map_err(|source| Error::Git { app: app.to_string(), source })?;
    let odb = repo.odb().map_err(commit_error)?;
    for dir in object_dirs {
        odb.add_disk_alternate(&dir.to_string_lossy()).map_err(commit_error)?;
    }
    let oid = git2::Oid::from_str(commit).map_err(commit_error)?;
    let tree = repo.find_commit(oid).and_then(|c| c.tree()).map_err(commit_error)?;
    let mut files = Vec::new();
    let entries = list_tree(&repo, &tree, limits).map_err(|e| match e {
        ListError::Git(source) => commit_error(source),
        ListError::Refused(error) => error,
    })?;
    let mut total: u64 = 0;
    for (path, mode, id) in &entries {
        if !matches!(mode, 0o100644 | 0o100755 | 0o120000) {
            continue;
        }
        let (size, _) = odb.read_header(*id).map_err(commit_error)?;
        let size = size as u64;
        if size > limits.max_file {
            return Err(Error::TooBig(format!(
                "{path} is {} unpacked; a file may be at most {} (receive.max_file_mb); keep big files out of the repo",
                mib(size),
                mib(limits.max_file)
            )));
        }
        total += size;
        if total > limits.max_total {
            return Err(Error::TooBig(format!(
                "the commit's files are more than {} unpacked (receive.max_push_mb); keep big files out of the repo",
                mib(limits.max_total)
            )));
        }
    }
    let dest_io = |source| Error::Io { app: app.to_string(), path: dest.to_path_buf(), source };
    let mut tar = archive::Writer::create(dest, 0).map_err(dest_io)?;
    let mut big_blobs: Option<std::io::Result<BlobReader>> = None;
    for (path, mode, id) in entries {
        let io = |source| Error::Io { app: app.to_string(), path: PathBuf::from(&path), source };
        match mode {
            0o040000 => tar.dir(&format!("{path}/")).map_err(io)?,
            0o120000 => {
                let blob = repo.find_blob(id).map_err(commit_error)?;
                tar.symlink(&path, &String::from_utf8_lossy(blob.content())).map_err(io)?;
                files.push(path);
            }
            0o100644 | 0o100755 => {
                let file_mode = if mode == 0o100755 { 0o755 } else { 0o644 };
                let (size, _) = odb.read_header(id).map_err(commit_error)?;
                if size as u64 > STREAM_ABOVE {
                    // libgit2 inflates a blob whole; git streams it through a pipe instead.
                    let reader = big_blobs.get_or_insert_with(|| BlobReader::start(repo_path, object_dirs));
                    let reader = reader.as_mut().map_err(|e| io(std::io::Error::other(e.to_string())))?;
                    reader.copy_into(&mut tar, &path, file_mode, id, size as u64).map_err(io)?;
                } else {
                    let blob = repo.find_blob(id).map_err(commit_error)?;
                    tar.file(&path, file_mode, blob.content()).map_err(io)?;
                }
                files.push(path);
            }
            // Submodules (0o160000) have no content in this repo.
            _ => {}
        }
    }
    // Small blobs are read whole (at most STREAM_ABOVE at a time), big ones streamed; the
    // archive itself goes to `dest`.
    tar.finish().and_then(|mut file| file.flush()).map_err(dest_io)?;
    Ok(files)
}

/// Why listing a tree stopped.
enum ListError {
    Git(git2::Error),
    Refused(Error),
}

/// Every entry of `root` (path, mode, object id) in pre-order, walked with a stack of our
/// own rather than libgit2's recursive walk (a tree 20,000 folders deep overflows a
/// thread's stack), refusing bad names, deep folders, long paths and too many entries as
/// soon as they are seen.
fn list_tree(
    repo: &git2::Repository,
    root: &git2::Tree<'_>,
    limits: SizeLimits,
) -> Result<Vec<(String, i32, git2::Oid)>, ListError> {
    let mut entries = Vec::new();
    // Each frame: a folder's path prefix ("" or "a/b/"), its tree, the next entry's index.
    let mut stack: Vec<(String, git2::Tree<'_>, usize)> = vec![(String::new(), root.clone(), 0)];
    while let Some((prefix, tree, index)) = stack.last_mut() {
        // Owned copies, so the entry (which borrows the tree) is gone before the stack grows.
        let next = tree.get(*index).map(|entry| {
            let name = entry.name().ok().filter(|name| is_checkout_name(name)).map(str::to_string);
            (name, String::from_utf8_lossy(entry.name_bytes()).into_owned(), entry.filemode(), entry.id())
        });
        let Some((name, raw_name, mode, id)) = next else {
            stack.pop();
            continue;
        };
        *index += 1;
        let Some(name) = name else {
            return Err(ListError::Refused(Error::BadPath(shown_path(&format!("{prefix}{raw_name}")))));
        };
        let path = format!("{prefix}{name}");
        if path.len() > MAX_PATH_BYTES {
            return Err(ListError::Refused(Error::TooDeep(format!(
                "a path is longer than {MAX_PATH_BYTES} bytes ({}); no checkout can hold it",
                shown_path(&path)
            ))));
        }
        if entries.len() as u64 >= limits.max_files {
            return Err(ListError::Refused(Error::TooManyFiles { max: limits.max_files }));
        }
        if mode == 0o040000 {
            if stack.len() >= MAX_TREE_DEPTH {
                return Err(ListError::Refused(Error::TooDeep(format!(
                    "folders nest more than {MAX_TREE_DEPTH} deep ({}); flatten the tree",
                    shown_path(&path)
                ))));
            }
            let subtree = repo.find_tree(id).map_err(ListError::Git)?;
            entries.push((path.clone(), mode, id));
            stack.push((format!("{path}/"), subtree, 0));
        } else {
            entries.push((path, mode, id));
        }
    }
    Ok(entries)
}

/// A pushed path as a message shows it: at most 120 bytes, no control characters (it
/// reaches the pusher's terminal).
fn shown_path(path: &str) -> String {
    crate::logs::printable(path, 120)
}

/// Blobs bigger than this are streamed out of git rather than read whole.
const STREAM_ABOVE: u64 = 4 * 1024 * 1024;

/// `git cat-file --batch` on the repo (and the push's quarantine): big blobs stream from
/// its stdout into the archive, so hoistd never holds one whole.
struct BlobReader {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
}

impl BlobReader {
    fn start(repo: &Path, object_dirs: &[PathBuf]) -> std::io::Result<BlobReader> {
        let alternates = std::env::join_paths(object_dirs).map_err(std::io::Error::other)?;
        let mut child = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(repo)
            .args(["cat-file", "--batch"])
            .env("GIT_ALTERNATE_OBJECT_DIRECTORIES", alternates)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let input = child.stdin.take().expect("piped");
        let output = std::io::BufReader::new(child.stdout.take().expect("piped"));
        Ok(BlobReader { child, input, output })
    }

    fn copy_into<W: Write>(
        &mut self,
        tar: &mut archive::Writer<W>,
        path: &str,
        mode: u32,
        id: git2::Oid,
        size: u64,
    ) -> std::io::Result<()> {
        use std::io::{BufRead, Read};
        writeln!(self.input, "{id}")?;
        self.input.flush()?;
        let mut header = String::new();
        self.output.read_line(&mut header)?;
        // "<oid> blob <size>"
        let told: Option<u64> = header.split_whitespace().nth(2).and_then(|s| s.parse().ok());
        if told != Some(size) {
            return Err(std::io::Error::other(format!("git cat-file said {header:?} for {id}")));
        }
        tar.file_from(path, mode, size, (&mut self.output).take(size))?;
        let mut newline = [0u8; 1];
        self.output.read_exact(&mut newline)
    }
}

impl Drop for BlobReader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mib(bytes: u64) -> String {
    match bytes {
        b if b >= 1024 * 1024 => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
        b if b >= 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}

/// How long a fetch may take and how much it may download.
#[derive(Debug, Clone, Copy)]
pub struct FetchLimits {
    pub timeout: std::time::Duration,
    /// Bytes of pack git may write; past this the fetch is stopped.
    pub max_bytes: u64,
}

/// Fetches `commit` of branch `branch` from the app's upstream repository `url` into the
/// app's repo (as `refs/hoist/upstream/<branch>`), with `token` (if any) sent as HTTP basic
/// credentials through git's environment, never on a command line or in a URL. A host
/// that never answers or sends too much is cut off by `limits`.
pub async fn fetch_commit(
    repo: &Path,
    url: &str,
    branch: &str,
    commit: &str,
    token: Option<&str>,
    limits: FetchLimits,
) -> Result<()> {
    let fetch_error = |message: String| Error::Fetch { url: url.to_string(), message };
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let run = |args: Vec<String>| {
        let mut command = Command::new("git");
        command
            .arg("--git-dir")
            .arg(repo)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group, so a fetch that is stopped takes its helpers
            // (git-remote-http, ssh) with it.
            .process_group(0)
            .env("GIT_TERMINAL_PROMPT", "0")
            // ssh never asks, never trusts a new host key silently, never waits forever.
            .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o ConnectTimeout=20")
            // A server that stops sending is given up on (curl's low-speed limit).
            .env("GIT_HTTP_LOW_SPEED_LIMIT", "1000")
            .env("GIT_HTTP_LOW_SPEED_TIME", "30");
        if let Some(token) = token {
            use base64::Engine;
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
            command
                .env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env("GIT_CONFIG_VALUE_0", format!("Authorization: Basic {basic}"));
        }
        command
    };
    let fetch = |what: String| {
        let refspec = what;
        let command = run(vec!["fetch".into(), "--no-tags".into(), "--quiet".into(), "--".into(), url.into(), refspec]);
        bounded(command, repo, deadline, limits, url)
    };
    let refspec = format!("+refs/heads/{branch}:refs/hoist/upstream/{branch}");
    let stderr = fetch(refspec).await?;
    if let Some(stderr) = stderr {
        return Err(fetch_error(git_failure(&stderr)));
    }
    let has = |sha: &str| {
        let sha = format!("{sha}^{{commit}}");
        async move { matches!(run(vec!["cat-file".into(), "-e".into(), sha]).status().await, Ok(s) if s.success()) }
    };
    if has(commit).await {
        return Ok(());
    }
    // The branch moved on since the event: ask for the commit itself (servers allow any
    // reachable commit over protocol v2).
    let stderr = fetch(commit.to_string()).await?;
    if stderr.is_none() && has(commit).await {
        Ok(())
    } else {
        Err(fetch_error(format!("the repository has no commit {commit} on {branch}")))
    }
}

/// Runs a `git fetch` until `deadline`, stopping it when the pack it writes grows past
/// `limits.max_bytes`. `Ok(None)` when it succeeded, `Ok(Some(stderr))` when git failed.
async fn bounded(
    mut command: Command,
    repo: &Path,
    deadline: tokio::time::Instant,
    limits: FetchLimits,
    url: &str,
) -> Result<Option<String>> {
    let fetch_error = |message: String| Error::Fetch { url: url.to_string(), message };
    let mut child = command.spawn().map_err(|e| fetch_error(format!("cannot run git: {e}")))?;
    let mut stderr = child.stderr.take().expect("piped");
    let read_stderr = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut text = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut text).await;
        String::from_utf8_lossy(&text).into_owned()
    });
    let packs = repo.join("objects/pack");
    let group = child.id();
    let stop = |child: &mut tokio::process::Child| {
        // The whole group: git's helpers do not die with git.
        if let Some(group) = group.and_then(|group| rustix::process::Pid::from_raw(group as i32)) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = child.start_kill();
    };
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.map_err(|e| fetch_error(format!("cannot run git: {e}")))?,
            _ = tokio::time::sleep_until(deadline) => {
                stop(&mut child);
                let _ = child.wait().await;
                return Err(fetch_error(format!(
                    "the fetch took longer than {} s (receive.fetch_timeout_secs) and was stopped; check that the host answers",
                    limits.timeout.as_secs()
                )));
            }
            _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {
                if incoming_pack_bytes(&packs) > limits.max_bytes {
                    stop(&mut child);
                    let _ = child.wait().await;
                    return Err(fetch_error(format!(
                        "the fetch downloaded more than {} (receive.max_push_mb) and was stopped; keep big files out of the repo",
                        mib(limits.max_bytes)
                    )));
                }
            }
        }
    };
    let stderr = read_stderr.await.unwrap_or_default();
    Ok((!status.success()).then_some(stderr))
}

/// Bytes of the packs git is receiving now (`objects/pack/tmp_pack_*`).
fn incoming_pack_bytes(packs: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(packs) else { return 0 };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("tmp_pack_"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// What a failed `git fetch` said that matters: its `fatal:`/`error:` lines (git ends
/// with generic advice such as "… and the repository exists."), control characters
/// removed, clipped.
pub fn git_failure(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let meaningful: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("fatal:") || l.starts_with("error:") || l.starts_with("remote:"))
        .filter(|l| !l.contains("Please make sure you have the correct access rights"))
        .collect();
    let chosen = if meaningful.is_empty() { lines } else { meaningful };
    let text = if chosen.is_empty() { "git fetch failed".to_string() } else { chosen.join("; ") };
    crate::logs::printable(&text, 500)
}

/// Where branch `name` (`refs/heads/…`) of the repo at `repo_path` points, if anywhere.
pub fn branch_head(repo_path: &Path, name: &str) -> Option<String> {
    let repo = git2::Repository::open_bare(repo_path).ok()?;
    let reference = repo.find_reference(name).ok()?;
    reference.target().map(|oid| oid.to_string())
}

/// What hoistd tells `git http-backend` (and so the hook) about itself.
#[derive(Debug, Clone)]
pub struct HookEnv {
    /// The program the hook runs: hoistd itself.
    pub program: PathBuf,
    /// `http://…/internal/v1/receive`.
    pub url: String,
    pub token: String,
}

/// A git smart-HTTP request for one app, to hand to `git http-backend`.
pub struct GitRequest {
    pub app: AppName,
    /// Path below the repo, e.g. `info/refs` or `git-receive-pack`.
    pub path: String,
    pub method: Method,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Body,
    pub remote_user: String,
    pub remote_addr: String,
    /// The push's id (`HOIST_PUSH`, sent back by the hook) and what keeps it registered
    /// until `git` ends.
    pub push: String,
    pub held: Box<dyn std::any::Any + Send>,
}

/// `git` with a clean environment and what hoist's pre-receive hook needs to reach
/// hoistd for push `push` of `app`: the one setup of both ways in (HTTP and SSH).
fn git_with_hook(hook: &HookEnv, app: &AppName, push: &str) -> Command {
    let mut command = Command::new("git");
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOIST_HOOK_PROGRAM", &hook.program)
        .env("HOIST_HOOK_URL", &hook.url)
        .env("HOIST_HOOK_TOKEN", &hook.token)
        .env("HOIST_APP", app.as_str())
        .env("HOIST_PUSH", push);
    if let Some(home) = std::env::var_os("HOME") {
        command.env("HOME", home);
    }
    command
}

/// Runs `git http-backend` as a CGI program for `request` and streams its answer.
pub async fn http_backend(repos: &Repos, hook: &HookEnv, request: GitRequest) -> Result<Response> {
    let mut command = git_with_hook(hook, &request.app, &request.push);
    command
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", repos.root())
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", format!("/{}.git/{}", request.app, request.path))
        .env("REQUEST_METHOD", request.method.as_str())
        .env("QUERY_STRING", &request.query)
        .env("REMOTE_USER", &request.remote_user)
        .env("REMOTE_ADDR", &request.remote_addr)
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in &request.headers {
        let Ok(value) = value.to_str() else { continue };
        match name.as_str() {
            "content-type" => command.env("CONTENT_TYPE", value),
            "content-length" => command.env("CONTENT_LENGTH", value),
            "authorization" => continue,
            other => command.env(format!("HTTP_{}", other.to_ascii_uppercase().replace('-', "_")), value),
        };
    }
    let mut child = command.spawn().map_err(Error::Backend)?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let body = request.body;
    tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        while let Ok(Some(chunk)) = stream.try_next().await {
            if stdin.write_all(&chunk).await.is_err() {
                break;
            }
        }
        // Dropping stdin closes it: http-backend reads to EOF when there is no length.
    });
    let stderr = child.stderr.take().expect("stderr is piped");
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::warn!(target: "hoist::git", "{line}");
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let held = request.held;
    tokio::spawn(async move {
        let _ = child.wait().await;
        drop(held);
    });

    let mut response = Response::builder();
    let mut status = StatusCode::OK;
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).await.map_err(Error::Backend)? == 0 {
            break;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().and_then(|c| c.parse().ok());
            status = code.and_then(|c| StatusCode::from_u16(c).ok()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else if let (Ok(name), Ok(value)) =
            (axum::http::HeaderName::from_bytes(name.as_bytes()), axum::http::HeaderValue::from_str(value))
        {
            response = response.header(name, value);
        } else {
            tracing::warn!(target: "hoist::git", line, "git http-backend sent a malformed header line; skipped");
        }
    }
    let body = Body::from_stream(ReaderStream::new(stdout));
    response
        .status(status)
        .body(body)
        .map_err(|e| Error::Backend(std::io::Error::other(format!("git http-backend's answer is malformed: {e}"))))
}

/// Which git program an SSH client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SshService {
    ReceivePack,
    UploadPack,
}

/// What an SSH `exec` request asks for, parsed: `git-receive-pack '/web1.git'` (also
/// `git receive-pack`, with or without quotes, leading slash or `.git`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshCommand {
    pub service: SshService,
    pub app: String,
}

/// Parses an SSH exec command; anything but a git pack service for one repo path is
/// refused with what is accepted.
pub fn parse_ssh_command(command: &str) -> std::result::Result<SshCommand, String> {
    let refuse = || {
        format!(
            "hoist serves only git pushes and fetches over SSH (git-receive-pack or git-upload-pack of /APP.git); {:?} is not one",
            command.chars().take(80).collect::<String>()
        )
    };
    let (program, rest) = if let Some(rest) = command.strip_prefix("git-receive-pack ") {
        (SshService::ReceivePack, rest)
    } else if let Some(rest) = command.strip_prefix("git receive-pack ") {
        (SshService::ReceivePack, rest)
    } else if let Some(rest) = command.strip_prefix("git-upload-pack ") {
        (SshService::UploadPack, rest)
    } else if let Some(rest) = command.strip_prefix("git upload-pack ") {
        (SshService::UploadPack, rest)
    } else {
        return Err(refuse());
    };
    let rest = rest.trim();
    let path = match rest.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        Some(inner) => inner,
        None => rest,
    };
    // One path segment: the app's name, nothing a shell or git would read otherwise.
    let path = path.strip_prefix('/').unwrap_or(path);
    let path = path.strip_prefix("~/").unwrap_or(path);
    let path = path.strip_suffix('/').unwrap_or(path);
    let name = path.strip_suffix(".git").unwrap_or(path);
    if AppName::parse(name).is_err() {
        return Err(refuse());
    }
    Ok(SshCommand { service: program, app: name.to_string() })
}

/// Runs `git receive-pack` or `git upload-pack` for an SSH session on the app's repo,
/// with the same hook and the same environment as a push over HTTP: the pre-receive hook
/// hands the push to hoistd's one receive path. The session's channel is `input`
/// (stdin), `output` (stdout) and `errors` (stderr); returns git's exit code.
pub async fn serve_ssh<I, O, E>(
    repos: &Repos,
    hook: &HookEnv,
    app: &AppName,
    service: SshService,
    push: &str,
    mut input: I,
    mut output: O,
    mut errors: E,
) -> Result<i32>
where
    I: tokio::io::AsyncRead + Unpin + Send + 'static,
    O: tokio::io::AsyncWrite + Unpin + Send + 'static,
    E: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let program = match service {
        SshService::ReceivePack => "receive-pack",
        SshService::UploadPack => "upload-pack",
    };
    let mut command = git_with_hook(hook, app, push);
    command
        .arg(program)
        .arg(repos.path(app))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(Error::Backend)?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let feed = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut input, &mut stdin).await;
    });
    let out = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut stdout, &mut output).await;
        let _ = output.flush().await;
    });
    let err = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut stderr, &mut errors).await;
        let _ = errors.flush().await;
    });
    let status = child.wait().await.map_err(Error::Backend)?;
    let _ = out.await;
    let _ = err.await;
    feed.abort();
    Ok(status.code().unwrap_or(1))
}

/// Whether a tree entry's name can be a file in a checkout: git's own `mktree` takes
/// `..` and `.git`, which would escape or confuse the build's source folder.
pub fn is_checkout_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.eq_ignore_ascii_case(".git")
        && !name.contains(['/', '\\', '\0'])
}

/// Whether git takes `branch` as a branch name (`refs/heads/<branch>`).
pub fn is_valid_branch_name(branch: &str) -> bool {
    git2::Reference::is_valid_name(&format!("refs/heads/{branch}"))
}

/// The hook side: runs inside git's pre-receive, talks to hoistd, prints what it says.
/// Returns the exit code for the hook.
pub async fn run_pre_receive_hook() -> i32 {
    use tokio::io::AsyncReadExt;
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    let (url, token, app, push) = (env("HOIST_HOOK_URL"), env("HOIST_HOOK_TOKEN"), env("HOIST_APP"), env("HOIST_PUSH"));
    if url.is_empty() || app.is_empty() {
        println!("hoist: the pre-receive hook runs only inside a push to hoistd");
        return 1;
    }
    let mut input = String::new();
    if let Err(e) = tokio::io::stdin().read_to_string(&mut input).await {
        println!("hoist: cannot read the pushed refs: {e}");
        return 1;
    }
    let mut object_dirs = Vec::new();
    for name in ["GIT_QUARANTINE_PATH", "GIT_OBJECT_DIRECTORY"] {
        if let Some(dir) = std::env::var_os(name) {
            object_dirs.push(PathBuf::from(dir));
        }
    }
    if let Some(alternates) = std::env::var_os("GIT_ALTERNATE_OBJECT_DIRECTORIES") {
        object_dirs.extend(std::env::split_paths(&alternates));
    }
    let request = HookRequest { app, updates: parse_ref_updates(&input), object_dirs, push };
    let response = reqwest::Client::new().post(&url).header("x-hoist-hook-token", token).json(&request).send().await;
    let response = match response {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            // hoistd's errors are JSON `{"error": "…"}`: show the message itself.
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| text.trim().to_string());
            println!("hoist: hoistd refused the push ({status}): {message}");
            return 1;
        }
        Err(e) => {
            println!("hoist: cannot reach hoistd at {url}: {e}");
            return 1;
        }
    };
    let mut stream = response.bytes_stream();
    let mut buffer = Vec::new();
    loop {
        let chunk = match stream.try_next().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                println!("hoist: lost the connection to hoistd: {e}; see `hoist builds` for how the build ended");
                return 1;
            }
        };
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            match serde_json::from_slice::<HookMessage>(&line) {
                Ok(HookMessage::Line { line }) => println!("{line}"),
                Ok(HookMessage::End { ok, message }) => {
                    if !message.is_empty() {
                        println!("{message}");
                    }
                    return if ok { 0 } else { 1 };
                }
                Err(_) => println!("{}", String::from_utf8_lossy(&line).trim_end()),
            }
        }
    }
    println!("hoist: hoistd ended the push without a result; see `hoist builds` for how the build ended");
    1
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ssh_commands_are_git_pack_services_of_one_app() {
        let receive = |app: &str| Ok(SshCommand { service: SshService::ReceivePack, app: app.to_string() });
        assert_eq!(parse_ssh_command("git-receive-pack '/web1.git'"), receive("web1"));
        assert_eq!(parse_ssh_command("git-receive-pack 'web1.git'"), receive("web1"));
        assert_eq!(parse_ssh_command("git receive-pack '/web1'"), receive("web1"));
        assert_eq!(parse_ssh_command("git-receive-pack '~/web1.git/'"), receive("web1"));
        assert_eq!(
            parse_ssh_command("git-upload-pack '/web1.git'"),
            Ok(SshCommand { service: SshService::UploadPack, app: "web1".into() })
        );
        for refused in [
            "",
            "ls /",
            "sh -c 'git-receive-pack web1'",
            "git-receive-pack '/../../etc.git'",
            "git-receive-pack '/web1.git'; rm -rf /",
            "git-receive-pack '/a/b.git'",
            "git-upload-archive '/web1.git'",
            "git-receive-pack '/WEB1.git'",
            "git-receive-pack '/web1.git' --upload-pack=x",
        ] {
            assert!(parse_ssh_command(refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn ref_updates() {
        let input = format!("{ZERO_OID} abc refs/heads/main\nabc def refs/heads/feature\n\n");
        let updates = parse_ref_updates(&input);
        assert_eq!(updates.len(), 2);
        assert_eq!(updates[0], RefUpdate { old: ZERO_OID.into(), new: "abc".into(), name: "refs/heads/main".into() });
        assert_eq!(updates[1].name, "refs/heads/feature");
    }

    #[test]
    fn a_failed_fetch_says_what_matters() {
        let stderr = "fatal: could not read Username for 'https://github.com': terminal prompts disabled\n\
                      fatal: Could not read from remote repository.\n\n\
                      Please make sure you have the correct access rights\nand the repository exists.\n";
        let said = git_failure(stderr);
        assert!(said.starts_with("fatal: could not read Username"), "{said}");
        assert!(!said.contains("and the repository exists"), "{said}");
        assert_eq!(git_failure("weird\x1b]52;c;x\x07 text"), "weird ]52;c;x  text");
        assert_eq!(git_failure(""), "git fetch failed");
    }

    #[test]
    fn hook_messages_round_trip() {
        let line: HookMessage = serde_json::from_str(r#"{"line":"-----> Building"}"#).unwrap();
        assert!(matches!(line, HookMessage::Line { line } if line == "-----> Building"));
        let end: HookMessage = serde_json::from_str(r#"{"ok":false,"message":"no"}"#).unwrap();
        assert!(matches!(end, HookMessage::End { ok: false, .. }));
    }

    #[test]
    fn a_deleted_apps_repo_moves_aside_and_a_new_one_takes_its_name() {
        let root = std::env::temp_dir().join(format!("hoist-retire-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let repos = Repos::new(root.clone());
        let app = AppName::parse("web1").unwrap();
        repos.create(&app, "main").unwrap();
        let retired = repos.retire(&app).unwrap().expect("the repo moved");
        assert!(retired.join("hooks/pre-receive").exists(), "a push still running in it finds its repo");
        assert!(!repos.path(&app).exists());
        repos.create(&app, "main").unwrap();
        assert!(repos.path(&app).join("hooks/pre-receive").exists());
        assert_eq!(repos.retire(&AppName::parse("gone").unwrap()).unwrap(), None);
        repos.remove_retired();
        assert!(!retired.exists() && repos.path(&app).exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn commits_export_with_their_modes() {
        let dir = std::env::temp_dir().join(format!("hoist-export-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let repo = git2::Repository::init_bare(&dir).unwrap();
        let index_html = repo.blob(b"<h1>hi</h1>").unwrap();
        let script = repo.blob(b"#!/bin/sh\n").unwrap();
        let mut bin = repo.treebuilder(None).unwrap();
        bin.insert("assemble", script, 0o100755).unwrap();
        let bin = bin.write().unwrap();
        let mut s2i = repo.treebuilder(None).unwrap();
        s2i.insert("bin", bin, 0o040000).unwrap();
        let s2i = s2i.write().unwrap();
        let big: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let big_blob = repo.blob(&big).unwrap();
        let mut root = repo.treebuilder(None).unwrap();
        root.insert("index.html", index_html, 0o100644).unwrap();
        root.insert("big.bin", big_blob, 0o100644).unwrap();
        root.insert(".s2i", s2i, 0o040000).unwrap();
        let tree = repo.find_tree(root.write().unwrap()).unwrap();
        let who = git2::Signature::now("t", "t@example.invalid").unwrap();
        let commit = repo.commit(None, &who, &who, "m", &tree, &[]).unwrap();
        let app = AppName::parse("web1").unwrap();
        let roomy = SizeLimits { max_file: 8 << 20, max_total: 8 << 20, max_files: 100 };
        let tar = dir.join("source.tar");
        let mut files = export_commit(&dir, &[], &app, &commit.to_string(), roomy, &tar).unwrap();
        files.sort();
        assert_eq!(files, [".s2i/bin/assemble", "big.bin", "index.html"]);
        assert_eq!(archive::read_file(&tar, "index.html", archive::SMALL_FILE_MAX).unwrap().unwrap(), b"<h1>hi</h1>");
        assert!(archive::read_file(&tar, "big.bin", 8 << 20).unwrap().unwrap() == big, "a streamed blob arrives whole");
        let missing = export_commit(&dir, &[], &app, &"1".repeat(40), roomy, &tar).unwrap_err().to_string();
        assert!(missing.contains("cannot be read"), "{missing}");
        let tight = SizeLimits { max_file: 5, max_total: 1 << 20, max_files: 100 };
        let refused = export_commit(&dir, &[], &app, &commit.to_string(), tight, &tar).unwrap_err().to_string();
        assert!(refused.contains("is 10 bytes unpacked; a file may be at most 5 bytes"), "{refused}");
        let tight = SizeLimits { max_file: 8 << 20, max_total: 15, max_files: 100 };
        let refused = export_commit(&dir, &[], &app, &commit.to_string(), tight, &tar).unwrap_err().to_string();
        assert!(refused.contains("more than 15 bytes unpacked (receive.max_push_mb)"), "{refused}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A bare repo in a fresh temp dir, and a commit of the tree `make_tree` writes.
    fn repo_with_tree(label: &str, make_tree: impl FnOnce(&git2::Repository) -> git2::Oid) -> (tempdir::Dir, String) {
        let dir = tempdir::Dir::new(label);
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let tree = repo.find_tree(make_tree(&repo)).unwrap();
        let who = git2::Signature::now("t", "t@example.invalid").unwrap();
        let commit = repo.commit(None, &who, &who, "m", &tree, &[]).unwrap();
        (dir, commit.to_string())
    }

    /// `depth` folders named `d`, one inside the other, with a file at the bottom.
    fn nested_tree(repo: &git2::Repository, depth: usize, name: &str) -> git2::Oid {
        let blob = repo.blob(b"deep").unwrap();
        let mut builder = repo.treebuilder(None).unwrap();
        builder.insert("f", blob, 0o100644).unwrap();
        let mut tree = builder.write().unwrap();
        for _ in 0..depth {
            let mut builder = repo.treebuilder(None).unwrap();
            builder.insert(name, tree, 0o040000).unwrap();
            tree = builder.write().unwrap();
        }
        tree
    }

    mod tempdir {
        /// A temp dir removed on drop.
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new(label: &str) -> Dir {
                static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let path = std::env::temp_dir().join(format!("hoist-{label}-{}-{n}", std::process::id()));
                let _ = std::fs::remove_dir_all(&path);
                std::fs::create_dir_all(&path).unwrap();
                Dir(path)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    const ROOMY: SizeLimits = SizeLimits { max_file: 1 << 20, max_total: 1 << 30, max_files: 100_000 };

    #[test]
    fn a_tree_twenty_thousand_folders_deep_is_refused_without_overflowing_the_stack() {
        // The hostile probe's 1.25 MiB push: libgit2's recursive walk overflowed a
        // worker's stack and took hoistd down. Run on a small stack to prove the walk
        // does not recurse.
        let (dir, commit) = repo_with_tree("deep", |repo| nested_tree(repo, 20_000, "d"));
        let app = AppName::parse("deep").unwrap();
        let tar = dir.path().join("source.tar");
        let repo_path = dir.path().to_path_buf();
        let refused = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || export_commit(&repo_path, &[], &app, &commit, ROOMY, &tar).unwrap_err().to_string())
            .unwrap()
            .join()
            .unwrap();
        assert!(refused.contains(&format!("folders nest more than {MAX_TREE_DEPTH} deep")), "{refused}");
    }

    #[test]
    fn depth_and_path_length_limits_are_exact() {
        let app = AppName::parse("deep").unwrap();
        let (dir, commit) = repo_with_tree("at-limit", |repo| nested_tree(repo, MAX_TREE_DEPTH - 1, "d"));
        let tar = dir.path().join("source.tar");
        let files = export_commit(dir.path(), &[], &app, &commit, ROOMY, &tar).unwrap();
        assert_eq!(files.len(), 1, "a tree at the depth limit exports");
        let (dir, commit) = repo_with_tree("long-path", |repo| nested_tree(repo, 40, &"x".repeat(120)));
        let refused =
            export_commit(dir.path(), &[], &app, &commit, ROOMY, &dir.path().join("s.tar")).unwrap_err().to_string();
        assert!(refused.contains(&format!("a path is longer than {MAX_PATH_BYTES} bytes")), "{refused}");
    }

    #[test]
    fn a_tree_bomb_is_refused_from_its_tree_objects() {
        // 1000 folders that all point at one tree of 1000 empty files: a few KiB of
        // objects naming a million files.
        let (dir, commit) = repo_with_tree("bomb", |repo| {
            let empty = repo.blob(b"").unwrap();
            let mut leaf = repo.treebuilder(None).unwrap();
            for i in 0..1000 {
                leaf.insert(format!("f{i}"), empty, 0o100644).unwrap();
            }
            let leaf = leaf.write().unwrap();
            let mut root = repo.treebuilder(None).unwrap();
            for i in 0..1000 {
                root.insert(format!("d{i}"), leaf, 0o040000).unwrap();
            }
            root.write().unwrap()
        });
        let app = AppName::parse("bomb").unwrap();
        let tar = dir.path().join("source.tar");
        let limits = SizeLimits { max_files: 5000, ..ROOMY };
        let refused = export_commit(dir.path(), &[], &app, &commit, limits, &tar).unwrap_err().to_string();
        assert!(refused.contains("more than 5000 files and folders (receive.max_files)"), "{refused}");
        assert!(!tar.exists(), "refused before the archive is started");
    }

    /// A generated tree: files and folders with names a push can carry, any depth and width.
    #[derive(Debug, Clone)]
    enum Node {
        File(String),
        Folder(String, Vec<Node>),
    }

    fn tree_name() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z]{1,3}", "\\.[a-z]{0,3}", "[a-zA-Z0-9 ._~-]{1,40}", "[a-z]{200,255}", ".{1,8}"]
            .prop_filter("git refuses names with '/' or NUL", |name| !name.contains(['/', '\0']))
    }

    fn tree_shape() -> impl Strategy<Value = Node> {
        let leaf = tree_name().prop_map(Node::File);
        leaf.prop_recursive(40, 300, 6, |inner| {
            (tree_name(), proptest::collection::vec(inner, 0..6))
                .prop_map(|(name, children)| Node::Folder(name, children))
        })
    }

    /// Writes `children` as a tree (duplicate names keep the last), `wrap` folders deep.
    fn write_tree(repo: &git2::Repository, children: &[Node], wrap: usize) -> Option<git2::Oid> {
        let blob = repo.blob(b"x").ok()?;
        let mut builder = repo.treebuilder(None).ok()?;
        for child in children {
            match child {
                Node::File(name) => builder.insert(name, blob, 0o100644).ok()?,
                Node::Folder(name, inner) => builder.insert(name, write_tree(repo, inner, 0)?, 0o040000).ok()?,
            };
        }
        let mut tree = builder.write().ok()?;
        for _ in 0..wrap {
            let mut builder = repo.treebuilder(None).ok()?;
            builder.insert("w", tree, 0o040000).ok()?;
            tree = builder.write().ok()?;
        }
        Some(tree)
    }

    proptest! {
        /// Whatever an SSH client sends, the parser either names a valid app (which
        /// hoistd turns into a path under its repos) with a git pack service, or refuses.
        #[test]
        fn an_ssh_command_never_names_anything_but_an_app(command in any::<String>()) {
            if let Ok(parsed) = parse_ssh_command(&command) {
                prop_assert!(AppName::parse(&parsed.app).is_ok());
                prop_assert!(!parsed.app.contains(['/', '.', ' ', '\'']));
            }
        }

        #[test]
        fn an_ssh_command_of_any_app_path_parses_to_that_app(app in "[a-z][a-z0-9-]{0,20}[a-z0-9]") {
            prop_assume!(AppName::parse(&app).is_ok());
            let parsed = parse_ssh_command(&format!("git-receive-pack '/{app}.git'")).unwrap();
            prop_assert_eq!(parsed.app, app);
        }
    }

    proptest! {
        // Each case writes a repository: fewer cases, still every shape class.
        #![proptest_config(ProptestConfig { cases: 100, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn no_tree_shape_makes_the_export_panic_or_overflow(
            shape in proptest::collection::vec(tree_shape(), 0..8),
            wrap in prop_oneof![0usize..4, 250usize..262],
            max_files in prop_oneof![1u64..50, Just(100_000u64)],
        ) {
            let dir = tempdir::Dir::new("prop-tree");
            let repo = git2::Repository::init_bare(dir.path()).unwrap();
            let Some(tree) = write_tree(&repo, &shape, wrap) else { return Ok(()) };
            let tree = repo.find_tree(tree).unwrap();
            let who = git2::Signature::now("t", "t@example.invalid").unwrap();
            let commit = repo.commit(None, &who, &who, "m", &tree, &[]).unwrap().to_string();
            let limits = SizeLimits { max_file: 1 << 20, max_total: 1 << 30, max_files };
            let app = AppName::parse("prop").unwrap();
            let path = dir.path().to_path_buf();
            // A small stack: a recursive walk would overflow it at a few hundred levels.
            let outcome = std::thread::Builder::new()
                .stack_size(512 * 1024)
                .spawn(move || export_commit(&path, &[], &app, &commit, limits, &path.join("s.tar")).map(|f| f.len()))
                .unwrap()
                .join()
                .expect("the export does not panic");
            match outcome {
                Ok(files) => prop_assert!(files as u64 <= max_files && wrap < MAX_TREE_DEPTH),
                Err(error) => prop_assert!(error.to_string().len() < 600, "a short message: {error}"),
            }
        }
    }
}
