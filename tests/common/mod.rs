//! Starts the real app on a temp database and a free port, one per test.
#![allow(dead_code)]

use actix_web::dev::ServerHandle;
use authstore::clock::{Clock, SystemClock};
use authstore::issuer::Issuer;
use authstore::{Application, Config};
use serde_json::Value;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use tempfile::TempDir;

pub const SECRET: &str = "test-secret-0123456789abcdef";

pub struct TestApp {
    pub base: String,
    pub port: u16,
    pub dir: Arc<TempDir>,
    pub config: Config,
    pub issuer: Arc<Issuer>,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

pub fn test_config(dir: &TempDir) -> Config {
    Config {
        database: dir.path().join("authstore.db"),
        secret: Some(authstore::secret::Secret::new(SECRET).unwrap()),
        workers: 2,
        ..Config::default()
    }
}

impl TestApp {
    pub fn spawn() -> Self {
        Self::spawn_with(|_| {})
    }

    pub fn spawn_with(customize: impl FnOnce(&mut Config)) -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let mut config = test_config(&dir);
        customize(&mut config);
        Self::start(dir, config, Arc::new(SystemClock))
    }

    /// Starts a server on an existing directory and configuration (a restart).
    pub fn start(dir: Arc<TempDir>, config: Config, clock: Arc<dyn Clock>) -> Self {
        let (ready, started) = mpsc::channel();
        let app_config = config.clone();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let app = Application::build_with_clock(app_config, listener, clock)
                    .await
                    .unwrap();
                ready
                    .send((app.port(), app.handle(), app.issuer().clone()))
                    .unwrap();
                app.run_until_stopped().await.unwrap();
            })
        });
        // A start that hangs fails the test instead of the whole run.
        let (port, handle, issuer) = started
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the server failed to start within 60 s");
        TestApp {
            base: format!("http://127.0.0.1:{port}"),
            port,
            dir,
            config,
            issuer,
            handle,
            thread: Some(thread),
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.config.database.clone()
    }

    /// Calls an adapter method with the right secret.
    pub fn call(&self, method: &str, body: Value) -> (u16, Value) {
        self.post(
            &format!("/api/adapter/{method}"),
            &body.to_string(),
            Some(SECRET),
        )
    }

    /// Calls an adapter method and expects a 200.
    pub fn ok(&self, method: &str, body: Value) -> Value {
        let (status, value) = self.call(method, body);
        assert_eq!(status, 200, "{method} answered {status}: {value}");
        value
    }

    pub fn post(&self, path: &str, body: &str, secret: Option<&str>) -> (u16, Value) {
        let mut request =
            ureq::post(&format!("{}{path}", self.base)).set("Content-Type", "application/json");
        if let Some(secret) = secret {
            request = request.set("Authorization", &format!("Bearer {secret}"));
        }
        read(request.send_string(body))
    }

    pub fn get(&self, path: &str) -> (u16, ureq::Response) {
        match ureq::get(&format!("{}{path}", self.base)).call() {
            Ok(response) => (response.status(), response),
            Err(ureq::Error::Status(code, response)) => (code, response),
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    /// Stops the server and waits until it has let go of the database.
    pub fn stop(mut self) -> (Arc<TempDir>, Config) {
        self.shutdown();
        (self.dir.clone(), self.config.clone())
    }

    fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            actix_web::rt::System::new().block_on(self.handle.stop(true));
            let _ = thread.join();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn read(result: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap();
    let value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, value)
}

/// The error code of a failure body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"))
}

pub fn user_fixture() -> Value {
    serde_json::json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "email": "fill@murray.com",
        "image": "https://www.fillmurray.com/460/300",
        "name": "Fill Murray",
        "emailVerified": "2026-11-27T02:01:08.123Z",
    })
}
pub mod process;
