//! The operator's console: its pages (static/console, embedded at compile
//! time) under `/console/`, and its JSON API under `/api/console/`.
//!
//! Signing in: `authstore console-link` stores the SHA-256 of a random token
//! and prints `<issuer>/console/open#<token>`. The page posts the token
//! (never sent in a URL, so no proxy log holds it) to `/api/console/open`,
//! which uses the link up and opens a console session: another random token
//! in an HttpOnly, SameSite=Strict cookie (Secure, and named with the
//! `__Host-` prefix, when the issuer is https), stored as its digest, valid
//! while used at least every 12 hours and at most `console_session_max_secs`
//! (12 hours by default) after it opened. The cookie carries the moment it
//! opened beside its random part; the stored digest covers both, so that
//! moment cannot be moved. `authstore console-link --revoke-all` ends them all.
//!
//! Bodies are read after the caller is checked, within `body_timeout_secs`
//! and `max_body_bytes` as the adapter's are: a stranger cannot hold a
//! connection open by trickling a body in.
//!
//! The adapter secret opens nothing here and a console session authorizes
//! no adapter call. Every state change also needs the session's CSRF token
//! (`X-CSRF-Token`, derived from the cookie's token) and a same-origin
//! `Origin`. Every console response carries a strict CSP and frame and
//! referrer denials. Each action writes one audit line (target
//! `authstore::audit`): action, target, console session id, request id.

use super::{body, AppState};
use crate::error::{Error, Result};
use crate::http::request_id::RequestId;
use crate::issuer::keys::Rotation;
use crate::model::User;
use crate::store::console::{Digest, SearchField, UserSearch};
use crate::store::events::{EventFilter, EventType};
use crate::timestamp::Timestamp;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde::Deserialize;
use serde_json::{json, Value};

/// How long a `console-link` link may wait to be opened.
pub const LINK_LIFETIME_SECS: u64 = 10 * 60;
/// A console session ends after this long without a request.
const IDLE_SECS: u64 = 12 * 3600;
/// A session's idle expiry moves at most once a minute (not a write per request).
const EXTEND_EVERY_MS: i64 = 60_000;
/// Users per page of a search.
const PAGE: usize = 50;
const COOKIE: &str = "authstore_console";
/// The cookie's name over https: the browser keeps a `__Host-` cookie to this
/// host, path `/` and secure connections only (no subdomain can set it).
const HOST_COOKIE: &str = "__Host-authstore_console";
const CSRF_HEADER: &str = "x-csrf-token";
/// What "rotate now" must carry, typed by the operator (deleting a user
/// takes the user's email, or id).
const ROTATE_NOW_CONFIRMATION: &str = "rotate now";

pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
                       frame-ancestors 'none'";

/// The headers every console response carries (pages, assets, API, errors).
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CSP))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::CACHE_CONTROL, "no-store"))
}

// --- Pages -------------------------------------------------------------------

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: [Asset; 5] = [
    Asset {
        path: "",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../../static/console/index.html"),
    },
    Asset {
        path: "open",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../../static/console/open.html"),
    },
    Asset {
        path: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../../static/console/console.js"),
    },
    Asset {
        path: "open.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../../static/console/open.js"),
    },
    Asset {
        path: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../../static/console/console.css"),
    },
];

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/console")
            .wrap(security_headers())
            .route(web::get().to(|| async {
                HttpResponse::PermanentRedirect()
                    .insert_header((header::LOCATION, "/console/"))
                    .finish()
            })),
    )
    .service(
        web::scope("/console")
            .wrap(security_headers())
            .route("/{asset:.*}", web::get().to(asset)),
    )
    .service(
        web::scope("/api/console")
            .wrap(security_headers())
            .route("/open", web::post().to(open))
            .route("/session", web::get().to(session))
            .route("/sign-out", web::post().to(sign_out))
            .route("/overview", web::get().to(overview))
            .route("/users", web::get().to(users))
            .route("/users/{id}", web::get().to(user))
            .route("/users/{id}", web::delete().to(delete_user))
            .route("/users/{id}/sessions", web::delete().to(revoke_all))
            .route("/users/{id}/sessions/{handle}", web::delete().to(revoke))
            .route(
                "/users/{id}/passkeys/{credential}",
                web::delete().to(remove_passkey),
            )
            .route(
                "/users/{id}/accounts/{provider}/{account}",
                web::delete().to(unlink_account),
            )
            .route("/events", web::get().to(events))
            .route("/keys", web::get().to(keys))
            .route("/keys/rotate", web::post().to(rotate))
            .default_service(web::to(|req: HttpRequest| async move {
                Err::<HttpResponse, _>(Error::NotFound(format!(
                    "no console route for {} {}",
                    req.method(),
                    req.path()
                )))
            })),
    );
}

async fn asset(path: web::Path<String>) -> Result<HttpResponse> {
    let path = path.into_inner();
    let found = ASSETS
        .iter()
        .find(|a| a.path == path)
        .ok_or_else(|| Error::NotFound(format!("no console page {path}")))?;
    Ok(HttpResponse::Ok()
        .content_type(found.content_type)
        .body(found.body))
}

mod changes;
mod reads;
mod session;

use self::changes::*;
use self::reads::*;
use self::session::*;
pub use self::session::{link_digest, new_token};
