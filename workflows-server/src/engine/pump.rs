//! The task that accompanies each run in memory: it stores the run's published events in
//! order, delivers the run's inbox, stores snapshots, parks the run when it has waited long
//! enough, and records how it ended.
//!
//! Every snapshot is stored only after every event it reflects, or with them: before writing
//! one, the pump stores the published events numbered below the snapshot's `next_stream_seq`.
//! A server that dies after such a write resumes from a snapshot whose events are all stored,
//! so no prompt can be lost between the run's memory and the store. A prompt is stored in the
//! same write as a snapshot that reflects it, so no prompt is stored without one either: the
//! run is never resumed from before a prompt its readers have seen, and they see it once.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::{FutureExt, StreamExt};
use tokio::time::Instant;
use workflows::{EventKind, EventStream, Snapshot, StreamEvent, WorkflowIdle};

use super::live::Live;
use super::{EVENT_BATCH, Engine, decode_event};
use crate::clock::now_us;
use crate::envelope::{Outcome, outgoing};
use crate::storage::ErrorChain;
use crate::storage::{InboxItem, RunUpdate, Status, StoredEvent};

/// Whether a run waits for the outside, as its snapshot shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Idle {
    /// Nothing queued, every started step suspended in a wait; `timers` if one of those
    /// waits (or a retry) has a deadline of its own.
    Waiting { timers: bool },
    /// Work to do.
    Busy,
}

/// How `snapshot`'s run stands.
fn idleness(snapshot: &Snapshot) -> Idle {
    if !snapshot.queues.is_empty() {
        return Idle::Busy;
    }
    let mut timers = false;
    for inv in &snapshot.invocations {
        let waits: Vec<_> = snapshot
            .waiters
            .iter()
            .filter(|w| w.invocation == inv.number)
            .collect();
        // A step awaiting child runs waits as they do.
        let children: Vec<_> = inv
            .children
            .iter()
            .filter_map(|c| match &c.state {
                workflows::ChildState::Running { snapshot } => Some((snapshot, &c.inbox)),
                _ => None,
            })
            .collect();
        if waits.is_empty() && children.is_empty() {
            return Idle::Busy;
        }
        for (child, inbox) in children {
            if !inbox.is_empty() {
                return Idle::Busy;
            }
            match idleness(child) {
                Idle::Busy => return Idle::Busy,
                Idle::Waiting { timers: t } => timers |= t,
            }
        }
        timers |= inv.retry_in_ms.is_some() || waits.iter().any(|w| w.timeout_ms.is_some());
    }
    Idle::Waiting { timers }
}

/// Why the pump stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The run ended and its outcome is stored.
    Ended,
    /// Another server holds the run now (or it was deleted), or the store failed.
    Lost,
}

pub(super) struct Pump {
    pub(super) engine: Arc<Engine>,
    pub(super) live: Arc<Live>,
    pub(super) stream: EventStream,
    /// When an idle run leaves memory.
    pub(super) idle_deadline: Option<Instant>,
    /// The last snapshot this pump stored (a hash of its text) and whether it was stored as
    /// idle: an identical one is not stored again.
    pub(super) last_written: Option<(u64, bool)>,
    /// Inbox items delivered to the run and still in the stored inbox: they are deleted by
    /// the next write of a snapshot (which reflects them), at the latest by
    /// [`DELIVERY_WRITE_DELAY`] after the first of them was delivered.
    pub(super) delivered: Vec<i64>,
    /// When the write that deletes `delivered` is due.
    pub(super) delivered_due: Option<Instant>,
    /// When the run, waiting since, drops the events it keeps for its readers (see
    /// [`RECENT_KEPT_WHILE_IDLE`]).
    pub(super) recent_due: Option<Instant>,
}

/// How long a waiting run keeps the events it stored lately for its readers: long enough
/// for the readers its last write woke to read them from memory, after which they cost
/// memory for nothing (a kilobyte for a human-in-the-loop prompt).
const RECENT_KEPT_WHILE_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// A future that completes at `at`, or never.
async fn timer(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How long a delivered answer may wait for a write that records it.
///
/// Delivering an inbox item used to store a snapshot at once; but the run usually stores
/// one soon anyway (it ends, asks again or goes idle, a few hundred microseconds later),
/// and that write now deletes the item too: one write less per answer. Until then the item
/// stays in the stored inbox and the stored snapshot is from before it, so a server that
/// dies meanwhile loses nothing: the run is resumed from that snapshot and the item
/// delivered again, as if it had not been.
const DELIVERY_WRITE_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// A hash of a snapshot's text, to tell an unchanged snapshot from a new one.
fn text_hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

impl Pump {
    pub(super) async fn run(mut self) {
        // Items may have arrived before the run came into memory.
        if Box::pin(self.deliver_inbox()).await.is_ok() {
            let _ = self.serve().await;
        }
        self.engine.forget(&self.live);
    }

    /// The pump's loop. Its future stays in memory as long as the run does, so what it does
    /// rarely (store, deliver, park) is boxed while it happens rather than reserved in it,
    /// and its three deadlines share one timer: a waiting run's pump is a few hundred bytes,
    /// not two kilobytes.
    async fn serve(&mut self) -> Result<(), Stop> {
        loop {
            let next_deadline = [self.idle_deadline, self.delivered_due, self.recent_due]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                biased;
                () = self.live.abandon.notified() => {
                    return Err(Stop::Lost);
                }
                () = self.live.stop.notified() => {
                    return Box::pin(self.store_and_release()).await;
                }
                next = self.stream.next() => {
                    let Some(first) = next else {
                        return Err(Stop::Lost);
                    };
                    let mut batch = vec![first];
                    while batch.len() < EVENT_BATCH {
                        match self.stream.next().now_or_never() {
                            Some(Some(ev)) => batch.push(ev),
                            _ => break,
                        }
                    }
                    Box::pin(self.stored(batch)).await?;
                }
                () = self.live.kick.notified() => {
                    Box::pin(self.deliver_inbox()).await?;
                }
                () = timer(next_deadline) => {
                    if Box::pin(self.deadlines()).await? {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Stores `batch` and settles what follows from it.
    async fn stored(&mut self, batch: Vec<StreamEvent>) -> Result<(), Stop> {
        if self.store_batch(batch).await? {
            self.went_idle().await?;
            self.recent_due = Some(Instant::now() + RECENT_KEPT_WHILE_IDLE);
        } else {
            self.idle_deadline = None;
            self.recent_due = None;
        }
        Ok(())
    }

    /// Does what is due: forgets the events kept for readers, records delivered items,
    /// parks the run. Whether the run left memory.
    async fn deadlines(&mut self) -> Result<bool, Stop> {
        let now = Instant::now();
        let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        if due(self.recent_due) {
            self.recent_due = None;
            self.live.forget_recent();
        }
        if due(self.delivered_due) {
            self.record_delivered().await?;
        }
        if due(self.idle_deadline) {
            self.idle_deadline = None;
            return self.park().await;
        }
        Ok(false)
    }

    /// Stores `batch`; records the outcome when it holds the run's last event. Whether the
    /// batch ends with the run going idle.
    ///
    /// A batch with a prompt (an input request) is stored together with a snapshot that
    /// reflects it, in one write. A server that takes the run over then resumes past the
    /// prompt and does not publish it again; without the snapshot it would resume from the
    /// last one stored, before the prompt, and its readers would see the prompt twice.
    async fn store_batch(&mut self, mut batch: Vec<StreamEvent>) -> Result<bool, Stop> {
        if self.live.abandoned.load(Ordering::SeqCst) {
            // Its cancellation must not be recorded: the run goes on elsewhere.
            return Err(Stop::Lost);
        }
        let with_snapshot = if batch
            .iter()
            .any(|ev| ev.event.kind() == EventKind::InputRequired)
        {
            let snapshot = self.live.run.snapshot().await.map_err(|e| {
                tracing::error!(handler = %self.live.handler_id, "snapshot failed: {}", ErrorChain(&e));
                Stop::Lost
            })?;
            // The events it reflects that the batch does not hold yet (published since).
            while self.stream.next_seq() < snapshot.next_stream_seq {
                match self.stream.next().await {
                    Some(ev) => batch.push(ev),
                    None => break,
                }
            }
            Some(snapshot)
        } else {
            None
        };
        let live = &self.live;
        let mut idle = false;
        let mut outcome = None;
        let mut stored = Vec::with_capacity(batch.len());
        for ev in &batch {
            let out = outgoing(&*ev.event, ev.child.as_deref());
            idle = ev.event.is::<WorkflowIdle>();
            if out.outcome.is_some() {
                outcome = out.outcome;
            }
            stored.push(StoredEvent {
                sequence: ev.seq,
                envelope: out.envelope,
                internal: out.internal,
                terminal: out.terminal,
            });
        }
        if let Some(outcome) = outcome {
            // The outcome, the run's final state (for a new run started under the same
            // handler id) and its last events, in one write.
            let last = self.live.run.snapshot().await.ok().map(|s| s.to_json());
            let mut update = RunUpdate {
                events: stored,
                release: true,
                idle_since: Some(None),
                snapshot: last,
                ..RunUpdate::default()
            };
            match outcome {
                Outcome::Completed(envelope) => {
                    update.status = Some(Status::Completed);
                    update.result = Some(envelope);
                }
                Outcome::Failed(error) => {
                    update.status = Some(Status::Failed);
                    update.error = Some(error);
                }
                Outcome::Cancelled => update.status = Some(Status::Cancelled),
            }
            let kept = update.events.clone();
            self.write(update).await?;
            self.live.keep_stored(&kept);
            self.live.stored.notify_waiters();
            return Err(Stop::Ended);
        }
        let kept = stored.clone();
        match with_snapshot {
            Some(snapshot) => {
                let idle_since = self.settle(&snapshot);
                self.write(RunUpdate {
                    events: stored,
                    snapshot: Some(snapshot.to_json()),
                    idle_since: Some(idle_since),
                    ..RunUpdate::default()
                })
                .await?;
            }
            None => match self
                .engine
                .storage
                .append_events(&live.handler_id, &live.run_id, &live.lease, stored)
                .await
            {
                Ok(true) => {}
                Ok(false) => return Err(Stop::Lost),
                Err(e) => {
                    // Nothing that depends on these events (a snapshot, the outcome) may be
                    // stored without them: let the run go; its last stored state is resumed.
                    tracing::error!(handler = %live.handler_id, "storing events failed: {}", ErrorChain(&e));
                    return Err(Stop::Lost);
                }
            },
        }
        let live = &self.live;
        live.keep_stored(&kept);
        live.stored.notify_waiters();
        // Stored, so the run need not keep them in memory.
        if let Some(last) = batch.last() {
            live.run.discard_before(last.seq + 1);
        }
        Ok(idle)
    }

    /// Stores every published event numbered below `upto`.
    async fn catch_up(&mut self, upto: u64) -> Result<(), Stop> {
        while self.stream.next_seq() < upto {
            let mut batch = Vec::new();
            while self.stream.next_seq() < upto && batch.len() < EVENT_BATCH {
                match self.stream.next().await {
                    Some(ev) => batch.push(ev),
                    None => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            self.store_batch(batch).await?;
        }
        Ok(())
    }

    /// The run's snapshot, once every event it reflects is stored.
    async fn snapshot(&mut self) -> Result<Snapshot, Stop> {
        let snapshot = self.live.run.snapshot().await.map_err(|e| {
            tracing::error!(handler = %self.live.handler_id, "snapshot failed: {}", ErrorChain(&e));
            Stop::Lost
        })?;
        self.catch_up(snapshot.next_stream_seq).await?;
        Ok(snapshot)
    }

    /// Applies `update` to the run's record, if this server still holds the run.
    ///
    /// A write with a snapshot also deletes the inbox items delivered since the last one:
    /// the snapshot reflects them. (A failed write ends the pump; they stay in the store.)
    async fn write(&mut self, mut update: RunUpdate) -> Result<(), Stop> {
        let engine = &self.engine;
        if self.live.abandoned.load(Ordering::SeqCst) {
            return Err(Stop::Lost);
        }
        if update.snapshot.is_some() {
            update.consumed.append(&mut self.delivered);
            self.delivered_due = None;
        }
        let written = update.snapshot.as_deref().map(|text| {
            let idle = matches!(update.idle_since, Some(Some(_)));
            (text_hash(text), idle)
        });
        match engine
            .storage
            .update_run(&self.live.handler_id, &self.live.lease, update, now_us())
            .await
        {
            Ok(true) => {
                if written.is_some() {
                    self.last_written = written;
                }
                Ok(())
            }
            Ok(false) => Err(Stop::Lost),
            Err(e) => {
                tracing::error!(handler = %self.live.handler_id, "updating the run failed: {}", ErrorChain(&e));
                Err(Stop::Lost)
            }
        }
    }

    /// Arms or clears the parking timer from what `snapshot` shows, and says what to store as
    /// the run's `idle_since`: only a run that nothing but an event can wake is idle (it may
    /// leave memory, and after a crash it is resumed when an event comes); a run with work or
    /// with a timer of its own is busy (after a crash it is resumed at once).
    fn settle(&mut self, snapshot: &Snapshot) -> Option<i64> {
        if idleness(snapshot) == (Idle::Waiting { timers: false }) {
            if self.idle_deadline.is_none() {
                let after = self.engine.config.idle_release;
                self.idle_deadline = after.map(|after| Instant::now() + after);
            }
            Some(now_us())
        } else {
            self.idle_deadline = None;
            None
        }
    }

    /// The run published that it went idle (the signal may be older than events delivered
    /// since): store its snapshot and settle from it.
    ///
    /// Most often the run's prompt was stored with this very state a moment ago: a snapshot
    /// identical to the last one stored, with the same idleness, is not written again.
    async fn went_idle(&mut self) -> Result<(), Stop> {
        let snapshot = self.snapshot().await?;
        let idle_since = self.settle(&snapshot);
        let text = snapshot.to_json();
        if self.delivered.is_empty()
            && self.last_written == Some((text_hash(&text), idle_since.is_some()))
        {
            return Ok(());
        }
        self.write(RunUpdate {
            snapshot: Some(text),
            idle_since: Some(idle_since),
            ..RunUpdate::default()
        })
        .await
    }

    /// Delivers what the run's inbox holds and it has not been given yet; the next write of
    /// a snapshot deletes the items (see [`DELIVERY_WRITE_DELAY`]). An empty inbox (a wake-up
    /// that came late) changes nothing.
    async fn deliver_inbox(&mut self) -> Result<(), Stop> {
        let live = self.live.clone();
        let items = match self.engine.storage.inbox(&live.handler_id).await {
            Ok(items) => items,
            Err(e) => {
                tracing::error!(handler = %live.handler_id, "reading the inbox failed: {}", ErrorChain(&e));
                return Ok(());
            }
        };
        let mut fresh = false;
        for (id, item) in items {
            if self.delivered.contains(&id) {
                continue;
            }
            fresh = true;
            match item {
                InboxItem::Event {
                    name,
                    data,
                    step,
                    child,
                } => match decode_event(&name, data) {
                    Ok(ev) => {
                        let sent = match child.as_deref() {
                            Some(path) => live.run.send_to_child(path, ev),
                            None => live.run.send(ev, step.as_deref()),
                        };
                        if let Err(e) = sent {
                            tracing::warn!(handler = %live.handler_id, "event `{name}` not delivered: {e}");
                        }
                    }
                    Err(e) => tracing::warn!(handler = %live.handler_id, "{e}"),
                },
                InboxItem::Cancel => live.run.cancel(),
            }
            self.delivered.push(id);
        }
        if fresh {
            // It has work now: not idle, whatever it stored last.
            self.idle_deadline = None;
            self.delivered_due
                .get_or_insert_with(|| Instant::now() + DELIVERY_WRITE_DELAY);
        }
        Ok(())
    }

    /// Stores a snapshot that reflects the items delivered since the last one, deleting
    /// them from the inbox in the same write; the time for it has come and no other write
    /// did it.
    async fn record_delivered(&mut self) -> Result<(), Stop> {
        self.delivered_due = None;
        if self.delivered.is_empty() {
            return Ok(());
        }
        let snapshot = self.snapshot().await?;
        let idle_since = self.settle(&snapshot);
        self.write(RunUpdate {
            snapshot: Some(snapshot.to_json()),
            idle_since: Some(idle_since),
            ..RunUpdate::default()
        })
        .await
    }

    /// Takes an idle run out of memory: its snapshot is stored and its lease given up; an
    /// event sent to it brings it back, on this server or another. False (and nothing done)
    /// if the snapshot shows the run is not waiting after all.
    async fn park(&mut self) -> Result<bool, Stop> {
        let snapshot = self.snapshot().await?;
        if idleness(&snapshot) != (Idle::Waiting { timers: false }) {
            self.settle(&snapshot);
            return Ok(false);
        }
        self.write(RunUpdate {
            snapshot: Some(snapshot.to_json()),
            release: true,
            ..RunUpdate::default()
        })
        .await?;
        Ok(true)
    }

    /// Stores the run's snapshot and gives up its lease, whatever it is doing (the server
    /// shuts down; the next one resumes it).
    async fn store_and_release(&mut self) -> Result<(), Stop> {
        let snapshot = self.snapshot().await?;
        self.write(RunUpdate {
            snapshot: Some(snapshot.to_json()),
            release: true,
            ..RunUpdate::default()
        })
        .await
    }
}
