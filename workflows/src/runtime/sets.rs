//! Steps that take several events (`async fn pair(&self, a: A, b: B)`): the events that wait
//! for their partners, one queue per parameter.
//!
//! # Invariants
//!
//! - A step taking several events fires once per complete set: one event per parameter, each
//!   the oldest of its type not yet used (arrival order per type). An event never joins two
//!   sets.
//! - An event waiting for its partners is not work of the fan-out it descends from: its branch
//!   has ended there (as in the reference, where a buffered part is absorbed), so a join does
//!   not wait for a partner that may never come. The set, when it completes, runs in the lineage
//!   its parts share, counted in the innermost fan-out of it still open.

use std::collections::VecDeque;

use crate::runtime::capture::store_event;
use crate::runtime::lineage::{Branch, Lineage};
use crate::snapshot::{SnapshotError, UnpairedEvent};
use crate::{AnyEvent, Fires, StepInfo};

/// An event waiting for its partners, with the lineage it came from.
type Part = (Box<dyn AnyEvent>, Lineage);

/// For one step taking several events: one queue per parameter.
type Queues = Box<[VecDeque<Part>]>;

/// A set that completed: its events in parameter order, and the lineage they share.
pub(crate) struct Complete {
    pub(crate) events: Box<[Box<dyn AnyEvent>]>,
    pub(crate) lineage: Lineage,
}

/// Made on the first arrival, so that a run of a workflow without such steps (or before one
/// fires) holds nothing here.
#[derive(Default)]
pub(crate) struct Sets {
    /// For each step taking several events: one queue per parameter. Empty for other steps.
    waiting: Option<Box<[Queues]>>,
}

impl Sets {
    fn queues(&mut self, steps: &[StepInfo]) -> &mut [Queues] {
        self.waiting.get_or_insert_with(|| {
            steps
                .iter()
                .map(|step| match step.fires {
                    Fires::PerSet => step.accepts.iter().map(|_| VecDeque::new()).collect(),
                    _ => Box::default(),
                })
                .collect()
        })
    }

    /// `ev` arrives at step `step` (taking several events) from `lineage`: queued behind the
    /// others of its parameter, and the set returned if it is now complete.
    pub(crate) fn arrive(
        &mut self,
        steps: &[StepInfo],
        step: usize,
        ev: Box<dyn AnyEvent>,
        lineage: Lineage,
    ) -> Option<Complete> {
        let ty = ev.event_type_id();
        let param = steps[step].accepts.iter().position(|e| e.type_id == ty)?;
        let queues = &mut self.queues(steps)[step];
        queues[param].push_back((ev, lineage));
        if queues.iter().any(VecDeque::is_empty) {
            return None;
        }
        let (events, parts): (Vec<_>, Vec<_>) = queues
            .iter_mut()
            .map(|q| q.pop_front().expect("checked non-empty"))
            .unzip();
        Some(Complete {
            events: events.into(),
            lineage: shared_scope(&parts),
        })
    }

    /// Drops everything (the run ended).
    pub(crate) fn clear(&mut self) {
        self.waiting = None;
    }

    /// The waiting events as a snapshot records them: by step, then parameter, then arrival.
    pub(crate) fn capture(&self, steps: &[StepInfo]) -> Result<Vec<UnpairedEvent>, SnapshotError> {
        let mut out = Vec::new();
        for (step, queues) in self.waiting.iter().flat_map(|w| w.iter()).enumerate() {
            for queue in queues.iter() {
                for (ev, lineage) in queue {
                    out.push(UnpairedEvent {
                        step: steps[step].name.to_owned(),
                        event: store_event(&**ev)?,
                        scope: lineage.to_records(),
                        recoveries: lineage.recovery_records(steps),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Puts back an event a snapshot recorded, behind those restored before it; `false` if
    /// `step` does not take its type among several.
    pub(crate) fn restore(
        &mut self,
        steps: &[StepInfo],
        step: usize,
        ev: Box<dyn AnyEvent>,
        lineage: Lineage,
    ) -> bool {
        let ty = ev.event_type_id();
        let Some(param) = steps[step].accepts.iter().position(|e| e.type_id == ty) else {
            return false;
        };
        match self.queues(steps)[step].get_mut(param) {
            Some(queue) => {
                queue.push_back((ev, lineage));
                true
            }
            None => false,
        }
    }
}

/// The branches every part descends from: their lineages' common beginning.
fn shared_scope(parts: &[Lineage]) -> Lineage {
    let Some((first, rest)) = parts.split_first() else {
        return Lineage::default();
    };
    let mut shared: &[Branch] = first.branches();
    for lineage in rest {
        let common = shared
            .iter()
            .zip(lineage.branches())
            .take_while(|(a, b)| a == b)
            .count();
        shared = &shared[..common];
    }
    if shared.len() == first.branches().len() {
        first.clone()
    } else {
        first.with_branches(shared)
    }
}
