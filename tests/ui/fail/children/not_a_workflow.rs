// A step declares a child that is not a workflow: the error names the type the user wrote.
use workflows::prelude::*;

struct Helper;

struct Parent;

#[workflow]
impl Parent {
    #[step(children(Helper))]
    async fn go(&self, _ev: StartEvent) -> StopEvent<()> {
        StopEvent::new(())
    }
}

fn main() {}
