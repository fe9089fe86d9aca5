//! The records of the API as a client reads and writes them: handlers, event envelopes, run
//! requests.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use workflows::Event;

use crate::ClientError;

/// Where a run stands.
///
/// ```
/// use workflows_client::Status;
///
/// assert_eq!(Status::Failed.as_str(), "failed");
/// assert!(Status::Cancelled.is_terminal() && !Status::Running.is_terminal());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Executing, or waiting for an event.
    Running,
    /// Ended with a result.
    Completed,
    /// Ended with an error.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl Status {
    /// The status as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Whether the run has ended.
    pub fn is_terminal(self) -> bool {
        self != Status::Running
    }
}

/// A run as the server reports it (`GET /handlers/{id}`).
///
/// ```
/// use workflows_client::{HandlerInfo, Status};
///
/// let failed: HandlerInfo = serde_json::from_value(serde_json::json!({
///     "handler_id": "h1", "workflow_name": "review", "run_id": "r1", "status": "failed",
///     "error": "kaput", "result": null, "started_at": "2026-12-02T10:00:00+00:00",
///     "updated_at": "2026-12-02T10:00:01+00:00", "completed_at": "2026-12-02T10:00:01+00:00",
/// })).unwrap();
/// assert_eq!((failed.status, failed.error.as_deref()), (Status::Failed, Some("kaput")));
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct HandlerInfo {
    /// The handler's id: how the run is addressed.
    pub handler_id: String,
    /// The workflow's registered name.
    pub workflow_name: String,
    /// The run's id.
    pub run_id: String,
    /// Where it stands.
    pub status: Status,
    /// A failed run's error: the failing step's own message.
    pub error: Option<String>,
    /// A completed run's stop event.
    pub result: Option<WireEvent>,
    /// When it started (ISO 8601).
    pub started_at: String,
    /// When it last changed.
    pub updated_at: Option<String>,
    /// When it ended.
    pub completed_at: Option<String>,
}

/// A published event as the API carries it: its wire type, its value, and (in a stream) its
/// sequence number.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct WireEvent {
    /// The position in the run's stream (events read from a stream have one).
    #[serde(skip)]
    pub sequence: Option<u64>,
    /// The event's name on the wire (`InputRequiredEvent`, `Decision`, ...).
    #[serde(rename = "type")]
    pub type_name: String,
    /// `module::path.Type`, or the Python name of a built-in event.
    #[serde(default)]
    pub qualified_name: Option<String>,
    /// The built-in kinds it stands for (`StopEvent` for every event that ends a stream).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub types: Vec<String>,
    /// For an event a child run published, the child's path (`Review/0`); `None` for the
    /// run's own events.
    ///
    /// ```
    /// use workflows_client::WireEvent;
    ///
    /// let ev: WireEvent = serde_json::from_value(serde_json::json!({
    ///     "type": "InputRequiredEvent", "value": {"prefix": "ok? "}, "child": "Review/0",
    /// })).unwrap();
    /// assert_eq!(ev.child.as_deref(), Some("Review/0"));
    /// ```
    #[serde(default)]
    pub child: Option<String>,
    /// Its fields.
    pub value: Value,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

impl WireEvent {
    /// Whether this event is of type `E` (by its name).
    ///
    /// ```
    /// use workflows::prelude::*;
    /// use workflows_client::WireEvent;
    ///
    /// let ev: WireEvent = serde_json::from_value(serde_json::json!({
    ///     "type": "InputRequiredEvent", "value": {"_data": {"prefix": "name? "}},
    /// })).unwrap();
    /// assert!(ev.is::<InputRequiredEvent>());
    /// assert_eq!(ev.decode::<InputRequiredEvent>().unwrap().prefix, "name? ");
    /// ```
    pub fn is<E: Event>(&self) -> bool {
        self.type_name == E::NAME
    }

    /// Whether this event ends its run's stream (a stop event, a failure, a cancel).
    pub fn is_terminal(&self) -> bool {
        self.type_name == "StopEvent" || self.types.iter().any(|t| t == "StopEvent")
    }

    /// The event as the Rust type `E` (the fields a Python server keeps under `_data` are
    /// read too).
    pub fn decode<E: Event + DeserializeOwned>(&self) -> Result<E, ClientError> {
        let value = match &self.value {
            Value::Object(fields) => {
                let mut fields = fields.clone();
                if let Some(Value::Object(inner)) = fields.remove("_data") {
                    for (k, v) in inner {
                        fields.entry(k).or_insert(v);
                    }
                }
                Value::Object(fields)
            }
            other => other.clone(),
        };
        serde_json::from_value(value).map_err(|source| ClientError::WrongEvent {
            event: self.type_name.clone(),
            wanted: std::any::type_name::<E>(),
            source,
        })
    }
}

/// What starts a run: its start event (by default an empty `StartEvent`) and, optionally, the
/// handler id to run under.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use workflows::prelude::*;
/// use workflows_client::RunRequest;
///
/// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
/// #[event(start)]
/// struct Greet {
///     name: String,
/// }
///
/// let request = RunRequest::event(&Greet { name: "Ada".into() })
///     .unwrap()
///     .handler_id("greet-ada");
/// # let _ = request;
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunRequest {
    start_event: Option<Value>,
    handler_id: Option<String>,
}

impl RunRequest {
    /// A run of the workflow's start event built from nothing (`{}`).
    pub fn new() -> Self {
        Self::default()
    }

    /// A run starting with `ev`, a typed start event.
    pub fn event<E: Event>(ev: &E) -> Result<Self, ClientError> {
        let value = serde_json::to_value(ev).map_err(ClientError::Encode)?;
        Ok(Self::json(json!({ "type": E::NAME, "value": value })))
    }

    /// A run starting with `start_event` as the API takes it: the start event's fields, or an
    /// envelope `{"type": ..., "value": ...}`.
    pub fn json(start_event: Value) -> Self {
        RunRequest {
            start_event: Some(start_event),
            handler_id: None,
        }
    }

    /// Runs under `handler_id` (a finished handler of that id is replaced).
    pub fn handler_id(mut self, handler_id: impl Into<String>) -> Self {
        self.handler_id = Some(handler_id.into());
        self
    }

    pub(crate) fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert(
            "start_event".into(),
            self.start_event.clone().unwrap_or_else(|| json!({})),
        );
        if let Some(id) = &self.handler_id {
            body.insert("handler_id".into(), Value::String(id.clone()));
        }
        Value::Object(body)
    }
}

/// Which handlers to list; empty lists match all.
///
/// ```
/// use workflows_client::{HandlerQuery, Status};
///
/// let waiting = HandlerQuery::new().status(Status::Running).workflow("review");
/// # let _ = waiting;
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HandlerQuery {
    pub(crate) statuses: Vec<Status>,
    pub(crate) workflows: Vec<String>,
}

impl HandlerQuery {
    /// Every handler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also those with `status`.
    pub fn status(mut self, status: Status) -> Self {
        self.statuses.push(status);
        self
    }

    /// Also those of the workflow `name`.
    pub fn workflow(mut self, name: impl Into<String>) -> Self {
        self.workflows.push(name.into());
        self
    }

    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        let statuses = self
            .statuses
            .iter()
            .map(|s| ("status", s.as_str().to_owned()));
        let names = self.workflows.iter().map(|n| ("workflow_name", n.clone()));
        statuses.chain(names).collect()
    }
}

/// The envelope `POST /events/{id}` takes for `ev`.
pub(crate) fn envelope<E: Event>(ev: &E, step: Option<&str>) -> Result<Value, ClientError> {
    let value = serde_json::to_value(ev).map_err(ClientError::Encode)?;
    let mut body = json!({ "event": { "type": E::NAME, "value": value } });
    if let Some(step) = step {
        body["step"] = Value::String(step.to_owned());
    }
    Ok(body)
}
