//! Event-driven, step-based workflows that pause for a human and resume later.
//!
//! A workflow is an `impl` block marked `#[workflow]` whose `async fn` methods marked
//! `#[step]` each accept one event type (or one of several) and emit the next. The macro reads
//! the step signatures and generates a static routing table; the runtime runs each run on a
//! single control loop that owns its queues, so dispatching an event costs about as much as a
//! channel message.
//!
//! ```
//! use futures_util::StreamExt;
//! use workflows::prelude::*;
//!
//! struct NumberWorkflow;
//!
//! #[workflow]
//! impl NumberWorkflow {
//!     #[step]
//!     async fn ask(&self, _ev: StartEvent) -> InputRequiredEvent {
//!         InputRequiredEvent::new("Enter a number: ")
//!     }
//!
//!     #[step]
//!     async fn answer(&self, ev: HumanResponseEvent) -> StopEvent<String> {
//!         StopEvent::new(ev.response)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let handler = NumberWorkflow.run(StartEvent::new());
//! let mut events = handler.stream_events();
//! while let Some(ev) = events.next().await {
//!     if let Some(req) = ev.downcast_ref::<InputRequiredEvent>() {
//!         // This could read stdin, a websocket reply, a web form...
//!         handler.respond(req, HumanResponseEvent::new("7"))?;
//!     }
//! }
//! let answer: String = handler.await?;
//! assert_eq!(answer, "7");
//! # Ok(())
//! # }
//! ```
//!
//! See the README for the feature list and the examples directory for complete programs.

#![warn(missing_docs)]

mod builtin;
mod child;
mod context;
mod error;
mod event;
mod fields;
pub mod graph;
mod graph_check;
mod handler;
mod infer;
mod lifecycle;
mod raw_json;
pub mod registry;
mod retry;
mod run_id;
mod runtime;
mod schema;
pub mod snapshot;
mod step;
mod step_error;
mod store;
mod stream;
mod wait;
mod workflow;

pub use builtin::{HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent};
pub use child::{ChildError, ChildInfo, ChildRun};
pub use context::Context;
pub use error::{SendError, WorkflowError};
pub use event::{AnyEvent, Event, EventInfo, EventKind, InputRequired};
pub use fields::Fields;
pub use handler::{Handler, RunSender};
pub use infer::StartType;
pub use lifecycle::{
    StepFailed, StepState, StepStateChanged, WorkflowCancelled, WorkflowFailed, WorkflowIdle,
    WorkflowTimedOut,
};
pub use retry::{RetryInfo, RetryPolicy};
pub use snapshot::{
    BranchRecord, BufferName, BufferedEvent, ChildFailure, ChildRecord, ChildState, CollectBuffer,
    EffectKind, EffectRecord, FanOutRecord, InvocationRecord, JoinRecord, JoinedEvent, OpenRequest,
    QueuedEvent, RawJson, RequestRecord, ResumeError, RunStatus, SNAPSHOT_VERSION, Snapshot,
    SnapshotError, StoredEvent, StoredInput, UnpairedEvent, WaiterRecord,
};
pub use step::{BoxError, Emitted, Fires, OneEvent, StepInfo, StepInput, StepOutput, StopType};
pub use step_error::StepError;
pub use store::{Store, StoreError};
pub use stream::{EventStream, StreamEvent};
pub use wait::{Field, Requirement, WaitError, WaitFor};
pub use workflow::{Output, RunOptions, Runner, State, Workflow};

/// Turns an inherent `impl` block into a [`Workflow`].
///
/// Every method marked [`#[step]`](macro@step) becomes a step. From the step signatures the
/// macro generates the static step table ([`Workflow::STEPS`]), the dispatch code, and the
/// workflow's start and stop event types, which it infers from what the steps accept and
/// return. A broken graph does not compile, with an error on the step's own tokens that names
/// the step and the event: no step for a start event, none returning a stop event, two
/// different stop types, a returned or sent event no step accepts (input requests, responses
/// and the stop event excepted), an accepted event nothing returns or sends (start events,
/// events marked `response` or `external`, and `StepFailed` excepted), a step accepting the
/// stop event, a step that can never run, and a step whose events never lead to the stop
/// event or an input request (steps that emit nothing are sinks and may). A generic workflow is checked for each
/// instantiation that is compiled (`cargo build`, not `cargo check`).
///
/// A type alias names the same event as the type it stands for: a step taking
/// `type Proposal = Draft;` accepts `Draft`, routes and is checked exactly as if it said
/// `Draft`. The rules compare events by name, so two instantiations of one generic event type
/// count as one event here; the run-time routing still tells them apart.
///
/// Options:
/// - `state = T`: the typed state of each run (`T: Default + Serialize + Deserialize`); steps
///   take `ctx: &Context<T>`.
/// - `start = T`, `stop = T`: name the start or stop type instead of inferring it.
/// - `crate = path`: where generated code finds this crate, if it is renamed.
/// - `unchecked`: skip the compile-time graph rules, for a graph the rules cannot see (the
///   run-time checks remain: an event no step takes fails the run with
///   [`WorkflowError::Unroutable`]).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use workflows::prelude::*;
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Notes { seen: Vec<String> }
///
/// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
/// struct Question { text: String }
///
/// struct Agent { greeting: String }
///
/// #[workflow(state = Notes)]
/// impl Agent {
///     #[step]
///     async fn listen(&self, ctx: &Context<Notes>, ev: StartEvent) -> Question {
///         let text: String = ev.get("text").unwrap_or_default();
///         ctx.edit_state(|n| n.seen.push(text.clone()));
///         Question { text }
///     }
///
///     #[step]
///     async fn reply(&self, ctx: &Context<Notes>, q: Question) -> StopEvent<String> {
///         let seen = ctx.state(|n| n.seen.len());
///         StopEvent::new(format!("{} ({seen} seen) {}", self.greeting, q.text))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let agent = Agent { greeting: "Hello!".into() };
/// let reply = agent.run(StartEvent::new().with("text", "how are you?")).await.unwrap();
/// assert_eq!(reply, "Hello! (1 seen) how are you?");
/// # }
/// ```
/// The JSON Schema library event schemas come from when an event type derives
/// [`schemars::JsonSchema`]; see [`Event::schema`].
pub use schemars;
pub use workflows_macros::workflow;

/// Marks a method of a [`#[workflow]`](macro@workflow) impl block as a step.
///
/// A step is an `async fn` taking `&self`, optionally `ctx: &Context<State>`, and one event by
/// value: an [`Event`] type, or an enum of several with [`#[derive(OneOf)]`](derive@OneOf). It
/// returns nothing, an event, an `Option` or `Result` of those, or a `OneOf` enum. Mistakes in
/// the signature are compile errors on the offending token.
///
/// Options:
/// - `num_workers = N`: how many invocations of the step may run at once in one run (4).
/// - `retry = <expr>`: a [`RetryPolicy`] for failed invocations (none: fail at once).
/// - `name = "..."`: the step's name (the method's name).
/// - `sends(A, B)`: the event types the step sends through its context.
///
/// ```
/// use std::time::Duration;
/// use workflows::prelude::*;
///
/// struct Crawler;
///
/// #[workflow]
/// impl Crawler {
///     #[step(name = "fetch", num_workers = 8,
///            retry = RetryPolicy::attempts(3).fixed(Duration::from_millis(10)))]
///     async fn fetch_page(&self, ev: StartEvent) -> Result<StopEvent<usize>, std::io::Error> {
///         Ok(StopEvent::new(ev.get::<String>("url").unwrap_or_default().len()))
///     }
/// }
///
/// assert_eq!(Crawler::STEPS[0].name, "fetch");
/// assert_eq!(Crawler::STEPS[0].num_workers, 8);
/// ```
pub use workflows_macros::step;

/// Implements [`Event`](trait@Event) for a struct or an enum that also derives `Clone`,
/// `Debug`, `Serialize` and `Deserialize`, and registers it by name.
///
/// Options in `#[event(...)]`:
/// - `name = "..."`: the stable name (the type's identifier).
/// - one role: `start`, `stop`, `input_required`, `input_required(response = Answer)`,
///   `response` (sent in by the caller; `external` says the same of an event that answers
///   no request), `internal`.
/// - `crate = path`: where generated code finds this crate.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use workflows::prelude::*;
///
/// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
/// #[event(name = "billing.InvoiceCreated")]
/// struct InvoiceCreated { amount_cents: u64 }
///
/// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
/// #[event(stop)]
/// struct Report { lines: Vec<String> }
///
/// assert_eq!(InvoiceCreated::NAME, "billing.InvoiceCreated");
/// assert_eq!(Report::KIND, EventKind::Stop);
/// ```
pub use workflows_macros::Event;

/// Lets an enum whose variants each hold one event be a step's parameter (the step accepts
/// any of them) or return type (the step emits one of them). Each variant also gets a `From`
/// impl, so `ev.into()` builds the enum.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use workflows::prelude::*;
///
/// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
/// struct Tick { left: u32 }
///
/// #[derive(Debug, OneOf)]
/// enum Input { Start(StartEvent), Tick(Tick) }
///
/// #[derive(Debug, OneOf)]
/// enum Output { Tick(Tick), Done(StopEvent<&'static str>) }
///
/// struct Countdown;
///
/// #[workflow]
/// impl Countdown {
///     #[step]
///     async fn count(&self, ev: Input) -> Output {
///         let left = match ev {
///             Input::Start(_) => 3,
///             Input::Tick(t) => t.left,
///         };
///         if left == 0 { StopEvent::new("liftoff").into() } else { Tick { left: left - 1 }.into() }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(Countdown.run(StartEvent::new()).await.unwrap(), "liftoff");
/// # }
/// ```
pub use workflows_macros::OneOf;

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme {}

/// Everything a workflow author needs, in one import, including [`StreamExt`] for reading a
/// run's events (`events.next().await`) without depending on `futures-util` yourself.
///
/// [`StreamExt`]: futures_util::StreamExt
///
/// ```
/// use workflows::prelude::*;
///
/// struct Hello;
///
/// #[workflow]
/// impl Hello {
///     #[step]
///     async fn hello(&self, _ev: StartEvent) -> StopEvent<&'static str> {
///         StopEvent::new("hello")
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let handler = Hello.run(StartEvent::new());
/// let mut events = handler.stream_events();
/// while let Some(ev) = events.next().await {
///     println!("{}", ev.name());
/// }
/// assert_eq!(handler.await.unwrap(), "hello");
/// # }
/// ```
pub mod prelude {
    pub use crate::{
        AnyEvent, ChildError, Context, Event, EventInfo, EventKind, Handler, HumanResponseEvent,
        InputRequired, InputRequiredEvent, OneOf, RetryPolicy, RunOptions, Runner, StartEvent,
        StepFailed, StopEvent, StreamEvent, WaitError, WaitFor, Workflow, WorkflowError, step,
        workflow,
    };
    pub use futures_util::StreamExt;
}

/// Paths used by generated code. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::graph_check::{
        check_failure_step, check_inputs, check_outputs, check_set, check_take,
    };
    pub use crate::infer::{EventRole, MergeStart, MergeStop, NoStartEvent, NoStopEvent};
    pub use crate::registry::EventRegistration;
    pub use crate::schema::{FromFields, FromJsonSchema, SchemaProbe};
    pub use crate::step::{Fires, StepFuture};
    pub use inventory;
    pub use serde_json;
    pub use std;

    /// Boxes a step's future.
    pub fn box_step<F>(fut: F) -> StepFuture
    where
        F: std::future::Future<Output = Result<crate::Emitted, crate::BoxError>> + Send + 'static,
    {
        Box::pin(fut)
    }
}
