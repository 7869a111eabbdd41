//! The operator's console over HTTP: signing in with a one-time link, what
//! a session may and may not do, and the headers on every console answer.
//! (Its pages in a real browser: tests/browser/console.test.mjs.)

use crate::common;

use common::{user_fixture, TestApp, SECRET};
use serde_json::{json, Value};

/// `authstore console-link` against the app's database: the link's token.
fn console_link(app: &TestApp) -> String {
    let (ok, stdout, stderr) = app.cli(&["console-link", "--url", &app.base]);
    assert!(ok, "{stderr}");
    let link = stdout.trim();
    let prefix = format!("{}/console/open#", app.base);
    assert!(link.starts_with(&prefix), "{link}");
    link[prefix.len()..].to_owned()
}

/// A request to the console API with the given cookie, origin and CSRF token.
fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
    csrf: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, ureq::Response) {
    let mut request = ureq::request(method, &format!("{}{path}", app.base));
    if let Some(cookie) = cookie {
        request = request.set("Cookie", cookie);
    }
    if let Some(origin) = origin {
        request = request.set("Origin", origin);
    }
    if let Some(csrf) = csrf {
        request = request.set("X-CSRF-Token", csrf);
    }
    let result = match body {
        Some(body) => request.send_json(body),
        None => request.call(),
    };
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = response.status();
    let headers = response.clone_headers();
    let text = response.into_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    )
}

/// Signs in with a fresh link: (cookie header value, CSRF token).
fn sign_in(app: &TestApp) -> (String, String) {
    let (set_cookie, csrf) = app.open_console();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(!set_cookie.contains("Secure"), "http issuer: {set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    (cookie, csrf)
}

/// A signed-in console session, calling the API as the console's page does.
struct Operator<'a> {
    app: &'a TestApp,
    cookie: String,
    csrf: String,
}

impl<'a> Operator<'a> {
    fn sign_in(app: &'a TestApp) -> Self {
        let (cookie, csrf) = sign_in(app);
        Operator { app, cookie, csrf }
    }

    /// A read that must succeed: its body.
    fn get(&self, path: &str) -> Value {
        let (status, body, _) = call(self.app, "GET", path, Some(&self.cookie), None, None, None);
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    /// A change, with the session's CSRF token and a same-origin `Origin`.
    fn change(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, body, _) = call(
            self.app,
            method,
            path,
            Some(&self.cookie),
            Some(&self.app.base),
            Some(&self.csrf),
            body,
        );
        (status, body)
    }
}

trait Headers {
    fn clone_headers(&self) -> ureq::Response;
}

impl Headers for ureq::Response {
    /// A response carrying only this one's headers (the body is read apart).
    fn clone_headers(&self) -> ureq::Response {
        let mut raw = format!("HTTP/1.1 {} {}\r\n", self.status(), self.status_text());
        for name in self.headers_names() {
            for value in self.all(&name) {
                raw.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        raw.push_str("\r\n");
        raw.parse().unwrap()
    }
}

#[test]
fn a_link_signs_in_once_and_sign_out_ends_the_session() {
    let app = TestApp::spawn();
    let token = console_link(&app);
    let open = |token: &str| {
        call(
            &app,
            "POST",
            "/api/console/open",
            None,
            Some(&app.base),
            None,
            Some(json!({ "token": token })),
        )
    };
    let (status, body, _) = open(&token);
    assert_eq!(status, 200, "{body}");
    // Used: refused, with words that say so.
    let (status, body, _) = open(&token);
    assert_eq!(status, 403);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used or has expired"),
        "{body}"
    );
    let (status, _, _) = open("not-a-token");
    assert_eq!(status, 403);

    let (cookie, csrf) = sign_in(&app);
    let (status, overview, _) = call(
        &app,
        "GET",
        "/api/console/overview",
        Some(&cookie),
        None,
        None,
        None,
    );
    assert_eq!(status, 200, "{overview}");
    assert_eq!(overview["keys"][0]["state"], "current");
    let (status, _, response) = call(
        &app,
        "POST",
        "/api/console/sign-out",
        Some(&cookie),
        Some(&app.base),
        Some(&csrf),
        None,
    );
    assert_eq!(status, 200);
    assert!(response.header("set-cookie").unwrap().contains("Max-Age=0"));
    let (status, _, _) = call(
        &app,
        "GET",
        "/api/console/overview",
        Some(&cookie),
        None,
        None,
        None,
    );
    assert_eq!(status, 401);
    // The database holds digests of the link and session tokens, never them.
    assert!(!common::stored_bytes(&app.config, app.dir.path())
        .windows(token.len())
        .any(|w| w == token.as_bytes()));
}

#[test]
fn without_a_session_every_console_call_is_401_and_the_adapter_secret_opens_nothing() {
    let app = TestApp::spawn();
    for (method, path) in [
        ("GET", "/api/console/session"),
        ("GET", "/api/console/overview"),
        ("GET", "/api/console/users"),
        ("GET", "/api/console/users/some-id"),
        ("GET", "/api/console/keys"),
        ("GET", "/api/console/events"),
        ("DELETE", "/api/console/users/some-id/sessions"),
        ("POST", "/api/console/keys/rotate"),
    ] {
        let (status, body, _) = call(&app, method, path, None, Some(&app.base), None, None);
        assert_eq!(status, 401, "{method} {path}: {body}");
        // The adapter's secret is not a console credential.
        let response = ureq::request(method, &format!("{}{path}", app.base))
            .set("Authorization", &format!("Bearer {SECRET}"))
            .call();
        assert!(
            matches!(response, Err(ureq::Error::Status(401, _))),
            "{method} {path} with the adapter secret: {response:?}"
        );
    }
    // And a console session is not an adapter credential.
    let (cookie, _) = sign_in(&app);
    let response = ureq::post(&format!("{}/api/adapter/getUser", app.base))
        .set("Cookie", &cookie)
        .send_json(json!({ "id": "x" }));
    assert!(matches!(response, Err(ureq::Error::Status(401, _))));
}

#[test]
fn a_change_needs_the_csrf_token_and_a_same_origin_origin() {
    let app = TestApp::spawn();
    let (cookie, csrf) = sign_in(&app);
    let rotate = |origin: Option<&str>, csrf: Option<&str>| {
        call(
            &app,
            "POST",
            "/api/console/keys/rotate",
            Some(&cookie),
            origin,
            csrf,
            Some(json!({})),
        )
        .0
    };
    assert_eq!(rotate(Some("http://evil.example"), Some(&csrf)), 403);
    assert_eq!(rotate(None, Some(&csrf)), 403);
    assert_eq!(rotate(Some(&app.base), None), 403);
    assert_eq!(rotate(Some(&app.base), Some("wrong-token")), 403);
    let keys = |app: &TestApp| {
        call(
            app,
            "GET",
            "/api/console/keys",
            Some(&cookie),
            None,
            None,
            None,
        )
        .1["keys"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(keys(&app), 1, "no refused call changed anything");
    assert_eq!(rotate(Some(&app.base), Some(&csrf)), 200);
    assert_eq!(keys(&app), 2);
    // Rotating now needs the typed words.
    let (status, _, _) = call(
        &app,
        "POST",
        "/api/console/keys/rotate",
        Some(&cookie),
        Some(&app.base),
        Some(&csrf),
        Some(json!({ "now": true })),
    );
    assert_eq!(status, 400);
}

#[test]
fn every_console_answer_carries_the_security_headers() {
    let app = TestApp::spawn();
    let (cookie, _) = sign_in(&app);
    for (path, cookie) in [
        ("/console/", None),
        ("/console/open", None),
        ("/console/console.js", None),
        ("/console/console.css", None),
        ("/console/no-such-page", None),
        ("/api/console/overview", None),
        ("/api/console/overview", Some(cookie.as_str())),
        ("/api/console/users?by=nothing", Some(cookie.as_str())),
    ] {
        let (status, _, response) = call(&app, "GET", path, cookie, None, None, None);
        assert!(status < 500, "{path}: {status}");
        let csp = response.header("content-security-policy").unwrap_or("");
        assert!(
            csp.contains("default-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(response.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            response.header("referrer-policy"),
            Some("no-referrer"),
            "{path}"
        );
    }
}

#[test]
fn search_pages_by_keyset_and_a_user_page_acts_on_sessions_and_passkeys() {
    let app = TestApp::spawn();
    let mut ids = Vec::new();
    for n in 0..120 {
        let mut user = user_fixture();
        user["email"] = json!(format!("page{n:03}@example.com"));
        user["name"] = json!(format!("Page User {n:03}"));
        ids.push(app.ok("createUser", json!({ "user": user }))["id"].clone());
    }
    let operator = Operator::sign_in(&app);
    let get = |path: &str| operator.get(path);
    let cookie = &operator.cookie;
    // Three pages of 50, 50, 20 by email prefix, in order, no overlap.
    let mut seen = Vec::new();
    let mut path = "/api/console/users?by=email&q=PAGE".to_owned();
    loop {
        let page = get(&path);
        for user in page["users"].as_array().unwrap() {
            seen.push(user["email"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => path = format!("/api/console/users?by=email&q=PAGE&after={next}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..120)
        .map(|n| format!("page{n:03}@example.com"))
        .collect();
    assert_eq!(seen, expected);
    // By name, case-insensitively; by id prefix.
    let page = get("/api/console/users?by=name&q=page%20user%2011");
    assert_eq!(page["users"].as_array().unwrap().len(), 10);
    let id = ids[7].as_str().unwrap();
    let page = get(&format!("/api/console/users?by=id&q={id}"));
    assert_eq!(page["users"][0]["id"], id);
    assert_eq!(
        call(
            &app,
            "GET",
            "/api/console/users?after=garbage",
            Some(cookie),
            None,
            None,
            None
        )
        .0,
        400
    );

    // A user with two sessions and a passkey.
    for token in ["console-a", "console-b"] {
        app.ok(
            "createSession",
            json!({ "session": { "sessionToken": token, "userId": id, "expires": "2099-01-01T00:00:00.000Z" } }),
        );
    }
    app.ok(
        "createAuthenticator",
        json!({ "authenticator": {
            "credentialID": "cred-1", "userId": id, "providerAccountId": "p", "credentialPublicKey": "k",
            "counter": 0, "credentialDeviceType": "singleDevice", "credentialBackedUp": false, "transports": "usb",
        } }),
    );
    let detail = get(&format!("/api/console/users/{id}"));
    let sessions = detail["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let text = detail.to_string();
    assert!(
        !text.contains("console-a"),
        "a session token reached the console"
    );
    let change =
        |method: &str, path: &str, body: Option<Value>| operator.change(method, path, body);
    // Revoke one session: getSessionAndUser for one of the two is now null.
    let handle = sessions[0]["id"].as_str().unwrap();
    let (status, _) = change(
        "DELETE",
        &format!("/api/console/users/{id}/sessions/{handle}"),
        None,
    );
    assert_eq!(status, 200);
    let left: Vec<bool> = ["console-a", "console-b"]
        .iter()
        .map(|t| {
            !app.ok("getSessionAndUser", json!({ "sessionToken": t }))
                .is_null()
        })
        .collect();
    assert_eq!(left.iter().filter(|alive| **alive).count(), 1, "{left:?}");
    // Remove the passkey.
    let (status, _) = change(
        "DELETE",
        &format!("/api/console/users/{id}/passkeys/cred-1"),
        None,
    );
    assert_eq!(status, 200);
    assert!(app
        .ok("getAuthenticator", json!({ "credentialID": "cred-1" }))
        .is_null());
    // Revoke all, then delete with the typed email.
    let (status, body) = change("DELETE", &format!("/api/console/users/{id}/sessions"), None);
    assert_eq!((status, body["revoked"].as_u64()), (200, Some(1)));
    let (status, _) = change(
        "DELETE",
        &format!("/api/console/users/{id}"),
        Some(json!({ "confirm": "wrong" })),
    );
    assert_eq!(status, 400);
    let (status, _) = change(
        "DELETE",
        &format!("/api/console/users/{id}"),
        Some(json!({ "confirm": "page007@example.com" })),
    );
    assert_eq!(status, 200);
    assert!(app.ok("getUser", json!({ "id": id })).is_null());

    // Each change left an event naming the console session that made it.
    let events = app.audit(&["--user", id]);
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["user.deleted", "user.sessions_revoked", "session.deleted"]
    );
    let actor = &events[0]["actor"];
    assert!(actor.as_str().is_some_and(|a| a.len() == 16), "{events:?}");
    assert!(events.iter().all(|e| &e["actor"] == actor));
    // The console shows the same log.
    let shown = get(&format!("/api/console/events?user={id}"));
    assert_eq!(shown["events"].as_array().unwrap(), &events);
    let shown = get("/api/console/events?type=user.deleted");
    assert_eq!(shown["events"].as_array().unwrap().len(), 1);
    let (status, _, _) = call(
        &app,
        "GET",
        "/api/console/events?type=nothing",
        Some(cookie),
        None,
        None,
        None,
    );
    assert_eq!(status, 400);
}

#[test]
fn an_expired_link_is_refused_and_an_idle_session_ends_after_12_hours() {
    use authstore::clock::ManualClock;
    use authstore::timestamp::Timestamp;
    use std::sync::Arc;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = common::test_config(&dir);
    // Past the idle expiry, not the absolute lifetime (tested apart).
    config.console_session_max_secs = 3 * 24 * 3600;
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let app = TestApp::start(dir, config, clock.clone());
    let open = |token: &str| {
        call(
            &app,
            "POST",
            "/api/console/open",
            None,
            Some(&app.base),
            None,
            Some(json!({ "token": token })),
        )
        .0
    };
    let (cookie, _) = sign_in(&app);
    let stale = console_link(&app);
    // The command dates the link by the wall clock, which may run seconds
    // ahead of the server's manual one by now (a loaded machine): a minute
    // past the 10-minute lifetime either way.
    clock.advance_secs(11 * 60);
    assert_eq!(open(&stale), 403, "a link older than 10 minutes");

    let overview = |app: &TestApp| {
        call(
            app,
            "GET",
            "/api/console/overview",
            Some(&cookie),
            None,
            None,
            None,
        )
        .0
    };
    // Used within 12 hours, it stays; 12 hours idle, it ends.
    clock.advance_secs(11 * 3600);
    assert_eq!(overview(&app), 200);
    clock.advance_secs(11 * 3600);
    assert_eq!(overview(&app), 200, "each use moves the idle expiry");
    clock.advance_secs(12 * 3600 + 1);
    assert_eq!(overview(&app), 401);
}

#[test]
fn each_console_action_writes_one_audit_line_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::process::serve(dir.path(), &[]);
    let base = server.url("");
    let link = {
        let (ok, stdout, stderr) = common::process::run(
            dir.path(),
            &["console-link", "--url", base.trim_end_matches('/')],
        );
        assert!(ok, "{stderr}");
        stdout.trim().to_owned()
    };
    let token = link.split_once('#').unwrap().1.to_owned();
    let origin = base.trim_end_matches('/').to_owned();
    let opened = ureq::post(&format!("{origin}/api/console/open"))
        .set("Origin", &origin)
        .send_json(json!({ "token": token }))
        .unwrap();
    let cookie = opened
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body: Value = opened.into_json().unwrap();
    let session_id = body["id"].as_str().unwrap().to_owned();
    let revoked = ureq::delete(&format!("{origin}/api/console/users/someone/sessions"))
        .set("Cookie", &cookie)
        .set("Origin", &origin)
        .set("X-CSRF-Token", body["csrf"].as_str().unwrap())
        .set("X-Request-Id", "audit-check-1")
        .call()
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let line = server.wait_for_log("console action=revoke-all-sessions");
    assert!(
        line.contains(&format!(
            "target=someone console_session={session_id} request_id=audit-check-1"
        )),
        "{line}"
    );
    let log = server.later_log().join("\n");
    assert_eq!(log.matches("console action=revoke-all-sessions").count(), 1);
    assert!(log.contains("console action=sign-in"), "{log}");
    let cookie_token = cookie.split_once('=').unwrap().1;
    assert!(
        !log.contains(&token) && !log.contains(cookie_token),
        "{log}"
    );
}

#[test]
fn name_search_pages_through_names_beyond_ascii() {
    let app = TestApp::spawn();
    for n in 0..60 {
        app.ok(
            "createUser",
            json!({ "user": { "email": format!("a{n:02}@example.com"), "name": format!("Ärger {n:02}") } }),
        );
    }
    app.ok(
        "createUser",
        json!({ "user": { "email": "emile@example.com", "name": "Émile Zola" } }),
    );
    let operator = Operator::sign_in(&app);
    let get = |path: &str| operator.get(path);
    let mut seen = Vec::new();
    let mut path = "/api/console/users?by=name&q=%C3%84RGER".to_owned();
    loop {
        let page = get(&path);
        for user in page["users"].as_array().unwrap() {
            seen.push(user["name"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => path = format!("/api/console/users?by=name&q=%C3%84RGER&after={next}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..60).map(|n| format!("Ärger {n:02}")).collect();
    assert_eq!(seen, expected, "two pages, in order, none twice");
    // ASCII letters match in any case on every backend.
    let page = get("/api/console/users?by=name&q=%C3%89MILE%20z");
    assert_eq!(page["users"][0]["name"], "Émile Zola");
}

#[test]
fn a_console_session_ends_at_its_absolute_lifetime_however_much_it_is_used() {
    use authstore::clock::ManualClock;
    use authstore::timestamp::Timestamp;
    use std::sync::Arc;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = common::test_config(&dir);
    assert_eq!(config.console_session_max_secs, 12 * 3600, "the default");
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let app = TestApp::start(dir, config, clock.clone());
    let (cookie, _) = sign_in(&app);
    let overview = || {
        call(
            &app,
            "GET",
            "/api/console/overview",
            Some(&cookie),
            None,
            None,
            None,
        )
        .0
    };
    // Used every few hours: never idle, still ended 12 hours after it opened.
    for _ in 0..3 {
        clock.advance_secs(3 * 3600);
        assert_eq!(overview(), 200);
    }
    clock.advance_secs(3 * 3600 - 60);
    assert_eq!(overview(), 200, "11 h 59 min after it opened");
    clock.advance_secs(61);
    assert_eq!(overview(), 401, "12 h after it opened");
}

#[test]
fn console_link_revoke_all_ends_every_console_session() {
    let app = TestApp::spawn();
    let (first, _) = sign_in(&app);
    let (second, _) = sign_in(&app);
    let session = |cookie: &str| {
        call(
            &app,
            "GET",
            "/api/console/session",
            Some(cookie),
            None,
            None,
            None,
        )
        .0
    };
    assert_eq!((session(&first), session(&second)), (200, 200));
    let (ok, out, err) = app.cli(&["console-link", "--revoke-all"]);
    assert!(ok, "{err}");
    assert!(out.contains("ended 2 console sessions"), "{out}");
    assert!(!out.contains("/console/open#"), "no link is made: {out}");
    assert_eq!((session(&first), session(&second)), (401, 401));
    // A new link still signs in.
    let (third, _) = sign_in(&app);
    assert_eq!(session(&third), 200);
}

#[test]
fn over_https_the_console_cookie_carries_the_host_prefix() {
    let app = TestApp::spawn_with(|c| c.issuer = Some("https://auth.example.com".into()));
    let (set_cookie, _) = app.open_console();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    assert!(
        cookie.starts_with("__Host-authstore_console="),
        "{set_cookie}"
    );
    // What the prefix requires: Secure, Path=/, no Domain.
    assert!(set_cookie.contains("Secure"), "{set_cookie}");
    assert!(set_cookie.contains("Path=/"), "{set_cookie}");
    assert!(
        !set_cookie.to_lowercase().contains("domain="),
        "{set_cookie}"
    );
    let session = |cookie: &str| {
        call(
            &app,
            "GET",
            "/api/console/session",
            Some(cookie),
            None,
            None,
            None,
        )
        .0
    };
    assert_eq!(session(&cookie), 200);
    // The unprefixed name (which a sibling subdomain could set) opens nothing.
    let bare = cookie.replacen("__Host-", "", 1);
    assert_eq!(session(&bare), 401);
}

#[test]
fn a_console_body_is_read_only_after_the_session_check_and_within_the_timeout() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let app = TestApp::spawn_with(|c| c.body_timeout_secs = 1);
    let (cookie, csrf) = sign_in(&app);
    // Headers announcing a body that never comes.
    let trickle = |headers: &str| {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", app.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "POST /api/console/keys/rotate HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
        )
        .unwrap();
        let started = Instant::now();
        let mut answer = vec![0u8; 4096];
        let n = stream.read(&mut answer).unwrap_or(0);
        let head = String::from_utf8_lossy(&answer[..n]).into_owned();
        (head, started.elapsed())
    };
    // A stranger is answered at once, without the body being waited for.
    let (head, _) = trickle("");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    // A signed-in operator whose body stalls: cut off at body_timeout_secs.
    let (head, took) = trickle(&format!(
        "Cookie: {cookie}\r\nOrigin: {}\r\nX-CSRF-Token: {csrf}\r\n",
        app.base
    ));
    assert!(head.starts_with("HTTP/1.1 408"), "after {took:?}: {head}");
}

#[test]
fn a_user_page_unlinks_only_that_users_account_and_a_removed_passkey_takes_its_account() {
    let app = TestApp::spawn();
    let ada = app.ok("createUser", json!({ "user": user_fixture() }))["id"].clone();
    let mut other = user_fixture();
    other["email"] = json!("grace@example.com");
    let grace = app.ok("createUser", json!({ "user": other }))["id"].clone();
    let (ada, grace) = (ada.as_str().unwrap(), grace.as_str().unwrap());
    let link = |user: &str, kind: &str, provider: &str, id: &str| {
        app.ok(
            "linkAccount",
            json!({ "account": {
                "userId": user, "type": kind, "provider": provider, "providerAccountId": id,
                "access_token": "at-secret",
            } }),
        );
    };
    link(ada, "oidc", "oidc", "sub/1");
    link(grace, "oauth", "github", "gh-2");
    link(ada, "webauthn", "passkey", "cred-1");
    app.ok(
        "createAuthenticator",
        json!({ "authenticator": {
            "credentialID": "cred-1", "userId": ada, "providerAccountId": "cred-1",
            "credentialPublicKey": "k", "counter": 0, "credentialDeviceType": "singleDevice",
            "credentialBackedUp": false,
        } }),
    );
    let owner = |provider: &str, id: &str| {
        app.ok(
            "getUserByAccount",
            json!({ "provider": provider, "providerAccountId": id }),
        )["id"]
            .as_str()
            .map(str::to_owned)
    };
    let operator = Operator::sign_in(&app);
    let delete = |path: &str| operator.change("DELETE", path, None);

    // The page lists each account with its type, never a token.
    let detail = operator.get(&format!("/api/console/users/{ada}"));
    let accounts: Vec<(&str, &str)> = detail["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["provider"].as_str().unwrap(), a["type"].as_str().unwrap()))
        .collect();
    assert_eq!(accounts, [("oidc", "oidc"), ("passkey", "webauthn")]);
    assert!(!detail.to_string().contains("at-secret"));

    // Someone else's account, or an unknown user, is not found and stays linked.
    let (status, body) = delete(&format!("/api/console/users/{ada}/accounts/github/gh-2"));
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(owner("github", "gh-2").as_deref(), Some(grace));
    let (status, _) = delete("/api/console/users/nobody/accounts/oidc/sub%2F1");
    assert_eq!(status, 404);

    // Unlinking ends it: the provider's account finds no user, once.
    let (status, body) = delete(&format!("/api/console/users/{ada}/accounts/oidc/sub%2F1"));
    assert_eq!((status, &body), (200, &json!({ "unlinked": true })));
    assert_eq!(owner("oidc", "sub/1"), None);
    let (status, _) = delete(&format!("/api/console/users/{ada}/accounts/oidc/sub%2F1"));
    assert_eq!(status, 404);
    let events = app.audit(&["--user", ada]);
    assert_eq!(events[0]["type"], "account.unlinked");
    assert!(events[0]["actor"].as_str().is_some_and(|a| a.len() == 16));

    // A removed passkey takes the account Auth.js linked for it.
    let (status, _) = delete(&format!("/api/console/users/{ada}/passkeys/cred-1"));
    assert_eq!(status, 200);
    assert_eq!(owner("passkey", "cred-1"), None);
    assert!(app
        .ok("getAuthenticator", json!({ "credentialID": "cred-1" }))
        .is_null());
    assert_eq!(owner("github", "gh-2").as_deref(), Some(grace));
}
