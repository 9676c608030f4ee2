//! Git-host webhooks: which host sent a request, whether it is signed with the app's
//! secret, and what it asks for. Pure: no I/O, so every host's real payloads are unit
//! tested here; `api` answers and hands a push to the intake.
//!
//! Hosts, as they document them:
//! - GitHub: `X-GitHub-Event` (`push`, `ping`), `X-GitHub-Delivery`,
//!   `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
//! - GitLab: `X-Gitlab-Event` (`Push Hook`, `Tag Push Hook`, …), `X-Gitlab-Event-UUID`,
//!   `X-Gitlab-Token: <the secret itself>`.
//! - Gitea and Forgejo: `X-Gitea-Event` / `X-Forgejo-Event`, `X-Gitea-Delivery` /
//!   `X-Forgejo-Delivery`, `X-Gitea-Signature` / `X-Forgejo-Signature: <hex HMAC-SHA256>`.
//! - Generic (anything that can sign): `X-Hoist-Signature: sha256=<hex HMAC-SHA256>`,
//!   optional `X-Hoist-Delivery`, body `{"ref": "refs/heads/main", "after": "<sha>"}`.
//!
//! Architecture invariant: a request reaches the pipeline only after `verify` accepted it;
//! secrets are compared in constant time.

use crate::auth::{hmac_sha256_matches, token_matches};
use axum::http::HeaderMap;
use serde::Deserialize;

/// The 40 zeros a host sends as `after` for a deleted branch.
const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// Who sent a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    GitHub,
    GitLab,
    Gitea,
    Generic,
}

impl Host {
    pub fn name(self) -> &'static str {
        match self {
            Host::GitHub => "GitHub",
            Host::GitLab => "GitLab",
            Host::Gitea => "Gitea",
            Host::Generic => "generic webhook",
        }
    }
}

/// Why a webhook is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error(
        "not a webhook hoist knows: send X-Hub-Signature-256 (GitHub), X-Gitlab-Token (GitLab), \
         X-Gitea-Signature (Gitea, Forgejo) or X-Hoist-Signature: sha256=<hex HMAC-SHA256 of the body>"
    )]
    UnknownSender,
    #[error("the {0} signature does not match this app's webhook secret (rotate it with `hoist webhooks APP --rotate` and paste it again)")]
    BadSignature(&'static str),
    #[error("the body is not the JSON push payload of {host}: {reason}")]
    BadPayload { host: &'static str, reason: String },
}

/// A request's sender, event and delivery id, from its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub host: Host,
    /// `push`, `ping`, `Push Hook`, `Tag Push Hook`, … as the host names it.
    pub event: String,
    pub delivery: Option<String>,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// Which host sent the request (by the header that carries its secret or signature).
pub fn envelope(headers: &HeaderMap) -> Result<Envelope, Error> {
    let delivery = |names: &[&str]| names.iter().find_map(|n| header(headers, n)).map(str::to_string);
    let event = |names: &[&str]| names.iter().find_map(|n| header(headers, n)).unwrap_or("push").to_string();
    if header(headers, "x-hub-signature-256").is_some() {
        return Ok(Envelope {
            host: Host::GitHub,
            event: event(&["x-github-event"]),
            delivery: delivery(&["x-github-delivery"]),
        });
    }
    if header(headers, "x-gitlab-token").is_some() {
        return Ok(Envelope {
            host: Host::GitLab,
            event: event(&["x-gitlab-event"]),
            delivery: delivery(&["x-gitlab-event-uuid", "x-gitlab-webhook-uuid"]),
        });
    }
    if header(headers, "x-gitea-signature").is_some() || header(headers, "x-forgejo-signature").is_some() {
        return Ok(Envelope {
            host: Host::Gitea,
            event: event(&["x-gitea-event", "x-forgejo-event"]),
            delivery: delivery(&["x-gitea-delivery", "x-forgejo-delivery"]),
        });
    }
    if header(headers, "x-hoist-signature").is_some() {
        return Ok(Envelope {
            host: Host::Generic,
            event: event(&["x-hoist-event"]),
            delivery: delivery(&["x-hoist-delivery"]),
        });
    }
    Err(Error::UnknownSender)
}

/// Checks the request against the app's secret, in constant time.
pub fn verify(host: Host, headers: &HeaderMap, body: &[u8], secret: &str) -> Result<(), Error> {
    let bad = || Error::BadSignature(host.name());
    let hmac_matches = |hex_signature: &str| hmac_sha256_matches(secret, body, hex_signature);
    let ok = match host {
        Host::GitHub => {
            header(headers, "x-hub-signature-256").and_then(|s| s.strip_prefix("sha256=")).is_some_and(hmac_matches)
        }
        Host::Gitea => header(headers, "x-gitea-signature")
            .or_else(|| header(headers, "x-forgejo-signature"))
            .is_some_and(hmac_matches),
        Host::Generic => {
            header(headers, "x-hoist-signature").and_then(|s| s.strip_prefix("sha256=")).is_some_and(hmac_matches)
        }
        Host::GitLab => header(headers, "x-gitlab-token").is_some_and(|token| token_matches(token, secret)),
    };
    if ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// What a verified webhook asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The host checks the hook works (GitHub's `ping`).
    Ping,
    /// `commit` is the new head of branch `branch`.
    Push { branch: String, commit: String, pusher: Option<String>, message: Option<String> },
    /// Nothing to build, and why.
    Ignored(String),
}

/// The fields of a push payload hoist reads; GitHub, Gitea, Forgejo and GitLab share them.
#[derive(Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    after: Option<String>,
    /// GitLab: the commit to check out (null when the branch was deleted).
    checkout_sha: Option<String>,
    #[serde(default)]
    deleted: bool,
    pusher: Option<Pusher>,
    /// GitLab.
    user_username: Option<String>,
    head_commit: Option<HeadCommit>,
}

#[derive(Deserialize)]
struct Pusher {
    name: Option<String>,
    /// Gitea names the pusher `username`.
    username: Option<String>,
}

#[derive(Deserialize)]
struct HeadCommit {
    message: Option<String>,
}

fn is_sha(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reads what a verified request asks for.
pub fn parse(envelope: &Envelope, body: &[u8]) -> Result<Request, Error> {
    let event = envelope.event.as_str();
    match (envelope.host, event) {
        (Host::GitHub, "ping") | (Host::Gitea, "ping") => return Ok(Request::Ping),
        (Host::GitHub | Host::Gitea | Host::Generic, "push") | (Host::GitLab, "Push Hook") => {}
        (_, "Tag Push Hook") | (_, "create") | (_, "delete") => {
            return Ok(Request::Ignored(format!("{event} events do not deploy")))
        }
        (_, other) => return Ok(Request::Ignored(format!("{other} events do not deploy; send push events"))),
    }
    let bad = |reason: String| Error::BadPayload { host: envelope.host.name(), reason };
    let payload: PushPayload = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let Some(branch) = payload.git_ref.strip_prefix("refs/heads/") else {
        return Ok(Request::Ignored(format!("{} is not a branch", payload.git_ref)));
    };
    let commit = payload.checkout_sha.or(payload.after).unwrap_or_default();
    if payload.deleted || commit.is_empty() || commit == ZERO_SHA {
        return Ok(Request::Ignored(format!("branch {branch} was deleted")));
    }
    if !is_sha(&commit) {
        return Err(bad(format!("{commit:?} is not a commit id")));
    }
    // Outside strings go into the build's log: one line each, no control characters.
    let pusher = payload
        .pusher
        .and_then(|p| p.name.or(p.username))
        .or(payload.user_username)
        .map(|p| crate::logs::printable(&p, 100));
    let message = payload
        .head_commit
        .and_then(|c| c.message)
        .map(|m| crate::logs::printable(m.lines().next().unwrap_or(""), 200));
    Ok(Request::Push { branch: branch.to_string(), commit: commit.to_lowercase(), pusher, message })
}

/// The signature a generic sender puts in `X-Hoist-Signature` (tests and docs use it).
pub fn sign(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", crate::auth::hmac_sha256_hex(secret, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    const SHA: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";

    /// Trimmed from GitHub's documented `push` example (docs.github.com, webhook events).
    fn github_push() -> String {
        format!(
            r#"{{"ref":"refs/heads/main","before":"9049f1265b7d61be4a8904a9a27120d2064dab3b","after":"{SHA}",
            "created":false,"deleted":false,"forced":false,"base_ref":null,
            "compare":"https://github.com/Codertocat/Hello-World/compare/9049f1265b7d...0d1a26e67d8f",
            "commits":[{{"id":"{SHA}","message":"Update README.md\n\nmore","timestamp":"2019-05-15T15:20:30-04:00"}}],
            "head_commit":{{"id":"{SHA}","message":"Update README.md\n\nmore"}},
            "repository":{{"id":186853002,"name":"Hello-World","full_name":"Codertocat/Hello-World",
              "clone_url":"https://github.com/Codertocat/Hello-World.git"}},
            "pusher":{{"name":"Codertocat","email":"21031067+Codertocat@users.noreply.github.com"}},
            "sender":{{"login":"Codertocat","id":21031067}}}}"#
        )
    }

    #[test]
    fn github_push_signed_with_the_secret_is_a_push_of_that_commit() {
        let body = github_push();
        let signature = sign("s3cret", body.as_bytes());
        let h = headers(&[
            ("x-github-event", "push"),
            ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ("x-hub-signature-256", &signature),
        ]);
        let envelope = envelope(&h).unwrap();
        assert_eq!(envelope.host, Host::GitHub);
        assert_eq!(envelope.delivery.as_deref(), Some("72d3162e-cc78-11e3-81ab-4c9367dc0958"));
        verify(envelope.host, &h, body.as_bytes(), "s3cret").unwrap();
        assert_eq!(verify(envelope.host, &h, body.as_bytes(), "other").unwrap_err(), Error::BadSignature("GitHub"));
        let mut tampered = body.clone().into_bytes();
        tampered[10] ^= 1;
        assert!(verify(envelope.host, &h, &tampered, "s3cret").is_err(), "a changed body fails");
        assert_eq!(
            parse(&envelope, body.as_bytes()).unwrap(),
            Request::Push {
                branch: "main".into(),
                commit: SHA.into(),
                pusher: Some("Codertocat".into()),
                message: Some("Update README.md".into())
            }
        );
    }

    #[test]
    fn github_ping_tags_and_deletions() {
        let ping = Envelope { host: Host::GitHub, event: "ping".into(), delivery: None };
        assert_eq!(parse(&ping, b"{\"zen\":\"Keep it logically awesome.\"}").unwrap(), Request::Ping);
        let push = Envelope { host: Host::GitHub, event: "push".into(), delivery: None };
        let tag = br#"{"ref":"refs/tags/v1.0","after":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","deleted":false}"#;
        assert!(matches!(parse(&push, tag).unwrap(), Request::Ignored(why) if why.contains("not a branch")));
        let deleted =
            br#"{"ref":"refs/heads/old","before":"x","after":"0000000000000000000000000000000000000000","deleted":true}"#;
        assert!(matches!(parse(&push, deleted).unwrap(), Request::Ignored(why) if why.contains("deleted")));
        let issues = Envelope { host: Host::GitHub, event: "issues".into(), delivery: None };
        assert!(matches!(parse(&issues, b"{}").unwrap(), Request::Ignored(_)));
        assert!(matches!(parse(&push, b"{\"ref\":").unwrap_err(), Error::BadPayload { .. }), "truncated");
        assert!(matches!(
            parse(&push, br#"{"ref":"refs/heads/main","after":"; rm -rf /"}"#).unwrap_err(),
            Error::BadPayload { .. }
        ));
    }

    #[test]
    fn gitlab_push_hook_with_its_token() {
        // Trimmed from GitLab's documented push event.
        let body = format!(
            r#"{{"object_kind":"push","event_name":"push","before":"95790bf891e76fee5e1747ab589903a6a1f80f22",
            "after":"{SHA}","ref":"refs/heads/main","checkout_sha":"{SHA}","user_id":4,"user_name":"John Smith",
            "user_username":"jsmith","project_id":15,"project":{{"git_http_url":"http://example.com/mike/diaspora.git"}},
            "commits":[],"total_commits_count":4}}"#
        );
        let h = headers(&[
            ("x-gitlab-event", "Push Hook"),
            ("x-gitlab-token", "s3cret"),
            ("x-gitlab-event-uuid", "13792a34-cac6-4fda-95a8-c58e00a3954e"),
        ]);
        let envelope = envelope(&h).unwrap();
        assert_eq!((envelope.host, envelope.event.as_str()), (Host::GitLab, "Push Hook"));
        verify(Host::GitLab, &h, body.as_bytes(), "s3cret").unwrap();
        assert!(verify(Host::GitLab, &h, body.as_bytes(), "s3cret2").is_err());
        assert_eq!(
            parse(&envelope, body.as_bytes()).unwrap(),
            Request::Push { branch: "main".into(), commit: SHA.into(), pusher: Some("jsmith".into()), message: None }
        );
        let tag = Envelope { host: Host::GitLab, event: "Tag Push Hook".into(), delivery: None };
        assert!(matches!(parse(&tag, b"{}").unwrap(), Request::Ignored(_)));
        let deleted = br#"{"object_kind":"push","ref":"refs/heads/x","after":"0000000000000000000000000000000000000000","checkout_sha":null}"#;
        assert!(matches!(parse(&envelope, deleted).unwrap(), Request::Ignored(_)));
    }

    #[test]
    fn gitea_and_forgejo_sign_without_a_prefix() {
        // Trimmed from Gitea's documented push payload.
        let body = format!(
            r#"{{"secret":"","ref":"refs/heads/develop","before":"28e1879d029cb852e4844d9c718537df08844e03",
            "after":"{SHA}","compare_url":"http://localhost:3000/gitea/webhooks/compare/28e1879d...bffeb744",
            "commits":[{{"id":"{SHA}","message":"Webhooks Yay!"}}],
            "repository":{{"clone_url":"http://localhost:3000/gitea/webhooks.git"}},
            "pusher":{{"id":1,"login":"gitea","username":"gitea"}},"sender":{{"login":"gitea"}}}}"#
        );
        let signature = sign("s3cret", body.as_bytes());
        let hex = signature.strip_prefix("sha256=").unwrap();
        for (event, sig, delivery) in [
            ("x-gitea-event", "x-gitea-signature", "x-gitea-delivery"),
            ("x-forgejo-event", "x-forgejo-signature", "x-forgejo-delivery"),
        ] {
            let h = headers(&[(event, "push"), (sig, hex), (delivery, "d-1")]);
            let envelope = envelope(&h).unwrap();
            assert_eq!((envelope.host, envelope.delivery.as_deref()), (Host::Gitea, Some("d-1")));
            verify(Host::Gitea, &h, body.as_bytes(), "s3cret").unwrap();
            assert_eq!(
                parse(&envelope, body.as_bytes()).unwrap(),
                Request::Push {
                    branch: "develop".into(),
                    commit: SHA.into(),
                    pusher: Some("gitea".into()),
                    message: None
                }
            );
        }
    }

    #[test]
    fn generic_and_unknown_senders() {
        let body = format!(r#"{{"ref":"refs/heads/main","after":"{SHA}"}}"#);
        let h = headers(&[("x-hoist-signature", &sign("k", body.as_bytes()))]);
        let envelope = envelope(&h).unwrap();
        assert_eq!((envelope.host, envelope.event.as_str()), (Host::Generic, "push"));
        verify(Host::Generic, &h, body.as_bytes(), "k").unwrap();
        assert!(matches!(parse(&envelope, body.as_bytes()).unwrap(), Request::Push { .. }));
        assert_eq!(envelope_err(&headers(&[("x-github-event", "push")])), Error::UnknownSender);
        let unsigned = headers(&[("x-hub-signature-256", "sha1=abc")]);
        assert!(verify(Host::GitHub, &unsigned, body.as_bytes(), "k").is_err(), "sha1 signatures are refused");
    }

    fn envelope_err(h: &HeaderMap) -> Error {
        envelope(h).unwrap_err()
    }
}
