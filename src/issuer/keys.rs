//! Signing keys and their lifecycle.
//!
//! A verifier (Convex among them) caches the JWKS and does not refetch on an
//! unknown `kid`. So a key is published before it signs (`Next`), signs for
//! a while (`Current`), and stays published after it stops signing
//! (`Retired`) until every token it signed has expired and every cache has
//! turned over. The state is a function of the persisted schedule and the
//! clock, so a restart mid-schedule keeps the schedule.

use crate::store::{KeyChanges, KeyRecord};
use crate::timestamp::Timestamp;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::rsa::Rsa;
use serde::{Deserialize, Serialize};

const RSA_BITS: u32 = 2048;
/// Bytes of a P-256 coordinate (and of each half of an ES256 signature).
pub const P256_BYTES: usize = 32;

/// How tokens are signed: the JWS `alg` of a key (RFC 7518). Convex accepts both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 over a 2048-bit RSA key.
    #[default]
    RS256,
    /// ECDSA over P-256 with SHA-256: smaller keys and tokens, faster signing.
    ES256,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::ES256 => "ES256",
        }
    }

    pub fn parse(name: &str) -> Option<Algorithm> {
        [Algorithm::RS256, Algorithm::ES256]
            .into_iter()
            .find(|a| a.name() == name)
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published in the JWKS, not yet signing.
    Next,
    /// The one key that signs.
    Current,
    /// Still published, signs nothing.
    Retired,
    /// Out of the JWKS; deleted by the next maintenance pass.
    Removed,
}

impl KeyState {
    pub fn of(key: &KeyRecord, now: Timestamp) -> KeyState {
        if now < key.signs_from {
            KeyState::Next
        } else if key.retires_at.is_none_or(|at| now < at) {
            KeyState::Current
        } else if key.unpublish_at.is_none_or(|at| now < at) {
            KeyState::Retired
        } else {
            KeyState::Removed
        }
    }

    pub fn is_published(self) -> bool {
        self != KeyState::Removed
    }

    pub fn name(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Current => "current",
            KeyState::Retired => "retired",
            KeyState::Removed => "removed",
        }
    }
}

/// How long the phases of the lifecycle last.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// How long a new key is published before it signs.
    pub lead_time_secs: u64,
    /// The longest a token can live.
    pub token_lifetime_secs: u64,
    /// How long verifiers may cache the JWKS.
    pub jwks_max_age_secs: u64,
    /// Rotate automatically this long after a key started signing (off: None).
    pub rotation_period_secs: Option<u64>,
}

impl Schedule {
    /// How long a retired key stays published: its last token's lifetime,
    /// plus a cache turnover.
    pub fn retirement_secs(&self) -> u64 {
        self.token_lifetime_secs + self.jwks_max_age_secs
    }
}

/// The public half of a key, as published in the JWKS: `n`, `e` for RSA,
/// `crv`, `x`, `y` for EC.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Jwk {
    pub kty: &'static str,
    #[serde(rename = "use")]
    pub use_: &'static str,
    pub alg: Algorithm,
    pub kid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a usable private key: {0}")]
    Unreadable(openssl::error::ErrorStack),
    #[error(
        "the key is neither RSA nor EC P-256; authstore signs RS256 (RSA, 2048 bits or more) \
         or ES256 (P-256)"
    )]
    Unsupported,
    #[error("the RSA key has {0} bits; at least 2048 are required")]
    TooSmall(u32),
    #[error("the stored public key is unreadable: {0}")]
    PublicUnreadable(openssl::error::ErrorStack),
    #[error("openssl: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
    /// A plan needs a new key that has not been generated yet (generation
    /// runs off the async workers; the plan is made again with the key).
    #[error("a new key is needed and was not generated yet")]
    NotGenerated,
}

impl Jwk {
    /// The JWK of a stored public key (SubjectPublicKeyInfo DER).
    pub fn from_public_der(der: &[u8]) -> Result<Jwk, KeyError> {
        let public: PKey<Public> =
            PKey::public_key_from_der(der).map_err(KeyError::PublicUnreadable)?;
        Jwk::of(&public)
    }

    fn of<T: openssl::pkey::HasPublic>(key: &PKey<T>) -> Result<Jwk, KeyError> {
        match key.id() {
            Id::RSA => {
                let rsa = key.rsa()?;
                Ok(Jwk::rsa(rsa.n().to_vec(), rsa.e().to_vec()))
            }
            Id::EC => {
                let ec = key.ec_key()?;
                if ec.group().curve_name() != Some(Nid::X9_62_PRIME256V1) {
                    return Err(KeyError::Unsupported);
                }
                let (mut x, mut y) = (openssl::bn::BigNum::new()?, openssl::bn::BigNum::new()?);
                let mut context = BigNumContext::new()?;
                ec.public_key()
                    .affine_coordinates(ec.group(), &mut x, &mut y, &mut context)?;
                let width = i32::try_from(P256_BYTES).unwrap_or(32);
                Ok(Jwk::ec(x.to_vec_padded(width)?, y.to_vec_padded(width)?))
            }
            _ => Err(KeyError::Unsupported),
        }
    }

    fn rsa(n: Vec<u8>, e: Vec<u8>) -> Jwk {
        let n = URL_SAFE_NO_PAD.encode(n);
        let e = URL_SAFE_NO_PAD.encode(e);
        Jwk {
            kty: "RSA",
            use_: "sig",
            alg: Algorithm::RS256,
            // RFC 7638: the required members in lexicographic order.
            kid: thumbprint(&format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#)),
            n: Some(n),
            e: Some(e),
            crv: None,
            x: None,
            y: None,
        }
    }

    fn ec(x: Vec<u8>, y: Vec<u8>) -> Jwk {
        let x = URL_SAFE_NO_PAD.encode(x);
        let y = URL_SAFE_NO_PAD.encode(y);
        Jwk {
            kty: "EC",
            use_: "sig",
            alg: Algorithm::ES256,
            kid: thumbprint(&format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#
            )),
            n: None,
            e: None,
            crv: Some("P-256"),
            x: Some(x),
            y: Some(y),
        }
    }
}

/// A private key ready to sign, with its public JWK.
pub struct KeyMaterial {
    pub private: PKey<Private>,
    pub jwk: Jwk,
}

impl KeyMaterial {
    /// A new key for `algorithm`: RSA-2048 (50-800 ms) or P-256 (well under 1 ms).
    pub fn generate(algorithm: Algorithm) -> Result<Self, KeyError> {
        match algorithm {
            Algorithm::RS256 => Self::from_pkey(PKey::from_rsa(Rsa::generate(RSA_BITS)?)?),
            Algorithm::ES256 => {
                let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
                Self::from_pkey(PKey::from_ec_key(EcKey::generate(&group)?)?)
            }
        }
    }

    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        Self::from_pkey(PKey::private_key_from_pkcs8(der).map_err(KeyError::Unreadable)?)
    }

    /// Reads a PEM private key (PKCS#8 `BEGIN PRIVATE KEY`, PKCS#1 RSA or SEC 1 EC).
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        Self::from_pkey(PKey::private_key_from_pem(pem).map_err(KeyError::Unreadable)?)
    }

    fn from_pkey(private: PKey<Private>) -> Result<Self, KeyError> {
        if private.id() == Id::RSA && private.bits() < RSA_BITS {
            return Err(KeyError::TooSmall(private.bits()));
        }
        let jwk = Jwk::of(&private)?;
        Ok(KeyMaterial { private, jwk })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.jwk.alg
    }

    /// A new record for this key; the schedule is the caller's.
    pub fn record(
        &self,
        created_at: Timestamp,
        signs_from: Timestamp,
    ) -> Result<KeyRecord, KeyError> {
        Ok(KeyRecord {
            kid: self.jwk.kid.clone(),
            algorithm: self.algorithm().name().into(),
            public_key_der: self.private.public_key_to_der()?,
            private_key_der: Some(self.private.private_key_to_pkcs8()?),
            created_at,
            signs_from,
            retires_at: None,
            unpublish_at: None,
        })
    }
}

/// RFC 7638: SHA-256 over the canonical JSON of the required members.
fn thumbprint(canonical: &str) -> String {
    URL_SAFE_NO_PAD.encode(openssl::sha::sha256(canonical.as_bytes()))
}

/// The key that signs at `now`: the current one that started last.
pub fn current(keys: &[KeyRecord], now: Timestamp) -> Option<&KeyRecord> {
    keys.iter()
        .filter(|key| KeyState::of(key, now) == KeyState::Current)
        .max_by(|a, b| (a.signs_from, &a.kid).cmp(&(b.signs_from, &b.kid)))
}

/// What changes when `new` joins the set.
///
/// * `Scheduled`: `new` signs after the lead time; the current key retires at
///   that moment and stays published for the retirement period. Idempotent:
///   when a key is already waiting, nothing changes.
/// * `Immediate` (a compromised key): `new` signs now; the current key leaves
///   the JWKS now; a waiting key is dropped; retired keys keep their schedule.
/// * `Adopt` (an imported key): `new` signs now; the previous key retires now
///   and stays published for the retirement period; a waiting key is dropped.
///
/// A key that stops signing now loses its private half in the same change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    Scheduled,
    Immediate,
    Adopt,
}

pub fn plan_rotation(
    keys: &[KeyRecord],
    mut new: KeyRecord,
    how: Rotation,
    schedule: &Schedule,
    now: Timestamp,
) -> Option<KeyChanges> {
    let mut waiting = keys
        .iter()
        .filter(|k| KeyState::of(k, now) == KeyState::Next)
        .peekable();
    let mut changes = KeyChanges::default();
    let starts = match how {
        Rotation::Scheduled if waiting.peek().is_some() => return None,
        Rotation::Scheduled => now.plus_secs(schedule.lead_time_secs),
        Rotation::Immediate | Rotation::Adopt => {
            changes.delete.extend(waiting.map(|k| k.kid.clone()));
            now
        }
    };
    for key in keys {
        let state = KeyState::of(key, now);
        let mut key = key.clone();
        match (how, state) {
            (_, KeyState::Next | KeyState::Retired | KeyState::Removed) => continue,
            (Rotation::Immediate, KeyState::Current) => {
                key.retires_at = Some(now);
                key.unpublish_at = Some(now);
            }
            (_, KeyState::Current) => {
                key.retires_at = Some(starts);
                key.unpublish_at = Some(starts.plus_secs(schedule.retirement_secs()));
            }
        }
        if KeyState::of(&key, now) != KeyState::Current && key.private_key_der.is_some() {
            changes.erase.push(key.kid.clone());
        }
        changes.reschedule.push(key);
    }
    new.signs_from = starts;
    changes.insert.push(new);
    Some(changes)
}

/// The periodic check: erases the private half of keys that retired, removes
/// keys past their publication, and rotates when automatic rotation is due.
/// `fresh_key` is called only when a key is needed.
pub fn plan_maintenance(
    keys: &[KeyRecord],
    schedule: &Schedule,
    now: Timestamp,
    fresh_key: impl FnOnce() -> Result<KeyRecord, KeyError>,
) -> Result<KeyChanges, KeyError> {
    let mut changes = KeyChanges::default();
    let live: Vec<KeyRecord> = keys
        .iter()
        .filter(|key| {
            let state = KeyState::of(key, now);
            if state == KeyState::Removed {
                changes.delete.push(key.kid.clone());
            } else if state == KeyState::Retired && key.private_key_der.is_some() {
                changes.erase.push(key.kid.clone());
            }
            state != KeyState::Removed
        })
        .cloned()
        .collect();
    match current(&live, now) {
        // No key signs (first start, or every key was retired): one signs now.
        None if !live.iter().any(|k| KeyState::of(k, now) == KeyState::Next) => {
            let mut key = fresh_key()?;
            key.signs_from = now;
            changes.insert.push(key);
        }
        Some(active) => {
            if let Some(period) = schedule.rotation_period_secs {
                let due = active
                    .signs_from
                    .plus_secs(period.saturating_sub(schedule.lead_time_secs));
                if now >= due {
                    if let Some(rotation) =
                        plan_rotation(&live, fresh_key()?, Rotation::Scheduled, schedule, now)
                    {
                        changes.insert.extend(rotation.insert);
                        changes.reschedule.extend(rotation.reschedule);
                        changes.erase.extend(rotation.erase);
                        changes.delete.extend(rotation.delete);
                    }
                }
            }
        }
        None => {}
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, SystemClock};

    const SCHEDULE: Schedule = Schedule {
        lead_time_secs: 86_400,
        token_lifetime_secs: 3_600,
        jwks_max_age_secs: 300,
        rotation_period_secs: None,
    };

    fn record(kid: &str, signs_from: i64) -> KeyRecord {
        KeyRecord {
            kid: kid.into(),
            algorithm: Algorithm::RS256.name().into(),
            public_key_der: Vec::new(),
            private_key_der: Some(Vec::new()),
            created_at: Timestamp::from_millis(signs_from),
            signs_from: Timestamp::from_millis(signs_from),
            retires_at: None,
            unpublish_at: None,
        }
    }

    fn apply(keys: &mut Vec<KeyRecord>, changes: KeyChanges) {
        keys.retain(|k| !changes.delete.contains(&k.kid));
        for changed in changes.reschedule {
            let slot = keys.iter_mut().find(|k| k.kid == changed.kid).unwrap();
            *slot = changed;
        }
        for kid in &changes.erase {
            keys.iter_mut()
                .find(|k| &k.kid == kid)
                .unwrap()
                .private_key_der = None;
        }
        keys.extend(changes.insert);
    }

    fn state(keys: &[KeyRecord], kid: &str, now: Timestamp) -> KeyState {
        KeyState::of(keys.iter().find(|k| k.kid == kid).unwrap(), now)
    }

    #[test]
    fn scheduled_rotation_publishes_before_signing_and_retires_after_grace() {
        let t0 = Timestamp::from_millis(1_000_000);
        let mut keys = vec![record("a", 0)];
        let changes =
            plan_rotation(&keys, record("b", 0), Rotation::Scheduled, &SCHEDULE, t0).unwrap();
        apply(&mut keys, changes);
        assert_eq!(state(&keys, "b", t0), KeyState::Next);
        assert_eq!(current(&keys, t0).unwrap().kid, "a");

        let switch = t0.plus_secs(SCHEDULE.lead_time_secs);
        let just_before = Timestamp::from_millis(switch.millis() - 1);
        assert_eq!(current(&keys, just_before).unwrap().kid, "a");
        assert_eq!(current(&keys, switch).unwrap().kid, "b");
        assert_eq!(state(&keys, "a", switch), KeyState::Retired);

        let gone = switch.plus_secs(SCHEDULE.retirement_secs());
        assert_eq!(
            state(&keys, "a", Timestamp::from_millis(gone.millis() - 1)),
            KeyState::Retired
        );
        assert_eq!(state(&keys, "a", gone), KeyState::Removed);
    }

    #[test]
    fn exactly_one_key_signs_at_every_instant() {
        let t0 = Timestamp::from_millis(1_000_000);
        let mut keys = vec![record("a", 0)];
        let changes =
            plan_rotation(&keys, record("b", 0), Rotation::Scheduled, &SCHEDULE, t0).unwrap();
        apply(&mut keys, changes);
        for step in 0..200 {
            let now = t0.plus_secs(step * 600);
            let signing = keys
                .iter()
                .filter(|k| KeyState::of(k, now) == KeyState::Current)
                .count();
            assert_eq!(signing, 1, "at step {step}");
        }
    }

    #[test]
    fn rotate_is_idempotent_while_a_key_waits() {
        let t0 = Timestamp::from_millis(1_000_000);
        let mut keys = vec![record("a", 0)];
        let changes =
            plan_rotation(&keys, record("b", 0), Rotation::Scheduled, &SCHEDULE, t0).unwrap();
        apply(&mut keys, changes);
        assert!(plan_rotation(
            &keys,
            record("c", 0),
            Rotation::Scheduled,
            &SCHEDULE,
            t0.plus_secs(60)
        )
        .is_none());
    }

    #[test]
    fn immediate_rotation_unpublishes_the_old_key_at_once() {
        let t0 = Timestamp::from_millis(1_000_000);
        let mut keys = vec![record("a", 0)];
        let changes =
            plan_rotation(&keys, record("b", 0), Rotation::Scheduled, &SCHEDULE, t0).unwrap();
        apply(&mut keys, changes);
        let changes =
            plan_rotation(&keys, record("c", 0), Rotation::Immediate, &SCHEDULE, t0).unwrap();
        apply(&mut keys, changes);
        assert_eq!(current(&keys, t0).unwrap().kid, "c");
        assert_eq!(state(&keys, "a", t0), KeyState::Removed);
        assert!(
            keys.iter().all(|k| k.kid != "b"),
            "the waiting key is dropped"
        );
        let a = keys.iter().find(|k| k.kid == "a").unwrap();
        assert!(a.private_key_der.is_none(), "the compromised key is erased");
    }

    #[test]
    fn a_key_loses_its_private_half_when_it_retires() {
        let t0 = Timestamp::from_millis(1_000_000);
        let mut keys = vec![record("a", 0)];
        let changes =
            plan_rotation(&keys, record("b", 0), Rotation::Scheduled, &SCHEDULE, t0).unwrap();
        assert!(changes.erase.is_empty(), "a still signs until b takes over");
        apply(&mut keys, changes);
        let switch = t0.plus_secs(SCHEDULE.lead_time_secs);
        let before =
            plan_maintenance(&keys, &SCHEDULE, t0.plus_secs(60), || unreachable!()).unwrap();
        assert!(before.is_empty());
        let changes = plan_maintenance(&keys, &SCHEDULE, switch, || unreachable!()).unwrap();
        assert_eq!(changes.erase, vec!["a".to_string()]);
        apply(&mut keys, changes);
        assert!(
            plan_maintenance(&keys, &SCHEDULE, switch, || unreachable!())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn maintenance_bootstraps_removes_and_auto_rotates() {
        let t0 = Timestamp::from_millis(1_000_000);
        let fresh = |kid: &'static str| move || Ok(record(kid, 0));
        let mut keys = Vec::new();
        let changes = plan_maintenance(&keys, &SCHEDULE, t0, fresh("a")).unwrap();
        apply(&mut keys, changes);
        assert_eq!(current(&keys, t0).unwrap().kid, "a");

        let auto = Schedule {
            rotation_period_secs: Some(7 * 86_400),
            ..SCHEDULE
        };
        let quiet = plan_maintenance(&keys, &auto, t0.plus_secs(86_400), fresh("x")).unwrap();
        assert!(quiet.is_empty());
        let due = t0.plus_secs(6 * 86_400);
        let changes = plan_maintenance(&keys, &auto, due, fresh("b")).unwrap();
        apply(&mut keys, changes);
        assert_eq!(state(&keys, "b", due), KeyState::Next);
        assert_eq!(current(&keys, t0.plus_secs(7 * 86_400)).unwrap().kid, "b");

        let later = t0.plus_secs(8 * 86_400);
        let changes = plan_maintenance(&keys, &SCHEDULE, later, fresh("x")).unwrap();
        assert_eq!(changes.delete, vec!["a".to_string()]);
    }

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // The example key of RFC 7638, section 3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            Jwk::rsa(
                URL_SAFE_NO_PAD.decode(n).unwrap(),
                URL_SAFE_NO_PAD.decode("AQAB").unwrap()
            )
            .kid,
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn an_es256_key_publishes_p256_coordinates_and_its_thumbprint() {
        let key = KeyMaterial::generate(Algorithm::ES256).unwrap();
        let jwk = serde_json::to_value(&key.jwk).unwrap();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["alg"], "ES256");
        assert!(jwk.get("n").is_none());
        for coordinate in ["x", "y"] {
            let bytes = URL_SAFE_NO_PAD
                .decode(jwk[coordinate].as_str().unwrap())
                .unwrap();
            assert_eq!(bytes.len(), P256_BYTES);
        }
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        assert_eq!(key.jwk.kid, thumbprint(&canonical));
        // Stored and read back, it is the same key.
        let now = SystemClock.now();
        let record = key.record(now, now).unwrap();
        assert_eq!(record.algorithm, "ES256");
        let again = KeyMaterial::from_pkcs8_der(record.private_key_der.as_ref().unwrap()).unwrap();
        assert_eq!(again.jwk, key.jwk);
        assert_eq!(
            Jwk::from_public_der(&record.public_key_der).unwrap(),
            key.jwk
        );
    }

    #[test]
    fn keys_of_other_curves_are_refused() {
        let group = EcGroup::from_curve_name(Nid::SECP384R1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let pem = key.private_key_to_pem_pkcs8().unwrap();
        assert!(matches!(
            KeyMaterial::from_pem(&pem),
            Err(KeyError::Unsupported)
        ));
    }
}
