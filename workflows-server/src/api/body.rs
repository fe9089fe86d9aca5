//! Request bodies are read whole, within a size limit and a deadline, before a route sees
//! them: a client that trickles its body is answered `408` when the deadline passes (a
//! deadline between reads alone would let one byte every few seconds hold a connection
//! forever), and one that sends too much gets `413` as soon as it passes the limit.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::ApiError;

/// The limits of one server's request bodies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The largest body accepted, in bytes.
    pub(crate) max_bytes: usize,
    /// How long the whole body may take to arrive.
    pub(crate) deadline: Duration,
}

/// Reads the request's body whole, then hands the request on with it.
pub(crate) async fn read_whole(
    State(limits): State<Limits>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let read = Limited::new(body, limits.max_bytes).collect();
    let bytes = match tokio::time::timeout(limits.deadline, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) if error.is::<LengthLimitError>() => {
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
                .into_response();
        }
        Ok(Err(error)) => {
            return ApiError::bad_request(format!("Error processing request: {error}"))
                .into_response();
        }
        Err(_) => {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "The request body did not arrive within {:?}",
                    limits.deadline
                ),
            )
            .into_response();
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
