//! The connection to dockerd, shared by the build and rollout stages.

use bollard::Docker;

/// What can go wrong reaching dockerd.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach dockerd at {host}: {source}; start it (tests/env/up does) and try again")]
    Connect { host: String, source: bollard::errors::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Connects to dockerd at `host` and settles on the API version both sides speak:
/// Debian's dockerd 20.10 speaks 1.41 at most, older than bollard's default.
pub async fn connect(host: &str) -> Result<Docker> {
    let connect_error = |source| Error::Connect { host: host.to_string(), source };
    let docker = if let Some(path) = host.strip_prefix("unix://") {
        Docker::connect_with_unix(path, 600, bollard::API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_http(host, 600, bollard::API_DEFAULT_VERSION)
    }
    .map_err(connect_error)?;
    docker.negotiate_version().await.map_err(connect_error)
}

/// Label on every container, volume and image hoist creates: the hoistd instance.
pub const LABEL_INSTANCE: &str = "org.hoist.instance";
/// Label: the app a container belongs to.
pub const LABEL_APP: &str = "org.hoist.app";
/// Label: the release a container runs.
pub const LABEL_RELEASE: &str = "org.hoist.release";
/// Label: what the container is for (`builder` or `release`).
pub const LABEL_ROLE: &str = "org.hoist.role";
/// Label: which process of its release a container is (`web.1`, `worker.2`).
pub const LABEL_PROCESS: &str = "org.hoist.process";
