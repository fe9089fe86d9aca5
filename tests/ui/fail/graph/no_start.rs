use workflows::prelude::*;

struct W;

#[workflow]
impl W {
    #[step]
    async fn answer(&self, ev: HumanResponseEvent) -> StopEvent<String> {
        StopEvent::new(ev.response)
    }
}

fn main() {}
