//! A type alias of an event is the same type: it routes, and is checked, as the event itself.
//! Two steps accepting one type both receive it (broadcast).
use serde::{Deserialize, Serialize};
use workflows::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Draft;

type Proposal = Draft;
type Answer = StopEvent<u8>;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Checked;

struct W;

#[workflow]
impl W {
    #[step]
    async fn start(&self, _ev: StartEvent) -> Proposal {
        Draft
    }

    #[step]
    async fn spell(&self, _ev: Draft) -> Checked {
        Checked
    }

    #[step]
    async fn legal(&self, _ev: Proposal) -> Checked {
        Checked
    }

    #[step]
    async fn join(&self, ctx: &Context, ev: Checked) -> Option<Answer> {
        ctx.collect(ev, 2).map(|_| StopEvent::new(2))
    }
}

fn main() {
    let accepting_drafts = <W as Workflow>::STEPS
        .iter()
        .filter(|s| s.accepts.iter().any(|e| e.name == "Draft"))
        .count();
    assert_eq!(accepting_drafts, 2);
}
