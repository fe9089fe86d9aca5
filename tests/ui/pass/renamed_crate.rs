//! The crate under another name, with `#[workflow(crate = ...)]`, and attributes by path.
use serde::{Deserialize, Serialize};
use workflows as engine;
use engine::{Event, StartEvent, StopEvent};

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(crate = engine)]
struct Done;

struct W;

#[engine::workflow(crate = engine)]
impl W {
    #[engine::step]
    async fn start(&self, _ev: StartEvent) -> Done {
        Done
    }

    #[engine::step]
    async fn finish(&self, _ev: Done) -> StopEvent<u8> {
        StopEvent::new(1)
    }
}

fn main() {
    assert_eq!(<W as engine::Workflow>::STEPS.len(), 2);
}
