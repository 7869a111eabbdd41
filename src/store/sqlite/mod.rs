//! The SQLite backend: one writer thread, a pool of read-only connections.
//!
//! Reads are short indexed lookups in WAL mode, which never wait for a
//! writer, so they run right on the async worker (moving them to
//! `web::block` cost 38% of throughput, measured here). Writes may wait on
//! the database lock, so they go through [`writer::Writer`].

// First: its column-list macros are in scope only in the modules after it.
#[macro_use]
mod rows;
mod adapter;
mod checkpoint;
mod console;
mod keys;
mod maintenance;
mod outbox;
pub mod schema;
mod sessions;
pub mod settings;
mod writer;

use self::checkpoint::Checkpointer;
use self::rows::{insert_error, millis};
use self::settings::Durability;
use self::writer::Writer;
use super::import::{self, ImportCounts, ImportRows, ImportStore, RowRefused};
use super::sealing::{self, TokenField};
use super::{
    AdapterStore, Duplicate, Entity, KeyChanges, KeyRecord, KeySet, KeyStore, Maintenance, Purged,
    Saved, StorageBytes,
};
use crate::clock::Clock;
use crate::kek::Kek;
use crate::model::{
    Account, AccountKey, Authenticator, Session, SessionAndUser, SessionOrigin, SessionPatch, User,
    UserPatch, VerificationToken,
};
use crate::store::events::{self, Event, EventFilter, EventSignal, EventType, NewEvent, Occasion};
use crate::store::sessions::SEEN_EVERY;
use crate::store::{token_digest, Result, StoreError as Error};
use crate::timestamp::Timestamp;
use async_trait::async_trait;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `PRAGMA synchronous` for a durability setting.
fn synchronous(durability: Durability) -> &'static str {
    match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    }
}

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub path: PathBuf,
    /// Create the database when it does not exist (`serve`); the other
    /// commands work only on an existing one.
    pub create: bool,
    pub durability: Durability,
    /// Size of the read-only connection pool.
    pub readers: u32,
    /// Page cache of each read-only connection, in MiB.
    pub read_cache_mib: u32,
    /// Bytes of the file each read-only connection maps into memory (0: none).
    pub read_mmap_mib: u32,
    /// How large the WAL may grow under a write flood before a checkpoint
    /// that holds writers back bounds it, in MiB.
    pub wal_budget_mib: u32,
    /// Whether this process holds the file alone, or shares it.
    pub locking: Locking,
    /// Whether this process checkpoints the WAL, or leaves it to Litestream.
    pub checkpoints: Checkpoints,
    /// When events happen (and migrations run).
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "there is no database at {path}; start `authstore serve` there first, or point \
         --database / AUTHSTORE_DATABASE at the right file"
    )]
    Missing { path: PathBuf },
    #[error("cannot create database {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "database {path} is sealed under key-encryption key {sealed_under}, not {given} \
         (another process bound it first?)"
    )]
    WrongKek {
        path: PathBuf,
        sealed_under: String,
        given: String,
    },
    #[error(
        "the key-encryption key is too weak to seal a new database: it must carry at least 256 \
         bits, as `authstore secret` prints (43 base64url characters, or 64 hex digits)"
    )]
    WeakKek,
    #[error("cannot derive the key-encryption key: {0}")]
    KekDerivation(String),
    #[error(
        "database {path} cannot be written ({source}); check the file's and its directory's \
         permissions and the free space"
    )]
    NotWritable {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database {path}: {source}")]
    Schema {
        path: PathBuf,
        source: schema::SchemaError,
    },
    #[error("cannot start the database writer: {0}")]
    Writer(#[from] std::io::Error),
    #[error("cannot open read connections to {path}: {source}")]
    Pool { path: PathBuf, source: r2d2::Error },
}

/// How long a connection waits for a lock before giving up with an error.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long it sleeps between attempts at first. SQLite's own busy handler
/// sleeps 1, 2, 5, 10 ... 100 ms, so a wait of a few hundred microseconds
/// behind a checkpoint turned into a 50 ms p99 for writes (measured here).
const BUSY_RETRY: Duration = Duration::from_micros(100);
/// The longest sleep between attempts, once a wait has lasted a while (a
/// long wait is another process's long transaction: no need to spin).
const BUSY_RETRY_MAX: Duration = Duration::from_millis(5);

thread_local! {
    /// When the current busy wait on this thread began.
    static BUSY_SINCE: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// SQLite's busy handler: retries until [`BUSY_TIMEOUT`] has passed since the
/// wait began (measured in time, not in attempts: sleeps overshoot), sleeping
/// 100 us at first and up to 5 ms as the wait grows.
fn retry_briefly(attempts: i32) -> bool {
    let now = Instant::now();
    let since = BUSY_SINCE.with(|cell| {
        let since = match (attempts, cell.get()) {
            (0, _) | (_, None) => now,
            (_, Some(since)) => since,
        };
        cell.set(Some(since));
        since
    });
    let waited = now.duration_since(since);
    if waited >= BUSY_TIMEOUT {
        return false;
    }
    let pause = if waited < Duration::from_millis(10) {
        BUSY_RETRY
    } else {
        BUSY_RETRY_MAX
    };
    // SQLite's busy handler: it runs on the thread of the statement that
    // waits, for at most 100 us to 5 ms a time (the measured choice of where
    // reads run, see the module docs).
    #[allow(clippy::disallowed_methods)]
    std::thread::sleep(pause.min(BUSY_TIMEOUT - waited));
    true
}

pub struct SqliteStore {
    readers: r2d2::Pool<SqliteConnectionManager>,
    // Field order is drop order: the writer finishes its queue before the
    // checkpointer stops.
    writer: Writer,
    /// Seals OAuth tokens and signing keys at rest.
    kek: Arc<Kek>,
    /// The database file and its inode when opened: `/readyz` fails when the
    /// file is deleted or replaced under the server.
    path: PathBuf,
    inode: u64,
    /// Wakes the webhook workers after an event commits.
    events: EventSignal,
    /// Times the events.
    clock: Arc<dyn Clock>,
    _checkpointer: Checkpointer,
}

/// How long a read waits for a free connection before `Unavailable`.
const READ_CHECKOUT_TIMEOUT: Duration = Duration::from_millis(500);

/// How long start-up waits for another process that holds the database
/// lock (switching to WAL, migrating, creating the first key).
const START_TIMEOUT: Duration = Duration::from_secs(30);

impl SqliteStore {
    /// Opens and migrates the database at `options.path` (creating it, mode
    /// 0600, when `options.create`), and binds it to `kek`.
    pub fn open(options: &SqliteOptions, kek: Arc<Kek>) -> Result<Self, OpenError> {
        configure_library();
        let path = options.path.clone();
        let open_error = |source| open_failure(&path, source);
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if !path.exists() {
            if !options.create {
                return Err(OpenError::Missing { path });
            }
            // SQLite creates files with the umask's mode, and gives the -wal
            // and -shm files the database's mode: make it 0600 first.
            crate::files::touch_private(&path).map_err(|source| OpenError::Create {
                path: path.clone(),
                source,
            })?;
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        crate::files::warn_if_readable_by_others(&path, "database");
        let vfs = options.locking.vfs();
        let mut conn =
            Connection::open_with_flags_and_vfs(&path, flags, vfs).map_err(open_error)?;
        configure(&conn, options.durability).map_err(open_error)?;
        retry_while_busy(|| conn.pragma_update(None, "journal_mode", "WAL")).map_err(open_error)?;
        schema::migrate(&mut conn, &kek, options.clock.now()).map_err(|source| {
            OpenError::Schema {
                path: path.clone(),
                source,
            }
        })?;
        let kek = bind_kek(&conn, kek, &path)?;
        probe_writable(&conn, &path)?;
        let inode = inode_of(&path).map_err(|source| OpenError::Create {
            path: path.clone(),
            source,
        })?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(open_error)?;
        let writer = Writer::spawn(conn)?;
        let checkpoint_conn =
            Connection::open_with_flags_and_vfs(&path, flags, vfs).map_err(open_error)?;
        configure(&checkpoint_conn, options.durability).map_err(open_error)?;
        let checkpointer = Checkpointer::spawn(
            checkpoint_conn,
            crate::files::with_suffix(&path, "-wal"),
            options.wal_budget_mib,
            options.checkpoints,
        )?;

        let durability = options.durability;
        let read_cache_mib = options.read_cache_mib;
        let read_mmap_mib = options.read_mmap_mib;
        let manager = SqliteConnectionManager::file(uri(&path, vfs))
            .with_flags(options.locking.read_flags() | OpenFlags::SQLITE_OPEN_URI)
            .with_init(move |conn| {
                configure(conn, durability)?;
                // Never writes, even where it is opened for writing (see
                // `Locking::read_flags`).
                conn.pragma_update(None, "query_only", true)?;
                // Negative: a size in KiB rather than in pages.
                conn.pragma_update(None, "cache_size", -(i64::from(read_cache_mib) * 1024))?;
                conn.pragma_update(None, "mmap_size", i64::from(read_mmap_mib) << 20)
            });
        let readers = r2d2::Pool::builder()
            .max_size(options.readers.max(1))
            // A local file does not drop connections; skip the check per checkout.
            .test_on_check_out(false)
            // Reads run on the async workers: never park one for long.
            .connection_timeout(READ_CHECKOUT_TIMEOUT)
            .min_idle(Some(1))
            .build(manager)
            .map_err(|source| OpenError::Pool {
                path: path.clone(),
                source,
            })?;
        Ok(SqliteStore {
            readers,
            writer,
            kek,
            path: path.clone(),
            inode,
            events: EventSignal::default(),
            clock: options.clock.clone(),
            _checkpointer: checkpointer,
        })
    }

    /// The id of the KEK the database at `path` is sealed under; `None` when
    /// there is no such file or nothing is sealed in it yet (a version-1
    /// database). Opens the file read-only; creates nothing.
    pub fn sealed_under(path: &Path) -> Result<Option<String>, OpenError> {
        configure_library();
        if !path.exists() {
            return Ok(None);
        }
        let open_error = |source| open_failure(path, source);
        // Before this process opens the database, if it ever does.
        let conn = open_for_reading(path, Locking::Shared).map_err(open_error)?;
        conn.busy_handler(Some(retry_briefly)).map_err(open_error)?;
        let has_meta: bool = conn
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                [],
                |row| row.get(0),
            )
            .map_err(open_error)?;
        if !has_meta {
            return Ok(None);
        }
        conn.query_row("SELECT kek_id FROM meta WHERE id = 1", [], |row| row.get(0))
            .optional()
            .map(Option::flatten)
            .map_err(open_error)
    }

    /// Deletes a user (and, by cascade, everything of theirs) and records it.
    pub(super) async fn delete_user_by(
        &self,
        id: &str,
        actor: Option<String>,
    ) -> Result<Option<User>> {
        let (id, at) = (id.to_owned(), Occasion::now(&*self.clock));
        let result = self
            .writer
            .run(move |conn| {
                let user = conn
                    .prepare_cached(concat!(
                        "DELETE FROM users WHERE id = ?1 RETURNING ",
                        user_columns!(),
                        ""
                    ))?
                    .query_row([&id], |row| rows::user(row, 0))
                    .optional()?;
                if user.is_some() {
                    record_event(conn, &id, &NewEvent::user_deleted(actor.as_deref(), &at))?;
                }
                Ok(user)
            })
            .await;
        // Wakes this process's webhook workers (a refused write wakes them for nothing).
        self.events.written();
        result
    }

    /// Unlinks an account and records it: any user's (the adapter's
    /// `unlinkAccount`), or only `owner`'s, by `actor` (the console).
    pub(super) async fn unlink_account_by(
        &self,
        key: &AccountKey,
        owner: Option<&str>,
        actor: Option<&str>,
    ) -> Result<Option<Account>> {
        let (key, kek, at) = (key.clone(), self.kek.clone(), Occasion::now(&*self.clock));
        let (owner, actor) = (owner.map(str::to_owned), actor.map(str::to_owned));
        let result = self
            .writer
            .run(move |conn| {
                let account = conn
                    .prepare_cached(concat!(
                        "DELETE FROM accounts WHERE provider = ?1 AND provider_account_id = ?2 \
                         AND (?3 IS NULL OR user_id = ?3) RETURNING ",
                        account_columns!(),
                        ""
                    ))?
                    .query_row(
                        params![&key.provider, &key.provider_account_id, &owner],
                        |row| rows::account(row, &kek),
                    )
                    .optional()?;
                if let Some(account) = &account {
                    let event = NewEvent::account_unlinked(&key, actor.as_deref(), &at);
                    record_event(conn, &account.user_id, &event)?;
                }
                Ok(account)
            })
            .await;
        // Wakes this process's webhook workers (a refused write wakes them for nothing).
        self.events.written();
        result
    }

    fn read<T>(&self, query: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.readers.get()?;
        Ok(query(&conn)?)
    }
}

pub use self::settings::{Checkpoints, Locking};

impl Locking {
    fn vfs(self) -> &'static str {
        match self {
            Locking::Exclusive => "unix-excl",
            Locking::Shared => "unix",
        }
    }

    /// Read connections of an exclusive process must be opened for writing:
    /// unix-excl passes the locks of a read-only connection to `fcntl`, and a
    /// read lock from the process that holds the write lock would replace it.
    fn read_flags(self) -> OpenFlags {
        let access = match self {
            Locking::Exclusive => OpenFlags::SQLITE_OPEN_READ_WRITE,
            Locking::Shared => OpenFlags::SQLITE_OPEN_READ_ONLY,
        };
        access | OpenFlags::SQLITE_OPEN_NO_MUTEX
    }
}

/// A connection for a one-off read of the database at `path` (a backup, a
/// check): read-only, or, inside the server that holds the file alone
/// (`Locking::Exclusive`), one that shares the lock the server holds.
pub fn open_for_reading(path: &Path, locking: Locking) -> rusqlite::Result<Connection> {
    configure_library();
    Connection::open_with_flags_and_vfs(path, locking.read_flags(), locking.vfs())
}

/// `path` as an SQLite URI naming `vfs` (r2d2_sqlite opens by name only).
fn uri(path: &Path, vfs: &str) -> String {
    let mut text = String::from("file:");
    for byte in path.as_os_str().as_encoded_bytes() {
        match byte {
            b'%' | b'?' | b'#' | 0x80.. => text.push_str(&format!("%{byte:02X}")),
            _ => text.push(*byte as char),
        }
    }
    format!("{text}?vfs={vfs}")
}

/// An open failure; one SQLite may not write (a read-only mount, the file's
/// or directory's permissions) says so rather than "unable to open".
fn open_failure(path: &Path, source: rusqlite::Error) -> OpenError {
    let code = source.sqlite_error_code();
    let cannot_write = matches!(
        code,
        Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen)
    );
    if cannot_write && path.exists() {
        OpenError::NotWritable {
            path: path.to_owned(),
            source,
        }
    } else {
        OpenError::Open {
            path: path.to_owned(),
            source,
        }
    }
}

/// Refuses a database this process cannot write (a read-only file or
/// directory, a read-only mount): better at start than at the first sign-in.
fn probe_writable(conn: &Connection, path: &Path) -> Result<(), OpenError> {
    let probe = retry_while_busy(|| {
        conn.execute_batch("BEGIN IMMEDIATE; UPDATE meta SET id = id WHERE id = 1; COMMIT;")
    });
    probe.map_err(|source| {
        let _ = conn.execute_batch("ROLLBACK");
        OpenError::NotWritable {
            path: path.to_owned(),
            source,
        }
    })
}

fn inode_of(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(path)?.ino())
}

/// Records `kek` as the database's KEK when none is recorded yet, and
/// refuses a database sealed under another. A compare-and-swap: of two
/// processes binding different KEKs at once, one is refused.
///
/// Returns the KEK to use: `kek`, or the same key derived under the salt
/// another process recorded first. A key too weak for a new database is
/// refused before anything is recorded.
fn bind_kek(conn: &Connection, kek: Arc<Kek>, path: &Path) -> Result<Arc<Kek>, OpenError> {
    let open_error = |source| OpenError::Open {
        path: path.to_owned(),
        source,
    };
    let recorded = |conn: &Connection| -> rusqlite::Result<Option<String>> {
        conn.query_row("SELECT kek_id FROM meta WHERE id = 1", [], |row| row.get(0))
    };
    if recorded(conn).map_err(open_error)?.is_none() {
        if !crate::kek::carries_256_bits_of(&kek) {
            return Err(OpenError::WeakKek);
        }
        retry_while_busy(|| {
            conn.execute(
                "UPDATE meta SET kek_id = ?1 WHERE id = 1 AND kek_id IS NULL",
                [kek.id()],
            )
        })
        .map_err(|source| OpenError::NotWritable {
            path: path.to_owned(),
            source,
        })?;
    }
    let bound: Option<String> = conn
        .query_row("SELECT kek_id FROM meta WHERE id = 1", [], |row| row.get(0))
        .map_err(open_error)?;
    let matching = match &bound {
        Some(id) if id == kek.id() => return Ok(kek),
        Some(id) => kek
            .matching(id)
            .map_err(|e| OpenError::KekDerivation(e.to_string()))?,
        None => None,
    };
    match matching {
        Some(same) => Ok(Arc::new(same)),
        None => Err(OpenError::WrongKek {
            path: path.to_owned(),
            sealed_under: bound.unwrap_or_default(),
            given: kek.id().to_owned(),
        }),
    }
}

/// Runs `work` again while another process holds a lock it needs, up to
/// [`START_TIMEOUT`]. For start-up steps that SQLite's busy handler does not
/// cover (switching the journal mode) or that may meet a long migration.
fn retry_while_busy<T>(mut work: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match work() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && Instant::now() < deadline =>
            {
                // Opening a store runs on a thread that may block (start-up, a command).
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

/// Process-wide SQLite settings, applied before SQLite initializes (a no-op
/// after: the first connection opened initializes it). Memory statistics
/// off drops a global mutex every allocation takes, which showed up in
/// getSessionAndUser profiles. Runtime settings rather than compile flags, so
/// that `cargo install` builds the same binary as this repository.
pub fn configure_library() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int; sqlite3_config is
        // called once, before any connection, as SQLite requires.
        let code = unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS,
                0 as std::os::raw::c_int,
            )
        };
        if code != rusqlite::ffi::SQLITE_OK {
            log::debug!("SQLite was initialized already; memory statistics stay on");
        }
    });
}

/// Settings every connection needs; SQLite forgets them per connection.
fn configure(conn: &Connection, durability: Durability) -> rusqlite::Result<()> {
    // "text" is an identifier, never a string literal (SQLite's legacy
    // double-quoted strings hide typos in column names).
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DQS_DML, false)?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DQS_DDL, false)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", synchronous(durability))?;
    conn.busy_handler(Some(retry_briefly))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// An event from `seq, id, type, user_id, sid, detail, actor, at, trace_id`.
pub(super) fn event_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        seq: row.get(0)?,
        id: row.get(1)?,
        kind: row.get(2)?,
        user_id: row.get(3)?,
        sid: row.get(4)?,
        detail: row.get(5)?,
        actor: row.get(6)?,
        at: Timestamp::from_millis(row.get(7)?),
        trace_id: row.get(8)?,
    })
}

/// Writes `event` for `user_id`, inside the caller's transaction.
pub(super) fn record_event(
    conn: &Connection,
    user_id: &str,
    event: &NewEvent,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO events (id, type, user_id, sid, detail, actor, at, trace_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        event.id,
        event.kind.name(),
        user_id,
        event.sid,
        event.detail,
        event.actor,
        event.at.millis(),
        event.trace_id,
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_with_uri_characters_opens_the_file_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a?b#c%41 ü.db");
        assert_eq!(
            uri(Path::new("/d/a?b#c%41 ü.db"), "unix-excl"),
            "file:/d/a%3Fb%23c%2541 %C3%BC.db?vfs=unix-excl"
        );
        let flags = Locking::Exclusive.read_flags()
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(uri(&path, "unix-excl"), flags).unwrap();
        conn.execute_batch("CREATE TABLE t (x)").unwrap();
        drop(conn);
        assert!(
            path.exists(),
            "the file is the one named, not a mangled name"
        );
    }

    #[test]
    fn double_quoted_strings_are_identifiers_only() {
        let conn = Connection::open_in_memory().unwrap();
        configure(&conn, Durability::Normal).unwrap();
        let err = conn
            .query_row("SELECT \"not a column\"", [], |r| r.get::<_, String>(0))
            .unwrap_err();
        assert!(err.to_string().contains("no such column"), "{err}");
        assert_eq!(
            conn.query_row("SELECT 'text'", [], |r| r.get::<_, String>(0))
                .unwrap(),
            "text"
        );
    }
}
