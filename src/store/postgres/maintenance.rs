//! Purging expired rows and events, health, sizes and the audit log on
//! PostgreSQL.

use super::*;

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
