//! How [`PostgresStorage`](super::PostgresStorage) reaches its database: the URL (with the
//! libpq parameters tokio-postgres does not read), TLS, and the pool of connections.

use std::path::PathBuf;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::SslMode;

use crate::storage::sql::BoxError;
use crate::storage::{Durability, StorageError};

/// How long opening one connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle time before the kernel probes a connection, and how long unacknowledged data may
/// wait: a database host that vanished fails its connections within seconds instead of
/// stalling calls, and the pool opens new ones.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(20);

/// How a [`PostgresStorage`](super::PostgresStorage) connects.
///
/// ```
/// use std::time::Duration;
/// use workflows_server::storage::PostgresOptions;
///
/// let options = PostgresOptions {
///     pool_size: 32,
///     wait_timeout: Duration::from_secs(5),
///     ..PostgresOptions::default()
/// };
/// assert!(options.ca_file.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// At most this many connections at once (default 16). Requests beyond them wait for a
    /// free one.
    pub pool_size: usize,
    /// How long a call waits for a free connection before it fails (default 10 s).
    pub wait_timeout: Duration,
    /// A PEM file of certificate authorities to trust besides the system's, for a database
    /// whose certificate a private authority signed (feature `postgres-tls`). The URL's
    /// `sslrootcert=` names one too.
    pub ca_file: Option<PathBuf>,
    /// What a write survives once acknowledged (default [`Durability::PowerLoss`]:
    /// `synchronous_commit=on`).
    pub durability: Durability,
    /// The longest any statement of the server may run before the database cancels it
    /// (`statement_timeout`, default 10 s): a stuck statement fails its call instead of
    /// holding a connection.
    pub statement_timeout: Duration,
    /// The longest a statement waits for a row another session has locked (`lock_timeout`,
    /// default 2 s). Taking over a run never waits: a locked run is skipped until its lock
    /// goes.
    pub lock_timeout: Duration,
    /// How long one of the server's sessions may sit in an open transaction doing nothing
    /// before the database ends the session and releases its locks
    /// (`idle_in_transaction_session_timeout`, default 10 s): what frees the rows of a server
    /// that froze mid-transaction.
    pub idle_in_transaction_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 16,
            wait_timeout: Duration::from_secs(10),
            ca_file: None,
            durability: Durability::PowerLoss,
            statement_timeout: Duration::from_secs(10),
            lock_timeout: Duration::from_secs(2),
            idle_in_transaction_timeout: Duration::from_secs(10),
        }
    }
}

/// The database's side of a connection's TCP keepalive (`tcp_keepalives_*`,
/// `tcp_user_timeout`): a server whose host vanished without closing its sockets has its
/// sessions ended, and their locks released, within about 25 s rather than the kernel's two
/// hours.
const SERVER_KEEPALIVE: &str = "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 \
     -c tcp_keepalives_count=3 -c tcp_user_timeout=25000";

/// The settings [`PostgresStorage::session_settings`](super::PostgresStorage::session_settings)
/// shows.
pub(super) const SHOWN_SETTINGS: &[&str] = &[
    "synchronous_commit",
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "tcp_keepalives_idle",
    "tcp_keepalives_interval",
    "tcp_keepalives_count",
    "tcp_user_timeout",
];

/// The settings of every session the server opens, as the startup `options` parameter
/// carries them (after any the URL gives, which they override).
pub(super) fn session_settings(url_options: Option<&str>, options: &PostgresOptions) -> String {
    let ms = |d: Duration| d.as_millis().max(1);
    let synchronous_commit = match options.durability {
        Durability::PowerLoss => "on",
        Durability::ProcessCrash => "off",
    };
    let ours = format!(
        "-c synchronous_commit={synchronous_commit} -c statement_timeout={} \
         -c lock_timeout={} -c idle_in_transaction_session_timeout={} {SERVER_KEEPALIVE}",
        ms(options.statement_timeout),
        ms(options.lock_timeout),
        ms(options.idle_in_transaction_timeout),
    );
    match url_options {
        Some(given) if !given.trim().is_empty() => format!("{given} {ours}"),
        _ => ours,
    }
}

/// Where the database is, for messages: `host:port/dbname`, never the password.
pub(super) fn describe(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("");
    format!("{host}:{port}/{db}")
}

/// How much of the server's certificate is checked, as libpq's `sslmode` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verify {
    /// `prefer` and `require` (without a CA file): encrypted, the certificate unchecked.
    Nothing,
    /// `verify-ca`, or `require` with a CA file: signed by a trusted authority.
    Chain,
    /// `verify-full`: signed by a trusted authority, and for the host connected to.
    Full,
}

/// What the URL asks for: tokio-postgres's configuration, plus what this module reads
/// itself (tokio-postgres does not know libpq's `sslrootcert=`, `verify-ca`, `verify-full`).
#[derive(Debug)]
pub(super) struct Target {
    pub config: tokio_postgres::Config,
    pub ca_file: Option<PathBuf>,
    pub verify: Verify,
}

/// Reads `url`, taking out `sslrootcert=` and turning `sslmode=verify-ca` and `verify-full`
/// into tokio-postgres's `require` plus the verification they ask for.
pub(super) fn parse(url: &str) -> Result<Target, StorageError> {
    let mut ca_file = None;
    let mut verify = Verify::Nothing;
    let mut rewrite = |key: &str, value: &str| -> Option<String> {
        match (key, value) {
            ("sslrootcert", path) => {
                ca_file = Some(PathBuf::from(path));
                None
            }
            ("sslmode", "verify-ca") => {
                verify = Verify::Chain;
                Some(format!("{key}=require"))
            }
            ("sslmode", "verify-full") => {
                verify = Verify::Full;
                Some(format!("{key}=require"))
            }
            _ => Some(format!("{key}={value}")),
        }
    };
    let cleaned = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            Some((base, query)) => {
                let kept: Vec<String> = query
                    .split('&')
                    .filter(|pair| !pair.is_empty())
                    .filter_map(|pair| {
                        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                        rewrite(key, value)
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
            None => url.to_owned(),
        }
    } else {
        // The key-value form: `host=... dbname=... sslrootcert=...`.
        url.split_whitespace()
            .filter_map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                rewrite(key, value)
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let config = cleaned.parse::<tokio_postgres::Config>().map_err(|e| {
        StorageError::open(
            "read the Postgres URL (write it as postgres://user:password@host:port/dbname)",
            e,
        )
    })?;
    Ok(Target {
        config,
        ca_file,
        verify,
    })
}

/// How connections to the database are made: its settings (the sessions' among them) and
/// TLS. The pool makes them through it, and so does the connection that listens for other
/// servers' changes, which must not sit in the pool.
#[derive(Clone)]
pub(super) struct Connector {
    config: tokio_postgres::Config,
    #[cfg(feature = "postgres-tls")]
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl Connector {
    fn manager(&self, manager_config: ManagerConfig) -> Manager {
        let config = self.config.clone();
        #[cfg(feature = "postgres-tls")]
        if let Some(tls) = &self.tls {
            return Manager::from_config(config, tls.clone(), manager_config);
        }
        Manager::from_config(config, tokio_postgres::NoTls, manager_config)
    }

    /// A connection of its own, outside the pool. The messages the database sends outside
    /// any statement (notifications) come through the receiver, which ends when the
    /// connection does.
    pub(super) async fn connect_alone(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::AsyncMessage>,
        ),
        tokio_postgres::Error,
    > {
        #[cfg(feature = "postgres-tls")]
        if let Some(tls) = &self.tls {
            let (client, connection) = self.config.connect(tls.clone()).await?;
            return Ok((client, drive(connection)));
        }
        let (client, connection) = self.config.connect(tokio_postgres::NoTls).await?;
        Ok((client, drive(connection)))
    }
}

/// Drives `connection` on a task of its own, passing on its messages until it closes.
fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
) -> tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::AsyncMessage>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (messages, received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if messages.send(message).is_err() {
                return;
            }
        }
    });
    received
}

/// A pool of connections to the database `url` names, the first one opened to check that it
/// answers, and how to open more.
pub(super) async fn pool(
    url: &str,
    options: &PostgresOptions,
) -> Result<(Pool, Connector), StorageError> {
    let Target {
        mut config,
        ca_file,
        mut verify,
    } = parse(url)?;
    let target = format!("connect to Postgres at {}", describe(&config));
    config
        .connect_timeout(CONNECT_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .tcp_user_timeout(TCP_USER_TIMEOUT);
    let settings = session_settings(config.get_options(), options);
    config.options(&settings);
    if options.pool_size == 0 {
        return Err(StorageError::Config(
            "the Postgres pool size is 0; it needs at least one connection".into(),
        ));
    }
    let ca_file = options.ca_file.clone().or(ca_file);
    // As libpq: `require` with a CA file checks the chain.
    if verify == Verify::Nothing && ca_file.is_some() && config.get_ssl_mode() == SslMode::Require {
        verify = Verify::Chain;
    }
    let connector = match config.get_ssl_mode() {
        SslMode::Disable => Connector {
            config,
            #[cfg(feature = "postgres-tls")]
            tls: None,
        },
        _ => tls::connector(config, verify, ca_file.as_deref())?,
    };
    let manager = connector.manager(ManagerConfig {
        // A connection that broke (the database restarted) is noticed by its closed socket
        // and replaced; a statement on it would fail and be retried by the caller.
        recycling_method: RecyclingMethod::Fast,
    });
    let pool = Pool::builder(manager)
        .max_size(options.pool_size)
        .wait_timeout(Some(options.wait_timeout))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| StorageError::open(target.clone(), e))?;
    // Fail at start, with the database's own reason, rather than on the first request.
    // (The connection goes back to the pool when dropped.)
    drop(pool.get().await.map_err(|e| StorageError::Open {
        target,
        source: std::sync::Arc::from(unpooled(e)),
    })?);
    Ok((pool, connector))
}

/// The error of a connection the pool could not give: the database's own when opening one
/// failed (rather than the pool's "error occurred while creating a new object").
pub(super) fn unpooled(e: deadpool_postgres::PoolError) -> BoxError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => e.into(),
        e => e.into(),
    }
}

#[cfg(feature = "postgres-tls")]
mod tls {
    //! TLS with rustls (on `ring`), checking the server's certificate as much as the URL's
    //! `sslmode` asks, against the system's authorities plus a CA file.

    use std::path::Path;
    use std::sync::Arc;

    use rustls::DigitallySignedStruct;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    use super::{Connector, Verify};
    use crate::storage::StorageError;

    pub(super) fn connector(
        config: tokio_postgres::Config,
        verify: Verify,
        ca_file: Option<&Path>,
    ) -> Result<Connector, StorageError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let webpki = match verify {
            Verify::Nothing => None,
            Verify::Chain | Verify::Full => {
                let roots = Arc::new(roots(ca_file)?);
                let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| {
                        StorageError::open(
                            "check Postgres's certificate (name the authority that signed it \
                             with --postgres-ca-file or the URL's sslrootcert=)",
                            e,
                        )
                    })?;
                Some(verifier)
            }
        };
        let verifier = Arc::new(Verifier {
            verify,
            webpki,
            provider: provider.clone(),
        });
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StorageError::open("set up TLS for Postgres", e))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Connector {
            config,
            tls: Some(tokio_postgres_rustls::MakeRustlsConnect::new(tls)),
        })
    }

    /// The system's authorities and those in `ca_file`.
    fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, StorageError> {
        let mut roots = rustls::RootCertStore::empty();
        // Certificates the system lists but rustls cannot read are skipped, as browsers do.
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        if let Some(path) = ca_file {
            let target = format!("read the certificate authorities in {}", path.display());
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| StorageError::open(target.clone(), e))?;
            if certs.is_empty() {
                return Err(StorageError::Config(format!(
                    "{} holds no PEM certificate",
                    path.display()
                )));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| StorageError::open(target.clone(), e))?;
            }
        }
        Ok(roots)
    }

    /// Checks a certificate as [`Verify`] says; the handshake's signatures are always
    /// checked against the certificate presented.
    #[derive(Debug)]
    struct Verifier {
        verify: Verify,
        webpki: Option<Arc<WebPkiServerVerifier>>,
        provider: Arc<CryptoProvider>,
    }

    impl ServerCertVerifier for Verifier {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp_response: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            let Some(webpki) = &self.webpki else {
                return Ok(ServerCertVerified::assertion());
            };
            let checked = webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            );
            match checked {
                // `verify-ca` checks who signed, not which host it names.
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. },
                )) if self.verify == Verify::Chain => Ok(ServerCertVerified::assertion()),
                other => other,
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
}

#[cfg(not(feature = "postgres-tls"))]
mod tls {
    use tokio_postgres::config::SslMode;

    use super::{Connector, Verify};
    use crate::storage::StorageError;

    /// Without the `postgres-tls` feature, `sslmode=prefer` (the default) connects in the
    /// clear and a URL that requires TLS is refused with what to do.
    pub(super) fn connector(
        config: tokio_postgres::Config,
        verify: Verify,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Connector, StorageError> {
        if config.get_ssl_mode() == SslMode::Require
            || verify != Verify::Nothing
            || ca_file.is_some()
        {
            return Err(StorageError::Config(
                "the Postgres URL asks for TLS, but this build has no TLS: build \
                 workflows-server with the `postgres-tls` feature, or connect with \
                 sslmode=disable"
                    .into(),
            ));
        }
        Ok(Connector { config })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_parameters_are_read_here() {
        let target =
            parse("postgres://u:p@db:6543/runs?sslmode=verify-full&sslrootcert=/etc/ca.pem")
                .unwrap();
        assert_eq!(target.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(target.verify, Verify::Full);
        assert_eq!(target.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(describe(&target.config), "db:6543/runs");

        let target = parse("host=db dbname=runs sslrootcert=ca.pem sslmode=verify-ca").unwrap();
        assert_eq!(target.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(target.verify, Verify::Chain);
        assert_eq!(target.ca_file, Some(PathBuf::from("ca.pem")));

        let target = parse("postgresql://db/runs?application_name=wf").unwrap();
        assert_eq!(target.config.get_application_name(), Some("wf"));
        assert_eq!(target.config.get_ssl_mode(), SslMode::Prefer);
        assert_eq!(target.verify, Verify::Nothing);
        assert_eq!(target.ca_file, None);
    }

    #[test]
    fn a_bad_url_says_how_to_write_one() {
        let e = parse("postgres://db/runs?colour=blue").unwrap_err();
        let text = crate::storage::ErrorChain(&e).to_string();
        assert!(
            text.contains("postgres://user:password@host:port/dbname"),
            "{text}"
        );
        assert!(text.contains("colour"), "{text}");
    }
}
