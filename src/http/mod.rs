//! HTTP: routes, the shared state they use, and request plumbing.
//!
//! | route                                   | module      | secret |
//! |-----------------------------------------|-------------|--------|
//! | `POST /api/adapter/{method}`            | `adapter`   | yes    |
//! | `POST /api/token`                       | `token`     | yes    |
//! | `POST /api/sessions/{list,revoke,revokeOthers}` | `sessions` | yes |
//! | `GET /.well-known/openid-configuration` | `discovery` | no     |
//! | `GET /.well-known/jwks.json`            | `discovery` | no     |
//! | `GET /healthz`, `GET /readyz`           | `health`    | no     |
//! | `GET /openapi.json`                     | `openapi`   | no     |
//! | `GET /metrics` (own listener)           | `metrics`   | no     |
//! | `/console/…`, `/api/console/…`          | `console`   | console session |

mod adapter;

/// The adapter methods, each routed at `POST /api/adapter/{method}`.
pub use adapter::METHODS as ADAPTER_METHODS;
pub use adapter::{call_method, SessionPolicy};
mod body;
pub mod console;
mod discovery;
mod health;
pub mod metrics;
mod openapi;
pub mod request_id;
mod sessions;
mod store_errors;
mod token;

use crate::error::Error;
use crate::issuer::Issuer;
use crate::secret::Secrets;
use crate::store::Store;
use actix_web::{http::Method, web, HttpRequest, HttpResponse};
use std::sync::Arc;

/// What every handler can reach.
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub issuer: Arc<Issuer>,
    /// The secret, and during a rotation the previous ones.
    pub secrets: Secrets,
    pub max_body_bytes: usize,
    /// The longest a request body may take to arrive.
    pub body_timeout: std::time::Duration,
    /// A console session's absolute lifetime.
    pub console_session_max: std::time::Duration,
    /// How much of a new session's address is kept.
    pub session_ip: crate::model::SessionIp,
    /// Where lookups note when a session was last seen.
    pub seen: Arc<crate::store::sessions::SeenTracker>,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    console::routes(cfg);
    // One static route per method: a pattern with a `{method}` segment is
    // matched by a regex on every request (7% of getSessionAndUser's time).
    for method in adapter::METHODS {
        cfg.service(
            web::resource(format!("/api/adapter/{method}"))
                .route(web::post().to(adapter::call))
                .default_service(web::to(|| not_allowed("POST"))),
        );
    }
    cfg.service(
        web::resource("/api/adapter/{method}")
            .route(web::post().to(adapter::unknown))
            .default_service(web::to(|| not_allowed("POST"))),
    )
    .service(
        web::resource("/api/sessions/list")
            .route(web::post().to(sessions::list))
            .default_service(web::to(|| not_allowed("POST"))),
    )
    .service(
        web::resource("/api/sessions/revoke")
            .route(web::post().to(sessions::revoke))
            .default_service(web::to(|| not_allowed("POST"))),
    )
    .service(
        web::resource("/api/sessions/revokeOthers")
            .route(web::post().to(sessions::revoke_others))
            .default_service(web::to(|| not_allowed("POST"))),
    )
    .service(
        web::resource("/api/token")
            .route(web::post().to(token::mint))
            .default_service(web::to(|| not_allowed("POST"))),
    )
    .service(
        web::resource("/.well-known/openid-configuration")
            .route(web::get().to(discovery::openid_configuration))
            .route(web::head().to(discovery::openid_configuration))
            .route(web::method(Method::OPTIONS).to(discovery::preflight))
            .default_service(web::to(|| not_allowed("GET, HEAD, OPTIONS"))),
    )
    .service(
        web::resource("/.well-known/jwks.json")
            .route(web::get().to(discovery::jwks))
            .route(web::head().to(discovery::jwks))
            .route(web::method(Method::OPTIONS).to(discovery::preflight))
            .default_service(web::to(|| not_allowed("GET, HEAD, OPTIONS"))),
    )
    .service(
        web::resource("/healthz")
            .route(web::get().to(health::alive))
            .route(web::head().to(health::alive))
            .default_service(web::to(|| not_allowed("GET, HEAD"))),
    )
    .service(
        web::resource("/openapi.json")
            .route(web::get().to(openapi::document))
            .route(web::head().to(openapi::document))
            .default_service(web::to(|| not_allowed("GET, HEAD"))),
    )
    .service(
        web::resource("/readyz")
            .route(web::get().to(health::ready))
            .route(web::head().to(health::ready))
            .default_service(web::to(|| not_allowed("GET, HEAD"))),
    )
    .default_service(web::to(no_route));
}

/// A known route asked with a method it does not answer.
async fn not_allowed(allow: &'static str) -> Result<HttpResponse, Error> {
    Err(Error::MethodNotAllowed { allow })
}

async fn no_route(req: HttpRequest) -> Result<HttpResponse, Error> {
    Err(Error::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// Checks `Authorization: Bearer <secret>` (the current secret, or a previous
/// one within its overlap). A missing header and a wrong secret get the same answer.
pub fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), Error> {
    let presented = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match presented {
        Some(token) if state.secrets.accept(token.as_bytes(), state.issuer.now()) => Ok(()),
        _ => Err(Error::Unauthorized),
    }
}

/// A secret-gated JSON call's arguments: the secret checked first, then the
/// body read (within `max_body_bytes` and `body_timeout`) and parsed.
pub(crate) async fn arguments<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    state: &AppState,
    payload: web::Payload,
) -> Result<T, Error> {
    authorize(req, state)?;
    let body = body::read(payload, state.max_body_bytes, state.body_timeout).await?;
    body::parse(&body)
}
