//! `GET /metrics` on its own listener: off by default, parsed the way a
//! Prometheus server parses it, and moving with the traffic.

mod common;

use common::{user_fixture, TestApp, SECRET};
use prometheus_parse::{Sample, Scrape, Value as Metric};
use serde_json::json;

fn scrape(url: &str) -> Scrape {
    let response = ureq::get(url).call().expect("GET /metrics answers");
    assert!(
        response.content_type().starts_with("text/plain"),
        "{}",
        response.content_type()
    );
    let text = response.into_string().unwrap();
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))
        .unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{text}"))
}

fn samples<'a>(
    scrape: &'a Scrape,
    name: &'a str,
    labels: &'a [(&'a str, &'a str)],
) -> impl Iterator<Item = &'a Sample> + 'a {
    scrape.samples.iter().filter(move |s| {
        s.metric == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(k).is_some_and(|l| l == *v))
    })
}

/// A counter's or gauge's value (0 when the series is absent).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(scrape, name, labels)
        .map(|s| match s.value {
            Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => v,
            _ => panic!("{name} is not a counter or a gauge"),
        })
        .sum()
}

/// How many observations a histogram holds.
fn observations(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(scrape, name, labels)
        .map(|s| match &s.value {
            Metric::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            _ => panic!("{name} is not a histogram"),
        })
        .sum()
}

fn with_metrics() -> TestApp {
    TestApp::spawn_with(|config| config.metrics_bind = Some("127.0.0.1:0".into()))
}

#[test]
fn metrics_are_off_unless_a_listener_is_set_and_never_on_the_adapter_port() {
    let app = TestApp::spawn();
    assert!(app.metrics_url.is_none());
    let (status, _) = app.get("/metrics");
    assert_eq!(status, 404);

    let app = with_metrics();
    let url = app.metrics_url.clone().unwrap();
    assert_ne!(url, format!("{}/metrics", app.base));
    // The adapter's port still has no /metrics; the metrics port has no adapter.
    assert_eq!(app.get("/metrics").0, 404);
    let adapter_on_metrics_port = url.replace("/metrics", "/api/adapter/getUser");
    match ureq::post(&adapter_on_metrics_port)
        .set("Authorization", &format!("Bearer {SECRET}"))
        .send_string("{\"id\":\"x\"}")
    {
        Err(ureq::Error::Status(404, _)) => {}
        other => panic!("the metrics port answered an adapter call: {other:?}"),
    }
}

#[test]
fn metrics_parse_and_move_with_requests_mints_writes_and_state() {
    let app = with_metrics();
    let url = app.metrics_url.clone().unwrap();
    let before = scrape(&url);

    let user = app.ok("createUser", json!({ "user": user_fixture() }));
    let session = app.ok(
        "createSession",
        json!({ "session": {
            "sessionToken": "metrics-session",
            "userId": user["id"],
            "expires": "2099-01-01T00:00:00.000Z",
        } }),
    );
    const LOOKUPS: usize = 5;
    for _ in 0..LOOKUPS {
        app.ok(
            "getSessionAndUser",
            json!({"sessionToken": session["sessionToken"]}),
        );
    }
    let token = |fresh: bool| {
        let (status, body) = app.post(
            "/api/token",
            &json!({"sessionToken": "metrics-session", "fresh": fresh}).to_string(),
            Some(SECRET),
        );
        assert_eq!(status, 200, "{body}");
    };
    token(true);
    token(false);
    assert_eq!(app.get("/no/such/route").0, 404);

    let after = scrape(&url);
    let route = [
        ("route", "/api/adapter/getSessionAndUser"),
        ("method", "POST"),
        ("status", "200"),
    ];
    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    // Other tests in this process may add to the same counters: at least.
    assert!(moved("authstore_http_requests_total", &route) >= LOOKUPS as f64);
    assert!(
        moved(
            "authstore_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ) >= 1.0
    );
    let timed = |s: &Scrape| {
        observations(
            s,
            "authstore_http_request_duration_seconds",
            &[("route", "/api/adapter/getSessionAndUser")],
        )
    };
    assert!(timed(&after) - timed(&before) >= LOOKUPS as f64);
    assert!(moved("authstore_tokens_minted_total", &[("outcome", "fresh")]) >= 1.0);
    assert!(moved("authstore_tokens_minted_total", &[("outcome", "reused")]) >= 1.0);
    assert!(
        observations(&after, "authstore_token_signing_seconds", &[])
            > observations(&before, "authstore_token_signing_seconds", &[])
    );

    // State read at scrape time: this server's one current key, its database.
    assert_eq!(
        value(&after, "authstore_signing_keys", &[("state", "current")]),
        1.0
    );
    let (_, jwks) = app.get("/.well-known/jwks.json");
    let jwks: serde_json::Value = jwks.into_json().unwrap();
    let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
    assert_eq!(
        samples(
            &after,
            "authstore_signing_key_age_seconds",
            &[("kid", &kid), ("state", "current")]
        )
        .count(),
        1
    );
    assert!(value(&after, "authstore_storage_bytes", &[("file", "database")]) > 0.0);
    assert!(value(&after, "authstore_uptime_seconds", &[]) >= 0.0);
    assert!(samples(&after, "authstore_http_connections", &[]).count() == 1);
    if !common::on_postgres() {
        // SQLite's writer: three writes at least went through group commits.
        assert!(
            observations(&after, "authstore_sqlite_commit_batch_size", &[])
                - observations(&before, "authstore_sqlite_commit_batch_size", &[])
                >= 2.0
        );
        assert!(samples(&after, "authstore_sqlite_writer_queue_depth", &[]).count() == 1);
        assert!(samples(&after, "authstore_storage_bytes", &[("file", "wal")]).count() == 1);
    }
}
