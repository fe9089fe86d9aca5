//! The raw cost of a Tokio channel on this machine: what no engine built on Tokio can beat.

use std::time::Instant;

use tokio::sync::mpsc;

use crate::report::{report, round_to};

/// ns per one-way message between two tasks ping-ponging over unbounded mpsc channels.
pub async fn ping_pong(n: usize) -> f64 {
    let (to_echo, mut echo_in) = mpsc::unbounded_channel::<u64>();
    let (echo_out, mut back) = mpsc::unbounded_channel::<u64>();
    let echo = tokio::spawn(async move {
        while let Some(v) = echo_in.recv().await {
            if echo_out.send(v + 1).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut v = 0;
    for _ in 0..n {
        to_echo.send(v).expect("echo alive");
        v = back.recv().await.expect("echo alive");
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(to_echo);
    echo.await.expect("echo ends");
    assert_eq!(v, n as u64);
    elapsed / (2 * n) as f64 * 1e9
}

/// ns per hop of a message passed along ten tasks linked by unbounded mpsc channels.
pub async fn chain(n: usize) -> f64 {
    let (first, mut input) = mpsc::unbounded_channel::<u64>();
    let mut tasks = Vec::new();
    for _ in 0..9 {
        let (next, rx) = mpsc::unbounded_channel::<u64>();
        let mut from = std::mem::replace(&mut input, rx);
        tasks.push(tokio::spawn(async move {
            while let Some(v) = from.recv().await {
                if next.send(v + 1).is_err() {
                    break;
                }
            }
        }));
    }
    let start = Instant::now();
    for i in 0..n as u64 {
        first.send(i).expect("chain alive");
        assert_eq!(input.recv().await, Some(i + 9));
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(first);
    for t in tasks {
        t.await.expect("hop ends");
    }
    elapsed / (10 * n) as f64 * 1e9
}

pub async fn run(n: usize, runtime: &str) {
    ping_pong(n / 10).await; // warm-up
    let pp = ping_pong(n).await;
    let hop = chain(n / 10).await;
    report(
        "floor",
        n,
        2 * n,
        pp * 2.0 * n as f64 / 1e9,
        runtime,
        serde_json::json!({
            "ping_pong_ns_per_msg": round_to(pp, 1),
            "chain10_ns_per_hop": round_to(hop, 1),
        }),
    );
}
