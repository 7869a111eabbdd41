//! The adapter endpoints: every method's happy, not-found and malformed
//! paths, and the Auth.js rules of DESIGN.md section 3.

use crate::common;

use common::{code, user_fixture, TestApp};
use serde_json::{json, Value};

fn create_user(app: &TestApp) -> Value {
    app.ok("createUser", json!({ "user": user_fixture() }))
}

fn account_fixture(user_id: &str) -> Value {
    json!({
        "userId": user_id,
        "type": "oauth",
        "provider": "github",
        "providerAccountId": uuid::Uuid::new_v4().to_string(),
        "access_token": "access-token",
        "expires_at": 2592000,
        "id_token": "id-token",
        "refresh_token": "refresh-token",
        "token_type": "bearer",
        "scope": "user",
        "session_state": "state",
    })
}

fn authenticator_fixture(user_id: &str, credential_id: &str) -> Value {
    json!({
        "credentialID": credential_id,
        "userId": user_id,
        "providerAccountId": "provider-account",
        "credentialPublicKey": "cHVibGljLWtleQ==",
        "counter": 1,
        "credentialDeviceType": "singleDevice",
        "credentialBackedUp": false,
        "transports": "usb,ble",
    })
}

fn session(app: &TestApp, user_id: &str, token: &str, expires: &str) -> Value {
    app.ok(
        "createSession",
        json!({ "session": { "sessionToken": token, "userId": user_id, "expires": expires } }),
    )
}

#[test]
fn users_round_trip() {
    let app = TestApp::spawn();
    let fixture = user_fixture();
    let created = app.ok("createUser", json!({ "user": fixture.clone() }));
    assert_eq!(created, fixture);
    let id = fixture["id"].as_str().unwrap();
    assert_eq!(app.ok("getUser", json!({ "id": id })), fixture);
    assert_eq!(app.ok("getUser", json!({ "id": "nobody" })), Value::Null);
    assert_eq!(
        app.ok("getUserByEmail", json!({ "email": "fill@murray.com" })),
        fixture
    );
    assert_eq!(
        app.ok("getUserByEmail", json!({ "email": "non-existent-email" })),
        Value::Null
    );

    let updated = app.ok(
        "updateUser",
        json!({ "user": { "id": id, "name": "Updated Name" } }),
    );
    assert_eq!(updated["name"], "Updated Name");
    assert_eq!(updated["image"], fixture["image"], "absent fields are kept");
    assert_eq!(
        app.ok("getUser", json!({ "id": id }))["name"],
        "Updated Name"
    );
    let cleared = app.ok("updateUser", json!({ "user": { "id": id, "image": null } }));
    assert_eq!(cleared["image"], Value::Null, "null clears a field");

    let (status, body) = app.call(
        "updateUser",
        json!({ "user": { "id": "nobody", "name": "x" } }),
    );
    assert_eq!((status, code(&body)), (404, "not_found"));

    let deleted = app.ok("deleteUser", json!({ "id": id }));
    assert_eq!(deleted["id"], id);
    assert_eq!(app.ok("getUser", json!({ "id": id })), Value::Null);
    assert_eq!(app.ok("deleteUser", json!({ "id": id })), Value::Null);
}

#[test]
fn accounts_round_trip() {
    let app = TestApp::spawn();
    let user = create_user(&app);
    let user_id = user["id"].as_str().unwrap();
    let account = account_fixture(user_id);
    let key = json!({ "provider": "github", "providerAccountId": account["providerAccountId"] });

    assert_eq!(
        app.ok("linkAccount", json!({ "account": account.clone() })),
        account
    );
    assert_eq!(app.ok("getAccount", key.clone()), account);
    assert_eq!(app.ok("getUserByAccount", key.clone()), user);
    let unknown = json!({ "provider": "invalid-provider", "providerAccountId": "invalid" });
    assert_eq!(app.ok("getUserByAccount", unknown.clone()), Value::Null);
    assert_eq!(app.ok("getAccount", unknown.clone()), Value::Null);

    let (status, body) = app.call("linkAccount", json!({ "account": account.clone() }));
    assert_eq!((status, code(&body)), (409, "conflict"));
    let mut orphan = account_fixture("no-such-user");
    orphan["providerAccountId"] = json!("orphan");
    let (status, body) = app.call("linkAccount", json!({ "account": orphan }));
    assert_eq!((status, code(&body)), (404, "not_found"));

    assert_eq!(app.ok("unlinkAccount", key.clone()), account);
    assert_eq!(app.ok("getAccount", key.clone()), Value::Null);
    assert_eq!(app.ok("unlinkAccount", key), Value::Null);
}

#[test]
fn sessions_round_trip() {
    let app = TestApp::spawn();
    let user = create_user(&app);
    let user_id = user["id"].as_str().unwrap();
    let created = session(&app, user_id, "session-token-1", "2030-01-01T00:00:00.123Z");
    assert_eq!(
        created,
        json!({ "sessionToken": "session-token-1", "userId": user_id, "expires": "2030-01-01T00:00:00.123Z" })
    );
    let both = app.ok(
        "getSessionAndUser",
        json!({ "sessionToken": "session-token-1" }),
    );
    assert_eq!(both, json!({ "session": created, "user": user }));
    assert_eq!(
        app.ok(
            "getSessionAndUser",
            json!({ "sessionToken": "invalid-token" })
        ),
        Value::Null
    );

    let (status, body) = app.call(
        "createSession",
        json!({ "session": { "sessionToken": "session-token-1", "userId": user_id, "expires": 0 } }),
    );
    assert_eq!((status, code(&body)), (409, "conflict"));
    let (status, body) = app.call(
        "createSession",
        json!({ "session": { "sessionToken": "t2", "userId": "no-such-user", "expires": 0 } }),
    );
    assert_eq!((status, code(&body)), (404, "not_found"));

    let updated = app.ok(
        "updateSession",
        json!({ "session": { "sessionToken": "session-token-1", "expires": "2031-02-03T04:05:06.789Z" } }),
    );
    assert_eq!(updated["expires"], "2031-02-03T04:05:06.789Z");
    assert_eq!(updated["userId"], user_id);
    let missing = json!({ "session": { "sessionToken": "nope", "expires": 1 } });
    assert_eq!(app.ok("updateSession", missing), Value::Null);

    let deleted = app.ok(
        "deleteSession",
        json!({ "sessionToken": "session-token-1" }),
    );
    assert_eq!(deleted["expires"], "2031-02-03T04:05:06.789Z");
    assert_eq!(
        app.ok(
            "getSessionAndUser",
            json!({ "sessionToken": "session-token-1" })
        ),
        Value::Null
    );
    assert_eq!(
        app.ok(
            "deleteSession",
            json!({ "sessionToken": "session-token-1" })
        ),
        Value::Null
    );
}

#[test]
fn verification_tokens_are_single_use_and_match_identifier_and_token() {
    let app = TestApp::spawn();
    let token = json!({ "identifier": "info@example.com", "token": "hashed", "expires": "2030-01-01T00:15:00.500Z" });
    assert_eq!(
        app.ok(
            "createVerificationToken",
            json!({ "verificationToken": token.clone() })
        ),
        token
    );
    let (status, body) = app.call(
        "createVerificationToken",
        json!({ "verificationToken": token.clone() }),
    );
    assert_eq!((status, code(&body)), (409, "conflict"));

    let wrong_identifier = json!({ "identifier": "other@example.com", "token": "hashed" });
    assert_eq!(
        app.ok("useVerificationToken", wrong_identifier),
        Value::Null
    );
    let wrong_token = json!({ "identifier": "info@example.com", "token": "other" });
    assert_eq!(app.ok("useVerificationToken", wrong_token), Value::Null);

    let both = json!({ "identifier": "info@example.com", "token": "hashed" });
    assert_eq!(app.ok("useVerificationToken", both.clone()), token);
    assert_eq!(
        app.ok("useVerificationToken", both),
        Value::Null,
        "a second use finds nothing"
    );
}

#[test]
fn authenticators_round_trip() {
    let app = TestApp::spawn();
    let user = create_user(&app);
    let user_id = user["id"].as_str().unwrap();
    let first = authenticator_fixture(user_id, "cred/+=1");
    let second = authenticator_fixture(user_id, "cred/+=2");
    assert_eq!(
        app.ok(
            "createAuthenticator",
            json!({ "authenticator": first.clone() })
        ),
        first
    );
    app.ok(
        "createAuthenticator",
        json!({ "authenticator": second.clone() }),
    );
    let (status, body) = app.call(
        "createAuthenticator",
        json!({ "authenticator": first.clone() }),
    );
    assert_eq!((status, code(&body)), (409, "conflict"));
    let (status, body) = app.call(
        "createAuthenticator",
        json!({ "authenticator": authenticator_fixture("ghost", "c3") }),
    );
    assert_eq!((status, code(&body)), (404, "not_found"));

    assert_eq!(
        app.ok("getAuthenticator", json!({ "credentialID": "cred/+=1" })),
        first
    );
    assert_eq!(
        app.ok("getAuthenticator", json!({ "credentialID": "nope" })),
        Value::Null
    );
    assert_eq!(
        app.ok("listAuthenticatorsByUserId", json!({ "userId": user_id })),
        json!([first, second])
    );
    assert_eq!(
        app.ok("listAuthenticatorsByUserId", json!({ "userId": "unknown" })),
        json!([])
    );

    let updated = app.ok(
        "updateAuthenticatorCounter",
        json!({ "credentialID": "cred/+=1", "newCounter": 7 }),
    );
    assert_eq!(updated["counter"], 7);
    assert_eq!(
        app.ok("getAuthenticator", json!({ "credentialID": "cred/+=1" }))["counter"],
        7
    );
    let (status, body) = app.call(
        "updateAuthenticatorCounter",
        json!({ "credentialID": "missing", "newCounter": 7 }),
    );
    assert_eq!((status, code(&body)), (404, "not_found"));
}

#[test]
fn malformed_bodies_are_400_naming_the_field() {
    let app = TestApp::spawn();
    let cases: [(&str, Value, &str); 19] = [
        ("createUser", json!({ "user": 5 }), "user"),
        ("getUser", json!({ "id": 5 }), "id"),
        ("getUserByEmail", json!({}), "email"),
        (
            "getUserByAccount",
            json!({ "provider": "github" }),
            "providerAccountId",
        ),
        ("updateUser", json!({ "user": { "name": "no id" } }), "id"),
        ("deleteUser", json!({}), "id"),
        (
            "linkAccount",
            json!({ "account": { "userId": "u", "type": "oauth", "provider": "x" } }),
            "providerAccountId",
        ),
        (
            "unlinkAccount",
            json!({ "providerAccountId": "1" }),
            "provider",
        ),
        (
            "getAccount",
            json!({ "provider": "github", "providerAccountId": true }),
            "providerAccountId",
        ),
        (
            "createSession",
            json!({ "session": { "sessionToken": "t", "userId": "u", "expires": "soon" } }),
            "session.expires",
        ),
        ("getSessionAndUser", json!({ "token": "t" }), "sessionToken"),
        ("updateSession", json!({ "session": {} }), "sessionToken"),
        (
            "deleteSession",
            json!({ "sessionToken": null }),
            "sessionToken",
        ),
        (
            "createVerificationToken",
            json!({ "verificationToken": { "identifier": "i", "token": "t" } }),
            "expires",
        ),
        (
            "useVerificationToken",
            json!({ "identifier": "i" }),
            "token",
        ),
        (
            "createAuthenticator",
            json!({ "authenticator": { "credentialID": "c" } }),
            "userId",
        ),
        (
            "getAuthenticator",
            json!({ "credentialId": "c" }),
            "credentialID",
        ),
        (
            "listAuthenticatorsByUserId",
            json!({ "userId": [] }),
            "userId",
        ),
        (
            "updateAuthenticatorCounter",
            json!({ "credentialID": "c", "newCounter": -1 }),
            "newCounter",
        ),
    ];
    for (method, body, field) in cases {
        let (status, answer) = app.call(method, body);
        assert_eq!(
            (status, code(&answer)),
            (400, "bad_request"),
            "{method}: {answer}"
        );
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field),
            "{method}: message {message:?} does not name {field}"
        );
    }
    let (status, answer) = app.post("/api/adapter/getUser", "{not json", Some(common::SECRET));
    assert_eq!((status, code(&answer)), (400, "bad_request"));
    let (status, answer) = app.post("/api/adapter/getUser", "", Some(common::SECRET));
    assert_eq!((status, code(&answer)), (400, "bad_request"));
}

#[test]
fn unknown_methods_are_404_listing_the_valid_ones() {
    let app = TestApp::spawn();
    let (status, body) = app.call("getUsers", json!({}));
    assert_eq!((status, code(&body)), (404, "not_found"));
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("getUserByEmail") && message.contains("updateAuthenticatorCounter"));
}

#[test]
fn oversized_bodies_are_413() {
    let app = TestApp::spawn_with(|config| config.max_body_bytes = 1024);
    let big = json!({ "user": { "email": "a@b.c", "name": "x".repeat(2000) } });
    let (status, body) = app.call("createUser", big);
    assert_eq!((status, code(&body)), (413, "payload_too_large"));
}

// --- The Auth.js rules, one test each -------------------------------------

#[test]
fn not_found_is_null_not_missing() {
    let app = TestApp::spawn();
    for (method, body) in [
        ("getUser", json!({ "id": "x" })),
        ("getUserByEmail", json!({ "email": "x@y.z" })),
        (
            "getUserByAccount",
            json!({ "provider": "p", "providerAccountId": "x" }),
        ),
        (
            "getAccount",
            json!({ "provider": "p", "providerAccountId": "x" }),
        ),
        ("getSessionAndUser", json!({ "sessionToken": "x" })),
        ("getAuthenticator", json!({ "credentialID": "x" })),
        ("deleteSession", json!({ "sessionToken": "x" })),
        (
            "unlinkAccount",
            json!({ "provider": "p", "providerAccountId": "x" }),
        ),
        (
            "useVerificationToken",
            json!({ "identifier": "i", "token": "t" }),
        ),
    ] {
        let (status, text) = raw(&app, method, &body);
        assert_eq!((status, text.as_str()), (200, "null"), "{method}");
    }
}

fn raw(app: &TestApp, method: &str, body: &Value) -> (u16, String) {
    let response = ureq::post(&format!("{}/api/adapter/{method}", app.base))
        .set("Authorization", &format!("Bearer {}", common::SECRET))
        .send_string(&body.to_string())
        .unwrap();
    (response.status(), response.into_string().unwrap())
}

#[test]
fn dates_keep_milliseconds_and_accept_epoch_millis() {
    let app = TestApp::spawn();
    let user = app.ok(
        "createUser",
        json!({ "user": { "email": "ms@example.com", "emailVerified": 1795745274123i64 } }),
    );
    assert_eq!(user["emailVerified"], "2026-11-27T02:07:54.123Z");
    let id = user["id"].as_str().unwrap();
    let s = session(&app, id, "ms-token", "2030-06-07T08:09:10.011Z");
    assert_eq!(s["expires"], "2030-06-07T08:09:10.011Z");
    let both = app.ok("getSessionAndUser", json!({ "sessionToken": "ms-token" }));
    assert_eq!(both["session"]["expires"], "2030-06-07T08:09:10.011Z");
    assert_eq!(both["user"]["emailVerified"], "2026-11-27T02:07:54.123Z");
}

#[test]
fn create_user_without_id_generates_one() {
    let app = TestApp::spawn();
    let user = app.ok(
        "createUser",
        json!({ "user": { "email": "webauthn@example.com" } }),
    );
    let id = user["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    assert_eq!(app.ok("getUser", json!({ "id": id })), user);
    assert_eq!(user["emailVerified"], Value::Null);
}

#[test]
fn email_is_normalized_on_write_and_lookup() {
    let app = TestApp::spawn();
    let user = app.ok(
        "createUser",
        json!({ "user": { "email": "  Fill@Murray.COM " } }),
    );
    assert_eq!(user["email"], "fill@murray.com");
    assert_eq!(
        app.ok("getUserByEmail", json!({ "email": "FILL@murray.com  " })),
        user
    );
    let (status, body) = app.call(
        "createUser",
        json!({ "user": { "email": "fill@MURRAY.com" } }),
    );
    assert_eq!((status, code(&body)), (409, "conflict"));
    // Users without an email are allowed, as many as needed.
    app.ok("createUser", json!({ "user": { "name": "no email 1" } }));
    app.ok("createUser", json!({ "user": { "name": "no email 2" } }));
    let other = app.ok(
        "createUser",
        json!({ "user": { "email": "other@example.com" } }),
    );
    let (status, body) = app.call(
        "updateUser",
        json!({ "user": { "id": other["id"], "email": "FILL@murray.com" } }),
    );
    assert_eq!(
        (status, code(&body)),
        (409, "conflict"),
        "updateUser keeps email unique"
    );
}

#[test]
fn extra_fields_round_trip_on_users_and_accounts() {
    let app = TestApp::spawn();
    let user = app.ok(
        "createUser",
        json!({ "user": { "email": "x@example.com", "role": "admin", "phone": "00000000000", "prefs": { "dark": true } } }),
    );
    assert_eq!(user["role"], "admin");
    let id = user["id"].as_str().unwrap();
    let fetched = app.ok("getUser", json!({ "id": id }));
    assert_eq!(fetched["prefs"], json!({ "dark": true }));
    let updated = app.ok(
        "updateUser",
        json!({ "user": { "id": id, "role": "owner" } }),
    );
    assert_eq!(
        (updated["role"].as_str(), updated["phone"].as_str()),
        (Some("owner"), Some("00000000000"))
    );

    let mut account = account_fixture(id);
    account["refresh_token_expires_in"] = json!(604800);
    account["not-before-policy"] = json!(0);
    app.ok("linkAccount", json!({ "account": account.clone() }));
    let key = json!({ "provider": "github", "providerAccountId": account["providerAccountId"] });
    assert_eq!(app.ok("getAccount", key), account);
}

#[test]
fn numeric_provider_account_id_is_stored_as_text() {
    let app = TestApp::spawn();
    let user = create_user(&app);
    let mut account = account_fixture(user["id"].as_str().unwrap());
    account["providerAccountId"] = json!(1234567);
    let linked = app.ok("linkAccount", json!({ "account": account }));
    assert_eq!(linked["providerAccountId"], "1234567");
    assert_eq!(
        app.ok(
            "getUserByAccount",
            json!({ "provider": "github", "providerAccountId": 1234567 })
        ),
        user
    );
    assert_eq!(
        app.ok(
            "getAccount",
            json!({ "provider": "github", "providerAccountId": "1234567" })
        )["providerAccountId"],
        "1234567"
    );
}

#[test]
fn delete_user_cascades_to_sessions_accounts_and_authenticators() {
    let app = TestApp::spawn();
    let user = create_user(&app);
    let id = user["id"].as_str().unwrap();
    session(&app, id, "cascade-token", "2030-01-01T00:00:00.000Z");
    let account = account_fixture(id);
    app.ok("linkAccount", json!({ "account": account.clone() }));
    app.ok(
        "createAuthenticator",
        json!({ "authenticator": authenticator_fixture(id, "cascade-cred") }),
    );

    app.ok("deleteUser", json!({ "id": id }));
    assert_eq!(
        app.ok(
            "getSessionAndUser",
            json!({ "sessionToken": "cascade-token" })
        ),
        Value::Null
    );
    let key = json!({ "provider": "github", "providerAccountId": account["providerAccountId"] });
    assert_eq!(app.ok("getAccount", key), Value::Null);
    assert_eq!(
        app.ok(
            "getAuthenticator",
            json!({ "credentialID": "cascade-cred" })
        ),
        Value::Null
    );
    for table in ["sessions", "accounts", "authenticators"] {
        let rows = app.count(&format!("SELECT count(*) FROM {table}"));
        assert_eq!(rows, 0, "{table} still has rows");
    }
}

#[test]
fn get_session_and_user_is_null_once_the_user_is_gone() {
    let app = TestApp::spawn();
    let user = create_user(&app);
    let id = user["id"].as_str().unwrap();
    session(&app, id, "orphaned", "2030-01-01T00:00:00.000Z");
    app.ok("deleteUser", json!({ "id": id }));
    assert_eq!(
        app.ok("getSessionAndUser", json!({ "sessionToken": "orphaned" })),
        Value::Null
    );
}

#[test]
fn update_authenticator_counter_on_a_missing_credential_is_404() {
    let app = TestApp::spawn();
    let (status, body) = app.call(
        "updateAuthenticatorCounter",
        json!({ "credentialID": "gone", "newCounter": 3 }),
    );
    assert_eq!((status, code(&body)), (404, "not_found"));
}

#[test]
fn list_authenticators_for_an_unknown_user_is_empty() {
    let app = TestApp::spawn();
    assert_eq!(
        app.ok("listAuthenticatorsByUserId", json!({ "userId": "nobody" })),
        json!([])
    );
}

// --- Concurrency, storage, lifecycle ---------------------------------------

#[test]
fn concurrent_create_user_with_one_email_makes_one_row() {
    let app = TestApp::spawn();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..32)
            .map(|i| {
                let app = &app;
                scope.spawn(move || {
                    app.call("createUser", json!({ "user": { "email": "race@example.com", "name": format!("racer {i}") } }))
                })
            })
            .collect();
        calls
            .into_iter()
            .map(|call| {
                let (status, body) = call.join().unwrap();
                if status != 200 {
                    assert_eq!(code(&body), "conflict");
                }
                status
            })
            .collect()
    });
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 1);
    assert_eq!(statuses.iter().filter(|&&s| s == 409).count(), 31);
    let rows = app.count("SELECT count(*) FROM users WHERE email = 'race@example.com'");
    assert_eq!(rows, 1);
}

#[test]
fn the_database_holds_no_plaintext_session_token() {
    let app = TestApp::spawn();
    let user = create_user(&app);
    let token = "plaintext-session-token-7f3a9c";
    session(
        &app,
        user["id"].as_str().unwrap(),
        token,
        "2030-01-01T00:00:00.000Z",
    );
    let stored = app.bytes("SELECT token_hash FROM sessions");
    assert_eq!(stored, openssl::sha::sha256(token.as_bytes()).to_vec());
    let (dir, config) = app.stop();
    // SQLite: every file beside the database; PostgreSQL: every row as text.
    let everything = common::stored_bytes(&config, dir.path());
    assert!(!everything.is_empty());
    assert!(
        !everything
            .windows(token.len())
            .any(|w| w == token.as_bytes()),
        "the database holds the plaintext token"
    );
}

#[test]
fn expired_rows_are_purged_by_the_job() {
    let app = TestApp::spawn_with(|config| config.purge_interval_secs = 1);
    let user = create_user(&app);
    let id = user["id"].as_str().unwrap();
    session(&app, id, "expired", "2020-01-01T00:00:00.000Z");
    session(&app, id, "live", "2099-01-01T00:00:00.000Z");
    let vt = |token: &str, expires: &str| json!({ "verificationToken": { "identifier": "i@example.com", "token": token, "expires": expires } });
    app.ok(
        "createVerificationToken",
        vt("old", "2020-01-01T00:00:00.000Z"),
    );
    app.ok(
        "createVerificationToken",
        vt("new", "2099-01-01T00:00:00.000Z"),
    );

    let count = |sql: &str| app.count(sql);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count("SELECT count(*) FROM sessions") + count("SELECT count(*) FROM verification_tokens")
        > 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the purge job did not run"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        app.ok("getSessionAndUser", json!({ "sessionToken": "live" }))["user"],
        user
    );
    assert_eq!(
        app.ok("getSessionAndUser", json!({ "sessionToken": "expired" })),
        Value::Null
    );
    let new = json!({ "identifier": "i@example.com", "token": "new" });
    assert_eq!(app.ok("useVerificationToken", new)["token"], "new");
}

#[test]
fn a_restart_keeps_every_row() {
    let app = TestApp::spawn();
    let user = create_user(&app);
    let id = user["id"].as_str().unwrap().to_owned();
    let s = session(&app, &id, "restart-token", "2030-01-01T00:00:00.001Z");
    let account = account_fixture(&id);
    app.ok("linkAccount", json!({ "account": account.clone() }));
    let authenticator = authenticator_fixture(&id, "restart-cred");
    app.ok(
        "createAuthenticator",
        json!({ "authenticator": authenticator.clone() }),
    );
    let vt = json!({ "identifier": "r@example.com", "token": "t", "expires": "2030-01-01T00:00:00.002Z" });
    app.ok(
        "createVerificationToken",
        json!({ "verificationToken": vt.clone() }),
    );
    let jwks_before = app.get("/.well-known/jwks.json").1.into_string().unwrap();
    let (dir, config) = app.stop();

    let app = TestApp::start(
        dir,
        config,
        std::sync::Arc::new(authstore::clock::SystemClock),
    );
    assert_eq!(
        app.ok(
            "getSessionAndUser",
            json!({ "sessionToken": "restart-token" })
        ),
        json!({ "session": s, "user": user })
    );
    let key = json!({ "provider": "github", "providerAccountId": account["providerAccountId"] });
    assert_eq!(app.ok("getAccount", key), account);
    assert_eq!(
        app.ok(
            "getAuthenticator",
            json!({ "credentialID": "restart-cred" })
        ),
        authenticator
    );
    assert_eq!(
        app.ok(
            "useVerificationToken",
            json!({ "identifier": "r@example.com", "token": "t" })
        ),
        vt
    );
    let jwks_after = app.get("/.well-known/jwks.json").1.into_string().unwrap();
    assert_eq!(
        jwks_before, jwks_after,
        "the signing key survives a restart"
    );
}

#[test]
fn a_database_from_a_newer_version_is_refused() {
    if let Some(cluster) = common::postgres_cluster() {
        let app = TestApp::spawn();
        let (_, config) = app.stop();
        let url = config.postgres_url().unwrap().to_owned();
        common::postgres_client(&url)
            .batch_execute("UPDATE meta SET schema_version = 99")
            .unwrap();
        let err = actix_web::rt::System::new()
            .block_on(authstore::open_store(&config, false))
            .err()
            .expect("a newer schema must be refused");
        assert!(err.to_string().contains("newer authstore"), "{err}");
        assert!(cluster.starts_with("postgres"));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("authstore.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let config = authstore::Config {
        database: path,
        ..authstore::Config::default()
    };
    let err = actix_web::rt::System::new()
        .block_on(authstore::open_store(&config, false))
        .err()
        .expect("a newer schema must be refused");
    assert!(err.to_string().contains("newer authstore"), "{err}");
}

#[test]
fn the_first_purge_runs_soon_after_start_and_clears_more_than_a_batch() {
    // The default interval (300 s); batches of 10 rows; 25 expired sessions.
    let app = TestApp::spawn_with(|config| config.purge_batch = 10);
    let started = std::time::Instant::now();
    let user = create_user(&app);
    let id = user["id"].as_str().unwrap();
    for n in 0..25 {
        session(&app, id, &format!("old-{n}"), "2020-01-01T00:00:00.000Z");
    }
    session(&app, id, "live", "2099-01-01T00:00:00.000Z");
    let sessions = || app.count("SELECT count(*) FROM sessions");
    while sessions() > 1 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "no purge within 10 s of start ({} sessions left)",
            sessions()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        app.ok("getSessionAndUser", json!({ "sessionToken": "live" }))["user"],
        user
    );
}

#[test]
fn an_import_writes_every_row_or_none_on_either_backend() {
    let app = TestApp::spawn();
    let export = app.dir.path().join("export");
    let write = |table: &str, rows: &[Value]| {
        std::fs::create_dir_all(export.join(table)).unwrap();
        let lines: Vec<String> = rows.iter().map(Value::to_string).collect();
        std::fs::write(
            export.join(table).join("documents.jsonl"),
            lines.join("\n") + "\n",
        )
        .unwrap();
    };
    write(
        "users",
        &[
            json!({"_id": "imp-1", "email": "imp1@example.com"}),
            json!({"_id": "imp-2", "email": "imp2@example.com"}),
        ],
    );
    write(
        "sessions",
        &[
            json!({"_id": "s1", "userId": "imp-1", "sessionToken": "imp-session", "expires": 4.0709088e12}),
            // The last row names a user that is nowhere: found only as it is written.
            json!({"_id": "s2", "userId": "nobody", "sessionToken": "imp-orphan", "expires": 4.0709088e12}),
        ],
    );
    let path = export.to_str().unwrap().to_owned();
    let (ok, out, err) = app.cli(&["import", "convex", &path]);
    assert!(!ok, "{out}");
    assert!(err.contains("sessions/documents.jsonl, line 2"), "{err}");
    assert_eq!(
        app.count("SELECT count(*) FROM users"),
        0,
        "nothing was written"
    );

    // Fixed, it loads whole; run again, it finds every row there.
    write(
        "sessions",
        &[
            json!({"_id": "s1", "userId": "imp-1", "sessionToken": "imp-session", "expires": 4.0709088e12}),
        ],
    );
    let (ok, out, err) = app.cli(&["import", "convex", &path]);
    assert!(ok, "{out}{err}");
    assert_eq!(app.count("SELECT count(*) FROM users"), 2);
    let found = app.ok(
        "getSessionAndUser",
        json!({ "sessionToken": "imp-session" }),
    );
    assert_eq!(found["user"]["id"], "imp-1");
    let (ok, out, err) = app.cli(&["import", "convex", &path]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("already there"), "{out}");
    assert_eq!(app.count("SELECT count(*) FROM sessions"), 1);
}
