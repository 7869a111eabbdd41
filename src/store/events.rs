//! Events: every change that ends someone's access, written in the same
//! transaction as the change (an outbox), kept as the audit log
//! (`authstore audit`) for [`RETENTION_DAYS`].

use crate::model::AccountKey;
use crate::store::{session_id, Digest};
use crate::timestamp::Timestamp;

/// How long events are kept (the purge removes older ones).
pub const RETENTION_DAYS: u64 = 30;

/// The oldest `at` an event may have at `now` and still be kept.
pub fn kept_from(now: Timestamp) -> Timestamp {
    Timestamp::from_millis(now.millis() - (RETENTION_DAYS * 24 * 3600 * 1000) as i64)
}

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
    /// The W3C trace id of the request that made the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

fn iso<S: serde::Serializer>(at: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_iso())
}

/// When a change happens and the trace of the request that made it:
/// taken on the caller's task (a backend may write on a thread of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occasion {
    pub at: Timestamp,
    /// The W3C trace id of the request (see `trace`); none for the purge.
    pub trace_id: Option<String>,
}

impl Occasion {
    /// Now by `clock`, in the trace of the request being served, if any.
    pub fn now(clock: &dyn crate::clock::Clock) -> Occasion {
        Occasion {
            at: clock.now(),
            trace_id: crate::trace::current().map(|t| t.trace_id()),
        }
    }

    /// At `at`, outside any request (the purge).
    pub fn background(at: Timestamp) -> Occasion {
        Occasion { at, trace_id: None }
    }
}

/// The event a change writes, decided here once for both backends: its
/// type, `sid`, detail, actor, time and trace. Its user is the owner of the
/// row the change removes, which a backend learns as it removes it; a
/// backend only writes the event, in the transaction of the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Unique (UUID v4): what a receiver deduplicates on.
    pub id: String,
    pub kind: EventType,
    pub sid: Option<String>,
    /// JSON text.
    pub detail: Option<String>,
    pub actor: Option<String>,
    pub at: Timestamp,
    pub trace_id: Option<String>,
}

impl NewEvent {
    fn new(kind: EventType, actor: Option<&str>, occasion: &Occasion) -> NewEvent {
        NewEvent {
            id: new_id(),
            kind,
            sid: None,
            detail: None,
            actor: actor.map(str::to_owned),
            at: occasion.at,
            trace_id: occasion.trace_id.clone(),
        }
    }

    /// One session ended: signed out, or revoked in the console (`actor`).
    pub fn session_deleted(digest: &Digest, actor: Option<&str>, at: &Occasion) -> NewEvent {
        NewEvent {
            sid: Some(session_id(digest)),
            ..NewEvent::new(EventType::SessionDeleted, actor, at)
        }
    }

    /// One session removed by the purge after it expired.
    pub fn session_expired(digest: &Digest, at: &Occasion) -> NewEvent {
        NewEvent {
            sid: Some(session_id(digest)),
            ..NewEvent::new(EventType::SessionExpired, None, at)
        }
    }

    /// Every session of a user revoked at once: one event naming each sid.
    pub fn user_sessions_revoked<'a>(
        digests: impl IntoIterator<Item = &'a Digest>,
        actor: Option<&str>,
        at: &Occasion,
    ) -> NewEvent {
        let mut sids: Vec<String> = digests.into_iter().map(session_id).collect();
        // In one order whatever order the backend removed them in.
        sids.sort_unstable();
        NewEvent {
            detail: Some(serde_json::json!({ "sids": sids }).to_string()),
            ..NewEvent::new(EventType::UserSessionsRevoked, actor, at)
        }
    }

    /// A user deleted, with everything of theirs.
    pub fn user_deleted(actor: Option<&str>, at: &Occasion) -> NewEvent {
        NewEvent::new(EventType::UserDeleted, actor, at)
    }

    /// An account unlinked (by Auth.js, or by `actor` from the console): the
    /// detail names its provider and id there.
    pub fn account_unlinked(key: &AccountKey, actor: Option<&str>, at: &Occasion) -> NewEvent {
        let detail = serde_json::json!({
            "provider": key.provider,
            "providerAccountId": key.provider_account_id,
        });
        NewEvent {
            detail: Some(detail.to_string()),
            ..NewEvent::new(EventType::AccountUnlinked, actor, at)
        }
    }
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

/// Wakes this process's delivery workers after it commits an event (other
/// processes' events are found by polling).
#[derive(Debug)]
pub struct EventSignal(tokio::sync::watch::Sender<u64>);

impl Default for EventSignal {
    fn default() -> Self {
        EventSignal(tokio::sync::watch::channel(0).0)
    }
}

impl EventSignal {
    /// Says that events were committed.
    pub fn written(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees every `written` after this call.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// Delivery state of the `[[webhooks]]` endpoints, each named by a key
/// derived from its URL (see `webhooks::endpoint_key`).
///
/// Per endpoint the database keeps a floor (every event at or below it is
/// delivered, or predates the endpoint) and the events delivered above it.
/// A floor alone would do on SQLite, where events get their `seq` in commit
/// order; on PostgreSQL a lower `seq` can commit after a higher one, so the
/// floor moves only while no event is in flight (`store::postgres::outbox`).
#[async_trait::async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Fires when this process commits an event.
    fn event_signal(&self) -> &EventSignal;

    /// Makes `owner` the process delivering to `endpoint` until `until`,
    /// when no other process holds it past `now` (an endpoint seen for the
    /// first time starts after the newest event). False: another one does.
    async fn claim_endpoint(
        &self,
        endpoint: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> crate::store::Result<bool>;

    /// Lets go of every endpoint `owner` holds (a server stopping), so
    /// another process takes over at once rather than when the lease ends.
    async fn release_endpoints(&self, owner: &str) -> crate::store::Result<()>;

    /// The oldest events of `kinds` not yet delivered to `endpoint`, in order.
    async fn pending_events(
        &self,
        endpoint: &str,
        kinds: &[EventType],
        limit: usize,
    ) -> crate::store::Result<Vec<Event>>;

    /// Records `seqs` as delivered to `endpoint` and moves its floor up.
    async fn mark_delivered(
        &self,
        endpoint: &str,
        kinds: &[EventType],
        seqs: &[i64],
        now: Timestamp,
    ) -> crate::store::Result<()>;
}

/// The event type names of `kinds`, as the stores filter on them.
pub fn kind_names(kinds: &[EventType]) -> Vec<&'static str> {
    kinds.iter().map(|k| k.name()).collect()
}
