//! `x-request-id` on every response, and the error log lines that carry it.
//!
//! A well-formed incoming id (1-64 characters of letters, digits, `.`, `_`,
//! `-`) is kept, so one id follows a request through a proxy and the app;
//! otherwise the server makes one. The access log line (see `lib.rs`) and
//! the error line for a 500 or 503 name it, so a client's report leads to
//! the cause.

use crate::error::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

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
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut res = next.call(req).await?;
    if let Some(error) = res.response().error().and_then(|e| e.as_error::<Error>()) {
        let shown = id.to_str().unwrap_or("-");
        match error {
            Error::Internal(_) => log::error!("request {shown}: {}", error.log_text()),
            Error::Unavailable(_) => log::warn!("request {shown}: {}", error.log_text()),
            _ => {}
        }
    }
    res.headers_mut().insert(HEADER, id);
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
