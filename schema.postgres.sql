-- authstore schema for PostgreSQL, version 3 (meta.schema_version).
--
-- The same tables, constraints and at-rest rules as schema.sql (SQLite):
--   * instants are BIGINT epoch milliseconds (exactly what Auth.js sends);
--   * session tokens are stored only as their SHA-256 digest (32-byte BYTEA);
--   * secrets (signing keys, OAuth tokens) are sealed under the key-encryption
--     key (KEK) kept outside the database, bound to their row (src/kek.rs);
--   * `extra` holds the fields Auth.js sent that have no column, as JSON text
--     (kept byte for byte: jsonb would reorder keys), NULL when there are none;
--   * keys compare byte for byte (COLLATE "C"): an id is not language, and a
--     B-tree of "C" text compares with memcmp, not the locale's rules.
--
-- Applied in one transaction under an advisory lock by the first node that
-- finds an empty database (src/store/postgres/schema.rs); later versions are
-- numbered steps there, never a wipe.

CREATE TABLE users (
    id             TEXT COLLATE "C" PRIMARY KEY,
    email          TEXT COLLATE "C" UNIQUE,  -- trimmed and lowercased; NULL allowed, many times
    name           TEXT,
    email_verified BIGINT,
    image          TEXT,
    extra          TEXT
);

CREATE TABLE accounts (
    provider            TEXT COLLATE "C" NOT NULL,
    provider_account_id TEXT COLLATE "C" NOT NULL,
    user_id             TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type                TEXT NOT NULL,
    refresh_token       BYTEA,              -- sealed under the KEK
    access_token        BYTEA,              -- sealed under the KEK
    expires_at          BIGINT,             -- epoch seconds, as OAuth providers give it
    token_type          TEXT,
    scope               TEXT,
    id_token            BYTEA,              -- sealed under the KEK
    session_state       BYTEA,              -- sealed under the KEK
    extra               BYTEA,              -- sealed under the KEK (the JSON object)
    PRIMARY KEY (provider, provider_account_id)
);
CREATE INDEX accounts_by_user ON accounts (user_id);

-- The hot path (getSessionAndUser) is one primary-key probe here, then one
-- into users.
CREATE TABLE sessions (
    token_hash   BYTEA PRIMARY KEY,          -- SHA-256 of the session token
    user_id      TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires      BIGINT NOT NULL,
    created_at   BIGINT,                     -- where and when (see schema.sql)
    last_seen_at BIGINT,
    user_agent   TEXT,
    ip           TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires);

CREATE TABLE verification_tokens (
    identifier TEXT COLLATE "C" NOT NULL,
    token      TEXT COLLATE "C" NOT NULL,   -- already hashed by Auth.js
    expires    BIGINT NOT NULL,
    PRIMARY KEY (identifier, token)
);
CREATE INDEX verification_tokens_by_expiry ON verification_tokens (expires);

CREATE TABLE authenticators (
    credential_id          TEXT COLLATE "C" PRIMARY KEY,
    user_id                TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider_account_id    TEXT NOT NULL,
    credential_public_key  TEXT NOT NULL,
    counter                BIGINT NOT NULL,
    credential_device_type TEXT NOT NULL,
    credential_backed_up   BOOLEAN NOT NULL,
    transports             TEXT
);
CREATE INDEX authenticators_by_user ON authenticators (user_id);

-- Signing keys of the OIDC issuer; their states as in schema.sql.
CREATE TABLE signing_keys (
    kid          TEXT COLLATE "C" PRIMARY KEY,  -- RFC 7638 JWK thumbprint
    algorithm    TEXT NOT NULL,                 -- 'RS256'
    public_key   BYTEA NOT NULL,                -- SubjectPublicKeyInfo DER
    private_key  BYTEA,                         -- PKCS#8 DER sealed under the KEK; NULL once retired
    kek_id       TEXT,                          -- the KEK that sealed private_key
    created_at   BIGINT NOT NULL,
    signs_from   BIGINT NOT NULL,
    retires_at   BIGINT,
    unpublish_at BIGINT,
    row_seal     BYTEA,                         -- AEAD tag under the KEK over kid, algorithm,
                                                -- public_key and the times (src/store/sealing.rs)
    CHECK ((private_key IS NULL) = (kek_id IS NULL))
);

-- One row. schema_version is this file's version (or a migration's);
-- key_set_version is bumped in the same transaction as every change to
-- signing_keys (compare-and-swap; every node polls it each second); kek_id
-- names the KEK everything sealed here is sealed under.
CREATE TABLE meta (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    schema_version  INTEGER NOT NULL,
    key_set_version BIGINT NOT NULL,
    kek_id          TEXT,
    -- false only between the upgrade to version 6 and the first start that
    -- binds the rows already there under the KEK (key row seals, account values)
    rows_bound      BOOLEAN NOT NULL DEFAULT true
);
-- schema_version is inserted by the code that applies this file.

-- The operator's console: one-time sign-in links and the sessions they open,
-- kept as the SHA-256 of their token; the index its search by name walks
-- (lowercase, byte order).
CREATE TABLE console_links (
    token_hash BYTEA PRIMARY KEY,
    expires    BIGINT NOT NULL
);
CREATE TABLE console_sessions (
    token_hash   BYTEA PRIMARY KEY,
    idle_expires BIGINT NOT NULL
);
CREATE INDEX users_by_name ON users ((lower(name) COLLATE "C"), id);

-- Every change that ends someone's access, written in the same statement as
-- the change (see schema.sql): the audit log and the revocation outbox.
CREATE TABLE events (
    seq      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id       TEXT COLLATE "C" NOT NULL UNIQUE,
    type     TEXT NOT NULL,
    user_id  TEXT COLLATE "C",
    sid      TEXT COLLATE "C",
    detail   TEXT,
    actor    TEXT,
    at       BIGINT NOT NULL,
    trace_id TEXT COLLATE "C"
);
CREATE INDEX events_by_user ON events (user_id, seq);
CREATE INDEX events_by_time ON events (at);

-- Where delivery to each [[webhooks]] endpoint stands (`endpoint`: a hash of
-- its URL). Every event up to `floor` is delivered or predates the endpoint;
-- those delivered above it are listed in webhook_deliveries. One process at a
-- time delivers to an endpoint: `lease_owner`, until `lease_until`.
CREATE TABLE webhook_endpoints (
    endpoint    TEXT COLLATE "C" PRIMARY KEY,
    floor       BIGINT NOT NULL,
    lease_owner TEXT COLLATE "C",
    lease_until BIGINT NOT NULL
);
CREATE TABLE webhook_deliveries (
    endpoint TEXT COLLATE "C" NOT NULL,
    seq      BIGINT NOT NULL,
    PRIMARY KEY (endpoint, seq)
);

-- Every statement that writes events first takes a shared advisory lock
-- (held to the end of its transaction, before any seq is drawn), so a
-- process that gets the lock alone knows no event is in flight: only then
-- does a webhook endpoint's floor move (see src/store/postgres/outbox.rs).
-- In the database, so every writer takes it, whatever its version.
CREATE OR REPLACE FUNCTION events_writer_lock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(7022647185681837684);
    RETURN NULL;
END
$$;
CREATE TRIGGER events_writer_lock BEFORE INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_writer_lock();
