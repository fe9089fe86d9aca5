//! Human in the loop: requests out through the stream, answers in through the handler.

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use workflows::prelude::*;

struct NumberWorkflow;

#[workflow]
impl NumberWorkflow {
    #[step]
    async fn ask(&self, _ev: StartEvent) -> InputRequiredEvent {
        InputRequiredEvent::new("Enter a number: ")
    }

    #[step]
    async fn answer(&self, ev: HumanResponseEvent) -> StopEvent<String> {
        StopEvent::new(ev.response)
    }
}

#[tokio::test]
async fn the_seed_round_trip_through_stream_and_send_event() {
    let handler = NumberWorkflow.run(StartEvent::new());
    let mut events = handler.stream_events();
    let mut prompts = Vec::new();
    while let Some(ev) = events.next().await {
        if let Some(req) = ev.downcast_ref::<InputRequiredEvent>() {
            prompts.push(req.prefix.clone());
            handler.send_event(HumanResponseEvent::new("42")).unwrap();
        }
    }
    assert_eq!(prompts, ["Enter a number: "]);
    assert_eq!(handler.await.unwrap(), "42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_rounds_answered_instantly_never_stall() {
    struct Rounds;

    #[derive(Debug, OneOf)]
    enum In {
        Start(StartEvent),
        Answer(HumanResponseEvent),
    }

    #[derive(Debug, OneOf)]
    enum Out {
        Ask(InputRequiredEvent),
        Stop(StopEvent<u32>),
    }

    #[workflow]
    impl Rounds {
        #[step]
        async fn ask(&self, ev: In) -> Out {
            let answered: u32 = match ev {
                In::Start(_) => 0,
                In::Answer(a) => a.response.parse().unwrap(),
            };
            if answered == 2000 {
                StopEvent::new(answered).into()
            } else {
                InputRequiredEvent::new(answered.to_string()).into()
            }
        }
    }

    let handler = Rounds.run(StartEvent::new());
    let mut asked = 0;
    let mut events = handler.stream_events();
    while let Some(ev) = events.next().await {
        if let Some(req) = ev.downcast_ref::<InputRequiredEvent>() {
            assert_eq!(req.prefix, asked.to_string());
            asked += 1;
            handler
                .send_event(HumanResponseEvent::new(asked.to_string()))
                .unwrap();
        }
    }
    assert_eq!(asked, 2000);
    assert_eq!(handler.await.unwrap(), 2000);
}

/// A structured answer, and a request that names it.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(response)]
struct Approval {
    approved: bool,
    reviewer: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(input_required(response = Approval))]
struct ApprovalRequest {
    draft: String,
}

/// A user-defined stop event: awaiting the run gives the event itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Event)]
#[event(stop)]
struct Published {
    text: String,
    reviewer: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(start)]
struct Draft {
    text: String,
}

struct Review;

#[workflow]
impl Review {
    #[step]
    async fn submit(&self, ctx: &Context, ev: Draft) -> ApprovalRequest {
        ctx.store().set("draft", &ev.text).unwrap();
        ApprovalRequest { draft: ev.text }
    }

    #[step]
    async fn decide(&self, ctx: &Context, ev: Approval) -> Result<Published, String> {
        let text: String = ctx.store().get("draft").unwrap().unwrap();
        if ev.approved {
            Ok(Published {
                text,
                reviewer: ev.reviewer,
            })
        } else {
            Err(format!("rejected by {}", ev.reviewer))
        }
    }
}

#[tokio::test]
async fn user_defined_request_and_response_pair_is_type_checked() {
    let handler = Review.run(Draft {
        text: "Otters hold hands.".into(),
    });
    let mut events = handler.stream_events();
    while let Some(ev) = events.next().await {
        if let Some(req) = ev.downcast_ref::<ApprovalRequest>() {
            assert_eq!(req.draft, "Otters hold hands.");
            // `respond` only takes the response type the request names.
            handler
                .respond(
                    req,
                    Approval {
                        approved: true,
                        reviewer: "ada".into(),
                    },
                )
                .unwrap();
        }
    }
    let published = handler.await.unwrap();
    assert_eq!(
        published,
        Published {
            text: "Otters hold hands.".into(),
            reviewer: "ada".into()
        }
    );
    assert_eq!(<ApprovalRequest as Event>::RESPONSE, Some("Approval"));
    // The pair is part of the step table, the workflow's graph as data.
    let submit = &<Review as Workflow>::STEPS[0];
    assert_eq!(submit.emits[0].name, "ApprovalRequest");
    assert_eq!(submit.emits[0].response, Some("Approval"));
    assert_eq!(<Review as Workflow>::STEPS[1].accepts[0].name, "Approval");
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Echoed {
    prefix: String,
}

struct SeesItsOwnRequest;

#[workflow]
impl SeesItsOwnRequest {
    #[step]
    async fn ask(&self, _ev: StartEvent) -> InputRequiredEvent {
        InputRequiredEvent::new("hello")
    }

    /// Like the Python library, a returned request is streamed and also routed.
    #[step]
    async fn audit(&self, ctx: &Context, ev: InputRequiredEvent) {
        ctx.write_event_to_stream(Echoed { prefix: ev.prefix });
    }

    #[step]
    async fn answer(&self, ev: HumanResponseEvent) -> StopEvent<String> {
        StopEvent::new(ev.response)
    }
}

#[tokio::test]
async fn a_returned_request_is_streamed_and_routed_to_steps_accepting_it() {
    let handler = SeesItsOwnRequest.run(StartEvent::new());
    let mut events = handler.stream_events();
    let mut names = Vec::new();
    while let Some(ev) = events.next().await {
        names.push(ev.name());
        if ev.is::<Echoed>() {
            handler.send_event(HumanResponseEvent::new("done")).unwrap();
        }
    }
    assert_eq!(names, ["InputRequiredEvent", "Echoed", "StopEvent"]);
    assert_eq!(handler.await.unwrap(), "done");
}
