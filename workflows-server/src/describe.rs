//! What `/workflows/{name}/schema`, `/events` and `/representation` say about a workflow.

use serde_json::{Value, json};
use workflows::graph::{EdgeKind, Graph};
use workflows::{EventInfo, EventKind};

use crate::envelope::{base_type, wire_name};

/// The JSON Schema of the event type `info` describes ([`Event::schema`](workflows::Event::schema):
/// derived from the type's fields), titled with its wire name.
pub(crate) fn event_schema(info: &EventInfo) -> Value {
    let mut schema = (info.schema)();
    if let Value::Object(fields) = &mut schema {
        fields.insert(
            "title".into(),
            Value::String(wire_name(info.name).to_owned()),
        );
    }
    schema
}

/// The start and stop event types of `graph`.
pub(crate) fn start_and_stop(graph: &Graph) -> (Option<EventInfo>, Option<EventInfo>) {
    let find = |kind| graph.events().iter().find(|e| e.kind == kind).copied();
    (find(EventKind::Start), find(EventKind::Stop))
}

/// The graph in the reference's `WorkflowGraph` shape: step, event and external nodes, and
/// edges from events to the steps that take them and from steps to the events they emit.
pub(crate) fn representation(graph: &Graph) -> Value {
    let mut nodes = Vec::new();
    for step in graph.steps() {
        nodes.push(json!({
            "id": step.name, "label": step.name, "node_type": "step", "description": null,
        }));
    }
    let mut edges = Vec::new();
    let mut needs_external = false;
    for info in graph.events() {
        let produced_by: Vec<&str> = graph
            .edges()
            .iter()
            .filter(|e| {
                e.to == info.name
                    && matches!(
                        e.kind,
                        EdgeKind::Returns | EdgeKind::Sends | EdgeKind::FansOut
                    )
            })
            .map(|e| e.from.as_str())
            .collect();
        let name = wire_name(info.name);
        let mut event_types = vec![name];
        event_types.extend(base_type(info.kind, false).filter(|b| *b != name));
        nodes.push(json!({
            "id": name,
            "label": name,
            "node_type": "event",
            "event_type": name,
            "event_types": event_types,
            "event_schema": event_schema(info),
            "produced_by": produced_by,
        }));
        match info.kind {
            EventKind::InputRequired => {
                needs_external = true;
                edges.push(json!({"source": name, "target": "external_step", "label": null}));
            }
            EventKind::Response => {
                needs_external = true;
                edges.push(json!({"source": "external_step", "target": name, "label": null}));
            }
            _ => {}
        }
    }
    for edge in graph.edges() {
        // The reference's representation links steps and events only: an answer's link to
        // its request goes through `external_step`, and a join's binding is left out.
        if !matches!(edge.kind, EdgeKind::AnsweredBy | EdgeKind::JoinedBy) {
            edges.push(json!({
                "source": wire_name(&edge.from),
                "target": wire_name(&edge.to),
                "label": null,
            }));
        }
    }
    if needs_external {
        nodes.push(json!({
            "id": "external_step", "label": "external_step", "node_type": "external",
        }));
    }
    json!({
        "name": graph.name(),
        "nodes": nodes,
        "edges": edges,
        "description": null,
    })
}
