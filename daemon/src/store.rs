//! Durable state in SQLite: apps, builds, image streams and releases.
//!
//! Every write is one statement or one transaction, in WAL mode, so a hoistd killed at
//! any point leaves a consistent database; [`Store::recover_after_restart`] then marks
//! the work that was cut off.
//!
//! Architecture invariant: this module knows rows, not Docker, git or HTTP.

use crate::app::AppName;
use crate::config::TargetKind;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::path::Path;
use std::sync::Mutex;

mod teams;
pub use teams::{Audit, AuditRow, Key, Token, User};

/// What can go wrong with the database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("app {0:?} exists already")]
    AppExists(String),
    /// A user, token or key of that name or fingerprint exists already; says which.
    #[error("{0}")]
    Exists(String),
    /// A status change the state machine does not allow from where the row is (or the
    /// row is gone, `from: None`): nothing was written.
    #[error("{what} {id} cannot become {to}: it is {}", from.unwrap_or("gone"))]
    Transition { what: &'static str, id: String, to: &'static str, from: Option<&'static str> },
    /// A value read back that does not parse: never read as an empty or default value.
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
}

/// A column of a row whose value does not parse.
#[derive(Debug, thiserror::Error)]
#[error("the {column} of {row} in hoist's database cannot be read ({reason}); restore hoist.db from a backup or correct that row")]
pub struct Corrupt {
    pub row: String,
    pub column: &'static str,
    pub reason: String,
}

/// A JSON column of the row being read, parsed; a value that does not parse is an error
/// naming the row (`row`), not an empty default.
fn json_column<T: serde::de::DeserializeOwned>(
    row: &rusqlite::Row<'_>,
    index: usize,
    column: &'static str,
    which: impl FnOnce() -> String,
) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|e| corrupt(index, which(), column, e.to_string()))
}

/// The target column of the row being read; an unknown one is an error, not `docker`.
fn target_column(
    row: &rusqlite::Row<'_>,
    index: usize,
    which: impl FnOnce() -> String,
) -> rusqlite::Result<TargetKind> {
    let text: String = row.get(index)?;
    TargetKind::parse(&text).ok_or_else(|| corrupt(index, which(), "target", format!("unknown target {text:?}")))
}

fn corrupt(index: usize, row: String, column: &'static str, reason: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Text,
        Box::new(Corrupt { row, column, reason }),
    )
}

/// The SQL list of statuses a release may come to `to` from.
fn release_statuses(to: ReleaseStatus) -> String {
    status_list(to.allowed_from().iter().map(|s| s.as_str()))
}

/// "release N of app A", for messages about the release row being read.
fn release_row(row: &rusqlite::Row<'_>) -> String {
    format!(
        "release {} of app {:?}",
        row.get::<_, i64>(1).unwrap_or_default(),
        row.get::<_, String>(0).unwrap_or_default()
    )
}

/// A JSON value of one row read by a single-value query.
fn parse_json<T: serde::de::DeserializeOwned>(text: &str, row: String, column: &'static str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt(Corrupt { row, column, reason: e.to_string() }))
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One app.
#[derive(Debug, Clone, Serialize)]
pub struct App {
    pub name: AppName,
    /// Pushes to this branch deploy; others are only stored.
    pub deploy_branch: String,
    /// The buildpack to use instead of detecting one; `None`: detect.
    pub buildpack: Option<String>,
    /// Where its releases run.
    pub target: TargetKind,
    /// Bumped by every config change; releases record the version they run.
    pub config_version: i64,
    /// The Git host repository webhooks build from.
    pub repo_url: Option<String>,
    /// Whether a webhook secret is set (the secret itself is never on the wire again).
    pub webhook: bool,
    /// The image it follows instead of building (`host:port/repo:tag`).
    pub image: Option<String>,
    pub created_at: String,
    /// How many processes of each type its releases run.
    pub formation: Formation,
}

/// Whether a config var's name says it holds a secret, so it is masked without being
/// marked: `DATABASE_PASSWORD`, `GITHUB_TOKEN`, `API_KEY`, `SECRET_KEY_BASE`, `DATABASE_URL`
/// (URLs of services carry passwords).
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    ["SECRET", "TOKEN", "PASSWORD", "PASSWD", "PRIVATE", "CREDENTIAL", "API_KEY", "ACCESS_KEY"]
        .iter()
        .any(|word| name.contains(word))
        || name.ends_with("_KEY")
        || name == "KEY"
        || name == "DATABASE_URL"
        || name == "REDIS_URL"
}

/// An app's config vars, given to its processes as environment variables.
pub type ConfigVars = std::collections::BTreeMap<String, String>;

/// Days a webhook delivery id is remembered (GitHub redelivers for up to three days).
pub const DELIVERY_RETENTION_DAYS: u32 = 30;

/// Where a build is. The state machine lives in `pipeline`; this is its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    Queued,
    Building,
    Pushing,
    Deploying,
    Succeeded,
    Failed,
    Superseded,
    Interrupted,
}

impl BuildStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Queued => "queued",
            BuildStatus::Building => "building",
            BuildStatus::Pushing => "pushing",
            BuildStatus::Deploying => "deploying",
            BuildStatus::Succeeded => "succeeded",
            BuildStatus::Failed => "failed",
            BuildStatus::Superseded => "superseded",
            BuildStatus::Interrupted => "interrupted",
        }
    }

    pub const ALL: [BuildStatus; 8] = [
        BuildStatus::Queued,
        BuildStatus::Building,
        BuildStatus::Pushing,
        BuildStatus::Deploying,
        BuildStatus::Succeeded,
        BuildStatus::Failed,
        BuildStatus::Superseded,
        BuildStatus::Interrupted,
    ];

    fn parse(s: &str) -> Option<BuildStatus> {
        BuildStatus::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// The statuses a build may come to this one from (the pipeline's state machine):
    /// queued → building → pushing → deploying → succeeded; failed or interrupted from
    /// any unfinished status; superseded only while queued.
    pub fn allowed_from(self) -> &'static [BuildStatus] {
        use BuildStatus::*;
        match self {
            Queued => &[],
            Building => &[Queued],
            Pushing => &[Building],
            Deploying => &[Pushing],
            Succeeded => &[Deploying],
            Superseded => &[Queued],
            Failed | Interrupted => &[Queued, Building, Pushing, Deploying],
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            BuildStatus::Succeeded | BuildStatus::Failed | BuildStatus::Superseded | BuildStatus::Interrupted
        )
    }
}

impl rusqlite::types::FromSql for BuildStatus {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let text = value.as_str()?;
        BuildStatus::parse(text).ok_or_else(|| unknown_status("build", text))
    }
}

/// App names are validated when an app is created; one read back that is not valid is an
/// error (a damaged database), never silently skipped.
impl rusqlite::types::FromSql for AppName {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        AppName::parse(value.as_str()?).map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
    }
}

/// A status the database holds but this hoistd does not know (written by a newer one?):
/// an error, never silently another status.
fn unknown_status(what: &str, text: &str) -> rusqlite::types::FromSqlError {
    rusqlite::types::FromSqlError::Other(format!("unknown {what} status {text:?} in the database").into())
}

/// `status IN ('a', 'b')` for SQL, from statuses (their text is fixed, never user input).
fn status_list(texts: impl Iterator<Item = &'static str>) -> String {
    texts.map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ")
}

/// One build of one pushed commit.
#[derive(Debug, Clone, Serialize)]
pub struct Build {
    pub id: i64,
    pub app: AppName,
    pub commit: String,
    pub git_ref: String,
    pub status: BuildStatus,
    pub buildpack: Option<String>,
    pub image_digest: Option<String>,
    pub error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
    /// The Procfile's process types and commands.
    pub processes: Processes,
}

/// Process types (Procfile) and their commands.
pub type Processes = std::collections::BTreeMap<String, String>;

/// How many processes of each Procfile type run (`hoist ps:scale`); a type not named
/// runs one.
pub type Formation = std::collections::BTreeMap<String, u32>;

/// Where a digest in an image stream came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageSource {
    /// hoist built it: retention may delete it.
    Build,
    /// The supervised registry told of a push by someone else.
    Notification,
    /// A poll of the registry found it.
    Poll,
    /// `hoist images promote` retagged it.
    Promotion,
    /// `hoist rebase` put a built image on its stack's current run image: retention may
    /// delete it, as a build's.
    Rebase,
}

impl ImageSource {
    pub const ALL: [ImageSource; 5] =
        [ImageSource::Build, ImageSource::Notification, ImageSource::Poll, ImageSource::Promotion, ImageSource::Rebase];

    /// Whether hoist made the image (so hoist may delete it).
    pub fn is_hoists(self) -> bool {
        matches!(self, ImageSource::Build | ImageSource::Rebase)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ImageSource::Build => "build",
            ImageSource::Notification => "notification",
            ImageSource::Poll => "poll",
            ImageSource::Promotion => "promotion",
            ImageSource::Rebase => "rebase",
        }
    }

    pub fn parse(text: &str) -> Option<ImageSource> {
        ImageSource::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One entry in a tag's history: the tag pointed at `digest` from `created_at` on.
#[derive(Debug, Clone, Serialize)]
pub struct ImageStreamEntry {
    pub app: AppName,
    pub tag: String,
    pub digest: String,
    /// The image reference without digest, e.g. `127.0.0.1:5000/web1`.
    pub repository: String,
    pub source: ImageSource,
    pub build_id: Option<i64>,
    pub created_at: String,
}

/// Where a release is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseStatus {
    /// Being rolled out.
    Pending,
    /// Serving traffic.
    Live,
    /// Served traffic until a newer release went live.
    Retired,
    /// Never became healthy; the previous release kept serving.
    Failed,
    /// Deployed, failed, and undone by the target (Helm's rollback); the previous
    /// release kept or got back its traffic.
    RolledBack,
    /// hoistd stopped during its rollout.
    Interrupted,
}

impl ReleaseStatus {
    pub const ALL: [ReleaseStatus; 6] = [
        ReleaseStatus::Pending,
        ReleaseStatus::Live,
        ReleaseStatus::Retired,
        ReleaseStatus::Failed,
        ReleaseStatus::RolledBack,
        ReleaseStatus::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseStatus::Pending => "pending",
            ReleaseStatus::Live => "live",
            ReleaseStatus::Retired => "retired",
            ReleaseStatus::Failed => "failed",
            ReleaseStatus::RolledBack => "rolled_back",
            ReleaseStatus::Interrupted => "interrupted",
        }
    }

    fn parse(s: &str) -> Option<ReleaseStatus> {
        ReleaseStatus::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// The statuses a release may come to this one from (the rollout's state machine):
    /// pending → live | failed | rolled_back | interrupted; live → retired.
    pub fn allowed_from(self) -> &'static [ReleaseStatus] {
        use ReleaseStatus::*;
        match self {
            Pending => &[],
            Live | Failed | RolledBack | Interrupted => &[Pending],
            Retired => &[Live],
        }
    }
}

impl rusqlite::types::FromSql for ReleaseStatus {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let text = value.as_str()?;
        ReleaseStatus::parse(text).ok_or_else(|| unknown_status("release", text))
    }
}

/// A numbered deploy of one image.
#[derive(Debug, Clone, Serialize)]
pub struct Release {
    pub app: AppName,
    pub number: i64,
    /// Full reference by digest: `repository@sha256:…`.
    pub image: String,
    pub build_id: Option<i64>,
    pub status: ReleaseStatus,
    /// Where it runs.
    pub target: TargetKind,
    /// The target's own number for it: the Helm revision on kubernetes.
    pub revision: Option<i64>,
    /// The config version it runs with.
    pub config_version: i64,
    /// The config vars it runs with; never put on the wire (values may be secrets).
    #[serde(skip)]
    pub config: ConfigVars,
    /// What made it: `build 3`, `config set GREETING`, `rollback to 1`.
    pub cause: String,
    /// Its process types (from its build's Procfile).
    pub processes: Processes,
    /// How many of each it runs.
    pub formation: Formation,
    pub error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

/// What a new release is made of.
#[derive(Debug, Clone)]
pub struct NewRelease {
    pub image: String,
    pub build_id: Option<i64>,
    pub target: TargetKind,
    pub config_version: i64,
    pub config: ConfigVars,
    pub cause: String,
    pub processes: Processes,
    pub formation: Formation,
    /// Written with the release when a person asked for it (a rollback, a config change).
    pub audit: Option<Audit>,
}

/// The first 12 characters of a commit id (all of a shorter one).
fn short_commit(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS apps (
    name TEXT PRIMARY KEY,
    deploy_branch TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE IF NOT EXISTS builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    commit_sha TEXT NOT NULL,
    git_ref TEXT NOT NULL,
    status TEXT NOT NULL,
    buildpack TEXT,
    image_digest TEXT,
    error TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    finished_at TEXT
);
CREATE TABLE IF NOT EXISTS image_stream (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    digest TEXT NOT NULL,
    repository TEXT NOT NULL,
    source TEXT NOT NULL,
    build_id INTEGER,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE IF NOT EXISTS deliveries (
    app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    delivery TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    PRIMARY KEY (app, delivery)
);
CREATE TABLE IF NOT EXISTS releases (
    app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    image TEXT NOT NULL,
    build_id INTEGER,
    status TEXT NOT NULL,
    container_id TEXT,
    error TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    finished_at TEXT,
    PRIMARY KEY (app, number)
);
";

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

/// The database. Calls are short; one connection behind a mutex is enough for a
/// control plane and keeps every write serialised.
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating when absent) the database at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(teams::SCHEMA)?;
        // Columns added after the first release of the schema.
        for (table, column, declaration) in [
            ("apps", "buildpack", "TEXT"),
            ("apps", "target", "TEXT NOT NULL DEFAULT 'docker'"),
            ("apps", "config", "TEXT NOT NULL DEFAULT '{}'"),
            ("apps", "config_version", "INTEGER NOT NULL DEFAULT 0"),
            ("releases", "target", "TEXT NOT NULL DEFAULT 'docker'"),
            ("releases", "revision", "INTEGER"),
            ("releases", "config", "TEXT NOT NULL DEFAULT '{}'"),
            ("releases", "config_version", "INTEGER NOT NULL DEFAULT 0"),
            ("releases", "cause", "TEXT NOT NULL DEFAULT ''"),
            ("releases", "processes", "TEXT NOT NULL DEFAULT '{}'"),
            ("builds", "processes", "TEXT NOT NULL DEFAULT '{}'"),
            ("apps", "repo_url", "TEXT"),
            ("apps", "repo_token", "TEXT"),
            ("apps", "webhook_secret", "TEXT"),
            ("apps", "image", "TEXT"),
            ("apps", "secret_vars", "TEXT NOT NULL DEFAULT '[]'"),
            ("apps", "formation", "TEXT NOT NULL DEFAULT '{}'"),
            ("releases", "formation", "TEXT NOT NULL DEFAULT '{}'"),
        ] {
            let present: bool = conn.query_row(
                &format!("SELECT COUNT(*) > 0 FROM pragma_table_info('{table}') WHERE name = ?1"),
                params![column],
                |row| row.get(0),
            )?;
            if !present {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {declaration}"))?;
            }
        }
        Ok(Store { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn create_app(
        &self,
        name: &AppName,
        deploy_branch: &str,
        buildpack: Option<&str>,
        target: TargetKind,
        audit: &Audit,
    ) -> Result<App> {
        let sql = format!(
            "INSERT OR IGNORE INTO apps (name, deploy_branch, buildpack, target) VALUES (?1, ?2, ?3, ?4) RETURNING {}",
            Self::APP_COLUMNS
        );
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let app = tx
            .query_row(&sql, params![name.as_str(), deploy_branch, buildpack, target.as_str()], Self::app_from_row)
            .optional()?;
        let app = app.ok_or_else(|| Error::AppExists(name.to_string()))?;
        teams::insert_audit(&tx, audit)?;
        tx.commit()?;
        Ok(app)
    }

    const APP_COLUMNS: &'static str =
        "name, deploy_branch, created_at, buildpack, target, config_version, repo_url, webhook_secret IS NOT NULL, image, formation";

    fn app_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<App> {
        Ok(App {
            name: row.get(0)?,
            deploy_branch: row.get(1)?,
            created_at: row.get(2)?,
            buildpack: row.get(3)?,
            target: target_column(row, 4, || format!("app {:?}", row.get::<_, String>(0).unwrap_or_default()))?,
            config_version: row.get(5)?,
            repo_url: row.get(6)?,
            webhook: row.get(7)?,
            image: row.get(8)?,
            formation: json_column(row, 9, "formation", || {
                format!("app {:?}", row.get::<_, String>(0).unwrap_or_default())
            })?,
        })
    }

    /// Sets (or clears) where webhooks fetch from, and the token for a private repo
    /// (`Some(None)` clears it; `None` leaves it).
    pub fn set_app_repo(&self, name: &AppName, url: Option<&str>, token: Option<Option<&str>>) -> Result<()> {
        let conn = self.conn();
        conn.execute("UPDATE apps SET repo_url = ?2 WHERE name = ?1", params![name.as_str(), url])?;
        if let Some(token) = token {
            conn.execute("UPDATE apps SET repo_token = ?2 WHERE name = ?1", params![name.as_str(), token])?;
        }
        Ok(())
    }

    /// The app's upstream repo token (never shown).
    pub fn app_repo_token(&self, name: &AppName) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT repo_token FROM apps WHERE name = ?1", params![name.as_str()], |r| r.get(0))?)
    }

    /// Sets a new webhook secret.
    pub fn set_webhook_secret(&self, name: &AppName, secret: &str, audit: &Audit) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("UPDATE apps SET webhook_secret = ?2 WHERE name = ?1", params![name.as_str(), secret])?;
        teams::insert_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    pub fn webhook_secret(&self, name: &AppName) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT webhook_secret FROM apps WHERE name = ?1", params![name.as_str()], |r| r.get(0))?)
    }

    /// Records a webhook delivery (or another key a webhook must be acted on once for);
    /// false when it was recorded before (a redelivery). Keys older than
    /// [`DELIVERY_RETENTION_DAYS`] are forgotten first, in the same transaction, so the
    /// table stays small.
    pub fn record_delivery(&self, name: &AppName, delivery: &str) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM deliveries WHERE created_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?1)",
            params![format!("-{DELIVERY_RETENTION_DAYS} days")],
        )?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO deliveries (app, delivery) VALUES (?1, ?2)",
            params![name.as_str(), delivery],
        )?;
        tx.commit()?;
        Ok(inserted == 1)
    }

    /// Forgets a delivery key, so the same delivery is acted on again (its fetch failed).
    pub fn forget_delivery(&self, name: &AppName, delivery: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM deliveries WHERE app = ?1 AND delivery = ?2", params![name.as_str(), delivery])?;
        Ok(())
    }

    pub fn app(&self, name: &AppName) -> Result<Option<App>> {
        let sql = format!("SELECT {} FROM apps WHERE name = ?1", Self::APP_COLUMNS);
        Ok(self.conn().query_row(&sql, params![name.as_str()], Self::app_from_row).optional()?)
    }

    pub fn apps(&self) -> Result<Vec<App>> {
        let sql = format!("SELECT {} FROM apps ORDER BY name", Self::APP_COLUMNS);
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql)?;
        let apps = stmt.query_map([], Self::app_from_row)?.collect::<Result<_, _>>()?;
        Ok(apps)
    }

    /// Sets (or, with `None`, clears) the app's buildpack setting.
    pub fn set_app_buildpack(&self, name: &AppName, buildpack: Option<&str>) -> Result<()> {
        self.conn().execute("UPDATE apps SET buildpack = ?2 WHERE name = ?1", params![name.as_str(), buildpack])?;
        Ok(())
    }

    /// Moves the app to another target; its next release runs there.
    pub fn set_app_target(&self, name: &AppName, target: TargetKind) -> Result<()> {
        self.conn().execute("UPDATE apps SET target = ?2 WHERE name = ?1", params![name.as_str(), target.as_str()])?;
        Ok(())
    }

    /// The app's config vars and their version.
    pub fn app_config(&self, name: &AppName) -> Result<(i64, ConfigVars)> {
        let (version, text): (i64, String) = self.conn().query_row(
            "SELECT config_version, config FROM apps WHERE name = ?1",
            params![name.as_str()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        Ok((version, parse_json(&text, format!("app {name}"), "config")?))
    }

    /// Sets (`Some`) and removes (`None`) config vars in one transaction; returns the
    /// new version and vars, or `None` when nothing changed.
    pub fn change_app_config(
        &self,
        name: &AppName,
        changes: &std::collections::BTreeMap<String, Option<String>>,
        audit: Option<&Audit>,
    ) -> Result<Option<(i64, ConfigVars)>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let (version, text): (i64, String) =
            tx.query_row("SELECT config_version, config FROM apps WHERE name = ?1", params![name.as_str()], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?;
        let mut vars: ConfigVars = parse_json(&text, format!("app {name}"), "config")?;
        let before = vars.clone();
        for (key, value) in changes {
            match value {
                Some(value) => vars.insert(key.clone(), value.clone()),
                None => vars.remove(key),
            };
        }
        if vars == before {
            return Ok(None);
        }
        let version = version + 1;
        tx.execute(
            "UPDATE apps SET config = ?2, config_version = ?3 WHERE name = ?1",
            params![name.as_str(), serde_json::to_string(&vars).expect("a map of strings serialises"), version],
        )?;
        if let Some(audit) = audit {
            teams::insert_audit(&tx, audit)?;
        }
        tx.commit()?;
        Ok(Some((version, vars)))
    }

    /// The names of the app's config vars marked secret (see [`is_secret_name`]).
    pub fn secret_config_names(&self, name: &AppName) -> Result<std::collections::BTreeSet<String>> {
        let text: String =
            self.conn()
                .query_row("SELECT secret_vars FROM apps WHERE name = ?1", params![name.as_str()], |row| row.get(0))?;
        parse_json(&text, format!("app {name}"), "secret_vars")
    }

    /// Marks config vars secret: their values are masked in logs and API answers.
    pub fn mark_config_secret(&self, name: &AppName, names: &[String]) -> Result<()> {
        let mut secret = self.secret_config_names(name)?;
        secret.extend(names.iter().cloned());
        let text = serde_json::to_string(&secret).expect("a set of strings serialises");
        self.conn().execute("UPDATE apps SET secret_vars = ?2 WHERE name = ?1", params![name.as_str(), text])?;
        Ok(())
    }

    /// Every value that must never be stored in a log or shown: secret config vars, the
    /// repo token, the webhook secret.
    pub fn app_secrets(&self, name: &AppName) -> Result<Vec<String>> {
        let (_, vars) = self.app_config(name)?;
        let marked = self.secret_config_names(name)?;
        let mut secrets: Vec<String> = vars
            .into_iter()
            .filter(|(key, _)| marked.contains(key) || is_secret_name(key))
            .map(|(_, value)| value)
            .collect();
        secrets.extend(self.app_repo_token(name)?);
        secrets.extend(self.webhook_secret(name)?);
        Ok(secrets)
    }

    /// Sets how many processes of each type the app runs (types not named keep theirs).
    pub fn set_formation(&self, name: &AppName, changes: &Formation, audit: &Audit) -> Result<Formation> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let text: String =
            tx.query_row("SELECT formation FROM apps WHERE name = ?1", params![name.as_str()], |row| row.get(0))?;
        let mut formation: Formation = parse_json(&text, format!("app {name}"), "formation")?;
        formation.extend(changes.iter().map(|(kind, count)| (kind.clone(), *count)));
        tx.execute(
            "UPDATE apps SET formation = ?2 WHERE name = ?1",
            params![name.as_str(), serde_json::to_string(&formation).expect("a map of numbers serialises")],
        )?;
        teams::insert_audit(&tx, audit)?;
        tx.commit()?;
        Ok(formation)
    }

    /// Deletes the app and, by cascade, its builds, image stream and releases.
    pub fn delete_app(&self, name: &AppName, audit: &Audit) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        // Machine tokens scoped to the app go with it (the foreign key would only clear
        // their app, leaving a token that reaches nothing).
        tx.execute("DELETE FROM tokens WHERE app = ?1", params![name.as_str()])?;
        let deleted = tx.execute("DELETE FROM apps WHERE name = ?1", params![name.as_str()])? > 0;
        if deleted {
            teams::insert_audit(&tx, audit)?;
        }
        tx.commit()?;
        Ok(deleted)
    }

    /// A queued build, with the audit entry of what asked for it (a push, a webhook).
    pub fn create_build(&self, app: &AppName, commit: &str, git_ref: &str, audit: &Audit) -> Result<Build> {
        let sql = format!(
            "INSERT INTO builds (app, commit_sha, git_ref, status) VALUES (?1, ?2, ?3, 'queued') RETURNING {}",
            Self::BUILD_COLUMNS
        );
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let build = tx.query_row(&sql, params![app.as_str(), commit, git_ref], Self::build_from_row)?;
        let mut audit = audit.clone();
        audit.detail = format!(
            "build {} of {} ({git_ref}){}",
            build.id,
            short_commit(commit),
            if audit.detail.is_empty() { String::new() } else { format!("; {}", audit.detail) }
        );
        teams::insert_audit(&tx, &audit)?;
        tx.commit()?;
        Ok(build)
    }

    const BUILD_COLUMNS: &'static str =
        "id, app, commit_sha, git_ref, status, buildpack, image_digest, error, created_at, finished_at, processes";

    fn build_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Build> {
        Ok(Build {
            id: row.get(0)?,
            app: row.get(1)?,
            commit: row.get(2)?,
            git_ref: row.get(3)?,
            status: row.get(4)?,
            buildpack: row.get(5)?,
            image_digest: row.get(6)?,
            error: row.get(7)?,
            created_at: row.get(8)?,
            finished_at: row.get(9)?,
            processes: json_column(row, 10, "processes", || {
                format!("build {}", row.get::<_, i64>(0).unwrap_or_default())
            })?,
        })
    }

    pub fn set_build_processes(&self, id: i64, processes: &Processes) -> Result<()> {
        let json = serde_json::to_string(processes).expect("a map of strings serialises");
        self.conn().execute("UPDATE builds SET processes = ?2 WHERE id = ?1", params![id, json])?;
        Ok(())
    }

    pub fn build(&self, id: i64) -> Result<Option<Build>> {
        let sql = format!("SELECT {} FROM builds WHERE id = ?1", Self::BUILD_COLUMNS);
        Ok(self.conn().query_row(&sql, params![id], Self::build_from_row).optional()?)
    }

    /// The app's builds, newest first.
    pub fn builds(&self, app: &AppName) -> Result<Vec<Build>> {
        let sql = format!("SELECT {} FROM builds WHERE app = ?1 ORDER BY id DESC", Self::BUILD_COLUMNS);
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql)?;
        let builds = stmt.query_map(params![app.as_str()], Self::build_from_row)?.collect::<Result<_, _>>()?;
        Ok(builds)
    }

    /// Moves a build to `status`, only from a status the state machine allows
    /// ([`BuildStatus::allowed_from`]); otherwise nothing is written and the error says
    /// where the build is.
    pub fn set_build_status(&self, id: i64, status: BuildStatus) -> Result<()> {
        self.move_build(id, status, None)
    }

    fn move_build(&self, id: i64, status: BuildStatus, error: Option<&str>) -> Result<()> {
        let from = status_list(status.allowed_from().iter().map(|s| s.as_str()));
        let finished = if status.is_finished() { format!(", finished_at = {NOW}") } else { String::new() };
        let sql = format!(
            "UPDATE builds SET status = ?2, error = COALESCE(?3, error){finished} WHERE id = ?1 AND status IN ({from})"
        );
        let conn = self.conn();
        if conn.execute(&sql, params![id, status.as_str(), error])? == 1 {
            return Ok(());
        }
        let current: Option<BuildStatus> =
            conn.query_row("SELECT status FROM builds WHERE id = ?1", params![id], |row| row.get(0)).optional()?;
        Err(Error::Transition {
            what: "build",
            id: id.to_string(),
            to: status.as_str(),
            from: current.map(BuildStatus::as_str),
        })
    }

    pub fn set_build_buildpack(&self, id: i64, buildpack: &str) -> Result<()> {
        self.conn().execute("UPDATE builds SET buildpack = ?2 WHERE id = ?1", params![id, buildpack])?;
        Ok(())
    }

    pub fn set_build_digest(&self, id: i64, digest: &str) -> Result<()> {
        self.conn().execute("UPDATE builds SET image_digest = ?2 WHERE id = ?1", params![id, digest])?;
        Ok(())
    }

    pub fn fail_build(&self, id: i64, error: &str) -> Result<()> {
        self.move_build(id, BuildStatus::Failed, Some(error))
    }

    /// The digest `tag` points at now, if any.
    pub fn current_digest(&self, app: &AppName, tag: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT digest FROM image_stream WHERE app = ?1 AND tag = ?2 ORDER BY id DESC LIMIT 1",
                params![app.as_str(), tag],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Appends to `tag`'s history unless the tag points at `digest` already, in one
    /// transaction: of two sources telling the same new digest at once (a registry
    /// notification and a poll), exactly one records it. True when it was recorded.
    pub fn record_tag(
        &self,
        app: &AppName,
        tag: &str,
        repository: &str,
        digest: &str,
        source: ImageSource,
        build_id: Option<i64>,
    ) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let current: Option<String> = tx
            .query_row(
                "SELECT digest FROM image_stream WHERE app = ?1 AND tag = ?2 ORDER BY id DESC LIMIT 1",
                params![app.as_str(), tag],
                |row| row.get(0),
            )
            .optional()?;
        if current.as_deref() == Some(digest) {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO image_stream (app, tag, digest, repository, source, build_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![app.as_str(), tag, digest, repository, source.as_str(), build_id],
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// Sets (or clears) the image an app follows instead of building (`host:port/repo:tag`).
    pub fn set_app_image(&self, name: &AppName, image: Option<&str>) -> Result<()> {
        self.conn().execute("UPDATE apps SET image = ?2 WHERE name = ?1", params![name.as_str(), image])?;
        Ok(())
    }

    /// The app's image stream: every tag's history, newest first.
    pub fn image_stream(&self, app: &AppName) -> Result<Vec<ImageStreamEntry>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT app, tag, digest, repository, source, build_id, created_at FROM image_stream
             WHERE app = ?1 ORDER BY tag, id DESC",
        )?;
        let entries = stmt
            .query_map(params![app.as_str()], |row| {
                Ok(ImageStreamEntry {
                    app: row.get(0)?,
                    tag: row.get(1)?,
                    digest: row.get(2)?,
                    repository: row.get(3)?,
                    source: {
                        let text: String = row.get(4)?;
                        ImageSource::parse(&text).ok_or_else(|| {
                            corrupt(
                                4,
                                format!("an image stream entry of app {app}"),
                                "source",
                                format!("unknown source {text:?}"),
                            )
                        })?
                    },
                    build_id: row.get(5)?,
                    created_at: row.get(6)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(entries)
    }

    /// Creates release N+1 in state pending.
    pub fn create_release(&self, app: &AppName, new: &NewRelease) -> Result<Release> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let number: i64 = tx.query_row(
            "SELECT COALESCE(MAX(number), 0) + 1 FROM releases WHERE app = ?1",
            params![app.as_str()],
            |row| row.get(0),
        )?;
        let sql = format!(
            "INSERT INTO releases (app, number, image, build_id, status, target, config_version, config, cause, processes, formation)
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?7, ?8, ?9, ?10) RETURNING {}",
            Self::RELEASE_COLUMNS
        );
        let release = tx.query_row(
            &sql,
            params![
                app.as_str(),
                number,
                new.image,
                new.build_id,
                new.target.as_str(),
                new.config_version,
                serde_json::to_string(&new.config).expect("a map of strings serialises"),
                new.cause,
                serde_json::to_string(&new.processes).expect("a map of strings serialises"),
                serde_json::to_string(&new.formation).expect("a map of numbers serialises"),
            ],
            Self::release_from_row,
        )?;
        if let Some(audit) = &new.audit {
            let mut audit = audit.clone();
            audit.detail = format!("release {number}: {}", new.cause);
            teams::insert_audit(&tx, &audit)?;
        }
        tx.commit()?;
        Ok(release)
    }

    const RELEASE_COLUMNS: &'static str = "app, number, image, build_id, status, error, created_at, finished_at, \
         target, revision, config_version, config, cause, processes, formation";

    fn release_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Release> {
        Ok(Release {
            app: row.get(0)?,
            number: row.get(1)?,
            image: row.get(2)?,
            build_id: row.get(3)?,
            status: row.get(4)?,
            error: row.get(5)?,
            created_at: row.get(6)?,
            finished_at: row.get(7)?,
            target: target_column(row, 8, || release_row(row))?,
            revision: row.get(9)?,
            config_version: row.get(10)?,
            config: json_column(row, 11, "config", || release_row(row))?,
            cause: row.get(12)?,
            processes: json_column(row, 13, "processes", || release_row(row))?,
            formation: json_column(row, 14, "formation", || release_row(row))?,
        })
    }

    pub fn release(&self, app: &AppName, number: i64) -> Result<Option<Release>> {
        let sql = format!("SELECT {} FROM releases WHERE app = ?1 AND number = ?2", Self::RELEASE_COLUMNS);
        Ok(self.conn().query_row(&sql, params![app.as_str(), number], Self::release_from_row).optional()?)
    }

    /// The app's releases, newest first.
    pub fn releases(&self, app: &AppName) -> Result<Vec<Release>> {
        let sql = format!("SELECT {} FROM releases WHERE app = ?1 ORDER BY number DESC", Self::RELEASE_COLUMNS);
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql)?;
        let releases = stmt.query_map(params![app.as_str()], Self::release_from_row)?.collect::<Result<_, _>>()?;
        Ok(releases)
    }

    /// The release serving traffic, if any.
    pub fn live_release(&self, app: &AppName) -> Result<Option<Release>> {
        let sql = format!(
            "SELECT {} FROM releases WHERE app = ?1 AND status = 'live' ORDER BY number DESC LIMIT 1",
            Self::RELEASE_COLUMNS
        );
        Ok(self.conn().query_row(&sql, params![app.as_str()], Self::release_from_row).optional()?)
    }

    /// Makes release `number` live and retires the one before it, in one transaction.
    pub fn make_release_live(&self, app: &AppName, number: i64, revision: Option<i64>) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        // Both statements move releases only along the state machine (`allowed_from`).
        let retire_from = release_statuses(ReleaseStatus::Retired);
        tx.execute(
            &format!("UPDATE releases SET status = ?3 WHERE app = ?1 AND status IN ({retire_from}) AND number != ?2"),
            params![app.as_str(), number, ReleaseStatus::Retired.as_str()],
        )?;
        let live_from = release_statuses(ReleaseStatus::Live);
        let made_live = tx.execute(
            &format!(
                "UPDATE releases SET status = ?4, revision = COALESCE(?3, revision), finished_at = {NOW}
                 WHERE app = ?1 AND number = ?2 AND status IN ({live_from})"
            ),
            params![app.as_str(), number, revision, ReleaseStatus::Live.as_str()],
        )?;
        if made_live != 1 {
            // Dropping the transaction undoes the retiring above.
            return Err(Self::release_transition(&tx, app, number, ReleaseStatus::Live)?);
        }
        tx.commit()?;
        Ok(())
    }

    fn release_transition(conn: &Connection, app: &AppName, number: i64, to: ReleaseStatus) -> Result<Error> {
        let current: Option<ReleaseStatus> = conn
            .query_row(
                "SELECT status FROM releases WHERE app = ?1 AND number = ?2",
                params![app.as_str(), number],
                |row| row.get(0),
            )
            .optional()?;
        Ok(Error::Transition {
            what: "release",
            id: format!("{number} of {app}"),
            to: to.as_str(),
            from: current.map(ReleaseStatus::as_str),
        })
    }

    /// The target's revision the release runs as now (Helm's rollback makes a new one).
    pub fn set_release_revision(&self, app: &AppName, number: i64, revision: i64) -> Result<()> {
        self.conn().execute(
            "UPDATE releases SET revision = ?3 WHERE app = ?1 AND number = ?2",
            params![app.as_str(), number, revision],
        )?;
        Ok(())
    }

    /// Ends a release that never served: `failed`, or `rolled_back` when the target
    /// deployed it and undid that.
    pub fn fail_release(
        &self,
        app: &AppName,
        number: i64,
        error: &str,
        rolled_back: bool,
        revision: Option<i64>,
    ) -> Result<()> {
        let status = if rolled_back { ReleaseStatus::RolledBack } else { ReleaseStatus::Failed };
        let from = release_statuses(status);
        let conn = self.conn();
        let changed = conn.execute(
            &format!(
                "UPDATE releases SET status = ?4, error = ?3, revision = COALESCE(?5, revision), finished_at = {NOW}
                 WHERE app = ?1 AND number = ?2 AND status IN ({from})"
            ),
            params![app.as_str(), number, error, status.as_str(), revision],
        )?;
        if changed != 1 {
            return Err(Self::release_transition(&conn, app, number, status)?);
        }
        Ok(())
    }

    /// Marks every build and release that was in flight when hoistd stopped as
    /// interrupted. Returns the interrupted build ids and the interrupted releases.
    pub fn recover_after_restart(&self) -> Result<(Vec<i64>, Vec<Release>)> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        // In flight: whatever the state machine lets become `interrupted`.
        let builds_in_flight = status_list(BuildStatus::Interrupted.allowed_from().iter().map(|s| s.as_str()));
        let builds: Vec<i64> = {
            let mut stmt = tx.prepare(&format!("SELECT id FROM builds WHERE status IN ({builds_in_flight})"))?;
            let ids = stmt.query_map([], |row| row.get(0))?.collect::<Result<_, _>>()?;
            ids
        };
        tx.execute(
            &format!(
                "UPDATE builds SET status = ?1, error = 'hoistd stopped during this build; push again',
                 finished_at = {NOW} WHERE status IN ({builds_in_flight})"
            ),
            params![BuildStatus::Interrupted.as_str()],
        )?;
        let releases_in_flight = release_statuses(ReleaseStatus::Interrupted);
        let releases: Vec<Release> = {
            let sql = format!("SELECT {} FROM releases WHERE status IN ({releases_in_flight})", Self::RELEASE_COLUMNS);
            let mut stmt = tx.prepare(&sql)?;
            let rows = stmt.query_map([], Self::release_from_row)?.collect::<Result<_, _>>()?;
            rows
        };
        tx.execute(
            &format!(
                "UPDATE releases SET status = ?1, error = 'hoistd stopped during this rollout',
                 finished_at = {NOW} WHERE status IN ({releases_in_flight})"
            ),
            params![ReleaseStatus::Interrupted.as_str()],
        )?;
        tx.commit()?;
        Ok((builds, releases))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        Store::open(Path::new(":memory:")).unwrap()
    }

    #[test]
    fn releases_are_numbered_and_one_is_live() {
        let store = store();
        let app = AppName::parse("web1").unwrap();
        store.create_app(&app, "main", None, TargetKind::Docker, &audit()).unwrap();
        assert!(matches!(store.create_app(&app, "main", None, TargetKind::Docker, &audit()), Err(Error::AppExists(_))));
        let r1 = store.create_release(&app, &new_release("r@sha256:1", None)).unwrap();
        let r2 = store.create_release(&app, &new_release("r@sha256:2", None)).unwrap();
        assert_eq!((r1.number, r2.number), (1, 2));
        store.make_release_live(&app, 1, None).unwrap();
        store.make_release_live(&app, 2, Some(7)).unwrap();
        let r3 = store.create_release(&app, &new_release("r@sha256:3", None)).unwrap();
        store.fail_release(&app, r3.number, "crashed", true, Some(8)).unwrap();
        let statuses: Vec<_> = store.releases(&app).unwrap().iter().map(|r| (r.status, r.revision)).collect();
        assert_eq!(
            statuses,
            [(ReleaseStatus::RolledBack, Some(8)), (ReleaseStatus::Live, Some(7)), (ReleaseStatus::Retired, None)]
        );
        assert_eq!(store.live_release(&app).unwrap().unwrap().number, 2);
        let json = serde_json::to_value(store.release(&app, 3).unwrap().unwrap()).unwrap();
        assert_eq!(json["status"], "rolled_back");
    }

    fn new_release(image: &str, build_id: Option<i64>) -> NewRelease {
        NewRelease {
            image: image.to_string(),
            build_id,
            target: TargetKind::Docker,
            config_version: 0,
            config: ConfigVars::new(),
            cause: "test".to_string(),
            processes: Processes::new(),
            formation: Formation::new(),
            audit: None,
        }
    }

    fn audit() -> Audit {
        Audit::new("test", None, "test", "")
    }

    #[test]
    fn config_changes_bump_the_version_and_stay_off_the_wire() {
        let store = store();
        let app = AppName::parse("web1").unwrap();
        store.create_app(&app, "main", None, TargetKind::Docker, &audit()).unwrap();
        let set = |k: &str, v: Option<&str>| std::collections::BTreeMap::from([(k.to_string(), v.map(String::from))]);
        let (version, vars) = store.change_app_config(&app, &set("TOKEN", Some("s3cret")), None).unwrap().unwrap();
        assert_eq!((version, vars.get("TOKEN").map(String::as_str)), (1, Some("s3cret")));
        assert!(store.change_app_config(&app, &set("TOKEN", Some("s3cret")), None).unwrap().is_none(), "no change");
        assert!(store.change_app_config(&app, &set("NOPE", None), None).unwrap().is_none(), "unsetting nothing");
        let mut release = new_release("r@sha256:1", None);
        (release.config_version, release.config) = (version, vars);
        store.create_release(&app, &release).unwrap();
        let stored = store.release(&app, 1).unwrap().unwrap();
        assert_eq!(stored.config.get("TOKEN").map(String::as_str), Some("s3cret"));
        assert!(!serde_json::to_string(&stored).unwrap().contains("s3cret"));
        assert_eq!(store.change_app_config(&app, &set("TOKEN", None), None).unwrap().unwrap().0, 2);
    }

    #[test]
    fn secrets_are_the_marked_vars_those_named_like_secrets_and_the_app_credentials() {
        let store = store();
        let app = AppName::parse("web1").unwrap();
        store.create_app(&app, "main", None, TargetKind::Docker, &audit()).unwrap();
        let vars = [("GREETING", "hello"), ("DB_PASSWORD", "pw-1234"), ("PLAIN", "not-secret"), ("OTHER", "marked!")];
        let changes = vars.iter().map(|(k, v)| (k.to_string(), Some(v.to_string()))).collect();
        store.change_app_config(&app, &changes, None).unwrap();
        store.mark_config_secret(&app, &["OTHER".to_string()]).unwrap();
        store.set_webhook_secret(&app, "whsec-999", &audit()).unwrap();
        let mut secrets = store.app_secrets(&app).unwrap();
        secrets.sort();
        assert_eq!(secrets, ["marked!", "pw-1234", "whsec-999"]);
        for (name, secret) in [
            ("SECRET_KEY_BASE", true),
            ("GITHUB_TOKEN", true),
            ("aws_access_key_id", true),
            ("DATABASE_URL", true),
            ("NODE_ENV", false),
            ("KEYBOARD", false),
            ("PORT", false),
        ] {
            assert_eq!(is_secret_name(name), secret, "{name}");
        }
    }

    #[test]
    fn delivery_ids_are_remembered_for_the_retention_period_only() {
        let store = store();
        let app = AppName::parse("web1").unwrap();
        store.create_app(&app, "main", None, TargetKind::Docker, &audit()).unwrap();
        assert!(store.record_delivery(&app, "old").unwrap());
        assert!(!store.record_delivery(&app, "old").unwrap(), "a redelivery is recognised");
        store
            .conn()
            .execute(
                "UPDATE deliveries SET created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?1) WHERE delivery = 'old'",
                params![format!("-{} days", DELIVERY_RETENTION_DAYS + 1)],
            )
            .unwrap();
        assert!(store.record_delivery(&app, "new").unwrap());
        let left: i64 = store.conn().query_row("SELECT COUNT(*) FROM deliveries", [], |row| row.get(0)).unwrap();
        assert_eq!(left, 1, "the expired id was forgotten when the next one came");
        store.forget_delivery(&app, "new").unwrap();
        assert!(store.record_delivery(&app, "new").unwrap(), "a forgotten id is acted on again");
    }

    #[test]
    fn release_changes_follow_allowed_from() {
        let store = store();
        let app = AppName::parse("web1").unwrap();
        store.create_app(&app, "main", None, TargetKind::Docker, &audit()).unwrap();
        let release = store.create_release(&app, &new_release("r@sha256:1", None)).unwrap();
        let set = |status: ReleaseStatus| {
            store
                .conn()
                .execute("UPDATE releases SET status = ?2 WHERE number = ?1", params![release.number, status.as_str()])
                .unwrap();
        };
        for from in ReleaseStatus::ALL {
            for to in [ReleaseStatus::Live, ReleaseStatus::Failed, ReleaseStatus::RolledBack] {
                set(from);
                let result = match to {
                    ReleaseStatus::Live => store.make_release_live(&app, release.number, None),
                    other => store.fail_release(&app, release.number, "x", other == ReleaseStatus::RolledBack, None),
                };
                assert_eq!(result.is_ok(), to.allowed_from().contains(&from), "{from:?} → {to:?}: {result:?}");
            }
        }
        // A second release going live retires the live one, and only a live one.
        set(ReleaseStatus::Live);
        let second = store.create_release(&app, &new_release("r@sha256:2", None)).unwrap();
        store.make_release_live(&app, second.number, None).unwrap();
        assert_eq!(store.release(&app, release.number).unwrap().unwrap().status, ReleaseStatus::Retired);
    }

    #[test]
    fn damaged_json_columns_and_unknown_targets_are_errors_that_name_the_row() {
        let store = store();
        let app = AppName::parse("web1").unwrap();
        store.create_app(&app, "main", None, TargetKind::Docker, &audit()).unwrap();
        let release = store.create_release(&app, &new_release("r@sha256:1", None)).unwrap();
        store.conn().execute("UPDATE apps SET config = '{not json' WHERE name = 'web1'", []).unwrap();
        let error = store.app_config(&app).unwrap_err().to_string();
        assert!(error.contains("the config of app web1"), "{error}");
        assert!(store.app_secrets(&app).is_err(), "no empty config stands in for it");
        store.conn().execute("UPDATE apps SET secret_vars = '[1' WHERE name = 'web1'", []).unwrap();
        assert!(store.secret_config_names(&app).unwrap_err().to_string().contains("the secret_vars of app web1"));
        store.conn().execute("UPDATE apps SET target = 'moon' WHERE name = 'web1'", []).unwrap();
        let error = store.app(&app).unwrap_err().to_string();
        assert!(error.contains("target of app \"web1\"") && error.contains("unknown target \"moon\""), "{error}");
        store
            .conn()
            .execute("UPDATE releases SET processes = 'nope' WHERE number = ?1", params![release.number])
            .unwrap();
        let error = store.releases(&app).unwrap_err().to_string();
        assert!(error.contains("the processes of release 1 of app \"web1\""), "{error}");
    }

    #[test]
    fn status_changes_follow_the_state_machine_and_unknown_statuses_are_errors() {
        let store = store();
        let app = AppName::parse("web1").unwrap();
        store.create_app(&app, "main", None, TargetKind::Docker, &audit()).unwrap();
        let build = store.create_build(&app, "a", "refs/heads/main", &audit()).unwrap();
        assert_eq!(build.status, BuildStatus::Queued);
        // Every pair of statuses: allowed exactly when the state machine says so.
        for from in BuildStatus::ALL {
            for to in BuildStatus::ALL {
                store
                    .conn()
                    .execute("UPDATE builds SET status = ?2 WHERE id = ?1", params![build.id, from.as_str()])
                    .unwrap();
                let result = store.set_build_status(build.id, to);
                assert_eq!(result.is_ok(), to.allowed_from().contains(&from), "{from:?} → {to:?}: {result:?}");
                let now = store.build(build.id).unwrap().unwrap().status;
                assert_eq!(now, if result.is_ok() { to } else { from }, "a refused change writes nothing");
            }
        }
        let error = store.set_build_status(999, BuildStatus::Building).unwrap_err().to_string();
        assert_eq!(error, "build 999 cannot become building: it is gone");

        let release = store.create_release(&app, &new_release("r@sha256:1", None)).unwrap();
        store.fail_release(&app, release.number, "no", false, None).unwrap();
        let error = store.make_release_live(&app, release.number, None).unwrap_err().to_string();
        assert_eq!(error, "release 1 of web1 cannot become live: it is failed");
        let r2 = store.create_release(&app, &new_release("r@sha256:2", None)).unwrap();
        store.make_release_live(&app, r2.number, None).unwrap();
        assert!(store.fail_release(&app, r2.number, "late", true, None).is_err(), "a live release is never failed");
        assert_eq!(store.live_release(&app).unwrap().unwrap().number, 2);

        store.conn().execute("UPDATE builds SET status = 'exploded' WHERE id = ?1", params![build.id]).unwrap();
        let error = store.build(build.id).unwrap_err().to_string();
        assert!(error.contains("unknown build status \"exploded\""), "{error}");
    }

    #[test]
    fn restart_interrupts_work_in_flight() {
        let store = store();
        let app = AppName::parse("web1").unwrap();
        store.create_app(&app, "main", None, TargetKind::Docker, &audit()).unwrap();
        let done = store.create_build(&app, "a", "refs/heads/main", &audit()).unwrap();
        for status in [BuildStatus::Building, BuildStatus::Pushing, BuildStatus::Deploying, BuildStatus::Succeeded] {
            store.set_build_status(done.id, status).unwrap();
        }
        let running = store.create_build(&app, "b", "refs/heads/main", &audit()).unwrap();
        store.set_build_status(running.id, BuildStatus::Building).unwrap();
        store.create_release(&app, &new_release("r@sha256:1", Some(done.id))).unwrap();
        let (builds, releases) = store.recover_after_restart().unwrap();
        assert_eq!(builds, [running.id]);
        assert_eq!(releases.len(), 1);
        assert_eq!(store.build(running.id).unwrap().unwrap().status, BuildStatus::Interrupted);
        assert_eq!(store.build(done.id).unwrap().unwrap().status, BuildStatus::Succeeded);
        assert_eq!(store.release(&app, 1).unwrap().unwrap().status, ReleaseStatus::Interrupted);
    }

    #[test]
    fn image_stream_keeps_history() {
        let store = store();
        let app = AppName::parse("web1").unwrap();
        store.create_app(&app, "main", None, TargetKind::Docker, &audit()).unwrap();
        assert!(store.record_tag(&app, "latest", "r", "sha256:1", ImageSource::Build, Some(1)).unwrap());
        assert!(store.record_tag(&app, "latest", "r", "sha256:2", ImageSource::Build, Some(2)).unwrap());
        assert!(
            !store.record_tag(&app, "latest", "r", "sha256:2", ImageSource::Poll, None).unwrap(),
            "told twice: once"
        );
        assert_eq!(store.current_digest(&app, "latest").unwrap().as_deref(), Some("sha256:2"));
        assert_eq!(store.image_stream(&app).unwrap().len(), 2);
        store.delete_app(&app, &audit()).unwrap();
        assert!(store.image_stream(&app).unwrap().is_empty());
    }
}
