//! How a run ends: with its stop event, a failure, a cancel or a timeout; the last event it
//! publishes, and the snapshot a resumable end keeps.
//!
//! # Invariants
//!
//! - `finish_with` is the only place that sets `done` and the run's outcome, and it does so
//!   once; everything the loop owns is dropped there (cancelling steps still running and ending
//!   every wait).
//! - A cancelled or timed-out run keeps a snapshot taken after settling (a consistent cut,
//!   like a live one); a stop event or failure found while settling wins over the cancel.

use std::sync::Arc;

use crate::runtime::invocations::FailureFacts;
use crate::runtime::run_loop::RunLoop;
use crate::snapshot::RunStatus;
use crate::{
    AnyEvent, StopType, Workflow, WorkflowCancelled, WorkflowError, WorkflowFailed,
    WorkflowTimedOut,
};

impl<W: Workflow> RunLoop<W> {
    /// Ends the run with its stop event `ev`.
    pub(super) fn stop_with(&mut self, ev: Box<dyn AnyEvent>) {
        // The stream gets the event; the caller gets a copy of its result.
        let published: Arc<dyn AnyEvent> = Arc::from(ev);
        let stop = (*published)
            .downcast_ref::<W::Stop>()
            .expect("called for the stop type only")
            .clone();
        self.finish_with(Ok(Box::new(stop.into_output())), published);
    }

    /// Ends the run with `error`, publishing the matching last event.
    pub(super) fn fail(&mut self, error: WorkflowError) {
        self.fail_step(error, FailureFacts::default());
    }

    /// Ends the run with `error`; for a step's failure, its last event also says what
    /// `facts` hold.
    pub(super) fn fail_step(&mut self, error: WorkflowError, facts: FailureFacts) {
        let last: Arc<dyn AnyEvent> = match &error {
            WorkflowError::Cancelled => Arc::new(WorkflowCancelled {}),
            WorkflowError::Timeout {
                timeout,
                active_steps,
            } => Arc::new(WorkflowTimedOut {
                timeout_ms: timeout.as_millis() as u64,
                active_steps: active_steps.clone(),
            }),
            err => Arc::new(WorkflowFailed {
                step: step_of(err),
                error: own_message(err),
                error_type: facts.error_type.map(str::to_owned),
                attempts: facts.attempts,
                elapsed_seconds: facts.elapsed.map(|d| d.as_secs_f64()),
            }),
        };
        self.finish_with(Err(error), last);
    }

    pub(super) fn finish_with(
        &mut self,
        outcome: Result<Box<dyn std::any::Any + Send>, WorkflowError>,
        last: Arc<dyn AnyEvent>,
    ) {
        if self.done {
            return;
        }
        // A cancelled or timed-out run can be resumed: keep it as it was.
        let resumable = match &outcome {
            Err(WorkflowError::Cancelled) => Some(RunStatus::Cancelled),
            Err(WorkflowError::Timeout { .. }) => Some(RunStatus::TimedOut),
            _ => None,
        };
        if resumable.is_some() {
            // What steps sent before the end belongs in the snapshot of the end. Taking it in
            // may end the run another way first (a stop event, a failure): that end stands.
            self.settle(true);
            if self.done {
                return;
            }
        }
        self.done = true;
        if let Some(status) = resumable
            && let Ok(snapshot) = self.capture(status)
        {
            self.run.shared.keep_final_snapshot(snapshot);
        }
        match &outcome {
            Ok(_) => tracing::debug!(parent: self.span.get(), "run finished"),
            Err(err) => tracing::debug!(parent: self.span.get(), error = %err, "run ended"),
        }
        // Dropping the in-flight futures cancels the steps still running.
        self.in_flight = None;
        self.scheduler.clear();
        self.invocations.clear();
        self.fan_outs.clear();
        self.sets.clear();
        // Dropping the replies ends any wait still pending.
        self.waiters.clear(&self.run.shared);
        self.run.shared.clear_collect();
        self.run.shared.stream.publish_last(last);
        self.run.shared.finish(outcome);
    }
}

/// What went wrong, in the failing step's own words when a step failed (its error's message,
/// or the panic's), else the run's error.
fn own_message(err: &WorkflowError) -> String {
    match err {
        WorkflowError::StepFailed { source, .. } => source.to_string(),
        WorkflowError::StepPanicked { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn step_of(err: &WorkflowError) -> Option<String> {
    match err {
        WorkflowError::StepFailed { step, .. }
        | WorkflowError::StepPanicked { step, .. }
        | WorkflowError::Unroutable { step, .. } => Some(step.clone()),
        _ => None,
    }
}

impl<W: Workflow> RunLoop<W> {
    /// Marks a loop that will never be polled as done, so that dropping it does not end the
    /// run a second time.
    pub(crate) fn abandon(&mut self) {
        self.done = true;
    }
}

impl<W: Workflow> Drop for RunLoop<W> {
    fn drop(&mut self) {
        // The runtime shut down under a live run: its handler must not wait forever.
        if !self.done {
            self.fail(WorkflowError::Cancelled);
        }
    }
}
