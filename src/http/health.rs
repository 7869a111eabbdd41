//! Liveness and readiness, for orchestrators; no secret needed.

use super::AppState;
use actix_web::{web, HttpResponse};
use serde_json::json;

pub async fn alive() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Err(e) => {
            log::warn!("readiness check failed: {}", e.log_text());
            HttpResponse::ServiceUnavailable()
                .insert_header(("Retry-After", "1"))
                .json(json!({
                    "error": { "code": "unavailable", "message": "the database does not answer" }
                }))
        }
    }
}
