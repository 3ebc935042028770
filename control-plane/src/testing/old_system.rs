//! A real installation of the OLD system (the one Keygate imports from), for importer tests and
//! the import benchmark: a fresh PostgreSQL database with the old schema
//! (`shared/reference/old-system-schema.md`) and planted data, the old Cloudflare KV layout
//! (`shared/reference/old-system.md`, "Its KV layout") written over the KV REST API, and an
//! identity-provider users export (JSON).
//!
//! Owns: the old schema as the old code created it (plain `CREATE TABLE`, `TIMESTAMP` without
//! time zone, `TEXT[]`, `JSONB`; `tokens.team_id` WITHOUT its foreign key, as on the
//! installations that have orphans), the planted rows, KV values and users below.
//! Must not: depend on the importer, or write KV any other way than the public REST API.
//!
//! # Planted data
//! Keys are `ntk_` + 43 base64url characters (random per build); hashes are the lowercase hex
//! SHA-256 of the whole plaintext. Token ids are SERIAL, inserted in this order:
//!
//! | label | id | name | team | scopes | notes |
//! |---|---|---|---|---|---|
//! | `billing` | 1 | billing-bot | payments | billing | last used 1 hour ago, created by user_alice |
//! | `by_path` | 2 | images-by-path | payments | /api/image | scope names a route by path |
//! | `all` | 3 | all-access | core-team | * | never expires |
//! | `tagged` | 4 | tagged | data | tag:money | expires in 90 days |
//! | `expired` | 5 | expired | payments | billing | expired 2 days ago (still in KV) |
//! | `orphan` | 6 | orphan | gone-team | billing | team does not exist |
//! | `stale_scope` | 7 | stale-scope | payments | billing, old-route | old-route was deleted |
//! | `reports` | 8 | reports-reader | data | reports | created_by kv-import, token_encrypted NULL |
//! | `db_only` | 9 | db-only | payments | billing | in the DB, not in KV |
//! | `revoked` | - | - | - | - | hard-deleted: only its plaintext exists (in `keys`) |
//! | `kv_only` | - | kv-only | payments | billing | only in KV (`token:<hash>`) |
//!
//! Routes (SERIAL ids; `{up}` is the upstream passed to [`build`]):
//!
//! | id | name | path | backend | auth |
//! |---|---|---|---|---|
//! | 1 | billing | /api/billing | {up}/billing | bearer BILLING_TOKEN |
//! | 2 | images | /api/image | {up}/images | api-key IMAGES_KEY, header X-Images-Key |
//! | 3 | imagex | /api/imagex | {up}/imagex | none |
//! | 4 | reports | /api/reports/ | {up}/reports | basic REPORTS_USER / REPORTS_PASS |
//! | 5 | crm | /api/crm | crm.internal:8080/v1 | none |
//! | 6 | spaces | /api/spaces | http://bad host/x | none |
//! | 7 | vault | /api/vault | {up}/vault | bearer VAULT_TOKEN (secret absent from KV) |
//! | 8 | billing | /api/billing-v2 | {up}/billing2 | none |
//! | 9 | ledger | /api/ledger | {up}/ledger | oauth2 `{}` |
//!
//! KV secrets: `BILLING_TOKEN`=bill-secret-1, `IMAGES_KEY`=img-secret-2,
//! `REPORTS_USER`=reporter, `REPORTS_PASS`=rep-pass-3 (no `VAULT_TOKEN`).
//! Teams: core-team, payments, data. Usage: 50 rows for `billing` on /api/billing over the last
//! 3 days (every 10th a 502 with an error message), 10 rows for `all` on /api/image 40 days ago,
//! 5 rows whose token hash matches no token. Audit: 5 rows. Users: user_alice, user_bob,
//! user_carol, user_dan.
//!
//! # Planted problems (what an importer must report; see [`PLANTED_PROBLEMS`])
//!
//! | class | old row | why |
//! |---|---|---|
//! | `path_conflict` | `routes/3` | `/api/imagex` starts with `/api/image` (route 2) without a segment boundary |
//! | `invalid_backend_url` | `routes/5` | `crm.internal:8080/v1` has no http(s) scheme |
//! | `invalid_backend_url` | `routes/6` | `http://bad host/x` has a space in the host |
//! | `missing_secret` | `routes/7` | bearer `token_ref` VAULT_TOKEN has no `secret:VAULT_TOKEN` in KV |
//! | `duplicate_name` | `routes/8` | name `billing` is already route 1's |
//! | `unknown_auth_type` | `routes/9` | `backend_auth_type` is `oauth2` |
//! | `orphan_token` | `tokens/6` | team `gone-team` does not exist |
//! | `deleted_route_scope` | `tokens/7` | scope `old-route` names no route |
//! | `kv_only_token` | `kv/token:<hash of kv_only>` | in KV, not in the DB ([`OldFixture::planted_problems`]) |
//!
//! Not problems, but edges an importer meets: route 4's trailing slash (fine after normalising),
//! token 2's scope by path, token 5 already expired, token 9 missing from KV, token 8 with NULL
//! `token_encrypted`, user_bob's `null` team role and old `tokenManager:role` key, user_carol's
//! role in `gone-team`, user_dan without any roles.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use rand::RngCore;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use std::collections::BTreeMap;

/// The planted problems whose old row does not depend on random data, as (class, old row).
/// [`OldFixture::planted_problems`] adds `kv_only_token`.
pub const PLANTED_PROBLEMS: &[(&str, &str)] = &[
    ("path_conflict", "routes/3"),
    ("invalid_backend_url", "routes/5"),
    ("invalid_backend_url", "routes/6"),
    ("missing_secret", "routes/7"),
    ("duplicate_name", "routes/8"),
    ("unknown_auth_type", "routes/9"),
    ("orphan_token", "tokens/6"),
    ("deleted_route_scope", "tokens/7"),
];

/// Where to write the old KV layout: a Cloudflare KV REST API base (e.g. the local stand-in's
/// `http://127.0.0.1:PORT/client/v4`), account, namespace, API token.
pub struct OldKv {
    pub base_url: String,
    pub account_id: String,
    pub namespace_id: String,
    pub api_token: String,
}

/// A built old installation. The database stays until [`OldFixture::drop_db`].
pub struct OldFixture {
    /// postgres:// URL of the freshly created old database (database name `old_<16 hex random>`).
    pub url: String,
    /// Plaintext `ntk_` keys by label; hash = lowercase hex SHA-256 of the whole plaintext.
    pub keys: BTreeMap<&'static str, String>,
    /// The identity-provider export (a JSON array of users), as text.
    pub idp_users_json: String,
    /// The upstream base URL routes were planted with.
    pub upstream: String,
    /// Exactly what [`OldFixture::seed_kv`] writes: KV key -> raw value (JSON text).
    pub kv: BTreeMap<String, String>,
    admin_url: String,
}

impl OldFixture {
    /// The plaintext key planted under `label`.
    pub fn key(&self, label: &str) -> &str {
        self.keys.get(label).unwrap_or_else(|| {
            panic!(
                "old fixture has no key labelled {label:?}; labels: {:?}",
                self.keys.keys().collect::<Vec<_>>()
            )
        })
    }

    /// Lowercase hex SHA-256 of [`OldFixture::key`]`(label)`, as stored in `tokens.token_hash`.
    pub fn hash(&self, label: &str) -> String {
        sha256_hex(self.key(label))
    }

    /// Every planted problem as (class, old row), including `kv/token:<hash>` of `kv_only`.
    pub fn planted_problems(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = PLANTED_PROBLEMS
            .iter()
            .map(|(class, row)| (class.to_string(), row.to_string()))
            .collect();
        all.push((
            "kv_only_token".into(),
            format!("kv/token:{}", self.hash("kv_only")),
        ));
        all
    }

    /// Runs SQL (one statement, or several separated by `;`) on the old database.
    pub async fn exec(&self, sql: &str) {
        let mut conn = connect(&self.url).await;
        sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("old fixture: SQL failed: {e}\n  SQL: {sql}"));
        let _ = conn.close().await;
    }

    /// Writes the old KV layout ([`OldFixture::kv`]) with one REST `PUT` per key.
    pub async fn seed_kv(&self, kv: &OldKv) {
        let client = reqwest::Client::new();
        for (key, value) in &self.kv {
            let url = format!(
                "{}/accounts/{}/storage/kv/namespaces/{}/values/{}",
                kv.base_url.trim_end_matches('/'),
                kv.account_id,
                kv.namespace_id,
                utf8_percent_encode(key, NON_ALPHANUMERIC)
            );
            let resp = client
                .put(&url)
                .bearer_auth(&kv.api_token)
                .header("content-type", "application/octet-stream")
                .body(value.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("old fixture: PUT {url} (KV key {key:?}) failed: {e}"));
            let status = resp.status();
            if !status.is_success() {
                let body = resp.text().await.unwrap_or_default();
                panic!("old fixture: PUT {url} (KV key {key:?}) answered {status}: {body}");
            }
        }
    }

    /// Drops the old database (terminating any connections still open to it).
    pub async fn drop_db(self) {
        drop_database(&self.admin_url, &self.url).await;
    }
}

/// Drops the database named by `db_url` (for example one made by [`build_bulk`]) on the server
/// at `pg_admin_url`, terminating any connections still open to it.
pub async fn drop_database(pg_admin_url: &str, db_url: &str) {
    let parsed = url::Url::parse(db_url)
        .unwrap_or_else(|e| panic!("old fixture: bad database URL {db_url:?}: {e}"));
    let name = parsed.path().trim_start_matches('/').to_owned();
    assert!(
        name.starts_with("old_") && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "old fixture: refusing to drop {name:?}: not a database made by this fixture"
    );
    let mut conn = connect(pg_admin_url).await;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .unwrap_or_else(|e| panic!("old fixture: DROP DATABASE {name} failed: {e}"));
    let _ = conn.close().await;
}

/// The old schema, as the old code created it at start-up.
const OLD_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS teams (
    id VARCHAR(50) PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    description TEXT,
    color VARCHAR(7) NOT NULL DEFAULT '#3b82f6',
    icon VARCHAR(10),
    created_at TIMESTAMP DEFAULT NOW(),
    created_by VARCHAR(100),
    updated_at TIMESTAMP DEFAULT NOW()
);
-- team_id has no REFERENCES teams(id) ON DELETE CASCADE: like the installations where it is
-- missing, so orphan tokens exist.
CREATE TABLE IF NOT EXISTS tokens (
    id SERIAL PRIMARY KEY,
    token_hash VARCHAR(64) NOT NULL UNIQUE,
    token_encrypted TEXT,
    name VARCHAR(255) NOT NULL,
    team_id VARCHAR(50),
    created_by VARCHAR(100),
    description TEXT,
    scopes TEXT[] NOT NULL,
    created_at TIMESTAMP DEFAULT NOW(),
    expires_at TIMESTAMP,
    last_used TIMESTAMP,
    is_active BOOLEAN NOT NULL DEFAULT TRUE
);
CREATE TABLE IF NOT EXISTS routes (
    id SERIAL PRIMARY KEY,
    name VARCHAR(255),
    path VARCHAR(255) NOT NULL UNIQUE,
    backend_url TEXT NOT NULL,
    description TEXT,
    tags TEXT[] DEFAULT '{}',
    backend_auth_type VARCHAR(50) DEFAULT 'none',
    backend_auth_config JSONB,
    created_at TIMESTAMP DEFAULT NOW()
);
CREATE TABLE IF NOT EXISTS token_usage_logs (
    id SERIAL PRIMARY KEY,
    token_hash VARCHAR(64),
    route_path VARCHAR(255),
    used_at TIMESTAMP DEFAULT NOW(),
    response_status INTEGER,
    response_time_ms INTEGER,
    ip_address VARCHAR(45),
    user_agent TEXT,
    request_method VARCHAR(10),
    error_message TEXT
);
CREATE TABLE IF NOT EXISTS audit_logs (
    id SERIAL PRIMARY KEY,
    action VARCHAR(50),
    entity_type VARCHAR(50),
    entity_id INTEGER,
    details JSONB,
    created_at TIMESTAMP DEFAULT NOW()
);
"#;

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

struct TokenSpec {
    label: &'static str,
    name: &'static str,
    team: &'static str,
    scopes: &'static [&'static str],
    description: Option<&'static str>,
    created_by: &'static str,
    created_ago: i64,
    /// Seconds from now (negative: in the past); None: never.
    expires_in: Option<i64>,
    last_used_ago: Option<i64>,
    /// False for tokens that came from KV (`token_encrypted` NULL).
    encrypted: bool,
    in_db: bool,
    in_kv: bool,
}

const fn token(
    label: &'static str,
    name: &'static str,
    team: &'static str,
    scopes: &'static [&'static str],
) -> TokenSpec {
    TokenSpec {
        label,
        name,
        team,
        scopes,
        description: None,
        created_by: "user_alice",
        created_ago: 5 * DAY,
        expires_in: None,
        last_used_ago: None,
        encrypted: true,
        in_db: true,
        in_kv: true,
    }
}

/// In SERIAL order for the rows that are in the database.
const TOKENS: &[TokenSpec] = &[
    TokenSpec {
        description: Some("Invoices job"),
        last_used_ago: Some(HOUR),
        ..token("billing", "billing-bot", "payments", &["billing"])
    },
    TokenSpec {
        created_by: "user_bob",
        created_ago: 4 * DAY,
        last_used_ago: Some(2 * DAY),
        ..token("by_path", "images-by-path", "payments", &["/api/image"])
    },
    TokenSpec {
        description: Some("Break-glass access"),
        created_ago: 30 * DAY,
        last_used_ago: Some(40 * DAY - HOUR),
        ..token("all", "all-access", "core-team", &["*"])
    },
    TokenSpec {
        created_ago: 3 * DAY,
        expires_in: Some(90 * DAY),
        ..token("tagged", "tagged", "data", &["tag:money"])
    },
    TokenSpec {
        created_ago: 60 * DAY,
        expires_in: Some(-2 * DAY),
        last_used_ago: Some(3 * DAY),
        ..token("expired", "expired", "payments", &["billing"])
    },
    TokenSpec {
        created_ago: 20 * DAY,
        ..token("orphan", "orphan", "gone-team", &["billing"])
    },
    TokenSpec {
        created_ago: 10 * DAY,
        ..token(
            "stale_scope",
            "stale-scope",
            "payments",
            &["billing", "old-route"],
        )
    },
    TokenSpec {
        created_by: "kv-import",
        created_ago: 7 * DAY,
        encrypted: false,
        ..token("reports", "reports-reader", "data", &["reports"])
    },
    TokenSpec {
        created_ago: 2 * DAY,
        in_kv: false,
        ..token("db_only", "db-only", "payments", &["billing"])
    },
    TokenSpec {
        in_db: false,
        in_kv: false,
        ..token("revoked", "revoked", "payments", &["billing"])
    },
    TokenSpec {
        in_db: false,
        ..token("kv_only", "kv-only", "payments", &["billing"])
    },
];

/// Builds the old database on the PostgreSQL server at `pg_admin_url` (use
/// [`super::pg_admin_url`] in tests) with the old schema and the planted data of this module.
/// `upstream` is an `http://127.0.0.1:PORT` base that working routes point at.
pub async fn build(pg_admin_url: &str, upstream: &str) -> OldFixture {
    let upstream = upstream.trim_end_matches('/').to_owned();
    let (url, mut conn) = create_old_database(pg_admin_url).await;

    // Whole seconds, so the DB and the KV copies agree exactly.
    let now = crate::time::now_ms().div_euclid(1000);
    let at = |ago: i64| naive(now - ago);
    let mut kv = BTreeMap::new();

    // Teams.
    for (id, name, description, color, icon, created_by, ago) in [
        (
            "core-team",
            "Core Team",
            None,
            Some("#8b5cf6"),
            Some("⚙️"),
            "system",
            200 * DAY,
        ),
        (
            "payments",
            "Payments",
            Some("Card and invoice services"),
            Some("#10b981"),
            Some("💳"),
            "user_alice",
            120 * DAY,
        ),
        ("data", "Data", None, None, None, "user_alice", 90 * DAY),
    ] {
        sqlx::query(
            "INSERT INTO teams (id, name, description, color, icon, created_at, created_by, updated_at) \
             VALUES ($1, $2, $3, COALESCE($4, '#3b82f6'), $5, $6::timestamp, $7, $6::timestamp)",
        )
        .bind(id)
        .bind(name)
        .bind(description)
        .bind(color)
        .bind(icon)
        .bind(at(ago))
        .bind(created_by)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("old fixture: inserting team {id} failed: {e}"));
    }

    // Routes, in SERIAL order.
    let up = |p: &str| format!("{upstream}{p}");
    let routes: Vec<RouteRow> = vec![
        (
            "billing",
            "/api/billing",
            up("/billing"),
            &["money"],
            "bearer",
            Some(json!({"token_ref": "BILLING_TOKEN"})),
            Some("Billing API"),
        ),
        (
            "images",
            "/api/image",
            up("/images"),
            &["media"],
            "api-key",
            Some(json!({"key_ref": "IMAGES_KEY", "header_name": "X-Images-Key"})),
            Some("Image service"),
        ),
        (
            "imagex",
            "/api/imagex",
            up("/imagex"),
            &["media"],
            "none",
            None,
            None,
        ),
        (
            "reports",
            "/api/reports/",
            up("/reports"),
            &[],
            "basic",
            Some(json!({"username_ref": "REPORTS_USER", "password_ref": "REPORTS_PASS"})),
            Some("Reporting"),
        ),
        (
            "crm",
            "/api/crm",
            "crm.internal:8080/v1".to_owned(),
            &[],
            "none",
            None,
            None,
        ),
        (
            "spaces",
            "/api/spaces",
            "http://bad host/x".to_owned(),
            &[],
            "none",
            None,
            None,
        ),
        (
            "vault",
            "/api/vault",
            up("/vault"),
            &[],
            "bearer",
            Some(json!({"token_ref": "VAULT_TOKEN"})),
            None,
        ),
        (
            "billing",
            "/api/billing-v2",
            up("/billing2"),
            &[],
            "none",
            None,
            Some("Billing v2 (beta)"),
        ),
        (
            "ledger",
            "/api/ledger",
            up("/ledger"),
            &[],
            "oauth2",
            Some(json!({})),
            None,
        ),
    ];
    let mut blob = serde_json::Map::new();
    for (i, (name, path, backend, tags, auth_type, auth_config, description)) in
        routes.iter().enumerate()
    {
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        sqlx::query(
            "INSERT INTO routes (name, path, backend_url, description, tags, backend_auth_type, \
             backend_auth_config, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::timestamp)",
        )
        .bind(*name)
        .bind(*path)
        .bind(backend.as_str())
        .bind(*description)
        .bind(&tags)
        .bind(*auth_type)
        .bind(auth_config.as_ref().map(Value::to_string))
        .bind(at(50 * DAY - i as i64 * DAY))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("old fixture: inserting route {path} failed: {e}"));
        let mut entry = json!({"url": backend, "tags": tags});
        if *auth_type != "none" {
            entry["auth"] =
                json!({"type": auth_type, "config": auth_config.clone().unwrap_or(json!({}))});
        }
        blob.insert(path.to_string(), entry);
    }
    kv.insert("routes".to_owned(), Value::Object(blob).to_string());
    for (name, value) in [
        ("BILLING_TOKEN", "bill-secret-1"),
        ("IMAGES_KEY", "img-secret-2"),
        ("REPORTS_USER", "reporter"),
        ("REPORTS_PASS", "rep-pass-3"),
    ] {
        kv.insert(
            format!("secret:{name}"),
            json!({"value": value}).to_string(),
        );
    }

    // Tokens, in SERIAL order (ids 1..=9).
    let mut keys = BTreeMap::new();
    for spec in TOKENS {
        let plaintext = random_key();
        let hash = sha256_hex(&plaintext);
        let created_at = at(spec.created_ago);
        let expires_at = spec.expires_in.map(|s| naive(now + s));
        if spec.in_db {
            let encrypted = spec.encrypted.then(|| {
                let mut bytes = [0u8; 60];
                rand::rng().fill_bytes(&mut bytes);
                URL_SAFE_NO_PAD.encode(bytes)
            });
            let scopes: Vec<String> = spec.scopes.iter().map(|s| s.to_string()).collect();
            sqlx::query(
                "INSERT INTO tokens (token_hash, token_encrypted, name, team_id, created_by, description, \
                 scopes, created_at, expires_at, last_used, is_active) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8::timestamp, $9::timestamp, $10::timestamp, TRUE)",
            )
            .bind(&hash)
            .bind(encrypted)
            .bind(spec.name)
            .bind(spec.team)
            .bind(spec.created_by)
            .bind(spec.description)
            .bind(&scopes)
            .bind(&created_at)
            .bind(expires_at.clone())
            .bind(spec.last_used_ago.map(at))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("old fixture: inserting token {} failed: {e}", spec.label));
        }
        if spec.in_kv {
            let (created_at, expires_at) = if spec.in_db {
                (created_at, expires_at)
            } else {
                ("2025-01-02T03:04:05".to_owned(), None)
            };
            let value = json!({
                "name": spec.name,
                "team_id": spec.team,
                "scopes": spec.scopes,
                "created_at": created_at,
                "expires_at": expires_at,
            });
            kv.insert(format!("token:{hash}"), value.to_string());
        }
        keys.insert(spec.label, plaintext);
    }

    // Usage logs.
    let billing_hash = sha256_hex(&keys["billing"]);
    let all_hash = sha256_hex(&keys["all"]);
    let mut usage: Vec<UsageRow> = Vec::new();
    for i in 0..50i64 {
        let failed = i % 10 == 7;
        usage.push((
            billing_hash.clone(),
            "/api/billing",
            // Spread over the last 3 days, newest first.
            60 + i * (3 * DAY - 120) / 50,
            if failed { 502 } else { 200 },
            (5 + (i * 37) % 196) as i32,
            if i % 3 == 0 { "POST" } else { "GET" },
            format!("10.0.0.{}", i % 5 + 1),
            "billing-worker/1.4 (python-requests/2.31)",
            failed.then_some("Bad Gateway: upstream connection reset"),
        ));
    }
    for i in 0..10i64 {
        usage.push((
            all_hash.clone(),
            "/api/image",
            40 * DAY + i * 60,
            200,
            (20 + i * 7) as i32,
            "GET",
            "192.168.1.20".to_owned(),
            "curl/8.5.0",
            None,
        ));
    }
    for i in 0..5i64 {
        usage.push((
            sha256_hex(&format!("ntk_unknown{i}")),
            "/api/billing",
            DAY + i * HOUR,
            200,
            15,
            "GET",
            "203.0.113.7".to_owned(),
            "Mozilla/5.0 (X11; Linux x86_64)",
            None,
        ));
    }
    for (hash, path, ago, status, ms, method, ip, ua, error) in usage {
        sqlx::query(
            "INSERT INTO token_usage_logs (token_hash, route_path, used_at, response_status, \
             response_time_ms, ip_address, user_agent, request_method, error_message) \
             VALUES ($1, $2, $3::timestamp, $4, $5, $6, $7, $8, $9)",
        )
        .bind(hash)
        .bind(path)
        .bind(at(ago))
        .bind(status)
        .bind(ms)
        .bind(ip)
        .bind(ua)
        .bind(method)
        .bind(error)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("old fixture: inserting a usage row failed: {e}"));
    }

    // Audit logs.
    let alice = |extra: Value| {
        let mut details = json!({"user_id": "user_alice", "email": "alice@example.com"});
        if let (Some(d), Value::Object(extra)) = (details.as_object_mut(), extra) {
            d.extend(extra);
        }
        details.to_string()
    };
    for (action, entity, id, details, ago) in [
        (
            "create",
            "route",
            1,
            alice(json!({"name": "billing", "path": "/api/billing"})),
            50 * DAY,
        ),
        (
            "create",
            "token",
            1,
            alice(json!({"name": "billing-bot", "team_id": "payments"})),
            5 * DAY,
        ),
        (
            "update",
            "route",
            4,
            alice(json!({"changes": ["backend_url", "backend_auth_type"]})),
            4 * DAY,
        ),
        (
            "update",
            "token",
            7,
            alice(json!({"scopes": ["billing", "old-route"]})),
            3 * DAY,
        ),
        (
            "delete",
            "route",
            10,
            alice(json!({"name": "old-route", "path": "/api/old-route"})),
            DAY,
        ),
    ] {
        sqlx::query(
            "INSERT INTO audit_logs (action, entity_type, entity_id, details, created_at) \
             VALUES ($1, $2, $3, $4::jsonb, $5::timestamp)",
        )
        .bind(action)
        .bind(entity)
        .bind(id)
        .bind(details)
        .bind(at(ago))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("old fixture: inserting an audit row failed: {e}"));
    }
    let _ = conn.close().await;

    OldFixture {
        url,
        keys,
        idp_users_json: idp_users_json(now),
        upstream,
        kv,
        admin_url: pg_admin_url.to_owned(),
    }
}

/// The identity-provider users export: an admin-API style JSON array.
fn idp_users_json(now: i64) -> String {
    let ms = |ago: i64| (now - ago) * 1000;
    let users = json!([
        {
            "id": "user_alice",
            "email_addresses": [{"id": "idn_alice_1", "email_address": "alice@example.com"}],
            "primary_email_address_id": "idn_alice_1",
            "first_name": "Alice",
            "last_name": "Admin",
            "public_metadata": {
                "tokenManager:teamRoles": {"payments": "ADMIN", "core-team": "ADMIN"},
                "tokenManager:globalRole": "ADMIN"
            },
            "created_at": ms(300 * DAY),
            "last_sign_in_at": ms(HOUR)
        },
        {
            "id": "user_bob",
            // The primary address is not the first one.
            "email_addresses": [
                {"id": "idn_bob_2", "email_address": "bob.personal@example.net"},
                {"id": "idn_bob_1", "email_address": "bob@example.com"}
            ],
            "primary_email_address_id": "idn_bob_1",
            "first_name": "Bob",
            "last_name": "Dev",
            "public_metadata": {
                "tokenManager:teamRoles": {"payments": "DEVELOPER", "data": "VIEWER", "core-team": null},
                "tokenManager:role": "user"
            },
            "created_at": ms(200 * DAY),
            "last_sign_in_at": ms(2 * DAY)
        },
        {
            "id": "user_carol",
            "email_addresses": [{"id": "idn_carol_1", "email_address": "carol@example.com"}],
            "primary_email_address_id": "idn_carol_1",
            "first_name": "Carol",
            "last_name": "Gone",
            "public_metadata": {
                "tokenManager:teamRoles": {"gone-team": "MANAGER", "data": "MANAGER"},
                "tokenManager:invitedBy": "user_alice",
                "tokenManager:invitedAt": format!("{}Z", naive(now - 100 * DAY))
            },
            "created_at": ms(100 * DAY),
            "last_sign_in_at": null
        },
        {
            "id": "user_dan",
            "email_addresses": [{"id": "idn_dan_1", "email_address": "dan@example.com"}],
            "primary_email_address_id": "idn_dan_1",
            "first_name": "Dan",
            "last_name": "Nobody",
            "public_metadata": {},
            "created_at": ms(10 * DAY),
            "last_sign_in_at": null
        }
    ]);
    serde_json::to_string_pretty(&users).expect("users JSON renders")
}

/// For the benchmark: a fresh old database with `tokens` tokens over 20 teams, `routes` routes
/// and `usage_rows` usage rows over the last 30 days, generated inside PostgreSQL. Token `i`
/// (1-based, id `i`) has the plaintext `ntk_bench<i>`. Returns the database URL (drop it with
/// [`drop_database`]).
pub async fn build_bulk(
    pg_admin_url: &str,
    upstream: &str,
    tokens: u32,
    routes: u32,
    usage_rows: u64,
) -> String {
    assert!(
        tokens >= 1 && routes >= 1,
        "old fixture: build_bulk needs at least one token and one route"
    );
    let upstream = upstream.trim_end_matches('/');
    let (url, mut conn) = create_old_database(pg_admin_url).await;
    let (tokens, routes) = (i64::from(tokens), i64::from(routes));
    let usage_rows =
        i64::try_from(usage_rows).expect("old fixture: usage_rows fits in a PostgreSQL bigint");

    let steps: [(&str, &'static str, Vec<Bind>); 5] = [
        ("session", "SET synchronous_commit = off", vec![]),
        (
            "teams",
            "INSERT INTO teams (id, name, color, created_at, created_by, updated_at) \
             SELECT CASE WHEN k = 0 THEN 'core-team' ELSE 'team-' || k END, \
                    CASE WHEN k = 0 THEN 'Core Team' ELSE 'Team ' || k END, \
                    CASE WHEN k = 0 THEN '#8b5cf6' ELSE '#3b82f6' END, \
                    (now() AT TIME ZONE 'UTC') - interval '200 days', \
                    CASE WHEN k = 0 THEN 'system' ELSE 'user_alice' END, \
                    (now() AT TIME ZONE 'UTC') - interval '200 days' \
             FROM generate_series(0, 19) AS k",
            vec![],
        ),
        (
            "routes",
            "INSERT INTO routes (name, path, backend_url, tags, backend_auth_type, backend_auth_config, created_at) \
             SELECT 'svc' || i, '/svc' || i, $1 || '/svc' || i, ARRAY['t' || (i % 10)], \
                    CASE WHEN i % 4 = 0 THEN 'bearer' ELSE 'none' END, \
                    CASE WHEN i % 4 = 0 THEN jsonb_build_object('token_ref', 'SVC' || i || '_TOKEN') END, \
                    (now() AT TIME ZONE 'UTC') - interval '100 days' \
             FROM generate_series(1, $2::bigint) AS i",
            vec![Bind::Text(upstream.to_owned()), Bind::Int(routes)],
        ),
        (
            "tokens",
            "INSERT INTO tokens (token_hash, token_encrypted, name, team_id, created_by, scopes, created_at, expires_at) \
             SELECT encode(sha256(('ntk_bench' || i)::bytea), 'hex'), md5('enc' || i), 'bench-' || i, \
                    CASE WHEN i % 20 = 0 THEN 'core-team' ELSE 'team-' || (i % 20) END, 'user_alice', \
                    CASE i % 4 \
                        WHEN 0 THEN ARRAY['*'] \
                        WHEN 1 THEN ARRAY['svc' || (1 + i % $2::bigint)] \
                        WHEN 2 THEN ARRAY['svc' || (1 + i % $2::bigint), 'svc' || (1 + (i + 1) % $2::bigint)] \
                        ELSE ARRAY['tag:t' || (i % 10)] END, \
                    (now() AT TIME ZONE 'UTC') - (i % 60 + 30) * interval '1 day', \
                    CASE WHEN i % 7 = 0 THEN (now() AT TIME ZONE 'UTC') + interval '90 days' END \
             FROM generate_series(1, $1::bigint) AS i",
            vec![Bind::Int(tokens), Bind::Int(routes)],
        ),
        (
            "usage",
            "INSERT INTO token_usage_logs (token_hash, route_path, used_at, response_status, response_time_ms, \
                 ip_address, user_agent, request_method, error_message) \
             SELECT encode(sha256(('ntk_bench' || (1 + g % $1::bigint))::bytea), 'hex'), \
                    '/svc' || (1 + (g / 7) % $2::bigint), \
                    (now() AT TIME ZONE 'UTC') - ((g * 2654435761) % 2592000) * interval '1 second', \
                    CASE WHEN g % 50 = 0 THEN 502 WHEN g % 25 = 0 THEN 429 ELSE 200 END, \
                    (5 + g % 200)::int, \
                    '10.' || (g % 250) || '.' || ((g / 250) % 250) || '.1', \
                    'bench-agent/1.0', \
                    CASE WHEN g % 4 = 0 THEN 'POST' ELSE 'GET' END, \
                    CASE WHEN g % 50 = 0 THEN 'upstream timeout' END \
             FROM generate_series(1, $3::bigint) AS g",
            vec![Bind::Int(tokens), Bind::Int(routes), Bind::Int(usage_rows)],
        ),
    ];
    for (what, sql, binds) in steps {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = match b {
                Bind::Text(s) => q.bind(s),
                Bind::Int(n) => q.bind(n),
            };
        }
        q.execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("old fixture: bulk {what} failed: {e}"));
    }
    let _ = conn.close().await;
    url
}

/// name, path, backend URL, tags, auth type, auth config, description.
type RouteRow = (
    &'static str,
    &'static str,
    String,
    &'static [&'static str],
    &'static str,
    Option<Value>,
    Option<&'static str>,
);

/// token hash, route path, seconds ago, status, response ms, method, ip, user agent, error.
type UsageRow = (
    String,
    &'static str,
    i64,
    i32,
    i32,
    &'static str,
    String,
    &'static str,
    Option<&'static str>,
);

enum Bind {
    Text(String),
    Int(i64),
}

/// Creates `old_<16 hex>` on the server and returns its URL.
/// A new database with the old schema, and a connection to it.
async fn create_old_database(pg_admin_url: &str) -> (String, PgConnection) {
    let url = create_database(pg_admin_url).await;
    let mut conn = connect(&url).await;
    sqlx::raw_sql(OLD_SCHEMA)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("old fixture: creating the old schema failed: {e}"));
    (url, conn)
}

async fn create_database(pg_admin_url: &str) -> String {
    let name = format!("old_{:016x}", rand::random::<u64>());
    let mut conn = connect(pg_admin_url).await;
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("old fixture: CREATE DATABASE {name} failed: {e}"));
    let _ = conn.close().await;
    let mut u = url::Url::parse(pg_admin_url)
        .unwrap_or_else(|e| panic!("old fixture: bad admin URL {pg_admin_url:?}: {e}"));
    u.set_path(&format!("/{name}"));
    u.to_string()
}

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("old fixture: cannot connect to {url}: {e}"))
}

fn random_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("ntk_{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Unix seconds to a naive UTC ISO timestamp without zone: `2025-01-02T03:04:05`.
fn naive(unix_s: i64) -> String {
    crate::time::rfc3339(unix_s * 1000)[..19].to_owned()
}
