//! `server_load`: human-in-the-loop runs over HTTP against a server, all at once, and one at
//! a time. Prints one table; judges nothing.
//!
//! Each run is driven as a person's browser would: `run-nowait`, the SSE stream followed to
//! the prompt, the answer posted, the stream followed to the end. All `--runs` runs start
//! together; once every one waits for its answer the server's memory is read (the cost of a
//! waiting run with an open stream), then all are answered. Separately, `--roundtrips` runs
//! go one after the other (the latency of one person's round trip). Last, `--readers` streams
//! follow one waiting run and sit idle for `--idle` seconds: the server's CPU meanwhile is
//! what idle readers cost.
//!
//! ```text
//! cargo build --release -p workflows-server -p workflows-bench
//! target/release/server_load --runs 1000 [--durability process-crash] [--server-flag ...]
//! target/release/server_load --url http://127.0.0.1:8080 --runs 200   # a server running already
//! ```
//!
//! By default it starts `workflows-server` from the directory of its own executable (so both
//! must be built with the same profile) on a fresh SQLite file in a temporary directory, and
//! reads that process's CPU time and memory from `/proc` (Linux).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use workflows::prelude::*;
use workflows_client::{Client, RunRequest};

const USAGE: &str = "usage: server_load [--runs N] [--roundtrips N] [--readers N] [--idle SECS]
       [--url URL | --server-bin PATH] [--durability power-loss|process-crash]
       [--idle-release DURATION] [--server-flag FLAG]... [--workflow NAME]";

struct Options {
    runs: usize,
    roundtrips: usize,
    readers: usize,
    idle: u64,
    url: Option<String>,
    server_bin: Option<PathBuf>,
    durability: Option<String>,
    /// How long the server keeps a waiting run in memory (`never` by default: the memory
    /// per waiting run is read with every run in memory).
    idle_release: String,
    server_flags: Vec<String>,
    workflow: String,
}

fn options() -> Options {
    let mut o = Options {
        runs: 1000,
        roundtrips: 50,
        readers: 1000,
        idle: 3,
        url: None,
        server_bin: None,
        durability: None,
        idle_release: "never".into(),
        server_flags: Vec::new(),
        workflow: "number".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next().unwrap_or_else(|| {
                eprintln!("{flag} needs a value\n{USAGE}");
                std::process::exit(2)
            })
        };
        let number = |text: String| {
            text.parse().unwrap_or_else(|_| {
                eprintln!("`{text}` is not a number\n{USAGE}");
                std::process::exit(2)
            })
        };
        match flag.as_str() {
            "--runs" => o.runs = number(value()),
            "--roundtrips" => o.roundtrips = number(value()),
            "--readers" => o.readers = number(value()),
            "--idle" => o.idle = number(value()) as u64,
            "--url" => o.url = Some(value()),
            "--server-bin" => o.server_bin = Some(value().into()),
            "--durability" => o.durability = Some(value()),
            "--idle-release" => o.idle_release = value(),
            "--server-flag" => o.server_flags.push(value()),
            "--workflow" => o.workflow = value(),
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            other => {
                eprintln!("unknown flag `{other}`\n{USAGE}");
                std::process::exit(2)
            }
        }
    }
    o
}

/// The server this program started, killed when dropped.
struct Spawned {
    child: Child,
    dir: PathBuf,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn_server(o: &Options) -> (Spawned, String) {
    let bin = o.server_bin.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .expect("this program's path")
            .with_file_name("workflows-server")
    });
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build --release -p workflows-server)",
        bin.display()
    );
    let dir = std::env::temp_dir().join(format!("wf-server-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = Command::new(&bin);
    command
        .args(["--bind", "127.0.0.1:0", "--db"])
        .arg(dir.join("load.db"))
        .args(["--idle-release", &o.idle_release]);
    if let Some(d) = &o.durability {
        command.args(["--durability", d]);
    }
    command
        .args(&o.server_flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = command.spawn().expect("the server starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let addr = loop {
        let line = lines
            .next()
            .expect("the server says where it listens")
            .unwrap();
        if let Some(addr) = line.split("http://").nth(1) {
            break addr.trim().to_owned();
        }
    };
    (Spawned { child, dir }, format!("http://{addr}"))
}

/// CPU seconds and memory of a process, from `/proc` (Linux).
struct Proc(u32);

impl Proc {
    fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0)).ok()?;
        // After the command name in parentheses: fields 14 and 15 are utime and stime.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        Some(ticks / 100.0)
    }

    fn memory_kb(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0)).ok()?;
        status
            .lines()
            .find(|l| l.starts_with(field))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }
}

/// The times of one run under load.
struct Timed {
    start: Duration,
    answer_to_end: Duration,
}

/// One run: started, followed to its prompt, then answered (once every run of the load waits,
/// when `waiting` is given: it is passed twice, before and after the memory is read) and
/// followed to its end.
async fn drive(
    client: &Client,
    workflow: &str,
    waiting: Option<Arc<tokio::sync::Barrier>>,
) -> Result<Timed, String> {
    let asked = Instant::now();
    let run = client
        .run_nowait(workflow, RunRequest::new())
        .await
        .map_err(|e| e.to_string())?;
    let start = asked.elapsed();
    let mut events = client.events(&run.handler_id).stream();
    let mut answered: Option<Instant> = None;
    let mut waiting = waiting;
    while let Some(ev) = events.next().await {
        let ev = ev.map_err(|e| e.to_string())?;
        if ev.is::<InputRequiredEvent>() && answered.is_none() {
            if let Some(barrier) = waiting.take() {
                barrier.wait().await;
                barrier.wait().await;
            }
            answered = Some(Instant::now());
            client
                .send(&run.handler_id, &HumanResponseEvent::new("42"))
                .await
                .map_err(|e| e.to_string())?;
        }
        if ev.is_terminal() {
            let answered = answered.ok_or("the run ended before its prompt")?;
            return Ok(Timed {
                start,
                answer_to_end: answered.elapsed(),
            });
        }
    }
    Err("the stream ended before the run".into())
}

/// Follows the run `handler_id` until its prompt, says so through `ready`, then follows it to
/// its end.
async fn read(
    client: Client,
    handler_id: String,
    ready: tokio::sync::mpsc::Sender<()>,
) -> Result<(), String> {
    let mut events = client.events(&handler_id).stream();
    while let Some(ev) = events.next().await {
        let ev = ev.map_err(|e| e.to_string())?;
        if ev.is::<InputRequiredEvent>() {
            let _ = ready.send(()).await;
        }
        if ev.is_terminal() {
            return Ok(());
        }
    }
    Err("a reader's stream ended before the run".into())
}

/// Opens `readers` streams on one waiting run, and reads the server's CPU time over `idle`
/// seconds while they wait: the share of a core that idle readers cost. Then answers the run
/// and waits for every reader to see its end.
async fn idle_readers(
    client: &Client,
    o: &Options,
    process: Option<&Proc>,
    errors: &mut Vec<String>,
) -> Option<f64> {
    let run = match client.run_nowait(&o.workflow, RunRequest::new()).await {
        Ok(run) => run,
        Err(e) => {
            errors.push(e.to_string());
            return None;
        }
    };
    let (ready, mut all_ready) = tokio::sync::mpsc::channel(o.readers.max(1));
    let readers: Vec<_> = (0..o.readers)
        .map(|_| tokio::spawn(read(client.clone(), run.handler_id.clone(), ready.clone())))
        .collect();
    drop(ready);
    for _ in 0..o.readers {
        if all_ready.recv().await.is_none() {
            break;
        }
    }
    let before = process.and_then(Proc::cpu_seconds);
    tokio::time::sleep(Duration::from_secs(o.idle)).await;
    let after = process.and_then(Proc::cpu_seconds);
    if let Err(e) = client
        .send(&run.handler_id, &HumanResponseEvent::new("42"))
        .await
    {
        errors.push(e.to_string());
    }
    for reader in readers {
        if let Err(e) = reader.await.expect("a reader's task") {
            errors.push(e);
        }
    }
    Some((after? - before?) / o.idle as f64 * 100.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let o = options();
    let (spawned, url) = match &o.url {
        Some(url) => (None, url.clone()),
        None => {
            let (s, url) = spawn_server(&o);
            (Some(s), url)
        }
    };
    let process = spawned.as_ref().map(|s| Proc(s.child.id()));
    let client = Client::new(&url).expect("a server address");

    // One at a time.
    let mut trips = Vec::with_capacity(o.roundtrips);
    for _ in 0..o.roundtrips {
        let began = Instant::now();
        drive(&client, &o.workflow, None)
            .await
            .expect("a round trip");
        trips.push(began.elapsed());
    }
    trips.sort();

    // All at once.
    let rss_before = process.as_ref().and_then(|p| p.memory_kb("VmRSS:"));
    let cpu_before = process.as_ref().and_then(Proc::cpu_seconds);
    let barrier = Arc::new(tokio::sync::Barrier::new(o.runs + 1));
    let began = Instant::now();
    let tasks: Vec<_> = (0..o.runs)
        .map(|_| {
            let client = client.clone();
            let workflow = o.workflow.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move { drive(&client, &workflow, Some(barrier)).await })
        })
        .collect();
    // Every run waits for its answer, its stream open.
    barrier.wait().await;
    let all_waiting = began.elapsed();
    let rss_waiting = process.as_ref().and_then(|p| p.memory_kb("VmRSS:"));
    barrier.wait().await;
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    let mut errors = Vec::new();
    for task in tasks {
        match task.await.expect("a run's task") {
            Ok(t) => {
                starts.push(t.start);
                ends.push(t.answer_to_end);
            }
            Err(e) => errors.push(e),
        }
    }
    let wall = began.elapsed();
    let cpu_after = process.as_ref().and_then(Proc::cpu_seconds);
    let peak = process.as_ref().and_then(|p| p.memory_kb("VmHWM:"));
    starts.sort();
    ends.sort();
    let idle_cpu = if o.readers > 0 && o.idle > 0 {
        idle_readers(&client, &o, process.as_ref(), &mut errors).await
    } else {
        None
    };

    let runs = o.runs as f64;
    println!(
        "server_load: {url}, {} runs at once, {} one at a time",
        o.runs, o.roundtrips
    );
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| one round trip, median | {} |",
        ms(percentile(&trips, 0.5))
    );
    println!("| one round trip, p90 | {} |", ms(percentile(&trips, 0.9)));
    println!("| wall time, {} runs | {} |", o.runs, ms(wall));
    println!(
        "| starts/s (until every run waited) | {:.0} |",
        runs / all_waiting.as_secs_f64()
    );
    println!(
        "| start p50 / p99 | {} / {} |",
        ms(percentile(&starts, 0.5)),
        ms(percentile(&starts, 0.99))
    );
    println!(
        "| answer → completed p50 / p99 | {} / {} |",
        ms(percentile(&ends, 0.5)),
        ms(percentile(&ends, 0.99))
    );
    if let (Some(a), Some(b)) = (cpu_before, cpu_after) {
        println!("| server CPU per run | {:.0} µs |", (b - a) / runs * 1e6);
    }
    if let (Some(a), Some(b)) = (rss_before, rss_waiting) {
        println!(
            "| server memory per waiting run (stream open) | {:.1} KB |",
            b.saturating_sub(a) as f64 / runs
        );
    }
    if let Some(peak) = peak {
        println!("| server peak RSS | {:.1} MB |", peak as f64 / 1024.0);
    }
    if let Some(share) = idle_cpu {
        println!(
            "| server CPU, {} idle readers of one waiting run | {share:.1} % of a core |",
            o.readers
        );
    }
    println!("| errors | {} |", errors.len());
    for e in errors.iter().take(5) {
        println!("error: {e}");
    }
    drop(spawned);
    if !errors.is_empty() {
        std::process::exit(1);
    }
}
