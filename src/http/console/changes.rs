//! What an operator changes from the console: sessions, passkeys, users, keys.

use super::*;
use crate::model::AccountKey;

pub(super) async fn revoke(
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
        .delete_user_sessions(&user_id, Some(vec![found.digest]), Some(&operator.id))
        .await?;
    audit(
        &req,
        &operator,
        "revoke-session",
        &format!("{user_id}/{handle}"),
    );
    Ok(HttpResponse::Ok().json(json!({ "revoked": revoked })))
}

pub(super) async fn revoke_all(
    req: HttpRequest,
    state: web::Data<AppState>,
    user_id: web::Path<String>,
) -> Result<HttpResponse> {
    let operator = operator(&req, &state, true).await?;
    let revoked = state
        .store
        .delete_user_sessions(&user_id, None, Some(&operator.id))
        .await?;
    audit(&req, &operator, "revoke-all-sessions", &user_id);
    Ok(HttpResponse::Ok().json(json!({ "revoked": revoked })))
}

pub(super) async fn remove_passkey(
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

pub(super) async fn unlink_account(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse> {
    let operator = operator(&req, &state, true).await?;
    let (user_id, provider, provider_account_id) = path.into_inner();
    let key = AccountKey {
        provider,
        provider_account_id,
    };
    if !state
        .store
        .unlink_account_as(&user_id, &key, &operator.id)
        .await?
    {
        return Err(Error::NotFound(format!(
            "user {user_id} has no {} account {}",
            key.provider, key.provider_account_id
        )));
    }
    audit(
        &req,
        &operator,
        "unlink-account",
        &format!("{user_id}/{}/{}", key.provider, key.provider_account_id),
    );
    Ok(HttpResponse::Ok().json(json!({ "unlinked": true })))
}

#[derive(Deserialize)]
pub(super) struct Confirmation {
    #[serde(default)]
    confirm: String,
}

pub(super) async fn delete_user(
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
pub(super) struct RotateBody {
    #[serde(default)]
    now: bool,
    #[serde(default)]
    confirm: String,
}

pub(super) async fn rotate(
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
