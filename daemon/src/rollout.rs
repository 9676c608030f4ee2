//! The rollout stage: the release state machine, one rollout at a time per app, over
//! whichever target the app runs on (`target`).
//!
//! A release's life, the same on every target:
//!
//! ```text
//!   pending ──ready──▶ live ──newer release live──▶ retired
//!      │
//!      ├──never ready, never served──────▶ failed       (the previous release keeps serving)
//!      ├──deployed, failed, undone────────▶ rolled_back  (Helm's --atomic: the previous one serves again)
//!      └──hoistd stopped──────────────────▶ interrupted  (marked on the next start, repaired by the target)
//! ```
//!
//! A release is an image and a config. Three changes make one: a new digest on the
//! tracked tag (the image stream; the app's current config), a config change (the live
//! release's image, the new config), and a rollback (release N's image and config).
//!
//! Architecture invariant: the only module that writes a release's status, and the only
//! caller of a target; a rollout starts only from a `RolloutRequest` on this stage's
//! channel (sent by the image stream, or by the API for config and rollback).

use crate::app::AppName;
use crate::config::TargetKind;
use crate::logs::{LiveLog, LogDir, Tee};
use crate::retention::Retention;
use crate::router::Routes;
use crate::store::{self, ConfigVars, NewRelease, Release, Store};
use crate::target::{self, Reach, Targets};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex};
use tracing::instrument;

/// What can go wrong in a rollout. Each message is shown to the user who caused it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("release {number} of {app} {what}: {reason}; {outcome}")]
    Failed { app: String, number: i64, what: &'static str, reason: String, outcome: String },
    #[error("{app} has no release yet to {what}: push the app first")]
    NothingDeployed { app: String, what: &'static str },
    #[error("{app} has no release {number}; list them with `hoist releases {app}`")]
    UnknownRelease { app: String, number: i64 },
    #[error(
        "release {number} of {app} cannot come back: its image was removed (an app keeps the images of its \
         last {keep} releases that served; rollout.keep_releases)"
    )]
    ImageGone { app: String, number: i64, keep: usize },
    #[error("app {0} was deleted during this deploy; nothing was deployed")]
    AppGone(String),
    #[error(transparent)]
    Target(#[from] target::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("cannot write the release log: {0}")]
    Log(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a new release changes.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new digest on the tracked tag: this image (`repository@sha256:…`) with the app's
    /// current config.
    /// `cause` says what made it when that is not the build or a push (a rebase).
    Image { image: String, build_id: Option<i64>, cause: Option<String> },
    /// The app's config changed: the live release's image with the current config.
    Config { description: String },
    /// Release `to`'s image and config again; the app's config becomes that config.
    Rollback { to: i64 },
    /// The live release's image and config again, with the app's formation now
    /// (`ps:scale`) or just new processes (`ps:restart`): `description` says which.
    Formation { description: String },
}

/// A request to roll out a new release.
#[derive(Debug)]
pub struct RolloutRequest {
    pub app: AppName,
    pub change: Change,
    /// The log of the build that caused it, which the pushing `git` follows.
    pub cause_log: Option<Arc<LiveLog>>,
    /// A log whose lines come first in the release's timeline: the work that made its
    /// image when no build did (a rebase).
    pub prologue: Option<PathBuf>,
    /// Who asked for it, when a person did (a rollback, a config change): written with
    /// the release.
    pub audit: Option<store::Audit>,
    /// Told how it ended.
    pub done: Option<oneshot::Sender<Result<Release>>>,
}

/// The release state machine over the targets.
#[derive(Clone)]
pub struct Rollouts {
    store: Arc<Store>,
    targets: Targets,
    routes: Routes,
    logs: LogDir,
    retention: Retention,
    /// How long a release phase may run.
    release_timeout: std::time::Duration,
}

impl Rollouts {
    pub fn new(store: Arc<Store>, targets: Targets, routes: Routes, logs: LogDir, retention: Retention) -> Rollouts {
        let release_timeout = std::time::Duration::from_secs(600);
        Rollouts { store, targets, routes, logs, retention, release_timeout }
    }

    /// How long a release phase (a Procfile `release:` command) may run.
    pub fn with_release_timeout(mut self, timeout: std::time::Duration) -> Rollouts {
        self.release_timeout = timeout;
        self
    }

    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// What the new release is made of; `None`: nothing to do.
    fn new_release(&self, app: &AppName, target: TargetKind, change: &Change) -> Result<NewRelease> {
        let (config_version, config) = self.store.app_config(app)?;
        let formation = self.store.app(app)?.map(|a| a.formation).unwrap_or_default();
        let live = || self.store.live_release(app);
        Ok(match change {
            Change::Image { image, build_id, cause } => NewRelease {
                image: image.clone(),
                build_id: *build_id,
                target,
                config_version,
                config,
                cause: match (cause, build_id) {
                    (Some(cause), _) => cause.clone(),
                    (None, Some(id)) => format!("build {id}"),
                    (None, None) => "image pushed".to_string(),
                },
                processes: match build_id {
                    // A build of a deleted app is gone with it, even if an app of the same
                    // name exists now: its image must not go live there.
                    Some(id) => match self.store.build(*id)? {
                        Some(build) if build.app == *app => build.processes,
                        _ => return Err(Error::AppGone(app.to_string())),
                    },
                    None => Default::default(),
                },
                formation: formation.clone(),
                audit: None,
            },
            // The live release's image and processes again, with the app's config and
            // formation now.
            Change::Config { description } | Change::Formation { description } => {
                let what = match change {
                    Change::Config { .. } => "apply config to",
                    _ => "scale or restart",
                };
                let live = live()?.ok_or_else(|| Error::NothingDeployed { app: app.to_string(), what })?;
                NewRelease {
                    image: live.image,
                    build_id: live.build_id,
                    target,
                    config_version,
                    config,
                    cause: description.clone(),
                    processes: live.processes,
                    formation,
                    audit: None,
                }
            }
            Change::Rollback { to } => {
                let old =
                    self.store.release(app, *to)?.ok_or(Error::UnknownRelease { app: app.to_string(), number: *to })?;
                let kept = self.retention.kept(app)?;
                if !old.image.rsplit_once('@').is_some_and(|(_, digest)| kept.contains(digest)) {
                    let keep = self.retention.keep();
                    return Err(Error::ImageGone { app: app.to_string(), number: *to, keep });
                }
                // The app's config becomes the old one, so the next push keeps it.
                let changes = config_diff(&config, &old.config);
                let config_version = match self.store.change_app_config(app, &changes, None)? {
                    Some((version, _)) => version,
                    None => config_version,
                };
                NewRelease {
                    image: old.image,
                    build_id: old.build_id,
                    target,
                    config_version,
                    config: old.config,
                    cause: format!("rollback to {to}"),
                    processes: old.processes,
                    formation: formation.clone(),
                    audit: None,
                }
            }
        })
    }

    /// Rolls out the app's next release.
    #[instrument(skip_all, fields(app = %request.app))]
    pub async fn roll_out(&self, request: &RolloutRequest) -> Result<Release> {
        let app = &request.app;
        let settings = self.store.app(app)?.ok_or_else(|| Error::AppGone(app.to_string()))?;
        let target = self.targets.get(settings.target)?;
        let mut new = self.new_release(app, settings.target, &request.change)?;
        new.audit = request.audit.clone();
        let release = self.store.create_release(app, &new)?;
        let release_log = self.logs.open(&self.logs.release_log(app, release.number))?;
        release_log.mask(self.store.app_secrets(app)?);
        if let Some(prologue) = &request.prologue {
            if let Err(error) = release_log.copy_from(prologue) {
                tracing::warn!(%app, path = %prologue.display(), %error, "cannot copy the lines before the rollout");
            }
        }
        for log in [Some(&release_log), request.cause_log.as_ref()].into_iter().flatten() {
            log.set_stage(crate::logs::stage::ROLLOUT);
        }
        let log = Tee::new([Some(release_log), request.cause_log.clone()].into_iter().flatten().collect());
        log.line(format!(
            "-----> Rolling out release {} of {} on {} ({}; {}, config v{})",
            release.number, app, settings.target, release.image, release.cause, release.config_version
        ));
        let previous = self.store.live_release(app)?;
        // The release phase: before any traffic moves, in the new image with the new config.
        if let Some(command) = release.processes.get(target::RELEASE_PROCESS) {
            log.set_stage(crate::logs::stage::RELEASE);
            log.line(format!("-----> Release phase: {command}"));
            let started = std::time::Instant::now();
            if let Err(failure) = target.release_phase(app, &release, command, self.release_timeout, &log).await {
                let what = "failed its release phase";
                return Err(self.record_failure(app, &release, previous.as_ref(), failure, Some(what), &log)?);
            }
            log.line(format!("       release phase done in {:.1} s", started.elapsed().as_secs_f64()));
            log.set_stage(crate::logs::stage::ROLLOUT);
        }
        let deployed = match target.deploy(app, &release, &log).await {
            Ok(deployed) => deployed,
            Err(failure) => return Err(self.record_failure(app, &release, previous.as_ref(), failure, None, &log)?),
        };
        let before = self.routes.addresses(app.as_str());
        if let Reach::Addresses(upstreams) = deployed.reach {
            let web = upstreams.len();
            self.routes.set_all(app.as_str(), upstreams);
            match web {
                0 => log.line(format!("       release {} runs no web process (scaled to 0)", release.number)),
                1 => log.line(format!("       release {} answers; traffic switched", release.number)),
                n => {
                    log.line(format!("       release {}'s {n} web processes answer; traffic switched", release.number))
                }
            }
        }
        if let Err(failure) = target.settle(app, &release, &log).await {
            match before {
                Some(addresses) => self.routes.set_all(app.as_str(), addresses),
                None => self.routes.remove(app.as_str()),
            }
            log.line("       traffic switched back");
            return Err(self.record_failure(app, &release, previous.as_ref(), failure, None, &log)?);
        }
        self.store.make_release_live(app, release.number, deployed.revision)?;
        log.line(format!("       release {} is live", release.number));
        if let Some(previous) = previous {
            log.line(format!("       retiring release {}", previous.number));
            target.retire(app, &previous).await;
        }
        self.store.release(app, release.number)?.ok_or_else(|| Error::AppGone(app.to_string()))
    }

    /// Records a release that did not go live; returns the error to show.
    fn record_failure(
        &self,
        app: &AppName,
        release: &Release,
        previous: Option<&Release>,
        failure: target::Failure,
        what: Option<&'static str>,
        log: &Tee,
    ) -> Result<Error> {
        self.store.fail_release(app, release.number, &failure.reason, failure.rolled_back, failure.revision)?;
        if let (Some(live), Some(revision)) = (previous, failure.restored_revision) {
            self.store.set_release_revision(app, live.number, revision)?;
        }
        let outcome = match (previous, failure.rolled_back) {
            (Some(live), true) => format!("rolled back to release {}, which keeps serving", live.number),
            (Some(live), false) => format!("release {} keeps serving", live.number),
            (None, true) => "rolled back; no earlier release to serve".to_string(),
            (None, false) => "no earlier release to serve".to_string(),
        };
        let what = what.unwrap_or(if failure.rolled_back { "failed" } else { "never became healthy" });
        let error =
            Error::Failed { app: app.to_string(), number: release.number, what, reason: failure.reason, outcome };
        log.line(format!("       {error}"));
        Ok(error)
    }

    /// After a restart: each app's target repairs what a killed rollout left and brings
    /// the live release back; routes are set again.
    pub async fn restore(&self, interrupted: &[Release]) -> Result<()> {
        for app in self.store.apps()? {
            let Ok(target) = self.targets.get(app.target) else {
                tracing::error!(app = %app.name, target = %app.target, "cannot restore: target not available");
                continue;
            };
            let live = self.store.live_release(&app.name)?;
            let cut: Vec<Release> = interrupted.iter().filter(|r| r.app == app.name).cloned().collect();
            match target.restore(&app.name, live.as_ref(), &cut).await {
                Ok(restored) => {
                    if let (Some(live), Some(revision)) = (&live, restored.live_revision) {
                        self.store.set_release_revision(&app.name, live.number, revision)?;
                    }
                    if let Some(Reach::Addresses(upstreams)) = restored.reach {
                        tracing::info!(app = %app.name, ?upstreams, "route restored");
                        self.routes.set_all(app.name.as_str(), upstreams);
                    }
                }
                Err(error) => tracing::error!(app = %app.name, %error, "cannot restore the live release"),
            }
        }
        Ok(())
    }

    /// Removes what the app runs on its target, and its route.
    pub async fn remove_app(&self, app: &store::App) -> Result<()> {
        self.routes.remove(app.name.as_str());
        self.targets.get(app.target)?.remove_app(&app.name).await?;
        Ok(())
    }
}

/// The changes that turn config `from` into `to`.
fn config_diff(from: &ConfigVars, to: &ConfigVars) -> BTreeMap<String, Option<String>> {
    let mut changes: BTreeMap<String, Option<String>> =
        from.keys().filter(|key| !to.contains_key(*key)).map(|key| (key.clone(), None)).collect();
    for (key, value) in to {
        if from.get(key) != Some(value) {
            changes.insert(key.clone(), Some(value.clone()));
        }
    }
    changes
}

/// Starts the rollout stage: takes requests in order and runs them, one at a time per
/// app (a request waits for the app's rollout before it), different apps in parallel.
pub fn start_stage(rollouts: Rollouts) -> mpsc::Sender<RolloutRequest> {
    let (tx, mut rx) = mpsc::channel::<RolloutRequest>(64);
    tokio::spawn(async move {
        let locks: Arc<std::sync::Mutex<HashMap<AppName, Arc<Mutex<()>>>>> = Default::default();
        while let Some(mut request) = rx.recv().await {
            let lock = locks.lock().unwrap_or_else(|p| p.into_inner()).entry(request.app.clone()).or_default().clone();
            let rollouts = rollouts.clone();
            tokio::spawn(async move {
                let _one_at_a_time = lock.lock().await;
                let result = rollouts.roll_out(&request).await;
                if let Err(error) = &result {
                    tracing::warn!(app = %request.app, %error, "rollout failed");
                }
                // Old images go once the app's releases have moved on; the next rollout of
                // the app waits for this (it holds the app's lock).
                rollouts.retention.apply(&request.app).await;
                if let Some(done) = request.done.take() {
                    let _ = done.send(result);
                }
            });
        }
    });
    tx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_diff_sets_changed_and_removes_missing_keys() {
        let from = ConfigVars::from([("A".into(), "1".into()), ("B".into(), "2".into())]);
        let to = ConfigVars::from([("B".into(), "3".into()), ("C".into(), "4".into())]);
        let changes = config_diff(&from, &to);
        assert_eq!(
            changes,
            BTreeMap::from([
                ("A".to_string(), None),
                ("B".to_string(), Some("3".to_string())),
                ("C".to_string(), Some("4".to_string()))
            ])
        );
        assert!(config_diff(&to, &to).is_empty());
    }
}
