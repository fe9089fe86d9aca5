//! Waiters: steps suspended in `wait_for_event`, their timer, and which events match them.
//!
//! # Invariants
//!
//! - The shared part's list of waited-for types (which lets senders outside the loop send an
//!   event that only a waiter accepts) mirrors `list` after every change: `Waiters` updates
//!   it itself, in [`Waiters::changed`].
//! - The timer is set to the earliest deadline among the waiters, or absent when none has one.
//! - A waiter's prompt is published once per waiter id, after the waiter is in place, so that
//!   whoever reads the prompt can answer it at once.

use std::any::TypeId;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context as TaskContext;
use std::time::Duration;

use std::future::Future;
use thin_vec::ThinVec;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use crate::runtime::capture::{millis_until, store_event};
use crate::runtime::invocations::InvocationId;
use crate::runtime::shared::{RunShared, WaitRequest, Waiting};
use crate::snapshot::{RequestRecord, SnapshotError, WaiterRecord};
use crate::wait::{Requirement, WaitError};
use crate::{AnyEvent, EventInfo, StepInfo};

pub(crate) type Reply = oneshot::Sender<Result<Box<dyn AnyEvent>, WaitError>>;

/// A step waiting for an event.
pub(crate) struct Waiter {
    pub(crate) id: String,
    /// Where its answer is recorded in the invocation's memo: the id, plus the occurrence
    /// when one attempt reuses an explicit id.
    pub(crate) memo_key: String,
    pub(crate) invocation: InvocationId,
    /// The waiting invocation's number, for snapshots.
    pub(crate) number: u64,
    pub(crate) step: usize,
    pub(crate) event: EventInfo,
    pub(crate) requirements: Vec<Requirement>,
    pub(crate) timeout: Option<Duration>,
    /// When the timeout elapses.
    pub(crate) deadline: Option<Instant>,
    /// Where the answer goes; `None` for a waiter restored from a snapshot whose step has not
    /// run again yet.
    pub(crate) reply: Option<Reply>,
    /// The prompt it published and where: an input request open while it waits.
    pub(crate) prompt: Option<Box<(u64, Arc<dyn AnyEvent>)>>,
}

impl Waiter {
    /// Whether someone still awaits the answer (a restored waiter counts: its step will).
    fn is_awaited(&self) -> bool {
        self.reply.as_ref().is_none_or(|r| !r.is_closed())
    }

    /// The answer to give when the timeout elapsed.
    pub(crate) fn timeout_error(&self) -> WaitError {
        WaitError::Timeout {
            waiter_id: self.id.clone(),
            after: self.timeout.unwrap_or_default(),
        }
    }
}

#[derive(Default)]
pub(crate) struct Waiters {
    /// Thin (a pointer in the run's task; no allocation while empty): most runs never wait.
    list: ThinVec<Waiter>,
    /// Fires at the earliest deadline.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Waiters {
    /// Registers the waiter of invocation `invocation` (number `number`, of `step`), or
    /// re-attaches a step that runs again to its restored waiter.
    pub(crate) fn add(
        &mut self,
        request: WaitRequest,
        number: u64,
        step: usize,
        shared: &RunShared,
    ) {
        let WaitRequest {
            id,
            memo_key,
            invocation,
            event,
            requirements,
            prompt,
            timeout,
            reply,
        } = request;
        if let Some(waiter) = self
            .list
            .iter_mut()
            .find(|w| w.memo_key == memo_key && w.invocation == invocation)
        {
            waiter.reply = Some(reply);
            return;
        }
        let prompt = prompt.filter(|_| !self.list.iter().any(|w| w.id == id));
        if self.list.capacity() == 0 {
            // A run usually waits for one thing at a time: room for one, not four.
            self.list.reserve_exact(1);
        }
        self.list.push(Waiter {
            id,
            memo_key,
            invocation,
            number,
            step,
            event,
            requirements,
            timeout,
            deadline: timeout.map(|t| Instant::now() + t),
            reply: Some(reply),
            prompt: None,
        });
        self.changed(shared);
        if let Some(prompt) = prompt {
            let prompt: Arc<dyn AnyEvent> = prompt.into();
            if let Some(seq) = shared.stream.publish(prompt.clone())
                && let Some(waiter) = self.list.last_mut()
            {
                waiter.prompt = Some(Box::new((seq, prompt)));
            }
        }
    }

    /// Takes out every waiter that `ev` answers (only `target`'s, when given).
    #[inline]
    pub(crate) fn take_matching(
        &mut self,
        ev: &dyn AnyEvent,
        target: Option<usize>,
        shared: &RunShared,
    ) -> Vec<Waiter> {
        if self.list.is_empty() {
            return Vec::new();
        }
        let ty = ev.event_type_id();
        let mut json = None;
        let mut taken = Vec::new();
        let mut index = 0;
        while index < self.list.len() {
            let w = &self.list[index];
            let eligible =
                w.event.type_id == ty && target.is_none_or(|t| t == w.step) && w.is_awaited();
            let matches = eligible && {
                w.requirements.is_empty() || {
                    let value = json.get_or_insert_with(|| ev.to_json().unwrap_or_default());
                    w.requirements.iter().all(|r| r.matches(value))
                }
            };
            if matches {
                taken.push(self.list.remove(index));
            } else {
                index += 1;
            }
        }
        if !taken.is_empty() {
            self.changed(shared);
        }
        taken
    }

    /// Takes out the waiters whose deadline has passed, once the timer fires.
    pub(crate) fn poll_expired(
        &mut self,
        cx: &mut TaskContext<'_>,
        shared: &RunShared,
    ) -> Vec<Waiter> {
        let Some(timer) = self.timer.as_mut() else {
            return Vec::new();
        };
        if timer.as_mut().poll(cx).is_pending() {
            return Vec::new();
        }
        let now = Instant::now();
        let mut expired = Vec::new();
        let mut index = 0;
        while index < self.list.len() {
            if self.list[index].deadline.is_some_and(|d| d <= now) {
                expired.push(self.list.remove(index));
            } else {
                index += 1;
            }
        }
        self.changed(shared);
        expired
    }

    /// Forgets the waiters of `invocation`: its attempt ended.
    #[inline]
    pub(crate) fn drop_of(&mut self, invocation: InvocationId, shared: &RunShared) {
        if self.list.is_empty() {
            return;
        }
        let before = self.list.len();
        self.list.retain(|w| w.invocation != invocation);
        if self.list.len() != before {
            self.changed(shared);
        }
    }

    /// Whether an awaited waiter of `invocation` exists (a wait whose future the step dropped,
    /// say under its own timeout, leaves the step busy elsewhere).
    #[inline]
    pub(crate) fn is_waiting(&self, invocation: InvocationId) -> bool {
        self.list
            .iter()
            .any(|w| w.invocation == invocation && w.is_awaited())
    }

    /// Whether some waiter, awaited or restored, belongs to `invocation`.
    #[inline]
    pub(crate) fn has_waiter_of(&self, invocation: InvocationId) -> bool {
        self.list.iter().any(|w| w.invocation == invocation)
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether a waiter waits for events of type `ty`.
    #[inline]
    pub(crate) fn waits_for(&self, ty: TypeId) -> bool {
        self.list.iter().any(|w| w.event.type_id == ty)
    }

    /// Drops every waiter, which ends their waits (the run ended).
    pub(crate) fn clear(&mut self, shared: &RunShared) {
        self.list.clear();
        self.changed(shared);
    }

    /// The waiters as a snapshot records them.
    pub(crate) fn capture(
        &self,
        steps: &[StepInfo],
        now: Instant,
    ) -> Result<Vec<WaiterRecord>, SnapshotError> {
        self.list
            .iter()
            .map(|w| {
                Ok(WaiterRecord {
                    id: w.id.clone(),
                    memo_key: (w.memo_key != w.id).then(|| w.memo_key.clone()),
                    invocation: w.number,
                    step: steps[w.step].name.to_owned(),
                    event: w.event.name.to_owned(),
                    requirements: w.requirements.clone(),
                    timeout_ms: w.timeout.map(|t| t.as_millis() as u64),
                    remaining_ms: w.deadline.map(|d| millis_until(d, now)),
                    prompt: match &w.prompt {
                        Some(prompt) => Some(RequestRecord {
                            seq: prompt.0,
                            event: store_event(&*prompt.1)?,
                        }),
                        None => None,
                    },
                })
            })
            .collect()
    }

    /// Puts back the waiters of a snapshot (without replies: their steps run again when
    /// answered).
    pub(crate) fn restore(&mut self, waiters: Vec<Waiter>, shared: &RunShared) {
        self.list = ThinVec::from(waiters);
        self.changed(shared);
    }

    /// Tells senders outside the loop which event types waiters accept, and sets the timer to
    /// the earliest deadline.
    fn changed(&mut self, shared: &RunShared) {
        shared.set_waiting(
            self.list
                .iter()
                .map(|w| Waiting {
                    step: w.step,
                    type_id: w.event.type_id,
                    requirements: w.requirements.clone(),
                })
                .collect(),
        );
        match self.list.iter().filter_map(|w| w.deadline).min() {
            None => self.timer = None,
            Some(earliest) => match self.timer.as_mut() {
                Some(timer) => timer.as_mut().reset(earliest),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(earliest))),
            },
        }
    }
}
