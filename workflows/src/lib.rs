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
mod context;
mod error;
mod event;
mod handler;
mod infer;
mod lifecycle;
pub mod registry;
mod retry;
mod runtime;
mod step;
mod store;
mod stream;
mod workflow;

pub use builtin::{HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent};
pub use context::Context;
pub use error::{SendError, WorkflowError};
pub use event::{AnyEvent, Event, EventInfo, EventKind, InputRequired};
pub use handler::{Handler, RunSender};
pub use infer::StartType;
pub use lifecycle::{
    StepFailed, StepState, StepStateChanged, WorkflowCancelled, WorkflowFailed, WorkflowIdle,
    WorkflowTimedOut,
};
pub use retry::{RetryInfo, RetryPolicy};
pub use step::{BoxError, StepInfo, StepInput, StepOutput, StopType};
pub use store::{Store, StoreError};
pub use stream::{EventStream, StreamEvent};
pub use workflow::{Output, RunOptions, Runner, State, Workflow};

pub use workflows_macros::{Event, OneOf, step, workflow};

/// Everything a workflow author needs, in one import.
///
/// ```
/// use workflows::prelude::*;
/// ```
pub mod prelude {
    pub use crate::{
        AnyEvent, Context, Event, EventInfo, EventKind, Handler, HumanResponseEvent, InputRequired,
        InputRequiredEvent, OneOf, RetryPolicy, RunOptions, Runner, StartEvent, StepFailed,
        StopEvent, StreamEvent, Workflow, WorkflowError, step, workflow,
    };
}

/// Paths used by generated code. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::infer::{EventRole, MergeStart, MergeStop, NoStartEvent, NoStopEvent};
    pub use crate::registry::EventRegistration;
    pub use crate::step::StepFuture;
    pub use inventory;
    pub use std;

    /// Boxes a step's future.
    pub fn box_step<F>(fut: F) -> StepFuture
    where
        F: std::future::Future<Output = Result<Option<Box<dyn crate::AnyEvent>>, crate::BoxError>>
            + Send
            + 'static,
    {
        Box::pin(fut)
    }
}
