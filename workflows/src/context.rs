//! What a step can do besides returning an event: send more, stream, collect, share state.

use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::child::{ChildError, ChildRun, Found};
use crate::runtime::children::{self, Link};
use crate::runtime::effects::Effect;
use crate::runtime::invocations::InvocationId;
use crate::runtime::lineage::Lineage;
use crate::runtime::memo::SharedMemo;
use crate::runtime::shared::{BufferKey, Buffered, HasShared, Msg, Run, WaitRequest, lock};
use crate::snapshot::EffectKind;
use crate::workflow::Output;
use crate::{
    AnyEvent, Event, EventInfo, Handler, RetryInfo, Runner, SendError, Store, WaitError, WaitFor,
    Workflow,
};

/// A step's handle on its run. Take `ctx: &Context` (or `&Context<MyState>` for a workflow
/// declared with `#[workflow(state = MyState)]`) before the event parameter.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use workflows::prelude::*;
///
/// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
/// struct Job { id: u32 }
/// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
/// struct Done { id: u32 }
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Tally { finished: u32 }
///
/// struct Batch;
///
/// #[workflow(state = Tally)]
/// impl Batch {
///     #[step(sends(Job))]
///     async fn split(&self, ctx: &Context<Tally>, _ev: StartEvent) {
///         for id in 0..3 {
///             ctx.send_event(Job { id }).unwrap();
///         }
///     }
///
///     #[step(num_workers = 3)]
///     async fn work(&self, ctx: &Context<Tally>, job: Job) -> Done {
///         ctx.edit_state(|s| s.finished += 1);
///         Done { id: job.id }
///     }
///
///     #[step]
///     async fn join(&self, ctx: &Context<Tally>, done: Done) -> Option<StopEvent<Vec<u32>>> {
///         let all = ctx.collect(done, 3)?;
///         assert_eq!(ctx.state(|s| s.finished), 3);
///         let mut ids: Vec<u32> = all.iter().map(|d| d.id).collect();
///         ids.sort();
///         Some(StopEvent::new(ids))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(Batch.run(StartEvent::new()).await.unwrap(), [0, 1, 2]);
/// # }
/// ```
pub struct Context<S = ()> {
    run: Arc<Run<S>>,
    step: usize,
    /// The invocation, in the control loop and by its number in the run.
    invocation: InvocationId,
    number: u64,
    lineage: Lineage,
    /// The attempt and its policy's limit; `retry_info` makes the rest from `last_failure`
    /// (kept small: the context moves into every step's future).
    attempt: u32,
    max_attempts: u32,
    last_failure: Option<crate::StepError>,
    /// Waits begun in this attempt, for implicit waiter ids.
    waits: AtomicU32,
    /// Collect calls made in this attempt, for their tags.
    collects: AtomicU32,
    /// `run_child` calls made in this attempt.
    child_calls: AtomicU32,
    /// Explicit waiter ids used in this attempt, in order.
    explicit_ids: Mutex<Vec<String>>,
    /// The position of this attempt's next engine effect in its effect log; changed only under
    /// the memo's lock.
    effects: AtomicUsize,
    memo: OnceLock<SharedMemo>,
}

/// Where an invocation runs: its step, its id in the loop, its number in the run.
pub(crate) struct Placement {
    pub(crate) step: usize,
    pub(crate) invocation: InvocationId,
    pub(crate) number: u64,
    /// The fan-out branches the invocation descends from: what it sends descends from them too.
    pub(crate) lineage: Lineage,
}

impl<S: Send + 'static> Context<S> {
    pub(crate) fn new(
        run: Arc<Run<S>>,
        at: Placement,
        attempt: (u32, u32),
        last_failure: Option<crate::StepError>,
        memo: Option<SharedMemo>,
    ) -> Self {
        Context {
            run,
            step: at.step,
            invocation: at.invocation,
            number: at.number,
            lineage: at.lineage,
            attempt: attempt.0,
            max_attempts: attempt.1,
            last_failure,
            waits: AtomicU32::new(0),
            collects: AtomicU32::new(0),
            child_calls: AtomicU32::new(0),
            explicit_ids: Mutex::new(Vec::new()),
            effects: AtomicUsize::new(0),
            memo: memo.map(OnceLock::from).unwrap_or_default(),
        }
    }

    /// The invocation's memo, created (and handed to the loop) on first use.
    fn memo(&self) -> &SharedMemo {
        self.memo.get_or_init(|| {
            let memo = SharedMemo::default();
            // If the run has ended the memo is moot; the step is about to be dropped.
            let _ = self.run.shared.push(Msg::AttachMemo {
                invocation: self.invocation,
                memo: memo.clone(),
            });
            memo
        })
    }

    /// Performs the attempt's next engine effect with `perform`, unless the attempt performed
    /// it before the snapshot it was resumed from: then returns `Ok(None)` without running
    /// `perform` (see the [snapshot guarantees](crate::snapshot#what-a-snapshot-guarantees)).
    /// A different effect at that position fails the run.
    fn effect<T>(
        &self,
        effect: Effect,
        perform: impl FnOnce() -> Result<T, SendError>,
    ) -> Result<Option<T>, SendError> {
        // The log, the position and the effect itself change together under the memo's lock;
        // the loop snapshots only between polls, so it never sees one without the other.
        let mut memo = lock(self.memo());
        let position = self.effects.load(Ordering::Relaxed);
        match memo.effects.performed(self.step_name(), position, &effect) {
            Ok(true) => {
                self.effects.store(position + 1, Ordering::Relaxed);
                Ok(None)
            }
            Ok(false) => {
                let out = perform()?;
                memo.effects.record(position, effect);
                self.effects.store(position + 1, Ordering::Relaxed);
                Ok(Some(out))
            }
            Err(err) => {
                drop(memo);
                let _ = self.run.shared.push(Msg::Fail(Box::new(err)));
                Err(SendError::NonDeterministic {
                    step: self.step_name().to_owned(),
                    position,
                })
            }
        }
    }

    /// Sends `ev` (to `target`, or to every step accepting it) as an engine effect.
    fn send(&self, ev: Box<dyn AnyEvent>, target: Option<&str>) -> Result<(), SendError> {
        let shared = &self.run.shared;
        shared.check_declared(self.step, &*ev)?;
        let target_name = target.and_then(|name| {
            let steps = shared.routes.steps();
            steps.iter().find(|s| s.name == name).map(|s| s.name)
        });
        let effect = Effect::new(EffectKind::Send, ev.name(), target_name);
        self.effect(effect, || {
            let target = shared.resolve_target(&*ev, target)?;
            shared.push(Msg::Event {
                ev,
                target,
                lineage: self.lineage.clone(),
                outside: false,
            })
        })
        .map(drop)
    }

    /// Suspends the step until an event of type `E` matching `wait` arrives, and returns it.
    ///
    /// The prompt, if any, is published on the stream once per waiter id. The event that
    /// answers the waiter is not also delivered to this step as a normal input; other steps
    /// accepting its type still get it. Nothing before the wait runs twice in this process:
    /// the step really suspends. After a restore from a snapshot the step runs again from its
    /// start with its original input, and its answered waits return at once; wrap effects
    /// that must not repeat in [`once`](Self::once).
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use workflows::prelude::*;
    /// use workflows::WaitFor;
    ///
    /// struct Ask;
    ///
    /// #[workflow]
    /// impl Ask {
    ///     #[step]
    ///     async fn ask(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<String>, WaitError> {
    ///         let answer = ctx
    ///             .wait_for_event(
    ///                 WaitFor::<HumanResponseEvent>::new()
    ///                     .prompt(InputRequiredEvent::new("Enter a number: "))
    ///                     .id("get_number"),
    ///             )
    ///             .await?;
    ///         Ok(StopEvent::new(answer.response))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let handler = Ask.run(StartEvent::new());
    /// let mut events = handler.stream_events();
    /// while let Some(ev) = events.next().await {
    ///     if ev.is::<InputRequiredEvent>() {
    ///         handler.send_event(HumanResponseEvent::new("7")).unwrap();
    ///     }
    /// }
    /// assert_eq!(handler.await.unwrap(), "7");
    /// # }
    /// ```
    pub async fn wait_for_event<E: Event>(&self, wait: WaitFor<E>) -> Result<E, WaitError> {
        let n = self.waits.fetch_add(1, Ordering::Relaxed);
        let (id, memo_key) = match wait.id {
            None => {
                let id = format!("{}#{}.{}", self.step_name(), self.number, n);
                (id.clone(), id)
            }
            // An attempt may wait under one id several times (a conversation loop): each
            // occurrence has its own place in the memo.
            Some(id) => {
                let mut used = lock(&self.explicit_ids);
                let occurrence = used.iter().filter(|u| **u == id).count();
                used.push(id.clone());
                let key = if occurrence == 0 {
                    id.clone()
                } else {
                    format!("{id}#{occurrence}")
                };
                (id, key)
            }
        };
        // Beginning a wait is an effect: it may publish a prompt, and it has a place in the
        // attempt's order, which a run resumed from a snapshot must keep.
        if self
            .effect(Effect::new(EffectKind::Wait, E::NAME, None), || Ok(()))
            .is_err()
        {
            return Err(WaitError::RunEnded { waiter_id: id });
        }
        {
            let memo = lock(self.memo());
            if let Some(ev) = memo.resolved.get(&memo_key)
                && let Some(ev) = ev.downcast_ref::<E>()
            {
                return Ok(ev.clone());
            }
            if let Some((_, after)) = memo.timed_out.iter().find(|(w, _)| *w == memo_key) {
                return Err(WaitError::Timeout {
                    waiter_id: id,
                    after: *after,
                });
            }
        }
        let (reply, answer) = oneshot::channel();
        let request = Box::new(WaitRequest {
            id: id.clone(),
            memo_key,
            invocation: self.invocation,
            event: EventInfo::of::<E>(),
            requirements: wait.requirements,
            prompt: wait.prompt,
            timeout: wait.timeout,
            reply,
        });
        if self.run.shared.push(Msg::Wait(request)).is_err() {
            return Err(WaitError::RunEnded { waiter_id: id });
        }
        match answer.await {
            Ok(Ok(ev)) => Ok(ev
                .downcast::<E>()
                .unwrap_or_else(|_| unreachable!("waiters match by type id"))),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(WaitError::RunEnded { waiter_id: id }),
        }
    }

    /// Runs `fut` once for this invocation and records its result under `key`: when the step
    /// runs again after a restore from a snapshot (or a retry), `once` returns the recorded
    /// result instead of running `fut` again. Use it for effects before a wait, such as
    /// sending an e-mail. Keys are per invocation; the result must serialize to JSON.
    ///
    /// Engine effects inside `fut` (sends, stream writes, waits) are skipped along with it
    /// when its result is recorded. Count on that only when nothing else in the step performs
    /// engine effects while `fut` runs (no other branch of a `join!` sending meanwhile).
    ///
    /// ```
    /// use workflows::prelude::*;
    ///
    /// struct Notify;
    ///
    /// #[workflow]
    /// impl Notify {
    ///     #[step]
    ///     async fn notify(&self, ctx: &Context, _ev: StartEvent) -> StopEvent<u32> {
    ///         let first = ctx.once("ticket", async { 41 + 1 }).await;
    ///         let again = ctx.once("ticket", async { 0 }).await; // recorded: not run again
    ///         StopEvent::new(first + again)
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// assert_eq!(Notify.run(StartEvent::new()).await.unwrap(), 84);
    /// # }
    /// ```
    pub async fn once<T, F>(&self, key: &str, fut: F) -> T
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = T>,
    {
        {
            let memo = lock(self.memo());
            if let Some(recorded) = memo.once.get(key)
                && let Ok(value) = T::deserialize(recorded)
            {
                // The body's engine effects are skipped with it.
                let skipped = memo.effects.once_effects(key) as usize;
                self.effects.fetch_add(skipped, Ordering::Relaxed);
                return value;
            }
        }
        let before = self.effects.load(Ordering::Relaxed);
        let value = fut.await;
        if let Ok(json) = serde_json::to_value(&value) {
            let mut memo = lock(self.memo());
            let performed = self.effects.load(Ordering::Relaxed) - before;
            memo.once.insert(key.to_owned(), json);
            memo.effects.once_done(key, performed as u32);
        }
        value
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.run.shared.run_id
    }

    /// The name of the step this context belongs to.
    pub fn step_name(&self) -> &'static str {
        self.run.shared.routes.steps()[self.step].name
    }

    /// Sends `ev` to every step that accepts its type (each gets its own copy). Sending the
    /// workflow's stop event ends the run.
    ///
    /// The step must declare the types it sends, with `#[step(sends(A, B))]` (or return that
    /// type), so that the workflow's graph is complete. Fails when the type is undeclared,
    /// when no step accepts it, or when the run has ended.
    pub fn send_event<E: Event>(&self, ev: E) -> Result<(), SendError> {
        self.send(Box::new(ev), None)
    }

    /// Sends `ev` to the step named `step` only.
    ///
    /// Fails when there is no such step, when it does not accept the type, or when the run has
    /// ended.
    pub fn send_event_to<E: Event>(&self, step: &str, ev: E) -> Result<(), SendError> {
        self.send(Box::new(ev), Some(step))
    }

    /// Publishes `ev` on the run's event stream for the caller (it is not routed to steps).
    ///
    /// After a resume from a snapshot, a write the step made before the snapshot is not made
    /// again.
    pub fn write_event_to_stream<E: Event>(&self, ev: E) {
        let effect = Effect::new(EffectKind::Stream, E::NAME, None);
        let _ = self.effect(effect, || {
            self.run.shared.stream.publish(Arc::new(ev));
            Ok(())
        });
    }

    /// Fan-in of one event type: buffers `ev` and, once `count` events of its type have arrived
    /// at this step, returns them in arrival order and empties the buffer. Until then returns
    /// `None`. `count == 0` returns an empty list at once.
    pub fn collect<E: Event>(&self, ev: E, count: usize) -> Option<Vec<E>> {
        if count == 0 {
            return Some(Vec::new());
        }
        // A buffer per type: everything in it is an `E`, so counting is enough.
        let tag = self.collect_tag();
        if let Some(batch) = self.collected_before(tag) {
            return Some(
                batch
                    .into_iter()
                    .map(|e| e.downcast::<E>().expect("recorded by this call"))
                    .collect(),
            );
        }
        let mut buffers = self.run.shared.collect();
        let key = (self.step, BufferKey::Type(std::any::TypeId::of::<E>()));
        let buffer = buffers.entry(key.clone()).or_default();
        add_once(buffer, tag, Box::new(ev));
        if buffer.len() < count {
            return None;
        }
        let batch: Vec<Box<dyn AnyEvent>> = buffer.drain(..count).map(|b| b.ev).collect();
        if buffer.is_empty() {
            buffers.remove(&key);
        }
        drop(buffers);
        self.record_collected(tag, &batch);
        Some(
            batch
                .into_iter()
                .map(|e| e.downcast::<E>().expect("buffer holds one type"))
                .collect(),
        )
    }

    /// Fan-in of several event types: buffers `ev` and, once events matching every entry of
    /// `expected` have arrived at this step, returns them in the order of `expected` (events of
    /// one type in arrival order) and removes them from the buffer. Until then returns `None`.
    /// An event whose type `expected` does not name returns `None` and is not kept.
    ///
    /// Unlike the Python library, an event beyond what is still missing is kept for the next
    /// collection instead of being dropped.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use workflows::prelude::*;
    /// # #[derive(Clone, Debug, Serialize, Deserialize, Event)] struct A;
    /// # #[derive(Clone, Debug, Serialize, Deserialize, Event)] struct B;
    /// # fn demo(ctx: &Context, ev: Box<dyn AnyEvent>) {
    /// let expected = [EventInfo::of::<A>(), EventInfo::of::<B>()];
    /// if let Some(events) = ctx.collect_events(ev, &expected) {
    ///     let a: &A = events[0].downcast_ref().unwrap();
    ///     let b: &B = events[1].downcast_ref().unwrap();
    /// #   let _ = (a, b);
    /// }
    /// # }
    /// ```
    pub fn collect_events(
        &self,
        ev: Box<dyn AnyEvent>,
        expected: &[EventInfo],
    ) -> Option<Vec<Box<dyn AnyEvent>>> {
        self.collect_into(ev, expected, "default")
    }

    /// [`collect_events`](Self::collect_events) with a buffer of its own, for a step that
    /// collects several independent groups.
    pub fn collect_events_in(
        &self,
        buffer_id: &str,
        ev: Box<dyn AnyEvent>,
        expected: &[EventInfo],
    ) -> Option<Vec<Box<dyn AnyEvent>>> {
        self.collect_into(ev, expected, buffer_id)
    }

    fn collect_into(
        &self,
        ev: Box<dyn AnyEvent>,
        expected: &[EventInfo],
        buffer_id: &str,
    ) -> Option<Vec<Box<dyn AnyEvent>>> {
        if expected.is_empty() {
            return Some(Vec::new());
        }
        let tag = self.collect_tag();
        if let Some(batch) = self.collected_before(tag) {
            return Some(batch);
        }
        let ty = ev.event_type_id();
        if !expected.iter().any(|info| info.type_id == ty) {
            // Not part of any collection: neither buffered nor kept, as in the Python library.
            return None;
        }
        let mut buffers = self.run.shared.collect();
        let key = (self.step, BufferKey::Named(buffer_id.to_owned()));
        let buffer = buffers.entry(key.clone()).or_default();
        add_once(buffer, tag, ev);
        let picked = pick(buffer, expected)?;
        // Take the picked events out, keeping the rest (and their order) for later.
        let mut slots: Vec<Option<Buffered>> = buffer.drain(..).map(Some).collect();
        let out: Vec<Box<dyn AnyEvent>> = picked
            .iter()
            .map(|&i| slots[i].take().expect("each index picked once").ev)
            .collect();
        buffer.extend(slots.into_iter().flatten());
        if buffer.is_empty() {
            buffers.remove(&key);
        }
        drop(buffers);
        self.record_collected(tag, &out);
        Some(out)
    }

    /// The batch an earlier run of this invocation got from collect call `tag`, if any: a
    /// retry, or a re-run after a restore, gets the same batch (the buffer gave it away).
    fn collected_before(&self, tag: (u64, u32)) -> Option<Vec<Box<dyn AnyEvent>>> {
        let memo = self.memo.get()?;
        let memo = lock(memo);
        memo.collected.get(&tag.1).cloned()
    }

    /// Remembers the batch collect call `tag` returned, for later runs of this invocation.
    fn record_collected(&self, tag: (u64, u32), batch: &[Box<dyn AnyEvent>]) {
        lock(self.memo()).collected.insert(tag.1, batch.to_vec());
    }

    /// The tag of this invocation's next collect call: the same on every run of the
    /// invocation (a retry, or a re-run after a restore), so that its event is buffered once.
    fn collect_tag(&self) -> (u64, u32) {
        (self.number, self.collects.fetch_add(1, Ordering::Relaxed))
    }

    /// Reads the typed state.
    ///
    /// # Panics
    ///
    /// When called inside [`edit_state`](Self::edit_state) or another `state` call (the state
    /// is borrowed), or after a step panicked in the middle of an edit.
    pub fn state<R>(&self, read: impl FnOnce(&S) -> R) -> R {
        read(&lock_state(&self.run.state))
    }

    /// Edits the typed state atomically: no other step sees it half-edited or edits it
    /// meanwhile. Keep the closure short; it cannot await. If the closure panics, the step
    /// fails and later state accesses fail too, rather than see a half-done edit.
    ///
    /// # Panics
    ///
    /// As [`state`](Self::state).
    pub fn edit_state<R>(&self, edit: impl FnOnce(&mut S) -> R) -> R {
        edit(&mut lock_state(&self.run.state))
    }

    /// The run's dynamic JSON store, addressed by dot paths.
    pub fn store(&self) -> &Store {
        &self.run.shared.store
    }

    /// This invocation's attempt number and its retry policy's limit.
    pub fn retry_info(&self) -> RetryInfo {
        RetryInfo {
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            last_error: self.last_failure.as_ref().map(ToString::to_string),
            last_failure: self.last_failure.clone(),
        }
    }
}

impl<S: crate::State> Context<S> {
    /// Runs workflow `workflow` as a child of this run, starting with `start`, and gives its
    /// result. The step must declare the child workflow: `#[step(children(Review))]`.
    ///
    /// The child is a run of its own, driven by the returned future: it moves while the step
    /// awaits it (several at once with `futures::join!`, or in the branches of a fan-out), and
    /// dropping the future cancels it. What it publishes appears in this run's stream,
    /// marked with its path ([`StreamEvent::child`](crate::StreamEvent::child)): its input
    /// requests reach this run's caller, and answers sent to this run's handler reach the
    /// child that waits for them ([`Handler::respond`](crate::Handler::respond) to a request
    /// read from the stream goes to the child that published it; `send_event` goes to this
    /// run if one of its waits matches the event, else to the first child with a wait the
    /// event meets (its type and requirements), else to this run if a step takes the type,
    /// else to the first child that takes it). This run's snapshots hold the child's; after a
    /// resume the step runs again, and its `run_child` call resumes the child where it was,
    /// or gives the result of a child that had ended without running it again.
    ///
    /// A runner's limit on concurrent runs applies to its child runs too: a workflow that runs
    /// itself as a child under a limit can wait for a slot its own parents hold. A child whose
    /// future is not being awaited does not move; while work of it waits, its parent does not
    /// count as idle (nor is it parked by the server).
    ///
    /// `workflow` is the child workflow's instance, or a [`Runner`](crate::Runner) of it
    /// (whose timeout and limit on concurrent runs apply to the child). A child's failure,
    /// timeout or cancellation is a [`ChildError`](crate::ChildError).
    ///
    /// ```
    /// use workflows::prelude::*;
    ///
    /// struct Approve;
    ///
    /// #[workflow]
    /// impl Approve {
    ///     #[step]
    ///     async fn ask(&self, ctx: &Context, ev: StartEvent) -> Result<StopEvent<bool>, WaitError> {
    ///         let item: String = ev.get("item").unwrap_or_default();
    ///         let answer = ctx
    ///             .wait_for_event(WaitFor::<HumanResponseEvent>::new()
    ///                 .prompt(InputRequiredEvent::new(format!("approve {item}? "))))
    ///             .await?;
    ///         Ok(StopEvent::new(answer.response == "yes"))
    ///     }
    /// }
    ///
    /// struct Purchase;
    ///
    /// #[workflow]
    /// impl Purchase {
    ///     #[step(children(Approve))]
    ///     async fn buy(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent<String>, ChildError> {
    ///         let approved = ctx.run_child(Approve, StartEvent::new().with("item", "a desk")).await?;
    ///         Ok(StopEvent::new(if approved { "bought" } else { "declined" }.to_owned()))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let handler = Purchase.run(StartEvent::new());
    /// let mut events = handler.stream_events();
    /// while let Some(ev) = events.next().await {
    ///     if let Some(request) = ev.downcast_ref::<InputRequiredEvent>() {
    ///         assert_eq!(ev.child.as_deref(), Some("Approve/0"));
    ///         handler.respond(request, HumanResponseEvent::new("yes")).unwrap();
    ///     }
    /// }
    /// assert_eq!(handler.await.unwrap(), "bought");
    /// # }
    /// ```
    pub fn run_child<W: Workflow>(
        &self,
        workflow: impl Into<Runner<W>>,
        start: W::Start,
    ) -> ChildRun<'_, W>
    where
        Output<W>: Serialize + DeserializeOwned,
    {
        let call = self.child_calls.fetch_add(1, Ordering::Relaxed);
        let step = &self.run.shared.routes.steps()[self.step];
        let declared = step
            .children
            .iter()
            .any(|c| c.type_id == std::any::TypeId::of::<W>());
        if !declared {
            return ChildRun::ready(Err(ChildError::Undeclared {
                step: step.name.to_owned(),
                workflow: W::NAME.to_owned(),
            }));
        }
        let effect = Effect::new(EffectKind::Child, W::NAME, None);
        if let Err(source) = self.effect(effect, || Ok(())) {
            return ChildRun::ready(Err(ChildError::NotStarted {
                workflow: W::NAME.to_owned(),
                source,
            }));
        }
        let memo = self.memo().clone();
        let found = lock(&memo).children.lookup(call, W::NAME);
        let runner = workflow.into();
        let parent: Arc<dyn HasShared> = self.run.clone();
        let (run, run_loop, path) = match found {
            Found::Ended(slot) => return ChildRun::ready(crate::child::recorded::<W>(slot)),
            Found::New => {
                let number = self.run.shared.next_child().fetch_add(1, Ordering::Relaxed);
                let path: Arc<str> = Arc::from(format!("{}/{number}", W::NAME));
                let (run, run_loop) = children::start(&runner, start, &parent, path.clone());
                (run, run_loop, path)
            }
            Found::Snapshot(snapshot, path, pending) => {
                match children::resume(&runner, *snapshot, &parent, path.clone()) {
                    Ok((run, run_loop)) => {
                        parent
                            .shared()
                            .children()
                            .set(path.clone(), Link::Live(run.clone()));
                        // What was sent to it while it waited for its step goes in now, in
                        // order, before its loop first runs.
                        for ev in pending.0.adopt() {
                            if let Err(err) = run.shared.send(ev, None) {
                                tracing::warn!(child = %path, error = %err, "an event sent to a resumed child before it ran is refused now");
                            }
                        }
                        (run, run_loop, path)
                    }
                    Err(source) => {
                        // Unlinks it, and sends what was kept for it into this run again.
                        drop(pending);
                        return ChildRun::ready(Err(ChildError::Resume {
                            workflow: W::NAME.to_owned(),
                            path: path.to_string(),
                            source,
                        }));
                    }
                }
            }
        };
        let handler = Handler::new(run.clone());
        let cell = Arc::new(Mutex::new(run_loop));
        lock(&memo)
            .children
            .live(call, W::NAME, path.clone(), cell.clone());
        parent
            .shared()
            .children()
            .set(path.clone(), Link::Live(run));
        ChildRun::running(cell, handler, memo, parent, call, path)
    }
}

/// Locks the typed state. Steps of a run are polled by its control loop one at a time, so the
/// lock is only ever held when a step re-enters it, which would deadlock: fail loudly instead.
fn lock_state<S>(state: &Mutex<S>) -> MutexGuard<'_, S> {
    match state.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::WouldBlock) => panic!(
            "the run's state is already borrowed: ctx.state or ctx.edit_state was called inside another ctx.state or ctx.edit_state closure"
        ),
        Err(TryLockError::Poisoned(_)) => {
            panic!("the run's state was left half-edited: a step panicked inside ctx.edit_state")
        }
    }
}

/// Buffers `ev` unless an earlier run of the same invocation already did.
fn add_once(buffer: &mut Vec<Buffered>, tag: (u64, u32), ev: Box<dyn AnyEvent>) {
    if !buffer.iter().any(|b| b.tag == tag) {
        buffer.push(Buffered { tag, ev });
    }
}

/// For each expected entry, the index of a buffered event of its type (earliest first), or
/// `None` if some entry has no match yet.
fn pick(buffer: &[Buffered], expected: &[EventInfo]) -> Option<Vec<usize>> {
    // Indexes of the buffered events of each expected type, consumed front to back.
    let mut by_type: Vec<(std::any::TypeId, std::collections::VecDeque<usize>)> = Vec::new();
    for info in expected {
        if !by_type.iter().any(|(ty, _)| *ty == info.type_id) {
            let indexes = buffer
                .iter()
                .enumerate()
                .filter(|(_, b)| b.ev.event_type_id() == info.type_id)
                .map(|(i, _)| i)
                .collect();
            by_type.push((info.type_id, indexes));
        }
    }
    expected
        .iter()
        .map(|info| {
            let (_, indexes) = by_type.iter_mut().find(|(ty, _)| *ty == info.type_id)?;
            indexes.pop_front()
        })
        .collect()
}

impl<S> std::fmt::Debug for Context<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("run_id", &self.run.shared.run_id)
            .field("step", &self.step)
            .field("attempt", &self.attempt)
            .field("max_attempts", &self.max_attempts)
            .field("last_failure", &self.last_failure)
            .finish()
    }
}
