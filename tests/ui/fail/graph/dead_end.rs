use serde::{Deserialize, Serialize};
use workflows::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Tick;

#[derive(Debug, OneOf)]
enum Begin {
    Start(StartEvent),
    Answer(HumanResponseEvent),
}

struct W;

#[workflow]
impl W {
    #[step]
    async fn begin(&self, ev: Begin) -> Option<StopEvent<()>> {
        match ev {
            Begin::Start(_) => None,
            Begin::Answer(_) => Some(StopEvent::new(())),
        }
    }

    #[step(sends(Tick))]
    async fn kick(&self, ctx: &Context, _ev: HumanResponseEvent) {
        let _ = ctx.send_event(Tick);
    }

    // Tick only leads back to Tick: this loop never reaches the end.
    #[step]
    async fn tick(&self, _ev: Tick) -> Tick {
        Tick
    }
}

fn main() {}
