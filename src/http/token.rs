//! `POST /api/token`: a signed JWT for a live session.

use super::{arguments, AppState};
use crate::error::Result;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MintArgs {
    session_token: String,
    /// Always sign a new token (the Convex client's forced refresh).
    #[serde(default)]
    fresh: bool,
}

pub async fn mint(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let args: MintArgs = arguments(&req, &state, payload).await?;
    let found = state
        .store
        .get_session_and_user(&args.session_token)
        .await?
        .ok_or_else(crate::issuer::no_live_session)?;
    let minted = state.issuer.mint(&found, args.fresh)?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(minted))
}
