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

/// The type of a step's event parameter: one event type, an enum of several
/// (`#[derive(OneOf)]`), or a `Vec` of either, which makes the step a **join**: it fires once
/// per fan-out with the events that descend from the fan-out's elements (see
/// [`Fires::PerFanOut`]).
///
/// ```
/// use workflows::prelude::*;
/// use workflows::{Fires, StepInput};
///
/// assert_eq!(<StartEvent as StepInput>::EVENTS[0].name, "StartEvent");
/// assert_eq!(<StartEvent as StepInput>::FIRES, Fires::PerEvent);
/// assert_eq!(<Vec<HumanResponseEvent> as StepInput>::FIRES, Fires::PerFanOut { take: None });
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event, so a step cannot take it",
    label = "not an event",
    note = "derive Event for it (`#[derive(Clone, Debug, Serialize, Deserialize, Event)]`), take an enum of events with #[derive(OneOf)], or a `Vec` of either to join a fan-out"
)]
pub trait StepInput: Sized + Send + 'static {
    /// The event types this parameter accepts.
    const EVENTS: &'static [EventInfo];

    /// The start event among them, if any (type-level; see `#[workflow]`).
    #[doc(hidden)]
    type Start;

    /// When a step taking this parameter fires: per event, or once per fan-out for a `Vec`.
    const FIRES: Fires = Fires::PerEvent;

    /// A copy of `ev` as this type, or `None` if `ev` is not one of [`EVENTS`](Self::EVENTS).
    fn from_event(ev: &dyn AnyEvent) -> Option<Self>;

    /// This type from the events an invocation handles: one event, or a join's batch.
    #[doc(hidden)]
    fn from_events(events: &[Box<dyn AnyEvent>]) -> Option<Self> {
        match events {
            [one] => Self::from_event(&**one),
            _ => None,
        }
    }
}

/// One event of a type known at compile time: an [`Event`], or an enum of events
/// (`#[derive(OneOf)]` implements this). What a fan-out returns and a join takes a `Vec` of.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not one event",
    label = "a fan-out returns, and a join takes, a `Vec` of events",
    note = "use a `Vec` of an event type, or of an enum of events with #[derive(OneOf)]"
)]
pub trait OneEvent: StepInput + StepOutput {}

impl<E: Event> OneEvent for E {}

/// A `Vec` parameter makes a step a join (see [`Fires::PerFanOut`]).
impl<T: OneEvent> StepInput for Vec<T> {
    const EVENTS: &'static [EventInfo] = <T as StepInput>::EVENTS;
    type Start = crate::infer::NoStartEvent;
    const FIRES: Fires = Fires::PerFanOut { take: None };

    fn from_event(_: &dyn AnyEvent) -> Option<Self> {
        None
    }

    fn from_events(events: &[Box<dyn AnyEvent>]) -> Option<Self> {
        events.iter().map(|ev| T::from_event(&**ev)).collect()
    }
}

/// When a step fires: what one invocation of it handles.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use workflows::prelude::*;
/// use workflows::Fires;
///
/// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
/// struct Leaf(u32);
///
/// struct Crawl;
///
/// #[workflow]
/// impl Crawl {
///     #[step]
///     async fn split(&self, _ev: StartEvent) -> Vec<Leaf> {
///         (1..=3).map(Leaf).collect()
///     }
///
///     #[step(take = 1)]
///     async fn first(&self, leaves: Vec<Leaf>) -> StopEvent<u32> {
///         StopEvent::new(leaves[0].0)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(Crawl::STEPS[0].fires, Fires::PerEvent);
/// assert!(Crawl::STEPS[0].fans_out);
/// assert_eq!(Crawl::STEPS[1].fires, Fires::PerFanOut { take: Some(1) });
/// assert_eq!(Crawl.run(StartEvent::new()).await.unwrap(), 1);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fires {
    /// Once per event it accepts (a parameter of one event type, or a `OneOf` enum).
    PerEvent,
    /// Once per fan-out, for a **join** (a `Vec<E>` parameter): with every `E` that descends
    /// from the elements of a list some step returned, through any number of steps, in the
    /// order of those elements. An empty fan-out joins with `[]` at once; a branch that ends
    /// without an `E` is left out. With `take: Some(n)` (`#[step(take = n)]`), the join fires
    /// at the `n`-th arrival with the first `n`, in arrival order, and ignores the rest (or,
    /// if the fan-out ends first, with what arrived).
    PerFanOut {
        /// How many arrivals to fire with, if not all.
        take: Option<usize>,
    },
    /// Once per complete set, for a step taking several events (`async fn pair(&self, a: A,
    /// b: B)`): one event of each parameter's type ([`StepInfo::accepts`] lists them in
    /// parameter order), each the oldest of its type not used yet. An event waits for its
    /// partners as long as it takes.
    PerSet,
}

#[doc(hidden)]
impl Fires {
    /// `fires` with `#[step(take = n)]` applied; a step that is not a join is reported by the
    /// workflow's graph checks.
    pub const fn with_take(fires: Fires, n: usize) -> Fires {
        match fires {
            Fires::PerFanOut { .. } => Fires::PerFanOut { take: Some(n) },
            other => other,
        }
    }

    /// Whether a step firing so is a join.
    pub const fn is_join(self) -> bool {
        matches!(self, Fires::PerFanOut { .. })
    }
}

impl<E: Event> StepInput for E {
    const EVENTS: &'static [EventInfo] = &[EventInfo::of::<E>()];
    type Start = <E as EventRole>::Start;

    fn from_event(ev: &dyn AnyEvent) -> Option<Self> {
        ev.downcast_ref::<E>().cloned()
    }
}

/// What a step returns: nothing (`()`), one event, an enum of several events
/// (`#[derive(OneOf)]`), a `Vec` of events (a **fan-out**: each element is routed as if
/// returned alone, in order, and joins count them), or an `Option` or `Result` of any of these.
///
/// ```
/// use workflows::prelude::*;
/// use workflows::{Emitted, StepOutput};
///
/// let out = Some(InputRequiredEvent::new("name? ")).into_emitted().unwrap();
/// assert!(matches!(out, Emitted::One(ev) if ev.name() == "InputRequiredEvent"));
/// assert!(matches!(().into_emitted().unwrap(), Emitted::Nothing));
/// let list = vec![HumanResponseEvent::new("a"), HumanResponseEvent::new("b")];
/// assert!(matches!(list.into_emitted().unwrap(), Emitted::FanOut(evs) if evs.len() == 2));
/// let failed: Result<(), String> = Err("boom".into());
/// assert_eq!(failed.into_emitted().unwrap_err().to_string(), "boom");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not something a step can return",
    label = "not an event",
    note = "a step returns nothing, an event (derive Event for it), an enum of events with #[derive(OneOf)], a `Vec` of either (a fan-out), or an Option or Result of these"
)]
pub trait StepOutput: Send + 'static {
    /// The event types this return type can carry.
    const EVENTS: &'static [EventInfo];

    /// The stop event among them, if any (type-level; see `#[workflow]`).
    #[doc(hidden)]
    type Stop;

    /// Whether this return type can be a list of events (a fan-out).
    const FANS_OUT: bool = false;

    /// What the step emitted, or its error.
    fn into_emitted(self) -> Result<Emitted, BoxError>;
}

/// What one invocation of a step emitted: what [`StepOutput::into_emitted`] gives.
#[derive(Debug)]
pub enum Emitted {
    /// No event: the branch of the run that led here ends.
    Nothing,
    /// One event, routed to the steps accepting it.
    One(Box<dyn AnyEvent>),
    /// A list of events (possibly empty): a fan-out, whose elements are routed in order and
    /// whose descendants the joins collect.
    FanOut(Vec<Box<dyn AnyEvent>>),
}

impl StepOutput for () {
    const EVENTS: &'static [EventInfo] = &[];
    type Stop = NoStopEvent;

    fn into_emitted(self) -> Result<Emitted, BoxError> {
        Ok(Emitted::Nothing)
    }
}

impl<E: Event> StepOutput for E {
    const EVENTS: &'static [EventInfo] = &[EventInfo::of::<E>()];
    type Stop = <E as EventRole>::Stop;

    fn into_emitted(self) -> Result<Emitted, BoxError> {
        Ok(Emitted::One(Box::new(self)))
    }
}

/// A fan-out: every element is routed as if returned alone, in order. Collect any iterator
/// into a `Vec` to return it.
impl<T: OneEvent> StepOutput for Vec<T> {
    const EVENTS: &'static [EventInfo] = <T as StepOutput>::EVENTS;
    type Stop = <T as StepOutput>::Stop;
    const FANS_OUT: bool = true;

    fn into_emitted(self) -> Result<Emitted, BoxError> {
        let mut events = Vec::with_capacity(self.len());
        for element in self {
            // One event each, by `OneEvent`.
            if let Emitted::One(ev) = element.into_emitted()? {
                events.push(ev);
            }
        }
        Ok(Emitted::FanOut(events))
    }
}

impl<T: StepOutput> StepOutput for Option<T> {
    const EVENTS: &'static [EventInfo] = T::EVENTS;
    type Stop = T::Stop;
    const FANS_OUT: bool = T::FANS_OUT;

    fn into_emitted(self) -> Result<Emitted, BoxError> {
        match self {
            Some(out) => out.into_emitted(),
            None => Ok(Emitted::Nothing),
        }
    }
}

impl<T: StepOutput, Er: Into<BoxError> + Send + 'static> StepOutput for Result<T, Er> {
    const EVENTS: &'static [EventInfo] = T::EVENTS;
    type Stop = T::Stop;
    const FANS_OUT: bool = T::FANS_OUT;

    fn into_emitted(self) -> Result<Emitted, BoxError> {
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
/// it as soon as the attempt ends (`attempt::step_error`), so retry predicates, failure
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
    /// The workflows the step may run as children (`#[step(children(...))]`), through
    /// [`Context::run_child`](crate::Context::run_child).
    pub children: &'static [crate::ChildInfo],
    /// When the step fires: per event, or once per fan-out for a join.
    pub fires: Fires,
    /// Whether the step can return a list of events (a fan-out).
    pub fans_out: bool,
    /// For a failure step (one accepting [`StepFailed`](crate::StepFailed)): the steps whose
    /// failures it handles (`#[step(catch(a, b))]`); empty for every step no other failure
    /// step names.
    pub catches: &'static [&'static str],
    /// For a failure step: how many times it may recover on one lineage (a failure, then a
    /// failure of what its recovery led to, and so on) before the next failure ends the run
    /// (`#[step(max_recoveries = n)]`, 1 by default).
    pub max_recoveries: u32,
}

impl StepInfo {
    /// Whether the step accepts events of type `ty`.
    pub fn accepts_type(&self, ty: std::any::TypeId) -> bool {
        self.accepts.iter().any(|info| info.type_id == ty)
    }
}

/// The future of one step invocation, as the runtime polls it.
#[doc(hidden)]
pub type StepFuture = Pin<Box<dyn Future<Output = Result<Emitted, BoxError>> + Send + 'static>>;
