use workflows::prelude::*;

struct W;

#[workflow]
impl W {
    #[step]
    async fn fetch(&self, _ev: StartEvent) -> Result<StopEvent<()>, String> {
        Ok(StopEvent::new(()))
    }

    #[step]
    async fn rescue(&self, _failed: StepFailed, _again: StartEvent) {}
}

fn main() {}
