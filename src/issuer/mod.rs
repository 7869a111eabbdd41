//! The OIDC issuer: discovery, the JWKS, and RS256 tokens for sessions.
//!
//! Keys live in the database (every process on it signs with the same keys)
//! and are loaded into a [`KeyRing`] that the background check refreshes.

mod cache;
pub mod jwt;
pub mod keys;

use self::cache::{Cached, Identity, TokenCache};
use self::jwt::{Claims, SigningKey};
use self::keys::{Algorithm, Jwk, KeyError, KeyMaterial, KeyState, Rotation, Schedule};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::model::SessionAndUser;
use crate::store::{KeyChanges, KeyRecord, KeySet, KeyStore, Saved};
use crate::timestamp::Timestamp;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Standard OIDC profile claims a token may carry besides `sub`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileClaim {
    Email,
    EmailVerified,
    Name,
    Picture,
}

/// The issuer's settings (built by `config` from its layers).
#[derive(Debug, Clone)]
pub struct IssuerSettings {
    /// The public URL, byte-for-byte as in `iss`.
    pub issuer: String,
    pub audience: String,
    /// The algorithm of keys generated from now on.
    pub algorithm: Algorithm,
    pub token_lifetime_secs: u64,
    pub jwks_max_age_secs: u64,
    pub profile_claims: Vec<ProfileClaim>,
    pub schedule: Schedule,
    pub token_cache_capacity: usize,
    pub token_reuse_min_remaining: f64,
}

impl IssuerSettings {
    pub fn jwks_uri(&self) -> String {
        format!("{}/.well-known/jwks.json", self.issuer)
    }
}

/// How often a compare-and-swap on the key set is retried when another
/// process changed it meanwhile (each retry re-reads and re-plans).
const KEY_SET_ATTEMPTS: usize = 20;

/// The loaded keys, and the JWKS they publish.
struct KeyRing {
    /// The key set version these keys are from.
    version: i64,
    records: Vec<KeyRecord>,
    signers: HashMap<String, Arc<SigningKey>>,
    jwks: String,
    /// The discovery document, listing the algorithms of the published keys.
    discovery: String,
    /// The next instant a key changes state; the ring is rebuilt then.
    next_change: Option<Timestamp>,
}

impl KeyRing {
    fn load(set: KeySet, settings: &IssuerSettings, now: Timestamp) -> Result<Self> {
        let unreadable = |kid: &str, e: KeyError| {
            Error::internal(format!("signing key {kid} is unreadable: {e}"))
        };
        let mut signers = HashMap::with_capacity(set.keys.len());
        let mut published = Vec::with_capacity(set.keys.len());
        for record in &set.keys {
            if let Some(der) = &record.private_key_der {
                let material =
                    KeyMaterial::from_pkcs8_der(der).map_err(|e| unreadable(&record.kid, e))?;
                signers.insert(record.kid.clone(), Arc::new(SigningKey::new(material)));
            }
            if KeyState::of(record, now).is_published() {
                published.push(
                    Jwk::from_public_der(&record.public_key_der)
                        .map_err(|e| unreadable(&record.kid, e))?,
                );
            }
        }
        let next_change = set
            .keys
            .iter()
            .flat_map(|k| [Some(k.signs_from), k.retires_at, k.unpublish_at])
            .flatten()
            .filter(|at| *at > now)
            .min();
        let mut algorithms: Vec<Algorithm> = Vec::new();
        for jwk in &published {
            if !algorithms.contains(&jwk.alg) {
                algorithms.push(jwk.alg);
            }
        }
        if algorithms.is_empty() {
            algorithms.push(settings.algorithm);
        }
        Ok(KeyRing {
            version: set.version,
            discovery: discovery_document(settings, &algorithms),
            jwks: json!({ "keys": published }).to_string(),
            records: set.keys,
            signers,
            next_change,
        })
    }

    fn signer(&self, now: Timestamp) -> Option<&Arc<SigningKey>> {
        keys::current(&self.records, now).and_then(|record| self.signers.get(&record.kid))
    }
}

/// A minted token, as `POST /api/token` answers it.
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct MintedToken {
    pub token: String,
    pub expires_at: Timestamp,
}

pub struct Issuer {
    settings: IssuerSettings,
    keys: Arc<dyn KeyStore>,
    clock: Arc<dyn Clock>,
    ring: RwLock<Arc<KeyRing>>,
    cache: TokenCache,
}

impl Issuer {
    /// Loads the keys as they are in the database.
    pub async fn open(
        settings: IssuerSettings,
        keys: Arc<dyn KeyStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let ring = KeyRing::load(keys.signing_keys().await?, &settings, clock.now())?;
        let cache = TokenCache::new(
            settings.token_cache_capacity,
            settings.token_reuse_min_remaining,
        );
        Ok(Issuer {
            settings,
            keys,
            clock,
            ring: RwLock::new(Arc::new(ring)),
            cache,
        })
    }

    /// Loads the keys after applying due schedule steps; creates the first
    /// key when the database has none.
    pub async fn start(
        settings: IssuerSettings,
        keys: Arc<dyn KeyStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let issuer = Self::open(settings, keys, clock).await?;
        issuer.maintain().await?;
        Ok(issuer)
    }

    pub fn settings(&self) -> &IssuerSettings {
        &self.settings
    }

    fn ring(&self) -> Arc<KeyRing> {
        self.ring
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Applies due schedule steps (erasing retired keys, removal, automatic
    /// rotation, a first key) and reloads the keys from the database.
    pub async fn maintain(&self) -> Result<()> {
        // Generating a key costs up to a second, so it happens off the async
        // workers, only when a plan needs one, and is kept across retries.
        let mut fresh: Option<KeyMaterial> = None;
        loop {
            let mut wanted = false;
            let planned = self
                .change_key_set(|records, now| {
                    keys::plan_maintenance(records, &self.settings.schedule, now, || match &fresh {
                        Some(key) => key.record(now, now),
                        None => {
                            wanted = true;
                            Err(keys::KeyError::NotGenerated)
                        }
                    })
                    .map(Some)
                    .map_err(Error::internal)
                })
                .await;
            if wanted && fresh.is_none() {
                fresh = Some(generate(self.settings.algorithm).await?);
                continue;
            }
            return planned.map(drop);
        }
    }

    /// Reads the key set, plans a change with `plan`, and applies it with a
    /// compare-and-swap on the key set version; when another process changed
    /// the set meanwhile, reads and plans again. Returns whether a change
    /// was applied. Reloads the ring in every case.
    async fn change_key_set(
        &self,
        mut plan: impl FnMut(&[KeyRecord], Timestamp) -> Result<Option<KeyChanges>>,
    ) -> Result<bool> {
        for _ in 0..KEY_SET_ATTEMPTS {
            let now = self.clock.now();
            let set = self.keys.signing_keys().await?;
            let changes = match plan(&set.keys, now)? {
                Some(changes) if !changes.is_empty() => changes,
                _ => {
                    self.install(set)?;
                    return Ok(false);
                }
            };
            let described = describe(&changes);
            match self.keys.save_signing_keys(set.version, changes).await? {
                Saved::Applied => {
                    described.iter().for_each(|line| log::info!("{line}"));
                    self.reload().await?;
                    return Ok(true);
                }
                Saved::Stale => log::info!("the key set changed under this plan; planning again"),
            }
        }
        Err(Error::internal(
            "the key set kept changing under this process; try again",
        ))
    }

    async fn reload(&self) -> Result<()> {
        let set = self.keys.signing_keys().await?;
        self.install(set)
    }

    fn install(&self, set: KeySet) -> Result<()> {
        let ring = KeyRing::load(set, &self.settings, self.clock.now())?;
        *self
            .ring
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(ring);
        Ok(())
    }

    /// Run every second by the server: reloads the keys when another process
    /// changed them (`keys rotate --now` takes effect here within about a
    /// second) and applies schedule steps as soon as one is due.
    pub async fn refresh(&self) -> Result<()> {
        let ring = self.ring();
        if ring.next_change.is_some_and(|at| at <= self.clock.now()) {
            return self.maintain().await;
        }
        if self.keys.key_set_version().await? != ring.version {
            log::info!("the key set changed in the database; reloading it");
            self.reload().await?;
        }
        Ok(())
    }

    /// Schedules (or, for `Immediate`, performs) a rotation to a new key.
    /// Returns the new key's id, or `None` when a key is already waiting.
    pub async fn rotate(&self, how: Rotation) -> Result<Option<String>> {
        let material = generate(self.settings.algorithm).await?;
        self.adopt(material, how).await
    }

    /// Makes an existing private key the signing key (see `Rotation::Adopt`).
    pub async fn import(&self, material: KeyMaterial) -> Result<Option<String>> {
        self.adopt(material, Rotation::Adopt).await
    }

    async fn adopt(&self, material: KeyMaterial, how: Rotation) -> Result<Option<String>> {
        let kid = material.jwk.kid.clone();
        let applied = self
            .change_key_set(|records, now| {
                if records.iter().any(|r| r.kid == kid) {
                    return Err(Error::Conflict(format!(
                        "key {kid} is already in the key set"
                    )));
                }
                let record = material.record(now, now).map_err(Error::internal)?;
                Ok(keys::plan_rotation(
                    records,
                    record,
                    how,
                    &self.settings.schedule,
                    now,
                ))
            })
            .await?;
        Ok(applied.then_some(kid))
    }

    /// The OIDC discovery document.
    /// The discovery document (it names the algorithms of the published keys).
    pub fn discovery(&self) -> String {
        self.ring().discovery.clone()
    }

    /// The algorithm of the key that signs now (none before the first key).
    pub fn signing_algorithm(&self) -> Option<Algorithm> {
        let ring = self.ring();
        keys::current(&ring.records, self.clock.now())
            .and_then(|key| Algorithm::parse(&key.algorithm))
    }

    /// The algorithms of the published keys.
    pub fn published_algorithms(&self) -> Vec<Algorithm> {
        let ring = self.ring();
        let now = self.clock.now();
        let mut algorithms: Vec<Algorithm> = Vec::new();
        for key in &ring.records {
            if KeyState::of(key, now).is_published() {
                if let Some(algorithm) = Algorithm::parse(&key.algorithm) {
                    if !algorithms.contains(&algorithm) {
                        algorithms.push(algorithm);
                    }
                }
            }
        }
        algorithms
    }

    /// The JWKS document: every published key.
    pub fn jwks(&self) -> String {
        self.ring().jwks.clone()
    }

    /// A token for a session the caller looked up; `NotFound` when it has
    /// expired. A recent token is reused (see `cache`) unless `fresh` is set.
    pub fn mint(&self, found: &SessionAndUser, fresh: bool) -> Result<MintedToken> {
        let now = self.clock.now();
        let iat = now.seconds();
        // Never outlive the session: its expiry, rounded down to whole seconds.
        let session_ends = found.session.expires.seconds();
        let exp = (iat + self.settings.token_lifetime_secs as i64).min(session_ends);
        if exp <= iat {
            return Err(no_live_session());
        }
        let ring = self.ring();
        let key = ring.signer(now).ok_or_else(|| {
            Error::internal("no signing key is current; the key check has not run")
        })?;
        let user = &found.user;
        let wants = |claim| self.settings.profile_claims.contains(&claim);
        let session = openssl::sha::sha256(found.session.session_token.as_bytes());
        let sid = session_id(&session);
        let mut claims = Claims {
            iss: &self.settings.issuer,
            sub: &user.id,
            aud: &self.settings.audience,
            iat: 0,
            exp: 0,
            sid: &sid,
            // Set below for a token signed now (the cache compares the rest).
            jti: "",
            email: user.email.as_deref().filter(|_| wants(ProfileClaim::Email)),
            email_verified: wants(ProfileClaim::EmailVerified)
                .then_some(user.email_verified.is_some()),
            name: user.name.as_deref().filter(|_| wants(ProfileClaim::Name)),
            picture: user
                .image
                .as_deref()
                .filter(|_| wants(ProfileClaim::Picture)),
        };
        let identity = Identity {
            kid: key.kid().to_owned(),
            claims: serde_json::to_string(&claims).map_err(Error::internal)?,
        };
        let metrics = crate::metrics::get();
        if !fresh {
            if let Some(cached) = self.cache.get(&session, iat, session_ends, &identity) {
                if let Some(m) = metrics {
                    m.tokens_reused.inc();
                }
                return Ok(MintedToken {
                    token: cached.token,
                    expires_at: Timestamp::from_millis(cached.exp * 1000),
                });
            }
        }
        let jti = token_id()?;
        (claims.iat, claims.exp, claims.jti) = (iat, exp, &jti);
        let signing = std::time::Instant::now();
        let token = key.sign(&claims)?;
        if let Some(m) = metrics {
            m.signing_seconds.observe(signing.elapsed().as_secs_f64());
            m.tokens_fresh.inc();
        }
        self.cache.put(
            session,
            Cached {
                token: token.clone(),
                iat,
                exp,
                identity,
            },
            iat,
        );
        Ok(MintedToken {
            token,
            expires_at: Timestamp::from_millis(exp * 1000),
        })
    }

    /// The issuer's clock's time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Every key with its state, for `authstore keys list`.
    pub async fn describe_keys(&self) -> Result<Vec<(KeyRecord, KeyState)>> {
        let now = self.clock.now();
        Ok(self
            .keys
            .signing_keys()
            .await?
            .keys
            .into_iter()
            .map(|record| {
                let state = KeyState::of(&record, now);
                (record, state)
            })
            .collect())
    }
}

/// A token's `sid`: see [`crate::store::session_id`].
pub use crate::store::session_id;

/// A token's `jti`: 128 random bits.
fn token_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    openssl::rand::rand_bytes(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The answer for a session that is unknown or expired.
pub fn no_live_session() -> Error {
    Error::NotFound("no live session has this token".into())
}

fn discovery_document(settings: &IssuerSettings, algorithms: &[Algorithm]) -> String {
    let issuer = &settings.issuer;
    json!({
        "issuer": issuer,
        "jwks_uri": settings.jwks_uri(),
        "authorization_endpoint": format!("{issuer}/authorize"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algorithms,
    })
    .to_string()
}

/// One line per change, logged once it is applied.
fn describe(changes: &KeyChanges) -> Vec<String> {
    let when = |t: Option<Timestamp>| t.map_or("never".into(), |t| t.to_string());
    let mut lines = Vec::new();
    for key in &changes.insert {
        lines.push(format!(
            "signing key {} added; signs from {}",
            key.kid, key.signs_from
        ));
    }
    for key in &changes.reschedule {
        lines.push(format!(
            "signing key {} rescheduled: retires {}, leaves the JWKS {}",
            key.kid,
            when(key.retires_at),
            when(key.unpublish_at),
        ));
    }
    for kid in &changes.erase {
        lines.push(format!(
            "signing key {kid} no longer signs: its private half is erased"
        ));
    }
    for kid in &changes.delete {
        lines.push(format!("signing key {kid} removed from the key set"));
    }
    lines
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        Error::internal(e)
    }
}

/// A new key, made on the blocking pool: an RSA key takes 50-800 ms, which
/// on an async worker would stall every request it serves (and on the
/// main arbiter the purge, the webhooks and the control socket).
async fn generate(algorithm: keys::Algorithm) -> Result<KeyMaterial> {
    tokio::task::spawn_blocking(move || KeyMaterial::generate(algorithm))
        .await
        .map_err(|e| Error::internal(format!("key generation did not finish: {e}")))?
        .map_err(Error::internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, SystemClock};
    use crate::model::{Session, User};
    use crate::store::memory::MemoryKeys;
    use actix_web::ResponseError;

    fn settings() -> IssuerSettings {
        crate::Config::default().issuer_settings("https://auth.example.com".into())
    }

    #[test]
    fn keys_are_generated_off_the_async_worker() {
        // One thread runs every task: if generation ran on it, the other task
        // could not run before the key is ready.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = ran.clone();
            let _other =
                tokio::spawn(async move { flag.store(true, std::sync::atomic::Ordering::SeqCst) });
            generate(Algorithm::RS256).await.unwrap();
            assert!(
                ran.load(std::sync::atomic::Ordering::SeqCst),
                "the worker was held for the whole RSA generation"
            );
        });
    }

    fn signed_in() -> SessionAndUser {
        SessionAndUser {
            session: Session {
                session_token: "a-session".into(),
                user_id: "u1".into(),
                expires: SystemClock.now().plus_secs(86_400),
            },
            user: User {
                id: "u1".into(),
                email: None,
                name: None,
                email_verified: None,
                image: None,
                extra: Default::default(),
            },
            last_seen_at: None,
        }
    }

    fn kid(token: &str) -> String {
        let header = token.split('.').next().unwrap();
        let header: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header)
                .unwrap(),
        )
        .unwrap();
        header["kid"].as_str().unwrap().to_owned()
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        actix_web::rt::System::new().block_on(future)
    }

    fn two_issuers() -> (Arc<MemoryKeys>, Issuer, Issuer) {
        let keys = Arc::new(MemoryKeys::default());
        let clock = Arc::new(ManualClock::new(SystemClock.now()));
        let start = |keys: &Arc<MemoryKeys>| {
            actix_web::rt::System::new()
                .block_on(Issuer::start(settings(), keys.clone(), clock.clone()))
                .unwrap()
        };
        let (a, b) = (start(&keys), start(&keys));
        (keys, a, b)
    }

    #[test]
    fn two_issuers_starting_on_one_empty_store_share_one_key() {
        let (_, a, b) = two_issuers();
        assert_eq!(a.jwks(), b.jwks());
        let minted = a.mint(&signed_in(), true).unwrap();
        assert_eq!(
            kid(&minted.token),
            kid(&b.mint(&signed_in(), true).unwrap().token)
        );
    }

    #[test]
    fn a_change_made_by_another_issuer_is_planned_again_not_overwritten() {
        let (keys, a, b) = two_issuers();
        let waiting = block_on(a.rotate(Rotation::Scheduled)).unwrap();
        assert!(waiting.is_some());
        // B planned from an older key set: the swap is stale, B reads again
        // and finds a key already waiting.
        let again = block_on(b.rotate(Rotation::Scheduled)).unwrap();
        assert_eq!(again, None);
        let set = block_on(keys.signing_keys()).unwrap();
        assert_eq!(set.keys.len(), 2);
    }

    #[test]
    fn refresh_picks_up_another_issuers_rotation() {
        let (_, a, b) = two_issuers();
        let old = kid(&b.mint(&signed_in(), true).unwrap().token);
        let new = block_on(a.rotate(Rotation::Immediate)).unwrap().unwrap();
        assert_eq!(kid(&b.mint(&signed_in(), true).unwrap().token), old);
        block_on(b.refresh()).unwrap();
        assert_eq!(kid(&b.mint(&signed_in(), true).unwrap().token), new);
        assert_eq!(a.jwks(), b.jwks());
    }

    #[test]
    fn an_unreachable_store_is_a_503_and_loaded_keys_keep_signing() {
        let (keys, _, b) = two_issuers();
        keys.set_down(true);
        let err = actix_web::rt::System::new()
            .block_on(b.refresh())
            .unwrap_err();
        assert_eq!(err.status_code().as_u16(), 503);
        assert_eq!(err.code(), "unavailable");
        assert!(b.mint(&signed_in(), true).is_ok());
    }

    #[test]
    fn an_expired_session_gets_no_token() {
        let (_, a, _) = two_issuers();
        let mut expired = signed_in();
        expired.session.expires = Timestamp::from_millis(SystemClock.now().millis() - 1000);
        let err = a.mint(&expired, true).unwrap_err();
        assert_eq!(err.code(), "not_found");
    }
}
