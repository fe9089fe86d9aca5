//! The inbox: the one way into a run's control loop from outside it (its handler, its step
//! contexts, senders), and the wake-up protocol that goes with it.
//!
//! # Protocol
//!
//! Senders [`push`](Inbox::push) messages. The loop, when polled, calls
//! [`begin_poll`](Inbox::begin_poll) (it is now *polling*: a push does not wake it, as it will
//! look again before it sleeps), takes messages in with [`take`](Inbox::take) as it goes, and
//! before it returns `Pending` calls [`take_or_park`](Inbox::take_or_park), which either hands
//! it more messages or records its waker and marks it not polling, in one critical section.
//!
//! # Invariants
//!
//! - **No lost wake-up.** A message pushed is taken by the loop in the poll under way, or the
//!   push wakes the loop's last parked waker. (Checked with loom: `workflows/tests/inbox_loom.rs`.)
//! - **Order.** Messages are taken in the order they were pushed.
//! - **Nothing accepted after close.** Once [`close`](Inbox::close) returns, every push fails
//!   and hands its message back, and messages still queued are dropped.
//!
//! The file names its synchronisation primitives through `super::sync` so that the loom test
//! can compile it against loom's.

use std::collections::VecDeque;
use std::task::Waker;

use super::sync::atomic::{AtomicBool, Ordering};
use super::sync::{Mutex, MutexGuard};

struct State<M> {
    msgs: VecDeque<M>,
    /// The loop's waker, from its last park.
    waker: Option<Waker>,
    /// True while the loop is polling: it will take every message before it sleeps.
    polling: bool,
}

pub(crate) struct Inbox<M> {
    state: Mutex<State<M>>,
    /// Whether `msgs` may be non-empty: set under the lock by `push`, cleared under it by the
    /// takers. Lets `take` skip the lock when nothing was pushed.
    queued: AtomicBool,
    /// Set under the lock by `close`.
    closed: AtomicBool,
}

/// Locks `m`, ignoring poisoning: no critical section here can leave the state half-updated.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Moves every message of `from` to the back of `into`; swaps buffers when `into` is empty,
/// so that the run keeps one allocation for its messages, not two.
fn move_all<M>(from: &mut VecDeque<M>, into: &mut VecDeque<M>) {
    if into.is_empty() {
        std::mem::swap(from, into);
    } else {
        into.append(from);
    }
}

impl<M> Default for Inbox<M> {
    fn default() -> Self {
        Inbox {
            state: Mutex::new(State {
                msgs: VecDeque::new(),
                waker: None,
                polling: false,
            }),
            queued: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        }
    }
}

impl<M> Inbox<M> {
    /// Queues `msg` for the loop, waking it unless it is polling right now. A closed inbox
    /// hands `msg` back.
    #[inline]
    pub(crate) fn push(&self, msg: M) -> Result<(), M> {
        let waker = {
            let mut state = lock(&self.state);
            if self.closed.load(Ordering::Relaxed) {
                return Err(msg);
            }
            if state.msgs.capacity() == 0 {
                // Most runs get one message at a time from outside (their start event, an
                // answer): room for one, not the four a first push would make.
                state.msgs.reserve_exact(1);
            }
            state.msgs.push_back(msg);
            self.queued.store(true, Ordering::Release);
            if state.polling {
                None
            } else {
                state.waker.take()
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// The loop begins a poll: marks it polling and takes every queued message.
    #[inline]
    pub(crate) fn begin_poll(&self, into: &mut VecDeque<M>) {
        let mut state = lock(&self.state);
        state.polling = true;
        self.queued.store(false, Ordering::Relaxed);
        move_all(&mut state.msgs, into);
    }

    /// Takes queued messages; if there are none, parks the loop with `waker` (it is no longer
    /// polling) and returns false.
    #[inline]
    pub(crate) fn take_or_park(&self, into: &mut VecDeque<M>, waker: &Waker) -> bool {
        let mut state = lock(&self.state);
        if state.msgs.is_empty() {
            state.polling = false;
            match &state.waker {
                Some(w) if w.will_wake(waker) => {}
                _ => state.waker = Some(waker.clone()),
            }
            false
        } else {
            self.queued.store(false, Ordering::Relaxed);
            move_all(&mut state.msgs, into);
            true
        }
    }

    /// Takes queued messages without changing whether the loop counts as polling.
    #[inline]
    pub(crate) fn take(&self, into: &mut VecDeque<M>) {
        // Most steps send nothing: skip the lock when the inbox is known to be empty. A push
        // this misses is taken by `take_or_park` before the loop sleeps.
        if self.queued.load(Ordering::Acquire) {
            let mut state = lock(&self.state);
            self.queued.store(false, Ordering::Relaxed);
            move_all(&mut state.msgs, into);
        }
    }

    /// Frees the buffer if it is empty (the run is about to wait for the outside).
    pub(crate) fn compact(&self) {
        let mut state = lock(&self.state);
        if state.msgs.is_empty() {
            state.msgs = VecDeque::new();
        }
    }

    /// Wakes the loop if it is parked (something it watches changed outside the inbox).
    pub(crate) fn wake(&self) {
        let waker = lock(&self.state).waker.take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Refuses every later push and drops the messages still queued.
    pub(crate) fn close(&self) {
        let dropped = {
            let mut state = lock(&self.state);
            self.closed.store(true, Ordering::Release);
            std::mem::take(&mut state.msgs)
        };
        // Dropped outside the lock: a message may own a reply whose drop wakes someone.
        drop(dropped);
    }

    /// Whether no message is queued.
    pub(crate) fn is_empty(&self) -> bool {
        lock(&self.state).msgs.is_empty()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// How many messages the queue has room for.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        lock(&self.state).msgs.capacity()
    }
}
