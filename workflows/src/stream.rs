//! The published events of a run: a log with sequence numbers, read by any number of streams.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, Waker};

use futures_core::Stream;

use crate::runtime::children::Forward;
use crate::runtime::shared::{HasShared, lock};
use crate::{AnyEvent, Event};

/// One published event with its per-run sequence number, and the path of the child run that
/// published it, if a child did.
///
/// ```
/// use std::sync::Arc;
/// use workflows::prelude::*;
///
/// let ev = StreamEvent { seq: 0, event: Arc::new(InputRequiredEvent::new("name? ")), child: None };
/// assert!(ev.is::<InputRequiredEvent>());
/// assert_eq!(ev.downcast_ref::<InputRequiredEvent>().unwrap().prefix, "name? ");
/// assert_eq!(ev.name(), "InputRequiredEvent");
/// ```
#[derive(Debug, Clone)]
pub struct StreamEvent {
    /// The event's position in the run's stream: from 0 (or from
    /// [`RunOptions::first_sequence`](crate::RunOptions::first_sequence), or from where a
    /// resumed run's snapshot left off), one more for each event. A reader that falls behind
    /// [`Handler::discard_events_before`](crate::Handler::discard_events_before) skips to the
    /// first event kept.
    pub seq: u64,
    /// The event.
    pub event: Arc<dyn AnyEvent>,
    /// For an event a child run published ([`Context::run_child`](crate::Context::run_child)):
    /// the child's path, its workflow's name and its number in the run (`Review/0`), and for a
    /// grandchild its child's after it (`Review/0/Approve/2`). `None` for the run's own events.
    pub child: Option<Arc<str>>,
}

impl StreamEvent {
    /// The event as `&E`, if it is one.
    pub fn downcast_ref<E: Event>(&self) -> Option<&E> {
        (*self.event).downcast_ref::<E>()
    }

    /// Whether the event is an `E`.
    pub fn is<E: Event>(&self) -> bool {
        (*self.event).is::<E>()
    }

    /// The event's name.
    pub fn name(&self) -> &'static str {
        self.event.name()
    }
}

#[derive(Default)]
struct LogInner {
    /// The sequence number of `events[0]` (non-zero for a run resumed from a snapshot).
    base: u64,
    /// The events, numbered from `base` (a long run's log holds many: kept small).
    events: Vec<Arc<dyn AnyEvent>>,
    /// The child path of each event a child run published, by sequence number, in order:
    /// rare, so kept apart.
    marks: Vec<(u64, Arc<str>)>,
    closed: bool,
    /// One waker slot per live reader, so that readers that come and go leave nothing behind.
    wakers: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl LogInner {
    /// The child path of event `seq`, if a child published it.
    fn mark(&self, seq: u64) -> Option<Arc<str>> {
        if self.marks.is_empty() {
            return None;
        }
        self.marks
            .binary_search_by_key(&seq, |(s, _)| *s)
            .ok()
            .map(|i| self.marks[i].1.clone())
    }
}

/// Wakers taken out of the log to be woken after its lock is released. One reader is the
/// common case, and costs no allocation.
#[derive(Default)]
struct Woken {
    first: Option<Waker>,
    rest: Vec<Waker>,
}

impl Woken {
    fn wake(self) {
        if let Some(w) = self.first {
            w.wake();
        }
        self.rest.into_iter().for_each(Waker::wake);
    }
}

fn take_wakers(slots: &mut [Option<Waker>]) -> Woken {
    let mut woken = Woken::default();
    for waker in slots.iter_mut().filter_map(Option::take) {
        if woken.first.is_none() {
            woken.first = Some(waker);
        } else {
            woken.rest.push(waker);
        }
    }
    woken
}

/// The run's published events. Never blocks the run: readers follow at their own pace.
///
/// A child run's log keeps nothing: it hands each event to its parent's log, marked with the
/// child's path, except the child's last event (its result reaches the step that awaits it).
#[derive(Default)]
pub(crate) struct StreamLog {
    inner: Mutex<LogInner>,
    forward: Option<Box<Forward>>,
}

impl StreamLog {
    /// A log whose first event will have sequence number `base`.
    pub(crate) fn starting_at(base: u64) -> Self {
        StreamLog {
            inner: Mutex::new(LogInner {
                base,
                ..LogInner::default()
            }),
            forward: None,
        }
    }

    /// The log of a child run, handing its events to its parent's.
    pub(crate) fn forwarding(forward: Forward) -> Self {
        StreamLog {
            inner: Mutex::default(),
            forward: Some(Box::new(forward)),
        }
    }

    /// The child path of the event at `address` (its data pointer), if it is in the log.
    pub(crate) fn child_of(&self, address: *const ()) -> Option<Arc<str>> {
        let inner = lock(&self.inner);
        let index = inner
            .events
            .iter()
            .rposition(|ev| std::ptr::eq(Arc::as_ptr(ev) as *const (), address))?;
        inner.mark(inner.base + index as u64)
    }

    /// The sequence number the next published event gets.
    pub(crate) fn next_seq(&self) -> u64 {
        let inner = lock(&self.inner);
        inner.base + inner.events.len() as u64
    }

    /// Appends `event` unless the stream is closed; wakes waiting readers. Its sequence
    /// number, if it was published (in the parent's stream, for a child run).
    pub(crate) fn publish(&self, event: Arc<dyn AnyEvent>) -> Option<u64> {
        self.publish_from(None, event)
    }

    /// Appends `event`, published by the descendant at `child` (or by the run itself).
    fn publish_from(&self, child: Option<Arc<str>>, event: Arc<dyn AnyEvent>) -> Option<u64> {
        if let Some(forward) = &self.forward {
            if lock(&self.inner).closed {
                return None;
            }
            let path = match child {
                None => forward.path.clone(),
                Some(below) => Arc::from(format!("{}/{below}", forward.path)),
            };
            return forward
                .parent
                .upgrade()
                .and_then(|parent| parent.shared().stream.publish_from(Some(path), event));
        }
        let (seq, wakers) = {
            let mut inner = lock(&self.inner);
            if inner.closed {
                return None;
            }
            let seq = inner.base + inner.events.len() as u64;
            // Many runs publish one or two events, then wait: start small.
            if inner.events.capacity() == 0 {
                inner.events.reserve_exact(1);
            }
            inner.events.push(event);
            if let Some(path) = child {
                inner.marks.push((seq, path));
            }
            (seq, take_wakers(&mut inner.wakers))
        };
        wakers.wake();
        Some(seq)
    }

    /// Appends the last event and closes the stream.
    pub(crate) fn publish_last(&self, event: Arc<dyn AnyEvent>) {
        if self.forward.is_none() {
            let _ = self.publish(event);
        }
        self.close();
    }

    pub(crate) fn close(&self) {
        let wakers = {
            let mut inner = lock(&self.inner);
            inner.closed = true;
            take_wakers(&mut inner.wakers)
        };
        wakers.wake();
    }

    /// Drops the events numbered below `seq`; readers still behind skip to the first kept.
    pub(crate) fn discard_before(&self, seq: u64) {
        let mut inner = lock(&self.inner);
        let n = (seq.saturating_sub(inner.base) as usize).min(inner.events.len());
        if n > 0 {
            inner.events.drain(..n);
            inner.base += n as u64;
            if inner.events.is_empty() {
                inner.events = Vec::new();
            }
            let base = inner.base;
            inner.marks.retain(|(seq, _)| *seq >= base);
        }
    }

    fn add_reader(&self) -> usize {
        let mut inner = lock(&self.inner);
        match inner.free.pop() {
            Some(id) => id,
            None => {
                // Most runs have one reader.
                inner.wakers.reserve_exact(1);
                inner.wakers.push(None);
                inner.wakers.len() - 1
            }
        }
    }

    fn remove_reader(&self, reader: usize) {
        let mut inner = lock(&self.inner);
        inner.wakers[reader] = None;
        inner.free.push(reader);
    }

    fn poll_at(&self, seq: u64, reader: usize, waker: &Waker) -> Poll<Option<StreamEvent>> {
        let mut inner = lock(&self.inner);
        let index = seq.saturating_sub(inner.base) as usize;
        if let Some(event) = inner.events.get(index) {
            let seq = inner.base + index as u64;
            return Poll::Ready(Some(StreamEvent {
                seq,
                event: event.clone(),
                child: inner.mark(seq),
            }));
        }
        if inner.closed {
            return Poll::Ready(None);
        }
        match &inner.wakers[reader] {
            Some(w) if w.will_wake(waker) => {}
            _ => inner.wakers[reader] = Some(waker.clone()),
        }
        Poll::Pending
    }
}

/// A reader of a run's published events, from a chosen sequence number to the run's end.
///
/// Get one from [`Handler::stream_events`](crate::Handler::stream_events) or
/// [`Handler::stream_events_from`](crate::Handler::stream_events_from); any number may follow
/// one run, each at its own pace. It ends after the run's last event (its stop event, or
/// [`WorkflowFailed`](crate::WorkflowFailed), [`WorkflowTimedOut`](crate::WorkflowTimedOut) or
/// [`WorkflowCancelled`](crate::WorkflowCancelled)).
///
/// ```
/// use futures_util::StreamExt;
/// use workflows::prelude::*;
///
/// struct Greeter;
///
/// #[workflow]
/// impl Greeter {
///     #[step]
///     async fn greet(&self, ctx: &Context, _ev: StartEvent) -> StopEvent<()> {
///         ctx.write_event_to_stream(InputRequiredEvent::new("hello"));
///         StopEvent::new(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let handler = Greeter.run(StartEvent::new());
/// let names: Vec<_> = handler.stream_events().map(|ev| (ev.seq, ev.name())).collect().await;
/// assert_eq!(names, [(0, "InputRequiredEvent"), (1, "StopEvent")]);
/// handler.await.unwrap();
/// # }
/// ```
pub struct EventStream {
    run: Arc<dyn HasShared>,
    next: u64,
    reader: usize,
}

impl EventStream {
    pub(crate) fn new(run: Arc<dyn HasShared>, from: u64) -> Self {
        let reader = run.shared().stream.add_reader();
        EventStream {
            run,
            next: from,
            reader,
        }
    }

    /// The sequence number of the next event this stream yields.
    pub fn next_seq(&self) -> u64 {
        self.next
    }
}

impl Stream for EventStream {
    type Item = StreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<StreamEvent>> {
        let polled = self
            .run
            .shared()
            .stream
            .poll_at(self.next, self.reader, cx.waker());
        if let Poll::Ready(Some(ev)) = &polled {
            self.next = ev.seq + 1;
        }
        polled
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.run.shared().stream.remove_reader(self.reader);
    }
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("run_id", &self.run.shared().run_id)
            .field("next", &self.next)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::routes::Routes;
    use crate::runtime::shared::RunShared;
    use futures_core::Stream;
    use std::task::Context as TaskContext;

    struct Bare(RunShared);

    impl HasShared for Bare {
        fn shared(&self) -> &RunShared {
            &self.0
        }

        fn final_snapshot(&self) -> Result<crate::Snapshot, crate::SnapshotError> {
            unreachable!("not used here")
        }
    }

    #[test]
    fn readers_that_come_and_go_leave_no_waker_behind() {
        let routes = Arc::new(Routes::new("W", &[], std::any::TypeId::of::<()>()));
        let run: Arc<dyn HasShared> = Arc::new(Bare(RunShared::new("r".into(), routes)));
        let mut cx = TaskContext::from_waker(Waker::noop());
        for _ in 0..1000 {
            let mut stream = EventStream::new(run.clone(), 0);
            assert!(Pin::new(&mut stream).poll_next(&mut cx).is_pending());
        }
        let inner = lock(&run.shared().stream.inner);
        assert_eq!(inner.wakers.len(), 1, "one slot, reused by each new reader");
        assert!(inner.wakers[0].is_none());
    }
}
