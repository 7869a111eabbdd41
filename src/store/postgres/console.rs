//! The console's queries on PostgreSQL (see [`crate::store::console`]).

use super::rows::{self, USER_COLUMNS};
use super::PostgresStore;
use crate::model::{AccountKey, User};
use crate::store::console::{
    ConsoleStore, Digest, LinkedAccount, Overview, SearchField, UserSearch,
};
use crate::store::Result;
use crate::timestamp::Timestamp;
use async_trait::async_trait;

#[async_trait]
impl ConsoleStore for PostgresStore {
    async fn create_console_link(
        &self,
        digest: Digest,
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<()> {
        self.with(move |client, _| async move {
            client
                .execute(
                    "DELETE FROM console_links WHERE expires <= $1",
                    &[&now.millis()],
                )
                .await?;
            client
                .execute(
                    "INSERT INTO console_links (token_hash, expires) VALUES ($1, $2)",
                    &[&&digest[..], &expires.millis()],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn redeem_console_link(&self, digest: Digest, now: Timestamp) -> Result<bool> {
        self.with(move |client, _| async move {
            // Deleted either way: good once, and never once expired. Two
            // nodes redeeming at once: one DELETE returns the row.
            let row = client
                .query_opt(
                    "DELETE FROM console_links WHERE token_hash = $1 RETURNING expires",
                    &[&&digest[..]],
                )
                .await?;
            Ok(match row {
                Some(row) => row.try_get::<_, i64>(0)? > now.millis(),
                None => false,
            })
        })
        .await
    }

    async fn create_console_session(
        &self,
        digest: Digest,
        now: Timestamp,
        idle_expires: Timestamp,
    ) -> Result<()> {
        self.with(move |client, _| async move {
            client
                .execute(
                    "DELETE FROM console_sessions WHERE idle_expires <= $1",
                    &[&now.millis()],
                )
                .await?;
            client
                .execute(
                    "INSERT INTO console_sessions (token_hash, idle_expires) VALUES ($1, $2)",
                    &[&&digest[..], &idle_expires.millis()],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn console_session(&self, digest: Digest) -> Result<Option<Timestamp>> {
        self.with(move |client, _| async move {
            let row = client
                .query_opt(
                    "SELECT idle_expires FROM console_sessions WHERE token_hash = $1",
                    &[&&digest[..]],
                )
                .await?;
            Ok(match row {
                Some(row) => Some(Timestamp::from_millis(row.try_get(0)?)),
                None => None,
            })
        })
        .await
    }

    async fn extend_console_session(&self, digest: Digest, idle_expires: Timestamp) -> Result<()> {
        self.with(move |client, _| async move {
            client
                .execute(
                    "UPDATE console_sessions SET idle_expires = $2 WHERE token_hash = $1",
                    &[&&digest[..], &idle_expires.millis()],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn delete_console_session(&self, digest: Digest) -> Result<()> {
        self.with(move |client, _| async move {
            client
                .execute(
                    "DELETE FROM console_sessions WHERE token_hash = $1",
                    &[&&digest[..]],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn delete_all_console_sessions(&self) -> Result<u64> {
        self.with(|client, _| async move {
            Ok(client.execute("DELETE FROM console_sessions", &[]).await?)
        })
        .await
    }

    async fn overview(&self, now: Timestamp) -> Result<Overview> {
        self.with(move |client, _| async move {
            let row = client
                .query_one(
                    "SELECT (SELECT count(*) FROM users),
                            (SELECT count(*) FROM sessions WHERE expires > $1),
                            (SELECT count(*) FROM authenticators),
                            (SELECT count(*) FROM verification_tokens WHERE expires > $1)",
                    &[&now.millis()],
                )
                .await?;
            let count = |at: usize| -> Result<u64> {
                Ok(u64::try_from(row.try_get::<_, i64>(at)?).unwrap_or_default())
            };
            let providers = client
                .query(
                    "SELECT provider, count(*) AS n FROM accounts GROUP BY provider \
                     ORDER BY n DESC, provider",
                    &[],
                )
                .await?
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get::<_, String>(0)?,
                        u64::try_from(row.try_get::<_, i64>(1)?).unwrap_or_default(),
                    ))
                })
                .collect::<Result<_>>()?;
            Ok(Overview {
                users: count(0)?,
                live_sessions: count(1)?,
                passkeys: count(2)?,
                pending_verification_tokens: count(3)?,
                accounts_by_provider: providers,
            })
        })
        .await
    }

    async fn search_users(&self, search: &UserSearch) -> Result<Vec<User>> {
        let upper = match search.field {
            // The name query lowercases the prefix itself and adds the bound.
            SearchField::Name => search.prefix.clone(),
            _ => search.upper_bound(),
        };
        let limit = i64::try_from(search.limit).unwrap_or(i64::MAX);
        let name_key = r#"(lower(name) COLLATE "C")"#;
        let (sql, low, after_id) = match (search.field, &search.after) {
            (SearchField::Email, None) => (
                format!("SELECT {USER_COLUMNS} FROM users WHERE email >= $1 AND email < $2 ORDER BY email LIMIT $3"),
                search.key_prefix(),
                None,
            ),
            (SearchField::Email, Some((key, _))) => (
                format!("SELECT {USER_COLUMNS} FROM users WHERE email > $1 AND email < $2 ORDER BY email LIMIT $3"),
                key.clone(),
                None,
            ),
            (SearchField::Id, None) => (
                format!("SELECT {USER_COLUMNS} FROM users WHERE id >= $1 AND id < $2 ORDER BY id LIMIT $3"),
                search.key_prefix(),
                None,
            ),
            (SearchField::Id, Some((key, _))) => (
                format!("SELECT {USER_COLUMNS} FROM users WHERE id > $1 AND id < $2 ORDER BY id LIMIT $3"),
                key.clone(),
                None,
            ),
            (SearchField::Name, after) => (
                format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE {name_key} >= (lower($1) COLLATE \"C\") \
                     AND {name_key} < ((lower($2) || chr(1114111)) COLLATE \"C\") \
                     AND ({name_key}, id) > (lower($1) COLLATE \"C\", $4) \
                     ORDER BY {name_key}, id LIMIT $3"
                ),
                after.as_ref().map_or_else(|| search.key_prefix(), |(key, _)| key.clone()),
                Some(after.as_ref().map_or_else(String::new, |(_, id)| id.clone())),
            ),
        };
        self.with(move |client, _| async move {
            let statement = client.prepare_cached(&sql).await?;
            let found = match &after_id {
                Some(id) => {
                    client
                        .query(&statement, &[&low, &upper, &limit, id])
                        .await?
                }
                None => client.query(&statement, &[&low, &upper, &limit]).await?,
            };
            found.iter().map(|row| rows::user(row, 0)).collect()
        })
        .await
    }

    async fn user_accounts(&self, user_id: &str) -> Result<Vec<LinkedAccount>> {
        let user_id = user_id.to_owned();
        self.with(move |client, _| async move {
            client
                .query(
                    "SELECT provider, provider_account_id, type FROM accounts WHERE user_id = $1 \
                     ORDER BY provider, provider_account_id",
                    &[&user_id],
                )
                .await?
                .iter()
                .map(|row| {
                    Ok(LinkedAccount {
                        provider: row.try_get(0)?,
                        provider_account_id: row.try_get(1)?,
                        kind: row.try_get(2)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn delete_user_as(&self, user_id: &str, actor: &str) -> Result<Option<User>> {
        self.delete_user_by(user_id, Some(actor.to_owned())).await
    }

    async fn delete_authenticator(&self, user_id: &str, credential_id: &str) -> Result<bool> {
        let (user_id, credential_id) = (user_id.to_owned(), credential_id.to_owned());
        self.with(move |client, _| async move {
            // Auth.js's Passkey provider links an account per credential.
            let deleted = client
                .query_one(
                    "WITH gone AS (DELETE FROM authenticators WHERE credential_id = $1 \
                     AND user_id = $2 RETURNING credential_id), \
                     account AS (DELETE FROM accounts WHERE type = 'webauthn' AND user_id = $2 \
                     AND provider_account_id IN (SELECT credential_id FROM gone)) \
                     SELECT count(*) FROM gone",
                    &[&credential_id, &user_id],
                )
                .await?
                .try_get::<_, i64>(0)?;
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
