//! Polling a run: waiting for its slot, its timeout, and the loop that drives it.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures_util::StreamExt;
use tokio::sync::Semaphore;

use crate::error::PanicError;
use crate::lifecycle::WorkflowIdle;
use crate::runtime::run_loop::{BUDGET, RunLoop};
use crate::{Workflow, WorkflowError};

impl<W: Workflow> RunLoop<W> {
    /// Frees the buffers of empty queues and lists, so that a suspended run holds little.
    fn compact(&mut self) {
        if self.invocations.iter().all(Option::is_none) {
            self.invocations = Vec::new();
            self.free = Vec::new();
        }
        for queue in &mut self.queues {
            if queue.is_empty() && queue.capacity() > 0 {
                *queue = VecDeque::new();
            }
        }
        if self.inbox.is_empty() {
            self.inbox = VecDeque::new();
        }
        if self.ready.is_empty() {
            self.ready = VecDeque::new();
        }
        if self.in_flight.as_ref().is_some_and(|f| f.is_empty()) {
            self.in_flight = None;
        }
    }

    fn has_queued_work(&self) -> bool {
        !self.retry_now.is_empty()
            || !self.ready.is_empty()
            || self
                .queues
                .iter()
                .zip(&self.active)
                .enumerate()
                .any(|(i, (q, n))| !q.is_empty() && *n < W::STEPS[i].num_workers)
    }

    /// Whether the run can only move on when an event arrives from outside: nothing queued,
    /// and every live invocation waits for an event (or there is none).
    fn is_blocked(&self) -> bool {
        if !self.retry_now.is_empty()
            || !self.ready.is_empty()
            || !self.queues.iter().all(VecDeque::is_empty)
        {
            return false;
        }
        self.invocations
            .iter()
            .enumerate()
            .all(|(slot, inv)| match inv {
                None => true,
                // Waiting counts only while someone awaits the answer: a wait whose future the
                // step dropped (say, under its own timeout) leaves the step busy elsewhere.
                Some(inv) => self.waiters.iter().any(|w| {
                    w.slot == slot
                        && w.seq == inv.seq
                        && w.reply.as_ref().is_none_or(|r| !r.is_closed())
                }),
            })
    }

    fn poll_deadline(&mut self, cx: &mut TaskContext<'_>) {
        let Some(timeout) = self.timeout else {
            return;
        };
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if deadline.as_mut().poll(cx).is_ready() {
            let active_steps = self.active_steps();
            self.finish(Err(WorkflowError::Timeout {
                timeout,
                active_steps,
            }));
        }
    }
}

impl<W: Workflow> RunLoop<W> {
    /// Makes the run wait for a slot of `limit` before it starts.
    pub(crate) fn limit_by(&mut self, limit: Arc<Semaphore>) {
        self.acquire = Some(Box::pin(limit.acquire_owned()));
    }

    /// Waits for the run's slot, if it needs one. Meanwhile events are queued (no step starts),
    /// cancels end the run, and snapshots are answered. Returns whether the run may go on.
    fn poll_slot(&mut self, cx: &mut TaskContext<'_>) -> bool {
        let Some(acquire) = self.acquire.as_mut() else {
            return true;
        };
        if let Poll::Ready(permit) = acquire.as_mut().poll(cx) {
            // The semaphore is never closed, so acquiring only waits.
            self.permit = permit.ok();
            self.acquire = None;
            return true;
        }
        while self.shared.core.take_or_park(&mut self.inbox, cx.waker()) {
            self.drain_messages();
            self.answer_snapshots();
            if self.done {
                break;
            }
        }
        false
    }

    fn poll_run(&mut self, cx: &mut TaskContext<'_>) -> Poll<()> {
        if !self.poll_slot(cx) {
            return if self.done {
                Poll::Ready(())
            } else {
                Poll::Pending
            };
        }
        self.poll_deadline(cx);
        let shared = self.shared.clone();
        shared.core.begin_poll(&mut self.inbox);
        let mut budget = BUDGET;
        loop {
            self.drain_messages();
            self.answer_snapshots();
            if !self.done {
                self.start_ready(cx, &mut budget);
            }
            while !self.done && budget > 0 {
                let Some(in_flight) = self.in_flight.as_mut() else {
                    break;
                };
                match in_flight.poll_next_unpin(cx) {
                    Poll::Ready(Some(completion)) => {
                        self.complete(completion, cx);
                        budget -= 1;
                    }
                    _ => break,
                }
            }
            if !self.done {
                self.poll_wait_timer(cx);
            }
            if self.done {
                return Poll::Ready(());
            }
            if budget == 0 {
                // Let other tasks run; the inbox stays marked as being drained.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if self.has_queued_work()
                || !self.inbox.is_empty()
                || !self.snapshot_requests.is_empty()
            {
                continue;
            }
            if shared.core.take_or_park(&mut self.inbox, cx.waker()) {
                continue;
            }
            if self.is_blocked() {
                // A run waiting for the outside may wait for days: give back what it can.
                self.compact();
                shared.core.compact_inbox();
                if shared.core.abandoned() {
                    // A sender may have queued a message just before it went away.
                    if shared.core.take_or_park(&mut self.inbox, cx.waker()) {
                        continue;
                    }
                    self.finish(Err(WorkflowError::Cancelled));
                    return Poll::Ready(());
                }
                if self.internal_events && !self.idle_published {
                    self.idle_published = true;
                    self.stream().publish(Arc::new(WorkflowIdle {}));
                }
            } else {
                self.idle_published = false;
            }
            return Poll::Pending;
        }
    }
}

impl<W: Workflow> Future for RunLoop<W> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = &mut *self;
        let span = this.span.clone();
        let _entered = span.enter();
        if this.done {
            return Poll::Ready(());
        }
        // Step futures catch their own panics; this catches those of user code the loop calls
        // itself (an event's Clone or Serialize, a retry predicate).
        match catch_unwind(AssertUnwindSafe(|| this.poll_run(cx))) {
            Ok(poll) => poll,
            Err(payload) => {
                let message = PanicError::from_payload(&*payload).message;
                this.finish(Err(WorkflowError::Panicked { message }));
                Poll::Ready(())
            }
        }
    }
}
