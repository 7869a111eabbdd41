//! Reuse of recently minted tokens.
//!
//! Signing is the expensive part of a mint (an RSA-2048 private-key
//! operation). A session read by every page of an app would sign on every
//! page; instead, a token is handed out again while more than a configured
//! share of its lifetime remains, its key still signs, and its claims are
//! still what a new token would carry. `fresh: true` bypasses the cache.
//!
//! The cache is bounded: each entry leaves when it can no longer be reused
//! (its own deadline), and when the cache is full the coldest entries leave
//! first (moka's TinyLFU admission and LRU eviction), so a burst of new
//! sessions never empties it of the ones in use.

use moka::sync::Cache;
use std::time::{Duration, Instant};

/// What a new token would say, besides `iat` and `exp`: if any of it changed,
/// the cached token is stale.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Identity {
    pub kid: String,
    pub claims: String,
}

#[derive(Clone)]
pub struct Cached {
    pub token: String,
    pub iat: i64,
    pub exp: i64,
    pub identity: Identity,
}

/// A cached token with the moment (on the monotonic clock) past which it is
/// no longer worth keeping.
#[derive(Clone)]
struct Entry {
    cached: Cached,
    keep_for: Duration,
}

struct UntilUnusable;

impl moka::Expiry<[u8; 32], Entry> for UntilUnusable {
    fn expire_after_create(&self, _: &[u8; 32], entry: &Entry, _: Instant) -> Option<Duration> {
        Some(entry.keep_for)
    }

    fn expire_after_update(
        &self,
        _: &[u8; 32],
        entry: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.keep_for)
    }
}

pub struct TokenCache {
    /// `None` when the capacity is 0 (reuse is off).
    entries: Option<Cache<[u8; 32], Entry>>,
    /// Reuse only while `exp - now > share * (exp - iat)`.
    min_remaining_share: f64,
}

impl TokenCache {
    pub fn new(capacity: usize, min_remaining_share: f64) -> Self {
        let entries = (capacity > 0).then(|| {
            Cache::builder()
                .max_capacity(capacity as u64)
                .expire_after(UntilUnusable)
                .build()
        });
        TokenCache {
            entries,
            min_remaining_share,
        }
    }

    /// The last moment (ms) at which `cached` may still be handed out.
    fn reusable_until(&self, cached: &Cached) -> i64 {
        let lifetime = (cached.exp - cached.iat) as f64;
        cached.exp - (self.min_remaining_share * lifetime).ceil() as i64
    }

    /// A cached token for this session that is still good to hand out.
    pub fn get(
        &self,
        session: &[u8; 32],
        now: i64,
        max_exp: i64,
        identity: &Identity,
    ) -> Option<Cached> {
        let entry = self.entries.as_ref()?.get(session)?;
        let cached = entry.cached;
        let lifetime = (cached.exp - cached.iat) as f64;
        let fresh_enough = (cached.exp - now) as f64 > self.min_remaining_share * lifetime;
        (fresh_enough && cached.exp <= max_exp && cached.identity == *identity).then_some(cached)
    }

    pub fn put(&self, session: [u8; 32], cached: Cached, now: i64) {
        let Some(entries) = &self.entries else {
            return;
        };
        let left_ms = self.reusable_until(&cached).saturating_sub(now);
        let Ok(left_ms) = u64::try_from(left_ms) else {
            // Already past reuse: not worth a slot.
            return;
        };
        let keep_for = Duration::from_millis(left_ms);
        entries.insert(session, Entry { cached, keep_for });
    }

    /// Entries held now (after pending evictions are applied); for tests.
    #[cfg(test)]
    fn len(&self) -> u64 {
        self.entries.as_ref().map_or(0, |entries| {
            entries.run_pending_tasks();
            entries.entry_count()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            kid: "k".into(),
            claims: "sub=u".into(),
        }
    }

    fn cached(iat: i64, exp: i64) -> Cached {
        Cached {
            token: "t".into(),
            iat,
            exp,
            identity: identity(),
        }
    }

    #[test]
    fn reused_while_enough_lifetime_remains() {
        let cache = TokenCache::new(10, 0.5);
        cache.put([1; 32], cached(0, 100_000), 0);
        assert!(cache
            .get(&[1; 32], 49_000, 1_000_000, &identity())
            .is_some());
        assert!(cache
            .get(&[1; 32], 50_000, 1_000_000, &identity())
            .is_none());
        assert!(cache.get(&[2; 32], 0, 1_000_000, &identity()).is_none());
    }

    #[test]
    fn not_reused_past_the_session_or_with_other_claims() {
        let cache = TokenCache::new(10, 0.5);
        cache.put([1; 32], cached(0, 100_000), 0);
        assert!(
            cache.get(&[1; 32], 10, 99_000, &identity()).is_none(),
            "session now ends earlier"
        );
        let renamed = Identity {
            kid: "k".into(),
            claims: "sub=u;name=x".into(),
        };
        assert!(cache.get(&[1; 32], 10, 1_000_000, &renamed).is_none());
        let rotated = Identity {
            kid: "k2".into(),
            claims: "sub=u".into(),
        };
        assert!(cache.get(&[1; 32], 10, 1_000_000, &rotated).is_none());
    }

    #[test]
    fn bounded() {
        let cache = TokenCache::new(2, 0.5);
        for i in 0..10u8 {
            cache.put([i; 32], cached(0, 100_000), 0);
        }
        assert!(cache.len() <= 2, "{}", cache.len());
        let off = TokenCache::new(0, 0.5);
        off.put([1; 32], cached(0, 100_000), 0);
        assert!(off.get(&[1; 32], 0, 1_000_000, &identity()).is_none());
    }

    #[test]
    fn a_full_cache_keeps_the_tokens_in_use_and_drops_the_unusable() {
        let cache = TokenCache::new(100, 0.5);
        let now = 1_000_000;
        // Sessions read on every page: each read several times.
        for i in 0..50u8 {
            cache.put([i; 32], cached(now, now + 300_000), now);
            for _ in 0..5 {
                assert!(cache.get(&[i; 32], now, i64::MAX, &identity()).is_some());
            }
        }
        // A flood of sessions seen once: the cache stays bounded, and the
        // hot ones are not thrown out with them (the old cache emptied itself).
        for i in 0..2_000u16 {
            let mut key = [0xff; 32];
            key[..2].copy_from_slice(&i.to_be_bytes());
            cache.put(key, cached(now, now + 300_000), now);
        }
        assert!(cache.len() <= 100, "{}", cache.len());
        let kept = (0..50u8)
            .filter(|i| cache.get(&[*i; 32], now, i64::MAX, &identity()).is_some())
            .count();
        assert!(kept >= 45, "only {kept} of 50 tokens in use were kept");
        // A token past its reuse deadline takes no slot.
        cache.put([200; 32], cached(0, 100_000), 60_000);
        assert!(cache
            .get(&[200; 32], 60_000, i64::MAX, &identity())
            .is_none());
    }

    #[test]
    fn an_entry_leaves_when_it_can_no_longer_be_reused() {
        let cache = TokenCache::new(10, 0.5);
        // Reusable for 40 ms more (exp 100 ms after iat, half must remain).
        cache.put([1; 32], cached(0, 100), 10);
        assert_eq!(cache.len(), 1);
        // moka's timer wheel works in steps of about a second.
        let deadline = Instant::now() + Duration::from_secs(10);
        while cache.len() > 0 {
            assert!(Instant::now() < deadline, "the entry outlived its deadline");
            #[allow(clippy::disallowed_methods)] // a test's own thread
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
