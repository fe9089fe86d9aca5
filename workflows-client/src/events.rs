//! A run's events as a `Stream` that survives a broken connection: it reads the server's
//! Server-Sent Events, remembers the last sequence number, and when the connection breaks (a
//! server restarting, a proxy cutting it) opens the stream again from there, so that nothing is
//! lost or read twice.

use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use serde_json::Value;

use crate::{Client, ClientError, WireEvent};

/// How many times in a row a stream is opened again after breaking, by default.
const MAX_RECONNECTS: u32 = 5;
/// The wait before the first reopening; it doubles each time, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A run's events, in order, each with its sequence number; ends after the event that ends
/// the run. Made by [`Events::stream`].
pub type EventStream = Pin<Box<dyn Stream<Item = Result<WireEvent, ClientError>> + Send>>;

/// Which of a run's events to follow; see [`Client::events`].
///
/// ```no_run
/// use futures_util::StreamExt;
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), workflows_client::ClientError> {
/// let client = workflows_client::Client::new("http://127.0.0.1:8080")?;
/// // Everything after event 4, internal events too, reopening up to 10 times in a row.
/// let mut events = client
///     .events("run-1")
///     .after(4)
///     .include_internal(true)
///     .max_reconnects(10)
///     .stream();
/// while let Some(ev) = events.next().await {
///     let ev = ev?;
///     println!("{:?} {}", ev.sequence, ev.type_name);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "call .stream() to read the events"]
pub struct Events {
    client: Client,
    handler_id: String,
    after: Option<u64>,
    from_now: bool,
    include_internal: bool,
    max_reconnects: u32,
}

impl Events {
    pub(crate) fn new(client: Client, handler_id: String) -> Self {
        Events {
            client,
            handler_id,
            after: None,
            from_now: false,
            include_internal: false,
            max_reconnects: MAX_RECONNECTS,
        }
    }

    /// Only the events after sequence number `sequence` (by default, all of them).
    pub fn after(mut self, sequence: u64) -> Self {
        self.after = Some(sequence);
        self.from_now = false;
        self
    }

    /// Only the events published from now on.
    pub fn from_now(mut self) -> Self {
        self.from_now = true;
        self.after = None;
        self
    }

    /// Also the runtime's internal events (step state changes, idleness).
    pub fn include_internal(mut self, yes: bool) -> Self {
        self.include_internal = yes;
        self
    }

    /// How many times in a row a broken stream is opened again (default 5) before it ends
    /// with [`ClientError::Reconnects`].
    pub fn max_reconnects(mut self, attempts: u32) -> Self {
        self.max_reconnects = attempts;
        self
    }

    /// The events, as a stream.
    pub fn stream(self) -> EventStream {
        let cursor = if self.from_now {
            Cursor::Now
        } else {
            self.after.map_or(Cursor::Start, Cursor::After)
        };
        let state = Follower {
            events: self,
            cursor,
            body: None,
            buffer: Vec::new(),
            failures: 0,
            ended: false,
        };
        Box::pin(futures_util::stream::unfold(
            state,
            |mut state| async move {
                let item = state.next().await?;
                Some((item, state))
            },
        ))
    }
}

/// Where the next opening of the stream starts.
#[derive(Debug, Clone, Copy)]
enum Cursor {
    Start,
    Now,
    After(u64),
}

impl Cursor {
    fn query(self) -> String {
        match self {
            Cursor::Start => "-1".into(),
            Cursor::Now => "now".into(),
            Cursor::After(seq) => seq.to_string(),
        }
    }
}

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

struct Follower {
    events: Events,
    cursor: Cursor,
    body: Option<Body>,
    buffer: Vec<u8>,
    /// Failed openings or broken connections since the last event.
    failures: u32,
    ended: bool,
}

impl Follower {
    async fn next(&mut self) -> Option<Result<WireEvent, ClientError>> {
        loop {
            if self.ended {
                return None;
            }
            if let Some(frame) = take_frame(&mut self.buffer) {
                match parse_frame(&frame) {
                    Ok(Some(ev)) => {
                        if let Some(seq) = ev.sequence {
                            self.cursor = Cursor::After(seq);
                        }
                        self.failures = 0;
                        // The server closes the stream after the event that ends the run.
                        self.ended = ev.is_terminal();
                        return Some(Ok(ev));
                    }
                    Ok(None) => continue,
                    Err(e) => {
                        self.ended = true;
                        return Some(Err(e));
                    }
                }
            }
            let Some(body) = &mut self.body else {
                match self.open().await {
                    Ok(Some(body)) => self.body = Some(body),
                    Ok(None) => return None,
                    Err(e @ ClientError::Refused { .. }) => {
                        self.ended = true;
                        return Some(Err(e));
                    }
                    Err(e) => {
                        if let Some(gave_up) = self.broke(e).await {
                            return Some(Err(gave_up));
                        }
                    }
                }
                continue;
            };
            match body.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    if let Some(gave_up) = self.broke(ClientError::Transport(e)).await {
                        return Some(Err(gave_up));
                    }
                }
                // Closed before the run's last event: the server went away (or a proxy cut
                // the connection). Open again from the last sequence number.
                None => {
                    let cut = ClientError::Refused {
                        status: 0,
                        detail: "the stream closed before the run ended".into(),
                    };
                    if let Some(gave_up) = self.broke(cut).await {
                        return Some(Err(gave_up));
                    }
                }
            }
        }
    }

    /// After a failure: waits before the next opening, or gives up.
    async fn broke(&mut self, error: ClientError) -> Option<ClientError> {
        self.body = None;
        self.buffer.clear();
        self.failures += 1;
        if self.failures > self.events.max_reconnects {
            self.ended = true;
            return Some(ClientError::Reconnects {
                attempts: self.failures - 1,
                last: Box::new(error),
            });
        }
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << (self.failures - 1).min(16))
            .min(MAX_BACKOFF);
        tokio::time::sleep(backoff).await;
        None
    }

    /// Opens the stream from the cursor; `None` when the run has ended and nothing is left.
    async fn open(&mut self) -> Result<Option<Body>, ClientError> {
        let events = &self.events;
        let response = events
            .client
            .http
            .get(events.client.url(&format!("/events/{}", events.handler_id)))
            .query(&[
                ("sse", "true".to_owned()),
                ("after_sequence", self.cursor.query()),
                ("include_internal", events.include_internal.to_string()),
            ])
            .send()
            .await
            .map_err(ClientError::Transport)?;
        match response.status().as_u16() {
            204 => Ok(None),
            200..=299 => Ok(Some(Box::pin(response.bytes_stream()))),
            status => Err(crate::client::refusal(status, response).await),
        }
    }
}

/// The first complete Server-Sent Events frame in `buffer`, taken out of it.
fn take_frame(buffer: &mut Vec<u8>) -> Option<String> {
    let end = buffer.windows(2).position(|w| w == b"\n\n")?;
    let frame: Vec<u8> = buffer.drain(..end + 2).collect();
    Some(String::from_utf8_lossy(&frame[..end]).into_owned())
}

/// The event a frame carries (`id: 3` and `data: {...}` lines); `None` for a frame with no
/// data (a heartbeat comment).
fn parse_frame(frame: &str) -> Result<Option<WireEvent>, ClientError> {
    let mut sequence = None;
    let mut data = String::new();
    for line in frame.lines() {
        if let Some(id) = line.strip_prefix("id:") {
            sequence = id.trim().parse().ok();
        } else if let Some(more) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(more.strip_prefix(' ').unwrap_or(more));
        }
    }
    if data.is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(&data).map_err(ClientError::Decode)?;
    let mut ev: WireEvent = serde_json::from_value(value).map_err(ClientError::Decode)?;
    ev.sequence = sequence;
    Ok(Some(ev))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_split_and_read() {
        let mut buffer = b": ping\n\nid: 4\ndata: {\"type\":\"StopEvent\",\"value\":{\"result\":1},\"types\":null}\n\nid: 5\nda".to_vec();
        assert_eq!(
            parse_frame(&take_frame(&mut buffer).unwrap()).unwrap(),
            None
        );
        let ev = parse_frame(&take_frame(&mut buffer).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(ev.sequence, Some(4));
        assert!(ev.is_terminal());
        assert_eq!(ev.value["result"], 1);
        assert!(
            take_frame(&mut buffer).is_none(),
            "an incomplete frame waits"
        );
        assert_eq!(buffer, b"id: 5\nda");
    }
}
