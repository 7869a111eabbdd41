//! What only PostgreSQL has: a server that can go away and come back, and
//! nodes that must be given their secret and key-encryption key. Run by
//! scripts/test-all with TEST_POSTGRES_URL set; without it they say so and pass.

use crate::common;

use common::process::{authstore, output, Server};
use common::{KEK, SECRET};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The cluster URL, or `None` (with a note) when the tests run on SQLite.
fn cluster() -> Option<String> {
    let cluster = common::postgres_cluster();
    if cluster.is_none() {
        eprintln!(
            "SKIPPED: needs {} (scripts/test-all sets it)",
            common::POSTGRES_VARIABLE
        );
    }
    cluster
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres-cluster")
}

/// A PostgreSQL cluster of this test's own, stopped and removed when dropped.
struct OwnCluster {
    parent: tempfile::TempDir,
    url: String,
}

impl OwnCluster {
    fn start() -> OwnCluster {
        let parent = tempfile::tempdir().unwrap();
        // The cluster runs as `nobody` when the tests run as root.
        std::fs::set_permissions(
            parent.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let out = output({
            let mut command = Command::new(script());
            command.arg("start").arg(parent.path().join("cluster"));
            command
        });
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        OwnCluster { parent, url }
    }

    fn run(&self, verb: &str) {
        let mut command = Command::new(script());
        command.arg(verb).arg(self.parent.path().join("cluster"));
        let out = output(command);
        assert!(
            out.status.success(),
            "{verb}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(self.parent.path().join("cluster"))
            .status();
    }
}

fn readyz(server: &Server) -> (u16, Duration) {
    let asked = Instant::now();
    let status = match ureq::get(&server.url("/readyz"))
        .timeout(Duration::from_secs(30))
        .call()
    {
        Ok(response) => response.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("/readyz: {e}"),
    };
    (status, asked.elapsed())
}

#[test]
fn readyz_and_calls_answer_503_while_postgres_is_down_and_recover_after() {
    if cluster().is_none() {
        return;
    }
    let own = OwnCluster::start();
    let database = common::fresh_postgres_database(&own.url);
    let mut command = authstore(own.parent.path());
    command
        .args(["serve", "--port", "0", "--database", &database])
        .env("AUTHSTORE_SECRET", SECRET)
        .env("AUTHSTORE_KEY_ENCRYPTION_KEY", KEK)
        .env("AUTHSTORE_POSTGRES_CONNECT_TIMEOUT_SECS", "2");
    let server = Server::start(command);
    assert_eq!(readyz(&server).0, 200);

    own.run("down");
    let (status, took) = readyz(&server);
    assert_eq!(status, 503);
    assert!(took < Duration::from_secs(10), "/readyz took {took:?}");
    let response = ureq::post(&server.url("/api/adapter/getUser"))
        .timeout(Duration::from_secs(30))
        .set("Authorization", &format!("Bearer {SECRET}"))
        .send_string(r#"{"id":"someone"}"#);
    match response {
        Err(ureq::Error::Status(503, response)) => {
            assert_eq!(response.header("Retry-After"), Some("1"));
            let body: serde_json::Value = response.into_json().unwrap();
            assert_eq!(body["error"]["code"], "unavailable");
        }
        other => panic!("a call while PostgreSQL is down: {other:?}"),
    }

    own.run("up");
    let deadline = Instant::now() + Duration::from_secs(15);
    while readyz(&server).0 != 200 {
        assert!(
            Instant::now() < deadline,
            "not ready again 15 s after PostgreSQL came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let user = ureq::post(&server.url("/api/adapter/createUser"))
        .set("Authorization", &format!("Bearer {SECRET}"))
        .send_string(r#"{"user":{"email":"back@example.com"}}"#)
        .unwrap();
    assert_eq!(user.status(), 200);
}

#[test]
fn a_node_without_a_shared_secret_or_kek_refuses_to_start() {
    let Some(cluster) = cluster() else { return };
    let database = common::fresh_postgres_database(&cluster);
    let dir = tempfile::tempdir().unwrap();
    let mut command = authstore(dir.path());
    command.args(["serve", "--port", "0", "--database", &database]);
    let out = output(command);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("AUTHSTORE_SECRET"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing generated"
    );

    let mut command = authstore(dir.path());
    command
        .args(["serve", "--port", "0", "--database", &database])
        .env("AUTHSTORE_SECRET", SECRET);
    let out = output(command);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("AUTHSTORE_KEY_ENCRYPTION_KEY"), "{stderr}");
}

#[test]
fn a_node_with_another_kek_is_refused_and_the_password_never_printed() {
    let Some(cluster) = cluster() else { return };
    let database = common::fresh_postgres_database(&cluster);
    let dir = tempfile::tempdir().unwrap();
    let node = |kek: &str| {
        let mut command = authstore(dir.path());
        command
            .args(["serve", "--port", "0", "--database", &database])
            .env("AUTHSTORE_SECRET", SECRET)
            .env("AUTHSTORE_KEY_ENCRYPTION_KEY", kek);
        command
    };
    let first = Server::start(node(KEK));
    let out = output(node("another-kek-0123456789abcdef0123"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sealed under key-encryption key"),
        "{stderr}"
    );
    assert!(stderr.contains("same key_encryption_key"), "{stderr}");
    drop(first);

    // A URL with a password: the log shows it masked.
    let with_password = database.replacen("://authstore@", "://authstore:hunter2-secret@", 1);
    let mut command = authstore(dir.path());
    command
        .args(["serve", "--port", "0", "--database", &with_password])
        .env("AUTHSTORE_SECRET", SECRET)
        .env("AUTHSTORE_KEY_ENCRYPTION_KEY", KEK);
    let server = Server::start(command);
    let log = server.log.join("\n");
    assert!(log.contains("authstore:***@"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
}

#[test]
fn a_multi_host_url_finds_the_primary_past_a_dead_host() {
    let Some(cluster) = cluster() else { return };
    let database = common::fresh_postgres_database(&cluster);
    // postgres://user@127.0.0.1:PORT/db -> postgres://user@127.0.0.1:1,127.0.0.1:PORT/db?...
    let (scheme_user, rest) = database.split_once('@').unwrap();
    let failover = format!("{scheme_user}@127.0.0.1:1,{rest}?target_session_attrs=read-write");
    let dir = tempfile::tempdir().unwrap();
    let mut command = authstore(dir.path());
    command
        .args(["serve", "--port", "0", "--database", &failover])
        .env("AUTHSTORE_SECRET", SECRET)
        .env("AUTHSTORE_KEY_ENCRYPTION_KEY", KEK);
    let server = Server::start(command);
    assert_eq!(readyz(&server).0, 200);
    let created = ureq::post(&server.url("/api/adapter/createUser"))
        .set("Authorization", &format!("Bearer {SECRET}"))
        .send_string(r#"{"user":{"email":"failover@example.com"}}"#)
        .unwrap();
    assert_eq!(created.status(), 200);
}

#[test]
fn tls_is_verified_against_the_configured_ca() {
    if cluster().is_none() {
        return;
    }
    let own = OwnCluster::start();
    let data = own.parent.path().join("cluster/data");
    // A CA, and a certificate it signs for 127.0.0.1, installed in the cluster.
    let script = r#"set -e
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -subj /CN=authstore-test-ca -days 1
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1
        printf 'subjectAltName=IP:127.0.0.1\n' > san.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 1 -extfile san.ext
        chmod 600 server.key"#;
    let certs = tempfile::tempdir().unwrap();
    let out = output({
        let mut command = Command::new("sh");
        command.current_dir(certs.path()).args(["-c", script]);
        command
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in ["server.crt", "server.key"] {
        std::fs::copy(certs.path().join(file), data.join(file)).unwrap();
        if unsafe { libc::geteuid() } == 0 {
            let owned = Command::new("chown")
                .args(["nobody:nogroup"])
                .arg(data.join(file))
                .status()
                .unwrap();
            assert!(owned.success());
        }
    }
    let mut admin = common::postgres_client(&own.url);
    admin.batch_execute("ALTER SYSTEM SET ssl = on").unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").unwrap();
    drop(admin);
    // The reload is signalled, not awaited: new connections see it when done.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ssl: String = common::postgres_client(&own.url)
            .query_one("SHOW ssl", &[])
            .unwrap()
            .get(0);
        if ssl == "on" {
            break;
        }
        assert!(Instant::now() < deadline, "the cluster did not turn TLS on");
        std::thread::sleep(Duration::from_millis(20));
    }

    let database = common::fresh_postgres_database(&own.url);
    let tls_url = format!("{database}?sslmode=require");
    let node = |ca: Option<&Path>| {
        let mut command = authstore(own.parent.path());
        command
            .args(["serve", "--port", "0", "--database", &tls_url])
            .env("AUTHSTORE_SECRET", SECRET)
            .env("AUTHSTORE_KEY_ENCRYPTION_KEY", KEK)
            .env("AUTHSTORE_POSTGRES_CONNECT_TIMEOUT_SECS", "3");
        if let Some(ca) = ca {
            command.env("AUTHSTORE_POSTGRES_CA_FILE", ca);
        }
        command
    };
    // A certificate the system does not trust is refused, not used unverified.
    let out = output(node(None));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("certificate verify failed"), "{stderr}");

    let server = Server::start(node(Some(&certs.path().join("ca.crt"))));
    assert_eq!(readyz(&server).0, 200);
    let encrypted = common::postgres_client(&database)
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE ssl AND application_name = 'authstore'",
            &[],
        )
        .unwrap()
        .get::<_, i64>(0);
    assert!(encrypted >= 1, "authstore's connections use TLS");
}

#[test]
fn a_version_1_database_gains_the_newer_tables_and_keeps_its_rows() {
    let Some(_) = cluster() else { return };
    let app = common::TestApp::spawn();
    let user = app.ok(
        "createUser",
        serde_json::json!({ "user": common::user_fixture() }),
    );
    let (dir, config) = app.stop();
    // Back to what version 1 had: no console tables, no name index, no events.
    let url = config.postgres_url().unwrap().to_owned();
    common::postgres_client(&url)
        .batch_execute(
            "DROP TABLE console_links; DROP TABLE console_sessions; DROP INDEX users_by_name;
             DROP TABLE events; DROP TABLE webhook_endpoints; DROP TABLE webhook_deliveries;
             DROP FUNCTION events_writer_lock; ALTER TABLE signing_keys DROP COLUMN row_seal;
             ALTER TABLE meta DROP COLUMN rows_bound;
             ALTER TABLE sessions DROP COLUMN created_at, DROP COLUMN last_seen_at,
                 DROP COLUMN user_agent, DROP COLUMN ip;
             ALTER TABLE accounts ALTER COLUMN session_state TYPE TEXT USING NULL,
                 ALTER COLUMN extra TYPE TEXT USING NULL;
             UPDATE meta SET schema_version = 1;",
        )
        .unwrap();
    let app = common::TestApp::start(
        dir,
        config,
        std::sync::Arc::new(authstore::clock::SystemClock),
    );
    assert_eq!(
        app.count("SELECT schema_version::bigint FROM meta"),
        i64::from(authstore::store::postgres::schema::VERSION)
    );
    assert_eq!(app.count("SELECT count(*) FROM meta WHERE rows_bound"), 1);
    assert_eq!(
        app.count("SELECT count(*) FROM signing_keys WHERE row_seal IS NULL"),
        0
    );
    assert_eq!(app.count("SELECT count(*) FROM events"), 0);
    assert_eq!(
        app.count("SELECT count(*) FROM pg_trigger WHERE tgname = 'events_writer_lock'"),
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM pg_indexes WHERE indexname = 'users_by_name'"),
        1
    );
    assert_eq!(app.count("SELECT count(*) FROM console_sessions"), 0);
    assert_eq!(app.count("SELECT count(*) FROM webhook_endpoints"), 0);
    assert_eq!(
        app.ok("getUser", serde_json::json!({ "id": user["id"] }))["id"],
        user["id"]
    );
}
