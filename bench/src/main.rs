//! The benchmark scenarios of `bench/SCENARIOS.md`, run the way the Python reference
//! harness runs them (same workflows, drivers, asserts, sizes and JSON lines), plus the raw
//! Tokio floor measured in the same program.
//!
//! ```text
//! cargo run --release -p workflows-bench -- --scenario loop --loop-n 20000
//! cargo run --release -p workflows-bench -- --runtime current    # all scenarios, one process each
//! cargo run --release -p workflows-bench -- --scenario floor     # mpsc ping-pong and 10-task chain
//! ```

mod alloc;
mod floor;
mod options;
mod report;
mod scenarios;

use std::process::{Command, ExitCode};

use options::Options;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("error: {message}\n\n{}", options::USAGE);
            return ExitCode::FAILURE;
        }
    };
    if options.list_defaults {
        println!("{}", options::defaults_json());
        return ExitCode::SUCCESS;
    }
    if !options.child {
        eprintln!(
            "# workflows {}, {} runtime ({} worker threads), cpus {}, sizes {}",
            env!("CARGO_PKG_VERSION"),
            options.runtime.name(),
            options.runtime.threads(),
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            options.sizes_json(),
        );
    }
    if let [only] = options.scenarios.as_slice() {
        let runtime = options.runtime.build();
        // The driver runs as a task of the runtime, like the reference's driver on its event
        // loop: on the multi-thread runtime, `block_on` alone would run it on this thread,
        // outside the workers, and every message would cross threads.
        let scenario = only.clone();
        let options = std::sync::Arc::new(options);
        let task = runtime.spawn(async move { scenarios::run(&scenario, &options).await });
        runtime.block_on(task).expect("the scenario's asserts hold");
        return ExitCode::SUCCESS;
    }
    // One process per scenario, so that peak_rss_mb belongs to it.
    let exe = std::env::current_exe().expect("own path");
    for scenario in &options.scenarios {
        let status = Command::new(&exe)
            .arg("--child")
            .args(["--scenario", scenario])
            .args(options.forwarded_flags())
            .status()
            .expect("start the scenario's process");
        if !status.success() {
            eprintln!("error: scenario {scenario} failed");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
