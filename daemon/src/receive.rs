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
}

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

    pub fn delete(&self, app: &AppName) -> Result<()> {
        let path = self.path(app);
        match std::fs::remove_dir_all(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Io { app: app.to_string(), path, source }),
        }
    }
}

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
    let mut entries: Vec<(String, i32, git2::Oid)> = Vec::new();
    let mut bad_path = None;
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| match entry.name().ok() {
        Some(name) if is_checkout_name(name) => {
            entries.push((format!("{dir}{name}"), entry.filemode(), entry.id()));
            git2::TreeWalkResult::Ok
        }
        name => {
            bad_path = Some(format!(
                "{dir}{}",
                name.map_or_else(|| String::from_utf8_lossy(entry.name_bytes()).into_owned(), str::to_string)
            ));
            git2::TreeWalkResult::Abort
        }
    })
    .or_else(|error| if bad_path.is_some() { Ok(()) } else { Err(error) })
    .map_err(commit_error)?;
    if let Some(path) = bad_path {
        return Err(Error::BadPath(path));
    }
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

/// Fetches `commit` of branch `branch` from the app's upstream repository `url` into the
/// app's repo (as `refs/hoist/upstream/<branch>`), with `token` (if any) sent as HTTP basic
/// credentials through git's environment, never on a command line or in a URL.
pub async fn fetch_commit(repo: &Path, url: &str, branch: &str, commit: &str, token: Option<&str>) -> Result<()> {
    let fetch_error = |message: String| Error::Fetch { url: url.to_string(), message };
    let run = |args: Vec<String>| {
        let mut command = Command::new("git");
        command.arg("--git-dir").arg(repo).args(&args).stdin(Stdio::null()).env("GIT_TERMINAL_PROMPT", "0");
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
    let refspec = format!("+refs/heads/{branch}:refs/hoist/upstream/{branch}");
    let output = run(vec!["fetch".into(), "--no-tags".into(), "--quiet".into(), "--".into(), url.into(), refspec])
        .output()
        .await
        .map_err(|e| fetch_error(format!("cannot run git: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(fetch_error(stderr.lines().last().unwrap_or("git fetch failed").to_string()));
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
    let output =
        run(vec!["fetch".into(), "--no-tags".into(), "--quiet".into(), "--".into(), url.into(), commit.into()])
            .output()
            .await
            .map_err(|e| fetch_error(format!("cannot run git: {e}")))?;
    if output.status.success() && has(commit).await {
        Ok(())
    } else {
        Err(fetch_error(format!("the repository has no commit {commit} on {branch}")))
    }
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
}

/// Runs `git http-backend` as a CGI program for `request` and streams its answer.
pub async fn http_backend(repos: &Repos, hook: &HookEnv, request: GitRequest) -> Result<Response> {
    let mut command = Command::new("git");
    command
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", repos.root())
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", format!("/{}.git/{}", request.app, request.path))
        .env("REQUEST_METHOD", request.method.as_str())
        .env("QUERY_STRING", &request.query)
        .env("REMOTE_USER", &request.remote_user)
        .env("REMOTE_ADDR", &request.remote_addr)
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("HOIST_HOOK_PROGRAM", &hook.program)
        .env("HOIST_HOOK_URL", &hook.url)
        .env("HOIST_HOOK_TOKEN", &hook.token)
        .env("HOIST_APP", request.app.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(home) = std::env::var_os("HOME") {
        command.env("HOME", home);
    }
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
    tokio::spawn(async move {
        let _ = child.wait().await;
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
    let (url, token, app) = (env("HOIST_HOOK_URL"), env("HOIST_HOOK_TOKEN"), env("HOIST_APP"));
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
    let request = HookRequest { app, updates: parse_ref_updates(&input), object_dirs };
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

    #[test]
    fn ref_updates() {
        let input = format!("{ZERO_OID} abc refs/heads/main\nabc def refs/heads/feature\n\n");
        let updates = parse_ref_updates(&input);
        assert_eq!(updates.len(), 2);
        assert_eq!(updates[0], RefUpdate { old: ZERO_OID.into(), new: "abc".into(), name: "refs/heads/main".into() });
        assert_eq!(updates[1].name, "refs/heads/feature");
    }

    #[test]
    fn hook_messages_round_trip() {
        let line: HookMessage = serde_json::from_str(r#"{"line":"-----> Building"}"#).unwrap();
        assert!(matches!(line, HookMessage::Line { line } if line == "-----> Building"));
        let end: HookMessage = serde_json::from_str(r#"{"ok":false,"message":"no"}"#).unwrap();
        assert!(matches!(end, HookMessage::End { ok: false, .. }));
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
        let roomy = SizeLimits { max_file: 8 << 20, max_total: 8 << 20 };
        let tar = dir.join("source.tar");
        let mut files = export_commit(&dir, &[], &app, &commit.to_string(), roomy, &tar).unwrap();
        files.sort();
        assert_eq!(files, [".s2i/bin/assemble", "big.bin", "index.html"]);
        assert_eq!(archive::read_file(&tar, "index.html").unwrap().unwrap(), b"<h1>hi</h1>");
        assert!(archive::read_file(&tar, "big.bin").unwrap().unwrap() == big, "a streamed blob arrives whole");
        let missing = export_commit(&dir, &[], &app, &"1".repeat(40), roomy, &tar).unwrap_err().to_string();
        assert!(missing.contains("cannot be read"), "{missing}");
        let tight = SizeLimits { max_file: 5, max_total: 1 << 20 };
        let refused = export_commit(&dir, &[], &app, &commit.to_string(), tight, &tar).unwrap_err().to_string();
        assert!(refused.contains("is 10 bytes unpacked; a file may be at most 5 bytes"), "{refused}");
        let tight = SizeLimits { max_file: 8 << 20, max_total: 15 };
        let refused = export_commit(&dir, &[], &app, &commit.to_string(), tight, &tar).unwrap_err().to_string();
        assert!(refused.contains("more than 15 bytes unpacked (receive.max_push_mb)"), "{refused}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
