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

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use std::panic::{AssertUnwindSafe, catch_unwind};

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

use crate::error::PanicError;

use crate::context::Placement;
use crate::lifecycle::{StepState, StepStateChanged, WorkflowIdle};
use crate::runtime::invocation::{
    AttemptError, Completion, Failure, InFlight, Invocation, SharedFailure, poll_step,
};
use crate::runtime::shared::{Msg, RunShared, lock};
use crate::runtime::waiters::Waiter;
use crate::snapshot::RunStatus;
use crate::stream::StreamLog;
use crate::{
    AnyEvent, Context, EventKind, RetryInfo, RunOptions, StepFailed, StopType, Workflow,
    WorkflowCancelled, WorkflowError, WorkflowFailed, WorkflowTimedOut,
};

/// Where a requested snapshot goes.
type SnapshotReply = tokio::sync::oneshot::Sender<Result<crate::Snapshot, crate::SnapshotError>>;

/// Waiting for a slot among a runner's concurrent runs.
type SlotWait = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// Dispatches per poll before the loop yields to the scheduler.
const BUDGET: u32 = 256;

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
    inbox: VecDeque<Msg>,
    snapshot_requests: Vec<SnapshotReply>,
    /// The wait for a slot among the runner's concurrent runs, and then the slot itself.
    acquire: Option<SlotWait>,
    permit: Option<OwnedSemaphorePermit>,
    timeout: Option<Duration>,
    deadline: Option<Pin<Box<Sleep>>>,
    internal_events: bool,
    idle_published: bool,
    pub(super) next_seq: u64,
    /// The step `start_ready` visits first next time.
    cursor: usize,
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
    fn deliver(&mut self, ev: Box<dyn AnyEvent>, target: Option<usize>, from: Option<usize>) {
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
                self.queues[step].push_back(Queued { ev, handles: None });
            }
            return;
        }
        let routes = self.shared.core.routes.clone();
        let receivers: Vec<usize> = routes
            .receivers(ev.event_type_id())
            .iter()
            .copied()
            .filter(|s| !answered.contains(s))
            .collect();
        match receivers.as_slice() {
            [] => {
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
            }
            [only] => self.queues[*only].push_back(Queued { ev, handles: None }),
            [rest @ .., last] => {
                for step in rest {
                    self.queues[*step].push_back(Queued {
                        ev: ev.clone_event(),
                        handles: None,
                    });
                }
                self.queues[*last].push_back(Queued { ev, handles: None });
            }
        }
    }

    /// Handles an event a step returned.
    fn emit(&mut self, from: usize, ev: Box<dyn AnyEvent>) {
        if ev.kind() == EventKind::InputRequired {
            self.stream().publish(Arc::from(ev.clone_event()));
        }
        self.deliver(ev, None, Some(from));
    }

    /// Ends the run with its stop event `ev`.
    fn stop_with(&mut self, ev: Box<dyn AnyEvent>) {
        let published: Arc<dyn AnyEvent> = Arc::from(ev.clone_event());
        match ev.downcast::<W::Stop>() {
            Ok(stop) => self.finish_with(Ok(Box::new(stop.into_output())), published),
            Err(_) => unreachable!("called for the stop type only"),
        }
    }

    fn handle_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Event { ev, target } => self.deliver(ev, target, None),
            Msg::Cancel => self.finish(Err(WorkflowError::Cancelled)),
            Msg::Wait(request) => self.add_waiter(request),
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

    /// Processes messages queued so far (including those steps sent while being polled).
    fn drain_messages(&mut self) {
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
                self.invocations.push(Some(inv));
                self.invocations.len() - 1
            }
        }
    }

    /// Starts due retries, then queued events on every step with a free worker, visiting the
    /// steps round-robin so that a step that feeds itself cannot starve the others.
    fn start_ready(&mut self, cx: &mut TaskContext<'_>, budget: &mut u32) {
        while *budget > 0
            && !self.done
            && let Some(slot) = self.retry_now.pop_front()
        {
            self.attempt(slot, cx);
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
                *budget -= 1;
                self.idle_published = false;
            } else {
                passed_without_start += 1;
            }
        }
    }

    /// Runs one attempt of the invocation in `slot`: polls it once, and parks it if pending.
    fn attempt(&mut self, slot: usize, cx: &mut TaskContext<'_>) {
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
    fn complete(&mut self, completion: Completion, cx: &mut TaskContext<'_>) {
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

    fn release(&mut self, slot: usize) -> Invocation {
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

    fn publish_finished(&self, inv: &Invocation, output: Option<&dyn AnyEvent>) {
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

    fn retry_or_fail(&mut self, slot: usize, err: AttemptError, _cx: &mut TaskContext<'_>) {
        let span = &self.span;
        let inv = self.invocations[slot].as_mut().expect("live slot");
        let step = inv.step;
        let delay = W::__retry_policy(step).and_then(|p| p.next_delay(inv.attempt, err.as_error()));
        if let Some(delay) = delay {
            tracing::debug!(
                parent: span,
                step = W::STEPS[step].name,
                attempt = inv.attempt,
                error = %err.as_error(),
                "step failed; retrying"
            );
            inv.attempt += 1;
            inv.running = false;
            inv.last_error = Some(err.as_error().to_string());
            if delay.is_zero() {
                self.retry_now.push_back(slot);
            } else {
                inv.retry_at = Some(tokio::time::Instant::now() + delay);
                self.in_flight
                    .get_or_insert_with(FuturesUnordered::new)
                    .push(InFlight::backoff(slot, tokio::time::sleep(delay)));
            }
            return;
        }
        let inv = self.release(slot);
        self.publish_finished(&inv, None);
        let name = W::STEPS[step].name;
        let handlers = self
            .shared
            .core
            .routes
            .receivers(std::any::TypeId::of::<StepFailed>())
            .to_vec();
        let error = err.into_workflow_error(name, inv.attempt);
        // A failing failure handler ends the run with its own error.
        if handlers.is_empty() || handlers.contains(&step) {
            self.finish(Err(error));
            return;
        }
        let failed = StepFailed {
            step: name.to_owned(),
            attempts: inv.attempt,
            error: match &error {
                WorkflowError::StepFailed { source, .. } => source.to_string(),
                WorkflowError::StepPanicked { message, .. } => format!("panic: {message}"),
                other => other.to_string(),
            },
            input_event: inv.input.name().to_owned(),
            input: inv.input.to_json().unwrap_or(serde_json::Value::Null),
        };
        let failure = Arc::new(std::sync::Mutex::new(Failure {
            error: Some(error),
            undecided: handlers.len(),
            recovered: false,
        }));
        for handler in handlers {
            self.queues[handler].push_back(Queued {
                ev: Box::new(failed.clone()),
                handles: Some(failure.clone()),
            });
        }
    }

    /// Ends the run with `outcome`, publishing the matching last event.
    fn finish(&mut self, outcome: Result<Box<dyn std::any::Any + Send>, WorkflowError>) {
        let last: Arc<dyn AnyEvent> = match &outcome {
            Ok(_) => unreachable!("a result ends the run through finish_with"),
            Err(WorkflowError::Cancelled) => Arc::new(WorkflowCancelled {}),
            Err(WorkflowError::Timeout {
                timeout,
                active_steps,
            }) => Arc::new(WorkflowTimedOut {
                timeout_ms: timeout.as_millis() as u64,
                active_steps: active_steps.clone(),
            }),
            Err(err) => Arc::new(WorkflowFailed {
                step: step_of(err),
                error: err.to_string(),
            }),
        };
        self.finish_with(outcome, last);
    }

    fn finish_with(
        &mut self,
        outcome: Result<Box<dyn std::any::Any + Send>, WorkflowError>,
        last: Arc<dyn AnyEvent>,
    ) {
        if self.done {
            return;
        }
        self.done = true;
        // A cancelled or timed-out run can be resumed: keep it as it was.
        let resumable = match &outcome {
            Err(WorkflowError::Cancelled) => Some(RunStatus::Cancelled),
            Err(WorkflowError::Timeout { .. }) => Some(RunStatus::TimedOut),
            _ => None,
        };
        if let Some(status) = resumable
            && let Ok(snapshot) = self.capture(status)
        {
            *lock(&self.shared.core.final_snapshot) = Some(snapshot);
        }
        match &outcome {
            Ok(_) => tracing::debug!(parent: &self.span, "run finished"),
            Err(err) => tracing::debug!(parent: &self.span, error = %err, "run ended"),
        }
        // Dropping the in-flight futures cancels the steps still running.
        self.in_flight = None;
        self.queues.iter_mut().for_each(VecDeque::clear);
        self.invocations.clear();
        self.retry_now.clear();
        // Dropping the replies ends any wait still pending.
        self.waiters.clear();
        self.shared.core.set_waiting(&[]);
        lock(&self.shared.core.collect).clear();
        self.stream().publish_last(last);
        self.shared.core.finish(outcome);
    }

    /// The steps running or with events queued.
    fn active_steps(&self) -> Vec<String> {
        W::STEPS
            .iter()
            .zip(self.active.iter().zip(&self.queues))
            .filter(|(_, (n, q))| **n > 0 || !q.is_empty())
            .map(|(s, _)| s.name.to_owned())
            .collect()
    }

    fn has_queued_work(&self) -> bool {
        !self.retry_now.is_empty()
            || self
                .queues
                .iter()
                .zip(&self.active)
                .enumerate()
                .any(|(i, (q, n))| !q.is_empty() && *n < W::STEPS[i].num_workers)
    }

    /// Whether the run can only move on when an event arrives from outside: nothing queued,
    /// and every live invocation waits for an event (or there is none).
    fn is_blocked(&self) -> bool {
        if !self.retry_now.is_empty() || !self.queues.iter().all(VecDeque::is_empty) {
            return false;
        }
        self.invocations
            .iter()
            .enumerate()
            .all(|(slot, inv)| match inv {
                None => true,
                Some(inv) => self
                    .waiters
                    .iter()
                    .any(|w| w.slot == slot && w.seq == inv.seq),
            })
    }

    fn poll_deadline(&mut self, cx: &mut TaskContext<'_>) {
        let Some(timeout) = self.timeout else {
            return;
        };
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if deadline.as_mut().poll(cx).is_ready() {
            let active_steps = self.active_steps();
            self.finish(Err(WorkflowError::Timeout {
                timeout,
                active_steps,
            }));
        }
    }
}

fn step_of(err: &WorkflowError) -> Option<String> {
    match err {
        WorkflowError::StepFailed { step, .. }
        | WorkflowError::StepPanicked { step, .. }
        | WorkflowError::Unroutable { step, .. } => Some(step.clone()),
        _ => None,
    }
}

impl<W: Workflow> RunLoop<W> {
    /// Makes the run wait for a slot of `limit` before it starts.
    pub(crate) fn limit_by(&mut self, limit: Arc<Semaphore>) {
        self.acquire = Some(Box::pin(limit.acquire_owned()));
    }

    /// Waits for the run's slot, if it needs one; meanwhile only a cancel is acted on.
    /// Returns whether the run may go on.
    fn poll_slot(&mut self, cx: &mut TaskContext<'_>) -> bool {
        let Some(acquire) = self.acquire.as_mut() else {
            return true;
        };
        if let Poll::Ready(permit) = acquire.as_mut().poll(cx) {
            // The semaphore is never closed, so acquiring only waits.
            self.permit = permit.ok();
            self.acquire = None;
            return true;
        }
        while self.shared.core.take_or_park(&mut self.inbox, cx.waker()) {}
        if self.inbox.iter().any(|m| matches!(m, Msg::Cancel)) {
            // Queue what came before the cancel, so that the run's snapshot holds it.
            self.drain_messages();
        }
        false
    }

    fn poll_run(&mut self, cx: &mut TaskContext<'_>) -> Poll<()> {
        if !self.poll_slot(cx) {
            return if self.done {
                Poll::Ready(())
            } else {
                Poll::Pending
            };
        }
        self.poll_deadline(cx);
        let shared = self.shared.clone();
        shared.core.begin_poll(&mut self.inbox);
        let mut budget = BUDGET;
        loop {
            self.drain_messages();
            for reply in std::mem::take(&mut self.snapshot_requests) {
                let _ = reply.send(self.capture(RunStatus::Running));
            }
            if !self.done {
                self.start_ready(cx, &mut budget);
            }
            while !self.done && budget > 0 {
                let Some(in_flight) = self.in_flight.as_mut() else {
                    break;
                };
                match in_flight.poll_next_unpin(cx) {
                    Poll::Ready(Some(completion)) => {
                        self.complete(completion, cx);
                        budget -= 1;
                    }
                    _ => break,
                }
            }
            if !self.done {
                self.poll_wait_timer(cx);
            }
            if self.done {
                return Poll::Ready(());
            }
            if budget == 0 {
                // Let other tasks run; the inbox stays marked as being drained.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if self.has_queued_work()
                || !self.inbox.is_empty()
                || !self.snapshot_requests.is_empty()
            {
                continue;
            }
            if shared.core.take_or_park(&mut self.inbox, cx.waker()) {
                continue;
            }
            if self.is_blocked() {
                if shared.core.abandoned() {
                    // A sender may have queued a message just before it went away.
                    if shared.core.take_or_park(&mut self.inbox, cx.waker()) {
                        continue;
                    }
                    self.finish(Err(WorkflowError::Cancelled));
                    return Poll::Ready(());
                }
                if self.internal_events && !self.idle_published {
                    self.idle_published = true;
                    self.stream().publish(Arc::new(WorkflowIdle {}));
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
        let span = this.span.clone();
        let _entered = span.enter();
        if this.done {
            return Poll::Ready(());
        }
        // Step futures catch their own panics; this catches those of user code the loop calls
        // itself (an event's Clone or Serialize, a retry predicate).
        match catch_unwind(AssertUnwindSafe(|| this.poll_run(cx))) {
            Ok(poll) => poll,
            Err(payload) => {
                let message = PanicError::from_payload(&*payload).message;
                this.finish(Err(WorkflowError::Panicked { message }));
                Poll::Ready(())
            }
        }
    }
}

impl<W: Workflow> RunLoop<W> {
    /// Marks a loop that will never be polled as done, so that dropping it does not end the
    /// run a second time.
    pub(crate) fn abandon(&mut self) {
        self.done = true;
    }
}

impl<W: Workflow> Drop for RunLoop<W> {
    fn drop(&mut self) {
        // The runtime shut down under a live run: its handler must not wait forever.
        if !self.done {
            self.finish(Err(WorkflowError::Cancelled));
        }
    }
}
