//! Every step form: with and without a context, one-of inputs and outputs, Option, Result,
//! nothing, renamed steps, options, a generic workflow, typed state, paths to the attributes.
use serde::{Deserialize, Serialize};
use workflows::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct A;
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct B;

#[derive(Debug, OneOf)]
enum StartOrA {
    Start(StartEvent),
    A(A),
}

#[derive(Debug, OneOf)]
enum BOrStop {
    B(B),
    Stop(StopEvent<u8>),
}

/// A generic event, sent by a step that declares it with its type arguments.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Wrapped<T: Clone + std::fmt::Debug + Send + Sync + Serialize + 'static> {
    inner: T,
}

#[derive(Default, Serialize, Deserialize)]
struct Memo {
    n: u8,
}

struct Generic<T: Send + Sync + 'static> {
    value: T,
}

#[workflows::workflow(state = Memo)]
impl<T: Send + Sync + 'static> Generic<T> {
    #[workflows::step]
    async fn begin(&self, ctx: &Context<Memo>, ev: StartOrA) -> BOrStop {
        let _ = (&self.value, ev);
        ctx.edit_state(|m| m.n += 1);
        B.into()
    }

    #[step(num_workers = 1, name = "middle", retry = RetryPolicy::attempts(2), sends(A))]
    async fn mid(&self, ctx: &Context<Memo>, _ev: B) -> Result<Option<StopEvent<u8>>, std::io::Error> {
        Ok(Some(StopEvent::new(ctx.state(|m| m.n))))
    }

    #[step(sends(Wrapped<u8>, A))]
    async fn sink(&self, ctx: &Context<Memo>, _ev: HumanResponseEvent) {
        ctx.send_event(Wrapped { inner: 1_u8 }).unwrap();
    }

    #[step]
    async fn unwrap(&self, _ev: Wrapped<u8>) {}
}

fn main() {
    assert_eq!(<Generic<u32> as Workflow>::STEPS[1].name, "middle");
}

/// An event only the caller sends, marked `external`: accepted without any step producing it.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(external)]
struct Nudge;

struct Nudged;

#[workflow]
impl Nudged {
    #[step]
    async fn wait(&self, _ev: StartEvent) -> InputRequiredEvent {
        InputRequiredEvent::new("nudge me")
    }

    #[step]
    async fn nudged(&self, _ev: Nudge) -> StopEvent<()> {
        StopEvent::new(())
    }
}
