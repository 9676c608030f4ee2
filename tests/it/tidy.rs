//! ARCHITECTURE.md's invariants that a grep can check, checked (as rust-analyzer's tidy
//! test does): break one and this fails, naming the file and the invariant.

use hoist_tests::repo_root;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `daemon/src`, as (path relative to it, text).
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = repo_root().join("daemon/src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path.strip_prefix(&root).unwrap().to_string_lossy().into_owned(), text)
        })
        .collect()
}

/// The text without its `#[cfg(test)] mod tests` (tests may use anything).
fn production(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    }
}

/// Files whose production code contains `needle`, minus `allowed`; and every entry of
/// `allowed` that does not use `needle` at all (an allow-list must not outlive its reason).
fn offenders(needle: &str, allowed: &[&str]) -> Vec<String> {
    let sources = sources();
    let uses = |path: &str, entry: &str| path == entry || path.starts_with(entry);
    let mut found: Vec<String> = sources
        .iter()
        .filter(|(path, text)| production(text).contains(needle) && !allowed.iter().any(|a| uses(path, a)))
        .map(|(path, _)| path.clone())
        .collect();
    for entry in allowed {
        if !sources.iter().any(|(path, text)| uses(path, entry) && production(text).contains(needle)) {
            found.push(format!("{entry} (allowed, but it does not use {needle:?}: drop it from the list)"));
        }
    }
    found
}

fn check(invariant: &str, found: Vec<String>) -> Option<String> {
    (!found.is_empty()).then(|| format!("{invariant}\n    broken in: {}", found.join(", ")))
}

#[test]
fn architecture_invariants_hold() {
    let mut broken: Vec<Option<String>> = Vec::new();
    broken.push(check(
        "config.rs is the only place that reads the environment for settings (receive.rs reads git's and the hook's; the CLI its own)",
        [
            offenders("env::var(", &["config.rs", "receive.rs", "proptests.rs"]),
            offenders("env::var_os(", &["receive.rs"]),
        ]
        .concat(),
    ));
    broken.push(check(
        "receive.rs is the only module that runs git or uses git2",
        [offenders("Command::new(\"git\")", &["receive.rs"]), offenders("git2::", &["receive.rs"])].concat(),
    ));
    broken.push(check(
        "only target/kubernetes.rs runs helm or talks to Kubernetes",
        offenders("kube::", &["target/kubernetes.rs"]),
    ));
    broken.push(check(
        "HTTP status codes only in the HTTP front ends: api, router, and receive's git CGI bridge, and in registry.rs, the client that reads the registry's answers",
        offenders("StatusCode", &["api.rs", "router.rs", "receive.rs", "registry.rs"]),
    ));
    broken.push(check(
        "the store knows rows, not Docker, git or HTTP",
        ["bollard", "git2", "axum", "reqwest", "hyper", "kube"]
            .iter()
            .flat_map(|crate_name| offenders(&format!("{crate_name}::"), &[]).into_iter().filter(|p| p == "store.rs"))
            .collect(),
    ));
    broken.push(check(
        "runtime_version is pure: no disk, network or Docker",
        ["std::fs", "tokio::", "bollard", "reqwest"]
            .iter()
            .flat_map(|needle| offenders(needle, &[]).into_iter().filter(|p| p == "runtime_version.rs"))
            .collect(),
    ));
    broken.push(check(
        "detection (buildpack.rs) never touches Docker",
        offenders("bollard", &[]).into_iter().filter(|p| p == "buildpack.rs").collect(),
    ));
    broken.push(check(
        "a target never writes a release's status (only rollout does)",
        ["make_release_live", "fail_release", "set_build_status", "Store"]
            .iter()
            .flat_map(|needle| offenders(needle, &[]).into_iter().filter(|p| p.starts_with("target")))
            .collect(),
    ));
    broken.push(check(
        "only api and wire know JSON wire shapes: no serde_json::json! elsewhere in hoistd's handlers' reach",
        offenders("json!(", &["api.rs", "api/", "target/kubernetes.rs"]),
    ));
    broken.push(check(
        "pipeline and rollout return typed errors, not strings",
        sources()
            .into_iter()
            .filter(|(path, text)| {
                (path == "pipeline.rs" || path == "rollout.rs")
                    && production(text)
                        .lines()
                        .any(|l| l.contains("-> Result<") && (l.contains(", String>") || l.contains("&'static str>")))
            })
            .map(|(path, _)| path)
            .collect(),
    ));
    broken.push(check(
        "a store write is never dropped silently (`let _ = …store.`)",
        sources()
            .into_iter()
            .filter(|(_, text)| {
                production(text).lines().any(|l| l.trim_start().starts_with("let _ =") && l.contains("store."))
            })
            .map(|(path, _)| path)
            .collect(),
    ));
    broken.push(check(
        "an app name read from the store is an AppName, never re-parsed with a silent `if let Ok`",
        sources()
            .into_iter()
            .filter(|(_, text)| {
                production(text).lines().any(|l| l.contains("if let Ok") && l.contains("AppName::parse"))
            })
            .map(|(path, _)| path)
            .collect(),
    ));
    broken.push(check(
        "the API's handlers make no store call: they call the apps service",
        [offenders(".store.", &[]), offenders("Store", &[])]
            .concat()
            .into_iter()
            .filter(|p| p == "api.rs" || p.starts_with("api/"))
            .collect(),
    ));
    broken.push(check(
        "the apps service knows no HTTP status codes or axum routing",
        ["StatusCode", "axum::routing", "IntoResponse"]
            .iter()
            .flat_map(|needle| offenders(needle, &[]).into_iter().filter(|p| p == "apps.rs"))
            .collect(),
    ));
    broken.push(check(
        "every listener is served by listener::serve (connection cap, header and handshake deadlines)",
        [offenders("axum::serve(", &[]), offenders("serve_connection", &["listener.rs"])].concat(),
    ));
    broken.push(check(
        "outside_url is pure: no disk, Docker, git or HTTP client",
        ["std::fs", "bollard", "reqwest", "git2", "Command::new"]
            .iter()
            .flat_map(|needle| offenders(needle, &[]).into_iter().filter(|p| p == "outside_url.rs"))
            .collect(),
    ));
    broken.push(check(
        "every repo URL and followed image an app is given passes outside_url before it is saved",
        ["outside_url::check_repo_url", "outside_url::check_image", "outside_url::check_resolved"]
            .iter()
            .filter(|needle| {
                !sources().iter().any(|(path, text)| path == "apps.rs" && production(text).contains(*needle))
            })
            .map(|needle| format!("apps.rs does not call {needle}"))
            .collect(),
    ));
    broken.push(check(
        "every module says what it is for (`//!` first)",
        sources().into_iter().filter(|(_, text)| !text.trim_start().starts_with("//!")).map(|(path, _)| path).collect(),
    ));
    broken.push(check(
        "no unsafe code: lib.rs and each binary forbid it",
        ["daemon/src/lib.rs", "daemon/src/bin/hoistd.rs", "cli/src/main.rs", "wire/src/lib.rs"]
            .iter()
            .filter(|path| {
                !std::fs::read_to_string(repo_root().join(path)).unwrap().contains("#![forbid(unsafe_code)]")
            })
            .map(|p| p.to_string())
            .collect(),
    ));
    // Every source path ARCHITECTURE.md names exists.
    let architecture = std::fs::read_to_string(repo_root().join("ARCHITECTURE.md")).unwrap();
    let missing: Vec<String> = architecture
        .split('`')
        .filter(|word| {
            (word.starts_with("daemon/") || word.starts_with("tests/") || word.starts_with("deploy/"))
                && !word.contains(' ')
                && !word.contains('<')
                && !word.contains('*')
        })
        .filter(|path| !repo_root().join(path).exists())
        .map(str::to_string)
        .collect();
    broken.push(check("every path ARCHITECTURE.md names exists", missing));
    // Every module has a section in ARCHITECTURE.md.
    let unmapped: Vec<String> = sources()
        .into_iter()
        .map(|(path, _)| path)
        .filter(|path| !path.starts_with("bin/") && path != "lib.rs")
        .filter(|path| {
            let module = path.split('/').next().unwrap();
            let folder = module.trim_end_matches(".rs");
            !architecture.contains(&format!("daemon/src/{path}"))
                && !architecture.contains(&format!("daemon/src/{folder}/"))
                && !architecture.contains(&format!("daemon/src/{module}"))
        })
        .collect();
    broken.push(check("every module has its section in ARCHITECTURE.md", unmapped));

    let broken: Vec<String> = broken.into_iter().flatten().collect();
    assert!(broken.is_empty(), "ARCHITECTURE.md invariants broken:\n{}", broken.join("\n"));
}

/// The CLI is a thin client: `cargo tree` of its package shows none of the daemon's
/// heavy crates (it once linked bollard, kube, git2 and SQLite to use three items).
#[test]
fn the_cli_builds_without_the_daemons_crates() {
    let tree = std::process::Command::new(env!("CARGO"))
        .args(["tree", "--locked", "--offline", "-p", "hoist-cli", "-e", "normal,build", "--prefix", "none"])
        .current_dir(repo_root())
        .output()
        .expect("cargo runs");
    assert!(tree.status.success(), "cargo tree: {}", String::from_utf8_lossy(&tree.stderr));
    let text = String::from_utf8_lossy(&tree.stdout);
    let crates: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(crates.contains(&"hoist-wire") && crates.contains(&"reqwest"), "{text}");
    let heavy: Vec<&str> =
        ["hoist", "bollard", "kube", "kube-client", "git2", "libgit2-sys", "rusqlite", "oci-client", "k8s-openapi"]
            .into_iter()
            .filter(|heavy| crates.contains(heavy))
            .collect();
    assert!(heavy.is_empty(), "the CLI depends on {heavy:?}");
}
