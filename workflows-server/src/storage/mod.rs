//! Where the server keeps its runs: one trait, [`Storage`], with an embedded SQLite backend
//! (`SqliteStorage`, feature `sqlite`, on by default) and a Postgres one (`PostgresStorage`,
//! feature `postgres`) for several servers sharing their runs. Both run the same statements
//! (`sql.rs`) and migrations (`schema.rs`), and pass one conformance suite
//! (`tests/storage.rs`) that a store written elsewhere can be held to as well.
//!
//! A run is stored as a handler row (its status, result, latest snapshot and the event it
//! started with), its published events (numbered, for streams that reconnect) and an inbox
//! (events and cancels sent to it, kept until the run's owner has taken them into a snapshot).
//! Ownership is a lease: the server that executes a run holds it and renews it; every write a
//! run's owner makes checks that it still holds the lease, so two servers never both execute
//! a run. A lease is named `{server}/{n}`, a new name for each claim: a write left over from a
//! copy of the run that a server gave up fails even if the same server has claimed the run
//! again since.

mod error;
#[cfg(feature = "postgres")]
mod postgres;
mod schema;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

pub use error::{Cause, ErrorChain, StorageError};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStorage};
pub use schema::SCHEMA_VERSION;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStorage;

/// What a write the server has acknowledged (an answer's `200`, a stored event) survives.
///
/// ```
/// use workflows_server::storage::Durability;
///
/// assert_eq!(Durability::default(), Durability::PowerLoss);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// A crash of the process, of the operating system, or a power cut: the write is on disk
    /// (synced) before it is acknowledged. SQLite runs with `synchronous=FULL`, its writes
    /// grouped so that one sync covers every write waiting at that moment; Postgres with
    /// `synchronous_commit=on`.
    #[default]
    PowerLoss,
    /// A crash of the process only: the write is handed to the operating system, not synced,
    /// so an OS crash or a power cut can lose the last acknowledged writes (the database stays
    /// consistent). SQLite `synchronous=NORMAL`, Postgres `synchronous_commit=off`.
    ProcessCrash,
}

/// A boxed future, so that [`Storage`] can be used as a trait object.
pub type StorageFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StorageError>> + Send + 'a>>;

/// Where a handler stands, as the wire protocol names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Executing, or waiting for an event.
    Running,
    /// Ended with a result.
    Completed,
    /// Ended with an error (a step failed, or the run timed out).
    Failed,
    /// Cancelled.
    Cancelled,
}

impl Status {
    /// The status as stored and sent: `running`, `completed`, `failed` or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// The status named `text`, if it is one.
    pub fn parse(text: &str) -> Option<Status> {
        Some(match text {
            "running" => Status::Running,
            "completed" => Status::Completed,
            "failed" => Status::Failed,
            "cancelled" => Status::Cancelled,
            _ => return None,
        })
    }

    /// Whether the run has ended.
    pub fn is_terminal(self) -> bool {
        self != Status::Running
    }
}

/// A handler as stored: what `GET /handlers/{id}` reports, plus ownership.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerRecord {
    /// The handler's id (chosen by the client or generated).
    pub handler_id: String,
    /// The registered name of the workflow.
    pub workflow_name: String,
    /// The run's id.
    pub run_id: String,
    /// Where it stands.
    pub status: Status,
    /// The error of a failed run.
    pub error: Option<String>,
    /// The final event of a completed run, as an envelope (JSON text).
    pub result: Option<String>,
    /// Microseconds since the Unix epoch.
    pub started_at: i64,
    /// Last change, microseconds since the Unix epoch.
    pub updated_at: i64,
    /// When the run ended.
    pub completed_at: Option<i64>,
    /// Since when the run has been waiting for an event from outside.
    pub idle_since: Option<i64>,
    /// The lease of the server executing the run (`{server}/{n}`), if one is.
    pub owner: Option<String>,
    /// Until when the owner's lease holds, milliseconds since the Unix epoch on the store's
    /// clock.
    pub lease_until: Option<i64>,
}

/// What a server needs to bring a stored run back into memory.
#[derive(Debug, Clone, PartialEq)]
pub struct RunState {
    /// The start event as `{"name": ..., "data": ...}`, for a run that has no snapshot yet.
    pub start_event: String,
    /// The latest snapshot (JSON text), if one was taken.
    pub snapshot: Option<String>,
}

/// One published event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Its sequence number in the run's stream.
    pub sequence: u64,
    /// The envelope, JSON text.
    pub envelope: String,
    /// Whether it is an internal event (hidden unless a stream asks for them).
    pub internal: bool,
    /// Whether it ends the run's stream.
    pub terminal: bool,
}

/// Something sent to a run, waiting for its owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InboxItem {
    /// An event, by registered name, with its data, for every step or for one.
    Event {
        /// The registered event name.
        name: String,
        /// The event's JSON.
        data: serde_json::Value,
        /// The step it is for, if only one.
        step: Option<String>,
        /// The child run it is for (its path), if one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        child: Option<String>,
    },
    /// Cancel the run.
    Cancel,
}

/// Changes a run's owner writes at once (only while it holds the lease).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunUpdate {
    /// The new status.
    pub status: Option<Status>,
    /// The result envelope.
    pub result: Option<String>,
    /// The error (a NUL in it is stored as U+FFFD: Postgres text cannot hold NUL).
    pub error: Option<String>,
    /// The latest snapshot.
    pub snapshot: Option<String>,
    /// `Some(Some(t))`: idle since `t`; `Some(None)`: busy again.
    pub idle_since: Option<Option<i64>>,
    /// Events of the handler's current run to append first, in the same write, as
    /// [`Storage::append_events`] does (a sequence number already stored is kept): a
    /// snapshot stored with the events it reflects, so that neither is stored without the
    /// other.
    pub events: Vec<StoredEvent>,
    /// Inbox items now reflected in `snapshot`, to delete.
    pub consumed: Vec<i64>,
    /// Also give up the lease.
    pub release: bool,
}

/// A filter for listing handlers, and a page of them; `None` matches all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HandlerFilter {
    /// Any of these statuses.
    pub status_in: Option<Vec<Status>>,
    /// Any of these workflow names.
    pub workflow_name_in: Option<Vec<String>>,
    /// Only handlers after this one in the listing's order (`started_at`, then
    /// `handler_id`): the last of the previous page.
    pub after: Option<(i64, String)>,
    /// At most this many.
    pub limit: Option<usize>,
}

/// Whether a new handler was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// Recorded (a previous, ended handler with the same id was replaced).
    Created,
    /// A running handler already has this id.
    AlreadyRunning,
}

/// Whether others change a store, and how it tells of their changes ([`Storage::changes`]).
/// A server waits on it for the runs it does not hold: a stream reader of a run another
/// server executes, or of a run parked in the store, is woken by it rather than by polling.
#[derive(Debug)]
pub enum ChangeFeed {
    /// Only this process changes the store (it holds it alone, as the SQLite store does):
    /// the server knows of every change itself.
    Local,
    /// Other processes change the store too, and tell of their changes here, as they commit.
    Shared(tokio::sync::mpsc::Receiver<Change>),
    /// Other processes may change the store, and it does not tell when: readers poll it
    /// every [`Config::poll_interval`](crate::Config::poll_interval).
    Unknown,
}

/// A change another process made to a store ([`ChangeFeed::Shared`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The handler stored events, ended, or was replaced or deleted.
    Handler(String),
    /// Changes may have gone untold (the store's channel was cut and is back, or is still
    /// cut): every reader looks again.
    Missed,
}

/// The persistence a server runs on.
///
/// Leases are kept on the store's own clock: a backend reads "now" itself when it sets,
/// checks or compares a lease (Postgres asks the database), so that servers whose clocks
/// disagree still agree on who holds a run. Servers pass lease lengths, not instants. The
/// timestamps shown to clients (`started_at`, ...) come from the server.
pub trait Storage: Send + Sync + 'static {
    /// Creates the tables, or brings a database made by an earlier build up to
    /// [`SCHEMA_VERSION`] without losing its runs; refuses a database a newer build migrated
    /// ([`StorageError::SchemaTooNew`]). Called once as the server starts.
    fn migrate(&self) -> StorageFuture<'_, ()>;

    /// Records a new running handler with its start event, its lease held by
    /// `record.owner` for `lease_ms` (`record.lease_until` is not read).
    fn create_handler(
        &self,
        record: HandlerRecord,
        start_event: String,
        lease_ms: i64,
    ) -> StorageFuture<'_, Created>;

    /// Writes and commits a change of no consequence: whether the store can write now (not
    /// only read). `/health` asks it, so that a full disk or a read-only database makes the
    /// server unhealthy before an answer is refused.
    fn probe_write(&self) -> StorageFuture<'_, ()>;

    /// The handler `handler_id`.
    fn handler(&self, handler_id: &str) -> StorageFuture<'_, Option<HandlerRecord>>;

    /// The handlers matching `filter`, oldest first.
    fn handlers(&self, filter: HandlerFilter) -> StorageFuture<'_, Vec<HandlerRecord>>;

    /// Deletes up to `limit` ended handlers that ended before `ended_before_us`
    /// (microseconds since the Unix epoch), the oldest first, with their events and inbox;
    /// how many it deleted.
    fn expire(&self, ended_before_us: i64, limit: usize) -> StorageFuture<'_, usize>;

    /// Deletes a handler with its events, inbox and snapshot; whether it existed.
    fn delete_handler(&self, handler_id: &str) -> StorageFuture<'_, bool>;

    /// What resuming the run needs.
    fn run_state(&self, handler_id: &str) -> StorageFuture<'_, Option<RunState>>;

    /// Appends published events of `run_id` (a sequence number already stored is kept, not
    /// replaced), if `owner` still holds the handler's lease and it has not run out;
    /// whether it does.
    fn append_events(
        &self,
        handler_id: &str,
        run_id: &str,
        owner: &str,
        events: Vec<StoredEvent>,
    ) -> StorageFuture<'_, bool>;

    /// Up to `limit` events of `run_id` after sequence number `after` (-1: from the start).
    fn events_after(
        &self,
        run_id: &str,
        after: i64,
        limit: usize,
    ) -> StorageFuture<'_, Vec<StoredEvent>>;

    /// The highest sequence number stored for `run_id`.
    fn last_sequence(&self, run_id: &str) -> StorageFuture<'_, Option<u64>>;

    /// Applies `update` if `owner` holds the handler's lease and it has not run out; whether
    /// it did. `now_us` is the server's time, for `updated_at` and `completed_at`.
    fn update_run(
        &self,
        handler_id: &str,
        owner: &str,
        update: RunUpdate,
        now_us: i64,
    ) -> StorageFuture<'_, bool>;

    /// Takes the lease of a running handler that no one holds (or whose lease ran out)
    /// for `owner`, for `lease_ms`; whether `owner` holds it now.
    fn claim(&self, handler_id: &str, owner: &str, lease_ms: i64) -> StorageFuture<'_, bool>;

    /// Extends every lease `server` holds (every `{server}/{n}`) to `lease_ms` from now.
    fn renew(&self, server: &str, lease_ms: i64) -> StorageFuture<'_, ()>;

    /// Gives up the lease of `handler_id`, if `owner` holds it.
    fn release(&self, handler_id: &str, owner: &str) -> StorageFuture<'_, ()>;

    /// Queues `item` for the run.
    fn push_inbox(&self, handler_id: &str, item: InboxItem) -> StorageFuture<'_, ()>;

    /// The items queued for the run, oldest first, with their ids.
    fn inbox(&self, handler_id: &str) -> StorageFuture<'_, Vec<(i64, InboxItem)>>;

    /// Running handlers whose lease `server` holds (a lease `{server}/{n}`), with the lease.
    fn held(&self, server: &str) -> StorageFuture<'_, Vec<(String, String)>>;

    /// Handlers whose lease `server` holds and that have inbox items.
    fn with_inbox(&self, server: &str) -> StorageFuture<'_, Vec<String>>;

    /// Running handlers that no live server holds and that have work: not waiting for an
    /// event, or waiting with an inbox item.
    fn orphans(&self) -> StorageFuture<'_, Vec<String>>;

    /// How the store tells of changes others make to it; asked once, as the server starts.
    /// A store shared between processes that says nothing ([`ChangeFeed::Unknown`], the
    /// default) is polled by the readers of runs this server does not hold.
    fn changes(&self) -> ChangeFeed {
        ChangeFeed::Unknown
    }
}
