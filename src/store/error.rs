//! What can go wrong in a store, in the store's own words.
//!
//! Backends report which row or constraint failed; `http/` alone decides the
//! wire code and the text a client reads (see `http::store_errors`).

use crate::error::BoxError;
use std::fmt;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An update named a row that does not exist.
    #[error("no {0} matches")]
    NotFound(Entity),
    /// A unique constraint refused the write.
    #[error("the {0} already exists")]
    Conflict(Duplicate),
    /// A row referred to a user that does not exist (a foreign key).
    #[error("the user referred to does not exist")]
    MissingUser,
    /// The storage cannot serve this now (disk full, read-only, I/O error,
    /// a lock or a connection not had in time, the server down): the caller
    /// may retry. The reason is for the log.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug, or data the store cannot read.
    #[error("storage error: {0}")]
    Backend(BoxError),
}

/// The rows an update can miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    User,
    Authenticator,
}

/// The unique constraints a write can break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplicate {
    UserId,
    UserEmail,
    Account,
    Session,
    VerificationToken,
    Authenticator,
    SigningKey,
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Entity::User => "user",
            Entity::Authenticator => "authenticator",
        })
    }
}

impl fmt::Display for Duplicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Duplicate::UserId => "user id",
            Duplicate::UserEmail => "user email",
            Duplicate::Account => "account",
            Duplicate::Session => "session",
            Duplicate::VerificationToken => "verification token",
            Duplicate::Authenticator => "authenticator",
            Duplicate::SigningKey => "signing key",
        })
    }
}

impl StoreError {
    pub fn backend(cause: impl Into<BoxError>) -> Self {
        StoreError::Backend(cause.into())
    }

    /// The text for the server log, with the whole chain of causes.
    pub fn log_text(&self) -> String {
        let mut text = self.to_string();
        if let StoreError::Backend(cause) = self {
            let mut source = cause.source();
            while let Some(next) = source {
                text.push_str(&format!(": {next}"));
                source = next.source();
            }
        }
        text
    }

    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}
