//! Every route of the API and its error answers, on an in-memory SQLite store.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

use workflows::prelude::*;
use workflows_server::Server;
use workflows_server::storage::SqliteStorage;

async fn test_server() -> (workflows_server::RunningServer, Client) {
    serve(SqliteStorage::in_memory().unwrap(), config()).await
}

#[tokio::test]
async fn health_and_the_workflow_list() {
    let (_server, client) = test_server().await;
    let health = client.get("/health").await;
    assert_eq!(
        (health.status, health.json()),
        (200, json!({"status": "healthy"}))
    );
    assert_eq!(
        client.get("/workflows").await.json(),
        json!({"workflows": ["number", "greet", "broken", "slow", "ballot", "tally", "ponder", "visits", "pair"]})
    );
    let missing = client.get("/nothing/here").await;
    assert_eq!(
        (missing.status, missing.detail()),
        (404, "Not Found".to_owned())
    );
}

#[tokio::test]
async fn health_says_unhealthy_while_the_store_does_not_answer_or_cannot_write() {
    let knobs = Knobs::new(SqliteStorage::in_memory().unwrap());
    let (_server, client) = serve(knobs.clone(), config()).await;
    assert_eq!(client.get("/health").await.status, 200);
    knobs.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let down = client.get("/health").await;
    assert_eq!(
        (down.status, down.json()),
        (503, json!({"status": "unhealthy"}))
    );
    knobs.down.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(client.get("/health").await.status, 200);

    // A store that reads but cannot write (a full disk) is unhealthy too.
    knobs
        .read_only
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(client.get("/health").await.status, 503);
    assert_eq!(
        client.get("/handlers").await.status,
        200,
        "reads still work"
    );
    knobs
        .read_only
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(client.get("/health").await.status, 200);
}

#[tokio::test]
async fn schema_events_and_representation_describe_the_workflow() {
    let (_server, client) = test_server().await;
    let schema = client.get("/workflows/greet/schema").await.json();
    assert_eq!(
        schema["start"],
        json!({"title": "Greet", "description": "A start event of the workflow's own.", "type": "object",
               "properties": {"name": {"title": "Name", "type": "string"}}, "required": ["name"]})
    );
    assert_eq!(schema["stop"]["title"], "Greeting");
    assert_eq!(schema["stop"]["properties"]["greeting"]["type"], "string");
    let number = client.get("/workflows/number/schema").await.json();
    assert_eq!(
        number["start"]["additionalProperties"], true,
        "StartEvent takes any fields"
    );
    assert_eq!(number["stop"]["required"], json!(["result"]));

    let events = client.get("/workflows/number/events").await.json();
    let titles: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    for name in [
        "StartEvent",
        "InputRequiredEvent",
        "HumanResponseEvent",
        "StopEvent",
    ] {
        assert!(titles.contains(&name), "{name} missing from {titles:?}");
    }
    let answer = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["title"] == "HumanResponseEvent")
        .unwrap();
    assert_eq!(answer["properties"]["response"]["type"], "string");

    let graph = client.get("/workflows/number/representation").await.json()["graph"].clone();
    let edge = |from: &str, to: &str| {
        graph["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["source"] == from && e["target"] == to)
    };
    assert!(edge("StartEvent", "ask") && edge("ask", "InputRequiredEvent"));
    assert!(
        edge("InputRequiredEvent", "external_step") && edge("external_step", "HumanResponseEvent")
    );
    assert!(edge("HumanResponseEvent", "answer") && edge("answer", "StopEvent"));
    let step = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "ask")
        .unwrap();
    assert_eq!(step["node_type"], "step");

    // The reference words `/events`' 404 differently from the others'.
    for (path, detail) in [
        ("schema", "Workflow not found"),
        ("events", "Workflow 'nope' not found"),
        ("representation", "Workflow not found"),
    ] {
        let reply = client.get(&format!("/workflows/nope/{path}")).await;
        assert_eq!(
            (reply.status, reply.detail()),
            (404, detail.to_owned()),
            "{path}"
        );
    }
}

#[tokio::test]
async fn run_waits_for_the_result_and_reports_failures_with_500() {
    let (_server, client) = test_server().await;
    let reply = client
        .post(
            "/workflows/greet/run",
            &json!({"start_event": {"name": "Ada"}}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["status"], "completed");
    assert_eq!(
        body["result"],
        json!({"value": {"greeting": "hello Ada"}, "qualified_name": "api::common.Greeting", "type": "Greeting", "types": ["StopEvent"]})
    );
    assert!(body["completed_at"].is_string() && body["error"].is_null());

    // The start event as an envelope works too, and so does the legacy `kwargs`.
    let enveloped = client
        .post(
            "/workflows/greet/run",
            &json!({"start_event": {"type": "Greet", "value": {"name": "Bo"}}}),
        )
        .await;
    assert_eq!(enveloped.json()["result"]["value"]["greeting"], "hello Bo");
    let kwargs = client
        .post("/workflows/greet/run", &json!({"kwargs": {"name": "Cy"}}))
        .await;
    assert_eq!(kwargs.json()["result"]["value"]["greeting"], "hello Cy");

    let failed = client.post("/workflows/broken/run", &json!({})).await;
    assert_eq!(failed.status, 500);
    let body = failed.json();
    assert_eq!(body["status"], "failed");
    // The step's own message, as the reference gives the exception's.
    assert_eq!(body["error"], "boom", "{body}");
    assert!(body["result"].is_null());
    // The stream's last event says which step failed, with what type of error, after how
    // many attempts and how long.
    let events = all_events(&client, body["handler_id"].as_str().unwrap(), false).await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "WorkflowFailedEvent");
    assert_eq!(
        last["qualified_name"],
        "workflows.events.WorkflowFailedEvent"
    );
    assert_eq!(last["types"], json!(["StopEvent"]));
    assert_eq!(last["value"]["step_name"], "boom");
    assert_eq!(
        last["value"]["exception"],
        json!({"exception_type": "alloc::string.String", "exception_message": "boom"})
    );
    assert_eq!(last["value"]["attempts"], 1);
    assert!(last["value"]["elapsed_seconds"].as_f64().unwrap() >= 0.0);
}

#[tokio::test]
async fn bad_run_requests_are_4xx_and_start_nothing() {
    let (_server, client) = test_server().await;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "/workflows/nope/run",
            b"{}".to_vec(),
            404,
            "Workflow not found",
        ),
        (
            "/workflows/greet/run",
            b"{\"start_event\": ".to_vec(),
            400,
            "Invalid JSON body",
        ),
        (
            "/workflows/greet/run",
            br#"{"start_event": {"nam": "Ada"}}"#.to_vec(),
            400,
            "Validation error for 'start_event'",
        ),
        (
            "/workflows/greet/run-nowait",
            br#"{"start_event": {"type": "StartEvent", "value": {}}}"#.to_vec(),
            400,
            "Validation error for 'start_event': Invalid event type: StartEvent. Expected one of ",
        ),
        (
            "/workflows/greet/run-nowait",
            br#"{"start_event": {"type": "Greeting", "value": {"greeting": "hi"}}}"#.to_vec(),
            400,
            "Start event must be an instance of <class 'api::common.Greet'>",
        ),
        (
            "/workflows/greet/run-nowait",
            b"[1, 2]".to_vec(),
            400,
            "must be a JSON object",
        ),
        (
            "/workflows/number/run-nowait",
            br#"{"context": {"state": {}}}"#.to_vec(),
            400,
            "Context API is disabled",
        ),
        (
            "/workflows/number/run-nowait",
            br#"{"handler_id": 7}"#.to_vec(),
            400,
            "handler_id",
        ),
    ];
    for (path, body, status, detail) in cases {
        let reply = client.send("POST", path, Some(&body)).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.body);
        assert!(reply.detail().contains(detail), "{path}: {}", reply.body);
    }
    // A body over the limit (1 MiB by default) is refused before it is read whole.
    let huge = format!(
        "{{\"start_event\": {{\"name\": \"{}\"}}}}",
        "x".repeat(2 << 20)
    );
    let reply = client
        .send("POST", "/workflows/greet/run", Some(huge.as_bytes()))
        .await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert!(reply.detail().contains("too large"));

    let handlers = client.get("/handlers").await.json();
    assert_eq!(
        handlers,
        json!({"handlers": []}),
        "no bad request started a run"
    );
}

#[tokio::test]
async fn handlers_are_listed_filtered_and_reported_with_their_status_codes() {
    let (_server, client) = test_server().await;
    let waiting = start(&client, "number", json!({})).await;
    let done = client
        .post(
            "/workflows/greet/run",
            &json!({"start_event": {"name": "A"}}),
        )
        .await;
    let done = done.json()["handler_id"].as_str().unwrap().to_owned();
    let failed = client.post("/workflows/broken/run", &json!({})).await;
    let failed = failed.json()["handler_id"].as_str().unwrap().to_owned();

    let ids = |v: Value| -> Vec<String> {
        let mut ids: Vec<String> = v["handlers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["handler_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        ids(client.get("/handlers").await.json()),
        sorted(vec![waiting.clone(), done.clone(), failed.clone()])
    );
    assert_eq!(
        ids(client.get("/handlers?status=running").await.json()),
        vec![waiting.clone()]
    );
    assert_eq!(
        ids(client
            .get("/handlers?status=completed&status=failed")
            .await
            .json()),
        sorted(vec![done.clone(), failed.clone()])
    );
    assert_eq!(
        ids(client.get("/handlers?workflow_name=greet").await.json()),
        vec![done.clone()]
    );
    assert_eq!(
        ids(client.get("/handlers?status=bogus").await.json()),
        Vec::<String>::new()
    );

    let running = client.get(&format!("/handlers/{waiting}")).await;
    assert_eq!(running.status, 202);
    let body = running.json();
    for key in [
        "handler_id",
        "workflow_name",
        "run_id",
        "error",
        "result",
        "status",
        "started_at",
        "updated_at",
        "completed_at",
    ] {
        assert!(body.get(key).is_some(), "{key} missing: {body}");
    }
    assert_eq!(client.get(&format!("/handlers/{done}")).await.status, 200);
    assert_eq!(client.get(&format!("/handlers/{failed}")).await.status, 500);
    let missing = client.get("/handlers/nope").await;
    assert_eq!(
        (missing.status, missing.detail()),
        (404, "Handler not found".to_owned())
    );

    // The deprecated results route unwraps a plain StopEvent's result.
    let finished = start(&client, "number", json!({})).await;
    until_event(&client, &finished, "InputRequiredEvent").await;
    assert_eq!(answer(&client, &finished, "7").await.status, 200);
    until_status(&client, &finished, "completed").await;
    let legacy = client.get(&format!("/results/{finished}")).await;
    assert_eq!(
        (legacy.status, legacy.json()["result"].clone()),
        (200, json!("7"))
    );
    assert_eq!(client.get(&format!("/results/{waiting}")).await.status, 202);
}

#[tokio::test]
async fn a_handler_id_is_taken_while_its_run_runs_and_free_after() {
    let (_server, client) = test_server().await;
    let body = json!({"handler_id": "mine", "start_event": {}});
    let first = client.post("/workflows/number/run-nowait", &body).await;
    assert_eq!(
        (first.status, first.json()["handler_id"].clone()),
        (200, json!("mine"))
    );
    let again = client.post("/workflows/number/run-nowait", &body).await;
    assert_eq!(
        (again.status, again.detail()),
        (409, "Handler 'mine' is already running".to_owned())
    );

    until_event(&client, "mine", "InputRequiredEvent").await;
    answer(&client, "mine", "1").await;
    until_status(&client, "mine", "completed").await;
    let reused = client.post("/workflows/number/run-nowait", &body).await;
    assert_eq!(reused.status, 200);
    assert_ne!(reused.json()["run_id"], first.json()["run_id"], "a new run");
    assert_eq!(reused.json()["status"], "running");
}

#[tokio::test]
async fn sending_events_checks_the_handler_the_type_and_the_data() {
    let (_server, client) = test_server().await;
    let id = start(&client, "number", json!({})).await;
    until_event(&client, &id, "InputRequiredEvent").await;
    let post = |body: Value| {
        let id = id.clone();
        async move { client.post(&format!("/events/{id}"), &body).await }
    };
    let cases = [
        (json!({"nothing": 1}), 400, "Event data is required"),
        (
            json!({"event": {"type": "Nope", "value": {}}}),
            400,
            "Invalid event type: Nope",
        ),
        (
            json!({"event": {"type": "HumanResponseEvent", "value": {"response": 5}}}),
            400,
            "Failed to deserialize event",
        ),
        (json!({"event": [1]}), 400, "Must be a json object"),
        (
            json!({"event": {"type": "WorkflowIdleEvent", "value": {}}}),
            400,
            "Invalid event type: WorkflowIdleEvent. Expected one of ",
        ),
        (
            json!({"event": {"type": "Vote", "value": {"approve": true}}}),
            400,
            "Invalid event type: Vote. Expected one of ",
        ),
        (
            json!({"event": {"qualified_name": "elsewhere.Vote", "value": {"approve": true}}}),
            400,
            "Event type elsewhere.Vote is not declared by this workflow.",
        ),
        (
            json!({"event": {"type": "HumanResponseEvent", "value": {"response": "1"}}, "step": "nope"}),
            400,
            "has no step 'nope'",
        ),
    ];
    for (body, status, detail) in cases {
        let reply = post(body.clone()).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        assert!(reply.detail().contains(detail), "{body}: {}", reply.body);
    }
    let unknown = client
        .post(
            "/events/nope",
            &json!({"event": {"type": "HumanResponseEvent", "value": {"response": "1"}}}),
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.detail()),
        (404, "Handler not found".to_owned())
    );
    assert_eq!(
        client
            .send("POST", &format!("/events/{id}"), Some(b"{oops"))
            .await
            .status,
        400
    );
    // Nothing above reached the run: it still waits, and a good answer (as a JSON string,
    // as older clients send it, and aimed at the step) finishes it.
    assert_eq!(
        client.get(&format!("/handlers/{id}")).await.json()["status"],
        "running"
    );
    let sent = post(json!({
        "event": "{\"type\": \"HumanResponseEvent\", \"value\": {\"response\": \"9\"}}",
        "step": "answer",
    }))
    .await;
    assert_eq!((sent.status, sent.json()), (200, json!({"status": "sent"})));
    let done = until_status(&client, &id, "completed").await;
    assert_eq!(done["result"]["value"]["result"], "9");
    let late = answer(&client, &id, "10").await;
    assert_eq!(
        (late.status, late.detail()),
        (409, "Workflow already completed".to_owned())
    );
}

#[tokio::test]
async fn an_answer_type_used_only_inside_wait_for_event_is_found_by_name() {
    let (_server, client) = test_server().await;
    let listed = client.get("/workflows/ballot/events").await.json();
    let vote = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["title"] == "Vote")
        .expect("listed as an additional event");
    assert_eq!(vote["properties"]["approve"]["type"], "boolean");
    let id = start(&client, "ballot", json!({})).await;
    until_event(&client, &id, "InputRequiredEvent").await;
    let sent = client
        .post(
            &format!("/events/{id}"),
            &json!({"event": {"type": "Vote", "value": {"approve": true}}}),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let done = until_status(&client, &id, "completed").await;
    assert_eq!(done["result"]["value"]["result"], true);
}

#[tokio::test]
async fn cancel_ends_a_run_and_purge_deletes_it() {
    let (_server, client) = test_server().await;
    let id = start(&client, "number", json!({})).await;
    until_event(&client, &id, "InputRequiredEvent").await;
    let cancelled = client
        .send("POST", &format!("/handlers/{id}/cancel"), None)
        .await;
    assert_eq!(
        (cancelled.status, cancelled.json()),
        (200, json!({"status": "cancelled"}))
    );
    let body = client.get(&format!("/handlers/{id}")).await;
    assert_eq!(
        (body.status, body.json()["status"].clone()),
        (500, json!("cancelled"))
    );
    let events = all_events(&client, &id, false).await;
    let last = events.last().unwrap();
    assert_eq!(
        (last["type"].clone(), last["types"].clone()),
        (json!("WorkflowCancelledEvent"), json!(["StopEvent"]))
    );

    // Cancelling again finds nothing to cancel; purging deletes the record.
    let again = client
        .send("POST", &format!("/handlers/{id}/cancel"), None)
        .await;
    assert_eq!(again.status, 404);
    let purged = client
        .send("POST", &format!("/handlers/{id}/cancel?purge=true"), None)
        .await;
    assert_eq!(
        (purged.status, purged.json()),
        (200, json!({"status": "deleted"}))
    );
    assert_eq!(client.get(&format!("/handlers/{id}")).await.status, 404);
    assert_eq!(client.get(&format!("/events/{id}")).await.status, 404);

    // Purging a running run cancels it first.
    let running = start(&client, "number", json!({})).await;
    let purged = client
        .send(
            "POST",
            &format!("/handlers/{running}/cancel?purge=true"),
            None,
        )
        .await;
    assert_eq!(purged.json(), json!({"status": "deleted"}));
    assert_eq!(
        client.get(&format!("/handlers/{running}")).await.status,
        404
    );
    assert_eq!(
        client
            .send("POST", "/handlers/nope/cancel", None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn a_handler_id_of_an_ended_run_continues_from_its_state() {
    let (_server, client) = test_server().await;
    let body = json!({"handler_id": "regular", "start_event": {}});
    for expected in 1..=3 {
        let reply = client.post("/workflows/visits/run", &body).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            reply.json()["result"]["value"]["result"],
            json!([expected, expected]),
            "typed state and store both carried over"
        );
    }
    // Carried over even when the new run has to start again before its first snapshot
    // (its first event write fails, so it is resumed from its start event).
    let knobs = Knobs::new(SqliteStorage::in_memory().unwrap());
    let (_other, flaky) = serve(knobs.clone(), config()).await;
    let first = flaky
        .post("/workflows/visits/run", &json!({"handler_id": "v"}))
        .await;
    assert_eq!(first.json()["result"]["value"]["result"], json!([1, 1]));
    knobs
        .fail_appends
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let again = flaky
        .post("/workflows/visits/run-nowait", &json!({"handler_id": "v"}))
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    let done = until_status(&flaky, "v", "completed").await;
    assert_eq!(done["result"]["value"]["result"], json!([2, 2]));

    // Another handler id starts from nothing.
    let fresh = client.post("/workflows/visits/run", &json!({})).await;
    assert_eq!(fresh.json()["result"]["value"]["result"], json!([1, 1]));
}

#[tokio::test]
async fn the_server_listens_on_loopback_unless_told_otherwise_and_refuses_duplicate_names() {
    let defaults = workflows_server::Config::default();
    assert!(defaults.bind.ip().is_loopback(), "{}", defaults.bind);
    assert_eq!(defaults.bind.port(), 8080);

    let twice = workflows_server::Server::new()
        .workflow("number", Number.runner())
        .workflow("number", Tally.runner())
        .storage(SqliteStorage::in_memory().unwrap())
        .config(config())
        .start()
        .await;
    let Err(error) = twice else {
        panic!("two workflows under one name started");
    };
    assert!(error.to_string().contains("`number`"), "{error}");

    let mut hasty = config();
    hasty.lease_ttl = std::time::Duration::from_millis(10);
    let Err(error) = workflows_server::Server::new()
        .storage(SqliteStorage::in_memory().unwrap())
        .config(hasty)
        .start()
        .await
    else {
        panic!("a 10 ms lease was accepted");
    };
    assert!(error.to_string().contains("lease_ttl"), "{error}");
}

/// Waits inside its step for a `Vote` its workflow does not declare (no `Server::events`).
struct UnlistedBallot;

#[workflow]
impl UnlistedBallot {
    #[step]
    async fn ask(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<bool>, WaitError> {
        let vote = ctx
            .wait_for_event(WaitFor::<Vote>::new().prompt(InputRequiredEvent::new("approve?")))
            .await?;
        Ok(StopEvent::new(vote.approve))
    }
}

#[tokio::test]
async fn a_type_a_step_waits_for_inside_is_taken_though_undeclared() {
    // Better than the reference, which refuses any type the workflow does not declare: an
    // answer a step waits for is taken, whether the run is in memory (the run says what it
    // waits for) or parked in the store (its snapshot says).
    for idle_release in [None, Some(Duration::ZERO)] {
        let mut settings = config();
        settings.idle_release = idle_release;
        let running = Server::new()
            .workflow("unlisted", UnlistedBallot.runner())
            .storage(SqliteStorage::in_memory().unwrap())
            .config(settings)
            .start()
            .await
            .unwrap();
        let client = Client::new(running.local_addr());
        let vote = json!({"event": {"type": "Vote", "value": {"approve": true}}});

        let id = start(&client, "unlisted", json!({})).await;
        until_event(&client, &id, "InputRequiredEvent").await;
        if idle_release.is_some() {
            assert_eq!(settled(&running).await, 0, "the waiting run left memory");
        } else {
            assert_eq!(running.runs_in_memory(), 1);
        }
        // Another type is refused with what the workflow declares.
        let wrong = client
            .post(
                &format!("/events/{id}"),
                &json!({"event": {"type": "HumanResponseEvent", "value": {"response": "yes"}}}),
            )
            .await;
        assert_eq!(wrong.status, 400, "{}", wrong.body);
        assert!(
            wrong
                .detail()
                .starts_with("Invalid event type: HumanResponseEvent. Expected one of "),
            "{}",
            wrong.body
        );
        let reply = client.post(&format!("/events/{id}"), &vote).await;
        assert_eq!(reply.status, 200, "{idle_release:?}: {}", reply.body);
        let done = until_status(&client, &id, "completed").await;
        assert_eq!(done["result"]["value"]["result"], true);
        running.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn handler_ids_that_cannot_name_a_handler_are_a_400() {
    let (_server, client) = test_server().await;
    let long = "x".repeat(257);
    for path in [
        format!("/handlers/{long}"),
        "/handlers/a%00b".to_owned(),
        "/events/a%0Ab".to_owned(),
        format!("/handlers/{long}/cancel"),
    ] {
        let method = if path.ends_with("/cancel") {
            "POST"
        } else {
            "GET"
        };
        let reply = client.send(method, &path, None).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.body);
        assert!(
            reply.detail().starts_with("Invalid handler id"),
            "{path}: {}",
            reply.body
        );
    }
    for id in [json!(""), json!("a\u{0}b"), json!(long)] {
        let reply = client
            .post("/workflows/number/run-nowait", &json!({ "handler_id": id }))
            .await;
        assert_eq!(reply.status, 400, "{id}: {}", reply.body);
        assert!(
            reply.detail().contains("Invalid handler id"),
            "{id}: {}",
            reply.body
        );
    }
    // The longest id that is allowed works.
    let longest = "y".repeat(256);
    let reply = client
        .post(
            "/workflows/number/run-nowait",
            &json!({ "handler_id": longest }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        client.get(&format!("/handlers/{longest}")).await.status,
        202
    );
}

#[tokio::test]
async fn handlers_come_in_pages_when_a_limit_is_given() {
    let (_server, client) = serve(SqliteStorage::in_memory().unwrap(), config()).await;
    let mut started = Vec::new();
    for _ in 0..7 {
        started.push(start(&client, "number", json!({})).await);
    }
    // Without a limit, every handler and no cursor, as the reference answers.
    let all = client.get("/handlers").await.json();
    assert_eq!(all["handlers"].as_array().unwrap().len(), 7);
    assert!(all.get("next_cursor").is_none(), "{all}");

    let mut seen = Vec::new();
    let mut path = "/handlers?limit=3".to_owned();
    loop {
        let page = client.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let page = page.json();
        let handlers = page["handlers"].as_array().unwrap();
        assert!(handlers.len() <= 3);
        seen.extend(
            handlers
                .iter()
                .map(|h| h["handler_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                let cursor: String = cursor
                    .bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                            (b as char).to_string()
                        }
                        _ => format!("%{b:02X}"),
                    })
                    .collect();
                path = format!("/handlers?limit=3&cursor={cursor}");
            }
            None => break,
        }
    }
    let mut expected = started.clone();
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected, "every handler once");

    for bad in ["limit=0", "limit=1001", "limit=x", "limit=2&cursor=nope"] {
        let refused = client.get(&format!("/handlers?{bad}")).await;
        assert_eq!(refused.status, 400, "{bad}: {}", refused.body);
    }
}

#[tokio::test]
async fn ended_runs_are_deleted_after_the_retention_and_running_ones_kept() {
    let kept_briefly = workflows_server::Config {
        retention: Some(Duration::from_millis(200)),
        ..config()
    };
    let (_server, client) = serve(SqliteStorage::in_memory().unwrap(), kept_briefly).await;
    let ended = start(&client, "greet", json!({"name": "Ada"})).await;
    until_status(&client, &ended, "completed").await;
    let waiting = start(&client, "number", json!({})).await;
    until_event(&client, &waiting, "InputRequiredEvent").await;
    let gone = until(PATIENCE, || async {
        client.get(&format!("/handlers/{ended}")).await.status == 404
    })
    .await;
    assert!(gone, "the ended run outlived its retention");
    assert_eq!(client.get(&format!("/events/{ended}")).await.status, 404);
    let running = client.get(&format!("/handlers/{waiting}")).await;
    assert_eq!(running.status, 202, "a running run is never expired");
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, Event)]
struct Shard {
    n: u32,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, Event)]
#[event(external)]
struct ShardDone {
    n: u32,
}

/// Fans out three shards, each answered by a person inside its branch; a join sums them.
struct Shards;

#[workflow]
impl Shards {
    #[step]
    async fn split(&self, _ev: StartEvent) -> Vec<Shard> {
        (1..=3).map(|n| Shard { n }).collect()
    }

    #[step(num_workers = 3)]
    async fn work(&self, ctx: &Context, shard: Shard) -> Result<ShardDone, WaitError> {
        let answer = ctx
            .wait_for_event(
                WaitFor::<HumanResponseEvent>::new()
                    .prompt(InputRequiredEvent::new(format!("shard {}", shard.n)))
                    .require_path("shard", shard.n),
            )
            .await?;
        Ok(ShardDone {
            n: shard.n * answer.response.parse::<u32>().unwrap_or(0),
        })
    }

    #[step]
    async fn sum(&self, done: Vec<ShardDone>) -> StopEvent<Vec<u32>> {
        StopEvent::new(done.iter().map(|d| d.n).collect())
    }
}

#[tokio::test]
async fn a_fan_out_and_its_join_run_over_http_and_a_type_only_the_join_takes_is_refused() {
    // Parked between answers (idle_release zero), so every answer resumes the run from its
    // stored snapshot: the join's lineage travels through the store.
    let mut settings = config();
    settings.idle_release = Some(Duration::ZERO);
    let running = Server::new()
        .workflow("shards", Shards.runner())
        .storage(SqliteStorage::in_memory().unwrap())
        .config(settings)
        .start()
        .await
        .unwrap();
    let client = Client::new(running.local_addr());
    // The reference's representation: the list's elements are produced by `split`, and it
    // links steps and events only (a join's binding to its fan-out is not a step-to-step edge).
    let graph = client.get("/workflows/shards/representation").await.json()["graph"].clone();
    let node = |id: &str| {
        graph["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no node {id} in {graph}"))
    };
    assert_eq!(node("Shard")["produced_by"], json!(["split"]));
    let steps = ["split", "work", "sum"];
    assert!(
        graph["edges"].as_array().unwrap().iter().all(|e| {
            !(steps.contains(&e["source"].as_str().unwrap())
                && steps.contains(&e["target"].as_str().unwrap()))
        }),
        "{graph}"
    );
    let id = start(&client, "shards", json!({})).await;
    let mut stream = api(&client).events(&id).stream();
    let mut prompts = 0;
    while prompts < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("the three prompts come")
            .expect("the stream goes on")
            .expect("an event");
        prompts += usize::from(ev.type_name == "InputRequiredEvent");
    }
    // Only the join takes `ShardDone`: sent from outside it would descend from no fan-out.
    let refused = client
        .post(
            &format!("/events/{id}"),
            &json!({"event": {"type": "ShardDone", "value": {"n": 9}}}),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    for (shard, answer) in [(3, "30"), (1, "10"), (2, "20")] {
        let reply = client
            .post(
                &format!("/events/{id}"),
                &json!({"event": {"type": "HumanResponseEvent",
                    "value": {"response": answer, "shard": shard}}}),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let done = until_status(&client, &id, "completed").await;
    assert_eq!(done["result"]["value"]["result"], json!([10, 40, 90]));
    running.shutdown().await.unwrap();
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, Event)]
#[event(input_required(response = Signature))]
struct SignatureNeeded {
    who: String,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, Event)]
struct Signature {
    who: String,
    ok: bool,
}

/// A child: asks the person its start event names to sign.
struct Sign;

#[workflow]
impl Sign {
    #[step]
    async fn ask(&self, ctx: &Context, ev: StartEvent) -> Result<StopEvent<bool>, WaitError> {
        let who: String = ev.get("who").unwrap_or_default();
        let signature = ctx
            .wait_for_event(
                WaitFor::<Signature>::new()
                    .prompt(SignatureNeeded { who: who.clone() })
                    .require(workflows::field!(Signature, who), who),
            )
            .await?;
        Ok(StopEvent::new(signature.ok))
    }
}

/// Runs two `Sign` children at once.
struct Contract;

#[workflow]
impl Contract {
    #[step(children(Sign))]
    async fn sign(
        &self,
        ctx: &Context,
        _ev: StartEvent,
    ) -> Result<StopEvent<Vec<bool>>, ChildError> {
        let (ann, bob) = tokio::join!(
            ctx.run_child(Sign, StartEvent::new().with("who", "ann")),
            ctx.run_child(Sign, StartEvent::new().with("who", "bob")),
        );
        Ok(StopEvent::new(vec![ann?, bob?]))
    }
}

#[tokio::test]
async fn child_runs_ask_through_the_parents_stream_and_take_answers_sent_to_the_parent() {
    // Parked between answers (idle_release zero): each answer resumes the parent, and its
    // waiting children, from the stored snapshot.
    let mut settings = config();
    settings.idle_release = Some(Duration::ZERO);
    let running = Server::new()
        .workflow("contract", Contract.runner())
        .storage(SqliteStorage::in_memory().unwrap())
        .config(settings)
        .start()
        .await
        .unwrap();
    let client = Client::new(running.local_addr());
    let id = start(&client, "contract", json!({})).await;
    let mut stream = api(&client).events(&id).stream();
    let mut asked = 0;
    while asked < 2 {
        let ev = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .expect("both children ask")
            .expect("the stream goes on")
            .expect("an event");
        asked += usize::from(ev.type_name == "SignatureNeeded");
    }
    drop(stream);
    // Answered in reverse order; the answer's type is one only the children wait for.
    for (who, ok) in [("bob", false), ("ann", true)] {
        let reply = client
            .post(
                &format!("/events/{id}"),
                &json!({"event": {"type": "Signature", "value": {"who": who, "ok": ok}}}),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let done = until_status(&client, &id, "completed").await;
    assert_eq!(done["result"]["value"]["result"], json!([true, false]));
    // The children's events are on the parent's stream, marked with their paths, numbered
    // with the parent's sequence, and a reference client reads them as plain events.
    let events = all_events(&client, &id, false).await;
    let marked: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["type"] == "SignatureNeeded")
        .map(|e| {
            (
                e["child"].as_str().unwrap_or("").to_owned(),
                e["value"]["who"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        marked,
        [
            ("Sign/0".to_owned(), "ann".to_owned()),
            ("Sign/1".to_owned(), "bob".to_owned())
        ]
    );
    assert_eq!(events.last().unwrap()["type"], "StopEvent");
    assert!(events.last().unwrap().get("child").is_none());
    assert_gapless(&client, &id).await;
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_inbox_lists_runs_waiting_for_a_person_oldest_first_with_their_requests() {
    let (running, client) = serve(SqliteStorage::in_memory().unwrap(), config()).await;
    let inbox = || async { client.get("/inbox").await.json()["runs"].clone() };
    assert_eq!(inbox().await, json!([]));

    let number = start(&client, "number", json!({})).await;
    until_event(&client, &number, "InputRequiredEvent").await;
    let listed = until(PATIENCE, || async {
        inbox().await.as_array().unwrap().len() == 1
    })
    .await;
    assert!(listed, "the waiting run is listed");
    let ballot = start(&client, "ballot", json!({})).await;
    until_event(&client, &ballot, "InputRequiredEvent").await;
    let listed = until(PATIENCE, || async {
        inbox().await.as_array().unwrap().len() == 2
    })
    .await;
    assert!(listed, "both waiting runs are listed");
    let pair = start(&client, "pair", json!({})).await;
    let listed = until(PATIENCE, || async {
        inbox().await.as_array().unwrap().len() == 3
            && inbox().await[2]["requests"].as_array().unwrap().len() == 2
    })
    .await;
    assert!(listed, "the run whose children ask is listed");

    let runs = inbox().await;
    let ids: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["handler_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [number.as_str(), ballot.as_str(), pair.as_str()],
        "oldest wait first"
    );
    // The number workflow's step returned its request: answered by a HumanResponseEvent.
    let request = &runs[0]["requests"][0];
    assert_eq!(runs[0]["workflow_name"], "number");
    // Its place in the stream (after the internal events before it).
    let prompt_seq = request["sequence"].as_u64().unwrap();
    let mut stream = api(&client).events(&number).include_internal(true).stream();
    let in_stream = loop {
        let ev = stream.next().await.expect("the prompt").expect("an event");
        if ev.type_name == "InputRequiredEvent" {
            break ev.sequence;
        }
    };
    drop(stream);
    assert_eq!(in_stream, Some(prompt_seq));
    assert_eq!(request["event"]["type"], "InputRequiredEvent");
    assert_eq!(
        request["event"]["value"]["_data"]["prefix"],
        "Enter a number: "
    );
    assert_eq!(request["response"]["type"], "HumanResponseEvent");
    assert_eq!(
        request["response"]["schema"]["properties"]["response"]["type"], "string",
        "{request}"
    );
    // The ballot waits inside its step, under an id, for a `Vote`.
    let request = &runs[1]["requests"][0];
    assert_eq!(request["waiter_id"], "vote");
    assert_eq!(request["response"]["type"], "Vote");
    // The pair's two children ask, each requiring its person.
    let requests = runs[2]["requests"].as_array().unwrap();
    let asked: Vec<(&str, &str)> = requests
        .iter()
        .map(|r| {
            (
                r["child"].as_str().unwrap(),
                r["requirements"][0]["value"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(asked, [("Approval/0", "ann"), ("Approval/1", "bob")]);
    assert_eq!(requests[0]["event"]["child"], "Approval/0");

    // Answered through the API, a run leaves the inbox; the others stay.
    assert_eq!(answer(&client, &number, "5").await.status, 200);
    until_status(&client, &number, "completed").await;
    let left = until(PATIENCE, || async {
        inbox().await.as_array().unwrap().len() == 2
    })
    .await;
    assert!(left, "the answered run left the inbox");
    let reply = client
        .post(
            &format!("/events/{pair}"),
            &json!({"event": {"type": "HumanResponseEvent", "value": {"response": "ok", "who": "bob"}}}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let one_left = until(PATIENCE, || async {
        let runs = inbox().await;
        runs.as_array().unwrap().len() == 2
            && runs[1]["requests"].as_array().unwrap().len() == 1
            && runs[1]["requests"][0]["child"] == "Approval/0"
    })
    .await;
    assert!(
        one_left,
        "bob's request is answered, ann's is still open: {}",
        inbox().await
    );
    assert_eq!(
        client.get("/inbox?workflow_name=ballot").await.json()["runs"][0]["handler_id"],
        json!(ballot)
    );
    let one = client
        .get(&format!("/inbox?handler_id={ballot}"))
        .await
        .json()["runs"]
        .clone();
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(one[0]["handler_id"], json!(ballot));
    assert_eq!(
        client.get("/inbox?handler_id=nobody").await.json()["runs"],
        json!([])
    );
    assert_eq!(client.get("/inbox?limit=0").await.status, 400);
    running.shutdown().await.unwrap();
}

/// A child that asks with a returned request and takes any answer in a step.
struct Question;

#[workflow]
impl Question {
    #[step]
    async fn ask(&self, ev: StartEvent) -> InputRequiredEvent {
        InputRequiredEvent::new(ev.get::<String>("q").unwrap_or_default())
    }

    #[step]
    async fn take(&self, ev: HumanResponseEvent) -> StopEvent<String> {
        StopEvent::new(ev.response)
    }
}

/// Asks two questions through two children at once.
struct Quiz;

#[workflow]
impl Quiz {
    #[step(children(Question))]
    async fn both(
        &self,
        ctx: &Context,
        _ev: StartEvent,
    ) -> Result<StopEvent<Vec<String>>, ChildError> {
        let (a, b) = tokio::join!(
            ctx.run_child(Question, StartEvent::new().with("q", "first?")),
            ctx.run_child(Question, StartEvent::new().with("q", "second?")),
        );
        Ok(StopEvent::new(vec![a?, b?]))
    }
}

#[tokio::test]
async fn an_answer_names_the_child_it_is_for() {
    // Parked between answers: the second answer reaches a child read back from the store.
    let mut settings = config();
    settings.idle_release = Some(Duration::ZERO);
    let running = Server::new()
        .workflow("quiz", Quiz.runner())
        .storage(SqliteStorage::in_memory().unwrap())
        .config(settings)
        .start()
        .await
        .unwrap();
    let client = Client::new(running.local_addr());
    let id = start(&client, "quiz", json!({})).await;
    let asked = until(PATIENCE, || async {
        client.get("/inbox").await.json()["runs"][0]["requests"]
            .as_array()
            .is_some_and(|r| r.len() == 2)
    })
    .await;
    assert!(asked, "both children ask");
    // Both take any `HumanResponseEvent`: the path says which is answered.
    for (child, response) in [("Question/1", "two"), ("Question/0", "one")] {
        let reply = client
            .post(
                &format!("/events/{id}"),
                &json!({"event": {"type": "HumanResponseEvent", "value": {"response": response}}, "child": child}),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let done = until_status(&client, &id, "completed").await;
    assert_eq!(done["result"]["value"]["result"], json!(["one", "two"]));
    let both = client
        .post(
            &format!("/events/{id}"),
            &json!({"event": {"type": "HumanResponseEvent", "value": {"response": "x"}}, "child": "Question/0", "step": "take"}),
        )
        .await;
    assert_eq!(both.status, 400, "{}", both.body);
    running.shutdown().await.unwrap();
}
