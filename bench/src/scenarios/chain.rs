//! Scenario 1, `chain`: ten steps in a line, R sequential runs; one op is one step dispatch.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use workflows::prelude::*;

use crate::report::report;

macro_rules! events {
    ($($name:ident),*) => {
        $(
            #[derive(Clone, Debug, Serialize, Deserialize, Event)]
            pub struct $name {
                x: u64,
            }
        )*
    };
}

events!(E1, E2, E3, E4, E5, E6, E7, E8, E9);

pub struct ChainWorkflow;

#[workflow]
impl ChainWorkflow {
    #[step]
    async fn s0(&self, ev: StartEvent) -> E1 {
        E1 {
            x: ev.get::<u64>("x").expect("x") + 1,
        }
    }
    #[step]
    async fn s1(&self, ev: E1) -> E2 {
        E2 { x: ev.x + 1 }
    }
    #[step]
    async fn s2(&self, ev: E2) -> E3 {
        E3 { x: ev.x + 1 }
    }
    #[step]
    async fn s3(&self, ev: E3) -> E4 {
        E4 { x: ev.x + 1 }
    }
    #[step]
    async fn s4(&self, ev: E4) -> E5 {
        E5 { x: ev.x + 1 }
    }
    #[step]
    async fn s5(&self, ev: E5) -> E6 {
        E6 { x: ev.x + 1 }
    }
    #[step]
    async fn s6(&self, ev: E6) -> E7 {
        E7 { x: ev.x + 1 }
    }
    #[step]
    async fn s7(&self, ev: E7) -> E8 {
        E8 { x: ev.x + 1 }
    }
    #[step]
    async fn s8(&self, ev: E8) -> E9 {
        E9 { x: ev.x + 1 }
    }
    #[step]
    async fn s9(&self, ev: E9) -> StopEvent<u64> {
        StopEvent::new(ev.x + 1)
    }
}

pub async fn run(runs: usize, runtime: &str) {
    let wf = ChainWorkflow.runner();
    assert_eq!(wf.run(StartEvent::new().with("x", 0)).await.unwrap(), 10); // warm-up
    let start = Instant::now();
    for i in 0..runs as u64 {
        let result = wf.run(StartEvent::new().with("x", i)).await.unwrap();
        assert_eq!(result, i + 10);
    }
    let seconds = start.elapsed().as_secs_f64();
    report(
        "chain",
        runs,
        runs * 10,
        seconds,
        runtime,
        serde_json::json!({"steps_per_run": 10}),
    );
}
