//! Image streams: per app, every tag with its history of digests. A new digest on a
//! tag the app tracks starts a rollout of that image — the only way a new image does
//! (config changes and rollbacks reuse images already released).
//!
//! Architecture invariant: this module decides *whether* to roll out, never *how*.

use crate::app::AppName;
use crate::logs::LiveLog;
use crate::rollout::{Change, RolloutRequest};
use crate::store::{self, Release, Store};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// The tag an app's releases follow.
pub const TRACKED_TAG: &str = "latest";

/// What can go wrong recording a tag.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("the rollout stage has stopped; restart hoistd")]
    RolloutStopped,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A tag now points at a digest.
#[derive(Debug)]
pub struct TagUpdate {
    pub app: AppName,
    pub tag: String,
    pub repository: String,
    pub digest: String,
    /// Where it came from: `build` for hoist's own builds, `notification` and `poll` for
    /// images pushed by others.
    pub source: crate::store::ImageSource,
    pub build_id: Option<i64>,
    /// What the release it starts says made it, when not the build or a push (a rebase).
    pub cause: Option<String>,
    /// The build log that follows the rollout it may start.
    pub cause_log: Option<Arc<LiveLog>>,
    /// The lines before the rollout in the release's timeline (see
    /// [`crate::rollout::RolloutRequest::prologue`]).
    pub prologue: Option<std::path::PathBuf>,
}

/// What recording did.
#[derive(Debug)]
pub enum Recorded {
    /// Same digest as before: nothing to roll out.
    Unchanged,
    /// The tag is recorded but not tracked by any release.
    Untracked,
    /// A rollout started; the receiver tells how it ended.
    RolloutStarted(oneshot::Receiver<crate::rollout::Result<Release>>),
}

/// The image streams of all apps.
#[derive(Clone)]
pub struct ImageStreams {
    store: Arc<Store>,
    rollouts: mpsc::Sender<RolloutRequest>,
}

impl ImageStreams {
    pub fn new(store: Arc<Store>, rollouts: mpsc::Sender<RolloutRequest>) -> ImageStreams {
        ImageStreams { store, rollouts }
    }

    /// Appends `update` to its tag's history unless the tag points there already, and
    /// starts a rollout when the tag is tracked.
    pub async fn record(&self, update: TagUpdate) -> Result<Recorded> {
        let recorded = self.store.record_tag(
            &update.app,
            &update.tag,
            &update.repository,
            &update.digest,
            update.source,
            update.build_id,
        )?;
        if !recorded {
            return Ok(Recorded::Unchanged);
        }
        if update.tag != TRACKED_TAG {
            return Ok(Recorded::Untracked);
        }
        let (done, outcome) = oneshot::channel();
        let request = RolloutRequest {
            change: Change::Image {
                image: format!("{}@{}", update.repository, update.digest),
                build_id: update.build_id,
                cause: update.cause,
            },
            app: update.app,
            cause_log: update.cause_log,
            prologue: update.prologue,
            audit: None,
            done: Some(done),
        };
        self.rollouts.send(request).await.map_err(|_| Error::RolloutStopped)?;
        Ok(Recorded::RolloutStarted(outcome))
    }
}
