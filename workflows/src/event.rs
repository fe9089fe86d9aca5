//! The [`Event`] trait, its object-safe form [`AnyEvent`], and event metadata.

use std::any::{Any, TypeId};
use std::fmt::Debug;

use serde::Serialize;

/// The role an event type plays in a workflow.
///
/// Set with `#[event(start)]`, `#[event(stop)]`, `#[event(input_required)]` or
/// `#[event(response)]` on a `#[derive(Event)]` type; plain events need nothing.
///
/// ```
/// use workflows::prelude::*;
///
/// assert_eq!(StartEvent::KIND, EventKind::Start);
/// assert_eq!(InputRequiredEvent::KIND, EventKind::InputRequired);
/// assert_eq!(serde_json::to_string(&EventKind::InputRequired).unwrap(), "\"input_required\"");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An ordinary event routed from step to step.
    Plain,
    /// The event a run starts with.
    Start,
    /// The event that ends a run and carries its result.
    Stop,
    /// A request for input: written to the event stream for the caller instead of being routed.
    InputRequired,
    /// The caller's answer to an input request, sent into the run from outside.
    Response,
    /// An event the runtime itself publishes (run ended, step state changes).
    Internal,
}

/// A message that flows between steps, out to the caller, or in from the caller.
///
/// Derive it: `#[derive(Clone, Debug, Serialize, Deserialize, Event)]`. The derive gives the
/// type a stable [`NAME`](Event::NAME) (its identifier, or `#[event(name = "...")]`), registers
/// it by that name so that snapshots and HTTP requests can name it (which needs
/// `Deserialize`), and records its [`KIND`](Event::KIND). Generic event types, such as
/// [`StopEvent<T>`](crate::StopEvent), are not registered and need only `Serialize`.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use workflows::prelude::*;
///
/// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
/// struct Draft {
///     text: String,
/// }
///
/// assert_eq!(Draft::NAME, "Draft");
/// assert_eq!(Draft::KIND, EventKind::Plain);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event",
    label = "not an event",
    note = "derive it: `#[derive(Clone, Debug, Serialize, Deserialize, Event)]`; to accept or return one of several events, use an enum with #[derive(OneOf)]"
)]
pub trait Event: Any + Send + Sync + Clone + Debug + Serialize + crate::infer::EventRole {
    /// The stable name of the event type, unique in a binary.
    const NAME: &'static str;
    /// The role of the event type.
    const KIND: EventKind = EventKind::Plain;
    /// For an input-required event: the name of the response type that answers it.
    const RESPONSE: Option<&'static str> = None;

    /// A JSON Schema of the event's JSON form, for clients that build forms or validate input
    /// (the HTTP server serves it).
    ///
    /// With `#[derive(Event)]`: when the type also derives
    /// [`JsonSchema`](schemars::JsonSchema) (add `schemars = "1"` to your dependencies), the
    /// schema is exactly what `schemars` generates, nested types, every serde enum
    /// representation, defaults and `deny_unknown_fields` included. Otherwise the derive
    /// writes it from the type's fields and `#[serde]` options: strings, numbers, booleans,
    /// options, sequences and maps are described, and a field of another type is left open
    /// (`{}`). Without the derive, the default names the type and says it is an object.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use workflows::prelude::*;
    ///
    /// /// What the reviewer decided.
    /// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
    /// struct Assessment {
    ///     approved: bool,
    ///     note: Option<String>,
    /// }
    ///
    /// let schema = Assessment::schema();
    /// assert_eq!(schema["title"], "Assessment");
    /// assert_eq!(schema["description"], "What the reviewer decided.");
    /// assert_eq!(schema["properties"]["approved"]["type"], "boolean");
    /// assert_eq!(schema["required"], serde_json::json!(["approved"]));
    /// ```
    fn schema() -> serde_json::Value {
        serde_json::json!({ "title": Self::NAME, "type": "object" })
    }
}

/// An input-required event that names the response type answering it.
///
/// Derived by `#[event(input_required(response = MyAnswer))]`. With it,
/// [`Handler::respond`](crate::Handler::respond) only accepts the right answer type.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use workflows::prelude::*;
///
/// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
/// #[event(response)]
/// struct Approval {
///     approved: bool,
/// }
///
/// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
/// #[event(input_required(response = Approval))]
/// struct ApprovalRequest {
///     draft: String,
/// }
///
/// fn answer_type<R: InputRequired>() -> &'static str {
///     <R::Response as Event>::NAME
/// }
/// assert_eq!(answer_type::<ApprovalRequest>(), "Approval");
/// ```
pub trait InputRequired: Event {
    /// The event type that answers this request.
    type Response: Event;
}

/// Static facts about one event type: its name, kind and Rust type.
///
/// Step tables are built from these at compile time.
///
/// ```
/// use workflows::prelude::*;
/// use workflows::EventInfo;
///
/// let info = EventInfo::of::<HumanResponseEvent>();
/// assert_eq!(info.name, "HumanResponseEvent");
/// assert_eq!(info.kind, EventKind::Response);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct EventInfo {
    /// [`Event::NAME`].
    pub name: &'static str,
    /// [`Event::KIND`].
    pub kind: EventKind,
    /// The Rust type's id, used for routing.
    pub type_id: TypeId,
    /// The Rust type's path, for messages.
    pub type_name: fn() -> &'static str,
    /// [`Event::RESPONSE`].
    pub response: Option<&'static str>,
    /// The type's JSON Schema ([`Event::schema`]).
    pub schema: fn() -> serde_json::Value,
}

impl EventInfo {
    /// The facts about event type `E`.
    pub const fn of<E: Event>() -> Self {
        EventInfo {
            name: E::NAME,
            kind: E::KIND,
            type_id: TypeId::of::<E>(),
            type_name: std::any::type_name::<E>,
            response: E::RESPONSE,
            schema: E::schema,
        }
    }
}

/// An event whose type is known only at run time: what streams, queues and snapshots hold.
///
/// Every [`Event`] is an `AnyEvent`. Get the concrete type back with
/// `downcast_ref` or `downcast` (methods of `dyn AnyEvent`).
///
/// ```
/// use workflows::prelude::*;
///
/// let ev: Box<dyn AnyEvent> = Box::new(InputRequiredEvent::new("Enter a number: "));
/// assert_eq!(ev.name(), "InputRequiredEvent");
/// let req = ev.downcast_ref::<InputRequiredEvent>().unwrap();
/// assert_eq!(req.prefix, "Enter a number: ");
/// ```
pub trait AnyEvent: Any + Send + Sync + Debug {
    /// [`Event::NAME`] of the concrete type.
    fn name(&self) -> &'static str;
    /// [`Event::KIND`] of the concrete type.
    fn kind(&self) -> EventKind;
    /// The concrete type's [`TypeId`] (not the box's).
    fn event_type_id(&self) -> TypeId;
    /// The event as JSON.
    fn to_json(&self) -> serde_json::Result<serde_json::Value>;
    /// A boxed copy of the event.
    fn clone_event(&self) -> Box<dyn AnyEvent>;
    /// The event as `Any`, for downcasting.
    fn as_any(&self) -> &dyn Any;
    /// The boxed event as `Any`, for downcasting by value.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
    /// The concrete type's path (`my_crate::review::Decision`), as [`std::any::type_name`]
    /// gives it.
    ///
    /// ```
    /// use workflows::prelude::*;
    ///
    /// let ev: Box<dyn AnyEvent> = Box::new(HumanResponseEvent::new("yes"));
    /// assert!(ev.type_name().ends_with("::HumanResponseEvent"));
    /// ```
    fn type_name(&self) -> &'static str;
    /// [`Event::RESPONSE`] of the concrete type: for an input request, the name of the
    /// event type that answers it.
    ///
    /// ```
    /// use workflows::prelude::*;
    ///
    /// let ev: Box<dyn AnyEvent> = Box::new(InputRequiredEvent::new("name? "));
    /// assert_eq!(ev.response(), Some("HumanResponseEvent"));
    /// ```
    fn response(&self) -> Option<&'static str> {
        None
    }
}

impl<E: Event> AnyEvent for E {
    fn name(&self) -> &'static str {
        E::NAME
    }
    fn kind(&self) -> EventKind {
        E::KIND
    }
    fn event_type_id(&self) -> TypeId {
        TypeId::of::<E>()
    }
    fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::to_value(self)
    }
    fn clone_event(&self) -> Box<dyn AnyEvent> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<E>()
    }
    fn response(&self) -> Option<&'static str> {
        E::RESPONSE
    }
}

impl dyn AnyEvent {
    /// Whether the event is of type `E`.
    pub fn is<E: Event>(&self) -> bool {
        self.event_type_id() == TypeId::of::<E>()
    }

    /// The event as `&E`, if it is one.
    pub fn downcast_ref<E: Event>(&self) -> Option<&E> {
        self.as_any().downcast_ref::<E>()
    }

    /// The event as `E`, or the box back if it is another type.
    pub fn downcast<E: Event>(self: Box<Self>) -> Result<E, Box<dyn AnyEvent>> {
        if self.is::<E>() {
            match self.into_any().downcast::<E>() {
                Ok(ev) => Ok(*ev),
                Err(_) => unreachable!("type id checked above"),
            }
        } else {
            Err(self)
        }
    }
}

impl Clone for Box<dyn AnyEvent> {
    fn clone(&self) -> Self {
        (**self).clone_event()
    }
}
