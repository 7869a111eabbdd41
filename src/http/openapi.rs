//! `GET /openapi.json`: the OpenAPI 3.1 document of the whole HTTP surface,
//! the file `openapi.json` at the top of the repository, built in.

use actix_web::HttpResponse;

pub const DOCUMENT: &str = include_str!("../../openapi.json");

pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "public, max-age=300"))
        .body(DOCUMENT)
}
