//! Logs of builds and releases: each is a file under the data dir, appended line by
//! line, and fanned out live to whoever follows it (the pushing `git`, the API).
//!
//! Architecture invariant: a log line is written to its file before it is sent live, so
//! what a reader saw live is always in the file afterwards.

use crate::app::AppName;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// How many lines a slow live reader may fall behind before it skips some.
const LIVE_BUFFER: usize = 4096;

/// Where logs live on disk.
#[derive(Debug, Clone)]
pub struct LogDir {
    root: PathBuf,
}

impl LogDir {
    pub fn new(root: PathBuf) -> LogDir {
        LogDir { root }
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
}

/// How much output (a build's tools, an app's) one log keeps, unless told otherwise.
pub const DEFAULT_OUTPUT_LIMIT: u64 = 16 * 1024 * 1024;

/// A log being written.
#[derive(Debug)]
pub struct LiveLog {
    path: PathBuf,
    file: Mutex<File>,
    live: broadcast::Sender<String>,
    /// Bytes of output lines kept so far, and the most that are kept.
    output: Mutex<OutputBudget>,
}

#[derive(Debug)]
struct OutputBudget {
    used: u64,
    limit: u64,
    dropped_lines: u64,
}

impl LiveLog {
    /// Creates (or appends to) the log file at `path`.
    pub fn create(path: &Path) -> std::io::Result<Arc<LiveLog>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        let output = Mutex::new(OutputBudget { used: 0, limit: DEFAULT_OUTPUT_LIMIT, dropped_lines: 0 });
        Ok(Arc::new(LiveLog { path: path.to_path_buf(), file: Mutex::new(file), live, output }))
    }

    /// Sets how many bytes of output lines this log keeps.
    pub fn limit_output(&self, bytes: u64) {
        self.output.lock().unwrap_or_else(|p| p.into_inner()).limit = bytes;
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
            budget.used += text.len() as u64 + 1;
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

    /// Appends `text`, one log line per line of it; trailing whitespace is trimmed
    /// and carriage-return progress output keeps only its last state.
    pub fn line(&self, text: impl AsRef<str>) {
        for line in text.as_ref().lines() {
            let line = line.rsplit('\r').next().unwrap_or("").trim_end();
            {
                let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(error) = writeln!(file, "{line}") {
                    tracing::warn!(path = %self.path.display(), %error, "cannot write log line");
                }
            }
            // No receiver is fine: nobody follows this log right now.
            let _ = self.live.send(line.to_string());
        }
    }

    /// Follows the lines written from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.live.subscribe()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
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
}

/// The last `n` lines of a text, for error reports.
pub fn tail(text: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_beyond_the_limit_is_dropped_with_one_marker_and_own_lines_still_kept() {
        let path = std::env::temp_dir().join(format!("hoist-log-limit-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let log = LiveLog::create(&path).unwrap();
        log.limit_output(100);
        for i in 0..1000 {
            log.output(format!("output line {i:04}"));
        }
        log.line("=====> Done");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.len() < 300, "{} bytes kept", text.len());
        assert_eq!(text.matches("Output limit reached").count(), 1, "{text}");
        assert!(text.ends_with("=====> Done\n"), "{text}");
        assert!(log.dropped_output_lines() > 990);
        std::fs::remove_file(&path).unwrap();
    }

    #[tokio::test]
    async fn lines_reach_file_and_followers() {
        let dir = std::env::temp_dir().join(format!("hoist-logs-{}", std::process::id()));
        let log = LiveLog::create(&dir.join("a/build-1.log")).unwrap();
        let mut follower = log.subscribe();
        log.line("one\ntwo\r\n");
        log.line("10%\r50%\r100%");
        assert_eq!(follower.recv().await.unwrap(), "one");
        assert_eq!(follower.recv().await.unwrap(), "two");
        assert_eq!(follower.recv().await.unwrap(), "100%");
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert_eq!(text, "one\ntwo\n100%\n");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(tail("a\nb\nc", 2), ["b", "c"]);
    }
}
