//! The server's settings.

use std::net::SocketAddr;
use std::time::Duration;

/// The shortest lease a server accepts: renewed every third of it, a shorter one could not be
/// renewed in time on a busy machine.
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(workflows_server::MIN_LEASE_TTL, Duration::from_millis(100));
/// ```
pub const MIN_LEASE_TTL: Duration = Duration::from_millis(100);

/// How a [`Server`](crate::Server) behaves. Every field has a default suited to one server on
/// a developer's machine; set them through the [`Server`](crate::Server) builder.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen. Default `127.0.0.1:8080`: nothing listens beyond loopback unless
    /// configured.
    pub bind: SocketAddr,
    /// How long a server's hold on a run lasts without renewal (renewed every third of it).
    /// A server that dies leaves its runs to the others after this long. Default 30 s; at
    /// least [`MIN_LEASE_TTL`].
    pub lease_ttl: Duration,
    /// How often a server looks for work in the store (events sent to its runs through
    /// other servers, runs nobody holds), and how often a stream of a run held elsewhere
    /// looks for new events. Default 100 ms.
    pub poll_interval: Duration,
    /// How long a run waiting for the outside stays in memory before it is parked in the
    /// store (an event brings it back). `None`: never parked. Default 60 s.
    pub idle_release: Option<Duration>,
    /// The interval of SSE heartbeat comments on a quiet stream. `None`: none. Default 15 s.
    pub heartbeat: Option<Duration>,
    /// The largest request body accepted (413 beyond). Default 1 MiB.
    pub max_body_bytes: usize,
    /// How long a cancel request waits for the run to end before answering. Default 10 s.
    pub cancel_wait: Duration,
    /// Which web pages of other origins may call the API from a browser. Default
    /// [`Cors::AnyOrigin`].
    pub cors: Cors,
}

/// Which browser origins other than the server's own may call its API (CORS).
///
/// ```
/// use workflows_server::{Config, Cors};
///
/// let config = Config {
///     cors: Cors::Origins(vec!["https://console.example.com".into()]),
///     ..Config::default()
/// };
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cors {
    /// No CORS headers: only pages served by the same origin (or non-browser clients) call
    /// the API. The choice when an app mounts the routes behind its own CORS layer.
    Off,
    /// Any origin, with credentials: the request's origin, method and headers are echoed
    /// back, as the reference server allows.
    #[default]
    AnyOrigin,
    /// These origins only (`scheme://host[:port]`), with credentials.
    Origins(Vec<String>),
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            lease_ttl: Duration::from_secs(30),
            poll_interval: Duration::from_millis(100),
            idle_release: Some(Duration::from_secs(60)),
            heartbeat: Some(Duration::from_secs(15)),
            max_body_bytes: 1024 * 1024,
            cancel_wait: Duration::from_secs(10),
            cors: Cors::default(),
        }
    }
}
