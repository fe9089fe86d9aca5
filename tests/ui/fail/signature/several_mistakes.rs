use workflows::prelude::*;

struct W;

// Every mistake is reported in one compile.
#[workflow]
impl W {
    #[step]
    fn start(&self, _ev: StartEvent) -> StopEvent<()> {
        StopEvent::new(())
    }

    #[step(num_workers = 0)]
    async fn other(&mut self, _ev: HumanResponseEvent) {}
}

fn main() {}
