//! Disk that does not fill: after every rollout an app keeps the images of its last N
//! releases that served (so `rollback` works) and the one its tracked tag points at; older
//! images leave dockerd and hoistd's registry. Deleting an app removes them all.
//!
//! The registry only forgets manifests; the blobs are freed by its garbage collection,
//! which `registry` runs when hoistd starts (no push can run then).
//!
//! Architecture invariant: the keep rule (`kept_digests`) is the one rollbacks are checked
//! against, so a release whose image is gone is refused before anything is deployed.

use crate::app::AppName;
use crate::docker::{LABEL_APP, LABEL_INSTANCE};
use crate::image_stream::TRACKED_TAG;
use crate::registry::Registry;
use crate::store::{self, Release, ReleaseStatus, Store};
use bollard::query_parameters::{ListImagesOptionsBuilder, RemoveImageOptionsBuilder};
use bollard::Docker;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// What a clean-up freed.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Freed {
    /// Images removed from dockerd, and their size (shared layers counted in each).
    pub images: usize,
    pub image_bytes: u64,
    /// Manifests deleted from the registry.
    pub manifests: usize,
}

impl std::ops::AddAssign for Freed {
    fn add_assign(&mut self, other: Freed) {
        self.images += other.images;
        self.image_bytes += other.image_bytes;
        self.manifests += other.manifests;
    }
}

/// The digest of an image reference `repository@sha256:…`.
fn digest_of(image: &str) -> Option<&str> {
    image.rsplit_once('@').map(|(_, digest)| digest)
}

/// The digests an app keeps: those of its last `keep` releases that served (live or
/// retired), and the tracked tag's current one (a rollout may be on its way).
pub fn kept_digests(releases: &[Release], current: Option<&str>, keep: usize) -> BTreeSet<String> {
    let mut newest_first: Vec<&Release> =
        releases.iter().filter(|r| matches!(r.status, ReleaseStatus::Live | ReleaseStatus::Retired)).collect();
    newest_first.sort_by_key(|r| std::cmp::Reverse(r.number));
    let mut kept: BTreeSet<String> = BTreeSet::new();
    for release in newest_first {
        if kept.len() >= keep {
            break;
        }
        if let Some(digest) = digest_of(&release.image) {
            kept.insert(digest.to_string());
        }
    }
    kept.extend(current.map(str::to_string));
    kept
}

/// Applies the keep rule.
#[derive(Clone)]
pub struct Retention {
    /// The dockerd the docker target pulls images into; none without one.
    docker: Option<Docker>,
    registry: Registry,
    store: Arc<Store>,
    instance: String,
    keep: usize,
}

impl Retention {
    pub fn new(
        docker: Option<Docker>,
        registry: Registry,
        store: Arc<Store>,
        instance: String,
        keep: usize,
    ) -> Retention {
        Retention { docker, registry, store, instance, keep: keep.max(1) }
    }

    pub fn keep(&self) -> usize {
        self.keep
    }

    /// The digests `app` keeps now.
    pub fn kept(&self, app: &AppName) -> Result<BTreeSet<String>, store::Error> {
        let releases = self.store.releases(app)?;
        let current = self.store.current_digest(app, TRACKED_TAG)?;
        Ok(kept_digests(&releases, current.as_deref(), self.keep))
    }

    /// Removes the app's images that the keep rule lets go.
    pub async fn apply(&self, app: &AppName) -> Freed {
        let kept = match self.kept(app) {
            Ok(kept) => kept,
            Err(error) => {
                tracing::warn!(%app, %error, "retention skipped");
                return Freed::default();
            }
        };
        // Only images hoist built are hoist's to delete; an image the app follows belongs
        // to whoever pushed it.
        let known: BTreeSet<String> = self
            .store
            .image_stream(app)
            .unwrap_or_default()
            .into_iter()
            .filter(|entry| entry.source.is_hoists())
            .map(|entry| entry.digest)
            .collect();
        let mut freed = self.remove_local_images(app, &kept).await;
        for digest in known.difference(&kept) {
            if self.registry.delete_manifest(app.as_str(), digest).await {
                freed.manifests += 1;
            }
        }
        if freed != Freed::default() {
            tracing::info!(%app, ?freed, keep = self.keep, "old images removed");
        }
        freed
    }

    /// Removes every image of `app` (it is being deleted): `digests` are those its image
    /// stream knew, read before its rows went.
    pub async fn remove_app(&self, app: &AppName, digests: &[String]) -> Freed {
        let mut freed = self.remove_local_images(app, &BTreeSet::new()).await;
        for digest in digests.iter().collect::<BTreeSet<_>>() {
            if self.registry.delete_manifest(app.as_str(), digest).await {
                freed.manifests += 1;
            }
        }
        freed
    }

    /// Removes the app's images in dockerd (built or pulled) whose digests are not kept.
    async fn remove_local_images(&self, app: &AppName, kept: &BTreeSet<String>) -> Freed {
        let Some(docker) = &self.docker else { return Freed::default() };
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{LABEL_INSTANCE}={}", self.instance), format!("{LABEL_APP}={app}")],
        )]);
        let options = ListImagesOptionsBuilder::default().all(false).filters(&filters).build();
        let images = match docker.list_images(Some(options)).await {
            Ok(images) => images,
            Err(error) => {
                tracing::warn!(%app, %error, "cannot list the app's images");
                return Freed::default();
            }
        };
        let mut freed = Freed::default();
        for image in images {
            let is_kept = image.repo_digests.iter().filter_map(|d| digest_of(d)).any(|d| kept.contains(d));
            // An image never pushed (its build failed after assembling) has no digest: it
            // is a leftover too.
            if is_kept {
                continue;
            }
            let remove = RemoveImageOptionsBuilder::default().force(true).build();
            match docker.remove_image(&image.id, Some(remove), None).await {
                Ok(_) => {
                    freed.images += 1;
                    freed.image_bytes += u64::try_from(image.size).unwrap_or(0);
                }
                Err(error) => tracing::debug!(%app, image = %image.id, %error, "cannot remove image"),
            }
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TargetKind;

    fn release(number: i64, digest: &str, status: ReleaseStatus) -> Release {
        Release {
            app: AppName::parse("web1").unwrap(),
            number,
            image: format!("r@{digest}"),
            build_id: None,
            status,
            target: TargetKind::Docker,
            revision: None,
            config_version: 0,
            config: Default::default(),
            cause: String::new(),
            processes: Default::default(),
            formation: Default::default(),
            error: None,
            created_at: String::new(),
            finished_at: None,
        }
    }

    #[test]
    fn keeps_the_last_releases_that_served_and_the_current_tag() {
        use ReleaseStatus::*;
        let releases = [
            release(1, "sha256:a", Retired),
            release(2, "sha256:b", Retired),
            release(3, "sha256:c", Failed),
            release(4, "sha256:b", Retired), // a rollback to 2: the same image
            release(5, "sha256:d", Live),
        ];
        let kept = kept_digests(&releases, Some("sha256:e"), 2);
        let kept: Vec<&str> = kept.iter().map(String::as_str).collect();
        assert_eq!(kept, ["sha256:b", "sha256:d", "sha256:e"], "two images that served, plus the tag's");
        let kept = kept_digests(&releases, None, 5);
        assert!(!kept.contains("sha256:c"), "a failed release's image is not worth keeping");
        assert_eq!(kept.len(), 3);
    }
}
