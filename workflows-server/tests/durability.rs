//! Runs outlive their server: parking idle runs, clean restarts, crashes (a runtime dropped
//! mid-step), and a `kill -9` of the server binary.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use serde_json::json;
use workflows::prelude::*;
use workflows_server::storage::{SqliteStorage, Status, Storage};

/// A fresh database file path under the system's temporary directory.
fn db_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "workflows-server-{name}-{}-{}.db",
        std::process::id(),
        uuid_like()
    ));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[tokio::test]
async fn an_idle_run_leaves_memory_and_comes_back_when_answered() {
    let mut settings = config();
    settings.idle_release = Some(Duration::from_millis(100));
    let (server, client) = serve(SqliteStorage::in_memory().unwrap(), settings).await;
    let id = start(&client, "number", json!({})).await;
    until_event(&client, &id, "InputRequiredEvent").await;
    assert_eq!(settled(&server).await, 0, "the waiting run was parked");
    assert_eq!(
        client.get(&format!("/handlers/{id}")).await.json()["status"],
        "running"
    );

    // A stream opened while it is parked follows it when it comes back.
    let mut stream = client.stream(&format!("/events/{id}"), &[]).await;
    assert_eq!(answer(&client, &id, "11").await.status, 200);
    let (_, stop) = parse_frame(&stream.next_frame().await.unwrap());
    assert_eq!(stop["value"]["result"], "11");
    let done = until_status(&client, &id, "completed").await;
    assert_eq!(done["result"]["value"]["result"], "11");
}

#[tokio::test]
async fn a_clean_restart_keeps_waiting_runs_waiting() {
    let path = db_path("restart");
    let (first, client) = serve(SqliteStorage::open(&path).unwrap(), config()).await;
    let id = start(&client, "number", json!({})).await;
    until_event(&client, &id, "InputRequiredEvent").await;
    first.shutdown().await.unwrap();

    let (second, client) = serve(SqliteStorage::open(&path).unwrap(), config()).await;
    assert_eq!(
        client.get(&format!("/handlers/{id}")).await.json()["status"],
        "running"
    );
    assert_eq!(answer(&client, &id, "5").await.status, 200);
    let done = until_status(&client, &id, "completed").await;
    assert_eq!(done["result"]["value"]["result"], "5");
    let types: Vec<String> = all_events(&client, &id, false)
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        ["InputRequiredEvent", "StopEvent"],
        "one prompt, one result"
    );
    assert_gapless(&client, &id).await;
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn child_runs_waiting_for_people_survive_a_restart() {
    let path = db_path("children-restart");
    let serve_pair = |path: PathBuf| async move {
        let running = workflows_server::Server::new()
            .workflow("pair", Pair.runner())
            .storage(SqliteStorage::open(&path).unwrap())
            .config(config())
            .start()
            .await
            .unwrap();
        let client = Client::new(running.local_addr());
        (running, client)
    };
    let (first, client) = serve_pair(path.clone()).await;
    let id = start(&client, "pair", json!({})).await;
    let mut stream = api(&client).events(&id).stream();
    let mut asked = 0;
    while asked < 2 {
        let ev = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .expect("both children ask")
            .expect("the stream goes on")
            .expect("an event");
        asked += usize::from(ev.type_name == "InputRequiredEvent");
    }
    drop(stream);
    first.shutdown().await.unwrap();

    // The next server resumes the parent from its snapshot, with both children inside.
    let (second, client) = serve_pair(path).await;
    for (who, response) in [("bob", "no"), ("ann", "yes")] {
        let reply = client
            .post(
                &format!("/events/{id}"),
                &json!({"event": {"type": "HumanResponseEvent",
                    "value": {"response": response, "who": who}}}),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let done = until_status(&client, &id, "completed").await;
    assert_eq!(
        done["result"]["value"]["result"],
        json!(["ann: yes", "bob: no"])
    );
    let events = all_events(&client, &id, false).await;
    let prompts: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "InputRequiredEvent")
        .map(|e| e["child"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        prompts,
        ["Approval/0", "Approval/1"],
        "each child asked once"
    );
    assert_gapless(&client, &id).await;
    second.shutdown().await.unwrap();
}

/// Starts a server on the SQLite file at `path` on its own runtime in its own thread;
/// dropping the runtime kills it abruptly, as a crash would (no snapshot, no lease given up).
fn server_on_own_runtime(path: PathBuf) -> (tokio::runtime::Runtime, SocketAddr) {
    doomed_server(SqliteStorage::open(&path).unwrap())
}

/// Starts a server on `storage` on its own runtime in its own thread; dropping the runtime
/// (or `shutdown_background`) kills it abruptly, as a crash would.
fn doomed_server(storage: impl Storage) -> (tokio::runtime::Runtime, SocketAddr) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let running = runtime.block_on(async { server(storage, config()).start().await.unwrap() });
    let addr = running.local_addr();
    // Kept by a task of the runtime, so that stopping the runtime drops it without a clean
    // shutdown (no snapshot, no lease given up), as a crash would, and closes its store
    // (SQLite lets one server at a time hold a file).
    runtime.spawn(async move {
        let _running = running;
        std::future::pending::<()>().await
    });
    (runtime, addr)
}

#[test]
fn a_run_in_the_middle_of_a_step_when_the_server_dies_runs_again_after_restart() {
    let path = db_path("crash");
    let (doomed, addr) = server_on_own_runtime(path.clone());
    let client = Client::new(addr);
    let id = doomed.block_on(async {
        let id = start(&client, "slow", json!({"ms": 60_000, "tag": "crash"})).await;
        until(PATIENCE, || async { slow_starts("crash") > 0 }).await;
        id
    });
    assert_eq!(slow_starts("crash"), 1, "the step started");
    doomed.shutdown_background(); // the crash: the step never finishes

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (_server, client) = serve(SqliteStorage::open(&path).unwrap(), config()).await;
        let record = client.get(&format!("/handlers/{id}")).await.json();
        assert_eq!(record["status"], "running");
        // The run restarts from its start event (it had not waited yet, so had no snapshot);
        // the 60 s step would take a minute: cancel it once it has started again, which
        // shows it was resumed, then check the run ended cancelled.
        until(PATIENCE, || async { slow_starts("crash") > 1 }).await;
        assert_eq!(slow_starts("crash"), 2, "the step ran again");
        let cancelled = client
            .send("POST", &format!("/handlers/{id}/cancel"), None)
            .await;
        assert_eq!(cancelled.json(), json!({"status": "cancelled"}));
        until_status(&client, &id, "cancelled").await;
    });
}

/// A server dies after it stored a run's prompt while the run's later snapshots lag (they
/// hang): the server that takes the run over resumes it past the prompt, so its readers see
/// the prompt once, not twice. (The prompt is stored in one write with a snapshot that
/// reflects it.)
#[test]
fn a_prompt_stored_before_a_crash_is_not_published_again_by_the_next_server() {
    let path = db_path("prompt-once");
    let knobs = Knobs::new(SqliteStorage::open(&path).unwrap());
    knobs
        .hang_bare_updates
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (doomed, addr) = doomed_server(knobs);
    let client = Client::new(addr);
    let id = doomed.block_on(async {
        let id = start(&client, "ballot", json!({})).await;
        until_event(&client, &id, "InputRequiredEvent").await;
        id
    });
    doomed.shutdown_background();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (_server, client) = serve(SqliteStorage::open(&path).unwrap(), config()).await;
        let vote = client
            .post(
                &format!("/events/{id}"),
                &json!({"event": {"type": "Vote", "value": {"approve": true}}}),
            )
            .await;
        assert_eq!(vote.status, 200, "{}", vote.body);
        until_status(&client, &id, "completed").await;
        let prompts = all_events(&client, &id, false)
            .await
            .iter()
            .filter(|e| e["type"] == "InputRequiredEvent")
            .count();
        assert_eq!(prompts, 1, "the prompt was published again");
        assert_gapless(&client, &id).await;
    });
}

/// The writes one human-in-the-loop run makes, each a commit that is synced by default, so a
/// person's round trip waits about this many syncs: the start; the prompt with the snapshot
/// that reflects it (the run going idle right after stores nothing more, its state being the
/// same); the answer in the inbox; the result with the last events, which also deletes the
/// delivered answer (its delivery needs no write of its own when the run ends right away).
#[tokio::test]
async fn a_human_in_the_loop_run_makes_four_writes() {
    let knobs = Knobs::new(SqliteStorage::in_memory().unwrap());
    let (server, client) = serve(knobs.clone(), config()).await;
    let writes = || knobs.writes.load(std::sync::atomic::Ordering::SeqCst);
    let id = start(&client, "number", json!({})).await;
    until_event(&client, &id, "InputRequiredEvent").await;
    until_stored_waiting(&knobs.inner, &id).await;
    assert_eq!(writes(), 2, "the start, then the prompt with its snapshot");
    assert_eq!(answer(&client, &id, "5").await.status, 200);
    until_status(&client, &id, "completed").await;
    assert_eq!(settled(&server).await, 0);
    assert_eq!(writes(), 4, "the answer, then the result");
    assert!(knobs.inner.inbox(&id).await.unwrap().is_empty());
}

/// Waits until the store records run `id` as waiting (idle), its snapshot with it.
async fn until_stored_waiting(storage: &impl Storage, id: &str) {
    let idle = until(PATIENCE, || async {
        let record = storage.handler(id).await.unwrap().unwrap();
        record.idle_since.is_some()
    });
    assert!(idle.await, "the waiting run's state is stored");
}

/// A run that keeps working after its answer is delivered has the delivery recorded (a
/// snapshot that reflects it, the answer deleted from its inbox) within a moment, not only
/// when the work ends.
#[tokio::test]
async fn an_answer_to_a_run_that_keeps_working_is_recorded_while_it_works() {
    let knobs = Knobs::new(SqliteStorage::in_memory().unwrap());
    let (_server, client) = serve(knobs.clone(), config()).await;
    let id = start(&client, "ponder", json!({})).await;
    until_event(&client, &id, "InputRequiredEvent").await;
    assert_eq!(answer(&client, &id, "3000").await.status, 200);
    let recorded = until(Duration::from_secs(2), || async {
        knobs.inner.inbox(&id).await.unwrap().is_empty()
    });
    assert!(recorded.await, "the delivered answer is still in the inbox");
    let record = knobs.inner.handler(&id).await.unwrap().unwrap();
    assert_eq!(
        record.status,
        Status::Running,
        "recorded while the step works"
    );
    assert_eq!(record.idle_since, None, "a run with work is not idle");
    until_status(&client, &id, "completed").await;
}

/// A server dies after delivering an answer but before any write recorded the delivery
/// (that write hangs): the answer is still in the stored inbox, so the server that takes the
/// run over delivers it again and the run ends with it.
#[test]
fn an_answer_delivered_but_not_yet_recorded_survives_a_crash() {
    let path = db_path("delivered-unrecorded");
    let knobs = Knobs::new(SqliteStorage::open(&path).unwrap());
    let (doomed, addr) = doomed_server(knobs.clone());
    let client = Client::new(addr);
    let id = doomed.block_on(async {
        let id = start(&client, "ponder", json!({})).await;
        until_event(&client, &id, "InputRequiredEvent").await;
        until_stored_waiting(&knobs.inner, &id).await;
        // From now on a snapshot stored on its own never lands.
        knobs
            .hang_bare_updates
            .store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(answer(&client, &id, "1500").await.status, 200);
        until(PATIENCE, || async { ponderings("1500") == 1 }).await;
        // The write that would record the delivery was made, and hangs.
        let hung = until(PATIENCE, || async {
            knobs
                .hung_deliveries
                .load(std::sync::atomic::Ordering::SeqCst)
                > 0
        });
        assert!(hung.await, "the delivery is recorded by a later write");
        assert_eq!(knobs.inner.inbox(&id).await.unwrap().len(), 1);
        id
    });
    doomed.shutdown_background();
    drop(knobs);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (_server, client) = serve(SqliteStorage::open(&path).unwrap(), config()).await;
        let done = until_status(&client, &id, "completed").await;
        assert_eq!(done["result"]["value"]["result"], "1500");
        assert_eq!(ponderings("1500"), 2, "delivered again, from the inbox");
        let prompts = all_events(&client, &id, false)
            .await
            .iter()
            .filter(|e| e["type"] == "InputRequiredEvent")
            .count();
        assert_eq!(prompts, 1, "the prompt was published again");
        assert_gapless(&client, &id).await;
    });
}

#[test]
fn a_short_step_interrupted_by_a_crash_completes_after_restart() {
    let path = db_path("crash-short");
    let (doomed, addr) = server_on_own_runtime(path.clone());
    let client = Client::new(addr);
    let id = doomed.block_on(async {
        let id = start(&client, "slow", json!({"ms": 400})).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        id
    });
    doomed.shutdown_background();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (_server, client) = serve(SqliteStorage::open(&path).unwrap(), config()).await;
        let done = until_status(&client, &id, "completed").await;
        assert_eq!(done["result"]["value"]["result"], 400);
        let types: Vec<String> = all_events(&client, &id, false)
            .await
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(types, ["StopEvent"]);
        assert_gapless(&client, &id).await;
    });
}

#[tokio::test]
async fn kill_9_of_the_server_binary_loses_neither_the_waiting_run_nor_its_events() {
    let path = db_path("kill");
    let first = Binary::start(&path);
    let client = Client::new(first.addr);
    let waiting = start(&client, "number", json!({})).await;
    until_event(&client, &waiting, "InputRequiredEvent").await;
    let answered = start(&client, "number", json!({})).await;
    until_event(&client, &answered, "InputRequiredEvent").await;
    // Accepted answers are stored before `200`: one sent just before the kill is not lost.
    assert_eq!(answer(&client, &answered, "1").await.status, 200);
    first.kill();

    let second = Binary::start(&path);
    let client = Client::new(second.addr);
    let done = until_status(&client, &answered, "completed").await;
    assert_eq!(done["result"]["value"]["result"], "1");

    assert_eq!(
        client.get(&format!("/handlers/{waiting}")).await.json()["status"],
        "running"
    );
    assert_eq!(answer(&client, &waiting, "2").await.status, 200);
    let done = until_status(&client, &waiting, "completed").await;
    assert_eq!(done["result"]["value"]["result"], "2");
    for id in [&waiting, &answered] {
        let types: Vec<String> = all_events(&client, id, false)
            .await
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(types, ["InputRequiredEvent", "StopEvent"], "{id}");
        // Events published again after the resume are numbered after the stored ones.
        assert_gapless(&client, id).await;
    }
    second.kill();
}

#[tokio::test]
async fn a_run_whose_event_write_failed_is_resumed_from_what_was_stored() {
    let storage = Knobs::new(SqliteStorage::in_memory().unwrap());
    let fail = storage.fail_appends.clone();
    let (server, client) = serve(storage, config()).await;
    fail.store(1, std::sync::atomic::Ordering::SeqCst);
    let id = start(&client, "greet", json!({"name": "Ada"})).await;
    let done = until_status(&client, &id, "completed").await;
    assert_eq!(done["result"]["value"]["greeting"], "hello Ada");
    assert_eq!(
        fail.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the write did fail"
    );
    assert_eq!(settled(&server).await, 0);
    assert_gapless(&client, &id).await;
}

/// Waits for a `Vote` for at most 1.5 s, then goes on without.
pub struct TimedBallot;

#[workflow]
impl TimedBallot {
    #[step]
    async fn ask(&self, ctx: &Context, _ev: StartEvent) -> StopEvent<String> {
        let vote = ctx
            .wait_for_event(
                WaitFor::<Vote>::new()
                    .id("vote")
                    .prompt(InputRequiredEvent::new("approve?"))
                    .timeout(Duration::from_millis(1500)),
            )
            .await;
        StopEvent::new(match vote {
            Ok(v) => v.approve.to_string(),
            Err(_) => "no answer in time".to_owned(),
        })
    }
}

#[tokio::test]
async fn a_wait_with_a_timeout_still_times_out_after_a_restart() {
    let path = db_path("timed");
    let timed = || {
        workflows_server::Server::new()
            .workflow("timed", TimedBallot.runner())
            .storage(SqliteStorage::open(&path).unwrap())
            .config(config())
    };
    let first = timed().start().await.unwrap();
    let client = Client::new(first.local_addr());
    let id = start(&client, "timed", json!({})).await;
    until_event(&client, &id, "InputRequiredEvent").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.shutdown().await.unwrap();

    let second = timed().start().await.unwrap();
    let client = Client::new(second.local_addr());
    let done = until_status(&client, &id, "completed").await;
    assert_eq!(done["result"]["value"]["result"], "no answer in time");
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_ends_a_pending_run_request_with_503_and_keeps_the_run() {
    let path = db_path("pending");
    let (server, client) = serve(SqliteStorage::open(&path).unwrap(), config()).await;
    let pending = tokio::spawn(async move {
        client
            .post("/workflows/number/run", &json!({"handler_id": "pending"}))
            .await
    });
    // The run waits for its human, and the request for the run's end.
    until(PATIENCE, || async {
        client.get("/handlers/pending").await.status == 202
    })
    .await;
    until_event(&client, "pending", "InputRequiredEvent").await;
    tokio::time::timeout(Duration::from_secs(5), server.shutdown())
        .await
        .expect("shutdown does not wait for the run's human")
        .unwrap();
    let reply = pending.await.unwrap();
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.detail().contains("/handlers/pending"));

    let (_again, client) = serve(SqliteStorage::open(&path).unwrap(), config()).await;
    assert_eq!(answer(&client, "pending", "later").await.status, 200);
    let done = until_status(&client, "pending", "completed").await;
    assert_eq!(done["result"]["value"]["result"], "later");
}

/// Counts its steps in this process; loops for a long time.
static TICKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, Event)]
pub struct Tick {
    pub n: u64,
}

#[derive(Debug, OneOf)]
pub enum TickOut {
    Tick(Tick),
    Done(StopEvent<u64>),
}

pub struct Ticker;

#[workflow]
impl Ticker {
    #[step]
    async fn begin(&self, _ev: StartEvent) -> Tick {
        Tick { n: 0 }
    }

    #[step]
    async fn tick(&self, ev: Tick) -> TickOut {
        TICKS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;
        if ev.n >= 1_000_000 {
            StopEvent::new(ev.n).into()
        } else {
            Tick { n: ev.n + 1 }.into()
        }
    }
}

#[tokio::test]
async fn a_run_its_server_lets_go_of_stops_executing_there() {
    let server = workflows_server::Server::new()
        .workflow("ticker", Ticker.runner())
        .storage(SqliteStorage::in_memory().unwrap())
        .config(config())
        .start()
        .await
        .unwrap();
    let client = Client::new(server.local_addr());
    start(&client, "ticker", json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.shutdown().await.unwrap();
    let at_shutdown = TICKS.load(std::sync::atomic::Ordering::SeqCst);
    assert!(at_shutdown > 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = TICKS.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        later <= at_shutdown + 1,
        "{at_shutdown} steps at shutdown, {later} after"
    );
}

#[derive(Debug, OneOf)]
pub enum ChatOut {
    Ask(InputRequiredEvent),
    Done(StopEvent<()>),
}

#[tokio::test]
async fn a_waiting_run_is_parked_after_quick_answers_and_after_a_refused_event() {
    let mut settings = config();
    settings.idle_release = Some(Duration::from_millis(200));
    let server = workflows_server::Server::new()
        .workflow("chat", Echo.runner())
        .storage(SqliteStorage::in_memory().unwrap())
        .config(settings)
        .start()
        .await
        .unwrap();
    let client = Client::new(server.local_addr());
    let parked = || until(PATIENCE, || async { server.runs_in_memory() == 0 });
    for round in 0..4 {
        let id = start(&client, "chat", json!({})).await;
        until_event(&client, &id, "InputRequiredEvent").await;
        for i in 0..5 {
            assert_eq!(answer(&client, &id, &i.to_string()).await.status, 200);
        }
        assert!(
            parked().await,
            "round {round}: the waiting run stayed in memory"
        );
        // An event no step of the run takes is accepted (a wait could have taken it) and
        // dropped; the run waits on, and is parked again.
        let refused = client
            .post(
                &format!("/events/{id}"),
                &json!({"event": {"type": "HumanResponseEvent", "value": {"response": "x"}}, "step": "ask"}),
            )
            .await;
        assert_eq!(refused.status, 200);
        assert!(
            parked().await,
            "round {round}: not parked after a refused event"
        );
        assert_eq!(
            client.get(&format!("/handlers/{id}")).await.json()["status"],
            "running"
        );
    }
}

/// How many times `Echo`'s `again` step ran on each answer, in this process.
static ECHOED: std::sync::Mutex<std::collections::BTreeMap<String, usize>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn echoed(response: &str) -> usize {
    ECHOED.lock().unwrap().get(response).copied().unwrap_or(0)
}

/// Asks again after every answer, counting how often each answer is executed.
pub struct Echo;

#[workflow]
impl Echo {
    #[step]
    async fn ask(&self, _ev: StartEvent) -> InputRequiredEvent {
        InputRequiredEvent::new("say: ")
    }

    #[step]
    async fn again(&self, ev: HumanResponseEvent) -> ChatOut {
        *ECHOED
            .lock()
            .unwrap()
            .entry(ev.response.clone())
            .or_default() += 1;
        if ev.response.starts_with("stop") {
            StopEvent::new(()).into()
        } else {
            InputRequiredEvent::new("again: ").into()
        }
    }
}

#[tokio::test]
async fn a_run_let_go_of_after_a_storage_error_is_not_released_under_a_new_adoption() {
    let knobs = Knobs::new(SqliteStorage::in_memory().unwrap());
    let server = workflows_server::Server::new()
        .workflow("echo", Echo.runner())
        .storage(knobs.clone())
        .config(config())
        .start()
        .await
        .unwrap();
    let client = Client::new(server.local_addr());
    let id = start(&client, "echo", json!({})).await;
    until_event(&client, &id, "InputRequiredEvent").await;
    // Its waiting snapshot is stored.
    let stored_idle = until(PATIENCE, || async {
        knobs
            .inner
            .handler(&id)
            .await
            .unwrap()
            .unwrap()
            .idle_since
            .is_some()
    })
    .await;
    assert!(stored_idle, "the waiting run's snapshot is stored");

    // The run's next event write fails: its pump stops, the lease stays this server's, and
    // the server's sweep gives it up, slowly (a release takes 400 ms).
    knobs
        .fail_appends
        .store(1, std::sync::atomic::Ordering::SeqCst);
    knobs
        .release_delay_ms
        .store(400, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(answer(&client, &id, "sweep-one").await.status, 200);
    assert_eq!(settled(&server).await, 0, "the run's pump stopped");
    // An answer arrives while the release is under way: it brings the run back.
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(answer(&client, &id, "sweep-two").await.status, 200);
    tokio::time::sleep(Duration::from_millis(700)).await;
    knobs
        .release_delay_ms
        .store(0, std::sync::atomic::Ordering::SeqCst);
    let record = knobs.inner.handler(&id).await.unwrap().unwrap();
    assert!(
        !(server.runs_in_memory() == 1 && record.owner.is_none()),
        "a run in memory whose lease was released under it"
    );
    assert_eq!(answer(&client, &id, "sweep-three").await.status, 200);
    assert_eq!(answer(&client, &id, "stop").await.status, 200);
    until_status(&client, &id, "completed").await;
    assert_eq!(
        echoed("sweep-three"),
        1,
        "one accepted event, one execution"
    );
}

#[tokio::test]
async fn a_run_started_during_shutdown_is_refused_or_left_for_the_next_server() {
    let knobs = Knobs::new(SqliteStorage::in_memory().unwrap());
    let (server, client) = serve(knobs.clone(), config()).await;
    let first = start(&client, "number", json!({})).await;
    until_event(&client, &first, "InputRequiredEvent").await;
    // Storing the first run at shutdown takes a second: a request comes in meanwhile.
    knobs
        .update_delay_ms
        .store(1000, std::sync::atomic::Ordering::SeqCst);
    let began = std::time::Instant::now();
    let shutting = tokio::spawn(server.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let late = client
        .post(
            "/workflows/number/run-nowait",
            &json!({"handler_id": "late"}),
        )
        .await;
    knobs
        .update_delay_ms
        .store(0, std::sync::atomic::Ordering::SeqCst);
    shutting.await.unwrap().unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    match late.status {
        503 => assert!(knobs.inner.handler("late").await.unwrap().is_none()),
        200 => {
            let record = knobs.inner.handler("late").await.unwrap().unwrap();
            assert_eq!(
                record.owner, None,
                "its lease is given up for the next server"
            );
        }
        other => panic!("{other}: {}", late.body),
    }
}

#[tokio::test]
async fn a_stream_cut_by_shutdown_does_not_look_finished() {
    let (server, client) = serve(SqliteStorage::in_memory().unwrap(), config()).await;
    let id = start(&client, "number", json!({})).await;
    until_event(&client, &id, "InputRequiredEvent").await;
    let mut stream = client
        .stream(&format!("/events/{id}?after_sequence=-1"), &[])
        .await;
    let (seq, _) = parse_frame(&stream.next_frame().await.unwrap());
    server.shutdown().await.unwrap();
    assert_eq!(stream.next_frame().await, None);
    assert!(
        !stream.ended_cleanly(),
        "a client must see a cut connection and reconnect after {seq:?}, not a finished stream"
    );
}

#[tokio::test]
async fn a_second_server_on_the_same_sqlite_file_is_refused_naming_the_file() {
    let path = db_path("second");
    let first = SqliteStorage::open(&path).unwrap();
    let refused = SqliteStorage::open(&path)
        .err()
        .expect("a second store on one file");
    let said = workflows_server::storage::ErrorChain(&refused).to_string();
    assert!(said.contains(&path.display().to_string()), "{said}");
    assert!(said.contains("in use by another server"), "{said}");
    drop(first);
    // Closed, the file is free again.
    let again = until(PATIENCE, || async { SqliteStorage::open(&path).is_ok() }).await;
    assert!(again, "the file stays locked after its store closed");

    // The binary says so and exits.
    let held = SqliteStorage::open(&path).unwrap();
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_workflows-server"))
        .args(["--bind", "127.0.0.1:0", "--db"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("in use by another server") && stderr.contains(&*path.to_string_lossy()),
        "{stderr}"
    );
    drop(held);
}
