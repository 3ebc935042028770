-- Keygate schema v2 (PostgreSQL): identities, sessions, invitations, service accounts, route
-- team restrictions. Keep in step with migrations/sqlite/0002_identity.sql.

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    last_used_at BIGINT,
    source_ip    TEXT NOT NULL DEFAULT '',
    user_agent   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE service_accounts (
    id          TEXT PRIMARY KEY,
    team_id     TEXT NOT NULL REFERENCES teams (id),
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    role        TEXT NOT NULL CHECK (role IN ('ADMIN', 'MANAGER', 'DEVELOPER', 'VIEWER')),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL
);
CREATE INDEX service_accounts_team ON service_accounts (team_id);

ALTER TABLE management_keys ADD COLUMN service_account_id TEXT REFERENCES service_accounts (id);
ALTER TABLE management_keys ADD COLUMN replaced_by_id TEXT;
ALTER TABLE management_keys ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
CREATE INDEX management_keys_account ON management_keys (service_account_id);
-- The schema-v1 bootstrap key is replaced by the first-start setup (a system admin user).
UPDATE management_keys SET revoked_at = (extract(epoch from now()) * 1000)::bigint
WHERE is_bootstrap AND revoked_at IS NULL;

CREATE TABLE invitations (
    id               TEXT PRIMARY KEY,
    email            TEXT NOT NULL,
    code_hash        TEXT NOT NULL UNIQUE,
    roles            TEXT NOT NULL,         -- JSON [{"team_id": ..., "role": ...}]
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    created_by       TEXT NOT NULL,
    accepted_at      BIGINT,
    accepted_user_id TEXT,
    revoked_at       BIGINT
);

CREATE TABLE invitation_teams (
    invitation_id TEXT NOT NULL REFERENCES invitations (id) ON DELETE CASCADE,
    team_id       TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, invitation_id)
);

-- One row at most: the hash of the one-time setup code printed on first start.
CREATE TABLE setup_code (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    code_hash  TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE route_allowed_teams (
    route_id TEXT NOT NULL REFERENCES routes (id) ON DELETE CASCADE,
    team_id  TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    PRIMARY KEY (route_id, team_id)
);
