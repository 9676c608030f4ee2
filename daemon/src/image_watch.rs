//! Image streams that follow images built elsewhere: an app created with `--image
//! host:port/repo:tag` learns that tag's new digests two ways, and each new digest goes
//! to the image stream, which rolls it out once however it was learned:
//! - **notifications**: hoistd's own registry POSTs an event for every push
//!   (`notifications` in its config, with a token only hoistd knows);
//! - **polling**: every `image_poll_secs` (with jitter), the registry is asked for the
//!   tag's digest (OpenShift's scheduled import), for registries that cannot notify.
//!
//! Architecture invariant: this module only learns digests; `image_stream` decides.

use crate::app::AppName;
use crate::image_stream::{ImageStreams, TagUpdate, TRACKED_TAG};
use crate::registry::Registry;
use crate::store::{ImageSource, Store};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// An image reference an app follows, split: `host:port/team/edge:latest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followed {
    /// `host:port/team/edge`.
    pub repository: String,
    pub tag: String,
}

/// Parses `host[:port]/path[:tag]` (tag `latest` when absent); `None` when it is not one.
pub fn parse_reference(reference: &str) -> Option<Followed> {
    let (host, path) = reference.split_once('/')?;
    let host_ok = !host.is_empty() && (host.contains('.') || host.contains(':') || host == "localhost");
    let (path, tag) = match path.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') => (path, tag),
        _ => (path, "latest"),
    };
    let path_ok = !path.is_empty()
        && path.split('/').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        });
    let tag_ok =
        !tag.is_empty() && tag.len() <= 128 && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    (host_ok && path_ok && tag_ok && !reference.contains('@'))
        .then(|| Followed { repository: format!("{host}/{path}"), tag: tag.to_string() })
}

/// A registry notification envelope (distribution's `application/vnd.docker.distribution.events.v1+json`).
#[derive(Debug, Deserialize)]
pub struct Envelope {
    #[serde(default)]
    pub events: Vec<Event>,
}

#[derive(Debug, Deserialize)]
pub struct Event {
    pub action: String,
    pub target: Target,
}

#[derive(Debug, Deserialize)]
pub struct Target {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    #[serde(default)]
    pub digest: String,
    #[serde(default)]
    pub repository: String,
    pub tag: Option<String>,
}

/// The (repository, tag, digest) of each manifest push in an envelope.
pub fn pushed_tags(envelope: &Envelope) -> Vec<(String, String, String)> {
    envelope
        .events
        .iter()
        .filter(|e| e.action == "push" && e.target.media_type.contains("manifest"))
        .filter_map(|e| Some((e.target.repository.clone(), e.target.tag.clone()?, e.target.digest.clone())))
        .collect()
}

/// How long one ask for an image's digest may take.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(10);

/// How many registries are asked at once.
const POLL_CONCURRENCY: usize = 8;

/// Learns digests of followed images.
#[derive(Clone)]
pub struct ImageWatch {
    store: Arc<Store>,
    streams: ImageStreams,
    registry: Registry,
    /// `host:port` of hoistd's own registry, whose notifications name repositories without it.
    own_registry: String,
}

impl ImageWatch {
    pub fn new(store: Arc<Store>, streams: ImageStreams, registry: Registry, own_registry: String) -> ImageWatch {
        ImageWatch { store, streams, registry, own_registry }
    }

    /// A digest of `repository:tag` learned from `source`: every app following it records
    /// it (and rolls it out when new).
    async fn learned(&self, repository: &str, tag: &str, digest: &str, source: ImageSource) {
        let apps = match self.store.apps() {
            Ok(apps) => apps,
            Err(error) => {
                tracing::error!(%error, "cannot read the apps that follow images");
                return;
            }
        };
        for app in apps {
            let Some(followed) = app.image.as_deref().and_then(parse_reference) else { continue };
            if followed.repository != repository || followed.tag != tag {
                continue;
            }
            let update = TagUpdate {
                app: app.name.clone(),
                tag: TRACKED_TAG.to_string(),
                repository: repository.to_string(),
                digest: digest.to_string(),
                source,
                build_id: None,
                cause: None,
                cause_log: None,
                prologue: None,
            };
            match self.streams.record(update).await {
                Ok(crate::image_stream::Recorded::RolloutStarted(_)) => {
                    tracing::info!(app = %app.name, %repository, %tag, %digest, source = source.as_str(), "new image digest: rolling out")
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(app = %app.name, %error, "cannot record an image digest"),
            }
        }
    }

    /// Tag `to` of `repository` now points at `digest` (a promotion): apps following it roll
    /// out now, without waiting for the registry's notification or a poll.
    pub async fn promoted(&self, repository: &str, to: &str, digest: &str) {
        self.learned(repository, to, digest, ImageSource::Promotion).await;
    }

    /// Handles a notification envelope from hoistd's registry.
    pub async fn notified(&self, envelope: &Envelope) {
        for (repository, tag, digest) in pushed_tags(envelope) {
            let repository = format!("{}/{repository}", self.own_registry);
            self.learned(&repository, &tag, &digest, ImageSource::Notification).await;
        }
    }

    /// Asks the registries for the digest of every followed image once: a few at a
    /// time, each ask bounded by [`POLL_TIMEOUT`], so a registry that stalls holds back
    /// only the images it serves.
    pub async fn poll(&self) {
        use futures_util::StreamExt;
        let apps = match self.store.apps() {
            Ok(apps) => apps,
            Err(error) => {
                tracing::error!(%error, "cannot read the apps that follow images");
                return;
            }
        };
        let mut followed: Vec<Followed> =
            apps.iter().filter_map(|a| a.image.as_deref().and_then(parse_reference)).collect();
        followed.sort_by(|a, b| (&a.repository, &a.tag).cmp(&(&b.repository, &b.tag)));
        followed.dedup();
        futures_util::stream::iter(followed)
            .for_each_concurrent(POLL_CONCURRENCY, |image| async move {
                if let Some(digest) = self.digest_of(&image).await {
                    self.learned(&image.repository, &image.tag, &digest, ImageSource::Poll).await;
                }
            })
            .await;
    }

    /// The digest `image` has now, asked within [`POLL_TIMEOUT`].
    async fn digest_of(&self, image: &Followed) -> Option<String> {
        let reference = format!("{}:{}", image.repository, image.tag);
        match tokio::time::timeout(POLL_TIMEOUT, self.registry.digest(&reference)).await {
            Ok(Ok(digest)) => Some(digest),
            Ok(Err(error)) => {
                tracing::debug!(repository = %image.repository, %error, "poll: no digest");
                None
            }
            Err(_) => {
                tracing::warn!(repository = %image.repository, timeout = ?POLL_TIMEOUT, "poll: the registry did not answer in time");
                None
            }
        }
    }

    /// Polls every `interval`, each wait stretched by up to a tenth at random so many
    /// hoistds do not ask at once.
    pub fn start_polling(self, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let jitter = interval.mul_f64(rand::random::<f64>() * 0.1);
                tokio::time::sleep(interval + jitter).await;
                self.poll().await;
            }
        })
    }

    /// Checks an app's followed image right away (it was just created).
    pub async fn poll_app(&self, app: &AppName) {
        let app = match self.store.app(app) {
            Ok(Some(app)) => app,
            Ok(None) => return,
            Err(error) => {
                tracing::error!(%app, %error, "cannot read the app to poll its image");
                return;
            }
        };
        let Some(image) = app.image.as_deref().and_then(parse_reference) else { return };
        if let Some(digest) = self.digest_of(&image).await {
            self.learned(&image.repository, &image.tag, &digest, ImageSource::Poll).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_repository_and_tag() {
        let r = parse_reference("127.0.0.1:5000/team/edge:latest").unwrap();
        assert_eq!((r.repository.as_str(), r.tag.as_str()), ("127.0.0.1:5000/team/edge", "latest"));
        assert_eq!(parse_reference("registry.example/edge").unwrap().tag, "latest");
        assert_eq!(parse_reference("localhost:5000/a/b:v1.2").unwrap().repository, "localhost:5000/a/b");
        for bad in
            ["edge:latest", "127.0.0.1:5000/", "127.0.0.1:5000/Team/x", "r.example/x@sha256:ab", "r.example/x:bad tag"]
        {
            assert!(parse_reference(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_registry_envelope_yields_its_manifest_pushes() {
        // As docker-registry sends them: a layer push (no tag) and a manifest push.
        let json = r#"{"events":[
          {"id":"1","timestamp":"2026-11-25T07:00:00Z","action":"push",
           "target":{"mediaType":"application/octet-stream","digest":"sha256:aa","repository":"team/edge"}},
          {"id":"2","timestamp":"2026-11-25T07:00:01Z","action":"push",
           "target":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":525,
                     "digest":"sha256:bb","length":525,"repository":"team/edge",
                     "url":"http://127.0.0.1:5000/v2/team/edge/manifests/sha256:bb","tag":"latest"},
           "request":{"id":"r","addr":"127.0.0.1:1","host":"127.0.0.1:5000","method":"PUT","useragent":"docker"},
           "source":{"addr":"h:5000"}},
          {"id":"3","action":"pull","target":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
           "digest":"sha256:bb","repository":"team/edge","tag":"latest"}}]}"#;
        let envelope: Envelope = serde_json::from_str(json).unwrap();
        assert_eq!(pushed_tags(&envelope), [("team/edge".to_string(), "latest".to_string(), "sha256:bb".to_string())]);
    }
}
