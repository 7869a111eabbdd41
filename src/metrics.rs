//! Prometheus metrics. Counters and histograms are updated where things
//! happen (a request, a mint, a commit, a purge); gauges of state (keys,
//! database size) are read when scraped. Served on a listener of their own
//! (`metrics_bind`, off by default; see [`crate::http::metrics`]).
//!
//! The instruments live for the process (several servers in one test
//! process share them: counters only grow, which is all a scrape needs).

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::LazyLock;
use std::time::Instant;

/// Request latency buckets, in seconds: 50 µs to 5 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0,
];
/// Token signing latency buckets, in seconds: 100 µs to 50 ms.
const SIGNING_BUCKETS: [f64; 9] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05,
];
/// Writes per group commit.
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

pub struct Metrics {
    registry: Registry,
    /// HTTP requests by route pattern, method and status.
    pub requests: IntCounterVec,
    /// HTTP request latency by route pattern.
    pub request_seconds: HistogramVec,
    /// Connections open now on the HTTP listener.
    pub connections: IntGauge,
    /// Tokens answered by signing a new one.
    pub tokens_fresh: IntCounter,
    /// Tokens answered from the reuse cache.
    pub tokens_reused: IntCounter,
    /// Time to sign one token.
    pub signing_seconds: Histogram,
    /// SQLite writes waiting for the writer thread.
    pub writer_queue: IntGauge,
    /// Writes per SQLite group commit.
    pub commit_batch: Histogram,
    /// Expired sessions removed by the purge.
    pub purged_sessions: IntCounter,
    /// Expired verification tokens removed by the purge.
    pub purged_verification_tokens: IntCounter,
    /// Events removed by the purge past their retention.
    pub purged_events: IntCounter,
    /// Events a webhook endpoint acknowledged.
    pub webhook_events_delivered: IntCounter,
    /// Webhook requests that failed (and will be retried).
    pub webhook_failures: IntCounter,
    /// Signing keys by state (read at scrape time).
    pub keys: IntGaugeVec,
    /// Age of each key, by kid and state (read at scrape time).
    pub key_age_seconds: IntGaugeVec,
    /// Bytes of the database and, on SQLite, its WAL (read at scrape time).
    pub storage_bytes: IntGaugeVec,
    /// Seconds since this process started serving.
    pub uptime_seconds: IntGauge,
    started: Instant,
}

static METRICS: LazyLock<Option<Metrics>> = LazyLock::new(|| match Metrics::new() {
    Ok(metrics) => Some(metrics),
    Err(e) => {
        log::error!("metrics are off: {e}");
        None
    }
});

/// The process's instruments (`None` only if they could not be made, which
/// the unit tests rule out).
pub fn get() -> Option<&'static Metrics> {
    METRICS.as_ref()
}

impl Metrics {
    fn new() -> prometheus::Result<Metrics> {
        let registry = Registry::new_custom(Some("authstore".into()), None)?;
        let gauge = |name: &str, help: &str| -> prometheus::Result<IntGauge> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let gauges = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))?;
            registry.register(Box::new(h.clone()))?;
            Ok::<_, prometheus::Error>(h)
        };
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )?;
        registry.register(Box::new(request_seconds.clone()))?;
        let tokens = IntCounterVec::new(
            Opts::new(
                "tokens_minted_total",
                "Session tokens answered, by whether they were signed now or reused",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(tokens.clone()))?;
        let purged = IntCounterVec::new(
            Opts::new(
                "purged_rows_total",
                "Expired rows removed by the purge, by table",
            ),
            &["table"],
        )?;
        registry.register(Box::new(purged.clone()))?;
        let counter = |name: &str, help: &str| -> prometheus::Result<IntCounter> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        Ok(Metrics {
            webhook_events_delivered: counter(
                "webhook_events_delivered_total",
                "Events acknowledged by a webhook endpoint",
            )?,
            webhook_failures: counter(
                "webhook_failures_total",
                "Webhook requests that failed and will be retried",
            )?,
            connections: gauge("http_connections", "HTTP connections open now")?,
            tokens_fresh: tokens.get_metric_with_label_values(&["fresh"])?,
            tokens_reused: tokens.get_metric_with_label_values(&["reused"])?,
            signing_seconds: histogram(
                "token_signing_seconds",
                "Time to sign one session token",
                &SIGNING_BUCKETS,
            )?,
            writer_queue: gauge(
                "sqlite_writer_queue_depth",
                "SQLite writes waiting for the writer thread",
            )?,
            commit_batch: histogram(
                "sqlite_commit_batch_size",
                "Writes per SQLite group commit",
                &BATCH_BUCKETS,
            )?,
            purged_sessions: purged.get_metric_with_label_values(&["sessions"])?,
            purged_verification_tokens: purged
                .get_metric_with_label_values(&["verification_tokens"])?,
            purged_events: purged.get_metric_with_label_values(&["events"])?,
            keys: gauges("signing_keys", "Signing keys by state", &["state"])?,
            key_age_seconds: gauges(
                "signing_key_age_seconds",
                "Seconds since each signing key was created, by kid and state",
                &["kid", "state"],
            )?,
            storage_bytes: gauges(
                "storage_bytes",
                "Bytes of the database (and of SQLite's WAL)",
                &["file"],
            )?,
            uptime_seconds: gauge("uptime_seconds", "Seconds since this process started")?,
            started: Instant::now(),
            requests,
            request_seconds,
            registry,
        })
    }

    /// Seconds since the instruments were made (the process's start).
    pub fn uptime(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        self.uptime_seconds
            .set(i64::try_from(self.uptime()).unwrap_or(i64::MAX));
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::error!("encoding metrics failed: {e}");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Counts one open HTTP connection while it lives.
pub struct OpenConnection;

impl OpenConnection {
    pub fn open() -> OpenConnection {
        if let Some(m) = get() {
            m.connections.inc();
        }
        OpenConnection
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if let Some(m) = get() {
            m.connections.dec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instruments_are_made_and_render() {
        let metrics = get().expect("every name and label is valid");
        metrics.tokens_fresh.inc();
        metrics
            .requests
            .with_label_values(&["/api/token", "POST", "200"])
            .inc();
        metrics
            .request_seconds
            .with_label_values(&["/api/token"])
            .observe(0.001);
        let text = metrics.render();
        assert!(text.contains("authstore_tokens_minted_total{outcome=\"fresh\"}"));
        assert!(text.contains(
            "authstore_http_requests_total{method=\"POST\",route=\"/api/token\",status=\"200\"}"
        ));
        assert!(text.contains("# TYPE authstore_http_request_duration_seconds histogram"));
    }
}
