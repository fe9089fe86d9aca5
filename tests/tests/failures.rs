//! Failure steps with a scope (`catch`) and a budget (`max_recoveries`).

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use workflows::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Fetched {
    body: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Parsed {
    words: usize,
}

/// `fetch` and `parse` fail when told to; `on_fetch` and `on_parse` handle one each, and
/// `on_other` every other step (here `count`). Each handler notes what it saw.
#[derive(Clone, Default)]
struct Pipeline {
    fail: &'static str,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Pipeline {
    fn note(&self, handler: &str, failed: &StepFailed) {
        self.seen
            .lock()
            .unwrap()
            .push(format!("{handler} <- {}", failed.step));
    }
}

#[workflow]
impl Pipeline {
    #[step]
    async fn fetch(&self, _ev: StartEvent) -> Result<Fetched, String> {
        if self.fail == "fetch" {
            return Err("timeout".into());
        }
        Ok(Fetched {
            body: "a b c".into(),
        })
    }

    #[step]
    async fn parse(&self, ev: Fetched) -> Result<Parsed, String> {
        if self.fail == "parse" {
            return Err("bad markup".into());
        }
        Ok(Parsed {
            words: ev.body.split(' ').count(),
        })
    }

    #[step]
    async fn count(&self, ev: Parsed) -> Result<StopEvent<String>, String> {
        if self.fail == "count" {
            return Err("overflow".into());
        }
        Ok(StopEvent::new(format!("{} words", ev.words)))
    }

    #[step(catch(fetch))]
    async fn on_fetch(&self, failed: StepFailed) -> Fetched {
        self.note("on_fetch", &failed);
        Fetched {
            body: "cached page".into(),
        }
    }

    #[step(catch(parse))]
    async fn on_parse(&self, failed: StepFailed) -> Parsed {
        self.note("on_parse", &failed);
        Parsed { words: 0 }
    }

    #[step]
    async fn on_other(&self, failed: StepFailed) -> StopEvent<String> {
        self.note("on_other", &failed);
        StopEvent::new(format!("gave up in {}", failed.step))
    }
}

#[tokio::test]
async fn each_failure_goes_to_the_one_failure_step_that_covers_its_step() {
    for (fail, result, seen) in [
        ("fetch", "2 words", "on_fetch <- fetch"),
        ("parse", "0 words", "on_parse <- parse"),
        ("count", "gave up in count", "on_other <- count"),
    ] {
        let pipeline = Pipeline {
            fail,
            ..Pipeline::default()
        };
        let got = pipeline.clone().run(StartEvent::new()).await.unwrap();
        assert_eq!(got, result, "failing {fail}");
        assert_eq!(*pipeline.seen.lock().unwrap(), [seen], "failing {fail}");
    }
    assert_eq!(Pipeline::STEPS[3].catches, ["fetch"]);
    assert!(Pipeline::STEPS[5].catches.is_empty());
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Job {
    tries: u32,
}

/// A handler that sends the failed work again: bounded by its budget.
#[derive(Clone, Default)]
struct Stubborn {
    recoveries: Arc<Mutex<u32>>,
}

#[workflow]
impl Stubborn {
    #[step]
    async fn start(&self, _ev: StartEvent) -> Job {
        Job { tries: 0 }
    }

    #[step]
    async fn work(&self, job: Job) -> Result<StopEvent<u32>, String> {
        Err(format!("still broken after {} tries", job.tries + 1))
    }

    #[step(catch(work), max_recoveries = 3)]
    async fn again(&self, failed: StepFailed) -> Job {
        *self.recoveries.lock().unwrap() += 1;
        let job: Job = serde_json::from_value(failed.input).unwrap();
        Job {
            tries: job.tries + 1,
        }
    }
}

#[tokio::test]
async fn a_failure_step_that_sends_the_work_again_stops_at_its_budget_with_the_last_error() {
    let stubborn = Stubborn::default();
    let err = stubborn.clone().run(StartEvent::new()).await.unwrap_err();
    assert_eq!(*stubborn.recoveries.lock().unwrap(), 3);
    match err {
        WorkflowError::StepFailed { step, source, .. } => {
            assert_eq!(step, "work");
            assert_eq!(source.to_string(), "still broken after 4 tries");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Item {
    n: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Outcome {
    n: u32,
    rescued: bool,
}

/// Every item fails once; the handler's budget of 1 is per lineage, so each is rescued.
struct Independent;

#[workflow]
impl Independent {
    #[step]
    async fn split(&self, _ev: StartEvent) -> Vec<Item> {
        (1..=3).map(|n| Item { n }).collect()
    }

    #[step(num_workers = 3)]
    async fn work(&self, item: Item) -> Result<Outcome, String> {
        Err(format!("item {} failed", item.n))
    }

    #[step(catch(work))]
    async fn rescue(&self, failed: StepFailed) -> Outcome {
        let item: Item = serde_json::from_value(failed.input).unwrap();
        Outcome {
            n: item.n,
            rescued: true,
        }
    }

    #[step]
    async fn gather(&self, results: Vec<Outcome>) -> StopEvent<Vec<(u32, bool)>> {
        StopEvent::new(results.iter().map(|r| (r.n, r.rescued)).collect())
    }
}

#[tokio::test]
async fn the_budget_counts_one_lineage_so_independent_failures_each_recover() {
    let got = Independent.run(StartEvent::new()).await.unwrap();
    assert_eq!(got, [(1, true), (2, true), (3, true)]);
}

#[derive(Debug, PartialEq)]
enum ApiError {
    RateLimited { retry_after_s: u64 },
    NotFound,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for ApiError {}

/// `call` fails with the user's own error type (or panics); the retry sees the previous
/// attempt's error as that type, and so does the failure step.
#[derive(Clone, Default)]
struct Api {
    panics: bool,
    seen_by_retry: Arc<Mutex<Vec<String>>>,
    seen_by_handler: Arc<Mutex<Vec<String>>>,
}

#[workflow]
impl Api {
    #[step(retry = RetryPolicy::attempts(2))]
    async fn call(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<u64>, ApiError> {
        let info = ctx.retry_info();
        if let Some(previous) = info.last_error_as::<ApiError>() {
            self.seen_by_retry
                .lock()
                .unwrap()
                .push(format!("{previous:?}"));
        }
        if self.panics {
            panic!("the client library panicked");
        }
        Err(match info.attempt {
            1 => ApiError::RateLimited { retry_after_s: 30 },
            _ => ApiError::NotFound,
        })
    }

    #[step]
    async fn handle(&self, failed: StepFailed) -> Option<StopEvent<u64>> {
        let mut seen = self.seen_by_handler.lock().unwrap();
        if failed.panicked {
            seen.push(failed.error.clone());
            return None;
        }
        match failed.error_as::<ApiError>() {
            Some(ApiError::RateLimited { retry_after_s }) => Some(StopEvent::new(*retry_after_s)),
            // Declines: the run fails with the step's own error.
            Some(other) => {
                seen.push(format!("declined {other:?}"));
                None
            }
            None => panic!("the handler sees the step's own error type"),
        }
    }
}

#[tokio::test]
async fn the_steps_own_error_reaches_its_retry_its_failure_step_and_the_caller() {
    let api = Api::default();
    let err = api.clone().run(StartEvent::new()).await.unwrap_err();
    assert_eq!(
        *api.seen_by_retry.lock().unwrap(),
        ["RateLimited { retry_after_s: 30 }"]
    );
    assert_eq!(*api.seen_by_handler.lock().unwrap(), ["declined NotFound"]);
    // The handler declined: the caller gets the step's error, still of its own type.
    match err {
        WorkflowError::StepFailed {
            step,
            attempts,
            source,
        } => {
            assert_eq!((step.as_str(), attempts), ("call", 2));
            assert_eq!(source.downcast_ref::<ApiError>(), Some(&ApiError::NotFound));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_panic_stays_a_panic_for_the_failure_step_and_the_caller() {
    let api = Api {
        panics: true,
        ..Api::default()
    };
    let err = api.clone().run(StartEvent::new()).await.unwrap_err();
    assert_eq!(
        *api.seen_by_handler.lock().unwrap(),
        ["panic: the client library panicked"]
    );
    assert!(
        matches!(err, WorkflowError::StepPanicked { ref message, .. } if message == "the client library panicked"),
        "{err:?}"
    );
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Fallback;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(external)]
struct Finish;

/// Two failure steps naming no steps both get `work`'s failure: `quick` recovers at once,
/// `slow` asks a person first and then declines. The run goes on, since one recovered, even
/// across a snapshot taken between the two decisions.
struct TwoMinds;

#[workflow]
impl TwoMinds {
    #[step]
    async fn work(&self, _ev: StartEvent) -> Result<StopEvent<&'static str>, String> {
        Err("broken".into())
    }

    #[step]
    async fn quick(&self, _failed: StepFailed) -> Fallback {
        Fallback
    }

    #[step]
    async fn slow(&self, ctx: &Context, _failed: StepFailed) -> Result<(), WaitError> {
        ctx.wait_for_event(
            WaitFor::<HumanResponseEvent>::new().prompt(InputRequiredEvent::new("decline?")),
        )
        .await?;
        Ok(())
    }

    #[step]
    async fn carry_on(
        &self,
        ctx: &Context,
        _ev: Fallback,
    ) -> Result<StopEvent<&'static str>, WaitError> {
        ctx.wait_for_event(WaitFor::<Finish>::new()).await?;
        Ok(StopEvent::new("carried on"))
    }
}

#[tokio::test]
async fn a_failure_one_failure_step_recovered_from_stays_recovered_across_a_snapshot() {
    let handler = TwoMinds.run(StartEvent::new());
    // Both waits have begun: `quick` has recovered, `slow` has not decided.
    let snapshot = loop {
        let snapshot = handler.snapshot().await.unwrap();
        if snapshot.waiters.len() == 2 {
            break snapshot;
        }
        tokio::task::yield_now().await;
    };
    handler.cancel_run();
    let _ = handler.await;
    let slow = snapshot
        .invocations
        .iter()
        .find(|i| i.step == "slow")
        .expect("slow still decides");
    assert!(slow.failure_recovered, "{slow:?}");

    let snapshot = workflows::Snapshot::from_json(&snapshot.to_json()).unwrap();
    let handler = TwoMinds.runner().resume(snapshot).unwrap();
    handler.send_event(HumanResponseEvent::new("no")).unwrap();
    handler.send_event(Finish).unwrap();
    assert_eq!(handler.await.unwrap(), "carried on");
}
