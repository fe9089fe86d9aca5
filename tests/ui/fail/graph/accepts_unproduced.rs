use serde::{Deserialize, Serialize};
use workflows::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Approved;

struct W;

#[workflow]
impl W {
    #[step]
    async fn start(&self, _ev: StartEvent) -> InputRequiredEvent {
        InputRequiredEvent::new("approve?")
    }

    #[step]
    async fn publish(&self, _ev: Approved) -> StopEvent<()> {
        StopEvent::new(())
    }
}

fn main() {}
