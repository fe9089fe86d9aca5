//! A store wrapper with knobs, to make the real stores fail or stall on purpose.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use workflows_server::storage::{
    ChangeFeed, Created, HandlerFilter, HandlerRecord, InboxItem, RunState, RunUpdate, Storage,
    StorageError, StorageFuture, StoredEvent,
};

/// `inner`, with the next `fail_appends` event writes (appends, and updates that carry
/// events) failing, releases and updates taking
/// `release_delay_ms` / `update_delay_ms` longer, renewals failing while `fail_renew`, and
/// handler reads failing while `down`, and renewals or event writes hanging (for a minute)
/// while `hang_renew` / `hang_appends`, and renewals taking `renew_delay_ms` longer; counts
/// event reads in `event_reads`.
#[derive(Clone)]
pub struct Knobs<S: Storage + Clone> {
    pub inner: S,
    pub fail_appends: Arc<AtomicUsize>,
    pub release_delay_ms: Arc<AtomicU64>,
    pub update_delay_ms: Arc<AtomicU64>,
    pub fail_renew: Arc<AtomicBool>,
    pub down: Arc<AtomicBool>,
    pub hang_renew: Arc<AtomicBool>,
    pub hang_appends: Arc<AtomicBool>,
    pub renew_delay_ms: Arc<AtomicU64>,
    /// The store takes no write (`probe_write` fails) while set.
    pub read_only: Arc<AtomicBool>,
    /// How many times events were read (`events_after`).
    pub event_reads: Arc<AtomicUsize>,
    /// Updates that store no events (snapshots on their own) hang (for a minute) while set:
    /// snapshots lag the events stored, as after a burst.
    pub hang_bare_updates: Arc<AtomicBool>,
    /// How many of those hanging updates would have deleted delivered inbox items.
    pub hung_deliveries: Arc<AtomicUsize>,
    /// How many writes a run's life made: creates, appends, updates, claims, releases,
    /// inbox pushes and deletes (not the periodic renewals and expiries).
    pub writes: Arc<AtomicUsize>,
}

impl<S: Storage + Clone> Knobs<S> {
    pub fn new(inner: S) -> Self {
        Knobs {
            inner,
            fail_appends: Arc::default(),
            release_delay_ms: Arc::default(),
            update_delay_ms: Arc::default(),
            fail_renew: Arc::default(),
            down: Arc::default(),
            hang_renew: Arc::default(),
            hang_appends: Arc::default(),
            renew_delay_ms: Arc::default(),
            read_only: Arc::default(),
            event_reads: Arc::default(),
            hang_bare_updates: Arc::default(),
            hung_deliveries: Arc::default(),
            writes: Arc::default(),
        }
    }
}

impl<S: Storage + Clone> Knobs<S> {
    /// What a write of events gets while `hang_appends`, or while `fail_appends` counts
    /// down; `None`: it goes through.
    fn refused_event_write<'a>(&self) -> Option<StorageFuture<'a, bool>> {
        if self.hang_appends.load(SeqCst) {
            return Some(hang());
        }
        if self
            .fail_appends
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Some(Box::pin(async {
                Err(StorageError::new("the disk is full"))
            }));
        }
        None
    }
}

/// A call that does not answer for a minute, then fails.
fn hang<'a, T: Send + 'a>() -> StorageFuture<'a, T> {
    Box::pin(async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Err(StorageError::new("timed out"))
    })
}

fn delayed<'a, T: Send + 'a>(ms: u64, f: StorageFuture<'a, T>) -> StorageFuture<'a, T> {
    Box::pin(async move {
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        f.await
    })
}

impl<S: Storage + Clone> Storage for Knobs<S> {
    fn migrate(&self) -> StorageFuture<'_, ()> {
        self.inner.migrate()
    }
    fn create_handler(&self, r: HandlerRecord, s: String, l: i64) -> StorageFuture<'_, Created> {
        self.writes.fetch_add(1, SeqCst);
        self.inner.create_handler(r, s, l)
    }
    fn probe_write(&self) -> StorageFuture<'_, ()> {
        if self.read_only.load(SeqCst) || self.down.load(SeqCst) {
            return Box::pin(async { Err(StorageError::new("disk full")) });
        }
        self.inner.probe_write()
    }
    fn handler(&self, h: &str) -> StorageFuture<'_, Option<HandlerRecord>> {
        if self.down.load(SeqCst) {
            return Box::pin(async { Err(StorageError::new("the database does not answer")) });
        }
        self.inner.handler(h)
    }
    fn handlers(&self, f: HandlerFilter) -> StorageFuture<'_, Vec<HandlerRecord>> {
        self.inner.handlers(f)
    }
    fn expire(&self, before: i64, limit: usize) -> StorageFuture<'_, usize> {
        self.inner.expire(before, limit)
    }
    fn delete_handler(&self, h: &str) -> StorageFuture<'_, bool> {
        self.writes.fetch_add(1, SeqCst);
        self.inner.delete_handler(h)
    }
    fn run_state(&self, h: &str) -> StorageFuture<'_, Option<RunState>> {
        self.inner.run_state(h)
    }
    fn append_events(
        &self,
        h: &str,
        r: &str,
        o: &str,
        e: Vec<StoredEvent>,
    ) -> StorageFuture<'_, bool> {
        self.writes.fetch_add(1, SeqCst);
        if let Some(refused) = self.refused_event_write() {
            return refused;
        }
        self.inner.append_events(h, r, o, e)
    }
    fn events_after(&self, r: &str, a: i64, l: usize) -> StorageFuture<'_, Vec<StoredEvent>> {
        self.event_reads.fetch_add(1, SeqCst);
        self.inner.events_after(r, a, l)
    }
    fn last_sequence(&self, r: &str) -> StorageFuture<'_, Option<u64>> {
        self.inner.last_sequence(r)
    }
    fn update_run(&self, h: &str, o: &str, u: RunUpdate, n: i64) -> StorageFuture<'_, bool> {
        self.writes.fetch_add(1, SeqCst);
        if u.events.is_empty() && self.hang_bare_updates.load(SeqCst) {
            if !u.consumed.is_empty() {
                self.hung_deliveries.fetch_add(1, SeqCst);
            }
            return hang();
        }
        // A prompt's events are written with its snapshot, through an update.
        if !u.events.is_empty()
            && let Some(refused) = self.refused_event_write()
        {
            return refused;
        }
        delayed(
            self.update_delay_ms.load(SeqCst),
            self.inner.update_run(h, o, u, n),
        )
    }
    fn claim(&self, h: &str, o: &str, l: i64) -> StorageFuture<'_, bool> {
        self.writes.fetch_add(1, SeqCst);
        self.inner.claim(h, o, l)
    }
    fn renew(&self, o: &str, l: i64) -> StorageFuture<'_, ()> {
        if self.hang_renew.load(SeqCst) {
            return hang();
        }
        if self.fail_renew.load(SeqCst) {
            return Box::pin(async { Err(StorageError::new("the database does not answer")) });
        }
        delayed(self.renew_delay_ms.load(SeqCst), self.inner.renew(o, l))
    }
    fn release(&self, h: &str, o: &str) -> StorageFuture<'_, ()> {
        self.writes.fetch_add(1, SeqCst);
        delayed(self.release_delay_ms.load(SeqCst), self.inner.release(h, o))
    }
    fn push_inbox(&self, h: &str, i: InboxItem) -> StorageFuture<'_, ()> {
        self.writes.fetch_add(1, SeqCst);
        self.inner.push_inbox(h, i)
    }
    fn inbox(&self, h: &str) -> StorageFuture<'_, Vec<(i64, InboxItem)>> {
        self.inner.inbox(h)
    }
    fn held(&self, o: &str) -> StorageFuture<'_, Vec<(String, String)>> {
        self.inner.held(o)
    }
    fn with_inbox(&self, o: &str) -> StorageFuture<'_, Vec<String>> {
        self.inner.with_inbox(o)
    }
    fn orphans(&self) -> StorageFuture<'_, Vec<String>> {
        self.inner.orphans()
    }
    fn changes(&self) -> ChangeFeed {
        self.inner.changes()
    }
}
