//! Background work on the server's runtime: purging expired rows (Auth.js
//! never does) and stepping the signing-key schedule.

use crate::clock::Clock;
use crate::issuer::Issuer;
use crate::store::{Purged, Store};
use std::sync::Arc;
use std::time::Duration;

/// Every `every`, deletes expired sessions and verification tokens in
/// batches of `batch` (one short write each, so other writes interleave).
pub fn spawn_purge(store: Arc<dyn Store>, clock: Arc<dyn Clock>, every: Duration, batch: usize) {
    actix_web::rt::spawn(async move {
        let mut ticks = actix_web::rt::time::interval(every);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let now = clock.now();
            let mut total = Purged::default();
            loop {
                match store.purge_expired(now, batch).await {
                    Ok(purged) => {
                        total.sessions += purged.sessions;
                        total.verification_tokens += purged.verification_tokens;
                        if purged.sessions < batch && purged.verification_tokens < batch {
                            break;
                        }
                    }
                    Err(e) => {
                        log::error!("purging expired rows failed: {e}");
                        break;
                    }
                }
            }
            log::info!(
                "purge removed {} expired sessions and {} expired verification tokens",
                total.sessions,
                total.verification_tokens
            );
        }
    });
}

/// Every `every`, applies due key-schedule steps and reloads the keys, so a
/// `next` key starts signing and a rotation made by the CLI is picked up
/// without a restart.
pub fn spawn_key_check(issuer: Arc<Issuer>, every: Duration) {
    actix_web::rt::spawn(async move {
        let mut ticks = actix_web::rt::time::interval(every);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if let Err(e) = issuer.maintain().await {
                log::error!("signing key check failed: {e}");
            }
        }
    });
}
