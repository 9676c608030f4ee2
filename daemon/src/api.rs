//! The HTTP API: REST under `/api/v1`, git smart HTTP under `/git/<app>.git`, and the
//! internal endpoints the pre-receive hook and the registry call. Handlers are thin:
//! they take the [`Caller`] (who the token is: the apps service authenticates it),
//! parse, call one method of the apps service ([`crate::apps`]) with the caller, and
//! answer; the service decides whether the caller may.
//!
//! Architecture invariant: only this module knows HTTP status codes of the API; its
//! handlers make no store call (the apps service does), and every handler of a public
//! route takes a `Caller` (the hook, the registry and webhooks prove themselves with
//! their own secrets).

use crate::access::Caller;
use crate::app::InvalidAppName;
use crate::apps::{self, Apps, Pushed};
use crate::logs::LogDir;
use crate::receive::{self, GitRequest, HookEnv, HookMessage, HookRequest, Repos};
use crate::wire;
use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

mod logs;

/// Everything the handlers need: the apps service, and the plumbing of git and logs.
pub struct ApiState {
    pub apps: Arc<Apps>,
    /// Log files, followed by the log endpoints.
    pub logs: LogDir,
    /// The repos git http-backend serves.
    pub repos: Repos,
    pub hook: HookEnv,
    /// What the supervised registry sends with its notifications.
    pub registry_events_token: String,
    /// Where git over SSH listens, for `hoist info` and `hoist git:remote --ssh`.
    pub ssh: Option<wire::SshEndpoint>,
}

/// An API error: a status code and a message that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No path in the message: an anonymous caller learns nothing about the host.
    #[error("missing or wrong token: send your token as 'Authorization: Bearer <token>' (API) or log in with `hoist login URL` (hoistd prints the admin token at its first start and keeps it in admin-token in its data dir)")]
    Unauthorized,
    /// The same, to git: its challenge makes git ask for (or look up) a password.
    #[error(
        "missing or wrong token: git sends it as the password of the remote (set one up with `hoist git:remote APP`)"
    )]
    GitUnauthorized,
    #[error(transparent)]
    InvalidAppName(#[from] InvalidAppName),
    /// The caller is known and may not do this: says which role is needed.
    #[error("{0}")]
    Forbidden(String),
    /// A webhook without a valid signature.
    #[error("{0}")]
    Unauthorized401(String),
    #[error("only hoistd's own git hook may call this endpoint (it gets a token from the hoistd that runs it); push with git instead")]
    NotTheHook,
    #[error("{0}")]
    BadRequest(String),
    #[error("no app named {0:?}; create it with `hoist apps create {0}`")]
    UnknownApp(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A release was made and did not go live; the one before keeps serving.
    #[error("{0}")]
    ReleaseFailed(String),
    #[error("{0}")]
    Internal(String),
}

impl From<apps::Error> for ApiError {
    fn from(error: apps::Error) -> ApiError {
        use apps::Error as E;
        match error {
            E::InvalidAppName(error) => ApiError::InvalidAppName(error),
            E::Unauthenticated => ApiError::Unauthorized,
            E::Forbidden(message) => ApiError::Forbidden(message),
            E::UnknownApp(name) => ApiError::UnknownApp(name),
            E::NotFound(message) => ApiError::NotFound(message),
            E::Invalid(message) => ApiError::BadRequest(message),
            error @ E::Exists(_) => ApiError::Conflict(error.to_string()),
            E::Conflict(message) => ApiError::Conflict(message),
            E::BadSignature(message) => ApiError::Unauthorized401(message),
            E::ReleaseFailed(message) => ApiError::ReleaseFailed(message),
            E::Internal(message) => ApiError::Internal(message),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        ApiError::BadRequest(format!("the request body is not what this call takes: {}", rejection.body_text()))
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized
            | ApiError::GitUnauthorized
            | ApiError::NotTheHook
            | ApiError::Unauthorized401(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::InvalidAppName(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnknownApp(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::ReleaseFailed(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        // git shows a text/plain answer to its user as `remote:` lines; JSON it hides.
        let mut response = match self {
            ApiError::GitUnauthorized => {
                (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{self}\n")).into_response()
            }
            _ => (status, Json(json!({ "error": self.to_string() }))).into_response(),
        };
        if status == StatusCode::UNAUTHORIZED {
            // Basic only for git: a browser answers a Basic challenge to the page's own
            // calls with a password dialog.
            let challenge = match self {
                ApiError::GitUnauthorized => "Basic realm=\"hoist\"",
                _ => "Bearer realm=\"hoist\"",
            };
            let challenge = header::HeaderValue::from_static(challenge);
            response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Who the request's token is (the apps service authenticates it; it decides, per call,
/// what the caller may do).
impl FromRequestParts<Arc<ApiState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<ApiState>) -> ApiResult<Caller> {
        let remote = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string())
            .unwrap_or_default();
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(crate::auth::token_from_authorization);
        let unauthorized =
            || if parts.uri.path().starts_with("/git/") { ApiError::GitUnauthorized } else { ApiError::Unauthorized };
        let Some(token) = given else { return Err(unauthorized()) };
        match state.apps.authenticate(&token, &remote) {
            Ok(caller) => Ok(caller),
            Err(apps::Error::Unauthenticated) => Err(unauthorized()),
            Err(other) => Err(other.into()),
        }
    }
}

/// The API as an axum router, so tests can drive it without a socket.
pub fn router(state: Arc<ApiState>) -> Router {
    let api = Router::new()
        .route("/", get(page))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/apps", get(list_apps).post(create_app))
        .route("/api/v1/apps/{app}", get(show_app).patch(update_app).delete(delete_app))
        .route("/api/v1/apps/{app}/builds", get(list_builds))
        .route("/api/v1/apps/{app}/builds/{id}", get(show_build))
        .route("/api/v1/apps/{app}/builds/{id}/log", get(logs::build_log))
        .route("/api/v1/apps/{app}/releases", get(list_releases))
        .route("/api/v1/apps/{app}/releases/{number}/log", get(logs::release_log))
        .route("/api/v1/apps/{app}/logs", get(logs::runtime_logs))
        .route("/api/v1/apps/{app}/config", get(show_config).patch(change_config))
        .route("/api/v1/apps/{app}/rollback", post(rollback))
        .route("/api/v1/apps/{app}/rebase", post(rebase))
        .route("/api/v1/rebase", post(rebase_all))
        .route("/api/v1/gc", post(collect_garbage))
        .route("/api/v1/registry", get(show_registry))
        .route("/api/v1/apps/{app}/image-stream", get(image_stream))
        .route("/api/v1/apps/{app}/image-stream/promote", post(promote))
        .route("/api/v1/apps/{app}/webhook", get(show_webhook).post(rotate_webhook))
        .route("/api/v1/apps/{app}/access", get(show_access))
        .route("/api/v1/apps/{app}/access/{user}", axum::routing::put(grant_access).delete(remove_access))
        .route("/api/v1/apps/{app}/run", post(run))
        .route("/api/v1/apps/{app}/run/detached", post(run_detached))
        .route(
            "/api/v1/apps/{app}/dev/missing",
            post(dev_missing).layer(axum::extract::DefaultBodyLimit::max(DEV_MANIFEST_LIMIT)),
        )
        .route("/api/v1/apps/{app}/dev/builds", post(dev_build).layer(axum::extract::DefaultBodyLimit::disable()))
        .route("/api/v1/apps/{app}/ps", get(list_processes))
        .route("/api/v1/apps/{app}/formation", post(scale))
        .route("/api/v1/apps/{app}/restart", post(restart))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/users", get(list_users).post(create_user))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{name}", axum::routing::delete(revoke_token))
        .route("/api/v1/keys", get(list_keys).post(add_key).delete(remove_key))
        .route("/api/v1/audit", get(audit))
        .route("/internal/v1/receive", post(receive_hook))
        .route("/internal/v1/registry/events", post(registry_events))
        .route("/hooks/{app}", post(webhook).layer(axum::extract::DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT)))
        .fallback(unknown_route)
        .layer(axum::middleware::map_response(json_errors));
    // git's routes answer git, in git's own words.
    Router::new().route("/git/{repo}/{*path}", any(git)).merge(api).with_state(state)
}

/// The web page: one file, no framework; it asks for the token and keeps it in the tab's
/// session storage, never in a URL.
async fn page() -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'self'",
        ),
    ];
    (headers, include_str!("api/page.html")).into_response()
}

/// The API's OpenAPI document (checked against the routes above by a test).
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("api/openapi.json")).into_response()
}

async fn unknown_route(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no such route: {method} {}; the API is under /api/v1 (see README)", uri.path()))
}

/// Every error of the API answers JSON `{"error": "…"}`, also those axum makes itself
/// (a body over its size limit: 413, a wrong method: 405).
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"application/x-ndjson")
    });
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let mut message = String::from_utf8_lossy(&text).trim().to_string();
    if message.is_empty() {
        message = status.canonical_reason().unwrap_or("error").to_lowercase();
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(json!({ "error": message }).to_string()))
}

/// A JSON body of type `T`, whatever the content type (`curl -d` sends a form type),
/// or a 400 that shows what this call takes.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8], example: &str) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the request body must be JSON like {example}: {e}")))
}

async fn create_app(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<wire::App>)> {
    let request: wire::CreateApp = parse_body(&body, r#"{"name": "web1"}"#)?;
    Ok((StatusCode::CREATED, Json(state.apps.create(&caller, request).await?)))
}

async fn update_app(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult<Json<wire::App>> {
    let request: wire::UpdateApp = parse_body(&body, r#"{"buildpack": "node"}"#)?;
    Ok(Json(state.apps.update(&caller, &app, request)?))
}

async fn list_apps(State(state): State<Arc<ApiState>>, caller: Caller) -> ApiResult<Json<Vec<wire::App>>> {
    Ok(Json(state.apps.list(&caller)?))
}

async fn show_app(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(app): Path<String>,
) -> ApiResult<Json<wire::AppInfo>> {
    Ok(Json(state.apps.show(&caller, &app)?))
}

async fn delete_app(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(app): Path<String>,
) -> ApiResult<StatusCode> {
    state.apps.delete(&caller, &app).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_builds(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<wire::Build>>> {
    Ok(Json(state.apps.builds(&caller, &app)?))
}

async fn show_build(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<Json<wire::Build>> {
    let (_, build) = state.apps.build(&caller, &app, &id)?;
    Ok(Json(build.into()))
}

async fn list_releases(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<wire::Release>>> {
    Ok(Json(state.apps.releases(&caller, &app)?))
}

/// `GET /api/v1/apps/{app}/config`: the config vars and their version.
async fn show_config(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(app): Path<String>,
) -> ApiResult<Json<wire::Config>> {
    Ok(Json(state.apps.config(&caller, &app)?))
}

/// `PATCH /api/v1/apps/{app}/config?secret=true`: the vars set are marked secret.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigQuery {
    secret: Option<bool>,
}

/// `PATCH /api/v1/apps/{app}/config`: `{"NAME": "value", "OLD": null}` sets and unsets;
/// a change makes a new release of the live image (no build).
async fn change_config(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(app): Path<String>,
    Query(query): Query<ConfigQuery>,
    body: Bytes,
) -> ApiResult<Json<wire::ConfigChanged>> {
    let changes: std::collections::BTreeMap<String, Option<String>> = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the request body must be a JSON object of names to strings (set) or null (unset), like {{\"GREETING\": \"hi\"}}: {e}"
        ))
    })?;
    Ok(Json(state.apps.change_config(&caller, &app, changes, query.secret.unwrap_or(false)).await?))
}

/// `GET /api/v1/registry`: where hoistd's registry is and its account, so an admin can
/// push images apps follow (`hoist registry login`).
async fn show_registry(State(state): State<Arc<ApiState>>, caller: Caller) -> ApiResult<Json<wire::Registry>> {
    Ok(Json(state.apps.registry(&caller)?))
}

/// `POST /api/v1/gc`: applies the retention policy to every app now; says what it freed.
async fn collect_garbage(State(state): State<Arc<ApiState>>, caller: Caller) -> ApiResult<Json<wire::Gc>> {
    Ok(Json(state.apps.collect_garbage(&caller).await?))
}

/// `POST /api/v1/apps/{app}/rebase`: a new release on the current run image of the app's
/// stack, without a build.
async fn rebase(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(app): Path<String>,
) -> ApiResult<Json<wire::Rebased>> {
    Ok(Json(state.apps.rebase(&caller, &app).await?))
}

/// `POST /api/v1/rebase`: every app whose stack's run image changed since its release.
async fn rebase_all(State(state): State<Arc<ApiState>>, caller: Caller) -> ApiResult<Json<Vec<wire::Rebased>>> {
    Ok(Json(state.apps.rebase_all(&caller).await?))
}

/// `POST /api/v1/apps/{app}/rollback` `{"release": N}`: a new release of release N's
/// image and config.
async fn rollback(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<wire::Release>)> {
    let request: wire::Rollback = parse_body(&body, r#"{"release": 1}"#)?;
    Ok((StatusCode::CREATED, Json(state.apps.rollback(&caller, &app, request.release).await?)))
}

async fn image_stream(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(app): Path<String>,
) -> ApiResult<Json<wire::ImageStream>> {
    Ok(Json(state.apps.image_stream(&caller, &app)?))
}

#[allow(clippy::too_many_arguments)]
async fn git(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path((repo, path)): Path<(String, String)>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let allowed = ["info/refs", "git-receive-pack", "git-upload-pack", "HEAD"];
    if !allowed.contains(&path.as_str()) {
        return git_refusal(StatusCode::NOT_FOUND, format!("no such git path {path:?}"));
    }
    let query = query.unwrap_or_default();
    let service = if path == "git-receive-pack" || query.contains("service=git-receive-pack") {
        apps::GitService::Receive
    } else {
        apps::GitService::Upload
    };
    let name = repo.strip_suffix(".git").unwrap_or(&repo);
    let (app, ticket) = match state.apps.open_git(&caller, name, service) {
        Ok(opened) => opened,
        Err(error) => {
            let error = ApiError::from(error);
            return git_refusal(error.status(), error.to_string());
        }
    };
    let request = GitRequest {
        app: app.name,
        path,
        method,
        query,
        headers,
        body,
        remote_user: caller.actor(),
        remote_addr: remote.ip().to_string(),
        push: ticket.id.clone(),
        held: Box::new(ticket),
    };
    match receive::http_backend(&state.repos, &state.hook, request).await {
        Ok(response) => response,
        Err(error) => git_refusal(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

/// A refusal git shows its user (`remote: …`): plain text, not JSON.
fn git_refusal(status: StatusCode, message: String) -> Response {
    if status.is_server_error() {
        tracing::error!(error = %message, "git request failed");
    }
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{message}\n")).into_response()
}

/// Called by the pre-receive hook: starts the build of the deploy branch and streams
/// its log back as NDJSON [`HookMessage`]s, the last one saying whether to accept.
async fn receive_hook(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Result<Json<HookRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let token = headers.get("x-hoist-hook-token").and_then(|h| h.to_str().ok()).unwrap_or("");
    if !crate::auth::token_matches(token, &state.hook.token) {
        return Err(ApiError::NotTheHook);
    }
    let Json(request) = body?;
    let submitted = match state.apps.receive_push(request).await? {
        Pushed::NothingDeploys(notes) => {
            let end = HookMessage::End { ok: true, message: "=====> Pushed without deploying".to_string() };
            return Ok(ndjson_once(notes, end));
        }
        Pushed::Building(submitted) => submitted,
    };
    let unreadable = || ApiError::Internal(format!("the log of build {} cannot be read", submitted.build_id));
    let follower = state.logs.follow(&submitted.log, 0, true).await.ok().flatten().ok_or_else(unreadable)?;
    let rest = state.logs.follow(&submitted.log, 0, false).await.ok().flatten().ok_or_else(unreadable)?;
    Ok(logs::hook_stream(follower, rest, submitted.outcome))
}

/// Bodies a Git host may send: GitHub caps its payloads at 25 MB; a push's is far less.
const WEBHOOK_BODY_LIMIT: usize = 5 * 1024 * 1024;

/// `POST /hooks/{app}`: a Git host's push event. Signed with the app's webhook secret,
/// answered at once; the commit is fetched and built in the background.
async fn webhook(
    State(state): State<Arc<ApiState>>,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<wire::WebhookAnswer>)> {
    let answer = state.apps.deliver_webhook(&app, &headers, &body).await?;
    let status = match answer.result.as_str() {
        "queued" | "ignored" => StatusCode::ACCEPTED,
        _ => StatusCode::OK,
    };
    Ok((status, Json(answer)))
}

/// `POST /api/v1/apps/{app}/image-stream/promote` `{"from": "latest", "to": "stable"}`:
/// tags the app's image (in hoistd's registry) `to` with what `from` points at; apps
/// following `to` roll out.
async fn promote(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult<Json<wire::Promoted>> {
    let request: wire::Promote = parse_body(&body, r#"{"from": "latest", "to": "stable"}"#)?;
    Ok(Json(state.apps.promote(&caller, &app, request).await?))
}

/// `POST /internal/v1/registry/events`: the supervised registry's push notifications.
async fn registry_events(State(state): State<Arc<ApiState>>, headers: HeaderMap, body: Bytes) -> ApiResult<StatusCode> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    if !crate::auth::token_matches(given, &state.registry_events_token) {
        return Err(ApiError::Unauthorized401(
            "only hoistd's own registry may send events here (its config carries the token)".to_string(),
        ));
    }
    let envelope: crate::image_watch::Envelope = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("not a registry notification envelope: {e}")))?;
    state.apps.registry_notified(envelope);
    Ok(StatusCode::OK)
}

/// `GET /api/v1/apps/{app}/webhook`: where to send webhooks; the secret is not shown.
async fn show_webhook(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(app): Path<String>,
) -> ApiResult<Json<wire::Webhook>> {
    Ok(Json(state.apps.webhook(&caller, &app)?))
}

/// `POST /api/v1/apps/{app}/webhook`: makes a new webhook secret (the old one stops
/// working) and shows it, this once.
async fn rotate_webhook(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(app): Path<String>,
) -> ApiResult<Json<wire::Webhook>> {
    Ok(Json(state.apps.rotate_webhook(&caller, &app)?))
}

fn ndjson_once(lines: Vec<String>, end: HookMessage) -> Response {
    let mut body: Vec<u8> = Vec::new();
    for line in lines {
        body.extend_from_slice(&logs::line_of(&HookMessage::Line { line }));
    }
    body.extend_from_slice(&logs::line_of(&end));
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

/// `GET /api/v1/whoami`: who the token is (what `hoist login` checks; recorded as a
/// login), and where git over SSH listens.
async fn whoami(State(state): State<Arc<ApiState>>, caller: Caller) -> ApiResult<Json<wire::Whoami>> {
    Ok(Json(state.apps.whoami(&caller, state.ssh.clone())?))
}

/// `POST /api/v1/users` `{"name": "alice"}`: the user and their first token, shown once.
async fn create_user(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<wire::NewToken>)> {
    let request: wire::CreateUser = parse_body(&body, r#"{"name": "alice"}"#)?;
    Ok((StatusCode::CREATED, Json(state.apps.create_user(&caller, request)?)))
}

async fn list_users(State(state): State<Arc<ApiState>>, caller: Caller) -> ApiResult<Json<Vec<wire::User>>> {
    Ok(Json(state.apps.users(&caller)?))
}

/// `GET /api/v1/apps/{app}/access`: who may do what on the app.
async fn show_access(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(app): Path<String>,
) -> ApiResult<Json<wire::Access>> {
    Ok(Json(state.apps.access(&caller, &app)?))
}

/// `PUT /api/v1/apps/{app}/access/{user}` `{"role": "deployer"}`.
async fn grant_access(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path((app, user)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<wire::Access>> {
    let request: wire::Grant = parse_body(&body, r#"{"role": "deployer"}"#)?;
    Ok(Json(state.apps.grant(&caller, &app, &user, request)?))
}

/// `DELETE /api/v1/apps/{app}/access/{user}`.
async fn remove_access(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path((app, user)): Path<(String, String)>,
) -> ApiResult<Json<wire::Access>> {
    Ok(Json(state.apps.revoke(&caller, &app, &user)?))
}

/// `POST /api/v1/tokens` `{"name": "ci", "app": "web1", "role": "deployer"}`: shown once.
async fn create_token(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<wire::NewToken>)> {
    let request: wire::CreateToken = parse_body(&body, r#"{"name": "ci", "app": "web1", "role": "deployer"}"#)?;
    Ok((StatusCode::CREATED, Json(state.apps.create_token(&caller, request)?)))
}

async fn list_tokens(State(state): State<Arc<ApiState>>, caller: Caller) -> ApiResult<Json<Vec<wire::Token>>> {
    Ok(Json(state.apps.tokens(&caller)?))
}

/// `?user=alice` (admin): whose token or keys a call is about.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserQuery {
    user: Option<String>,
}

/// `DELETE /api/v1/tokens/{name}[?user=alice]`: answers 401 from then on.
async fn revoke_token(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<UserQuery>,
) -> ApiResult<StatusCode> {
    state.apps.revoke_token(&caller, &name, query.user.as_deref())?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/keys` `{"public_key": "ssh-ed25519 AAAA… alice@laptop"}`.
async fn add_key(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<wire::Key>)> {
    let request: wire::AddKey = parse_body(&body, r#"{"public_key": "ssh-ed25519 AAAA… alice@laptop"}"#)?;
    Ok((StatusCode::CREATED, Json(state.apps.add_key(&caller, request)?)))
}

async fn list_keys(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Query(query): Query<UserQuery>,
) -> ApiResult<Json<Vec<wire::Key>>> {
    Ok(Json(state.apps.keys(&caller, query.user.as_deref())?))
}

/// `?fingerprint=SHA256:…` (a fingerprint has `/` and `+`, so it is not a path).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyQuery {
    fingerprint: String,
}

/// `DELETE /api/v1/keys?fingerprint=SHA256:…`.
async fn remove_key(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Query(query): Query<KeyQuery>,
) -> ApiResult<StatusCode> {
    state.apps.remove_key(&caller, &query.fingerprint)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?app=web1`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    app: Option<String>,
}

/// `GET /api/v1/audit[?app=web1]`: who did what, newest first.
async fn audit(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<Vec<wire::AuditEntry>>> {
    Ok(Json(state.apps.audit(&caller, query.app.as_deref())?))
}

/// `POST /api/v1/apps/{app}/run` (`hoist run`): the command in the `x-hoist-run` header
/// (JSON [`wire::RunRequest`]); the connection upgrades to the `hoist-run` protocol, whose
/// frames carry stdin, stdout, stderr and the exit status ([`wire::run`]). The process is
/// started (or refused, as a plain HTTP error) before the upgrade.
async fn run(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(app): Path<String>,
    mut request: axum::extract::Request,
) -> ApiResult<Response> {
    let upgrading = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h.eq_ignore_ascii_case(wire::run::PROTOCOL));
    if !upgrading {
        return Err(ApiError::BadRequest(format!(
            "a one-off process needs a connection that upgrades to {} (use `hoist run APP -- CMD`)",
            wire::run::PROTOCOL
        )));
    }
    let asked = request.headers().get(wire::run::HEADER).and_then(|h| h.to_str().ok()).unwrap_or("");
    let asked: wire::RunRequest = serde_json::from_str(asked).map_err(|e| {
        ApiError::BadRequest(format!(
            "the {} header must be JSON like {{\"command\": [\"ls\"]}}: {e}",
            wire::run::HEADER
        ))
    })?;
    let process = state.apps.run(&caller, &app, asked).await?;
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => relay_one_off(hyper_util::rt::TokioIo::new(upgraded), process).await,
            Err(error) => {
                tracing::warn!(%error, "hoist run: the upgrade failed; stopping the process");
                let crate::target::OneOff { exit, stop, .. } = process;
                let _ = stop.send(());
                let _ = exit.await;
            }
        }
    });
    Ok((StatusCode::SWITCHING_PROTOCOLS, [(header::CONNECTION, "upgrade"), (header::UPGRADE, wire::run::PROTOCOL)])
        .into_response())
}

/// `POST /api/v1/apps/{app}/run/detached` (`hoist run --detach`): starts a one-off
/// process in the background; its output is in the app's runtime logs.
async fn run_detached(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<wire::DetachedRun>)> {
    let asked: wire::RunRequest = parse_body(&body, r#"{"command": ["python", "manage.py", "clearsessions"]}"#)?;
    Ok((StatusCode::ACCEPTED, Json(state.apps.run_detached(&caller, &app, asked).await?)))
}

/// The most a working tree's manifest may be (a few hundred thousand files).
const DEV_MANIFEST_LIMIT: usize = 64 << 20;

/// `POST /api/v1/apps/{app}/dev/missing` (`hoist dev`): a working tree's manifest; the
/// contents hoistd lacks.
async fn dev_missing(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult<Json<wire::DevMissing>> {
    let tree: wire::DevTree = parse_body(&body, r#"{"files": [{"path": "index.html", "sha256": "…", "size": 12}]}"#)?;
    Ok(Json(state.apps.dev_missing(&caller, &app, tree)?))
}

/// `POST /api/v1/apps/{app}/dev/builds` (`hoist dev`): a tar of the tree's manifest
/// (`tree.json`) and the contents hoistd lacked (`blobs/<sha256>`), streamed to a file
/// (at most a push's size) and built.
async fn dev_build(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(app): Path<String>,
    body: Body,
) -> ApiResult<(StatusCode, Json<wire::DevBuild>)> {
    use tokio::io::AsyncWriteExt;
    let upload = state.apps.dev_upload(&caller, &app)?;
    let limit = state.apps.dev_upload_limit();
    let written = async {
        let mut file = tokio::fs::File::create(&upload).await.map_err(|e| ApiError::Internal(e.to_string()))?;
        let mut stream = body.into_data_stream();
        let mut size: u64 = 0;
        while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
            let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("the upload broke off: {e}")))?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(ApiError::BadRequest(format!(
                    "the working tree is more than {} MiB (receive.max_push_mb); keep big files out of it (.hoistignore)",
                    limit >> 20
                )));
            }
            file.write_all(&chunk).await.map_err(|e| ApiError::Internal(e.to_string()))?;
        }
        file.flush().await.map_err(|e| ApiError::Internal(e.to_string()))
    }
    .await;
    let built = match written {
        Ok(()) => state.apps.dev_build(&caller, &app, upload.clone()).await.map_err(ApiError::from),
        Err(error) => Err(error),
    };
    let _ = tokio::fs::remove_file(&upload).await;
    Ok((StatusCode::ACCEPTED, Json(built?)))
}

/// Carries a one-off process's stdin from the client and its output and exit status back.
async fn relay_one_off<S>(connection: S, process: crate::target::OneOff)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut from_client, mut to_client) = tokio::io::split(connection);
    let crate::target::OneOff { mut input, mut output, exit, stop } = process;
    // Ends `true` when the client is gone (its connection closed), `false` when only the
    // process's stdin is (it ended, or stopped reading).
    let mut feeding = tokio::spawn(async move {
        let mut buffer = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = match from_client.read(&mut chunk).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => n,
            };
            buffer.extend_from_slice(&chunk[..n]);
            loop {
                match wire::run::take_frame(&mut buffer) {
                    Ok(Some((wire::run::STDIN, data))) => {
                        if input.write_all(&data).await.is_err() {
                            return false;
                        }
                    }
                    Ok(Some((wire::run::STDIN_EOF, _))) => {
                        let _ = input.shutdown().await;
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => return true,
                }
            }
        }
    });
    let mut feeding_done = false;
    loop {
        tokio::select! {
            item = output.next() => {
                let Some(item) = item else { break };
                let frame = match item {
                    crate::target::Output::Stdout(bytes) => wire::run::frame(wire::run::STDOUT, &bytes),
                    crate::target::Output::Stderr(bytes) => wire::run::frame(wire::run::STDERR, &bytes),
                };
                if to_client.write_all(&frame).await.is_err() {
                    // Nobody is left to read: stop the process.
                    let _ = stop.send(());
                    let _ = exit.await;
                    feeding.abort();
                    return;
                }
            }
            gone = &mut feeding, if !feeding_done => {
                feeding_done = true;
                if gone.unwrap_or(true) {
                    // Nobody is left to read or type: stop the process.
                    let _ = stop.send(());
                    let _ = exit.await;
                    return;
                }
            }
        }
    }
    let code = exit.await;
    feeding.abort();
    let status = i32::try_from(code).unwrap_or(1);
    let _ = to_client.write_all(&wire::run::frame(wire::run::EXIT, &status.to_be_bytes())).await;
    let _ = to_client.flush().await;
    let _ = to_client.shutdown().await;
}

/// `GET /api/v1/apps/{app}/ps`: the live release's processes and their state.
async fn list_processes(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<wire::Process>>> {
    Ok(Json(state.apps.processes(&caller, &app).await?))
}

/// `POST /api/v1/apps/{app}/formation` `{"web": 3, "worker": 1}`: a new release runs them.
async fn scale(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult<Json<wire::Release>> {
    let request: wire::Formation = parse_body(&body, r#"{"web": 3, "worker": 1}"#)?;
    Ok(Json(state.apps.scale(&caller, &app, request).await?))
}

/// `POST /api/v1/apps/{app}/restart` `{}` or `{"process": "web"}`.
async fn restart(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult<Json<wire::Release>> {
    let request: wire::Restart =
        if body.is_empty() { wire::Restart::default() } else { parse_body(&body, r#"{"process": "web"}"#)? };
    Ok(Json(state.apps.restart(&caller, &app, request).await?))
}
