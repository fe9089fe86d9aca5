//! The run's open fan-outs: how much work each still has, and what its joins have collected.
//!
//! A fan-out opens when an invocation returns a list; its elements are delivered as branches
//! (see `lineage.rs`). It closes when no work descends from it any more, and then every join
//! bound to its step (`Routes::joins_of`) that has not fired yet fires, with what it collected.
//!
//! # Invariants
//!
//! - A fan-out's `open` counts the work whose innermost open fan-out it is: events queued for a
//!   step, live invocations (running, waiting, backing off), and the open fan-outs directly
//!   inside it; while its list is being delivered, the list itself counts too. It closes exactly
//!   when the count reaches zero, and only then.
//! - Each join bound to a fan-out fires once for it: at its `take`-th arrival, or when the
//!   fan-out closes with what arrived (all of it in element order; a `take` in arrival order).
//!   A join's firing counts in the lineage the fan-out sits in, before the fan-out lets go of
//!   that lineage, so an enclosing fan-out cannot close in between.
//! - The counts are not in snapshots: restore recounts them from the queued events,
//!   invocations and fan-outs it rebuilds, so a snapshot cannot hold a count that disagrees
//!   with its contents.

use thin_vec::ThinVec;

use crate::runtime::capture::store_event;
use crate::runtime::lineage::{Branch, Lineage};
use crate::snapshot::{FanOutRecord, JoinRecord, JoinedEvent, SnapshotError};
use crate::{AnyEvent, Fires, StepInfo};

/// The events a join fires with.
pub(crate) type Batch = Box<[Box<dyn AnyEvent>]>;

/// Events a join collected, in arrival order, each with the element it descends from.
pub(crate) type Arrived = Vec<(u32, Box<dyn AnyEvent>)>;

/// What one join has collected from one fan-out.
struct Join {
    step: usize,
    take: Option<usize>,
    fired: bool,
    arrived: Arrived,
}

impl Join {
    /// The batch it fires with: the first `take` in arrival order, or all in element order.
    fn batch(&mut self) -> Batch {
        self.fired = true;
        let mut arrived = std::mem::take(&mut self.arrived);
        match self.take {
            Some(n) => arrived.truncate(n),
            // Stable: arrivals from one element keep their order.
            None => arrived.sort_by_key(|(element, _)| *element),
        }
        arrived.into_iter().map(|(_, ev)| ev).collect()
    }
}

struct FanOut {
    id: u64,
    /// The step whose invocation returned the list.
    source: usize,
    /// The lineage of that invocation: where the fan-out itself counts, and where its joins fire.
    lineage: Lineage,
    open: u32,
    joins: Vec<Join>,
}

/// An arrival at a join.
pub(crate) enum Collected {
    /// No open fan-out the join is bound to is in the event's lineage.
    Outside,
    /// Kept until the fan-out closes (or more arrive).
    Kept,
    /// The join had fired for that fan-out already (a `take`); the event is dropped.
    Ignored,
    /// The join fires now, in `lineage`, with `batch`.
    Fire { lineage: Lineage, batch: Batch },
}

/// A fan-out that closed: its joins that fire, and the lineage it let go of.
pub(crate) struct Closed {
    pub(crate) lineage: Lineage,
    pub(crate) fire: Vec<(usize, Batch)>,
}

#[derive(Default)]
pub(crate) struct FanOuts {
    /// In opening order, so by ascending id. Thin (a pointer in the run's task; no
    /// allocation while empty): most runs never fan out.
    open: ThinVec<FanOut>,
    next_id: u64,
}

impl FanOuts {
    fn position(&self, id: u64) -> Option<usize> {
        self.open.binary_search_by_key(&id, |f| f.id).ok()
    }

    /// The innermost open fan-out of `lineage`.
    fn innermost(&self, lineage: &Lineage) -> Option<usize> {
        if self.open.is_empty() {
            return None;
        }
        lineage
            .branches()
            .iter()
            .rev()
            .find_map(|b| self.position(b.fan_out))
    }

    /// Opens a fan-out of `source`'s list, returned by an invocation in `lineage`, with the
    /// joins in `joins` bound to it. It counts in `lineage`, and counts its list until
    /// [`delivered`](Self::delivered). Returns its number.
    pub(crate) fn open(
        &mut self,
        source: usize,
        lineage: Lineage,
        joins: &[usize],
        steps: &[StepInfo],
    ) -> u64 {
        self.hold(&lineage);
        let id = self.next_id;
        self.next_id += 1;
        self.open.push(FanOut {
            id,
            source,
            lineage,
            open: 1,
            joins: joins
                .iter()
                .map(|&step| Join {
                    step,
                    take: take_of(&steps[step]),
                    fired: false,
                    arrived: Vec::new(),
                })
                .collect(),
        });
        id
    }

    /// The list of fan-out `id` has been delivered: it no longer counts.
    pub(crate) fn delivered(&mut self, id: u64) -> Option<Closed> {
        let at = self.position(id)?;
        self.let_go_at(at)
    }

    /// Counts one more piece of work in `lineage`.
    #[inline]
    pub(crate) fn hold(&mut self, lineage: &Lineage) {
        if let Some(at) = self.innermost(lineage) {
            self.open[at].open += 1;
        }
    }

    /// One piece of work in `lineage` is over; returns the fan-out that closed, if one did.
    #[inline]
    pub(crate) fn let_go(&mut self, lineage: &Lineage) -> Option<Closed> {
        let at = self.innermost(lineage)?;
        self.let_go_at(at)
    }

    fn let_go_at(&mut self, at: usize) -> Option<Closed> {
        let fan_out = &mut self.open[at];
        debug_assert!(
            fan_out.open > 0,
            "fan-out {} counted below zero",
            fan_out.id
        );
        fan_out.open = fan_out.open.saturating_sub(1);
        if fan_out.open > 0 {
            return None;
        }
        let mut fan_out = self.open.remove(at);
        let fire = fan_out
            .joins
            .iter_mut()
            .filter(|join| !join.fired)
            .map(|join| (join.step, join.batch()))
            .collect();
        Some(Closed {
            lineage: fan_out.lineage,
            fire,
        })
    }

    /// `ev` arrives at join `step` from `lineage`: it belongs to the innermost open fan-out of
    /// the lineage that the join is bound to.
    pub(crate) fn collect(
        &mut self,
        step: usize,
        lineage: &Lineage,
        ev: Box<dyn AnyEvent>,
    ) -> Collected {
        for branch in lineage.branches().iter().rev() {
            let Some(at) = self.position(branch.fan_out) else {
                continue;
            };
            let fan_out = &mut self.open[at];
            let Some(join) = fan_out.joins.iter_mut().find(|j| j.step == step) else {
                continue;
            };
            if join.fired {
                return Collected::Ignored;
            }
            join.arrived.push((branch.element, ev));
            if join.take.is_some_and(|n| join.arrived.len() >= n) {
                let batch = join.batch();
                return Collected::Fire {
                    lineage: fan_out.lineage.clone(),
                    batch,
                };
            }
            return Collected::Kept;
        }
        Collected::Outside
    }

    /// Ends everything (the run ended).
    pub(crate) fn clear(&mut self) {
        self.open.clear();
    }

    /// The number the next fan-out gets (for snapshots).
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id
    }

    /// The open fan-outs as a snapshot records them.
    pub(crate) fn capture(&self, steps: &[StepInfo]) -> Result<Vec<FanOutRecord>, SnapshotError> {
        self.open
            .iter()
            .map(|f| {
                Ok(FanOutRecord {
                    id: f.id,
                    step: steps[f.source].name.to_owned(),
                    scope: f.lineage.to_records(),
                    recoveries: f.lineage.recovery_records(steps),
                    joins: f
                        .joins
                        .iter()
                        .map(|j| {
                            Ok(JoinRecord {
                                step: steps[j.step].name.to_owned(),
                                fired: j.fired,
                                events: j
                                    .arrived
                                    .iter()
                                    .map(|(element, ev)| {
                                        Ok(JoinedEvent {
                                            element: *element,
                                            event: store_event(&**ev)?,
                                        })
                                    })
                                    .collect::<Result<_, SnapshotError>>()?,
                            })
                        })
                        .collect::<Result<_, SnapshotError>>()?,
                })
            })
            .collect()
    }

    /// Starts from a snapshot: its counter, and its fan-outs, each counted in the lineage it sits
    /// in and with nothing of its own counted yet: restore counts what it rebuilds with
    /// [`hold`](Self::hold), then closes what [`idle_after_restore`](Self::idle_after_restore)
    /// finds.
    pub(crate) fn restore(
        &mut self,
        next_id: u64,
        fan_outs: Vec<RestoredFanOut>,
        steps: &[StepInfo],
    ) {
        self.next_id = next_id;
        let mut open: ThinVec<FanOut> = fan_outs
            .into_iter()
            .map(|f| FanOut {
                id: f.id,
                source: f.source,
                lineage: f.lineage,
                open: 0,
                joins: f
                    .joins
                    .into_iter()
                    .map(|(step, fired, arrived)| Join {
                        step,
                        take: take_of(&steps[step]),
                        fired,
                        arrived,
                    })
                    .collect(),
            })
            .collect();
        open.sort_by_key(|f| f.id);
        self.open = open;
        // Each open fan-out counts in its own lineage.
        let lineages: Vec<Lineage> = self.open.iter().map(|f| f.lineage.clone()).collect();
        for lineage in &lineages {
            self.hold(lineage);
        }
    }

    /// After restore has counted everything: the fan-out with nothing left that a snapshot
    /// held (it cannot come from a consistent cut, but closing it is what the run would have
    /// done), if any.
    pub(crate) fn idle_after_restore(&self) -> Option<u64> {
        self.open.iter().find(|f| f.open == 0).map(|f| f.id)
    }

    /// Makes an idle fan-out found after a restore close as if its last work had ended.
    pub(crate) fn close_idle(&mut self, id: u64) -> Option<Closed> {
        let at = self.position(id)?;
        self.open[at].open = 1;
        self.let_go_at(at)
    }
}

/// A fan-out as restore rebuilds it from a snapshot.
pub(crate) struct RestoredFanOut {
    pub(crate) id: u64,
    pub(crate) source: usize,
    pub(crate) lineage: Lineage,
    /// Each join: its step, whether it fired, what it collected.
    pub(crate) joins: Vec<(usize, bool, Arrived)>,
}

/// How many arrivals join `step` fires with, if not all.
fn take_of(step: &StepInfo) -> Option<usize> {
    match step.fires {
        Fires::PerFanOut { take } => take,
        _ => None,
    }
}

/// The branch of fan-out `fan_out` for its `element`-th element.
pub(crate) fn branch(fan_out: u64, element: usize) -> Branch {
    Branch {
        fan_out,
        element: u32::try_from(element).unwrap_or(u32::MAX),
    }
}
