//! `POST /api/adapter/{method}`: the Auth.js `Adapter` interface, one method
//! per name. The body holds the method's arguments by their Auth.js names; the
//! answer is the method's return value (`null` included).

use super::{authorize, body, AppState};
use crate::error::{Error, Result};
use crate::model::{
    normalize_email, Account, AccountKey, Authenticator, NewUser, Session, SessionContext,
    SessionIp, SessionOrigin, SessionPatch, UserPatch, VerificationToken,
};
use crate::store::sessions::SeenTracker;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

/// Every method of the Auth.js `Adapter` interface, in its documentation's order.
pub const METHODS: [&str; 19] = [
    "createUser",
    "getUser",
    "getUserByEmail",
    "getUserByAccount",
    "updateUser",
    "deleteUser",
    "linkAccount",
    "unlinkAccount",
    "getAccount",
    "createSession",
    "getSessionAndUser",
    "updateSession",
    "deleteSession",
    "createVerificationToken",
    "useVerificationToken",
    "createAuthenticator",
    "getAuthenticator",
    "listAuthenticatorsByUserId",
    "updateAuthenticatorCounter",
];

#[derive(Deserialize)]
struct UserArg<T> {
    user: T,
}
#[derive(Deserialize)]
struct IdArg {
    id: String,
}
#[derive(Deserialize)]
struct EmailArg {
    email: String,
}
#[derive(Deserialize)]
struct AccountArg {
    account: Account,
}
#[derive(Deserialize)]
struct SessionArg<T> {
    session: T,
}
/// `createSession`'s arguments: Auth.js's session, and where it comes from.
#[derive(Deserialize)]
struct NewSessionArg {
    session: Session,
    #[serde(default)]
    context: SessionContext,
}

/// What the session methods record besides Auth.js's fields: when, how
/// much of a new session's address (`session_ip`), and where lookups note
/// when a session was last seen (none for fixtures).
#[derive(Clone, Copy)]
pub struct SessionPolicy<'a> {
    pub now: crate::timestamp::Timestamp,
    pub keep_ip: SessionIp,
    pub seen: Option<&'a SeenTracker>,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionTokenArg {
    session_token: String,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerificationTokenArg {
    verification_token: VerificationToken,
}
#[derive(Deserialize)]
struct UseVerificationTokenArgs {
    identifier: String,
    token: String,
}
#[derive(Deserialize)]
struct AuthenticatorArg {
    authenticator: Authenticator,
}
#[derive(Deserialize)]
struct CredentialIdArg {
    #[serde(rename = "credentialID")]
    credential_id: String,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserIdArg {
    user_id: String,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CounterArgs {
    #[serde(rename = "credentialID")]
    credential_id: String,
    new_counter: u32,
}

pub async fn call(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    authorize(&req, &state)?;
    let method = req.path().rsplit('/').next().unwrap_or_default();
    let body = body::read(payload, state.max_body_bytes, state.body_timeout).await?;
    dispatch(&state, method, &body).await
}

/// Any other name under `/api/adapter/`.
pub async fn unknown(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse> {
    authorize(&req, &state)?;
    let method = req.match_info().get("method").unwrap_or_default();
    Err(unknown_method(method))
}

fn unknown_method(method: &str) -> Error {
    Error::NotFound(format!(
        "unknown adapter method `{method}`; valid methods: {}",
        METHODS.join(", ")
    ))
}

async fn dispatch(state: &AppState, method: &str, body: &[u8]) -> Result<HttpResponse> {
    let policy = SessionPolicy {
        now: state.issuer.now(),
        keep_ip: state.session_ip,
        seen: Some(&state.seen),
    };
    call_method(&state.store, &policy, method, body).await
}

/// Runs adapter `method` with `body` (its JSON arguments) on `store`, exactly
/// as `POST /api/adapter/{method}` does: fixtures load through this too.
pub async fn call_method(
    store: &std::sync::Arc<dyn crate::store::Store>,
    policy: &SessionPolicy<'_>,
    method: &str,
    body: &[u8],
) -> Result<HttpResponse> {
    match method {
        "createUser" => {
            let UserArg { user } = body::parse::<UserArg<NewUser>>(body)?;
            ok(store.create_user(user.into_user()).await?)
        }
        "getUser" => {
            let IdArg { id } = body::parse(body)?;
            ok(store.get_user(&id).await?)
        }
        "getUserByEmail" => {
            let EmailArg { email } = body::parse(body)?;
            match normalize_email(&email) {
                Some(email) => ok(store.get_user_by_email(&email).await?),
                None => ok(None::<()>),
            }
        }
        "getUserByAccount" => {
            let key: AccountKey = body::parse(body)?;
            ok(store.get_user_by_account(&key).await?)
        }
        "updateUser" => {
            let UserArg { user } = body::parse::<UserArg<UserPatch>>(body)?;
            ok(store.update_user(user.normalized()).await?)
        }
        "deleteUser" => {
            let IdArg { id } = body::parse(body)?;
            ok(store.delete_user(&id).await?)
        }
        "linkAccount" => {
            let AccountArg { account } = body::parse(body)?;
            ok(store.link_account(account).await?)
        }
        "unlinkAccount" => {
            let key: AccountKey = body::parse(body)?;
            ok(store.unlink_account(&key).await?)
        }
        "getAccount" => {
            let key: AccountKey = body::parse(body)?;
            ok(store.get_account(&key).await?)
        }
        "createSession" => {
            let NewSessionArg { session, context } = body::parse(body)?;
            let origin = SessionOrigin::new(policy.now, context, policy.keep_ip)
                .map_err(Error::BadRequest)?;
            ok(store.create_session(session, origin).await?)
        }
        "getSessionAndUser" => {
            let SessionTokenArg { session_token } = body::parse(body)?;
            let found = store.get_session_and_user(&session_token).await?;
            if let (Some(seen), Some(found)) = (policy.seen, &found) {
                seen.seen(&session_token, found.last_seen_at, policy.now);
            }
            ok(found)
        }
        "updateSession" => {
            let SessionArg { session } = body::parse::<SessionArg<SessionPatch>>(body)?;
            // The update moves last_seen_at itself (the store's statement).
            ok(store.update_session(session).await?)
        }
        "deleteSession" => {
            let SessionTokenArg { session_token } = body::parse(body)?;
            ok(store.delete_session(&session_token).await?)
        }
        "createVerificationToken" => {
            let VerificationTokenArg { verification_token } = body::parse(body)?;
            ok(store.create_verification_token(verification_token).await?)
        }
        "useVerificationToken" => {
            let UseVerificationTokenArgs { identifier, token } = body::parse(body)?;
            ok(store.use_verification_token(&identifier, &token).await?)
        }
        "createAuthenticator" => {
            let AuthenticatorArg { authenticator } = body::parse(body)?;
            ok(store.create_authenticator(authenticator).await?)
        }
        "getAuthenticator" => {
            let CredentialIdArg { credential_id } = body::parse(body)?;
            ok(store.get_authenticator(&credential_id).await?)
        }
        "listAuthenticatorsByUserId" => {
            let UserIdArg { user_id } = body::parse(body)?;
            ok(store.list_authenticators_by_user_id(&user_id).await?)
        }
        "updateAuthenticatorCounter" => {
            let CounterArgs {
                credential_id,
                new_counter,
            } = body::parse(body)?;
            ok(store
                .update_authenticator_counter(&credential_id, new_counter)
                .await?)
        }
        unknown => Err(unknown_method(unknown)),
    }
}

fn ok(value: impl Serialize) -> Result<HttpResponse> {
    let body = serde_json::to_vec(&value).map_err(Error::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        // Answers hold OAuth tokens and session data: no cache may keep them.
        .insert_header(("Cache-Control", "no-store"))
        .body(body))
}
