//! `workflows-server`: serves the number workflow of the human-in-the-loop guide, with a web
//! page to drive it, over the HTTP API of llama-agents-server.
//!
//! ```text
//! cargo run -p workflows-server --release -- [--bind 127.0.0.1:8080] [--db workflows.db | --postgres URL]
//!                                            [--idle-release SECONDS] [--lease-ttl SECONDS]
//! ```
//!
//! Open <http://127.0.0.1:8080/> for the page; point `llama-agents-client` at the same address.

use std::net::SocketAddr;
use std::time::Duration;

use workflows::prelude::*;
use workflows_server::storage::PostgresStorage;
use workflows_server::{Server, ServerError};

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

const USAGE: &str = "usage: workflows-server [--bind ADDR] [--db PATH | --postgres URL] \
                     [--idle-release SECONDS|never] [--lease-ttl SECONDS]";

const HELP: &str = "\
Serves the number workflow (ask for a number, return the answer) and a web page to drive it,
over the HTTP API of llama-agents-server.

  --bind ADDR              where to listen (default 127.0.0.1:8080; loopback only unless you
                           give another address)
  --db PATH                store runs in this SQLite file (default ./workflows.db)
  --postgres URL           store runs in Postgres, shared with other servers (default:
                           $DATABASE_URL if set, else SQLite)
  --idle-release SECONDS   how long a run waiting for an answer stays in memory before it is
                           parked in the store (default 60; `never` keeps it)
  --lease-ttl SECONDS      how long a server's hold on a run lasts without renewal, i.e. how
                           soon another server takes over the runs of one that died (default 30)
  -h, --help               this text

Log lines go to stderr: warnings and errors, or what WORKFLOWS_LOG selects (for instance
WORKFLOWS_LOG=info or WORKFLOWS_LOG=workflows_server=debug).";

struct Args {
    bind: SocketAddr,
    db: String,
    postgres: Option<String>,
    idle_release: Option<Duration>,
    lease_ttl: Option<Duration>,
}

fn seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("`{text}` is not a usable number of seconds"))
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
        db: "workflows.db".into(),
        postgres: std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()),
        idle_release: Some(Duration::from_secs(60)),
        lease_ttl: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--bind" => {
                let v = value()?;
                args.bind = v.parse().map_err(|e| format!("--bind {v}: {e}"))?;
            }
            "--db" => {
                args.db = value()?;
                args.postgres = None;
            }
            "--postgres" => args.postgres = Some(value()?),
            "--idle-release" => {
                let v = value()?;
                args.idle_release = (v != "never").then(|| seconds(&v)).transpose()?;
            }
            "--lease-ttl" => {
                let ttl = seconds(&value()?)?;
                if ttl < Duration::from_secs(1) {
                    return Err("--lease-ttl must be at least 1 second".into());
                }
                args.lease_ttl = Some(ttl);
            }
            "-h" | "--help" => {
                println!("{USAGE}\n\n{HELP}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(args)
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
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return std::process::ExitCode::from(2);
        }
    };
    match serve(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("workflows-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), ServerError> {
    let mut config = workflows_server::Config {
        bind: args.bind,
        idle_release: args.idle_release,
        ..Default::default()
    };
    if let Some(ttl) = args.lease_ttl {
        config.lease_ttl = ttl;
    }
    let mut server = Server::new()
        .workflow("number", NumberWorkflow.runner())
        .page(include_str!("../static/index.html"))
        .config(config);
    server = match &args.postgres {
        Some(url) => {
            println!("storing runs in Postgres");
            server.storage(PostgresStorage::connect(url, 4).await?)
        }
        None => {
            println!("storing runs in the SQLite file {}", args.db);
            server.sqlite(&args.db)?
        }
    };
    server.serve().await
}
