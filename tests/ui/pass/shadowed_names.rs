//! Local items named like the prelude's and the standard library's do not confuse the
//! generated code, which names everything by absolute path.
#![allow(dead_code)]
use workflows::{StartEvent, StopEvent, workflow, step};

struct Option;
struct Some;
struct Box;
struct Result;
struct Arc;
mod std {}
mod core {}
trait Future {}

struct W;

#[workflow]
impl W {
    #[step]
    async fn only(&self, _ev: StartEvent) -> StopEvent<u8> {
        StopEvent::new(1)
    }
}

fn main() {
    assert_eq!(<W as workflows::Workflow>::NAME, "W");
}
