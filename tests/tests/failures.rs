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
