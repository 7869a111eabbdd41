//! The SQLite backend: one writer thread, a pool of read-only connections.
//!
//! Reads are short indexed lookups in WAL mode, which never wait for a
//! writer, so they run right on the async worker (moving them to
//! `web::block` cost 38% of throughput, measured here). Writes may wait on
//! the database lock, so they go through [`writer::Writer`].

mod checkpoint;
mod console;
mod outbox;
#[macro_use]
mod rows;
pub mod schema;
pub mod settings;
mod writer;

use self::checkpoint::Checkpointer;
use self::rows::{insert_error, millis, token_hash};
use self::settings::Durability;
use self::writer::Writer;
use super::import::{self, ImportCounts, ImportRows, ImportStore, RowRefused};
use super::sealing::{self, TokenField};
use super::{
    AdapterStore, Duplicate, Entity, KeyChanges, KeyRecord, KeySet, KeyStore, Maintenance, Purged,
    Saved, StorageBytes,
};
use crate::kek::Kek;
use crate::model::{
    Account, AccountKey, Authenticator, Session, SessionAndUser, SessionPatch, User, UserPatch,
    VerificationToken,
};
use crate::store::events::{new_id, Event, EventFilter, EventSignal, EventType, RETENTION_DAYS};
use crate::store::{session_id, Result, StoreError as Error};
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
        schema::migrate(&mut conn, &kek, Timestamp::now()).map_err(|source| OpenError::Schema {
            path: path.clone(),
            source,
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
        let checkpointer = Checkpointer::spawn(checkpoint_conn, options.wal_budget_mib)?;

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

    /// Re-seals every secret in the database under `new` (signing keys and
    /// OAuth tokens), in one transaction. The store must have been opened
    /// with the KEK the database is sealed under now. Returns how many
    /// values were re-sealed.
    pub async fn rewrap(&self, new: Arc<Kek>) -> Result<usize> {
        let old = self.kek.clone();
        self.writer
            .run(move |conn| {
                let tx = conn.savepoint()?;
                tx.pragma_update(None, "secure_delete", "ON")?;
                let mut count = 0;
                let keys: Vec<(String, Vec<u8>)> = tx
                    .prepare("SELECT kid, private_key FROM signing_keys WHERE private_key IS NOT NULL")?
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                for (kid, sealed) in keys {
                    let context = sealing::signing_key_context(&kid);
                    let plain = old.open(&context, &sealed).map_err(|e| {
                        Error::backend(format!("signing key {kid} does not open: {e}"))
                    })?;
                    tx.execute(
                        "UPDATE signing_keys SET private_key = ?2, kek_id = ?3 WHERE kid = ?1",
                        params![kid, new.seal(&context, &plain).map_err(Error::backend)?, new.id()],
                    )?;
                    count += 1;
                }
                reseal_key_rows(&tx, &old, &new)?;
                count += reseal_accounts(&tx, &old, &new)?;
                tx.execute(
                    "UPDATE meta SET kek_id = ?1, key_set_version = key_set_version + 1 WHERE id = 1",
                    [new.id()],
                )?;
                tx.pragma_update(None, "secure_delete", "OFF")?;
                tx.commit()?;
                Ok(count)
            })
            .await
    }

    /// Deletes a user (and, by cascade, everything of theirs) and records it.
    pub(super) async fn delete_user_by(
        &self,
        id: &str,
        actor: Option<String>,
    ) -> Result<Option<User>> {
        let id = id.to_owned();
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
                    record_event(
                        conn,
                        EventType::UserDeleted,
                        Some(&id),
                        None,
                        None,
                        actor.as_deref(),
                    )?;
                }
                Ok(user)
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

pub use self::settings::Locking;

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

/// Re-seals every key row's seal under `new` (after checking it under
/// `old`: a row that fails is refused, not laundered).
fn reseal_key_rows(tx: &Connection, old: &Kek, new: &Kek) -> Result<()> {
    let rows: Vec<(KeyRecord, Option<Vec<u8>>)> = tx
        .prepare(
            "SELECT kid, algorithm, public_key, created_at, signs_from, retires_at, unpublish_at, \
             row_seal FROM signing_keys",
        )?
        .query_map([], |row| Ok((rows::key_row(row)?, row.get(7)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (record, seal) in &rows {
        if !sealing::key_row_intact(old, record, seal.as_deref()) {
            return Err(Error::backend(format!(
                "signing key row {} fails its seal; remove it before moving to a new key",
                record.kid
            )));
        }
        tx.execute(
            "UPDATE signing_keys SET row_seal = ?2 WHERE kid = ?1",
            params![record.kid, sealing::seal_key_row(new, record)?],
        )?;
    }
    Ok(())
}

/// The sealed columns of an account, in the order `reseal_accounts` reads them.
const SEALED_ACCOUNT_FIELDS: [TokenField; 5] = [
    TokenField::RefreshToken,
    TokenField::AccessToken,
    TokenField::IdToken,
    TokenField::SessionState,
    TokenField::Extra,
];

/// Re-seals every sealed account value under `new`. Returns how many.
fn reseal_accounts(tx: &Connection, old: &Kek, new: &Kek) -> Result<usize> {
    type Sealed = [Option<Vec<u8>>; 5];
    let accounts: Vec<(String, String, String, Sealed)> = tx
        .prepare(
            "SELECT provider, provider_account_id, user_id, refresh_token, access_token, \
             id_token, session_state, extra FROM accounts",
        )?
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                [
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                    row.get(7)?,
                ],
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut count = 0;
    for (provider, provider_account_id, user_id, sealed) in accounts {
        let row = sealing::AccountRow {
            provider: &provider,
            provider_account_id: &provider_account_id,
            user_id: &user_id,
        };
        let mut resealed: Sealed = Default::default();
        for ((field, value), out) in SEALED_ACCOUNT_FIELDS.iter().zip(&sealed).zip(&mut resealed) {
            let plain = sealing::open_token(old, row, *field, value.as_deref())
                .map_err(|e| Error::backend(format!("an account value does not open: {e}")))?;
            count += usize::from(plain.is_some());
            *out =
                sealing::seal_token(new, row, *field, plain.as_deref()).map_err(Error::backend)?;
        }
        let [refresh, access, id, state, extra] = resealed;
        tx.execute(
            "UPDATE accounts SET refresh_token = ?3, access_token = ?4, id_token = ?5, \
             session_state = ?6, extra = ?7 WHERE provider = ?1 AND provider_account_id = ?2",
            params![
                provider,
                provider_account_id,
                refresh,
                access,
                id,
                state,
                extra
            ],
        )?;
    }
    Ok(count)
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

/// The hot path: one statement, a primary-key probe into each table.
const SESSION_AND_USER: &str =
    "SELECT s.expires, u.id, u.email, u.name, u.email_verified, u.image, u.extra \
     FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?1";

fn select_user(conn: &Connection, id: &str) -> rusqlite::Result<Option<User>> {
    conn.prepare_cached(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE id = ?1"
    ))?
    .query_row([id], |row| rows::user(row, 0))
    .optional()
}

fn select_authenticator(
    conn: &Connection,
    credential_id: &str,
) -> rusqlite::Result<Option<Authenticator>> {
    conn.prepare_cached(concat!(
        "SELECT ",
        authenticator_columns!(),
        " FROM authenticators WHERE credential_id = ?1"
    ))?
    .query_row([credential_id], rows::authenticator)
    .optional()
}

/// Runs `sql`, an INSERT or UPDATE taking the user's columns as ?1..?6 in
/// `user_columns!()` order.
fn write_user(conn: &Connection, sql: &str, user: &User) -> Result<()> {
    conn.prepare_cached(sql)?
        .execute(params![
            user.id,
            user.email,
            user.name,
            millis(user.email_verified),
            user.image,
            rows::extra_json(&user.extra),
        ])
        .map_err(|e| insert_error(e, user_conflict))?;
    Ok(())
}

fn user_conflict(columns: &str) -> Duplicate {
    if columns.contains("users.email") {
        Duplicate::UserEmail
    } else {
        Duplicate::UserId
    }
}

const INSERT_USER: &str = "INSERT INTO users (id, email, name, email_verified, image, extra) \
                           VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

fn insert_account(conn: &Connection, kek: &Kek, account: &Account) -> Result<()> {
    let seal = |field, value: &Option<String>| {
        sealing::seal_token(kek, sealing::account_row(account), field, value.as_deref())
            .map_err(Error::backend)
    };
    conn.prepare_cached(concat!(
        "INSERT INTO accounts (",
        account_columns!(),
        ") \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    ))?
    .execute(params![
        account.user_id,
        account.kind,
        account.provider,
        account.provider_account_id,
        seal(TokenField::RefreshToken, &account.refresh_token)?,
        seal(TokenField::AccessToken, &account.access_token)?,
        account.expires_at,
        account.token_type,
        account.scope,
        seal(TokenField::IdToken, &account.id_token)?,
        seal(TokenField::SessionState, &account.session_state)?,
        seal(TokenField::Extra, &rows::extra_json(&account.extra))?,
    ])
    .map_err(|e| insert_error(e, |_| Duplicate::Account))?;
    Ok(())
}

fn insert_session(conn: &Connection, session: &Session) -> Result<()> {
    conn.prepare_cached("INSERT INTO sessions (token_hash, user_id, expires) VALUES (?1, ?2, ?3)")?
        .execute(params![
            token_hash(&session.session_token),
            session.user_id,
            session.expires.millis()
        ])
        .map_err(|e| insert_error(e, |_| Duplicate::Session))?;
    Ok(())
}

fn insert_verification_token(conn: &Connection, token: &VerificationToken) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO verification_tokens (identifier, token, expires) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![
        token.identifier,
        token.token,
        token.expires.millis()
    ])
    .map_err(|e| insert_error(e, |_| Duplicate::VerificationToken))?;
    Ok(())
}

fn insert_authenticator(conn: &Connection, a: &Authenticator) -> Result<()> {
    conn.prepare_cached(concat!(
        "INSERT INTO authenticators (",
        authenticator_columns!(),
        ") \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    ))?
    .execute(params![
        a.credential_id,
        a.user_id,
        a.provider_account_id,
        a.credential_public_key,
        a.counter,
        a.credential_device_type,
        a.credential_backed_up,
        a.transports,
    ])
    .map_err(|e| insert_error(e, |_| Duplicate::Authenticator))?;
    Ok(())
}

#[async_trait]
impl ImportStore for SqliteStore {
    async fn import_rows(&self, rows: ImportRows) -> std::result::Result<ImportCounts, RowRefused> {
        let kek = self.kek.clone();
        // The writer runs the whole import in one savepoint: a row that fails
        // rolls back every row before it. Which row it was comes back here.
        let refused = Arc::new(std::sync::Mutex::new(None));
        let failed = refused.clone();
        let written = self
            .writer
            .run(move |conn| {
                let mut counts = ImportCounts::default();
                let result = (|| {
                    for (line, user) in &rows.users {
                        let written = write_user(conn, INSERT_USER, user);
                        import::count(&mut counts, 0, *line, written)?;
                    }
                    for (line, account) in &rows.accounts {
                        let written = insert_account(conn, &kek, account);
                        import::count(&mut counts, 1, *line, written)?;
                    }
                    for (line, session) in &rows.sessions {
                        import::count(&mut counts, 2, *line, insert_session(conn, session))?;
                    }
                    for (line, token) in &rows.verification_tokens {
                        let written = insert_verification_token(conn, token);
                        import::count(&mut counts, 3, *line, written)?;
                    }
                    for (line, authenticator) in &rows.authenticators {
                        let written = insert_authenticator(conn, authenticator);
                        import::count(&mut counts, 4, *line, written)?;
                    }
                    Ok(counts)
                })();
                result.map_err(|refusal: RowRefused| {
                    let error = Error::backend(refusal.error.log_text());
                    *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(refusal);
                    error
                })
            })
            .await;
        written.map_err(|error| {
            refused
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .unwrap_or(RowRefused {
                    table: 0,
                    line: 0,
                    error,
                })
        })
    }
}

#[async_trait]
impl AdapterStore for SqliteStore {
    async fn create_user(&self, user: User) -> Result<User> {
        self.writer
            .run(move |conn| {
                write_user(conn, INSERT_USER, &user)?;
                Ok(user)
            })
            .await
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>> {
        self.read(|conn| select_user(conn, id))
    }

    async fn get_user_by_email(&self, email: &str) -> Result<Option<User>> {
        self.read(|conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE email = ?1"
            ))?
            .query_row([email], |row| rows::user(row, 0))
            .optional()
        })
    }

    async fn get_user_by_account(&self, key: &AccountKey) -> Result<Option<User>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT u.id, u.email, u.name, u.email_verified, u.image, u.extra \
                 FROM accounts a JOIN users u ON u.id = a.user_id \
                 WHERE a.provider = ?1 AND a.provider_account_id = ?2",
            )?
            .query_row([&key.provider, &key.provider_account_id], |row| {
                rows::user(row, 0)
            })
            .optional()
        })
    }

    async fn update_user(&self, patch: UserPatch) -> Result<User> {
        self.writer
            .run(move |conn| {
                // Read-modify-write is safe: the writer's transaction holds
                // the database's write lock throughout.
                let mut user =
                    select_user(conn, &patch.id)?.ok_or_else(|| Error::NotFound(Entity::User))?;
                user.apply(patch);
                write_user(
                    conn,
                    "UPDATE users SET email = ?2, name = ?3, email_verified = ?4, image = ?5, \
                     extra = ?6 WHERE id = ?1",
                    &user,
                )?;
                Ok(user)
            })
            .await
    }

    async fn delete_user(&self, id: &str) -> Result<Option<User>> {
        self.delete_user_by(id, None).await
    }

    async fn link_account(&self, account: Account) -> Result<Account> {
        let kek = self.kek.clone();
        self.writer
            .run(move |conn| {
                insert_account(conn, &kek, &account)?;
                Ok(account)
            })
            .await
    }

    async fn unlink_account(&self, key: &AccountKey) -> Result<Option<Account>> {
        let key = key.clone();
        let kek = self.kek.clone();
        let result = self
            .writer
            .run(move |conn| {
                let account = conn
                    .prepare_cached(concat!(
                        "DELETE FROM accounts WHERE provider = ?1 AND provider_account_id = ?2 \
                         RETURNING ",
                        account_columns!(),
                        ""
                    ))?
                    .query_row([&key.provider, &key.provider_account_id], |row| {
                        rows::account(row, &kek)
                    })
                    .optional()?;
                if let Some(account) = &account {
                    let detail = serde_json::json!({
                        "provider": key.provider,
                        "providerAccountId": key.provider_account_id,
                    })
                    .to_string();
                    record_event(
                        conn,
                        EventType::AccountUnlinked,
                        Some(&account.user_id),
                        None,
                        Some(&detail),
                        None,
                    )?;
                }
                Ok(account)
            })
            .await;
        // Wakes this process's webhook workers (a refused write wakes them for nothing).
        self.events.written();
        result
    }

    async fn get_account(&self, key: &AccountKey) -> Result<Option<Account>> {
        self.read(|conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                account_columns!(),
                " FROM accounts \
                 WHERE provider = ?1 AND provider_account_id = ?2"
            ))?
            .query_row([&key.provider, &key.provider_account_id], |row| {
                rows::account(row, &self.kek)
            })
            .optional()
        })
    }

    async fn create_session(&self, session: Session) -> Result<Session> {
        self.writer
            .run(move |conn| {
                insert_session(conn, &session)?;
                Ok(session)
            })
            .await
    }

    async fn get_session_and_user(&self, session_token: &str) -> Result<Option<SessionAndUser>> {
        let hash = token_hash(session_token);
        self.read(|conn| {
            conn.prepare_cached(SESSION_AND_USER)?
                .query_row([hash], |row| {
                    let user = rows::user(row, 1)?;
                    Ok(SessionAndUser {
                        session: Session {
                            session_token: session_token.to_owned(),
                            user_id: user.id.clone(),
                            expires: Timestamp::from_millis(row.get(0)?),
                        },
                        user,
                    })
                })
                .optional()
        })
    }

    async fn update_session(&self, patch: SessionPatch) -> Result<Option<Session>> {
        self.writer
            .run(move |conn| {
                let updated = conn
                    .prepare_cached(
                        "UPDATE sessions SET expires = coalesce(?2, expires), \
                         user_id = coalesce(?3, user_id) WHERE token_hash = ?1 \
                         RETURNING user_id, expires",
                    )?
                    .query_row(
                        params![
                            token_hash(&patch.session_token),
                            millis(patch.expires),
                            patch.user_id
                        ],
                        |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)),
                    )
                    .optional()
                    .map_err(|e| insert_error(e, |_| Duplicate::Session))?;
                Ok(updated.map(|(user_id, expires)| Session {
                    session_token: patch.session_token,
                    user_id,
                    expires: Timestamp::from_millis(expires),
                }))
            })
            .await
    }

    async fn delete_session(&self, session_token: &str) -> Result<Option<Session>> {
        let session_token = session_token.to_owned();
        let result = self
            .writer
            .run(move |conn| {
                let digest = token_hash(&session_token);
                let deleted = conn
                    .prepare_cached(
                        "DELETE FROM sessions WHERE token_hash = ?1 RETURNING user_id, expires",
                    )?
                    .query_row([digest], |row| {
                        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                    })
                    .optional()?;
                if let Some((user_id, _)) = &deleted {
                    let sid = session_id(&digest);
                    record_event(
                        conn,
                        EventType::SessionDeleted,
                        Some(user_id),
                        Some(&sid),
                        None,
                        None,
                    )?;
                }
                Ok(deleted.map(|(user_id, expires)| Session {
                    session_token,
                    user_id,
                    expires: Timestamp::from_millis(expires),
                }))
            })
            .await;
        // Wakes this process's webhook workers (a refused write wakes them for nothing).
        self.events.written();
        result
    }

    async fn create_verification_token(
        &self,
        token: VerificationToken,
    ) -> Result<VerificationToken> {
        self.writer
            .run(move |conn| {
                insert_verification_token(conn, &token)?;
                Ok(token)
            })
            .await
    }

    async fn use_verification_token(
        &self,
        identifier: &str,
        token: &str,
    ) -> Result<Option<VerificationToken>> {
        let (identifier, token) = (identifier.to_owned(), token.to_owned());
        self.writer
            .run(move |conn| {
                let expires = conn
                    .prepare_cached(
                        "DELETE FROM verification_tokens WHERE identifier = ?1 AND token = ?2 \
                         RETURNING expires",
                    )?
                    .query_row([&identifier, &token], |row| row.get::<_, i64>(0))
                    .optional()?;
                Ok(expires.map(|expires| VerificationToken {
                    identifier,
                    token,
                    expires: Timestamp::from_millis(expires),
                }))
            })
            .await
    }

    async fn create_authenticator(&self, authenticator: Authenticator) -> Result<Authenticator> {
        self.writer
            .run(move |conn| {
                insert_authenticator(conn, &authenticator)?;
                Ok(authenticator)
            })
            .await
    }

    async fn get_authenticator(&self, credential_id: &str) -> Result<Option<Authenticator>> {
        self.read(|conn| select_authenticator(conn, credential_id))
    }

    async fn list_authenticators_by_user_id(&self, user_id: &str) -> Result<Vec<Authenticator>> {
        self.read(|conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                authenticator_columns!(),
                " FROM authenticators WHERE user_id = ?1 \
                 ORDER BY credential_id"
            ))?
            .query_map([user_id], rows::authenticator)?
            .collect()
        })
    }

    async fn update_authenticator_counter(
        &self,
        credential_id: &str,
        counter: u32,
    ) -> Result<Authenticator> {
        let credential_id = credential_id.to_owned();
        self.writer
            .run(move |conn| {
                conn.prepare_cached(concat!(
                    "UPDATE authenticators SET counter = ?2 WHERE credential_id = ?1 \
                     RETURNING ",
                    authenticator_columns!(),
                    ""
                ))?
                .query_row(params![credential_id, counter], rows::authenticator)
                .optional()?
                .ok_or_else(|| Error::NotFound(Entity::Authenticator))
            })
            .await
    }
}

#[async_trait]
impl Maintenance for SqliteStore {
    async fn purge_expired(&self, now: Timestamp, batch: usize) -> Result<Purged> {
        let (now, batch) = (now.millis(), batch as i64);
        let result = self
            .writer
            .run(move |conn| {
                let gone = conn
                    .prepare_cached(
                        "DELETE FROM sessions WHERE token_hash IN \
                         (SELECT token_hash FROM sessions WHERE expires < ?1 LIMIT ?2) \
                         RETURNING token_hash, user_id",
                    )?
                    .query_map(params![now, batch], |row| {
                        Ok((row.get::<_, [u8; 32]>(0)?, row.get::<_, String>(1)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                for (digest, user_id) in &gone {
                    let sid = session_id(digest);
                    record_event(
                        conn,
                        EventType::SessionExpired,
                        Some(user_id),
                        Some(&sid),
                        None,
                        None,
                    )?;
                }
                let sessions = gone.len();
                // Events past their retention, a batch at a time like the rest.
                let kept_from = now - (RETENTION_DAYS * 24 * 3600 * 1000) as i64;
                let events = conn
                    .prepare_cached(
                        "DELETE FROM events WHERE seq IN \
                         (SELECT seq FROM events WHERE at < ?1 ORDER BY seq LIMIT ?2)",
                    )?
                    .execute(params![kept_from, batch])?;
                let verification_tokens = conn
                    .prepare_cached(
                        "DELETE FROM verification_tokens WHERE (identifier, token) IN \
                         (SELECT identifier, token FROM verification_tokens \
                          WHERE expires < ?1 LIMIT ?2)",
                    )?
                    .execute(params![now, batch])?;
                Ok(Purged {
                    sessions,
                    verification_tokens,
                    events,
                })
            })
            .await;
        // Wakes this process's webhook workers (a refused write wakes them for nothing).
        self.events.written();
        result
    }

    async fn ping(&self) -> Result<()> {
        if !self.writer.is_alive() {
            return Err(Error::Unavailable("the database writer has stopped".into()));
        }
        if self.writer.health().failing() {
            return Err(Error::Unavailable(
                "the last write failed for a storage reason".into(),
            ));
        }
        match inode_of(&self.path) {
            Ok(inode) if inode == self.inode => {}
            Ok(_) => {
                return Err(Error::Unavailable(format!(
                    "{} was replaced under the server",
                    self.path.display()
                )))
            }
            Err(e) => {
                return Err(Error::Unavailable(format!(
                    "{} is gone: {e}",
                    self.path.display()
                )))
            }
        }
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())))
    }

    async fn count_users(&self) -> Result<u64> {
        self.read(|conn| conn.query_row("SELECT count(*) FROM users", [], |row| row.get(0)))
    }

    async fn storage_bytes(&self) -> Result<StorageBytes> {
        let size = |path: &std::path::Path| std::fs::metadata(path).map(|m| m.len());
        let database = size(&self.path)
            .map_err(|e| Error::backend(format!("reading the database's size: {e}")))?;
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        // No WAL file (just checkpointed and truncated, or never written): 0.
        let wal = size(std::path::Path::new(&wal)).unwrap_or(0);
        Ok(StorageBytes {
            database,
            wal: Some(wal),
        })
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<Event>> {
        let kind = filter.kind.map(EventType::name);
        let since = filter.since.map(Timestamp::millis);
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT seq, id, type, user_id, sid, detail, actor, at FROM events \
                 WHERE (?1 IS NULL OR type = ?1) AND (?2 IS NULL OR user_id = ?2) \
                 AND (?3 IS NULL OR at >= ?3) ORDER BY seq DESC LIMIT ?4",
            )?
            .query_map(params![kind, filter.user_id, since, limit], event_row)?
            .collect()
        })
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn signing_keys(&self) -> Result<KeySet> {
        let (version, sealed) = self.read(|conn| {
            // One read transaction: the version and the keys of one snapshot.
            let tx = conn.unchecked_transaction()?;
            let version: i64 =
                tx.query_row("SELECT key_set_version FROM meta WHERE id = 1", [], |row| {
                    row.get(0)
                })?;
            let keys = tx
                .prepare_cached(
                    "SELECT kid, algorithm, public_key, private_key, kek_id, created_at, \
                     signs_from, retires_at, unpublish_at, row_seal \
                     FROM signing_keys ORDER BY signs_from, created_at",
                )?
                .query_map([], |row| {
                    let record = KeyRecord {
                        kid: row.get(0)?,
                        algorithm: row.get(1)?,
                        public_key_der: row.get(2)?,
                        private_key_der: row.get(3)?,
                        created_at: Timestamp::from_millis(row.get(5)?),
                        signs_from: Timestamp::from_millis(row.get(6)?),
                        retires_at: row.get::<_, Option<i64>>(7)?.map(Timestamp::from_millis),
                        unpublish_at: row.get::<_, Option<i64>>(8)?.map(Timestamp::from_millis),
                    };
                    let seal: Option<Vec<u8>> = row.get(9)?;
                    Ok((record, row.get::<_, Option<String>>(4)?, seal))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((version, keys))
        })?;
        let mut set = KeySet {
            version,
            ..KeySet::default()
        };
        for (record, kek_id, seal) in sealed {
            let kid = record.kid.clone();
            match sealing::open_signing_key(&self.kek, record, kek_id, seal.as_deref())? {
                Some(record) => set.keys.push(record),
                None => set.refused.push(kid),
            }
        }
        Ok(set)
    }

    async fn key_set_version(&self) -> Result<i64> {
        self.read(|conn| {
            conn.prepare_cached("SELECT key_set_version FROM meta WHERE id = 1")?
                .query_row([], |row| row.get(0))
        })
    }

    async fn save_signing_keys(&self, expected_version: i64, changes: KeyChanges) -> Result<Saved> {
        let kek = self.kek.clone();
        self.writer
            .run(move |conn| {
                // All or nothing, inside the writer's shared transaction.
                let tx = conn.savepoint()?;
                let swapped = tx.execute(
                    "UPDATE meta SET key_set_version = key_set_version + 1 \
                     WHERE id = 1 AND key_set_version = ?1",
                    [expected_version],
                )?;
                if swapped == 0 {
                    return Ok(Saved::Stale);
                }
                for key in &changes.insert {
                    let sealed = key
                        .private_key_der
                        .as_ref()
                        .map(|der| kek.seal(&sealing::signing_key_context(&key.kid), der))
                        .transpose()
                        .map_err(Error::backend)?;
                    let kek_id = sealed.as_ref().map(|_| kek.id());
                    let row_seal = sealing::seal_key_row(&kek, key)?;
                    tx.prepare_cached(
                        "INSERT INTO signing_keys (kid, algorithm, public_key, private_key, kek_id, \
                         created_at, signs_from, retires_at, unpublish_at, row_seal) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    )?
                    .execute(params![
                        key.kid,
                        key.algorithm,
                        key.public_key_der,
                        sealed,
                        kek_id,
                        key.created_at.millis(),
                        key.signs_from.millis(),
                        millis(key.retires_at),
                        millis(key.unpublish_at),
                        row_seal,
                    ])
                    .map_err(|e| insert_error(e, |_| Duplicate::SigningKey))?;
                }
                for key in &changes.reschedule {
                    tx.prepare_cached(
                        "UPDATE signing_keys SET signs_from = ?2, retires_at = ?3, unpublish_at = ?4, \
                         row_seal = ?5 WHERE kid = ?1",
                    )?
                    .execute(params![
                        key.kid,
                        key.signs_from.millis(),
                        millis(key.retires_at),
                        millis(key.unpublish_at),
                        sealing::seal_key_row(&kek, key)?,
                    ])?;
                }
                // Erased private halves are zeroed in the file, not just unlinked.
                tx.pragma_update(None, "secure_delete", "ON")?;
                for kid in &changes.erase {
                    tx.execute(
                        "UPDATE signing_keys SET private_key = NULL, kek_id = NULL WHERE kid = ?1",
                        [kid],
                    )?;
                }
                for kid in &changes.delete {
                    tx.execute("DELETE FROM signing_keys WHERE kid = ?1", [kid])?;
                }
                tx.pragma_update(None, "secure_delete", "OFF")?;
                tx.commit()?;
                Ok(Saved::Applied)
            })
            .await
    }
}

/// An event from `seq, id, type, user_id, sid, detail, actor, at`.
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
    })
}

/// Writes one event, inside the caller's transaction.
pub(super) fn record_event(
    conn: &Connection,
    kind: EventType,
    user_id: Option<&str>,
    sid: Option<&str>,
    detail: Option<&str>,
    actor: Option<&str>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO events (id, type, user_id, sid, detail, actor, at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        new_id(),
        kind.name(),
        user_id,
        sid,
        detail,
        actor,
        Timestamp::now().millis()
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
