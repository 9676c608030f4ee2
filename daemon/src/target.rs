//! Where releases run: the seam between the rollout stage and the places it deploys to.
//!
//! A target deploys one release and answers whether it became ready, removes an app,
//! and brings an app back after a restart. It never decides which release should run
//! or records anything: that is `rollout`'s state machine. Two targets exist:
//!
//! - [`docker::DockerTarget`], the embedded default: a container on the local dockerd,
//!   health-checked over HTTP; the rollout stage switches hoistd's router to it.
//! - [`kubernetes::KubernetesTarget`]: a Helm release of hoist's chart
//!   (`helm upgrade --install --atomic --wait`), its pods polled with kube-rs while Helm waits; the
//!   router follows the ready endpoints of the app's Service.
//!
//! Architecture invariant: `rollout` is the only caller; a target never writes a release's
//! status.

pub mod docker;
pub mod kubernetes;

use crate::app::AppName;
use crate::config::TargetKind;
use crate::logs::Tee;
use crate::store::Release;
use std::net::SocketAddr;
use std::sync::Arc;

/// What can go wrong outside a deploy (removing an app, restoring after a restart). A
/// caller of the seam sees which target failed and why, in that target's own words (its
/// own error type, kept behind the seam), never a Docker, Kubernetes or Helm variant.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the {kind} target is not available: {why}")]
    Unavailable { kind: TargetKind, why: String },
    #[error("{kind} target: {source}")]
    Failed {
        kind: TargetKind,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl Error {
    /// `source`, an error of the `kind` target's own type.
    pub fn of(kind: TargetKind, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Failed { kind, source: Box::new(source) }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How the router reaches a deployed release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// At these addresses (its web processes; none when web is scaled to 0): the
    /// rollout stage switches the route to them.
    Addresses(Vec<SocketAddr>),
    /// Through a Service whose ready endpoints the target keeps routed itself.
    Service,
}

/// A release that became ready.
#[derive(Debug)]
pub struct Deployed {
    pub reach: Reach,
    /// The target's own number for it (Helm's revision).
    pub revision: Option<i64>,
}

/// A release that did not become ready. The release that served before still serves.
#[derive(Debug)]
pub struct Failure {
    /// Why, for the release record and the pushing user.
    pub reason: String,
    /// The target deployed it and undid that (Helm's rollback); false: it never served.
    pub rolled_back: bool,
    pub revision: Option<i64>,
    /// The revision the previous release runs as since the rollback (Helm makes a new one).
    pub restored_revision: Option<i64>,
}

impl Failure {
    pub fn before_deploy(reason: impl Into<String>) -> Failure {
        Failure { reason: reason.into(), rolled_back: false, revision: None, restored_revision: None }
    }
}

/// What a restart found and did.
#[derive(Debug, Default)]
pub struct Restored {
    /// How the live release is reached now, if it runs.
    pub reach: Option<Reach>,
    /// The revision the live release runs as now, when a repair rolled back to it.
    pub live_revision: Option<i64>,
}

/// One place releases run.
#[async_trait::async_trait]
pub trait Target: Send + Sync {
    fn kind(&self) -> TargetKind;

    /// Deploys `release` (its image and config) and waits until it is ready or has
    /// failed. Progress goes to `log`. On failure the previous release keeps serving.
    async fn deploy(&self, app: &AppName, release: &Release, log: &Tee) -> Result<Deployed, Failure>;

    /// The release phase: runs `command` (the Procfile's `release:` line) once, in
    /// `release`'s image with its config, before any traffic moves to it; its output goes
    /// to `log`. Fails when the command exits non-zero or runs longer than `timeout`; the
    /// release that serves keeps serving.
    async fn release_phase(
        &self,
        app: &AppName,
        release: &Release,
        command: &str,
        timeout: std::time::Duration,
        log: &Tee,
    ) -> Result<(), Failure>;

    /// Called once the router sends traffic to the deployed release, before the previous
    /// one is retired: the release must keep running and answering for the target's
    /// settling period. On failure the rollout stage switches traffic back.
    async fn settle(&self, _app: &AppName, _release: &Release, _log: &Tee) -> Result<(), Failure> {
        Ok(())
    }

    /// `previous` served until the release after it went live; free what it holds.
    async fn retire(&self, app: &AppName, previous: &Release);

    /// Removes everything the app runs (not its builds or images).
    async fn remove_app(&self, app: &AppName) -> Result<()>;

    /// After hoistd restarted: repairs what a killed rollout left (containers of
    /// `interrupted` releases, a Helm release stuck in `pending-*`) and brings the `live`
    /// release back.
    async fn restore(&self, app: &AppName, live: Option<&Release>, interrupted: &[Release]) -> Result<Restored>;

    /// The output of `release`'s processes: the last `tail` lines of each, then, with
    /// `follow`, new lines as they are printed, until the processes stop.
    async fn runtime_logs(&self, app: &AppName, release: &Release, tail: usize, follow: bool) -> Result<LineStream>;

    /// A one-off process (`hoist run`) of `release`: its image and config, its command
    /// through bash, stdin, stdout and stderr attached; removed when it ends.
    async fn run_once(&self, _app: &AppName, _release: &Release, _process: &OneOffSpec) -> Result<OneOff> {
        Err(Error::Unavailable {
            kind: self.kind(),
            why: "hoist run is not available on this target yet; it runs on the docker target".to_string(),
        })
    }

    /// A one-off process (`hoist run --detach`) started in the background; its output is
    /// part of the release's runtime logs (`hoist logs`) and it is listed by `hoist ps`
    /// until the release is retired. Returns its process name (`run.<id>`).
    async fn run_detached(&self, _app: &AppName, _release: &Release, _process: &OneOffSpec) -> Result<String> {
        Err(Error::Unavailable {
            kind: self.kind(),
            why: "hoist run --detach is not available on this target yet; it runs on the docker target".to_string(),
        })
    }

    /// Restarts the processes of type `kind` (not web, which restarts as a new release so
    /// traffic never waits) of the live `release` in place, one after another; returns how
    /// many were restarted.
    async fn restart_processes(&self, app: &AppName, release: &Release, kind: &str) -> Result<usize>;

    /// `hoist dev`'s sync: unpacks `archive` (a tar of files under `app/`) at `/` in every
    /// process of the running `release`, without a build or a restart, then sends each
    /// `signal` (`HUP`, …) if given; returns how many processes got it.
    async fn sync_files(
        &self,
        _app: &AppName,
        _release: &Release,
        _archive: Vec<u8>,
        _signal: Option<&str>,
    ) -> Result<usize> {
        Err(Error::Unavailable {
            kind: self.kind(),
            why: "this target cannot copy files into a running release; hoist dev builds instead".to_string(),
        })
    }

    /// The processes `release` runs now, with their state.
    async fn processes(&self, app: &AppName, release: &Release) -> Result<Vec<crate::wire::Process>>;

    /// Keeps what this target takes from a build's source besides its image; returns a
    /// line for the build's log when it kept something.
    fn keep_source(&self, _source: &SourceFiles<'_>) -> std::io::Result<Option<String>> {
        Ok(None)
    }
}

/// The Procfile process type whose command is the release phase, not a process.
pub const RELEASE_PROCESS: &str = "release";

/// One process type a release runs, and how many of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessType {
    pub kind: String,
    /// `None` for web, which runs the image's own command (the Procfile's `web:` or the
    /// buildpack's run script); the Procfile's command for the others.
    pub command: Option<String>,
    pub count: u32,
}

/// What a release runs, on any target: web first, then every other Procfile type but
/// `release`, each as many times as the release's formation says (one of a type it
/// does not name).
pub fn process_types(release: &Release) -> Vec<ProcessType> {
    let count = |kind: &str| release.formation.get(kind).copied().unwrap_or(1);
    let mut types = vec![ProcessType { kind: "web".to_string(), command: None, count: count("web") }];
    for (kind, command) in &release.processes {
        if kind != "web" && kind != RELEASE_PROCESS {
            types.push(ProcessType { kind: kind.clone(), command: Some(command.clone()), count: count(kind) });
        }
    }
    types
}

/// What a one-off process runs, and with how much memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneOffSpec {
    /// A shell command line, run through bash as Procfile lines are.
    pub command: String,
    /// `--size`: the memory limit instead of the app's.
    pub memory_mb: Option<u64>,
    /// A terminal of (rows, columns), when the client has one.
    pub tty: Option<(u16, u16)>,
}

/// A one-off command line run through bash on a terminal of `(rows, columns)` set before
/// it starts (no dockerd before API 1.42, and no attach, sizes it in time).
pub fn sized_terminal(command: &str, (rows, columns): (u16, u16)) -> Vec<String> {
    let sized = format!("stty rows {rows} cols {columns} 2>/dev/null; exec /bin/bash -c \"$0\"");
    vec!["/bin/bash".to_string(), "-c".to_string(), sized, command.to_string()]
}

/// The number of a one-off process, as Heroku numbers one-off dynos (`run.4821`).
pub fn one_off_number() -> u32 {
    10_000 + rand::random::<u32>() % 90_000
}

/// Output of a one-off process.
#[derive(Debug)]
pub enum Output {
    Stdout(bytes::Bytes),
    Stderr(bytes::Bytes),
}

/// A one-off process, running.
pub struct OneOff {
    /// Its stdin; shutting it down is the end of its input.
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    /// Its output, until it ends.
    pub output: futures_util::stream::BoxStream<'static, Output>,
    /// Waits for its end, removes it, and gives its exit status.
    pub exit: futures_util::future::BoxFuture<'static, i64>,
    /// Sent (or dropped) before its end: the process is stopped and removed (its client
    /// went away), and `exit` gives -1.
    pub stop: tokio::sync::oneshot::Sender<()>,
}

/// Lines of a running app's output.
pub type LineStream = futures_util::stream::BoxStream<'static, String>;

/// What a target keeps of a build's source besides the image (the kubernetes target:
/// the repo's own `chart/`), for the releases of that build.
pub struct SourceFiles<'a> {
    pub app: &'a AppName,
    pub build_id: i64,
    /// The source as a tar file.
    pub tar: &'a std::path::Path,
    /// The paths of its files.
    pub files: &'a [String],
}

/// The targets of this hoistd, by kind: each either ready or the reason it cannot be
/// used (no cluster configured, helm missing).
#[derive(Clone, Default)]
pub struct Targets {
    by_kind: Vec<(TargetKind, std::result::Result<Arc<dyn Target>, String>)>,
}

impl Targets {
    /// Adds the target of `kind`, or why there is none.
    pub fn with(mut self, kind: TargetKind, target: std::result::Result<Arc<dyn Target>, String>) -> Targets {
        self.by_kind.retain(|(k, _)| *k != kind);
        self.by_kind.push((kind, target));
        self
    }

    pub fn get(&self, kind: TargetKind) -> Result<Arc<dyn Target>> {
        match self.by_kind.iter().find(|(k, _)| *k == kind) {
            Some((_, Ok(target))) => Ok(target.clone()),
            Some((_, Err(why))) => Err(Error::Unavailable { kind, why: why.clone() }),
            None => Err(Error::Unavailable { kind, why: "this hoistd has no such target".to_string() }),
        }
    }

    /// Every target that can be used.
    pub fn available(&self) -> impl Iterator<Item = &Arc<dyn Target>> {
        self.by_kind.iter().filter_map(|(_, target)| target.as_ref().ok())
    }
}
