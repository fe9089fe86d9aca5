//! Fan-out and join: split a text into chunks by returning them as a list, count words in
//! parallel workers (on Tokio's blocking pool), and merge the counts in a join, which fires
//! once every chunk has reported. No step counts anything by hand.
//!
//! ```text
//! cargo run -p workflows-examples --bin fan_out [FILE]
//! ```
//! Without a file it counts a text built in.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use workflows::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Chunk {
    text: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Counted {
    counts: HashMap<String, usize>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Summary {
    chunks: usize,
    words: usize,
    top: Vec<(String, usize)>,
}

struct WordCount {
    lines_per_chunk: usize,
}

#[workflow]
impl WordCount {
    /// Splits the text: each `Chunk` of the list is routed on its own (a fan-out).
    #[step]
    async fn split(&self, ev: StartEvent) -> Result<Vec<Chunk>, String> {
        let text: String = ev.get("text").ok_or("start the run with a `text` field")?;
        let lines: Vec<&str> = text.lines().collect();
        Ok(lines
            .chunks(self.lines_per_chunk)
            .map(|c| Chunk { text: c.join("\n") })
            .collect())
    }

    /// Counts one chunk; four run at once, each on the blocking pool.
    #[step(num_workers = 4)]
    async fn count(&self, ev: Chunk) -> Result<Counted, tokio::task::JoinError> {
        let counts = tokio::task::spawn_blocking(move || {
            let mut counts = HashMap::new();
            for word in ev
                .text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                *counts.entry(word.to_lowercase()).or_insert(0) += 1;
            }
            counts
        })
        .await?;
        Ok(Counted { counts })
    }

    /// A join: fires once, when every chunk of the split has been counted, with the counts in
    /// the chunks' order.
    #[step]
    async fn merge(&self, all: Vec<Counted>) -> StopEvent<Summary> {
        let mut total: HashMap<String, usize> = HashMap::new();
        for counted in &all {
            for (word, n) in &counted.counts {
                *total.entry(word.clone()).or_insert(0) += n;
            }
        }
        let mut top: Vec<(String, usize)> = total.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let words = top.iter().map(|(_, n)| n).sum();
        top.truncate(5);
        StopEvent::new(Summary {
            chunks: all.len(),
            words,
            top,
        })
    }
}

const BUILT_IN: &str = "\
Human-in-the-loop workflows need to pause, tell the caller what input is needed,
and continue when the caller sends a response. Workflows support that with normal events.
The most direct pattern is a pair of steps: one returns an input request,
and another consumes the response. The caller watches the stream
and sends the response back into the same handler.
In a web app, the process that sees the prompt is often not the same request
that receives the answer. Snapshot the context after the prompt, store it,
and restore it when the response arrives.";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let text = match std::env::args().nth(1) {
        Some(path) => std::fs::read_to_string(path)?,
        None => BUILT_IN.to_owned(),
    };
    let summary = WordCount { lines_per_chunk: 2 }
        .run(StartEvent::new().with("text", text))
        .await?;
    println!(
        "{} words in {} chunks; most frequent:",
        summary.words, summary.chunks
    );
    for (word, n) in summary.top {
        println!("  {n:>4}  {word}");
    }
    Ok(())
}
