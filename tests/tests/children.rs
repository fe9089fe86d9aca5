//! Child workflows: `ctx.run_child`, its result and errors, its stream in the parent's, answers
//! routed through the parent's handler, snapshots that hold it, cancellation.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use workflows::prelude::*;
use workflows::{ChildState, SendError, Snapshot, field};

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(input_required(response = Verdict))]
struct ApprovalRequest {
    item: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Verdict {
    item: String,
    approved: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Progress {
    note: String,
}

/// Asks a human to approve the start event's `item`, waiting for the `Verdict` on that item;
/// counts how often its step runs.
#[derive(Clone, Default)]
struct Approve {
    runs: Arc<AtomicUsize>,
}

#[workflow]
impl Approve {
    #[step]
    async fn ask(&self, ctx: &Context, ev: StartEvent) -> Result<StopEvent<bool>, WaitError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let item: String = ev.get("item").unwrap_or_default();
        ctx.write_event_to_stream(Progress {
            note: format!("asking about {item}"),
        });
        let verdict = ctx
            .wait_for_event(
                WaitFor::<Verdict>::new()
                    .prompt(ApprovalRequest { item: item.clone() })
                    .require(field!(Verdict, item), item),
            )
            .await?;
        Ok(StopEvent::new(verdict.approved))
    }
}

/// Runs one `Approve` child per item, all at once, and reports each verdict.
#[derive(Clone, Default)]
struct Purchase {
    child: Approve,
    items: Vec<String>,
}

#[workflow]
impl Purchase {
    #[step(children(Approve))]
    async fn buy(
        &self,
        ctx: &Context,
        _ev: StartEvent,
    ) -> Result<StopEvent<Vec<String>>, ChildError> {
        ctx.write_event_to_stream(Progress {
            note: "before".into(),
        });
        let runs = self
            .items
            .iter()
            .map(|item| ctx.run_child(self.child.clone(), StartEvent::new().with("item", item)));
        let verdicts = futures_util::future::join_all(runs).await;
        ctx.write_event_to_stream(Progress {
            note: "after".into(),
        });
        let mut out = Vec::new();
        for (item, verdict) in self.items.iter().zip(verdicts) {
            out.push(format!("{item}: {}", verdict?));
        }
        Ok(StopEvent::new(out))
    }
}

fn purchase(items: &[&str]) -> Purchase {
    Purchase {
        child: Approve::default(),
        items: items.iter().map(|s| s.to_string()).collect(),
    }
}

/// Reads `handler`'s stream until `n` requests have been published, returning them with the
/// child path each came from.
async fn requests(events: &mut EventStream, n: usize) -> Vec<(String, ApprovalRequest)> {
    let mut found = Vec::new();
    while found.len() < n {
        let ev = events.next().await.expect("the run publishes its requests");
        if let Some(request) = ev.downcast_ref::<ApprovalRequest>() {
            let path = ev.child.as_deref().expect("a child asked").to_owned();
            found.push((path, request.clone()));
        }
    }
    found
}

use workflows::EventStream;

#[tokio::test]
async fn a_child_result_reaches_the_step_and_its_events_the_parents_stream() {
    let handler = purchase(&["desk"]).run(StartEvent::new());
    let mut events = handler.stream_events();
    let mut seen = Vec::new();
    while let Some(ev) = events.next().await {
        if let Some(request) = ev.downcast_ref::<ApprovalRequest>() {
            handler
                .respond(
                    request,
                    Verdict {
                        item: request.item.clone(),
                        approved: true,
                    },
                )
                .unwrap();
        }
        let what = match ev.downcast_ref::<Progress>() {
            Some(p) => p.note.clone(),
            None => ev.name().to_owned(),
        };
        seen.push((ev.seq, ev.child.as_deref().map(str::to_owned), what));
    }
    assert_eq!(handler.await.unwrap(), ["desk: true"]);
    let child = Some("Approve/0".to_owned());
    assert_eq!(
        seen,
        [
            (0, None, "before".to_owned()),
            (1, child.clone(), "asking about desk".to_owned()),
            (2, child, "ApprovalRequest".to_owned()),
            (3, None, "after".to_owned()),
            (4, None, "StopEvent".to_owned()),
        ],
        "the child's events, marked with its path, come in order with the parent's numbers; its stop event stays inside"
    );
}

#[tokio::test]
async fn two_children_asking_at_once_are_answered_in_reverse_order_through_the_parent() {
    let handler = purchase(&["desk", "lamp"]).run(StartEvent::new());
    let mut events = handler.stream_events();
    let asked = requests(&mut events, 2).await;
    let paths: Vec<&str> = asked.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["Approve/0", "Approve/1"]);
    // The answers carry the item each child requires; sent in reverse order, each reaches the
    // child that waits for it.
    handler
        .send_event(Verdict {
            item: "lamp".into(),
            approved: false,
        })
        .unwrap();
    handler
        .send_event(Verdict {
            item: "desk".into(),
            approved: true,
        })
        .unwrap();
    assert_eq!(handler.await.unwrap(), ["desk: true", "lamp: false"]);
}

#[tokio::test]
async fn an_answer_no_child_waits_for_is_refused() {
    let handler = purchase(&["desk"]).run(StartEvent::new());
    let mut events = handler.stream_events();
    requests(&mut events, 1).await;
    // `Progress` is taken by no step of either workflow.
    let refused = handler.send_event(Progress { note: "?".into() });
    assert!(
        matches!(refused, Err(SendError::NoReceiver { .. })),
        "{refused:?}"
    );
    assert!(
        handler
            .can_take(
                &Verdict {
                    item: "desk".into(),
                    approved: true
                },
                None
            )
            .is_ok(),
        "the child waits for a verdict, so the parent's handler takes one"
    );
    handler.cancel_run();
}

/// A child whose step fails with its own error type.
struct Broken;

#[derive(Debug)]
struct OutOfStock;

impl std::fmt::Display for OutOfStock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("out of stock")
    }
}

impl std::error::Error for OutOfStock {}

#[workflow]
impl Broken {
    #[step]
    async fn order(&self, _ev: StartEvent) -> Result<StopEvent<u32>, OutOfStock> {
        Err(OutOfStock)
    }
}

/// Runs `Broken` and reports how it failed.
struct Orders;

#[workflow]
impl Orders {
    #[step(children(Broken))]
    async fn order(&self, ctx: &Context, _ev: StartEvent) -> StopEvent<String> {
        match ctx.run_child(Broken, StartEvent::new()).await {
            Ok(n) => StopEvent::new(format!("ordered {n}")),
            Err(err) => {
                let Some(WorkflowError::StepFailed { step, source, .. }) = err.workflow_error()
                else {
                    panic!("unexpected {err:?}");
                };
                assert!(source.downcast_ref::<OutOfStock>().is_some());
                StopEvent::new(format!("{step}: {source} ({err})"))
            }
        }
    }
}

#[tokio::test]
async fn a_child_error_is_a_typed_error_of_the_step_naming_the_child() {
    assert_eq!(
        Orders.run(StartEvent::new()).await.unwrap(),
        "order: out of stock (child workflow `Broken` (Broken/0) ended without its result: step `order` failed after 1 attempt(s): out of stock)"
    );
}

/// Runs `Broken` without declaring it.
struct Sneaky;

#[workflow]
impl Sneaky {
    #[step]
    async fn order(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<u32>, ChildError> {
        Ok(StopEvent::new(
            ctx.run_child(Broken, StartEvent::new()).await?,
        ))
    }
}

#[tokio::test]
async fn a_child_the_step_does_not_declare_is_refused() {
    let err = Sneaky.run(StartEvent::new()).await.unwrap_err();
    let WorkflowError::StepFailed { source, .. } = err else {
        panic!("unexpected {err:?}");
    };
    assert_eq!(
        source.to_string(),
        "step `order` runs child workflow `Broken` without declaring it; add #[step(children(Broken))] to the step"
    );
}

#[tokio::test]
async fn a_snapshot_holds_the_waiting_child_and_a_resume_answers_it() {
    let first = purchase(&["desk", "lamp"]);
    let handler = first.clone().run(StartEvent::new());
    let mut events = handler.stream_events();
    requests(&mut events, 2).await;
    // One child finishes before the snapshot.
    handler
        .send_event(Verdict {
            item: "desk".into(),
            approved: true,
        })
        .unwrap();
    let snapshot = loop {
        let snapshot = handler.snapshot().await.unwrap();
        let children = &snapshot.invocations[0].children;
        if matches!(children[0].state, ChildState::Completed { .. }) {
            break snapshot;
        }
        tokio::task::yield_now().await;
    };
    handler.cancel_run();
    assert_eq!(snapshot.next_child, 2);
    let children = &snapshot.invocations[0].children;
    assert_eq!(children.len(), 2);
    assert_eq!(children[1].path, "Approve/1");
    let ChildState::Running { snapshot: lamp } = &children[1].state else {
        panic!("the lamp child still waits: {:?}", children[1].state);
    };
    assert_eq!(lamp.workflow, "Approve");
    assert_eq!(lamp.waiters.len(), 1);
    assert_eq!(first.child.runs.load(Ordering::SeqCst), 2);

    // Through JSON, into a new runner, as another process would.
    let json = serde_json::to_string(&snapshot).unwrap();
    let snapshot: Snapshot = serde_json::from_str(&json).unwrap();
    let second = purchase(&["desk", "lamp"]);
    let resumed = second.clone().runner().resume(snapshot).unwrap();
    let mut events = resumed.stream_events();
    // The waiting child takes its answer at once; the prompt is not published again.
    resumed
        .send_event(Verdict {
            item: "lamp".into(),
            approved: false,
        })
        .unwrap();
    assert_eq!(resumed.await.unwrap(), ["desk: true", "lamp: false"]);
    let mut names = Vec::new();
    while let Some(ev) = events.next().await {
        names.push((ev.child.as_deref().map(str::to_owned), ev.name()));
    }
    assert!(
        !names.iter().any(|(_, n)| *n == "ApprovalRequest"),
        "no prompt again: {names:?}"
    );
    assert_eq!(
        second.child.runs.load(Ordering::SeqCst),
        1,
        "the finished child did not run again; the waiting one ran its step again to take its answer"
    );
}

#[tokio::test]
async fn a_snapshot_refuses_a_child_the_step_does_not_declare() {
    let handler = purchase(&["desk"]).run(StartEvent::new());
    let mut events = handler.stream_events();
    requests(&mut events, 1).await;
    let mut snapshot = handler.snapshot().await.unwrap();
    handler.cancel_run();
    snapshot.invocations[0].children[0].workflow = "Other".into();
    let err = purchase(&["desk"]).runner().resume(snapshot).unwrap_err();
    assert_eq!(
        err.to_string(),
        workflows::ResumeError::Malformed {
            message: "step `buy` started child workflow `Other`, which it does not declare".into()
        }
        .to_string()
    );
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicUsize>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A child that waits forever, holding a flag it sets when its step is dropped.
#[derive(Clone, Default)]
struct Forever {
    dropped: Arc<AtomicUsize>,
}

#[workflow]
impl Forever {
    #[step]
    async fn wait(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<()>, WaitError> {
        let _flag = DropFlag(self.dropped.clone());
        ctx.write_event_to_stream(Progress {
            note: "waiting".into(),
        });
        ctx.wait_for_event(WaitFor::<Verdict>::new()).await?;
        Ok(StopEvent::new(()))
    }
}

#[derive(Clone, Default)]
struct Holder {
    child: Forever,
    timeout: Option<Duration>,
}

#[workflow]
impl Holder {
    #[step(children(Forever))]
    async fn hold(&self, ctx: &Context, _ev: StartEvent) -> StopEvent<String> {
        let mut runner = self.child.clone().runner();
        if let Some(timeout) = self.timeout {
            runner = runner.timeout(timeout);
        }
        match ctx.run_child(runner, StartEvent::new()).await {
            Ok(()) => StopEvent::new("answered".into()),
            Err(err) => match err.workflow_error() {
                Some(WorkflowError::Timeout { .. }) => StopEvent::new("child timed out".into()),
                _ => StopEvent::new(err.to_string()),
            },
        }
    }
}

#[tokio::test]
async fn cancelling_the_parent_cancels_its_child() {
    let holder = Holder::default();
    let handler = holder.clone().run(StartEvent::new());
    let mut events = handler.stream_events();
    let first = events.next().await.unwrap();
    assert_eq!(first.child.as_deref(), Some("Forever/0"));
    assert_eq!(holder.child.dropped.load(Ordering::SeqCst), 0);
    handler.cancel_run();
    assert!(matches!(handler.await, Err(WorkflowError::Cancelled)));
    assert_eq!(
        holder.child.dropped.load(Ordering::SeqCst),
        1,
        "the child's waiting step was dropped with the parent"
    );
}

#[tokio::test(start_paused = true)]
async fn a_childs_timeout_reaches_the_step_as_a_typed_error() {
    let holder = Holder {
        timeout: Some(Duration::from_secs(30)),
        ..Holder::default()
    };
    assert_eq!(
        holder.clone().run(StartEvent::new()).await.unwrap(),
        "child timed out"
    );
    assert_eq!(holder.child.dropped.load(Ordering::SeqCst), 1);
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Item {
    name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Reviewed {
    line: String,
}

/// Fans out one branch per item; each branch runs an `Approve` child; a join collects them.
#[derive(Clone, Default)]
struct Basket {
    child: Approve,
}

#[workflow]
impl Basket {
    #[step]
    async fn split(&self, _ev: StartEvent) -> Vec<Item> {
        ["pen", "ink", "pad"]
            .into_iter()
            .map(|name| Item { name: name.into() })
            .collect()
    }

    #[step(children(Approve))]
    async fn review(&self, ctx: &Context, item: Item) -> Result<Reviewed, ChildError> {
        let approved = ctx
            .run_child(
                self.child.clone(),
                StartEvent::new().with("item", &item.name),
            )
            .await?;
        Ok(Reviewed {
            line: format!("{}: {approved}", item.name),
        })
    }

    #[step]
    async fn total(&self, all: Vec<Reviewed>) -> StopEvent<Vec<String>> {
        StopEvent::new(all.into_iter().map(|r| r.line).collect())
    }
}

#[tokio::test]
async fn children_in_the_branches_of_a_fan_out() {
    let handler = Basket::default().run(StartEvent::new());
    let mut events = handler.stream_events();
    let mut asked = requests(&mut events, 3).await;
    asked.sort_by(|a, b| a.0.cmp(&b.0));
    let paths: Vec<&str> = asked.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["Approve/0", "Approve/1", "Approve/2"]);
    for (_, request) in asked.iter().rev() {
        handler
            .send_event(Verdict {
                item: request.item.clone(),
                approved: request.item != "ink",
            })
            .unwrap();
    }
    assert_eq!(
        handler.await.unwrap(),
        ["pen: true", "ink: false", "pad: true"],
        "the join keeps element order"
    );
}

/// A child that itself runs a child: the grandchild's events carry both paths.
#[derive(Clone, Default)]
struct Middle {
    child: Approve,
}

#[workflow]
impl Middle {
    #[step(children(Approve))]
    async fn relay(&self, ctx: &Context, ev: StartEvent) -> Result<StopEvent<bool>, ChildError> {
        let item: String = ev.get("item").unwrap_or_default();
        let approved = ctx
            .run_child(self.child.clone(), StartEvent::new().with("item", item))
            .await?;
        Ok(StopEvent::new(approved))
    }
}

#[derive(Clone, Default)]
struct Top {
    middle: Middle,
}

#[workflow]
impl Top {
    #[step(children(Middle))]
    async fn start(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<bool>, ChildError> {
        let approved = ctx
            .run_child(self.middle.clone(), StartEvent::new().with("item", "car"))
            .await?;
        Ok(StopEvent::new(approved))
    }
}

#[tokio::test]
async fn a_grandchild_is_marked_with_both_paths_and_resumes_from_a_nested_snapshot() {
    let handler = Top::default().run(StartEvent::new());
    let mut events = handler.stream_events();
    let asked = requests(&mut events, 1).await;
    assert_eq!(asked[0].0, "Middle/0/Approve/0");
    let snapshot = handler.snapshot().await.unwrap();
    handler.cancel_run();
    let ChildState::Running { snapshot: middle } = &snapshot.invocations[0].children[0].state
    else {
        panic!("the middle child runs");
    };
    assert!(matches!(
        middle.invocations[0].children[0].state,
        ChildState::Running { .. }
    ));
    let resumed = Top::default().runner().resume(snapshot).unwrap();
    resumed
        .send_event(Verdict {
            item: "car".into(),
            approved: true,
        })
        .unwrap();
    assert!(resumed.await.unwrap());
}

#[tokio::test]
async fn an_answer_sent_before_the_resumed_child_runs_is_kept_in_the_next_snapshot() {
    let handler = purchase(&["desk"]).run(StartEvent::new());
    let mut events = handler.stream_events();
    requests(&mut events, 1).await;
    let snapshot = handler.snapshot().await.unwrap();
    handler.cancel_run();

    let resumed = purchase(&["desk"]).runner().resume(snapshot).unwrap();
    // Before the resumed run's loop has run at all, its child has no loop yet: the answer is
    // kept for it, and a snapshot now records it with the child.
    resumed
        .send_event(Verdict {
            item: "desk".into(),
            approved: true,
        })
        .unwrap();
    let again = resumed.snapshot().await.unwrap();
    resumed.cancel_run();
    let child = &again.invocations[0].children[0];
    assert_eq!(child.inbox.len(), 1, "{child:?}");
    assert_eq!(child.inbox[0].name, "Verdict");

    let last = purchase(&["desk"]).runner().resume(again).unwrap();
    assert_eq!(last.await.unwrap(), ["desk: true"]);
}

/// A child that asks through a returned request and takes the answer in a step (no wait, no
/// requirement): answers tell the children apart only by the request they answer.
struct Ask;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(input_required(response = Reply))]
struct Question {
    item: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(external)]
struct Reply {
    text: String,
}

#[workflow]
impl Ask {
    #[step]
    async fn ask(&self, ev: StartEvent) -> Question {
        Question {
            item: ev.get("item").unwrap_or_default(),
        }
    }

    #[step]
    async fn decide(&self, reply: Reply) -> StopEvent<String> {
        StopEvent::new(reply.text)
    }
}

struct AskTwice;

#[workflow]
impl AskTwice {
    #[step(children(Ask))]
    async fn both(
        &self,
        ctx: &Context,
        _ev: StartEvent,
    ) -> Result<StopEvent<Vec<String>>, ChildError> {
        let (a, b) = futures_util::future::join(
            ctx.run_child(Ask, StartEvent::new().with("item", "a")),
            ctx.run_child(Ask, StartEvent::new().with("item", "b")),
        )
        .await;
        Ok(StopEvent::new(vec![a?, b?]))
    }
}

#[tokio::test]
async fn respond_sends_the_answer_to_the_child_that_published_the_request() {
    let handler = AskTwice.run(StartEvent::new());
    let mut events = handler.stream_events();
    let mut held = Vec::new();
    while held.len() < 2 {
        let ev = events.next().await.unwrap();
        if ev.is::<Question>() {
            held.push(ev);
        }
    }
    // Both children take any `Reply`; answering the second child's request first, the
    // request decides where the answer goes.
    let second = held[1].downcast_ref::<Question>().unwrap();
    assert_eq!(held[1].child.as_deref(), Some("Ask/1"));
    handler
        .respond(
            second,
            Reply {
                text: "b: no".into(),
            },
        )
        .unwrap();
    let first = held[0].downcast_ref::<Question>().unwrap();
    handler
        .respond(
            first,
            Reply {
                text: "a: yes".into(),
            },
        )
        .unwrap();
    assert_eq!(second.item, "b");
    assert_eq!(handler.await.unwrap(), ["a: yes", "b: no"]);
}

#[test]
fn the_graph_draws_each_child_inside_its_parent() {
    let graph = workflows::graph::Graph::of::<Purchase>();
    assert!(graph.edges().iter().any(|e| e.from == "buy"
        && e.to == "Approve"
        && e.kind == workflows::graph::EdgeKind::RunsChild));
    assert_eq!(graph.children().len(), 1);
    assert_eq!(graph.children()[0].step, "buy");
    assert_eq!(graph.children()[0].graph.steps()[0].name, "ask");
    let mermaid = graph.to_mermaid();
    assert!(
        mermaid.contains("step_buy -. runs .-> c0_child"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains(
            "    subgraph c0_child[\"child workflow Approve\"]\n        c0_step_ask[\"ask\"]"
        ),
        "{mermaid}"
    );
    let dot = graph.to_dot();
    assert!(
        dot.contains("\"step:buy\" -> \"c0_workflow\" [style=dashed, label=\"runs\"];"),
        "{dot}"
    );
    assert!(dot.contains("subgraph \"cluster_c0_\" {"), "{dot}");
    assert!(
        dot.contains("\"c0_step:ask\" [label=\"ask\", shape=box];"),
        "{dot}"
    );

    // Two levels: the grandchild sits inside the child's subgraph.
    let top = workflows::graph::Graph::of::<Top>().to_mermaid();
    assert!(
        top.contains("c0_step_relay -. runs .-> c0_c0_child"),
        "{top}"
    );
    assert!(top.contains("c0_c0_step_ask"), "{top}");
}

/// A workflow that may run itself: its drawing stops at the first repeat.
struct Recursive;

#[workflow]
impl Recursive {
    #[step(children(Recursive))]
    async fn go(&self, ctx: &Context, ev: StartEvent) -> Result<StopEvent<u32>, ChildError> {
        let depth: u32 = ev.get("depth").unwrap_or(0);
        if depth == 3 {
            return Ok(StopEvent::new(depth));
        }
        let below = ctx
            .run_child(Recursive, StartEvent::new().with("depth", depth + 1))
            .await?;
        Ok(StopEvent::new(below))
    }
}

#[tokio::test]
async fn a_workflow_may_run_itself_and_is_drawn_once() {
    assert_eq!(Recursive.run(StartEvent::new()).await.unwrap(), 3);
    let graph = workflows::graph::Graph::of::<Recursive>();
    assert_eq!(graph.children().len(), 1);
    assert!(graph.children()[0].graph.steps().is_empty());
}

#[tokio::test]
async fn cancelling_a_child_gives_its_step_a_typed_error_and_the_parent_goes_on() {
    let holder = Holder::default();
    let handler = holder.clone().run(StartEvent::new());
    let mut events = handler.stream_events();
    let first = events.next().await.unwrap();
    let path = first.child.as_deref().unwrap().to_owned();
    assert!(!handler.cancel_child("Forever/9"), "no such child");
    assert!(handler.cancel_child(&path));
    assert_eq!(
        handler.await.unwrap(),
        "child workflow `Forever` (Forever/0) ended without its result: the run was cancelled"
    );
    assert_eq!(holder.child.dropped.load(Ordering::SeqCst), 1);
}

/// The other half of `a_parent_resumes_in_another_process`: run by it as a process of its own,
/// with the snapshot's path in `CHILDREN_SNAPSHOT`; does nothing otherwise.
#[tokio::test]
async fn resume_the_parent_given_by_the_other_process() {
    let Ok(path) = std::env::var("CHILDREN_SNAPSHOT") else {
        return;
    };
    let snapshot = Snapshot::from_json(&std::fs::read_to_string(path).unwrap()).unwrap();
    let handler = purchase(&["desk", "lamp"])
        .runner()
        .resume(snapshot)
        .unwrap();
    for (item, approved) in [("lamp", false), ("desk", true)] {
        handler
            .send_event(Verdict {
                item: item.into(),
                approved,
            })
            .unwrap();
    }
    println!("RESULT {:?}", handler.await.unwrap());
}

#[tokio::test]
async fn a_parent_resumes_in_another_process_and_its_waiting_children_take_their_answers() {
    let handler = purchase(&["desk", "lamp"]).run(StartEvent::new());
    let mut events = handler.stream_events();
    requests(&mut events, 2).await;
    let snapshot = handler.snapshot().await.unwrap();
    handler.cancel_run();
    let path = std::env::temp_dir().join(format!(
        "children-{}-{}.json",
        std::process::id(),
        snapshot.run_id
    ));
    std::fs::write(&path, snapshot.to_json()).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "resume_the_parent_given_by_the_other_process",
            "--nocapture",
        ])
        .env("CHILDREN_SNAPSHOT", &path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(r#"RESULT ["desk: true", "lamp: false"]"#),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_parent_whose_children_all_wait_is_idle_and_ends_when_nobody_can_answer() {
    let holder = Holder::default();
    let handler = holder
        .clone()
        .runner()
        .run_with(StartEvent::new(), RunOptions::new().internal_events(true));
    let mut events = handler.stream_events();
    let mut seen = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = events.next().await {
            let idle = ev.is::<workflows::WorkflowIdle>();
            seen.push((ev.child.as_deref().map(str::to_owned), ev.name()));
            if idle {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no WorkflowIdle: {seen:?}");
    assert_eq!(
        seen.last().unwrap(),
        &(None, "WorkflowIdle"),
        "the parent is idle while its only child waits: {seen:?}"
    );
    // With its handler gone nothing can answer: the run ends, and its child with it.
    drop(events);
    drop(handler);
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while holder.child.dropped.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the abandoned parent ended its waiting child"
    );
}

/// Runs an `Approve` child; fails once before it when told to (a retry follows).
#[derive(Clone, Default)]
struct Flaky {
    child: Approve,
    fail_once: Arc<std::sync::atomic::AtomicBool>,
}

#[workflow]
impl Flaky {
    #[step(children(Approve), retry = RetryPolicy::attempts(2))]
    async fn buy(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<bool>, String> {
        if self.fail_once.swap(false, Ordering::SeqCst) {
            return Err("flaky".into());
        }
        ctx.run_child(self.child.clone(), StartEvent::new().with("item", "desk"))
            .await
            .map(StopEvent::new)
            .map_err(|e| e.to_string())
    }
}

#[tokio::test]
async fn a_child_its_retried_step_does_not_resume_takes_nothing_from_the_new_one() {
    let handler = Flaky::default().run(StartEvent::new());
    let mut events = handler.stream_events();
    requests(&mut events, 1).await;
    let snapshot = handler.snapshot().await.unwrap();
    handler.cancel_run();

    // Resumed, the step fails before it reaches its child, and its retry starts a new one:
    // the old child's link must not take the new child's answer.
    let flaky = Flaky::default();
    flaky.fail_once.store(true, Ordering::SeqCst);
    let resumed = flaky.runner().resume(snapshot).unwrap();
    let mut events = resumed.stream_events();
    let asked = requests(&mut events, 1).await;
    assert_eq!(asked[0].0, "Approve/1", "a new child");
    resumed
        .send_event(Verdict {
            item: "desk".into(),
            approved: true,
        })
        .unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), resumed).await;
    assert!(result.expect("the new child got the answer").unwrap());
}

/// Runs an `Approve` child while it also waits for a `Progress` (whichever comes first).
#[derive(Clone, Default)]
struct Either {
    child: Approve,
}

#[workflow]
impl Either {
    #[step(children(Approve))]
    async fn race(&self, ctx: &Context, _ev: StartEvent) -> StopEvent<String> {
        let child = ctx.run_child(self.child.clone(), StartEvent::new().with("item", "desk"));
        let stop = ctx.wait_for_event(WaitFor::<Progress>::new());
        match futures_util::future::select(Box::pin(child), Box::pin(stop)).await {
            futures_util::future::Either::Left((verdict, _)) => {
                StopEvent::new(format!("child: {:?}", verdict.map_err(|e| e.to_string())))
            }
            futures_util::future::Either::Right((progress, _)) => {
                StopEvent::new(format!("stopped: {:?}", progress.map(|p| p.note)))
            }
        }
    }
}

#[tokio::test]
async fn a_step_that_waits_and_runs_a_child_resumes_the_child() {
    let handler = Either::default().run(StartEvent::new());
    let mut events = handler.stream_events();
    requests(&mut events, 1).await;
    let snapshot = handler.snapshot().await.unwrap();
    handler.cancel_run();
    assert_eq!(
        snapshot.waiters.len(),
        1,
        "the step waits for a Progress too"
    );

    let resumed = Either::default().runner().resume(snapshot).unwrap();
    resumed
        .send_event(Verdict {
            item: "desk".into(),
            approved: true,
        })
        .unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), resumed).await;
    assert_eq!(
        result
            .expect("the child resumed and took its answer")
            .unwrap(),
        "child: Ok(true)"
    );
}
