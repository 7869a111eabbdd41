//! `authstore import convex`: a snapshot export of the Convex Auth.js adapter
//! guide's tables, built here the way `npx convex export` writes it (a ZIP,
//! one TABLE/documents.jsonl each, deflated), loaded into a new database.

use crate::common;

use common::process::{authstore, output, serve, serve_alone};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

const USER_A: &str = "k57a8d0gaq2v9mm4c8p7d6v2bh7w6x1b";
const USER_B: &str = "k57bbv4yq9hq7w2s3kx8mzz0ad7w7rfg";

/// The guide's tables, as Convex exports them (numbers are float64).
fn write_export(dir: &Path) -> std::path::PathBuf {
    let export = dir.join("export");
    let tables: [(&str, Vec<Value>); 7] = [
        (
            "users",
            vec![
                json!({"_id": USER_A, "_creationTime": 1.7646e12, "email": "Ada@Example.com", "name": "Ada",
                   "emailVerified": 1.7646e12, "image": "https://example.com/ada.png", "role": "admin"}),
                json!({"_id": USER_B, "_creationTime": 1.7646e12, "email": "bob@example.com"}),
            ],
        ),
        (
            "accounts",
            vec![
                json!({"_id": "a1", "_creationTime": 1.7646e12, "userId": USER_A, "type": "oauth",
            "provider": "github", "providerAccountId": "4242", "access_token": "gho_plain_access",
            "refresh_token": "ghr_plain_refresh", "expires_at": 1.7647e9, "token_type": "bearer",
            "scope": "read:user"}),
            ],
        ),
        (
            "sessions",
            vec![
                json!({"_id": "s1", "_creationTime": 1.7646e12, "userId": USER_A, "sessionToken": "convex-session-ada",
                   "expires": 4.0709088e12}),
                json!({"_id": "s2", "_creationTime": 1.7646e12, "userId": USER_B, "sessionToken": "convex-session-bob",
                   "expires": 4.0709088e12}),
            ],
        ),
        (
            "verificationTokens",
            vec![json!({"_id": "v1", "_creationTime": 1.7646e12,
            "identifier": "bob@example.com", "token": "hashed-token", "expires": 4.0709088e12})],
        ),
        (
            "authenticators",
            vec![
                json!({"_id": "w1", "_creationTime": 1.7646e12, "credentialID": "cred-1",
            "userId": USER_B, "providerAccountId": "cred-1", "credentialPublicKey": "pk",
            "counter": 3.0, "credentialDeviceType": "singleDevice", "credentialBackedUp": false}),
            ],
        ),
        // The app's own data, and Convex's table list: left alone.
        (
            "messages",
            vec![json!({"_id": "m1", "_creationTime": 1.7646e12, "body": "hi"})],
        ),
        ("_tables", vec![json!({"name": "users", "id": 10001})]),
    ];
    for (table, rows) in tables {
        std::fs::create_dir_all(export.join(table)).unwrap();
        let lines: Vec<String> = rows.iter().map(Value::to_string).collect();
        std::fs::write(
            export.join(table).join("documents.jsonl"),
            lines.join("\n") + "\n",
        )
        .unwrap();
        std::fs::write(
            export.join(table).join("generated_schema.jsonl"),
            "\"any\"\n",
        )
        .unwrap();
    }
    let zip = dir.join("snapshot.zip");
    let zipped = output({
        let mut command = Command::new("python3");
        command.args([
            "-c",
            "import os, sys, zipfile\n\
             root, out = sys.argv[1], sys.argv[2]\n\
             with zipfile.ZipFile(out, 'w', zipfile.ZIP_DEFLATED) as z:\n\
             \x20   for d, _, files in os.walk(root):\n\
             \x20       for f in files:\n\
             \x20           p = os.path.join(d, f)\n\
             \x20           z.write(p, os.path.relpath(p, root))\n",
        ]);
        command.arg(&export).arg(&zip);
        command
    });
    assert!(
        zipped.status.success(),
        "{}",
        String::from_utf8_lossy(&zipped.stderr)
    );
    zip
}

fn import(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let mut command = authstore(dir);
    command.args(["import", "convex"]).args(args);
    let out = output(command);
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn a_convex_export_of_the_guide_loads_with_its_ids_and_live_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let zip = write_export(dir.path());
    let (ok, out, err) = import(dir.path(), &[zip.to_str().unwrap()]);
    assert!(ok, "{err}");
    for (table, imported) in [
        ("users", 2),
        ("accounts", 1),
        ("sessions", 2),
        ("verificationTokens", 1),
        ("authenticators", 1),
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(table))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(
            line.contains(&format!("{imported} imported")) && line.contains(" 0 already there"),
            "{line}"
        );
    }
    assert!(out.contains("left alone: messages"), "{out}");

    let server = serve(dir.path(), &[]);
    let secret = common::process::secret_in(dir.path());
    // A browser signed in through the guide's setup stays signed in...
    let found = server.post(
        &secret,
        "/api/adapter/getSessionAndUser",
        &json!({ "sessionToken": "convex-session-ada" }),
    );
    assert_eq!(found["user"]["id"], USER_A);
    assert_eq!(
        found["user"]["email"], "ada@example.com",
        "emails are normalized"
    );
    assert_eq!(found["user"]["role"], "admin", "unknown fields are kept");
    assert_eq!(found["user"]["emailVerified"], "2025-12-01T14:40:00.000Z");
    assert_eq!(found["session"]["expires"], "2099-01-01T00:00:00.000Z");
    // ...and its token names the same user Convex knew: sub is the Convex id.
    let minted = server.post(
        &secret,
        "/api/token",
        &json!({ "sessionToken": "convex-session-ada" }),
    );
    let claims = minted["token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned();
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], USER_A);
    let account = server.post(
        &secret,
        "/api/adapter/getAccount",
        &json!({ "provider": "github", "providerAccountId": "4242" }),
    );
    assert_eq!(account["access_token"], "gho_plain_access");
    assert_eq!(account["expires_at"], 1_764_700_000);
    let authenticator = server.post(
        &secret,
        "/api/adapter/getAuthenticator",
        &json!({ "credentialID": "cred-1" }),
    );
    assert_eq!(authenticator["counter"], 3);
    let used = server.post(
        &secret,
        "/api/adapter/useVerificationToken",
        &json!({ "identifier": "bob@example.com", "token": "hashed-token" }),
    );
    assert_eq!(used["identifier"], "bob@example.com");

    // A second run changes nothing.
    let (ok, out, err) = import(dir.path(), &[zip.to_str().unwrap()]);
    assert!(ok, "{err}");
    let users = out.lines().find(|l| l.starts_with("users")).unwrap();
    assert!(
        users.contains(" 0 imported") && users.contains("2 already there"),
        "{out}"
    );
    let sessions = out.lines().find(|l| l.starts_with("sessions")).unwrap();
    assert!(
        sessions.contains(" 0 imported") && sessions.contains("2 already there"),
        "{out}"
    );
    // (The verification token was used above: the second run brings it back,
    // as the export still holds it.)
}

#[test]
fn a_database_with_other_users_is_refused_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let zip = write_export(dir.path());
    {
        let server = serve(dir.path(), &[]);
        server.post(
            &common::process::secret_in(dir.path()),
            "/api/adapter/createUser",
            &json!({ "user": { "email": "local@example.com" } }),
        );
        server.terminate();
    }
    let (ok, _, err) = import(dir.path(), &[zip.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("1 user(s) that are not in this export"),
        "{err}"
    );
    assert!(err.contains("--allow-existing-users"), "{err}");
    let (ok, out, err) = import(
        dir.path(),
        &[zip.to_str().unwrap(), "--allow-existing-users"],
    );
    assert!(ok, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("users") && l.contains("2 imported")),
        "{out}"
    );
}

#[test]
fn a_broken_export_names_the_table_and_line_and_a_directory_works_too() {
    let dir = tempfile::tempdir().unwrap();
    write_export(dir.path());
    let export = dir.path().join("export");
    // The directory form of `npx convex export --path dir/`.
    let sessions = export.join("sessions/documents.jsonl");
    let mut text = std::fs::read_to_string(&sessions).unwrap();
    text.push_str("{\"_id\": \"s3\", \"userId\": \"k57a8d0gaq2v9mm4c8p7d6v2bh7w6x1b\"}\n");
    std::fs::write(&sessions, text).unwrap();
    let (ok, _, err) = import(dir.path(), &[export.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("sessions/documents.jsonl, line 3"), "{err}");
    assert!(err.contains("sessionToken"), "{err}");

    let (ok, _, err) = import(
        dir.path(),
        &[dir.path().join("nothing.zip").to_str().unwrap()],
    );
    assert!(!ok);
    assert!(err.contains("nothing.zip"), "{err}");
}

/// The number of users in the database of `dir` (read beside a stopped server).
fn users_in(dir: &Path) -> i64 {
    rusqlite::Connection::open(dir.join("authstore.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_bad_last_row_leaves_the_database_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    assert!(serve(dir.path(), &[]).terminate().success());
    write_export(dir.path());
    let export = dir.path().join("export");
    // The last row of the last table names a user the export does not have:
    // found only when it is written, after every other row.
    let authenticators = export.join("authenticators/documents.jsonl");
    let mut text = std::fs::read_to_string(&authenticators).unwrap();
    text.push_str(
        &json!({"_id": "w2", "credentialID": "cred-2", "userId": "nobody",
                "providerAccountId": "cred-2", "credentialPublicKey": "pk", "counter": 0,
                "credentialDeviceType": "singleDevice", "credentialBackedUp": false})
        .to_string(),
    );
    text.push('\n');
    std::fs::write(&authenticators, text).unwrap();
    let (ok, out, err) = import(dir.path(), &[export.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("authenticators/documents.jsonl, line 2")
            && err.contains("nothing was imported"),
        "{err}"
    );
    assert_eq!(
        users_in(dir.path()),
        0,
        "rows before the bad one were written"
    );
}

#[test]
fn a_line_longer_than_the_adapters_body_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(serve(dir.path(), &[]).terminate().success());
    write_export(dir.path());
    let export = dir.path().join("export");
    let users = export.join("users/documents.jsonl");
    let mut text = std::fs::read_to_string(&users).unwrap();
    // A 20 MiB field.
    text.push_str(
        &json!({"_id": "big", "email": "big@example.com", "name": "x".repeat(20 << 20)})
            .to_string(),
    );
    text.push('\n');
    std::fs::write(&users, text).unwrap();
    let (ok, _, err) = import(dir.path(), &[export.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("users/documents.jsonl, line 3") && err.contains("longer than 65536 bytes"),
        "{err}"
    );
    assert_eq!(users_in(dir.path()), 0);
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn an_export_that_inflates_to_a_gigabyte_leaves_the_servers_memory_alone() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("bomb.zip");
    // The guide's users, and an app table of 1 GiB that deflates to about 1 MiB.
    let made = output({
        let mut command = Command::new("python3");
        command.args([
            "-c",
            "import sys, zipfile\n\
             with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n\
             \x20   z.writestr('users/documents.jsonl', '{\"_id\": \"u1\", \"email\": \"a@example.com\"}\\n')\n\
             \x20   line = b'{\"_id\": \"m\", \"body\": \"' + b'a' * 1000 + b'\"}\\n'\n\
             \x20   with z.open('messages/documents.jsonl', 'w', force_zip64=True) as f:\n\
             \x20       for _ in range(1024):\n\
             \x20           f.write(line * 1024)\n",
        ]);
        command.arg(&zip);
        command
    });
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    eprintln!(
        "the ZIP: {} KiB",
        std::fs::metadata(&zip).unwrap().len() / 1024
    );

    // Held alone, so the import runs inside the server (its control socket).
    let server = serve_alone(dir.path());
    let pid = server.child.as_ref().unwrap().id();
    let before = rss_kib(pid);
    let (ok, out, err) = import(dir.path(), &[zip.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(
        err.contains("run by the server"),
        "it ran inside the server: {err}"
    );
    assert!(
        out.contains("messages"),
        "the app table is named as left alone: {out}"
    );
    let grew = rss_kib(pid).saturating_sub(before);
    eprintln!("the server grew by {grew} KiB ({before} KiB before)");
    assert!(grew < 64 * 1024, "the server grew by {grew} KiB");
    assert!(server.terminate().success());
}
