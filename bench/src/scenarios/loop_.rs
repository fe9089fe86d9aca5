//! Scenario 2, `loop`: one step re-triggering itself N times; one op is one `LoopEvent`.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use workflows::prelude::*;

use crate::report::report;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
pub struct LoopEvent {
    i: u64,
    n: u64,
}

#[derive(Debug, OneOf)]
pub enum LoopIn {
    Start(StartEvent),
    Loop(LoopEvent),
}

#[derive(Debug, OneOf)]
pub enum LoopOut {
    Loop(LoopEvent),
    Stop(StopEvent<u64>),
}

pub struct LoopWorkflow;

#[workflow]
impl LoopWorkflow {
    #[step]
    async fn loop_step(&self, ev: LoopIn) -> LoopOut {
        let (i, n) = match ev {
            LoopIn::Start(s) => (0, s.get::<u64>("n").expect("n")),
            LoopIn::Loop(l) => (l.i, l.n),
        };
        if i < n {
            LoopEvent { i: i + 1, n }.into()
        } else {
            StopEvent::new(i).into()
        }
    }
}

pub async fn run(n: usize, runtime: &str) {
    let wf = LoopWorkflow.runner();
    assert_eq!(wf.run(StartEvent::new().with("n", 100)).await.unwrap(), 100); // warm-up
    let start = Instant::now();
    let result = wf.run(StartEvent::new().with("n", n)).await.unwrap();
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(result, n as u64);
    report("loop", n, n, seconds, runtime, serde_json::json!({}));
}
