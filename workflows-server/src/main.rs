//! `workflows-server`: serves the number workflow of the human-in-the-loop guide, an expense
//! approval (a structured request and answer) and a release sign-off (its teams asked at
//! once, in parallel branches), with a web page to drive them, over the HTTP API of
//! llama-agents-server.
//!
//! ```text
//! cargo run -p workflows-server --release [--features postgres-tls] --
//!     [--bind 127.0.0.1:8080] [--db workflows.db | --postgres URL [--postgres-pool-size 16]
//!     [--postgres-ca-file PEM]] [--idle-release 60s|never] [--lease-ttl 30s]
//!     [--header-timeout 10s] [--body-timeout 30s] [--max-connections N]
//!     [--auth-token-file FILE | --no-auth] [--cors-origin ORIGIN]... [--allowed-host NAME]...
//!     [--help] [--version]
//! ```
//!
//! Open <http://127.0.0.1:8080/> for the page; point `llama-agents-client` at the same address.

mod console_workflows;

use clap::{CommandFactory, FromArgMatches};
use workflows::prelude::*;
use workflows_server::cli::Args;
use workflows_server::storage::ErrorChain;
use workflows_server::{Server, ServerError};

/// See `Cargo.toml` for why the binary brings its own allocator, and `.cargo/config.toml` for
/// how it is built.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The guide's first example: ask for a number, return the answer.
struct NumberWorkflow;

#[workflow]
impl NumberWorkflow {
    #[step]
    async fn ask(&self, _ev: StartEvent) -> InputRequiredEvent {
        InputRequiredEvent::new("Enter a number: ")
    }

    #[step]
    async fn answer(&self, ev: HumanResponseEvent) -> StopEvent<String> {
        StopEvent::new(ev.response)
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Warnings and errors by default (a run that could not be resumed, a storage error);
    // `WORKFLOWS_LOG=info` adds where the server listens and more.
    let filter = tracing_subscriber::EnvFilter::try_from_env("WORKFLOWS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // The shared flags (`workflows_server::cli::Args`), described for this binary.
    let command = Args::command().about(
        "Serves the number workflow (ask for a number, return the answer), an expense \
         approval and a release sign-off, and a web page to drive them, over the HTTP API of \
         llama-agents-server.",
    );
    let args = match Args::from_arg_matches(&command.get_matches()) {
        Ok(args) => args,
        Err(err) => err.exit(),
    };
    match serve(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain: "could not connect to Postgres at db:5432/runs: db error:
            // FATAL: password authentication failed for user \"app\"".
            eprintln!("workflows-server: {}", ErrorChain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), ServerError> {
    // Each connection takes a file: allow as many as the system lets this process have.
    workflows_server::raise_open_file_limit();
    let server = Server::new()
        .workflow("number", NumberWorkflow.runner())
        .workflow(
            "expense",
            console_workflows::ExpenseApproval { limit: 50.0 }.runner(),
        )
        .workflow("release", console_workflows::ReleaseSignOff.runner())
        .page(workflows_server::CONSOLE);
    args.apply(server).await?.serve().await
}
