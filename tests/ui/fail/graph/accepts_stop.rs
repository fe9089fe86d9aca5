use workflows::prelude::*;

struct W;

#[workflow]
impl W {
    #[step]
    async fn start(&self, _ev: StartEvent) -> StopEvent<u8> {
        StopEvent::new(1)
    }

    #[step]
    async fn after(&self, ev: StopEvent<u8>) -> StopEvent<u8> {
        ev
    }
}

fn main() {}
