//! The Kubernetes test cluster (tests/env/cluster) is real: helm installs charts on it,
//! its kubelet runs images built here, and a container that crashes really crashes.

use hoist_tests::{repo_root, show, wait_for, Cluster};
use std::time::Duration;

fn smoke_chart() -> String {
    repo_root().join("tests/it/charts/smoke").display().to_string()
}

const SITE: &str = "FROM hoist/stack-base:run\nCOPY index.html /www/index.html\nUSER 1001\nCMD [\"busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n";

#[test]
fn helm_installs_a_chart_whose_pod_becomes_ready_and_answers_http() {
    let cluster = Cluster::connect();
    let image = cluster.push_image("site", SITE, &[("index.html", "<h1>served by a real kubelet</h1>\n")]);
    let install = cluster.helm(&[
        "install",
        "web",
        &smoke_chart(),
        "--set",
        &format!("image={image}"),
        "--wait",
        "--timeout",
        "120s",
    ]);
    assert!(install.status.success(), "helm install failed\n{}", show(&install));
    let ready =
        cluster.kubectl(&["get", "deploy", "web", "-n", &cluster.namespace, "-o", "jsonpath={.status.readyReplicas}"]);
    assert_eq!(String::from_utf8_lossy(&ready.stdout), "1");
    let page = cluster.get_through_port_forward("web", 8080);
    assert!(page.contains("served by a real kubelet"), "{page}");

    // An upgrade to a crashing version with --atomic is rolled back; the old pod serves on.
    let upgrade = cluster.helm(&[
        "upgrade",
        "--install",
        "web",
        &smoke_chart(),
        "--set",
        &format!("image={image}"),
        "--set",
        "command={sh,-c,echo crashing on purpose; exit 1}",
        "--atomic",
        "--wait",
        "--timeout",
        "25s",
    ]);
    assert!(!upgrade.status.success(), "an upgrade that never becomes ready must fail\n{}", show(&upgrade));
    assert!(String::from_utf8_lossy(&upgrade.stderr).contains("rolled back"), "{}", show(&upgrade));
    let history = cluster.helm(&["history", "web", "-o", "json"]);
    let history = String::from_utf8_lossy(&history.stdout);
    assert!(history.contains("\"status\":\"deployed\"") && history.contains("\"revision\":3"), "{history}");
    assert!(cluster.get_through_port_forward("web", 8080).contains("served by a real kubelet"));
}

#[test]
fn a_deployment_whose_container_exits_1_never_becomes_available() {
    let cluster = Cluster::connect();
    let image = cluster.push_image("crash", SITE, &[("index.html", "never served\n")]);
    let install = cluster.helm(&[
        "install",
        "crash",
        &smoke_chart(),
        "--set",
        &format!("image={image}"),
        "--set",
        "command={sh,-c,exit 1}",
        "--wait",
        "--timeout",
        "20s",
    ]);
    assert!(!install.status.success(), "helm --wait must fail for a crashing container\n{}", show(&install));
    let available = cluster.kubectl(&[
        "get",
        "deploy",
        "crash",
        "-n",
        &cluster.namespace,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Available\")].status}",
    ]);
    assert_eq!(String::from_utf8_lossy(&available.stdout), "False");
    // The kubelet really ran it, saw it exit 1, and restarted it.
    wait_for("the container's exit code 1 in its last state", Duration::from_secs(60), || {
        let exit_code = cluster.kubectl(&[
            "get",
            "pods",
            "-n",
            &cluster.namespace,
            "-l",
            "app=crash",
            "-o",
            "jsonpath={.items[0].status.containerStatuses[0].lastState.terminated.exitCode}",
        ]);
        (String::from_utf8_lossy(&exit_code.stdout) == "1").then_some(())
    });
}

#[test]
fn hoists_chart_pulls_with_the_registry_account_only_when_given_one() {
    let cluster = Cluster::connect();
    let chart = repo_root().join("deploy/chart").display().to_string();
    let render = |extra: &[&str]| {
        let mut args =
            vec!["template", "web1", chart.as_str(), "--set", "app=web1", "--set", "image=r.example/web1@sha256:ab"];
        args.extend_from_slice(extra);
        let output = cluster.helm(&args);
        assert!(output.status.success(), "{}", show(&output));
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    let plain = render(&[]);
    assert!(!plain.contains("imagePullSecrets") && !plain.contains("dockerconfigjson"), "{plain}");
    let with_account =
        render(&["--set-json", r#"registryAuth={"server":"10.0.0.1:5000","username":"hoist","password":"pw"}"#]);
    assert!(with_account.contains("imagePullSecrets:\n        - name: web1-registry"), "{with_account}");
    assert!(with_account.contains("type: kubernetes.io/dockerconfigjson"), "{with_account}");
    // {"auths":{"10.0.0.1:5000":{"auth":"aG9pc3Q6cHc=","password":"pw","username":"hoist"}}}
    let encoded = with_account
        .lines()
        .find_map(|l| l.trim().strip_prefix(".dockerconfigjson: "))
        .expect("the secret has .dockerconfigjson")
        .trim_matches('"')
        .to_string();
    let decoded = std::process::Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(encoded.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&decoded.stdout).unwrap();
    assert_eq!(json["auths"]["10.0.0.1:5000"]["auth"], "aG9pc3Q6cHc=", "{json}");
}
