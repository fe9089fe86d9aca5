//! The events every workflow can use without defining its own.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Event, Fields};

/// The default start event: free-form JSON fields, like keyword arguments.
///
/// ```
/// use workflows::prelude::*;
///
/// let start = StartEvent::new().with("topic", "otters").with("max_words", 200);
/// assert_eq!(start.get::<String>("topic").as_deref(), Some("otters"));
/// assert_eq!(start.get::<u32>("max_words"), Some(200));
/// assert_eq!(start.get::<u32>("missing"), None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, crate::Event)]
#[event(start, crate = crate)]
pub struct StartEvent {
    /// The fields the run was started with.
    #[serde(flatten)]
    pub fields: Fields,
}

impl StartEvent {
    /// An empty start event.
    pub fn new() -> Self {
        Self::default()
    }

    /// The event with `key` set to `value` (anything serializable).
    pub fn with(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.fields.insert(key.into(), value);
        self
    }

    /// Field `key` converted to `T`, or `None` when absent or of another shape.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.fields.get(key).and_then(|v| T::deserialize(v).ok())
    }
}

impl From<Map<String, Value>> for StartEvent {
    fn from(fields: Map<String, Value>) -> Self {
        StartEvent {
            fields: fields.into(),
        }
    }
}

impl From<Fields> for StartEvent {
    fn from(fields: Fields) -> Self {
        StartEvent { fields }
    }
}

/// The default stop event: ends the run and carries its typed result.
///
/// ```
/// use workflows::prelude::*;
///
/// let stop = StopEvent::new(42_u64);
/// assert_eq!(stop.result, 42);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StopEvent<T> {
    /// The run's result.
    pub result: T,
}

impl<T> StopEvent<T> {
    /// A stop event carrying `result`.
    pub fn new(result: T) -> Self {
        StopEvent { result }
    }
}

impl<T> Event for StopEvent<T>
where
    T: Clone + std::fmt::Debug + Serialize + Send + Sync + 'static,
{
    const NAME: &'static str = "StopEvent";
    const KIND: crate::EventKind = crate::EventKind::Stop;

    fn schema() -> serde_json::Value {
        serde_json::json!({
            "title": "StopEvent",
            "description": "The run's end: `result` holds its value.",
            "properties": { "result": { "title": "Result" } },
            "required": ["result"],
            "type": "object",
        })
    }
}

impl<T> crate::infer::EventRole for StopEvent<T> {
    type Start = crate::infer::NoStartEvent;
    type Stop = Self;
}

impl<T> crate::StopType for StopEvent<T>
where
    T: Clone + std::fmt::Debug + Serialize + Send + Sync + 'static,
{
    type Output = T;
    fn into_output(self) -> T {
        self.result
    }
}

/// The default request for input: written to the event stream for the caller.
///
/// Answer it with a [`HumanResponseEvent`], for instance with
/// [`Handler::respond`](crate::Handler::respond).
///
/// ```
/// use workflows::prelude::*;
///
/// let req = InputRequiredEvent::new("Enter a number: ").with("attempt", 1);
/// assert_eq!(req.prefix, "Enter a number: ");
/// assert_eq!(req.fields["attempt"], 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, crate::Event)]
#[event(input_required(response = HumanResponseEvent), crate = crate)]
pub struct InputRequiredEvent {
    /// The prompt to show.
    #[serde(default)]
    pub prefix: String,
    /// Any further fields.
    #[serde(flatten)]
    pub fields: Fields,
}

impl InputRequiredEvent {
    /// A request showing `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        InputRequiredEvent {
            prefix: prefix.into(),
            fields: Fields::new(),
        }
    }

    /// The request with extra field `key` set to `value`.
    pub fn with(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.fields.insert(key.into(), value);
        self
    }
}

/// The default answer to an [`InputRequiredEvent`].
///
/// ```
/// use workflows::prelude::*;
///
/// let answer = HumanResponseEvent::new("42");
/// assert_eq!(answer.response, "42");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, crate::Event)]
#[event(response, crate = crate)]
pub struct HumanResponseEvent {
    /// The caller's answer.
    #[serde(default)]
    pub response: String,
    /// Any further fields.
    #[serde(flatten)]
    pub fields: Fields,
}

impl HumanResponseEvent {
    /// An answer holding `response`.
    pub fn new(response: impl Into<String>) -> Self {
        HumanResponseEvent {
            response: response.into(),
            fields: Fields::new(),
        }
    }

    /// The answer with extra field `key` set to `value`.
    pub fn with(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.fields.insert(key.into(), value);
        self
    }
}
