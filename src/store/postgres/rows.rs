//! Mapping between PostgreSQL rows and models, and its errors to store errors.

use crate::kek::Kek;
use crate::model::{Account, Authenticator, Extra, User};
use crate::store::sealing::{self, TokenField};
use crate::store::{Digest, Duplicate, StoreError};
use crate::timestamp::Timestamp;
use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

pub const USER_COLUMNS: &str = "id, email, name, email_verified, image, extra";
pub const ACCOUNT_COLUMNS: &str = "user_id, type, provider, provider_account_id, refresh_token, \
     access_token, expires_at, token_type, scope, id_token, session_state, extra";
pub const AUTHENTICATOR_COLUMNS: &str = "credential_id, user_id, provider_account_id, \
     credential_public_key, counter, credential_device_type, credential_backed_up, transports";

/// Reads a user from six columns starting at `at` (in [`USER_COLUMNS`] order).
pub fn user(row: &Row, at: usize) -> Result<User, StoreError> {
    Ok(User {
        id: row.try_get(at)?,
        email: row.try_get(at + 1)?,
        name: row.try_get(at + 2)?,
        email_verified: row
            .try_get::<_, Option<i64>>(at + 3)?
            .map(Timestamp::from_millis),
        image: row.try_get(at + 4)?,
        extra: extra(row, at + 5)?,
    })
}

/// Reads a session's token digest from column `at`.
pub fn digest(row: &Row, at: usize) -> Result<Digest, StoreError> {
    let bytes: &[u8] = row.try_get(at)?;
    Digest::try_from(bytes).map_err(|_| StoreError::backend("a session digest is not 32 bytes"))
}

/// Reads an account (in [`ACCOUNT_COLUMNS`] order), opening its sealed values.
pub fn account(row: &Row, kek: &Kek) -> Result<Account, StoreError> {
    let user_id: String = row.try_get(0)?;
    let provider: String = row.try_get(2)?;
    let provider_account_id: String = row.try_get(3)?;
    let owner = sealing::AccountRow {
        provider: &provider,
        provider_account_id: &provider_account_id,
        user_id: &user_id,
    };
    let value = |at: usize, field| -> Result<Option<String>, StoreError> {
        let sealed: Option<&[u8]> = row.try_get(at)?;
        sealing::open_token(kek, owner, field, sealed)
            .map_err(|e| StoreError::backend(format!("an account value does not open: {e}")))
    };
    let extra = match value(11, TokenField::Extra)? {
        None => Extra::new(),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| StoreError::backend(format!("an account's extra is not JSON: {e}")))?,
    };
    Ok(Account {
        kind: row.try_get(1)?,
        refresh_token: value(4, TokenField::RefreshToken)?,
        access_token: value(5, TokenField::AccessToken)?,
        expires_at: row.try_get(6)?,
        token_type: row.try_get(7)?,
        scope: row.try_get(8)?,
        id_token: value(9, TokenField::IdToken)?,
        session_state: value(10, TokenField::SessionState)?,
        extra,
        user_id,
        provider,
        provider_account_id,
    })
}

pub fn authenticator(row: &Row) -> Result<Authenticator, StoreError> {
    let counter: i64 = row.try_get(4)?;
    Ok(Authenticator {
        credential_id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        provider_account_id: row.try_get(2)?,
        credential_public_key: row.try_get(3)?,
        counter: u32::try_from(counter)
            .map_err(|_| StoreError::backend(format!("authenticator counter {counter}")))?,
        credential_device_type: row.try_get(5)?,
        credential_backed_up: row.try_get(6)?,
        transports: row.try_get(7)?,
    })
}

fn extra(row: &Row, at: usize) -> Result<Extra, StoreError> {
    match row.try_get::<_, Option<&str>>(at)? {
        None => Ok(Extra::new()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| StoreError::backend(format!("column {at} is not a JSON object: {e}"))),
    }
}

/// Maps a write's failure: a unique violation becomes `Conflict` (`conflict`
/// picks which from the constraint's name), a foreign key `MissingUser`.
pub fn write_error(
    e: tokio_postgres::Error,
    conflict: impl FnOnce(&str) -> Duplicate,
) -> StoreError {
    match (e.code(), e.as_db_error()) {
        (Some(code), Some(db)) if *code == SqlState::UNIQUE_VIOLATION => {
            StoreError::Conflict(conflict(db.constraint().unwrap_or_default()))
        }
        (Some(code), _) if *code == SqlState::FOREIGN_KEY_VIOLATION => StoreError::MissingUser,
        _ => StoreError::from(e),
    }
}

/// SQLSTATE classes and codes that mean "not now" rather than "wrong": the
/// server is unreachable, shutting down, out of resources, read-only (a
/// standby after a failover), or cancelled a statement past its timeout.
fn retryable(code: &SqlState) -> bool {
    let text = code.code();
    text.starts_with("08") // connection exception
        || text.starts_with("53") // insufficient resources
        || text.starts_with("57P") // operator intervention: shutdown, cannot connect now
        || *code == SqlState::QUERY_CANCELED // statement_timeout
        || *code == SqlState::READ_ONLY_SQL_TRANSACTION
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::LOCK_NOT_AVAILABLE
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            // The message and code only: DETAIL may quote the row's values.
            let text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            return if retryable(db.code()) {
                StoreError::Unavailable(text)
            } else {
                StoreError::backend(text)
            };
        }
        // Without a server error: the connection failed (I/O, connect,
        // timeout, closed, TLS) or a value did not convert (a bug).
        let text = e.to_string();
        let connection = e.is_closed()
            || ["error communicating", "error connecting", "timeout", "TLS"]
                .iter()
                .any(|kind| text.contains(kind));
        if connection {
            let cause = std::error::Error::source(&e)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            StoreError::Unavailable(format!("{text}{cause}"))
        } else {
            StoreError::backend(e)
        }
    }
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => StoreError::from(e),
            PoolError::Timeout(_) => StoreError::Unavailable(
                "no PostgreSQL connection within connect_timeout_secs".into(),
            ),
            PoolError::Closed => StoreError::Unavailable("the connection pool is closed".into()),
            other => StoreError::backend(other.to_string()),
        }
    }
}
