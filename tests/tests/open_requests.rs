//! The input requests a run waits for a person to answer, as its snapshots list them
//! (`Snapshot::open_requests`): returned requests until answered from outside, waits' prompts
//! while they wait, children's with their paths, across a resume.

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use workflows::prelude::*;
use workflows::{OpenRequest, Snapshot, field};

/// Asks twice: the answer to the first request leads to the second.
struct TwoQuestions;

#[workflow]
impl TwoQuestions {
    #[step]
    async fn first(&self, _ev: StartEvent) -> InputRequiredEvent {
        InputRequiredEvent::new("name? ")
    }

    #[step]
    async fn answer(&self, ev: HumanResponseEvent) -> Result<Next, String> {
        match ev.response.as_str() {
            "" => Err("empty".into()),
            name if name.starts_with("age ") => Ok(Next::Done(StopEvent::new(name.into()))),
            name => Ok(Next::Again(InputRequiredEvent::new(format!(
                "{name}, age? "
            )))),
        }
    }
}

#[derive(OneOf)]
enum Next {
    Again(InputRequiredEvent),
    Done(StopEvent<String>),
}

/// Reads `handler`'s stream until `n` events of type `E` have come.
async fn until_seen<E: Event, T>(handler: &Handler<T>, n: usize) {
    let mut events = handler.stream_events();
    let mut seen = 0;
    while seen < n {
        let ev = events.next().await.expect("the run goes on");
        seen += usize::from(ev.is::<E>());
    }
}

fn summary(open: &[OpenRequest]) -> Vec<(u64, Option<String>, String, Option<String>)> {
    open.iter()
        .map(|r| {
            (
                r.seq,
                r.child.clone(),
                r.event.data["prefix"]
                    .as_str()
                    .or_else(|| r.event.data["item"].as_str())
                    .unwrap_or_default()
                    .to_owned(),
                r.response.clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_returned_request_is_open_until_an_answer_comes_from_outside() {
    let handler = TwoQuestions.run(StartEvent::new());
    until_seen::<InputRequiredEvent, _>(&handler, 1).await;
    let open = handler.snapshot().await.unwrap().open_requests();
    let response = Some("HumanResponseEvent".to_owned());
    assert_eq!(
        summary(&open),
        [(0, None, "name? ".to_owned(), response.clone())]
    );
    assert!(open[0].requirements.is_empty() && open[0].waiter_id.is_none());

    handler.send_event(HumanResponseEvent::new("Ada")).unwrap();
    until_seen::<InputRequiredEvent, _>(&handler, 2).await;
    let snapshot = handler.snapshot().await.unwrap();
    assert_eq!(
        summary(&snapshot.open_requests()),
        [(1, None, "Ada, age? ".to_owned(), response.clone())],
        "the first was answered; the second is open"
    );

    // Across a resume, the open request keeps its place in the stream.
    handler.cancel_run();
    let json = snapshot.to_json();
    let resumed = TwoQuestions
        .runner()
        .resume(Snapshot::from_json(&json).unwrap())
        .unwrap();
    let again = resumed.snapshot().await.unwrap();
    assert_eq!(
        summary(&again.open_requests()),
        [(1, None, "Ada, age? ".to_owned(), response)]
    );
    resumed
        .send_event(HumanResponseEvent::new("age 36"))
        .unwrap();
    assert_eq!(resumed.await.unwrap(), "age 36");
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(input_required(response = Decision))]
struct Approval {
    item: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Decision {
    item: String,
    approve: bool,
}

/// Waits for two decisions at once, each on its own item.
struct Pair;

#[workflow]
impl Pair {
    #[step]
    async fn both(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<bool>, WaitError> {
        let wait = |item: &str| {
            ctx.wait_for_event(
                WaitFor::<Decision>::new()
                    .id(format!("decide-{item}"))
                    .prompt(Approval { item: item.into() })
                    .require(field!(Decision, item), item.to_owned()),
            )
        };
        let (a, b) = tokio::join!(wait("desk"), wait("lamp"));
        Ok(StopEvent::new(a?.approve && b?.approve))
    }
}

#[tokio::test]
async fn a_waits_prompt_is_open_while_it_waits_with_its_requirements() {
    let handler = Pair.run(StartEvent::new());
    until_seen::<Approval, _>(&handler, 2).await;
    let open = handler.snapshot().await.unwrap().open_requests();
    let decision = Some("Decision".to_owned());
    assert_eq!(
        summary(&open),
        [
            (0, None, "desk".to_owned(), decision.clone()),
            (1, None, "lamp".to_owned(), decision.clone())
        ]
    );
    assert_eq!(open[1].waiter_id.as_deref(), Some("decide-lamp"));
    assert_eq!(open[1].requirements[0].path, "item");
    assert_eq!(open[1].requirements[0].value, "lamp");

    handler
        .send_event(Decision {
            item: "lamp".into(),
            approve: true,
        })
        .unwrap();
    let open = loop {
        let open = handler.snapshot().await.unwrap().open_requests();
        if open.len() == 1 {
            break open;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(
        summary(&open),
        [(0, None, "desk".to_owned(), decision)],
        "the answered wait's prompt is closed"
    );
    handler
        .send_event(Decision {
            item: "desk".into(),
            approve: true,
        })
        .unwrap();
    assert!(handler.await.unwrap());
}

/// Runs `Pair` as a child.
struct Parent;

#[workflow]
impl Parent {
    #[step(children(Pair))]
    async fn run(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<bool>, ChildError> {
        Ok(StopEvent::new(
            ctx.run_child(Pair, StartEvent::new()).await?,
        ))
    }
}

#[tokio::test]
async fn a_childs_requests_are_listed_with_its_path() {
    let handler = Parent.run(StartEvent::new());
    until_seen::<Approval, _>(&handler, 2).await;
    let open = handler.snapshot().await.unwrap().open_requests();
    let children: Vec<(u64, Option<&str>)> =
        open.iter().map(|r| (r.seq, r.child.as_deref())).collect();
    assert_eq!(children, [(0, Some("Pair/0")), (1, Some("Pair/0"))]);
    handler.cancel_run();
}

/// Returns a request and also sends itself the response type: only an answer from outside
/// answers a request.
struct SelfAnswer;

#[workflow]
impl SelfAnswer {
    #[step(sends(HumanResponseEvent))]
    async fn ask(&self, ctx: &Context, _ev: StartEvent) -> InputRequiredEvent {
        ctx.send_event(HumanResponseEvent::new("from a step"))
            .unwrap();
        InputRequiredEvent::new("really? ")
    }

    #[step]
    async fn take(&self, ev: HumanResponseEvent) -> Option<StopEvent<String>> {
        (ev.response != "from a step").then(|| StopEvent::new(ev.response))
    }
}

#[tokio::test]
async fn an_event_a_step_sends_does_not_answer_a_request() {
    let handler = SelfAnswer.run(StartEvent::new());
    until_seen::<InputRequiredEvent, _>(&handler, 1).await;
    let open = handler.snapshot().await.unwrap().open_requests();
    assert_eq!(open.len(), 1, "{open:?}");
    handler.send_event(HumanResponseEvent::new("yes")).unwrap();
    assert_eq!(handler.await.unwrap(), "yes");
}
