-- Keygate schema v1 (PostgreSQL). Times are Unix epoch milliseconds (UTC) in BIGINT columns.
-- Keep in step with migrations/sqlite/0001_init.sql: the same tables, columns and meaning.

CREATE TABLE teams (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    color       TEXT NOT NULL DEFAULT '',
    icon        TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL
);

-- Identities (issue 3 fills these; designed now so teams can count members).
CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    email            TEXT NOT NULL,
    display_name     TEXT NOT NULL,
    password_hash    TEXT,
    is_system_admin  BOOLEAN NOT NULL DEFAULT FALSE,
    disabled         BOOLEAN NOT NULL DEFAULT FALSE,
    last_sign_in_at  BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));

CREATE TABLE team_members (
    team_id    TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('ADMIN', 'MANAGER', 'DEVELOPER', 'VIEWER')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members (user_id);

-- Keys for the management API (bootstrap admin key now; service accounts in issue 3).
CREATE TABLE management_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    preview      TEXT NOT NULL,
    is_bootstrap BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);

CREATE TABLE tokens (
    id              TEXT PRIMARY KEY,
    team_id         TEXT NOT NULL REFERENCES teams (id),
    name            TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    scopes          TEXT NOT NULL,          -- JSON array of scope strings, sorted
    token_hash      TEXT NOT NULL UNIQUE,   -- lowercase hex SHA-256 of the plaintext
    preview         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    expires_at      BIGINT,
    revoked_at      BIGINT,
    last_used_at    BIGINT,
    created_by      TEXT NOT NULL,
    rotated_from_id TEXT,
    replaced_by_id  TEXT
);
CREATE INDEX tokens_created ON tokens (created_at DESC, id DESC);
CREATE INDEX tokens_team_created ON tokens (team_id, created_at DESC, id DESC);
CREATE INDEX tokens_revoked_created ON tokens (created_at DESC, id DESC) WHERE revoked_at IS NOT NULL;
CREATE INDEX tokens_expires ON tokens (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE token_scopes (
    token_id TEXT NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    scope    TEXT NOT NULL,
    PRIMARY KEY (scope, token_id)
);
CREATE INDEX token_scopes_token ON token_scopes (token_id);

CREATE TABLE routes (
    id               TEXT PRIMARY KEY,
    team_id          TEXT NOT NULL REFERENCES teams (id),
    name             TEXT NOT NULL UNIQUE,
    path_prefix      TEXT NOT NULL UNIQUE,
    backend_url      TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    tags             TEXT NOT NULL,         -- JSON array, sorted
    methods          TEXT NOT NULL,         -- JSON array, sorted; empty = all
    strip_prefix     BOOLEAN NOT NULL,
    timeout_ms       BIGINT NOT NULL,
    auth_type        TEXT NOT NULL CHECK (auth_type IN ('none', 'bearer', 'api_key', 'basic')),
    auth_header_name TEXT NOT NULL DEFAULT '',
    auth_username    TEXT NOT NULL DEFAULT '',
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    created_by       TEXT NOT NULL
);
CREATE INDEX routes_team ON routes (team_id);

CREATE TABLE route_tags (
    route_id TEXT NOT NULL REFERENCES routes (id) ON DELETE CASCADE,
    tag      TEXT NOT NULL,
    PRIMARY KEY (tag, route_id)
);
CREATE INDEX route_tags_route ON route_tags (route_id);

-- Backend credential secrets, AES-256-GCM sealed with the master key; AAD binds each value to
-- its route and slot, so a sealed value cannot be moved to another route.
CREATE TABLE route_secrets (
    route_id   TEXT NOT NULL REFERENCES routes (id) ON DELETE CASCADE,
    slot       TEXT NOT NULL CHECK (slot IN ('bearer_token', 'api_key', 'basic_password')),
    sealed     TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (route_id, slot)
);

-- Hash-chained audit log: one row per change, written in the change's transaction.
CREATE TABLE audit_events (
    seq         BIGINT PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor_type  TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    actor_name  TEXT NOT NULL,
    action      TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    team_id     TEXT NOT NULL DEFAULT '',
    diff        TEXT NOT NULL,
    source_ip   TEXT NOT NULL DEFAULT '',
    user_agent  TEXT NOT NULL DEFAULT '',
    request_id  TEXT NOT NULL DEFAULT '',
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_actor ON audit_events (actor_id, seq);
CREATE INDEX audit_action ON audit_events (action, seq);
CREATE INDEX audit_entity ON audit_events (entity_type, entity_id, seq);
CREATE INDEX audit_team ON audit_events (team_id, seq);
CREATE INDEX audit_at ON audit_events (at);

-- Transactional outbox: the change feed that kv-sync follows, ordered by revision.
CREATE TABLE change_events (
    revision    BIGINT PRIMARY KEY,
    at          BIGINT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    op          TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
    payload     TEXT NOT NULL,              -- JSON; never secrets in plaintext
    audit_seq   BIGINT NOT NULL
);

-- One row: the head of the audit chain and the change feed. Every mutation updates it last in
-- its transaction; the row lock serialises appends so revision order equals commit order.
CREATE TABLE log_head (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    revision           BIGINT NOT NULL,
    audit_seq          BIGINT NOT NULL,
    audit_hash         TEXT NOT NULL,
    compacted_revision BIGINT NOT NULL DEFAULT 0
);
INSERT INTO log_head (id, revision, audit_seq, audit_hash, compacted_revision)
VALUES (1, 0, 0, '0000000000000000000000000000000000000000000000000000000000000000', 0);

-- Substring search on names and descriptions at scale (trusted extension since PostgreSQL 13).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX tokens_search ON tokens USING gin (lower(name || ' ' || description) gin_trgm_ops);
CREATE INDEX routes_search ON routes
    USING gin (lower(name || ' ' || path_prefix || ' ' || backend_url || ' ' || description) gin_trgm_ops);
