//! The caller's handle on a run: await it, stream it, send it events, cancel it.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use crate::runtime::shared::{HasShared, Msg, RunShared};
use crate::{
    AnyEvent, Event, EventStream, InputRequired, SendError, Snapshot, SnapshotError, WorkflowError,
};

/// A running workflow. Returned at once by `run()`; awaiting it gives the run's typed result
/// or a [`WorkflowError`].
///
/// ```
/// use futures_util::StreamExt;
/// use workflows::prelude::*;
///
/// struct NumberWorkflow;
///
/// #[workflow]
/// impl NumberWorkflow {
///     #[step]
///     async fn ask(&self, _ev: StartEvent) -> InputRequiredEvent {
///         InputRequiredEvent::new("Enter a number: ")
///     }
///
///     #[step]
///     async fn answer(&self, ev: HumanResponseEvent) -> StopEvent<String> {
///         StopEvent::new(ev.response)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let handler = NumberWorkflow.run(StartEvent::new());
/// let mut events = handler.stream_events();
/// while let Some(ev) = events.next().await {
///     if let Some(req) = ev.downcast_ref::<InputRequiredEvent>() {
///         handler.respond(req, HumanResponseEvent::new("42")).unwrap();
///     }
/// }
/// assert_eq!(handler.await.unwrap(), "42");
/// # }
/// ```
///
/// Dropping the handler (and every [`RunSender`]) of a run that is idle ends it: nothing could
/// ever answer it. Keep a [`RunSender`] to answer a run from elsewhere.
#[must_use = "a run is driven in the background; await its handler for the result"]
pub struct Handler<T> {
    run: Arc<dyn HasShared>,
    _result: PhantomData<fn() -> T>,
}

impl<T> Handler<T> {
    pub(crate) fn new(run: Arc<dyn HasShared>) -> Self {
        run.shared().acquire_external();
        Handler {
            run,
            _result: PhantomData,
        }
    }

    fn shared(&self) -> &RunShared {
        self.run.shared()
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.shared().run_id
    }

    /// Whether the run has ended (with a result, an error, a timeout or a cancel).
    pub fn is_done(&self) -> bool {
        self.shared().is_finished()
    }

    /// The run's published events from the first one.
    pub fn stream_events(&self) -> EventStream {
        EventStream::new(self.run.clone(), 0)
    }

    /// The run's published events from sequence number `seq` on (for a reader that
    /// reconnects after seeing `seq - 1`).
    pub fn stream_events_from(&self, seq: u64) -> EventStream {
        EventStream::new(self.run.clone(), seq)
    }

    /// Frees the published events numbered below `seq`, for a program that keeps them
    /// elsewhere (the HTTP server stores every event it reads): a long run then holds only
    /// what its readers have not read yet. A reader still behind `seq` skips to it.
    ///
    /// ```
    /// # use futures_util::StreamExt;
    /// # use workflows::prelude::*;
    /// # struct Chatty;
    /// # #[workflow]
    /// # impl Chatty {
    /// #     #[step]
    /// #     async fn talk(&self, ctx: &Context, _ev: StartEvent) -> StopEvent<()> {
    /// #         for i in 0..3 {
    /// #             ctx.write_event_to_stream(InputRequiredEvent::new(format!("line {i}")));
    /// #         }
    /// #         StopEvent::new(())
    /// #     }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let handler = Chatty.run(StartEvent::new());
    /// let all: Vec<u64> = handler.stream_events().map(|ev| ev.seq).collect().await;
    /// assert_eq!(all, [0, 1, 2, 3]);
    /// handler.discard_events_before(2);
    /// let kept: Vec<u64> = handler.stream_events().map(|ev| ev.seq).collect().await;
    /// assert_eq!(kept, [2, 3]);
    /// # }
    /// ```
    pub fn discard_events_before(&self, seq: u64) {
        self.shared().stream.discard_before(seq);
    }

    /// Sends `ev` into the run, to every step that accepts its type.
    pub fn send_event<E: Event>(&self, ev: E) -> Result<(), SendError> {
        self.shared().send(Box::new(ev), None)
    }

    /// Sends `ev` into the run, to the step named `step` only.
    pub fn send_event_to<E: Event>(&self, step: &str, ev: E) -> Result<(), SendError> {
        self.shared().send(Box::new(ev), Some(step))
    }

    /// Sends an event whose type is known only at run time, for instance one decoded by name
    /// with [`registry::decode`](crate::registry::decode) from a request body; to the step
    /// named `step` only when one is given.
    ///
    /// ```
    /// # use workflows::prelude::*;
    /// # struct Echo;
    /// # #[workflow]
    /// # impl Echo {
    /// #     #[step]
    /// #     async fn ask(&self, _ev: StartEvent) -> InputRequiredEvent { InputRequiredEvent::new("?") }
    /// #     #[step]
    /// #     async fn answer(&self, ev: HumanResponseEvent) -> StopEvent<String> { StopEvent::new(ev.response) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let handler = Echo.run(StartEvent::new());
    /// let answer = workflows::registry::decode("HumanResponseEvent", serde_json::json!({"response": "7"}))
    ///     .expect("a registered name")
    ///     .expect("valid data for the type");
    /// handler.send_dyn_event(answer, None).unwrap();
    /// assert_eq!(handler.await.unwrap(), "7");
    /// # }
    /// ```
    pub fn send_dyn_event(
        &self,
        ev: Box<dyn AnyEvent>,
        step: Option<&str>,
    ) -> Result<(), SendError> {
        self.shared().send(ev, step)
    }

    /// Whether the run would take `ev` now (for `step`, if named), without sending it: the
    /// check [`send_dyn_event`](Self::send_dyn_event) makes. A step takes the types it
    /// declares; a step waiting inside (`wait_for_event`) also takes the type it waits for,
    /// while it waits.
    ///
    /// ```
    /// use workflows::prelude::*;
    ///
    /// struct Ask;
    ///
    /// #[workflow]
    /// impl Ask {
    ///     #[step]
    ///     async fn ask(&self, _ev: StartEvent) -> InputRequiredEvent {
    ///         InputRequiredEvent::new("name? ")
    ///     }
    ///
    ///     #[step]
    ///     async fn greet(&self, ev: HumanResponseEvent) -> StopEvent<String> {
    ///         StopEvent::new(format!("hello {}", ev.response))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let handler = Ask.run(StartEvent::new());
    /// assert!(handler.can_take(&HumanResponseEvent::new("Ada"), None).is_ok());
    /// assert!(handler.can_take(&InputRequiredEvent::new("?"), None).is_err());
    /// assert!(handler.can_take(&HumanResponseEvent::new("Ada"), Some("ask")).is_err());
    /// # handler.cancel_run();
    /// # }
    /// ```
    pub fn can_take(&self, ev: &dyn AnyEvent, step: Option<&str>) -> Result<(), SendError> {
        self.shared().can_take(ev, step)
    }

    /// Answers the input request `request` with `response`, whose type the request names:
    /// a wrong answer type does not compile.
    ///
    /// Given the request as read from this handler's stream, the answer goes to the run that
    /// asked: to the child run that published it, if a child did (see
    /// [`Context::run_child`](crate::Context::run_child)). Otherwise it is sent as
    /// [`send_event`](Self::send_event) sends it.
    pub fn respond<R: InputRequired>(
        &self,
        request: &R,
        response: R::Response,
    ) -> Result<(), SendError> {
        let address = request as *const R as *const ();
        self.shared().send_answer(address, Box::new(response))
    }

    /// Ends the run: running steps are dropped, the stream ends with
    /// [`WorkflowCancelled`](crate::WorkflowCancelled) and awaiting gives
    /// [`WorkflowError::Cancelled`]. Cancelling a finished run does nothing.
    pub fn cancel_run(&self) {
        let _ = self.shared().push(Msg::Cancel);
    }

    /// Sends `ev` into the child run at `path` (as [`StreamEvent::child`](crate::StreamEvent::child)
    /// names it), which routes it as a run routes what is sent to it: for an answer that only
    /// the child that asked may take, when the request itself is not at hand (a request read
    /// from elsewhere, over HTTP).
    ///
    /// ```
    /// use workflows::prelude::*;
    ///
    /// struct Ask;
    ///
    /// #[workflow]
    /// impl Ask {
    ///     #[step]
    ///     async fn ask(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<String>, WaitError> {
    ///         let answer = ctx
    ///             .wait_for_event(WaitFor::<HumanResponseEvent>::new().prompt(InputRequiredEvent::new("? ")))
    ///             .await?;
    ///         Ok(StopEvent::new(answer.response))
    ///     }
    /// }
    ///
    /// struct Both;
    ///
    /// #[workflow]
    /// impl Both {
    ///     #[step(children(Ask))]
    ///     async fn both(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<String>, ChildError> {
    ///         let (a, b) = tokio::join!(ctx.run_child(Ask, StartEvent::new()), ctx.run_child(Ask, StartEvent::new()));
    ///         Ok(StopEvent::new(format!("{} {}", a?, b?)))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let handler = Both.run(StartEvent::new());
    /// let mut events = handler.stream_events();
    /// let mut asked = 0;
    /// while asked < 2 {
    ///     asked += usize::from(events.next().await.unwrap().is::<InputRequiredEvent>());
    /// }
    /// // Both wait for the same type, with no requirement: the path tells them apart.
    /// handler.send_event_to_child("Ask/1", HumanResponseEvent::new("second")).unwrap();
    /// handler.send_event_to_child("Ask/0", HumanResponseEvent::new("first")).unwrap();
    /// assert_eq!(handler.await.unwrap(), "first second");
    /// # }
    /// ```
    pub fn send_event_to_child<E: Event>(&self, path: &str, ev: E) -> Result<(), SendError> {
        self.shared().send_to_child(path, Box::new(ev))
    }

    /// [`send_event_to_child`](Self::send_event_to_child) for an event whose type is known only
    /// at run time.
    pub fn send_dyn_event_to_child(
        &self,
        path: &str,
        ev: Box<dyn AnyEvent>,
    ) -> Result<(), SendError> {
        self.shared().send_to_child(path, ev)
    }

    /// Cancels the child run at `path` (as [`StreamEvent::child`](crate::StreamEvent::child)
    /// names it, `Review/0`, or `Review/0/Approve/1` for a grandchild), not the run itself: the
    /// step that awaits the child gets a [`ChildError::Failed`](crate::ChildError::Failed)
    /// holding [`WorkflowError::Cancelled`] and decides what follows. Returns whether a child
    /// running in this process had that path (a child read back from a snapshot runs once
    /// its step has run again).
    pub fn cancel_child(&self, path: &str) -> bool {
        match self.shared().live_children().and_then(|c| c.find(path)) {
            Some(child) => child.shared().push(Msg::Cancel).is_ok(),
            None => false,
        }
    }

    /// The run's whole context as a [`Snapshot`], to store and resume later, possibly in
    /// another process. Works on a running run (the snapshot is taken between two steps of
    /// its control loop), on a cancelled or timed-out one (as it was at that moment, and
    /// resumable), and on a finished one (its final state; not resumable).
    pub async fn snapshot(&self) -> Result<Snapshot, SnapshotError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        if self.shared().push(Msg::Snapshot(reply)).is_ok()
            && let Ok(result) = answer.await
        {
            return result;
        }
        // The run ended before its loop took the snapshot.
        self.run.final_snapshot()
    }

    /// A cloneable handle that can send events into the run and cancel it, and keeps an idle
    /// run alive while it exists.
    pub fn sender(&self) -> RunSender {
        RunSender::new(self.run.clone())
    }
}

impl<T: 'static> Future for Handler<T> {
    type Output = Result<T, WorkflowError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match self.shared().poll_outcome(cx.waker()) {
            None => Poll::Pending,
            Some(Err(err)) => Poll::Ready(Err(err)),
            Some(Ok(result)) => Poll::Ready(match result.downcast::<T>() {
                Ok(value) => Ok(*value),
                Err(_) => unreachable!("the run's result has the workflow's output type"),
            }),
        }
    }
}

impl<T> Drop for Handler<T> {
    fn drop(&mut self) {
        self.shared().release_external();
    }
}

impl<T> std::fmt::Debug for Handler<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("run_id", &self.shared().run_id)
            .field("done", &self.is_done())
            .finish()
    }
}

/// Sends events into a run and cancels it, from anywhere; see [`Handler::sender`].
///
/// ```
/// # use workflows::prelude::*;
/// # struct Echo;
/// # #[workflow]
/// # impl Echo {
/// #     #[step]
/// #     async fn ask(&self, _ev: StartEvent) -> InputRequiredEvent { InputRequiredEvent::new("?") }
/// #     #[step]
/// #     async fn answer(&self, ev: HumanResponseEvent) -> StopEvent<String> { StopEvent::new(ev.response) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let handler = Echo.run(StartEvent::new());
/// let sender = handler.sender();
/// tokio::spawn(async move { sender.send_event(HumanResponseEvent::new("from a task")).unwrap() });
/// assert_eq!(handler.await.unwrap(), "from a task");
/// # }
/// ```
pub struct RunSender {
    run: Arc<dyn HasShared>,
}

impl RunSender {
    fn new(run: Arc<dyn HasShared>) -> Self {
        run.shared().acquire_external();
        RunSender { run }
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.run.shared().run_id
    }

    /// See [`Handler::send_event`].
    pub fn send_event<E: Event>(&self, ev: E) -> Result<(), SendError> {
        self.run.shared().send(Box::new(ev), None)
    }

    /// See [`Handler::send_event_to`].
    pub fn send_event_to<E: Event>(&self, step: &str, ev: E) -> Result<(), SendError> {
        self.run.shared().send(Box::new(ev), Some(step))
    }

    /// See [`Handler::send_dyn_event`].
    pub fn send_dyn_event(
        &self,
        ev: Box<dyn AnyEvent>,
        step: Option<&str>,
    ) -> Result<(), SendError> {
        self.run.shared().send(ev, step)
    }

    /// See [`Handler::cancel_run`].
    pub fn cancel_run(&self) {
        let _ = self.run.shared().push(Msg::Cancel);
    }
}

impl Clone for RunSender {
    fn clone(&self) -> Self {
        RunSender::new(self.run.clone())
    }
}

impl Drop for RunSender {
    fn drop(&mut self) {
        self.run.shared().release_external();
    }
}

impl std::fmt::Debug for RunSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunSender")
            .field("run_id", &self.run.shared().run_id)
            .finish()
    }
}
