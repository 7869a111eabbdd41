//! For Rust services that test against authstore: a real server, in
//! process, on a temp database and a free port, stopped when dropped.
//!
//! ```toml
//! [dev-dependencies]
//! authstore = { version = "0.1", features = ["testing"] }
//! ```
//!
//! ```no_run
//! let server = authstore::testing::TestServer::start().unwrap();
//! // POST {server.url()}/api/adapter/createUser with `Bearer {server.secret()}` ...
//! drop(server); // stops it and removes its database
//! ```

use crate::clock::{Clock, SystemClock};
use crate::issuer::Issuer;
use crate::secret::Secret;
use crate::{Application, Config};
use actix_web::dev::ServerHandle;
use std::net::TcpListener;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a start may take before it is an error.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A running server. Dropping it stops the server (requests in flight
/// finish) and, for one made by [`TestServer::start`], removes its database.
pub struct TestServer {
    url: String,
    port: u16,
    metrics_url: Option<String>,
    secret: String,
    issuer: Arc<Issuer>,
    config: Config,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
    /// The temp directory of the database, when this server made one.
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A server on a new database in a new temp directory, with a random
    /// secret, on 127.0.0.1 and a free port.
    pub fn start() -> Result<Self, String> {
        Self::start_with(|_| {})
    }

    /// Like [`Self::start`], with the configuration adjusted by `customize`
    /// (the database path and the secret are already set; keep them).
    pub fn start_with(customize: impl FnOnce(&mut Config)) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temp directory: {e}"))?;
        let secret = Secret::generate().map_err(|e| e.to_string())?;
        let mut config = Config {
            database: dir.path().join("authstore.db"),
            secret: Some(secret),
            workers: 2,
            ..Config::default()
        };
        customize(&mut config);
        let mut server = Self::start_on(config, Arc::new(SystemClock))?;
        server._dir = Some(dir);
        Ok(server)
    }

    /// A server on `config` as given (an existing database: a restart),
    /// with its own clock. The caller keeps the database's directory.
    pub fn start_on(config: Config, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let (ready, started) = mpsc::channel();
        let app_config = config.clone();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let listener = match TcpListener::bind("127.0.0.1:0") {
                    Ok(listener) => listener,
                    Err(e) => {
                        let _ = ready.send(Err(format!("cannot bind 127.0.0.1: {e}")));
                        return;
                    }
                };
                match Application::build_with_clock(app_config, listener, clock).await {
                    Err(e) => {
                        let _ = ready.send(Err(e.to_string()));
                    }
                    Ok(app) => {
                        let _ = ready.send(Ok((
                            app.port(),
                            app.metrics_address(),
                            app.handle(),
                            app.issuer().clone(),
                        )));
                        if let Err(e) = app.run_until_stopped().await {
                            log::error!("the test server stopped with an error: {e}");
                        }
                    }
                }
            })
        });
        let (port, metrics, handle, issuer) = started
            .recv_timeout(START_DEADLINE)
            .map_err(|_| format!("the server did not start within {START_DEADLINE:?}"))??;
        let secret = config
            .secret
            .as_ref()
            .map(|s| s.expose().to_owned())
            .unwrap_or_default();
        Ok(TestServer {
            url: format!("http://127.0.0.1:{port}"),
            port,
            metrics_url: metrics.map(|address| format!("http://{address}/metrics")),
            secret,
            issuer,
            config,
            handle,
            thread: Some(thread),
            _dir: None,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://ADDRESS/metrics`, when the configuration sets `metrics_bind`.
    pub fn metrics_url(&self) -> Option<&str> {
        self.metrics_url.as_deref()
    }

    /// The shared secret clients send as `Authorization: Bearer ...`.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The issuer in the tokens it mints.
    pub fn issuer(&self) -> &Arc<Issuer> {
        &self.issuer
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Stops the server and waits until it has let go of the database.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            actix_web::rt::System::new().block_on(self.handle.stop(true));
            let _ = thread.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
