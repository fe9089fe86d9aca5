//! What one invocation has recorded so far: answered waits, `once` results, collected batches,
//! the engine effects of its attempt in progress and its child runs.
//!
//! Shared between the invocation's context and the control loop, which puts it in snapshots.
//! After a restore, a step re-runs from its start; its waits and `once` calls find their
//! results here and return at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::AnyEvent;
use crate::runtime::capture::store_event;
use crate::runtime::children::ChildSlots;
use crate::runtime::effects::{Effect, EffectLog};
use crate::runtime::restore::decode;
use crate::snapshot::{InvocationRecord, ResumeError, SnapshotError};

#[derive(Default, Debug)]
pub(crate) struct Memo {
    /// Waiter id → the event that answered it.
    pub(crate) resolved: HashMap<String, Box<dyn AnyEvent>>,
    /// Waiter ids whose timeout elapsed, with that timeout.
    pub(crate) timed_out: Vec<(String, std::time::Duration)>,
    /// `once` key → the recorded result.
    pub(crate) once: HashMap<String, Value>,
    /// Collect call (within the attempt) → the batch it returned.
    pub(crate) collected: HashMap<u32, Vec<Box<dyn AnyEvent>>>,
    /// The engine effects of the attempt in progress.
    pub(crate) effects: EffectLog,
    /// The child runs started, by call.
    pub(crate) children: ChildSlots,
}

impl Memo {
    /// A retry begins: its waits and engine effects start afresh; answers, `once` results
    /// and collected batches carry over.
    pub(crate) fn new_attempt(&mut self) {
        self.timed_out.clear();
        self.effects.new_attempt();
        self.children.new_attempt();
    }
}

impl Memo {
    /// Writes what the memo holds into the snapshot's record of its invocation.
    pub(crate) fn fill_record(&self, record: &mut InvocationRecord) -> Result<(), SnapshotError> {
        for (id, ev) in &self.resolved {
            record.resolved.insert(id.clone(), store_event(&**ev)?);
        }
        for (id, after) in &self.timed_out {
            record
                .timed_out
                .insert(id.clone(), after.as_millis() as u64);
        }
        record.once = self.once.clone().into_iter().collect();
        record.effects = self
            .effects
            .effects()
            .iter()
            .map(Effect::to_record)
            .collect();
        record.once_effects = self
            .effects
            .once_counts()
            .map(|(key, n)| (key.to_owned(), n))
            .collect();
        for (call, batch) in &self.collected {
            let events = batch
                .iter()
                .map(|ev| store_event(&**ev))
                .collect::<Result<_, _>>()?;
            record.collected.insert(*call, events);
        }
        if !self.children.is_empty() {
            record.children = self.children.to_records()?;
        }
        Ok(())
    }

    /// The memo a snapshot's record of an invocation describes; takes the memo's parts out of
    /// `record`.
    pub(crate) fn from_record(
        record: &mut InvocationRecord,
        step: &crate::StepInfo,
    ) -> Result<Self, ResumeError> {
        let mut memo = Memo::default();
        for (id, ev) in std::mem::take(&mut record.resolved) {
            memo.resolved.insert(id, decode(ev)?);
        }
        memo.timed_out = std::mem::take(&mut record.timed_out)
            .into_iter()
            .map(|(id, ms)| (id, std::time::Duration::from_millis(ms)))
            .collect();
        memo.once = std::mem::take(&mut record.once).into_iter().collect();
        memo.effects = EffectLog::restored(
            std::mem::take(&mut record.effects)
                .into_iter()
                .map(Effect::from_record)
                .collect(),
            std::mem::take(&mut record.once_effects)
                .into_iter()
                .collect(),
        );
        for (call, batch) in std::mem::take(&mut record.collected) {
            let events = batch
                .into_iter()
                .map(decode)
                .collect::<Result<Vec<_>, _>>()?;
            memo.collected.insert(call, events);
        }
        memo.children = ChildSlots::from_records(std::mem::take(&mut record.children), step)?;
        Ok(memo)
    }
}

pub(crate) type SharedMemo = Arc<Mutex<Memo>>;
