use serde::{Deserialize, Serialize};
use workflows::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(start)]
struct Order;

struct W;

#[workflow]
impl W {
    #[step]
    async fn from_kwargs(&self, _ev: StartEvent) -> StopEvent<()> {
        StopEvent::new(())
    }

    #[step]
    async fn from_order(&self, _ev: Order) -> StopEvent<()> {
        StopEvent::new(())
    }
}

fn main() {}
