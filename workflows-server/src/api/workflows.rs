//! `/health` and `/workflows/...`: listing, describing and starting workflows.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{ApiError, ApiResult, checked_handler_id, handler_json, json_body};
use crate::describe::{event_schema, representation as graph_json, start_and_stop};
use crate::engine::{Engine, StartError};
use crate::envelope::{incoming, qualified_name};
use crate::served::Served;
use crate::storage::{HandlerRecord, Status};

/// Healthy when the store answers; 503 otherwise, so that a load balancer stops sending
/// requests to a server that cannot reach its runs.
pub(crate) async fn health(State(engine): State<Arc<Engine>>) -> Response {
    match engine.is_healthy().await {
        true => Json(json!({ "status": "healthy" })).into_response(),
        false => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unhealthy" })),
        )
            .into_response(),
    }
}

pub(crate) async fn list(State(engine): State<Arc<Engine>>) -> Json<Value> {
    Json(json!({ "workflows": engine.workflow_names() }))
}

fn served(engine: &Engine, name: &str) -> ApiResult<Arc<dyn Served>> {
    engine
        .workflow(name)
        .cloned()
        .ok_or_else(|| ApiError::not_found("Workflow not found"))
}

/// Reads a run request and starts the run.
async fn start(
    engine: &Arc<Engine>,
    name: &str,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<HandlerRecord> {
    let served = served(engine, name)?;
    let body = json_body(body)?;
    let Value::Object(body) = body else {
        return Err(ApiError::bad_request(
            "Error processing request body: the body must be a JSON object",
        ));
    };
    if body.get("context").is_some_and(|c| !is_empty(c)) {
        return Err(ApiError::bad_request(
            "Context API is disabled: a run starts from its start event; resume a stored run by sending it events",
        ));
    }
    let handler_id = match body.get("handler_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(
            checked_handler_id(id)
                .map_err(|e| {
                    ApiError::bad_request(format!("Error processing request body: {}", e.detail()))
                })?
                .to_owned(),
        ),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Error processing request body: `handler_id` must be a non-empty string, got {other}"
            )));
        }
    };
    let start_name = served.start_name();
    // As the reference reads it: `start_event`, else `kwargs`; null means the default.
    let raw = match body.get("start_event").or_else(|| body.get("kwargs")) {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(raw) => raw.clone(),
    };
    let invalid = |e: crate::envelope::BadEvent| {
        ApiError::bad_request(format!("Validation error for 'start_event': {}", e.0))
    };
    let sent = incoming(&raw, Some(start_name)).map_err(invalid)?;
    let accepted = engine.accepted_events(name);
    let info = sent.resolve(accepted).map_err(invalid)?;
    if info.name != start_name {
        let start_type = accepted
            .iter()
            .find(|i| i.name == start_name)
            .map_or("", |i| (i.type_name)());
        return Err(ApiError::bad_request(format!(
            "Start event must be an instance of <class '{}'>",
            qualified_name(start_name, start_type)
        )));
    }
    let (event, data) = (info.name, sent.value);
    engine
        .start(name, event, data, handler_id)
        .await
        .map_err(|e| match e {
            StartError::BadStart(message) => {
                ApiError::bad_request(format!("Validation error for 'start_event': {message}"))
            }
            StartError::AlreadyRunning(id) => ApiError::new(
                StatusCode::CONFLICT,
                format!("Handler '{id}' is already running"),
            ),
            StartError::Storage(e) => e.into(),
            StartError::NotTakingRuns => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server takes no new runs right now (it is shutting down, or cannot reach \
                 its store); start the run on another server or retry shortly",
            ),
        })
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(_) => false,
    }
}

pub(crate) async fn run_nowait(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let record = start(&engine, &name, body).await?;
    Ok(Json(handler_json(&record)))
}

pub(crate) async fn run(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let record = start(&engine, &name, body).await?;
    let ended = engine
        .wait_ended(&record.handler_id, None)
        .await?
        .ok_or_else(|| ApiError::not_found("Handler not found"))?;
    let status = match ended.status {
        Status::Completed => StatusCode::OK,
        Status::Running => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "The server is shutting down; the run goes on: follow it with GET /handlers/{}",
                    ended.handler_id
                ),
            ));
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Ok((status, Json(handler_json(&ended))).into_response())
}

pub(crate) async fn schema(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let graph = served(&engine, &name)?.graph();
    let (start, stop) = start_and_stop(&graph);
    let schema = |info: Option<workflows::EventInfo>| {
        info.map_or_else(|| json!({"type": "object"}), |i| event_schema(&i))
    };
    Ok(Json(
        json!({ "start": schema(start), "stop": schema(stop) }),
    ))
}

pub(crate) async fn events(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    if engine.workflow(&name).is_none() {
        // The reference words this route's 404 differently from the others.
        return Err(ApiError::not_found(format!("Workflow '{name}' not found")));
    }
    let events: Vec<Value> = engine
        .accepted_events(&name)
        .iter()
        .map(event_schema)
        .collect();
    Ok(Json(json!({ "events": events })))
}

pub(crate) async fn representation(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let graph = served(&engine, &name)?.graph();
    Ok(Json(json!({ "graph": graph_json(&graph) })))
}

/// The workflow's graph drawn as SVG ([`Graph::to_svg`](workflows::graph::Graph::to_svg)),
/// laid out by the server: no renderer needed in the page.
pub(crate) async fn graph_svg(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let svg = served(&engine, &name)?.graph().to_svg();
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "image/svg+xml"),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        svg,
    )
        .into_response())
}
