//! Litestream, the replicator self-hosters protect SQLite with, against a
//! running server under a createSession load; then a restore that must hold
//! every acknowledged write. Runs when `TEST_LITESTREAM` names the litestream
//! binary (`scripts/test-all` installs v0.3.13 from npm, `tests/litestream/`).

use crate::common::process::{authstore, output, secret_in, Server};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the load runs while Litestream replicates.
const LOAD: Duration = Duration::from_secs(60);
/// New sessions a second, per server: a steady write load (the WAL grows by
/// megabytes a second) that leaves the other tests running beside this one
/// their share of the two cores.
const RATE: u32 = 250;
/// How long a restore may take to include the last acknowledged write
/// (Litestream syncs every second).
const CATCH_UP: Duration = Duration::from_secs(60);
/// How long Litestream may take to start replicating, or to stop.
const LITESTREAM_DEADLINE: Duration = Duration::from_secs(30);

/// What one run measured.
struct Replicated {
    sessions: usize,
    snapshots: usize,
    generations: usize,
}

#[test]
fn litestream_replicates_a_loaded_server_and_restores_every_acknowledged_write() {
    let Some(litestream) = std::env::var_os("TEST_LITESTREAM").map(PathBuf::from) else {
        eprintln!(
            "skipped: TEST_LITESTREAM does not name a litestream binary (scripts/test-all sets it)"
        );
        return;
    };
    // Side by side in one run, so the snapshot counts compare: the default
    // settings, and authstore leaving checkpoints to Litestream.
    let runs = [
        ("the default settings", None),
        ("checkpoints = \"litestream\"", Some("litestream")),
    ];
    let handles: Vec<_> = runs
        .iter()
        .map(|&(_, checkpoints)| {
            let litestream = litestream.clone();
            std::thread::spawn(move || replicate_under_load(&litestream, checkpoints))
        })
        .collect();
    for ((name, _), handle) in runs.iter().zip(handles) {
        let run = handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        println!(
            "litestream with {name}: {} sessions acknowledged in {} s, all restored; \
             {} snapshots in {} generations",
            run.sessions,
            LOAD.as_secs(),
            run.snapshots,
            run.generations
        );
    }
}

fn replicate_under_load(litestream: &Path, checkpoints: Option<&str>) -> Replicated {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("authstore.db");
    let mut command = authstore(dir.path());
    command.args(["serve", "--port", "0"]);
    if let Some(mode) = checkpoints {
        command.env("AUTHSTORE_SQLITE_CHECKPOINTS", mode);
    }
    let server = Server::start(command);
    let secret = secret_in(dir.path());
    let user = server.post(
        &secret,
        "/api/adapter/createUser",
        &json!({ "user": { "email": "replicated@example.com" } }),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let replica = dir.path().join("replica");
    let config = dir.path().join("litestream.yml");
    std::fs::write(
        &config,
        format!(
            "dbs:\n  - path: {}\n    replicas:\n      - type: file\n        path: {}\n        sync-interval: 1s\n",
            database.display(),
            replica.display()
        ),
    )
    .unwrap();
    let mut replicating = Litestream::replicate(litestream, &config, dir.path());
    let deadline = Instant::now() + LITESTREAM_DEADLINE;
    while !replica.join("generations").exists() {
        assert!(
            Instant::now() < deadline,
            "litestream did not start replicating: {}",
            replicating.log()
        );
        assert!(
            replicating.running(),
            "litestream stopped: {}",
            replicating.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The load: createSession at RATE a second; only what the server
    // acknowledged is expected back.
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let mut acknowledged = Vec::new();
    let (until, interval) = (Instant::now() + LOAD, Duration::from_secs(1) / RATE);
    let mut next = Instant::now();
    while Instant::now() < until {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += interval;
        let token = uuid::Uuid::new_v4().to_string();
        let body = json!({ "session": {
            "sessionToken": token, "userId": user, "expires": "2099-01-01T00:00:00.000Z" } });
        let answer = agent
            .post(&server.url("/api/adapter/createSession"))
            .set("Authorization", &format!("Bearer {secret}"))
            .send_string(&body.to_string());
        if answer.is_ok_and(|r| r.status() == 200) {
            acknowledged.push(token);
        }
    }
    assert!(
        replicating.running(),
        "litestream stopped under the load: {}",
        replicating.log()
    );
    assert!(
        acknowledged.len() > 1000,
        "only {} writes acknowledged",
        acknowledged.len()
    );

    // Restored until the last acknowledged write is in (replication is
    // asynchronous: a second behind), within a deadline.
    let restored = dir.path().join("restored.db");
    let last = acknowledged.last().unwrap().clone();
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let _ = std::fs::remove_file(&restored);
        let mut restore = litestream_command(litestream, &config, dir.path());
        restore.args([
            "restore",
            "-o",
            restored.to_str().unwrap(),
            database.to_str().unwrap(),
        ]);
        let out = output(restore);
        assert!(
            out.status.success(),
            "litestream restore: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if missing(&restored, std::slice::from_ref(&last)) == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never caught up with the last acknowledged write"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    replicating.stop();
    let (snapshots, generations) = count_snapshots(&replica);

    // Every acknowledged write, in a file that passes its integrity check.
    let conn = rusqlite::Connection::open(&restored).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    drop(conn);
    assert_eq!(
        missing(&restored, &acknowledged),
        0,
        "acknowledged writes missing from the restored file"
    );
    drop(server);

    // The restored file opens with the key-encryption key (kept apart from
    // the replica) and serves the adapter.
    let kek = dir.path().join("authstore.db.kek");
    let secret_file = dir.path().join("authstore.db.secret");
    let restored_env = |command: &mut Command| {
        command
            .env("AUTHSTORE_DATABASE", &restored)
            .env("AUTHSTORE_KEY_ENCRYPTION_KEY_FILE", &kek)
            .env("AUTHSTORE_SECRET_FILE", &secret_file);
    };
    let mut check = authstore(dir.path());
    restored_env(&mut check);
    check.arg("check");
    let out = output(check);
    assert!(
        out.status.success(),
        "check of the restored file: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut serve = authstore(dir.path());
    restored_env(&mut serve);
    serve.args(["serve", "--port", "0"]);
    let restored_server = Server::start(serve);
    for token in [&acknowledged[0], &last] {
        let found: Value = restored_server.post(
            &secret,
            "/api/adapter/getSessionAndUser",
            &json!({ "sessionToken": token }),
        );
        assert_eq!(found["user"]["id"], user.as_str(), "{found}");
    }
    assert_eq!(restored_server.jwks()["keys"].as_array().unwrap().len(), 1);
    Replicated {
        sessions: acknowledged.len(),
        snapshots,
        generations,
    }
}

/// How many of `tokens` have no session in the SQLite file at `path`.
fn missing(path: &Path, tokens: &[String]) -> usize {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut found = conn
        .prepare("SELECT count(*) FROM sessions WHERE token_hash = ?1")
        .unwrap();
    tokens
        .iter()
        .filter(|token| {
            let digest = openssl::sha::sha256(token.as_bytes());
            found
                .query_row([&digest[..]], |r| r.get::<_, i64>(0))
                .unwrap()
                == 0
        })
        .count()
}

/// Snapshots and generations in a file replica.
fn count_snapshots(replica: &Path) -> (usize, usize) {
    let mut snapshots = 0;
    let mut generations = 0;
    for generation in std::fs::read_dir(replica.join("generations")).unwrap() {
        generations += 1;
        if let Ok(files) = std::fs::read_dir(generation.unwrap().path().join("snapshots")) {
            snapshots += files.count();
        }
    }
    (snapshots, generations)
}

fn litestream_command(litestream: &Path, config: &Path, dir: &Path) -> Command {
    let mut command = Command::new(litestream);
    command.current_dir(dir);
    command.env("LITESTREAM_CONFIG", config);
    command
}

/// `litestream replicate`, its log in a file, stopped with SIGTERM.
struct Litestream {
    child: Option<Child>,
    log: PathBuf,
}

impl Litestream {
    fn replicate(litestream: &Path, config: &Path, dir: &Path) -> Litestream {
        let log = dir.join("litestream.log");
        let child = litestream_command(litestream, config, dir)
            .args(["replicate", "-config", config.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .spawn()
            .expect("litestream runs");
        Litestream {
            child: Some(child),
            log,
        }
    }

    fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + LITESTREAM_DEADLINE;
        while matches!(child.try_wait(), Ok(None)) {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.wait();
    }
}

impl Drop for Litestream {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
