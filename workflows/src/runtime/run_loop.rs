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
use tokio::time::Sleep;

use crate::context::Placement;
use crate::lifecycle::{StepState, StepStateChanged, WorkflowIdle};
use crate::runtime::invocation::{AttemptError, Completion, InFlight, Invocation, poll_step};
use crate::runtime::shared::{Msg, RunShared, lock};
use crate::runtime::waiters::Waiter;
use crate::stream::StreamLog;
use crate::{
    AnyEvent, Context, EventKind, RetryInfo, RunOptions, StepFailed, StopType, Workflow,
    WorkflowCancelled, WorkflowError, WorkflowFailed, WorkflowTimedOut,
};

/// Dispatches per poll before the loop yields to the scheduler.
const BUDGET: u32 = 256;

/// An event waiting in a step's queue.
pub(super) struct Queued {
    pub(super) ev: Box<dyn AnyEvent>,
    /// For a `StepFailed` event: the failure, which ends the run unless the handler recovers.
    pub(super) handles: Option<Arc<WorkflowError>>,
}

pub(crate) struct RunLoop<W: Workflow> {
    pub(super) workflow: Arc<W>,
    pub(super) shared: Arc<RunShared<W::State>>,
    pub(super) queues: Vec<VecDeque<Queued>>,
    pub(super) active: Vec<usize>,
    /// Invocations by slot; `None` slots are free.
    pub(super) invocations: Vec<Option<Invocation>>,
    free: Vec<usize>,
    pub(super) in_flight: Option<FuturesUnordered<InFlight>>,
    /// Slots whose (re-)run is due now.
    pub(super) retry_now: VecDeque<usize>,
    pub(super) waiters: Vec<Waiter>,
    pub(super) next_waiter_key: u64,
    inbox: VecDeque<Msg>,
    timeout: Option<Duration>,
    deadline: Option<Pin<Box<Sleep>>>,
    internal_events: bool,
    idle_published: bool,
    pub(super) next_seq: u64,
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
            next_waiter_key: 0,
            inbox: VecDeque::new(),
            timeout: options.get_timeout(),
            deadline: None,
            internal_events: options.wants_internal_events(),
            idle_published: false,
            next_seq: 0,
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
        if ev.event_type_id() == std::any::TypeId::of::<W::Stop>() {
            let published: Arc<dyn AnyEvent> = Arc::from(ev.clone_event());
            let stop = ev
                .downcast::<W::Stop>()
                .unwrap_or_else(|_| unreachable!("type id checked"));
            self.finish_with(Ok(Box::new(stop.into_output())), published);
            return;
        }
        if ev.kind() == EventKind::InputRequired {
            self.stream().publish(Arc::from(ev.clone_event()));
        }
        self.deliver(ev, None, Some(from));
    }

    fn handle_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Event { ev, target } => self.deliver(ev, target, None),
            Msg::Cancel => self.finish(Err(WorkflowError::Cancelled)),
            Msg::Wait(request) => self.add_waiter(request),
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

    fn alloc(&mut self, inv: Invocation) -> usize {
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

    /// Starts queued events on every step with a free worker. Returns how many started.
    fn start_ready(&mut self, cx: &mut TaskContext<'_>, budget: &mut u32) -> u32 {
        let mut started = 0;
        while let Some(slot) = self.retry_now.pop_front() {
            self.attempt(slot, cx);
            started += 1;
        }
        let mut step = 0;
        while step < self.queues.len() && !self.done {
            if *budget == 0 {
                break;
            }
            if self.active[step] < W::STEPS[step].num_workers
                && let Some(queued) = self.queues[step].pop_front()
            {
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
                    running: true,
                });
                self.attempt(slot, cx);
                started += 1;
                *budget -= 1;
                self.idle_published = false;
                // Events emitted by that step may have filled earlier queues: rescan.
                step = 0;
                continue;
            }
            step += 1;
        }
        started
    }

    /// Runs one attempt of the invocation in `slot`: polls it once, and parks it if pending.
    fn attempt(&mut self, slot: usize, cx: &mut TaskContext<'_>) {
        self.invocations[slot].as_mut().expect("live slot").running = true;
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
            Completion::WaitTimeout(key) => {
                self.time_out_waiter(key);
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
                match output {
                    Some(ev) => self.emit(inv.step, ev),
                    None => {
                        if let Some(failure) = inv.handles {
                            self.fail(failure);
                        }
                    }
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
        let is_handler = handlers.contains(&step);
        if handlers.is_empty() || is_handler {
            self.fail(Arc::new(error));
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
        let error = Arc::new(error);
        for handler in handlers {
            self.queues[handler].push_back(Queued {
                ev: Box::new(failed.clone()),
                handles: Some(error.clone()),
            });
        }
    }

    /// Ends the run with `error`.
    fn fail(&mut self, error: Arc<WorkflowError>) {
        let error = Arc::try_unwrap(error).unwrap_or_else(|shared| WorkflowError::StepFailed {
            step: step_of(&shared).unwrap_or_default(),
            attempts: attempts_of(&shared),
            source: shared.to_string().into(),
        });
        self.finish(Err(error));
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

    fn active_steps(&self) -> Vec<String> {
        W::STEPS
            .iter()
            .zip(&self.active)
            .filter(|(_, n)| **n > 0)
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

fn attempts_of(err: &WorkflowError) -> u32 {
    match err {
        WorkflowError::StepFailed { attempts, .. }
        | WorkflowError::StepPanicked { attempts, .. } => *attempts,
        _ => 1,
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
        this.poll_deadline(cx);
        let shared = this.shared.clone();
        shared.core.begin_poll(&mut this.inbox);
        let mut budget = BUDGET;
        loop {
            this.drain_messages();
            if !this.done {
                this.start_ready(cx, &mut budget);
            }
            while !this.done {
                let Some(in_flight) = this.in_flight.as_mut() else {
                    break;
                };
                match in_flight.poll_next_unpin(cx) {
                    Poll::Ready(Some(completion)) => {
                        this.complete(completion, cx);
                        budget = budget.saturating_sub(1);
                    }
                    _ => break,
                }
            }
            if this.done {
                return Poll::Ready(());
            }
            if this.has_queued_work() || !this.inbox.is_empty() {
                if budget == 0 {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                continue;
            }
            if shared.core.take_or_park(&mut this.inbox, cx.waker()) {
                continue;
            }
            if this.is_blocked() {
                if shared.core.abandoned() {
                    this.finish(Err(WorkflowError::Cancelled));
                    return Poll::Ready(());
                }
                if this.internal_events && !this.idle_published {
                    this.idle_published = true;
                    this.stream().publish(Arc::new(WorkflowIdle {}));
                }
            } else {
                this.idle_published = false;
            }
            return Poll::Pending;
        }
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
