//! `/inbox`: every run that waits for a person, across workflows, the longest waiting first,
//! with the input requests it waits to have answered. Not a route of the reference server:
//! the console's inbox reads it.
//!
//! A run waits for a person when it is running and its latest snapshot lists open input
//! requests ([`Snapshot::open_requests`](workflows::Snapshot::open_requests)): the prompts of
//! its waits and the requests its steps returned that no answer has been sent for, its child
//! runs' included. (Such a run is usually idle, but need not be: other branches may still
//! work, or wait for a worker.) The longest waiting first: by when it became idle, else by
//! its last change.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{ApiError, ApiResult, Params, params};
use crate::clock::iso;
use crate::engine::Engine;
use crate::envelope::outgoing;
use crate::storage::{HandlerFilter, Status};

/// At most this many runs in one answer, by default and at most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

pub(crate) async fn list(
    State(engine): State<Arc<Engine>>,
    query: Params,
) -> ApiResult<Json<Value>> {
    let params = params(query)?;
    let limit = match params.iter().rev().find(|(k, _)| k == "limit") {
        None => DEFAULT_LIMIT,
        Some((_, text)) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Invalid limit: '{text}'; give a number from 1 to {MAX_LIMIT}"
                ))
            })?,
    };
    let only: Option<String> = params
        .iter()
        .rev()
        .find(|(k, v)| k == "handler_id" && !v.is_empty())
        .map(|(_, v)| v.clone());
    let workflows: Option<Vec<String>> = {
        let names: Vec<String> = params
            .iter()
            .filter(|(k, v)| k == "workflow_name" && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect();
        (!names.is_empty()).then_some(names)
    };
    let mut running = match &only {
        // One run's page asks for its own requests: read that handler alone.
        Some(only) => engine
            .handler(only)
            .await?
            .into_iter()
            .filter(|r| {
                r.status == Status::Running
                    && workflows
                        .as_ref()
                        .is_none_or(|names| names.contains(&r.workflow_name))
            })
            .collect(),
        None => {
            engine
                .handlers(HandlerFilter {
                    status_in: Some(vec![Status::Running]),
                    workflow_name_in: workflows,
                    ..HandlerFilter::default()
                })
                .await?
        }
    };
    running.sort_by_key(|r| (r.idle_since.unwrap_or(r.updated_at), r.handler_id.clone()));
    let mut runs = Vec::new();
    for record in running {
        if runs.len() == limit {
            break;
        }
        let Some(snapshot) = engine
            .run_state(&record.handler_id)
            .await?
            .and_then(|state| state.snapshot)
            .and_then(|text| serde_json::from_str::<workflows::Snapshot>(&text).ok())
        else {
            continue;
        };
        let requests: Vec<Value> = snapshot
            .open_requests()
            .into_iter()
            .filter_map(request_json)
            .collect();
        if requests.is_empty() {
            continue;
        }
        runs.push(json!({
            "handler_id": record.handler_id,
            "workflow_name": record.workflow_name,
            "run_id": record.run_id,
            "started_at": iso(record.started_at),
            "waiting_since": iso(record.idle_since.unwrap_or(record.updated_at)),
            "requests": requests,
        }));
    }
    Ok(Json(json!({ "runs": runs })))
}

/// One open request as the inbox lists it: the request as the stream carries it, and the type
/// (with its JSON Schema) and requirements of the answer. `None` for a request whose type this
/// binary does not register (it could not be shown).
fn request_json(request: workflows::OpenRequest) -> Option<Value> {
    let event = workflows::registry::decode(&request.event.name, request.event.data)?.ok()?;
    let envelope: Value =
        serde_json::from_str(&outgoing(&*event, request.child.as_deref()).envelope).ok()?;
    let response = request.response.as_deref().map(|name| {
        let schema = workflows::registry::info_of(name).map(|info| (info.schema)());
        json!({ "type": crate::envelope::wire_name(name), "schema": schema })
    });
    Some(json!({
        "sequence": request.seq,
        "child": request.child,
        "event": envelope,
        "response": response,
        "requirements": request.requirements,
        "waiter_id": request.waiter_id,
    }))
}
