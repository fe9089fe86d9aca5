use workflows::prelude::*;

struct W;

impl W {
    #[step]
    async fn start(&self, _ev: StartEvent) -> StopEvent<()> {
        StopEvent::new(())
    }
}

fn main() {}
