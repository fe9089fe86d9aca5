//! Schema versions: a database written before versions were recorded (the first layout,
//! reproduced here as the server of 2026-11 created it) is brought up to date without losing
//! its runs; a database of a newer build is refused; servers migrating one Postgres database
//! at once take turns.

mod common;

use common::fresh_database;
use workflows_server::storage::{
    InboxItem, PostgresStorage, SCHEMA_VERSION, SqliteStorage, Status, Storage, StorageError,
};

/// The tables as servers created them before `wf_schema` existed (SQLite).
const FIRST_LAYOUT_SQLITE: &str = "
CREATE TABLE wf_handlers (
    handler_id TEXT PRIMARY KEY, workflow_name TEXT NOT NULL, run_id TEXT NOT NULL,
    status TEXT NOT NULL, error TEXT, result TEXT, started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, completed_at INTEGER, idle_since INTEGER, owner TEXT,
    lease_until INTEGER, start_event TEXT NOT NULL, snapshot TEXT);
CREATE INDEX wf_handlers_owner ON wf_handlers(owner);
CREATE TABLE wf_events (
    run_id TEXT NOT NULL, sequence INTEGER NOT NULL, envelope TEXT NOT NULL,
    internal INTEGER NOT NULL, terminal INTEGER NOT NULL, PRIMARY KEY (run_id, sequence));
CREATE TABLE wf_inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, handler_id TEXT NOT NULL, item TEXT NOT NULL);
CREATE INDEX wf_inbox_handler ON wf_inbox(handler_id);
";

/// The same on Postgres.
const FIRST_LAYOUT_POSTGRES: &str = "
CREATE TABLE wf_handlers (
    handler_id TEXT PRIMARY KEY, workflow_name TEXT NOT NULL, run_id TEXT NOT NULL,
    status TEXT NOT NULL, error TEXT, result TEXT, started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL, completed_at BIGINT, idle_since BIGINT, owner TEXT,
    lease_until BIGINT, start_event TEXT NOT NULL, snapshot TEXT);
CREATE INDEX wf_handlers_owner ON wf_handlers(owner);
CREATE TABLE wf_events (
    run_id TEXT NOT NULL, sequence BIGINT NOT NULL, envelope TEXT NOT NULL,
    internal BOOLEAN NOT NULL, terminal BOOLEAN NOT NULL, PRIMARY KEY (run_id, sequence));
CREATE TABLE wf_inbox (
    id BIGSERIAL PRIMARY KEY, handler_id TEXT NOT NULL, item TEXT NOT NULL);
CREATE INDEX wf_inbox_handler ON wf_inbox(handler_id);
";

/// Two runs as that server stored them: one waiting for an answer, with an event and an
/// answer queued; one completed.
const FIRST_LAYOUT_RUNS: &str = r#"
INSERT INTO wf_handlers (handler_id, workflow_name, run_id, status, started_at, updated_at,
                         idle_since, start_event, snapshot)
VALUES ('waiting', 'number', 'run-1', 'running', 1000, 2000, 2000,
        '{"name":"StartEvent","data":{}}', '{"version":1}');
INSERT INTO wf_handlers (handler_id, workflow_name, run_id, status, result, started_at,
                         updated_at, completed_at, start_event)
VALUES ('done', 'number', 'run-2', 'completed', '{"type":"StopEvent"}', 500, 900, 900,
        '{"name":"StartEvent","data":{}}');
INSERT INTO wf_events (run_id, sequence, envelope, internal, terminal)
VALUES ('run-1', 0, '{"type":"InputRequiredEvent"}', FALSE, FALSE);
INSERT INTO wf_inbox (handler_id, item)
VALUES ('waiting', '{"kind":"event","name":"HumanResponseEvent","data":{"response":"7"},"step":null}');
"#;

/// What the migrated store must still hold of [`FIRST_LAYOUT_RUNS`].
async fn runs_survived(storage: &impl Storage) {
    let waiting = storage.handler("waiting").await.unwrap().expect("kept");
    assert_eq!(waiting.status, Status::Running);
    assert_eq!(waiting.idle_since, Some(2000));
    let state = storage.run_state("waiting").await.unwrap().unwrap();
    assert_eq!(state.snapshot.as_deref(), Some(r#"{"version":1}"#));
    let events = storage.events_after("run-1", -1, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].envelope, r#"{"type":"InputRequiredEvent"}"#);
    let inbox = storage.inbox("waiting").await.unwrap();
    assert!(matches!(
        &inbox[..],
        [(_, InboxItem::Event { name, .. })] if name == "HumanResponseEvent"
    ));
    let done = storage.handler("done").await.unwrap().expect("kept");
    assert_eq!(done.status, Status::Completed);
    assert_eq!(done.result.as_deref(), Some(r#"{"type":"StopEvent"}"#));
    // The waiting run has an answer queued and no owner: it is work to pick up, found
    // through the index the migration added.
    assert_eq!(storage.orphans().await.unwrap(), ["waiting"]);
}

fn sqlite_file(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "wf-migrate-{name}-{}.db",
        uuid::Uuid::new_v4().simple()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

/// A connection of the test's own to `path`. A store holds its file alone while it is open
/// (one server per file): this waits for one just dropped to let go.
fn raw(path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn
}

fn sqlite_version(path: &std::path::Path) -> i64 {
    let conn = raw(path);
    conn.query_row("SELECT version FROM wf_schema", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn sqlite_first_layout_is_migrated_without_losing_runs() {
    let path = sqlite_file("first");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(FIRST_LAYOUT_SQLITE).unwrap();
        conn.execute_batch(FIRST_LAYOUT_RUNS).unwrap();
    }
    let storage = SqliteStorage::open(&path).unwrap();
    storage.migrate().await.unwrap();
    runs_survived(&storage).await;
    drop(storage);
    assert_eq!(sqlite_version(&path), SCHEMA_VERSION);
    let index: i64 = raw(&path)
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'wf_handlers_running'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(index, 1, "version 2 adds the index of running handlers");

    // Starting again changes nothing.
    let again = SqliteStorage::open(&path).unwrap();
    again.migrate().await.unwrap();
    runs_survived(&again).await;
    drop(again);
    assert_eq!(sqlite_version(&path), SCHEMA_VERSION);
}

#[tokio::test]
async fn sqlite_refuses_a_database_of_a_newer_build() {
    let path = sqlite_file("newer");
    SqliteStorage::open(&path).unwrap().migrate().await.unwrap();
    raw(&path)
        .execute("UPDATE wf_schema SET version = ?1", [SCHEMA_VERSION + 1])
        .unwrap();
    let refused = SqliteStorage::open(&path)
        .unwrap()
        .migrate()
        .await
        .unwrap_err();
    assert!(
        matches!(refused, StorageError::SchemaTooNew { found, supported }
            if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{refused:?}"
    );
    assert!(
        refused
            .to_string()
            .contains("run the newer workflows-server")
    );
}

/// A plain connection to `url`, for setting up what the server would find.
async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

async fn postgres_version(url: &str) -> i64 {
    admin(url)
        .await
        .query_one("SELECT version FROM wf_schema", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn postgres_first_layout_is_migrated_without_losing_runs() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let db = admin(&url).await;
    db.batch_execute(FIRST_LAYOUT_POSTGRES).await.unwrap();
    db.batch_execute(FIRST_LAYOUT_RUNS).await.unwrap();

    let storage = PostgresStorage::connect(&url, 2).await.unwrap();
    storage.migrate().await.unwrap();
    assert_eq!(postgres_version(&url).await, SCHEMA_VERSION);
    let index = db
        .query_one(
            "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'wf_handlers_running'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(index, 1, "version 2 adds the index of running handlers");
    runs_survived(&storage).await;
    storage.migrate().await.unwrap();
    runs_survived(&storage).await;
}

#[tokio::test]
async fn postgres_refuses_a_database_of_a_newer_build() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let storage = PostgresStorage::connect(&url, 2).await.unwrap();
    storage.migrate().await.unwrap();
    admin(&url)
        .await
        .execute(
            "UPDATE wf_schema SET version = $1",
            &[&(SCHEMA_VERSION + 1)],
        )
        .await
        .unwrap();
    let refused = storage.migrate().await.unwrap_err();
    assert!(
        matches!(refused, StorageError::SchemaTooNew { found, .. } if found == SCHEMA_VERSION + 1),
        "{refused:?}"
    );
}

#[tokio::test]
async fn postgres_servers_starting_together_take_turns() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let mut servers = Vec::new();
    for _ in 0..4 {
        servers.push(PostgresStorage::connect(&url, 1).await.unwrap());
    }
    let results =
        futures_util::future::join_all(servers.iter().map(|storage| storage.migrate())).await;
    for result in results {
        result.expect("every server migrates or finds the work done");
    }
    assert_eq!(postgres_version(&url).await, SCHEMA_VERSION);
    let rows = admin(&url)
        .await
        .query_one("SELECT COUNT(*) FROM wf_schema", &[])
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(rows, 1, "one version recorded");
}
