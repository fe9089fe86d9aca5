//! The six scenarios; each builds the workflow the reference builds and drives it the same way.

mod chain;
mod concurrent;
mod fanout;
mod hitl;
mod loop_;
mod snapshot;

use crate::options::Options;

pub async fn run(scenario: &str, options: &Options) {
    let runtime = options.runtime.name();
    match scenario {
        "floor" => crate::floor::run(options.size("floor_n"), runtime).await,
        "chain" => chain::run(options.size("chain_runs"), runtime).await,
        "loop" => loop_::run(options.size("loop_n"), runtime).await,
        "fanout" => {
            fanout::run(
                options.size("fanout_k"),
                options.size("fanout_workers"),
                runtime,
            )
            .await
        }
        "hitl" => hitl::run(options.size("hitl_m"), runtime).await,
        "snapshot" => {
            snapshot::run(
                options.size("snapshot_iters"),
                options.size("snapshot_keys"),
                runtime,
            )
            .await
        }
        "concurrent" => concurrent::run(options.size("concurrent_c"), runtime).await,
        other => unreachable!("checked when parsed: {other}"),
    }
}
