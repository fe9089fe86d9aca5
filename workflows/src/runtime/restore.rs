//! Resuming a run from a snapshot: checks first, then the run as the snapshot left it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::runtime::attempt::InFlight;
use crate::runtime::children::{Forward, check_records};
use crate::runtime::fan_outs::RestoredFanOut;
use crate::runtime::invocations::{Failure, FailureFacts, Invocation, InvocationId, SharedFailure};
use crate::runtime::lineage::{Input, Lineage};
use crate::runtime::memo::Memo;
use crate::runtime::requests::Requests;
use crate::runtime::run_loop::{Built, RunLoop};
use crate::runtime::scheduler::Queued;
use crate::runtime::shared::{
    BufferKey, Buffered, CollectBuffers, HasShared, Run, RunShared, lock,
};
use crate::runtime::waiters::Waiter;
use crate::snapshot::{
    BufferName, ResumeError, SNAPSHOT_VERSION, Snapshot, StoredEvent, StoredInput,
};
use crate::stream::StreamLog;
use crate::workflow::Output;
use crate::{
    AnyEvent, Handler, RunOptions, Runner, StepError, StepFailed, StepInfo, Store, Workflow,
};

/// The event a snapshot stored, decoded through the registry.
pub(crate) fn decode(stored: StoredEvent) -> Result<Box<dyn AnyEvent>, ResumeError> {
    match crate::registry::decode(&stored.name, stored.data) {
        None => Err(ResumeError::UnknownEvent { name: stored.name }),
        Some(Err(e)) => Err(ResumeError::BadEvent {
            name: stored.name,
            message: e.to_string(),
        }),
        Some(Ok(ev)) => Ok(ev),
    }
}

/// What a snapshot stored as an invocation's input, decoded.
fn decode_input(stored: StoredInput) -> Result<Input, ResumeError> {
    Ok(match stored {
        StoredInput::One(ev) => Input::One(decode(ev)?),
        StoredInput::Batch(events) => {
            Input::Batch(events.into_iter().map(decode).collect::<Result<_, _>>()?)
        }
    })
}

/// The failures restored `StepFailed` events report, one per failed invocation, shared by its
/// copies (one per failure step it was offered to); only the text is left of each error.
#[derive(Default)]
struct RestoredFailures(HashMap<u64, SharedFailure>);

impl RestoredFailures {
    /// The failure a restored copy reports: `text`, of invocation `of` (shared with the other
    /// copies of that number; a snapshot of version 2 names none), `recovered` by another
    /// failure step already.
    fn copy(
        &mut self,
        input: &Input,
        text: String,
        of: Option<u64>,
        recovered: bool,
        steps: &'static [StepInfo],
    ) -> SharedFailure {
        let make = || {
            let (step, attempts) = input
                .events()
                .first()
                .and_then(|ev| ev.downcast_ref::<StepFailed>())
                .map_or(("", 1), |f| {
                    let step = steps
                        .iter()
                        .find(|s| s.name == f.step)
                        .map_or("", |s| s.name);
                    (step, f.attempts)
                });
            Arc::new(Mutex::new(Failure {
                of: of.unwrap_or(u64::MAX),
                error: Some(StepError::restored(text)),
                step,
                attempts,
                facts: FailureFacts {
                    attempts: Some(attempts),
                    ..FailureFacts::default()
                },
                undecided: 0,
                recovered: false,
            }))
        };
        let failure = match of {
            Some(of) => self.0.entry(of).or_insert_with(make).clone(),
            None => make(),
        };
        {
            let mut shared = lock(&failure);
            shared.undecided += 1;
            shared.recovered |= recovered;
        }
        failure
    }
}

/// Checks what a run's counting relies on: fan-out numbers are unique and below the next one
/// to be given, and a fan-out sits only in branches of fan-outs opened before it.
fn check_fan_outs(fan_outs: &[RestoredFanOut], next: u64) -> Result<(), ResumeError> {
    let malformed = |message: String| Err(ResumeError::Malformed { message });
    for (i, f) in fan_outs.iter().enumerate() {
        if f.id >= next {
            return malformed(format!(
                "fan-out {} is not below the next fan-out number, {next}",
                f.id
            ));
        }
        if fan_outs[..i].iter().any(|g| g.id == f.id) {
            return malformed(format!("two fan-outs are numbered {}", f.id));
        }
        if let Some(b) = f.lineage.branches().iter().find(|b| b.fan_out >= f.id) {
            return malformed(format!(
                "fan-out {} sits in a branch of fan-out {}, which is not older",
                f.id, b.fan_out
            ));
        }
    }
    Ok(())
}

/// Checks `snapshot` against `runner`'s workflow and starts the run it describes.
pub(crate) fn resume<W: Workflow>(
    runner: &Runner<W>,
    snapshot: Snapshot,
    options: RunOptions,
) -> Result<Handler<Output<W>>, ResumeError> {
    let (run, run_loop) = restore_loop(runner, snapshot, options, None)?;
    Ok(super::launch(runner, run, run_loop))
}

/// Checks `snapshot` against `runner`'s workflow and builds the run it describes, its loop not
/// yet polled; `forward`, for a child run, says where its stream goes.
pub(crate) fn restore_loop<W: Workflow>(
    runner: &Runner<W>,
    snapshot: Snapshot,
    options: RunOptions,
    forward: Option<Forward>,
) -> Result<Built<W>, ResumeError> {
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

    for record in &snapshot.invocations {
        check_records(&W::STEPS[step_of(&record.step)?], &record.children)?;
    }
    let mut shared = RunShared::restored(
        snapshot.run_id,
        routes.clone(),
        snapshot.next_stream_seq,
        Store::from_map(store),
        collect,
    );
    if let Some(forward) = forward {
        shared.stream = StreamLog::forwarding(forward);
    }
    if snapshot.next_child > 0 {
        shared
            .next_child()
            .store(snapshot.next_child, std::sync::atomic::Ordering::Relaxed);
    }
    let run = Arc::new(Run {
        shared,
        state: Mutex::new(state),
    });
    let mut run_loop = RunLoop::new(runner.inner.clone(), run.clone(), options);
    run_loop.requests = Requests::restore(snapshot.requests)?;
    run_loop
        .invocations
        .set_next_number(snapshot.next_invocation);

    // The fan-outs first: what is restored after them counts in them.
    let mut fan_outs = Vec::with_capacity(snapshot.fan_outs.len());
    for record in snapshot.fan_outs {
        let mut joins = Vec::with_capacity(record.joins.len());
        for join in record.joins {
            let arrived = join
                .events
                .into_iter()
                .map(|j| Ok((j.element, decode(j.event)?)))
                .collect::<Result<Vec<_>, ResumeError>>()?;
            joins.push((step_of(&join.step)?, join.fired, arrived));
        }
        fan_outs.push(RestoredFanOut {
            id: record.id,
            source: step_of(&record.step)?,
            lineage: Lineage::from_records(&record.scope, &record.recoveries, step_of)?,
            joins,
        });
    }
    check_fan_outs(&fan_outs, snapshot.next_fan_out)?;
    run_loop
        .fan_outs
        .restore(snapshot.next_fan_out, fan_outs, W::STEPS);

    for unpaired in snapshot.unpaired {
        let step = step_of(&unpaired.step)?;
        let ev = decode(unpaired.event)?;
        let name = ev.name();
        let lineage = Lineage::from_records(&unpaired.scope, &unpaired.recoveries, step_of)?;
        if !run_loop.sets.restore(W::STEPS, step, ev, lineage) {
            return Err(ResumeError::Malformed {
                message: format!(
                    "`{name}` waits for its partners at step `{}`, which does not take it among several events",
                    unpaired.step
                ),
            });
        }
    }

    let mut failures = RestoredFailures::default();
    for queued in snapshot.queues {
        let step = step_of(&queued.step)?;
        let input = decode_input(queued.event)?;
        let failure = queued.failure.map(|text| {
            failures.copy(
                &input,
                text,
                queued.failure_of,
                queued.failure_recovered,
                W::STEPS,
            )
        });
        let lineage = Lineage::from_records(&queued.scope, &queued.recoveries, step_of)?;
        run_loop.fan_outs.hold(&lineage);
        run_loop.scheduler.restore_queued(
            step,
            Queued {
                input,
                lineage,
                failure,
            },
        );
    }

    let now = Instant::now();
    let mut ids = HashMap::new();
    let mut backoffs = Vec::new();
    let mut pending = Vec::new();
    let mut with_children = Vec::new();
    for mut record in snapshot.invocations {
        let step = step_of(&record.step)?;
        let memo = Memo::from_record(&mut record, &W::STEPS[step])?;
        // Children whose step has not run again take what is sent to them meanwhile.
        pending.extend(memo.children.pending().cloned());
        if memo.children.has_pending() {
            with_children.push(record.number);
        }
        let input = decode_input(record.input)?;
        let retry_at = record.retry_in_ms.map(|ms| now + Duration::from_millis(ms));
        let failure = record.failure.map(|text| {
            failures.copy(
                &input,
                text,
                record.failure_of,
                record.failure_recovered,
                W::STEPS,
            )
        });
        let lineage = Lineage::from_records(&record.scope, &record.recoveries, step_of)?;
        run_loop.fan_outs.hold(&lineage);
        let id = run_loop.invocations.insert(Invocation {
            step,
            input,
            lineage,
            attempt: record.attempt.max(1),
            number: record.number,
            last_failure: record.last_error.map(StepError::restored),
            failure,
            memo: Some(Arc::new(Mutex::new(memo))),
            retry_at,
            started: record
                .tried_for_ms
                .and_then(|ms| now.checked_sub(Duration::from_millis(ms)))
                .unwrap_or(now),
            running: false,
        });
        run_loop.scheduler.hold_worker(step);
        if ids.insert(record.number, id).is_some() {
            return Err(ResumeError::Malformed {
                message: format!("two invocations are numbered {}", record.number),
            });
        }
        if let Some(at) = retry_at {
            backoffs.push((id, at));
        }
    }

    // In the order the children started (their numbers).
    pending.sort_by_key(|child| child.number());
    let parent: Arc<dyn HasShared> = run.clone();
    for child in pending {
        child.link(&parent);
    }

    let mut waiters = Vec::new();
    for record in snapshot.waiters {
        let Some(&id) = ids.get(&record.invocation) else {
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
        waiters.push(Waiter {
            memo_key: record.memo_key.unwrap_or_else(|| record.id.clone()),
            id: record.id,
            invocation: id,
            number: record.invocation,
            step: step_of(&record.step)?,
            event,
            requirements: record.requirements,
            timeout: record.timeout_ms.map(Duration::from_millis),
            deadline: record
                .remaining_ms
                .map(|ms| now + Duration::from_millis(ms)),
            reply: None,
            prompt: match record.prompt {
                Some(prompt) => Some(Box::new((prompt.seq, Arc::from(decode(prompt.event)?)))),
                None => None,
            },
        });
    }
    // Timers need a runtime; without one the run cannot start (and must not panic): `launch`
    // ends it with `WorkflowError::NoRuntime`.
    if tokio::runtime::Handle::try_current().is_err() {
        return Ok((run, run_loop));
    }
    run_loop.waiters.restore(waiters, &run.shared);
    // A fan-out with no work left cannot come from a consistent cut; close it as the run would
    // have (its joins fire).
    while let Some(id) = run_loop.fan_outs.idle_after_restore() {
        let closed = run_loop.fan_outs.close_idle(id);
        run_loop.fire_closed(closed);
    }

    // Invocations that were running start again from their beginning (at least once), in
    // the order they started; those waiting for an answer start when it comes; back-offs
    // finish their wait.
    let mut restarted: Vec<(u64, InvocationId)> = ids.into_iter().collect();
    restarted.sort_unstable();
    for (number, id) in restarted {
        // One that also awaits children runs again now, to resume them.
        if run_loop.waiters.has_waiter_of(id) && !with_children.contains(&number) {
            continue;
        }
        match backoffs.iter().find(|(b, _)| *b == id) {
            Some(&(_, at)) => run_loop
                .in_flight
                .get_or_insert_with(Default::default)
                .push(InFlight::backoff(id, tokio::time::sleep_until(at))),
            None => {
                if let Some(inv) = run_loop.invocations.get_mut(id) {
                    inv.running = true;
                }
                run_loop.scheduler.attempt_due(id);
            }
        }
    }

    Ok((run, run_loop))
}
