//! Creating and migrating the schema, versioned by `PRAGMA user_version`.

use rusqlite::Connection;

/// The whole schema of the newest version, with every index.
const SCHEMA: &str = include_str!("../../../schema.sql");

/// The schema version this build writes.
pub const VERSION: i64 = 1;
/// `MIGRATIONS[v - 1]` upgrades a database from version `v` to `v + 1`.
const MIGRATIONS: [&str; (VERSION - 1) as usize] = [];

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "the database is at schema version {found}, written by a newer authstore; \
         this build knows versions up to {VERSION}. Upgrade authstore, or use another database file"
    )]
    TooNew { found: i64 },
    #[error("could not migrate the schema: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Brings the database to [`VERSION`], one transaction per step.
pub fn migrate(conn: &mut Connection) -> Result<(), SchemaError> {
    loop {
        let found: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if found > VERSION {
            return Err(SchemaError::TooNew { found });
        }
        if found == VERSION {
            return Ok(());
        }
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Re-read inside the lock: another process may have migrated meanwhile.
        let locked: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if locked == 0 {
            tx.execute_batch(SCHEMA)?;
            tx.pragma_update(None, "user_version", VERSION)?;
            log::info!("database schema created at version {VERSION}");
        } else if locked == found {
            tx.execute_batch(MIGRATIONS[(found - 1) as usize])?;
            tx.pragma_update(None, "user_version", found + 1)?;
            log::info!("database schema migrated to version {}", found + 1);
        }
        tx.commit()?;
    }
}
