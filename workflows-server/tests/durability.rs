//! Runs outlive their server: parking idle runs, clean restarts, crashes (a runtime dropped
//! mid-step), and a `kill -9` of the server binary.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use serde_json::json;
use workflows_server::storage::SqliteStorage;

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
