//! `wait_for_event`: a step suspends until an event from outside answers it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use workflows::prelude::*;
use workflows::{SendError, WorkflowCancelled, field};
use workflows_tests::{Decision, Reviewed, verdicts};

/// Answers every input request on the stream with `answer(prefix)`; returns the prompts seen.
async fn answer_all<T: 'static>(
    handler: &Handler<T>,
    mut answer: impl FnMut(&InputRequiredEvent) -> HumanResponseEvent,
) -> Vec<String> {
    let mut prompts = Vec::new();
    let mut events = handler.stream_events();
    while let Some(ev) = events.next().await {
        if let Some(req) = ev.downcast_ref::<InputRequiredEvent>() {
            prompts.push(req.prefix.clone());
            handler.send_event(answer(req)).unwrap();
        }
    }
    prompts
}

struct Seed {
    before_wait: AtomicU32,
}

#[workflow]
impl Seed {
    #[step]
    async fn ask_user(
        &self,
        ctx: &Context,
        _ev: StartEvent,
    ) -> Result<StopEvent<String>, WaitError> {
        self.before_wait.fetch_add(1, Ordering::SeqCst);
        let response = ctx
            .wait_for_event(
                WaitFor::<HumanResponseEvent>::new()
                    .prompt(InputRequiredEvent::new("Enter a number: "))
                    .id("get_number"),
            )
            .await?;
        Ok(StopEvent::new(response.response))
    }
}

#[tokio::test]
async fn the_seed_wait_for_event_example_suspends_without_replaying() {
    let runner = Seed {
        before_wait: AtomicU32::new(0),
    }
    .runner();
    let handler = runner.run(StartEvent::new());
    let prompts = answer_all(&handler, |_| HumanResponseEvent::new("12")).await;
    assert_eq!(prompts, ["Enter a number: "]);
    assert_eq!(handler.await.unwrap(), "12");
    assert_eq!(
        runner.workflow().before_wait.load(Ordering::SeqCst),
        1,
        "code before the wait ran once"
    );
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Heard {
    by: String,
    response: String,
}

#[derive(Debug, OneOf)]
enum StartOrAnswer {
    Start(StartEvent),
    Answer(HumanResponseEvent),
}

struct Shared;

#[workflow]
impl Shared {
    /// Waits for the answer, and also accepts answers as normal inputs: the one that resolves
    /// its waiter must not arrive here a second time.
    #[step]
    async fn ask(&self, ctx: &Context, ev: StartOrAnswer) -> Result<Heard, WaitError> {
        match ev {
            StartOrAnswer::Start(_) => {
                let wait =
                    WaitFor::<HumanResponseEvent>::new().prompt(InputRequiredEvent::new("name?"));
                let answer = ctx.wait_for_event(wait).await?;
                Ok(Heard {
                    by: "waiter".into(),
                    response: answer.response,
                })
            }
            StartOrAnswer::Answer(answer) => Ok(Heard {
                by: "ask as input".into(),
                response: answer.response,
            }),
        }
    }

    /// Accepts the same type: it still gets the answer as a normal input.
    #[step]
    async fn log(&self, ev: HumanResponseEvent) -> Heard {
        Heard {
            by: "log".into(),
            response: ev.response,
        }
    }

    #[step]
    async fn join(&self, ctx: &Context, ev: Heard) -> Option<StopEvent<Vec<String>>> {
        let mut all: Vec<String> = ctx
            .collect(ev, 2)?
            .into_iter()
            .map(|h| format!("{}: {}", h.by, h.response))
            .collect();
        all.sort();
        Some(StopEvent::new(all))
    }
}

#[tokio::test]
async fn the_answer_resolves_the_waiter_and_still_reaches_other_steps() {
    let handler = Shared.run(StartEvent::new());
    let prompts = answer_all(&handler, |_| HumanResponseEvent::new("ada")).await;
    assert_eq!(prompts, ["name?"]);
    assert_eq!(handler.await.unwrap(), ["log: ada", "waiter: ada"]);
}

struct TwoInARow;

#[workflow]
impl TwoInARow {
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
async fn two_waits_in_a_row_resolve_independently() {
    let handler = TwoInARow.run(StartEvent::new());
    let prompts = answer_all(&handler, |req| {
        HumanResponseEvent::new(if req.prefix == "name?" {
            "Ada"
        } else {
            "London"
        })
    })
    .await;
    assert_eq!(prompts, ["name?", "city?"]);
    assert_eq!(handler.await.unwrap(), "Ada from London");
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Draft {
    request_id: u32,
    text: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(input_required(response = Decision))]
struct ApproveRequest {
    request_id: u32,
    text: String,
}

struct Approvals;

#[workflow]
impl Approvals {
    #[step(sends(Draft))]
    async fn start(&self, ctx: &Context, _ev: StartEvent) {
        for (request_id, text) in [(1, "first"), (2, "second")] {
            ctx.send_event(Draft {
                request_id,
                text: text.into(),
            })
            .unwrap();
        }
    }

    /// Two invocations wait at once, each for the decision about its own draft.
    #[step(num_workers = 2)]
    async fn approve(&self, ctx: &Context, ev: Draft) -> Result<Reviewed, WaitError> {
        let decision = ctx
            .wait_for_event(
                WaitFor::<Decision>::new()
                    .prompt(ApproveRequest {
                        request_id: ev.request_id,
                        text: ev.text,
                    })
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
async fn parallel_waiters_are_answered_by_requirement() {
    let handler = Approvals.run(StartEvent::new());
    let mut events = handler.stream_events();
    let mut pending = Vec::new();
    while let Some(ev) = events.next().await {
        if let Some(req) = ev.downcast_ref::<ApproveRequest>() {
            pending.push(req.clone());
            if pending.len() == 2 {
                // Answer in the reverse order: requirements route each to its own waiter.
                for req in pending.iter().rev() {
                    let decision = Decision {
                        request_id: req.request_id,
                        approved: req.request_id == 2,
                    };
                    handler.respond(req, decision).unwrap();
                }
            }
        }
    }
    assert_eq!(handler.await.unwrap(), [(1, false), (2, true)]);
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Slot {
    n: u32,
}

struct Anonymous;

#[workflow]
impl Anonymous {
    #[step(sends(Slot))]
    async fn start(&self, ctx: &Context, _ev: StartEvent) {
        ctx.send_event(Slot { n: 1 }).unwrap();
        ctx.send_event(Slot { n: 2 }).unwrap();
    }

    /// No waiter ids: each invocation's waits get ids of their own.
    #[step(num_workers = 2)]
    async fn wait(&self, ctx: &Context, ev: Slot) -> Result<Reviewed, WaitError> {
        let prompt = InputRequiredEvent::new(format!("slot {}", ev.n));
        let answer = ctx
            .wait_for_event(WaitFor::<HumanResponseEvent>::new().prompt(prompt))
            .await?;
        Ok(Reviewed {
            request_id: ev.n,
            approved: answer.response == format!("ok {}", ev.n),
        })
    }

    #[step]
    async fn join(&self, ctx: &Context, ev: Reviewed) -> Option<StopEvent<Vec<(u32, bool)>>> {
        Some(StopEvent::new(verdicts(ctx.collect(ev, 2)?)))
    }
}

#[tokio::test]
async fn implicit_waiter_ids_do_not_collide_between_parallel_invocations() {
    let handler = Anonymous.run(StartEvent::new());
    let mut events = handler.stream_events();
    let mut prompts = 0;
    while let Some(ev) = events.next().await {
        if ev.is::<InputRequiredEvent>() {
            prompts += 1;
            if prompts == 2 {
                // Both wait now, without requirements: one answer resolves both waiters, as
                // in the Python library.
                handler.send_event(HumanResponseEvent::new("ok 1")).unwrap();
            }
        }
    }
    assert_eq!(prompts, 2, "each waiter published its own prompt");
    assert_eq!(handler.await.unwrap(), [(1, true), (2, false)]);
}

struct Patient;

#[workflow]
impl Patient {
    #[step]
    async fn ask(&self, ctx: &Context, _ev: StartEvent) -> StopEvent<String> {
        let wait = WaitFor::<HumanResponseEvent>::new()
            .id("slow-human")
            .prompt(InputRequiredEvent::new("anyone?"))
            .timeout(Duration::from_secs(60));
        match ctx.wait_for_event(wait).await {
            Ok(answer) => StopEvent::new(answer.response),
            Err(WaitError::Timeout { waiter_id, after }) => {
                StopEvent::new(format!("{waiter_id} timed out after {after:?}"))
            }
            Err(other) => StopEvent::new(other.to_string()),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_wait_timeout_is_an_error_the_step_can_catch() {
    let result = Patient.run(StartEvent::new()).await.unwrap();
    assert_eq!(result, "slow-human timed out after 60s");
}

#[tokio::test]
async fn an_event_only_a_waiter_accepts_can_be_sent_while_it_waits() {
    // `Patient` has no step taking HumanResponseEvent: only its waiter does.
    let handler = Patient.run(StartEvent::new());
    assert!(matches!(
        handler.send_event(Decision {
            request_id: 1,
            approved: true
        }),
        Err(SendError::NoReceiver { .. })
    ));
    let prompts = answer_all(&handler, |_| HumanResponseEvent::new("here")).await;
    assert_eq!(prompts, ["anyone?"]);
    assert_eq!(handler.await.unwrap(), "here");
}

#[tokio::test]
async fn a_run_waiting_for_an_answer_ends_when_its_handler_is_dropped() {
    let handler = Patient.run(StartEvent::new());
    let mut events = handler.stream_events();
    assert!(events.next().await.unwrap().is::<InputRequiredEvent>());
    drop(handler);
    let last = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("the run ends")
        .unwrap();
    assert!(last.is::<WorkflowCancelled>());
}

struct Retried;

#[workflow]
impl Retried {
    #[step(retry = RetryPolicy::attempts(2))]
    async fn ask(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<String>, WaitError> {
        let wait = WaitFor::<HumanResponseEvent>::new()
            .prompt(InputRequiredEvent::new("still there?"))
            .timeout(Duration::from_millis(100));
        Ok(StopEvent::new(ctx.wait_for_event(wait).await?.response))
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_a_wait_timeout_waits_again() {
    let handler = Retried.run(StartEvent::new());
    let mut events = handler.stream_events();
    let mut prompts = 0;
    while let Some(ev) = events.next().await {
        if ev.is::<InputRequiredEvent>() {
            prompts += 1;
            if prompts == 2 {
                handler.send_event(HumanResponseEvent::new("yes")).unwrap();
            }
        }
    }
    assert_eq!(prompts, 2, "the second attempt asked again");
    assert_eq!(handler.await.unwrap(), "yes");
}

struct Chat;

#[workflow]
impl Chat {
    #[step]
    async fn chat(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<String>, WaitError> {
        let mut turns = Vec::new();
        for _ in 0..3 {
            let wait = WaitFor::<HumanResponseEvent>::new()
                .prompt(InputRequiredEvent::new("say something"))
                .id("turn");
            turns.push(ctx.wait_for_event(wait).await?.response);
        }
        Ok(StopEvent::new(turns.join(",")))
    }
}

#[tokio::test]
async fn one_explicit_id_used_in_a_loop_waits_each_time() {
    let handler = Chat.run(StartEvent::new());
    let mut answers = ["a", "b", "c"].into_iter();
    let prompts = answer_all(&handler, |_| {
        HumanResponseEvent::new(answers.next().unwrap())
    })
    .await;
    assert_eq!(prompts.len(), 3);
    assert_eq!(handler.await.unwrap(), "a,b,c");
}

#[tokio::test]
async fn a_targeted_answer_reaches_the_waiting_step() {
    // `Patient::ask` takes only StartEvent as input, but waits for a HumanResponseEvent.
    let handler = Patient.run(StartEvent::new());
    let mut events = handler.stream_events();
    while let Some(ev) = events.next().await {
        if ev.is::<InputRequiredEvent>() {
            handler
                .send_event_to("ask", HumanResponseEvent::new("direct"))
                .unwrap();
        }
    }
    assert_eq!(handler.await.unwrap(), "direct");
}

struct GivesUp;

#[workflow]
impl GivesUp {
    #[step]
    async fn ask(&self, ctx: &Context, _ev: StartEvent) -> StopEvent<&'static str> {
        // The step stops waiting under its own timeout and goes on working.
        let wait = WaitFor::<HumanResponseEvent>::new().prompt(InputRequiredEvent::new("quick?"));
        let _ = tokio::time::timeout(Duration::from_millis(20), ctx.wait_for_event(wait)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        StopEvent::new("worked on")
    }
}

#[tokio::test(start_paused = true)]
async fn a_dropped_wait_does_not_make_a_busy_run_look_abandoned() {
    let handler = GivesUp.run(StartEvent::new());
    let mut events = handler.stream_events();
    assert!(events.next().await.unwrap().is::<InputRequiredEvent>());
    // Past the step's own 20 ms: it no longer waits, it works.
    tokio::time::sleep(Duration::from_millis(30)).await;
    drop(handler);
    let last = events.next().await.unwrap();
    assert_eq!(
        last.downcast_ref::<StopEvent<&'static str>>()
            .map(|s| s.result),
        Some("worked on")
    );
}
