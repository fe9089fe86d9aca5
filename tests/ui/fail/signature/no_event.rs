use workflows::prelude::*;

struct W;

#[workflow]
impl W {
    #[step]
    async fn start(&self) -> StopEvent<()> {
        StopEvent::new(())
    }
}

fn main() {}
