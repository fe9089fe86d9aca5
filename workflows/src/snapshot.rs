//! Snapshots: a run's whole context as versioned JSON, to store and resume elsewhere.
//!
//! # Format (version 4)
//!
//! A [`Snapshot`] serializes to one JSON object:
//!
//! | field | holds |
//! |---|---|
//! | `version` | the format version, `4` (versions 1, without effect logs, 2, without fan-outs, and 3, without child runs, are still read) |
//! | `workflow` | the workflow's name ([`Workflow::NAME`](crate::Workflow::NAME)) |
//! | `fingerprint` | a hash of the workflow's step table (names, workers, accepted, emitted and sent events, joins and fan-outs, declared child workflows) |
//! | `run_id` | the run's id, kept by the resumed run |
//! | `status` | `running`, `cancelled`, `timed_out`, `completed` or `failed` |
//! | `state` | the typed state as JSON ([`RawJson`]: kept as text, parsed on resume) |
//! | `store` | the dynamic JSON store, an object ([`RawJson`] too) |
//! | `queues` | events waiting for a free worker, per step, with the fan-out branches they descend from (`scope`) |
//! | `invocations` | step invocations started and not finished, with their input (one event, or a join's list), scope and recoveries, attempt, retry back-off (and, for a policy that stops on time, how long it has been trying), answered waits, `once` results, the engine effects the attempt has performed, and its child runs ([`ChildRecord`]: each running child's own snapshot, or how it ended) |
//! | `fan_outs` | the fan-outs still open: the step whose list opened each, its scope, and what each join bound to it has collected |
//! | `unpaired` | events that reached a step taking several events and wait for their partners |
//! | `collect` | the fan-in buffers of each step |
//! | `waiters` | the waits in progress, with their ids, requirements and remaining timeouts |
//! | `next_invocation`, `next_stream_seq`, `next_fan_out`, `next_child` | counters that continue in the resumed run |
//!
//! Events are stored as `{"name": ..., "data": ...}` and found again by name in the
//! [registry](crate::registry), so every event type a snapshot holds must be registered
//! (non-generic types with `#[derive(Event)]` are).
//!
//! The records are plain data that a program may inspect, for instance to list what a stored
//! run waits for:
//!
//! ```
//! use workflows::{RunStatus, Snapshot};
//!
//! let stored = r#"{"version":1,"workflow":"Review","fingerprint":"0","run_id":"r-1",
//!     "status":"running","state":null,"waiters":[{"id":"approve-7","invocation":3,
//!     "step":"approve","event":"Decision","requirements":[{"path":"request_id","value":7}]}]}"#;
//! let snapshot = Snapshot::from_json(stored).unwrap();
//! assert_eq!(snapshot.status, RunStatus::Running);
//! let waiting: Vec<(&str, &str)> =
//!     snapshot.waiters.iter().map(|w| (w.id.as_str(), w.event.as_str())).collect();
//! assert_eq!(waiting, [("approve-7", "Decision")]);
//! assert_eq!(snapshot.waiters[0].requirements[0].value, 7);
//! ```
//!
//! # What a snapshot guarantees
//!
//! A snapshot is a consistent cut: it reflects one instant of the run, taken by the run's control
//! loop between two polls of its steps, after the loop has taken in every message sent before
//! that instant. So every event that any step has sent, returned or written to the stream
//! before the cut is in it exactly once (queued, held by a waiter's answer, in a collect
//! buffer, or already consumed by an invocation that finished), and every `once` result in it
//! has the effects of its body in it.
//!
//! A step invocation in flight at the cut runs again from its start after a resume, with its
//! original input. What it does again is then split in two:
//!
//! - **Engine effects happen exactly once.** Each invocation's attempt records, in order, the
//!   engine effects it performs: events sent ([`Context::send_event`](crate::Context::send_event),
//!   [`send_event_to`](crate::Context::send_event_to)), events written to the stream
//!   ([`write_event_to_stream`](crate::Context::write_event_to_stream)) and waits begun
//!   ([`wait_for_event`](crate::Context::wait_for_event), whose prompt is published once). The
//!   log is in the snapshot (`effects` of each invocation). When the invocation runs again, its
//!   first effects are matched against the log, one by one, and not performed again; only
//!   those past the log happen. An effect that differs from the recorded one at the same
//!   position (another kind, event type or target) fails the run with
//!   [`WorkflowError::NonDeterministic`](crate::WorkflowError::NonDeterministic), naming the
//!   step, the position and both effects, instead of letting the run diverge silently. The
//!   event a step returns is routed as it finishes, so it is never in flight at a cut.
//! - **The user's own effects happen at least once**, unless wrapped in
//!   [`Context::once`](crate::Context::once): an HTTP call or an e-mail before the cut runs
//!   again. A `once` body that ran before the cut is skipped, and so are the engine effects it
//!   performed.
//!
//! - **Child runs start once.** A child run ([`Context::run_child`](crate::Context::run_child))
//!   live at the cut is in its parent's snapshot as its own snapshot, taken in the same
//!   instant; the parent's step, running again, resumes it where it was. A child that had
//!   ended is recorded with its result (or its failure), which the step gets again without
//!   the child running again.
//!
//! A retry after an error is a new attempt, as in the Python library: its effects happen
//! afresh (the failed attempt's effects stand), and the log starts empty. `once` results,
//! collected batches and the results of child runs carry over to the retry.
//!
//! # Versioning rule
//!
//! A reader accepts every version up to its own and rejects newer ones with
//! [`ResumeError::NewerVersion`]. A format change that an older reader would misread takes a
//! new version number; fields are only added with defaults, never renamed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use crate::raw_json::RawJson;
use crate::{StepInfo, wait::Requirement};

/// The snapshot format version this build writes and the newest it reads.
///
/// Version 2 added the effect log (`effects`, `once_effects`) of invocations: a version 1
/// reader would ignore it and repeat effects, so the version went up. Version 1 snapshots are
/// read as invocations without a log (their effects happen again, at least once).
///
/// Version 4 added child runs (`children` of an invocation, `next_child`): a version 3 reader
/// would ignore them and run a finished child again.
pub const SNAPSHOT_VERSION: u32 = 4;

/// How the run stood when the snapshot was taken.
///
/// ```
/// use workflows::RunStatus;
/// assert!(RunStatus::Cancelled.is_resumable());
/// assert!(!RunStatus::Completed.is_resumable());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Still running (or waiting for input).
    Running,
    /// Cancelled; resumable, as it was at the cancel.
    Cancelled,
    /// Timed out; resumable, as it was at the timeout.
    TimedOut,
    /// Ended with its result; not resumable.
    Completed,
    /// Ended with an error; not resumable.
    Failed,
}

impl RunStatus {
    /// Whether a run in this status can be resumed.
    pub fn is_resumable(self) -> bool {
        matches!(
            self,
            RunStatus::Running | RunStatus::Cancelled | RunStatus::TimedOut
        )
    }
}

/// An event as a snapshot stores it: its registered name and its JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// [`Event::NAME`](crate::Event::NAME).
    pub name: String,
    /// The event as JSON.
    pub data: Value,
}

/// What an invocation handles, as a snapshot stores it: one event, or the list a join fires
/// with (a JSON array).
///
/// ```
/// use workflows::{StoredEvent, StoredInput};
///
/// let one: StoredInput = serde_json::from_str(r#"{"name": "Page", "data": 1}"#).unwrap();
/// assert_eq!(one.events()[0].name, "Page");
/// let batch: StoredInput = serde_json::from_str(r#"[{"name": "Page", "data": 1}]"#).unwrap();
/// assert!(matches!(batch, StoredInput::Batch(ref evs) if evs.len() == 1));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StoredInput {
    /// One event.
    One(StoredEvent),
    /// A join's events, in the order the join receives them.
    Batch(Vec<StoredEvent>),
}

impl StoredInput {
    /// The events: one, or the batch's.
    pub fn events(&self) -> &[StoredEvent] {
        match self {
            StoredInput::One(ev) => std::slice::from_ref(ev),
            StoredInput::Batch(events) => events,
        }
    }
}

impl From<StoredEvent> for StoredInput {
    fn from(ev: StoredEvent) -> Self {
        StoredInput::One(ev)
    }
}

/// One branch of a fan-out that a piece of work descends from: the fan-out's number in the
/// run and the element's position in its list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchRecord {
    /// The fan-out's number.
    pub fan_out: u64,
    /// The element's position, from 0.
    pub element: u32,
}

/// A fan-out still open: a list some invocation returned whose branches have work left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FanOutRecord {
    /// Its number in the run.
    pub id: u64,
    /// The step that returned the list.
    pub step: String,
    /// The branches that step's invocation descended from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scope: Vec<BranchRecord>,
    /// The recoveries on that invocation's way (failure step → count).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recoveries: BTreeMap<String, u32>,
    /// What each join bound to it has collected so far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub joins: Vec<JoinRecord>,
}

/// What one join has collected from one fan-out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinRecord {
    /// The join step.
    pub step: String,
    /// Whether it has fired already (a `take` join fires before its fan-out ends).
    #[serde(default)]
    pub fired: bool,
    /// The events collected, in arrival order, each with the element it descends from.
    #[serde(default)]
    pub events: Vec<JoinedEvent>,
}

/// An event a join has collected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinedEvent {
    /// The fan-out element it descends from.
    pub element: u32,
    /// The event.
    pub event: StoredEvent,
}

/// An event that reached a step taking several events and waits for its partners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnpairedEvent {
    /// The step.
    pub step: String,
    /// The event.
    pub event: StoredEvent,
    /// The fan-out branches it descends from, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scope: Vec<BranchRecord>,
    /// How many times each failure step recovered on its way (failure step → count).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recoveries: BTreeMap<String, u32>,
}

/// An event waiting in a step's queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedEvent {
    /// The step it waits for.
    pub step: String,
    /// The event (or, for a join, its list).
    pub event: StoredInput,
    /// The fan-out branches it descends from, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scope: Vec<BranchRecord>,
    /// How many times each failure step recovered on its way (failure step → count).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recoveries: BTreeMap<String, u32>,
    /// For a `StepFailed` event: the failure it reports, which ends the run unless the
    /// handler recovers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// For a `StepFailed` event: the number of the invocation that failed, shared by the
    /// copies offered to several failure steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_of: Option<u64>,
    /// For a `StepFailed` event: whether another failure step has recovered from it already.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failure_recovered: bool,
}

/// A step invocation that had started and not finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvocationRecord {
    /// The invocation's number in the run (`seq` in snapshots of version 1).
    #[serde(alias = "seq")]
    pub number: u64,
    /// The step.
    pub step: String,
    /// The event it handles (or, for a join, its list).
    pub input: StoredInput,
    /// The fan-out branches it descends from, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scope: Vec<BranchRecord>,
    /// How many times each failure step recovered on its way (failure step → count).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recoveries: BTreeMap<String, u32>,
    /// The attempt in progress (from 1).
    pub attempt: u32,
    /// The previous attempt's error.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Milliseconds left of a retry back-off in progress.
    #[serde(default)]
    pub retry_in_ms: Option<u64>,
    /// Milliseconds since its first attempt began, for a step whose retry policy stops on
    /// time (so that the stop counts from there after a resume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tried_for_ms: Option<u64>,
    /// Answered waits: waiter id → the answer.
    #[serde(default)]
    pub resolved: BTreeMap<String, StoredEvent>,
    /// Waits that timed out: waiter id → their timeout in milliseconds.
    #[serde(default)]
    pub timed_out: BTreeMap<String, u64>,
    /// Results recorded by `ctx.once`.
    #[serde(default)]
    pub once: Map<String, Value>,
    /// Batches its collect calls returned: call number (from 0) → the events.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub collected: BTreeMap<u32, Vec<StoredEvent>>,
    /// For a failure step: the failure it handles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// For a failure step: the number of the invocation that failed (see
    /// [`QueuedEvent::failure_of`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_of: Option<u64>,
    /// For a failure step: whether another failure step has recovered already.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failure_recovered: bool,
    /// The engine effects the attempt in progress has performed, in order; when it runs
    /// again after a resume they are recognised and not performed again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<EffectRecord>,
    /// For each `once` key completed in the attempt in progress: how many of `effects` its
    /// body performed (skipped along with the body when the step runs again).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub once_effects: BTreeMap<String, u32>,
    /// The child runs the invocation started ([`Context::run_child`](crate::Context::run_child)),
    /// by call, in the order of its calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildRecord>,
}

/// A child run an invocation started: where it is, and how it stands.
///
/// ```
/// use workflows::snapshot::{ChildRecord, ChildState};
///
/// let done = ChildRecord {
///     call: 0,
///     workflow: "Review".into(),
///     path: "Review/0".into(),
///     state: ChildState::Completed { result: serde_json::json!("approved") },
///     inbox: Vec::new(),
/// };
/// let json = serde_json::to_value(&done).unwrap();
/// assert_eq!(json["state"]["completed"]["result"], "approved");
/// assert_eq!(serde_json::from_value::<ChildRecord>(json).unwrap(), done);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildRecord {
    /// Which `run_child` call of the invocation's attempt started it (from 0).
    pub call: u32,
    /// The child workflow's name.
    pub workflow: String,
    /// The child's path in the parent's stream ([`StreamEvent::child`](crate::StreamEvent)).
    pub path: String,
    /// Whether it runs, and how it ended.
    pub state: ChildState,
    /// For a running child read from a snapshot whose step has not run again yet: the events
    /// sent to it since, which it gets when it resumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inbox: Vec<StoredEvent>,
}

impl ChildRecord {
    /// The child's path from the top run, given its parent's (`None` for the top run).
    fn path_under(&self, parent: Option<&str>) -> String {
        match parent {
            Some(parent) => format!("{parent}/{}", self.path),
            None => self.path.clone(),
        }
    }
}

/// How a child run stands in its parent's snapshot.
///
/// Externally tagged (`{"running": {"snapshot": ...}}`): the nested snapshot holds raw JSON,
/// which a tag read first would have to buffer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildState {
    /// Still running: its own snapshot, resumed when the parent's step runs again.
    Running {
        /// The child's snapshot (its own version, workflow and fingerprint).
        snapshot: Box<Snapshot>,
    },
    /// Ended with its result, which the step gets again without the child running again.
    Completed {
        /// The child's result as JSON.
        result: Value,
    },
    /// Ended without its result; the step gets the error again.
    Failed {
        /// How it ended.
        error: ChildFailure,
    },
}

/// Why a child run ended without its result, as a snapshot keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildFailure {
    /// [`RunStatus::Failed`], [`RunStatus::Cancelled`] or [`RunStatus::TimedOut`].
    pub status: RunStatus,
    /// The error's text.
    pub message: String,
    /// For a failed or panicked step: its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// For a failed or panicked step: how many times it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Whether the step panicked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub panicked: bool,
    /// For a timeout: the timeout, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// For a timeout: the steps still running.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active_steps: Vec<String>,
}

/// What kind of engine effect an [`EffectRecord`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EffectKind {
    /// An event sent with `send_event` or `send_event_to`.
    Send,
    /// An event written to the stream with `write_event_to_stream`.
    Stream,
    /// A wait begun with `wait_for_event` (its prompt, if any, is published once).
    Wait,
    /// A child run started with `run_child` (`event` holds the child workflow's name).
    Child,
}

/// One engine effect an invocation performed: see the [module documentation](self).
///
/// ```
/// use workflows::snapshot::{EffectKind, EffectRecord};
///
/// let sent = EffectRecord { kind: EffectKind::Send, event: "Job".into(), target: Some("work".into()) };
/// assert_eq!(sent.to_string(), "send `Job` to step `work`");
/// let json = serde_json::to_string(&sent).unwrap();
/// assert_eq!(json, r#"{"kind":"send","event":"Job","target":"work"}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectRecord {
    /// What the step did.
    pub kind: EffectKind,
    /// The name of the event sent, written or waited for.
    pub event: String,
    /// For a send to one step: that step's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl std::fmt::Display for EffectRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        describe_effect(f, self.kind, &self.event, self.target.as_deref())
    }
}

/// How an effect reads in errors: "send `Job` to step `work`".
pub(crate) fn describe_effect(
    f: &mut std::fmt::Formatter<'_>,
    kind: EffectKind,
    event: &str,
    target: Option<&str>,
) -> std::fmt::Result {
    match (kind, target) {
        (EffectKind::Send, None) => write!(f, "send `{event}` to every step that accepts it"),
        (EffectKind::Send, Some(step)) => write!(f, "send `{event}` to step `{step}`"),
        (EffectKind::Stream, _) => write!(f, "write `{event}` to the stream"),
        (EffectKind::Wait, _) => write!(f, "wait for `{event}`"),
        (EffectKind::Child, _) => write!(f, "run child workflow `{event}`"),
    }
}

/// Which buffer of a step a collect buffer is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferName {
    /// The buffer of `ctx.collect::<E>`, by the event's name.
    Type(String),
    /// A named buffer of `ctx.collect_events` (`"default"`) or `ctx.collect_events_in`.
    Named(String),
}

/// The events a step has collected so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectBuffer {
    /// The step.
    pub step: String,
    /// Which of its buffers.
    pub buffer: BufferName,
    /// The buffered events, in arrival order.
    pub events: Vec<BufferedEvent>,
}

/// One buffered event, with the invocation and collect call that buffered it (so that a
/// re-run of that invocation does not buffer it twice).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BufferedEvent {
    /// The invocation's number.
    pub invocation: u64,
    /// Which of its collect calls (from 0).
    pub call: u32,
    /// The event.
    pub event: StoredEvent,
}

/// A wait in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaiterRecord {
    /// The waiter id.
    pub id: String,
    /// Where the answer goes in the invocation's memo (the id, or the id and its occurrence
    /// when one attempt waits under the same id more than once).
    #[serde(default)]
    pub memo_key: Option<String>,
    /// The waiting invocation's number.
    pub invocation: u64,
    /// The waiting step.
    pub step: String,
    /// The name of the awaited event type.
    pub event: String,
    /// What the answer must match.
    #[serde(default)]
    pub requirements: Vec<Requirement>,
    /// The wait's timeout, in milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Milliseconds left before it times out.
    #[serde(default)]
    pub remaining_ms: Option<u64>,
    /// The prompt the wait published, with its sequence number in the run's stream: a
    /// request open while the wait lasts (none when another wait under the same id published
    /// it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<RequestRecord>,
}

/// An input request a run published, with its place in the run's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Its sequence number in the run's stream.
    pub seq: u64,
    /// The request.
    pub event: StoredEvent,
}

/// An input request a run (or a child run of it) published that nobody has answered yet:
/// see [`Snapshot::open_requests`].
#[derive(Debug, Clone, PartialEq)]
pub struct OpenRequest {
    /// Its sequence number in the run's stream.
    pub seq: u64,
    /// The path of the child run that asked, if one did.
    pub child: Option<String>,
    /// The request.
    pub event: StoredEvent,
    /// The name of the event type that answers it: for a wait's prompt, the type the wait
    /// takes; else the request's response type ([`Event::RESPONSE`](crate::Event::RESPONSE)).
    pub response: Option<String>,
    /// What the answer must match (a wait's requirements).
    pub requirements: Vec<Requirement>,
    /// For a wait's prompt: the waiter id.
    pub waiter_id: Option<String>,
}

/// A run's whole context: see the [module documentation](self) for the format.
///
/// ```
/// use futures_util::StreamExt;
/// use workflows::prelude::*;
/// use workflows::Snapshot;
///
/// struct NumberWorkflow;
///
/// #[workflow]
/// impl NumberWorkflow {
///     #[step]
///     async fn ask(&self, _ev: StartEvent) -> InputRequiredEvent {
///         InputRequiredEvent::new("Enter a number: ")
///     }
///
///     #[step]
///     async fn answer(&self, ev: HumanResponseEvent) -> StopEvent<String> {
///         StopEvent::new(ev.response)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // First request: run to the prompt, store the snapshot, hand the run off.
/// let handler = NumberWorkflow.run(StartEvent::new());
/// let mut events = handler.stream_events();
/// let mut stored = String::new();
/// while let Some(ev) = events.next().await {
///     if ev.is::<InputRequiredEvent>() {
///         stored = handler.snapshot().await?.to_json();
///         handler.cancel_run();
///     }
/// }
///
/// // Later, maybe in another process: restore and answer.
/// let snapshot = Snapshot::from_json(&stored)?;
/// let handler = NumberWorkflow.runner().resume(snapshot)?;
/// handler.send_event(HumanResponseEvent::new("42"))?;
/// assert_eq!(handler.await?, "42");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The format version ([`SNAPSHOT_VERSION`]).
    pub version: u32,
    /// The workflow's name.
    pub workflow: String,
    /// A hash of the workflow's step table.
    pub fingerprint: String,
    /// The run's id.
    pub run_id: String,
    /// How the run stood.
    pub status: RunStatus,
    /// The typed state, as JSON text.
    pub state: RawJson,
    /// The dynamic store: a JSON object, as text.
    #[serde(default = "empty_object")]
    pub store: RawJson,
    /// Events waiting in step queues.
    #[serde(default)]
    pub queues: Vec<QueuedEvent>,
    /// Invocations started and not finished.
    #[serde(default)]
    pub invocations: Vec<InvocationRecord>,
    /// Fan-in buffers.
    #[serde(default)]
    pub collect: Vec<CollectBuffer>,
    /// Fan-outs with work left, in the order they opened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fan_outs: Vec<FanOutRecord>,
    /// Events waiting for their partners at steps taking several events, in arrival order
    /// per step and type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpaired: Vec<UnpairedEvent>,
    /// Waits in progress.
    #[serde(default)]
    pub waiters: Vec<WaiterRecord>,
    /// The number the next invocation gets.
    #[serde(default)]
    pub next_invocation: u64,
    /// The sequence number the next stream event gets.
    #[serde(default)]
    pub next_stream_seq: u64,
    /// The number the next fan-out gets.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub next_fan_out: u64,
    /// The number the next child run gets (its path's last part).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub next_child: u64,
    /// Input requests steps returned that nobody has answered yet, oldest first (the prompts
    /// of waits in progress are with their `waiters`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<RequestRecord>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn empty_object() -> RawJson {
    RawJson::from_text("{}").expect("`{}` is JSON")
}

#[derive(Deserialize)]
struct VersionOnly {
    version: Option<Value>,
}

impl Snapshot {
    /// The snapshot as compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a snapshot holds only JSON values")
    }

    /// The input requests the run, and its running child runs, published and nobody has
    /// answered yet, in stream order: the prompts of its waits in progress, and the requests
    /// its steps returned that no event of their response type has been sent in for since.
    /// What a person would answer to let the run go on.
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use workflows::prelude::*;
    ///
    /// struct Quiz;
    ///
    /// #[workflow]
    /// impl Quiz {
    ///     #[step]
    ///     async fn ask(&self, _ev: StartEvent) -> InputRequiredEvent {
    ///         InputRequiredEvent::new("2 + 2? ")
    ///     }
    ///
    ///     #[step]
    ///     async fn check(&self, ev: HumanResponseEvent) -> StopEvent<bool> {
    ///         StopEvent::new(ev.response == "4")
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let handler = Quiz.run(StartEvent::new());
    /// handler.stream_events().next().await; // the request
    /// let open = handler.snapshot().await.unwrap().open_requests();
    /// assert_eq!(open.len(), 1);
    /// assert_eq!((open[0].seq, open[0].event.name.as_str()), (0, "InputRequiredEvent"));
    /// assert_eq!(open[0].response.as_deref(), Some("HumanResponseEvent"));
    /// handler.send_event(HumanResponseEvent::new("4")).unwrap();
    /// assert!(handler.await.unwrap());
    /// # }
    /// ```
    pub fn open_requests(&self) -> Vec<OpenRequest> {
        let mut open = Vec::new();
        self.collect_requests(None, &mut open);
        open.sort_by_key(|r| r.seq);
        open
    }

    fn collect_requests(&self, child: Option<&str>, into: &mut Vec<OpenRequest>) {
        for waiter in &self.waiters {
            if let Some(prompt) = &waiter.prompt {
                into.push(OpenRequest {
                    seq: prompt.seq,
                    child: child.map(str::to_owned),
                    event: prompt.event.clone(),
                    response: Some(waiter.event.clone()),
                    requirements: waiter.requirements.clone(),
                    waiter_id: Some(waiter.id.clone()),
                });
            }
        }
        for request in &self.requests {
            let response = crate::registry::info_of(&request.event.name)
                .and_then(|info| info.response)
                .map(str::to_owned);
            into.push(OpenRequest {
                seq: request.seq,
                child: child.map(str::to_owned),
                event: request.event.clone(),
                response,
                requirements: Vec::new(),
                waiter_id: None,
            });
        }
        for invocation in &self.invocations {
            for record in &invocation.children {
                if let ChildState::Running { snapshot } = &record.state {
                    snapshot.collect_requests(Some(&record.path_under(child)), into);
                }
            }
        }
    }

    /// Parses a snapshot, telling a truncated or malformed text and a newer format apart.
    ///
    /// ```
    /// use workflows::{ResumeError, Snapshot};
    ///
    /// assert!(matches!(Snapshot::from_json("{\"version\": 1, \"workf"), Err(ResumeError::Truncated { .. })));
    /// assert!(matches!(Snapshot::from_json("[1, 2]"), Err(ResumeError::Malformed { .. })));
    /// assert!(matches!(
    ///     Snapshot::from_json("{\"version\": 99}"),
    ///     Err(ResumeError::NewerVersion { found: 99, supported: 4 })
    /// ));
    /// ```
    pub fn from_json(text: &str) -> Result<Snapshot, ResumeError> {
        // One parse when all is well; only a failure looks at the version to explain itself.
        let error = match serde_json::from_str::<Snapshot>(text) {
            Ok(snapshot) if snapshot.version <= SNAPSHOT_VERSION => return Ok(snapshot),
            Ok(snapshot) => {
                return Err(ResumeError::NewerVersion {
                    found: snapshot.version,
                    supported: SNAPSHOT_VERSION,
                });
            }
            Err(error) => error,
        };
        if error.is_eof() {
            return Err(ResumeError::Truncated {
                message: error.to_string(),
            });
        }
        let version = serde_json::from_str::<VersionOnly>(text)
            .ok()
            .and_then(|peek| peek.version)
            .and_then(|v| v.as_u64());
        match version {
            Some(found) if found > u64::from(SNAPSHOT_VERSION) => Err(ResumeError::NewerVersion {
                found: found.min(u64::from(u32::MAX)) as u32,
                supported: SNAPSHOT_VERSION,
            }),
            None => Err(ResumeError::Malformed {
                message: format!("{error}; no `version` number: this is not a workflow snapshot"),
            }),
            Some(_) => Err(ResumeError::Malformed {
                message: error.to_string(),
            }),
        }
    }
}

/// Why a snapshot could not be taken.
///
/// ```
/// use workflows::SnapshotError;
///
/// let err = SnapshotError::Serialize { what: "the state".into(), message: "key must be a string".into() };
/// assert_eq!(err.to_string(), "cannot snapshot the run: the state failed to serialize: key must be a string");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// An event or the state failed to serialize.
    #[error("cannot snapshot the run: {what} failed to serialize: {message}")]
    Serialize {
        /// What failed (an event's name, or "the state").
        what: String,
        /// serde's message.
        message: String,
    },
}

/// Why a snapshot could not be resumed. Each says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// The text ends early.
    #[error("the snapshot is truncated ({message}); store and load the whole text")]
    Truncated {
        /// serde's message.
        message: String,
    },
    /// The text is not a snapshot.
    #[error(
        "the snapshot is malformed ({message}); it must be the JSON that Snapshot::to_json wrote"
    )]
    Malformed {
        /// serde's message.
        message: String,
    },
    /// A newer build wrote it.
    #[error(
        "the snapshot has format version {found}, newer than the {supported} this build reads; resume it with a newer build of the program"
    )]
    NewerVersion {
        /// The snapshot's version.
        found: u32,
        /// The newest this build reads.
        supported: u32,
    },
    /// It belongs to another workflow.
    #[error(
        "the snapshot is of workflow `{found}`, not `{expected}`; resume it with a runner of `{found}`"
    )]
    WrongWorkflow {
        /// This workflow.
        expected: String,
        /// The snapshot's.
        found: String,
    },
    /// The workflow's steps changed since it was taken.
    #[error(
        "the snapshot was taken with a different version of this workflow's steps (fingerprint {found}, now {expected}); resume it with the build that took it, or start a new run"
    )]
    ChangedWorkflow {
        /// The current fingerprint.
        expected: String,
        /// The snapshot's.
        found: String,
    },
    /// The run had already ended.
    #[error(
        "the snapshot is of a run that has {status:?}; only running, cancelled or timed-out runs resume"
    )]
    RunEnded {
        /// Its status.
        status: RunStatus,
    },
    /// An event name is not registered in this binary.
    #[error(
        "the snapshot holds an event `{name}` that this binary does not register; derive Event for that type (generic event types cannot be stored)"
    )]
    UnknownEvent {
        /// The name.
        name: String,
    },
    /// An event's JSON does not fit its type.
    #[error("the snapshot's `{name}` event does not fit its type: {message}")]
    BadEvent {
        /// The event's name.
        name: String,
        /// serde's message.
        message: String,
    },
    /// A step name is unknown to the workflow.
    #[error("the snapshot refers to a step `{name}` that this workflow does not have")]
    UnknownStep {
        /// The step's name.
        name: String,
    },
    /// The state's JSON does not fit the workflow's state type.
    #[error("the snapshot's state does not fit the workflow's state type: {message}")]
    BadState {
        /// serde's message.
        message: String,
    },
}

/// A stable hash of a step table: FNV-1a over names, worker counts and event names.
pub(crate) fn fingerprint(workflow: &str, steps: &[StepInfo]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |text: &str| {
        for byte in text.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(workflow);
    for step in steps {
        feed(step.name);
        feed(&step.num_workers.to_string());
        for (label, events) in [("a", step.accepts), ("e", step.emits), ("s", step.sends)] {
            feed(label);
            for event in events {
                feed(event.name);
            }
        }
        // Fed only when set, so that the fingerprints of workflows without fan-outs stay as
        // they were before fan-outs existed (their stored snapshots still resume).
        if step.fans_out {
            feed("fan-out");
        }
        match step.fires {
            crate::Fires::PerEvent => {}
            crate::Fires::PerFanOut { take } => {
                feed("join");
                if let Some(n) = take {
                    feed(&n.to_string());
                }
            }
            crate::Fires::PerSet => feed("set"),
        }
        if !step.catches.is_empty() {
            feed("catch");
            step.catches.iter().for_each(|name| feed(name));
        }
        if step.max_recoveries != 1 {
            feed(&format!("max_recoveries {}", step.max_recoveries));
        }
        if !step.children.is_empty() {
            feed("children");
            step.children.iter().for_each(|child| feed(child.name));
        }
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_through_json() {
        let snap = Snapshot {
            version: SNAPSHOT_VERSION,
            workflow: "W".into(),
            fingerprint: "00".into(),
            run_id: "r".into(),
            status: RunStatus::Running,
            state: RawJson::from_text(r#"{"n":1}"#).unwrap(),
            store: empty_object(),
            queues: vec![
                QueuedEvent {
                    step: "s".into(),
                    event: StoredInput::One(StoredEvent {
                        name: "StartEvent".into(),
                        data: serde_json::json!({}),
                    }),
                    scope: Vec::new(),
                    recoveries: BTreeMap::new(),
                    failure: None,
                    failure_of: None,
                    failure_recovered: false,
                },
                QueuedEvent {
                    step: "join".into(),
                    event: StoredInput::Batch(vec![StoredEvent {
                        name: "Page".into(),
                        data: serde_json::json!(1),
                    }]),
                    scope: vec![BranchRecord {
                        fan_out: 0,
                        element: 2,
                    }],
                    recoveries: BTreeMap::from([("rescue".to_owned(), 1)]),
                    failure: Some("boom".into()),
                    failure_of: Some(7),
                    failure_recovered: true,
                },
            ],
            invocations: Vec::new(),
            collect: Vec::new(),
            unpaired: vec![UnpairedEvent {
                step: "pair".into(),
                event: StoredEvent {
                    name: "Page".into(),
                    data: serde_json::json!(3),
                },
                scope: Vec::new(),
                recoveries: BTreeMap::new(),
            }],
            fan_outs: vec![FanOutRecord {
                id: 0,
                step: "split".into(),
                scope: Vec::new(),
                recoveries: BTreeMap::new(),
                joins: vec![JoinRecord {
                    step: "join".into(),
                    fired: false,
                    events: vec![JoinedEvent {
                        element: 1,
                        event: StoredEvent {
                            name: "Page".into(),
                            data: serde_json::json!(2),
                        },
                    }],
                }],
            }],
            waiters: Vec::new(),
            next_invocation: 3,
            next_stream_seq: 2,
            next_fan_out: 1,
            next_child: 0,
            requests: Vec::new(),
        };
        assert_eq!(Snapshot::from_json(&snap.to_json()).unwrap(), snap);
    }

    #[test]
    fn the_fingerprint_is_stable_and_sensitive() {
        assert_eq!(fingerprint("W", &[]), fingerprint("W", &[]));
        assert_ne!(fingerprint("W", &[]), fingerprint("V", &[]));
        // Stored snapshots carry this value: changing the hash breaks every one of them.
        assert_eq!(fingerprint("W", &[]), "0937c907b5c90a0b");
    }
}
