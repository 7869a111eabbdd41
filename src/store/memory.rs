//! An in-memory [`KeyStore`] for unit tests of the issuer: the same
//! compare-and-swap contract as the backends, and a switch that makes every
//! call fail as an unreachable database does.

use super::{KeyChanges, KeySet, KeyStore, Result, Saved, StoreError};
use async_trait::async_trait;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct MemoryKeys {
    set: Mutex<KeySet>,
    down: AtomicBool,
}

impl MemoryKeys {
    /// Every call fails with `Unavailable` while `down`.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn check(&self) -> Result<std::sync::MutexGuard<'_, KeySet>> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the test store is down".into()));
        }
        Ok(self.set.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[async_trait]
impl KeyStore for MemoryKeys {
    async fn signing_keys(&self) -> Result<KeySet> {
        Ok(self.check()?.clone())
    }

    async fn key_set_version(&self) -> Result<i64> {
        Ok(self.check()?.version)
    }

    async fn save_signing_keys(&self, expected_version: i64, changes: KeyChanges) -> Result<Saved> {
        let mut set = self.check()?;
        if set.version != expected_version {
            return Ok(Saved::Stale);
        }
        if changes
            .insert
            .iter()
            .any(|new| set.keys.iter().any(|k| k.kid == new.kid))
        {
            return Err(StoreError::Conflict(super::Duplicate::SigningKey));
        }
        set.keys.extend(changes.insert);
        for changed in changes.reschedule {
            if let Some(key) = set.keys.iter_mut().find(|k| k.kid == changed.kid) {
                key.signs_from = changed.signs_from;
                key.retires_at = changed.retires_at;
                key.unpublish_at = changed.unpublish_at;
            }
        }
        for kid in &changes.erase {
            if let Some(key) = set.keys.iter_mut().find(|k| &k.kid == kid) {
                key.private_key_der = None;
            }
        }
        set.keys.retain(|k| !changes.delete.contains(&k.kid));
        set.keys.sort_by_key(|k| (k.signs_from, k.created_at));
        set.version += 1;
        Ok(Saved::Applied)
    }
}
