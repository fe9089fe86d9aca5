//! The engine: one control loop per run, owning the run's queues and in-flight steps.

mod admission;
mod attempt;
mod attempts;
mod capture;
mod dispatch;
pub(crate) mod effects;
mod ending;
pub(crate) mod inbox;
pub(crate) mod invocations;
pub(crate) mod memo;
mod restore;
pub(crate) mod routes;
pub(crate) mod run_loop;
mod scheduler;
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
        })
        .expect("a new run accepts events");
    let run_loop = RunLoop::new(inner, run.clone(), options);
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
