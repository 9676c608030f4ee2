//! Who is asking, and what they may do: callers, roles, scopes, and the one decision
//! of whether a caller holds a role on an app. Pure: the apps service reads the grants
//! from the store and asks here; nothing else decides.
//!
//! Roles are ordered: a viewer reads an app (builds, releases, logs; secrets masked), a
//! deployer also changes it (push, config, rollback, promote, rebase), an owner also
//! grants access, rotates its webhook secret and destroys it. The admin (the operator's
//! token) is above all of them and is the only one who creates apps and users.

use crate::app::AppName;
use std::fmt;

/// A role on an app, lowest first (so `>=` is "at least").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Viewer,
    Deployer,
    Owner,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Deployer, Role::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Deployer => "deployer",
            Role::Owner => "owner",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| format!("no role {text:?}: roles are viewer, deployer and owner"))
    }
}

/// A user's name: what `hoist users create` was given. Same rules as app names, so it is
/// safe in paths, logs and audit lines.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserName(String);

impl UserName {
    pub fn parse(name: &str) -> Result<UserName, String> {
        let ok = !name.is_empty()
            && name.len() <= 40
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.')
            && name.as_bytes()[0].is_ascii_lowercase()
            && name != "admin";
        if ok {
            Ok(UserName(name.to_string()))
        } else {
            Err(format!(
                "invalid user name {name:?}: 1-40 of a-z, 0-9, '-', '_' and '.', starting with a letter (and not \"admin\")"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a token or key may reach: everything its user may, or one app with at most one
/// role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    User,
    App { app: AppName, role: Role },
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A token, by its name.
    Token(String),
    /// An SSH key, by its SHA256 fingerprint.
    Key(String),
}

/// Who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The operator's token (`<data>/admin-token`).
    Admin,
    /// A user's token or key; `user` is `None` for a token the admin made for a machine
    /// (CI), which always has an app scope.
    User { user: Option<UserName>, credential: Credential, scope: Scope },
}

/// Who is asking, and from where (an address, for the audit log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub identity: Identity,
    pub remote: String,
}

impl Caller {
    pub fn admin(remote: impl Into<String>) -> Caller {
        Caller { identity: Identity::Admin, remote: remote.into() }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self.identity, Identity::Admin)
    }

    /// How the audit log names the caller: `admin`, `alice (token laptop)`,
    /// `alice (key SHA256:…)`, `token ci`.
    pub fn actor(&self) -> String {
        match &self.identity {
            Identity::Admin => "admin".to_string(),
            Identity::User { user, credential, .. } => {
                let via = match credential {
                    Credential::Token(name) => format!("token {name}"),
                    Credential::Key(fingerprint) => format!("key {fingerprint}"),
                };
                match user {
                    Some(user) => format!("{user} ({via})"),
                    None => via,
                }
            }
        }
    }

    pub fn user(&self) -> Option<&UserName> {
        match &self.identity {
            Identity::User { user, .. } => user.as_ref(),
            Identity::Admin => None,
        }
    }

    /// The app a token is limited to, if it is.
    pub fn scoped_app(&self) -> Option<&AppName> {
        match &self.identity {
            Identity::User { scope: Scope::App { app, .. }, .. } => Some(app),
            _ => None,
        }
    }

    /// The role the caller holds on `app`, given the role its user was granted there
    /// (`granted`; ignored for a machine token, which has only its scope). `None`: no
    /// role at all.
    pub fn role_on(&self, app: &AppName, granted: Option<Role>) -> Option<Role> {
        match &self.identity {
            Identity::Admin => Some(Role::Owner),
            Identity::User { user, scope, .. } => {
                let granted = if user.is_some() { granted } else { Some(Role::Owner) };
                match scope {
                    Scope::User => granted,
                    Scope::App { app: scoped, role } if scoped == app => granted.map(|g| g.min(*role)),
                    Scope::App { .. } => None,
                }
            }
        }
    }
}

/// The answer to "may this caller do that": yes, or a refusal that says what is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// The caller holds `held` (or no role at all), less than `needed`.
    Refused {
        needed: Role,
        held: Option<Role>,
    },
}

/// Whether a caller holding `held` on an app may do what needs `needed`.
pub fn decide(held: Option<Role>, needed: Role) -> Decision {
    match held {
        Some(held) if held >= needed => Decision::Allowed,
        held => Decision::Refused { needed, held },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn app(name: &str) -> AppName {
        AppName::parse(name).unwrap()
    }

    fn alice(scope: Scope) -> Caller {
        let identity = Identity::User {
            user: Some(UserName::parse("alice").unwrap()),
            credential: Credential::Token("laptop".into()),
            scope,
        };
        Caller { identity, remote: "127.0.0.1".into() }
    }

    #[test]
    fn roles_parse_and_order() {
        assert!(Role::Viewer < Role::Deployer && Role::Deployer < Role::Owner);
        assert_eq!("deployer".parse::<Role>(), Ok(Role::Deployer));
        assert!("admin".parse::<Role>().unwrap_err().contains("viewer, deployer and owner"));
    }

    #[test]
    fn user_names() {
        assert!(UserName::parse("alice").is_ok());
        assert!(UserName::parse("ci.bot-2").is_ok());
        for bad in ["", "Alice", "admin", "1x", "a/b", "a b", &"x".repeat(41)] {
            assert!(UserName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scopes_cap_roles() {
        let web1 = app("web1");
        let web2 = app("web2");
        assert_eq!(Caller::admin("").role_on(&web1, None), Some(Role::Owner));
        assert_eq!(alice(Scope::User).role_on(&web1, Some(Role::Deployer)), Some(Role::Deployer));
        assert_eq!(alice(Scope::User).role_on(&web2, None), None);
        let scoped = alice(Scope::App { app: web1.clone(), role: Role::Viewer });
        assert_eq!(scoped.role_on(&web1, Some(Role::Owner)), Some(Role::Viewer));
        assert_eq!(scoped.role_on(&web2, Some(Role::Owner)), None, "a token for web1 does not reach web2");
        let ci = Caller {
            identity: Identity::User {
                user: None,
                credential: Credential::Token("ci".into()),
                scope: Scope::App { app: web1.clone(), role: Role::Deployer },
            },
            remote: String::new(),
        };
        assert_eq!(ci.role_on(&web1, None), Some(Role::Deployer));
        assert_eq!(ci.role_on(&web2, None), None);
        assert_eq!(ci.actor(), "token ci");
        assert_eq!(scoped.actor(), "alice (token laptop)");
    }

    fn role() -> impl Strategy<Value = Role> {
        prop_oneof![Just(Role::Viewer), Just(Role::Deployer), Just(Role::Owner)]
    }

    proptest! {
        /// A caller never holds more than its grant, nor more than its token's scope;
        /// and an action is allowed exactly when the role held is at least the one needed.
        #[test]
        fn a_role_never_exceeds_grant_or_scope(
            granted in proptest::option::of(role()),
            scope_role in proptest::option::of(role()),
            same_app in any::<bool>(),
            needed in role(),
        ) {
            let web1 = app("web1");
            let other = app("other");
            let scope = match scope_role {
                None => Scope::User,
                Some(role) => Scope::App { app: if same_app { web1.clone() } else { other }, role },
            };
            let caller = alice(scope.clone());
            let held = caller.role_on(&web1, granted);
            if let Some(held) = held {
                prop_assert!(Some(held) <= granted);
                if let Scope::App { role, .. } = scope {
                    prop_assert!(held <= role);
                }
            }
            if granted.is_none() || (scope_role.is_some() && !same_app) {
                prop_assert_eq!(held, None);
            }
            match decide(held, needed) {
                Decision::Allowed => prop_assert!(held.is_some_and(|h| h >= needed)),
                Decision::Refused { needed: n, held: h } => {
                    prop_assert_eq!(n, needed);
                    prop_assert_eq!(h, held);
                    prop_assert!(h.is_none_or(|h| h < needed));
                }
            }
        }
    }
}
