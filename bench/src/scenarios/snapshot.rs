//! Scenario 5, `snapshot`: serialize a paused run, restore it, resume it; one op is one cycle.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use workflows::prelude::*;
use workflows::{Runner, Snapshot};

use crate::report::{report, round_to};

pub struct SnapshotWorkflow;

/// The state: Python's dict state, as a typed map.
pub type Keys = std::collections::BTreeMap<String, String>;

#[workflow(state = Keys)]
impl SnapshotWorkflow {
    #[step]
    async fn fill(&self, ctx: &Context<Keys>, ev: StartEvent) -> InputRequiredEvent {
        let keys: usize = ev.get("num_keys").expect("num_keys");
        ctx.edit_state(|state| {
            for i in 0..keys {
                state.insert(format!("key{i}"), format!("value-{i}"));
            }
        });
        InputRequiredEvent::new("approve?")
    }

    #[step]
    async fn finish(
        &self,
        ctx: &Context<Keys>,
        ev: HumanResponseEvent,
    ) -> StopEvent<(String, usize, String)> {
        let (len, last) = ctx.state(|state| {
            let last = state[&format!("key{}", state.len() - 1)].clone();
            (state.len(), last)
        });
        StopEvent::new((ev.response, len, last))
    }
}

/// One cycle; adds the snapshot, restore and resume times to `acc`; returns the JSON's size.
async fn cycle(wf: &Runner<SnapshotWorkflow>, keys: usize, acc: &mut [Duration; 3]) -> usize {
    let handler = wf.run(StartEvent::new().with("num_keys", keys));
    let mut events = handler.stream_events();
    while let Some(ev) = events.next().await {
        if ev.is::<InputRequiredEvent>() {
            break;
        }
    }

    let t0 = Instant::now();
    let blob = handler.snapshot().await.unwrap().to_json();
    let t1 = Instant::now();
    handler.cancel_run(); // untimed: the original run is dropped
    let _ = handler.await;
    let t2 = Instant::now();
    let restored = Snapshot::from_json(&blob).unwrap();
    let t3 = Instant::now();
    let resumed = wf.resume(restored).unwrap();
    resumed.send_event(HumanResponseEvent::new("yes")).unwrap();
    let result = resumed.await.unwrap();
    let t4 = Instant::now();

    assert_eq!(
        result,
        ("yes".to_owned(), keys, format!("value-{}", keys - 1))
    );
    acc[0] += t1 - t0;
    acc[1] += t3 - t2;
    acc[2] += t4 - t3;
    blob.len()
}

/// The floor of a cycle: the same state written as JSON text and read back into its type
/// with serde_json alone, nothing else; seconds per round trip, the mean of `iters`.
fn serde_floor(keys: usize, iters: usize) -> f64 {
    let state: Keys = (0..keys)
        .map(|i| (format!("key{i}"), format!("value-{i}")))
        .collect();
    let start = Instant::now();
    for _ in 0..iters {
        let text = serde_json::to_string(std::hint::black_box(&state)).unwrap();
        let back: Keys = serde_json::from_str(std::hint::black_box(&text)).unwrap();
        assert_eq!(back.len(), keys);
    }
    start.elapsed().as_secs_f64() / iters as f64
}

pub async fn run(iters: usize, keys: usize, runtime: &str) {
    let wf = SnapshotWorkflow.runner();
    cycle(&wf, keys, &mut [Duration::ZERO; 3]).await; // warm-up
    let mut acc = [Duration::ZERO; 3];
    let mut size = 0;
    // The cycles and the floor alternate in slices, so that both see the same machine; the
    // floor is the best slice's (the figure the ratio divides by, taken at its steadiest).
    let slices = 5.min(iters).max(1);
    let mut floor = f64::INFINITY;
    for slice in 0..slices {
        let n = iters / slices + usize::from(slice < iters % slices);
        for _ in 0..n {
            size = cycle(&wf, keys, &mut acc).await;
        }
        floor = floor.min(serde_floor(keys, n.max(1)));
    }
    let total: f64 = acc.iter().map(Duration::as_secs_f64).sum();
    let cycle_us = total / iters as f64 * 1e6;
    let floor_us = floor * 1e6;
    let mean_us = |d: Duration| round_to(d.as_secs_f64() / iters as f64 * 1e6, 1);
    report(
        "snapshot",
        iters,
        iters,
        total,
        runtime,
        json!({
            "keys": keys,
            "snapshot_bytes": size,
            "snapshot_us": mean_us(acc[0]),
            "restore_us": mean_us(acc[1]),
            "resume_us": mean_us(acc[2]),
            "serde_floor_us": round_to(floor_us, 1),
            "cycle_over_floor": round_to(cycle_us / floor_us, 2),
        }),
    );
}
