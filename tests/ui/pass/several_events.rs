//! A step taking several events (with and without a context) compiles, and so does one whose
//! first event is the start event.
use workflows::prelude::*;

struct W;

#[workflow]
impl W {
    #[step]
    async fn start(&self, a: StartEvent, b: HumanResponseEvent) -> InputRequiredEvent {
        let _ = (a, b);
        InputRequiredEvent::new("again?")
    }

    #[step]
    async fn end(&self, _ctx: &Context, first: HumanResponseEvent, again: StartEvent) -> StopEvent<()> {
        let _ = (first, again);
        StopEvent::new(())
    }
}

fn main() {
    let _ = W;
}
