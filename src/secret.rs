//! The shared secret that gates the adapter and token endpoints.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::path::{Path, PathBuf};

/// Below this many bytes a secret is refused: it could be guessed.
pub const MIN_LEN: usize = 16;

/// A secret value. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    value: String,
    /// SHA-256 of `value`, computed once: requests compare against it.
    digest: [u8; 32],
}

impl Secret {
    /// 32 random bytes, base64url: what `authstore secret` prints.
    pub fn generate() -> Result<Self, SecretError> {
        let mut bytes = [0u8; 32];
        openssl::rand::rand_bytes(&mut bytes).map_err(SecretError::Random)?;
        Ok(Secret::from_string(URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub fn new(value: impl Into<String>) -> Result<Self, SecretError> {
        let value = value.into().trim().to_owned();
        if value.len() < MIN_LEN {
            return Err(SecretError::TooShort);
        }
        Ok(Secret::from_string(value))
    }

    fn from_string(value: String) -> Self {
        let digest = openssl::sha::sha256(value.as_bytes());
        Secret { value, digest }
    }

    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Compares in constant time. Both sides are hashed first so that the
    /// comparison does not leak the length either.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let presented = openssl::sha::sha256(presented);
        openssl::memcmp::eq(&self.digest, &presented)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.value)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Secret::new(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "the secret is shorter than {MIN_LEN} characters; `authstore secret` prints a good one"
    )]
    TooShort,
    #[error("cannot read the secret file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the secret file {path} does not hold a usable secret: {source}")]
    Invalid {
        path: PathBuf,
        source: Box<SecretError>,
    },
    #[error("the system's random source failed: {0}")]
    Random(openssl::error::ErrorStack),
    #[error("cannot write the generated secret to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where the secret in use came from, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOrigin {
    Configured,
    File(PathBuf),
    Generated(PathBuf),
}

impl fmt::Display for SecretOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretOrigin::Configured => f.write_str("the secret setting"),
            SecretOrigin::File(path) => write!(f, "file {}", path.display()),
            SecretOrigin::Generated(path) => write!(f, "newly generated file {}", path.display()),
        }
    }
}

pub fn read_file(path: &Path) -> Result<Secret, SecretError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
        path: path.to_owned(),
        source,
    })?;
    Secret::new(text).map_err(|e| SecretError::Invalid {
        path: path.to_owned(),
        source: Box::new(e),
    })
}

/// Reads the secret in `path`, or, when there is no such file, generates one
/// and writes it there readable by the owner only (0600). Two processes
/// starting at once end with the same secret.
pub fn read_or_generate(path: &Path) -> Result<(Secret, SecretOrigin), SecretError> {
    if path.exists() {
        crate::files::warn_if_readable_by_others(path, "secret");
        return Ok((read_file(path)?, SecretOrigin::File(path.to_owned())));
    }
    let secret = Secret::generate()?;
    let created = crate::files::create_private(path, format!("{}\n", secret.expose()).as_bytes())
        .map_err(|source| SecretError::Write {
        path: path.to_owned(),
        source,
    })?;
    if created {
        Ok((secret, SecretOrigin::Generated(path.to_owned())))
    } else {
        Ok((read_file(path)?, SecretOrigin::File(path.to_owned())))
    }
}

/// The secrets a server accepts: the current one, and during a rotation the
/// previous ones until `previous_until` (when set).
#[derive(Clone, Debug)]
pub struct Secrets {
    pub current: Secret,
    pub previous: Vec<Secret>,
    pub previous_until: Option<crate::timestamp::Timestamp>,
}

impl Secrets {
    pub fn only(current: Secret) -> Self {
        Secrets {
            current,
            previous: Vec::new(),
            previous_until: None,
        }
    }

    /// Whether `presented` is the current secret, or a previous one still in
    /// its overlap at `now`. Every candidate is compared (in constant time),
    /// so the answer's timing does not say which one matched.
    pub fn accept(&self, presented: &[u8], now: crate::timestamp::Timestamp) -> bool {
        let overlap = self.previous_until.is_none_or(|until| now < until);
        let previous = self
            .previous
            .iter()
            .fold(false, |hit, secret| secret.matches(presented) | hit);
        self.current.matches(presented) | (previous & overlap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_secret_is_written_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.secret");
        let (first, origin) = read_or_generate(&path).unwrap();
        assert_eq!(origin, SecretOrigin::Generated(path.clone()));
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (again, origin) = read_or_generate(&path).unwrap();
        assert_eq!(origin, SecretOrigin::File(path));
        assert_eq!(first, again);
    }

    #[test]
    fn matches_only_the_exact_secret() {
        let secret = Secret::new("0123456789abcdef-secret").unwrap();
        assert!(secret.matches(b"0123456789abcdef-secret"));
        assert!(!secret.matches(b"0123456789abcdef-secreT"));
        assert!(!secret.matches(b""));
    }

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("0123456789abcdef-secret").unwrap();
        assert!(!format!("{secret:?}").contains("0123"));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(Secret::new("short"), Err(SecretError::TooShort)));
    }

    #[test]
    fn previous_secrets_are_accepted_only_within_their_overlap() {
        use crate::timestamp::Timestamp;
        let secrets = Secrets {
            current: Secret::new("the-new-secret-0123456789abcd").unwrap(),
            previous: vec![Secret::new("the-old-secret-0123456789abcd").unwrap()],
            previous_until: Some(Timestamp::from_millis(2_000)),
        };
        let at = Timestamp::from_millis;
        assert!(secrets.accept(b"the-new-secret-0123456789abcd", at(1_000)));
        assert!(secrets.accept(b"the-old-secret-0123456789abcd", at(1_000)));
        assert!(!secrets.accept(b"the-old-secret-0123456789abcd", at(2_000)));
        assert!(secrets.accept(b"the-new-secret-0123456789abcd", at(2_000)));
        assert!(!secrets.accept(b"another-secret-0123456789abcd", at(1_000)));
    }
}
