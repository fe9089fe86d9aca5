//! A research workflow that drafts two pieces at once and hands each to a child review
//! workflow, which asks a person to approve it. Both questions reach this program through the
//! research run's own stream, each marked with the child that asks; the answers go back
//! through the research run's handler to the child that asked.
//!
//! ```text
//! cargo run -p workflows-examples --bin child_workflows
//! printf 'y\nn\n' | cargo run -p workflows-examples --bin child_workflows
//! ```

use std::io::{BufRead, Write};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use workflows::prelude::*;

/// A draft on one topic: what the research workflow fans out.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Draft {
    topic: String,
    text: String,
}

/// A draft after its review.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Reviewed {
    topic: String,
    verdict: String,
}

/// The question a review asks a person.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(input_required(response = Approval))]
struct ApprovalNeeded {
    topic: String,
    text: String,
}

/// A person's answer to one review.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Approval {
    topic: String,
    approved: bool,
}

/// The child: asks a person to approve one draft (its start event holds the draft).
struct Review;

#[workflow]
impl Review {
    #[step]
    async fn ask(&self, ctx: &Context, ev: StartEvent) -> Result<StopEvent<bool>, WaitError> {
        let topic: String = ev.get("topic").unwrap_or_default();
        let text: String = ev.get("text").unwrap_or_default();
        let approval = ctx
            .wait_for_event(
                WaitFor::<Approval>::new()
                    .prompt(ApprovalNeeded {
                        topic: topic.clone(),
                        text,
                    })
                    // Two reviews wait at once: each takes only the answer on its topic.
                    .require(workflows::field!(Approval, topic), topic),
            )
            .await?;
        Ok(StopEvent::new(approval.approved))
    }
}

/// The parent: drafts, reviews each draft in a child run, publishes what was approved.
struct Research;

#[workflow]
impl Research {
    #[step]
    async fn draft(&self, _ev: StartEvent) -> Vec<Draft> {
        ["child workflows", "snapshots"]
            .into_iter()
            .map(|topic| Draft {
                topic: topic.to_owned(),
                text: format!("A short note on {topic}."),
            })
            .collect()
    }

    #[step(children(Review))]
    async fn review(&self, ctx: &Context, draft: Draft) -> Result<Reviewed, ChildError> {
        let start = StartEvent::new()
            .with("topic", &draft.topic)
            .with("text", &draft.text);
        let approved = ctx.run_child(Review, start).await?;
        Ok(Reviewed {
            topic: draft.topic,
            verdict: if approved { "published" } else { "dropped" }.to_owned(),
        })
    }

    #[step]
    async fn publish(&self, reviewed: Vec<Reviewed>) -> StopEvent<Vec<String>> {
        StopEvent::new(
            reviewed
                .into_iter()
                .map(|r| format!("{}: {}", r.topic, r.verdict))
                .collect(),
        )
    }
}

/// Shows `prompt` and reads one line from stdin (a terminal or a pipe).
async fn read_line(prompt: String) -> std::io::Result<String> {
    tokio::task::spawn_blocking(move || {
        print!("{prompt}");
        std::io::stdout().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if line.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "no input: answer each review with y or n",
            ));
        }
        Ok(line)
    })
    .await?
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let handler = Research.run(StartEvent::new());
    let mut events = handler.stream_events();
    while let Some(ev) = events.next().await {
        if let Some(request) = ev.downcast_ref::<ApprovalNeeded>() {
            let asker = ev.child.as_deref().unwrap_or("research");
            let prompt = format!(
                "[{asker}] approve \"{}\" ({})? [y/n] ",
                request.text, request.topic
            );
            let line = match read_line(prompt).await {
                Ok(line) => line,
                Err(err) => {
                    handler.cancel_run();
                    return Err(err.into());
                }
            };
            let approved = matches!(line.trim(), "y" | "yes");
            handler.respond(
                request,
                Approval {
                    topic: request.topic.clone(),
                    approved,
                },
            )?;
        }
    }
    for line in handler.await? {
        println!("{line}");
    }
    Ok(())
}
