//! Admission: a run's slot among its runner's concurrent runs, and its timeout.
//!
//! # Invariants
//!
//! - No step of the run starts before it holds its slot (when the runner limits concurrent
//!   runs); the slot is given back when the run's loop is dropped.
//! - The run's clock (its timeout) starts once it has its slot.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// Waiting for a slot among a runner's concurrent runs.
type SlotWait = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

pub(crate) struct Admission {
    /// The wait for a slot, until it is granted.
    acquire: Option<SlotWait>,
    /// The slot, once granted; held until the run's loop is dropped.
    _permit: Option<OwnedSemaphorePermit>,
    timeout: Option<Duration>,
    /// Set when the run is admitted, if it has a timeout.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl Admission {
    pub(crate) fn new(timeout: Option<Duration>) -> Self {
        Admission {
            acquire: None,
            _permit: None,
            timeout,
            deadline: None,
        }
    }

    /// Makes the run wait for a slot of `limit` before it starts.
    pub(crate) fn limit_by(&mut self, limit: Arc<Semaphore>) {
        self.acquire = Some(Box::pin(limit.acquire_owned()));
    }

    /// Whether the run holds its slot (or needs none); registers `cx` for the slot otherwise.
    #[inline]
    pub(crate) fn poll_admitted(&mut self, cx: &mut TaskContext<'_>) -> bool {
        let Some(acquire) = self.acquire.as_mut() else {
            return true;
        };
        match acquire.as_mut().poll(cx) {
            Poll::Ready(permit) => {
                // The semaphore is never closed, so acquiring only waits.
                self._permit = permit.ok();
                self.acquire = None;
                true
            }
            Poll::Pending => false,
        }
    }

    /// The run's timeout, once it has elapsed (the clock starts at the first call).
    #[inline]
    pub(crate) fn poll_timed_out(&mut self, cx: &mut TaskContext<'_>) -> Option<Duration> {
        let timeout = self.timeout?;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        deadline.as_mut().poll(cx).is_ready().then_some(timeout)
    }
}
