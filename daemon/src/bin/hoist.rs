//! hoist: the command line client of hoistd's API.
#![forbid(unsafe_code)]

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde_json::Value;

#[derive(Parser)]
#[command(version, about = "hoist: git push to deploy; this CLI manages apps on a hoistd")]
struct Args {
    /// hoistd's API address.
    #[arg(long, env = "HOIST_URL", default_value = "http://127.0.0.1:7070", global = true)]
    url: String,
    /// A CA certificate (PEM) to trust for hoistd's HTTPS, e.g. its self-signed one.
    #[arg(long, env = "HOIST_CA_CERT", global = true)]
    ca_cert: Option<std::path::PathBuf>,
    /// The admin token; by default read from $HOIST_DATA_DIR/admin-token.
    #[arg(long, env = "HOIST_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create, list, show or delete apps.
    Apps {
        #[command(subcommand)]
        command: AppsCommand,
    },
    /// An app's builds, newest first; or one build, or its log.
    Builds {
        app: String,
        #[command(subcommand)]
        command: Option<BuildsCommand>,
    },
    /// An app's releases, newest first: status, target revision, cause, config version.
    Releases { app: String },
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
    /// Removes images the retention policy lets go (it also runs after every rollout).
    Gc,
    /// Git remotes that push to hoistd without the token in the URL.
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
    /// The git credential helper `hoist remote add` sets up (git runs it; not for people).
    #[command(hide = true)]
    GitCredential { operation: String },
    /// An app's image stream: every tag with its history of digests.
    ImageStream { app: String },
    /// Images: `hoist images promote APP FROM TO` tags TO with what FROM points at.
    Images {
        #[command(subcommand)]
        command: ImagesCommand,
    },
}

#[derive(Subcommand)]
enum AppsCommand {
    Create {
        name: String,
        /// Pushes to this branch deploy.
        #[arg(long, default_value = "main")]
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
        url: String,
        /// A token for a private repo.
        #[arg(long, env = "HOIST_REPO_TOKEN", hide_env_values = true)]
        repo_token: Option<String>,
    },
    /// Sets the buildpack an app builds with; `--buildpack detect` goes back to detection.
    SetBuildpack {
        name: String,
        buildpack: String,
    },
    List,
    Show {
        name: String,
    },
    Delete {
        name: String,
    },
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Points tag TO of the app's image at what FROM points at; apps following TO roll out.
    Promote { app: String, from: String, to: String },
}

#[derive(Subcommand)]
enum RemoteCommand {
    /// In the git repo here: adds a remote for APP and makes git ask `hoist` for the
    /// token, which is kept in ~/.config/hoist/credentials (0600), never in a URL.
    Add {
        app: String,
        #[arg(long, default_value = "hoist")]
        name: String,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// `hoist config set APP NAME=value...`
    Set {
        app: String,
        #[arg(required = true)]
        vars: Vec<String>,
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
    Show { id: i64 },
    Log { id: i64 },
}

struct Client {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut request = self.http.request(method, format!("{}{path}", self.url)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response =
            request.send().await.with_context(|| format!("cannot reach hoistd at {}; is it running?", self.url))?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or(text);
            bail!("{message} (HTTP {})", status.as_u16());
        }
        Ok(response)
    }

    async fn json(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let response = self.call(method, path, body).await?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        Ok(response.json().await?)
    }
}

fn token(given: Option<String>) -> anyhow::Result<String> {
    if let Some(token) = given {
        return Ok(token);
    }
    let dir = std::env::var("HOIST_DATA_DIR").unwrap_or_else(|_| "/var/lib/hoist".to_string());
    let path = hoist::auth::admin_token_path(std::path::Path::new(&dir));
    let token = std::fs::read_to_string(&path)
        .with_context(|| format!("no token: pass --token, set HOIST_TOKEN, or make {} readable", path.display()))?;
    Ok(token.trim().to_string())
}

fn s(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn main() {
    hoist::install_tls_provider();
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime starts");
    if let Err(error) = runtime.block_on(run(args)) {
        // The message is for people: no backtrace, whatever RUST_BACKTRACE says.
        eprintln!("hoist: {error:#}");
        std::process::exit(1);
    }
}

/// `~/.config/hoist/credentials`: one `URL TOKEN` line per hoistd.
fn credentials_path() -> anyhow::Result<std::path::PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".config"),
    };
    Ok(base.join("hoist").join("credentials"))
}

fn save_credential(url: &str, token: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = credentials_path()?;
    std::fs::create_dir_all(path.parent().expect("a file in a folder"))?;
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let mut lines: Vec<String> =
        old.lines().filter(|l| l.split_whitespace().next() != Some(url)).map(String::from).collect();
    lines.push(format!("{url} {token}"));
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path)?;
    file.write_all((lines.join("\n") + "\n").as_bytes())?;
    Ok(())
}

/// git's credential protocol: on `get`, reads `key=value` lines and answers with the
/// token saved for that `protocol://host`, if any.
fn git_credential(operation: &str) -> anyhow::Result<()> {
    if operation != "get" {
        return Ok(());
    }
    let mut fields = std::collections::HashMap::new();
    for line in std::io::stdin().lines() {
        let line = line?;
        if line.is_empty() {
            break;
        }
        if let Some((key, value)) = line.split_once('=') {
            fields.insert(key.to_string(), value.to_string());
        }
    }
    let (Some(protocol), Some(host)) = (fields.get("protocol"), fields.get("host")) else { return Ok(()) };
    let url = format!("{protocol}://{host}");
    let saved = std::fs::read_to_string(credentials_path()?).unwrap_or_default();
    if let Some(token) = saved.lines().find_map(|l| l.strip_prefix(&format!("{url} "))) {
        println!("username=hoist\npassword={}", token.trim());
    }
    Ok(())
}

fn git(args: &[&str]) -> anyhow::Result<()> {
    let status = std::process::Command::new("git").args(args).status().context("cannot run git")?;
    if !status.success() {
        bail!("git {} failed", args.join(" "));
    }
    Ok(())
}

fn http_client(ca_cert: Option<&std::path::Path>) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder();
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("cannot read the CA certificate {}", path.display()))?;
        let certificate = reqwest::Certificate::from_pem(&pem).context("the CA certificate is not PEM")?;
        builder = builder.tls_certs_merge([certificate]);
    }
    Ok(builder.build()?)
}

async fn run(args: Args) -> anyhow::Result<()> {
    if let Command::GitCredential { operation } = &args.command {
        return git_credential(operation);
    }
    let client = Client {
        url: args.url.trim_end_matches('/').to_string(),
        token: token(args.token)?,
        http: http_client(args.ca_cert.as_deref())?,
    };
    use reqwest::Method;
    match args.command {
        Command::Apps { command: AppsCommand::SetBuildpack { name, buildpack } } => {
            let value = if buildpack == "detect" { Value::Null } else { Value::String(buildpack.clone()) };
            let body = serde_json::json!({ "buildpack": value });
            client.json(Method::PATCH, &format!("/api/v1/apps/{name}"), Some(body)).await?;
            println!("app {name} builds with: {buildpack}");
        }
        Command::Apps { command: AppsCommand::SetRepo { name, url, repo_token } } => {
            let url = if url == "none" { Value::Null } else { Value::String(url) };
            let mut body = serde_json::json!({ "repo": url });
            if let Some(token) = repo_token {
                body["repo_token"] = Value::String(token);
            }
            let app = client.json(Method::PATCH, &format!("/api/v1/apps/{name}"), Some(body)).await?;
            println!("app {name} builds webhooks' commits from: {}", s(&app["repo"]));
        }
        Command::Webhooks { app, rotate } => {
            let path = format!("/api/v1/apps/{app}/webhook");
            let shown = client.json(Method::GET, &path, None).await?;
            let url = format!("{}{}", client.url, s(&shown["path"]));
            if shown["secret_set"].as_bool() == Some(true) && !rotate {
                println!("payload URL:  {url}");
                println!("content type: application/json; events: push");
                println!("secret:       set (shown only when made; `hoist webhooks {app} --rotate` makes a new one)");
            } else {
                let made = client.json(Method::POST, &path, None).await?;
                println!("payload URL:  {url}");
                println!("content type: application/json; events: push");
                println!("secret:       {}   (shown this once)", s(&made["secret"]));
            }
            if shown["repo"].is_null() {
                println!(
                    "note: app {app} has no repo yet: hoist apps set-repo {app} https://git.example/you/{app}.git"
                );
            }
            println!("GitHub: a webhook with that secret; GitLab: the secret as the token; Gitea/Forgejo: the secret.");
        }
        Command::Apps {
            command: AppsCommand::Create { name, deploy_branch, buildpack, target, repo, repo_token, image },
        } => {
            let body = serde_json::json!({
                "name": name, "deploy_branch": deploy_branch, "buildpack": buildpack, "target": target,
                "repo": repo, "repo_token": repo_token, "image": image,
            });
            let app = client.json(Method::POST, "/api/v1/apps", Some(body)).await?;
            println!("created app {name} (target {})", s(&app["target"]));
            println!(
                "push to it:  git remote add hoist {}/git/{name}.git && git push hoist {deploy_branch}",
                client.url
            );
        }
        Command::Apps { command: AppsCommand::List } => {
            for app in client.json(Method::GET, "/api/v1/apps", None).await?.as_array().into_iter().flatten() {
                println!("{}\t(deploys {})", s(&app["name"]), s(&app["deploy_branch"]));
            }
        }
        Command::Apps { command: AppsCommand::Show { name } } => {
            let app = client.json(Method::GET, &format!("/api/v1/apps/{name}"), None).await?;
            println!("{}", serde_json::to_string_pretty(&app)?);
        }
        Command::Apps { command: AppsCommand::Delete { name } } => {
            client.json(Method::DELETE, &format!("/api/v1/apps/{name}"), None).await?;
            println!("deleted app {name}");
        }
        Command::Builds { app, command: None } => {
            println!("ID\tSTATUS\tBUILDPACK\tCOMMIT\tCREATED");
            for build in client
                .json(Method::GET, &format!("/api/v1/apps/{app}/builds"), None)
                .await?
                .as_array()
                .into_iter()
                .flatten()
            {
                let commit = s(&build["commit"]);
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    s(&build["id"]),
                    s(&build["status"]),
                    s(&build["buildpack"]),
                    &commit[..commit.len().min(12)],
                    s(&build["created_at"])
                );
            }
        }
        Command::Builds { app, command: Some(BuildsCommand::Show { id }) } => {
            let build = client.json(Method::GET, &format!("/api/v1/apps/{app}/builds/{id}"), None).await?;
            println!("{}", serde_json::to_string_pretty(&build)?);
        }
        Command::Builds { app, command: Some(BuildsCommand::Log { id }) } => {
            let text =
                client.call(Method::GET, &format!("/api/v1/apps/{app}/builds/{id}/log"), None).await?.text().await?;
            print!("{text}");
        }
        Command::Releases { app } => {
            println!("RELEASE\tSTATUS\tTARGET\tREVISION\tCONFIG\tCAUSE\tIMAGE\tCREATED");
            for release in client
                .json(Method::GET, &format!("/api/v1/apps/{app}/releases"), None)
                .await?
                .as_array()
                .into_iter()
                .flatten()
            {
                let image = s(&release["image"]);
                let digest = image.rsplit_once('@').map_or(image.as_str(), |(_, d)| d);
                println!(
                    "{}\t{}\t{}\t{}\tv{}\t{}\t{}\t{}",
                    s(&release["number"]),
                    s(&release["status"]),
                    s(&release["target"]),
                    s(&release["revision"]),
                    s(&release["config_version"]),
                    s(&release["cause"]),
                    &digest[..digest.len().min(19)],
                    s(&release["created_at"])
                );
                if let Some(error) = release["error"].as_str() {
                    println!("\t  reason: {error}");
                }
            }
        }
        Command::Config { app: Some(app), command: None } => {
            let config = client.json(Method::GET, &format!("/api/v1/apps/{app}/config"), None).await?;
            println!("# {app} config v{}", s(&config["version"]));
            for (name, value) in config["vars"].as_object().into_iter().flatten() {
                println!("{name}={}", s(value));
            }
        }
        Command::Config { app: None, command: None } => bail!("name the app: hoist config APP"),
        Command::Config { app: _, command: Some(change) } => {
            let mut body = serde_json::Map::new();
            let app = match &change {
                ConfigCommand::Set { app, .. } | ConfigCommand::Unset { app, .. } => app.clone(),
            };
            match change {
                ConfigCommand::Set { vars, .. } => {
                    for var in vars {
                        let Some((name, value)) = var.split_once('=') else {
                            bail!("{var:?} is not NAME=value");
                        };
                        body.insert(name.to_string(), Value::String(value.to_string()));
                    }
                }
                ConfigCommand::Unset { names, .. } => {
                    for name in names {
                        body.insert(name, Value::Null);
                    }
                }
            }
            let changed =
                client.json(Method::PATCH, &format!("/api/v1/apps/{app}/config"), Some(Value::Object(body))).await?;
            match changed["release"]["number"].as_i64() {
                Some(number) => println!("config v{}: release {number} of {app} is live", s(&changed["version"])),
                None => println!("config v{}: {}", s(&changed["version"]), s(&changed["message"])),
            }
        }
        Command::GitCredential { .. } => unreachable!("handled before the client is made"),
        Command::Images { command: ImagesCommand::Promote { app, from, to } } => {
            let body = serde_json::json!({ "from": from, "to": to });
            let made =
                client.json(Method::POST, &format!("/api/v1/apps/{app}/image-stream/promote"), Some(body)).await?;
            println!("{}:{to} is now {} (from :{from})", s(&made["repository"]), s(&made["digest"]));
        }
        Command::Remote { command: RemoteCommand::Add { app, name } } => {
            client.json(Method::GET, &format!("/api/v1/apps/{app}"), None).await?;
            let base = reqwest::Url::parse(&client.url).context("--url is not a URL")?;
            let origin = base.origin().ascii_serialization();
            save_credential(&origin, &client.token)?;
            let helper = format!("!'{}' git-credential", std::env::current_exe()?.display());
            git(&["remote", "add", &name, &format!("{}/git/{app}.git", client.url)])?;
            git(&["config", "--local", &format!("credential.{origin}.helper"), &helper])?;
            println!("remote {name} pushes to app {app}: git push {name} main");
            println!("(the token is in {}, not in the remote's URL)", credentials_path()?.display());
        }
        Command::Gc => {
            let gc = client.json(Method::POST, "/api/v1/gc", None).await?;
            let freed = &gc["freed"];
            println!(
                "removed {} images ({} MB) and {} registry manifests; each app keeps its last {} releases",
                s(&freed["images"]),
                freed["image_bytes"].as_u64().unwrap_or(0) / 1_000_000,
                s(&freed["manifests"]),
                s(&gc["keep_releases"])
            );
        }
        Command::Rollback { app, release } => {
            let body = serde_json::json!({ "release": release });
            let made = client.json(Method::POST, &format!("/api/v1/apps/{app}/rollback"), Some(body)).await?;
            println!("release {} of {app} is live, running release {release}'s image and config", s(&made["number"]));
        }
        Command::ImageStream { app } => {
            let stream = client.json(Method::GET, &format!("/api/v1/apps/{app}/image-stream"), None).await?;
            for (tag, history) in stream["tags"].as_object().into_iter().flatten() {
                println!("{tag}:");
                for entry in history.as_array().into_iter().flatten() {
                    println!(
                        "  {}\t{}\tbuild {}\t{}",
                        s(&entry["digest"]),
                        s(&entry["source"]),
                        s(&entry["build_id"]),
                        s(&entry["created_at"])
                    );
                }
            }
        }
    }
    Ok(())
}
