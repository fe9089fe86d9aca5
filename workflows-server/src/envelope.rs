//! Events on the wire, as llama-agents-server writes and reads them.
//!
//! Out: `{"value": ..., "qualified_name": ..., "type": ..., "types": [...]}`, with the Python
//! names of the built-in lifecycle events (`WorkflowFailedEvent`, `WorkflowIdleEvent`, ...), the
//! free-form built-in events' fields under `_data` as Python's dict-like events put them, and
//! `types` naming the base classes a Python client matches on (`StopEvent` for every event
//! that ends a stream, `InternalDispatchEvent` for internal ones).
//!
//! In: an envelope `{"type": ..., "value": ...}` (or `data` for `value`, or only a
//! `qualified_name`), possibly as a JSON string; for a start event also the bare fields. Fields
//! under `_data` are lifted to the top level.

use serde_json::{Map, Value, json};
use workflows::{AnyEvent, EventInfo, EventKind};

/// A published event, ready to store.
pub(crate) struct Outgoing {
    /// The envelope as JSON text.
    pub envelope: String,
    /// Hidden unless a stream asks for internal events.
    pub internal: bool,
    /// Ends the stream.
    pub terminal: bool,
    /// The run's outcome, when `terminal`.
    pub outcome: Option<Outcome>,
}

/// How a run ended, read off its last event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// With a result: the stop event's envelope.
    Completed(String),
    /// With an error message.
    Failed(String),
    /// Cancelled.
    Cancelled,
}

/// The Python name of one of our built-in events, where they differ.
pub(crate) fn wire_name(name: &str) -> &str {
    match name {
        "WorkflowFailed" => "WorkflowFailedEvent",
        "WorkflowCancelled" => "WorkflowCancelledEvent",
        "WorkflowTimedOut" => "WorkflowTimedOutEvent",
        "WorkflowIdle" => "WorkflowIdleEvent",
        "StepFailed" => "StepFailedEvent",
        other => other,
    }
}

/// Our registered name for a name a client sent (the Python names of built-ins included).
pub(crate) fn local_name(name: &str) -> &str {
    match name {
        "WorkflowFailedEvent" => "WorkflowFailed",
        "WorkflowCancelledEvent" => "WorkflowCancelled",
        "WorkflowTimedOutEvent" => "WorkflowTimedOut",
        "WorkflowIdleEvent" => "WorkflowIdle",
        "StepFailedEvent" => "StepFailed",
        other => other,
    }
}

/// The name a client may give instead of `type`, the reference's `module.Class`: the Python
/// name of a built-in event (`workflows.events.StopEvent`), else the Rust module path, a dot
/// and the event's name (`my_app::review.Decision`, from `type_path`, the type's
/// [`std::any::type_name`]).
pub(crate) fn qualified_name(name: &str, type_path: &str) -> String {
    if is_builtin(name) {
        return format!("workflows.events.{}", wire_name(name));
    }
    let base = &type_path[..type_path.find('<').unwrap_or(type_path.len())];
    match base.rfind("::") {
        Some(end) => format!("{}.{name}", &base[..end]),
        None => name.to_owned(),
    }
}

/// A Rust type's path written as the reference writes a class (`my_app::errors.Kaput` for
/// `my_app::errors::Kaput`), for the `exception_type` of a failed run.
pub(crate) fn python_style_path(type_path: &str) -> String {
    let base_end = type_path.find('<').unwrap_or(type_path.len());
    match type_path[..base_end].rfind("::") {
        Some(end) => format!("{}.{}", &type_path[..end], &type_path[end + 2..]),
        None => type_path.to_owned(),
    }
}

/// The built-in events whose Python form keeps every field under `_data`.
fn dict_like(name: &str) -> bool {
    matches!(
        name,
        "StartEvent" | "InputRequiredEvent" | "HumanResponseEvent"
    )
}

fn is_builtin(name: &str) -> bool {
    dict_like(name)
        || matches!(
            name,
            "StopEvent"
                | "WorkflowFailed"
                | "WorkflowCancelled"
                | "WorkflowTimedOut"
                | "WorkflowIdle"
                | "StepFailed"
                | "StepStateChanged"
        )
}

/// The built-in type an event of `kind` stands for, which a Python client matches on: a
/// custom stop event is a `StopEvent`, a custom request an `InputRequiredEvent`, and so on.
pub(crate) fn base_type(kind: EventKind, terminal: bool) -> Option<&'static str> {
    match kind {
        _ if terminal => Some("StopEvent"),
        EventKind::Start => Some("StartEvent"),
        EventKind::Stop => Some("StopEvent"),
        EventKind::InputRequired => Some("InputRequiredEvent"),
        EventKind::Response => Some("HumanResponseEvent"),
        EventKind::Internal => Some("InternalDispatchEvent"),
        EventKind::Plain => None,
    }
}

/// The value as Python writes it.
fn wire_value(name: &str, value: Value) -> Value {
    match name {
        _ if dict_like(name) => json!({ "_data": value }),
        "StepStateChanged" => json!({
            "name": value["step"],
            "step_state": value["state"],
            "worker_id": value["invocation"].to_string(),
            "input_event_name": value["input_event"],
            "output_event_name": value["output_event"],
        }),
        "WorkflowFailed" => json!({
            "step_name": value["step"],
            "exception": {
                "exception_type": value["error_type"]
                    .as_str()
                    .map_or_else(|| "workflows::error.WorkflowError".to_owned(), python_style_path),
                "exception_message": value["error"],
            },
            "attempts": value["attempts"],
            "elapsed_seconds": value["elapsed_seconds"],
        }),
        _ => value,
    }
}

/// `ev` as an envelope, with what the server needs to know about it; `child`, for an event a
/// child run published, is its path (`"child"` in the envelope, which the reference's clients
/// ignore), and such an event never ends the stream.
pub(crate) fn outgoing(ev: &dyn AnyEvent, child: Option<&str>) -> Outgoing {
    let name = ev.name();
    let value = ev
        .to_json()
        .unwrap_or_else(|e| json!({ "error": format!("the event failed to serialize: {e}") }));
    let kind = ev.kind();
    let terminal = child.is_none()
        && (matches!(
            name,
            "WorkflowFailed" | "WorkflowCancelled" | "WorkflowTimedOut"
        ) || kind == EventKind::Stop);
    let internal = kind == EventKind::Internal && !terminal;
    let outcome = terminal.then(|| match name {
        "WorkflowFailed" => Outcome::Failed(value["error"].as_str().unwrap_or("").to_owned()),
        "WorkflowTimedOut" => Outcome::Failed(format!(
            "the run timed out after {} ms",
            value["timeout_ms"]
        )),
        "WorkflowCancelled" => Outcome::Cancelled,
        _ => Outcome::Completed(String::new()),
    });
    let wire = wire_name(name);
    let types = match base_type(kind, terminal) {
        Some(base) if base != wire => json!([base]),
        _ => Value::Null,
    };
    let qualified = qualified_name(name, ev.type_name());
    let mut envelope = json!({
        "value": wire_value(name, value),
        "qualified_name": qualified,
        "type": wire,
        "types": types,
    });
    if let Some(path) = child {
        envelope["child"] = json!(path);
    }
    let envelope = envelope.to_string();
    let outcome = match outcome {
        Some(Outcome::Completed(_)) => Some(Outcome::Completed(envelope.clone())),
        other => other,
    };
    Outgoing {
        envelope,
        internal,
        terminal,
        outcome,
    }
}

/// Why an incoming event could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadEvent(pub String);

/// An event a client sent, before it is matched to a type: the names it gave and its value
/// (with a Python dict-like event's `_data` lifted to the top level).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Incoming {
    /// `type`: a wire name.
    pub type_name: Option<String>,
    /// `qualified_name`.
    pub qualified: Option<String>,
    /// `value` (or `data`).
    pub value: Value,
}

/// Reads an envelope `{"type": ..., "value": ...}` (or `data` for `value`, or a
/// `qualified_name`), possibly as a JSON string. `start` names the workflow's start event,
/// which may also come as its bare fields.
pub(crate) fn incoming(raw: &Value, start: Option<&str>) -> Result<Incoming, BadEvent> {
    let parsed;
    let raw = match raw {
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(v) => {
                parsed = v;
                &parsed
            }
            Err(_) => raw,
        },
        other => other,
    };
    let Value::Object(fields) = raw else {
        return Err(BadEvent(
            "Failed to deserialize event. Must be a json object, or stringified json object".into(),
        ));
    };
    // As the reference decides: a start event without `value` (and without both `type` and
    // `qualified_name`) is the start event's bare fields.
    if let Some(start) = start
        && !fields.contains_key("value")
        && !(fields.contains_key("type") && fields.contains_key("qualified_name"))
    {
        return Ok(Incoming {
            type_name: Some(wire_name(start).to_owned()),
            qualified: None,
            value: lift_data(raw.clone()),
        });
    }
    let text = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_owned);
    let incoming = Incoming {
        type_name: text("type"),
        qualified: text("qualified_name"),
        value: lift_data(
            fields
                .get("value")
                .or_else(|| fields.get("data"))
                .cloned()
                .unwrap_or(Value::Object(Map::new())),
        ),
    };
    if incoming.type_name.is_none() && incoming.qualified.is_none() {
        return Err(BadEvent(
            "Invalid client data. Must have a type or a qualified name".into(),
        ));
    }
    Ok(incoming)
}

impl Incoming {
    /// The type among `accepted` the client means, as the reference resolves it: `type` by
    /// wire name; failing that, `qualified_name` by [`qualified_name`].
    pub(crate) fn resolve<'a>(&self, accepted: &'a [EventInfo]) -> Result<&'a EventInfo, BadEvent> {
        if let Some(name) = &self.type_name
            && let Some(info) = accepted.iter().find(|i| wire_name(i.name) == name)
        {
            return Ok(info);
        }
        if let Some(qualified) = &self.qualified {
            return accepted
                .iter()
                .find(|i| qualified_name(i.name, (i.type_name)()) == *qualified)
                .ok_or_else(|| {
                    BadEvent(format!(
                        "Event type {qualified} is not declared by this workflow. Register it \
                         with Server::events(workflow, [EventInfo::of::<Type>()])."
                    ))
                });
        }
        let names: Vec<&str> = accepted.iter().map(|i| wire_name(i.name)).collect();
        Err(BadEvent(format!(
            "Invalid event type: {}. Expected one of {}",
            self.type_name.as_deref().unwrap_or_default(),
            names.join(", ")
        )))
    }

    /// The registered name the client gave, whether or not the workflow declares it: `type`,
    /// else the last part of `qualified_name`.
    pub(crate) fn registered_name(&self) -> Option<&str> {
        self.type_name
            .as_deref()
            .or_else(|| {
                self.qualified
                    .as_deref()
                    .map(|q| q.rsplit('.').next().unwrap_or(q))
            })
            .map(local_name)
    }
}

/// Moves the fields of a Python dict-like event's `_data` to the top level.
fn lift_data(value: Value) -> Value {
    match value {
        Value::Object(mut fields) => {
            if let Some(Value::Object(inner)) = fields.remove("_data") {
                for (k, v) in inner {
                    fields.entry(k).or_insert(v);
                }
            }
            Value::Object(fields)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use workflows::prelude::*;
    use workflows::{WorkflowCancelled, WorkflowIdle};

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn built_in_events_look_as_python_writes_them() {
        let out = outgoing(&InputRequiredEvent::new("Enter a number: "), None);
        assert_eq!(
            parse(&out.envelope),
            json!({"value": {"_data": {"prefix": "Enter a number: "}},
                   "qualified_name": "workflows.events.InputRequiredEvent",
                   "type": "InputRequiredEvent", "types": null})
        );
        assert!(!out.internal && !out.terminal);

        let out = outgoing(&StopEvent::new("42".to_owned()), None);
        assert_eq!(parse(&out.envelope)["value"], json!({"result": "42"}));
        assert_eq!(out.outcome, Some(Outcome::Completed(out.envelope.clone())));

        let out = outgoing(&WorkflowCancelled {}, None);
        assert_eq!(parse(&out.envelope)["type"], "WorkflowCancelledEvent");
        assert_eq!(parse(&out.envelope)["types"], json!(["StopEvent"]));
        assert_eq!(out.outcome, Some(Outcome::Cancelled));

        let out = outgoing(&WorkflowIdle {}, None);
        assert!(out.internal && !out.terminal);
        assert_eq!(
            parse(&out.envelope)["types"],
            json!(["InternalDispatchEvent"])
        );
    }

    #[test]
    fn incoming_events_take_every_form_the_python_client_sends() {
        let accepted = [
            EventInfo::of::<StartEvent>(),
            EventInfo::of::<HumanResponseEvent>(),
        ];
        let forms = [
            json!({"type": "HumanResponseEvent", "value": {"_data": {"response": "42"}}}),
            json!({"type": "HumanResponseEvent", "value": {"response": "42"}}),
            json!({"type": "HumanResponseEvent", "data": {"response": "42"}}),
            json!({"qualified_name": "workflows.events.HumanResponseEvent", "value": {"response": "42"}}),
            json!({"type": "Nope", "qualified_name": "workflows.events.HumanResponseEvent", "value": {"response": "42"}}),
            json!("{\"type\": \"HumanResponseEvent\", \"value\": {\"response\": \"42\"}}"),
        ];
        for form in forms {
            let sent = incoming(&form, None).unwrap();
            assert_eq!(
                sent.resolve(&accepted).unwrap().name,
                "HumanResponseEvent",
                "{form}"
            );
            assert_eq!(sent.value, json!({"response": "42"}), "{form}");
        }
        let bare = incoming(&json!({"name": "Ada"}), Some("Greet")).unwrap();
        assert_eq!(bare.type_name.as_deref(), Some("Greet"));
        assert_eq!(bare.value, json!({"name": "Ada"}));
        let bare = incoming(&json!({"_data": {"topic": "x"}}), Some("StartEvent")).unwrap();
        assert_eq!(bare.value, json!({"topic": "x"}));
        assert!(incoming(&json!([1]), None).is_err());
        assert!(incoming(&json!({"value": {}}), None).is_err());
    }

    #[test]
    fn an_event_the_workflow_does_not_take_is_named_with_what_it_takes() {
        let accepted = [
            EventInfo::of::<StartEvent>(),
            EventInfo::of::<HumanResponseEvent>(),
        ];
        let unknown = incoming(&json!({"type": "Vote", "value": {}}), None).unwrap();
        assert_eq!(
            unknown.resolve(&accepted).unwrap_err().0,
            "Invalid event type: Vote. Expected one of StartEvent, HumanResponseEvent"
        );
        assert_eq!(unknown.registered_name(), Some("Vote"));
        let elsewhere = incoming(
            &json!({"qualified_name": "other::mod.Vote", "value": {}}),
            None,
        )
        .unwrap();
        assert!(
            elsewhere
                .resolve(&accepted)
                .unwrap_err()
                .0
                .starts_with("Event type other::mod.Vote is not declared by this workflow.")
        );
        assert_eq!(elsewhere.registered_name(), Some("Vote"));
    }

    #[test]
    fn qualified_names_are_the_module_path_a_dot_and_the_name() {
        assert_eq!(
            qualified_name("Decision", "my_app::review::Decision"),
            "my_app::review.Decision"
        );
        assert_eq!(
            qualified_name("StopEvent", "workflows::events::StopEvent<u32>"),
            "workflows.events.StopEvent"
        );
        assert_eq!(
            qualified_name("Renamed", "app::Original<app::Inner>"),
            "app.Renamed"
        );
        assert_eq!(
            python_style_path("my_app::errors::Kaput"),
            "my_app::errors.Kaput"
        );
        assert_eq!(
            python_style_path("alloc::string::String"),
            "alloc::string.String"
        );
        assert_eq!(python_style_path("panic"), "panic");
    }
}
