//! `GET /metrics` on its own listener (`metrics_bind`), and the middleware
//! that counts requests on the main one. The metrics listener answers that
//! one route only, so a scraper's port never exposes the adapter, and the
//! adapter's port never exposes the metrics.

use super::AppState;
use crate::metrics::{self, Metrics};
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, App, HttpResponse, HttpServer};
use std::net::TcpListener;
use std::time::Instant;

/// Counts a request by route pattern (never the raw path: ids would make
/// one series per user), method and status, and times it.
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let res = next.call(req).await?;
    if let Some(m) = metrics::get() {
        let route = res.request().match_pattern();
        let route = route.as_deref().unwrap_or("unmatched");
        m.request_seconds
            .with_label_values(&[route])
            .observe(started.elapsed().as_secs_f64());
        m.requests
            .with_label_values(&[
                route,
                method_label(res.request().method()),
                res.status().as_str(),
            ])
            .inc();
    }
    Ok(res)
}

/// A method as a label: one of a fixed set, so made-up methods (anyone can
/// send `FOO / HTTP/1.1`) cannot grow the series without bound.
pub(crate) fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// The metrics server: one worker, `GET /metrics` only.
pub fn serve(listener: TcpListener, state: web::Data<AppState>) -> std::io::Result<Server> {
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/metrics", web::get().to(scrape))
            .default_service(web::to(|| async {
                HttpResponse::NotFound().body("only GET /metrics is served here\n")
            }))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(2)
    .listen(listener)?
    .run())
}

async fn scrape(state: web::Data<AppState>) -> HttpResponse {
    let Some(m) = metrics::get() else {
        return HttpResponse::ServiceUnavailable().body("metrics are off (see the log)\n");
    };
    read_state(m, &state).await;
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(m.render())
}

/// The gauges of state: keys and storage, read now. A part that cannot be
/// read (the database is down) keeps its series out of this scrape.
async fn read_state(m: &Metrics, state: &AppState) {
    m.keys.reset();
    m.key_age_seconds.reset();
    match state.issuer.describe_keys().await {
        Ok(keys) => {
            let now = state.issuer.now();
            for (record, key_state) in keys {
                let name = key_state.name();
                m.keys.with_label_values(&[name]).inc();
                m.key_age_seconds
                    .with_label_values(&[record.kid.as_str(), name])
                    .set((now.millis() - record.created_at.millis()) / 1000);
            }
        }
        Err(e) => log::warn!("metrics: reading the keys failed: {}", e.log_text()),
    }
    m.storage_bytes.reset();
    match state.store.storage_bytes().await {
        Ok(sizes) => {
            m.storage_bytes
                .with_label_values(&["database"])
                .set(i64::try_from(sizes.database).unwrap_or(i64::MAX));
            if let Some(wal) = sizes.wal {
                m.storage_bytes
                    .with_label_values(&["wal"])
                    .set(i64::try_from(wal).unwrap_or(i64::MAX));
            }
        }
        Err(e) => log::warn!(
            "metrics: reading the database size failed: {}",
            e.log_text()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::Method;

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label(&Method::POST), "POST");
        for name in ["FOO", "BAR", "get", "X-1"] {
            assert_eq!(
                method_label(&Method::from_bytes(name.as_bytes()).unwrap()),
                "other"
            );
        }
    }
}
