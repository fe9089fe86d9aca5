//! One attempt of an invocation: how it ends, and the in-flight future the loop polls for it
//! (or for the back-off before it).

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use tokio::time::Sleep;

use crate::error::PanicError;
use crate::runtime::invocations::InvocationId;
use crate::step::{BoxError, StepFuture, Thrown};
use crate::{Emitted, StepError};

/// The error a step's future ended with, unwrapped from the [`Thrown`] that carries its type's
/// name.
pub(crate) fn step_error(error: BoxError) -> StepError {
    match error.downcast::<Thrown>() {
        Ok(thrown) => StepError::returned(thrown.error, Some(thrown.type_name)),
        Err(error) => StepError::returned(error, None),
    }
}

pub(crate) type AttemptResult = Result<Emitted, StepError>;

/// Polls a step future once, turning a panic into an error.
pub(crate) fn poll_step(fut: &mut StepFuture, cx: &mut TaskContext<'_>) -> Poll<AttemptResult> {
    match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
        Ok(Poll::Pending) => Poll::Pending,
        Ok(Poll::Ready(result)) => Poll::Ready(result.map_err(step_error)),
        Err(payload) => Poll::Ready(Err(StepError::panic(
            PanicError::from_payload(&*payload).message,
        ))),
    }
}

/// What an in-flight entry reports when it is done.
pub(crate) enum Completion {
    /// The attempt of this invocation finished.
    Attempt(InvocationId, AttemptResult),
    /// The wait before this invocation's next attempt is over.
    BackoffOver(InvocationId),
}

enum Work {
    Step(InvocationId, StepFuture),
    Backoff(InvocationId, Pin<Box<Sleep>>),
}

/// Pending work of the run (a step or a retry back-off), polled inside the loop's
/// `FuturesUnordered`.
pub(crate) struct InFlight {
    work: Work,
    span: tracing::Span,
}

impl InFlight {
    pub(crate) fn step(id: InvocationId, fut: StepFuture, span: tracing::Span) -> Self {
        InFlight {
            work: Work::Step(id, fut),
            span,
        }
    }

    pub(crate) fn backoff(id: InvocationId, sleep: Sleep) -> Self {
        InFlight {
            work: Work::Backoff(id, Box::pin(sleep)),
            span: tracing::Span::none(),
        }
    }
}

impl Future for InFlight {
    type Output = Completion;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Completion> {
        let this = &mut *self;
        match &mut this.work {
            Work::Step(id, fut) => {
                let _entered = this.span.enter();
                let id = *id;
                poll_step(fut, cx).map(|r| Completion::Attempt(id, r))
            }
            Work::Backoff(id, sleep) => {
                let id = *id;
                sleep
                    .as_mut()
                    .poll(cx)
                    .map(|()| Completion::BackoffOver(id))
            }
        }
    }
}
