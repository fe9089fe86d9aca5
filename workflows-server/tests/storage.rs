//! The `Storage` conformance suite: the whole contract of
//! `workflows_server::storage::Storage`, one case per rule, run identically against every
//! backend. Each case is an `async fn(&dyn Storage)` given a freshly migrated, empty store;
//! `conformance!` turns it into one test per backend (`sqlite::inbox_order`,
//! `postgres::inbox_order`, ...), so a failure names both the backend and the rule.
//!
//! A new backend must pass every case: add a constructor below and a module to the macro.
//! Where a backend departs from the contract, its test of that case is ignored with the reason
//! (`ignore = "backend divergence: ..."`) while the case keeps asserting the contract.
//!
//! SQLite runs in memory. Postgres runs on a fresh database of the server named by
//! `DATABASE_URL`; without it those tests say so and pass, except under CI (`CI` set), where
//! they fail.
//!
//! Leases are made deterministic without sleeping: `LIVE` (a minute) never runs out during a
//! test, `EXPIRED` (-1 ms) has run out as soon as it is set.

mod common;

use common::fresh_database;
use serde_json::json;
use workflows_server::storage::{
    Created, HandlerFilter, HandlerRecord, InboxItem, PostgresStorage, RunState, RunUpdate,
    SqliteStorage, Status, Storage, StoredEvent,
};

/// A lease that holds for the whole test.
const LIVE: i64 = 60_000;
/// A lease that has already run out.
const EXPIRED: i64 = -1;

async fn sqlite() -> SqliteStorage {
    let storage = SqliteStorage::in_memory().expect("in-memory SQLite");
    storage.migrate().await.expect("migrate");
    storage
}

async fn postgres() -> Option<PostgresStorage> {
    let url = fresh_database().await?;
    let storage = PostgresStorage::connect(&url, 2)
        .await
        .expect("connect to DATABASE_URL");
    storage.migrate().await.expect("migrate");
    Some(storage)
}

/// One `#[tokio::test]` per case and backend. A case may be followed by attributes for one
/// backend's test only: `case [postgres: ignore = "why"]`.
macro_rules! conformance {
    ($($case:ident $([sqlite: $sqlite:meta])? $([postgres: $postgres:meta])?,)*) => {
        mod sqlite {
            $(
                $(#[$sqlite])?
                #[tokio::test]
                async fn $case() {
                    super::$case(&super::sqlite().await).await;
                }
            )*
        }

        mod postgres {
            $(
                $(#[$postgres])?
                #[tokio::test]
                async fn $case() {
                    let Some(storage) = super::postgres().await else {
                        return;
                    };
                    super::$case(&storage).await;
                }
            )*
        }
    };
}

conformance! {
    migrate_is_idempotent,
    create_records_a_running_handler,
    create_reads_lease_ms_not_lease_until,
    create_refuses_an_id_that_is_running,
    create_replaces_an_ended_handler,
    create_clears_an_inbox_sent_before_it,
    handler_is_none_when_unknown,
    handlers_are_listed_oldest_first,
    handlers_are_filtered,
    handlers_are_paged,
    expire_deletes_runs_ended_before_the_cutoff_oldest_first,
    delete_cascades_to_events_and_inbox,
    run_state_has_start_event_and_latest_snapshot,
    events_are_ordered_and_paged,
    events_after_takes_any_limit,
    append_keeps_a_stored_sequence,
    append_needs_the_lease,
    update_keeps_fields_left_unset,
    update_stores_any_error_text,
    update_appends_its_events_in_the_same_write,
    update_sets_and_clears_idle_since,
    update_to_a_terminal_status_ends_the_run,
    update_deletes_consumed_inbox_items,
    update_can_release_the_lease,
    update_needs_a_live_lease,
    claim_takes_free_or_expired_leases,
    claim_refuses_an_ended_handler,
    renew_extends_one_servers_leases,
    release_only_by_the_owner,
    inbox_order,
    inbox_items_round_trip,
    held_lists_one_servers_running_handlers,
    with_inbox_lists_held_handlers_with_items,
    orphans_are_unheld_runs_with_work,
    lease_names_fence_stale_copies,
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A running handler `id` of workflow `number`, run `run-{id}`, started at 1000.
fn record(id: &str, owner: Option<&str>) -> HandlerRecord {
    HandlerRecord {
        handler_id: id.into(),
        workflow_name: "number".into(),
        run_id: format!("run-{id}"),
        status: Status::Running,
        error: None,
        result: None,
        started_at: 1_000,
        updated_at: 1_000,
        completed_at: None,
        idle_since: None,
        owner: owner.map(str::to_owned),
        lease_until: None,
    }
}

/// Creates `record` with a start event of its own, asserting it is new.
async fn create(storage: &dyn Storage, record: HandlerRecord, lease_ms: i64) {
    let id = record.handler_id.clone();
    let start = start_event(&id);
    assert_eq!(
        storage
            .create_handler(record, start, lease_ms)
            .await
            .unwrap(),
        Created::Created,
        "create {id}"
    );
}

/// Creates `id` held by `owner` for a minute.
async fn create_held(storage: &dyn Storage, id: &str, owner: &str) {
    create(storage, record(id, Some(owner)), LIVE).await;
}

fn start_event(id: &str) -> String {
    json!({"name": "StartEvent", "data": {"for": id}}).to_string()
}

async fn get(storage: &dyn Storage, id: &str) -> HandlerRecord {
    storage
        .handler(id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("handler {id} is stored"))
}

fn event(sequence: u64, envelope: &str) -> StoredEvent {
    StoredEvent {
        sequence,
        envelope: envelope.into(),
        internal: false,
        terminal: false,
    }
}

/// Every event of `run_id`.
async fn events(storage: &dyn Storage, run_id: &str) -> Vec<StoredEvent> {
    storage.events_after(run_id, -1, 1_000).await.unwrap()
}

fn sent(name: &str) -> InboxItem {
    InboxItem::Event {
        name: name.into(),
        data: json!({"value": name}),
        step: None,
        child: None,
    }
}

/// The items of `id`'s inbox, without their ids.
async fn inbox_items(storage: &dyn Storage, id: &str) -> Vec<InboxItem> {
    let inbox = storage.inbox(id).await.unwrap();
    inbox.into_iter().map(|(_, item)| item).collect()
}

/// Applies `update` as `owner`, asserting it is accepted.
async fn update(storage: &dyn Storage, id: &str, owner: &str, update: RunUpdate, now_us: i64) {
    assert!(
        storage.update_run(id, owner, update, now_us).await.unwrap(),
        "{owner} updates {id}"
    );
}

/// Ends `id` with `status` as `owner` at `now_us`.
async fn end(storage: &dyn Storage, id: &str, owner: &str, status: Status, now_us: i64) {
    let ending = RunUpdate {
        status: Some(status),
        ..RunUpdate::default()
    };
    update(storage, id, owner, ending, now_us).await;
}

fn ids(records: &[HandlerRecord]) -> Vec<&str> {
    records.iter().map(|r| r.handler_id.as_str()).collect()
}

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

fn held_pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(id, owner)| ((*id).to_owned(), (*owner).to_owned()))
        .collect()
}

/// `record` without its lease, for comparing across something that may release leases.
fn without_lease(record: HandlerRecord) -> HandlerRecord {
    HandlerRecord {
        owner: None,
        lease_until: None,
        ..record
    }
}

// ---------------------------------------------------------------------------------------------
// migrate
// ---------------------------------------------------------------------------------------------

/// Migrating a store that is already migrated keeps its data. (SQLite, one server per file,
/// also gives up every lease on migrate, so leases are not compared.)
async fn migrate_is_idempotent(storage: &dyn Storage) {
    create_held(storage, "h", "srv/0").await;
    assert!(
        storage
            .append_events("h", "run-h", "srv/0", vec![event(0, "e0")])
            .await
            .unwrap()
    );
    let snapshot = RunUpdate {
        snapshot: Some("snap".into()),
        ..RunUpdate::default()
    };
    update(storage, "h", "srv/0", snapshot, 2_000).await;
    storage.push_inbox("h", InboxItem::Cancel).await.unwrap();
    let before = get(storage, "h").await;

    storage.migrate().await.unwrap();
    storage.migrate().await.unwrap();

    assert_eq!(
        without_lease(get(storage, "h").await),
        without_lease(before)
    );
    assert_eq!(
        storage.run_state("h").await.unwrap(),
        Some(RunState {
            start_event: start_event("h"),
            snapshot: Some("snap".into()),
        })
    );
    assert_eq!(events(storage, "run-h").await, [event(0, "e0")]);
    assert_eq!(inbox_items(storage, "h").await, [InboxItem::Cancel]);
    create_held(storage, "after", "srv/0").await;
}

// ---------------------------------------------------------------------------------------------
// create_handler, handler, handlers, delete_handler, run_state
// ---------------------------------------------------------------------------------------------

/// Every field of a new handler comes back as given; a new handler has no result, error,
/// end or idle time; an owner comes with a lease, no owner with none.
async fn create_records_a_running_handler(storage: &dyn Storage) {
    let held = HandlerRecord {
        handler_id: "handler-1".into(),
        workflow_name: "greeter".into(),
        run_id: "run-1".into(),
        started_at: 1_700_000_000_000_001,
        updated_at: 1_700_000_000_000_002,
        owner: Some("srv/7".into()),
        ..record("handler-1", None)
    };
    create(storage, held.clone(), LIVE).await;
    let stored = get(storage, "handler-1").await;
    assert!(stored.lease_until.is_some(), "an owner comes with a lease");
    assert_eq!(
        stored,
        HandlerRecord {
            lease_until: stored.lease_until,
            ..held
        }
    );

    let free = record("free", None);
    create(storage, free.clone(), LIVE).await;
    assert_eq!(get(storage, "free").await, free, "no owner, no lease");
}

/// The lease runs `lease_ms` from the store's clock; `record.lease_until` is ignored.
async fn create_reads_lease_ms_not_lease_until(storage: &dyn Storage) {
    let claimed_far_ahead = |id| HandlerRecord {
        lease_until: Some(i64::MAX),
        ..record(id, Some("srv/0"))
    };
    // Expired first: the live lease is then set no earlier on the store's clock.
    create(storage, claimed_far_ahead("dead"), EXPIRED).await;
    create(storage, claimed_far_ahead("live"), LIVE).await;
    let live = get(storage, "live").await.lease_until.unwrap();
    let dead = get(storage, "dead").await.lease_until.unwrap();
    assert!(
        live < i64::MAX && dead < i64::MAX,
        "lease_until is not read"
    );
    assert!(live - dead >= LIVE, "live {live} vs expired {dead}");
    assert_eq!(storage.orphans().await.unwrap(), ["dead"]);
    assert!(
        storage
            .append_events("live", "run-live", "srv/0", vec![event(0, "e")])
            .await
            .unwrap()
    );
    assert!(
        !storage
            .append_events("dead", "run-dead", "srv/0", vec![event(0, "e")])
            .await
            .unwrap()
    );
}

/// An id whose handler is running is refused, whoever holds it, and nothing of that run
/// changes.
async fn create_refuses_an_id_that_is_running(storage: &dyn Storage) {
    create_held(storage, "h", "srv/0").await;
    assert!(
        storage
            .append_events("h", "run-h", "srv/0", vec![event(0, "e0")])
            .await
            .unwrap()
    );
    let snapshot = RunUpdate {
        snapshot: Some("snap".into()),
        ..RunUpdate::default()
    };
    update(storage, "h", "srv/0", snapshot, 2_000).await;
    storage.push_inbox("h", sent("a")).await.unwrap();
    let before = get(storage, "h").await;
    let state = storage.run_state("h").await.unwrap();

    let again = HandlerRecord {
        workflow_name: "other".into(),
        run_id: "run-2".into(),
        started_at: 5_000,
        updated_at: 5_000,
        ..record("h", Some("other/0"))
    };
    let created = storage
        .create_handler(again.clone(), "second".into(), LIVE)
        .await
        .unwrap();
    assert_eq!(created, Created::AlreadyRunning);
    assert_eq!(get(storage, "h").await, before);
    assert_eq!(storage.run_state("h").await.unwrap(), state);
    assert_eq!(events(storage, "run-h").await, [event(0, "e0")]);
    assert_eq!(inbox_items(storage, "h").await, [sent("a")]);

    // Still running after its owner let go, or with a lease that ran out.
    assert!(storage.claim("h", "srv/0", EXPIRED).await.unwrap());
    let created = storage
        .create_handler(again.clone(), "second".into(), LIVE)
        .await
        .unwrap();
    assert_eq!(created, Created::AlreadyRunning, "expired lease");
    storage.release("h", "srv/0").await.unwrap();
    let created = storage
        .create_handler(again, "second".into(), LIVE)
        .await
        .unwrap();
    assert_eq!(created, Created::AlreadyRunning, "no owner");
    assert_eq!(get(storage, "h").await.run_id, "run-h");
    assert_eq!(inbox_items(storage, "h").await, [sent("a")]);
}

/// Over a completed, failed or cancelled handler, create records a new run: the old run's
/// events and inbox are gone.
async fn create_replaces_an_ended_handler(storage: &dyn Storage) {
    for status in [Status::Completed, Status::Failed, Status::Cancelled] {
        let id = status.as_str();
        let old_run = format!("run-{id}");
        create_held(storage, id, "srv/0").await;
        assert!(
            storage
                .append_events(id, &old_run, "srv/0", vec![event(0, "old")])
                .await
                .unwrap()
        );
        let ending = RunUpdate {
            status: Some(status),
            result: Some("result".into()),
            error: Some("error".into()),
            snapshot: Some("snap".into()),
            idle_since: Some(Some(1_500)),
            ..RunUpdate::default()
        };
        update(storage, id, "srv/0", ending, 2_000).await;
        // Sent after it ended.
        storage.push_inbox(id, sent("late")).await.unwrap();

        let new = HandlerRecord {
            workflow_name: "greeter".into(),
            run_id: format!("run2-{id}"),
            started_at: 3_000,
            updated_at: 3_001,
            ..record(id, Some("srv2/4"))
        };
        let created = storage
            .create_handler(new.clone(), "second start".into(), LIVE)
            .await
            .unwrap();
        assert_eq!(created, Created::Created, "over {id}");

        let stored = get(storage, id).await;
        assert!(stored.lease_until.is_some());
        assert_eq!(
            stored,
            HandlerRecord {
                lease_until: stored.lease_until,
                ..new
            },
            "nothing of the {id} run is left in the row"
        );
        assert_eq!(
            storage.run_state(id).await.unwrap(),
            Some(RunState {
                start_event: "second start".into(),
                snapshot: None,
            })
        );
        assert_eq!(events(storage, &old_run).await, []);
        assert_eq!(storage.last_sequence(&old_run).await.unwrap(), None);
        assert_eq!(storage.inbox(id).await.unwrap(), []);
    }
}

/// Items sent to an id before its handler exists are not for the new run.
async fn create_clears_an_inbox_sent_before_it(storage: &dyn Storage) {
    storage.push_inbox("h", sent("early")).await.unwrap();
    storage.push_inbox("other", sent("kept")).await.unwrap();
    assert_eq!(inbox_items(storage, "h").await, [sent("early")]);
    create_held(storage, "h", "srv/0").await;
    assert_eq!(storage.inbox("h").await.unwrap(), []);
    assert_eq!(inbox_items(storage, "other").await, [sent("kept")]);
}

async fn handler_is_none_when_unknown(storage: &dyn Storage) {
    assert_eq!(storage.handler("nope").await.unwrap(), None);
    assert_eq!(storage.run_state("nope").await.unwrap(), None);
    create_held(storage, "h", "srv/0").await;
    assert_eq!(storage.handler("nope").await.unwrap(), None);
    assert_eq!(storage.handler("H").await.unwrap(), None, "ids are exact");
}

/// Listed by `started_at`, then `handler_id`, whatever the order of creation; each listed
/// record is the one `handler` gives.
async fn handlers_are_listed_oldest_first(storage: &dyn Storage) {
    assert_eq!(
        storage.handlers(HandlerFilter::default()).await.unwrap(),
        []
    );
    for (id, started_at) in [("d", 3), ("b", 2), ("c", 1), ("a", 2), ("e", 0)] {
        let at = HandlerRecord {
            started_at,
            updated_at: started_at,
            ..record(id, Some("srv/0"))
        };
        create(storage, at, LIVE).await;
    }
    let all = storage.handlers(HandlerFilter::default()).await.unwrap();
    assert_eq!(ids(&all), ["e", "c", "a", "b", "d"]);
    for listed in all {
        assert_eq!(get(storage, &listed.handler_id).await, listed);
    }
}

/// `status_in` and `workflow_name_in` each keep records matching any of their values, both
/// together keep records matching both; `None` keeps all; an empty list keeps none.
async fn handlers_are_filtered(storage: &dyn Storage) {
    let specs = [
        ("a", "alpha", 1, Status::Running),
        ("b", "beta", 2, Status::Completed),
        ("c", "alpha", 3, Status::Failed),
        ("d", "beta", 4, Status::Running),
        ("e", "gamma", 5, Status::Cancelled),
    ];
    for (id, workflow, started_at, status) in specs {
        let at = HandlerRecord {
            workflow_name: workflow.into(),
            started_at,
            updated_at: started_at,
            ..record(id, Some("srv/0"))
        };
        create(storage, at, LIVE).await;
        if status.is_terminal() {
            end(storage, id, "srv/0", status, 10).await;
        }
    }
    let listed = async |status_in: Option<Vec<Status>>, names: Option<&[&str]>| {
        let filter = HandlerFilter {
            status_in,
            workflow_name_in: names.map(|n| n.iter().map(|&s| s.to_owned()).collect()),
            ..HandlerFilter::default()
        };
        let records = storage.handlers(filter).await.unwrap();
        ids(&records)
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };

    assert_eq!(listed(None, None).await, ["a", "b", "c", "d", "e"]);
    assert_eq!(listed(Some(vec![Status::Running]), None).await, ["a", "d"]);
    assert_eq!(
        listed(Some(vec![Status::Cancelled, Status::Completed]), None).await,
        ["b", "e"]
    );
    assert_eq!(listed(None, Some(&["alpha"])).await, ["a", "c"]);
    assert_eq!(
        listed(None, Some(&["gamma", "beta"])).await,
        ["b", "d", "e"]
    );
    assert_eq!(
        listed(Some(vec![Status::Running]), Some(&["beta"])).await,
        ["d"]
    );
    assert_eq!(
        listed(
            Some(vec![Status::Failed, Status::Cancelled]),
            Some(&["alpha", "gamma"])
        )
        .await,
        ["c", "e"]
    );
    assert_eq!(listed(None, Some(&["nope"])).await, Vec::<String>::new());
    assert_eq!(listed(Some(vec![]), None).await, Vec::<String>::new());
    assert_eq!(listed(None, Some(&[])).await, Vec::<String>::new());
    assert_eq!(
        listed(Some(vec![]), Some(&["alpha"])).await,
        Vec::<String>::new()
    );
    assert_eq!(
        listed(Some(vec![Status::Running]), Some(&[])).await,
        Vec::<String>::new()
    );
}

/// Deleting removes the handler with its run's events and its inbox, and nothing else.
/// `limit` keeps the first handlers of the listing; `after` starts after a handler (by
/// `started_at`, then `handler_id`), so that pages of any size, with or without filters,
/// list every handler once.
async fn handlers_are_paged(storage: &dyn Storage) {
    for (id, started_at, workflow) in [
        ("g", 3, "alpha"),
        ("b", 1, "beta"),
        ("f", 3, "beta"),
        ("a", 1, "alpha"),
        ("c", 2, "alpha"),
        ("e", 3, "alpha"),
        ("d", 2, "beta"),
    ] {
        let at = HandlerRecord {
            started_at,
            updated_at: started_at,
            workflow_name: workflow.into(),
            ..record(id, Some("srv/0"))
        };
        create(storage, at, LIVE).await;
    }
    for size in 1..=8 {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = storage
                .handlers(HandlerFilter {
                    after: after.clone(),
                    limit: Some(size),
                    ..HandlerFilter::default()
                })
                .await
                .unwrap();
            assert!(page.len() <= size);
            let Some(last) = page.last() else { break };
            after = Some((last.started_at, last.handler_id.clone()));
            seen.extend(page.iter().map(|r| r.handler_id.clone()));
        }
        assert_eq!(seen, ["a", "b", "c", "d", "e", "f", "g"], "pages of {size}");
    }
    let alpha_after_c = storage
        .handlers(HandlerFilter {
            workflow_name_in: Some(vec!["alpha".into()]),
            after: Some((2, "c".into())),
            limit: Some(10),
            ..HandlerFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&alpha_after_c), ["e", "g"]);
}

/// `expire` deletes ended handlers whose end is before the cutoff, the oldest first, at most
/// `limit` of them, with their events and inbox; running handlers and later ends stay.
async fn expire_deletes_runs_ended_before_the_cutoff_oldest_first(storage: &dyn Storage) {
    for (id, ended_at) in [("late", 300), ("first", 100), ("second", 200)] {
        create_held(storage, id, "srv/0").await;
        let run = format!("run-{id}");
        assert!(
            storage
                .append_events(id, &run, "srv/0", vec![event(0, id)])
                .await
                .unwrap()
        );
        end(storage, id, "srv/0", Status::Completed, ended_at).await;
        storage.push_inbox(id, sent(id)).await.unwrap();
    }
    create_held(storage, "running", "srv/0").await;

    assert_eq!(storage.expire(250, 1).await.unwrap(), 1);
    assert_eq!(storage.handler("first").await.unwrap(), None);
    assert_eq!(events(storage, "run-first").await, []);
    assert_eq!(storage.inbox("first").await.unwrap(), []);
    assert_eq!(storage.expire(250, 10).await.unwrap(), 1, "second only");
    assert_eq!(storage.handler("second").await.unwrap(), None);
    assert_eq!(storage.expire(250, 10).await.unwrap(), 0);
    assert_eq!(events(storage, "run-late").await, [event(0, "late")]);
    assert_eq!(storage.expire(1_000, 10).await.unwrap(), 1, "late");
    assert_eq!(
        ids(&storage.handlers(HandlerFilter::default()).await.unwrap()),
        ["running"]
    );
}

async fn delete_cascades_to_events_and_inbox(storage: &dyn Storage) {
    for id in ["h", "g"] {
        create_held(storage, id, "srv/0").await;
        let run = format!("run-{id}");
        let published = vec![event(0, id), event(1, id)];
        assert!(
            storage
                .append_events(id, &run, "srv/0", published)
                .await
                .unwrap()
        );
        storage.push_inbox(id, sent(id)).await.unwrap();
    }

    assert!(storage.delete_handler("h").await.unwrap());
    assert!(!storage.delete_handler("h").await.unwrap(), "already gone");
    assert!(!storage.delete_handler("nope").await.unwrap());
    assert_eq!(storage.handler("h").await.unwrap(), None);
    assert_eq!(storage.run_state("h").await.unwrap(), None);
    assert_eq!(events(storage, "run-h").await, []);
    assert_eq!(storage.last_sequence("run-h").await.unwrap(), None);
    assert_eq!(storage.inbox("h").await.unwrap(), []);
    assert_eq!(
        ids(&storage.handlers(HandlerFilter::default()).await.unwrap()),
        ["g"]
    );

    assert_eq!(
        events(storage, "run-g").await,
        [event(0, "g"), event(1, "g")]
    );
    assert_eq!(inbox_items(storage, "g").await, [sent("g")]);

    // A deleted running handler's id is free again.
    create_held(storage, "h", "srv/1").await;
}

/// The start event comes back as given; the snapshot is `None` until an update sets one,
/// then the latest.
async fn run_state_has_start_event_and_latest_snapshot(storage: &dyn Storage) {
    let start = r#"{"name":"Greet","data":{"name":"ünïcode \"quoted\"","n":[1,2,3]}}"#;
    let created = storage
        .create_handler(record("h", Some("srv/0")), start.into(), LIVE)
        .await
        .unwrap();
    assert_eq!(created, Created::Created);
    let state = |snapshot: Option<&str>| RunState {
        start_event: start.into(),
        snapshot: snapshot.map(str::to_owned),
    };
    assert_eq!(storage.run_state("h").await.unwrap(), Some(state(None)));

    update(storage, "h", "srv/0", RunUpdate::default(), 2_000).await;
    assert_eq!(storage.run_state("h").await.unwrap(), Some(state(None)));

    for snapshot in ["first", "second"] {
        let taken = RunUpdate {
            snapshot: Some(snapshot.into()),
            ..RunUpdate::default()
        };
        update(storage, "h", "srv/0", taken, 3_000).await;
        assert_eq!(
            storage.run_state("h").await.unwrap(),
            Some(state(Some(snapshot)))
        );
    }
}

// ---------------------------------------------------------------------------------------------
// append_events, events_after, last_sequence
// ---------------------------------------------------------------------------------------------

/// Events come back by sequence number, after `after` (-1: from the start), at most `limit`,
/// with their flags; each run has its own.
async fn events_are_ordered_and_paged(storage: &dyn Storage) {
    create_held(storage, "h", "srv/0").await;
    create_held(storage, "g", "srv/0").await;
    assert_eq!(storage.last_sequence("run-h").await.unwrap(), None);
    assert_eq!(storage.last_sequence("unknown").await.unwrap(), None);
    assert_eq!(events(storage, "run-h").await, []);

    let flagged = |sequence, internal, terminal| StoredEvent {
        internal,
        terminal,
        ..event(sequence, &format!(r#"{{"seq":{sequence}}}"#))
    };
    let all = vec![
        flagged(0, false, false),
        flagged(1, true, false),
        flagged(2, true, true),
        flagged(3, false, false),
        flagged(4, false, true),
        flagged(5, false, false),
        flagged(6, true, false),
    ];
    let append = async |events: Vec<StoredEvent>| {
        assert!(
            storage
                .append_events("h", "run-h", "srv/0", events)
                .await
                .unwrap()
        );
    };
    append(all[..3].to_vec()).await;
    append(vec![]).await;
    append(all[3..5].to_vec()).await;
    // Out of order within a batch.
    append(vec![all[6].clone(), all[5].clone()]).await;
    assert!(
        storage
            .append_events("g", "run-g", "srv/0", vec![event(0, "g0")])
            .await
            .unwrap()
    );

    assert_eq!(storage.events_after("run-h", -1, 100).await.unwrap(), all);
    assert_eq!(
        storage.events_after("run-h", -1, 2).await.unwrap(),
        all[..2]
    );
    assert_eq!(
        storage.events_after("run-h", 1, 2).await.unwrap(),
        all[2..4]
    );
    assert_eq!(
        storage.events_after("run-h", 4, 100).await.unwrap(),
        all[5..]
    );
    assert_eq!(storage.events_after("run-h", 6, 100).await.unwrap(), []);
    assert_eq!(storage.events_after("run-h", 100, 100).await.unwrap(), []);
    assert_eq!(storage.events_after("run-h", -1, 0).await.unwrap(), []);
    assert_eq!(storage.last_sequence("run-h").await.unwrap(), Some(6));

    // Paging through one at a time sees each event once.
    let (mut after, mut paged) = (-1, Vec::new());
    loop {
        let page = storage.events_after("run-h", after, 3).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.sequence as i64;
        paged.extend(page);
    }
    assert_eq!(paged, all);

    assert_eq!(events(storage, "run-g").await, [event(0, "g0")]);
    assert_eq!(storage.last_sequence("run-g").await.unwrap(), Some(0));
}

/// `limit` may be any `usize`, up to `usize::MAX` (in effect no limit): every event comes
/// back.
async fn events_after_takes_any_limit(storage: &dyn Storage) {
    create_held(storage, "h", "srv/0").await;
    let all = vec![event(0, "e0"), event(1, "e1"), event(2, "e2")];
    assert!(
        storage
            .append_events("h", "run-h", "srv/0", all.clone())
            .await
            .unwrap()
    );
    for limit in [3, i64::MAX as usize, i64::MAX as usize + 1, usize::MAX] {
        let after = async |after| {
            storage
                .events_after("run-h", after, limit)
                .await
                .unwrap_or_else(|e| panic!("limit {limit}: {e}"))
        };
        assert_eq!(after(-1).await, all, "limit {limit}");
        assert_eq!(after(0).await, all[1..], "limit {limit}");
    }
}

/// A sequence number already stored keeps its event: a second append of it (with another
/// envelope or flags, in a later batch or the same one) changes nothing and is not refused.
async fn append_keeps_a_stored_sequence(storage: &dyn Storage) {
    create_held(storage, "h", "srv/0").await;
    let first = event(0, "first");
    assert!(
        storage
            .append_events("h", "run-h", "srv/0", vec![first.clone()])
            .await
            .unwrap()
    );
    let replacement = StoredEvent {
        internal: true,
        terminal: true,
        ..event(0, "second")
    };
    let batch = vec![replacement, event(1, "one"), event(1, "one again")];
    assert!(
        storage
            .append_events("h", "run-h", "srv/0", batch)
            .await
            .unwrap()
    );
    assert_eq!(events(storage, "run-h").await, [first, event(1, "one")]);
    assert_eq!(storage.last_sequence("run-h").await.unwrap(), Some(1));
}

/// Only the lease's holder appends, and only while the lease holds: a refused append stores
/// nothing.
async fn append_needs_the_lease(storage: &dyn Storage) {
    create_held(storage, "h", "srv/0").await;
    let refused = async |handler: &str, owner: &str| {
        let appended = storage
            .append_events(handler, "run-h", owner, vec![event(0, owner)])
            .await
            .unwrap();
        assert!(!appended, "{owner} appends to {handler}");
        assert_eq!(events(storage, "run-h").await, []);
    };
    refused("h", "srv/1").await;
    refused("h", "other/0").await;
    refused("h", "srv").await;
    refused("nope", "srv/0").await;

    assert!(storage.claim("h", "srv/0", EXPIRED).await.unwrap());
    refused("h", "srv/0").await;
    storage.release("h", "srv/0").await.unwrap();
    refused("h", "srv/0").await;

    assert!(storage.claim("h", "srv/0", LIVE).await.unwrap());
    assert!(
        storage
            .append_events("h", "run-h", "srv/0", vec![event(0, "ok")])
            .await
            .unwrap()
    );
    assert_eq!(events(storage, "run-h").await, [event(0, "ok")]);
}

// ---------------------------------------------------------------------------------------------
// update_run
// ---------------------------------------------------------------------------------------------

/// Fields an update leaves `None` keep their values; `updated_at` is always the update's
/// `now_us`; a running status does not end the run.
async fn update_keeps_fields_left_unset(storage: &dyn Storage) {
    create_held(storage, "h", "srv/0").await;
    let created = get(storage, "h").await;
    let full = RunUpdate {
        status: Some(Status::Running),
        result: Some("result".into()),
        error: Some("error".into()),
        snapshot: Some("snap".into()),
        idle_since: Some(Some(1_500)),
        events: vec![],
        consumed: vec![],
        release: false,
    };
    update(storage, "h", "srv/0", full, 2_000).await;
    let expected = HandlerRecord {
        result: Some("result".into()),
        error: Some("error".into()),
        idle_since: Some(1_500),
        updated_at: 2_000,
        ..created
    };
    assert_eq!(get(storage, "h").await, expected);

    update(storage, "h", "srv/0", RunUpdate::default(), 3_000).await;
    let expected = HandlerRecord {
        updated_at: 3_000,
        ..expected
    };
    assert_eq!(get(storage, "h").await, expected);
    assert_eq!(
        storage.run_state("h").await.unwrap().unwrap().snapshot,
        Some("snap".into())
    );

    let some = RunUpdate {
        result: Some("result 2".into()),
        ..RunUpdate::default()
    };
    update(storage, "h", "srv/0", some, 4_000).await;
    assert_eq!(
        get(storage, "h").await,
        HandlerRecord {
            result: Some("result 2".into()),
            updated_at: 4_000,
            ..expected
        }
    );
}

/// A run's error is free text (a step's error message): any string comes back as written,
/// control characters included.
/// An update's events are appended to the handler's current run with the rest of it, as
/// `append_events` appends them (a stored sequence number is kept); a refused update appends
/// none.
async fn update_appends_its_events_in_the_same_write(storage: &dyn Storage) {
    create_held(storage, "h", "srv/0").await;
    let prompt = |events: Vec<StoredEvent>| RunUpdate {
        events,
        snapshot: Some("reflects the prompt".into()),
        ..RunUpdate::default()
    };
    let refused = storage
        .update_run("h", "srv/1", prompt(vec![event(0, "stale")]), 2_000)
        .await
        .unwrap();
    assert!(!refused);
    assert_eq!(events(storage, "run-h").await, []);
    assert!(
        storage
            .run_state("h")
            .await
            .unwrap()
            .unwrap()
            .snapshot
            .is_none()
    );

    let batch = vec![event(0, "step"), event(1, "prompt")];
    assert!(
        storage
            .update_run("h", "srv/0", prompt(batch.clone()), 2_000)
            .await
            .unwrap()
    );
    assert_eq!(events(storage, "run-h").await, batch);
    let state = storage.run_state("h").await.unwrap().unwrap();
    assert_eq!(state.snapshot.as_deref(), Some("reflects the prompt"));
    let again = vec![event(1, "prompt again"), event(2, "answer")];
    assert!(
        storage
            .update_run("h", "srv/0", prompt(again), 3_000)
            .await
            .unwrap()
    );
    assert_eq!(
        events(storage, "run-h").await,
        [batch[0].clone(), batch[1].clone(), event(2, "answer")]
    );
}

async fn update_stores_any_error_text(storage: &dyn Storage) {
    let id = "ünï/cödé ✓";
    create_held(storage, id, "srv/0").await;
    let error = "step \"ask\" failed: ünïcode ✓, tab\t, newline\n, nul\0 end";
    let failing = RunUpdate {
        status: Some(Status::Failed),
        error: Some(error.into()),
        ..RunUpdate::default()
    };
    let updated = storage
        .update_run(id, "srv/0", failing, 2_000)
        .await
        .unwrap_or_else(|e| panic!("storing the error: {e}"));
    assert!(updated);
    let failed = get(storage, id).await;
    // Postgres text cannot hold NUL: every store keeps U+FFFD in its place.
    let stored = error.replace('\0', "\u{FFFD}");
    assert_eq!(failed.error.as_deref(), Some(stored.as_str()));
    assert_eq!(failed.status, Status::Failed);
}

/// `idle_since`: `Some(Some(t))` sets it, `Some(None)` clears it, `None` keeps it.
async fn update_sets_and_clears_idle_since(storage: &dyn Storage) {
    create_held(storage, "h", "srv/0").await;
    let idle = async |idle_since: Option<Option<i64>>, expected: Option<i64>| {
        let change = RunUpdate {
            idle_since,
            ..RunUpdate::default()
        };
        update(storage, "h", "srv/0", change, 2_000).await;
        assert_eq!(
            get(storage, "h").await.idle_since,
            expected,
            "{idle_since:?}"
        );
    };
    idle(None, None).await;
    idle(Some(Some(10)), Some(10)).await;
    idle(None, Some(10)).await;
    idle(Some(Some(20)), Some(20)).await;
    idle(Some(None), None).await;
    idle(None, None).await;
}

/// A terminal status ends the run: `completed_at` is `now_us`, its inbox (no other) is
/// emptied, the lease stays unless released, and the handler is no longer held.
async fn update_to_a_terminal_status_ends_the_run(storage: &dyn Storage) {
    create_held(storage, "bystander", "srv/0").await;
    storage.push_inbox("bystander", sent("b")).await.unwrap();
    for (n, status) in [Status::Completed, Status::Failed, Status::Cancelled]
        .into_iter()
        .enumerate()
    {
        let id = status.as_str();
        create_held(storage, id, "srv/0").await;
        let created = get(storage, id).await;
        storage.push_inbox(id, sent("x")).await.unwrap();
        storage.push_inbox(id, InboxItem::Cancel).await.unwrap();
        let now = 5_000 + n as i64;
        let ending = RunUpdate {
            status: Some(status),
            result: Some(format!("{id} result")),
            ..RunUpdate::default()
        };
        update(storage, id, "srv/0", ending, now).await;
        assert_eq!(
            get(storage, id).await,
            HandlerRecord {
                status,
                result: Some(format!("{id} result")),
                updated_at: now,
                completed_at: Some(now),
                ..created
            }
        );
        assert_eq!(storage.inbox(id).await.unwrap(), []);
    }
    assert_eq!(inbox_items(storage, "bystander").await, [sent("b")]);
    assert_eq!(
        storage.held("srv").await.unwrap(),
        held_pairs(&[("bystander", "srv/0")])
    );

    // completed_at is set when the run ends, not by later updates.
    update(storage, "completed", "srv/0", RunUpdate::default(), 9_000).await;
    let completed = get(storage, "completed").await;
    assert_eq!(
        (completed.updated_at, completed.completed_at),
        (9_000, Some(5_000))
    );
}

/// `consumed` deletes exactly the inbox items with those ids.
async fn update_deletes_consumed_inbox_items(storage: &dyn Storage) {
    create_held(storage, "h", "srv/0").await;
    create_held(storage, "g", "srv/0").await;
    for name in ["one", "two", "three"] {
        storage.push_inbox("h", sent(name)).await.unwrap();
    }
    storage.push_inbox("g", sent("g")).await.unwrap();
    let inbox = storage.inbox("h").await.unwrap();
    let consuming = RunUpdate {
        consumed: vec![inbox[0].0, inbox[2].0],
        ..RunUpdate::default()
    };
    update(storage, "h", "srv/0", consuming, 2_000).await;
    assert_eq!(storage.inbox("h").await.unwrap(), [inbox[1].clone()]);
    assert_eq!(inbox_items(storage, "g").await, [sent("g")]);

    // Consuming ids that are already gone is fine.
    let again = RunUpdate {
        consumed: vec![inbox[0].0, inbox[1].0],
        ..RunUpdate::default()
    };
    update(storage, "h", "srv/0", again, 3_000).await;
    assert_eq!(storage.inbox("h").await.unwrap(), []);
    assert_eq!(inbox_items(storage, "g").await, [sent("g")]);
}

/// `release` gives the lease up with the update: no owner, no lease, no further writes.
async fn update_can_release_the_lease(storage: &dyn Storage) {
    create_held(storage, "h", "srv/0").await;
    let created = get(storage, "h").await;
    let release = RunUpdate {
        snapshot: Some("snap".into()),
        release: true,
        ..RunUpdate::default()
    };
    update(storage, "h", "srv/0", release, 2_000).await;
    assert_eq!(
        get(storage, "h").await,
        HandlerRecord {
            owner: None,
            lease_until: None,
            updated_at: 2_000,
            ..created
        }
    );
    assert_eq!(
        storage.run_state("h").await.unwrap().unwrap().snapshot,
        Some("snap".into())
    );
    assert!(
        !storage
            .update_run("h", "srv/0", RunUpdate::default(), 3_000)
            .await
            .unwrap()
    );
    assert_eq!(storage.held("srv").await.unwrap(), []);
    assert_eq!(storage.orphans().await.unwrap(), ["h"]);
}

/// An update from anyone but the holder of a live lease is refused and changes nothing:
/// not the row, the snapshot, the inbox nor the lease.
async fn update_needs_a_live_lease(storage: &dyn Storage) {
    create_held(storage, "h", "srv/0").await;
    storage.push_inbox("h", sent("kept")).await.unwrap();
    let inbox = storage.inbox("h").await.unwrap();
    let everything = RunUpdate {
        status: Some(Status::Completed),
        result: Some("result".into()),
        error: Some("error".into()),
        snapshot: Some("snap".into()),
        idle_since: Some(Some(10)),
        events: vec![event(0, "refused")],
        consumed: vec![inbox[0].0],
        release: true,
    };
    let refused = async |owner: &str| {
        let before = get(storage, "h").await;
        let updated = storage
            .update_run("h", owner, everything.clone(), 9_000)
            .await
            .unwrap();
        assert!(!updated, "{owner} updates h");
        assert_eq!(get(storage, "h").await, before);
        assert_eq!(
            storage.run_state("h").await.unwrap().unwrap().snapshot,
            None
        );
        assert_eq!(storage.inbox("h").await.unwrap(), inbox);
        assert_eq!(events(storage, "run-h").await, []);
    };
    refused("srv/1").await;
    refused("other/0").await;
    refused("srv").await;
    assert!(
        !storage
            .update_run("nope", "srv/0", everything.clone(), 9_000)
            .await
            .unwrap()
    );

    assert!(storage.claim("h", "srv/0", EXPIRED).await.unwrap());
    refused("srv/0").await;
}

// ---------------------------------------------------------------------------------------------
// claim, renew, release
// ---------------------------------------------------------------------------------------------

/// A running handler is claimed when no one holds it, when its lease ran out, or by its
/// holder again (for the new length); never from a live holder.
async fn claim_takes_free_or_expired_leases(storage: &dyn Storage) {
    create(storage, record("h", None), LIVE).await;
    assert!(storage.claim("h", "srv/0", LIVE).await.unwrap(), "free");
    let claimed = get(storage, "h").await;
    assert_eq!(claimed.owner.as_deref(), Some("srv/0"));
    assert!(claimed.lease_until.is_some());

    assert!(!storage.claim("h", "other/0", LIVE).await.unwrap(), "live");
    assert!(!storage.claim("h", "srv/1", LIVE).await.unwrap(), "live");
    assert_eq!(
        get(storage, "h").await,
        claimed,
        "a refused claim changes nothing"
    );

    assert!(
        storage.claim("h", "srv/0", EXPIRED).await.unwrap(),
        "same owner"
    );
    let expired = get(storage, "h").await;
    assert_eq!(expired.owner.as_deref(), Some("srv/0"));
    assert!(expired.lease_until < claimed.lease_until, "shortened");

    assert!(
        storage.claim("h", "other/0", LIVE).await.unwrap(),
        "expired"
    );
    let taken = get(storage, "h").await;
    assert_eq!(taken.owner.as_deref(), Some("other/0"));
    assert!(taken.lease_until > expired.lease_until);
    assert!(
        storage
            .update_run("h", "other/0", RunUpdate::default(), 2_000)
            .await
            .unwrap()
    );

    assert!(
        !storage.claim("nope", "srv/0", LIVE).await.unwrap(),
        "unknown"
    );
}

/// An ended handler cannot be claimed, not even by its last holder or once released.
async fn claim_refuses_an_ended_handler(storage: &dyn Storage) {
    for (n, status) in [Status::Completed, Status::Failed, Status::Cancelled]
        .into_iter()
        .enumerate()
    {
        let id = status.as_str();
        create_held(storage, id, "srv/0").await;
        end(storage, id, "srv/0", status, 2_000).await;
        let ended = get(storage, id).await;
        assert!(!storage.claim(id, "srv/0", LIVE).await.unwrap(), "{id}");
        assert!(!storage.claim(id, "other/0", LIVE).await.unwrap(), "{id}");
        assert_eq!(get(storage, id).await, ended);

        if n == 0 {
            storage.release(id, "srv/0").await.unwrap();
            assert!(!storage.claim(id, "other/0", LIVE).await.unwrap(), "{id}");
            assert_eq!(get(storage, id).await.owner, None);
        }
    }
}

/// `renew(server)` extends the lease of every `{server}/{n}`, expired or not, and no other.
async fn renew_extends_one_servers_leases(storage: &dyn Storage) {
    let leases = [
        ("a", Some("srv/0"), LIVE),
        ("b", Some("srv/1"), EXPIRED),
        ("c", Some("srv2/0"), EXPIRED),
        ("d", Some("sr/0"), EXPIRED),
        ("e", Some("other/0"), LIVE),
        ("f", Some("srv"), EXPIRED),
        ("g", None, LIVE),
    ];
    for (n, (id, owner, lease_ms)) in leases.into_iter().enumerate() {
        let at = HandlerRecord {
            started_at: n as i64,
            ..record(id, owner)
        };
        create(storage, at, lease_ms).await;
    }
    assert_eq!(storage.orphans().await.unwrap(), ["b", "c", "d", "f", "g"]);
    let before: Vec<HandlerRecord> = storage.handlers(HandlerFilter::default()).await.unwrap();

    storage.renew("srv", 2 * LIVE).await.unwrap();

    let after: Vec<HandlerRecord> = storage.handlers(HandlerFilter::default()).await.unwrap();
    for (old, new) in before.iter().zip(&after) {
        let id = old.handler_id.as_str();
        assert_eq!(new.owner, old.owner, "{id} keeps its owner");
        if matches!(id, "a" | "b") {
            assert!(new.lease_until > old.lease_until, "{id} renewed");
        } else {
            assert_eq!(new.lease_until, old.lease_until, "{id} untouched");
        }
    }
    assert_eq!(storage.orphans().await.unwrap(), ["c", "d", "f", "g"]);
    assert!(
        storage
            .append_events("b", "run-b", "srv/1", vec![event(0, "back")])
            .await
            .unwrap(),
        "an expired lease renewed is live again"
    );
    assert!(!storage.claim("b", "other/0", LIVE).await.unwrap());

    storage.renew("nobody", LIVE).await.unwrap();
    assert_eq!(
        storage.handlers(HandlerFilter::default()).await.unwrap(),
        after
    );
}

/// Only the lease's holder releases it; then the run is free.
async fn release_only_by_the_owner(storage: &dyn Storage) {
    create_held(storage, "h", "srv/0").await;
    let held = get(storage, "h").await;
    for other in ["srv/1", "other/0", "srv", "srv/00"] {
        storage.release("h", other).await.unwrap();
        assert_eq!(get(storage, "h").await, held, "{other} releases h");
    }
    storage.release("nope", "srv/0").await.unwrap();

    storage.release("h", "srv/0").await.unwrap();
    assert_eq!(
        get(storage, "h").await,
        HandlerRecord {
            owner: None,
            lease_until: None,
            ..held
        }
    );
    storage.release("h", "srv/0").await.unwrap();
    assert_eq!(storage.orphans().await.unwrap(), ["h"]);
    assert!(storage.claim("h", "other/0", LIVE).await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// push_inbox, inbox
// ---------------------------------------------------------------------------------------------

/// A run's inbox lists its items in the order they were pushed, ids ascending, and no other
/// handler's.
async fn inbox_order(storage: &dyn Storage) {
    assert_eq!(storage.inbox("h").await.unwrap(), []);
    create_held(storage, "h", "srv/0").await;
    create_held(storage, "g", "srv/0").await;
    for n in 0..5 {
        storage
            .push_inbox("h", sent(&format!("h{n}")))
            .await
            .unwrap();
        storage
            .push_inbox("g", sent(&format!("g{n}")))
            .await
            .unwrap();
    }
    let h = storage.inbox("h").await.unwrap();
    let g = storage.inbox("g").await.unwrap();
    let names = |n: &str| (0..5).map(|i| sent(&format!("{n}{i}"))).collect::<Vec<_>>();
    assert_eq!(
        h.iter().map(|(_, i)| i.clone()).collect::<Vec<_>>(),
        names("h")
    );
    assert_eq!(
        g.iter().map(|(_, i)| i.clone()).collect::<Vec<_>>(),
        names("g")
    );
    for inbox in [&h, &g] {
        assert!(inbox.windows(2).all(|w| w[0].0 < w[1].0), "ascending ids");
    }
    let mut all: Vec<i64> = h.iter().chain(&g).map(|(id, _)| *id).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 10, "ids are unique across handlers");
    assert!(h[0].0 < g[0].0 && g[0].0 < h[1].0, "ids follow the pushes");
}

/// Items come back as pushed: events with their name, data and step (or none), and cancels.
async fn inbox_items_round_trip(storage: &dyn Storage) {
    create_held(storage, "h", "srv/0").await;
    let items = vec![
        InboxItem::Event {
            name: "HumanResponseEvent".into(),
            data: json!({
                "response": "ünïcode \"quoted\"",
                "n": -12,
                "nested": {"list": [1, "two", null, true], "empty": {}},
            }),
            step: Some("answer".into()),
            child: None,
        },
        InboxItem::Event {
            name: "Ping".into(),
            data: json!(null),
            step: None,
            child: Some("Review/0/Approve/1".into()),
        },
        InboxItem::Event {
            name: "Text".into(),
            data: json!("just a string"),
            step: Some(String::new()),
            child: None,
        },
        InboxItem::Cancel,
    ];
    for item in &items {
        storage.push_inbox("h", item.clone()).await.unwrap();
    }
    assert_eq!(inbox_items(storage, "h").await, items);
}

// ---------------------------------------------------------------------------------------------
// held, with_inbox, orphans
// ---------------------------------------------------------------------------------------------

/// `held(server)`: the running handlers with a lease `{server}/{n}`, with the lease; not
/// ended ones, not other servers' whose names share a prefix.
async fn held_lists_one_servers_running_handlers(storage: &dyn Storage) {
    for (id, owner) in [
        ("a", "srv/0"),
        ("b", "srv/1"),
        ("c", "srv2/0"),
        ("d", "sr/0"),
        ("e", "other/0"),
        ("f", "srv"),
        ("ended", "srv/2"),
    ] {
        create_held(storage, id, owner).await;
    }
    create(storage, record("free", None), LIVE).await;
    end(storage, "ended", "srv/2", Status::Completed, 2_000).await;

    let held = async |server: &str| sorted(storage.held(server).await.unwrap());
    assert_eq!(
        held("srv").await,
        held_pairs(&[("a", "srv/0"), ("b", "srv/1")])
    );
    assert_eq!(held("srv2").await, held_pairs(&[("c", "srv2/0")]));
    assert_eq!(held("sr").await, held_pairs(&[("d", "sr/0")]));
    assert_eq!(held("other").await, held_pairs(&[("e", "other/0")]));
    assert_eq!(held("s").await, []);
    assert_eq!(held("nobody").await, []);
}

/// `with_inbox(server)`: the handlers held by `server` that have inbox items, each once.
async fn with_inbox_lists_held_handlers_with_items(storage: &dyn Storage) {
    for (id, owner) in [
        ("a", "srv/0"),
        ("b", "srv/1"),
        ("c", "srv/2"),
        ("d", "other/0"),
        ("e", "srv2/0"),
        ("f", "sr/0"),
    ] {
        create_held(storage, id, owner).await;
    }
    create(storage, record("free", None), LIVE).await;
    for id in ["a", "a", "b", "d", "e", "f", "free"] {
        storage.push_inbox(id, sent(id)).await.unwrap();
    }
    storage.push_inbox("b", InboxItem::Cancel).await.unwrap();

    let listed = async |server: &str| sorted(storage.with_inbox(server).await.unwrap());
    assert_eq!(listed("srv").await, ["a", "b"]);
    assert_eq!(listed("other").await, ["d"]);
    assert_eq!(listed("srv2").await, ["e"]);
    assert_eq!(listed("sr").await, ["f"]);
    assert_eq!(listed("nobody").await, Vec::<String>::new());

    let consumed = RunUpdate {
        consumed: storage
            .inbox("a")
            .await
            .unwrap()
            .iter()
            .map(|(id, _)| *id)
            .collect(),
        ..RunUpdate::default()
    };
    update(storage, "a", "srv/0", consumed, 2_000).await;
    assert_eq!(listed("srv").await, ["b"]);
}

/// `orphans()`: running handlers that no live lease holds and that have work (busy, or idle
/// with an inbox item), oldest first.
async fn orphans_are_unheld_runs_with_work(storage: &dyn Storage) {
    // (id, started_at, lease, idle, with an inbox item, listed)
    let cases = [
        ("free busy", 9, None, false, false, true),
        ("free idle", 1, None, true, false, false),
        ("free idle with inbox", 7, None, true, true, true),
        ("free busy with inbox", 2, None, false, true, true),
        ("expired busy", 3, Some(EXPIRED), false, false, true),
        ("expired idle", 8, Some(EXPIRED), true, false, false),
        (
            "expired idle with inbox",
            4,
            Some(EXPIRED),
            true,
            true,
            true,
        ),
        ("live busy", 5, Some(LIVE), false, false, false),
        ("live idle with inbox", 6, Some(LIVE), true, true, false),
    ];
    for (id, started_at, lease, idle, inbox, _) in cases {
        let at = HandlerRecord {
            started_at,
            ..record(id, Some("srv/0"))
        };
        create(storage, at, LIVE).await;
        let setup = RunUpdate {
            idle_since: idle.then_some(Some(1_500)),
            release: lease.is_none(),
            ..RunUpdate::default()
        };
        update(storage, id, "srv/0", setup, 2_000).await;
        if lease == Some(EXPIRED) {
            assert!(storage.claim(id, "srv/0", EXPIRED).await.unwrap());
        }
        if inbox {
            storage.push_inbox(id, sent(id)).await.unwrap();
        }
    }
    // Ended runs are never orphans, held or not, idle or not.
    for (n, status) in [Status::Completed, Status::Failed, Status::Cancelled]
        .into_iter()
        .enumerate()
    {
        let id = status.as_str();
        let at = HandlerRecord {
            started_at: n as i64,
            ..record(id, Some("srv/0"))
        };
        create(storage, at, LIVE).await;
        let ending = RunUpdate {
            status: Some(status),
            release: n != 0,
            ..RunUpdate::default()
        };
        update(storage, id, "srv/0", ending, 2_000).await;
        storage.push_inbox(id, sent("late")).await.unwrap();
    }

    let mut expected: Vec<(i64, &str)> = cases
        .iter()
        .filter(|case| case.5)
        .map(|case| (case.1, case.0))
        .collect();
    expected.sort();
    let expected: Vec<&str> = expected.into_iter().map(|(_, id)| id).collect();
    assert_eq!(storage.orphans().await.unwrap(), expected);
}

// ---------------------------------------------------------------------------------------------
// Lease names
// ---------------------------------------------------------------------------------------------

/// A lease is named per claim: a write under an older name is refused even when the same
/// server has claimed the run again, and an expired lease frees the run for anyone.
async fn lease_names_fence_stale_copies(storage: &dyn Storage) {
    create_held(storage, "h", "srv/0").await;
    assert!(
        storage
            .append_events("h", "run-h", "srv/0", vec![event(0, "{}")])
            .await
            .unwrap()
    );
    assert!(
        !storage.claim("h", "other/0", LIVE).await.unwrap(),
        "held, not expired"
    );

    // The server gives the run up and claims it again under a new name.
    storage.release("h", "srv/0").await.unwrap();
    assert!(storage.claim("h", "srv/1", LIVE).await.unwrap());
    let stale = RunUpdate {
        snapshot: Some("stale".into()),
        ..RunUpdate::default()
    };
    assert!(!storage.update_run("h", "srv/0", stale, 1).await.unwrap());
    assert!(
        !storage
            .append_events("h", "run-h", "srv/0", vec![event(1, "{}")])
            .await
            .unwrap()
    );
    assert!(
        storage
            .append_events("h", "run-h", "srv/1", vec![event(1, "{}")])
            .await
            .unwrap()
    );
    assert_eq!(
        storage.run_state("h").await.unwrap().unwrap().snapshot,
        None
    );

    // Renewal, listing and inbox queries go by server.
    storage.renew("srv", LIVE).await.unwrap();
    assert_eq!(
        storage.held("srv").await.unwrap(),
        held_pairs(&[("h", "srv/1")])
    );
    assert_eq!(
        storage.held("sr").await.unwrap(),
        [],
        "a prefix is not a server"
    );
    storage.push_inbox("h", InboxItem::Cancel).await.unwrap();
    assert_eq!(storage.with_inbox("srv").await.unwrap(), ["h"]);
    assert_eq!(
        storage.orphans().await.unwrap(),
        Vec::<String>::new(),
        "held"
    );

    // A lease that ran out is refused too, and the run is free for anyone.
    assert!(
        storage.claim("h", "srv/1", EXPIRED).await.unwrap(),
        "re-claimed, already expired"
    );
    let late = RunUpdate {
        snapshot: Some("late".into()),
        ..RunUpdate::default()
    };
    assert!(!storage.update_run("h", "srv/1", late, 2).await.unwrap());
    assert_eq!(storage.orphans().await.unwrap(), ["h"]);
    assert!(storage.claim("h", "other/1", LIVE).await.unwrap());
}

/// SQLite only: the database holds every answer people gave, so a new file (and the `-wal`
/// and `-shm` files SQLite makes beside it) is readable by its owner only.
#[cfg(unix)]
#[tokio::test]
async fn sqlite_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;

    let path =
        std::env::temp_dir().join(format!("wf-private-{}.db", uuid::Uuid::new_v4().simple()));
    let storage = SqliteStorage::open(&path).unwrap();
    storage.migrate().await.unwrap();
    create_held(&storage, "h", "srv/0").await;
    // No `-shm` here: a store holds its file alone, and SQLite keeps the WAL's index in
    // memory then. Were it made, it would be made like the `-wal`.
    for suffix in ["", "-wal"] {
        let file = format!("{}{suffix}", path.display());
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}: {mode:o}");
    }
    drop(storage);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
