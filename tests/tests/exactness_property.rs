//! Property: a snapshot is a consistent cut, and the engine's own effects happen exactly once
//! across any chain of restores.
//!
//! One workflow, shaped by a random plan in its start event: `split` fans jobs out to two
//! workers in segments (a segment's sends inside one `ctx.once` body or outside any, to every
//! step or to `work` by name, with yields between two sends, a stream write after each
//! segment, sometimes a wait for a keyed answer); `work` counts its delivery in a `once`,
//! may wait for a keyed answer (`require_path`, in a `once` body or not) or for any `Nod` (no
//! requirement), writes its progress to the stream, sends a note (in a `once` body or not),
//! and fails a planned number of times under a retry policy with exponential back-off, or
//! always, for the failure step `rescue` to recover; `join` collects the results by count,
//! `notes` the notes by count, and `finish` fans in by types with `collect_events`.
//!
//! Each plan runs uninterrupted, and again snapshotted one to three times at random moments
//! (after the k-th stream event, or when steps have passed k checkpoints, any or of one kind:
//! the step asks for the snapshot and goes on, so the cut often falls while it is between two
//! sends), each time cancelled and resumed from the snapshot's JSON (a snapshot of the running
//! run, or of its end after a cancel), answering from the snapshot the waits whose prompts the
//! old run published, on a current-thread and a multi-thread runtime. Both runs must give the
//! result a model computes from the plan, and:
//!
//! - every sent or returned event reaches exactly one invocation: each receiving step counts
//!   its input in a `once` body, and the fan-ins by count would close early with a duplicate
//!   (a lost event would hang them);
//! - every `once` body runs exactly once;
//! - the stream, stitched from each run's events before its cut and the last run's events,
//!   holds every prompt, progress report, stage and the stop event once, numbered without a
//!   gap or a repeat;
//! - nothing hangs: every await is under a timeout.
//!
//! The counters live in the run's typed state and are bumped inside `once` bodies: a counter
//! and the `once` record standing for it are in a snapshot together or not at all. (A static
//! counter would also count what a cancelled run did between its snapshot and its end.)
//!
//! `PROPTEST_CASES` sets the number of cases per runtime (default 128). `EXACTNESS_COVERAGE=1`
//! prints how often the cuts hit each situation.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use futures_util::StreamExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::timeout;
use workflows::prelude::*;
use workflows::snapshot::{EffectKind, WaiterRecord};
use workflows::{RunStatus, SendError, Snapshot, SnapshotError};

/// Each run takes milliseconds: only a hang reaches this.
const LIMIT: Duration = Duration::from_secs(5);
/// Executions of `work` allowed by its retry policy.
const ATTEMPTS: u32 = 3;
/// What any `Nod` answers: the same for every waiter, whichever nod reaches it.
const NOD: u32 = 500;

// ---------------------------------------------------------------------------------------------
// The plan

/// How a worker asks for its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Ask {
    No,
    /// A `HumanResponseEvent` whose `item` field is the job's id.
    Keyed,
    /// Any `Nod`: a wait without requirements.
    Nod,
    /// As `Keyed`, inside a `once` body.
    KeyedInOnce,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Item {
    value: u32,
    ask: Ask,
    /// Sent with `send_event_to("work", ..)` rather than `send_event`.
    targeted: bool,
    /// Yields of `split` after sending it.
    gap: u8,
    /// Failed attempts before one succeeds.
    transient: u32,
    /// Fails every attempt; `rescue` recovers.
    fatal: bool,
    /// Yields of `work` between its stream write and its note.
    yields: u8,
    /// `work` sends its note inside a `once` body: the first attempt's note only.
    note_in_once: bool,
}

impl Item {
    fn attempts(&self) -> u32 {
        if self.fatal {
            ATTEMPTS
        } else {
            self.transient + 1
        }
    }

    /// The attempts that send a note.
    fn noting(&self) -> std::ops::RangeInclusive<u32> {
        1..=if self.note_in_once {
            1
        } else {
            self.attempts()
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Segment {
    /// The segment's sends happen inside one `ctx.once` body.
    once: bool,
    /// `split` waits for a keyed answer after the segment.
    wait: bool,
    items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Plan {
    segments: Vec<Segment>,
}

impl Plan {
    /// Every item with its id.
    fn items(&self) -> impl Iterator<Item = (u32, &Item)> {
        self.segments
            .iter()
            .flat_map(|s| &s.items)
            .enumerate()
            .map(|(id, item)| (id as u32, item))
    }

    fn notes(&self) -> u32 {
        self.items()
            .map(|(_, item)| item.noting().count() as u32)
            .sum()
    }
}

// ---------------------------------------------------------------------------------------------
// The workflow

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Job {
    id: u32,
    /// Jobs in all.
    n: u32,
    /// Notes in all.
    notes: u32,
    item: Item,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Done {
    id: u32,
    n: u32,
    result: u32,
    attempts: u32,
    rescued: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Note {
    id: u32,
    attempt: u32,
    total: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Tally {
    segments: u32,
    items: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct AllDone {
    results: Vec<(u32, u32, u32, bool)>,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct NotesDone {
    notes: Vec<(u32, u32)>,
}

/// Written to the stream after each segment.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Stage {
    stage: u32,
}

/// Written to the stream by each attempt of `work`.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Progress {
    id: u32,
    attempt: u32,
}

/// The answer to a wait without requirements.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(response)]
struct Nod {
    value: u32,
}

#[derive(Debug, OneOf)]
enum Fin {
    Tally(Tally),
    AllDone(AllDone),
    NotesDone(NotesDone),
}

/// How many times each `once` body ran, by a key naming it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Book {
    runs: BTreeMap<String, u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Outcome {
    /// `(id, result, attempts, rescued)` by id.
    results: Vec<(u32, u32, u32, bool)>,
    /// `(id, attempt)` of every note.
    notes: Vec<(u32, u32)>,
    segments: u32,
    items: u32,
    runs: BTreeMap<String, u32>,
}

/// Counts one execution of a `once` body.
fn tally(ctx: &Context<Book>, key: String) {
    ctx.edit_state(|book| *book.runs.entry(key).or_default() += 1);
}

/// Suspends the step `yields` times. A fresh invocation's first poll is inline and the loop
/// polls it again at once, so one yield there rarely leaves room for a cut: two do.
async fn pause(yields: u8) {
    for _ in 0..yields {
        tokio::task::yield_now().await;
    }
}

fn keyed_answer(id: u32) -> u32 {
    id * 7 + 3
}

struct Exact;

#[workflow(state = Book)]
impl Exact {
    #[step(sends(Job))]
    async fn split(&self, ctx: &Context<Book>, ev: StartEvent) -> Result<Tally, String> {
        let plan: Plan = ev.get("plan").ok_or("no plan")?;
        let (n, notes) = (plan.items().count() as u32, plan.notes());
        let mut next = 0;
        for (s, segment) in plan.segments.iter().enumerate() {
            checkpoint(ctx, "split: segment");
            let jobs: Vec<Job> = segment
                .items
                .iter()
                .map(|item| {
                    next += 1;
                    Job {
                        id: next - 1,
                        n,
                        notes,
                        item: item.clone(),
                    }
                })
                .collect();
            if segment.once {
                let key = format!("segment {s}");
                ctx.once(&key, async {
                    let sent = send_jobs(ctx, &jobs, "split: sent in once").await;
                    tally(ctx, key.clone());
                    sent
                })
                .await?;
            } else {
                send_jobs(ctx, &jobs, "split: sent").await?;
            }
            ctx.write_event_to_stream(Stage { stage: s as u32 });
            if segment.wait {
                checkpoint(ctx, "split: before wait");
                let go = ctx
                    .wait_for_event(
                        WaitFor::<HumanResponseEvent>::new()
                            .prompt(InputRequiredEvent::new(format!("split {s}")))
                            .require_path("split", s as u32),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                if go.response != "go" {
                    return Err(format!("segment {s} got {go:?}"));
                }
                checkpoint(ctx, "split: after wait");
            }
        }
        Ok(Tally {
            segments: plan.segments.len() as u32,
            items: n,
        })
    }

    #[step(
        num_workers = 2,
        retry = RetryPolicy::attempts(ATTEMPTS).exponential(Duration::from_millis(1), 2.0, Duration::from_millis(4)),
        sends(Note)
    )]
    async fn work(&self, ctx: &Context<Book>, job: Job) -> Result<Done, String> {
        let id = job.id;
        let attempt = ctx.retry_info().attempt;
        checkpoint(ctx, "work: start");
        ctx.once("got", async { tally(ctx, format!("got {id}")) })
            .await;
        checkpoint(ctx, "work: counted");
        let extra = match job.item.ask {
            Ask::No => 0,
            Ask::Keyed => {
                let answer = ctx
                    .wait_for_event(
                        WaitFor::<HumanResponseEvent>::new()
                            .prompt(InputRequiredEvent::new(format!("item {id}")))
                            .require_path("item", id),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                answer.response.parse::<u32>().map_err(|e| e.to_string())?
            }
            Ask::Nod => {
                let nod = ctx
                    .wait_for_event(
                        WaitFor::<Nod>::new().prompt(InputRequiredEvent::new(format!("nod {id}"))),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                nod.value
            }
            Ask::KeyedInOnce => {
                ctx.once("ask", async {
                    pause(2).await;
                    checkpoint(ctx, "work: asking in once");
                    let answer = ctx
                        .wait_for_event(
                            WaitFor::<HumanResponseEvent>::new()
                                .prompt(InputRequiredEvent::new(format!("item {id}")))
                                .require_path("item", id),
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                    tally(ctx, format!("asked {id}"));
                    answer.response.parse::<u32>().map_err(|e| e.to_string())
                })
                .await?
            }
        };
        checkpoint(ctx, "work: answered");
        ctx.write_event_to_stream(Progress { id, attempt });
        pause(job.item.yields).await;
        checkpoint(ctx, "work: before note");
        let note = Note {
            id,
            attempt,
            total: job.notes,
        };
        if job.item.note_in_once {
            ctx.once("note", async {
                let sent = ctx.send_event(note).map_err(|e| e.to_string());
                pause(2).await;
                tally(ctx, format!("sent note {id}"));
                sent
            })
            .await?;
        } else {
            ctx.send_event(note).map_err(|e| e.to_string())?;
        }
        checkpoint(ctx, "work: after note");
        pause(2).await;
        if job.item.fatal || attempt <= job.item.transient {
            return Err(format!("item {id} failed attempt {attempt}"));
        }
        Ok(Done {
            id,
            n: job.n,
            result: job.item.value * 3 + extra,
            attempts: attempt,
            rescued: false,
        })
    }

    /// The failure step: recovers a job whose attempts all failed.
    #[step]
    async fn rescue(&self, ctx: &Context<Book>, failed: StepFailed) -> Option<Done> {
        if failed.step != "work" {
            return None;
        }
        let job: Job = serde_json::from_value(failed.input).ok()?;
        let id = job.id;
        ctx.once("rescue", async { tally(ctx, format!("rescue {id}")) })
            .await;
        checkpoint(ctx, "rescue");
        pause(2).await;
        Some(Done {
            id,
            n: job.n,
            result: 1000 + id,
            attempts: failed.attempts,
            rescued: failed.error == format!("item {id} failed attempt {ATTEMPTS}"),
        })
    }

    #[step]
    async fn notes(&self, ctx: &Context<Book>, note: Note) -> Option<NotesDone> {
        let (id, attempt, total) = (note.id, note.attempt, note.total);
        ctx.once("noted", async {
            tally(ctx, format!("note {id}/{attempt}"))
        })
        .await;
        let all = ctx.collect(note, total as usize)?;
        let mut notes: Vec<(u32, u32)> = all.iter().map(|n| (n.id, n.attempt)).collect();
        notes.sort_unstable();
        Some(NotesDone { notes })
    }

    /// Fan-in by count.
    #[step]
    async fn join(&self, ctx: &Context<Book>, done: Done) -> Option<AllDone> {
        let (id, n) = (done.id, done.n as usize);
        ctx.once("joined", async { tally(ctx, format!("done {id}")) })
            .await;
        let all = ctx.collect(done, n)?;
        checkpoint(ctx, "join: collected");
        pause(2).await;
        let mut results: Vec<(u32, u32, u32, bool)> = all
            .iter()
            .map(|d| (d.id, d.result, d.attempts, d.rescued))
            .collect();
        results.sort_unstable();
        Some(AllDone { results })
    }

    /// Fan-in by types.
    #[step]
    async fn finish(&self, ctx: &Context<Book>, ev: Fin) -> Option<StopEvent<Outcome>> {
        let ev: Box<dyn AnyEvent> = match ev {
            Fin::Tally(e) => Box::new(e),
            Fin::AllDone(e) => Box::new(e),
            Fin::NotesDone(e) => Box::new(e),
        };
        let arrived = format!("fin {}", ev.name());
        ctx.once("arrived", async { tally(ctx, arrived) }).await;
        let expected = [
            EventInfo::of::<Tally>(),
            EventInfo::of::<AllDone>(),
            EventInfo::of::<NotesDone>(),
        ];
        let all = ctx.collect_events(ev, &expected)?;
        let tally: Tally = all[0].downcast_ref::<Tally>()?.clone();
        let done: AllDone = all[1].downcast_ref::<AllDone>()?.clone();
        let notes: NotesDone = all[2].downcast_ref::<NotesDone>()?.clone();
        drop(all);
        let runs = ctx.state(|book| book.runs.clone());
        checkpoint(ctx, "finish: collected");
        pause(2).await;
        Some(StopEvent::new(Outcome {
            results: done.results,
            notes: notes.notes,
            segments: tally.segments,
            items: tally.items,
            runs,
        }))
    }
}

/// Sends `jobs` one by one, a checkpoint after each and the planned yields between them.
async fn send_jobs(ctx: &Context<Book>, jobs: &[Job], label: &'static str) -> Result<(), String> {
    for job in jobs {
        let sent = if job.item.targeted {
            ctx.send_event_to("work", job.clone())
        } else {
            ctx.send_event(job.clone())
        };
        sent.map_err(|e| e.to_string())?;
        checkpoint(ctx, label);
        pause(job.item.gap).await;
    }
    Ok(())
}

/// What the plan must give: the outcome, and the stream's events (described, sorted).
fn model(plan: &Plan) -> (Outcome, Vec<String>) {
    let mut results = Vec::new();
    let mut notes = Vec::new();
    let mut runs = BTreeMap::new();
    let mut stream = vec!["StopEvent".to_owned()];
    for arrived in ["fin Tally", "fin AllDone", "fin NotesDone"] {
        runs.insert(arrived.to_owned(), 1);
    }
    for (s, segment) in plan.segments.iter().enumerate() {
        stream.push(format!("stage {s}"));
        if segment.wait {
            stream.push(format!("prompt split {s}"));
        }
        if segment.once {
            runs.insert(format!("segment {s}"), 1);
        }
    }
    for (id, item) in plan.items() {
        runs.insert(format!("got {id}"), 1);
        runs.insert(format!("done {id}"), 1);
        let extra = match item.ask {
            Ask::No => 0,
            Ask::Keyed => {
                stream.push(format!("prompt item {id}"));
                keyed_answer(id)
            }
            Ask::KeyedInOnce => {
                stream.push(format!("prompt item {id}"));
                runs.insert(format!("asked {id}"), 1);
                keyed_answer(id)
            }
            Ask::Nod => {
                stream.push(format!("prompt nod {id}"));
                NOD
            }
        };
        for attempt in 1..=item.attempts() {
            stream.push(format!("progress {id}/{attempt}"));
        }
        for attempt in item.noting() {
            notes.push((id, attempt));
            runs.insert(format!("note {id}/{attempt}"), 1);
        }
        if item.note_in_once {
            runs.insert(format!("sent note {id}"), 1);
        }
        if item.fatal {
            results.push((id, 1000 + id, ATTEMPTS, true));
            runs.insert(format!("rescue {id}"), 1);
        } else {
            results.push((id, item.value * 3 + extra, item.attempts(), false));
        }
    }
    notes.sort_unstable();
    stream.sort_unstable();
    let outcome = Outcome {
        results,
        notes,
        segments: plan.segments.len() as u32,
        items: plan.items().count() as u32,
        runs,
    };
    (outcome, stream)
}

// ---------------------------------------------------------------------------------------------
// Cuts from inside steps

type PendingSnapshot = Pin<Box<dyn Future<Output = Result<Snapshot, SnapshotError>> + Send>>;

/// What the driver of one chain shares with its steps, found by the run's id.
#[derive(Default)]
struct Probe {
    /// The handler of the chain's live run.
    handler: Mutex<Option<Arc<Handler<Outcome>>>>,
    /// The armed cut: the checkpoint it waits for (any, or one by its label), how many such
    /// checkpoints are still to pass before it, and whether it cancels the run first.
    armed: Mutex<Option<(Option<&'static str>, u32, bool)>>,
    /// What a step did at the cut, and where.
    pending: Mutex<Option<(Request, &'static str)>>,
    ready: Notify,
}

/// What a step did at a cut.
enum Request {
    /// Asked for a snapshot of the running run.
    Snapshot(PendingSnapshot),
    /// Cancelled the run, whose snapshot is then the one of its end.
    Cancelled,
}

static PROBES: LazyLock<Mutex<HashMap<String, Arc<Probe>>>> = LazyLock::new(Default::default);
static RUNS: AtomicU64 = AtomicU64::new(0);

/// A point in a step where the armed cut may fall: the step asks for a snapshot (one poll
/// puts the request in the run's inbox), or cancels the run, and goes on. The loop answers
/// it once the step's current poll is over, so the cut falls at the step's next await
/// (between two sends, in a `once` body, in a back-off elsewhere) or after the step returned.
fn checkpoint(ctx: &Context<Book>, at: &'static str) {
    let Some(probe) = PROBES.lock().unwrap().get(ctx.run_id()).cloned() else {
        return;
    };
    let cancel_first = {
        let mut armed = probe.armed.lock().unwrap();
        let cancel_first = match *armed {
            Some((label, _, _)) if label.is_some_and(|label| label != at) => return,
            Some((_, 0, cancel_first)) => cancel_first,
            Some((label, n, cancel_first)) => {
                *armed = Some((label, n - 1, cancel_first));
                return;
            }
            None => return,
        };
        *armed = None;
        cancel_first
    };
    let Some(handler) = probe.handler.lock().unwrap().clone() else {
        return;
    };
    let request = if cancel_first {
        handler.cancel_run();
        Request::Cancelled
    } else {
        let mut pending: PendingSnapshot = Box::pin(async move { handler.snapshot().await });
        let mut cx = std::task::Context::from_waker(Waker::noop());
        Request::Snapshot(match pending.as_mut().poll(&mut cx) {
            Poll::Ready(taken) => Box::pin(std::future::ready(taken)),
            Poll::Pending => pending,
        })
    };
    *probe.pending.lock().unwrap() = Some((request, at));
    probe.ready.notify_one();
}

// ---------------------------------------------------------------------------------------------
// The driver

/// Where the driver cuts the live run next, and whether it cancels the run first (then the
/// snapshot is the one of the run's end) or snapshots it running and then cancels it.
#[derive(Clone, Copy, Debug)]
struct Cut {
    when: When,
    cancel_first: bool,
}

#[derive(Clone, Copy, Debug)]
enum When {
    /// After reading this many more events of its stream (0: at once).
    Stream(usize),
    /// When steps have passed this many more checkpoints.
    Checkpoint(u32),
    /// When steps have passed this many more checkpoints labelled `LABELS[.0]`.
    At(usize, u32),
}

/// Every checkpoint's label.
const LABELS: [&str; 14] = [
    "split: segment",
    "split: sent",
    "split: sent in once",
    "split: before wait",
    "split: after wait",
    "work: start",
    "work: counted",
    "work: answered",
    "work: before note",
    "work: after note",
    "work: asking in once",
    "rescue",
    "join: collected",
    "finish: collected",
];

/// What a chain gave: the result and the stitched stream (described, sorted).
type Ran = (Outcome, Vec<String>);

fn describe(ev: &StreamEvent) -> String {
    if let Some(stage) = ev.downcast_ref::<Stage>() {
        format!("stage {}", stage.stage)
    } else if let Some(p) = ev.downcast_ref::<Progress>() {
        format!("progress {}/{}", p.id, p.attempt)
    } else if let Some(prompt) = ev.downcast_ref::<InputRequiredEvent>() {
        format!("prompt {}", prompt.prefix)
    } else {
        ev.name().to_owned()
    }
}

fn split_answer(segment: u32) -> HumanResponseEvent {
    HumanResponseEvent::new("go").with("split", segment)
}

fn item_answer(id: u32) -> HumanResponseEvent {
    HumanResponseEvent::new(keyed_answer(id).to_string()).with("item", id)
}

/// Sends a human's answer; a nod finding no waiter was taken by a nod sent before (one nod
/// answers every waiting nod).
fn answer(handler: &Handler<Outcome>, probe: &Probe, answer: Answer) -> Result<(), String> {
    let sent = match answer {
        Answer::Split(s) => handler.send_event(split_answer(s)),
        Answer::Item(id) => handler.send_event(item_answer(id)),
        Answer::Nod => match handler.send_event(Nod { value: NOD }) {
            Err(SendError::NoReceiver { .. }) => Ok(()),
            other => other,
        },
    };
    // A run that a step is cancelling at a cut takes no more answers: the waits they were
    // for are in its snapshot and answered after the resume. A run that ended on its own says
    // why when awaited.
    let ending = || handler.is_done() || probe.pending.lock().unwrap().is_some();
    match sent {
        Err(_) if ending() => Ok(()),
        Err(e) => Err(format!("answering {answer:?}: {e}")),
        Ok(()) => Ok(()),
    }
}

#[derive(Clone, Copy, Debug)]
enum Answer {
    Split(u32),
    Item(u32),
    Nod,
}

fn prompt_answer(prefix: &str) -> Result<Answer, String> {
    let parsed = prefix
        .split_once(' ')
        .and_then(|(kind, n)| Some((kind, n.parse::<u32>().ok()?)));
    match parsed {
        Some(("split", s)) => Ok(Answer::Split(s)),
        Some(("item", id)) => Ok(Answer::Item(id)),
        Some(("nod", _)) => Ok(Answer::Nod),
        _ => Err(format!("unexpected prompt {prefix:?}")),
    }
}

fn waiter_answer(waiter: &WaiterRecord) -> Result<Answer, String> {
    if waiter.event == "Nod" {
        return Ok(Answer::Nod);
    }
    let [req] = waiter.requirements.as_slice() else {
        return Err(format!("unexpected waiter {waiter:?}"));
    };
    let n = req.value.as_u64().ok_or("a numeric requirement")? as u32;
    match req.path.as_str() {
        "split" => Ok(Answer::Split(n)),
        "item" => Ok(Answer::Item(n)),
        _ => Err(format!("unexpected waiter {waiter:?}")),
    }
}

/// Runs `plan` to its end, answering every prompt, cut at `cuts` in turn: each cut snapshots
/// the run and cancels it (or cancels it and takes the snapshot of its end), and resumes the
/// snapshot's JSON in a new run.
async fn drive(plan: &Plan, cuts: &[Cut], coverage: &mut Coverage) -> Result<Ran, String> {
    let run_id = format!("exact-{}", RUNS.fetch_add(1, Ordering::Relaxed));
    let probe = Arc::new(Probe::default());
    PROBES.lock().unwrap().insert(run_id.clone(), probe.clone());
    let ran = drive_chain(plan, cuts, &run_id, &probe, coverage).await;
    PROBES.lock().unwrap().remove(&run_id);
    ran
}

async fn drive_chain(
    plan: &Plan,
    cuts: &[Cut],
    run_id: &str,
    probe: &Probe,
    coverage: &mut Coverage,
) -> Result<Ran, String> {
    let runner = Exact.runner();
    let start = StartEvent::new().with("plan", plan);
    let mut handler = Arc::new(runner.run_with(start, RunOptions::new().run_id(run_id)));
    *probe.handler.lock().unwrap() = Some(handler.clone());
    // The chain's stream: (seq, event), from each run before its cut, then the last run's.
    let mut stream: Vec<(u64, String)> = Vec::new();
    let mut first_seq = 0;
    let mut cuts = cuts.iter().copied();
    let mut resumes = 0;
    loop {
        let mut stream_cut = None;
        let mut cancel_first = false;
        if let Some(cut) = cuts.next() {
            cancel_first = cut.cancel_first;
            let armed = match cut.when {
                When::Stream(k) => {
                    stream_cut = Some(k);
                    None
                }
                When::Checkpoint(k) => Some((None, k, cancel_first)),
                When::At(label, k) => Some((Some(LABELS[label]), k, cancel_first)),
            };
            *probe.armed.lock().unwrap() = armed;
        }
        let mut events = handler.stream_events();
        let mut read = 0;
        let cut: Option<(Snapshot, &'static str)> = loop {
            if stream_cut == Some(read) {
                stream_cut = None;
                if cancel_first {
                    handler.cancel_run();
                }
                let snapshot = timeout(LIMIT, handler.snapshot())
                    .await
                    .map_err(|_| "a snapshot is not answered")?
                    .map_err(|e| e.to_string())?;
                if snapshot.status.is_resumable() {
                    break Some((snapshot, "stream"));
                }
                continue;
            }
            let (request, at) = tokio::select! {
                ev = timeout(LIMIT, events.next()) => {
                    let ev = ev.map_err(|_| format!("the run hangs after {read} events"))?;
                    match ev {
                        Some(ev) => {
                            if let Some(prompt) = ev.downcast_ref::<InputRequiredEvent>() {
                                answer(&handler, probe, prompt_answer(&prompt.prefix)?)?;
                            }
                            read += 1;
                            continue;
                        }
                        // The run ended: on its own, or cancelled by a step at a cut.
                        None => match probe.pending.lock().unwrap().take() {
                            Some(request) => request,
                            None => break None,
                        },
                    }
                }
                () = probe.ready.notified() => match probe.pending.lock().unwrap().take() {
                    Some(request) => request,
                    None => continue,
                },
            };
            let pending = match request {
                Request::Snapshot(pending) => pending,
                Request::Cancelled => Box::pin(handler.snapshot()),
            };
            let snapshot = timeout(LIMIT, pending)
                .await
                .map_err(|_| format!("a snapshot asked for at {at:?} is not answered"))?
                .map_err(|e| e.to_string())?;
            if snapshot.status.is_resumable() {
                break Some((snapshot, at));
            }
        };
        *probe.armed.lock().unwrap() = None;
        let Some((snapshot, at)) = cut else {
            break;
        };
        handler.cancel_run();
        let old: Vec<StreamEvent> = timeout(LIMIT, handler.stream_events().collect())
            .await
            .map_err(|_| "a cancelled run does not end")?;
        stream.extend(
            old.iter()
                .filter(|ev| ev.seq >= first_seq && ev.seq < snapshot.next_stream_seq)
                .map(|ev| (ev.seq, describe(ev))),
        );
        first_seq = snapshot.next_stream_seq;
        coverage.record(plan, &snapshot, at);
        // Through JSON, as another process would read it.
        let snapshot = Snapshot::from_json(&snapshot.to_json()).map_err(|e| e.to_string())?;
        let waiting: Vec<Answer> = snapshot
            .waiters
            .iter()
            .map(waiter_answer)
            .collect::<Result<_, _>>()?;
        *probe.handler.lock().unwrap() = None;
        probe.pending.lock().unwrap().take();
        handler = Arc::new(runner.resume(snapshot).map_err(|e| e.to_string())?);
        *probe.handler.lock().unwrap() = Some(handler.clone());
        resumes += 1;
        // Their prompts were published before the cut and are not published again.
        for pending in waiting {
            answer(&handler, probe, pending)?;
        }
    }
    if resumes > 1 {
        coverage.chains += 1;
    }
    let last: Vec<StreamEvent> = timeout(LIMIT, handler.stream_events().collect())
        .await
        .map_err(|_| "an ended run's stream does not end")?;
    stream.extend(
        last.iter()
            .filter(|ev| ev.seq >= first_seq)
            .map(|ev| (ev.seq, describe(ev))),
    );
    *probe.handler.lock().unwrap() = None;
    probe.pending.lock().unwrap().take();
    let handler = Arc::try_unwrap(handler).map_err(|_| "the handler is still shared")?;
    let outcome = timeout(LIMIT, handler)
        .await
        .map_err(|_| "the ended run's handler does not resolve")?
        .map_err(|e| format!("the run failed: {e}"))?;

    stream.sort_by_key(|(seq, _)| *seq);
    let seqs: Vec<u64> = stream.iter().map(|(seq, _)| *seq).collect();
    if !seqs.iter().copied().eq(0..seqs.len() as u64) {
        return Err(format!("stream numbers with a gap or a repeat: {stream:?}"));
    }
    let mut events: Vec<String> = stream.into_iter().map(|(_, ev)| ev).collect();
    events.sort_unstable();
    Ok((outcome, events))
}

// ---------------------------------------------------------------------------------------------
// Coverage: how often the cuts hit each situation

#[derive(Debug, Default)]
struct Coverage {
    cases: u32,
    cuts: u32,
    /// Cases resumed more than once.
    chains: u32,
    /// Cuts resumed from the snapshot of a cancelled run.
    cancelled: u32,
    /// Cuts by where they were asked for (`stream`, or a checkpoint).
    asked_at: BTreeMap<&'static str, u32>,
    /// `split` suspended with some of a segment's sends done and some to do.
    between_sends: u32,
    /// `split` suspended inside a `once` body that has sent.
    inside_once: u32,
    /// `split` suspended in a wait.
    split_waiting: u32,
    /// A worker in flight with engine effects in its log.
    worker_with_effects: u32,
    /// An invocation in flight whose wait was answered (it runs again past it).
    answered_in_flight: u32,
    /// A retry back-off in progress.
    backoff: u32,
    /// A retry (attempt > 1) in flight.
    retry: u32,
    /// A failure queued for, or being handled by, the failure step.
    failure: u32,
    /// Waiters pending.
    waiters: u32,
    /// Events queued for a busy step.
    queued: u32,
    /// Fan-in buffers partly filled.
    buffers: u32,
    /// A fan-in step in flight with its batch collected.
    collected: u32,
}

impl Coverage {
    fn record(&mut self, plan: &Plan, snapshot: &Snapshot, at: &'static str) {
        self.cuts += 1;
        self.cancelled += u32::from(snapshot.status == RunStatus::Cancelled);
        *self.asked_at.entry(at).or_default() += 1;
        let count = |hit: bool, counter: &mut u32| *counter += u32::from(hit);
        for inv in &snapshot.invocations {
            let waiting = snapshot.waiters.iter().any(|w| w.invocation == inv.number);
            if inv.step == "split" {
                count(waiting, &mut self.split_waiting);
                // Walk the plan's effects of `split` to where its log ends.
                let logged = inv.effects.len();
                let mut pos = 0;
                for (s, segment) in plan.segments.iter().enumerate() {
                    let n = segment.items.len();
                    if logged <= pos + n {
                        let sent = logged - pos;
                        let last_is_send =
                            inv.effects.last().map(|e| e.kind) == Some(EffectKind::Send);
                        count(
                            sent > 0 && sent < n && last_is_send,
                            &mut self.between_sends,
                        );
                        let key = format!("segment {s}");
                        count(
                            segment.once && sent > 0 && !inv.once.contains_key(&key),
                            &mut self.inside_once,
                        );
                        break;
                    }
                    pos += n + 1 + usize::from(segment.wait);
                }
            }
            count(
                inv.step == "work" && !inv.effects.is_empty(),
                &mut self.worker_with_effects,
            );
            count(
                !inv.resolved.is_empty() && !waiting,
                &mut self.answered_in_flight,
            );
            count(inv.retry_in_ms.is_some(), &mut self.backoff);
            count(inv.attempt > 1, &mut self.retry);
            count(inv.failure.is_some(), &mut self.failure);
            count(!inv.collected.is_empty(), &mut self.collected);
        }
        count(
            snapshot.queues.iter().any(|q| q.failure.is_some()),
            &mut self.failure,
        );
        count(!snapshot.waiters.is_empty(), &mut self.waiters);
        count(!snapshot.queues.is_empty(), &mut self.queued);
        count(!snapshot.collect.is_empty(), &mut self.buffers);
    }

    fn add(&mut self, other: Coverage) {
        self.cases += other.cases;
        self.cuts += other.cuts;
        self.chains += other.chains;
        self.cancelled += other.cancelled;
        for (at, n) in other.asked_at {
            *self.asked_at.entry(at).or_default() += n;
        }
        self.between_sends += other.between_sends;
        self.inside_once += other.inside_once;
        self.split_waiting += other.split_waiting;
        self.worker_with_effects += other.worker_with_effects;
        self.answered_in_flight += other.answered_in_flight;
        self.backoff += other.backoff;
        self.retry += other.retry;
        self.failure += other.failure;
        self.waiters += other.waiters;
        self.queued += other.queued;
        self.buffers += other.buffers;
        self.collected += other.collected;
    }
}

// ---------------------------------------------------------------------------------------------
// The property

fn item() -> impl Strategy<Value = Item> {
    let ask = prop_oneof![
        4 => Just(Ask::No),
        2 => Just(Ask::Keyed),
        2 => Just(Ask::Nod),
        2 => Just(Ask::KeyedInOnce),
    ];
    let transient = prop_oneof![4 => Just(0_u32), 2 => Just(1), 1 => Just(2)];
    (
        (0_u32..50, ask, any::<bool>(), 0_u8..3),
        (
            transient,
            proptest::bool::weighted(0.2),
            0_u8..3,
            any::<bool>(),
        ),
    )
        .prop_map(
            |((value, ask, targeted, gap), (transient, fatal, yields, note_in_once))| Item {
                value,
                ask,
                targeted,
                gap,
                transient,
                fatal,
                yields,
                note_in_once,
            },
        )
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        proptest::collection::vec(item(), 1..7),
        proptest::collection::vec((any::<bool>(), proptest::bool::weighted(0.3)), 1..4),
    )
        .prop_map(|(items, segments)| {
            let count = segments.len();
            let segments = segments
                .into_iter()
                .enumerate()
                .map(|(s, (once, wait))| Segment {
                    once,
                    wait,
                    items: items[s * items.len() / count..(s + 1) * items.len() / count].to_vec(),
                })
                .collect();
            Plan { segments }
        })
}

/// A checkpoint's index in `LABELS`, the rarely reached ones (a handler, a fan-in's last
/// step) more often.
fn label() -> impl Strategy<Value = usize> {
    let rare = ["rescue", "join: collected", "finish: collected"];
    let weights = LABELS.map(|label| if rare.contains(&label) { 3 } else { 1 });
    proptest::sample::select(
        (0..LABELS.len())
            .flat_map(|i| std::iter::repeat_n(i, weights[i]))
            .collect::<Vec<_>>(),
    )
}

fn cuts() -> impl Strategy<Value = Vec<Cut>> {
    let cut = prop_oneof![
        2 => (0_usize..12).prop_map(When::Stream),
        2 => (0_u32..40).prop_map(When::Checkpoint),
        3 => (label(), 0_u32..3).prop_map(|(label, k)| When::At(label, k)),
    ];
    let cut = (cut, proptest::bool::weighted(0.25))
        .prop_map(|(when, cancel_first)| Cut { when, cancel_first });
    proptest::collection::vec(cut, 1..4)
}

fn check(
    plan: &Plan,
    cuts: &[Cut],
    multi_thread: bool,
    coverage: &mut Coverage,
) -> Result<(), TestCaseError> {
    let runtime = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .unwrap();
    let (expected, expected_stream) = model(plan);
    let (whole, chain) = runtime.block_on(async {
        let whole = drive(plan, &[], coverage).await;
        let chain = drive(plan, cuts, coverage).await;
        (whole, chain)
    });
    coverage.cases += 1;
    let (whole, whole_stream) =
        whole.map_err(|e| TestCaseError::fail(format!("uninterrupted: {e}")))?;
    prop_assert_eq!(&whole, &expected, "the uninterrupted run");
    prop_assert_eq!(
        &whole_stream,
        &expected_stream,
        "the uninterrupted run's stream"
    );
    let (chain, chain_stream) = chain.map_err(|e| TestCaseError::fail(format!("restored: {e}")))?;
    prop_assert_eq!(&chain, &expected, "the restored run");
    prop_assert_eq!(
        &chain_stream,
        &expected_stream,
        "the restored chain's stream"
    );
    Ok(())
}

fn run_property(multi_thread: bool) {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(128);
    let defaults = Config::default();
    let config = Config {
        cases,
        // A hang costs `LIMIT` per try: bound the shrinking of one (1 minute unless
        // PROPTEST_MAX_SHRINK_TIME says otherwise).
        max_shrink_time: match defaults.max_shrink_time {
            0 => 60_000,
            set => set,
        },
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/exactness_property.proptest-regressions"
        )))),
        ..defaults
    };
    let mut runner = TestRunner::new(config);
    let coverage = Mutex::new(Coverage::default());
    let outcome = runner.run(&(plan(), cuts()), |(plan, cuts)| {
        let mut local = Coverage::default();
        let checked = check(&plan, &cuts, multi_thread, &mut local);
        coverage.lock().unwrap().add(local);
        checked
    });
    if let Err(failure) = outcome {
        panic!("{failure}\n{runner}");
    }
    let coverage = coverage.into_inner().unwrap();
    if std::env::var_os("EXACTNESS_COVERAGE").is_some() {
        eprintln!("multi_thread: {multi_thread}: {coverage:#?}");
    }
    // The cuts must keep reaching the situations the property is about. Each of these is
    // expected well over ten times in a hundred cases.
    if cases >= 100 {
        let reached = [
            (
                "a cut while `split` is between two sends or in a `once` body",
                coverage.between_sends + coverage.inside_once,
            ),
            ("a cut during a retry back-off", coverage.backoff),
            ("a cut with a retry in flight", coverage.retry),
            (
                "a cut with a wait pending",
                coverage.waiters + coverage.split_waiting,
            ),
            (
                "a cut with an answered wait in flight",
                coverage.answered_in_flight,
            ),
            ("a chain of two or more restores", coverage.chains),
            ("a resume from a cancelled run", coverage.cancelled),
        ];
        for (what, hits) in reached {
            assert!(
                hits > 0,
                "{what} never happened in {cases} cases: {coverage:#?}"
            );
        }
    }
}

#[test]
fn effects_happen_once_across_restores_on_a_current_thread_runtime() {
    run_property(false);
}

#[test]
fn effects_happen_once_across_restores_on_a_multi_thread_runtime() {
    run_property(true);
}
