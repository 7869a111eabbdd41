//! The console's queries on SQLite (see [`crate::store::console`]).

use super::{rows, SqliteStore};
use crate::model::{AccountKey, User};
use crate::store::console::{
    ConsoleStore, Digest, LinkedAccount, Overview, SearchField, UserSearch,
};
use crate::store::Result;
use crate::timestamp::Timestamp;
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

const USER: &str = "id, email, name, email_verified, image, extra";

#[async_trait]
impl ConsoleStore for SqliteStore {
    async fn create_console_link(
        &self,
        digest: Digest,
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<()> {
        self.writer
            .run(move |conn| {
                conn.prepare_cached("DELETE FROM console_links WHERE expires <= ?1")?
                    .execute([now.millis()])?;
                conn.prepare_cached(
                    "INSERT INTO console_links (token_hash, expires) VALUES (?1, ?2)",
                )?
                .execute(params![&digest[..], expires.millis()])?;
                Ok(())
            })
            .await
    }

    async fn redeem_console_link(&self, digest: Digest, now: Timestamp) -> Result<bool> {
        self.writer
            .run(move |conn| {
                // Deleted either way: a link is good once, and an expired
                // one is good never.
                let expires: Option<i64> = conn
                    .prepare_cached(
                        "DELETE FROM console_links WHERE token_hash = ?1 RETURNING expires",
                    )?
                    .query_row([&digest[..]], |row| row.get(0))
                    .optional()?;
                Ok(expires.is_some_and(|at| at > now.millis()))
            })
            .await
    }

    async fn create_console_session(
        &self,
        digest: Digest,
        now: Timestamp,
        idle_expires: Timestamp,
    ) -> Result<()> {
        self.writer
            .run(move |conn| {
                conn.prepare_cached("DELETE FROM console_sessions WHERE idle_expires <= ?1")?
                    .execute([now.millis()])?;
                conn.prepare_cached(
                    "INSERT INTO console_sessions (token_hash, idle_expires) VALUES (?1, ?2)",
                )?
                .execute(params![&digest[..], idle_expires.millis()])?;
                Ok(())
            })
            .await
    }

    async fn console_session(&self, digest: Digest) -> Result<Option<Timestamp>> {
        self.read(|conn| {
            conn.prepare_cached("SELECT idle_expires FROM console_sessions WHERE token_hash = ?1")?
                .query_row([&digest[..]], |row| row.get(0).map(Timestamp::from_millis))
                .optional()
        })
    }

    async fn extend_console_session(&self, digest: Digest, idle_expires: Timestamp) -> Result<()> {
        self.writer
            .run(move |conn| {
                conn.prepare_cached(
                    "UPDATE console_sessions SET idle_expires = ?2 WHERE token_hash = ?1",
                )?
                .execute(params![&digest[..], idle_expires.millis()])?;
                Ok(())
            })
            .await
    }

    async fn delete_console_session(&self, digest: Digest) -> Result<()> {
        self.writer
            .run(move |conn| {
                conn.prepare_cached("DELETE FROM console_sessions WHERE token_hash = ?1")?
                    .execute([&digest[..]])?;
                Ok(())
            })
            .await
    }

    async fn delete_all_console_sessions(&self) -> Result<u64> {
        self.writer
            .run(|conn| {
                let ended = conn
                    .prepare_cached("DELETE FROM console_sessions")?
                    .execute([])?;
                Ok(ended as u64)
            })
            .await
    }

    async fn overview(&self, now: Timestamp) -> Result<Overview> {
        self.read(|conn| {
            // One read transaction: the figures of one moment.
            let tx = conn.unchecked_transaction()?;
            let count = |sql: &str, now: Option<i64>| -> rusqlite::Result<u64> {
                let mut statement = tx.prepare_cached(sql)?;
                match now {
                    Some(now) => statement.query_row([now], |row| row.get(0)),
                    None => statement.query_row([], |row| row.get(0)),
                }
            };
            let overview = Overview {
                users: count("SELECT count(*) FROM users", None)?,
                live_sessions: count(
                    "SELECT count(*) FROM sessions WHERE expires > ?1",
                    Some(now.millis()),
                )?,
                accounts_by_provider: tx
                    .prepare_cached(
                        "SELECT provider, count(*) AS n FROM accounts GROUP BY provider \
                         ORDER BY n DESC, provider",
                    )?
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?,
                passkeys: count("SELECT count(*) FROM authenticators", None)?,
                pending_verification_tokens: count(
                    "SELECT count(*) FROM verification_tokens WHERE expires > ?1",
                    Some(now.millis()),
                )?,
            };
            tx.finish()?;
            Ok(overview)
        })
    }

    async fn search_users(&self, search: &UserSearch) -> Result<Vec<User>> {
        let upper = match search.field {
            // The name query lowercases the prefix itself and adds the bound.
            SearchField::Name => search.prefix.clone(),
            _ => search.upper_bound(),
        };
        let limit = i64::try_from(search.limit).unwrap_or(i64::MAX);
        // Each walks one index from the cursor (or the prefix) and stops at
        // `limit`: no OFFSET, so page 1,000 costs what page 1 does.
        let (sql, low, after_id) = match (search.field, &search.after) {
            (SearchField::Email, None) => (
                format!("SELECT {USER} FROM users WHERE email >= ?1 AND email < ?2 ORDER BY email LIMIT ?3"),
                search.key_prefix(),
                None,
            ),
            (SearchField::Email, Some((key, _))) => (
                format!("SELECT {USER} FROM users WHERE email > ?1 AND email < ?2 ORDER BY email LIMIT ?3"),
                key.clone(),
                None,
            ),
            (SearchField::Id, None) => (
                format!("SELECT {USER} FROM users WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT ?3"),
                search.key_prefix(),
                None,
            ),
            (SearchField::Id, Some((key, _))) => (
                format!("SELECT {USER} FROM users WHERE id > ?1 AND id < ?2 ORDER BY id LIMIT ?3"),
                key.clone(),
                None,
            ),
            (SearchField::Name, after) => (
                format!(
                    // The plain bound starts the index walk there; the row
                    // value skips the rows of the cursor's name up to its id.
                    "SELECT {USER} FROM users WHERE lower(name) >= lower(?1) \
                     AND lower(name) < lower(?2) || char(1114111) \
                     AND (lower(name), id) > (lower(?1), ?4) ORDER BY lower(name), id LIMIT ?3"
                ),
                after.as_ref().map_or_else(|| search.key_prefix(), |(key, _)| key.clone()),
                Some(after.as_ref().map_or_else(String::new, |(_, id)| id.clone())),
            ),
        };
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&sql)?;
            match &after_id {
                Some(id) => statement
                    .query_map(params![low, upper, limit, id], |row| rows::user(row, 0))?
                    .collect(),
                None => statement
                    .query_map(params![low, upper, limit], |row| rows::user(row, 0))?
                    .collect(),
            }
        })
    }

    async fn user_accounts(&self, user_id: &str) -> Result<Vec<LinkedAccount>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT provider, provider_account_id, type FROM accounts WHERE user_id = ?1 \
                 ORDER BY provider, provider_account_id",
            )?
            .query_map([user_id], |row| {
                Ok(LinkedAccount {
                    provider: row.get(0)?,
                    provider_account_id: row.get(1)?,
                    kind: row.get(2)?,
                })
            })?
            .collect()
        })
    }

    async fn delete_user_as(&self, user_id: &str, actor: &str) -> Result<Option<User>> {
        self.delete_user_by(user_id, Some(actor.to_owned())).await
    }

    async fn delete_authenticator(&self, user_id: &str, credential_id: &str) -> Result<bool> {
        let (user_id, credential_id) = (user_id.to_owned(), credential_id.to_owned());
        self.writer
            .run(move |conn| {
                let deleted = conn
                    .prepare_cached(
                        "DELETE FROM authenticators WHERE credential_id = ?1 AND user_id = ?2",
                    )?
                    .execute([&credential_id, &user_id])?;
                if deleted == 1 {
                    // Auth.js's Passkey provider links an account per credential.
                    conn.prepare_cached(
                        "DELETE FROM accounts WHERE type = 'webauthn' \
                         AND provider_account_id = ?1 AND user_id = ?2",
                    )?
                    .execute([&credential_id, &user_id])?;
                }
                Ok(deleted == 1)
            })
            .await
    }

    async fn unlink_account_as(
        &self,
        user_id: &str,
        key: &AccountKey,
        actor: &str,
    ) -> Result<bool> {
        let unlinked = self
            .unlink_account_by(key, Some(user_id), Some(actor))
            .await?;
        Ok(unlinked.is_some())
    }
}
