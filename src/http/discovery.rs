//! The public issuer documents: OIDC discovery and the JWKS.
//!
//! Verifiers fetch these from anywhere, so they are cacheable (never
//! `no-store`) and open to cross-origin GETs.

use super::AppState;
use actix_web::{web, HttpResponse};

fn public_json(state: &AppState, body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            "Cache-Control",
            format!(
                "public, max-age={}",
                state.issuer.settings().jwks_max_age_secs
            ),
        ))
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .body(body)
}

pub async fn openid_configuration(state: web::Data<AppState>) -> HttpResponse {
    let body = state.issuer.discovery();
    public_json(&state, body)
}

pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    let body = state.issuer.jwks();
    public_json(&state, body)
}

/// CORS preflight for the two documents.
pub async fn preflight() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .insert_header(("Access-Control-Allow-Methods", "GET, OPTIONS"))
        .insert_header(("Access-Control-Max-Age", "86400"))
        .finish()
}
