//! `GET /metrics` on its own listener: off by default, parsed the way a
//! Prometheus server parses it, and moving with the traffic.

use crate::common;

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

#[test]
fn made_up_methods_and_paths_add_no_series() {
    let app = with_metrics();
    let url = app.metrics_url.clone().unwrap();
    let agent = ureq::AgentBuilder::new().build();
    let send = |method: &str, path: &str| {
        let target = format!("{}{path}", app.base);
        match agent.request(method, &target).call() {
            Ok(response) => response.status(),
            Err(ureq::Error::Status(status, _)) => status,
            Err(e) => panic!("{method} {path}: {e}"),
        }
    };
    let paths = |n: usize| {
        let random = uuid::Uuid::new_v4().simple().to_string();
        match n % 3 {
            0 => format!("/{random}/{n}"),
            1 => "/.well-known/jwks.json".to_owned(),
            _ => format!("/api/adapter/{random}"),
        }
    };
    // Each kind of request once: the series they fold into exist from here on.
    for n in 0..3 {
        send("FOLDED", &paths(n));
    }
    let series = |scrape: &Scrape| {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric.starts_with("authstore_http_request"))
            .map(|s| format!("{} {:?}", s.metric, s.labels))
            .collect::<std::collections::BTreeSet<_>>()
    };
    let before = series(&scrape(&url));
    for n in 0..5_000 {
        let method = format!("M{}", uuid::Uuid::new_v4().simple());
        let status = send(&method, &paths(n));
        assert!((400..500).contains(&status), "{method}: {status}");
    }
    let after = series(&scrape(&url));
    eprintln!(
        "{} request series before 5,000 made-up methods and paths, {} after",
        before.len(),
        after.len()
    );
    assert_eq!(
        after.len(),
        before.len(),
        "new series: {:?}",
        after.difference(&before).collect::<Vec<_>>()
    );
    assert!(before.iter().any(|s| s.contains("\"other\"")), "{before:?}");
}

#[test]
fn events_past_their_retention_are_all_purged_in_one_pass() {
    use authstore::clock::ManualClock;
    use authstore::timestamp::Timestamp;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    const BATCH: usize = 10;
    const EVENTS: usize = 10 * BATCH + 5;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = common::test_config(&dir);
    config.metrics_bind = Some("127.0.0.1:0".into());
    config.purge_interval_secs = 1;
    config.purge_batch = BATCH;
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let app = TestApp::start(dir, config, clock.clone());
    let url = app.metrics_url.clone().unwrap();

    // Sign-outs only: nothing expires, so sessions never fill a batch.
    let user = app.ok("createUser", json!({ "user": user_fixture() }));
    for n in 0..EVENTS {
        let token = format!("purge-{n}");
        app.ok(
            "createSession",
            json!({ "session": { "sessionToken": token, "userId": user["id"],
                                 "expires": "2099-01-01T00:00:00.000Z" } }),
        );
        app.ok("deleteSession", json!({ "sessionToken": token }));
    }
    assert_eq!(app.count("SELECT count(*) FROM events"), EVENTS as i64);
    let purged = |s: &Scrape| value(s, "authstore_purged_rows_total", &[("table", "events")]);
    assert_eq!(purged(&scrape(&url)), 0.0);

    // A day past the retention: the next pass finds every event old.
    clock.advance_secs(31 * 24 * 3600);
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let seen = purged(&scrape(&url));
        if seen > 0.0 {
            break seen;
        }
        assert!(Instant::now() < deadline, "no purge of events in 20 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    // The metric moves once per pass: the first pass took all of them.
    assert_eq!(first, EVENTS as f64);
    assert_eq!(app.count("SELECT count(*) FROM events"), 0);
}
