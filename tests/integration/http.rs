//! The secret gate and the health endpoints.

use crate::common;

use common::{code, TestApp, SECRET};
use serde_json::{json, Value};

#[test]
fn missing_and_wrong_secrets_get_the_same_401() {
    let app = TestApp::spawn();
    let body = json!({ "id": "x" }).to_string();
    let (missing_status, missing) = app.post("/api/adapter/getUser", &body, None);
    let (wrong_status, wrong) =
        app.post("/api/adapter/getUser", &body, Some("not-the-secret-at-all"));
    let (prefix_status, _) = app.post("/api/adapter/getUser", &body, Some(&SECRET[..10]));
    assert_eq!(
        (missing_status, wrong_status, prefix_status),
        (401, 401, 401)
    );
    assert_eq!(code(&missing), "unauthorized");
    assert_eq!(missing, wrong, "one answer for both");
    let (status, _) = app.post(
        "/api/token",
        &json!({ "sessionToken": "x" }).to_string(),
        None,
    );
    assert_eq!(status, 401);
    let (right_status, right) = app.post("/api/adapter/getUser", &body, Some(SECRET));
    assert_eq!((right_status, right), (200, Value::Null));
}

#[test]
fn health_endpoints_need_no_secret() {
    let app = TestApp::spawn();
    let (status, response) = app.get("/healthz");
    assert_eq!(status, 200);
    assert_eq!(response.into_json::<Value>().unwrap()["status"], "ok");
    let (status, response) = app.get("/readyz");
    assert_eq!(status, 200);
    assert_eq!(response.into_json::<Value>().unwrap()["status"], "ready");
}

#[test]
fn unknown_routes_are_json_404s() {
    let app = TestApp::spawn();
    let (status, response) = app.get("/nope");
    assert_eq!(status, 404);
    let body: Value = response.into_json().unwrap();
    assert_eq!(code(&body), "not_found");
}

fn raw(app: &TestApp, method: &str, path: &str, body: &str) -> (u16, ureq::Response) {
    let request = ureq::request(method, &format!("{}{path}", app.base))
        .set("Authorization", &format!("Bearer {SECRET}"));
    match request.send_string(body) {
        Ok(response) => (response.status(), response),
        Err(ureq::Error::Status(code, response)) => (code, response),
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

#[test]
fn a_body_must_be_exactly_one_json_object() {
    let app = TestApp::spawn();
    for body in [
        r#"{"id":"a"} trailing garbage"#,
        r#"{"id":"a"}{"id":"b"}"#,
        r#"["a"]"#,
        "null",
        "",
        r#"{"id":"#,
    ] {
        let (status, response) = raw(&app, "POST", "/api/adapter/getUser", body);
        assert_eq!(status, 400, "{body:?}");
        let answer: Value = response.into_json().unwrap();
        assert_eq!(code(&answer), "bad_request");
    }
}

#[test]
fn bad_fields_are_named_in_the_contracts_words() {
    let app = TestApp::spawn();
    let cases = [
        (
            "createUser",
            json!({ "user": { "email": 5 } }),
            "user.email must be a string",
        ),
        ("getUser", json!({}), "id is required"),
        (
            "updateAuthenticatorCounter",
            json!({ "credentialID": "c", "newCounter": -1 }),
            "newCounter must be a whole number from 0 to 4294967295",
        ),
    ];
    for (method, body, message) in cases {
        let (status, answer) = app.call(method, body);
        assert_eq!(status, 400, "{method}");
        assert_eq!(answer["error"]["message"], message, "{method}");
    }
    let long = "y".repeat(60_000);
    let (status, answer) = app.call(
        "createSession",
        json!({ "session": { "sessionToken": "t", "userId": "u", "expires": long } }),
    );
    assert_eq!(status, 400);
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.len() < 300 && !message.contains("yyyy"),
        "{message}"
    );
    assert!(
        !message.contains("struct") && !message.contains("u32"),
        "{message}"
    );
}

#[test]
fn dates_outside_javascripts_range_are_refused() {
    let app = TestApp::spawn();
    let user = app.ok(
        "createUser",
        json!({ "user": { "email": "d@example.com" } }),
    );
    for expires in [
        json!(8_640_000_000_000_001i64),
        json!("+275760-09-13T00:00:00.001Z"),
    ] {
        let (status, answer) = app.call(
            "createSession",
            json!({ "session": { "sessionToken": "t", "userId": user["id"], "expires": expires } }),
        );
        assert_eq!(status, 400, "{expires}: {answer}");
        assert!(answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("session.expires must be a date"));
    }
}

#[test]
fn adapter_answers_are_never_cached() {
    let app = TestApp::spawn();
    let (status, response) = raw(&app, "POST", "/api/adapter/getUser", r#"{"id":"x"}"#);
    assert_eq!(status, 200);
    assert_eq!(response.header("Cache-Control"), Some("no-store"));
}

#[test]
fn a_wrong_method_on_a_known_route_is_405_with_allow() {
    let app = TestApp::spawn();
    for (method, path, allow) in [
        ("GET", "/api/adapter/getUser", "POST"),
        ("PUT", "/api/token", "POST"),
        ("POST", "/healthz", "GET, HEAD"),
        ("DELETE", "/.well-known/jwks.json", "GET, HEAD, OPTIONS"),
    ] {
        let (status, response) = raw(&app, method, path, "");
        assert_eq!(status, 405, "{method} {path}");
        assert_eq!(response.header("Allow"), Some(allow), "{method} {path}");
        let answer: Value = response.into_json().unwrap();
        assert_eq!(code(&answer), "method_not_allowed");
    }
    let (status, response) = raw(&app, "HEAD", "/healthz", "");
    assert_eq!(status, 200);
    assert_eq!(response.into_string().unwrap(), "", "HEAD has no body");
}

#[test]
fn bodies_that_trickle_in_are_cut_at_the_timeout() {
    use std::io::{Read, Write};
    let app = TestApp::spawn_with(|config| config.body_timeout_secs = 1);
    let started = std::time::Instant::now();
    let streams: Vec<std::net::TcpStream> = (0..32)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", app.port)).unwrap();
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            write!(
                stream,
                "POST /api/adapter/getUser HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"id\""
            )
            .unwrap();
            stream
        })
        .collect();
    let (status, _) = app.get("/healthz");
    assert_eq!(status, 200, "the server answers others meanwhile");
    for mut stream in streams {
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("request_timeout"), "{answer}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn the_openapi_document_lists_every_route_the_server_has() {
    let app = TestApp::spawn();
    let (status, response) = app.get("/openapi.json");
    assert_eq!(status, 200);
    let served: Value = response.into_json().unwrap();
    let file: Value = serde_json::from_str(include_str!("../../openapi.json")).unwrap();
    assert_eq!(served, file, "the server serves the committed file");
    assert_eq!(served["openapi"], "3.1.0");
    let paths = served["paths"].as_object().unwrap();
    let mut expected: Vec<String> = authstore::http::ADAPTER_METHODS
        .iter()
        .map(|m| format!("/api/adapter/{m}"))
        .collect();
    expected.extend(
        [
            "/api/token",
            "/api/sessions/list",
            "/api/sessions/revoke",
            "/api/sessions/revokeOthers",
            "/.well-known/openid-configuration",
            "/.well-known/jwks.json",
            "/healthz",
            "/readyz",
            "/openapi.json",
        ]
        .map(String::from),
    );
    let mut listed: Vec<String> = paths.keys().cloned().collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
    // Each listed operation is routed (no 404 or 405 for its method).
    for (path, operations) in paths {
        for method in operations.as_object().unwrap().keys() {
            let (status, _) = raw(&app, &method.to_uppercase(), path, "{}");
            assert!(
                status != 404 && status != 405,
                "{method} {path} answered {status}"
            );
        }
    }
    let (status, _) = raw(&app, "GET", "/not-a-route", "");
    assert_eq!(status, 404);
}

#[test]
fn a_previous_secret_is_accepted_during_its_overlap_only() {
    let old = "the-old-shared-secret-0123456789";
    let probe = |app: &TestApp, secret: &str| {
        app.post("/api/adapter/getUser", r#"{"id":"nobody"}"#, Some(secret))
            .0
    };
    let open = TestApp::spawn_with(|config| {
        config.previous_secrets = vec![authstore::secret::Secret::new(old).unwrap()];
        config.previous_secrets_until = Some("2999-01-01T00:00:00Z".into());
    });
    assert_eq!(probe(&open, common::SECRET), 200);
    assert_eq!(probe(&open, old), 200);
    assert_eq!(probe(&open, "not-a-secret-of-this-server-0123"), 401);

    let closed = TestApp::spawn_with(|config| {
        config.previous_secrets = vec![authstore::secret::Secret::new(old).unwrap()];
        config.previous_secrets_until = Some("2020-01-01T00:00:00Z".into());
    });
    assert_eq!(probe(&closed, common::SECRET), 200);
    assert_eq!(probe(&closed, old), 401);
}
