//! The verbs of teams: users, per-app access, tokens, SSH keys and the audit log.

use crate::client::Client;
use crate::{opt, pretty, table};
use anyhow::Context;
use clap::Subcommand;
use hoist_wire as wire;
use reqwest::Method;

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Creates a user and prints their first token, once (admin only).
    Create { name: String },
    /// Lists users: how many apps, keys and tokens each has (admin only).
    List,
}

#[derive(Subcommand)]
pub enum AccessCommand {
    /// Gives USER a role on APP: viewer < deployer < owner (an owner or the admin may).
    Add {
        app: String,
        user: String,
        #[arg(long, value_parser = ["viewer", "deployer", "owner"])]
        role: String,
    },
    /// Takes USER's role on APP away.
    Remove { app: String, user: String },
}

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Makes a token, printed once. `--app APP --role ROLE` limits it to one app (the
    /// admin's machine tokens, e.g. for CI, must be); `--user` (admin) makes it a user's.
    Create {
        name: String,
        #[arg(long)]
        app: Option<String>,
        #[arg(long, value_parser = ["viewer", "deployer", "owner"])]
        role: Option<String>,
        #[arg(long)]
        user: Option<String>,
    },
    /// Lists tokens (yours; the admin sees all): names, scopes, created, last used.
    List,
    /// Revokes a token: it answers 401 from then on.
    Revoke {
        name: String,
        /// Whose token (admin; default: a machine token, or yours).
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Adds an SSH public key (a .pub file, or - for stdin) to push over SSH with.
    Add {
        file: std::path::PathBuf,
        /// Whose key (admin).
        #[arg(long)]
        user: Option<String>,
    },
    /// Lists SSH keys (yours; the admin sees all, or `--user`'s).
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Removes an SSH key by its fingerprint (SHA256:…).
    Remove { fingerprint: String },
}

pub async fn users(client: &Client, command: UsersCommand, json: bool) -> anyhow::Result<()> {
    match command {
        UsersCommand::Create { name } => {
            let body = serde_json::to_value(wire::CreateUser { name })?;
            let made: wire::NewToken = client.typed(Method::POST, "/api/v1/users", Some(body)).await?;
            if json {
                return pretty(&made);
            }
            let user = made.user.as_deref().unwrap_or("?");
            println!("user {user} created; their token (shown only this once; they log in with `hoist login URL`):");
            println!("{}", made.token);
        }
        UsersCommand::List => {
            let users: Vec<wire::User> = client.typed(Method::GET, "/api/v1/users", None).await?;
            if json {
                return pretty(&users);
            }
            let rows = users
                .into_iter()
                .map(|u| vec![u.name, u.apps.to_string(), u.keys.to_string(), u.tokens.to_string(), u.created_at])
                .collect();
            table(&["NAME", "APPS", "KEYS", "TOKENS", "CREATED"], rows);
        }
    }
    Ok(())
}

pub async fn access(
    client: &Client,
    app: Option<String>,
    command: Option<AccessCommand>,
    json: bool,
) -> anyhow::Result<()> {
    let (app, answer): (String, wire::Access) = match command {
        None => {
            let app = app.context("name the app: hoist access APP")?;
            let answer = client.typed(Method::GET, &format!("/api/v1/apps/{app}/access"), None).await?;
            (app, answer)
        }
        Some(AccessCommand::Add { app, user, role }) => {
            let body = serde_json::to_value(wire::Grant { role: role.clone() })?;
            let path = format!("/api/v1/apps/{app}/access/{user}");
            let answer = client.typed(Method::PUT, &path, Some(body)).await?;
            if !json {
                println!("{user} is {role} on {app}");
            }
            (app, answer)
        }
        Some(AccessCommand::Remove { app, user }) => {
            let answer = client.typed(Method::DELETE, &format!("/api/v1/apps/{app}/access/{user}"), None).await?;
            if !json {
                println!("{user} has no role on {app} any more");
            }
            (app, answer)
        }
    };
    if json {
        return pretty(&answer);
    }
    let mut rows: Vec<Vec<String>> = vec![vec!["admin".into(), "admin (everything)".into()]];
    rows.extend(answer.users.iter().map(|(user, role)| vec![user.clone(), role.clone()]));
    rows.extend(answer.tokens.iter().map(|(name, role)| vec![format!("token {name}"), role.clone()]));
    println!("access to {app}:");
    table(&["WHO", "ROLE"], rows);
    Ok(())
}

pub async fn tokens(client: &Client, command: TokensCommand, json: bool) -> anyhow::Result<()> {
    match command {
        TokensCommand::Create { name, app, role, user } => {
            let body = serde_json::to_value(wire::CreateToken { name, app, role, user })?;
            let made: wire::NewToken = client.typed(Method::POST, "/api/v1/tokens", Some(body)).await?;
            if json {
                return pretty(&made);
            }
            let whose = made.user.as_deref().map_or("a machine token".to_string(), |u| format!("a token of {u}"));
            let scope = made.scope.as_deref().map_or(String::new(), |s| format!(" for {s}"));
            println!("{} is {whose}{scope}; the token (shown only this once):", made.name);
            println!("{}", made.token);
        }
        TokensCommand::List => {
            let tokens: Vec<wire::Token> = client.typed(Method::GET, "/api/v1/tokens", None).await?;
            if json {
                return pretty(&tokens);
            }
            let rows = tokens
                .into_iter()
                .map(|t| {
                    vec![
                        t.name,
                        t.user.unwrap_or_else(|| "(machine)".into()),
                        t.scope.unwrap_or_else(|| "all of the user's apps".into()),
                        t.created_at,
                        opt(&t.last_used_at),
                    ]
                })
                .collect();
            table(&["NAME", "USER", "SCOPE", "CREATED", "LAST USED"], rows);
        }
        TokensCommand::Revoke { name, user } => {
            let query = user.as_deref().map_or(String::new(), |u| format!("?user={u}"));
            client.json(Method::DELETE, &format!("/api/v1/tokens/{name}{query}"), None).await?;
            if json {
                return pretty(&serde_json::json!({ "revoked": name }));
            }
            println!("token {name} revoked; it answers 401 from now on");
        }
    }
    Ok(())
}

pub async fn keys(client: &Client, command: KeysCommand, json: bool) -> anyhow::Result<()> {
    match command {
        KeysCommand::Add { file, user } => {
            let public_key = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("cannot read the key from stdin")?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?
            };
            let body = serde_json::to_value(wire::AddKey { public_key, user })?;
            let key: wire::Key = client.typed(Method::POST, "/api/v1/keys", Some(body)).await?;
            if json {
                return pretty(&key);
            }
            println!(
                "added {} ({}) for {}; push with git over SSH (hoist git:remote APP --ssh)",
                key.fingerprint, key.comment, key.user
            );
        }
        KeysCommand::List { user } => {
            let query = user.as_deref().map_or(String::new(), |u| format!("?user={u}"));
            let keys: Vec<wire::Key> = client.typed(Method::GET, &format!("/api/v1/keys{query}"), None).await?;
            if json {
                return pretty(&keys);
            }
            let rows = keys.into_iter().map(|k| vec![k.fingerprint, k.user, k.comment, k.created_at]).collect();
            table(&["FINGERPRINT", "USER", "COMMENT", "ADDED"], rows);
        }
        KeysCommand::Remove { fingerprint } => {
            let mut url = reqwest::Url::parse("http://x/api/v1/keys")?;
            url.query_pairs_mut().append_pair("fingerprint", &fingerprint);
            let path = format!("/api/v1/keys?{}", url.query().unwrap_or_default());
            client.json(Method::DELETE, &path, None).await?;
            if json {
                return pretty(&serde_json::json!({ "removed": fingerprint }));
            }
            println!("removed the key {fingerprint}");
        }
    }
    Ok(())
}

pub async fn audit(client: &Client, app: Option<String>, json: bool) -> anyhow::Result<()> {
    let query = app.as_deref().map_or(String::new(), |a| format!("?app={a}"));
    let entries: Vec<wire::AuditEntry> = client.typed(Method::GET, &format!("/api/v1/audit{query}"), None).await?;
    if json {
        return pretty(&entries);
    }
    let rows = entries
        .into_iter()
        .map(|e| vec![e.at, e.actor, e.app.unwrap_or_else(|| "-".into()), e.action, e.detail, e.remote])
        .collect();
    table(&["WHEN", "WHO", "APP", "WHAT", "DETAIL", "FROM"], rows);
    Ok(())
}
