//! The background round that finds work no request brought: inbox items of runs held here,
//! runs held here but not in memory, and runs no live server holds.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Engine;

/// How often ended runs past their retention are looked for (or each retention, if shorter).
const EXPIRY_EVERY: Duration = Duration::from_secs(10);

/// How many expired runs one statement deletes: a long history is deleted in short writes
/// that leave the store to the runs between them.
const EXPIRY_BATCH: usize = 500;

/// How many orphaned runs one round adopts at the same time.
const ADOPTIONS_AT_ONCE: usize = 8;
use crate::storage::ErrorChain;

impl Engine {
    /// Hands inbox items to runs held here, lets go of runs held here that are not in memory
    /// (a run whose pump stopped on a storage error), and adopts runs no live server holds.
    /// Runs until the server stops.
    pub(crate) async fn maintain(self: Arc<Self>) {
        let mut expired_at: Option<Instant> = None;
        loop {
            tokio::time::sleep(self.config.poll_interval).await;
            if self.is_closing() {
                return;
            }
            if let Some(retention) = self.config.retention
                && expired_at.is_none_or(|at| at.elapsed() >= retention.min(EXPIRY_EVERY))
            {
                expired_at = Some(Instant::now());
                self.expire(retention).await;
            }
            match self.storage.with_inbox(&self.id).await {
                Ok(ids) => {
                    for id in ids {
                        // A run held here but not in memory is being started or adopted,
                        // and takes its inbox once it is.
                        if let Some(live) = self.live.get(&id) {
                            live.kick.notify_one();
                        }
                    }
                }
                Err(e) => tracing::error!("reading inboxes failed: {}", ErrorChain(&e)),
            }
            match self.storage.held(&self.id).await {
                Ok(held) => {
                    for (id, lease) in held {
                        // Held across the release, so that no adoption starts meanwhile.
                        let Some(_adopting) = self.live.begin_adopting(&id) else {
                            continue;
                        };
                        if let Err(e) = self.storage.release(&id, &lease).await {
                            tracing::error!(handler = %id, "letting go of the run failed: {}", ErrorChain(&e));
                        }
                    }
                }
                Err(e) => tracing::error!("listing held runs failed: {}", ErrorChain(&e)),
            }
            match self.storage.orphans().await {
                Ok(ids) => {
                    let engine = &self;
                    // Several at once, so that one slow adoption (a locked row, a big
                    // snapshot) does not hold up the rest; a bounded number, so that a
                    // thousand orphans do not take every connection of the store.
                    futures_util::StreamExt::for_each_concurrent(
                        futures_util::stream::iter(ids),
                        ADOPTIONS_AT_ONCE,
                        |id| async move {
                            if engine.live.get(&id).is_none()
                                && let Err(e) = engine.adopt(&id).await
                            {
                                tracing::error!(handler = %id, "adopting the run failed: {}", ErrorChain(&e));
                            }
                        },
                    )
                    .await;
                }
                Err(e) => tracing::error!("looking for orphaned runs failed: {}", ErrorChain(&e)),
            }
        }
    }

    /// Deletes the runs that ended more than `retention` ago, in batches.
    async fn expire(&self, retention: Duration) {
        let Ok(retention_us) = i64::try_from(retention.as_micros()) else {
            return;
        };
        let before = crate::clock::now_us().saturating_sub(retention_us);
        loop {
            match self.storage.expire(before, EXPIRY_BATCH).await {
                Ok(n) if n == EXPIRY_BATCH && !self.is_closing() => {
                    tokio::task::yield_now().await;
                }
                Ok(_) => return,
                Err(e) => {
                    tracing::error!("deleting expired runs failed: {}", ErrorChain(&e));
                    return;
                }
            }
        }
    }
}
