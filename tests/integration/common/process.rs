//! The binary as a user runs it, with a deadline on everything that waits.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a started server may take to say it listens.
pub const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long any one command may run.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// `authstore` in `dir`, with no AUTHSTORE_* or RUST_LOG from the test's
/// own environment.
pub fn authstore(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_authstore"));
    command.current_dir(dir).env_remove("RUST_LOG");
    for (name, _) in std::env::vars() {
        if name.starts_with("AUTHSTORE_") {
            command.env_remove(name);
        }
    }
    command
}

/// `sh -c SCRIPT` in `dir` with `$0` the authstore binary (`exec "$0" serve`
/// after a `umask` or `ulimit`), with the same clean environment as
/// [`authstore`].
pub fn shell(dir: &Path, script: &str) -> Command {
    let mut command = Command::new("sh");
    command.current_dir(dir).env_remove("RUST_LOG");
    for (name, _) in std::env::vars() {
        if name.starts_with("AUTHSTORE_") {
            command.env_remove(name);
        }
    }
    command
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_authstore"));
    command
}

/// Runs a command to completion, killing it past [`COMMAND_DEADLINE`].
pub fn output(mut command: Command) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the authstore binary runs");
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        if finished.recv_timeout(COMMAND_DEADLINE).is_err() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = done.send(());
    out
}

/// Runs `authstore ARGS` in `dir`: (success, stdout, stderr).
pub fn run(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let mut command = authstore(dir);
    command.args(args);
    let out = output(command);
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A running `authstore serve`; killed when dropped.
pub struct Server {
    pub child: Option<Child>,
    pub port: u16,
    /// The log up to the ready line.
    pub log: Vec<String>,
    /// The log after it, as it arrives.
    later: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `command` (an `authstore serve ...`) and waits for its ready line.
    pub fn start(mut command: Command) -> Server {
        let mut child = command
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (lines_tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        // Reads the log to the end, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + START_DEADLINE;
        let prefix = "listening on http://127.0.0.1:";
        let mut log = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    // The digits after the prefix (a JSON line goes on after them).
                    let port = line.find(prefix).and_then(|at| {
                        let rest = &line[at + prefix.len()..];
                        let end = rest
                            .find(|c: char| !c.is_ascii_digit())
                            .unwrap_or(rest.len());
                        rest[..end].parse().ok()
                    });
                    log.push(line);
                    if let Some(port) = port {
                        let later = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
                        let sink = later.clone();
                        std::thread::spawn(move || {
                            for line in lines.iter() {
                                sink.lock().unwrap().push(line);
                            }
                        });
                        return Server {
                            child: Some(child),
                            port,
                            log,
                            later,
                        };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("serve did not report a port in time: {log:?}");
                }
            }
        }
    }

    /// Waits until a log line after the ready line contains `text`.
    pub fn wait_for_log(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(line) = self.later.lock().unwrap().iter().find(|l| l.contains(text)) {
                return line.clone();
            }
            assert!(Instant::now() < deadline, "no log line with {text:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every log line after the ready line so far.
    pub fn later_log(&self) -> Vec<String> {
        self.later.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `POST path` with `Authorization: Bearer secret`; the 200 answer's JSON.
    pub fn post(&self, secret: &str, path: &str, body: &serde_json::Value) -> serde_json::Value {
        ureq::post(&self.url(path))
            .timeout(Duration::from_secs(10))
            .set("Authorization", &format!("Bearer {secret}"))
            .send_string(&body.to_string())
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
            .into_json()
            .unwrap()
    }

    /// The JWKS the server publishes now.
    pub fn jwks(&self) -> serde_json::Value {
        ureq::get(&self.url("/.well-known/jwks.json"))
            .timeout(Duration::from_secs(10))
            .call()
            .unwrap()
            .into_json()
            .unwrap()
    }

    /// SIGTERM, then waits (SIGKILL past the deadline).
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + COMMAND_DEADLINE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the server did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The secret a first start wrote beside `dir/authstore.db`.
pub fn secret_in(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("authstore.db.secret"))
        .unwrap()
        .trim()
        .to_owned()
}

/// `authstore serve --port 0` in `dir`, sharing its SQLite file with other
/// servers (`[sqlite] locking = "shared"`).
pub fn serve_shared(dir: &Path) -> Server {
    let mut command = authstore(dir);
    command
        .env("AUTHSTORE_SQLITE_LOCKING", "shared")
        .args(["serve", "--port", "0"]);
    Server::start(command)
}

/// `authstore serve --port 0` in `dir`, holding its SQLite file alone
/// (`[sqlite] locking = "exclusive"`): commands reach it through its
/// control socket.
pub fn serve_alone(dir: &Path) -> Server {
    let mut command = authstore(dir);
    command
        .env("AUTHSTORE_SQLITE_LOCKING", "exclusive")
        .args(["serve", "--port", "0"]);
    Server::start(command)
}

/// `authstore serve --port 0 ARGS` in `dir`.
pub fn serve(dir: &Path, args: &[&str]) -> Server {
    let mut command = authstore(dir);
    command.arg("serve").args(["--port", "0"]).args(args);
    Server::start(command)
}
