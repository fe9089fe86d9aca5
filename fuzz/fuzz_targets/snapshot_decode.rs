//! Any bytes given to `Snapshot::from_json` and then to `Runner::resume` must produce a value
//! or a typed error: never a panic, a hang or an abort.
//!
//! Run it (bounded) with: `cargo fuzz run snapshot_decode -- -max_total_time=600`
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use workflows::prelude::*;
use workflows::Snapshot;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Job {
    id: u32,
}

#[derive(Default, Serialize, Deserialize)]
struct Tally {
    seen: Vec<u32>,
}

struct Target;

#[workflow(state = Tally)]
impl Target {
    #[step(sends(Job))]
    async fn start(&self, ctx: &Context<Tally>, _ev: StartEvent) {
        let _ = ctx.send_event(Job { id: 1 });
    }

    #[step(num_workers = 2)]
    async fn work(&self, ctx: &Context<Tally>, job: Job) -> Result<StopEvent<u32>, WaitError> {
        let answer = ctx
            .wait_for_event(WaitFor::<HumanResponseEvent>::new().require_path("id", job.id))
            .await?;
        Ok(StopEvent::new(answer.response.len() as u32))
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut snapshot) = Snapshot::from_json(text) else {
        return;
    };
    let runner = Target.runner();
    // Also past the identity checks, half the time, so that decoding is exercised.
    if data.len() % 2 == 0 {
        snapshot.workflow = "Target".to_owned();
        snapshot.fingerprint = runner.fingerprint().to_owned();
    }
    if data.len() % 3 == 0 {
        // Outside a runtime, resume validates and decodes everything, then reports NoRuntime
        // through the handler instead of starting the run.
        let _ = runner.resume(snapshot);
        return;
    }
    // Inside one, the restored run starts; cancelling it must end it.
    RUNTIME.block_on(async {
        if let Ok(handler) = runner.resume(snapshot) {
            handler.cancel_run();
            let _ = handler.await;
        }
    });
});

static RUNTIME: std::sync::LazyLock<tokio::runtime::Runtime> = std::sync::LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
});
