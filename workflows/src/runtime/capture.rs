//! Taking a snapshot of a live run, from inside its control loop (so it is consistent): the
//! snapshot's header here, each part of the loop recording its own state.

use tokio::time::Instant;

use crate::runtime::run_loop::RunLoop;
use crate::runtime::shared::{BufferKey, CollectBuffers};
use crate::snapshot::{
    BufferName, BufferedEvent, CollectBuffer, RunStatus, SNAPSHOT_VERSION, Snapshot, SnapshotError,
    StoredEvent,
};
use crate::{AnyEvent, StepInfo, Workflow};

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

/// The milliseconds from `now` to `deadline` (0 once it has passed), as snapshots store them.
pub(crate) fn millis_until(deadline: Instant, now: Instant) -> u64 {
    deadline.saturating_duration_since(now).as_millis() as u64
}

impl<W: Workflow> RunLoop<W> {
    /// The run as it stands, with `status`: each part records itself.
    pub(super) fn capture(&self, status: RunStatus) -> Result<Snapshot, SnapshotError> {
        let now = Instant::now();
        let shared = &self.run.shared;
        let mut invocations = self
            .invocations
            .iter()
            .map(|(_, inv)| {
                let retry_in_ms = inv.retry_at.map(|at| millis_until(at, now));
                // Only a policy that stops on time needs it, and it changes every instant.
                let stops_on_time = self.runner.retry[inv.step]
                    .as_ref()
                    .is_some_and(|p| p.stops_on_time());
                let tried_for_ms = stops_on_time
                    .then(|| now.saturating_duration_since(inv.started).as_millis() as u64);
                inv.to_record(W::STEPS, retry_in_ms, tried_for_ms)
            })
            .collect::<Result<Vec<_>, _>>()?;
        invocations.sort_by_key(|r| r.number);
        // Read after the invocations: recording a live child may publish what it was sent
        // (a prompt), and those events must count in `next_stream_seq`.
        Ok(Snapshot {
            version: SNAPSHOT_VERSION,
            workflow: W::NAME.to_owned(),
            fingerprint: shared.routes.fingerprint().to_owned(),
            run_id: shared.run_id.clone(),
            status,
            state: self.run.state_json()?,
            store: shared.store.to_raw()?,
            queues: self.scheduler.capture(W::STEPS)?,
            invocations,
            collect: shared.read_collect(|buffers| capture_collect(buffers, W::STEPS))?,
            fan_outs: self.fan_outs.capture(W::STEPS)?,
            unpaired: self.sets.capture(W::STEPS)?,
            waiters: self.waiters.capture(W::STEPS, now)?,
            next_invocation: self.invocations.next_number(),
            next_stream_seq: shared.stream.next_seq(),
            next_fan_out: self.fan_outs.next_id(),
            next_child: shared.children_started(),
            requests: self.requests.capture()?,
        })
    }
}

/// The collect buffers as a snapshot records them, in a stable order.
fn capture_collect(
    buffers: &CollectBuffers,
    steps: &[StepInfo],
) -> Result<Vec<CollectBuffer>, SnapshotError> {
    let mut collect = Vec::new();
    for ((step, key), events) in buffers {
        let buffer = match key {
            BufferKey::Named(name) => BufferName::Named(name.clone()),
            BufferKey::Type(_) => match events.first() {
                Some(b) => BufferName::Type(b.ev.name().to_owned()),
                None => continue,
            },
        };
        collect.push(CollectBuffer {
            step: steps[*step].name.to_owned(),
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
    Ok(collect)
}
