//! Tokens, app names and the errors of the API.

use hoist_tests::{Hoistd, WorkTree};

#[test]
fn no_token_or_a_wrong_one_is_refused_and_nothing_is_stored() {
    let hoistd = Hoistd::start(&[]);
    let create = Some(r#"{"name":"web1"}"#);
    for token in [None, Some("wrong")] {
        let (status, body) = hoistd.call_as(token, "POST", "/api/v1/apps", create);
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("hoist login"), "says what to do: {body}");
        assert!(!body.contains(&hoistd.dir.display().to_string()), "names no path on the host: {body}");
        assert_eq!(hoistd.call_as(token, "GET", "/api/v1/apps", None).0, 401);
    }
    assert_eq!(hoistd.get_json("/api/v1/apps"), serde_json::json!([]), "nothing was created");

    hoistd.create_app("web1");
    let site = WorkTree::new(&hoistd, "web1", Some("static-site"));
    site.commit("first");
    let no_token = format!("http://127.0.0.1:{}/git/web1.git", hoistd.api_port);
    let wrong_token = format!("http://hoist:wrong@127.0.0.1:{}/git/web1.git", hoistd.api_port);
    for remote in [&no_token, &wrong_token] {
        let push = site.push(remote, "main");
        let stderr = String::from_utf8_lossy(&push.stderr);
        assert!(!push.status.success(), "{stderr}");
        assert!(stderr.contains("Authentication failed") || stderr.contains("401"), "{stderr}");
    }
    // Nothing reached the repo or the pipeline.
    let refs = site.git(&["ls-remote", &hoistd.remote("web1")]);
    assert!(refs.stdout.is_empty(), "{}", String::from_utf8_lossy(&refs.stdout));
    assert!(hoistd.get_json("/api/v1/apps/web1/builds").as_array().unwrap().is_empty());
}

#[test]
fn invalid_app_names_and_bodies_get_400_with_the_reason() {
    let hoistd = Hoistd::start(&[]);
    let long = "a".repeat(300);
    for name in ["../x", "A B", long.as_str(), "", "web_1"] {
        let body = serde_json::json!({ "name": name }).to_string();
        let (status, text) = hoistd.call("POST", "/api/v1/apps", Some(&body));
        assert_eq!(status, 400, "{name:?}: {text}");
        assert!(text.contains("invalid app name"), "{text}");
    }
    let (status, text) = hoistd.call("POST", "/api/v1/apps", Some("{not json"));
    assert_eq!(status, 400, "{text}");
    let (status, text) = hoistd.call("POST", "/api/v1/apps", Some(r#"{"name":"ok","deploy_branch":"a..b"}"#));
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("invalid deploy branch"), "{text}");
    assert_eq!(hoistd.get_json("/api/v1/apps"), serde_json::json!([]));

    // The plain curl of the README (its -d sends a form content type) creates an app.
    let curl = std::process::Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-X", "POST", "-H", &format!("Authorization: Bearer {}", hoistd.token)])
        .arg(format!("{}/api/v1/apps", hoistd.api_url()))
        .args(["-d", r#"{"name":"web1"}"#])
        .output()
        .unwrap();
    let curl = String::from_utf8_lossy(&curl.stdout);
    assert!(curl.ends_with("\n201"), "{curl}");
    let (status, text) = hoistd.call("POST", "/api/v1/apps", Some(r#"{"name":"web1"}"#));
    assert_eq!(status, 409, "{text}");
    let (status, text) = hoistd.get("/api/v1/apps/nope");
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("hoist apps create nope"), "{text}");
    assert_eq!(hoistd.get("/api/v1/apps/web1/builds/99").0, 404);

    // A push to an app that does not exist is refused and creates nothing.
    let site = WorkTree::new(&hoistd, "ghost", Some("static-site"));
    site.commit("first");
    let push = site.push(&hoistd.remote("ghost"), "main");
    assert!(!push.status.success());
    assert_eq!(hoistd.get("/api/v1/apps/ghost").0, 404);

    assert_eq!(hoistd.call("DELETE", "/api/v1/apps/web1", None).0, 204);
    assert_eq!(hoistd.get("/api/v1/apps/web1").0, 404);
}

#[test]
fn hoist_remote_add_pushes_without_the_token_in_any_url() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("cred");
    let site = hoist_tests::WorkTree::new(&hoistd, "cred", Some("static-site"));
    site.commit("first");
    let home = hoistd.dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let add = std::process::Command::new(hoist_tests::binary("hoist"))
        .args(["remote", "add", "cred"])
        .current_dir(&site.dir)
        .env("HOME", &home)
        .env("HOIST_URL", hoistd.api_url())
        .env("HOIST_TOKEN", &hoistd.token)
        .output()
        .unwrap();
    assert!(add.status.success(), "{}", hoist_tests::show(&add));
    let config = std::fs::read_to_string(site.dir.join(".git/config")).unwrap();
    assert!(!config.contains(&hoistd.token), "the token is not in the repo's config:\n{config}");
    use std::os::unix::fs::PermissionsExt;
    let saved = std::fs::metadata(home.join(".config/hoist/credentials")).unwrap();
    assert_eq!(saved.permissions().mode() & 0o777, 0o600);

    // No HOIST_TOKEN now: git asks the helper, which answers from the credentials file.
    let push = std::process::Command::new("git")
        .args(["push", "hoist", "main"])
        .current_dir(&site.dir)
        .env("HOME", &home)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("HOIST_TOKEN")
        .output()
        .unwrap();
    assert!(push.status.success(), "{}", hoist_tests::show(&push));
    assert!(hoistd.visit("cred", "/").1.contains("Hello from hoist"));
}

#[test]
fn every_api_error_is_json_with_a_message() {
    let hoistd = Hoistd::start(&[]);
    for (method, path, body) in
        [("GET", "/api/v1/nope", None), ("DELETE", "/api/v1/apps", None), ("POST", "/internal/v1/receive", Some("{}"))]
    {
        let (status, text) = hoistd.call(method, path, body);
        assert!(status >= 400, "{method} {path}: {status} {text}");
        let json: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path} answered {status} {text:?}"));
        assert!(json["error"].as_str().is_some_and(|m| !m.is_empty()), "{text}");
    }
    let (_, text) = hoistd.call("POST", "/internal/v1/receive", Some("{}"));
    assert!(text.contains("only hoistd's own git hook"), "{text}");
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(3 * 1024 * 1024));
    let (status, text) = hoistd.call("POST", "/api/v1/apps", Some(&big));
    assert_eq!(status, 413, "{text}");
    assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok(), "{text}");
}

#[test]
fn with_a_certificate_the_api_and_git_speak_https_and_the_hook_still_works() {
    let dir = std::env::temp_dir().join(format!("hoist-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", hoist_tests::show(&made));
    let (cert_s, key_s) = (cert.display().to_string(), key.display().to_string());
    let hoistd = Hoistd::start(&[("HOIST_TLS_CERT", &cert_s), ("HOIST_TLS_KEY", &key_s)]);
    assert!(hoistd.api_url().starts_with("https://"));

    // Plain HTTP to the API port gets no API.
    let plain = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5"])
        .arg(format!("http://127.0.0.1:{}/api/v1/apps", hoistd.api_port))
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");

    // The CLI trusts the certificate it is given.
    let create = std::process::Command::new(hoist_tests::binary("hoist"))
        .args(["apps", "create", "secure"])
        .env("HOIST_URL", hoistd.api_url())
        .env("HOIST_TOKEN", &hoistd.token)
        .env("HOIST_CA_CERT", &cert)
        .output()
        .unwrap();
    assert!(create.status.success(), "{}", hoist_tests::show(&create));

    // git over HTTPS; the pre-receive hook reaches hoistd on its loopback listener.
    let site = WorkTree::new(&hoistd, "secure", Some("static-site"));
    site.commit("first");
    let remote = format!("https://hoist:{}@127.0.0.1:{}/git/secure.git", hoistd.token, hoistd.api_port);
    let push = std::process::Command::new("git")
        .args(["push", &remote, "main"])
        .current_dir(&site.dir)
        .env("GIT_SSL_CAINFO", &cert)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(push.status.success(), "{}\n{}", hoist_tests::show(&push), hoistd.log_tail(30));
    assert!(String::from_utf8_lossy(&push.stderr).contains("release 1 is live"));
    assert!(hoistd.visit("secure", "/").1.contains("Hello from hoist"));
    let _ = std::fs::remove_dir_all(&dir);
}
