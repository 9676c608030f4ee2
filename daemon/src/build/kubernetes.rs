//! The kubernetes build engine: each build is a pod in hoist's namespace, so builds
//! spread over the cluster's nodes, are bounded by the pod's requests and limits, and
//! need no Docker anywhere (OpenShift's BuildConfig and kpack work the same way).
//!
//! ```text
//!  pod <instance>-build-<app>-<n>   labels hoist.dev/build=<app>-<n>, hoist.dev/instance
//!    init "folders"  the stack's build image: makes /app, /deps and /layers (folders of
//!                    the workspace) the hoist user's
//!    "assemble"  the stack's build image, as the hoist user: `head -c N | tar -x` of what
//!                hoistd sends over an attach (the source and the buildpack's scripts; no
//!                token, no route from the pod to hoistd needed), then assemble, with
//!                /cache on the app's PersistentVolumeClaim, its output followed into the
//!                build's log; last, assemble's status in /workspace/assembled
//!    "export"    hoistd's own image, started beside it: `hoistd export --after
//!                /workspace/assembled` waits for that file, writes the layers and pushes
//!                them to the registry, and prints the digest as its last line
//! ```
//!
//! Assemble and the export side by side, not steps one after another: the kubelet
//! reports a container's start and end up to a second late (it relists every second), and
//! starts the next init container only once it has seen the last one end, so three steps
//! in a row cost seconds of waiting for reports (about 3 s of a 6 s build). Here both start
//! together, hoistd sends the source as soon as assemble runs, and reads the digest from
//! the export's output as it is printed; the kubelet's reports of their ends are read only
//! when a build fails (the exit code, an OOM kill). The one init container left makes the
//! output folders: mounted by sub-path, a folder nobody made is made by the kubelet as
//! root's, and the buildpacks' `tar -x` or `cp -a` into it could not set its time and mode.
//!
//! The dependency cache is a PersistentVolumeClaim per app (`<instance>-cache-<app>`):
//! assemble reads and writes it as a folder, as on dockerd, where a cache image would be
//! pulled and pushed whole on every build.
//!
//! Architecture invariant: no pod made here mounts a Docker socket or runs privileged;
//! every container drops all capabilities and runs as the hoist user.

use super::{Assembly, Engine, Job, Limits, Result, Source};
use crate::app::AppName;
use crate::archive;
use crate::logs::LiveLog;
use crate::registry::{self, Registry};
use crate::stack::{StackImages, StackSpec};
use futures_util::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::{ContainerState, PersistentVolumeClaim, Pod};
use kube::api::{Api, AttachParams, DeleteParams, ListParams, LogParams, PostParams};
use std::io::Write;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// What can go wrong with a build pod. Each message is shown to the pushing user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "stack {stack} is not in the registry {registry} (no {image}); build pods have no Docker to make it: \
         on a machine with Docker run `hoistd stacks prepare {name}{version} --push {registry}`"
    )]
    StackMissing { stack: String, registry: String, image: String, name: String, version: String },
    #[error(
        "this app has a Dockerfile, and builds run as pods without Docker (build.engine = kubernetes); \
         remove the Dockerfile to build with a buildpack, or push the image yourself and let hoist deploy it \
         (hoist images track)"
    )]
    Dockerfile,
    #[error("the Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("registry: {0}")]
    Registry(#[from] registry::Error),
    #[error("build pod {pod} could not start {container}: {reason}: {message}")]
    CannotStart { pod: String, container: String, reason: String, message: String },
    #[error("build pod {pod} is gone (deleted during the build); push again")]
    Gone { pod: String },
    #[error("the export in build pod {pod} failed (exit code {code}): {message}")]
    Export { pod: String, code: i32, message: String },
    #[error("cannot attach to build pod {pod}: {message}")]
    Attach { pod: String, message: String },
}

/// Settings of the build pods.
#[derive(Debug, Clone)]
pub struct Settings {
    pub instance: String,
    /// Where build pods and cache claims are made (hoist's own namespace).
    pub namespace: String,
    /// hoistd's image: runs `hoistd export` in each build pod.
    pub export_image: String,
    pub limits: Limits,
    /// A failed build's pod is kept this long (for `kubectl logs`), then removed.
    pub keep_failed: Duration,
    /// The size each app's dependency cache claim asks for (`2Gi`).
    pub cache_size: String,
    /// The storage class of the cache claims; unset: the cluster's default.
    pub cache_class: Option<String>,
    /// A build pod running longer is stopped by Kubernetes (`activeDeadlineSeconds`).
    pub timeout: Duration,
}

/// Builds in pods; cheap to clone.
#[derive(Clone)]
pub struct PodEngine {
    client: kube::Client,
    registry: Registry,
    settings: Settings,
}

/// Label of every build pod: `<app>-<build number>`.
pub const LABEL_BUILD: &str = "hoist.dev/build";
/// Where the assemble container leaves its status (`0` when it succeeded) for the export
/// beside it, which waits for the file (`hoistd export --after`).
pub const ASSEMBLED: &str = "/workspace/assembled";
/// The export's line that carries its result (JSON), the last it prints.
pub const EXPORT_RESULT: &str = "hoist-export-result ";
/// The assemble container's command (`sh -c`, $1 the assemble script, $2 the size of
/// what hoistd sends, $3 the line that ends its output): unpack, run assemble in the
/// source, then leave its status for the export, whole or not at all, and say it ended.
/// hoistd stops following its output at that line: the output's own end comes only when
/// the kubelet has seen the container end, up to a second later. Assemble's input is
/// /dev/null, as on dockerd, not the attachment the source came through.
const ASSEMBLE_SCRIPT: &str = r#"status=0
if head -c "$2" | tar -x -C /workspace; then
  cd /workspace/source && "$1" </dev/null || status=$?
else
  echo "error: the source did not reach this build pod whole; push again" >&2
  status=1
fi
echo "$status" > /workspace/assembled.new && mv /workspace/assembled.new /workspace/assembled
echo "$3"
exit "$status""#;
const LABEL_INSTANCE: &str = "hoist.dev/instance";
const LABEL_APP: &str = "hoist.dev/app";

impl PodEngine {
    pub fn new(client: kube::Client, registry: Registry, settings: Settings) -> PodEngine {
        PodEngine { client, registry, settings }
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    fn pod_name(&self, source: &Source) -> String {
        format!("{}-build-{}-{}", self.settings.instance, source.app, source.build_id)
    }

    fn cache_claim(&self, app: &AppName) -> String {
        format!("{}-cache-{}", self.settings.instance, app)
    }

    /// The app's cache claim, made when missing.
    async fn ensure_cache(&self, app: &AppName) -> Result<String> {
        let name = self.cache_claim(app);
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let mut spec = serde_json::json!({
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": self.settings.cache_size}},
        });
        if let Some(class) = &self.settings.cache_class {
            spec["storageClassName"] = serde_json::json!(class);
        }
        let claim: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "labels": {LABEL_INSTANCE: self.settings.instance, LABEL_APP: app.as_str()}},
            "spec": spec,
        }))
        .expect("a claim of known fields");
        match claims.create(&PostParams::default(), &claim).await {
            Ok(_) => {}
            Err(kube::Error::Api(response)) if response.code == 409 => {}
            Err(error) => return Err(Error::Kube(error).into()),
        }
        // A pod whose claim is not bound yet is put aside by the scheduler, which may
        // look at it again only minutes later: wait for the binding first (briefly: a
        // class that binds at the first consumer binds only once the pod is scheduled).
        for _ in 0..50 {
            let bound = claims.get_opt(&name).await.ok().flatten().and_then(|c| c.status).and_then(|s| s.phase);
            if bound.as_deref() == Some("Bound") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(name)
    }

    /// The build's files for the source container: `source/` and `buildpack/bin/*`,
    /// unpacked into `/workspace`.
    fn files(&self, job: &Job<'_>) -> Result<Vec<u8>> {
        let path = job.source.work.path().join("pod-files.tar");
        let mut files = archive::Writer::create(&path, archive::APP_UID)?;
        files.dir("source/")?;
        files.append_rebased(&job.source.tar, 0, "source/")?;
        files.dir("buildpack/")?;
        files.dir("buildpack/bin/")?;
        for (script, bytes) in &job.scripts {
            files.file(&format!("buildpack/bin/{script}"), 0o755, bytes)?;
        }
        files.finish()?.flush()?;
        Ok(std::fs::read(&path)?)
    }

    fn manifest(&self, job: &Job<'_>, name: &str, cache: &str, size: usize) -> Result<Pod> {
        let settings = &self.settings;
        let limits = &settings.limits;
        let assemble = match job.s2i_assemble {
            true => "/workspace/source/.s2i/bin/assemble",
            false => "/workspace/buildpack/bin/assemble",
        };
        let mut env: Vec<serde_json::Value> = job
            .env
            .iter()
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                serde_json::json!({"name": name, "value": value})
            })
            .collect();
        env.push(serde_json::json!({"name": "SOURCE_DIR", "value": "/workspace/source"}));
        env.push(serde_json::json!({"name": "HOME", "value": "/workspace"}));
        let plan = serde_json::to_string(&job.export).map_err(|e| std::io::Error::other(e.to_string()))?;
        let secure = serde_json::json!({
            "allowPrivilegeEscalation": false,
            "privileged": false,
            "capabilities": {"drop": ["ALL"]},
        });
        // /app, /deps and /layers are folders of the workspace that the init container
        // makes, so they belong to the hoist user as on dockerd: a folder a sub-path names
        // would be made by the kubelet, as root's, and an emptyDir of its own is root's
        // too (writable, but a buildpack's `tar -x` or `cp -a` into it fails to set its
        // time and mode).
        let mount = |folder: &str, path: &str, read_only: bool| match folder {
            "workspace" | "cache" => serde_json::json!({"name": folder, "mountPath": path, "readOnly": read_only}),
            _ => serde_json::json!({
                "name": "workspace", "mountPath": path, "readOnly": read_only, "subPath": format!("out/{folder}"),
            }),
        };
        let builder_resources = serde_json::json!({
            "limits": {"memory": format!("{}Mi", limits.memory_mb), "cpu": format!("{}m", (limits.cpus * 1000.0) as u64)},
            "requests": {"memory": format!("{}Mi", (limits.memory_mb / 4).max(64)), "cpu": "250m"},
        });
        let pod = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "labels": {
                    LABEL_BUILD: format!("{}-{}", job.source.app, job.source.build_id),
                    LABEL_INSTANCE: settings.instance,
                    LABEL_APP: job.source.app.as_str(),
                    "app.kubernetes.io/managed-by": "hoistd",
                },
            },
            "spec": {
                "restartPolicy": "Never",
                "activeDeadlineSeconds": settings.timeout.as_secs().max(1),
                "automountServiceAccountToken": false,
                "enableServiceLinks": false,
                "securityContext": {
                    "runAsUser": archive::APP_UID,
                    "runAsGroup": archive::APP_UID,
                    "runAsNonRoot": true,
                    "fsGroup": archive::APP_UID,
                },
                "volumes": [
                    {"name": "workspace", "emptyDir": {}},
                    {"name": "cache", "persistentVolumeClaim": {"claimName": cache}},
                ],
                "initContainers": [{
                    "name": "folders",
                    "image": job.stack.build,
                    "command": ["mkdir", "-p", "/workspace/out/app", "/workspace/out/deps", "/workspace/out/layers"],
                    "volumeMounts": [mount("workspace", "/workspace", false)],
                    "resources": {
                        "limits": {"memory": "64Mi", "cpu": "1"},
                        "requests": {"memory": "16Mi", "cpu": "50m"},
                    },
                    "securityContext": secure,
                }],
                "containers": [
                    {
                        "name": "assemble",
                        "image": job.stack.build,
                        "command": ["sh", "-c", ASSEMBLE_SCRIPT, "assemble", assemble, size.to_string(), assembled_line(name)],
                        "stdin": true,
                        "stdinOnce": true,
                        "workingDir": "/workspace",
                        "env": env,
                        "volumeMounts": [
                            mount("workspace", "/workspace", false),
                            mount("app", "/app", false),
                            mount("deps", "/deps", false),
                            mount("layers", super::LAYERS_DIR, false),
                            mount("cache", "/cache", false),
                        ],
                        "resources": builder_resources,
                        "securityContext": secure,
                    },
                    {
                        "name": "export",
                        "image": settings.export_image,
                        "command": ["hoistd", "export", "--after", ASSEMBLED],
                        "env": [{"name": "HOIST_EXPORT_PLAN", "value": plan}],
                        "volumeMounts": [
                            mount("workspace", "/workspace", false),
                            mount("app", "/app", true),
                            mount("deps", "/deps", true),
                            mount("layers", super::LAYERS_DIR, true),
                        ],
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                    "resources": {"limits": {"memory": "512Mi", "cpu": "1"}, "requests": {"memory": "64Mi", "cpu": "100m"}},
                    "securityContext": secure,
                }],
            },
        });
        Ok(serde_json::from_value(pod).map_err(|e| std::io::Error::other(e.to_string()))?)
    }

    /// Sends the source to the pod's assemble container, follows its output and then the
    /// export's into `log`; the exported digest. The kubelet's reports of the containers'
    /// ends are read only when no digest came.
    async fn run(&self, job: &Job<'_>, name: &str, files: Vec<u8>, log: &LiveLog) -> Result<String> {
        let pods = self.pods();
        let attach = |message: String| Error::Attach { pod: name.to_string(), message };
        let params = AttachParams::default().container("assemble").stdin(true).stdout(false).stderr(false);
        // Attached once the kubelet reported the container running, up to a second after
        // it started: an attachment made before, which the kubelet may accept, lost what
        // was sent (the source never reached assemble).
        let state = wait_container(&pods, name, "assemble", Until::Running).await?;
        let attached = match state.running {
            Some(_) => Some(pods.attach(name, &params).await.map_err(|e| attach(e.to_string()))?),
            None => None,
        };
        let node = pods.get(name).await.ok().and_then(|p| p.spec).and_then(|s| s.node_name).unwrap_or_default();
        log.line(format!("-----> Building in pod {name} (node {node})"));
        if let Some(mut attached) = attached {
            let mut input = attached.stdin().ok_or_else(|| attach("no stdin".to_string()))?;
            input.write_all(&files).await.map_err(|e| attach(e.to_string()))?;
            input.shutdown().await.map_err(|e| attach(e.to_string()))?;
            drop(input);
            log.line(format!("-----> Running assemble of buildpack {}", job.buildpack));
            self.follow_assemble(&pods, name, log).await?;
            // Not before: closing the attachment may drop what it has yet to send.
            drop(attached);
        }

        // The export prints the digest once assemble succeeded; should assemble have
        // failed, or died before it could say so, the export has nothing to wait for.
        let exported = async {
            wait_container(&pods, name, "export", Until::Running).await?;
            self.export_result(&pods, name, log).await
        };
        let assemble_failed = async {
            let ended = wait_container(&pods, name, "assemble", Until::Ended).await?;
            match self.assemble_error(job, &ended) {
                Some(error) => Ok::<_, super::Error>(error),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            digest = exported => if let Some(digest) = digest? { return Ok(digest) },
            error = assemble_failed => return Err(error?),
        }
        let ended = wait_container(&pods, name, "assemble", Until::Ended).await?;
        if let Some(error) = self.assemble_error(job, &ended) {
            return Err(error);
        }
        let ended = wait_container(&pods, name, "export", Until::Ended).await?;
        let terminated = ended.terminated.unwrap_or_default();
        let message = terminated.message.unwrap_or_default();
        let last = message.trim().lines().last().unwrap_or("see the lines above").to_string();
        Err(Error::Export { pod: name.to_string(), code: terminated.exit_code, message: last }.into())
    }

    /// Why the assemble container failed, if it did.
    fn assemble_error(&self, job: &Job<'_>, ended: &ContainerState) -> Option<super::Error> {
        let terminated = ended.terminated.clone().unwrap_or_default();
        if terminated.reason.as_deref() == Some("OOMKilled") {
            return Some(super::Error::OutOfMemory { limit_mb: self.settings.limits.memory_mb });
        }
        (terminated.exit_code != 0).then(|| super::Error::AssembleFailed {
            buildpack: job.buildpack.to_string(),
            code: i64::from(terminated.exit_code),
        })
    }

    /// Follows the export's output into `log` up to its result line; the digest it
    /// carries, or none if the export ended without one.
    async fn export_result(&self, pods: &Api<Pod>, name: &str, log: &LiveLog) -> Result<Option<String>> {
        let params = LogParams { container: Some("export".to_string()), follow: true, ..Default::default() };
        let mut lines = pods.log_stream(name, &params).await.map_err(Error::from)?.lines();
        while let Some(Ok(line)) = lines.next().await {
            let Some(result) = line.strip_prefix(EXPORT_RESULT) else {
                log.line(line);
                continue;
            };
            let result: ExportResult = serde_json::from_str(result).map_err(|e| Error::Export {
                pod: name.to_string(),
                code: 0,
                message: format!("its result {result:?} is not readable: {e}"),
            })?;
            return Ok(Some(result.digest));
        }
        Ok(None)
    }

    /// Follows the assemble container's output into `log`, as indented output, up to the
    /// line that says it ended (or the output's end).
    async fn follow_assemble(&self, pods: &Api<Pod>, name: &str, log: &LiveLog) -> Result<()> {
        let params = LogParams { container: Some("assemble".to_string()), follow: true, ..Default::default() };
        let mut reader = pods.log_stream(name, &params).await.map_err(Error::from)?;
        let mut lines = super::OutputLines::new(log);
        let mut buffer = vec![0u8; 64 * 1024];
        let end = assembled_line(name);
        loop {
            use futures_util::AsyncReadExt;
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) if lines.push_until(&buffer[..n], Some(&end)) => break,
                Ok(_) => {}
            }
        }
        lines.finish();
        Ok(())
    }

    /// Removes a build's pod: at once after a success, after `keep_failed` after a failure.
    fn remove_later(&self, name: String, failed: bool) {
        let (pods, keep) = (self.pods(), self.settings.keep_failed);
        tokio::spawn(async move {
            if failed {
                tokio::time::sleep(keep).await;
            }
            let _ = pods.delete(&name, &DeleteParams::default().grace_period(0)).await;
        });
    }

    async fn delete_pods(&self, selector: &str) {
        let pods = self.pods();
        let listed = match pods.list(&ListParams::default().labels(selector)).await {
            Ok(listed) => listed,
            Err(error) => {
                tracing::warn!(%error, selector, "cannot list build pods");
                return;
            }
        };
        for pod in listed.items {
            let Some(name) = pod.metadata.name else { continue };
            match pods.delete(&name, &DeleteParams::default().grace_period(0)).await {
                Ok(_) => tracing::info!(pod = %name, "removed a build pod"),
                Err(error) => tracing::warn!(pod = %name, %error, "cannot remove a build pod"),
            }
        }
    }
}

/// The line the assemble container ends its output with: named after the pod, so no
/// other build's output says it.
fn assembled_line(pod: &str) -> String {
    format!("-----> hoist: assemble in {pod} ended")
}

/// What `hoistd export` prints as its last line (after [`EXPORT_RESULT`]) and leaves as
/// its termination message.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ExportResult {
    pub digest: String,
}

#[async_trait::async_trait]
impl Engine for PodEngine {
    fn describe(&self) -> String {
        format!("pods in namespace {}", self.settings.namespace)
    }

    async fn stack(&self, spec: &StackSpec, log: &LiveLog) -> Result<(StackImages, String)> {
        let repository = spec.repository();
        let mut found = Vec::new();
        for kind in ["build", "run"] {
            let tag = spec.tag(kind);
            let image = format!("{}/{repository}:{tag}", self.registry.addr());
            match self.registry.manifest(&repository, &tag).await {
                Ok((_, digest)) => found.push((image, digest)),
                Err(_) => {
                    return Err(Error::StackMissing {
                        stack: spec.describe(),
                        registry: self.registry.addr().to_string(),
                        image,
                        name: spec.name.clone(),
                        version: spec.version.as_ref().map(|v| format!(" --version {v}")).unwrap_or_default(),
                    }
                    .into())
                }
            }
        }
        let (run, _) = found.pop().expect("two images");
        let (build, build_digest) = found.pop().expect("two images");
        log.line(format!("-----> Stack {}: {build}", spec.describe()));
        Ok((StackImages { build, run }, build_digest))
    }

    async fn dockerfile(&self, _source: &Source, _reference: &str, _log: &LiveLog) -> Result<()> {
        Err(Error::Dockerfile.into())
    }

    async fn assemble(&self, job: &Job<'_>, log: &LiveLog) -> Result<Assembly> {
        let name = self.pod_name(job.source);
        let cache = self.ensure_cache(&job.source.app).await?;
        let files = self.files(job)?;
        let pod = self.manifest(job, &name, &cache, files.len())?;
        let pods = self.pods();
        // A pod of this name is a leftover of a build cut off before its record said so.
        let _ = pods.delete(&name, &DeleteParams::default().grace_period(0)).await;
        for _ in 0..50 {
            if pods.get_opt(&name).await.ok().flatten().is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        pods.create(&PostParams::default(), &pod).await.map_err(Error::from)?;
        let result = self.run(job, &name, files, log).await;
        self.remove_later(name, result.is_err());
        Ok(Assembly::Exported { digest: result? })
    }

    async fn cancel(&self, source: &Source) {
        let _ = self.pods().delete(&self.pod_name(source), &DeleteParams::default().grace_period(0)).await;
    }

    async fn stop_builds(&self, app: &AppName) {
        self.delete_pods(&format!("{LABEL_INSTANCE}={},{LABEL_APP}={app},{LABEL_BUILD}", self.settings.instance)).await;
    }

    async fn remove_cache(&self, app: &AppName) {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        match claims.delete(&self.cache_claim(app), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(response)) if response.code == 404 => {}
            Err(error) => tracing::warn!(%app, %error, "cannot remove the build cache claim"),
        }
    }

    async fn recover(&self) {
        // Builds cut off by a stop are marked interrupted; their pods (running or kept
        // after a failure) go, so none runs unrecorded.
        self.delete_pods(&format!("{LABEL_INSTANCE}={},{LABEL_BUILD}", self.settings.instance)).await;
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Until {
    Running,
    Ended,
}

/// Waits until `container` of pod `name` runs (or ended) or ended; a container that
/// cannot start (bad image, a pull failing for a minute) or a pod that is gone or failed
/// before it ran is an error.
async fn wait_container(pods: &Api<Pod>, name: &str, container: &str, until: Until) -> Result<ContainerState> {
    let mut pull_trouble_since: Option<Instant> = None;
    let cannot = |reason: String, message: String| Error::CannotStart {
        pod: name.to_string(),
        container: container.to_string(),
        reason,
        message,
    };
    loop {
        let pod = match pods.get_opt(name).await.map_err(Error::from)? {
            Some(pod) => pod,
            None => return Err(Error::Gone { pod: name.to_string() }.into()),
        };
        let status = pod.status.unwrap_or_default();
        let state = status
            .init_container_statuses
            .unwrap_or_default()
            .into_iter()
            .chain(status.container_statuses.unwrap_or_default())
            .find(|c| c.name == container)
            .and_then(|c| c.state)
            .unwrap_or_default();
        if state.terminated.is_some() || (until == Until::Running && state.running.is_some()) {
            return Ok(state);
        }
        // The pod failed before this container ran: the deadline, an earlier step.
        if status.phase.as_deref() == Some("Failed") && state.running.is_none() {
            let reason = status.reason.unwrap_or_else(|| "Failed".to_string());
            let message = status.message.unwrap_or_else(|| "the pod failed before this step ran".to_string());
            return Err(cannot(reason, message).into());
        }
        if let Some(waiting) = state.waiting {
            let reason = waiting.reason.unwrap_or_default();
            let message = waiting.message.unwrap_or_default();
            match reason.as_str() {
                "InvalidImageName" | "CreateContainerConfigError" | "CreateContainerError" => {
                    return Err(cannot(reason, message).into())
                }
                "ErrImagePull" | "ImagePullBackOff" => {
                    let since = *pull_trouble_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_secs(60) {
                        return Err(cannot(reason, message).into());
                    }
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_images_in_the_registry() {
        let node = StackSpec { name: "node".into(), suite: "bookworm".into(), version: Some("22.12.0".into()) };
        assert_eq!(node.tag("build"), "22.12.0-build");
        assert_eq!(node.repository(), "stacks/node");
        let base = StackSpec { name: "base".into(), suite: "bookworm".into(), version: None };
        assert_eq!(base.tag("run"), "run");
    }
}
