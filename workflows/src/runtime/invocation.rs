//! One step invocation as the control loop tracks it, and the future it polls for it.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use tokio::time::Sleep;

use crate::error::PanicError;
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
    /// For a failure handler: the failure it handles, which ends the run if it does not recover.
    pub(crate) handles: Option<Arc<WorkflowError>>,
}

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
    /// The attempt finished.
    Attempt(AttemptResult),
    /// The wait before a retry is over.
    BackoffOver,
}

enum Work {
    Step(StepFuture),
    Backoff(Pin<Box<Sleep>>),
}

/// An invocation's pending work, polled inside the loop's `FuturesUnordered`.
pub(crate) struct InFlight {
    slot: usize,
    work: Work,
    span: tracing::Span,
}

impl InFlight {
    pub(crate) fn step(slot: usize, fut: StepFuture, span: tracing::Span) -> Self {
        InFlight {
            slot,
            work: Work::Step(fut),
            span,
        }
    }

    pub(crate) fn backoff(slot: usize, sleep: Sleep) -> Self {
        InFlight {
            slot,
            work: Work::Backoff(Box::pin(sleep)),
            span: tracing::Span::none(),
        }
    }
}

impl Future for InFlight {
    type Output = (usize, Completion);

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let slot = this.slot;
        match &mut this.work {
            Work::Step(fut) => {
                let _entered = this.span.enter();
                poll_step(fut, cx).map(|r| (slot, Completion::Attempt(r)))
            }
            Work::Backoff(sleep) => sleep
                .as_mut()
                .poll(cx)
                .map(|()| (slot, Completion::BackoffOver)),
        }
    }
}
