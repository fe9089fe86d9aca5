//! `server_load`: human-in-the-loop runs over HTTP against a server, all at once, and one at
//! a time. Prints one table; judges nothing.
//!
//! Each run is driven as a person's browser would: `run-nowait`, the SSE stream followed to
//! the prompt, the answer posted, the stream followed to the end. All `--runs` runs start
//! together; once every one waits for its answer the server's memory is read (the cost of a
//! waiting run with an open stream), then all are answered. Separately, `--roundtrips` runs
//! go one after the other (the latency of one person's round trip). Last, `--readers` streams
//! follow one waiting run and sit idle for `--idle` seconds: the server's CPU meanwhile is
//! what idle readers cost. Then, twice, each time on a fresh server process of the same kind,
//! `--quiet` runs are started a few at a time and followed to their prompts: once their
//! streams stay open, each run's only connection, once they and every other connection are
//! closed; the memory of a waiting run is read, and the runs are answered. (In the first
//! phase the client also holds an idle pooled connection per run started at once, as a
//! browser would, which the server's memory reflects.)
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
//!
//! `--python` measures the reference server instead (`llama-agents-server` 0.8.0 serving the
//! same number workflow on SQLite, started by `bench/python/reference_server.sh`, which makes
//! its own virtualenv), with the same client. `--compare` measures both, alternating, for
//! `--rounds` rounds, and prints one column per server (medians over the rounds) and their
//! ratio:
//!
//! ```text
//! target/release/server_load --compare --rounds 2 --runs 200 --roundtrips 20 --readers 100
//! ```

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use workflows::prelude::*;
use workflows_client::{Client, EventStream, RunRequest};

const USAGE: &str =
    "usage: server_load [--runs N] [--roundtrips N] [--readers N] [--idle SECS] [--quiet N]
       [--url URL | --server-bin PATH | --python | --compare [--rounds N]]
       [--durability power-loss|process-crash]
       [--idle-release DURATION] [--server-flag FLAG]... [--workflow NAME]";

struct Options {
    runs: usize,
    /// Runs left waiting with no stream open, on a server of their own (0: not measured).
    quiet: usize,
    roundtrips: usize,
    readers: usize,
    idle: u64,
    url: Option<String>,
    server_bin: Option<PathBuf>,
    /// Which servers to measure, in the order of one round.
    sides: Vec<Side>,
    rounds: usize,
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
        quiet: 1000,
        roundtrips: 50,
        readers: 1000,
        idle: 3,
        url: None,
        server_bin: None,
        sides: vec![Side::Ours],
        rounds: 1,
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
            "--quiet" => o.quiet = number(value()),
            "--roundtrips" => o.roundtrips = number(value()),
            "--readers" => o.readers = number(value()),
            "--idle" => o.idle = number(value()) as u64,
            "--url" => o.url = Some(value()),
            "--server-bin" => o.server_bin = Some(value().into()),
            "--python" => o.sides = vec![Side::Python],
            "--compare" => o.sides = vec![Side::Ours, Side::Python],
            "--rounds" => o.rounds = number(value()).max(1),
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

/// A server under measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// `workflows-server`.
    Ours,
    /// The reference, `llama-agents-server` 0.8.0.
    Python,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Ours => "workflows-server",
            Side::Python => "llama-agents-server",
        }
    }
}

fn spawn_server(o: &Options, side: Side) -> (Spawned, String) {
    let dir = std::env::temp_dir().join(format!(
        "wf-server-load-{}-{}",
        std::process::id(),
        crate_unique()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = match side {
        Side::Ours => {
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
            let mut command = Command::new(&bin);
            if let Some(d) = &o.durability {
                command.args(["--durability", d]);
            }
            command.args(&o.server_flags);
            command
        }
        // The script execs Python: the process measured is the server itself.
        Side::Python => Command::new(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/reference_server.sh"),
        ),
    };
    command
        .args(["--bind", "127.0.0.1:0", "--db"])
        .arg(dir.join("load.db"))
        .args(["--idle-release", &o.idle_release])
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
/// Drives one run; with `waiting`, meets the others at it once the prompt is seen (all wait),
/// and again before answering. A run that fails or stalls before its prompt still meets them
/// (after [`RUN_PATIENCE`]), so that none waits for it forever.
async fn drive(
    client: &Client,
    workflow: &str,
    waiting: Option<Arc<tokio::sync::Barrier>>,
) -> Result<Timed, String> {
    let prompted = tokio::time::timeout(RUN_PATIENCE, to_prompt(client, workflow))
        .await
        .unwrap_or_else(|_| Err(format!("no prompt within {RUN_PATIENCE:?}")));
    if let Some(barrier) = waiting {
        barrier.wait().await;
        barrier.wait().await;
    }
    let (handler_id, mut events, start) = prompted?;
    let answered = Instant::now();
    let to_end = async {
        client
            .send(&handler_id, &HumanResponseEvent::new("42"))
            .await
            .map_err(|e| e.to_string())?;
        while let Some(ev) = events.next().await {
            if ev.map_err(|e| e.to_string())?.is_terminal() {
                return Ok(());
            }
        }
        Err::<(), String>("the stream ended before the run".into())
    };
    tokio::time::timeout(RUN_PATIENCE, to_end)
        .await
        .unwrap_or_else(|_| Err(format!("the run did not end within {RUN_PATIENCE:?}")))?;
    Ok(Timed {
        start,
        answer_to_end: answered.elapsed(),
    })
}

/// Starts a run and follows its stream to the prompt: its handler id, the stream, and how
/// long the start took.
async fn to_prompt(
    client: &Client,
    workflow: &str,
) -> Result<(String, EventStream, Duration), String> {
    let asked = Instant::now();
    let run = client
        .run_nowait(workflow, RunRequest::new())
        .await
        .map_err(|e| e.to_string())?;
    let start = asked.elapsed();
    let mut events = client.events(&run.handler_id).stream();
    while let Some(ev) = events.next().await {
        let ev = ev.map_err(|e| e.to_string())?;
        if ev.is::<InputRequiredEvent>() {
            return Ok((run.handler_id, events, start));
        }
        if ev.is_terminal() {
            return Err("the run ended before its prompt".into());
        }
    }
    Err("the stream ended before the prompt".into())
}

/// How many quiet runs are being started at any moment.
const QUIET_AT_ONCE: usize = 16;

/// How long one run may take, start to end, before it counts as an error (a server that
/// loses an answer is reported, not waited on forever).
const RUN_PATIENCE: Duration = Duration::from_secs(120);

/// How long the idle-readers phase waits for its readers to see the prompt, and the end.
const READER_PATIENCE: Duration = Duration::from_secs(60);

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
    // Bounded: a server that never shows some reader the prompt is reported, not waited on.
    let mut seen = 0;
    let _ = tokio::time::timeout(READER_PATIENCE, async {
        while seen < o.readers && all_ready.recv().await.is_some() {
            seen += 1;
        }
    })
    .await;
    if seen < o.readers {
        errors.push(format!(
            "{} of {} readers saw the prompt within {READER_PATIENCE:?}",
            seen, o.readers
        ));
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
        match tokio::time::timeout(READER_PATIENCE, reader).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => errors.push(e),
            Ok(Err(e)) => errors.push(format!("a reader's task: {e}")),
            Err(_) => errors.push(format!(
                "a reader did not see the end within {READER_PATIENCE:?}"
            )),
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

/// A different number on each call, for the servers' directories.
fn crate_unique() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// What one measure of one server gave.
#[derive(Default)]
struct Figures {
    trips: Vec<Duration>,
    wall: Duration,
    starts_per_s: f64,
    starts: Vec<Duration>,
    ends: Vec<Duration>,
    cpu_per_run_us: Option<f64>,
    kb_per_waiting_run: Option<f64>,
    kb_per_streamed_run: Option<f64>,
    kb_per_quiet_run: Option<f64>,
    peak_mb: Option<f64>,
    idle_cpu_percent: Option<f64>,
    errors: Vec<String>,
}

/// Drives the server at `url` (whose process, if this program started it, is `process`).
async fn measure(o: &Options, url: &str, process: Option<&Proc>) -> Figures {
    let client = Client::new(url).expect("a server address");
    let mut f = Figures::default();

    // A first run, not counted: the reference server loses the answers of runs started
    // concurrently right after it starts (seen with 0.8.0: "No active workflow with run_id").
    if let Err(e) = drive(&client, &o.workflow, None).await {
        f.errors.push(format!("the warm-up run: {e}"));
    }
    // One at a time.
    for _ in 0..o.roundtrips {
        let began = Instant::now();
        match drive(&client, &o.workflow, None).await {
            Ok(_) => f.trips.push(began.elapsed()),
            Err(e) => f.errors.push(e),
        }
    }
    f.trips.sort();

    // All at once.
    let rss_before = process.and_then(|p| p.memory_kb("VmRSS:"));
    let cpu_before = process.and_then(Proc::cpu_seconds);
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
    // Every run waits for its answer, its stream open (or has failed).
    barrier.wait().await;
    f.starts_per_s = o.runs as f64 / began.elapsed().as_secs_f64();
    let rss_waiting = process.and_then(|p| p.memory_kb("VmRSS:"));
    barrier.wait().await;
    for task in tasks {
        match task.await.expect("a run's task") {
            Ok(t) => {
                f.starts.push(t.start);
                f.ends.push(t.answer_to_end);
            }
            Err(e) => f.errors.push(e),
        }
    }
    f.wall = began.elapsed();
    let cpu_after = process.and_then(Proc::cpu_seconds);
    f.peak_mb = process
        .and_then(|p| p.memory_kb("VmHWM:"))
        .map(|kb| kb as f64 / 1024.0);
    f.starts.sort();
    f.ends.sort();
    let runs = o.runs.max(1) as f64;
    if let (Some(a), Some(b)) = (cpu_before, cpu_after) {
        f.cpu_per_run_us = Some((b - a) / runs * 1e6);
    }
    if let (Some(a), Some(b)) = (rss_before, rss_waiting) {
        f.kb_per_waiting_run = Some(b.saturating_sub(a) as f64 / runs);
    }
    if o.readers > 0 && o.idle > 0 {
        f.idle_cpu_percent = idle_readers(&client, o, process, &mut f.errors).await;
    }
    f
}

/// Starts `o.quiet` runs on the server at `url` (a fresh process, `process`), a few at a
/// time, and follows each to its prompt; with `keep_streams` each run's stream stays open
/// and is its only connection (the client keeps no idle one), without, the streams and the
/// client's connections are closed. Reads the memory of the runs waiting so, then answers
/// them and waits for their ends. The KB per waiting run, or `None` if it could not be read.
async fn waiting_runs(
    o: &Options,
    url: &str,
    process: &Proc,
    keep_streams: bool,
    errors: &mut Vec<String>,
) -> Option<f64> {
    let no_idle = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("an HTTP client");
    let client = match keep_streams {
        true => Client::with_http_client(url, no_idle),
        false => Client::new(url),
    }
    .expect("a server address");
    if let Err(e) = drive(&client, &o.workflow, None).await {
        errors.push(format!("the warm-up run: {e}"));
    }
    let before = process.memory_kb("VmRSS:");
    // Started a few at a time, as people arrive: the figure is what a waiting run keeps,
    // not the high-water mark of a burst of connections (which the allocator keeps mapped
    // once the burst is over; the first phase shows a burst).
    let mut started = futures_util::stream::iter(0..o.quiet)
        .map(|_| {
            let client = client.clone();
            let workflow = o.workflow.clone();
            async move {
                let prompted = tokio::time::timeout(RUN_PATIENCE, to_prompt(&client, &workflow));
                prompted
                    .await
                    .unwrap_or_else(|_| Err(format!("no prompt within {RUN_PATIENCE:?}")))
            }
        })
        .buffer_unordered(QUIET_AT_ONCE);
    let mut waiting = Vec::new();
    while let Some(started) = started.next().await {
        match started {
            // Without `keep_streams`, dropping the stream closes its connection.
            Ok((id, events, _)) => waiting.push((id, keep_streams.then_some(events))),
            Err(e) => errors.push(e),
        }
    }
    drop(started);
    drop(client);
    // The server learns of a closed connection when it next looks at it; give it a moment
    // to let go of the connections' memory (a benchmark's pause, not a test's).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = process.memory_kb("VmRSS:");
    let client = Client::new(url).expect("a server address");
    for (id, _) in &waiting {
        if let Err(e) = client.send(id, &HumanResponseEvent::new("42")).await {
            errors.push(format!("answering a waiting run: {e}"));
        }
    }
    let deadline = Instant::now() + RUN_PATIENCE;
    for (id, events) in waiting {
        if let Some(mut events) = events {
            let ended = tokio::time::timeout_at(deadline.into(), async {
                while let Some(ev) = events.next().await {
                    if ev.map_err(|e| e.to_string())?.is_terminal() {
                        return Ok(());
                    }
                }
                Err("the stream ended before the run".to_owned())
            });
            if let Err(e) = ended.await.unwrap_or_else(|_| Err("no end in time".into())) {
                errors.push(format!("a waiting run after its answer: {e}"));
            }
            continue;
        }
        loop {
            match client.handler(&id).await {
                Ok(h) if h.status == workflows_client::Status::Completed => break,
                Ok(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(h) => {
                    errors.push(format!(
                        "a waiting run is {} after its answer",
                        h.status.as_str()
                    ));
                    break;
                }
                Err(e) => {
                    errors.push(format!("reading a waiting run: {e}"));
                    break;
                }
            }
        }
    }
    Some(after?.saturating_sub(before?) as f64 / o.quiet.max(1) as f64)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// Whether a bigger figure is better (a rate) or worse (a time, a cost).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
}

/// One row: a figure's median over each side's rounds, and, when there are two sides, how
/// many times better the first (ours) is than the second.
fn row(label: &str, columns: &[Vec<Option<f64>>], unit: &str, better: Better) {
    let medians: Vec<Option<f64>> = columns
        .iter()
        .map(|values| {
            let present: Vec<f64> = values.iter().flatten().copied().collect();
            (!present.is_empty()).then(|| median(&present))
        })
        .collect();
    let mut line = format!("| {label} |");
    for m in &medians {
        match m {
            Some(v) if unit.is_empty() => line.push_str(&format!(" {v:.0} |")),
            Some(v) => line.push_str(&format!(" {v:.2} {unit} |")),
            None => line.push_str(" – |"),
        }
    }
    if medians.len() > 1 {
        let ratio = match (medians[0], medians[medians.len() - 1], better) {
            (Some(ours), Some(theirs), Better::Lower) if ours > 0.0 => Some(theirs / ours),
            (Some(ours), Some(theirs), Better::Higher) if theirs > 0.0 => Some(ours / theirs),
            _ => None,
        };
        match ratio {
            Some(r) => line.push_str(&format!(" {r:.1}x |")),
            None => line.push_str(" – |"),
        }
    }
    println!("{line}");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let o = options();
    let sides: Vec<Side> = if o.url.is_some() {
        vec![Side::Ours]
    } else {
        o.sides.clone()
    };
    // Per side, the figures of each round; the servers alternate within a round.
    let mut measured: Vec<Vec<Figures>> = sides.iter().map(|_| Vec::new()).collect();
    for round in 0..o.rounds {
        for (i, side) in sides.iter().enumerate() {
            if o.rounds > 1 || sides.len() > 1 {
                eprintln!("round {} of {}: {}", round + 1, o.rounds, side.name());
            }
            let figures = match &o.url {
                Some(url) => measure(&o, url, None).await,
                None => {
                    let (spawned, url) = spawn_server(&o, *side);
                    let process = Proc(spawned.child.id());
                    let mut figures = measure(&o, &url, Some(&process)).await;
                    drop(spawned);
                    if o.quiet > 0 {
                        // Each on a server process of its own, so that neither reuses the
                        // memory the other freed.
                        for keep_streams in [true, false] {
                            let (spawned, url) = spawn_server(&o, *side);
                            let process = Proc(spawned.child.id());
                            let kb =
                                waiting_runs(&o, &url, &process, keep_streams, &mut figures.errors)
                                    .await;
                            match keep_streams {
                                true => figures.kb_per_streamed_run = kb,
                                false => figures.kb_per_quiet_run = kb,
                            }
                        }
                    }
                    figures
                }
            };
            measured[i].push(figures);
        }
    }

    let target = o
        .url
        .clone()
        .unwrap_or_else(|| "a fresh SQLite file".into());
    println!(
        "server_load: {} runs at once, {} one at a time, {} idle readers; {target}; medians of {} round(s)",
        o.runs, o.roundtrips, o.readers, o.rounds
    );
    let mut head = String::from("| figure |");
    let mut rule = String::from("|---|");
    for side in &sides {
        head.push_str(&format!(" {} |", side.name()));
        rule.push_str("---|");
    }
    if sides.len() > 1 {
        head.push_str(" ours better by |");
        rule.push_str("---|");
    }
    println!("{head}\n{rule}");
    let column = |f: &dyn Fn(&Figures) -> Option<f64>| -> Vec<Vec<Option<f64>>> {
        measured
            .iter()
            .map(|rounds| rounds.iter().map(f).collect())
            .collect()
    };
    let pct = |v: &[Duration], p: f64| (!v.is_empty()).then(|| ms(percentile(v, p)));
    row(
        "one round trip, median",
        &column(&|f| pct(&f.trips, 0.5)),
        "ms",
        Better::Lower,
    );
    row(
        "one round trip, p90",
        &column(&|f| pct(&f.trips, 0.9)),
        "ms",
        Better::Lower,
    );
    row(
        &format!("wall time, {} runs", o.runs),
        &column(&|f| Some(ms(f.wall))),
        "ms",
        Better::Lower,
    );
    row(
        "starts/s (until every run waited)",
        &column(&|f| Some(f.starts_per_s)),
        "",
        Better::Higher,
    );
    row(
        "start p50",
        &column(&|f| pct(&f.starts, 0.5)),
        "ms",
        Better::Lower,
    );
    row(
        "start p99",
        &column(&|f| pct(&f.starts, 0.99)),
        "ms",
        Better::Lower,
    );
    row(
        "answer → completed p50",
        &column(&|f| pct(&f.ends, 0.5)),
        "ms",
        Better::Lower,
    );
    row(
        "answer → completed p99",
        &column(&|f| pct(&f.ends, 0.99)),
        "ms",
        Better::Lower,
    );
    row(
        "server CPU per run",
        &column(&|f| f.cpu_per_run_us),
        "µs",
        Better::Lower,
    );
    row(
        "server memory per waiting run (stream open, burst)",
        &column(&|f| f.kb_per_waiting_run),
        "KB",
        Better::Lower,
    );
    row(
        &format!(
            "server memory per waiting run (its stream its only connection; {} runs)",
            o.quiet
        ),
        &column(&|f| f.kb_per_streamed_run),
        "KB",
        Better::Lower,
    );
    row(
        &format!(
            "server memory per waiting run (no stream; {} runs)",
            o.quiet
        ),
        &column(&|f| f.kb_per_quiet_run),
        "KB",
        Better::Lower,
    );
    row(
        "server peak RSS",
        &column(&|f| f.peak_mb),
        "MB",
        Better::Lower,
    );
    row(
        &format!("server CPU, {} idle readers of one waiting run", o.readers),
        &column(&|f| f.idle_cpu_percent),
        "% of a core",
        Better::Lower,
    );
    row(
        "errors",
        &column(&|f| Some(f.errors.len() as f64)),
        "",
        Better::Lower,
    );
    let mut failed = false;
    for (side, rounds) in sides.iter().zip(&measured) {
        for e in rounds.iter().flat_map(|f| &f.errors).take(5) {
            println!("error ({}): {e}", side.name());
        }
        // Only our server's errors fail the program: the reference's are figures.
        failed |= *side == Side::Ours && rounds.iter().any(|f| !f.errors.is_empty());
    }
    if failed {
        std::process::exit(1);
    }
}
