//! Workflows and helpers shared by the behavioural tests.

use serde::{Deserialize, Serialize};
use workflows::prelude::*;

/// The seed's number workflow in its smallest form: asks "?", stops with the answer.
pub struct Ask;

#[workflow]
impl Ask {
    #[step]
    async fn ask(&self, _ev: StartEvent) -> InputRequiredEvent {
        InputRequiredEvent::new("?")
    }

    #[step]
    async fn answer(&self, ev: HumanResponseEvent) -> StopEvent<String> {
        StopEvent::new(ev.response)
    }
}

/// A reviewer's answer to an approval request, matched to it by `request_id`.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(response)]
pub struct Decision {
    pub request_id: u32,
    pub approved: bool,
}

/// One review's outcome, as the approval workflows of the tests collect it.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
pub struct Reviewed {
    pub request_id: u32,
    pub approved: bool,
}

/// The collected outcomes as sorted `(request_id, approved)` pairs.
pub fn verdicts(all: Vec<Reviewed>) -> Vec<(u32, bool)> {
    let mut pairs: Vec<(u32, bool)> = all
        .into_iter()
        .map(|r| (r.request_id, r.approved))
        .collect();
    pairs.sort_unstable();
    pairs
}
