//! Creating and migrating the PostgreSQL schema, versioned in `meta`.
//!
//! N nodes may start on one empty database at the same moment: each takes a
//! transaction-scoped advisory lock first, so one of them creates the schema
//! and the others, let in after its commit, find it there. A migration step
//! runs in the same transaction as the version bump (DDL is transactional in
//! PostgreSQL): all of it or none.

use crate::store::StoreError;
use tokio_postgres::Client;

/// The whole schema of the newest version, with every index.
pub const SCHEMA: &str = include_str!("../../../schema.postgres.sql");

/// The schema version this build writes.
pub const VERSION: i32 = 8;

/// `STEPS[v - 1]` is the SQL that upgrades version `v` to `v + 1`. Steps
/// that must re-seal data under the KEK will need code, as SQLite's v1 → v2.
const STEPS: [&str; (VERSION - 1) as usize] = [
    // 1 -> 2: the operator's console's links and sessions, and its name index.
    r#"CREATE TABLE console_links (
    token_hash BYTEA PRIMARY KEY,
    expires    BIGINT NOT NULL
);
CREATE TABLE console_sessions (
    token_hash   BYTEA PRIMARY KEY,
    idle_expires BIGINT NOT NULL
);
CREATE INDEX users_by_name ON users ((lower(name) COLLATE "C"), id);
"#,
    // 2 -> 3: events, the audit log and revocation outbox.
    r#"CREATE TABLE events (
    seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id      TEXT COLLATE "C" NOT NULL UNIQUE,
    type    TEXT NOT NULL,
    user_id TEXT COLLATE "C",
    sid     TEXT COLLATE "C",
    detail  TEXT,
    actor   TEXT,
    at      BIGINT NOT NULL
);
CREATE INDEX events_by_user ON events (user_id, seq);
CREATE INDEX events_by_time ON events (at);
"#,
    // 3 -> 4: where delivery to each webhook endpoint stands.
    r#"CREATE TABLE webhook_endpoints (
    endpoint    TEXT COLLATE "C" PRIMARY KEY,
    floor       BIGINT NOT NULL,
    lease_owner TEXT COLLATE "C",
    lease_until BIGINT NOT NULL
);
CREATE TABLE webhook_deliveries (
    endpoint TEXT COLLATE "C" NOT NULL,
    seq      BIGINT NOT NULL,
    PRIMARY KEY (endpoint, seq)
);
"#,
    // 4 -> 5: event writers announce themselves (a webhook floor passes no
    // event still in flight, whatever the timeouts or the nodes' clocks).
    r#"-- Every statement that writes events first takes a shared advisory lock
-- (held to the end of its transaction, before any seq is drawn), so a
-- process that gets the lock alone knows no event is in flight: only then
-- does a webhook endpoint's floor move (see src/store/postgres/outbox.rs).
-- In the database, so every writer takes it, whatever its version.
CREATE OR REPLACE FUNCTION events_writer_lock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(7022647185681837684);
    RETURN NULL;
END
$$;
CREATE TRIGGER events_writer_lock BEFORE INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_writer_lock();
"#,
    // 5 -> 6: key row seals, account values sealed (bound by code at the
    // first start with the KEK: `bind_existing_rows`).
    r#"ALTER TABLE signing_keys ADD COLUMN row_seal BYTEA;
ALTER TABLE accounts ALTER COLUMN session_state TYPE BYTEA USING convert_to(session_state, 'UTF8'),
    ALTER COLUMN extra TYPE BYTEA USING convert_to(extra, 'UTF8');
ALTER TABLE meta ADD COLUMN rows_bound BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE meta ALTER COLUMN rows_bound SET DEFAULT true;
"#,
    // 6 -> 7: each event's trace (W3C trace id of the request).
    r#"ALTER TABLE events ADD COLUMN trace_id TEXT COLLATE "C";
"#,
    // 7 -> 8: where and when each session was created and last seen.
    r#"ALTER TABLE sessions ADD COLUMN created_at BIGINT, ADD COLUMN last_seen_at BIGINT,
    ADD COLUMN user_agent TEXT, ADD COLUMN ip TEXT;
"#,
];

/// The advisory lock every node takes to create or migrate the schema (a
/// constant: "authstore" in ASCII, folded into 64 bits).
pub const MIGRATION_LOCK: i64 = 0x6175_7468_7374_6f72;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "the database is at schema version {found}, written by a newer authstore; this build \
         knows versions up to {latest}. Upgrade every node before starting this one"
    )]
    TooNew { found: i32, latest: i32 },
    #[error(
        "the database has tables but no authstore schema (no meta table); point database at \
         an empty database of its own"
    )]
    Foreign,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tokio_postgres::Error> for SchemaError {
    fn from(e: tokio_postgres::Error) -> Self {
        SchemaError::Store(e.into())
    }
}

/// Brings the database to [`VERSION`], creating the schema on an empty one.
/// Returns the version found before (0 for an empty database).
pub async fn migrate(client: &mut Client) -> Result<i32, SchemaError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let has_meta: bool = tx
        .query_one("SELECT to_regclass('meta') IS NOT NULL", &[])
        .await?
        .try_get(0)?;
    let found = if has_meta {
        tx.query_one("SELECT schema_version FROM meta WHERE id = 1", &[])
            .await?
            .try_get(0)?
    } else {
        let has_users: bool = tx
            .query_one("SELECT to_regclass('users') IS NOT NULL", &[])
            .await?
            .try_get(0)?;
        if has_users {
            return Err(SchemaError::Foreign);
        }
        tx.batch_execute(SCHEMA).await?;
        tx.execute(
            "INSERT INTO meta (id, schema_version, key_set_version, kek_id) VALUES (1, $1, 0, NULL)",
            &[&VERSION],
        )
        .await?;
        0
    };
    if found > VERSION {
        return Err(SchemaError::TooNew {
            found,
            latest: VERSION,
        });
    }
    if found > 0 && found < VERSION {
        for (from, step) in (found..).zip(STEPS.iter().skip((found - 1) as usize)) {
            tx.batch_execute(step).await?;
            log::info!("schema migrated from version {from} to {}", from + 1);
        }
        tx.execute(
            "UPDATE meta SET schema_version = $1 WHERE id = 1",
            &[&VERSION],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(found)
}
