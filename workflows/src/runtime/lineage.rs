//! Lineage: where a piece of a run's work sits among its fan-outs, and what an invocation
//! handles (one event, or the batch a join fires with).
//!
//! A **fan-out** is one list returned by one invocation; each element begins a **branch**.
//! Everything that descends from an element — the events it leads to, the invocations they
//! start, what those send and return — carries the branch in its [`Scope`], so that a join can
//! tell which fan-out an arriving event belongs to and the run can tell when a fan-out has no
//! work left. Scopes nest: a fan-out inside a branch gives its own branches the outer one
//! too.

use std::borrow::Cow;
use std::sync::Arc;

use crate::AnyEvent;
use crate::runtime::capture::store_event;
use crate::snapshot::{BranchRecord, SnapshotError, StoredInput};

/// One element of one fan-out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Branch {
    /// The fan-out's number in the run.
    pub(crate) fan_out: u64,
    /// The element's position in the fan-out's list.
    pub(crate) element: u32,
}

/// The branches a piece of work descends from, outermost first. Empty outside every fan-out,
/// the usual case, which allocates nothing; cloning is a reference count.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub(crate) struct Scope(Option<Arc<[Branch]>>);

impl Scope {
    #[inline]
    pub(crate) fn branches(&self) -> &[Branch] {
        self.0.as_deref().unwrap_or(&[])
    }

    /// This scope, one branch further in.
    pub(crate) fn within(&self, branch: Branch) -> Scope {
        let mut branches = self.branches().to_vec();
        branches.push(branch);
        Scope(Some(branches.into()))
    }

    /// The scope made of `branches`.
    pub(crate) fn from_branches(branches: &[Branch]) -> Scope {
        if branches.is_empty() {
            Scope::default()
        } else {
            Scope(Some(branches.into()))
        }
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

    /// A scope a snapshot recorded.
    pub(crate) fn from_records(records: &[BranchRecord]) -> Scope {
        if records.is_empty() {
            return Scope::default();
        }
        Scope(Some(
            records
                .iter()
                .map(|r| Branch {
                    fan_out: r.fan_out,
                    element: r.element,
                })
                .collect(),
        ))
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
