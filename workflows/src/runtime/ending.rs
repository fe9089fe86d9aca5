//! How a step fails for good and how a run ends: retries, failure handlers, the last event.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Context as TaskContext;

use futures_util::stream::FuturesUnordered;

use crate::runtime::invocation::{AttemptError, Failure, InFlight};
use crate::runtime::run_loop::{Queued, RunLoop};
use crate::runtime::shared::lock;
use crate::snapshot::RunStatus;
use crate::{
    AnyEvent, StepFailed, StopType, Workflow, WorkflowCancelled, WorkflowError, WorkflowFailed,
    WorkflowTimedOut,
};

impl<W: Workflow> RunLoop<W> {
    pub(super) fn retry_or_fail(
        &mut self,
        slot: usize,
        err: AttemptError,
        _cx: &mut TaskContext<'_>,
    ) {
        let span = &self.span;
        let inv = self.invocations[slot].as_mut().expect("live slot");
        let step = inv.step;
        let delay = W::__retry_policy(step).and_then(|p| p.next_delay(inv.attempt, err.as_error()));
        if let Some(delay) = delay {
            tracing::debug!(
                parent: span,
                step = W::STEPS[step].name,
                attempt = inv.attempt,
                error = %err.as_error(),
                "step failed; retrying"
            );
            inv.attempt += 1;
            inv.running = false;
            inv.last_error = Some(err.as_error().to_string());
            // A new attempt waits again and performs its effects afresh: only answers, `once`
            // results and collected batches are remembered.
            if let Some(memo) = &inv.memo {
                lock(memo).new_attempt();
            }
            if delay.is_zero() {
                self.retry_now.push_back(slot);
            } else {
                inv.retry_at = Some(tokio::time::Instant::now() + delay);
                self.in_flight
                    .get_or_insert_with(FuturesUnordered::new)
                    .push(InFlight::backoff(slot, tokio::time::sleep(delay)));
            }
            return;
        }
        let inv = self.release(slot);
        self.publish_finished(&inv, None);
        let name = W::STEPS[step].name;
        let handlers = self
            .shared
            .core
            .routes
            .receivers(std::any::TypeId::of::<StepFailed>())
            .to_vec();
        let error = err.into_workflow_error(name, inv.attempt);
        // A failing failure handler ends the run with its own error.
        if handlers.is_empty() || handlers.contains(&step) {
            self.finish(Err(error));
            return;
        }
        let failed = StepFailed {
            step: name.to_owned(),
            attempts: inv.attempt,
            error: match &error {
                WorkflowError::StepFailed { source, .. } => source.to_string(),
                WorkflowError::StepPanicked { message, .. } => format!("panic: {message}"),
                other => other.to_string(),
            },
            input_event: inv.input.name().to_owned(),
            input: inv.input.to_json().unwrap_or(serde_json::Value::Null),
        };
        let failure = Arc::new(std::sync::Mutex::new(Failure {
            error: Some(error),
            undecided: handlers.len(),
            recovered: false,
        }));
        for handler in handlers {
            self.enqueue(
                handler,
                Queued {
                    ev: Box::new(failed.clone()),
                    handles: Some(failure.clone()),
                },
            );
        }
    }

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

    /// Ends the run with `outcome`, publishing the matching last event.
    pub(super) fn finish(&mut self, outcome: Result<Box<dyn std::any::Any + Send>, WorkflowError>) {
        let last: Arc<dyn AnyEvent> = match &outcome {
            Ok(_) => unreachable!("a result ends the run through finish_with"),
            Err(WorkflowError::Cancelled) => Arc::new(WorkflowCancelled {}),
            Err(WorkflowError::Timeout {
                timeout,
                active_steps,
            }) => Arc::new(WorkflowTimedOut {
                timeout_ms: timeout.as_millis() as u64,
                active_steps: active_steps.clone(),
            }),
            Err(err) => Arc::new(WorkflowFailed {
                step: step_of(err),
                error: err.to_string(),
            }),
        };
        self.finish_with(outcome, last);
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
            *lock(&self.shared.core.final_snapshot) = Some(Box::new(snapshot));
        }
        match &outcome {
            Ok(_) => tracing::debug!(parent: &self.span, "run finished"),
            Err(err) => tracing::debug!(parent: &self.span, error = %err, "run ended"),
        }
        // Dropping the in-flight futures cancels the steps still running.
        self.in_flight = None;
        self.queues.iter_mut().for_each(VecDeque::clear);
        self.ready.clear();
        self.invocations.clear();
        self.retry_now.clear();
        // Dropping the replies ends any wait still pending.
        self.waiters.clear();
        self.shared.core.set_waiting(&[]);
        lock(&self.shared.core.collect).clear();
        self.stream().publish_last(last);
        self.shared.core.finish(outcome);
    }

    /// The steps running or with events queued.
    pub(super) fn active_steps(&self) -> Vec<String> {
        W::STEPS
            .iter()
            .zip(self.active.iter().zip(&self.queues))
            .filter(|(_, (n, q))| **n > 0 || !q.is_empty())
            .map(|(s, _)| s.name.to_owned())
            .collect()
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
            self.finish(Err(WorkflowError::Cancelled));
        }
    }
}
