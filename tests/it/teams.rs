//! Teams: users, roles, scoped tokens, git push over SSH with OpenSSH's client, and the
//! audit log, against a live hoistd with real git.

use hoist_tests::{show, wait_for, Hoistd, WorkTree};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// A new SSH key pair made by `ssh-keygen`: the private key's path.
fn ssh_key(hoistd: &Hoistd, name: &str) -> PathBuf {
    let path = hoistd.dir.join(format!("key-{name}"));
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", &format!("{name}@laptop"), "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", show(&made));
    path
}

/// The `ssh` command git runs for a remote: this key only, no agent, hoistd's host key
/// accepted on first use into a known_hosts of the test's own.
fn ssh_command(hoistd: &Hoistd, key: &Path) -> String {
    format!(
        "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes \
         -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={} -o ConnectTimeout=10",
        key.display(),
        hoistd.dir.join("known_hosts").display()
    )
}

fn ssh_remote(hoistd: &Hoistd, app: &str) -> String {
    format!("ssh://git@127.0.0.1:{}/{app}.git", hoistd.ssh_port)
}

/// `git push` over SSH with `key`.
fn push_over_ssh(site: &WorkTree, hoistd: &Hoistd, key: &Path, app: &str) -> Output {
    Command::new("git")
        .args(["push", &ssh_remote(hoistd, app), "main"])
        .current_dir(&site.dir)
        .env("GIT_SSH_COMMAND", ssh_command(hoistd, key))
        .output()
        .unwrap()
}

/// Runs `ssh` itself against hoistd with `key` and extra arguments.
fn ssh(hoistd: &Hoistd, key: &Path, args: &[&str]) -> Output {
    let command = ssh_command(hoistd, key);
    let mut words = command.split_whitespace();
    Command::new(words.next().unwrap())
        .args(words)
        .args(["-p", &hoistd.ssh_port.to_string(), "git@127.0.0.1"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// The token a `hoist users create` or `hoist tokens create` printed (its last line).
fn printed_token(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let token = stdout.lines().last().unwrap_or("").trim().to_string();
    assert!(token.starts_with("hoist_"), "{}", show(output));
    token
}

fn http_remote(hoistd: &Hoistd, token: &str, app: &str) -> String {
    format!("http://alice:{token}@127.0.0.1:{}/git/{app}.git", hoistd.api_port)
}

fn builds(hoistd: &Hoistd, app: &str) -> usize {
    hoistd.get_json(&format!("/api/v1/apps/{app}/builds")).as_array().unwrap().len()
}

/// Every file under `dir`, read whole (the database with its WAL, logs, repos, keys).
fn any_file_contains(dir: &Path, needle: &[u8]) -> Option<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                if let Ok(bytes) = std::fs::read(&path) {
                    if bytes.windows(needle.len()).any(|w| w == needle) {
                        return Some(path);
                    }
                }
            }
        }
    }
    None
}

#[test]
fn a_team_shares_hoistd_with_roles_scoped_tokens_ssh_keys_and_an_audit_log() {
    let hoistd = Hoistd::start(&[]);
    assert!(hoistd.ssh_port > 0, "hoistd writes the SSH port it got to data/listening");
    hoistd.create_app("web1");
    hoistd.create_app("web2");

    // The operator makes users and grants roles.
    let alice = printed_token(&hoistd.cli(&["users", "create", "alice"]));
    let bob = printed_token(&hoistd.cli(&["users", "create", "bob"]));
    hoistd.cli(&["access", "add", "web1", "alice", "--role", "deployer"]);
    hoistd.cli(&["access", "add", "web1", "bob", "--role", "viewer"]);
    let users: Value = serde_json::from_slice(&hoistd.cli(&["users", "list", "--json"]).stdout).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 2, "{users}");
    let access: Value = serde_json::from_slice(&hoistd.cli(&["access", "web1", "--json"]).stdout).unwrap();
    assert_eq!(access["users"]["alice"], "deployer", "{access}");
    assert_eq!(access["users"]["bob"], "viewer", "{access}");

    // alice logs in with her own token and adds her key.
    let home = hoistd.dir.join("alice-home");
    std::fs::create_dir_all(&home).unwrap();
    let login = Command::new(hoist_tests::binary("hoist"))
        .args(["login", &hoistd.api_url(), "--token", &alice])
        .env("HOME", &home)
        .env_remove("HOIST_TOKEN")
        .output()
        .unwrap();
    assert!(login.status.success() && text(&login).contains("as alice"), "{}", show(&login));
    let key = ssh_key(&hoistd, "alice");
    let added = hoistd.cli_as(&alice, &["keys", "add", &format!("{}.pub", key.display())]);
    assert!(added.status.success(), "{}", show(&added));

    // alice, deployer of web1, pushes it over SSH: the same remote: lines as over HTTP.
    let site = WorkTree::new(&hoistd, "web1", Some("static-site"));
    site.write("index.html", "<h1>over ssh</h1>\n").commit("one");
    let push = push_over_ssh(&site, &hoistd, &key, "web1");
    assert!(push.status.success(), "{}\n{}", show(&push), hoistd.log_tail(40));
    let said = text(&push);
    assert!(said.contains("remote: -----> ") && said.contains("is live"), "{said}");
    assert!(hoistd.visit("web1", "/").1.contains("over ssh"));

    // ... and over HTTP with her token.
    site.write("index.html", "<h1>over http</h1>\n").commit("two");
    let push = site.push(&http_remote(&hoistd, &alice, "web1"), "main");
    assert!(push.status.success(), "{}", show(&push));
    assert!(hoistd.visit("web1", "/").1.contains("over http"));

    // Her push to web2 is refused before any build, naming the role she lacks.
    let other = WorkTree::new(&hoistd, "web2", Some("static-site"));
    other.commit("one");
    for push in
        [push_over_ssh(&other, &hoistd, &key, "web2"), other.push(&http_remote(&hoistd, &alice, "web2"), "main")]
    {
        assert!(!push.status.success(), "{}", show(&push));
        assert!(text(&push).contains("needs the deployer role on web2"), "{}", show(&push));
    }
    assert_eq!(builds(&hoistd, "web2"), 0, "a refused push builds nothing");

    // bob, a viewer, reads logs but cannot push or set config.
    let logs = hoistd.cli_as(&bob, &["logs", "web1", "--build", "1"]);
    assert!(logs.status.success() && text(&logs).contains("is live"), "{}", show(&logs));
    let set = hoistd.cli_as(&bob, &["config", "set", "web1", "A=b"]);
    assert_eq!(set.status.code(), Some(6), "{}", show(&set));
    assert!(text(&set).contains("needs the deployer role"), "{}", show(&set));
    let push = site.push(&format!("http://bob:{bob}@127.0.0.1:{}/git/web1.git", hoistd.api_port), "main");
    assert!(!push.status.success() && text(&push).contains("deployer"), "{}", show(&push));
    let apps: Value = serde_json::from_slice(&hoistd.cli_as(&bob, &["apps", "list", "--json"]).stdout).unwrap();
    let names: Vec<&str> = apps.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["web1"], "bob sees only the app he has a role on");
    assert_eq!(apps[0]["role"], "viewer");

    // A CI token: this app, this role; it cannot reach web2; revoked, it answers 401.
    let ci = printed_token(&hoistd.cli(&["tokens", "create", "ci", "--app", "web1", "--role", "deployer"]));
    let listed = hoistd.cli(&["tokens", "list", "--json"]);
    let tokens: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert!(
        tokens.as_array().unwrap().iter().any(|t| t["name"] == "ci" && t["scope"] == "web1 (deployer)"),
        "{tokens}"
    );
    assert!(!text(&listed).contains(&ci), "a token is never shown again");
    let apps = hoistd.cli_as(&ci, &["apps", "list", "--json"]);
    let apps: Value = serde_json::from_slice(&apps.stdout).unwrap();
    assert_eq!(apps.as_array().unwrap().len(), 1, "{apps}");
    let (status, body) = hoistd.call_as(Some(&ci), "GET", "/api/v1/apps/web2", None);
    assert_eq!(status, 403, "{body}");
    let set = hoistd.cli_as(&ci, &["config", "set", "web1", "FROM_CI=1"]);
    assert!(set.status.success(), "{}", show(&set));
    hoistd.cli(&["tokens", "revoke", "ci"]);
    let after = hoistd.cli_as(&ci, &["apps", "list"]);
    assert_eq!(after.status.code(), Some(4), "{}", show(&after));

    // A user's own token limited to one app and a lower role: it does no more than that,
    // and it cannot touch its user's other tokens. A role above hers cannot be asked for.
    let higher = hoistd.cli_as(&alice, &["tokens", "create", "too-much", "--app", "web1", "--role", "owner"]);
    assert_eq!(higher.status.code(), Some(6), "{}", show(&higher));
    let laptop =
        printed_token(&hoistd.cli_as(&alice, &["tokens", "create", "laptop", "--app", "web1", "--role", "viewer"]));
    let set = hoistd.cli_as(&laptop, &["config", "set", "web1", "X=1"]);
    assert_eq!(set.status.code(), Some(6), "a viewer-scoped token of a deployer is a viewer\n{}", show(&set));
    let revoke = hoistd.cli_as(&laptop, &["tokens", "revoke", "default"]);
    assert_eq!(revoke.status.code(), Some(6), "{}", show(&revoke));
    assert!(hoistd.cli_as(&alice, &["apps", "list"]).status.success(), "her own token still works");

    // An unknown key gets nothing; so does anything but git for an app.
    let stranger = ssh_key(&hoistd, "stranger");
    let push = push_over_ssh(&site, &hoistd, &stranger, "web1");
    assert!(!push.status.success() && text(&push).contains("Permission denied"), "{}", show(&push));
    let shell = ssh(&hoistd, &key, &["-T"]);
    assert!(!shell.status.success() && text(&shell).contains("git over SSH only"), "{}", show(&shell));
    let exec = ssh(&hoistd, &key, &["ls", "/"]);
    assert!(!exec.status.success() && text(&exec).contains("is not one"), "{}", show(&exec));
    let outside = ssh(&hoistd, &key, &["git-receive-pack '/../../etc.git'"]);
    assert!(!outside.status.success() && text(&outside).contains("is not one"), "{}", show(&outside));
    let forward = ssh(&hoistd, &key, &["-W", &format!("127.0.0.1:{}", hoistd.api_port)]);
    assert!(!forward.status.success(), "port forwarding is refused\n{}", show(&forward));

    // No issued token is stored anywhere in the data dir (database, WAL, logs, repos).
    for token in [&alice, &bob, &ci, &laptop] {
        let found = any_file_contains(&hoistd.dir.join("data"), token.as_bytes());
        assert_eq!(found, None, "a token is in the data dir");
    }

    // Every action above is in the audit log with the right actor.
    let audit: Value = serde_json::from_slice(&hoistd.cli(&["audit", "--json"]).stdout).unwrap();
    let entries = audit.as_array().unwrap();
    let has = |actor: &str, action: &str, detail: &str| {
        entries.iter().any(|e| {
            e["actor"].as_str().unwrap_or("").starts_with(actor)
                && e["action"] == action
                && e["detail"].as_str().unwrap_or("").contains(detail)
        })
    };
    for (actor, action, detail) in [
        ("admin", "app.create", ""),
        ("admin", "user.create", "alice"),
        ("admin", "access.add", "alice as deployer"),
        ("alice (token default)", "login", ""),
        ("alice (token default)", "key.add", "SHA256:"),
        ("alice (key SHA256:", "push", "build 1"),
        ("alice (token default)", "push", "build 2"),
        ("alice (key SHA256:", "refused", "pushing: needs deployer"),
        ("bob (token default)", "refused", "changing config: needs deployer"),
        ("admin", "token.create", "ci for web1 (deployer)"),
        ("token ci", "config.set", "FROM_CI"),
        ("admin", "token.revoke", "ci"),
    ] {
        assert!(has(actor, action, detail), "no {action} by {actor} ({detail}) in the audit log:\n{audit:#}");
    }
    assert!(entries.iter().all(|e| !e["detail"].as_str().unwrap_or("").contains("=1")), "config values stay out");
    let alices: Value = serde_json::from_slice(&hoistd.cli_as(&alice, &["audit", "--app", "web1", "--json"]).stdout)
        .unwrap_or(Value::Null);
    assert!(alices.is_null(), "a deployer does not read the audit log (an owner does)");
}

#[test]
fn an_old_data_dir_upgrades_in_place_and_the_admin_token_can_be_rotated() {
    let mut hoistd = Hoistd::start(&[]);
    hoistd.create_app("keep");
    let site = WorkTree::new(&hoistd, "keep", Some("static-site"));
    site.commit("one");
    assert!(site.push(&hoistd.remote("keep"), "main").status.success());
    hoistd.kill9();
    // The data dir as the hoistd before teams left it: no teams tables, no token key,
    // no SSH host key.
    let db = rusqlite::Connection::open(hoistd.dir.join("data/hoist.db")).unwrap();
    db.execute_batch("DROP TABLE audit; DROP TABLE ssh_keys; DROP TABLE grants; DROP TABLE tokens; DROP TABLE users;")
        .unwrap();
    drop(db);
    for file in ["token-key", "ssh_host_ed25519_key"] {
        std::fs::remove_file(hoistd.dir.join("data").join(file)).unwrap();
    }
    hoistd.restart();
    assert!(hoistd.visit("keep", "/").1.contains("hoist"), "the app keeps serving");
    assert_eq!(builds(&hoistd, "keep"), 1, "its builds are kept");
    hoistd.cli(&["users", "create", "carol"]);

    // Rotating the admin token: the old one answers 401 at once, the new one works.
    let rotated = Command::new(hoist_tests::binary("hoistd"))
        .args(["admin-token", "--rotate"])
        .env("HOIST_DATA_DIR", hoistd.dir.join("data"))
        .output()
        .unwrap();
    assert!(rotated.status.success(), "{}", show(&rotated));
    let new = String::from_utf8_lossy(&rotated.stdout).lines().last().unwrap().trim().to_string();
    let (status, _) = hoistd.call("GET", "/api/v1/apps", None);
    assert_eq!(status, 401, "the old admin token stops working");
    let (status, body) = hoistd.call_as(Some(&new), "GET", "/api/v1/apps", None);
    assert_eq!(status, 200, "{body}");
    hoistd.token = new;
    wait_for("hoistd to answer with the new token", Duration::from_secs(5), || {
        (hoistd.call("GET", "/api/v1/users", None).0 == 200).then_some(())
    });
}
