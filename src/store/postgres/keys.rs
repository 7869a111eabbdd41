//! The signing key set on PostgreSQL.

use super::*;

#[async_trait]
impl KeyStore for PostgresStore {
    async fn signing_keys(&self) -> Result<KeySet> {
        let (version, sealed) = self
            .with(|mut client, _| async move {
                // One snapshot: the version and the keys agree.
                let tx = client
                    .build_transaction()
                    .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .await?;
                let version: i64 = tx
                    .query_one("SELECT key_set_version FROM meta WHERE id = 1", &[])
                    .await?
                    .try_get(0)?;
                let rows = tx
                    .query(
                        "SELECT kid, algorithm, public_key, private_key, kek_id, created_at, \
                         signs_from, retires_at, unpublish_at, row_seal \
                         FROM signing_keys ORDER BY signs_from, created_at",
                        &[],
                    )
                    .await?;
                tx.commit().await?;
                let mut keys = Vec::with_capacity(rows.len());
                for row in rows {
                    let record = KeyRecord {
                        kid: row.try_get(0)?,
                        algorithm: row.try_get(1)?,
                        public_key_der: row.try_get(2)?,
                        private_key_der: row.try_get(3)?,
                        created_at: Timestamp::from_millis(row.try_get(5)?),
                        signs_from: Timestamp::from_millis(row.try_get(6)?),
                        retires_at: row
                            .try_get::<_, Option<i64>>(7)?
                            .map(Timestamp::from_millis),
                        unpublish_at: row
                            .try_get::<_, Option<i64>>(8)?
                            .map(Timestamp::from_millis),
                    };
                    let seal: Option<Vec<u8>> = row.try_get(9)?;
                    keys.push((record, row.try_get::<_, Option<String>>(4)?, seal));
                }
                Ok((version, keys))
            })
            .await?;
        sealing::open_key_set(&self.kek, version, sealed)
    }

    async fn key_set_version(&self) -> Result<i64> {
        self.with(|client, _| async move {
            let statement = client
                .prepare_cached("SELECT key_set_version FROM meta WHERE id = 1")
                .await?;
            Ok(client.query_one(&statement, &[]).await?.try_get(0)?)
        })
        .await
    }

    async fn save_signing_keys(&self, expected_version: i64, changes: KeyChanges) -> Result<Saved> {
        self.with(move |mut client, kek| async move {
            let tx = client.transaction().await?;
            // Under READ COMMITTED a second node's swap waits on this row
            // lock, then re-reads the version and finds it moved: Stale.
            let swapped = tx
                .execute(
                    "UPDATE meta SET key_set_version = key_set_version + 1 \
                     WHERE id = 1 AND key_set_version = $1",
                    &[&expected_version],
                )
                .await?;
            if swapped == 0 {
                return Ok(Saved::Stale);
            }
            for key in &changes.insert {
                let sealed = key
                    .private_key_der
                    .as_ref()
                    .map(|der| kek.seal(&sealing::signing_key_context(&key.kid), der))
                    .transpose()
                    .map_err(StoreError::backend)?;
                let kek_id = sealed.as_ref().map(|_| kek.id().to_owned());
                let row_seal = sealing::seal_key_row(&kek, key)?;
                tx.execute(
                    "INSERT INTO signing_keys (kid, algorithm, public_key, private_key, kek_id, \
                     created_at, signs_from, retires_at, unpublish_at, row_seal) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    &[
                        &key.kid,
                        &key.algorithm,
                        &key.public_key_der,
                        &sealed,
                        &kek_id,
                        &key.created_at.millis(),
                        &key.signs_from.millis(),
                        &millis(key.retires_at),
                        &millis(key.unpublish_at),
                        &row_seal,
                    ],
                )
                .await
                .map_err(|e| write_error(e, |_| Duplicate::SigningKey))?;
            }
            for key in &changes.reschedule {
                tx.execute(
                    "UPDATE signing_keys SET signs_from = $2, retires_at = $3, unpublish_at = $4, \
                     row_seal = $5 WHERE kid = $1",
                    &[
                        &key.kid,
                        &key.signs_from.millis(),
                        &millis(key.retires_at),
                        &millis(key.unpublish_at),
                        &sealing::seal_key_row(&kek, key)?,
                    ],
                )
                .await?;
            }
            for kid in &changes.erase {
                tx.execute(
                    "UPDATE signing_keys SET private_key = NULL, kek_id = NULL WHERE kid = $1",
                    &[kid],
                )
                .await?;
            }
            for kid in &changes.delete {
                tx.execute("DELETE FROM signing_keys WHERE kid = $1", &[kid])
                    .await?;
            }
            tx.commit().await?;
            Ok(Saved::Applied)
        })
        .await
    }
}
