//! Storage failures tell the truth: 503 `unavailable` with `Retry-After` for
//! what a client can retry, `/readyz` that notices, and a start that refuses
//! a database it cannot write.

use crate::common;

use common::{code, test_config, TestApp};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A small tmpfs mounted for one test (needs root, as CI and this machine's
/// sessions run); `None` where mounting is not allowed.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map(|out| out.status.success())
            .unwrap_or(false);
        mounted.then_some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount_read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn disk_or_skip(size: &str, test: &str) -> Option<SmallDisk> {
    let disk = SmallDisk::mount(size);
    if disk.is_none() {
        eprintln!("SKIPPED {test}: mounting a tmpfs needs root (CI runs as root)");
    }
    disk
}

fn app_on(dir: &Path) -> TestApp {
    let holder = Arc::new(tempfile::tempdir().unwrap());
    let mut config = test_config(&holder);
    config.database = dir.join("authstore.db");
    TestApp::start(holder, config, Arc::new(authstore::clock::SystemClock))
}

fn ready(app: &TestApp) -> (u16, Option<String>) {
    let (status, response) = app.get("/readyz");
    (status, response.header("Retry-After").map(str::to_owned))
}

#[test]
fn a_full_disk_answers_503_keeps_reads_and_recovers_without_a_restart() {
    let Some(disk) = disk_or_skip("4m", "disk full") else {
        return;
    };
    let app = app_on(disk.path());
    let kept = app.ok(
        "createUser",
        json!({ "user": { "email": "kept@example.com" } }),
    );
    // Ballast to free later, then fill the rest.
    let ballast: PathBuf = disk.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 1 << 20]).unwrap();
    let filler = "z".repeat(50_000);
    let mut full = None;
    for n in 0..200 {
        let (status, answer) = app.call(
            "createUser",
            json!({ "user": { "email": format!("fill{n}@example.com"), "filler": filler } }),
        );
        if status != 200 {
            full = Some((status, answer));
            break;
        }
    }
    let (status, answer) = full.expect("the disk filled up");
    assert_eq!(status, 503, "{answer}");
    assert_eq!(code(&answer), "unavailable");
    let (status, retry) = ready(&app);
    assert_eq!(status, 503, "/readyz says so while writes fail");
    assert_eq!(retry.as_deref(), Some("1"));
    // Reads still answer.
    assert_eq!(app.ok("getUser", json!({ "id": kept["id"] })), kept);

    std::fs::remove_file(&ballast).unwrap();
    let again = app.ok(
        "createUser",
        json!({ "user": { "email": "after@example.com" } }),
    );
    assert_eq!(again["email"], "after@example.com");
    assert_eq!(ready(&app).0, 200, "ready again once a write succeeded");
}

#[test]
fn a_read_only_database_is_refused_at_start() {
    let Some(disk) = disk_or_skip("8m", "read-only database") else {
        return;
    };
    let (_, config) = app_on(disk.path()).stop();
    disk.remount_read_only();
    let err = actix_web::rt::System::new()
        .block_on(authstore::open_store(&config, true))
        .err()
        .expect("a database it cannot write is refused");
    assert!(err.to_string().contains("cannot be written"), "{err}");
}

#[test]
fn readyz_fails_when_the_database_file_is_deleted_under_the_server() {
    let app = TestApp::spawn();
    assert_eq!(ready(&app).0, 200);
    std::fs::remove_file(app.db_path()).unwrap();
    let (status, retry) = ready(&app);
    assert_eq!(status, 503);
    assert_eq!(retry.as_deref(), Some("1"));
}

#[test]
fn readyz_fails_when_the_database_file_is_replaced() {
    let app = TestApp::spawn();
    let path = app.db_path();
    let copy = path.with_extension("copy");
    std::fs::copy(&path, &copy).unwrap();
    std::fs::rename(&copy, &path).unwrap();
    assert_eq!(ready(&app).0, 503);
}

#[test]
fn a_lock_held_by_another_process_is_a_503_after_one_deadline() {
    let app = TestApp::spawn();
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = Instant::now();
    let (status, answer): (u16, Value) = app.call(
        "createUser",
        json!({ "user": { "email": "late@example.com" } }),
    );
    let waited = started.elapsed();
    conn.execute_batch("ROLLBACK").unwrap();
    assert_eq!(status, 503, "{answer}");
    assert!(waited >= Duration::from_secs(5), "{waited:?}");
    assert!(
        waited < Duration::from_secs(7),
        "one deadline, not one per write: {waited:?}"
    );
    let (status, _) = app.call(
        "createUser",
        json!({ "user": { "email": "late@example.com" } }),
    );
    assert_eq!(status, 200);
}
