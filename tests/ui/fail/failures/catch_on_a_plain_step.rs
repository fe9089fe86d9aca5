use workflows::prelude::*;

struct W;

#[workflow]
impl W {
    #[step]
    async fn fetch(&self, _ev: StartEvent) -> Result<InputRequiredEvent, String> {
        Ok(InputRequiredEvent::new("?"))
    }

    #[step(catch(fetch))]
    async fn answer(&self, ev: HumanResponseEvent) -> StopEvent<String> {
        StopEvent::new(ev.response)
    }
}

fn main() {}
