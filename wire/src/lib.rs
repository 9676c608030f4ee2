//! The API's JSON shapes, shared by hoistd (which answers with them) and the `hoist`
//! CLI (which reads them): a crate of its own, so the CLI builds without the daemon's
//! Docker, Kubernetes, git and SQLite crates. Store rows never go on the wire themselves:
//! hoistd makes each of these from its row (`daemon/src/wire.rs`), so a column added to
//! the store is not published by accident.
//!
//! Statuses travel as strings, so a CLI older than its hoistd still reads a status it
//! does not know.
//!
//! Architecture invariant: data and serde only; no Docker, git, SQL, HTTP client or
//! server here.
#![forbid(unsafe_code)]

/// The file in hoistd's data dir that holds the admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// hoistd's registry, as `docker login` needs it. `username` and `password` are null for
/// an external registry (its access is the operator's).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registry {
    pub address: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// An app and its settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct App {
    pub name: String,
    pub deploy_branch: String,
    pub buildpack: Option<String>,
    pub target: String,
    pub config_version: i64,
    pub repo_url: Option<String>,
    /// Whether a webhook secret is set (the secret is shown once, when made).
    pub webhook: bool,
    pub image: Option<String>,
    pub created_at: String,
    /// The role the caller holds on it (`viewer`, `deployer`, `owner`; the admin is
    /// `owner` everywhere), so a page can hide what the caller may not do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// An app with the release it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppInfo {
    #[serde(flatten)]
    pub app: App,
    pub live_release: Option<Release>,
    /// Where the router serves it (`http://web1.localhost:8080/`).
    #[serde(default)]
    pub url: String,
}

/// A build of a commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Build {
    pub id: i64,
    pub app: String,
    pub commit: String,
    pub git_ref: String,
    /// queued, building, pushing, deploying, succeeded, failed, superseded, interrupted.
    pub status: String,
    pub buildpack: Option<String>,
    pub image_digest: Option<String>,
    pub error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
    /// Process types and their commands (the Procfile).
    pub processes: BTreeMap<String, String>,
}

/// A numbered deploy of one image and one config; never carries the config's values.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Release {
    pub app: String,
    pub number: i64,
    pub image: String,
    pub build_id: Option<i64>,
    /// pending, live, retired, failed, rolled_back, interrupted.
    pub status: String,
    pub target: String,
    /// The target's own number for it (Helm's revision).
    pub revision: Option<i64>,
    pub config_version: i64,
    /// What made it: `build 3`, `config GREETING (v2)`, `rollback to 1`.
    pub cause: String,
    pub processes: BTreeMap<String, String>,
    /// How many processes of each type it runs (a type not named: one).
    #[serde(default)]
    pub formation: BTreeMap<String, u32>,
    pub error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

/// An app's config vars (secret ones masked) and their version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub version: i64,
    pub vars: BTreeMap<String, String>,
    /// The names whose values are masked here and in logs.
    #[serde(default)]
    pub secret: Vec<String>,
}

/// The answer to a config change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigChanged {
    #[serde(flatten)]
    pub config: Config,
    /// The release it made, if one was live to replace.
    pub release: Option<Release>,
    #[serde(default)]
    pub message: Option<String>,
}

/// The last message of an NDJSON log stream: `{"end": {"status": "succeeded"}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogEnd {
    pub end: serde_json::Value,
}

/// An error answer: every non-2xx status carries one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorAnswer {
    pub error: String,
}

/// `POST /api/v1/apps`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    pub name: String,
    pub deploy_branch: Option<String>,
    pub buildpack: Option<String>,
    pub target: Option<String>,
    /// The Git host repository webhooks build from.
    pub repo: Option<String>,
    /// A token for a private repository (never shown again).
    pub repo_token: Option<String>,
    /// Follow this image (`host:port/repo:tag`) instead of building.
    pub image: Option<String>,
}

/// `PATCH /api/v1/apps/{app}`: settings to change; an absent field stays, `null` clears.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateApp {
    #[serde(default, with = "double_option", skip_serializing_if = "Option::is_none")]
    pub buildpack: Option<Option<String>>,
    #[serde(default, with = "double_option", skip_serializing_if = "Option::is_none")]
    pub repo: Option<Option<String>>,
    #[serde(default, with = "double_option", skip_serializing_if = "Option::is_none")]
    pub repo_token: Option<Option<String>>,
}

/// Tells an absent field (`None`) from a `null` one (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
    pub fn serialize<S: Serializer>(value: &Option<Option<String>>, s: S) -> Result<S::Ok, S::Error> {
        value.as_ref().and_then(Option::as_ref).serialize(s)
    }
}

/// `POST /api/v1/apps/{app}/rollback`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    pub release: i64,
}

/// What `POST /api/v1/apps/{app}/rebase` did to one app (and `POST /api/v1/rebase`, to
/// each app).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rebased {
    pub app: String,
    /// The new release, live; `None` when nothing was rolled out (see `message`).
    pub release: Option<Release>,
    /// `name (version)` of the app's stack, when it has one.
    pub stack: Option<String>,
    /// The digest of the run image the app is on now.
    pub run_image: Option<String>,
    /// Why nothing was rolled out, or why the rebase failed (`error`).
    pub message: Option<String>,
    /// True when the rebase of this app failed (the release before keeps serving).
    #[serde(default)]
    pub error: bool,
}

/// `POST /api/v1/apps/{app}/image-stream/promote`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Promote {
    pub from: String,
    pub to: String,
}

/// What a promotion did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Promoted {
    pub repository: String,
    pub tag: String,
    pub digest: String,
}

/// One digest a tag of an app's image stream pointed at.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageStreamEntry {
    pub tag: String,
    pub digest: String,
    pub repository: String,
    /// `build`, `notification`, `poll` or `promotion`.
    pub source: String,
    pub build_id: Option<i64>,
    pub created_at: String,
}

/// An app's image stream: every tag with its digests, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageStream {
    pub app: String,
    pub tags: BTreeMap<String, Vec<ImageStreamEntry>>,
}

/// Where a Git host sends an app's webhooks; `secret` only when it was just made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Webhook {
    pub path: String,
    pub repo: Option<String>,
    pub deploy_branch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_set: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// What a webhook delivery did: `pong`, `ignored`, `duplicate` or `queued` (with the
/// build it made).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookAnswer {
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What a clean-up freed.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Freed {
    /// Images removed from dockerd, and their size (shared layers counted in each).
    pub images: usize,
    pub image_bytes: u64,
    /// Manifests deleted from the registry.
    pub manifests: usize,
}

/// What `POST /api/v1/gc` freed, in all and per app.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gc {
    pub keep_releases: usize,
    pub freed: Freed,
    pub apps: BTreeMap<String, Freed>,
}

/// `GET /api/v1/whoami`: who the token is, what it reaches, and hoistd's SSH endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Whoami {
    /// `admin`, a user's name, or `token NAME` for a machine token.
    pub name: String,
    pub admin: bool,
    /// The token's scope when it is limited to one app: `web1 (deployer)`.
    pub scope: Option<String>,
    /// Where git over SSH listens (`host:port`) and its host key's fingerprint.
    pub ssh: Option<SshEndpoint>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SshEndpoint {
    pub address: String,
    pub host_key: String,
}

/// `POST /api/v1/users`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub name: String,
}

/// A user as the admin sees them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub created_at: String,
    /// How many apps they hold a role on, keys and tokens they have.
    pub apps: i64,
    pub keys: i64,
    pub tokens: i64,
}

/// A token just made: shown this once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewToken {
    pub name: String,
    /// The user it belongs to; `None` for a machine token.
    pub user: Option<String>,
    pub scope: Option<String>,
    pub token: String,
}

/// `POST /api/v1/tokens`: `app` and `role` limit it to one app; `user` (admin only)
/// makes it for that user; the admin's token without `user` is a machine token (CI).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    pub app: Option<String>,
    pub role: Option<String>,
    pub user: Option<String>,
}

/// A token as listed: never the token itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Token {
    pub name: String,
    pub user: Option<String>,
    /// `web1 (deployer)`, or null: everything its user may do.
    pub scope: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// `PUT /api/v1/apps/{app}/access/{user}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub role: String,
}

/// Who may do what on an app.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Access {
    pub app: String,
    /// User name to role.
    pub users: BTreeMap<String, String>,
    /// Machine tokens limited to this app: name to role.
    pub tokens: BTreeMap<String, String>,
}

/// `POST /api/v1/keys`: an OpenSSH public key line; `user` (admin only) adds it for
/// that user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddKey {
    pub public_key: String,
    pub user: Option<String>,
}

/// An SSH key as listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Key {
    pub fingerprint: String,
    pub user: String,
    pub comment: String,
    pub created_at: String,
}

/// One entry of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    /// `admin`, `alice (token laptop)`, `alice (key SHA256:…)`, `token ci`, `webhook (github)`.
    pub actor: String,
    pub app: Option<String>,
    /// `push`, `config.set`, `rollback`, `app.delete`, `access.add`, `token.create`,
    /// `login`, `refused`, …
    pub action: String,
    pub detail: String,
    /// Where the request came from.
    pub remote: String,
}

/// `POST /api/v1/apps/{app}/formation` (`hoist ps:scale APP web=3 worker=1`): how many
/// processes of each type; the answer is the release that runs them.
pub type Formation = BTreeMap<String, u32>;

/// `POST /api/v1/apps/{app}/restart` (`hoist ps:restart APP [TYPE]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    /// Only this process type (all of the release's processes start again either way:
    /// a new release, rolled out as any).
    pub process: Option<String>,
}

/// One process of an app's live release (`hoist ps`): `web.1`, `worker.1`, …
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Process {
    /// The Procfile type: `web`, `worker`, …
    #[serde(rename = "type")]
    pub kind: String,
    pub index: u32,
    /// `up`, `starting`, `crashed`, `restarting`, `down`, or the target's own word.
    pub state: String,
    /// When it started (RFC 3339), if it did.
    pub since: Option<String>,
    pub restarts: i64,
    pub release: i64,
    /// The container or pod.
    pub name: String,
}

/// `POST /api/v1/apps/{app}/run` (`hoist run`): the command, sent JSON in the
/// [`run::HEADER`] header of a request that upgrades the connection to [`run::PROTOCOL`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// One argument: a shell command line (as Heroku takes it); several: a program and
    /// its arguments, each passed as it is.
    pub command: Vec<String>,
    /// `--size`: the process's memory, as `512m`, `2g` or a number of MiB; the app's
    /// limit when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// A terminal of `[rows, columns]` for the process (the CLI has one): its output
    /// comes as one stream, stdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<[u16; 2]>,
}

/// The answer to `POST /api/v1/apps/{app}/run/detached` (`hoist run --detach`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DetachedRun {
    /// Its process name, as `hoist ps` and `hoist logs` show it (`run.48213`).
    pub process: String,
    /// The release whose image and config it runs.
    pub release: i64,
}

/// The one-off process protocol: after the upgrade, both sides send frames of
/// `[kind: u8][length: u32, big-endian][data]`.
pub mod run {
    pub const HEADER: &str = "x-hoist-run";
    pub const PROTOCOL: &str = "hoist-run";
    /// Client → hoistd: bytes for the process's stdin.
    pub const STDIN: u8 = 0;
    /// hoistd → client: the process's output.
    pub const STDOUT: u8 = 1;
    pub const STDERR: u8 = 2;
    /// Client → hoistd: stdin is at its end.
    pub const STDIN_EOF: u8 = 3;
    /// hoistd → client: the process ended with this exit status (i32, big-endian).
    pub const EXIT: u8 = 4;
    /// hoistd → client: the process could not run or was lost (UTF-8 text).
    pub const ERROR: u8 = 5;
    /// The most one frame carries.
    pub const MAX_FRAME: usize = 1024 * 1024;

    /// One frame.
    pub fn frame(kind: u8, data: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(5 + data.len());
        bytes.push(kind);
        bytes.extend_from_slice(&(data.len() as u32).to_be_bytes());
        bytes.extend_from_slice(data);
        bytes
    }

    /// Takes the first whole frame off `buffer`, if there is one; `Err` for a frame
    /// longer than [`MAX_FRAME`].
    pub fn take_frame(buffer: &mut Vec<u8>) -> Result<Option<(u8, Vec<u8>)>, String> {
        if buffer.len() < 5 {
            return Ok(None);
        }
        let length = u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
        if length > MAX_FRAME {
            return Err(format!("a frame of {length} bytes; at most {MAX_FRAME}"));
        }
        if buffer.len() < 5 + length {
            return Ok(None);
        }
        let kind = buffer[0];
        let data = buffer[5..5 + length].to_vec();
        buffer.drain(..5 + length);
        Ok(Some((kind, data)))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn frames_round_trip_whole_and_in_pieces() {
            let mut stream = frame(STDOUT, b"hello");
            stream.extend(frame(EXIT, &3i32.to_be_bytes()));
            let mut buffer = Vec::new();
            let mut got = Vec::new();
            for byte in stream {
                buffer.push(byte);
                while let Some(frame) = take_frame(&mut buffer).unwrap() {
                    got.push(frame);
                }
            }
            assert_eq!(got, [(STDOUT, b"hello".to_vec()), (EXIT, 3i32.to_be_bytes().to_vec())]);
            let mut huge = vec![STDIN, 0xff, 0xff, 0xff, 0xff];
            assert!(take_frame(&mut huge).is_err());
        }
    }
}

/// One file of a working tree sent by `hoist dev`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevFile {
    /// Relative, `/`-separated.
    pub path: String,
    /// SHA-256 of its contents, lowercase hex.
    pub sha256: String,
    pub size: u64,
    #[serde(default)]
    pub executable: bool,
}

/// A working tree's manifest: `POST /api/v1/apps/{app}/dev/missing` asks which contents
/// hoistd lacks; the same manifest is the first entry (`tree.json`) of the tar that
/// `POST /api/v1/apps/{app}/dev/builds` takes, followed by `blobs/<sha256>` entries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DevTree {
    /// Every file; with `since`, only those changed or added since that tree.
    pub files: Vec<DevFile>,
    /// The commit the tree started from, if it is a git checkout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The hash of the tree last offered for this app: `files` and `removed` are what
    /// changed since (a manifest of a big tree is sent once, then only its changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// With `since`: the paths gone since that tree.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
}

/// The contents hoistd lacks, by SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevMissing {
    pub missing: Vec<String>,
    /// The tree's hash.
    pub tree: String,
}

/// A working tree taken: a build started, or its changed files synced into the running
/// release (`synced`, `release`) without one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevBuild {
    #[serde(default)]
    pub build: Option<i64>,
    /// The files copied into the running release, when it needed no build.
    #[serde(default)]
    pub synced: Vec<String>,
    #[serde(default)]
    pub release: Option<i64>,
    pub tree: String,
    /// Files of the tree, and how many contents (and bytes) this request carried.
    pub files: usize,
    pub received_files: usize,
    pub received_bytes: u64,
}
