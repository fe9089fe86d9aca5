//! The errors a run and its handler report.

use std::time::Duration;

use crate::registry::RegistryError;
use crate::step::BoxError;

/// Why a run did not produce its result. Awaiting a [`Handler`](crate::Handler) gives this.
///
/// ```
/// use workflows::prelude::*;
///
/// struct Broken;
///
/// #[workflow]
/// impl Broken {
///     #[step]
///     async fn only(&self, _ev: StartEvent) -> Result<StopEvent<()>, std::io::Error> {
///         Err(std::io::Error::other("disk full"))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// match Broken.run(StartEvent::new()).await {
///     Err(WorkflowError::StepFailed { step, attempts, source }) => {
///         assert_eq!(step, "only");
///         assert_eq!(attempts, 1);
///         assert_eq!(source.to_string(), "disk full");
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkflowError {
    /// A step returned an error and its retry policy gave up.
    #[error("step `{step}` failed after {attempts} attempt(s): {source}")]
    StepFailed {
        /// The step's name.
        step: String,
        /// How many times it ran.
        attempts: u32,
        /// The step's own error (downcast it to get its type back).
        source: BoxError,
    },
    /// A step panicked (on its last attempt); the run ended without crashing the process.
    #[error("step `{step}` panicked after {attempts} attempt(s): {message}")]
    StepPanicked {
        /// The step's name.
        step: String,
        /// How many times it ran.
        attempts: u32,
        /// The panic's message.
        message: String,
    },
    /// A step produced an event that no step accepts and that is neither a stop nor an
    /// input-required event.
    #[error(
        "step `{step}` emitted `{event}`, which no step of this workflow accepts; add a step that takes it, or emit another event"
    )]
    Unroutable {
        /// The emitting step.
        step: String,
        /// The event's name.
        event: String,
    },
    /// An event reached a join from outside every fan-out the join collects: only a join accepts
    /// it, and a join takes only what descends from the elements of a list returned by a step
    /// it is bound to (see [`Fires::PerFanOut`](crate::Fires::PerFanOut)).
    #[error(
        "{} `{event}` outside the fan-outs that join `{join}` collects from; a join takes only what descends from the elements of a list a fan-out step returned: return the events to join in a `Vec`, or let another step accept `{event}`",
        match step { Some(step) => format!("step `{step}` emitted"), None => "the run received".to_owned() }
    )]
    OutsideFanOut {
        /// The emitting step, if a step emitted it.
        step: Option<String>,
        /// The event's name.
        event: String,
        /// The join it reached.
        join: String,
    },
    /// User code that the runtime itself calls panicked: an event's `Clone` or `Serialize`
    /// implementation, or a retry predicate. The run ended; the process lives on.
    #[error(
        "the run ended because user code called by the runtime panicked (an event's Clone or Serialize, or a retry predicate): {message}"
    )]
    Panicked {
        /// The panic's message.
        message: String,
    },
    /// A step that ran again after a resume did not repeat the engine effects it had
    /// performed before the snapshot, in the same order: see the
    /// [snapshot guarantees](crate::snapshot#what-a-snapshot-guarantees).
    #[error(
        "step `{step}` did not repeat its effects after the run was resumed: its effect {position} was recorded as \"{recorded}\" but is now \"{found}\"; a step must send, write and wait in the same order when it runs again (wrap what varies in ctx.once)"
    )]
    NonDeterministic {
        /// The step's name.
        step: String,
        /// The effect's position in the attempt (from 0).
        position: usize,
        /// The effect the snapshot recorded there.
        recorded: String,
        /// The effect the step performed instead.
        found: String,
    },
    /// The run's timeout elapsed.
    #[error("the run timed out after {timeout:?}; steps still running: {}", list(.active_steps))]
    Timeout {
        /// The configured timeout.
        timeout: Duration,
        /// The steps that were running.
        active_steps: Vec<String>,
    },
    /// The run was cancelled through [`Handler::cancel_run`](crate::Handler::cancel_run).
    #[error("the run was cancelled")]
    Cancelled,
    /// The binary's event registry is invalid (two event types share a name).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// `run()` was called outside a Tokio runtime.
    #[error(
        "no Tokio runtime: call run() from within a Tokio runtime (for instance under #[tokio::main])"
    )]
    NoRuntime,
    /// The run's result was already taken by an earlier await.
    #[error("the run's result was already taken")]
    ResultTaken,
    /// An error a snapshot recorded (a child run's failure, read back after a resume) of a
    /// kind that keeps only its text.
    #[error("{message}")]
    Recorded {
        /// The error's text as it was recorded.
        message: String,
    },
}

fn list(steps: &[String]) -> String {
    if steps.is_empty() {
        "none".to_owned()
    } else {
        steps.join(", ")
    }
}

/// Why an event could not be sent into a run.
///
/// ```
/// use workflows::SendError;
///
/// let err = SendError::UnknownStep { step: "asker".into(), known: vec!["ask".into(), "answer".into()] };
/// assert_eq!(err.to_string(), "no step named `asker` in this workflow; its steps are: ask, answer");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The run has already ended.
    #[error(
        "the run has finished and takes no more events; start a new run, or resume it from a snapshot"
    )]
    RunFinished,
    /// No step of the workflow accepts the event's type.
    #[error("no step of this workflow accepts `{event}`; accepted events are: {}", .accepted.join(", "))]
    NoReceiver {
        /// The event's name.
        event: String,
        /// Every event name some step accepts.
        accepted: Vec<String>,
    },
    /// A step sent an event type it does not declare.
    #[error(
        "step `{step}` sends `{event}` without declaring it; add #[step(sends({event}))] to the step"
    )]
    Undeclared {
        /// The sending step.
        step: String,
        /// The event's name.
        event: String,
    },
    /// After a resume, the step sent something other than what it had sent before the
    /// snapshot at this position; the run fails with
    /// [`WorkflowError::NonDeterministic`].
    #[error(
        "step `{step}` did not repeat its effects after the run was resumed (effect {position}); the run fails"
    )]
    NonDeterministic {
        /// The sending step.
        step: String,
        /// The effect's position in the attempt (from 0).
        position: usize,
    },
    /// A send targeted a step the workflow does not have.
    #[error("no step named `{step}` in this workflow; its steps are: {}", .known.join(", "))]
    UnknownStep {
        /// The name given.
        step: String,
        /// The workflow's step names.
        known: Vec<String>,
    },
    /// From outside the run, an event only joins take: a join takes only what descends from
    /// the elements of a fan-out, and an event sent in descends from none.
    #[error(
        "only joins take `{event}` ({}), and a join takes only what descends from a fan-out's elements; send it from a step inside the fan-out, or let another step accept `{event}`",
        .joins.join(", ")
    )]
    OnlyJoins {
        /// The event's name.
        event: String,
        /// The joins that take it.
        joins: Vec<String>,
    },
    /// A send named a child run the run does not have (running or read back from a snapshot).
    #[error("no child run at `{path}` in this run; its children are: {}", .known.join(", "))]
    UnknownChild {
        /// The path given.
        path: String,
        /// The paths of its children.
        known: Vec<String>,
    },
    /// A send targeted a step that does not accept the event's type.
    #[error("step `{step}` does not accept `{event}`; it accepts: {}", .accepted.join(", "))]
    NotAccepted {
        /// The targeted step.
        step: String,
        /// The event's name.
        event: String,
        /// What the step accepts.
        accepted: Vec<String>,
    },
}

/// The message of a step's panic, as an error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub(crate) struct PanicError {
    pub(crate) message: String,
}

impl PanicError {
    pub(crate) fn from_payload(payload: &(dyn std::any::Any + Send)) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a panic with a non-string payload".to_owned()
        };
        PanicError { message }
    }
}
