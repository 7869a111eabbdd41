//! Mapping between rows and models, and SQLite errors to store errors.

use crate::kek::Kek;
use crate::model::{Account, Authenticator, Extra, User};
use crate::store::sealing::{self, TokenField};
use crate::store::{Duplicate, KeyRecord, StoreError as Error};
use crate::timestamp::Timestamp;
use rusqlite::{ffi, Row};

// Column lists as macros, so that queries are `concat!`-ed string literals
// rather than strings formatted on every call.
macro_rules! user_columns {
    () => {
        "id, email, name, email_verified, image, extra"
    };
}
macro_rules! account_columns {
    () => {
        "user_id, type, provider, provider_account_id, refresh_token, access_token, \
         expires_at, token_type, scope, id_token, session_state, extra"
    };
}
macro_rules! authenticator_columns {
    () => {
        "credential_id, user_id, provider_account_id, credential_public_key, counter, \
         credential_device_type, credential_backed_up, transports"
    };
}

/// Reads a user from six columns starting at `at` (in `user_columns!()` order).
pub fn user(row: &Row<'_>, at: usize) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(at)?,
        email: row.get(at + 1)?,
        name: row.get(at + 2)?,
        email_verified: row
            .get::<_, Option<i64>>(at + 3)?
            .map(Timestamp::from_millis),
        image: row.get(at + 4)?,
        extra: extra(row, at + 5)?,
    })
}

/// Reads an account (in `account_columns!()` order), opening its sealed
/// OAuth tokens.
pub fn account(row: &Row<'_>, kek: &Kek) -> rusqlite::Result<Account> {
    let user_id: String = row.get(0)?;
    let provider: String = row.get(2)?;
    let provider_account_id: String = row.get(3)?;
    let owner = sealing::AccountRow {
        provider: &provider,
        provider_account_id: &provider_account_id,
        user_id: &user_id,
    };
    let value = |at: usize, field| -> rusqlite::Result<Option<String>> {
        let sealed = row.get_ref(at)?.as_blob_or_null()?;
        sealing::open_token(kek, owner, field, sealed).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(at, rusqlite::types::Type::Blob, e.into())
        })
    };
    let extra = match value(11, TokenField::Extra)? {
        None => Extra::new(),
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(11, rusqlite::types::Type::Blob, e.into())
        })?,
    };
    Ok(Account {
        kind: row.get(1)?,
        refresh_token: value(4, TokenField::RefreshToken)?,
        access_token: value(5, TokenField::AccessToken)?,
        expires_at: row.get(6)?,
        token_type: row.get(7)?,
        scope: row.get(8)?,
        id_token: value(9, TokenField::IdToken)?,
        session_state: value(10, TokenField::SessionState)?,
        extra,
        user_id,
        provider,
        provider_account_id,
    })
}

/// A key row's public fields from `kid, algorithm, public_key, created_at,
/// signs_from, retires_at, unpublish_at` (its private half left out).
pub fn key_row(row: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    Ok(KeyRecord {
        kid: row.get(0)?,
        algorithm: row.get(1)?,
        public_key_der: row.get(2)?,
        private_key_der: None,
        created_at: Timestamp::from_millis(row.get(3)?),
        signs_from: Timestamp::from_millis(row.get(4)?),
        retires_at: row.get::<_, Option<i64>>(5)?.map(Timestamp::from_millis),
        unpublish_at: row.get::<_, Option<i64>>(6)?.map(Timestamp::from_millis),
    })
}

pub fn authenticator(row: &Row<'_>) -> rusqlite::Result<Authenticator> {
    Ok(Authenticator {
        credential_id: row.get(0)?,
        user_id: row.get(1)?,
        provider_account_id: row.get(2)?,
        credential_public_key: row.get(3)?,
        counter: row.get(4)?,
        credential_device_type: row.get(5)?,
        credential_backed_up: row.get(6)?,
        transports: row.get(7)?,
    })
}

fn extra(row: &Row<'_>, at: usize) -> rusqlite::Result<Extra> {
    match row.get_ref(at)?.as_str_or_null()? {
        None => Ok(Extra::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(at, rusqlite::types::Type::Text, e.into())
        }),
    }
}

/// The `extra` column value: NULL when there is nothing extra.
pub fn extra_json(extra: &Extra) -> Option<String> {
    (!extra.is_empty()).then(|| serde_json::Value::Object(extra.clone()).to_string())
}

pub fn millis(t: Option<Timestamp>) -> Option<i64> {
    t.map(Timestamp::millis)
}

/// What a constraint failure means for the caller.
pub enum Violation {
    /// A UNIQUE or PRIMARY KEY constraint; carries SQLite's text naming the
    /// columns (never the values), for choosing a message.
    Unique(String),
    /// A FOREIGN KEY constraint: the referenced user does not exist.
    MissingUser,
}

pub fn violation(e: &rusqlite::Error) -> Option<Violation> {
    match e {
        rusqlite::Error::SqliteFailure(failure, text) => match failure.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                Some(Violation::Unique(text.clone().unwrap_or_default()))
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => Some(Violation::MissingUser),
            _ => None,
        },
        _ => None,
    }
}

/// Maps a write's failure: a duplicate becomes `Conflict` (`conflict` picks
/// which, from the columns SQLite names), a missing user `MissingUser`,
/// anything else goes through `From`.
pub fn insert_error(e: rusqlite::Error, conflict: impl FnOnce(&str) -> Duplicate) -> Error {
    match violation(&e) {
        Some(Violation::Unique(columns)) => Error::Conflict(conflict(&columns)),
        Some(Violation::MissingUser) => Error::MissingUser,
        None => Error::from(e),
    }
}

// How SQLite's failures become store errors.
impl From<rusqlite::Error> for Error {
    /// A failure of the storage itself is `Unavailable` (the client may
    /// retry); anything else is a bug.
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::*;
        match &e {
            rusqlite::Error::SqliteFailure(failure, _)
                if matches!(
                    failure.code,
                    DiskFull
                        | DatabaseBusy
                        | DatabaseLocked
                        | ReadOnly
                        | SystemIoFailure
                        | CannotOpen
                        | OutOfMemory
                        | FileLockingProtocolFailed
                ) =>
            {
                Error::Unavailable(e.to_string())
            }
            _ => Error::backend(e),
        }
    }
}

impl From<r2d2::Error> for Error {
    /// The read pool had no connection to give within its timeout.
    fn from(e: r2d2::Error) -> Self {
        Error::Unavailable(format!("no read connection: {e}"))
    }
}
