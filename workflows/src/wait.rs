//! Waiting inside a step for an event from outside: [`WaitFor`], [`Field`], [`WaitError`].

use std::marker::PhantomData;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{AnyEvent, Event};

/// One requirement on the event a waiter accepts: the JSON value at `path` (a dot path into
/// the event's serialized form) must equal `value`. Plain data, so it survives a snapshot.
///
/// ```
/// use workflows::Requirement;
///
/// let r = Requirement { path: "request_id".into(), value: serde_json::json!("r-7") };
/// assert!(r.matches(&serde_json::json!({"request_id": "r-7", "response": "yes"})));
/// assert!(!r.matches(&serde_json::json!({"request_id": "r-8"})));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Requirement {
    /// Dot path into the event's JSON (`"a.b.0"`).
    pub path: String,
    /// The value required there.
    pub value: Value,
}

impl Requirement {
    /// Whether the event serialized as `event` meets this requirement.
    pub fn matches(&self, event: &Value) -> bool {
        let found = crate::store::follow(event, self.path.split('.'), &self.path);
        matches!(found, Ok(Some(value)) if *value == self.value)
    }
}

/// A typed field of event `E` holding a `V`, for [`WaitFor::require`]; build it with
/// [`field!`](crate::field).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use workflows::prelude::*;
///
/// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
/// struct Verdict { request_id: u64, approved: bool }
///
/// let field = workflows::field!(Verdict, request_id);
/// assert_eq!(field.name(), "request_id");
/// ```
pub struct Field<E, V> {
    name: &'static str,
    _types: PhantomData<fn(&E) -> &V>,
}

impl<E, V> Field<E, V> {
    /// The field called `name`; `_get` only ties the field's type to `V` at compile time.
    #[doc(hidden)]
    pub fn new(name: &'static str, _get: fn(&E) -> &V) -> Self {
        Field {
            name,
            _types: PhantomData,
        }
    }

    /// The field's name, as serialized.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// A typed field of an event, checked at compile time: `field!(Approval, request_id)`.
///
/// The field must be serialized under its Rust name (no `#[serde(rename)]`).
#[macro_export]
macro_rules! field {
    ($event:ty, $field:ident) => {
        $crate::Field::<$event, _>::new(::core::stringify!($field), |e: &$event| &e.$field)
    };
}

/// What a step waits for with [`Context::wait_for_event`](crate::Context::wait_for_event):
/// an event of type `E`, optionally announced by a prompt event, named by a waiter id, and
/// narrowed by requirements on its fields.
///
/// ```
/// use std::time::Duration;
/// use workflows::prelude::*;
/// use workflows::WaitFor;
///
/// let wait = WaitFor::<HumanResponseEvent>::new()
///     .prompt(InputRequiredEvent::new("Approve draft? "))
///     .id("approve-draft")
///     .require_path("request_id", "r-7")
///     .timeout(Duration::from_secs(3600));
/// assert_eq!(wait.waiter_id(), Some("approve-draft"));
/// ```
pub struct WaitFor<E> {
    pub(crate) prompt: Option<Box<dyn AnyEvent>>,
    pub(crate) id: Option<String>,
    pub(crate) requirements: Vec<Requirement>,
    pub(crate) timeout: Option<Duration>,
    _event: PhantomData<fn() -> E>,
}

impl<E: Event> Default for WaitFor<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Event> WaitFor<E> {
    /// Waits for any event of type `E`, with no prompt, an implicit id and no timeout.
    pub fn new() -> Self {
        WaitFor {
            prompt: None,
            id: None,
            requirements: Vec::new(),
            timeout: None,
            _event: PhantomData,
        }
    }

    /// Publishes `event` on the stream when the wait begins (once per waiter id), typically an
    /// input request that tells the caller what to send.
    pub fn prompt(mut self, event: impl Event) -> Self {
        self.prompt = Some(Box::new(event));
        self
    }

    /// Names the waiter. Without a name each wait gets an id of its own, unique per
    /// invocation and per wait within it.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Accepts only events whose `field` equals `value`; the field and value types are checked
    /// at compile time.
    pub fn require<V: Serialize>(self, field: Field<E, V>, value: V) -> Self {
        self.require_path(field.name(), value)
    }

    /// Accepts only events whose JSON has `value` at dot path `path` (for fields not declared
    /// on the type, such as the extra fields of [`HumanResponseEvent`](crate::HumanResponseEvent)).
    pub fn require_path(mut self, path: impl Into<String>, value: impl Serialize) -> Self {
        self.requirements.push(Requirement {
            path: path.into(),
            value: serde_json::to_value(value).unwrap_or(Value::Null),
        });
        self
    }

    /// Gives up after `timeout`: the wait then returns [`WaitError::Timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The explicit waiter id, if one was given.
    pub fn waiter_id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

/// Why a wait ended without its event.
///
/// ```
/// use std::time::Duration;
/// use workflows::WaitError;
///
/// let err = WaitError::Timeout { waiter_id: "approve".into(), after: Duration::from_secs(2) };
/// assert_eq!(err.to_string(), "waiter `approve` got no matching event within 2s");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The wait's timeout elapsed first.
    #[error("waiter `{waiter_id}` got no matching event within {after:?}")]
    Timeout {
        /// The waiter's id.
        waiter_id: String,
        /// The timeout.
        after: Duration,
    },
    /// The run ended while the step waited.
    #[error("the run ended while waiter `{waiter_id}` was waiting")]
    RunEnded {
        /// The waiter's id.
        waiter_id: String,
    },
}
