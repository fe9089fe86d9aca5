//! This server's leases on the runs it executes: a new name for each claim, renewal of them
//! all on a task of its own, and letting every run go when renewals stop answering.
//!
//! # Invariant
//!
//! A run executes here only while its lease surely holds: when renewals fail or hang until
//! the leases could run out, every run in memory is let go of before that moment, and no run
//! is taken until a renewal answers again.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::Engine;
use crate::storage::ErrorChain;

impl Engine {
    /// A new lease name for one claim of a run: writes of an earlier copy of the run, held
    /// under another name, are refused even after this server claims the run again.
    pub(super) fn new_lease(&self) -> String {
        format!(
            "{}/{}",
            self.id,
            self.claims.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// The length of a lease, in milliseconds.
    pub(super) fn lease_ms(&self) -> i64 {
        i64::try_from(self.config.lease_ttl.as_millis()).unwrap_or(i64::MAX)
    }

    /// Renews every lease this server holds, every third of the lease's length, on a task of
    /// its own so that nothing else delays it. Runs until the server stops.
    ///
    /// If renewals fail or hang until the leases could run out, every run in memory is let go
    /// of at once (cancelled, nothing more written): another server may be resuming it, and
    /// a run must not execute in two places while this one waits for its next write.
    pub(crate) async fn renew_leases(self: Arc<Self>) {
        let ttl = self.config.lease_ttl;
        let mut valid_until = Instant::now() + ttl;
        let mut next = Instant::now() + ttl / 3;
        loop {
            // Every third of a lease from the previous send (at once if that one took
            // longer), so that a steadily slow store is not mistaken for a lost one.
            tokio::time::sleep_until(next).await;
            let sent = Instant::now();
            next = sent + ttl / 3;
            // While runs are held, wait for the answer only as long as their leases surely
            // hold (a sixth of a lease is kept as margin); while none is (after giving up),
            // as long as that allows in steady state: half a lease.
            let limit = if self.leases_ok.load(Ordering::SeqCst) {
                valid_until - ttl / 6
            } else {
                sent + ttl / 2
            };
            let renewal = self.storage.renew(&self.id, self.lease_ms());
            match tokio::time::timeout_at(limit, renewal).await {
                Ok(Ok(())) => {
                    valid_until = sent + ttl;
                    self.leases_ok.store(true, Ordering::SeqCst);
                }
                Ok(Err(e)) => {
                    tracing::error!("renewing leases failed: {}", ErrorChain(&e));
                    if Instant::now() + ttl / 3 >= limit {
                        self.abandon_all("renewals failed until the leases could run out");
                    }
                }
                Err(_) => self.abandon_all("renewing leases did not answer in time"),
            }
        }
    }

    /// Lets go of every run in memory at once, without writing anything (see
    /// [`Live::abandon`](super::live::Live::abandon)); out of memory at once, even if a pump
    /// is stuck in a call to the store. This server also stops taking runs until a renewal
    /// answers again.
    pub(super) fn abandon_all(&self, why: &str) {
        // Under the lock `attach` takes: a run attached after this is refused there.
        let all = self
            .live
            .take_all_after(|| self.leases_ok.store(false, Ordering::SeqCst));
        if !all.is_empty() {
            tracing::error!("{why}: letting go of {} run(s)", all.len());
        }
        for live in all {
            live.abandon();
        }
    }
}
