//! Events: every change that ends someone's access, written in the same
//! transaction as the change (an outbox), kept as the audit log
//! (`authstore audit`) for [`RETENTION_DAYS`].

use crate::timestamp::Timestamp;

/// How long events are kept (the purge removes older ones).
pub const RETENTION_DAYS: u64 = 30;

/// What ended access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// One session deleted: sign-out (Auth.js `deleteSession`) or revoked in the console.
    SessionDeleted,
    /// One session removed by the purge after it expired.
    SessionExpired,
    /// Every session of a user revoked at once (the console).
    UserSessionsRevoked,
    /// A user deleted, with everything of theirs.
    UserDeleted,
    /// An account unlinked from its user.
    AccountUnlinked,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::SessionDeleted,
        EventType::SessionExpired,
        EventType::UserSessionsRevoked,
        EventType::UserDeleted,
        EventType::AccountUnlinked,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventType::SessionDeleted => "session.deleted",
            EventType::SessionExpired => "session.expired",
            EventType::UserSessionsRevoked => "user.sessions_revoked",
            EventType::UserDeleted => "user.deleted",
            EventType::AccountUnlinked => "account.unlinked",
        }
    }

    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Order of writing (per database).
    pub seq: i64,
    /// Unique: what a receiver deduplicates on.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub user_id: Option<String>,
    /// The session's `sid`, as in its tokens.
    pub sid: Option<String>,
    /// More about it, as JSON text (an unlinked account's provider and id).
    pub detail: Option<String>,
    /// Who did it: a console session's id; none when the app did.
    pub actor: Option<String>,
    #[serde(serialize_with = "iso")]
    pub at: Timestamp,
}

fn iso<S: serde::Serializer>(at: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_iso())
}

/// Which events `authstore audit` lists: newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub kind: Option<EventType>,
    pub user_id: Option<String>,
    pub since: Option<Timestamp>,
    pub limit: usize,
}

/// A new event id (UUID v4).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
