//! Images hoist writes itself (no `docker build` for buildpack apps): what reaches the
//! registry on a code change, reproducible digests, the docker target running the image
//! by digest, and `hoist rebase` onto a refreshed stack — against the real dockerd and
//! registry.

use hoist_tests::{binary, ensure_base_stack, show, Hoistd, WorkTree};
use std::process::Output;

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn push_ok(hoistd: &Hoistd, tree: &WorkTree, app: &str) -> String {
    let push = tree.push(&hoistd.remote(app), "main");
    assert!(push.status.success(), "push to {app} failed\n{}\n{}", show(&push), hoistd.log_tail(40));
    text(&push)
}

/// The image digest a push's export printed (the last: a first build also pushes its
/// stack's run image).
fn digest_of(output: &str) -> String {
    let line =
        output.lines().rfind(|l| l.contains("digest sha256:")).unwrap_or_else(|| panic!("no digest in\n{output}"));
    let at = line.find("sha256:").unwrap();
    line[at..].split_whitespace().next().unwrap().to_string()
}

/// How many blobs (layers, configs, manifests) the registry's storage holds.
fn blobs(hoistd: &Hoistd) -> usize {
    let root = hoistd.dir.join("data/registry/storage/docker/registry/v2/blobs/sha256");
    let mut count = 0;
    for prefix in std::fs::read_dir(&root).unwrap() {
        count += std::fs::read_dir(prefix.unwrap().path()).unwrap().count();
    }
    count
}

/// A manifest of hoistd's registry, as JSON.
fn manifest(hoistd: &Hoistd, name: &str, reference: &str) -> serde_json::Value {
    let url = format!("http://127.0.0.1:{}/v2/{name}/manifests/{reference}", hoistd.registry_port);
    let response = reqwest::blocking::Client::new()
        .get(url)
        .basic_auth("hoist", Some(hoistd.registry_password()))
        .header("accept", "application/vnd.docker.distribution.manifest.v2+json")
        .send()
        .unwrap();
    assert!(response.status().is_success(), "{name}:{reference}: {}", response.status());
    response.json().unwrap()
}

fn layer_digests(manifest: &serde_json::Value) -> Vec<String> {
    manifest["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect()
}

/// The images the app's running containers were created from, as dockerd tells it.
fn running_images(hoistd: &Hoistd, app: &str) -> Vec<String> {
    let ids = hoistd.running_containers(app);
    assert!(!ids.is_empty(), "{app} runs no container");
    let inspect = std::process::Command::new(hoist_tests::DOCKER)
        .args(["inspect", "--format", "{{.Config.Image}}"])
        .args(&ids)
        .output()
        .unwrap();
    text(&inspect).lines().map(str::to_string).collect()
}

#[test]
fn a_code_change_sends_only_the_app_layer_and_the_same_commit_gives_the_same_image() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("site");
    let site = WorkTree::new(&hoistd, "site", Some("static-site"));
    site.commit("first");
    let first = push_ok(&hoistd, &site, "site");
    assert!(first.contains("-----> Exporting: run layer"), "no docker build for a buildpack app\n{first}");
    assert!(!first.contains("Step 1/"), "no docker build for a buildpack app\n{first}");
    assert!(first.contains("no builder to run"), "a static site is a copy: no builder\n{first}");

    let before = blobs(&hoistd);
    let page = std::fs::read_to_string(site.dir.join("index.html")).unwrap();
    site.write("index.html", &page.replace("Hello from hoist", "Changed static page")).commit("one line");
    let second = push_ok(&hoistd, &site, "site");
    assert!(second.contains("(1 new layer, "), "only the app layer is new\n{second}");
    assert_eq!(blobs(&hoistd) - before, 3, "the registry received the app layer, a config and a manifest\n{second}");
    let digest = digest_of(&second);
    let (status, body) = hoistd.visit("site", "/");
    assert_eq!(status, 200);
    assert!(body.contains("Changed static page"), "{body}");
    // The docker target runs what the registry holds, by digest.
    let expected = format!("127.0.0.1:{}/site@{digest}", hoistd.registry_port);
    assert!(running_images(&hoistd, "site").contains(&expected), "{:?}", running_images(&hoistd, "site"));

    // The same commit built again, from nothing: the same image, byte for byte.
    let destroyed = hoistd.cli(&["apps", "destroy", "site", "--confirm", "site"]);
    assert!(destroyed.status.success(), "{}", show(&destroyed));
    hoistd.create_app("site");
    let again = push_ok(&hoistd, &site, "site");
    assert_eq!(digest_of(&again), digest, "the same files give the same digest\n{again}");

    // The registry loses the stack's run image (its layers deleted): the next app's build
    // puts it there again instead of failing until hoistd restarts.
    let client = reqwest::blocking::Client::new();
    for layer in layer_digests(&manifest(&hoistd, "stacks/base", "run")) {
        let url = format!("http://127.0.0.1:{}/v2/stacks/base/blobs/{layer}", hoistd.registry_port);
        let deleted = client.delete(url).basic_auth("hoist", Some(hoistd.registry_password())).send().unwrap();
        assert_eq!(deleted.status(), 202);
    }
    hoistd.create_app("other");
    let other = push_ok(&hoistd, &site, "other");
    assert!(other.contains("Putting the run image of stack base (bookworm) in the registry"), "{other}");
    assert_eq!(hoistd.visit("other", "/").0, 200);
}

#[test]
fn rebase_puts_an_app_on_a_refreshed_run_image_without_a_build_and_refuses_a_dockerfile_app() {
    // Stack images of its own: refreshing them leaves every other test's stacks alone.
    let prefix = "hoisttest-rebase";
    let hoistd = Hoistd::start(&[("HOIST_STACK_IMAGES", prefix)]);
    hoistd.create_app("site");
    let site = WorkTree::new(&hoistd, "site", Some("static-site"));
    site.commit("first");
    let first = push_ok(&hoistd, &site, "site");
    let built = manifest(&hoistd, "site", &digest_of(&first));
    let built_layers = layer_digests(&built);
    let run_before = layer_digests(&manifest(&hoistd, "stacks/base", "run"));

    let nothing = hoistd.cli(&["rebase", "site"]);
    assert!(nothing.status.success(), "{}", show(&nothing));
    assert!(text(&nothing).contains("on the current run image of stack base (bookworm) already"), "{}", show(&nothing));

    // An OS fix: the stack made again from today's packages, its run image put in the
    // registry of the hoistd that runs on the same data dir.
    let refresh = std::process::Command::new(binary("hoistd"))
        .args(["stacks", "prepare", "base", "--refresh"])
        .env("HOIST_STACK_IMAGES", prefix)
        .env("HOIST_DATA_DIR", hoistd.dir.join("data"))
        .output()
        .unwrap();
    assert!(refresh.status.success(), "{}", show(&refresh));
    assert!(text(&refresh).contains("hoist rebase --all"), "{}", show(&refresh));
    assert!(text(&refresh).contains("in hoistd's registry: 127.0.0.1:"), "{}", show(&refresh));
    assert!(text(&refresh).contains("/stacks/base:run"), "{}", show(&refresh));

    let rebased = hoistd.cli(&["rebase", "--all"]);
    assert!(rebased.status.success(), "{}", show(&rebased));
    assert!(
        text(&rebased).contains("site: release 2 is live on the current run image of stack base"),
        "{}",
        show(&rebased)
    );
    let builds = hoistd.get_json("/api/v1/apps/site/builds");
    assert_eq!(builds.as_array().map(Vec::len), Some(1), "no build ran: {builds}");
    // The release's timeline opens with the rebase's own lines, then its rollout; the
    // refresh put the run image in the registry, so the rebase found it there.
    let timeline = hoistd.cli(&["logs", "site", "--release", "2"]);
    assert!(timeline.status.success(), "{}", show(&timeline));
    let timeline = text(&timeline);
    let rebasing = timeline.find("-----> Rebasing site: release 1's image").expect(&timeline);
    let layers = timeline.find("the app's own layers, unchanged, on the run image of stack base").expect(&timeline);
    let rollout = timeline.find("-----> Rolling out release 2 of site").expect(&timeline);
    assert!(rebasing < layers && layers < rollout, "{timeline}");
    assert!(!timeline.contains("Putting the run image"), "the rebase pushed the run image again\n{timeline}");
    let left: Vec<_> =
        std::fs::read_dir(hoistd.dir.join("data/logs/site")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(!left.iter().any(|name| name.to_string_lossy().starts_with("rebase")), "{left:?}");

    // Lower layers: the new run image's; upper layers: the app's, unchanged.
    let release: serde_json::Value = hoistd.get_json("/api/v1/apps/site/releases");
    let live = release.as_array().unwrap().iter().find(|r| r["number"] == 2).unwrap().clone();
    assert!(live["cause"].as_str().unwrap().starts_with("rebase (stack base (bookworm), run image sha256:"), "{live}");
    let image = live["image"].as_str().unwrap();
    let new_digest = image.rsplit_once('@').unwrap().1;
    let rebased_layers = layer_digests(&manifest(&hoistd, "site", new_digest));
    let run_after = layer_digests(&manifest(&hoistd, "stacks/base", "run"));
    assert_ne!(run_after, run_before, "the refresh made a new run image");
    assert_eq!(rebased_layers[..run_after.len()], run_after[..], "lower layers are the new run image's");
    let app_layers = built_layers.len() - run_before.len();
    assert_eq!(
        rebased_layers[run_after.len()..],
        built_layers[built_layers.len() - app_layers..],
        "the app's layers are unchanged"
    );
    let (status, body) = hoistd.visit("site", "/");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Hello from hoist"), "{body}");
    assert!(running_images(&hoistd, "site").iter().any(|i| i == image), "{:?}", running_images(&hoistd, "site"));

    // An app its Dockerfile built has no run image to swap: refused, with the reason.
    ensure_base_stack();
    hoistd.create_app("plain");
    let plain = WorkTree::new(&hoistd, "plain", None);
    plain
        .write(
            "Dockerfile",
            "FROM hoist/stack-base:run\nRUN mkdir /www && echo plain > /www/index.html\nCMD [\"sh\", \"-c\", \"exec busybox httpd -f -p $PORT -h /www\"]\n",
        )
        .commit("dockerfile");
    push_ok(&hoistd, &plain, "plain");
    let refused = hoistd.cli_may_fail(&["rebase", "plain"]);
    assert_eq!(refused.status.code(), Some(6), "{}", show(&refused));
    assert!(text(&refused).contains("was not built by a buildpack"), "{}", show(&refused));
    assert_eq!(hoistd.visit("plain", "/").1.trim(), "plain", "the app keeps serving");
}
