//! What a step accepts and returns, as the `#[workflow]` macro sees it.

use std::future::Future;
use std::pin::Pin;

use crate::infer::{EventRole, NoStopEvent};
use crate::{AnyEvent, Event, EventInfo};

/// Any error a step may return: `Result<_, E>` works for every `E` that converts into this
/// (all `std::error::Error + Send + Sync` types, `String`, `&str`, `anyhow::Error`, ...).
///
/// ```
/// let err: workflows::BoxError = "quota exceeded".into();
/// assert_eq!(err.to_string(), "quota exceeded");
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The type of a step's event parameter: one event type, or an enum of several
/// (`#[derive(OneOf)]`).
///
/// ```
/// use workflows::prelude::*;
/// use workflows::StepInput;
///
/// assert_eq!(<StartEvent as StepInput>::EVENTS[0].name, "StartEvent");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event, so a step cannot take it",
    label = "not an event",
    note = "derive Event for it (`#[derive(Clone, Debug, Serialize, Deserialize, Event)]`), or take an enum of events with #[derive(OneOf)]"
)]
pub trait StepInput: Sized + Send + 'static {
    /// The event types this parameter accepts.
    const EVENTS: &'static [EventInfo];

    /// The start event among them, if any (type-level; see `#[workflow]`).
    #[doc(hidden)]
    type Start;

    /// A copy of `ev` as this type, or `None` if `ev` is not one of [`EVENTS`](Self::EVENTS).
    fn from_event(ev: &dyn AnyEvent) -> Option<Self>;
}

impl<E: Event> StepInput for E {
    const EVENTS: &'static [EventInfo] = &[EventInfo::of::<E>()];
    type Start = <E as EventRole>::Start;

    fn from_event(ev: &dyn AnyEvent) -> Option<Self> {
        ev.downcast_ref::<E>().cloned()
    }
}

/// What a step returns: nothing (`()`), one event, `Option` of an output, `Result` of an
/// output, or an enum of several events (`#[derive(OneOf)]`).
///
/// ```
/// use workflows::prelude::*;
/// use workflows::StepOutput;
///
/// let out = Some(InputRequiredEvent::new("name? ")).into_emitted().unwrap();
/// assert_eq!(out.unwrap().name(), "InputRequiredEvent");
/// assert!(().into_emitted().unwrap().is_none());
/// let failed: Result<(), String> = Err("boom".into());
/// assert_eq!(failed.into_emitted().unwrap_err().to_string(), "boom");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not something a step can return",
    label = "not an event",
    note = "a step returns nothing, an event (derive Event for it), an Option or Result of one, or an enum of events with #[derive(OneOf)]"
)]
pub trait StepOutput: Send + 'static {
    /// The event types this return type can carry.
    const EVENTS: &'static [EventInfo];

    /// The stop event among them, if any (type-level; see `#[workflow]`).
    #[doc(hidden)]
    type Stop;

    /// The emitted event, if any, or the step's error.
    fn into_emitted(self) -> Result<Option<Box<dyn AnyEvent>>, BoxError>;
}

impl StepOutput for () {
    const EVENTS: &'static [EventInfo] = &[];
    type Stop = NoStopEvent;

    fn into_emitted(self) -> Result<Option<Box<dyn AnyEvent>>, BoxError> {
        Ok(None)
    }
}

impl<E: Event> StepOutput for E {
    const EVENTS: &'static [EventInfo] = &[EventInfo::of::<E>()];
    type Stop = <E as EventRole>::Stop;

    fn into_emitted(self) -> Result<Option<Box<dyn AnyEvent>>, BoxError> {
        Ok(Some(Box::new(self)))
    }
}

impl<T: StepOutput> StepOutput for Option<T> {
    const EVENTS: &'static [EventInfo] = T::EVENTS;
    type Stop = T::Stop;

    fn into_emitted(self) -> Result<Option<Box<dyn AnyEvent>>, BoxError> {
        match self {
            Some(out) => out.into_emitted(),
            None => Ok(None),
        }
    }
}

impl<T: StepOutput, Er: Into<BoxError> + Send + 'static> StepOutput for Result<T, Er> {
    const EVENTS: &'static [EventInfo] = T::EVENTS;
    type Stop = T::Stop;

    fn into_emitted(self) -> Result<Option<Box<dyn AnyEvent>>, BoxError> {
        match self {
            Ok(out) => out.into_emitted(),
            Err(err) => Err(Box::new(Thrown {
                type_name: std::any::type_name::<Er>(),
                error: err.into(),
            })),
        }
    }
}

/// A step's error on its way to the runtime, with the name of the type the step declared
/// (`Result<_, Kaput>` gives `my_crate::Kaput`), which boxing would lose. The runtime unwraps
/// it as soon as the attempt ends (`AttemptError::from_step`), so retry predicates, failure
/// steps and callers see the step's own error.
#[derive(Debug)]
pub(crate) struct Thrown {
    pub(crate) type_name: &'static str,
    pub(crate) error: BoxError,
}

impl std::fmt::Display for Thrown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for Thrown {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// An event type that can end a run, and the result it hands to the caller.
#[diagnostic::on_unimplemented(
    message = "no step of this workflow returns a stop event",
    label = "a run of this workflow could never end",
    note = "a run ends when a step returns its stop event: return `StopEvent<T>` (or a type marked #[event(stop)]) from some step"
)]
///
/// [`StopEvent<T>`](crate::StopEvent) yields `T`; a user type marked `#[event(stop)]` yields
/// itself.
///
/// ```
/// use workflows::prelude::*;
/// use workflows::StopType;
///
/// assert_eq!(StopEvent::new(String::from("done")).into_output(), "done");
/// ```
pub trait StopType: Event {
    /// What awaiting the run's handler gives.
    type Output: Send + 'static;

    /// The result carried by this event.
    fn into_output(self) -> Self::Output;
}

/// Static facts about one step, generated by `#[workflow]`.
///
/// ```
/// use workflows::prelude::*;
///
/// struct Echo;
///
/// #[workflow]
/// impl Echo {
///     #[step(num_workers = 2)]
///     async fn echo(&self, ev: StartEvent) -> StopEvent<String> {
///         StopEvent::new(ev.get::<String>("text").unwrap_or_default())
///     }
/// }
///
/// let step = &Echo::STEPS[0];
/// assert_eq!(step.name, "echo");
/// assert_eq!(step.num_workers, 2);
/// assert_eq!(step.accepts[0].name, "StartEvent");
/// assert_eq!(step.emits[0].name, "StopEvent");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct StepInfo {
    /// The step's name (its method's name unless renamed with `#[step(name = "...")]`).
    pub name: &'static str,
    /// How many invocations of the step may run at once within one run.
    pub num_workers: usize,
    /// The event types the step accepts.
    pub accepts: &'static [EventInfo],
    /// The event types the step returns.
    pub emits: &'static [EventInfo],
    /// The event types the step declares it sends through its context (`#[step(sends(...))]`).
    pub sends: &'static [EventInfo],
}

impl StepInfo {
    /// Whether the step accepts events of type `ty`.
    pub fn accepts_type(&self, ty: std::any::TypeId) -> bool {
        self.accepts.iter().any(|info| info.type_id == ty)
    }
}

/// The future of one step invocation, as the runtime polls it.
#[doc(hidden)]
pub type StepFuture =
    Pin<Box<dyn Future<Output = Result<Option<Box<dyn AnyEvent>>, BoxError>> + Send + 'static>>;
