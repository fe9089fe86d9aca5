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
use crate::{Emitted, WorkflowError};

/// Why one attempt failed.
pub(crate) enum AttemptError {
    /// The step returned an error, of the type named `type_name` when the step's signature
    /// says (it does unless the step's future was built by hand).
    Error {
        error: BoxError,
        type_name: Option<&'static str>,
    },
    Panic(PanicError),
}

impl AttemptError {
    /// The error a step's future ended with, unwrapped from the [`Thrown`] that carries its
    /// type's name.
    pub(crate) fn from_step(error: BoxError) -> Self {
        match error.downcast::<Thrown>() {
            Ok(thrown) => AttemptError::Error {
                error: thrown.error,
                type_name: Some(thrown.type_name),
            },
            Err(error) => AttemptError::Error {
                error,
                type_name: None,
            },
        }
    }

    pub(crate) fn as_error(&self) -> &(dyn std::error::Error + 'static) {
        match self {
            AttemptError::Error { error, .. } => &**error,
            AttemptError::Panic(p) => p,
        }
    }

    /// The Rust type of the error, `panic` for a panic.
    pub(crate) fn type_name(&self) -> Option<&'static str> {
        match self {
            AttemptError::Error { type_name, .. } => *type_name,
            AttemptError::Panic(_) => Some("panic"),
        }
    }

    pub(crate) fn into_workflow_error(self, step: &str, attempts: u32) -> WorkflowError {
        match self {
            AttemptError::Error { error: source, .. } => WorkflowError::StepFailed {
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

pub(crate) type AttemptResult = Result<Emitted, AttemptError>;

/// Polls a step future once, turning a panic into an error.
pub(crate) fn poll_step(fut: &mut StepFuture, cx: &mut TaskContext<'_>) -> Poll<AttemptResult> {
    match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
        Ok(Poll::Pending) => Poll::Pending,
        Ok(Poll::Ready(result)) => Poll::Ready(result.map_err(AttemptError::from_step)),
        Err(payload) => Poll::Ready(Err(AttemptError::Panic(PanicError::from_payload(
            &*payload,
        )))),
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
