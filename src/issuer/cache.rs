//! Reuse of recently minted tokens.
//!
//! Signing is the expensive part of a mint (an RSA-2048 private-key
//! operation). A session read by every page of an app would sign on every
//! page; instead, a token is handed out again while more than a configured
//! share of its lifetime remains, its key still signs, and its claims are
//! still what a new token would carry. `fresh: true` bypasses the cache.

use std::collections::HashMap;
use std::sync::Mutex;

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

pub struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], Cached>>,
    capacity: usize,
    /// Reuse only while `exp - now > share * (exp - iat)`.
    min_remaining_share: f64,
}

impl TokenCache {
    pub fn new(capacity: usize, min_remaining_share: f64) -> Self {
        TokenCache {
            entries: Mutex::new(HashMap::new()),
            capacity,
            min_remaining_share,
        }
    }

    /// A cached token for this session that is still good to hand out.
    pub fn get(
        &self,
        session: &[u8; 32],
        now: i64,
        max_exp: i64,
        identity: &Identity,
    ) -> Option<Cached> {
        if self.capacity == 0 {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let cached = entries.get(session)?;
        let lifetime = (cached.exp - cached.iat) as f64;
        let fresh_enough = (cached.exp - now) as f64 > self.min_remaining_share * lifetime;
        (fresh_enough && cached.exp <= max_exp && cached.identity == *identity)
            .then(|| cached.clone())
    }

    pub fn put(&self, session: [u8; 32], cached: Cached, now: i64) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&session) {
            entries.retain(|_, c| c.exp > now);
            if entries.len() >= self.capacity {
                // Still full of live tokens: start over rather than grow.
                entries.clear();
            }
        }
        entries.insert(session, cached);
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
        cache.put([1; 32], cached(0, 100), 0);
        assert!(cache.get(&[1; 32], 49, 1000, &identity()).is_some());
        assert!(cache.get(&[1; 32], 50, 1000, &identity()).is_none());
        assert!(cache.get(&[2; 32], 0, 1000, &identity()).is_none());
    }

    #[test]
    fn not_reused_past_the_session_or_with_other_claims() {
        let cache = TokenCache::new(10, 0.5);
        cache.put([1; 32], cached(0, 100), 0);
        assert!(
            cache.get(&[1; 32], 10, 99, &identity()).is_none(),
            "session now ends earlier"
        );
        let renamed = Identity {
            kid: "k".into(),
            claims: "sub=u;name=x".into(),
        };
        assert!(cache.get(&[1; 32], 10, 1000, &renamed).is_none());
        let rotated = Identity {
            kid: "k2".into(),
            claims: "sub=u".into(),
        };
        assert!(cache.get(&[1; 32], 10, 1000, &rotated).is_none());
    }

    #[test]
    fn bounded() {
        let cache = TokenCache::new(2, 0.5);
        for i in 0..10u8 {
            cache.put([i; 32], cached(0, 100), 0);
        }
        assert!(cache.entries.lock().unwrap().len() <= 2);
        let off = TokenCache::new(0, 0.5);
        off.put([1; 32], cached(0, 100), 0);
        assert!(off.get(&[1; 32], 0, 1000, &identity()).is_none());
    }
}
