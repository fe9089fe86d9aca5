//! A small HTTP/1.1 client for the tests: one connection per request, bodies de-chunked,
//! streaming responses read frame by frame.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// A client for the server at `addr`.
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
        let mut conn = TcpStream::connect(self.addr).await.expect("connect");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(body) = body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        conn.write_all(head.as_bytes()).await.expect("write");
        if let Some(body) = body {
            conn.write_all(body).await.expect("write body");
        }
        Stream::read_head(conn)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
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

/// A response whose body is read as it arrives.
pub struct Stream {
    conn: TcpStream,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    chunked: bool,
    length: Option<usize>,
    /// Raw bytes read past what was decoded.
    raw: Vec<u8>,
    /// Decoded body bytes not yet handed out.
    body: Vec<u8>,
    ended: bool,
    /// Whether the body ended as HTTP says it should (the last chunk, or the length), not
    /// with the connection cut.
    clean: bool,
}

impl Stream {
    async fn read_head(mut conn: TcpStream) -> std::io::Result<Stream> {
        let mut raw = Vec::new();
        let end = loop {
            if let Some(i) = find(&raw, b"\r\n\r\n") {
                break i;
            }
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed before the response head",
                ));
            }
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let rest = raw[end + 4..].to_vec();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let chunked = get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let length = get("content-length").and_then(|v| v.parse().ok());
        let mut stream = Stream {
            conn,
            status,
            headers,
            chunked,
            length,
            raw: Vec::new(),
            body: Vec::new(),
            ended: status == 204 || status == 304 || length == Some(0),
            clean: status == 204 || status == 304 || length == Some(0),
        };
        stream.take_raw(rest);
        Ok(stream)
    }

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

    /// Decodes what can be decoded of `bytes` (plus what was left before).
    fn take_raw(&mut self, bytes: Vec<u8>) {
        self.raw.extend(bytes);
        if !self.chunked {
            self.body.append(&mut self.raw);
            if self.length.is_some_and(|l| self.body.len() >= l) {
                self.ended = true;
                self.clean = true;
            }
            return;
        }
        loop {
            let Some(line_end) = find(&self.raw, b"\r\n") else {
                return;
            };
            let size_text = String::from_utf8_lossy(&self.raw[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                .expect("a chunk size");
            if size == 0 {
                self.ended = true;
                self.clean = true;
                self.raw.clear();
                return;
            }
            if self.raw.len() < line_end + 2 + size + 2 {
                return;
            }
            let start = line_end + 2;
            self.body.extend_from_slice(&self.raw[start..start + size]);
            self.raw.drain(..start + size + 2);
        }
    }

    /// Reads more of the body; false at its end.
    async fn fill(&mut self) -> bool {
        if self.ended {
            return false;
        }
        let mut buf = [0u8; 8192];
        // A reset connection is a cut one, as an end without the last chunk is.
        let n = self.conn.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            self.ended = true;
            return false;
        }
        self.take_raw(buf[..n].to_vec());
        true
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
