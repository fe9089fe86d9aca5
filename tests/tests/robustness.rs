//! Hard cases: fairness between steps, cancelling a queued run, misuse of the state, panics in
//! code the runtime calls, generic events, several failure steps, awkward step names.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use workflows::prelude::*;
use workflows_tests::Ask;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Spin;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Finish;

/// What `spin` may return: itself again, or (never, here) the end.
#[derive(Debug, OneOf)]
enum SpinAgain {
    Spin(Spin),
    Stop(StopEvent<&'static str>),
}

/// `spin` feeds itself forever; `finish` must still get its turn.
struct Greedy;

#[workflow]
impl Greedy {
    #[step(sends(Spin))]
    async fn start(&self, ctx: &Context, _ev: StartEvent) -> Finish {
        ctx.send_event(Spin).unwrap();
        Finish
    }

    #[step]
    async fn spin(&self, _ev: Spin) -> SpinAgain {
        SpinAgain::Spin(Spin)
    }

    #[step]
    async fn finish(&self, _ev: Finish) -> StopEvent<&'static str> {
        StopEvent::new("finished")
    }
}

#[tokio::test]
async fn a_step_that_feeds_itself_does_not_starve_the_others() {
    let run = Greedy.runner().run_with(
        StartEvent::new(),
        RunOptions::new().timeout(Duration::from_secs(10)),
    );
    assert_eq!(run.await.unwrap(), "finished");
}

struct Spinner;

#[workflow]
impl Spinner {
    #[step(sends(Spin))]
    async fn start(&self, ctx: &Context, _ev: StartEvent) -> Option<StopEvent<&'static str>> {
        ctx.send_event(Spin).unwrap();
        None
    }

    #[step]
    async fn spin(&self, _ev: Spin) -> SpinAgain {
        SpinAgain::Spin(Spin)
    }
}

/// Real time: a paused clock only advances when the runtime is idle, and this run never is.
#[tokio::test]
async fn a_timeout_names_a_step_that_keeps_finishing_and_restarting() {
    let run = Spinner.runner().run_with(
        StartEvent::new(),
        RunOptions::new().timeout(Duration::from_millis(50)),
    );
    match run.await {
        Err(WorkflowError::Timeout { active_steps, .. }) => assert_eq!(active_steps, ["spin"]),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn a_run_waiting_for_a_slot_can_be_cancelled() {
    let runner = Ask.runner().max_concurrent_runs(1);
    let first = runner.run(StartEvent::new()); // takes the only slot and waits for a human
    let second = runner.run(StartEvent::new());
    second.cancel_run();
    let outcome = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("cancelled without waiting for the slot");
    assert!(matches!(outcome, Err(WorkflowError::Cancelled)));
    first.cancel_run();
}

struct Nested;

#[workflow(state = u32)]
impl Nested {
    #[step]
    async fn only(&self, ctx: &Context<u32>, _ev: StartEvent) -> StopEvent<u32> {
        ctx.edit_state(|s| *s += ctx.state(|s| *s) + 1);
        StopEvent::new(ctx.state(|s| *s))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_the_state_inside_an_edit_fails_the_step_instead_of_deadlocking() {
    let outcome = tokio::time::timeout(Duration::from_secs(10), Nested.run(StartEvent::new()))
        .await
        .expect("no deadlock");
    match outcome {
        Err(WorkflowError::StepPanicked { step, message, .. }) => {
            assert_eq!(step, "only");
            assert!(message.contains("already borrowed"), "{message}");
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
}

#[derive(Default, Serialize, Deserialize)]
struct Pair {
    a: u32,
    b: u32,
}

struct Torn;

#[workflow(state = Pair)]
impl Torn {
    #[step(retry = RetryPolicy::attempts(2))]
    async fn only(&self, ctx: &Context<Pair>, _ev: StartEvent) -> StopEvent<(u32, u32)> {
        let first = ctx.retry_info().attempt == 1;
        ctx.edit_state(|s| {
            s.a += 1;
            assert!(!first, "panic in the middle of an edit");
            s.b += 1;
        });
        StopEvent::new(ctx.state(|s| (s.a, s.b)))
    }
}

#[tokio::test]
async fn a_half_done_edit_is_never_seen() {
    match Torn.run(StartEvent::new()).await {
        Err(WorkflowError::StepPanicked {
            attempts: 2,
            message,
            ..
        }) => {
            assert!(message.contains("half-edited"), "{message}");
        }
        other => panic!("expected the retry to refuse the torn state, got {other:?}"),
    }
}

struct BadPredicate;

#[workflow]
impl BadPredicate {
    #[step(retry = RetryPolicy::attempts(3).retry_if(|e| {
        e.downcast_ref::<std::io::Error>().expect("an io::Error").kind() == std::io::ErrorKind::TimedOut
    }))]
    async fn only(&self, _ev: StartEvent) -> Result<StopEvent<()>, String> {
        Err("not an io::Error".into())
    }
}

#[tokio::test]
async fn a_panicking_retry_predicate_is_reported_as_such() {
    match BadPredicate.run(StartEvent::new()).await {
        Err(WorkflowError::Panicked { message }) => assert!(message.contains("an io::Error")),
        other => panic!("expected Panicked, got {other:?}"),
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Part<T: Clone + std::fmt::Debug + Send + Sync + Serialize + 'static> {
    v: T,
}

#[derive(Debug, OneOf)]
enum Parts {
    Number(Part<u32>),
    Text(Part<String>),
}

struct Generic;

#[workflow]
impl Generic {
    #[step(sends(Part<u32>, Part<String>))]
    async fn start(&self, ctx: &Context, _ev: StartEvent) {
        ctx.send_event(Part { v: 1_u32 }).unwrap();
        ctx.send_event(Part { v: "x".to_owned() }).unwrap();
        ctx.send_event(Part { v: 2_u32 }).unwrap();
    }

    #[step(num_workers = 1)]
    async fn join(&self, ctx: &Context, ev: Parts) -> Option<StopEvent<Vec<u32>>> {
        match ev {
            Parts::Number(p) => ctx
                .collect(p, 2)
                .map(|all| StopEvent::new(all.into_iter().map(|p| p.v).collect())),
            Parts::Text(p) => ctx.collect(p, 5).map(|_| StopEvent::new(Vec::new())),
        }
    }
}

#[tokio::test]
async fn collect_keeps_generic_event_types_apart() {
    assert_eq!(Generic.run(StartEvent::new()).await.unwrap(), [1, 2]);
}

struct TwoHandlers {
    recover: bool,
}

#[workflow]
impl TwoHandlers {
    #[step]
    async fn work(&self, _ev: StartEvent) -> Result<StopEvent<u8>, std::io::Error> {
        Err(std::io::Error::other("disk full"))
    }

    /// Only logs: declines to recover.
    #[step]
    async fn log_it(&self, _ev: StepFailed) {}

    #[step]
    async fn recover(&self, _ev: StepFailed) -> Option<StopEvent<u8>> {
        self.recover.then(|| StopEvent::new(0))
    }
}

#[tokio::test]
async fn with_several_failure_handlers_one_recovery_is_enough() {
    assert_eq!(
        TwoHandlers { recover: true }
            .run(StartEvent::new())
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn when_every_handler_declines_the_original_error_comes_back_whole() {
    let outcome = TwoHandlers { recover: false }.run(StartEvent::new()).await;
    match outcome {
        Err(WorkflowError::StepFailed { step, source, .. }) => {
            assert_eq!(step, "work");
            assert!(
                source.downcast_ref::<std::io::Error>().is_some(),
                "the io::Error type survives"
            );
            assert_eq!(source.to_string(), "disk full");
        }
        other => panic!("expected the original failure, got {other:?}"),
    }
}

struct AwkwardNames;

#[workflow]
impl AwkwardNames {
    #[step]
    async fn clone(&self, _ev: StartEvent) -> Finish {
        Finish
    }

    #[step]
    async fn as_ref(&self, _ev: Finish) -> StopEvent<u8> {
        StopEvent::new(1)
    }
}

#[tokio::test]
async fn steps_may_be_named_like_methods_of_arc() {
    assert_eq!(AwkwardNames.run(StartEvent::new()).await.unwrap(), 1);
}
