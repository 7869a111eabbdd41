//! Background work on the server's runtime: purging expired rows (Auth.js
//! never does) and stepping the signing-key schedule.

use crate::clock::Clock;
use crate::issuer::Issuer;
use crate::store::{Maintenance, Purged};
use crate::timestamp::Timestamp;
use std::sync::Arc;
use std::time::Duration;

/// How often the sessions' `last_seen_at` notes are written.
const SEEN_FLUSH: Duration = Duration::from_secs(1);

/// Every second, writes the `last_seen_at` notes lookups left (in one batch).
pub fn spawn_seen_flush(
    store: Arc<dyn crate::store::SessionsStore>,
    tracker: Arc<crate::store::sessions::SeenTracker>,
) {
    actix_web::rt::spawn(async move {
        let mut ticks = actix_web::rt::time::interval(SEEN_FLUSH);
        loop {
            ticks.tick().await;
            let seen = tracker.take();
            if seen.is_empty() {
                continue;
            }
            let count = seen.len();
            if let Err(e) = store.record_seen(seen).await {
                // A hint, not a record: the next lookups note them again.
                log::warn!(
                    "could not record when {count} sessions were last seen: {}",
                    e.log_text()
                );
            }
        }
    });
}

/// How soon after start the first purge pass runs.
const FIRST_PURGE: Duration = Duration::from_secs(5);

/// Every `every`, deletes expired sessions and verification tokens in
/// batches of `batch` (one short write each, so other writes interleave).
pub fn spawn_purge(
    store: Arc<dyn Maintenance>,
    clock: Arc<dyn Clock>,
    every: Duration,
    batch: usize,
) {
    actix_web::rt::spawn(async move {
        // The first pass soon after start: a server restarted more often than
        // `every` must still purge.
        let first = actix_web::rt::time::Instant::now() + every.min(FIRST_PURGE);
        let mut ticks = actix_web::rt::time::interval_at(first, every);
        loop {
            ticks.tick().await;
            let total = purge_pass(store.as_ref(), clock.now(), batch).await;
            if let Some(m) = crate::metrics::get() {
                m.purged_sessions.inc_by(total.sessions as u64);
                m.purged_verification_tokens
                    .inc_by(total.verification_tokens as u64);
                m.purged_events.inc_by(total.events as u64);
            }
            if total != Purged::default() {
                log::info!(
                    "purge removed {} expired sessions, {} expired verification tokens and {} \
                     events past their retention",
                    total.sessions,
                    total.verification_tokens,
                    total.events
                );
            }
        }
    });
}

/// One pass: batches until every table comes back short, so no table
/// (events included) is left growing when another has little to purge.
async fn purge_pass(store: &dyn Maintenance, now: Timestamp, batch: usize) -> Purged {
    let mut total = Purged::default();
    loop {
        match store.purge_expired(now, batch).await {
            Ok(purged) => {
                total.sessions += purged.sessions;
                total.verification_tokens += purged.verification_tokens;
                total.events += purged.events;
                if !purged.filled(batch) {
                    return total;
                }
            }
            Err(e) => {
                log::error!("purging expired rows failed: {}", e.log_text());
                return total;
            }
        }
    }
}

/// How often the server looks for key changes made by another process.
const KEY_WATCH: Duration = Duration::from_secs(1);

/// Every second, reloads the keys when another process changed them (so
/// `keys rotate --now` reaches this server within about a second) and
/// applies a schedule step the moment it is due; every `every`, runs the
/// full check (automatic rotation).
pub fn spawn_key_check(issuer: Arc<Issuer>, every: Duration) {
    actix_web::rt::spawn(async move {
        let mut ticks = actix_web::rt::time::interval(KEY_WATCH);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        let mut last_check = std::time::Instant::now();
        // A failure that persists (say, the database was re-sealed under
        // another KEK) is logged when it starts and when it ends, not every second.
        let mut failing: Option<String> = None;
        loop {
            ticks.tick().await;
            let result = if last_check.elapsed() >= every {
                last_check = std::time::Instant::now();
                issuer.maintain().await
            } else {
                issuer.refresh().await
            };
            match result {
                Err(e) => {
                    let message = e.log_text();
                    if failing.as_ref() != Some(&message) {
                        log::error!("signing key check failed: {message}");
                        failing = Some(message);
                    }
                }
                Ok(()) => {
                    if failing.take().is_some() {
                        log::info!("signing key check works again");
                    }
                }
            }
        }
    });
}
