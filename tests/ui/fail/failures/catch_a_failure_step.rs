use workflows::prelude::*;

struct W;

#[workflow]
impl W {
    #[step]
    async fn fetch(&self, _ev: StartEvent) -> Result<StopEvent<()>, String> {
        Ok(StopEvent::new(()))
    }

    #[step]
    async fn log(&self, _failed: StepFailed) {}

    #[step(catch(log), max_recoveries = 2)]
    async fn rescue(&self, _failed: StepFailed) {}
}

fn main() {}
