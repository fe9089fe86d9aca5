//! Who may call the API: bearer tokens, other origins (CORS and simple cross-site requests),
//! the `Host` a request names (DNS rebinding), and listening beyond loopback.

mod common;

use std::net::SocketAddr;

use common::*;
use serde_json::json;
use workflows_server::storage::SqliteStorage;
use workflows_server::{Auth, Config, Cors, ServerError, Tokens};

const TOKEN: &str = "test-token-0123456789abcdef";

fn with_token() -> Config {
    Config {
        auth: Auth::Tokens(Tokens::new([TOKEN, "second-token-0123456789"]).unwrap()),
        ..config()
    }
}

/// How many runs the server holds: nothing refused may have started one.
async fn runs(client: &Client, headers: &[(&str, &str)]) -> usize {
    let listed = client.request("GET", "/handlers", headers, None).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    listed.json()["handlers"].as_array().unwrap().len()
}

#[tokio::test]
async fn with_tokens_every_route_but_health_needs_one() {
    let (_server, client) = serve(SqliteStorage::in_memory().unwrap(), with_token()).await;
    let bearer = format!("Bearer {TOKEN}");
    let start = json!({"start_event": {}}).to_string();

    let anonymous = client
        .request(
            "POST",
            "/workflows/number/run-nowait",
            &[],
            Some(start.as_bytes()),
        )
        .await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));
    assert!(
        anonymous.detail().contains("Authorization: Bearer"),
        "{}",
        anonymous.detail()
    );
    for wrong in [
        "Bearer test-token-0123456789abcdeX",
        "Bearer test-token-0123456789abcde",
        "Basic dGVzdDp0ZXN0",
        TOKEN,
    ] {
        let refused = client
            .request("GET", "/workflows", &[("Authorization", wrong)], None)
            .await;
        assert_eq!(refused.status, 401, "{wrong}: {}", refused.body);
    }
    for route in [
        "/workflows",
        "/handlers",
        "/handlers/x",
        "/events/x",
        "/workflows/number/schema",
        "/results/x",
    ] {
        assert_eq!(client.get(route).await.status, 401, "{route}");
    }
    assert_eq!(runs(&client, &[("Authorization", &bearer)]).await, 0);
    assert_eq!(client.get("/health").await.status, 200, "health is open");

    // Either token, the scheme in any case; the Rust client passes one.
    let other = client
        .request(
            "GET",
            "/workflows",
            &[("Authorization", "bearer second-token-0123456789")],
            None,
        )
        .await;
    assert_eq!(other.status, 200, "{}", other.body);
    let api =
        workflows_client::Client::with_token(&format!("http://{}", client.addr), TOKEN).unwrap();
    let run = api
        .run_nowait("number", workflows_client::RunRequest::new())
        .await
        .unwrap();
    api.send(
        &run.handler_id,
        &workflows::prelude::HumanResponseEvent::new("7"),
    )
    .await
    .unwrap();
    let done = api.wait(&run.handler_id).await.unwrap();
    assert_eq!(done.result.unwrap().value, json!({"result": "7"}));
    let refused = api_at(&client, "")
        .workflows()
        .await
        .expect_err("the plain client bears no token");
    assert_eq!(refused.status(), Some(401));
}

#[tokio::test]
async fn without_tokens_a_loopback_server_lets_anyone_on_the_machine_in() {
    let (_server, client) = serve(SqliteStorage::in_memory().unwrap(), config()).await;
    assert_eq!(client.get("/workflows").await.status, 200);
}

#[tokio::test]
async fn listening_beyond_loopback_needs_tokens_or_an_explicit_no() {
    let everywhere = SocketAddr::from(([0, 0, 0, 0], 0));
    let refused = server(
        SqliteStorage::in_memory().unwrap(),
        Config {
            bind: everywhere,
            ..config()
        },
    )
    .start()
    .await
    .err()
    .expect("no tokens beyond loopback");
    assert!(matches!(refused, ServerError::Config(_)), "{refused:?}");
    assert!(
        refused.to_string().contains("--no-auth"),
        "says how: {refused}"
    );
    for auth in [Auth::Off, with_token().auth] {
        let running = server(
            SqliteStorage::in_memory().unwrap(),
            Config {
                bind: everywhere,
                auth: auth.clone(),
                ..config()
            },
        )
        .start()
        .await
        .unwrap_or_else(|e| panic!("{auth:?}: {e}"));
        running.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_page_of_another_origin_can_neither_start_nor_read_runs() {
    let (_server, client) = serve(SqliteStorage::in_memory().unwrap(), config()).await;
    let start = json!({"start_event": {}}).to_string();
    let own = format!("http://{}", client.addr);
    // A foreign page: through fetch (JSON, after a preflight the server does not allow), a
    // simple `text/plain` POST that needs no preflight, a form, and an opaque `null` origin.
    let attempts: [&[(&str, &str)]; 4] = [
        &[("Origin", "https://evil.example")],
        &[
            ("Origin", "https://evil.example"),
            ("Content-Type", "text/plain"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        &[
            ("Origin", "http://127.0.0.1:9"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &[("Origin", "null"), ("Content-Type", "text/plain")],
    ];
    for headers in attempts {
        let refused = client
            .request(
                "POST",
                "/workflows/number/run-nowait",
                headers,
                Some(start.as_bytes()),
            )
            .await;
        assert_eq!(refused.status, 403, "{headers:?}: {}", refused.body);
        assert!(refused.header("access-control-allow-origin").is_none());
    }
    let read = client
        .request(
            "GET",
            "/handlers",
            &[("Origin", "https://evil.example")],
            None,
        )
        .await;
    assert_eq!(read.status, 403);
    // An image or script tag: no Origin, but the browser says the request is cross-site.
    let embedded = client
        .request(
            "GET",
            "/handlers",
            &[
                ("Sec-Fetch-Site", "cross-site"),
                ("Sec-Fetch-Mode", "no-cors"),
            ],
            None,
        )
        .await;
    assert_eq!(embedded.status, 403, "{}", embedded.body);
    assert_eq!(runs(&client, &[]).await, 0, "nothing refused started a run");

    // The server's own page, and a link followed from elsewhere, are let in.
    let same = client
        .request(
            "POST",
            "/workflows/number/run-nowait",
            &[("Origin", &own), ("Sec-Fetch-Site", "same-origin")],
            Some(start.as_bytes()),
        )
        .await;
    assert_eq!(same.status, 200, "{}", same.body);
    let followed = client
        .request(
            "GET",
            "/workflows",
            &[
                ("Sec-Fetch-Site", "cross-site"),
                ("Sec-Fetch-Mode", "navigate"),
            ],
            None,
        )
        .await;
    assert_eq!(followed.status, 200, "{}", followed.body);
}

#[tokio::test]
async fn listed_origins_get_cors_with_credentials_and_any_origin_gets_none() {
    let listed = Config {
        cors: Cors::Origins(vec!["https://console.example".into()]),
        ..config()
    };
    let (_server, client) = serve(SqliteStorage::in_memory().unwrap(), listed).await;
    let from = |origin: &'static str| [("Origin", origin)];
    let allowed = client
        .request("GET", "/handlers", &from("https://console.example"), None)
        .await;
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://console.example")
    );
    assert_eq!(
        allowed.header("access-control-allow-credentials"),
        Some("true")
    );
    let preflight = client
        .request(
            "OPTIONS",
            "/workflows/number/run-nowait",
            &[
                ("Origin", "https://console.example"),
                ("Access-Control-Request-Method", "POST"),
                (
                    "Access-Control-Request-Headers",
                    "content-type,authorization",
                ),
            ],
            None,
        )
        .await;
    assert!(preflight.status < 300, "{}", preflight.status);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://console.example")
    );
    let other = client
        .request("GET", "/handlers", &from("https://evil.example"), None)
        .await;
    assert_eq!(other.status, 403);
    assert!(
        other.detail().contains("--cors-origin"),
        "{}",
        other.detail()
    );

    let any = Config {
        cors: Cors::AnyOrigin,
        ..config()
    };
    let (_server, client) = serve(SqliteStorage::in_memory().unwrap(), any).await;
    let open = client
        .request("GET", "/handlers", &from("https://anyone.example"), None)
        .await;
    assert_eq!(open.status, 200);
    assert_eq!(open.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        open.header("access-control-allow-credentials"),
        None,
        "never a wildcard with credentials"
    );
}

#[tokio::test]
async fn a_loopback_server_answers_only_to_loopback_names_and_listed_hosts() {
    let (_server, client) = serve(SqliteStorage::in_memory().unwrap(), config()).await;
    let port = client.addr.port();
    let rebound = format!("attacker.example:{port}");
    let refused = client
        .request("GET", "/handlers", &[("Host", &rebound)], None)
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.detail().contains("attacker.example"),
        "{}",
        refused.detail()
    );
    for host in [
        format!("localhost:{port}"),
        format!("LOCALHOST.:{port}"),
        format!("console.localhost:{port}"),
        format!("[::1]:{port}"),
        format!("127.0.0.1:{port}"),
    ] {
        let ok = client
            .request("GET", "/workflows", &[("Host", &host)], None)
            .await;
        assert_eq!(ok.status, 200, "{host}: {}", ok.body);
    }
    // An own origin is judged by the Host it came with.
    let localhost = format!("http://localhost:{port}");
    let page = client
        .request(
            "GET",
            "/workflows",
            &[
                ("Host", &format!("localhost:{port}")),
                ("Origin", &localhost),
            ],
            None,
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);

    let named = Config {
        allowed_hosts: vec!["Workflows.Internal".into()],
        ..config()
    };
    let (_server, client) = serve(SqliteStorage::in_memory().unwrap(), named).await;
    let host = format!("workflows.internal:{}", client.addr.port());
    let ok = client
        .request("GET", "/workflows", &[("Host", &host)], None)
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}
