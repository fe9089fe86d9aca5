//! One step invocation as the control loop tracks it, and the future it polls for it.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use tokio::time::Sleep;

use crate::error::PanicError;
use crate::runtime::memo::SharedMemo;
use crate::step::{BoxError, StepFuture};
use crate::{AnyEvent, WorkflowError};

/// A step invocation that has started and not yet finished for good.
pub(crate) struct Invocation {
    pub(crate) step: usize,
    /// The event being handled, kept for retries (and snapshots).
    pub(crate) input: Box<dyn AnyEvent>,
    pub(crate) attempt: u32,
    /// The invocation's number within the run.
    pub(crate) seq: u64,
    pub(crate) last_error: Option<String>,
    /// For a failure handler: the failure it handles, which ends the run unless a handler
    /// recovers.
    pub(crate) handles: Option<SharedFailure>,
    /// Answered waits and `once` results, once the step has used either.
    pub(crate) memo: Option<SharedMemo>,
    /// When the retry back-off in progress ends.
    pub(crate) retry_at: Option<tokio::time::Instant>,
    /// Whether a future for the current attempt exists. A restored invocation that was waiting
    /// has none until its waiter is answered.
    pub(crate) running: bool,
}

/// A step's failure, offered to the workflow's failure handlers (steps accepting
/// `StepFailed`). The run fails with `error` once every handler declined.
pub(crate) struct Failure {
    pub(crate) error: Option<WorkflowError>,
    /// Handlers that have not finished yet.
    pub(crate) undecided: usize,
    pub(crate) recovered: bool,
}

pub(crate) type SharedFailure = Arc<std::sync::Mutex<Failure>>;

/// Why one attempt failed.
pub(crate) enum AttemptError {
    Error(BoxError),
    Panic(PanicError),
}

impl AttemptError {
    pub(crate) fn as_error(&self) -> &(dyn std::error::Error + 'static) {
        match self {
            AttemptError::Error(e) => &**e,
            AttemptError::Panic(p) => p,
        }
    }

    pub(crate) fn into_workflow_error(self, step: &str, attempts: u32) -> WorkflowError {
        match self {
            AttemptError::Error(source) => WorkflowError::StepFailed {
                step: step.to_owned(),
                attempts,
                source,
            },
            AttemptError::Panic(p) => WorkflowError::StepPanicked {
                step: step.to_owned(),
                attempts,
                message: p.message,
            },
        }
    }
}

pub(crate) type AttemptResult = Result<Option<Box<dyn AnyEvent>>, AttemptError>;

/// Polls a step future once, turning a panic into an error.
pub(crate) fn poll_step(fut: &mut StepFuture, cx: &mut TaskContext<'_>) -> Poll<AttemptResult> {
    match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
        Ok(Poll::Pending) => Poll::Pending,
        Ok(Poll::Ready(result)) => Poll::Ready(result.map_err(AttemptError::Error)),
        Err(payload) => Poll::Ready(Err(AttemptError::Panic(PanicError::from_payload(
            &*payload,
        )))),
    }
}

/// What an in-flight entry reports when it is done.
pub(crate) enum Completion {
    /// The attempt of the invocation in this slot finished.
    Attempt(usize, AttemptResult),
    /// The wait before the retry of the invocation in this slot is over.
    BackoffOver(usize),
}

enum Work {
    Step(usize, StepFuture),
    Backoff(usize, Pin<Box<Sleep>>),
}

/// Pending work of the run (a step or a retry back-off), polled inside the loop's
/// `FuturesUnordered`.
pub(crate) struct InFlight {
    work: Work,
    span: tracing::Span,
}

impl InFlight {
    pub(crate) fn step(slot: usize, fut: StepFuture, span: tracing::Span) -> Self {
        InFlight {
            work: Work::Step(slot, fut),
            span,
        }
    }

    pub(crate) fn backoff(slot: usize, sleep: Sleep) -> Self {
        InFlight {
            work: Work::Backoff(slot, Box::pin(sleep)),
            span: tracing::Span::none(),
        }
    }
}

impl Future for InFlight {
    type Output = Completion;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Completion> {
        let this = &mut *self;
        match &mut this.work {
            Work::Step(slot, fut) => {
                let _entered = this.span.enter();
                let slot = *slot;
                poll_step(fut, cx).map(|r| Completion::Attempt(slot, r))
            }
            Work::Backoff(slot, sleep) => {
                let slot = *slot;
                sleep
                    .as_mut()
                    .poll(cx)
                    .map(|()| Completion::BackoffOver(slot))
            }
        }
    }
}
