//! The web page in a real browser (Debian's chromium, headless, driven over the DevTools
//! protocol): log in, watch a push's lines appear while it runs; and the OpenAPI
//! document checked against the real routes.

use hoist_tests::{repo_root, show, wait_for, Hoistd, WorkTree};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A headless chromium and a DevTools connection to its page.
struct Browser {
    child: Child,
    socket: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next_id: u64,
    _profile: std::path::PathBuf,
}

impl Browser {
    fn start(dir: &std::path::Path) -> Browser {
        let profile = dir.join("chromium-profile");
        let mut child = Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--window-size=1280,900",
                "--remote-debugging-port=0",
                &format!("--user-data-dir={}", profile.display()),
                "about:blank",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromium ({e}): tests/env/up installs Debian's chromium package"));
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let port = loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                panic!("chromium exited before its DevTools endpoint was up:\n{seen}");
            }
            seen.push_str(&line);
            if let Some(rest) = line.trim().strip_prefix("DevTools listening on ws://127.0.0.1:") {
                break rest.split('/').next().unwrap().parse::<u16>().unwrap();
            }
        };
        // Keep draining chromium's stderr so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in stderr.lines() {});
        let targets: Value = wait_for("chromium's page target", Duration::from_secs(20), || {
            let list: Value = reqwest::blocking::get(format!("http://127.0.0.1:{port}/json/list")).ok()?.json().ok()?;
            list.as_array()?.iter().any(|t| t["type"] == "page").then_some(list)
        });
        let page = targets.as_array().unwrap().iter().find(|t| t["type"] == "page").unwrap();
        let url = page["webSocketDebuggerUrl"].as_str().unwrap();
        let (socket, _) = tungstenite::connect(url).unwrap();
        Browser { child, socket, next_id: 0, _profile: profile }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({ "id": id, "method": method, "params": params }).to_string();
        self.socket.send(tungstenite::Message::text(message)).unwrap();
        loop {
            let message = self.socket.read().unwrap();
            let Ok(text) = message.to_text() else { continue };
            let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            if value["id"] == id {
                assert!(value.get("error").is_none(), "{method} failed: {value}");
                return value["result"].clone();
            }
        }
    }

    /// Evaluates JavaScript in the page; its value.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call("Runtime.evaluate", json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }));
        assert!(result.get("exceptionDetails").is_none(), "{expression} threw: {result}");
        result["result"]["value"].clone()
    }

    fn wait_for_js(&mut self, what: &str, timeout: Duration, expression: &str) -> Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let value = self.eval(expression);
            if !value.is_null() && value != false && value != "" {
                return value;
            }
            if std::time::Instant::now() > deadline {
                let text = self.eval("document.body.innerText");
                panic!("timed out waiting for {what}; the page shows:\n{}", text.as_str().unwrap_or(""));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_page_logs_in_and_shows_a_running_push_line_by_line_in_chromium() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("page1");
    let app = WorkTree::new(&hoistd, "page1", Some("static-site"));
    app.write(
        ".s2i/bin/assemble",
        "#!/bin/sh\nset -e\nfor i in $(seq 1 30); do echo tick $i; sleep 0.2; done\nmkdir -p /app && cp -r /workspace/source/. /app/\n",
    );
    Command::new("chmod").arg("+x").arg(app.dir.join(".s2i/bin/assemble")).status().unwrap();
    app.write("Procfile", "web: echo serving-on-$PORT; exec busybox httpd -f -p \"$PORT\" -h /app\n");
    app.commit("slow ticks");

    let mut browser = Browser::start(&hoistd.dir);
    browser.call("Page.enable", json!({}));
    browser.call("Page.navigate", json!({ "url": format!("{}/", hoistd.api_url()) }));
    browser.wait_for_js(
        "the login form",
        Duration::from_secs(20),
        "document.querySelector('#login') && !document.querySelector('#login').hidden",
    );
    // A wrong token is refused on the page.
    browser.eval("document.querySelector('#token').value = 'wrong'; document.querySelector('#login').requestSubmit()");
    browser.wait_for_js(
        "the refusal",
        Duration::from_secs(10),
        "document.querySelector('#login-error').textContent.includes('refused')",
    );
    let login = format!(
        "document.querySelector('#token').value = {}; document.querySelector('#login').requestSubmit()",
        json!(hoistd.token)
    );
    browser.eval(&login);
    browser.wait_for_js("the app list", Duration::from_secs(10), "document.querySelector('nav a[data-app=page1]')");
    assert!(!browser.eval("location.href").as_str().unwrap().contains(&hoistd.token), "the token is never in the URL");
    assert_eq!(browser.eval("sessionStorage.getItem('hoist-token')"), json!(hoistd.token));
    browser.eval("document.querySelector('nav a[data-app=page1]').click()");

    let remote = hoistd.remote("page1");
    let dir = app.dir.clone();
    let pusher = std::thread::spawn(move || WorkTree { dir }.push(&remote, "main"));
    // The running build's lines appear while it runs.
    browser.wait_for_js(
        "tick 5 on the page",
        Duration::from_secs(60),
        "document.querySelector('#log').innerText.includes('tick 5\\n')",
    );
    let status = hoistd.get_json("/api/v1/apps/page1/builds/1")["status"].clone();
    assert_eq!(status, "building", "the page showed the lines before the build ended");
    browser.wait_for_js(
        "the rollout's end on the page",
        Duration::from_secs(90),
        "document.querySelector('#log').innerText.includes('release 1 is live') && document.querySelector('#log-title').textContent.includes('succeeded')",
    );
    let push = pusher.join().unwrap();
    assert!(push.status.success(), "{}", show(&push));
    let log = browser.eval("document.querySelector('#log').innerText");
    let log = log.as_str().unwrap();
    let ticks: Vec<&str> = log.lines().filter(|l| l.trim().starts_with("tick ")).collect();
    assert_eq!(ticks.len(), 30, "every line once:\n{log}");
    browser.wait_for_js(
        "the release table",
        Duration::from_secs(10),
        "document.querySelector('#releases tbody').innerText.includes('live')",
    );

    // The app's URL, its processes, each build's and release's duration, the runtime log
    // beside the timeline, and a release's own timeline on a click.
    let url = format!("http://page1.localhost:{}/", hoistd.router_port);
    browser.wait_for_js(
        "the app's URL",
        Duration::from_secs(10),
        &format!("document.querySelector('#url').textContent === {}", json!(url)),
    );
    browser.wait_for_js(
        "web.1 up in the processes table",
        Duration::from_secs(10),
        "document.querySelector('#processes tbody').innerText.includes('web.1\tup')",
    );
    browser.wait_for_js(
        "the runtime log",
        Duration::from_secs(20),
        "document.querySelector('#runtime').innerText.includes('serving-on-5000')",
    );
    // The tables refresh every 2 s.
    browser.wait_for_js(
        "the build's and the release's durations and the formation",
        Duration::from_secs(10),
        "/ s$/.test(document.querySelector('#builds tbody tr').cells[5].textContent) && \
         / s$/.test(document.querySelector('#releases tbody tr').cells[6].textContent) && \
         document.querySelector('#releases tbody tr').cells[4].textContent === 'web=1'",
    );
    browser.eval("document.querySelector('#releases tbody tr').click()");
    browser.wait_for_js(
        "release 1's timeline",
        Duration::from_secs(10),
        "document.querySelector('#log-title').textContent.startsWith('Release 1') && document.querySelector('#log').innerText.includes('release 1 is live')",
    );

    let screenshot = browser.call("Page.captureScreenshot", json!({ "format": "png" }));
    let png = base64_decode(screenshot["data"].as_str().unwrap());
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a screenshot of the page ({} bytes)", png.len());
    let artifacts = repo_root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("web-page.png"), &png).unwrap();
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for byte in text.bytes().filter(|b| *b != b'=' && !b.is_ascii_whitespace()) {
        let value = ALPHABET.iter().position(|&c| c == byte).expect("base64") as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    out
}

/// The routes in `daemon/src/api.rs`, as (path, methods), read from its source.
fn routes_in_source() -> Vec<(String, Vec<String>)> {
    let source = std::fs::read_to_string(repo_root().join("daemon/src/api.rs")).unwrap();
    let mut routes = Vec::new();
    for line in
        source.lines().map(str::trim).filter(|l| l.starts_with(".route(\"") || l.starts_with("Router::new().route(\""))
    {
        let rest = &line[line.find(".route(\"").unwrap() + 8..];
        let (path, handlers) = rest.split_once('"').unwrap();
        let mut methods = Vec::new();
        for method in ["get", "post", "patch", "delete", "put", "any"] {
            if handlers.contains(&format!("{method}(")) {
                methods.push(method.to_string());
            }
        }
        let path = path.replace("{*path}", "{path}");
        routes.push((path, methods));
    }
    assert!(routes.len() > 15, "found the routes: {routes:?}");
    routes
}

#[test]
fn the_openapi_document_lists_every_route_and_every_documented_route_answers() {
    let hoistd = Hoistd::start(&[]);
    let (status, text) = hoistd.call_as(None, "GET", "/api/v1/openapi.json", None);
    assert_eq!(status, 200);
    let document: Value = serde_json::from_str(&text).unwrap();
    let paths = document["paths"].as_object().unwrap();
    // Every route is documented (hoistd's internal callers excepted).
    for (path, methods) in routes_in_source() {
        if path.starts_with("/internal/") {
            continue;
        }
        let documented = paths.get(&path).unwrap_or_else(|| panic!("route {path} is not in openapi.json"));
        for method in methods {
            if method == "any" {
                assert!(documented.get("get").is_some() && documented.get("post").is_some(), "{path}");
            } else {
                assert!(documented.get(&method).is_some(), "{} {path} is not in openapi.json", method.to_uppercase());
            }
        }
    }
    // Every documented route answers, with its own answer rather than "no such route".
    hoistd.create_app("docs");
    for (path, item) in paths {
        for (method, _) in item.as_object().unwrap().iter().filter(|(m, _)| *m != "parameters") {
            let concrete = path
                .replace("{app}", "docs")
                .replace("{id}", "1")
                .replace("{number}", "1")
                .replace("{repo}", "docs.git")
                .replace("{path}", if method == "post" { "git-upload-pack" } else { "info/refs" });
            let body = matches!(method.as_str(), "post" | "patch").then_some("{}");
            let method = method.to_uppercase();
            if method == "DELETE" {
                continue; // deleting is tested elsewhere; here it would remove the app the others use
            }
            let (status, answer) = hoistd.call(&method, &concrete, body);
            assert!(
                status != 405 && !answer.contains("no such route"),
                "{method} {concrete} is documented but does not answer: {status} {answer}"
            );
        }
    }
}
