//! What one invocation has recorded so far: answered waits, `once` results, collected batches
//! and the engine effects of its attempt in progress.
//!
//! Shared between the invocation's context and the control loop, which puts it in snapshots.
//! After a restore, a step re-runs from its start; its waits and `once` calls find their
//! results here and return at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::AnyEvent;
use crate::runtime::effects::EffectLog;

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
}

impl Memo {
    /// A retry begins: its waits and engine effects start afresh; answers, `once` results
    /// and collected batches carry over.
    pub(crate) fn new_attempt(&mut self) {
        self.timed_out.clear();
        self.effects.new_attempt();
    }
}

pub(crate) type SharedMemo = Arc<Mutex<Memo>>;
