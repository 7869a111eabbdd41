//! The command line: its arguments, `serve` and `secret`; the commands that
//! work on a database are in `commands`.

mod commands;

pub(crate) use commands::run_for_client;

use crate::config::{Config, ConfigError};
use crate::secret::Secret;
use crate::Application;
use clap::{Args, Parser, Subcommand};
use commands::{announce_database, execute, rewrap, sqlite_only, Sink, Target};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
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
    /// End every console session now (every signed-in browser must open a
    /// new link); prints no link
    #[arg(long, conflicts_with = "url")]
    revoke_all: bool,
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
    let load = || {
        let config = Config::load(file, std::env::vars(), flags.clone())?;
        crate::logging::use_format(config.log_format);
        Ok::<_, crate::config::ConfigError>(config)
    };

    match cli.command {
        Command::Secret => {
            println!("{}", Secret::generate()?.expose());
            Ok(())
        }
        Command::Serve(args) => match args.ephemeral {
            false => serve(load()?, args.seed.as_deref()),
            true => {
                // Its own flags only: never ./config.toml (production webhooks,
                // bind, issuer) nor AUTHSTORE_* of the calling environment.
                if cli.config.is_some() {
                    return Err(CliError::Unsupported(
                        "--ephemeral takes no --config: an ephemeral server reads only its own \
                         flags",
                    ));
                }
                if args.bind.as_deref().is_some_and(|bind| bind != "127.0.0.1") {
                    return Err(CliError::Unsupported("--ephemeral binds to 127.0.0.1 only"));
                }
                let config = Config::load(None, std::iter::empty(), flags.clone())?;
                ephemeral(config, args.port, args.seed.as_deref())
            }
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
            // A command never holds the file alone.
            config.sqlite.locking = crate::config::Locking::Shared;
            if config.postgres_url().is_some() || !config.database.exists() {
                return block_on(execute(&mut Target::local(config), command));
            }
            let deadline = std::time::Instant::now() + COMMAND_WAIT;
            loop {
                // A server that holds the file alone runs the command itself.
                if let Some(reply) = crate::control::forward(&config.database)? {
                    return reply.print().map_err(CliError::Forwarded);
                }
                // Else this process works on the file, and a server that
                // would hold it alone waits until the command is done.
                if let Some(_lease) = crate::files::Lease::command(&config.database)? {
                    return block_on(execute(&mut Target::local(config), command));
                }
                // A server is starting (its socket comes next), or a
                // `restore` runs.
                if std::time::Instant::now() >= deadline {
                    return Err(crate::files::LeaseError::Busy(config.database).into());
                }
                // The command line's own thread, before any runtime.
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}

/// How long a command waits for a server that is starting to answer on its
/// control socket (or for a `restore` to end).
const COMMAND_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

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
    config.bind = "127.0.0.1".into();
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
