//! The inbox's wake-up protocol (`src/runtime/inbox.rs`), checked in every interleaving of its
//! senders and the control loop with loom: no message is lost, none is left behind without a
//! wake-up, order holds per sender, and nothing is accepted after close.
//!
//! The inbox's file is compiled here against loom's primitives (it names them through
//! `super::sync`).

mod sync {
    pub(crate) use loom::sync::{Mutex, MutexGuard, atomic};
}

#[allow(dead_code)]
#[path = "../src/runtime/inbox.rs"]
mod inbox;

use std::collections::VecDeque;
use std::task::{Wake, Waker};

use inbox::Inbox;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};

/// A waker that counts its wake-ups.
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (std::sync::Arc<Counter>, Waker) {
    let counter = std::sync::Arc::new(Counter(AtomicUsize::new(0)));
    (counter.clone(), Waker::from(counter))
}

/// One poll of the control loop as `run_loop.rs` makes it: take everything at the start, take
/// again half-way (the fast path a completing step uses), and take or park before sleeping.
fn poll_once(inbox: &Inbox<u32>, waker: &Waker, taken: &mut Vec<u32>) {
    let mut buf = VecDeque::new();
    inbox.begin_poll(&mut buf);
    taken.extend(buf.drain(..));
    inbox.take(&mut buf);
    taken.extend(buf.drain(..));
    while inbox.take_or_park(&mut buf, waker) {
        taken.extend(buf.drain(..));
    }
}

/// Everything still queued, taken from outside the model's threads.
fn left_over(inbox: &Inbox<u32>) -> Vec<u32> {
    let mut buf = VecDeque::new();
    inbox.begin_poll(&mut buf);
    buf.into_iter().collect()
}

#[test]
fn a_message_is_taken_in_the_poll_under_way_or_wakes_the_parked_loop() {
    loom::model(|| {
        let inbox = Arc::new(Inbox::<u32>::default());
        let (counter, waker) = counting_waker();
        let senders: Vec<_> = [vec![1, 2], vec![10]]
            .into_iter()
            .map(|msgs| {
                let inbox = inbox.clone();
                loom::thread::spawn(move || {
                    for msg in msgs {
                        inbox.push(msg).expect("the inbox is open");
                    }
                })
            })
            .collect();
        let mut taken = Vec::new();
        poll_once(&inbox, &waker, &mut taken);
        for sender in senders {
            sender.join().unwrap();
        }
        let woken = counter.0.load(Ordering::SeqCst);
        let rest = left_over(&inbox);
        // Left behind after the loop parked: then the loop must have been woken to take it.
        assert!(
            rest.is_empty() || woken > 0,
            "{rest:?} left in the inbox of a parked loop that was never woken"
        );
        let mut all = taken.clone();
        all.extend(&rest);
        // Each sender's messages arrive once each, in the order sent.
        let of =
            |low: bool| -> Vec<u32> { all.iter().copied().filter(|m| (*m < 10) == low).collect() };
        assert_eq!(of(true), [1, 2]);
        assert_eq!(of(false), [10]);
    });
}

#[test]
fn a_second_poll_after_a_wake_up_takes_what_woke_it() {
    loom::model(|| {
        let inbox = Arc::new(Inbox::<u32>::default());
        let (counter, waker) = counting_waker();
        let sender = {
            let inbox = inbox.clone();
            loom::thread::spawn(move || inbox.push(7).expect("the inbox is open"))
        };
        let mut taken = Vec::new();
        poll_once(&inbox, &waker, &mut taken);
        if counter.0.load(Ordering::SeqCst) > 0 {
            poll_once(&inbox, &waker, &mut taken);
        }
        sender.join().unwrap();
        if taken.is_empty() {
            // Not taken yet: the push must come after the loop parked, so it woke the loop.
            assert!(counter.0.load(Ordering::SeqCst) > 0, "a lost wake-up");
            assert_eq!(left_over(&inbox), [7]);
        } else {
            assert_eq!(taken, [7]);
        }
    });
}

#[test]
fn nothing_is_accepted_after_close_and_nothing_is_left_queued() {
    loom::model(|| {
        let inbox = Arc::new(Inbox::<u32>::default());
        let sender = {
            let inbox = inbox.clone();
            loom::thread::spawn(move || inbox.push(1).is_ok())
        };
        let closer = {
            let inbox = inbox.clone();
            loom::thread::spawn(move || inbox.close())
        };
        let accepted = sender.join().unwrap();
        closer.join().unwrap();
        assert!(inbox.is_closed());
        assert_eq!(inbox.push(2), Err(2), "a push after close is refused");
        // An accepted message was dropped by close with the rest; none survives it.
        assert!(left_over(&inbox).is_empty(), "accepted: {accepted}");
    });
}
