use serde::{Deserialize, Serialize};
use workflows::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Page(u32);

struct Crawl;

#[workflow]
impl Crawl {
    #[step]
    async fn fetch(&self, _ev: StartEvent) -> Page {
        Page(1)
    }

    #[step]
    async fn both(&self, first: Page, second: Page) -> StopEvent<u32> {
        StopEvent::new(first.0 + second.0)
    }
}

fn main() {}
