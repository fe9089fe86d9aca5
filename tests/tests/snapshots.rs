//! Snapshots: store a run, resume it, and get the same result as if it had never stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use workflows::prelude::*;
use workflows::{RawJson, ResumeError, RunStatus, SendError, Snapshot, field};
use workflows_tests::{Decision, Reviewed, verdicts};

/// Reads `handler`'s stream until an event of type `E` and returns it.
async fn next_of<E: Event, T>(handler: &Handler<T>) -> E {
    let mut events = handler.stream_events();
    while let Some(ev) = events.next().await {
        if let Some(found) = ev.downcast_ref::<E>() {
            return found.clone();
        }
    }
    panic!("the stream ended without a {}", E::NAME);
}

/// Takes a snapshot through JSON text, as a store would, and cancels the original run.
async fn hand_off<T>(handler: &Handler<T>) -> Snapshot {
    let text = handler.snapshot().await.unwrap().to_json();
    handler.cancel_run();
    Snapshot::from_json(&text).unwrap()
}

#[derive(Default)]
struct Counts {
    ask: AtomicU32,
    answer: AtomicU32,
}

struct NumberWorkflow {
    counts: Arc<Counts>,
}

#[workflow]
impl NumberWorkflow {
    #[step]
    async fn ask(&self, _ev: StartEvent) -> InputRequiredEvent {
        self.counts.ask.fetch_add(1, Ordering::SeqCst);
        InputRequiredEvent::new("Enter a number: ")
    }

    #[step]
    async fn answer(&self, ev: HumanResponseEvent) -> StopEvent<String> {
        self.counts.answer.fetch_add(1, Ordering::SeqCst);
        StopEvent::new(ev.response)
    }
}

#[tokio::test]
async fn a_run_snapshotted_at_the_prompt_resumes_and_finishes() {
    let counts = Arc::new(Counts::default());
    let runner = NumberWorkflow {
        counts: counts.clone(),
    }
    .runner();
    let handler = runner.run(StartEvent::new());
    let prompt = next_of::<InputRequiredEvent, _>(&handler).await;
    assert_eq!(prompt.prefix, "Enter a number: ");
    let snapshot = hand_off(&handler).await;
    assert!(matches!(handler.await, Err(WorkflowError::Cancelled)));
    assert_eq!(snapshot.status, RunStatus::Running);

    let resumed = runner.resume(snapshot.clone()).unwrap();
    assert_eq!(resumed.run_id(), snapshot.run_id, "the run keeps its id");
    let mut events = resumed.stream_events();
    resumed.send_event(HumanResponseEvent::new("42")).unwrap();
    let after: Vec<StreamEvent> = (&mut events).collect().await;
    assert_eq!(resumed.await.unwrap(), "42");
    // The resumed stream holds only what follows, numbered on from the snapshot.
    assert_eq!(after.len(), 1);
    assert!(after[0].is::<StopEvent<String>>());
    assert_eq!(after[0].seq, snapshot.next_stream_seq);
    assert_eq!(counts.ask.load(Ordering::SeqCst), 1, "ask ran once");
    assert_eq!(counts.answer.load(Ordering::SeqCst), 1, "answer ran once");
}

#[tokio::test]
async fn a_cancelled_run_can_still_be_snapshotted_and_resumed() {
    let counts = Arc::new(Counts::default());
    let runner = NumberWorkflow {
        counts: counts.clone(),
    }
    .runner();
    let handler = runner.run(StartEvent::new());
    next_of::<InputRequiredEvent, _>(&handler).await;
    handler.cancel_run();
    let snapshot = handler.snapshot().await.unwrap();
    assert_eq!(snapshot.status, RunStatus::Cancelled);
    let resumed = runner.resume(snapshot).unwrap();
    resumed.send_event(HumanResponseEvent::new("7")).unwrap();
    assert_eq!(resumed.await.unwrap(), "7");
}

#[tokio::test]
async fn a_finished_run_gives_a_final_snapshot_that_does_not_resume() {
    let runner = NumberWorkflow {
        counts: Arc::default(),
    }
    .runner();
    let handler = runner.run(StartEvent::new());
    next_of::<InputRequiredEvent, _>(&handler).await;
    handler.send_event(HumanResponseEvent::new("1")).unwrap();
    let sender = handler.sender();
    let snapshot = {
        let mut events = handler.stream_events();
        while events.next().await.is_some() {}
        handler.snapshot().await.unwrap()
    };
    assert_eq!(handler.await.unwrap(), "1");
    assert_eq!(snapshot.status, RunStatus::Completed);
    assert!(matches!(
        runner.resume(snapshot),
        Err(ResumeError::RunEnded {
            status: RunStatus::Completed
        })
    ));
    assert_eq!(
        sender.send_event(HumanResponseEvent::new("late")),
        Err(SendError::RunFinished),
        "a response sent to a finished run is refused"
    );
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Fork;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Branch {
    name: String,
}

/// `quick` finishes at once; `slow` waits at a gate that the test controls.
struct MidRun {
    gate: Arc<Semaphore>,
    quick_runs: Arc<AtomicU32>,
    slow_runs: Arc<AtomicU32>,
}

#[workflow]
impl MidRun {
    #[step]
    async fn start(&self, _ev: StartEvent) -> Fork {
        Fork
    }

    #[step]
    async fn quick(&self, _ev: Fork) -> Branch {
        self.quick_runs.fetch_add(1, Ordering::SeqCst);
        Branch {
            name: "quick".into(),
        }
    }

    #[step]
    async fn slow(&self, _ev: Fork) -> Branch {
        self.slow_runs.fetch_add(1, Ordering::SeqCst);
        self.gate.acquire().await.unwrap().forget();
        Branch {
            name: "slow".into(),
        }
    }

    #[step]
    async fn join(&self, ctx: &Context, ev: Branch) -> Option<StopEvent<Vec<String>>> {
        let mut names: Vec<String> = ctx.collect(ev, 2)?.into_iter().map(|b| b.name).collect();
        names.sort();
        Some(StopEvent::new(names))
    }
}

#[tokio::test]
async fn a_mid_run_snapshot_reruns_the_step_in_flight_and_not_the_finished_one() {
    let quick_runs = Arc::new(AtomicU32::new(0));
    let slow_runs = Arc::new(AtomicU32::new(0));
    let closed = MidRun {
        gate: Arc::new(Semaphore::new(0)),
        quick_runs: quick_runs.clone(),
        slow_runs: slow_runs.clone(),
    };
    let handler = closed.run(StartEvent::new());
    while quick_runs.load(Ordering::SeqCst) == 0 || slow_runs.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let snapshot = hand_off(&handler).await;
    assert_eq!(snapshot.invocations.len(), 1, "only `slow` is in flight");
    assert_eq!(snapshot.invocations[0].step, "slow");
    assert_eq!(
        snapshot.collect.len(),
        1,
        "`quick`'s branch waits in join's buffer"
    );

    let open = MidRun {
        gate: Arc::new(Semaphore::new(10)),
        quick_runs: quick_runs.clone(),
        slow_runs: slow_runs.clone(),
    };
    let resumed = open.runner().resume(snapshot).unwrap();
    assert_eq!(resumed.await.unwrap(), ["quick", "slow"]);
    assert_eq!(
        quick_runs.load(Ordering::SeqCst),
        1,
        "the finished step did not run again"
    );
    assert_eq!(
        slow_runs.load(Ordering::SeqCst),
        2,
        "the step in flight ran again"
    );
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Job {
    id: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Done {
    id: u32,
}

struct Workers {
    gate: Arc<Semaphore>,
    started: Arc<AtomicU32>,
}

#[workflow]
impl Workers {
    #[step(sends(Job))]
    async fn start(&self, ctx: &Context, _ev: StartEvent) {
        for id in 0..5 {
            ctx.send_event(Job { id }).unwrap();
        }
    }

    #[step(num_workers = 3)]
    async fn work(&self, ev: Job) -> Done {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.gate.acquire().await.unwrap().forget();
        Done { id: ev.id }
    }

    #[step]
    async fn join(&self, ctx: &Context, ev: Done) -> Option<StopEvent<Vec<u32>>> {
        let mut ids: Vec<u32> = ctx.collect(ev, 5)?.into_iter().map(|d| d.id).collect();
        ids.sort_unstable();
        Some(StopEvent::new(ids))
    }
}

#[tokio::test]
async fn parallel_workers_in_flight_and_queued_events_survive() {
    let started = Arc::new(AtomicU32::new(0));
    let handler = Workers {
        gate: Arc::new(Semaphore::new(0)),
        started: started.clone(),
    }
    .run(StartEvent::new());
    while started.load(Ordering::SeqCst) < 3 {
        tokio::task::yield_now().await;
    }
    let snapshot = hand_off(&handler).await;
    assert_eq!(snapshot.invocations.len(), 3);
    assert_eq!(snapshot.queues.len(), 2, "two jobs wait for a worker");
    let resumed = Workers {
        gate: Arc::new(Semaphore::new(100)),
        started: Arc::default(),
    }
    .runner()
    .resume(snapshot)
    .unwrap();
    assert_eq!(resumed.await.unwrap(), [0, 1, 2, 3, 4]);
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Draft {
    request_id: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(input_required(response = Decision))]
struct ApproveRequest {
    request_id: u32,
}

struct Approvals {
    emails: Arc<AtomicU32>,
}

#[workflow]
impl Approvals {
    #[step(sends(Draft))]
    async fn start(&self, ctx: &Context, _ev: StartEvent) {
        ctx.send_event(Draft { request_id: 1 }).unwrap();
        ctx.send_event(Draft { request_id: 2 }).unwrap();
    }

    #[step(num_workers = 2)]
    async fn approve(&self, ctx: &Context, ev: Draft) -> Result<Reviewed, WaitError> {
        // An effect before the wait: recorded, so a resumed run does not repeat it.
        let emails = self.emails.clone();
        ctx.once("notify-reviewer", async move {
            emails.fetch_add(1, Ordering::SeqCst)
        })
        .await;
        let decision = ctx
            .wait_for_event(
                WaitFor::<Decision>::new()
                    .prompt(ApproveRequest {
                        request_id: ev.request_id,
                    })
                    .id(format!("approve-{}", ev.request_id))
                    .require(field!(Decision, request_id), ev.request_id),
            )
            .await?;
        Ok(Reviewed {
            request_id: decision.request_id,
            approved: decision.approved,
        })
    }

    #[step]
    async fn join(&self, ctx: &Context, ev: Reviewed) -> Option<StopEvent<Vec<(u32, bool)>>> {
        Some(StopEvent::new(verdicts(ctx.collect(ev, 2)?)))
    }
}

#[tokio::test]
async fn waiters_with_requirements_and_once_results_survive_a_restore() {
    let emails = Arc::new(AtomicU32::new(0));
    let runner = Approvals {
        emails: emails.clone(),
    }
    .runner();
    let handler = runner.run(StartEvent::new());
    let mut events = handler.stream_events();
    let mut prompts = 0;
    while prompts < 2 {
        if events.next().await.unwrap().is::<ApproveRequest>() {
            prompts += 1;
        }
    }
    let snapshot = hand_off(&handler).await;
    assert_eq!(snapshot.waiters.len(), 2);
    assert!(snapshot.waiters.iter().all(|w| w.requirements.len() == 1));
    assert_eq!(emails.load(Ordering::SeqCst), 2);

    let resumed = runner.resume(snapshot).unwrap();
    let mut after = resumed.stream_events();
    // Answer in reverse order; the requirements route each answer.
    resumed
        .send_event(Decision {
            request_id: 2,
            approved: true,
        })
        .unwrap();
    resumed
        .send_event(Decision {
            request_id: 1,
            approved: false,
        })
        .unwrap();
    assert_eq!(resumed.await.unwrap(), [(1, false), (2, true)]);
    assert_eq!(
        emails.load(Ordering::SeqCst),
        2,
        "once-effects did not run again"
    );
    let names: Vec<&str> = (&mut after).map(|e| e.name()).collect::<Vec<_>>().await;
    assert_eq!(names, ["StopEvent"], "the prompts were not published again");
}

struct Interview {
    asked_name: Arc<AtomicU32>,
}

#[workflow]
impl Interview {
    #[step]
    async fn interview(
        &self,
        ctx: &Context,
        _ev: StartEvent,
    ) -> Result<StopEvent<String>, WaitError> {
        let name = ctx
            .wait_for_event(
                WaitFor::<HumanResponseEvent>::new().prompt(InputRequiredEvent::new("name?")),
            )
            .await?;
        self.asked_name.fetch_add(1, Ordering::SeqCst);
        let city = ctx
            .wait_for_event(
                WaitFor::<HumanResponseEvent>::new().prompt(InputRequiredEvent::new("city?")),
            )
            .await?;
        Ok(StopEvent::new(format!(
            "{} from {}",
            name.response, city.response
        )))
    }
}

#[tokio::test]
async fn two_waits_in_a_row_survive_a_restore_between_them() {
    let asked = Arc::new(AtomicU32::new(0));
    let runner = Interview {
        asked_name: asked.clone(),
    }
    .runner();
    let handler = runner.run(StartEvent::new());
    let mut events = handler.stream_events();
    let mut snapshot = None;
    while let Some(ev) = events.next().await {
        if let Some(req) = ev.downcast_ref::<InputRequiredEvent>() {
            if req.prefix == "name?" {
                handler.send_event(HumanResponseEvent::new("Ada")).unwrap();
            } else {
                snapshot = Some(hand_off(&handler).await);
            }
        }
    }
    let snapshot = snapshot.unwrap();
    let resumed = runner.resume(snapshot).unwrap();
    let mut after = resumed.stream_events();
    resumed
        .send_event(HumanResponseEvent::new("London"))
        .unwrap();
    assert_eq!(resumed.await.unwrap(), "Ada from London");
    let names: Vec<&str> = (&mut after).map(|e| e.name()).collect::<Vec<_>>().await;
    assert_eq!(names, ["StopEvent"], "neither prompt was published again");
    // The step ran again from its start; the first wait returned the recorded answer.
    assert_eq!(asked.load(Ordering::SeqCst), 2);
}

struct Backoff {
    calls: Arc<AtomicU32>,
}

#[workflow]
impl Backoff {
    #[step(retry = RetryPolicy::attempts(3).fixed(Duration::from_secs(3600)))]
    async fn call(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<u32>, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if ctx.retry_info().attempt == 1 {
            Err("first attempt fails".into())
        } else {
            Ok(StopEvent::new(ctx.retry_info().attempt))
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_back_off_in_progress_survives() {
    let calls = Arc::new(AtomicU32::new(0));
    let runner = Backoff {
        calls: calls.clone(),
    }
    .runner();
    let handler = runner.run(StartEvent::new());
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_secs(600)).await;
    let snapshot = hand_off(&handler).await;
    let record = &snapshot.invocations[0];
    assert_eq!(record.attempt, 2);
    assert_eq!(record.last_error.as_deref(), Some("first attempt fails"));
    let left = record.retry_in_ms.unwrap();
    assert!(
        (2_999_000..=3_000_000).contains(&left),
        "about 50 minutes left: {left} ms"
    );

    let started = tokio::time::Instant::now();
    let resumed = runner.resume(snapshot).unwrap();
    assert_eq!(resumed.await.unwrap(), 2, "the second attempt ran");
    assert!(
        started.elapsed() >= Duration::from_millis(left),
        "the back-off went on"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

struct Other;

#[workflow]
impl Other {
    #[step]
    async fn only(&self, _ev: StartEvent) -> StopEvent<()> {
        StopEvent::new(())
    }
}

async fn paused_number_snapshot() -> (Runner<NumberWorkflow>, Snapshot) {
    let runner = NumberWorkflow {
        counts: Arc::default(),
    }
    .runner();
    let handler = runner.run(StartEvent::new());
    next_of::<InputRequiredEvent, _>(&handler).await;
    let snapshot = hand_off(&handler).await;
    (runner, snapshot)
}

#[tokio::test]
async fn bad_snapshots_are_typed_errors_that_say_what_to_do() {
    let (runner, snapshot) = paused_number_snapshot().await;
    let text = snapshot.to_json();

    let err = Snapshot::from_json("not json").unwrap_err();
    assert!(matches!(err, ResumeError::Malformed { .. }), "{err}");
    let err = Snapshot::from_json(&text[..text.len() / 2]).unwrap_err();
    assert!(matches!(err, ResumeError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("store and load the whole text"));

    let newer = text.replacen("\"version\":4", "\"version\":5", 1);
    let err = Snapshot::from_json(&newer).unwrap_err();
    assert_eq!(
        err,
        ResumeError::NewerVersion {
            found: 5,
            supported: 4
        }
    );
    // Versions 1 (no effect logs), 2 (no fan-outs) and 3 (no children) are still read.
    for version in [1, 2, 3] {
        let older = text.replacen("\"version\":4", &format!("\"version\":{version}"), 1);
        assert_eq!(Snapshot::from_json(&older).unwrap().version, version);
    }

    let err = Other.runner().resume(snapshot.clone()).unwrap_err();
    assert_eq!(
        err,
        ResumeError::WrongWorkflow {
            expected: "Other".into(),
            found: "NumberWorkflow".into()
        }
    );

    let mut changed = snapshot.clone();
    changed.fingerprint = "0000000000000000".into();
    assert!(matches!(
        runner.resume(changed),
        Err(ResumeError::ChangedWorkflow { .. })
    ));

    let mut unknown = snapshot.clone();
    unknown.queues.push(workflows::QueuedEvent {
        step: "answer".into(),
        event: workflows::StoredInput::One(workflows::StoredEvent {
            name: "Vanished".into(),
            data: serde_json::json!({}),
        }),
        scope: Vec::new(),
        recoveries: Default::default(),
        failure: None,
        failure_of: None,
        failure_recovered: false,
    });
    assert_eq!(
        runner.resume(unknown).unwrap_err(),
        ResumeError::UnknownEvent {
            name: "Vanished".into()
        }
    );

    let mut bad_event = snapshot.clone();
    bad_event.queues.push(workflows::QueuedEvent {
        step: "answer".into(),
        event: workflows::StoredInput::One(workflows::StoredEvent {
            name: "HumanResponseEvent".into(),
            data: serde_json::json!({"response": 5}),
        }),
        scope: Vec::new(),
        recoveries: Default::default(),
        failure: None,
        failure_of: None,
        failure_recovered: false,
    });
    assert!(matches!(
        runner.resume(bad_event),
        Err(ResumeError::BadEvent { .. })
    ));

    let mut bad_step = snapshot.clone();
    bad_step.queues.push(workflows::QueuedEvent {
        step: "renamed".into(),
        event: workflows::StoredInput::One(workflows::StoredEvent {
            name: "HumanResponseEvent".into(),
            data: serde_json::json!({}),
        }),
        scope: Vec::new(),
        recoveries: Default::default(),
        failure: None,
        failure_of: None,
        failure_recovered: false,
    });
    assert_eq!(
        runner.resume(bad_step).unwrap_err(),
        ResumeError::UnknownStep {
            name: "renamed".into()
        }
    );

    // After all the refusals the good snapshot still resumes.
    let resumed = runner.resume(snapshot).unwrap();
    resumed.send_event(HumanResponseEvent::new("ok")).unwrap();
    assert_eq!(resumed.await.unwrap(), "ok");
}

#[derive(Default, Serialize, Deserialize)]
struct Ledger {
    entries: Vec<String>,
}

struct Typed;

#[workflow(state = Ledger)]
impl Typed {
    #[step]
    async fn record(&self, ctx: &Context<Ledger>, _ev: StartEvent) -> InputRequiredEvent {
        ctx.edit_state(|l| l.entries.push("started".into()));
        ctx.store().set("meta.count", 1).unwrap();
        InputRequiredEvent::new("more?")
    }

    #[step]
    async fn finish(
        &self,
        ctx: &Context<Ledger>,
        ev: HumanResponseEvent,
    ) -> StopEvent<(Vec<String>, u32)> {
        ctx.edit_state(|l| l.entries.push(ev.response));
        let count: u32 = ctx.store().get("meta.count").unwrap().unwrap();
        StopEvent::new((ctx.state(|l| l.entries.clone()), count))
    }
}

#[tokio::test]
async fn typed_state_and_the_store_survive_and_bad_state_is_refused() {
    let runner = Typed.runner();
    let handler = runner.run(StartEvent::new());
    next_of::<InputRequiredEvent, _>(&handler).await;
    let snapshot = hand_off(&handler).await;
    assert_eq!(snapshot.state.as_str(), r#"{"entries":["started"]}"#);
    assert_eq!(
        snapshot.store.parse::<serde_json::Value>().unwrap(),
        serde_json::json!({"meta": {"count": 1}})
    );

    let mut broken = snapshot.clone();
    broken.state = RawJson::from_text(r#"{"entries": "not a list"}"#).unwrap();
    assert!(matches!(
        runner.resume(broken),
        Err(ResumeError::BadState { .. })
    ));
    let mut broken = snapshot.clone();
    broken.store = RawJson::from_text("[1, 2]").unwrap();
    let err = runner.resume(broken).unwrap_err();
    assert!(
        err.to_string().contains("the store is not a JSON object"),
        "{err}"
    );

    let resumed = runner.resume(snapshot).unwrap();
    resumed.send_event(HumanResponseEvent::new("done")).unwrap();
    assert_eq!(
        resumed.await.unwrap(),
        (vec!["started".to_owned(), "done".to_owned()], 1)
    );
}

#[tokio::test]
async fn resuming_outside_a_runtime_is_an_error_not_a_panic() {
    let runner = Backoff {
        calls: Arc::default(),
    }
    .runner();
    let handler = runner.run(StartEvent::new());
    // Wait until the first attempt failed and its back-off (a timer) is in the snapshot.
    let snapshot = loop {
        let snapshot = handler.snapshot().await.unwrap();
        if snapshot
            .invocations
            .first()
            .is_some_and(|i| i.retry_in_ms.is_some())
        {
            break snapshot;
        }
        tokio::task::yield_now().await;
    };
    handler.cancel_run();
    let resumed = std::thread::spawn(move || runner.resume(snapshot).unwrap())
        .join()
        .expect("no panic");
    assert!(matches!(resumed.await, Err(WorkflowError::NoRuntime)));
}

struct Both {
    after_join: Arc<AtomicU32>,
}

#[workflow]
impl Both {
    #[step]
    async fn ask(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<String>, WaitError> {
        let a = WaitFor::<HumanResponseEvent>::new()
            .id("a")
            .prompt(InputRequiredEvent::new("a"))
            .require_path("response", "A");
        let b = WaitFor::<HumanResponseEvent>::new()
            .id("b")
            .prompt(InputRequiredEvent::new("b"))
            .require_path("response", "B");
        let (a, b) = tokio::join!(ctx.wait_for_event(a), ctx.wait_for_event(b));
        self.after_join.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        Ok(StopEvent::new(format!("{}{}", a?.response, b?.response)))
    }
}

#[tokio::test]
async fn two_answers_to_a_restored_invocation_start_it_once() {
    let after_join = Arc::new(AtomicU32::new(0));
    let runner = Both {
        after_join: after_join.clone(),
    }
    .runner();
    let handler = runner.run(StartEvent::new());
    let mut events = handler.stream_events();
    let mut prompts = 0;
    while prompts < 2 {
        if events.next().await.unwrap().is::<InputRequiredEvent>() {
            prompts += 1;
        }
    }
    let snapshot = hand_off(&handler).await;
    assert_eq!(snapshot.waiters.len(), 2);
    let resumed = runner.resume(snapshot).unwrap();
    // Both answers arrive before the restored step runs again.
    resumed.send_event(HumanResponseEvent::new("A")).unwrap();
    resumed.send_event(HumanResponseEvent::new("B")).unwrap();
    assert_eq!(resumed.await.unwrap(), "AB");
    assert_eq!(
        after_join.load(Ordering::SeqCst),
        1,
        "the step ran once after the restore"
    );
}
