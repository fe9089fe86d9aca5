//! The invocations of a run that have started and not finished for good, in a slab.
//!
//! # Invariants
//!
//! - An [`InvocationId`] names one invocation for its whole life: a slot is reused only with a
//!   new generation, so an id held by a context, a waiter or an in-flight future that outlived
//!   its invocation finds nothing instead of a stranger.
//! - The *invocation number* (`Invocation::number`) is the invocation's identity within the
//!   run across snapshots (step-state events, collect tags, snapshot records); numbers are
//!   never reused, and a resumed run goes on from the snapshot's next number. An id is only
//!   meaningful inside one control loop.

use std::sync::Arc;

use thin_vec::ThinVec;

use crate::StepError;
use crate::runtime::lineage::{Input, Lineage};
use crate::runtime::memo::SharedMemo;
use crate::runtime::shared::lock;
use crate::snapshot::{InvocationRecord, SnapshotError};

/// Where an invocation lives in its loop's slab: the slot and the slot's generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct InvocationId {
    slot: u32,
    generation: u32,
}

/// A step invocation that has started and not yet finished for good.
pub(crate) struct Invocation {
    pub(crate) step: usize,
    /// The event being handled (or a join's batch), kept for retries (and snapshots).
    pub(crate) input: Input,
    /// The fan-out branches it descends from.
    pub(crate) lineage: Lineage,
    pub(crate) attempt: u32,
    /// The invocation's number within the run (see the module docs).
    pub(crate) number: u64,
    /// The previous attempt's error (after a restore, only its text: snapshots keep the
    /// text). One field for both keeps the invocation small: it moves on every start and end.
    pub(crate) last_failure: Option<StepError>,
    /// For a failure step's invocation: the failure it decides on.
    pub(crate) failure: Option<SharedFailure>,
    /// Answered waits, `once` results, collected batches and engine effects, once the step has
    /// used any.
    pub(crate) memo: Option<SharedMemo>,
    /// When the retry back-off in progress ends.
    pub(crate) retry_at: Option<tokio::time::Instant>,
    /// When its first attempt began (when it was restored, for a restored invocation): how
    /// long a step took before it failed for good is measured from here.
    pub(crate) started: tokio::time::Instant,
    /// Whether a future for the current attempt exists or is due to be made. A restored
    /// invocation that was waiting has none until its waiter is answered.
    pub(crate) running: bool,
}

/// A step's failure, offered to the workflow's failure steps (steps accepting `StepFailed`).
/// The run fails with `error` once every failure step declined.
pub(crate) struct Failure {
    /// The number of the invocation that failed: what the copies offered to several failure
    /// steps share, in snapshots too.
    pub(crate) of: u64,
    pub(crate) error: Option<StepError>,
    /// The step that failed, and after how many attempts.
    pub(crate) step: &'static str,
    pub(crate) attempts: u32,
    /// What the run's last event says besides the error, if the failure ends the run.
    pub(crate) facts: FailureFacts,
    /// Failure steps that have not finished yet.
    pub(crate) undecided: usize,
    pub(crate) recovered: bool,
}

/// What a run that a step's failure ended reports besides the error.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FailureFacts {
    /// The Rust type of the step's error (`panic` for a panic), when known.
    pub(crate) error_type: Option<&'static str>,
    /// How many attempts the step made.
    pub(crate) attempts: Option<u32>,
    /// From the invocation's first attempt to its last one's end.
    pub(crate) elapsed: Option<std::time::Duration>,
}

pub(crate) type SharedFailure = Arc<std::sync::Mutex<Failure>>;

/// What a snapshot keeps of a failure offered to a failure step: its text, the failed
/// invocation's number (shared by the copies offered to other failure steps) and whether one of
/// them has recovered already.
pub(crate) fn failure_record(failure: &SharedFailure) -> FailureRecord {
    let failure = lock(failure);
    FailureRecord {
        text: failure
            .error
            .as_ref()
            .map_or_else(|| "recovered".to_owned(), ToString::to_string),
        of: failure.of,
        recovered: failure.recovered,
    }
}

/// See [`failure_record`].
pub(crate) struct FailureRecord {
    pub(crate) text: String,
    pub(crate) of: u64,
    pub(crate) recovered: bool,
}

impl Invocation {
    /// The invocation as a snapshot records it (`steps`: the workflow's step table).
    pub(crate) fn to_record(
        &self,
        steps: &[crate::StepInfo],
        retry_in_ms: Option<u64>,
        tried_for_ms: Option<u64>,
    ) -> Result<InvocationRecord, SnapshotError> {
        let mut record = InvocationRecord {
            number: self.number,
            step: steps[self.step].name.to_owned(),
            input: self.input.store()?,
            scope: self.lineage.to_records(),
            recoveries: self.lineage.recovery_records(steps),
            attempt: self.attempt,
            last_error: self.last_failure.as_ref().map(ToString::to_string),
            retry_in_ms,
            tried_for_ms,
            resolved: Default::default(),
            timed_out: Default::default(),
            once: Default::default(),
            collected: Default::default(),
            failure: None,
            failure_of: None,
            failure_recovered: false,
            effects: Vec::new(),
            once_effects: Default::default(),
            children: Vec::new(),
        };
        if let Some(memo) = &self.memo {
            lock(memo).fill_record(&mut record)?;
        }
        if let Some(failure) = &self.failure {
            let kept = failure_record(failure);
            record.failure = Some(kept.text);
            record.failure_of = Some(kept.of);
            record.failure_recovered = kept.recovered;
        }
        Ok(record)
    }
}

struct Slot {
    generation: u32,
    invocation: Option<Invocation>,
}

/// The live invocations of a run, addressed by [`InvocationId`].
#[derive(Default)]
pub(crate) struct Invocations {
    slots: Vec<Slot>,
    /// Slots without an invocation (thin: a pointer in the run's task).
    free: ThinVec<u32>,
    live: u32,
    /// The generation of a slot the slab creates: above every generation handed out before a
    /// compaction, so that no old id matches a new slot.
    fresh_generation: u32,
    next_number: u64,
}

impl Invocations {
    /// The number the next invocation gets; advances the counter.
    #[inline]
    pub(crate) fn take_number(&mut self) -> u64 {
        let number = self.next_number;
        self.next_number += 1;
        number
    }

    /// The number the next invocation will get (for snapshots).
    pub(crate) fn next_number(&self) -> u64 {
        self.next_number
    }

    /// Goes on from a snapshot's counter.
    pub(crate) fn set_next_number(&mut self, next: u64) {
        self.next_number = next;
    }

    #[inline(always)]
    pub(crate) fn insert(&mut self, invocation: Invocation) -> InvocationId {
        self.live += 1;
        match self.free.pop() {
            Some(slot) => {
                let entry = &mut self.slots[slot as usize];
                entry.generation = entry.generation.wrapping_add(1);
                entry.invocation = Some(invocation);
                InvocationId {
                    slot,
                    generation: entry.generation,
                }
            }
            None => {
                // Grow one slot at a time: most runs have one or two invocations at once.
                self.slots.reserve_exact(1);
                let generation = self.fresh_generation;
                self.slots.push(Slot {
                    generation,
                    invocation: Some(invocation),
                });
                InvocationId {
                    slot: (self.slots.len() - 1) as u32,
                    generation,
                }
            }
        }
    }

    #[inline]
    pub(crate) fn get(&self, id: InvocationId) -> Option<&Invocation> {
        self.slots
            .get(id.slot as usize)
            .filter(|s| s.generation == id.generation)
            .and_then(|s| s.invocation.as_ref())
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, id: InvocationId) -> Option<&mut Invocation> {
        self.slots
            .get_mut(id.slot as usize)
            .filter(|s| s.generation == id.generation)
            .and_then(|s| s.invocation.as_mut())
    }

    /// Takes the invocation `id` out; `None` if it is gone already.
    #[inline(always)]
    pub(crate) fn remove(&mut self, id: InvocationId) -> Option<Invocation> {
        let entry = self
            .slots
            .get_mut(id.slot as usize)
            .filter(|s| s.generation == id.generation)?;
        let invocation = entry.invocation.take()?;
        self.free.push(id.slot);
        self.live -= 1;
        Some(invocation)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (InvocationId, &Invocation)> {
        self.slots.iter().enumerate().filter_map(|(slot, s)| {
            s.invocation.as_ref().map(|inv| {
                (
                    InvocationId {
                        slot: slot as u32,
                        generation: s.generation,
                    },
                    inv,
                )
            })
        })
    }

    /// Drops every invocation (the run ended).
    pub(crate) fn clear(&mut self) {
        for (slot, entry) in self.slots.iter_mut().enumerate() {
            if entry.invocation.take().is_some() {
                self.free.push(slot as u32);
            }
        }
        self.live = 0;
    }

    /// Frees the slab's buffers when it holds nothing (a suspended run holds little). Ids
    /// handed out before stay dead: generations go on from where they were.
    pub(crate) fn compact(&mut self) {
        if self.live == 0 && self.slots.capacity() > 0 {
            let highest = self.slots.iter().map(|s| s.generation).max();
            if let Some(highest) = highest {
                self.fresh_generation = self.fresh_generation.max(highest.wrapping_add(1));
            }
            self.slots = Vec::new();
            self.free = ThinVec::new();
        }
    }
}
