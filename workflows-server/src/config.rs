//! The server's settings.

use std::net::SocketAddr;
use std::time::Duration;

use crate::ServerError;

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
    /// How long an ended run (completed, failed or cancelled) is kept, with its events, after
    /// it ended; then it is deleted, as a purge would. `None`: kept until purged. Default 7
    /// days.
    pub retention: Option<Duration>,
    /// The interval of SSE heartbeat comments on a quiet stream. `None`: none. Default 15 s.
    pub heartbeat: Option<Duration>,
    /// The largest request body accepted (413 beyond). Default 1 MiB.
    pub max_body_bytes: usize,
    /// How long a client may take to send the head of a request (its line and headers),
    /// counted from when its connection opened or its previous response was sent; the
    /// connection is closed after that. So it is also how long an idle keep-alive connection
    /// stays open. Default 10 s. Applies where the server listens itself
    /// ([`Server::start`](crate::Server::start)).
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body once its head has arrived (`408`
    /// after that). Default 30 s.
    pub body_timeout: Duration,
    /// The most connections open at once; more wait to be accepted. `None` (the default):
    /// three quarters of the process's open-file limit, the rest being left to the store.
    /// Applies where the server listens itself.
    pub max_connections: Option<usize>,
    /// How long a cancel request waits for the run to end before answering. Default 10 s.
    pub cancel_wait: Duration,
    /// Which web pages of other origins may call the API from a browser. Default
    /// [`Cors::SameOrigin`]: none.
    pub cors: Cors,
    /// Who may call the API: see [`Auth`]. Default [`Auth::LoopbackOnly`].
    pub auth: Auth,
    /// The names (`Host` headers, without the port) requests may be addressed to. Empty (the
    /// default): the loopback names (`localhost`, `*.localhost`, `127.0.0.1`, `[::1]`) while
    /// the server listens on loopback only, any name otherwise. A browser page on a domain
    /// that an attacker points at 127.0.0.1 (DNS rebinding) names that domain in `Host`, and
    /// is refused. Behind a proxy, or at a name of your own, list the names here.
    pub allowed_hosts: Vec<String>,
}

/// Which browser origins other than the server's own may call its API (CORS).
///
/// Besides the CORS headers, a request that a browser sends from a page of a foreign origin
/// (its `Origin` header, or `Sec-Fetch-Site: cross-site`) is refused with a `403` before it
/// does anything: a form or a `text/plain` POST from another site, which a browser sends
/// without asking first, starts, answers or cancels nothing.
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
    /// Only pages served by the server's own origin (and clients that are not browsers): no
    /// CORS headers, and requests from other origins refused.
    #[default]
    SameOrigin,
    /// These origins too (`scheme://host[:port]`), with credentials.
    Origins(Vec<String>),
    /// Any origin, without credentials (cookies and HTTP authentication are not sent across
    /// origins). With [`Auth::Tokens`] a page still needs a token; without, any web page a
    /// user opens can drive the server's runs.
    AnyOrigin,
    /// Neither CORS headers nor the refusal of other origins: the choice when an app mounts
    /// the routes behind CORS and cross-site protection of its own.
    Off,
}

/// Who may call the API.
///
/// `GET /health` and the page at `/` answer anyone; every other route needs, with
/// [`Auth::Tokens`], an `Authorization: Bearer <token>` header naming one of the tokens
/// (`401` otherwise).
///
/// ```
/// use workflows_server::{Auth, Config, Tokens};
///
/// let config = Config {
///     auth: Auth::Tokens(Tokens::new(["a-long-random-secret-0123456789"])?),
///     ..Config::default()
/// };
/// # let _ = config;
/// # Ok::<(), workflows_server::ServerError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Auth {
    /// No tokens, which a server accepts only while it listens on loopback: binding any other
    /// address without [`Auth::Tokens`] or [`Auth::Off`] is refused at start.
    #[default]
    LoopbackOnly,
    /// A request must bear one of these tokens.
    Tokens(Tokens),
    /// No tokens wherever the server listens: anyone who reaches the port can list, read,
    /// answer, cancel and purge every run. For a server behind a gateway that authenticates.
    Off,
}

/// Bearer tokens, any of which lets a request in. Its `Debug` output does not show them.
///
/// ```
/// let tokens = workflows_server::Tokens::parse("# the console\nfirst-token-0123456789\n")?;
/// assert_eq!(tokens.len(), 1);
/// assert_eq!(format!("{tokens:?}"), "Tokens(1 token)");
/// # Ok::<(), workflows_server::ServerError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens(Vec<String>);

/// The shortest token accepted: shorter ones can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

impl Tokens {
    /// These tokens: each at least [`MIN_TOKEN_LEN`] bytes of visible ASCII, and at least one.
    pub fn new(tokens: impl IntoIterator<Item = impl Into<String>>) -> Result<Tokens, ServerError> {
        let tokens: Vec<String> = tokens.into_iter().map(Into::into).collect();
        if tokens.is_empty() {
            return Err(ServerError::Config(
                "no authentication token given: give at least one".into(),
            ));
        }
        for (n, token) in tokens.iter().enumerate() {
            if token.len() < MIN_TOKEN_LEN {
                return Err(ServerError::Config(format!(
                    "authentication token {} is {} bytes long; a token has at least \
                     {MIN_TOKEN_LEN} (make one with `openssl rand -hex 32`)",
                    n + 1,
                    token.len()
                )));
            }
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ServerError::Config(format!(
                    "authentication token {} holds a space or a character that is not \
                     visible ASCII, which an Authorization header cannot carry",
                    n + 1
                )));
            }
        }
        Ok(Tokens(tokens))
    }

    /// The tokens in `text`: one per line, or separated by commas or spaces; empty lines and
    /// lines starting with `#` are skipped. The format of a token file and of
    /// `WORKFLOWS_AUTH_TOKENS`.
    pub fn parse(text: &str) -> Result<Tokens, ServerError> {
        Tokens::new(
            text.lines()
                .map(str::trim)
                .filter(|line| !line.starts_with('#'))
                .flat_map(|line| line.split([',', ' ', '\t']))
                .filter(|t| !t.is_empty()),
        )
    }

    /// The tokens in the file at `path` (see [`Tokens::parse`]).
    pub fn read(path: impl AsRef<std::path::Path>) -> Result<Tokens, ServerError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ServerError::Config(format!(
                "cannot read the token file {}: {e}",
                path.display()
            ))
        })?;
        Tokens::parse(&text)
    }

    /// The tokens themselves.
    pub fn into_vec(self) -> Vec<String> {
        self.0
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never: a `Tokens` holds at least one.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `presented` is one of them, compared in time that does not depend on where
    /// it differs.
    pub(crate) fn admit(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.0
            .iter()
            .fold(subtle::Choice::from(0), |found, t| {
                found | t.as_bytes().ct_eq(presented)
            })
            .into()
    }
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.len();
        write!(f, "Tokens({n} token{})", if n == 1 { "" } else { "s" })
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            lease_ttl: Duration::from_secs(30),
            poll_interval: Duration::from_millis(100),
            idle_release: Some(Duration::from_secs(60)),
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            heartbeat: Some(Duration::from_secs(15)),
            max_body_bytes: 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: None,
            cancel_wait: Duration::from_secs(10),
            cors: Cors::default(),
            auth: Auth::default(),
            allowed_hosts: Vec::new(),
        }
    }
}
