//! HTTP limits: a client that trickles its request head or body, or keeps an idle connection
//! open, is closed at its deadline; a server holding thousands of slow connections still
//! answers others; past the connection cap, connections wait instead of failing the server.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use workflows_server::Config;
use workflows_server::storage::SqliteStorage;

/// Reads until the server closes the connection (or resets it); what it sent.
async fn until_closed(tcp: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&seen).into_owned(),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// Whether `tcp` is closed by the server within [`PATIENCE`], while `trickle` bytes are sent
/// every 50 ms.
async fn closed_while_trickling(tcp: TcpStream, trickle: &'static [u8]) -> (bool, String) {
    let (mut read, mut write) = tcp.into_split();
    let writer = tokio::spawn(async move {
        for byte in trickle.iter().cycle() {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut seen = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 4096];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    writer.abort();
    (closed, String::from_utf8_lossy(&seen).into_owned())
}

fn quick() -> Config {
    Config {
        header_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(300),
        ..config()
    }
}

#[tokio::test]
async fn a_trickled_head_and_an_idle_connection_are_closed_at_the_deadline() {
    let (server, _client) = serve(SqliteStorage::in_memory().unwrap(), quick()).await;
    let addr = server.local_addr();

    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
    let (closed, _) = closed_while_trickling(slow, b"X-Slow: 1\r\n").await;
    assert!(closed, "a head sent a byte at a time is never cut off");

    // Connected, silent.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let said = tokio::time::timeout(PATIENCE, until_closed(&mut idle)).await;
    assert_eq!(
        said.as_deref().ok(),
        Some(""),
        "an idle connection stays open"
    );

    // A keep-alive connection after its answer.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let said = tokio::time::timeout(PATIENCE, until_closed(&mut kept))
        .await
        .expect("an idle keep-alive connection stays open");
    assert!(said.starts_with("HTTP/1.1 200"), "{said}");
}

#[tokio::test]
async fn a_trickled_body_gets_a_408_at_its_deadline() {
    let (server, client) = serve(SqliteStorage::in_memory().unwrap(), quick()).await;
    let mut slow = TcpStream::connect(server.local_addr()).await.unwrap();
    slow.write_all(
        b"POST /workflows/number/run-nowait HTTP/1.1\r\nHost: 127.0.0.1\r\n\
          Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
    )
    .await
    .unwrap();
    let (closed, said) = closed_while_trickling(slow, b" ").await;
    assert!(closed, "a body sent a byte at a time is never cut off");
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");
    assert!(said.contains("did not arrive within"), "{said}");
    let listed = client.get("/handlers").await.json();
    assert_eq!(listed["handlers"], serde_json::json!([]), "nothing started");
}

/// Opens `n` connections that send a request head one byte at a time, forever.
async fn slow_clients(addr: SocketAddr, n: usize) -> tokio::task::JoinHandle<()> {
    let mut open = Vec::with_capacity(n);
    for _ in 0..n {
        open.push(
            TcpStream::connect(addr)
                .await
                .expect("a slow client connects"),
        );
    }
    tokio::spawn(async move {
        loop {
            for tcp in &mut open {
                let _ = tcp.try_write(b"G");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_slow_connections_do_not_keep_others_out() {
    workflows_server::raise_open_file_limit();
    let (server, client) = serve(SqliteStorage::in_memory().unwrap(), config()).await;
    let slow = slow_clients(server.local_addr(), 2000).await;
    for _ in 0..20 {
        let health = tokio::time::timeout(Duration::from_secs(5), client.get("/health"))
            .await
            .expect("the server answers while 2,000 slow clients hold connections");
        assert_eq!(health.status, 200);
    }
    let id = start(&client, "number", serde_json::json!({})).await;
    until_event(&client, &id, "InputRequiredEvent").await;
    answer(&client, &id, "5").await;
    until_status(&client, &id, "completed").await;
    slow.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cap_connections_wait_their_turn_and_are_served() {
    let capped = Config {
        max_connections: Some(20),
        header_timeout: Duration::from_millis(300),
        ..config()
    };
    let (server, client) = serve(SqliteStorage::in_memory().unwrap(), capped).await;
    let slow = slow_clients(server.local_addr(), 200).await;
    // Each slow client holds a place for at most the head deadline; the request behind
    // them is served once they are cut off.
    let behind = tokio::spawn(async move { client.get("/health").await });
    let mut most = 0;
    let served = until(PATIENCE, || {
        most = most.max(server.open_connections());
        std::future::ready(behind.is_finished())
    })
    .await;
    assert!(served, "a request behind the cap is served");
    let health = behind.await.unwrap();
    assert_eq!(health.status, 200);
    assert_eq!(most, 20, "the cap is filled, never passed");
    slow.abort();
}
