//! The operator's tools: an online backup that holds every acknowledged
//! write, and a check that says whether a database is sound.

use crate::common;

use common::process::{authstore, output, run, serve};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn check(
    dir: &std::path::Path,
    database: &std::path::Path,
    kek: &std::path::Path,
) -> (bool, Value) {
    let mut command = authstore(dir);
    command
        .args(["check", "--json", "--database"])
        .arg(database)
        .env("AUTHSTORE_KEY_ENCRYPTION_KEY_FILE", kek);
    let out = output(command);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.success(), report)
}

#[test]
fn a_backup_under_write_load_holds_every_acknowledged_row_and_passes_check() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[]);
    let secret = std::fs::read_to_string(dir.path().join("authstore.db.secret")).unwrap();
    let secret = secret.trim().to_owned();
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (url, secret) = (server.url("/api/adapter/createUser"), secret.clone());
            let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) && n < 5_000 {
                    let id = format!("user-{w}-{n}");
                    let answer = ureq::post(&url)
                        .timeout(Duration::from_secs(10))
                        .set("Authorization", &format!("Bearer {secret}"))
                        .send_string(&json!({ "user": { "id": id } }).to_string());
                    if answer.is_ok() {
                        acknowledged.lock().unwrap().push(id);
                    }
                    n += 1;
                }
            })
        })
        .collect();
    // Back up once the load is under way.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while acknowledged.lock().unwrap().len() < 100 {
        assert!(std::time::Instant::now() < deadline, "the load runs");
        std::thread::sleep(Duration::from_millis(10));
    }
    let before: Vec<String> = acknowledged.lock().unwrap().clone();
    let copy = dir.path().join("backup.db");
    let (ok, out, err) = run(dir.path(), &["backup", "backup.db"]);
    stop.store(true, Ordering::Relaxed);
    writers.into_iter().for_each(|w| w.join().unwrap());
    assert!(ok, "{out}{err}");
    assert!(out.contains("integrity ok"), "{out}");
    assert_eq!(
        std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let missing: Vec<&String> = before
        .iter()
        .filter(|id| {
            conn.query_row("SELECT count(*) FROM users WHERE id = ?1", [id], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
                == 0
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged rows missing",
        missing.len()
    );
    drop(conn);
    let (healthy, report) = check(dir.path(), &copy, &dir.path().join("authstore.db.kek"));
    assert!(healthy, "{report}");

    let (ok, _, err) = run(dir.path(), &["backup", "backup.db"]);
    assert!(!ok && err.contains("already exists"), "{err}");
    server.terminate();
}

#[test]
fn check_says_what_is_wrong_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    assert!(serve(dir.path(), &[]).terminate().success());
    let db = dir.path().join("authstore.db");
    let kek = dir.path().join("authstore.db.kek");
    let (healthy, report) = check(dir.path(), &db, &kek);
    assert!(healthy, "{report}");
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "integrity",
            "foreign keys",
            "schema",
            "key ring",
            "file modes"
        ]
    );

    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (healthy, report) = check(dir.path(), &db, &kek);
    assert!(!healthy);
    assert!(report.to_string().contains("chmod 600"), "{report}");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();

    // No current key: every key retired by hand.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE signing_keys SET retires_at = 1, unpublish_at = 1",
            [],
        )
        .unwrap();
    let (healthy, report) = check(dir.path(), &db, &kek);
    assert!(!healthy, "{report}");
    let (ok, out, _) = run(dir.path(), &["check"]);
    assert!(!ok);
    assert!(out.contains("FAIL  key ring"), "{out}");
}

#[test]
fn restore_is_refused_beside_a_server_and_puts_the_backup_back_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[]);
    let secret = std::fs::read_to_string(dir.path().join("authstore.db.secret")).unwrap();
    let create = |id: &str| {
        ureq::post(&server.url("/api/adapter/createUser"))
            .set("Authorization", &format!("Bearer {}", secret.trim()))
            .send_string(&json!({ "user": { "id": id } }).to_string())
            .unwrap();
    };
    create("before-backup");
    let (ok, _, err) = run(dir.path(), &["backup", "backup.db"]);
    assert!(ok, "{err}");
    create("after-backup");

    let (ok, _, err) = run(dir.path(), &["restore", "backup.db"]);
    assert!(!ok, "restore beside a running server");
    assert!(err.contains("stop it first"), "{err}");
    assert!(server.terminate().success());

    std::fs::write(dir.path().join("garbage.db"), b"not a database at all").unwrap();
    let (ok, _, err) = run(dir.path(), &["restore", "garbage.db"]);
    assert!(
        !ok && err.contains("not a usable authstore database"),
        "{err}"
    );

    let (ok, out, err) = run(dir.path(), &["restore", "backup.db"]);
    assert!(ok, "{out}{err}");
    let conn = rusqlite::Connection::open(dir.path().join("authstore.db")).unwrap();
    let ids: Vec<String> = conn
        .prepare("SELECT id FROM users ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ids, ["before-backup"]);
    drop(conn);
    let server = serve(dir.path(), &[]);
    assert!(server.terminate().success(), "the restored database serves");
}

#[test]
fn a_backup_is_a_new_private_file_and_never_goes_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    assert!(serve(dir.path(), &[]).terminate().success());
    let elsewhere = tempfile::tempdir().unwrap();
    let stolen = elsewhere.path().join("stolen.db");
    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };

    // A dangling link where the backup should go.
    let link = dir.path().join("backup.db");
    std::os::unix::fs::symlink(&stolen, &link).unwrap();
    let before = listing();
    let (ok, out, err) = run(dir.path(), &["backup", "backup.db"]);
    assert!(!ok, "{out}");
    assert!(err.contains("is a symlink"), "{err}");
    assert!(!stolen.exists(), "the copy went through the link");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "a failed backup removed what it had not made"
    );
    assert_eq!(listing(), before, "nothing staged is left behind");

    // A link to an existing file: refused, the file untouched.
    std::fs::write(&stolen, b"keep me").unwrap();
    let (ok, _, err) = run(dir.path(), &["backup", "backup.db"]);
    assert!(!ok && err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&stolen).unwrap(), b"keep me");

    // Whatever the umask, the copy is 0600 (it is made so before its first byte).
    let mut command = common::process::shell(dir.path(), r#"umask 000; exec "$0" backup fresh.db"#);
    command.env_remove("AUTHSTORE_DATABASE");
    let out = output(command);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copy = dir.path().join("fresh.db");
    assert_eq!(
        std::fs::symlink_metadata(&copy)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let users: i64 = rusqlite::Connection::open(&copy)
        .unwrap()
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 0);
}

#[test]
fn a_restored_database_is_private_whatever_the_backups_mode() {
    let dir = tempfile::tempdir().unwrap();
    assert!(serve(dir.path(), &[]).terminate().success());
    let (ok, _, err) = run(dir.path(), &["backup", "backup.db"]);
    assert!(ok, "{err}");
    let backup = dir.path().join("backup.db");
    std::fs::set_permissions(&backup, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, out, err) = run(dir.path(), &["restore", "backup.db"]);
    assert!(ok, "{out}{err}");
    let mode = std::fs::metadata(dir.path().join("authstore.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
