//! Scenario 3, `fanout`: K events to a pool of workers and back through collect; one op is one
//! event delivered to a step (2K in all).

use std::time::Instant;

use serde::{Deserialize, Serialize};
use workflows::prelude::*;

use crate::report::report;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
pub struct WorkEvent {
    i: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
pub struct ResultEvent {
    i: u64,
    y: u64,
}

/// The worker count is a step option, fixed at compile time: the reference's 8.
pub struct FanoutWorkflow {
    k: usize,
}

#[workflow]
impl FanoutWorkflow {
    #[step(sends(WorkEvent))]
    async fn start(&self, ctx: &Context, _ev: StartEvent) {
        for i in 0..self.k as u64 {
            ctx.send_event(WorkEvent { i }).expect("work accepts it");
        }
    }

    #[step(num_workers = 8)]
    async fn work(&self, ev: WorkEvent) -> ResultEvent {
        ResultEvent {
            i: ev.i,
            y: 2 * ev.i,
        }
    }

    #[step]
    async fn collect(&self, ctx: &Context, ev: ResultEvent) -> Option<StopEvent<(Vec<u64>, u64)>> {
        let events = ctx.collect(ev, self.k)?;
        let mut ids: Vec<u64> = events.iter().map(|e| e.i).collect();
        ids.sort_unstable();
        Some(StopEvent::new((ids, events.iter().map(|e| e.y).sum())))
    }
}

pub async fn run(k: usize, workers: usize, runtime: &str) {
    assert_eq!(
        workers, 8,
        "the worker step is compiled with num_workers = 8"
    );
    FanoutWorkflow { k: 10 }
        .run(StartEvent::new())
        .await
        .unwrap(); // warm-up
    let wf = FanoutWorkflow { k }.runner();
    let start = Instant::now();
    let (ids, total) = wf.run(StartEvent::new()).await.unwrap();
    let seconds = start.elapsed().as_secs_f64();
    let k64 = k as u64;
    assert!(
        ids == (0..k64).collect::<Vec<_>>() && total == k64 * (k64 - 1),
        "wrong fan-out result"
    );
    report(
        "fanout",
        k,
        2 * k,
        seconds,
        runtime,
        serde_json::json!({"workers": workers}),
    );
}
