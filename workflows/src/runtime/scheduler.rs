//! What a run starts next: each step's queue of events, the worker counts, and the
//! invocations whose next attempt is due.
//!
//! # Invariants
//!
//! - `steps[step].workers.busy` counts the step's workers in use: its live invocations (running, waiting,
//!   or backing off before a retry) plus the events on the ready list. It never exceeds the
//!   step's `num_workers`, except after a restore of a snapshot taken by a workflow with more
//!   workers (then no new invocation starts until it drops below).
//! - An event on the ready list has its worker counted already and is older than every event
//!   in its step's queue; a step's queue is served first come, first served.
//! - Steps are visited round-robin from `cursor`, so a step that feeds itself cannot starve
//!   the others.

use std::collections::VecDeque;

use thin_vec::ThinVec;

use crate::runtime::invocations::{InvocationId, SharedFailure, failure_record};
use crate::runtime::lineage::{Input, Lineage};
use crate::snapshot::{QueuedEvent, SnapshotError};
use crate::{AnyEvent, StepInfo};

/// An event (or a join's batch) waiting in a step's queue.
pub(crate) struct Queued {
    pub(crate) input: Input,
    /// The fan-out branches it descends from.
    pub(crate) lineage: Lineage,
    /// For a `StepFailed` event: the failure, which ends the run unless a failure step
    /// recovers.
    pub(crate) failure: Option<SharedFailure>,
}

impl Queued {
    #[inline]
    pub(crate) fn event(ev: Box<dyn AnyEvent>, lineage: Lineage) -> Self {
        Queued {
            input: Input::One(ev),
            lineage,
            failure: None,
        }
    }
}

/// What to start next.
pub(crate) enum Start {
    /// The next attempt of a live invocation (a retry, or a restored invocation running again).
    Attempt(InvocationId),
    /// A new invocation of `step` on an event; its worker is counted already.
    New(usize, Queued),
}

/// A step's workers: how many are in use, and its `num_workers`.
#[derive(Clone, Copy)]
struct Workers {
    busy: u32,
    limit: u32,
}

impl Workers {
    #[inline]
    fn free(self) -> bool {
        self.busy < self.limit
    }
}

/// One step's queue of events and its workers.
struct StepQueue {
    queue: VecDeque<Queued>,
    workers: Workers,
}

// The scheduler lives inside every run's task: it is kept small (one boxed slice for the
// steps, u32 counts, a thin list for the rare due attempts).
pub(crate) struct Scheduler {
    steps: Box<[StepQueue]>,
    /// Events to start next, each with a worker of its step already counted.
    ready: VecDeque<(usize, Queued)>,
    /// Invocations whose next attempt is due now, oldest first (retries: few at a time).
    due: ThinVec<InvocationId>,
    /// The step `next` visits first next time.
    cursor: usize,
}

impl Scheduler {
    pub(crate) fn new(steps: &[StepInfo]) -> Self {
        Scheduler {
            steps: steps
                .iter()
                .map(|s| StepQueue {
                    queue: VecDeque::new(),
                    workers: Workers {
                        busy: 0,
                        limit: u32::try_from(s.num_workers).unwrap_or(u32::MAX),
                    },
                })
                .collect(),
            ready: VecDeque::new(),
            due: ThinVec::new(),
            cursor: 0,
        }
    }

    /// Queues `queued` for `step`: straight to the ready list, with a worker reserved, when the
    /// step has a free worker and nothing queued before it; else in the step's own queue.
    #[inline(always)]
    pub(crate) fn enqueue(&mut self, step: usize, queued: Queued) {
        let at = &mut self.steps[step];
        if at.queue.is_empty() && at.workers.free() {
            at.workers.busy += 1;
            self.ready.push_back((step, queued));
        } else {
            at.queue.push_back(queued);
        }
    }

    /// Makes the next attempt of invocation `id` due now.
    #[inline]
    pub(crate) fn attempt_due(&mut self, id: InvocationId) {
        self.due.push(id);
    }

    /// Counts a worker of `step` for a restored invocation.
    #[inline]
    pub(crate) fn hold_worker(&mut self, step: usize) {
        self.steps[step].workers.busy += 1;
    }

    /// An invocation of `step` finished for good: its worker is free.
    #[inline]
    pub(crate) fn release_worker(&mut self, step: usize) {
        self.steps[step].workers.busy -= 1;
    }

    /// The next thing to start: due attempts first, then the ready list in arrival order, then
    /// the step queues round-robin.
    #[inline(always)]
    pub(crate) fn next(&mut self) -> Option<Start> {
        if !self.due.is_empty() {
            return Some(Start::Attempt(self.due.remove(0)));
        }
        if let Some((step, queued)) = self.ready.pop_front() {
            return Some(Start::New(step, queued));
        }
        let steps = self.steps.len();
        for _ in 0..steps {
            let step = self.cursor;
            self.cursor = (self.cursor + 1) % steps;
            let at = &mut self.steps[step];
            if at.workers.free()
                && let Some(queued) = at.queue.pop_front()
            {
                at.workers.busy += 1;
                return Some(Start::New(step, queued));
            }
        }
        None
    }

    /// Whether `next` would start something now.
    #[inline]
    pub(crate) fn has_startable(&self) -> bool {
        !self.due.is_empty()
            || !self.ready.is_empty()
            || self
                .steps
                .iter()
                .any(|at| !at.queue.is_empty() && at.workers.free())
    }

    /// Whether no event is queued and no attempt is due.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.due.is_empty()
            && self.ready.is_empty()
            && self.steps.iter().all(|at| at.queue.is_empty())
    }

    /// The names of the steps (of `steps`) running or with events queued.
    pub(crate) fn active_steps(&self, steps: &[StepInfo]) -> Vec<String> {
        steps
            .iter()
            .zip(self.steps.iter())
            .filter(|(_, at)| at.workers.busy > 0 || !at.queue.is_empty())
            .map(|(s, _)| s.name.to_owned())
            .collect()
    }

    /// Drops everything queued (the run ended).
    pub(crate) fn clear(&mut self) {
        self.steps.iter_mut().for_each(|at| at.queue.clear());
        self.ready.clear();
        self.due.clear();
    }

    /// Frees the buffers of empty queues, so that a suspended run holds little.
    pub(crate) fn compact(&mut self) {
        for at in self.steps.iter_mut() {
            if at.queue.is_empty() && at.queue.capacity() > 0 {
                at.queue = VecDeque::new();
            }
        }
        if self.ready.is_empty() && self.ready.capacity() > 0 {
            self.ready = VecDeque::new();
        }
        if self.due.is_empty() && self.due.capacity() > 0 {
            self.due = ThinVec::new();
        }
    }

    /// The queued events as a snapshot records them: the ready list first (its events are
    /// older than those queued for the same step), then each step's queue.
    pub(crate) fn capture(&self, steps: &[StepInfo]) -> Result<Vec<QueuedEvent>, SnapshotError> {
        let ready = self.ready.iter().map(|(step, queued)| (*step, queued));
        let queued = self
            .steps
            .iter()
            .enumerate()
            .flat_map(|(step, at)| at.queue.iter().map(move |queued| (step, queued)));
        ready
            .chain(queued)
            .map(|(step, queued)| {
                let kept = queued.failure.as_ref().map(failure_record);
                Ok(QueuedEvent {
                    step: steps[step].name.to_owned(),
                    event: queued.input.store()?,
                    scope: queued.lineage.to_records(),
                    recoveries: queued.lineage.recovery_records(steps),
                    failure_of: kept.as_ref().map(|k| k.of),
                    failure_recovered: kept.as_ref().is_some_and(|k| k.recovered),
                    failure: kept.map(|k| k.text),
                })
            })
            .collect()
    }

    /// Puts an event of a snapshot back in `step`'s queue, behind those restored before it.
    pub(crate) fn restore_queued(&mut self, step: usize, queued: Queued) {
        self.steps[step].queue.push_back(queued);
    }
}
