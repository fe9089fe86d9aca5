//! Steps taking several events: `async fn pair(&self, a: A, b: B)` fires once per complete set.

use serde::{Deserialize, Serialize};
use workflows::prelude::*;
use workflows::{Fires, Snapshot};

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(external)]
struct Left {
    n: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(external)]
struct Right {
    n: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Paired {
    left: u32,
    right: u32,
}

/// Pairs lefts with rights as they arrive from outside; ends after `PAIRS` pairs.
struct Pairs;

const PAIRS: usize = 2;

#[workflow]
impl Pairs {
    #[step]
    async fn start(&self, _ev: StartEvent) {}

    #[step]
    async fn pair(&self, left: Left, right: Right) -> Paired {
        Paired {
            left: left.n,
            right: right.n,
        }
    }

    #[step(num_workers = 1)]
    async fn gather(&self, ctx: &Context, ev: Paired) -> Option<StopEvent<Vec<(u32, u32)>>> {
        let all = ctx.collect(ev, PAIRS)?;
        Some(StopEvent::new(
            all.iter().map(|p| (p.left, p.right)).collect(),
        ))
    }
}

#[derive(Clone, Debug)]
enum Arrival {
    Left(u32),
    Right(u32),
}

fn permutations(items: &[Arrival]) -> Vec<Vec<Arrival>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, first.clone());
            out.push(tail);
        }
    }
    out
}

#[tokio::test]
async fn a_pair_fires_once_per_set_in_arrival_order_per_type_whatever_the_interleaving() {
    assert_eq!(Pairs::STEPS[1].fires, Fires::PerSet);
    let arrivals = [
        Arrival::Left(1),
        Arrival::Left(2),
        Arrival::Right(10),
        Arrival::Right(20),
    ];
    let orders = permutations(&arrivals);
    assert_eq!(orders.len(), 24);
    for order in orders {
        let handler = Pairs.run(StartEvent::new());
        for arrival in &order {
            match arrival {
                Arrival::Left(n) => handler.send_event(Left { n: *n }).unwrap(),
                Arrival::Right(n) => handler.send_event(Right { n: *n }).unwrap(),
            }
        }
        // The i-th left to arrive pairs with the i-th right to arrive; `gather` sees the pairs
        // in the order they completed.
        let lefts = order.iter().filter_map(|a| match a {
            Arrival::Left(n) => Some(*n),
            Arrival::Right(_) => None,
        });
        let rights = order.iter().filter_map(|a| match a {
            Arrival::Right(n) => Some(*n),
            Arrival::Left(_) => None,
        });
        let mut expected: Vec<(u32, u32)> = lefts.zip(rights).collect();
        expected.sort_unstable();
        let mut pairs = handler.await.unwrap();
        pairs.sort_unstable();
        assert_eq!(pairs, expected, "order {order:?}");
    }
}

#[tokio::test]
async fn an_event_waits_for_its_partner_across_a_snapshot() {
    let handler = Pairs.run(StartEvent::new());
    handler.send_event(Left { n: 1 }).unwrap();
    handler.send_event(Left { n: 2 }).unwrap();
    handler.send_event(Right { n: 10 }).unwrap();
    // The first pair completes; the second left waits for its partner.
    let snapshot = loop {
        let snapshot = handler.snapshot().await.unwrap();
        if snapshot.unpaired.len() == 1 && snapshot.queues.is_empty() {
            break snapshot;
        }
        tokio::task::yield_now().await;
    };
    handler.cancel_run();
    let _ = handler.await;
    assert_eq!(snapshot.unpaired[0].step, "pair");
    assert_eq!(snapshot.unpaired[0].event.name, "Left");
    assert_eq!(snapshot.unpaired[0].event.data["n"], 2);

    let snapshot = Snapshot::from_json(&snapshot.to_json()).unwrap();
    let handler = Pairs.runner().resume(snapshot).unwrap();
    handler.send_event(Right { n: 20 }).unwrap();
    let mut pairs = handler.await.unwrap();
    pairs.sort_unstable();
    assert_eq!(pairs, [(1, 10), (2, 20)]);
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Item {
    n: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Price {
    n: u32,
    cents: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Stock {
    n: u32,
    units: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Offer {
    n: u32,
    total: u32,
}

/// Inside a fan-out, each branch produces a price (returned) and a stock (sent), interleaved
/// with the other branches'; a step taking both pairs them within the branch (never across
/// branches), and a join gathers the offers.
struct Catalogue;

#[workflow]
impl Catalogue {
    #[step]
    async fn split(&self, _ev: StartEvent) -> Vec<Item> {
        (1..=3).map(|n| Item { n }).collect()
    }

    #[step(num_workers = 3, sends(Stock))]
    async fn look_up(&self, ctx: &Context, item: Item) -> Price {
        ctx.send_event(Stock {
            n: item.n,
            units: item.n * 2,
        })
        .unwrap();
        // The branches interleave: another branch's stock arrives before this price.
        for _ in 0..(4 - item.n) * 3 {
            tokio::task::yield_now().await;
        }
        Price {
            n: item.n,
            cents: item.n * 100,
        }
    }

    #[step]
    async fn offer(&self, ctx: &Context, price: Price, stock: Stock) -> Offer {
        assert_eq!(price.n, stock.n, "a set pairs the events of one branch");
        assert!(ctx.retry_info().attempt >= 1);
        Offer {
            n: price.n,
            total: price.cents * stock.units,
        }
    }

    #[step]
    async fn catalogue(&self, offers: Vec<Offer>) -> StopEvent<Vec<(u32, u32)>> {
        StopEvent::new(offers.iter().map(|o| (o.n, o.total)).collect())
    }
}

#[test]
fn a_set_inside_a_fan_out_pairs_within_its_branch_and_the_join_waits_for_it() {
    for flavor in ["current", "multi"] {
        let runtime = match flavor {
            "current" => tokio::runtime::Builder::new_current_thread().build(),
            _ => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build(),
        }
        .unwrap();
        let got = runtime
            .block_on(async { Catalogue.run(StartEvent::new()).await })
            .unwrap();
        assert_eq!(got, [(1, 200), (2, 800), (3, 1800)], "{flavor}");
    }
}
