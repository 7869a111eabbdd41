//! Migrations never lose a row: the frozen version-1 fixture (written by the
//! last version-1 build) migrates with every answer unchanged, and to the
//! very schema a new database gets; a rebuild of a parent table cascades
//! nothing; versions no authstore writes are refused.

use crate::common;

use authstore::kek::Kek;
use authstore::secret::Secret;
use authstore::store::sqlite::schema::{self, SchemaError, STEPS, VERSION};
use authstore::timestamp::Timestamp;
use common::process::serve_shared;
use common::TestApp;
use rusqlite::Connection;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

const FIXTURE: &[u8] = include_bytes!("../fixtures/v1.db");
const EXPECTED: &str = include_str!("../fixtures/v1.expected.json");

fn expected() -> Value {
    serde_json::from_str(EXPECTED).unwrap()
}

/// A copy of the fixture as `authstore.db` in a new directory.
fn fixture_copy() -> Arc<tempfile::TempDir> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("authstore.db"), FIXTURE).unwrap();
    Arc::new(dir)
}

/// The version-1 signing keys: (kid, PKCS#8 DER, retires_at, unpublish_at).
type V1Key = (String, Vec<u8>, Option<i64>, Option<i64>);

fn v1_keys() -> Vec<V1Key> {
    let dir = fixture_copy();
    let conn = Connection::open(dir.path().join("authstore.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT kid, private_key, retires_at, unpublish_at FROM signing_keys")
        .unwrap();
    let keys = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    keys
}

fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn the_version_1_fixture_migrates_with_every_row_intact() {
    let expected = expected();
    let dir = fixture_copy();
    // The secret gates HTTP only; the database does not know it.
    let config = common::test_config(&dir);
    let app = TestApp::start(dir.clone(), config, Arc::new(authstore::clock::SystemClock));

    // (a) Every answer the version-1 build gave, given again.
    for question in expected["answers"].as_array().unwrap() {
        let method = question["method"].as_str().unwrap();
        let (status, answer) = app.call(method, question["body"].clone());
        assert_eq!(status, 200, "{method}");
        assert_eq!(answer, question["answer"], "{method} {}", question["body"]);
    }
    let conn = Connection::open(app.db_path()).unwrap();
    for (table, rows) in expected["counts"].as_object().unwrap() {
        if table != "signing_keys" {
            assert_eq!(count(&conn, table), rows.as_i64().unwrap(), "{table}");
        }
    }
    // Keys: each kept until it leaves the JWKS, with its public half, and its
    // private half only while it may still sign.
    let now = Timestamp::now().millis();
    for (kid, pkcs8, retires_at, unpublish_at) in v1_keys() {
        let row: Option<(Vec<u8>, Option<Vec<u8>>)> = conn
            .query_row(
                "SELECT public_key, private_key FROM signing_keys WHERE kid = ?1",
                [&kid],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok();
        if unpublish_at.is_some_and(|at| at <= now) {
            continue; // removed by schedule, as version 1 would have done
        }
        let (public, private) = row.unwrap_or_else(|| panic!("key {kid} survived"));
        let original = openssl::pkey::PKey::private_key_from_pkcs8(&pkcs8).unwrap();
        assert_eq!(public, original.public_key_to_der().unwrap(), "{kid}");
        let signs = retires_at.is_none_or(|at| now < at);
        assert_eq!(
            private.is_some(),
            signs,
            "{kid}: private half only while it signs"
        );
        assert!(private.is_none_or(|p| p != pkcs8), "{kid} is sealed");
    }
    let (dir, _) = app.stop();

    // Nothing of the version-1 plaintext is left in the file.
    let bytes = std::fs::read(dir.path().join("authstore.db")).unwrap();
    for (kid, pkcs8, ..) in v1_keys() {
        assert!(
            !bytes.windows(pkcs8.len()).any(|w| w == pkcs8),
            "the migrated file still holds key {kid} in plaintext"
        );
    }
    for token in [
        "fixture-refresh-token-ghr1",
        "fixture-access-token-gho1",
        "fixture-id-token-eyJ1",
    ] {
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "the migrated file still holds {token}"
        );
    }
}

/// `sqlite_master` as a comparable set: statements without comments, quotes
/// or layout.
fn normalized_schema(path: &Path) -> Vec<(String, String, String)> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            let sql: Option<String> = r.get(2)?;
            Ok((r.get(0)?, r.get(1)?, sql.map(normalize).unwrap_or_default()))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows
}

fn normalize(sql: String) -> String {
    let without_comments: Vec<&str> = sql
        .lines()
        .map(|line| line.split("--").next().unwrap_or(""))
        .collect();
    let spaced = without_comments.join(" ").replace('"', "");
    let words: Vec<&str> = spaced.split_whitespace().collect();
    words
        .join(" ")
        .replace("( ", "(")
        .replace(" )", ")")
        .replace(" ,", ",")
}

#[test]
fn the_migrated_schema_is_the_schema_of_a_new_database() {
    let fresh = TestApp::spawn();
    let (fresh_dir, _) = fresh.stop();
    let migrated = fixture_copy();
    let config = common::test_config(&migrated);
    let (migrated, _) =
        TestApp::start(migrated, config, Arc::new(authstore::clock::SystemClock)).stop();
    let fresh = normalized_schema(&fresh_dir.path().join("authstore.db"));
    let upgraded = normalized_schema(&migrated.path().join("authstore.db"));
    assert_eq!(fresh, upgraded);
    let version = |dir: &Path| -> i64 {
        Connection::open(dir.join("authstore.db"))
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(version(fresh_dir.path()), VERSION);
    assert_eq!(version(migrated.path()), VERSION);
}

fn kek() -> Kek {
    Kek::new(&Secret::new("migration-test-kek-0123456789").unwrap()).unwrap()
}

/// A test step in the shape of a real table rebuild: a new `users`, the
/// rows copied, the old one dropped, the new one renamed into place.
fn rebuild_users(
    tx: &rusqlite::Transaction<'_>,
    _: &Kek,
    _: Timestamp,
) -> Result<(), schema::BoxError> {
    tx.execute_batch(
        "CREATE TABLE users_new (
             id             TEXT PRIMARY KEY NOT NULL,
             email          TEXT UNIQUE,
             name           TEXT,
             email_verified INTEGER,
             image          TEXT,
             extra          TEXT,
             nickname       TEXT
         ) WITHOUT ROWID;
         INSERT INTO users_new (id, email, name, email_verified, image, extra)
             SELECT id, email, name, email_verified, image, extra FROM users;
         DROP TABLE users;
         ALTER TABLE users_new RENAME TO users;",
    )?;
    Ok(())
}

#[test]
fn rebuilding_a_parent_table_cascades_nothing() {
    let dir = fixture_copy();
    let path = dir.path().join("authstore.db");
    let mut conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    let before: Vec<i64> = ["users", "accounts", "sessions", "authenticators"]
        .iter()
        .map(|t| count(&conn, t))
        .collect();
    let mut steps = STEPS.to_vec();
    steps.push(rebuild_users);
    schema::migrate_with(&mut conn, &kek(), Timestamp::now(), &steps).unwrap();
    let after: Vec<i64> = ["users", "accounts", "sessions", "authenticators"]
        .iter()
        .map(|t| count(&conn, t))
        .collect();
    assert_eq!(before, after, "no row was cascaded away");
    assert_eq!(
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .unwrap(),
        VERSION + 1
    );
    let fk: bool = conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert!(fk, "foreign keys are back on after the migration");
    // The cascade still works after the rebuild.
    conn.execute("DELETE FROM users WHERE id = 'user-alice'", [])
        .unwrap();
    assert_eq!(count(&conn, "sessions"), 1);
}

#[test]
fn a_step_that_breaks_a_reference_is_rolled_back() {
    fn orphan(
        tx: &rusqlite::Transaction<'_>,
        _: &Kek,
        _: Timestamp,
    ) -> Result<(), schema::BoxError> {
        tx.execute("DELETE FROM users WHERE id = 'user-bob'", [])?;
        Ok(())
    }
    let dir = fixture_copy();
    let mut conn = Connection::open(dir.path().join("authstore.db")).unwrap();
    let mut steps = STEPS.to_vec();
    steps.push(orphan);
    let err = schema::migrate_with(&mut conn, &kek(), Timestamp::now(), &steps).unwrap_err();
    assert!(matches!(err, SchemaError::ForeignKeys { .. }), "{err}");
    assert!(err.to_string().contains("sessions"), "{err}");
    assert_eq!(count(&conn, "users"), 2, "the step was rolled back");
    assert_eq!(
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .unwrap(),
        VERSION,
        "the steps before it stay"
    );
}

#[test]
fn versions_no_authstore_writes_are_refused_without_a_panic() {
    for (version, says) in [
        (-1, "which no authstore writes"),
        (VERSION + 1, "newer authstore"),
    ] {
        let dir = fixture_copy();
        let path = dir.path().join("authstore.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", version)
            .unwrap();
        let config = authstore::Config {
            database: path,
            ..authstore::Config::default()
        };
        let err = actix_web::rt::System::new()
            .block_on(authstore::open_store(&config, false))
            .err()
            .expect("refused");
        assert!(err.to_string().contains(says), "{version}: {err}");
    }
}

#[test]
fn two_servers_starting_on_a_version_1_database_migrate_it_once() {
    let dir = fixture_copy();
    std::fs::write(
        dir.path().join("authstore.db.secret"),
        expected()["secret"].as_str().unwrap(),
    )
    .unwrap();
    let path = dir.path().to_owned();
    let servers: Vec<_> = (0..2)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || serve_shared(&path))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let migrated = servers
        .iter()
        .filter(|s| s.log.iter().any(|l| l.contains("migrated to version 2")))
        .count();
    assert_eq!(
        migrated,
        1,
        "{:?}",
        servers.iter().map(|s| &s.log).collect::<Vec<_>>()
    );
    for server in servers {
        assert!(server.terminate().success());
    }
}
