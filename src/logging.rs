//! The server log: env_logger, as text (its own format) or as one JSON
//! object per line (`log_format = "json"`), with one correction. actix-http
//! logs every malformed request it refuses (bad framing, bad headers) at
//! ERROR, so any client could fill the log with ERROR lines. Those records
//! are demoted to DEBUG: they describe the client, not the server.
//!
//! A JSON line holds `time`, `level`, `target` and `message`, then the
//! record's structured fields (the access line's `request_id`, `trace_id`,
//! `method`, `route`, `path`, `status`, `duration_ms`; an error's `error`
//! and its `causes`, outermost first), and the `trace_id` of the request
//! being served when the record has none. What a line may hold is what its
//! message may: never a secret or a token (the fields are the same values).

use log::kv::{Key, Value as KvValue, VisitSource};
use log::{Level, Log, Metadata, Record};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// env_logger's lines, for people.
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Set once the configuration is read (the logger starts before it).
static JSON: AtomicBool = AtomicBool::new(false);

/// Writes every later line in `format`.
pub fn use_format(format: LogFormat) {
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
}

/// Where actix-http logs what a client sent wrong.
const CLIENT_NOISE: &str = "actix_http::h1";

struct Demoting(env_logger::Logger);

impl Log for Demoting {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        if metadata.target().starts_with(CLIENT_NOISE) {
            let demoted = Metadata::builder()
                .level(Level::Debug)
                .target(metadata.target())
                .build();
            return self.0.enabled(&demoted);
        }
        self.0.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if record.target().starts_with(CLIENT_NOISE) && record.level() < Level::Debug {
            let demoted = Record::builder()
                .args(*record.args())
                .level(Level::Debug)
                .target(record.target())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build();
            if self.0.enabled(demoted.metadata()) {
                self.0.log(&demoted);
            }
            return;
        }
        self.0.log(record);
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// Installs the logger: `RUST_LOG` or `info`, to stderr.
pub fn init() {
    let logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
            .format(|buf, record| {
                if JSON.load(Ordering::Relaxed) {
                    writeln!(buf, "{}", json_line(record))
                } else {
                    text_line(buf, record)
                }
            })
            .build();
    let max = logger.filter();
    if log::set_boxed_logger(Box::new(Demoting(logger))).is_ok() {
        log::set_max_level(max);
    }
}

/// env_logger's default look: `[time level target] message`.
fn text_line(buf: &mut env_logger::fmt::Formatter, record: &Record<'_>) -> std::io::Result<()> {
    let level = buf.default_level_style(record.level());
    writeln!(
        buf,
        "[{} {level}{:<5}{level:#} {}] {}",
        buf.timestamp(),
        record.level(),
        record.target(),
        record.args()
    )
}

/// One record as a JSON object.
pub fn json_line(record: &Record<'_>) -> Value {
    let mut line = Map::new();
    line.insert(
        "time".into(),
        crate::clock::Clock::now(&crate::clock::SystemClock)
            .to_iso()
            .into(),
    );
    line.insert("level".into(), record.level().as_str().into());
    line.insert("target".into(), record.target().into());
    line.insert("message".into(), record.args().to_string().into());
    let _ = record.key_values().visit(&mut Fields(&mut line));
    if !line.contains_key("trace_id") {
        if let Some(trace) = crate::trace::current() {
            line.insert("trace_id".into(), trace.trace_id().into());
        }
    }
    Value::Object(line)
}

/// The messages of `error`'s causes, outermost first (not its own).
pub fn causes(error: &dyn std::error::Error) -> Vec<String> {
    let mut causes = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    causes
}

/// Copies a record's structured fields into a line: numbers as numbers, an
/// error as its message and the chain of its causes.
struct Fields<'a>(&'a mut Map<String, Value>);

impl<'kvs> VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: KvValue<'kvs>) -> Result<(), log::kv::Error> {
        let key = key.as_str().to_owned();
        if let Some(error) = value.to_borrowed_error() {
            self.0.insert(key, error.to_string().into());
            self.0.insert("causes".into(), causes(error).into());
            return Ok(());
        }
        let value = if let Some(n) = value.to_u64() {
            n.into()
        } else if let Some(n) = value.to_i64() {
            n.into()
        } else if let Some(b) = value.to_bool() {
            b.into()
        } else if let Some(x) = value.to_f64() {
            x.into()
        } else if let Some(text) = value.to_borrowed_str() {
            text.into()
        } else {
            // A list (`causes`) or anything else serde can write.
            serde_json::to_value(&value).unwrap_or_else(|_| value.to_string().into())
        };
        self.0.insert(key, value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("the store failed")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("disk full")]
    struct Inner;

    #[test]
    fn a_json_line_holds_the_fields_and_an_errors_causes() {
        let error = Outer(Inner);
        let fields: [(&str, KvValue<'_>); 3] = [
            ("status", KvValue::from(503u16)),
            ("route", KvValue::from("/api/adapter/getUser")),
            ("error", KvValue::from_dyn_error(&error)),
        ];
        let line = json_line(
            &Record::builder()
                .args(format_args!("request failed"))
                .level(Level::Error)
                .target("authstore::http")
                .key_values(&fields)
                .build(),
        );
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["target"], "authstore::http");
        assert_eq!(line["message"], "request failed");
        assert_eq!(line["status"], 503);
        assert_eq!(line["route"], "/api/adapter/getUser");
        assert_eq!(line["error"], "the store failed");
        assert_eq!(line["causes"], serde_json::json!(["disk full"]));
        assert!(line["time"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert!(line.get("trace_id").is_none(), "outside a request");
    }
}
