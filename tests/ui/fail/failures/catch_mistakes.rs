use workflows::prelude::*;

struct W;

#[workflow]
impl W {
    #[step]
    async fn fetch(&self, _ev: StartEvent) -> Result<StopEvent<()>, String> {
        Ok(StopEvent::new(()))
    }

    #[step(catch(fetch, fecth))]
    async fn first(&self, _failed: StepFailed) {}

    #[step(catch(fetch, second))]
    async fn second(&self, _failed: StepFailed) {}
}

fn main() {}
