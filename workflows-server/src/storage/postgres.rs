//! The shared backend: several servers on one Postgres database hand runs to each other.
//! Leases decide which server executes a run; every write of a run's owner checks its lease
//! in the same statement or transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::{Client, NoTls, Row};

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
    started_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    completed_at  BIGINT,
    idle_since    BIGINT,
    owner         TEXT,
    lease_until   BIGINT,
    start_event   TEXT NOT NULL,
    snapshot      TEXT
);
CREATE INDEX IF NOT EXISTS wf_handlers_owner ON wf_handlers(owner);
CREATE TABLE IF NOT EXISTS wf_events (
    run_id   TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    envelope TEXT NOT NULL,
    internal BOOLEAN NOT NULL,
    terminal BOOLEAN NOT NULL,
    PRIMARY KEY (run_id, sequence)
);
CREATE TABLE IF NOT EXISTS wf_inbox (
    id         BIGSERIAL PRIMARY KEY,
    handler_id TEXT NOT NULL,
    item       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS wf_inbox_handler ON wf_inbox(handler_id);
";

/// The database's clock in milliseconds since the Unix epoch: leases are set, checked and
/// compared on it, so that servers whose clocks disagree still agree on who holds a run.
const DB_NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

const HANDLER_COLUMNS: &str = "handler_id, workflow_name, run_id, status, error, result, \
     started_at, updated_at, completed_at, idle_since, owner, lease_until";

/// Runs stored in Postgres, shared by every server that connects to the same database.
#[derive(Clone)]
pub struct PostgresStorage {
    url: Arc<str>,
    clients: Arc<Vec<Mutex<Client>>>,
    next: Arc<AtomicUsize>,
}

impl PostgresStorage {
    /// Connects `connections` clients to the database at `url`
    /// (`postgres://user:password@host:port/db`, or key-value form). A client whose
    /// connection breaks (the database restarted) is connected again on its next use.
    pub async fn connect(url: &str, connections: usize) -> Result<Self, StorageError> {
        let mut clients = Vec::new();
        for _ in 0..connections.max(1) {
            clients.push(Mutex::new(open(url).await?));
        }
        Ok(PostgresStorage {
            url: Arc::from(url),
            clients: Arc::new(clients),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Deletes every table of the server (for tests that start from nothing).
    pub async fn reset(&self) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .batch_execute("DROP TABLE IF EXISTS wf_handlers, wf_events, wf_inbox")
            .await
            .map_err(StorageError::new)
    }

    /// One of the clients, taken in turn; connected again if its connection broke.
    async fn client(&self) -> Result<MutexGuard<'_, Client>, StorageError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        let mut client = self.clients[i].lock().await;
        if client.is_closed() {
            *client = open(&self.url).await?;
        }
        Ok(client)
    }
}

/// Connects one client. A connection that stops answering (the database's host gone, a
/// half-open socket) fails within seconds instead of stalling calls: its client is then
/// connected again on its next use.
async fn open(url: &str) -> Result<Client, StorageError> {
    let mut config: tokio_postgres::Config = url.parse().map_err(StorageError::new)?;
    config
        .connect_timeout(Duration::from_secs(10))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .tcp_user_timeout(Duration::from_secs(20));
    let (client, connection) = config.connect(NoTls).await.map_err(StorageError::new)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("postgres connection ended: {e}");
        }
    });
    Ok(client)
}

fn handler_from_row(row: &Row) -> HandlerRecord {
    let status: String = row.get(3);
    HandlerRecord {
        handler_id: row.get(0),
        workflow_name: row.get(1),
        run_id: row.get(2),
        status: Status::parse(&status).unwrap_or(Status::Failed),
        error: row.get(4),
        result: row.get(5),
        started_at: row.get(6),
        updated_at: row.get(7),
        completed_at: row.get(8),
        idle_since: row.get(9),
        owner: row.get(10),
        lease_until: row.get(11),
    }
}

fn event_from_row(row: &Row) -> StoredEvent {
    StoredEvent {
        sequence: row.get::<_, i64>(0) as u64,
        envelope: row.get(1),
        internal: row.get(2),
        terminal: row.get(3),
    }
}

fn err(e: tokio_postgres::Error) -> StorageError {
    StorageError::new(e)
}

/// Locks the handler's row for the transaction and tells whether `owner` holds its lease and
/// the lease has not run out (on the database's clock).
async fn lock_held(
    tx: &tokio_postgres::Transaction<'_>,
    handler_id: &str,
    owner: &str,
) -> Result<bool, StorageError> {
    let row = tx
        .query_opt(
            &format!(
                "SELECT owner = $2 AND lease_until >= {DB_NOW_MS} FROM wf_handlers \
                 WHERE handler_id = $1 FOR UPDATE"
            ),
            &[&handler_id, &owner],
        )
        .await
        .map_err(err)?;
    Ok(row
        .and_then(|r| r.get::<_, Option<bool>>(0))
        .unwrap_or(false))
}

impl Storage for PostgresStorage {
    fn migrate(&self) -> StorageFuture<'_, ()> {
        Box::pin(async move {
            let client = self.client().await?;
            // Two servers starting at once must not race on CREATE TABLE.
            client
                .batch_execute(&format!(
                    "BEGIN; SELECT pg_advisory_xact_lock(7215432); {SCHEMA} COMMIT;"
                ))
                .await
                .map_err(err)
        })
    }

    fn create_handler(
        &self,
        record: HandlerRecord,
        start_event: String,
        lease_ms: i64,
    ) -> StorageFuture<'_, Created> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(err)?;
            let existing = tx
                .query_opt(
                    "SELECT status, run_id FROM wf_handlers WHERE handler_id = $1 FOR UPDATE",
                    &[&record.handler_id],
                )
                .await
                .map_err(err)?;
            if let Some(row) = existing {
                let status: String = row.get(0);
                let old_run: String = row.get(1);
                if status == Status::Running.as_str() {
                    return Ok(Created::AlreadyRunning);
                }
                tx.execute("DELETE FROM wf_events WHERE run_id = $1", &[&old_run])
                    .await
                    .map_err(err)?;
                tx.execute(
                    "DELETE FROM wf_handlers WHERE handler_id = $1",
                    &[&record.handler_id],
                )
                .await
                .map_err(err)?;
            }
            let inserted = tx
                .execute(
                    &format!(
                        "INSERT INTO wf_handlers (handler_id, workflow_name, run_id, status, \
                         started_at, updated_at, owner, lease_until, start_event) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, \
                                 CASE WHEN $7::text IS NULL THEN NULL ELSE {DB_NOW_MS} + $8 END, $9) \
                         ON CONFLICT DO NOTHING"
                    ),
                    &[
                        &record.handler_id,
                        &record.workflow_name,
                        &record.run_id,
                        &record.status.as_str(),
                        &record.started_at,
                        &record.updated_at,
                        &record.owner,
                        &lease_ms,
                        &start_event,
                    ],
                )
                .await
                .map_err(err)?;
            if inserted == 0 {
                // Another server recorded the same id between our check and our insert:
                // roll back, so that nothing of its run (its inbox) is touched.
                return Ok(Created::AlreadyRunning);
            }
            // Whatever was sent to an earlier handler of this id (even one purged while an
            // event was on its way) is not for the new run, which nobody could reach yet.
            tx.execute(
                "DELETE FROM wf_inbox WHERE handler_id = $1",
                &[&record.handler_id],
            )
            .await
            .map_err(err)?;
            tx.commit().await.map_err(err)?;
            Ok(Created::Created)
        })
    }

    fn handler(&self, handler_id: &str) -> StorageFuture<'_, Option<HandlerRecord>> {
        let handler_id = handler_id.to_owned();
        Box::pin(async move {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    &format!("SELECT {HANDLER_COLUMNS} FROM wf_handlers WHERE handler_id = $1"),
                    &[&handler_id],
                )
                .await
                .map_err(err)?;
            Ok(row.as_ref().map(handler_from_row))
        })
    }

    fn handlers(&self, filter: HandlerFilter) -> StorageFuture<'_, Vec<HandlerRecord>> {
        Box::pin(async move {
            let statuses: Option<Vec<String>> = filter
                .status_in
                .map(|s| s.iter().map(|s| s.as_str().to_owned()).collect());
            let names = filter.workflow_name_in;
            let client = self.client().await?;
            let rows = client
                .query(
                    &format!(
                        "SELECT {HANDLER_COLUMNS} FROM wf_handlers \
                         WHERE ($1::text[] IS NULL OR status = ANY($1)) \
                           AND ($2::text[] IS NULL OR workflow_name = ANY($2)) \
                         ORDER BY started_at, handler_id"
                    ),
                    &[&statuses, &names],
                )
                .await
                .map_err(err)?;
            Ok(rows.iter().map(handler_from_row).collect())
        })
    }

    fn delete_handler(&self, handler_id: &str) -> StorageFuture<'_, bool> {
        let handler_id = handler_id.to_owned();
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(err)?;
            let row = tx
                .query_opt(
                    "DELETE FROM wf_handlers WHERE handler_id = $1 RETURNING run_id",
                    &[&handler_id],
                )
                .await
                .map_err(err)?;
            let Some(row) = row else {
                return Ok(false);
            };
            let run: String = row.get(0);
            tx.execute("DELETE FROM wf_events WHERE run_id = $1", &[&run])
                .await
                .map_err(err)?;
            tx.execute("DELETE FROM wf_inbox WHERE handler_id = $1", &[&handler_id])
                .await
                .map_err(err)?;
            tx.commit().await.map_err(err)?;
            Ok(true)
        })
    }

    fn run_state(&self, handler_id: &str) -> StorageFuture<'_, Option<RunState>> {
        let handler_id = handler_id.to_owned();
        Box::pin(async move {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT start_event, snapshot FROM wf_handlers WHERE handler_id = $1",
                    &[&handler_id],
                )
                .await
                .map_err(err)?;
            Ok(row.map(|r| RunState {
                start_event: r.get(0),
                snapshot: r.get(1),
            }))
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
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(err)?;
            if !lock_held(&tx, &handler_id, &owner).await? {
                return Ok(false);
            }
            let insert = tx
                .prepare(
                    "INSERT INTO wf_events (run_id, sequence, envelope, internal, terminal) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .await
                .map_err(err)?;
            for ev in &events {
                tx.execute(
                    &insert,
                    &[
                        &run_id,
                        &(ev.sequence as i64),
                        &ev.envelope,
                        &ev.internal,
                        &ev.terminal,
                    ],
                )
                .await
                .map_err(err)?;
            }
            tx.commit().await.map_err(err)?;
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
        Box::pin(async move {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT sequence, envelope, internal, terminal FROM wf_events \
                     WHERE run_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
                    &[&run_id, &after, &(limit as i64)],
                )
                .await
                .map_err(err)?;
            Ok(rows.iter().map(event_from_row).collect())
        })
    }

    fn last_sequence(&self, run_id: &str) -> StorageFuture<'_, Option<u64>> {
        let run_id = run_id.to_owned();
        Box::pin(async move {
            let client = self.client().await?;
            let row = client
                .query_one(
                    "SELECT MAX(sequence) FROM wf_events WHERE run_id = $1",
                    &[&run_id],
                )
                .await
                .map_err(err)?;
            Ok(row.get::<_, Option<i64>>(0).map(|s| s as u64))
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
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(err)?;
            if !lock_held(&tx, &handler_id, &owner).await? {
                return Ok(false);
            }
            let ended = update.status.is_some_and(Status::is_terminal);
            if ended {
                // Nothing can be delivered to an ended run.
                tx.execute("DELETE FROM wf_inbox WHERE handler_id = $1", &[&handler_id])
                    .await
                    .map_err(err)?;
            }
            tx.execute(
                "UPDATE wf_handlers SET \
                   status = COALESCE($2, status), \
                   result = COALESCE($3, result), \
                   error = COALESCE($4, error), \
                   snapshot = COALESCE($5, snapshot), \
                   idle_since = CASE WHEN $6 THEN $7 ELSE idle_since END, \
                   updated_at = $8, \
                   completed_at = CASE WHEN $9 THEN $8 ELSE completed_at END, \
                   owner = CASE WHEN $10 THEN NULL ELSE owner END, \
                   lease_until = CASE WHEN $10 THEN NULL ELSE lease_until END \
                 WHERE handler_id = $1",
                &[
                    &handler_id,
                    &update.status.map(Status::as_str),
                    &update.result,
                    &update.error,
                    &update.snapshot,
                    &update.idle_since.is_some(),
                    &update.idle_since.flatten(),
                    &now_us,
                    &ended,
                    &update.release,
                ],
            )
            .await
            .map_err(err)?;
            if !update.consumed.is_empty() {
                tx.execute(
                    "DELETE FROM wf_inbox WHERE id = ANY($1)",
                    &[&update.consumed],
                )
                .await
                .map_err(err)?;
            }
            tx.commit().await.map_err(err)?;
            Ok(true)
        })
    }

    fn claim(&self, handler_id: &str, owner: &str, lease_ms: i64) -> StorageFuture<'_, bool> {
        let (handler_id, owner) = (handler_id.to_owned(), owner.to_owned());
        Box::pin(async move {
            let client = self.client().await?;
            // One statement: Postgres re-checks the condition on the locked row, so of two
            // servers claiming at once exactly one gets it.
            let changed = client
                .execute(
                    &format!(
                        "UPDATE wf_handlers SET owner = $2, lease_until = {DB_NOW_MS} + $3 \
                         WHERE handler_id = $1 AND status = 'running' \
                           AND (owner IS NULL OR owner = $2 OR lease_until < {DB_NOW_MS})"
                    ),
                    &[&handler_id, &owner, &lease_ms],
                )
                .await
                .map_err(err)?;
            Ok(changed == 1)
        })
    }

    fn renew(&self, server: &str, lease_ms: i64) -> StorageFuture<'_, ()> {
        let owner = server.to_owned();
        Box::pin(async move {
            let client = self.client().await?;
            client
                .execute(
                    &format!(
                        "UPDATE wf_handlers SET lease_until = {DB_NOW_MS} + $2 \
                         WHERE starts_with(owner, $1 || '/')"
                    ),
                    &[&owner, &lease_ms],
                )
                .await
                .map_err(err)?;
            Ok(())
        })
    }

    fn release(&self, handler_id: &str, owner: &str) -> StorageFuture<'_, ()> {
        let (handler_id, owner) = (handler_id.to_owned(), owner.to_owned());
        Box::pin(async move {
            let client = self.client().await?;
            client
                .execute(
                    "UPDATE wf_handlers SET owner = NULL, lease_until = NULL \
                     WHERE handler_id = $1 AND owner = $2",
                    &[&handler_id, &owner],
                )
                .await
                .map_err(err)?;
            Ok(())
        })
    }

    fn push_inbox(&self, handler_id: &str, item: InboxItem) -> StorageFuture<'_, ()> {
        let handler_id = handler_id.to_owned();
        Box::pin(async move {
            let text = serde_json::to_string(&item).map_err(StorageError::new)?;
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO wf_inbox (handler_id, item) VALUES ($1, $2)",
                    &[&handler_id, &text],
                )
                .await
                .map_err(err)?;
            Ok(())
        })
    }

    fn inbox(&self, handler_id: &str) -> StorageFuture<'_, Vec<(i64, InboxItem)>> {
        let handler_id = handler_id.to_owned();
        Box::pin(async move {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT id, item FROM wf_inbox WHERE handler_id = $1 ORDER BY id",
                    &[&handler_id],
                )
                .await
                .map_err(err)?;
            Ok(rows
                .iter()
                .filter_map(|r| {
                    let text: String = r.get(1);
                    serde_json::from_str(&text)
                        .ok()
                        .map(|item| (r.get(0), item))
                })
                .collect())
        })
    }

    fn held(&self, server: &str) -> StorageFuture<'_, Vec<(String, String)>> {
        let server = server.to_owned();
        Box::pin(async move {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT handler_id, owner FROM wf_handlers \
                     WHERE status = 'running' AND starts_with(owner, $1 || '/')",
                    &[&server],
                )
                .await
                .map_err(err)?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn with_inbox(&self, server: &str) -> StorageFuture<'_, Vec<String>> {
        let owner = server.to_owned();
        Box::pin(async move {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT DISTINCT h.handler_id FROM wf_handlers h \
                     JOIN wf_inbox i ON i.handler_id = h.handler_id \
                     WHERE starts_with(h.owner, $1 || '/')",
                    &[&owner],
                )
                .await
                .map_err(err)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn orphans(&self) -> StorageFuture<'_, Vec<String>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = client
                .query(
                    &format!(
                        "SELECT handler_id FROM wf_handlers h WHERE status = 'running' \
                           AND (owner IS NULL OR lease_until < {DB_NOW_MS}) \
                           AND (idle_since IS NULL \
                                OR EXISTS (SELECT 1 FROM wf_inbox i \
                                           WHERE i.handler_id = h.handler_id)) \
                         ORDER BY started_at"
                    ),
                    &[],
                )
                .await
                .map_err(err)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }
}
