use workflows::prelude::*;

struct W;

#[workflow]
impl W {
    #[step]
    async fn start(&self, text: String) -> StopEvent<String> {
        StopEvent::new(text)
    }
}

fn main() {}
