//! Fan-out with `send_event`, fan-in with `collect` and `collect_events`.

use serde::{Deserialize, Serialize};
use workflows::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct A {
    n: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct B {
    n: u32,
}

#[derive(Debug, OneOf)]
enum AOrB {
    A(A),
    B(B),
}

/// Sends B1, A1, A2, B2, A3 in that order; the collector expects [A, B, A].
struct Mixed;

#[workflow]
impl Mixed {
    #[step(sends(A, B))]
    async fn start(&self, ctx: &Context, _ev: StartEvent) {
        ctx.send_event(B { n: 1 }).unwrap();
        ctx.send_event(A { n: 1 }).unwrap();
        ctx.send_event(A { n: 2 }).unwrap();
        ctx.send_event(B { n: 2 }).unwrap();
        ctx.send_event(A { n: 3 }).unwrap();
    }

    #[step(num_workers = 1)]
    async fn gather(&self, ctx: &Context, ev: AOrB) -> Option<StopEvent<Vec<String>>> {
        let ev: Box<dyn AnyEvent> = match ev {
            AOrB::A(a) => Box::new(a),
            AOrB::B(b) => Box::new(b),
        };
        let expected = [
            EventInfo::of::<A>(),
            EventInfo::of::<B>(),
            EventInfo::of::<A>(),
        ];
        let got = ctx.collect_events(ev, &expected)?;
        let names = got
            .iter()
            .map(|e| match (e.downcast_ref::<A>(), e.downcast_ref::<B>()) {
                (Some(a), _) => format!("A{}", a.n),
                (_, Some(b)) => format!("B{}", b.n),
                _ => unreachable!(),
            })
            .collect();
        Some(StopEvent::new(names))
    }
}

#[tokio::test]
async fn collected_events_come_in_expected_order_then_arrival_order() {
    let got = Mixed.run(StartEvent::new()).await.unwrap();
    // Complete after A1, A2 and B1 have arrived (the fourth event, B2, is not needed).
    assert_eq!(got, ["A1", "B1", "A2"]);
}

struct Empty;

#[workflow]
impl Empty {
    #[step]
    async fn only(&self, ctx: &Context, ev: StartEvent) -> StopEvent<usize> {
        let got = ctx
            .collect_events(Box::new(ev.clone()), &[])
            .expect("nothing to wait for");
        let typed = ctx
            .collect::<StartEvent>(ev, 0)
            .expect("nothing to wait for");
        StopEvent::new(got.len() + typed.len())
    }
}

#[tokio::test]
async fn collecting_an_empty_list_returns_at_once() {
    assert_eq!(Empty.run(StartEvent::new()).await.unwrap(), 0);
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Work {
    i: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Done {
    i: u64,
    y: u64,
}

struct FanOut;

#[workflow]
impl FanOut {
    #[step(sends(Work))]
    async fn start(&self, ctx: &Context, ev: StartEvent) {
        for i in 0..ev.get::<u64>("k").unwrap() {
            ctx.send_event(Work { i }).unwrap();
        }
        ctx.store().set("k", ev.get::<u64>("k").unwrap()).unwrap();
    }

    #[step(num_workers = 8)]
    async fn work(&self, ev: Work) -> Done {
        tokio::task::yield_now().await;
        Done {
            i: ev.i,
            y: 2 * ev.i,
        }
    }

    #[step]
    async fn join(&self, ctx: &Context, ev: Done) -> Option<StopEvent<(Vec<u64>, u64)>> {
        let k: usize = ctx.store().get("k").unwrap().unwrap();
        let all = ctx.collect(ev, k)?;
        let mut ids: Vec<u64> = all.iter().map(|d| d.i).collect();
        ids.sort_unstable();
        Some(StopEvent::new((ids, all.iter().map(|d| d.y).sum())))
    }
}

#[tokio::test]
async fn a_thousand_events_fan_out_and_back_in() {
    let k = 1000_u64;
    let (ids, sum) = FanOut.run(StartEvent::new().with("k", k)).await.unwrap();
    assert_eq!(ids, (0..k).collect::<Vec<_>>());
    assert_eq!(sum, k * (k - 1));
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Part {
    n: u32,
}

struct FlakyJoin;

#[workflow]
impl FlakyJoin {
    #[step(sends(Part))]
    async fn split(&self, ctx: &Context, _ev: StartEvent) {
        ctx.send_event(Part { n: 1 }).unwrap();
        ctx.send_event(Part { n: 2 }).unwrap();
    }

    /// Fails once after collecting the whole batch: the retry gets the same batch back.
    #[step(retry = RetryPolicy::attempts(2))]
    async fn join(&self, ctx: &Context, ev: Part) -> Result<Option<StopEvent<Vec<u32>>>, String> {
        let Some(all) = ctx.collect(ev, 2) else {
            return Ok(None);
        };
        if ctx.retry_info().attempt == 1 {
            return Err("downstream hiccup".into());
        }
        Ok(Some(StopEvent::new(all.iter().map(|p| p.n).collect())))
    }
}

#[tokio::test]
async fn a_retried_fan_in_step_keeps_its_batch() {
    let outcome = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        FlakyJoin.run(StartEvent::new()),
    )
    .await
    .expect("the retry completes the fan-in");
    assert_eq!(outcome.unwrap(), [1, 2]);
}
