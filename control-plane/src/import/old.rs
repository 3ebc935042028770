//! Reading the old installation: its PostgreSQL database (read-only, one snapshot), its
//! Cloudflare KV namespace (through the REST API) and its identity provider's user export.
//! Nothing here decides anything: [`super::plan`] does.

use crate::time::Millis;
use keygate_kv_cloudflare::{CloudflareConfig, CloudflareKv, KvBackend};
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use std::collections::{BTreeMap, BTreeSet};

/// Reading failures, with what was being read. Never holds a secret or a password.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("old database: {0}")]
    Db(String),
    #[error("old KV namespace: {0}")]
    Kv(String),
    #[error("identity-provider export {path}: {reason}")]
    Users { path: String, reason: String },
}

fn db(what: &str) -> impl Fn(sqlx::Error) -> ReadError + '_ {
    move |e| {
        // Connection errors may echo the URL; keep only the kind of failure.
        let msg = match &e {
            sqlx::Error::Database(d) => d.message().to_owned(),
            sqlx::Error::Io(io) => io.to_string(),
            sqlx::Error::Tls(_) => "TLS error".into(),
            sqlx::Error::PoolTimedOut => "timed out".into(),
            sqlx::Error::Configuration(_) => "bad database URL".into(),
            other => other.to_string(),
        };
        ReadError::Db(format!("{what}: {msg}"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldTeam {
    pub id: String,
    pub name: String,
    pub description: String,
    pub color: String,
    pub icon: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldRoute {
    pub id: i32,
    pub name: Option<String>,
    pub path: String,
    pub backend_url: String,
    pub description: String,
    pub tags: Vec<String>,
    pub auth_type: String,
    /// `backend_auth_config` (secret names only); `Null` when absent.
    pub auth_config: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldToken {
    /// `tokens.id`; `None` for a token found only in KV.
    pub id: Option<i32>,
    /// Lowercase hex SHA-256 of the whole key.
    pub hash: String,
    pub name: String,
    pub team_id: Option<String>,
    pub description: String,
    pub scopes: Vec<String>,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub last_used: Option<Millis>,
}

impl OldToken {
    /// How the plan names this row: `tokens/<id>` or `kv/token:<hash>`.
    pub fn reference(&self) -> String {
        match self.id {
            Some(id) => format!("tokens/{id}"),
            None => format!("kv/token:{}", self.hash),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldUser {
    pub id: String,
    pub email: String,
    pub name: String,
    /// `(team id, role)`, roles as written (`ADMIN`, ...); `null` entries left out.
    pub roles: Vec<(String, String)>,
    pub system_admin: bool,
}

/// The usage rows a run imports, as counted in the snapshot. The rows themselves are read
/// while the apply runs ([`UsageCursor`]): a million of them do not fit in memory as rollups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OldUsage {
    pub rows: u64,
    /// Highest `token_usage_logs.id` to import (the next run starts after it).
    pub max_id: i64,
}

/// `(minute ms, token hash, route path, status)` -> latencies in µs: usage rows rolled up.
pub type UsageBuckets = BTreeMap<(i64, String, String, u16), keygate_rollup::RollupValue>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldAudit {
    pub id: i64,
    pub action: String,
    pub entity_type: String,
    pub entity_id: Option<i32>,
    pub details: Value,
    pub created_at: Millis,
}

/// What the old KV namespace holds that the database may not.
#[derive(Debug, Clone, Default)]
pub struct OldKvData {
    /// Hashes of every `token:<hash>` key.
    pub token_hashes: BTreeSet<String>,
    /// Tokens whose key is in KV but whose row is not in the database.
    pub kv_only: Vec<OldToken>,
    /// `secret:<NAME>` values that routes name.
    pub secrets: BTreeMap<String, crate::secrets::SecretString>,
}

/// The whole old installation as read.
#[derive(Debug, Clone, Default)]
pub struct OldSystem {
    pub teams: Vec<OldTeam>,
    pub routes: Vec<OldRoute>,
    pub tokens: Vec<OldToken>,
    pub users: Vec<OldUser>,
    pub usage: OldUsage,
    pub audit: Vec<OldAudit>,
    pub kv: Option<OldKvData>,
}

/// Where the old KV namespace is.
#[derive(Clone)]
pub struct KvSource {
    pub base_url: String,
    pub account_id: String,
    pub namespace_id: String,
    pub api_token: String,
}

impl std::fmt::Debug for KvSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvSource")
            .field("base_url", &self.base_url)
            .field("account_id", &self.account_id)
            .field("namespace_id", &self.namespace_id)
            .finish_non_exhaustive()
    }
}

/// What to read beyond teams, routes and tokens.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Usage rows newer than this (epoch ms) and with an id above `usage_after_id`;
    /// `None`: no usage.
    pub usage_since: Option<Millis>,
    pub usage_after_id: i64,
    /// Audit rows with an id above this; `None`: no audit history.
    pub audit_after_id: Option<i64>,
}

/// Reads the database in one read-only REPEATABLE READ transaction (one snapshot). The usage
/// rows are only counted; when there are any, the returned cursor keeps the transaction open
/// and reads them in the same snapshot.
pub async fn read_db(
    url: &str,
    opts: &ReadOptions,
) -> Result<(OldSystem, Option<UsageCursor>), ReadError> {
    let mut conn = PgConnection::connect(url).await.map_err(db("connecting"))?;
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut conn)
        .await
        .map_err(db("starting a read-only transaction"))?;

    type TeamRow = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let teams: Vec<TeamRow> = sqlx::query_as(
        "SELECT id, name, description, color, icon FROM teams ORDER BY created_at NULLS FIRST, id",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(db("reading teams"))?;
    let teams = teams
        .into_iter()
        .map(|(id, name, description, color, icon)| OldTeam {
            id,
            name,
            description: description.unwrap_or_default(),
            color: color.unwrap_or_default(),
            icon: icon.unwrap_or_default(),
        })
        .collect();

    type RouteRow = (
        i32,
        Option<String>,
        String,
        String,
        Option<String>,
        Option<Vec<String>>,
        Option<String>,
        Option<String>,
    );
    let routes: Vec<RouteRow> = sqlx::query_as(
        "SELECT id, name, path, backend_url, description, tags, backend_auth_type, \
         backend_auth_config::text FROM routes ORDER BY id",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(db("reading routes"))?;
    let routes = routes
        .into_iter()
        .map(
            |(id, name, path, backend_url, description, tags, t, cfg)| OldRoute {
                id,
                name,
                path,
                backend_url,
                description: description.unwrap_or_default(),
                tags: tags.unwrap_or_default(),
                auth_type: t.unwrap_or_else(|| "none".into()),
                auth_config: cfg
                    .and_then(|c| serde_json::from_str(&c).ok())
                    .unwrap_or(Value::Null),
            },
        )
        .collect();

    type TokenRow = (
        i32,
        String,
        String,
        Option<String>,
        Option<String>,
        Vec<String>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    let tokens: Vec<TokenRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, token_hash, name, team_id, description, scopes, {}, {}, {} \
         FROM tokens WHERE is_active ORDER BY id",
        epoch_ms("created_at"),
        epoch_ms("expires_at"),
        epoch_ms("last_used")
    )))
    .fetch_all(&mut conn)
    .await
    .map_err(db("reading tokens"))?;
    let tokens = tokens
        .into_iter()
        .map(
            |(id, hash, name, team_id, description, scopes, created, expires, used)| OldToken {
                id: Some(id),
                hash: hash.trim().to_ascii_lowercase(),
                name,
                team_id,
                description: description.unwrap_or_default(),
                scopes,
                created_at: created.unwrap_or(0),
                expires_at: expires,
                last_used: used,
            },
        )
        .collect();

    let mut usage = OldUsage {
        rows: 0,
        max_id: opts.usage_after_id,
    };
    let usage_since = opts.usage_since;
    if let Some(since) = usage_since {
        let (rows, max_id): (i64, Option<i32>) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT count(*), max(id) FROM token_usage_logs WHERE {}",
            usage_filter(opts.usage_after_id, None, since)
        )))
        .fetch_one(&mut conn)
        .await
        .map_err(db("counting usage logs"))?;
        usage.rows = u64::try_from(rows).unwrap_or(0);
        usage.max_id = usage.max_id.max(max_id.map_or(0, i64::from));
    }

    let mut audit = Vec::new();
    if let Some(after) = opts.audit_after_id {
        type AuditRow = (
            i32,
            Option<String>,
            Option<String>,
            Option<i32>,
            Option<String>,
            Option<i64>,
        );
        let rows: Vec<AuditRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, action, entity_type, entity_id, details::text, {} FROM audit_logs \
                 WHERE id > $1 ORDER BY id",
            epoch_ms("created_at")
        )))
        .bind(i32::try_from(after).unwrap_or(i32::MAX))
        .fetch_all(&mut conn)
        .await
        .map_err(db("reading audit logs"))?;
        audit = rows
            .into_iter()
            .map(
                |(id, action, entity_type, entity_id, details, at)| OldAudit {
                    id: i64::from(id),
                    action: action.unwrap_or_default(),
                    entity_type: entity_type.unwrap_or_default(),
                    entity_id,
                    details: details
                        .and_then(|d| serde_json::from_str(&d).ok())
                        .unwrap_or(Value::Null),
                    created_at: at.unwrap_or(0),
                },
            )
            .collect();
    }
    let system = OldSystem {
        teams,
        routes,
        tokens,
        users: Vec::new(),
        usage,
        audit,
        kv: None,
    };
    match usage_since {
        Some(since) if usage.rows > 0 => {
            let cursor = UsageCursor {
                conn,
                filter: usage_filter(opts.usage_after_id, Some(usage.max_id), since),
                state: CursorState::NotOpened,
            };
            Ok((system, Some(cursor)))
        }
        _ => {
            end(conn).await;
            Ok((system, None))
        }
    }
}

/// `c` (a naive timestamp column) in epoch ms. Naive timestamps are read as UTC (the old
/// application wrote naive UTC).
fn epoch_ms(c: &str) -> String {
    format!("(extract(epoch from {c}) * 1000)::bigint")
}

/// Ends the read-only transaction and the connection (nothing was written: errors do not
/// matter).
async fn end(mut conn: PgConnection) {
    let _ = sqlx::query("COMMIT").execute(&mut conn).await;
    let _ = conn.close().await;
}

/// The usage rows a run reads: newer than `since` (epoch ms), ids in `(after, upto]`. Only
/// integers are formatted in (a cursor's query takes no parameters).
fn usage_filter(after: i64, upto: Option<i64>, since: Millis) -> String {
    let mut f = format!(
        "id > {after} AND used_at >= to_timestamp({since}::double precision / 1000) AT TIME ZONE 'UTC'"
    );
    if let Some(upto) = upto {
        f.push_str(&format!(" AND id <= {upto}"));
    }
    f
}

enum CursorState {
    NotOpened,
    Open,
    Done,
}

/// The snapshot's usage rows, read in time order a chunk at a time through a server-side
/// cursor in the read transaction [`read_db`] began, so a chunk's rollups share their minutes
/// and hours and memory stays bounded by the chunk. [`UsageCursor::close`] ends it.
pub struct UsageCursor {
    conn: PgConnection,
    filter: String,
    state: CursorState,
}

impl UsageCursor {
    /// The next `rows` usage rows rolled up, with how many rows they were; `None` after the
    /// last.
    pub async fn next(&mut self, rows: u32) -> Result<Option<(u64, UsageBuckets)>, ReadError> {
        match self.state {
            CursorState::Done => return Ok(None),
            CursorState::NotOpened => {
                let sql = format!(
                    "DECLARE keygate_usage NO SCROLL CURSOR FOR \
                     SELECT token_hash, route_path, {}, response_status, response_time_ms \
                     FROM token_usage_logs WHERE {} ORDER BY used_at, id",
                    epoch_ms("used_at"),
                    self.filter
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut self.conn)
                    .await
                    .map_err(db("opening the usage logs"))?;
                self.state = CursorState::Open;
            }
            CursorState::Open => {}
        }
        type Row = (
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<i32>,
            Option<i32>,
        );
        let fetched: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "FETCH FORWARD {rows} FROM keygate_usage"
        )))
        .persistent(false)
        .fetch_all(&mut self.conn)
        .await
        .map_err(db("reading usage logs"))?;
        if fetched.is_empty() {
            self.state = CursorState::Done;
            return Ok(None);
        }
        let n = fetched.len() as u64;
        let mut buckets = UsageBuckets::new();
        for (hash, path, at, status, ms) in fetched {
            let key = (
                keygate_rollup::minute_of(at.unwrap_or(0)),
                hash.unwrap_or_default().to_ascii_lowercase(),
                path.unwrap_or_default(),
                u16::try_from(status.unwrap_or(0)).unwrap_or(0),
            );
            let latency_us = u64::try_from(ms.unwrap_or(0)).unwrap_or(0) * 1000;
            buckets.entry(key).or_default().record(latency_us, 0, 0);
        }
        Ok(Some((n, buckets)))
    }

    /// Ends the read transaction and the connection.
    pub async fn close(self) {
        end(self.conn).await;
    }
}

/// A naive ISO time (`2025-01-02T03:04:05[.ffffff]`, optionally with `Z`) read as UTC.
pub fn naive_iso_ms(s: &str) -> Option<Millis> {
    let s = s.trim().trim_end_matches('Z');
    let t = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()?;
    Some(t.and_utc().timestamp_millis())
}

/// Reads the KV namespace: every `token:` key, the values of tokens the database lacks, and
/// the `secret:<NAME>` values that `secret_names` lists.
pub async fn read_kv(
    src: &KvSource,
    db_hashes: &BTreeSet<String>,
    secret_names: &BTreeSet<String>,
) -> Result<OldKvData, ReadError> {
    let mut cfg = CloudflareConfig::new(&src.account_id, &src.namespace_id, src.api_token.as_str());
    cfg.base_url = src.base_url.clone();
    let kv = CloudflareKv::new(cfg).map_err(|e| ReadError::Kv(e.to_string()))?;
    let keys = kv
        .list_keys("token:")
        .await
        .map_err(|e| ReadError::Kv(format!("listing token keys: {e}")))?;
    let mut out = OldKvData::default();
    for key in keys {
        let Some(hash) = key.strip_prefix("token:") else {
            continue;
        };
        let hash = hash.to_ascii_lowercase();
        out.token_hashes.insert(hash.clone());
        if db_hashes.contains(&hash) {
            continue;
        }
        let Some(raw) = kv
            .get(&key)
            .await
            .map_err(|e| ReadError::Kv(format!("reading {key}: {e}")))?
        else {
            continue;
        };
        let v: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        out.kv_only.push(OldToken {
            id: None,
            hash,
            name: text("name"),
            team_id: v["team_id"].as_str().map(str::to_owned),
            description: String::new(),
            scopes: v["scopes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            created_at: naive_iso_ms(&text("created_at")).unwrap_or(0),
            expires_at: v["expires_at"].as_str().and_then(naive_iso_ms),
            last_used: None,
        });
    }
    for name in secret_names {
        let key = format!("secret:{name}");
        let raw = kv
            .get(&key)
            .await
            .map_err(|e| ReadError::Kv(format!("reading {key}: {e}")))?;
        let value = raw
            .and_then(|r| serde_json::from_slice::<Value>(&r).ok())
            .and_then(|v| v["value"].as_str().map(str::to_owned));
        // A name with no (or an empty) value is left out: the plan reports it as missing.
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            out.secrets
                .insert(name.clone(), crate::secrets::SecretString::new(v));
        }
    }
    Ok(out)
}

/// Reads the identity provider's user export: a JSON array of users (or `{"data": [...]}`),
/// each with `id`, `email_addresses` / `primary_email_address_id` (or `email`),
/// `first_name`, `last_name` and `public_metadata` holding `tokenManager:teamRoles` and
/// `tokenManager:globalRole`.
pub fn read_users(path: &std::path::Path) -> Result<Vec<OldUser>, ReadError> {
    let err = |reason: String| ReadError::Users {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    parse_users(&text).map_err(err)
}

/// [`read_users`] on text.
pub fn parse_users(text: &str) -> Result<Vec<OldUser>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let list = match &v {
        Value::Array(a) => a,
        Value::Object(o) => match o.get("data") {
            Some(Value::Array(a)) => a,
            _ => return Err("expected a JSON array of users (or {\"data\": [...]})".into()),
        },
        _ => return Err("expected a JSON array of users".into()),
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, u) in list.iter().enumerate() {
        let id = u["id"]
            .as_str()
            .ok_or_else(|| format!("users[{i}].id: is required"))?
            .to_owned();
        let emails = u["email_addresses"].as_array();
        let primary = u["primary_email_address_id"].as_str();
        let email = emails
            .and_then(|list| {
                list.iter()
                    .find(|e| primary.is_some() && e["id"].as_str() == primary)
                    .or_else(|| list.first())
            })
            .and_then(|e| e["email_address"].as_str())
            .or_else(|| u["email"].as_str())
            .unwrap_or_default()
            .to_owned();
        let name = [u["first_name"].as_str(), u["last_name"].as_str()]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let meta = &u["public_metadata"];
        let mut roles = Vec::new();
        if let Some(map) = meta["tokenManager:teamRoles"].as_object() {
            for (team, role) in map {
                if let Some(r) = role.as_str() {
                    roles.push((team.clone(), r.to_owned()));
                }
            }
        }
        out.push(OldUser {
            id,
            email,
            name,
            roles,
            system_admin: meta["tokenManager:globalRole"].as_str() == Some("ADMIN"),
        });
    }
    Ok(out)
}
