//! The embedded backend: one SQLite file, no set-up. One server uses a file at a time (a
//! second is refused at start): when it starts it takes back the leases a previous process
//! left, so a server that was killed resumes its runs at once on restart.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::LazyLock;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, params};

use super::schema::{self, CREATE_VERSION_TABLE};
use super::sql::{self, BoxError, Dialect, SqlRow, Statements};
use super::{
    ChangeFeed, Created, Durability, HandlerFilter, HandlerRecord, InboxItem, RunState, RunUpdate,
    Status, Storage, StorageError, StorageFuture, StoredEvent,
};

/// How long a statement waits for another connection's write to the same file before it
/// fails (only another process can hold the file: this store keeps one connection).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// SQLite's spelling of the shared statements: the lease clock is the machine's (one server
/// uses a file), rows are not locked one by one (a write transaction holds the whole file),
/// and a list is bound as JSON text.
static STATEMENTS: LazyLock<Statements> = LazyLock::new(|| {
    Statements::new(&Dialect {
        now_ms: "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
        lock_unless_locked: "",
        server_of_owner: "substr(owner, 1, instr(owner, '/') - 1)",
        lock_row: "",
        any_of: |column, n| format!("{column} IN (SELECT value FROM json_each(${n}))"),
        parameters: |sql| sql.replace('$', "?"),
    })
});

/// Runs stored in one SQLite file (or in memory, for tests).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use workflows_server::storage::{SqliteStorage, Storage};
///
/// let storage = SqliteStorage::in_memory().unwrap();
/// storage.migrate().await.unwrap();
/// assert!(storage.handler("nope").await.unwrap().is_none());
/// # }
/// ```
///
/// # Group commit
///
/// One thread owns the connection and runs the store's calls in the order they were made.
/// It takes every call waiting in its queue (up to [`GROUP`]) into one transaction, each call
/// under a savepoint of its own (a call that fails undoes only its own statements), commits
/// once, and only then answers them all: with [`Durability::PowerLoss`] one sync of the
/// write-ahead log covers every write of the group, and no call is answered before its write
/// is on disk. If the commit fails, every call of the group fails.
#[derive(Clone)]
pub struct SqliteStorage {
    /// The queue of the thread that owns the connection.
    jobs: std::sync::mpsc::Sender<Job>,
}

/// The most calls committed together.
pub const GROUP: usize = 256;

/// Work for the connection's thread: runs its statements inside the group's transaction and
/// gives back how to answer its caller once the group's commit is known.
type Job = Box<dyn FnOnce(&mut Connection) -> Answer + Send>;

/// Answers one call, given whether the group's commit failed.
type Answer = Box<dyn FnOnce(Option<&rusqlite::Error>) + Send>;

impl SqliteStorage {
    /// Opens (creating if needed) the database file at `path`; an acknowledged write survives
    /// a power cut ([`Durability::PowerLoss`]). A new file is readable and writable by its
    /// owner only (it holds every answer people gave); SQLite gives its `-wal` file the same
    /// permissions.
    ///
    /// The store holds the file alone until it is dropped: opening a file another store or
    /// process holds waits up to two seconds for it to let go, then fails with
    /// [`StorageError::Open`] saying the file is in use. (No `-shm` file is made: the WAL's
    /// index lives in the store's memory.)
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        Self::open_with(path, Durability::PowerLoss)
    }

    /// Opens the database file at `path`, its acknowledged writes surviving what
    /// `durability` says.
    ///
    /// ```no_run
    /// use workflows_server::storage::{Durability, SqliteStorage};
    ///
    /// // Faster on a disk with slow syncs; an OS crash may lose the last answers.
    /// let storage = SqliteStorage::open_with("runs.db", Durability::ProcessCrash)?;
    /// # Ok::<(), workflows_server::storage::StorageError>(())
    /// ```
    pub fn open_with(path: impl AsRef<Path>, durability: Durability) -> Result<Self, StorageError> {
        let path = path.as_ref();
        let target = || format!("open the SQLite file {}", path.display());
        create_private(path).map_err(|e| StorageError::open(target(), e))?;
        let opened = |e: rusqlite::Error| StorageError::open(target(), e);
        let conn = Connection::open(path).map_err(opened)?;
        // One server per file, held to: the connection takes the file's lock with its first
        // write and keeps it until it closes (EXCLUSIVE locking mode), so a second server
        // (or any other process) is refused at start instead of failing its writes later.
        // A previous holder that is closing gets a moment to let go.
        conn.busy_timeout(TAKEOVER_WAIT).map_err(opened)?;
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(opened)?;
        let in_use = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                StorageError::Open {
                    target: target(),
                    source: std::sync::Arc::new(InUse),
                }
            }
            _ => opened(e),
        };
        // WAL: a commit appends to the log, one sync per commit.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(in_use)?;
        conn.execute_batch("BEGIN IMMEDIATE; COMMIT")
            .map_err(in_use)?;
        let synchronous = match durability {
            Durability::PowerLoss => "FULL",
            Durability::ProcessCrash => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", synchronous)
            .map_err(opened)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(opened)?;
        Ok(Self::from_connection(conn))
    }

    /// A private database in memory, gone with the value.
    pub fn in_memory() -> Result<Self, StorageError> {
        let conn = Connection::open_in_memory()
            .map_err(|e| StorageError::open("open a SQLite database in memory", e))?;
        Ok(Self::from_connection(conn))
    }

    /// Gives `conn` to a thread of its own, which runs the store's calls in groups (see
    /// [Group commit](#group-commit)), in the order they were made, until the last clone of
    /// the store is dropped.
    ///
    /// One thread rather than a blocking task per statement around a shared lock: SQLite
    /// writes one transaction at a time anyway, and a thousand requests at once would
    /// otherwise keep hundreds of blocking threads contending for that lock and for the
    /// runtime's blocking pool (which stalled a loaded server on a busy machine for minutes).
    fn from_connection(mut conn: Connection) -> Self {
        // Room for every statement the store prepares (about thirty, and the transaction's
        // own): rusqlite keeps 16 by default, and a statement pushed out is parsed again.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // A call's savepoint copies the pages it changes into a journal of its own: kept in
        // memory, not in a temporary file written on every call. (Only the savepoint's undo
        // lives there; the write-ahead log is untouched.)
        let _ = conn.pragma_update(None, "temp_store", "MEMORY");
        // A statement's plan does not depend on the values bound to it. Without this, SQLite
        // prepared the inbox and event reads again on every run (it had looked at a bound
        // value while planning them), which cost a sixth of this thread's time under load;
        // the plans the store relies on use literals where a partial index needs one.
        let _ = conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true);
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("workflows-sqlite".into())
            .spawn(move || {
                let mut answers: Vec<Answer> = Vec::with_capacity(GROUP);
                // A call taken from the queue after its group's transaction was undone under
                // it: the first of the next group.
                let mut carried: Option<Job> = None;
                loop {
                    let first = match carried.take() {
                        Some(job) => job,
                        None => match queue.recv() {
                            Ok(job) => job,
                            Err(_) => return,
                        },
                    };
                    // IMMEDIATE: the write lock is taken now, so the group cannot fail half
                    // way for want of it (only another process could hold it).
                    if let Err(e) = run(&conn, "BEGIN IMMEDIATE") {
                        // Run outside a transaction, undone by nothing; answered as failed.
                        // (BEGIN fails only when the file is locked or unwritable.)
                        first(&mut conn)(Some(&e));
                        continue;
                    }
                    answers.push(first(&mut conn));
                    while answers.len() < GROUP {
                        let Ok(job) = queue.try_recv() else { break };
                        // SQLite undoes the whole transaction on some errors (a full disk, an
                        // I/O error): the rest of the group would then run outside it, each
                        // call committed alone, while its caller is told the group failed.
                        if conn.is_autocommit() {
                            carried = Some(job);
                            break;
                        }
                        answers.push(job(&mut conn));
                    }
                    let committed = run(&conn, "COMMIT");
                    if committed.is_err() {
                        let _ = run(&conn, "ROLLBACK");
                    }
                    for answer in answers.drain(..) {
                        answer(committed.as_ref().err());
                    }
                }
            })
            .expect("a thread for the SQLite connection");
        SqliteStorage { jobs }
    }

    /// Runs `f` on the connection's thread, inside the current group's transaction under a
    /// savepoint of its own (undone if `f` fails); a failure says it was doing `operation`.
    /// Answers once the group is committed.
    fn with<T: Send + 'static>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<T, BoxError> + Send + 'static,
    ) -> StorageFuture<'static, T> {
        self.call(operation, move |conn| in_savepoint(conn, f))
    }

    /// [`with`](Self::with) for a call that only reads: no savepoint (it has nothing to
    /// undo), which saves two statements a read. A panic still fails the call alone.
    fn read<T: Send + 'static>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<T, BoxError> + Send + 'static,
    ) -> StorageFuture<'static, T> {
        self.call(operation, move |conn| {
            catch_unwind(AssertUnwindSafe(|| f(conn)))
                .unwrap_or_else(|_| Err("a statement panicked".into()))
        })
    }

    /// Runs `f` on the connection's thread, inside the current group's transaction; answers
    /// once the group is committed.
    fn call<T: Send + 'static>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<T, BoxError> + Send + 'static,
    ) -> StorageFuture<'static, T> {
        let jobs = self.jobs.clone();
        Box::pin(async move {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let job: Job = Box::new(move |conn| {
                let done = f(conn);
                Box::new(move |commit_failed: Option<&rusqlite::Error>| {
                    let done = match commit_failed {
                        // Nothing of the group happened: no call of it may say it did.
                        Some(e) => Err(format!("committing the write failed: {e}").into()),
                        None => done,
                    };
                    let _ = reply.send(done);
                })
            });
            let stopped = || StorageError::operation(operation, ThreadStopped);
            jobs.send(job).map_err(|_| stopped())?;
            answer
                .await
                .map_err(|_| stopped())?
                .map_err(|e| sql::failure(operation, e))
        })
    }
}

/// Inserts `events` with `statement` (`insert_event`, keyed by a run id, or
/// `insert_event_of_handler`, by a handler id).
fn insert_events(
    tx: &Connection,
    statement: &str,
    key: &str,
    events: &[StoredEvent],
) -> Result<(), BoxError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut insert = tx.prepare_cached(statement)?;
    for ev in events {
        insert.execute(params![
            key,
            i64::try_from(ev.sequence)?,
            ev.envelope,
            ev.internal,
            ev.terminal
        ])?;
    }
    Ok(())
}

/// How many prepared statements the connection keeps.
const STATEMENT_CACHE: usize = 64;

/// Runs one statement of transaction control (`BEGIN`, `COMMIT`, a savepoint), prepared once
/// and kept: each call of the store runs two or three of them, and parsing them every time
/// cost as much as the call's own statements.
fn run(conn: &Connection, statement: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(statement)?.execute([]).map(drop)
}

/// Runs `f` under a savepoint: kept if it succeeds, undone if it fails or panics (a statement
/// that panics fails its call, not the thread).
fn in_savepoint<T>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> Result<T, BoxError>,
) -> Result<T, BoxError> {
    run(conn, "SAVEPOINT call")?;
    let done = catch_unwind(AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err("a statement panicked".into()));
    if conn.is_autocommit() {
        // The error undid the group's whole transaction, savepoint included: the commit
        // will fail and every call of the group with it.
        return done;
    }
    if done.is_err() {
        run(conn, "ROLLBACK TO call")?;
    }
    run(conn, "RELEASE call")?;
    done
}

/// Creates `path` empty, readable and writable by its owner only, unless it exists (or names
/// no file: `:memory:`, or a `file:` URI, which SQLite opens itself).
fn create_private(path: &Path) -> std::io::Result<()> {
    let text = path.to_string_lossy();
    if text == ":memory:" || text.starts_with("file:") {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The SQLite file is held by another connection.
#[derive(Debug, thiserror::Error)]
#[error(
    "the file is in use by another server or process: one server per SQLite file; stop the \
     other, give this server a file of its own (--db), or share runs between servers \
     through Postgres"
)]
struct InUse;

/// How long opening a file waits for another connection to let go of it.
const TAKEOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The connection's thread is gone (it cannot be, while a store value exists, unless the
/// process is tearing down).
#[derive(Debug, thiserror::Error)]
#[error("the SQLite connection's thread has stopped")]
struct ThreadStopped;

impl SqlRow for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> Result<String, BoxError> {
        Ok(self.get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, BoxError> {
        Ok(self.get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64, BoxError> {
        Ok(self.get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, BoxError> {
        Ok(self.get(i)?)
    }
    fn boolean(&self, i: usize) -> Result<bool, BoxError> {
        Ok(self.get(i)?)
    }
}

/// Every row `statement` gives for `params`, read by `read`.
fn rows<T>(
    conn: &Connection,
    statement: &str,
    params: impl rusqlite::Params,
    read: impl Fn(&rusqlite::Row<'_>) -> Result<T, BoxError>,
) -> Result<Vec<T>, BoxError> {
    let mut stmt = conn.prepare_cached(statement)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(read(row)?);
    }
    Ok(out)
}

/// Whether `owner` holds the handler's lease and it has not run out.
fn holds(tx: &Connection, handler_id: &str, owner: &str) -> Result<bool, BoxError> {
    let held: Option<Option<bool>> = tx
        .prepare_cached(&STATEMENTS.holds_lease)?
        .query_row(params![handler_id, owner], |r| r.get(0))
        .optional()?;
    Ok(held.flatten().unwrap_or(false))
}

/// A list bound to one parameter, as `json_each` reads it.
fn json_list<T: serde::Serialize>(values: &[T]) -> String {
    serde_json::to_string(values).expect("a list of strings or numbers serializes")
}

/// Brings the database to [`schema::SCHEMA_VERSION`] in one write transaction.
fn migrate(conn: &mut Connection) -> Result<(), BoxError> {
    let tx = &*conn;
    tx.execute_batch(CREATE_VERSION_TABLE)?;
    let current: Option<i64> =
        tx.query_row("SELECT MAX(version) FROM wf_schema", [], |r| r.get(0))?;
    let pending = schema::pending(current.unwrap_or(0))?;
    for migration in pending {
        tx.execute_batch(migration.sqlite)?;
        tracing::info!(
            "SQLite schema version {}: {}",
            migration.version,
            migration.does
        );
    }
    if let Some(last) = pending.last() {
        tx.execute("DELETE FROM wf_schema", [])?;
        tx.execute(
            "INSERT INTO wf_schema (version) VALUES (?1)",
            [last.version],
        )?;
    }
    // One server per file: whatever a previous process held is ours to resume.
    tx.execute(
        "UPDATE wf_handlers SET owner = NULL, lease_until = NULL WHERE owner IS NOT NULL",
        [],
    )?;
    Ok(())
}

impl Storage for SqliteStorage {
    /// The store holds its file alone: every change is this process's own.
    fn changes(&self) -> ChangeFeed {
        ChangeFeed::Local
    }

    fn migrate(&self) -> StorageFuture<'_, ()> {
        self.with("bring the database's tables up to date", migrate)
    }

    fn create_handler(
        &self,
        record: HandlerRecord,
        start_event: String,
        lease_ms: i64,
    ) -> StorageFuture<'_, Created> {
        self.with("record a new run", move |conn| {
            let s = &*STATEMENTS;
            let tx = &*conn;
            let existing: Option<(String, String)> = tx
                .prepare_cached(&s.handler_status_and_run)?
                .query_row([&record.handler_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if let Some((status, old_run)) = existing {
                if status == Status::Running.as_str() {
                    return Ok(Created::AlreadyRunning);
                }
                tx.prepare_cached(&s.delete_events_of_run)?
                    .execute([&old_run])?;
                tx.prepare_cached(&s.delete_handler)?
                    .query_row([&record.handler_id], |_| Ok(()))?;
            }
            tx.prepare_cached(&s.insert_handler)?.execute(params![
                record.handler_id,
                record.workflow_name,
                record.run_id,
                record.status.as_str(),
                record.started_at,
                record.updated_at,
                record.owner,
                lease_ms,
                start_event,
            ])?;
            // Whatever was sent to an earlier handler of this id (even one purged while an
            // event was on its way) is not for the new run.
            tx.prepare_cached(&s.delete_inbox_of_handler)?
                .execute([&record.handler_id])?;
            Ok(Created::Created)
        })
    }

    fn probe_write(&self) -> StorageFuture<'_, ()> {
        self.with("write to the database", |conn| {
            conn.prepare_cached(&STATEMENTS.probe_write)?.execute([])?;
            Ok(())
        })
    }

    fn handler(&self, handler_id: &str) -> StorageFuture<'_, Option<HandlerRecord>> {
        let handler_id = handler_id.to_owned();
        self.read("read a handler", move |conn| {
            let mut found = rows(conn, &STATEMENTS.handler, [handler_id], |r| sql::handler(r))?;
            Ok(found.pop())
        })
    }

    fn handlers(&self, filter: HandlerFilter) -> StorageFuture<'_, Vec<HandlerRecord>> {
        self.read("list handlers", move |conn| {
            let statuses = filter.status_in.map(|statuses| {
                json_list(&statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>())
            });
            let names = filter.workflow_name_in.map(|names| json_list(&names));
            let limit = filter
                .limit
                .map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX));
            match filter.after {
                None => rows(
                    conn,
                    &STATEMENTS.handlers,
                    params![statuses, names, limit],
                    |r| sql::handler(r),
                ),
                Some((started_at, handler_id)) => rows(
                    conn,
                    &STATEMENTS.handlers_after,
                    params![statuses, names, limit, started_at, handler_id],
                    |r| sql::handler(r),
                ),
            }
        })
    }

    fn expire(&self, ended_before_us: i64, limit: usize) -> StorageFuture<'_, usize> {
        self.with("delete expired runs", move |conn| {
            let s = &*STATEMENTS;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let gone = rows(
                conn,
                &s.expire_handlers,
                params![ended_before_us, limit],
                |r| Ok((r.text(0)?, r.text(1)?)),
            )?;
            if gone.is_empty() {
                return Ok(0);
            }
            let (handlers, runs): (Vec<String>, Vec<String>) = gone.into_iter().unzip();
            conn.prepare_cached(&s.delete_events_of_runs)?
                .execute([json_list(&runs)])?;
            conn.prepare_cached(&s.delete_inbox_of_handlers)?
                .execute([json_list(&handlers)])?;
            Ok(handlers.len())
        })
    }

    fn delete_handler(&self, handler_id: &str) -> StorageFuture<'_, bool> {
        let handler_id = handler_id.to_owned();
        self.with("delete a handler", move |conn| {
            let s = &*STATEMENTS;
            let tx = &*conn;
            let run: Option<String> = tx
                .prepare_cached(&s.delete_handler)?
                .query_row([&handler_id], |r| r.get(0))
                .optional()?;
            let Some(run) = run else {
                return Ok(false);
            };
            tx.prepare_cached(&s.delete_events_of_run)?
                .execute([&run])?;
            tx.prepare_cached(&s.delete_inbox_of_handler)?
                .execute([&handler_id])?;
            Ok(true)
        })
    }

    fn run_state(&self, handler_id: &str) -> StorageFuture<'_, Option<RunState>> {
        let handler_id = handler_id.to_owned();
        self.read("read a run's start event and snapshot", move |conn| {
            let mut found = rows(conn, &STATEMENTS.run_state, [handler_id], |r| {
                Ok(RunState {
                    start_event: r.text(0)?,
                    snapshot: r.opt_text(1)?,
                })
            })?;
            Ok(found.pop())
        })
    }

    fn append_events(
        &self,
        handler_id: &str,
        run_id: &str,
        owner: &str,
        events: Vec<StoredEvent>,
    ) -> StorageFuture<'_, bool> {
        let (handler_id, run_id, owner) =
            (handler_id.to_owned(), run_id.to_owned(), owner.to_owned());
        self.with("store a run's events", move |conn| {
            let tx = &*conn;
            if !holds(tx, &handler_id, &owner)? {
                return Ok(false);
            }
            insert_events(tx, &STATEMENTS.insert_event, &run_id, &events)?;
            Ok(true)
        })
    }

    fn events_after(
        &self,
        run_id: &str,
        after: i64,
        limit: usize,
    ) -> StorageFuture<'_, Vec<StoredEvent>> {
        let run_id = run_id.to_owned();
        self.read("read a run's events", move |conn| {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            rows(
                conn,
                &STATEMENTS.events_after,
                params![run_id, after, limit],
                |r| sql::event(r),
            )
        })
    }

    fn last_sequence(&self, run_id: &str) -> StorageFuture<'_, Option<u64>> {
        let run_id = run_id.to_owned();
        self.read("read a run's last sequence number", move |conn| {
            let last: Option<i64> = conn
                .prepare_cached(&STATEMENTS.last_sequence)?
                .query_row([run_id], |r| r.get(0))?;
            Ok(last.map(u64::try_from).transpose()?)
        })
    }

    fn update_run(
        &self,
        handler_id: &str,
        owner: &str,
        update: RunUpdate,
        now_us: i64,
    ) -> StorageFuture<'_, bool> {
        let (handler_id, owner) = (handler_id.to_owned(), owner.to_owned());
        self.with("update a run", move |conn| {
            let s = &*STATEMENTS;
            let tx = &*conn;
            if !holds(tx, &handler_id, &owner)? {
                return Ok(false);
            }
            insert_events(tx, &s.insert_event_of_handler, &handler_id, &update.events)?;
            let ended = update.status.is_some_and(Status::is_terminal);
            if ended {
                // Nothing can be delivered to an ended run.
                tx.prepare_cached(&s.delete_inbox_of_handler)?
                    .execute([&handler_id])?;
            }
            tx.prepare_cached(&s.update_run)?.execute(params![
                handler_id,
                update.status.map(Status::as_str),
                update.result,
                sql::storable(update.error),
                update.snapshot,
                update.idle_since.is_some(),
                update.idle_since.flatten(),
                now_us,
                ended,
                update.release,
            ])?;
            if !update.consumed.is_empty() {
                tx.prepare_cached(&s.delete_inbox_items)?
                    .execute([json_list(&update.consumed)])?;
            }
            Ok(true)
        })
    }

    fn claim(&self, handler_id: &str, owner: &str, lease_ms: i64) -> StorageFuture<'_, bool> {
        let (handler_id, owner) = (handler_id.to_owned(), owner.to_owned());
        self.with("claim a run", move |conn| {
            let changed = conn
                .prepare_cached(&STATEMENTS.claim)?
                .execute(params![handler_id, owner, lease_ms])?;
            Ok(changed == 1)
        })
    }

    fn renew(&self, server: &str, lease_ms: i64) -> StorageFuture<'_, ()> {
        let server = server.to_owned();
        self.with("renew leases", move |conn| {
            conn.prepare_cached(&STATEMENTS.renew)?
                .execute(params![server, lease_ms])?;
            Ok(())
        })
    }

    fn release(&self, handler_id: &str, owner: &str) -> StorageFuture<'_, ()> {
        let (handler_id, owner) = (handler_id.to_owned(), owner.to_owned());
        self.with("release a run", move |conn| {
            conn.prepare_cached(&STATEMENTS.release)?
                .execute(params![handler_id, owner])?;
            Ok(())
        })
    }

    fn push_inbox(&self, handler_id: &str, item: InboxItem) -> StorageFuture<'_, ()> {
        let handler_id = handler_id.to_owned();
        self.with("queue an event for a run", move |conn| {
            conn.prepare_cached(&STATEMENTS.push_inbox)?
                .execute(params![handler_id, serde_json::to_string(&item)?])?;
            Ok(())
        })
    }

    fn inbox(&self, handler_id: &str) -> StorageFuture<'_, Vec<(i64, InboxItem)>> {
        let handler_id = handler_id.to_owned();
        self.read("read a run's inbox", move |conn| {
            let items = rows(conn, &STATEMENTS.inbox, [handler_id], |r| {
                Ok((r.int(0)?, r.text(1)?))
            })?;
            // A row this build cannot read is skipped rather than blocking the run.
            Ok(items
                .into_iter()
                .filter_map(|(id, text)| Some((id, serde_json::from_str(&text).ok()?)))
                .collect())
        })
    }

    fn held(&self, server: &str) -> StorageFuture<'_, Vec<(String, String)>> {
        let server = server.to_owned();
        self.read("list the runs a server holds", move |conn| {
            rows(conn, &STATEMENTS.held, [server], |r| {
                Ok((r.text(0)?, r.text(1)?))
            })
        })
    }

    fn with_inbox(&self, server: &str) -> StorageFuture<'_, Vec<String>> {
        let server = server.to_owned();
        self.read("list held runs with queued events", move |conn| {
            rows(conn, &STATEMENTS.with_inbox, [server], |r| r.text(0))
        })
    }

    fn orphans(&self) -> StorageFuture<'_, Vec<String>> {
        self.read("list runs no server holds", move |conn| {
            rows(conn, &STATEMENTS.orphans, [], |r| r.text(0))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::ErrorChain;

    fn temp_file(name: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("wf-{name}-{}.db", std::process::id()));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        path
    }

    /// Polls a call once, which puts it in the connection's queue.
    async fn queue<F: std::future::Future + Unpin>(call: &mut F) {
        std::future::poll_fn(|cx| {
            let polled = std::pin::Pin::new(&mut *call).poll(cx);
            assert!(
                polled.is_pending(),
                "answered before the group was released"
            );
            std::task::Poll::Ready(())
        })
        .await
    }

    #[tokio::test]
    async fn the_write_probe_fails_when_the_database_cannot_be_written() {
        let storage = SqliteStorage::in_memory().unwrap();
        storage.migrate().await.unwrap();
        storage.probe_write().await.unwrap();
        // Writes fail while reads go on, as on a full disk: here through a trigger that
        // refuses the write the probe makes.
        let refuse = |sql: &'static str| {
            storage.with("refuse writes", move |conn| {
                conn.execute_batch(sql)?;
                Ok(())
            })
        };
        refuse(
            "CREATE TRIGGER full BEFORE UPDATE ON wf_schema \
             BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END",
        )
        .await
        .unwrap();
        let failed = ErrorChain(&storage.probe_write().await.unwrap_err()).to_string();
        assert!(failed.contains("disk is full"), "{failed}");
        assert!(storage.handler("x").await.unwrap().is_none(), "reads go on");
        refuse("DROP TRIGGER full").await.unwrap();
        storage.probe_write().await.unwrap();
    }

    async fn synchronous(storage: &SqliteStorage) -> i64 {
        storage
            .with("read the sync setting", |conn| {
                Ok(conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?)
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_file_is_synced_on_every_commit_unless_told_otherwise() {
        let path = temp_file("sync-full");
        let full = SqliteStorage::open(&path).unwrap();
        assert_eq!(synchronous(&full).await, 2, "FULL");
        drop(full);
        let normal = SqliteStorage::open_with(&path, Durability::ProcessCrash).unwrap();
        assert_eq!(synchronous(&normal).await, 1, "NORMAL");
    }

    /// What the background work of an idle server asks of the store every round (with
    /// inboxes, held runs, orphans, renewing leases, expiring ended runs) costs the same
    /// with 100,000 ended runs stored as with none: every statement reads through an index
    /// the rows it returns, not the history. Counted in SQLite's virtual machine steps, not
    /// timed.
    #[tokio::test]
    async fn finding_work_reads_live_runs_only_however_long_the_history() {
        let storage = SqliteStorage::in_memory().unwrap();
        storage.migrate().await.unwrap();
        let steps = storage
            .with("count the steps of the background statements", |conn| {
                conn.execute_batch(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
                       WHERE i < 100000) \
                     INSERT INTO wf_handlers (handler_id, workflow_name, run_id, status, \
                       started_at, updated_at, completed_at, start_event) \
                     SELECT 'ended-' || i, 'number', 'run-' || i, 'completed', i, i, \
                       1000000000 + i, '{}' FROM n; \
                     INSERT INTO wf_handlers (handler_id, workflow_name, run_id, status, \
                       started_at, updated_at, owner, lease_until, start_event) VALUES \
                       ('held', 'number', 'run-held', 'running', 1, 1, 'srv/1', 0, '{}'), \
                       ('orphan', 'number', 'run-orphan', 'running', 2, 2, NULL, NULL, '{}'); \
                     INSERT INTO wf_inbox (handler_id, item) VALUES ('held', '{}'); \
                     ANALYZE;",
                )?;
                let s = &*STATEMENTS;
                let mut counted = Vec::new();
                let mut count = |name: &'static str,
                                 sql: &str,
                                 params: &[&dyn rusqlite::ToSql]|
                 -> Result<(), BoxError> {
                    let mut stmt = conn.prepare(sql)?;
                    let mut rows = stmt.query(params)?;
                    while rows.next()?.is_some() {}
                    drop(rows);
                    counted.push((name, stmt.get_status(rusqlite::StatementStatus::VmStep)));
                    Ok(())
                };
                count("with_inbox", &s.with_inbox, &[&"srv"])?;
                count("held", &s.held, &[&"srv"])?;
                count("orphans", &s.orphans, &[])?;
                count("renew", &s.renew, &[&"srv", &60_000])?;
                // Nothing has ended before the cutoff: the index says so at once.
                count("expire", &s.expire_handlers, &[&0, &500])?;
                count(
                    "a page of handlers",
                    &s.handlers,
                    &[&None::<String>, &None::<String>, &50],
                )?;
                Ok(counted)
            })
            .await
            .unwrap();
        for (name, steps) in steps {
            eprintln!("{name}: {steps} steps");
            assert!(
                steps < 2_000,
                "`{name}` took {steps} steps over 100,000 stored runs"
            );
        }
    }

    /// A read prepared once is not prepared again when it is run with other values: the
    /// plans do not depend on bound values (SQLite's query planner stability guarantee).
    /// Without it, the event and inbox reads were prepared anew on every run.
    #[tokio::test]
    async fn reads_are_not_prepared_again_for_new_values() {
        let storage = SqliteStorage::in_memory().unwrap();
        storage.migrate().await.unwrap();
        let again = storage
            .with("run the reads with many values", |conn| {
                let s = &*STATEMENTS;
                for i in 0..20 {
                    let run = format!("run-{i}");
                    rows(conn, &s.events_after, params![run, i - 1, 10], |r| {
                        sql::event(r)
                    })?;
                    rows(conn, &s.inbox, params![run], |r| r.int(0))?;
                }
                let again = |sql: &str| -> Result<i32, BoxError> {
                    Ok(conn
                        .prepare_cached(sql)?
                        .get_status(rusqlite::StatementStatus::RePrepare))
                };
                Ok((again(&s.events_after)?, again(&s.inbox)?))
            })
            .await
            .unwrap();
        assert_eq!(again, (0, 0), "(events, inbox) prepared again");
    }

    /// The calls waiting together are committed together; when that commit fails, none of
    /// them is answered as done, and none of their writes is kept.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_whose_commit_fails_fails_every_call_in_it() {
        let storage = SqliteStorage::in_memory().unwrap();
        storage.migrate().await.unwrap();
        // The first call holds the thread until the other two are queued behind it.
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let mut first = Box::pin(storage.with("hold the thread", move |conn| {
            wait.recv().unwrap();
            conn.execute(
                "INSERT INTO wf_inbox (handler_id, item) VALUES ('a', '1')",
                [],
            )?;
            Ok(())
        }));
        let mut second = Box::pin(storage.push_inbox("b", InboxItem::Cancel));
        // Ends the group's transaction under it, so that its COMMIT fails.
        let mut third = Box::pin(storage.with("end the transaction", |conn| {
            conn.execute_batch("ROLLBACK")?;
            Ok(())
        }));
        // A first poll queues each call.
        queue(&mut first).await;
        queue(&mut second).await;
        queue(&mut third).await;
        go.send(()).unwrap();
        let (first, second, third) = tokio::join!(first, second, third);
        assert!(first.is_err(), "{first:?}");
        assert!(second.is_err(), "{second:?}");
        assert!(third.is_err(), "{third:?}");
        let said = super::super::ErrorChain(&second.unwrap_err()).to_string();
        assert!(said.contains("committing the write failed"), "{said}");
        assert!(storage.inbox("a").await.unwrap().is_empty());
        assert!(storage.inbox("b").await.unwrap().is_empty());
        // The store goes on.
        storage.push_inbox("c", InboxItem::Cancel).await.unwrap();
        assert_eq!(storage.inbox("c").await.unwrap().len(), 1);
    }
}
