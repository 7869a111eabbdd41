//! What the stores seal under the KEK, and the associated data that binds
//! each sealed value to its row (so a value copied into another row, or
//! another column, does not open). Shared by every backend and by migrations.

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
