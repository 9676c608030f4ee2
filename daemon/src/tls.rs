//! HTTPS for the API and git: when `tls.cert` and `tls.key` are set, hoistd's API
//! listener speaks TLS (rustls), so a push over the internet does not send the token in
//! clear text. hoistd's own callers — its git hook and its registry's notifications —
//! then use a plain-HTTP listener on 127.0.0.1 only.
//!
//! Architecture invariant: with TLS on, nothing but loopback ever reaches the API
//! without TLS.

use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower::ServiceExt;

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

/// Serves `app` over TLS on `listener` until the task is dropped; each request carries
/// its peer's address (`ConnectInfo`), as with plain `axum::serve`.
pub async fn serve(listener: tokio::net::TcpListener, config: Arc<rustls::ServerConfig>, app: axum::Router) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let tls = match acceptor.accept(stream).await {
                Ok(tls) => tls,
                Err(error) => {
                    tracing::debug!(%remote, %error, "TLS handshake failed");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo::<SocketAddr>(remote));
                app.clone().oneshot(request.map(Body::new))
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(error) = builder.serve_connection_with_upgrades(TokioIo::new(tls), service).await {
                tracing::debug!(%remote, %error, "connection ended");
            }
        });
    }
}
