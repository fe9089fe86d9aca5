//! Serve workflows over HTTP, wire-compatible with `llama-agents-server` 0.8.0, so that its
//! Python client (`llama-agents-client`) and front ends written for it work unchanged.
//!
//! Register runners by name, pick a store (`SqliteStorage` by default, `PostgresStorage` for
//! several servers; see [`storage`]), and serve:
//!
//! ```no_run
//! use workflows::prelude::*;
//! use workflows_server::Server;
//!
//! struct NumberWorkflow;
//!
//! #[workflow]
//! impl NumberWorkflow {
//!     #[step]
//!     async fn ask(&self, _ev: StartEvent) -> InputRequiredEvent {
//!         InputRequiredEvent::new("Enter a number: ")
//!     }
//!
//!     #[step]
//!     async fn answer(&self, ev: HumanResponseEvent) -> StopEvent<String> {
//!         StopEvent::new(ev.response)
//!     }
//! }
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), workflows_server::ServerError> {
//! Server::new()
//!     .workflow("number", NumberWorkflow.runner())
//!     .sqlite("runs.db")?
//!     .serve() // 127.0.0.1:8080 until Ctrl-C
//!     .await
//! # }
//! ```
//!
//! # Routes
//!
//! | route | does |
//! |---|---|
//! | `GET /health` | `{"status": "healthy"}`, or 503 `{"status": "unhealthy"}` while the store cannot write (it does not answer, the disk is full, the database is read-only) or the server shuts down |
//! | `GET /workflows` | the registered names |
//! | `POST /workflows/{name}/run` | starts a run and answers when it ends (200, or 500 if it failed) |
//! | `POST /workflows/{name}/run-nowait` | starts a run and answers at once with its handler |
//! | `GET /workflows/{name}/schema`, `/events`, `/representation` | the start and stop events, every event, the graph |
//! | `GET /workflows/{name}/graph.svg` | not in the reference: the graph drawn as SVG, laid out by the server ([`Graph::to_svg`](workflows::graph::Graph::to_svg)) |
//! | `GET /events/{handler_id}` | the run's events: SSE (`id:` = sequence number) or NDJSON (`sse=false`), from `after_sequence` (`-1`: all, default `now`) or `Last-Event-ID`; `include_internal`, `include_qualified_name`; 204 when the run ended and nothing is left |
//! | `POST /events/{handler_id}` | sends `{"event": {"type": ..., "value": ...}, "step": ...}` into the run (200 `{"status": "sent"}`, 409 if it ended); our extension `"child": "Review/0"` sends it to that child run |
//! | `GET /handlers` | handlers, filtered by repeated `status` and `workflow_name`; with `limit` (1 to 1,000), a page and its `next_cursor`, passed back as `cursor` for the next |
//! | `GET /handlers/{handler_id}` | one handler: 200 completed, 202 running, 500 failed or cancelled |
//! | `POST /handlers/{handler_id}/cancel` | cancels (and with `purge=true` deletes) a run |
//! | `GET /inbox` | not in the reference: the runs waiting for a person, the longest waiting first, each with its open input requests (the request, the child run that asked, the answer's type and JSON Schema, a wait's requirements); `workflow_name` and `handler_id` filter, `limit` (1 to 1,000, default 100) |
//!
//! Who may call: with [`Auth::Tokens`] every route but `/health` and the page needs
//! `Authorization: Bearer <token>` (`401`); a server without tokens listens on loopback only
//! (or says [`Auth::Off`]); requests from other origins' pages are refused (`403`) unless
//! [`Config::cors`] allows them; a server on loopback answers to loopback host names and
//! [`Config::allowed_hosts`] only (`403`).
//!
//! Errors are `{"detail": "..."}` with the reference's status codes; a body over the limit
//! (1 MiB by default) is a 413, and a handler id that cannot name a handler (empty, over 256
//! bytes, or holding a control character) is a 400.
//!
//! # Cargo features
//!
//! | feature | gives | default |
//! |---|---|---|
//! | `sqlite` | `storage::SqliteStorage` and `Server::sqlite` (SQLite compiled in, `bundled`) | yes |
//! | `cli` | `cli::Args` and the `workflows-server` binary (clap, tracing-subscriber) | yes |
//! | `postgres` | `storage::PostgresStorage`: a pool of connections with prepared statements | no |
//! | `postgres-tls` | TLS to Postgres with rustls, `sslmode` read from the URL | no |
//!
//! An application that embeds the server and keeps its runs in Postgres depends on
//! `workflows-server = { version = "0.1", default-features = false, features = ["postgres-tls"] }`
//! and compiles neither SQLite nor the binary's dependencies.
//!
//! # Runs outlive the process
//!
//! Every published event is stored (a reconnecting stream loses nothing), and a run's
//! snapshot is stored each time it waits for the outside and each time it takes in sent
//! events. A server that restarts resumes the runs it was executing; a run waiting for a
//! human stays waiting, and after [`Config::idle_release`] leaves memory until an event
//! arrives. An ended run is deleted [`Config::retention`] after it ended (7 days by
//! default). Several servers on one Postgres database share their runs: an event sent through
//! any of them reaches the run, and a lease makes sure only one server executes it.

mod api;
#[cfg(feature = "cli")]
pub mod cli;
mod clock;
mod config;
mod connections;
mod describe;
mod engine;
mod envelope;
mod served;
pub mod storage;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use workflows::{Runner, Workflow};

pub use config::{Auth, Config, Cors, MIN_LEASE_TTL, MIN_TOKEN_LEN, Tokens};
pub use connections::raise_open_file_limit;

use engine::Engine;
use served::Served;
use storage::{Storage, StorageError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The store could not be opened or prepared.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
    /// Two workflows were registered under one name.
    #[error("two workflows are registered as `{0}`; give each a name of its own")]
    DuplicateWorkflow(String),
    /// Two event types share one name in the registry.
    #[error(transparent)]
    Registry(#[from] workflows::registry::RegistryError),
    /// A setting is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// The store of a server given none: `workflows.db` in the working directory.
#[cfg(feature = "sqlite")]
fn default_storage() -> Result<Arc<dyn Storage>, ServerError> {
    Ok(Arc::new(storage::SqliteStorage::open("workflows.db")?))
}

/// Without the `sqlite` feature there is no store to fall back on.
#[cfg(not(feature = "sqlite"))]
fn default_storage() -> Result<Arc<dyn Storage>, ServerError> {
    Err(ServerError::Config(
        "no store: give one with Server::storage (this build has no `sqlite` feature for the \
         default workflows.db)"
            .into(),
    ))
}

/// The console: a web page for the people who start, follow and answer runs, in one HTML file
/// (no network beyond the server it is served by). It lists the served workflows with their
/// graphs and start forms generated from their start events' JSON Schemas, the runs (live),
/// each run's timeline with its open requests answered through forms generated from their
/// answers' schemas, and an inbox of every run waiting for a person. Serve it at `/` with
/// [`Server::page`]:
///
/// ```no_run
/// # use workflows::prelude::*;
/// # struct Review;
/// # #[workflow]
/// # impl Review {
/// #     #[step]
/// #     async fn go(&self, _ev: StartEvent) -> StopEvent<()> { StopEvent::new(()) }
/// # }
/// # async fn serve() -> Result<(), workflows_server::ServerError> {
/// workflows_server::Server::new()
///     .workflow("review", Review.runner())
///     .page(workflows_server::CONSOLE)
///     .sqlite("runs.db")?
///     .serve()
///     .await
/// # }
/// ```
pub const CONSOLE: &str = include_str!("../static/index.html");

/// A server being configured. See the [crate documentation](crate) for an example.
#[must_use = "a server does nothing until started"]
pub struct Server {
    workflows: Vec<(String, Arc<dyn Served>)>,
    extra_events: std::collections::HashMap<String, Vec<workflows::EventInfo>>,
    storage: Option<Arc<dyn Storage>>,
    config: Config,
    page: Option<&'static str>,
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

impl Server {
    /// A server with no workflows, the default [`Config`] and no store chosen yet (a SQLite
    /// file `workflows.db` in the working directory unless one is).
    pub fn new() -> Self {
        Server {
            workflows: Vec::new(),
            extra_events: Default::default(),
            storage: None,
            config: Config::default(),
            page: None,
        }
    }

    /// Serves `runner`'s workflow as `name`.
    pub fn workflow<W: Workflow>(mut self, name: impl Into<String>, runner: Runner<W>) -> Self {
        self.workflows.push((name.into(), Arc::new(runner)));
        self
    }

    /// Lists `events` among the workflow `name`'s events in `GET /workflows/{name}/events`,
    /// beside those its steps take and return: the reference's `additional_events`, for types
    /// a step only waits for (`ctx.wait_for_event`), which the step signatures do not show.
    /// Sending them works without this: every registered event type is found by name.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use workflows::EventInfo;
    /// use workflows::prelude::*;
    ///
    /// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
    /// #[event(response)]
    /// struct Vote {
    ///     approve: bool,
    /// }
    ///
    /// let server = workflows_server::Server::new().events("ballot", [EventInfo::of::<Vote>()]);
    /// # let _ = server;
    /// ```
    pub fn events(
        mut self,
        name: impl Into<String>,
        events: impl IntoIterator<Item = workflows::EventInfo>,
    ) -> Self {
        self.extra_events
            .entry(name.into())
            .or_default()
            .extend(events);
        self
    }

    /// Stores runs in `storage`.
    pub fn storage(mut self, storage: impl Storage) -> Self {
        self.storage = Some(Arc::new(storage));
        self
    }

    /// Stores runs in the SQLite file at `path` (created if missing; feature `sqlite`).
    #[cfg(feature = "sqlite")]
    pub fn sqlite(self, path: impl AsRef<std::path::Path>) -> Result<Self, ServerError> {
        Ok(self.storage(storage::SqliteStorage::open(path)?))
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Listens on `addr` (default `127.0.0.1:8080`; port 0 picks a free one).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.config.bind = addr;
        self
    }

    /// Parks runs that waited `after` for the outside (`None`: never).
    pub fn idle_release(mut self, after: Option<Duration>) -> Self {
        self.config.idle_release = after;
        self
    }

    /// Serves `html` at `/`, for a front end of the server's own, such as [`CONSOLE`].
    pub fn page(mut self, html: &'static str) -> Self {
        self.page = Some(html);
        self
    }

    /// Checks the configuration before anything is opened or bound.
    fn check(&self) -> Result<(), ServerError> {
        workflows::registry::check()?;
        if self.config.lease_ttl < MIN_LEASE_TTL {
            return Err(ServerError::Config(format!(
                "lease_ttl is {:?}; a lease shorter than {MIN_LEASE_TTL:?} cannot be renewed in time",
                self.config.lease_ttl
            )));
        }
        if self.config.header_timeout.is_zero() || self.config.body_timeout.is_zero() {
            return Err(ServerError::Config(
                "header_timeout and body_timeout must not be zero".into(),
            ));
        }
        if self.config.max_connections == Some(0) {
            return Err(ServerError::Config(
                "max_connections must be at least 1".into(),
            ));
        }
        if self.config.poll_interval.is_zero() {
            return Err(ServerError::Config("poll_interval must not be zero".into()));
        }
        if let Cors::Origins(origins) = &self.config.cors
            && let Some(bad) = origins
                .iter()
                .find(|o| o.parse::<axum::http::HeaderValue>().is_err() || o.ends_with('/'))
        {
            return Err(ServerError::Config(format!(
                "the CORS origin `{bad}` is not an origin; write it as scheme://host[:port]"
            )));
        }
        for (i, (name, _)) in self.workflows.iter().enumerate() {
            if self.workflows[..i].iter().any(|(n, _)| n == name) {
                return Err(ServerError::DuplicateWorkflow(name.clone()));
            }
        }
        Ok(())
    }

    /// Prepares the store, resumes stored runs and starts the background work; returns the
    /// routes and the handle of that work. `listening`: the address bound, when the server
    /// serves the routes itself.
    async fn launch(
        self,
        listening: Option<SocketAddr>,
    ) -> Result<(axum::Router, ServerHandle), ServerError> {
        let storage = match self.storage {
            Some(s) => s,
            None => default_storage()?,
        };
        storage.migrate().await?;
        let feed = storage.changes();
        let engine = Arc::new(Engine::new(
            storage,
            self.workflows,
            self.extra_events,
            self.config,
            &feed,
        ));
        let hear = engine.hear(feed);
        let maintain = tokio::spawn(engine.clone().maintain());
        let renew = tokio::spawn(engine.clone().renew_leases());
        let router = api::router(engine.clone(), self.page, listening);
        Ok((
            router,
            ServerHandle {
                engine,
                maintain,
                renew,
                hear,
            },
        ))
    }

    /// The server as routes to mount in an axum 0.8 app of your own, with the handle of its
    /// background work (resuming stored runs, leases, parking idle runs). The store is
    /// prepared and stored runs resume before this returns; nothing listens: serve the routes
    /// yourself, under any prefix and behind your own layers, and call
    /// [`ServerHandle::shutdown`] before you stop serving them.
    ///
    /// The routes carry the CORS layer [`Config::cors`] asks for (`Cors::Off` when your app
    /// has its own), the refusal of other origins' pages, and [`Config::auth`]'s tokens; the
    /// `Host` header is checked only against [`Config::allowed_hosts`], if you list any. A
    /// [`page`](Self::page) is served at the mount point.
    ///
    /// ```no_run
    /// use axum::routing::get;
    /// use workflows::prelude::*;
    ///
    /// struct Echo;
    ///
    /// #[workflow]
    /// impl Echo {
    ///     #[step]
    ///     async fn echo(&self, ev: StartEvent) -> StopEvent<String> {
    ///         StopEvent::new(ev.get::<String>("text").unwrap_or_default())
    ///     }
    /// }
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (workflows, handle) = workflows_server::Server::new()
    ///     .workflow("echo", Echo.runner())
    ///     .sqlite("runs.db")?
    ///     .into_router()
    ///     .await?;
    /// let app = axum::Router::new()
    ///     .route("/", get(|| async { "my app" }))
    ///     .nest("/api", workflows); // POST /api/workflows/echo/run, GET /api/events/{id}, ...
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    /// axum::serve(listener, app)
    ///     .with_graceful_shutdown(async { tokio::signal::ctrl_c().await.unwrap() })
    ///     .await?;
    /// handle.shutdown().await; // store the runs in memory, give up their leases
    /// # Ok(())
    /// # }
    /// ```
    pub async fn into_router(self) -> Result<(axum::Router, ServerHandle), ServerError> {
        self.check()?;
        self.launch(None).await
    }

    /// Prepares the store, binds, resumes stored runs and serves in the background.
    pub async fn start(self) -> Result<RunningServer, ServerError> {
        self.check()?;
        let addr = self.config.bind;
        if !addr.ip().is_loopback() && self.config.auth == Auth::LoopbackOnly {
            return Err(ServerError::Config(format!(
                "listening on {addr}, beyond loopback, needs authentication: give tokens \
                 (--auth-token-file, WORKFLOWS_AUTH_TOKENS, or Config::auth = Auth::Tokens), \
                 or say that anyone who reaches the port may drive every run (--no-auth, \
                 Auth::Off)"
            )));
        }
        let listener =
            connections::listen(addr).map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        let config = self.config.clone();
        let (app, handle) = self.launch(Some(local_addr)).await?;
        let (stop, stopped) = oneshot::channel::<()>();
        let cap = connections::Cap::new(&config);
        let gate = cap.clone();
        let serve =
            tokio::spawn(
                async move { connections::serve(listener, app, &config, gate, stopped).await },
            );
        tracing::info!("serving on http://{local_addr}");
        Ok(RunningServer {
            local_addr,
            cap,
            handle,
            stop: Some(stop),
            serve,
        })
    }

    /// [`start`](Self::start)s, then serves until Ctrl-C (or SIGTERM), and stops cleanly:
    /// the runs in memory are stored, to be resumed by the next server.
    pub async fn serve(self) -> Result<(), ServerError> {
        let running = self.start().await?;
        println!(
            "workflows-server listening on http://{}",
            running.local_addr()
        );
        shutdown_signal().await;
        running.shutdown().await
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The background work of a server whose routes you serve yourself (see
/// [`Server::into_router`]). Dropping it leaves the work running until the runtime ends; call
/// [`shutdown`](Self::shutdown) to stop it cleanly.
pub struct ServerHandle {
    engine: Arc<Engine>,
    maintain: JoinHandle<()>,
    renew: JoinHandle<()>,
    /// Passes on the store's word of other servers' changes (a shared store only).
    hear: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// This server's id, the name its leases go by.
    pub fn id(&self) -> &str {
        self.engine.id()
    }

    /// How many runs this server holds in memory.
    pub fn runs_in_memory(&self) -> usize {
        self.engine.live_count()
    }

    /// Stores every run in memory and gives up its leases (waiting up to 10 s for them; a
    /// run that could not be stored in that time is cancelled here and left to its lease),
    /// cuts open event streams so that their clients reconnect elsewhere, and stops the
    /// background work. From then on the routes start no new runs and `/health` answers 503,
    /// so a load balancer sends traffic elsewhere; stop serving them.
    pub async fn shutdown(mut self) {
        self.engine.shutdown().await;
        // It ends by itself once it sees the server closing (an adoption it is in the middle
        // of gives its lease back rather than start the run).
        if tokio::time::timeout(STOP_GRACE, &mut self.maintain)
            .await
            .is_err()
        {
            self.maintain.abort();
        }
        self.renew.abort();
        if let Some(hear) = self.hear {
            // Dropping its receiver stops the store's listener too.
            hear.abort();
        }
    }
}

/// How long stopping waits for the background work, then for open requests, before it cuts
/// them.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A server that is serving. Dropping it leaves it serving until the runtime ends; call
/// [`shutdown`](Self::shutdown) to stop it cleanly.
pub struct RunningServer {
    local_addr: SocketAddr,
    cap: connections::Cap,
    handle: ServerHandle,
    stop: Option<oneshot::Sender<()>>,
    serve: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This server's id, the name its leases go by.
    pub fn id(&self) -> &str {
        self.handle.id()
    }

    /// How many runs this server holds in memory.
    pub fn runs_in_memory(&self) -> usize {
        self.handle.runs_in_memory()
    }

    /// How many connections are open now (at most [`Config::max_connections`]).
    pub fn open_connections(&self) -> usize {
        self.cap.open()
    }

    /// Stops the background work as [`ServerHandle::shutdown`] does, then stops accepting
    /// requests; requests still open after another 10 s are cut.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        self.handle.shutdown().await;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(STOP_GRACE, &mut self.serve).await {
            Ok(Ok(result)) => result.map_err(ServerError::Serve),
            Ok(Err(_)) => Ok(()),
            Err(_) => {
                self.serve.abort();
                Ok(())
            }
        }
    }
}
