-- authstore schema, version 6 (PRAGMA user_version).
--
-- This file is the whole schema of the newest version. An empty database
-- receives it in one transaction; an older one is upgraded by the numbered
-- migrations in src/store/sqlite/schema.rs, never wiped.
--
-- Conventions:
--   * instants are INTEGER epoch milliseconds;
--   * session tokens are stored only as their SHA-256 digest (32-byte BLOB);
--   * secrets (signing keys, every account value beyond the adapter's plain
--     columns) are stored sealed: AES-256-GCM under the key-encryption key
--     (KEK) kept outside the database, bound to their row and owner by
--     associated data (src/store/sealing.rs); key rows carry a seal too;
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
    refresh_token       BLOB,              -- sealed under the KEK
    access_token        BLOB,              -- sealed under the KEK
    expires_at          INTEGER,           -- epoch seconds, as OAuth providers give it
    token_type          TEXT,
    scope               TEXT,
    id_token            BLOB,              -- sealed under the KEK
    session_state       TEXT,              -- holds a BLOB: sealed under the KEK
    extra               TEXT,              -- holds a BLOB: the JSON object, sealed under the KEK
    PRIMARY KEY (provider, provider_account_id)
) WITHOUT ROWID;
CREATE INDEX accounts_by_user ON accounts (user_id);

-- The hot path (getSessionAndUser) is one primary-key probe here, then one
-- into users.
-- created_at, last_seen_at, user_agent, ip: where and when, for the person's
-- own list of sessions (NULL for sessions from before they were kept).
CREATE TABLE sessions (
    token_hash   BLOB PRIMARY KEY NOT NULL,  -- SHA-256 of the session token
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires      INTEGER NOT NULL,
    created_at   INTEGER,
    last_seen_at INTEGER,
    user_agent   TEXT,
    ip           TEXT                        -- as session_ip keeps it
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
-- A key keeps its private half only while it may sign (next, current).
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY NOT NULL,  -- RFC 7638 JWK thumbprint
    algorithm    TEXT NOT NULL,              -- 'RS256'
    public_key   BLOB NOT NULL,              -- SubjectPublicKeyInfo DER
    private_key  BLOB,                       -- PKCS#8 DER sealed under the KEK; NULL once retired
    kek_id       TEXT,                       -- the KEK that sealed private_key
    created_at   INTEGER NOT NULL,
    signs_from   INTEGER NOT NULL,
    retires_at   INTEGER,
    unpublish_at INTEGER,
    row_seal     BLOB,                       -- AEAD tag under the KEK over kid, algorithm,
                                             -- public_key and the times: a row that fails is
                                             -- never published or used
    CHECK ((private_key IS NULL) = (kek_id IS NULL))
) WITHOUT ROWID;

-- One row. key_set_version is bumped in the same transaction as every change
-- to signing_keys: a process changes the key set only if the version is still
-- the one it planned from (compare-and-swap), and running servers reload when
-- it moves. kek_id names the KEK everything sealed here is sealed under (NULL
-- until a KEK is first bound).
CREATE TABLE meta (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    key_set_version INTEGER NOT NULL,
    kek_id          TEXT
);
INSERT INTO meta (id, key_set_version, kek_id) VALUES (1, 0, NULL);

-- The operator's console (static/, /console/): one-time sign-in links made by
-- `authstore console-link`, and the sessions they open. Both are kept only as
-- the SHA-256 of their token, like Auth.js sessions.
CREATE TABLE console_links (
    token_hash BLOB PRIMARY KEY NOT NULL,
    expires    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE console_sessions (
    token_hash   BLOB PRIMARY KEY NOT NULL,
    idle_expires INTEGER NOT NULL           -- moved forward while the console is used
) WITHOUT ROWID;

-- The console's user search by name prefix, case-insensitive, in pages.
CREATE INDEX users_by_name ON users (lower(name), id);

-- Every change that ends someone's access (a session deleted, expired or
-- revoked, a user deleted, an account unlinked), written in the same
-- transaction as the change: the audit log (`authstore audit`) and the outbox
-- revocations are delivered from. Kept 30 days. `trace_id`: the W3C trace of
-- the request that made the change, carried on by its webhook delivery.
CREATE TABLE events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    id       TEXT NOT NULL UNIQUE,
    type     TEXT NOT NULL,
    user_id  TEXT,
    sid      TEXT,
    detail   TEXT,
    actor    TEXT,
    at       INTEGER NOT NULL,
    trace_id TEXT
);
CREATE INDEX events_by_user ON events (user_id, seq);
CREATE INDEX events_by_time ON events (at);

-- Where delivery to each [[webhooks]] endpoint stands (`endpoint`: a hash of
-- its URL). Every event up to `floor` is delivered or predates the endpoint;
-- those delivered above it are listed in webhook_deliveries. One process at a
-- time delivers to an endpoint: `lease_owner`, until `lease_until`.
CREATE TABLE webhook_endpoints (
    endpoint    TEXT PRIMARY KEY NOT NULL,
    floor       INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE webhook_deliveries (
    endpoint TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    PRIMARY KEY (endpoint, seq)
) WITHOUT ROWID;

-- user_version is set by the code that applies this file (src/store/sqlite/schema.rs).
