//! What the operator's console reads and changes beyond the adapter methods:
//! its own sign-in links and sessions (stored as SHA-256 digests only), the
//! overview's counts, user search with keyset pagination, and a user's
//! linked accounts, sessions and passkeys.

use super::Result;
use crate::model::{AccountKey, User};
use crate::timestamp::Timestamp;
use async_trait::async_trait;

pub use super::Digest;

/// The overview page's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overview {
    pub users: u64,
    pub live_sessions: u64,
    /// Linked accounts per provider, most first.
    pub accounts_by_provider: Vec<(String, u64)>,
    pub passkeys: u64,
    pub pending_verification_tokens: u64,
}

/// Which field a search matches a prefix of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchField {
    /// Emails are stored lowercased: the prefix is lowercased too.
    Email,
    /// Case-insensitive as the database lowercases (`lower()`: ASCII letters
    /// on SQLite, every letter on PostgreSQL), ordered by that then id. The
    /// prefix and the cursor are lowercased by the database too, so both
    /// sides of every comparison agree.
    Name,
    Id,
}

/// One page of a user search: users whose `field` starts with `prefix`,
/// after `after` in the field's order, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSearch {
    pub field: SearchField,
    pub prefix: String,
    /// The last row of the previous page: its sort key and its id.
    pub after: Option<(String, String)>,
    pub limit: usize,
}

impl UserSearch {
    /// The prefix as compared: emails are stored lowercased by
    /// `normalize_email`; names are lowercased by the database's query.
    pub fn key_prefix(&self) -> String {
        match self.field {
            SearchField::Email => self.prefix.to_lowercase(),
            SearchField::Name | SearchField::Id => self.prefix.clone(),
        }
    }

    /// The least string greater than every string that starts with the
    /// prefix (byte order: U+10FFFF is the greatest character).
    pub fn upper_bound(&self) -> String {
        format!("{}\u{10FFFF}", self.key_prefix())
    }

    /// The sort key of `user` in this search's order (for the next cursor).
    pub fn key_of(&self, user: &User) -> String {
        match self.field {
            SearchField::Email => user.email.clone().unwrap_or_default(),
            SearchField::Name => user.name.clone().unwrap_or_default(),
            SearchField::Id => user.id.clone(),
        }
    }
}

/// A linked account as the console shows it: never its OAuth tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedAccount {
    pub provider: String,
    pub provider_account_id: String,
    pub kind: String,
}

pub use super::sessions::LiveSession;

#[async_trait]
pub trait ConsoleStore: Send + Sync + 'static {
    /// Stores a one-time sign-in link (and drops expired ones).
    async fn create_console_link(
        &self,
        digest: Digest,
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<()>;
    /// Uses up a link: true only for the first use before it expires.
    async fn redeem_console_link(&self, digest: Digest, now: Timestamp) -> Result<bool>;
    /// Stores a console session that lives until `idle_expires` unless
    /// extended (and drops expired ones).
    async fn create_console_session(
        &self,
        digest: Digest,
        now: Timestamp,
        idle_expires: Timestamp,
    ) -> Result<()>;
    /// When a console session stops being valid, if it exists.
    async fn console_session(&self, digest: Digest) -> Result<Option<Timestamp>>;
    /// Moves a console session's idle expiry.
    async fn extend_console_session(&self, digest: Digest, idle_expires: Timestamp) -> Result<()>;
    async fn delete_console_session(&self, digest: Digest) -> Result<()>;
    /// Ends every console session (`console-link --revoke-all`); how many.
    async fn delete_all_console_sessions(&self) -> Result<u64>;

    async fn overview(&self, now: Timestamp) -> Result<Overview>;
    /// One page of users (see [`UserSearch`]).
    async fn search_users(&self, search: &UserSearch) -> Result<Vec<User>>;
    async fn user_accounts(&self, user_id: &str) -> Result<Vec<LinkedAccount>>;
    /// Deletes a user as the adapter's `deleteUser` does, recording `actor`.
    async fn delete_user_as(&self, user_id: &str, actor: &str) -> Result<Option<User>>;
    /// Deletes one of the user's passkeys, and the `webauthn` account Auth.js
    /// linked for it; false when the user has no such passkey.
    async fn delete_authenticator(&self, user_id: &str, credential_id: &str) -> Result<bool>;
    /// Unlinks one of the user's accounts as the adapter's `unlinkAccount`
    /// does, recording `actor`; false when the user has no such account.
    async fn unlink_account_as(&self, user_id: &str, key: &AccountKey, actor: &str)
        -> Result<bool>;
}
