//! The binary as a user runs it: zero-configuration start, commands, errors.

use crate::common;

use common::process::{authstore, output, run, serve};

#[test]
fn zero_configuration_start_on_a_free_port() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[]);
    let (port, log) = (server.port, server.log.clone());
    let secret_file = dir.path().join("authstore.db.secret");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&secret_file)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let secret = std::fs::read_to_string(&secret_file)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(secret.len(), 43, "32 bytes, base64url");
    let log = log.join("\n");
    assert!(
        log.contains("authstore.db.secret"),
        "the secret's path is logged: {log}"
    );
    assert!(!log.contains(&secret), "the secret itself is never logged");

    let health = ureq::get(&format!("http://127.0.0.1:{port}/healthz"))
        .call()
        .unwrap();
    assert_eq!(health.status(), 200);
    let answer = ureq::post(&format!("http://127.0.0.1:{port}/api/adapter/getUser"))
        .set("Authorization", &format!("Bearer {secret}"))
        .send_string(r#"{"id":"x"}"#)
        .unwrap();
    assert_eq!(answer.into_string().unwrap(), "null");
    assert!(server.terminate().success(), "SIGTERM stops it cleanly");
    assert!(dir.path().join("authstore.db").exists());
}

#[test]
fn help_explains_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, _) = run(dir.path(), &["--help"]);
    assert!(ok);
    for command in ["serve", "secret", "keys", "convex-config"] {
        assert!(
            out.contains(command),
            "--help does not mention {command}: {out}"
        );
    }
    let (ok, out, _) = run(dir.path(), &["keys", "--help"]);
    assert!(ok && out.contains("rotate") && out.contains("import") && out.contains("list"));
    // Every flag names the variable that sets it too.
    let (ok, out, _) = run(dir.path(), &["serve", "--help"]);
    assert!(ok);
    for variable in [
        "AUTHSTORE_CONFIG",
        "AUTHSTORE_DATABASE",
        "AUTHSTORE_BIND",
        "AUTHSTORE_PORT",
        "AUTHSTORE_ISSUER",
        "AUTHSTORE_SECRET_FILE",
        "AUTHSTORE_WORKERS",
    ] {
        assert!(
            out.contains(variable),
            "serve --help does not name {variable}: {out}"
        );
    }
}

#[test]
fn the_clients_variables_in_a_shared_env_do_not_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = common::process::authstore(dir.path());
    command
        .args(["serve", "--port", "0"])
        .env("AUTHSTORE_URL", "http://127.0.0.1:7878")
        .env("AUTHSTORE_SECRET", "shared-env-secret-0123456789");
    let server = common::process::Server::start(command);
    let log = server.log.join("\n");
    assert!(log.contains("ignoring AUTHSTORE_URL"), "{log}");
    // A typo of a real setting still stops it, with the right name.
    let (ok, _, err) = {
        let mut command = common::process::authstore(dir.path());
        command
            .args(["serve", "--port", "0"])
            .env("AUTHSTORE_PRT", "1");
        let out = common::process::output(command);
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    assert!(!ok);
    assert!(err.contains("did you mean AUTHSTORE_PORT?"), "{err}");
}

#[test]
fn a_config_file_in_the_working_directory_is_named_when_read_and_when_wrong() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), "title = \"my other app\"\n").unwrap();
    let (ok, _, err) = run(dir.path(), &["serve", "--port", "0"]);
    assert!(!ok);
    assert!(err.contains("config.toml"), "{err}");
    assert!(err.contains("title"), "{err}");
}

#[test]
fn secret_prints_a_fresh_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, first, _) = run(dir.path(), &["secret"]);
    let (_, second, _) = run(dir.path(), &["secret"]);
    assert!(ok);
    assert_eq!(first.trim().len(), 43);
    assert_ne!(first, second);
}

#[test]
fn an_issuer_with_a_trailing_slash_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        "https://auth.example.com/",
        "https://auth.example.com/x?y=1",
        "https://a.example.com#f",
    ] {
        let (ok, _, err) = run(dir.path(), &["serve", "--port", "0", "--issuer", bad]);
        assert!(!ok, "{bad} was accepted");
        assert!(err.contains("issuer"), "{err}");
    }
}

#[test]
fn bad_settings_are_refused_with_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = authstore(dir.path());
    command
        .args(["serve", "--port", "0"])
        .env("AUTHSTORE_TOKEN_LIFETIME_SECS", "an hour");
    let output = output(command);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("AUTHSTORE_TOKEN_LIFETIME_SECS"));
    std::fs::write(dir.path().join("config.toml"), "colour = \"blue\"\n").unwrap();
    let (ok, _, err) = run(dir.path(), &["serve", "--port", "0"]);
    assert!(!ok);
    assert!(err.contains("colour"), "{err}");
}

/// A database made the way users make one: the server's first start.
fn initialized() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    assert!(serve(dir.path(), &[]).terminate().success());
    dir
}

#[test]
fn keys_list_and_rotate() {
    let dir = initialized();
    let (ok, out, err) = run(dir.path(), &["keys", "rotate"]);
    assert!(ok, "{err}");
    assert!(out.contains("signs in 86400 s"), "{out}");
    let (ok, again, _) = run(dir.path(), &["keys", "rotate"]);
    assert!(ok && again.contains("already waiting"), "{again}");
    let (ok, list, _) = run(dir.path(), &["keys", "list"]);
    assert!(ok);
    let rows: Vec<&str> = list.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{list}");
    assert!(rows.iter().any(|r| r.contains(" current ")), "{list}");
    assert!(rows.iter().any(|r| r.contains(" next ")), "{list}");
    let (ok, out, _) = run(dir.path(), &["keys", "rotate", "--now"]);
    assert!(ok && out.contains("signs now"), "{out}");
    let (_, list, _) = run(dir.path(), &["keys", "list"]);
    assert_eq!(
        list.lines().filter(|r| r.contains(" current ")).count(),
        1,
        "{list}"
    );
}

#[test]
fn convex_config_prints_one_file_for_the_issuer_it_is_given() {
    let dir = initialized();
    let convex_config = |args: &[&str]| {
        let mut command = authstore(dir.path());
        command.arg("convex-config").args(args);
        let output = output(command);
        assert!(output.status.success());
        (
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    // A public issuer: the OIDC provider, nothing else.
    let (out, _) = convex_config(&["--issuer", "https://auth.example.com"]);
    assert_eq!(out.matches("export default").count(), 1, "{out}");
    assert!(
        out.contains(r#"domain: "https://auth.example.com","#),
        "{out}"
    );
    assert!(out.contains(r#"applicationID: "convex","#), "{out}");
    assert!(!out.contains("customJwt"), "{out}");

    // The default issuer of a laptop (loopback): the keys inline.
    let (out, err) = convex_config(&[]);
    assert_eq!(out.matches("export default").count(), 1, "{out}");
    assert!(out.contains(r#"type: "customJwt","#), "{out}");
    assert!(out.contains(r#"issuer: "http://127.0.0.1:7878","#), "{out}");
    assert!(err.contains("again after a key rotation"), "{err}");
    let data = out
        .split("data:text/plain;charset=utf-8;base64,")
        .nth(1)
        .unwrap();
    let encoded = data.split('"').next().unwrap();
    use base64::Engine;
    let jwks: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "RS256");

    // The OIDC form asked for a loopback issuer: printed, with a warning.
    let (out, err) = convex_config(&["--provider", "oidc"]);
    assert!(out.contains(r#"domain: "http://127.0.0.1:7878","#), "{out}");
    assert!(err.contains("not reachable from Convex's cloud"), "{err}");
}
