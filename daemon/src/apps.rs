//! The apps service: everything that can be done to apps — create, change, delete,
//! config, rollback, promotion, webhook deliveries, pushes — whoever asks. The HTTP API
//! is its first caller; SSH and `hoist dev` are next. Handlers parse a request, call one
//! method here and answer; the decisions (and the authorization the teams issue adds)
//! are made here, once.
//!
//! Architecture invariant: knows apps, stores, stages and wire shapes, never HTTP status
//! codes or axum; the API's handlers make no store call of their own.

use crate::access::{Caller, Role};
use crate::app::{AppName, InvalidAppName};
use crate::build::Builder;
use crate::config::TargetKind;
use crate::image_watch::ImageWatch;
use crate::intake::{Intake, Submitted};
use crate::logs::{LogDir, Record, Secrets};
use crate::outside_url;
use crate::pipeline::PushedRef;
use crate::receive::{self, HookRequest, Repos, ZERO_OID};
use crate::registry::Registry;
use crate::retention::Retention;
use crate::rollout::{self, Change, RolloutRequest, Rollouts};
use crate::store::{self, Store};
use crate::webhook;
use crate::wire;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;

mod dev;
mod teams;
pub use teams::{GitService, PushTicket, Pushes};

/// Why a request about an app was not done; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidAppName(#[from] InvalidAppName),
    /// No token, or one that is not (or no longer) valid; no key that is known.
    #[error("missing or wrong token")]
    Unauthenticated,
    /// The caller is known but lacks the role (or is not the admin): says which is needed.
    #[error("{0}")]
    Forbidden(String),
    #[error("no app named {0:?}; create it with `hoist apps create {0}`")]
    UnknownApp(String),
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be done as given.
    #[error("{0}")]
    Invalid(String),
    #[error("app {0:?} exists already")]
    Exists(String),
    #[error("{0}")]
    Conflict(String),
    /// A webhook whose signature does not verify (or that names no app with a webhook).
    #[error("{0}")]
    BadSignature(String),
    /// A release was made and did not go live; the one before keeps serving.
    #[error("{0}")]
    ReleaseFailed(String),
    #[error("{0}")]
    Internal(String),
}

impl From<store::Error> for Error {
    fn from(error: store::Error) -> Error {
        match error {
            store::Error::AppExists(name) => Error::Exists(name),
            store::Error::Exists(message) => Error::Conflict(message),
            other => Error::Internal(other.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The most processes of one type `ps:scale` starts.
const MAX_PROCESSES: u32 = 20;

/// How many apps `rebase --all` moves at once.
const REBASE_CONCURRENCY: usize = 4;

/// What the service works with.
pub struct Apps {
    pub store: Arc<Store>,
    pub repos: Repos,
    pub logs: LogDir,
    pub builder: Builder,
    pub rollouts: Rollouts,
    pub retention: Retention,
    /// Config changes and rollbacks go to the rollout stage here.
    pub rollout_requests: tokio::sync::mpsc::Sender<RolloutRequest>,
    /// The target of an app created without one.
    pub default_target: TargetKind,
    /// Where every trigger's commits become builds.
    pub intake: Intake,
    /// Learns digests of images apps follow.
    pub image_watch: ImageWatch,
    /// Records digests in image streams (and starts the rollouts they call for).
    pub image_streams: crate::image_stream::ImageStreams,
    /// hoistd's registry (promotion retags in it).
    pub registry: Registry,
    /// Writes images to the registry (a rebase writes a new one).
    pub exporter: crate::export::Exporter,
    /// The buildpacks an app's `buildpack` setting may name.
    pub buildpacks: Vec<String>,
    /// Which repo URLs and images apps may be given.
    pub url_policy: outside_url::Policy,
    /// How long a webhook's fetch may take.
    pub fetch_timeout: std::time::Duration,
    /// The operator's token.
    pub admin_token: crate::auth::AdminToken,
    /// What users' tokens are hashed with.
    pub token_key: crate::auth::TokenKey,
    /// Pushes in flight, so the hook's request is its caller's.
    pub pushes: Arc<Pushes>,
    /// How long the audit log keeps an entry.
    pub audit_keep_days: u32,
    /// Where the router serves apps: `<scheme>://<app>.<domain>:<port>`.
    pub app_urls: AppUrls,
    /// `hoist dev`'s file contents, per app (`<data>/dev`).
    pub dev_root: PathBuf,
}

/// Where the router serves each app.
#[derive(Debug, Clone)]
pub struct AppUrls {
    pub scheme: &'static str,
    pub domain: String,
    pub port: u16,
}

impl AppUrls {
    pub fn of(&self, app: &AppName) -> String {
        let default_port = matches!((self.scheme, self.port), ("http", 80) | ("https", 443));
        match default_port {
            true => format!("{}://{app}.{}/", self.scheme, self.domain),
            false => format!("{}://{app}.{}:{}/", self.scheme, self.domain, self.port),
        }
    }
}

/// What a push to an app's repo asks of it.
pub enum Pushed {
    /// Nothing deploys (another branch, a deletion): these lines say so.
    NothingDeploys(Vec<String>),
    /// The deploy branch moved: its build is on its way.
    Building(Submitted),
}

/// An app's runtime output: the release it comes from and its lines, secrets masked.
pub struct RuntimeOutput {
    pub release: i64,
    pub records: BoxStream<'static, Record>,
}

impl Apps {
    /// The app named `name`, for hoistd's own callers (the hook's request, whose push was
    /// authorized when its `git` started).
    fn app(&self, name: &str) -> Result<store::App> {
        let name = AppName::parse(name)?;
        self.store.app(&name)?.ok_or_else(|| Error::UnknownApp(name.to_string()))
    }

    /// The apps the caller may see, with the role it holds on each.
    pub fn list(&self, caller: &Caller) -> Result<Vec<wire::App>> {
        let grants = match caller.user() {
            Some(user) => self.store.grants_of(user)?,
            None => Default::default(),
        };
        let mut apps = Vec::new();
        for app in self.store.apps()? {
            let Some(role) = caller.role_on(&app.name, grants.get(&app.name).copied()) else { continue };
            let mut shown = wire::App::from(app);
            shown.role = Some(role.to_string());
            apps.push(shown);
        }
        Ok(apps)
    }

    pub fn show(&self, caller: &Caller, name: &str) -> Result<wire::AppInfo> {
        let app = self.authorize(caller, name, Role::Viewer, "seeing the app")?;
        let live_release = self.store.live_release(&app.name)?.map(wire::Release::from);
        let url = self.app_urls.of(&app.name);
        Ok(wire::AppInfo { app: app.into(), live_release, url })
    }

    pub async fn create(&self, caller: &Caller, request: wire::CreateApp) -> Result<wire::App> {
        self.admin_only(caller, "create apps")?;
        let name = AppName::parse(&request.name)?;
        let branch = request.deploy_branch.unwrap_or_else(|| "main".to_string());
        if !receive::is_valid_branch_name(&branch) {
            return Err(Error::Invalid(format!("invalid deploy branch {branch:?}: not a valid git branch name")));
        }
        self.check_buildpack(request.buildpack.as_deref())?;
        let target = match request.target.as_deref() {
            Some(target) => target.parse::<TargetKind>().map_err(Error::Invalid)?,
            None => self.default_target,
        };
        self.rollouts.targets().get(target).map_err(|e| Error::Invalid(e.to_string()))?;
        if let Some(url) = &request.repo {
            self.check_repo_url(url)?;
        }
        if let Some(image) = &request.image {
            if crate::image_watch::parse_reference(image).is_none() {
                return Err(Error::Invalid(format!(
                    "invalid image {:?}: give host:port/repository:tag, e.g. 127.0.0.1:5000/team/edge:latest",
                    image.chars().take(100).collect::<String>()
                )));
            }
            outside_url::check_image(image, &self.url_policy).map_err(|e| Error::Invalid(e.to_string()))?;
        }
        let audit = Self::audit_entry(caller, Some(&name), "app.create", format!("target {target}"));
        let app = self.store.create_app(&name, &branch, request.buildpack.as_deref(), target, &audit)?;
        if let Some(image) = &request.image {
            self.store.set_app_image(&name, Some(image))?;
            let (watch, name) = (self.image_watch.clone(), name.clone());
            tokio::spawn(async move { watch.poll_app(&name).await });
        }
        if request.repo.is_some() || request.repo_token.is_some() {
            self.store.set_app_repo(&name, request.repo.as_deref(), Some(request.repo_token.as_deref()))?;
        }
        let app = self.store.app(&name)?.unwrap_or(app);
        if let Err(error) = self.repos.create(&name, &branch) {
            let audit = Self::audit_entry(caller, Some(&name), "app.delete", "its repository could not be made");
            if let Err(undo) = self.store.delete_app(&name, &audit) {
                tracing::error!(app = %name, %undo, "cannot remove the app whose repository could not be made");
            }
            return Err(Error::Internal(error.to_string()));
        }
        tracing::info!(app = %name, "app created");
        Ok(app.into())
    }

    pub fn update(&self, caller: &Caller, name: &str, request: wire::UpdateApp) -> Result<wire::App> {
        let app = self.authorize(caller, name, Role::Deployer, "changing the app's settings")?;
        let changed: Vec<&str> = [
            request.buildpack.is_some().then_some("buildpack"),
            request.repo.is_some().then_some("repo"),
            request.repo_token.is_some().then_some("repo_token"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let Some(Some(url)) = &request.repo {
            self.check_repo_url(url)?;
        }
        if let Some(buildpack) = &request.buildpack {
            self.check_buildpack(buildpack.as_deref())?;
        }
        if let Some(buildpack) = request.buildpack {
            self.store.set_app_buildpack(&app.name, buildpack.as_deref())?;
        }
        if request.repo.is_some() || request.repo_token.is_some() {
            let url = match &request.repo {
                Some(url) => url.clone(),
                None => app.repo_url.clone(),
            };
            self.store.set_app_repo(&app.name, url.as_deref(), request.repo_token.as_ref().map(|t| t.as_deref()))?;
        }
        self.store.record_audit(&Self::audit_entry(caller, Some(&app.name), "app.update", changed.join(" ")))?;
        Ok(self.app(app.name.as_str())?.into())
    }

    /// Deletes the app with its releases, containers, images, cache, repo and logs.
    pub async fn delete(&self, caller: &Caller, name: &str) -> Result<()> {
        let app = self.authorize(caller, name, Role::Owner, "destroying the app")?;
        let digests: Vec<String> = self
            .store
            .image_stream(&app.name)?
            .into_iter()
            .filter(|e| e.source.is_hoists())
            .map(|e| e.digest)
            .collect();
        self.builder.stop_builds(&app.name).await;
        self.rollouts.remove_app(&app).await.map_err(|e| Error::Internal(e.to_string()))?;
        self.builder.remove_cache(&app.name).await;
        let freed = self.retention.remove_app(&app.name, &digests).await;
        tracing::info!(app = %app.name, ?freed, "the app's images removed");
        self.store.delete_app(&app.name, &Self::audit_entry(caller, Some(&app.name), "app.delete", ""))?;
        if let Some(retired) = self.repos.retire(&app.name).map_err(|e| Error::Internal(e.to_string()))? {
            let (pushes, name) = (self.pushes.clone(), app.name.clone());
            tokio::spawn(async move {
                pushes.ended(&name).await;
                if let Err(error) = tokio::fs::remove_dir_all(&retired).await {
                    tracing::warn!(app = %name, %error, "cannot remove the deleted app's repo");
                }
            });
        }
        if let Err(error) = std::fs::remove_dir_all(self.dev_dir(&app.name)) {
            if error.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(app = %app.name, %error, "cannot remove the app's hoist dev contents");
            }
        }
        if let Err(error) = std::fs::remove_dir_all(self.logs.app_dir(&app.name)) {
            if error.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(app = %app.name, %error, "cannot remove the app's logs");
            }
        }
        tracing::info!(app = %app.name, "app deleted");
        Ok(())
    }

    pub fn builds(&self, caller: &Caller, name: &str) -> Result<Vec<wire::Build>> {
        let app = self.authorize(caller, name, Role::Viewer, "reading builds")?;
        Ok(self.store.builds(&app.name)?.into_iter().map(wire::Build::from).collect())
    }

    /// Build `id` (as given in a path) of the app.
    pub fn build(&self, caller: &Caller, name: &str, id: &str) -> Result<(store::App, store::Build)> {
        let app = self.authorize(caller, name, Role::Viewer, "reading builds")?;
        let missing = || {
            Error::NotFound(format!("app {} has no build {id:?}; list them with `hoist builds {}`", app.name, app.name))
        };
        let id: i64 = id.parse().map_err(|_| missing())?;
        let build = self.store.build(id)?.filter(|b| b.app == app.name).ok_or_else(missing)?;
        Ok((app, build))
    }

    pub fn releases(&self, caller: &Caller, name: &str) -> Result<Vec<wire::Release>> {
        let app = self.authorize(caller, name, Role::Viewer, "reading releases")?;
        Ok(self.store.releases(&app.name)?.into_iter().map(wire::Release::from).collect())
    }

    /// Release `number` (as given in a path) of the app.
    pub fn release(&self, caller: &Caller, name: &str, number: &str) -> Result<(store::App, store::Release)> {
        let app = self.authorize(caller, name, Role::Viewer, "reading releases")?;
        let missing = || {
            Error::NotFound(format!(
                "app {} has no release {number:?}; list them with `hoist releases {}`",
                app.name, app.name
            ))
        };
        let number: i64 = number.parse().map_err(|_| missing())?;
        let release = self.store.release(&app.name, number)?.ok_or_else(missing)?;
        Ok((app, release))
    }

    /// Where build `id`'s log is, and the status it ended with (if it did).
    pub fn build_log(&self, app: &AppName, id: i64) -> PathBuf {
        self.logs.build_log(app, id)
    }

    pub fn release_log(&self, app: &AppName, number: i64) -> PathBuf {
        self.logs.release_log(app, number)
    }

    /// The status build `id` has now, as the end of its log says it.
    pub fn build_status(&self, id: i64) -> Option<String> {
        self.store.build(id).ok().flatten().map(|b| b.status.as_str().to_string())
    }

    pub fn release_status(&self, app: &AppName, number: i64) -> Option<String> {
        self.store.release(app, number).ok().flatten().map(|r| r.status.as_str().to_string())
    }

    /// The output of the app's live release (its container, or its pods), secrets masked.
    pub async fn runtime_output(
        &self,
        caller: &Caller,
        name: &str,
        tail: usize,
        follow: bool,
    ) -> Result<RuntimeOutput> {
        let app = self.authorize(caller, name, Role::Viewer, "reading the app's output")?;
        let release = self.store.live_release(&app.name)?.ok_or_else(|| {
            Error::NotFound(format!("app {} has no live release, so no output: push to deploy it", app.name))
        })?;
        let target = self.rollouts.targets().get(release.target).map_err(|e| Error::Conflict(e.to_string()))?;
        let lines = target.runtime_logs(&app.name, &release, tail, follow).await.map_err(|e| {
            Error::Conflict(format!("cannot read the output of release {} of {}: {e}", release.number, app.name))
        })?;
        let secrets = Secrets::new(self.store.app_secrets(&app.name)?);
        let mut seq = 0;
        let records = lines
            .map(move |line| {
                seq += 1;
                let text = secrets.mask(&line);
                Record { seq, time: crate::logs::now(), stage: crate::logs::stage::RUNTIME.to_string(), text }
            })
            .boxed();
        Ok(RuntimeOutput { release: release.number, records })
    }

    /// Sets how many processes of each type the app runs (`hoist ps:scale`); a new release
    /// of the live image runs them (a formation lasts across deploys). Types must be the
    /// live release's (`web`, or its Procfile's).
    pub async fn scale(&self, caller: &Caller, name: &str, changes: wire::Formation) -> Result<wire::Release> {
        let app = self.authorize(caller, name, Role::Deployer, "scaling")?;
        if changes.is_empty() {
            return Err(Error::Invalid("say what to scale: hoist ps:scale APP web=2 worker=1".to_string()));
        }
        let live = self
            .store
            .live_release(&app.name)?
            .ok_or_else(|| Error::Conflict(format!("app {} has no live release to scale; push it first", app.name)))?;
        for (kind, count) in &changes {
            check_process_type(&live, kind)?;
            if *count > MAX_PROCESSES {
                return Err(Error::Invalid(format!("{kind}={count}: at most {MAX_PROCESSES} processes of a type")));
            }
        }
        let description =
            format!("scale {}", changes.iter().map(|(k, n)| format!("{k}={n}")).collect::<Vec<_>>().join(" "));
        let audit = Self::audit_entry(caller, Some(&app.name), "scale", description.trim_start_matches("scale "));
        self.store.set_formation(&app.name, &changes, &audit)?;
        Ok(self.roll_out(&app.name, Change::Formation { description }, None).await?.into())
    }

    /// Starts the app's processes again (`hoist ps:restart`): a new release of the live
    /// image and config, rolled out as any, so web keeps answering throughout.
    pub async fn restart(&self, caller: &Caller, name: &str, request: wire::Restart) -> Result<wire::Release> {
        let app = self.authorize(caller, name, Role::Deployer, "restarting")?;
        let Some(kind) = request.process.filter(|kind| kind != "web") else {
            // Web (and everything, when no type is named) restarts as a new release of the
            // same image and config: the new processes answer before the old ones stop.
            let audit = Self::audit_entry(caller, Some(&app.name), "restart", "");
            let change = Change::Formation { description: "restart".to_string() };
            return Ok(self.roll_out(&app.name, change, Some(audit)).await?.into());
        };
        let live = self.store.live_release(&app.name)?.ok_or_else(|| {
            Error::Conflict(format!("app {} has no live release to restart; push it first", app.name))
        })?;
        check_process_type(&live, &kind)?;
        self.store.record_audit(&Self::audit_entry(caller, Some(&app.name), "restart", kind.clone()))?;
        let target = self.rollouts.targets().get(live.target).map_err(|e| Error::Conflict(e.to_string()))?;
        target.restart_processes(&app.name, &live, &kind).await.map_err(|e| Error::Conflict(e.to_string()))?;
        Ok(live.into())
    }

    /// The processes of the live release and their state (`hoist ps`).
    pub async fn processes(&self, caller: &Caller, name: &str) -> Result<Vec<wire::Process>> {
        let app = self.authorize(caller, name, Role::Viewer, "seeing the app's processes")?;
        let Some(release) = self.store.live_release(&app.name)? else { return Ok(Vec::new()) };
        let target = self.rollouts.targets().get(release.target).map_err(|e| Error::Conflict(e.to_string()))?;
        target.processes(&app.name, &release).await.map_err(|e| Error::Conflict(e.to_string()))
    }

    /// A one-off process (`hoist run`) of the live release: its image and config, on its
    /// target, attached to the caller.
    pub async fn run(&self, caller: &Caller, name: &str, request: wire::RunRequest) -> Result<crate::target::OneOff> {
        let app = self.authorize(caller, name, Role::Deployer, "running a one-off process")?;
        let (release, target, process) = self.one_off(caller, &app.name, &request, "run")?;
        target.run_once(&app.name, &release, &process).await.map_err(|e| Error::Conflict(e.to_string()))
    }

    /// A one-off process of the live release started in the background (`hoist run
    /// --detach`): its output is in the app's runtime logs.
    pub async fn run_detached(
        &self,
        caller: &Caller,
        name: &str,
        request: wire::RunRequest,
    ) -> Result<wire::DetachedRun> {
        let app = self.authorize(caller, name, Role::Deployer, "running a one-off process")?;
        let (release, target, process) = self.one_off(caller, &app.name, &request, "run --detach")?;
        let process =
            target.run_detached(&app.name, &release, &process).await.map_err(|e| Error::Conflict(e.to_string()))?;
        Ok(wire::DetachedRun { process, release: release.number })
    }

    /// What a one-off process of `app` runs, on which release and target; audit-logged.
    /// One argument is a shell command line (as Heroku takes it); several are a program
    /// and its arguments, each passed as it is.
    fn one_off(
        &self,
        caller: &Caller,
        app: &AppName,
        request: &wire::RunRequest,
        verb: &str,
    ) -> Result<(store::Release, std::sync::Arc<dyn crate::target::Target>, crate::target::OneOffSpec)> {
        let command = match request.command.as_slice() {
            [] => return Err(Error::Invalid("give a command: hoist run APP -- CMD…".to_string())),
            [line] => line.clone(),
            words => words.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" "),
        };
        if command.contains('\0') {
            return Err(Error::Invalid("the command contains a NUL byte".to_string()));
        }
        let memory_mb = request.size.as_deref().map(parse_size).transpose()?;
        let release = self.store.live_release(app)?.ok_or_else(|| {
            Error::Conflict(format!("app {app} has no live release to run a process of; push it first"))
        })?;
        let target = self.rollouts.targets().get(release.target).map_err(|e| Error::Conflict(e.to_string()))?;
        // The program only: arguments may hold secrets.
        let program = request.command.first().and_then(|c| c.split_whitespace().next()).unwrap_or("");
        let detail = format!("release {}: {program} ({} words)", release.number, command.split_whitespace().count());
        self.store.record_audit(&Self::audit_entry(caller, Some(app), verb, detail))?;
        let tty = request.tty.map(|[rows, columns]| (rows.clamp(1, 1000), columns.clamp(1, 1000)));
        Ok((release, target, crate::target::OneOffSpec { command, memory_mb, tty }))
    }

    /// The config vars as shown: secret ones (marked, or named like secrets) masked.
    pub fn config(&self, caller: &Caller, name: &str) -> Result<wire::Config> {
        let app = self.authorize(caller, name, Role::Viewer, "reading config")?;
        let (version, vars) = self.store.app_config(&app.name)?;
        self.shown_config(&app.name, version, vars)
    }

    fn shown_config(&self, app: &AppName, version: i64, vars: store::ConfigVars) -> Result<wire::Config> {
        let marked = self.store.secret_config_names(app)?;
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

    /// Sets (`Some`) and unsets (`None`) config vars; a change makes a new release of the
    /// live image (no build). `secret`: the vars set are masked from now on.
    pub async fn change_config(
        &self,
        caller: &Caller,
        name: &str,
        changes: std::collections::BTreeMap<String, Option<String>>,
        secret: bool,
    ) -> Result<wire::ConfigChanged> {
        let app = self.authorize(caller, name, Role::Deployer, "changing config")?;
        for (key, value) in &changes {
            check_config_key(key)?;
            if let Some(value) = value {
                check_config_value(key, value)?;
            }
        }
        if secret {
            let set: Vec<String> = changes.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k.clone()).collect();
            self.store.mark_config_secret(&app.name, &set)?;
        }
        let names: Vec<String> =
            changes.iter().map(|(key, value)| if value.is_some() { key.clone() } else { format!("-{key}") }).collect();
        // Names only, never values.
        let audit = Self::audit_entry(caller, Some(&app.name), "config.set", names.join(" "));
        let Some((version, vars)) = self.store.change_app_config(&app.name, &changes, Some(&audit))? else {
            let (version, vars) = self.store.app_config(&app.name)?;
            let config = self.shown_config(&app.name, version, vars)?;
            return Ok(wire::ConfigChanged { config, release: None, message: Some("nothing changed".to_string()) });
        };
        if self.store.live_release(&app.name)?.is_none() {
            let message = "saved; no release is live yet, the next deploy uses it";
            let config = self.shown_config(&app.name, version, vars)?;
            return Ok(wire::ConfigChanged { config, release: None, message: Some(message.to_string()) });
        }
        let description = format!("config {} (v{version})", names.join(" "));
        let release =
            self.roll_out(&app.name, Change::Config { description }, None).await.map_err(|error| match error {
                Error::ReleaseFailed(message) => {
                    Error::ReleaseFailed(format!("config v{version} is saved, but {message}"))
                }
                other => other,
            })?;
        let config = self.shown_config(&app.name, version, vars)?;
        Ok(wire::ConfigChanged { config, release: Some(release.into()), message: None })
    }

    /// A new release of release `to`'s image and config.
    pub async fn rollback(&self, caller: &Caller, name: &str, to: i64) -> Result<wire::Release> {
        let app = self.authorize(caller, name, Role::Deployer, "rolling back")?;
        let audit = Self::audit_entry(caller, Some(&app.name), "rollback", "");
        Ok(self.roll_out(&app.name, Change::Rollback { to }, Some(audit)).await?.into())
    }

    /// A new release of the app on the current run image of its stack, its own layers
    /// unchanged (no build); nothing when it is on it already.
    pub async fn rebase(&self, caller: &Caller, name: &str) -> Result<wire::Rebased> {
        let app = self.authorize(caller, name, Role::Deployer, "rebasing")?;
        let live = self
            .store
            .live_release(&app.name)?
            .ok_or_else(|| Error::Conflict(format!("app {} has no live release to rebase; push it first", app.name)))?;
        // The rebase's own lines, which open the timeline of the release it makes
        // (`hoist logs APP --release N`); a file of this rebase's alone, gone at its end.
        let unique = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let prologue = Prologue(self.logs.app_dir(&app.name).join(format!("rebase-{}-{unique}.log", live.number)));
        let log = crate::logs::LiveLog::create(&prologue.0).map_err(|e| Error::Internal(e.to_string()))?;
        log.set_stage(crate::logs::stage::REBASE);
        log.line(format!(
            "-----> Rebasing {}: release {}'s image ({}) onto the current run image of its stack; no build runs",
            app.name, live.number, live.image
        ));
        let rebased = self.exporter.rebase(&app.name, &live.image, &log).await.map_err(|error| match error {
            crate::export::Error::NotRebasable { .. }
            | crate::export::Error::Elsewhere { .. }
            | crate::export::Error::LayerGone { .. } => Error::Conflict(format!("cannot rebase {}: {error}", app.name)),
            other => Error::Internal(format!("cannot rebase {}: {other}", app.name)),
        })?;
        let mut answer = wire::Rebased {
            app: app.name.to_string(),
            release: None,
            stack: Some(rebased.stack.clone()),
            run_image: Some(rebased.run_digest.clone()),
            message: None,
            error: false,
        };
        let Some(digest) = rebased.digest else {
            answer.message = Some(format!(
                "release {} is on the current run image of stack {} already; nothing to do",
                live.number, rebased.stack
            ));
            return Ok(answer);
        };
        let short = rebased.run_digest.trim_start_matches("sha256:");
        log.line(format!(
            "-----> {}: the app's own layers, unchanged, on the run image of stack {} ({})",
            digest, rebased.stack, rebased.run_digest
        ));
        let detail = format!("stack {} run image {}", rebased.stack, rebased.run_digest);
        self.store.record_audit(&Self::audit_entry(caller, Some(&app.name), "rebase", detail))?;
        let update = crate::image_stream::TagUpdate {
            app: app.name.clone(),
            tag: crate::image_stream::TRACKED_TAG.to_string(),
            repository: self.registry.repository(app.name.as_str()),
            digest,
            source: store::ImageSource::Rebase,
            build_id: live.build_id,
            cause: Some(format!(
                "rebase (stack {}, run image sha256:{})",
                rebased.stack,
                short.get(..12).unwrap_or(short)
            )),
            cause_log: None,
            prologue: Some(prologue.0.clone()),
        };
        let stopped = || Error::Internal("the rollout stage has stopped; restart hoistd".to_string());
        match self.image_streams.record(update).await.map_err(|e| Error::Internal(e.to_string()))? {
            crate::image_stream::Recorded::RolloutStarted(done) => match done.await.map_err(|_| stopped())? {
                Ok(release) => answer.release = Some(release.into()),
                Err(error) => return Err(Error::ReleaseFailed(error.to_string())),
            },
            _ => answer.message = Some("the rebased image is the one recorded already; nothing rolled out".to_string()),
        }
        Ok(answer)
    }

    /// Rebases every app with a live release built on a stack; apps on their stack's
    /// current run image already, and apps without a stack, are left as they are. A few
    /// apps at a time (each rollout waits out its settling period); answers in app order.
    pub async fn rebase_all(&self, caller: &Caller) -> Result<Vec<wire::Rebased>> {
        self.admin_only(caller, "rebase every app")?;
        let mut apps = Vec::new();
        for app in self.store.apps()? {
            if self.store.live_release(&app.name)?.is_some() {
                apps.push(app.name);
            }
        }
        let answers = futures_util::stream::iter(apps)
            .map(|app| async move {
                match self.rebase(caller, app.as_str()).await {
                    Ok(answer) => answer,
                    Err(error) => wire::Rebased {
                        app: app.to_string(),
                        release: None,
                        stack: None,
                        run_image: None,
                        error: !matches!(error, Error::Conflict(_)),
                        message: Some(error.to_string()),
                    },
                }
            })
            .buffered(REBASE_CONCURRENCY)
            .collect()
            .await;
        Ok(answers)
    }

    /// Sends a rollout request and waits for its end.
    async fn roll_out(&self, app: &AppName, change: Change, audit: Option<store::Audit>) -> Result<store::Release> {
        let (done, outcome) = oneshot::channel();
        let request =
            RolloutRequest { app: app.clone(), change, cause_log: None, prologue: None, audit, done: Some(done) };
        let stopped = || Error::Internal("the rollout stage has stopped; restart hoistd".to_string());
        self.rollout_requests.send(request).await.map_err(|_| stopped())?;
        match outcome.await.map_err(|_| stopped())? {
            Ok(release) => Ok(release),
            Err(error @ rollout::Error::Failed { .. }) => Err(Error::ReleaseFailed(error.to_string())),
            Err(error @ (rollout::Error::NothingDeployed { .. } | rollout::Error::Target(_))) => {
                Err(Error::Conflict(error.to_string()))
            }
            Err(error @ rollout::Error::UnknownRelease { .. }) => Err(Error::NotFound(error.to_string())),
            Err(error @ rollout::Error::ImageGone { .. }) => Err(Error::Conflict(error.to_string())),
            Err(error) => Err(Error::Internal(error.to_string())),
        }
    }

    /// Applies the retention policy to every app now.
    pub async fn collect_garbage(&self, caller: &Caller) -> Result<wire::Gc> {
        self.admin_only(caller, "collect garbage")?;
        let mut total = crate::retention::Freed::default();
        let mut apps = std::collections::BTreeMap::new();
        for app in self.store.apps()? {
            let freed = self.retention.apply(&app.name).await;
            total += freed;
            apps.insert(app.name.to_string(), freed.into());
        }
        Ok(wire::Gc { keep_releases: self.retention.keep(), freed: total.into(), apps })
    }

    /// hoistd's registry and its account.
    pub fn registry(&self, caller: &Caller) -> Result<wire::Registry> {
        self.admin_only(caller, "see the registry's account")?;
        let credentials = self.registry.credentials();
        Ok(wire::Registry {
            address: self.registry.addr().to_string(),
            username: credentials.map(|c| c.username.clone()),
            password: credentials.map(|c| c.password.clone()),
        })
    }

    pub fn image_stream(&self, caller: &Caller, name: &str) -> Result<wire::ImageStream> {
        let app = self.authorize(caller, name, Role::Viewer, "reading the image stream")?;
        let mut tags: std::collections::BTreeMap<String, Vec<wire::ImageStreamEntry>> = Default::default();
        for entry in self.store.image_stream(&app.name)? {
            tags.entry(entry.tag.clone()).or_default().push(entry.into());
        }
        Ok(wire::ImageStream { app: app.name.to_string(), tags })
    }

    /// Tags the app's image (in hoistd's registry) `to` with what `from` points at; apps
    /// following `to` roll out.
    pub async fn promote(&self, caller: &Caller, name: &str, request: wire::Promote) -> Result<wire::Promoted> {
        let app = self.authorize(caller, name, Role::Deployer, "promoting")?;
        for tag in [&request.from, &request.to] {
            let valid = !tag.is_empty()
                && tag.len() <= 128
                && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !valid {
                return Err(Error::Invalid(format!("invalid tag {tag:?}: letters, digits, '.', '_' and '-'")));
            }
        }
        let own = self.registry.addr().to_string();
        let repository = match app.image.as_deref().and_then(crate::image_watch::parse_reference) {
            Some(followed) => followed.repository,
            None => format!("{own}/{}", app.name),
        };
        let Some(registry_name) = repository.strip_prefix(&format!("{own}/")).map(str::to_string) else {
            return Err(Error::Conflict(format!(
                "{repository} is not in hoistd's registry ({own}); promote it where it lives"
            )));
        };
        // `from` as the image stream knows it (hoist's builds are pushed as build-N; the
        // stream's `latest` is what the app runs), else as a tag in the registry.
        let source = self.store.current_digest(&app.name, &request.from)?.unwrap_or(request.from.clone());
        // A working tree is nobody's commit: what `hoist dev` built stays where it is.
        let from_dev = self.store.builds(&app.name)?.into_iter().find(|b| {
            b.git_ref == crate::intake::DEV_REF && b.image_digest.as_deref().is_some_and(|d| source.ends_with(d))
        });
        if let Some(build) = from_dev {
            return Err(Error::Conflict(format!(
                "{} {} is build {} of a working tree (hoist dev), which is never promoted; commit and push it, then promote that build",
                app.name, request.from, build.id
            )));
        }
        let digest = self
            .registry
            .retag(&registry_name, &source, &request.to)
            .await
            .map_err(|e| Error::NotFound(format!("cannot promote {repository} {}: {e}", request.from)))?;
        // The app's own stream records the promotion too, through the image stream like
        // every digest (promoting into the tag it tracks rolls it out).
        let update = crate::image_stream::TagUpdate {
            app: app.name.clone(),
            tag: request.to.clone(),
            repository: repository.clone(),
            digest: digest.clone(),
            source: store::ImageSource::Promotion,
            build_id: None,
            cause: None,
            cause_log: None,
            prologue: None,
        };
        self.image_streams.record(update).await.map_err(|e| Error::Internal(e.to_string()))?;
        self.image_watch.promoted(&repository, &request.to, &digest).await;
        let detail = format!("{} -> {} ({digest})", request.from, request.to);
        self.store.record_audit(&Self::audit_entry(caller, Some(&app.name), "promote", detail))?;
        Ok(wire::Promoted { repository, tag: request.to, digest })
    }

    /// The supervised registry told of pushes.
    pub fn registry_notified(&self, envelope: crate::image_watch::Envelope) {
        let watch = self.image_watch.clone();
        tokio::spawn(async move { watch.notified(&envelope).await });
    }

    /// Where to send the app's webhooks; the secret is not shown.
    pub fn webhook(&self, caller: &Caller, name: &str) -> Result<wire::Webhook> {
        let app = self.authorize(caller, name, Role::Deployer, "seeing the webhook")?;
        Ok(wire::Webhook {
            path: format!("/hooks/{}", app.name),
            repo: app.repo_url,
            deploy_branch: app.deploy_branch,
            secret_set: Some(app.webhook),
            secret: None,
        })
    }

    /// Makes a new webhook secret (the old one stops working) and shows it, this once.
    pub fn rotate_webhook(&self, caller: &Caller, name: &str) -> Result<wire::Webhook> {
        let app = self.authorize(caller, name, Role::Owner, "making a webhook secret")?;
        let secret = crate::auth::new_token();
        let audit = Self::audit_entry(caller, Some(&app.name), "webhook.secret", "");
        self.store.set_webhook_secret(&app.name, &secret, &audit)?;
        tracing::info!(app = %app.name, "webhook secret rotated");
        Ok(wire::Webhook {
            path: format!("/hooks/{}", app.name),
            repo: app.repo_url,
            deploy_branch: app.deploy_branch,
            secret_set: None,
            secret: Some(secret),
        })
    }

    /// A Git host's delivery for app `name`: verified with the app's webhook secret,
    /// answered at once; the commit is fetched and built in the background.
    pub async fn deliver_webhook(
        self: &Arc<Self>,
        name: &str,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<wire::WebhookAnswer> {
        // An unknown app, an app without a webhook and a wrong signature answer alike, so
        // an anonymous caller cannot tell which apps exist: the body is checked against a
        // secret nobody knows, and fails the same way.
        let found = match AppName::parse(name) {
            Ok(name) => self.store.app(&name)?,
            Err(_) => None,
        };
        let secret = match &found {
            Some(app) => self.store.webhook_secret(&app.name)?,
            None => None,
        };
        let envelope = webhook::envelope(headers).map_err(|e| Error::BadSignature(e.to_string()))?;
        let checked_secret = secret.clone().unwrap_or_else(crate::auth::new_token);
        webhook::verify(envelope.host, headers, body, &checked_secret).map_err(|e| {
            Error::BadSignature(format!(
                "{e} (or no app with a webhook has this URL: `hoist webhooks APP` shows an app's)"
            ))
        })?;
        let (Some(app), Some(_)) = (found, secret) else {
            return Err(Error::BadSignature("the signature does not verify".to_string()));
        };
        let request = webhook::parse(&envelope, body).map_err(|e| Error::Invalid(e.to_string()))?;
        let answer = |result: &str, message: String| wire::WebhookAnswer {
            result: result.to_string(),
            app: Some(app.name.to_string()),
            commit: None,
            build: None,
            message: Some(message),
        };
        let (branch, commit, pusher, message) = match request {
            webhook::Request::Ping => {
                return Ok(wire::WebhookAnswer { message: None, ..answer("pong", String::new()) })
            }
            webhook::Request::Ignored(why) => return Ok(answer("ignored", format!("ignored: {why}"))),
            webhook::Request::Push { branch, commit, pusher, message } => (branch, commit, pusher, message),
        };
        if branch != app.deploy_branch {
            let message = format!("ignored: branch {branch} does not deploy (the app deploys {})", app.deploy_branch);
            return Ok(answer("ignored", message));
        }
        let Some(url) = app.repo_url.clone() else {
            return Err(Error::Conflict(format!(
                "app {} has no repository to fetch from: set it with `hoist apps set-repo {} URL`",
                app.name, app.name
            )));
        };
        if let Some(delivery) = &envelope.delivery {
            if !self.store.record_delivery(&app.name, delivery)? {
                return Ok(answer("duplicate", format!("delivery {delivery} was received before; built once")));
            }
        }
        // A signed body replayed under a new (or no) delivery id builds nothing new: a
        // webhook builds a commit once per app (again only if its fetch failed).
        let commit_key = format!("commit {commit}");
        if !self.store.record_delivery(&app.name, &commit_key)? {
            let message = format!(
                "commit {} was built from a webhook before; built once (push a new commit to build again, or `hoist rollback` to go back to a release)",
                &commit[..12]
            );
            return Ok(answer("duplicate", message));
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
        let token = self.store.app_repo_token(&app.name)?;
        let git_ref = format!("refs/heads/{branch}");
        // The build is recorded before the fetch, so a fetch that hangs or fails shows as a
        // build that says why.
        let audit = store::Audit::new(format!("webhook ({})", envelope.host.name()), Some(&app.name), "push", "");
        let opened =
            self.intake.open(&app, &commit, &git_ref, &notes, &audit).map_err(|e| Error::Internal(e.to_string()))?;
        let queued = wire::WebhookAnswer {
            result: "queued".to_string(),
            app: Some(app.name.to_string()),
            commit: Some(commit.clone()),
            build: Some(opened.build_id),
            message: None,
        };
        let service = Arc::clone(self);
        let delivery = envelope.delivery.clone();
        tokio::spawn(async move {
            let limits =
                receive::FetchLimits { timeout: service.fetch_timeout, max_bytes: service.intake.limits.max_total };
            let repo = service.repos.path(&app.name);
            let fetched = match outside_url::check_resolved(&url, &service.url_policy).await {
                Ok(()) => receive::fetch_commit(&repo, &url, &branch, &commit, token.as_deref(), limits).await,
                Err(refused) => Err(receive::Error::Fetch { url: url.clone(), message: refused.to_string() }),
            };
            if let Err(error) = fetched {
                tracing::warn!(app = %app.name, %error, "webhook fetch failed");
                service.intake.fail(opened, &error.to_string());
                // A redelivery (after fixing the token, say) is then acted on.
                for key in std::iter::once(&commit_key).chain(delivery.as_ref()) {
                    if let Err(error) = service.store.forget_delivery(&app.name, key) {
                        tracing::warn!(app = %app.name, %error, "cannot forget the delivery of a failed fetch");
                    }
                }
                return;
            }
            let name = app.name.clone();
            let commit =
                crate::intake::Commit { app, commit, git_ref, object_dirs: vec![], push: None, notes: vec![], audit };
            match service.intake.submit_opened(opened, commit).await {
                Ok(submitted) => {
                    if let Ok(outcome) = submitted.outcome.await {
                        tracing::info!(app = %name, build = submitted.build_id, ?outcome, "webhook build ended");
                    }
                }
                Err(error) => tracing::warn!(app = %name, %error, "webhook commit not taken"),
            }
        });
        Ok(queued)
    }

    /// A push (the pre-receive hook's request): the deploy branch's new commit builds;
    /// other refs are stored without deploying.
    pub async fn receive_push(&self, request: HookRequest) -> Result<Pushed> {
        // The push is its caller's, authorized when hoistd started its `git`; asked again,
        // so a role taken away meanwhile stops it.
        let caller = self.pushes.caller(&request.push).ok_or(Error::Unauthenticated)?;
        let app = self.authorize(&caller, &request.app, Role::Deployer, "pushing")?;
        let (deploy, notes) = sort_ref_updates(&request.updates, &app.deploy_branch);
        let Some(deploy) = deploy else {
            return Ok(Pushed::NothingDeploys(notes));
        };
        let push = PushedRef { repo: self.repos.path(&app.name), name: deploy.name.clone(), old: deploy.old };
        let app_name = app.name.clone();
        let commit = crate::intake::Commit {
            app,
            commit: deploy.new,
            git_ref: deploy.name,
            object_dirs: request.object_dirs,
            push: Some(push),
            notes,
            audit: Self::audit_entry(&caller, Some(&app_name), "push", ""),
        };
        let submitted = self.intake.submit(commit).await.map_err(|error| match error {
            crate::intake::Error::Refused(error) => Error::Invalid(error.to_string()),
            other => Error::Internal(other.to_string()),
        })?;
        Ok(Pushed::Building(submitted))
    }

    fn check_repo_url(&self, url: &str) -> Result<()> {
        outside_url::check_repo_url(url, &self.url_policy).map_err(|e| Error::Invalid(e.to_string()))
    }

    fn check_buildpack(&self, buildpack: Option<&str>) -> Result<()> {
        match buildpack {
            Some(name) if !self.buildpacks.iter().any(|known| known == name) => Err(Error::Invalid(format!(
                "unknown buildpack {name:?}: this hoistd has {}",
                self.buildpacks.join(", ")
            ))),
            _ => Ok(()),
        }
    }
}

/// A rebase's own log, removed once its lines are in the release's timeline (or the
/// rebase ended without one).
struct Prologue(std::path::PathBuf);

impl Drop for Prologue {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Refuses a process type `release` does not run (`ps:scale`, `ps:restart TYPE`).
fn check_process_type(release: &store::Release, kind: &str) -> Result<()> {
    let known: Vec<String> = crate::target::process_types(release).into_iter().map(|t| t.kind).collect();
    match known.iter().any(|k| k == kind) {
        true => Ok(()),
        false => Err(Error::Invalid(format!(
            "release {} of {} has no process type {kind:?}; it has {} (from its Procfile)",
            release.number,
            release.app,
            known.join(", ")
        ))),
    }
}

/// A push's ref updates: the deploy branch's new commit, if it is among them, and a line
/// for the pusher about each of the others, the first `REFS_NAMED` by name, the rest
/// counted.
fn sort_ref_updates(updates: &[receive::RefUpdate], deploy_branch: &str) -> (Option<receive::RefUpdate>, Vec<String>) {
    let deploy_ref = format!("refs/heads/{deploy_branch}");
    let mut notes = Vec::new();
    let mut deploy = None;
    let mut others = 0;
    for update in updates {
        if update.name == deploy_ref && update.new != ZERO_OID {
            deploy = Some(update.clone());
            continue;
        }
        others += 1;
        if others > REFS_NAMED {
            continue;
        }
        if update.new == ZERO_OID {
            notes.push(format!("-----> {} deleted; nothing deploys", update.name));
        } else {
            notes.push(format!("-----> {} stored; only {deploy_branch} deploys", update.name));
        }
    }
    if others > REFS_NAMED {
        notes.push(format!(
            "-----> and {} more refs stored or deleted; only {deploy_branch} deploys",
            others - REFS_NAMED
        ));
    }
    (deploy, notes)
}

/// How many of a push's other refs (tags, other branches) its answer names one by one;
/// the rest are counted (`git push --tags` of a repo with 10,000 tags answered with 10,000
/// lines, each also kept in the build's log).
const REFS_NAMED: usize = 10;

/// The most memory `hoist run --size` may ask for.
const MAX_ONE_OFF_MB: u64 = 64 * 1024;

/// `--size` of a one-off process: `512m`, `2g`, `1536` (MiB), or a Heroku dyno size
/// name; in MiB.
fn parse_size(text: &str) -> Result<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let named = match lower.as_str() {
        "basic" | "standard-1x" => Some(512),
        "standard-2x" => Some(1024),
        "performance-m" => Some(2560),
        "performance-l" => Some(14336),
        _ => None,
    };
    let (digits, unit) = match lower.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => lower.split_at(at),
        None => (lower.as_str(), ""),
    };
    let mb = named.or_else(|| {
        let n: u64 = digits.parse().ok()?;
        match unit {
            "" | "m" | "mb" | "mib" => Some(n),
            "g" | "gb" | "gib" => n.checked_mul(1024),
            _ => None,
        }
    });
    match mb {
        Some(mb) if (16..=MAX_ONE_OFF_MB).contains(&mb) => Ok(mb),
        Some(mb) => Err(Error::Invalid(format!(
            "--size {text}: {mb} MiB is outside 16 MiB … {} GiB",
            MAX_ONE_OFF_MB / 1024
        ))),
        None => Err(Error::Invalid(format!(
            "--size {text:?} is not a size; give memory as 512m, 2g or a number of MiB (or standard-1x, standard-2x, performance-m, performance-l)"
        ))),
    }
}

/// `word` as one word of a bash command line.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// A config var's name: what a shell and Kubernetes accept as an environment variable.
fn check_config_key(key: &str) -> Result<()> {
    let valid = !key.is_empty()
        && key.len() <= 253
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(Error::Invalid(format!(
            "invalid config var name {:?}: use letters, digits and '_', not starting with a digit",
            key.chars().take(60).collect::<String>()
        )));
    }
    if key == "PORT" {
        return Err(Error::Invalid("PORT is set by hoist (the port the app must listen on)".to_string()));
    }
    Ok(())
}

/// A config var's value: anything an environment variable can hold, checked before it is
/// saved (a NUL byte cannot be passed to a process, so every build and release would fail).
fn check_config_value(key: &str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::Invalid(format!(
            "the value of {key} contains a NUL byte, which no environment variable can hold; nothing was saved"
        )));
    }
    if value.len() > 64 * 1024 {
        return Err(Error::Invalid(format!(
            "the value of {key} is {} bytes; a config value may be at most 64 KiB; nothing was saved",
            value.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_names_ten_other_refs_and_counts_the_rest() {
        let update =
            |name: &str, new: &str| receive::RefUpdate { old: ZERO_OID.into(), new: new.into(), name: name.into() };
        let mut updates = vec![update("refs/heads/main", "abc"), update("refs/heads/gone", ZERO_OID)];
        updates.extend((0..2_500).map(|i| update(&format!("refs/tags/t{i}"), "abc")));
        let (deploy, notes) = sort_ref_updates(&updates, "main");
        assert_eq!(deploy, Some(update("refs/heads/main", "abc")));
        assert_eq!(notes.len(), REFS_NAMED + 1);
        assert_eq!(notes[0], "-----> refs/heads/gone deleted; nothing deploys");
        assert_eq!(notes[1], "-----> refs/tags/t0 stored; only main deploys");
        assert_eq!(notes[REFS_NAMED], "-----> and 2491 more refs stored or deleted; only main deploys");

        // A deleted deploy branch deploys nothing; a few refs are all named.
        let (deploy, notes) = sort_ref_updates(&[update("refs/heads/main", ZERO_OID)], "main");
        assert_eq!((deploy, notes.len()), (None, 1));
    }

    #[test]
    fn one_off_sizes_are_memory_in_mib() {
        assert_eq!(parse_size("512m").unwrap(), 512);
        assert_eq!(parse_size("2G").unwrap(), 2048);
        assert_eq!(parse_size("1536").unwrap(), 1536);
        assert_eq!(parse_size("standard-2x").unwrap(), 1024);
        for bad in ["lots", "", "2t", "8m", "100g", "-1"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn run_words_are_quoted_for_bash() {
        assert_eq!(shell_quote("manage.py"), "manage.py");
        assert_eq!(shell_quote("read x; echo $x"), "'read x; echo $x'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn config_names_and_values_are_checked_before_saving() {
        assert!(check_config_key("DATABASE_URL").is_ok());
        for bad in ["", "1A", "A-B", "A B", "PORT"] {
            assert!(check_config_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_config_value("A", "multi\nline\tok").is_ok());
        assert!(check_config_value("A", "a\0b").unwrap_err().to_string().contains("NUL"));
        assert!(check_config_value("A", &"x".repeat(64 * 1024 + 1)).is_err());
    }
}
