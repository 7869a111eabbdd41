//! The OIDC issuer: discovery, JWKS, minting, key rotation and import,
//! checked the way Convex verifies (discovery -> jwks_uri -> kid -> RS256 or
//! ES256).

use crate::common;

use authstore::clock::{Clock, ManualClock};
use authstore::issuer::keys::Rotation;
use authstore::timestamp::Timestamp;
use common::{code, test_config, user_fixture, TestApp, SECRET};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use std::sync::Arc;

/// A verifier that knows only the discovery URL, as Convex does.
struct Verifier {
    issuer: String,
    jwks: Value,
}

impl Verifier {
    fn discover(app: &TestApp) -> Self {
        let (status, response) = app.get("/.well-known/openid-configuration");
        assert_eq!(status, 200);
        let discovery: Value = response.into_json().unwrap();
        let issuer = discovery["issuer"].as_str().unwrap().to_owned();
        let jwks = ureq::get(discovery["jwks_uri"].as_str().unwrap())
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        Verifier { issuer, jwks }
    }

    /// Verifies signature, `iss`, `aud` and `iat`; `exp` against `now`.
    fn verify(&self, token: &str, now: Timestamp) -> Result<Value, String> {
        let header = decode_header(token).map_err(|e| e.to_string())?;
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        let kid = header.kid.ok_or("no kid")?;
        let jwk = self.jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .ok_or_else(|| format!("kid {kid} is not in the cached JWKS"))?;
        // The algorithm the key is published for, never the token's say-so.
        let (key, algorithm) = match jwk["alg"].as_str() {
            Some("RS256") => (
                DecodingKey::from_rsa_components(
                    jwk["n"].as_str().unwrap(),
                    jwk["e"].as_str().unwrap(),
                ),
                Algorithm::RS256,
            ),
            Some("ES256") => {
                assert_eq!(
                    (jwk["kty"].as_str(), jwk["crv"].as_str()),
                    (Some("EC"), Some("P-256"))
                );
                (
                    DecodingKey::from_ec_components(
                        jwk["x"].as_str().unwrap(),
                        jwk["y"].as_str().unwrap(),
                    ),
                    Algorithm::ES256,
                )
            }
            other => return Err(format!("unexpected alg {other:?}")),
        };
        let key = key.map_err(|e| e.to_string())?;
        assert_eq!(header.alg, algorithm);
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&["convex"]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = false;
        let claims = decode::<Value>(token, &key, &validation)
            .map_err(|e| e.to_string())?
            .claims;
        let exp = claims["exp"].as_i64().ok_or("no exp")?;
        let iat = claims["iat"].as_i64().ok_or("no iat")?;
        if exp <= now.seconds() {
            return Err("expired".into());
        }
        if iat > now.seconds() + 1 {
            return Err("issued in the future".into());
        }
        Ok(claims)
    }
}

fn signed_in(app: &TestApp, token: &str, expires: &str) -> Value {
    let user = app.ok(
        "createUser",
        json!({ "user": { "email": format!("{token}@example.com"), "name": "Fill" } }),
    );
    app.ok(
        "createSession",
        json!({ "session": { "sessionToken": token, "userId": user["id"], "expires": expires } }),
    );
    user
}

fn mint(app: &TestApp, session_token: &str) -> (u16, Value) {
    app.post(
        "/api/token",
        &json!({ "sessionToken": session_token, "fresh": true }).to_string(),
        Some(SECRET),
    )
}

fn kid_of(token: &str) -> String {
    decode_header(token).unwrap().kid.unwrap()
}

fn published_kids(app: &TestApp) -> Vec<String> {
    let jwks: Value = app.get("/.well-known/jwks.json").1.into_json().unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn discovery_and_jwks_headers_and_fields() {
    let app = TestApp::spawn_with(|c| c.issuer = Some("https://auth.example.com".into()));
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/jwks.json",
    ] {
        let (status, response) = app.get(path);
        assert_eq!(status, 200, "{path}");
        assert_eq!(
            response.header("content-type"),
            Some("application/json"),
            "{path}"
        );
        assert_eq!(
            response.header("cache-control"),
            Some("public, max-age=300"),
            "{path}"
        );
        assert_eq!(
            response.header("access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
    }
    let discovery: Value = app
        .get("/.well-known/openid-configuration")
        .1
        .into_json()
        .unwrap();
    assert_eq!(
        discovery,
        json!({
            "issuer": "https://auth.example.com",
            "jwks_uri": "https://auth.example.com/.well-known/jwks.json",
            "authorization_endpoint": "https://auth.example.com/authorize",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })
    );
    let jwks: Value = app.get("/.well-known/jwks.json").1.into_json().unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = keys[0].as_object().unwrap();
    let mut fields: Vec<_> = key.keys().map(String::as_str).collect();
    fields.sort();
    assert_eq!(fields, ["alg", "e", "kid", "kty", "n", "use"]);
    assert_eq!(
        (
            key["kty"].as_str(),
            key["use"].as_str(),
            key["alg"].as_str()
        ),
        (Some("RSA"), Some("sig"), Some("RS256"))
    );
    // The kid is the RFC 7638 thumbprint of the published key.
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        key["e"].as_str().unwrap(),
        key["n"].as_str().unwrap()
    );
    let thumbprint = base64_url(&openssl::sha::sha256(canonical.as_bytes()));
    assert_eq!(key["kid"].as_str().unwrap(), thumbprint);
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn a_minted_token_verifies_through_discovery_alone() {
    let app = TestApp::spawn();
    let user = signed_in(&app, "verify-me", "2099-01-01T00:00:00.000Z");
    let (status, minted) = mint(&app, "verify-me");
    assert_eq!(status, 200, "{minted}");
    let token = minted["token"].as_str().unwrap();
    let claims = Verifier::discover(&app)
        .verify(token, Timestamp::now())
        .unwrap();
    assert_eq!(claims["sub"], user["id"]);
    assert_eq!(claims["iss"], app.base);
    assert_eq!(claims["aud"], "convex");
    assert!(claims.get("nbf").is_none());
    assert!(
        claims.get("email").is_none(),
        "profile claims are off by default"
    );
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 300, "token_lifetime_secs' default");
    assert_eq!(
        Timestamp::parse_iso(minted["expiresAt"].as_str().unwrap())
            .unwrap()
            .seconds(),
        claims["exp"].as_i64().unwrap()
    );
}

#[test]
fn profile_claims_are_added_when_configured() {
    use authstore::config::ProfileClaim;
    let app = TestApp::spawn_with(|c| {
        c.profile_claims = vec![
            ProfileClaim::Email,
            ProfileClaim::EmailVerified,
            ProfileClaim::Name,
            ProfileClaim::Picture,
        ];
        c.audience = "my-app".into();
    });
    let mut fixture = user_fixture();
    fixture["email"] = json!("claims@example.com");
    app.ok("createUser", json!({ "user": fixture.clone() }));
    app.ok(
        "createSession",
        json!({ "session": { "sessionToken": "claims", "userId": fixture["id"], "expires": "2099-01-01T00:00:00.000Z" } }),
    );
    let token = mint(&app, "claims").1["token"].as_str().unwrap().to_owned();
    let payload: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["email"], "claims@example.com");
    assert_eq!(payload["email_verified"], true);
    assert_eq!(payload["name"], "Fill Murray");
    assert_eq!(payload["picture"], fixture["image"]);
    assert_eq!(payload["aud"], "my-app");
}

#[test]
fn tokens_for_expired_deleted_or_unknown_sessions_are_refused() {
    let app = TestApp::spawn();
    signed_in(&app, "expired-session", "2020-01-01T00:00:00.000Z");
    let (status, body) = mint(&app, "expired-session");
    assert_eq!((status, code(&body)), (404, "not_found"));

    signed_in(&app, "deleted-session", "2099-01-01T00:00:00.000Z");
    assert_eq!(mint(&app, "deleted-session").0, 200);
    app.ok(
        "deleteSession",
        json!({ "sessionToken": "deleted-session" }),
    );
    let (status, body) = mint(&app, "deleted-session");
    assert_eq!((status, code(&body)), (404, "not_found"));

    let (status, body) = mint(&app, "never-existed");
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, body) = app.post("/api/token", "{}", Some(SECRET));
    assert_eq!((status, code(&body)), (400, "bad_request"));
}

#[test]
fn a_token_never_outlives_its_session() {
    let app = TestApp::spawn();
    // Sooner than token_lifetime_secs (300 s by default).
    let ends = Timestamp::from_millis(Timestamp::now().millis() + 120_000 + 789);
    signed_in(&app, "short", &ends.to_iso());
    let minted = mint(&app, "short").1;
    let claims = Verifier::discover(&app)
        .verify(minted["token"].as_str().unwrap(), Timestamp::now())
        .unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap(), ends.seconds());
}

fn manual_app(clock: Arc<ManualClock>, customize: impl FnOnce(&mut authstore::Config)) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = test_config(&dir);
    config.key_lead_time_secs = 600;
    customize(&mut config);
    TestApp::start(dir, config, clock)
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    actix_web::rt::System::new().block_on(future)
}

/// Two hours in steps of a minute: the schedule maintained, a token minted
/// each minute, and every live token checked by a verifier that refreshes its
/// cached JWKS only every max-age (300 s). The kids that signed.
fn two_hours_of_a_caching_verifier(
    app: &TestApp,
    clock: &ManualClock,
    session: &str,
) -> std::collections::BTreeSet<String> {
    // A verifier that refreshes its cache only every max-age (300 s), with
    // every token minted so far still in the wild.
    let mut verifier = Verifier::discover(app);
    let mut cached_at = clock.now();
    let mut tokens: Vec<String> = Vec::new();
    let mut kids = std::collections::BTreeSet::new();
    for _ in 0..(2 * 3600 / 60) {
        clock.advance_secs(60);
        block_on(app.issuer.maintain()).unwrap();
        let now = clock.now();
        if now.millis() - cached_at.millis() >= 300_000 {
            verifier = Verifier::discover(app);
            cached_at = now;
        }
        let token = mint(app, session).1["token"].as_str().unwrap().to_owned();
        kids.insert(kid_of(&token));
        tokens.push(token);
        tokens.retain(|t| {
            let claims_exp = verifier.verify(t, now);
            match claims_exp {
                Ok(_) => true,
                Err(e) if e == "expired" => false,
                Err(e) => panic!("a live token was rejected at {now}: {e}"),
            }
        });
    }
    kids
}

#[test]
fn scheduled_rotation_never_breaks_a_verifier_with_a_cached_jwks() {
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let app = manual_app(clock.clone(), |_| {});
    signed_in(&app, "rotating", "2099-01-01T00:00:00.000Z");
    let first = kid_of(mint(&app, "rotating").1["token"].as_str().unwrap());

    let next = block_on(app.issuer.rotate(Rotation::Scheduled))
        .unwrap()
        .expect("a key is scheduled");
    assert_eq!(
        block_on(app.issuer.rotate(Rotation::Scheduled)).unwrap(),
        None,
        "rotate is idempotent"
    );
    assert_eq!(
        published_kids(&app),
        vec![first.clone(), next.clone()],
        "the next key is published at once"
    );
    assert_eq!(
        kid_of(mint(&app, "rotating").1["token"].as_str().unwrap()),
        first,
        "and does not sign yet"
    );

    let kids = two_hours_of_a_caching_verifier(&app, &clock, "rotating");
    assert_eq!(
        kids.into_iter().collect::<Vec<_>>().len(),
        2,
        "both keys signed during the run"
    );
    assert_eq!(
        kid_of(mint(&app, "rotating").1["token"].as_str().unwrap()),
        next
    );
    // After lead time + token lifetime + cache lifetime the old key is gone.
    clock.advance_secs(600);
    block_on(app.issuer.maintain()).unwrap();
    assert_eq!(published_kids(&app), vec![next]);
}

#[test]
fn rotate_now_signs_at_once_and_drops_the_old_key() {
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let app = manual_app(clock.clone(), |_| {});
    signed_in(&app, "compromised", "2099-01-01T00:00:00.000Z");
    let old = kid_of(mint(&app, "compromised").1["token"].as_str().unwrap());
    let new = block_on(app.issuer.rotate(Rotation::Immediate))
        .unwrap()
        .unwrap();
    assert_eq!(
        kid_of(mint(&app, "compromised").1["token"].as_str().unwrap()),
        new
    );
    assert_eq!(published_kids(&app), vec![new.clone()]);
    assert_ne!(old, new);
}

#[test]
fn a_restart_mid_schedule_keeps_the_schedule() {
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let app = manual_app(clock.clone(), |_| {});
    signed_in(&app, "restart", "2099-01-01T00:00:00.000Z");
    let old = kid_of(mint(&app, "restart").1["token"].as_str().unwrap());
    let next = block_on(app.issuer.rotate(Rotation::Scheduled))
        .unwrap()
        .unwrap();
    clock.advance_secs(300);
    let (dir, config) = app.stop();

    let app = TestApp::start(dir.clone(), config.clone(), clock.clone());
    assert_eq!(published_kids(&app), vec![old.clone(), next.clone()]);
    assert_eq!(
        kid_of(mint(&app, "restart").1["token"].as_str().unwrap()),
        old
    );
    assert_eq!(
        block_on(app.issuer.rotate(Rotation::Scheduled)).unwrap(),
        None
    );
    clock.advance_secs(300);
    assert_eq!(
        kid_of(mint(&app, "restart").1["token"].as_str().unwrap()),
        next,
        "no restart needed to switch"
    );
}

#[test]
fn an_imported_openssl_key_signs_and_its_kid_is_its_thumbprint() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let pem = dir.path().join("key.pem");
    let status = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&pem)
        .status()
        .expect("the openssl command is installed");
    assert!(status.success());
    // The database exists (keys commands never create one) with its first key.
    let config = test_config(&dir);
    let (dir, config) = TestApp::start(dir, config, Arc::new(authstore::clock::SystemClock)).stop();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_authstore"))
        .args(["keys", "import", "--pem"])
        .arg(&pem)
        .arg("--database")
        .arg(&config.database)
        .envs(common::cli_env(&config))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let app = TestApp::start(dir.clone(), config, Arc::new(authstore::clock::SystemClock));
    let jwks: Value = app.get("/.well-known/jwks.json").1.into_json().unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(
        keys.len(),
        2,
        "the imported key, and the previous one until its tokens expire: {jwks}"
    );
    let private = openssl::pkey::PKey::private_key_from_pem(&std::fs::read(&pem).unwrap()).unwrap();
    let n = base64_url(&private.rsa().unwrap().n().to_vec());
    let imported = keys
        .iter()
        .find(|key| key["n"] == n.as_str())
        .expect("the imported key is published");
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{n}"}}"#,
        imported["e"].as_str().unwrap()
    );
    assert_eq!(
        imported["kid"],
        base64_url(&openssl::sha::sha256(canonical.as_bytes())).as_str()
    );

    signed_in(&app, "imported", "2099-01-01T00:00:00.000Z");
    let token = mint(&app, "imported").1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(kid_of(&token), imported["kid"].as_str().unwrap());
    Verifier::discover(&app)
        .verify(&token, Timestamp::now())
        .unwrap();
}

fn mint_cached(app: &TestApp, session_token: &str) -> (u16, Value) {
    app.post(
        "/api/token",
        &json!({ "sessionToken": session_token }).to_string(),
        Some(SECRET),
    )
}

#[test]
fn sid_names_the_session_without_revealing_it_and_jti_is_new_per_signed_token() {
    let app = TestApp::spawn();
    signed_in(&app, "sid-one", "2099-01-01T00:00:00.000Z");
    signed_in(&app, "sid-two", "2099-01-01T00:00:00.000Z");
    let verifier = Verifier::discover(&app);
    let claims = |minted: (u16, Value)| {
        assert_eq!(minted.0, 200, "{}", minted.1);
        verifier
            .verify(minted.1["token"].as_str().unwrap(), Timestamp::now())
            .unwrap()
    };
    let first = claims(mint(&app, "sid-one"));
    let again = claims(mint(&app, "sid-one"));
    let reused = claims(mint_cached(&app, "sid-one"));
    let other = claims(mint(&app, "sid-two"));
    let sid = first["sid"].as_str().unwrap();
    assert_eq!(sid.len(), 22, "128 bits, base64url");
    assert_eq!(again["sid"], sid, "one session, one sid");
    assert_ne!(other["sid"], sid);
    // Neither the token nor its stored digest (in any usual spelling).
    let digest = openssl::sha::sha256(b"sid-one");
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    for secret in ["sid-one".to_owned(), hex, base64_url(&digest)] {
        assert!(!secret.contains(sid) && !sid.contains(&secret));
    }
    assert_eq!(first["jti"].as_str().unwrap().len(), 22);
    assert_ne!(
        first["jti"], again["jti"],
        "each signed token has its own jti"
    );
    assert_eq!(
        reused["jti"], again["jti"],
        "a reused token is the same token"
    );
}

#[test]
fn recent_tokens_are_reused_unless_fresh_is_asked_for() {
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let app = manual_app(clock.clone(), |_| {});
    signed_in(&app, "reuse", "2099-01-01T00:00:00.000Z");
    let first = mint_cached(&app, "reuse").1;
    clock.advance_secs(60);
    assert_eq!(
        mint_cached(&app, "reuse").1,
        first,
        "reused within the first half of its life"
    );
    let fresh = mint(&app, "reuse").1;
    assert_ne!(
        fresh["token"], first["token"],
        "fresh: true signs a new token"
    );
    assert_eq!(
        mint_cached(&app, "reuse").1,
        fresh,
        "and that one is reused next"
    );
    clock.advance_secs(1801);
    let later = mint_cached(&app, "reuse").1;
    assert_ne!(
        later["token"], fresh["token"],
        "past half its life a token is not handed out again"
    );

    // A reusable token is still refused once the session is gone.
    app.ok("deleteSession", json!({ "sessionToken": "reuse" }));
    let (status, body) = mint_cached(&app, "reuse");
    assert_eq!((status, code(&body)), (404, "not_found"));
}

#[test]
fn a_reused_token_follows_profile_changes() {
    use authstore::config::ProfileClaim;
    let app = TestApp::spawn_with(|c| c.profile_claims = vec![ProfileClaim::Name]);
    let user = signed_in(&app, "renamed", "2099-01-01T00:00:00.000Z");
    let before = mint_cached(&app, "renamed").1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(
        "updateUser",
        json!({ "user": { "id": user["id"], "name": "New Name" } }),
    );
    let after = mint_cached(&app, "renamed").1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(before, after);
    let claims = Verifier::discover(&app)
        .verify(&after, Timestamp::now())
        .unwrap();
    assert_eq!(claims["name"], "New Name");
}

fn discovery_algorithms(app: &TestApp) -> Vec<String> {
    let discovery: Value = app
        .get("/.well-known/openid-configuration")
        .1
        .into_json()
        .unwrap();
    discovery["id_token_signing_alg_values_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn es256_tokens_verify_through_discovery_and_the_jwks() {
    let app = TestApp::spawn_with(|c| c.algorithm = authstore::issuer::keys::Algorithm::ES256);
    signed_in(&app, "elliptic", "2099-01-01T00:00:00.000Z");
    assert_eq!(discovery_algorithms(&app), ["ES256"]);
    let jwks: Value = app.get("/.well-known/jwks.json").1.into_json().unwrap();
    let key = &jwks["keys"][0];
    let mut fields: Vec<&str> = key
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort();
    assert_eq!(fields, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
    let (status, minted) = mint(&app, "elliptic");
    assert_eq!(status, 200);
    let token = minted["token"].as_str().unwrap();
    let claims = Verifier::discover(&app)
        .verify(token, Timestamp::now())
        .unwrap();
    assert_eq!(claims["aud"], "convex");
    assert!(token.len() < 600, "ES256 tokens are short: {}", token.len());
    // Convex's customJwt provider is told the algorithm.
    let (ok, printed, err) = app.cli(&["convex-config", "--provider", "custom-jwt"]);
    assert!(ok, "{err}");
    assert!(printed.contains("algorithm: \"ES256\""), "{printed}");
}

#[test]
fn switching_to_es256_goes_through_a_scheduled_rotation_without_breaking_a_verifier() {
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let app = manual_app(clock.clone(), |_| {});
    signed_in(&app, "switching", "2099-01-01T00:00:00.000Z");
    let first = kid_of(mint(&app, "switching").1["token"].as_str().unwrap());
    // The setting changes; the RS256 key goes on signing until a rotation.
    let (dir, mut config) = app.stop();
    config.algorithm = authstore::issuer::keys::Algorithm::ES256;
    let app = TestApp::start(dir, config, clock.clone());
    let token = mint(&app, "switching").1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(kid_of(&token), first);
    assert_eq!(decode_header(&token).unwrap().alg, Algorithm::RS256);
    assert_eq!(discovery_algorithms(&app), ["RS256"]);

    let next = block_on(app.issuer.rotate(Rotation::Scheduled))
        .unwrap()
        .expect("a key is scheduled");
    // Published before it signs, and discovery says so.
    assert_eq!(discovery_algorithms(&app), ["RS256", "ES256"]);
    let kids = two_hours_of_a_caching_verifier(&app, &clock, "switching");
    assert_eq!(kids.into_iter().collect::<Vec<_>>(), {
        let mut both = vec![first, next.clone()];
        both.sort();
        both
    });
    let token = mint(&app, "switching").1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(decode_header(&token).unwrap().alg, Algorithm::ES256);
    clock.advance_secs(600);
    block_on(app.issuer.maintain()).unwrap();
    assert_eq!(published_kids(&app), vec![next]);
    assert_eq!(discovery_algorithms(&app), ["ES256"]);
}
