//! What a store's failure says: what the server was doing, with the database's own error kept
//! as the [source](std::error::Error::source), so that a wrong password reads
//! `could not connect to Postgres at 127.0.0.1:5432/runs: db error: FATAL: password
//! authentication failed for user "app"` rather than `db error`.

use std::fmt;
use std::sync::Arc;

/// The database's own error behind a [`StorageError`], shared so that the error can be cloned
/// (one failed write may be reported to several waiting callers).
///
/// ```
/// use std::sync::Arc;
/// use workflows_server::storage::{Cause, StorageError};
///
/// let cause: Cause = Arc::new(std::io::Error::other("disk full"));
/// let e = StorageError::Operation { operation: "store a run's events", source: cause };
/// assert_eq!(e.clone().to_string(), "the store could not store a run's events");
/// ```
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// A store failed. Its `Display` says what the server was doing; [`source`] chains to the
/// database's error, and [`ErrorChain`] prints the whole chain.
///
/// [`source`]: std::error::Error::source
///
/// ```
/// use workflows_server::storage::{ErrorChain, StorageError};
///
/// let io = std::io::Error::other("disk I/O error");
/// let e = StorageError::operation("store a run's events", io);
/// assert_eq!(e.to_string(), "the store could not store a run's events");
/// assert_eq!(
///     ErrorChain(&e).to_string(),
///     "the store could not store a run's events: disk I/O error"
/// );
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The database could not be opened or reached.
    #[error("could not {target}")]
    Open {
        /// What was being opened, for instance `open the SQLite file runs.db` or `connect to
        /// Postgres at db.internal:5432/runs`.
        target: String,
        /// The database's error.
        #[source]
        source: Cause,
    },
    /// A statement or transaction failed.
    #[error("the store could not {operation}")]
    Operation {
        /// What the server was doing, for instance `store a run's events`.
        operation: &'static str,
        /// The database's error.
        #[source]
        source: Cause,
    },
    /// The database was last migrated by a newer build of the server.
    #[error(
        "the database's schema is version {found}, newer than version {supported} that this \
         build knows; run the newer workflows-server that upgraded it"
    )]
    SchemaTooNew {
        /// The version stored in the database.
        found: i64,
        /// The newest version this build can use.
        supported: i64,
    },
    /// The configuration asks for something this build or store cannot do.
    #[error("{0}")]
    Config(String),
    /// Any other failure, described in words (for stores written outside this crate).
    #[error("{0}")]
    Other(String),
}

impl StorageError {
    /// A failure described by `message` alone.
    pub fn new(message: impl fmt::Display) -> Self {
        StorageError::Other(message.to_string())
    }

    /// `operation` failed because of `source`.
    pub fn operation(
        operation: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StorageError::Operation {
            operation,
            source: Arc::new(source),
        }
    }

    /// Opening `target` failed because of `source`.
    pub fn open(
        target: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StorageError::Open {
            target: target.into(),
            source: Arc::new(source),
        }
    }
}

/// Prints an error with every [source](std::error::Error::source) after it, separated by
/// `: `, as the binary does before it exits and as the server logs a failed store.
///
/// ```
/// use workflows_server::storage::ErrorChain;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("could not start")]
/// struct Outer(#[source] std::io::Error);
///
/// let e = Outer(std::io::Error::other("address in use"));
/// assert_eq!(ErrorChain(&e).to_string(), "could not start: address in use");
/// ```
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut last = self.0.to_string();
        let mut next = self.0.source();
        while let Some(cause) = next {
            let text = cause.to_string();
            // Some errors repeat their source in their own text (`transparent` wrappers, an
            // `Arc` around the real error); print each distinct message once.
            if !last.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            last = text;
            next = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
