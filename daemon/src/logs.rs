//! The log hub: one timeline per build and per release, stored as records (sequence
//! number, time, stage, text) in a file under the data dir as it happens, and followed
//! live by any number of readers (the pushing `git`, the CLI, the API's SSE, the page).
//!
//! ```text
//!  LiveLog::line ─▶ mask secrets ─▶ append record to <logs>/<app>/build-N.log ─▶ watch (last seq)
//!                                                                  │
//!  Follower: read the file from sequence S ─▶ at its end, wait for the watch ─▶ read on ─▶ …
//!            until the LiveLog is dropped (the build or rollout is over), then the rest
//! ```
//!
//! Architecture invariant: a record is in the file before any follower hears of it, and
//! followers read only the file; so a follower that joins late or reads slowly gets every
//! line exactly once, in order, whatever the writer did meanwhile. A record's sequence
//! number is its line number in the file.

use crate::app::AppName;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;

/// One line of a timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// 1 for the first line of the log, then one more per line.
    pub seq: u64,
    /// When hoistd wrote it (RFC 3339, UTC, milliseconds).
    pub time: String,
    /// The pipeline step it belongs to: receive, build, push, rollout, runtime.
    pub stage: String,
    pub text: String,
}

/// Pipeline steps, as records name them.
pub mod stage {
    pub const RECEIVE: &str = "receive";
    pub const BUILD: &str = "build";
    pub const PUSH: &str = "push";
    pub const ROLLOUT: &str = "rollout";
    /// The release phase: a Procfile `release:` command before traffic moves.
    pub const RELEASE: &str = "release";
    /// `hoist rebase`: the app's layers put on its stack's current run image.
    pub const REBASE: &str = "rebase";
    /// A running release's output (runtime logs; never stored).
    pub const RUNTIME: &str = "runtime";
}

/// What is written in place of a secret.
pub const MASK: &str = "********";

/// Where logs live on disk, and which of them are being written right now.
#[derive(Debug, Clone)]
pub struct LogDir {
    root: PathBuf,
    live: Arc<Mutex<HashMap<PathBuf, Weak<LiveLog>>>>,
    /// Masked in every log: hoistd's own tokens.
    secrets: Arc<Vec<String>>,
}

impl LogDir {
    pub fn new(root: PathBuf) -> LogDir {
        LogDir { root, live: Arc::default(), secrets: Arc::default() }
    }

    /// Masks these values (hoistd's tokens) in every log opened from now on.
    pub fn with_secrets(self, secrets: Vec<String>) -> LogDir {
        LogDir { secrets: Arc::new(secrets), ..self }
    }

    pub fn build_log(&self, app: &AppName, build_id: i64) -> PathBuf {
        self.root.join(app.as_str()).join(format!("build-{build_id}.log"))
    }

    pub fn release_log(&self, app: &AppName, number: i64) -> PathBuf {
        self.root.join(app.as_str()).join(format!("release-{number}.log"))
    }

    pub fn app_dir(&self, app: &AppName) -> PathBuf {
        self.root.join(app.as_str())
    }

    /// The log being written at `path`, or a new one appending to the file there; while
    /// it lives, followers of `path` wait for its lines.
    pub fn open(&self, path: &Path) -> std::io::Result<Arc<LiveLog>> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(log) = live.get(path).and_then(Weak::upgrade) {
            return Ok(log);
        }
        live.retain(|_, log| log.strong_count() > 0);
        let log = LiveLog::create(path)?;
        log.mask(self.secrets.iter().cloned());
        live.insert(path.to_path_buf(), Arc::downgrade(&log));
        Ok(log)
    }

    /// Reads the log at `path` from record `after + 1`; with `follow`, waits for the
    /// lines of a log still being written until it is done. `None` when there is no such
    /// log.
    pub async fn follow(&self, path: &Path, after: u64, follow: bool) -> std::io::Result<Option<Follower>> {
        // Subscribe before opening the file: a line written in between is then both in
        // the file and announced, never neither.
        let live = if follow {
            let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            live.get(path).and_then(Weak::upgrade).map(|log| log.latest.subscribe())
        } else {
            None
        };
        let file = match tokio::fs::File::open(path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(Follower { reader: tokio::io::BufReader::new(file), partial: Vec::new(), seq: 0, after, live }))
    }

    /// Removes the logs of builds older than the newest `keep` of an app.
    pub fn prune_builds(&self, app: &AppName, keep: usize) -> usize {
        let Ok(entries) = std::fs::read_dir(self.app_dir(app)) else { return 0 };
        let mut ids: Vec<i64> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix("build-")?.strip_suffix(".log")?.parse().ok()
            })
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        let mut removed = 0;
        for id in ids.into_iter().skip(keep) {
            if std::fs::remove_file(self.build_log(app, id)).is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

/// How much output (a build's tools, an app's) one log keeps, unless told otherwise.
pub const DEFAULT_OUTPUT_LIMIT: u64 = 16 * 1024 * 1024;

/// A log being written. Dropping the last handle ends it for its followers.
#[derive(Debug)]
pub struct LiveLog {
    path: PathBuf,
    /// The file and the sequence number of its last record.
    file: Mutex<(File, u64)>,
    /// The sequence number of the last record written; followers wait on it.
    latest: watch::Sender<u64>,
    /// Bytes of output lines kept so far, and the most that are kept.
    output: Mutex<OutputBudget>,
    stage: Mutex<&'static str>,
    /// Values replaced by [`MASK`] in every line.
    secrets: RwLock<Secrets>,
}

#[derive(Debug)]
struct OutputBudget {
    used: u64,
    limit: u64,
    dropped_lines: u64,
}

/// Bytes a stored record takes besides its text: `{"seq":…,"time":"…","stage":"…","text":""}`.
const RECORD_OVERHEAD: u64 = 80;

/// Secrets shorter than this are not masked: they would mask ordinary words.
const SHORTEST_MASKED_SECRET: usize = 4;

impl LiveLog {
    /// Creates (or appends to) the log file at `path`, with no followers; use
    /// [`LogDir::open`] for logs people follow.
    pub fn create(path: &Path) -> std::io::Result<Arc<LiveLog>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).read(true).open(path)?;
        let seq = count_lines(&file)?;
        let (latest, _) = watch::channel(seq);
        let output = Mutex::new(OutputBudget { used: 0, limit: DEFAULT_OUTPUT_LIMIT, dropped_lines: 0 });
        Ok(Arc::new(LiveLog {
            path: path.to_path_buf(),
            file: Mutex::new((file, seq)),
            latest,
            output,
            stage: Mutex::new(stage::BUILD),
            secrets: RwLock::default(),
        }))
    }

    /// Sets how many bytes of output lines this log keeps.
    pub fn limit_output(&self, bytes: u64) {
        self.output.lock().unwrap_or_else(|p| p.into_inner()).limit = bytes;
    }

    /// The stage the lines written from now on belong to.
    pub fn set_stage(&self, stage: &'static str) {
        *self.stage.lock().unwrap_or_else(|p| p.into_inner()) = stage;
    }

    /// Masks these values in every line written from now on.
    pub fn mask<I, S>(&self, secrets: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.secrets.write().unwrap_or_else(|p| p.into_inner()).extend(secrets);
    }

    /// `text` with the secrets masked: for output cut into pieces before it reaches
    /// [`LiveLog::output`], so a secret is masked before a cut can split it.
    pub fn masked(&self, text: &str) -> String {
        self.secrets.read().unwrap_or_else(|p| p.into_inner()).mask(text)
    }

    /// Bytes of the longest masked value (or line of one): how much of a piece of output
    /// to hold back in case a secret continues in the next piece.
    pub fn longest_secret(&self) -> usize {
        self.secrets.read().unwrap_or_else(|p| p.into_inner()).longest()
    }

    /// Appends a line of a program's output (a build tool, a container): kept until the
    /// log's output limit, then dropped, with one line saying so; hoist's own lines
    /// (`line`) are always kept, so the outcome is never lost.
    pub fn output(&self, text: impl AsRef<str>) {
        let text = text.as_ref();
        let marker = {
            let mut budget = self.output.lock().unwrap_or_else(|p| p.into_inner());
            if budget.used >= budget.limit {
                budget.dropped_lines += text.lines().count().max(1) as u64;
                return;
            }
            // What the stored records take: the text and each record's fields.
            budget.used += text.len() as u64 + RECORD_OVERHEAD * text.lines().count().max(1) as u64;
            (budget.used >= budget.limit).then_some(budget.limit)
        };
        self.line(text);
        if let Some(limit) = marker {
            self.line(format!(
                " !     Output limit reached: this log keeps {} MiB of output; the rest is not stored or shown",
                limit / (1024 * 1024)
            ));
        }
    }

    /// Output lines dropped by the limit so far.
    pub fn dropped_output_lines(&self) -> u64 {
        self.output.lock().unwrap_or_else(|p| p.into_inner()).dropped_lines
    }

    /// Appends `text`, one record per line of it; trailing whitespace is trimmed,
    /// carriage-return progress output keeps only its last state, and secrets are masked.
    pub fn line(&self, text: impl AsRef<str>) {
        let stage = *self.stage.lock().unwrap_or_else(|p| p.into_inner());
        for line in text.as_ref().lines() {
            let line = line.rsplit('\r').next().unwrap_or("").trim_end();
            self.append(now(), stage, line);
        }
    }

    /// Appends the records of the log at `path` with their own times and stages, numbered
    /// on from this log's last: what led to this log's lines (a rebase's work, before
    /// the rollout of the release it made).
    pub fn copy_from(&self, path: &Path) -> std::io::Result<()> {
        for line in std::fs::read_to_string(path)?.lines() {
            if let Ok(record) = serde_json::from_str::<Record>(line) {
                self.append(record.time, &record.stage, &record.text);
            }
        }
        Ok(())
    }

    /// One record of one line, its secrets masked.
    fn append(&self, time: String, stage: &str, line: &str) {
        let text = self.masked(line);
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let seq = file.1 + 1;
        let record = Record { seq, time, stage: stage.to_string(), text };
        let mut bytes = serde_json::to_vec(&record).expect("a record serialises");
        bytes.push(b'\n');
        match file.0.write_all(&bytes) {
            Ok(()) => {
                file.1 = seq;
                // Announced while the file lock is held, so announcements stay in order.
                self.latest.send_replace(seq);
            }
            Err(error) => tracing::warn!(path = %self.path.display(), %error, "cannot write log line"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Values that never reach a log or an answer in clear. Logs are stored and sent line by
/// line, so a value of several lines (a PEM key) is masked line by line too: each of its
/// lines is a value of its own.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// Longest first, so a secret that contains another is masked whole.
    values: Vec<String>,
}

impl Secrets {
    pub fn new<I, S>(values: I) -> Secrets
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut secrets = Secrets::default();
        secrets.extend(values);
        secrets
    }

    /// Adds these values (and each line of a multi-line one).
    pub fn extend<I, S>(&mut self, values: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for value in values {
            let value: String = value.into();
            let lines = value.lines().map(|line| line.trim()).filter(|line| *line != value);
            let fragments: Vec<String> = lines.map(str::to_string).chain(std::iter::once(value.clone())).collect();
            self.values.extend(fragments.into_iter().filter(|s| s.len() >= SHORTEST_MASKED_SECRET));
        }
        self.values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        self.values.dedup();
    }

    /// `text` with every secret replaced by [`MASK`].
    pub fn mask(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in &self.values {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), MASK);
            }
        }
        text
    }

    /// Bytes of the longest value.
    pub fn longest(&self) -> usize {
        self.values.first().map_or(0, String::len)
    }
}

/// `text` from outside (a webhook's pusher name, a commit message, git's stderr) made
/// safe to put in a log: control characters (newlines that would forge log lines,
/// escape sequences a terminal would obey) become spaces, and at most `max` bytes are kept.
pub fn printable(text: &str, max: usize) -> String {
    let mut clean: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if clean.len() > max {
        let mut end = max;
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        clean.truncate(end);
        clean.push('…');
    }
    clean
}

/// The current time as records carry it.
pub fn now() -> String {
    format!("{:.3}", jiff::Timestamp::now())
}

fn count_lines(file: &File) -> std::io::Result<u64> {
    use std::io::Read;
    let mut reader = std::io::BufReader::new(file);
    let mut buffer = [0u8; 64 * 1024];
    let mut lines = 0;
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            return Ok(lines);
        }
        lines += buffer[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

/// A reader of one log from a sequence number on (see the module's doc).
#[derive(Debug)]
pub struct Follower {
    reader: tokio::io::BufReader<tokio::fs::File>,
    /// Bytes of a line whose end is not written yet.
    partial: Vec<u8>,
    /// The sequence number of the last line read.
    seq: u64,
    /// Lines up to this sequence number are skipped.
    after: u64,
    /// Present while the log is being written and followed.
    live: Option<watch::Receiver<u64>>,
}

impl Follower {
    /// The next record; `None` at the end of a finished log (or of what is written, when
    /// not following).
    pub async fn next(&mut self) -> std::io::Result<Option<Record>> {
        loop {
            self.reader.read_until(b'\n', &mut self.partial).await?;
            if self.partial.last() == Some(&b'\n') {
                let line = std::mem::take(&mut self.partial);
                self.seq += 1;
                if self.seq <= self.after {
                    continue;
                }
                return Ok(Some(parse_record(&line, self.seq)));
            }
            // At the end of what is written.
            let Some(live) = &mut self.live else { return Ok(None) };
            if live.changed().await.is_err() {
                // The writer is gone: read what it wrote last, then end.
                self.live = None;
            }
        }
    }

    /// The records as a stream.
    pub fn into_stream(self) -> impl futures_util::Stream<Item = std::io::Result<Record>> + Send + 'static {
        futures_util::stream::unfold(self, |mut follower| async move {
            match follower.next().await {
                Ok(Some(record)) => Some((Ok(record), follower)),
                Ok(None) => None,
                Err(e) => {
                    follower.live = None;
                    Some((Err(e), follower))
                }
            }
        })
    }
}

/// A stored line as a record; a line that is not one (a log from before records) is
/// its text.
fn parse_record(line: &[u8], seq: u64) -> Record {
    let line = String::from_utf8_lossy(line);
    let line = line.trim_end_matches('\n');
    serde_json::from_str(line).unwrap_or_else(|_| Record {
        seq,
        time: String::new(),
        stage: String::new(),
        text: line.to_string(),
    })
}

/// Several logs written as one: a rollout's lines go to its release log and to the log
/// of the build that caused it, so the pushing `git` sees them.
#[derive(Debug, Clone, Default)]
pub struct Tee(Vec<Arc<LiveLog>>);

impl Tee {
    pub fn new(logs: Vec<Arc<LiveLog>>) -> Tee {
        Tee(logs)
    }

    pub fn line(&self, text: impl AsRef<str>) {
        for log in &self.0 {
            log.line(text.as_ref());
        }
    }

    /// The stage the lines written from now on belong to, in every log.
    pub fn set_stage(&self, stage: &'static str) {
        for log in &self.0 {
            log.set_stage(stage);
        }
    }
}

/// The last `n` lines of a text, for error reports.
pub fn tail(text: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hoist-logs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn texts(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path).unwrap().lines().map(|l| parse_record(l.as_bytes(), 0).text).collect()
    }

    #[test]
    fn output_beyond_the_limit_is_dropped_with_one_marker_and_own_lines_still_kept() {
        let dir = scratch("limit");
        let log = LiveLog::create(&dir.join("build-1.log")).unwrap();
        log.limit_output(100);
        for i in 0..1000 {
            log.output(format!("output line {i:04}"));
        }
        log.line("=====> Done");
        let lines = texts(log.path());
        assert!(lines.len() < 12, "{} lines kept", lines.len());
        assert_eq!(lines.iter().filter(|l| l.contains("Output limit reached")).count(), 1, "{lines:?}");
        assert_eq!(lines.last().unwrap(), "=====> Done");
        assert!(log.dropped_output_lines() > 990);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lines_are_records_numbered_from_one_and_on_across_reopening() {
        let dir = scratch("records");
        let path = dir.join("a/build-1.log");
        let log = LiveLog::create(&path).unwrap();
        log.set_stage(stage::PUSH);
        log.line("one\ntwo\r\n");
        log.line("10%\r50%\r100%");
        drop(log);
        LiveLog::create(&path).unwrap().line("four");
        let records: Vec<Record> =
            std::fs::read_to_string(&path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let summary: Vec<(u64, &str, &str)> =
            records.iter().map(|r| (r.seq, r.stage.as_str(), r.text.as_str())).collect();
        assert_eq!(summary, [(1, "push", "one"), (2, "push", "two"), (3, "push", "100%"), (4, "build", "four")]);
        assert!(records[0].time.ends_with('Z') && records[0].time.len() == 24, "{}", records[0].time);
        assert_eq!(tail("a\nb\nc", 2), ["b", "c"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn copied_records_keep_their_times_and_stages_numbered_on_and_masked() {
        let dir = scratch("copy");
        let before = LiveLog::create(&dir.join("rebase.log")).unwrap();
        before.set_stage(stage::REBASE);
        before.line("-----> Rebasing\n       token s3cr3t-value");
        let release = LiveLog::create(&dir.join("release-2.log")).unwrap();
        release.mask(["s3cr3t-value"]);
        release.line("already here");
        release.copy_from(before.path()).unwrap();
        release.set_stage(stage::ROLLOUT);
        release.line("-----> Rolling out");
        let read = |path: &Path| -> Vec<Record> {
            std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
        };
        let (copied, records) = (read(before.path()), read(release.path()));
        let summary: Vec<(u64, &str, &str)> =
            records.iter().map(|r| (r.seq, r.stage.as_str(), r.text.as_str())).collect();
        let masked = format!("       token {MASK}");
        assert_eq!(
            summary,
            [
                (1, "build", "already here"),
                (2, "rebase", "-----> Rebasing"),
                (3, "rebase", &masked),
                (4, "rollout", "-----> Rolling out")
            ]
        );
        assert_eq!(
            (records[1].time.as_str(), records[2].time.as_str()),
            (copied[0].time.as_str(), copied[1].time.as_str())
        );
        assert!(release.copy_from(&dir.join("missing.log")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn secrets_are_masked_before_they_are_stored() {
        let dir = scratch("mask");
        let log = LiveLog::create(&dir.join("build-1.log")).unwrap();
        log.mask(["hunter22", "hunter22-longer", "ab"]);
        log.line("password hunter22-longer and hunter22, ab stays");
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(!text.contains("hunter22"), "{text}");
        assert_eq!(texts(log.path()), [format!("password {MASK} and {MASK}, ab stays")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_line_of_a_multi_line_secret_is_masked() {
        let dir = scratch("mask-pem");
        let log = LiveLog::create(&dir.join("build-1.log")).unwrap();
        let key = "-----BEGIN PRIVATE KEY-----\r\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n";
        log.mask([key]);
        log.line(format!("the key is {key}, printed by a careless build"));
        log.line("echo MIIEvQIBADANBgkqhkiG9w0BAQEFAASC alone");
        let text = std::fs::read_to_string(log.path()).unwrap();
        for line in key.lines() {
            assert!(!text.contains(line.trim()), "{line:?} shows in {text}");
        }
        assert!(texts(log.path()).contains(&format!("echo {MASK} alone")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn followers_get_every_line_once_in_order_however_late_or_slow() {
        let dir = scratch("follow");
        let logs = LogDir::new(dir.clone());
        let path = dir.join("app/build-1.log");
        let log = logs.open(&path).unwrap();
        assert!(Arc::ptr_eq(&log, &logs.open(&path).unwrap()), "one live log per path");
        log.line("before anyone follows");
        let early = logs.follow(&path, 0, true).await.unwrap().unwrap();
        let resumed = logs.follow(&path, 500, true).await.unwrap().unwrap();
        let writer = tokio::spawn(async move {
            for i in 2..=1000 {
                log.line(format!("line {i}"));
                if i % 100 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        });
        let read_all = |mut follower: Follower, slow: bool| async move {
            let mut seen = Vec::new();
            while let Some(record) = follower.next().await.unwrap() {
                if slow && record.seq % 50 == 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                seen.push(record.seq);
            }
            seen
        };
        let (early, resumed) = tokio::join!(read_all(early, true), read_all(resumed, false));
        writer.await.unwrap();
        assert_eq!(early, (1..=1000).collect::<Vec<_>>());
        assert_eq!(resumed, (501..=1000).collect::<Vec<_>>());
        // A finished log is read whole, and the read ends.
        let late = logs.follow(&path, 0, true).await.unwrap().unwrap();
        assert_eq!(read_all(late, false).await.len(), 1000);
        assert!(logs.follow(&dir.join("app/build-2.log"), 0, true).await.unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pruning_keeps_the_newest_build_logs() {
        let dir = scratch("prune");
        let logs = LogDir::new(dir.clone());
        let app = AppName::parse("web").unwrap();
        for id in [1, 2, 10, 11] {
            LiveLog::create(&logs.build_log(&app, id)).unwrap().line("x");
        }
        assert_eq!(logs.prune_builds(&app, 2), 2);
        assert!(logs.build_log(&app, 10).exists() && !logs.build_log(&app, 2).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
