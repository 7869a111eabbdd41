//! Delivering events to the `[[webhooks]]` endpoints.
//!
//! One worker per endpoint per process; of all the processes on a database
//! one at a time delivers to an endpoint (a lease of [`LEASE`] in the
//! database, renewed while it works), so events go out in order. The worker
//! sends the oldest undelivered events of the endpoint's types, a batch per
//! request, and marks them delivered once the endpoint answers 2xx; on any
//! other answer it waits (1 s, doubling up to the endpoint's
//! `retry_max_secs`) and sends the same events again, so nothing is skipped
//! and order holds per user (and overall). Events wait in the database: a
//! restart, a receiver that is down, or a process that dies mid-request
//! loses none. A request may be repeated (the answer was lost): receivers
//! deduplicate on the event `id`.
//!
//! The request:
//!
//! ```text
//! POST <url>
//! Content-Type: application/json
//! Authstore-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//!
//! {"delivery":"<uuid, new for every request>",
//!  "events":[{"id":"<uuid>","type":"session.deleted","userId":"…","sid":"…",
//!             "sids":[…],"detail":{…},"at":<ms>,"expiresAt":<ms>}]}
//! ```
//!
//! `expiresAt` is `at` plus `token_lifetime_secs`: no token of the ended
//! session outlives it, so a receiver may forget the revocation then.

use crate::clock::{Clock, SystemClock};
use crate::secret::Secret;
use crate::store::events::{Event, EventType, Outbox};
use crate::trace::TraceContext;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Authstore-Signature";
/// Events sent in one request at most.
const BATCH: usize = 100;
/// How long a process holds an endpoint before another may take it over.
const LEASE: Duration = Duration::from_secs(30);
/// The lease is renewed when less than this is left.
const RENEW_BELOW: Duration = Duration::from_secs(20);
/// How often the database is looked at for events other processes wrote.
const POLL: Duration = Duration::from_secs(1);
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One `[[webhooks]]` endpoint: events are POSTed to `url`, signed with
/// `secret` (see `webhooks.rs` for the format).
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    /// The signing secret (at least 32 characters), or `secret_file`.
    pub secret: Option<Secret>,
    pub secret_file: Option<PathBuf>,
    /// The event types sent (`session.deleted` ...); empty sends them all.
    #[serde(default)]
    pub events: Vec<String>,
    /// The longest wait between two attempts when the endpoint fails.
    #[serde(default = "default_retry_max_secs")]
    pub retry_max_secs: u64,
}

/// The URL may carry credentials (`https://user:pw@host/hook?token=...`):
/// `Debug` shows it as logs do.
impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &crate::urls::url_without_credentials(&self.url))
            .field("secret", &self.secret)
            .field("secret_file", &self.secret_file)
            .field("events", &self.events)
            .field("retry_max_secs", &self.retry_max_secs)
            .finish()
    }
}

fn default_retry_max_secs() -> u64 {
    30
}

/// The shortest webhook secret accepted.
pub const MIN_WEBHOOK_SECRET: usize = 32;

/// A configured endpoint, ready to deliver to.
#[derive(Clone)]
pub struct Endpoint {
    /// Names the endpoint's state in the database (a hash of the URL: a URL
    /// may carry credentials, the database must not).
    pub key: String,
    pub url: String,
    secret: Secret,
    pub kinds: Vec<EventType>,
    pub retry_max: Duration,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &url_for_log(&self.url))
            .field("kinds", &self.kinds)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("webhook {url}: {reason}")]
pub struct EndpointError {
    /// Without credentials or query ([`url_for_log`]).
    url: String,
    reason: String,
}

impl Endpoint {
    /// The endpoint of a (validated) `[[webhooks]]` entry, its secret read.
    /// A secret from `secret_file` is held to the same length as `secret`.
    pub fn from_config(webhook: &Webhook) -> Result<Endpoint, EndpointError> {
        let refuse = |reason: String| EndpointError {
            url: url_for_log(&webhook.url),
            reason,
        };
        let secret = match (&webhook.secret, &webhook.secret_file) {
            (Some(secret), _) => secret.clone(),
            (None, Some(path)) => {
                crate::secret::read_file(path).map_err(|e| refuse(e.to_string()))?
            }
            (None, None) => return Err(refuse("set secret or secret_file".into())),
        };
        if secret.expose().len() < MIN_WEBHOOK_SECRET {
            return Err(refuse(format!(
                "the secret{} is shorter than {MIN_WEBHOOK_SECRET} characters; `authstore secret` \
                 prints a good one",
                match &webhook.secret_file {
                    Some(path) if webhook.secret.is_none() => format!(" in {}", path.display()),
                    _ => String::new(),
                }
            )));
        }
        let kinds = match webhook.events.is_empty() {
            true => EventType::ALL.to_vec(),
            false => webhook
                .events
                .iter()
                .filter_map(|name| EventType::parse(name))
                .collect(),
        };
        Ok(Endpoint {
            key: endpoint_key(&webhook.url),
            url: webhook.url.clone(),
            secret,
            kinds,
            retry_max: Duration::from_secs(webhook.retry_max_secs),
        })
    }
}

/// The database's name for an endpoint: 128 bits of a hash of its URL.
pub fn endpoint_key(url: &str) -> String {
    let mut hasher = openssl::sha::Sha256::new();
    hasher.update(b"authstore webhook\0");
    hasher.update(url.as_bytes());
    hex(&hasher.finish()[..16])
}

/// A URL as logs show it: scheme, host and path (no credentials, no query).
pub fn url_for_log(url: &str) -> String {
    crate::urls::url_without_credentials(url)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `Authstore-Signature` value of `body` sent at `t` (unix seconds).
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let key = openssl::pkey::PKey::hmac(secret.as_bytes());
    let mac = key.and_then(|key| {
        let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key)?;
        signer.update(format!("{t}.").as_bytes())?;
        signer.update(body)?;
        signer.sign_to_vec()
    });
    // HMAC with a valid digest does not fail; if OpenSSL ever did, the
    // receiver refuses the empty signature and the events are sent again.
    format!("t={t},v1={}", mac.map(|m| hex(&m)).unwrap_or_default())
}

/// One event as sent.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Sent<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    user_id: Option<&'a str>,
    sid: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<serde_json::Value>,
    at: i64,
    expires_at: i64,
}

/// The body of one request: a fresh delivery id and the events.
pub fn body(events: &[Event], token_lifetime: Duration) -> String {
    let lifetime = i64::try_from(token_lifetime.as_millis()).unwrap_or(i64::MAX);
    let sent: Vec<Sent<'_>> = events
        .iter()
        .map(|event| {
            let mut detail: Option<serde_json::Value> = event
                .detail
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok());
            // A user's revoked sessions travel as `sids`, beside `sid`.
            let sids = match detail.as_mut().and_then(|d| d.as_object_mut()) {
                Some(object) => match object.remove("sids") {
                    Some(serde_json::Value::Array(list)) => list
                        .into_iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                    _ => Vec::new(),
                },
                None => Vec::new(),
            };
            let detail = detail.filter(|d| d.as_object().is_none_or(|o| !o.is_empty()));
            Sent {
                id: &event.id,
                kind: &event.kind,
                user_id: event.user_id.as_deref(),
                sid: event.sid.as_deref(),
                sids,
                detail,
                at: event.at.millis(),
                expires_at: event.at.millis().saturating_add(lifetime),
            }
        })
        .collect();
    serde_json::json!({
        "delivery": uuid::Uuid::new_v4().to_string(),
        "events": sent,
    })
    .to_string()
}

/// How a request went.
enum Outcome {
    Delivered,
    Failed(String),
}

/// Starts one delivery worker per endpoint on the current actix runtime,
/// all holding their endpoints' leases as `owner` (unique per process).
pub fn spawn(
    store: Arc<dyn Outbox>,
    endpoints: Vec<Endpoint>,
    token_lifetime: Duration,
    owner: &str,
) {
    if endpoints.is_empty() {
        return;
    }
    let agent = agent();
    for endpoint in endpoints {
        log::info!(
            "delivering {} events to {}",
            endpoint
                .kinds
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", "),
            url_for_log(&endpoint.url)
        );
        let worker = Worker {
            store: store.clone(),
            endpoint,
            agent: agent.clone(),
            token_lifetime,
            owner: owner.to_owned(),
        };
        actix_web::rt::spawn(worker.run());
    }
}

fn agent() -> ureq::Agent {
    let builder = ureq::AgentBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .redirects(0)
        .user_agent(concat!("authstore/", env!("CARGO_PKG_VERSION")));
    match native_tls::TlsConnector::new() {
        Ok(tls) => builder.tls_connector(Arc::new(tls)),
        Err(e) => {
            log::error!("webhooks: TLS is unavailable ({e}); https endpoints will fail");
            builder
        }
    }
    .build()
}

struct Worker {
    store: Arc<dyn Outbox>,
    endpoint: Endpoint,
    agent: ureq::Agent,
    token_lifetime: Duration,
    /// This worker's name in the endpoint's lease.
    owner: String,
}

impl Worker {
    async fn run(self) {
        let mut written = self.store.event_signal().subscribe();
        let target = url_for_log(&self.endpoint.url);
        let mut lease_until: Option<std::time::Instant> = None;
        let mut failures: u32 = 0;
        // A failure that persists is logged when it starts and when it ends.
        let mut failing: Option<String> = None;
        loop {
            let now = std::time::Instant::now();
            if lease_until.is_none_or(|until| until.saturating_duration_since(now) < RENEW_BELOW) {
                let wall = SystemClock.now();
                let until = wall.plus_secs(LEASE.as_secs());
                match self
                    .store
                    .claim_endpoint(&self.endpoint.key, &self.owner, wall, until)
                    .await
                {
                    Ok(true) => lease_until = Some(now + LEASE),
                    Ok(false) => {
                        // Another process delivers; take over if it stops.
                        lease_until = None;
                        actix_web::rt::time::sleep(POLL * 5).await;
                        continue;
                    }
                    Err(e) => {
                        lease_until = None;
                        report(&mut failing, &target, e.log_text());
                        actix_web::rt::time::sleep(POLL * 5).await;
                        continue;
                    }
                }
            }
            let mut pending = match self
                .store
                .pending_events(&self.endpoint.key, &self.endpoint.kinds, BATCH)
                .await
            {
                Ok(pending) => pending,
                Err(e) => {
                    report(&mut failing, &target, e.log_text());
                    actix_web::rt::time::sleep(POLL).await;
                    continue;
                }
            };
            if pending.is_empty() {
                // Until this process writes an event, or the next poll.
                let _ = actix_web::rt::time::timeout(POLL, written.changed()).await;
                continue;
            }
            // One delivery per trace: it carries on the trace of the request
            // that made its events (the rest follow in the next ones).
            let trace = pending.first().and_then(|e| e.trace_id.clone());
            let same = pending.iter().take_while(|e| e.trace_id == trace).count();
            pending.truncate(same);
            let started = std::time::Instant::now();
            match self.send(&pending).await {
                Outcome::Delivered => {
                    let seqs: Vec<i64> = pending.iter().map(|e| e.seq).collect();
                    if let Err(e) = self
                        .store
                        .mark_delivered(
                            &self.endpoint.key,
                            &self.endpoint.kinds,
                            &seqs,
                            SystemClock.now(),
                        )
                        .await
                    {
                        // Sent again later: receivers deduplicate.
                        report(&mut failing, &target, e.log_text());
                        actix_web::rt::time::sleep(POLL).await;
                        continue;
                    }
                    failures = 0;
                    if failing.take().is_some() {
                        log::info!("webhook {target}: delivering again");
                    }
                    let latest = pending.last().map_or(0, |e| e.at.millis());
                    log::debug!(
                        "webhook {target}: delivered {} events in {:?} ({} ms after the newest)",
                        pending.len(),
                        started.elapsed(),
                        SystemClock.now().millis() - latest
                    );
                    if let Some(m) = crate::metrics::get() {
                        m.webhook_events_delivered.inc_by(pending.len() as u64);
                    }
                }
                Outcome::Failed(why) => {
                    if let Some(m) = crate::metrics::get() {
                        m.webhook_failures.inc();
                    }
                    report(&mut failing, &target, why);
                    failures = failures.saturating_add(1);
                    actix_web::rt::time::sleep(backoff(failures, self.endpoint.retry_max)).await;
                }
            }
        }
    }

    async fn send(&self, events: &[Event]) -> Outcome {
        let body = body(events, self.token_lifetime);
        let t = SystemClock.now().millis().div_euclid(1000);
        let signed = signature(self.endpoint.secret.expose(), t, body.as_bytes());
        let trace = events
            .first()
            .and_then(|e| e.trace_id.as_deref())
            .and_then(TraceContext::in_trace)
            .unwrap_or_else(TraceContext::start);
        let request = self
            .agent
            .post(&self.endpoint.url)
            .set("Content-Type", "application/json")
            .set(SIGNATURE_HEADER, &signed)
            .set("traceparent", &trace.header());
        let sent =
            actix_web::rt::task::spawn_blocking(move || outcome(request.send_string(&body))).await;
        sent.unwrap_or_else(|e| Outcome::Failed(format!("the request did not finish: {e}")))
    }
}

/// Only a 2xx answer delivers. Redirects are not followed (the agent is
/// built with none) and a 3xx is a failure like any other: an `http://` URL
/// that redirects to `https://` must be fixed in the configuration, not
/// taken as delivered.
fn outcome(sent: Result<ureq::Response, ureq::Error>) -> Outcome {
    match sent {
        Ok(response) if (200..300).contains(&response.status()) => Outcome::Delivered,
        Ok(response) => Outcome::Failed(match response.header("Location") {
            Some(location) => format!(
                "answered {} (a redirect to {}: redirects are not followed, configure the final URL)",
                response.status(),
                url_for_log(location)
            ),
            None => format!("answered {}", response.status()),
        }),
        Err(ureq::Error::Status(status, _)) => Outcome::Failed(format!("answered {status}")),
        Err(ureq::Error::Transport(e)) => Outcome::Failed(transport_failure(&e)),
    }
}

/// A transport failure with its cause chain ("Connection Failed: TLS
/// handshake failed: certificate verify failed ..."), never the URL's
/// credentials (ureq's own text carries the URL, so it is not used).
fn transport_failure(e: &ureq::Transport) -> String {
    let mut text = e.kind().to_string();
    if let Some(message) = e.message() {
        text.push_str(": ");
        text.push_str(message);
    }
    let mut cause = std::error::Error::source(e);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

fn report(failing: &mut Option<String>, target: &str, why: String) {
    if failing.as_deref() != Some(&why) {
        log::warn!("webhook {target}: {why}; retrying with backoff, events wait in the database");
        *failing = Some(why);
    }
}

/// 1 s after the first failure, doubling, at most `max`.
fn backoff(failures: u32, max: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << exponent).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp::Timestamp;

    #[test]
    fn signature_is_hmac_sha256_over_timestamp_dot_body() {
        // RFC 4231 style check computed independently:
        // HMAC-SHA256("secret", "1700000000.{}").
        let signed = signature("secret", 1_700_000_000, b"{}");
        let key = openssl::pkey::PKey::hmac(b"secret").unwrap();
        let mut signer =
            openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
        signer.update(b"1700000000.{}").unwrap();
        let expected = hex(&signer.sign_to_vec().unwrap());
        assert_eq!(signed, format!("t=1700000000,v1={expected}"));
        assert_eq!(expected.len(), 64);
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let max = Duration::from_secs(30);
        let waits: Vec<u64> = (1..=7).map(|n| backoff(n, max).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(backoff(u32::MAX, max), max);
    }

    #[test]
    fn logs_show_no_credentials_or_query() {
        assert_eq!(
            url_for_log("https://user:pw@example.com/hook?token=abc"),
            "https://example.com/hook"
        );
        assert_eq!(
            url_for_log("http://127.0.0.1:9/x#y"),
            "http://127.0.0.1:9/x"
        );
        assert_eq!(url_for_log("https://example.com"), "https://example.com");
    }

    #[test]
    fn a_secret_file_is_held_to_the_length_of_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hook.secret");
        // Long enough for the shared secret (16), too short for a webhook (32).
        std::fs::write(&path, "0123456789abcdef0123").unwrap();
        let webhook = Webhook {
            url: "https://u:pw@x.example/h".into(),
            secret: None,
            secret_file: Some(path.clone()),
            events: Vec::new(),
            retry_max_secs: 5,
        };
        let err = Endpoint::from_config(&webhook).unwrap_err().to_string();
        assert!(
            err.contains("shorter than 32") && err.contains("hook.secret"),
            "{err}"
        );
        assert!(!err.contains("pw"), "{err}");
        std::fs::write(&path, "a".repeat(MIN_WEBHOOK_SECRET)).unwrap();
        assert!(Endpoint::from_config(&webhook).is_ok());
    }

    #[test]
    fn a_tls_failure_names_its_cause() {
        // A plain-text listener where the URL says https: the handshake fails.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::Write;
            if let Ok((mut stream, _)) = listener.accept() {
                let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            }
        });
        let url = format!("https://user:pw@127.0.0.1:{port}/hook?token=abc");
        let Outcome::Failed(why) = outcome(agent().post(&url).send_string("{}")) else {
            panic!("a failed handshake delivered");
        };
        assert!(why.len() > "Connection Failed".len() + 2, "{why}");
        assert!(
            why.to_lowercase().contains("ssl") || why.to_lowercase().contains("tls"),
            "{why}"
        );
        assert!(!why.contains("pw") && !why.contains("abc"), "{why}");
    }

    #[test]
    fn a_redirect_is_not_a_delivery() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            if let Ok((mut stream, _)) = listener.accept() {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer);
                let _ = stream.write_all(
                    b"HTTP/1.1 307 Temporary Redirect\r\nLocation: https://u:p@elsewhere.example/h?k=v\r\n\
                      Content-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        let url = format!("http://127.0.0.1:{port}/hook");
        let Outcome::Failed(why) = outcome(agent().post(&url).send_string("{}")) else {
            panic!("a redirect delivered");
        };
        assert!(why.starts_with("answered 307"), "{why}");
        assert!(
            why.contains("https://elsewhere.example/h") && !why.contains("k=v"),
            "{why}"
        );
    }

    #[test]
    fn endpoint_keys_differ_per_url_and_hide_it() {
        let a = endpoint_key("https://a.example/hook?key=secret");
        assert_eq!(a.len(), 32);
        assert!(!a.contains("secret"));
        assert_ne!(a, endpoint_key("https://b.example/hook"));
    }

    #[test]
    fn body_carries_sids_and_expiry() {
        let at = Timestamp::from_millis(1_700_000_000_000);
        let event = |kind: &str, sid: Option<&str>, detail: Option<&str>| Event {
            seq: 1,
            id: "e1".into(),
            kind: kind.into(),
            user_id: Some("u1".into()),
            sid: sid.map(str::to_owned),
            detail: detail.map(str::to_owned),
            actor: Some("console".into()),
            at,
            trace_id: None,
        };
        let text = body(
            &[
                event("session.deleted", Some("s1"), None),
                event("user.sessions_revoked", None, Some(r#"{"sids":["a","b"]}"#)),
                event(
                    "account.unlinked",
                    None,
                    Some(r#"{"provider":"github","providerAccountId":"7"}"#),
                ),
            ],
            Duration::from_secs(300),
        );
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["delivery"].as_str().unwrap().len(), 36);
        let events = json["events"].as_array().unwrap();
        assert_eq!(events[0]["sid"], "s1");
        assert_eq!(events[0]["expiresAt"], 1_700_000_300_000i64);
        assert!(events[0].get("detail").is_none());
        assert_eq!(events[1]["sids"], serde_json::json!(["a", "b"]));
        assert!(events[1].get("detail").is_none());
        assert_eq!(events[2]["detail"]["provider"], "github");
        // The actor (a console session) stays in the audit log.
        assert!(!text.contains("console"));
    }
}
