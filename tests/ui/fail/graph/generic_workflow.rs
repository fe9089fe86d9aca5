use serde::{Deserialize, Serialize};
use workflows::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Draft;

struct W<T>(std::marker::PhantomData<T>);

// A generic workflow is checked for each instantiation that is compiled.
#[workflow]
impl<T: Send + Sync + 'static> W<T> {
    #[step]
    async fn start(&self, _ev: StartEvent) -> Draft {
        Draft
    }

    #[step]
    async fn finish(&self, ev: HumanResponseEvent) -> StopEvent<String> {
        StopEvent::new(ev.response)
    }
}

fn main() {
    let _handler = W::<u8>(std::marker::PhantomData).run(StartEvent::new());
}
