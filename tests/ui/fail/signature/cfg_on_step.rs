use workflows::prelude::*;

struct W;

#[workflow]
impl W {
    #[step]
    async fn only(&self, _ev: StartEvent) -> StopEvent<u8> {
        StopEvent::new(1)
    }

    #[cfg(test)]
    #[step]
    async fn extra(&self, _ev: HumanResponseEvent) -> StopEvent<u8> {
        StopEvent::new(2)
    }
}

fn main() {}
