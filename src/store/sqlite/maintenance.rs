//! Purging expired rows and events, health, sizes and the audit log on SQLite.

use super::*;

#[async_trait]
impl Maintenance for SqliteStore {
    async fn purge_expired(&self, now: Timestamp, batch: usize) -> Result<Purged> {
        let (at, now, batch) = (Occasion::background(now), now.millis(), batch as i64);
        let result = self
            .writer
            .run(move |conn| {
                let gone = conn
                    .prepare_cached(
                        "DELETE FROM sessions WHERE token_hash IN \
                         (SELECT token_hash FROM sessions WHERE expires < ?1 LIMIT ?2) \
                         RETURNING token_hash, user_id",
                    )?
                    .query_map(params![now, batch], |row| {
                        Ok((row.get::<_, [u8; 32]>(0)?, row.get::<_, String>(1)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                for (digest, user_id) in &gone {
                    record_event(conn, user_id, &NewEvent::session_expired(digest, &at))?;
                }
                let sessions = gone.len();
                // Events past their retention, a batch at a time like the rest.
                let kept_from = events::kept_from(Timestamp::from_millis(now)).millis();
                let events = conn
                    .prepare_cached(
                        "DELETE FROM events WHERE seq IN \
                         (SELECT seq FROM events WHERE at < ?1 ORDER BY seq LIMIT ?2)",
                    )?
                    .execute(params![kept_from, batch])?;
                let verification_tokens = conn
                    .prepare_cached(
                        "DELETE FROM verification_tokens WHERE (identifier, token) IN \
                         (SELECT identifier, token FROM verification_tokens \
                          WHERE expires < ?1 LIMIT ?2)",
                    )?
                    .execute(params![now, batch])?;
                Ok(Purged {
                    sessions,
                    verification_tokens,
                    events,
                })
            })
            .await;
        // Wakes this process's webhook workers (a refused write wakes them for nothing).
        self.events.written();
        result
    }

    async fn ping(&self) -> Result<()> {
        if !self.writer.is_alive() {
            return Err(Error::Unavailable("the database writer has stopped".into()));
        }
        if self.writer.health().failing() {
            return Err(Error::Unavailable(
                "the last write failed for a storage reason".into(),
            ));
        }
        match inode_of(&self.path) {
            Ok(inode) if inode == self.inode => {}
            Ok(_) => {
                return Err(Error::Unavailable(format!(
                    "{} was replaced under the server",
                    self.path.display()
                )))
            }
            Err(e) => {
                return Err(Error::Unavailable(format!(
                    "{} is gone: {e}",
                    self.path.display()
                )))
            }
        }
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())))
    }

    async fn count_users(&self) -> Result<u64> {
        self.read(|conn| conn.query_row("SELECT count(*) FROM users", [], |row| row.get(0)))
    }

    async fn storage_bytes(&self) -> Result<StorageBytes> {
        let size = |path: &std::path::Path| std::fs::metadata(path).map(|m| m.len());
        let database = size(&self.path)
            .map_err(|e| Error::backend(format!("reading the database's size: {e}")))?;
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        // No WAL file (just checkpointed and truncated, or never written): 0.
        let wal = size(std::path::Path::new(&wal)).unwrap_or(0);
        Ok(StorageBytes {
            database,
            wal: Some(wal),
        })
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<Event>> {
        let kind = filter.kind.map(EventType::name);
        let since = filter.since.map(Timestamp::millis);
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT seq, id, type, user_id, sid, detail, actor, at, trace_id FROM events \
                 WHERE (?1 IS NULL OR type = ?1) AND (?2 IS NULL OR user_id = ?2) \
                 AND (?3 IS NULL OR at >= ?3) ORDER BY seq DESC LIMIT ?4",
            )?
            .query_map(params![kind, filter.user_id, since, limit], event_row)?
            .collect()
        })
    }
}
