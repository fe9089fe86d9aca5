//! The seed's number workflow: one step asks for input, another turns the answer into the
//! result. The caller watches the event stream, asks the person at the terminal, and sends the
//! answer back into the same run.
//!
//! ```text
//! cargo run -p workflows-examples --bin human_in_the_loop
//! echo 42 | cargo run -p workflows-examples --bin human_in_the_loop
//! ```

use std::io::{BufRead, Write};

use futures_util::StreamExt;
use workflows::prelude::*;

struct NumberWorkflow;

#[workflow]
impl NumberWorkflow {
    #[step]
    async fn ask(&self, _ev: StartEvent) -> InputRequiredEvent {
        InputRequiredEvent::new("Enter a number: ")
    }

    #[step]
    async fn answer(&self, ev: HumanResponseEvent) -> Result<StopEvent<i64>, String> {
        let text = ev.response.trim();
        text.parse::<i64>()
            .map(StopEvent::new)
            .map_err(|_| format!("`{text}` is not a number"))
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
                "no input: type a number, or pipe one in",
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
    let handler = NumberWorkflow.run(StartEvent::new());
    let mut events = handler.stream_events();
    while let Some(ev) = events.next().await {
        if let Some(req) = ev.downcast_ref::<InputRequiredEvent>() {
            // This could be a websocket reply or a web form submission just as well.
            let response = match read_line(req.prefix.clone()).await {
                Ok(line) => line,
                Err(err) => {
                    handler.cancel_run();
                    return Err(err.into());
                }
            };
            handler.respond(req, HumanResponseEvent::new(response))?;
        }
    }
    let number = handler.await?;
    println!("You entered {number}; twice that is {}.", number * 2);
    Ok(())
}
