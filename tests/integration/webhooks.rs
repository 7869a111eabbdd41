//! Webhooks: every event reaches each configured endpoint, signed, in order,
//! through restarts, a receiver that is down, and more than one server.

use crate::common;

use authstore::config::Webhook;
use authstore::secret::Secret;
use common::TestApp;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const HOOK_SECRET: &str = "whsec-test-0123456789abcdef0123456789abcdef";
const FAR: &str = "2099-01-01T00:00:00.000Z";

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    signature: String,
    /// The `traceparent` header, if any.
    traceparent: Option<String>,
    body: String,
    at: Instant,
    /// The status the receiver answered.
    status: u16,
}

/// A webhook receiver on 127.0.0.1 that records what it is sent, and can be
/// taken down (its port closed: connections are refused) and brought back.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    up: Arc<AtomicBool>,
    /// Statuses to answer before it answers 200, first to last.
    refusals: Arc<Mutex<std::collections::VecDeque<u16>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let receiver = Receiver {
            port,
            got: Arc::default(),
            up: Arc::new(AtomicBool::new(false)),
            refusals: Arc::default(),
        };
        receiver.serve(listener);
        receiver
    }

    /// A receiver whose port is reserved but closed.
    fn down() -> Receiver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Receiver {
            port,
            got: Arc::default(),
            up: Arc::new(AtomicBool::new(false)),
            refusals: Arc::default(),
        }
    }

    fn bring_up(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        self.up.store(true, Ordering::SeqCst);
        let (got, up, refusals) = (self.got.clone(), self.up.clone(), self.refusals.clone());
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            // Polls so that `take_down` closes the port promptly.
            while up.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        let status = refusals.lock().unwrap().pop_front().unwrap_or(200);
                        if let Some(received) = read_request(stream, status) {
                            got.lock().unwrap().push(received);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/authstore/events", self.port)
    }

    fn requests(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Every event accepted (answered 200), in arrival order.
    fn events(&self) -> Vec<Value> {
        self.requests()
            .iter()
            .filter(|r| r.status == 200)
            .flat_map(|r| {
                serde_json::from_str::<Value>(&r.body).unwrap()["events"]
                    .as_array()
                    .unwrap()
                    .clone()
            })
            .collect()
    }

    /// Waits until `n` events have arrived.
    fn wait_for(&self, n: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let events = self.events();
            if events.len() >= n {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} events arrived within {within:?}: {events:?}",
                events.len()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Reads one HTTP/1.1 request and answers `status` (a 3xx with a
/// `Location` to follow).
fn read_request(stream: TcpStream, status: u16) -> Option<Received> {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let (mut length, mut signature, mut traceparent) = (0usize, String::new(), None);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    assert!(line.starts_with("POST /authstore/events "), "{line}");
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "authstore-signature" => signature = value.trim().to_owned(),
            "traceparent" => traceparent = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let mut stream = reader.into_inner();
    let location = match status {
        300..=399 => "Location: https://127.0.0.1:1/authstore/events\r\n",
        _ => "",
    };
    stream
        .write_all(
            format!(
                "HTTP/1.1 {status} Answered\r\n{location}Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .ok()?;
    Some(Received {
        signature,
        traceparent,
        body: String::from_utf8(body).ok()?,
        at: Instant::now(),
        status,
    })
}

/// Checks `t=...,v1=...` as a receiver must: HMAC-SHA256 over "t.body" with
/// the shared secret, and a timestamp within five minutes.
fn assert_signed(received: &Received) {
    let (t, v1) = received
        .signature
        .split_once(',')
        .and_then(|(t, v1)| Some((t.strip_prefix("t=")?, v1.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("malformed signature {:?}", received.signature));
    let t: i64 = t.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - t).abs() < 300, "stale timestamp {t}");
    let key = openssl::pkey::PKey::hmac(HOOK_SECRET.as_bytes()).unwrap();
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
    signer
        .update(format!("{t}.{}", received.body).as_bytes())
        .unwrap();
    let expected: String = signer
        .sign_to_vec()
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, expected, "bad signature");
}

fn webhook(url: &str, retry_max_secs: u64) -> Webhook {
    Webhook {
        url: url.to_owned(),
        secret: Some(Secret::new(HOOK_SECRET).unwrap()),
        secret_file: None,
        events: Vec::new(),
        retry_max_secs,
    }
}

fn user_with_sessions(app: &TestApp, email: &str, tokens: &[&str]) -> String {
    let user = app.ok("createUser", json!({ "user": { "email": email } }));
    for token in tokens {
        app.ok(
            "createSession",
            json!({ "session": { "sessionToken": token, "userId": user["id"], "expires": FAR } }),
        );
    }
    user["id"].as_str().unwrap().to_owned()
}

/// The ids of the audit log's events, oldest first.
fn audit_ids(app: &TestApp) -> Vec<String> {
    let mut ids: Vec<String> = app
        .audit(&[])
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    ids.reverse();
    ids
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_ending_of_access_reaches_the_endpoint_signed_in_order() {
    let receiver = Receiver::start();
    let app = TestApp::spawn_with(|c| c.webhooks = vec![webhook(&receiver.url(), 5)]);
    let ada = user_with_sessions(&app, "ada@example.com", &["ada~1", "ada~2", "ada~3"]);
    let grace = user_with_sessions(&app, "grace@example.com", &["grace~1"]);
    let sid = app.sid_of("ada~1");

    let signed_out = Instant::now();
    app.ok("deleteSession", json!({ "sessionToken": "ada~1" }));
    let first = receiver.wait_for(1, Duration::from_secs(5));
    let latency = receiver.requests()[0].at - signed_out;
    eprintln!("sign-out to delivery: {latency:?}");
    assert_eq!(first[0]["type"], "session.deleted");
    assert_eq!(first[0]["sid"], sid.as_str());
    assert_eq!(first[0]["userId"], ada.as_str());
    let at = first[0]["at"].as_i64().unwrap();
    // The default token lifetime: no token of the session outlives this.
    assert_eq!(first[0]["expiresAt"].as_i64().unwrap(), at + 300_000);

    app.ok(
        "linkAccount",
        json!({ "account": { "userId": ada, "type": "oauth", "provider": "github",
                             "providerAccountId": "77" } }),
    );
    app.ok(
        "unlinkAccount",
        json!({ "provider": "github", "providerAccountId": "77" }),
    );
    app.ok("deleteSession", json!({ "sessionToken": "ada~2" }));
    app.ok("deleteUser", json!({ "id": grace }));
    app.ok("deleteSession", json!({ "sessionToken": "ada~3" }));

    let events = receiver.wait_for(5, Duration::from_secs(10));
    // Each exactly once, in the order they were written.
    assert_eq!(ids(&events), audit_ids(&app));
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "session.deleted",
            "account.unlinked",
            "session.deleted",
            "user.deleted",
            "session.deleted"
        ]
    );
    assert_eq!(events[1]["detail"]["provider"], "github");
    assert_eq!(events[3]["userId"], grace.as_str());
    for request in receiver.requests() {
        assert_signed(&request);
        let body: Value = serde_json::from_str(&request.body).unwrap();
        assert_eq!(body["delivery"].as_str().unwrap().len(), 36);
        // No session token travels ('~' is in each of them, and in nothing
        // else that could be sent: ids, sids and times are hex, base64url, digits).
        assert!(!request.body.contains('~'), "{}", request.body);
    }
    // Nothing more is sent once all is delivered.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(receiver.events().len(), 5);
}

#[test]
fn revoking_all_of_a_users_sessions_names_each_sid() {
    let receiver = Receiver::start();
    let app = TestApp::spawn_with(|c| c.webhooks = vec![webhook(&receiver.url(), 5)]);
    let ada = user_with_sessions(&app, "ada@example.com", &["ada-1", "ada-2"]);
    let mut sids = vec![app.sid_of("ada-1"), app.sid_of("ada-2")];
    sids.sort();
    // Revoked in the console ("sign out everywhere").
    let (set_cookie, csrf) = app.open_console();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let revoked: Value = ureq::delete(&format!("{}/api/console/users/{ada}/sessions", app.base))
        .set("Cookie", &cookie)
        .set("Origin", &app.base)
        .set("X-CSRF-Token", &csrf)
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(revoked["revoked"], 2);
    let events = receiver.wait_for(1, Duration::from_secs(5));
    assert_eq!(events[0]["type"], "user.sessions_revoked");
    let mut got: Vec<String> = events[0]["sids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    got.sort();
    assert_eq!(got, sids);
}

#[test]
fn delivery_survives_a_restart_and_a_receiver_down_for_a_minute() {
    let receiver = Receiver::down();
    let app = TestApp::spawn_with(|c| c.webhooks = vec![webhook(&receiver.url(), 5)]);
    let tokens: Vec<String> = (0..6).map(|i| format!("s-{i}")).collect();
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    user_with_sessions(&app, "ada@example.com", &refs);
    let went_down = Instant::now();
    for token in &tokens[..3] {
        app.ok("deleteSession", json!({ "sessionToken": token }));
    }
    std::thread::sleep(Duration::from_secs(3));
    // A restart while the receiver is still down: the events wait in the
    // database, and so do those written by the next server.
    let (dir, config) = app.stop();
    let app = TestApp::start(dir, config, Arc::new(authstore::clock::SystemClock));
    for token in &tokens[3..] {
        app.ok("deleteSession", json!({ "sessionToken": token }));
    }
    let written = audit_ids(&app);
    assert_eq!(written.len(), 6);
    std::thread::sleep(Duration::from_secs(60).saturating_sub(went_down.elapsed()));
    assert!(receiver.events().is_empty());

    receiver.bring_up();
    let back = Instant::now();
    // Within the longest backoff (5 s here) and a poll.
    let events = receiver.wait_for(6, Duration::from_secs(15));
    eprintln!(
        "delivered {:?} after the receiver came back",
        back.elapsed()
    );
    assert_eq!(ids(&events), written, "in order, each once");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(receiver.events().len(), 6);
    drop(app);
}

#[test]
fn two_servers_on_one_database_deliver_each_event_once() {
    let receiver = Receiver::start();
    let first = TestApp::spawn_with(|c| {
        c.webhooks = vec![webhook(&receiver.url(), 5)];
        c.sqlite.locking = authstore::config::Locking::Shared;
    });
    let second = TestApp::start(
        first.dir.clone(),
        first.config.clone(),
        Arc::new(authstore::clock::SystemClock),
    );
    let tokens: Vec<String> = (0..20).map(|i| format!("s-{i}")).collect();
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    user_with_sessions(&first, "ada@example.com", &refs);
    // Sign-outs through both servers, alternating.
    for (i, token) in tokens[..10].iter().enumerate() {
        let app = if i % 2 == 0 { &first } else { &second };
        app.ok("deleteSession", json!({ "sessionToken": token }));
    }
    let events = receiver.wait_for(10, Duration::from_secs(10));
    assert_eq!(ids(&events), audit_ids(&first));
    // The server that delivered stops: the other takes over at once.
    let holder = receiver.requests().len();
    assert!(holder > 0);
    let (_, _) = first.stop();
    for token in &tokens[10..] {
        second.ok("deleteSession", json!({ "sessionToken": token }));
    }
    let events = receiver.wait_for(20, Duration::from_secs(10));
    assert_eq!(ids(&events), audit_ids(&second), "each once, in order");
}

#[test]
fn a_redirect_is_a_failure_retried_until_the_endpoint_accepts() {
    let receiver = Receiver::start();
    receiver.refusals.lock().unwrap().extend([307, 307, 307]);
    let app = TestApp::spawn_with(|c| c.webhooks = vec![webhook(&receiver.url(), 1)]);
    let ada = user_with_sessions(&app, "ada@example.com", &["ada~1", "ada~2", "ada~3"]);
    for token in ["ada~1", "ada~2", "ada~3"] {
        app.ok("deleteSession", json!({ "sessionToken": token }));
    }
    let events = receiver.wait_for(3, Duration::from_secs(20));
    let requests = receiver.requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(
        &statuses[..4],
        [307, 307, 307, 200],
        "retried after each redirect: {statuses:?}"
    );
    // Not marked delivered by a redirect: the first accepted request still
    // carries the first event, and every event arrives once, in order.
    let first_sent = serde_json::from_str::<Value>(&requests[0].body).unwrap();
    assert_eq!(
        first_sent["events"][0]["id"], events[0]["id"],
        "the events refused by a redirect are the ones sent again"
    );
    assert_eq!(ids(&events), audit_ids(&app));
    assert!(events.iter().all(|e| e["userId"] == ada.as_str()));
    // A later event, delivered after anything sent again would have been
    // (delivery keeps order): only it may follow the three.
    app.ok(
        "createSession",
        json!({ "session": { "sessionToken": "ada~4", "userId": ada, "expires": FAR } }),
    );
    let barrier = app.sid_of("ada~4");
    app.ok("deleteSession", json!({ "sessionToken": "ada~4" }));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !receiver
        .events()
        .iter()
        .any(|e| e["sid"] == barrier.as_str())
    {
        assert!(
            Instant::now() < deadline,
            "the later event did not arrive in 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        receiver.events().len(),
        4,
        "accepted events are not sent again"
    );
}

#[test]
fn an_event_whose_transaction_stays_open_is_still_delivered_whatever_the_clocks() {
    // PostgreSQL draws an event's seq at insert, not at commit.
    if !common::on_postgres() {
        return;
    }
    let receiver = Receiver::start();
    let app = TestApp::spawn_with(|c| c.webhooks = vec![webhook(&receiver.url(), 1)]);
    let ada = user_with_sessions(&app, "ada@example.com", &["ada~1"]);
    app.ok("deleteSession", json!({ "sessionToken": "ada~1" }));
    receiver.wait_for(1, Duration::from_secs(10));

    let url = app.config.postgres_url().unwrap().to_owned();
    let now = authstore::timestamp::Timestamp::now().millis();
    let insert = "INSERT INTO events (id, type, user_id, sid, at) \
                  VALUES ($1, 'session.deleted', $2, $3, $4)";
    // A node's transaction that wrote an event and has not committed yet.
    let mut slow_node = common::postgres_client(&url);
    let mut open = slow_node.transaction().unwrap();
    open.execute(insert, &[&"in-flight", &ada, &"sid-in-flight", &now])
        .unwrap();
    // Meanwhile a node whose clock is two minutes behind writes an event
    // with a higher seq, and it is delivered.
    common::postgres_client(&url)
        .execute(
            insert,
            &[&"from-a-slow-clock", &ada, &"sid-slow", &(now - 120_000)],
        )
        .unwrap();
    let events = receiver.wait_for(2, Duration::from_secs(10));
    assert_eq!(events[1]["id"], "from-a-slow-clock");
    // Wait until the worker has marked it delivered (and tried to move its
    // floor, in the same transaction): its seq is recorded as delivered, or
    // the floor has passed it.
    let slow_seq = app.count("SELECT seq FROM events WHERE id = 'from-a-slow-clock'");
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.count(&format!(
        "SELECT count(*) FROM webhook_deliveries WHERE seq = {slow_seq}"
    )) == 0
        && app.count("SELECT floor FROM webhook_endpoints") < slow_seq
    {
        assert!(Instant::now() < deadline, "not marked delivered in 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    open.commit().unwrap();

    let events = receiver.wait_for(3, Duration::from_secs(10));
    assert_eq!(events[2]["id"], "in-flight", "{events:?}");
    // And later events keep arriving: the floor moves again once all is quiet.
    app.ok(
        "createSession",
        json!({ "session": { "sessionToken": "ada~2", "userId": ada, "expires": FAR } }),
    );
    app.ok("deleteSession", json!({ "sessionToken": "ada~2" }));
    receiver.wait_for(4, Duration::from_secs(10));
    let floor = app.count("SELECT floor FROM webhook_endpoints");
    let newest = app.count("SELECT max(seq) FROM events");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut floor = floor;
    while floor < newest {
        assert!(
            Instant::now() < deadline,
            "the floor stays at {floor} below {newest}"
        );
        std::thread::sleep(Duration::from_millis(100));
        floor = app.count("SELECT floor FROM webhook_endpoints");
    }
}

#[test]
fn a_delivery_carries_on_the_trace_of_the_request_that_ended_access() {
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let receiver = Receiver::start();
    let app = TestApp::spawn_with(|c| c.webhooks = vec![webhook(&receiver.url(), 5)]);
    user_with_sessions(&app, "ada@example.com", &["traced", "untraced"]);
    let answer = ureq::post(&format!("{}/api/adapter/deleteSession", app.base))
        .set("Authorization", &format!("Bearer {}", common::SECRET))
        .set("traceparent", &format!("00-{TRACE}-00f067aa0ba902b7-01"))
        .send_string(r#"{"sessionToken":"traced"}"#)
        .unwrap();
    // The response names this server's span of the caller's trace.
    let ours = answer.header("traceparent").unwrap().to_owned();
    assert!(ours.starts_with(&format!("00-{TRACE}-")), "{ours}");
    assert!(
        !ours.contains("00f067aa0ba902b7"),
        "a span of its own: {ours}"
    );
    receiver.wait_for(1, Duration::from_secs(5));
    // Without one, the request starts a trace, and its delivery carries that.
    let answer = ureq::post(&format!("{}/api/adapter/deleteSession", app.base))
        .set("Authorization", &format!("Bearer {}", common::SECRET))
        .send_string(r#"{"sessionToken":"untraced"}"#)
        .unwrap();
    let started = answer.header("traceparent").unwrap()[3..35].to_owned();
    assert_ne!(started, TRACE);
    receiver.wait_for(2, Duration::from_secs(5));

    let traces: Vec<String> = receiver
        .requests()
        .iter()
        .map(|r| {
            let header = r
                .traceparent
                .clone()
                .expect("every delivery has a traceparent");
            assert_eq!(header.len(), 55, "{header}");
            header[3..35].to_owned()
        })
        .collect();
    assert_eq!(
        traces,
        [TRACE.to_owned(), started],
        "one delivery per trace, each its own"
    );
    // The audit log keeps each event's trace.
    let audit = app.audit(&[]);
    assert_eq!(audit[1]["traceId"], TRACE, "{audit:?}");
}
