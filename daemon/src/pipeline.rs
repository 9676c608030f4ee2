//! The pipeline: stages joined by bounded channels, each a task.
//!
//! ```text
//!  receive ──BuildRequest──▶ scheduler ──(permit)──▶ build job ──▶ image_stream ──RolloutRequest──▶ rollout stage
//!                          one queue per app                                                  one at a time per app
//! ```
//!
//! A build's states, as recorded in the store:
//!
//! ```text
//!  queued ─▶ building ─▶ pushing ─▶ deploying ─▶ succeeded
//!    │          │           │           └──────▶ failed (rollout never healthy)
//!    │          └───────────┴──────────────────▶ failed
//!    └─ a newer push to the same app arrived ──▶ superseded
//!  (any unfinished state when hoistd stops)    ─▶ interrupted, on the next start
//! ```
//!
//! Per app at most one build runs; of those waiting, only the newest is kept (it
//! supersedes the others). Builds of different apps run in parallel up to a limit.

use crate::app::AppName;
use crate::build::{Builder, Built, Destination, Source};
use crate::export::Exporter;
use crate::image_stream::{ImageStreams, Recorded, TagUpdate, TRACKED_TAG};
use crate::logs::LiveLog;
use crate::registry::Registry;
use crate::store::{BuildStatus, Store};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::instrument;

/// How a push's build ended, as told to the pushing `git`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Outcome {
    /// The new release serves traffic.
    Live { release: i64 },
    /// The image is the one already running; nothing was rolled out.
    Unchanged { digest: String },
    /// A newer push to the same app replaced this one before it started.
    Superseded { by: i64 },
    /// The build or its rollout failed.
    Failed { message: String },
}

impl Outcome {
    /// Whether git should accept the push. A superseded push is refused: its commit was
    /// never deployed, so the deploy branch must not point at it.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Live { .. } | Outcome::Unchanged { .. })
    }
}

/// One build to run.
#[derive(Debug)]
pub struct BuildRequest {
    pub source: Source,
    pub log: Arc<LiveLog>,
    pub done: oneshot::Sender<Outcome>,
    /// The branch update this build belongs to, when it came from a push.
    pub push: Option<PushedRef>,
}

/// The ref a push wants to move, and where the pusher thought it was.
///
/// git moves a branch only if it still points where the pusher saw it (compare and
/// swap). A push that waited behind another push to the same branch therefore cannot
/// land once that one did, so it must not deploy either: it is checked before its build
/// starts, and the next build starts only once the branch of the one before has moved.
#[derive(Debug, Clone)]
pub struct PushedRef {
    pub repo: std::path::PathBuf,
    pub name: String,
    pub old: String,
}

/// The per-app queue as a pure state machine: one running, at most one waiting.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AppQueue {
    running: Option<i64>,
    waiting: Option<i64>,
}

/// What to do with a build just submitted.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Nothing runs for this app: start it now.
    Start,
    /// Wait for the running build.
    Wait,
    /// Wait, and the build that waited before is superseded.
    WaitSuperseding(i64),
}

impl AppQueue {
    pub fn submit(&mut self, build: i64) -> Admission {
        if self.running.is_none() {
            self.running = Some(build);
            return Admission::Start;
        }
        match self.waiting.replace(build) {
            Some(old) => Admission::WaitSuperseding(old),
            None => Admission::Wait,
        }
    }

    /// The running build finished; returns the one to start next.
    pub fn finish(&mut self) -> Option<i64> {
        self.running = self.waiting.take();
        self.running
    }

    pub fn is_idle(&self) -> bool {
        self.running.is_none() && self.waiting.is_none()
    }
}

enum Message {
    Submit(Box<BuildRequest>),
    Finished(AppName),
}

/// A handle to submit builds.
#[derive(Clone)]
pub struct Pipeline {
    scheduler: mpsc::Sender<Message>,
}

/// What the build jobs use.
#[derive(Clone)]
pub struct Stages {
    pub store: Arc<Store>,
    pub builder: Builder,
    pub registry: Registry,
    pub exporter: Exporter,
    /// dockerd, to push a Dockerfile's image from; none when builds run as pods.
    pub docker: Option<bollard::Docker>,
    pub image_streams: ImageStreams,
    /// The targets, for what each keeps of a build's source.
    pub targets: crate::target::Targets,
}

/// The pipeline's one error: its scheduler task is gone (hoistd is stopping).
#[derive(Debug, thiserror::Error)]
#[error("the build scheduler has stopped; restart hoistd")]
pub struct Stopped;

impl Pipeline {
    /// Starts the scheduler task; at most `parallel` builds run at once.
    pub fn start(stages: Stages, parallel: usize) -> Pipeline {
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(schedule(rx, tx.clone(), stages, Arc::new(Semaphore::new(parallel.max(1)))));
        Pipeline { scheduler: tx }
    }

    /// Queues a build. Its outcome arrives on `request.done`.
    pub async fn submit(&self, request: BuildRequest) -> Result<(), Stopped> {
        self.scheduler.send(Message::Submit(Box::new(request))).await.map_err(|_| Stopped)
    }
}

async fn schedule(mut rx: mpsc::Receiver<Message>, tx: mpsc::Sender<Message>, stages: Stages, permits: Arc<Semaphore>) {
    let mut queues: HashMap<AppName, AppQueue> = HashMap::new();
    let mut waiting: HashMap<i64, BuildRequest> = HashMap::new();
    let start = |request: BuildRequest| {
        let (stages, permits, tx) = (stages.clone(), permits.clone(), tx.clone());
        tokio::spawn(async move {
            let app = request.source.app.clone();
            let _permit = permits.acquire_owned().await.expect("the semaphore is never closed");
            let outcome = run_build(&stages, &request).await;
            let accepted = outcome.is_ok();
            request.log.line(match &outcome {
                Outcome::Live { release } => format!("=====> Done: release {release} is live"),
                Outcome::Unchanged { digest } => {
                    format!("=====> Done: image unchanged ({digest}); nothing to roll out")
                }
                Outcome::Superseded { by } => format!("=====> Superseded by build {by}"),
                Outcome::Failed { message } => format!("=====> Failed: {message}"),
            });
            let _ = request.done.send(outcome);
            if let (true, Some(push)) = (accepted, &request.push) {
                wait_for_branch(push, &request.source.commit).await;
            }
            let _ = tx.send(Message::Finished(app)).await;
        });
    };
    while let Some(message) = rx.recv().await {
        match message {
            Message::Submit(request) => {
                let request = *request;
                let app = request.source.app.clone();
                let id = request.source.build_id;
                match queues.entry(app).or_default().submit(id) {
                    Admission::Start => start(request),
                    Admission::Wait => {
                        request.log.line("-----> Waiting for the build before it to finish");
                        waiting.insert(id, request);
                    }
                    Admission::WaitSuperseding(old) => {
                        request.log.line("-----> Waiting for the build before it to finish");
                        waiting.insert(id, request);
                        if let Some(old) = waiting.remove(&old) {
                            let recorded = stages.store.set_build_status(old.source.build_id, BuildStatus::Superseded);
                            record(&old.log, old.source.build_id, "its superseding", recorded);
                            old.log.line(format!(
                                "=====> Superseded by build {id}, a newer push to the same app; this commit was not deployed"
                            ));
                            let _ = old.done.send(Outcome::Superseded { by: id });
                        }
                    }
                }
            }
            Message::Finished(app) => {
                let queue = queues.entry(app.clone()).or_default();
                if let Some(next) = queue.finish() {
                    if let Some(request) = waiting.remove(&next) {
                        start(request);
                    }
                }
                if queue.is_idle() {
                    queues.remove(&app);
                }
            }
        }
    }
}

/// One build: build, push, record in the image stream, wait for the rollout.
#[instrument(skip_all, fields(app = %request.source.app, build = request.source.build_id))]
async fn run_build(stages: &Stages, request: &BuildRequest) -> Outcome {
    let source = &request.source;
    let log = &request.log;
    let id = source.build_id;
    let fail = |message: String| {
        record(log, id, "its failure", stages.store.fail_build(id, &message));
        Outcome::Failed { message }
    };
    // A status the store refuses (the build is gone, or not where the pipeline thinks)
    // ends the build: its record must never say something else than what happened.
    let advance = |status: BuildStatus| {
        let recorded = stages.store.set_build_status(id, status);
        // Its row is gone with its app: deleted during the build (maybe made again).
        if matches!(&recorded, Err(crate::store::Error::Transition { from: None, .. })) {
            return Err(Outcome::Failed {
                message: format!("app {} was deleted during this build; nothing was deployed", source.app),
            });
        }
        match record(log, id, status.as_str(), recorded) {
            true => Ok(()),
            false => Err(fail(format!("hoistd could not record build {id} as {}; see hoistd's log", status.as_str()))),
        }
    };
    if let Some(push) = &request.push {
        let current = crate::receive::branch_head(&push.repo, &push.name);
        let current = current.as_deref().unwrap_or(crate::receive::ZERO_OID);
        if current != push.old {
            return fail(format!(
                "{} moved to {} while this push waited for the build before it; fetch, rebase or merge, and push again",
                push.name,
                &current[..current.len().min(12)]
            ));
        }
    }
    if let Err(outcome) = advance(BuildStatus::Building) {
        return outcome;
    }
    log.set_stage(crate::logs::stage::BUILD);
    log.line(format!(
        "-----> Building {} at {} (build {id})",
        source.app,
        &source.commit[..source.commit.len().min(12)]
    ));
    let repository = stages.registry.repository(source.app.as_str());
    let tag = format!("build-{id}");
    // The image the app runs now: its layers with the same key are reused.
    let previous = match stages.store.live_release(&source.app) {
        Ok(live) => live.map(|release| release.image),
        Err(error) => {
            log.line(format!(" !     cannot read the running release ({error}); every layer is written anew"));
            None
        }
    };
    let previous_metadata = match &previous {
        Some(image) => stages.exporter.previous_metadata(&source.app, image).await,
        None => None,
    };
    let destination = Destination { repository: repository.clone(), tag: tag.clone(), previous, previous_metadata };
    let built = match stages.builder.build(source, &destination, log).await {
        Ok(built) => built,
        Err(error) => return fail(format!("build of app {:?} failed: {error}", source.app.as_str())),
    };
    record(log, id, "its buildpack", stages.store.set_build_buildpack(id, built.buildpack()));
    if let Err(error) = keep_release_files(stages, source, log) {
        return fail(format!("cannot read the app's Procfile or chart: {error}"));
    }

    if let Err(outcome) = advance(BuildStatus::Pushing) {
        return outcome;
    }
    log.set_stage(crate::logs::stage::PUSH);
    // A Dockerfile's image goes through dockerd; a buildpack's outputs are exported
    // layer by layer, reusing what the running image has; a build pod exported itself.
    let pushed = match &built {
        Built::Image { reference } => match &stages.docker {
            Some(docker) => {
                stages.registry.push(docker, reference, &repository, &tag, log).await.map_err(|e| e.to_string())
            }
            None => Err("this hoistd has no dockerd to push a Dockerfile's image from".to_string()),
        },
        Built::Assembled(assembled) => {
            let exported = stages
                .exporter
                .export(&source.app, assembled, &tag, destination.previous_metadata.as_ref(), source.work.path(), log)
                .await;
            exported.map(|exported| exported.digest).map_err(|e| e.to_string())
        }
        Built::Exported { digest, .. } => Ok(digest.clone()),
    };
    let digest = match pushed {
        Ok(digest) => digest,
        Err(error) => return fail(error),
    };
    record(log, id, "its digest", stages.store.set_build_digest(id, &digest));

    // An app deleted during the build (and maybe created again under the same name) took
    // its builds with it: build ids are never reused, so this build must not deploy.
    if !matches!(stages.store.build(id), Ok(Some(build)) if build.app == source.app) {
        return Outcome::Failed {
            message: format!("app {} was deleted during this build; nothing was deployed", source.app),
        };
    }
    if let Err(outcome) = advance(BuildStatus::Deploying) {
        return outcome;
    }
    let update = TagUpdate {
        app: source.app.clone(),
        tag: TRACKED_TAG.to_string(),
        repository,
        digest: digest.clone(),
        source: crate::store::ImageSource::Build,
        build_id: Some(id),
        cause: None,
        cause_log: Some(log.clone()),
        prologue: None,
    };
    let outcome = match stages.image_streams.record(update).await {
        Err(error) => return fail(error.to_string()),
        Ok(Recorded::Unchanged) | Ok(Recorded::Untracked) => Outcome::Unchanged { digest },
        Ok(Recorded::RolloutStarted(done)) => match done.await {
            Ok(Ok(release)) => Outcome::Live { release: release.number },
            Ok(Err(error)) => return fail(format!("rollout failed: {error}")),
            Err(_) => return fail("the rollout stage stopped before finishing; restart hoistd".to_string()),
        },
    };
    // The release is live whatever the record says; a failure here is logged and told.
    record(log, id, "its success", stages.store.set_build_status(id, BuildStatus::Succeeded));
    outcome
}

/// A store write of the pipeline: a failure is never dropped. It goes to hoistd's log
/// and to the build's log, so the user sees that the record may be wrong. True: written.
fn record(log: &LiveLog, build: i64, what: &str, result: crate::store::Result<()>) -> bool {
    match result {
        Ok(()) => true,
        Err(error) => {
            tracing::error!(build, %error, "cannot record {what}");
            log.line(format!(" !     hoistd could not record {what} for build {build}: {error}"));
            false
        }
    }
}

/// What the release needs from the source besides the image: the Procfile's process
/// types, and the app's own chart (`chart/Chart.yaml`) for the kubernetes target.
fn keep_release_files(stages: &Stages, source: &Source, log: &LiveLog) -> std::io::Result<()> {
    let procfile = crate::archive::read_file(&source.tar, "Procfile", crate::archive::SMALL_FILE_MAX)?;
    let processes = crate::buildpack::procfile_processes(&String::from_utf8_lossy(&procfile.unwrap_or_default()));
    let others: Vec<&str> = processes.keys().map(String::as_str).filter(|p| *p != "web").collect();
    if !others.is_empty() {
        log.line(format!("-----> Procfile process types besides web: {}", others.join(", ")));
    }
    record(log, source.build_id, "its process types", stages.store.set_build_processes(source.build_id, &processes));
    // What the app's target keeps besides the image (the kubernetes target: chart/).
    let target = match stages.store.app(&source.app) {
        Ok(Some(app)) => stages.targets.get(app.target).ok(),
        _ => None,
    };
    if let Some(target) = target {
        let files = crate::target::SourceFiles {
            app: &source.app,
            build_id: source.build_id,
            tar: &source.tar,
            files: &source.files,
        };
        if let Some(line) = target.keep_source(&files)? {
            log.line(line);
        }
    }
    Ok(())
}

/// Waits (up to 10 s) until git has moved the pushed branch to `commit`: git does so right
/// after the hook accepted, and the next push's check must see it.
async fn wait_for_branch(push: &PushedRef, commit: &str) {
    for _ in 0..100 {
        if crate::receive::branch_head(&push.repo, &push.name).as_deref() == Some(commit) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tracing::warn!(branch = %push.name, commit, "git did not move the branch within 10 s of accepting the push");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_per_app_keeps_only_the_newest_waiting_build() {
        let mut queue = AppQueue::default();
        assert_eq!(queue.submit(1), Admission::Start);
        assert_eq!(queue.submit(2), Admission::Wait);
        assert_eq!(queue.submit(3), Admission::WaitSuperseding(2));
        assert_eq!(queue.submit(4), Admission::WaitSuperseding(3));
        assert_eq!(queue.finish(), Some(4));
        assert!(!queue.is_idle());
        assert_eq!(queue.submit(5), Admission::Wait);
        assert_eq!(queue.finish(), Some(5));
        assert_eq!(queue.finish(), None);
        assert!(queue.is_idle());
        assert_eq!(queue.submit(6), Admission::Start);
    }

    #[test]
    fn outcomes_that_accept_the_push() {
        assert!(Outcome::Live { release: 1 }.is_ok());
        assert!(Outcome::Unchanged { digest: "d".into() }.is_ok());
        assert!(!Outcome::Failed { message: "m".into() }.is_ok());
        assert!(!Outcome::Superseded { by: 3 }.is_ok());
        let json = serde_json::to_string(&Outcome::Live { release: 2 }).unwrap();
        assert_eq!(json, r#"{"result":"live","release":2}"#);
    }
}
