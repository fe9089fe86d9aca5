//! Child runs, on the parent's side: the slots an invocation's memo keeps for the children it
//! started, the links a run keeps to its live children for routing, and starting a child.
//!
//! A child is a run of its own with its own control loop, which the `ChildRun` future of the
//! step that started it polls (`child.rs`): so the child moves only while that step is polled,
//! on the parent's task, and at the top of the parent's loop no code of the child is running.
//!
//! # Invariants
//!
//! - A parent's snapshot holds each live child's snapshot, taken in the same instant: the
//!   parent's capture asks the child's loop, which is not being polled then, to apply what was
//!   sent to it and record itself ([`LiveChild::record`]). A child that ended meanwhile is
//!   recorded with how it ended.
//! - A child that ended keeps its result (or its failure) in the memo for its call, across
//!   snapshots and retries (a failure only until the next attempt): the step, running again,
//!   gets it without the child running again.
//! - A run's links to its children (`Children`) hold its unfinished children: a live child
//!   from its start until its `ChildRun` sees it end or is dropped; a pending child (read from
//!   a snapshot) until its step adopts it or its slot goes (`PendingHold`), and what was sent
//!   to a pending child that is let go is sent into the parent again.

use std::any::TypeId;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::child::ChildError;
use crate::runtime::capture::store_event;
use crate::runtime::restore::decode;
use crate::runtime::run_loop::{Built, RunLoop};
use crate::runtime::shared::{HasShared, Run, RunShared, Waiting, lock};
use crate::snapshot::{
    ChildFailure, ChildRecord, ChildState, ResumeError, RunStatus, Snapshot, SnapshotError,
    StoredEvent,
};
use crate::store::Store;
use crate::stream::StreamLog;
use crate::workflow::Output;
use crate::{AnyEvent, ChildInfo, Runner, StepError, StepInfo, Workflow, WorkflowError};

/// The fingerprint of workflow `W`'s snapshots.
pub(crate) fn fingerprint_of<W: Workflow>() -> String {
    crate::snapshot::fingerprint(W::NAME, W::STEPS)
}

/// A child's loop as its parent's capture sees it.
pub(crate) trait LiveChild: Send {
    /// Applies what was sent to the child so far, then records it: its snapshot, or how it
    /// ended if applying that ended it.
    fn record(&mut self) -> Result<ChildState, SnapshotError>;

    /// Whether the child can only move on when an event arrives from outside (and nothing
    /// sent to it waits to be applied).
    fn is_blocked(&self) -> bool;
}

impl<W: Workflow> LiveChild for RunLoop<W>
where
    Output<W>: Serialize,
{
    fn record(&mut self) -> Result<ChildState, SnapshotError> {
        self.settle(false);
        if !self.done {
            return Ok(ChildState::Running {
                snapshot: Box::new(self.capture(RunStatus::Running)?),
            });
        }
        self.run.shared.peek_outcome(|outcome| match outcome {
            Some(Ok(value)) => {
                let value = value
                    .downcast_ref::<Output<W>>()
                    .expect("a run's result has its workflow's output type");
                Ok(ChildState::Completed {
                    result: result_json(value).map_err(|message| SnapshotError::Serialize {
                        what: format!("the result of child workflow `{}`", W::NAME),
                        message,
                    })?,
                })
            }
            Some(Err(error)) => Ok(ChildState::Failed {
                error: failure_of(error),
            }),
            // Taken by its `ChildRun`, which recorded it in the memo in the same poll.
            None => Ok(ChildState::Failed {
                error: failure_of(&WorkflowError::ResultTaken),
            }),
        })
    }

    fn is_blocked(&self) -> bool {
        !self.done
            && self.taken.is_empty()
            && self.run.shared.inbox.is_empty()
            && RunLoop::is_blocked(self)
    }
}

fn result_json<T: Serialize>(value: &T) -> Result<Value, String> {
    serde_json::to_value(value).map_err(|e| e.to_string())
}

/// What an invocation's memo keeps for one `run_child` call.
pub(crate) enum ChildSlot {
    /// Running in this process.
    Live {
        workflow: &'static str,
        path: Arc<str>,
        run: Arc<Mutex<dyn LiveChild>>,
    },
    /// Read from a snapshot, to resume when the step calls again; meanwhile `pending` takes
    /// what is sent to it.
    Restored {
        workflow: String,
        path: Arc<str>,
        snapshot: Box<Snapshot>,
        pending: PendingHold,
    },
    /// Ended with its result (`Err`: the result did not serialize).
    Completed {
        workflow: String,
        path: Arc<str>,
        result: Result<Value, String>,
    },
    /// Ended without its result.
    Failed {
        workflow: String,
        path: Arc<str>,
        error: ChildFailure,
    },
}

/// How a child's `ChildRun` saw it end, for its slot.
pub(crate) enum Ended {
    Completed(Result<Value, String>),
    Failed(ChildFailure),
}

/// How `result` ends a child's slot.
pub(crate) fn ended<T: Serialize>(result: &Result<T, ChildError>) -> Ended {
    match result {
        Ok(value) => Ended::Completed(result_json(value)),
        Err(ChildError::Failed { source, .. }) => Ended::Failed(failure_of(source)),
        Err(other) => Ended::Failed(ChildFailure {
            status: RunStatus::Failed,
            message: other.to_string(),
            step: None,
            attempts: None,
            panicked: false,
            timeout_ms: None,
            active_steps: Vec::new(),
        }),
    }
}

/// The slots of one invocation's children, by call.
#[derive(Default)]
pub(crate) struct ChildSlots {
    slots: Vec<(u32, ChildSlot)>,
}

impl std::fmt::Debug for ChildSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.slots.iter().map(|(call, _)| call))
            .finish()
    }
}

impl ChildSlots {
    fn index(&self, call: u32) -> Option<usize> {
        self.slots.iter().position(|(c, _)| *c == call)
    }

    /// What call `call`, running workflow `workflow`, left: a child that ended (kept), or a
    /// snapshot to resume (taken out). A slot of another workflow (a retry that took another
    /// way) is dropped: the call starts afresh.
    pub(crate) fn lookup(&mut self, call: u32, workflow: &str) -> crate::child::Found {
        use crate::child::Found;
        let Some(index) = self.index(call) else {
            return Found::New;
        };
        let recorded = match &self.slots[index].1 {
            ChildSlot::Live { workflow, .. } => *workflow,
            ChildSlot::Restored { workflow, .. }
            | ChildSlot::Completed { workflow, .. }
            | ChildSlot::Failed { workflow, .. } => workflow.as_str(),
        };
        if recorded != workflow {
            self.slots.remove(index);
            return Found::New;
        }
        match &self.slots[index].1 {
            ChildSlot::Completed {
                workflow,
                path,
                result,
            } => Found::Ended(ChildSlot::Completed {
                workflow: workflow.clone(),
                path: path.clone(),
                result: result.clone(),
            }),
            ChildSlot::Failed {
                workflow,
                path,
                error,
            } => Found::Ended(ChildSlot::Failed {
                workflow: workflow.clone(),
                path: path.clone(),
                error: error.clone(),
            }),
            // A call is made once per attempt, and a live child's slot goes with its attempt.
            ChildSlot::Live { .. } => Found::New,
            ChildSlot::Restored { .. } => match self.slots.remove(index).1 {
                ChildSlot::Restored {
                    snapshot,
                    path,
                    pending,
                    ..
                } => Found::Snapshot(snapshot, path, pending),
                _ => unreachable!("matched above"),
            },
        }
    }

    /// Call `call` started a child (or resumed it).
    pub(crate) fn live(
        &mut self,
        call: u32,
        workflow: &'static str,
        path: Arc<str>,
        run: Arc<Mutex<dyn LiveChild>>,
    ) {
        self.forget(call);
        self.slots.push((
            call,
            ChildSlot::Live {
                workflow,
                path,
                run,
            },
        ));
    }

    /// The child of call `call` ended.
    pub(crate) fn end(&mut self, call: u32, end: Ended) {
        let Some(index) = self.index(call) else {
            return;
        };
        let (workflow, path) = match &self.slots[index].1 {
            ChildSlot::Live { workflow, path, .. } => ((*workflow).to_owned(), path.clone()),
            _ => return,
        };
        self.slots[index].1 = match end {
            Ended::Completed(result) => ChildSlot::Completed {
                workflow,
                path,
                result,
            },
            Ended::Failed(error) => ChildSlot::Failed {
                workflow,
                path,
                error,
            },
        };
    }

    /// The child of call `call` was dropped unfinished: a later call starts it afresh.
    pub(crate) fn forget(&mut self, call: u32) {
        self.slots.retain(|(c, _)| *c != call);
    }

    /// A retry begins: results carry over, failures and live children do not.
    pub(crate) fn new_attempt(&mut self) {
        self.slots
            .retain(|(_, slot)| matches!(slot, ChildSlot::Completed { .. }));
    }

    /// The slots as a snapshot records them; a live child records itself now.
    pub(crate) fn to_records(&self) -> Result<Vec<ChildRecord>, SnapshotError> {
        let mut records = Vec::with_capacity(self.slots.len());
        for (call, slot) in &self.slots {
            let mut inbox = Vec::new();
            let (workflow, path, state) = match slot {
                ChildSlot::Live {
                    workflow,
                    path,
                    run,
                } => {
                    // The child's user code (an event's Clone or Serialize) runs here: its panic
                    // fails the snapshot, not the parent.
                    let recorded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        lock(run).record()
                    }))
                    .unwrap_or_else(|payload| {
                        Err(SnapshotError::Serialize {
                            what: format!("child run `{path}`"),
                            message: crate::error::PanicError::from_payload(&*payload).message,
                        })
                    });
                    ((*workflow).to_owned(), path, recorded?)
                }
                ChildSlot::Restored {
                    workflow,
                    path,
                    snapshot,
                    pending,
                } => {
                    inbox = pending.0.stored()?;
                    (
                        workflow.clone(),
                        path,
                        ChildState::Running {
                            snapshot: snapshot.clone(),
                        },
                    )
                }
                ChildSlot::Completed {
                    workflow,
                    path,
                    result,
                } => (
                    workflow.clone(),
                    path,
                    ChildState::Completed {
                        result: result.clone().map_err(|message| SnapshotError::Serialize {
                            what: format!("the result of child workflow `{workflow}`"),
                            message,
                        })?,
                    },
                ),
                ChildSlot::Failed {
                    workflow,
                    path,
                    error,
                } => (
                    workflow.clone(),
                    path,
                    ChildState::Failed {
                        error: error.clone(),
                    },
                ),
            };
            records.push(ChildRecord {
                call: *call,
                workflow,
                path: path.to_string(),
                state,
                inbox,
            });
        }
        records.sort_by_key(|r| r.call);
        Ok(records)
    }

    /// The slots a snapshot recorded for an invocation of `step` (whose declarations
    /// `check_records` has checked them against).
    pub(crate) fn from_records(
        records: Vec<ChildRecord>,
        step: &StepInfo,
    ) -> Result<Self, ResumeError> {
        let mut slots = ChildSlots::default();
        for record in records {
            if slots.index(record.call).is_some() {
                return Err(ResumeError::Malformed {
                    message: format!("two child runs are recorded for call {}", record.call),
                });
            }
            let (workflow, path) = (record.workflow, Arc::<str>::from(record.path));
            let slot = match record.state {
                ChildState::Running { snapshot } => {
                    let info = declared(step, &workflow)?;
                    let events = record
                        .inbox
                        .into_iter()
                        .map(decode)
                        .collect::<Result<_, _>>()?;
                    ChildSlot::Restored {
                        pending: PendingHold(Arc::new(PendingChild::of(
                            info,
                            path.clone(),
                            &snapshot,
                            events,
                        ))),
                        workflow,
                        path,
                        snapshot,
                    }
                }
                ChildState::Completed { result } => ChildSlot::Completed {
                    workflow,
                    path,
                    result: Ok(result),
                },
                ChildState::Failed { error } => ChildSlot::Failed {
                    workflow,
                    path,
                    error,
                },
            };
            slots.slots.push((record.call, slot));
        }
        Ok(slots)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Whether the invocation has live children.
    pub(crate) fn has_live(&self) -> bool {
        self.slots
            .iter()
            .any(|(_, slot)| matches!(slot, ChildSlot::Live { .. }))
    }

    /// Whether each live child (if any) is blocked: moves only when it gets an event from
    /// outside. A step awaiting blocked children, and nothing but waits, is blocked itself (a
    /// step that also awaits something else, such as a timer, counts as blocked too).
    pub(crate) fn live_blocked(&self) -> bool {
        self.slots.iter().all(|(_, slot)| match slot {
            ChildSlot::Live { run, .. } => lock(run).is_blocked(),
            _ => true,
        })
    }

    /// The restored children waiting for their step to run again.
    pub(crate) fn pending(&self) -> impl Iterator<Item = &Arc<PendingChild>> {
        self.slots.iter().filter_map(|(_, slot)| match slot {
            ChildSlot::Restored { pending, .. } => Some(&pending.0),
            _ => None,
        })
    }

    /// Whether a child read from a snapshot waits for its step to run again.
    pub(crate) fn has_pending(&self) -> bool {
        self.pending().next().is_some()
    }
}

/// The child workflow called `workflow` that `step` declares.
fn declared<'s>(step: &'s StepInfo, workflow: &str) -> Result<&'s ChildInfo, ResumeError> {
    step.children
        .iter()
        .find(|c| c.name == workflow)
        .ok_or_else(|| ResumeError::Malformed {
            message: format!(
                "step `{}` started child workflow `{workflow}`, which it does not declare",
                step.name
            ),
        })
}

/// A child read from its parent's snapshot whose step has not run again yet, so that it has no
/// loop: what it waits for and takes, as its snapshot says, for routing; and the events sent
/// to it meanwhile, which it gets when it resumes (and which the parent's snapshots record
/// with it).
pub(crate) struct PendingChild {
    path: Arc<str>,
    waiting: Vec<Waiting>,
    accepts: Vec<TypeId>,
    /// Its own children, as its snapshot holds them (their events go through it).
    below: Vec<PendingChild>,
    /// The events sent to it; `None` once its step adopted it or let it go (senders then
    /// route again).
    events: Mutex<Option<Vec<Box<dyn AnyEvent>>>>,
    /// The run it is linked in, once linked.
    parent: std::sync::OnceLock<Weak<dyn HasShared>>,
}

/// A memo's hold on a pending child: when the slot goes without the step adopting the child
/// (a retry, the invocation's end, a resume that failed), the child is let go.
pub(crate) struct PendingHold(pub(crate) Arc<PendingChild>);

impl Drop for PendingHold {
    fn drop(&mut self) {
        self.0.let_go();
    }
}

impl PendingChild {
    fn of(
        info: &ChildInfo,
        path: Arc<str>,
        snapshot: &Snapshot,
        events: Vec<Box<dyn AnyEvent>>,
    ) -> Self {
        let steps = (info.steps)();
        let index = |name: &str| steps.iter().position(|s| s.name == name);
        let waiting = snapshot
            .waiters
            .iter()
            .filter_map(|w| {
                Some(Waiting {
                    step: index(&w.step)?,
                    type_id: crate::registry::info_of(&w.event)?.type_id,
                    requirements: w.requirements.clone(),
                })
            })
            .collect();
        let accepts = steps
            .iter()
            .flat_map(|s| s.accepts.iter().map(|e| e.type_id))
            .collect();
        let mut below = Vec::new();
        for invocation in &snapshot.invocations {
            let Some(step) = index(&invocation.step).map(|i| &steps[i]) else {
                continue;
            };
            for child in &invocation.children {
                if let (ChildState::Running { snapshot }, Ok(info)) =
                    (&child.state, declared(step, &child.workflow))
                {
                    let path = Arc::from(child.path.as_str());
                    below.push(PendingChild::of(info, path, snapshot, Vec::new()));
                }
            }
        }
        PendingChild {
            path,
            waiting,
            accepts,
            below,
            events: Mutex::new(Some(events)),
            parent: std::sync::OnceLock::new(),
        }
    }

    /// Its number in the parent run (the last part of its path).
    pub(crate) fn number(&self) -> Option<u64> {
        self.path.rsplit('/').next().and_then(|n| n.parse().ok())
    }

    /// Links it in `parent`'s children, where senders find it.
    pub(crate) fn link(self: &Arc<Self>, parent: &Arc<dyn HasShared>) {
        let _ = self.parent.set(Arc::downgrade(parent));
        parent
            .shared()
            .children()
            .set(self.path.clone(), Link::Pending(self.clone()));
    }

    /// Its step will not adopt it: unlinks it, and sends what was kept for it into its parent
    /// again, to whichever run takes it now (or logs what nothing takes).
    pub(crate) fn let_go(&self) {
        let Some(events) = lock(&self.events).take() else {
            return; // Adopted: its link is the live child's now.
        };
        let Some(parent) = self.parent.get().and_then(Weak::upgrade) else {
            return;
        };
        parent.shared().children().remove_pending(&self.path, self);
        for ev in events {
            if let Err(err) = parent.shared().send(ev, None) {
                tracing::warn!(child = %self.path, error = %err, "an event kept for a child run that will not resume is refused");
            }
        }
    }

    /// Keeps `ev` for the child; gives it back if the child has been adopted meanwhile.
    pub(crate) fn take(&self, ev: Box<dyn AnyEvent>) -> Result<(), Box<dyn AnyEvent>> {
        match lock(&self.events).as_mut() {
            Some(events) => {
                events.push(ev);
                Ok(())
            }
            None => Err(ev),
        }
    }

    /// The events kept for the child, for its resumed run; later ones are given back.
    pub(crate) fn adopt(&self) -> Vec<Box<dyn AnyEvent>> {
        lock(&self.events).take().unwrap_or_default()
    }

    /// The events kept so far, as a snapshot records them.
    fn stored(&self) -> Result<Vec<StoredEvent>, SnapshotError> {
        lock(&self.events)
            .iter()
            .flatten()
            .map(|ev| store_event(&**ev))
            .collect()
    }

    /// Whether it, or a child of it, waits for `ev` and `ev` meets what it requires.
    pub(crate) fn waits_for(&self, ev: &dyn AnyEvent, json: &mut Option<Value>) -> bool {
        waits_for(&self.waiting, ev, json) || self.below.iter().any(|b| b.waits_for(ev, json))
    }

    /// Whether it, or a child of it, takes events of `ev`'s type.
    pub(crate) fn takes(&self, ev: &dyn AnyEvent) -> bool {
        let ty = ev.event_type_id();
        self.accepts.contains(&ty)
            || self.waiting.iter().any(|w| w.type_id == ty)
            || self.below.iter().any(|b| b.takes(ev))
    }
}

/// Whether one of `waiting` waits for `ev`, and `ev` meets what it requires (`json`: `ev` as
/// JSON, made once when a requirement needs it).
pub(crate) fn waits_for(waiting: &[Waiting], ev: &dyn AnyEvent, json: &mut Option<Value>) -> bool {
    let ty = ev.event_type_id();
    waiting.iter().any(|w| {
        w.type_id == ty
            && (w.requirements.is_empty() || {
                let value = json.get_or_insert_with(|| ev.to_json().unwrap_or_default());
                w.requirements.iter().all(|r| r.matches(value))
            })
    })
}

/// The result a slot of an ended child recorded, as the step gets it.
pub(crate) fn recorded<T: DeserializeOwned>(
    workflow: &'static str,
    slot: ChildSlot,
) -> Result<T, ChildError> {
    match slot {
        ChildSlot::Completed { path, result, .. } => {
            let bad = |message: String| ChildError::Resume {
                workflow: workflow.to_owned(),
                path: path.to_string(),
                source: ResumeError::Malformed {
                    message: format!("the recorded result does not read back: {message}"),
                },
            };
            let json = result.map_err(bad)?;
            serde_json::from_value(json).map_err(|e| bad(e.to_string()))
        }
        ChildSlot::Failed { path, error, .. } => Err(ChildError::Failed {
            workflow: workflow.to_owned(),
            path: path.to_string(),
            source: Box::new(error_of(error)),
        }),
        ChildSlot::Live { .. } | ChildSlot::Restored { .. } => {
            unreachable!("only ended children are recorded results")
        }
    }
}

/// `error` as a snapshot keeps it.
pub(crate) fn failure_of(error: &WorkflowError) -> ChildFailure {
    let mut failure = ChildFailure {
        status: RunStatus::Failed,
        message: error.to_string(),
        step: None,
        attempts: None,
        panicked: false,
        timeout_ms: None,
        active_steps: Vec::new(),
    };
    match error {
        WorkflowError::StepFailed {
            step,
            attempts,
            source,
        } => {
            failure.message = source.to_string();
            failure.step = Some(step.clone());
            failure.attempts = Some(*attempts);
        }
        WorkflowError::StepPanicked {
            step,
            attempts,
            message,
        } => {
            failure.message = message.clone();
            failure.step = Some(step.clone());
            failure.attempts = Some(*attempts);
            failure.panicked = true;
        }
        WorkflowError::Cancelled => failure.status = RunStatus::Cancelled,
        WorkflowError::Timeout {
            timeout,
            active_steps,
        } => {
            failure.status = RunStatus::TimedOut;
            failure.timeout_ms = Some(timeout.as_millis() as u64);
            failure.active_steps = active_steps.clone();
        }
        _ => {}
    }
    failure
}

/// The error a snapshot kept, rebuilt (a step's own error is left as its text).
fn error_of(failure: ChildFailure) -> WorkflowError {
    match (failure.status, failure.step) {
        (RunStatus::Cancelled, _) => WorkflowError::Cancelled,
        (RunStatus::TimedOut, _) => WorkflowError::Timeout {
            timeout: std::time::Duration::from_millis(failure.timeout_ms.unwrap_or(0)),
            active_steps: failure.active_steps,
        },
        (_, Some(step)) if failure.panicked => WorkflowError::StepPanicked {
            step,
            attempts: failure.attempts.unwrap_or(1),
            message: failure.message,
        },
        (_, Some(step)) => WorkflowError::StepFailed {
            step,
            attempts: failure.attempts.unwrap_or(1),
            source: Box::new(StepError::restored(failure.message)),
        },
        (_, None) => WorkflowError::Recorded {
            message: failure.message,
        },
    }
}

/// A run's link to one of its children.
#[derive(Clone)]
pub(crate) enum Link {
    /// A child with its loop.
    Live(Arc<dyn HasShared>),
    /// A child read from a snapshot, whose step has not run again yet.
    Pending(Arc<PendingChild>),
}

/// A run's links to its children, for routing events sent from outside to them.
#[derive(Default)]
pub(crate) struct Children {
    links: Mutex<Vec<(Arc<str>, Link)>>,
    /// How many links there are, changed under the lock: every send asks whether there are
    /// any, and most runs have none.
    count: std::sync::atomic::AtomicUsize,
}

impl Children {
    /// Links the child at `path`, in the place of its pending link if it has one, else last.
    pub(crate) fn set(&self, path: Arc<str>, link: Link) {
        let mut links = lock(&self.links);
        match links.iter_mut().find(|(p, _)| *p == path) {
            Some(entry) => entry.1 = link,
            None => links.push((path, link)),
        }
        self.count.store(links.len(), Ordering::Release);
    }

    pub(crate) fn remove(&self, path: &str) {
        let mut links = lock(&self.links);
        links.retain(|(p, _)| &**p != path);
        self.count.store(links.len(), Ordering::Release);
    }

    /// Unlinks the pending child `pending` at `path`, unless a live child took its place.
    fn remove_pending(&self, path: &str, pending: &PendingChild) {
        let mut links = lock(&self.links);
        links.retain(|(p, link)| {
            !(&**p == path
                && matches!(link, Link::Pending(linked) if std::ptr::eq(&**linked, pending)))
        });
        self.count.store(links.len(), Ordering::Release);
    }

    /// The children, in the order they started.
    pub(crate) fn list(&self) -> Vec<Link> {
        lock(&self.links)
            .iter()
            .map(|(_, link)| link.clone())
            .collect()
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.count.load(Ordering::Acquire) == 0
    }

    /// The paths of the children, in the order they started.
    pub(crate) fn paths(&self) -> Vec<String> {
        lock(&self.links)
            .iter()
            .map(|(p, _)| p.to_string())
            .collect()
    }

    /// The child whose path `path` is or begins with (`Review/0` for `Review/0/Approve/1`),
    /// with the rest of the path below it.
    pub(crate) fn link_to<'p>(&self, path: &'p str) -> Option<(Link, Option<&'p str>)> {
        let links = lock(&self.links);
        links.iter().find_map(|(own, link)| {
            if path == &**own {
                return Some((link.clone(), None));
            }
            let rest = path.strip_prefix(&**own)?.strip_prefix('/')?;
            Some((link.clone(), Some(rest)))
        })
    }

    /// The live descendant at `path` (`Review/0`, or `Review/0/Approve/1` for a grandchild).
    pub(crate) fn find(&self, path: &str) -> Option<Arc<dyn HasShared>> {
        let links = lock(&self.links);
        for (own, link) in links.iter() {
            let Link::Live(run) = link else { continue };
            if path == &**own {
                return Some(run.clone());
            }
            if let Some(rest) = path
                .strip_prefix(&**own)
                .and_then(|rest| rest.strip_prefix('/'))
            {
                let run = run.clone();
                drop(links);
                return run.shared().live_children()?.find(rest);
            }
        }
        None
    }
}

/// Where a child's published events go: its parent's stream, marked with its path.
pub(crate) struct Forward {
    pub(crate) parent: Weak<dyn HasShared>,
    pub(crate) path: Arc<str>,
}

/// The run id of a child: its parent's, then its path.
fn child_run_id(parent: &RunShared, path: &str) -> String {
    format!("{}/{path}", parent.run_id)
}

/// A new child run of `runner`'s workflow at `path` under `parent`, with `start` queued; its
/// loop is not polled yet.
pub(crate) fn start<W: Workflow>(
    runner: &Runner<W>,
    start: W::Start,
    parent: &Arc<dyn HasShared>,
    path: Arc<str>,
) -> Built<W> {
    let mut options = runner.options();
    let inner = &runner.inner;
    let mut shared = RunShared::restored(
        child_run_id(parent.shared(), &path),
        inner.routes.clone(),
        0,
        Store::from_map(options.take_store()),
        Default::default(),
    );
    shared.stream = StreamLog::forwarding(Forward {
        parent: Arc::downgrade(parent),
        path,
    });
    let run = Arc::new(Run {
        shared,
        state: Mutex::new(W::State::default()),
    });
    run.shared
        .push(crate::runtime::shared::Msg::Event {
            ev: Box::new(start),
            target: None,
            lineage: Default::default(),
            outside: false,
        })
        .expect("a new run accepts events");
    let mut run_loop = RunLoop::new(inner.clone(), run.clone(), options);
    if let Some(limit) = inner.limit.clone() {
        run_loop.limit_by(limit);
    }
    (run, run_loop)
}

/// The child run `snapshot` describes, at `path` under `parent`; its loop is not polled yet.
pub(crate) fn resume<W: Workflow>(
    runner: &Runner<W>,
    snapshot: Snapshot,
    parent: &Arc<dyn HasShared>,
    path: Arc<str>,
) -> Result<Built<W>, ResumeError> {
    let forward = Forward {
        parent: Arc::downgrade(parent),
        path,
    };
    let (run, mut run_loop) =
        crate::runtime::restore::restore_loop(runner, snapshot, runner.options(), Some(forward))?;
    if let Some(limit) = runner.inner.limit.clone() {
        run_loop.limit_by(limit);
    }
    Ok((run, run_loop))
}

/// Checks the children a snapshot's invocation of step `step` recorded against what the step
/// declares: each a declared workflow, each running one's snapshot of that workflow as this
/// binary has it (and so on down).
pub(crate) fn check_records(
    step: &crate::StepInfo,
    records: &[ChildRecord],
) -> Result<(), ResumeError> {
    for record in records {
        let Some(info) = step.children.iter().find(|c| c.name == record.workflow) else {
            return Err(ResumeError::Malformed {
                message: format!(
                    "step `{}` started child workflow `{}`, which it does not declare",
                    step.name, record.workflow
                ),
            });
        };
        if let ChildState::Running { snapshot } = &record.state {
            check_nested(info, snapshot)?;
        }
    }
    Ok(())
}

/// Checks a running child's snapshot against child workflow `info`, and its own children.
fn check_nested(info: &crate::ChildInfo, snapshot: &Snapshot) -> Result<(), ResumeError> {
    if snapshot.version == 0 || snapshot.version > crate::snapshot::SNAPSHOT_VERSION {
        return Err(ResumeError::NewerVersion {
            found: snapshot.version,
            supported: crate::snapshot::SNAPSHOT_VERSION,
        });
    }
    if snapshot.workflow != info.name {
        return Err(ResumeError::WrongWorkflow {
            expected: info.name.to_owned(),
            found: snapshot.workflow.clone(),
        });
    }
    let expected = (info.fingerprint)();
    if snapshot.fingerprint != expected {
        return Err(ResumeError::ChangedWorkflow {
            expected,
            found: snapshot.fingerprint.clone(),
        });
    }
    let steps = (info.steps)();
    for invocation in &snapshot.invocations {
        let Some(step) = steps.iter().find(|s| s.name == invocation.step) else {
            return Err(ResumeError::UnknownStep {
                name: invocation.step.clone(),
            });
        };
        check_records(step, &invocation.children)?;
    }
    Ok(())
}
