-- Keygate schema v9 (PostgreSQL): alert rules, their recorded firing state, alerts waiting for
-- delivery and delivery attempts. Keep in step with migrations/sqlite/0009_alerts.sql.
-- Rules are configuration (audited, one change event each like teams); states, alerts and
-- deliveries are the evaluator's bookkeeping (each delivery attempt is audited, without a
-- change event). Everything goes with its rule, and rules go with their team.

CREATE TABLE alert_rules (
    id                TEXT PRIMARY KEY,
    team_id           TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    enabled           BOOLEAN NOT NULL,
    webhook_url       TEXT NOT NULL,
    -- The `whsec_...` signing secret sealed under the master key, AAD `<id>/webhook_secret`.
    secret_sealed     TEXT NOT NULL,
    secret_issued_at  BIGINT NOT NULL,
    condition_kind    TEXT NOT NULL,
    -- JSON `{"kind": ..., <parameters>}` (alerts::Condition).
    condition         TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    created_by        TEXT NOT NULL,
    updated_by        TEXT NOT NULL
);
CREATE INDEX alert_rules_team_created ON alert_rules (team_id, created_at DESC, id DESC);
CREATE INDEX alert_rules_created ON alert_rules (created_at DESC, id DESC);

-- What a rule last concluded about one subject (token id, route name, follower, gateway):
-- an alert goes out when the condition starts to hold, not at every evaluation.
CREATE TABLE alert_states (
    rule_id      TEXT NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    subject      TEXT NOT NULL,
    firing       BOOLEAN NOT NULL,
    fired_at     BIGINT,
    resolved_at  BIGINT,
    marker       BIGINT,
    marker_at    BIGINT,
    PRIMARY KEY (rule_id, subject)
);

-- One alert (a firing or a test), tried until delivered or 24 h after it fired.
CREATE TABLE alerts (
    id               TEXT PRIMARY KEY,
    rule_id          TEXT NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    team_id          TEXT NOT NULL,
    kind             TEXT NOT NULL,
    subject          TEXT NOT NULL,
    message          TEXT NOT NULL,
    details          TEXT NOT NULL,
    fired_at         BIGINT NOT NULL,
    test             BOOLEAN NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    -- NULL: delivered or given up.
    next_attempt_at  BIGINT
);
CREATE INDEX alerts_due ON alerts (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX alerts_fired ON alerts (fired_at);

-- One row per delivery attempt.
CREATE TABLE alert_deliveries (
    id               TEXT PRIMARY KEY,
    alert_id         TEXT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    rule_id          TEXT NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    team_id          TEXT NOT NULL,
    kind             TEXT NOT NULL,
    subject          TEXT NOT NULL,
    message          TEXT NOT NULL,
    test             BOOLEAN NOT NULL,
    attempt          BIGINT NOT NULL,
    status           TEXT NOT NULL,      -- succeeded | retrying | failed
    http_status      BIGINT NOT NULL,   -- 0: no answer
    error            TEXT NOT NULL,
    duration_ms      BIGINT NOT NULL,
    attempted_at     BIGINT NOT NULL,
    next_attempt_at  BIGINT
);
CREATE INDEX alert_deliveries_rule ON alert_deliveries (rule_id, attempted_at DESC, id DESC);
CREATE INDEX alert_deliveries_team ON alert_deliveries (team_id, attempted_at DESC, id DESC);
CREATE INDEX alert_deliveries_at ON alert_deliveries (attempted_at DESC, id DESC);
CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_id);
