//! Purging expired rows and events, health, sizes and the audit log on
//! PostgreSQL.

use super::*;

#[async_trait]
impl Maintenance for PostgresStore {
    async fn purge_expired(&self, now: Timestamp, batch: usize) -> Result<Purged> {
        let (at, now, batch) = (
            Occasion::background(now),
            now.millis(),
            i64::try_from(batch).unwrap_or(i64::MAX),
        );
        let result = self
            .with(move |mut client, _| async move {
                // SKIP LOCKED: nodes purging at the same moment take disjoint
                // rows, and none waits for another. Each expired session's
                // event is written in the same transaction.
                let tx = client.transaction().await?;
                let gone = tx
                    .query(
                        "DELETE FROM sessions WHERE token_hash IN \
                         (SELECT token_hash FROM sessions WHERE expires < $1 \
                          LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING token_hash, user_id",
                        &[&now, &batch],
                    )
                    .await?
                    .iter()
                    .map(|row| {
                        let event = NewEvent::session_expired(&rows::digest(row, 0)?, &at);
                        Ok((row.try_get(1)?, event))
                    })
                    .collect::<Result<Vec<(String, NewEvent)>>>()?;
                record_events(&tx, &gone).await?;
                tx.commit().await?;
                let sessions = gone.len();
                let kept_from = events::kept_from(at.at).millis();
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
                    "SELECT seq, id, type, user_id, sid, detail, actor, at, trace_id FROM events \
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
