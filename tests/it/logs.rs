//! One timeline per deploy: followed live by several readers (SSE and NDJSON), read
//! whole afterwards, resumed from `Last-Event-ID`; secrets never stored or shown; the
//! running app's output.

use hoist_tests::{show, wait_for, Hoistd, WorkTree};
use std::io::{BufRead, BufReader};
use std::time::Duration;

const TICKS: usize = 400;

fn make_executable(app: &WorkTree, path: &str) {
    let status = std::process::Command::new("chmod").arg("+x").arg(app.dir.join(path)).status().unwrap();
    assert!(status.success());
}

/// A static site whose assemble prints `tick 1` … `tick 400`, pausing now and then.
fn ticking_app(hoistd: &Hoistd, name: &str) -> WorkTree {
    hoistd.create_app(name);
    let app = WorkTree::new(hoistd, name, Some("static-site"));
    app.write(
        ".s2i/bin/assemble",
        &format!(
            "#!/bin/sh\nset -e\nfor i in $(seq 1 {TICKS}); do echo tick $i; case $i in *0) sleep 0.02;; esac; done\nmkdir -p /app && cp -r /workspace/source/. /app/\n"
        ),
    );
    make_executable(&app, ".s2i/bin/assemble");
    app.commit("ticks");
    app
}

struct Followed {
    /// (sequence number, text) of every record.
    records: Vec<(u64, String)>,
    /// The closing status.
    end: String,
}

impl Followed {
    fn ticks(&self) -> Vec<usize> {
        self.records.iter().filter_map(|(_, t)| t.trim().strip_prefix("tick ")?.parse().ok()).collect()
    }
}

fn open(hoistd: &Hoistd, path: &str, accept: &str, last_event_id: Option<u64>) -> reqwest::blocking::Response {
    let mut request = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
        .get(format!("{}{path}", hoistd.api_url()))
        .bearer_auth(&hoistd.token)
        .header("accept", accept);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id.to_string());
    }
    let response = request.send().unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response
}

/// Reads server-sent events to the `end` event, pausing `delay` after each line.
fn follow_sse(hoistd: &Hoistd, path: &str, last_event_id: Option<u64>, delay: Duration) -> Followed {
    let response = open(hoistd, path, "text/event-stream", last_event_id);
    let (mut records, mut event, mut id) = (Vec::new(), String::new(), 0);
    for line in BufReader::new(response).lines() {
        let line = line.unwrap();
        if let Some(value) = line.strip_prefix("id: ").or_else(|| line.strip_prefix("id:")) {
            id = value.trim().parse().unwrap();
        } else if let Some(value) = line.strip_prefix("event: ").or_else(|| line.strip_prefix("event:")) {
            event = value.trim().to_string();
        } else if let Some(data) = line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:")) {
            let value: serde_json::Value = serde_json::from_str(data).unwrap();
            if event == "end" {
                return Followed { records, end: value["status"].as_str().unwrap_or("").to_string() };
            }
            assert_eq!(value["seq"], id, "an event's id is its record's sequence number");
            records.push((id, value["text"].as_str().unwrap().to_string()));
            std::thread::sleep(delay);
        } else if line.is_empty() {
            event.clear();
        }
    }
    panic!("the event stream of {path} ended without an end event after {} records", records.len());
}

fn follow_ndjson(hoistd: &Hoistd, path: &str) -> Followed {
    let response = open(hoistd, path, "application/x-ndjson", None);
    let mut records = Vec::new();
    for line in BufReader::new(response).lines() {
        let value: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        if let Some(end) = value.get("end") {
            return Followed { records, end: end["status"].as_str().unwrap_or("").to_string() };
        }
        records.push((value["seq"].as_u64().unwrap(), value["text"].as_str().unwrap().to_string()));
    }
    panic!("the NDJSON stream of {path} ended without an end line");
}

#[test]
fn followers_of_a_build_see_every_line_once_in_order_however_late_or_slow() {
    let hoistd = Hoistd::start(&[]);
    let app = ticking_app(&hoistd, "ticks");
    let remote = hoistd.remote("ticks");
    let dir = app.dir.clone();
    let pusher = std::thread::spawn(move || WorkTree { dir }.push(&remote, "main"));
    wait_for("build 1 to start", Duration::from_secs(60), || {
        (hoistd.get("/api/v1/apps/ticks/builds/1").0 == 200).then_some(())
    });
    let path = "/api/v1/apps/ticks/builds/1/log";
    let (slow, fast) = std::thread::scope(|scope| {
        let slow = scope.spawn(|| follow_sse(&hoistd, path, None, Duration::from_millis(3)));
        let fast = scope.spawn(|| follow_ndjson(&hoistd, &format!("{path}?follow=true")));
        (slow.join().unwrap(), fast.join().unwrap())
    });
    let push = pusher.join().unwrap();
    assert!(push.status.success(), "{}", show(&push));
    let every_tick: Vec<usize> = (1..=TICKS).collect();
    for (name, followed) in [("slow SSE follower", &slow), ("NDJSON follower", &fast)] {
        assert_eq!(followed.ticks(), every_tick, "{name}");
        let seqs: Vec<u64> = followed.records.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{name}: from the first record, no gap");
        assert_eq!(followed.end, "succeeded", "{name}");
        assert!(followed.records.iter().any(|(_, t)| t.contains("is live")), "{name}: the rollout is on the timeline");
    }
    assert_eq!(slow.records, fast.records);
    // The push saw the same lines, none skipped.
    let pushed = String::from_utf8_lossy(&push.stderr);
    assert!(pushed.contains(&format!("tick {TICKS}")) && !pushed.contains("skipped"), "{pushed}");

    // After the build: the whole log, and the read ends; SSE resumes after Last-Event-ID.
    let late = follow_sse(&hoistd, path, None, Duration::ZERO);
    assert_eq!(late.records, slow.records);
    let resumed = follow_sse(&hoistd, path, Some(100), Duration::ZERO);
    assert_eq!(resumed.records, slow.records[100..]);
    let text = hoistd.get(path).1;
    let texts: Vec<&str> = slow.records.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(text.lines().collect::<Vec<_>>(), texts, "the text form is the records' texts");
    // Each record has a time and the stage it belongs to.
    let ndjson = open(&hoistd, path, "application/x-ndjson", None).text().unwrap();
    let stages: std::collections::BTreeSet<String> = ndjson
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["stage"].as_str().map(str::to_string))
        .collect();
    for stage in ["build", "push", "rollout"] {
        assert!(stages.contains(stage), "stage {stage} missing from {stages:?}");
    }
    assert_eq!(hoistd.get("/api/v1/apps/ticks/builds/2/log").0, 404);
}

#[test]
fn secret_values_are_never_stored_in_logs_or_shown_by_the_api() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("vault");
    let (marked, by_name) = ("lic-9f8e7d6c5b4a", "pw-a1b2c3d4e5f6");
    hoistd.cli(&["config", "set", "vault", "--secret", &format!("LICENSE={marked}")]);
    hoistd.cli(&["config", "set", "vault", &format!("DB_PASSWORD={by_name}"), "GREETING=visible-greeting"]);
    let app = WorkTree::new(&hoistd, "vault", Some("static-site"));
    app.write(
        ".s2i/bin/assemble",
        "#!/bin/sh\nset -e\necho \"building with $LICENSE and $DB_PASSWORD and $GREETING\"\nmkdir -p /app && cp -r /workspace/source/. /app/\n",
    )
    .write("Procfile", "web: echo \"starting with $LICENSE and $DB_PASSWORD\"; exec busybox httpd -f -v -p \"$PORT\" -h /app\n");
    make_executable(&app, ".s2i/bin/assemble");
    app.commit("leaky");
    let push = app.push(&hoistd.remote("vault"), "main");
    assert!(push.status.success(), "{}", show(&push));
    assert!(String::from_utf8_lossy(&push.stderr).contains("building with ******** and ******** and visible-greeting"));

    let runtime = wait_for("the app's output", Duration::from_secs(30), || {
        let output = String::from_utf8_lossy(&hoistd.cli(&["logs", "vault"]).stdout).to_string();
        output.contains("starting with").then_some(output)
    });
    assert!(runtime.contains("starting with ******** and ********"), "{runtime}");
    let config = hoistd.get_json("/api/v1/apps/vault/config");
    assert_eq!(config["vars"]["GREETING"], "visible-greeting");
    let mut seen = vec![String::from_utf8_lossy(&push.stderr).to_string(), runtime, config.to_string()];
    for path in [
        "/api/v1/apps/vault",
        "/api/v1/apps/vault/builds",
        "/api/v1/apps/vault/builds/1",
        "/api/v1/apps/vault/releases",
        "/api/v1/apps/vault/builds/1/log",
        "/api/v1/apps/vault/releases/1/log",
        "/api/v1/apps",
    ] {
        seen.push(hoistd.get(path).1);
    }
    for file in walk(&hoistd.dir.join("data/logs")) {
        seen.push(String::from_utf8_lossy(&std::fs::read(&file).unwrap()).to_string());
    }
    for text in &seen {
        assert!(!text.contains(marked) && !text.contains(by_name), "a secret leaked:\n{text}");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
