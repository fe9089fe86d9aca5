//! The embedded backend: one SQLite file, no set-up. One server uses a file at a time: when
//! it starts it takes back the leases a previous process left, so a server that was killed
//! resumes its runs at once on restart.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{
    Created, HandlerFilter, HandlerRecord, InboxItem, RunState, RunUpdate, Status, Storage,
    StorageError, StorageFuture, StoredEvent,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS wf_handlers (
    handler_id    TEXT PRIMARY KEY,
    workflow_name TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    status        TEXT NOT NULL,
    error         TEXT,
    result        TEXT,
    started_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    completed_at  INTEGER,
    idle_since    INTEGER,
    owner         TEXT,
    lease_until   INTEGER,
    start_event   TEXT NOT NULL,
    snapshot      TEXT
);
CREATE INDEX IF NOT EXISTS wf_handlers_owner ON wf_handlers(owner);
CREATE TABLE IF NOT EXISTS wf_events (
    run_id   TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    envelope TEXT NOT NULL,
    internal INTEGER NOT NULL,
    terminal INTEGER NOT NULL,
    PRIMARY KEY (run_id, sequence)
);
CREATE TABLE IF NOT EXISTS wf_inbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    handler_id TEXT NOT NULL,
    item       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS wf_inbox_handler ON wf_inbox(handler_id);
";

const HANDLER_COLUMNS: &str = "handler_id, workflow_name, run_id, status, error, result, \
     started_at, updated_at, completed_at, idle_since, owner, lease_until";

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
#[derive(Clone)]
pub struct SqliteStorage {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStorage {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        let conn = Connection::open(path).map_err(StorageError::new)?;
        // WAL lets readers go on while a run writes; a writer waits instead of failing.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(StorageError::new)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(StorageError::new)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(StorageError::new)?;
        Ok(SqliteStorage {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// A private database in memory, gone with the value.
    pub fn in_memory() -> Result<Self, StorageError> {
        let conn = Connection::open_in_memory().map_err(StorageError::new)?;
        Ok(SqliteStorage {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection on a blocking thread.
    fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StorageFuture<'static, T> {
        let conn = self.conn.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                f(&mut conn).map_err(StorageError::new)
            })
            .await
            .map_err(StorageError::new)?
        })
    }
}

fn handler_from_row(row: &Row<'_>) -> rusqlite::Result<HandlerRecord> {
    let status: String = row.get(3)?;
    Ok(HandlerRecord {
        handler_id: row.get(0)?,
        workflow_name: row.get(1)?,
        run_id: row.get(2)?,
        status: Status::parse(&status).unwrap_or(Status::Failed),
        error: row.get(4)?,
        result: row.get(5)?,
        started_at: row.get(6)?,
        updated_at: row.get(7)?,
        completed_at: row.get(8)?,
        idle_since: row.get(9)?,
        owner: row.get(10)?,
        lease_until: row.get(11)?,
    })
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        sequence: row.get::<_, i64>(0)? as u64,
        envelope: row.get(1)?,
        internal: row.get(2)?,
        terminal: row.get(3)?,
    })
}

/// Milliseconds since the Unix epoch: the clock leases are kept on (one machine's).
fn clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Whether `owner` holds the handler's lease and it has not run out.
fn holds(tx: &Connection, handler_id: &str, owner: &str) -> rusqlite::Result<bool> {
    let now_ms = clock_ms();
    let current: Option<(Option<String>, Option<i64>)> = tx
        .query_row(
            "SELECT owner, lease_until FROM wf_handlers WHERE handler_id = ?1",
            [handler_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(matches!(current, Some((Some(o), Some(until))) if o == owner && until >= now_ms))
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("inbox items serialize")
}

impl Storage for SqliteStorage {
    fn migrate(&self) -> StorageFuture<'_, ()> {
        self.with(|conn| {
            conn.execute_batch(SCHEMA)?;
            // One server per file: whatever a previous process held is ours to resume.
            conn.execute(
                "UPDATE wf_handlers SET owner = NULL, lease_until = NULL WHERE owner IS NOT NULL",
                [],
            )?;
            Ok(())
        })
    }

    fn create_handler(
        &self,
        record: HandlerRecord,
        start_event: String,
        lease_ms: i64,
    ) -> StorageFuture<'_, Created> {
        self.with(move |conn| {
            let tx = conn.transaction()?;
            let existing: Option<(String, String)> = tx
                .query_row(
                    "SELECT status, run_id FROM wf_handlers WHERE handler_id = ?1",
                    [&record.handler_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((status, old_run)) = existing {
                if status == Status::Running.as_str() {
                    return Ok(Created::AlreadyRunning);
                }
                tx.execute("DELETE FROM wf_events WHERE run_id = ?1", [&old_run])?;
                tx.execute(
                    "DELETE FROM wf_inbox WHERE handler_id = ?1",
                    [&record.handler_id],
                )?;
                tx.execute(
                    "DELETE FROM wf_handlers WHERE handler_id = ?1",
                    [&record.handler_id],
                )?;
            }
            // Whatever was sent to an earlier handler of this id (even one purged while an
            // event was on its way) is not for the new run.
            tx.execute(
                "DELETE FROM wf_inbox WHERE handler_id = ?1",
                [&record.handler_id],
            )?;
            tx.execute(
                "INSERT INTO wf_handlers (handler_id, workflow_name, run_id, status, started_at, \
                 updated_at, owner, lease_until, start_event) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    record.handler_id,
                    record.workflow_name,
                    record.run_id,
                    record.status.as_str(),
                    record.started_at,
                    record.updated_at,
                    record.owner,
                    record.owner.as_ref().map(|_| clock_ms() + lease_ms),
                    start_event,
                ],
            )?;
            tx.commit()?;
            Ok(Created::Created)
        })
    }

    fn handler(&self, handler_id: &str) -> StorageFuture<'_, Option<HandlerRecord>> {
        let handler_id = handler_id.to_owned();
        self.with(move |conn| {
            conn.query_row(
                &format!("SELECT {HANDLER_COLUMNS} FROM wf_handlers WHERE handler_id = ?1"),
                [handler_id],
                handler_from_row,
            )
            .optional()
        })
    }

    fn handlers(&self, filter: HandlerFilter) -> StorageFuture<'_, Vec<HandlerRecord>> {
        self.with(move |conn| {
            let mut sql = format!("SELECT {HANDLER_COLUMNS} FROM wf_handlers WHERE 1 = 1");
            let mut args: Vec<String> = Vec::new();
            let mut any_of = |column: &str, values: Vec<String>, sql: &mut String| {
                let marks: Vec<String> = values
                    .iter()
                    .enumerate()
                    .map(|(i, _)| format!("?{}", args.len() + i + 1))
                    .collect();
                sql.push_str(&format!(" AND {column} IN ({})", marks.join(", ")));
                args.extend(values);
            };
            if let Some(statuses) = filter.status_in {
                let values = statuses.iter().map(|s| s.as_str().to_owned()).collect();
                any_of("status", values, &mut sql);
            }
            if let Some(names) = filter.workflow_name_in {
                any_of("workflow_name", names, &mut sql);
            }
            sql.push_str(" ORDER BY started_at, handler_id");
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), handler_from_row)?;
            rows.collect()
        })
    }

    fn delete_handler(&self, handler_id: &str) -> StorageFuture<'_, bool> {
        let handler_id = handler_id.to_owned();
        self.with(move |conn| {
            let tx = conn.transaction()?;
            let run: Option<String> = tx
                .query_row(
                    "SELECT run_id FROM wf_handlers WHERE handler_id = ?1",
                    [&handler_id],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(run) = run else {
                return Ok(false);
            };
            tx.execute("DELETE FROM wf_events WHERE run_id = ?1", [&run])?;
            tx.execute("DELETE FROM wf_inbox WHERE handler_id = ?1", [&handler_id])?;
            tx.execute(
                "DELETE FROM wf_handlers WHERE handler_id = ?1",
                [&handler_id],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn run_state(&self, handler_id: &str) -> StorageFuture<'_, Option<RunState>> {
        let handler_id = handler_id.to_owned();
        self.with(move |conn| {
            conn.query_row(
                "SELECT start_event, snapshot FROM wf_handlers WHERE handler_id = ?1",
                [handler_id],
                |r| {
                    Ok(RunState {
                        start_event: r.get(0)?,
                        snapshot: r.get(1)?,
                    })
                },
            )
            .optional()
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
        self.with(move |conn| {
            let tx = conn.transaction()?;
            if !holds(&tx, &handler_id, &owner)? {
                return Ok(false);
            }
            {
                let mut insert = tx.prepare_cached(
                    "INSERT OR IGNORE INTO wf_events (run_id, sequence, envelope, internal, terminal) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for ev in &events {
                    insert.execute(params![
                        run_id,
                        ev.sequence as i64,
                        ev.envelope,
                        ev.internal,
                        ev.terminal
                    ])?;
                }
            }
            tx.commit()?;
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
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT sequence, envelope, internal, terminal FROM wf_events \
                 WHERE run_id = ?1 AND sequence > ?2 ORDER BY sequence LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![run_id, after, limit as i64], event_from_row)?;
            rows.collect()
        })
    }

    fn last_sequence(&self, run_id: &str) -> StorageFuture<'_, Option<u64>> {
        let run_id = run_id.to_owned();
        self.with(move |conn| {
            let last: Option<i64> = conn.query_row(
                "SELECT MAX(sequence) FROM wf_events WHERE run_id = ?1",
                [run_id],
                |r| r.get(0),
            )?;
            Ok(last.map(|s| s as u64))
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
        self.with(move |conn| {
            let tx = conn.transaction()?;
            if !holds(&tx, &handler_id, &owner)? {
                return Ok(false);
            }
            let ended = update.status.is_some_and(Status::is_terminal);
            if ended {
                // Nothing can be delivered to an ended run.
                tx.execute("DELETE FROM wf_inbox WHERE handler_id = ?1", [&handler_id])?;
            }
            tx.execute(
                "UPDATE wf_handlers SET \
                   status = COALESCE(?2, status), \
                   result = COALESCE(?3, result), \
                   error = COALESCE(?4, error), \
                   snapshot = COALESCE(?5, snapshot), \
                   idle_since = CASE WHEN ?6 THEN ?7 ELSE idle_since END, \
                   updated_at = ?8, \
                   completed_at = CASE WHEN ?9 THEN ?8 ELSE completed_at END, \
                   owner = CASE WHEN ?10 THEN NULL ELSE owner END, \
                   lease_until = CASE WHEN ?10 THEN NULL ELSE lease_until END \
                 WHERE handler_id = ?1",
                params![
                    handler_id,
                    update.status.map(Status::as_str),
                    update.result,
                    update.error,
                    update.snapshot,
                    update.idle_since.is_some(),
                    update.idle_since.flatten(),
                    now_us,
                    ended,
                    update.release,
                ],
            )?;
            {
                let mut delete = tx.prepare_cached("DELETE FROM wf_inbox WHERE id = ?1")?;
                for id in &update.consumed {
                    delete.execute([id])?;
                }
            }
            tx.commit()?;
            Ok(true)
        })
    }

    fn claim(&self, handler_id: &str, owner: &str, lease_ms: i64) -> StorageFuture<'_, bool> {
        let (handler_id, owner) = (handler_id.to_owned(), owner.to_owned());
        self.with(move |conn| {
            let now = clock_ms();
            let changed = conn.execute(
                "UPDATE wf_handlers SET owner = ?2, lease_until = ?4 \
                 WHERE handler_id = ?1 AND status = 'running' \
                   AND (owner IS NULL OR owner = ?2 OR lease_until < ?3)",
                params![handler_id, owner, now, now + lease_ms],
            )?;
            Ok(changed == 1)
        })
    }

    fn renew(&self, server: &str, lease_ms: i64) -> StorageFuture<'_, ()> {
        let owner = server.to_owned();
        self.with(move |conn| {
            conn.execute(
                "UPDATE wf_handlers SET lease_until = ?2 \
                 WHERE substr(owner, 1, length(?1) + 1) = ?1 || '/'",
                params![owner, clock_ms() + lease_ms],
            )?;
            Ok(())
        })
    }

    fn release(&self, handler_id: &str, owner: &str) -> StorageFuture<'_, ()> {
        let (handler_id, owner) = (handler_id.to_owned(), owner.to_owned());
        self.with(move |conn| {
            conn.execute(
                "UPDATE wf_handlers SET owner = NULL, lease_until = NULL \
                 WHERE handler_id = ?1 AND owner = ?2",
                params![handler_id, owner],
            )?;
            Ok(())
        })
    }

    fn push_inbox(&self, handler_id: &str, item: InboxItem) -> StorageFuture<'_, ()> {
        let handler_id = handler_id.to_owned();
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO wf_inbox (handler_id, item) VALUES (?1, ?2)",
                params![handler_id, json_text(&item)],
            )?;
            Ok(())
        })
    }

    fn inbox(&self, handler_id: &str) -> StorageFuture<'_, Vec<(i64, InboxItem)>> {
        let handler_id = handler_id.to_owned();
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, item FROM wf_inbox WHERE handler_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([handler_id], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut items = Vec::new();
            for row in rows {
                let (id, text) = row?;
                // A row this build cannot read is skipped rather than blocking the run.
                if let Ok(item) = serde_json::from_str(&text) {
                    items.push((id, item));
                }
            }
            Ok(items)
        })
    }

    fn held(&self, server: &str) -> StorageFuture<'_, Vec<(String, String)>> {
        let server = server.to_owned();
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT handler_id, owner FROM wf_handlers WHERE status = 'running' \
                   AND substr(owner, 1, length(?1) + 1) = ?1 || '/'",
            )?;
            let rows = stmt.query_map([server], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    fn with_inbox(&self, server: &str) -> StorageFuture<'_, Vec<String>> {
        let owner = server.to_owned();
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT DISTINCT h.handler_id FROM wf_handlers h \
                 JOIN wf_inbox i ON i.handler_id = h.handler_id \
                 WHERE substr(h.owner, 1, length(?1) + 1) = ?1 || '/'",
            )?;
            let rows = stmt.query_map([owner], |r| r.get(0))?;
            rows.collect()
        })
    }

    fn orphans(&self) -> StorageFuture<'_, Vec<String>> {
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT handler_id FROM wf_handlers h WHERE status = 'running' \
                   AND (owner IS NULL OR lease_until < ?1) \
                   AND (idle_since IS NULL \
                        OR EXISTS (SELECT 1 FROM wf_inbox i WHERE i.handler_id = h.handler_id)) \
                 ORDER BY started_at",
            )?;
            let rows = stmt.query_map([clock_ms()], |r| r.get(0))?;
            rows.collect()
        })
    }
}
