//! The connections a server that listens itself accepts: at most [`Config::max_connections`]
//! open at once, Nagle's algorithm off, a deadline on every request head, and a graceful close
//! when the server stops.
//!
//! # Invariants
//!
//! - A connection is accepted only with a permit of the cap in hand; the permit lives as long
//!   as the connection's task. Past the cap, new connections wait in the kernel's accept
//!   queue instead of taking file descriptors the store needs.
//! - Every connection has a deadline for the head of its next request, counted from when it
//!   was accepted or finished its previous response ([`Config::header_timeout`]): a client
//!   that trickles its headers, or keeps an idle connection open, is closed at the deadline.
//!   (hyper starts the deadline whenever it waits for a head, so the same setting is the
//!   keep-alive idle timeout.) Bodies have their own deadline, applied in the routes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::Config;

/// A listener with a deep accept queue: a burst of connections (a thousand browsers at once)
/// waits to be accepted instead of being reset.
pub(crate) fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// The share of the open-file limit connections may take when [`Config::max_connections`] is
/// not set: the rest is for the store, the log and the process's own files.
const SHARE_OF_FILES: f64 = 0.75;

/// Without a readable open-file limit, the cap assumes the common default of 1,024 files.
const FALLBACK_FILES: u64 = 1024;

/// This process's open-file limit (the soft one).
fn open_file_limit() -> u64 {
    #[cfg(unix)]
    {
        rlimit::getrlimit(rlimit::Resource::NOFILE)
            .map(|(soft, _hard)| soft)
            .unwrap_or(FALLBACK_FILES)
    }
    #[cfg(not(unix))]
    {
        FALLBACK_FILES
    }
}

/// The cap on open connections: [`Config::max_connections`], or a share of the open-file
/// limit. A configured cap above what the limit allows is kept, with a warning.
pub(crate) fn connection_cap(config: &Config) -> usize {
    let files = open_file_limit();
    let share = ((files as f64 * SHARE_OF_FILES) as usize).max(1);
    match config.max_connections {
        Some(cap) => {
            if cap as u64 > files {
                tracing::warn!(
                    "max_connections is {cap}, above this process's open-file limit of {files}: \
                     connections past the limit will fail to be accepted; raise the limit \
                     (ulimit -n) or lower max_connections"
                );
            }
            cap.max(1)
        }
        None => share,
    }
}

/// Raises this process's soft open-file limit to its hard limit, as servers that hold many
/// connections do; the limit it has afterwards. For the binary: a library leaves its process's
/// limits alone.
///
/// ```
/// let files = workflows_server::raise_open_file_limit();
/// assert!(files > 0);
/// ```
pub fn raise_open_file_limit() -> u64 {
    #[cfg(unix)]
    {
        if let Ok((_, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
            let _ = rlimit::increase_nofile_limit(hard);
        }
    }
    open_file_limit()
}

/// The cap on open connections, and how many are open.
#[derive(Debug, Clone)]
pub(crate) struct Cap {
    permits: Arc<Semaphore>,
    size: usize,
}

impl Cap {
    pub(crate) fn new(config: &Config) -> Cap {
        let size = connection_cap(config);
        Cap {
            permits: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    /// How many connections are open now.
    pub(crate) fn open(&self) -> usize {
        self.size - self.permits.available_permits()
    }
}

/// Serves `app` on `listener` until `stop` fires, then closes every connection once its
/// current response is sent.
pub(crate) async fn serve(
    listener: TcpListener,
    app: axum::Router,
    config: &Config,
    cap: Cap,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let cap = cap.permits;
    let header_timeout = config.header_timeout;
    let (closing, closed) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        // A permit first: past the cap, connections wait in the accept queue.
        let permit = tokio::select! {
            permit = cap.clone().acquire_owned() => permit.expect("the cap is never closed"),
            _ = &mut stop => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stop => break,
        };
        // Reap finished connection tasks as we go, so the set holds only open ones.
        while connections.try_join_next().is_some() {}
        let (tcp, _peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors, or a connection reset before it was accepted: the
                // listener is fine; wait a moment rather than spin.
                tracing::warn!("accepting a connection failed: {err}");
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        without_nagle(&tcp);
        let service = TowerToHyperService::new(app.clone());
        let mut closing = closed.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = http.serve_connection(TokioIo::new(tcp), service);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(err) = result {
                        tracing::trace!("a connection ended with an error: {err}");
                    }
                    return;
                }
                _ = closing.wait_for(|closing| *closing) => {}
            }
            conn.as_mut().graceful_shutdown();
            if let Err(err) = conn.await {
                tracing::trace!("a connection ended with an error: {err}");
            }
        });
    }
    drop(listener);
    let _ = closing.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Turns Nagle's algorithm off. The API answers with small writes (a `200`, one NDJSON line
/// per event); with Nagle on, each waited for the client's delayed ACK, about 40 ms per round
/// trip of a human answering a prompt.
fn without_nagle(tcp: &tokio::net::TcpStream) {
    if let Err(err) = tcp.set_nodelay(true) {
        tracing::debug!("could not turn Nagle's algorithm off on a connection: {err}");
    }
}

/// The pause after a failed accept.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_do_not_wait_for_delayed_acks() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(!accepted.nodelay().unwrap(), "on by default");
        without_nagle(&accepted);
        assert!(accepted.nodelay().unwrap(), "TCP_NODELAY is off");
    }

    #[test]
    fn the_cap_is_the_configured_one_or_a_share_of_the_file_limit() {
        let set = Config {
            max_connections: Some(7),
            ..Config::default()
        };
        assert_eq!(connection_cap(&set), 7);
        let auto = connection_cap(&Config::default());
        let files = open_file_limit();
        assert!(auto >= 1 && (auto as u64) < files, "{auto} of {files}");
    }
}
