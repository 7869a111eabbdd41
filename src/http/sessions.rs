//! `POST /api/sessions/{list,revoke,revokeOthers}`: a person's own sessions,
//! behind the secret like the adapter. Auth.js has no such API; the app
//! calls these for its "Your sessions" page (`@authstore/authjs`'s
//! `store.sessions`). Each session is named by its `sid`, as in its tokens
//! and events; an ending writes the events a sign-out writes.

use super::{arguments, AppState};
use crate::error::{Error, Result};
use crate::store::{session_id, token_digest};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UserArg {
    user_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RevokeArg {
    user_id: String,
    sid: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenArg {
    session_token: String,
}

/// `{"userId"}` -> `{"sessions": [...]}`: the live ones, newest first.
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let UserArg { user_id } = arguments(&req, &state, payload).await?;
    let mut sessions = state
        .store
        .user_sessions(&user_id, state.issuer.now())
        .await?;
    // Newest first; sessions from before creation times were kept, last.
    sessions.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.expires)));
    let sessions: Vec<_> = sessions
        .iter()
        .map(|s| {
            json!({
                "sid": session_id(&s.digest),
                "createdAt": s.created_at.map(|t| t.to_iso()),
                "lastSeenAt": s.last_seen_at.map(|t| t.to_iso()),
                "expires": s.expires.to_iso(),
                "userAgent": s.user_agent,
                "ip": s.ip,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "sessions": sessions })))
}

/// `{"userId", "sid"}` -> `{"revoked": 0 | 1}`: 0 when that user has no
/// live session with that sid (another user's sid included).
pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let RevokeArg { user_id, sid } = arguments(&req, &state, payload).await?;
    if sid.is_empty() {
        return Err(Error::BadRequest("sid must not be empty".into()));
    }
    let sessions = state
        .store
        .user_sessions(&user_id, state.issuer.now())
        .await?;
    let revoked = match sessions.iter().find(|s| session_id(&s.digest) == sid) {
        None => 0,
        Some(found) => {
            state
                .store
                .delete_user_sessions(&user_id, Some(vec![found.digest]), None)
                .await?
        }
    };
    Ok(HttpResponse::Ok().json(json!({ "revoked": revoked })))
}

/// `{"sessionToken"}` -> `{"revoked": n}`: every other session of that
/// token's user ends (0 when the token's session is gone).
pub async fn revoke_others(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let TokenArg { session_token } = arguments(&req, &state, payload).await?;
    let revoked = state
        .store
        .delete_other_sessions(token_digest(&session_token))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "revoked": revoked })))
}
