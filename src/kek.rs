//! The key-encryption key (KEK): what seals secrets at rest.
//!
//! Signing keys and OAuth tokens are stored sealed with AES-256-GCM under a
//! key kept outside the database, so a copy of the database alone (a backup,
//! a replica, a file left readable) yields no usable secret. The KEK comes
//! from `key_encryption_key` / `key_encryption_key_file`, or is generated
//! once into `<database>.kek` (mode 0600).
//!
//! A new KEK must carry at least 256 bits (the `authstore secret` format:
//! 43 base64url characters, or 64 hex digits). Its text is stretched with
//! scrypt under a random salt of the database's, and HKDF-SHA256 then gives
//! the AES key and the key's id; the database records `v2.<salt>.<id>`. So
//! the id (and any sealed value) cannot test guesses at the key faster than
//! one scrypt each, and no table computed once serves two databases.
//! Databases sealed before this recorded a bare 16-hex-digit id, a fast
//! unsalted hash of the key: they still open, with a warning at start that
//! names `authstore keys rewrap`.

use crate::secret::{self, Secret, SecretError, SecretOrigin};
use openssl::md::Md;
use openssl::pkey::Id;
use openssl::pkey_ctx::PkeyCtx;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use std::fmt;
use std::path::PathBuf;

/// Format byte of a sealed value: AES-256-GCM, 12-byte nonce, 16-byte tag.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const SALT: &[u8] = b"authstore key-encryption key";
/// Marks an id of the salted, stretched format.
const V2: &str = "v2";
const SALT_LEN: usize = 16;
/// scrypt's cost: N = 2^14, r = 8, p = 1 (16 MiB, tens of milliseconds).
const SCRYPT_N: u64 = 1 << 14;
const SCRYPT_R: u64 = 8;
const SCRYPT_P: u64 = 1;
const SCRYPT_MAXMEM: u64 = 64 * 1024 * 1024;

pub struct Kek {
    key: [u8; 32],
    id: String,
    /// The configured text, kept to derive the key again under the salt a
    /// database recorded (another process may have bound it first).
    input: Secret,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kek({})", self.id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the sealed value is malformed")]
    Malformed,
    #[error("the sealed value does not open: wrong key-encryption key, or the value was moved or altered")]
    Rejected,
    #[error("openssl: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
}

impl Kek {
    /// The KEK for a database that records none yet: a fresh salt.
    pub fn new(input: &Secret) -> Result<Kek, openssl::error::ErrorStack> {
        let mut salt = [0u8; SALT_LEN];
        openssl::rand::rand_bytes(&mut salt)?;
        Kek::stretched(input, &salt)
    }

    /// The KEK as a database that recorded `recorded` derives it: under its
    /// salt, or (an id of the first format) the fast unsalted way. Its id
    /// equals `recorded` only when `input` is the key that sealed it.
    pub fn for_record(input: &Secret, recorded: &str) -> Result<Kek, openssl::error::ErrorStack> {
        match parse_v2(recorded) {
            Some(salt) => Kek::stretched(input, &salt),
            None => Kek::first_format(input),
        }
    }

    /// This KEK under the salt of `recorded`, when it is the key that made
    /// it; `None` for another key.
    pub fn matching(&self, recorded: &str) -> Result<Option<Kek>, openssl::error::ErrorStack> {
        let kek = Kek::for_record(&self.input, recorded)?;
        Ok((kek.id == recorded).then_some(kek))
    }

    fn stretched(input: &Secret, salt: &[u8]) -> Result<Kek, openssl::error::ErrorStack> {
        let mut master = [0u8; 32];
        openssl::pkcs5::scrypt(
            input.expose().as_bytes(),
            salt,
            SCRYPT_N,
            SCRYPT_R,
            SCRYPT_P,
            SCRYPT_MAXMEM,
            &mut master,
        )?;
        let mut key = [0u8; 32];
        hkdf(&master, b"authstore kek v2 aes-256-gcm", &mut key)?;
        let mut id = [0u8; 8];
        hkdf(&master, b"authstore kek v2 id", &mut id)?;
        wipe(&mut master);
        Ok(Kek {
            key,
            id: format!("{V2}.{}.{}", hex(salt), hex(&id)),
            input: input.clone(),
        })
    }

    /// The first format: HKDF of the text, no salt (kept to open databases
    /// sealed before the second).
    fn first_format(input: &Secret) -> Result<Kek, openssl::error::ErrorStack> {
        let mut key = [0u8; 32];
        hkdf(
            input.expose().as_bytes(),
            b"authstore kek v1 aes-256-gcm",
            &mut key,
        )?;
        let mut id = [0u8; 8];
        hkdf(input.expose().as_bytes(), b"authstore kek v1 id", &mut id)?;
        Ok(Kek {
            key,
            id: hex(&id),
            input: input.clone(),
        })
    }

    /// A public name for this KEK, recorded beside what it seals:
    /// `v2.<salt>.<id>` (hex), or 16 hex digits for the first format.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Why this KEK should be replaced (`keys rewrap`), if it should: a key
    /// shorter than 256 bits, or an id of the first, fast format.
    pub fn weakness(&self) -> Option<&'static str> {
        if !carries_256_bits(self.input.expose()) {
            Some("the key is shorter than 256 bits")
        } else if parse_v2(&self.id).is_none() {
            Some("its id, recorded in the database, is a fast unsalted hash of the key")
        } else {
            None
        }
    }

    /// Seals `plaintext`; `context` (see [`context`]) is bound to the result,
    /// so a sealed value opens only where it was sealed.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        openssl::rand::rand_bytes(&mut nonce)?;
        let mut tag = [0u8; TAG_LEN];
        let ciphertext = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.key,
            Some(&nonce),
            context,
            plaintext,
            &mut tag,
        )?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len() + TAG_LEN);
        sealed.push(FORMAT_V1);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed.extend_from_slice(&tag);
        Ok(sealed)
    }

    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let (nonce, ciphertext, tag) = match sealed.split_first() {
            Some((&FORMAT_V1, rest)) => {
                let (nonce, rest) = rest
                    .split_at_checked(NONCE_LEN)
                    .ok_or(SealError::Malformed)?;
                let body = rest
                    .len()
                    .checked_sub(TAG_LEN)
                    .ok_or(SealError::Malformed)?;
                let (ciphertext, tag) = rest.split_at_checked(body).ok_or(SealError::Malformed)?;
                (nonce, ciphertext, tag)
            }
            _ => return Err(SealError::Malformed),
        };
        decrypt_aead(
            Cipher::aes_256_gcm(),
            &self.key,
            Some(nonce),
            context,
            ciphertext,
            tag,
        )
        .map_err(|_| SealError::Rejected)
    }

    pub fn seal_text(&self, context: &[u8], text: &str) -> Result<Vec<u8>, SealError> {
        self.seal(context, text.as_bytes())
    }

    pub fn open_text(&self, context: &[u8], sealed: &[u8]) -> Result<String, SealError> {
        String::from_utf8(self.open(context, sealed)?).map_err(|_| SealError::Malformed)
    }
}

impl Drop for Kek {
    fn drop(&mut self) {
        wipe(&mut self.key);
    }
}

/// Best effort: do not leave a key in freed memory.
fn wipe(bytes: &mut [u8; 32]) {
    for byte in bytes {
        // SAFETY: a plain write to a valid byte of our own array.
        unsafe { std::ptr::write_volatile(byte, 0) };
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The salt of a `v2.<salt>.<id>` id.
fn parse_v2(recorded: &str) -> Option<Vec<u8>> {
    let mut parts = recorded.split('.');
    let (Some(V2), Some(salt), Some(id), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if salt.len() != SALT_LEN * 2 || id.len() != 16 {
        return None;
    }
    (0..salt.len())
        .step_by(2)
        .map(|at| {
            salt.get(at..at + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

/// Whether a key's text carries at least 256 bits as the `authstore
/// secret` format does: 64 hex digits, or 43 base64 characters (6 bits
/// each; base64url or standard, padding aside). Text of any other shape
/// cannot show how much it carries, so it is not taken for a new key.
pub fn carries_256_bits(text: &str) -> bool {
    let text = text.trim();
    if text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return text.len() >= 64;
    }
    let unpadded = text.trim_end_matches('=');
    unpadded
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/'))
        && unpadded.len() * 6 >= 256
}

/// Associated data: a label naming what is sealed, then each part with its
/// length, so no two different (label, parts) give the same bytes.
pub fn context(label: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(label.len() + 1 + parts.iter().map(|p| 4 + p.len()).sum::<usize>());
    out.extend_from_slice(label.as_bytes());
    out.push(0);
    for part in parts {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

fn hkdf(input: &[u8], info: &[u8], out: &mut [u8]) -> Result<(), openssl::error::ErrorStack> {
    let mut ctx = PkeyCtx::new_id(Id::HKDF)?;
    ctx.derive_init()?;
    ctx.set_hkdf_md(Md::sha256())?;
    ctx.set_hkdf_key(input)?;
    ctx.set_hkdf_salt(SALT)?;
    ctx.add_hkdf_info(info)?;
    ctx.derive(Some(out))?;
    Ok(())
}

/// Where the KEK in use came from, for logs and error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekOrigin {
    Setting,
    File(PathBuf),
    Generated(PathBuf),
}

impl fmt::Display for KekOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KekOrigin::Setting => {
                f.write_str("the key_encryption_key setting (AUTHSTORE_KEY_ENCRYPTION_KEY)")
            }
            KekOrigin::File(path) => write!(f, "file {}", path.display()),
            KekOrigin::Generated(path) => write!(f, "newly generated file {}", path.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KekError {
    #[error(
        "the database {database} is sealed under key-encryption key {sealed_under}, but none is \
         configured and {default_file} does not exist. Restore {default_file}, or point \
         key_encryption_key_file (AUTHSTORE_KEY_ENCRYPTION_KEY_FILE) or \
         AUTHSTORE_KEY_ENCRYPTION_KEY at the key. authstore never generates a new key over \
         sealed data"
    )]
    Missing {
        database: PathBuf,
        default_file: PathBuf,
        sealed_under: String,
    },
    #[error(
        "the key-encryption key from {origin} (id {given}) is not the one that sealed the \
         database {database} (id {sealed_under}). Set key_encryption_key_file \
         (AUTHSTORE_KEY_ENCRYPTION_KEY_FILE) or AUTHSTORE_KEY_ENCRYPTION_KEY to the key with id \
         {sealed_under}; `authstore keys rewrap` moves a database to a new key"
    )]
    Wrong {
        origin: KekOrigin,
        given: String,
        database: PathBuf,
        sealed_under: String,
    },
    #[error(
        "the key-encryption key from {origin} is too weak for a new key: it must carry at least \
         256 bits, as `authstore secret` prints (43 base64url characters, or 64 hex digits)"
    )]
    Weak { origin: KekOrigin },
    #[error("key-encryption key: {0}")]
    Secret(#[from] SecretError),
    #[error("cannot derive the key-encryption key: {0}")]
    Derive(#[from] openssl::error::ErrorStack),
}

/// Where a database's KEK comes from (built by `config` from its settings).
#[derive(Debug, Clone)]
pub struct KekSource {
    /// `key_encryption_key`.
    pub key: Option<Secret>,
    /// `key_encryption_key_file`.
    pub key_file: Option<PathBuf>,
    /// `<database>.kek`: used, or generated, when neither is set.
    pub default_file: PathBuf,
    /// The database, for messages.
    pub database: PathBuf,
}

/// The KEK to use for `source.database`, given the id of the KEK the
/// database is sealed under (`None` for a new or never-sealed database).
/// Generates `<database>.kek` only when nothing is configured, the file does
/// not exist, and the database is not sealed yet.
pub fn resolve(
    source: &KekSource,
    sealed_under: Option<&str>,
) -> Result<(Kek, KekOrigin), KekError> {
    let (input, origin) = if let Some(value) = &source.key {
        (value.clone(), KekOrigin::Setting)
    } else if let Some(path) = &source.key_file {
        (secret::read_file(path)?, KekOrigin::File(path.clone()))
    } else {
        let path = source.default_file.clone();
        match (path.exists(), sealed_under) {
            (true, _) => (secret::read_file(&path)?, KekOrigin::File(path)),
            (false, Some(id)) => {
                return Err(KekError::Missing {
                    database: source.database.clone(),
                    default_file: path,
                    sealed_under: id.to_owned(),
                })
            }
            (false, None) => generate(&path)?,
        }
    };
    let kek = match sealed_under {
        Some(id) => {
            let kek = Kek::for_record(&input, id)?;
            if kek.id() != id {
                return Err(KekError::Wrong {
                    origin,
                    given: kek.id().to_owned(),
                    database: source.database.clone(),
                    sealed_under: id.to_owned(),
                });
            }
            warn_if_weak(&kek);
            kek
        }
        // Bound to the database when it opens (which may find it bound by
        // another process, and derive again under that salt).
        None => Kek::new(&input)?,
    };
    Ok((kek, origin))
}

/// Whether the key's text carries at least 256 bits (see [`carries_256_bits`]).
pub fn carries_256_bits_of(kek: &Kek) -> bool {
    carries_256_bits(kek.input.expose())
}

/// Refuses a key too weak to be bound to a database for the first time.
pub fn require_strong(kek: &Kek, origin: &KekOrigin) -> Result<(), KekError> {
    match carries_256_bits(kek.input.expose()) {
        true => Ok(()),
        false => Err(KekError::Weak {
            origin: origin.clone(),
        }),
    }
}

/// The start-up warning for a database sealed under a key that should be
/// replaced.
pub fn warn_if_weak(kek: &Kek) {
    if let Some(why) = kek.weakness() {
        log::warn!(
            "the database is sealed under key-encryption key {}, and {why}: a copy of the \
             database lets guesses at the key be tested offline. Move it to a new key: \
             `authstore secret > new.kek` and `authstore keys rewrap --old-key-file <the old \
             key's file>` with key_encryption_key_file pointing at new.kek",
            kek.id()
        );
    }
}

/// A KEK is generated and stored the way the secret is (0600, and two
/// processes starting together end with one file).
fn generate(path: &std::path::Path) -> Result<(Secret, KekOrigin), KekError> {
    let (value, origin) = secret::read_or_generate(path)?;
    let origin = match origin {
        SecretOrigin::Generated(path) => KekOrigin::Generated(path),
        _ => KekOrigin::File(path.to_owned()),
    };
    Ok((value, origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(text: &str) -> Kek {
        Kek::new(&Secret::new(text).unwrap()).unwrap()
    }

    #[test]
    fn seals_and_opens_only_with_the_same_key_and_context() {
        let a = kek("first-key-encryption-key");
        let b = kek("other-key-encryption-key");
        let here = context("signing-key", &[b"kid-1"]);
        let there = context("signing-key", &[b"kid-2"]);
        let sealed = a.seal(&here, b"private bytes").unwrap();
        assert_eq!(a.open(&here, &sealed).unwrap(), b"private bytes");
        assert!(matches!(b.open(&here, &sealed), Err(SealError::Rejected)));
        assert!(matches!(a.open(&there, &sealed), Err(SealError::Rejected)));
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(a.open(&here, &altered).is_err());
        assert!(a.open(&here, &sealed[..10]).is_err());
        assert_ne!(
            a.seal(&here, b"x").unwrap(),
            a.seal(&here, b"x").unwrap(),
            "fresh nonce"
        );
    }

    #[test]
    fn the_id_names_the_key_under_its_databases_salt() {
        let input = Secret::new("first-key-encryption-key").unwrap();
        let a = Kek::new(&input).unwrap();
        // The same key derived for the record finds the same id and key.
        let again = Kek::for_record(&input, a.id()).unwrap();
        assert_eq!(again.id(), a.id());
        assert_eq!(again.key, a.key);
        // Another database's salt: another id, another key.
        let b = Kek::new(&input).unwrap();
        assert_ne!(a.id(), b.id(), "a fresh salt per database");
        assert_ne!(a.key, b.key);
        let other = Secret::new("other-key-encryption-key").unwrap();
        assert_ne!(Kek::for_record(&other, a.id()).unwrap().id(), a.id());
        assert!(
            a.matching(b.id()).unwrap().is_some(),
            "same key, other salt"
        );
        assert!(Kek::new(&other)
            .unwrap()
            .matching(a.id())
            .unwrap()
            .is_none());
        assert!(
            a.id().starts_with("v2.") && a.id().len() == 3 + 32 + 1 + 16,
            "{}",
            a.id()
        );
        assert_eq!(format!("{a:?}"), format!("Kek({})", a.id()));
        assert!(!format!("{a:?}").contains("first-key"));
    }

    #[test]
    fn a_first_format_id_still_opens_and_is_called_weak() {
        let input = Secret::new("first-key-encryption-key").unwrap();
        let old = Kek::first_format(&input).unwrap();
        assert_eq!(old.id().len(), 16);
        let sealed = old.seal(b"c", b"secret").unwrap();
        let reopened = Kek::for_record(&input, old.id()).unwrap();
        assert_eq!(reopened.open(b"c", &sealed).unwrap(), b"secret");
        assert!(reopened.weakness().is_some());
        let strong = Secret::new(Secret::generate().unwrap().expose()).unwrap();
        assert!(Kek::new(&strong).unwrap().weakness().is_none());
        assert!(
            Kek::for_record(&strong, &Kek::first_format(&strong).unwrap().id)
                .unwrap()
                .weakness()
                .is_some()
        );
    }

    #[test]
    fn a_new_key_must_carry_256_bits() {
        assert!(carries_256_bits(Secret::generate().unwrap().expose()));
        assert!(carries_256_bits(&"ab".repeat(32)), "64 hex digits");
        assert!(!carries_256_bits(&"ab".repeat(31)), "62 hex digits");
        assert!(
            !carries_256_bits(&"a1".repeat(30)),
            "60 hex digits, also base64"
        );
        assert!(
            !carries_256_bits("0123456789abcdef"),
            "the 16-character key of the review"
        );
        assert!(!carries_256_bits(
            "correct horse battery staple and more words"
        ));
        assert!(carries_256_bits(
            "test-kek-0123456789abcdef0123456789abcdefghij"
        ));
        assert!(!carries_256_bits("test-kek-0123456789abcdef0123456789"));
    }

    #[test]
    fn contexts_are_unambiguous() {
        assert_ne!(context("x", &[b"ab", b"c"]), context("x", &[b"a", b"bc"]));
    }
}
