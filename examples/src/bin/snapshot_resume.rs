//! The seed's web-app pattern, made real: the process that shows the prompt is not the one
//! that receives the answer.
//!
//! ```text
//! # First request: run to the prompt, store the run in SQLite, hand it off, exit.
//! cargo run -p workflows-examples --bin snapshot_resume -- start
//! # Later, another process: load the run by id, resume it, send the answer, print the result.
//! cargo run -p workflows-examples --bin snapshot_resume -- answer RUN_ID 42
//! ```
//!
//! The database is `snapshots.db` in the current directory; `--db PATH` picks another file.

use std::process::ExitCode;

use futures_util::StreamExt;
use rusqlite::{Connection, OptionalExtension, params};
use workflows::Snapshot;
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
            .map(|n| StopEvent::new(n * 2))
            .map_err(|_| format!("`{text}` is not a number"))
    }
}

/// Stored runs, one row per run id.
struct Runs {
    db: Connection,
}

impl Runs {
    fn open(path: &str) -> rusqlite::Result<Self> {
        let db = Connection::open(path)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS runs (
                 run_id   TEXT PRIMARY KEY,
                 workflow TEXT NOT NULL,
                 prompt   TEXT NOT NULL,
                 snapshot TEXT NOT NULL
             )",
        )?;
        Ok(Runs { db })
    }

    fn save(&self, snapshot: &Snapshot, prompt: &str) -> rusqlite::Result<()> {
        self.db.execute(
            "INSERT OR REPLACE INTO runs (run_id, workflow, prompt, snapshot) VALUES (?1, ?2, ?3, ?4)",
            params![snapshot.run_id, snapshot.workflow, prompt, snapshot.to_json()],
        )?;
        Ok(())
    }

    fn load(&self, run_id: &str) -> rusqlite::Result<Option<String>> {
        self.db
            .query_row(
                "SELECT snapshot FROM runs WHERE run_id = ?1",
                [run_id],
                |row| row.get(0),
            )
            .optional()
    }

    fn remove(&self, run_id: &str) -> rusqlite::Result<()> {
        self.db
            .execute("DELETE FROM runs WHERE run_id = ?1", [run_id])?;
        Ok(())
    }
}

/// First request: run until the prompt, store the run, hand it off.
async fn start(runs: &Runs) -> Result<(), Box<dyn std::error::Error>> {
    let handler = NumberWorkflow.run(StartEvent::new());
    let mut events = handler.stream_events();
    while let Some(ev) = events.next().await {
        if let Some(req) = ev.downcast_ref::<InputRequiredEvent>() {
            let snapshot = handler.snapshot().await?;
            runs.save(&snapshot, &req.prefix)?;
            // Nobody will answer this in-memory run: the answer goes to the stored one.
            handler.cancel_run();
            println!(
                "run {} is waiting: {}",
                snapshot.run_id,
                req.prefix.trim_end()
            );
            println!(
                "answer it with: snapshot_resume answer {} <number>",
                snapshot.run_id
            );
        }
    }
    Ok(())
}

/// Later request: load the run, resume it, deliver the answer, print the result.
async fn answer(
    runs: &Runs,
    run_id: &str,
    response: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let Some(text) = runs.load(run_id)? else {
        return Err(format!(
            "no stored run with id {run_id}; start one with `snapshot_resume start`"
        )
        .into());
    };
    let snapshot = Snapshot::from_json(&text)?;
    let handler = NumberWorkflow.runner().resume(snapshot)?;
    handler.send_event(HumanResponseEvent::new(response))?;
    let result = handler.await?;
    runs.remove(run_id)?;
    println!("run {run_id} finished: {result}");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let db = match args.iter().position(|a| a == "--db") {
        Some(i) if i + 1 < args.len() => {
            let path = args.remove(i + 1);
            args.remove(i);
            path
        }
        _ => "snapshots.db".to_owned(),
    };
    let outcome = match Runs::open(&db) {
        Err(err) => Err(err.into()),
        Ok(runs) => match args
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["start"] => start(&runs).await,
            ["answer", run_id, response] => answer(&runs, run_id, response).await,
            _ => Err("usage: snapshot_resume [--db PATH] start | answer RUN_ID NUMBER".into()),
        },
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
