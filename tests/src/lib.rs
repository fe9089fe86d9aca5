//! Workflows and helpers shared by the behavioural tests.

use workflows::prelude::*;

/// The seed's number workflow in its smallest form: asks "?", stops with the answer.
pub struct Ask;

#[workflow]
impl Ask {
    #[step]
    async fn ask(&self, _ev: StartEvent) -> InputRequiredEvent {
        InputRequiredEvent::new("?")
    }

    #[step]
    async fn answer(&self, ev: HumanResponseEvent) -> StopEvent<String> {
        StopEvent::new(ev.response)
    }
}
