//! Property: a run snapshotted at a random point, cancelled and resumed gives the same result
//! as the same run left alone.

use std::collections::{BTreeMap, HashSet};

use futures_util::StreamExt;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use workflows::Snapshot;
use workflows::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Job {
    id: u32,
    value: u32,
    ask: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Done {
    id: u32,
    result: u32,
}

#[derive(Default, Serialize, Deserialize)]
struct Results {
    by_id: BTreeMap<u32, u32>,
}

/// Start sends one job per value; workers (some of which ask a human) compute results; join
/// collects them. Every step is safe to run again, as resumed steps may.
struct Pipeline;

#[workflow(state = Results)]
impl Pipeline {
    #[step(sends(Job))]
    async fn start(&self, ctx: &Context<Results>, ev: StartEvent) {
        let values: Vec<u32> = ev.get("values").unwrap();
        let asks: Vec<bool> = ev.get("asks").unwrap();
        ctx.store().set("jobs", values.len()).unwrap();
        for (id, (value, ask)) in values.into_iter().zip(asks).enumerate() {
            ctx.send_event(Job {
                id: id as u32,
                value,
                ask,
            })
            .unwrap();
        }
    }

    #[step(num_workers = 2)]
    async fn work(&self, ctx: &Context<Results>, job: Job) -> Result<Done, WaitError> {
        for _ in 0..job.value % 3 {
            tokio::task::yield_now().await;
        }
        let mut result = job.value * 2;
        if job.ask {
            let answer = ctx
                .wait_for_event(
                    WaitFor::<HumanResponseEvent>::new()
                        .prompt(InputRequiredEvent::new(job.id.to_string()))
                        .require_path("job", job.id),
                )
                .await?;
            result += answer.response.parse::<u32>().unwrap();
        }
        ctx.edit_state(|r| r.by_id.insert(job.id, result));
        Ok(Done { id: job.id, result })
    }

    #[step]
    async fn join(&self, ctx: &Context<Results>, done: Done) -> Option<StopEvent<(Vec<u32>, u32)>> {
        let jobs: usize = ctx.store().get("jobs").unwrap().unwrap();
        let all = ctx.collect(done, jobs)?;
        let mut results: Vec<u32> = all.iter().map(|d| d.result).collect();
        results.sort_unstable();
        let total = ctx.state(|r| r.by_id.values().sum());
        Some(StopEvent::new((results, total)))
    }
}

fn answer_for(prefix: &str) -> HumanResponseEvent {
    let id: u32 = prefix.parse().unwrap();
    HumanResponseEvent::new((id * 7 + 1).to_string()).with("job", id)
}

type Output = (Vec<u32>, u32);

/// Drives a run to its end, answering every prompt; with `cut = Some(n)`, hands the run off
/// through a snapshot after `n` stream events (`0`: at once). Returns the result and whether
/// a run was handed off.
async fn drive(values: &[u32], asks: &[bool], cut: Option<usize>) -> (Output, bool) {
    let runner = Pipeline.runner();
    let start = StartEvent::new().with("values", values).with("asks", asks);
    let mut handler = runner.run(start);
    let mut answered: HashSet<String> = HashSet::new();
    let mut seen = 0;
    let mut events = handler.stream_events();
    let mut cut = cut;
    let mut handed_off = false;
    loop {
        if cut != Some(seen) {
            let Some(ev) = events.next().await else {
                break;
            };
            if let Some(req) = ev.downcast_ref::<InputRequiredEvent>()
                && answered.insert(req.prefix.clone())
            {
                handler.send_event(answer_for(&req.prefix)).unwrap();
            }
            seen += 1;
        }
        if cut == Some(seen) && !handler.is_done() {
            cut = None;
            let snapshot = handler.snapshot().await.unwrap();
            handler.cancel_run();
            let snapshot = Snapshot::from_json(&snapshot.to_json()).unwrap();
            if !snapshot.status.is_resumable() {
                // The run ended before the snapshot was taken: nothing to hand off.
                return (handler.await.unwrap(), false);
            }
            handed_off = true;
            let pending: Vec<String> = snapshot
                .waiters
                .iter()
                .map(|w| w.requirements[0].value.to_string())
                .filter(|id| !answered.contains(id))
                .collect();
            handler = runner.resume(snapshot).unwrap();
            events = handler.stream_events();
            // Prompts published before the snapshot are not published again: answer them.
            for id in pending {
                answered.insert(id.clone());
                handler.send_event(answer_for(&id)).unwrap();
            }
        } else if cut == Some(seen) {
            cut = None;
        }
    }
    (handler.await.unwrap(), handed_off)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_restored_run_ends_like_an_uninterrupted_one(
        jobs in proptest::collection::vec((0_u32..20, any::<bool>()), 1..8),
        cut_at in 0_usize..100,
        multi_thread in any::<bool>(),
    ) {
        let values: Vec<u32> = jobs.iter().map(|j| j.0).collect();
        let asks: Vec<bool> = jobs.iter().map(|j| j.1).collect();
        // Cut at once (0) or after one of the prompts.
        let prompts = asks.iter().filter(|a| **a).count();
        let cut = cut_at % (prompts + 1);
        let runtime = if multi_thread {
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
        } else {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        }
        .unwrap();
        let (whole, (resumed, handed_off)) = runtime.block_on(async {
            let (whole, _) = drive(&values, &asks, None).await;
            let resumed = tokio::time::timeout(
                std::time::Duration::from_secs(20),
                drive(&values, &asks, Some(cut)),
            )
            .await
            .expect("the resumed run finishes");
            (whole, resumed)
        });
        let expected: u32 = values
            .iter()
            .zip(&asks)
            .enumerate()
            .map(|(id, (v, ask))| v * 2 + if *ask { id as u32 * 7 + 1 } else { 0 })
            .sum();
        prop_assert_eq!(whole.1, expected);
        prop_assert_eq!(resumed, whole);
        // Before the last prompt is answered the run cannot have ended: it was handed off.
        if cut < prompts {
            prop_assert!(handed_off, "cut {} of {} prompts was not handed off", cut, prompts);
        }
    }
}
