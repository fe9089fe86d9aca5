//! Scenario 6, `concurrent`: C runs suspended at once, waiting for input; then all answered.

use std::time::Instant;

use futures_util::StreamExt;
use serde_json::json;
use workflows::prelude::*;
use workflows::{EventStream, Runner};

use crate::report::{current_rss_mb, report, round_to};

pub struct WaitWorkflow;

#[workflow]
impl WaitWorkflow {
    #[step]
    async fn ask(&self, ev: StartEvent) -> InputRequiredEvent {
        InputRequiredEvent::new(ev.get::<u64>("run").expect("run").to_string())
    }

    #[step]
    async fn answer(&self, ev: HumanResponseEvent) -> StopEvent<u64> {
        StopEvent::new(ev.response.parse().expect("a number"))
    }
}

async fn until_input(mut stream: EventStream) -> (EventStream, InputRequiredEvent) {
    while let Some(ev) = stream.next().await {
        if let Some(req) = ev.downcast_ref::<InputRequiredEvent>() {
            return (stream, req.clone());
        }
    }
    panic!("run ended without asking for input");
}

struct Phases {
    suspend_s: f64,
    finish_s: f64,
    rss_delta_mb: f64,
    /// Heap bytes held while all runs are suspended (allocator overhead not included).
    live_bytes: isize,
    /// The most heap bytes held at once during the suspend phase.
    peak_bytes: isize,
}

async fn run_concurrent(wf: &Runner<WaitWorkflow>, c: usize) -> Phases {
    let rss0 = current_rss_mb();
    crate::alloc::start_counting();
    let t0 = Instant::now();
    let handlers: Vec<_> = (0..c as u64)
        .map(|i| wf.run(StartEvent::new().with("run", i)))
        .collect();
    // One reader per run, all at once.
    let readers: Vec<_> = handlers
        .iter()
        .map(|h| tokio::spawn(until_input(h.stream_events())))
        .collect();
    let mut waiting = Vec::with_capacity(c);
    for reader in readers {
        waiting.push(reader.await.expect("reader"));
    }
    let t1 = Instant::now();
    let rss_waiting = current_rss_mb();
    let live_bytes = crate::alloc::live_bytes();
    let peak_bytes = crate::alloc::peak_bytes();

    let finishers: Vec<_> = handlers
        .into_iter()
        .zip(waiting)
        .map(|(handler, (mut stream, request))| {
            tokio::spawn(async move {
                let answer = 2 * request.prefix.parse::<u64>().expect("a number");
                handler
                    .send_event(HumanResponseEvent::new(answer.to_string()))
                    .expect("running");
                while stream.next().await.is_some() {}
                handler.await.unwrap()
            })
        })
        .collect();
    let mut results = Vec::with_capacity(c);
    for f in finishers {
        results.push(f.await.expect("finisher"));
    }
    let t2 = Instant::now();
    assert!(
        results.iter().enumerate().all(|(i, r)| *r == 2 * i as u64),
        "wrong results"
    );
    Phases {
        suspend_s: (t1 - t0).as_secs_f64(),
        finish_s: (t2 - t1).as_secs_f64(),
        rss_delta_mb: rss_waiting - rss0,
        live_bytes,
        peak_bytes,
    }
}

pub async fn run(c: usize, runtime: &str) {
    let wf = WaitWorkflow.runner();
    run_concurrent(&wf, 10).await; // warm-up
    let p = run_concurrent(&wf, c).await;
    report(
        "concurrent",
        c,
        c,
        p.suspend_s + p.finish_s,
        runtime,
        json!({
            "suspend_s": round_to(p.suspend_s, 4),
            "finish_s": round_to(p.finish_s, 4),
            "suspend_per_run_us": round_to(p.suspend_s / c as f64 * 1e6, 2),
            "finish_per_run_us": round_to(p.finish_s / c as f64 * 1e6, 2),
            "rss_delta_mb": round_to(p.rss_delta_mb, 1),
            "rss_per_run_kb": round_to(p.rss_delta_mb * 1024.0 / c as f64, 2),
            "heap_per_run_kb": round_to(p.live_bytes as f64 / 1024.0 / c as f64, 2),
            "heap_peak_per_run_kb": round_to(p.peak_bytes as f64 / 1024.0 / c as f64, 2),
        }),
    );
}
