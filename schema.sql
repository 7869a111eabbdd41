-- authstore schema, version 1 (PRAGMA user_version).
--
-- This file is the whole schema of the newest version. An empty database
-- receives it in one transaction; an older one is upgraded by the numbered
-- migrations in src/store/sqlite/schema.rs, never wiped.
--
-- Conventions:
--   * instants are INTEGER epoch milliseconds;
--   * session tokens are stored only as their SHA-256 digest (32-byte BLOB);
--   * `extra` holds the fields Auth.js sent that have no column, as a JSON
--     object (NULL when there are none);
--   * text-keyed tables are WITHOUT ROWID: a keyed lookup walks one B-tree
--     instead of an index and then the table.

CREATE TABLE users (
    id             TEXT PRIMARY KEY NOT NULL,
    email          TEXT UNIQUE,            -- trimmed and lowercased; NULL allowed, many times
    name           TEXT,
    email_verified INTEGER,
    image          TEXT,
    extra          TEXT
) WITHOUT ROWID;

CREATE TABLE accounts (
    provider            TEXT NOT NULL,
    provider_account_id TEXT NOT NULL,
    user_id             TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type                TEXT NOT NULL,
    refresh_token       TEXT,
    access_token        TEXT,
    expires_at          INTEGER,           -- epoch seconds, as OAuth providers give it
    token_type          TEXT,
    scope               TEXT,
    id_token            TEXT,
    session_state       TEXT,
    extra               TEXT,
    PRIMARY KEY (provider, provider_account_id)
) WITHOUT ROWID;
CREATE INDEX accounts_by_user ON accounts (user_id);

-- The hot path (getSessionAndUser) is one primary-key probe here, then one
-- into users.
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY NOT NULL,  -- SHA-256 of the session token
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires);

CREATE TABLE verification_tokens (
    identifier TEXT NOT NULL,
    token      TEXT NOT NULL,              -- already hashed by Auth.js
    expires    INTEGER NOT NULL,
    PRIMARY KEY (identifier, token)
) WITHOUT ROWID;
CREATE INDEX verification_tokens_by_expiry ON verification_tokens (expires);

CREATE TABLE authenticators (
    credential_id          TEXT PRIMARY KEY NOT NULL,
    user_id                TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider_account_id    TEXT NOT NULL,
    credential_public_key  TEXT NOT NULL,
    counter                INTEGER NOT NULL,
    credential_device_type TEXT NOT NULL,
    credential_backed_up   INTEGER NOT NULL,  -- 0 or 1
    transports             TEXT
) WITHOUT ROWID;
CREATE INDEX authenticators_by_user ON authenticators (user_id);

-- Signing keys of the OIDC issuer. A key's state is a function of the clock:
--   next     now < signs_from
--   current  signs_from <= now and (retires_at IS NULL or now < retires_at)
--   retired  retires_at <= now < unpublish_at (still in the JWKS, signs nothing)
--   removed  unpublish_at <= now (deleted by the background check)
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY NOT NULL,  -- RFC 7638 JWK thumbprint
    algorithm    TEXT NOT NULL,              -- 'RS256'
    private_key  BLOB NOT NULL,              -- PKCS#8 DER
    created_at   INTEGER NOT NULL,
    signs_from   INTEGER NOT NULL,
    retires_at   INTEGER,
    unpublish_at INTEGER
) WITHOUT ROWID;

-- user_version is set by the code that applies this file (src/store/sqlite/schema.rs).
