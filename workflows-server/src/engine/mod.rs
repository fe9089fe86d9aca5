//! The runs a server executes: starting them, storing what they publish, delivering what is
//! sent to them, parking idle ones and bringing stored ones back.
//!
//! Every run in memory has a [pump](pump) task. Events and cancels sent through the API always
//! go through the run's stored inbox first, so an answer accepted with `200` survives a crash
//! of the server that accepted it, whichever server owns the run.

mod pump;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::time::Instant;
use workflows::{EventInfo, Snapshot};

use crate::clock::{new_id, now_us};
use crate::config::Config;
use crate::served::{Carried, Run, Served};
use crate::storage::ErrorChain;
use crate::storage::{Created, HandlerRecord, RunUpdate, Status, Storage, StorageError};

/// Why starting a run failed.
#[derive(Debug)]
pub(crate) enum StartError {
    /// The start event is not valid for the workflow.
    BadStart(String),
    /// A running handler has this id.
    AlreadyRunning(String),
    /// The store failed.
    Storage(StorageError),
    /// The server takes no runs now: it is shutting down, or cannot renew its leases.
    NotTakingRuns,
}

impl From<StorageError> for StartError {
    fn from(e: StorageError) -> Self {
        StartError::Storage(e)
    }
}

/// A run in this server's memory.
pub(crate) struct Live {
    handler_id: String,
    run_id: String,
    /// The lease this copy of the run is held under (`{server}/{n}`).
    lease: String,
    run: Box<dyn Run>,
    /// Woken each time events of the run are stored, and when it leaves memory.
    pub(crate) stored: Notify,
    /// Woken when the run's inbox may hold items.
    kick: Notify,
    /// Woken when the server shuts down: store the run and let it go.
    stop: Notify,
    /// Woken when this server may have lost its leases: let the run go at once.
    abandon: Notify,
    /// Set with `abandon`: the run is cancelled here and nothing more of it is stored.
    abandoned: AtomicBool,
}

/// The server's workflows and the runs it holds.
pub(crate) struct Engine {
    /// This server's id: its leases are named `{id}/{n}`.
    pub(crate) id: String,
    pub(crate) storage: Arc<dyn Storage>,
    /// Registered workflows, in registration order.
    pub(crate) workflows: Vec<(String, Arc<dyn Served>)>,
    /// Events listed for a workflow beyond those of its steps.
    pub(crate) extra_events: HashMap<String, Vec<EventInfo>>,
    pub(crate) config: Config,
    live: Mutex<HashMap<String, Arc<Live>>>,
    /// Runs being brought into memory right now (so that two callers do not both do it).
    adopting: Mutex<HashSet<String>>,
    closing: AtomicBool,
    /// False while this server cannot renew its leases: it takes no run then.
    leases_ok: AtomicBool,
    /// Numbers this server's leases.
    claims: std::sync::atomic::AtomicU64,
}

/// Marks a run as being adopted until dropped.
struct Adopting<'a> {
    engine: &'a Engine,
    handler_id: String,
}

impl Drop for Adopting<'_> {
    fn drop(&mut self) {
        lock(&self.engine.adopting).remove(&self.handler_id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    pub(crate) fn new(
        storage: Arc<dyn Storage>,
        workflows: Vec<(String, Arc<dyn Served>)>,
        extra_events: HashMap<String, Vec<EventInfo>>,
        config: Config,
    ) -> Self {
        Engine {
            id: format!("server-{}", new_id()),
            storage,
            workflows,
            extra_events,
            config,
            live: Mutex::new(HashMap::new()),
            adopting: Mutex::new(HashSet::new()),
            leases_ok: AtomicBool::new(true),
            claims: std::sync::atomic::AtomicU64::new(0),
            closing: AtomicBool::new(false),
        }
    }

    /// Whether the server is shutting down (open streams end).
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Whether the server may take runs: it is not shutting down, and it can renew leases.
    fn takes_runs(&self) -> bool {
        !self.is_closing() && self.leases_ok.load(Ordering::SeqCst)
    }

    /// The workflow registered as `name`.
    pub(crate) fn workflow(&self, name: &str) -> Option<&Arc<dyn Served>> {
        self.workflows
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, w)| w)
    }

    /// The event types the workflow `name` declares (its graph's) and those registered for it
    /// with [`Server::events`](crate::Server::events), each once: what may be sent into its
    /// runs (besides a type a step waits for inside), and what `/workflows/{name}/events`
    /// lists. Empty for a workflow this server does not serve.
    pub(crate) fn accepted_events(&self, name: &str) -> Vec<EventInfo> {
        let Some(served) = self.workflow(name) else {
            return Vec::new();
        };
        let mut events: Vec<EventInfo> = Vec::new();
        let extra = self.extra_events.get(name).into_iter().flatten();
        for info in served.graph().events().iter().chain(extra) {
            if !events.iter().any(|e| e.name == info.name) {
                events.push(*info);
            }
        }
        events
    }

    /// Whether the run `handler_id` waits, inside a step, for an event named `name` right
    /// now (it may take it though its workflow does not declare it): asked of the run when
    /// it is in memory, else read from its stored snapshot's waiters.
    pub(crate) async fn waits_for(
        &self,
        handler_id: &str,
        ev: &dyn workflows::AnyEvent,
        step: Option<&str>,
    ) -> Result<bool, StorageError> {
        if let Some(live) = self.live(handler_id) {
            return Ok(live.run.can_take(ev, step));
        }
        let Some(state) = self.storage.run_state(handler_id).await? else {
            return Ok(false);
        };
        let Some(snapshot) = state
            .snapshot
            .and_then(|text| serde_json::from_str::<workflows::Snapshot>(&text).ok())
        else {
            return Ok(false);
        };
        Ok(snapshot
            .waiters
            .iter()
            .any(|w| w.event == ev.name() && step.is_none_or(|s| w.step == s)))
    }

    /// The run `handler_id`, if it is in this server's memory.
    pub(crate) fn live(&self, handler_id: &str) -> Option<Arc<Live>> {
        lock(&self.live).get(handler_id).cloned()
    }

    /// Whether `live` is still this server's copy of its run in memory. A reader that made
    /// its `stored.notified()` future before asking is woken when the run stores events or
    /// leaves memory ([`forget`](Self::forget) removes the run, then notifies), so it needs no
    /// timer while this holds.
    pub(crate) fn still_live(&self, live: &Live) -> bool {
        lock(&self.live)
            .get(&live.handler_id)
            .is_some_and(|l| std::ptr::eq(&**l, live))
    }

    /// The number of runs in memory.
    pub(crate) fn live_count(&self) -> usize {
        lock(&self.live).len()
    }

    /// A new lease name for one claim of a run: writes of an earlier copy of the run, held
    /// under another name, are refused even after this server claims the run again.
    fn new_lease(&self) -> String {
        format!(
            "{}/{}",
            self.id,
            self.claims.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// The length of a lease, in milliseconds.
    fn lease_ms(&self) -> i64 {
        self.config.lease_ttl.as_millis() as i64
    }

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
        let mut adopting = self.begin_adopting(&handler_id);
        for _ in 0..50 {
            if adopting.is_some() {
                break;
            }
            match self.storage.handler(&handler_id).await? {
                Some(r) if r.status.is_terminal() => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    adopting = self.begin_adopting(&handler_id);
                }
                _ => break,
            }
        }
        let Some(_adopting) = adopting else {
            return Err(StartError::AlreadyRunning(handler_id));
        };
        // A handler id of an ended run continues from that run's final state, as the
        // reference does.
        let carried = self.carried_state(&handler_id).await?;
        // Stored with the start event, so that a restart before the run's first snapshot
        // starts from them too.
        let stored_start = match &carried {
            Some(c) => json!({ "name": start_name, "data": start_data, "carried": c }),
            None => json!({ "name": start_name, "data": start_data }),
        }
        .to_string();
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
    async fn fail(&self, handler_id: &str, lease: &str, error: String) -> Result<(), StorageError> {
        let update = RunUpdate {
            status: Some(Status::Failed),
            error: Some(error),
            release: true,
            ..RunUpdate::default()
        };
        self.storage
            .update_run(handler_id, lease, update, now_us())
            .await
            .map(drop)
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
        let mut map = lock(&self.live);
        if !self.takes_runs() {
            drop(map);
            run.cancel();
            let engine = self.clone();
            tokio::spawn(async move {
                if let Err(e) = engine.storage.release(&handler_id, &lease).await {
                    tracing::error!(handler = %handler_id, "letting go of the run failed: {}", ErrorChain(&e));
                }
            });
            return;
        }
        let live = Arc::new(Live {
            handler_id: handler_id.clone(),
            run_id,
            lease,
            run,
            stored: Notify::new(),
            kick: Notify::new(),
            stop: Notify::new(),
            abandon: Notify::new(),
            abandoned: AtomicBool::new(false),
        });
        map.insert(handler_id, live.clone());
        drop(map);
        let pump = pump::Pump {
            engine: self.clone(),
            stream: live.run.stream_from(from),
            live,
            idle_deadline: None,
        };
        tokio::spawn(pump.run());
    }

    /// Removes `live` from memory and wakes its readers. The run is cancelled first: a run
    /// this server lets go of (parked, handed over, lost to another server, or left at
    /// shutdown) must not go on executing here; its stored snapshot is where it resumes.
    fn forget(&self, live: &Live) {
        live.run.cancel();
        let mut map = lock(&self.live);
        if map
            .get(&live.handler_id)
            .is_some_and(|l| std::ptr::eq(&**l, live))
        {
            map.remove(&live.handler_id);
        }
        drop(map);
        live.stored.notify_waiters();
    }

    /// Makes sure someone will take the run's inbox: wakes it if it is here, otherwise
    /// brings it here if no other server holds it.
    pub(crate) async fn wake(self: &Arc<Self>, handler_id: &str) {
        if self.is_closing() {
            // The next server takes the inbox.
            return;
        }
        if let Some(live) = self.live(handler_id) {
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
        let Some(_adopting) = self.begin_adopting(handler_id) else {
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

    /// Marks `handler_id` as being adopted, unless it is in memory or already being adopted.
    fn begin_adopting(&self, handler_id: &str) -> Option<Adopting<'_>> {
        let live = lock(&self.live);
        let mut adopting = lock(&self.adopting);
        if live.contains_key(handler_id) || !adopting.insert(handler_id.to_owned()) {
            return None;
        }
        Some(Adopting {
            engine: self,
            handler_id: handler_id.to_owned(),
        })
    }

    /// Renews every lease this server holds, every third of the lease's length, on a task of
    /// its own so that nothing else delays it. Runs until the server stops.
    ///
    /// If renewals fail or hang until the leases could run out, every run in memory is let go
    /// of at once (cancelled, nothing more written): another server may be resuming it, and
    /// a run must not execute in two places while this one waits for its next write.
    pub(crate) async fn renew_leases(self: Arc<Self>) {
        let ttl = self.config.lease_ttl;
        let mut valid_until = Instant::now() + ttl;
        let mut next = Instant::now() + ttl / 3;
        loop {
            // Every third of a lease from the previous send (at once if that one took
            // longer), so that a steadily slow store is not mistaken for a lost one.
            tokio::time::sleep_until(next).await;
            let sent = Instant::now();
            next = sent + ttl / 3;
            // While runs are held, wait for the answer only as long as their leases surely
            // hold (a sixth of a lease is kept as margin); while none is (after giving up),
            // as long as that allows in steady state: half a lease.
            let limit = if self.leases_ok.load(Ordering::SeqCst) {
                valid_until - ttl / 6
            } else {
                sent + ttl / 2
            };
            let renewal = self.storage.renew(&self.id, self.lease_ms());
            match tokio::time::timeout_at(limit, renewal).await {
                Ok(Ok(())) => {
                    valid_until = sent + ttl;
                    self.leases_ok.store(true, Ordering::SeqCst);
                }
                Ok(Err(e)) => {
                    tracing::error!("renewing leases failed: {}", ErrorChain(&e));
                    if Instant::now() + ttl / 3 >= limit {
                        self.abandon_all("renewals failed until the leases could run out");
                    }
                }
                Err(_) => self.abandon_all("renewing leases did not answer in time"),
            }
        }
    }

    /// Lets go of every run in memory at once, without writing anything: each is cancelled
    /// (its steps stop here) and taken out of memory, and its pump stops. The store's leases
    /// decide who resumes it.
    /// This server also stops taking runs until a renewal answers again.
    fn abandon_all(&self, why: &str) {
        let all: Vec<Arc<Live>> = {
            // Under the lock `attach` takes: a run attached after this is refused there.
            let mut map = lock(&self.live);
            self.leases_ok.store(false, Ordering::SeqCst);
            // Out of memory at once, even if a pump is stuck in a call to the store.
            map.drain().map(|(_, live)| live).collect()
        };
        if !all.is_empty() {
            tracing::error!("{why}: letting go of {} run(s)", all.len());
        }
        for live in all {
            abandon(&live);
        }
    }

    /// Hands inbox items to runs held here, lets go of runs held here that are not in memory
    /// (a run whose pump stopped on a storage error), and adopts runs no live server holds.
    /// Runs until the server stops.
    pub(crate) async fn maintain(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.config.poll_interval).await;
            if self.is_closing() {
                return;
            }
            match self.storage.with_inbox(&self.id).await {
                Ok(ids) => {
                    for id in ids {
                        // A run held here but not in memory is being started or adopted,
                        // and takes its inbox once it is.
                        if let Some(live) = self.live(&id) {
                            live.kick.notify_one();
                        }
                    }
                }
                Err(e) => tracing::error!("reading inboxes failed: {}", ErrorChain(&e)),
            }
            match self.storage.held(&self.id).await {
                Ok(held) => {
                    for (id, lease) in held {
                        // Held across the release, so that no adoption starts meanwhile.
                        let Some(_adopting) = self.begin_adopting(&id) else {
                            continue;
                        };
                        if let Err(e) = self.storage.release(&id, &lease).await {
                            tracing::error!(handler = %id, "letting go of the run failed: {}", ErrorChain(&e));
                        }
                    }
                }
                Err(e) => tracing::error!("listing held runs failed: {}", ErrorChain(&e)),
            }
            match self.storage.orphans().await {
                Ok(ids) => {
                    for id in ids {
                        if self.live(&id).is_none()
                            && let Err(e) = self.adopt(&id).await
                        {
                            tracing::error!(handler = %id, "adopting the run failed: {}", ErrorChain(&e));
                        }
                    }
                }
                Err(e) => tracing::error!("looking for orphaned runs failed: {}", ErrorChain(&e)),
            }
        }
    }

    /// Waits until the handler has ended, up to `limit` (or until the server shuts down);
    /// its record then (`None` if it is gone).
    pub(crate) async fn wait_ended(
        &self,
        handler_id: &str,
        limit: Option<Duration>,
    ) -> Result<Option<HandlerRecord>, StorageError> {
        let deadline = limit.map(|l| Instant::now() + l);
        loop {
            let live = self.live(handler_id);
            let notified = live.as_ref().map(|l| l.stored.notified());
            // Made before the check: if the run leaves memory after it, `notified` fires.
            let here = live.as_ref().is_some_and(|l| self.still_live(l));
            let record = self.storage.handler(handler_id).await?;
            match &record {
                Some(r) if !r.status.is_terminal() => {}
                _ => return Ok(record),
            }
            if self.is_closing() || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(record);
            }
            // A run in memory here says when it stores events or leaves; only a run held
            // elsewhere or parked is polled.
            let pause = async {
                if here {
                    std::future::pending().await
                } else {
                    tokio::time::sleep(self.config.poll_interval).await
                }
            };
            let until = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            match notified {
                Some(n) => {
                    tokio::select! {
                        () = n => {}
                        () = pause => {}
                        () = until => {}
                    }
                }
                None => {
                    tokio::select! {
                        () = pause => {}
                        () = until => {}
                    }
                }
            }
        }
    }

    /// Stores the snapshot of every run in memory and gives up their leases, so that a
    /// restarted server (or another one) resumes them. Waits for the runs' pumps, up to 10 s.
    pub(crate) async fn shutdown(&self) {
        // Under the lock `attach` takes: no run comes into memory after the list is taken.
        let all: Vec<Arc<Live>> = {
            let map = lock(&self.live);
            self.closing.store(true, Ordering::SeqCst);
            map.values().cloned().collect()
        };
        for live in &all {
            live.stop.notify_one();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.live_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A pump stuck on the store: its run must not go on here once the leases lapse.
        self.abandon_all("shutting down with runs not stored");
        for live in all {
            live.stored.notify_waiters();
        }
    }
}

/// Lets go of `live` at once: see [`Engine::abandon_all`].
fn abandon(live: &Live) {
    live.abandoned.store(true, Ordering::SeqCst);
    live.run.cancel();
    live.abandon.notify_one();
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
    let stored: Value = serde_json::from_str(start).map_err(|e| e.to_string())?;
    let name = stored["name"].as_str().unwrap_or_default();
    let ev = decode_event(name, stored["data"].clone())?;
    let carried: Option<Carried> = match stored.get("carried") {
        Some(c) => Some(serde_json::from_value(c.clone()).map_err(|e| e.to_string())?),
        None => None,
    };
    served.start(ev, run_id, first_seq, carried.as_ref())
}
