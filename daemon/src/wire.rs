//! hoistd's side of the wire shapes ([`hoist_wire`]): each made from its store row here,
//! so a column added to the store is not published by accident.
//!
//! Architecture invariant: no Docker, git or SQL here; only conversions of rows to data.

pub use hoist_wire::*;

use crate::store;

impl From<store::App> for App {
    fn from(app: store::App) -> App {
        App {
            name: app.name.to_string(),
            deploy_branch: app.deploy_branch,
            buildpack: app.buildpack,
            target: app.target.to_string(),
            config_version: app.config_version,
            repo_url: app.repo_url,
            webhook: app.webhook,
            image: app.image,
            created_at: app.created_at,
            role: None,
        }
    }
}

impl From<store::Build> for Build {
    fn from(build: store::Build) -> Build {
        Build {
            id: build.id,
            app: build.app.to_string(),
            commit: build.commit,
            git_ref: build.git_ref,
            status: build.status.as_str().to_string(),
            buildpack: build.buildpack,
            image_digest: build.image_digest,
            error: build.error,
            created_at: build.created_at,
            finished_at: build.finished_at,
            processes: build.processes,
        }
    }
}

impl From<store::Release> for Release {
    fn from(release: store::Release) -> Release {
        Release {
            app: release.app.to_string(),
            number: release.number,
            image: release.image,
            build_id: release.build_id,
            status: release.status.as_str().to_string(),
            target: release.target.to_string(),
            revision: release.revision,
            config_version: release.config_version,
            cause: release.cause,
            processes: release.processes,
            formation: release.formation,
            error: release.error,
            created_at: release.created_at,
            finished_at: release.finished_at,
        }
    }
}

impl From<store::ImageStreamEntry> for ImageStreamEntry {
    fn from(entry: store::ImageStreamEntry) -> ImageStreamEntry {
        ImageStreamEntry {
            tag: entry.tag,
            digest: entry.digest,
            repository: entry.repository,
            source: entry.source.as_str().to_string(),
            build_id: entry.build_id,
            created_at: entry.created_at,
        }
    }
}

impl From<crate::retention::Freed> for Freed {
    fn from(freed: crate::retention::Freed) -> Freed {
        Freed { images: freed.images, image_bytes: freed.image_bytes, manifests: freed.manifests }
    }
}

impl From<store::User> for User {
    fn from(user: store::User) -> User {
        User {
            name: user.name.to_string(),
            created_at: user.created_at,
            apps: user.apps,
            keys: user.keys,
            tokens: user.tokens,
        }
    }
}

impl From<store::Token> for Token {
    fn from(token: store::Token) -> Token {
        Token {
            name: token.name,
            user: token.owner.map(|o| o.to_string()),
            scope: token.scope.map(|(app, role)| format!("{app} ({role})")),
            created_at: token.created_at,
            last_used_at: token.last_used_at,
        }
    }
}

impl From<store::Key> for Key {
    fn from(key: store::Key) -> Key {
        Key {
            fingerprint: key.fingerprint,
            user: key.user.to_string(),
            comment: key.comment,
            created_at: key.created_at,
        }
    }
}

impl From<store::AuditRow> for AuditEntry {
    fn from(row: store::AuditRow) -> AuditEntry {
        AuditEntry {
            id: row.id,
            at: row.at,
            actor: row.entry.actor,
            app: row.entry.app,
            action: row.entry.action,
            detail: row.entry.detail,
            remote: row.entry.remote,
        }
    }
}
