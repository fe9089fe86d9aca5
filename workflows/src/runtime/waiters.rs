//! Waiters: steps suspended in `wait_for_event`, and how events and timeouts answer them.

use std::time::Duration;

use tokio::sync::oneshot;

use std::future::Future;

use crate::runtime::run_loop::RunLoop;
use crate::runtime::shared::{WaitRequest, lock};
use crate::wait::{Requirement, WaitError};
use crate::{AnyEvent, EventInfo, Workflow};
use tokio::time::Instant;

pub(crate) type Reply = oneshot::Sender<Result<Box<dyn AnyEvent>, WaitError>>;

/// A step waiting for an event.
pub(crate) struct Waiter {
    pub(crate) id: String,
    /// Where its answer is recorded in the invocation's memo: the id, plus the occurrence
    /// when one attempt reuses an explicit id.
    pub(crate) memo_key: String,
    /// The waiting invocation.
    pub(crate) slot: usize,
    pub(crate) seq: u64,
    pub(crate) step: usize,
    pub(crate) event: EventInfo,
    pub(crate) requirements: Vec<Requirement>,
    pub(crate) timeout: Option<Duration>,
    /// When the timeout elapses.
    pub(crate) deadline: Option<Instant>,
    /// Where the answer goes; `None` for a waiter restored from a snapshot whose step has not
    /// run again yet.
    pub(crate) reply: Option<Reply>,
}

impl<W: Workflow> RunLoop<W> {
    /// Registers a waiter, or re-attaches a step that runs again to its restored waiter.
    pub(super) fn add_waiter(&mut self, request: WaitRequest) {
        let WaitRequest {
            id,
            memo_key,
            slot,
            seq,
            event,
            requirements,
            prompt,
            timeout,
            reply,
        } = request;
        let Some(step) = self.invocation_mut(slot, seq).map(|inv| inv.step) else {
            return; // The invocation already ended; dropping `reply` tells its future.
        };
        if let Some(waiter) = self
            .waiters
            .iter_mut()
            .find(|w| w.memo_key == memo_key && w.slot == slot && w.seq == seq)
        {
            waiter.reply = Some(reply);
            return;
        }
        // Published once per waiter id, after the waiter is in place: whoever reads the
        // prompt can answer it at once.
        let prompt = prompt.filter(|_| !self.waiters.iter().any(|w| w.id == id));
        let deadline = timeout.map(|t| Instant::now() + t);
        self.waiters.push(Waiter {
            id,
            memo_key,
            slot,
            seq,
            step,
            event,
            requirements,
            timeout,
            deadline,
            reply: Some(reply),
        });
        self.waiters_changed();
        if let Some(prompt) = prompt {
            self.stream().publish(prompt.into());
        }
    }

    /// Answers every waiter that `ev` matches (only `target`'s, when given), each with its own
    /// copy, as the Python library resolves every matching waiter. Returns the steps answered:
    /// they do not also get `ev` as a normal input.
    pub(super) fn answer_waiters(
        &mut self,
        ev: &dyn AnyEvent,
        target: Option<usize>,
    ) -> Vec<usize> {
        let ty = ev.event_type_id();
        let mut json = None;
        let mut answered: Vec<usize> = Vec::new();
        let mut index = 0;
        while index < self.waiters.len() {
            let w = &self.waiters[index];
            let eligible = w.event.type_id == ty
                && target.is_none_or(|t| t == w.step)
                && w.reply.as_ref().is_none_or(|r| !r.is_closed());
            let matches = eligible && {
                w.requirements.is_empty() || {
                    let value = json.get_or_insert_with(|| ev.to_json().unwrap_or_default());
                    w.requirements.iter().all(|r| r.matches(value))
                }
            };
            if matches {
                let waiter = self.waiters.remove(index);
                if !answered.contains(&waiter.step) {
                    answered.push(waiter.step);
                }
                self.resolve(waiter, Ok(ev.clone_event()));
            } else {
                index += 1;
            }
        }
        if !answered.is_empty() {
            self.waiters_changed();
        }
        answered
    }

    /// Records the waiter's answer in its invocation's memo and hands it over; a restored
    /// invocation without a running future is started again.
    fn resolve(&mut self, waiter: Waiter, answer: Result<Box<dyn AnyEvent>, WaitError>) {
        let Some(inv) = self.invocation_mut(waiter.slot, waiter.seq) else {
            return;
        };
        let memo = inv.memo.get_or_insert_with(Default::default).clone();
        let running = inv.running;
        // The run has work again: when it next waits, that is a new idle spell to publish.
        self.idle_published = false;
        {
            let mut memo = lock(&memo);
            match &answer {
                Ok(ev) => {
                    memo.resolved
                        .insert(waiter.memo_key.clone(), ev.clone_event());
                }
                Err(_) => memo
                    .timed_out
                    .push((waiter.memo_key.clone(), waiter.timeout.unwrap_or_default())),
            }
        }
        match waiter.reply {
            Some(reply) if running => {
                let _ = reply.send(answer);
            }
            _ if !running => {
                // Scheduled once, however many of its waiters are answered before it runs.
                if let Some(inv) = self.invocation_mut(waiter.slot, waiter.seq) {
                    inv.running = true;
                }
                self.retry_now.push_back(waiter.slot);
            }
            _ => {}
        }
    }

    /// Times out the waiters whose deadline has passed, when the wait timer fires.
    pub(super) fn poll_wait_timer(&mut self, cx: &mut std::task::Context<'_>) {
        let Some(timer) = self.wait_timer.as_mut() else {
            return;
        };
        if timer.as_mut().poll(cx).is_pending() {
            return;
        }
        let now = Instant::now();
        let mut index = 0;
        while index < self.waiters.len() {
            if self.waiters[index].deadline.is_some_and(|d| d <= now) {
                let waiter = self.waiters.remove(index);
                let err = WaitError::Timeout {
                    waiter_id: waiter.id.clone(),
                    after: waiter.timeout.unwrap_or_default(),
                };
                self.resolve(waiter, Err(err));
            } else {
                index += 1;
            }
        }
        self.waiters_changed();
    }

    /// Forgets the waiters of the invocation in `slot`: its attempt ended.
    pub(super) fn drop_waiters_of(&mut self, slot: usize) {
        let before = self.waiters.len();
        self.waiters.retain(|w| w.slot != slot);
        if self.waiters.len() != before {
            self.waiters_changed();
        }
    }

    /// Tells senders outside the loop which event types waiters accept, and sets the wait
    /// timer to the earliest deadline.
    pub(super) fn waiters_changed(&mut self) {
        let types: Vec<(usize, std::any::TypeId)> = self
            .waiters
            .iter()
            .map(|w| (w.step, w.event.type_id))
            .collect();
        self.shared.core.set_waiting(&types);
        match self.waiters.iter().filter_map(|w| w.deadline).min() {
            None => self.wait_timer = None,
            Some(earliest) => match self.wait_timer.as_mut() {
                Some(timer) => timer.as_mut().reset(earliest),
                None => self.wait_timer = Some(Box::pin(tokio::time::sleep_until(earliest))),
            },
        }
    }
}
