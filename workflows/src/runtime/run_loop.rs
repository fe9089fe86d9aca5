//! The control loop of one run: the future that owns the run's loop-side state and drives it.
//!
//! Each poll takes in messages from the inbox and applies them, answers snapshot requests,
//! starts what the scheduler has ready, polls the in-flight attempts, fires waiter timeouts,
//! and repeats until nothing is left to do; then it parks on the inbox. A budget bounds the
//! work done per poll so that a step that loops on itself cannot starve cancellation, the inbox
//! or other runs.
//!
//! # Invariants
//!
//! - Snapshot requests are answered only at the top of an iteration, after every message sent
//!   so far is applied (`settle`), never half-way through applying an attempt's end: so a
//!   snapshot is a consistent cut.
//! - The loop returns `Pending` only after `take_or_park` found the inbox empty (it will be
//!   woken by the next push) or after waking itself (budget spent).
//! - Once `done`, the loop does nothing more; the run's outcome is set exactly once, by
//!   `finish_with` (see `ending.rs`).

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use thin_vec::ThinVec;

use crate::error::PanicError;
use crate::lifecycle::WorkflowIdle;
use crate::runtime::admission::Admission;
use crate::runtime::attempt::InFlight;
use crate::runtime::fan_outs::FanOuts;
use crate::runtime::invocations::Invocations;
use crate::runtime::requests::Requests;
use crate::runtime::scheduler::Scheduler;
use crate::runtime::sets::Sets;
use crate::runtime::shared::{Msg, Run, lock};
use crate::runtime::waiters::Waiters;
use crate::snapshot::RunStatus;
use crate::workflow::RunnerInner;
use crate::{RunOptions, Workflow, WorkflowError};

/// Where a requested snapshot goes.
type SnapshotReply = tokio::sync::oneshot::Sender<Result<crate::Snapshot, crate::SnapshotError>>;

/// A run built but not launched: its shared part and its loop.
pub(crate) type Built<W> = (Arc<Run<<W as Workflow>::State>>, RunLoop<W>);

/// Starts, completions and messages handled per poll before the loop yields to the scheduler.
const BUDGET: u32 = 256;

pub(crate) struct RunLoop<W: Workflow> {
    /// The runner's workflow instance and settings (its retry policies, resolved once).
    pub(super) runner: Arc<RunnerInner<W>>,
    /// The part of the run shared with its handler and contexts.
    pub(super) run: Arc<Run<W::State>>,
    pub(super) scheduler: Scheduler,
    pub(super) invocations: Invocations,
    /// The attempts and back-offs under way.
    pub(super) in_flight: Option<FuturesUnordered<InFlight>>,
    pub(super) waiters: Waiters,
    pub(super) fan_outs: FanOuts,
    pub(super) sets: Sets,
    /// The input requests steps returned that are not answered yet.
    pub(super) requests: Requests,
    pub(super) admission: Admission,
    /// Messages taken from the inbox and not applied yet.
    pub(super) taken: VecDeque<Msg>,
    pub(super) snapshot_requests: ThinVec<SnapshotReply>,
    pub(super) internal_events: bool,
    /// Whether `WorkflowIdle` was published for the current idle spell.
    pub(super) idle_published: bool,
    /// The clock, read at most once per poll: the start time of the invocations started in
    /// it (a read costs as much as a tenth of a dispatch).
    pub(super) clock: Option<tokio::time::Instant>,
    pub(super) done: bool,
    pub(super) span: RunSpan,
}

/// A run's `workflow.run` span, the parent of its steps' spans: boxed, and only when there is
/// one (most runs are not traced, and every byte of the loop is a byte of each run's task).
/// Without a subscriber that takes it the macro makes `Span::none()`, which is not kept;
/// with `tracing`'s `log` feature it makes a disabled span with metadata, which is kept so
/// that its enter and exit lines are logged as before.
pub(super) struct RunSpan(Option<Box<tracing::Span>>);

/// The span of a run no subscriber takes.
static NO_SPAN: tracing::Span = tracing::Span::none();

impl RunSpan {
    fn new(span: tracing::Span) -> Self {
        let none = span.is_disabled() && span.metadata().is_none();
        RunSpan((!none).then(|| Box::new(span)))
    }

    pub(super) fn get(&self) -> &tracing::Span {
        self.0.as_deref().unwrap_or(&NO_SPAN)
    }
}

impl<W: Workflow> RunLoop<W> {
    pub(crate) fn new(
        runner: Arc<RunnerInner<W>>,
        run: Arc<Run<W::State>>,
        options: RunOptions,
    ) -> Self {
        let span = tracing::info_span!(
            "workflow.run",
            workflow = W::NAME,
            run_id = %run.shared.run_id,
        );
        RunLoop {
            runner,
            run,
            scheduler: Scheduler::new(W::STEPS),
            invocations: Invocations::default(),
            in_flight: None,
            waiters: Waiters::default(),
            fan_outs: FanOuts::default(),
            sets: Sets::default(),
            requests: Requests::default(),
            admission: Admission::new(options.get_timeout()),
            taken: VecDeque::new(),
            snapshot_requests: ThinVec::new(),
            internal_events: options.wants_internal_events(),
            idle_published: false,
            clock: None,
            done: false,
            span: RunSpan::new(span),
        }
    }

    fn handle_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Event {
                ev,
                target,
                lineage,
                outside,
            } => {
                if outside {
                    self.requests.answered_by(ev.name());
                }
                self.deliver(ev, target, None, lineage)
            }
            Msg::Cancel => self.fail(WorkflowError::Cancelled),
            Msg::ChildActivity => self.idle_published = false,
            Msg::Fail(err) => self.fail(*err),
            Msg::Wait(request) => {
                let Some(inv) = self.invocations.get(request.invocation) else {
                    return; // The invocation already ended; dropping the reply tells its future.
                };
                let (number, step) = (inv.number, inv.step);
                self.waiters.add(*request, number, step, &self.run.shared);
            }
            // Answered at the top of the loop, where no attempt's end is half applied.
            Msg::Snapshot(reply) => self.snapshot_requests.push(reply),
            Msg::AttachMemo { invocation, memo } => {
                if let Some(inv) = self.invocations.get_mut(invocation) {
                    inv.memo = Some(memo);
                }
            }
        }
    }

    /// Applies the messages taken so far, in order, until the run ends.
    pub(super) fn apply_taken(&mut self) {
        while !self.done {
            let Some(msg) = self.taken.pop_front() else {
                break;
            };
            self.handle_msg(msg);
        }
    }

    /// Takes in every message sent so far, from steps and from outside, and applies it: after
    /// this, everything any step has done is reflected in the loop's own state, so that a
    /// snapshot taken now is a consistent cut. With `ending`, the run is already ending (a
    /// cancel or a timeout): a further cancel is moot.
    pub(super) fn settle(&mut self, ending: bool) {
        loop {
            self.run.shared.inbox.take(&mut self.taken);
            if self.taken.is_empty() {
                return;
            }
            while let Some(msg) = self.taken.pop_front() {
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
    fn answer_snapshots(&mut self) {
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

    /// Makes the run wait for a slot of `limit` before it starts.
    pub(crate) fn limit_by(&mut self, limit: Arc<tokio::sync::Semaphore>) {
        self.admission.limit_by(limit);
    }

    /// Waits for the run's slot, if it needs one. Meanwhile events are queued (no step starts),
    /// cancels end the run, and snapshots are answered. Returns whether the run may go on.
    fn poll_admitted(&mut self, cx: &mut TaskContext<'_>) -> bool {
        if self.admission.poll_admitted(cx) {
            return true;
        }
        while self
            .run
            .shared
            .inbox
            .take_or_park(&mut self.taken, cx.waker())
        {
            self.apply_taken();
            self.answer_snapshots();
            if self.done {
                break;
            }
        }
        false
    }

    /// Whether the run can only move on when an event arrives from outside: nothing queued,
    /// and every live invocation waits for an event, or awaits child runs that are all
    /// blocked so (or there is none).
    pub(super) fn is_blocked(&self) -> bool {
        self.scheduler.is_empty()
            && self.invocations.iter().all(|(id, inv)| {
                let Some(memo) = inv.memo.as_ref() else {
                    return self.waiters.is_waiting(id);
                };
                let memo = lock(memo);
                (self.waiters.is_waiting(id) || memo.children.has_live())
                    && memo.children.live_blocked()
            })
    }

    /// Frees the buffers of empty queues and lists, so that a suspended run holds little.
    fn compact(&mut self) {
        self.invocations.compact();
        self.scheduler.compact();
        self.requests.compact();
        if self.taken.is_empty() && self.taken.capacity() > 0 {
            self.taken = VecDeque::new();
        }
        if self.in_flight.as_ref().is_some_and(|f| f.is_empty()) {
            self.in_flight = None;
        }
        self.run.shared.inbox.compact();
    }

    fn poll_run(&mut self, cx: &mut TaskContext<'_>) -> Poll<()> {
        if !self.poll_admitted(cx) {
            return if self.done {
                Poll::Ready(())
            } else {
                Poll::Pending
            };
        }
        if let Some(timeout) = self.admission.poll_timed_out(cx) {
            let active_steps = self.scheduler.active_steps(W::STEPS);
            self.fail(WorkflowError::Timeout {
                timeout,
                active_steps,
            });
            return Poll::Ready(());
        }
        let run = self.run.clone();
        let inbox = &run.shared.inbox;
        inbox.begin_poll(&mut self.taken);
        let mut budget = BUDGET;
        loop {
            self.apply_taken();
            self.answer_snapshots();
            if !self.done {
                self.start_ready(cx, &mut budget);
            }
            while !self.done && budget > 0 {
                let Some(in_flight) = self.in_flight.as_mut() else {
                    break;
                };
                match in_flight.poll_next_unpin(cx) {
                    Poll::Ready(Some(completion)) => {
                        self.complete(completion);
                        budget -= 1;
                    }
                    _ => break,
                }
            }
            if !self.done {
                self.expire_waiters(cx);
            }
            if self.done {
                return Poll::Ready(());
            }
            if budget == 0 {
                // Let other tasks run; the inbox stays marked as being polled.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if self.scheduler.has_startable()
                || !self.taken.is_empty()
                || !self.snapshot_requests.is_empty()
            {
                continue;
            }
            if inbox.take_or_park(&mut self.taken, cx.waker()) {
                continue;
            }
            if self.is_blocked() {
                // A run waiting for the outside may wait for days: give back what it can.
                self.compact();
                if run.shared.abandoned() {
                    // A sender may have queued a message just before it went away.
                    if inbox.take_or_park(&mut self.taken, cx.waker()) {
                        continue;
                    }
                    // Or sent it to a child: its step is woken, and polled next.
                    if !self.is_blocked() {
                        return Poll::Pending;
                    }
                    self.fail(WorkflowError::Cancelled);
                    return Poll::Ready(());
                }
                if self.internal_events && !self.idle_published {
                    self.idle_published = true;
                    run.shared.stream.publish(Arc::new(WorkflowIdle {}));
                }
            } else {
                self.idle_published = false;
            }
            return Poll::Pending;
        }
    }
}

impl<W: Workflow> Future for RunLoop<W> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = &mut *self;
        let span = this.span.get().clone();
        let _entered = span.enter();
        if this.done {
            return Poll::Ready(());
        }
        this.clock = None;
        // Step futures catch their own panics; this catches those of user code the loop calls
        // itself (an event's Clone or Serialize, a retry predicate).
        match catch_unwind(AssertUnwindSafe(|| this.poll_run(cx))) {
            Ok(poll) => poll,
            Err(payload) => {
                let message = PanicError::from_payload(&*payload).message;
                this.fail(WorkflowError::Panicked { message });
                Poll::Ready(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each run's task holds its span: an untraced run pays a pointer.
    #[test]
    fn an_untraced_run_pays_a_pointer_for_its_span() {
        assert_eq!(std::mem::size_of::<RunSpan>(), std::mem::size_of::<usize>());
        let span = RunSpan::new(tracing::Span::none());
        assert!(span.0.is_none() && span.get().is_disabled());
    }

    /// (Here rather than in `inbox.rs`, which the loom test compiles against loom's mutex.)
    #[test]
    fn a_first_message_takes_room_for_one() {
        let inbox = crate::runtime::inbox::Inbox::default();
        inbox.push(1_u64).unwrap();
        assert_eq!(inbox.capacity(), 1);
        inbox.push(2).unwrap();
        let mut taken = VecDeque::new();
        inbox.take(&mut taken);
        assert_eq!(taken, [1, 2]);
    }
}
