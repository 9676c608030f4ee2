//! HTTPS for the API and git: when `tls.cert` and `tls.key` are set, hoistd's API
//! listener speaks TLS (rustls), so a push over the internet does not send the token in
//! clear text. hoistd's own callers — its git hook and its registry's notifications —
//! then use a plain-HTTP listener on 127.0.0.1 only.
//!
//! Architecture invariant: with TLS on, nothing but loopback ever reaches the API
//! without TLS.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What can go wrong setting TLS up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the TLS certificate chain {path}: {reason}; give PEM certificates (tls.cert)")]
    Certificate { path: PathBuf, reason: String },
    #[error("cannot read the TLS private key {path}: {reason}; give a PEM private key (tls.key)")]
    Key { path: PathBuf, reason: String },
    #[error("the TLS certificate and key do not fit together: {0}")]
    Config(#[from] rustls::Error),
}

/// A rustls server config from PEM files.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, Error> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|e| Error::Certificate { path: cert.to_path_buf(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(Error::Certificate { path: cert.to_path_buf(), reason: "no certificate in it".to_string() });
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| Error::Key { path: key.to_path_buf(), reason: e.to_string() })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
