//! The OIDC issuer: discovery, the JWKS, and RS256 tokens for sessions.
//!
//! Keys live in the database (every process on it signs with the same keys)
//! and are loaded into a [`KeyRing`] that the background check refreshes.

mod cache;
pub mod jwt;
pub mod keys;

use self::cache::{Cached, Identity, TokenCache};
use self::jwt::{Claims, SigningKey};
use self::keys::{KeyError, KeyMaterial, KeyState, Rotation, Schedule};
use crate::clock::Clock;
use crate::config::{Config, ProfileClaim};
use crate::error::{Error, Result};
use crate::store::{KeyChanges, KeyRecord, Store};
use crate::timestamp::Timestamp;
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[derive(Debug, Clone)]
pub struct IssuerSettings {
    /// The public URL, byte-for-byte as in `iss`.
    pub issuer: String,
    pub audience: String,
    pub token_lifetime_secs: u64,
    pub jwks_max_age_secs: u64,
    pub profile_claims: Vec<ProfileClaim>,
    pub schedule: Schedule,
    pub token_cache_capacity: usize,
    pub token_reuse_min_remaining: f64,
}

impl IssuerSettings {
    pub fn from_config(config: &Config, issuer: String) -> Self {
        IssuerSettings {
            issuer,
            audience: config.audience.clone(),
            token_lifetime_secs: config.token_lifetime_secs,
            jwks_max_age_secs: config.jwks_max_age_secs,
            profile_claims: config.profile_claims.clone(),
            token_cache_capacity: config.token_cache_capacity,
            token_reuse_min_remaining: config.token_reuse_min_remaining,
            schedule: Schedule {
                lead_time_secs: config.key_lead_time_secs,
                token_lifetime_secs: config.token_lifetime_secs,
                jwks_max_age_secs: config.jwks_max_age_secs,
                rotation_period_secs: (config.key_rotation_days > 0)
                    .then(|| config.key_rotation_days * 86_400),
            },
        }
    }

    pub fn jwks_uri(&self) -> String {
        format!("{}/.well-known/jwks.json", self.issuer)
    }
}

/// The loaded keys, and the JWKS they publish.
struct KeyRing {
    records: Vec<KeyRecord>,
    signers: HashMap<String, Arc<SigningKey>>,
    jwks: String,
}

impl KeyRing {
    fn load(records: Vec<KeyRecord>, now: Timestamp) -> Result<Self> {
        let mut signers = HashMap::with_capacity(records.len());
        for record in &records {
            let material = KeyMaterial::from_pkcs8_der(&record.private_key_der).map_err(|e| {
                Error::internal(format!("signing key {} is unreadable: {e}", record.kid))
            })?;
            signers.insert(record.kid.clone(), Arc::new(SigningKey::new(material)));
        }
        let published: Vec<_> = records
            .iter()
            .filter(|record| KeyState::of(record, now).is_published())
            .map(|record| &signers[&record.kid].material.jwk)
            .collect();
        let jwks = json!({ "keys": published }).to_string();
        Ok(KeyRing {
            records,
            signers,
            jwks,
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
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    ring: RwLock<Arc<KeyRing>>,
    cache: TokenCache,
    /// The discovery document: fixed by the settings, so built once.
    discovery: String,
}

impl Issuer {
    /// Loads the keys as they are in the database.
    pub async fn open(
        settings: IssuerSettings,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let ring = KeyRing::load(store.signing_keys().await?, clock.now())?;
        let cache = TokenCache::new(
            settings.token_cache_capacity,
            settings.token_reuse_min_remaining,
        );
        Ok(Issuer {
            discovery: discovery_document(&settings),
            settings,
            store,
            clock,
            ring: RwLock::new(Arc::new(ring)),
            cache,
        })
    }

    /// Loads the keys after applying due schedule steps; creates the first
    /// key when the database has none.
    pub async fn start(
        settings: IssuerSettings,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let issuer = Self::open(settings, store, clock).await?;
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

    /// Applies due schedule steps (removal, automatic rotation, a first key)
    /// and reloads the keys from the database.
    pub async fn maintain(&self) -> Result<()> {
        let now = self.clock.now();
        let records = self.store.signing_keys().await?;
        let changes = keys::plan_maintenance(&records, &self.settings.schedule, now, || {
            KeyMaterial::generate()?.record(now, now)
        })
        .map_err(Error::internal)?;
        if !changes.is_empty() {
            log_changes(&changes);
            self.store.save_signing_keys(changes).await?;
        }
        self.reload().await
    }

    async fn reload(&self) -> Result<()> {
        let ring = KeyRing::load(self.store.signing_keys().await?, self.clock.now())?;
        *self
            .ring
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(ring);
        Ok(())
    }

    /// Schedules (or, for `Immediate`, performs) a rotation to a new key.
    /// Returns the new key's id, or `None` when a key is already waiting.
    pub async fn rotate(&self, how: Rotation) -> Result<Option<String>> {
        let material = KeyMaterial::generate().map_err(Error::internal)?;
        self.adopt(material, how).await
    }

    /// Makes an existing private key the signing key (see `Rotation::Adopt`).
    pub async fn import(&self, material: KeyMaterial) -> Result<Option<String>> {
        self.adopt(material, Rotation::Adopt).await
    }

    async fn adopt(&self, material: KeyMaterial, how: Rotation) -> Result<Option<String>> {
        let now = self.clock.now();
        let records = self.store.signing_keys().await?;
        if records.iter().any(|r| r.kid == material.jwk.kid) {
            return Err(Error::Conflict(format!(
                "key {} is already in the key set",
                material.jwk.kid
            )));
        }
        let record = material.record(now, now).map_err(Error::internal)?;
        let Some(changes) =
            keys::plan_rotation(&records, record, how, &self.settings.schedule, now)
        else {
            return Ok(None);
        };
        log_changes(&changes);
        self.store.save_signing_keys(changes).await?;
        self.reload().await?;
        Ok(Some(material.jwk.kid))
    }

    /// The OIDC discovery document.
    pub fn discovery(&self) -> &str {
        &self.discovery
    }

    /// The JWKS document: every published key.
    pub fn jwks(&self) -> String {
        self.ring().jwks.clone()
    }

    /// A token for a live session; `NotFound` for an unknown or expired one.
    /// A recent token is reused (see `cache`) unless `fresh` is set.
    pub async fn mint(&self, session_token: &str, fresh: bool) -> Result<MintedToken> {
        let not_found = || Error::NotFound("no live session has this token".into());
        let found = self
            .store
            .get_session_and_user(session_token)
            .await?
            .ok_or_else(not_found)?;
        let now = self.clock.now();
        let iat = now.seconds();
        // Never outlive the session: its expiry, rounded down to whole seconds.
        let session_ends = found.session.expires.seconds();
        let exp = (iat + self.settings.token_lifetime_secs as i64).min(session_ends);
        if exp <= iat {
            return Err(not_found());
        }
        let ring = self.ring();
        let key = ring.signer(now).ok_or_else(|| {
            Error::internal("no signing key is current; the key check has not run")
        })?;
        let user = &found.user;
        let wants = |claim| self.settings.profile_claims.contains(&claim);
        let mut claims = Claims {
            iss: &self.settings.issuer,
            sub: &user.id,
            aud: &self.settings.audience,
            iat: 0,
            exp: 0,
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
        let session = openssl::sha::sha256(session_token.as_bytes());
        if !fresh {
            if let Some(cached) = self.cache.get(&session, iat, session_ends, &identity) {
                return Ok(MintedToken {
                    token: cached.token,
                    expires_at: Timestamp::from_millis(cached.exp * 1000),
                });
            }
        }
        (claims.iat, claims.exp) = (iat, exp);
        let token = key.sign(&claims)?;
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

    /// Every key with its state, for `authstore keys list`.
    pub async fn describe_keys(&self) -> Result<Vec<(KeyRecord, KeyState)>> {
        let now = self.clock.now();
        Ok(self
            .store
            .signing_keys()
            .await?
            .into_iter()
            .map(|record| {
                let state = KeyState::of(&record, now);
                (record, state)
            })
            .collect())
    }
}

fn discovery_document(settings: &IssuerSettings) -> String {
    let issuer = &settings.issuer;
    json!({
        "issuer": issuer,
        "jwks_uri": settings.jwks_uri(),
        "authorization_endpoint": format!("{issuer}/authorize"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [keys::ALGORITHM],
    })
    .to_string()
}

fn log_changes(changes: &KeyChanges) {
    for key in &changes.insert {
        log::info!(
            "signing key {} added; signs from {}",
            key.kid,
            key.signs_from
        );
    }
    for key in &changes.reschedule {
        log::info!(
            "signing key {} rescheduled: retires {}, leaves the JWKS {}",
            key.kid,
            key.retires_at.map_or("never".into(), |t| t.to_string()),
            key.unpublish_at.map_or("never".into(), |t| t.to_string()),
        );
    }
    for kid in &changes.delete {
        log::info!("signing key {kid} removed from the key set");
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        Error::internal(e)
    }
}
