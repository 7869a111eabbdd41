//! Storage behind narrow traits, one per kind of caller.
//!
//! * [`AdapterStore`]: the 19 Auth.js adapter methods (`http::adapter`);
//! * [`KeyStore`]: the signing key set (`issuer`);
//! * [`Maintenance`]: purging and health (`jobs`, `/readyz`).
//!
//! A backend implements all three ([`Store`]); `store::sqlite` and
//! `store::postgres` are the only code that speaks SQL. Rules that belong to
//! Auth.js rather than to a database (email normalization, id generation)
//! are applied before a call reaches the store (`model`). Failures are
//! [`StoreError`]s; `http/` alone turns them into what a client reads.

pub mod console;
pub mod error;
pub mod events;
pub mod import;
#[cfg(test)]
pub mod memory;
pub mod postgres;
pub mod sealing;
pub mod sessions;
pub mod sqlite;

pub use self::console::ConsoleStore;
pub use self::error::{Duplicate, Entity, Result, StoreError};
pub use self::sessions::SessionsStore;

use crate::model::{
    Account, AccountKey, Authenticator, Session, SessionAndUser, SessionOrigin, SessionPatch, User,
    UserPatch, VerificationToken,
};
use crate::timestamp::Timestamp;
use async_trait::async_trait;
use std::fmt;

/// A signing key as the store hands it out: its private half already
/// opened (the store seals it under the KEK at rest). Its lifecycle state is
/// derived from the clock by `issuer::keys`.
#[derive(Clone)]
pub struct KeyRecord {
    pub kid: String,
    pub algorithm: String,
    /// SubjectPublicKeyInfo DER: what the JWKS publishes.
    pub public_key_der: Vec<u8>,
    /// PKCS#8 DER while the key may sign; `None` once it retired (erased).
    /// Never logged: `Debug` leaves it out.
    pub private_key_der: Option<Vec<u8>>,
    pub created_at: Timestamp,
    pub signs_from: Timestamp,
    pub retires_at: Option<Timestamp>,
    pub unpublish_at: Option<Timestamp>,
}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("has_private_key", &self.private_key_der.is_some())
            .field("created_at", &self.created_at)
            .field("signs_from", &self.signs_from)
            .field("retires_at", &self.retires_at)
            .field("unpublish_at", &self.unpublish_at)
            .finish_non_exhaustive()
    }
}

/// The key set as one snapshot: its keys and the version they are at.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    /// Bumped by every change; changes are compare-and-swapped against it.
    pub version: i64,
    pub keys: Vec<KeyRecord>,
    /// Kids of rows that fail their seal (written without the KEK): left
    /// out of `keys`, so never published or used.
    pub refused: Vec<String>,
}

/// Changes to the key set, applied together in one transaction.
#[derive(Debug, Default)]
pub struct KeyChanges {
    pub insert: Vec<KeyRecord>,
    /// Rows whose schedule (`signs_from`, `retires_at`, `unpublish_at`) changed.
    pub reschedule: Vec<KeyRecord>,
    /// Keys whose private half is erased (they will never sign again).
    pub erase: Vec<String>,
    pub delete: Vec<String>,
}

impl KeyChanges {
    pub fn is_empty(&self) -> bool {
        self.insert.is_empty()
            && self.reschedule.is_empty()
            && self.erase.is_empty()
            && self.delete.is_empty()
    }
}

/// What became of a compare-and-swap on the key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    Applied,
    /// Another process changed the key set since it was read: nothing was
    /// written; re-read and plan again.
    Stale,
}

/// How many expired rows one purge pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub sessions: usize,
    pub verification_tokens: usize,
    /// Events past their retention.
    pub events: usize,
}

impl Purged {
    /// Whether any table filled its batch (so more may be left).
    pub fn filled(&self, batch: usize) -> bool {
        self.sessions >= batch || self.verification_tokens >= batch || self.events >= batch
    }
}

/// How much room the database takes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StorageBytes {
    /// The database file, or PostgreSQL's database.
    pub database: u64,
    /// SQLite's write-ahead log (PostgreSQL's WAL is the server's, not ours).
    pub wal: Option<u64>,
}

/// The Auth.js `Adapter` interface, one method each.
#[async_trait]
pub trait AdapterStore: Send + Sync + 'static {
    /// Stores a user whose id and email the caller has already settled
    /// (`model::NewUser::into_user`).
    async fn create_user(&self, user: User) -> Result<User>;
    async fn get_user(&self, id: &str) -> Result<Option<User>>;
    async fn get_user_by_email(&self, email: &str) -> Result<Option<User>>;
    async fn get_user_by_account(&self, key: &AccountKey) -> Result<Option<User>>;
    /// Fails with `NotFound` when no user has the patch's id.
    async fn update_user(&self, patch: UserPatch) -> Result<User>;
    /// Removes the user with their sessions, accounts and authenticators.
    async fn delete_user(&self, id: &str) -> Result<Option<User>>;

    async fn link_account(&self, account: Account) -> Result<Account>;
    async fn unlink_account(&self, key: &AccountKey) -> Result<Option<Account>>;
    async fn get_account(&self, key: &AccountKey) -> Result<Option<Account>>;

    /// Stores a session with where it came from (`origin`, beside Auth.js's fields).
    async fn create_session(&self, session: Session, origin: SessionOrigin) -> Result<Session>;
    /// `None` when the session or its user is gone. Expired sessions are
    /// returned: Auth.js checks `expires` itself and deletes them.
    async fn get_session_and_user(&self, session_token: &str) -> Result<Option<SessionAndUser>>;
    async fn update_session(&self, patch: SessionPatch) -> Result<Option<Session>>;
    async fn delete_session(&self, session_token: &str) -> Result<Option<Session>>;

    async fn create_verification_token(
        &self,
        token: VerificationToken,
    ) -> Result<VerificationToken>;
    /// Deletes and returns the token matching both fields, in one statement.
    async fn use_verification_token(
        &self,
        identifier: &str,
        token: &str,
    ) -> Result<Option<VerificationToken>>;

    async fn create_authenticator(&self, authenticator: Authenticator) -> Result<Authenticator>;
    async fn get_authenticator(&self, credential_id: &str) -> Result<Option<Authenticator>>;
    async fn list_authenticators_by_user_id(&self, user_id: &str) -> Result<Vec<Authenticator>>;
    /// Fails with `NotFound` when no authenticator has the credential id.
    async fn update_authenticator_counter(
        &self,
        credential_id: &str,
        counter: u32,
    ) -> Result<Authenticator>;
}

/// Work no request asks for: purging and health.
#[async_trait]
pub trait Maintenance: Send + Sync + 'static {
    /// Deletes up to `batch` expired sessions and verification tokens. Safe
    /// to run on many processes at once: no row is deleted twice and no pass
    /// waits for another.
    async fn purge_expired(&self, now: Timestamp, batch: usize) -> Result<Purged>;
    /// Answers when the database does.
    async fn ping(&self) -> Result<()>;
    /// How many users the database holds (operator tools: imports, the console).
    async fn count_users(&self) -> Result<u64>;
    /// The database's size on disk (metrics, the console).
    async fn storage_bytes(&self) -> Result<StorageBytes>;
    /// Stored events, newest first (`authstore audit`).
    async fn events(&self, filter: &events::EventFilter) -> Result<Vec<events::Event>>;
}

/// The issuer's signing keys.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// The key set, read in one snapshot.
    async fn signing_keys(&self) -> Result<KeySet>;
    /// The key set's version alone: cheap enough to poll every second.
    async fn key_set_version(&self) -> Result<i64>;
    /// Applies `changes` only if the key set is still at `expected_version`,
    /// and bumps the version in the same transaction.
    async fn save_signing_keys(&self, expected_version: i64, changes: KeyChanges) -> Result<Saved>;
}

/// A whole backend. An `Arc<dyn Store>` coerces to any one of its parts
/// (`Arc<dyn KeyStore>` ...) for callers that take only that.
pub trait Store:
    AdapterStore
    + KeyStore
    + Maintenance
    + ConsoleStore
    + SessionsStore
    + events::Outbox
    + import::ImportStore
{
}

impl<
        T: AdapterStore
            + KeyStore
            + Maintenance
            + ConsoleStore
            + SessionsStore
            + events::Outbox
            + import::ImportStore,
    > Store for T
{
}

/// SHA-256 of a session token: the only form in which a session, a console
/// session or a console link is stored.
pub type Digest = [u8; 32];

/// The digest under which `session_token` is stored.
pub fn token_digest(session_token: &str) -> Digest {
    openssl::sha::sha256(session_token.as_bytes())
}

/// A session's `sid` in tokens and events: 128 bits of a hash of its stored
/// digest, so it names the session without being anything that finds or
/// opens it (the digest is the database's key; this is not).
pub fn session_id(digest: &Digest) -> String {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    let mut hasher = openssl::sha::Sha256::new();
    hasher.update(b"authstore sid\0");
    hasher.update(digest);
    URL_SAFE_NO_PAD.encode(&hasher.finish()[..16])
}
