//! The Auth.js adapter's methods on PostgreSQL, and an import's rows in one
//! transaction (their inserts shared).

use super::*;

async fn select_user(
    client: &impl deadpool_postgres::GenericClient,
    id: &str,
    lock: bool,
) -> Result<Option<User>> {
    let sql = if lock {
        "SELECT id, email, name, email_verified, image, extra FROM users WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT id, email, name, email_verified, image, extra FROM users WHERE id = $1"
    };
    let statement = client.prepare_cached(sql).await?;
    client
        .query_opt(&statement, &[&id])
        .await?
        .map(|row| rows::user(&row, 0))
        .transpose()
}

// The inserts of the adapter's create methods, on any client (a pooled
// connection, or the transaction of an import).

async fn insert_user(client: &impl deadpool_postgres::GenericClient, user: &User) -> Result<()> {
    let statement = client
        .prepare_cached(
            "INSERT INTO users (id, email, name, email_verified, image, extra) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?;
    client
        .execute(
            &statement,
            &[
                &user.id,
                &user.email,
                &user.name,
                &millis(user.email_verified),
                &user.image,
                &extra_json(&user.extra),
            ],
        )
        .await
        .map_err(|e| write_error(e, user_conflict))?;
    Ok(())
}

async fn insert_account(
    client: &impl deadpool_postgres::GenericClient,
    kek: &Kek,
    account: &Account,
) -> Result<()> {
    let seal = |field, value: &Option<String>| {
        sealing::seal_token(kek, sealing::account_row(account), field, value.as_deref())
            .map_err(StoreError::backend)
    };
    let (refresh, access, id_token) = (
        seal(TokenField::RefreshToken, &account.refresh_token)?,
        seal(TokenField::AccessToken, &account.access_token)?,
        seal(TokenField::IdToken, &account.id_token)?,
    );
    let (session_state, extra) = (
        seal(TokenField::SessionState, &account.session_state)?,
        seal(TokenField::Extra, &extra_json(&account.extra))?,
    );
    let statement = client
        .prepare_cached(&format!(
            "INSERT INTO accounts ({ACCOUNT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .await?;
    client
        .execute(
            &statement,
            &[
                &account.user_id,
                &account.kind,
                &account.provider,
                &account.provider_account_id,
                &refresh,
                &access,
                &account.expires_at,
                &account.token_type,
                &account.scope,
                &id_token,
                &session_state,
                &extra,
            ],
        )
        .await
        .map_err(|e| write_error(e, |_| Duplicate::Account))?;
    Ok(())
}

async fn insert_session(
    client: &impl deadpool_postgres::GenericClient,
    session: &Session,
    origin: &SessionOrigin,
) -> Result<()> {
    let statement = client
        .prepare_cached(
            "INSERT INTO sessions (token_hash, user_id, expires, created_at, last_seen_at, \
             user_agent, ip) VALUES ($1, $2, $3, $4, $4, $5, $6)",
        )
        .await?;
    client
        .execute(
            &statement,
            &[
                &&token_digest(&session.session_token)[..],
                &session.user_id,
                &session.expires.millis(),
                &origin.created_at.map(Timestamp::millis),
                &origin.user_agent,
                &origin.ip,
            ],
        )
        .await
        .map_err(|e| write_error(e, |_| Duplicate::Session))?;
    Ok(())
}

async fn insert_verification_token(
    client: &impl deadpool_postgres::GenericClient,
    token: &VerificationToken,
) -> Result<()> {
    let statement = client
        .prepare_cached(
            "INSERT INTO verification_tokens (identifier, token, expires) VALUES ($1, $2, $3)",
        )
        .await?;
    client
        .execute(
            &statement,
            &[&token.identifier, &token.token, &token.expires.millis()],
        )
        .await
        .map_err(|e| write_error(e, |_| Duplicate::VerificationToken))?;
    Ok(())
}

async fn insert_authenticator(
    client: &impl deadpool_postgres::GenericClient,
    a: &Authenticator,
) -> Result<()> {
    let statement = client
        .prepare_cached(&format!(
            "INSERT INTO authenticators ({AUTHENTICATOR_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .await?;
    client
        .execute(
            &statement,
            &[
                &a.credential_id,
                &a.user_id,
                &a.provider_account_id,
                &a.credential_public_key,
                &i64::from(a.counter),
                &a.credential_device_type,
                &a.credential_backed_up,
                &a.transports,
            ],
        )
        .await
        .map_err(|e| write_error(e, |_| Duplicate::Authenticator))?;
    Ok(())
}

#[async_trait]
impl ImportStore for PostgresStore {
    async fn import_rows(&self, rows: ImportRows) -> std::result::Result<ImportCounts, RowRefused> {
        let refused = Arc::new(std::sync::Mutex::new(None));
        let failed = refused.clone();
        let written = self
            .with(move |mut client, kek| async move {
                let mut tx = client.transaction().await?;
                let mut counts = ImportCounts::default();
                macro_rules! rows {
                    ($table:expr, $rows:expr, |$row:ident| $insert:expr) => {
                        for (line, $row) in &$rows {
                            let savepoint = tx.savepoint("import_row").await?;
                            let written = $insert(&savepoint).await;
                            let present = matches!(
                                &written,
                                Err(StoreError::Conflict(d)) if *d == import::own_key($table)
                            );
                            if present || written.is_err() {
                                savepoint.rollback().await?;
                            } else {
                                savepoint.commit().await?;
                            }
                            if let Err(refusal) = import::count(&mut counts, $table, *line, written) {
                                let error = StoreError::backend(refusal.error.log_text());
                                *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(refusal);
                                // Dropped without a commit: the transaction rolls back.
                                return Err(error);
                            }
                        }
                    };
                }
                rows!(0, rows.users, |user| |c| insert_user(c, user));
                rows!(1, rows.accounts, |account| |c| insert_account(c, &kek, account));
                // Where an imported session came from is not known.
                let unknown = SessionOrigin::default();
                rows!(2, rows.sessions, |session| |c| insert_session(c, session, &unknown));
                rows!(3, rows.verification_tokens, |token| |c| insert_verification_token(c, token));
                rows!(4, rows.authenticators, |a| |c| insert_authenticator(c, a));
                tx.commit().await?;
                Ok(counts)
            })
            .await;
        written.map_err(|error| {
            refused
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .unwrap_or(RowRefused {
                    table: 0,
                    line: 0,
                    error,
                })
        })
    }
}

#[async_trait]
impl AdapterStore for PostgresStore {
    async fn create_user(&self, user: User) -> Result<User> {
        self.with(move |client, _| async move {
            insert_user(&client, &user).await?;
            Ok(user)
        })
        .await
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>> {
        let id = id.to_owned();
        self.with(move |client, _| async move { select_user(&client, &id, false).await })
            .await
    }

    async fn get_user_by_email(&self, email: &str) -> Result<Option<User>> {
        let email = email.to_owned();
        self.with(move |client, _| async move {
            let statement = client
                .prepare_cached(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
                ))
                .await?;
            client
                .query_opt(&statement, &[&email])
                .await?
                .map(|row| rows::user(&row, 0))
                .transpose()
        })
        .await
    }

    async fn get_user_by_account(&self, key: &AccountKey) -> Result<Option<User>> {
        let key = key.clone();
        self.with(move |client, _| async move {
            let statement = client
                .prepare_cached(
                    "SELECT u.id, u.email, u.name, u.email_verified, u.image, u.extra \
                     FROM accounts a JOIN users u ON u.id = a.user_id \
                     WHERE a.provider = $1 AND a.provider_account_id = $2",
                )
                .await?;
            client
                .query_opt(&statement, &[&key.provider, &key.provider_account_id])
                .await?
                .map(|row| rows::user(&row, 0))
                .transpose()
        })
        .await
    }

    async fn update_user(&self, patch: UserPatch) -> Result<User> {
        self.with(move |mut client, _| async move {
            let tx = client.transaction().await?;
            // The row stays locked from this read to the commit: two patches
            // of one user apply one after the other, neither lost.
            let mut user = select_user(&tx, &patch.id, true)
                .await?
                .ok_or(StoreError::NotFound(Entity::User))?;
            user.apply(patch);
            let statement = tx
                .prepare_cached(
                    "UPDATE users SET email = $2, name = $3, email_verified = $4, image = $5, \
                     extra = $6 WHERE id = $1",
                )
                .await?;
            tx.execute(
                &statement,
                &[
                    &user.id,
                    &user.email,
                    &user.name,
                    &millis(user.email_verified),
                    &user.image,
                    &extra_json(&user.extra),
                ],
            )
            .await
            .map_err(|e| write_error(e, user_conflict))?;
            tx.commit().await?;
            Ok(user)
        })
        .await
    }

    async fn delete_user(&self, id: &str) -> Result<Option<User>> {
        self.delete_user_by(id, None).await
    }

    async fn link_account(&self, account: Account) -> Result<Account> {
        self.with(move |client, kek| async move {
            insert_account(&client, &kek, &account).await?;
            Ok(account)
        })
        .await
    }

    async fn unlink_account(&self, key: &AccountKey) -> Result<Option<Account>> {
        self.unlink_account_by(key, None, None).await
    }

    async fn get_account(&self, key: &AccountKey) -> Result<Option<Account>> {
        let key = key.clone();
        self.with(move |client, kek| async move {
            let statement = client
                .prepare_cached(&format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts \
                     WHERE provider = $1 AND provider_account_id = $2"
                ))
                .await?;
            client
                .query_opt(&statement, &[&key.provider, &key.provider_account_id])
                .await?
                .map(|row| rows::account(&row, &kek))
                .transpose()
        })
        .await
    }

    async fn create_session(&self, session: Session, origin: SessionOrigin) -> Result<Session> {
        self.with(move |client, _| async move {
            insert_session(&client, &session, &origin).await?;
            Ok(session)
        })
        .await
    }

    async fn get_session_and_user(&self, session_token: &str) -> Result<Option<SessionAndUser>> {
        let session_token = session_token.to_owned();
        self.with(move |client, _| async move {
            let statement = client.prepare_cached(SESSION_AND_USER).await?;
            let hash = token_digest(&session_token);
            let Some(row) = client.query_opt(&statement, &[&&hash[..]]).await? else {
                return Ok(None);
            };
            let user = rows::user(&row, 1)?;
            Ok(Some(SessionAndUser {
                session: Session {
                    session_token,
                    user_id: user.id.clone(),
                    expires: Timestamp::from_millis(row.try_get(0)?),
                },
                user,
                last_seen_at: row
                    .try_get::<_, Option<i64>>(7)?
                    .map(Timestamp::from_millis),
            }))
        })
        .await
    }

    async fn update_session(&self, patch: SessionPatch) -> Result<Option<Session>> {
        let (now, every) = (self.clock.now().millis(), SEEN_EVERY.as_millis() as i64);
        self.with(move |client, _| async move {
            // The update is a write anyway: it moves last_seen_at too, as a
            // lookup would (at most once a minute).
            let statement = client
                .prepare_cached(
                    "UPDATE sessions SET expires = coalesce($2, expires), \
                     user_id = coalesce($3, user_id), last_seen_at = CASE \
                     WHEN last_seen_at IS NULL OR last_seen_at <= $4::bigint - $5::bigint THEN $4::bigint \
                     ELSE last_seen_at END WHERE token_hash = $1 \
                     RETURNING user_id, expires",
                )
                .await?;
            let hash = token_digest(&patch.session_token);
            let updated = client
                .query_opt(
                    &statement,
                    &[
                        &&hash[..],
                        &millis(patch.expires),
                        &patch.user_id,
                        &now,
                        &every,
                    ],
                )
                .await
                .map_err(|e| write_error(e, |_| Duplicate::Session))?;
            let Some(row) = updated else {
                return Ok(None);
            };
            Ok(Some(Session {
                session_token: patch.session_token,
                user_id: row.try_get(0)?,
                expires: Timestamp::from_millis(row.try_get(1)?),
            }))
        })
        .await
    }

    async fn delete_session(&self, session_token: &str) -> Result<Option<Session>> {
        let session_token = session_token.to_owned();
        let hash = token_digest(&session_token);
        let event = NewEvent::session_deleted(&hash, None, &Occasion::now(&*self.clock));
        let result = self
            .with(move |client, _| async move {
                // One statement: the session goes and its event is written, or neither.
                let statement = client
                    .prepare_cached(&format!(
                        "WITH gone AS (DELETE FROM sessions WHERE token_hash = $1 \
                         RETURNING user_id, expires), {} SELECT user_id, expires FROM gone",
                        log_removed("user_id", 2)
                    ))
                    .await?;
                let logged = EventParams::new(&event);
                let Some(row) = client
                    .query_opt(&statement, &logged.after(&[&&hash[..]]))
                    .await?
                else {
                    return Ok(None);
                };
                Ok(Some(Session {
                    session_token,
                    user_id: row.try_get(0)?,
                    expires: Timestamp::from_millis(row.try_get(1)?),
                }))
            })
            .await;
        // Wakes this process's webhook workers (a refused write wakes them for nothing).
        self.events.written();
        result
    }

    async fn create_verification_token(
        &self,
        token: VerificationToken,
    ) -> Result<VerificationToken> {
        self.with(move |client, _| async move {
            insert_verification_token(&client, &token).await?;
            Ok(token)
        })
        .await
    }

    async fn use_verification_token(
        &self,
        identifier: &str,
        token: &str,
    ) -> Result<Option<VerificationToken>> {
        let (identifier, token) = (identifier.to_owned(), token.to_owned());
        self.with(move |client, _| async move {
            let statement = client
                .prepare_cached(
                    "DELETE FROM verification_tokens WHERE identifier = $1 AND token = $2 \
                     RETURNING expires",
                )
                .await?;
            let Some(row) = client.query_opt(&statement, &[&identifier, &token]).await? else {
                return Ok(None);
            };
            Ok(Some(VerificationToken {
                expires: Timestamp::from_millis(row.try_get(0)?),
                identifier,
                token,
            }))
        })
        .await
    }

    async fn create_authenticator(&self, authenticator: Authenticator) -> Result<Authenticator> {
        self.with(move |client, _| async move {
            insert_authenticator(&client, &authenticator).await?;
            Ok(authenticator)
        })
        .await
    }

    async fn get_authenticator(&self, credential_id: &str) -> Result<Option<Authenticator>> {
        let credential_id = credential_id.to_owned();
        self.with(move |client, _| async move {
            let statement = client
                .prepare_cached(&format!(
                    "SELECT {AUTHENTICATOR_COLUMNS} FROM authenticators WHERE credential_id = $1"
                ))
                .await?;
            client
                .query_opt(&statement, &[&credential_id])
                .await?
                .map(|row| rows::authenticator(&row))
                .transpose()
        })
        .await
    }

    async fn list_authenticators_by_user_id(&self, user_id: &str) -> Result<Vec<Authenticator>> {
        let user_id = user_id.to_owned();
        self.with(move |client, _| async move {
            let statement = client
                .prepare_cached(&format!(
                    "SELECT {AUTHENTICATOR_COLUMNS} FROM authenticators WHERE user_id = $1 \
                     ORDER BY credential_id"
                ))
                .await?;
            client
                .query(&statement, &[&user_id])
                .await?
                .iter()
                .map(rows::authenticator)
                .collect()
        })
        .await
    }

    async fn update_authenticator_counter(
        &self,
        credential_id: &str,
        counter: u32,
    ) -> Result<Authenticator> {
        let credential_id = credential_id.to_owned();
        self.with(move |client, _| async move {
            let statement = client
                .prepare_cached(&format!(
                    "UPDATE authenticators SET counter = $2 WHERE credential_id = $1 \
                     RETURNING {AUTHENTICATOR_COLUMNS}"
                ))
                .await?;
            client
                .query_opt(&statement, &[&credential_id, &i64::from(counter)])
                .await?
                .map(|row| rows::authenticator(&row))
                .transpose()?
                .ok_or(StoreError::NotFound(Entity::Authenticator))
        })
        .await
    }
}
