//! Event streams: SSE framing, NDJSON, replay from a sequence number, reconnects, heartbeats.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use workflows_server::storage::SqliteStorage;

#[tokio::test]
async fn sse_frames_carry_sequence_numbers_and_end_after_the_stop_event() {
    let (_server, client) = serve(SqliteStorage::in_memory().unwrap(), config()).await;
    let id = start(&client, "number", json!({})).await;
    let mut stream = client
        .stream(&format!("/events/{id}?after_sequence=-1"), &[])
        .await;
    assert_eq!(stream.status, 200);
    assert_eq!(
        stream.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );

    let frame = stream.next_frame().await.unwrap();
    assert!(frame.starts_with("id: "), "{frame:?}");
    let (seq, prompt) = parse_frame(&frame);
    assert_eq!(
        prompt,
        json!({"value": {"_data": {"prefix": "Enter a number: "}}, "qualified_name": "workflows.events.InputRequiredEvent", "type": "InputRequiredEvent", "types": null})
    );
    let prompt_seq = seq.unwrap();

    assert_eq!(answer(&client, &id, "42").await.status, 200);
    let (stop_seq, stop) = parse_frame(&stream.next_frame().await.unwrap());
    assert_eq!(stop["type"], "StopEvent");
    assert_eq!(stop["value"], json!({"result": "42"}));
    assert!(stop_seq.unwrap() > prompt_seq, "sequence numbers grow");
    assert_eq!(
        stream.next_frame().await,
        None,
        "the stream ends with the run"
    );

    // Once the run has ended and everything was read, there is nothing to stream.
    let after = client
        .get(&format!(
            "/events/{id}?after_sequence={}",
            stop_seq.unwrap()
        ))
        .await;
    assert_eq!(after.status, 204);
    assert_eq!(
        client.get(&format!("/events/{id}")).await.status,
        204,
        "`now` is past the end"
    );
}

#[tokio::test]
async fn ndjson_internal_events_and_qualified_names_on_request() {
    let (_server, client) = serve(SqliteStorage::in_memory().unwrap(), config()).await;
    let id = start(&client, "number", json!({})).await;
    until_event(&client, &id, "InputRequiredEvent").await;
    answer(&client, &id, "5").await;
    until_status(&client, &id, "completed").await;

    let public = all_events(&client, &id, false).await;
    let types: Vec<&str> = public.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["InputRequiredEvent", "StopEvent"]);

    let all = all_events(&client, &id, true).await;
    let internal: Vec<&serde_json::Value> = all
        .iter()
        .filter(|e| e["types"] == json!(["InternalDispatchEvent"]))
        .collect();
    assert!(internal.iter().any(|e| e["type"] == "StepStateChanged"
        && e["value"]["name"] == "ask"
        && e["value"]["step_state"] == "running"));
    assert!(internal.iter().any(|e| e["type"] == "WorkflowIdleEvent"));
    assert_eq!(all.len(), public.len() + internal.len());

    let reply = client
        .get(&format!(
            "/events/{id}?sse=false&after_sequence=-1&include_qualified_name=false"
        ))
        .await;
    assert_eq!(reply.header("content-type"), Some("application/x-ndjson"));
    let first: serde_json::Value =
        serde_json::from_str(reply.body.lines().next().unwrap()).unwrap();
    assert!(first["qualified_name"].is_null());
    assert_eq!(first["type"], "InputRequiredEvent");
}

#[tokio::test]
async fn a_reconnect_from_a_sequence_number_loses_nothing() {
    let (_server, client) = serve(SqliteStorage::in_memory().unwrap(), config()).await;
    let id = start(&client, "number", json!({})).await;
    until_event(&client, &id, "InputRequiredEvent").await;
    answer(&client, &id, "3").await;
    until_status(&client, &id, "completed").await;
    let every: Vec<(u64, serde_json::Value)> = {
        let mut stream = client
            .stream(
                &format!("/events/{id}?after_sequence=-1&include_internal=true"),
                &[],
            )
            .await;
        let mut frames = Vec::new();
        while let Some(frame) = stream.next_frame().await {
            let (seq, data) = parse_frame(&frame);
            frames.push((seq.unwrap(), data));
        }
        frames
    };
    assert!(every.len() >= 5, "{every:?}");
    let seqs: Vec<u64> = every.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (0..every.len() as u64).collect::<Vec<_>>(), "no gaps");

    // Reconnect after each position, by query and by Last-Event-ID (which wins).
    for (cut, _) in &every[..every.len() - 1] {
        let by_query = client
            .get(&format!(
                "/events/{id}?after_sequence={cut}&include_internal=true&sse=false"
            ))
            .await;
        let rest: Vec<serde_json::Value> = by_query
            .body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let expected: Vec<serde_json::Value> = every
            .iter()
            .filter(|(s, _)| s > cut)
            .map(|(_, d)| d.clone())
            .collect();
        assert_eq!(rest, expected, "after {cut}");

        let header = cut.to_string();
        let mut resumed = client
            .stream(
                &format!("/events/{id}?after_sequence=-1&include_internal=true"),
                &[("Last-Event-ID", header.as_str())],
            )
            .await;
        let (first_seq, _) = parse_frame(&resumed.next_frame().await.unwrap());
        assert_eq!(first_seq, Some(cut + 1));
    }
    let bad = client
        .get(&format!("/events/{id}?after_sequence=abc"))
        .await;
    assert_eq!(
        (bad.status, bad.detail()),
        (400, "Invalid after_sequence: 'abc'".to_owned())
    );
    assert_eq!(client.get("/events/nope").await.status, 404);
}

#[tokio::test]
async fn a_live_stream_from_now_sees_only_new_events_and_quiet_streams_get_heartbeats() {
    let mut settings = config();
    settings.heartbeat = Some(Duration::from_millis(100));
    let (_server, client) = serve(SqliteStorage::in_memory().unwrap(), settings).await;
    let id = start(&client, "number", json!({})).await;
    until_event(&client, &id, "InputRequiredEvent").await;

    let mut stream = client.stream(&format!("/events/{id}"), &[]).await;
    assert_eq!(stream.status, 200);
    let beat = stream.next_frame().await.unwrap();
    assert_eq!(
        beat, ": heartbeat",
        "the prompt came before `now` and is not repeated"
    );
    answer(&client, &id, "8").await;
    let mut frames = Vec::new();
    while let Some(frame) = stream.next_frame().await {
        if !frame.starts_with(':') {
            frames.push(parse_frame(&frame).1["type"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(frames, ["StopEvent"]);
}

#[tokio::test]
async fn several_readers_follow_one_run() {
    let (_server, client) = serve(SqliteStorage::in_memory().unwrap(), config()).await;
    let id = start(&client, "number", json!({})).await;
    let readers: Vec<_> = (0..5)
        .map(|_| {
            let id = id.clone();
            tokio::spawn(async move {
                let mut stream = client
                    .stream(&format!("/events/{id}?after_sequence=-1"), &[])
                    .await;
                let mut types = Vec::new();
                while let Some(frame) = stream.next_frame().await {
                    types.push(parse_frame(&frame).1["type"].as_str().unwrap().to_owned());
                }
                types
            })
        })
        .collect();
    until_event(&client, &id, "InputRequiredEvent").await;
    answer(&client, &id, "1").await;
    for reader in readers {
        assert_eq!(reader.await.unwrap(), ["InputRequiredEvent", "StopEvent"]);
    }
}

#[tokio::test]
async fn readers_of_a_waiting_run_in_memory_do_not_poll_the_store() {
    let knobs = Knobs::new(SqliteStorage::in_memory().unwrap());
    let (_server, client) = serve(knobs.clone(), config()).await;
    let id = start(&client, "number", json!({})).await;
    let mut readers = Vec::new();
    for _ in 0..10 {
        let mut stream = client
            .stream(&format!("/events/{id}?sse=false&after_sequence=-1"), &[])
            .await;
        loop {
            let line = stream
                .next_piece_within(b"\n", Duration::from_secs(20))
                .await
                .expect("the stream reaches the prompt");
            if line.contains("InputRequiredEvent") {
                break;
            }
        }
        readers.push(stream);
    }
    // Elapsed time is the behaviour here: over 25 poll intervals, idle readers of a run held
    // in memory read nothing (they are woken when it stores events).
    let before = knobs.event_reads.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(config().poll_interval * 25).await;
    let after = knobs.event_reads.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(after - before, 0, "idle readers read the store");

    // And they still see what comes next.
    let sent = answer(&client, &id, "7").await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    for stream in readers {
        let rest = stream.finish().await;
        assert!(rest.body.contains("StopEvent"), "{}", rest.body);
    }
}

/// A thousand readers of a run parked in the store (waiting for an answer, out of memory)
/// read nothing while it waits, and are all woken when it is answered: the server tells
/// them itself when it brings the run back, rather than each polling the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_readers_of_a_parked_run_do_not_poll_the_store_and_wake_when_it_moves() {
    const READERS: usize = 1_000;
    workflows_server::raise_open_file_limit();
    let knobs = Knobs::new(SqliteStorage::in_memory().unwrap());
    let parking = workflows_server::Config {
        idle_release: Some(Duration::from_millis(50)),
        ..config()
    };
    let (server, client) = serve(knobs.clone(), parking).await;
    let id = start(&client, "number", json!({})).await;
    until_event(&client, &id, "InputRequiredEvent").await;
    assert!(
        until(PATIENCE, || async { server.runs_in_memory() == 0 }).await,
        "the waiting run was parked"
    );

    let (ready, mut all_ready) = tokio::sync::mpsc::channel::<()>(READERS);
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (id, ready) = (id.clone(), ready.clone());
            tokio::spawn(async move {
                let mut stream = client
                    .stream(&format!("/events/{id}?sse=false&after_sequence=-1"), &[])
                    .await;
                let mut types = Vec::new();
                while let Some(line) = stream.next_piece(b"\n").await {
                    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
                    types.push(event["type"].as_str().unwrap().to_owned());
                    if types.len() == 1 {
                        ready.send(()).await.unwrap();
                    }
                }
                types
            })
        })
        .collect();
    drop(ready);
    for _ in 0..READERS {
        all_ready
            .recv()
            .await
            .expect("every reader reaches the prompt");
    }

    // Elapsed time is the behaviour here: over 25 poll intervals (a reader polling at each
    // would make 25,000 reads), the idle readers read nothing. (Each looks again after a
    // long fallback, in case a change went untold: none is due in this window.)
    let before = knobs.event_reads.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(config().poll_interval * 25).await;
    let idle = knobs.event_reads.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert!(
        idle < READERS,
        "{READERS} idle readers read the store {idle} times"
    );
    assert_eq!(
        server.runs_in_memory(),
        0,
        "reading did not bring the run back"
    );

    let sent = answer(&client, &id, "7").await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    // Woken, not found by the fallback look (ten seconds after each reader's last).
    let woken = tokio::time::timeout(Duration::from_secs(6), async {
        for reader in readers {
            assert_eq!(reader.await.unwrap(), ["InputRequiredEvent", "StopEvent"]);
        }
    });
    woken
        .await
        .expect("the readers were woken when the run moved");
}
