//! The published events of a run: a log with sequence numbers, read by any number of streams.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, Waker};

use futures_core::Stream;

use crate::runtime::shared::{HasCore, lock};
use crate::{AnyEvent, Event};

/// One published event with its per-run sequence number.
///
/// ```
/// use std::sync::Arc;
/// use workflows::prelude::*;
///
/// let ev = StreamEvent { seq: 0, event: Arc::new(InputRequiredEvent::new("name? ")) };
/// assert!(ev.is::<InputRequiredEvent>());
/// assert_eq!(ev.downcast_ref::<InputRequiredEvent>().unwrap().prefix, "name? ");
/// assert_eq!(ev.name(), "InputRequiredEvent");
/// ```
#[derive(Debug, Clone)]
pub struct StreamEvent {
    /// The event's position in the run's stream, from 0, without gaps.
    pub seq: u64,
    /// The event.
    pub event: Arc<dyn AnyEvent>,
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
    events: Vec<StreamEvent>,
    closed: bool,
    wakers: Vec<Waker>,
}

/// The run's published events. Never blocks the run: readers follow at their own pace.
#[derive(Default)]
pub(crate) struct StreamLog {
    inner: Mutex<LogInner>,
}

impl StreamLog {
    /// Appends `event` unless the stream is closed; wakes waiting readers.
    pub(crate) fn publish(&self, event: Arc<dyn AnyEvent>) {
        let wakers = {
            let mut inner = lock(&self.inner);
            if inner.closed {
                return;
            }
            let seq = inner.events.len() as u64;
            inner.events.push(StreamEvent { seq, event });
            std::mem::take(&mut inner.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Appends the last event and closes the stream.
    pub(crate) fn publish_last(&self, event: Arc<dyn AnyEvent>) {
        self.publish(event);
        self.close();
    }

    pub(crate) fn close(&self) {
        let wakers = {
            let mut inner = lock(&self.inner);
            inner.closed = true;
            std::mem::take(&mut inner.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    fn poll_at(&self, index: u64, waker: &Waker) -> Poll<Option<StreamEvent>> {
        let mut inner = lock(&self.inner);
        if let Some(ev) = inner.events.get(index as usize) {
            return Poll::Ready(Some(ev.clone()));
        }
        if inner.closed {
            return Poll::Ready(None);
        }
        if !inner.wakers.iter().any(|w| w.will_wake(waker)) {
            inner.wakers.push(waker.clone());
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
    run: Arc<dyn HasCore>,
    next: u64,
}

impl EventStream {
    pub(crate) fn new(run: Arc<dyn HasCore>, from: u64) -> Self {
        EventStream { run, next: from }
    }

    /// The sequence number of the next event this stream yields.
    pub fn next_seq(&self) -> u64 {
        self.next
    }
}

impl Stream for EventStream {
    type Item = StreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<StreamEvent>> {
        let polled = self.run.core().stream.poll_at(self.next, cx.waker());
        if let Poll::Ready(Some(_)) = &polled {
            self.next += 1;
        }
        polled
    }
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("run_id", &self.run.core().run_id)
            .field("next", &self.next)
            .finish()
    }
}
