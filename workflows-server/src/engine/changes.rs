//! The one way to wait for a stored run to change: for a stream reader, a waiting
//! `POST /run`, a cancel that waits for the end.
//!
//! Who tells of a change depends on where the run is:
//!
//! - in this server's memory: the run itself (its pump and
//!   [`LiveRuns::forget`](super::live::LiveRuns::forget) notify `Live::stored` when it stores
//!   events and when it leaves memory);
//! - parked in the store, or held by another server: [`Changes`], woken by this server when
//!   it brings the run into memory, fails it or deletes it, and by the store's
//!   [`ChangeFeed`] for what other servers do.
//!
//! A watch of a run not in memory also looks again after a while, in case a change went
//! untold: after [`FALLBACK`] when the store tells of every change, after
//! [`Config::poll_interval`](crate::Config::poll_interval) when it does not
//! ([`ChangeFeed::Unknown`]).
//!
//! # Invariant
//!
//! A [`Watch`] registers for both notifications before the caller reads the store, and
//! checks that the run is still in memory after registering: a change between the read and
//! the wait always ends the wait.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;

use super::Engine;
use crate::storage::{Change, ChangeFeed};

/// How long a watch of a run not in memory waits before it looks again, when the store tells
/// of every change: only a change that went untold is late by this much.
pub(crate) const FALLBACK: Duration = Duration::from_secs(10);

/// The watchers of runs not in this server's memory, by handler id.
#[derive(Default)]
pub(crate) struct Changes {
    watched: Mutex<HashMap<String, Watched>>,
}

/// The watchers of one run.
struct Watched {
    notify: Arc<Notify>,
    watchers: usize,
}

impl Changes {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Watched>> {
        self.watched.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the watchers of `handler_id`.
    pub(crate) fn wake(&self, handler_id: &str) {
        if let Some(watched) = self.lock().get(handler_id) {
            watched.notify.notify_waiters();
        }
    }

    /// Wakes every watcher: changes may have gone untold.
    fn wake_all(&self) {
        for watched in self.lock().values() {
            watched.notify.notify_waiters();
        }
    }

    /// Counts one more watcher of `handler_id`, until the subscription is dropped.
    fn subscribe(self: &Arc<Self>, handler_id: &str) -> Subscription {
        let notify = self
            .lock()
            .entry(handler_id.to_owned())
            .and_modify(|w| w.watchers += 1)
            .or_insert_with(|| Watched {
                notify: Arc::new(Notify::new()),
                watchers: 1,
            })
            .notify
            .clone();
        Subscription {
            changes: self.clone(),
            handler_id: handler_id.to_owned(),
            notify,
        }
    }

    /// Hands the changes `feed` tells of to the watchers, until the feed ends or the
    /// watchers are gone. `None` when the feed tells nothing.
    pub(crate) fn hear(self: &Arc<Self>, feed: ChangeFeed) -> Option<tokio::task::JoinHandle<()>> {
        let ChangeFeed::Shared(mut received) = feed else {
            return None;
        };
        let changes: Weak<Changes> = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            while let Some(change) = received.recv().await {
                let Some(changes) = changes.upgrade() else {
                    return;
                };
                match change {
                    Change::Handler(id) => changes.wake(&id),
                    Change::Missed => changes.wake_all(),
                }
            }
        }))
    }
}

/// One watcher of a run, counted while it lives.
struct Subscription {
    changes: Arc<Changes>,
    handler_id: String,
    notify: Arc<Notify>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut watched = self.changes.lock();
        if let Some(w) = watched.get_mut(&self.handler_id) {
            w.watchers -= 1;
            if w.watchers == 0 {
                watched.remove(&self.handler_id);
            }
        }
    }
}

/// Armed by [`Engine::watch`] before the caller reads the store; [`Watch::changed`] then
/// waits until what was read may be out of date.
pub(crate) struct Watch {
    /// Woken by the run in memory, if it is.
    stored: Option<Pin<Box<OwnedNotified>>>,
    /// Woken by [`Changes`].
    told: Pin<Box<OwnedNotified>>,
    /// Counts this watcher while it lives.
    _subscription: Subscription,
    /// The run is in memory here: it notifies; no looking again.
    here: bool,
    /// How long to wait, for a run not in memory here, before looking again.
    fallback: Duration,
}

impl Engine {
    /// A watch on `handler_id`, armed now: read the store after this, then wait on it.
    pub(crate) fn watch(&self, handler_id: &str) -> Watch {
        let subscription = self.changes.subscribe(handler_id);
        let mut told = Box::pin(subscription.notify.clone().notified_owned());
        told.as_mut().enable();
        let live = self.live.get(handler_id);
        let stored = live.as_ref().map(|l| {
            let mut notified = Box::pin(l.stored.clone().notified_owned());
            notified.as_mut().enable();
            notified
        });
        // Checked after registering: if the run leaves memory after this, `stored` fires.
        let here = live.as_ref().is_some_and(|l| self.live.is_current(l));
        Watch {
            stored,
            told,
            _subscription: subscription,
            here,
            fallback: self.fallback,
        }
    }
}

impl Watch {
    /// Whether the watched run is in this server's memory (it tells of its changes).
    pub(crate) fn is_here(&self) -> bool {
        self.here
    }

    /// Waits until the run has stored events, left or entered memory, ended or been deleted,
    /// or, for a run not in memory here, until it is time to look again.
    pub(crate) async fn changed(self) {
        let Watch {
            stored,
            told,
            here,
            fallback,
            _subscription,
        } = self;
        let pause = async {
            if here {
                std::future::pending().await
            } else {
                tokio::time::sleep(fallback).await
            }
        };
        let stored = async {
            match stored {
                Some(notified) => notified.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stored => {}
            () = told => {}
            () = pause => {}
        }
    }
}
