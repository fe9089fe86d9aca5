//! The one way to wait for a stored run to change: for a stream reader, a waiting
//! `POST /run`, a cancel that waits for the end.
//!
//! A run in memory here says when it has stored events and when it leaves memory (its pump
//! and [`LiveRuns::forget`](super::live::LiveRuns::forget) notify `Live::stored`), so a
//! watcher of such a run needs no timer. A run held by another server, or parked in the
//! store, is looked at again after the poll interval.
//!
//! # Invariant
//!
//! A [`Watch`] registers for the notification before the caller reads the store, and checks
//! that the run is still in memory after registering: a change between the read and the wait
//! always ends the wait.

use std::pin::Pin;
use std::time::Duration;

use tokio::sync::futures::OwnedNotified;

use super::Engine;

/// Armed by [`Engine::watch`] before the caller reads the store; [`Watch::changed`] then
/// waits until what was read may be out of date.
pub(crate) struct Watch {
    notified: Option<Pin<Box<OwnedNotified>>>,
    /// The run is in memory here: it notifies; no polling.
    here: bool,
    poll_interval: Duration,
}

impl Engine {
    /// A watch on `handler_id`, armed now: read the store after this, then wait on it.
    pub(crate) fn watch(&self, handler_id: &str) -> Watch {
        let live = self.live.get(handler_id);
        let notified = live.as_ref().map(|l| {
            let mut notified = Box::pin(l.stored.clone().notified_owned());
            notified.as_mut().enable();
            notified
        });
        // Checked after registering: if the run leaves memory after this, `notified` fires.
        let here = live.as_ref().is_some_and(|l| self.live.is_current(l));
        Watch {
            notified,
            here,
            poll_interval: self.config.poll_interval,
        }
    }
}

impl Watch {
    /// Whether the watched run is in this server's memory (it tells of its changes).
    pub(crate) fn is_here(&self) -> bool {
        self.here
    }

    /// Waits until the run has stored events or left memory, or, for a run not in memory
    /// here, for the poll interval.
    pub(crate) async fn changed(mut self) {
        let pause = async {
            if self.here {
                std::future::pending().await
            } else {
                tokio::time::sleep(self.poll_interval).await
            }
        };
        match self.notified.as_mut() {
            Some(notified) => {
                tokio::select! {
                    () = notified.as_mut() => {}
                    () = pause => {}
                }
            }
            None => pause.await,
        }
    }
}
