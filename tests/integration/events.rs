//! Events: every change that ends access leaves one, written with the change,
//! and `authstore audit` lists them.

use crate::common;

use common::TestApp;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn user_with_session(app: &TestApp, email: &str, token: &str, expires: &str) -> String {
    let user = app.ok("createUser", json!({ "user": { "email": email } }));
    app.ok(
        "createSession",
        json!({ "session": { "sessionToken": token, "userId": user["id"], "expires": expires } }),
    );
    user["id"].as_str().unwrap().to_owned()
}

#[test]
fn sign_out_user_deletion_and_unlinking_each_leave_one_event() {
    let app = TestApp::spawn();
    let far = "2099-01-01T00:00:00.000Z";
    let ada = user_with_session(&app, "ada@example.com", "ada-session", far);
    let sid = app.sid_of("ada-session");
    app.ok("deleteSession", json!({ "sessionToken": "ada-session" }));
    // Deleting a session that is already gone changes nothing, and says nothing.
    app.ok("deleteSession", json!({ "sessionToken": "ada-session" }));

    app.ok(
        "linkAccount",
        json!({ "account": { "userId": ada, "type": "oauth", "provider": "github",
                             "providerAccountId": "ada-gh", "access_token": "gho_secret" } }),
    );
    app.ok(
        "unlinkAccount",
        json!({ "provider": "github", "providerAccountId": "ada-gh" }),
    );
    let bob = user_with_session(&app, "bob@example.com", "bob-session", far);
    app.ok("deleteUser", json!({ "id": bob }));

    let events = app.audit(&[]);
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["user.deleted", "account.unlinked", "session.deleted"],
        "newest first: {events:?}"
    );
    let deleted = &events[2];
    assert_eq!(deleted["userId"], ada.as_str());
    assert_eq!(
        deleted["sid"], sid,
        "the event names the session as its tokens do"
    );
    assert!(deleted["actor"].is_null(), "the app, not an operator");
    let detail: Value = serde_json::from_str(events[1]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(
        detail,
        json!({ "provider": "github", "providerAccountId": "ada-gh" })
    );
    assert_eq!(events[0]["userId"], bob.as_str());
    let ids: std::collections::HashSet<&str> =
        events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "every event has its own id");
    // No token or secret in the log: the session token, the OAuth token.
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains("ada-session") && !text.contains("gho_secret"));

    // Filters.
    assert_eq!(app.audit(&["--type", "user.deleted"]).len(), 1);
    assert_eq!(app.audit(&["--user", &ada]).len(), 2);
    assert_eq!(app.audit(&["--limit", "1"]).len(), 1);
    assert_eq!(app.audit(&["--since", "2099-01-01T00:00:00Z"]).len(), 0);
    let (ok, _, stderr) = app.cli(&["audit", "--type", "session.lost"]);
    assert!(!ok && stderr.contains("session.deleted"), "{stderr}");
    let (ok, _, stderr) = app.cli(&["audit", "--since", "yesterday"]);
    assert!(!ok && stderr.contains("ISO 8601"), "{stderr}");
}

#[test]
fn the_purge_leaves_an_event_for_each_expired_session() {
    let app = TestApp::spawn_with(|config| config.purge_interval_secs = 1);
    let past = "2020-01-01T00:00:00.000Z";
    let ada = user_with_session(&app, "ada@example.com", "old-1", past);
    app.ok(
        "createSession",
        json!({ "session": { "sessionToken": "old-2", "userId": ada, "expires": past } }),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let expired = loop {
        let events = app.audit(&["--type", "session.expired"]);
        if events.len() == 2 {
            break events;
        }
        assert!(
            Instant::now() < deadline,
            "the purge left no events: {events:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(expired.iter().all(|e| e["userId"] == ada.as_str()));
    // The sid is the one the session's tokens would carry (session_id of its digest).
    let digest = openssl::sha::sha256(b"old-1");
    let sid = authstore::store::session_id(&digest);
    assert!(
        expired.iter().any(|e| e["sid"] == sid.as_str()),
        "{expired:?}"
    );
    assert_eq!(app.count("SELECT count(*) FROM sessions"), 0);
}

/// The same changes, made on SQLite and on PostgreSQL: the events each
/// recorded, field by field (ids and times aside). The policy (which change
/// writes which event, its detail, the sid) is one, whatever the backend.
#[test]
fn both_backends_record_the_same_events_for_the_same_changes() {
    if common::postgres_cluster().is_none() {
        return; // needs both backends: run with TEST_POSTGRES_URL
    }
    let sqlite_dir = tempfile::tempdir().unwrap();
    let fast_purge = |config: &mut authstore::Config| config.purge_interval_secs = 1;
    let postgres = TestApp::spawn_with(fast_purge);
    let sqlite = TestApp::spawn_with(|config| {
        fast_purge(config);
        config.database = sqlite_dir.path().join("authstore.db");
        config.key_encryption_key = None;
    });
    assert!(common::on_postgres() && sqlite.config.postgres_url().is_none());

    let far = "2099-01-01T00:00:00.000Z";
    let recorded = |app: &TestApp| -> Vec<Value> {
        for id in ["same-ada", "same-bob"] {
            app.ok(
                "createUser",
                json!({ "user": { "id": id, "email": format!("{id}@example.com") } }),
            );
        }
        for (token, user, expires) in [
            ("same~1", "same-ada", far),
            ("same~2", "same-ada", far),
            ("same~3", "same-bob", far),
            ("same~old", "same-ada", "2020-01-01T00:00:00.000Z"),
        ] {
            app.ok(
                "createSession",
                json!({ "session": { "sessionToken": token, "userId": user, "expires": expires } }),
            );
        }
        app.ok("deleteSession", json!({ "sessionToken": "same~1" }));
        app.ok(
            "linkAccount",
            json!({ "account": { "userId": "same-ada", "type": "oauth", "provider": "github",
                                 "providerAccountId": "77", "access_token": "t" } }),
        );
        app.ok(
            "unlinkAccount",
            json!({ "provider": "github", "providerAccountId": "77" }),
        );
        app.ok("deleteUser", json!({ "id": "same-bob" }));
        // And the purge's: the expired session.
        let deadline = Instant::now() + Duration::from_secs(20);
        while app.audit(&["--type", "session.expired"]).is_empty() {
            assert!(Instant::now() < deadline, "no purge within 20 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        // An operator signs ada out everywhere from the console.
        let (set_cookie, csrf) = app.open_console();
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        let revoked = ureq::delete(&format!("{}/api/console/users/same-ada/sessions", app.base))
            .set("Cookie", &cookie)
            .set("Origin", &app.base)
            .set("X-CSRF-Token", &csrf)
            .call()
            .unwrap();
        assert_eq!(revoked.status(), 200);
        app.audit(&[])
            .into_iter()
            .map(|mut event| {
                let object = event.as_object_mut().unwrap();
                for varies in ["id", "at", "seq"] {
                    object.remove(varies);
                }
                // An operator's console session differs; that there is one does not.
                if object.get("actor").is_some_and(|actor| !actor.is_null()) {
                    object.insert("actor".into(), json!("a console session"));
                }
                // Each request has a trace of its own; that there is one does not differ.
                if object.get("traceId").is_some_and(Value::is_string) {
                    object.insert("traceId".into(), json!("a request's trace"));
                }
                if let Some(Value::String(detail)) = object.get("detail").cloned() {
                    object.insert("detail".into(), serde_json::from_str(&detail).unwrap());
                }
                event
            })
            .collect()
    };
    let mut on_sqlite = recorded(&sqlite);
    let mut on_postgres = recorded(&postgres);
    // The purge runs on its own schedule: compare as sets in a stable order.
    let key = |e: &Value| e.to_string();
    on_sqlite.sort_by_key(key);
    on_postgres.sort_by_key(key);
    assert_eq!(on_sqlite.len(), 5, "{on_sqlite:#?}");
    assert_eq!(on_sqlite, on_postgres);
}
