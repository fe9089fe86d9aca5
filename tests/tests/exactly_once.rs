//! A snapshot is a consistent cut, and engine effects (sends, stream writes, waits) happen
//! once across restores. Each test here reproduces a defect of the engine before its effect
//! log and settled snapshots: it hung or gave a wrong result there.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::task::Poll;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::timeout;
use workflows::prelude::*;
use workflows::{RunStatus, SendError, Snapshot, SnapshotError, WaitFor};
use workflows_tests::Ask;

/// Generous: each run here takes milliseconds, so only a hang reaches it.
const LIMIT: Duration = Duration::from_secs(20);

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Item {
    i: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Worked {
    i: u32,
}

type PendingSnapshot = Pin<Box<dyn Future<Output = Result<Snapshot, SnapshotError>> + Send>>;

static CUT_HANDLER: OnceLock<Handler<Vec<u32>>> = OnceLock::new();
static CUT_REQUESTED: AtomicBool = AtomicBool::new(false);
static CUT_PENDING: Mutex<Option<PendingSnapshot>> = Mutex::new(None);
static CUT_READY: Notify = Notify::const_new();
static CUT_GATE: Notify = Notify::const_new();

/// `split` sends item 0 in a `once`, waits for the gate, sends item 1 in a `once`, and stays
/// pending. The worker of item 0 asks for a snapshot and opens the gate in one poll, so the
/// loop takes the snapshot request in before item 1 is sent in the same pass.
struct Cut;

#[workflow]
impl Cut {
    #[step(sends(Item))]
    async fn split(&self, ctx: &Context, _ev: StartEvent) {
        ctx.once("send-0", async { ctx.send_event(Item { i: 0 }).unwrap() })
            .await;
        CUT_GATE.notified().await;
        ctx.once("send-1", async { ctx.send_event(Item { i: 1 }).unwrap() })
            .await;
        std::future::pending::<()>().await;
    }

    #[step(num_workers = 2)]
    async fn work(&self, item: Item) -> Worked {
        if item.i == 0 && !CUT_REQUESTED.swap(true, Ordering::SeqCst) {
            let handler = CUT_HANDLER.get().expect("set before the run starts");
            let mut pending: PendingSnapshot = Box::pin(handler.snapshot());
            // One poll puts the request in the run's inbox.
            let first = std::future::poll_fn(|cx| Poll::Ready(pending.as_mut().poll(cx))).await;
            assert!(first.is_pending());
            *CUT_PENDING.lock().unwrap() = Some(pending);
            CUT_READY.notify_one();
        }
        CUT_GATE.notify_one();
        Worked { i: item.i }
    }

    #[step]
    async fn join(&self, ctx: &Context, ev: Worked) -> Option<StopEvent<Vec<u32>>> {
        let mut ids: Vec<u32> = ctx.collect(ev, 2)?.iter().map(|w| w.i).collect();
        ids.sort_unstable();
        Some(StopEvent::new(ids))
    }
}

#[tokio::test]
async fn a_snapshot_holds_every_event_whose_once_it_records() {
    let runner = Cut.runner();
    assert!(CUT_HANDLER.set(runner.run(StartEvent::new())).is_ok());
    CUT_READY.notified().await;
    let pending = CUT_PENDING.lock().unwrap().take().unwrap();
    let snapshot = timeout(LIMIT, pending).await.unwrap().unwrap();
    assert_eq!(snapshot.status, RunStatus::Running);

    let split = snapshot
        .invocations
        .iter()
        .find(|inv| inv.step == "split")
        .expect("split is in flight");
    let held = |i: u32| {
        let item = serde_json::json!({ "i": i });
        snapshot
            .queues
            .iter()
            .map(|q| &q.event)
            .chain(snapshot.invocations.iter().map(|inv| &inv.input))
            .flat_map(|input| input.events())
            .any(|ev| ev.name == "Item" && ev.data == item)
    };
    // The request was taken in before item 1 was sent, in the same pass of the loop.
    assert!(split.once.contains_key("send-1"), "{:?}", split.once);
    assert!(
        held(1),
        "item 1's once is recorded, so item 1 is in the snapshot"
    );

    let resumed = runner.resume(Snapshot::from_json(&snapshot.to_json()).unwrap());
    let result = timeout(LIMIT, resumed.unwrap()).await;
    assert_eq!(result.expect("the resumed run ends").unwrap(), [0, 1]);
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Part {
    i: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct PartDone {
    i: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Progress {
    sent: u32,
}

/// `split` sends four parts, reports progress, asks whether to go on, then sends four more;
/// `join` counts eight.
struct Batch;

#[workflow]
impl Batch {
    #[step(sends(Part))]
    async fn split(&self, ctx: &Context, _ev: StartEvent) -> Result<Option<Part>, WaitError> {
        for i in 0..4 {
            ctx.send_event(Part { i }).unwrap();
        }
        ctx.write_event_to_stream(Progress { sent: 4 });
        ctx.wait_for_event(
            WaitFor::<HumanResponseEvent>::new()
                .prompt(InputRequiredEvent::new("more?"))
                .id("more"),
        )
        .await?;
        for i in 4..8 {
            ctx.send_event(Part { i }).unwrap();
        }
        Ok(None)
    }

    #[step(num_workers = 4)]
    async fn work(&self, part: Part) -> PartDone {
        PartDone { i: part.i }
    }

    #[step]
    async fn join(&self, ctx: &Context, ev: PartDone) -> Option<StopEvent<Vec<u32>>> {
        let mut ids: Vec<u32> = ctx.collect(ev, 8)?.iter().map(|d| d.i).collect();
        ids.sort_unstable();
        Some(StopEvent::new(ids))
    }
}

/// Runs `workflow` to its first prompt, snapshots it there and cancels it; returns the
/// snapshot through JSON, as another process would read it.
async fn snapshot_at_prompt<T: Send + 'static>(handler: Handler<T>) -> Snapshot {
    let mut events = handler.stream_events();
    while let Some(ev) = events.next().await {
        if ev.is::<InputRequiredEvent>() {
            break;
        }
    }
    let snapshot = handler.snapshot().await.unwrap();
    handler.cancel_run();
    Snapshot::from_json(&snapshot.to_json()).unwrap()
}

#[tokio::test]
async fn a_resumed_step_does_not_send_or_write_again_what_it_did_before_the_snapshot() {
    let runner = Batch.runner();
    let snapshot = snapshot_at_prompt(runner.run(StartEvent::new())).await;
    let split = &snapshot.invocations[0];
    assert_eq!(split.step, "split");
    let kinds: Vec<String> = split.effects.iter().map(ToString::to_string).collect();
    assert_eq!(
        kinds,
        [
            "send `Part` to every step that accepts it",
            "send `Part` to every step that accepts it",
            "send `Part` to every step that accepts it",
            "send `Part` to every step that accepts it",
            "write `Progress` to the stream",
            "wait for `HumanResponseEvent`",
        ]
    );

    let handler = runner.resume(snapshot).unwrap();
    let events = handler.stream_events();
    handler.send_event(HumanResponseEvent::new("yes")).unwrap();
    let names: Vec<&str> = events.map(|ev| ev.event.name()).collect().await;
    assert!(
        !names.contains(&"Progress"),
        "written once, before: {names:?}"
    );
    let result = timeout(LIMIT, handler).await.unwrap().unwrap();
    assert_eq!(result, (0..8).collect::<Vec<u32>>());
}

#[tokio::test]
async fn a_run_queued_for_its_slot_answers_a_snapshot() {
    let runner = Ask.runner().max_concurrent_runs(1);
    let first = runner.run(StartEvent::new());
    let mut events = first.stream_events();
    while let Some(ev) = events.next().await {
        if ev.is::<InputRequiredEvent>() {
            break;
        }
    }
    // The first run holds the only slot while it waits for a human.
    let queued = runner.run(StartEvent::new());
    let snapshot = timeout(LIMIT, queued.snapshot())
        .await
        .expect("a queued run answers")
        .unwrap();
    assert_eq!(snapshot.status, RunStatus::Running);
    let waiting: Vec<(&str, &str)> = snapshot
        .queues
        .iter()
        .map(|q| (q.step.as_str(), q.event.events()[0].name.as_str()))
        .collect();
    assert_eq!(waiting, [("ask", "StartEvent")]);
    queued.cancel_run();

    // The snapshot resumes as a run that has not started yet.
    let handler = Ask.runner().resume(snapshot).unwrap();
    let mut events = handler.stream_events();
    while let Some(ev) = events.next().await {
        if ev.is::<InputRequiredEvent>() {
            handler.send_event(HumanResponseEvent::new("late")).unwrap();
        }
    }
    assert_eq!(handler.await.unwrap(), "late");
    first.cancel_run();
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct One;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Another;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Extra;

#[derive(Debug, OneOf)]
enum Arrival {
    One(One),
    Another(Another),
    Extra(Extra),
}

/// `start` sends `Extra` and `One`, then asks; the answer becomes `Another`. `gather` expects
/// `[One, Another]`.
struct Picky;

#[workflow]
impl Picky {
    #[step(sends(Extra, One))]
    async fn start(&self, ctx: &Context, _ev: StartEvent) -> InputRequiredEvent {
        ctx.send_event(Extra).unwrap();
        ctx.send_event(One).unwrap();
        InputRequiredEvent::new("another?")
    }

    #[step]
    async fn answer(&self, _ev: HumanResponseEvent) -> Another {
        Another
    }

    #[step]
    async fn gather(&self, ctx: &Context, ev: Arrival) -> Option<StopEvent<usize>> {
        let ev: Box<dyn AnyEvent> = match ev {
            Arrival::One(e) => Box::new(e),
            Arrival::Another(e) => Box::new(e),
            Arrival::Extra(e) => Box::new(e),
        };
        let expected = [EventInfo::of::<One>(), EventInfo::of::<Another>()];
        Some(StopEvent::new(ctx.collect_events(ev, &expected)?.len()))
    }
}

#[tokio::test]
async fn collect_events_neither_buffers_nor_keeps_an_unexpected_type() {
    let runner = Picky.runner();
    let snapshot = snapshot_at_prompt(runner.run(StartEvent::new())).await;
    let buffered: Vec<&str> = snapshot
        .collect
        .iter()
        .flat_map(|b| b.events.iter().map(|e| e.event.name.as_str()))
        .collect();
    assert_eq!(buffered, ["One"]);
    let handler = runner.resume(snapshot).unwrap();
    handler.send_event(HumanResponseEvent::new("")).unwrap();
    assert_eq!(timeout(LIMIT, handler).await.unwrap().unwrap(), 2);
}

/// One invocation waits twice at once, for the same type, under two ids.
struct Twice;

#[workflow]
impl Twice {
    #[step]
    async fn ask(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<String>, WaitError> {
        let wait = |id: &str| {
            ctx.wait_for_event(
                WaitFor::<HumanResponseEvent>::new()
                    .prompt(InputRequiredEvent::new(id))
                    .id(id),
            )
        };
        let (a, b) = tokio::join!(wait("a"), wait("b"));
        Ok(StopEvent::new(format!("{} {}", a?.response, b?.response)))
    }
}

#[tokio::test]
async fn one_event_answers_every_matching_waiter_of_a_step() {
    let handler = Twice.run(StartEvent::new());
    let mut events = handler.stream_events();
    let mut prompts = 0;
    let drive = async {
        while let Some(ev) = events.next().await {
            if ev.is::<InputRequiredEvent>() {
                prompts += 1;
                if prompts == 2 {
                    handler.send_event(HumanResponseEvent::new("yes")).unwrap();
                }
            }
        }
    };
    timeout(LIMIT, drive)
        .await
        .expect("one answer ends both waits");
    assert_eq!(handler.await.unwrap(), "yes yes");
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Left;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Right;

static FLIPPED: AtomicBool = AtomicBool::new(false);

/// `split` sends `Left` twice, or `Left` then `Right` once `FLIPPED` is set, then asks.
struct Fickle;

#[workflow]
impl Fickle {
    #[step(sends(Left, Right))]
    async fn split(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<()>, WaitError> {
        ctx.send_event(Left).unwrap();
        if FLIPPED.load(Ordering::SeqCst) {
            if let Err(err) = ctx.send_event(Right) {
                assert!(matches!(
                    err,
                    SendError::NonDeterministic { position: 1, .. }
                ));
            }
        } else {
            ctx.send_event(Left).unwrap();
        }
        ctx.wait_for_event(
            WaitFor::<HumanResponseEvent>::new().prompt(InputRequiredEvent::new("?")),
        )
        .await?;
        Ok(StopEvent::new(()))
    }

    #[step]
    async fn left(&self, _ev: Left) {}

    #[step]
    async fn right(&self, _ev: Right) {}
}

#[tokio::test]
async fn a_step_that_changes_its_sends_after_a_resume_fails_the_run() {
    let runner = Fickle.runner();
    let snapshot = snapshot_at_prompt(runner.run(StartEvent::new())).await;
    FLIPPED.store(true, Ordering::SeqCst);
    let handler = runner.resume(snapshot).unwrap();
    handler.send_event(HumanResponseEvent::new("go")).unwrap();
    let err = timeout(LIMIT, handler).await.unwrap().unwrap_err();
    match &err {
        WorkflowError::NonDeterministic {
            step,
            position,
            recorded,
            found,
        } => {
            assert_eq!(step, "split");
            assert_eq!(*position, 1);
            assert_eq!(recorded, "send `Left` to every step that accepts it");
            assert_eq!(found, "send `Right` to every step that accepts it");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("ctx.once"), "{err}");
}
