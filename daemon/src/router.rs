//! The app router: an HTTP reverse proxy that sends `<app>.<domain>` (by Host header)
//! to the container of the app's live release. The rollout stage switches an app's
//! route only after the new release answered its health check.
//!
//! Architecture invariant: the router knows routes, never releases or Docker.

use crate::app::AppName;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
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

    /// Routes `app` to `upstreams`, one request after the other; none: the app is scaled
    /// to no web process, and answers 503.
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
    /// Proxies in front of hoist whose `X-Forwarded-*` headers are believed.
    trusted_proxies: Arc<Vec<IpAddr>>,
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

/// The router as an axum app, so tests can drive it. Requests must carry their peer's
/// address (`ConnectInfo<SocketAddr>`), as hoistd's listeners give it.
pub fn router(routes: Routes, domain: String, trusted_proxies: Vec<IpAddr>) -> axum::Router {
    let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let state = RouterState { routes, domain, client, trusted_proxies: Arc::new(trusted_proxies) };
    axum::Router::new().fallback(proxy).with_state(state)
}

/// Which host a request is for (RFC 9112 §3.2): the authority of an absolute-form
/// target wins over the Host header; a request with two Host headers is refused.
pub fn request_host(uri: &Uri, headers: &HeaderMap) -> Result<String, &'static str> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err("hoist router: a request may carry one Host header (RFC 9112 §3.2)\n");
    }
    if let Some(authority) = uri.authority() {
        return Ok(authority.as_str().rsplit_once('@').map_or(authority.as_str(), |(_, host)| host).to_string());
    }
    Ok(first.and_then(|h| h.to_str().ok()).unwrap_or("").to_string())
}

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1): the
/// fixed ones and every header the `Connection` header names.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// Removes hop-by-hop headers; `Upgrade` and `Connection: upgrade` stay when the request
/// asks for an upgrade (WebSocket), which the proxy carries through.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .filter(|name| !(keep_upgrade && name == header::UPGRADE))
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        if keep_upgrade && (name == "upgrade" || name == "connection") {
            continue;
        }
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Sets `X-Forwarded-For`, `-Proto` and `-Host` as a reverse proxy does: a trusted
/// proxy's chain is extended with its address, anyone else's is replaced by the peer's.
pub fn set_forwarded(headers: &mut HeaderMap, peer: IpAddr, host: &str, trusted: bool) {
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(chain) if trusted && !chain.trim().is_empty() => format!("{chain}, {peer}"),
        _ => peer.to_string(),
    };
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| trusted && matches!(*p, "http" | "https"))
        .unwrap_or("http")
        .to_string();
    let forwarded_host =
        headers.get("x-forwarded-host").and_then(|v| v.to_str().ok()).filter(|_| trusted).unwrap_or(host).to_string();
    headers.remove("forwarded");
    for (name, value) in
        [("x-forwarded-for", forwarded_for), ("x-forwarded-proto", proto), ("x-forwarded-host", forwarded_host)]
    {
        match HeaderValue::from_str(&value) {
            Ok(value) => {
                headers.insert(name, value);
            }
            Err(_) => {
                headers.remove(name);
            }
        }
    }
}

async fn proxy(State(state): State<RouterState>, mut request: Request) -> Response {
    let host = match request_host(request.uri(), request.headers()) {
        Ok(host) => host,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    let Some(app) = app_from_host(&host, &state.domain) else {
        let message = format!(
            "hoist router: no app in host {:?}; use http://<app>.{}/ (an app name is 1-30 lowercase letters, digits or '-')\n",
            shortened(&host, 80),
            state.domain
        );
        return (StatusCode::NOT_FOUND, message).into_response();
    };
    let Some(upstream) = state.routes.get(app.as_str()) else {
        if state.routes.addresses(app.as_str()).is_some() {
            let message = format!(
                "hoist router: app \"{app}\" runs no web process now (scaled to 0); `hoist ps:scale {app} web=1` brings it back\n"
            );
            return (StatusCode::SERVICE_UNAVAILABLE, message).into_response();
        }
        let message = format!("hoist router: app \"{app}\" has no live release; git push to deploy it\n");
        return (StatusCode::NOT_FOUND, message).into_response();
    };
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    *request.uri_mut() = match Uri::try_from(format!("http://{upstream}{path}")) {
        Ok(uri) => uri,
        Err(_) => return (StatusCode::BAD_REQUEST, "hoist router: bad request path\n").into_response(),
    };
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let upgrade = request.headers().contains_key(header::UPGRADE)
        && request
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade"))));
    let headers = request.headers_mut();
    strip_hop_by_hop(headers, upgrade);
    if let Ok(value) = HeaderValue::from_str(&host) {
        headers.insert(header::HOST, value);
    }
    if let Some(peer) = peer {
        set_forwarded(headers, peer, &host, state.trusted_proxies.contains(&peer));
    }
    match state.client.request(request).await {
        Ok(response) => {
            let mut response = response.map(Body::new);
            let keep_upgrade = response.status() == StatusCode::SWITCHING_PROTOCOLS;
            strip_hop_by_hop(response.headers_mut(), keep_upgrade);
            response
        }
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

    #[test]
    fn the_host_is_the_absolute_targets_and_only_one_host_header_is_taken() {
        let mut headers = HeaderMap::new();
        headers.append(header::HOST, HeaderValue::from_static("web1.localhost"));
        let origin: Uri = "/path".parse().unwrap();
        assert_eq!(request_host(&origin, &headers).unwrap(), "web1.localhost");
        let absolute: Uri = "http://web2.localhost:8080/path".parse().unwrap();
        assert_eq!(request_host(&absolute, &headers).unwrap(), "web2.localhost:8080");
        headers.append(header::HOST, HeaderValue::from_static("web2.localhost"));
        assert!(request_host(&origin, &headers).is_err());
    }

    #[test]
    fn hop_by_hop_headers_stay_behind() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic eA=="),
            ("x-app", "kept"),
        ] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        strip_hop_by_hop(&mut headers, false);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-app"]);
    }

    #[test]
    fn forwarded_headers_are_set_and_only_trusted_proxies_extend_them() {
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        set_forwarded(&mut headers, peer, "web1.localhost:8080", false);
        assert_eq!(headers["x-forwarded-for"], "203.0.113.9", "a forged chain is replaced");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "web1.localhost:8080");
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        set_forwarded(&mut headers, peer, "web1.localhost", true);
        assert_eq!(headers["x-forwarded-for"], "1.2.3.4, 203.0.113.9");
        assert_eq!(headers["x-forwarded-proto"], "https");
    }
}
