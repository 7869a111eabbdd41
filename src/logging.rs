//! The server log: env_logger, with one correction. actix-http logs every
//! malformed request it refuses (bad framing, bad headers) at ERROR, so any
//! client could fill the log with ERROR lines. Those records are demoted to
//! DEBUG: they describe the client, not the server.

use log::{Level, Log, Metadata, Record};

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
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    let max = logger.filter();
    if log::set_boxed_logger(Box::new(Demoting(logger))).is_ok() {
        log::set_max_level(max);
    }
}
