//! Graph rules evaluated at compile time over a workflow's step table (a `const`).
//!
//! `#[workflow]` emits, for each step, constants that call these functions and panic with
//! their message, spanned at the step's own tokens: a broken graph then fails to compile with
//! an error that names the step and the event and says what to do. Not public API.

use crate::{EventInfo, EventKind, StepInfo};

const CAPACITY: usize = 480;

/// A message built at compile time (no allocation in `const` code).
#[doc(hidden)]
pub struct Message {
    buf: [u8; CAPACITY],
    len: usize,
}

impl Message {
    const fn new() -> Self {
        Message {
            buf: [0; CAPACITY],
            len: 0,
        }
    }

    const fn push(mut self, text: &str) -> Self {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() && self.len < CAPACITY {
            self.buf[self.len] = bytes[i];
            self.len += 1;
            i += 1;
        }
        self
    }

    /// Whether there is nothing to report.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The message.
    pub const fn as_str(&self) -> &str {
        let (text, _) = self.buf.split_at(self.len);
        match core::str::from_utf8(text) {
            Ok(text) => text,
            // Cut inside a character at the capacity: drop the message's tail.
            Err(e) => match core::str::from_utf8(text.split_at(e.valid_up_to()).0) {
                Ok(text) => text,
                Err(_) => "",
            },
        }
    }
}

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const fn listed(events: &[EventInfo], name: &str) -> bool {
    let mut i = 0;
    while i < events.len() {
        if same(events[i].name, name) {
            return true;
        }
        i += 1;
    }
    false
}

const fn accepted(steps: &[StepInfo], name: &str) -> bool {
    let mut i = 0;
    while i < steps.len() {
        if listed(steps[i].accepts, name) {
            return true;
        }
        i += 1;
    }
    false
}

const fn produced(steps: &[StepInfo], name: &str) -> bool {
    let mut i = 0;
    while i < steps.len() {
        if listed(steps[i].emits, name) || listed(steps[i].sends, name) {
            return true;
        }
        i += 1;
    }
    false
}

/// Events that may go nowhere: requests go to the caller, the stop event ends the run,
/// responses may be meant for waiters, internal events are the runtime's.
const fn may_go_unaccepted(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::InputRequired | EventKind::Stop | EventKind::Response | EventKind::Internal
    )
}

/// Events that may come from nowhere inside the workflow: the start event, answers from the
/// caller, and the runtime's own (`StepFailed`).
const fn may_come_from_outside(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::Start | EventKind::Response | EventKind::Internal
    )
}

/// What is wrong with the events step `index` returns (or, with `sends`, declares it sends):
/// empty if nothing.
#[doc(hidden)]
pub const fn check_outputs(steps: &[StepInfo], index: usize, sends: bool) -> Message {
    let step = &steps[index];
    let events = if sends { step.sends } else { step.emits };
    let mut i = 0;
    while i < events.len() {
        let ev = &events[i];
        if !may_go_unaccepted(ev.kind) && !accepted(steps, ev.name) {
            return Message::new()
                .push("step `")
                .push(step.name)
                .push(if sends { "` sends `" } else { "` returns `" })
                .push(ev.name)
                .push("`, but no step of this workflow accepts it; add a step that takes `")
                .push(ev.name)
                .push("`, or emit another event");
        }
        i += 1;
    }
    Message::new()
}

/// What is wrong with the events step `index` accepts (empty if nothing).
#[doc(hidden)]
pub const fn check_inputs(steps: &[StepInfo], index: usize) -> Message {
    let step = &steps[index];
    let mut i = 0;
    while i < step.accepts.len() {
        let ev = &step.accepts[i];
        if matches!(ev.kind, EventKind::Stop) {
            return Message::new()
                .push("step `")
                .push(step.name)
                .push("` accepts the stop event `")
                .push(ev.name)
                .push(
                    "`, but the stop event ends the run and reaches no step; accept another event",
                );
        }
        if !may_come_from_outside(ev.kind) && !produced(steps, ev.name) {
            return Message::new()
                .push("step `")
                .push(step.name)
                .push("` accepts `")
                .push(ev.name)
                .push("`, but no step returns or sends it; return it from a step, declare a send with #[step(sends(")
                .push(ev.name)
                .push("))], or mark it #[event(response)] if the caller sends it");
        }
        i += 1;
    }
    Message::new()
}
