//! hoist: a git-push PaaS. `git push` in, a running app out.
//!
//! The daemon (`hoistd`) is glue over the modules here; see ARCHITECTURE.md for the map.
//! The pipeline of one push, stage by stage:
//!
//! ```text
//!  receive ──BuildRequest──▶ pipeline (queue per app) ──▶ build ──▶ registry push
//!                                                                    │ digest
//!                                   rollout ◀──RolloutRequest── image_stream
//! ```
#![forbid(unsafe_code)]

pub mod access;
pub mod api;
pub mod app;
pub mod apps;
pub mod archive;
pub mod auth;
pub mod build;
pub mod buildpack;
pub mod config;
pub mod daemon;
pub mod dev;
pub mod docker;
pub mod export;
pub mod image;
pub mod image_stream;
pub mod image_watch;
pub mod intake;
pub mod listener;
pub mod logs;
pub mod outside_url;
pub mod pipeline;
pub mod receive;
pub mod registry;
pub mod retention;
pub mod rollout;
pub mod router;
pub mod runtime_version;
pub mod ssh;
pub mod stack;
pub mod store;
pub mod target;
pub mod tls;
pub mod version_source;
pub mod webhook;
pub mod wire;

#[cfg(test)]
mod proptests;

/// Installs the TLS crypto provider (ring) that HTTPS clients use, e.g. for an external
/// registry. Every binary calls this first; calling it twice is harmless.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
