//! Running invocations: starting one, each attempt, and what its end does — the output
//! dispatched, a retry after back-off, or the failure offered to the failure steps.
//!
//! # Invariants
//!
//! - A new attempt's future is polled once inline; only if it is pending does it go to the
//!   loop's `FuturesUnordered` (most steps finish at once and never get there).
//! - Events a step sent through its context are applied before the event it returned.
//! - When an attempt ends, its waiters go with it; its invocation's worker is released only
//!   when the invocation ends for good (not between a failed attempt and its retry).
//! - A retry is a new attempt: the memo's wait timeouts and effect log start afresh, while
//!   answers, `once` results and collected batches carry over.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use futures_util::stream::FuturesUnordered;

use crate::context::Placement;
use crate::lifecycle::{StepState, StepStateChanged};
use crate::runtime::attempt::{Completion, InFlight, poll_step};
use crate::runtime::invocations::{Failure, FailureFacts, Invocation, InvocationId};
use crate::runtime::lineage::{Input, batch_name};
use crate::runtime::run_loop::RunLoop;
use crate::runtime::scheduler::{Queued, Start};
use crate::runtime::shared::lock;
use crate::{Context, Emitted, StepError, StepFailed, Workflow, WorkflowError};

impl<W: Workflow> RunLoop<W> {
    /// Starts what the scheduler has ready, within `budget`.
    pub(super) fn start_ready(&mut self, cx: &mut TaskContext<'_>, budget: &mut u32) {
        while *budget > 0
            && !self.done
            && let Some(start) = self.scheduler.next()
        {
            match start {
                Start::Attempt(id) => self.attempt(id, cx),
                Start::New(step, queued) => self.start(step, queued, cx),
            }
            *budget -= 1;
        }
    }

    /// Starts an invocation of `step` on `queued`; its worker is already counted.
    fn start(&mut self, step: usize, queued: Queued, cx: &mut TaskContext<'_>) {
        let number = self.invocations.take_number();
        let id = self.invocations.insert(Invocation {
            step,
            input: queued.input,
            lineage: queued.lineage,
            attempt: 1,
            number,
            last_failure: None,
            failure: queued.failure,
            memo: None,
            retry_at: None,
            started: *self.clock.get_or_insert_with(tokio::time::Instant::now),
            running: true,
        });
        self.attempt(id, cx);
        self.idle_published = false;
    }

    /// Runs one attempt of invocation `id`: polls it once, and parks it if pending.
    fn attempt(&mut self, id: InvocationId, cx: &mut TaskContext<'_>) {
        let Some(inv) = self.invocations.get_mut(id) else {
            return;
        };
        inv.running = true;
        inv.retry_at = None;
        let inv = &*inv;
        let step = inv.step;
        let info = &W::STEPS[step];
        let max_attempts = self.runner.retry[step]
            .as_ref()
            .map_or(1, |p| p.max_attempts());
        let ctx = Context::new(
            self.run.clone(),
            Placement {
                step,
                invocation: id,
                number: inv.number,
                lineage: inv.lineage.clone(),
            },
            (inv.attempt, max_attempts),
            inv.last_failure.clone(),
            inv.memo.clone(),
        );
        if self.internal_events {
            self.run.shared.stream.publish(Arc::new(StepStateChanged {
                step: info.name.to_owned(),
                state: StepState::Running,
                invocation: inv.number,
                input_event: inv.input.name().into_owned(),
                output_event: None,
            }));
        }
        let span = tracing::info_span!(
            parent: self.span.get(),
            "workflow.step",
            step = info.name,
            event = &*inv.input.name(),
            attempt = inv.attempt,
        );
        let Some(mut fut) = self.runner.workflow.__invoke(step, ctx, inv.input.events()) else {
            let event = inv.input.name().into_owned();
            self.fail(WorkflowError::Unroutable {
                step: info.name.to_owned(),
                event,
            });
            return;
        };
        let polled = {
            let _entered = span.enter();
            poll_step(&mut fut, cx)
        };
        match polled {
            Poll::Ready(result) => self.complete(Completion::Attempt(id, result)),
            Poll::Pending => self
                .in_flight
                .get_or_insert_with(FuturesUnordered::new)
                .push(InFlight::step(id, fut, span)),
        }
    }

    /// Applies the end of an in-flight entry.
    pub(super) fn complete(&mut self, completion: Completion) {
        let (id, result) = match completion {
            Completion::BackoffOver(id) => {
                self.scheduler.attempt_due(id);
                return;
            }
            Completion::Attempt(id, result) => (id, result),
        };
        // The attempt's future is gone, and with it any wait it had begun.
        self.waiters.drop_of(id, &self.run.shared);
        // Events the step sent through its context come before the one it returned.
        self.run.shared.inbox.take(&mut self.taken);
        self.apply_taken();
        if self.done {
            return;
        }
        match result {
            Ok(output) => {
                let Some(inv) = self.release(id) else {
                    return;
                };
                self.publish_finished(&inv, &output);
                if let Some(shared) = inv.failure.clone() {
                    let mut failure = lock(&shared);
                    failure.undecided -= 1;
                    failure.recovered |= !matches!(output, Emitted::Nothing);
                    if failure.undecided == 0
                        && !failure.recovered
                        && let Some(error) = failure.error.take()
                    {
                        let (facts, step, attempts) =
                            (failure.facts, failure.step, failure.attempts);
                        drop(failure);
                        // The handler's copy of the error goes first, so that the run's error
                        // is the step's own value.
                        drop(inv);
                        self.fail_step(error.into_workflow_error(step, attempts), facts);
                        return;
                    }
                }
                match output {
                    Emitted::Nothing => {}
                    Emitted::One(ev) => self.emit(inv.step, ev, inv.lineage.clone()),
                    Emitted::FanOut(events) => self.fan_out(inv.step, events, &inv.lineage),
                }
                if !self.done {
                    self.let_go(&inv.lineage);
                }
            }
            Err(err) => self.retry_or_fail(id, err),
        }
    }

    /// After a failed attempt: schedules the next one if the step's retry policy allows, else
    /// offers the failure to the failure steps, or ends the run with it.
    fn retry_or_fail(&mut self, id: InvocationId, err: StepError) {
        let span = self.span.get();
        let Some(inv) = self.invocations.get_mut(id) else {
            return;
        };
        let step = inv.step;
        let delay = self.runner.retry[step]
            .as_ref()
            .and_then(|p| p.next_delay_at(inv.attempt, err.as_error(), inv.started.elapsed()));
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
            inv.last_failure = Some(err);
            if let Some(memo) = &inv.memo {
                lock(memo).new_attempt();
            }
            if delay.is_zero() {
                inv.running = true;
                self.scheduler.attempt_due(id);
            } else {
                // A wait too long to add (a policy's `Duration::MAX`) is as good as forever.
                let now = tokio::time::Instant::now();
                inv.retry_at = Some(
                    now.checked_add(delay)
                        .unwrap_or_else(|| now + Duration::from_secs(60 * 60 * 24 * 365 * 30)),
                );
                self.in_flight
                    .get_or_insert_with(FuturesUnordered::new)
                    .push(InFlight::backoff(id, tokio::time::sleep(delay)));
            }
            return;
        }
        let Some(inv) = self.release(id) else {
            return;
        };
        self.publish_finished(&inv, &Emitted::Nothing);
        let name = W::STEPS[step].name;
        // The failure steps covering this step, each while its budget of recoveries on this
        // lineage lasts.
        let failure_steps: Vec<usize> = self
            .run
            .shared
            .routes
            .failure_steps_of(step)
            .iter()
            .copied()
            .filter(|&h| inv.lineage.recoveries_by(h) < W::STEPS[h].max_recoveries)
            .collect();
        let facts = FailureFacts {
            error_type: err.type_name(),
            attempts: Some(inv.attempt),
            elapsed: Some(inv.started.elapsed()),
        };
        // A failing failure step ends the run with its own error (it covers no failure step),
        // and so does a failure no failure step covers or has budget left for.
        if failure_steps.is_empty() {
            self.fail_step(err.into_workflow_error(name, inv.attempt), facts);
            return;
        }
        let failed = StepFailed {
            step: name.to_owned(),
            attempts: inv.attempt,
            elapsed_seconds: facts.elapsed.unwrap_or_default().as_secs_f64(),
            error: err.to_string(),
            panicked: err.is_panic(),
            input_event: inv.input.name().into_owned(),
            input: inv.input.to_json(),
            source: Some(err.clone()),
        };
        let failure = Arc::new(std::sync::Mutex::new(Failure {
            of: inv.number,
            error: Some(err),
            step: name,
            attempts: inv.attempt,
            facts,
            undecided: failure_steps.len(),
            recovered: false,
        }));
        for handler in failure_steps {
            // What the handler's recovery leads to carries the recovery.
            self.enqueue(
                handler,
                Queued {
                    input: Input::One(Box::new(failed.clone())),
                    lineage: inv.lineage.recovered_by(handler),
                    failure: Some(failure.clone()),
                },
            );
        }
        self.let_go(&inv.lineage);
    }

    /// Ends invocation `id` for good and frees its worker.
    fn release(&mut self, id: InvocationId) -> Option<Invocation> {
        debug_assert!(!self.waiters.has_waiter_of(id));
        let inv = self.invocations.remove(id)?;
        self.scheduler.release_worker(inv.step);
        Some(inv)
    }

    fn publish_finished(&self, inv: &Invocation, output: &Emitted) {
        if self.internal_events {
            self.run.shared.stream.publish(Arc::new(StepStateChanged {
                step: W::STEPS[inv.step].name.to_owned(),
                state: StepState::NotRunning,
                invocation: inv.number,
                input_event: inv.input.name().into_owned(),
                output_event: match output {
                    Emitted::Nothing => None,
                    Emitted::One(ev) => Some(ev.name().to_owned()),
                    Emitted::FanOut(events) => Some(batch_name(events)),
                },
            }));
        }
    }
}
