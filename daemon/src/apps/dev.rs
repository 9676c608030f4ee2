//! The apps service's verbs for `hoist dev`: which contents of a working tree hoistd
//! lacks, and a build of a tree once they are sent. The tree is checked in `crate::dev`
//! and built through the intake, as pushes are.

use super::{Apps, Error, Result};
use crate::access::{Caller, Role};
use crate::app::AppName;
use crate::dev;
use crate::wire;
use std::path::PathBuf;

impl Apps {
    /// The contents of `tree` that hoistd does not hold for `name` yet.
    pub fn dev_missing(&self, caller: &Caller, name: &str, tree: wire::DevTree) -> Result<wire::DevMissing> {
        let app = self.authorize(caller, name, Role::Deployer, "deploying a working tree")?;
        let limits = self.intake.limits;
        let tree = match tree.since {
            None => dev::Tree::check(tree, limits),
            // Only what changed since the tree offered before: applied to that one.
            Some(_) => match self.dev_offered(&app.name) {
                Some(offered) => dev::Tree::apply(&offered, tree, limits),
                None => Err(dev::Error::Invalid("no tree was offered before; send the whole manifest".to_string())),
            },
        }
        .map_err(|e| match e {
            dev::Error::Invalid(message) if message.contains("send the whole manifest") => Error::Conflict(message),
            other => Error::Invalid(other.to_string()),
        })?;
        let missing = tree.missing(&self.dev_blobs(&app.name));
        // Kept, so the build that follows names it instead of sending it again.
        let offered = dev::Last { files: tree.files.clone(), build: 0, synced_mtime: 0 };
        offered.write(&self.dev_dir(&app.name).join("offered.json")).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(wire::DevMissing { missing, tree: tree.hash })
    }

    /// Where a dev build's upload goes while it arrives (after the caller may send one).
    pub fn dev_upload(&self, caller: &Caller, name: &str) -> Result<PathBuf> {
        let app = self.authorize(caller, name, Role::Deployer, "deploying a working tree")?;
        let nonce = &crate::auth::new_token()[..12];
        std::fs::create_dir_all(&self.intake.work_root).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(self.intake.work_root.join(format!("dev-{}-{nonce}.tar", app.name)))
    }

    /// The most a dev build's upload may be: every file of a push, and the manifest.
    pub fn dev_upload_limit(&self) -> u64 {
        self.intake.limits.max_total + (64 << 20)
    }

    /// A build of the working tree in `upload` (its manifest, then the contents hoistd
    /// lacked): the build is queued as a push's would be; its log tells the rest.
    pub async fn dev_build(&self, caller: &Caller, name: &str, upload: PathBuf) -> Result<wire::DevBuild> {
        let app = self.authorize(caller, name, Role::Deployer, "deploying a working tree")?;
        let blobs = self.dev_blobs(&app.name);
        let (into, limits) = (blobs.clone(), self.intake.limits);
        let offered = self.dev_offered(&app.name);
        let received = tokio::task::spawn_blocking(move || dev::receive(&upload, &into, limits, offered))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| match e {
                dev::Error::Io { .. } => Error::Internal(e.to_string()),
                refused => Error::Invalid(refused.to_string()),
            })?;
        let tree = received.tree;
        tracing::info!(app = %app.name, tree = &tree.hash[..12], files = received.files, "hoist dev: tree received");
        let last_path = self.dev_dir(&app.name).join("last.json");
        if let Some(synced) = self.dev_sync(&app, &tree, &blobs, &last_path).await? {
            let (release, files) = synced;
            let audit = Self::audit_entry(caller, Some(&app.name), "dev sync", &tree.hash[..12]);
            self.store.record_audit(&audit)?;
            blobs.keep_only(&tree);
            return Ok(wire::DevBuild {
                build: None,
                synced: files,
                release: Some(release),
                tree: tree.hash.clone(),
                files: tree.files.len(),
                received_files: received.files,
                received_bytes: received.bytes,
            });
        }
        let short = &tree.hash[..12];
        let mut notes = vec![format!(
            "-----> hoist dev: working tree {short} ({} files; {} sent, {} bytes)",
            tree.files.len(),
            received.files,
            received.bytes
        )];
        if let Some(base) = &tree.base {
            notes.push(format!("       on top of commit {}", &base[..base.len().min(12)]));
        }
        let audit = Self::audit_entry(caller, Some(&app.name), "dev build", short);
        let files = tree.files.len();
        let hash = tree.hash.clone();
        let kept = tree.clone();
        let submitted =
            self.intake.submit_tree(&app, tree, blobs.clone(), &notes, &audit).await.map_err(|e| match e {
                crate::intake::Error::Refused(error) => Error::Invalid(error.to_string()),
                other => Error::Internal(other.to_string()),
            })?;
        // The source tar is written: only this tree's contents are needed from now on.
        blobs.keep_only(&kept);
        let build = submitted.build_id;
        let last = dev::Last { files: kept.files.clone(), build, synced_mtime: 0 };
        last.write(&last_path).map_err(|e| Error::Internal(e.to_string()))?;
        // Nobody waits on the outcome here: the CLI follows the build's log.
        tokio::spawn(async move {
            let _ = submitted.outcome.await;
        });
        Ok(wire::DevBuild {
            build: Some(build),
            synced: Vec::new(),
            release: None,
            tree: hash,
            files,
            received_files: received.files,
            received_bytes: received.bytes,
        })
    }

    /// Copies what changed since the last tree into the running release, when the release
    /// is that tree's build and its buildpack says files may be synced; `None`: build.
    async fn dev_sync(
        &self,
        app: &crate::store::App,
        tree: &dev::Tree,
        blobs: &dev::Blobs,
        last_path: &std::path::Path,
    ) -> Result<Option<(i64, Vec<String>)>> {
        let Some(last) = dev::Last::read(last_path) else { return Ok(None) };
        let Some(live) = self.store.live_release(&app.name)? else { return Ok(None) };
        if live.build_id != Some(last.build) {
            return Ok(None);
        }
        let builds = self.store.builds(&app.name)?;
        let buildpack = builds.iter().find(|b| b.id == last.build).and_then(|b| b.buildpack.as_deref());
        // The buildpack's word, or the app's own (`.hoist/dev.toml`).
        let app_dev = dev::AppDev::of(tree, blobs).map_err(|e| Error::Invalid(e.to_string()))?.unwrap_or_default();
        if !(app_dev.sync || buildpack.is_some_and(|b| self.builder.syncs(b))) {
            return Ok(None);
        }
        let Some(changed) = dev::sync_plan(&last, tree, &self.builder.markers()) else { return Ok(None) };
        let mtime = dev::sync_mtime(&last);
        let archive = dev::sync_archive(blobs, &changed, mtime).map_err(|e| Error::Internal(e.to_string()))?;
        let paths: Vec<String> = changed.iter().map(|f| f.path.clone()).collect();
        let target = self.rollouts.targets().get(live.target).map_err(|e| Error::Conflict(e.to_string()))?;
        tracing::info!(app = %app.name, release = live.number, files = paths.len(), "hoist dev: syncing into the running release");
        match target.sync_files(&app.name, &live, archive, app_dev.signal.as_deref()).await {
            Ok(_) => {}
            // A target that cannot sync builds instead.
            Err(crate::target::Error::Unavailable { .. }) => return Ok(None),
            Err(error) => return Err(Error::Conflict(error.to_string())),
        }
        let synced = dev::Last { files: tree.files.clone(), build: last.build, synced_mtime: mtime };
        synced.write(last_path).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Some((live.number, paths)))
    }

    /// The tree last offered for `app` (`…/dev/missing`), if any.
    fn dev_offered(&self, app: &AppName) -> Option<dev::Tree> {
        let offered = dev::Last::read(&self.dev_dir(app).join("offered.json"))?;
        let whole = wire::DevTree { files: offered.files, ..Default::default() };
        dev::Tree::check(whole, self.intake.limits).ok()
    }

    fn dev_blobs(&self, app: &AppName) -> dev::Blobs {
        dev::Blobs::new(self.dev_dir(app).join("blobs"))
    }

    /// `hoist dev`'s files of `app`: its contents, the tree offered and the last one built.
    pub(super) fn dev_dir(&self, app: &AppName) -> PathBuf {
        self.dev_root.join(app.as_str())
    }
}
