//! The verbs that show what hoistd has (builds, releases, processes, config, images, the
//! registry) or ask one thing of it (promote, gc, rollback): one function each, a table
//! for people or `--json` for scripts.

use crate::client::Client;
use crate::{opt, pretty, short_digest, table};
use hoist_wire as wire;
use reqwest::Method;

pub async fn builds(client: &Client, app: &str, json: bool) -> anyhow::Result<()> {
    let builds: Vec<wire::Build> = client.typed(Method::GET, &format!("/api/v1/apps/{app}/builds"), None).await?;
    if json {
        return pretty(&builds);
    }
    let rows = builds
        .into_iter()
        .map(|b| {
            vec![
                b.id.to_string(),
                b.status,
                opt(&b.buildpack),
                b.commit.chars().take(12).collect(),
                b.created_at,
                b.error.unwrap_or_default(),
            ]
        })
        .collect();
    table(&["ID", "STATUS", "BUILDPACK", "COMMIT", "CREATED", "ERROR"], rows);
    Ok(())
}

pub async fn build(client: &Client, app: &str, id: i64) -> anyhow::Result<()> {
    let build: wire::Build = client.typed(Method::GET, &format!("/api/v1/apps/{app}/builds/{id}"), None).await?;
    pretty(&build)
}

pub async fn releases(client: &Client, app: &str, json: bool) -> anyhow::Result<()> {
    let releases: Vec<wire::Release> = client.typed(Method::GET, &format!("/api/v1/apps/{app}/releases"), None).await?;
    if json {
        return pretty(&releases);
    }
    let rows = releases
        .into_iter()
        .map(|r| {
            vec![
                r.number.to_string(),
                r.status,
                r.target,
                opt(&r.revision),
                format!("v{}", r.config_version),
                r.cause,
                short_digest(&r.image),
                r.created_at,
                r.error.map(|e| format!("reason: {e}")).unwrap_or_default(),
            ]
        })
        .collect();
    table(&["RELEASE", "STATUS", "TARGET", "REVISION", "CONFIG", "CAUSE", "IMAGE", "CREATED", ""], rows);
    Ok(())
}

pub async fn ps(client: &Client, app: &str, json: bool) -> anyhow::Result<()> {
    let info: wire::AppInfo = client.typed(Method::GET, &format!("/api/v1/apps/{app}"), None).await?;
    let processes: Vec<wire::Process> = client.typed(Method::GET, &format!("/api/v1/apps/{app}/ps"), None).await?;
    if json {
        return pretty(&processes);
    }
    match info.live_release {
        None => println!("{app} runs nothing yet: push to deploy it"),
        Some(release) => {
            println!(
                "=== {app}: release {} on {} since {} ({}; {})",
                release.number,
                release.target,
                release.finished_at.as_deref().unwrap_or(&release.created_at),
                release.cause,
                short_digest(&release.image)
            );
            if release.processes.is_empty() {
                println!("web: the image's own command");
            }
            for (kind, command) in &release.processes {
                println!("{kind}: {command}");
            }
            println!();
            for process in &processes {
                println!(
                    "{}.{}  {}  {}  restarts {}",
                    process.kind,
                    process.index,
                    process.state,
                    process.since.as_deref().map_or("-".to_string(), since),
                    process.restarts
                );
            }
        }
    }
    Ok(())
}

pub async fn config(client: &Client, app: &str, json: bool) -> anyhow::Result<()> {
    let config: wire::Config = client.typed(Method::GET, &format!("/api/v1/apps/{app}/config"), None).await?;
    if json {
        return pretty(&config);
    }
    println!("=== {app} config v{}", config.version);
    for (name, value) in &config.vars {
        println!("{name}={value}");
    }
    Ok(())
}

pub async fn images(client: &Client, app: &str, json: bool) -> anyhow::Result<()> {
    let stream: wire::ImageStream =
        client.typed(Method::GET, &format!("/api/v1/apps/{app}/image-stream"), None).await?;
    if json {
        return pretty(&stream);
    }
    for (tag, history) in &stream.tags {
        println!("{tag}:");
        for entry in history {
            println!("  {}\t{}\tbuild {}\t{}", entry.digest, entry.source, opt(&entry.build_id), entry.created_at);
        }
    }
    Ok(())
}

pub async fn promote(client: &Client, app: &str, from: String, to: String, json: bool) -> anyhow::Result<()> {
    let body = serde_json::to_value(wire::Promote { from: from.clone(), to: to.clone() })?;
    let made: wire::Promoted =
        client.typed(Method::POST, &format!("/api/v1/apps/{app}/image-stream/promote"), Some(body)).await?;
    if json {
        return pretty(&made);
    }
    println!("{}:{to} is now {} (from :{from})", made.repository, made.digest);
    Ok(())
}

pub async fn registry(client: &Client, json: bool) -> anyhow::Result<()> {
    let registry: wire::Registry = client.typed(Method::GET, "/api/v1/registry", None).await?;
    if json {
        return pretty(&serde_json::json!({ "address": registry.address, "username": registry.username }));
    }
    println!(
        "registry: {}\naccount:  {}",
        registry.address,
        registry.username.as_deref().unwrap_or("none (an external registry)")
    );
    Ok(())
}

pub async fn gc(client: &Client, json: bool) -> anyhow::Result<()> {
    let gc: wire::Gc = client.typed(Method::POST, "/api/v1/gc", None).await?;
    if json {
        return pretty(&gc);
    }
    let freed = &gc.freed;
    println!(
        "removed {} images ({} MB) and {} registry manifests; each app keeps its last {} releases",
        freed.images,
        freed.image_bytes / 1_000_000,
        freed.manifests,
        gc.keep_releases
    );
    Ok(())
}

/// `hoist rebase APP` (one app) or `hoist rebase --all` (`app` is `None`).
pub async fn rebase(client: &Client, app: Option<&str>, json: bool) -> anyhow::Result<()> {
    // The answer comes once every rollout has settled; a stack made again first (after a
    // refresh of its OS) takes a minute more: say what the wait is.
    eprintln!(
        "rebasing {} on the current run image of its stack; each rollout settles before the answer (a stack made from a refreshed OS image is made again first, about a minute)",
        app.map_or_else(|| "every app with a live release".to_string(), |app| app.to_string())
    );
    let answers: Vec<wire::Rebased> = match app {
        Some(app) => vec![client.typed(Method::POST, &format!("/api/v1/apps/{app}/rebase"), None).await?],
        None => client.typed(Method::POST, "/api/v1/rebase", None).await?,
    };
    if json {
        return pretty(&answers);
    }
    if answers.is_empty() {
        println!("no app has a live release; nothing to rebase");
    }
    for answer in &answers {
        let run = answer.run_image.as_deref().map(|d| d.trim_start_matches("sha256:")).unwrap_or("");
        match (&answer.release, &answer.message) {
            (Some(release), _) => println!(
                "{}: release {} is live on the current run image of stack {} (sha256:{}); its timeline: hoist logs {} --release {}",
                answer.app,
                release.number,
                answer.stack.as_deref().unwrap_or("?"),
                run.get(..12).unwrap_or(run),
                answer.app,
                release.number
            ),
            (None, Some(message)) => println!("{}: {message}", answer.app),
            (None, None) => println!("{}: nothing done", answer.app),
        }
    }
    if answers.iter().any(|a| a.error) {
        anyhow::bail!("some apps could not be rebased; their releases before keep serving");
    }
    Ok(())
}

pub async fn rollback(client: &Client, app: &str, release: i64, json: bool) -> anyhow::Result<()> {
    let body = serde_json::to_value(wire::Rollback { release })?;
    let made: wire::Release = client.typed(Method::POST, &format!("/api/v1/apps/{app}/rollback"), Some(body)).await?;
    if json {
        return pretty(&made);
    }
    println!("release {} of {app} is live, running release {release}'s image and config", made.number);
    Ok(())
}

/// `2026-12-03 10:00:00 (~ 5m ago)` of an RFC 3339 time.
fn since(time: &str) -> String {
    let shown = time.get(..19).unwrap_or(time).replace('T', " ");
    let ago =
        time.parse::<jiff::Timestamp>().ok().map(|t| jiff::Timestamp::now().duration_since(t).as_secs()).map(|secs| {
            match secs {
                s if s < 60 => format!("{s}s"),
                s if s < 3600 => format!("{}m", s / 60),
                s if s < 86400 => format!("{}h", s / 3600),
                s => format!("{}d", s / 86400),
            }
        });
    match ago {
        Some(ago) => format!("{shown} (~ {ago} ago)"),
        None => shown,
    }
}

/// `hoist ps:scale APP web=3 worker=1`.
pub async fn scale(client: &Client, app: &str, counts: &[String], json: bool) -> anyhow::Result<()> {
    let mut formation = wire::Formation::new();
    for count in counts {
        let parsed = count.split_once('=').and_then(|(kind, n)| Some((kind.to_string(), n.parse::<u32>().ok()?)));
        let Some((kind, n)) = parsed else {
            return Err(crate::client::Failure::new(
                crate::client::exit::USAGE,
                format!("{count:?} is not TYPE=N (e.g. web=3)"),
            )
            .into());
        };
        formation.insert(kind, n);
    }
    let body = serde_json::to_value(&formation)?;
    let made: wire::Release = client.typed(Method::POST, &format!("/api/v1/apps/{app}/formation"), Some(body)).await?;
    if json {
        return pretty(&made);
    }
    let shown: Vec<String> = formation.iter().map(|(k, n)| format!("{k}={n}")).collect();
    println!("{app} scaled to {}: release {} is live", shown.join(" "), made.number);
    Ok(())
}

/// `hoist ps:restart APP [TYPE]`.
pub async fn restart(client: &Client, app: &str, process: Option<String>, json: bool) -> anyhow::Result<()> {
    let body = serde_json::to_value(wire::Restart { process: process.clone() })?;
    let made: wire::Release = client.typed(Method::POST, &format!("/api/v1/apps/{app}/restart"), Some(body)).await?;
    if json {
        return pretty(&made);
    }
    match process.filter(|kind| kind != "web") {
        Some(kind) => println!("{app}: every {kind} process of release {} restarted", made.number),
        None => println!("{app} restarted: release {} is live", made.number),
    }
    Ok(())
}
