use workflows::prelude::*;

struct W;

#[workflow]
impl W {
    #[step(num_workers = 2, num_workers = 3)]
    async fn start(&self, _ev: StartEvent) -> StopEvent<()> {
        StopEvent::new(())
    }
}

fn main() {}
