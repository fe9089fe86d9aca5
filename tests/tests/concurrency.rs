//! Bounds on concurrency: workers per step, runs per runner, and atomic state edits.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Barrier;
use workflows::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Task;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Finished;

/// Tracks how many invocations are inside a step at once, and the most ever seen.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Gauge {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Pool {
    gauge: Gauge,
    barrier: Barrier,
}

#[workflow]
impl Pool {
    #[step(sends(Task))]
    async fn start(&self, ctx: &Context, _ev: StartEvent) {
        for _ in 0..6 {
            ctx.send_event(Task).unwrap();
        }
    }

    #[step(num_workers = 3)]
    async fn work(&self, _ev: Task) -> Finished {
        self.gauge.enter();
        // Three invocations must be inside at once to pass; a fourth would raise the peak.
        self.barrier.wait().await;
        tokio::task::yield_now().await;
        self.gauge.leave();
        Finished
    }

    #[step]
    async fn join(&self, ctx: &Context, ev: Finished) -> Option<StopEvent<usize>> {
        ctx.collect(ev, 6).map(|all| StopEvent::new(all.len()))
    }
}

#[tokio::test]
async fn num_workers_is_the_peak_concurrency_of_a_step() {
    let runner = Pool {
        gauge: Gauge::default(),
        barrier: Barrier::new(3),
    }
    .runner();
    let done = tokio::time::timeout(Duration::from_secs(10), runner.run(StartEvent::new()))
        .await
        .expect("three workers reach the barrier together");
    assert_eq!(done.unwrap(), 6);
    assert_eq!(runner.workflow().gauge.peak.load(Ordering::SeqCst), 3);
}

struct Held {
    gauge: Arc<Gauge>,
    release: Arc<tokio::sync::Semaphore>,
}

#[workflow]
impl Held {
    #[step]
    async fn hold(&self, _ev: StartEvent) -> StopEvent<()> {
        self.gauge.enter();
        self.release.acquire().await.unwrap().forget();
        self.gauge.leave();
        StopEvent::new(())
    }
}

#[tokio::test]
async fn a_runner_limits_its_concurrent_runs() {
    let gauge = Arc::new(Gauge::default());
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let runner = Held {
        gauge: gauge.clone(),
        release: release.clone(),
    }
    .runner()
    .max_concurrent_runs(2);
    let handlers: Vec<_> = (0..5).map(|_| runner.run(StartEvent::new())).collect();
    // Let every run that can start do so.
    while gauge.now.load(Ordering::SeqCst) < 2 {
        tokio::task::yield_now().await;
    }
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        gauge.now.load(Ordering::SeqCst),
        2,
        "only two runs may be inside at once"
    );
    release.add_permits(5);
    for h in handlers {
        h.await.unwrap();
    }
    assert_eq!(gauge.peak.load(Ordering::SeqCst), 2);
}

#[derive(Default, Serialize, Deserialize)]
struct Counter {
    hits: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Hit;

struct Contended;

#[workflow(state = Counter)]
impl Contended {
    #[step(sends(Hit))]
    async fn start(&self, ctx: &Context<Counter>, _ev: StartEvent) {
        for _ in 0..200 {
            ctx.send_event(Hit).unwrap();
        }
    }

    #[step(num_workers = 16)]
    async fn hit(&self, ctx: &Context<Counter>, _ev: Hit) -> Finished {
        for _ in 0..50 {
            // A read-modify-write split by an await would lose updates; edit_state may not.
            ctx.edit_state(|s| s.hits += 1);
            tokio::task::yield_now().await;
        }
        Finished
    }

    #[step]
    async fn join(&self, ctx: &Context<Counter>, ev: Finished) -> Option<StopEvent<u64>> {
        ctx.collect(ev, 200)?;
        Some(StopEvent::new(ctx.state(|s| s.hits)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_state_edits_lose_no_update() {
    assert_eq!(Contended.run(StartEvent::new()).await.unwrap(), 200 * 50);
}

struct Parallel;

#[workflow]
impl Parallel {
    #[step]
    async fn start(&self, ev: StartEvent) -> StopEvent<u64> {
        StopEvent::new(ev.get::<u64>("i").unwrap() * 3)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_runs_of_one_runner_finish_independently() {
    let runner = Parallel.runner();
    let handlers: Vec<_> = (0..500_u64)
        .map(|i| runner.run(StartEvent::new().with("i", i)))
        .collect();
    for (i, h) in handlers.into_iter().enumerate() {
        assert_eq!(h.await.unwrap(), i as u64 * 3);
    }
}
