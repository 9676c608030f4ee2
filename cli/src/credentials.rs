//! Where the CLI keeps what `hoist login` saved: `~/.config/hoist/credentials` (one
//! `URL TOKEN` line per hoistd, 0600) and `~/.config/hoist/url` (the hoistd used when
//! none is named); and git's credential helper protocol, which reads the same file.

use anyhow::Context;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

pub fn config_dir() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".config"),
    };
    Ok(base.join("hoist"))
}

pub fn credentials_path() -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join("credentials"))
}

/// `scheme://host[:port]` of a URL: what credentials are saved under.
pub fn origin(url: &str) -> anyhow::Result<String> {
    let parsed =
        reqwest::Url::parse(url).with_context(|| format!("{url:?} is not a URL like http://127.0.0.1:7070"))?;
    Ok(parsed.origin().ascii_serialization())
}

fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(path.parent().expect("a file in a folder"))?;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// Saves `token` for the hoistd at `url` (replacing an older one).
pub fn save(url: &str, token: &str) -> anyhow::Result<()> {
    let origin = origin(url)?;
    let path = credentials_path()?;
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let mut lines: Vec<String> =
        old.lines().filter(|l| l.split_whitespace().next() != Some(origin.as_str())).map(String::from).collect();
    lines.push(format!("{origin} {token}"));
    write_private(&path, &(lines.join("\n") + "\n"))
}

/// The token saved for the hoistd at `url`.
pub fn token_for(url: &str) -> Option<String> {
    let origin = origin(url).ok()?;
    let saved = std::fs::read_to_string(credentials_path().ok()?).ok()?;
    saved.lines().find_map(|l| l.strip_prefix(&format!("{origin} ")).map(|t| t.trim().to_string()))
}

/// Forgets the token for `url`; true when there was one.
pub fn forget(url: &str) -> anyhow::Result<bool> {
    let origin = origin(url)?;
    let path = credentials_path()?;
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let kept: Vec<&str> = old.lines().filter(|l| l.split_whitespace().next() != Some(origin.as_str())).collect();
    let forgot = kept.len() != old.lines().count();
    write_private(&path, &kept.iter().map(|l| format!("{l}\n")).collect::<String>())?;
    if default_url().as_deref() == Some(url) {
        let _ = std::fs::remove_file(config_dir()?.join("url"));
    }
    Ok(forgot)
}

/// The hoistd `hoist login` named last.
pub fn default_url() -> Option<String> {
    let text = std::fs::read_to_string(config_dir().ok()?.join("url")).ok()?;
    Some(text.trim().to_string()).filter(|u| !u.is_empty())
}

pub fn set_default_url(url: &str) -> anyhow::Result<()> {
    write_private(&config_dir()?.join("url"), &format!("{url}\n"))
}

/// git's credential protocol: on `get`, reads `key=value` lines and answers with the
/// token saved for that `protocol://host`, if any.
pub fn git_credential(operation: &str) -> anyhow::Result<()> {
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
    if let Some(token) = token_for(&format!("{protocol}://{host}")) {
        println!("username=hoist\npassword={token}");
    }
    Ok(())
}
