//! Type-level inference of a workflow's start and stop event types from its step signatures.
//!
//! Every event type says, through [`EventRole`], whether it is a start event, a stop event, or
//! neither. `#[workflow]` folds the roles of all step parameters and return types with
//! [`MergeStart`] and [`MergeStop`]: the result is the workflow's start (stop) type, or a
//! compile error when there is none or more than one. Not public API.

use crate::{Event, StopType};

/// What role an event type plays; implemented by `#[derive(Event)]`.
#[doc(hidden)]
pub trait EventRole {
    /// `Self` for a start event, else [`NoStartEvent`].
    type Start;
    /// `Self` for a stop event, else [`NoStopEvent`].
    type Stop;
}

/// Stands for "no step accepts a start event".
#[doc(hidden)]
pub struct NoStartEvent;

/// Stands for "no step returns a stop event".
#[doc(hidden)]
pub struct NoStopEvent;

/// An event type a run can start with: [`StartEvent`](crate::StartEvent), or a type marked
/// `#[event(start)]`.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use workflows::prelude::*;
///
/// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
/// #[event(start)]
/// struct Order { id: u64 }
///
/// struct Fulfil;
///
/// #[workflow]
/// impl Fulfil {
///     #[step]
///     async fn ship(&self, order: Order) -> StopEvent<String> {
///         StopEvent::new(format!("shipped #{}", order.id))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(Fulfil.run(Order { id: 7 }).await.unwrap(), "shipped #7");
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "no step of this workflow accepts a start event",
    label = "this workflow cannot start",
    note = "a run begins with its start event: give one step an `ev: StartEvent` parameter (or a type marked #[event(start)])"
)]
pub trait StartType: Event {}

/// Combines the start roles of two step parameters.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "this workflow accepts two different start events, `{Self}` and `{B}`",
    label = "a workflow has one start event type",
    note = "make every step that begins a run accept the same start event type"
)]
pub trait MergeStart<B> {
    type Out;
}

impl<B> MergeStart<B> for NoStartEvent {
    type Out = B;
}

impl<A: StartType> MergeStart<NoStartEvent> for A {
    type Out = A;
}

impl<A: StartType> MergeStart<A> for A {
    type Out = A;
}

/// Combines the stop roles of two step return types.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "this workflow returns two different stop events, `{Self}` and `{B}`",
    label = "a workflow has one stop event type",
    note = "return the same stop event type from every step that ends a run"
)]
pub trait MergeStop<B> {
    type Out;
}

impl<B> MergeStop<B> for NoStopEvent {
    type Out = B;
}

impl<A: StopType> MergeStop<NoStopEvent> for A {
    type Out = A;
}

impl<A: StopType> MergeStop<A> for A {
    type Out = A;
}
