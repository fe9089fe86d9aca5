//! Dispatch: the only code that moves an event between the parts of the loop — from a step's
//! output or a message to the waiters that match it, then to the queues of the steps that
//! accept it (or the fan-out a join collects it for), or to the end of the run.
//!
//! # Invariants
//!
//! - An event is offered to the waiters first: every matching waiter gets its own copy (the
//!   Python library resolves every matching waiter), and a step that had a waiter answered
//!   does not also get the event as a new input.
//! - The workflow's stop event ends the run wherever it comes from.
//! - Everything queued is counted in the fan-out it descends from (`enqueue`), and everything
//!   that ends lets go of it (`let_go`): see `fan_outs.rs`.
//! - An answer is recorded in the waiting invocation's memo before it is handed over, so a
//!   snapshot taken after this point has it, whether or not the step has run on.

use std::any::TypeId;
use std::sync::Arc;

use crate::runtime::fan_outs::{Closed, Collected, branch};
use crate::runtime::lineage::{Input, Lineage};
use crate::runtime::run_loop::RunLoop;
use crate::runtime::scheduler::Queued;
use crate::runtime::shared::lock;
use crate::runtime::waiters::Waiter;
use crate::wait::WaitError;
use crate::{AnyEvent, EventKind, Workflow, WorkflowError};

impl<W: Workflow> RunLoop<W> {
    /// Hands `ev`, from `lineage`, to matching waiters first, then queues it for `target`, or for
    /// every other step accepting its type (a join collects it instead). `from` is the step
    /// that returned it, if one did.
    pub(super) fn deliver(
        &mut self,
        ev: Box<dyn AnyEvent>,
        target: Option<usize>,
        from: Option<usize>,
        lineage: Lineage,
    ) {
        if ev.event_type_id() == TypeId::of::<W::Stop>() {
            self.stop_with(ev);
            return;
        }
        let answered = self.answer_waiters(&*ev, target);
        if let Some(step) = target {
            if self.run.shared.routes.is_join(step) {
                let name = ev.name();
                if !self.join(step, ev, &lineage) {
                    self.outside_fan_out(step, name, from);
                }
            } else if !answered.contains(&step) {
                self.take_in(step, ev, lineage);
            }
            return;
        }
        if self.run.shared.routes.has_gathering() {
            self.deliver_with_joins(ev, answered, from, lineage);
            return;
        }
        // Borrowing the routes through `self.run` leaves `self.scheduler` free to change.
        let all = self.run.shared.routes.receivers(ev.event_type_id());
        let mut receivers = all.iter().copied().filter(|s| !answered.contains(s));
        let Some(first) = receivers.next() else {
            if answered.is_empty() {
                self.unrouted(ev.name(), ev.kind(), from);
            }
            return;
        };
        // Every receiver but the first gets a copy; the first gets the event itself.
        for step in receivers {
            self.fan_outs.hold(&lineage);
            self.scheduler
                .enqueue(step, Queued::event(ev.clone_event(), lineage.clone()));
        }
        self.fan_outs.hold(&lineage);
        self.scheduler.enqueue(first, Queued::event(ev, lineage));
    }

    /// `deliver` in a workflow with joins or steps taking several events: a join collects the
    /// event into the fan-out it descends from, a step taking several holds it until its set is
    /// complete.
    fn deliver_with_joins(
        &mut self,
        ev: Box<dyn AnyEvent>,
        answered: Vec<usize>,
        from: Option<usize>,
        lineage: Lineage,
    ) {
        let routes = self.run.shared.routes.clone();
        let receivers: Vec<usize> = routes
            .receivers(ev.event_type_id())
            .iter()
            .copied()
            .filter(|s| !answered.contains(s))
            .collect();
        let (name, kind) = (ev.name(), ev.kind());
        let mut taken = !answered.is_empty();
        let mut outside = None;
        // Every receiver but the last gets a copy; the last gets the event itself.
        let mut ev = Some(ev);
        for (i, &step) in receivers.iter().enumerate() {
            let copy = match ev.take_if(|_| i + 1 == receivers.len()) {
                Some(own) => own,
                None => ev
                    .as_ref()
                    .expect("kept for the last receiver")
                    .clone_event(),
            };
            if routes.is_join(step) {
                if self.join(step, copy, &lineage) {
                    taken = true;
                } else {
                    outside.get_or_insert(step);
                }
            } else {
                self.take_in(step, copy, lineage.clone());
                taken = true;
            }
        }
        if taken {
            return;
        }
        match outside {
            Some(join) => self.outside_fan_out(join, name, from),
            None => self.unrouted(name, kind, from),
        }
    }

    /// Hands `ev` to step `step` (not a join): queued, or, for a step taking several events,
    /// held until its set is complete.
    fn take_in(&mut self, step: usize, ev: Box<dyn AnyEvent>, lineage: Lineage) {
        if !self.run.shared.routes.is_set(step) {
            self.enqueue(step, Queued::event(ev, lineage));
            return;
        }
        // Waiting for its partners, the event is not work of its fan-out (see `sets.rs`).
        if let Some(set) = self.sets.arrive(W::STEPS, step, ev, lineage) {
            self.enqueue(
                step,
                Queued {
                    input: Input::Batch(set.events),
                    lineage: set.lineage,
                    failure: None,
                },
            );
        }
    }

    /// Queues `queued` for `step`, counting it in the fan-out it descends from.
    #[inline]
    pub(super) fn enqueue(&mut self, step: usize, queued: Queued) {
        self.fan_outs.hold(&queued.lineage);
        self.scheduler.enqueue(step, queued);
    }

    /// `ev` arrives at join `step`; returns whether some fan-out the join is bound to took it.
    fn join(&mut self, step: usize, ev: Box<dyn AnyEvent>, lineage: &Lineage) -> bool {
        match self.fan_outs.collect(step, lineage, ev) {
            Collected::Outside => false,
            Collected::Kept | Collected::Ignored => true,
            Collected::Fire { lineage, batch } => {
                self.enqueue(
                    step,
                    Queued {
                        input: Input::Batch(batch),
                        lineage,
                        failure: None,
                    },
                );
                true
            }
        }
    }

    /// A piece of work in `lineage` is over: the fan-out it was the last work of closes, its
    /// joins fire, and so on outwards.
    pub(super) fn let_go(&mut self, lineage: &Lineage) {
        let closed = self.fan_outs.let_go(lineage);
        self.fire_closed(closed);
    }

    /// Fires the joins of a closed fan-out (counted in its lineage), then lets go of its lineage.
    pub(super) fn fire_closed(&mut self, mut closed: Option<Closed>) {
        while let Some(Closed { lineage, fire }) = closed {
            for (step, batch) in fire {
                self.enqueue(
                    step,
                    Queued {
                        input: Input::Batch(batch),
                        lineage: lineage.clone(),
                        failure: None,
                    },
                );
            }
            closed = self.fan_outs.let_go(&lineage);
        }
    }

    /// Opens a fan-out of the list `events` that an invocation of `from` in `lineage` returned,
    /// and routes each element as if returned alone, in order, in a branch of its own.
    pub(super) fn fan_out(
        &mut self,
        from: usize,
        events: Vec<Box<dyn AnyEvent>>,
        lineage: &Lineage,
    ) {
        let routes = self.run.shared.routes.clone();
        let id = self
            .fan_outs
            .open(from, lineage.clone(), routes.joins_of(from), W::STEPS);
        for (element, ev) in events.into_iter().enumerate() {
            self.emit(from, ev, lineage.within(branch(id, element)));
            if self.done {
                return;
            }
        }
        let closed = self.fan_outs.delivered(id);
        self.fire_closed(closed);
    }

    /// No step takes `ev`: a run error when a step returned it; else (an event sent when a
    /// waiter for it existed, gone since) dropped with a warning.
    fn unrouted(&mut self, event: &'static str, kind: EventKind, from: Option<usize>) {
        if kind == EventKind::InputRequired {
            return;
        }
        match from {
            Some(step) => self.fail(WorkflowError::Unroutable {
                step: W::STEPS[step].name.to_owned(),
                event: event.to_owned(),
            }),
            // Checked when sent; only a waiter that went away in between gets here.
            None => tracing::warn!(
                parent: self.span.get(),
                event,
                "event sent into the run has no receiver any more; dropped"
            ),
        }
    }

    /// Only join `join` takes `ev`, and `ev` descends from no fan-out the join is bound to.
    fn outside_fan_out(&mut self, join: usize, event: &'static str, from: Option<usize>) {
        self.fail(WorkflowError::OutsideFanOut {
            step: from.map(|s| W::STEPS[s].name.to_owned()),
            event: event.to_owned(),
            join: W::STEPS[join].name.to_owned(),
        });
    }

    /// Handles an event a step returned, from `lineage`.
    pub(super) fn emit(&mut self, from: usize, ev: Box<dyn AnyEvent>, lineage: Lineage) {
        if ev.kind() == EventKind::InputRequired {
            let ty = ev.event_type_id();
            let routed =
                !self.run.shared.routes.receivers(ty).is_empty() || self.waiters.waits_for(ty);
            if !routed {
                // The usual case: the request goes to the caller only, without a copy.
                self.publish_request(Arc::from(ev));
                return;
            }
            self.publish_request(Arc::from(ev.clone_event()));
        }
        self.deliver(ev, None, Some(from), lineage);
    }

    /// Publishes the input request `ev` a step returned; it is open until answered.
    fn publish_request(&mut self, ev: Arc<dyn AnyEvent>) {
        if let Some(seq) = self.run.shared.stream.publish(ev.clone()) {
            self.requests.open(seq, ev);
        }
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
