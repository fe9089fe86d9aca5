//! What one invocation has recorded so far: answered waits and `once` results.
//!
//! Shared between the invocation's context and the control loop, which puts it in snapshots.
//! After a restore, a step re-runs from its start; its waits and `once` calls find their
//! results here and return at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::AnyEvent;

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
}

pub(crate) type SharedMemo = Arc<Mutex<Memo>>;
