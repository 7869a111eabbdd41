//! A person's own sessions (`/api/sessions/*`) over HTTP: where each came
//! from, listing, ending one or all the others, and bad input answered as
//! the rest of the contract answers it. On PostgreSQL too.

use crate::common;

use common::{code, TestApp, SECRET};
use serde_json::{json, Value};

const FAR: &str = "2099-01-01T00:00:00.000Z";

fn user(app: &TestApp, email: &str) -> String {
    let user = app.ok("createUser", json!({ "user": { "email": email } }));
    user["id"].as_str().unwrap().to_owned()
}

fn session(app: &TestApp, user_id: &str, token: &str, context: Option<Value>) {
    let mut body =
        json!({ "session": { "sessionToken": token, "userId": user_id, "expires": FAR } });
    if let Some(context) = context {
        body["context"] = context;
    }
    app.ok("createSession", body);
}

fn sessions_call(app: &TestApp, route: &str, body: Value) -> (u16, Value) {
    app.post(
        &format!("/api/sessions/{route}"),
        &body.to_string(),
        Some(SECRET),
    )
}

fn list(app: &TestApp, user_id: &str) -> Vec<Value> {
    let (status, body) = sessions_call(app, "list", json!({ "userId": user_id }));
    assert_eq!(status, 200, "{body}");
    body["sessions"].as_array().unwrap().clone()
}

#[test]
fn a_person_sees_their_live_sessions_newest_first_with_device_and_network() {
    use authstore::clock::{Clock, ManualClock, SystemClock};
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let config = common::test_config(&dir);
    // Each session a second after the last, by the server's clock.
    let clock = std::sync::Arc::new(ManualClock::new(SystemClock.now()));
    let app = TestApp::start(dir, config, clock.clone());
    let ada = user(&app, "ada@example.com");
    let grace = user(&app, "grace@example.com");
    session(&app, &ada, "ada-old", None);
    clock.advance_secs(1);
    session(
        &app,
        &ada,
        "ada-laptop",
        Some(
            json!({ "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0", "ip": "203.0.113.77" }),
        ),
    );
    clock.advance_secs(1);
    session(
        &app,
        &ada,
        "ada-phone",
        Some(json!({ "userAgent": "Mozilla/5.0 (iPhone) Safari/605", "ip": "2001:db8:1:2::5" })),
    );
    session(&app, &grace, "grace-1", None);
    app.ok(
        "createSession",
        json!({ "session": { "sessionToken": "ada-expired", "userId": ada, "expires": "2020-01-01T00:00:00.000Z" } }),
    );

    let listed = list(&app, &ada);
    let sids: Vec<&str> = listed.iter().map(|s| s["sid"].as_str().unwrap()).collect();
    assert_eq!(
        sids,
        [
            app.sid_of("ada-phone"),
            app.sid_of("ada-laptop"),
            app.sid_of("ada-old")
        ],
        "newest first, live only: {listed:#?}"
    );
    let phone = &listed[0];
    assert_eq!(phone["userAgent"], "Mozilla/5.0 (iPhone) Safari/605");
    assert_eq!(phone["ip"], "2001:db8:1::/48", "the network, not the host");
    assert_eq!(listed[1]["ip"], "203.0.113.0/24");
    assert_eq!(phone["expires"], FAR);
    assert!(phone["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(phone["lastSeenAt"], phone["createdAt"]);
    assert!(listed[2]["userAgent"].is_null() && listed[2]["ip"].is_null());
    // Nothing of the token itself.
    assert!(!serde_json::to_string(&listed)
        .unwrap()
        .contains("ada-phone"));

    // An unknown user has none.
    assert_eq!(list(&app, "nobody"), Vec::<Value>::new());
}

#[test]
fn the_whole_address_or_none_as_session_ip_says() {
    for (keep, expected) in [
        (authstore::model::SessionIp::Full, json!("198.51.100.23")),
        (authstore::model::SessionIp::Off, Value::Null),
    ] {
        let app = TestApp::spawn_with(|config| config.session_ip = keep);
        let ada = user(&app, "ada@example.com");
        session(&app, &ada, "s", Some(json!({ "ip": "198.51.100.23" })));
        assert_eq!(list(&app, &ada)[0]["ip"], expected, "{keep:?}");
    }
}

#[test]
fn revoking_ends_one_session_of_that_user_only_with_a_sign_out_event() {
    let app = TestApp::spawn();
    let ada = user(&app, "ada@example.com");
    let grace = user(&app, "grace@example.com");
    session(&app, &ada, "ada-1", None);
    session(&app, &ada, "ada-2", None);
    session(&app, &grace, "grace-1", None);

    // Someone else's sid, and a sid of nothing: nothing ends.
    let grace_sid = app.sid_of("grace-1");
    for sid in [grace_sid.as_str(), "not-a-sid"] {
        let (status, body) = sessions_call(&app, "revoke", json!({ "userId": ada, "sid": sid }));
        assert_eq!((status, &body), (200, &json!({ "revoked": 0 })));
    }
    assert_eq!(list(&app, &grace).len(), 1);

    let sid = app.sid_of("ada-2");
    let (status, body) = sessions_call(&app, "revoke", json!({ "userId": ada, "sid": sid }));
    assert_eq!((status, &body), (200, &json!({ "revoked": 1 })));
    let (_, again) = sessions_call(&app, "revoke", json!({ "userId": ada, "sid": sid }));
    assert_eq!(again, json!({ "revoked": 0 }));
    assert_eq!(list(&app, &ada).len(), 1);
    let found = app
        .call("getSessionAndUser", json!({ "sessionToken": "ada-2" }))
        .1;
    assert!(
        found.is_null(),
        "the revoked session no longer finds its user"
    );

    // The event a sign-out writes (so it reaches Convex), the app as its actor.
    let events = app.audit(&["--type", "session.deleted"]);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["sid"], sid.as_str());
    assert_eq!(events[0]["userId"], ada.as_str());
    assert!(events[0]["actor"].is_null());
}

#[test]
fn revoking_the_others_keeps_the_callers_session_only() {
    let app = TestApp::spawn();
    let ada = user(&app, "ada@example.com");
    let grace = user(&app, "grace@example.com");
    for token in ["ada-here", "ada-phone", "ada-tablet"] {
        session(&app, &ada, token, None);
    }
    session(&app, &grace, "grace-1", None);

    let (status, body) = sessions_call(&app, "revokeOthers", json!({ "sessionToken": "ada-here" }));
    assert_eq!((status, &body), (200, &json!({ "revoked": 2 })));
    let left: Vec<String> = list(&app, &ada)
        .iter()
        .map(|s| s["sid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left, [app.sid_of("ada-here")]);
    assert_eq!(list(&app, &grace).len(), 1, "another user's sessions stay");
    let events = app.audit(&["--type", "session.deleted"]);
    assert_eq!(events.len(), 2, "one per ended session: {events:?}");

    // A token of an ended session (or of none) ends nothing.
    app.ok("deleteSession", json!({ "sessionToken": "ada-here" }));
    for token in ["ada-here", "never-was"] {
        let (status, body) = sessions_call(&app, "revokeOthers", json!({ "sessionToken": token }));
        assert_eq!((status, &body), (200, &json!({ "revoked": 0 })));
    }
}

#[test]
fn bad_input_is_refused_as_the_contract_refuses_it() {
    let app = TestApp::spawn();
    let ada = user(&app, "ada@example.com");
    for (route, body) in [
        ("list", json!({})),
        ("list", json!({ "userId": 7 })),
        ("list", json!({ "userId": ada, "extra": true })),
        ("revoke", json!({ "userId": ada })),
        ("revoke", json!({ "userId": ada, "sid": "" })),
        ("revokeOthers", json!({ "token": "x" })),
    ] {
        let (status, answer) = sessions_call(&app, route, body.clone());
        assert_eq!(
            (status, code(&answer)),
            (400, "bad_request"),
            "{route} {body}: {answer}"
        );
    }
    // Behind the secret like the adapter.
    let (status, _) = app.post(
        "/api/sessions/list",
        &json!({ "userId": ada }).to_string(),
        None,
    );
    assert_eq!(status, 401);
    // A context address that is not one.
    let (status, answer) = app.call(
        "createSession",
        json!({ "session": { "sessionToken": "t", "userId": ada, "expires": FAR },
                "context": { "ip": "somewhere" } }),
    );
    assert_eq!((status, code(&answer)), (400, "bad_request"));
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("context.ip"));
}

#[test]
fn last_seen_moves_on_use_at_most_once_a_minute() {
    use authstore::clock::{Clock, ManualClock, SystemClock};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = common::test_config(&dir);
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = TestApp::start(dir, config, clock.clone());
    let ada = user(&app, "ada@example.com");
    session(&app, &ada, "ada-1", None);
    let created = list(&app, &ada)[0]["createdAt"]
        .as_str()
        .unwrap()
        .to_owned();

    let last_seen = |app: &TestApp| {
        list(app, &ada)[0]["lastSeenAt"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let wait_for = |app: &TestApp, expected: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while last_seen(app) != expected {
            assert!(
                Instant::now() < deadline,
                "lastSeenAt stayed {}",
                last_seen(app)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // Two minutes on, the session is used: written within a second or so.
    clock.advance_secs(120);
    let used_at = clock.now().to_iso();
    for _ in 0..3 {
        app.ok("getSessionAndUser", json!({ "sessionToken": "ada-1" }));
    }
    wait_for(&app, &used_at);
    assert_ne!(used_at, created);

    // Used again within the minute: nothing noted. A second session, unused
    // for a minute, is used after it: once its time is written, any note of
    // the first (taken no later) has been written too.
    session(&app, &ada, "ada-2", None);
    clock.advance_secs(30);
    app.ok("getSessionAndUser", json!({ "sessionToken": "ada-1" }));
    app.ok(
        "updateSession",
        json!({ "session": { "sessionToken": "ada-1", "expires": FAR } }),
    );
    clock.advance_secs(31);
    let barrier_at = clock.now().to_iso();
    app.ok("getSessionAndUser", json!({ "sessionToken": "ada-2" }));
    let deadline = Instant::now() + Duration::from_secs(10);
    let seen_of = |app: &TestApp, sid: &str| {
        list(app, &ada)
            .into_iter()
            .find(|s| s["sid"] == sid)
            .map(|s| s["lastSeenAt"].as_str().unwrap().to_owned())
    };
    let barrier = app.sid_of("ada-2");
    while seen_of(&app, &barrier).as_deref() != Some(barrier_at.as_str()) {
        assert!(
            Instant::now() < deadline,
            "the barrier session's use was not written"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let first = app.sid_of("ada-1");
    assert_eq!(
        seen_of(&app, &first).as_deref(),
        Some(used_at.as_str()),
        "at most once a minute"
    );
}
