//! Resuming a run from a snapshot: checks first, then the run as the snapshot left it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::runtime::effects::{Effect, EffectLog};
use crate::runtime::invocation::{Failure, InFlight, Invocation, SharedFailure};
use crate::runtime::memo::Memo;
use crate::runtime::run_loop::{Queued, RunLoop};
use crate::runtime::shared::{BufferKey, Buffered, CollectBuffers, RunCore, RunShared};
use crate::runtime::waiters::Waiter;
use crate::snapshot::{BufferName, ResumeError, SNAPSHOT_VERSION, Snapshot, StoredEvent};
use crate::workflow::Output;
use crate::{AnyEvent, Handler, RunOptions, Runner, StepFailed, Store, Workflow, WorkflowError};

/// The event a snapshot stored, decoded through the registry.
fn decode(stored: StoredEvent) -> Result<Box<dyn AnyEvent>, ResumeError> {
    match crate::registry::decode(&stored.name, stored.data) {
        None => Err(ResumeError::UnknownEvent { name: stored.name }),
        Some(Err(e)) => Err(ResumeError::BadEvent {
            name: stored.name,
            message: e.to_string(),
        }),
        Some(Ok(ev)) => Ok(ev),
    }
}

/// A failure a restored `StepFailed` event reports; its original error type is gone.
fn restored_failure(ev: &dyn AnyEvent, text: String) -> SharedFailure {
    let (step, attempts) = ev
        .downcast_ref::<StepFailed>()
        .map_or((String::new(), 1), |f| (f.step.clone(), f.attempts));
    Arc::new(Mutex::new(Failure {
        error: Some(WorkflowError::StepFailed {
            step,
            attempts,
            source: text.into(),
        }),
        undecided: 1,
        recovered: false,
    }))
}

/// Checks `snapshot` against `runner`'s workflow and starts the run it describes.
pub(crate) fn resume<W: Workflow>(
    runner: &Runner<W>,
    snapshot: Snapshot,
    options: RunOptions,
) -> Result<Handler<Output<W>>, ResumeError> {
    let routes = runner.inner.routes.clone();
    if snapshot.version == 0 {
        return Err(ResumeError::Malformed {
            message: "version 0 does not exist".into(),
        });
    }
    if snapshot.version > SNAPSHOT_VERSION {
        return Err(ResumeError::NewerVersion {
            found: snapshot.version,
            supported: SNAPSHOT_VERSION,
        });
    }
    if snapshot.workflow != W::NAME {
        return Err(ResumeError::WrongWorkflow {
            expected: W::NAME.to_owned(),
            found: snapshot.workflow,
        });
    }
    if snapshot.fingerprint != routes.fingerprint() {
        return Err(ResumeError::ChangedWorkflow {
            expected: routes.fingerprint().to_owned(),
            found: snapshot.fingerprint,
        });
    }
    if !snapshot.status.is_resumable() {
        return Err(ResumeError::RunEnded {
            status: snapshot.status,
        });
    }
    let step_of = |name: &str| {
        routes
            .step_index(name)
            .ok_or_else(|| ResumeError::UnknownStep {
                name: name.to_owned(),
            })
    };
    let state: W::State = snapshot.state.parse().map_err(|e| ResumeError::BadState {
        message: e.to_string(),
    })?;
    let store = snapshot.store.parse().map_err(|e| ResumeError::BadState {
        message: format!("the store is not a JSON object: {e}"),
    })?;

    let mut collect: CollectBuffers = HashMap::new();
    for buffer in snapshot.collect {
        let key = match buffer.buffer {
            BufferName::Named(name) => BufferKey::Named(name),
            BufferName::Type(name) => match crate::registry::info_of(&name) {
                Some(info) => BufferKey::Type(info.type_id),
                None => return Err(ResumeError::UnknownEvent { name }),
            },
        };
        let events = buffer
            .events
            .into_iter()
            .map(|b| {
                Ok(Buffered {
                    tag: (b.invocation, b.call),
                    ev: decode(b.event)?,
                })
            })
            .collect::<Result<Vec<_>, ResumeError>>()?;
        collect.insert((step_of(&buffer.step)?, key), events);
    }

    let shared = Arc::new(RunShared {
        core: RunCore::restored(
            snapshot.run_id,
            routes.clone(),
            snapshot.next_stream_seq,
            Store::from_map(store),
            collect,
        ),
        state: Mutex::new(state),
    });
    let mut run_loop = RunLoop::new(runner.inner.workflow.clone(), shared.clone(), options);
    run_loop.next_seq = snapshot.next_invocation;

    for queued in snapshot.queues {
        let step = step_of(&queued.step)?;
        let ev = decode(queued.event)?;
        let handles = queued.failure.map(|text| restored_failure(&*ev, text));
        run_loop.queues[step].push_back(Queued { ev, handles });
    }

    let now = Instant::now();
    let mut slots = HashMap::new();
    let mut backoffs = Vec::new();
    for record in snapshot.invocations {
        let step = step_of(&record.step)?;
        let input = decode(record.input)?;
        let mut memo = Memo::default();
        for (id, ev) in record.resolved {
            memo.resolved.insert(id, decode(ev)?);
        }
        memo.timed_out = record
            .timed_out
            .into_iter()
            .map(|(id, ms)| (id, Duration::from_millis(ms)))
            .collect();
        memo.once = record.once.into_iter().collect();
        memo.effects = EffectLog::restored(
            record
                .effects
                .into_iter()
                .map(Effect::from_record)
                .collect(),
            record.once_effects.into_iter().collect(),
        );
        for (call, batch) in record.collected {
            let events = batch
                .into_iter()
                .map(decode)
                .collect::<Result<Vec<_>, _>>()?;
            memo.collected.insert(call, events);
        }
        let retry_at = record.retry_in_ms.map(|ms| now + Duration::from_millis(ms));
        let handles = record.failure.map(|text| restored_failure(&*input, text));
        let slot = run_loop.alloc(Invocation {
            step,
            input,
            attempt: record.attempt.max(1),
            seq: record.seq,
            last_error: record.last_error,
            handles,
            memo: Some(Arc::new(Mutex::new(memo))),
            retry_at,
            running: false,
        });
        run_loop.active[step] += 1;
        slots.insert(record.seq, slot);
        if let Some(at) = retry_at {
            backoffs.push((slot, at));
        }
    }

    for record in snapshot.waiters {
        let Some(&slot) = slots.get(&record.invocation) else {
            return Err(ResumeError::Malformed {
                message: format!(
                    "waiter `{}` belongs to invocation {}, which the snapshot does not hold",
                    record.id, record.invocation
                ),
            });
        };
        let Some(event) = crate::registry::info_of(&record.event) else {
            return Err(ResumeError::UnknownEvent { name: record.event });
        };
        run_loop.waiters.push(Waiter {
            memo_key: record.memo_key.unwrap_or_else(|| record.id.clone()),
            id: record.id,
            slot,
            seq: record.invocation,
            step: step_of(&record.step)?,
            event,
            requirements: record.requirements,
            timeout: record.timeout_ms.map(Duration::from_millis),
            deadline: record
                .remaining_ms
                .map(|ms| now + Duration::from_millis(ms)),
            reply: None,
        });
    }
    // Timers need a runtime; without one the run cannot start (and must not panic).
    if tokio::runtime::Handle::try_current().is_err() {
        run_loop.abandon();
        let handler = Handler::new(shared.clone());
        shared.core.finish(Err(WorkflowError::NoRuntime));
        return Ok(handler);
    }
    run_loop.waiters_changed();

    // Invocations that were running start again from their beginning (at least once);
    // those waiting for an answer start when it comes; back-offs finish their wait.
    for (&seq, &slot) in &slots {
        if run_loop.waiters.iter().any(|w| w.seq == seq) {
            continue;
        }
        match backoffs.iter().find(|(s, _)| *s == slot) {
            Some(&(_, at)) => run_loop
                .in_flight
                .get_or_insert_with(Default::default)
                .push(InFlight::backoff(slot, tokio::time::sleep_until(at))),
            None => run_loop.retry_now.push_back(slot),
        }
    }
    let mut due: Vec<usize> = run_loop.retry_now.drain(..).collect();
    due.sort_unstable();
    run_loop.retry_now.extend(due);

    Ok(super::launch(runner, shared, run_loop))
}
