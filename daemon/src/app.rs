//! The app name: the one identifier that reaches URLs, paths, container names and
//! registry repositories, so it is validated once, here, and carried as a type.

use std::fmt;

/// Longest app name accepted. Container and volume names are built from it with a
/// prefix, and it must stay a valid DNS label under the router's domain.
pub const MAX_APP_NAME_LEN: usize = 30;

/// A validated app name: lowercase letters, digits and `-`, starting with a letter,
/// not ending with `-`, at most [`MAX_APP_NAME_LEN`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct AppName(String);

/// Why a string is not an app name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid app name {name:?}: {reason}; use 1-{max} lowercase letters, digits or '-', starting with a letter", max = MAX_APP_NAME_LEN)]
pub struct InvalidAppName {
    /// The rejected input, cut to a readable length.
    pub name: String,
    /// What rule it broke.
    pub reason: &'static str,
}

impl AppName {
    /// Checks `name` against the rules above.
    pub fn parse(name: &str) -> Result<AppName, InvalidAppName> {
        let reject = |reason| {
            let shown: String = name.chars().take(40).collect();
            Err(InvalidAppName { name: shown, reason })
        };
        if name.is_empty() {
            return reject("it is empty");
        }
        if name.len() > MAX_APP_NAME_LEN {
            return reject("it is too long");
        }
        if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return reject("it contains a character other than a-z, 0-9 and '-'");
        }
        if !name.as_bytes()[0].is_ascii_lowercase() {
            return reject("it does not start with a letter");
        }
        if name.ends_with('-') {
            return reject("it ends with '-'");
        }
        Ok(AppName(name.to_string()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names() {
        let long = "a".repeat(300);
        let cases: &[(&str, bool)] = &[
            ("web1", true),
            ("my-shop-2", true),
            ("a", true),
            (&"a".repeat(30), true),
            (&"a".repeat(31), false),
            (&long, false),
            ("", false),
            ("../x", false),
            ("A B", false),
            ("Web", false),
            ("1web", false),
            ("web-", false),
            ("web_1", false),
            ("web.1", false),
            ("wéb", false),
        ];
        for (input, ok) in cases {
            assert_eq!(AppName::parse(input).is_ok(), *ok, "{input:?}");
        }
        let err = AppName::parse("../x").unwrap_err().to_string();
        assert!(err.contains("invalid app name \"../x\""), "{err}");
    }
}
