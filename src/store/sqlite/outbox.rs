//! Webhook delivery state on SQLite (see [`crate::store::events::Outbox`]).
//!
//! SQLite commits one writer at a time and `seq` is assigned inside the
//! commit's transaction, so events become visible in `seq` order: the floor
//! may pass every delivered event at once.

use super::SqliteStore;
use crate::store::events::{kind_names, Event, EventSignal, EventType, Outbox};
use crate::store::Result;
use crate::timestamp::Timestamp;
use async_trait::async_trait;
use rusqlite::params;

/// The events of an endpoint's types above its floor, not delivered yet.
const PENDING: &str =
    "SELECT e.seq, e.id, e.type, e.user_id, e.sid, e.detail, e.actor, e.at, e.trace_id \
     FROM webhook_endpoints w JOIN events e ON e.seq > w.floor \
     WHERE w.endpoint = ?1 AND e.type IN (SELECT value FROM json_each(?2)) \
     AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.endpoint = ?1 AND d.seq = e.seq) \
     ORDER BY e.seq LIMIT ?3";

#[async_trait]
impl Outbox for SqliteStore {
    fn event_signal(&self) -> &EventSignal {
        &self.events
    }

    async fn claim_endpoint(
        &self,
        endpoint: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool> {
        let (endpoint, owner) = (endpoint.to_owned(), owner.to_owned());
        self.writer
            .run(move |conn| {
                let claimed = conn
                    .prepare_cached(
                        "INSERT INTO webhook_endpoints (endpoint, floor, lease_owner, lease_until) \
                         VALUES (?1, (SELECT coalesce(max(seq), 0) FROM events), ?2, ?3) \
                         ON CONFLICT (endpoint) DO UPDATE SET lease_owner = ?2, lease_until = ?3 \
                         WHERE lease_owner = ?2 OR lease_until <= ?4",
                    )?
                    .execute(params![endpoint, owner, until.millis(), now.millis()])?;
                Ok(claimed == 1)
            })
            .await
    }

    async fn release_endpoints(&self, owner: &str) -> Result<()> {
        let owner = owner.to_owned();
        self.writer
            .run(move |conn| {
                conn.prepare_cached(
                    "UPDATE webhook_endpoints SET lease_owner = NULL, lease_until = 0 \
                     WHERE lease_owner = ?1",
                )?
                .execute([&owner])?;
                Ok(())
            })
            .await
    }

    async fn pending_events(
        &self,
        endpoint: &str,
        kinds: &[EventType],
        limit: usize,
    ) -> Result<Vec<Event>> {
        let kinds = serde_json::to_string(&kind_names(kinds)).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            conn.prepare_cached(PENDING)?
                .query_map(params![endpoint, kinds, limit], super::event_row)?
                .collect()
        })
    }

    async fn mark_delivered(
        &self,
        endpoint: &str,
        kinds: &[EventType],
        seqs: &[i64],
        _now: Timestamp,
    ) -> Result<()> {
        let endpoint = endpoint.to_owned();
        let kinds = serde_json::to_string(&kind_names(kinds)).unwrap_or_default();
        let seqs = seqs.to_vec();
        self.writer
            .run(move |conn| {
                let mut insert = conn.prepare_cached(
                    "INSERT OR IGNORE INTO webhook_deliveries (endpoint, seq) VALUES (?1, ?2)",
                )?;
                for seq in &seqs {
                    insert.execute(params![endpoint, seq])?;
                }
                // Up to just below the oldest event still to send (or the
                // newest event when none is).
                conn.prepare_cached(
                    "UPDATE webhook_endpoints SET floor = max(floor, coalesce( \
                     (SELECT min(e.seq) - 1 FROM events e WHERE e.seq > webhook_endpoints.floor \
                      AND e.type IN (SELECT value FROM json_each(?2)) AND NOT EXISTS \
                      (SELECT 1 FROM webhook_deliveries d WHERE d.endpoint = ?1 AND d.seq = e.seq)), \
                     (SELECT coalesce(max(seq), 0) FROM events))) WHERE endpoint = ?1",
                )?
                .execute(params![endpoint, kinds])?;
                conn.prepare_cached(
                    "DELETE FROM webhook_deliveries WHERE endpoint = ?1 AND seq <= \
                     (SELECT floor FROM webhook_endpoints WHERE endpoint = ?1)",
                )?
                .execute([&endpoint])?;
                Ok(())
            })
            .await
    }
}
