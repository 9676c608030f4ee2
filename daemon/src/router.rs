//! The app router: an HTTP reverse proxy that sends `<app>.<domain>` (by Host header)
//! to the container of the app's live release. The rollout stage switches an app's
//! route only after the new release answered its health check.
//!
//! Architecture invariant: the router knows routes, never releases or Docker.

use crate::app::AppName;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

/// app name → the addresses that serve it: the live container (docker target) or the
/// ready endpoints of its Service (kubernetes target), taken in turn.
#[derive(Clone, Default)]
pub struct Routes(Arc<RwLock<HashMap<String, Upstreams>>>);

struct Upstreams {
    addresses: Vec<SocketAddr>,
    next: std::sync::atomic::AtomicUsize,
}

impl Routes {
    pub fn set(&self, app: &str, upstream: SocketAddr) {
        self.set_all(app, vec![upstream]);
    }

    /// Routes `app` to `upstreams` (not empty), one request after the other.
    pub fn set_all(&self, app: &str, upstreams: Vec<SocketAddr>) {
        let upstreams = Upstreams { addresses: upstreams, next: Default::default() };
        self.0.write().unwrap_or_else(|p| p.into_inner()).insert(app.to_string(), upstreams);
    }

    /// Every address `app` is routed to now.
    pub fn addresses(&self, app: &str) -> Option<Vec<SocketAddr>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).get(app).map(|u| u.addresses.clone())
    }

    pub fn remove(&self, app: &str) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).remove(app);
    }

    /// The address the next request for `app` goes to.
    pub fn get(&self, app: &str) -> Option<SocketAddr> {
        let routes = self.0.read().unwrap_or_else(|p| p.into_inner());
        let upstreams = routes.get(app)?;
        let turn = upstreams.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        upstreams.addresses.get(turn % upstreams.addresses.len().max(1)).copied()
    }
}

#[derive(Clone)]
struct RouterState {
    routes: Routes,
    domain: String,
    client: Client<HttpConnector, Body>,
}

/// The app named by a Host header under `domain`: `web1.localhost:8080` → `web1`. Host
/// names are case-insensitive (`WEB1.LOCALHOST`); a label that is no valid app name
/// (too long, bad characters) names no app.
pub fn app_from_host(host: &str, domain: &str) -> Option<AppName> {
    let host = host.rsplit_once(':').map_or(
        host,
        |(name, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        },
    );
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.len() <= domain.len() || !host.is_char_boundary(host.len() - domain.len()) {
        return None;
    }
    let (label, suffix) = host.split_at(host.len() - domain.len());
    if !suffix.eq_ignore_ascii_case(domain) {
        return None;
    }
    let label = label.strip_suffix('.')?;
    AppName::parse(&label.to_ascii_lowercase()).ok()
}

/// At most `n` characters of what a client sent, for a message.
fn shortened(text: &str, n: usize) -> String {
    match text.char_indices().nth(n) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// The router as an axum app, so tests can drive it.
pub fn router(routes: Routes, domain: String) -> axum::Router {
    let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    axum::Router::new().fallback(proxy).with_state(RouterState { routes, domain, client })
}

async fn proxy(State(state): State<RouterState>, mut request: Request) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())
        .unwrap_or("")
        .to_string();
    let Some(app) = app_from_host(&host, &state.domain) else {
        let message = format!(
            "hoist router: no app in host {:?}; use http://<app>.{}/ (an app name is 1-30 lowercase letters, digits or '-')\n",
            shortened(&host, 80),
            state.domain
        );
        return (StatusCode::NOT_FOUND, message).into_response();
    };
    let Some(upstream) = state.routes.get(app.as_str()) else {
        let message = format!("hoist router: app \"{app}\" has no live release; git push to deploy it\n");
        return (StatusCode::NOT_FOUND, message).into_response();
    };
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    *request.uri_mut() = match Uri::try_from(format!("http://{upstream}{path}")) {
        Ok(uri) => uri,
        Err(_) => return (StatusCode::BAD_REQUEST, "hoist router: bad request path\n").into_response(),
    };
    match state.client.request(request).await {
        Ok(response) => response.map(Body::new),
        Err(error) => {
            tracing::warn!(%app, %upstream, %error, "upstream failed");
            let message = format!("hoist router: app \"{app}\" did not answer: {error}\n");
            (StatusCode::BAD_GATEWAY, message).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let cases = [
            ("web1.localhost:8080", Some("web1")),
            ("web1.localhost", Some("web1")),
            ("WEB1.localhost", Some("web1")),
            ("localhost:8080", None),
            ("a.b.localhost", None),
            ("web1.example.com", None),
            (".localhost", None),
            ("BENCHH.LOCALHOST:8080", Some("benchh")),
            ("web1.localhost.", Some("web1")),
            ("under_score.localhost", None),
            ("xlocalhost", None),
            ("é.localhost", None),
        ];
        for (host, app) in cases {
            assert_eq!(app_from_host(host, "localhost").as_ref().map(AppName::as_str), app, "{host}");
        }
        let long = format!("{}.localhost", "a".repeat(100_000));
        assert_eq!(app_from_host(&long, "localhost"), None);
        assert!(shortened(&long, 80).chars().count() == 81);
    }
}
