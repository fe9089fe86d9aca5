//! The control loop of one run.
//!
//! It owns the per-step queues, the worker counts and the in-flight invocations, and applies
//! messages in order. A new invocation is polled once inline: most steps finish at once and
//! never reach the `FuturesUnordered`. A budget bounds the work done per poll so that a step
//! that loops on itself cannot starve cancellation, the inbox or other runs.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use futures_util::stream::FuturesUnordered;

use tokio::sync::{AcquireError, OwnedSemaphorePermit};
use tokio::time::Sleep;

use crate::context::Placement;
use crate::lifecycle::{StepState, StepStateChanged};
use crate::runtime::invocation::{Completion, InFlight, Invocation, SharedFailure, poll_step};
use crate::runtime::shared::{Msg, RunShared, lock};
use crate::runtime::waiters::Waiter;
use crate::snapshot::RunStatus;
use crate::stream::StreamLog;
use crate::{AnyEvent, Context, EventKind, RetryInfo, RunOptions, Workflow, WorkflowError};

/// Where a requested snapshot goes.
type SnapshotReply = tokio::sync::oneshot::Sender<Result<crate::Snapshot, crate::SnapshotError>>;

/// Waiting for a slot among a runner's concurrent runs.
type SlotWait = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// Dispatches per poll before the loop yields to the scheduler.
pub(super) const BUDGET: u32 = 256;

/// An event waiting in a step's queue.
pub(super) struct Queued {
    pub(super) ev: Box<dyn AnyEvent>,
    /// For a `StepFailed` event: the failure, which ends the run unless a handler recovers.
    pub(super) handles: Option<SharedFailure>,
}

pub(crate) struct RunLoop<W: Workflow> {
    pub(super) workflow: Arc<W>,
    pub(super) shared: Arc<RunShared<W::State>>,
    pub(super) queues: Vec<VecDeque<Queued>>,
    /// Events to start next, each with a worker of its step already counted in `active`.
    pub(super) ready: VecDeque<(usize, Queued)>,
    pub(super) active: Vec<usize>,
    /// Invocations by slot; `None` slots are free.
    pub(super) invocations: Vec<Option<Invocation>>,
    pub(super) free: Vec<usize>,
    pub(super) in_flight: Option<FuturesUnordered<InFlight>>,
    /// Slots whose (re-)run is due now.
    pub(super) retry_now: VecDeque<usize>,
    pub(super) waiters: Vec<Waiter>,
    /// Fires at the earliest waiter deadline.
    pub(super) wait_timer: Option<Pin<Box<Sleep>>>,
    pub(super) inbox: VecDeque<Msg>,
    pub(super) snapshot_requests: Vec<SnapshotReply>,
    /// The wait for a slot among the runner's concurrent runs, and then the slot itself.
    pub(super) acquire: Option<SlotWait>,
    pub(super) permit: Option<OwnedSemaphorePermit>,
    pub(super) timeout: Option<Duration>,
    pub(super) deadline: Option<Pin<Box<Sleep>>>,
    pub(super) internal_events: bool,
    pub(super) idle_published: bool,
    pub(super) next_seq: u64,
    /// The step `start_ready` visits first next time.
    pub(super) cursor: usize,
    pub(super) done: bool,
    pub(super) span: tracing::Span,
}

impl<W: Workflow> RunLoop<W> {
    pub(crate) fn new(
        workflow: Arc<W>,
        shared: Arc<RunShared<W::State>>,
        options: RunOptions,
    ) -> Self {
        let steps = W::STEPS.len();
        let span = tracing::info_span!(
            "workflow.run",
            workflow = W::NAME,
            run_id = %shared.core.run_id,
        );
        RunLoop {
            workflow,
            shared,
            queues: (0..steps).map(|_| VecDeque::new()).collect(),
            ready: VecDeque::new(),
            active: vec![0; steps],
            invocations: Vec::new(),
            free: Vec::new(),
            in_flight: None,
            retry_now: VecDeque::new(),
            waiters: Vec::new(),
            wait_timer: None,
            inbox: VecDeque::new(),
            snapshot_requests: Vec::new(),
            acquire: None,
            permit: None,
            timeout: options.get_timeout(),
            deadline: None,
            internal_events: options.wants_internal_events(),
            idle_published: false,
            next_seq: 0,
            cursor: 0,
            done: false,
            span,
        }
    }

    pub(super) fn stream(&self) -> &StreamLog {
        &self.shared.core.stream
    }

    /// Hands `ev` to matching waiters first (one per step), then queues it for `target`, or
    /// for every other step accepting its type.
    pub(super) fn deliver(
        &mut self,
        ev: Box<dyn AnyEvent>,
        target: Option<usize>,
        from: Option<usize>,
    ) {
        if ev.event_type_id() == std::any::TypeId::of::<W::Stop>() {
            self.stop_with(ev);
            return;
        }
        let answered = if self.waiters.is_empty() {
            Vec::new()
        } else {
            self.answer_waiters(&*ev, target)
        };
        if let Some(step) = target {
            if !answered.contains(&step) {
                self.enqueue(step, Queued { ev, handles: None });
            }
            return;
        }
        // Borrowing the routes through `self.shared` leaves `self.queues` free to change.
        let shared = &self.shared;
        let all = shared.core.routes.receivers(ev.event_type_id());
        let mut receivers = all.iter().copied().filter(|s| !answered.contains(s));
        let Some(first) = receivers.next() else {
            if !answered.is_empty() || ev.kind() == EventKind::InputRequired {
                return;
            }
            match from {
                Some(step) => self.finish(Err(WorkflowError::Unroutable {
                    step: W::STEPS[step].name.to_owned(),
                    event: ev.name().to_owned(),
                })),
                // Checked when sent; only a waiter that went away in between gets here.
                None => tracing::warn!(
                    parent: &self.span,
                    event = ev.name(),
                    "event sent into the run has no receiver any more; dropped"
                ),
            }
            return;
        };
        // Every receiver but the first gets a copy; the first gets the event itself.
        // The fields, not `self`: the routes stay borrowed through `self.shared`.
        let (queues, active, ready) = (&mut self.queues, &mut self.active, &mut self.ready);
        for step in receivers {
            let copy = Queued {
                ev: ev.clone_event(),
                handles: None,
            };
            enqueue::<W>(queues, active, ready, step, copy);
        }
        enqueue::<W>(queues, active, ready, first, Queued { ev, handles: None });
    }

    /// Handles an event a step returned.
    pub(super) fn emit(&mut self, from: usize, ev: Box<dyn AnyEvent>) {
        if ev.kind() == EventKind::InputRequired {
            let ty = ev.event_type_id();
            let routed = !self.shared.core.routes.receivers(ty).is_empty()
                || self.waiters.iter().any(|w| w.event.type_id == ty);
            if !routed {
                // The usual case: the request goes to the caller only, without a copy.
                self.stream().publish(Arc::from(ev));
                return;
            }
            self.stream().publish(Arc::from(ev.clone_event()));
        }
        self.deliver(ev, None, Some(from));
    }

    pub(super) fn handle_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Event { ev, target } => self.deliver(ev, target, None),
            Msg::Cancel => self.finish(Err(WorkflowError::Cancelled)),
            Msg::Fail(err) => self.finish(Err(err)),
            Msg::Wait(request) => self.add_waiter(*request),
            // Answered at the top of the loop, where no invocation is half-way through
            // completing (its effects in, its record not yet released).
            Msg::Snapshot(reply) => self.snapshot_requests.push(reply),
            Msg::AttachMemo { slot, seq, memo } => {
                if let Some(inv) = self.invocation_mut(slot, seq) {
                    inv.memo = Some(memo);
                }
            }
        }
    }

    /// The live invocation in `slot`, if it is still invocation number `seq`.
    pub(super) fn invocation_mut(&mut self, slot: usize, seq: u64) -> Option<&mut Invocation> {
        self.invocations
            .get_mut(slot)
            .and_then(Option::as_mut)
            .filter(|inv| inv.seq == seq)
    }

    /// Takes in every message sent so far, from steps and from outside, and applies it: after
    /// this, everything any step has done is reflected in the loop's own state, so that a
    /// snapshot taken now is a consistent cut. With `ending`, the run is already ending (a
    /// cancel or a timeout): a further cancel is moot.
    pub(super) fn settle(&mut self, ending: bool) {
        loop {
            self.shared.core.take_messages(&mut self.inbox);
            if self.inbox.is_empty() {
                return;
            }
            while let Some(msg) = self.inbox.pop_front() {
                match msg {
                    Msg::Cancel if ending => {}
                    msg => self.handle_msg(msg),
                }
                if self.done {
                    return;
                }
            }
        }
    }

    /// Answers the snapshot requests taken in so far with the run as it stands, after taking
    /// in everything sent before this instant.
    pub(super) fn answer_snapshots(&mut self) {
        if self.snapshot_requests.is_empty() {
            return;
        }
        self.settle(false);
        if self.done {
            // The run ended meanwhile: dropped replies get the final snapshot.
            self.snapshot_requests.clear();
            return;
        }
        for reply in std::mem::take(&mut self.snapshot_requests) {
            let _ = reply.send(self.capture(RunStatus::Running));
        }
    }

    /// Processes messages queued so far (including those steps sent while being polled).
    pub(super) fn drain_messages(&mut self) {
        while !self.done {
            let Some(msg) = self.inbox.pop_front() else {
                break;
            };
            self.handle_msg(msg);
        }
    }

    pub(super) fn alloc(&mut self, inv: Invocation) -> usize {
        match self.free.pop() {
            Some(slot) => {
                self.invocations[slot] = Some(inv);
                slot
            }
            None => {
                // Grow one slot at a time: most runs have one or two invocations at once.
                self.invocations.reserve_exact(1);
                self.invocations.push(Some(inv));
                self.invocations.len() - 1
            }
        }
    }

    /// Starts due retries, then queued events on every step with a free worker, visiting the
    /// steps round-robin so that a step that feeds itself cannot starve the others.
    pub(super) fn start_ready(&mut self, cx: &mut TaskContext<'_>, budget: &mut u32) {
        while *budget > 0
            && !self.done
            && let Some(slot) = self.retry_now.pop_front()
        {
            self.attempt(slot, cx);
            *budget -= 1;
        }
        // Events whose worker is already reserved, in arrival order.
        while *budget > 0
            && !self.done
            && let Some((step, queued)) = self.ready.pop_front()
        {
            self.start(step, queued, cx);
            *budget -= 1;
        }
        let steps = self.queues.len();
        let mut passed_without_start = 0;
        while passed_without_start < steps && *budget > 0 && !self.done {
            let step = self.cursor;
            self.cursor = (self.cursor + 1) % steps;
            if self.active[step] < W::STEPS[step].num_workers
                && let Some(queued) = self.queues[step].pop_front()
            {
                passed_without_start = 0;
                self.active[step] += 1;
                self.start(step, queued, cx);
                *budget -= 1;
            } else {
                passed_without_start += 1;
            }
        }
    }

    /// Queues `queued` for `step`: straight to the ready list, with a worker reserved, when the
    /// step has a free worker and nothing queued before it; else in the step's own queue.
    pub(super) fn enqueue(&mut self, step: usize, queued: Queued) {
        enqueue::<W>(
            &mut self.queues,
            &mut self.active,
            &mut self.ready,
            step,
            queued,
        );
    }

    /// Starts an invocation of `step` on `queued`; its worker is already counted.
    fn start(&mut self, step: usize, queued: Queued, cx: &mut TaskContext<'_>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let slot = self.alloc(Invocation {
            step,
            input: queued.ev,
            attempt: 1,
            seq,
            last_error: None,
            handles: queued.handles,
            memo: None,
            retry_at: None,
            running: true,
        });
        self.attempt(slot, cx);
        self.idle_published = false;
    }

    /// Runs one attempt of the invocation in `slot`: polls it once, and parks it if pending.
    pub(super) fn attempt(&mut self, slot: usize, cx: &mut TaskContext<'_>) {
        let inv = self.invocations[slot].as_mut().expect("live slot");
        inv.running = true;
        inv.retry_at = None;
        let inv = self.invocations[slot].as_ref().expect("live slot");
        let step = inv.step;
        let info = &W::STEPS[step];
        let max_attempts = W::__retry_policy(step).map_or(1, |p| p.max_attempts());
        let ctx = Context::new(
            self.shared.clone(),
            Placement {
                step,
                slot,
                seq: inv.seq,
            },
            RetryInfo {
                attempt: inv.attempt,
                max_attempts,
                last_error: inv.last_error.clone(),
            },
            inv.memo.clone(),
        );
        if self.internal_events {
            self.stream().publish(Arc::new(StepStateChanged {
                step: info.name.to_owned(),
                state: StepState::Running,
                invocation: inv.seq,
                input_event: inv.input.name().to_owned(),
                output_event: None,
            }));
        }
        let span = tracing::info_span!(
            parent: &self.span,
            "workflow.step",
            step = info.name,
            event = inv.input.name(),
            attempt = inv.attempt,
        );
        let Some(mut fut) = self.workflow.__invoke(step, ctx, &*inv.input) else {
            let event = inv.input.name().to_owned();
            self.finish(Err(WorkflowError::Unroutable {
                step: info.name.to_owned(),
                event,
            }));
            return;
        };
        let polled = {
            let _entered = span.enter();
            poll_step(&mut fut, cx)
        };
        match polled {
            Poll::Ready(result) => self.complete(Completion::Attempt(slot, result), cx),
            Poll::Pending => self
                .in_flight
                .get_or_insert_with(FuturesUnordered::new)
                .push(InFlight::step(slot, fut, span)),
        }
    }

    /// Applies the end of an in-flight entry.
    pub(super) fn complete(&mut self, completion: Completion, cx: &mut TaskContext<'_>) {
        let (slot, result) = match completion {
            Completion::BackoffOver(slot) => {
                self.retry_now.push_back(slot);
                return;
            }
            Completion::Attempt(slot, result) => (slot, result),
        };
        // The attempt's future is gone, and with it any wait it had begun.
        self.drop_waiters_of(slot);
        // Events the step sent through its context come before the one it returned.
        self.shared.core.take_messages(&mut self.inbox);
        self.drain_messages();
        if self.done {
            return;
        }
        match result {
            Ok(output) => {
                let inv = self.release(slot);
                self.publish_finished(&inv, output.as_deref());
                if let Some(failure) = &inv.handles {
                    let mut failure = lock(failure);
                    failure.undecided -= 1;
                    failure.recovered |= output.is_some();
                    if failure.undecided == 0
                        && !failure.recovered
                        && let Some(error) = failure.error.take()
                    {
                        drop(failure);
                        self.finish(Err(error));
                        return;
                    }
                }
                if let Some(ev) = output {
                    self.emit(inv.step, ev);
                }
            }
            Err(err) => self.retry_or_fail(slot, err, cx),
        }
    }

    pub(super) fn release(&mut self, slot: usize) -> Invocation {
        let inv = self.invocations[slot].take().expect("live slot");
        debug_assert!(
            !self
                .waiters
                .iter()
                .any(|w| w.slot == slot && w.seq == inv.seq)
        );
        self.free.push(slot);
        self.active[inv.step] -= 1;
        inv
    }

    pub(super) fn publish_finished(&self, inv: &Invocation, output: Option<&dyn AnyEvent>) {
        if self.internal_events {
            self.stream().publish(Arc::new(StepStateChanged {
                step: W::STEPS[inv.step].name.to_owned(),
                state: StepState::NotRunning,
                invocation: inv.seq,
                input_event: inv.input.name().to_owned(),
                output_event: output.map(|ev| ev.name().to_owned()),
            }));
        }
    }
}

/// See [`RunLoop::enqueue`]; a function of the fields it touches, so that callers may hold
/// other parts of the loop borrowed.
fn enqueue<W: Workflow>(
    queues: &mut [VecDeque<Queued>],
    active: &mut [usize],
    ready: &mut VecDeque<(usize, Queued)>,
    step: usize,
    queued: Queued,
) {
    if queues[step].is_empty() && active[step] < W::STEPS[step].num_workers {
        active[step] += 1;
        ready.push_back((step, queued));
    } else {
        queues[step].push_back(queued);
    }
}
