//! git over SSH: an embedded SSH server (russh) that takes users' keys and runs only
//! `git-receive-pack` / `git-upload-pack` of an app's repo — no shell, no port
//! forwarding, no agent, no environment, no subsystem. A push goes through the same
//! receive path as over HTTP: the apps service authorizes it ([`Apps::open_git`]) and
//! the pre-receive hook hands it to [`Apps::receive_push`].
//!
//! Architecture invariant: this module decides nothing about who may do what; it asks
//! the apps service, and runs git only through `receive`.

use crate::apps::{Apps, GitService};
use crate::receive::{self, HookEnv, Repos, SshService};
use russh::keys::{HashAlg, PrivateKey};
use russh::server::{Auth, Msg, Session};
use russh::{Channel, ChannelId, ChannelMsg};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// What can go wrong starting the SSH server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read or write the SSH host key at {path}: {reason}")]
    HostKey { path: String, reason: String },
}

/// An OpenSSH public key line, checked: its SHA256 fingerprint, the key without its
/// comment, and the comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub fingerprint: String,
    pub openssh: String,
    pub comment: String,
}

impl PublicKey {
    /// Parses a line like the one in `~/.ssh/id_ed25519.pub`.
    pub fn parse(text: &str) -> Result<PublicKey, String> {
        let line = text.trim();
        if line.lines().count() > 1 {
            return Err("give one public key (one line of a .pub file)".to_string());
        }
        if line.contains("PRIVATE KEY") {
            return Err("that is a private key: give the .pub file (keep the private key to yourself)".to_string());
        }
        let key = russh::keys::PublicKey::from_openssh(line).map_err(|e| {
            format!("not an OpenSSH public key ({e}); give a line like the one in ~/.ssh/id_ed25519.pub")
        })?;
        let comment = key.comment().to_string();
        let mut bare = key.clone();
        bare.set_comment("");
        let openssh = bare.to_openssh().map_err(|e| format!("cannot write the key back: {e}"))?;
        Ok(PublicKey { fingerprint: key.fingerprint(HashAlg::Sha256).to_string(), openssh, comment })
    }
}

/// hoistd's SSH host key: made on first start (Ed25519), kept in the data dir.
pub struct HostKey {
    pub key: PrivateKey,
    pub fingerprint: String,
}

impl HostKey {
    pub fn load_or_create(data_dir: &Path) -> Result<HostKey, Error> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = data_dir.join("ssh_host_ed25519_key");
        let failed = |reason: String| Error::HostKey { path: path.display().to_string(), reason };
        let key = match std::fs::read_to_string(&path) {
            Ok(text) => PrivateKey::from_openssh(text.as_bytes()).map_err(|e| failed(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519)
                    .map_err(|e| failed(e.to_string()))?;
                let text = key.to_openssh(russh::keys::ssh_key::LineEnding::LF).map_err(|e| failed(e.to_string()))?;
                let tmp = path.with_extension("tmp");
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(|e| failed(e.to_string()))?;
                std::io::Write::write_all(&mut file, text.as_bytes()).map_err(|e| failed(e.to_string()))?;
                file.sync_all().map_err(|e| failed(e.to_string()))?;
                std::fs::rename(&tmp, &path).map_err(|e| failed(e.to_string()))?;
                key
            }
            Err(e) => return Err(failed(e.to_string())),
        };
        let fingerprint = key.public_key().fingerprint(HashAlg::Sha256).to_string();
        Ok(HostKey { key, fingerprint })
    }
}

/// What every session needs.
#[derive(Clone)]
pub struct SshServer {
    pub apps: Arc<Apps>,
    pub repos: Repos,
    pub hook: HookEnv,
    pub config: Arc<russh::server::Config>,
}

impl SshServer {
    pub fn new(apps: Arc<Apps>, repos: Repos, hook: HookEnv, host_key: &HostKey) -> SshServer {
        let config = russh::server::Config {
            keys: vec![host_key.key.clone()],
            // Keys only: no passwords, no keyboard-interactive.
            methods: russh::MethodSet::from(&[russh::MethodKind::PublicKey][..]),
            auth_rejection_time: std::time::Duration::from_millis(300),
            auth_rejection_time_initial: Some(std::time::Duration::from_millis(0)),
            inactivity_timeout: Some(std::time::Duration::from_secs(600)),
            max_auth_attempts: 6,
            ..Default::default()
        };
        SshServer { apps, repos, hook, config: Arc::new(config) }
    }

    /// Serves connections on `listener` until the task is dropped.
    pub async fn serve(self, listener: tokio::net::TcpListener) {
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "ssh: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let handler = Connection {
                server: self.clone(),
                remote: remote.ip().to_string(),
                caller: None,
                channels: HashMap::new(),
            };
            let config = self.config.clone();
            tokio::spawn(async move {
                match russh::server::run_stream(config, stream, handler).await {
                    Ok(session) => {
                        if let Err(error) = session.await {
                            tracing::debug!(%remote, %error, "ssh: session ended with an error");
                        }
                    }
                    Err(error) => tracing::debug!(%remote, %error, "ssh: handshake failed"),
                }
            });
        }
    }
}

/// One client connection.
struct Connection {
    server: SshServer,
    remote: String,
    caller: Option<crate::access::Caller>,
    /// Session channels opened and not yet running git.
    channels: HashMap<ChannelId, Channel<Msg>>,
}

impl Connection {
    /// Tells the client why on stderr, with exit status 1, and closes the channel. The
    /// request itself is accepted, so the client shows the message (after a failed
    /// request it only says "exec request failed").
    fn refuse(&mut self, channel: ChannelId, session: &mut Session, message: &str) -> Result<(), russh::Error> {
        self.channels.remove(&channel);
        session.channel_success(channel)?;
        session.extended_data(channel, 1, format!("hoist: {message}\n").into_bytes())?;
        session.exit_status_request(channel, 1)?;
        session.eof(channel)?;
        session.close(channel)?;
        Ok(())
    }
}

const NO_SHELL: &str = "hoist serves git over SSH only: add it as a remote, ssh://git@HOST:PORT/APP.git, and git push";

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        let fingerprint = offer.public_key.fingerprint(HashAlg::Sha256).to_string();
        match self.server.store_knows(&fingerprint) {
            true => Ok(Auth::Accept),
            false => Ok(Auth::reject()),
        }
    }

    async fn auth_publickey(
        &mut self,
        _user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let fingerprint = key.public_key.fingerprint(HashAlg::Sha256).to_string();
        match self.server.apps.authenticate_key(&fingerprint, &self.remote) {
            Ok(caller) => {
                self.caller = Some(caller);
                Ok(Auth::Accept)
            }
            Err(_) => {
                tracing::info!(remote = %self.remote, %fingerprint, "ssh: unknown key refused");
                Ok(Auth::reject())
            }
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.channels.len() >= 4 {
            return Ok(()); // dropping the handle refuses the channel
        }
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        self.refuse(channel, session, NO_SHELL)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse(channel, session, NO_SHELL)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Ignored (git sends GIT_PROTOCOL this way): nothing from the client reaches git's
        // environment.
        session.channel_failure(channel)?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn agent_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<bool, Self::Error> {
        session.channel_failure(channel)?;
        Ok(false)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(caller) = self.caller.clone() else {
            return self.refuse(channel, session, "not authenticated");
        };
        let command = String::from_utf8_lossy(data).to_string();
        let parsed = match receive::parse_ssh_command(&command) {
            Ok(parsed) => parsed,
            Err(message) => return self.refuse(channel, session, &message),
        };
        let service = match parsed.service {
            SshService::ReceivePack => GitService::Receive,
            SshService::UploadPack => GitService::Upload,
        };
        let (app, ticket) = match self.server.apps.open_git(&caller, &parsed.app, service) {
            Ok(opened) => opened,
            Err(error) => return self.refuse(channel, session, &error.to_string()),
        };
        let Some(open) = self.channels.remove(&channel) else {
            return self.refuse(channel, session, "that channel is running a command already");
        };
        session.channel_success(channel)?;
        let server = self.server.clone();
        tokio::spawn(async move {
            let (mut reader, writer) = open.split();
            let (from_client, mut to_git) = tokio::io::simplex(64 * 1024);
            let feed = tokio::spawn(async move {
                while let Some(message) = reader.wait().await {
                    match message {
                        ChannelMsg::Data { data } => {
                            if to_git.write_all(&data).await.is_err() {
                                break;
                            }
                        }
                        ChannelMsg::Eof | ChannelMsg::Close => break,
                        _ => {}
                    }
                }
                let _ = to_git.shutdown().await;
            });
            let code = receive::serve_ssh(
                &server.repos,
                &server.hook,
                &app.name,
                parsed.service,
                &ticket.id,
                from_client,
                writer.make_writer(),
                writer.make_writer_ext(Some(1)),
            )
            .await
            .unwrap_or_else(|error| {
                tracing::error!(app = %app.name, %error, "ssh: git failed to run");
                1
            });
            drop(ticket);
            feed.abort();
            let _ = writer.exit_status(code as u32).await;
            let _ = writer.eof().await;
            let _ = writer.close().await;
        });
        Ok(())
    }
}

impl SshServer {
    /// Whether a key is one hoistd knows, so a client is asked to sign with it only then.
    fn store_knows(&self, fingerprint: &str) -> bool {
        self.apps.authenticate_key(fingerprint, "").is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_parse_and_refuse_what_is_not_one() {
        let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICh9D079nIij3LoZD5cugD0TCTDIRmSNNC8LbqSnEovW alice@laptop";
        let key = PublicKey::parse(line).unwrap();
        assert!(key.fingerprint.starts_with("SHA256:"), "{}", key.fingerprint);
        assert_eq!(key.comment, "alice@laptop");
        assert!(!key.openssh.contains("alice"));
        assert!(PublicKey::parse("-----BEGIN OPENSSH PRIVATE KEY-----").unwrap_err().contains("private key"));
        assert!(PublicKey::parse("ssh-ed25519 nope").is_err());
        assert!(PublicKey::parse(&format!("{line}\n{line}")).is_err());
    }
}
