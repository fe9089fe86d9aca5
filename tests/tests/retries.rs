//! Retry policies and the handler for a step that failed for good.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use workflows::prelude::*;
use workflows::{RetryInfo, WorkflowFailed};

#[derive(Debug)]
struct Transient(u32);

impl std::fmt::Display for Transient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "transient failure #{}", self.0)
    }
}

impl std::error::Error for Transient {}

struct Flaky {
    calls: AtomicU32,
    succeed_on: u32,
    seen: Mutex<Vec<RetryInfo>>,
}

#[workflow]
impl Flaky {
    #[step(retry = RetryPolicy::attempts(4).fixed(Duration::from_millis(100)))]
    async fn call(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<u32>, Transient> {
        self.seen.lock().unwrap().push(ctx.retry_info());
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n < self.succeed_on {
            Err(Transient(n))
        } else {
            Ok(StopEvent::new(n))
        }
    }
}

fn flaky(succeed_on: u32) -> Runner<Flaky> {
    Flaky {
        calls: AtomicU32::new(0),
        succeed_on,
        seen: Mutex::new(Vec::new()),
    }
    .runner()
}

#[tokio::test(start_paused = true)]
async fn a_step_is_retried_until_it_succeeds() {
    let runner = flaky(3);
    let started = tokio::time::Instant::now();
    assert_eq!(runner.run(StartEvent::new()).await.unwrap(), 3);
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(200),
        "two waits of 100 ms"
    );
    let seen = runner.workflow().seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        (
            seen[0].attempt,
            seen[0].max_attempts,
            seen[0].last_error.clone()
        ),
        (1, 4, None)
    );
    assert_eq!(seen[2].attempt, 3);
    assert_eq!(seen[2].last_error.as_deref(), Some("transient failure #2"));
}

#[tokio::test(start_paused = true)]
async fn n_attempts_mean_n_executions_then_the_step_error() {
    let runner = flaky(100);
    let handler = runner.run(StartEvent::new());
    let events: Vec<StreamEvent> = handler.stream_events().collect().await;
    match handler.await {
        Err(WorkflowError::StepFailed {
            step,
            attempts,
            source,
        }) => {
            assert_eq!(step, "call");
            assert_eq!(attempts, 4);
            let own = source
                .downcast_ref::<Transient>()
                .expect("the step's own error type");
            assert_eq!(own.0, 4);
        }
        other => panic!("expected StepFailed, got {other:?}"),
    }
    assert_eq!(runner.workflow().calls.load(Ordering::SeqCst), 4);
    let failed = events
        .last()
        .unwrap()
        .downcast_ref::<WorkflowFailed>()
        .unwrap();
    // The last event tells the step's own error, its type, and how hard the step tried: four
    // attempts with three waits of 100 ms between them (paused time).
    assert_eq!(failed.step.as_deref(), Some("call"));
    assert_eq!(failed.error, "transient failure #4");
    assert_eq!(failed.error_type.as_deref(), Some("retries::Transient"));
    assert_eq!(failed.attempts, Some(4));
    assert_eq!(failed.elapsed_seconds, Some(0.3));
}

struct Picky {
    calls: AtomicU32,
}

#[workflow]
impl Picky {
    #[step(retry = RetryPolicy::attempts(5).retry_if(|e| !e.to_string().contains("fatal")))]
    async fn call(&self, _ev: StartEvent) -> Result<StopEvent<()>, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err("fatal: bad request".to_owned())
    }
}

#[tokio::test]
async fn errors_the_policy_does_not_retry_fail_at_once() {
    let runner = Picky {
        calls: AtomicU32::new(0),
    }
    .runner();
    let err = runner.run(StartEvent::new()).await.unwrap_err();
    assert!(
        matches!(err, WorkflowError::StepFailed { attempts: 1, .. }),
        "{err}"
    );
    assert_eq!(runner.workflow().calls.load(Ordering::SeqCst), 1);
}

/// Fails for good, then a failure step decides: recover when `recover` is set.
struct Guarded {
    recover: bool,
}

#[workflow]
impl Guarded {
    #[step(retry = RetryPolicy::attempts(2).fixed(Duration::from_millis(250)))]
    async fn fetch(&self, ev: StartEvent) -> Result<StopEvent<String>, std::io::Error> {
        let url = ev.get::<String>("url").unwrap();
        Err(std::io::Error::other(format!("{url} unreachable")))
    }

    #[step]
    async fn fallback(&self, failed: StepFailed) -> Option<StopEvent<String>> {
        self.recover.then(|| {
            StopEvent::new(format!(
                "fallback for {} after {} attempts in {} s ({}) on {}",
                failed.step,
                failed.attempts,
                failed.elapsed_seconds,
                failed.error,
                failed.input["url"]
            ))
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_failure_handler_can_recover_the_run() {
    let start = StartEvent::new().with("url", "http://a");
    let result = Guarded { recover: true }.run(start).await.unwrap();
    assert_eq!(
        result,
        "fallback for fetch after 2 attempts in 0.25 s (http://a unreachable) on \"http://a\""
    );
}

#[tokio::test]
async fn a_failure_handler_that_emits_nothing_leaves_the_original_error() {
    let start = StartEvent::new().with("url", "http://b");
    let outcome = Guarded { recover: false }.run(start).await;
    match outcome {
        Err(WorkflowError::StepFailed {
            step,
            attempts,
            source,
        }) => {
            assert_eq!((step.as_str(), attempts), ("fetch", 2));
            assert!(source.downcast_ref::<std::io::Error>().is_some());
            assert_eq!(source.to_string(), "http://b unreachable");
        }
        other => panic!("expected the original failure, got {other:?}"),
    }
}

struct RetriedPanic {
    calls: AtomicU32,
}

#[workflow]
impl RetriedPanic {
    #[step(retry = RetryPolicy::attempts(3))]
    async fn call(&self, _ev: StartEvent) -> StopEvent<u32> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        assert!(n >= 2, "first attempt panics");
        StopEvent::new(n)
    }
}

#[tokio::test]
async fn a_panic_is_retried_like_an_error() {
    let runner = RetriedPanic {
        calls: AtomicU32::new(0),
    }
    .runner();
    assert_eq!(runner.run(StartEvent::new()).await.unwrap(), 2);
}

#[derive(Debug)]
struct Busy {
    retry_after: Duration,
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "busy; retry after {:?}", self.retry_after)
    }
}

impl std::error::Error for Busy {}

/// A workflow whose only step always fails under `$policy`, noting when each attempt began
/// (the error asks for a wait of 2 s times the attempt number).
macro_rules! always_failing {
    ($name:ident, $policy:expr) => {
        #[derive(Default)]
        struct $name {
            began: Mutex<Vec<Duration>>,
            origin: Mutex<Option<tokio::time::Instant>>,
        }

        #[workflow]
        impl $name {
            #[step(retry = $policy)]
            async fn call(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<()>, Busy> {
                let now = tokio::time::Instant::now();
                let origin = *self.origin.lock().unwrap().get_or_insert(now);
                self.began.lock().unwrap().push(now - origin);
                let attempt = ctx.retry_info().attempt;
                Err(Busy {
                    retry_after: Duration::from_secs(2 * u64::from(attempt)),
                })
            }
        }
    };
}

always_failing!(
    Chained,
    RetryPolicy::attempts(5).waits([1, 5, 30].map(Duration::from_secs))
);
always_failing!(
    Computed,
    RetryPolicy::attempts(4).wait_with(|_, err| {
        err.downcast_ref::<Busy>()
            .map_or(Duration::ZERO, |busy| busy.retry_after)
    })
);
always_failing!(
    StopAfter,
    RetryPolicy::attempts(100)
        .fixed(Duration::from_secs(4))
        .stop_after(Duration::from_secs(10))
);
always_failing!(
    StopBefore,
    RetryPolicy::attempts(100)
        .fixed(Duration::from_secs(4))
        .stop_before(Duration::from_secs(10))
);

fn secs(list: &[u64]) -> Vec<Duration> {
    list.iter().map(|s| Duration::from_secs(*s)).collect()
}

#[tokio::test(start_paused = true)]
async fn a_chain_of_waits_is_followed_and_its_last_wait_repeats() {
    let w = Chained::default();
    let runner = w.runner();
    let err = runner.run(StartEvent::new()).await.unwrap_err();
    assert!(
        matches!(err, WorkflowError::StepFailed { attempts: 5, .. }),
        "{err}"
    );
    let began = runner.workflow().began.lock().unwrap().clone();
    assert_eq!(began, secs(&[0, 1, 6, 36, 66]));
}

#[tokio::test(start_paused = true)]
async fn a_wait_function_sees_the_attempt_and_the_steps_own_error() {
    let runner = Computed::default().runner();
    let _ = runner.run(StartEvent::new()).await.unwrap_err();
    // Waits of 2, 4 and 6 s, as each attempt's error asked.
    let began = runner.workflow().began.lock().unwrap().clone();
    assert_eq!(began, secs(&[0, 2, 6, 12]));
}

#[tokio::test(start_paused = true)]
async fn stop_after_gives_up_once_the_total_time_has_passed() {
    let runner = StopAfter::default().runner();
    let err = runner.run(StartEvent::new()).await.unwrap_err();
    // The attempt begun at 12 s fails past 10 s: no more.
    assert!(
        matches!(err, WorkflowError::StepFailed { attempts: 4, .. }),
        "{err}"
    );
    let began = runner.workflow().began.lock().unwrap().clone();
    assert_eq!(began, secs(&[0, 4, 8, 12]));
}

#[tokio::test(start_paused = true)]
async fn stop_before_gives_up_rather_than_wait_past_the_total() {
    let runner = StopBefore::default().runner();
    let err = runner.run(StartEvent::new()).await.unwrap_err();
    // After the attempt at 8 s, a 4 s wait would end at 12 s, past 10 s.
    assert!(
        matches!(err, WorkflowError::StepFailed { attempts: 3, .. }),
        "{err}"
    );
    let began = runner.workflow().began.lock().unwrap().clone();
    assert_eq!(began, secs(&[0, 4, 8]));
}

#[tokio::test(start_paused = true)]
async fn a_time_based_stop_counts_from_the_first_attempt_across_a_resume() {
    let first = StopAfter::default().runner();
    let handler = first.run(StartEvent::new());
    // Wait, in paused time, until the second attempt has failed and its back-off begun.
    let snapshot = loop {
        let snapshot = handler.snapshot().await.unwrap();
        if snapshot
            .invocations
            .first()
            .is_some_and(|inv| inv.attempt == 3 && inv.retry_in_ms.is_some())
        {
            break snapshot;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    handler.cancel_run();
    let _ = handler.await;
    let tried = snapshot.invocations[0]
        .tried_for_ms
        .expect("kept for a time-based stop");
    assert!((4_000..8_000).contains(&tried), "{tried}");

    let second = StopAfter::default().runner();
    let snapshot = workflows::Snapshot::from_json(&snapshot.to_json()).unwrap();
    let err = second.resume(snapshot).unwrap().await.unwrap_err();
    // Attempts 3 and 4 ran here (at 8 s and 12 s of the invocation's time); a count from the
    // resume would have allowed more.
    assert!(
        matches!(err, WorkflowError::StepFailed { attempts: 4, .. }),
        "{err}"
    );
    assert_eq!(second.workflow().began.lock().unwrap().len(), 2);
}
