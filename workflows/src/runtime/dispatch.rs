//! Dispatch: the only code that moves an event between the parts of the loop — from a step's
//! output or a message to the waiters that match it, then to the queues of the steps that
//! accept it, or to the end of the run.
//!
//! # Invariants
//!
//! - An event is offered to the waiters first: every matching waiter gets its own copy (the
//!   Python library resolves every matching waiter), and a step that had a waiter answered
//!   does not also get the event as a new input.
//! - The workflow's stop event ends the run wherever it comes from.
//! - An answer is recorded in the waiting invocation's memo before it is handed over, so a
//!   snapshot taken after this point has it, whether or not the step has run on.

use std::any::TypeId;
use std::sync::Arc;

use crate::runtime::run_loop::RunLoop;
use crate::runtime::scheduler::Queued;
use crate::runtime::shared::lock;
use crate::runtime::waiters::Waiter;
use crate::wait::WaitError;
use crate::{AnyEvent, EventKind, Workflow, WorkflowError};

impl<W: Workflow> RunLoop<W> {
    /// Hands `ev` to matching waiters first, then queues it for `target`, or for every other
    /// step accepting its type. `from` is the step that returned it, if one did.
    pub(super) fn deliver(
        &mut self,
        ev: Box<dyn AnyEvent>,
        target: Option<usize>,
        from: Option<usize>,
    ) {
        if ev.event_type_id() == TypeId::of::<W::Stop>() {
            self.stop_with(ev);
            return;
        }
        let answered = self.answer_waiters(&*ev, target);
        if let Some(step) = target {
            if !answered.contains(&step) {
                self.scheduler.enqueue(step, Queued::event(ev));
            }
            return;
        }
        // Borrowing the routes through `self.run` leaves `self.scheduler` free to change.
        let all = self.run.shared.routes.receivers(ev.event_type_id());
        let mut receivers = all.iter().copied().filter(|s| !answered.contains(s));
        let Some(first) = receivers.next() else {
            if !answered.is_empty() || ev.kind() == EventKind::InputRequired {
                return;
            }
            match from {
                Some(step) => self.fail(WorkflowError::Unroutable {
                    step: W::STEPS[step].name.to_owned(),
                    event: ev.name().to_owned(),
                }),
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
        for step in receivers {
            self.scheduler
                .enqueue(step, Queued::event(ev.clone_event()));
        }
        self.scheduler.enqueue(first, Queued::event(ev));
    }

    /// Handles an event a step returned.
    pub(super) fn emit(&mut self, from: usize, ev: Box<dyn AnyEvent>) {
        if ev.kind() == EventKind::InputRequired {
            let ty = ev.event_type_id();
            let routed =
                !self.run.shared.routes.receivers(ty).is_empty() || self.waiters.waits_for(ty);
            if !routed {
                // The usual case: the request goes to the caller only, without a copy.
                self.run.shared.stream.publish(Arc::from(ev));
                return;
            }
            self.run.shared.stream.publish(Arc::from(ev.clone_event()));
        }
        self.deliver(ev, None, Some(from));
    }

    /// Answers every waiter that `ev` matches (only `target`'s, when given), each with its own
    /// copy. Returns the steps answered.
    fn answer_waiters(&mut self, ev: &dyn AnyEvent, target: Option<usize>) -> Vec<usize> {
        if self.waiters.is_empty() {
            // The usual case, kept free of calls.
            return Vec::new();
        }
        let matched = self.waiters.take_matching(ev, target, &self.run.shared);
        let mut answered: Vec<usize> = Vec::new();
        for waiter in matched {
            if !answered.contains(&waiter.step) {
                answered.push(waiter.step);
            }
            self.resolve(waiter, Ok(ev.clone_event()));
        }
        answered
    }

    /// Times out the waiters whose deadline has passed.
    pub(super) fn expire_waiters(&mut self, cx: &mut std::task::Context<'_>) {
        for waiter in self.waiters.poll_expired(cx, &self.run.shared) {
            let err = waiter.timeout_error();
            self.resolve(waiter, Err(err));
        }
    }

    /// Records the waiter's answer in its invocation's memo and hands it over; a restored
    /// invocation without a running future is made due again.
    fn resolve(&mut self, waiter: Waiter, answer: Result<Box<dyn AnyEvent>, WaitError>) {
        let Some(inv) = self.invocations.get_mut(waiter.invocation) else {
            return;
        };
        let memo = inv.memo.get_or_insert_with(Default::default).clone();
        let was_running = std::mem::replace(&mut inv.running, true);
        // The run has work again: when it next waits, that is a new idle spell to publish.
        self.idle_published = false;
        {
            let mut memo = lock(&memo);
            match &answer {
                Ok(ev) => {
                    memo.resolved
                        .insert(waiter.memo_key.clone(), ev.clone_event());
                }
                Err(_) => memo
                    .timed_out
                    .push((waiter.memo_key.clone(), waiter.timeout.unwrap_or_default())),
            }
        }
        if !was_running {
            // Made due once, however many of its waiters are answered before it runs.
            self.scheduler.attempt_due(waiter.invocation);
        } else if let Some(reply) = waiter.reply {
            let _ = reply.send(answer);
        }
    }
}
