//! How runs end: the first stop event, cancel, timeout, a panicking step, an abandoned run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use workflows::prelude::*;
use workflows::{WorkflowCancelled, WorkflowFailed, WorkflowTimedOut};
use workflows_tests::Ask;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Go;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Note {
    text: String,
}

struct Race {
    slow_finished: Arc<AtomicBool>,
}

#[workflow]
impl Race {
    #[step(sends(Go))]
    async fn start(&self, ctx: &Context, _ev: StartEvent) {
        ctx.send_event(Go).unwrap();
    }

    #[step]
    async fn fast(&self, _ev: Go) -> StopEvent<&'static str> {
        // Let the slow step start and write its first note.
        tokio::time::sleep(Duration::from_millis(20)).await;
        StopEvent::new("fast")
    }

    #[step]
    async fn slow(&self, ctx: &Context, _ev: Go) -> StopEvent<&'static str> {
        ctx.write_event_to_stream(Note {
            text: "slow started".into(),
        });
        tokio::time::sleep(Duration::from_secs(3600)).await;
        ctx.write_event_to_stream(Note {
            text: "slow woke up".into(),
        });
        self.slow_finished.store(true, Ordering::SeqCst);
        StopEvent::new("slow")
    }
}

#[tokio::test(start_paused = true)]
async fn the_first_stop_wins_and_cancels_running_steps() {
    let slow_finished = Arc::new(AtomicBool::new(false));
    let handler = Race {
        slow_finished: slow_finished.clone(),
    }
    .run(StartEvent::new());
    let events: Vec<StreamEvent> = handler.stream_events().collect().await;
    assert_eq!(handler.await.unwrap(), "fast");
    let names: Vec<&str> = events.iter().map(|e| e.name()).collect();
    assert_eq!(
        names,
        ["Note", "StopEvent"],
        "the stop event is last and nothing follows it"
    );
    tokio::time::sleep(Duration::from_secs(7200)).await;
    assert!(
        !slow_finished.load(Ordering::SeqCst),
        "the slow step was dropped"
    );
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Never;

struct Stuck;

#[workflow]
impl Stuck {
    #[step]
    async fn wait_forever(&self, _ev: StartEvent) -> StopEvent<()> {
        std::future::pending::<()>().await;
        StopEvent::new(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_timeout_names_the_active_steps() {
    let handler = Stuck.runner().run_with(
        StartEvent::new(),
        RunOptions::new().timeout(Duration::from_secs(2)),
    );
    let events: Vec<StreamEvent> = handler.stream_events().collect().await;
    let err = handler.await.unwrap_err();
    match &err {
        WorkflowError::Timeout {
            timeout,
            active_steps,
        } => {
            assert_eq!(*timeout, Duration::from_secs(2));
            assert_eq!(active_steps, &["wait_forever"]);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "the run timed out after 2s; steps still running: wait_forever"
    );
    let last = events
        .last()
        .unwrap()
        .downcast_ref::<WorkflowTimedOut>()
        .unwrap();
    assert_eq!(last.active_steps, ["wait_forever"]);
}

#[tokio::test(start_paused = true)]
async fn there_is_no_default_timeout() {
    let handler = Stuck.run(StartEvent::new());
    tokio::time::sleep(Duration::from_secs(365 * 24 * 3600)).await;
    assert!(!handler.is_done(), "a run may wait for a year");
    handler.cancel_run();
    assert!(matches!(handler.await, Err(WorkflowError::Cancelled)));
}

#[tokio::test]
async fn cancel_ends_the_stream_and_the_run() {
    let handler = Ask.run(StartEvent::new());
    let mut stream = handler.stream_events();
    assert!(stream.next().await.unwrap().is::<InputRequiredEvent>());
    handler.cancel_run();
    let last = stream.next().await.unwrap();
    assert!(last.is::<WorkflowCancelled>());
    assert!(stream.next().await.is_none());
    assert!(handler.is_done());
    assert!(matches!(handler.await, Err(WorkflowError::Cancelled)));
}

struct Panics;

#[workflow]
impl Panics {
    #[step]
    async fn boom(&self, ev: StartEvent) -> StopEvent<u32> {
        let divisor = ev.get::<u32>("divisor").unwrap();
        tokio::task::yield_now().await;
        StopEvent::new(10 / divisor)
    }
}

#[tokio::test]
async fn a_panicking_step_is_a_typed_error_and_the_process_lives_on() {
    let handler = Panics.run(StartEvent::new().with("divisor", 0));
    let events: Vec<StreamEvent> = handler.stream_events().collect().await;
    match handler.await {
        Err(WorkflowError::StepPanicked {
            step,
            attempts,
            message,
        }) => {
            assert_eq!(step, "boom");
            assert_eq!(attempts, 1);
            assert!(message.contains("divide by zero"), "{message}");
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    let failed = events
        .last()
        .unwrap()
        .downcast_ref::<WorkflowFailed>()
        .unwrap();
    assert_eq!(failed.step.as_deref(), Some("boom"));
    assert!(failed.error.contains("divide by zero"), "{}", failed.error);
    assert_eq!(failed.error_type.as_deref(), Some("panic"));
    assert_eq!(failed.attempts, Some(1));
    // The engine still works.
    assert_eq!(
        Panics
            .run(StartEvent::new().with("divisor", 5))
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn an_idle_run_whose_handler_is_dropped_ends() {
    let handler = Ask.run(StartEvent::new());
    let mut stream = handler.stream_events();
    assert!(stream.next().await.unwrap().is::<InputRequiredEvent>());
    drop(handler);
    // Nothing could answer it any more: the run ends as cancelled instead of leaking.
    let last = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the run ends")
        .unwrap();
    assert!(last.is::<WorkflowCancelled>());
}

#[tokio::test]
async fn a_sender_keeps_an_idle_run_alive() {
    let handler = Ask.run(StartEvent::new());
    let sender = handler.sender();
    let mut stream = handler.stream_events();
    assert!(stream.next().await.unwrap().is::<InputRequiredEvent>());
    drop(handler);
    sender
        .send_event(HumanResponseEvent::new("still here"))
        .unwrap();
    let last = stream.next().await.unwrap();
    assert_eq!(
        last.downcast_ref::<StopEvent<String>>().unwrap().result,
        "still here"
    );
}

#[tokio::test]
async fn running_outside_tokio_is_an_error_not_a_panic() {
    let handler = std::thread::spawn(|| Ask.run(StartEvent::new()))
        .join()
        .unwrap();
    assert!(matches!(handler.await, Err(WorkflowError::NoRuntime)));
}
