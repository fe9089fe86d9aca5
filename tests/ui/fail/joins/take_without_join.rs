use serde::{Deserialize, Serialize};
use workflows::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Page(u32);

struct Crawl;

#[workflow]
impl Crawl {
    #[step]
    async fn fetch(&self, _ev: StartEvent) -> Vec<Page> {
        vec![Page(1), Page(2)]
    }

    #[step(take = 1)]
    async fn first(&self, page: Page) -> StopEvent<u32> {
        StopEvent::new(page.0)
    }
}

fn main() {}
