//! authstore: the Auth.js adapter store and OIDC issuer in one binary.
//!
//! Where a request goes:
//! * [`http`] maps routes to handlers (the table is at the top of `http/mod.rs`);
//! * `http::adapter` turns `POST /api/adapter/{method}` into a [`store::Store`] call;
//! * `http::token` and `http::discovery` ask the [`issuer::Issuer`];
//! * [`store::sqlite`] is the only code that speaks SQL.
//!
//! The app is a value: [`Application::build`] takes a [`Config`] and a bound
//! listener (port 0 allowed) and returns a handle that knows its port.
//!
//! # One direction
//!
//! The top-level modules depend downward only, in this order (a module
//! names only modules on its own line or above; `../shared/tools/module-cycles
//! src` checks that the graph has no cycle):
//!
//! 1. leaves: [`timestamp`], [`clock`], [`trace`], [`model`], [`error`],
//!    [`files`], [`urls`], [`limits`], [`logging`], [`metrics`], [`secret`];
//! 2. [`kek`] (sealing at rest);
//! 3. [`store`] (the backends, each owning its settings type);
//! 4. [`issuer`] and [`convex_import`];
//! 5. [`http`], [`webhooks`] (owning `[[webhooks]]`' settings type) and the
//!    background jobs;
//! 6. [`config`]: reads, layers and validates every module's settings and
//!    hands them out; nothing above this line imports it;
//! 7. the operator's tools on a database: [`operations`], [`seed`], and
//!    [`control`] (the control socket, which runs commands it is handed);
//!    `testing` (the `testing` feature's in-process server);
//! 8. [`cli`]: the command line and the commands, which `lib.rs` hands to
//!    the control socket.

// A std lock held across an await blocks every task behind it (clippy.toml
// holds the other house lints).
#![deny(clippy::await_holding_lock)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod convex_import;
pub mod error;
pub mod files;
pub mod http;
pub mod issuer;
mod jobs;
pub mod kek;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod operations;
pub mod secret;
pub mod seed;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod timestamp;
pub mod trace;
pub mod urls;
pub mod webhooks;

pub use config::Config;

use crate::clock::{Clock, SystemClock};
use crate::issuer::{Issuer, IssuerSettings};
use crate::kek::{Kek, KekOrigin};
use crate::secret::{Secret, SecretError, SecretOrigin};
use crate::store::postgres::{PostgresOptions, PostgresStore};
use crate::store::sqlite::{OpenError, SqliteOptions, SqliteStore};
use crate::store::{KeyStore, Maintenance, Store};
use actix_web::{dev::Server, web, App, HttpServer};
use std::net::{IpAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Database(#[from] OpenError),
    #[error(transparent)]
    Postgres(#[from] store::postgres::OpenError),
    #[error(transparent)]
    Kek(#[from] kek::KekError),
    #[error(transparent)]
    Lease(#[from] files::LeaseError),
    #[error("cannot load the signing keys: {}", .0.log_text())]
    Keys(error::Error),
    #[error("signing_key_file {path}: {reason}")]
    SigningKey {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error(transparent)]
    Webhook(#[from] webhooks::EndpointError),
    #[error("cannot start the HTTP server: {0}")]
    Io(#[from] std::io::Error),
}

/// Resolves the secret: the setting, the configured file, or the default
/// file beside the database (generated on first start).
pub fn resolve_secret(config: &Config) -> Result<(Secret, SecretOrigin), SecretError> {
    if let Some(secret) = &config.secret {
        return Ok((secret.clone(), SecretOrigin::Configured));
    }
    if let Some(path) = &config.secret_file {
        return Ok((secret::read_file(path)?, SecretOrigin::File(path.clone())));
    }
    secret::read_or_generate(&config.default_secret_file())
}

/// Opens the database (creating a SQLite file only when `create`) with its
/// key-encryption key: the configured one, or `<database>.kek`, generated
/// only for a SQLite database that holds nothing sealed yet.
pub async fn open_store(config: &Config, create: bool) -> Result<Arc<dyn Store>, StartupError> {
    open_store_on(config, create, Arc::new(SystemClock)).await
}

/// [`open_store`], with the events timed by `clock`.
async fn open_store_on(
    config: &Config,
    create: bool,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn Store>, StartupError> {
    if config.postgres_url().is_none() && !create {
        // Before anything is generated beside it.
        require_database(config)?;
    }
    let sealed_under = match config.postgres_url() {
        // The database records its KEK; opening it refuses another.
        Some(_) => None,
        None => SqliteStore::sealed_under(&config.database)?,
    };
    let (kek, origin) = kek::resolve(&config.kek_source(), sealed_under.as_deref())?;
    log::info!("key-encryption key {} from {origin}", kek.id());
    if let KekOrigin::File(path) | KekOrigin::Generated(path) = &origin {
        files::warn_if_readable_by_others(path, "key-encryption key");
    }
    open_store_with(config, create, Arc::new(kek), clock).await
}

/// Fails with `Missing` (naming the absolute path) when there is no
/// database: the commands other than `serve` never create one.
pub fn require_database(config: &Config) -> Result<(), OpenError> {
    if config.postgres_url().is_some() || config.database.exists() {
        return Ok(());
    }
    Err(OpenError::Missing {
        path: std::path::absolute(&config.database).unwrap_or_else(|_| config.database.clone()),
    })
}

/// Opens the database with a given key-encryption key.
pub async fn open_store_with(
    config: &Config,
    create: bool,
    kek: Arc<Kek>,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn Store>, StartupError> {
    if let Some(url) = config.postgres_url() {
        let postgres = &config.postgres;
        let options = PostgresOptions {
            url: url.to_owned(),
            pool_size: postgres.pool_size,
            connect_timeout: Duration::from_secs(postgres.connect_timeout_secs),
            statement_timeout: Duration::from_secs(postgres.statement_timeout_secs),
            ca_file: postgres.ca_file.clone(),
            threads: workers(config).min(4),
            clock,
        };
        let store = PostgresStore::open(&options, kek, &config.database_for_log()).await?;
        return Ok(Arc::new(store));
    }
    Ok(Arc::new(open_sqlite_on(config, create, kek, clock)?))
}

/// Opens the SQLite database at `config.database` with a given KEK.
pub fn open_sqlite(
    config: &Config,
    create: bool,
    kek: Arc<Kek>,
) -> Result<SqliteStore, StartupError> {
    open_sqlite_on(config, create, kek, Arc::new(SystemClock))
}

fn open_sqlite_on(
    config: &Config,
    create: bool,
    kek: Arc<Kek>,
    clock: Arc<dyn Clock>,
) -> Result<SqliteStore, StartupError> {
    let sqlite = &config.sqlite;
    let readers = match sqlite.read_connections {
        0 => workers(config) as u32 + 1,
        n => n,
    };
    Ok(SqliteStore::open(
        &SqliteOptions {
            path: config.database.clone(),
            create,
            durability: sqlite.durability,
            readers,
            read_cache_mib: sqlite.read_cache_mib,
            read_mmap_mib: sqlite.read_mmap_mib,
            wal_budget_mib: sqlite.wal_budget_mib,
            locking: sqlite.locking,
            checkpoints: sqlite.checkpoints,
            clock,
        },
        kek,
    )?)
}

/// HTTP worker threads: the setting, or one per core.
pub fn workers(config: &Config) -> usize {
    match config.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// The issuer URL: the configured one, else this server's own address.
pub fn issuer_url(config: &Config, port: u16) -> String {
    if let Some(issuer) = &config.issuer {
        return issuer.clone();
    }
    let host = match config.bind.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => "localhost".to_owned(),
        Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => config.bind.clone(),
    };
    format!("http://{host}:{port}")
}

/// Starts the issuer on a database whose first signing key is the one in
/// `path` (when it has no key yet), instead of generating one.
async fn start_with_key(
    settings: IssuerSettings,
    keys: Arc<dyn KeyStore>,
    clock: Arc<dyn Clock>,
    path: &std::path::Path,
) -> Result<Issuer, StartupError> {
    let key_error = |reason: String| StartupError::SigningKey {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| key_error(e.to_string()))?;
    let material =
        issuer::keys::KeyMaterial::from_pem(&pem).map_err(|e| key_error(e.to_string()))?;
    let issuer = Issuer::open(settings, keys, clock)
        .await
        .map_err(StartupError::Keys)?;
    if issuer
        .describe_keys()
        .await
        .map_err(StartupError::Keys)?
        .is_empty()
    {
        // Another process may adopt it at the same moment: one of the two
        // swaps applies, the other finds the key in the set.
        match issuer.import(material).await {
            Ok(_) => log::info!("signing key from {}", path.display()),
            Err(error::Error::Conflict(_)) => {}
            Err(e) => return Err(StartupError::Keys(e)),
        }
    }
    issuer.maintain().await.map_err(StartupError::Keys)?;
    Ok(issuer)
}

pub struct Application {
    port: u16,
    store: Arc<dyn Store>,
    issuer: Arc<Issuer>,
    server: Server,
    /// The Prometheus listener (`metrics_bind`).
    metrics_server: Option<MetricsServer>,
    /// The name this server's webhook workers hold their endpoints under.
    webhook_owner: Option<String>,
    /// A SQLite database's claim (`authstore restore` waits for none).
    _lease: Option<files::Lease>,
    /// Where commands reach a server that holds its SQLite file alone.
    control: Option<control::ControlSocket>,
    /// Alive while any HTTP worker still holds the handlers' state (and with
    /// it the store): stopped means gone.
    serving: std::sync::Weak<http::AppState>,
}

/// The `GET /metrics` server on its own listener, running on its own task.
struct MetricsServer {
    handle: actix_web::dev::ServerHandle,
    running: actix_web::rt::task::JoinHandle<std::io::Result<()>>,
    address: std::net::SocketAddr,
}

/// How long a stopped server waits for its workers to let go of the store.
const RELEASE_DEADLINE: Duration = Duration::from_secs(10);

impl Application {
    /// Builds the server on `listener`. Must run inside an actix system (the
    /// background jobs are spawned onto it).
    pub async fn build(config: Config, listener: TcpListener) -> Result<Self, StartupError> {
        Self::build_with_clock(config, listener, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        config: Config,
        listener: TcpListener,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let (secret, origin) = resolve_secret(&config)?;
        // Held while this server runs: `authstore restore` waits for none.
        // How this server holds its SQLite file; `None` on PostgreSQL.
        let locking = config
            .postgres_url()
            .is_none()
            .then_some(config.sqlite.locking);
        let lease = match locking {
            None => None,
            Some(config::Locking::Shared) => Some(files::Lease::shared(&config.database, || {
                control::answers(&config.database)
            })?),
            Some(config::Locking::Exclusive) => {
                log::info!(
                    "locking = \"exclusive\": this server holds {} alone while it runs; \
                     Litestream, the sqlite3 shell and every other process are shut out \
                     (locking = \"shared\" lets them read it)",
                    config.database.display()
                );
                Some(files::Lease::sole(&config.database, || {
                    control::answers(&config.database)
                })?)
            }
        };
        if locking.is_some() && config.sqlite.checkpoints == config::Checkpoints::Litestream {
            log::info!(
                "checkpoints = \"litestream\": WAL checkpoints are left to Litestream; this \
                 server checkpoints only past wal_budget_mib ({} MiB)",
                config.sqlite.wal_budget_mib
            );
        }
        log::info!("secret from {origin}");
        match (
            config.previous_secrets.len(),
            config.previous_secrets_until(),
        ) {
            (0, _) => {}
            (n, Some(until)) if until <= clock.now() => log::warn!(
                "{n} previous secret(s) no longer accepted (previous_secrets_until {until} \
                 has passed): remove them from the configuration"
            ),
            (n, Some(until)) => log::info!("{n} previous secret(s) accepted until {until}"),
            (n, None) => {
                log::info!("{n} previous secret(s) accepted until removed from the configuration")
            }
        }
        let endpoints = config
            .webhooks
            .iter()
            .map(webhooks::Endpoint::from_config)
            .collect::<Result<Vec<_>, _>>()?;
        let store = open_store_on(&config, true, clock.clone()).await?;
        log::info!("database {}", config.database_for_log());

        let bound = listener.local_addr()?;
        let port = bound.port();
        let control = match locking {
            Some(config::Locking::Exclusive) => {
                // The port really bound: commands derive the issuer's URL from it.
                let mut settings = config.clone();
                settings.port = port;
                control::ControlSocket::listen(&settings, store.clone(), cli::run_for_client)
            }
            _ => None,
        };
        let settings = config.issuer_settings(issuer_url(&config, port));
        log::info!("issuer {}", settings.issuer);
        let keys = store.clone() as Arc<dyn KeyStore>;
        let issuer = Arc::new(match &config.signing_key_file {
            None => Issuer::start(settings, keys, clock.clone())
                .await
                .map_err(StartupError::Keys)?,
            Some(path) => start_with_key(settings, keys, clock.clone(), path).await?,
        });

        let seen = Arc::new(store::sessions::SeenTracker::default());
        let state = web::Data::new(http::AppState {
            store: store.clone(),
            issuer: issuer.clone(),
            secrets: secret::Secrets {
                current: secret,
                previous: config.previous_secrets.clone(),
                previous_until: config.previous_secrets_until(),
            },
            max_body_bytes: config.max_body_bytes,
            body_timeout: Duration::from_secs(config.body_timeout_secs),
            console_session_max: Duration::from_secs(config.console_session_max_secs),
            session_ip: config.session_ip,
            seen: seen.clone(),
        });
        let serving = Arc::downgrade(&state.clone().into_inner());
        // Bound before the main listener serves: a bad address fails the start.
        let metrics_listener = match &config.metrics_bind {
            Some(bind) => Some(TcpListener::bind(bind.as_str()).map_err(|e| {
                StartupError::Io(std::io::Error::new(
                    e.kind(),
                    format!("binding metrics_bind {bind}: {e}"),
                ))
            })?),
            None => None,
        };
        let metrics_on = metrics_listener.is_some();
        let metrics_state = state.clone();
        let workers = workers(&config);
        let open_files = limits::raise_open_files();
        let max_connections = limits::max_connections(config.max_connections, open_files);
        log::info!(
            "accepting up to {max_connections} connections ({open_files} open files allowed)"
        );
        let server = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::Condition::new(
                    metrics_on,
                    actix_web::middleware::from_fn(http::metrics::record),
                ))
                // Request id, trace and the access line: method, path (never
                // the query), status, duration; no body, token or secret.
                .wrap(actix_web::middleware::from_fn(http::request_id::tag))
                .app_data(state.clone())
                .configure(http::routes)
        })
        .on_connect(move |_, extensions| {
            if metrics_on {
                extensions.insert(metrics::OpenConnection::open());
            }
        })
        .workers(workers)
        // actix counts connections per worker.
        .max_connections(max_connections.div_ceil(workers).max(1))
        // Signals are handled by the caller (`cli`), so that SIGINT, like
        // SIGTERM, lets in-flight requests finish.
        .disable_signals()
        .shutdown_timeout(10)
        .listen(listener)?
        .run();

        let store_handle = store.clone();
        jobs::spawn_seen_flush(store.clone() as Arc<dyn store::SessionsStore>, seen);
        jobs::spawn_purge(
            store as Arc<dyn Maintenance>,
            clock,
            Duration::from_secs(config.purge_interval_secs),
            config.purge_batch,
        );
        jobs::spawn_key_check(
            issuer.clone(),
            Duration::from_secs(config.key_check_interval_secs),
        );
        // This process's name in the webhook endpoints' leases.
        let webhook_owner = uuid::Uuid::new_v4().to_string();
        let delivers = !endpoints.is_empty();
        webhooks::spawn(
            store_handle.clone() as Arc<dyn store::events::Outbox>,
            endpoints,
            Duration::from_secs(config.token_lifetime_secs),
            &webhook_owner,
        );

        let metrics_server = match metrics_listener {
            Some(listener) => {
                let address = listener.local_addr()?;
                let server = http::metrics::serve(listener, metrics_state)?;
                let handle = server.handle();
                // A server runs once polled: the metrics one on its own task.
                let running = actix_web::rt::spawn(server);
                log::info!("metrics on http://{address}/metrics");
                Some(MetricsServer {
                    handle,
                    running,
                    address,
                })
            }
            None => None,
        };

        // The address really bound; test harnesses parse this line.
        log::info!("listening on http://{bound}");
        Ok(Application {
            port,
            store: store_handle,
            issuer,
            server,
            metrics_server,
            webhook_owner: delivers.then_some(webhook_owner),
            _lease: lease,
            control,
            serving,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where `GET /metrics` is served, when `metrics_bind` is set.
    pub fn metrics_address(&self) -> Option<std::net::SocketAddr> {
        self.metrics_server.as_ref().map(|m| m.address)
    }

    pub fn issuer(&self) -> &Arc<Issuer> {
        &self.issuer
    }

    /// The store the server serves (for seeding fixtures before traffic).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until [`Self::handle`]`.stop()` is called, then waits until
    /// every HTTP worker has dropped its handlers (and their hold on the
    /// database): when this returns, only the caller's own handles (the
    /// issuer) keep the store open.
    pub async fn run_until_stopped(mut self) -> std::io::Result<()> {
        self.server.await?;
        // Commands open the file themselves once this server lets go of it.
        drop(self.control.take());
        if let Some(owner) = &self.webhook_owner {
            // Another process takes the endpoints over now, not in 30 s.
            if let Err(e) = self.store.release_endpoints(owner).await {
                log::warn!("could not release the webhook endpoints: {}", e.log_text());
            }
        }
        if let Some(metrics) = self.metrics_server {
            metrics.handle.stop(true).await;
            match metrics.running.await {
                Ok(result) => result?,
                Err(e) => log::warn!("the metrics server ended badly: {e}"),
            }
        }
        let deadline = std::time::Instant::now() + RELEASE_DEADLINE;
        while self.serving.strong_count() > 0 {
            if std::time::Instant::now() > deadline {
                log::warn!("an HTTP worker still holds the store after {RELEASE_DEADLINE:?}");
                break;
            }
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}
