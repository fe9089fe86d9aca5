use workflows::prelude::*;

struct W;

#[workflow]
impl W {
    #[step]
    async fn start(&self, a: StartEvent, b: HumanResponseEvent) -> StopEvent<()> {
        let _ = (a, b);
        StopEvent::new(())
    }
}

fn main() {}
