//! The one error type of authstore and its mapping to HTTP.
//!
//! Every failure a client can see has a stable `code`. Internal causes are
//! logged where the response is built and never sent to the client.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use serde_json::json;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing or wrong secret: one answer for both, so a caller learns nothing.
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// Authenticated, but the request may not do this (the console: a foreign
    /// `Origin`, a missing CSRF token).
    #[error("{0}")]
    Forbidden(String),
    /// Malformed input; the message names the offending field.
    #[error("{0}")]
    BadRequest(String),
    /// The row or route asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A unique constraint refused the write.
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The body did not arrive in time.
    #[error("the request body did not arrive within {secs} s")]
    RequestTimeout { secs: u64 },
    /// A known route asked with another HTTP method; `allow` lists its methods.
    #[error("this route answers {allow} only")]
    MethodNotAllowed { allow: &'static str },
    /// The storage cannot serve this now (disk full, read-only, I/O error,
    /// locked past the deadline, no free connection): the client may retry.
    /// The reason is for the log only.
    #[error("the database is unavailable right now; retry shortly")]
    Unavailable(String),
    /// Anything else. The cause is for the log only.
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl Error {
    pub fn internal(cause: impl Into<BoxError>) -> Self {
        Error::Internal(cause.into())
    }

    /// The text for the server log: for an internal error, its cause (which
    /// the client never sees).
    pub fn log_text(&self) -> String {
        match self {
            Error::Internal(cause) => {
                // The whole chain of causes: the log is where a bug is found.
                let mut text = format!("internal error: {cause}");
                let mut source = cause.source();
                while let Some(next) = source {
                    text.push_str(&format!(": {next}"));
                    source = next.source();
                }
                text
            }
            Error::Unavailable(reason) => format!("storage unavailable: {reason}"),
            other => other.to_string(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthorized => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::BadRequest(_) => "bad_request",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::MethodNotAllowed { .. } => "method_not_allowed",
            Error::RequestTimeout { .. } => "request_timeout",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Error::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Error::Unauthorized => {
                response.insert_header(("WWW-Authenticate", "Bearer"));
            }
            Error::MethodNotAllowed { allow } => {
                response.insert_header(("Allow", *allow));
            }
            Error::Unavailable(_) => {
                response.insert_header(("Retry-After", "1"));
            }
            _ => {}
        }
        response.json(json!({ "error": { "code": self.code(), "message": self.to_string() } }))
    }
}

impl From<openssl::error::ErrorStack> for Error {
    fn from(e: openssl::error::ErrorStack) -> Self {
        Error::internal(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
