//! The one way a commit becomes a build, whatever triggered it: a `git push` (the
//! pre-receive hook) or a Git host's webhook (after `receive::fetch_commit`). It exports
//! the commit into the build's work dir, creates the build and its log, and submits it to
//! the pipeline.
//!
//! Architecture invariant: every trigger goes through `Intake::submit`; triggers differ
//! only in how the commit got into the app's repo and what the log's first line says.

use crate::build::{Source, WorkDir};
use crate::logs::{stage, LogDir};
use crate::pipeline::{BuildRequest, Outcome, Pipeline, PushedRef};
use crate::receive::{self, Repos, SizeLimits};
use crate::store::{self, Store};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Why a commit was not taken.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The commit cannot be built as it is (too big, unreadable): the user's to fix.
    #[error(transparent)]
    Refused(receive::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A commit of an app to build.
pub struct Commit {
    pub app: store::App,
    pub commit: String,
    /// The ref it is the head of (`refs/heads/main`).
    pub git_ref: String,
    /// Where its objects are besides the app's repo (a push's quarantine).
    pub object_dirs: Vec<PathBuf>,
    /// The branch update, when a push is waiting on the outcome to accept it.
    pub push: Option<PushedRef>,
    /// The build log's first lines: what triggered it.
    pub notes: Vec<String>,
}

/// A build on its way.
pub struct Submitted {
    pub build_id: i64,
    /// Where its log is (follow it with `LogDir::follow`).
    pub log: PathBuf,
    pub outcome: oneshot::Receiver<Outcome>,
}

/// The intake.
#[derive(Clone)]
pub struct Intake {
    pub store: Arc<Store>,
    pub repos: Repos,
    pub logs: LogDir,
    pub pipeline: Pipeline,
    pub limits: SizeLimits,
    /// Where builds' scratch folders go (`<data>/work`).
    pub work_root: PathBuf,
    /// How many build logs an app keeps.
    pub keep_logs: usize,
}

impl Intake {
    pub async fn submit(&self, commit: Commit) -> Result<Submitted> {
        let app = &commit.app;
        let scratch = format!("{}-{}", app.name, &crate::auth::new_token()[..12]);
        let work = WorkDir::create(&self.work_root, &scratch).map_err(|e| {
            Error::Internal(format!("cannot create a build folder in {}: {e}", self.work_root.display()))
        })?;
        let tar = work.path().join("source.tar");
        let (repo, dest, name, sha, limits) =
            (self.repos.path(&app.name), tar.clone(), app.name.clone(), commit.commit.clone(), self.limits);
        let object_dirs = commit.object_dirs.clone();
        let files = tokio::task::spawn_blocking(move || {
            receive::export_commit(&repo, &object_dirs, &name, &sha, limits, &dest)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(Error::Refused)?;
        let build = self.store.create_build(&app.name, &commit.commit, &commit.git_ref)?;
        let pruned = self.logs.prune_builds(&app.name, self.keep_logs.saturating_sub(1));
        if pruned > 0 {
            tracing::info!(app = %app.name, pruned, "removed the logs of old builds");
        }
        let log_path = self.logs.build_log(&app.name, build.id);
        let log = self.logs.open(&log_path).map_err(|e| Error::Internal(e.to_string()))?;
        log.mask(self.store.app_secrets(&app.name)?);
        log.set_stage(stage::RECEIVE);
        for note in &commit.notes {
            log.line(note);
        }
        let (done, outcome) = oneshot::channel();
        let source = Source {
            app: app.name.clone(),
            build_id: build.id,
            commit: commit.commit,
            work: Arc::new(work),
            tar,
            files,
            buildpack_setting: app.buildpack.clone(),
            config: self.store.app_config(&app.name).map(|(_, vars)| vars).unwrap_or_default(),
        };
        self.pipeline
            .submit(BuildRequest { source, log, done, push: commit.push })
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Submitted { build_id: build.id, log: log_path, outcome })
    }

    /// Records a build that failed before it could start (a webhook whose commit could
    /// not be fetched), so the user finds it with the others.
    pub fn record_failure(&self, app: &store::App, commit: &str, git_ref: &str, notes: &[String], error: &str) {
        let Ok(build) = self.store.create_build(&app.name, commit, git_ref) else { return };
        if let Ok(log) = self.logs.open(&self.logs.build_log(&app.name, build.id)) {
            log.mask(self.store.app_secrets(&app.name).unwrap_or_default());
            for note in notes {
                log.line(note);
            }
            log.line(format!("=====> Failed: {error}"));
        }
        if let Err(record) = self.store.fail_build(build.id, error) {
            tracing::error!(build = build.id, %record, "cannot record the build's failure");
        }
    }
}
