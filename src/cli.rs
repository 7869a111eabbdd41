//! The command line: `serve`, `secret`, `keys`, `convex-config`.

use crate::clock::SystemClock;
use crate::config::{Config, ConfigError};
use crate::issuer::keys::{KeyMaterial, Rotation};
use crate::issuer::{Issuer, IssuerSettings};
use crate::kek::Kek;
use crate::secret::Secret;
use crate::store::sqlite::SqliteStore;
use crate::store::KeyStore;
use crate::{issuer_url, open_sqlite, open_store, Application};
use base64::{engine::general_purpose::STANDARD, Engine};
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use toml::{Table, Value};

/// The Auth.js adapter store and OIDC issuer for self-hosted apps: one
/// binary, one SQLite file.
///
/// Settings come from built-in defaults, then the config file, then
/// AUTHSTORE_* environment variables, then flags. The top-level config.toml
/// of the project documents every setting.
#[derive(Parser, Debug)]
#[command(name = "authstore", version)]
pub struct Cli {
    /// Config file [default: ./config.toml when it exists]
    #[arg(long, global = true, env = "AUTHSTORE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// The SQLite database file, or a postgres:// URL [default: ./authstore.db] [env: AUTHSTORE_DATABASE]
    #[arg(long, global = true, value_name = "FILE")]
    database: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start the server (creates the database, a secret and a signing key on
    /// first start)
    Serve(ServeArgs),
    /// Print a new random secret (32 bytes, base64url)
    Secret,
    /// Inspect and rotate the issuer's signing keys
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Load another setup's users, accounts and sessions (keeping user ids)
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
    /// Print `convex/auth.config.ts` for this issuer (one file, ready to save)
    ConvexConfig(ConvexConfigArgs),
    /// List recorded events, newest first: sessions deleted, expired or
    /// revoked, users deleted, accounts unlinked (kept 30 days)
    Audit(AuditArgs),
    /// Print a one-time link that signs a browser in to the operator's
    /// console (/console/); it works once, within 10 minutes
    ConsoleLink(ConsoleLinkArgs),
    /// Copy the database to FILE while servers keep running (a consistent
    /// snapshot, mode 0600), and verify the copy. The copy opens only with the
    /// database's key-encryption key: keep that apart from the backup.
    Backup {
        /// The new file to write; an existing one is never overwritten
        file: PathBuf,
    },
    /// Put a backup in place of the database. Refused while a server uses
    /// the database, and for a backup that fails its integrity check or that
    /// the configured key-encryption key does not open
    Restore {
        /// The backup, as `authstore backup` wrote it
        file: PathBuf,
    },
    /// Check the database: integrity, references, schema version, key ring,
    /// file modes. Exit status 0 only when every check holds
    Check {
        /// One JSON object on stdout instead of lines for a person
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
struct AuditArgs {
    /// Only this type: session.deleted, session.expired, user.sessions_revoked,
    /// user.deleted, account.unlinked
    #[arg(long = "type", value_name = "TYPE")]
    kind: Option<String>,
    /// Only this user's
    #[arg(long, value_name = "ID")]
    user: Option<String>,
    /// Only at or after this instant (ISO 8601, e.g. 2026-11-28T00:00:00Z)
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// At most this many
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// One JSON object per line
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct ConsoleLinkArgs {
    /// The server's URL as your browser reaches it [default: the issuer
    /// setting, else http://<bind>:<port>]
    #[arg(long)]
    url: Option<String>,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address to bind [default: 127.0.0.1] [env: AUTHSTORE_BIND]
    #[arg(long)]
    bind: Option<String>,
    /// Port to listen on; 0 picks a free one [default: 7878] [env: AUTHSTORE_PORT]
    #[arg(long)]
    port: Option<u16>,
    /// Public URL of this issuer, used byte-for-byte in tokens
    /// [default: http://<bind>:<port>] [env: AUTHSTORE_ISSUER]
    #[arg(long)]
    issuer: Option<String>,
    /// Serve Prometheus metrics (`GET /metrics`) on this host:port, apart from
    /// the adapter's port [default: off] [env: AUTHSTORE_METRICS_BIND]
    #[arg(long, value_name = "HOST:PORT")]
    metrics_bind: Option<String>,
    /// Read the shared secret from this file [env: AUTHSTORE_SECRET_FILE]
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// HTTP worker threads; 0 is one per core [default: 0] [env: AUTHSTORE_WORKERS]
    #[arg(long)]
    workers: Option<usize>,
    /// A throwaway server for a test or a laptop: a new database in a new
    /// temp directory (removed at exit), a random secret, a free port; when
    /// ready it prints one JSON line on stdout ({"url", "secret", "issuer",
    /// "jwks_uri", "pid"}) and it exits when its stdin closes
    #[arg(long)]
    ephemeral: bool,
    /// Adopt this PEM key (RSA or EC P-256) as the first signing key instead of generating
    /// one [env: AUTHSTORE_SIGNING_KEY_FILE]
    #[arg(long, value_name = "FILE")]
    signing_key: Option<PathBuf>,
    /// Load users, accounts, sessions, verificationTokens and authenticators
    /// from this JSON file through the adapter methods before serving
    #[arg(long, value_name = "FILE")]
    seed: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum ImportSource {
    /// A Convex snapshot export (`npx convex export --path snapshot.zip`, a
    /// ZIP or a directory) of the Convex Auth.js adapter guide's tables:
    /// users, accounts, sessions, verificationTokens, authenticators. User
    /// ids stay the Convex ids, so tokens keep their `sub`; sessions keep
    /// working. Rows already imported are left alone: running it again
    /// changes nothing.
    Convex {
        /// The export: a .zip file or a directory
        export: PathBuf,
        /// Import even though the database already has users not in the export
        #[arg(long)]
        allow_existing_users: bool,
    },
}

#[derive(Args, Debug)]
struct ConvexConfigArgs {
    /// The issuer Convex will see in tokens [default: the issuer setting] [env: AUTHSTORE_ISSUER]
    #[arg(long)]
    issuer: Option<String>,
    /// `oidc`: Convex fetches the issuer's discovery document and JWKS (the
    /// issuer must be reachable from Convex's cloud); `custom-jwt`: the keys
    /// travel inline (a laptop; print it again after a key rotation).
    /// [default: oidc for a public issuer, custom-jwt for a loopback or private one]
    #[arg(long, value_enum)]
    provider: Option<ConvexProvider>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ConvexProvider {
    Oidc,
    CustomJwt,
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// List keys: kid, state, algorithm, created, signs from, retires at
    List,
    /// Schedule a new signing key: published now, signing after the lead time
    /// (key_lead_time_secs); the current key stays published until its tokens
    /// expire. Does nothing while a new key is already waiting.
    Rotate {
        /// For a compromised key: the new key signs at once and the current
        /// key leaves the JWKS at once (its tokens stop verifying)
        #[arg(long)]
        now: bool,
    },
    /// Adopt an existing private key (RSA 2048+ or EC P-256, PEM) as the signing key; the
    /// previous key stays published until its tokens expire
    Import {
        /// The PEM file, e.g. from `openssl genpkey -algorithm RSA` (or `-algorithm EC -pkeyopt ec_paramgen_curve:P-256`)
        #[arg(long, value_name = "FILE")]
        pem: PathBuf,
    },
    /// Re-seal every signing key and OAuth token under a new key-encryption
    /// key, in one transaction. The new key is the configured one
    /// (key_encryption_key_file / AUTHSTORE_KEY_ENCRYPTION_KEY, else
    /// <database>.kek, generated when missing). Refused while a server uses
    /// the database; start the servers with the new key afterwards.
    Rewrap {
        /// The key-encryption key the database is sealed under now
        #[arg(long, value_name = "FILE")]
        old_key_file: PathBuf,
    },
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Startup(#[from] crate::StartupError),
    #[error(transparent)]
    Kek(#[from] crate::kek::KekError),
    #[error(transparent)]
    Secret(#[from] crate::secret::SecretError),
    #[error(transparent)]
    Database(#[from] crate::store::sqlite::OpenError),
    #[error("{0}")]
    Rewrap(String),
    #[error(transparent)]
    Backup(#[from] crate::operations::BackupError),
    #[error(transparent)]
    Restore(#[from] crate::operations::RestoreError),
    #[error(transparent)]
    Lease(#[from] crate::files::LeaseError),
    #[error("{0}")]
    Unsupported(&'static str),
    #[error(transparent)]
    Import(#[from] crate::convex_import::ImportError),
    #[error(transparent)]
    Seed(#[from] crate::seed::SeedError),
    #[error("the database failed a check (see above)")]
    Check,
    #[error("{}", .0.log_text())]
    App(#[from] crate::error::Error),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Key {
        path: PathBuf,
        source: crate::issuer::keys::KeyError,
    },
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Control(#[from] crate::control::ControlError),
    /// The running server ran the command, which ended with this status.
    #[error("the server ran the command; it ended with status {0}")]
    Forwarded(u8),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init();
    crate::store::sqlite::configure_library();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The server printed the command's own error.
        Err(CliError::Forwarded(code)) => ExitCode::from(code),
        Err(e) => {
            eprintln!("authstore: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let mut flags = Table::new();
    set(
        &mut flags,
        "database",
        cli.database.as_deref().map(path_value),
    );
    if let Command::ConvexConfig(args) = &cli.command {
        set(&mut flags, "issuer", args.issuer.clone().map(Value::String));
    }
    if let Command::Serve(args) = &cli.command {
        set(&mut flags, "bind", args.bind.clone().map(Value::String));
        set(
            &mut flags,
            "port",
            args.port.map(|p| Value::Integer(p.into())),
        );
        set(&mut flags, "issuer", args.issuer.clone().map(Value::String));
        set(
            &mut flags,
            "metrics_bind",
            args.metrics_bind.clone().map(Value::String),
        );
        set(
            &mut flags,
            "secret_file",
            args.secret_file.as_deref().map(path_value),
        );
        set(
            &mut flags,
            "workers",
            args.workers.map(|w| Value::Integer(w as i64)),
        );
        set(
            &mut flags,
            "signing_key_file",
            args.signing_key.as_deref().map(path_value),
        );
    }
    let default_file = Path::new("config.toml");
    let file = cli
        .config
        .as_deref()
        .or(default_file.exists().then_some(default_file));
    if let Some(file) = file {
        let file = std::path::absolute(file).unwrap_or_else(|_| file.to_owned());
        log::info!("settings from {}", file.display());
    }
    let load = || Config::load(file, std::env::vars(), flags.clone());

    match cli.command {
        Command::Secret => {
            println!("{}", Secret::generate()?.expose());
            Ok(())
        }
        Command::Serve(args) => match args.ephemeral {
            false => serve(load()?, args.seed.as_deref()),
            true => ephemeral(load()?, args.port, args.seed.as_deref()),
        },
        Command::Keys {
            command: KeysCommand::Rewrap { old_key_file },
        } => block_on(rewrap(load()?, old_key_file)),
        Command::Restore { file } => {
            let config = load()?;
            announce_database(&config, &mut Sink::Stderr)?;
            sqlite_only(
                &config,
                "restore replaces a SQLite file; restore PostgreSQL with its own tools \
                 (pg_restore)",
            )?;
            let bytes = crate::operations::restore(&config, &file)?;
            println!(
                "restored {} ({bytes} bytes) in place of the database",
                file.display()
            );
            Ok(())
        }
        command => {
            let mut config = load()?;
            // A server that holds the file alone runs the command itself.
            if config.postgres_url().is_none() {
                if let Some(reply) = crate::control::forward(&config.database)? {
                    return reply.print().map_err(CliError::Forwarded);
                }
            }
            // A command never holds the file alone: a server may start meanwhile.
            config.sqlite.locking = crate::config::Locking::Shared;
            block_on(execute(&mut Target::local(config), command))
        }
    }
}

/// Runs a command, here or (`store` given) inside the server that holds the
/// database, writing to `target`.
async fn execute(target: &mut Target, command: Command) -> Result<(), CliError> {
    match command {
        Command::Keys { command } => keys(target, command).await,
        Command::ConvexConfig(args) => convex_config(target, args).await,
        Command::ConsoleLink(args) => console_link(target, args).await,
        Command::Audit(args) => audit(target, args).await,
        Command::Import { source } => import(target, source).await,
        Command::Backup { file } => backup(target, &file),
        Command::Check { json } => check(target, json).await,
        Command::Serve(_) | Command::Secret | Command::Restore { .. } => Err(
            CliError::Unsupported("not a command the server runs for others"),
        ),
    }
}

/// What a command works on and where its output goes.
struct Target {
    config: Config,
    /// The running server's store, when the server runs the command.
    store: Option<Arc<dyn crate::store::Store>>,
    out: Sink,
    err: Sink,
}

impl Target {
    fn local(config: Config) -> Target {
        Target {
            config,
            store: None,
            out: Sink::Stdout,
            err: Sink::Stderr,
        }
    }

    /// The server's store, or the database opened by this process.
    async fn store(&self, create: bool) -> Result<Arc<dyn crate::store::Store>, CliError> {
        match &self.store {
            Some(store) => Ok(store.clone()),
            None => Ok(open_store(&self.config, create).await?),
        }
    }
}

/// Standard output or error, or a buffer sent back over the control socket.
enum Sink {
    Stdout,
    Stderr,
    Buffer(Vec<u8>),
}

impl std::io::Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Stdout => std::io::stdout().write(bytes),
            Sink::Stderr => std::io::stderr().write(bytes),
            Sink::Buffer(buffer) => buffer.write(bytes),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Stdout => std::io::stdout().flush(),
            Sink::Stderr => std::io::stderr().flush(),
            Sink::Buffer(_) => Ok(()),
        }
    }
}

impl Sink {
    fn into_text(self) -> String {
        match self {
            Sink::Buffer(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Sink::Stdout | Sink::Stderr => String::new(),
        }
    }
}

/// Runs the command line `args` (as typed in `cwd`) inside this server, on
/// its `store`, with its `config`: for `crate::control`. Flags that select
/// a database or a config file are the server's; a command's own flags
/// apply. Blocks until the command ends.
pub(crate) fn run_for_client(
    args: Vec<String>,
    cwd: &Path,
    config: Config,
    store: Arc<dyn crate::store::Store>,
) -> crate::control::Reply {
    let mut target = Target {
        config,
        store: Some(store),
        out: Sink::Buffer(Vec::new()),
        err: Sink::Buffer(Vec::new()),
    };
    let code = match Cli::try_parse_from(args) {
        Err(e) => {
            let _ = write!(target.err, "{e}");
            2
        }
        Ok(cli) => {
            let _ = writeln!(
                target.err,
                "run by the server that holds the database (pid {})",
                std::process::id()
            );
            let mut command = cli.command;
            let absolute = |path: &mut PathBuf| {
                if path.is_relative() {
                    *path = cwd.join(&*path);
                }
            };
            match &mut command {
                Command::Backup { file } => absolute(file),
                Command::Keys {
                    command: KeysCommand::Import { pem },
                } => absolute(pem),
                Command::Import {
                    source: ImportSource::Convex { export, .. },
                } => absolute(export),
                Command::ConvexConfig(args) => {
                    if let Some(issuer) = &args.issuer {
                        target.config.issuer = Some(issuer.clone());
                    }
                }
                _ => {}
            }
            match block_on(execute(&mut target, command)) {
                Ok(()) => 0,
                Err(e) => {
                    let _ = writeln!(target.err, "authstore: {e}");
                    1
                }
            }
        }
    };
    crate::control::Reply {
        stdout: target.out.into_text(),
        stderr: target.err.into_text(),
        code,
    }
}

fn set(flags: &mut Table, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        flags.insert(key.to_owned(), value);
    }
}

fn path_value(path: &Path) -> Value {
    Value::String(path.to_string_lossy().into_owned())
}

fn block_on<F: std::future::Future<Output = Result<(), CliError>>>(
    work: F,
) -> Result<(), CliError> {
    actix_web::rt::System::new().block_on(work)
}

fn serve(config: Config, seed: Option<&Path>) -> Result<(), CliError> {
    run_server(config, seed, None)
}

/// Called once the server serves (the ephemeral server's ready line).
type OnReady = Box<dyn FnOnce(&Application) + Send>;

/// Runs the server until SIGINT or SIGTERM (or, with `ready`, until stdin
/// closes), after loading `seed`. `ready` is called once it serves.
fn run_server(config: Config, seed: Option<&Path>, ready: Option<OnReady>) -> Result<(), CliError> {
    let addr = format!("{}:{}", config.bind, config.port);
    let listener = TcpListener::bind(&addr).map_err(|source| CliError::Bind { addr, source })?;
    let seed = seed.map(Path::to_owned);
    block_on(async move {
        // Installed before the ready line is logged: a harness that stops the
        // server right after it started must not kill it mid-write.
        let stop = ShutdownSignals::install()?;
        let app = Application::build(config, listener).await?;
        if let Some(seed) = &seed {
            let loaded = crate::seed::load(app.store(), seed).await?;
            log::info!("seeded {loaded} items from {}", seed.display());
        }
        let handle = app.handle();
        let stdin_closed = match ready {
            None => None,
            Some(ready) => {
                ready(&app);
                Some(stdin_closes())
            }
        };
        actix_web::rt::spawn(async move {
            match stdin_closed {
                None => stop.received().await,
                Some(closed) => tokio::select! {
                    _ = stop.received() => {}
                    _ = closed => log::info!("stdin closed"),
                },
            }
            log::info!("shutting down: finishing requests in flight");
            handle.stop(true).await;
        });
        app.run_until_stopped().await?;
        log::info!("stopped");
        Ok(())
    })
}

/// Resolves when standard input reaches its end: the parent that started an
/// ephemeral server has exited or let go of it.
fn stdin_closes() -> tokio::sync::oneshot::Receiver<()> {
    let (closed, receiver) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buffer = [0u8; 256];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buffer), Ok(n) if n > 0) {}
        let _ = closed.send(());
    });
    receiver
}

/// `serve --ephemeral`: a server of its own in a new temp directory, gone at exit.
fn ephemeral(mut config: Config, port: Option<u16>, seed: Option<&Path>) -> Result<(), CliError> {
    let dir = EphemeralDir::create()?;
    config.database = dir.0.join("authstore.db");
    config.port = port.unwrap_or(0);
    if config.secret.is_none() && config.secret_file.is_none() {
        config.secret = Some(Secret::generate()?);
    }
    let secret = match (&config.secret, &config.secret_file) {
        (Some(secret), _) => secret.expose().to_owned(),
        (None, Some(path)) => crate::secret::read_file(path)?.expose().to_owned(),
        (None, None) => String::new(),
    };
    let ready = Box::new(move |app: &Application| {
        let settings = app.issuer().settings();
        let line = serde_json::json!({
            "url": format!("http://127.0.0.1:{}", app.port()),
            "secret": secret,
            "issuer": settings.issuer,
            "jwks_uri": settings.jwks_uri(),
            "pid": std::process::id(),
        });
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    });
    run_server(config, seed, Some(ready))
    // `dir` is removed here, after the server let go of the database.
}

/// A new private temp directory, removed (with everything in it) when dropped.
struct EphemeralDir(PathBuf);

impl EphemeralDir {
    fn create() -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let random: [u8; 8] = {
            let mut bytes = [0u8; 8];
            openssl::rand::rand_bytes(&mut bytes).map_err(std::io::Error::other)?;
            bytes
        };
        let name = format!(
            "authstore-ephemeral-{}-{}",
            std::process::id(),
            random
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let dir = std::env::temp_dir().join(name);
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(EphemeralDir(dir))
    }
}

impl Drop for EphemeralDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            log::warn!("cannot remove {}: {e}", self.0.display());
        }
    }
}

/// SIGINT and SIGTERM, listened for from the moment they are installed.
struct ShutdownSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(ShutdownSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn received(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Names the database a command works on, as an absolute path or a URL
/// without its password (on stderr, so that stdout stays the command's answer).
fn announce_database(config: &Config, err: &mut Sink) -> std::io::Result<()> {
    use std::io::Write;
    writeln!(err, "database {}", config.database_for_log())
}

/// Refuses a command that works on SQLite files only, naming what to use instead.
fn sqlite_only(config: &Config, instead: &'static str) -> Result<(), CliError> {
    match config.postgres_url() {
        Some(_) => Err(CliError::Unsupported(instead)),
        None => Ok(()),
    }
}

async fn issuer(target: &mut Target, start: bool) -> Result<Issuer, CliError> {
    announce_database(&target.config, &mut target.err)?;
    let store: Arc<dyn KeyStore> = target.store(false).await?;
    let config = &target.config;
    let settings = IssuerSettings::from_config(config, issuer_url(config, config.port));
    let clock = Arc::new(SystemClock);
    Ok(if start {
        Issuer::start(settings, store, clock).await?
    } else {
        Issuer::open(settings, store, clock).await?
    })
}

async fn keys(target: &mut Target, command: KeysCommand) -> Result<(), CliError> {
    match command {
        KeysCommand::List => {
            let issuer = issuer(target, false).await?;
            writeln!(
                target.out,
                "{:<44}  {:<8}  {:<5}  {:<24}  {:<24}  {:<24}  LEAVES JWKS",
                "KID", "STATE", "ALG", "CREATED", "SIGNS FROM", "RETIRES AT"
            )?;
            for (key, state) in issuer.describe_keys().await? {
                let or_dash = |t: Option<crate::timestamp::Timestamp>| {
                    t.map_or("-".into(), |t| t.to_string())
                };
                writeln!(
                    target.out,
                    "{:<44}  {:<8}  {:<5}  {:<24}  {:<24}  {:<24}  {}",
                    key.kid,
                    state.name(),
                    key.algorithm,
                    key.created_at,
                    key.signs_from,
                    or_dash(key.retires_at),
                    or_dash(key.unpublish_at),
                )?;
            }
        }
        KeysCommand::Rotate { now } => {
            let issuer = issuer(target, true).await?;
            let how = if now {
                Rotation::Immediate
            } else {
                Rotation::Scheduled
            };
            match issuer.rotate(how).await? {
                Some(kid) if now => writeln!(
                    target.out,
                    "key {kid} signs now; the previous key left the JWKS"
                )?,
                Some(kid) => writeln!(
                    target.out,
                    "key {kid} is published now and signs in {} s",
                    target.config.key_lead_time_secs
                )?,
                None => writeln!(
                    target.out,
                    "a new key is already waiting to sign; nothing changed"
                )?,
            }
            writeln!(
                target.out,
                "a running server picks this up within {} s",
                crate::config::KEY_RELOAD_SECS
            )?;
        }
        KeysCommand::Import { pem } => {
            let text = std::fs::read(&pem).map_err(|source| CliError::Read {
                path: pem.clone(),
                source,
            })?;
            let material = KeyMaterial::from_pem(&text).map_err(|source| CliError::Key {
                path: pem.clone(),
                source,
            })?;
            let issuer = issuer(target, false).await?;
            if let Some(kid) = issuer.import(material).await? {
                writeln!(target.out, "key {kid} imported; it signs now")?;
            }
        }
        KeysCommand::Rewrap { old_key_file } => rewrap(target.config.clone(), old_key_file).await?,
    }
    Ok(())
}

async fn rewrap(config: Config, old_key_file: PathBuf) -> Result<(), CliError> {
    let config = &config;
    let old_key_file = old_key_file.as_path();
    announce_database(config, &mut Sink::Stderr)?;
    sqlite_only(
        config,
        "keys rewrap works on SQLite databases only so far: on PostgreSQL, no lock yet proves \
         that every node has stopped, and a node still holding the old key would seal new \
         tokens under it",
    )?;
    let old =
        Kek::derive(&crate::secret::read_file(old_key_file).map_err(crate::kek::KekError::from)?)
            .map_err(crate::kek::KekError::from)?;
    // A running server keeps the old KEK in memory: none may run meanwhile.
    let _lease = crate::files::Lease::exclusive(&config.database)?;
    let sealed_under = SqliteStore::sealed_under(&config.database)?;
    if let Some(id) = sealed_under.as_deref().filter(|id| *id != old.id()) {
        return Err(CliError::Rewrap(format!(
            "{} holds key-encryption key {}, but the database is sealed under {id}",
            old_key_file.display(),
            old.id()
        )));
    }
    let (new, origin) = crate::kek::resolve(config, None)?;
    if new.id() == old.id() {
        return Err(CliError::Rewrap(format!(
            "the configured key-encryption key ({origin}) is the old one; point \
             key_encryption_key_file or AUTHSTORE_KEY_ENCRYPTION_KEY at the new key"
        )));
    }
    let store = open_sqlite(config, false, Arc::new(old))?;
    let count = store
        .rewrap(Arc::new(new))
        .await
        .map_err(|e| CliError::Rewrap(e.log_text()))?;
    println!("re-sealed {count} secrets under key-encryption key from {origin}");
    println!("start the servers with that key; the old key no longer opens this database");
    Ok(())
}

fn backup(target: &mut Target, file: &Path) -> Result<(), CliError> {
    let config = &target.config;
    announce_database(config, &mut target.err)?;
    sqlite_only(
        config,
        "backup copies SQLite files; back up PostgreSQL with its own tools (pg_dump, or \
         pg_basebackup with WAL archiving); the copy opens only with the key_encryption_key",
    )?;
    crate::require_database(config)?;
    let done = crate::operations::backup(&config.database, file, config.sqlite.locking)?;
    writeln!(
        target.out,
        "backed up to {} ({} bytes, {} ms, integrity ok)",
        file.display(),
        done.bytes,
        done.took.as_millis()
    )?;
    writeln!(target.out,
        "it opens only with the key-encryption key of this database ({}); keep that apart from the backup",
        config
            .key_encryption_key_file
            .clone()
            .unwrap_or_else(|| config.default_kek_file())
            .display()
    )?;
    Ok(())
}

async fn check(target: &mut Target, json: bool) -> Result<(), CliError> {
    let config = target.config.clone();
    announce_database(&config, &mut target.err)?;
    sqlite_only(
        &config,
        "check reads SQLite files; on PostgreSQL use its own tools (amcheck, pg_checksums), \
         and /readyz for whether a node can serve",
    )?;
    crate::require_database(&config)?;
    let findings = crate::operations::check(&config, target.store.clone()).await;
    let healthy = findings.iter().all(|f| f.ok);
    if json {
        writeln!(
            target.out,
            "{}",
            serde_json::json!({ "ok": healthy, "checks": findings })
        )?;
    } else {
        for finding in &findings {
            let mark = if finding.ok { "ok  " } else { "FAIL" };
            writeln!(
                target.out,
                "{mark}  {:<13} {}",
                finding.check, finding.detail
            )?;
        }
    }
    if healthy {
        Ok(())
    } else {
        Err(CliError::Check)
    }
}

async fn import(target: &mut Target, source: ImportSource) -> Result<(), CliError> {
    let ImportSource::Convex {
        export,
        allow_existing_users,
    } = source;
    announce_database(&target.config, &mut target.err)?;
    let tables = crate::convex_import::read_export(&export)?;
    let store = target.store(true).await?;
    let report =
        crate::convex_import::import(store.as_ref(), &tables, allow_existing_users).await?;
    let mut rows = 0;
    for (table, counted) in &report.tables {
        rows += counted.imported + counted.present;
        writeln!(
            target.out,
            "{table:<20} {:>8} imported, {:>8} already there",
            counted.imported, counted.present
        )?;
    }
    if !report.ignored.is_empty() {
        writeln!(
            target.out,
            "not auth tables, left alone: {}",
            report.ignored.join(", ")
        )?;
    }
    let secs = report.took.as_secs_f64().max(0.001);
    writeln!(
        target.out,
        "{rows} rows in {:.1} s ({:.0} rows/s)",
        secs,
        rows as f64 / secs
    )?;
    Ok(())
}

async fn audit(target: &mut Target, args: AuditArgs) -> Result<(), CliError> {
    use crate::store::events::{EventFilter, EventType};
    let invalid = |m: String| CliError::from(crate::error::Error::BadRequest(m));
    let kind = match &args.kind {
        None => None,
        Some(name) => Some(EventType::parse(name).ok_or_else(|| {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
            invalid(format!("--type {name:?} is none of {}", known.join(", ")))
        })?),
    };
    let since = match &args.since {
        None => None,
        Some(text) => Some(crate::timestamp::Timestamp::parse_iso(text).ok_or_else(|| {
            invalid(format!(
                "--since {text:?} is not an ISO 8601 instant (2026-11-28T00:00:00Z)"
            ))
        })?),
    };
    announce_database(&target.config, &mut target.err)?;
    let store = target.store(false).await?;
    let filter = EventFilter {
        kind,
        user_id: args.user,
        since,
        limit: args.limit,
    };
    let events = store
        .events(&filter)
        .await
        .map_err(crate::error::Error::from)?;
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    if !args.json {
        writeln!(
            target.out,
            "{:<24}  {:<21}  {:<36}  {:<22}  {:<16}  DETAIL",
            "AT", "TYPE", "USER", "SID", "ACTOR"
        )?;
    }
    for event in &events {
        if args.json {
            writeln!(
                target.out,
                "{}",
                serde_json::to_string(event).map_err(crate::error::Error::internal)?
            )?;
        } else {
            writeln!(
                target.out,
                "{:<24}  {:<21}  {:<36}  {:<22}  {:<16}  {}",
                event.at.to_iso(),
                event.kind,
                or_dash(&event.user_id),
                or_dash(&event.sid),
                or_dash(&event.actor),
                or_dash(&event.detail)
            )?;
        }
    }
    Ok(())
}

async fn console_link(target: &mut Target, args: ConsoleLinkArgs) -> Result<(), CliError> {
    announce_database(&target.config, &mut target.err)?;
    let store = target.store(false).await?;
    let config = &target.config;
    let token = crate::http::console::new_token()?;
    let now = crate::timestamp::Timestamp::now();
    let lifetime = crate::http::console::LINK_LIFETIME_SECS;
    store
        .create_console_link(
            crate::http::console::link_digest(&token),
            now,
            now.plus_secs(lifetime),
        )
        .await
        .map_err(crate::error::Error::from)?;
    let base = args.url.unwrap_or_else(|| issuer_url(config, config.port));
    writeln!(
        target.err,
        "console sign-in link (works once, until {}):",
        now.plus_secs(lifetime).to_iso()
    )?;
    // The token rides in the fragment: browsers never send it in a request line.
    writeln!(
        target.out,
        "{}/console/open#{token}",
        base.trim_end_matches('/')
    )?;
    Ok(())
}

async fn convex_config(target: &mut Target, args: ConvexConfigArgs) -> Result<(), CliError> {
    let issuer = issuer(target, true).await?;
    let settings = issuer.settings();
    let reachable = publicly_reachable(&settings.issuer);
    let provider = args.provider.unwrap_or(if reachable {
        ConvexProvider::Oidc
    } else {
        ConvexProvider::CustomJwt
    });
    if provider == ConvexProvider::Oidc && !reachable {
        writeln!(
            target.err,
            "warning: {} is not reachable from Convex's cloud (loopback or private); Convex \
             will fail to fetch its discovery document. Use --provider custom-jwt, or set \
             the issuer to a public URL (--issuer).",
            settings.issuer
        )?;
    }
    let algorithm = issuer.signing_algorithm().unwrap_or(settings.algorithm);
    if provider == ConvexProvider::CustomJwt {
        writeln!(target.err,
            "note: the keys are inline; print this again after a key rotation (authstore keys rotate)"
        )?;
        for other in issuer.published_algorithms() {
            if other != algorithm {
                writeln!(
                    target.err,
                    "note: an {other} key is published and will sign after the scheduled rotation \
                     (authstore keys list says when); this prints {algorithm}, so print it again \
                     once the {other} key signs"
                )?;
            }
        }
    }
    write!(
        target.out,
        "{}",
        convex_auth_config(
            provider,
            &settings.issuer,
            &settings.audience,
            algorithm,
            &issuer.jwks()
        )
    )?;
    Ok(())
}

/// `convex/auth.config.ts` for one provider: a whole file.
fn convex_auth_config(
    provider: ConvexProvider,
    issuer: &str,
    audience: &str,
    algorithm: crate::issuer::keys::Algorithm,
    jwks: &str,
) -> String {
    let literal = |text: &str| serde_json::Value::String(text.to_owned()).to_string();
    let provider = match provider {
        ConvexProvider::Oidc => format!(
            "    {{\n      // Convex fetches {issuer}/.well-known/openid-configuration.\n      \
             domain: {},\n      applicationID: {},\n    }},\n",
            literal(issuer),
            literal(audience),
        ),
        ConvexProvider::CustomJwt => format!(
            "    {{\n      // The published keys, inline: run `authstore convex-config` again after a rotation.\n      \
             type: \"customJwt\",\n      issuer: {},\n      applicationID: {},\n      \
             algorithm: {},\n      jwks: {},\n    }},\n",
            literal(issuer),
            literal(audience),
            literal(algorithm.name()),
            literal(&format!(
                "data:text/plain;charset=utf-8;base64,{}",
                STANDARD.encode(jwks)
            )),
        ),
    };
    format!(
        "// convex/auth.config.ts: written by `authstore convex-config`.\n\
         import type {{ AuthConfig }} from \"convex/server\";\n\n\
         export default {{\n  providers: [\n{provider}  ],\n}} satisfies AuthConfig;\n"
    )
}

/// Whether Convex's cloud could reach `issuer`: not loopback, not a private
/// or link-local address, not a name that only resolves on a local network.
fn publicly_reachable(issuer: &str) -> bool {
    let rest = issuer
        .strip_prefix("https://")
        .or_else(|| issuer.strip_prefix("http://"))
        .unwrap_or(issuer);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return match ip {
            std::net::IpAddr::V4(v4) => {
                !(v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified())
            }
            std::net::IpAddr::V6(v6) => {
                let first = v6.segments().first().copied().unwrap_or(0);
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || (first & 0xfe00) == 0xfc00 // unique local
                    || (first & 0xffc0) == 0xfe80) // link local
            }
        };
    }
    let host = host.to_ascii_lowercase();
    !(host == "localhost"
        || host.ends_with(".localhost")
        || host.ends_with(".local")
        || host.ends_with(".internal")
        || host.ends_with(".lan")
        || !host.contains('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reachable_issuers_are_public_names_and_addresses() {
        for public in [
            "https://auth.example.com",
            "https://8.8.8.8",
            "https://[2001:db8::1]:8443/x",
        ] {
            assert!(publicly_reachable(public), "{public}");
        }
        for private in [
            "http://localhost:7878",
            "http://127.0.0.1:7878",
            "http://[::1]:7878",
            "http://10.0.0.5",
            "http://192.168.1.10:7878",
            "http://myhost",
            "http://auth.internal",
            "http://printer.local",
            "http://[fd00::1]",
        ] {
            assert!(!publicly_reachable(private), "{private}");
        }
    }

    #[test]
    fn each_provider_is_one_whole_file() {
        for provider in [ConvexProvider::Oidc, ConvexProvider::CustomJwt] {
            let file = convex_auth_config(
                provider,
                "https://a.example.com",
                "convex",
                crate::issuer::keys::Algorithm::RS256,
                "{\"keys\":[]}",
            );
            assert_eq!(file.matches("export default").count(), 1, "{file}");
            assert_eq!(file.matches("import type").count(), 1, "{file}");
        }
    }
}
