//! The engine: one control loop per run, owning the run's queues and in-flight steps.

mod invocation;
pub(crate) mod memo;
pub(crate) mod routes;
mod run_loop;
pub(crate) mod shared;
mod waiters;

use std::sync::{Arc, Mutex};

use crate::runtime::run_loop::RunLoop;
use crate::runtime::shared::{Msg, RunCore, RunShared};
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
    let shared = Arc::new(RunShared {
        core: RunCore::new(run_id, inner.routes.clone()),
        state: Mutex::new(state),
    });
    let handler = Handler::new(shared.clone());

    if let Err(err) = crate::registry::check() {
        shared.core.finish(Err(WorkflowError::Registry(err)));
        return handler;
    }
    let Ok(tokio) = tokio::runtime::Handle::try_current() else {
        shared.core.finish(Err(WorkflowError::NoRuntime));
        return handler;
    };

    shared
        .core
        .push(Msg::Event {
            ev: start,
            target: None,
        })
        .expect("a new run accepts events");
    let mut run_loop = RunLoop::new(inner.workflow.clone(), shared, options);
    if let Some(limit) = inner.limit.clone() {
        // The run's clock (its timeout) starts once it has a slot.
        run_loop.limit_by(limit);
    }
    tokio.spawn(run_loop);
    handler
}
