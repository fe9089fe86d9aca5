//! What the two SQL stores share: the statements, written once with `$n` parameters, the
//! column lists, and how a row becomes a record. Only a [`Dialect`]'s few fragments differ
//! (the clock leases are kept on, row locks, matching a list), so the SQLite and Postgres
//! backends cannot drift apart in what they store or how they read it; the conformance suite
//! (`tests/storage.rs`) checks them against the same contract.

use super::{HandlerRecord, Status, StoredEvent};

/// An error while reading or writing: the database's own, or a row this build cannot read.
pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failed call of a SQL store as a [`StorageError`]: an error of the store's own (a schema
/// too new) as it is, any other as `operation` failing because of it.
pub(super) fn failure(operation: &'static str, error: BoxError) -> super::StorageError {
    match error.downcast::<super::StorageError>() {
        Ok(own) => *own,
        Err(error) => super::StorageError::Operation {
            operation,
            source: std::sync::Arc::from(error),
        },
    }
}

/// The columns of a handler, in the order [`handler`] reads them.
pub(super) const HANDLER_COLUMNS: &str = "handler_id, workflow_name, run_id, status, error, \
     result, started_at, updated_at, completed_at, idle_since, owner, lease_until";

/// The columns of an event, in the order [`event`] reads them.
const EVENT_COLUMNS: &str = "sequence, envelope, internal, terminal";

/// How one SQL database spells what the standard leaves open.
pub(super) struct Dialect {
    /// Milliseconds since the Unix epoch on the store's clock, the clock of every lease.
    pub now_ms: &'static str,
    /// Appended to a `SELECT` of one handler inside a write: locks the row until commit
    /// (SQLite's write transactions already exclude each other).
    pub lock_row: &'static str,
    /// Appended to a `SELECT` of handlers inside a write: locks the rows it finds, skipping
    /// rows another session has locked instead of waiting for them.
    pub lock_unless_locked: &'static str,
    /// The server part of a lease `{server}/{n}` in column `owner`, spelled exactly as the
    /// index `wf_handlers_server` (`schema.rs`) is built on it.
    pub server_of_owner: &'static str,
    /// `column` matches any element of the list bound to parameter `$n`.
    pub any_of: fn(column: &str, n: u8) -> String,
    /// Rewrites the shared `$n` parameters into the dialect's own form.
    pub parameters: fn(String) -> String,
}

/// Every statement of a SQL store, rendered for one dialect.
pub(super) struct Statements {
    pub handler: String,
    pub handler_status_and_run: String,
    pub insert_handler: String,
    pub delete_handler: String,
    pub delete_events_of_run: String,
    pub delete_inbox_of_handler: String,
    pub delete_inbox_items: String,
    pub run_state: String,
    pub holds_lease: String,
    pub insert_event: String,
    /// Inserts an event (`$2`..`$5` as `insert_event`'s) of the current run of handler `$1`.
    pub insert_event_of_handler: String,
    pub events_after: String,
    pub last_sequence: String,
    pub update_run: String,
    pub claim: String,
    pub renew: String,
    pub release: String,
    pub push_inbox: String,
    pub inbox: String,
    pub held: String,
    pub with_inbox: String,
    pub orphans: String,
    /// `handlers` with both filters; `$1` and `$2` are the lists, bound as null for "any"
    /// (each list is matched before it is tested for null: Postgres takes a parameter's type
    /// from where it first appears); `$3` is the most rows.
    pub handlers: String,
    /// `handlers` after the handler started at `$4` with id `$5`.
    pub handlers_after: String,
    /// Deletes up to `$2` ended handlers that ended before `$1`, oldest first; their ids and
    /// runs.
    pub expire_handlers: String,
    /// Rewrites the schema version as it is: a write that changes nothing.
    pub probe_write: String,
    /// Deletes the events of the runs listed in `$1`.
    pub delete_events_of_runs: String,
    /// Deletes the inbox items of the handlers listed in `$1`.
    pub delete_inbox_of_handlers: String,
}

impl Statements {
    pub(super) fn new(d: &Dialect) -> Statements {
        let now = d.now_ms;
        let lock = d.lock_row;
        let unless_locked = d.lock_unless_locked;
        // A lease `{server}/{n}` belongs to the server named `$1` (read through the index on
        // the server part: only that server's rows are visited).
        let of_server = format!(
            "owner IS NOT NULL AND {} = CAST($1 AS TEXT)",
            d.server_of_owner
        );
        let sql = |text: String| (d.parameters)(text);
        Statements {
            handler: sql(format!(
                "SELECT {HANDLER_COLUMNS} FROM wf_handlers WHERE handler_id = $1"
            )),
            handler_status_and_run: sql(format!(
                "SELECT status, run_id FROM wf_handlers WHERE handler_id = $1{lock}"
            )),
            insert_handler: sql(format!(
                "INSERT INTO wf_handlers (handler_id, workflow_name, run_id, status, started_at, \
                 updated_at, owner, lease_until, start_event) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, \
                         CASE WHEN CAST($7 AS TEXT) IS NULL THEN NULL ELSE {now} + $8 END, $9) \
                 ON CONFLICT DO NOTHING"
            )),
            delete_handler: sql(
                "DELETE FROM wf_handlers WHERE handler_id = $1 RETURNING run_id".into(),
            ),
            delete_events_of_run: sql("DELETE FROM wf_events WHERE run_id = $1".into()),
            delete_inbox_of_handler: sql("DELETE FROM wf_inbox WHERE handler_id = $1".into()),
            delete_inbox_items: sql(format!(
                "DELETE FROM wf_inbox WHERE {}",
                (d.any_of)("id", 1)
            )),
            run_state: sql(
                "SELECT start_event, snapshot FROM wf_handlers WHERE handler_id = $1".into(),
            ),
            holds_lease: sql(format!(
                "SELECT owner = $2 AND lease_until >= {now} FROM wf_handlers \
                 WHERE handler_id = $1{lock}"
            )),
            insert_event: sql(format!(
                "INSERT INTO wf_events (run_id, {EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT DO NOTHING"
            )),
            insert_event_of_handler: sql(format!(
                "INSERT INTO wf_events (run_id, {EVENT_COLUMNS}) \
                 SELECT run_id, $2, $3, $4, $5 FROM wf_handlers WHERE handler_id = $1 \
                 ON CONFLICT DO NOTHING"
            )),
            events_after: sql(format!(
                "SELECT {EVENT_COLUMNS} FROM wf_events \
                 WHERE run_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3"
            )),
            last_sequence: sql("SELECT MAX(sequence) FROM wf_events WHERE run_id = $1".into()),
            update_run: sql("UPDATE wf_handlers SET \
                   status = COALESCE($2, status), \
                   result = COALESCE($3, result), \
                   error = COALESCE($4, error), \
                   snapshot = COALESCE($5, snapshot), \
                   idle_since = CASE WHEN $6 THEN $7 ELSE idle_since END, \
                   updated_at = $8, \
                   completed_at = CASE WHEN $9 THEN $8 ELSE completed_at END, \
                   owner = CASE WHEN $10 THEN NULL ELSE owner END, \
                   lease_until = CASE WHEN $10 THEN NULL ELSE lease_until END \
                 WHERE handler_id = $1"
                .into()),
            // One statement: the database checks the condition on the row it locks, so of
            // two servers claiming at once exactly one gets the run. A row another session
            // has locked (a server frozen mid-write) is skipped, not waited for: the claim
            // fails now and is tried again on a later round.
            claim: sql(format!(
                "UPDATE wf_handlers SET owner = $2, lease_until = {now} + $3 \
                 WHERE handler_id = (SELECT handler_id FROM wf_handlers \
                   WHERE handler_id = $1 AND status = 'running' \
                     AND (owner IS NULL OR owner = $2 OR lease_until < {now}){unless_locked})"
            )),
            // A row locked by another session keeps its old lease rather than holding up the
            // renewal of every other run.
            renew: sql(format!(
                "UPDATE wf_handlers SET lease_until = {now} + $2 \
                 WHERE handler_id IN (SELECT handler_id FROM wf_handlers \
                   WHERE {of_server}{unless_locked})"
            )),
            release: sql("UPDATE wf_handlers SET owner = NULL, lease_until = NULL \
                 WHERE handler_id = $1 AND owner = $2"
                .into()),
            push_inbox: sql("INSERT INTO wf_inbox (handler_id, item) VALUES ($1, $2)".into()),
            inbox: sql("SELECT id, item FROM wf_inbox WHERE handler_id = $1 ORDER BY id".into()),
            held: sql(format!(
                "SELECT handler_id, owner FROM wf_handlers \
                 WHERE status = 'running' AND {of_server}"
            )),
            with_inbox: sql(format!(
                "SELECT DISTINCT h.handler_id FROM wf_handlers h \
                 JOIN wf_inbox i ON i.handler_id = h.handler_id \
                 WHERE {}",
                of_server.replace("owner", "h.owner")
            )),
            orphans: sql(format!(
                "SELECT handler_id FROM wf_handlers h WHERE status = 'running' \
                   AND (owner IS NULL OR lease_until < {now}) \
                   AND (idle_since IS NULL \
                        OR EXISTS (SELECT 1 FROM wf_inbox i WHERE i.handler_id = h.handler_id)) \
                 ORDER BY started_at, handler_id"
            )),
            handlers: sql(format!(
                "SELECT {HANDLER_COLUMNS} FROM wf_handlers \
                 WHERE ({} OR $1 IS NULL) AND ({} OR $2 IS NULL) \
                 ORDER BY started_at, handler_id LIMIT $3",
                (d.any_of)("status", 1),
                (d.any_of)("workflow_name", 2)
            )),
            handlers_after: sql(format!(
                "SELECT {HANDLER_COLUMNS} FROM wf_handlers \
                 WHERE ({} OR $1 IS NULL) AND ({} OR $2 IS NULL) \
                   AND (started_at, handler_id) > ($4, $5) \
                 ORDER BY started_at, handler_id LIMIT $3",
                (d.any_of)("status", 1),
                (d.any_of)("workflow_name", 2)
            )),
            // Through the index of ended runs by end (`wf_handlers_ended`): the batch costs
            // what it deletes, however many runs are stored.
            expire_handlers: sql("DELETE FROM wf_handlers WHERE status <> 'running' \
                   AND handler_id IN (SELECT handler_id FROM wf_handlers \
                     WHERE status <> 'running' AND completed_at < $1 \
                     ORDER BY completed_at LIMIT $2) \
                 RETURNING handler_id, run_id"
                .into()),
            probe_write: "UPDATE wf_schema SET version = version".into(),
            delete_events_of_runs: sql(format!(
                "DELETE FROM wf_events WHERE {}",
                (d.any_of)("run_id", 1)
            )),
            delete_inbox_of_handlers: sql(format!(
                "DELETE FROM wf_inbox WHERE {}",
                (d.any_of)("handler_id", 1)
            )),
        }
    }
}

/// `text` as every store can hold it: NUL, which Postgres text refuses, becomes U+FFFD.
pub(super) fn storable(text: Option<String>) -> Option<String> {
    text.map(|t| {
        if t.contains('\0') {
            t.replace('\0', "\u{FFFD}")
        } else {
            t
        }
    })
}

/// A row of a result, as each database's driver reads it.
pub(super) trait SqlRow {
    fn text(&self, i: usize) -> Result<String, BoxError>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, BoxError>;
    fn int(&self, i: usize) -> Result<i64, BoxError>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, BoxError>;
    fn boolean(&self, i: usize) -> Result<bool, BoxError>;
}

/// A status this build does not know, found in the store.
#[derive(Debug, thiserror::Error)]
#[error(
    "the stored status `{0}` is not one this build knows (running, completed, failed, cancelled)"
)]
struct UnknownStatus(String);

/// The handler in a row of [`HANDLER_COLUMNS`].
pub(super) fn handler(row: &impl SqlRow) -> Result<HandlerRecord, BoxError> {
    let status = row.text(3)?;
    Ok(HandlerRecord {
        handler_id: row.text(0)?,
        workflow_name: row.text(1)?,
        run_id: row.text(2)?,
        status: Status::parse(&status).ok_or(UnknownStatus(status))?,
        error: row.opt_text(4)?,
        result: row.opt_text(5)?,
        started_at: row.int(6)?,
        updated_at: row.int(7)?,
        completed_at: row.opt_int(8)?,
        idle_since: row.opt_int(9)?,
        owner: row.opt_text(10)?,
        lease_until: row.opt_int(11)?,
    })
}

/// The event in a row of the event columns.
pub(super) fn event(row: &impl SqlRow) -> Result<StoredEvent, BoxError> {
    Ok(StoredEvent {
        sequence: u64::try_from(row.int(0)?)?,
        envelope: row.text(1)?,
        internal: row.boolean(2)?,
        terminal: row.boolean(3)?,
    })
}
