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
    #[step(retry = RetryPolicy::attempts(2))]
    async fn fetch(&self, ev: StartEvent) -> Result<StopEvent<String>, std::io::Error> {
        let url = ev.get::<String>("url").unwrap();
        Err(std::io::Error::other(format!("{url} unreachable")))
    }

    #[step]
    async fn fallback(&self, failed: StepFailed) -> Option<StopEvent<String>> {
        self.recover.then(|| {
            StopEvent::new(format!(
                "fallback for {} after {} attempts ({}) on {}",
                failed.step, failed.attempts, failed.error, failed.input["url"]
            ))
        })
    }
}

#[tokio::test]
async fn a_failure_handler_can_recover_the_run() {
    let start = StartEvent::new().with("url", "http://a");
    let result = Guarded { recover: true }.run(start).await.unwrap();
    assert_eq!(
        result,
        "fallback for fetch after 2 attempts (http://a unreachable) on \"http://a\""
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
