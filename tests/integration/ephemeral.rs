//! `serve --ephemeral`: a throwaway server for another project's tests.

use crate::common;

use common::process::{authstore, output, COMMAND_DEADLINE, START_DEADLINE};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/v1-imported-key.pem"
);

/// A started `serve --ephemeral`: its ready line, and the child (stdin open).
struct Ephemeral {
    child: Child,
    ready: Value,
    took: Duration,
}

impl Drop for Ephemeral {
    /// Closes its stdin, as its parent would, so it removes its directory
    /// (a kill would leave it in the temp dir); killed only past a deadline.
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Ephemeral {
    let dir = tempfile::tempdir().unwrap();
    let mut command = authstore(dir.path());
    command
        .args(["serve", "--ephemeral"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let started = Instant::now();
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (line_tx, line) = mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let _ = BufReader::new(stdout).read_line(&mut first);
        let _ = line_tx.send(first);
    });
    let first = line
        .recv_timeout(START_DEADLINE)
        .expect("no ready line within the start deadline");
    let took = started.elapsed();
    let ready: Value =
        serde_json::from_str(&first).unwrap_or_else(|_| panic!("not JSON: {first:?}"));
    Ephemeral { child, ready, took }
}

fn post(ready: &Value, path: &str, body: Value) -> (u16, Value) {
    let response = ureq::post(&format!("{}{path}", ready["url"].as_str().unwrap()))
        .timeout(Duration::from_secs(10))
        .set(
            "Authorization",
            &format!("Bearer {}", ready["secret"].as_str().unwrap()),
        )
        .send_string(&body.to_string());
    let response = match response {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{path}: {e}"),
    };
    (response.status(), response.into_json().unwrap())
}

/// The temp directories of the ephemeral server with this pid.
fn dirs_of(pid: u64) -> Vec<PathBuf> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("authstore-ephemeral-{pid}-")))
        })
        .collect()
}

#[test]
fn an_ephemeral_server_says_where_it_is_and_leaves_nothing_when_stdin_closes() {
    let mut server = start(&["--signing-key", KEY]);
    let ready = server.ready.clone();
    let url = ready["url"].as_str().unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{ready}");
    assert!(ready["secret"].as_str().unwrap().len() >= 32, "{ready}");
    assert_eq!(
        ready["jwks_uri"],
        format!(
            "{}/.well-known/jwks.json",
            ready["issuer"].as_str().unwrap()
        )
    );
    let pid = ready["pid"].as_u64().unwrap();
    assert_eq!(pid, u64::from(server.child.id()));
    assert_eq!(
        dirs_of(pid).len(),
        1,
        "its database lives in a temp directory of its own"
    );

    let (status, user) = post(
        &ready,
        "/api/adapter/createUser",
        json!({ "user": { "email": "e@example.com" } }),
    );
    assert_eq!(status, 200, "{user}");
    // The given key signs: its kid is the key's thumbprint.
    let pem = std::fs::read(KEY).unwrap();
    let kid = authstore::issuer::keys::KeyMaterial::from_pem(&pem)
        .unwrap()
        .jwk
        .kid;
    let jwks: Value = ureq::get(ready["jwks_uri"].as_str().unwrap())
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], kid.as_str());

    // The parent lets go: the server stops and removes its directory.
    drop(server.child.stdin.take());
    let deadline = Instant::now() + COMMAND_DEADLINE;
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running after stdin closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(dirs_of(pid).is_empty(), "its temp directory is gone");
    eprintln!("ready in {:?} with --signing-key", server.took);
}

#[test]
fn without_a_given_key_it_generates_one_and_is_ready_all_the_same() {
    let server = start(&[]);
    let jwks: Value = ureq::get(server.ready["jwks_uri"].as_str().unwrap())
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    eprintln!("ready in {:?} generating a key", server.took);
}

#[test]
fn a_seed_file_loads_through_the_adapter_methods() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.json");
    std::fs::write(
        &seed,
        json!({
            "users": [{ "id": "u1", "email": "Seeded@Example.com", "name": "Seeded" }],
            "accounts": [{ "userId": "u1", "type": "oauth", "provider": "github", "providerAccountId": 7, "access_token": "gho_x" }],
            "sessions": [{ "sessionToken": "seeded-session", "userId": "u1", "expires": "2099-01-01T00:00:00.000Z" }],
        })
        .to_string(),
    )
    .unwrap();
    let server = start(&["--signing-key", KEY, "--seed", seed.to_str().unwrap()]);
    let (_, found) = post(
        &server.ready,
        "/api/adapter/getSessionAndUser",
        json!({ "sessionToken": "seeded-session" }),
    );
    assert_eq!(
        found["user"]["email"], "seeded@example.com",
        "the adapter's rules applied"
    );
    let (_, account) = post(
        &server.ready,
        "/api/adapter/getAccount",
        json!({ "provider": "github", "providerAccountId": "7" }),
    );
    assert_eq!(account["access_token"], "gho_x");

    // A bad item names its list and place, and nothing is left behind.
    std::fs::write(&seed, json!({ "sessions": [{ "sessionToken": "s", "userId": "nobody", "expires": "2099-01-01T00:00:00.000Z" }] }).to_string()).unwrap();
    let mut command = authstore(dir.path());
    command.args([
        "serve",
        "--ephemeral",
        "--signing-key",
        KEY,
        "--seed",
        seed.to_str().unwrap(),
    ]);
    let out = output(command);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sessions[0]") && stderr.contains("userId does not name an existing user"),
        "{stderr}"
    );
}

#[test]
fn the_rust_testing_module_serves_and_removes_its_database() {
    let server = authstore::testing::TestServer::start().unwrap();
    let ready = json!({ "url": server.url(), "secret": server.secret() });
    let (status, user) = post(
        &ready,
        "/api/adapter/createUser",
        json!({ "user": { "email": "rust@example.com" } }),
    );
    assert_eq!(status, 200, "{user}");
    let dir = server.config().database.parent().unwrap().to_owned();
    assert!(dir.exists());
    drop(server);
    assert!(!dir.exists(), "its temp directory is gone");
}

#[test]
fn an_ephemeral_server_reads_no_config_file_or_environment_and_binds_to_loopback() {
    let dir = tempfile::tempdir().unwrap();
    // A production configuration where the test runs, and in its environment.
    let hook_secret = "p".repeat(40);
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "bind = \"0.0.0.0\"\nissuer = \"https://prod.example.com\"\n\
             [[webhooks]]\nurl = \"http://127.0.0.1:9/production\"\nsecret = \"{hook_secret}\"\n"
        ),
    )
    .unwrap();
    let mut command = authstore(dir.path());
    command
        .args(["serve", "--ephemeral", "--signing-key", KEY])
        .env("AUTHSTORE_ISSUER", "https://env.example.com")
        .env("AUTHSTORE_BIND", "0.0.0.0")
        .env("AUTHSTORE_SECRET", "production-secret-from-the-environment")
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (line_tx, line) = mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let _ = BufReader::new(stdout).read_line(&mut first);
        let _ = line_tx.send(first);
    });
    let first = line.recv_timeout(START_DEADLINE).expect("a ready line");
    let ready: Value = serde_json::from_str(&first).unwrap();
    let url = ready["url"].as_str().unwrap();
    assert_eq!(
        ready["issuer"], url,
        "not the file's or the environment's issuer"
    );
    assert_ne!(ready["secret"], "production-secret-from-the-environment");
    // Stopped, then its log read whole.
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut log).unwrap();
    let port = url.rsplit(':').next().unwrap();
    assert!(
        log.contains(&format!("listening on http://127.0.0.1:{port}")),
        "{log}"
    );
    assert!(
        !log.contains("0.0.0.0") && !log.contains("webhook"),
        "{log}"
    );
    assert!(!log.contains("delivering"), "{log}");

    // Asked for another address, or for a config file: refused with the reason.
    for args in [&["--bind", "0.0.0.0"][..], &["--config", "config.toml"]] {
        let mut command = authstore(dir.path());
        command.args(["serve", "--ephemeral"]).args(args);
        let out = output(command);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--ephemeral"), "{err}");
    }
}

#[test]
fn an_ephemeral_server_removes_its_directory_when_terminated() {
    let mut server = start(&["--signing-key", KEY]);
    let pid = server.ready["pid"].as_u64().unwrap();
    assert_eq!(dirs_of(pid).len(), 1);
    // SIGTERM, as the TypeScript helper sends first.
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + COMMAND_DEADLINE;
    while server.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(dirs_of(pid).is_empty(), "its temp directory is gone");
}
