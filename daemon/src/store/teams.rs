//! Users, their tokens (only keyed hashes of them), per-app grants, SSH keys and the
//! audit log. Each change writes its audit entry in the same transaction.

use super::{Error, Result, Store};
use crate::access::{Role, UserName};
use crate::app::AppName;
use rusqlite::{params, Connection, OptionalExtension};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    app TEXT REFERENCES apps(name) ON DELETE CASCADE,
    role TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    last_used_at TEXT,
    UNIQUE (owner, name)
);
CREATE TABLE IF NOT EXISTS grants (
    app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    role TEXT NOT NULL,
    PRIMARY KEY (app, user)
);
CREATE INDEX IF NOT EXISTS grants_by_user ON grants (user);
CREATE TABLE IF NOT EXISTS ssh_keys (
    fingerprint TEXT PRIMARY KEY,
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    key TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    actor TEXT NOT NULL,
    app TEXT,
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    remote TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_by_app ON audit (app, id);
";

/// One entry of the audit log, as it is written: who (`actor`), on what app, did what
/// (`action`, e.g. `push`, `config.set`), with what (`detail`: a commit, names of
/// config vars — never values), from where (`remote`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    pub actor: String,
    pub app: Option<String>,
    pub action: String,
    pub detail: String,
    pub remote: String,
}

impl Audit {
    pub fn new(actor: impl Into<String>, app: Option<&AppName>, action: &str, detail: impl Into<String>) -> Audit {
        Audit {
            actor: actor.into(),
            app: app.map(|a| a.to_string()),
            action: action.to_string(),
            detail: detail.into(),
            remote: String::new(),
        }
    }

    pub fn from(mut self, remote: &str) -> Audit {
        self.remote = remote.to_string();
        self
    }
}

/// An audit entry as read back.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: i64,
    pub at: String,
    pub entry: Audit,
}

pub(super) fn insert_audit(conn: &Connection, audit: &Audit) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO audit (actor, app, action, detail, remote) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![audit.actor, audit.app, audit.action, audit.detail, audit.remote],
    )?;
    Ok(())
}

/// A user as listed.
#[derive(Debug, Clone)]
pub struct User {
    pub name: UserName,
    pub created_at: String,
    pub apps: i64,
    pub keys: i64,
    pub tokens: i64,
}

/// A token as stored (never the token itself).
#[derive(Debug, Clone)]
pub struct Token {
    /// `None`: a machine token the admin made.
    pub owner: Option<UserName>,
    pub name: String,
    pub scope: Option<(AppName, Role)>,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// An SSH key as stored.
#[derive(Debug, Clone)]
pub struct Key {
    pub fingerprint: String,
    pub user: UserName,
    pub comment: String,
    pub created_at: String,
}

fn role_column(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Role> {
    let text: String = row.get(index)?;
    text.parse().map_err(|reason| super::corrupt(index, "a grant or token".to_string(), "role", reason))
}

fn user_column(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<UserName> {
    let text: String = row.get(index)?;
    UserName::parse(&text).map_err(|reason| super::corrupt(index, "a user".to_string(), "name", reason))
}

fn app_column(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<AppName> {
    let text: String = row.get(index)?;
    AppName::parse(&text).map_err(|e| super::corrupt(index, "a grant or token".to_string(), "app", e.to_string()))
}

const TOKEN_COLUMNS: &str = "owner, name, app, role, created_at, last_used_at";

fn token_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Token> {
    let owner: String = row.get(0)?;
    let owner = if owner.is_empty() { None } else { Some(user_column(row, 0)?) };
    let app: Option<String> = row.get(2)?;
    let scope = match app {
        Some(_) => Some((app_column(row, 2)?, role_column(row, 3)?)),
        None => None,
    };
    Ok(Token { owner, name: row.get(1)?, scope, created_at: row.get(4)?, last_used_at: row.get(5)? })
}

fn owner_key(owner: Option<&UserName>) -> &str {
    owner.map_or("", UserName::as_str)
}

impl Store {
    /// Writes one audit entry on its own (a refusal, or a change outside the database).
    pub fn record_audit(&self, audit: &Audit) -> Result<()> {
        insert_audit(&self.conn(), audit)?;
        Ok(())
    }

    /// The newest `limit` audit entries, newest first; of one app when given.
    pub fn audit(&self, app: Option<&str>, limit: usize) -> Result<Vec<AuditRow>> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT id, at, actor, app, action, detail, remote FROM audit
             WHERE ?1 IS NULL OR app = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = statement
            .query_map(params![app, limit as i64], |row| {
                Ok(AuditRow {
                    id: row.get(0)?,
                    at: row.get(1)?,
                    entry: Audit {
                        actor: row.get(2)?,
                        app: row.get(3)?,
                        action: row.get(4)?,
                        detail: row.get(5)?,
                        remote: row.get(6)?,
                    },
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Removes audit entries older than `days`; how many went.
    pub fn prune_audit(&self, days: u32) -> Result<usize> {
        let removed = self.conn().execute(
            "DELETE FROM audit WHERE at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?1)",
            params![format!("-{days} days")],
        )?;
        Ok(removed)
    }

    /// Creates a user with a first token (its keyed hash), in one transaction.
    pub fn create_user(&self, name: &UserName, token_name: &str, hash: &str, audit: &Audit) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let inserted = tx.execute("INSERT OR IGNORE INTO users (name) VALUES (?1)", params![name.as_str()])?;
        if inserted == 0 {
            return Err(Error::Exists(format!("user {name:?} exists already")));
        }
        tx.execute(
            "INSERT INTO tokens (owner, name, hash) VALUES (?1, ?2, ?3)",
            params![name.as_str(), token_name, hash],
        )?;
        insert_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    pub fn user_exists(&self, name: &UserName) -> Result<bool> {
        Ok(self
            .conn()
            .query_row("SELECT COUNT(*) > 0 FROM users WHERE name = ?1", params![name.as_str()], |r| r.get(0))?)
    }

    pub fn users(&self) -> Result<Vec<User>> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT name, created_at,
                    (SELECT COUNT(*) FROM grants WHERE user = users.name),
                    (SELECT COUNT(*) FROM ssh_keys WHERE user = users.name),
                    (SELECT COUNT(*) FROM tokens WHERE owner = users.name)
             FROM users ORDER BY name",
        )?;
        let users = statement
            .query_map([], |row| {
                Ok(User {
                    name: user_column(row, 0)?,
                    created_at: row.get(1)?,
                    apps: row.get(2)?,
                    keys: row.get(3)?,
                    tokens: row.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(users)
    }

    /// Stores a token's keyed hash; `owner: None` is a machine token (it must have a scope).
    pub fn create_token(
        &self,
        owner: Option<&UserName>,
        name: &str,
        hash: &str,
        scope: Option<(&AppName, Role)>,
        audit: &Audit,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO tokens (owner, name, hash, app, role) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                owner_key(owner),
                name,
                hash,
                scope.map(|(app, _)| app.as_str()),
                scope.map(|(_, role)| role.as_str())
            ],
        )?;
        if inserted == 0 {
            let whose = owner.map_or("the admin's machine tokens".to_string(), |o| format!("{o}'s tokens"));
            return Err(Error::Exists(format!(
                "{whose} have one named {name:?} already; revoke it first or pick another name"
            )));
        }
        insert_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    /// Tokens of one owner (`Some(None)`: the machine tokens), or of everyone (`None`).
    pub fn tokens(&self, owner: Option<Option<&UserName>>) -> Result<Vec<Token>> {
        let conn = self.conn();
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE ?1 IS NULL OR owner = ?1 ORDER BY owner, name");
        let mut statement = conn.prepare(&sql)?;
        let tokens = statement.query_map(params![owner.map(owner_key)], token_from_row)?.collect::<Result<_, _>>()?;
        Ok(tokens)
    }

    /// Deletes a token; whether there was one.
    pub fn revoke_token(&self, owner: Option<&UserName>, name: &str, audit: &Audit) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let removed =
            tx.execute("DELETE FROM tokens WHERE owner = ?1 AND name = ?2", params![owner_key(owner), name])? > 0;
        if removed {
            insert_audit(&tx, audit)?;
        }
        tx.commit()?;
        Ok(removed)
    }

    /// The token whose keyed hash is `hash`, its last use set to now (at most once a
    /// minute, so most checks write nothing).
    pub fn use_token(&self, hash: &str) -> Result<Option<Token>> {
        let conn = self.conn();
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = ?1");
        let token = conn.query_row(&sql, params![hash], token_from_row).optional()?;
        if token.is_some() {
            conn.execute(
                "UPDATE tokens SET last_used_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
                 WHERE hash = ?1 AND (last_used_at IS NULL
                       OR last_used_at < strftime('%Y-%m-%dT%H:%M:%fZ','now','-60 seconds'))",
                params![hash],
            )?;
        }
        Ok(token)
    }

    /// Gives `user` `role` on `app` (replacing a role held).
    pub fn grant(&self, app: &AppName, user: &UserName, role: Role, audit: &Audit) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO grants (app, user, role) VALUES (?1, ?2, ?3)
             ON CONFLICT (app, user) DO UPDATE SET role = excluded.role",
            params![app.as_str(), user.as_str(), role.as_str()],
        )?;
        insert_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    /// Takes `user`'s role on `app` away; whether they had one.
    pub fn revoke_grant(&self, app: &AppName, user: &UserName, audit: &Audit) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let removed =
            tx.execute("DELETE FROM grants WHERE app = ?1 AND user = ?2", params![app.as_str(), user.as_str()])? > 0;
        if removed {
            insert_audit(&tx, audit)?;
        }
        tx.commit()?;
        Ok(removed)
    }

    pub fn grant_of(&self, app: &AppName, user: &UserName) -> Result<Option<Role>> {
        let conn = self.conn();
        let role = conn
            .query_row(
                "SELECT role FROM grants WHERE app = ?1 AND user = ?2",
                params![app.as_str(), user.as_str()],
                |row| role_column(row, 0),
            )
            .optional()?;
        Ok(role)
    }

    /// Who holds what on `app`, by user name.
    pub fn grants_on(&self, app: &AppName) -> Result<Vec<(UserName, Role)>> {
        let conn = self.conn();
        let mut statement = conn.prepare("SELECT user, role FROM grants WHERE app = ?1 ORDER BY user")?;
        let grants = statement
            .query_map(params![app.as_str()], |row| Ok((user_column(row, 0)?, role_column(row, 1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(grants)
    }

    /// The apps `user` holds a role on, with that role.
    pub fn grants_of(&self, user: &UserName) -> Result<std::collections::BTreeMap<AppName, Role>> {
        let conn = self.conn();
        let mut statement = conn.prepare("SELECT app, role FROM grants WHERE user = ?1")?;
        let grants = statement
            .query_map(params![user.as_str()], |row| Ok((app_column(row, 0)?, role_column(row, 1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(grants)
    }

    pub fn add_key(&self, user: &UserName, fingerprint: &str, key: &str, comment: &str, audit: &Audit) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO ssh_keys (fingerprint, user, key, comment) VALUES (?1, ?2, ?3, ?4)",
            params![fingerprint, user.as_str(), key, comment],
        )?;
        if inserted == 0 {
            return Err(Error::Exists(format!("the key {fingerprint} is added already (a key belongs to one user)")));
        }
        insert_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    /// Keys of `user`, or of everyone.
    pub fn keys(&self, user: Option<&UserName>) -> Result<Vec<Key>> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT fingerprint, user, comment, created_at FROM ssh_keys WHERE ?1 IS NULL OR user = ?1
             ORDER BY user, created_at",
        )?;
        let keys = statement
            .query_map(params![user.map(UserName::as_str)], |row| {
                Ok(Key {
                    fingerprint: row.get(0)?,
                    user: user_column(row, 1)?,
                    comment: row.get(2)?,
                    created_at: row.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(keys)
    }

    /// Removes a key (of `user` only, when given); whether there was one.
    pub fn remove_key(&self, fingerprint: &str, user: Option<&UserName>, audit: &Audit) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let removed = tx.execute(
            "DELETE FROM ssh_keys WHERE fingerprint = ?1 AND (?2 IS NULL OR user = ?2)",
            params![fingerprint, user.map(UserName::as_str)],
        )? > 0;
        if removed {
            insert_audit(&tx, audit)?;
        }
        tx.commit()?;
        Ok(removed)
    }

    /// Whose key has this fingerprint.
    pub fn key_owner(&self, fingerprint: &str) -> Result<Option<UserName>> {
        let conn = self.conn();
        let owner = conn
            .query_row("SELECT user FROM ssh_keys WHERE fingerprint = ?1", params![fingerprint], |row| {
                user_column(row, 0)
            })
            .optional()?;
        Ok(owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_tokens_grants_and_their_audit_are_written_together() {
        let store = Store::open(std::path::Path::new(":memory:")).unwrap();
        let alice = UserName::parse("alice").unwrap();
        let web1 = AppName::parse("web1").unwrap();
        let audit = |action: &str| Audit::new("admin", None, action, "");
        store.create_user(&alice, "default", "h1", &audit("user.create")).unwrap();
        assert!(matches!(store.create_user(&alice, "default", "h2", &audit("user.create")), Err(Error::Exists(_))));
        store.create_app(&web1, "main", None, crate::config::TargetKind::Docker, &audit("app.create")).unwrap();
        store.grant(&web1, &alice, Role::Viewer, &audit("access.add")).unwrap();
        store.grant(&web1, &alice, Role::Deployer, &audit("access.add")).unwrap();
        assert_eq!(store.grant_of(&web1, &alice).unwrap(), Some(Role::Deployer));
        store.create_token(Some(&alice), "ci", "h3", Some((&web1, Role::Viewer)), &audit("token.create")).unwrap();
        assert!(store.create_token(Some(&alice), "ci", "h4", None, &audit("token.create")).is_err());
        let used = store.use_token("h3").unwrap().unwrap();
        assert_eq!(used.scope, Some((web1.clone(), Role::Viewer)));
        assert!(store.use_token("h3").unwrap().unwrap().last_used_at.is_some());
        assert!(store.revoke_token(Some(&alice), "ci", &audit("token.revoke")).unwrap());
        assert!(store.use_token("h3").unwrap().is_none());
        // Deleting the app takes its grants and scoped tokens along.
        store.delete_app(&web1, &audit("app.delete")).unwrap();
        assert_eq!(store.grant_of(&web1, &alice).unwrap(), None);
        let actions: Vec<String> = store.audit(None, 100).unwrap().into_iter().map(|r| r.entry.action).collect();
        assert_eq!(
            actions,
            ["app.delete", "token.revoke", "token.create", "access.add", "access.add", "app.create", "user.create"]
        );
        assert_eq!(store.prune_audit(1).unwrap(), 0);
    }
}
