//! Many processes on one database: two servers starting together, a CLI
//! command beside a running server, commands pointed at a wrong path.

use crate::common;

use common::process::{authstore, output, run, serve, serve_alone, serve_shared, shell, Server};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn kids(jwks: &Value) -> Vec<String> {
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    kids
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

fn mint(server: &Server, secret: &str, session_token: &str) -> String {
    let minted = server.post(
        secret,
        "/api/token",
        &json!({ "sessionToken": session_token, "fresh": true }),
    );
    minted["token"].as_str().unwrap().to_owned()
}

/// A user with a live session, through `server`.
fn signed_in(server: &Server, secret: &str, session_token: &str) {
    let user = server.post(
        secret,
        "/api/adapter/createUser",
        &json!({ "user": { "email": format!("{session_token}@example.com") } }),
    );
    server.post(
        secret,
        "/api/adapter/createSession",
        &json!({ "session": { "sessionToken": session_token, "userId": user["id"],
                             "expires": "2099-01-01T00:00:00.000Z" } }),
    );
}

#[test]
fn two_servers_started_together_on_a_fresh_database_share_one_key() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let both: Vec<Server> = (0..2)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || serve_shared(&path))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().expect("both servers start"))
            .collect();
        let secret = common::process::secret_in(dir.path());
        let (a, b) = (&both[0], &both[1]);
        let jwks_a = a.jwks();
        assert_eq!(
            jwks_a["keys"].as_array().unwrap().len(),
            1,
            "round {round}: {jwks_a}"
        );
        assert_eq!(kids(&jwks_a), kids(&b.jwks()), "round {round}");
        signed_in(a, &secret, "shared-session");
        let (token_a, token_b) = (
            mint(a, &secret, "shared-session"),
            mint(b, &secret, "shared-session"),
        );
        assert_eq!(kid_of(&token_a), kid_of(&token_b), "round {round}");
        assert_eq!(kid_of(&token_a), kids(&jwks_a)[0], "round {round}");
        for server in both {
            assert!(server.terminate().success(), "round {round}");
        }
        let (ok, list, err) = run(dir.path(), &["keys", "list"]);
        assert!(ok, "{err}");
        assert_eq!(
            list.lines().skip(1).count(),
            1,
            "round {round}: exactly one key\n{list}"
        );
        assert!(list.contains(" current "), "{list}");
    }
}

#[test]
fn rotate_now_from_the_cli_reaches_a_running_server_within_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[]);
    let secret = common::process::secret_in(dir.path());
    signed_in(&server, &secret, "live-session");
    let old = kid_of(&mint(&server, &secret, "live-session"));

    let (ok, out, err) = run(dir.path(), &["keys", "rotate", "--now"]);
    assert!(ok, "{err}");
    let rotated = Instant::now();
    let new = out
        .split_whitespace()
        .nth(1)
        .expect("the new kid is printed")
        .to_owned();
    assert_ne!(new, old);
    loop {
        let published = kids(&server.jwks());
        let signs_with = kid_of(&mint(&server, &secret, "live-session"));
        if !published.contains(&old) && signs_with == new {
            assert_eq!(published, vec![new.clone()]);
            break;
        }
        assert!(
            rotated.elapsed() <= Duration::from_secs(2),
            "after {:?} the server still publishes {published:?} and signs with {signs_with}",
            rotated.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.terminate();
}

#[test]
fn commands_on_a_missing_database_fail_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["keys", "list"][..],
        &["keys", "rotate"],
        &["keys", "rotate", "--now"],
        &["convex-config"],
        &["--database", "nowhere/else.db", "keys", "list"],
    ] {
        let (ok, out, err) = run(dir.path(), args);
        assert!(!ok, "{args:?} succeeded: {out}");
        assert!(err.contains("there is no database at"), "{args:?}: {err}");
        let absolute = dir.path().canonicalize().unwrap();
        assert!(
            err.contains(&absolute.display().to_string()),
            "{args:?} names the absolute path: {err}"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{args:?} created {left:?}");
    }
}

#[test]
fn keys_commands_name_the_database_they_act_on() {
    let dir = tempfile::tempdir().unwrap();
    assert!(serve(dir.path(), &[]).terminate().success());
    let mut command = authstore(dir.path());
    command.args(["keys", "list"]);
    let out = output(command);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let db = dir.path().canonicalize().unwrap().join("authstore.db");
    assert!(err.contains(&format!("database {}", db.display())), "{err}");
}

#[test]
fn concurrent_rotations_leave_at_most_one_waiting_key() {
    let dir = tempfile::tempdir().unwrap();
    assert!(serve(dir.path(), &[]).terminate().success());
    // The first key is now over a second old: a server configured to rotate
    // every day with a lead time of a day less one second finds automatic
    // rotation due as it starts, while four CLI rotations run.
    std::thread::sleep(Duration::from_millis(1100));
    let path = dir.path().to_owned();
    let starting = {
        let path = path.clone();
        std::thread::spawn(move || {
            let mut command = authstore(&path);
            command
                .args(["serve", "--port", "0"])
                .env("AUTHSTORE_KEY_ROTATION_DAYS", "1")
                .env("AUTHSTORE_KEY_LEAD_TIME_SECS", "86399");
            Server::start(command)
        })
    };
    let rotations: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || run(&path, &["keys", "rotate"]))
        })
        .collect();
    let waiting = rotations
        .into_iter()
        .map(|rotation| {
            let (ok, out, err) = rotation.join().unwrap();
            assert!(ok, "{out}{err}");
            out
        })
        .filter(|out| out.contains("is published now"))
        .count();
    let server = starting.join().unwrap();
    let (ok, list, err) = run(dir.path(), &["keys", "list"]);
    assert!(ok, "{err}");
    assert_eq!(list.matches(" next ").count(), 1, "{list}");
    assert_eq!(list.matches(" current ").count(), 1, "{list}");
    assert!(waiting <= 1, "{waiting} rotations said they added a key");
    let deadline = Instant::now() + Duration::from_secs(3);
    while kids(&server.jwks()).len() != 2 {
        assert!(Instant::now() < deadline, "the server publishes both keys");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.terminate();
}

#[test]
fn every_response_carries_a_request_id_that_the_log_names() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[]);
    let kept = ureq::get(&server.url("/healthz"))
        .set("x-request-id", "trace-abc.123_x")
        .call()
        .unwrap();
    assert_eq!(kept.header("x-request-id"), Some("trace-abc.123_x"));
    let line = server.wait_for_log("id=trace-abc.123_x");
    assert!(line.contains("GET /healthz 200"), "{line}");
    // And the trace the response names (one started here: none came in).
    let trace = &kept.header("traceparent").unwrap()[3..35];
    assert!(line.contains(&format!("trace={trace}")), "{line}");

    for bad in ["has space", &"x".repeat(65)] {
        let made = ureq::get(&server.url("/healthz"))
            .set("x-request-id", bad)
            .call()
            .unwrap();
        let id = made.header("x-request-id").unwrap().to_owned();
        assert!(
            !id.is_empty() && id != bad,
            "a malformed id is replaced: {id}"
        );
    }
    let answer = match ureq::post(&server.url("/api/adapter/getUser")).call() {
        Err(ureq::Error::Status(401, response)) => response,
        other => panic!("{other:?}"),
    };
    assert!(
        answer.header("x-request-id").is_some(),
        "errors carry one too"
    );
    server.terminate();
}

#[test]
fn healthz_answers_under_a_flood_of_idle_connections_at_a_low_soft_limit() {
    let dir = tempfile::tempdir().unwrap();
    // Started with the soft open-file limit at 1,024 (the hard one higher):
    // the server raises it, and 1,200 idle connections starve nobody.
    let server = Server::start(shell(
        dir.path(),
        "ulimit -Sn 1024 && exec \"$0\" serve --port 0",
    ));
    assert!(
        server
            .log
            .iter()
            .any(|l| l.contains("open-file limit raised from 1024")),
        "{:?}",
        server.log
    );
    let idle: Vec<std::net::TcpStream> = (0..1200)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap())
        .collect();
    let health = ureq::get(&server.url("/healthz"))
        .timeout(Duration::from_secs(5))
        .call()
        .unwrap();
    assert_eq!(health.status(), 200);
    drop(idle);
    server.terminate();
}

#[test]
fn malformed_requests_cannot_write_error_lines() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[]);
    for payload in [
        &b"POST /healthz HTTP/1.1\r\nContent-Length: abc\r\n\r\n"[..],
        b"GARBAGE \x00\x01 HTTP/9.9\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ] {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(payload).unwrap();
        let mut answer = [0u8; 12];
        let _ = stream.read(&mut answer);
    }
    ureq::get(&server.url("/healthz"))
        .set("x-request-id", "after-the-garbage")
        .call()
        .unwrap();
    server.wait_for_log("id=after-the-garbage");
    let errors: Vec<String> = server
        .later_log()
        .into_iter()
        .filter(|line| line.contains("ERROR"))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    server.terminate();
}

/// `authstore serve --port 0` in `dir` as a command, to watch it fail.
fn serve_command(dir: &std::path::Path, env: &[(&str, &str)]) -> std::process::Command {
    let mut command = authstore(dir);
    command
        .envs(env.iter().copied())
        .args(["serve", "--port", "0"]);
    command
}

#[test]
fn a_second_server_on_a_file_held_alone_is_refused_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let first = serve_alone(dir.path());
    for env in [
        &[][..],
        &[("AUTHSTORE_SQLITE_LOCKING", "shared")][..],
        &[("AUTHSTORE_SQLITE_LOCKING", "exclusive")][..],
    ] {
        let started = Instant::now();
        let out = output(serve_command(dir.path(), env));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{env:?}: {err}");
        assert!(
            err.contains("another authstore server is using")
                && err.contains("locking = \"shared\""),
            "{env:?}: {err}"
        );
        // Refused at once, not after a wait for the lock.
        assert!(started.elapsed() < Duration::from_secs(5), "{env:?}");
    }
    let secret = common::process::secret_in(dir.path());
    signed_in(&first, &secret, "still-served");
    assert!(first.terminate().success());
    // Once the first has stopped, the file is free.
    let second = serve_alone(dir.path());
    signed_in(&second, &secret, "served-again");
    assert!(second.terminate().success());
}

#[test]
fn commands_run_inside_the_server_that_holds_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_alone(dir.path());
    let pid = server.child.as_ref().unwrap().id();
    let by_server = format!("run by the server that holds the database (pid {pid})");
    let secret = common::process::secret_in(dir.path());
    signed_in(&server, &secret, "to-be-audited");
    server.post(
        &secret,
        "/api/adapter/deleteSession",
        &json!({ "sessionToken": "to-be-audited" }),
    );

    let (ok, out, err) = run(dir.path(), &["keys", "list"]);
    assert!(ok && err.contains(&by_server), "{err}");
    assert_eq!(
        out.lines().filter(|l| l.contains(" current ")).count(),
        1,
        "{out}"
    );

    let (ok, out, err) = run(dir.path(), &["audit", "--json"]);
    assert!(ok, "{err}");
    assert!(out.contains("\"session.deleted\""), "{out}");

    let (ok, out, err) = run(dir.path(), &["check"]);
    assert!(ok && err.contains(&by_server), "{out}{err}");

    // A relative path is the command line's, not the server's.
    let sub = dir.path().join("backups");
    std::fs::create_dir(&sub).unwrap();
    let mut backup = authstore(&sub);
    backup.args(["--database", "../authstore.db", "backup", "copy.db"]);
    let done = output(backup);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(sub.join("copy.db").exists());

    let (ok, out, err) = run(dir.path(), &["console-link", "--url", "http://auth.test"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("http://auth.test/console/open#"), "{out}");

    // A command's own failure keeps its message and a failing status.
    let (ok, _, err) = run(dir.path(), &["audit", "--type", "nope"]);
    assert!(!ok && err.contains("--type \"nope\" is none of"), "{err}");

    // What must not run beside a server is still refused.
    let (ok, _, err) = run(dir.path(), &["restore", "backups/copy.db"]);
    assert!(!ok && err.contains("stop it first"), "{err}");

    // The server kept serving throughout.
    signed_in(&server, &secret, "after-the-commands");
    assert!(server.terminate().success());
    assert!(
        !dir.path().join("authstore.db.sock").exists(),
        "a stopped server removes its socket"
    );
}

#[test]
fn a_socket_left_by_a_killed_server_does_not_stop_commands_or_servers() {
    let dir = tempfile::tempdir().unwrap();
    let mut killed = serve_alone(dir.path());
    let mut child = killed.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    drop(killed);
    assert!(dir.path().join("authstore.db.sock").exists());
    // Nobody listens: the command opens the file itself.
    let (ok, out, err) = run(dir.path(), &["keys", "list"]);
    assert!(ok && !err.contains("run by the server"), "{err}");
    assert!(out.contains(" current "), "{out}");
    // A new server takes the socket over, and commands reach it.
    let server = serve_alone(dir.path());
    let (ok, _, err) = run(dir.path(), &["keys", "list"]);
    assert!(ok && err.contains("run by the server"), "{err}");
    assert!(server.terminate().success());
}

#[test]
fn commands_racing_a_server_that_starts_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    assert!(serve(dir.path(), &[]).terminate().success());
    // Commands open the file while the server starts: each one either works
    // on the file before the server takes it (the server waits for it) or
    // is run by the server; none may meet a locked database.
    let commands: Vec<_> = (0..6)
        .map(|_| {
            let path = dir.path().to_owned();
            std::thread::spawn(move || {
                (0..4)
                    .map(|_| run(&path, &["keys", "list"]))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let server = serve_alone(dir.path());
    for command in commands {
        for (ok, out, err) in command.join().unwrap() {
            assert!(ok, "{err}");
            assert!(out.contains(" current "), "{out}");
        }
    }
    let (ok, _, err) = run(dir.path(), &["keys", "list"]);
    assert!(ok && err.contains("run by the server"), "{err}");
    assert!(server.terminate().success());
}

#[test]
fn commands_run_by_a_server_on_a_free_port_name_the_port_it_took() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_alone(dir.path());
    let issuer = format!("http://127.0.0.1:{}", server.port);
    let (ok, out, err) = run(dir.path(), &["convex-config"]);
    assert!(ok && err.contains("run by the server"), "{err}");
    assert!(out.contains(&format!("issuer: \"{issuer}\",")), "{out}");
    let (ok, out, err) = run(dir.path(), &["console-link"]);
    assert!(ok, "{err}");
    assert!(out.starts_with(&format!("{issuer}/console/open#")), "{out}");
    assert!(server.terminate().success());
}

/// A socket that answers every command line with a fake "success".
const FAKE_SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(5)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    try:
        c.recv(65536)
        c.sendall(b'{"stdout":"FAKE KEYS\\n","stderr":"","code":0}')
    except OSError:
        pass  # the command hung up on us
    c.close()
"#;

#[test]
fn commands_refuse_a_control_socket_planted_by_another_user() {
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: planting another user's socket needs root");
        return;
    }
    const NOBODY: u32 = 65534;
    let dir = tempfile::tempdir().unwrap();
    // A directory others can write, as /tmp is.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let server = serve_alone(dir.path());
    assert!(server.terminate().success());
    let socket = dir.path().join("authstore.db.sock");
    assert!(!socket.exists());

    // Another user's process listens there.
    let mut fake = std::process::Command::new("python3")
        .args(["-c", FAKE_SERVER])
        .arg(&socket)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(fake.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready");
    let refused = |says: &str| {
        for args in [&["convex-config"][..], &["keys", "rotate", "--now"]] {
            let (ok, out, err) = run(dir.path(), args);
            assert!(!ok, "{args:?} trusted the planted socket: {out}");
            assert!(!out.contains("FAKE"), "{out}");
            assert!(
                err.contains("refusing the control socket") && err.contains(says),
                "{err}"
            );
        }
    };
    // Owned by its user: refused before connecting.
    refused("belongs to user 65534");
    // Handed to root (as a setuid helper might): the peer is still not us.
    std::os::unix::fs::chown(&socket, Some(0), Some(0)).unwrap();
    refused("runs as user 65534");
    fake.kill().unwrap();
    fake.wait().unwrap();
}

#[test]
fn json_logs_name_each_request_and_its_trace_and_never_a_secret() {
    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    let dir = tempfile::tempdir().unwrap();
    let mut command = authstore(dir.path());
    command
        .env("AUTHSTORE_LOG_FORMAT", "json")
        .args(["serve", "--port", "0"]);
    let server = Server::start(command);
    let secret = common::process::secret_in(dir.path());
    let user = server.post(
        &secret,
        "/api/adapter/createUser",
        &json!({ "user": { "email": "json@example.com" } }),
    );
    server.post(
        &secret,
        "/api/adapter/createSession",
        &json!({ "session": { "sessionToken": "json-session-token-0123", "userId": user["id"],
                              "expires": "2099-01-01T00:00:00.000Z" } }),
    );
    server.post(
        &secret,
        "/api/adapter/linkAccount",
        &json!({ "account": { "userId": user["id"], "type": "oauth", "provider": "github",
                              "providerAccountId": "1", "access_token": "gho_json_secret_token" } }),
    );
    let answer = ureq::post(&server.url("/api/adapter/deleteSession"))
        .set("Authorization", &format!("Bearer {secret}"))
        .set("x-request-id", "json-check-1")
        .set("traceparent", &format!("00-{TRACE}-b7ad6b7169203331-01"))
        .send_string(r#"{"sessionToken":"json-session-token-0123"}"#)
        .unwrap();
    assert!(answer.header("traceparent").unwrap().contains(TRACE));
    // A refused one: a wrong secret.
    let _ = ureq::post(&server.url("/api/adapter/getUser"))
        .set("Authorization", "Bearer not-the-secret")
        .send_string(r#"{"id":"x"}"#);
    server.wait_for_log("json-check-1");
    server.wait_for_log("/api/adapter/getUser");

    let lines: Vec<String> = server
        .log
        .iter()
        .chain(&server.later_log())
        .cloned()
        .collect();
    let parsed: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    for line in &parsed {
        for field in ["time", "level", "target", "message"] {
            assert!(line[field].is_string(), "{field} in {line}");
        }
    }
    let access = parsed
        .iter()
        .find(|l| l["request_id"] == "json-check-1")
        .expect("the access line of the traced request");
    assert_eq!(access["trace_id"], TRACE, "{access}");
    assert_eq!(access["method"], "POST");
    assert_eq!(access["route"], "/api/adapter/deleteSession");
    assert_eq!(access["status"], 200);
    assert!(access["duration_ms"].as_f64().is_some(), "{access}");
    let refused = parsed
        .iter()
        .find(|l| l["path"] == "/api/adapter/getUser")
        .unwrap();
    assert_eq!(refused["status"], 401);
    assert_eq!(
        refused["trace_id"].as_str().unwrap().len(),
        32,
        "a started trace"
    );
    let text = lines.join("\n");
    for never in [
        secret.as_str(),
        "json-session-token-0123",
        "gho_json_secret_token",
        "not-the-secret",
    ] {
        assert!(!text.contains(never), "{never} in the log");
    }
    server.terminate();
}
