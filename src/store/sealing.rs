//! What the stores seal under the KEK, and the associated data that binds
//! each sealed value to its row and owner (so a value copied into another
//! row, another column, or a row re-pointed at another user, does not open),
//! and the seal that binds a signing key's row to the KEK (so a key row
//! written into the file by anyone without the KEK is never published or
//! used). Shared by every backend and by migrations: the policy is here, a
//! backend only persists what it computes.

use super::{KeyRecord, StoreError};
use crate::kek::{context, Kek, SealError};
use crate::timestamp::Timestamp;

/// A signing key's private half is bound to its kid.
pub fn signing_key_context(kid: &str) -> Vec<u8> {
    context("authstore signing key v1", &[kid.as_bytes()])
}

/// Everything of a key row that decides what is published and what signs:
/// its kid, algorithm, public half, and times (its state follows from them).
fn key_row_context(record: &KeyRecord) -> Vec<u8> {
    let at = |t: Timestamp| t.millis().to_be_bytes();
    let maybe = |t: Option<Timestamp>| t.map(|t| t.millis().to_be_bytes().to_vec());
    let (retires, unpublish) = (maybe(record.retires_at), maybe(record.unpublish_at));
    context(
        "authstore signing key row v1",
        &[
            record.kid.as_bytes(),
            record.algorithm.as_bytes(),
            &record.public_key_der,
            &at(record.created_at),
            &at(record.signs_from),
            retires.as_deref().unwrap_or_default(),
            unpublish.as_deref().unwrap_or_default(),
        ],
    )
}

/// The seal of a key row: an AEAD tag over the row (nothing encrypted), so
/// only a holder of the KEK can write a row that loads.
pub fn seal_key_row(kek: &Kek, record: &KeyRecord) -> Result<Vec<u8>, StoreError> {
    kek.seal(&key_row_context(record), b"")
        .map_err(StoreError::backend)
}

/// Whether a key row as read is the one a holder of the KEK wrote.
pub fn key_row_intact(kek: &Kek, record: &KeyRecord, seal: Option<&[u8]>) -> bool {
    seal.is_some_and(|seal| kek.open(&key_row_context(record), seal).is_ok())
}

/// Opens a key record as a backend read it: `None` (logged, naming the kid)
/// for a row whose seal does not hold; the private half opened, refusing
/// one sealed under another KEK.
pub fn open_signing_key(
    kek: &Kek,
    mut record: KeyRecord,
    kek_id: Option<String>,
    row_seal: Option<&[u8]>,
) -> Result<Option<KeyRecord>, StoreError> {
    if !key_row_intact(kek, &record, row_seal) {
        log::error!(
            "signing key row {} fails its seal: it was written or changed without the \
             key-encryption key; it is never published or used (`authstore check` names it)",
            record.kid
        );
        return Ok(None);
    }
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
    Ok(Some(record))
}

/// A key set as a backend read it, each row with the id of the KEK that
/// sealed its private half and its row seal: rows that fail their seal go
/// to `refused` (never published or used), the others opened.
pub fn open_key_set(
    kek: &Kek,
    version: i64,
    rows: Vec<(KeyRecord, Option<String>, Option<Vec<u8>>)>,
) -> Result<super::KeySet, StoreError> {
    let mut set = super::KeySet {
        version,
        ..Default::default()
    };
    for (record, kek_id, seal) in rows {
        let kid = record.kid.clone();
        match open_signing_key(kek, record, kek_id, seal.as_deref())? {
            Some(record) => set.keys.push(record),
            None => set.refused.push(kid),
        }
    }
    Ok(set)
}

/// The sealed columns of an account: the OAuth tokens, `session_state`, and
/// the fields Auth.js sent that have no column (`extra`, JSON), each sealed
/// on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenField {
    RefreshToken,
    AccessToken,
    IdToken,
    SessionState,
    Extra,
}

impl TokenField {
    fn name(self) -> &'static str {
        match self {
            TokenField::RefreshToken => "refresh_token",
            TokenField::AccessToken => "access_token",
            TokenField::IdToken => "id_token",
            TokenField::SessionState => "session_state",
            TokenField::Extra => "extra",
        }
    }
}

/// The row a sealed account value belongs to: its key and its owner.
#[derive(Clone, Copy, Debug)]
pub struct AccountRow<'a> {
    pub provider: &'a str,
    pub provider_account_id: &'a str,
    pub user_id: &'a str,
}

/// The row of `account`.
pub fn account_row(account: &crate::model::Account) -> AccountRow<'_> {
    AccountRow {
        provider: &account.provider,
        provider_account_id: &account.provider_account_id,
        user_id: &account.user_id,
    }
}

/// An account value is bound to its account's key, its owner and its column.
pub fn account_value_context(row: AccountRow<'_>, field: TokenField) -> Vec<u8> {
    context(
        "authstore account value v2",
        &[
            row.provider.as_bytes(),
            row.provider_account_id.as_bytes(),
            row.user_id.as_bytes(),
            field.name().as_bytes(),
        ],
    )
}

/// Seals an optional account value.
pub fn seal_token(
    kek: &Kek,
    row: AccountRow<'_>,
    field: TokenField,
    value: Option<&str>,
) -> Result<Option<Vec<u8>>, SealError> {
    value
        .map(|v| kek.seal_text(&account_value_context(row, field), v))
        .transpose()
}

/// Opens an optional sealed account value.
pub fn open_token(
    kek: &Kek,
    row: AccountRow<'_>,
    field: TokenField,
    sealed: Option<&[u8]>,
) -> Result<Option<String>, SealError> {
    sealed
        .map(|s| kek.open_text(&account_value_context(row, field), s))
        .transpose()
}

/// The first format of account tokens (bound to the account's key and
/// column, not to its owner), kept to read rows written before the second
/// and upgrade them.
pub mod first {
    use super::*;

    fn context_of(provider: &str, provider_account_id: &str, field: TokenField) -> Vec<u8> {
        context(
            "authstore account token v1",
            &[
                provider.as_bytes(),
                provider_account_id.as_bytes(),
                field.name().as_bytes(),
            ],
        )
    }

    pub fn seal_token(
        kek: &Kek,
        provider: &str,
        provider_account_id: &str,
        field: TokenField,
        value: Option<&str>,
    ) -> Result<Option<Vec<u8>>, SealError> {
        value
            .map(|v| kek.seal_text(&context_of(provider, provider_account_id, field), v))
            .transpose()
    }

    pub fn open_token(
        kek: &Kek,
        provider: &str,
        provider_account_id: &str,
        field: TokenField,
        sealed: Option<&[u8]>,
    ) -> Result<Option<String>, SealError> {
        sealed
            .map(|s| kek.open_text(&context_of(provider, provider_account_id, field), s))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn kek() -> Kek {
        Kek::new(&Secret::generate().unwrap()).unwrap()
    }

    fn record() -> KeyRecord {
        KeyRecord {
            kid: "kid-1".into(),
            algorithm: "RS256".into(),
            public_key_der: vec![1, 2, 3],
            private_key_der: None,
            created_at: Timestamp::from_millis(1),
            signs_from: Timestamp::from_millis(2),
            retires_at: None,
            unpublish_at: Some(Timestamp::from_millis(3)),
        }
    }

    #[test]
    fn a_key_row_changed_in_any_field_fails_its_seal() {
        let kek = kek();
        let row = record();
        let seal = seal_key_row(&kek, &row).unwrap();
        assert!(key_row_intact(&kek, &row, Some(&seal)));
        assert!(!key_row_intact(&kek, &row, None), "a row without a seal");
        assert!(
            !key_row_intact(&self::kek(), &row, Some(&seal)),
            "another KEK"
        );
        let changes: [fn(&mut KeyRecord); 6] = [
            |r| r.kid = "kid-2".into(),
            |r| r.algorithm = "ES256".into(),
            |r| r.public_key_der = vec![9],
            |r| r.signs_from = Timestamp::from_millis(0),
            |r| r.retires_at = Some(Timestamp::from_millis(5)),
            |r| r.unpublish_at = None,
        ];
        for change in changes {
            let mut tampered = row.clone();
            change(&mut tampered);
            assert!(!key_row_intact(&kek, &tampered, Some(&seal)));
        }
    }

    #[test]
    fn an_account_value_opens_only_for_its_owner_and_column() {
        let kek = kek();
        let row = AccountRow {
            provider: "github",
            provider_account_id: "7",
            user_id: "ada",
        };
        let sealed = seal_token(&kek, row, TokenField::AccessToken, Some("gho_x"))
            .unwrap()
            .unwrap();
        let open = |row, field| open_token(&kek, row, field, Some(&sealed));
        assert_eq!(
            open(row, TokenField::AccessToken).unwrap().as_deref(),
            Some("gho_x")
        );
        let mallory = AccountRow {
            user_id: "mallory",
            ..row
        };
        assert!(open(mallory, TokenField::AccessToken).is_err());
        assert!(open(row, TokenField::SessionState).is_err());
    }
}
