//! Runtime versions: what an app asks for (read from its version files), and which of
//! the versions that can be had fits it. Pure logic: no disk, no network, no Docker.
//!
//! Reading: each buildpack names its version files and their formats in
//! `buildpack.toml` (`runtime.txt` holds `python-3.11.4`, `package.json` holds
//! `engines.node`, `go.mod` holds `go`/`toolchain` lines, …); the first file present
//! that states a version wins.
//!
//! Matching: one small grammar covers what those files contain, npm's semver ranges
//! and PEP 440's specifiers alike: alternatives joined by `||`, each a list of
//! comparators joined by `,` or spaces (`>=3.10, <3.13`, `>=18 <21`), a comparator one
//! of `=`, `==`, `!=`, `>`, `>=`, `<`, `<=`, `^`, `~`, `~=` and a version whose missing
//! or wildcard parts (`3.11`, `20.x`, `3.11.*`, `*`) match any value.
//!
//! Resolving (the rules README states):
//! - nothing asked: the buildpack's default, said so in the build output;
//! - an exact version that is not there, but its `major.minor` line is: the nearest
//!   version of that line, with a warning;
//! - otherwise the newest version that satisfies the request, or an error naming what
//!   was asked, where it was asked, and what can be had.

use std::cmp::Ordering;
use std::fmt;

/// Why a version cannot be resolved. Messages go to the pushing user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "{runtime} {asked:?} (asked for in {file}) cannot be had here; available: {available}; \
         change {file} to one of them"
    )]
    Unavailable { runtime: String, asked: String, file: String, available: String },
    #[error("{file} asks for {runtime} {asked:?}, which hoist cannot read: {reason}")]
    Unreadable { runtime: String, asked: String, file: String, reason: String },
    #[error("no {runtime} version can be had here; the buildpack lists none")]
    NoCandidates { runtime: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A dotted numeric version such as `3.11.2` or `17`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    parts: Vec<u64>,
}

impl Version {
    /// Parses `3.11.2`, `v18.17.0`, `17`; text after a `-` or `+` (pre-releases,
    /// build metadata) makes it no plain version.
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim().trim_start_matches(['v', 'V']);
        if text.is_empty() {
            return None;
        }
        let parts = text.split('.').map(|p| p.parse::<u64>().ok()).collect::<Option<Vec<_>>>()?;
        (parts.len() <= 4).then_some(Version { parts })
    }

    fn part(&self, i: usize) -> u64 {
        self.parts.get(i).copied().unwrap_or(0)
    }

    /// `major.minor`, the line a patch release belongs to.
    pub fn line(&self) -> (u64, u64) {
        (self.part(0), self.part(1))
    }

    pub fn major(&self) -> u64 {
        self.part(0)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.parts.len().max(other.parts.len());
        (0..n).map(|i| self.part(i).cmp(&other.part(i))).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text: Vec<String> = self.parts.iter().map(u64::to_string).collect();
        f.write_str(&text.join("."))
    }
}

/// A version pattern: the given parts, then anything (`3.11` = `3.11.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    parts: Vec<u64>,
}

impl Pattern {
    fn parse(text: &str) -> Option<Pattern> {
        let text = text.trim().trim_start_matches(['v', 'V']);
        let mut parts = Vec::new();
        for part in text.split('.') {
            if matches!(part, "x" | "X" | "*") {
                break;
            }
            parts.push(part.parse::<u64>().ok()?);
        }
        (parts.len() <= 4).then_some(Pattern { parts })
    }

    fn matches(&self, version: &Version) -> bool {
        self.parts.iter().enumerate().all(|(i, p)| version.part(i) == *p)
    }

    /// The lowest version the pattern covers.
    fn floor(&self) -> Version {
        Version { parts: self.parts.clone() }
    }

    /// The lowest version above everything the pattern covers (`3.11` → `3.12`).
    fn ceiling(&self) -> Option<Version> {
        let mut parts = self.parts.clone();
        let last = parts.last_mut()?;
        *last += 1;
        Some(Version { parts })
    }

    fn is_exact(&self) -> bool {
        self.parts.len() >= 3
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Comparator {
    Matches(Pattern),
    Not(Pattern),
    Greater(Pattern),
    AtLeast(Version),
    Below(Version),
    AtMost(Pattern),
    /// `>= low`, `< high`.
    Between(Version, Option<Version>),
}

impl Comparator {
    fn parse(text: &str) -> Option<Comparator> {
        let ops = ["~=", "==", "!=", ">=", "<=", "^", "~", ">", "<", "="];
        let (op, rest) =
            ops.iter().find_map(|op| text.strip_prefix(op).map(|rest| (*op, rest.trim()))).unwrap_or(("", text));
        let pattern = Pattern::parse(rest)?;
        Some(match op {
            "" | "=" | "==" => Comparator::Matches(pattern),
            "!=" => Comparator::Not(pattern),
            ">" => Comparator::Greater(pattern),
            ">=" => Comparator::AtLeast(pattern.floor()),
            "<" => Comparator::Below(pattern.floor()),
            "<=" => Comparator::AtMost(pattern),
            // npm: ^1.2.3 := >=1.2.3 <2; ^0.2.3 := >=0.2.3 <0.3
            "^" => {
                let keep = pattern.parts.iter().position(|p| *p != 0).map_or(pattern.parts.len(), |i| i + 1);
                let head = Pattern { parts: pattern.parts[..keep.min(pattern.parts.len())].to_vec() };
                Comparator::Between(pattern.floor(), head.ceiling())
            }
            // npm: ~1.2.3 := >=1.2.3 <1.3; ~1 := 1.x
            "~" => {
                let head = Pattern { parts: pattern.parts.iter().take(2).copied().collect() };
                Comparator::Between(pattern.floor(), head.ceiling())
            }
            // PEP 440: ~=3.11 := >=3.11, ==3.*; ~=3.11.2 := >=3.11.2, ==3.11.*
            "~=" => {
                let keep = pattern.parts.len().saturating_sub(1).max(1);
                let head = Pattern { parts: pattern.parts[..keep].to_vec() };
                Comparator::Between(pattern.floor(), head.ceiling())
            }
            _ => return None,
        })
    }

    fn allows(&self, version: &Version) -> bool {
        match self {
            Comparator::Matches(p) => p.matches(version),
            Comparator::Not(p) => !p.matches(version),
            Comparator::Greater(p) => match p.ceiling() {
                // npm: >1.2 := >=1.3; a full version compares plainly.
                Some(ceiling) if !p.is_exact() => *version >= ceiling,
                _ => *version > p.floor(),
            },
            Comparator::AtLeast(v) => version >= v,
            Comparator::Below(v) => version < v,
            Comparator::AtMost(p) => p.matches(version) || *version < p.floor(),
            Comparator::Between(low, high) => version >= low && high.as_ref().is_none_or(|h| version < h),
        }
    }
}

/// A parsed version request: any of several sets of comparators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    alternatives: Vec<Vec<Comparator>>,
}

impl Constraint {
    /// Parses `>=18 <21 || 22`, `~=3.11`, `3.11.*`, `17`, `*`.
    pub fn parse(text: &str) -> Option<Constraint> {
        let mut alternatives = Vec::new();
        for alternative in text.split("||") {
            let alternative = alternative.trim();
            // Hyphen range: `1.2 - 2.3` := >=1.2 <=2.3.
            if let Some((low, high)) = alternative.split_once(" - ") {
                alternatives.push(vec![
                    Comparator::AtLeast(Pattern::parse(low)?.floor()),
                    Comparator::AtMost(Pattern::parse(high)?),
                ]);
                continue;
            }
            // Join an operator to its version: `>= 3.10` is `>=3.10`.
            let mut tokens: Vec<String> = Vec::new();
            for token in alternative.split([',', ' ']).map(str::trim).filter(|t| !t.is_empty()) {
                match tokens.last_mut() {
                    Some(last) if last.chars().all(|c| "<>=!~^".contains(c)) => last.push_str(token),
                    _ => tokens.push(token.to_string()),
                }
            }
            if tokens.is_empty() {
                tokens.push("*".to_string());
            }
            alternatives.push(tokens.iter().map(|t| Comparator::parse(t)).collect::<Option<Vec<_>>>()?);
        }
        Some(Constraint { alternatives })
    }

    pub fn allows(&self, version: &Version) -> bool {
        self.alternatives.iter().any(|all| all.iter().all(|c| c.allows(version)))
    }

    /// The version asked for, when the request is one exact version (`3.11.4`).
    fn exact(&self) -> Option<Version> {
        match self.alternatives.as_slice() {
            [one] => match one.as_slice() {
                [Comparator::Matches(p)] if p.is_exact() => Some(p.floor()),
                _ => None,
            },
            _ => None,
        }
    }
}

/// What an app asked for, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// As written, e.g. `>=18 <21` or `3.11.4`.
    pub text: String,
    /// The file it came from, e.g. `runtime.txt` or `package.json (engines.node)`.
    pub file: String,
    /// When nothing on the asked `major.minor` line can be had, build on the oldest
    /// newer line instead (a warning, not an error): `go.mod`'s `go` line is a minimum.
    pub newer_line_ok: bool,
}

/// A version that can be had, and where from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub version: Version,
    /// For people: `Debian trixie`, `npm registry`, `Go module proxy`.
    pub origin: String,
}

/// What to use when the app asks for nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Default {
    /// The newest version matching this constraint (`3.13`, `*`).
    Matching(String),
    /// Node's rule: the newest release of the newest even major that has a newer
    /// (odd) major after it, i.e. the newest LTS line.
    NodeLts,
}

/// The version chosen, and what to tell the user about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub candidate: Candidate,
    /// One line for the build output: what was chosen and why.
    pub note: String,
    /// A line to print as a warning (a nearby version replaced the asked one).
    pub warning: Option<String>,
}

/// Picks the version for `request` among `candidates` (any order).
pub fn resolve(
    runtime: &str,
    request: Option<&Request>,
    candidates: &[Candidate],
    default: &Default,
) -> Result<Resolution> {
    if candidates.is_empty() {
        return Err(Error::NoCandidates { runtime: runtime.to_string() });
    }
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by(|a, b| b.version.cmp(&a.version));
    let newest_allowed = |constraint: &Constraint| sorted.iter().find(|c| constraint.allows(&c.version)).copied();

    let Some(request) = request else {
        let chosen = match default {
            Default::Matching(text) => Constraint::parse(text).and_then(|c| newest_allowed(&c)),
            Default::NodeLts => node_lts(&sorted),
        }
        .or_else(|| sorted.first().copied())
        .expect("candidates are not empty");
        return Ok(Resolution {
            note: format!("{runtime} {} from {} (the default; nothing asked for it)", chosen.version, chosen.origin),
            candidate: chosen.clone(),
            warning: None,
        });
    };
    let constraint = Constraint::parse(&request.text).ok_or_else(|| Error::Unreadable {
        runtime: runtime.to_string(),
        asked: request.text.clone(),
        file: request.file.clone(),
        reason: "not a version or version range".to_string(),
    })?;
    let asked = |chosen: &Candidate, warning| Resolution {
        note: format!(
            "{runtime} {} from {} ({} asks for {})",
            chosen.version, chosen.origin, request.file, request.text
        ),
        candidate: chosen.clone(),
        warning,
    };
    if let Some(chosen) = newest_allowed(&constraint) {
        return Ok(asked(chosen, None));
    }
    if let Some(exact) = constraint.exact() {
        let same_line = sorted.iter().filter(|c| c.version.line() == exact.line()).min_by_key(|c| {
            let distance = |v: &Version| v.part(2).abs_diff(exact.part(2));
            (distance(&c.version), std::cmp::Reverse(c.version.clone()))
        });
        if let Some(chosen) = same_line {
            let warning = format!(
                "{runtime} {exact} is not available; building with {}, the nearest of the {}.{} line ({})",
                chosen.version,
                exact.part(0),
                exact.part(1),
                chosen.origin
            );
            return Ok(asked(chosen, Some(warning)));
        }
    }
    if request.newer_line_ok {
        let floor = Pattern::parse(&request.text).map(|p| p.floor());
        if let Some(floor) = floor {
            let oldest_newer_line = sorted.iter().rev().find(|c| c.version > floor).map(|c| c.version.line());
            if let Some(line) = oldest_newer_line {
                let chosen = sorted.iter().find(|c| c.version.line() == line).expect("the line has a version");
                let warning = format!(
                    "{runtime} {} cannot be had; building with {}, the oldest newer line, which builds code written for {}",
                    request.text, chosen.version, request.text
                );
                return Ok(asked(chosen, Some(warning)));
            }
        }
    }
    Err(Error::Unavailable {
        runtime: runtime.to_string(),
        asked: request.text.clone(),
        file: request.file.clone(),
        available: summarize(&sorted),
    })
}

/// Node's newest LTS line among the candidates (sorted newest first).
fn node_lts<'a>(sorted: &[&'a Candidate]) -> Option<&'a Candidate> {
    let majors: std::collections::BTreeSet<u64> = sorted.iter().map(|c| c.version.major()).collect();
    let lts = majors.iter().rev().find(|m| *m % 2 == 0 && majors.range(*m + 1..).next().is_some())?;
    sorted.iter().find(|c| c.version.major() == *lts).copied()
}

/// The available versions, for an error message: every one when few, else the newest
/// of each `major.minor` line (or major, when lines are many).
fn summarize(sorted: &[&Candidate]) -> String {
    let mut shown: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let by_major = sorted.len() > 40;
    for candidate in sorted {
        let key = if by_major { (candidate.version.major(), 0) } else { candidate.version.line() };
        if seen.insert(key) {
            shown.push(format!("{} ({})", candidate.version, candidate.origin));
        }
    }
    if shown.len() > 12 {
        let rest = shown.len() - 12;
        shown.truncate(12);
        shown.push(format!("and {rest} older lines"));
    }
    shown.join(", ")
}

/// How a version file states its version (`format` in `buildpack.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileFormat {
    /// The first non-comment line: `.python-version`, `.nvmrc`, `.node-version`.
    Plain,
    /// `runtime.txt`: `python-3.11.4`.
    RuntimeTxt,
    /// `pyproject.toml`: `[project] requires-python`.
    RequiresPython,
    /// `package.json`: `engines.node`.
    PackageJsonEngines,
    /// `system.properties`: `java.runtime.version`.
    SystemProperties,
    /// `go.mod`: `toolchain goX.Y.Z`, else the `go` line as a minimum.
    GoMod,
    /// `rust-toolchain.toml` (`[toolchain] channel`) or a plain `rust-toolchain`.
    RustToolchain,
}

/// Reads the version `file` (named `name`) asks for; `None` when it states none.
pub fn read_request(format: FileFormat, name: &str, text: &str) -> Option<Request> {
    let request = |text: String, file: String| Request { text, file, newer_line_ok: false };
    let first_line = || text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string);
    match format {
        FileFormat::Plain => {
            let line = first_line()?;
            // `.nvmrc` may say `lts/*` or `node`: no particular version.
            if line.starts_with("lts/") || line == "node" || line == "stable" {
                return None;
            }
            let line = line.strip_prefix("python-").unwrap_or(&line).to_string();
            Some(request(line, name.to_string()))
        }
        FileFormat::RuntimeTxt => {
            let line = first_line()?;
            let version = line.split_once('-').map_or(line.as_str(), |(_, v)| v).trim().to_string();
            Some(request(version, name.to_string()))
        }
        FileFormat::RequiresPython => {
            let table: toml::Table = toml::from_str(text).ok()?;
            let spec = table.get("project")?.get("requires-python")?.as_str()?;
            Some(request(spec.to_string(), format!("{name} (requires-python)")))
        }
        FileFormat::PackageJsonEngines => {
            let json: serde_json::Value = serde_json::from_str(text).ok()?;
            let spec = json.get("engines")?.get("node")?.as_str()?;
            Some(request(spec.to_string(), format!("{name} (engines.node)")))
        }
        FileFormat::SystemProperties => {
            let value = text.lines().find_map(|line| {
                let (key, value) = line.split_once('=')?;
                (key.trim() == "java.runtime.version").then(|| value.trim().to_string())
            })?;
            // `1.8` is Java 8.
            let value = value.strip_prefix("1.").filter(|v| !v.contains('.')).map_or(value.clone(), str::to_string);
            Some(request(value, format!("{name} (java.runtime.version)")))
        }
        FileFormat::GoMod => {
            let directive = |word: &str| {
                text.lines().find_map(|line| {
                    let mut parts = line.split_whitespace();
                    (parts.next() == Some(word)).then(|| parts.next().map(str::to_string)).flatten()
                })
            };
            if let Some(toolchain) = directive("toolchain").filter(|t| t != "default") {
                let version = toolchain.trim_start_matches("go").to_string();
                return Some(request(version, format!("{name} (toolchain)")));
            }
            let go = directive("go")?;
            // A minimum: the newest patch of that line, not exactly the `.0` it names.
            let line: Vec<&str> = go.split('.').take(2).collect();
            Some(Request { text: line.join("."), file: format!("{name} (go)"), newer_line_ok: true })
        }
        FileFormat::RustToolchain => {
            let channel = match toml::from_str::<toml::Table>(text) {
                Ok(table) => table.get("toolchain")?.get("channel")?.as_str()?.to_string(),
                Err(_) => first_line()?,
            };
            if channel == "stable" {
                return None;
            }
            Some(request(channel, name.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates(list: &[(&str, &str)]) -> Vec<Candidate> {
        list.iter()
            .map(|(v, origin)| Candidate { version: Version::parse(v).unwrap(), origin: origin.to_string() })
            .collect()
    }

    fn python() -> Vec<Candidate> {
        candidates(&[("3.11.2", "Debian bookworm"), ("3.13.5", "Debian trixie"), ("3.14.8", "Debian forky")])
    }

    fn ask(text: &str) -> Request {
        Request { text: text.to_string(), file: "runtime.txt".to_string(), newer_line_ok: false }
    }

    #[test]
    fn constraints_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("3.11", "3.11.2", true),
            ("3.11", "3.13.5", false),
            ("3.11.*", "3.11.9", true),
            ("==3.11.*", "3.11.9", true),
            ("3.11.2", "3.11.2", true),
            ("3.11.4", "3.11.2", false),
            (">=3.10", "3.13.5", true),
            (">= 3.10, <3.13", "3.13.5", false),
            (">=3.10,<3.13", "3.11.2", true),
            ("~=3.11", "3.13.5", true),
            ("~=3.11", "4.0.0", false),
            ("~=3.11.1", "3.12.0", false),
            ("!=3.12.*", "3.12.3", false),
            ("^18.17.0", "18.20.4", true),
            ("^18.17.0", "19.0.0", false),
            ("^0.2.3", "0.3.0", false),
            ("~18.17", "18.18.0", false),
            (">=18 <21", "20.19.0", true),
            (">=18 <21", "22.1.0", false),
            ("18 || 20", "20.1.0", true),
            ("20.x", "20.11.1", true),
            ("*", "1.0.0", true),
            ("", "1.0.0", true),
            (">20", "20.5.0", false),
            (">20", "21.0.0", true),
            (">20.1.0", "20.1.1", true),
            ("<=20", "20.9.0", true),
            ("<=20", "21.0.0", false),
            ("18.0.0 - 20", "20.9.0", true),
            ("v22.11.0", "22.11.0", true),
            ("17", "17.0.15", true),
        ];
        for (constraint, version, allowed) in cases {
            let parsed = Constraint::parse(constraint).unwrap_or_else(|| panic!("{constraint:?} parses"));
            assert_eq!(parsed.allows(&Version::parse(version).unwrap()), *allowed, "{constraint:?} vs {version}");
        }
        for bad in ["three", ">=abc", "3.11.2.1.5"] {
            assert!(Constraint::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn newest_that_fits_wins() {
        let got = resolve("Python", Some(&ask(">=3.11")), &python(), &Default::Matching("3.13".into())).unwrap();
        assert_eq!(got.candidate.version.to_string(), "3.14.8");
        assert_eq!(got.warning, None);
        assert!(got.note.contains("runtime.txt asks for >=3.11"), "{}", got.note);
    }

    #[test]
    fn a_patch_level_difference_builds_on_the_nearest_with_a_warning() {
        let got = resolve("Python", Some(&ask("3.11.4")), &python(), &Default::Matching("3.13".into())).unwrap();
        assert_eq!(got.candidate.version.to_string(), "3.11.2");
        let warning = got.warning.unwrap();
        assert!(warning.contains("3.11.4 is not available; building with 3.11.2"), "{warning}");
    }

    #[test]
    fn a_version_that_cannot_be_had_names_the_file_and_what_can() {
        let err = resolve("Python", Some(&ask("3.9.18")), &python(), &Default::Matching("3.13".into())).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("Python \"3.9.18\" (asked for in runtime.txt) cannot be had here"), "{message}");
        assert!(message.contains("3.13.5 (Debian trixie)"), "{message}");
        assert!(message.contains("change runtime.txt"), "{message}");
        let err = resolve("Python", Some(&ask("three")), &python(), &Default::Matching("3".into())).unwrap_err();
        assert!(matches!(err, Error::Unreadable { .. }), "{err}");
    }

    #[test]
    fn defaults() {
        let got = resolve("Python", None, &python(), &Default::Matching("3.13".into())).unwrap();
        assert_eq!(got.candidate.version.to_string(), "3.13.5");
        assert!(got.note.contains("the default"), "{}", got.note);
        let node = candidates(&[
            ("20.19.0", "npm"),
            ("22.11.0", "npm"),
            ("22.12.0", "npm"),
            ("23.5.0", "npm"),
            ("24.0.0", "npm"),
        ]);
        let got = resolve("Node.js", None, &node, &Default::NodeLts).unwrap();
        assert_eq!(got.candidate.version.to_string(), "22.12.0", "24 has no 25 after it yet: not LTS");
    }

    #[test]
    fn go_lines_are_minimums() {
        let go = candidates(&[("1.21.13", "Go proxy"), ("1.22.5", "Go proxy"), ("1.22.12", "Go proxy")]);
        let request = read_request(FileFormat::GoMod, "go.mod", "module x\n\ngo 1.22.1\n").unwrap();
        let got = resolve("Go", Some(&request), &go, &Default::Matching("*".into())).unwrap();
        assert_eq!(got.candidate.version.to_string(), "1.22.12");
        let old = read_request(FileFormat::GoMod, "go.mod", "module x\ngo 1.19\n").unwrap();
        let got = resolve("Go", Some(&old), &go, &Default::Matching("*".into())).unwrap();
        assert_eq!(got.candidate.version.to_string(), "1.21.13");
        assert!(got.warning.unwrap().contains("oldest newer line"));
        let pinned = read_request(FileFormat::GoMod, "go.mod", "module x\ngo 1.22\ntoolchain go1.22.5\n").unwrap();
        assert_eq!((pinned.text.as_str(), pinned.newer_line_ok), ("1.22.5", false));
    }

    #[test]
    fn version_files() {
        let read = |format, name, text| read_request(format, name, text).map(|r| r.text);
        assert_eq!(read(FileFormat::RuntimeTxt, "runtime.txt", "python-3.11.4\n").as_deref(), Some("3.11.4"));
        assert_eq!(read(FileFormat::Plain, ".python-version", "# pinned\n3.13\n").as_deref(), Some("3.13"));
        assert_eq!(read(FileFormat::Plain, ".nvmrc", "lts/*\n"), None);
        assert_eq!(read(FileFormat::Plain, ".nvmrc", "v20.11.1\n").as_deref(), Some("v20.11.1"));
        assert_eq!(
            read(FileFormat::RequiresPython, "pyproject.toml", "[project]\nname='x'\nrequires-python = '>=3.10'\n")
                .as_deref(),
            Some(">=3.10")
        );
        assert_eq!(read(FileFormat::RequiresPython, "pyproject.toml", "[tool.x]\n"), None);
        assert_eq!(
            read(FileFormat::PackageJsonEngines, "package.json", r#"{"engines": {"node": "20.x"}}"#).as_deref(),
            Some("20.x")
        );
        assert_eq!(read(FileFormat::PackageJsonEngines, "package.json", r#"{"name": "x"}"#), None);
        assert_eq!(
            read(FileFormat::SystemProperties, "system.properties", "java.runtime.version=17\n").as_deref(),
            Some("17")
        );
        assert_eq!(
            read(FileFormat::SystemProperties, "system.properties", "java.runtime.version = 1.8\n").as_deref(),
            Some("8")
        );
        assert_eq!(
            read(FileFormat::RustToolchain, "rust-toolchain.toml", "[toolchain]\nchannel = \"1.85.0\"\n").as_deref(),
            Some("1.85.0")
        );
        assert_eq!(read(FileFormat::RustToolchain, "rust-toolchain", "stable\n"), None);
        assert_eq!(read(FileFormat::RustToolchain, "rust-toolchain", "1.80\n").as_deref(), Some("1.80"));
    }
}
