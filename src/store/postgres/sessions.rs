//! A person's own sessions on PostgreSQL (see [`crate::store::sessions`]).

use super::*;
use crate::store::sessions::{LiveSession, SessionsStore};
use crate::store::Digest;

#[async_trait]
impl SessionsStore for PostgresStore {
    async fn user_sessions(&self, user_id: &str, now: Timestamp) -> Result<Vec<LiveSession>> {
        let user_id = user_id.to_owned();
        self.with(move |client, _| async move {
            client
                .query(
                    "SELECT token_hash, expires, created_at, last_seen_at, user_agent, ip \
                     FROM sessions WHERE user_id = $1 AND expires > $2 ORDER BY expires",
                    &[&user_id, &now.millis()],
                )
                .await?
                .iter()
                .map(|row| {
                    Ok(LiveSession {
                        digest: rows::digest(row, 0)?,
                        expires: Timestamp::from_millis(row.try_get(1)?),
                        created_at: row
                            .try_get::<_, Option<i64>>(2)?
                            .map(Timestamp::from_millis),
                        last_seen_at: row
                            .try_get::<_, Option<i64>>(3)?
                            .map(Timestamp::from_millis),
                        user_agent: row.try_get(4)?,
                        ip: row.try_get(5)?,
                    })
                })
                .collect()
        })
        .await
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
            .with(move |mut client, _| async move {
                // The sessions go and their events are written in one transaction.
                let tx = client.transaction().await?;
                let gone = match &digests {
                    None => {
                        tx.query(
                            "DELETE FROM sessions WHERE user_id = $1 RETURNING token_hash",
                            &[&user_id],
                        )
                        .await?
                    }
                    Some(digests) => {
                        let digests: Vec<&[u8]> = digests.iter().map(|d| &d[..]).collect();
                        tx.query(
                            "DELETE FROM sessions WHERE token_hash = ANY($1) AND user_id = $2 \
                             RETURNING token_hash",
                            &[&digests, &user_id],
                        )
                        .await?
                    }
                };
                let gone: Vec<Digest> = gone
                    .iter()
                    .map(|row| rows::digest(row, 0))
                    .collect::<Result<_>>()?;
                let actor = actor.as_deref();
                let events: Vec<(String, NewEvent)> = match digests {
                    // One event for all, naming each session's sid.
                    None => vec![(
                        user_id.clone(),
                        NewEvent::user_sessions_revoked(&gone, actor, &at),
                    )],
                    Some(_) => gone
                        .iter()
                        .map(|digest| {
                            let event = NewEvent::session_deleted(digest, actor, &at);
                            (user_id.clone(), event)
                        })
                        .collect(),
                };
                record_events(&tx, &events).await?;
                tx.commit().await?;
                Ok(gone.len() as u64)
            })
            .await;
        // Wakes this process's webhook workers (a refused write wakes them for nothing).
        self.events.written();
        result
    }

    async fn delete_other_sessions(&self, digest: Digest) -> Result<u64> {
        let at = Occasion::now(&*self.clock);
        let result = self
            .with(move |mut client, _| async move {
                let tx = client.transaction().await?;
                let gone = tx
                    .query(
                        "DELETE FROM sessions WHERE token_hash <> $1 AND user_id = \
                         (SELECT user_id FROM sessions WHERE token_hash = $1) \
                         RETURNING token_hash, user_id",
                        &[&&digest[..]],
                    )
                    .await?
                    .iter()
                    .map(|row| {
                        let event = NewEvent::session_deleted(&rows::digest(row, 0)?, None, &at);
                        Ok((row.try_get(1)?, event))
                    })
                    .collect::<Result<Vec<(String, NewEvent)>>>()?;
                record_events(&tx, &gone).await?;
                tx.commit().await?;
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
        self.with(move |client, _| async move {
            let digests: Vec<&[u8]> = seen.iter().map(|(d, _)| &d[..]).collect();
            let ats: Vec<i64> = seen.iter().map(|(_, at)| at.millis()).collect();
            client
                .execute(
                    "UPDATE sessions s SET last_seen_at = v.at \
                     FROM unnest($1::bytea[], $2::bigint[]) AS v(token_hash, at) \
                     WHERE s.token_hash = v.token_hash \
                     AND (s.last_seen_at IS NULL OR s.last_seen_at < v.at)",
                    &[&digests, &ats],
                )
                .await?;
            Ok(())
        })
        .await
    }
}
