//! What a copy of the database gives away: nothing. Files are 0600, signing
//! keys and OAuth tokens are sealed under the key-encryption key (KEK), a
//! retired key keeps only its public half, and a wrong or missing KEK stops
//! the start.

use crate::common;

use authstore::clock::ManualClock;
use authstore::issuer::keys::{KeyMaterial, Rotation};
use authstore::kek::Kek;
use authstore::secret::Secret;
use authstore::timestamp::Timestamp;
use common::process::{authstore, serve};
use common::{test_config, TestApp};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

const KEY_PEM: &[u8] = include_bytes!("../fixtures/v1-imported-key.pem");
/// DER of a PKCS#8 RSA private key from its version field on: `INTEGER 0`,
/// then the rsaEncryption algorithm identifier, then the OCTET STRING.
/// (A public key's SubjectPublicKeyInfo has the identifier, not the version.)
const PKCS8_RSA_MARKER: &[u8] = &[
    0x02, 0x01, 0x00, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    0x05, 0x00, 0x04,
];

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every byte of the database and its WAL, as a copy of them would hold.
fn database_bytes(db: &Path) -> Vec<(String, Vec<u8>)> {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| {
            let path = format!("{}{suffix}", db.display());
            std::fs::read(&path).ok().map(|bytes| (path, bytes))
        })
        .collect()
}

/// What a copy of the database holds: the SQLite file and its WAL, or
/// every PostgreSQL row as text.
fn copy_of(config: &authstore::Config, dir: &tempfile::TempDir) -> Vec<(String, Vec<u8>)> {
    match config.postgres_url() {
        Some(_) => vec![(
            "the PostgreSQL tables".into(),
            common::stored_bytes(config, dir.path()),
        )],
        None => database_bytes(&config.database),
    }
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    actix_web::rt::System::new().block_on(future)
}

#[test]
fn every_file_is_0600_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    for (umask, locking) in [("022", "shared"), ("000", "shared"), ("000", "exclusive")] {
        let sub = dir.path().join(format!("umask-{umask}-{locking}"));
        std::fs::create_dir(&sub).unwrap();
        // Run through sh so the umask applies to the server itself.
        let server = common::process::Server::start(common::process::shell(
            &sub,
            &format!(
                "umask {umask} && AUTHSTORE_SQLITE_LOCKING={locking} exec \"$0\" serve --port 0"
            ),
        ));
        // Sharing the file, SQLite keeps the WAL index in `-shm` for other
        // processes; holding it alone, in its own memory, with a control
        // socket for commands instead.
        let (present, absent) = match locking {
            "shared" => ("authstore.db-shm", "authstore.db.sock"),
            _ => ("authstore.db.sock", "authstore.db-shm"),
        };
        for name in [
            "authstore.db",
            "authstore.db-wal",
            "authstore.db.secret",
            "authstore.db.kek",
            present,
        ] {
            let path = sub.join(name);
            assert!(path.exists(), "{name} exists while the server runs");
            assert_eq!(mode(&path), 0o600, "{name} under umask {umask}, {locking}");
        }
        assert!(!sub.join(absent).exists(), "{absent} with {locking}");
        assert!(server.terminate().success());
    }
}

#[test]
fn a_database_readable_by_others_gets_a_warning_naming_chmod() {
    let dir = tempfile::tempdir().unwrap();
    assert!(serve(dir.path(), &[]).terminate().success());
    let db = dir.path().join("authstore.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = serve(dir.path(), &[]);
    let log = server.log.join("\n");
    let absolute = std::fs::canonicalize(&db).unwrap();
    assert!(
        log.contains(&format!("chmod 600 {}", absolute.display())),
        "{log}"
    );
    server.terminate();
}

#[test]
fn a_copy_of_the_database_holds_no_private_key_and_no_oauth_token() {
    let app = TestApp::spawn();
    let material = KeyMaterial::from_pem(KEY_PEM).unwrap();
    block_on(app.issuer.import(material)).unwrap();
    let user = app.ok("createUser", json!({ "user": common::user_fixture() }));
    let tokens = [
        "plaintext-refresh-token-4b1d",
        "plaintext-access-token-9c2e",
        "plaintext-id-token-77aa",
    ];
    app.ok(
        "linkAccount",
        json!({ "account": {
            "userId": user["id"], "type": "oauth", "provider": "github",
            "providerAccountId": "42", "refresh_token": tokens[0],
            "access_token": tokens[1], "id_token": tokens[2],
        }}),
    );
    // The tokens come back as they went in.
    let account = app.ok(
        "getAccount",
        json!({ "provider": "github", "providerAccountId": "42" }),
    );
    assert_eq!(account["refresh_token"], tokens[0]);
    assert_eq!(account["access_token"], tokens[1]);
    assert_eq!(account["id_token"], tokens[2]);

    // A copy taken while the server runs (database and WAL)...
    let private = openssl::pkey::PKey::private_key_from_pem(KEY_PEM).unwrap();
    let der = private.private_key_to_pkcs8().unwrap();
    let rsa = private.rsa().unwrap();
    let (d, p, q) = (
        rsa.d().to_vec(),
        rsa.p().unwrap().to_vec(),
        rsa.q().unwrap().to_vec(),
    );
    let live = copy_of(&app.config, &app.dir);
    let (dir, config) = app.stop();
    // ...and the files left after a clean stop.
    let stopped = copy_of(&config, &dir);
    assert!(!live.is_empty() && !stopped.is_empty());
    // PostgreSQL's copy is its rows as text: binary columns appear in hex.
    let hex = |bytes: &[u8]| -> Vec<u8> {
        bytes
            .iter()
            .flat_map(|b| format!("{b:02x}").into_bytes())
            .collect()
    };
    for (path, bytes) in live.iter().chain(&stopped) {
        for marker in [PKCS8_RSA_MARKER.to_vec(), hex(PKCS8_RSA_MARKER)] {
            assert!(!contains(bytes, &marker), "{path} holds a PKCS#8 key");
        }
        for (what, secret) in [("the key", &der), ("d", &d), ("p", &p), ("q", &q)] {
            assert!(
                !contains(bytes, secret) && !contains(bytes, &hex(secret)),
                "{path} holds {what} of the private key"
            );
        }
        for token in tokens {
            assert!(!contains(bytes, token.as_bytes()), "{path} holds {token}");
        }
    }
}

/// Two keys with their private halves, in a stopped database.
fn two_sealed_keys() -> (Arc<tempfile::TempDir>, authstore::Config) {
    let app = TestApp::spawn();
    block_on(app.issuer.rotate(Rotation::Scheduled)).unwrap();
    app.stop()
}

#[test]
fn a_wrong_or_missing_kek_refuses_to_start_and_says_what_it_expects() {
    let (dir, config) = two_sealed_keys();
    let default_kek = config.default_kek_file();
    assert!(default_kek.exists(), "zero configuration generated the KEK");

    let mut wrong = config.clone();
    wrong.key_encryption_key = Some(Secret::new("not-the-key-that-sealed-it").unwrap());
    let err = block_on(authstore::open_store(&wrong, false))
        .err()
        .expect("refused");
    let message = err.to_string();
    assert!(
        message.contains("AUTHSTORE_KEY_ENCRYPTION_KEY"),
        "{message}"
    );
    assert!(message.contains("is not the one that sealed"), "{message}");

    let moved = dir.path().join("elsewhere.kek");
    std::fs::rename(&default_kek, &moved).unwrap();
    let err = block_on(authstore::open_store(&config, true))
        .err()
        .expect("refused");
    let message = err.to_string();
    assert!(
        message.contains(&default_kek.display().to_string()),
        "{message}"
    );
    assert!(message.contains("key_encryption_key_file"), "{message}");
    assert!(
        !default_kek.exists(),
        "no new KEK is generated over sealed keys"
    );

    let mut pointed = config.clone();
    pointed.key_encryption_key_file = Some(moved);
    let store = block_on(authstore::open_store(&pointed, false)).unwrap();
    let set = block_on(store.signing_keys()).unwrap();
    assert_eq!(set.keys.len(), 2);
    assert!(set.keys.iter().all(|k| k.private_key_der.is_some()));
}

#[test]
fn a_sealed_key_moved_to_another_row_does_not_open() {
    let (dir, config) = two_sealed_keys();
    let db = dir.path().join("authstore.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let rows: Vec<(String, Vec<u8>)> = conn
            .prepare("SELECT kid, private_key FROM signing_keys")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows.len(), 2);
        for (i, (kid, _)) in rows.iter().enumerate() {
            conn.execute(
                "UPDATE signing_keys SET private_key = ?2 WHERE kid = ?1",
                rusqlite::params![kid, rows[1 - i].1],
            )
            .unwrap();
        }
    }
    let store = block_on(authstore::open_store(&config, false)).unwrap();
    let err = block_on(store.signing_keys()).unwrap_err();
    assert!(format!("{:?}", err).contains("does not open"), "{err:?}");
}

#[test]
fn a_retired_key_keeps_only_its_public_half() {
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let app = TestApp::start(dir.clone(), test_config(&dir), clock.clone());
    let old = app.issuer.describe_keys();
    let old = block_on(old).unwrap()[0].0.kid.clone();
    block_on(app.issuer.rotate(Rotation::Scheduled)).unwrap();
    let private_of = |kid: &str| -> Option<()> {
        let sql = format!(
            "SELECT count(*) FROM signing_keys WHERE kid = '{kid}' AND private_key IS NOT NULL"
        );
        (app.count(&sql) == 1).then_some(())
    };
    assert!(
        private_of(&old).is_some(),
        "it signs until the new key takes over"
    );
    clock.advance_secs(app.config.key_lead_time_secs);
    block_on(app.issuer.refresh()).unwrap();
    assert!(private_of(&old).is_none(), "its private half is erased");
    let jwks: serde_json::Value = app.get("/.well-known/jwks.json").1.into_json().unwrap();
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == old.as_str()),
        "it stays published until its tokens expire: {jwks}"
    );
}

#[test]
fn rewrap_moves_every_secret_to_a_new_kek_in_one_step() {
    let (dir, config) = two_sealed_keys();
    {
        let app = TestApp::start(
            dir.clone(),
            config.clone(),
            Arc::new(authstore::clock::SystemClock),
        );
        let user = app.ok("createUser", json!({ "user": common::user_fixture() }));
        app.ok(
            "linkAccount",
            json!({ "account": {
                "userId": user["id"], "type": "oauth", "provider": "github",
                "providerAccountId": "7", "access_token": "tok-before-rewrap",
            }}),
        );
    }
    let old_file = dir.path().join("old.kek");
    {
        // Refused while a server uses the database.
        let running = TestApp::start(
            dir.clone(),
            config.clone(),
            Arc::new(authstore::clock::SystemClock),
        );
        let mut command = authstore(dir.path());
        command
            .args(["keys", "rewrap", "--old-key-file"])
            .arg(config.default_kek_file())
            .arg("--database")
            .arg(&config.database)
            .env(
                "AUTHSTORE_KEY_ENCRYPTION_KEY",
                "a-brand-new-key-encryption-key",
            );
        let out = common::process::output(command);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("stop it first"));
        drop(running);
    }
    std::fs::rename(config.default_kek_file(), &old_file).unwrap();
    let mut command = authstore(dir.path());
    command
        .args(["keys", "rewrap", "--old-key-file"])
        .arg(&old_file)
        .arg("--database")
        .arg(&config.database)
        .env("AUTHSTORE_SECRET", common::SECRET);
    let out = common::process::output(command);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("re-sealed 3 secrets"), "{said}");
    assert!(
        config.default_kek_file().exists(),
        "the new KEK was generated"
    );

    // The old KEK no longer opens it; the new one (now <db>.kek) does.
    let mut with_old = config.clone();
    with_old.key_encryption_key_file = Some(old_file);
    assert!(block_on(authstore::open_store(&with_old, false)).is_err());
    let app = TestApp::start(dir.clone(), config, Arc::new(authstore::clock::SystemClock));
    let account = app.ok(
        "getAccount",
        json!({ "provider": "github", "providerAccountId": "7" }),
    );
    assert_eq!(account["access_token"], "tok-before-rewrap");
    let recorded: String = rusqlite::Connection::open(app.db_path())
        .unwrap()
        .query_row("SELECT kek_id FROM meta", [], |r| r.get(0))
        .unwrap();
    let kek = Kek::for_record(
        &authstore::secret::read_file(&app.config.default_kek_file()).unwrap(),
        &recorded,
    )
    .unwrap();
    assert_eq!(kek.id(), recorded, "the new KEK sealed it");
    let kek_ids: Vec<Option<String>> = rusqlite::Connection::open(app.db_path())
        .unwrap()
        .prepare("SELECT kek_id FROM signing_keys")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        kek_ids.iter().all(|id| id.as_deref() == Some(kek.id())),
        "{kek_ids:?}"
    );
}

#[test]
fn a_weak_key_encryption_key_is_refused_for_a_new_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir);
    // 16 characters: the key the review found in 3 guesses.
    config.key_encryption_key = Some(Secret::new("0123456789abcdef").unwrap());
    let err = match authstore::testing::TestServer::start_on(
        config.clone(),
        Arc::new(authstore::clock::SystemClock),
    ) {
        Ok(_) => panic!("a new database was sealed under a 16-character key"),
        Err(e) => e,
    };
    assert!(
        err.contains("too weak") && err.contains("256 bits"),
        "{err}"
    );
    assert!(!err.contains("0123456789abcdef"), "{err}");
    // What `authstore secret` prints is accepted.
    config.key_encryption_key = Some(Secret::generate().unwrap());
    assert!(authstore::testing::TestServer::start_on(
        config,
        Arc::new(authstore::clock::SystemClock)
    )
    .is_ok());
}

#[test]
fn the_key_encryption_key_id_cannot_test_guesses() {
    if common::on_postgres() {
        return;
    }
    let app = TestApp::spawn();
    let (_dir, config) = app.stop();
    let recorded: String = rusqlite::Connection::open(&config.database)
        .unwrap()
        .query_row("SELECT kek_id FROM meta", [], |r| r.get(0))
        .unwrap();
    // Salted and stretched: the id is not the key's plain hash, and the same
    // key gives another id on another database.
    assert!(recorded.starts_with("v2."), "{recorded}");
    let input = authstore::secret::read_file(&config.default_kek_file()).unwrap();
    let elsewhere = Kek::new(&input).unwrap();
    assert_ne!(elsewhere.id(), recorded);
    // A guess costs one scrypt: measured here, not asserted on time.
    let started = std::time::Instant::now();
    let guess =
        Kek::for_record(&Secret::new("a-guess-at-the-key-0000").unwrap(), &recorded).unwrap();
    assert_ne!(guess.id(), recorded);
    eprintln!("one guess took {:?}", started.elapsed());
}

#[test]
fn a_database_sealed_under_a_first_format_key_id_opens_with_a_warning_naming_rewrap() {
    if common::on_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A database made and sealed the old way: a 20-character key, its id a
    // plain hash (re-sealed here through the store's own rewrap).
    let weak = Secret::new("old-weak-kek-0123456").unwrap();
    let kek_file = dir.path().join("old.kek");
    std::fs::write(&kek_file, weak.expose()).unwrap();
    {
        let app = TestApp::spawn_with(|_| {});
        let (_app_dir, mut config) = app.stop();
        let input = authstore::secret::read_file(&config.default_kek_file()).unwrap();
        std::fs::copy(&config.database, dir.path().join("authstore.db")).unwrap();
        config.database = dir.path().join("authstore.db");
        let recorded: String = rusqlite::Connection::open(&config.database)
            .unwrap()
            .query_row("SELECT kek_id FROM meta", [], |r| r.get(0))
            .unwrap();
        let current = Kek::for_record(&input, &recorded).unwrap();
        let store = authstore::open_sqlite(&config, false, Arc::new(current)).unwrap();
        let first_format = Kek::for_record(&weak, "a first-format id").unwrap();
        assert_eq!(first_format.id().len(), 16);
        actix_web::rt::System::new()
            .block_on(store.rewrap(Arc::new(first_format)))
            .unwrap();
    }
    // The server starts on it, and says why and how to move to a new key.
    let server = common::process::Server::start({
        let mut command = authstore(dir.path());
        command
            .args(["serve", "--port", "0", "--database", "authstore.db"])
            .env("AUTHSTORE_KEY_ENCRYPTION_KEY_FILE", &kek_file)
            .env("RUST_LOG", "info");
        command
    });
    let warning = server
        .log
        .iter()
        .find(|line| line.contains("keys rewrap"))
        .unwrap_or_else(|| panic!("no warning naming keys rewrap: {:?}", server.log));
    assert!(warning.contains("shorter than 256 bits"), "{warning}");
    assert!(!warning.contains(weak.expose()), "{warning}");
    assert_eq!(server.jwks()["keys"].as_array().unwrap().len(), 1);
    assert!(server.terminate().success());
}

/// Runs `sql` on the database of `config` directly (either backend).
fn execute(config: &authstore::Config, sql: &str) {
    match config.postgres_url() {
        Some(url) => common::postgres_client(url).batch_execute(sql).unwrap(),
        None => rusqlite::Connection::open(&config.database)
            .unwrap()
            .execute_batch(sql)
            .unwrap(),
    }
}

/// A key row of someone else's public key, as anyone who can write the file
/// could insert it: signing since a minute ago, no seal.
fn planted_key_row() -> (String, String) {
    let material = KeyMaterial::from_pem(KEY_PEM).unwrap();
    let record = material
        .record(Timestamp::now().plus_secs(0), Timestamp::now())
        .unwrap();
    let hex: String = record
        .public_key_der
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let since = Timestamp::now().millis() - 60_000;
    let literal = |postgres: bool| match postgres {
        true => format!("'\\x{hex}'::bytea"),
        false => format!("X'{hex}'"),
    };
    let sql = |postgres: bool| {
        format!(
            "INSERT INTO signing_keys (kid, algorithm, public_key, created_at, signs_from) \
             VALUES ('{}', 'RS256', {}, {since}, {since}); \
             UPDATE meta SET key_set_version = key_set_version + 1;",
            record.kid,
            literal(postgres)
        )
    };
    (record.kid.clone(), sql(common::on_postgres()))
}

#[test]
fn a_tampered_key_row_is_never_published_and_check_names_it() {
    let app = TestApp::spawn();
    let (dir, config) = app.stop();
    let (kid, sql) = planted_key_row();
    execute(&config, &sql);
    let app = TestApp::start(dir, config, Arc::new(authstore::clock::SystemClock));
    let (status, jwks) = app.get("/.well-known/jwks.json");
    assert_eq!(status, 200);
    let jwks: serde_json::Value = jwks.into_json().unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        !kids.contains(&kid.as_str()),
        "the planted key is published: {kids:?}"
    );
    assert_eq!(kids.len(), 1, "{kids:?}");
    // Tokens are still signed by the real key.
    let user = app.ok("createUser", json!({ "user": common::user_fixture() }));
    app.ok(
        "createSession",
        json!({ "session": { "sessionToken": "tampered-s", "userId": user["id"],
                             "expires": "2099-01-01T00:00:00.000Z" } }),
    );
    app.sid_of("tampered-s");
    // `check` (SQLite files) fails and names the row.
    if !common::on_postgres() {
        let (ok, out, _) = app.cli(&["check"]);
        assert!(!ok, "{out}");
        assert!(
            out.contains("fail their seal") && out.contains(&kid),
            "{out}"
        );
    }
}

#[test]
fn restore_refuses_a_backup_with_a_tampered_key_row() {
    if common::on_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    assert!(serve(dir.path(), &[]).terminate().success());
    let (ok, _, err) = common::process::run(dir.path(), &["backup", "backup.db"]);
    assert!(ok, "{err}");
    let (kid, sql) = planted_key_row();
    rusqlite::Connection::open(dir.path().join("backup.db"))
        .unwrap()
        .execute_batch(&sql)
        .unwrap();
    let before = std::fs::read(dir.path().join("authstore.db")).unwrap();
    let (ok, out, err) = common::process::run(dir.path(), &["restore", "backup.db"]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("fail their seal") && err.contains(&kid),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("authstore.db")).unwrap(),
        before,
        "the database was replaced"
    );
    assert!(!dir.path().join("authstore.db.restoring").exists());
}

#[test]
fn a_tampered_account_row_re_pointed_at_another_user_opens_nothing() {
    let app = TestApp::spawn();
    let ada = app.ok(
        "createUser",
        json!({ "user": { "email": "ada@example.com" } }),
    );
    let mallory = app.ok(
        "createUser",
        json!({ "user": { "email": "mallory@example.com" } }),
    );
    app.ok(
        "linkAccount",
        json!({ "account": { "userId": ada["id"], "type": "oauth", "provider": "github",
                             "providerAccountId": "7", "access_token": "ada-access-token-5e1f" } }),
    );
    execute(
        &app.config,
        &format!(
            "UPDATE accounts SET user_id = '{}' WHERE provider_account_id = '7'",
            mallory["id"].as_str().unwrap()
        ),
    );
    let (status, body) = app.call(
        "getAccount",
        json!({ "provider": "github", "providerAccountId": "7" }),
    );
    assert_ne!(status, 200, "{body}");
    assert!(
        !body.to_string().contains("ada-access-token-5e1f"),
        "{body}"
    );
}

#[test]
fn session_state_and_extra_account_fields_are_sealed_at_rest() {
    let app = TestApp::spawn();
    let user = app.ok("createUser", json!({ "user": common::user_fixture() }));
    app.ok(
        "linkAccount",
        json!({ "account": { "userId": user["id"], "type": "oauth", "provider": "twitter",
                             "providerAccountId": "9", "session_state": "state-plain-81c3",
                             "oauth_token_secret": "oauth1-secret-27d9" } }),
    );
    let account = app.ok(
        "getAccount",
        json!({ "provider": "twitter", "providerAccountId": "9" }),
    );
    assert_eq!(account["session_state"], "state-plain-81c3");
    assert_eq!(account["oauth_token_secret"], "oauth1-secret-27d9");
    let (dir, config) = app.stop();
    let stored = common::stored_bytes(&config, dir.path());
    for secret in ["state-plain-81c3", "oauth1-secret-27d9"] {
        assert!(
            !contains(&stored, secret.as_bytes()),
            "{secret} is readable in the database"
        );
    }
}
