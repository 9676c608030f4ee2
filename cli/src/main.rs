//! hoist: the command line client of hoistd's API, in the shape people know from Heroku
//! and Dokku. Human tables by default, `--json` on every verb for scripts.
#![forbid(unsafe_code)]

mod client;
mod credentials;
mod dev;
mod teams;
mod terminal;
mod verbs;

use anyhow::{bail, Context};
use clap::{CommandFactory, Parser, Subcommand};
use client::{exit, Client, Failure};
use hoist_wire as wire;
use reqwest::Method;
use serde_json::Value;
use std::io::{BufRead, IsTerminal, Write};

const EXIT_CODES: &str = "\
Exit codes: 0 done; 1 other error; 2 wrong command line; 3 hoistd cannot be reached;
4 no token or a wrong one; 5 no such app, build or release; 6 refused (bad input, conflict,
or a role you do not hold: the message says which);
7 a build or release failed (what ran before keeps running).";

#[derive(Parser)]
#[command(version, about = "hoist: git push to deploy; this CLI manages apps on a hoistd", after_help = EXIT_CODES)]
struct Args {
    /// hoistd's API address [default: the one `hoist login` saved, else http://127.0.0.1:7070].
    #[arg(long, env = "HOIST_URL", global = true)]
    url: Option<String>,
    /// A CA certificate (PEM) to trust for hoistd's HTTPS, e.g. its self-signed one.
    #[arg(long, env = "HOIST_CA_CERT", global = true)]
    ca_cert: Option<std::path::PathBuf>,
    /// The admin token [default: the one `hoist login` saved, else $HOIST_DATA_DIR/admin-token].
    #[arg(long, env = "HOIST_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Print hoistd's answer as JSON (NDJSON for logs) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Saves hoistd's URL and the token (asked for once, or from --token) for later calls.
    Login {
        /// hoistd's API address. (Not named `url`: clap would merge it with the global
        /// `--url`.)
        #[arg(value_name = "URL")]
        address: Option<String>,
    },
    /// Forgets the token saved for hoistd.
    Logout,
    /// Create, list, show or destroy apps.
    Apps {
        #[command(subcommand)]
        command: AppsCommand,
    },
    /// Adds a git remote (default `hoist`) for APP to the repo here; the token stays out
    /// of the URL (git asks `hoist` for it). `--ssh`: over SSH, with your key (`hoist
    /// keys add`).
    #[command(name = "git:remote")]
    GitRemote {
        app: String,
        #[arg(long, short = 'r', default_value = "hoist")]
        remote: String,
        #[arg(long)]
        ssh: bool,
    },
    /// Users (admin): `hoist users create NAME` prints their token once; `hoist users list`.
    Users {
        #[command(subcommand)]
        command: teams::UsersCommand,
    },
    /// Who may do what on an app: `hoist access APP`; `add APP USER --role ROLE`, `remove APP USER`.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Access {
        #[arg(required = true)]
        app: Option<String>,
        #[command(subcommand)]
        command: Option<teams::AccessCommand>,
    },
    /// API tokens: create (printed once), list (never the tokens), revoke.
    Tokens {
        #[command(subcommand)]
        command: teams::TokensCommand,
    },
    /// SSH keys to push with: add FILE.pub, list, remove FINGERPRINT.
    Keys {
        #[command(subcommand)]
        command: teams::KeysCommand,
    },
    /// Who did what, when, from where (the admin: everything; an app's owner: --app).
    Audit {
        #[arg(long)]
        app: Option<String>,
    },
    /// A one-off process of the live release (its image and config): `hoist run APP --
    /// python manage.py migrate`. stdin, stdout and stderr are attached; the exit status is
    /// hoist's. One argument is a shell command line (`hoist run APP 'echo $HOME'`).
    Run {
        app: String,
        /// Run in the background; its output is in `hoist logs APP`, `hoist ps` lists it.
        #[arg(long, short = 'd')]
        detach: bool,
        /// Memory for the process: 512m, 2g, a number of MiB, or a dyno size name
        /// (standard-1x, standard-2x, performance-m, performance-l).
        #[arg(long, value_name = "SIZE")]
        size: Option<String>,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Deploys the working tree as it is, then again on every save, with the build's
    /// timeline and the app's output in this terminal (Ctrl-C stops watching).
    Dev {
        app: String,
        /// Create the app if it does not exist (on a terminal, hoist asks).
        #[arg(long)]
        create: bool,
        /// Remove the app when watching stops.
        #[arg(long)]
        down: bool,
        /// The working tree (default: this folder).
        #[arg(long, default_value = ".")]
        dir: std::path::PathBuf,
        /// How long the tree must be quiet after a save before it builds.
        #[arg(long, default_value_t = 300, value_name = "MS")]
        debounce_ms: u64,
    },
    /// Who this token is, and where git over SSH listens.
    #[command(alias = "whoami")]
    Info,
    /// An app's builds, newest first; or one build, or its log.
    Builds {
        app: String,
        #[command(subcommand)]
        command: Option<BuildsCommand>,
    },
    /// An app's releases, newest first: status, target revision, cause, config version.
    Releases { app: String },
    /// A build's or a release's timeline, or (by default) the running app's output.
    Logs {
        app: String,
        /// The timeline of build N, from its first line.
        #[arg(long, conflicts_with = "release")]
        build: Option<i64>,
        /// The timeline of release N (its rollout).
        #[arg(long)]
        release: Option<i64>,
        /// Keep following while it is written (or while the app runs).
        #[arg(long, short = 'f')]
        follow: bool,
        /// Runtime output: how many of the last lines to start with.
        #[arg(long, short = 'n', default_value_t = 100)]
        tail: usize,
    },
    /// What the app runs now: its live release, and each process with its state.
    Ps { app: String },
    /// How many processes of each type run: `hoist ps:scale APP web=3 worker=1` (a new
    /// release of the live image runs them; web=0 answers 503).
    #[command(name = "ps:scale")]
    PsScale {
        app: String,
        #[arg(required = true, value_name = "TYPE=N")]
        counts: Vec<String>,
    },
    /// Starts the app's processes again, rolling (web keeps answering): a new release.
    #[command(name = "ps:restart")]
    PsRestart { app: String, process: Option<String> },
    /// An app's config vars: `hoist config APP`; `set`/`unset` make a new release.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Config {
        #[arg(required = true)]
        app: Option<String>,
        #[command(subcommand)]
        command: Option<ConfigCommand>,
    },
    /// Makes a new release of release N's image and config.
    Rollback { app: String, release: i64 },
    /// Puts an app on the current run image of its stack (after `hoistd stacks prepare
    /// NAME --refresh`): a new release, its own layers unchanged, no build. `--all`: every
    /// app whose stack's run image changed since its release.
    #[command(group = clap::ArgGroup::new("which").required(true).args(["app", "all"]))]
    Rebase {
        app: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Removes images the retention policy lets go (it also runs after every rollout).
    Gc,
    /// hoistd's registry: `hoist registry login` logs docker in to it (to push an image
    /// an app follows); `hoist registry` shows its address.
    Registry {
        #[command(subcommand)]
        command: Option<RegistryCommand>,
    },
    /// Git remotes that push to hoistd without the token in the URL (same as git:remote).
    Remote {
        #[command(subcommand)]
        command: RemoteCommand,
    },
    /// The webhook URL and secret to paste into GitHub, GitLab or Gitea (the secret is
    /// made on the first call and shown once; `--rotate` makes a new one).
    Webhooks {
        app: String,
        #[arg(long)]
        rotate: bool,
    },
    /// The git credential helper `hoist git:remote` sets up (git runs it; not for people).
    #[command(hide = true)]
    GitCredential { operation: String },
    /// An app's image stream: every tag with its history of digests.
    #[command(hide = true)]
    ImageStream { app: String },
    /// An app's images (its image stream); `hoist images promote APP FROM TO` retags.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Images {
        #[arg(required = true)]
        app: Option<String>,
        #[command(subcommand)]
        command: Option<ImagesCommand>,
    },
    /// Prints a completion script: `hoist completions bash > /etc/bash_completion.d/hoist`.
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum AppsCommand {
    Create {
        name: String,
        /// Pushes to this branch deploy (`--branch` too).
        #[arg(long, visible_alias = "branch", default_value = "main")]
        deploy_branch: String,
        /// Use this buildpack instead of detecting one (e.g. node when a repo also has a pom.xml).
        #[arg(long)]
        buildpack: Option<String>,
        /// Where its releases run: docker or kubernetes (default: hoistd's `rollout.target`).
        #[arg(long)]
        target: Option<String>,
        /// The Git host repository webhooks build from (see `hoist webhooks`).
        #[arg(long)]
        repo: Option<String>,
        /// A token for a private repo (read from this environment variable's value).
        #[arg(long, env = "HOIST_REPO_TOKEN", hide_env_values = true)]
        repo_token: Option<String>,
        /// Follow this image instead of building: host:port/repository:tag.
        #[arg(long)]
        image: Option<String>,
    },
    /// Sets the Git host repository webhooks build from; `none` clears it.
    SetRepo {
        name: String,
        /// The repository's URL. Its own name, never `url`: clap merges same-named
        /// arguments, and the global `--url` is where the admin token goes.
        #[arg(value_name = "URL")]
        repo_url: String,
        /// A token for a private repo.
        #[arg(long, env = "HOIST_REPO_TOKEN", hide_env_values = true)]
        repo_token: Option<String>,
    },
    /// Sets the buildpack an app builds with; `detect` goes back to detection.
    SetBuildpack {
        name: String,
        buildpack: String,
    },
    List,
    #[command(alias = "show")]
    Info {
        name: String,
    },
    /// Deletes the app with its releases, builds, logs and images; asks for its name
    /// unless `--confirm NAME`.
    #[command(alias = "delete")]
    Destroy {
        name: String,
        #[arg(long)]
        confirm: Option<String>,
    },
}

#[derive(Subcommand)]
enum RegistryCommand {
    /// Runs `docker login` to hoistd's registry with its account (the password goes on
    /// docker's stdin, never on a command line).
    Login {
        /// The docker program to log in.
        #[arg(long, default_value = "docker")]
        docker: String,
    },
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Points tag TO of the app's image at what FROM points at; apps following TO roll out.
    Promote { app: String, from: String, to: String },
}

#[derive(Subcommand)]
enum RemoteCommand {
    /// `hoist remote add APP [--name hoist]`: same as `hoist git:remote APP`.
    Add {
        app: String,
        #[arg(long, default_value = "hoist")]
        name: String,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// `hoist config set APP NAME=value...` (`--secret`: mask the values in logs and
    /// answers). Keep a secret off the command line (where `ps` shows it): `NAME=-` reads
    /// the value from stdin, `NAME --from-file F` from a file (a PEM key, say).
    Set {
        app: String,
        #[arg(required = true)]
        vars: Vec<String>,
        #[arg(long)]
        secret: bool,
        /// The value of the one NAME given, read from this file as it is.
        #[arg(long, value_name = "FILE")]
        from_file: Option<std::path::PathBuf>,
    },
    /// `hoist config unset APP NAME...`
    Unset {
        app: String,
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Subcommand)]
enum BuildsCommand {
    #[command(alias = "show")]
    Info { id: i64 },
    /// The build's timeline (same as `hoist logs APP --build ID`).
    Log {
        id: i64,
        #[arg(long, short = 'f')]
        follow: bool,
    },
}

fn main() {
    // The TLS crypto provider reqwest uses (ring), installed once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(error) => error.exit(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime starts");
    if let Err(error) = runtime.block_on(run(args)) {
        // The message is for people: no backtrace, whatever RUST_BACKTRACE says.
        eprintln!("hoist: {error:#}");
        let code = error.downcast_ref::<Failure>().map_or(exit::ERROR, |f| f.code);
        std::process::exit(code);
    }
}

fn url(given: Option<String>) -> String {
    given.or_else(credentials::default_url).unwrap_or_else(|| "http://127.0.0.1:7070".to_string())
}

fn token(given: Option<String>, url: &str) -> anyhow::Result<String> {
    if let Some(token) = given.or_else(|| credentials::token_for(url)) {
        return Ok(token);
    }
    let dir = std::env::var("HOIST_DATA_DIR").unwrap_or_else(|_| "/var/lib/hoist".to_string());
    let path = std::path::Path::new(&dir).join(wire::ADMIN_TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(token) => Ok(token.trim().to_string()),
        Err(_) => Err(Failure::new(
            exit::UNAUTHORIZED,
            format!("no token for {url}: run `hoist login {url}`, pass --token or set HOIST_TOKEN (hoistd prints it at its first start and keeps it in {})", path.display()),
        )
        .into()),
    }
}

fn s(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn opt<T: std::fmt::Display>(value: &Option<T>) -> String {
    value.as_ref().map_or("-".to_string(), ToString::to_string)
}

/// Prints rows as columns separated by two spaces.
fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let print = |cells: Vec<String>| {
        let last = cells.len() - 1;
        let line: Vec<String> = cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| if i == last { c } else { format!("{c:<width$}", width = widths[i]) })
            .collect();
        println!("{}", line.join("  ").trim_end());
    };
    print(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        print(row);
    }
}

fn pretty(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn git(args: &[&str]) -> anyhow::Result<()> {
    let status = std::process::Command::new("git").args(args).status().context("cannot run git")?;
    if !status.success() {
        bail!("git {} failed", args.join(" "));
    }
    Ok(())
}

fn short_digest(image: &str) -> String {
    let digest = image.rsplit_once('@').map_or(image, |(_, d)| d);
    digest.chars().take(19).collect()
}

async fn run(args: Args) -> anyhow::Result<()> {
    let json = args.json;
    match &args.command {
        Command::GitCredential { operation } => return credentials::git_credential(operation),
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Args::command(), "hoist", &mut std::io::stdout());
            return Ok(());
        }
        _ => {}
    }
    let url = url(args.url.clone()).trim_end_matches('/').to_string();
    let http = client::http_client(args.ca_cert.as_deref())?;
    if let Command::Login { address: given } = &args.command {
        let url = given.clone().unwrap_or(url).trim_end_matches('/').to_string();
        return login(url, args.token.clone(), http, json).await;
    }
    if let Command::Logout = &args.command {
        let forgot = credentials::forget(&url)?;
        if json {
            return pretty(&serde_json::json!({ "url": url, "forgot": forgot }));
        }
        println!("{}", if forgot { format!("logged out of {url}") } else { format!("no token was saved for {url}") });
        return Ok(());
    }
    let client = Client { token: token(args.token.clone(), &url)?, url, http };
    match args.command {
        Command::Login { .. } | Command::Logout | Command::GitCredential { .. } | Command::Completions { .. } => {
            unreachable!("handled before the client is made")
        }
        Command::Apps { command } => apps(&client, command, json).await,
        Command::GitRemote { app, remote, ssh } => git_remote(&client, &app, &remote, ssh, json).await,
        Command::Remote { command: RemoteCommand::Add { app, name: remote } } => {
            git_remote(&client, &app, &remote, false, json).await
        }
        Command::Users { command } => teams::users(&client, command, json).await,
        Command::Access { app, command } => teams::access(&client, app, command, json).await,
        Command::Tokens { command } => teams::tokens(&client, command, json).await,
        Command::Keys { command } => teams::keys(&client, command, json).await,
        Command::Audit { app } => teams::audit(&client, app, json).await,
        Command::Info => info(&client, json).await,
        Command::Dev { app, create, down, dir, debounce_ms } => {
            let debounce = std::time::Duration::from_millis(debounce_ms);
            dev::run(client.clone(), dev::Options { app, dir, create, down, debounce }).await
        }
        Command::Run { app, detach: true, size, command } => run_detached(&client, &app, command, size, json).await,
        Command::Run { app, detach: false, size, command } => run_one_off(&client, &app, command, size).await,
        Command::Webhooks { app, rotate } => webhooks(&client, &app, rotate, json).await,
        Command::Builds { app, command: None } => verbs::builds(&client, &app, json).await,
        Command::Builds { app, command: Some(BuildsCommand::Info { id }) } => verbs::build(&client, &app, id).await,
        Command::Builds { app, command: Some(BuildsCommand::Log { id, follow }) } => {
            logs(&client, &app, Some(id), None, follow, 0, json).await
        }
        Command::Logs { app, build, release, follow, tail } => {
            logs(&client, &app, build, release, follow, tail, json).await
        }
        Command::Releases { app } => verbs::releases(&client, &app, json).await,
        Command::Ps { app } => verbs::ps(&client, &app, json).await,
        Command::PsScale { app, counts } => verbs::scale(&client, &app, &counts, json).await,
        Command::PsRestart { app, process } => verbs::restart(&client, &app, process, json).await,
        Command::Config { app: Some(app), command: None } => verbs::config(&client, &app, json).await,
        Command::Config { app: None, command: None } => bail!("name the app: hoist config APP"),
        Command::Config { app: _, command: Some(change) } => config_change(&client, change, json).await,
        Command::Images { app: Some(app), command: None } | Command::ImageStream { app } => {
            verbs::images(&client, &app, json).await
        }
        Command::Images { app: None, command: None } => bail!("name the app: hoist images APP"),
        Command::Images { app: _, command: Some(ImagesCommand::Promote { app, from, to }) } => {
            verbs::promote(&client, &app, from, to, json).await
        }
        Command::Registry { command } => match command {
            None => verbs::registry(&client, json).await,
            Some(RegistryCommand::Login { docker }) => {
                let registry: wire::Registry = client.typed(Method::GET, "/api/v1/registry", None).await?;
                registry_login(&registry, &docker)
            }
        },
        Command::Gc => verbs::gc(&client, json).await,
        Command::Rollback { app, release } => verbs::rollback(&client, &app, release, json).await,
        Command::Rebase { app, all } => verbs::rebase(&client, app.as_deref().filter(|_| !all), json).await,
    }
}

async fn login(url: String, given: Option<String>, http: reqwest::Client, json: bool) -> anyhow::Result<()> {
    credentials::origin(&url)?;
    let token = match given {
        Some(token) => token,
        None => {
            if std::io::stdin().is_terminal() {
                eprint!("token for {url} (printed by hoistd at its first start; in <data dir>/admin-token): ");
                std::io::stderr().flush()?;
            }
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim().to_string()
        }
    };
    if token.is_empty() {
        return Err(Failure::new(exit::UNAUTHORIZED, "no token given; nothing saved").into());
    }
    // Check the token before saving it (hoistd records the login).
    let client = Client { url: url.clone(), token: token.clone(), http };
    let me: wire::Whoami = client.typed(Method::GET, "/api/v1/whoami", None).await?;
    let apps: Vec<wire::App> = client.typed(Method::GET, "/api/v1/apps", None).await?;
    credentials::save(&url, &token)?;
    credentials::set_default_url(&url)?;
    if json {
        return pretty(&serde_json::json!({ "url": url, "name": me.name, "apps": apps.len() }));
    }
    println!(
        "logged in to {url} as {} ({} apps); the token is in {}",
        me.name,
        apps.len(),
        credentials::credentials_path()?.display()
    );
    Ok(())
}

/// `hoist run`: upgrades the connection to hoist's one-off protocol, sends stdin as frames
/// and writes the process's output; exits with its status.
/// `hoist run --detach`: starts the process and says where its output goes.
async fn run_detached(
    client: &Client,
    app: &str,
    command: Vec<String>,
    size: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let body = serde_json::to_value(wire::RunRequest { command, size, tty: None })?;
    let started: wire::DetachedRun =
        client.typed(reqwest::Method::POST, &format!("/api/v1/apps/{app}/run/detached"), Some(body)).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&started)?);
    } else {
        println!(
            "Running as {} (release {}) in the background; its output: hoist logs {app} -f; its state: hoist ps {app}",
            started.process, started.release
        );
    }
    Ok(())
}

async fn run_one_off(client: &Client, app: &str, command: Vec<String>, size: Option<String>) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tty = terminal::size();
    let asked = serde_json::to_string(&wire::RunRequest { command, size, tty: tty.map(|(r, c)| [r, c]) })?;
    let response = client
        .http
        .post(format!("{}/api/v1/apps/{app}/run", client.url))
        .bearer_auth(&client.token)
        .header(reqwest::header::CONNECTION, "upgrade")
        .header(reqwest::header::UPGRADE, wire::run::PROTOCOL)
        .header(wire::run::HEADER, asked)
        .send()
        .await
        .map_err(|e| client.unreachable(e))?;
    if response.status() != reqwest::StatusCode::SWITCHING_PROTOCOLS {
        Client::checked(response).await?;
        bail!("hoistd did not start the process (no protocol upgrade); is it an older hoistd?");
    }
    let upgraded = response.upgrade().await.context("the connection to hoistd could not be upgraded")?;
    // With a terminal, every key goes to the process (which echoes); restored at the end.
    let raw = tty.and_then(|_| terminal::RawMode::enter());
    let (mut from_hoistd, mut to_hoistd) = tokio::io::split(upgraded);
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match stdin.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_hoistd.write_all(&wire::run::frame(wire::run::STDIN, &chunk[..n])).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = to_hoistd.write_all(&wire::run::frame(wire::run::STDIN_EOF, &[])).await;
        // Keep the connection open: closing it would tell hoistd the client went away.
        std::future::pending::<()>().await;
    });
    let (mut stdout, mut stderr) = (tokio::io::stdout(), tokio::io::stderr());
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        while let Some((kind, data)) = wire::run::take_frame(&mut buffer).map_err(|e| anyhow::anyhow!(e))? {
            match kind {
                wire::run::STDOUT => {
                    stdout.write_all(&data).await?;
                    stdout.flush().await?;
                }
                wire::run::STDERR => {
                    stderr.write_all(&data).await?;
                    stderr.flush().await?;
                }
                wire::run::EXIT => {
                    let code = data.get(..4).map_or(1, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                    if let Some(raw) = &raw {
                        raw.restore();
                    }
                    std::process::exit(if (0..=255).contains(&code) { code } else { 1 });
                }
                wire::run::ERROR => bail!("{}", String::from_utf8_lossy(&data)),
                _ => {}
            }
        }
        let n = from_hoistd.read(&mut chunk).await.context("lost the connection to hoistd")?;
        if n == 0 {
            return Err(Failure::new(exit::ERROR, "hoistd ended the process without an exit status").into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// `hoist info`: who the token is, what it reaches, and where git over SSH listens.
async fn info(client: &Client, json: bool) -> anyhow::Result<()> {
    let me: wire::Whoami = client.typed(Method::GET, "/api/v1/whoami", None).await?;
    if json {
        return pretty(&me);
    }
    println!("hoistd:   {}", client.url);
    println!("you:      {}{}", me.name, if me.admin { " (admin)" } else { "" });
    if let Some(scope) = &me.scope {
        println!("scope:    {scope} only");
    }
    match &me.ssh {
        Some(ssh) => {
            println!("git ssh:  ssh://git@{}/<app>.git", ssh.address);
            println!("host key: {}", ssh.host_key);
        }
        None => println!("git ssh:  off"),
    }
    Ok(())
}

async fn apps(client: &Client, command: AppsCommand, json: bool) -> anyhow::Result<()> {
    match command {
        AppsCommand::SetBuildpack { name, buildpack } => {
            let value = if buildpack == "detect" { Value::Null } else { Value::String(buildpack.clone()) };
            let body = serde_json::json!({ "buildpack": value });
            let app: wire::App = client.typed(Method::PATCH, &format!("/api/v1/apps/{name}"), Some(body)).await?;
            if json {
                return pretty(&app);
            }
            println!("app {name} builds with: {buildpack}");
        }
        AppsCommand::SetRepo { name, repo_url, repo_token } => {
            let repo_url = if repo_url == "none" { Value::Null } else { Value::String(repo_url) };
            let mut body = serde_json::json!({ "repo": repo_url });
            if let Some(token) = repo_token {
                body["repo_token"] = Value::String(token);
            }
            let app: wire::App = client.typed(Method::PATCH, &format!("/api/v1/apps/{name}"), Some(body)).await?;
            if json {
                return pretty(&app);
            }
            println!("app {name} builds webhooks' commits from: {}", opt(&app.repo_url));
        }
        AppsCommand::Create { name, deploy_branch, buildpack, target, repo, repo_token, image } => {
            let body = serde_json::json!({
                "name": name, "deploy_branch": deploy_branch, "buildpack": buildpack, "target": target,
                "repo": repo, "repo_token": repo_token, "image": image,
            });
            let app: wire::App = client.typed(Method::POST, "/api/v1/apps", Some(body)).await?;
            if json {
                return pretty(&app);
            }
            println!("created app {name} (target {})", app.target);
            println!("push to it:  hoist git:remote {name} && git push hoist {deploy_branch}");
        }
        AppsCommand::List => {
            let apps: Vec<wire::App> = client.typed(Method::GET, "/api/v1/apps", None).await?;
            if json {
                return pretty(&apps);
            }
            let rows = apps
                .into_iter()
                .map(|a| {
                    let source = a.image.clone().or(a.repo_url.clone()).unwrap_or_else(|| "git push".to_string());
                    vec![a.name, a.target, a.deploy_branch, opt(&a.buildpack), source, a.created_at]
                })
                .collect();
            table(&["NAME", "TARGET", "DEPLOYS", "BUILDPACK", "FROM", "CREATED"], rows);
        }
        AppsCommand::Info { name } => {
            let info: wire::AppInfo = client.typed(Method::GET, &format!("/api/v1/apps/{name}"), None).await?;
            if json {
                return pretty(&info);
            }
            let app = &info.app;
            println!("=== {}", app.name);
            println!("url:           {}", info.url);
            println!("target:        {}", app.target);
            println!("deploy branch: {}", app.deploy_branch);
            println!("buildpack:     {}", app.buildpack.as_deref().unwrap_or("detected at each build"));
            println!("config:        v{}", app.config_version);
            println!("repo:          {}", opt(&app.repo_url));
            println!("webhook:       {}", if app.webhook { "secret set" } else { "none" });
            if let Some(image) = &app.image {
                println!("follows image: {image}");
            }
            match &info.live_release {
                Some(r) => println!("live release:  {} ({}, {})", r.number, r.cause, short_digest(&r.image)),
                None => println!("live release:  none"),
            }
            println!("created:       {}", app.created_at);
        }
        AppsCommand::Destroy { name, confirm } => {
            let confirmed = match confirm {
                Some(given) => given,
                None => {
                    eprintln!("This deletes app {name} with its releases, builds, logs and images.");
                    eprint!("Type the app's name to confirm: ");
                    std::io::stderr().flush()?;
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line)?;
                    line.trim().to_string()
                }
            };
            if confirmed != name {
                return Err(Failure::new(
                    exit::REFUSED,
                    format!("not deleted: {confirmed:?} is not {name:?} (pass --confirm {name} to skip the question)"),
                )
                .into());
            }
            client.json(Method::DELETE, &format!("/api/v1/apps/{name}"), None).await?;
            if json {
                return pretty(&serde_json::json!({ "deleted": name }));
            }
            println!("deleted app {name}");
        }
    }
    Ok(())
}

async fn git_remote(client: &Client, app: &str, remote: &str, ssh: bool, json: bool) -> anyhow::Result<()> {
    client.json(Method::GET, &format!("/api/v1/apps/{app}"), None).await?;
    if ssh {
        let me: wire::Whoami = client.typed(Method::GET, "/api/v1/whoami", None).await?;
        let Some(endpoint) = me.ssh else {
            bail!("this hoistd does not serve git over SSH (ssh.enabled is off); use the HTTP remote")
        };
        // The host part as the API's URL names it (hoistd may listen on all interfaces).
        let host = reqwest::Url::parse(&client.url)?.host_str().unwrap_or("localhost").to_string();
        let port = endpoint.address.rsplit_once(':').map_or("2222", |(_, port)| port).to_string();
        let remote_url = format!("ssh://git@{host}:{port}/{app}.git");
        git(&["remote", "add", remote, &remote_url])?;
        if json {
            return pretty(&serde_json::json!({ "remote": remote, "url": remote_url, "host_key": endpoint.host_key }));
        }
        println!("remote {remote} pushes to app {app} over SSH with your key: git push {remote} main");
        println!("hoistd's host key is {} (ssh asks you to accept it once)", endpoint.host_key);
        return Ok(());
    }
    let origin = credentials::origin(&client.url)?;
    credentials::save(&origin, &client.token)?;
    let helper = format!("!'{}' git-credential", std::env::current_exe()?.display());
    let remote_url = format!("{}/git/{app}.git", client.url);
    git(&["remote", "add", remote, &remote_url])?;
    git(&["config", "--local", &format!("credential.{origin}.helper"), &helper])?;
    if json {
        return pretty(&serde_json::json!({ "remote": remote, "url": remote_url }));
    }
    println!("remote {remote} pushes to app {app}: git push {remote} main");
    println!("(the token is in {}, not in the remote's URL)", credentials::credentials_path()?.display());
    Ok(())
}

async fn webhooks(client: &Client, app: &str, rotate: bool, json: bool) -> anyhow::Result<()> {
    let path = format!("/api/v1/apps/{app}/webhook");
    let shown: wire::Webhook = client.typed(Method::GET, &path, None).await?;
    let url = format!("{}{}", client.url, shown.path);
    let made: Option<wire::Webhook> = if shown.secret_set == Some(true) && !rotate {
        None
    } else {
        Some(client.typed(Method::POST, &path, None).await?)
    };
    let secret = made.and_then(|m| m.secret);
    if json {
        return pretty(&serde_json::json!({ "url": url, "secret": secret, "repo": shown.repo }));
    }
    println!("payload URL:  {url}");
    println!("content type: application/json; events: push");
    match secret {
        None => println!("secret:       set (shown only when made; `hoist webhooks {app} --rotate` makes a new one)"),
        Some(secret) => println!("secret:       {secret}   (shown this once)"),
    }
    if shown.repo.is_none() {
        println!("note: app {app} has no repo yet: hoist apps set-repo {app} https://git.example/you/{app}.git");
    }
    println!("GitHub: a webhook with that secret; GitLab: the secret as the token; Gitea/Forgejo: the secret.");
    Ok(())
}

async fn config_change(client: &Client, change: ConfigCommand, json: bool) -> anyhow::Result<()> {
    let mut body = serde_json::Map::new();
    let (app, secret) = match &change {
        ConfigCommand::Set { app, secret, .. } => (app.clone(), *secret),
        ConfigCommand::Unset { app, .. } => (app.clone(), false),
    };
    match change {
        ConfigCommand::Set { vars, from_file, .. } => {
            let file = match &from_file {
                Some(path) => {
                    Some(std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?)
                }
                None => None,
            };
            let values = config_values(&vars, file, || {
                let mut value = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut value).map(|_| value)
            })
            .map_err(|message| Failure::new(exit::USAGE, message))?;
            for (name, value) in values {
                body.insert(name, Value::String(value));
            }
        }
        ConfigCommand::Unset { names, .. } => {
            for name in names {
                body.insert(name, Value::Null);
            }
        }
    }
    let path = format!("/api/v1/apps/{app}/config{}", if secret { "?secret=true" } else { "" });
    let changed: wire::ConfigChanged = client.typed(Method::PATCH, &path, Some(Value::Object(body))).await?;
    if json {
        return pretty(&changed);
    }
    match &changed.release {
        Some(release) => println!("config v{}: release {} of {app} is live", changed.config.version, release.number),
        None => println!("config v{}: {}", changed.config.version, changed.message.as_deref().unwrap_or("")),
    }
    Ok(())
}

/// `docker login` to hoistd's registry, the password on stdin.
fn registry_login(registry: &wire::Registry, docker: &str) -> anyhow::Result<()> {
    let (Some(username), Some(password)) = (&registry.username, &registry.password) else {
        println!("hoistd's registry {} is external: it needs no login from hoist", registry.address);
        return Ok(());
    };
    let mut login = std::process::Command::new(docker)
        .args(["login", &registry.address, "--username", username, "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {docker}"))?;
    login.stdin.take().expect("piped").write_all(password.as_bytes())?;
    let status = login.wait()?;
    if !status.success() {
        bail!("{docker} login {} failed ({status})", registry.address);
    }
    Ok(())
}

/// `text` as a terminal may print it: colour and style sequences (`ESC [ … m`) pass,
/// every other control character is written out as `\xNN`.
pub(crate) fn terminal_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '\x1b' {
            let sgr = rest[1..].strip_prefix('[').and_then(|after| {
                let params = after.find(|ch: char| !(ch.is_ascii_digit() || ch == ';'))?;
                (after[params..].starts_with('m')).then_some(2 + params + 1)
            });
            if let Some(len) = sgr {
                out.push_str(&rest[..len]);
                rest = &rest[len..];
                continue;
            }
        }
        if c.is_control() && c != '\t' {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The values `hoist config set` sends: `NAME=value`; `NAME=-` reads stdin (once, one
/// trailing newline dropped); with `--from-file`, the one NAME given gets the file.
fn config_values(
    vars: &[String],
    file: Option<String>,
    read_stdin: impl FnOnce() -> std::io::Result<String>,
) -> Result<Vec<(String, String)>, String> {
    if let Some(file) = file {
        return match vars {
            [name] if !name.contains('=') => Ok(vec![(name.clone(), file)]),
            _ => Err("with --from-file, give one NAME (no =value): hoist config set APP NAME --from-file F".into()),
        };
    }
    let mut read_stdin = Some(read_stdin);
    let mut values = Vec::new();
    for var in vars {
        let Some((name, value)) = var.split_once('=') else {
            return Err(format!("{var:?} is not NAME=value (NAME=- reads the value from stdin)"));
        };
        let value = if value == "-" {
            let read = read_stdin.take().ok_or("only one NAME=- can read stdin")?;
            let text = read().map_err(|e| format!("cannot read the value of {name} from stdin: {e}"))?;
            text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_string()
        } else {
            value.to_string()
        };
        values.push((name.to_string(), value));
    }
    Ok(values)
}

/// `hoist logs`: a build's or release's timeline, or the running app's output.
async fn logs(
    client: &Client,
    app: &str,
    build: Option<i64>,
    release: Option<i64>,
    follow: bool,
    tail: usize,
    json: bool,
) -> anyhow::Result<()> {
    let (path, what) = match (build, release) {
        (Some(id), _) => (format!("/api/v1/apps/{app}/builds/{id}/log?follow={follow}"), format!("build {id}")),
        (None, Some(n)) => (format!("/api/v1/apps/{app}/releases/{n}/log?follow={follow}"), format!("release {n}")),
        (None, None) => (format!("/api/v1/apps/{app}/logs?follow={follow}&tail={tail}"), String::new()),
    };
    let started = std::time::Instant::now();
    let progress = follow && !json && std::io::stderr().is_terminal() && !what.is_empty();
    let mut stage = String::new();
    // Build and app output is anyone's text: on a terminal, only colours pass; other
    // escape sequences (clipboard writes, window titles) are shown, not obeyed.
    let terminal = std::io::stdout().is_terminal();
    let mut stdout = std::io::stdout().lock();
    let end = client
        .follow(&path, |line, record| {
            if json {
                let _ = writeln!(stdout, "{line}");
                return;
            }
            let record_stage = s(&record["stage"]);
            if progress && record_stage != stage && record_stage != "-" {
                eprintln!("\x1b[2m── {what}: {record_stage} ({:.1} s)\x1b[0m", started.elapsed().as_secs_f64());
                stage = record_stage;
            }
            let text = s(&record["text"]);
            let _ = writeln!(stdout, "{}", if terminal { terminal_safe(&text) } else { text });
        })
        .await?;
    drop(stdout);
    if json && !end.is_null() {
        println!("{}", serde_json::json!({ "end": end }));
    }
    let status = end["status"].as_str().unwrap_or("");
    if progress {
        eprintln!("── {what}: {status} after {:.1} s", started.elapsed().as_secs_f64());
    }
    if follow && matches!(status, "failed" | "rolled_back" | "interrupted") {
        return Err(Failure::new(exit::FAILED, format!("{what} of {app} {}", status.replace('_', " "))).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The commands the issues wrote are the contract: `--branch` is `--deploy-branch`, and
    /// the team verbs parse as written.
    #[test]
    fn the_written_commands_parse() {
        let args = Args::try_parse_from(["hoist", "apps", "create", "web1", "--branch", "prod"]).unwrap();
        let Command::Apps { command: AppsCommand::Create { deploy_branch, .. } } = args.command else { panic!() };
        assert_eq!(deploy_branch, "prod");
        for line in [
            "hoist users create alice",
            "hoist users list --json",
            "hoist access add web1 alice --role deployer",
            "hoist access remove web1 alice",
            "hoist access web1 --json",
            "hoist tokens create ci --app web1 --role deployer",
            "hoist tokens list --json",
            "hoist tokens revoke ci",
            "hoist audit --app web1 --json",
            "hoist login http://hoist.example:7070",
            "hoist keys add /home/alice/.ssh/id_ed25519.pub",
            "hoist keys add --user alice key.pub",
            "hoist logs web1 --build 3 -f",
            "hoist config set web1 A=b",
            "hoist git:remote web1 --ssh",
            "hoist ps:scale web1 web=3 worker=1",
            "hoist ps web1",
            "hoist ps:restart web1 web",
            "hoist run web1 -- python manage.py createsuperuser --noinput",
        ] {
            Args::try_parse_from(line.split_whitespace()).unwrap_or_else(|e| panic!("{line}: {e}"));
        }
    }

    /// clap merges arguments with the same id, so a subcommand argument named like a
    /// global one (`url`, `token`) silently becomes it: `hoist apps set-repo APP URL` once
    /// sent the admin token to the repo host. No subcommand may reuse a global's id.
    #[test]
    fn no_subcommand_argument_shadows_a_global_one() {
        let command = Args::command();
        let globals: Vec<String> =
            command.get_arguments().filter(|a| a.is_global_set()).map(|a| a.get_id().to_string()).collect();
        assert!(globals.contains(&"url".to_string()) && globals.contains(&"token".to_string()));
        let mut stack: Vec<(String, clap::Command)> =
            command.get_subcommands().map(|c| (c.get_name().to_string(), c.clone())).collect();
        while let Some((path, sub)) = stack.pop() {
            for argument in sub.get_arguments() {
                let id = argument.get_id().to_string();
                assert!(
                    !globals.contains(&id) || argument.is_global_set(),
                    "`hoist {path}` has an argument `{id}`, which clap merges with the global --{id}"
                );
            }
            stack.extend(sub.get_subcommands().map(|c| (format!("{path} {}", c.get_name()), c.clone())));
        }
    }

    #[test]
    fn config_values_come_from_arguments_stdin_or_a_file() {
        let vars = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let no_stdin = || -> std::io::Result<String> { panic!("stdin is not read") };
        assert_eq!(
            config_values(&vars(&["A=1", "B=x=y"]), None, no_stdin).unwrap(),
            [("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
        let pem = "-----BEGIN KEY-----\nabc\n-----END KEY-----\n".to_string();
        assert_eq!(config_values(&vars(&["KEY"]), Some(pem.clone()), no_stdin).unwrap(), [("KEY".into(), pem.clone())]);
        assert!(config_values(&vars(&["KEY=1"]), Some(pem.clone()), no_stdin).is_err());
        let from_stdin = config_values(&vars(&["A=1", "KEY=-"]), None, || Ok("s3cret\n".into())).unwrap();
        assert_eq!(from_stdin[1], ("KEY".into(), "s3cret".into()));
        assert!(config_values(&vars(&["A=-", "B=-"]), None, || Ok(String::new())).is_err(), "stdin is read once");
        assert!(config_values(&vars(&["A"]), None, no_stdin).is_err());
    }

    #[test]
    fn only_colours_reach_the_terminal() {
        assert_eq!(terminal_safe("\x1b[1;32mok\x1b[0m"), "\x1b[1;32mok\x1b[0m");
        assert_eq!(terminal_safe("\x1b]52;c;ZXZpbA==\x07x"), "\\x1b]52;c;ZXZpbA==\\x07x");
        assert_eq!(terminal_safe("\x1b]0;title\x1b\\"), "\\x1b]0;title\\x1b\\");
        assert_eq!(terminal_safe("a\tb\rc"), "a\tb\\x0dc");
        assert_eq!(terminal_safe("\x1b[2J"), "\\x1b[2J");
    }

    #[test]
    fn a_repo_url_never_becomes_hoistds_url() {
        let args = Args::try_parse_from(["hoist", "apps", "set-repo", "web1", "https://evil.example/x.git"]).unwrap();
        assert_eq!(args.url, None);
        let args = Args::try_parse_from([
            "hoist",
            "--url",
            "http://127.0.0.1:7070",
            "apps",
            "set-repo",
            "web1",
            "https://evil.example/x.git",
        ])
        .unwrap();
        assert_eq!(args.url.as_deref(), Some("http://127.0.0.1:7070"));
        let Command::Apps { command: AppsCommand::SetRepo { repo_url, .. } } = args.command else { panic!("set-repo") };
        assert_eq!(repo_url, "https://evil.example/x.git");
        let args = Args::try_parse_from(["hoist", "login", "http://10.0.0.1:7070"]).unwrap();
        assert!(matches!(args.command, Command::Login { address: Some(a) } if a == "http://10.0.0.1:7070"));
    }
}
