//! The tables' layout and how a database is brought up to it.
//!
//! A database records its layout's version in `wf_schema`. On start, [`Storage::migrate`]
//! applies, in one transaction (on Postgres under a lock, so that servers starting together
//! take turns), every migration above that version, and refuses a database whose version is
//! newer than this build's. A database made before versions were recorded has the tables of
//! version 1 and no `wf_schema`; version 1 is written so that it leaves such tables as they
//! are, and the later migrations then apply to it like to any other.
//!
//! A migration is never edited once released: a change of layout is a new migration at the
//! end of [`MIGRATIONS`].
//!
//! [`Storage::migrate`]: super::Storage::migrate

// A build without either SQL store keeps only `SCHEMA_VERSION` of this module.
#![cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]

use super::StorageError;

/// One step of the layout, in each dialect.
pub(super) struct Migration {
    /// The version the database has after this step.
    pub version: i64,
    /// What the step does, for the log.
    pub does: &'static str,
    /// The statements on SQLite.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub sqlite: &'static str,
    /// The statements on Postgres.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub postgres: &'static str,
}

/// Every migration, oldest first; versions count up from 1 without gaps.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        does: "create the handler, event and inbox tables",
        sqlite: "
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
            CREATE INDEX IF NOT EXISTS wf_inbox_handler ON wf_inbox(handler_id);",
        postgres: "
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
            CREATE INDEX IF NOT EXISTS wf_inbox_handler ON wf_inbox(handler_id);",
    },
    Migration {
        version: 2,
        does: "index the running handlers, so that finding work reads live runs only",
        sqlite: "CREATE INDEX wf_handlers_running ON wf_handlers(started_at, handler_id) \
                 WHERE status = 'running';",
        postgres: "CREATE INDEX wf_handlers_running ON wf_handlers(started_at, handler_id) \
                   WHERE status = 'running';",
    },
    Migration {
        version: 3,
        does: "index leases by server, ended runs by end and all runs by start, so that \
               renewing, expiring and paging read only the rows they return",
        sqlite: "CREATE INDEX wf_handlers_server \
                   ON wf_handlers(substr(owner, 1, instr(owner, '/') - 1)) \
                   WHERE owner IS NOT NULL; \
                 CREATE INDEX wf_handlers_ended ON wf_handlers(completed_at) \
                   WHERE status <> 'running'; \
                 CREATE INDEX wf_handlers_started ON wf_handlers(started_at, handler_id); \
                 DROP INDEX IF EXISTS wf_handlers_owner;",
        postgres: "CREATE INDEX wf_handlers_server ON wf_handlers(substring(owner, '^([^/]*)/')) \
                     WHERE owner IS NOT NULL; \
                   CREATE INDEX wf_handlers_ended ON wf_handlers(completed_at) \
                     WHERE status <> 'running'; \
                   CREATE INDEX wf_handlers_started ON wf_handlers(started_at, handler_id); \
                   DROP INDEX IF EXISTS wf_handlers_owner;",
    },
];

/// The version this build brings a database to.
///
/// ```
/// assert!(workflows_server::storage::SCHEMA_VERSION >= 3);
/// ```
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// Creates the table that records the version, if missing.
pub(super) const CREATE_VERSION_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS wf_schema (version BIGINT NOT NULL)";

/// The migrations a database at version `current` needs (`current` is 0 when nothing is
/// recorded); an error if the database is newer than this build.
pub(super) fn pending(current: i64) -> Result<&'static [Migration], StorageError> {
    if current > SCHEMA_VERSION {
        return Err(StorageError::SchemaTooNew {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    let done = MIGRATIONS
        .iter()
        .take_while(|m| m.version <= current)
        .count();
    Ok(&MIGRATIONS[done..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{}", m.does);
        }
    }

    #[test]
    fn pending_starts_after_the_current_version() {
        assert_eq!(pending(0).unwrap().len(), MIGRATIONS.len());
        assert_eq!(pending(1).unwrap()[0].version, 2);
        assert!(pending(SCHEMA_VERSION).unwrap().is_empty());
        assert!(matches!(
            pending(SCHEMA_VERSION + 1),
            Err(StorageError::SchemaTooNew { found, supported })
                if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION
        ));
    }
}
