//! The key-encryption key (KEK): what seals secrets at rest.
//!
//! Signing keys and OAuth tokens are stored sealed with AES-256-GCM under a
//! key kept outside the database, so a copy of the database alone (a backup,
//! a replica, a file left readable) yields no usable secret. The KEK comes
//! from `key_encryption_key` / `key_encryption_key_file`, or is generated
//! once into `<database>.kek` (mode 0600). Its text is stretched to 256 bits
//! with HKDF-SHA256; a second HKDF output names it (`id`), so a database can
//! say which KEK sealed it without holding anything secret.

use crate::config::Config;
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

pub struct Kek {
    key: [u8; 32],
    id: String,
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
    /// Stretches the configured text to the AES key and its public id.
    pub fn derive(input: &Secret) -> Result<Kek, openssl::error::ErrorStack> {
        let mut key = [0u8; 32];
        hkdf(
            input.expose().as_bytes(),
            b"authstore kek v1 aes-256-gcm",
            &mut key,
        )?;
        let mut id = [0u8; 8];
        hkdf(input.expose().as_bytes(), b"authstore kek v1 id", &mut id)?;
        let id = id.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Kek { key, id })
    }

    /// A public name for this KEK (16 hex digits), recorded beside what it seals.
    pub fn id(&self) -> &str {
        &self.id
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
        // Best effort: do not leave the key in freed memory.
        for byte in &mut self.key {
            // SAFETY: a plain write to a valid byte of our own array.
            unsafe { std::ptr::write_volatile(byte, 0) };
        }
    }
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
    #[error("key-encryption key: {0}")]
    Secret(#[from] SecretError),
    #[error("cannot derive the key-encryption key: {0}")]
    Derive(#[from] openssl::error::ErrorStack),
}

/// The KEK to use for `config.database`, given the id of the KEK the
/// database is sealed under (`None` for a new or never-sealed database).
/// Generates `<database>.kek` only when nothing is configured, the file does
/// not exist, and the database is not sealed yet.
pub fn resolve(config: &Config, sealed_under: Option<&str>) -> Result<(Kek, KekOrigin), KekError> {
    let (input, origin) = if let Some(value) = &config.key_encryption_key {
        (value.clone(), KekOrigin::Setting)
    } else if let Some(path) = &config.key_encryption_key_file {
        (secret::read_file(path)?, KekOrigin::File(path.clone()))
    } else {
        let path = config.default_kek_file();
        match (path.exists(), sealed_under) {
            (true, _) => (secret::read_file(&path)?, KekOrigin::File(path)),
            (false, Some(id)) => {
                return Err(KekError::Missing {
                    database: config.database.clone(),
                    default_file: path,
                    sealed_under: id.to_owned(),
                })
            }
            (false, None) => generate(&path)?,
        }
    };
    let kek = Kek::derive(&input)?;
    if let Some(id) = sealed_under {
        if kek.id() != id {
            return Err(KekError::Wrong {
                origin,
                given: kek.id().to_owned(),
                database: config.database.clone(),
                sealed_under: id.to_owned(),
            });
        }
    }
    Ok((kek, origin))
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
        Kek::derive(&Secret::new(text).unwrap()).unwrap()
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
    fn the_id_names_the_key_and_reveals_nothing_of_it() {
        let a = kek("first-key-encryption-key");
        assert_eq!(a.id(), kek("first-key-encryption-key").id());
        assert_ne!(a.id(), kek("other-key-encryption-key").id());
        assert_eq!(a.id().len(), 16);
        assert!(!a.id().contains(&format!("{:02x}", a.key[0]).repeat(8)));
        assert_eq!(format!("{a:?}"), format!("Kek({})", a.id()));
    }

    #[test]
    fn contexts_are_unambiguous() {
        assert_ne!(context("x", &[b"ab", b"c"]), context("x", &[b"a", b"bc"]));
    }
}
