//! A registered workflow behind a trait object, so that one server holds workflows of
//! different types and drives their runs through one interface.

use std::future::Future;
use std::pin::Pin;

use workflows::graph::Graph;
use workflows::snapshot::RawJson;
use workflows::{
    AnyEvent, Event, EventStream, Handler, ResumeError, RunOptions, Runner, SendError, Snapshot,
    SnapshotError, Workflow,
};

/// The state and store a new run takes over from an ended run of the same handler id.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Carried {
    pub(crate) state: RawJson,
    pub(crate) store: RawJson,
}

/// A run the server drives.
pub(crate) trait Run: Send + Sync {
    /// Its published events from sequence number `seq`.
    fn stream_from(&self, seq: u64) -> EventStream;
    /// Sends `ev` to every step that takes it, or to `step`.
    fn send(&self, ev: Box<dyn AnyEvent>, step: Option<&str>) -> Result<(), SendError>;
    /// Sends `ev` into the child run at `path`.
    fn send_to_child(&self, path: &str, ev: Box<dyn AnyEvent>) -> Result<(), SendError>;
    /// Whether the run would take `ev` (for `step`) now.
    fn can_take(&self, ev: &dyn AnyEvent, step: Option<&str>) -> bool;
    /// Cancels it.
    fn cancel(&self);
    /// Frees its published events numbered below `seq` (they are stored).
    fn discard_before(&self, seq: u64);
    /// Its snapshot.
    fn snapshot(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<Snapshot, SnapshotError>> + Send + '_>>;
}

impl<T: Send + 'static> Run for Handler<T> {
    fn stream_from(&self, seq: u64) -> EventStream {
        self.stream_events_from(seq)
    }

    fn send(&self, ev: Box<dyn AnyEvent>, step: Option<&str>) -> Result<(), SendError> {
        self.send_dyn_event(ev, step)
    }

    fn send_to_child(&self, path: &str, ev: Box<dyn AnyEvent>) -> Result<(), SendError> {
        self.send_dyn_event_to_child(path, ev)
    }

    fn can_take(&self, ev: &dyn AnyEvent, step: Option<&str>) -> bool {
        Handler::can_take(self, ev, step).is_ok()
    }

    fn cancel(&self) {
        self.cancel_run();
    }

    fn discard_before(&self, seq: u64) {
        self.discard_events_before(seq);
    }

    fn snapshot(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<Snapshot, SnapshotError>> + Send + '_>> {
        Box::pin(Handler::snapshot(self))
    }
}

/// A workflow the server runs.
pub(crate) trait Served: Send + Sync + 'static {
    /// The registered name of its start event.
    fn start_name(&self) -> &'static str;
    /// Its step names.
    fn step_names(&self) -> Vec<&'static str>;
    /// Its graph.
    fn graph(&self) -> Graph;
    /// Starts a run on `start` (which must be the start event type) with id `run_id`, its
    /// events numbered from `first_seq`, its state and store `carried` if given.
    fn start(
        &self,
        start: Box<dyn AnyEvent>,
        run_id: &str,
        first_seq: u64,
        carried: Option<&Carried>,
    ) -> Result<Box<dyn Run>, String>;
    /// Resumes a run from `snapshot`.
    fn resume(&self, snapshot: Snapshot) -> Result<Box<dyn Run>, ResumeError>;
}

impl<W: Workflow> Served for Runner<W> {
    fn start_name(&self) -> &'static str {
        <W::Start as Event>::NAME
    }

    fn step_names(&self) -> Vec<&'static str> {
        W::STEPS.iter().map(|s| s.name).collect()
    }

    fn graph(&self) -> Graph {
        W::graph()
    }

    fn start(
        &self,
        start: Box<dyn AnyEvent>,
        run_id: &str,
        first_seq: u64,
        carried: Option<&Carried>,
    ) -> Result<Box<dyn Run>, String> {
        let start = start
            .downcast::<W::Start>()
            .map_err(|ev| format!("expected a `{}`, got a `{}`", self.start_name(), ev.name()))?;
        let options = self
            .options()
            .internal_events(true)
            .run_id(run_id)
            .first_sequence(first_seq);
        let Some(earlier) = carried else {
            return Ok(Box::new(self.run_with(start, options)));
        };
        let state: W::State = earlier
            .state
            .parse()
            .map_err(|e| format!("the previous run's state does not fit: {e}"))?;
        let store = earlier
            .store
            .parse()
            .map_err(|e| format!("the previous run's store is not an object: {e}"))?;
        Ok(Box::new(self.run_with_state(
            start,
            state,
            options.store(store),
        )))
    }

    fn resume(&self, snapshot: Snapshot) -> Result<Box<dyn Run>, ResumeError> {
        let options: RunOptions = self.options().internal_events(true);
        Ok(Box::new(self.resume_with(snapshot, options)?))
    }
}
