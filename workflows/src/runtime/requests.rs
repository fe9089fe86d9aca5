//! Input requests a run has returned from its steps and nobody has answered yet: what the run
//! waits for a person to answer (with the prompts of its waits, which `Waiters` keeps).
//!
//! # Invariants
//!
//! - A request is open from the moment it is published until an event of the type that
//!   answers it ([`Event::RESPONSE`](crate::Event::RESPONSE)) is sent into the run from
//!   outside; each such event answers the oldest open request of its type. (Which step takes
//!   the answer is routing's business; this list only says what is still unanswered.)
//! - A request that names no response type stays open until the run ends.

use std::sync::Arc;

use thin_vec::ThinVec;

use crate::AnyEvent;
use crate::runtime::capture::store_event;
use crate::runtime::restore::decode;
use crate::snapshot::{RequestRecord, ResumeError, SnapshotError};

/// One open request.
struct Request {
    seq: u64,
    event: Arc<dyn AnyEvent>,
    response: Option<&'static str>,
}

/// The open requests, oldest first.
#[derive(Default)]
pub(crate) struct Requests {
    /// Thin (a pointer in the run's task; no allocation while empty).
    open: ThinVec<Request>,
}

impl Requests {
    /// The request `event`, published at `seq`, is open.
    pub(crate) fn open(&mut self, seq: u64, event: Arc<dyn AnyEvent>) {
        let response = event.response();
        if self.open.capacity() == 0 {
            // A run waiting for a person usually has one request open: room for one, not four.
            self.open.reserve_exact(1);
        }
        self.open.push(Request {
            seq,
            event,
            response,
        });
    }

    /// An event named `name` came from outside: it answers the oldest open request it answers.
    #[inline]
    pub(crate) fn answered_by(&mut self, name: &str) {
        if self.open.is_empty() {
            return;
        }
        if let Some(i) = self.open.iter().position(|r| r.response == Some(name)) {
            self.open.remove(i);
        }
    }

    /// The open requests as a snapshot records them.
    pub(crate) fn capture(&self) -> Result<Vec<RequestRecord>, SnapshotError> {
        self.open
            .iter()
            .map(|r| {
                Ok(RequestRecord {
                    seq: r.seq,
                    event: store_event(&*r.event)?,
                })
            })
            .collect()
    }

    /// The open requests a snapshot recorded.
    pub(crate) fn restore(records: Vec<RequestRecord>) -> Result<Self, ResumeError> {
        let mut requests = Requests::default();
        for record in records {
            let event: Arc<dyn AnyEvent> = Arc::from(decode(record.event)?);
            requests.open(record.seq, event);
        }
        Ok(requests)
    }

    /// Frees the list's buffer when it is empty.
    pub(crate) fn compact(&mut self) {
        if self.open.is_empty() && self.open.capacity() > 0 {
            self.open = ThinVec::new();
        }
    }
}
