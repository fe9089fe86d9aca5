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
    /// Boxed, and only for a run with a limit or a timeout: most runs have neither, and every
    /// byte here is a byte of each run's task.
    limits: Option<Box<Limits>>,
}

#[derive(Default)]
struct Limits {
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
            limits: timeout.map(|timeout| {
                Box::new(Limits {
                    timeout: Some(timeout),
                    ..Limits::default()
                })
            }),
        }
    }

    /// Makes the run wait for a slot of `limit` before it starts.
    pub(crate) fn limit_by(&mut self, limit: Arc<Semaphore>) {
        self.limits.get_or_insert_default().acquire = Some(Box::pin(limit.acquire_owned()));
    }

    /// Whether the run holds its slot (or needs none); registers `cx` for the slot otherwise.
    #[inline]
    pub(crate) fn poll_admitted(&mut self, cx: &mut TaskContext<'_>) -> bool {
        let Some(limits) = self.limits.as_deref_mut() else {
            return true;
        };
        let Some(acquire) = limits.acquire.as_mut() else {
            return true;
        };
        match acquire.as_mut().poll(cx) {
            Poll::Ready(permit) => {
                // The semaphore is never closed, so acquiring only waits.
                limits._permit = permit.ok();
                limits.acquire = None;
                true
            }
            Poll::Pending => false,
        }
    }

    /// The run's timeout, once it has elapsed (the clock starts at the first call).
    #[inline]
    pub(crate) fn poll_timed_out(&mut self, cx: &mut TaskContext<'_>) -> Option<Duration> {
        let limits = self.limits.as_deref_mut()?;
        let timeout = limits.timeout?;
        let deadline = limits
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        deadline.as_mut().poll(cx).is_ready().then_some(timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each run's task holds its admission: a run without a limit or a timeout pays a pointer.
    #[test]
    fn an_unlimited_run_pays_a_pointer() {
        assert_eq!(
            std::mem::size_of::<Admission>(),
            std::mem::size_of::<usize>()
        );
        assert!(Admission::new(None).limits.is_none());
        assert!(
            Admission::new(Some(Duration::from_secs(1)))
                .limits
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_limit_admits_once_a_slot_is_free_and_holds_it() {
        let limit = Arc::new(Semaphore::new(1));
        let held = limit.clone().acquire_owned().await.unwrap();
        let mut admission = Admission::new(None);
        admission.limit_by(limit.clone());
        let waker = std::task::Waker::noop();
        let mut cx = TaskContext::from_waker(waker);
        assert!(!admission.poll_admitted(&mut cx), "no slot is free");
        drop(held);
        assert!(admission.poll_admitted(&mut cx));
        assert_eq!(limit.available_permits(), 0, "the run holds its slot");
        drop(admission);
        assert_eq!(
            limit.available_permits(),
            1,
            "and gives it back when dropped"
        );
    }
}
