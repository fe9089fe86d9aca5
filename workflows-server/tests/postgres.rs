//! Several servers on one Postgres database: runs handed over, leases that keep a run on one
//! server at a time, a dead server's runs taken over.
//!
//! These tests need the PostgreSQL server named by `DATABASE_URL` (`.ci/run` starts one).
//! Without it they say so and pass, except under CI (`CI` set), where they fail.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use serde_json::json;
use workflows::prelude::*;
use workflows_server::RunningServer;
use workflows_server::storage::{PostgresStorage, Storage};

async fn storage(url: &str) -> PostgresStorage {
    PostgresStorage::connect(url, 4).await.expect("connect")
}

#[tokio::test]
async fn the_api_works_on_postgres() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let (_server, client) = serve(storage(&url).await, config()).await;
    let id = start(&client, "number", json!({})).await;
    until_event(&client, &id, "InputRequiredEvent").await;
    assert_eq!(answer(&client, &id, "12").await.status, 200);
    let done = until_status(&client, &id, "completed").await;
    assert_eq!(done["result"]["value"]["result"], "12");
    let types: Vec<String> = all_events(&client, &id, false)
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["InputRequiredEvent", "StopEvent"]);

    let listed = client
        .get("/handlers?status=completed&workflow_name=number")
        .await
        .json();
    assert_eq!(listed["handlers"].as_array().unwrap().len(), 1);
    let failed = client.post("/workflows/broken/run", &json!({})).await;
    assert_eq!(failed.status, 500);
    let cancel_me = start(&client, "number", json!({})).await;
    let purged = client
        .send(
            "POST",
            &format!("/handlers/{cancel_me}/cancel?purge=true"),
            None,
        )
        .await;
    assert_eq!(purged.json(), json!({"status": "deleted"}));
    assert_eq!(
        client.get(&format!("/handlers/{cancel_me}")).await.status,
        404
    );
    let reused = client
        .post("/workflows/number/run-nowait", &json!({"handler_id": id}))
        .await;
    assert_eq!(
        reused.status, 200,
        "an ended handler's id can start a new run"
    );
}

#[tokio::test]
async fn a_run_started_on_one_server_is_answered_through_another() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let (a, client_a) = serve(storage(&url).await, config()).await;
    let (_b, client_b) = serve(storage(&url).await, config()).await;

    // A holds the run in memory: B stores the answer, A's poll delivers it.
    let held = start(&client_a, "number", json!({})).await;
    until_event(&client_b, &held, "InputRequiredEvent").await;
    let mut stream_b = client_b.stream(&format!("/events/{held}"), &[]).await;
    assert_eq!(answer(&client_b, &held, "from B").await.status, 200);
    let (_, stop) = parse_frame(&stream_b.next_frame().await.unwrap());
    assert_eq!(stop["value"]["result"], "from B");
    until_status(&client_b, &held, "completed").await;
    assert_eq!(settled(&a).await, 0, "A let the ended run go");

    // A parks its idle run: B brings it back from the snapshot and finishes it.
    let mut parking = config();
    parking.idle_release = Some(Duration::from_millis(50));
    let (c, client_c) = serve(storage(&url).await, parking).await;
    let parked = start(&client_c, "number", json!({})).await;
    until_event(&client_b, &parked, "InputRequiredEvent").await;
    assert_eq!(settled(&c).await, 0, "parked");
    assert_eq!(answer(&client_b, &parked, "resumed on B").await.status, 200);
    let done = until_status(&client_a, &parked, "completed").await;
    assert_eq!(done["result"]["value"]["result"], "resumed on B");
}

#[tokio::test]
async fn a_run_with_waiting_children_is_taken_over_by_another_server() {
    let Some(url) = fresh_database().await else {
        return;
    };
    // A parks the parent as soon as both children wait; B brings it back, with both children
    // inside its snapshot, when the answers come to B.
    let mut parking = config();
    parking.idle_release = Some(Duration::from_millis(50));
    let (a, client_a) = serve(storage(&url).await, parking).await;
    let (_b, client_b) = serve(storage(&url).await, config()).await;
    let id = start(&client_a, "pair", json!({})).await;
    let mut stream = api(&client_b).events(&id).stream();
    let mut asked = Vec::new();
    while asked.len() < 2 {
        let ev = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .expect("both children ask")
            .expect("the stream goes on")
            .expect("an event");
        if ev.type_name == "InputRequiredEvent" {
            asked.push(ev.child.clone().unwrap_or_default());
        }
    }
    drop(stream);
    assert_eq!(asked, ["Approval/0", "Approval/1"]);
    let parked = until(PATIENCE, || async { settled(&a).await == 0 }).await;
    assert!(parked, "A let the waiting run go");
    for (who, response) in [("bob", "no"), ("ann", "yes")] {
        let reply = client_b
            .post(
                &format!("/events/{id}"),
                &json!({"event": {"type": "HumanResponseEvent",
                    "value": {"response": response, "who": who}}}),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let done = until_status(&client_a, &id, "completed").await;
    assert_eq!(
        done["result"]["value"]["result"],
        json!(["ann: yes", "bob: no"])
    );
    assert_gapless(&client_b, &id).await;
}

#[tokio::test]
async fn two_servers_racing_for_a_run_never_both_execute_it() {
    let Some(url) = fresh_database().await else {
        return;
    };
    // Every run is parked as soon as it waits; then both servers are asked to answer it at
    // the same moment, and each tries to bring it back.
    let mut parking = config();
    parking.idle_release = Some(Duration::ZERO);
    let (a, client_a) = serve(storage(&url).await, parking.clone()).await;
    let (b, client_b) = serve(storage(&url).await, parking).await;
    let runs = 20;
    let mut ids = Vec::new();
    for i in 0..runs {
        let client = if i % 2 == 0 { &client_a } else { &client_b };
        ids.push(start(client, "tally", json!({})).await);
    }
    for id in &ids {
        until_event(&client_a, id, "InputRequiredEvent").await;
    }
    until(PATIENCE, || async {
        a.runs_in_memory() + b.runs_in_memory() == 0
    })
    .await;
    assert_eq!(a.runs_in_memory() + b.runs_in_memory(), 0, "all parked");

    let racers: Vec<_> = ids
        .iter()
        .enumerate()
        .flat_map(|(i, id)| {
            [client_a, client_b].into_iter().map(move |client| {
                let id = id.clone();
                tokio::spawn(async move {
                    let sent = answer(&client, &id, &format!("race-{i}")).await;
                    assert_eq!(sent.status, 200, "{}", sent.body);
                })
            })
        })
        .collect();
    for racer in racers {
        racer.await.unwrap();
    }
    for (i, id) in ids.iter().enumerate() {
        let done = until_status(&client_a, id, "completed").await;
        assert_eq!(done["result"]["value"]["result"], format!("race-{i}"));
        // Two answers reached the run, but it was executed once: its answer step ran once,
        // on the first answer only.
        assert_eq!(answers_seen(&format!("race-{i}")), 1, "run {id}");
    }
}

#[tokio::test]
async fn of_two_claims_at_once_exactly_one_wins() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let (_server, client) = serve(storage(&url).await, config()).await;
    let id = start(&client, "number", json!({})).await;
    until_event(&client, &id, "InputRequiredEvent").await;
    let (x, y) = (storage(&url).await, storage(&url).await);
    for round in 0..50 {
        // Free the run for a moment, as a lease that ran out would.
        let admin = storage(&url).await;
        let owner = admin.handler(&id).await.unwrap().unwrap().owner.unwrap();
        admin.release(&id, &owner).await.unwrap();
        let hour = 3_600_000;
        let (won_x, won_y) = tokio::join!(x.claim(&id, "x", hour), y.claim(&id, "y", hour));
        let (won_x, won_y) = (won_x.unwrap(), won_y.unwrap());
        assert!(won_x ^ won_y, "round {round}: x {won_x}, y {won_y}");
    }
}

#[test]
fn a_dead_servers_runs_are_taken_over_when_its_lease_runs_out() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(url) = runtime.block_on(fresh_database()) else {
        return;
    };
    // Server A, on a runtime of its own, holds a waiting run, then dies without a word.
    let doomed = tokio::runtime::Runtime::new().unwrap();
    let (addr, id): (SocketAddr, String) = doomed.block_on(async {
        let running = server(storage(&url).await, config()).start().await.unwrap();
        let client = Client::new(running.local_addr());
        let id = start(&client, "number", json!({})).await;
        until_event(&client, &id, "InputRequiredEvent").await;
        let addr = running.local_addr();
        std::mem::forget(running);
        (addr, id)
    });
    doomed.shutdown_background();
    let _ = addr;

    runtime.block_on(async {
        let (b, client_b) = serve(storage(&url).await, config()).await;
        assert_eq!(answer(&client_b, &id, "after A died").await.status, 200);
        // A's lease (2 s in the tests) has to run out first.
        let done = until_status(&client_b, &id, "completed").await;
        assert_eq!(done["result"]["value"]["result"], "after A died");
        assert_eq!(settled(&b).await, 0);
    });
}

#[tokio::test]
async fn the_server_reconnects_after_the_database_drops_its_connections() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let (_server, client) = serve(storage(&url).await, config()).await;
    let waiting = start(&client, "number", json!({})).await;
    until_event(&client, &waiting, "InputRequiredEvent").await;

    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(!killed.is_empty(), "the server's connections were cut");
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(answer(&client, &waiting, "still here").await.status, 200);
    let done = until_status(&client, &waiting, "completed").await;
    assert_eq!(done["result"]["value"]["result"], "still here");
}

/// Per tag: how many `Exclusive` steps run right now, and the most that ever ran at once.
static RUNNING: std::sync::Mutex<std::collections::BTreeMap<String, (usize, usize)>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn most_at_once(tag: &str) -> usize {
    RUNNING
        .lock()
        .unwrap()
        .get(tag)
        .map_or(0, |(_, most)| *most)
}

struct Running(String);

impl Running {
    fn enter(tag: String) -> Running {
        let mut all = RUNNING.lock().unwrap();
        let (now, most) = all.entry(tag.clone()).or_default();
        *now += 1;
        *most = (*most).max(*now);
        Running(tag)
    }
}

impl Drop for Running {
    // Also when the step is dropped half-way (its run cancelled).
    fn drop(&mut self) {
        RUNNING.lock().unwrap().get_mut(&self.0).unwrap().0 -= 1;
    }
}

/// How far `Exclusive` has got.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, Event)]
pub struct Progress {
    pub step: u32,
}

/// A long step that must never run in two places at once.
pub struct Exclusive;

#[workflow]
impl Exclusive {
    #[step]
    async fn work(&self, ctx: &Context, ev: StartEvent) -> StopEvent<&'static str> {
        let _running = Running::enter(ev.get("tag").unwrap_or_default());
        // Publishes as it goes, so that its server's pump is busy storing while it runs.
        for step in 0..15 {
            ctx.write_event_to_stream(Progress { step });
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        StopEvent::new("done")
    }
}

/// Server A (whose store `knobs` wraps) and server B, both serving `Exclusive` with a
/// 600 ms lease, on the database `url`; a run of it started on A.
async fn exclusive_pair(
    url: &str,
    knobs: &Knobs<PostgresStorage>,
    tag: &str,
) -> (RunningServer, RunningServer, String) {
    let mut settings = config();
    settings.lease_ttl = Duration::from_millis(600);
    let a = workflows_server::Server::new()
        .workflow("exclusive", Exclusive.runner())
        .storage(knobs.clone())
        .config(settings.clone())
        .start()
        .await
        .unwrap();
    let b = workflows_server::Server::new()
        .workflow("exclusive", Exclusive.runner())
        .storage(storage(url).await)
        .config(settings)
        .start()
        .await
        .unwrap();
    let id = start(
        &Client::new(a.local_addr()),
        "exclusive",
        json!({"tag": tag}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    (a, b, id)
}

#[tokio::test]
async fn a_server_whose_renewals_hang_or_whose_pump_is_stuck_lets_its_run_go_in_time() {
    let Some(url) = fresh_database().await else {
        return;
    };
    for (hang_renew, hang_appends) in [(true, false), (false, true)] {
        let tag = format!("hang-{hang_renew}");
        let knobs = Knobs::new(storage(&url).await);
        let (a, b, id) = exclusive_pair(&url, &knobs, &tag).await;
        // A loses the database: its renewals hang, or they fail while its run's next
        // event write hangs.
        use std::sync::atomic::Ordering::SeqCst;
        knobs.hang_renew.store(hang_renew, SeqCst);
        knobs.fail_renew.store(!hang_renew, SeqCst);
        knobs.hang_appends.store(hang_appends, SeqCst);
        let done = until_status(&Client::new(b.local_addr()), &id, "completed").await;
        assert_eq!(done["result"]["value"]["result"], "done");
        assert_eq!(
            most_at_once(&tag),
            1,
            "{tag}: the step ran on two servers at once"
        );
        assert_eq!(settled(&a).await, 0, "A let its run go");
    }
}

#[tokio::test]
async fn a_server_that_cannot_renew_its_leases_stops_its_runs_before_another_takes_them() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let knobs = Knobs::new(storage(&url).await);
    let (a, b, id) = exclusive_pair(&url, &knobs, "fail").await;
    // A loses the database for a while: its renewals fail, and B takes the run over.
    knobs
        .fail_renew
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let done = until_status(&Client::new(b.local_addr()), &id, "completed").await;
    assert_eq!(done["result"]["value"]["result"], "done");
    assert_eq!(
        most_at_once("fail"),
        1,
        "the step ran on two servers at once"
    );
    assert_eq!(settled(&a).await, 0, "A let its run go");
}

/// Waits in its step for three votes, one after another.
pub struct Triple;

#[workflow]
impl Triple {
    #[step]
    async fn ask(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<u32>, WaitError> {
        let mut yes = 0;
        for id in ["first", "second", "third"] {
            let vote = ctx
                .wait_for_event(
                    WaitFor::<Vote>::new()
                        .id(id)
                        .prompt(InputRequiredEvent::new(id)),
                )
                .await?;
            yes += u32::from(vote.approve);
        }
        Ok(StopEvent::new(yes))
    }
}

/// The answers the run's stored snapshot holds (waiter ids).
async fn stored_answers(store: &PostgresStorage, id: &str) -> Vec<String> {
    let text = store
        .run_state(id)
        .await
        .unwrap()
        .unwrap()
        .snapshot
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["invocations"][0]["resolved"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

async fn until_answers(store: &PostgresStorage, id: &str, n: usize) -> Vec<String> {
    until(PATIENCE, || async {
        stored_answers(store, id).await.len() >= n
    })
    .await;
    stored_answers(store, id).await
}

fn vote(approve: bool) -> serde_json::Value {
    json!({"event": {"type": "Vote", "value": {"approve": approve}}})
}

#[tokio::test]
async fn a_late_write_of_a_copy_given_up_does_not_overwrite_the_run_taken_back() {
    use std::sync::atomic::Ordering::SeqCst;
    let Some(url) = fresh_database().await else {
        return;
    };
    let knobs = Knobs::new(storage(&url).await);
    let mut settings = config();
    settings.lease_ttl = Duration::from_millis(600);
    let a = workflows_server::Server::new()
        .workflow("triple", Triple.runner())
        .storage(knobs.clone())
        .config(settings)
        .start()
        .await
        .unwrap();
    let client = Client::new(a.local_addr());
    let id = start(&client, "triple", json!({})).await;
    let store = storage(&url).await;
    until_event(&client, &id, "InputRequiredEvent").await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Storing the snapshot with the first vote is slow, and renewals hang meanwhile: the
    // server gives the run up while that write is under way.
    knobs.update_delay_ms.store(3000, SeqCst);
    knobs.hang_renew.store(true, SeqCst);
    assert_eq!(
        client
            .post(&format!("/events/{id}"), &vote(true))
            .await
            .status,
        200
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(a.runs_in_memory(), 0, "the run was given up");

    // The store answers again: the server takes the run back, with both votes.
    knobs.update_delay_ms.store(0, SeqCst);
    knobs.hang_renew.store(false, SeqCst);
    assert_eq!(until_answers(&store, &id, 1).await, ["first"]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        client
            .post(&format!("/events/{id}"), &vote(false))
            .await
            .status,
        200
    );
    assert_eq!(until_answers(&store, &id, 2).await.len(), 2);

    // The given-up copy's write lands now, and must change nothing.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(store.inbox(&id).await.unwrap().is_empty());
    assert_eq!(
        stored_answers(&store, &id).await.len(),
        2,
        "an accepted vote is no longer in the stored snapshot"
    );
}

#[tokio::test]
async fn a_store_that_is_slow_but_steady_keeps_the_runs() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let knobs = Knobs::new(storage(&url).await);
    // Renewals take over a quarter of the lease, well within it.
    knobs
        .renew_delay_ms
        .store(170, std::sync::atomic::Ordering::SeqCst);
    let mut settings = config();
    settings.lease_ttl = Duration::from_millis(600);
    let (_a, client) = serve(knobs.clone(), settings).await;
    let id = start(&client, "slow", json!({"tag": "steady", "ms": 1500})).await;
    let done = until_status(&client, &id, "completed").await;
    assert_eq!(done["result"]["value"]["result"], 1500);
    assert_eq!(slow_starts("steady"), 1, "the run was never given up");
}

/// Asks a server's `/health` every 20 ms until told to stop, each answer a `200`; the
/// slowest answer then.
struct HealthProbe {
    probing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Duration>,
}

impl HealthProbe {
    fn start(client: Client) -> Self {
        let probing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let task = tokio::spawn({
            let probing = probing.clone();
            async move {
                let mut slowest = Duration::ZERO;
                while probing.load(std::sync::atomic::Ordering::SeqCst) {
                    let asked = std::time::Instant::now();
                    let health = client.get("/health").await;
                    assert_eq!(health.status, 200, "{}", health.body);
                    slowest = slowest.max(asked.elapsed());
                    // The pace of the probe, not a wait for anything.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                slowest
            }
        });
        HealthProbe { probing, task }
    }

    async fn slowest(self) -> Duration {
        self.probing
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

/// A server dies while another session (a server frozen mid-write, an operator's open
/// transaction) holds one of its runs' rows locked: the survivor takes over every other run
/// at once, stays healthy, and takes the locked one once the lock goes.
#[test]
fn a_row_another_session_holds_locked_does_not_hold_up_the_takeover_of_the_others() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some(url) = runtime.block_on(fresh_database()) else {
        return;
    };
    let lease = Duration::from_secs(1);
    let quick = workflows_server::Config {
        lease_ttl: lease,
        ..config()
    };
    // Server A, on a runtime of its own, holds ten waiting runs.
    let doomed = tokio::runtime::Runtime::new().unwrap();
    let ids: Vec<String> = doomed.block_on(async {
        let running = server(storage(&url).await, quick.clone())
            .start()
            .await
            .unwrap();
        let client = Client::new(running.local_addr());
        let mut ids = Vec::new();
        for _ in 0..10 {
            ids.push(start(&client, "number", json!({})).await);
        }
        for id in &ids {
            until_event(&client, id, "InputRequiredEvent").await;
        }
        std::mem::forget(running);
        ids
    });

    runtime.block_on(async {
        let (_b, client_b) = serve(storage(&url).await, quick).await;
        let (foreign, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        foreign.batch_execute("BEGIN").await.unwrap();
        let locked = foreign
            .query(
                "SELECT handler_id FROM wf_handlers WHERE handler_id = $1 FOR UPDATE",
                &[&ids[0]],
            )
            .await
            .unwrap();
        assert_eq!(locked.len(), 1);

        // B's health, looked at all along.
        let probe = HealthProbe::start(client_b);

        // A dies without a word.
        doomed.shutdown_background();
        let killed = std::time::Instant::now();
        for (i, id) in ids.iter().enumerate().skip(1) {
            assert_eq!(answer(&client_b, id, &format!("{i}")).await.status, 200);
        }
        for (i, id) in ids.iter().enumerate().skip(1) {
            let done = until_status(&client_b, id, "completed").await;
            assert_eq!(done["result"]["value"]["result"], format!("{i}"));
        }
        let took = killed.elapsed();
        let slowest = probe.slowest().await;
        eprintln!("9 runs taken over in {took:?}; slowest /health {slowest:?}");
        assert!(
            took < lease * 3 + Duration::from_secs(2),
            "the takeover waited on the locked row: {took:?}"
        );
        assert!(
            slowest < Duration::from_secs(1),
            "/health waited: {slowest:?}"
        );

        // The lock goes: the last run is taken over too.
        let record = client_b.get(&format!("/handlers/{}", ids[0])).await.json();
        assert_eq!(record["status"], "running");
        foreign.batch_execute("ROLLBACK").await.unwrap();
        assert_eq!(answer(&client_b, &ids[0], "last").await.status, 200);
        let done = until_status(&client_b, &ids[0], "completed").await;
        assert_eq!(done["result"]["value"]["result"], "last");
    });
}

/// Every session of the server carries the timeouts that keep one stuck statement or one
/// frozen server from holding the others up, and syncs its commits.
#[tokio::test]
async fn the_servers_sessions_time_out_stuck_statements_and_frozen_transactions() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let store = PostgresStorage::connect(&url, 1).await.unwrap();
    let settings = store.session_settings().await.unwrap();
    let get = |name: &str| {
        settings
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{name} not shown"))
    };
    assert_eq!(get("synchronous_commit"), "on");
    assert_eq!(get("statement_timeout"), "10s");
    assert_eq!(get("lock_timeout"), "2s");
    assert_eq!(get("idle_in_transaction_session_timeout"), "10s");
    assert_eq!(get("tcp_keepalives_idle"), "10");
    assert_eq!(get("tcp_user_timeout"), "25000");

    let relaxed = workflows_server::storage::PostgresOptions {
        durability: workflows_server::storage::Durability::ProcessCrash,
        idle_in_transaction_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let store = PostgresStorage::connect_with(&url, &relaxed).await.unwrap();
    let settings = store.session_settings().await.unwrap();
    assert!(settings.contains(&("synchronous_commit".into(), "off".into())));
    assert!(settings.contains(&("idle_in_transaction_session_timeout".into(), "300ms".into())));
}

/// Readers on one server of a run another server executes: idle, they read nothing; they
/// are woken by the database's notification when the run stores events (well before their
/// fallback look, ten seconds on); and when the connection that listens is cut, the server
/// listens again on a new one and its readers are woken as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_of_a_run_held_elsewhere_are_woken_by_the_database_not_by_polling() {
    const READERS: usize = 20;
    let Some(url) = fresh_database().await else {
        return;
    };
    let (_a, client_a) = serve(storage(&url).await, config()).await;
    let knobs = Knobs::new(storage(&url).await);
    let (_b, client_b) = serve(knobs.clone(), config()).await;
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let listeners = || async {
        admin
            .query(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                 AND query = 'LISTEN workflows_changes'",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, i32>(0))
            .collect::<Vec<i32>>()
    };
    assert!(
        until(PATIENCE, || async { listeners().await.len() == 2 }).await,
        "each server listens"
    );

    for round in ["listening", "listening again after a cut"] {
        let id = start(&client_a, "number", json!({})).await;
        until_event(&client_a, &id, "InputRequiredEvent").await;
        let mut readers = Vec::new();
        for _ in 0..READERS {
            let mut stream = client_b
                .stream(&format!("/events/{id}?sse=false&after_sequence=-1"), &[])
                .await;
            let first = stream.next_piece(b"\n").await.expect("the prompt");
            assert!(first.contains("InputRequiredEvent"), "{first}");
            readers.push(stream);
        }
        // Elapsed time is the behaviour here: over 25 poll intervals, no reads.
        let before = knobs.event_reads.load(std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(config().poll_interval * 25).await;
        let idle = knobs.event_reads.load(std::sync::atomic::Ordering::SeqCst) - before;
        assert_eq!(idle, 0, "{round}: idle readers read the store");

        assert_eq!(answer(&client_a, &id, round).await.status, 200);
        let woken = tokio::time::timeout(Duration::from_secs(5), async {
            for stream in readers {
                let rest = stream.finish().await;
                assert!(rest.body.contains("StopEvent"), "{}", rest.body);
            }
        });
        woken
            .await
            .unwrap_or_else(|_| panic!("{round}: the readers were not woken"));

        // Cut both servers' listening connections; each listens again on a new one.
        let cut = listeners().await;
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid",
                &[&cut],
            )
            .await
            .unwrap();
        let again = until(PATIENCE, || async {
            let now = listeners().await;
            now.len() == 2 && now.iter().all(|pid| !cut.contains(pid))
        });
        assert!(again.await, "the servers listen again");
    }
}

/// A server frozen (SIGSTOP) with runs in hand: its runs go to the others within a few lease
/// lengths, the healthy server answers `/health` at once throughout, and when the frozen one
/// thaws it writes nothing more of the runs it lost (each has one prompt and one end, with
/// the answer given through the other server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_loses_its_runs_to_the_others_and_thawed_writes_nothing_of_them() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let lease = Duration::from_secs(1);
    let frozen = Binary::spawn(&["--postgres", &url, "--lease-ttl", "1s"]);
    let client_a = Client::new(frozen.addr);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(start(&client_a, "number", json!({})).await);
    }
    for id in &ids {
        until_event(&client_a, id, "InputRequiredEvent").await;
    }
    // Another process of the same binary: the same workflows.
    let healthy = Binary::spawn(&["--postgres", &url, "--lease-ttl", "1s"]);
    let client_b = Client::new(healthy.addr);

    let probe = HealthProbe::start(client_b);

    frozen.signal("STOP");
    let froze = std::time::Instant::now();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(answer(&client_b, id, &format!("{i}")).await.status, 200);
    }
    for (i, id) in ids.iter().enumerate() {
        let done = until_status(&client_b, id, "completed").await;
        assert_eq!(done["result"]["value"]["result"], format!("{i}"));
    }
    let took = froze.elapsed();
    let slowest = probe.slowest().await;
    eprintln!("5 runs of a frozen server taken over in {took:?}; slowest /health {slowest:?}");
    assert!(took < lease * 3 + Duration::from_secs(2), "{took:?}");
    assert!(
        slowest < Duration::from_secs(1),
        "/health waited: {slowest:?}"
    );

    // Thawed, the server finds its leases gone and lets the runs be.
    frozen.signal("CONT");
    let thawed = until(PATIENCE, || async {
        client_a.get("/health").await.status == 200
    });
    assert!(thawed.await, "the thawed server answers again");
    // Long enough for its renewal to fail and for anything it would write to be written.
    tokio::time::sleep(lease * 2).await;
    for (i, id) in ids.iter().enumerate() {
        let record = client_b.get(&format!("/handlers/{id}")).await.json();
        assert_eq!(record["status"], "completed");
        assert_eq!(record["result"]["value"]["result"], format!("{i}"));
        let types: Vec<String> = all_events(&client_b, id, false)
            .await
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(types, ["InputRequiredEvent", "StopEvent"], "{id}");
        assert_gapless(&client_b, id).await;
    }
}
