//! The reverse-proxy examples of docs/operations.md (examples/proxy/) in front of a
//! real server: the issuer's documents pass, the adapter API does not.

use crate::common;

use common::process::{output, serve, Server};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/proxy");

fn installed(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        // scripts/test-all installs both; a developer's machine may lack them.
        assert!(
            std::env::var("CI").is_err(),
            "{tool} is not installed (scripts/install-deps nginx-light caddy)"
        );
        eprintln!("SKIPPED: {tool} is not installed");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the proxy when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `curl` of `url` (TLS not verified: a test certificate): the status code.
fn status_of(url: &str, method: &str) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = output({
            let mut command = Command::new("curl");
            command.args([
                "-sk",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                method,
                "--max-time",
                "5",
                url,
            ]);
            command
        });
        let code: u16 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        if code != 0 {
            return code;
        }
        assert!(
            Instant::now() < deadline,
            "the proxy at {url} never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn authstore_behind(dir: &Path) -> Server {
    serve(dir, &[])
}

/// What either proxy example must do, checked the same way for both: the
/// issuer's documents pass; the adapter, the token endpoint, the console,
/// its API and the health checks are not reachable from outside.
fn exposes_only_the_issuer_documents(base: &str) {
    for document in [
        "/.well-known/openid-configuration",
        "/.well-known/jwks.json",
    ] {
        assert_eq!(
            status_of(&format!("{base}{document}"), "GET"),
            200,
            "{document}"
        );
    }
    for (path, method) in [
        ("/api/adapter/getUser", "POST"),
        ("/api/token", "POST"),
        ("/api/console/session", "GET"),
        ("/console/", "GET"),
        ("/readyz", "GET"),
        ("/healthz", "GET"),
        ("/openapi.json", "GET"),
    ] {
        assert_eq!(
            status_of(&format!("{base}{path}"), method),
            404,
            "{method} {path}"
        );
    }
}

#[test]
fn nginx_passes_the_issuer_documents_and_hides_the_api() {
    if !installed("nginx") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = authstore_behind(dir.path());
    let port = free_port();
    // A self-signed certificate in place of the example's Let's Encrypt one.
    let certs = output({
        let mut command = Command::new("openssl");
        command.current_dir(dir.path()).args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-subj",
            "/CN=auth.example.com",
            "-days",
            "1",
        ]);
        command
    });
    assert!(certs.status.success());
    let example =
        std::fs::read_to_string(Path::new(EXAMPLES).join("authstore.nginx.conf")).unwrap();
    let site = example
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port} ssl;"))
        .replace(
            "/etc/letsencrypt/live/auth.example.com/fullchain.pem",
            &dir.path().join("cert.pem").display().to_string(),
        )
        .replace(
            "/etc/letsencrypt/live/auth.example.com/privkey.pem",
            &dir.path().join("key.pem").display().to_string(),
        )
        .replace("127.0.0.1:7878", &format!("127.0.0.1:{}", server.port));
    assert_ne!(site, example);
    let prefix = dir.path().display().to_string();
    std::fs::write(dir.path().join("authstore.conf"), site).unwrap();
    std::fs::write(
        dir.path().join("nginx.conf"),
        format!(
            "worker_processes 1;\nerror_log {prefix}/error.log;\npid {prefix}/nginx.pid;\n\
             user root;\nevents {{}}\nhttp {{\n  access_log off;\n  \
             client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n  \
             include {prefix}/authstore.conf;\n}}\n"
        ),
    )
    .unwrap();
    let conf = dir.path().join("nginx.conf");
    let checked = output({
        let mut command = Command::new("nginx");
        command
            .arg("-t")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf);
        command
    });
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let _nginx = Running(
        Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    exposes_only_the_issuer_documents(&format!("https://127.0.0.1:{port}"));
}

#[test]
fn caddy_passes_the_issuer_documents_and_hides_the_api() {
    if !installed("caddy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(EXAMPLES).join("Caddyfile");
    // The example as written (a public name, automatic HTTPS) is valid...
    let valid = output({
        let mut command = Command::new("caddy");
        command
            .env("HOME", dir.path())
            .args(["validate", "--adapter", "caddyfile", "--config"])
            .arg(&example);
        command
    });
    assert!(
        valid.status.success(),
        "{}",
        String::from_utf8_lossy(&valid.stderr)
    );
    // ...and, served on a local port over plain HTTP, routes as it says.
    let server = authstore_behind(dir.path());
    let port = free_port();
    let local = std::fs::read_to_string(&example)
        .unwrap()
        .replace(
            "auth.example.com {",
            &format!("{{\n\tadmin off\n}}\n\nhttp://127.0.0.1:{port} {{"),
        )
        .replace("127.0.0.1:7878", &format!("127.0.0.1:{}", server.port));
    let file = dir.path().join("Caddyfile");
    std::fs::write(&file, local).unwrap();
    let _caddy = Running(
        Command::new("caddy")
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    exposes_only_the_issuer_documents(&format!("http://127.0.0.1:{port}"));
}

#[test]
fn the_readme_shows_the_examples_as_they_are() {
    let readme = include_str!("../../docs/operations.md");
    for file in ["authstore.nginx.conf", "Caddyfile"] {
        let text = std::fs::read_to_string(Path::new(EXAMPLES).join(file)).unwrap();
        assert!(
            readme.contains(&format!("\n{}\n```", text.trim_end())),
            "docs/operations.md does not show examples/proxy/{file} as it is"
        );
    }
}
