//! The signing key set on SQLite, and moving every sealed value to a new
//! key-encryption key (`keys rewrap`).

use super::*;

#[async_trait]
impl KeyStore for SqliteStore {
    async fn signing_keys(&self) -> Result<KeySet> {
        let (version, sealed) = self.read(|conn| {
            // One read transaction: the version and the keys of one snapshot.
            let tx = conn.unchecked_transaction()?;
            let version: i64 =
                tx.query_row("SELECT key_set_version FROM meta WHERE id = 1", [], |row| {
                    row.get(0)
                })?;
            let keys = tx
                .prepare_cached(
                    "SELECT kid, algorithm, public_key, private_key, kek_id, created_at, \
                     signs_from, retires_at, unpublish_at, row_seal \
                     FROM signing_keys ORDER BY signs_from, created_at",
                )?
                .query_map([], |row| {
                    let record = KeyRecord {
                        kid: row.get(0)?,
                        algorithm: row.get(1)?,
                        public_key_der: row.get(2)?,
                        private_key_der: row.get(3)?,
                        created_at: Timestamp::from_millis(row.get(5)?),
                        signs_from: Timestamp::from_millis(row.get(6)?),
                        retires_at: row.get::<_, Option<i64>>(7)?.map(Timestamp::from_millis),
                        unpublish_at: row.get::<_, Option<i64>>(8)?.map(Timestamp::from_millis),
                    };
                    let seal: Option<Vec<u8>> = row.get(9)?;
                    Ok((record, row.get::<_, Option<String>>(4)?, seal))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((version, keys))
        })?;
        sealing::open_key_set(&self.kek, version, sealed)
    }

    async fn key_set_version(&self) -> Result<i64> {
        self.read(|conn| {
            conn.prepare_cached("SELECT key_set_version FROM meta WHERE id = 1")?
                .query_row([], |row| row.get(0))
        })
    }

    async fn save_signing_keys(&self, expected_version: i64, changes: KeyChanges) -> Result<Saved> {
        let kek = self.kek.clone();
        self.writer
            .run(move |conn| {
                // All or nothing, inside the writer's shared transaction.
                let tx = conn.savepoint()?;
                let swapped = tx.execute(
                    "UPDATE meta SET key_set_version = key_set_version + 1 \
                     WHERE id = 1 AND key_set_version = ?1",
                    [expected_version],
                )?;
                if swapped == 0 {
                    return Ok(Saved::Stale);
                }
                for key in &changes.insert {
                    let sealed = key
                        .private_key_der
                        .as_ref()
                        .map(|der| kek.seal(&sealing::signing_key_context(&key.kid), der))
                        .transpose()
                        .map_err(Error::backend)?;
                    let kek_id = sealed.as_ref().map(|_| kek.id());
                    let row_seal = sealing::seal_key_row(&kek, key)?;
                    tx.prepare_cached(
                        "INSERT INTO signing_keys (kid, algorithm, public_key, private_key, kek_id, \
                         created_at, signs_from, retires_at, unpublish_at, row_seal) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    )?
                    .execute(params![
                        key.kid,
                        key.algorithm,
                        key.public_key_der,
                        sealed,
                        kek_id,
                        key.created_at.millis(),
                        key.signs_from.millis(),
                        millis(key.retires_at),
                        millis(key.unpublish_at),
                        row_seal,
                    ])
                    .map_err(|e| insert_error(e, |_| Duplicate::SigningKey))?;
                }
                for key in &changes.reschedule {
                    tx.prepare_cached(
                        "UPDATE signing_keys SET signs_from = ?2, retires_at = ?3, unpublish_at = ?4, \
                         row_seal = ?5 WHERE kid = ?1",
                    )?
                    .execute(params![
                        key.kid,
                        key.signs_from.millis(),
                        millis(key.retires_at),
                        millis(key.unpublish_at),
                        sealing::seal_key_row(&kek, key)?,
                    ])?;
                }
                // Erased private halves are zeroed in the file, not just unlinked.
                tx.pragma_update(None, "secure_delete", "ON")?;
                for kid in &changes.erase {
                    tx.execute(
                        "UPDATE signing_keys SET private_key = NULL, kek_id = NULL WHERE kid = ?1",
                        [kid],
                    )?;
                }
                for kid in &changes.delete {
                    tx.execute("DELETE FROM signing_keys WHERE kid = ?1", [kid])?;
                }
                tx.pragma_update(None, "secure_delete", "OFF")?;
                tx.commit()?;
                Ok(Saved::Applied)
            })
            .await
    }
}

impl SqliteStore {
    /// Re-seals every secret in the database under `new` (signing keys and
    /// OAuth tokens), in one transaction. The store must have been opened
    /// with the KEK the database is sealed under now. Returns how many
    /// values were re-sealed.
    pub async fn rewrap(&self, new: Arc<Kek>) -> Result<usize> {
        let old = self.kek.clone();
        self.writer
            .run(move |conn| {
                let tx = conn.savepoint()?;
                tx.pragma_update(None, "secure_delete", "ON")?;
                let mut count = 0;
                let keys: Vec<(String, Vec<u8>)> = tx
                    .prepare("SELECT kid, private_key FROM signing_keys WHERE private_key IS NOT NULL")?
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                for (kid, sealed) in keys {
                    let context = sealing::signing_key_context(&kid);
                    let plain = old.open(&context, &sealed).map_err(|e| {
                        Error::backend(format!("signing key {kid} does not open: {e}"))
                    })?;
                    tx.execute(
                        "UPDATE signing_keys SET private_key = ?2, kek_id = ?3 WHERE kid = ?1",
                        params![kid, new.seal(&context, &plain).map_err(Error::backend)?, new.id()],
                    )?;
                    count += 1;
                }
                reseal_key_rows(&tx, &old, &new)?;
                count += reseal_accounts(&tx, &old, &new)?;
                tx.execute(
                    "UPDATE meta SET kek_id = ?1, key_set_version = key_set_version + 1 WHERE id = 1",
                    [new.id()],
                )?;
                tx.pragma_update(None, "secure_delete", "OFF")?;
                tx.commit()?;
                Ok(count)
            })
            .await
    }
}

/// Re-seals every key row's seal under `new` (after checking it under
/// `old`: a row that fails is refused, not laundered).
fn reseal_key_rows(tx: &Connection, old: &Kek, new: &Kek) -> Result<()> {
    let rows: Vec<(KeyRecord, Option<Vec<u8>>)> = tx
        .prepare(
            "SELECT kid, algorithm, public_key, created_at, signs_from, retires_at, unpublish_at, \
             row_seal FROM signing_keys",
        )?
        .query_map([], |row| Ok((rows::key_row(row)?, row.get(7)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (record, seal) in &rows {
        if !sealing::key_row_intact(old, record, seal.as_deref()) {
            return Err(Error::backend(format!(
                "signing key row {} fails its seal; remove it before moving to a new key",
                record.kid
            )));
        }
        tx.execute(
            "UPDATE signing_keys SET row_seal = ?2 WHERE kid = ?1",
            params![record.kid, sealing::seal_key_row(new, record)?],
        )?;
    }
    Ok(())
}

/// The sealed columns of an account, in the order `reseal_accounts` reads them.
const SEALED_ACCOUNT_FIELDS: [TokenField; 5] = [
    TokenField::RefreshToken,
    TokenField::AccessToken,
    TokenField::IdToken,
    TokenField::SessionState,
    TokenField::Extra,
];

/// Re-seals every sealed account value under `new`. Returns how many.
fn reseal_accounts(tx: &Connection, old: &Kek, new: &Kek) -> Result<usize> {
    type Sealed = [Option<Vec<u8>>; 5];
    let accounts: Vec<(String, String, String, Sealed)> = tx
        .prepare(
            "SELECT provider, provider_account_id, user_id, refresh_token, access_token, \
             id_token, session_state, extra FROM accounts",
        )?
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                [
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                    row.get(7)?,
                ],
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut count = 0;
    for (provider, provider_account_id, user_id, sealed) in accounts {
        let row = sealing::AccountRow {
            provider: &provider,
            provider_account_id: &provider_account_id,
            user_id: &user_id,
        };
        let mut resealed: Sealed = Default::default();
        for ((field, value), out) in SEALED_ACCOUNT_FIELDS.iter().zip(&sealed).zip(&mut resealed) {
            let plain = sealing::open_token(old, row, *field, value.as_deref())
                .map_err(|e| Error::backend(format!("an account value does not open: {e}")))?;
            count += usize::from(plain.is_some());
            *out =
                sealing::seal_token(new, row, *field, plain.as_deref()).map_err(Error::backend)?;
        }
        let [refresh, access, id, state, extra] = resealed;
        tx.execute(
            "UPDATE accounts SET refresh_token = ?3, access_token = ?4, id_token = ?5, \
             session_state = ?6, extra = ?7 WHERE provider = ?1 AND provider_account_id = ?2",
            params![
                provider,
                provider_account_id,
                refresh,
                access,
                id,
                state,
                extra
            ],
        )?;
    }
    Ok(count)
}
