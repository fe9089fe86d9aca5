//! The server as a library: its routes mounted in an app of the user's own, and its CORS
//! settings.

mod common;

use std::net::SocketAddr;

use axum::routing::get;
use common::*;
use serde_json::json;
use workflows_server::storage::SqliteStorage;
use workflows_server::{Config, Cors, ServerHandle};

/// Serves `server(..)`'s routes under `/api` in an app with a route of its own at `/`.
async fn mounted(config: Config) -> (ServerHandle, Client) {
    let (routes, handle) = server(SqliteStorage::in_memory().unwrap(), config)
        .into_router()
        .await
        .expect("the server prepares");
    let app = axum::Router::new()
        .route("/", get(|| async { "the app's own page" }))
        .nest("/api", routes);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (handle, Client::new(addr))
}

#[tokio::test]
async fn the_routes_serve_a_human_in_the_loop_run_under_a_prefix_beside_the_apps_own() {
    let (handle, client) = mounted(config()).await;
    let own = client.get("/").await;
    assert_eq!((own.status, own.body.as_str()), (200, "the app's own page"));
    assert_eq!(client.get("/api/health").await.status, 200);
    assert_eq!(
        client.get("/workflows").await.status,
        404,
        "not outside the prefix"
    );

    let started = client
        .post(
            "/api/workflows/number/run-nowait",
            &json!({"start_event": {}}),
        )
        .await;
    assert_eq!(started.status, 200, "{}", started.body);
    let id = started.json()["handler_id"].as_str().unwrap().to_owned();
    let mut events = client
        .stream(
            &format!("/api/events/{id}?sse=false&after_sequence=-1"),
            &[],
        )
        .await;
    loop {
        let line = events
            .next_piece(b"\n")
            .await
            .expect("the stream reaches the prompt");
        if line.contains("InputRequiredEvent") {
            break;
        }
    }
    let sent = client
        .post(
            &format!("/api/events/{id}"),
            &json!({"event": {"type": "HumanResponseEvent", "value": {"response": "42"}}}),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    // The stream ends with the run.
    let rest = events.finish().await;
    assert!(rest.body.contains("StopEvent"), "{}", rest.body);
    let done = until_status_at(&client, "/api", &id, "completed").await;
    assert_eq!(done["result"]["value"], json!({"result": "42"}));

    handle.shutdown().await;
    // The app keeps serving; the workflows' routes say they are going away.
    assert_eq!(client.get("/api/health").await.status, 503);
    assert_eq!(client.get("/").await.status, 200);
}

/// The status and `Access-Control-Allow-Origin` answer to a request from `origin`.
async fn allowed(client: &Client, origin: &str) -> (u16, Option<String>) {
    let reply = client
        .stream("/api/health", &[("Origin", origin)])
        .await
        .finish()
        .await;
    (
        reply.status,
        reply
            .header("access-control-allow-origin")
            .map(str::to_owned),
    )
}

#[tokio::test]
async fn cors_allows_the_same_origin_by_default_the_listed_ones_or_leaves_it_to_the_app() {
    let (_own, client) = mounted(config()).await;
    assert_eq!(allowed(&client, "https://a.example").await, (403, None));
    let own = format!("http://{}", client.addr);
    assert_eq!(allowed(&client, &own).await, (200, None));

    let listed = Config {
        cors: Cors::Origins(vec!["https://a.example".into()]),
        ..config()
    };
    let (_listed, client) = mounted(listed).await;
    assert_eq!(
        allowed(&client, "https://a.example").await,
        (200, Some("https://a.example".into()))
    );
    assert_eq!(allowed(&client, "https://b.example").await, (403, None));

    let off = Config {
        cors: Cors::Off,
        ..config()
    };
    // Off: the app's own layers decide; the routes neither answer CORS nor refuse.
    let (_off, client) = mounted(off).await;
    assert_eq!(allowed(&client, "https://a.example").await, (200, None));
}

#[tokio::test]
async fn an_origin_that_is_not_one_is_refused_at_start() {
    let bad = Config {
        cors: Cors::Origins(vec!["https://a.example/".into()]),
        ..config()
    };
    let refused = server(SqliteStorage::in_memory().unwrap(), bad)
        .into_router()
        .await
        .err()
        .expect("a path is not an origin");
    assert!(
        refused
            .to_string()
            .contains("`https://a.example/` is not an origin"),
        "{refused}"
    );
}
