//! The PostgreSQL backend: a pool of connections to the primary, shared by
//! every request of this node; any number of nodes on one database.
//!
//! Every call goes to the primary: reads from an asynchronous standby saw a
//! deleted session in 50-65% of immediate reads (measured while planning), and
//! a revoked session must be gone everywhere at once. The pool and its
//! connections live on a small runtime of their own, so that a connection
//! made while serving one HTTP worker keeps working for every other (and
//! outlives none of them).

mod adapter;
mod console;
mod keys;
mod maintenance;
mod outbox;
mod rows;
pub mod schema;
mod sessions;
pub mod settings;

use self::rows::{write_error, ACCOUNT_COLUMNS, AUTHENTICATOR_COLUMNS, USER_COLUMNS};
use super::import::{self, ImportCounts, ImportRows, ImportStore, RowRefused};
use super::sealing::{self, TokenField};
use super::{
    AdapterStore, Duplicate, Entity, KeyChanges, KeyRecord, KeySet, KeyStore, Maintenance, Purged,
    Result, Saved, StorageBytes, StoreError,
};
use crate::clock::Clock;
use crate::kek::Kek;
use crate::model::{
    Account, AccountKey, Authenticator, Session, SessionAndUser, SessionOrigin, SessionPatch, User,
    UserPatch, VerificationToken,
};
use crate::store::events::{self, Event, EventFilter, EventType, NewEvent, Occasion};
use crate::store::sessions::SEEN_EVERY;
use crate::store::token_digest;
use crate::timestamp::Timestamp;
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};

use openssl::ssl::{SslConnector, SslMethod};
use postgres_openssl::MakeTlsConnector;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::types::ToSql;

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
    /// Times the events.
    pub clock: Arc<dyn Clock>,
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
            .field("clock", &self.clock)
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
    /// Times the events.
    clock: Arc<dyn Clock>,
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
    "SELECT s.expires, u.id, u.email, u.name, u.email_verified, u.image, u.extra, s.last_seen_at \
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
            clock: options.clock.clone(),
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

    /// Unlinks an account and records it, in one statement: any user's (the
    /// adapter's `unlinkAccount`), or only `owner`'s, by `actor` (the console).
    pub(super) async fn unlink_account_by(
        &self,
        key: &AccountKey,
        owner: Option<&str>,
        actor: Option<&str>,
    ) -> Result<Option<Account>> {
        let event = NewEvent::account_unlinked(key, actor, &Occasion::now(&*self.clock));
        let (key, owner) = (key.clone(), owner.map(str::to_owned));
        let result = self
            .with(move |client, kek| async move {
                let statement = client
                    .prepare_cached(&format!(
                        "WITH gone AS (DELETE FROM accounts WHERE provider = $1 \
                         AND provider_account_id = $2 AND ($3::text IS NULL OR user_id = $3) \
                         RETURNING {ACCOUNT_COLUMNS}), {} SELECT {ACCOUNT_COLUMNS} FROM gone",
                        log_removed("user_id", 4)
                    ))
                    .await?;
                let logged = EventParams::new(&event);
                let key: [&(dyn ToSql + Sync); 3] =
                    [&key.provider, &key.provider_account_id, &owner];
                client
                    .query_opt(&statement, &logged.after(&key))
                    .await?
                    .map(|row| rows::account(&row, &kek))
                    .transpose()
            })
            .await;
        // Wakes this process's webhook workers (a refused write wakes them for nothing).
        self.events.written();
        result
    }

    /// Deletes a user (and, by cascade, everything of theirs) and records it,
    /// in one statement.
    pub(super) async fn delete_user_by(
        &self,
        id: &str,
        actor: Option<String>,
    ) -> Result<Option<User>> {
        let id = id.to_owned();
        let event = NewEvent::user_deleted(actor.as_deref(), &Occasion::now(&*self.clock));
        let result = self
            .with(move |client, _| async move {
                let statement = client
                    .prepare_cached(&format!(
                        "WITH gone AS (DELETE FROM users WHERE id = $1 RETURNING {USER_COLUMNS}), \
                         {} SELECT {USER_COLUMNS} FROM gone",
                        log_removed("id", 2)
                    ))
                    .await?;
                let logged = EventParams::new(&event);
                client
                    .query_opt(&statement, &logged.after(&[&id]))
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
            &[&provider as &(dyn ToSql + Sync), &provider_account_id]
                .into_iter()
                .chain(sealed.iter().map(|v| v as &(dyn ToSql + Sync)))
                .collect::<Vec<_>>(),
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

/// An event from `seq, id, type, user_id, sid, detail, actor, at, trace_id`.
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
        trace_id: row.try_get(8)?,
    })
}

/// A `logged` clause for a statement `WITH gone AS (DELETE ... RETURNING
/// ...)`: writes the event whose fields are bound from `$first` on (see
/// [`EventParams`]) for the user in column `user` of the row it removes, in
/// the same statement.
pub(super) fn log_removed(user: &str, first: usize) -> String {
    let [id, kind, sid, detail, actor, at, trace] = std::array::from_fn(|i| first + i);
    format!(
        "logged AS (INSERT INTO events (id, type, user_id, sid, detail, actor, at, trace_id) \
         SELECT ${id}, ${kind}, {user}, ${sid}, ${detail}, ${actor}, ${at}, ${trace} FROM gone)"
    )
}

/// A [`NewEvent`]'s fields as statement parameters, in [`log_removed`]'s order.
pub(super) struct EventParams<'a> {
    event: &'a NewEvent,
    kind: &'static str,
    at: i64,
}

impl<'a> EventParams<'a> {
    pub(super) fn new(event: &'a NewEvent) -> Self {
        EventParams {
            event,
            kind: event.kind.name(),
            at: event.at.millis(),
        }
    }

    /// `leading`, then the event's fields (from `$leading.len() + 1` on).
    pub(super) fn after<'b>(
        &'b self,
        leading: &[&'b (dyn ToSql + Sync)],
    ) -> Vec<&'b (dyn ToSql + Sync)> {
        let mut params = leading.to_vec();
        params.extend(self.params());
        params
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 7] {
        [
            &self.event.id,
            &self.kind,
            &self.event.sid,
            &self.event.detail,
            &self.event.actor,
            &self.at,
            &self.event.trace_id,
        ]
    }
}

/// Writes `events`, each for the user beside it, in one statement inside
/// the caller's transaction.
pub(super) async fn record_events(
    tx: &deadpool_postgres::Transaction<'_>,
    events: &[(String, NewEvent)],
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = events.iter().map(|(_, e)| e.id.as_str()).collect();
    let kinds: Vec<&str> = events.iter().map(|(_, e)| e.kind.name()).collect();
    let users: Vec<&str> = events.iter().map(|(user, _)| user.as_str()).collect();
    let sids: Vec<Option<&str>> = events.iter().map(|(_, e)| e.sid.as_deref()).collect();
    let details: Vec<Option<&str>> = events.iter().map(|(_, e)| e.detail.as_deref()).collect();
    let actors: Vec<Option<&str>> = events.iter().map(|(_, e)| e.actor.as_deref()).collect();
    let ats: Vec<i64> = events.iter().map(|(_, e)| e.at.millis()).collect();
    let traces: Vec<Option<&str>> = events.iter().map(|(_, e)| e.trace_id.as_deref()).collect();
    let statement = tx
        .prepare_cached(
            "INSERT INTO events (id, type, user_id, sid, detail, actor, at, trace_id) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::text[], $7::bigint[], $8::text[])",
        )
        .await?;
    tx.execute(
        &statement,
        &[
            &ids, &kinds, &users, &sids, &details, &actors, &ats, &traces,
        ],
    )
    .await?;
    Ok(())
}
