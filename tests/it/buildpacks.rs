//! Buildpacks end to end: each language's example app pushed with the real `git`, built
//! in a stack hoistd makes itself (downloading toolchains and dependencies over HTTPS
//! through the host's extra CA certificates), and answering through the router.

use hoist_tests::{binary, show, Hoistd, WorkTree};

fn text(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Pushes `tree` to `app` and fails the test, with everything, if the push fails.
fn push_ok(hoistd: &Hoistd, tree: &WorkTree, app: &str) -> String {
    let push = tree.push(&hoistd.remote(app), "main");
    let output = text(&push);
    assert!(push.status.success(), "push to {app} failed\n{}\n{}", show(&push), hoistd.log_tail(40));
    output
}

fn page(hoistd: &Hoistd, app: &str) -> String {
    let (status, body) = hoistd.visit(app, "/");
    assert_eq!(status, 200, "{app}: {body}");
    body
}

/// The new layers the export sent to the registry: "(N new layers, …)" of its
/// "-----> Pushing" line.
fn layers_pushed(output: &str) -> usize {
    let line = output
        .lines()
        .find(|l| l.contains("-----> Pushing") && l.contains(" new layer"))
        .unwrap_or_else(|| panic!("no export push in\n{output}"));
    let words: Vec<&str> = line.split(['(', ' ']).collect();
    let at = words.iter().position(|w| *w == "new").unwrap();
    words[at - 1].parse().unwrap()
}

/// The manifest of the image a push's output names (its first `sha256:` digest).
fn pushed_manifest(hoistd: &Hoistd, app: &str, output: &str) -> serde_json::Value {
    let digest = output.lines().find_map(|l| l.split_whitespace().find(|w| w.starts_with("sha256:"))).unwrap();
    let url = format!("http://127.0.0.1:{}/v2/{app}/manifests/{digest}", hoistd.registry_port);
    let get = reqwest::blocking::Client::new()
        .get(url)
        .basic_auth("hoist", Some(hoistd.registry_password()))
        .header("accept", "application/vnd.docker.distribution.manifest.v2+json");
    get.send().unwrap().json().unwrap()
}

/// Deletes from the registry the blob of the layer `name` (as the push's "Exporting:" line
/// names it: `deps`, `dependencies`) of the image `output`'s push made: what a hoistd
/// killed during an export would have left out.
fn delete_layer(hoistd: &Hoistd, app: &str, output: &str, name: &str) {
    let exporting = output.lines().find(|l| l.contains("-----> Exporting: ")).unwrap_or_default();
    // "dependencies layer unchanged (18.2 MiB, reused), app layer 5 KiB": a note is a part
    // whose second word is "layer".
    let notes: Vec<&str> = exporting
        .split("-----> Exporting: ")
        .nth(1)
        .unwrap_or_default()
        .split(", ")
        .filter(|part| part.split(' ').nth(1) == Some("layer"))
        .collect();
    let at = notes
        .iter()
        .position(|note| note.starts_with(&format!("{name} layer")))
        .unwrap_or_else(|| panic!("no {name} layer in {exporting}"));
    let layers = layer_digests(&pushed_manifest(hoistd, app, output));
    // The notes name the image's own layers, the top ones, in order.
    let blob = &layers[layers.len() - notes.len() + at];
    let url = format!("http://127.0.0.1:{}/v2/{app}/blobs/{blob}", hoistd.registry_port);
    let deleted = reqwest::blocking::Client::new()
        .delete(url)
        .basic_auth("hoist", Some(hoistd.registry_password()))
        .send()
        .unwrap();
    assert_eq!(deleted.status(), 202, "{exporting}");
}

/// The digests of an image's layers, bottom first.
fn layer_digests(manifest: &serde_json::Value) -> Vec<String> {
    manifest["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect()
}

#[test]
fn node_express_app_goes_live_and_a_code_change_reuses_every_dependency() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("expr");
    let app = WorkTree::new(&hoistd, "expr", Some("node-express"));
    app.commit("express");
    let output = push_ok(&hoistd, &app, "expr");
    assert!(output.contains("Detected Node.js app (package.json): buildpack node"), "{output}");
    assert!(output.contains("package.json (engines.node) asks for 22.x"), "the version is honoured\n{output}");
    assert!(output.contains("Installing dependencies: npm ci"), "{output}");
    let body = page(&hoistd, "expr");
    assert!(body.starts_with("Hello from Express on Node v22."), "{body}");

    // A one-line change: no dependency is installed again, and only the app layer travels.
    app.write("index.js", &std::fs::read_to_string(app.dir.join("index.js")).unwrap().replace("Hello", "Howdy"));
    app.commit("one line");
    let output = push_ok(&hoistd, &app, "expr");
    assert!(output.contains("Dependencies unchanged"), "{output}");
    assert!(!output.contains("npm ci"), "npm ran again\n{output}");
    assert!(output.contains("deps layer reused (key "), "node_modules is not even read\n{output}");
    assert_eq!(layers_pushed(&output), 1, "only the app layer is new\n{output}");
    // assemble said /app was a copy of the source, and the deps key is the same: no builder.
    assert!(output.contains("no builder to run") && !output.contains("Running assemble"), "{output}");
    assert!(page(&hoistd, "expr").starts_with("Howdy from Express"));
    // The copy hoistd made is what assemble makes: the same commit built from nothing, by
    // assemble, on another app gives the same layers.
    let copied = layer_digests(&pushed_manifest(&hoistd, "expr", &output));
    hoistd.create_app("expr2");
    let assembled = push_ok(&hoistd, &app, "expr2");
    assert!(assembled.contains("Running assemble of buildpack node"), "{assembled}");
    assert_eq!(layer_digests(&pushed_manifest(&hoistd, "expr2", &assembled)), copied, "{output}\n{assembled}");
    assert!(page(&hoistd, "expr2").starts_with("Howdy from Express"));

    // A layer is reused only while its blob is in the registry (a hoistd killed during an
    // export leaves none to reuse): with the deps blob gone, it is written and sent again.
    delete_layer(&hoistd, "expr", &output, "deps");
    app.write("index.js", &std::fs::read_to_string(app.dir.join("index.js")).unwrap().replace("Howdy", "Hi"));
    app.commit("another line");
    let output = push_ok(&hoistd, &app, "expr");
    assert!(!output.contains("deps layer reused"), "a layer whose blob is gone was reused\n{output}");
    assert!(output.contains("Running assemble"), "a copy cannot stand on a deps layer that is gone\n{output}");
    assert_eq!(layers_pushed(&output), 2, "the deps layer is sent again, with the app layer\n{output}");
    assert!(page(&hoistd, "expr").starts_with("Hi from Express"));

    // A changed package.json: a new deps key, so npm ci runs again; it installs the same
    // files, which hash as the running image's deps layer did, so that layer is kept.
    let manifest = std::fs::read_to_string(app.dir.join("package.json")).unwrap();
    app.write("package.json", &manifest.replacen('{', "{\n  \"description\": \"changed\",", 1));
    app.commit("package.json");
    let output = push_ok(&hoistd, &app, "expr");
    assert!(output.contains("Installing dependencies: npm ci"), "{output}");
    assert!(!output.contains("deps layer reused (key"), "a changed package.json is a new deps key\n{output}");
    assert!(output.contains("deps layer unchanged ("), "npm ci installed the same files\n{output}");
    assert_eq!(layers_pushed(&output), 1, "only the app layer is sent\n{output}");

    // A changed lock file that changes what npm ci installs (its record of the tree in
    // node_modules/.package-lock.json names the app's version): a new deps layer.
    let bump = |file: &str, times: usize| {
        let text = std::fs::read_to_string(app.dir.join(file)).unwrap();
        let bumped = text.replacen("\"version\": \"1.0.0\"", "\"version\": \"1.0.1\"", times);
        assert_ne!(bumped, text, "{file}");
        app.write(file, &bumped);
    };
    bump("package.json", 1);
    bump("package-lock.json", 2);
    app.commit("version 1.0.1");
    let output = push_ok(&hoistd, &app, "expr");
    assert!(output.contains("Installing dependencies: npm ci"), "{output}");
    assert!(!output.contains("deps layer reused") && !output.contains("deps layer unchanged"), "{output}");
    assert_eq!(layers_pushed(&output), 2, "a new deps layer, with the app layer\n{output}");
    assert!(page(&hoistd, "expr").starts_with("Hi from Express"));
}

#[test]
fn django_app_builds_on_the_nearest_python_with_a_warning_and_serves_its_static_files() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("django");
    let app = WorkTree::new(&hoistd, "django", Some("python-django"));
    app.commit("django");
    let output = push_ok(&hoistd, &app, "django");
    assert!(output.contains("Detected Python app (requirements.txt)"), "{output}");
    assert!(
        output.contains("Warning: Python 3.11.9 is not available; building with 3.11.2"),
        "runtime.txt asks for a patch release Debian does not carry\n{output}"
    );
    assert!(output.contains("collectstatic --noinput"), "{output}");
    assert!(page(&hoistd, "django").starts_with("Hello from Django on Python 3.11.2"));
    let (status, css) = hoistd.visit("django", "/static/site.css");
    assert_eq!((status, css.contains("font-family")), (200, true), "collectstatic's files are served: {css}");
}

#[test]
fn go_module_builds_with_the_toolchain_its_go_line_asks_for() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("gomod");
    let app = WorkTree::new(&hoistd, "gomod", Some("go-module"));
    app.commit("go");
    let output = push_ok(&hoistd, &app, "gomod");
    assert!(output.contains("go.mod (go) asks for 1.22"), "{output}");
    let body = page(&hoistd, "gomod");
    assert!(body.starts_with("Hello from Go go1.22."), "{body}");
    // A Procfile names the program the buildpack built by its name alone, as on Heroku
    // (`web: go-getting-started`): /app/bin is on PATH.
    let built = output.lines().find_map(|l| l.split("built: ").nth(1)).expect("the build names its programs").trim();
    assert!(!built.contains(' ') && !built.contains('/'), "one program: {built}");
    app.write("Procfile", &format!("web: {built}\n")).commit("a Procfile naming the program");
    push_ok(&hoistd, &app, "gomod");
    assert!(page(&hoistd, "gomod").starts_with("Hello from Go go1.22."));
}

#[test]
fn spring_boot_app_with_mvnw_goes_live_and_a_rebuild_downloads_nothing() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("spring");
    let app = WorkTree::new(&hoistd, "spring", Some("java-spring-boot"));
    app.commit("spring boot");
    let output = push_ok(&hoistd, &app, "spring");
    assert!(
        output.contains("Java 17 from Debian bookworm (system.properties (java.runtime.version) asks for 17)"),
        "{output}"
    );
    assert!(output.contains("Using the repo's ./mvnw"), "{output}");
    // The JDK's version from its release file, not from a JVM started to print it.
    assert!(output.contains("-----> JDK 17."), "{output}");
    // Taken apart by its own indexes with unzip: no JVM for Spring Boot's extract.
    assert!(output.contains("Spring Boot jar split into layers (by its indexes): 1-dependencies"), "{output}");
    // The builder stays up for the app's next build, and Maven's server in it.
    assert!(output.contains("Starting Maven's server, which the app's next builds reuse"), "{output}");
    assert!(output.contains("Class-data archive of the libraries made ("), "{output}");
    // Spring Framework 6.1 on: Spring's own switch stops the training run.
    assert!(output.contains("(its context started and closed before its web server starts)"), "{output}");
    assert!(output.contains("The app's processes get JAVA_TOOL_OPTIONS from assemble"), "{output}");
    let body = page(&hoistd, "spring");
    assert!(body.starts_with("Hello from Spring Boot on Java 17."), "{body}");
    assert_eq!(jvms_mapping_the_class_data(&hoistd, "spring"), (1, 1), "the JVM took the archive\n{output}");
    // The run image carries a JRE cut with jlink: at most half its builder.
    let size = |image: &str| -> u64 {
        let inspect = std::process::Command::new("/usr/bin/docker")
            .args(["image", "inspect", "-f", "{{.Size}}", image])
            .output()
            .unwrap();
        String::from_utf8_lossy(&inspect.stdout).trim().parse().unwrap_or_else(|_| panic!("{}", show(&inspect)))
    };
    let (run, build) = (size("hoist/stack-java:17-run"), size("hoist/stack-java:17-build"));
    assert!(run * 2 <= build, "the Java run image is {run} bytes, its builder {build}");

    // A one-line change of the greeting, committed.
    let java = app.dir.join("src/main/java/com/example/demo/DemoApplication.java");
    let change_greeting = |from: &str, to: &str| {
        std::fs::write(&java, std::fs::read_to_string(&java).unwrap().replace(from, to)).unwrap();
        app.commit(&format!("greeting: {to}"));
    };
    change_greeting("Hello from", "Hi from");
    let output = push_ok(&hoistd, &app, "spring");
    assert!(output.contains("Downloaded 0 files into the Maven cache"), "{output}");
    assert!(output.contains("-----> Builder kept from the app's last build"), "{output}");
    assert!(output.contains("Maven's server kept from the last build runs it"), "{output}");
    assert!(output.contains("[INFO] BUILD SUCCESS"), "Maven's output reaches the push\n{output}");
    // The Procfile's `java -jar target/demo-1.0.0-SNAPSHOT.jar` runs the thin jar, and a
    // code change sends only the application layer: kilobytes, not the 18 MB fat jar.
    assert!(page(&hoistd, "spring").starts_with("Hi from Spring Boot"));
    assert_eq!(layers_pushed(&output), 1, "only the application layer is new\n{output}");
    let pushed = output.lines().find(|l| l.contains("-----> Pushing") && l.contains("new layer")).unwrap();
    assert!(pushed.contains(" KiB)") || pushed.contains(" B)"), "a code change sends less than 1 MiB: {pushed}");
    // The jars hash as before: their layer is the running image's, not gzipped again.
    assert!(output.contains("dependencies layer unchanged ("), "{output}");
    // The archive of the libraries outlives a change of the app's code: the new JVM maps it.
    assert!(output.contains("Class-data archive of the libraries from the cache"), "{output}");
    assert!(output.contains("class-data layer unchanged ("), "{output}");
    assert_eq!(jvms_mapping_the_class_data(&hoistd, "spring"), (1, 1), "{output}");

    // Reused only while its blob is in the registry: with it gone, it is written again.
    delete_layer(&hoistd, "spring", &output, "dependencies");
    change_greeting("Hi from", "Howdy from");
    // A config var reaches the build's environment, which Maven's server was started with.
    hoistd.cli(&["config", "set", "spring", "GREETING_STYLE=plain"]);
    let output = push_ok(&hoistd, &app, "spring");
    assert!(output.contains("Maven's server started again: what it ran with changed"), "{output}");
    assert!(!output.contains("dependencies layer unchanged"), "a layer whose blob is gone was reused\n{output}");
    assert_eq!(layers_pushed(&output), 2, "the jars are sent again, with the application\n{output}");
    assert!(page(&hoistd, "spring").starts_with("Howdy from Spring Boot"));

    // After 100 builds the server is started again; and should it die during a build, the
    // build runs Maven again as a new JVM and still goes live. Its 100th build is written
    // into the kept builder, and a watcher there kills the server once Maven has begun
    // compiling (target/classes gone with the last build's tree, then made again).
    let builder = hoistd.running_containers_in_role("spring", "builder");
    assert_eq!(builder.len(), 1, "the app's builder is kept: {builder:?}");
    let in_builder = |detach: bool, script: &str| {
        let mut exec = std::process::Command::new(hoist_tests::DOCKER);
        exec.arg("exec");
        if detach {
            exec.arg("-d");
        }
        let done = exec.args([&builder[0], "sh", "-c", script]).output().unwrap();
        assert!(done.status.success(), "{}", show(&done));
    };
    in_builder(false, "echo 100 > /tmp/hoist-maven/served");
    in_builder(
        true,
        "classes=/workspace/source/target/classes; \
         while [ -d $classes ]; do sleep 0.05; done; while [ ! -d $classes ]; do sleep 0.05; done; \
         kill -9 $(cat /tmp/hoist-maven/pid)",
    );
    change_greeting("Howdy from", "Hello again from");
    let output = push_ok(&hoistd, &app, "spring");
    assert!(output.contains("Maven's server started again after 100 builds"), "{output}");
    assert!(output.contains("Maven's server stopped during the build"), "{output}");
    assert!(output.contains("Maven runs again as a new JVM"), "{output}");
    assert!(output.contains("[INFO] BUILD SUCCESS"), "{output}");
    assert!(page(&hoistd, "spring").starts_with("Hello again from Spring Boot"));

    // An app file of the same name as a library's must keep winning: its jar stays first
    // on the class path, and the JVM runs without the archive. (Maven as a JVM of its own
    // this time, which makes an archive of Maven's classes.)
    hoistd.cli(&["config", "set", "spring", "HOIST_MAVEN_SERVER=off"]);
    app.write("src/main/resources/META-INF/spring.factories", "# the app's own\n").commit("factories");
    let output = push_ok(&hoistd, &app, "spring");
    assert!(output.contains("Maven runs as a new JVM: HOIST_MAVEN_SERVER=off"), "{output}");
    assert!(output.contains("also makes a class-data-sharing archive of Maven's classes"), "{output}");
    assert!(!output.contains("[cds"), "a JVM's complaint about the archive stays out of the log\n{output}");
    assert!(
        output.contains(
            "demo-1.0.0-SNAPSHOT.jar shares META-INF/spring.factories with its libraries: the app's jar stays first"
        ),
        "{output}"
    );
    assert!(!output.contains("JAVA_TOOL_OPTIONS"), "{output}");
    assert!(page(&hoistd, "spring").starts_with("Hello again from Spring Boot"));
    assert_eq!(jvms_mapping_the_class_data(&hoistd, "spring"), (1, 0), "{output}");

    // A repackage with a classifier leaves Maven's plain jar beside the executable one and
    // no `.original` to split by: the jar with the layer index is split by Spring Boot's
    // own extract, and the Procfile's jar runs.
    let pom = app.dir.join("pom.xml");
    let plugin = "<artifactId>spring-boot-maven-plugin</artifactId>";
    let with_classifier = std::fs::read_to_string(&pom)
        .unwrap()
        .replace(plugin, &format!("{plugin}\n        <configuration><classifier>exec</classifier></configuration>"));
    std::fs::write(&pom, with_classifier).unwrap();
    app.write("Procfile", "web: java -Dserver.port=$PORT $JAVA_OPTS -jar target/demo-1.0.0-SNAPSHOT-exec.jar\n")
        .commit("classifier");
    let output = push_ok(&hoistd, &app, "spring");
    assert!(
        output.contains("Spring Boot jar split into layers (by Spring Boot's extract): 1-dependencies"),
        "{output}"
    );
    assert!(page(&hoistd, "spring").starts_with("Hello again from Spring Boot"));

    // Without ./mvnw, the stack's own Maven (Debian's) builds it, through Maven's server;
    // in the same push, the app moves to Spring Boot 4 (Spring Framework 7), as a user
    // upgrades: new libraries, so a new dependencies layer and a new class-data archive
    // (the app's spring.factories gone, nothing of it shadows a library any more).
    hoistd.cli(&["config", "unset", "spring", "HOIST_MAVEN_SERVER"]);
    let boot_4 =
        std::fs::read_to_string(&pom).unwrap().replacen("<version>3.5.16</version>", "<version>4.0.7</version>", 1);
    std::fs::write(&pom, boot_4).unwrap();
    app.remove("mvnw").remove("src/main/resources/META-INF/spring.factories").commit("no wrapper, Spring Boot 4");
    let output = push_ok(&hoistd, &app, "spring");
    assert!(!output.contains("Using the repo's ./mvnw"), "{output}");
    assert!(output.contains("-----> mvn -DskipTests clean package"), "{output}");
    assert!(output.contains("Starting Maven's server"), "{output}");
    assert!(!output.contains("Maven runs as a new JVM"), "{output}");
    assert!(output.contains("[INFO] BUILD SUCCESS"), "{output}");
    assert!(output.contains("spring-boot-maven-plugin:4.0.7:repackage"), "Spring Boot 4 built it\n{output}");
    assert!(
        output.contains("Spring Boot jar split into layers (by Spring Boot's extract): 1-dependencies"),
        "{output}"
    );
    assert!(output.contains("Class-data archive of the libraries made"), "{output}");
    assert!(page(&hoistd, "spring").starts_with("Hello again from Spring Boot"));
    assert_eq!(jvms_mapping_the_class_data(&hoistd, "spring"), (1, 1), "{output}");
}

/// Spring Boot 2 (Spring Framework 5.3), as many apps still are: its jar has the same
/// indexes as Boot 3's, so it is split the same way and a code change sends only the
/// application layer. It gets a class-data archive too, though Spring's switch that stops
/// a context once started (`spring.context.exit`) needs Framework 6.1: hoist's listener
/// stops the training run once the context has refreshed, after one GET /, and before the
/// app's own code runs: a CommandLineRunner and a @Scheduled task, added here, would fail
/// the training run if they ran there.
#[test]
fn a_spring_boot_2_app_is_split_into_layers_and_gets_a_class_data_archive_without_running_its_code() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("boot2");
    let app = WorkTree::new(&hoistd, "boot2", Some("java-spring-boot"));
    let pom = app.dir.join("pom.xml");
    let boot_2 =
        std::fs::read_to_string(&pom).unwrap().replacen("<version>3.5.16</version>", "<version>2.7.18</version>", 1);
    std::fs::write(&pom, boot_2).unwrap();
    // A runner and a scheduled task that stop the JVM (exit 3, 4) unless they run where
    // the app runs (PORT set).
    app.write(
        "src/main/java/com/example/demo/StartupTask.java",
        "package com.example.demo;\n\n\
         import org.springframework.boot.CommandLineRunner;\n\
         import org.springframework.context.annotation.Configuration;\n\
         import org.springframework.scheduling.annotation.EnableScheduling;\n\
         import org.springframework.scheduling.annotation.Scheduled;\n\n\
         @Configuration\n\
         @EnableScheduling\n\
         public class StartupTask implements CommandLineRunner {\n\
         \x20   @Override\n\
         \x20   public void run(String... args) {\n\
         \x20       if (System.getenv(\"PORT\") == null) System.exit(3);\n\
         \x20   }\n\n\
         \x20   @Scheduled(fixedRate = 60000)\n\
         \x20   public void everyMinute() {\n\
         \x20       if (System.getenv(\"PORT\") == null) System.exit(4);\n\
         \x20   }\n\
         }\n",
    );
    app.commit("spring boot 2, a runner");
    let output = push_ok(&hoistd, &app, "boot2");
    assert!(output.contains(":2.7.18:repackage"), "Spring Boot 2 built it\n{output}");
    assert!(output.contains("Spring Boot jar split into layers (by its indexes): 1-dependencies"), "{output}");
    assert!(
        output.contains(
            "the app's context started; GET / answered 200; stopped before its own listeners, scheduled tasks and runners"
        ),
        "{output}"
    );
    assert!(!output.contains("the training run stopped (exit"), "the app's code ran in the training run\n{output}");
    assert!(output.contains("Class-data archive of the libraries made ("), "{output}");
    assert!(page(&hoistd, "boot2").starts_with("Hello from Spring Boot on Java 17."));
    assert_eq!(jvms_mapping_the_class_data(&hoistd, "boot2"), (1, 1), "the JVM took the archive\n{output}");

    let java = app.dir.join("src/main/java/com/example/demo/DemoApplication.java");
    std::fs::write(&java, std::fs::read_to_string(&java).unwrap().replace("Hello from", "Hi from")).unwrap();
    app.commit("greeting");
    let output = push_ok(&hoistd, &app, "boot2");
    assert!(page(&hoistd, "boot2").starts_with("Hi from Spring Boot"));
    assert_eq!(layers_pushed(&output), 1, "only the application layer is new\n{output}");
    assert!(output.contains("dependencies layer unchanged ("), "{output}");
}

/// Of the app's running containers, once the release before has been retired (a push
/// returns when the new one is live, and the old one stops after): how many there are,
/// and in how many a process has mapped the class-data archive the Java buildpack made
/// (the JVM took it).
fn jvms_mapping_the_class_data(hoistd: &Hoistd, app: &str) -> (usize, usize) {
    let retired = || (hoistd.running_containers(app).len() <= 1).then_some(());
    hoist_tests::wait_for("the release before to be retired", std::time::Duration::from_secs(30), retired);
    let ids = hoistd.running_containers(app);
    let mapping = ids
        .iter()
        .filter(|id| {
            let maps = std::process::Command::new(hoist_tests::DOCKER)
                .args(["exec", id, "sh", "-c", "cat /proc/[0-9]*/maps"])
                .output()
                .unwrap();
            text(&maps).contains("/app/target/app.jsa")
        })
        .count();
    (ids.len(), mapping)
}

#[test]
fn cargo_binary_goes_live_on_the_default_rust() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("crab");
    let app = WorkTree::new(&hoistd, "crab", Some("rust-cargo"));
    app.commit("rust");
    let output = push_ok(&hoistd, &app, "crab");
    assert!(output.contains("Rust 1.85.0 from Debian trixie (the default; nothing asked for it)"), "{output}");
    assert!(output.contains("cargo build --release --locked"), "{output}");
    assert_eq!(page(&hoistd, "crab"), "Hello from Rust\n");
}

#[test]
fn a_python_app_asking_for_3_14_goes_live_on_debian_forkys_python() {
    // Heroku's Python getting-started app asks for 3.14 in `.python-version`; Debian
    // testing (forky) carries it, and its mirror's Release file is past Valid-Until.
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("py314");
    let app = WorkTree::new(&hoistd, "py314", None);
    app.write(".python-version", "3.14\n")
        .write("requirements.txt", "gunicorn==23.0.0\n")
        .write(
            "app.py",
            "import sys\n\ndef app(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [f'Hello from Python {sys.version.split()[0]}\\n'.encode()]\n",
        )
        .write("Procfile", "web: gunicorn app:app\n")
        .commit("python 3.14");
    let output = push_ok(&hoistd, &app, "py314");
    assert!(
        output.contains("Python 3.14.7 from Debian forky (.python-version asks for 3.14)"),
        "the build says which suite the version comes from\n{output}"
    );
    let body = page(&hoistd, "py314");
    assert!(body.starts_with("Hello from Python 3.14."), "{body}");
}

#[test]
fn a_version_that_cannot_be_had_is_rejected_before_anything_is_built() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("oldpy");
    let app = WorkTree::new(&hoistd, "oldpy", None);
    app.write("requirements.txt", "flask\n").write("runtime.txt", "python-3.8.10\n").commit("old python");
    let push = app.push(&hoistd.remote("oldpy"), "main");
    let output = text(&push);
    assert!(!push.status.success(), "{output}");
    assert!(
        output.contains("Python \"3.8.10\" (asked for in runtime.txt) cannot be had here; available: 3.14.7 (Debian forky), 3.13.5 (Debian trixie), 3.11.2 (Debian bookworm); change runtime.txt"),
        "{output}"
    );
    assert!(!output.contains("Preparing") && !output.contains("Running assemble"), "nothing was built\n{output}");
    let builds = hoistd.get_json("/api/v1/apps/oldpy/builds");
    assert_eq!(builds[0]["status"], "failed", "{builds}");
}

#[test]
fn the_app_setting_picks_among_several_markers_and_the_others_are_named() {
    let hoistd = Hoistd::start(&[]);
    let output = hoistd.cli(&["apps", "create", "both", "--buildpack", "static"]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("created app both"), "{}", show(&output));
    let app = WorkTree::new(&hoistd, "both", Some("static-site"));
    app.write("package.json", "{\"name\": \"both\"}\n").commit("two markers");
    let output = push_ok(&hoistd, &app, "both");
    assert!(output.contains("Detected static site app (the app's buildpack setting): buildpack static"), "{output}");
    assert!(output.contains("also found: node (package.json)"), "{output}");
    assert!(page(&hoistd, "both").contains("Hello from hoist"));

    let (status, body) = hoistd.call("PATCH", "/api/v1/apps/both", Some(r#"{"buildpack": "cobol"}"#));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("unknown buildpack \\\"cobol\\\""), "{body}");
    let (status, body) = hoistd.call("PATCH", "/api/v1/apps/both", Some(r#"{"buildpack": null}"#));
    assert_eq!(status, 200, "{body}");
    assert_eq!(hoistd.get_json("/api/v1/apps/both")["buildpack"], serde_json::Value::Null);
}

#[test]
fn a_build_that_runs_out_of_memory_says_which_limit_and_the_old_release_keeps_serving() {
    let hoistd = Hoistd::start(&[("HOIST_BUILD_MEMORY_MB", "64")]);
    hoistd.create_app("hog");
    let app = WorkTree::new(&hoistd, "hog", Some("static-site"));
    app.commit("site");
    push_ok(&hoistd, &app, "hog");

    // Holds 300 MB in a shell variable: far past the 64 MiB limit.
    app.write(
        ".s2i/bin/assemble",
        "#!/bin/sh\necho allocating\nx=$(head -c 300000000 /dev/zero | tr '\\0' a)\necho never\n",
    );
    std::process::Command::new("chmod").arg("+x").arg(app.dir.join(".s2i/bin/assemble")).status().unwrap();
    app.commit("hog memory");
    let push = app.push(&hoistd.remote("hog"), "main");
    let output = text(&push);
    assert!(!push.status.success(), "{output}");
    assert!(output.contains("the build ran out of memory (limit 64 MiB, build.memory_mb)"), "{output}");
    assert!(page(&hoistd, "hog").contains("Hello from hoist"), "the running release is untouched");
}

#[test]
fn an_installed_hoistd_finds_its_buildpacks_without_the_source_tree() {
    // A copy of the binary, away from the source tree, as an install would put it.
    let place = std::env::temp_dir().join(format!("hoist-installed-{}", std::process::id()));
    std::fs::create_dir_all(&place).unwrap();
    let program = place.join("hoistd");
    std::fs::copy(binary("hoistd"), &program).unwrap();
    let hoistd = Hoistd::start_program(program, &[]);
    hoistd.create_app("inst");
    let app = WorkTree::new(&hoistd, "inst", Some("static-site"));
    app.commit("site");
    let output = push_ok(&hoistd, &app, "inst");
    assert!(!output.contains("/daemon/../buildpacks"), "{output}");
    assert!(page(&hoistd, "inst").contains("Hello from hoist"));
    let log = std::fs::read_to_string(hoistd.dir.join("hoistd.log")).unwrap();
    assert!(log.contains(&format!("{}", hoistd.dir.join("data/buildpacks").display())), "{log}");
    let _ = std::fs::remove_dir_all(&place);
}

#[test]
fn s2i_environment_and_the_apps_config_vars_reach_assemble_config_winning() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("envs");
    hoistd.cli(&["config", "set", "envs", "GREETING=from-config"]);
    let app = WorkTree::new(&hoistd, "envs", Some("static-site"));
    app.write(".s2i/environment", "# S2I's file\nFROM_S2I=yes\nGREETING=from-repo\n").write(
        ".s2i/bin/assemble",
        "#!/bin/sh\nset -e\nmkdir -p /app\necho \"s2i=$FROM_S2I greeting=$GREETING\" > /app/index.html\n",
    );
    std::process::Command::new("chmod").arg("+x").arg(app.dir.join(".s2i/bin/assemble")).status().unwrap();
    app.commit("envs");
    let output = push_ok(&hoistd, &app, "envs");
    assert!(output.contains(".s2i/environment sets FROM_S2I, GREETING"), "{output}");
    assert!(output.contains("config vars reach the build: GREETING"), "{output}");
    assert!(!output.contains("from-config"), "values are not printed: {output}");
    assert_eq!(page(&hoistd, "envs").trim(), "s2i=yes greeting=from-config");
}

#[test]
fn a_build_printing_without_end_keeps_only_the_output_limit_and_still_deploys() {
    let hoistd = Hoistd::start(&[("HOIST_BUILD_LOG_LIMIT_MB", "1")]);
    hoistd.create_app("loud");
    let app = WorkTree::new(&hoistd, "loud", Some("static-site"));
    // 6 MB of lines, then 2 MB without a single line break, then the real work.
    app.write(
        ".s2i/bin/assemble",
        "#!/bin/sh\nset -e\nyes | head -c 6000000\nhead -c 2000000 /dev/zero | tr '\\0' x\nmkdir -p /app && cp -r /workspace/source/. /app/\necho assembled\n",
    );
    std::process::Command::new("chmod").arg("+x").arg(app.dir.join(".s2i/bin/assemble")).status().unwrap();
    app.commit("loud");
    let output = push_ok(&hoistd, &app, "loud");
    assert!(
        output.contains("Output limit reached: this log keeps 1 MiB of output"),
        "{}",
        &output[output.len().saturating_sub(3000)..]
    );
    assert!(output.contains("more lines of output were not kept"));
    assert!(page(&hoistd, "loud").contains("Hello from hoist"));
    let log = std::fs::metadata(hoistd.dir.join("data/logs/loud/build-1.log")).unwrap().len();
    assert!(log < 2 * 1024 * 1024, "the stored log is bounded: {log} bytes");
    let (status, body) = hoistd.get("/api/v1/apps/loud/builds/1/log");
    assert_eq!(status, 200);
    assert!(body.len() as u64 <= log && body.len() > 50 * 1024, "the text of the kept records: {}", body.len());
    let (status, body) = hoistd.get("/api/v1/apps/loud/releases/7/log");
    assert_eq!(status, 404, "{body}");
}

#[test]
fn a_node_app_whose_lock_file_is_out_of_sync_goes_live_with_a_warning_unless_strict() {
    let hoistd = Hoistd::start(&[]);
    hoistd.create_app("unsynced");
    let app = WorkTree::new(&hoistd, "unsynced", Some("node-express"));
    // A dependency added to package.json without updating package-lock.json, as
    // sclorg/nodejs-ex ships today: `npm ci` refuses it (EUSAGE, not in sync).
    let package = std::fs::read_to_string(app.dir.join("package.json")).unwrap();
    app.write(
        "package.json",
        &package.replace("\"express\": \"^4.21.2\"", "\"express\": \"^4.21.2\",\n    \"ms\": \"2.1.3\""),
    )
    .commit("a dependency the lock file lacks");
    let output = push_ok(&hoistd, &app, "unsynced");
    assert!(output.contains("WARNING: package-lock.json does not match package.json"), "{output}");
    assert!(output.contains("Installing dependencies: npm install"), "{output}");
    assert!(page(&hoistd, "unsynced").starts_with("Hello from Express"));

    // An app that asks for strictness gets the refusal instead.
    hoistd.cli(&["config", "set", "unsynced", "HOIST_NPM_STRICT=1"]);
    app.write("index.js", &std::fs::read_to_string(app.dir.join("index.js")).unwrap().replace("Hello", "Howdy"))
        .commit("one line");
    let push = app.push(&hoistd.remote("unsynced"), "main");
    let said = String::from_utf8_lossy(&push.stderr).to_string();
    assert!(!push.status.success(), "{said}");
    assert!(said.contains("in sync") && !said.contains("WARNING: package-lock.json"), "{said}");
    assert!(page(&hoistd, "unsynced").starts_with("Hello from Express"), "the running release keeps serving");
}
