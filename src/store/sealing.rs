//! What the stores seal under the KEK, and the associated data that binds
//! each sealed value to its row (so a value copied into another row, or
//! another column, does not open). Shared by every backend and by migrations.

use super::{KeyRecord, StoreError};
use crate::kek::{context, Kek, SealError};

/// A signing key's private half is bound to its kid.
pub fn signing_key_context(kid: &str) -> Vec<u8> {
    context("authstore signing key v1", &[kid.as_bytes()])
}

/// The OAuth token columns of an account, sealed each on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenField {
    RefreshToken,
    AccessToken,
    IdToken,
}

impl TokenField {
    fn name(self) -> &'static str {
        match self {
            TokenField::RefreshToken => "refresh_token",
            TokenField::AccessToken => "access_token",
            TokenField::IdToken => "id_token",
        }
    }
}

/// An account token is bound to its account's key and to its column.
pub fn account_token_context(
    provider: &str,
    provider_account_id: &str,
    field: TokenField,
) -> Vec<u8> {
    context(
        "authstore account token v1",
        &[
            provider.as_bytes(),
            provider_account_id.as_bytes(),
            field.name().as_bytes(),
        ],
    )
}

/// Seals an optional account token.
pub fn seal_token(
    kek: &Kek,
    provider: &str,
    provider_account_id: &str,
    field: TokenField,
    value: Option<&str>,
) -> Result<Option<Vec<u8>>, SealError> {
    value
        .map(|v| {
            kek.seal_text(
                &account_token_context(provider, provider_account_id, field),
                v,
            )
        })
        .transpose()
}

/// Opens an optional sealed account token.
pub fn open_token(
    kek: &Kek,
    provider: &str,
    provider_account_id: &str,
    field: TokenField,
    sealed: Option<&[u8]>,
) -> Result<Option<String>, SealError> {
    sealed
        .map(|s| {
            kek.open_text(
                &account_token_context(provider, provider_account_id, field),
                s,
            )
        })
        .transpose()
}

/// Opens the private half of a key record as a backend read it (sealed, with
/// the id of the KEK that sealed it), refusing one sealed under another KEK.
pub fn open_signing_key(
    kek: &Kek,
    mut record: KeyRecord,
    kek_id: Option<String>,
) -> Result<KeyRecord, StoreError> {
    if let Some(sealed) = record.private_key_der.take() {
        let kek_id = kek_id.unwrap_or_default();
        if kek_id != kek.id() {
            return Err(StoreError::backend(format!(
                "signing key {} is sealed under key-encryption key {kek_id}, not this server's {}",
                record.kid,
                kek.id()
            )));
        }
        let plain = kek
            .open(&signing_key_context(&record.kid), &sealed)
            .map_err(|e| {
                StoreError::backend(format!("signing key {} does not open: {e}", record.kid))
            })?;
        record.private_key_der = Some(plain);
    }
    Ok(record)
}
