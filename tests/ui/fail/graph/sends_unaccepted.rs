use serde::{Deserialize, Serialize};
use workflows::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Job;

struct W;

#[workflow]
impl W {
    #[step(sends(Job))]
    async fn start(&self, ctx: &Context, _ev: StartEvent) -> StopEvent<()> {
        let _ = ctx.send_event(Job);
        StopEvent::new(())
    }
}

fn main() {}
