//! `/handlers/...` and the deprecated `/results/{id}`: what became of runs, and cancelling them.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{
    ApiError, ApiResult, Params, checked_handler_id, handler_json, handler_status, load, params,
};
use crate::engine::{CancelOutcome, Engine};
use crate::storage::{HandlerFilter, Status};

/// The non-blank values of a repeatable parameter; `None` when there are none.
fn list_param(params: &[(String, String)], name: &str) -> Option<Vec<String>> {
    let values: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    (!values.is_empty()).then_some(values)
}

pub(crate) async fn list(
    State(engine): State<Arc<Engine>>,
    query: Params,
) -> ApiResult<Json<Value>> {
    let params = params(query)?;
    let filter = HandlerFilter {
        // Unknown statuses match nothing, as in the reference.
        status_in: list_param(&params, "status")
            .map(|v| v.iter().filter_map(|s| Status::parse(s)).collect()),
        workflow_name_in: list_param(&params, "workflow_name"),
    };
    let handlers: Vec<Value> = engine
        .handlers(filter)
        .await?
        .iter()
        .map(handler_json)
        .collect();
    Ok(Json(json!({ "handlers": handlers })))
}

pub(crate) async fn get(
    State(engine): State<Arc<Engine>>,
    Path(handler_id): Path<String>,
) -> ApiResult<Response> {
    let record = load(&engine, &handler_id).await?;
    Ok((handler_status(&record), Json(handler_json(&record))).into_response())
}

/// Deprecated in the reference; kept for old clients: the result unwrapped from a plain
/// `StopEvent`.
pub(crate) async fn result(
    State(engine): State<Arc<Engine>>,
    Path(handler_id): Path<String>,
) -> ApiResult<Response> {
    let record = load(&engine, &handler_id).await?;
    let mut body = handler_json(&record);
    let result = body["result"].take();
    body["result"] = if result["type"] == "StopEvent" {
        result["value"]["result"].clone()
    } else if result.is_null() {
        Value::Null
    } else {
        result["value"].clone()
    };
    Ok((handler_status(&record), Json(body)).into_response())
}

pub(crate) async fn cancel(
    State(engine): State<Arc<Engine>>,
    Path(handler_id): Path<String>,
    query: Params,
) -> ApiResult<Json<Value>> {
    let params = params(query)?;
    let purge = params
        .iter()
        .any(|(k, v)| k == "purge" && v.eq_ignore_ascii_case("true"));
    checked_handler_id(&handler_id)?;
    match engine.cancel(&handler_id, purge).await? {
        CancelOutcome::Cancelled => Ok(Json(json!({ "status": "cancelled" }))),
        CancelOutcome::Deleted => Ok(Json(json!({ "status": "deleted" }))),
        CancelOutcome::NotFound => Err(ApiError::not_found("Handler not found")),
    }
}
