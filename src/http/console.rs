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
        body: include_str!("../../static/console/index.html"),
    },
    Asset {
        path: "open",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../static/console/open.html"),
    },
    Asset {
        path: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../static/console/console.js"),
    },
    Asset {
        path: "open.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../static/console/open.js"),
    },
    Asset {
        path: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../static/console/console.css"),
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

// --- Sessions ------------------------------------------------------------------

fn digest(token: &str) -> Digest {
    openssl::sha::sha256(token.as_bytes())
}

fn tagged(tag: &str, bytes: &[u8]) -> [u8; 32] {
    let mut hasher = openssl::sha::Sha256::new();
    hasher.update(tag.as_bytes());
    hasher.update(&[0]);
    hasher.update(bytes);
    hasher.finish()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random token: 32 bytes, base64url.
pub fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    openssl::rand::rand_bytes(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The digest `authstore console-link` stores for a link's token.
pub fn link_digest(token: &str) -> Digest {
    digest(token)
}

/// A signed-in console caller.
struct Operator {
    /// Names the session in audit lines; derived from the stored digest.
    id: String,
    /// What state-changing calls must echo in `X-CSRF-Token`: derived from the
    /// cookie's token, so a copy of the database cannot produce it.
    csrf: String,
}

impl Operator {
    fn from_token(token: &str) -> Operator {
        Operator {
            id: hex(&tagged("authstore console id", &digest(token))[..8]),
            csrf: URL_SAFE_NO_PAD.encode(tagged("authstore console csrf", token.as_bytes())),
        }
    }
}

/// The console session of `req`; `Unauthorized` without a live one. For a
/// state change, also checks `Origin` and the CSRF token.
async fn operator(req: &HttpRequest, state: &AppState, changes: bool) -> Result<Operator> {
    let cookie = req.cookie(cookie_name(state)).ok_or(Error::Unauthorized)?;
    let token = cookie.value();
    let digest = digest(token);
    let now = state.issuer.now();
    let ends = opened_at(token)
        .map(|opened| absolute_end(state, opened))
        .filter(|end| *end > now)
        .ok_or(Error::Unauthorized)?;
    let idle_expires = state
        .store
        .console_session(digest)
        .await?
        .filter(|at| *at > now)
        .ok_or(Error::Unauthorized)?;
    let operator = Operator::from_token(token);
    if changes {
        same_origin(req, state)?;
        let sent = req
            .headers()
            .get(CSRF_HEADER)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        let expected = operator.csrf.as_bytes();
        if sent.len() != expected.len() || !openssl::memcmp::eq(sent, expected) {
            return Err(Error::Forbidden(
                "a console change needs the session's X-CSRF-Token".into(),
            ));
        }
    }
    let extended = now.plus_secs(IDLE_SECS).min(ends);
    if extended.millis() - idle_expires.millis() >= EXTEND_EVERY_MS {
        state.store.extend_console_session(digest, extended).await?;
    }
    Ok(operator)
}

/// A state change must come from a page of this server: `Origin` is the
/// issuer's origin, or the scheme and host the request came to.
fn same_origin(req: &HttpRequest, state: &AppState) -> Result<()> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::Forbidden("a console change needs an Origin header".into()))?;
    let issuer = &state.issuer.settings().issuer;
    let issuer_origin = issuer
        .find("://")
        .and_then(|at| {
            issuer[at + 3..]
                .find('/')
                .map(|slash| &issuer[..at + 3 + slash])
        })
        .unwrap_or(issuer);
    let info = req.connection_info();
    let served = format!("{}://{}", info.scheme(), info.host());
    if origin == issuer_origin || origin == served {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "a console change from another origin ({origin}) is refused"
        )))
    }
}

fn audit(req: &HttpRequest, operator: &Operator, action: &str, target: &str) {
    log::info!(
        target: "authstore::audit",
        "console action={action} target={target} console_session={} request_id={}",
        operator.id,
        RequestId::of(req)
    );
}

fn served_over_https(state: &AppState) -> bool {
    state.issuer.settings().issuer.starts_with("https://")
}

fn cookie_name(state: &AppState) -> &'static str {
    match served_over_https(state) {
        true => HOST_COOKIE,
        false => COOKIE,
    }
}

/// A new console session's cookie value: the moment it opened (unix ms) and
/// a random token.
fn new_session_value(opened: Timestamp) -> Result<String> {
    Ok(format!("{}.{}", opened.millis(), new_token()?))
}

/// When the session whose cookie value is `value` opened; `None` for a value
/// of another shape (a cookie from before sessions carried it: sign in again).
fn opened_at(value: &str) -> Option<Timestamp> {
    let (millis, _) = value.split_once('.')?;
    millis.parse().ok().map(Timestamp::from_millis)
}

/// The moment a session opened at `opened` ends, however much it is used.
fn absolute_end(state: &AppState, opened: Timestamp) -> Timestamp {
    opened.plus_secs(state.console_session_max.as_secs())
}

fn session_cookie(state: &AppState, value: String, max_age_secs: i64) -> Cookie<'static> {
    // __Host-: Secure, Path=/ and no Domain, as the prefix requires.
    Cookie::build(cookie_name(state), value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(served_over_https(state))
        .max_age(actix_web::cookie::time::Duration::seconds(max_age_secs))
        .finish()
}

/// The request's JSON body, read (bounded in size and time) only now that
/// the caller was checked.
async fn read_json<T: serde::de::DeserializeOwned>(
    state: &AppState,
    payload: web::Payload,
) -> Result<T> {
    let bytes = body::read(payload, state.max_body_bytes, state.body_timeout).await?;
    json_body(&bytes)
}

#[derive(Deserialize)]
struct OpenBody {
    token: String,
}

/// Uses up a sign-in link and opens a console session.
async fn open(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    same_origin(&req, &state)?;
    let body: OpenBody = read_json(&state, payload).await?;
    let now = state.issuer.now();
    if body.token.is_empty()
        || !state
            .store
            .redeem_console_link(digest(&body.token), now)
            .await?
    {
        return Err(Error::Forbidden(
            "this sign-in link was already used or has expired; run `authstore console-link` \
             for a new one"
                .into(),
        ));
    }
    let token = new_session_value(now)?;
    let lifetime = IDLE_SECS.min(state.console_session_max.as_secs());
    state
        .store
        .create_console_session(digest(&token), now, now.plus_secs(lifetime))
        .await?;
    let operator = Operator::from_token(&token);
    audit(&req, &operator, "sign-in", "-");
    Ok(HttpResponse::Ok()
        .cookie(session_cookie(&state, token, lifetime as i64))
        .json(json!({ "id": operator.id, "csrf": operator.csrf })))
}

async fn session(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
    let operator = operator(&req, &state, false).await?;
    Ok(HttpResponse::Ok().json(json!({ "id": operator.id, "csrf": operator.csrf })))
}

async fn sign_out(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
    let operator = operator(&req, &state, true).await?;
    if let Some(cookie) = req.cookie(cookie_name(&state)) {
        state
            .store
            .delete_console_session(digest(cookie.value()))
            .await?;
    }
    audit(&req, &operator, "sign-out", "-");
    Ok(HttpResponse::Ok()
        .cookie(session_cookie(&state, String::new(), 0))
        .json(json!({ "signedOut": true })))
}

/// A JSON body, read after the caller was checked (an extractor would
/// answer a stranger's malformed body before its missing session). An
/// empty body is `{}`.
fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let bytes = if bytes.is_empty() { b"{}" } else { bytes };
    serde_json::from_slice(bytes)
        .map_err(|e| Error::BadRequest(format!("the body is not the JSON expected: {e}")))
}

// --- Reads ---------------------------------------------------------------------

fn key_json(record: &crate::store::KeyRecord, state: crate::issuer::keys::KeyState) -> Value {
    json!({
        "kid": record.kid,
        "algorithm": record.algorithm,
        "state": state.name(),
        "createdAt": record.created_at.to_iso(),
        "signsFrom": record.signs_from.to_iso(),
        "retiresAt": record.retires_at.map(Timestamp::to_iso),
        "unpublishAt": record.unpublish_at.map(Timestamp::to_iso),
    })
}

async fn key_list(state: &AppState) -> Result<Vec<Value>> {
    Ok(state
        .issuer
        .describe_keys()
        .await?
        .iter()
        .map(|(record, key_state)| key_json(record, *key_state))
        .collect())
}

async fn overview(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
    operator(&req, &state, false).await?;
    let now = state.issuer.now();
    let figures = state.store.overview(now).await?;
    let storage = state.store.storage_bytes().await?;
    Ok(HttpResponse::Ok().json(json!({
        "users": figures.users,
        "liveSessions": figures.live_sessions,
        "accountsByProvider": figures.accounts_by_provider.iter()
            .map(|(provider, count)| json!({ "provider": provider, "count": count }))
            .collect::<Vec<_>>(),
        "passkeys": figures.passkeys,
        "pendingVerificationTokens": figures.pending_verification_tokens,
        "databaseBytes": storage.database,
        "walBytes": storage.wal,
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSecs": crate::metrics::get().map(|m| m.uptime()),
        "now": now.to_iso(),
        "keys": key_list(&state).await?,
    })))
}

fn user_json(user: &User) -> Value {
    json!({
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "image": user.image,
        "emailVerified": user.email_verified.map(Timestamp::to_iso),
        "extra": (!user.extra.is_empty()).then_some(&user.extra),
    })
}

#[derive(Deserialize)]
struct UsersQuery {
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    q: String,
    #[serde(default)]
    after: Option<String>,
}

/// `after` cursors are the last row's sort key and id, as base64url JSON.
fn cursor(key: &str, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(json!([key, id]).to_string())
}

fn parse_cursor(text: &str) -> Result<(String, String)> {
    let bad = || Error::BadRequest("after is not a cursor this server gave".into());
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

async fn users(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<UsersQuery>,
) -> Result<HttpResponse> {
    operator(&req, &state, false).await?;
    let field = match query.by.as_deref().unwrap_or("email") {
        "email" => SearchField::Email,
        "name" => SearchField::Name,
        "id" => SearchField::Id,
        other => {
            return Err(Error::BadRequest(format!(
                "by must be email, name or id, not {other:?}"
            )))
        }
    };
    if query.q.len() > 320 {
        return Err(Error::BadRequest("q is longer than 320 bytes".into()));
    }
    let search = UserSearch {
        field,
        prefix: query.q.trim().to_owned(),
        after: query.after.as_deref().map(parse_cursor).transpose()?,
        limit: PAGE + 1,
    };
    let mut found = state.store.search_users(&search).await?;
    let next = if found.len() > PAGE {
        found.truncate(PAGE);
        found
            .last()
            .map(|last| cursor(&search.key_of(last), &last.id))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(json!({
        "users": found.iter().map(user_json).collect::<Vec<_>>(),
        "next": next,
    })))
}

/// What the console calls a session: never its token or stored digest.
fn session_handle(digest: &Digest) -> String {
    hex(&tagged("authstore console session", digest)[..12])
}

async fn user(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    operator(&req, &state, false).await?;
    let found = state
        .store
        .get_user(&id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no user has id {}", id.as_str())))?;
    let now = state.issuer.now();
    let accounts = state.store.user_accounts(&found.id).await?;
    let sessions = state.store.user_sessions(&found.id, now).await?;
    let passkeys = state
        .store
        .list_authenticators_by_user_id(&found.id)
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "user": user_json(&found),
        "accounts": accounts.iter().map(|a| json!({
            "provider": a.provider,
            "providerAccountId": a.provider_account_id,
            "type": a.kind,
        })).collect::<Vec<_>>(),
        "sessions": sessions.iter().map(|s| json!({
            "id": session_handle(&s.digest),
            "expires": s.expires.to_iso(),
        })).collect::<Vec<_>>(),
        "passkeys": passkeys.iter().map(|p| json!({
            "credentialID": p.credential_id,
            "deviceType": p.credential_device_type,
            "backedUp": p.credential_backed_up,
            "transports": p.transports,
            "counter": p.counter,
        })).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

/// The audit log: the newest events, as `authstore audit` lists them.
async fn events(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse> {
    operator(&req, &state, false).await?;
    let kind = match query.kind.as_deref().filter(|k| !k.is_empty()) {
        None => None,
        Some(name) => Some(
            EventType::parse(name)
                .ok_or_else(|| Error::BadRequest(format!("type {name:?} is not an event type")))?,
        ),
    };
    let filter = EventFilter {
        kind,
        user_id: query.user.clone().filter(|u| !u.is_empty()),
        since: None,
        limit: PAGE,
    };
    let events = state.store.events(&filter).await?;
    Ok(HttpResponse::Ok().json(json!({ "events": events })))
}

async fn keys(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
    operator(&req, &state, false).await?;
    Ok(HttpResponse::Ok().json(json!({
        "now": state.issuer.now().to_iso(),
        "keys": key_list(&state).await?,
    })))
}

// --- Changes -------------------------------------------------------------------

async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let operator = operator(&req, &state, true).await?;
    let (user_id, handle) = path.into_inner();
    let now = state.issuer.now();
    let sessions = state.store.user_sessions(&user_id, now).await?;
    let Some(found) = sessions
        .iter()
        .find(|s| session_handle(&s.digest) == handle)
    else {
        return Err(Error::NotFound(format!(
            "user {user_id} has no live session {handle}"
        )));
    };
    let revoked = state
        .store
        .delete_user_sessions(&user_id, Some(vec![found.digest]), &operator.id)
        .await?;
    audit(
        &req,
        &operator,
        "revoke-session",
        &format!("{user_id}/{handle}"),
    );
    Ok(HttpResponse::Ok().json(json!({ "revoked": revoked })))
}

async fn revoke_all(
    req: HttpRequest,
    state: web::Data<AppState>,
    user_id: web::Path<String>,
) -> Result<HttpResponse> {
    let operator = operator(&req, &state, true).await?;
    let revoked = state
        .store
        .delete_user_sessions(&user_id, None, &operator.id)
        .await?;
    audit(&req, &operator, "revoke-all-sessions", &user_id);
    Ok(HttpResponse::Ok().json(json!({ "revoked": revoked })))
}

async fn remove_passkey(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let operator = operator(&req, &state, true).await?;
    let (user_id, credential) = path.into_inner();
    if !state
        .store
        .delete_authenticator(&user_id, &credential)
        .await?
    {
        return Err(Error::NotFound(format!(
            "user {user_id} has no passkey {credential}"
        )));
    }
    audit(
        &req,
        &operator,
        "remove-passkey",
        &format!("{user_id}/{credential}"),
    );
    Ok(HttpResponse::Ok().json(json!({ "removed": true })))
}

#[derive(Deserialize)]
struct Confirmation {
    #[serde(default)]
    confirm: String,
}

async fn delete_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    user_id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let operator = operator(&req, &state, true).await?;
    let body: Confirmation = read_json(&state, payload).await?;
    let found = state
        .store
        .get_user(&user_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no user has id {}", user_id.as_str())))?;
    // The operator types the email (or the id of a user without one).
    let expected = found.email.clone().unwrap_or_else(|| found.id.clone());
    if body.confirm.trim() != expected {
        return Err(Error::BadRequest(
            "confirm must be the user's email (or id when it has none), typed".into(),
        ));
    }
    state.store.delete_user_as(&found.id, &operator.id).await?;
    audit(&req, &operator, "delete-user", &found.id);
    Ok(HttpResponse::Ok().json(json!({ "deleted": found.id })))
}

#[derive(Deserialize)]
struct RotateBody {
    #[serde(default)]
    now: bool,
    #[serde(default)]
    confirm: String,
}

async fn rotate(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let operator = operator(&req, &state, true).await?;
    let body: RotateBody = read_json(&state, payload).await?;
    let how = if body.now {
        if body.confirm.trim() != ROTATE_NOW_CONFIRMATION {
            return Err(Error::BadRequest(format!(
                "rotating now needs confirm: {ROTATE_NOW_CONFIRMATION:?}"
            )));
        }
        Rotation::Immediate
    } else {
        Rotation::Scheduled
    };
    let kid = state.issuer.rotate(how).await?;
    let action = if body.now {
        "rotate-key-now"
    } else {
        "rotate-key"
    };
    audit(&req, &operator, action, kid.as_deref().unwrap_or("-"));
    Ok(HttpResponse::Ok().json(json!({
        "added": kid,
        "keys": key_list(&state).await?,
    })))
}
