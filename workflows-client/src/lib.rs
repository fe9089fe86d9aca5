//! A Rust client for the HTTP API of `workflows-server`, which is also the API of
//! `llama-agents-server` 0.8.0: start runs, follow their events as a stream that reconnects
//! from its last sequence number, answer them with typed events, list, wait, cancel and purge.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use workflows::prelude::*;
//! use workflows_client::{Client, HandlerQuery, RunRequest, Status};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), workflows_client::ClientError> {
//! let client = Client::new("http://127.0.0.1:8080")?;
//!
//! // Start a run, answer its question, and wait for its result.
//! let run = client.run_nowait("number", RunRequest::new()).await?;
//! let mut events = client.events(&run.handler_id).stream();
//! while let Some(ev) = events.next().await {
//!     if ev?.is::<InputRequiredEvent>() {
//!         client.send(&run.handler_id, &HumanResponseEvent::new("42")).await?;
//!     }
//! }
//! let done = client.wait(&run.handler_id).await?;
//! assert_eq!(done.status, Status::Completed);
//!
//! // Every run still waiting for someone.
//! let waiting = client.handlers(&HandlerQuery::new().status(Status::Running)).await?;
//! println!("{} runs waiting", waiting.len());
//! # Ok(())
//! # }
//! ```
//!
//! Errors are [`ClientError`]s: a refusal carries the server's status and `detail`, as the
//! server wrote them. For settings of your own (an `Authorization` header, timeouts), build a
//! [`reqwest::Client`] and hand it to [`Client::with_http_client`].

mod client;
mod error;
mod events;
mod wire;

pub use client::{Client, WorkflowSchema};
pub use error::ClientError;
pub use events::{EventStream, Events};
pub use wire::{HandlerInfo, HandlerQuery, RunRequest, Status, WireEvent};

/// The HTTP client underneath, for [`Client::with_http_client`].
pub use reqwest;
