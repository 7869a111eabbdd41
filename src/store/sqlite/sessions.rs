//! A person's own sessions on SQLite (see [`crate::store::sessions`]).

use super::*;
use crate::store::sessions::{LiveSession, SessionsStore};
use crate::store::Digest;

#[async_trait]
impl SessionsStore for SqliteStore {
    async fn user_sessions(&self, user_id: &str, now: Timestamp) -> Result<Vec<LiveSession>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT token_hash, expires, created_at, last_seen_at, user_agent, ip \
                 FROM sessions WHERE user_id = ?1 AND expires > ?2 ORDER BY expires",
            )?
            .query_map(params![user_id, now.millis()], |row| {
                Ok(LiveSession {
                    digest: row.get(0)?,
                    expires: Timestamp::from_millis(row.get(1)?),
                    created_at: row.get::<_, Option<i64>>(2)?.map(Timestamp::from_millis),
                    last_seen_at: row.get::<_, Option<i64>>(3)?.map(Timestamp::from_millis),
                    user_agent: row.get(4)?,
                    ip: row.get(5)?,
                })
            })?
            .collect()
        })
    }

    async fn delete_user_sessions(
        &self,
        user_id: &str,
        digests: Option<Vec<Digest>>,
        actor: Option<&str>,
    ) -> Result<u64> {
        let (user_id, actor, at) = (
            user_id.to_owned(),
            actor.map(str::to_owned),
            Occasion::now(&*self.clock),
        );
        let result = self
            .writer
            .run(move |conn| {
                let deleted = match digests {
                    None => {
                        let gone = conn
                            .prepare_cached(
                                "DELETE FROM sessions WHERE user_id = ?1 RETURNING token_hash",
                            )?
                            .query_map([&user_id], |row| row.get::<_, Digest>(0))?
                            .collect::<rusqlite::Result<Vec<_>>>()?;
                        let event = NewEvent::user_sessions_revoked(&gone, actor.as_deref(), &at);
                        record_event(conn, &user_id, &event)?;
                        gone.len()
                    }
                    Some(digests) => {
                        let mut deleted = 0;
                        for digest in digests {
                            let gone = conn
                                .prepare_cached(
                                    "DELETE FROM sessions WHERE token_hash = ?1 AND user_id = ?2",
                                )?
                                .execute(params![&digest[..], user_id])?;
                            if gone == 1 {
                                let event =
                                    NewEvent::session_deleted(&digest, actor.as_deref(), &at);
                                record_event(conn, &user_id, &event)?;
                            }
                            deleted += gone;
                        }
                        deleted
                    }
                };
                Ok(deleted as u64)
            })
            .await;
        // Wakes this process's webhook workers (a refused write wakes them for nothing).
        self.events.written();
        result
    }

    async fn delete_other_sessions(&self, digest: Digest) -> Result<u64> {
        let at = Occasion::now(&*self.clock);
        let result = self
            .writer
            .run(move |conn| {
                let Some(user_id) = conn
                    .prepare_cached("SELECT user_id FROM sessions WHERE token_hash = ?1")?
                    .query_row([&digest[..]], |row| row.get::<_, String>(0))
                    .optional()?
                else {
                    return Ok(0);
                };
                let gone = conn
                    .prepare_cached(
                        "DELETE FROM sessions WHERE user_id = ?1 AND token_hash <> ?2 \
                         RETURNING token_hash",
                    )?
                    .query_map(params![user_id, &digest[..]], |row| row.get::<_, Digest>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                for other in &gone {
                    record_event(conn, &user_id, &NewEvent::session_deleted(other, None, &at))?;
                }
                Ok(gone.len() as u64)
            })
            .await;
        // Wakes this process's webhook workers (a refused write wakes them for nothing).
        self.events.written();
        result
    }

    async fn record_seen(&self, seen: Vec<(Digest, Timestamp)>) -> Result<()> {
        if seen.is_empty() {
            return Ok(());
        }
        self.writer
            .run(move |conn| {
                let mut update = conn.prepare_cached(
                    "UPDATE sessions SET last_seen_at = ?2 WHERE token_hash = ?1 \
                     AND (last_seen_at IS NULL OR last_seen_at < ?2)",
                )?;
                for (digest, at) in &seen {
                    update.execute(params![&digest[..], at.millis()])?;
                }
                Ok(())
            })
            .await
    }
}
