//! Scenario 4, `hitl`: M human round trips in one run, answered the instant each request appears.

use std::time::Instant;

use futures_util::StreamExt;
use workflows::prelude::*;

use crate::report::report;

#[derive(Debug, OneOf)]
pub enum AskIn {
    Start(StartEvent),
    Answer(HumanResponseEvent),
}

#[derive(Debug, OneOf)]
pub enum AskOut {
    Ask(InputRequiredEvent),
    Stop(StopEvent<u64>),
}

pub struct HitlWorkflow {
    rounds: u64,
}

#[workflow]
impl HitlWorkflow {
    #[step]
    async fn ask(&self, ev: AskIn) -> AskOut {
        let answered = match ev {
            AskIn::Start(_) => 0,
            AskIn::Answer(a) => a.response.parse().expect("a number"),
        };
        if answered == self.rounds {
            StopEvent::new(answered).into()
        } else {
            InputRequiredEvent::new(answered.to_string()).into()
        }
    }
}

async fn drive(rounds: u64) {
    let handler = HitlWorkflow { rounds }.run(StartEvent::new());
    let mut asked = 0_u64;
    let mut events = handler.stream_events();
    while let Some(ev) = events.next().await {
        if let Some(req) = ev.downcast_ref::<InputRequiredEvent>() {
            assert_eq!(req.prefix, asked.to_string());
            asked += 1;
            handler
                .send_event(HumanResponseEvent::new(asked.to_string()))
                .expect("running");
        }
    }
    let result = handler.await.unwrap();
    assert!(result == rounds && asked == rounds, "{result} {asked}");
}

pub async fn run(m: usize, runtime: &str) {
    drive(10).await; // warm-up
    let start = Instant::now();
    drive(m as u64).await;
    let seconds = start.elapsed().as_secs_f64();
    report("hitl", m, m, seconds, runtime, serde_json::json!({}));
}
