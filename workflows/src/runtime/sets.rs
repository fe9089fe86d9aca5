//! Steps that take several events (`async fn pair(&self, a: A, b: B)`): the events that wait
//! for their partners, one queue per parameter.
//!
//! # Invariants
//!
//! - A step taking several events fires once per complete set: one event per parameter, each
//!   the oldest of its type not yet used (arrival order per type) among those it may pair
//!   with. An event never joins two sets.
//! - Events pair only when their scopes are related (one's branches begin the other's):
//!   events of one branch pair together, and with events from outside the fan-out, never with
//!   those of a sibling branch. The set runs in the deepest of its parts' scopes, so what it
//!   returns stays in that branch.
//! - An event waiting for its partners is not work of the fan-out it descends from: its branch
//!   has ended there (as in the reference, where a buffered part is absorbed), so a join does
//!   not wait for a partner that may never come. The set, when it completes, is counted in the
//!   innermost fan-out of its scope still open; its recoveries are the most of its parts'.

use std::collections::VecDeque;

use thin_vec::ThinVec;

use crate::runtime::capture::store_event;
use crate::runtime::lineage::Lineage;
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
    /// Thin (a pointer in the run's task), and empty until the first arrival.
    waiting: ThinVec<Queues>,
}

impl Sets {
    fn queues(&mut self, steps: &[StepInfo]) -> &mut [Queues] {
        if self.waiting.is_empty() {
            self.waiting = steps
                .iter()
                .map(|step| match step.fires {
                    Fires::PerSet => step.accepts.iter().map(|_| VecDeque::new()).collect(),
                    _ => Box::default(),
                })
                .collect();
        }
        &mut self.waiting
    }

    /// `ev` arrives at step `step` (taking several events) from `lineage`: queued behind the
    /// others of its parameter, and the set returned if it completes one. Only a new arrival
    /// can complete a set (any other would have completed when its last part arrived).
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
        let arrived = queues[param].len() - 1;
        // For each parameter, the oldest part related to every part chosen so far.
        let mut chosen: Vec<(usize, usize)> = vec![(param, arrived)];
        for (p, queue) in queues.iter().enumerate() {
            if p == param {
                continue;
            }
            let found = queue.iter().position(|(_, candidate)| {
                chosen
                    .iter()
                    .all(|&(cp, ci)| related(&queues[cp][ci].1, candidate))
            })?;
            chosen.push((p, found));
        }
        chosen.sort_unstable();
        let mut events = Vec::with_capacity(chosen.len());
        let mut set_lineage = Lineage::default();
        for (p, i) in chosen {
            let (ev, part) = queues[p].remove(i).expect("chosen from the queue");
            set_lineage = set_lineage.deeper_merged(&part);
            events.push(ev);
        }
        Some(Complete {
            events: events.into(),
            lineage: set_lineage,
        })
    }

    /// Drops everything (the run ended).
    pub(crate) fn clear(&mut self) {
        self.waiting = ThinVec::new();
    }

    /// The waiting events as a snapshot records them: by step, then parameter, then arrival.
    pub(crate) fn capture(&self, steps: &[StepInfo]) -> Result<Vec<UnpairedEvent>, SnapshotError> {
        let mut out = Vec::new();
        for (step, queues) in self.waiting.iter().enumerate() {
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

/// Whether two scopes are related: one's branches begin the other's.
fn related(a: &Lineage, b: &Lineage) -> bool {
    let (a, b) = (a.branches(), b.branches());
    let common = a.len().min(b.len());
    a[..common] == b[..common]
}
