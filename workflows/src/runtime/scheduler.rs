//! What a run starts next: each step's queue of events, the worker counts, and the
//! invocations whose next attempt is due.
//!
//! # Invariants
//!
//! - `workers[step].busy` counts the step's workers in use: its live invocations (running, waiting,
//!   or backing off before a retry) plus the events on the ready list. It never exceeds the
//!   step's `num_workers`, except after a restore of a snapshot taken by a workflow with more
//!   workers (then no new invocation starts until it drops below).
//! - An event on the ready list has its worker counted already and is older than every event
//!   in its step's queue; a step's queue is served first come, first served.
//! - Steps are visited round-robin from `cursor`, so a step that feeds itself cannot starve
//!   the others.

use std::collections::VecDeque;

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

// The scheduler lives inside every run's task: it is kept small (boxed slices, u32 counts).
pub(crate) struct Scheduler {
    queues: Box<[VecDeque<Queued>]>,
    /// Events to start next, each with a worker of its step already counted in `workers`.
    ready: VecDeque<(usize, Queued)>,
    workers: Box<[Workers]>,
    /// Invocations whose next attempt is due now.
    due: VecDeque<InvocationId>,
    /// The step `next` visits first next time.
    cursor: usize,
}

impl Scheduler {
    pub(crate) fn new(steps: &[StepInfo]) -> Self {
        Scheduler {
            queues: steps.iter().map(|_| VecDeque::new()).collect(),
            ready: VecDeque::new(),
            workers: steps
                .iter()
                .map(|s| Workers {
                    busy: 0,
                    limit: u32::try_from(s.num_workers).unwrap_or(u32::MAX),
                })
                .collect(),
            due: VecDeque::new(),
            cursor: 0,
        }
    }

    /// Queues `queued` for `step`: straight to the ready list, with a worker reserved, when the
    /// step has a free worker and nothing queued before it; else in the step's own queue.
    #[inline(always)]
    pub(crate) fn enqueue(&mut self, step: usize, queued: Queued) {
        if self.queues[step].is_empty() && self.workers[step].free() {
            self.workers[step].busy += 1;
            self.ready.push_back((step, queued));
        } else {
            self.queues[step].push_back(queued);
        }
    }

    /// Makes the next attempt of invocation `id` due now.
    #[inline]
    pub(crate) fn attempt_due(&mut self, id: InvocationId) {
        self.due.push_back(id);
    }

    /// Counts a worker of `step` for a restored invocation.
    #[inline]
    pub(crate) fn hold_worker(&mut self, step: usize) {
        self.workers[step].busy += 1;
    }

    /// An invocation of `step` finished for good: its worker is free.
    #[inline]
    pub(crate) fn release_worker(&mut self, step: usize) {
        self.workers[step].busy -= 1;
    }

    /// The next thing to start: due attempts first, then the ready list in arrival order, then
    /// the step queues round-robin.
    #[inline(always)]
    pub(crate) fn next(&mut self) -> Option<Start> {
        if let Some(id) = self.due.pop_front() {
            return Some(Start::Attempt(id));
        }
        if let Some((step, queued)) = self.ready.pop_front() {
            return Some(Start::New(step, queued));
        }
        let steps = self.queues.len();
        for _ in 0..steps {
            let step = self.cursor;
            self.cursor = (self.cursor + 1) % steps;
            if self.workers[step].free()
                && let Some(queued) = self.queues[step].pop_front()
            {
                self.workers[step].busy += 1;
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
                .queues
                .iter()
                .zip(self.workers.iter())
                .any(|(q, w)| !q.is_empty() && w.free())
    }

    /// Whether no event is queued and no attempt is due.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.due.is_empty() && self.ready.is_empty() && self.queues.iter().all(VecDeque::is_empty)
    }

    /// The names of the steps (of `steps`) running or with events queued.
    pub(crate) fn active_steps(&self, steps: &[StepInfo]) -> Vec<String> {
        steps
            .iter()
            .zip(self.workers.iter().zip(self.queues.iter()))
            .filter(|(_, (w, q))| w.busy > 0 || !q.is_empty())
            .map(|(s, _)| s.name.to_owned())
            .collect()
    }

    /// Drops everything queued (the run ended).
    pub(crate) fn clear(&mut self) {
        self.queues.iter_mut().for_each(VecDeque::clear);
        self.ready.clear();
        self.due.clear();
    }

    /// Frees the buffers of empty queues, so that a suspended run holds little.
    pub(crate) fn compact(&mut self) {
        for queue in self.queues.iter_mut() {
            if queue.is_empty() && queue.capacity() > 0 {
                *queue = VecDeque::new();
            }
        }
        if self.ready.is_empty() && self.ready.capacity() > 0 {
            self.ready = VecDeque::new();
        }
        if self.due.is_empty() && self.due.capacity() > 0 {
            self.due = VecDeque::new();
        }
    }

    /// The queued events as a snapshot records them: the ready list first (its events are
    /// older than those queued for the same step), then each step's queue.
    pub(crate) fn capture(&self, steps: &[StepInfo]) -> Result<Vec<QueuedEvent>, SnapshotError> {
        let ready = self.ready.iter().map(|(step, queued)| (*step, queued));
        let queued = self
            .queues
            .iter()
            .enumerate()
            .flat_map(|(step, queue)| queue.iter().map(move |queued| (step, queued)));
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
        self.queues[step].push_back(queued);
    }
}
