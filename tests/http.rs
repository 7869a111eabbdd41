//! The secret gate and the health endpoints.

mod common;

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
