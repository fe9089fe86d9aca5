//! Bringing runs into memory: starting a new one, adopting a stored one (from its snapshot,
//! or from its start event when it has none), and letting one go.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use workflows::Snapshot;

use super::live::Live;
use super::{Engine, StartError, pump};
use crate::clock::{new_id, now_us};
use crate::served::{Carried, Run, Served};
use crate::storage::ErrorChain;
use crate::storage::{Created, HandlerRecord, RunUpdate, Status, StorageError};

/// How often, and how long apart, a start under the id of a run that has just ended looks
/// whether that run has left memory (a second in all).
const ENDED_RUN_LOOKS: usize = 50;
const ENDED_RUN_LEAVING: Duration = Duration::from_millis(20);

/// What a run starts from, stored with its handler: a restart before the run's first
/// snapshot starts from it again.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct StoredStart {
    /// The start event's registered name.
    pub name: String,
    /// Its JSON.
    pub data: Value,
    /// The state and store taken over from an ended run of the same handler id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried: Option<Carried>,
}

impl StoredStart {
    fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a start record serializes")
    }
}

impl Engine {
    /// Starts `workflow` on `start` (a decoded start event) as handler `handler_id`.
    pub(crate) async fn start(
        self: &Arc<Self>,
        workflow: &str,
        start_name: &str,
        start_data: Value,
        handler_id: Option<String>,
    ) -> Result<HandlerRecord, StartError> {
        let served = self
            .workflow(workflow)
            .cloned()
            .ok_or_else(|| StartError::BadStart(format!("no workflow `{workflow}`")))?;
        let start = decode_event(start_name, start_data.clone()).map_err(StartError::BadStart)?;
        // A handler id made here is new: no earlier run of it can exist to continue from.
        let chosen = handler_id.is_some();
        let handler_id = handler_id.unwrap_or_else(new_id);
        let run_id = new_id();
        let lease = self.new_lease();
        let now = now_us();
        let record = HandlerRecord {
            handler_id: handler_id.clone(),
            workflow_name: workflow.to_owned(),
            run_id: run_id.clone(),
            status: Status::Running,
            error: None,
            result: None,
            started_at: now,
            updated_at: now,
            completed_at: None,
            idle_since: None,
            owner: Some(lease.clone()),
            lease_until: None,
        };
        if !self.takes_runs() {
            return Err(StartError::NotTakingRuns);
        }
        // Held until the run is in memory, so that an event sent meanwhile does not make
        // this server adopt (and start) the same run a second time. A run that has just
        // ended may still be leaving memory: give it a moment.
        let mut adopting = self.live.begin_adopting(&handler_id);
        for _ in 0..ENDED_RUN_LOOKS {
            if adopting.is_some() {
                break;
            }
            match self.storage.handler(&handler_id).await? {
                Some(r) if r.status.is_terminal() => {
                    tokio::time::sleep(ENDED_RUN_LEAVING).await;
                    adopting = self.live.begin_adopting(&handler_id);
                }
                _ => break,
            }
        }
        let Some(_adopting) = adopting else {
            return Err(StartError::AlreadyRunning(handler_id));
        };
        // A handler id of an ended run continues from that run's final state, as the
        // reference does.
        let carried = match chosen {
            true => self.carried_state(&handler_id).await?,
            false => None,
        };
        // Stored with the start event, so that a restart before the run's first snapshot
        // starts from them too.
        let stored_start = StoredStart {
            name: start_name.to_owned(),
            data: start_data,
            carried: carried.clone(),
        }
        .to_json();
        if self
            .storage
            .create_handler(record.clone(), stored_start, self.lease_ms())
            .await?
            == Created::AlreadyRunning
        {
            return Err(StartError::AlreadyRunning(handler_id));
        }
        match served.start(start, &run_id, 0, carried.as_ref()) {
            Ok(run) => self.attach(handler_id, run_id, lease, run, 0),
            Err(error) => {
                self.fail(
                    &handler_id,
                    &lease,
                    format!("the run could not start: {error}"),
                )
                .await?;
                return Err(StartError::BadStart(error));
            }
        }
        Ok(record)
    }

    /// Records that the run `handler_id`, held here, failed with `error`, and lets it go.
    pub(super) async fn fail(
        &self,
        handler_id: &str,
        lease: &str,
        error: String,
    ) -> Result<(), StorageError> {
        let update = RunUpdate {
            status: Some(Status::Failed),
            error: Some(error),
            release: true,
            ..RunUpdate::default()
        };
        let updated = self
            .storage
            .update_run(handler_id, lease, update, now_us())
            .await;
        self.changes.wake(handler_id);
        updated.map(drop)
    }

    /// The final state and store of the ended run `handler_id`, if there are some.
    async fn carried_state(&self, handler_id: &str) -> Result<Option<Carried>, StorageError> {
        match self.storage.handler(handler_id).await? {
            Some(record) if record.status.is_terminal() => {}
            _ => return Ok(None),
        }
        let state = self.storage.run_state(handler_id).await?;
        Ok(state
            .and_then(|s| s.snapshot)
            .and_then(|text| Snapshot::from_json(&text).ok())
            .map(|last| Carried {
                state: last.state,
                store: last.store,
            }))
    }

    /// Puts `run` in memory and starts its pump, reading its stream from `from`. While the
    /// server shuts down or cannot renew its leases, the run is cancelled instead and its
    /// lease given up, for another server to resume it.
    fn attach(
        self: &Arc<Self>,
        handler_id: String,
        run_id: String,
        lease: String,
        run: Box<dyn Run>,
        from: u64,
    ) {
        let live = Arc::new(Live::new(handler_id, run_id, lease, run));
        if !self.live.insert_if(live.clone(), || self.takes_runs()) {
            live.run.cancel();
            let engine = self.clone();
            tokio::spawn(async move {
                if let Err(e) = engine.storage.release(&live.handler_id, &live.lease).await {
                    tracing::error!(handler = %live.handler_id, "letting go of the run failed: {}", ErrorChain(&e));
                }
            });
            return;
        }
        // Its watchers that found it parked or elsewhere now watch it here.
        self.changes.wake(&live.handler_id);
        let pump = pump::Pump {
            engine: self.clone(),
            stream: live.run.stream_from(from),
            live,
            idle_deadline: None,
            last_written: None,
            delivered: Vec::new(),
            delivered_due: None,
            recent_due: None,
        };
        tokio::spawn(pump.run());
    }

    /// Removes `live` from memory and wakes its readers. The run is cancelled first: a run
    /// this server lets go of (parked, handed over, lost to another server, or left at
    /// shutdown) must not go on executing here; its stored snapshot is where it resumes.
    pub(super) fn forget(&self, live: &Live) {
        live.run.cancel();
        self.live.remove(live);
        live.stored.notify_waiters();
    }

    /// Makes sure someone will take the run's inbox: wakes it if it is here, otherwise
    /// brings it here if no other server holds it.
    pub(crate) async fn wake(self: &Arc<Self>, handler_id: &str) {
        if self.is_closing() {
            // The next server takes the inbox.
            return;
        }
        if let Some(live) = self.live.get(handler_id) {
            live.kick.notify_one();
            return;
        }
        if let Err(e) = self.adopt(handler_id).await {
            tracing::error!(handler = %handler_id, "bringing the run back failed: {}", ErrorChain(&e));
        }
    }

    /// Takes the run's lease and brings it into memory from its snapshot (or its start
    /// event). Does nothing if another server holds it or the workflow is not served here.
    pub(crate) async fn adopt(self: &Arc<Self>, handler_id: &str) -> Result<(), StorageError> {
        let Some(record) = self.storage.handler(handler_id).await? else {
            return Ok(());
        };
        let Some(served) = self.workflow(&record.workflow_name).cloned() else {
            return Ok(());
        };
        let Some(_adopting) = self.live.begin_adopting(handler_id) else {
            return Ok(());
        };
        let lease = self.new_lease();
        if !self.takes_runs()
            || !self
                .storage
                .claim(handler_id, &lease, self.lease_ms())
                .await?
        {
            return Ok(());
        }
        // Read again under the lease: the handler may have started a new run meanwhile.
        let Some(record) = self.storage.handler(handler_id).await? else {
            return Ok(());
        };
        let Some(state) = self.storage.run_state(handler_id).await? else {
            return Ok(());
        };
        // Events published again after a resume get new numbers, after every stored one, so
        // that none is dropped as a duplicate and readers see them all.
        let next = self
            .storage
            .last_sequence(&record.run_id)
            .await?
            .map_or(0, |last| last + 1);
        let resumed = match &state.snapshot {
            Some(text) => Snapshot::from_json(text)
                .map_err(|e| e.to_string())
                .and_then(|mut snapshot| {
                    snapshot.next_stream_seq = snapshot.next_stream_seq.max(next);
                    let from = snapshot.next_stream_seq;
                    served
                        .resume(snapshot)
                        .map(|run| (run, from))
                        .map_err(|e| e.to_string())
                }),
            None => {
                restart(&*served, &state.start_event, &record.run_id, next).map(|run| (run, next))
            }
        };
        match resumed {
            Ok((run, from)) => {
                self.attach(handler_id.to_owned(), record.run_id, lease, run, from);
            }
            Err(error) => {
                self.fail(
                    handler_id,
                    &lease,
                    format!("the run could not be resumed: {error}"),
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// Decodes the registered event `name` from `data`.
pub(crate) fn decode_event(
    name: &str,
    data: Value,
) -> Result<Box<dyn workflows::AnyEvent>, String> {
    match workflows::registry::decode(name, data) {
        None => Err(format!(
            "Invalid event type: {name}. No event type of that name is registered"
        )),
        Some(Err(e)) => Err(format!("Failed to deserialize event: {e}")),
        Some(Ok(ev)) => Ok(ev),
    }
}

/// Starts a stored run again from its start event (it had no snapshot yet).
fn restart(
    served: &dyn Served,
    start: &str,
    run_id: &str,
    first_seq: u64,
) -> Result<Box<dyn Run>, String> {
    let stored: StoredStart = serde_json::from_str(start)
        .map_err(|e| format!("the stored start event cannot be read: {e}"))?;
    let ev = decode_event(&stored.name, stored.data)?;
    served.start(ev, run_id, first_seq, stored.carried.as_ref())
}
