//! The HTTP API: REST under `/api/v1`, git smart HTTP under `/git/<app>.git`, and the
//! internal endpoint the pre-receive hook calls. Handlers are thin: they check the
//! token, parse, and call the store, `receive` or the pipeline.
//!
//! Architecture invariant: only this module knows JSON wire types and status codes.

use crate::app::{AppName, InvalidAppName};
use crate::build::Builder;
use crate::config::TargetKind;
use crate::logs::LogDir;
use crate::pipeline::{Pipeline, PushedRef};
use crate::receive::{self, GitRequest, HookEnv, HookMessage, HookRequest, Repos, ZERO_OID};
use crate::rollout::{self, Change, RolloutRequest, Rollouts};
use crate::store::{self, Store};
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
use tokio::sync::oneshot;

mod logs;

/// Everything the handlers need.
pub struct ApiState {
    pub store: Arc<Store>,
    pub repos: Repos,
    pub logs: LogDir,
    pub pipeline: Pipeline,
    pub builder: Builder,
    pub rollouts: Rollouts,
    pub retention: crate::retention::Retention,
    /// Config changes and rollbacks go to the rollout stage here.
    pub rollout_requests: tokio::sync::mpsc::Sender<RolloutRequest>,
    /// The target of an app created without one.
    pub default_target: TargetKind,
    /// Where every trigger's commits become builds.
    pub intake: crate::intake::Intake,
    /// Learns digests of images apps follow.
    pub image_watch: crate::image_watch::ImageWatch,
    /// What the supervised registry sends with its notifications.
    pub registry_events_token: String,
    /// hoistd's registry (promotion retags in it).
    pub registry: crate::registry::Registry,
    pub admin_token: String,
    pub hook: HookEnv,
    /// The buildpacks an app's `buildpack` setting may name.
    pub buildpacks: Vec<String>,
    /// Which repo URLs and images apps may be given.
    pub url_policy: crate::outside_url::Policy,
    /// How long a webhook's fetch may take.
    pub fetch_timeout: std::time::Duration,
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

impl From<store::Error> for ApiError {
    fn from(error: store::Error) -> ApiError {
        match error {
            store::Error::AppExists(name) => ApiError::Conflict(format!("app {name:?} exists already")),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        ApiError::BadRequest(format!("the request body is not what this call takes: {}", rejection.body_text()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Unauthorized
            | ApiError::GitUnauthorized
            | ApiError::NotTheHook
            | ApiError::Unauthorized401(_) => StatusCode::UNAUTHORIZED,
            ApiError::InvalidAppName(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnknownApp(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::ReleaseFailed(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = (status, Json(json!({ "error": self.to_string() }))).into_response();
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

/// Proof that the request carried the admin token.
pub struct Admin;

impl FromRequestParts<Arc<ApiState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<ApiState>) -> ApiResult<Admin> {
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(crate::auth::token_from_authorization);
        match given {
            Some(token) if crate::auth::token_matches(&token, &state.admin_token) => Ok(Admin),
            _ if parts.uri.path().starts_with("/git/") => Err(ApiError::GitUnauthorized),
            _ => Err(ApiError::Unauthorized),
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
        .route("/api/v1/gc", post(collect_garbage))
        .route("/api/v1/registry", get(show_registry))
        .route("/api/v1/apps/{app}/image-stream", get(image_stream))
        .route("/api/v1/apps/{app}/image-stream/promote", post(promote))
        .route("/api/v1/apps/{app}/webhook", get(show_webhook).post(rotate_webhook))
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

fn known_app(state: &ApiState, name: &str) -> ApiResult<store::App> {
    let name = AppName::parse(name)?;
    state.store.app(&name)?.ok_or_else(|| ApiError::UnknownApp(name.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateApp {
    name: String,
    deploy_branch: Option<String>,
    buildpack: Option<String>,
    target: Option<String>,
    /// The Git host repository webhooks build from.
    repo: Option<String>,
    /// A token for a private repository (never shown again).
    repo_token: Option<String>,
    /// Follow this image (`host:port/repo:tag`) instead of building.
    image: Option<String>,
}

/// `PATCH /api/v1/apps/{app}/config?secret=true`: the vars set are marked secret.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigQuery {
    secret: Option<bool>,
}

/// `PATCH /api/v1/apps/{app}`: settings to change; `"buildpack": null` clears it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateApp {
    #[serde(default, with = "double_option")]
    buildpack: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    repo: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    repo_token: Option<Option<String>>,
}

/// A repository URL webhooks may fetch from (see [`crate::outside_url`]).
fn check_repo_url(state: &ApiState, url: &str) -> ApiResult<()> {
    crate::outside_url::check_repo_url(url, &state.url_policy).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// Tells an absent field (`None`) from a `null` one (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

fn check_buildpack(state: &ApiState, buildpack: Option<&str>) -> ApiResult<()> {
    match buildpack {
        Some(name) if !state.buildpacks.iter().any(|known| known == name) => Err(ApiError::BadRequest(format!(
            "unknown buildpack {name:?}: this hoistd has {}",
            state.buildpacks.join(", ")
        ))),
        _ => Ok(()),
    }
}

async fn create_app(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<wire::App>)> {
    // Any content type: `curl -d '{"name":"web1"}'` sends a form type with a JSON body.
    let body: CreateApp = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the request body must be JSON like {{\"name\": \"web1\"}}: {e}")))?;
    let name = AppName::parse(&body.name)?;
    let branch = body.deploy_branch.unwrap_or_else(|| "main".to_string());
    if !receive::is_valid_branch_name(&branch) {
        return Err(ApiError::BadRequest(format!("invalid deploy branch {branch:?}: not a valid git branch name")));
    }
    check_buildpack(&state, body.buildpack.as_deref())?;
    let target = match body.target.as_deref() {
        Some(target) => target.parse::<TargetKind>().map_err(ApiError::BadRequest)?,
        None => state.default_target,
    };
    state.rollouts.targets().get(target).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if let Some(url) = &body.repo {
        check_repo_url(&state, url)?;
    }
    if let Some(image) = &body.image {
        if crate::image_watch::parse_reference(image).is_none() {
            return Err(ApiError::BadRequest(format!(
                "invalid image {:?}: give host:port/repository:tag, e.g. 127.0.0.1:5000/team/edge:latest",
                image.chars().take(100).collect::<String>()
            )));
        }
        crate::outside_url::check_image(image, &state.url_policy).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    let app = state.store.create_app(&name, &branch, body.buildpack.as_deref(), target)?;
    if let Some(image) = &body.image {
        state.store.set_app_image(&name, Some(image))?;
        let (watch, name) = (state.image_watch.clone(), name.clone());
        tokio::spawn(async move { watch.poll_app(&name).await });
    }
    if body.repo.is_some() || body.repo_token.is_some() {
        state.store.set_app_repo(&name, body.repo.as_deref(), Some(body.repo_token.as_deref()))?;
    }
    let app = state.store.app(&name)?.unwrap_or(app);
    if let Err(error) = state.repos.create(&name, &branch) {
        if let Err(undo) = state.store.delete_app(&name) {
            tracing::error!(app = %name, %undo, "cannot remove the app whose repository could not be made");
        }
        return Err(ApiError::Internal(error.to_string()));
    }
    tracing::info!(app = %name, "app created");
    Ok((StatusCode::CREATED, Json(wire::App::from(app))))
}

async fn update_app(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult<Json<wire::App>> {
    let app = known_app(&state, &app)?;
    let body: UpdateApp = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!("the request body must be JSON like {{\"buildpack\": \"node\"}}: {e}"))
    })?;
    if let Some(buildpack) = body.buildpack {
        check_buildpack(&state, buildpack.as_deref())?;
        state.store.set_app_buildpack(&app.name, buildpack.as_deref())?;
    }
    if let Some(Some(url)) = &body.repo {
        check_repo_url(&state, url)?;
    }
    if body.repo.is_some() || body.repo_token.is_some() {
        let url = match &body.repo {
            Some(url) => url.clone(),
            None => app.repo_url.clone(),
        };
        state.store.set_app_repo(&app.name, url.as_deref(), body.repo_token.as_ref().map(|t| t.as_deref()))?;
    }
    Ok(Json(known_app(&state, app.name.as_str())?.into()))
}

async fn list_apps(State(state): State<Arc<ApiState>>, _: Admin) -> ApiResult<Json<Vec<wire::App>>> {
    Ok(Json(state.store.apps()?.into_iter().map(wire::App::from).collect()))
}

async fn show_app(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path(app): Path<String>,
) -> ApiResult<Json<wire::AppInfo>> {
    let app = known_app(&state, &app)?;
    let live_release = state.store.live_release(&app.name)?.map(wire::Release::from);
    Ok(Json(wire::AppInfo { app: app.into(), live_release }))
}

async fn delete_app(State(state): State<Arc<ApiState>>, _: Admin, Path(app): Path<String>) -> ApiResult<StatusCode> {
    let app = known_app(&state, &app)?;
    let digests: Vec<String> =
        state.store.image_stream(&app.name)?.into_iter().filter(|e| e.source == "build").map(|e| e.digest).collect();
    state.rollouts.remove_app(&app).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    state.builder.remove_cache(&app.name).await;
    let freed = state.retention.remove_app(&app.name, &digests).await;
    tracing::info!(app = %app.name, ?freed, "the app's images removed");
    state.store.delete_app(&app.name)?;
    state.repos.delete(&app.name).map_err(|e| ApiError::Internal(e.to_string()))?;
    let _ = std::fs::remove_dir_all(state.logs.app_dir(&app.name));
    tracing::info!(app = %app.name, "app deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn list_builds(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<wire::Build>>> {
    let app = known_app(&state, &app)?;
    Ok(Json(state.store.builds(&app.name)?.into_iter().map(wire::Build::from).collect()))
}

fn known_build(state: &ApiState, app: &str, id: &str) -> ApiResult<(store::App, store::Build)> {
    let app = known_app(state, app)?;
    let missing = || {
        ApiError::NotFound(format!("app {} has no build {id:?}; list them with `hoist builds {}`", app.name, app.name))
    };
    let id: i64 = id.parse().map_err(|_| missing())?;
    let build = state.store.build(id)?.filter(|b| b.app == app.name).ok_or_else(missing)?;
    Ok((app, build))
}

async fn show_build(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<Json<wire::Build>> {
    let (_, build) = known_build(&state, &app, &id)?;
    Ok(Json(build.into()))
}

async fn list_releases(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<wire::Release>>> {
    let app = known_app(&state, &app)?;
    Ok(Json(state.store.releases(&app.name)?.into_iter().map(wire::Release::from).collect()))
}

/// `GET /api/v1/apps/{app}/config`: the config vars and their version.
async fn show_config(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path(app): Path<String>,
) -> ApiResult<Json<wire::Config>> {
    let app = known_app(&state, &app)?;
    let (version, vars) = state.store.app_config(&app.name)?;
    Ok(Json(shown_config(&state, &app.name, version, vars)?))
}

/// Config vars as shown: secret ones (marked, or named like secrets) masked.
fn shown_config(state: &ApiState, app: &AppName, version: i64, vars: store::ConfigVars) -> ApiResult<wire::Config> {
    let marked = state.store.secret_config_names(app)?;
    let mut secret = Vec::new();
    let vars = vars
        .into_iter()
        .map(|(name, value)| {
            if marked.contains(&name) || store::is_secret_name(&name) {
                secret.push(name.clone());
                (name, crate::logs::MASK.to_string())
            } else {
                (name, value)
            }
        })
        .collect();
    Ok(wire::Config { version, vars, secret })
}

/// A config var's name: what a shell and Kubernetes accept as an environment variable.
fn check_config_key(key: &str) -> ApiResult<()> {
    let valid = !key.is_empty()
        && key.len() <= 253
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(ApiError::BadRequest(format!(
            "invalid config var name {:?}: use letters, digits and '_', not starting with a digit",
            key.chars().take(60).collect::<String>()
        )));
    }
    if key == "PORT" {
        return Err(ApiError::BadRequest("PORT is set by hoist (the port the app must listen on)".to_string()));
    }
    Ok(())
}

/// A config var's value: anything an environment variable can hold, checked before it is
/// saved (a NUL byte cannot be passed to a process, so every build and release would fail).
fn check_config_value(key: &str, value: &str) -> ApiResult<()> {
    if value.contains('\0') {
        return Err(ApiError::BadRequest(format!(
            "the value of {key} contains a NUL byte, which no environment variable can hold; nothing was saved"
        )));
    }
    if value.len() > 64 * 1024 {
        return Err(ApiError::BadRequest(format!(
            "the value of {key} is {} bytes; a config value may be at most 64 KiB; nothing was saved",
            value.len()
        )));
    }
    Ok(())
}

/// Sends a rollout request and waits for its end.
async fn roll_out(state: &ApiState, app: &AppName, change: Change) -> ApiResult<store::Release> {
    let (done, outcome) = oneshot::channel();
    let request = RolloutRequest { app: app.clone(), change, cause_log: None, done: Some(done) };
    let stopped = || ApiError::Internal("the rollout stage has stopped; restart hoistd".to_string());
    state.rollout_requests.send(request).await.map_err(|_| stopped())?;
    match outcome.await.map_err(|_| stopped())? {
        Ok(release) => Ok(release),
        Err(error @ rollout::Error::Failed { .. }) => Err(ApiError::ReleaseFailed(error.to_string())),
        Err(error @ (rollout::Error::NothingDeployed { .. } | rollout::Error::Target(_))) => {
            Err(ApiError::Conflict(error.to_string()))
        }
        Err(error @ rollout::Error::UnknownRelease { .. }) => Err(ApiError::NotFound(error.to_string())),
        Err(error @ rollout::Error::ImageGone { .. }) => Err(ApiError::Conflict(error.to_string())),
        Err(error) => Err(ApiError::Internal(error.to_string())),
    }
}

/// `PATCH /api/v1/apps/{app}/config`: `{"NAME": "value", "OLD": null}` sets and unsets;
/// a change makes a new release of the live image (no build).
async fn change_config(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path(app): Path<String>,
    Query(query): Query<ConfigQuery>,
    body: Bytes,
) -> ApiResult<Json<wire::ConfigChanged>> {
    let app = known_app(&state, &app)?;
    let changes: std::collections::BTreeMap<String, Option<String>> = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the request body must be a JSON object of names to strings (set) or null (unset), like {{\"GREETING\": \"hi\"}}: {e}"
        ))
    })?;
    for (key, value) in &changes {
        check_config_key(key)?;
        if let Some(value) = value {
            check_config_value(key, value)?;
        }
    }
    if query.secret.unwrap_or(false) {
        let set: Vec<String> = changes.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k.clone()).collect();
        state.store.mark_config_secret(&app.name, &set)?;
    }
    let names: Vec<String> =
        changes.iter().map(|(key, value)| if value.is_some() { key.clone() } else { format!("-{key}") }).collect();
    let Some((version, vars)) = state.store.change_app_config(&app.name, &changes)? else {
        let (version, vars) = state.store.app_config(&app.name)?;
        let config = shown_config(&state, &app.name, version, vars)?;
        return Ok(Json(wire::ConfigChanged { config, release: None, message: Some("nothing changed".to_string()) }));
    };
    if state.store.live_release(&app.name)?.is_none() {
        let message = "saved; no release is live yet, the next deploy uses it";
        let config = shown_config(&state, &app.name, version, vars)?;
        return Ok(Json(wire::ConfigChanged { config, release: None, message: Some(message.to_string()) }));
    }
    let description = format!("config {} (v{version})", names.join(" "));
    let release = roll_out(&state, &app.name, Change::Config { description }).await.map_err(|error| match error {
        ApiError::ReleaseFailed(message) => {
            ApiError::ReleaseFailed(format!("config v{version} is saved, but {message}"))
        }
        other => other,
    })?;
    let config = shown_config(&state, &app.name, version, vars)?;
    Ok(Json(wire::ConfigChanged { config, release: Some(release.into()), message: None }))
}

/// `GET /api/v1/registry`: where hoistd's registry is and its account, so an admin can
/// push images apps follow (`hoist registry login`).
async fn show_registry(State(state): State<Arc<ApiState>>, _: Admin) -> Json<wire::Registry> {
    let credentials = state.registry.credentials();
    Json(wire::Registry {
        address: state.registry.addr().to_string(),
        username: credentials.map(|c| c.username.clone()),
        password: credentials.map(|c| c.password.clone()),
    })
}

/// `POST /api/v1/gc`: applies the retention policy to every app now; says what it freed.
async fn collect_garbage(State(state): State<Arc<ApiState>>, _: Admin) -> ApiResult<Json<serde_json::Value>> {
    let mut total = crate::retention::Freed::default();
    let mut apps = serde_json::Map::new();
    for app in state.store.apps()? {
        let freed = state.retention.apply(&app.name).await;
        total += freed;
        apps.insert(app.name.to_string(), json!(freed));
    }
    Ok(Json(json!({ "keep_releases": state.retention.keep(), "freed": total, "apps": apps })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rollback {
    release: i64,
}

/// `POST /api/v1/apps/{app}/rollback` `{"release": N}`: a new release of release N's
/// image and config.
async fn rollback(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<wire::Release>)> {
    let app = known_app(&state, &app)?;
    let body: Rollback = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the request body must be JSON like {{\"release\": 1}}: {e}")))?;
    let release = roll_out(&state, &app.name, Change::Rollback { to: body.release }).await?;
    Ok((StatusCode::CREATED, Json(wire::Release::from(release))))
}

async fn image_stream(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path(app): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let app = known_app(&state, &app)?;
    let mut tags: std::collections::BTreeMap<String, Vec<store::ImageStreamEntry>> = Default::default();
    for entry in state.store.image_stream(&app.name)? {
        tags.entry(entry.tag.clone()).or_default().push(entry);
    }
    Ok(Json(json!({ "app": app.name, "tags": tags })))
}

#[allow(clippy::too_many_arguments)]
async fn git(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path((repo, path)): Path<(String, String)>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let name = repo.strip_suffix(".git").unwrap_or(&repo);
    let app = known_app(&state, name)?;
    let allowed = ["info/refs", "git-receive-pack", "git-upload-pack", "HEAD"];
    if !allowed.contains(&path.as_str()) {
        return Err(ApiError::NotFound(format!("no such git path {path:?}")));
    }
    let request = GitRequest {
        app: app.name,
        path,
        method,
        query: query.unwrap_or_default(),
        headers,
        body,
        remote_user: "hoist".to_string(),
        remote_addr: remote.ip().to_string(),
    };
    receive::http_backend(&state.repos, &state.hook, request).await.map_err(|e| ApiError::Internal(e.to_string()))
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
    let app = known_app(&state, &request.app)?;
    let deploy_ref = format!("refs/heads/{}", app.deploy_branch);
    let mut notes = Vec::new();
    let mut deploy = None;
    for update in &request.updates {
        if update.name == deploy_ref && update.new != ZERO_OID {
            deploy = Some(update.clone());
        } else if update.new == ZERO_OID {
            notes.push(format!("-----> {} deleted; nothing deploys", update.name));
        } else {
            notes.push(format!("-----> {} stored; only {} deploys", update.name, app.deploy_branch));
        }
    }
    let Some(deploy) = deploy else {
        let end = HookMessage::End { ok: true, message: "=====> Pushed without deploying".to_string() };
        return Ok(ndjson_once(notes, end));
    };

    let push = PushedRef { repo: state.repos.path(&app.name), name: deploy.name.clone(), old: deploy.old };
    let commit = crate::intake::Commit {
        app,
        commit: deploy.new,
        git_ref: deploy.name,
        object_dirs: request.object_dirs,
        push: Some(push),
        notes,
    };
    let submitted = state.intake.submit(commit).await.map_err(intake_error)?;
    let follower = state
        .logs
        .follow(&submitted.log, 0, true)
        .await
        .ok()
        .flatten()
        .ok_or_else(|| ApiError::Internal(format!("the log of build {} cannot be read", submitted.build_id)))?;
    Ok(logs::hook_stream(follower, submitted.outcome))
}

fn intake_error(error: crate::intake::Error) -> ApiError {
    match error {
        crate::intake::Error::Refused(error) => ApiError::BadRequest(error.to_string()),
        other => ApiError::Internal(other.to_string()),
    }
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
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    use crate::webhook::{self, Request};
    // An unknown app, an app without a webhook and a wrong signature answer alike, so an
    // anonymous caller cannot tell which apps exist: the body is checked against a secret
    // nobody knows, and fails the same way.
    let found = match AppName::parse(&app) {
        Ok(name) => state.store.app(&name)?,
        Err(_) => None,
    };
    let secret = match &found {
        Some(app) => state.store.webhook_secret(&app.name)?,
        None => None,
    };
    let envelope = webhook::envelope(&headers).map_err(|e| ApiError::Unauthorized401(e.to_string()))?;
    let checked_secret = secret.clone().unwrap_or_else(crate::auth::new_token);
    webhook::verify(envelope.host, &headers, &body, &checked_secret).map_err(|e| {
        ApiError::Unauthorized401(format!(
            "{e} (or no app with a webhook has this URL: `hoist webhooks APP` shows an app's)"
        ))
    })?;
    let (Some(app), Some(_)) = (found, secret) else {
        return Err(ApiError::Unauthorized401("the signature does not verify".to_string()));
    };
    let request = webhook::parse(&envelope, &body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let (branch, commit, pusher, message) = match request {
        Request::Ping => return Ok((StatusCode::OK, Json(json!({ "result": "pong", "app": app.name })))),
        Request::Ignored(why) => {
            return Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "result": "ignored", "message": format!("ignored: {why}") })),
            ))
        }
        Request::Push { branch, commit, pusher, message } => (branch, commit, pusher, message),
    };
    if branch != app.deploy_branch {
        let message = format!("ignored: branch {branch} does not deploy (the app deploys {})", app.deploy_branch);
        return Ok((StatusCode::ACCEPTED, Json(json!({ "result": "ignored", "message": message }))));
    }
    let Some(url) = app.repo_url.clone() else {
        return Err(ApiError::Conflict(format!(
            "app {} has no repository to fetch from: set it with `hoist apps set-repo {} URL`",
            app.name, app.name
        )));
    };
    if let Some(delivery) = &envelope.delivery {
        if !state.store.record_delivery(&app.name, delivery)? {
            let message = format!("delivery {delivery} was received before; built once");
            return Ok((StatusCode::OK, Json(json!({ "result": "duplicate", "message": message }))));
        }
    }
    // A signed body replayed under a new (or no) delivery id builds nothing new: a
    // webhook builds a commit once per app (again only if its fetch failed).
    let commit_key = format!("commit {commit}");
    if !state.store.record_delivery(&app.name, &commit_key)? {
        let message = format!(
            "commit {} was built from a webhook before; built once (push a new commit to build again, or `hoist rollback` to go back to a release)",
            &commit[..12]
        );
        return Ok((StatusCode::OK, Json(json!({ "result": "duplicate", "message": message }))));
    }
    let mut notes = vec![format!(
        "-----> {} push of {} to {branch}{}{} (delivery {})",
        envelope.host.name(),
        &commit[..12],
        pusher.map(|p| format!(" by {p}")).unwrap_or_default(),
        message.map(|m| format!(": {m}")).unwrap_or_default(),
        envelope.delivery.as_deref().unwrap_or("-"),
    )];
    notes.push(format!("-----> Fetching {} from {url}", &commit[..12]));
    let token = state.store.app_repo_token(&app.name)?;
    let git_ref = format!("refs/heads/{branch}");
    // The build is recorded before the fetch, so a fetch that hangs or fails shows as a
    // build that says why.
    let opened = state.intake.open(&app, &commit, &git_ref, &notes).map_err(|e| ApiError::Internal(e.to_string()))?;
    let answer = json!({ "result": "queued", "app": app.name, "commit": commit, "build": opened.build_id });
    let (intake, repo, policy) = (state.intake.clone(), state.repos.path(&app.name), state.url_policy.clone());
    let delivery = envelope.delivery.clone();
    let limits = receive::FetchLimits { timeout: state.fetch_timeout, max_bytes: state.intake.limits.max_total };
    tokio::spawn(async move {
        let fetched = match crate::outside_url::check_resolved(&url, &policy).await {
            Ok(()) => receive::fetch_commit(&repo, &url, &branch, &commit, token.as_deref(), limits).await,
            Err(refused) => Err(receive::Error::Fetch { url: url.clone(), message: refused.to_string() }),
        };
        if let Err(error) = fetched {
            tracing::warn!(app = %app.name, %error, "webhook fetch failed");
            intake.fail(opened, &error.to_string());
            // A redelivery (after fixing the token, say) is then acted on.
            for key in std::iter::once(&commit_key).chain(delivery.as_ref()) {
                if let Err(error) = intake.store.forget_delivery(&app.name, key) {
                    tracing::warn!(app = %app.name, %error, "cannot forget the delivery of a failed fetch");
                }
            }
            return;
        }
        let name = app.name.clone();
        let commit = crate::intake::Commit { app, commit, git_ref, object_dirs: vec![], push: None, notes: vec![] };
        match intake.submit_opened(opened, commit).await {
            Ok(submitted) => {
                if let Ok(outcome) = submitted.outcome.await {
                    tracing::info!(app = %name, build = submitted.build_id, ?outcome, "webhook build ended");
                }
            }
            Err(error) => tracing::warn!(app = %name, %error, "webhook commit not taken"),
        }
    });
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Promote {
    from: String,
    to: String,
}

/// `POST /api/v1/apps/{app}/image-stream/promote` `{"from": "latest", "to": "stable"}`:
/// tags the app's image (in hoistd's registry) `to` with what `from` points at; apps
/// following `to` roll out.
async fn promote(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let app = known_app(&state, &app)?;
    let body: Promote = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!("the body must be JSON like {{\"from\": \"latest\", \"to\": \"stable\"}}: {e}"))
    })?;
    for tag in [&body.from, &body.to] {
        let valid = !tag.is_empty()
            && tag.len() <= 128
            && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid {
            return Err(ApiError::BadRequest(format!("invalid tag {:?}: letters, digits, '.', '_' and '-'", tag)));
        }
    }
    let own = state.registry.addr().to_string();
    let repository = match app.image.as_deref().and_then(crate::image_watch::parse_reference) {
        Some(followed) => followed.repository,
        None => format!("{own}/{}", app.name),
    };
    let Some(name) = repository.strip_prefix(&format!("{own}/")).map(str::to_string) else {
        return Err(ApiError::Conflict(format!(
            "{repository} is not in hoistd's registry ({own}); promote it where it lives"
        )));
    };
    // `from` as the image stream knows it (hoist's builds are pushed as build-N; the
    // stream's `latest` is what the app runs), else as a tag in the registry.
    let source = state.store.current_digest(&app.name, &body.from)?.unwrap_or(body.from.clone());
    let digest = state
        .registry
        .retag(&name, &source, &body.to)
        .await
        .map_err(|e| ApiError::NotFound(format!("cannot promote {repository} {}: {e}", body.from)))?;
    // The app's own stream records the promotion too (it follows another tag, so this
    // starts no rollout of it).
    state.store.record_tag(&app.name, &body.to, &repository, &digest, "promotion", None)?;
    state.image_watch.promoted(&repository, &body.to, &digest).await;
    Ok(Json(json!({ "repository": repository, "tag": body.to, "digest": digest })))
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
    let watch = state.image_watch.clone();
    tokio::spawn(async move { watch.notified(&envelope).await });
    Ok(StatusCode::OK)
}

/// `GET /api/v1/apps/{app}/webhook`: where to send webhooks; the secret is not shown.
async fn show_webhook(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path(app): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let app = known_app(&state, &app)?;
    Ok(Json(json!({
        "path": format!("/hooks/{}", app.name),
        "repo": app.repo_url,
        "deploy_branch": app.deploy_branch,
        "secret_set": app.webhook,
    })))
}

/// `POST /api/v1/apps/{app}/webhook`: makes a new webhook secret (the old one stops
/// working) and shows it, this once.
async fn rotate_webhook(
    State(state): State<Arc<ApiState>>,
    _: Admin,
    Path(app): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let app = known_app(&state, &app)?;
    let secret = crate::auth::new_token();
    state.store.set_webhook_secret(&app.name, &secret)?;
    tracing::info!(app = %app.name, "webhook secret rotated");
    Ok(Json(json!({
        "path": format!("/hooks/{}", app.name),
        "repo": app.repo_url,
        "deploy_branch": app.deploy_branch,
        "secret": secret,
    })))
}

fn ndjson_once(lines: Vec<String>, end: HookMessage) -> Response {
    let mut body: Vec<u8> = Vec::new();
    for line in lines {
        body.extend_from_slice(&logs::line_of(&HookMessage::Line { line }));
    }
    body.extend_from_slice(&logs::line_of(&end));
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}
