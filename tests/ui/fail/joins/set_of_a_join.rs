use serde::{Deserialize, Serialize};
use workflows::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Page(u32);

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Note(u32);

struct Crawl;

#[workflow]
impl Crawl {
    #[step(sends(Note))]
    async fn fetch(&self, ctx: &Context, _ev: StartEvent) -> Vec<Page> {
        ctx.send_event(Note(0)).unwrap();
        vec![Page(1)]
    }

    #[step]
    async fn both(&self, pages: Vec<Page>, note: Note) -> StopEvent<u32> {
        StopEvent::new(pages.len() as u32 + note.0)
    }
}

fn main() {}
