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
    let last = |name: &str| {
        params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let limit = last("limit")
        .map(|text| {
            text.parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "Invalid limit: '{text}'; give a number from 1 to {MAX_PAGE}"
                    ))
                })
        })
        .transpose()?;
    let after = last("cursor")
        .filter(|c| !c.is_empty())
        .map(|cursor| {
            read_cursor(cursor).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Invalid cursor: '{cursor}'; pass the next_cursor of the previous page"
                ))
            })
        })
        .transpose()?;
    let filter = HandlerFilter {
        // Unknown statuses match nothing, as in the reference.
        status_in: list_param(&params, "status")
            .map(|v| v.iter().filter_map(|s| Status::parse(s)).collect()),
        workflow_name_in: list_param(&params, "workflow_name"),
        after,
        // One more than asked: whether there is a next page.
        limit: limit.map(|n| n + 1),
    };
    let mut records = engine.handlers(filter).await?;
    let Some(limit) = limit else {
        // As the reference answers: every handler, no paging.
        let handlers: Vec<Value> = records.iter().map(handler_json).collect();
        return Ok(Json(json!({ "handlers": handlers })));
    };
    let more = records.len() > limit;
    records.truncate(limit);
    let next_cursor = more.then(|| records.last().map(write_cursor)).flatten();
    let handlers: Vec<Value> = records.iter().map(handler_json).collect();
    Ok(Json(
        json!({ "handlers": handlers, "next_cursor": next_cursor }),
    ))
}

/// The most handlers one page of `GET /handlers?limit=` holds.
pub(crate) const MAX_PAGE: usize = 1000;

/// A page's cursor: where the last handler of the page stands in the listing's order
/// (`{started_at}.{handler_id}`). Opaque to clients.
fn write_cursor(last: &crate::storage::HandlerRecord) -> String {
    format!("{}.{}", last.started_at, last.handler_id)
}

fn read_cursor(cursor: &str) -> Option<(i64, String)> {
    let (started_at, handler_id) = cursor.split_once('.')?;
    Some((started_at.parse().ok()?, handler_id.to_owned()))
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
