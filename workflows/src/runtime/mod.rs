//! The runtime: one control loop per run.
//!
//! A run is split by ownership. The **control loop** ([`run_loop::RunLoop`]), a future spawned
//! on tokio, owns everything that changes as the run moves — the scheduler's queues, the live
//! invocations, the waiters, admission — and touches it without locks. The **shared part**
//! ([`shared::RunShared`], with the typed state in [`shared::Run`]) is what the handler, the
//! step contexts and the loop all reach: the inbox, the stream, the outcome, the store, the
//! collect buffers. Everything outside the loop talks to it through the inbox only.
//!
//! # Invariants
//!
//! Each is kept by one type, in one file, whose module docs say more:
//!
//! - **No lost wake-up**: a message pushed into the inbox is taken in the poll under way, or
//!   wakes the parked loop; nothing is accepted once the run has finished. (`inbox.rs`, checked
//!   with loom.)
//! - **Workers**: a step never runs more invocations at once than its `num_workers`; steps are
//!   served round-robin. (`scheduler.rs`)
//! - **Identity**: an `InvocationId` names one invocation for its life; invocation numbers are
//!   never reused, across snapshots too. (`invocations.rs`)
//! - **Waiters**: every waiter an event matches gets it; senders outside the loop see the types
//!   waited for. (`waiters.rs`, `dispatch.rs`)
//! - **Consistent cut**: a snapshot is taken only at the top of an iteration, after every
//!   message sent so far has been applied. (`run_loop.rs`, `ending.rs` for the end)
//! - **Exactly-once engine effects**: an attempt's sends, stream writes and waits are logged;
//!   after a restore the logged ones are skipped, and a different one is a typed error.
//!   (`effects.rs`, through the step's context)
//! - **One end**: the outcome is set once, and everything the loop owns is dropped with it.
//!   (`ending.rs`)
//!
//! The path of one event through these files is in `ARCHITECTURE.md` at the repository root.

mod admission;
mod attempt;
mod attempts;
mod capture;
pub(crate) mod children;
mod dispatch;
pub(crate) mod effects;
mod ending;
mod fan_outs;
pub(crate) mod inbox;
pub(crate) mod invocations;
pub(crate) mod lineage;
pub(crate) mod memo;
mod requests;
pub(crate) mod restore;
pub(crate) mod routes;
pub(crate) mod run_loop;
mod scheduler;
mod sets;
pub(crate) mod shared;
mod waiters;

/// The synchronisation primitives of [`inbox`], which its loom test swaps for loom's.
mod sync {
    pub(crate) use std::sync::{Mutex, MutexGuard, atomic};
}

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub(crate) use crate::runtime::restore::resume;
use crate::runtime::run_loop::RunLoop;
use crate::runtime::shared::{Msg, Run, RunShared};
use crate::store::Store;
use crate::workflow::Output;
use crate::{AnyEvent, Handler, RunOptions, Runner, Workflow, WorkflowError};

/// Creates a run of `runner`'s workflow, queues `start`, and spawns its control loop.
pub(crate) fn spawn_run<W: Workflow>(
    runner: &Runner<W>,
    start: Box<dyn AnyEvent>,
    state: W::State,
    mut options: RunOptions,
) -> Handler<Output<W>> {
    let inner = &runner.inner;
    let run_id = options.take_run_id();
    let run = Arc::new(Run {
        shared: RunShared::restored(
            run_id,
            inner.routes.clone(),
            options.get_first_sequence(),
            Store::from_map(options.take_store()),
            HashMap::new(),
        ),
        state: Mutex::new(state),
    });
    run.shared
        .push(Msg::Event {
            ev: start,
            target: None,
            lineage: Default::default(),
            outside: false,
        })
        .expect("a new run accepts events");
    let run_loop = RunLoop::new(inner.clone(), run.clone(), options);
    launch(runner, run, run_loop)
}

/// Spawns `run_loop` on the current Tokio runtime (after checking the registry) and returns
/// the run's handler.
pub(crate) fn launch<W: Workflow>(
    runner: &Runner<W>,
    run: Arc<Run<W::State>>,
    mut run_loop: RunLoop<W>,
) -> Handler<Output<W>> {
    let handler = Handler::new(run.clone());
    let tokio = match (
        crate::registry::check(),
        tokio::runtime::Handle::try_current(),
    ) {
        (Ok(()), Ok(tokio)) => tokio,
        (failed, _) => {
            run_loop.abandon();
            run.shared.finish(Err(match failed {
                Err(err) => WorkflowError::Registry(err),
                Ok(()) => WorkflowError::NoRuntime,
            }));
            return handler;
        }
    };
    if let Some(limit) = runner.inner.limit.clone() {
        // The run's clock (its timeout) starts once it has a slot.
        run_loop.limit_by(limit);
    }
    tokio.spawn(run_loop);
    handler
}
