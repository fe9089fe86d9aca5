//! The runs in this server's memory, and the runs being brought into it.
//!
//! # Invariants
//!
//! - At most one copy of a run is in memory, keyed by its handler id; a copy that left memory
//!   is never mistaken for the current one ([`LiveRuns::is_current`] compares identity).
//! - One caller at a time brings a run into memory ([`LiveRuns::begin_adopting`]): not while it
//!   is in memory, not while another caller is adopting it.
//! - Membership changes under the one lock that also guards the server's decision to take
//!   runs: a run is put in memory only if the server still takes runs at that moment
//!   ([`LiveRuns::insert_if`]), and shutting down or letting go of every run happens under the
//!   same lock ([`LiveRuns::list_after`], [`LiveRuns::take_all_after`]), so no run slips in
//!   after either.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::recent::Recent;
use crate::served::Run;
use crate::storage::StoredEvent;

/// A run in this server's memory.
pub(crate) struct Live {
    pub(super) handler_id: String,
    pub(super) run_id: String,
    /// The lease this copy of the run is held under (`{server}/{n}`).
    pub(super) lease: String,
    pub(super) run: Box<dyn Run>,
    /// Woken each time events of the run are stored, and when it leaves memory.
    pub(super) stored: Arc<Notify>,
    /// Woken when the run's inbox may hold items.
    pub(super) kick: Notify,
    /// Woken when the server shuts down: store the run and let it go.
    pub(super) stop: Notify,
    /// Woken when this server may have lost its leases: let the run go at once.
    pub(super) abandon: Notify,
    /// Set with `abandon`: the run is cancelled here and nothing more of it is stored.
    pub(super) abandoned: AtomicBool,
    /// The events the pump stored lately, for the run's readers.
    recent: Mutex<Recent>,
}

impl Live {
    pub(super) fn new(
        handler_id: String,
        run_id: String,
        lease: String,
        run: Box<dyn Run>,
    ) -> Self {
        Live {
            handler_id,
            run_id,
            lease,
            run,
            stored: Arc::new(Notify::new()),
            kick: Notify::new(),
            stop: Notify::new(),
            abandon: Notify::new(),
            abandoned: AtomicBool::new(false),
            recent: Mutex::default(),
        }
    }

    /// Keeps `events`, which the pump has just stored, for the run's readers; called before
    /// they are woken.
    pub(super) fn keep_stored(&self, events: &[StoredEvent]) {
        if !events.is_empty() {
            lock(&self.recent).extend(events);
        }
    }

    /// Drops the events kept for readers: the run waits, and its readers have read them
    /// (one that has not reads the store).
    pub(super) fn forget_recent(&self) {
        *lock(&self.recent) = Recent::default();
    }

    /// Up to `limit` stored events after `after`, if the run still has them in memory.
    pub(super) fn recent_after(&self, after: i64, limit: usize) -> Option<Vec<StoredEvent>> {
        lock(&self.recent).after(after, limit)
    }

    /// Lets go of the run at once, without writing anything: it is cancelled (its steps stop
    /// here) and its pump stops. The store's leases decide who resumes it.
    pub(super) fn abandon(&self) {
        self.abandoned
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.run.cancel();
        self.abandon.notify_one();
    }
}

/// The runs in memory and the runs being adopted; see the module docs.
#[derive(Default)]
pub(super) struct LiveRuns {
    map: Mutex<HashMap<String, Arc<Live>>>,
    /// Runs being brought into memory right now.
    adopting: Mutex<HashSet<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl LiveRuns {
    /// The run `handler_id`, if it is in memory.
    pub(super) fn get(&self, handler_id: &str) -> Option<Arc<Live>> {
        lock(&self.map).get(handler_id).cloned()
    }

    /// Whether `live` is still the copy of its run in memory.
    pub(super) fn is_current(&self, live: &Live) -> bool {
        lock(&self.map)
            .get(&live.handler_id)
            .is_some_and(|l| std::ptr::eq(&**l, live))
    }

    /// How many runs are in memory.
    pub(super) fn count(&self) -> usize {
        lock(&self.map).len()
    }

    /// Puts `live` in memory if `allowed()`, asked under the lock; whether it did.
    pub(super) fn insert_if(&self, live: Arc<Live>, allowed: impl FnOnce() -> bool) -> bool {
        let mut map = lock(&self.map);
        if !allowed() {
            return false;
        }
        map.insert(live.handler_id.clone(), live);
        true
    }

    /// Takes `live` out of memory, if it is still the current copy of its run.
    pub(super) fn remove(&self, live: &Live) {
        let mut map = lock(&self.map);
        if map
            .get(&live.handler_id)
            .is_some_and(|l| std::ptr::eq(&**l, live))
        {
            map.remove(&live.handler_id);
        }
    }

    /// Runs `first` under the lock, then lists the runs in memory.
    pub(super) fn list_after(&self, first: impl FnOnce()) -> Vec<Arc<Live>> {
        let map = lock(&self.map);
        first();
        map.values().cloned().collect()
    }

    /// Runs `first` under the lock, then takes every run out of memory.
    pub(super) fn take_all_after(&self, first: impl FnOnce()) -> Vec<Arc<Live>> {
        let mut map = lock(&self.map);
        first();
        map.drain().map(|(_, live)| live).collect()
    }

    /// Marks `handler_id` as being adopted, unless it is in memory or already being adopted;
    /// the mark lasts as long as the guard.
    pub(super) fn begin_adopting(&self, handler_id: &str) -> Option<Adopting<'_>> {
        let map = lock(&self.map);
        let mut adopting = lock(&self.adopting);
        if map.contains_key(handler_id) || !adopting.insert(handler_id.to_owned()) {
            return None;
        }
        Some(Adopting {
            runs: self,
            handler_id: handler_id.to_owned(),
        })
    }
}

/// Marks a run as being adopted until dropped.
pub(super) struct Adopting<'a> {
    runs: &'a LiveRuns,
    handler_id: String,
}

impl Drop for Adopting<'_> {
    fn drop(&mut self) {
        lock(&self.runs.adopting).remove(&self.handler_id);
    }
}
