//! The commands that work on a database (`keys`, `convex-config`,
//! `console-link`, `audit`, `import`, `backup`, `check`), written once for
//! the two places they run: the command line's own process, which opens the
//! database, or the server that holds its SQLite file alone, which runs them
//! on its own store for a command line that reached it through
//! `crate::control`.

use super::{
    block_on, AuditArgs, Cli, CliError, Command, ConsoleLinkArgs, ConvexConfigArgs, ConvexProvider,
    ImportSource, KeysCommand,
};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::issuer::keys::{KeyMaterial, Rotation};
use crate::issuer::Issuer;
use crate::kek::Kek;
use crate::store::sqlite::SqliteStore;
use crate::store::KeyStore;
use crate::{issuer_url, open_sqlite, open_store};
use base64::{engine::general_purpose::STANDARD, Engine};
use clap::Parser;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Runs a command, here or (`store` given) inside the server that holds the
/// database, writing to `target`.
pub(super) async fn execute(target: &mut Target, command: Command) -> Result<(), CliError> {
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
pub(super) struct Target {
    config: Config,
    /// The running server's store, when the server runs the command.
    store: Option<Arc<dyn crate::store::Store>>,
    out: Sink,
    err: Sink,
}

impl Target {
    pub(super) fn local(config: Config) -> Target {
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
pub(super) enum Sink {
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

/// Names the database a command works on, as an absolute path or a URL
/// without its password (on stderr, so that stdout stays the command's answer).
pub(super) fn announce_database(config: &Config, err: &mut Sink) -> std::io::Result<()> {
    use std::io::Write;
    writeln!(err, "database {}", config.database_for_log())
}

/// Refuses a command that works on SQLite files only, naming what to use instead.
pub(super) fn sqlite_only(config: &Config, instead: &'static str) -> Result<(), CliError> {
    match config.postgres_url() {
        Some(_) => Err(CliError::Unsupported(instead)),
        None => Ok(()),
    }
}

async fn issuer(target: &mut Target, start: bool) -> Result<Issuer, CliError> {
    announce_database(&target.config, &mut target.err)?;
    let store: Arc<dyn KeyStore> = target.store(false).await?;
    let config = &target.config;
    let settings = config.issuer_settings(issuer_url(config, config.port));
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

pub(super) async fn rewrap(config: Config, old_key_file: PathBuf) -> Result<(), CliError> {
    let config = &config;
    let old_key_file = old_key_file.as_path();
    announce_database(config, &mut Sink::Stderr)?;
    sqlite_only(
        config,
        "keys rewrap works on SQLite databases only so far: on PostgreSQL, no lock yet proves \
         that every node has stopped, and a node still holding the old key would seal new \
         tokens under it",
    )?;
    let old_input = crate::secret::read_file(old_key_file).map_err(crate::kek::KekError::from)?;
    // A running server keeps the old KEK in memory: none may run meanwhile.
    let _lease = crate::files::Lease::exclusive(&config.database)?;
    let sealed_under = SqliteStore::sealed_under(&config.database)?;
    let old = match sealed_under.as_deref() {
        Some(id) => Kek::for_record(&old_input, id),
        None => Kek::new(&old_input),
    }
    .map_err(crate::kek::KekError::from)?;
    if let Some(id) = sealed_under.as_deref().filter(|id| *id != old.id()) {
        return Err(CliError::Rewrap(format!(
            "{} holds key-encryption key {}, but the database is sealed under {id}",
            old_key_file.display(),
            old.id()
        )));
    }
    let (new, origin) = crate::kek::resolve(&config.kek_source(), None)?;
    crate::kek::require_strong(&new, &origin)?;
    if old
        .matching(new.id())
        .map_err(crate::kek::KekError::from)?
        .is_some()
    {
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
    let export = crate::convex_import::read_export(&export, target.config.max_body_bytes)?;
    let store = target.store(true).await?;
    let report = crate::convex_import::import(store.as_ref(), export, allow_existing_users).await?;
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
    if args.revoke_all {
        let ended = store
            .delete_all_console_sessions()
            .await
            .map_err(crate::error::Error::from)?;
        log::info!(target: "authstore::audit", "console action=revoke-all-console-sessions ended={ended}");
        writeln!(target.out, "ended {ended} console sessions")?;
        return Ok(());
    }
    let config = &target.config;
    let token = crate::http::console::new_token()?;
    let now = SystemClock.now();
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
