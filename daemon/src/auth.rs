//! Tokens: the admin token (the operator's, in `<data>/admin-token`), the keyed hashes
//! users' tokens are stored as (never the tokens), and the hook token that only the
//! pre-receive hook (a child of hoistd's own `git`) knows.

use std::path::{Path, PathBuf};

/// What can go wrong reading or creating the admin token.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read or write the admin token at {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A fresh random token: 32 bytes as hex.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// Where the admin token lives in a data dir: hoistd creates it, the CLI reads it.
pub fn admin_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join(hoist_wire::ADMIN_TOKEN_FILE)
}

/// Reads `data_dir/admin-token`, creating it (mode 0600) on first start.
/// Returns the token and whether it was just created, so the caller prints it once.
pub fn load_or_create_admin_token(data_dir: &Path, given: Option<&str>) -> Result<(String, bool)> {
    let path = admin_token_path(data_dir);
    let io = |source| Error::Io { path: path.clone(), source };
    let current = std::fs::read_to_string(&path);
    // A token given from outside (hoist's chart keeps it in a Secret) is the one: written
    // to the data dir, so `hoistd admin-token` and a running hoistd see the same.
    if let Some(given) = given {
        if !matches!(&current, Ok(token) if token.trim() == given) {
            write_secret_file(&path, given.as_bytes())?;
        }
        return Ok((given.to_string(), false));
    }
    match current {
        Ok(token) if !token.trim().is_empty() => return Ok((token.trim().to_string(), false)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let token = new_token();
    write_secret_file(&path, token.as_bytes())?;
    Ok((token, true))
}

/// Writes `token` to `path` (mode 0600) through a temporary file, so a reader sees the
/// old token or the new one, never half of one.
fn write_secret_file(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let tmp = path.with_extension("tmp");
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Makes a new admin token in `data_dir` (the old one stops working at once: a running
/// hoistd reads the file again when it changes). Returns it.
pub fn rotate_admin_token(data_dir: &Path) -> Result<String> {
    let token = new_token();
    write_secret_file(&admin_token_path(data_dir), token.as_bytes())?;
    Ok(token)
}

/// The admin token as a running hoistd checks it: read from its file, and read again
/// when the file changes (`hoistd admin-token --rotate`).
pub struct AdminToken {
    path: PathBuf,
    current: std::sync::Mutex<(Option<std::time::SystemTime>, String)>,
}

impl AdminToken {
    pub fn new(data_dir: &Path, token: String) -> AdminToken {
        let path = admin_token_path(data_dir);
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        AdminToken { path, current: std::sync::Mutex::new((modified, token)) }
    }

    /// Whether `given` is the admin token (compared in constant time).
    pub fn matches(&self, given: &str) -> bool {
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if modified.is_some() && modified != current.0 {
            match std::fs::read_to_string(&self.path) {
                Ok(token) if !token.trim().is_empty() => *current = (modified, token.trim().to_string()),
                _ => {
                    tracing::warn!(path = %self.path.display(), "the admin token file changed but cannot be read; the old token stays")
                }
            }
        }
        token_matches(given, &current.1)
    }
}

/// The key users' tokens are hashed with (HMAC-SHA256), kept in `<data>/token-key`
/// (0600). The database holds only the hashes: a copy of it gives no usable token, and
/// a token is 32 random bytes, so the hash cannot be reversed by guessing.
#[derive(Clone)]
pub struct TokenKey(std::sync::Arc<[u8; 32]>);

impl TokenKey {
    /// Reads `data_dir/token-key`, creating it on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<TokenKey> {
        let path = data_dir.join("token-key");
        match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                return Ok(TokenKey(std::sync::Arc::new(key)));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(Error::Io { path, source }),
        }
        let key: [u8; 32] = rand::random();
        write_secret_file(&path, &key)?;
        Ok(TokenKey(std::sync::Arc::new(key)))
    }

    /// The hash a token is stored and looked up by.
    pub fn hash(&self, token: &str) -> String {
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0[..]).expect("HMAC takes any key length");
        mac.update(token.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// A fresh user token: `hoist_` and 32 random bytes as hex (the prefix lets secret
/// scanners and people tell it from the admin token).
pub fn new_user_token() -> String {
    format!("hoist_{}", new_token())
}

/// Compares two tokens in time independent of where they differ.
pub fn token_matches(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HMAC-SHA256 of `body` with `secret`, as lowercase hex (webhook signatures).
pub fn hmac_sha256_hex(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `hex_signature` is the HMAC-SHA256 of `body` with `secret`, compared in
/// constant time.
pub fn hmac_sha256_matches(secret: &str, body: &[u8], hex_signature: &str) -> bool {
    use hmac::{KeyInit, Mac};
    let Ok(signature) = hex::decode(hex_signature) else { return false };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// The token carried by an `Authorization` header: `Bearer <token>`, or HTTP basic
/// with the token as password (what git sends).
pub fn token_from_authorization(header: &str) -> Option<String> {
    use base64::Engine;
    let (scheme, value) = header.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(value.trim().to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(value.trim()).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (_user, password) = decoded.split_once(':')?;
        return Some(password.to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_headers() {
        assert_eq!(token_from_authorization("Bearer abc").as_deref(), Some("abc"));
        // "git:secret" in base64.
        assert_eq!(token_from_authorization("Basic Z2l0OnNlY3JldA==").as_deref(), Some("secret"));
        assert_eq!(token_from_authorization("Basic !!!"), None);
        assert_eq!(token_from_authorization("Digest x"), None);
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abd", "abc"));
        assert!(!token_matches("ab", "abc"));
    }

    #[test]
    fn admin_token_is_created_once() {
        let dir = std::env::temp_dir().join(format!("hoist-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (first, created) = load_or_create_admin_token(&dir, None).unwrap();
        assert!(created);
        let (second, created_again) = load_or_create_admin_token(&dir, None).unwrap();
        assert!(!created_again);
        assert_eq!(first, second);
        let checker = AdminToken::new(&dir, first.clone());
        assert!(checker.matches(&first));
        std::thread::sleep(std::time::Duration::from_millis(20));
        let rotated = rotate_admin_token(&dir).unwrap();
        assert!(!checker.matches(&first), "the old admin token stops working once rotated");
        assert!(checker.matches(&rotated));
        let key = TokenKey::load_or_create(&dir).unwrap();
        assert_eq!(key.hash("t"), TokenKey::load_or_create(&dir).unwrap().hash("t"), "the key is kept");
        assert_ne!(key.hash("t"), key.hash("u"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
