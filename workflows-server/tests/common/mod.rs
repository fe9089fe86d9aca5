//! Workflows and helpers shared by the server's tests.
#![allow(dead_code, unused_imports)]

pub mod binary;
pub mod http;
pub mod knobs;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use workflows::prelude::*;
use workflows_server::storage::Storage;
use workflows_server::{Config, RunningServer, Server};

pub use binary::Binary;
pub use http::{Client, Reply, Stream, parse_frame};
pub use knobs::Knobs;

/// The guide's number workflow.
pub struct Number;

#[workflow]
impl Number {
    #[step]
    async fn ask(&self, _ev: StartEvent) -> InputRequiredEvent {
        InputRequiredEvent::new("Enter a number: ")
    }

    #[step]
    async fn answer(&self, ev: HumanResponseEvent) -> StopEvent<String> {
        StopEvent::new(ev.response)
    }
}

/// A start event of the workflow's own.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(start)]
pub struct Greet {
    pub name: String,
}

/// A stop event of the workflow's own.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(stop)]
pub struct Greeting {
    pub greeting: String,
}

pub struct Greeter;

#[workflow]
impl Greeter {
    #[step]
    async fn hello(&self, ev: Greet) -> Greeting {
        Greeting {
            greeting: format!("hello {}", ev.name),
        }
    }
}

/// A workflow whose only step fails.
pub struct Broken;

#[workflow]
impl Broken {
    #[step]
    async fn boom(&self, _ev: StartEvent) -> Result<StopEvent<()>, String> {
        Err("boom".into())
    }
}

/// How many times `Slow`'s step has started on a start event tagged `tag`, in this process.
pub fn slow_starts(tag: &str) -> usize {
    SLOW_STARTS.get(tag)
}

static SLOW_STARTS: Counts = Counts::new();

/// A workflow whose step takes `ms` milliseconds.
pub struct Slow;

#[workflow]
impl Slow {
    #[step]
    async fn work(&self, ev: StartEvent) -> StopEvent<u64> {
        let tag: String = ev.get("tag").unwrap_or_default();
        SLOW_STARTS.add(&tag);
        let ms: u64 = ev.get("ms").unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        StopEvent::new(ms)
    }
}

/// An answer type no step takes: only `wait_for_event` waits for it.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(response)]
pub struct Vote {
    pub approve: bool,
}

/// Waits, inside its step, for a `Vote`.
pub struct Ballot;

#[workflow]
impl Ballot {
    #[step]
    async fn ask(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<bool>, WaitError> {
        let vote = ctx
            .wait_for_event(
                WaitFor::<Vote>::new()
                    .id("vote")
                    .prompt(InputRequiredEvent::new("approve?")),
            )
            .await?;
        Ok(StopEvent::new(vote.approve))
    }
}

/// How many times `Tally`'s `answer` step ran on the answer `response`, in this process.
pub fn answers_seen(response: &str) -> usize {
    ANSWERS.get(response)
}

static ANSWERS: Counts = Counts::new();

/// How many times a step ran on each key (an answer, a tag), across every server in the
/// process.
pub struct Counts(Mutex<BTreeMap<String, usize>>);

impl Counts {
    pub const fn new() -> Self {
        Counts(Mutex::new(BTreeMap::new()))
    }

    pub fn add(&self, key: &str) {
        *self.0.lock().unwrap().entry(key.to_owned()).or_default() += 1;
    }

    pub fn get(&self, key: &str) -> usize {
        self.0.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

/// The number workflow, counting how often its answer step runs (across every server in
/// the process), to catch a run executed twice.
pub struct Tally;

#[workflow]
impl Tally {
    #[step]
    async fn ask(&self, _ev: StartEvent) -> InputRequiredEvent {
        InputRequiredEvent::new("Enter a number: ")
    }

    #[step]
    async fn answer(&self, ev: HumanResponseEvent) -> StopEvent<String> {
        ANSWERS.add(&ev.response);
        StopEvent::new(ev.response)
    }
}

/// How many times `Ponder`'s `think` step started on the answer `response`, in this process.
pub fn ponderings(response: &str) -> usize {
    PONDERINGS.get(response)
}

static PONDERINGS: Counts = Counts::new();

/// Asks how many milliseconds to think, then thinks that long before giving the answer
/// back: a run that keeps working after its answer is delivered.
pub struct Ponder;

#[workflow]
impl Ponder {
    #[step]
    async fn ask(&self, _ev: StartEvent) -> InputRequiredEvent {
        InputRequiredEvent::new("How many milliseconds? ")
    }

    #[step]
    async fn think(&self, ev: HumanResponseEvent) -> StopEvent<String> {
        PONDERINGS.add(&ev.response);
        let ms: u64 = ev.response.parse().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        StopEvent::new(ev.response)
    }
}

/// Counts its runs in its typed state and in its store: a run started under the handler id
/// of an ended one continues from that one's state.
pub struct Visits;

#[workflow(state = u64)]
impl Visits {
    #[step]
    async fn visit(&self, ctx: &Context<u64>, _ev: StartEvent) -> StopEvent<(u64, u64)> {
        let typed = ctx.edit_state(|n| {
            *n += 1;
            *n
        });
        let stored: u64 = ctx.store().get_or("visits", 0).unwrap() + 1;
        ctx.store().set("visits", stored).unwrap();
        StopEvent::new((typed, stored))
    }
}

/// A child run: asks the person its start event names (`who`) to approve, waiting for a
/// `HumanResponseEvent` carrying that `who`.
pub struct Approval;

#[workflow]
impl Approval {
    #[step]
    async fn ask(&self, ctx: &Context, ev: StartEvent) -> Result<StopEvent<String>, WaitError> {
        let who: String = ev.get("who").unwrap_or_default();
        let answer = ctx
            .wait_for_event(
                WaitFor::<HumanResponseEvent>::new()
                    .prompt(InputRequiredEvent::new(format!("{who}, approve?")))
                    .require_path("who", who.clone()),
            )
            .await?;
        Ok(StopEvent::new(format!("{who}: {}", answer.response)))
    }
}

/// Runs two `Approval` children at once (ann's, then bob's) and gives both answers.
pub struct Pair;

#[workflow]
impl Pair {
    #[step(children(Approval))]
    async fn both(
        &self,
        ctx: &Context,
        _ev: StartEvent,
    ) -> Result<StopEvent<Vec<String>>, ChildError> {
        let (ann, bob) = tokio::join!(
            ctx.run_child(Approval, StartEvent::new().with("who", "ann")),
            ctx.run_child(Approval, StartEvent::new().with("who", "bob")),
        );
        Ok(StopEvent::new(vec![ann?, bob?]))
    }
}

/// Settings for tests: any free port, quick polling, no parking, no heartbeats.
pub fn config() -> Config {
    Config {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        poll_interval: Duration::from_millis(20),
        lease_ttl: Duration::from_secs(2),
        idle_release: None,
        heartbeat: None,
        ..Config::default()
    }
}

/// A server with every test workflow on `storage`.
pub fn server(storage: impl Storage, config: Config) -> Server {
    Server::new()
        .workflow("number", Number.runner())
        .workflow("greet", Greeter.runner())
        .workflow("broken", Broken.runner())
        .workflow("slow", Slow.runner())
        .workflow("ballot", Ballot.runner())
        .events("ballot", [workflows::EventInfo::of::<Vote>()])
        .workflow("tally", Tally.runner())
        .workflow("ponder", Ponder.runner())
        .workflow("visits", Visits.runner())
        .workflow("pair", Pair.runner())
        .storage(storage)
        .config(config)
}

/// Starts [`server`] and a client for it.
pub async fn serve(storage: impl Storage, config: Config) -> (RunningServer, Client) {
    let running = server(storage, config)
        .start()
        .await
        .expect("the server starts");
    let client = Client::new(running.local_addr());
    (running, client)
}

/// The Rust client for the server `client` talks to, its routes under `prefix`.
pub fn api_at(client: &Client, prefix: &str) -> workflows_client::Client {
    workflows_client::Client::new(&format!("http://{}{prefix}", client.addr)).expect("a base URL")
}

/// The Rust client for the server `client` talks to.
pub fn api(client: &Client) -> workflows_client::Client {
    api_at(client, "")
}

/// How long a test waits for a run to reach a state before it fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Starts a run of `workflow` without waiting; its handler id.
pub async fn start(client: &Client, workflow: &str, start_event: Value) -> String {
    api(client)
        .run_nowait(workflow, workflows_client::RunRequest::json(start_event))
        .await
        .unwrap_or_else(|e| panic!("starting {workflow}: {e}"))
        .handler_id
}

/// Waits (following the run's events, not polling) until the handler has ended, checks that
/// it ended with `status`, and gives its JSON.
pub async fn until_status(client: &Client, handler_id: &str, status: &str) -> Value {
    until_status_at(client, "", handler_id, status).await
}

/// [`until_status`] for routes mounted under `prefix`.
pub async fn until_status_at(
    client: &Client,
    prefix: &str,
    handler_id: &str,
    status: &str,
) -> Value {
    let ended = tokio::time::timeout(PATIENCE, api_at(client, prefix).wait(handler_id))
        .await
        .unwrap_or_else(|_| panic!("handler {handler_id} did not end within {PATIENCE:?}"))
        .unwrap_or_else(|e| panic!("waiting for {handler_id}: {e}"));
    assert_eq!(ended.status.as_str(), status, "handler {handler_id}");
    client
        .get(&format!("{prefix}/handlers/{handler_id}"))
        .await
        .json()
}

/// Reads the handler's NDJSON stream from the start (waits for the run's end).
pub async fn all_events(client: &Client, handler_id: &str, internal: bool) -> Vec<Value> {
    let reply = client
        .get(&format!(
            "/events/{handler_id}?sse=false&after_sequence=-1&include_internal={internal}"
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply
        .body
        .lines()
        .map(|l| serde_json::from_str(l).expect("an NDJSON line"))
        .collect()
}

/// Sends a `HumanResponseEvent` with `response`, as the Python client writes it (`_data`).
pub async fn answer(client: &Client, handler_id: &str, response: &str) -> Reply {
    client
        .post(
            &format!("/events/{handler_id}"),
            &json!({"event": {"type": "HumanResponseEvent", "value": {"_data": {"response": response}}}}),
        )
        .await
}

/// Waits until the handler's stream holds an event of type `ty`.
pub async fn until_event(client: &Client, handler_id: &str, ty: &str) {
    let mut stream = api(client).events(handler_id).stream();
    let found = tokio::time::timeout(PATIENCE, async {
        while let Some(ev) = stream.next().await {
            if ev.expect("an event").type_name == ty {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or_else(|_| panic!("no `{ty}` in the stream of {handler_id} within {PATIENCE:?}"));
    assert!(found, "the stream of {handler_id} ended without a `{ty}`");
}

/// The sequence numbers of every event (internal ones included) of an ended run, asserting
/// that they run from 0 without a gap or a repeat.
pub async fn assert_gapless(client: &Client, handler_id: &str) -> Vec<u64> {
    let events: Vec<_> = api(client)
        .events(handler_id)
        .include_internal(true)
        .stream()
        .collect()
        .await;
    let seqs: Vec<u64> = events
        .into_iter()
        .map(|ev| ev.expect("an event").sequence.expect("a sequence number"))
        .collect();
    assert_eq!(
        seqs,
        (0..seqs.len() as u64).collect::<Vec<_>>(),
        "{handler_id}"
    );
    seqs
}

/// How often [`until`] looks at its condition.
const LOOK_EVERY: Duration = Duration::from_millis(10);

/// Waits until `condition` holds, looking every 10 ms; whether it did before `limit`. For
/// state no event announces (a counter, a server's memory); a run's events and status are
/// followed instead (`until_event`, `until_status`).
pub async fn until<F, Fut>(limit: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

/// Waits (up to [`PATIENCE`]) until `server` holds no run in memory; how many it holds then.
pub async fn settled(server: &RunningServer) -> usize {
    until(PATIENCE, || async { server.runs_in_memory() == 0 }).await;
    server.runs_in_memory()
}

/// A new, empty database on the server `DATABASE_URL` names; its URL.
pub async fn fresh_database() -> Option<String> {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "DATABASE_URL is not set: .ci/run starts PostgreSQL and sets it"
        );
        eprintln!("DATABASE_URL is not set: skipping a Postgres test");
        return None;
    };
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("DATABASE_URL answers");
    tokio::spawn(connection);
    let name = format!("wf_test_{}", uuid::Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("CREATE DATABASE");
    let base = url.rsplit_once('/').map_or(url.as_str(), |(base, _)| base);
    Some(format!("{base}/{name}"))
}
