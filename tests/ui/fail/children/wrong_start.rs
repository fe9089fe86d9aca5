// A child run is started with an event that is not the child's start event.
use serde::{Deserialize, Serialize};
use workflows::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(start)]
struct Order {
    item: String,
}

struct Shop;

#[workflow]
impl Shop {
    #[step]
    async fn sell(&self, ev: Order) -> StopEvent<String> {
        StopEvent::new(ev.item)
    }
}

struct Parent;

#[workflow]
impl Parent {
    #[step(children(Shop))]
    async fn go(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<String>, ChildError> {
        let sold = ctx.run_child(Shop, StartEvent::new()).await?;
        Ok(StopEvent::new(sold))
    }
}

fn main() {}
