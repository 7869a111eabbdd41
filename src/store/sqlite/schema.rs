//! Creating and migrating the schema, versioned by `PRAGMA user_version`.
//!
//! A migration must never lose a row. So each step runs:
//! * with `foreign_keys = OFF`, set outside the transaction (SQLite ignores
//!   it inside one): rebuilding a parent table would otherwise cascade-delete
//!   every child row;
//! * inside `BEGIN IMMEDIATE`, re-reading the version under the lock, so two
//!   processes starting together migrate once;
//! * ending with `PRAGMA foreign_key_check`: any violation rolls the step back;
//! * with `secure_delete` on, so the pages a step frees (plaintext secrets of
//!   an older version) are zeroed rather than left in the file.

use crate::kek::Kek;
use crate::store::sealing::{self, TokenField};
use crate::timestamp::Timestamp;
use rusqlite::{params, Connection, Transaction};

/// The whole schema of the newest version, with every index.
pub const SCHEMA: &str = include_str!("../../../schema.sql");

/// The schema version this build writes.
pub const VERSION: i64 = 8;

pub use crate::error::BoxError;

/// Upgrades a database by one version, inside the migration's transaction.
pub type Step = fn(&Transaction<'_>, &Kek, Timestamp) -> Result<(), BoxError>;

/// `STEPS[v - 1]` upgrades a database from version `v` to `v + 1`.
pub const STEPS: [Step; (VERSION - 1) as usize] = [
    v1_to_v2, v2_to_v3, v3_to_v4, v4_to_v5, v5_to_v6, v6_to_v7, v7_to_v8,
];

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "the database is at schema version {found}, written by a newer authstore; \
         this build knows versions up to {latest}. Upgrade authstore, or use another database file"
    )]
    TooNew { found: i64, latest: i64 },
    #[error(
        "the database has schema version {found}, which no authstore writes (PRAGMA user_version \
         was changed by hand?); refusing to touch it"
    )]
    Invalid { found: i64 },
    #[error(
        "migrating to version {to} would break references ({violations}); nothing was changed"
    )]
    ForeignKeys { to: i64, violations: String },
    #[error("migrating to version {to} failed: {source}; nothing was changed")]
    Step { to: i64, source: BoxError },
    #[error("could not migrate the schema: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Brings the database to [`VERSION`].
pub fn migrate(conn: &mut Connection, kek: &Kek, now: Timestamp) -> Result<(), SchemaError> {
    migrate_with(conn, kek, now, &STEPS)
}

/// Brings the database to version `steps.len() + 1` (tests add steps of their
/// own). Version 0, an empty database, receives [`SCHEMA`] whole.
pub fn migrate_with(
    conn: &mut Connection,
    kek: &Kek,
    now: Timestamp,
    steps: &[Step],
) -> Result<(), SchemaError> {
    let latest = steps.len() as i64 + 1;
    let mut migrated = false;
    loop {
        let found = checked_version(conn, latest)?;
        if found == latest {
            break;
        }
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        conn.pragma_update(None, "secure_delete", "ON")?;
        let stepped = step(conn, kek, now, steps, latest);
        // Back on whatever happened: the connection goes on serving writes.
        conn.pragma_update(None, "secure_delete", "OFF")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrated |= stepped?;
    }
    if migrated {
        // Copy the zeroed pages into the file now, so a copy of it made
        // after this start holds no plaintext from the older version.
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
    Ok(())
}

fn checked_version(conn: &Connection, latest: i64) -> Result<i64, SchemaError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    match found {
        _ if found < 0 => Err(SchemaError::Invalid { found }),
        _ if found > latest => Err(SchemaError::TooNew { found, latest }),
        _ => Ok(found),
    }
}

/// One step under the write lock. Returns whether an existing database was
/// changed (false when another process did it first, or for a new database).
fn step(
    conn: &mut Connection,
    kek: &Kek,
    now: Timestamp,
    steps: &[Step],
    latest: i64,
) -> Result<bool, SchemaError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Re-read inside the lock: another process may have migrated meanwhile.
    let found = checked_version(&tx, latest)?;
    if found == latest {
        return Ok(false);
    }
    let (to, upgraded) = if found == 0 {
        tx.execute_batch(SCHEMA)?;
        (VERSION, false)
    } else {
        let to = found + 1;
        let run = steps
            .get((found - 1) as usize)
            .ok_or(SchemaError::Invalid { found })?;
        // Another process may have recorded the same KEK derived under a salt
        // of its own (it won the race to seal first): what is sealed here is
        // opened, and sealed again, under the derivation the file records.
        let recorded =
            recorded_kek(&tx, found, kek).map_err(|source| SchemaError::Step { to, source })?;
        let kek = recorded.as_ref().unwrap_or(kek);
        run(&tx, kek, now).map_err(|source| SchemaError::Step { to, source })?;
        (to, true)
    };
    let violations = foreign_key_violations(&tx)?;
    if !violations.is_empty() {
        return Err(SchemaError::ForeignKeys { to, violations });
    }
    tx.pragma_update(None, "user_version", to)?;
    tx.commit()?;
    if upgraded {
        log::info!("database schema migrated to version {to}");
    } else {
        log::info!("database schema created at version {to}");
    }
    Ok(upgraded)
}

/// The KEK derived as the database at version `found` records it, when that
/// differs from `kek`'s derivation (`None`: use `kek`; version 1 records none).
fn recorded_kek(tx: &Transaction<'_>, found: i64, kek: &Kek) -> Result<Option<Kek>, BoxError> {
    if found < 2 {
        return Ok(None);
    }
    let recorded: Option<String> =
        tx.query_row("SELECT kek_id FROM meta WHERE id = 1", [], |row| row.get(0))?;
    match recorded {
        Some(id) if id != kek.id() => match kek.matching(&id)? {
            Some(same) => Ok(Some(same)),
            None => Err(format!(
                "the database is sealed under key-encryption key {id}, not {}",
                kek.id()
            )
            .into()),
        },
        _ => Ok(None),
    }
}

/// `PRAGMA foreign_key_check`, summarised per table ("sessions: 3 rows").
fn foreign_key_violations(tx: &Transaction<'_>) -> rusqlite::Result<String> {
    let mut stmt =
        tx.prepare("SELECT \"table\", count(*) FROM pragma_foreign_key_check GROUP BY 1")?;
    let found: Vec<String> = stmt
        .query_map([], |row| {
            Ok(format!(
                "{}: {} rows",
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(found.join(", "))
}

/// Version 2: signing keys sealed under the KEK with their public half
/// beside them (a retired key keeps only that), OAuth tokens sealed, and the
/// `meta` row (key-set version for compare-and-swap, the KEK's id).
fn v1_to_v2(tx: &Transaction<'_>, kek: &Kek, now: Timestamp) -> Result<(), BoxError> {
    // The statements are frozen copies of version 2's tables, not read from
    // schema.sql: a migration must not change when the newest schema does.
    tx.execute_batch(
        "ALTER TABLE signing_keys RENAME TO signing_keys_v1;
         CREATE TABLE signing_keys (
             kid          TEXT PRIMARY KEY NOT NULL,
             algorithm    TEXT NOT NULL,
             public_key   BLOB NOT NULL,
             private_key  BLOB,
             kek_id       TEXT,
             created_at   INTEGER NOT NULL,
             signs_from   INTEGER NOT NULL,
             retires_at   INTEGER,
             unpublish_at INTEGER,
             CHECK ((private_key IS NULL) = (kek_id IS NULL))
         ) WITHOUT ROWID;
         CREATE TABLE meta (
             id              INTEGER PRIMARY KEY CHECK (id = 1),
             key_set_version INTEGER NOT NULL,
             kek_id          TEXT
         );
         ALTER TABLE accounts RENAME TO accounts_v1;
         DROP INDEX accounts_by_user;
         CREATE TABLE accounts (
             provider            TEXT NOT NULL,
             provider_account_id TEXT NOT NULL,
             user_id             TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
             type                TEXT NOT NULL,
             refresh_token       BLOB,
             access_token        BLOB,
             expires_at          INTEGER,
             token_type          TEXT,
             scope               TEXT,
             id_token            BLOB,
             session_state       TEXT,
             extra               TEXT,
             PRIMARY KEY (provider, provider_account_id)
         ) WITHOUT ROWID;
         CREATE INDEX accounts_by_user ON accounts (user_id);",
    )?;
    tx.execute(
        "INSERT INTO meta (id, key_set_version, kek_id) VALUES (1, 1, ?1)",
        [kek.id()],
    )?;

    let mut keys = tx.prepare(
        "SELECT kid, algorithm, private_key, created_at, signs_from, retires_at, unpublish_at \
         FROM signing_keys_v1",
    )?;
    let mut rows = keys.query([])?;
    while let Some(row) = rows.next()? {
        let kid: String = row.get(0)?;
        let pkcs8: Vec<u8> = row.get(2)?;
        let retires_at: Option<i64> = row.get(5)?;
        let private = openssl::pkey::PKey::private_key_from_pkcs8(&pkcs8)
            .map_err(|e| format!("signing key {kid} is unreadable: {e}"))?;
        let public = private.public_key_to_der()?;
        // Only a key that may still sign keeps its private half.
        let still_signs = retires_at.is_none_or(|at| now.millis() < at);
        let sealed = still_signs
            .then(|| kek.seal(&sealing::signing_key_context(&kid), &pkcs8))
            .transpose()?;
        let kek_id = sealed.as_ref().map(|_| kek.id());
        tx.execute(
            "INSERT INTO signing_keys (kid, algorithm, public_key, private_key, kek_id, \
             created_at, signs_from, retires_at, unpublish_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                kid,
                row.get::<_, String>(1)?,
                public,
                sealed,
                kek_id,
                row.get::<_, i64>(3)?,
                row.get::<_, i64>(4)?,
                retires_at,
                row.get::<_, Option<i64>>(6)?,
            ],
        )?;
    }
    drop(rows);
    drop(keys);

    let mut accounts = tx.prepare(
        "SELECT provider, provider_account_id, user_id, type, refresh_token, access_token, \
         expires_at, token_type, scope, id_token, session_state, extra FROM accounts_v1",
    )?;
    let mut rows = accounts.query([])?;
    while let Some(row) = rows.next()? {
        let provider: String = row.get(0)?;
        let account_id: String = row.get(1)?;
        let seal = |field, at: usize| -> Result<Option<Vec<u8>>, BoxError> {
            let plain: Option<String> = row.get(at)?;
            Ok(sealing::first::seal_token(
                kek,
                &provider,
                &account_id,
                field,
                plain.as_deref(),
            )?)
        };
        tx.execute(
            "INSERT INTO accounts (provider, provider_account_id, user_id, type, refresh_token, \
             access_token, expires_at, token_type, scope, id_token, session_state, extra) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                provider,
                account_id,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                seal(TokenField::RefreshToken, 4)?,
                seal(TokenField::AccessToken, 5)?,
                row.get::<_, Option<i64>>(6)?,
                row.get::<_, Option<String>>(7)?,
                row.get::<_, Option<String>>(8)?,
                seal(TokenField::IdToken, 9)?,
                row.get::<_, Option<String>>(10)?,
                row.get::<_, Option<String>>(11)?,
            ],
        )?;
    }
    drop(rows);
    drop(accounts);
    tx.execute_batch("DROP TABLE signing_keys_v1; DROP TABLE accounts_v1;")?;
    Ok(())
}
/// Version 3: the operator's console's links and sessions, and the index
/// its user search by name walks. Nothing existing changes.
fn v2_to_v3(tx: &Transaction<'_>, _kek: &Kek, _now: Timestamp) -> Result<(), BoxError> {
    // A frozen copy of version 3's additions (see v1_to_v2).
    tx.execute_batch(
        "CREATE TABLE console_links (
             token_hash BLOB PRIMARY KEY NOT NULL,
             expires    INTEGER NOT NULL
         ) WITHOUT ROWID;
         CREATE TABLE console_sessions (
             token_hash   BLOB PRIMARY KEY NOT NULL,
             idle_expires INTEGER NOT NULL
         ) WITHOUT ROWID;
         CREATE INDEX users_by_name ON users (lower(name), id);",
    )?;
    Ok(())
}

/// Version 4: the events table (audit log and revocation outbox).
fn v3_to_v4(tx: &Transaction<'_>, _kek: &Kek, _now: Timestamp) -> Result<(), BoxError> {
    // A frozen copy of version 4's addition (see v1_to_v2).
    tx.execute_batch(
        "CREATE TABLE events (
             seq     INTEGER PRIMARY KEY AUTOINCREMENT,
             id      TEXT NOT NULL UNIQUE,
             type    TEXT NOT NULL,
             user_id TEXT,
             sid     TEXT,
             detail  TEXT,
             actor   TEXT,
             at      INTEGER NOT NULL
         );
         CREATE INDEX events_by_user ON events (user_id, seq);
         CREATE INDEX events_by_time ON events (at);",
    )?;
    Ok(())
}

/// Version 5: where delivery to each webhook endpoint stands.
fn v4_to_v5(tx: &Transaction<'_>, _kek: &Kek, _now: Timestamp) -> Result<(), BoxError> {
    // A frozen copy of version 5's addition (see v1_to_v2).
    tx.execute_batch(
        "CREATE TABLE webhook_endpoints (
             endpoint    TEXT PRIMARY KEY NOT NULL,
             floor       INTEGER NOT NULL,
             lease_owner TEXT,
             lease_until INTEGER NOT NULL
         ) WITHOUT ROWID;
         CREATE TABLE webhook_deliveries (
             endpoint TEXT NOT NULL,
             seq      INTEGER NOT NULL,
             PRIMARY KEY (endpoint, seq)
         ) WITHOUT ROWID;",
    )?;
    Ok(())
}

/// Version 6: each signing key row carries a seal under the KEK over what
/// it publishes (kid, algorithm, public half, times), and every account
/// value (its OAuth tokens, `session_state`, `extra`) is sealed bound to the
/// account's owner. The rows there now are bound as they are: whoever wrote
/// them before could write the file, and from now on such a write shows.
fn v5_to_v6(tx: &Transaction<'_>, kek: &Kek, _now: Timestamp) -> Result<(), BoxError> {
    tx.execute_batch("ALTER TABLE signing_keys ADD COLUMN row_seal BLOB;")?;
    let keys: Vec<crate::store::KeyRecord> = tx
        .prepare(
            "SELECT kid, algorithm, public_key, created_at, signs_from, retires_at, unpublish_at \
             FROM signing_keys",
        )?
        .query_map([], super::rows::key_row)?
        .collect::<rusqlite::Result<_>>()?;
    for key in &keys {
        tx.execute(
            "UPDATE signing_keys SET row_seal = ?2 WHERE kid = ?1",
            params![key.kid, sealing::seal_key_row(kek, key)?],
        )?;
    }
    type Row = (
        String,
        String,
        String,
        [Option<Vec<u8>>; 3],
        Option<String>,
        Option<String>,
    );
    let accounts: Vec<Row> = tx
        .prepare(
            "SELECT provider, provider_account_id, user_id, refresh_token, access_token, \
             id_token, session_state, extra FROM accounts",
        )?
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                [row.get(3)?, row.get(4)?, row.get(5)?],
                row.get(6)?,
                row.get(7)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let tokens = [
        TokenField::RefreshToken,
        TokenField::AccessToken,
        TokenField::IdToken,
    ];
    for (provider, provider_account_id, user_id, sealed, state, extra) in accounts {
        let owner = sealing::AccountRow {
            provider: &provider,
            provider_account_id: &provider_account_id,
            user_id: &user_id,
        };
        let mut resealed: [Option<Vec<u8>>; 3] = Default::default();
        for ((field, value), out) in tokens.iter().zip(&sealed).zip(&mut resealed) {
            let plain = sealing::first::open_token(
                kek,
                &provider,
                &provider_account_id,
                *field,
                value.as_deref(),
            )?;
            *out = sealing::seal_token(kek, owner, *field, plain.as_deref())?;
        }
        let [refresh, access, id] = resealed;
        tx.execute(
            "UPDATE accounts SET refresh_token = ?3, access_token = ?4, id_token = ?5, \
             session_state = ?6, extra = ?7 WHERE provider = ?1 AND provider_account_id = ?2",
            params![
                provider,
                provider_account_id,
                refresh,
                access,
                id,
                sealing::seal_token(kek, owner, TokenField::SessionState, state.as_deref())?,
                sealing::seal_token(kek, owner, TokenField::Extra, extra.as_deref())?,
            ],
        )?;
    }
    Ok(())
}

/// Version 7: each event records the W3C trace of the request that made
/// the change (its webhook delivery carries it on).
fn v6_to_v7(tx: &Transaction<'_>, _kek: &Kek, _now: Timestamp) -> Result<(), BoxError> {
    tx.execute_batch("ALTER TABLE events ADD COLUMN trace_id TEXT;")?;
    Ok(())
}

/// Version 8: where and when each session was created and last seen (for
/// the person's own list of sessions).
fn v7_to_v8(tx: &Transaction<'_>, _kek: &Kek, _now: Timestamp) -> Result<(), BoxError> {
    tx.execute_batch(
        "ALTER TABLE sessions ADD COLUMN created_at INTEGER;
         ALTER TABLE sessions ADD COLUMN last_seen_at INTEGER;
         ALTER TABLE sessions ADD COLUMN user_agent TEXT;
         ALTER TABLE sessions ADD COLUMN ip TEXT;",
    )?;
    Ok(())
}
