//! The client against a live server: every route, typed events, streams that resume from a
//! sequence number and survive a server restart, and the server's refusals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use workflows::prelude::*;
use workflows_client::{Client, ClientError, HandlerQuery, RunRequest, Status, WireEvent};
use workflows_server::storage::SqliteStorage;
use workflows_server::{Config, RunningServer, Server};

struct Number;

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

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(start)]
struct Greet {
    name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Event)]
#[event(stop)]
struct Greeting {
    greeting: String,
}

struct Greeter;

#[workflow]
impl Greeter {
    #[step]
    async fn hello(&self, ev: Greet) -> Greeting {
        Greeting {
            greeting: format!("hello {}", ev.name),
        }
    }
}

#[derive(Debug)]
struct Kaput;

impl std::fmt::Display for Kaput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("kaput")
    }
}

impl std::error::Error for Kaput {}

struct Broken;

#[workflow]
impl Broken {
    #[step]
    async fn explode(&self, _ev: StartEvent) -> Result<StopEvent<()>, Kaput> {
        Err(Kaput)
    }
}

fn config(bind: SocketAddr) -> Config {
    Config {
        bind,
        idle_release: None,
        heartbeat: None,
        ..Config::default()
    }
}

async fn serve(storage: SqliteStorage, bind: SocketAddr) -> (RunningServer, Client) {
    let server = Server::new()
        .workflow("number", Number.runner())
        .workflow("greet", Greeter.runner())
        .workflow("broken", Broken.runner())
        .storage(storage)
        .config(config(bind))
        .start()
        .await
        .expect("the server starts");
    let client = Client::new(&format!("http://{}", server.local_addr())).unwrap();
    (server, client)
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Reads `stream` up to and including the first event of type `E`.
async fn until<E: Event>(stream: &mut workflows_client::EventStream) -> Vec<WireEvent> {
    let mut seen = Vec::new();
    while let Some(ev) = stream.next().await {
        let ev = ev.expect("an event");
        let found = ev.is::<E>();
        seen.push(ev);
        if found {
            return seen;
        }
    }
    panic!("the stream ended without a {}: {seen:?}", E::NAME);
}

#[tokio::test]
async fn describing_the_server_and_its_workflows() {
    let (_server, client) = serve(SqliteStorage::in_memory().unwrap(), loopback()).await;
    assert!(client.is_healthy().await.unwrap());
    assert_eq!(
        client.workflows().await.unwrap(),
        ["number", "greet", "broken"]
    );
    let schema = client.schema("greet").await.unwrap();
    assert_eq!(schema.start["title"], "Greet");
    assert_eq!(schema.stop["title"], "Greeting");
    let titles: Vec<_> = client
        .event_schemas("number")
        .await
        .unwrap()
        .iter()
        .map(|s| s["title"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        titles.contains(&"HumanResponseEvent".to_owned()),
        "{titles:?}"
    );
    let graph = client.representation("number").await.unwrap();
    assert!(
        graph["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == "ask")
    );

    let missing = client.schema("nope").await.unwrap_err();
    assert_eq!(missing.status(), Some(404), "{missing}");
    assert!(
        missing.to_string().contains("Workflow not found"),
        "{missing}"
    );
}

#[tokio::test]
async fn a_human_in_the_loop_run_through_typed_events() {
    let (_server, client) = serve(SqliteStorage::in_memory().unwrap(), loopback()).await;
    let run = client
        .run_nowait("number", RunRequest::new().handler_id("first"))
        .await
        .unwrap();
    assert_eq!(
        (run.handler_id.as_str(), run.status),
        ("first", Status::Running)
    );

    let mut stream = client.events("first").stream();
    let prompt = until::<InputRequiredEvent>(&mut stream)
        .await
        .pop()
        .unwrap();
    assert_eq!(
        prompt.decode::<InputRequiredEvent>().unwrap().prefix,
        "Enter a number: "
    );
    let wrong = prompt.decode::<Greeting>().unwrap_err();
    assert!(matches!(wrong, ClientError::WrongEvent { .. }), "{wrong}");
    assert_eq!(
        client.handler("first").await.unwrap().status,
        Status::Running
    );

    // A type the workflow does not take is refused with the server's words.
    let refused = client
        .send("first", &Greet { name: "x".into() })
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(400));
    assert!(
        refused
            .to_string()
            .contains("Invalid event type: Greet. Expected one of"),
        "{refused}"
    );
    client
        .send_to("first", "answer", &HumanResponseEvent::new("42"))
        .await
        .unwrap();
    let rest: Vec<WireEvent> = stream.map(Result::unwrap).collect().await;
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert!(rest[0].is_terminal() && rest[0].sequence > prompt.sequence);
    assert_eq!(rest[0].value["result"], "42");

    let done = client.wait("first").await.unwrap();
    assert_eq!(done.status, Status::Completed);
    assert_eq!(done.result.unwrap().value, json!({"result": "42"}));
    assert!(done.completed_at.is_some());

    // Resuming after a sequence number gives exactly what follows it.
    let after: Vec<WireEvent> = client
        .events("first")
        .after(prompt.sequence.unwrap())
        .stream()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(
        after
            .iter()
            .map(|e| e.type_name.as_str())
            .collect::<Vec<_>>(),
        ["StopEvent"]
    );
    // Internal events are there when asked for.
    let all: Vec<WireEvent> = client
        .events("first")
        .include_internal(true)
        .stream()
        .map(Result::unwrap)
        .collect()
        .await;
    assert!(
        all.iter().any(|e| e.type_name == "StepStateChanged"),
        "{all:?}"
    );
    // A finished run's stream from now on is empty.
    assert!(
        client
            .events("first")
            .from_now()
            .stream()
            .next()
            .await
            .is_none()
    );
}

#[tokio::test]
async fn runs_that_wait_fail_are_listed_cancelled_and_purged() {
    let (_server, client) = serve(SqliteStorage::in_memory().unwrap(), loopback()).await;
    let greeted = client
        .run(
            "greet",
            RunRequest::event(&Greet { name: "Ada".into() }).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(greeted.status, Status::Completed);
    let greeting: Greeting = greeted.result.unwrap().decode().unwrap();
    assert_eq!(greeting.greeting, "hello Ada");
    let bare = client
        .run("greet", RunRequest::json(json!({"name": "Bo"})))
        .await
        .unwrap();
    assert_eq!(bare.result.unwrap().value["greeting"], "hello Bo");

    // A failed run is an answer: its status and the step's own message.
    let failed = client.run("broken", RunRequest::new()).await.unwrap();
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(failed.error.as_deref(), Some("kaput"));
    assert_eq!(
        client.handler(&failed.handler_id).await.unwrap().status,
        Status::Failed
    );
    let last = client
        .events(&failed.handler_id)
        .stream()
        .next()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.type_name, "WorkflowFailedEvent");
    assert_eq!(last.value["exception"]["exception_type"], "client.Kaput");

    let waiting = client
        .run_nowait("number", RunRequest::new())
        .await
        .unwrap();
    let running = client
        .handlers(&HandlerQuery::new().status(Status::Running))
        .await
        .unwrap();
    assert_eq!(
        running.iter().map(|h| &h.handler_id).collect::<Vec<_>>(),
        [&waiting.handler_id]
    );
    let greets = client
        .handlers(
            &HandlerQuery::new()
                .status(Status::Completed)
                .workflow("greet"),
        )
        .await
        .unwrap();
    assert_eq!(greets.len(), 2);
    assert_eq!(
        client.handlers(&HandlerQuery::new()).await.unwrap().len(),
        4
    );

    client.cancel(&waiting.handler_id).await.unwrap();
    assert_eq!(
        client.wait(&waiting.handler_id).await.unwrap().status,
        Status::Cancelled
    );
    client.purge(&waiting.handler_id).await.unwrap();
    let gone = client.handler(&waiting.handler_id).await.unwrap_err();
    assert_eq!(gone.status(), Some(404), "{gone}");
    assert!(gone.to_string().contains("Handler not found"), "{gone}");
    let gone = client
        .send(&waiting.handler_id, &HumanResponseEvent::new("1"))
        .await
        .unwrap_err();
    assert_eq!(gone.status(), Some(404), "{gone}");
}

fn db_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("wf-client-{name}-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_goes_on_across_a_server_restart() {
    let path = db_path("restart");
    let (server, client) = serve(SqliteStorage::open(&path).unwrap(), loopback()).await;
    let addr = server.local_addr();
    let run = client
        .run_nowait("number", RunRequest::new())
        .await
        .unwrap();
    let mut stream = client.events(&run.handler_id).stream();
    let prompt = until::<InputRequiredEvent>(&mut stream)
        .await
        .pop()
        .unwrap();

    // The server goes away with the stream open; another takes its place on the same address
    // and the same file, and the answer goes to it.
    server.shutdown().await.unwrap();
    let (_again, client) = serve(SqliteStorage::open(&path).unwrap(), addr).await;
    client
        .send(&run.handler_id, &HumanResponseEvent::new("7"))
        .await
        .unwrap();
    let rest: Vec<WireEvent> =
        tokio::time::timeout(Duration::from_secs(30), stream.collect::<Vec<_>>())
            .await
            .expect("the stream reconnects and ends")
            .into_iter()
            .map(Result::unwrap)
            .collect();
    assert_eq!(
        rest.iter()
            .map(|e| e.type_name.as_str())
            .collect::<Vec<_>>(),
        ["StopEvent"],
        "nothing lost, nothing twice: {rest:?}"
    );
    assert!(rest[0].sequence > prompt.sequence);
    assert_eq!(rest[0].value["result"], "7");
}

#[tokio::test]
async fn a_stream_gives_up_after_its_reconnects() {
    // Nothing listens here: each opening fails, and the stream ends with what happened.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = Client::new(&format!("http://{addr}")).unwrap();
    let mut stream = client.events("any").max_reconnects(2).stream();
    let error = stream.next().await.unwrap().unwrap_err();
    assert!(
        matches!(&error, ClientError::Reconnects { attempts: 2, last } if matches!(**last, ClientError::Transport(_))),
        "{error:?}"
    );
    assert!(stream.next().await.is_none());
}

#[test]
fn a_base_url_must_be_http() {
    for bad in ["127.0.0.1:8080", "ftp://host", "http://", "http:///path"] {
        let error = Client::new(bad).unwrap_err();
        assert!(matches!(error, ClientError::Url { .. }), "{bad}: {error}");
    }
    Client::new("http://127.0.0.1:8080/api/").unwrap();
}
