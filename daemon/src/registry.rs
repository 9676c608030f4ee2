//! The OCI registry: Debian's `docker-registry`, started and supervised by hoistd unless
//! the config names an external one; pushing built images to it; asking it for digests.
//!
//! Images a Dockerfile built, and the stacks' run images, are pushed through dockerd
//! (`docker push`): their layers live in dockerd already, and dockerd asks the registry
//! for every blob before sending it, so only new layers travel. Images hoist writes
//! itself (`export`) go straight to the registry, blob by blob: `has_blob`,
//! `mount_blob` (from a stack's repository, without sending it), `upload_blob` and
//! `put_manifest`. The digest of what landed is then asked of the registry
//! itself with oci-client: the registry, not the pusher, is the authority on digests.
//!
//! Architecture invariant: nothing outside this module knows the registry's wire
//! protocol or how it is started.

use crate::logs::LiveLog;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{PushImageOptionsBuilder, TagImageOptionsBuilder};
use bollard::Docker;
use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::Command;

/// What can go wrong with the registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start the registry {program}: {source}; install Debian's docker-registry (tests/env/up does)")]
    Spawn { program: PathBuf, source: std::io::Error },
    #[error("the registry at {addr} did not answer within {waited:?}; see {log}")]
    NotReady { addr: SocketAddr, waited: Duration, log: PathBuf },
    #[error("cannot write the registry's files under {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "cannot start the registry on {addr}: something else listens there ({source}); \
         stop it (the test cluster's: bash tests/env/cluster down), choose another registry.addr, \
         or set registry.external = true to use it"
    )]
    AddrInUse { addr: SocketAddr, source: std::io::Error },
    #[error("pushing {reference} to the registry failed: {message}")]
    Push { reference: String, message: String },
    #[error("the registry does not know {reference} after pushing it: {message}")]
    Digest { reference: String, message: String },
    #[error("cannot tag {reference}: {message}")]
    Retag { reference: String, message: String },
    #[error("blob {digest} of {name} in the registry: {message}")]
    Blob { name: String, digest: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The account hoistd's supervised registry knows (htpasswd): hoistd, its docker target
/// and the cluster use it, and `hoist registry login` hands it to people who push images.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).finish_non_exhaustive()
    }
}

/// The user name of the supervised registry's one account.
pub const USERNAME: &str = "hoist";

impl Credentials {
    /// The supervised registry's credentials, made at the first start and kept in
    /// `<dir>/password` (owner only).
    pub fn load_or_create(dir: &Path) -> Result<Credentials> {
        let path = dir.join("password");
        let io = |source| Error::Io { path: path.clone(), source };
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
        let password = match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => text.trim().to_string(),
            _ => {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let password = crate::auth::new_token();
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io)?;
                file.write_all(password.as_bytes()).map_err(io)?;
                password
            }
        };
        Ok(Credentials { username: USERNAME.to_string(), password })
    }

    /// The supervised registry's credentials if its first start made them, for another
    /// process on the same data dir (`hoistd stacks prepare`).
    pub fn load(dir: &Path) -> Result<Option<Credentials>> {
        let path = dir.join("password");
        match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => {
                Ok(Some(Credentials { username: USERNAME.to_string(), password: text.trim().to_string() }))
            }
            Ok(_) => Ok(None),
            Err(source) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io { path, source }),
        }
    }

    /// As dockerd takes them for a push or pull from `addr`.
    pub fn for_docker(&self, addr: &str) -> DockerCredentials {
        DockerCredentials {
            username: Some(self.username.clone()),
            password: Some(self.password.clone()),
            serveraddress: Some(addr.to_string()),
            ..Default::default()
        }
    }
}

/// The most bytes a manifest hoist reads may have (an image's are a few KiB).
pub const MANIFEST_MAX: usize = 4 * 1024 * 1024;

/// The body of `response`, refused as soon as it passes `max` bytes (never read whole
/// first: a manifest or config in the registry may have been pushed by anyone with its
/// account).
async fn read_bounded(mut response: reqwest::Response, max: usize) -> std::result::Result<Vec<u8>, String> {
    let too_big = |size: u64| format!("it is {size} bytes or more, more than the {max} hoist reads of it");
    if let Some(length) = response.content_length().filter(|length| *length > max as u64) {
        return Err(too_big(length));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if bytes.len() + chunk.len() > max {
            return Err(too_big((bytes.len() + chunk.len()) as u64));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// A blob to upload.
pub enum Blob {
    /// Streamed from this file.
    File(PathBuf),
    Bytes(Vec<u8>),
}

/// Where images go.
#[derive(Clone)]
pub struct Registry {
    addr: SocketAddr,
    client: Client,
    /// For the requests oci-client does not make (blobs, manifests, mounts); one pool.
    http: reqwest::Client,
    /// The account of hoistd's own registry; `None` for an external one (its access is
    /// the operator's to arrange). Sent only to `addr`, never to another registry.
    credentials: Option<Credentials>,
}

impl Registry {
    pub fn new(addr: SocketAddr, credentials: Option<Credentials>) -> Registry {
        let client = Client::new(ClientConfig { protocol: ClientProtocol::Http, ..Default::default() });
        Registry { addr, client, http: reqwest::Client::new(), credentials }
    }

    /// The credentials of this registry, if it has any.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// The auth for `reference`: this registry's account for its own images only.
    fn auth_for(&self, reference: &str) -> RegistryAuth {
        let own = reference.strip_prefix(&self.addr.to_string()).is_some_and(|rest| rest.starts_with('/'));
        match (&self.credentials, own) {
            (Some(credentials), true) => {
                RegistryAuth::Basic(credentials.username.clone(), credentials.password.clone())
            }
            _ => RegistryAuth::Anonymous,
        }
    }

    /// A request to this registry, with its account when it has one.
    fn request(&self, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.credentials {
            Some(credentials) => request.basic_auth(&credentials.username, Some(&credentials.password)),
            None => request,
        }
    }

    /// The repository of an app's images: `host:port/<app>`.
    pub fn repository(&self, app: &str) -> String {
        format!("{}/{}", self.addr, app)
    }

    /// Pushes the dockerd image `local` as `repository:tag` and returns the manifest
    /// digest the registry now serves for it.
    pub async fn push(
        &self,
        docker: &Docker,
        local: &str,
        repository: &str,
        tag: &str,
        log: &LiveLog,
    ) -> Result<String> {
        let reference = format!("{repository}:{tag}");
        let push_error = |message: String| Error::Push { reference: reference.clone(), message };
        if local != reference {
            let options = TagImageOptionsBuilder::default().repo(repository).tag(tag).build();
            docker.tag_image(local, Some(options)).await.map_err(|e| push_error(e.to_string()))?;
        }
        log.line(format!("-----> Pushing {reference}"));
        let credentials = self.credentials.as_ref().map(|c| c.for_docker(&self.addr.to_string()));
        // dockerd's answer to a push is a stream of progress lines; once in a CI run it
        // broke off mid-line ("bytes remaining on stream") with the push's outcome
        // unknown. A push is idempotent (what the registry has is skipped), so such a
        // break is followed by one more push; an error dockerd reports is not.
        let push_once = || async {
            let options = PushImageOptionsBuilder::default().tag(tag).build();
            let mut progress = docker.push_image(repository, Some(options), credentials.clone());
            let (mut pushed, mut existed) = (0, 0);
            while let Some(item) = progress.next().await {
                match item?.status.as_deref() {
                    Some("Pushed") => pushed += 1,
                    Some("Layer already exists") => existed += 1,
                    _ => {}
                }
            }
            Ok::<_, bollard::errors::Error>((pushed, existed))
        };
        let (pushed, existed) = match push_once().await {
            Err(error @ bollard::errors::Error::IOError { .. }) => {
                log.line(format!("       dockerd's answer to the push broke off ({error}); pushing again"));
                push_once().await
            }
            outcome => outcome,
        }
        .map_err(|e| push_error(e.to_string()))?;
        log.line(format!("       {pushed} layers pushed, {existed} already in the registry"));
        let digest = self.digest(&reference).await?;
        log.line(format!("       digest {digest}"));
        Ok(digest)
    }

    /// Deletes the manifest `digest` of repository `name` (the app's); true when the
    /// registry had it. Its blobs are freed by the next garbage collection.
    pub async fn delete_manifest(&self, name: &str, digest: &str) -> bool {
        let url = format!("http://{}/v2/{name}/manifests/{digest}", self.addr);
        match self.request(reqwest::Method::DELETE, url.clone()).send().await {
            Ok(response) => response.status().is_success(),
            Err(error) => {
                tracing::warn!(%url, %error, "cannot delete a manifest");
                false
            }
        }
    }

    /// Points tag `to` of repository `name` at what `from` (a tag or a digest) points at
    /// (the manifest is copied as it is, so the digest stays); returns that digest.
    pub async fn retag(&self, name: &str, from: &str, to: &str) -> Result<String> {
        let separator = if from.starts_with("sha256:") { "@" } else { ":" };
        let reference = format!("{}/{name}{separator}{from}", self.addr);
        let fail = |message: String| Error::Retag { reference: reference.clone(), message };
        let accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, \
                      application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json";
        let got = self
            .request(reqwest::Method::GET, format!("http://{}/v2/{name}/manifests/{from}", self.addr))
            .header("accept", accept)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !got.status().is_success() {
            return Err(fail(format!("the registry answered {}", got.status())));
        }
        let media_type = got
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/vnd.docker.distribution.manifest.v2+json")
            .to_string();
        let digest = got.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(str::to_string);
        let manifest = got.bytes().await.map_err(|e| fail(e.to_string()))?;
        let put = self
            .request(reqwest::Method::PUT, format!("http://{}/v2/{name}/manifests/{to}", self.addr))
            .header("content-type", media_type)
            .body(manifest)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !put.status().is_success() {
            return Err(fail(format!("tagging {to} was answered {}", put.status())));
        }
        match digest {
            Some(digest) => Ok(digest),
            None => self.digest(&format!("{}/{name}:{to}", self.addr)).await,
        }
    }

    fn url(&self, name: &str, rest: &str) -> String {
        format!("http://{}/v2/{name}/{rest}", self.addr)
    }

    /// Whether repository `name` holds blob `digest` (a blob is there only once all of it
    /// arrived and matched its digest: a push cut short leaves nothing to find).
    pub async fn has_blob(&self, name: &str, digest: &str) -> Result<bool> {
        let fail = |message: String| Error::Blob { name: name.to_string(), digest: digest.to_string(), message };
        let response = self
            .request(reqwest::Method::HEAD, self.url(name, &format!("blobs/{digest}")))
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            status => Err(fail(format!("the registry answered {status}"))),
        }
    }

    /// Makes blob `digest` of repository `from` a blob of `name` too, without sending it
    /// (the registry links it); false when the registry would rather have it uploaded.
    pub async fn mount_blob(&self, name: &str, digest: &str, from: &str) -> Result<bool> {
        let fail = |message: String| Error::Blob { name: name.to_string(), digest: digest.to_string(), message };
        let url = self.url(name, &format!("blobs/uploads/?mount={digest}&from={from}"));
        let response = self.request(reqwest::Method::POST, url).send().await.map_err(|e| fail(e.to_string()))?;
        Ok(response.status().as_u16() == 201)
    }

    /// Uploads a blob to repository `name` in one request, its bytes streamed from
    /// `blob`; the registry checks them against `digest` before keeping them.
    pub async fn upload_blob(&self, name: &str, digest: &str, blob: Blob) -> Result<()> {
        let fail = |message: String| Error::Blob { name: name.to_string(), digest: digest.to_string(), message };
        let (size, body) = match blob {
            Blob::File(path) => {
                let file = tokio::fs::File::open(&path).await.map_err(|e| fail(format!("{}: {e}", path.display())))?;
                let size = file.metadata().await.map_err(|e| fail(e.to_string()))?.len();
                (size, reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file)))
            }
            Blob::Bytes(bytes) => (bytes.len() as u64, reqwest::Body::from(bytes)),
        };
        let started = self
            .request(reqwest::Method::POST, self.url(name, "blobs/uploads/"))
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if started.status().as_u16() != 202 {
            return Err(fail(format!("starting the upload was answered {}", started.status())));
        }
        let location = started
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| fail("the registry gave no upload location".to_string()))?;
        let location = match location.starts_with('/') {
            true => format!("http://{}{location}", self.addr),
            false => location.to_string(),
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let finished = self
            .request(reqwest::Method::PUT, format!("{location}{separator}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .header("content-length", size)
            .body(body)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if finished.status().as_u16() != 201 {
            let status = finished.status();
            let text = finished.text().await.unwrap_or_default();
            return Err(fail(format!("the upload was answered {status}: {}", text.trim())));
        }
        Ok(())
    }

    /// Puts manifest `bytes` (of `media_type`) as `reference` (a tag) of repository `name`.
    pub async fn put_manifest(&self, name: &str, reference: &str, media_type: &str, bytes: Vec<u8>) -> Result<()> {
        let fail = |message: String| Error::Push { reference: format!("{}/{name}:{reference}", self.addr), message };
        let response = self
            .request(reqwest::Method::PUT, self.url(name, &format!("manifests/{reference}")))
            .header("content-type", media_type)
            .body(bytes)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            return Err(fail(format!("the manifest was answered {status}: {}", text.trim())));
        }
        Ok(())
    }

    /// The manifest `reference` (tag or digest) of repository `name`: its bytes (at most
    /// [`MANIFEST_MAX`]) and digest.
    pub async fn manifest(&self, name: &str, reference: &str) -> Result<(Vec<u8>, String)> {
        let fail = |message: String| Error::Digest { reference: format!("{}/{name}:{reference}", self.addr), message };
        let response = self
            .request(reqwest::Method::GET, self.url(name, &format!("manifests/{reference}")))
            .header("accept", "application/vnd.docker.distribution.manifest.v2+json")
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !response.status().is_success() {
            return Err(fail(format!("the registry answered {}", response.status())));
        }
        let bytes = read_bounded(response, MANIFEST_MAX).await.map_err(fail)?;
        let digest = crate::image::sha256(&bytes);
        Ok((bytes, digest))
    }

    /// A small blob (an image config) of repository `name`, whole; at most `max` bytes.
    pub async fn small_blob(&self, name: &str, digest: &str, max: usize) -> Result<Vec<u8>> {
        let fail = |message: String| Error::Blob { name: name.to_string(), digest: digest.to_string(), message };
        let response = self
            .request(reqwest::Method::GET, self.url(name, &format!("blobs/{digest}")))
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !response.status().is_success() {
            return Err(fail(format!("the registry answered {}", response.status())));
        }
        let bytes = read_bounded(response, max).await.map_err(fail)?;
        if crate::image::sha256(&bytes) != digest {
            return Err(fail("its bytes do not match its digest".to_string()));
        }
        Ok(bytes)
    }

    /// `host:port` of this registry.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The digest the registry serves for `reference` (`host:port/repo:tag`).
    pub async fn digest(&self, reference: &str) -> Result<String> {
        let digest_error = |message: String| Error::Digest { reference: reference.to_string(), message };
        let parsed: Reference = reference.parse().map_err(|e: oci_client::ParseError| digest_error(e.to_string()))?;
        self.client
            .fetch_manifest_digest(&parsed, &self.auth_for(reference))
            .await
            .map_err(|e| digest_error(e.to_string()))
    }
}

/// Starts `docker-registry` on `addr` with storage under `dir`, restarts it whenever it
/// exits, and returns once it answers. The child dies with hoistd (kill_on_drop) and a
/// registry left by a hoistd killed with SIGKILL is stopped through its pid file.
/// Where the registry tells of every push: hoistd's endpoint, with a token only the two of
/// them know.
#[derive(Debug, Clone)]
pub struct Notify {
    pub url: String,
    pub token: String,
}

pub async fn start_supervised(
    program: &Path,
    addr: SocketAddr,
    dir: &Path,
    notify: Option<&Notify>,
    credentials: &Credentials,
) -> Result<tokio::task::JoinHandle<()>> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(dir.join("storage")).map_err(io(dir))?;
    let config_path = dir.join("config.yml");
    let mut config = format!(
        "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
        dir.join("storage").display()
    );
    // Nobody reads, pushes or deletes without the account: pushing into a followed tag
    // deploys it.
    let htpasswd_path = dir.join("htpasswd");
    // The registry checks the password on every request (dozens per push or pull): at
    // bcrypt's cost 10 that is ~90 ms each, most of an export's time. The password is 256
    // random bits, which no cost factor makes stronger or weaker, so bcrypt's least cost.
    let hash = bcrypt::hash(&credentials.password, 4)
        .map_err(|e| Error::Io { path: htpasswd_path.clone(), source: std::io::Error::other(e) })?;
    write_private(&htpasswd_path, &format!("{}:{hash}\n", credentials.username)).map_err(io(&htpasswd_path))?;
    config.push_str(&format!("auth:\n  htpasswd:\n    realm: hoist\n    path: {}\n", htpasswd_path.display()));
    if let Some(notify) = notify {
        // Layers are not worth an event; manifests (a tag moved) are.
        config.push_str(&format!(
            "notifications:\n  endpoints:\n    - name: hoistd\n      url: {}\n      headers:\n        Authorization: [\"Bearer {}\"]\n      timeout: 2s\n      threshold: 3\n      backoff: 2s\n      ignoredmediatypes:\n        - application/octet-stream\n",
            notify.url, notify.token
        ));
    }
    write_private(&config_path, &config).map_err(io(&config_path))?;
    let pid_path = dir.join("registry.pid");
    stop_stale(&pid_path).await;
    // A registry that cannot bind exits at once and would be restarted forever; say why now.
    drop(std::net::TcpListener::bind(addr).map_err(|source| Error::AddrInUse { addr, source })?);
    let log_path = dir.join("registry.log");
    // A registry that never stored anything has nothing to collect (and says so loudly).
    if dir.join("storage/docker/registry/v2/repositories").is_dir() {
        collect_garbage(program, &config_path, &log_path).await;
    }

    let spawn = {
        let (program, config_path, log_path, pid_path) =
            (program.to_path_buf(), config_path.clone(), log_path.clone(), pid_path.clone());
        move || -> Result<tokio::process::Child> {
            let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(io(&log_path))?;
            let log_err = log.try_clone().map_err(io(&log_path))?;
            let child = Command::new(&program)
                .arg("serve")
                .arg(&config_path)
                .stdin(std::process::Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .kill_on_drop(true)
                .spawn()
                .map_err(|source| Error::Spawn { program: program.clone(), source })?;
            if let Some(pid) = child.id() {
                let _ = std::fs::write(&pid_path, pid.to_string());
            }
            Ok(child)
        }
    };
    let mut child = spawn()?;
    wait_ready(addr, Duration::from_secs(20), &log_path).await?;
    tracing::info!(%addr, "registry ready");
    Ok(tokio::spawn(async move {
        let mut backoff = Duration::from_secs(1);
        loop {
            let started = std::time::Instant::now();
            let status = child.wait().await;
            if started.elapsed() > Duration::from_secs(60) {
                backoff = Duration::from_secs(1);
            }
            tracing::warn!(?status, ?backoff, log = %log_path.display(), "the registry exited; starting it again");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
            loop {
                match spawn() {
                    Ok(new_child) => break child = new_child,
                    Err(error) => {
                        tracing::error!(%error, "cannot restart the registry");
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                }
            }
        }
    }))
}

/// Writes `text` to `path`, readable by the owner only.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(text.as_bytes())
}

/// Frees the blobs no manifest uses any more (deleted by the retention policy). Run while
/// the registry is stopped, before it starts: no push can race it.
async fn collect_garbage(program: &Path, config: &Path, log_path: &Path) {
    let started = std::time::Instant::now();
    let output = Command::new(program).arg("garbage-collect").arg(config).output().await;
    match output {
        Ok(output) if output.status.success() => {
            let text = String::from_utf8_lossy(&output.stdout);
            let deleted = text.lines().filter(|l| l.contains("blob eligible for deletion")).count();
            tracing::info!(deleted_blobs = deleted, took = ?started.elapsed(), "registry garbage collected");
        }
        Ok(output) => tracing::warn!(
            log = %log_path.display(),
            stderr = %String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or(""),
            "registry garbage collection failed"
        ),
        Err(error) => tracing::warn!(%error, "cannot run the registry's garbage collection"),
    }
}

/// Stops a registry left running by an earlier hoistd that was killed.
async fn stop_stale(pid_path: &Path) {
    let Ok(pid) = std::fs::read_to_string(pid_path) else { return };
    let pid = pid.trim();
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if cmdline.contains("serve") {
        tracing::info!(pid, "stopping the registry an earlier hoistd left running");
        let _ = Command::new("kill").arg(pid).status().await;
        for _ in 0..50 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Polls `GET /v2/` until it answers (401 counts: a registry that asks for credentials
/// is up).
pub async fn wait_ready(addr: SocketAddr, deadline: Duration, log: &Path) -> Result<()> {
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    while started.elapsed() < deadline {
        if let Ok(response) = client.get(format!("http://{addr}/v2/")).send().await {
            if response.status().is_success() || response.status() == reqwest::StatusCode::UNAUTHORIZED {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(Error::NotReady { addr, waited: deadline, log: log.to_path_buf() })
}
