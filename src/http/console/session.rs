//! Console sessions: the sign-in link, the cookie, the operator behind a
//! request, and the checks a change must pass.

use super::*;

pub(super) fn digest(token: &str) -> Digest {
    openssl::sha::sha256(token.as_bytes())
}

pub(super) fn tagged(tag: &str, bytes: &[u8]) -> [u8; 32] {
    let mut hasher = openssl::sha::Sha256::new();
    hasher.update(tag.as_bytes());
    hasher.update(&[0]);
    hasher.update(bytes);
    hasher.finish()
}

pub(super) fn hex(bytes: &[u8]) -> String {
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
pub(super) struct Operator {
    /// Names the session in audit lines; derived from the stored digest.
    pub(super) id: String,
    /// What state-changing calls must echo in `X-CSRF-Token`: derived from the
    /// cookie's token, so a copy of the database cannot produce it.
    pub(super) csrf: String,
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
pub(super) async fn operator(
    req: &HttpRequest,
    state: &AppState,
    changes: bool,
) -> Result<Operator> {
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
pub(super) fn same_origin(req: &HttpRequest, state: &AppState) -> Result<()> {
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

pub(super) fn audit(req: &HttpRequest, operator: &Operator, action: &str, target: &str) {
    log::info!(
        target: "authstore::audit",
        "console action={action} target={target} console_session={} request_id={}",
        operator.id,
        RequestId::of(req)
    );
}

pub(super) fn served_over_https(state: &AppState) -> bool {
    state.issuer.settings().issuer.starts_with("https://")
}

pub(super) fn cookie_name(state: &AppState) -> &'static str {
    match served_over_https(state) {
        true => HOST_COOKIE,
        false => COOKIE,
    }
}

/// A new console session's cookie value: the moment it opened (unix ms) and
/// a random token.
pub(super) fn new_session_value(opened: Timestamp) -> Result<String> {
    Ok(format!("{}.{}", opened.millis(), new_token()?))
}

/// When the session whose cookie value is `value` opened; `None` for a value
/// of another shape (a cookie from before sessions carried it: sign in again).
pub(super) fn opened_at(value: &str) -> Option<Timestamp> {
    let (millis, _) = value.split_once('.')?;
    millis.parse().ok().map(Timestamp::from_millis)
}

/// The moment a session opened at `opened` ends, however much it is used.
pub(super) fn absolute_end(state: &AppState, opened: Timestamp) -> Timestamp {
    opened.plus_secs(state.console_session_max.as_secs())
}

pub(super) fn session_cookie(
    state: &AppState,
    value: String,
    max_age_secs: i64,
) -> Cookie<'static> {
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
pub(super) async fn read_json<T: serde::de::DeserializeOwned>(
    state: &AppState,
    payload: web::Payload,
) -> Result<T> {
    let bytes = body::read(payload, state.max_body_bytes, state.body_timeout).await?;
    json_body(&bytes)
}

#[derive(Deserialize)]
pub(super) struct OpenBody {
    token: String,
}

/// Uses up a sign-in link and opens a console session.
pub(super) async fn open(
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

pub(super) async fn session(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
    let operator = operator(&req, &state, false).await?;
    Ok(HttpResponse::Ok().json(json!({ "id": operator.id, "csrf": operator.csrf })))
}

pub(super) async fn sign_out(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
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
pub(super) fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let bytes = if bytes.is_empty() { b"{}" } else { bytes };
    serde_json::from_slice(bytes)
        .map_err(|e| Error::BadRequest(format!("the body is not the JSON expected: {e}")))
}
