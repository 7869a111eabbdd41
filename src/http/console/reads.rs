//! What the console shows: the overview, users, a user, the audit log, keys.

use super::*;

pub(super) fn key_json(
    record: &crate::store::KeyRecord,
    state: crate::issuer::keys::KeyState,
) -> Value {
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

pub(super) async fn key_list(state: &AppState) -> Result<Vec<Value>> {
    Ok(state
        .issuer
        .describe_keys()
        .await?
        .iter()
        .map(|(record, key_state)| key_json(record, *key_state))
        .collect())
}

pub(super) async fn overview(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
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

pub(super) fn user_json(user: &User) -> Value {
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
pub(super) struct UsersQuery {
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    q: String,
    #[serde(default)]
    after: Option<String>,
}

/// `after` cursors are the last row's sort key and id, as base64url JSON.
pub(super) fn cursor(key: &str, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(json!([key, id]).to_string())
}

pub(super) fn parse_cursor(text: &str) -> Result<(String, String)> {
    let bad = || Error::BadRequest("after is not a cursor this server gave".into());
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

pub(super) async fn users(
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
pub(super) fn session_handle(digest: &Digest) -> String {
    hex(&tagged("authstore console session", digest)[..12])
}

pub(super) async fn user(
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
            "createdAt": s.created_at.map(|t| t.to_iso()),
            "lastSeenAt": s.last_seen_at.map(|t| t.to_iso()),
            "userAgent": s.user_agent,
            "ip": s.ip,
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
pub(super) struct EventsQuery {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

/// The audit log: the newest events, as `authstore audit` lists them.
pub(super) async fn events(
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

pub(super) async fn keys(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
    operator(&req, &state, false).await?;
    Ok(HttpResponse::Ok().json(json!({
        "now": state.issuer.now().to_iso(),
        "keys": key_list(&state).await?,
    })))
}
