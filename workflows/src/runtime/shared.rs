//! The part of a run that its handler, its step contexts and its control loop share.
//!
//! The control loop owns the run's queues and in-flight invocations; what others may touch
//! sits here behind short, uncontended locks: the inbox of messages for the loop, the published
//! event log, the outcome slot, the state, the store and the collect buffers.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Waker;

use std::time::Duration;

use tokio::sync::oneshot;

use crate::EventInfo;
use crate::error::WorkflowError;
use crate::runtime::children::{self, Children, Link};
use crate::runtime::inbox::Inbox;
use crate::runtime::invocations::InvocationId;
use crate::runtime::lineage::Lineage;
use crate::runtime::memo::SharedMemo;
use crate::runtime::routes::Routes;
use crate::snapshot::{RawJson, RunStatus, SNAPSHOT_VERSION, Snapshot, SnapshotError};
use crate::store::Store;
use crate::stream::StreamLog;
use crate::wait::{Requirement, WaitError};
use crate::{AnyEvent, SendError};
use serde::Serialize;

/// Locks `m`, ignoring poisoning: no critical section here can leave data half-updated.
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A wait in progress, as senders outside the loop see it.
pub(crate) struct Waiting {
    pub(crate) step: usize,
    pub(crate) type_id: TypeId,
    pub(crate) requirements: Vec<Requirement>,
}

/// Where an event sent in from outside goes.
enum Route {
    /// To this run (to every step accepting it, or to one).
    Here(Option<usize>),
    /// To a child run, which routes it further.
    Child(Link),
}

/// A message for the control loop.
pub(crate) enum Msg {
    /// An event sent by a step or by the caller, to every accepting step or to one.
    Event {
        ev: Box<dyn AnyEvent>,
        target: Option<usize>,
        /// The fan-out branches of the invocation that sent it (empty from outside).
        lineage: Lineage,
        /// Sent in from outside the run (an answer, perhaps), not by a step.
        outside: bool,
    },
    /// End the run as cancelled.
    Cancel,
    /// A step begins to wait for an event.
    Wait(Box<WaitRequest>),
    /// Take a snapshot and send it back.
    Snapshot(oneshot::Sender<Result<Snapshot, SnapshotError>>),
    /// A step broke a rule the run cannot go on from (it did not repeat its effects after a
    /// resume): end the run with this error.
    Fail(Box<WorkflowError>),
    /// An event sent in from outside went to a child run: this run has work again (its next
    /// idle spell is a new one).
    ChildActivity,
    /// An invocation created its memo; the loop keeps it for snapshots.
    AttachMemo {
        invocation: InvocationId,
        memo: SharedMemo,
    },
}

/// A waiter as a step registers it.
pub(crate) struct WaitRequest {
    pub(crate) id: String,
    pub(crate) memo_key: String,
    pub(crate) invocation: InvocationId,
    pub(crate) event: EventInfo,
    pub(crate) requirements: Vec<Requirement>,
    pub(crate) prompt: Option<Box<dyn AnyEvent>>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) reply: oneshot::Sender<Result<Box<dyn AnyEvent>, WaitError>>,
}

/// How a run ended, before the handler takes it.
pub(crate) type Outcome = Result<Box<dyn Any + Send>, WorkflowError>;

#[derive(Default)]
struct OutcomeSlot {
    outcome: Option<Outcome>,
    taken: bool,
    waker: Option<Waker>,
}

/// Which buffer of a step `collect` or `collect_events` uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum BufferKey {
    /// `collect::<E>`: one buffer per event type.
    Type(TypeId),
    /// `collect_events` and `collect_events_in`: named buffers.
    Named(String),
}

/// An event in a collect buffer, tagged with the invocation and call that put it there.
pub(crate) struct Buffered {
    /// (invocation number, collect call within the attempt)
    pub(crate) tag: (u64, u32),
    pub(crate) ev: Box<dyn AnyEvent>,
}

/// Collect buffers, keyed by step index and buffer.
pub(crate) type CollectBuffers = HashMap<(usize, BufferKey), Vec<Buffered>>;

/// The state of a run shared outside its control loop, apart from the typed state.
pub(crate) struct RunShared {
    pub(crate) run_id: String,
    pub(crate) routes: Arc<Routes>,
    pub(crate) inbox: Inbox<Msg>,
    pub(crate) stream: StreamLog,
    outcome: Mutex<OutcomeSlot>,
    pub(crate) store: Store,
    /// Handlers and senders alive outside the run; at zero an idle run ends.
    external: AtomicUsize,
    /// How the run ended, once it has.
    ended: Mutex<Option<RunStatus>>,
    /// What most runs never use, built the first time one does (see [`Rare`]).
    rare: OnceLock<Box<Rare>>,
}

/// The parts of a run's shared state that most runs never use: collect buffers, waits,
/// children, a final snapshot. Boxed apart and built on first use, so that a run that uses
/// none of them (most runs, and every suspended run of a plain step-based workflow) does not
/// carry them: a pointer instead of about 150 bytes.
#[derive(Default)]
struct Rare {
    collect: Mutex<CollectBuffers>,
    /// The steps waiting right now, the event types they wait for and what they require of
    /// them (kept by the loop).
    waiting: Mutex<Vec<Waiting>>,
    /// The live child runs, for routing events sent in to them.
    children: Children,
    /// The number the next child run gets.
    next_child: AtomicU64,
    /// The snapshot taken as a cancelled or timed-out run ended (it can be resumed).
    final_snapshot: Mutex<Option<Box<Snapshot>>>,
}

impl RunShared {
    #[cfg(test)]
    pub(crate) fn new(run_id: String, routes: Arc<Routes>) -> Self {
        Self::restored(run_id, routes, 0, Store::default(), HashMap::new())
    }

    /// A run's shared part as a snapshot left it.
    pub(crate) fn restored(
        run_id: String,
        routes: Arc<Routes>,
        next_stream_seq: u64,
        store: Store,
        collect: CollectBuffers,
    ) -> Self {
        let shared = RunShared {
            run_id,
            routes,
            inbox: Inbox::default(),
            stream: StreamLog::starting_at(next_stream_seq),
            outcome: Mutex::new(OutcomeSlot::default()),
            store,
            external: AtomicUsize::new(0),
            ended: Mutex::new(None),
            rare: OnceLock::new(),
        };
        if !collect.is_empty() {
            *shared.collect() = collect;
        }
        shared
    }

    /// The rarely used part, built now if it was not.
    fn rare(&self) -> &Rare {
        self.rare.get_or_init(Box::default)
    }

    /// The collect buffers, keyed by step and buffer.
    pub(crate) fn collect(&self) -> MutexGuard<'_, CollectBuffers> {
        lock(&self.rare().collect)
    }

    /// Reads the collect buffers (empty for a run that never collected).
    pub(crate) fn read_collect<R>(&self, read: impl FnOnce(&CollectBuffers) -> R) -> R {
        match self.rare.get() {
            Some(rare) => read(&lock(&rare.collect)),
            None => read(&CollectBuffers::new()),
        }
    }

    /// Empties the collect buffers (a run that never collected has none).
    pub(crate) fn clear_collect(&self) {
        if let Some(rare) = self.rare.get() {
            lock(&rare.collect).clear();
        }
    }

    /// The run's child runs, for linking and unlinking them.
    pub(crate) fn children(&self) -> &Children {
        &self.rare().children
    }

    /// The run's child runs if it has any (without building the rarely used part).
    pub(crate) fn live_children(&self) -> Option<&Children> {
        self.rare
            .get()
            .map(|rare| &rare.children)
            .filter(|children| !children.is_empty())
    }

    /// The number the next child run gets (counted up).
    pub(crate) fn next_child(&self) -> &AtomicU64 {
        &self.rare().next_child
    }

    /// How many child runs the run has started (the number the next one gets).
    pub(crate) fn children_started(&self) -> u64 {
        self.rare
            .get()
            .map_or(0, |rare| rare.next_child.load(Ordering::Relaxed))
    }

    /// Keeps the snapshot a cancelled or timed-out run took as it ended.
    pub(crate) fn keep_final_snapshot(&self, snapshot: Snapshot) {
        *lock(&self.rare().final_snapshot) = Some(Box::new(snapshot));
    }

    /// Whether a step waits right now for an event `matches` takes (false for a run that
    /// never waited).
    fn any_waiting(&self, matches: impl Fn(&Waiting) -> bool) -> bool {
        self.rare
            .get()
            .is_some_and(|rare| lock(&rare.waiting).iter().any(matches))
    }

    /// How the run ended, if it has.
    pub(crate) fn ended(&self) -> Option<RunStatus> {
        *lock(&self.ended)
    }

    /// Queues `msg` for the loop; refused once the run has finished.
    pub(crate) fn push(&self, msg: Msg) -> Result<(), SendError> {
        self.inbox.push(msg).map_err(|_| SendError::RunFinished)
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.inbox.is_closed()
    }

    /// Records how the run ended and wakes its handler. Later messages are refused.
    pub(crate) fn finish(&self, outcome: Outcome) {
        *lock(&self.ended) = Some(match &outcome {
            Ok(_) => RunStatus::Completed,
            Err(WorkflowError::Cancelled) => RunStatus::Cancelled,
            Err(WorkflowError::Timeout { .. }) => RunStatus::TimedOut,
            Err(_) => RunStatus::Failed,
        });
        // No message is accepted after this.
        self.inbox.close();
        self.stream.close();
        let waker = {
            let mut slot = lock(&self.outcome);
            slot.outcome = Some(outcome);
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The outcome if the run has ended, else parks `waker` for it.
    pub(crate) fn poll_outcome(&self, waker: &Waker) -> Option<Outcome> {
        let mut slot = lock(&self.outcome);
        if let Some(outcome) = slot.outcome.take() {
            slot.taken = true;
            return Some(outcome);
        }
        if slot.taken {
            return Some(Err(WorkflowError::ResultTaken));
        }
        slot.waker = Some(waker.clone());
        None
    }

    /// Looks at the outcome without taking it (`None` before the run ends, or once taken).
    pub(crate) fn peek_outcome<R>(&self, look: impl FnOnce(Option<&Outcome>) -> R) -> R {
        look(lock(&self.outcome).outcome.as_ref())
    }

    pub(crate) fn acquire_external(&self) {
        self.external.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn release_external(&self) {
        if self.external.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inbox.wake();
        }
    }

    /// Whether nothing outside the run can send it events any more.
    pub(crate) fn abandoned(&self) -> bool {
        self.external.load(Ordering::Acquire) == 0
    }

    /// Checks that the event of type `ev` can be delivered (to `target`, or to anyone).
    pub(crate) fn resolve_target(
        &self,
        ev: &dyn AnyEvent,
        target: Option<&str>,
    ) -> Result<Option<usize>, SendError> {
        let routes = &self.routes;
        match target {
            None => {
                let ty = ev.event_type_id();
                if routes.receivers(ty).is_empty()
                    && !routes.is_stop(ty)
                    && !self.any_waiting(|w| w.type_id == ty)
                {
                    Err(SendError::NoReceiver {
                        event: ev.name().to_owned(),
                        accepted: routes.accepted_names(),
                    })
                } else {
                    Ok(None)
                }
            }
            Some(name) => {
                let Some(index) = routes.step_index(name) else {
                    return Err(SendError::UnknownStep {
                        step: name.to_owned(),
                        known: routes.step_names(),
                    });
                };
                let step = &routes.steps()[index];
                let ty = ev.event_type_id();
                let waited = self.any_waiting(|w| w.step == index && w.type_id == ty);
                if step.accepts_type(ty) || waited {
                    Ok(Some(index))
                } else {
                    Err(SendError::NotAccepted {
                        step: name.to_owned(),
                        event: ev.name().to_owned(),
                        accepted: step.accepts.iter().map(|e| e.name.to_owned()).collect(),
                    })
                }
            }
        }
    }

    /// Refuses an event sent in from outside that only joins would take: it descends from no
    /// fan-out, so no join could (see `SendError::OnlyJoins`).
    fn check_not_only_joins(
        &self,
        ev: &dyn AnyEvent,
        target: Option<usize>,
    ) -> Result<(), SendError> {
        let routes = &self.routes;
        let ty = ev.event_type_id();
        let receivers: &[usize] = match &target {
            Some(step) => std::slice::from_ref(step),
            None => routes.receivers(ty),
        };
        let waited = self.any_waiting(|w| w.type_id == ty && target.is_none_or(|s| s == w.step));
        if receivers.is_empty() || waited || !receivers.iter().all(|&s| routes.is_join(s)) {
            return Ok(());
        }
        Err(SendError::OnlyJoins {
            event: ev.name().to_owned(),
            joins: receivers
                .iter()
                .map(|&s| routes.steps()[s].name.to_owned())
                .collect(),
        })
    }

    /// Records which steps wait for which event types, requiring what.
    pub(crate) fn set_waiting(&self, waits: Vec<Waiting>) {
        if waits.is_empty() && self.rare.get().is_none() {
            return;
        }
        *lock(&self.rare().waiting) = waits;
    }

    /// Whether a step of this run waits for `ev`, and `ev` meets what it requires.
    fn waits_for(&self, ev: &dyn AnyEvent, json: &mut Option<serde_json::Value>) -> bool {
        self.rare
            .get()
            .is_some_and(|rare| children::waits_for(&lock(&rare.waiting), ev, json))
    }

    /// Where `ev`, sent in from outside (to step `target` of this run, if named), goes. Without
    /// children, this run, if it takes it. With children, in order: this run if one of its
    /// waits matches `ev` (type and requirements); else the first child (in the order they
    /// started) in which one does; else this run if it takes the type; else the first child
    /// that takes it.
    fn route(&self, ev: &dyn AnyEvent, target: Option<&str>) -> Result<Route, SendError> {
        let Some(children) = self.live_children().filter(|_| target.is_none()) else {
            return self.resolve_target(ev, target).map(Route::Here);
        };
        let mut json = None;
        if self.waits_for(ev, &mut json) {
            return self.resolve_target(ev, None).map(Route::Here);
        }
        let children = children.list();
        if let Some(child) = children.iter().find(|child| match child {
            Link::Live(run) => run.shared().waits_for_deep(ev, &mut json),
            Link::Pending(pending) => pending.waits_for(ev, &mut json),
        }) {
            return Ok(Route::Child(child.clone()));
        }
        let refused = match self.resolve_target(ev, None) {
            Ok(here) => return Ok(Route::Here(here)),
            Err(refused) => refused,
        };
        match children.iter().find(|child| match child {
            Link::Live(run) => run.shared().route(ev, None).is_ok(),
            Link::Pending(pending) => pending.takes(ev),
        }) {
            Some(child) => Ok(Route::Child(child.clone())),
            None => Err(refused),
        }
    }

    /// Whether this run or a descendant waits for `ev` (see `waits_for`).
    fn waits_for_deep(&self, ev: &dyn AnyEvent, json: &mut Option<serde_json::Value>) -> bool {
        self.waits_for(ev, json)
            || self.live_children().is_some_and(|children| {
                children.list().iter().any(|child| match child {
                    Link::Live(run) => run.shared().waits_for_deep(ev, json),
                    Link::Pending(pending) => pending.waits_for(ev, json),
                })
            })
    }

    /// Whether `ev` could be sent in now (to `target`, if named): the check `send` makes.
    pub(crate) fn can_take(
        &self,
        ev: &dyn AnyEvent,
        target: Option<&str>,
    ) -> Result<(), SendError> {
        match self.route(ev, target)? {
            Route::Here(target) => self.check_not_only_joins(ev, target),
            Route::Child(Link::Live(child)) => child.shared().can_take(ev, None),
            Route::Child(Link::Pending(_)) => Ok(()),
        }
    }

    /// Validates and queues an event sent in from outside, for this run's loop or for the
    /// child it is for (see `route`).
    pub(crate) fn send(
        &self,
        ev: Box<dyn AnyEvent>,
        target: Option<&str>,
    ) -> Result<(), SendError> {
        if self.is_finished() {
            return Err(SendError::RunFinished);
        }
        let target = match self.route(&*ev, target)? {
            Route::Here(target) => target,
            Route::Child(Link::Live(child)) => {
                child.shared().send(ev, None)?;
                let _ = self.push(Msg::ChildActivity);
                return Ok(());
            }
            Route::Child(Link::Pending(pending)) => {
                return match pending.take(ev) {
                    Ok(()) => {
                        let _ = self.push(Msg::ChildActivity);
                        Ok(())
                    }
                    // Adopted meanwhile: its link is live now.
                    Err(ev) => self.send(ev, None),
                };
            }
        };
        self.check_not_only_joins(&*ev, target)?;
        self.push(Msg::Event {
            ev,
            target,
            lineage: Lineage::default(),
            outside: true,
        })
    }

    /// Sends `ev` in from outside to the descendant at `path` (`Review/0`, or
    /// `Review/0/Approve/1`), which routes it as its own `send` does. A child read back from a
    /// snapshot whose step has not run again keeps it (deeper paths go through it).
    pub(crate) fn send_to_child(&self, path: &str, ev: Box<dyn AnyEvent>) -> Result<(), SendError> {
        if self.is_finished() {
            return Err(SendError::RunFinished);
        }
        let Some((link, rest)) = self.live_children().and_then(|c| c.link_to(path)) else {
            return Err(SendError::UnknownChild {
                path: path.to_owned(),
                known: self
                    .live_children()
                    .map(Children::paths)
                    .unwrap_or_default(),
            });
        };
        match link {
            Link::Live(child) => match rest {
                None => child.shared().send(ev, None)?,
                Some(rest) => child.shared().send_to_child(rest, ev)?,
            },
            Link::Pending(pending) => {
                if let Err(ev) = pending.take(ev) {
                    // Adopted meanwhile: its link is live now.
                    return self.send_to_child(path, ev);
                }
            }
        }
        let _ = self.push(Msg::ChildActivity);
        Ok(())
    }

    /// Sends `ev`, the answer to the event published at `request` (its data pointer), to the
    /// child that published it if a child did and the stream still holds it; else as `send`.
    pub(crate) fn send_answer(
        &self,
        request: *const (),
        ev: Box<dyn AnyEvent>,
    ) -> Result<(), SendError> {
        if let Some(children) = self.live_children()
            && let Some(path) = self.stream.child_of(request)
            && let Some(child) = children.find(&path)
        {
            return child.shared().send(ev, None);
        }
        self.send(ev, None)
    }

    /// Checks that `step` declares the type of `ev` among what it sends or returns.
    pub(crate) fn check_declared(&self, step: usize, ev: &dyn AnyEvent) -> Result<(), SendError> {
        let info = &self.routes.steps()[step];
        let ty = ev.event_type_id();
        let declared = |events: &[crate::EventInfo]| events.iter().any(|e| e.type_id == ty);
        if declared(info.sends) || declared(info.emits) {
            Ok(())
        } else {
            Err(SendError::Undeclared {
                step: info.name.to_owned(),
                event: ev.name().to_owned(),
            })
        }
    }
}

/// A run's shared part together with its typed state.
pub(crate) struct Run<S> {
    pub(crate) shared: RunShared,
    pub(crate) state: Mutex<S>,
}

impl<S: Serialize> Run<S> {
    /// The typed state as JSON.
    pub(crate) fn state_json(&self) -> Result<RawJson, SnapshotError> {
        let state = self.state.lock().map_err(|_| SnapshotError::Serialize {
            what: "the state".into(),
            message: "a step panicked in the middle of editing it".into(),
        })?;
        RawJson::from_serialize(&*state).map_err(|e| SnapshotError::Serialize {
            what: "the state".into(),
            message: e.to_string(),
        })
    }
}

/// Access to the non-generic part of a run, for handlers and streams.
pub(crate) trait HasShared: Send + Sync {
    fn shared(&self) -> &RunShared;

    /// The snapshot of a run that has ended: the one taken at its cancel or timeout, or else
    /// its final state and store.
    fn final_snapshot(&self) -> Result<Snapshot, SnapshotError>;
}

impl<S: Serialize + Send> HasShared for Run<S> {
    fn shared(&self) -> &RunShared {
        &self.shared
    }

    fn final_snapshot(&self) -> Result<Snapshot, SnapshotError> {
        let shared = &self.shared;
        if let Some(rare) = shared.rare.get()
            && let Some(snapshot) = lock(&rare.final_snapshot).as_deref()
        {
            return Ok(snapshot.clone());
        }
        Ok(Snapshot {
            version: SNAPSHOT_VERSION,
            workflow: shared.routes.workflow().to_owned(),
            fingerprint: shared.routes.fingerprint().to_owned(),
            run_id: shared.run_id.clone(),
            status: shared.ended().unwrap_or(RunStatus::Failed),
            state: self.state_json()?,
            store: shared.store.to_raw()?,
            queues: Vec::new(),
            invocations: Vec::new(),
            collect: Vec::new(),
            fan_outs: Vec::new(),
            unpaired: Vec::new(),
            waiters: Vec::new(),
            next_invocation: 0,
            next_stream_seq: shared.stream.next_seq(),
            next_fan_out: 0,
            next_child: shared.children_started(),
            requests: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HumanResponseEvent;

    /// A run that never collects, waits or starts a child does not build the rarely used
    /// part, not even when it is sent an event, snapshotted or told it waits for nothing.
    #[test]
    fn the_rare_part_is_built_only_when_used() {
        let routes = Arc::new(Routes::new("W", &[], TypeId::of::<()>()));
        let shared = RunShared::new("r".into(), routes);
        shared.set_waiting(Vec::new());
        let ev = HumanResponseEvent::new("yes");
        assert!(
            shared.resolve_target(&ev, None).is_err(),
            "no step takes it"
        );
        assert!(shared.read_collect(|buffers| buffers.is_empty()));
        assert_eq!(shared.children_started(), 0);
        assert!(shared.live_children().is_none());
        shared.clear_collect();
        assert!(shared.rare.get().is_none());

        shared.set_waiting(vec![Waiting {
            step: 0,
            type_id: TypeId::of::<HumanResponseEvent>(),
            requirements: Vec::new(),
        }]);
        assert!(shared.rare.get().is_some());
        assert!(shared.any_waiting(|w| w.type_id == TypeId::of::<HumanResponseEvent>()));
        assert!(shared.resolve_target(&ev, None).is_ok(), "a wait takes it");
    }
}
