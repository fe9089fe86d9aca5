use serde::{Deserialize, Serialize};
use workflows::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Ping;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Pong;

struct W;

#[workflow]
impl W {
    #[step]
    async fn start(&self, _ev: StartEvent) -> StopEvent<()> {
        StopEvent::new(())
    }

    // Ping and Pong only feed each other: neither step is reached from the start.
    #[step]
    async fn ping(&self, _ev: Ping) -> Pong {
        Pong
    }

    #[step]
    async fn pong(&self, _ev: Pong) -> Option<Ping> {
        Some(Ping)
    }
}

fn main() {}
