//! `x-request-id` and `traceparent` on every response, and the access and
//! error log lines that carry them.
//!
//! A well-formed incoming id (1-64 characters of letters, digits, `.`, `_`,
//! `-`) is kept, so one id follows a request through a proxy and the app;
//! otherwise the server makes one. A well-formed W3C `traceparent` is
//! continued (same trace, a span of this server's own), otherwise a trace
//! starts; the request runs inside it (`trace::scope`), so the events it
//! writes record it and their webhook delivery carries it on. The access
//! line and the error line for a 500 or 503 name both, so a client's report
//! leads to the cause.

use crate::error::Error;
use crate::trace::TraceContext;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Where the access lines are logged.
pub const ACCESS_TARGET: &str = "authstore::access";

/// The request's id, for handlers that log it (the console's audit lines).
#[derive(Clone)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    /// The id of `req`, or "-" outside the middleware.
    pub fn of(req: &actix_web::HttpRequest) -> String {
        req.extensions()
            .get::<RequestId>()
            .and_then(|id| id.0.to_str().ok().map(str::to_owned))
            .unwrap_or_else(|| "-".to_owned())
    }
}

pub async fn tag(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let incoming = req
        .headers()
        .get(&HEADER)
        .filter(|value| well_formed(value.as_bytes()))
        .cloned();
    let id = match incoming {
        Some(id) => id,
        None => HeaderValue::from_str(&generate())
            .map_err(actix_web::error::ErrorInternalServerError)?,
    };
    let trace = TraceContext::continue_or_start(
        req.headers()
            .get(&TRACEPARENT)
            .and_then(|value| value.to_str().ok()),
    );
    req.extensions_mut().insert(RequestId(id.clone()));
    // Made-up methods are not echoed into the log. The line's parts are
    // made only when it is written (RUST_LOG may silence it).
    let method = super::metrics::method_label(req.method());
    let access = log::log_enabled!(target: ACCESS_TARGET, log::Level::Info);
    let path = access.then(|| req.path().to_owned());
    let mut res = crate::trace::scope(trace, next.call(req)).await?;
    let shown = id.to_str().unwrap_or("-");
    if let Some(error) = res.response().error().and_then(|e| e.as_error::<Error>()) {
        let level = match error {
            Error::Internal(_) => Some(log::Level::Error),
            Error::Unavailable(_) => Some(log::Level::Warn),
            _ => None,
        };
        if let Some(level) = level {
            let (trace_id, causes) = (trace.trace_id(), crate::logging::causes(error));
            log::log!(
                level,
                request_id = shown, trace_id = trace_id.as_str(),
                error = error.to_string().as_str(), causes:serde = causes;
                "request {shown} trace {trace_id}: {}", error.log_text()
            );
        }
    }
    if let Some(path) = path {
        let status = res.status().as_u16();
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        let trace_id = trace.trace_id();
        log::info!(
            target: ACCESS_TARGET,
            request_id = shown, trace_id = trace_id.as_str(), method = method,
            route = route.as_str(), path = path.as_str(), status = status,
            duration_ms = duration_ms;
            "{method} {path} {status} {duration_ms:.3}ms id={shown} trace={trace_id}"
        );
    }
    res.headers_mut().insert(HEADER, id);
    if let Ok(value) = HeaderValue::from_str(&trace.header()) {
        res.headers_mut().insert(TRACEPARENT, value);
    }
    Ok(res)
}

fn well_formed(id: &[u8]) -> bool {
    (1..=64).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A random per-process prefix and a counter: unique, and cheap on the hot path.
fn generate() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 6];
        let _ = openssl::rand::rand_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    });
    format!("{prefix}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_kept() {
        assert!(well_formed(b"abc-123_x.y"));
        assert!(!well_formed(b""));
        assert!(!well_formed(&[b'a'; 65]));
        assert!(!well_formed(b"has space"));
        assert!(!well_formed(b"line\nbreak"));
        assert_ne!(generate(), generate());
    }
}
