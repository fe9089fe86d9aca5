//! The engine effects of one attempt, in order: what an attempt that runs again after a resume
//! must not perform twice.
//!
//! An attempt's engine effects are the events it sends, the events it writes to the stream
//! and the waits it begins. Each is appended to the attempt's [`EffectLog`] (in its memo) in
//! the same synchronous call that performs it, and the control loop only takes a snapshot
//! between polls, after taking in every message already sent; so an effect is in a snapshot's
//! log exactly when its result is in the snapshot.
//!
//! When a restored invocation runs again, its context walks the log from position 0: an effect
//! equal to the recorded one at its position is skipped, one that differs is a
//! non-determinism error, and effects past the end of the log are performed and appended.
//! A retry is a new attempt: its log starts empty (see [`EffectLog::new_attempt`]).

use std::borrow::Cow;
use std::collections::HashMap;

use crate::WorkflowError;
use crate::snapshot::{EffectKind, EffectRecord, describe_effect};

/// One engine effect. Names borrow from the step table and the event types while the run is
/// live, and own their text once read back from a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Effect {
    pub(crate) kind: EffectKind,
    pub(crate) event: Cow<'static, str>,
    /// For a send to one step: its name.
    pub(crate) target: Option<Cow<'static, str>>,
}

impl Effect {
    #[inline]
    pub(crate) fn new(kind: EffectKind, event: &'static str, target: Option<&'static str>) -> Self {
        Effect {
            kind,
            event: Cow::Borrowed(event),
            target: target.map(Cow::Borrowed),
        }
    }

    pub(crate) fn to_record(&self) -> EffectRecord {
        EffectRecord {
            kind: self.kind,
            event: self.event.clone().into_owned(),
            target: self.target.clone().map(Cow::into_owned),
        }
    }

    pub(crate) fn from_record(record: EffectRecord) -> Self {
        Effect {
            kind: record.kind,
            event: Cow::Owned(record.event),
            target: record.target.map(Cow::Owned),
        }
    }
}

impl std::fmt::Display for Effect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        describe_effect(f, self.kind, &self.event, self.target.as_deref())
    }
}

/// The effects of the attempt in progress, and how many of them each completed `once` body
/// performed.
#[derive(Debug, Default)]
pub(crate) struct EffectLog {
    effects: Vec<Effect>,
    once: HashMap<String, u32>,
}

impl EffectLog {
    /// The log a snapshot recorded.
    pub(crate) fn restored(effects: Vec<Effect>, once: HashMap<String, u32>) -> Self {
        EffectLog { effects, once }
    }

    /// Whether the effect at `position` of the attempt was performed before a resume (the log
    /// holds it there: skip it), or is new (the log ends before it: perform it, then
    /// [`record`](Self::record) it). The log holding another effect there is an error.
    #[inline]
    pub(crate) fn performed(
        &self,
        step: &str,
        position: usize,
        effect: &Effect,
    ) -> Result<bool, WorkflowError> {
        match self.effects.get(position) {
            Some(recorded) if recorded == effect => Ok(true),
            Some(recorded) => Err(WorkflowError::NonDeterministic {
                step: step.to_owned(),
                position,
                recorded: recorded.to_string(),
                found: effect.to_string(),
            }),
            None => Ok(false),
        }
    }

    /// Appends an effect just performed at `position`, the end of the log.
    #[inline]
    pub(crate) fn record(&mut self, position: usize, effect: Effect) {
        // Positions are taken in order by the attempt's one context.
        debug_assert_eq!(position, self.effects.len());
        if self.effects.capacity() == 0 {
            // Most attempts perform one effect (a wait, a send): a suspended run holds that one
            // entry, not the four a first push makes room for.
            self.effects.reserve_exact(1);
        }
        self.effects.push(effect);
    }

    /// Records that the `once` body under `key` performed `count` effects.
    pub(crate) fn once_done(&mut self, key: &str, count: u32) {
        if count > 0 {
            self.once.insert(key.to_owned(), count);
        }
    }

    /// How many effects the `once` body under `key` performed in this attempt (0 if it ran in
    /// an earlier attempt, whose effects are not in this attempt's log).
    pub(crate) fn once_effects(&self, key: &str) -> u32 {
        self.once.get(key).copied().unwrap_or(0)
    }

    /// A retry begins: its effects happen afresh.
    pub(crate) fn new_attempt(&mut self) {
        self.effects.clear();
        self.once.clear();
    }

    pub(crate) fn effects(&self) -> &[Effect] {
        &self.effects
    }

    pub(crate) fn once_counts(&self) -> impl Iterator<Item = (&str, u32)> {
        self.once.iter().map(|(k, n)| (k.as_str(), *n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Effect {
        Effect::new(EffectKind::Send, "Job", None)
    }

    #[test]
    fn a_log_replays_its_effects_then_records_new_ones() {
        let mut log = EffectLog::default();
        assert!(!log.performed("split", 0, &job()).unwrap());
        log.record(0, job());
        assert!(!log.performed("split", 1, &job()).unwrap());
        log.record(1, job());
        // The attempt runs again from its start.
        assert!(log.performed("split", 0, &job()).unwrap());
        assert!(log.performed("split", 1, &job()).unwrap());
        assert!(!log.performed("split", 2, &job()).unwrap());
        assert_eq!(log.effects().len(), 2);
    }

    #[test]
    fn a_different_effect_at_a_recorded_position_is_an_error() {
        let mut log = EffectLog::default();
        log.record(0, job());
        let other = Effect::new(EffectKind::Send, "Other", Some("work"));
        match log.performed("split", 0, &other).unwrap_err() {
            WorkflowError::NonDeterministic {
                step,
                position,
                recorded,
                found,
            } => {
                assert_eq!(step, "split");
                assert_eq!(position, 0);
                assert_eq!(recorded, "send `Job` to every step that accepts it");
                assert_eq!(found, "send `Other` to step `work`");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_new_attempt_starts_an_empty_log() {
        let mut log = EffectLog::default();
        log.record(0, Effect::new(EffectKind::Stream, "Progress", None));
        log.once_done("k", 1);
        log.new_attempt();
        assert_eq!(log.once_effects("k"), 0);
        let wait = Effect::new(EffectKind::Wait, "Answer", None);
        assert!(!log.performed("s", 0, &wait).unwrap());
    }
}
