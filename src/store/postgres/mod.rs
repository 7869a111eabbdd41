//! The PostgreSQL backend: a pool of connections to the primary, shared by
//! every request of this node; any number of nodes on one database.
//!
//! Every call goes to the primary: reads from an asynchronous standby saw a
//! deleted session in 50-65% of immediate reads (measured while planning), and
//! a revoked session must be gone everywhere at once. The pool and its
//! connections live on a small runtime of their own, so that a connection
//! made while serving one HTTP worker keeps working for every other (and
//! outlives none of them).

mod console;
mod outbox;
mod rows;
pub mod schema;
pub mod settings;

use self::rows::{write_error, ACCOUNT_COLUMNS, AUTHENTICATOR_COLUMNS, USER_COLUMNS};
use super::import::{self, ImportCounts, ImportRows, ImportStore, RowRefused};
use super::sealing::{self, TokenField};
use super::{
    AdapterStore, Duplicate, Entity, KeyChanges, KeyRecord, KeySet, KeyStore, Maintenance, Purged,
    Result, Saved, StorageBytes, StoreError,
};
use crate::kek::Kek;
use crate::model::{
    Account, AccountKey, Authenticator, Session, SessionAndUser, SessionPatch, User, UserPatch,
    VerificationToken,
};
use crate::store::events::{new_id, Event, EventFilter, EventType, RETENTION_DAYS};
use crate::store::session_id;
use crate::timestamp::Timestamp;
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use openssl::sha::sha256;
use openssl::ssl::{SslConnector, SslMethod};
use postgres_openssl::MakeTlsConnector;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::GenericClient;

#[derive(Clone)]
pub struct PostgresOptions {
    /// libpq's URL form; its password never reaches a log or an error.
    pub url: String,
    pub pool_size: u32,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
    pub ca_file: Option<PathBuf>,
    /// Threads of the runtime that drives the connections.
    pub threads: usize,
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &crate::urls::redact_password(&self.url))
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("ca_file", &self.ca_file)
            .field("threads", &self.threads)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the database URL is not a valid PostgreSQL URL: {0}")]
    Url(String),
    #[error("cannot set up TLS for PostgreSQL: {0}")]
    Tls(String),
    #[error("cannot start the PostgreSQL runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("cannot reach PostgreSQL at {at}: {reason}")]
    Connect { at: String, reason: String },
    #[error("PostgreSQL at {at}: {source}")]
    Schema {
        at: String,
        source: schema::SchemaError,
    },
    #[error(
        "the database at {at} is sealed under key-encryption key {sealed_under}, not {given}; \
         every node must be given the same key_encryption_key"
    )]
    WrongKek {
        at: String,
        sealed_under: String,
        given: String,
    },
    #[error(
        "the key-encryption key is too weak to seal a new database: it must carry at least 256 \
         bits, as `authstore secret` prints (43 base64url characters, or 64 hex digits)"
    )]
    WeakKek,
}

pub struct PostgresStore {
    pool: Pool,
    kek: Arc<Kek>,
    handle: tokio::runtime::Handle,
    /// Wakes the webhook workers after an event commits.
    events: crate::store::events::EventSignal,
    /// Dropped in the background: a runtime may not be dropped inside another.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.pool.close();
        if let Some(runtime) = self.runtime.take() {
            // Outside any runtime (a command ending), wait for the workers:
            // left running into the process's exit, they could use OpenSSL
            // while its exit handlers tear it down. Inside one, a runtime
            // may not block, so it stops in the background.
            match tokio::runtime::Handle::try_current() {
                Err(_) => runtime.shutdown_timeout(Duration::from_secs(2)),
                Ok(_) => runtime.shutdown_background(),
            }
        }
    }
}

/// The session lookup of every page view: one statement, two primary-key probes.
const SESSION_AND_USER: &str =
    "SELECT s.expires, u.id, u.email, u.name, u.email_verified, u.image, u.extra \
     FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1";

impl PostgresStore {
    /// Connects, creates or migrates the schema (once, under a lock, however
    /// many nodes start together) and binds the database to `kek`. `at` is
    /// the URL with its password removed, for messages.
    pub async fn open(
        options: &PostgresOptions,
        kek: Arc<Kek>,
        at: &str,
    ) -> Result<Self, OpenError> {
        let mut config: tokio_postgres::Config = options
            .url
            .parse()
            .map_err(|e: tokio_postgres::Error| OpenError::Url(e.to_string()))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        // A peer that vanished (a partition, a failed-over host) fails the
        // call instead of hanging it.
        config.tcp_user_timeout(options.connect_timeout + options.statement_timeout);
        config.application_name("authstore");
        let timeout = format!(
            "-c statement_timeout={}",
            options.statement_timeout.as_millis()
        );
        let merged = match config.get_options() {
            Some(given) => format!("{given} {timeout}"),
            None => timeout,
        };
        config.options(merged);

        let mut tls =
            SslConnector::builder(SslMethod::tls()).map_err(|e| OpenError::Tls(e.to_string()))?;
        if let Some(ca) = &options.ca_file {
            tls.set_ca_file(ca)
                .map_err(|e| OpenError::Tls(format!("{}: {e}", ca.display())))?;
        }
        let tls = MakeTlsConnector::new(tls.build());
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                // A connection that broke is found by its next statement's
                // error; checking each one on checkout costs a round trip.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1) as usize)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| OpenError::Url(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.threads.max(1))
            .thread_name("authstore-postgres")
            .enable_all()
            .build()?;
        let mut store = PostgresStore {
            pool,
            kek,
            handle: runtime.handle().clone(),
            events: Default::default(),
            runtime: Some(runtime),
        };
        let at = at.to_owned();
        let (pool, kek) = (store.pool.clone(), store.kek.clone());
        let setup = store.handle.spawn(async move {
            let mut client = pool.get().await.map_err(|e| OpenError::Connect {
                at: at.clone(),
                reason: StoreError::from(e).log_text(),
            })?;
            let found = schema::migrate(&mut client)
                .await
                .map_err(|source| OpenError::Schema {
                    at: at.clone(),
                    source,
                })?;
            if found == 0 {
                log::info!("created the authstore schema (version {})", schema::VERSION);
            }
            let kek = bind_kek(&client, kek, &at).await?;
            bind_existing_rows(&mut client, &kek)
                .await
                .map_err(|e| OpenError::Connect {
                    at: at.clone(),
                    reason: format!("binding the rows of schema version 6: {}", e.log_text()),
                })?;
            Ok(kek)
        });
        match setup.await {
            Ok(result) => result.map(|kek| {
                store.kek = kek;
                store
            }),
            Err(e) => Err(OpenError::Connect {
                at: "PostgreSQL".into(),
                reason: e.to_string(),
            }),
        }
    }

    /// Deletes a user (and, by cascade, everything of theirs) and records it,
    /// in one statement.
    pub(super) async fn delete_user_by(
        &self,
        id: &str,
        actor: Option<String>,
    ) -> Result<Option<User>> {
        let id = id.to_owned();
        let result = self
            .with(move |client, _| async move {
                let statement = client
                    .prepare_cached(&format!(
                        "WITH gone AS (DELETE FROM users WHERE id = $1 RETURNING {USER_COLUMNS}), \
                     logged AS (INSERT INTO events (id, type, user_id, actor, at) \
                     SELECT $2, 'user.deleted', id, $3, $4 FROM gone) \
                     SELECT {USER_COLUMNS} FROM gone"
                    ))
                    .await?;
                let (event, at) = (new_id(), Timestamp::now().millis());
                client
                    .query_opt(&statement, &[&id, &event, &actor, &at])
                    .await?
                    .map(|row| rows::user(&row, 0))
                    .transpose()
            })
            .await;
        // Wakes this process's webhook workers (a refused write wakes them for nothing).
        self.events.written();
        result
    }

    /// Runs `work` with a pooled connection on the backend's runtime.
    async fn with<T, F, Fut>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Object, Arc<Kek>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let (pool, kek) = (self.pool.clone(), self.kek.clone());
        self.handle
            .spawn(async move {
                let client = pool.get().await?;
                work(client, kek).await
            })
            .await
            .map_err(|e| StoreError::backend(format!("a PostgreSQL call did not finish: {e}")))?
    }
}

/// Records `kek` as the database's KEK when none is yet (a compare-and-swap:
/// of two nodes binding different KEKs at once, one is refused), and refuses
/// a database sealed under another.
///
/// Returns the KEK to use: `kek`, or the same key derived under the salt
/// another node recorded first. A key too weak for a new database is
/// refused before anything is recorded.
async fn bind_kek(client: &Object, kek: Arc<Kek>, at: &str) -> Result<Arc<Kek>, OpenError> {
    let failed = |e: tokio_postgres::Error| OpenError::Connect {
        at: at.to_owned(),
        reason: StoreError::from(e).log_text(),
    };
    let recorded: Option<String> = client
        .query_one("SELECT kek_id FROM meta WHERE id = 1", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(failed)?;
    if recorded.is_none() && !crate::kek::carries_256_bits_of(&kek) {
        return Err(OpenError::WeakKek);
    }
    client
        .execute(
            "UPDATE meta SET kek_id = $1 WHERE id = 1 AND kek_id IS NULL",
            &[&kek.id()],
        )
        .await
        .map_err(failed)?;
    let bound: Option<String> = client
        .query_one("SELECT kek_id FROM meta WHERE id = 1", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(failed)?;
    let matching = match &bound {
        Some(id) if id == kek.id() => return Ok(kek),
        Some(id) => kek.matching(id).map_err(|e| OpenError::Connect {
            at: at.to_owned(),
            reason: format!("cannot derive the key-encryption key: {e}"),
        })?,
        None => None,
    };
    match matching {
        Some(same) => {
            crate::kek::warn_if_weak(&same);
            Ok(Arc::new(same))
        }
        None => Err(OpenError::WrongKek {
            at: at.to_owned(),
            sealed_under: bound.unwrap_or_default(),
            given: kek.id().to_owned(),
        }),
    }
}

/// Once, after the upgrade to schema version 6 (under the migration lock,
/// however many nodes start together): seals every key row, and re-seals
/// every account value bound to its owner (tokens sealed the first way,
/// `session_state` and `extra` as they were).
async fn bind_existing_rows(client: &mut Object, kek: &Kek) -> Result<()> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&schema::MIGRATION_LOCK],
    )
    .await?;
    let bound: bool = tx
        .query_one("SELECT rows_bound FROM meta WHERE id = 1", &[])
        .await?
        .try_get(0)?;
    if bound {
        return Ok(());
    }
    for row in tx
        .query(
            "SELECT kid, algorithm, public_key, created_at, signs_from, retires_at, unpublish_at \
             FROM signing_keys",
            &[],
        )
        .await?
    {
        let key = KeyRecord {
            kid: row.try_get(0)?,
            algorithm: row.try_get(1)?,
            public_key_der: row.try_get(2)?,
            private_key_der: None,
            created_at: Timestamp::from_millis(row.try_get(3)?),
            signs_from: Timestamp::from_millis(row.try_get(4)?),
            retires_at: row
                .try_get::<_, Option<i64>>(5)?
                .map(Timestamp::from_millis),
            unpublish_at: row
                .try_get::<_, Option<i64>>(6)?
                .map(Timestamp::from_millis),
        };
        tx.execute(
            "UPDATE signing_keys SET row_seal = $2 WHERE kid = $1",
            &[&key.kid, &sealing::seal_key_row(kek, &key)?],
        )
        .await?;
    }
    let fields = [
        TokenField::RefreshToken,
        TokenField::AccessToken,
        TokenField::IdToken,
    ];
    for row in tx
        .query(
            "SELECT provider, provider_account_id, user_id, refresh_token, access_token, \
             id_token, session_state, extra FROM accounts",
            &[],
        )
        .await?
    {
        let (provider, provider_account_id, user_id): (String, String, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let owner = sealing::AccountRow {
            provider: &provider,
            provider_account_id: &provider_account_id,
            user_id: &user_id,
        };
        let mut sealed: Vec<Option<Vec<u8>>> = Vec::with_capacity(5);
        for (at, field) in (3..).zip(fields) {
            let old: Option<&[u8]> = row.try_get(at)?;
            let plain =
                sealing::first::open_token(kek, &provider, &provider_account_id, field, old)
                    .map_err(|e| {
                        StoreError::backend(format!("an account token does not open: {e}"))
                    })?;
            sealed.push(
                sealing::seal_token(kek, owner, field, plain.as_deref())
                    .map_err(StoreError::backend)?,
            );
        }
        for (at, field) in [(6, TokenField::SessionState), (7, TokenField::Extra)] {
            let plain: Option<&[u8]> = row.try_get(at)?;
            let plain = plain.map(String::from_utf8_lossy);
            sealed.push(
                sealing::seal_token(kek, owner, field, plain.as_deref())
                    .map_err(StoreError::backend)?,
            );
        }
        tx.execute(
            "UPDATE accounts SET refresh_token = $3, access_token = $4, id_token = $5, \
             session_state = $6, extra = $7 WHERE provider = $1 AND provider_account_id = $2",
            &[
                &provider,
                &provider_account_id,
                &sealed.first(),
                &sealed.get(1),
                &sealed.get(2),
                &sealed.get(3),
                &sealed.get(4),
            ],
        )
        .await?;
    }
    tx.execute("UPDATE meta SET rows_bound = true WHERE id = 1", &[])
        .await?;
    tx.commit().await?;
    log::info!("bound the rows already in the database to the key-encryption key (schema 6)");
    Ok(())
}

fn millis(t: Option<Timestamp>) -> Option<i64> {
    t.map(Timestamp::millis)
}

/// The `extra` column value: NULL when there is nothing extra.
fn extra_json(user_extra: &crate::model::Extra) -> Option<String> {
    (!user_extra.is_empty()).then(|| serde_json::Value::Object(user_extra.clone()).to_string())
}

fn user_conflict(constraint: &str) -> Duplicate {
    if constraint == "users_email_key" {
        Duplicate::UserEmail
    } else {
        Duplicate::UserId
    }
}

async fn select_user(
    client: &impl deadpool_postgres::GenericClient,
    id: &str,
    lock: bool,
) -> Result<Option<User>> {
    let sql = if lock {
        "SELECT id, email, name, email_verified, image, extra FROM users WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT id, email, name, email_verified, image, extra FROM users WHERE id = $1"
    };
    let statement = client.prepare_cached(sql).await?;
    client
        .query_opt(&statement, &[&id])
        .await?
        .map(|row| rows::user(&row, 0))
        .transpose()
}

// The inserts of the adapter's create methods, on any client (a pooled
// connection, or the transaction of an import).

async fn insert_user(client: &impl GenericClient, user: &User) -> Result<()> {
    client
        .execute(
            "INSERT INTO users (id, email, name, email_verified, image, extra) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &user.id,
                &user.email,
                &user.name,
                &millis(user.email_verified),
                &user.image,
                &extra_json(&user.extra),
            ],
        )
        .await
        .map_err(|e| write_error(e, user_conflict))?;
    Ok(())
}

async fn insert_account(client: &impl GenericClient, kek: &Kek, account: &Account) -> Result<()> {
    let seal = |field, value: &Option<String>| {
        sealing::seal_token(kek, sealing::account_row(account), field, value.as_deref())
            .map_err(StoreError::backend)
    };
    let (refresh, access, id_token) = (
        seal(TokenField::RefreshToken, &account.refresh_token)?,
        seal(TokenField::AccessToken, &account.access_token)?,
        seal(TokenField::IdToken, &account.id_token)?,
    );
    let (session_state, extra) = (
        seal(TokenField::SessionState, &account.session_state)?,
        seal(TokenField::Extra, &extra_json(&account.extra))?,
    );
    client
        .execute(
            &format!(
                "INSERT INTO accounts ({ACCOUNT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ),
            &[
                &account.user_id,
                &account.kind,
                &account.provider,
                &account.provider_account_id,
                &refresh,
                &access,
                &account.expires_at,
                &account.token_type,
                &account.scope,
                &id_token,
                &session_state,
                &extra,
            ],
        )
        .await
        .map_err(|e| write_error(e, |_| Duplicate::Account))?;
    Ok(())
}

async fn insert_session(client: &impl GenericClient, session: &Session) -> Result<()> {
    client
        .execute(
            "INSERT INTO sessions (token_hash, user_id, expires) VALUES ($1, $2, $3)",
            &[
                &&sha256(session.session_token.as_bytes())[..],
                &session.user_id,
                &session.expires.millis(),
            ],
        )
        .await
        .map_err(|e| write_error(e, |_| Duplicate::Session))?;
    Ok(())
}

async fn insert_verification_token(
    client: &impl GenericClient,
    token: &VerificationToken,
) -> Result<()> {
    client
        .execute(
            "INSERT INTO verification_tokens (identifier, token, expires) VALUES ($1, $2, $3)",
            &[&token.identifier, &token.token, &token.expires.millis()],
        )
        .await
        .map_err(|e| write_error(e, |_| Duplicate::VerificationToken))?;
    Ok(())
}

async fn insert_authenticator(client: &impl GenericClient, a: &Authenticator) -> Result<()> {
    client
        .execute(
            &format!(
                "INSERT INTO authenticators ({AUTHENTICATOR_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ),
            &[
                &a.credential_id,
                &a.user_id,
                &a.provider_account_id,
                &a.credential_public_key,
                &i64::from(a.counter),
                &a.credential_device_type,
                &a.credential_backed_up,
                &a.transports,
            ],
        )
        .await
        .map_err(|e| write_error(e, |_| Duplicate::Authenticator))?;
    Ok(())
}

#[async_trait]
impl ImportStore for PostgresStore {
    async fn import_rows(&self, rows: ImportRows) -> std::result::Result<ImportCounts, RowRefused> {
        let refused = Arc::new(std::sync::Mutex::new(None));
        let failed = refused.clone();
        let written = self
            .with(move |mut client, kek| async move {
                let mut tx = client.transaction().await?;
                let mut counts = ImportCounts::default();
                macro_rules! rows {
                    ($table:expr, $rows:expr, |$row:ident| $insert:expr) => {
                        for (line, $row) in &$rows {
                            let savepoint = tx.savepoint("import_row").await?;
                            let written = $insert(&*savepoint).await;
                            let present = matches!(
                                &written,
                                Err(StoreError::Conflict(d)) if *d == import::own_key($table)
                            );
                            if present || written.is_err() {
                                savepoint.rollback().await?;
                            } else {
                                savepoint.commit().await?;
                            }
                            if let Err(refusal) = import::count(&mut counts, $table, *line, written) {
                                let error = StoreError::backend(refusal.error.log_text());
                                *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(refusal);
                                // Dropped without a commit: the transaction rolls back.
                                return Err(error);
                            }
                        }
                    };
                }
                rows!(0, rows.users, |user| |c| insert_user(c, user));
                rows!(1, rows.accounts, |account| |c| insert_account(c, &kek, account));
                rows!(2, rows.sessions, |session| |c| insert_session(c, session));
                rows!(3, rows.verification_tokens, |token| |c| insert_verification_token(c, token));
                rows!(4, rows.authenticators, |a| |c| insert_authenticator(c, a));
                tx.commit().await?;
                Ok(counts)
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
impl AdapterStore for PostgresStore {
    async fn create_user(&self, user: User) -> Result<User> {
        self.with(move |client, _| async move {
            insert_user(&**client, &user).await?;
            Ok(user)
        })
        .await
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>> {
        let id = id.to_owned();
        self.with(move |client, _| async move { select_user(&client, &id, false).await })
            .await
    }

    async fn get_user_by_email(&self, email: &str) -> Result<Option<User>> {
        let email = email.to_owned();
        self.with(move |client, _| async move {
            let statement = client
                .prepare_cached(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
                ))
                .await?;
            client
                .query_opt(&statement, &[&email])
                .await?
                .map(|row| rows::user(&row, 0))
                .transpose()
        })
        .await
    }

    async fn get_user_by_account(&self, key: &AccountKey) -> Result<Option<User>> {
        let key = key.clone();
        self.with(move |client, _| async move {
            let statement = client
                .prepare_cached(
                    "SELECT u.id, u.email, u.name, u.email_verified, u.image, u.extra \
                     FROM accounts a JOIN users u ON u.id = a.user_id \
                     WHERE a.provider = $1 AND a.provider_account_id = $2",
                )
                .await?;
            client
                .query_opt(&statement, &[&key.provider, &key.provider_account_id])
                .await?
                .map(|row| rows::user(&row, 0))
                .transpose()
        })
        .await
    }

    async fn update_user(&self, patch: UserPatch) -> Result<User> {
        self.with(move |mut client, _| async move {
            let tx = client.transaction().await?;
            // The row stays locked from this read to the commit: two patches
            // of one user apply one after the other, neither lost.
            let mut user = select_user(&tx, &patch.id, true)
                .await?
                .ok_or(StoreError::NotFound(Entity::User))?;
            user.apply(patch);
            let statement = tx
                .prepare_cached(
                    "UPDATE users SET email = $2, name = $3, email_verified = $4, image = $5, \
                     extra = $6 WHERE id = $1",
                )
                .await?;
            tx.execute(
                &statement,
                &[
                    &user.id,
                    &user.email,
                    &user.name,
                    &millis(user.email_verified),
                    &user.image,
                    &extra_json(&user.extra),
                ],
            )
            .await
            .map_err(|e| write_error(e, user_conflict))?;
            tx.commit().await?;
            Ok(user)
        })
        .await
    }

    async fn delete_user(&self, id: &str) -> Result<Option<User>> {
        self.delete_user_by(id, None).await
    }

    async fn link_account(&self, account: Account) -> Result<Account> {
        self.with(move |client, kek| async move {
            insert_account(&**client, &kek, &account).await?;
            Ok(account)
        })
        .await
    }

    async fn unlink_account(&self, key: &AccountKey) -> Result<Option<Account>> {
        let key = key.clone();
        let result = self
            .with(move |client, kek| async move {
                let statement = client
                    .prepare_cached(&format!(
                        "WITH gone AS (DELETE FROM accounts WHERE provider = $1 \
                     AND provider_account_id = $2 RETURNING {ACCOUNT_COLUMNS}), \
                     logged AS (INSERT INTO events (id, type, user_id, detail, at) \
                     SELECT $3, 'account.unlinked', user_id, json_build_object('provider', \
                     provider, 'providerAccountId', provider_account_id)::text, $4 FROM gone) \
                     SELECT {ACCOUNT_COLUMNS} FROM gone"
                    ))
                    .await?;
                let (id, at) = (new_id(), Timestamp::now().millis());
                client
                    .query_opt(
                        &statement,
                        &[&key.provider, &key.provider_account_id, &id, &at],
                    )
                    .await?
                    .map(|row| rows::account(&row, &kek))
                    .transpose()
            })
            .await;
        // Wakes this process's webhook workers (a refused write wakes them for nothing).
        self.events.written();
        result
    }

    async fn get_account(&self, key: &AccountKey) -> Result<Option<Account>> {
        let key = key.clone();
        self.with(move |client, kek| async move {
            let statement = client
                .prepare_cached(&format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts \
                     WHERE provider = $1 AND provider_account_id = $2"
                ))
                .await?;
            client
                .query_opt(&statement, &[&key.provider, &key.provider_account_id])
                .await?
                .map(|row| rows::account(&row, &kek))
                .transpose()
        })
        .await
    }

    async fn create_session(&self, session: Session) -> Result<Session> {
        self.with(move |client, _| async move {
            insert_session(&**client, &session).await?;
            Ok(session)
        })
        .await
    }

    async fn get_session_and_user(&self, session_token: &str) -> Result<Option<SessionAndUser>> {
        let session_token = session_token.to_owned();
        self.with(move |client, _| async move {
            let statement = client.prepare_cached(SESSION_AND_USER).await?;
            let hash = sha256(session_token.as_bytes());
            let Some(row) = client.query_opt(&statement, &[&&hash[..]]).await? else {
                return Ok(None);
            };
            let user = rows::user(&row, 1)?;
            Ok(Some(SessionAndUser {
                session: Session {
                    session_token,
                    user_id: user.id.clone(),
                    expires: Timestamp::from_millis(row.try_get(0)?),
                },
                user,
            }))
        })
        .await
    }

    async fn update_session(&self, patch: SessionPatch) -> Result<Option<Session>> {
        self.with(move |client, _| async move {
            let statement = client
                .prepare_cached(
                    "UPDATE sessions SET expires = coalesce($2, expires), \
                     user_id = coalesce($3, user_id) WHERE token_hash = $1 \
                     RETURNING user_id, expires",
                )
                .await?;
            let hash = sha256(patch.session_token.as_bytes());
            let updated = client
                .query_opt(
                    &statement,
                    &[&&hash[..], &millis(patch.expires), &patch.user_id],
                )
                .await
                .map_err(|e| write_error(e, |_| Duplicate::Session))?;
            let Some(row) = updated else {
                return Ok(None);
            };
            Ok(Some(Session {
                session_token: patch.session_token,
                user_id: row.try_get(0)?,
                expires: Timestamp::from_millis(row.try_get(1)?),
            }))
        })
        .await
    }

    async fn delete_session(&self, session_token: &str) -> Result<Option<Session>> {
        let session_token = session_token.to_owned();
        let result = self
            .with(move |client, _| async move {
                // One statement: the session goes and its event is written, or neither.
                let statement = client
                    .prepare_cached(
                        "WITH gone AS (DELETE FROM sessions WHERE token_hash = $1 \
                     RETURNING user_id, expires), \
                     logged AS (INSERT INTO events (id, type, user_id, sid, at) \
                     SELECT $2, 'session.deleted', user_id, $3, $4 FROM gone) \
                     SELECT user_id, expires FROM gone",
                    )
                    .await?;
                let hash = sha256(session_token.as_bytes());
                let (id, sid, at) = (new_id(), session_id(&hash), Timestamp::now().millis());
                let Some(row) = client
                    .query_opt(&statement, &[&&hash[..], &id, &sid, &at])
                    .await?
                else {
                    return Ok(None);
                };
                Ok(Some(Session {
                    session_token,
                    user_id: row.try_get(0)?,
                    expires: Timestamp::from_millis(row.try_get(1)?),
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
        self.with(move |client, _| async move {
            insert_verification_token(&**client, &token).await?;
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
        self.with(move |client, _| async move {
            let statement = client
                .prepare_cached(
                    "DELETE FROM verification_tokens WHERE identifier = $1 AND token = $2 \
                     RETURNING expires",
                )
                .await?;
            let Some(row) = client.query_opt(&statement, &[&identifier, &token]).await? else {
                return Ok(None);
            };
            Ok(Some(VerificationToken {
                expires: Timestamp::from_millis(row.try_get(0)?),
                identifier,
                token,
            }))
        })
        .await
    }

    async fn create_authenticator(&self, authenticator: Authenticator) -> Result<Authenticator> {
        self.with(move |client, _| async move {
            insert_authenticator(&**client, &authenticator).await?;
            Ok(authenticator)
        })
        .await
    }

    async fn get_authenticator(&self, credential_id: &str) -> Result<Option<Authenticator>> {
        let credential_id = credential_id.to_owned();
        self.with(move |client, _| async move {
            let statement = client
                .prepare_cached(&format!(
                    "SELECT {AUTHENTICATOR_COLUMNS} FROM authenticators WHERE credential_id = $1"
                ))
                .await?;
            client
                .query_opt(&statement, &[&credential_id])
                .await?
                .map(|row| rows::authenticator(&row))
                .transpose()
        })
        .await
    }

    async fn list_authenticators_by_user_id(&self, user_id: &str) -> Result<Vec<Authenticator>> {
        let user_id = user_id.to_owned();
        self.with(move |client, _| async move {
            let statement = client
                .prepare_cached(&format!(
                    "SELECT {AUTHENTICATOR_COLUMNS} FROM authenticators WHERE user_id = $1 \
                     ORDER BY credential_id"
                ))
                .await?;
            client
                .query(&statement, &[&user_id])
                .await?
                .iter()
                .map(rows::authenticator)
                .collect()
        })
        .await
    }

    async fn update_authenticator_counter(
        &self,
        credential_id: &str,
        counter: u32,
    ) -> Result<Authenticator> {
        let credential_id = credential_id.to_owned();
        self.with(move |client, _| async move {
            let statement = client
                .prepare_cached(&format!(
                    "UPDATE authenticators SET counter = $2 WHERE credential_id = $1 \
                     RETURNING {AUTHENTICATOR_COLUMNS}"
                ))
                .await?;
            client
                .query_opt(&statement, &[&credential_id, &i64::from(counter)])
                .await?
                .map(|row| rows::authenticator(&row))
                .transpose()?
                .ok_or(StoreError::NotFound(Entity::Authenticator))
        })
        .await
    }
}

#[async_trait]
impl Maintenance for PostgresStore {
    async fn purge_expired(&self, now: Timestamp, batch: usize) -> Result<Purged> {
        let (now, batch) = (now.millis(), i64::try_from(batch).unwrap_or(i64::MAX));
        let result = self
            .with(move |client, _| async move {
                // SKIP LOCKED: nodes purging at the same moment take disjoint
                // rows, and none waits for another.
                // Each expired session's event in the same statement; its sid
                // computed as session_id() computes it.
                let sessions: i64 = client
                    .query_one(
                        &format!(
                            "WITH gone AS (DELETE FROM sessions WHERE token_hash IN \
                         (SELECT token_hash FROM sessions WHERE expires < $1 \
                          LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING token_hash, user_id), \
                         logged AS (INSERT INTO events (id, type, user_id, sid, at) \
                         SELECT gen_random_uuid()::text, 'session.expired', user_id, {SID_SQL}, $3 \
                         FROM gone) SELECT count(*) FROM gone"
                        ),
                        &[&now, &batch, &Timestamp::now().millis()],
                    )
                    .await?
                    .try_get(0)?;
                let sessions = u64::try_from(sessions).unwrap_or_default();
                let kept_from = now - (RETENTION_DAYS * 24 * 3600 * 1000) as i64;
                let events = client
                    .execute(
                        "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE at < $1 \
                     ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED)",
                        &[&kept_from, &batch],
                    )
                    .await?;
                let verification_tokens = client
                    .execute(
                        "DELETE FROM verification_tokens WHERE (identifier, token) IN \
                     (SELECT identifier, token FROM verification_tokens WHERE expires < $1 \
                      LIMIT $2 FOR UPDATE SKIP LOCKED)",
                        &[&now, &batch],
                    )
                    .await?;
                Ok(Purged {
                    sessions: sessions as usize,
                    verification_tokens: verification_tokens as usize,
                    events: events as usize,
                })
            })
            .await;
        // Wakes this process's webhook workers (a refused write wakes them for nothing).
        self.events.written();
        result
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<Event>> {
        let kind = filter.kind.map(EventType::name);
        let user_id = filter.user_id.clone();
        let since = filter.since.map(Timestamp::millis);
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        self.with(move |client, _| async move {
            client
                .query(
                    "SELECT seq, id, type, user_id, sid, detail, actor, at FROM events \
                     WHERE ($1::text IS NULL OR type = $1) AND ($2::text IS NULL OR user_id = $2) \
                     AND ($3::bigint IS NULL OR at >= $3) ORDER BY seq DESC LIMIT $4",
                    &[&kind, &user_id, &since, &limit],
                )
                .await?
                .iter()
                .map(event_row)
                .collect()
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.with(|client, _| async move {
            client.simple_query("SELECT 1").await?;
            Ok(())
        })
        .await
    }

    async fn count_users(&self) -> Result<u64> {
        self.with(|client, _| async move {
            let count: i64 = client
                .query_one("SELECT count(*) FROM users", &[])
                .await?
                .try_get(0)?;
            Ok(u64::try_from(count).unwrap_or_default())
        })
        .await
    }

    async fn storage_bytes(&self) -> Result<StorageBytes> {
        self.with(|client, _| async move {
            let bytes: i64 = client
                .query_one("SELECT pg_database_size(current_database())", &[])
                .await?
                .try_get(0)?;
            Ok(StorageBytes {
                database: u64::try_from(bytes).unwrap_or_default(),
                wal: None,
            })
        })
        .await
    }
}

#[async_trait]
impl KeyStore for PostgresStore {
    async fn signing_keys(&self) -> Result<KeySet> {
        let (version, sealed) = self
            .with(|mut client, _| async move {
                // One snapshot: the version and the keys agree.
                let tx = client
                    .build_transaction()
                    .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .await?;
                let version: i64 = tx
                    .query_one("SELECT key_set_version FROM meta WHERE id = 1", &[])
                    .await?
                    .try_get(0)?;
                let rows = tx
                    .query(
                        "SELECT kid, algorithm, public_key, private_key, kek_id, created_at, \
                         signs_from, retires_at, unpublish_at, row_seal \
                         FROM signing_keys ORDER BY signs_from, created_at",
                        &[],
                    )
                    .await?;
                tx.commit().await?;
                let mut keys = Vec::with_capacity(rows.len());
                for row in rows {
                    let record = KeyRecord {
                        kid: row.try_get(0)?,
                        algorithm: row.try_get(1)?,
                        public_key_der: row.try_get(2)?,
                        private_key_der: row.try_get(3)?,
                        created_at: Timestamp::from_millis(row.try_get(5)?),
                        signs_from: Timestamp::from_millis(row.try_get(6)?),
                        retires_at: row
                            .try_get::<_, Option<i64>>(7)?
                            .map(Timestamp::from_millis),
                        unpublish_at: row
                            .try_get::<_, Option<i64>>(8)?
                            .map(Timestamp::from_millis),
                    };
                    let seal: Option<Vec<u8>> = row.try_get(9)?;
                    keys.push((record, row.try_get::<_, Option<String>>(4)?, seal));
                }
                Ok((version, keys))
            })
            .await?;
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
        self.with(|client, _| async move {
            let statement = client
                .prepare_cached("SELECT key_set_version FROM meta WHERE id = 1")
                .await?;
            Ok(client.query_one(&statement, &[]).await?.try_get(0)?)
        })
        .await
    }

    async fn save_signing_keys(&self, expected_version: i64, changes: KeyChanges) -> Result<Saved> {
        self.with(move |mut client, kek| async move {
            let tx = client.transaction().await?;
            // Under READ COMMITTED a second node's swap waits on this row
            // lock, then re-reads the version and finds it moved: Stale.
            let swapped = tx
                .execute(
                    "UPDATE meta SET key_set_version = key_set_version + 1 \
                     WHERE id = 1 AND key_set_version = $1",
                    &[&expected_version],
                )
                .await?;
            if swapped == 0 {
                return Ok(Saved::Stale);
            }
            for key in &changes.insert {
                let sealed = key
                    .private_key_der
                    .as_ref()
                    .map(|der| kek.seal(&sealing::signing_key_context(&key.kid), der))
                    .transpose()
                    .map_err(StoreError::backend)?;
                let kek_id = sealed.as_ref().map(|_| kek.id().to_owned());
                let row_seal = sealing::seal_key_row(&kek, key)?;
                tx.execute(
                    "INSERT INTO signing_keys (kid, algorithm, public_key, private_key, kek_id, \
                     created_at, signs_from, retires_at, unpublish_at, row_seal) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    &[
                        &key.kid,
                        &key.algorithm,
                        &key.public_key_der,
                        &sealed,
                        &kek_id,
                        &key.created_at.millis(),
                        &key.signs_from.millis(),
                        &millis(key.retires_at),
                        &millis(key.unpublish_at),
                        &row_seal,
                    ],
                )
                .await
                .map_err(|e| write_error(e, |_| Duplicate::SigningKey))?;
            }
            for key in &changes.reschedule {
                tx.execute(
                    "UPDATE signing_keys SET signs_from = $2, retires_at = $3, unpublish_at = $4, \
                     row_seal = $5 WHERE kid = $1",
                    &[
                        &key.kid,
                        &key.signs_from.millis(),
                        &millis(key.retires_at),
                        &millis(key.unpublish_at),
                        &sealing::seal_key_row(&kek, key)?,
                    ],
                )
                .await?;
            }
            for kid in &changes.erase {
                tx.execute(
                    "UPDATE signing_keys SET private_key = NULL, kek_id = NULL WHERE kid = $1",
                    &[kid],
                )
                .await?;
            }
            for kid in &changes.delete {
                tx.execute("DELETE FROM signing_keys WHERE kid = $1", &[kid])
                    .await?;
            }
            tx.commit().await?;
            Ok(Saved::Applied)
        })
        .await
    }
}

/// An event from `seq, id, type, user_id, sid, detail, actor, at`.
pub(super) fn event_row(row: &tokio_postgres::Row) -> Result<Event> {
    Ok(Event {
        seq: row.try_get(0)?,
        id: row.try_get(1)?,
        kind: row.try_get(2)?,
        user_id: row.try_get(3)?,
        sid: row.try_get(4)?,
        detail: row.try_get(5)?,
        actor: row.try_get(6)?,
        at: Timestamp::from_millis(row.try_get(7)?),
    })
}

/// `session_id(token_hash)` in SQL, for rows deleted in a statement (the
/// purge): base64url of the first 16 bytes of SHA-256("authstore sid\0" ||
/// digest).
pub(super) const SID_SQL: &str = "rtrim(translate(encode(substring(sha256('authstore sid'::bytea \
     || '\\x00'::bytea || token_hash) from 1 for 16), 'base64'), '+/', '-_'), '=')";
