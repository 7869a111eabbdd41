//! Webhook delivery state on PostgreSQL (see [`crate::store::events::Outbox`]).
//!
//! An event's `seq` is drawn when its row is inserted, not when its
//! transaction commits: a lower `seq` can become visible after a higher one
//! was delivered. So delivered events are recorded one by one, and the floor
//! (below which everything is delivered) moves only at a moment when no
//! event is in flight: every statement that inserts events takes
//! [`EVENTS_WRITER_LOCK`] shared first (a trigger in the schema), and
//! `mark_delivered` moves the floor only when it gets that lock alone. No
//! clock and no timeout is involved, so neither a long transaction nor
//! nodes whose clocks differ can make the floor pass an event.

use super::{event_row, PostgresStore};
use crate::store::events::{kind_names, Event, EventSignal, EventType, Outbox};
use crate::store::Result;
use crate::timestamp::Timestamp;
use async_trait::async_trait;

/// The advisory lock event writers hold shared ("authevnt"; the same
/// number is in schema.postgres.sql's `events_writer_lock`).
pub const EVENTS_WRITER_LOCK: i64 = 0x6175_7468_6576_6e74;

#[async_trait]
impl Outbox for PostgresStore {
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
        self.with(move |client, _| async move {
            let claimed = client
                .execute(
                    "INSERT INTO webhook_endpoints (endpoint, floor, lease_owner, lease_until) \
                     VALUES ($1, (SELECT coalesce(max(seq), 0) FROM events), $2, $3) \
                     ON CONFLICT (endpoint) DO UPDATE SET lease_owner = $2, lease_until = $3 \
                     WHERE webhook_endpoints.lease_owner = $2 \
                     OR webhook_endpoints.lease_until <= $4",
                    &[&endpoint, &owner, &until.millis(), &now.millis()],
                )
                .await?;
            Ok(claimed == 1)
        })
        .await
    }

    async fn release_endpoints(&self, owner: &str) -> Result<()> {
        let owner = owner.to_owned();
        self.with(move |client, _| async move {
            client
                .execute(
                    "UPDATE webhook_endpoints SET lease_owner = NULL, lease_until = 0 \
                     WHERE lease_owner = $1",
                    &[&owner],
                )
                .await?;
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
        let endpoint = endpoint.to_owned();
        let kinds: Vec<String> = kind_names(kinds).into_iter().map(str::to_owned).collect();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |client, _| async move {
            client
                .query(
                    "SELECT e.seq, e.id, e.type, e.user_id, e.sid, e.detail, e.actor, e.at, e.trace_id \
                     FROM webhook_endpoints w JOIN events e ON e.seq > w.floor \
                     WHERE w.endpoint = $1 AND e.type = ANY($2) AND NOT EXISTS \
                     (SELECT 1 FROM webhook_deliveries d WHERE d.endpoint = $1 AND d.seq = e.seq) \
                     ORDER BY e.seq LIMIT $3",
                    &[&endpoint, &kinds, &limit],
                )
                .await?
                .iter()
                .map(event_row)
                .collect()
        })
        .await
    }

    async fn mark_delivered(
        &self,
        endpoint: &str,
        kinds: &[EventType],
        seqs: &[i64],
        _now: Timestamp,
    ) -> Result<()> {
        let endpoint = endpoint.to_owned();
        let kinds: Vec<String> = kind_names(kinds).into_iter().map(str::to_owned).collect();
        let seqs = seqs.to_vec();
        self.with(move |mut client, _| async move {
            let tx = client.transaction().await?;
            tx.execute(
                "INSERT INTO webhook_deliveries (endpoint, seq) SELECT $1, unnest($2::bigint[]) \
                 ON CONFLICT DO NOTHING",
                &[&endpoint, &seqs],
            )
            .await?;
            // Alone with the lock, no event is in flight (and writers wait
            // for this commit): every seq up to the newest is committed or
            // never will be. Else the floor stays; the deliveries above it
            // are recorded one by one all the same.
            let quiet: bool = tx
                .query_one(
                    "SELECT pg_try_advisory_xact_lock($1)",
                    &[&EVENTS_WRITER_LOCK],
                )
                .await?
                .try_get(0)?;
            if quiet {
                // Up to just below the oldest event still to send.
                tx.execute(
                    "UPDATE webhook_endpoints w SET floor = greatest(w.floor, least( \
                     coalesce((SELECT min(e.seq) - 1 FROM events e WHERE e.seq > w.floor \
                       AND e.type = ANY($2) AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
                       WHERE d.endpoint = $1 AND d.seq = e.seq)), 9223372036854775807), \
                     coalesce((SELECT max(e.seq) FROM events e), w.floor))) \
                     WHERE w.endpoint = $1",
                    &[&endpoint, &kinds],
                )
                .await?;
            }
            tx.execute(
                "DELETE FROM webhook_deliveries WHERE endpoint = $1 AND seq <= \
                 (SELECT floor FROM webhook_endpoints WHERE endpoint = $1)",
                &[&endpoint],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}
