//! The workflows the server binary serves for the console to show: an expense approval (a
//! structured request and answer) and a release sign-off (three teams asked at once, in
//! parallel branches), driven over HTTP as the console drives them: started with a structured
//! start event, found in `/inbox` with their answers' schemas, answered, completed; and each
//! workflow's graph drawn as SVG.

mod common;

use common::*;
use serde_json::{Value, json};

fn db(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("wf-console-{name}-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

async fn inbox(client: &Client) -> Vec<Value> {
    client.get("/inbox").await.json()["runs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn run_nowait(client: &Client, workflow: &str, start: Value) -> String {
    let reply = client
        .post(
            &format!("/workflows/{workflow}/run-nowait"),
            &json!({ "start_event": start }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["handler_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expense_over_the_limit_waits_for_a_managers_structured_answer() {
    let path = db("expense");
    let server = Binary::start(&path);
    let client = Client::new(server.addr);
    let listed = client.get("/workflows").await.json();
    assert_eq!(listed["workflows"], json!(["number", "expense", "release"]));
    // The start event's schema is the console's form: typed fields, the category an enum.
    let schema = client.get("/workflows/expense/schema").await.json();
    assert_eq!(schema["start"]["properties"]["amount"]["type"], "number");
    assert!(
        schema["start"]["required"]
            .as_array()
            .unwrap()
            .contains(&json!("employee")),
        "{schema}"
    );

    let small = run_nowait(
        &client,
        "expense",
        json!({"employee": "Ada", "amount": 12.5, "category": "meals", "reason": "lunch"}),
    )
    .await;
    let done = until_status(&client, &small, "completed").await;
    assert_eq!(done["result"]["value"]["decided_by"], "policy");

    let big = run_nowait(
        &client,
        "expense",
        json!({"employee": "Ada", "amount": 900, "category": "equipment", "reason": "a laptop"}),
    )
    .await;
    let waiting = until(PATIENCE, || async { inbox(&client).await.len() == 1 }).await;
    assert!(waiting, "the claim waits for a manager");
    let runs = inbox(&client).await;
    let request = &runs[0]["requests"][0];
    assert_eq!(runs[0]["handler_id"], json!(big));
    assert_eq!(request["event"]["type"], "ApprovalRequest");
    assert_eq!(request["event"]["value"]["amount"], 900.0);
    assert_eq!(request["response"]["type"], "ExpenseDecision");
    let answer_schema = &request["response"]["schema"];
    assert_eq!(answer_schema["properties"]["approve"]["type"], "boolean");
    assert_eq!(answer_schema["properties"]["comment"]["type"], "string");

    let sent = client
        .post(
            &format!("/events/{big}"),
            &json!({"event": {"type": "ExpenseDecision", "value": {"approve": false, "comment": "too much"}}}),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let done = until_status(&client, &big, "completed").await;
    assert_eq!(
        done["result"]["value"],
        json!({"approved": false, "decided_by": "manager", "comment": "too much"})
    );
    assert!(inbox(&client).await.is_empty());
    drop(server);
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_asks_three_teams_at_once_and_ships_when_all_agree() {
    let path = db("release");
    let server = Binary::start(&path);
    let client = Client::new(server.addr);
    let id = run_nowait(&client, "release", json!({"version": "2.0"})).await;
    let asked = until(PATIENCE, || async {
        inbox(&client)
            .await
            .first()
            .is_some_and(|r| r["requests"].as_array().unwrap().len() == 3)
    })
    .await;
    assert!(
        asked,
        "three requests in the inbox: {:?}",
        inbox(&client).await
    );
    let runs = inbox(&client).await;
    let teams: Vec<&str> = runs[0]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["requirements"][0]["value"].as_str().unwrap())
        .collect();
    assert_eq!(teams, ["legal", "security", "docs"]);
    for team in ["docs", "legal", "security"] {
        let sent = client
            .post(
                &format!("/events/{id}"),
                &json!({"event": {"type": "SignOff", "value": {"team": team, "ok": true, "note": format!("{team} ok")}}}),
            )
            .await;
        assert_eq!(sent.status, 200, "{}", sent.body);
    }
    let done = until_status(&client, &id, "completed").await;
    assert_eq!(done["result"]["value"]["result"]["released"], true);
    assert_eq!(
        done["result"]["value"]["result"]["notes"]["security"],
        "security ok"
    );
    drop(server);
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_workflows_graph_is_served_as_svg() {
    let path = db("svg");
    let server = Binary::start(&path);
    let client = Client::new(server.addr);
    for (workflow, nodes) in [
        (
            "number",
            vec!["step:ask", "event:InputRequiredEvent", "step:answer"],
        ),
        (
            "expense",
            vec![
                "step:review",
                "event:ApprovalRequest",
                "event:ExpenseDecision",
                "step:decide",
            ],
        ),
        ("release", vec!["step:split", "step:ask", "step:decide"]),
    ] {
        let reply = client
            .get(&format!("/workflows/{workflow}/graph.svg"))
            .await;
        assert_eq!(reply.status, 200);
        assert!(reply.body.starts_with("<svg"), "{}", reply.body);
        for node in nodes {
            assert!(
                reply.body.contains(&format!("data-node=\"{node}\"")),
                "{workflow}: no {node}"
            );
        }
    }
    assert_eq!(client.get("/workflows/nope/graph.svg").await.status, 404);
    drop(server);
    let _ = std::fs::remove_file(&path);
}
