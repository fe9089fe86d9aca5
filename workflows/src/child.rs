//! Child workflows: a step runs another workflow as part of its own run, with
//! [`Context::run_child`].
//!
//! The child is a run of its own (its own steps, queues and state), driven inside the future
//! the step awaits, so it lives exactly as long as the step waits for it. What it publishes
//! appears in the parent's stream, marked with its path; the parent's handler routes answers
//! to it; the parent's snapshots hold its snapshot. See [`Context::run_child`].

use std::any::TypeId;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::runtime::children::{self, ChildSlot};
use crate::runtime::memo::SharedMemo;
use crate::runtime::run_loop::RunLoop;
use crate::runtime::shared::{HasShared, lock};
use crate::snapshot::ResumeError;
use crate::workflow::Output;
use crate::{Handler, SendError, StepInfo, Workflow, WorkflowError};

/// A workflow a step declares it may run as a child (`#[step(children(Review))]`): what the
/// graph, the snapshot checks and [`Context::run_child`] know of it.
///
/// ```
/// use workflows::prelude::*;
/// use workflows::ChildInfo;
///
/// struct Approve;
///
/// #[workflow]
/// impl Approve {
///     #[step]
///     async fn decide(&self, _ev: StartEvent) -> StopEvent<bool> {
///         StopEvent::new(true)
///     }
/// }
///
/// let info = ChildInfo::of::<Approve>();
/// assert_eq!(info.name, "Approve");
/// assert_eq!((info.steps)()[0].name, "decide");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ChildInfo {
    /// The child workflow's name ([`Workflow::NAME`]).
    pub name: &'static str,
    /// The child workflow's Rust type.
    pub type_id: TypeId,
    /// The child workflow's steps ([`Workflow::STEPS`]).
    pub steps: fn() -> &'static [StepInfo],
    /// The fingerprint its snapshots carry ([`Runner::fingerprint`](crate::Runner::fingerprint)).
    pub fingerprint: fn() -> String,
}

impl ChildInfo {
    /// The facts about workflow `W`.
    pub const fn of<W: Workflow>() -> Self {
        ChildInfo {
            name: W::NAME,
            type_id: TypeId::of::<W>(),
            steps: steps_of::<W>,
            fingerprint: children::fingerprint_of::<W>,
        }
    }
}

fn steps_of<W: Workflow>() -> &'static [StepInfo] {
    W::STEPS
}

/// Why a child run gave its step no result.
///
/// ```
/// use workflows::{ChildError, WorkflowError};
///
/// let err = ChildError::Failed {
///     workflow: "Review".into(),
///     path: "Review/0".into(),
///     source: Box::new(WorkflowError::Cancelled),
/// };
/// assert_eq!(err.to_string(), "child workflow `Review` (Review/0) ended without its result: the run was cancelled");
/// assert!(matches!(err.workflow_error(), Some(WorkflowError::Cancelled)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChildError {
    /// The child ended without its result: a step of it failed, it timed out, or it was
    /// cancelled. After a resume from a snapshot that recorded the failure, only its text is
    /// left of a step's own error (see [`StepError::is_restored`](crate::StepError::is_restored)).
    #[error("child workflow `{workflow}` ({path}) ended without its result: {source}")]
    Failed {
        /// The child workflow's name.
        workflow: String,
        /// The child's path in the parent's stream.
        path: String,
        /// How the child's run ended.
        source: Box<WorkflowError>,
    },
    /// The step did not declare the child workflow.
    #[error(
        "step `{step}` runs child workflow `{workflow}` without declaring it; add #[step(children({workflow}))] to the step"
    )]
    Undeclared {
        /// The step's name.
        step: String,
        /// The child workflow's name.
        workflow: String,
    },
    /// The child could not start: the step, running again after a resume, did something else
    /// at this point than before the snapshot (the run fails with
    /// [`WorkflowError::NonDeterministic`]).
    #[error("child workflow `{workflow}` could not start: {source}")]
    NotStarted {
        /// The child workflow's name.
        workflow: String,
        /// Why.
        source: SendError,
    },
    /// The parent's snapshot holds the child's, and it does not resume into this binary's
    /// child workflow.
    #[error("child workflow `{workflow}` ({path}) could not be resumed: {source}")]
    Resume {
        /// The child workflow's name.
        workflow: String,
        /// The child's path.
        path: String,
        /// Why.
        source: ResumeError,
    },
}

impl ChildError {
    /// How the child's run ended, for [`ChildError::Failed`].
    pub fn workflow_error(&self) -> Option<&WorkflowError> {
        match self {
            ChildError::Failed { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

/// The future of a child run: its result once it ends. Get one from
/// [`Context::run_child`]; await it in the step that started it.
///
/// Dropping it before the child ends cancels the child.
///
/// [`Runner`]: crate::Runner
#[must_use = "a child run moves only while its step awaits it"]
pub struct ChildRun<'a, W: Workflow> {
    state: State<W>,
    _context: PhantomData<&'a ()>,
}

enum State<W: Workflow> {
    Running(Box<Running<W>>),
    Ready(Option<Result<Output<W>, ChildError>>),
}

struct Running<W: Workflow> {
    /// The child's control loop, shared with the memo slot so that the parent's snapshot can
    /// record it.
    cell: Arc<Mutex<RunLoop<W>>>,
    /// Keeps the idle child alive and gives its outcome.
    handler: Handler<Output<W>>,
    memo: SharedMemo,
    parent: Arc<dyn HasShared>,
    call: u32,
    path: Arc<str>,
}

// The result is only moved out, never pinned.
impl<W: Workflow> Unpin for ChildRun<'_, W> {}

impl<W: Workflow> ChildRun<'_, W> {
    pub(crate) fn ready(result: Result<Output<W>, ChildError>) -> Self {
        ChildRun {
            state: State::Ready(Some(result)),
            _context: PhantomData,
        }
    }

    pub(crate) fn running(
        cell: Arc<Mutex<RunLoop<W>>>,
        handler: Handler<Output<W>>,
        memo: SharedMemo,
        parent: Arc<dyn HasShared>,
        call: u32,
        path: Arc<str>,
    ) -> Self {
        ChildRun {
            state: State::Running(Box::new(Running {
                cell,
                handler,
                memo,
                parent,
                call,
                path,
            })),
            _context: PhantomData,
        }
    }
}

impl<W: Workflow> Future for ChildRun<'_, W>
where
    Output<W>: Serialize,
{
    type Output = Result<Output<W>, ChildError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let running = match &mut this.state {
            State::Ready(result) => {
                return Poll::Ready(result.take().expect("a child run's result is taken once"));
            }
            State::Running(running) => running,
        };
        {
            let mut child = lock(&running.cell);
            // The child's loop is driven by the step that awaits it: its wake-ups wake the step.
            let _ = Pin::new(&mut *child).poll(cx);
        }
        let outcome = match Pin::new(&mut running.handler).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(outcome) => outcome,
        };
        let result = outcome.map_err(|source| ChildError::Failed {
            workflow: W::NAME.to_owned(),
            path: running.path.to_string(),
            source: Box::new(source),
        });
        lock(&running.memo)
            .children
            .end(running.call, children::ended(&result));
        running.parent.shared().children().remove(&running.path);
        this.state = State::Ready(None);
        Poll::Ready(result)
    }
}

impl<W: Workflow> Drop for ChildRun<'_, W> {
    fn drop(&mut self) {
        if let State::Running(running) = &self.state {
            // Dropped before the child ended: the child is cancelled (its loop, dropped with the
            // last reference, ends it), and the step starts it afresh if it runs again.
            lock(&running.memo).children.forget(running.call);
            running.parent.shared().children().remove(&running.path);
        }
    }
}

impl<W: Workflow> std::fmt::Debug for ChildRun<'_, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("ChildRun");
        out.field("workflow", &W::NAME);
        if let State::Running(running) = &self.state {
            out.field("path", &running.path);
        }
        out.finish()
    }
}

/// What `run_child` found for its call in the memo.
pub(crate) enum Found {
    /// Nothing: start the child.
    New,
    /// A snapshot of the child: resume it, then give it what its pending link took meanwhile.
    Snapshot(
        Box<crate::Snapshot>,
        Arc<str>,
        crate::runtime::children::PendingHold,
    ),
    /// The child ended before: its result again.
    Ended(ChildSlot),
}

/// Decodes the result a memo recorded for a child of workflow `W`.
pub(crate) fn recorded<W: Workflow>(slot: ChildSlot) -> Result<Output<W>, ChildError>
where
    Output<W>: DeserializeOwned,
{
    children::recorded::<Output<W>>(W::NAME, slot)
}
