//! A person's own sessions: where each came from and when it was last
//! seen (shown by `/api/sessions/list` and the console), and ending them
//! (`/api/sessions/revoke`, `revokeOthers`, the console) with the events a
//! sign-out writes.

use super::{Digest, Result};
use crate::timestamp::Timestamp;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// A live session, by its stored digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    pub digest: Digest,
    pub expires: Timestamp,
    /// When it was created; none for a session from before this was kept.
    pub created_at: Option<Timestamp>,
    /// When it was last used (`getSessionAndUser`, `updateSession`).
    pub last_seen_at: Option<Timestamp>,
    pub user_agent: Option<String>,
    /// As `session_ip` kept it.
    pub ip: Option<String>,
}

#[async_trait]
pub trait SessionsStore: Send + Sync + 'static {
    /// The user's sessions that have not expired, soonest expiry first.
    async fn user_sessions(&self, user_id: &str, now: Timestamp) -> Result<Vec<LiveSession>>;
    /// Deletes the user's sessions with these digests (all of them when
    /// `None`), writing the events a sign-out writes and who did it
    /// (`actor`, a console session id; none when the app did); answers how
    /// many went.
    async fn delete_user_sessions(
        &self,
        user_id: &str,
        digests: Option<Vec<Digest>>,
        actor: Option<&str>,
    ) -> Result<u64>;
    /// Deletes every session of the user of the session with `digest` but
    /// that one, in one transaction, each with its `session.deleted` event;
    /// answers how many went (0 when that session is gone).
    async fn delete_other_sessions(&self, digest: Digest) -> Result<u64>;
    /// Moves each session's `last_seen_at` up to its time (never back), in
    /// one write; sessions gone meanwhile are skipped.
    async fn record_seen(&self, seen: Vec<(Digest, Timestamp)>) -> Result<()>;
}

/// How often at most a session's `last_seen_at` is written.
pub const SEEN_EVERY: Duration = Duration::from_secs(60);

/// `lastSeenAt` without a write per read. A lookup reads the session's
/// stored `last_seen_at` with it; only when that is a minute old or more
/// is the session noted here (a map, so many lookups in the same second
/// make one note), and a job writes the notes, in one batch, every second
/// (`jobs::spawn_seen_flush`). Deciding by the stored value keeps to once a
/// minute whatever the number of servers. A server that stops loses at most
/// that second's notes; the column is a hint, not a record.
#[derive(Default)]
pub struct SeenTracker {
    /// Noted, not written yet.
    pending: Mutex<HashMap<Digest, Timestamp>>,
}

impl SeenTracker {
    /// The session of `session_token`, last seen at `stored`, was used at
    /// `now`. A session seen within the minute costs one comparison.
    pub fn seen(&self, session_token: &str, stored: Option<Timestamp>, now: Timestamp) {
        let every = SEEN_EVERY.as_millis() as i64;
        if stored.is_some_and(|at| now.millis() - at.millis() < every) {
            return;
        }
        let digest = super::token_digest(session_token);
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.insert(digest, now);
    }

    /// What was noted since the last call.
    pub fn take(&self) -> Vec<(Digest, Timestamp)> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.drain().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_noted_when_its_stored_time_is_a_minute_old() {
        let tracker = SeenTracker::default();
        let (a, c) = (
            super::super::token_digest("a"),
            super::super::token_digest("c"),
        );
        let at = |secs: i64| Timestamp::from_millis(1_000_000 + secs * 1000);
        tracker.seen("a", None, at(0));
        tracker.seen("a", None, at(0));
        tracker.seen("b", Some(at(0)), at(59));
        tracker.seen("c", Some(at(0)), at(60));
        let (mut noted, mut expected) = (tracker.take(), vec![(a, at(0)), (c, at(60))]);
        noted.sort();
        expected.sort();
        assert_eq!(noted, expected);
        assert!(tracker.take().is_empty(), "handed over once");
    }
}
