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
    async fn gather(&self, pages: Vec<Page>) -> StopEvent<usize> {
        StopEvent::new(pages.len())
    }
}

fn main() {}
