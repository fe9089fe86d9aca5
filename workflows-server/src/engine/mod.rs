//! The runs a server executes, behind one façade the API uses: start, send, cancel, follow
//! (watch a run change), wait for its end, and health. Each part of the state lives in a
//! file named for it:
//!
//! | file | holds |
//! |---|---|
//! | `live.rs` | the runs in memory and the runs being brought into it |
//! | `runs.rs` | starting, adopting (resuming from the store) and letting go of runs |
//! | `pump.rs` | the task beside each run in memory: stores what it publishes, delivers its inbox |
//! | `recent.rs` | the events a run in memory stored lately, served to its stream readers |
//! | `leases.rs` | this server's leases: naming claims, renewing, letting go when renewal fails |
//! | `maintenance.rs` | the background round that finds work no request brought |
//! | `changes.rs` | the one way to wait for a stored run to change |
//!
//! Events and cancels sent through the API always go through the run's stored inbox first
//! ([`Engine::deliver`]), so an answer accepted with `200` survives a crash of the server that
//! accepted it, whichever server owns the run.

mod changes;
mod leases;
mod live;
mod maintenance;
mod pump;
mod recent;
mod runs;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use workflows::EventInfo;

use crate::config::Config;
use crate::served::Served;
use crate::storage::{
    ChangeFeed, HandlerFilter, HandlerRecord, InboxItem, Storage, StorageError, StoredEvent,
};

use live::LiveRuns;
pub(crate) use runs::decode_event;

/// How many events are stored in one write, or read in one query.
pub(crate) const EVENT_BATCH: usize = 256;

/// How long shutting down waits for the runs in memory to store their snapshots.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often shutting down looks whether they have.
const SHUTDOWN_LOOK: Duration = Duration::from_millis(5);

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

/// What cancelling a handler did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelOutcome {
    /// The run was cancelled (or had ended while the cancel was on its way).
    Cancelled,
    /// The handler was deleted with its events.
    Deleted,
    /// There is no such handler (or, without purging, it had already ended).
    NotFound,
}

/// The server's workflows and the runs it holds.
pub(crate) struct Engine {
    /// This server's id: its leases are named `{id}/{n}`.
    id: String,
    storage: Arc<dyn Storage>,
    /// Registered workflows, in registration order.
    workflows: Vec<(String, Arc<dyn Served>)>,
    /// Per workflow, the event types its runs take: see [`Engine::accepted_events`].
    accepted: HashMap<String, Vec<EventInfo>>,
    config: Config,
    live: LiveRuns,
    closing: AtomicBool,
    /// False while this server cannot renew its leases: it takes no run then.
    leases_ok: AtomicBool,
    /// Numbers this server's leases.
    claims: AtomicU64,
    /// The watchers of runs not in memory here, and what wakes them.
    changes: Arc<changes::Changes>,
    /// How long a watch of a run not in memory waits before it looks again.
    fallback: Duration,
}

impl Engine {
    pub(crate) fn new(
        storage: Arc<dyn Storage>,
        workflows: Vec<(String, Arc<dyn Served>)>,
        extra_events: HashMap<String, Vec<EventInfo>>,
        config: Config,
        feed: &ChangeFeed,
    ) -> Self {
        let fallback = match feed {
            ChangeFeed::Local | ChangeFeed::Shared(_) => changes::FALLBACK,
            ChangeFeed::Unknown => config.poll_interval,
        };
        // Worked out once: every event sent to a run is checked against it.
        let accepted = workflows
            .iter()
            .map(|(name, served)| {
                let mut events: Vec<EventInfo> = Vec::new();
                // The workflow's own types, its child workflows' (an answer may be for a
                // child), then the extra ones registered for it.
                let graph = served.graph();
                takes_from_outside(&graph, &mut events);
                for info in extra_events.get(name).into_iter().flatten() {
                    if !only_joins(&graph, info) && !events.iter().any(|e| e.name == info.name) {
                        events.push(*info);
                    }
                }
                (name.clone(), events)
            })
            .collect();
        Engine {
            id: format!("server-{}", crate::clock::new_id()),
            storage,
            workflows,
            accepted,
            config,
            live: LiveRuns::default(),
            leases_ok: AtomicBool::new(true),
            claims: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            changes: Arc::default(),
            fallback,
        }
    }

    /// Passes the changes `feed` tells of to the watchers of runs not in memory here; the
    /// task that does, if the feed tells of any.
    pub(crate) fn hear(&self, feed: ChangeFeed) -> Option<tokio::task::JoinHandle<()>> {
        self.changes.hear(feed)
    }

    /// This server's id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The server's configuration.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// Whether the server is shutting down (open streams end).
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Whether the server may take runs: it is not shutting down, and it can renew leases.
    fn takes_runs(&self) -> bool {
        !self.is_closing() && self.leases_ok.load(Ordering::SeqCst)
    }

    /// Healthy: the store can write (a full disk or a read-only database is unhealthy, not
    /// only a store that does not answer) and the server is not shutting down.
    pub(crate) async fn is_healthy(&self) -> bool {
        if self.is_closing() {
            return false;
        }
        match self.storage.probe_write().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("unhealthy: {}", crate::storage::ErrorChain(&e));
                false
            }
        }
    }

    /// The registered workflows' names, in registration order.
    pub(crate) fn workflow_names(&self) -> Vec<&str> {
        self.workflows.iter().map(|(n, _)| n.as_str()).collect()
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
    pub(crate) fn accepted_events(&self, name: &str) -> &[EventInfo] {
        self.accepted.get(name).map_or(&[], Vec::as_slice)
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
        if let Some(live) = self.live.get(handler_id) {
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
        Ok(waits_in(&snapshot, ev.name(), step))
    }

    /// The handler `handler_id`.
    pub(crate) async fn handler(
        &self,
        handler_id: &str,
    ) -> Result<Option<HandlerRecord>, StorageError> {
        self.storage.handler(handler_id).await
    }

    /// The handlers `filter` selects, oldest first.
    pub(crate) async fn handlers(
        &self,
        filter: HandlerFilter,
    ) -> Result<Vec<HandlerRecord>, StorageError> {
        self.storage.handlers(filter).await
    }

    /// What the store holds to bring `handler_id`'s run back: its start event and latest
    /// snapshot.
    pub(crate) async fn run_state(
        &self,
        handler_id: &str,
    ) -> Result<Option<crate::storage::RunState>, StorageError> {
        self.storage.run_state(handler_id).await
    }

    /// Up to `limit` stored events of the run `run_id` of `handler_id` after sequence number
    /// `after`: from memory when the run is here and has them (see `recent.rs`), else from
    /// the store.
    pub(crate) async fn events_after(
        &self,
        handler_id: &str,
        run_id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StorageError> {
        if let Some(live) = self.live.get(handler_id)
            && live.run_id == run_id
            && let Some(events) = live.recent_after(after, limit)
        {
            return Ok(events);
        }
        self.storage.events_after(run_id, after, limit).await
    }

    /// The highest stored sequence number of `run_id`.
    pub(crate) async fn last_sequence(&self, run_id: &str) -> Result<Option<u64>, StorageError> {
        self.storage.last_sequence(run_id).await
    }

    /// Hands `item` to the run `handler_id`: stored in its inbox first (so the caller's `200`
    /// survives a crash), then the run is woken, here or wherever it is resumed.
    pub(crate) async fn deliver(
        self: &Arc<Self>,
        handler_id: &str,
        item: InboxItem,
    ) -> Result<(), StorageError> {
        self.storage.push_inbox(handler_id, item).await?;
        self.wake(handler_id).await;
        Ok(())
    }

    /// Cancels the run `handler_id` and waits (up to [`Config::cancel_wait`]) for it to end;
    /// with `purge`, then deletes it with its events. Without `purge`, an ended run is
    /// [`CancelOutcome::NotFound`], as the reference answers.
    pub(crate) async fn cancel(
        self: &Arc<Self>,
        handler_id: &str,
        purge: bool,
    ) -> Result<CancelOutcome, StorageError> {
        let Some(record) = self.storage.handler(handler_id).await? else {
            return Ok(CancelOutcome::NotFound);
        };
        let running = !record.status.is_terminal();
        if !purge && !running {
            return Ok(CancelOutcome::NotFound);
        }
        if running {
            self.deliver(handler_id, InboxItem::Cancel).await?;
            self.wait_ended(handler_id, Some(self.config.cancel_wait))
                .await?;
        }
        if !purge {
            return Ok(CancelOutcome::Cancelled);
        }
        Ok(if self.storage.delete_handler(handler_id).await? {
            self.changes.wake(handler_id);
            CancelOutcome::Deleted
        } else {
            CancelOutcome::NotFound
        })
    }

    /// The number of runs in memory.
    pub(crate) fn live_count(&self) -> usize {
        self.live.count()
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
            let watch = self.watch(handler_id);
            let record = self.storage.handler(handler_id).await?;
            match &record {
                Some(r) if !r.status.is_terminal() => {}
                _ => return Ok(record),
            }
            if self.is_closing() || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(record);
            }
            match deadline {
                Some(at) => {
                    let _ = tokio::time::timeout_at(at, watch.changed()).await;
                }
                None => watch.changed().await,
            }
        }
    }

    /// Stores the snapshot of every run in memory and gives up their leases, so that a
    /// restarted server (or another one) resumes them. Waits for the runs' pumps, up to
    /// [`SHUTDOWN_GRACE`].
    pub(crate) async fn shutdown(&self) {
        // Under the lock `attach` takes: no run comes into memory after the list is taken.
        let all = self
            .live
            .list_after(|| self.closing.store(true, Ordering::SeqCst));
        for live in &all {
            live.stop.notify_one();
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while self.live_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(SHUTDOWN_LOOK).await;
        }
        // A pump stuck on the store: its run must not go on here once the leases lapse.
        self.abandon_all("shutting down with runs not stored");
        for live in all {
            live.stored.notify_waiters();
        }
    }
}

/// Adds to `events` the types of `graph` and of its child workflows' graphs, except a type only
/// joins take: a join takes only what descends from a fan-out, so the run would refuse it after
/// the `200`.
fn takes_from_outside(graph: &workflows::graph::Graph, events: &mut Vec<EventInfo>) {
    for info in graph.events() {
        if !only_joins(graph, info) && !events.iter().any(|e| e.name == info.name) {
            events.push(*info);
        }
    }
    for child in graph.children() {
        takes_from_outside(&child.graph, events);
    }
}

/// Whether a step of the run `snapshot` holds, or of one of its running children (when no step
/// is named), waits for events named `name`.
fn waits_in(snapshot: &workflows::Snapshot, name: &str, step: Option<&str>) -> bool {
    snapshot
        .waiters
        .iter()
        .any(|w| w.event == name && step.is_none_or(|s| w.step == s))
        || (step.is_none()
            && snapshot
                .invocations
                .iter()
                .flat_map(|i| &i.children)
                .any(|c| match &c.state {
                    workflows::ChildState::Running { snapshot } => waits_in(snapshot, name, None),
                    _ => false,
                }))
}

/// Whether only joins of `graph` take `info`'s type.
fn only_joins(graph: &workflows::graph::Graph, info: &EventInfo) -> bool {
    let mut takers = graph
        .steps()
        .iter()
        .filter(|s| s.accepts_type(info.type_id))
        .peekable();
    takers.peek().is_some() && takers.all(|s| s.fires.is_join())
}
