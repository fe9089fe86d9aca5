//! The HTTP API: the routes and JSON shapes of llama-agents-server 0.8.0.

mod access;
mod body;
mod events;
mod handlers;
mod inbox;
mod workflows;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::Query;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};

use crate::config::Cors;

use crate::clock::iso;
use crate::engine::Engine;
use crate::storage::{ErrorChain, HandlerRecord, StorageError};

/// An error answer: a status and `{"detail": ...}`, as the reference sends.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    detail: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: detail.into(),
        }
    }

    /// What the answer says.
    pub(crate) fn detail(&self) -> &str {
        &self.detail
    }

    pub(crate) fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }
}

impl From<StorageError> for ApiError {
    /// A 500 that says what failed; the database's own words (which may name hosts, tables
    /// or values) go to the server's log, not to the client.
    fn from(e: StorageError) -> Self {
        tracing::error!("answering a request failed: {}", ErrorChain(&e));
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Internal server error: {e}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "detail": self.detail }))).into_response()
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// A query string as its (repeatable) pairs.
pub(crate) type Params = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// The query's pairs; 400 when the query cannot be read.
pub(crate) fn params(query: Params) -> ApiResult<Vec<(String, String)>> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("Invalid query: {}", e.body_text())))
}

/// The longest handler id accepted, in bytes.
pub(crate) const MAX_HANDLER_ID: usize = 256;

/// `id` if it can name a handler: 1 to [`MAX_HANDLER_ID`] bytes, no control characters (a
/// NUL, a newline); a 400 that says so otherwise.
pub(crate) fn checked_handler_id(id: &str) -> ApiResult<&str> {
    if id.is_empty() || id.len() > MAX_HANDLER_ID {
        return Err(ApiError::bad_request(format!(
            "Invalid handler id: it must be 1 to {MAX_HANDLER_ID} bytes long, got {}",
            id.len()
        )));
    }
    if let Some(c) = id.chars().find(|c| c.is_control()) {
        return Err(ApiError::bad_request(format!(
            "Invalid handler id: it must not hold control characters, found {c:?}"
        )));
    }
    Ok(id)
}

/// The handler `handler_id`; 404 when there is none, 400 when the id cannot name one.
pub(crate) async fn load(engine: &Engine, handler_id: &str) -> ApiResult<HandlerRecord> {
    checked_handler_id(handler_id)?;
    engine
        .handler(handler_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Handler not found"))
}

/// The request body as JSON: 413 past the size limit, 400 when it is not JSON.
pub(crate) fn json_body(body: Result<Bytes, BytesRejection>) -> ApiResult<Value> {
    let bytes = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "Request body too large")
        } else {
            ApiError::new(
                status,
                format!("Error processing request: {}", rejection.body_text()),
            )
        }
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON body: {e}")))
}

/// A handler as the reference writes it.
pub(crate) fn handler_json(r: &HandlerRecord) -> Value {
    json!({
        "handler_id": r.handler_id,
        "workflow_name": r.workflow_name,
        "run_id": r.run_id,
        "error": r.error,
        "result": r.result.as_deref().and_then(|t| serde_json::from_str::<Value>(t).ok()),
        "result_unreadable": false,
        "status": r.status.as_str(),
        "started_at": iso(r.started_at),
        "updated_at": iso(r.updated_at),
        "completed_at": r.completed_at.map(iso),
    })
}

/// The status code for a handler: 200 completed, 202 running, 500 otherwise.
pub(crate) fn handler_status(r: &HandlerRecord) -> StatusCode {
    match r.status {
        crate::storage::Status::Running => StatusCode::ACCEPTED,
        crate::storage::Status::Completed => StatusCode::OK,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The CORS layer for `cors` (`Origins` were checked when the server started): none for the
/// same origin only; credentials for listed origins; never a wildcard with credentials.
fn cors_layer(cors: &Cors) -> Option<CorsLayer> {
    let layer = CorsLayer::new()
        .allow_methods(AllowMethods::mirror_request())
        .allow_headers(AllowHeaders::mirror_request());
    match cors {
        Cors::SameOrigin | Cors::Off => None,
        Cors::AnyOrigin => Some(layer.allow_origin(AllowOrigin::any())),
        Cors::Origins(list) => Some(
            layer
                .allow_origin(AllowOrigin::list(
                    list.iter().filter_map(|o| o.parse().ok()),
                ))
                .allow_credentials(true),
        ),
    }
}

/// Every route, on `engine`, with `page` served at `/` if given. `listening` is the address the
/// server listens on when it binds one itself (see [`access::Access::new`]).
pub(crate) fn router(
    engine: Arc<Engine>,
    page: Option<&'static str>,
    listening: Option<std::net::SocketAddr>,
) -> Router {
    let max_body = engine.config().max_body_bytes;
    let cors = cors_layer(&engine.config().cors);
    let access = access::Access::new(engine.config(), listening);
    let mut router = Router::new()
        .route("/workflows", get(workflows::list))
        .route("/workflows/{name}/run", post(workflows::run))
        .route("/workflows/{name}/run-nowait", post(workflows::run_nowait))
        .route("/workflows/{name}/schema", get(workflows::schema))
        .route("/workflows/{name}/events", get(workflows::events))
        .route(
            "/workflows/{name}/representation",
            get(workflows::representation),
        )
        .route("/workflows/{name}/graph.svg", get(workflows::graph_svg))
        .route("/results/{handler_id}", get(handlers::result))
        .route(
            "/events/{handler_id}",
            get(events::stream).post(events::send),
        )
        .route("/handlers", get(handlers::list))
        .route("/inbox", get(inbox::list))
        .route("/handlers/{handler_id}", get(handlers::get))
        .route("/handlers/{handler_id}/cancel", post(handlers::cancel))
        // Above: what needs a token (when the server has tokens). Below: what anyone may ask.
        .route_layer(axum::middleware::from_fn_with_state(
            access.clone(),
            access::authenticate,
        ))
        .route("/health", get(workflows::health));
    if let Some(page) = page {
        router = router.route("/", get(move || async move { Html(page) }));
    }
    let router = router
        .fallback(|| async { ApiError::not_found("Not Found") })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            body::Limits {
                max_bytes: max_body,
                deadline: engine.config().body_timeout,
            },
            body::read_whole,
        ))
        .layer(axum::middleware::from_fn_with_state(access, access::screen));
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
    .with_state(engine)
}
