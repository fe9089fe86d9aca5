//! Runs outlive their server: parking idle runs, clean restarts, crashes (a runtime dropped
//! mid-step), and a `kill -9` of the server binary.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use serde_json::json;
use workflows::prelude::*;
use workflows_server::storage::{
    Created, HandlerFilter, HandlerRecord, InboxItem, RunState, RunUpdate, SqliteStorage,
    StorageError, StorageFuture, StoredEvent,
};

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
    for _ in 0..200 {
        if server.runs_in_memory() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.runs_in_memory(), 0, "the waiting run was parked");
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

/// Starts a server on its own runtime in its own thread; dropping the runtime kills it
/// abruptly, as a crash would (no snapshot, no lease given up).
fn server_on_own_runtime(path: PathBuf) -> (tokio::runtime::Runtime, SocketAddr) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let running = runtime.block_on(async {
        server(SqliteStorage::open(&path).unwrap(), config())
            .start()
            .await
            .unwrap()
    });
    let addr = running.local_addr();
    std::mem::forget(running); // its tasks live on the runtime until it is dropped
    (runtime, addr)
}

#[test]
fn a_run_in_the_middle_of_a_step_when_the_server_dies_runs_again_after_restart() {
    let path = db_path("crash");
    let (doomed, addr) = server_on_own_runtime(path.clone());
    let client = Client::new(addr);
    let id = doomed.block_on(async {
        let id = start(&client, "slow", json!({"ms": 60_000, "tag": "crash"})).await;
        for _ in 0..500 {
            if slow_starts("crash") > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
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
        for _ in 0..500 {
            if slow_starts("crash") > 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(slow_starts("crash"), 2, "the step ran again");
        let cancelled = client
            .send("POST", &format!("/handlers/{id}/cancel"), None)
            .await;
        assert_eq!(cancelled.json(), json!({"status": "cancelled"}));
        until_status(&client, &id, "cancelled").await;
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

/// The test store, with the next `fail` event writes failing.
#[derive(Clone)]
struct Flaky {
    inner: SqliteStorage,
    fail: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl workflows_server::storage::Storage for Flaky {
    fn migrate(&self) -> StorageFuture<'_, ()> {
        self.inner.migrate()
    }
    fn create_handler(&self, r: HandlerRecord, s: String) -> StorageFuture<'_, Created> {
        self.inner.create_handler(r, s)
    }
    fn handler(&self, h: &str) -> StorageFuture<'_, Option<HandlerRecord>> {
        self.inner.handler(h)
    }
    fn handlers(&self, f: HandlerFilter) -> StorageFuture<'_, Vec<HandlerRecord>> {
        self.inner.handlers(f)
    }
    fn delete_handler(&self, h: &str) -> StorageFuture<'_, bool> {
        self.inner.delete_handler(h)
    }
    fn run_state(&self, h: &str) -> StorageFuture<'_, Option<RunState>> {
        self.inner.run_state(h)
    }
    fn append_events(
        &self,
        h: &str,
        r: &str,
        o: &str,
        e: Vec<StoredEvent>,
        now: i64,
    ) -> StorageFuture<'_, bool> {
        use std::sync::atomic::Ordering::SeqCst;
        if self
            .fail
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Box::pin(async { Err(StorageError::new("the disk is full")) });
        }
        self.inner.append_events(h, r, o, e, now)
    }
    fn events_after(&self, r: &str, a: i64, l: usize) -> StorageFuture<'_, Vec<StoredEvent>> {
        self.inner.events_after(r, a, l)
    }
    fn last_sequence(&self, r: &str) -> StorageFuture<'_, Option<u64>> {
        self.inner.last_sequence(r)
    }
    fn update_run(&self, h: &str, o: &str, u: RunUpdate, n: i64) -> StorageFuture<'_, bool> {
        self.inner.update_run(h, o, u, n)
    }
    fn claim(&self, h: &str, o: &str, n: i64, u: i64) -> StorageFuture<'_, bool> {
        self.inner.claim(h, o, n, u)
    }
    fn renew(&self, o: &str, u: i64) -> StorageFuture<'_, ()> {
        self.inner.renew(o, u)
    }
    fn release(&self, h: &str, o: &str) -> StorageFuture<'_, ()> {
        self.inner.release(h, o)
    }
    fn push_inbox(&self, h: &str, i: InboxItem) -> StorageFuture<'_, ()> {
        self.inner.push_inbox(h, i)
    }
    fn inbox(&self, h: &str) -> StorageFuture<'_, Vec<(i64, InboxItem)>> {
        self.inner.inbox(h)
    }
    fn held(&self, o: &str) -> StorageFuture<'_, Vec<String>> {
        self.inner.held(o)
    }
    fn with_inbox(&self, o: &str) -> StorageFuture<'_, Vec<String>> {
        self.inner.with_inbox(o)
    }
    fn orphans(&self, n: i64) -> StorageFuture<'_, Vec<String>> {
        self.inner.orphans(n)
    }
}

#[tokio::test]
async fn a_run_whose_event_write_failed_is_resumed_from_what_was_stored() {
    let fail = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let storage = Flaky {
        inner: SqliteStorage::in_memory().unwrap(),
        fail: fail.clone(),
    };
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
    tokio::time::sleep(Duration::from_millis(300)).await;
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

/// Asks again after every answer until it hears "stop".
pub struct Chat;

#[derive(Debug, OneOf)]
pub enum ChatOut {
    Ask(InputRequiredEvent),
    Done(StopEvent<()>),
}

#[workflow]
impl Chat {
    #[step]
    async fn ask(&self, _ev: StartEvent) -> InputRequiredEvent {
        InputRequiredEvent::new("say: ")
    }

    #[step]
    async fn again(&self, ev: HumanResponseEvent) -> ChatOut {
        if ev.response == "stop" {
            StopEvent::new(()).into()
        } else {
            InputRequiredEvent::new("again: ").into()
        }
    }
}

#[tokio::test]
async fn a_waiting_run_is_parked_after_quick_answers_and_after_a_refused_event() {
    let mut settings = config();
    settings.idle_release = Some(Duration::from_millis(200));
    let server = workflows_server::Server::new()
        .workflow("chat", Chat.runner())
        .storage(SqliteStorage::in_memory().unwrap())
        .config(settings)
        .start()
        .await
        .unwrap();
    let client = Client::new(server.local_addr());
    let parked = || async {
        for _ in 0..300 {
            if server.runs_in_memory() == 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    };
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
