//! Taking a snapshot of a live run, from inside its control loop (so it is consistent).

use tokio::time::Instant;

use crate::runtime::run_loop::RunLoop;
use crate::runtime::shared::{BufferKey, lock};
use crate::snapshot::{
    BufferName, BufferedEvent, CollectBuffer, InvocationRecord, QueuedEvent, RunStatus,
    SNAPSHOT_VERSION, Snapshot, SnapshotError, StoredEvent, WaiterRecord,
};
use crate::{AnyEvent, Workflow};

/// `ev` as a snapshot stores it.
pub(crate) fn store_event(ev: &dyn AnyEvent) -> Result<StoredEvent, SnapshotError> {
    let data = ev.to_json().map_err(|e| SnapshotError::Serialize {
        what: format!("event `{}`", ev.name()),
        message: e.to_string(),
    })?;
    Ok(StoredEvent {
        name: ev.name().to_owned(),
        data,
    })
}

fn millis_until(deadline: Instant, now: Instant) -> u64 {
    deadline.saturating_duration_since(now).as_millis() as u64
}

impl<W: Workflow> RunLoop<W> {
    /// The run as it stands, with `status`.
    pub(super) fn capture(&self, status: RunStatus) -> Result<Snapshot, SnapshotError> {
        let now = Instant::now();
        let core = &self.shared.core;
        let step_name = |step: usize| W::STEPS[step].name.to_owned();

        let mut queues = Vec::new();
        // Events with a reserved worker are older than those queued for the same step.
        let ready = self.ready.iter().map(|(step, queued)| (*step, queued));
        let queued = self
            .queues
            .iter()
            .enumerate()
            .flat_map(|(step, queue)| queue.iter().map(move |queued| (step, queued)));
        for (step, queued) in ready.chain(queued) {
            {
                queues.push(QueuedEvent {
                    step: step_name(step),
                    event: store_event(&*queued.ev)?,
                    failure: queued.handles.as_ref().map(failure_text),
                });
            }
        }

        let mut invocations = Vec::new();
        for inv in self.invocations.iter().flatten() {
            let mut record = InvocationRecord {
                seq: inv.seq,
                step: step_name(inv.step),
                input: store_event(&*inv.input)?,
                attempt: inv.attempt,
                last_error: inv.last_error.clone(),
                retry_in_ms: inv.retry_at.map(|at| millis_until(at, now)),
                resolved: Default::default(),
                timed_out: Default::default(),
                once: Default::default(),
                collected: Default::default(),
                failure: inv.handles.as_ref().map(failure_text),
                effects: Vec::new(),
                once_effects: Default::default(),
            };
            if let Some(memo) = &inv.memo {
                let memo = lock(memo);
                for (id, ev) in &memo.resolved {
                    record.resolved.insert(id.clone(), store_event(&**ev)?);
                }
                for (id, after) in &memo.timed_out {
                    record
                        .timed_out
                        .insert(id.clone(), after.as_millis() as u64);
                }
                record.once = memo.once.clone().into_iter().collect();
                record.effects = memo
                    .effects
                    .effects()
                    .iter()
                    .map(|e| e.to_record())
                    .collect();
                record.once_effects = memo
                    .effects
                    .once_counts()
                    .map(|(key, n)| (key.to_owned(), n))
                    .collect();
                for (call, batch) in &memo.collected {
                    let events = batch
                        .iter()
                        .map(|ev| store_event(&**ev))
                        .collect::<Result<_, _>>()?;
                    record.collected.insert(*call, events);
                }
            }
            invocations.push(record);
        }
        invocations.sort_by_key(|r| r.seq);

        let mut collect = Vec::new();
        for ((step, key), events) in lock(&core.collect).iter() {
            let buffer = match key {
                BufferKey::Named(name) => BufferName::Named(name.clone()),
                BufferKey::Type(_) => match events.first() {
                    Some(b) => BufferName::Type(b.ev.name().to_owned()),
                    None => continue,
                },
            };
            collect.push(CollectBuffer {
                step: step_name(*step),
                buffer,
                events: events
                    .iter()
                    .map(|b| {
                        Ok(BufferedEvent {
                            invocation: b.tag.0,
                            call: b.tag.1,
                            event: store_event(&*b.ev)?,
                        })
                    })
                    .collect::<Result<_, SnapshotError>>()?,
            });
        }
        collect.sort_by(|a, b| {
            (&a.step, format!("{:?}", a.buffer)).cmp(&(&b.step, format!("{:?}", b.buffer)))
        });

        let waiters = self
            .waiters
            .iter()
            .map(|w| WaiterRecord {
                id: w.id.clone(),
                memo_key: (w.memo_key != w.id).then(|| w.memo_key.clone()),
                invocation: w.seq,
                step: step_name(w.step),
                event: w.event.name.to_owned(),
                requirements: w.requirements.clone(),
                timeout_ms: w.timeout.map(|t| t.as_millis() as u64),
                remaining_ms: w.deadline.map(|d| millis_until(d, now)),
            })
            .collect();

        Ok(Snapshot {
            version: SNAPSHOT_VERSION,
            workflow: W::NAME.to_owned(),
            fingerprint: core.routes.fingerprint().to_owned(),
            run_id: core.run_id.clone(),
            status,
            state: self.shared.state_json()?,
            store: core.store.to_raw()?,
            queues,
            invocations,
            collect,
            waiters,
            next_invocation: self.next_seq,
            next_stream_seq: core.stream.next_seq(),
        })
    }
}

fn failure_text(failure: &crate::runtime::invocation::SharedFailure) -> String {
    lock(failure)
        .error
        .as_ref()
        .map_or_else(|| "recovered".to_owned(), ToString::to_string)
}
