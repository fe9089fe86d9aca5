//! What can go wrong talking to a server.

/// A request to the server failed.
///
/// ```no_run
/// use workflows_client::{Client, ClientError};
///
/// # #[tokio::main]
/// # async fn main() {
/// let client = Client::new("http://127.0.0.1:8080").unwrap();
/// match client.handler("nope").await {
///     Err(ClientError::Refused { status: 404, detail }) => println!("no such run: {detail}"),
///     Err(other) => println!("{other}"),
///     Ok(run) => println!("{:?}", run.status),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The base URL is not a usable `http://host:port` address.
    #[error("`{url}` is not a server address: {reason}")]
    Url {
        /// What was given.
        url: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The bearer token cannot be sent in an HTTP header (it holds a control character).
    #[error("the token cannot be sent in an Authorization header: it must be visible ASCII")]
    Token,
    /// The server could not be reached, or the connection broke.
    #[error("could not reach the server: {0}")]
    Transport(#[source] reqwest::Error),
    /// The server refused the request: its status and its `detail`.
    #[error("the server answered {status}: {detail}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The server's explanation (`{"detail": ...}`), or the body as text.
        detail: String,
    },
    /// The server's answer is not what the API describes.
    #[error("the server's answer could not be read: {0}")]
    Decode(#[source] serde_json::Error),
    /// An event's value is not the type asked for.
    #[error("the event `{event}` is not a `{wanted}`: {source}")]
    WrongEvent {
        /// The event's type on the wire.
        event: String,
        /// The Rust type asked for.
        wanted: &'static str,
        /// Why its value did not fit.
        source: serde_json::Error,
    },
    /// An event could not be written as JSON.
    #[error("the event could not be serialized: {0}")]
    Encode(#[source] serde_json::Error),
    /// An event stream broke more often in a row than allowed.
    #[error("the event stream broke {attempts} times in a row; last: {last}")]
    Reconnects {
        /// How many times it was opened again.
        attempts: u32,
        /// The last failure.
        last: Box<ClientError>,
    },
}

impl ClientError {
    /// The HTTP status the server refused the request with, if it did.
    ///
    /// ```
    /// use workflows_client::ClientError;
    ///
    /// let e = ClientError::Refused { status: 404, detail: "Handler not found".into() };
    /// assert_eq!(e.status(), Some(404));
    /// ```
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}
