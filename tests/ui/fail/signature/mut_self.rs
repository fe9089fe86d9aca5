use workflows::prelude::*;

struct W;

#[workflow]
impl W {
    #[step]
    async fn start(&mut self, _ev: StartEvent) -> StopEvent<()> {
        StopEvent::new(())
    }
}

fn main() {}
