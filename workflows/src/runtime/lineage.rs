//! Lineage: where a piece of a run's work comes from — the fan-out branches it descends from
//! and the recoveries on its way — and what an invocation handles (one event, or the batch a
//! join fires with).
//!
//! A **fan-out** is one list returned by one invocation; each element begins a **branch**.
//! Everything that descends from an element — the events it leads to, the invocations they
//! start, what those send and return — carries the branch in its [`Lineage`] (its **scope**),
//! so that a join can tell which fan-out an arriving event belongs to and the run can tell when
//! a fan-out has no work left. Scopes nest: a fan-out inside a branch gives its own branches
//! the outer one too.
//!
//! A failure step's recovery is part of the lineage too: what descends from a recovery carries
//! how many times each failure step has recovered on the way, so a failure step's
//! `max_recoveries` bounds a chain of failures and recoveries (a handler that sends the failed
//! work again) without limiting independent failures.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::runtime::capture::store_event;
use crate::snapshot::{BranchRecord, ResumeError, SnapshotError, StoredInput};
use crate::{AnyEvent, StepInfo};

/// One element of one fan-out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Branch {
    /// The fan-out's number in the run.
    pub(crate) fan_out: u64,
    /// The element's position in the fan-out's list.
    pub(crate) element: u32,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Inner {
    /// Outermost first.
    branches: Box<[Branch]>,
    /// (failure step, recoveries so far), by step.
    recoveries: Box<[(usize, u32)]>,
}

/// Where a piece of work comes from: the branches it descends from (its scope) and the
/// recoveries on its way. Empty for work outside every fan-out and recovery, the usual case,
/// which allocates nothing; cloning is a reference count.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub(crate) struct Lineage(Option<Arc<Inner>>);

impl Lineage {
    fn new(branches: Box<[Branch]>, recoveries: Box<[(usize, u32)]>) -> Lineage {
        if branches.is_empty() && recoveries.is_empty() {
            Lineage::default()
        } else {
            Lineage(Some(Arc::new(Inner {
                branches,
                recoveries,
            })))
        }
    }

    /// Its scope: the branches, outermost first.
    #[inline]
    pub(crate) fn branches(&self) -> &[Branch] {
        self.0.as_deref().map_or(&[], |inner| &inner.branches)
    }

    fn recoveries(&self) -> &[(usize, u32)] {
        self.0.as_deref().map_or(&[], |inner| &inner.recoveries)
    }

    /// This lineage, one branch further in.
    pub(crate) fn within(&self, branch: Branch) -> Lineage {
        let mut branches = self.branches().to_vec();
        branches.push(branch);
        Lineage::new(branches.into(), self.recoveries().into())
    }

    /// The lineage of work made of this and `other`, whose scopes are related: the deeper
    /// scope, and for each failure step the most recoveries either has seen.
    pub(crate) fn deeper_merged(&self, other: &Lineage) -> Lineage {
        let branches = if other.branches().len() > self.branches().len() {
            other.branches()
        } else {
            self.branches()
        };
        let mut recoveries = self.recoveries().to_vec();
        for &(step, n) in other.recoveries() {
            match recoveries.iter_mut().find(|(s, _)| *s == step) {
                Some((_, mine)) => *mine = (*mine).max(n),
                None => recoveries.push((step, n)),
            }
        }
        recoveries.sort_unstable();
        Lineage::new(branches.into(), recoveries.into())
    }

    /// How many times failure step `step` has recovered on the way here.
    pub(crate) fn recoveries_by(&self, step: usize) -> u32 {
        self.recoveries()
            .iter()
            .find(|(s, _)| *s == step)
            .map_or(0, |(_, n)| *n)
    }

    /// This lineage, with one more recovery by failure step `step`.
    pub(crate) fn recovered_by(&self, step: usize) -> Lineage {
        let mut recoveries = self.recoveries().to_vec();
        match recoveries.iter_mut().find(|(s, _)| *s == step) {
            Some((_, n)) => *n += 1,
            None => {
                recoveries.push((step, 1));
                recoveries.sort_unstable();
            }
        }
        Lineage::new(self.branches().into(), recoveries.into())
    }

    /// The scope as a snapshot records it.
    pub(crate) fn to_records(&self) -> Vec<BranchRecord> {
        self.branches()
            .iter()
            .map(|b| BranchRecord {
                fan_out: b.fan_out,
                element: b.element,
            })
            .collect()
    }

    /// The recoveries as a snapshot records them: failure step → count.
    pub(crate) fn recovery_records(&self, steps: &[StepInfo]) -> BTreeMap<String, u32> {
        self.recoveries()
            .iter()
            .map(|(step, n)| (steps[*step].name.to_owned(), *n))
            .collect()
    }

    /// A lineage a snapshot recorded.
    pub(crate) fn from_records(
        branches: &[BranchRecord],
        recoveries: &BTreeMap<String, u32>,
        step_of: impl Fn(&str) -> Result<usize, ResumeError>,
    ) -> Result<Lineage, ResumeError> {
        let branches: Box<[Branch]> = branches
            .iter()
            .map(|r| Branch {
                fan_out: r.fan_out,
                element: r.element,
            })
            .collect();
        let mut counts = recoveries
            .iter()
            .map(|(name, n)| Ok((step_of(name)?, *n)))
            .collect::<Result<Vec<_>, ResumeError>>()?;
        counts.sort_unstable();
        Ok(Lineage::new(branches, counts.into()))
    }
}

/// What one invocation handles: one event, or the events a join fires with.
#[derive(Debug)]
pub(crate) enum Input {
    One(Box<dyn AnyEvent>),
    Batch(Box<[Box<dyn AnyEvent>]>),
}

impl Input {
    /// The events, as the generated `__invoke` takes them.
    #[inline]
    pub(crate) fn events(&self) -> &[Box<dyn AnyEvent>] {
        match self {
            Input::One(ev) => std::slice::from_ref(ev),
            Input::Batch(events) => events,
        }
    }

    /// The event's name; for a batch, `[A; 3]` (three `A`s), `[A, B]` or `[]`.
    pub(crate) fn name(&self) -> Cow<'static, str> {
        match self {
            Input::One(ev) => Cow::Borrowed(ev.name()),
            Input::Batch(events) => Cow::Owned(batch_name(events)),
        }
    }

    /// The input as JSON: the event's, or an array of the batch's.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let json = |ev: &dyn AnyEvent| ev.to_json().unwrap_or(serde_json::Value::Null);
        match self {
            Input::One(ev) => json(&**ev),
            Input::Batch(events) => events.iter().map(|ev| json(&**ev)).collect(),
        }
    }

    /// The input as a snapshot stores it.
    pub(crate) fn store(&self) -> Result<StoredInput, SnapshotError> {
        Ok(match self {
            Input::One(ev) => StoredInput::One(store_event(&**ev)?),
            Input::Batch(events) => StoredInput::Batch(
                events
                    .iter()
                    .map(|ev| store_event(&**ev))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
}

/// The name of a list of events: `[A; 3]` (three `A`s), `[A, B]` or `[]`.
pub(crate) fn batch_name(events: &[Box<dyn AnyEvent>]) -> String {
    match events {
        [first, rest @ ..] if rest.iter().all(|ev| ev.name() == first.name()) => {
            format!("[{}; {}]", first.name(), events.len())
        }
        _ => {
            let names: Vec<&str> = events.iter().map(|ev| ev.name()).collect();
            format!("[{}]", names.join(", "))
        }
    }
}
