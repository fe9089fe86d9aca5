//! `/events/{handler_id}`: a run's published events as SSE or NDJSON (GET), and events sent
//! into a run (POST).

use std::collections::VecDeque;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::time::Instant;
use workflows::EventKind;

use super::{ApiError, ApiResult, Params, json_body, load, params};
use crate::engine::{EVENT_BATCH, Engine, decode_event};
use crate::envelope::incoming;
use crate::storage::ErrorChain;
use crate::storage::{InboxItem, StoredEvent};

fn flag(params: &[(String, String)], name: &str, default: bool) -> bool {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map_or(default, |(_, v)| v.eq_ignore_ascii_case("true"))
}

pub(crate) async fn send(
    State(engine): State<Arc<Engine>>,
    Path(handler_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body = json_body(body)?;
    let event = body
        .get("event")
        .filter(|e| !matches!(e, Value::Null) && **e != json!({}) && **e != json!(""))
        .ok_or_else(|| ApiError::bad_request("Event data is required"))?;
    let step = match body.get("step") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`step` must be a string, got {other}"
            )));
        }
    };
    // Our extension: the child run an answer is for (`"child": "Review/0"`), as the stream
    // marks the request it answers.
    let child = match body.get("child") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`child` must be a child run's path such as \"Review/0\", got {other}"
            )));
        }
    };
    if child.is_some() && step.is_some() {
        return Err(ApiError::bad_request(
            "give `step` or `child`, not both: a step is named within the run that takes the event",
        ));
    }
    let record = load(&engine, &handler_id).await?;
    if record.status.is_terminal() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Workflow already completed",
        ));
    }
    let sent = incoming(event, None).map_err(|e| ApiError::bad_request(e.0))?;
    let accepted = engine.accepted_events(&record.workflow_name);
    let (name, decoded) = match sent.resolve(accepted) {
        Ok(info) => (
            info.name.to_owned(),
            decode_event(info.name, sent.value.clone()).map_err(ApiError::bad_request)?,
        ),
        // Not a type the workflow declares: still taken if a step waits for it inside (a
        // `wait_for_event` the graph cannot see), which the reference would refuse.
        Err(refused) => {
            let waited = match sent.registered_name() {
                Some(name) => match workflows::registry::decode(name, sent.value.clone()) {
                    Some(Ok(ev)) => engine
                        .waits_for(&handler_id, &*ev, step.as_deref())
                        .await?
                        .then_some((name.to_owned(), ev)),
                    _ => None,
                },
                None => None,
            };
            waited.ok_or_else(|| ApiError::bad_request(refused.0))?
        }
    };
    if decoded.kind() == EventKind::Internal {
        return Err(ApiError::bad_request(format!(
            "`{name}` is published by the runtime and cannot be sent into a run"
        )));
    }
    if let (Some(step), Some(served)) = (&step, engine.workflow(&record.workflow_name))
        && !served.step_names().contains(&step.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "Workflow '{}' has no step '{step}'",
            record.workflow_name
        )));
    }
    let data = sent.value;
    engine
        .deliver(
            &handler_id,
            InboxItem::Event {
                name,
                data,
                step,
                child,
            },
        )
        .await?;
    Ok(Json(json!({ "status": "sent" })))
}

/// What a stream reader has said it wants, and where it is.
struct Follow {
    engine: Arc<Engine>,
    handler_id: String,
    run_id: String,
    cursor: i64,
    include_internal: bool,
    include_qualified_name: bool,
    sse: bool,
    pending: VecDeque<Bytes>,
    done: bool,
    next_beat: Option<Instant>,
}

impl Follow {
    fn frame(&self, ev: &StoredEvent) -> Bytes {
        let envelope = if self.include_qualified_name {
            ev.envelope.clone()
        } else {
            let mut v: Value = serde_json::from_str(&ev.envelope).unwrap_or(Value::Null);
            v["qualified_name"] = Value::Null;
            v.to_string()
        };
        Bytes::from(if self.sse {
            format!("id: {}\ndata: {envelope}\n\n", ev.sequence)
        } else {
            format!("{envelope}\n")
        })
    }

    fn beat_after(&self) -> Option<Instant> {
        self.engine
            .config()
            .heartbeat
            .filter(|_| self.sse)
            .map(|d| Instant::now() + d)
    }

    /// The next chunk of the response; `None` when the run's stream has ended. When the
    /// server shuts down, an error: the connection is cut rather than closed cleanly, so
    /// that a client reconnects (from its last sequence number, to another server) instead
    /// of taking the stream for finished.
    async fn next(mut self) -> Option<(std::io::Result<Bytes>, Follow)> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                return Some((Ok(chunk), self));
            }
            if self.done {
                return None;
            }
            if self.engine.is_closing() {
                self.done = true;
                let cut = std::io::Error::other("the server is shutting down; reconnect");
                return Some((Err(cut), self));
            }
            // Armed before the read: a change after it still ends the wait below.
            let watch = self.engine.watch(&self.handler_id);
            let events = match self
                .engine
                .events_after(&self.handler_id, &self.run_id, self.cursor, EVENT_BATCH)
                .await
            {
                Ok(events) => events,
                Err(e) => {
                    tracing::error!(handler = %self.handler_id, "reading events failed: {}", ErrorChain(&e));
                    return None;
                }
            };
            if !events.is_empty() {
                for ev in &events {
                    self.cursor = ev.sequence as i64;
                    if !ev.internal || self.include_internal {
                        let frame = self.frame(ev);
                        self.pending.push_back(frame);
                    }
                    if ev.terminal {
                        self.done = true;
                        break;
                    }
                }
                self.next_beat = self.beat_after();
                continue;
            }
            if !watch.is_here() {
                // Held elsewhere or parked: make sure the handler still exists, and stop once
                // it has ended and every event it stored was read.
                match self.engine.handler(&self.handler_id).await {
                    Ok(Some(r)) if r.run_id == self.run_id && !r.status.is_terminal() => {}
                    Ok(Some(r)) if r.run_id == self.run_id => {
                        let rest = self
                            .engine
                            .events_after(&self.handler_id, &self.run_id, self.cursor, 1)
                            .await
                            .unwrap_or_default();
                        if rest.is_empty() {
                            return None;
                        }
                        continue;
                    }
                    _ => return None,
                }
            }
            let beat = async {
                match self.next_beat {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            // A run in memory here wakes its readers when it stores events or leaves memory;
            // only a run held elsewhere or parked is looked at again after a while.
            tokio::select! {
                () = watch.changed() => {}
                () = beat => {
                    self.pending.push_back(Bytes::from_static(b": heartbeat\n\n"));
                    self.next_beat = self.beat_after();
                }
            }
        }
    }
}

pub(crate) async fn stream(
    State(engine): State<Arc<Engine>>,
    Path(handler_id): Path<String>,
    query: Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let params = params(query)?;
    let sse = flag(&params, "sse", true);
    let after_text = params
        .iter()
        .rev()
        .find(|(k, _)| k == "after_sequence")
        .map_or("now", |(_, v)| v.as_str());
    let mut after: Option<i64> = if after_text.eq_ignore_ascii_case("now") {
        None
    } else {
        Some(after_text.parse().map_err(|_| {
            ApiError::bad_request(format!("Invalid after_sequence: '{after_text}'"))
        })?)
    };
    if sse
        && let Some(id) = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    {
        after = Some(id);
    }
    let record = load(&engine, &handler_id).await?;
    let last = engine.last_sequence(&record.run_id).await?;
    let after = after.unwrap_or_else(|| last.map_or(-1, |s| s as i64));
    let nothing_left = last.is_none_or(|l| l as i64 <= after);
    if nothing_left {
        let ended_in_log = match last {
            Some(l) => engine
                .events_after(&handler_id, &record.run_id, l as i64 - 1, 1)
                .await?
                .first()
                .is_some_and(|e| e.terminal),
            None => false,
        };
        if record.status.is_terminal() || ended_in_log {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
    }
    let follow = Follow {
        handler_id,
        run_id: record.run_id,
        cursor: after,
        include_internal: flag(&params, "include_internal", false),
        include_qualified_name: flag(&params, "include_qualified_name", true),
        sse,
        pending: VecDeque::new(),
        done: false,
        next_beat: None,
        engine,
    };
    let follow = Follow {
        next_beat: follow.beat_after(),
        ..follow
    };
    let chunks = futures_util::stream::unfold(follow, Follow::next);
    let content_type = if sse {
        "text/event-stream; charset=utf-8"
    } else {
        "application/x-ndjson"
    };
    let mut response = Body::from_stream(chunks).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}
