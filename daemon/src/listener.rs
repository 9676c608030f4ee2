//! hoistd's listeners (the API and git, the internal hook listener, the app router)
//! served with bounds no client can push past: a cap on open connections, a deadline
//! for a request's headers and for a TLS handshake, and accept errors (out of file
//! descriptors) backed off rather than retried in a spin. axum's own `serve` has none of
//! these, so a few hundred silent sockets once stopped both the API and every app.
//!
//! Architecture invariant: every listener hoistd opens is served here.

use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// The bounds of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; past this, new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (also between two requests on a
    /// kept-alive connection).
    pub header_timeout: Duration,
    /// Time a client has to finish a TLS handshake.
    pub tls_handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(15),
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until the task is dropped;
/// each request carries its peer's address (`ConnectInfo<SocketAddr>`).
pub async fn serve(
    name: &'static str,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: axum::Router,
    limits: Limits,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut backoff = Duration::from_millis(10);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => {
                backoff = Duration::from_millis(10);
                accepted
            }
            Err(error) => {
                // EMFILE and friends: wait for connections to close instead of spinning.
                tracing::warn!(listener = name, %error, retry_in = ?backoff, "cannot accept a connection");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let activity = Activity::new();
            let watched = activity.clone();
            let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo::<SocketAddr>(remote));
                let in_flight = watched.begin();
                let response = app.clone().oneshot(request.map(Body::new));
                async move {
                    let response = response.await?;
                    // The request counts as in flight until its body is sent (a log
                    // followed for minutes is not an idle connection).
                    Ok::<_, std::convert::Infallible>(
                        response.map(|body| Body::new(Tracked { body, _in_flight: in_flight })),
                    )
                }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
            builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(Duration::from_secs(30)));
            let stream = Watched { inner: stream, activity: activity.clone() };
            let served = async {
                match acceptor {
                    Some(acceptor) => {
                        let tls =
                            match tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(stream)).await {
                                Ok(Ok(tls)) => tls,
                                Ok(Err(error)) => {
                                    tracing::debug!(listener = name, %remote, %error, "TLS handshake failed");
                                    return Ok(());
                                }
                                Err(_) => {
                                    tracing::debug!(listener = name, %remote, "TLS handshake timed out");
                                    return Ok(());
                                }
                            };
                        builder.serve_connection_with_upgrades(TokioIo::new(tls), service).await
                    }
                    None => builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await,
                }
            };
            tokio::select! {
                served = served => {
                    if let Err(error) = served {
                        tracing::debug!(listener = name, %remote, %error, "connection ended");
                    }
                }
                () = activity.idle_for(limits.header_timeout) => {
                    tracing::debug!(listener = name, %remote, "closed a connection that sent no request in time");
                }
            }
        });
    }
}

/// How many requests a connection has in flight, and when it last finished one or moved
/// a byte: a connection with none in flight and nothing moved for longer than the header
/// deadline (silent from the start, or idle between requests) is closed. hyper's own
/// header timeout only counts from a request's first byte.
#[derive(Clone)]
struct Activity(Arc<std::sync::Mutex<(usize, std::time::Instant)>>);

impl Activity {
    fn new() -> Activity {
        Activity(Arc::new(std::sync::Mutex::new((0, std::time::Instant::now()))))
    }

    fn begin(&self) -> InFlight {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).0 += 1;
        InFlight(self.clone())
    }

    /// Bytes moved on the connection: it is not idle, whatever its requests are doing (a
    /// request body still arriving after its answer, a slow download).
    fn touch(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).1 = std::time::Instant::now();
    }

    /// Resolves once the connection has had no request in flight and moved no byte for
    /// `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let (in_flight, since) = *self.0.lock().unwrap_or_else(|p| p.into_inner());
            let wait = if in_flight > 0 {
                limit
            } else {
                match limit.checked_sub(since.elapsed()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return,
                }
            };
            tokio::time::sleep(wait.min(Duration::from_secs(1)).max(Duration::from_millis(50))).await;
        }
    }
}

/// A connection's stream that tells its [`Activity`] whenever bytes move.
struct Watched<T> {
    inner: T,
    activity: Activity,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Watched<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One request in flight; dropped when its response body is done.
struct InFlight(Activity);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = (self.0).0.lock().unwrap_or_else(|p| p.into_inner());
        state.0 = state.0.saturating_sub(1);
        state.1 = std::time::Instant::now();
    }
}

/// A response body that holds its request's [`InFlight`] until it is sent or dropped.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Raises this process's soft limit of open files to its hard limit (a daemon serving
/// many connections and containers' logs needs more than the usual 1024), and returns
/// the limit in force.
pub fn raise_open_files_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "cannot raise the open files limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft).unwrap_or(1024)
        }
    }
}

/// The connection cap of each of `listeners` listeners, so that together they leave a
/// quarter of `open_files` for everything else (repos, logs, git, Docker).
pub fn connection_cap(configured: usize, open_files: u64, listeners: usize) -> usize {
    let share = (open_files.saturating_mul(3) / 4) / listeners.max(1) as u64;
    configured.min(share.max(16) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_leave_room_for_files() {
        assert_eq!(connection_cap(1024, 256, 3), 64);
        assert_eq!(connection_cap(1024, 1 << 20, 3), 1024);
        assert_eq!(connection_cap(1024, 10, 3), 16, "never below 16");
    }
}
