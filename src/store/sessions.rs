//! A person's own sessions: where each came from and when it was last
//! seen (shown by `/api/sessions/list` and the console), and ending them
//! (`/api/sessions/revoke`, `revokeOthers`, the console) with the events a
//! sign-out writes.

use super::{Digest, Result};
use crate::timestamp::Timestamp;
use async_trait::async_trait;

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
}
