//! The operator's tools that work on the database file itself: `backup` (an
//! online, verified copy) and `check` (is this database sound?).

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Locking};
use crate::files::with_suffix;
use crate::issuer::keys::{self, KeyState};
use crate::store::sqlite::schema::VERSION;
use crate::store::Store;
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "{0} already exists (or is a symlink); choose a new file (a backup never overwrites, \
         and never writes through a link)"
    )]
    Exists(PathBuf),
    #[error("cannot write the backup: {0}")]
    Write(#[from] std::io::Error),
    #[error("copying {from} to {to} failed: {source}")]
    Copy {
        from: PathBuf,
        to: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the copy for {path} failed its integrity check ({found}); it was not kept")]
    Corrupt { path: PathBuf, found: String },
}

/// What a finished backup reports.
pub struct Backup {
    pub bytes: u64,
    pub took: Duration,
}

/// Copies the database at `from` to the new file `to` while servers keep
/// running (`VACUUM INTO` reads one consistent snapshot and blocks no
/// writer), mode 0600, and checks the copy's integrity before reporting.
///
/// `locking`: how this process holds `from` (`Exclusive` inside the server
/// that holds it alone).
pub fn backup(from: &Path, to: &Path, locking: Locking) -> Result<Backup, BackupError> {
    let started = Instant::now();
    let copy_error = |source| BackupError::Copy {
        from: from.to_owned(),
        to: to.to_owned(),
        source,
    };
    // The copy is made under a private name and linked to `to` only once
    // checked: an existing path or a symlink planted at `to` is refused, and
    // nothing but the staged copy is ever removed.
    let published = crate::files::publish_new(to, |staged| {
        let conn = crate::store::sqlite::open_for_reading(from, locking).map_err(copy_error)?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(copy_error)?;
        conn.execute("VACUUM INTO ?1", [staged.to_string_lossy()])
            .map_err(copy_error)?;
        drop(conn);
        let copy = Connection::open_with_flags(staged, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(copy_error)?;
        let found: String = copy
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .map_err(copy_error)?;
        if found != "ok" {
            return Err(BackupError::Corrupt {
                path: to.to_owned(),
                found,
            });
        }
        Ok(())
    });
    match published {
        Err(BackupError::Write(e)) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(BackupError::Exists(to.to_owned()))
        }
        other => other?,
    }
    let bytes = std::fs::symlink_metadata(to).map(|m| m.len()).unwrap_or(0);
    Ok(Backup {
        bytes,
        took: started.elapsed(),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{path} is not a usable authstore database: {reason}; nothing was changed")]
    Unusable { path: PathBuf, reason: String },
    #[error(transparent)]
    Kek(#[from] crate::kek::KekError),
    #[error(transparent)]
    Database(#[from] crate::store::sqlite::OpenError),
    #[error(transparent)]
    Lease(#[from] crate::files::LeaseError),
    #[error("cannot put {from} in place of {to}: {source}")]
    Io {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
}

/// Puts the backup `from` in place of the database, when no server holds
/// it: checks the backup (integrity, schema, that the configured KEK opens
/// it), copies it beside the database and renames it into place, and drops
/// the old database's WAL so nothing of it is replayed over the backup.
pub fn restore(config: &Config, from: &Path) -> Result<u64, RestoreError> {
    let unusable = |reason: String| RestoreError::Unusable {
        path: from.to_owned(),
        reason,
    };
    let conn = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| unusable(e.to_string()))?;
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .map_err(|e| unusable(e.to_string()))?;
    if integrity != "ok" {
        return Err(unusable(format!("integrity check: {integrity}")));
    }
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| unusable(e.to_string()))?;
    if !(1..=VERSION).contains(&version) {
        return Err(unusable(format!("schema version {version}")));
    }
    drop(conn);
    let sealed_under = crate::store::sqlite::SqliteStore::sealed_under(from)?;
    if let Some(id) = &sealed_under {
        // Refuses a backup that the configured KEK does not open.
        crate::kek::resolve(&config.kek_source(), Some(id))?;
    }
    let database = &config.database;
    let _lease = crate::files::Lease::exclusive(database)?;
    let io = |source| RestoreError::Io {
        from: from.to_owned(),
        to: database.clone(),
        source,
    };
    let staged = with_suffix(database, ".restoring");
    // Left by a restore that was stopped (or a link planted there): removed,
    // not written through; the database is 0600 whatever the backup's mode.
    let _ = std::fs::remove_file(&staged);
    let bytes = crate::files::copy_private(from, &staged).map_err(io)?;
    if let Err(e) = refuse_unsealed_key_rows(config, &staged) {
        for leftover in [
            staged.clone(),
            with_suffix(&staged, "-wal"),
            with_suffix(&staged, "-shm"),
        ] {
            let _ = std::fs::remove_file(leftover);
        }
        return Err(match e {
            RestoreError::Unusable { reason, .. } => unusable(reason),
            other => other,
        });
    }
    for stale in [with_suffix(database, "-wal"), with_suffix(database, "-shm")] {
        match std::fs::remove_file(&stale) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
    }
    std::fs::rename(&staged, database).map_err(io)?;
    Ok(bytes)
}

/// Opens the staged copy of a backup as a store (migrating it, as the next
/// start would) and refuses it when a key row fails its seal: a backup is
/// a file anyone who held it could have changed.
fn refuse_unsealed_key_rows(config: &Config, staged: &Path) -> Result<(), RestoreError> {
    let mut staged_config = config.clone();
    staged_config.database = staged.to_owned();
    staged_config.sqlite.locking = Locking::Shared;
    let unusable = |reason: String| RestoreError::Unusable {
        path: staged.to_owned(),
        reason,
    };
    let sealed_under = crate::store::sqlite::SqliteStore::sealed_under(staged)?;
    let (kek, _) = crate::kek::resolve(&config.kek_source(), sealed_under.as_deref())?;
    let store = crate::open_sqlite(&staged_config, false, Arc::new(kek))
        .map_err(|e| unusable(e.to_string()))?;
    let set = actix_web::rt::System::new()
        .block_on(crate::store::KeyStore::signing_keys(&store))
        .map_err(|e| unusable(e.log_text()))?;
    drop(store);
    // Whatever opening it wrote goes into the file itself: only the file is
    // renamed into place.
    Connection::open(staged)
        .and_then(|conn| conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())))
        .map_err(|e| unusable(e.to_string()))?;
    match set.refused.is_empty() {
        true => Ok(()),
        false => Err(unusable(format!(
            "signing key rows fail their seal (written without the key-encryption key): {}",
            set.refused.join(", ")
        ))),
    }
}

/// One finding of `authstore check`.
#[derive(Serialize, Debug)]
pub struct Finding {
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// Checks the database at `config.database`: SQLite's integrity and foreign
/// keys, the schema version, the key ring (exactly one current key, a
/// non-empty JWKS, every private key opening under the KEK), file modes.
///
/// `store` is the running server's, when the server runs the check.
pub async fn check(config: &Config, store: Option<Arc<dyn Store>>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut add = |check, ok, detail: String| findings.push(Finding { check, ok, detail });
    let path = &config.database;
    let mut current_schema = false;

    match crate::store::sqlite::open_for_reading(path, config.sqlite.locking) {
        Err(e) => add("open", false, e.to_string()),
        Ok(conn) => {
            let _ = conn.busy_timeout(Duration::from_secs(30));
            let integrity: rusqlite::Result<String> =
                conn.query_row("PRAGMA integrity_check", [], |row| row.get(0));
            match integrity {
                Ok(text) => add("integrity", text == "ok", text),
                Err(e) => add("integrity", false, e.to_string()),
            }
            let violations: rusqlite::Result<i64> =
                conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                    r.get(0)
                });
            match violations {
                Ok(0) => add("foreign keys", true, "no dangling references".into()),
                Ok(n) => add(
                    "foreign keys",
                    false,
                    format!("{n} rows reference missing rows"),
                ),
                Err(e) => add("foreign keys", false, e.to_string()),
            }
            match conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)) {
                Ok(v) if v == VERSION => {
                    current_schema = true;
                    add("schema", true, format!("version {v}"))
                }
                Ok(v) => add(
                    "schema",
                    false,
                    format!("version {v}; this build writes {VERSION} (a start migrates it)"),
                ),
                Err(e) => add("schema", false, e.to_string()),
            }
        }
    }

    // Opening the store would migrate an older database: a check changes nothing.
    let store = match (current_schema, store) {
        (true, Some(store)) => Ok(store),
        (true, None) => crate::open_store(config, false)
            .await
            .map_err(|e| e.to_string()),
        (false, _) => Err("not checked: the schema is not this build's".into()),
    };
    match store {
        Err(e) => add("key ring", false, e),
        Ok(store) => match store.signing_keys().await {
            Err(e) => add("key ring", false, e.log_text()),
            Ok(set) => {
                let now = SystemClock.now();
                let current = set
                    .keys
                    .iter()
                    .filter(|k| KeyState::of(k, now) == KeyState::Current)
                    .count();
                let published = set
                    .keys
                    .iter()
                    .filter(|k| KeyState::of(k, now).is_published())
                    .count();
                let signer = keys::current(&set.keys, now);
                let ok = current == 1
                    && published > 0
                    && signer.is_some_and(|k| k.private_key_der.is_some())
                    && set.refused.is_empty();
                let refused = match set.refused.is_empty() {
                    true => String::new(),
                    false => format!(
                        "; rows that fail their seal (written without the key-encryption key, \
                         never published or used; delete them): {}",
                        set.refused.join(", ")
                    ),
                };
                add(
                    "key ring",
                    ok,
                    format!(
                        "{current} current key (1 expected), {published} published, every private key opens under the KEK{refused}"
                    ),
                );
            }
        },
    }

    let mut modes = Vec::new();
    let mut loose = Vec::new();
    for file in [
        path.clone(),
        with_suffix(path, "-wal"),
        with_suffix(path, "-shm"),
        config.default_secret_file(),
        config.default_kek_file(),
    ] {
        if let Ok(meta) = std::fs::metadata(&file) {
            let mode = meta.permissions().mode() & 0o777;
            modes.push(format!("{} {mode:o}", file.display()));
            if mode & 0o077 != 0 {
                loose.push(format!("chmod 600 {}", file.display()));
            }
        }
    }
    let detail = if loose.is_empty() {
        modes.join(", ")
    } else {
        format!("readable by others; fix with: {}", loose.join("; "))
    };
    add("file modes", loose.is_empty(), detail);
    findings
}
