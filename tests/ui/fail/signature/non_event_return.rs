use workflows::prelude::*;

struct W;

#[workflow]
impl W {
    #[step]
    async fn start(&self, _ev: StartEvent) -> u32 {
        7
    }
}

fn main() {}
