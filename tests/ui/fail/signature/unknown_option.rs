use workflows::prelude::*;

struct W;

#[workflow]
impl W {
    #[step(workers = 2)]
    async fn start(&self, _ev: StartEvent) -> StopEvent<()> {
        StopEvent::new(())
    }
}

fn main() {}
