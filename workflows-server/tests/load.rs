//! A bounded load test on loopback: 1,000 human-in-the-loop runs at once, each started,
//! followed over SSE, answered and followed to its end, against a server on a SQLite file.
//! No run and no event may be lost. It prints its figures; nothing here judges time.
//!
//! `cargo test --release -p workflows-server --test load -- --nocapture` for the figures,
//! `LOAD_RUNS=5000` for more runs.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use workflows_server::storage::SqliteStorage;

/// One run, as a person with a browser would drive it; the sequence numbers it saw.
async fn one_run(client: Client, i: usize) -> Vec<u64> {
    let id = start(&client, "number", json!({})).await;
    let mut stream = client
        .stream(
            &format!("/events/{id}?after_sequence=-1&include_internal=true"),
            &[],
        )
        .await;
    assert_eq!(stream.status, 200);
    let mut seqs = Vec::new();
    let mut answered = false;
    let mut result = None;
    while let Some(frame) = stream
        .next_piece_within(b"\n\n", Duration::from_secs(120))
        .await
    {
        let (seq, ev) = parse_frame(&frame);
        seqs.push(seq.expect("every frame has an id"));
        if ev["type"] == "InputRequiredEvent" && !answered {
            answered = true;
            let sent = answer(&client, &id, &i.to_string()).await;
            assert_eq!(sent.status, 200, "{}", sent.body);
        }
        if ev["type"] == "StopEvent" {
            result = Some(ev["value"]["result"].clone());
        }
    }
    assert_eq!(result, Some(json!(i.to_string())), "run {i} ({id})");
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_runs_with_their_answers_lose_nothing() {
    let runs: usize = std::env::var("LOAD_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let path = std::env::temp_dir().join(format!("wf-load-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let (server, client) = serve(SqliteStorage::open(&path).unwrap(), config()).await;

    let began = Instant::now();
    let tasks: Vec<_> = (0..runs)
        .map(|i| tokio::spawn(one_run(client, i)))
        .collect();
    let mut events = 0;
    for task in tasks {
        let seqs = task.await.expect("a run's client task");
        // Every event of the run, internal ones included, in order and without a gap.
        assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
        events += seqs.len();
    }
    let elapsed = began.elapsed();

    let completed = client.get("/handlers?status=completed").await.json();
    assert_eq!(completed["handlers"].as_array().unwrap().len(), runs);
    let others = client
        .get("/handlers?status=running&status=failed&status=cancelled")
        .await
        .json();
    assert_eq!(others["handlers"].as_array().unwrap().len(), 0);
    assert_eq!(settled(&server).await, 0);
    println!(
        "load: {runs} concurrent runs, {events} events streamed, {:.2} s, {:.0} runs/s, {:.2} ms per run \
         (each run: start, SSE stream, answer, stream to the end, over a new connection per request)",
        elapsed.as_secs_f64(),
        runs as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / runs as f64,
    );
    server.shutdown().await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
