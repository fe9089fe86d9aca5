//! Raw HTTP for the tests that check the wire itself: exact statuses, headers and bodies,
//! malformed requests, streaming responses read frame by frame, and whether a stream ended
//! cleanly or was cut. Everything else goes through the Rust client (`workflows-client`).

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

/// A response read to its end.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `detail` of an error body.
    pub fn detail(&self) -> String {
        self.json()["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// A client for the server at `addr`, for checks of the wire itself (exact bodies, headers,
/// malformed requests, SSE frames, how a stream ends); requests go through reqwest, one
/// connection each.
#[derive(Clone, Copy, Debug)]
pub struct Client {
    pub addr: SocketAddr,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Self {
        Client { addr }
    }

    async fn open(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Stream {
        // A client per request: tests each run on a runtime of their own, and a pooled
        // connection must not outlive the runtime that opened it.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("an HTTP client");
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = http.request(method.clone(), format!("http://{}{path}", self.addr));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                request = request.header("content-type", "application/json");
            }
            request = request.body(body.to_vec());
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        Stream {
            status,
            headers,
            chunks: Box::pin(response.bytes_stream()),
            body: Vec::new(),
            ended: false,
            clean: false,
        }
    }

    /// A request with headers of the test's own (a `content-type` among them replaces
    /// `application/json`).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        self.open(method, path, headers, body).await.finish().await
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<&[u8]>) -> Reply {
        let stream = self.open(method, path, &[], body).await;
        stream.finish().await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send("POST", path, Some(body.to_string().as_bytes()))
            .await
    }

    /// A streaming GET: the response head is read, the body is read as it comes.
    pub async fn stream(&self, path: &str, headers: &[(&str, &str)]) -> Stream {
        self.open("GET", path, headers, None).await
    }
}

type Chunks = Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// A response whose body is read as it arrives.
pub struct Stream {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    chunks: Chunks,
    /// Body bytes not yet handed out.
    body: Vec<u8>,
    ended: bool,
    /// Whether the body ended as HTTP says it should (the last chunk, or the length), not
    /// with the connection cut.
    clean: bool,
}

impl Stream {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the body, read to its end, ended as HTTP says (not with the connection cut).
    pub fn ended_cleanly(&self) -> bool {
        self.ended && self.clean
    }

    /// Reads more of the body; false at its end.
    async fn fill(&mut self) -> bool {
        if self.ended {
            return false;
        }
        match self.chunks.next().await {
            Some(Ok(chunk)) => {
                self.body.extend_from_slice(&chunk);
                true
            }
            // A body cut short (the connection closed before the last chunk) is an error.
            Some(Err(_)) => {
                self.ended = true;
                false
            }
            None => {
                self.ended = true;
                self.clean = true;
                false
            }
        }
    }

    /// The next piece of the body ending with `separator` (without it), or `None` at the end.
    pub async fn next_piece(&mut self, separator: &[u8]) -> Option<String> {
        loop {
            if let Some(i) = find(&self.body, separator) {
                let piece = String::from_utf8_lossy(&self.body[..i]).into_owned();
                self.body.drain(..i + separator.len());
                return Some(piece);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Like [`next_piece`], failing the test if nothing comes within `limit`.
    pub async fn next_piece_within(&mut self, separator: &[u8], limit: Duration) -> Option<String> {
        tokio::time::timeout(limit, self.next_piece(separator))
            .await
            .expect("the stream went quiet")
    }

    /// The next SSE frame (comments included), `None` at the end of the stream.
    pub async fn next_frame(&mut self) -> Option<String> {
        self.next_piece_within(b"\n\n", Duration::from_secs(20))
            .await
    }

    /// Reads the rest of the body.
    pub async fn finish(mut self) -> Reply {
        while self.fill().await {}
        Reply {
            status: self.status,
            headers: self.headers,
            body: String::from_utf8_lossy(&self.body).into_owned(),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An SSE frame's `id` and parsed `data`.
pub fn parse_frame(frame: &str) -> (Option<u64>, Value) {
    let mut id = None;
    let mut data = Value::Null;
    for line in frame.lines() {
        if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("data:") {
            data = serde_json::from_str(v.trim()).expect("JSON data");
        }
    }
    (id, data)
}
