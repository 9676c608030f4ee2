//! The one way source becomes a build, whatever triggered it: a commit from a `git push`
//! (the pre-receive hook) or a Git host's webhook (after `receive::fetch_commit`), or a
//! working tree from `hoist dev` (`dev::Tree`). It writes the source into the build's
//! work dir as a tar, creates the build and its log, and submits it to the pipeline.
//!
//! Architecture invariant: every trigger goes through `Intake::submit` (commits) or
//! `Intake::submit_tree` (working trees); the two differ only in how the source's tar is
//! written and what the log's first lines say.

use crate::build::{Source, WorkDir};
use crate::logs::{stage, LiveLog, LogDir};
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

/// The ref of builds made from a `hoist dev` working tree.
pub const DEV_REF: &str = "dev";
/// Their commit: this and 40 hex digits of the tree's hash.
pub const DEV_COMMIT_PREFIX: &str = "dev-";

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
    /// Who asked (a push's caller, a webhook), written with the build.
    pub audit: store::Audit,
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

/// A build recorded and its log opened before its commit is in hand (a webhook's fetch
/// may take minutes: the user sees the build at once, and why it failed if it does).
pub struct Opened {
    pub build_id: i64,
    pub log_path: PathBuf,
    log: Arc<LiveLog>,
}

impl Intake {
    /// Exports the commit (refusing one too big or malformed before any build is
    /// recorded), records the build and hands it to the pipeline.
    pub async fn submit(&self, commit: Commit) -> Result<Submitted> {
        let exported = self.export(&commit).await?;
        let opened = self.open(&commit.app, &commit.commit, &commit.git_ref, &commit.notes, &commit.audit)?;
        self.enqueue(&commit.app, commit.commit, commit.push, opened, exported).await
    }

    /// A working tree sent by `hoist dev` (its contents already in `blobs`), as a build
    /// whose source is `dev`: its commit is `dev-<tree hash>`, its ref `dev`.
    pub async fn submit_tree(
        &self,
        app: &store::App,
        tree: crate::dev::Tree,
        blobs: crate::dev::Blobs,
        notes: &[String],
        audit: &store::Audit,
    ) -> Result<Submitted> {
        let work = self.work_dir(app)?;
        let tar = work.path().join("source.tar");
        let dest = tar.clone();
        let (tree, files) =
            tokio::task::spawn_blocking(move || tree.write_tar(&blobs, &dest).map(|files| (tree, files)))
                .await
                .map_err(|e| Error::Internal(e.to_string()))?
                .map_err(|e| Error::Internal(e.to_string()))?;
        let commit = format!("{DEV_COMMIT_PREFIX}{}", &tree.hash[..40]);
        let opened = self.open(app, &commit, DEV_REF, notes, audit)?;
        self.enqueue(app, commit, None, opened, Exported { work, tar, files }).await
    }

    fn work_dir(&self, app: &store::App) -> Result<WorkDir> {
        let scratch = format!("{}-{}", app.name, &crate::auth::new_token()[..12]);
        WorkDir::create(&self.work_root, &scratch)
            .map_err(|e| Error::Internal(format!("cannot create a build folder in {}: {e}", self.work_root.display())))
    }

    /// Like [`Intake::submit`] for a build recorded earlier with [`Intake::open`]; a
    /// refused commit fails that build.
    pub async fn submit_opened(&self, opened: Opened, commit: Commit) -> Result<Submitted> {
        match self.export(&commit).await {
            Ok(exported) => self.enqueue(&commit.app, commit.commit, commit.push, opened, exported).await,
            Err(error) => {
                self.fail(opened, &error.to_string());
                Err(error)
            }
        }
    }

    /// Records a build of `commit`, prunes the app's old build logs, and opens the new
    /// log with the app's secrets masked and `notes` (what triggered it) as its first lines.
    pub fn open(
        &self,
        app: &store::App,
        commit: &str,
        git_ref: &str,
        notes: &[String],
        audit: &store::Audit,
    ) -> Result<Opened> {
        let build = self.store.create_build(&app.name, commit, git_ref, audit)?;
        let pruned = self.logs.prune_builds(&app.name, self.keep_logs.saturating_sub(1));
        if pruned > 0 {
            tracing::info!(app = %app.name, pruned, "removed the logs of old builds");
        }
        let log_path = self.logs.build_log(&app.name, build.id);
        let log = self.logs.open(&log_path).map_err(|e| Error::Internal(e.to_string()))?;
        log.mask(self.store.app_secrets(&app.name)?);
        log.set_stage(stage::RECEIVE);
        for note in notes {
            log.line(note);
        }
        Ok(Opened { build_id: build.id, log_path, log })
    }

    /// Fails a build that never reached the pipeline (its commit could not be fetched or
    /// was refused), saying why in its log.
    pub fn fail(&self, opened: Opened, error: &str) {
        opened.log.line(format!("=====> Failed: {error}"));
        if let Err(record) = self.store.fail_build(opened.build_id, error) {
            tracing::error!(build = opened.build_id, %record, "cannot record the build's failure");
        }
    }

    async fn export(&self, commit: &Commit) -> Result<Exported> {
        let app = &commit.app;
        let work = self.work_dir(app)?;
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
        Ok(Exported { work, tar, files })
    }

    async fn enqueue(
        &self,
        app: &store::App,
        commit: String,
        push: Option<PushedRef>,
        opened: Opened,
        exported: Exported,
    ) -> Result<Submitted> {
        let (done, outcome) = oneshot::channel();
        let source = Source {
            app: app.name.clone(),
            build_id: opened.build_id,
            commit,
            work: Arc::new(exported.work),
            tar: exported.tar,
            files: exported.files,
            buildpack_setting: app.buildpack.clone(),
            config: self.store.app_config(&app.name)?.1,
        };
        let Opened { build_id, log_path, log } = opened;
        self.pipeline
            .submit(BuildRequest { source, log, done, push })
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Submitted { build_id, log: log_path, outcome })
    }
}

/// A commit's tree in a build folder.
struct Exported {
    work: WorkDir,
    tar: PathBuf,
    files: Vec<String>,
}
