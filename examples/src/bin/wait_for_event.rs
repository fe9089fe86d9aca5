//! `wait_for_event` inside steps: one step waits for a title under a waiter id, then two
//! reviews run in parallel, each waiting for its own reviewer's answer, routed by requirement.
//! The caller answers every prompt from stdin (a terminal or a pipe).
//!
//! ```text
//! cargo run -p workflows-examples --bin wait_for_event
//! printf 'Otters hold hands\ny\nn\n' | cargo run -p workflows-examples --bin wait_for_event
//! ```

use std::io::{BufRead, Write};
use std::process::ExitCode;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use workflows::field;
use workflows::prelude::*;

/// A question for the person at the keyboard.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(input_required(response = Answer))]
struct Question {
    /// Which waiter asks: the answer carries it back.
    topic: String,
    prompt: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(response)]
struct Answer {
    topic: String,
    text: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Review {
    reviewer: String,
    title: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Verdict {
    reviewer: String,
    approved: bool,
}

struct Publishing;

#[workflow]
impl Publishing {
    /// Waits for the title (waiter id `title`), then sends one review per reviewer.
    #[step(sends(Review))]
    async fn draft(&self, ctx: &Context, _ev: StartEvent) -> Result<(), WaitError> {
        let title = ctx
            .wait_for_event(
                WaitFor::<Answer>::new()
                    .id("title")
                    .prompt(Question {
                        topic: "title".into(),
                        prompt: "Title of the post: ".into(),
                    })
                    .require(field!(Answer, topic), "title".to_owned()),
            )
            .await?;
        for reviewer in ["legal", "editor"] {
            let review = Review {
                reviewer: reviewer.into(),
                title: title.text.trim().to_owned(),
            };
            ctx.send_event(review).expect("`review` accepts reviews");
        }
        Ok(())
    }

    /// Two reviews wait at once; each answer reaches the review it names.
    #[step(num_workers = 2)]
    async fn review(&self, ctx: &Context, ev: Review) -> Result<Verdict, WaitError> {
        let answer = ctx
            .wait_for_event(
                WaitFor::<Answer>::new()
                    .prompt(Question {
                        topic: ev.reviewer.clone(),
                        prompt: format!("{}: approve \"{}\"? [y/n] ", ev.reviewer, ev.title),
                    })
                    .require(field!(Answer, topic), ev.reviewer.clone()),
            )
            .await?;
        let approved = answer.text.trim().eq_ignore_ascii_case("y");
        Ok(Verdict {
            reviewer: ev.reviewer,
            approved,
        })
    }

    #[step]
    async fn decide(&self, ctx: &Context, ev: Verdict) -> Option<StopEvent<String>> {
        let mut verdicts = ctx.collect(ev, 2)?;
        verdicts.sort_by(|a, b| a.reviewer.cmp(&b.reviewer));
        let rejected: Vec<&str> = verdicts
            .iter()
            .filter(|v| !v.approved)
            .map(|v| v.reviewer.as_str())
            .collect();
        Some(StopEvent::new(if rejected.is_empty() {
            "published".to_owned()
        } else {
            format!("held back by {}", rejected.join(" and "))
        }))
    }
}

async fn read_line(prompt: String) -> std::io::Result<String> {
    tokio::task::spawn_blocking(move || {
        print!("{prompt}");
        std::io::stdout().flush()?;
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "no more input",
            ));
        }
        Ok(line)
    })
    .await?
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let handler = Publishing.run(StartEvent::new());
    let mut events = handler.stream_events();
    while let Some(ev) = events.next().await {
        if let Some(question) = ev.downcast_ref::<Question>() {
            let text = match read_line(question.prompt.clone()).await {
                Ok(text) => text,
                Err(err) => {
                    handler.cancel_run();
                    return Err(err.into());
                }
            };
            handler.respond(
                question,
                Answer {
                    topic: question.topic.clone(),
                    text,
                },
            )?;
        }
    }
    println!("\nThe post is {}.", handler.await?);
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
