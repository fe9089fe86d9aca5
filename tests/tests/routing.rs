//! Routing: chains, broadcast, targeted sends and their errors, one-of inputs and outputs.

use serde::{Deserialize, Serialize};
use workflows::SendError;
use workflows::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Middle {
    x: i64,
}

struct Chain;

#[workflow]
impl Chain {
    #[step]
    async fn first(&self, ev: StartEvent) -> Middle {
        Middle {
            x: ev.get::<i64>("x").unwrap() + 1,
        }
    }

    #[step]
    async fn second(&self, ev: Middle) -> StopEvent<i64> {
        StopEvent::new(ev.x * 10)
    }
}

#[tokio::test]
async fn two_step_chain_passes_data_along() {
    let result = Chain.run(StartEvent::new().with("x", 4)).await.unwrap();
    assert_eq!(result, 50);
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Ping {
    n: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Seen {
    by: String,
    n: u32,
}

struct Broadcast;

#[workflow]
impl Broadcast {
    #[step]
    async fn start(&self, _ev: StartEvent) -> Ping {
        Ping { n: 7 }
    }

    #[step]
    async fn left(&self, ev: Ping) -> Seen {
        Seen {
            by: "left".into(),
            n: ev.n,
        }
    }

    #[step]
    async fn right(&self, ev: Ping) -> Seen {
        Seen {
            by: "right".into(),
            n: ev.n,
        }
    }

    #[step]
    async fn join(&self, ctx: &Context, ev: Seen) -> Option<StopEvent<Vec<String>>> {
        let both = ctx.collect(ev, 2)?;
        let mut seen: Vec<String> = both.iter().map(|s| format!("{}:{}", s.by, s.n)).collect();
        seen.sort();
        Some(StopEvent::new(seen))
    }
}

#[tokio::test]
async fn an_event_goes_to_every_step_accepting_its_type() {
    let seen = Broadcast.run(StartEvent::new()).await.unwrap();
    assert_eq!(seen, ["left:7", "right:7"]);
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Job {
    id: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Nobody;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Report {
    line: String,
}

struct Targeted;

#[workflow]
impl Targeted {
    #[step(sends(Job))]
    async fn start(&self, ctx: &Context, _ev: StartEvent) -> Option<StopEvent<Vec<String>>> {
        let mut errors = Vec::new();
        ctx.send_event_to("worker_b", Job { id: 1 }).unwrap();
        errors.push(ctx.send_event_to("worker_z", Job { id: 2 }).unwrap_err());
        errors.push(ctx.send_event_to("collect", Job { id: 3 }).unwrap_err());
        ctx.write_event_to_stream(Report {
            line: errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        });
        None
    }

    #[step]
    async fn worker_a(&self, ev: Job) -> Report {
        Report {
            line: format!("a got {}", ev.id),
        }
    }

    #[step]
    async fn worker_b(&self, ev: Job) -> Report {
        Report {
            line: format!("b got {}", ev.id),
        }
    }

    #[step]
    async fn collect(&self, ev: Report) -> StopEvent<Vec<String>> {
        StopEvent::new(vec![ev.line])
    }
}

#[tokio::test]
async fn a_targeted_send_reaches_only_that_step() {
    let handler = Targeted.run(StartEvent::new());
    let mut stream = handler.stream_events();
    use futures_util::StreamExt;
    let first = stream.next().await.unwrap();
    let errors = first.downcast_ref::<Report>().unwrap().line.clone();
    assert_eq!(handler.await.unwrap(), ["b got 1"]);
    let lines: Vec<&str> = errors.lines().collect();
    assert_eq!(
        lines,
        [
            "no step named `worker_z` in this workflow; its steps are: start, worker_a, worker_b, collect",
            "step `collect` does not accept `Job`; it accepts: Report",
        ]
    );
}

#[tokio::test]
async fn targeted_send_errors_are_typed() {
    let handler = Targeted.run(StartEvent::new());
    assert_eq!(
        handler.send_event(Nobody).unwrap_err().to_string(),
        "no step of this workflow accepts `Nobody`; accepted events are: StartEvent, Job, Report"
    );
    assert!(matches!(
        handler.send_event_to("nope", Job { id: 1 }),
        Err(SendError::UnknownStep { ref step, .. }) if step == "nope"
    ));
    assert!(matches!(
        handler.send_event_to("collect", Job { id: 1 }),
        Err(SendError::NotAccepted { ref step, ref event, ref accepted }) if step == "collect" && event == "Job" && accepted == &["Report"]
    ));
    handler.await.unwrap();
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Tick {
    i: u64,
    n: u64,
}

#[derive(Debug, OneOf)]
enum LoopIn {
    Start(StartEvent),
    Tick(Tick),
}

#[derive(Debug, OneOf)]
enum LoopOut {
    Tick(Tick),
    Stop(StopEvent<u64>),
}

struct Looping;

#[workflow]
impl Looping {
    #[step]
    async fn spin(&self, ev: LoopIn) -> LoopOut {
        let (i, n) = match ev {
            LoopIn::Start(s) => (0, s.get::<u64>("n").unwrap()),
            LoopIn::Tick(t) => (t.i, t.n),
        };
        if i < n {
            Tick { i: i + 1, n }.into()
        } else {
            StopEvent::new(i).into()
        }
    }
}

#[tokio::test]
async fn a_step_accepting_and_emitting_one_of_several_types_loops() {
    // Well past the per-poll budget, so the loop must yield and come back.
    let result = Looping
        .run(StartEvent::new().with("n", 10_000))
        .await
        .unwrap();
    assert_eq!(result, 10_000);
}

struct Renamed;

#[workflow]
impl Renamed {
    #[step(name = "entry")]
    async fn a_long_method_name(&self, _ev: StartEvent) -> StopEvent<String> {
        StopEvent::new("ok".into())
    }
}

#[test]
fn step_names_can_be_overridden() {
    assert_eq!(Renamed::STEPS[0].name, "entry");
}

#[tokio::test]
async fn sending_to_a_finished_run_is_an_error() {
    let handler = Chain.run(StartEvent::new().with("x", 1));
    let sender = handler.sender();
    assert_eq!(handler.await.unwrap(), 20);
    assert_eq!(
        sender.send_event(Middle { x: 1 }),
        Err(SendError::RunFinished)
    );
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Stray;

/// `unchecked` turns the compile-time graph rules off (this mistake would not compile; see
/// tests/ui/fail/graph): the run-time check still catches it.
struct Unroutable;

#[workflow(unchecked)]
impl Unroutable {
    #[step]
    async fn start(&self, _ev: StartEvent) -> Result<Stray, std::io::Error> {
        Ok(Stray)
    }

    #[step]
    async fn never(&self, _ev: HumanResponseEvent) -> StopEvent<()> {
        StopEvent::new(())
    }
}

#[tokio::test]
async fn an_event_no_step_accepts_fails_the_run_with_names() {
    let err = Unroutable.run(StartEvent::new()).await.unwrap_err();
    assert!(
        matches!(&err, WorkflowError::Unroutable { step, event } if step == "start" && event == "Stray"),
        "{err}"
    );
}

/// `unchecked`, as `Unroutable`: sends are checked at run time too.
struct Undeclared;

#[workflow(unchecked)]
impl Undeclared {
    #[step]
    async fn start(&self, ctx: &Context, _ev: StartEvent) -> StopEvent<String> {
        StopEvent::new(ctx.send_event(Job { id: 1 }).unwrap_err().to_string())
    }

    #[step]
    async fn work(&self, _ev: Job) {}
}

#[tokio::test]
async fn a_send_the_step_does_not_declare_is_an_error_naming_both() {
    assert_eq!(
        Undeclared.run(StartEvent::new()).await.unwrap(),
        "step `start` sends `Job` without declaring it; add #[step(sends(Job))] to the step"
    );
}

struct StopBySend;

#[workflow]
impl StopBySend {
    #[step(sends(StopEvent<u32>))]
    async fn start(&self, ctx: &Context, _ev: StartEvent) -> Option<StopEvent<u32>> {
        ctx.send_event(StopEvent::new(7_u32)).unwrap();
        None
    }
}

#[tokio::test]
async fn sending_the_stop_event_ends_the_run() {
    assert_eq!(StopBySend.run(StartEvent::new()).await.unwrap(), 7);
    // From outside too: the caller may end a waiting run with its stop event.
    let handler = workflows_tests::Ask.run(StartEvent::new());
    let mut events = handler.stream_events();
    use futures_util::StreamExt;
    assert!(events.next().await.unwrap().is::<InputRequiredEvent>());
    handler
        .send_event(StopEvent::new("ended from outside".to_owned()))
        .unwrap();
    assert_eq!(handler.await.unwrap(), "ended from outside");
}
