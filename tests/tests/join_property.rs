//! Property: a fan-out/join run snapshotted at a random point, cancelled and resumed (up to
//! three times) gives the result a model computes, with every join fired exactly once.
//!
//! The plan is a list of jobs fanned out by `split` (a `Vec` of a `OneOf`): plain jobs that
//! yield a few times, jobs that end their branch without a result, jobs that fail for good
//! (`rescue` recovers them into a result), jobs that wait for a keyed answer, and deep jobs that
//! fan out again into leaves joined by `inner`. `outer` joins everything. Each step writes its
//! progress to the stream, and the run is cut after a random number of stream events. The join
//! steps count their firings in the run's state inside `ctx.once`, so a join re-run after a
//! restore does not count twice, and the counts are part of the result.

use std::collections::HashSet;

use futures_util::StreamExt;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use workflows::Snapshot;
use workflows::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Kind {
    Plain,
    Skip,
    Fail,
    Ask,
    /// Fans out into this many leaves.
    Deep(u32),
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Job {
    id: u32,
    kind: Kind,
    yields: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct DeepJob {
    id: u32,
    leaves: u32,
}

#[derive(Debug, OneOf)]
enum Work {
    Job(Job),
    Deep(DeepJob),
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Leaf {
    id: u32,
    n: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct LeafDone {
    id: u32,
    value: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Part {
    id: u32,
    value: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Progress {
    step: String,
    id: u32,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Counts {
    outer: u32,
    inner: u32,
}

/// (parts in element order, outer firings, inner firings)
type Output = (Vec<(u32, u32)>, u32, u32);

struct Tree;

#[workflow(state = Counts)]
impl Tree {
    #[step]
    async fn split(&self, ev: StartEvent) -> Vec<Work> {
        let plan: Vec<(Kind, u32)> = ev.get("plan").unwrap();
        plan.into_iter()
            .enumerate()
            .map(|(id, (kind, yields))| {
                let id = id as u32;
                match kind {
                    Kind::Deep(leaves) => Work::Deep(DeepJob { id, leaves }),
                    kind => Work::Job(Job { id, kind, yields }),
                }
            })
            .collect()
    }

    #[step(num_workers = 3)]
    async fn work(&self, ctx: &Context<Counts>, job: Job) -> Result<Option<Part>, String> {
        for _ in 0..job.yields {
            tokio::task::yield_now().await;
        }
        ctx.write_event_to_stream(Progress {
            step: "work".into(),
            id: job.id,
        });
        let value = match job.kind {
            Kind::Skip => return Ok(None),
            Kind::Fail => return Err(format!("job {} failed", job.id)),
            Kind::Ask => {
                let answer = ctx
                    .wait_for_event(
                        WaitFor::<HumanResponseEvent>::new()
                            .prompt(InputRequiredEvent::new(job.id.to_string()))
                            .require_path("job", job.id),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                answer.response.parse::<u32>().unwrap()
            }
            _ => job.id * 10,
        };
        Ok(Some(Part { id: job.id, value }))
    }

    #[step(catch(work))]
    async fn rescue(&self, ctx: &Context<Counts>, failed: StepFailed) -> Part {
        let job: Job = serde_json::from_value(failed.input).unwrap();
        ctx.write_event_to_stream(Progress {
            step: "rescue".into(),
            id: job.id,
        });
        Part {
            id: job.id,
            value: 1000 + job.id,
        }
    }

    #[step(num_workers = 2)]
    async fn deep(&self, job: DeepJob) -> Vec<Leaf> {
        (0..job.leaves).map(|n| Leaf { id: job.id, n }).collect()
    }

    #[step(num_workers = 4)]
    async fn leaf(&self, ctx: &Context<Counts>, leaf: Leaf) -> LeafDone {
        for _ in 0..leaf.n % 3 {
            tokio::task::yield_now().await;
        }
        ctx.write_event_to_stream(Progress {
            step: "leaf".into(),
            id: leaf.id,
        });
        LeafDone {
            id: leaf.id,
            value: leaf.n + 1,
        }
    }

    #[step]
    async fn inner(&self, ctx: &Context<Counts>, leaves: Vec<LeafDone>) -> Option<Part> {
        ctx.once("counted", async { ctx.edit_state(|c| c.inner += 1) })
            .await;
        let id = leaves.first()?.id;
        Some(Part {
            id,
            value: leaves.iter().map(|l| l.value).sum(),
        })
    }

    #[step]
    async fn outer(&self, ctx: &Context<Counts>, parts: Vec<Part>) -> StopEvent<Output> {
        ctx.once("counted", async { ctx.edit_state(|c| c.outer += 1) })
            .await;
        let counts = ctx.state(|c| (c.outer, c.inner));
        StopEvent::new((
            parts.iter().map(|p| (p.id, p.value)).collect(),
            counts.0,
            counts.1,
        ))
    }
}

fn answer_for(prefix: &str) -> HumanResponseEvent {
    let id: u32 = prefix.parse().unwrap();
    HumanResponseEvent::new((id * 7 + 1).to_string()).with("job", id)
}

/// What the plan must give.
fn model(plan: &[(Kind, u32)]) -> Output {
    let mut parts = Vec::new();
    let mut inner = 0;
    for (id, (kind, _)) in plan.iter().enumerate() {
        let id = id as u32;
        match kind {
            Kind::Plain => parts.push((id, id * 10)),
            Kind::Skip => {}
            Kind::Fail => parts.push((id, 1000 + id)),
            Kind::Ask => parts.push((id, id * 7 + 1)),
            Kind::Deep(leaves) => {
                inner += 1;
                if *leaves > 0 {
                    parts.push((id, (1..=*leaves).sum()));
                }
            }
        }
    }
    (parts, 1, inner)
}

/// Drives a run to its end, answering every prompt, handing it off through a snapshot after
/// each number of stream events in `cuts`. Returns the result and how many hand-offs happened.
async fn drive(plan: &[(Kind, u32)], cuts: &[usize]) -> (Output, usize) {
    let runner = Tree.runner();
    let mut handler = runner.run(StartEvent::new().with("plan", plan));
    let mut answered: HashSet<String> = HashSet::new();
    let mut events = handler.stream_events();
    let mut seen = 0;
    let mut cuts = cuts.iter().copied().peekable();
    let mut handed_off = 0;
    loop {
        if cuts.peek() == Some(&seen) {
            cuts.next();
            if handler.is_done() {
                continue;
            }
            let snapshot = handler.snapshot().await.unwrap();
            handler.cancel_run();
            let snapshot = Snapshot::from_json(&snapshot.to_json()).unwrap();
            if !snapshot.status.is_resumable() {
                return (handler.await.unwrap(), handed_off);
            }
            handed_off += 1;
            let pending: Vec<String> = snapshot
                .waiters
                .iter()
                .map(|w| w.requirements[0].value.to_string())
                .collect();
            handler = runner.resume(snapshot).unwrap();
            events = handler.stream_events();
            // Prompts published before the snapshot are not published again: answer them.
            for id in pending {
                answered.insert(id.clone());
                handler.send_event(answer_for(&id)).unwrap();
            }
            continue;
        }
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
    (handler.await.unwrap(), handed_off)
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => Just(Kind::Plain),
        1 => Just(Kind::Skip),
        1 => Just(Kind::Fail),
        2 => Just(Kind::Ask),
        1 => (0_u32..4).prop_map(Kind::Deep),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_fan_out_resumed_from_random_cuts_joins_once_with_every_branch(
        plan in proptest::collection::vec((kind(), 0_u32..6), 0..7),
        cuts in proptest::collection::vec(0_usize..10, 0..4),
        multi_thread in any::<bool>(),
    ) {
        let mut cuts = cuts;
        cuts.sort_unstable();
        cuts.dedup();
        let runtime = if multi_thread {
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
        } else {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        }
        .unwrap();
        let (whole, (resumed, _)) = runtime.block_on(async {
            let limit = std::time::Duration::from_secs(20);
            let whole = tokio::time::timeout(limit, drive(&plan, &[]))
                .await
                .expect("the run finishes");
            let resumed = tokio::time::timeout(limit, drive(&plan, &cuts))
                .await
                .expect("the resumed run finishes");
            (whole.0, resumed)
        });
        prop_assert_eq!(&whole, &model(&plan));
        prop_assert_eq!(resumed, whole);
    }
}
