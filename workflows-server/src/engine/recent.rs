//! The events a run in memory has stored lately, kept for its stream readers.
//!
//! A reader is woken each time the run's pump stores events and asks for the ones after its
//! cursor. For a run in memory here, the answer is served from this copy instead of a query:
//! a human-in-the-loop run over HTTP made four or five such queries per reader, each a trip
//! through the store's connection. Only what is stored is kept (the pump adds events after
//! their write succeeds), so a reader never sees an event the store does not hold.
//!
//! # Invariants
//!
//! - The kept events are consecutive in the run's sequence: the pump stores every event the
//!   run publishes, in order, and nobody else stores events of a run this server holds.
//! - A range the copy does not cover (before its first event, or anything once the copy is
//!   empty) is answered by the store, never from here.

use std::collections::VecDeque;

use crate::storage::StoredEvent;

/// How many bytes of envelopes a run keeps for its readers: past this, its oldest events are
/// dropped (a reader that far behind reads the store).
const KEPT_BYTES: usize = 64 * 1024;

/// See the module docs.
#[derive(Debug, Default)]
pub(super) struct Recent {
    events: VecDeque<StoredEvent>,
    bytes: usize,
}

impl Recent {
    /// Keeps `events`, just stored, the next ones of the run's sequence.
    pub(super) fn extend(&mut self, events: &[StoredEvent]) {
        if let (Some(last), Some(next)) = (self.events.back(), events.first())
            && last.sequence + 1 != next.sequence
        {
            // Not the next ones (cannot happen while the pump stores in order): start again
            // rather than answer with a gap.
            self.events.clear();
            self.bytes = 0;
        }
        for ev in events {
            self.bytes += ev.envelope.len();
            self.events.push_back(ev.clone());
        }
        while self.bytes > KEPT_BYTES {
            let Some(old) = self.events.pop_front() else {
                break;
            };
            self.bytes -= old.envelope.len();
        }
    }

    /// Up to `limit` events numbered after `after`, if the copy covers them; `None` if the
    /// store must be asked.
    pub(super) fn after(&self, after: i64, limit: usize) -> Option<Vec<StoredEvent>> {
        let first = self.events.front()?.sequence as i64;
        if after + 1 < first {
            return None;
        }
        let skip = usize::try_from(after + 1 - first).unwrap_or(usize::MAX);
        Some(self.events.iter().skip(skip).take(limit).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(sequence: u64, size: usize) -> StoredEvent {
        StoredEvent {
            sequence,
            envelope: "x".repeat(size),
            internal: false,
            terminal: false,
        }
    }

    fn seqs(events: Option<Vec<StoredEvent>>) -> Option<Vec<u64>> {
        events.map(|e| e.into_iter().map(|e| e.sequence).collect())
    }

    #[test]
    fn answers_only_what_it_covers() {
        let mut recent = Recent::default();
        assert_eq!(
            seqs(recent.after(-1, 10)),
            None,
            "nothing kept: ask the store"
        );
        recent.extend(&[ev(3, 10), ev(4, 10)]);
        recent.extend(&[ev(5, 10)]);
        assert_eq!(
            seqs(recent.after(1, 10)),
            None,
            "4 and before are the store's"
        );
        assert_eq!(seqs(recent.after(2, 10)), Some(vec![3, 4, 5]));
        assert_eq!(seqs(recent.after(3, 1)), Some(vec![4]));
        assert_eq!(seqs(recent.after(5, 10)), Some(vec![]), "nothing new yet");
    }

    #[test]
    fn drops_the_oldest_past_its_size_and_restarts_on_a_gap() {
        let mut recent = Recent::default();
        recent.extend(&[ev(0, KEPT_BYTES / 2), ev(1, KEPT_BYTES / 2)]);
        recent.extend(&[ev(2, 10)]);
        assert_eq!(seqs(recent.after(-1, 10)), None, "event 0 was dropped");
        assert_eq!(seqs(recent.after(0, 10)), Some(vec![1, 2]));
        recent.extend(&[ev(7, 10)]);
        assert_eq!(
            seqs(recent.after(2, 10)),
            None,
            "after a gap only 7 is kept"
        );
        assert_eq!(seqs(recent.after(6, 10)), Some(vec![7]));
    }
}
