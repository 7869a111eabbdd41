//! Many nodes, one truth: two `authstore serve` processes on one database
//! (one SQLite file, or one PostgreSQL database when TEST_POSTGRES_URL is
//! set), as a load balancer would spread requests over them.

use crate::common;

use common::process::{authstore, output, Server};
use common::{KEK, SECRET};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// One database for several nodes.
struct Shared {
    dir: TempDir,
    database: String,
}

impl Shared {
    fn new() -> Shared {
        let dir = tempfile::tempdir().unwrap();
        let database = match common::postgres_cluster() {
            Some(cluster) => common::fresh_postgres_database(&cluster),
            None => dir.path().join("authstore.db").display().to_string(),
        };
        Shared { dir, database }
    }

    /// `authstore ARGS` on this database, with the shared secret and KEK.
    fn command(&self, env: &[(&str, &str)]) -> Command {
        let mut command = authstore(self.dir.path());
        command
            .args(["--database", &self.database])
            .env("AUTHSTORE_SECRET", SECRET)
            .env("AUTHSTORE_KEY_ENCRYPTION_KEY", KEK)
            // Several servers on one SQLite file must each say so.
            .env("AUTHSTORE_SQLITE_LOCKING", "shared")
            .envs(env.iter().copied());
        command
    }

    fn node(&self, env: &[(&str, &str)]) -> Server {
        let mut command = self.command(env);
        command.args(["serve", "--port", "0"]);
        Server::start(command)
    }

    /// Two nodes started at the same moment.
    fn two_nodes(&self, env: &[(&str, &str)]) -> (Server, Server) {
        let (a, b) = (self.command(env), self.command(env));
        let start = |mut command: Command| {
            std::thread::spawn(move || {
                command.args(["serve", "--port", "0"]);
                Server::start(command)
            })
        };
        let (a, b) = (start(a), start(b));
        (a.join().unwrap(), b.join().unwrap())
    }

    fn count(&self, sql: &str) -> i64 {
        let config = authstore::Config {
            database: self.database.clone().into(),
            ..authstore::Config::default()
        };
        common::count_in(&config, sql)
    }
}

fn call(node: &Server, method: &str, body: Value) -> (u16, Value) {
    let response = ureq::post(&node.url(&format!("/api/adapter/{method}")))
        .timeout(Duration::from_secs(10))
        .set("Authorization", &format!("Bearer {SECRET}"))
        .send_string(&body.to_string());
    let response = match response {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("{method}: {e}"),
    };
    (response.status(), response.into_json().unwrap())
}

fn ok(node: &Server, method: &str, body: Value) -> Value {
    let (status, value) = call(node, method, body);
    assert_eq!(status, 200, "{method}: {value}");
    value
}

fn kids(node: &Server) -> Vec<String> {
    let mut kids: Vec<String> = node.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    kids
}

fn minted_kid(node: &Server, session_token: &str) -> String {
    let minted = ureq::post(&node.url("/api/token"))
        .timeout(Duration::from_secs(10))
        .set("Authorization", &format!("Bearer {SECRET}"))
        .send_string(&json!({ "sessionToken": session_token, "fresh": true }).to_string())
        .unwrap()
        .into_json::<Value>()
        .unwrap();
    jsonwebtoken::decode_header(minted["token"].as_str().unwrap())
        .unwrap()
        .kid
        .unwrap()
}

fn user_with_session(node: &Server, email: &str, token: &str) -> String {
    let user = ok(node, "createUser", json!({ "user": { "email": email } }));
    let id = user["id"].as_str().unwrap().to_owned();
    ok(
        node,
        "createSession",
        json!({ "session": { "sessionToken": token, "userId": id, "expires": "2099-01-01T00:00:00.000Z" } }),
    );
    id
}

#[test]
fn a_revocation_on_one_node_is_seen_by_the_other_at_once() {
    let shared = Shared::new();
    let (a, b) = shared.two_nodes(&[]);
    let lookup = json!({ "sessionToken": "revoked-token" });
    let user = user_with_session(&a, "revoked@example.com", "revoked-token");
    assert_eq!(
        ok(&b, "getSessionAndUser", lookup.clone())["user"]["id"],
        user
    );
    ok(&a, "deleteSession", lookup.clone());
    assert_eq!(ok(&b, "getSessionAndUser", lookup), Value::Null);

    let lookup = json!({ "sessionToken": "deleted-user-token" });
    let user = user_with_session(&b, "deleted@example.com", "deleted-user-token");
    assert_eq!(
        ok(&a, "getSessionAndUser", lookup.clone())["user"]["id"],
        user
    );
    ok(&b, "deleteUser", json!({ "id": user }));
    assert_eq!(ok(&a, "getSessionAndUser", lookup), Value::Null);
    assert_eq!(ok(&a, "getUser", json!({ "id": user })), Value::Null);
}

#[test]
fn one_email_raced_over_two_nodes_makes_one_user() {
    let shared = Shared::new();
    let (a, b) = shared.two_nodes(&[]);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..32)
            .map(|i| {
                let node = if i % 2 == 0 { &a } else { &b };
                scope.spawn(move || {
                    let user = json!({ "user": { "email": "Race@Example.com", "name": format!("racer {i}") } });
                    let (status, body) = call(node, "createUser", user);
                    if status != 200 {
                        assert_eq!(body["error"]["code"], "conflict", "{body}");
                    }
                    status
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 409).count(),
        31,
        "{statuses:?}"
    );
    assert_eq!(
        shared.count("SELECT count(*) FROM users WHERE email = 'race@example.com'"),
        1
    );
}

#[test]
fn two_nodes_starting_on_an_empty_database_agree_on_one_key() {
    let shared = Shared::new();
    let (a, b) = shared.two_nodes(&[]);
    assert_eq!(kids(&a).len(), 1, "{}", a.jwks());
    assert_eq!(a.jwks(), b.jwks());
    assert_eq!(shared.count("SELECT count(*) FROM signing_keys"), 1);
    assert_eq!(shared.count("SELECT count(*) FROM meta"), 1);
    // Both signed in with one schema: each answers a write.
    user_with_session(&a, "a@example.com", "a-token");
    user_with_session(&b, "b@example.com", "b-token");
}

#[test]
fn a_rotation_reaches_the_other_node_within_two_seconds() {
    let shared = Shared::new();
    let (a, b) = shared.two_nodes(&[]);
    user_with_session(&a, "rotate@example.com", "rotate-token");
    let old = minted_kid(&b, "rotate-token");

    let mut rotate = shared.command(&[]);
    rotate.args(["keys", "rotate", "--now"]);
    let out = output(rotate);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated = Instant::now();
    for node in [&b, &a] {
        loop {
            let kid = minted_kid(node, "rotate-token");
            if kid != old && !kids(node).contains(&old) {
                break;
            }
            assert!(
                rotated.elapsed() < Duration::from_millis(2500),
                "a node still signs with or publishes {old} {:?} after the rotation",
                rotated.elapsed()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert_eq!(a.jwks(), b.jwks());
}

/// `purge removed S expired sessions, T expired verification tokens and E events ...`
fn purged(node: &Server) -> (i64, i64) {
    node.later_log()
        .iter()
        .filter_map(|line| {
            let rest = line.split("purge removed ").nth(1)?;
            let words: Vec<&str> = rest.split_whitespace().collect();
            Some((words[0].parse::<i64>().ok()?, words[3].parse::<i64>().ok()?))
        })
        .fold((0, 0), |(s, t), (ds, dt)| (s + ds, t + dt))
}

#[test]
fn two_nodes_purging_at_once_remove_every_expired_row_once() {
    let shared = Shared::new();
    let every_second = [
        ("AUTHSTORE_PURGE_INTERVAL_SECS", "1"),
        ("AUTHSTORE_PURGE_BATCH", "7"),
    ];
    // The rows exist before either node purges: written by a first node.
    let (expired, tokens) = (120, 60);
    {
        let seeder = shared.node(&[]);
        let user = user_with_session(&seeder, "purge@example.com", "live-token");
        std::thread::scope(|scope| {
            for part in 0..4 {
                let (seeder, user) = (&seeder, &user);
                scope.spawn(move || {
                    for n in (part..expired).step_by(4) {
                        ok(seeder, "createSession", json!({ "session": { "sessionToken": format!("old-{n}"), "userId": user, "expires": "2020-01-01T00:00:00.000Z" } }));
                    }
                    for n in (part..tokens).step_by(4) {
                        ok(seeder, "createVerificationToken", json!({ "verificationToken": { "identifier": "p@example.com", "token": format!("t-{n}"), "expires": "2020-01-01T00:00:00.000Z" } }));
                    }
                });
            }
        });
        seeder.terminate();
    }
    let (a, b) = shared.two_nodes(&every_second);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (sa, ta) = purged(&a);
        let (sb, tb) = purged(&b);
        if (sa + sb, ta + tb) == (expired, tokens) {
            break;
        }
        assert!(
            sa + sb <= expired && ta + tb <= tokens,
            "rows were counted twice: {:?} {:?}",
            (sa, ta),
            (sb, tb)
        );
        assert!(
            Instant::now() < deadline,
            "not purged in 20 s: {:?} {:?}",
            (sa, ta),
            (sb, tb)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(shared.count("SELECT count(*) FROM sessions"), 1);
    assert_eq!(shared.count("SELECT count(*) FROM verification_tokens"), 0);
    for node in [&a, &b] {
        let failures: Vec<String> = node
            .later_log()
            .into_iter()
            .filter(|l| l.contains("ERROR") || l.contains("WARN"))
            .collect();
        assert!(failures.is_empty(), "{failures:?}");
    }
    assert_eq!(
        ok(
            &b,
            "getSessionAndUser",
            json!({ "sessionToken": "live-token" })
        )["session"]["sessionToken"],
        "live-token"
    );
}

#[test]
fn automatic_rotation_due_on_two_nodes_at_once_adds_one_waiting_key() {
    let shared = Shared::new();
    shared.node(&[]).terminate();
    // The first key has signed for two days: with a one-day period, a
    // rotation is due on every node the moment it starts.
    let two_days_ago = authstore::timestamp::Timestamp::now().millis() - 2 * 86_400_000;
    backdate_keys(&shared, two_days_ago);
    let rotating = [
        ("AUTHSTORE_KEY_ROTATION_DAYS", "1"),
        ("AUTHSTORE_KEY_LEAD_TIME_SECS", "3600"),
    ];
    let (a, b) = shared.two_nodes(&rotating);
    assert_eq!(shared.count("SELECT count(*) FROM signing_keys"), 2);
    let now = authstore::timestamp::Timestamp::now().millis();
    assert_eq!(
        shared.count(&format!(
            "SELECT count(*) FROM signing_keys WHERE signs_from > {now}"
        )),
        1,
        "exactly one key waits to sign"
    );
    assert_eq!(kids(&a).len(), 2);
    assert_eq!(a.jwks(), b.jwks());
}

/// Moves every key's creation and first signing to `at`, as the holder of
/// the KEK would (each row's seal made again: a row changed without it is
/// never used).
fn backdate_keys(shared: &Shared, at: i64) {
    use authstore::kek::Kek;
    use authstore::secret::Secret;
    use authstore::store::{sealing, KeyRecord};
    use authstore::timestamp::Timestamp;
    let select = "SELECT kid, algorithm, public_key, retires_at, unpublish_at, \
                  (SELECT kek_id FROM meta) FROM signing_keys";
    type Row = (String, String, Vec<u8>, Option<i64>, Option<i64>, String);
    let rows: Vec<Row> = match common::postgres_cluster() {
        Some(_) => common::postgres_client(&shared.database)
            .query(select, &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
            .collect(),
        None => {
            let conn = rusqlite::Connection::open(&shared.database).unwrap();
            let mut statement = conn.prepare(select).unwrap();
            statement
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect()
        }
    };
    for (kid, algorithm, public_key_der, retires_at, unpublish_at, kek_id) in rows {
        let kek = Kek::for_record(&Secret::new(KEK).unwrap(), &kek_id).unwrap();
        let record = KeyRecord {
            kid,
            algorithm,
            public_key_der,
            private_key_der: None,
            created_at: Timestamp::from_millis(at),
            signs_from: Timestamp::from_millis(at),
            retires_at: retires_at.map(Timestamp::from_millis),
            unpublish_at: unpublish_at.map(Timestamp::from_millis),
        };
        let seal = sealing::seal_key_row(&kek, &record).unwrap();
        let update = "UPDATE signing_keys SET created_at = $1, signs_from = $1, row_seal = $2 \
                      WHERE kid = $3";
        match common::postgres_cluster() {
            Some(_) => {
                common::postgres_client(&shared.database)
                    .execute(update, &[&at, &seal, &record.kid])
                    .unwrap();
            }
            None => {
                rusqlite::Connection::open(&shared.database)
                    .unwrap()
                    .execute(
                        &update.replace('$', "?"),
                        rusqlite::params![at, seal, record.kid],
                    )
                    .unwrap();
            }
        }
    }
}
