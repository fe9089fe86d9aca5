//! Events the runtime publishes about a run: how it ended, step state changes, failures.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Sent to a step that accepts it when another step has failed for good (its retries are
/// used up). Such a step is the workflow's failure step.
///
/// The handler recovers by returning an event (for instance a [`StopEvent`](crate::StopEvent)
/// with a fallback result, or an event that continues the run) or a list of events. If it
/// returns nothing (events it only sends through its context do not count), the run fails
/// with the original step's error. A failure step covers the steps it names in
/// `#[step(catch(..))]`, or, naming none, every step no other failure step names, and recovers
/// at most `max_recoveries` times (1 by default) along one lineage. Side effects of the failed attempts are not rolled
/// back.
///
/// ```
/// use workflows::prelude::*;
///
/// struct Fetch;
///
/// #[workflow]
/// impl Fetch {
///     #[step(retry = RetryPolicy::attempts(2))]
///     async fn fetch(&self, _ev: StartEvent) -> Result<StopEvent<String>, std::io::Error> {
///         Err(std::io::Error::other("network down"))
///     }
///
///     #[step]
///     async fn fallback(&self, failed: StepFailed) -> StopEvent<String> {
///         StopEvent::new(format!("cached (after {} attempts of {})", failed.attempts, failed.step))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let result = Fetch.run(StartEvent::new()).await.unwrap();
/// assert_eq!(result, "cached (after 2 attempts of fetch)");
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, crate::Event)]
#[event(internal, crate = crate)]
pub struct StepFailed {
    /// The step that failed.
    pub step: String,
    /// How many times it ran.
    pub attempts: u32,
    /// Seconds from its first attempt's start to its last attempt's end (for an invocation
    /// resumed from a snapshot, from its resume, unless its retry policy stops on time).
    #[serde(default)]
    pub elapsed_seconds: f64,
    /// The last error, as text (`panic: ...` for a panic).
    pub error: String,
    /// Whether the step panicked rather than returned an error.
    #[serde(default)]
    pub panicked: bool,
    /// The name of the event the step was handling.
    pub input_event: String,
    /// That event, as JSON.
    pub input: Value,
    /// The step's error itself: [`error_as`](Self::error_as) gives it back as the step's own
    /// error type. Not serialized: `None` once the failure has been through a snapshot or the
    /// wire.
    #[serde(skip)]
    pub source: Option<crate::StepError>,
}

impl StepFailed {
    /// The step's error as type `E`, if the step returned one of that type (and the failure
    /// has not been through a snapshot, which keeps only its text).
    ///
    /// ```
    /// use workflows::prelude::*;
    ///
    /// #[derive(Debug)]
    /// struct RateLimited { retry_after_s: u64 }
    ///
    /// impl std::fmt::Display for RateLimited {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    ///         write!(f, "rate limited; retry after {} s", self.retry_after_s)
    ///     }
    /// }
    ///
    /// impl std::error::Error for RateLimited {}
    ///
    /// struct Call;
    ///
    /// #[workflow]
    /// impl Call {
    ///     #[step]
    ///     async fn call(&self, _ev: StartEvent) -> Result<StopEvent<u64>, RateLimited> {
    ///         Err(RateLimited { retry_after_s: 30 })
    ///     }
    ///
    ///     #[step]
    ///     async fn wait_hint(&self, failed: StepFailed) -> Option<StopEvent<u64>> {
    ///         let limited = failed.error_as::<RateLimited>()?;
    ///         Some(StopEvent::new(limited.retry_after_s))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// assert_eq!(Call.run(StartEvent::new()).await.unwrap(), 30);
    /// # }
    /// ```
    pub fn error_as<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.source.as_ref()?.downcast_ref::<E>()
    }
}

/// The last stream event of a run that failed.
///
/// When a step's failure ended the run, `error` is the step's own error message (or its
/// panic's), `error_type` the Rust type of that error, as the step's signature names it
/// (`panic` for a panic), and `attempts` and `elapsed_seconds` how hard it tried; for other
/// failures `error` is the whole [`WorkflowError`](crate::WorkflowError) message and the rest
/// is empty.
///
/// ```
/// use workflows::WorkflowFailed;
///
/// let ev = WorkflowFailed {
///     step: Some("fetch".into()),
///     error: "network down".into(),
///     error_type: Some("std::io::error::Error".into()),
///     attempts: Some(3),
///     elapsed_seconds: Some(1.5),
/// };
/// assert_eq!(ev.step.as_deref(), Some("fetch"));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, crate::Event)]
#[event(internal, crate = crate)]
pub struct WorkflowFailed {
    /// The step whose failure ended the run, when a step did.
    pub step: Option<String>,
    /// What went wrong.
    pub error: String,
    /// The Rust type of the step's error (`panic` when it panicked), when a step failed.
    #[serde(default)]
    pub error_type: Option<String>,
    /// How many attempts the failed step made.
    #[serde(default)]
    pub attempts: Option<u32>,
    /// Seconds from the failed step's first attempt to the end of its last one.
    #[serde(default)]
    pub elapsed_seconds: Option<f64>,
}

/// The last stream event of a run that was cancelled.
///
/// ```
/// let ev = workflows::WorkflowCancelled {};
/// assert_eq!(format!("{ev:?}"), "WorkflowCancelled");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, crate::Event)]
#[event(internal, crate = crate)]
pub struct WorkflowCancelled {}

/// The last stream event of a run that ran out of time.
///
/// ```
/// let ev = workflows::WorkflowTimedOut { timeout_ms: 50, active_steps: vec!["slow".into()] };
/// assert_eq!(ev.active_steps, ["slow"]);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, crate::Event)]
#[event(internal, crate = crate)]
pub struct WorkflowTimedOut {
    /// The run's timeout, in milliseconds.
    pub timeout_ms: u64,
    /// The steps that were running when the time ran out.
    pub active_steps: Vec<String>,
}

/// Whether a step invocation started or finished.
///
/// ```
/// use workflows::StepState;
/// assert_eq!(serde_json::to_string(&StepState::NotRunning).unwrap(), "\"not_running\"");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// The invocation began.
    Running,
    /// The invocation returned (successfully or not).
    NotRunning,
}

/// Published when a step invocation starts or finishes, only if the run asked for internal
/// events ([`RunOptions::internal_events`](crate::RunOptions::internal_events)).
///
/// ```
/// use workflows::{StepState, StepStateChanged};
///
/// let ev = StepStateChanged {
///     step: "ask".into(),
///     state: StepState::Running,
///     invocation: 3,
///     input_event: "StartEvent".into(),
///     output_event: None,
/// };
/// assert_eq!(ev.state, StepState::Running);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, crate::Event)]
#[event(internal, crate = crate)]
pub struct StepStateChanged {
    /// The step.
    pub step: String,
    /// Started or finished.
    pub state: StepState,
    /// The invocation's number within the run.
    pub invocation: u64,
    /// The name of the event the step handles.
    pub input_event: String,
    /// The name of the event the step returned, once finished.
    pub output_event: Option<String>,
}

/// Published, when internal events are on, each time the run has nothing to do: no event
/// queued and no step running. A human-in-the-loop run is idle while it waits for an answer.
///
/// ```
/// let ev = workflows::WorkflowIdle {};
/// assert_eq!(format!("{ev:?}"), "WorkflowIdle");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, crate::Event)]
#[event(internal, crate = crate)]
pub struct WorkflowIdle {}
