//! The command-line arguments of a server binary, for the `workflows-server` binary and for an
//! embedding `main` that serves workflows of its own.
//!
//! ```no_run
//! use clap::Parser;
//! use workflows::prelude::*;
//! use workflows_server::Server;
//! use workflows_server::cli::Args;
//!
//! struct Echo;
//!
//! #[workflow]
//! impl Echo {
//!     #[step]
//!     async fn echo(&self, ev: StartEvent) -> StopEvent<String> {
//!         StopEvent::new(ev.get::<String>("text").unwrap_or_default())
//!     }
//! }
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), workflows_server::ServerError> {
//! // --bind, --db, --postgres, --idle-release, --lease-ttl, --auth-token-file, --no-auth,
//! // --cors-origin, --allowed-host, --help, --version
//! let args = Args::parse();
//! let server = Server::new().workflow("echo", Echo.runner());
//! args.apply(server).await?.serve().await
//! # }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::storage::Durability;
use crate::{Auth, Config, Cors, Server, ServerError, Tokens};

/// The flags of a server binary. Each can also come from the environment variable named in
/// `--help`; a flag on the command line wins over its variable.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    version,
    about = "Serves workflows over the HTTP API of llama-agents-server.",
    after_help = "Log lines go to stderr: warnings and errors, or what WORKFLOWS_LOG selects \
                  (for instance WORKFLOWS_LOG=info or WORKFLOWS_LOG=workflows_server=debug)."
)]
#[non_exhaustive]
pub struct Args {
    /// Where to listen (nothing listens beyond loopback unless you give another address).
    #[arg(long, env = "WORKFLOWS_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Store runs in this SQLite file [default: ./workflows.db, unless --postgres or
    /// DATABASE_URL names a database]. Given, it wins over DATABASE_URL.
    #[arg(long, env = "WORKFLOWS_DB")]
    pub db: Option<PathBuf>,
    /// Store runs in this Postgres database, shared with other servers
    /// (`postgres://user:password@host:port/dbname`, with `?sslmode=require` for TLS).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub postgres: Option<String>,
    /// At most this many connections to Postgres.
    #[arg(long, env = "WORKFLOWS_POSTGRES_POOL_SIZE", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub postgres_pool_size: u16,
    /// A PEM file of certificate authorities to trust for Postgres's TLS certificate, besides
    /// the system's (the URL's `sslrootcert=` works too).
    #[arg(long, env = "WORKFLOWS_POSTGRES_CA_FILE")]
    pub postgres_ca_file: Option<PathBuf>,
    /// How long a run waiting for an answer stays in memory before it is parked in the store
    /// (`90s`, `5m`, a number of seconds, or `never`).
    #[arg(long, env = "WORKFLOWS_IDLE_RELEASE", default_value = "60s", value_parser = or_never)]
    pub idle_release: OrNever,
    /// How long a server's hold on a run lasts without renewal: how soon another server takes
    /// over the runs of one that died (`30s`, `1m`, or a number of seconds; at least 100ms).
    #[arg(long, env = "WORKFLOWS_LEASE_TTL", default_value = "30s", value_parser = lease_ttl)]
    pub lease_ttl: Duration,
    /// How long an ended run is kept after it ended (`7d`, `12h`, or `never`).
    #[arg(long, env = "WORKFLOWS_RETENTION", default_value = "7d", value_parser = or_never)]
    pub retention: OrNever,
    /// What an acknowledged answer survives: `power-loss` (synced to disk before the `200`)
    /// or `process-crash` (faster; an OS crash or power cut may lose the last answers).
    #[arg(long, env = "WORKFLOWS_DURABILITY", default_value = "power-loss", value_parser = durability)]
    pub durability: Durability,
    /// How long a client may take to send a request's line and headers, counted from when it
    /// connected or got its previous answer (so also how long an idle connection stays open).
    #[arg(long, env = "WORKFLOWS_HEADER_TIMEOUT", default_value = "10s", value_parser = positive)]
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body (408 after that).
    #[arg(long, env = "WORKFLOWS_BODY_TIMEOUT", default_value = "30s", value_parser = positive)]
    pub body_timeout: Duration,
    /// The most connections open at once; more wait to be accepted [default: three quarters
    /// of the open-file limit].
    #[arg(long, env = "WORKFLOWS_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
    /// A file of bearer tokens (one per line; `#` starts a comment), any of which a request
    /// must bear in `Authorization: Bearer <token>`. Needed to listen beyond loopback.
    #[arg(long, env = "WORKFLOWS_AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// Bearer tokens, separated by commas or spaces, as from --auth-token-file (both may be
    /// given).
    #[arg(long, env = "WORKFLOWS_AUTH_TOKENS", hide_env_values = true)]
    pub auth_tokens: Option<String>,
    /// Listen beyond loopback without tokens: anyone who reaches the port can read, answer,
    /// cancel and purge every run. For a server behind a gateway that authenticates.
    #[arg(long, conflicts_with_all = ["auth_token_file", "auth_tokens"])]
    pub no_auth: bool,
    /// Let web pages of this origin (`https://console.example.com`) call the API from a
    /// browser; repeat for more. By default only the server's own page may.
    #[arg(
        long = "cors-origin",
        env = "WORKFLOWS_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Answer requests addressed to this host name (behind a proxy, or at a name of your own);
    /// repeat for more. By default a server on loopback answers loopback names only.
    #[arg(
        long = "allowed-host",
        env = "WORKFLOWS_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
}

/// A duration, or `never` (`None`): when a waiting run leaves memory, how long an ended run is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrNever(pub Option<Duration>);

/// A duration written as `90s`, `1m 30s`, `250ms`, or a bare number of seconds (`2.5`).
fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("`{text}` is not a usable number of seconds"));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration ({e}); write for instance 90s or 1m"))
}

fn or_never(text: &str) -> Result<OrNever, String> {
    if text.trim() == "never" {
        return Ok(OrNever(None));
    }
    duration(text).map(|d| OrNever(Some(d)))
}

fn durability(text: &str) -> Result<Durability, String> {
    match text.trim() {
        "power-loss" => Ok(Durability::PowerLoss),
        "process-crash" => Ok(Durability::ProcessCrash),
        other => Err(format!(
            "`{other}` is not a durability: write power-loss or process-crash"
        )),
    }
}

fn positive(text: &str) -> Result<Duration, String> {
    let d = duration(text)?;
    if d.is_zero() {
        return Err("it must be longer than zero".into());
    }
    Ok(d)
}

fn lease_ttl(text: &str) -> Result<Duration, String> {
    let ttl = duration(text)?;
    if ttl < crate::MIN_LEASE_TTL {
        return Err(format!(
            "{ttl:?} is too short: a lease lasts at least {:?}",
            crate::MIN_LEASE_TTL
        ));
    }
    Ok(ttl)
}

impl Args {
    /// The server's [`Config`] these flags ask for, the rest default; an error when the
    /// token file cannot be read or holds no usable token.
    pub fn config(&self) -> Result<Config, ServerError> {
        let mut tokens = Vec::new();
        if let Some(path) = &self.auth_token_file {
            tokens.extend(Tokens::read(path)?.into_vec());
        }
        if let Some(text) = &self.auth_tokens {
            tokens.extend(Tokens::parse(text)?.into_vec());
        }
        let auth = if !tokens.is_empty() {
            Auth::Tokens(Tokens::new(tokens)?)
        } else if self.no_auth {
            Auth::Off
        } else {
            Auth::LoopbackOnly
        };
        let cors = if self.cors_origins.is_empty() {
            Cors::SameOrigin
        } else {
            Cors::Origins(self.cors_origins.clone())
        };
        Ok(Config {
            bind: self.bind,
            idle_release: self.idle_release.0,
            lease_ttl: self.lease_ttl,
            auth,
            cors,
            allowed_hosts: self.allowed_hosts.clone(),
            retention: self.retention.0,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            max_connections: self.max_connections.map(|n| n as usize),
            ..Config::default()
        })
    }

    /// `server` with these flags' configuration and store (opened here), saying on stdout
    /// which store it uses.
    pub async fn apply(&self, server: Server) -> Result<Server, ServerError> {
        let server = server.config(self.config()?);
        match (&self.db, &self.postgres) {
            (None, Some(url)) => self.with_postgres(server, url).await,
            (db, _) => {
                let path = db.clone().unwrap_or_else(|| "workflows.db".into());
                with_sqlite(server, &path, self.durability)
            }
        }
    }

    #[cfg(feature = "postgres")]
    async fn with_postgres(&self, server: Server, url: &str) -> Result<Server, ServerError> {
        let options = crate::storage::PostgresOptions {
            pool_size: self.postgres_pool_size.into(),
            ca_file: self.postgres_ca_file.clone(),
            durability: self.durability,
            ..Default::default()
        };
        let storage = crate::storage::PostgresStorage::connect_with(url, &options).await?;
        println!("storing runs in Postgres");
        Ok(server.storage(storage))
    }

    #[cfg(not(feature = "postgres"))]
    async fn with_postgres(&self, _server: Server, _url: &str) -> Result<Server, ServerError> {
        Err(ServerError::Config(
            "--postgres (or DATABASE_URL) names a Postgres database, but this build has no \
             Postgres support: build it with the `postgres-tls` feature (cargo run -p \
             workflows-server --features postgres-tls), or store runs in SQLite with --db"
                .into(),
        ))
    }
}

#[cfg(feature = "sqlite")]
fn with_sqlite(
    server: Server,
    path: &std::path::Path,
    durability: Durability,
) -> Result<Server, ServerError> {
    let server = server.storage(crate::storage::SqliteStorage::open_with(path, durability)?);
    println!("storing runs in the SQLite file {}", path.display());
    Ok(server)
}

#[cfg(not(feature = "sqlite"))]
fn with_sqlite(
    _server: Server,
    _path: &std::path::Path,
    _durability: Durability,
) -> Result<Server, ServerError> {
    Err(ServerError::Config(
        "this build has no SQLite support: name a Postgres database with --postgres, or build \
         workflows-server with the `sqlite` feature"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("workflows-server").chain(args.iter().copied()))
    }

    #[test]
    fn flags_take_equals_signs_and_durations_with_units() {
        let args = parse(&[
            "--bind=0.0.0.0:9000",
            "--idle-release",
            "1m 30s",
            "--lease-ttl=2",
        ])
        .unwrap();
        assert_eq!(args.bind, SocketAddr::from(([0, 0, 0, 0], 9000)));
        assert_eq!(args.idle_release, OrNever(Some(Duration::from_secs(90))));
        assert_eq!(args.lease_ttl, Duration::from_secs(2));
        let never = parse(&["--idle-release", "never"]).unwrap();
        assert_eq!(never.idle_release, OrNever(None));
        let kept = parse(&["--retention", "never"]).unwrap();
        assert_eq!(kept.config().unwrap().retention, None);
        let week = parse(&[]).unwrap().config().unwrap().retention;
        assert_eq!(week, Some(Duration::from_secs(7 * 24 * 3600)));
    }

    #[test]
    fn bad_values_say_what_to_write() {
        let short = parse(&["--lease-ttl", "50ms"]).unwrap_err().to_string();
        assert!(short.contains("at least 100ms"), "{short}");
        let garbled = parse(&["--idle-release", "soon"]).unwrap_err().to_string();
        assert!(
            garbled.contains("write for instance 90s or 1m"),
            "{garbled}"
        );
        let durability = parse(&["--durability", "fsync"]).unwrap_err().to_string();
        assert!(
            durability.contains("power-loss or process-crash"),
            "{durability}"
        );
        assert_eq!(
            parse(&["--durability", "process-crash"])
                .unwrap()
                .durability,
            Durability::ProcessCrash
        );
        let version = parse(&["--version"]).unwrap_err();
        assert_eq!(version.kind(), clap::error::ErrorKind::DisplayVersion);
    }

    #[test]
    fn tokens_come_from_a_file_and_the_environment_and_no_auth_excludes_them() {
        let dir = std::env::temp_dir().join(format!("wf-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tokens");
        std::fs::write(&file, "# the console\nfile-token-0123456789\n\n").unwrap();
        let args = parse(&[
            "--auth-token-file",
            file.to_str().unwrap(),
            "--auth-tokens",
            "flag-token-0123456789,other-token-0123456789",
        ])
        .unwrap();
        match args.config().unwrap().auth {
            Auth::Tokens(tokens) => {
                assert_eq!(tokens.len(), 3);
                assert!(tokens.admit(b"file-token-0123456789"));
                assert!(tokens.admit(b"other-token-0123456789"));
                assert!(!tokens.admit(b"file-token-012345678"));
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(&file, "# nothing but a comment\n").unwrap();
        let empty = parse(&["--auth-token-file", file.to_str().unwrap()]).unwrap();
        let refused = empty.config().unwrap_err().to_string();
        assert!(refused.contains("no authentication token"), "{refused}");
        let short = parse(&["--auth-tokens", "short"]).unwrap().config();
        assert!(
            short.unwrap_err().to_string().contains("at least 16"),
            "a short token is refused"
        );
        let both = parse(&["--no-auth", "--auth-tokens", "flag-token-0123456789"]);
        assert!(both.is_err(), "--no-auth conflicts with tokens");
        assert_eq!(
            parse(&["--no-auth"]).unwrap().config().unwrap().auth,
            Auth::Off
        );
        let origins = parse(&[
            "--cors-origin",
            "https://a.example",
            "--allowed-host",
            "app.example",
        ])
        .unwrap()
        .config()
        .unwrap();
        assert_eq!(
            origins.cors,
            Cors::Origins(vec!["https://a.example".into()])
        );
        assert_eq!(origins.allowed_hosts, vec!["app.example".to_owned()]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_defaults_are_the_configs() {
        let args = parse(&[]).unwrap();
        let config = args.config().unwrap();
        let default = Config::default();
        assert_eq!(
            (config.bind, config.idle_release, config.lease_ttl),
            (default.bind, default.idle_release, default.lease_ttl)
        );
        assert_eq!(
            (
                config.header_timeout,
                config.body_timeout,
                config.max_connections
            ),
            (
                default.header_timeout,
                default.body_timeout,
                default.max_connections
            )
        );
    }
}
