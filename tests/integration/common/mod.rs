//! Starts the real app on a temp database and a free port, one per test.
#![allow(dead_code)]

use authstore::clock::{Clock, SystemClock};
use authstore::issuer::Issuer;
use authstore::testing::TestServer;
use authstore::Config;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use tempfile::TempDir;

pub const SECRET: &str = "test-secret-0123456789abcdef";
/// The key-encryption key of PostgreSQL tests (it must be configured there).
/// The shape `authstore secret` prints: 43 base64url characters (256 bits).
pub const KEK: &str = "test-kek-0123456789abcdef0123456789abcdefghij";

/// The variable that switches the integration tests to PostgreSQL: the URL
/// of a cluster where tests may create databases (scripts/test-all starts one).
pub const POSTGRES_VARIABLE: &str = "TEST_POSTGRES_URL";

/// The cluster under test, when the tests run on PostgreSQL.
pub fn postgres_cluster() -> Option<String> {
    std::env::var(POSTGRES_VARIABLE)
        .ok()
        .filter(|url| !url.is_empty())
}

pub fn on_postgres() -> bool {
    postgres_cluster().is_some()
}

/// A new, empty database of its own on the cluster under test; its URL.
pub fn fresh_postgres_database(cluster: &str) -> String {
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = postgres::Client::connect(cluster, postgres::NoTls)
        .unwrap_or_else(|e| panic!("{POSTGRES_VARIABLE} does not connect: {e}"));
    // template0: nobody is ever connected to it, so any number of tests
    // create their databases from it at once.
    admin
        .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0"))
        .unwrap();
    let (server, _) = cluster
        .split_once('?')
        .unwrap_or((cluster, ""))
        .0
        .rsplit_once('/')
        .expect("the cluster URL names a database");
    format!("{server}/{name}")
}

/// Runs `sql` on a PostgreSQL database (tests only).
pub fn postgres_client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap()
}

pub struct TestApp {
    pub base: String,
    pub port: u16,
    pub dir: Arc<TempDir>,
    pub config: Config,
    pub issuer: Arc<Issuer>,
    /// `http://ADDRESS/metrics` when `metrics_bind` is set.
    pub metrics_url: Option<String>,
    server: Option<TestServer>,
}

/// A configuration on a new database: `authstore.db` in `dir`, or a new
/// PostgreSQL database when the tests run there.
pub fn test_config(dir: &TempDir) -> Config {
    let mut config = Config {
        database: dir.path().join("authstore.db"),
        secret: Some(authstore::secret::Secret::new(SECRET).unwrap()),
        workers: 2,
        ..Config::default()
    };
    if let Some(cluster) = postgres_cluster() {
        config.database = PathBuf::from(fresh_postgres_database(&cluster));
        config.key_encryption_key = Some(authstore::secret::Secret::new(KEK).unwrap());
        config.postgres.pool_size = 8;
    }
    config
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

    /// Starts a server on an existing directory and configuration (a restart),
    /// through `authstore::testing` (what other projects' tests use).
    pub fn start(dir: Arc<TempDir>, config: Config, clock: Arc<dyn Clock>) -> Self {
        let server = TestServer::start_on(config.clone(), clock)
            .unwrap_or_else(|e| panic!("the server failed to start: {e}"));
        TestApp {
            base: server.url().to_owned(),
            port: server.port(),
            dir,
            config,
            issuer: server.issuer().clone(),
            metrics_url: server.metrics_url().map(str::to_owned),
            server: Some(server),
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.config.database.clone()
    }

    /// The first column of the first row of `sql`, a count, read from the
    /// database directly (either backend).
    pub fn count(&self, sql: &str) -> i64 {
        count_in(&self.config, sql)
    }

    /// The bytes of the first column of the first row of `sql`.
    pub fn bytes(&self, sql: &str) -> Vec<u8> {
        match self.config.postgres_url() {
            Some(url) => postgres_client(url).query_one(sql, &[]).unwrap().get(0),
            None => rusqlite::Connection::open(&self.config.database)
                .unwrap()
                .query_row(sql, [], |r| r.get(0))
                .unwrap(),
        }
    }

    /// The `sid` claim of a token minted for the session.
    pub fn sid_of(&self, session_token: &str) -> String {
        let (status, minted) = self.post(
            "/api/token",
            &serde_json::json!({ "sessionToken": session_token }).to_string(),
            Some(SECRET),
        );
        assert_eq!(status, 200, "{minted}");
        let token = minted["token"].as_str().unwrap();
        let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
        let jwks: Value = self.get("/.well-known/jwks.json").1.into_json().unwrap();
        let jwk = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .unwrap();
        let key = jsonwebtoken::DecodingKey::from_rsa_components(
            jwk["n"].as_str().unwrap(),
            jwk["e"].as_str().unwrap(),
        )
        .unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&["convex"]);
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .unwrap()
            .claims;
        claims["sid"].as_str().unwrap().to_owned()
    }

    /// Opens a console session with a fresh link, as the console page does:
    /// (the `Set-Cookie` header it answers, the CSRF token).
    pub fn open_console(&self) -> (String, String) {
        let (ok, link, err) = self.cli(&["console-link", "--url", &self.base]);
        assert!(ok, "{err}");
        let token = link.trim().rsplit_once('#').unwrap().1.to_owned();
        let opened = ureq::post(&format!("{}/api/console/open", self.base))
            .set("Origin", &self.base)
            .send_json(serde_json::json!({ "token": token }))
            .unwrap();
        let set_cookie = opened.header("set-cookie").unwrap().to_owned();
        let csrf = opened.into_json::<Value>().unwrap()["csrf"]
            .as_str()
            .unwrap()
            .to_owned();
        (set_cookie, csrf)
    }

    /// `authstore ARGS --database <this app's database>` with what the CLI
    /// needs to open it: (success, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let mut command = process::authstore(self.dir.path());
        command
            .args(args)
            .arg("--database")
            .arg(&self.config.database)
            .envs(cli_env(&self.config));
        let out = process::output(command);
        let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            // A failure's message names how it ended (a code, or a signal).
            stderr.push_str(&format!(
                "\n[{}; stdout: {:?}]",
                out.status,
                String::from_utf8_lossy(&out.stdout)
            ));
        }
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
        )
    }

    /// `authstore audit --json ARGS`: the events, newest first.
    pub fn audit(&self, args: &[&str]) -> Vec<Value> {
        let (ok, stdout, stderr) = self.cli(&[&["audit", "--json"], args].concat());
        assert!(ok, "{stderr}");
        stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
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
        if let Some(server) = self.server.take() {
            server.stop();
        }
        (self.dir.clone(), self.config.clone())
    }
}

/// The environment a CLI command needs to open the database of `config`:
/// its secret and key-encryption key when they are configured (PostgreSQL).
pub fn cli_env(config: &Config) -> Vec<(&'static str, String)> {
    let mut env = Vec::new();
    if let Some(secret) = &config.secret {
        env.push(("AUTHSTORE_SECRET", secret.expose().to_owned()));
    }
    if let Some(kek) = &config.key_encryption_key {
        env.push(("AUTHSTORE_KEY_ENCRYPTION_KEY", kek.expose().to_owned()));
    }
    env
}

/// A count read from the database of `config` directly.
pub fn count_in(config: &Config, sql: &str) -> i64 {
    match config.postgres_url() {
        Some(url) => postgres_client(url).query_one(sql, &[]).unwrap().get(0),
        None => rusqlite::Connection::open(&config.database)
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap(),
    }
}

/// Everything the database of `config` holds, as bytes to search: on
/// SQLite every file beside it (database, WAL, secrets); on PostgreSQL every
/// row of every table as text (bytea as hex).
pub fn stored_bytes(config: &Config, dir: &std::path::Path) -> Vec<u8> {
    match config.postgres_url() {
        Some(url) => {
            let mut client = postgres_client(url);
            let tables: Vec<String> = client
                .query(
                    "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
                    &[],
                )
                .unwrap()
                .iter()
                .map(|row| row.get(0))
                .collect();
            assert!(tables.len() >= 7, "{tables:?}");
            let mut all = Vec::new();
            for table in tables {
                let sql = format!("SELECT coalesce(string_agg(t::text, '\n'), '') FROM {table} t");
                let text: String = client.query_one(&sql, &[]).unwrap().get(0);
                all.extend_from_slice(text.as_bytes());
            }
            all
        }
        None => {
            let mut all = Vec::new();
            for entry in std::fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                // Files only: the server's control socket is no file to read.
                if entry.file_type().unwrap().is_file() {
                    all.extend(std::fs::read(entry.path()).unwrap());
                }
            }
            all
        }
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
