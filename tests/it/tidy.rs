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

/// Files whose production code contains `needle`, minus `allowed`.
fn offenders(needle: &str, allowed: &[&str]) -> Vec<String> {
    sources()
        .into_iter()
        .filter(|(path, text)| {
            production(text).contains(needle) && !allowed.iter().any(|a| path == a || path.starts_with(a))
        })
        .map(|(path, _)| path)
        .collect()
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
            offenders("env::var(", &["config.rs", "receive.rs", "bin/hoist/", "proptests.rs"]),
            offenders("env::var_os(", &["config.rs", "receive.rs", "bin/hoist/"]),
        ]
        .concat(),
    ));
    broken.push(check(
        "receive.rs is the only module that runs git or uses git2",
        [offenders("Command::new(\"git\")", &["receive.rs", "bin/hoist/"]), offenders("git2::", &["receive.rs"])]
            .concat(),
    ));
    broken.push(check(
        "only target/kubernetes.rs runs helm or talks to Kubernetes",
        offenders("kube::", &["target/kubernetes.rs", "target.rs", "daemon.rs"]),
    ));
    broken.push(check(
        "HTTP status codes only in the HTTP front ends: api, router, and receive's git CGI bridge (and the CLI), and in registry.rs, the client that reads the registry's answers",
        offenders("StatusCode", &["api.rs", "api/", "router.rs", "receive.rs", "bin/hoist/", "registry.rs"]),
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
        offenders(
            "json!(",
            &["api.rs", "api/", "wire.rs", "bin/hoist/", "target/kubernetes.rs", "receive.rs", "webhook.rs"],
        ),
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
        ["lib.rs", "bin/hoistd.rs", "bin/hoist/main.rs"]
            .iter()
            .filter(|path| {
                !std::fs::read_to_string(repo_root().join("daemon/src").join(path))
                    .unwrap()
                    .contains("#![forbid(unsafe_code)]")
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
