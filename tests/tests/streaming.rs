//! The event stream: order, sequence numbers, replay from a sequence, several readers,
//! independent runs, and internal events on request.

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use workflows::prelude::*;
use workflows::{StepState, StepStateChanged, WorkflowIdle};
use workflows_tests::Ask;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Progress {
    run: u32,
    step: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Next {
    step: u32,
}

#[derive(Debug, OneOf)]
enum NextOrStop {
    Next(Next),
    /// Never taken: the runs here are cancelled by the tests, but the graph has an end.
    Stop(StopEvent<()>),
}

struct Steps;

#[workflow]
impl Steps {
    #[step]
    async fn start(&self, ctx: &Context, ev: StartEvent) -> Next {
        let run = ev.get::<u32>("run").unwrap();
        ctx.store().set("run", run).unwrap();
        ctx.write_event_to_stream(Progress { run, step: 0 });
        Next { step: 1 }
    }

    #[step]
    async fn next(&self, ctx: &Context, ev: Next) -> Option<NextOrStop> {
        let run: u32 = ctx.store().get("run").unwrap().unwrap();
        ctx.write_event_to_stream(Progress { run, step: ev.step });
        tokio::task::yield_now().await;
        (ev.step < 4).then_some(NextOrStop::Next(Next { step: ev.step + 1 }))
    }
}

fn progress(events: &[StreamEvent]) -> Vec<(u64, u32, u32)> {
    events
        .iter()
        .filter_map(|e| e.downcast_ref::<Progress>().map(|p| (e.seq, p.run, p.step)))
        .collect()
}

#[tokio::test]
async fn stream_events_are_in_order_with_gapless_sequence_numbers() {
    let handler = Steps.run(StartEvent::new().with("run", 1));
    let mut stream = handler.stream_events();
    let mut seen = Vec::new();
    while let Some(ev) = stream.next().await {
        seen.push(ev);
        if seen.len() == 5 {
            handler.cancel_run();
        }
    }
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4, 5]);
    assert_eq!(
        progress(&seen),
        [(0, 1, 0), (1, 1, 1), (2, 1, 2), (3, 1, 3), (4, 1, 4)]
    );
    assert!(seen[5].is::<workflows::WorkflowCancelled>());
}

#[tokio::test]
async fn a_reader_can_start_from_any_sequence_and_several_can_follow() {
    let handler = Steps.run(StartEvent::new().with("run", 9));
    let mut first = handler.stream_events();
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(first.next().await.unwrap());
    }
    // A reader reconnecting after seq 1 gets seq 2 onwards; a fresh one gets everything.
    let resumed = handler.stream_events_from(2);
    assert_eq!(resumed.next_seq(), 2);
    let everything = handler.stream_events();
    let mut more = Vec::new();
    while let Some(ev) = first.next().await {
        more.push(ev.clone());
        if ev.downcast_ref::<Progress>().is_some_and(|p| p.step == 4) {
            handler.cancel_run();
        }
    }
    let resumed: Vec<StreamEvent> = resumed.collect().await;
    let everything: Vec<StreamEvent> = everything.collect().await;
    assert_eq!(resumed.first().unwrap().seq, 2);
    assert_eq!(everything.len(), got.len() + more.len());
    assert_eq!(resumed.len(), everything.len() - 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_of_one_workflow_have_independent_streams() {
    let runner = Steps.runner();
    let a = runner.run(StartEvent::new().with("run", 1));
    let b = runner.run(StartEvent::new().with("run", 2));
    assert_ne!(a.run_id(), b.run_id());
    let read = |h: &Handler<()>| {
        let mut s = h.stream_events();
        let sender = h.sender();
        async move {
            let mut out = Vec::new();
            while let Some(ev) = s.next().await {
                if ev.downcast_ref::<Progress>().is_some_and(|p| p.step == 4) {
                    sender.cancel_run();
                }
                out.push(ev);
            }
            out
        }
    };
    let (ea, eb) = tokio::join!(read(&a), read(&b));
    assert_eq!(
        progress(&ea).iter().map(|p| p.1).collect::<Vec<_>>(),
        [1; 5]
    );
    assert_eq!(
        progress(&eb).iter().map(|p| p.1).collect::<Vec<_>>(),
        [2; 5]
    );
    assert_eq!(
        progress(&ea).iter().map(|p| p.0).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert_eq!(
        progress(&eb).iter().map(|p| p.0).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
}

#[tokio::test]
async fn internal_events_only_on_request() {
    let plain = Ask.run(StartEvent::new());
    let mut s = plain.stream_events();
    assert!(s.next().await.unwrap().is::<InputRequiredEvent>());
    plain.send_event(HumanResponseEvent::new("x")).unwrap();
    let rest: Vec<&str> = s.map(|e| e.name()).collect::<Vec<_>>().await;
    assert_eq!(rest, ["StopEvent"]);

    let verbose = Ask
        .runner()
        .run_with(StartEvent::new(), RunOptions::new().internal_events(true));
    let mut s = verbose.stream_events();
    let mut names = Vec::new();
    while let Some(ev) = s.next().await {
        names.push(ev.name());
        if ev.is::<WorkflowIdle>() {
            verbose.send_event(HumanResponseEvent::new("x")).unwrap();
        }
        if let Some(change) = ev.downcast_ref::<StepStateChanged>()
            && change.state == StepState::NotRunning
            && change.step == "ask"
        {
            assert_eq!(change.output_event.as_deref(), Some("InputRequiredEvent"));
        }
    }
    assert_eq!(
        names,
        [
            "StepStateChanged",
            "StepStateChanged",
            "InputRequiredEvent",
            "WorkflowIdle",
            "StepStateChanged",
            "StepStateChanged",
            "StopEvent"
        ]
    );
    assert_eq!(verbose.await.unwrap(), "x");
}

/// Waits twice in one step.
struct TwoWaits;

#[workflow]
impl TwoWaits {
    #[step]
    async fn ask(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<String>, WaitError> {
        let first = ctx
            .wait_for_event(
                WaitFor::<HumanResponseEvent>::new()
                    .id("first")
                    .prompt(InputRequiredEvent::new("first?")),
            )
            .await?;
        let second = ctx
            .wait_for_event(
                WaitFor::<HumanResponseEvent>::new()
                    .id("second")
                    .prompt(InputRequiredEvent::new("second?")),
            )
            .await?;
        Ok(StopEvent::new(format!(
            "{} {}",
            first.response, second.response
        )))
    }
}

#[tokio::test]
async fn each_wait_in_a_step_is_its_own_idle_spell() {
    let handler = TwoWaits
        .runner()
        .run_with(StartEvent::new(), RunOptions::new().internal_events(true));
    let mut events = handler.stream_events();
    let mut answers = ["a", "b"].into_iter();
    let mut idles = 0;
    let follow = async {
        while let Some(ev) = events.next().await {
            if ev.is::<WorkflowIdle>() {
                idles += 1;
                let answer = answers.next().expect("idle only while a wait is open");
                handler.send_event(HumanResponseEvent::new(answer)).unwrap();
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), follow)
        .await
        .expect("no WorkflowIdle for the second wait: nobody knew to answer it");
    assert_eq!(idles, 2, "a WorkflowIdle for each wait");
    assert_eq!(handler.await.unwrap(), "a b");
}
