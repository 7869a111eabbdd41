//! The Auth.js adapter's methods on SQLite, and an import's rows in one
//! transaction (their inserts shared).

use super::*;

/// The hot path: one statement, a primary-key probe into each table.
const SESSION_AND_USER: &str =
    "SELECT s.expires, u.id, u.email, u.name, u.email_verified, u.image, u.extra, s.last_seen_at \
     FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?1";

fn select_user(conn: &Connection, id: &str) -> rusqlite::Result<Option<User>> {
    conn.prepare_cached(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE id = ?1"
    ))?
    .query_row([id], |row| rows::user(row, 0))
    .optional()
}

fn select_authenticator(
    conn: &Connection,
    credential_id: &str,
) -> rusqlite::Result<Option<Authenticator>> {
    conn.prepare_cached(concat!(
        "SELECT ",
        authenticator_columns!(),
        " FROM authenticators WHERE credential_id = ?1"
    ))?
    .query_row([credential_id], rows::authenticator)
    .optional()
}

/// Runs `sql`, an INSERT or UPDATE taking the user's columns as ?1..?6 in
/// `user_columns!()` order.
fn write_user(conn: &Connection, sql: &str, user: &User) -> Result<()> {
    conn.prepare_cached(sql)?
        .execute(params![
            user.id,
            user.email,
            user.name,
            millis(user.email_verified),
            user.image,
            rows::extra_json(&user.extra),
        ])
        .map_err(|e| insert_error(e, user_conflict))?;
    Ok(())
}

fn user_conflict(columns: &str) -> Duplicate {
    if columns.contains("users.email") {
        Duplicate::UserEmail
    } else {
        Duplicate::UserId
    }
}

const INSERT_USER: &str = "INSERT INTO users (id, email, name, email_verified, image, extra) \
                           VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

fn insert_account(conn: &Connection, kek: &Kek, account: &Account) -> Result<()> {
    let seal = |field, value: &Option<String>| {
        sealing::seal_token(kek, sealing::account_row(account), field, value.as_deref())
            .map_err(Error::backend)
    };
    conn.prepare_cached(concat!(
        "INSERT INTO accounts (",
        account_columns!(),
        ") \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    ))?
    .execute(params![
        account.user_id,
        account.kind,
        account.provider,
        account.provider_account_id,
        seal(TokenField::RefreshToken, &account.refresh_token)?,
        seal(TokenField::AccessToken, &account.access_token)?,
        account.expires_at,
        account.token_type,
        account.scope,
        seal(TokenField::IdToken, &account.id_token)?,
        seal(TokenField::SessionState, &account.session_state)?,
        seal(TokenField::Extra, &rows::extra_json(&account.extra))?,
    ])
    .map_err(|e| insert_error(e, |_| Duplicate::Account))?;
    Ok(())
}

fn insert_session(conn: &Connection, session: &Session, origin: &SessionOrigin) -> Result<()> {
    let created_at = origin.created_at.map(Timestamp::millis);
    conn.prepare_cached(
        "INSERT INTO sessions (token_hash, user_id, expires, created_at, last_seen_at, \
         user_agent, ip) VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)",
    )?
    .execute(params![
        token_digest(&session.session_token),
        session.user_id,
        session.expires.millis(),
        created_at,
        origin.user_agent,
        origin.ip,
    ])
    .map_err(|e| insert_error(e, |_| Duplicate::Session))?;
    Ok(())
}

fn insert_verification_token(conn: &Connection, token: &VerificationToken) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO verification_tokens (identifier, token, expires) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![
        token.identifier,
        token.token,
        token.expires.millis()
    ])
    .map_err(|e| insert_error(e, |_| Duplicate::VerificationToken))?;
    Ok(())
}

fn insert_authenticator(conn: &Connection, a: &Authenticator) -> Result<()> {
    conn.prepare_cached(concat!(
        "INSERT INTO authenticators (",
        authenticator_columns!(),
        ") \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    ))?
    .execute(params![
        a.credential_id,
        a.user_id,
        a.provider_account_id,
        a.credential_public_key,
        a.counter,
        a.credential_device_type,
        a.credential_backed_up,
        a.transports,
    ])
    .map_err(|e| insert_error(e, |_| Duplicate::Authenticator))?;
    Ok(())
}

#[async_trait]
impl ImportStore for SqliteStore {
    async fn import_rows(&self, rows: ImportRows) -> std::result::Result<ImportCounts, RowRefused> {
        let kek = self.kek.clone();
        // The writer runs the whole import in one savepoint: a row that fails
        // rolls back every row before it. Which row it was comes back here.
        let refused = Arc::new(std::sync::Mutex::new(None));
        let failed = refused.clone();
        let written = self
            .writer
            .run(move |conn| {
                let mut counts = ImportCounts::default();
                let result = (|| {
                    for (line, user) in &rows.users {
                        let written = write_user(conn, INSERT_USER, user);
                        import::count(&mut counts, 0, *line, written)?;
                    }
                    for (line, account) in &rows.accounts {
                        let written = insert_account(conn, &kek, account);
                        import::count(&mut counts, 1, *line, written)?;
                    }
                    for (line, session) in &rows.sessions {
                        // Where an imported session came from is not known.
                        let written = insert_session(conn, session, &SessionOrigin::default());
                        import::count(&mut counts, 2, *line, written)?;
                    }
                    for (line, token) in &rows.verification_tokens {
                        let written = insert_verification_token(conn, token);
                        import::count(&mut counts, 3, *line, written)?;
                    }
                    for (line, authenticator) in &rows.authenticators {
                        let written = insert_authenticator(conn, authenticator);
                        import::count(&mut counts, 4, *line, written)?;
                    }
                    Ok(counts)
                })();
                result.map_err(|refusal: RowRefused| {
                    let error = Error::backend(refusal.error.log_text());
                    *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(refusal);
                    error
                })
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
impl AdapterStore for SqliteStore {
    async fn create_user(&self, user: User) -> Result<User> {
        self.writer
            .run(move |conn| {
                write_user(conn, INSERT_USER, &user)?;
                Ok(user)
            })
            .await
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>> {
        self.read(|conn| select_user(conn, id))
    }

    async fn get_user_by_email(&self, email: &str) -> Result<Option<User>> {
        self.read(|conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE email = ?1"
            ))?
            .query_row([email], |row| rows::user(row, 0))
            .optional()
        })
    }

    async fn get_user_by_account(&self, key: &AccountKey) -> Result<Option<User>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT u.id, u.email, u.name, u.email_verified, u.image, u.extra \
                 FROM accounts a JOIN users u ON u.id = a.user_id \
                 WHERE a.provider = ?1 AND a.provider_account_id = ?2",
            )?
            .query_row([&key.provider, &key.provider_account_id], |row| {
                rows::user(row, 0)
            })
            .optional()
        })
    }

    async fn update_user(&self, patch: UserPatch) -> Result<User> {
        self.writer
            .run(move |conn| {
                // Read-modify-write is safe: the writer's transaction holds
                // the database's write lock throughout.
                let mut user =
                    select_user(conn, &patch.id)?.ok_or_else(|| Error::NotFound(Entity::User))?;
                user.apply(patch);
                write_user(
                    conn,
                    "UPDATE users SET email = ?2, name = ?3, email_verified = ?4, image = ?5, \
                     extra = ?6 WHERE id = ?1",
                    &user,
                )?;
                Ok(user)
            })
            .await
    }

    async fn delete_user(&self, id: &str) -> Result<Option<User>> {
        self.delete_user_by(id, None).await
    }

    async fn link_account(&self, account: Account) -> Result<Account> {
        let kek = self.kek.clone();
        self.writer
            .run(move |conn| {
                insert_account(conn, &kek, &account)?;
                Ok(account)
            })
            .await
    }

    async fn unlink_account(&self, key: &AccountKey) -> Result<Option<Account>> {
        self.unlink_account_by(key, None, None).await
    }

    async fn get_account(&self, key: &AccountKey) -> Result<Option<Account>> {
        self.read(|conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                account_columns!(),
                " FROM accounts \
                 WHERE provider = ?1 AND provider_account_id = ?2"
            ))?
            .query_row([&key.provider, &key.provider_account_id], |row| {
                rows::account(row, &self.kek)
            })
            .optional()
        })
    }

    async fn create_session(&self, session: Session, origin: SessionOrigin) -> Result<Session> {
        self.writer
            .run(move |conn| {
                insert_session(conn, &session, &origin)?;
                Ok(session)
            })
            .await
    }

    async fn get_session_and_user(&self, session_token: &str) -> Result<Option<SessionAndUser>> {
        let hash = token_digest(session_token);
        self.read(|conn| {
            conn.prepare_cached(SESSION_AND_USER)?
                .query_row([hash], |row| {
                    let user = rows::user(row, 1)?;
                    Ok(SessionAndUser {
                        session: Session {
                            session_token: session_token.to_owned(),
                            user_id: user.id.clone(),
                            expires: Timestamp::from_millis(row.get(0)?),
                        },
                        user,
                        last_seen_at: row.get::<_, Option<i64>>(7)?.map(Timestamp::from_millis),
                    })
                })
                .optional()
        })
    }

    async fn update_session(&self, patch: SessionPatch) -> Result<Option<Session>> {
        let now = self.clock.now().millis();
        self.writer
            .run(move |conn| {
                // The update is a write anyway: it moves last_seen_at too,
                // as a lookup would (at most once a minute).
                let updated = conn
                    .prepare_cached(
                        "UPDATE sessions SET expires = coalesce(?2, expires), \
                         user_id = coalesce(?3, user_id), last_seen_at = CASE \
                         WHEN last_seen_at IS NULL OR last_seen_at <= ?4 - ?5 THEN ?4 \
                         ELSE last_seen_at END WHERE token_hash = ?1 \
                         RETURNING user_id, expires",
                    )?
                    .query_row(
                        params![
                            token_digest(&patch.session_token),
                            millis(patch.expires),
                            patch.user_id,
                            now,
                            SEEN_EVERY.as_millis() as i64,
                        ],
                        |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)),
                    )
                    .optional()
                    .map_err(|e| insert_error(e, |_| Duplicate::Session))?;
                Ok(updated.map(|(user_id, expires)| Session {
                    session_token: patch.session_token,
                    user_id,
                    expires: Timestamp::from_millis(expires),
                }))
            })
            .await
    }

    async fn delete_session(&self, session_token: &str) -> Result<Option<Session>> {
        let (session_token, at) = (session_token.to_owned(), Occasion::now(&*self.clock));
        let result = self
            .writer
            .run(move |conn| {
                let digest = token_digest(&session_token);
                let deleted = conn
                    .prepare_cached(
                        "DELETE FROM sessions WHERE token_hash = ?1 RETURNING user_id, expires",
                    )?
                    .query_row([digest], |row| {
                        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                    })
                    .optional()?;
                if let Some((user_id, _)) = &deleted {
                    record_event(
                        conn,
                        user_id,
                        &NewEvent::session_deleted(&digest, None, &at),
                    )?;
                }
                Ok(deleted.map(|(user_id, expires)| Session {
                    session_token,
                    user_id,
                    expires: Timestamp::from_millis(expires),
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
        self.writer
            .run(move |conn| {
                insert_verification_token(conn, &token)?;
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
        self.writer
            .run(move |conn| {
                let expires = conn
                    .prepare_cached(
                        "DELETE FROM verification_tokens WHERE identifier = ?1 AND token = ?2 \
                         RETURNING expires",
                    )?
                    .query_row([&identifier, &token], |row| row.get::<_, i64>(0))
                    .optional()?;
                Ok(expires.map(|expires| VerificationToken {
                    identifier,
                    token,
                    expires: Timestamp::from_millis(expires),
                }))
            })
            .await
    }

    async fn create_authenticator(&self, authenticator: Authenticator) -> Result<Authenticator> {
        self.writer
            .run(move |conn| {
                insert_authenticator(conn, &authenticator)?;
                Ok(authenticator)
            })
            .await
    }

    async fn get_authenticator(&self, credential_id: &str) -> Result<Option<Authenticator>> {
        self.read(|conn| select_authenticator(conn, credential_id))
    }

    async fn list_authenticators_by_user_id(&self, user_id: &str) -> Result<Vec<Authenticator>> {
        self.read(|conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                authenticator_columns!(),
                " FROM authenticators WHERE user_id = ?1 \
                 ORDER BY credential_id"
            ))?
            .query_map([user_id], rows::authenticator)?
            .collect()
        })
    }

    async fn update_authenticator_counter(
        &self,
        credential_id: &str,
        counter: u32,
    ) -> Result<Authenticator> {
        let credential_id = credential_id.to_owned();
        self.writer
            .run(move |conn| {
                conn.prepare_cached(concat!(
                    "UPDATE authenticators SET counter = ?2 WHERE credential_id = ?1 \
                     RETURNING ",
                    authenticator_columns!(),
                    ""
                ))?
                .query_row(params![credential_id, counter], rows::authenticator)
                .optional()?
                .ok_or_else(|| Error::NotFound(Entity::Authenticator))
            })
            .await
    }
}
