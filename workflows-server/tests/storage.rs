//! The storage backends' lease rules, on SQLite and (when `DATABASE_URL` names one) Postgres:
//! a lease is named per claim, and a write under an older name is refused even when the
//! same server has claimed the run again.

mod common;

use common::*;
use workflows_server::storage::{
    HandlerRecord, PostgresStorage, RunUpdate, SqliteStorage, Status, Storage, StoredEvent,
};

fn record(id: &str, owner: &str) -> HandlerRecord {
    HandlerRecord {
        handler_id: id.into(),
        workflow_name: "number".into(),
        run_id: format!("run-{id}"),
        status: Status::Running,
        error: None,
        result: None,
        started_at: 0,
        updated_at: 0,
        completed_at: None,
        idle_since: None,
        owner: Some(owner.into()),
        lease_until: None,
    }
}

fn event(sequence: u64) -> Vec<StoredEvent> {
    vec![StoredEvent {
        sequence,
        envelope: "{}".into(),
        internal: false,
        terminal: false,
    }]
}

async fn lease_names_fence_stale_copies(storage: impl Storage) {
    storage.migrate().await.unwrap();
    let minute = 60_000;
    storage
        .create_handler(record("h", "srv/0"), "{}".into(), minute)
        .await
        .unwrap();
    assert!(
        storage
            .append_events("h", "run-h", "srv/0", event(0))
            .await
            .unwrap()
    );
    assert!(
        !storage.claim("h", "other/0", minute).await.unwrap(),
        "held, not expired"
    );

    // The server gives the run up and claims it again under a new name.
    storage.release("h", "srv/0").await.unwrap();
    assert!(storage.claim("h", "srv/1", minute).await.unwrap());
    let stale = RunUpdate {
        snapshot: Some("stale".into()),
        ..RunUpdate::default()
    };
    assert!(!storage.update_run("h", "srv/0", stale, 1).await.unwrap());
    assert!(
        !storage
            .append_events("h", "run-h", "srv/0", event(1))
            .await
            .unwrap()
    );
    assert!(
        storage
            .append_events("h", "run-h", "srv/1", event(1))
            .await
            .unwrap()
    );
    assert_eq!(
        storage.run_state("h").await.unwrap().unwrap().snapshot,
        None
    );

    // Renewal, listing and inbox queries go by server.
    storage.renew("srv", minute).await.unwrap();
    assert_eq!(
        storage.held("srv").await.unwrap(),
        vec![("h".to_owned(), "srv/1".to_owned())]
    );
    assert!(
        storage.held("sr").await.unwrap().is_empty(),
        "a prefix is not a server"
    );
    storage
        .push_inbox("h", workflows_server::storage::InboxItem::Cancel)
        .await
        .unwrap();
    assert_eq!(storage.with_inbox("srv").await.unwrap(), ["h"]);
    assert!(storage.orphans().await.unwrap().is_empty(), "held");

    // A lease that ran out is refused too, and the run is free for anyone.
    assert!(
        storage.claim("h", "srv/1", -1).await.unwrap(),
        "re-claimed, already expired"
    );
    let late = RunUpdate {
        snapshot: Some("late".into()),
        ..RunUpdate::default()
    };
    assert!(!storage.update_run("h", "srv/1", late, 2).await.unwrap());
    assert_eq!(storage.orphans().await.unwrap(), ["h"]);
    assert!(storage.claim("h", "other/1", minute).await.unwrap());
}

#[tokio::test]
async fn sqlite_fences_stale_copies_by_lease_name() {
    lease_names_fence_stale_copies(SqliteStorage::in_memory().unwrap()).await;
}

#[tokio::test]
async fn postgres_fences_stale_copies_by_lease_name() {
    let Some(url) = fresh_database().await else {
        return;
    };
    lease_names_fence_stale_copies(PostgresStorage::connect(&url, 2).await.unwrap()).await;
}
