//! [`Client`]: one method per route of the API.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use workflows::Event;

use crate::events::Events;
use crate::wire::envelope;
use crate::{ClientError, HandlerInfo, HandlerQuery, RunRequest};

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The wait between two looks at a run [`Client::wait`] is following, when its stream
/// ended before the run's status did; it doubles up to a second.
const WAIT_POLL: Duration = Duration::from_millis(10);

/// A client of a `workflows-server` (or `llama-agents-server`) at one address. Cloning it is
/// cheap; clones share their connections.
///
/// ```no_run
/// use futures_util::StreamExt;
/// use workflows::prelude::*;
/// use workflows_client::{Client, RunRequest};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), workflows_client::ClientError> {
/// let client = Client::new("http://127.0.0.1:8080")?;
/// let run = client.run_nowait("number", RunRequest::new()).await?;
/// let mut events = client.events(&run.handler_id).stream();
/// while let Some(ev) = events.next().await {
///     let ev = ev?;
///     if let Ok(prompt) = ev.decode::<InputRequiredEvent>() {
///         println!("{}", prompt.prefix);
///         client.send(&run.handler_id, &HumanResponseEvent::new("42")).await?;
///     }
/// }
/// let done = client.wait(&run.handler_id).await?;
/// println!("{:?}", done.result);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) http: reqwest::Client,
    base: String,
}

/// A workflow's start and stop event schemas (`GET /workflows/{name}/schema`).
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> Result<(), workflows_client::ClientError> {
/// let client = workflows_client::Client::new("http://127.0.0.1:8080")?;
/// let schema = client.schema("number").await?;
/// println!("start with: {}", schema.start["title"]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[non_exhaustive]
pub struct WorkflowSchema {
    /// The start event's JSON Schema.
    pub start: Value,
    /// The stop event's JSON Schema.
    pub stop: Value,
}

impl Client {
    /// A client of the server at `base_url` (`http://host:port`, or with a path prefix where
    /// the server's routes are mounted: `http://host/api`).
    pub fn new(base_url: &str) -> Result<Client, ClientError> {
        let http = http_builder().build().map_err(ClientError::Transport)?;
        Self::with_http_client(base_url, http)
    }

    /// A client of a server that needs a bearer token (one of those it was started with,
    /// `--auth-token-file` or `WORKFLOWS_AUTH_TOKENS`): every request bears
    /// `Authorization: Bearer <token>`.
    ///
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), workflows_client::ClientError> {
    /// let token = std::env::var("WORKFLOWS_TOKEN").unwrap_or_default();
    /// let client = workflows_client::Client::with_token("http://10.0.0.5:8080", &token)?;
    /// println!("{:?}", client.workflows().await?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_token(base_url: &str, token: &str) -> Result<Client, ClientError> {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ClientError::Token)?;
        // Kept out of debug output and of HTTP/2 header compression tables.
        value.set_sensitive(true);
        let headers =
            reqwest::header::HeaderMap::from_iter([(reqwest::header::AUTHORIZATION, value)]);
        let http = http_builder()
            .default_headers(headers)
            .build()
            .map_err(ClientError::Transport)?;
        Self::with_http_client(base_url, http)
    }

    /// A client that sends its requests through `http`, for settings of your own (default
    /// headers such as an `Authorization` token, timeouts, a proxy).
    pub fn with_http_client(base_url: &str, http: reqwest::Client) -> Result<Client, ClientError> {
        let base = base_url.trim_end_matches('/');
        let bad = |reason: &str| ClientError::Url {
            url: base_url.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"))
            .ok_or_else(|| bad("it must start with http:// or https://"))?;
        if rest.is_empty() || rest.starts_with('/') {
            return Err(bad("it names no host"));
        }
        Ok(Client {
            http,
            base: base.to_owned(),
        })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Whether the server can reach its store and takes requests (`GET /health`).
    pub async fn is_healthy(&self) -> Result<bool, ClientError> {
        let response = self.get("/health").await?;
        Ok(response.status().is_success())
    }

    /// The names of the served workflows.
    pub async fn workflows(&self) -> Result<Vec<String>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Listed {
            workflows: Vec<String>,
        }
        let listed: Listed = read(self.get("/workflows").await?).await?;
        Ok(listed.workflows)
    }

    /// The workflow's start and stop event schemas.
    pub async fn schema(&self, workflow: &str) -> Result<WorkflowSchema, ClientError> {
        read(self.get(&format!("/workflows/{workflow}/schema")).await?).await
    }

    /// The JSON Schemas of every event type the workflow takes or publishes.
    pub async fn event_schemas(&self, workflow: &str) -> Result<Vec<Value>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Listed {
            events: Vec<Value>,
        }
        let listed: Listed =
            read(self.get(&format!("/workflows/{workflow}/events")).await?).await?;
        Ok(listed.events)
    }

    /// The workflow's graph: steps, events and edges.
    pub async fn representation(&self, workflow: &str) -> Result<Value, ClientError> {
        let body: Value = read(
            self.get(&format!("/workflows/{workflow}/representation"))
                .await?,
        )
        .await?;
        Ok(body["graph"].clone())
    }

    /// Starts a run and answers when it has ended: completed, failed or cancelled (a failed
    /// run is an answer, not an error: look at its `status` and `error`).
    pub async fn run(
        &self,
        workflow: &str,
        request: RunRequest,
    ) -> Result<HandlerInfo, ClientError> {
        let response = self
            .post_json(&format!("/workflows/{workflow}/run"), &request.body())
            .await?;
        handler_answer(response).await
    }

    /// Starts a run and answers at once with its handler.
    pub async fn run_nowait(
        &self,
        workflow: &str,
        request: RunRequest,
    ) -> Result<HandlerInfo, ClientError> {
        let response = self
            .post_json(
                &format!("/workflows/{workflow}/run-nowait"),
                &request.body(),
            )
            .await?;
        read(response).await
    }

    /// The run's events; configure which, then call [`Events::stream`].
    pub fn events(&self, handler_id: &str) -> Events {
        Events::new(self.clone(), handler_id.to_owned())
    }

    /// Sends `ev` into the run, to every step that takes it.
    pub async fn send<E: Event>(&self, handler_id: &str, ev: &E) -> Result<(), ClientError> {
        self.send_json(handler_id, envelope(ev, None)?).await
    }

    /// Sends `ev` to the run's step `step` only.
    pub async fn send_to<E: Event>(
        &self,
        handler_id: &str,
        step: &str,
        ev: &E,
    ) -> Result<(), ClientError> {
        self.send_json(handler_id, envelope(ev, Some(step))?).await
    }

    /// Sends a request body as the API takes it: `{"event": {"type": ..., "value": ...},
    /// "step": ...}`.
    pub async fn send_json(&self, handler_id: &str, body: Value) -> Result<(), ClientError> {
        let response = self
            .post_json(&format!("/events/{handler_id}"), &body)
            .await?;
        let _: Value = read(response).await?;
        Ok(())
    }

    /// The run as it stands.
    pub async fn handler(&self, handler_id: &str) -> Result<HandlerInfo, ClientError> {
        handler_answer(self.get(&format!("/handlers/{handler_id}")).await?).await
    }

    /// The runs `query` selects, oldest first.
    pub async fn handlers(&self, query: &HandlerQuery) -> Result<Vec<HandlerInfo>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Listed {
            handlers: Vec<HandlerInfo>,
        }
        let response = self
            .http
            .get(self.url("/handlers"))
            .query(&query.pairs())
            .send()
            .await
            .map_err(ClientError::Transport)?;
        let listed: Listed = read(response).await?;
        Ok(listed.handlers)
    }

    /// Waits until the run has ended, following its events rather than polling, and answers
    /// with its handler.
    pub async fn wait(&self, handler_id: &str) -> Result<HandlerInfo, ClientError> {
        let mut pause = WAIT_POLL;
        loop {
            let handler = self.handler(handler_id).await?;
            if handler.status.is_terminal() {
                return Ok(handler);
            }
            let mut events = self.events(handler_id).from_now().stream();
            let mut saw_any = false;
            while let Some(ev) = futures_util::StreamExt::next(&mut events).await {
                ev?;
                saw_any = true;
            }
            // The stream ended (with the run's last event, or at once because the run had
            // ended): the status follows; look again, without spinning.
            if !saw_any {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }

    /// Cancels the run.
    pub async fn cancel(&self, handler_id: &str) -> Result<(), ClientError> {
        self.cancel_with(handler_id, false).await
    }

    /// Cancels the run if it is running and deletes it with its events.
    pub async fn purge(&self, handler_id: &str) -> Result<(), ClientError> {
        self.cancel_with(handler_id, true).await
    }

    async fn cancel_with(&self, handler_id: &str, purge: bool) -> Result<(), ClientError> {
        let response = self
            .http
            .post(self.url(&format!("/handlers/{handler_id}/cancel")))
            .query(&[("purge", purge.to_string())])
            .send()
            .await
            .map_err(ClientError::Transport)?;
        let _: Value = read(response).await?;
        Ok(())
    }

    async fn post_json(&self, path: &str, body: &Value) -> Result<reqwest::Response, ClientError> {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .map_err(ClientError::Transport)
    }

    async fn get(&self, path: &str) -> Result<reqwest::Response, ClientError> {
        self.http
            .get(self.url(path))
            .send()
            .await
            .map_err(ClientError::Transport)
    }
}

/// The settings of every client this crate makes.
fn http_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        // Small requests and answers go out at once rather than waiting for an ACK.
        .tcp_nodelay(true)
}

/// The body of a successful answer; a refusal otherwise.
async fn read<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, ClientError> {
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(refusal(status, response).await);
    }
    let bytes = response.bytes().await.map_err(ClientError::Transport)?;
    serde_json::from_slice(&bytes).map_err(ClientError::Decode)
}

/// A handler the server answered with: 200 (completed), 202 (running) or 500 (failed or
/// cancelled) all carry one; any other answer, or a 500 without one, is a refusal.
async fn handler_answer(response: reqwest::Response) -> Result<HandlerInfo, ClientError> {
    let status = response.status().as_u16();
    if !matches!(status, 200..=299 | 500) {
        return Err(refusal(status, response).await);
    }
    let bytes = response.bytes().await.map_err(ClientError::Transport)?;
    match serde_json::from_slice::<HandlerInfo>(&bytes) {
        Ok(handler) => Ok(handler),
        Err(_) if status == 500 => Err(ClientError::Refused {
            status,
            detail: detail_of(&bytes),
        }),
        Err(e) => Err(ClientError::Decode(e)),
    }
}

/// The refusal a non-2xx answer means, with the server's `detail`.
pub(crate) async fn refusal(status: u16, response: reqwest::Response) -> ClientError {
    let bytes = response.bytes().await.unwrap_or_default();
    ClientError::Refused {
        status,
        detail: detail_of(&bytes),
    }
}

fn detail_of(bytes: &[u8]) -> String {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned())
}
