//! The [`Workflow`] trait that `#[workflow]` implements, and the [`Runner`] that starts runs.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use crate::runtime::routes::Routes;
use crate::step::StepFuture;
use crate::{
    AnyEvent, Context, Handler, ResumeError, RetryPolicy, Snapshot, StartType, StepInfo, StopType,
};

/// A workflow's typed state: what `#[workflow(state = T)]` names. Every run starts from
/// `T::default()` (or the state given to [`Runner::run_with_state`]); snapshots store it as
/// JSON.
///
/// ```
/// #[derive(Default, serde::Serialize, serde::Deserialize)]
/// struct Cart { items: Vec<String> }
///
/// fn is_state<S: workflows::State>() {}
/// is_state::<Cart>();
/// ```
pub trait State: Default + Serialize + DeserializeOwned + Send + 'static {}

impl<T: Default + Serialize + DeserializeOwned + Send + 'static> State for T {}

/// The result type of workflow `W`: what awaiting its handler gives.
///
/// ```
/// use workflows::prelude::*;
/// use workflows::Output;
///
/// struct Sum;
///
/// #[workflow]
/// impl Sum {
///     #[step]
///     async fn sum(&self, ev: StartEvent) -> StopEvent<i64> {
///         StopEvent::new(ev.get::<Vec<i64>>("xs").unwrap_or_default().iter().sum())
///     }
/// }
///
/// let zero: Output<Sum> = 0_i64;
/// # let _ = zero;
/// ```
pub type Output<W> = <<W as Workflow>::Stop as StopType>::Output;

/// A set of steps wired by the events they accept and emit. Implemented by `#[workflow]` on an
/// `impl` block; not meant to be implemented by hand.
///
/// ```
/// use workflows::prelude::*;
///
/// struct Shout;
///
/// #[workflow]
/// impl Shout {
///     #[step]
///     async fn shout(&self, ev: StartEvent) -> StopEvent<String> {
///         StopEvent::new(ev.get::<String>("text").unwrap_or_default().to_uppercase())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let loud = Shout.run(StartEvent::new().with("text", "hi")).await.unwrap();
/// assert_eq!(loud, "HI");
/// assert_eq!(Shout::NAME, "Shout");
/// # }
/// ```
pub trait Workflow: Send + Sync + Sized + 'static {
    /// The typed state shared by the steps of a run (`()` when none is declared).
    type State: State;
    /// The event a run starts with.
    type Start: StartType;
    /// The event that ends a run.
    type Stop: StopType;
    /// The workflow's name (its type's identifier).
    const NAME: &'static str;
    /// The steps, in declaration order.
    const STEPS: &'static [StepInfo];

    /// Starts step `step` on `input`: one event, or a join's events. Generated; the runtime
    /// calls it.
    #[doc(hidden)]
    fn __invoke(
        self: &Arc<Self>,
        step: usize,
        ctx: Context<Self::State>,
        input: &[Box<dyn AnyEvent>],
    ) -> Option<StepFuture>;

    /// The retry policy of step `step`, if it has one. Generated.
    #[doc(hidden)]
    fn __retry_policy(step: usize) -> Option<RetryPolicy>;

    /// The workflow's graph: steps, events and the edges between them, drawable as Mermaid or
    /// Graphviz DOT (see [`graph`](crate::graph)).
    fn graph() -> crate::graph::Graph {
        crate::graph::Graph::of::<Self>()
    }

    /// Starts a run of this workflow with `start`; see [`Runner::run`].
    fn run(self, start: Self::Start) -> Handler<Output<Self>> {
        Runner::new(self).run(start)
    }

    /// A [`Runner`] for this workflow, to configure runs and start many of them.
    fn runner(self) -> Runner<Self> {
        Runner::new(self)
    }
}

/// Options for one run.
///
/// ```
/// use std::time::Duration;
/// use workflows::RunOptions;
///
/// let options = RunOptions::new().timeout(Duration::from_secs(30)).internal_events(true);
/// assert_eq!(options.get_timeout(), Some(Duration::from_secs(30)));
/// ```
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    timeout: Option<Duration>,
    internal_events: bool,
    run_id: Option<String>,
    first_sequence: u64,
    store: Option<serde_json::Map<String, serde_json::Value>>,
}

impl RunOptions {
    /// No timeout, no internal events, a random run id.
    pub fn new() -> Self {
        Self::default()
    }

    /// End the run with [`WorkflowError::Timeout`](crate::WorkflowError::Timeout) after
    /// `timeout`. There is no timeout by default: a run may wait for a human for days.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Also publish [`StepStateChanged`](crate::StepStateChanged) and
    /// [`WorkflowIdle`](crate::WorkflowIdle) events on the stream.
    pub fn internal_events(mut self, on: bool) -> Self {
        self.internal_events = on;
        self
    }

    /// Use `run_id` instead of a random one.
    pub fn run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }

    /// Number the run's published events from `seq` instead of 0, for a run that takes over
    /// from one whose events were kept elsewhere (a server restarting a stored run from its
    /// start event continues the stored numbering, so that no number is used twice).
    ///
    /// ```
    /// # use futures_util::StreamExt;
    /// # use workflows::prelude::*;
    /// # struct Hello;
    /// # #[workflow]
    /// # impl Hello {
    /// #     #[step]
    /// #     async fn go(&self, _ev: StartEvent) -> StopEvent<()> { StopEvent::new(()) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let handler = Hello.runner().run_with(StartEvent::new(), RunOptions::new().first_sequence(7));
    /// let first = handler.stream_events().next().await.unwrap();
    /// assert_eq!(first.seq, 7);
    /// # }
    /// ```
    pub fn first_sequence(mut self, seq: u64) -> Self {
        self.first_sequence = seq;
        self
    }

    pub(crate) fn get_first_sequence(&self) -> u64 {
        self.first_sequence
    }

    /// Start the run's dynamic [`Store`](crate::Store) with `store` instead of empty, for
    /// instance to continue from a previous run's (see [`Snapshot::store`](crate::Snapshot)).
    ///
    /// ```
    /// # use workflows::prelude::*;
    /// # struct Counter;
    /// # #[workflow]
    /// # impl Counter {
    /// #     #[step]
    /// #     async fn bump(&self, ctx: &Context, _ev: StartEvent) -> StopEvent<u64> {
    /// #         let n: u64 = ctx.store().get_or("count", 0).unwrap() + 1;
    /// #         ctx.store().set("count", n).unwrap();
    /// #         StopEvent::new(n)
    /// #     }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut earlier = serde_json::Map::new();
    /// earlier.insert("count".into(), 41.into());
    /// let options = RunOptions::new().store(earlier);
    /// assert_eq!(Counter.runner().run_with(StartEvent::new(), options).await.unwrap(), 42);
    /// # }
    /// ```
    pub fn store(mut self, store: serde_json::Map<String, serde_json::Value>) -> Self {
        self.store = Some(store);
        self
    }

    pub(crate) fn take_store(&mut self) -> serde_json::Map<String, serde_json::Value> {
        self.store.take().unwrap_or_default()
    }

    /// The configured timeout.
    pub fn get_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    pub(crate) fn wants_internal_events(&self) -> bool {
        self.internal_events
    }

    pub(crate) fn take_run_id(&mut self) -> String {
        self.run_id.take().unwrap_or_else(crate::run_id::new_run_id)
    }
}

pub(crate) struct RunnerInner<W> {
    pub(crate) workflow: Arc<W>,
    pub(crate) routes: Arc<Routes>,
    pub(crate) limit: Option<Arc<Semaphore>>,
    pub(crate) defaults: RunOptions,
    /// Each step's retry policy, resolved once.
    pub(crate) retry: Arc<[Option<crate::RetryPolicy>]>,
}

/// Starts runs of one workflow instance, which all runs share (clients and configuration
/// live in the workflow struct). Cheap to clone.
///
/// ```
/// use std::time::Duration;
/// use workflows::prelude::*;
///
/// struct Double;
///
/// #[workflow]
/// impl Double {
///     #[step]
///     async fn double(&self, ev: StartEvent) -> StopEvent<i64> {
///         StopEvent::new(2 * ev.get::<i64>("x").unwrap_or(0))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let runner = Double.runner().max_concurrent_runs(8).timeout(Duration::from_secs(5));
/// let a = runner.run(StartEvent::new().with("x", 2));
/// let b = runner.run(StartEvent::new().with("x", 5));
/// assert_eq!((a.await.unwrap(), b.await.unwrap()), (4, 10));
/// # }
/// ```
pub struct Runner<W> {
    pub(crate) inner: Arc<RunnerInner<W>>,
}

impl<W> Clone for Runner<W> {
    fn clone(&self) -> Self {
        Runner {
            inner: self.inner.clone(),
        }
    }
}

/// A workflow instance as a runner with default settings, so that
/// [`Context::run_child`](crate::Context::run_child) takes either.
impl<W: Workflow> From<W> for Runner<W> {
    fn from(workflow: W) -> Self {
        Runner::new(workflow)
    }
}

impl<W: Workflow> Runner<W> {
    /// A runner for `workflow` with default settings.
    pub fn new(workflow: W) -> Self {
        Self::from_arc(Arc::new(workflow))
    }

    /// A runner for a workflow instance that is already shared.
    pub fn from_arc(workflow: Arc<W>) -> Self {
        Runner {
            inner: Arc::new(RunnerInner {
                workflow,
                routes: Arc::new(Routes::new(
                    W::NAME,
                    W::STEPS,
                    std::any::TypeId::of::<W::Stop>(),
                )),
                limit: None,
                defaults: RunOptions::default(),
                retry: (0..W::STEPS.len()).map(W::__retry_policy).collect(),
            }),
        }
    }

    fn with_inner(self, f: impl FnOnce(&mut RunnerInner<W>)) -> Self {
        let mut inner = RunnerInner {
            workflow: self.inner.workflow.clone(),
            routes: self.inner.routes.clone(),
            limit: self.inner.limit.clone(),
            defaults: self.inner.defaults.clone(),
            retry: self.inner.retry.clone(),
        };
        f(&mut inner);
        Runner {
            inner: Arc::new(inner),
        }
    }

    /// At most `n` runs of this runner execute at once; later ones wait for a slot (their
    /// timeout starts when they get it).
    pub fn max_concurrent_runs(self, n: usize) -> Self {
        self.with_inner(|inner| inner.limit = Some(Arc::new(Semaphore::new(n.max(1)))))
    }

    /// A timeout for every run started by this runner (none by default).
    pub fn timeout(self, timeout: Duration) -> Self {
        self.with_inner(|inner| inner.defaults.timeout = Some(timeout))
    }

    /// The workflow instance.
    pub fn workflow(&self) -> &Arc<W> {
        &self.inner.workflow
    }

    /// The hash of the workflow's step table that its snapshots carry: a snapshot resumes
    /// only into a workflow with the same fingerprint.
    pub fn fingerprint(&self) -> &str {
        self.inner.routes.fingerprint()
    }

    /// Starts a run with `start` and returns its handler at once.
    ///
    /// Must be called within a Tokio runtime; otherwise the handler resolves to
    /// [`WorkflowError::NoRuntime`](crate::WorkflowError::NoRuntime).
    pub fn run(&self, start: W::Start) -> Handler<Output<W>> {
        self.run_with(start, self.inner.defaults.clone())
    }

    /// Starts a run with `start` and `options`.
    pub fn run_with(&self, start: W::Start, options: RunOptions) -> Handler<Output<W>> {
        crate::runtime::spawn_run(self, Box::new(start), W::State::default(), options)
    }

    /// Resumes the run `snapshot` describes: invocations that were running start again from
    /// their beginning (at least once), waits stay armed, retry back-offs finish their wait,
    /// and the event stream continues from the snapshot's sequence number. Send the awaited
    /// answer through the returned handler.
    ///
    /// Prompts published before the snapshot are not published again: the snapshot's
    /// `waiters` say what the run waits for, and an answer can be sent right away.
    ///
    /// Fails, changing nothing, when the snapshot is of another workflow or of another
    /// version of this one, of a run that ended, or holds an event this binary does not
    /// register. See [`Snapshot`](crate::Snapshot) for an example.
    pub fn resume(&self, snapshot: Snapshot) -> Result<Handler<Output<W>>, ResumeError> {
        self.resume_with(snapshot, self.inner.defaults.clone())
    }

    /// [`resume`](Self::resume) with `options` (a timeout for the resumed run, internal
    /// events). The run keeps the snapshot's run id.
    pub fn resume_with(
        &self,
        snapshot: Snapshot,
        options: RunOptions,
    ) -> Result<Handler<Output<W>>, ResumeError> {
        crate::runtime::resume(self, snapshot, options)
    }

    /// The options each run of this runner starts with (its timeout, for one).
    ///
    /// ```
    /// use std::time::Duration;
    /// # use workflows::prelude::*;
    /// # struct Quick;
    /// # #[workflow]
    /// # impl Quick {
    /// #     #[step]
    /// #     async fn go(&self, _ev: StartEvent) -> StopEvent<()> { StopEvent::new(()) }
    /// # }
    /// let runner = Quick.runner().timeout(Duration::from_secs(5));
    /// assert_eq!(runner.options().get_timeout(), Some(Duration::from_secs(5)));
    /// ```
    pub fn options(&self) -> RunOptions {
        self.inner.defaults.clone()
    }

    /// Starts a run with `start`, an initial typed `state` and `options`.
    pub fn run_with_state(
        &self,
        start: W::Start,
        state: W::State,
        options: RunOptions,
    ) -> Handler<Output<W>> {
        crate::runtime::spawn_run(self, Box::new(start), state, options)
    }
}
