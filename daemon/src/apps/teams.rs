//! Who may do what: authentication of tokens and keys, the one place authorization is
//! decided ([`Apps::authorize`], [`Apps::admin_only`]), and the service's verbs for
//! users, grants, tokens, SSH keys and the audit log.

use super::{Apps, Error, Result};
use crate::access::{self, Caller, Credential, Decision, Identity, Role, Scope, UserName};
use crate::app::AppName;
use crate::store::{self, Audit};
use crate::wire;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How many audit entries one answer carries at most.
const AUDIT_LIMIT: usize = 1000;

/// What a git client asks of an app's repo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitService {
    /// Fetch or clone: a viewer may.
    Upload,
    /// Push: a deployer may.
    Receive,
}

impl GitService {
    fn needs(self) -> Role {
        match self {
            GitService::Upload => Role::Viewer,
            GitService::Receive => Role::Deployer,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            GitService::Upload => "fetching",
            GitService::Receive => "pushing",
        }
    }
}

/// Pushes (and fetches) in flight, by the id hoistd gives the `git` it runs for them:
/// the hook sends the id back, and the push is the caller's who started that `git`.
#[derive(Default)]
pub struct Pushes {
    running: Mutex<HashMap<String, (Caller, AppName)>>,
    /// Told whenever one ends.
    ended: tokio::sync::Notify,
}

/// A push's registration; dropped (when its `git` ends) it is forgotten.
pub struct PushTicket {
    pub id: String,
    pushes: Arc<Pushes>,
}

impl Drop for PushTicket {
    fn drop(&mut self) {
        self.pushes.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
        self.pushes.ended.notify_waiters();
    }
}

impl Pushes {
    fn register(self: &Arc<Self>, caller: Caller, app: AppName) -> PushTicket {
        let id = crate::auth::new_token();
        self.running.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), (caller, app));
        PushTicket { id, pushes: self.clone() }
    }

    pub(super) fn caller(&self, id: &str) -> Option<Caller> {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).get(id).map(|(caller, _)| caller.clone())
    }

    /// Returns once no `git` runs in the app's repo (no push, no fetch).
    pub(super) async fn ended(&self, app: &AppName) {
        loop {
            // Made before the check, so an end between the check and the wait is heard.
            let ended = self.ended.notified();
            if !self.running.lock().unwrap_or_else(|p| p.into_inner()).values().any(|(_, of)| of == app) {
                return;
            }
            ended.await;
        }
    }
}

/// `app (role)`, as scopes are shown.
fn scope_text(app: &AppName, role: Role) -> String {
    format!("{app} ({role})")
}

fn parse_user(name: &str) -> Result<UserName> {
    UserName::parse(name).map_err(Error::Invalid)
}

fn parse_role(role: &str) -> Result<Role> {
    role.parse().map_err(Error::Invalid)
}

impl Apps {
    /// Who a token is: the admin, a user (by one of their tokens) or a machine token.
    pub fn authenticate(&self, token: &str, remote: &str) -> Result<Caller> {
        if self.admin_token.matches(token) {
            return Ok(Caller::admin(remote));
        }
        let stored = self.store.use_token(&self.token_key.hash(token))?.ok_or(Error::Unauthenticated)?;
        let scope = match stored.scope {
            Some((app, role)) => Scope::App { app, role },
            None => Scope::User,
        };
        let identity = Identity::User { user: stored.owner, credential: Credential::Token(stored.name), scope };
        Ok(Caller { identity, remote: remote.to_string() })
    }

    /// Who an SSH key is: its user, with everything that user may do.
    pub fn authenticate_key(&self, fingerprint: &str, remote: &str) -> Result<Caller> {
        let user = self.store.key_owner(fingerprint)?.ok_or(Error::Unauthenticated)?;
        let identity = Identity::User {
            user: Some(user),
            credential: Credential::Key(fingerprint.to_string()),
            scope: Scope::User,
        };
        Ok(Caller { identity, remote: remote.to_string() })
    }

    /// The role `caller` holds on `app` (none: `None`).
    fn role_of(&self, caller: &Caller, app: &AppName) -> Result<Option<Role>> {
        let granted = match caller.user() {
            Some(user) => self.store.grant_of(app, user)?,
            None => None,
        };
        Ok(caller.role_on(app, granted))
    }

    /// The one place a request about an app is allowed or refused: the app named `name`
    /// if `caller` holds at least `needed` on it. A refusal is recorded in the audit log
    /// and says which role is needed; a user with no role at all is told the same
    /// whether the app exists or not, so app names do not leak.
    pub(crate) fn authorize(&self, caller: &Caller, name: &str, needed: Role, what: &str) -> Result<store::App> {
        let app_name = AppName::parse(name)?;
        let app = self.store.app(&app_name)?;
        if caller.is_admin() {
            return app.ok_or_else(|| Error::UnknownApp(app_name.to_string()));
        }
        let held = match &app {
            Some(app) => self.role_of(caller, &app.name)?,
            None => None,
        };
        match (access::decide(held, needed), app) {
            (Decision::Allowed, Some(app)) => Ok(app),
            (Decision::Allowed, None) => Err(Error::UnknownApp(app_name.to_string())),
            (Decision::Refused { needed, held }, _) => {
                let holds = match held {
                    Some(role) => format!("holds only the {role} role on app {app_name}"),
                    None => format!("holds no role on app {app_name} (or there is no such app)"),
                };
                let message = format!(
                    "{what} needs the {needed} role on {app_name}; {} {holds}. An owner of the app or the admin can grant it: hoist access add {app_name} {} --role {needed}",
                    caller.actor(),
                    caller.user().map_or("USER".to_string(), ToString::to_string),
                );
                self.audit_refusal(caller, Some(&app_name), &format!("{what}: needs {needed}"));
                Err(Error::Forbidden(message))
            }
        }
    }

    /// Only the admin may do `what` (create apps and users, collect garbage, rebase all).
    pub(crate) fn admin_only(&self, caller: &Caller, what: &str) -> Result<()> {
        if caller.is_admin() {
            return Ok(());
        }
        self.audit_refusal(caller, None, &format!("{what}: needs admin"));
        Err(Error::Forbidden(format!("only the admin may {what}; {} is not the admin", caller.actor())))
    }

    fn audit_refusal(&self, caller: &Caller, app: Option<&AppName>, detail: &str) {
        let audit = Audit::new(caller.actor(), app, "refused", detail).from(&caller.remote);
        if let Err(error) = self.store.record_audit(&audit) {
            tracing::error!(%error, "cannot record a refusal in the audit log");
        }
    }

    /// An audit entry of `caller` doing `action` on `app`.
    pub(crate) fn audit_entry(
        caller: &Caller,
        app: Option<&AppName>,
        action: &str,
        detail: impl Into<String>,
    ) -> Audit {
        Audit::new(caller.actor(), app, action, detail).from(&caller.remote)
    }

    /// Checks that `caller` may use `service` on `app`'s repo and registers the push, so
    /// the pre-receive hook's request is the caller's. The same check for HTTP and SSH.
    pub fn open_git(&self, caller: &Caller, name: &str, service: GitService) -> Result<(store::App, PushTicket)> {
        let app = self.authorize(caller, name, service.needs(), service.verb())?;
        let ticket = self.pushes.register(caller.clone(), app.name.clone());
        Ok((app, ticket))
    }

    /// Who the token is; recorded as a login (what `hoist login` calls).
    pub fn whoami(&self, caller: &Caller, ssh: Option<wire::SshEndpoint>) -> Result<wire::Whoami> {
        self.store.record_audit(&Self::audit_entry(caller, None, "login", ""))?;
        let name = match &caller.identity {
            Identity::Admin => "admin".to_string(),
            Identity::User { user: Some(user), .. } => user.to_string(),
            Identity::User { user: None, .. } => caller.actor(),
        };
        let scope = match &caller.identity {
            Identity::User { scope: Scope::App { app, role }, .. } => Some(scope_text(app, *role)),
            _ => None,
        };
        Ok(wire::Whoami { name, admin: caller.is_admin(), scope, ssh })
    }

    /// A new user with a first token (named `default`), shown once.
    pub fn create_user(&self, caller: &Caller, request: wire::CreateUser) -> Result<wire::NewToken> {
        self.admin_only(caller, "create users")?;
        let name = parse_user(&request.name)?;
        let token = crate::auth::new_user_token();
        let audit = Self::audit_entry(caller, None, "user.create", name.as_str());
        self.store.create_user(&name, "default", &self.token_key.hash(&token), &audit)?;
        tracing::info!(user = %name, "user created");
        Ok(wire::NewToken { name: "default".to_string(), user: Some(name.to_string()), scope: None, token })
    }

    pub fn users(&self, caller: &Caller) -> Result<Vec<wire::User>> {
        self.admin_only(caller, "list users")?;
        Ok(self.store.users()?.into_iter().map(wire::User::from).collect())
    }

    /// Who may do what on the app (a viewer may look).
    pub fn access(&self, caller: &Caller, name: &str) -> Result<wire::Access> {
        let app = self.authorize(caller, name, Role::Viewer, "seeing who has access")?;
        let users = self.store.grants_on(&app.name)?.into_iter().map(|(u, r)| (u.to_string(), r.to_string())).collect();
        let tokens = self
            .store
            .tokens(Some(None))?
            .into_iter()
            .filter_map(|t| match t.scope {
                Some((scoped, role)) if scoped == app.name => Some((t.name, role.to_string())),
                _ => None,
            })
            .collect();
        Ok(wire::Access { app: app.name.to_string(), users, tokens })
    }

    /// Gives `user` `role` on the app (an owner may).
    pub fn grant(&self, caller: &Caller, name: &str, user: &str, request: wire::Grant) -> Result<wire::Access> {
        let app = self.authorize(caller, name, Role::Owner, "granting access")?;
        let user = parse_user(user)?;
        let role = parse_role(&request.role)?;
        if !self.store.user_exists(&user)? {
            return Err(Error::NotFound(format!(
                "no user named {user}; the admin creates users: hoist users create {user}"
            )));
        }
        let audit = Self::audit_entry(caller, Some(&app.name), "access.add", format!("{user} as {role}"));
        self.store.grant(&app.name, &user, role, &audit)?;
        self.access(caller, name)
    }

    /// Takes `user`'s role on the app away (an owner may).
    pub fn revoke(&self, caller: &Caller, name: &str, user: &str) -> Result<wire::Access> {
        let app = self.authorize(caller, name, Role::Owner, "removing access")?;
        let user = parse_user(user)?;
        let audit = Self::audit_entry(caller, Some(&app.name), "access.remove", user.as_str());
        if !self.store.revoke_grant(&app.name, &user, &audit)? {
            return Err(Error::NotFound(format!(
                "{user} holds no role on {}; see hoist access {}",
                app.name, app.name
            )));
        }
        self.access(caller, name)
    }

    /// A new token, shown once. A user makes their own (limited, if they like, to one app
    /// and a role no higher than theirs); the admin makes machine tokens (which must be
    /// limited to one app) or, with `user`, a user's.
    pub fn create_token(&self, caller: &Caller, request: wire::CreateToken) -> Result<wire::NewToken> {
        if request.name.is_empty()
            || request.name.len() > 40
            || !request.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(Error::Invalid(format!(
                "invalid token name {:?}: 1-40 of letters, digits, '-', '_' and '.'",
                request.name
            )));
        }
        let owner = match (&caller.identity, &request.user) {
            (Identity::Admin, Some(user)) => {
                let user = parse_user(user)?;
                if !self.store.user_exists(&user)? {
                    return Err(Error::NotFound(format!("no user named {user}")));
                }
                Some(user)
            }
            (Identity::Admin, None) => None,
            (Identity::User { user: Some(me), scope: Scope::User, .. }, None) => Some(me.clone()),
            (Identity::User { user: Some(me), scope: Scope::User, .. }, Some(user)) if user == me.as_str() => {
                Some(me.clone())
            }
            _ => {
                self.audit_refusal(caller, None, "creating a token: needs the admin, or a user's own unscoped token");
                return Err(Error::Forbidden(
                    "a token limited to an app cannot make tokens, and only the admin makes tokens for others"
                        .to_string(),
                ));
            }
        };
        let scope = match (&request.app, &request.role) {
            (Some(app), role) => {
                let role = parse_role(role.as_deref().unwrap_or("deployer"))?;
                let app = self.authorize(caller, app, role, "making a token for it")?;
                Some((app.name, role))
            }
            (None, Some(_)) => return Err(Error::Invalid("--role limits a token on one app: give --app too".into())),
            (None, None) if owner.is_none() => {
                return Err(Error::Invalid(
                    "a token the admin makes for a machine must be limited to one app: give --app APP --role ROLE (or --user USER for a user's token)".into(),
                ))
            }
            (None, None) => None,
        };
        let token = crate::auth::new_user_token();
        let shown_scope = scope.as_ref().map(|(app, role)| scope_text(app, *role));
        let audit = Self::audit_entry(
            caller,
            scope.as_ref().map(|(app, _)| app),
            "token.create",
            format!(
                "{}{}{}",
                request.name,
                owner.as_ref().map_or(String::new(), |o| format!(" of {o}")),
                shown_scope.as_ref().map_or(String::new(), |s| format!(" for {s}"))
            ),
        );
        let hash = self.token_key.hash(&token);
        self.store.create_token(owner.as_ref(), &request.name, &hash, scope.as_ref().map(|(a, r)| (a, *r)), &audit)?;
        Ok(wire::NewToken { name: request.name, user: owner.map(|o| o.to_string()), scope: shown_scope, token })
    }

    /// Tokens: all of them for the admin, one's own for a user. Never the tokens.
    pub fn tokens(&self, caller: &Caller) -> Result<Vec<wire::Token>> {
        let tokens = match &caller.identity {
            Identity::Admin => self.store.tokens(None)?,
            Identity::User { user: Some(me), scope: Scope::User, .. } => self.store.tokens(Some(Some(me)))?,
            Identity::User { .. } => {
                return Err(Error::Forbidden(
                    "a token limited to one app (or a machine token) cannot list tokens; use your own login token"
                        .to_string(),
                ))
            }
        };
        Ok(tokens.into_iter().map(wire::Token::from).collect())
    }

    /// Revokes a token by name: the caller's own, or (admin) a machine token or, with
    /// `user`, that user's. It answers 401 from then on.
    pub fn revoke_token(&self, caller: &Caller, token_name: &str, user: Option<&str>) -> Result<()> {
        let owner = match (&caller.identity, user) {
            (Identity::Admin, Some(user)) => Some(parse_user(user)?),
            (Identity::Admin, None) => None,
            (Identity::User { user: Some(me), scope: Scope::User, .. }, None) => Some(me.clone()),
            (Identity::User { user: Some(me), scope: Scope::User, .. }, Some(user)) if user == me.as_str() => {
                Some(me.clone())
            }
            _ => return Err(Error::Forbidden(
                "only the admin revokes other people's and machine tokens, and a token limited to one app revokes none"
                    .to_string(),
            )),
        };
        let audit = Self::audit_entry(
            caller,
            None,
            "token.revoke",
            format!("{token_name}{}", owner.as_ref().map_or(String::new(), |o| format!(" of {o}"))),
        );
        if !self.store.revoke_token(owner.as_ref(), token_name, &audit)? {
            let whose = owner.map_or("machine token".to_string(), |o| format!("token of {o}"));
            return Err(Error::NotFound(format!("no {whose} named {token_name:?}; see hoist tokens list")));
        }
        Ok(())
    }

    /// Adds an SSH public key for the caller (or, admin, for `user`).
    pub fn add_key(&self, caller: &Caller, request: wire::AddKey) -> Result<wire::Key> {
        let user = self.key_user(caller, request.user.as_deref())?;
        let key = crate::ssh::PublicKey::parse(&request.public_key).map_err(Error::Invalid)?;
        if !self.store.user_exists(&user)? {
            return Err(Error::NotFound(format!("no user named {user}")));
        }
        let audit = Self::audit_entry(caller, None, "key.add", format!("{} for {user}", key.fingerprint));
        self.store.add_key(&user, &key.fingerprint, &key.openssh, &key.comment, &audit)?;
        let keys = self.store.keys(Some(&user))?;
        let added = keys.into_iter().find(|k| k.fingerprint == key.fingerprint);
        added.map(wire::Key::from).ok_or_else(|| Error::Internal("the key just added is not there".to_string()))
    }

    pub fn keys(&self, caller: &Caller, user: Option<&str>) -> Result<Vec<wire::Key>> {
        let keys = match (&caller.identity, user) {
            (Identity::Admin, None) => self.store.keys(None)?,
            _ => self.store.keys(Some(&self.key_user(caller, user)?))?,
        };
        Ok(keys.into_iter().map(wire::Key::from).collect())
    }

    pub fn remove_key(&self, caller: &Caller, fingerprint: &str) -> Result<()> {
        let only_of = if caller.is_admin() { None } else { Some(self.key_user(caller, None)?) };
        let audit = Self::audit_entry(caller, None, "key.remove", fingerprint);
        if !self.store.remove_key(fingerprint, only_of.as_ref(), &audit)? {
            return Err(Error::NotFound(format!("no key {fingerprint} of yours; see hoist keys list")));
        }
        Ok(())
    }

    /// Whose keys a call is about: the admin names a user; a user means themselves.
    fn key_user(&self, caller: &Caller, user: Option<&str>) -> Result<UserName> {
        match (&caller.identity, user) {
            (Identity::Admin, Some(user)) => parse_user(user),
            (Identity::Admin, None) => {
                Err(Error::Invalid("the admin has no keys of its own: say whose with --user USER".to_string()))
            }
            (Identity::User { user: Some(me), scope: Scope::User, .. }, None) => Ok(me.clone()),
            (Identity::User { user: Some(me), scope: Scope::User, .. }, Some(user)) if user == me.as_str() => {
                Ok(me.clone())
            }
            _ => Err(Error::Forbidden(
                "only the admin manages other people's keys, and a token limited to an app manages none".to_string(),
            )),
        }
    }

    /// The audit log, newest first: all of it for the admin; one app's for its owners.
    pub fn audit(&self, caller: &Caller, app: Option<&str>) -> Result<Vec<wire::AuditEntry>> {
        let app = match app {
            Some(name) => Some(self.authorize(caller, name, Role::Owner, "reading the audit log")?.name),
            None => {
                self.admin_only(caller, "read the whole audit log (an app's owners read it with --app APP)")?;
                None
            }
        };
        let rows = self.store.audit(app.as_ref().map(AppName::as_str), AUDIT_LIMIT)?;
        Ok(rows.into_iter().map(wire::AuditEntry::from).collect())
    }

    /// Removes audit entries older than the retention.
    pub fn prune_audit(&self) {
        match self.store.prune_audit(self.audit_keep_days) {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, days = self.audit_keep_days, "pruned the audit log"),
            Err(error) => tracing::warn!(%error, "cannot prune the audit log"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_deleted_apps_repo_waits_for_the_git_running_in_it_and_no_longer() {
        let pushes = Arc::new(Pushes::default());
        let (web1, web2) = (AppName::parse("web1").unwrap(), AppName::parse("web2").unwrap());
        let push = pushes.register(Caller::admin("127.0.0.1"), web1.clone());
        let _other = pushes.register(Caller::admin("127.0.0.1"), web2.clone());
        assert!(pushes.caller(&push.id).is_some());
        let waiting = tokio::spawn({
            let pushes = pushes.clone();
            async move { pushes.ended(&web1).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "web1's push still runs");
        drop(push);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.unwrap().unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), pushes.ended(&AppName::parse("web3").unwrap()))
            .await
            .expect("an app with no git running is done at once");
    }
}
