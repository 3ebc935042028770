//! Usage events in SQL: idempotent batch inserts, `last_used_at`, gateway totals, pages and
//! retention. Telemetry, not configuration: no audit row, no change event, and commits here
//! do not wake change-feed watchers (there is nothing new for them).

use super::{Db, IS_POSTGRES, SqlStore, db_err};
use crate::ids::{TeamId, TokenId};
use crate::store::{Page, StoreError, StoreResult, UsageStore};
use crate::time::{Millis, now_ms};
use crate::usage::{
    GatewayHour, GatewayStatus, IngestOutcome, StoredUsageEvent, UsageBatch, UsageEvent,
    UsageFilter,
};
use keygate_rollup::{Accumulator, RollupKey, RollupKeyRef, RollupValue};
use sqlx::QueryBuilder;
use std::collections::BTreeMap;

/// Rows per INSERT statement (18 bind parameters each; SQLite allows 32,766 per statement).
const INSERT_CHUNK: usize = 500;
/// Rows per retention DELETE statement, so the SQLite writer is never held for long.
const DELETE_CHUNK: i64 = 5000;

const COLUMNS: &str = "id, gateway, event_id, at, token_hash, token_id, team_id, route, method, \
    status, error, latency_us, request_bytes, response_bytes, client_ip, user_agent, \
    config_revision, request_id";

#[derive(sqlx::FromRow)]
struct UsageRow {
    id: i64,
    gateway: String,
    event_id: String,
    at: i64,
    token_hash: String,
    token_id: String,
    team_id: String,
    route: String,
    method: String,
    status: i32,
    error: String,
    latency_us: i64,
    request_bytes: i64,
    response_bytes: i64,
    client_ip: String,
    user_agent: String,
    config_revision: i64,
    request_id: String,
}

impl TryFrom<UsageRow> for StoredUsageEvent {
    type Error = StoreError;

    fn try_from(r: UsageRow) -> Result<Self, StoreError> {
        let status = u16::try_from(r.status).map_err(|_| {
            StoreError::Internal(format!("corrupt usage_events.status {}", r.status))
        })?;
        Ok(Self {
            id: r.id,
            gateway: r.gateway,
            event: UsageEvent {
                event_id: r.event_id,
                at: r.at,
                token_hash: r.token_hash,
                token_id: (!r.token_id.is_empty()).then_some(TokenId(r.token_id)),
                team_id: (!r.team_id.is_empty()).then_some(TeamId(r.team_id)),
                route: r.route,
                method: r.method,
                status,
                error: r.error,
                latency_us: r.latency_us,
                request_bytes: r.request_bytes,
                response_bytes: r.response_bytes,
                client_ip: r.client_ip,
                user_agent: r.user_agent,
                config_revision: r.config_revision,
                request_id: r.request_id,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
struct GatewayRow {
    name: String,
    reported_by: String,
    first_seen_at: i64,
    last_seen_at: i64,
    events_total: i64,
    dropped_total: i64,
    config_revision: i64,
    version: String,
    requests: Option<i64>,
    events: Option<i64>,
    events_dropped: Option<i64>,
    rollups_dropped: Option<i64>,
    sampled_out: Option<i64>,
}

impl From<GatewayRow> for GatewayStatus {
    fn from(r: GatewayRow) -> Self {
        Self {
            name: r.name,
            reported_by: r.reported_by,
            first_seen_at: r.first_seen_at,
            last_seen_at: r.last_seen_at,
            events_total: r.events_total,
            dropped_total: r.dropped_total,
            config_revision: r.config_revision,
            version: r.version,
            last_hour: GatewayHour {
                requests: r.requests.unwrap_or(0),
                events: r.events.unwrap_or(0),
                events_dropped: r.events_dropped.unwrap_or(0),
                rollups_dropped: r.rollups_dropped.unwrap_or(0),
                sampled_out: r.sampled_out.unwrap_or(0),
            },
        }
    }
}

#[async_trait::async_trait]
impl UsageStore for SqlStore {
    async fn ingest_usage(&self, b: &UsageBatch) -> StoreResult<IngestOutcome> {
        // Inserting in event-id order and locking tokens in id order gives every concurrent
        // batch the same lock order on PostgreSQL (no deadlocks between gateways, or between
        // a batch and its own resend).
        let mut events: Vec<&UsageEvent> = b.events.iter().collect();
        events.sort_by(|x, y| x.event_id.cmp(&y.event_id));

        let mut tx = self.begin().await?;
        if IS_POSTGRES {
            // Rollup rows are read, merged in Rust and written back: one ingesting
            // transaction at a time across every replica (SQLite has one writer anyway).
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(super::rollups::USAGE_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let now = now_ms();
        if let Some(batch_id) = &b.batch_id {
            let new = sqlx::query(
                "INSERT INTO usage_batches (gateway, batch_id, at) VALUES ($1, $2, $3) \
                 ON CONFLICT (gateway, batch_id) DO NOTHING",
            )
            .bind(&b.gateway)
            .bind(batch_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
            if new == 0 {
                // A replay: nothing changes, not even the gateway's last-seen time.
                tx.rollback().await.map_err(db_err)?;
                return Ok(IngestOutcome {
                    replayed: true,
                    ..Default::default()
                });
            }
        }
        // Keys the gateway no longer knows (revoked, expired, deleted: not in its snapshot)
        // are still tokens here: attribute those events to their token and team, so calls
        // still made with a revoked key show up under it. They do not count as a use.
        let unattributed: Vec<String> = events
            .iter()
            .filter(|e| e.token_id.is_none() && !e.token_hash.is_empty())
            .map(|e| e.token_hash.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut known: BTreeMap<String, (String, String)> = BTreeMap::new();
        // (One bind per hash: the INSERT chunk size keeps every statement far below the
        // bind-parameter limit.)
        for chunk in unattributed.chunks(INSERT_CHUNK) {
            let mut qb =
                QueryBuilder::<Db>::new("SELECT token_hash, id, team_id FROM tokens WHERE 1 = 1");
            super::push_in(&mut qb, "token_hash", chunk.iter().cloned());
            let rows: Vec<(String, String, String)> = qb
                .build_query_as()
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
            known.extend(rows.into_iter().map(|(h, id, team)| (h, (id, team))));
        }
        // (token id, team id) to store; empty when unknown.
        let owner = |e: &UsageEvent| -> (String, String) {
            match (&e.token_id, known.get(&e.token_hash)) {
                (None, Some((id, team))) => (id.clone(), team.clone()),
                (token, _) => (
                    token.as_ref().map(|t| t.0.clone()).unwrap_or_default(),
                    e.team_id.as_ref().map(|t| t.0.clone()).unwrap_or_default(),
                ),
            }
        };
        let mut new_ids: std::collections::HashSet<String> = std::collections::HashSet::new();
        for chunk in events.chunks(INSERT_CHUNK) {
            let mut qb = QueryBuilder::<Db>::new(
                "INSERT INTO usage_events (gateway, event_id, at, token_hash, token_id, team_id, \
                 route, method, status, error, latency_us, request_bytes, response_bytes, \
                 client_ip, user_agent, config_revision, request_id) ",
            );
            qb.push_values(chunk, |mut row, e| {
                let (token_id, team_id) = owner(e);
                row.push_bind(b.gateway.clone())
                    .push_bind(e.event_id.clone())
                    .push_bind(e.at)
                    .push_bind(e.token_hash.clone())
                    .push_bind(token_id)
                    .push_bind(team_id)
                    .push_bind(e.route.clone())
                    .push_bind(e.method.clone())
                    .push_bind(i32::from(e.status))
                    .push_bind(e.error.clone())
                    .push_bind(e.latency_us)
                    .push_bind(e.request_bytes)
                    .push_bind(e.response_bytes)
                    .push_bind(e.client_ip.clone())
                    .push_bind(e.user_agent.clone())
                    .push_bind(e.config_revision)
                    .push_bind(e.request_id.clone());
            });
            qb.push(" ON CONFLICT (gateway, event_id) DO NOTHING RETURNING event_id");
            let ids: Vec<(String,)> = qb
                .build_query_as()
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
            new_ids.extend(ids.into_iter().map(|(id,)| id));
        }
        let inserted = new_ids.len() as u64;

        // The requests to count: the rollups, or (senders of plain events) the new events
        // rolled up here, under the token and team the gateway gave them.
        let rolled_up;
        let rollups: &[(RollupKey, RollupValue)] = if b.events_sampled || events.is_empty() {
            &b.rollups
        } else {
            let mut acc = Accumulator::new();
            for (k, v) in &b.rollups {
                acc.merge_value(k.clone(), v.clone());
            }
            for e in events.iter().filter(|e| new_ids.contains(&e.event_id)) {
                acc.record(
                    RollupKeyRef {
                        minute: keygate_rollup::minute_of(e.at),
                        token_id: e.token_id.as_ref().map(|t| t.as_str()).unwrap_or(""),
                        team_id: e.team_id.as_ref().map(|t| t.as_str()).unwrap_or(""),
                        route: &e.route,
                        status: e.status,
                        error: &e.error,
                    },
                    e.latency_us.max(0) as u64,
                    e.request_bytes.max(0) as u64,
                    e.response_bytes.max(0) as u64,
                );
            }
            rolled_up = acc.drain();
            &rolled_up
        };
        super::rollups::write(&mut tx, &b.gateway, rollups).await?;
        let requests: u64 = rollups.iter().map(|(_, v)| v.count).sum();

        // last_used_at: forward only, from the newest event or rollup minute per token; no
        // audit row, no change event (the edge does not carry last use).
        let mut newest: BTreeMap<&str, Millis> = BTreeMap::new();
        let uses = events
            .iter()
            .filter_map(|e| e.token_id.as_ref().map(|t| (t.as_str(), e.at)))
            .chain(
                b.rollups
                    .iter()
                    .filter(|(k, _)| !k.token_id.is_empty())
                    .map(|(k, _)| (k.token_id.as_str(), k.minute)),
            );
        for (token, at) in uses {
            let t = newest.entry(token).or_insert(at);
            *t = (*t).max(at);
        }
        for (token, at) in &newest {
            sqlx::query(
                "UPDATE tokens SET last_used_at = $1 \
                 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
            )
            .bind(*at)
            .bind(*token)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        // Without a batch id, a batch whose every event was already stored is a resend: its
        // drop count was counted the first time.
        let resend = b.batch_id.is_none() && !events.is_empty() && inserted == 0;
        let dropped = if resend { 0 } else { b.dropped };
        let (sampled_out, rollups_dropped) = if resend {
            (0, 0)
        } else {
            (b.sampled_out, b.rollups_dropped)
        };
        sqlx::query(
            "INSERT INTO gateways (name, reported_by, first_seen_at, last_seen_at, events_total, \
             dropped_total, config_revision, version) \
             VALUES ($1, $2, $3, $3, $4, $5, $6, $7) \
             ON CONFLICT (name) DO UPDATE SET reported_by = excluded.reported_by, \
             last_seen_at = excluded.last_seen_at, \
             events_total = gateways.events_total + excluded.events_total, \
             dropped_total = gateways.dropped_total + excluded.dropped_total, \
             config_revision = excluded.config_revision, version = excluded.version",
        )
        .bind(&b.gateway)
        .bind(&b.reported_by)
        .bind(now)
        .bind(i64::try_from(inserted).unwrap_or(i64::MAX))
        .bind(dropped)
        .bind(b.config_revision)
        .bind(&b.gateway_version)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO gateway_minutes (gateway, minute, requests, events, events_dropped, \
             rollups_dropped, sampled_out) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (gateway, minute) DO UPDATE SET \
             requests = gateway_minutes.requests + excluded.requests, \
             events = gateway_minutes.events + excluded.events, \
             events_dropped = gateway_minutes.events_dropped + excluded.events_dropped, \
             rollups_dropped = gateway_minutes.rollups_dropped + excluded.rollups_dropped, \
             sampled_out = gateway_minutes.sampled_out + excluded.sampled_out",
        )
        .bind(&b.gateway)
        .bind(keygate_rollup::minute_of(now))
        .bind(i64::try_from(requests).unwrap_or(i64::MAX))
        .bind(i64::try_from(inserted).unwrap_or(i64::MAX))
        .bind(dropped)
        .bind(rollups_dropped)
        .bind(sampled_out)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        // Plain commit: change-feed watchers have nothing to wake up for; live tails do.
        tx.commit().await.map_err(db_err)?;
        if inserted > 0 {
            self.usage_stored();
        }
        Ok(IngestOutcome {
            events: u32::try_from(inserted).unwrap_or(u32::MAX),
            rollups: u32::try_from(rollups.len()).unwrap_or(u32::MAX),
            replayed: false,
        })
    }

    async fn list_usage(&self, f: &UsageFilter) -> StoreResult<Page<StoredUsageEvent>> {
        let mut qb =
            QueryBuilder::<Db>::new(format!("SELECT {COLUMNS} FROM usage_events WHERE 1 = 1"));
        push_filter(&mut qb, f);
        if let Some(start) = f.start {
            qb.push(" AND at >= ");
            qb.push_bind(start);
        }
        if let Some(end) = f.end {
            qb.push(" AND at < ");
            qb.push_bind(end);
        }
        if let Some((at, id)) = f.after {
            qb.push(" AND (at, id) < (");
            qb.push_bind(at);
            qb.push(", ");
            qb.push_bind(id);
            qb.push(")");
        }
        qb.push(" ORDER BY at DESC, id DESC LIMIT ");
        qb.push_bind(i64::from(f.limit) + 1);
        let rows: Vec<UsageRow> = qb
            .build_query_as()
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        let more = rows.len() > f.limit as usize;
        let items = rows
            .into_iter()
            .take(f.limit as usize)
            .map(StoredUsageEvent::try_from)
            .collect::<Result<_, _>>()?;
        Ok(Page { items, more })
    }

    async fn usage_events_after(
        &self,
        f: &UsageFilter,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredUsageEvent>> {
        let mut qb =
            QueryBuilder::<Db>::new(format!("SELECT {COLUMNS} FROM usage_events WHERE id > "));
        qb.push_bind(after);
        push_filter(&mut qb, f);
        qb.push(" ORDER BY id LIMIT ");
        qb.push_bind(i64::from(limit));
        let rows: Vec<UsageRow> = qb
            .build_query_as()
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.into_iter().map(StoredUsageEvent::try_from).collect()
    }

    async fn last_usage_event_id(&self) -> StoreResult<i64> {
        let (id,): (Option<i64>,) = sqlx::query_as("SELECT MAX(id) FROM usage_events")
            .fetch_one(&self.read)
            .await
            .map_err(db_err)?;
        Ok(id.unwrap_or(0))
    }

    fn subscribe_usage(&self) -> tokio::sync::watch::Receiver<u64> {
        self.usage_commits.subscribe()
    }

    async fn delete_usage_before(&self, before: Millis) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            let n = sqlx::query(
                "DELETE FROM usage_events WHERE id IN \
                 (SELECT id FROM usage_events WHERE at < $1 ORDER BY at LIMIT $2)",
            )
            .bind(before)
            .bind(DELETE_CHUNK)
            .execute(&self.write)
            .await
            .map_err(db_err)?
            .rows_affected();
            total += n;
            if n < DELETE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }

    async fn list_gateways(&self) -> StoreResult<Vec<GatewayStatus>> {
        // Minutes of arrival in the last hour (the current minute included).
        let since = keygate_rollup::minute_of(now_ms()) - 59 * 60_000;
        let rows: Vec<GatewayRow> = sqlx::query_as(
            "SELECT g.name, g.reported_by, g.first_seen_at, g.last_seen_at, g.events_total, \
             g.dropped_total, g.config_revision, g.version, \
             CAST(SUM(m.requests) AS BIGINT) AS requests, CAST(SUM(m.events) AS BIGINT) AS events, \
             CAST(SUM(m.events_dropped) AS BIGINT) AS events_dropped, \
             CAST(SUM(m.rollups_dropped) AS BIGINT) AS rollups_dropped, \
             CAST(SUM(m.sampled_out) AS BIGINT) AS sampled_out \
             FROM gateways g LEFT JOIN gateway_minutes m ON m.gateway = g.name AND m.minute >= $1 \
             GROUP BY g.name, g.reported_by, g.first_seen_at, g.last_seen_at, g.events_total, \
             g.dropped_total, g.config_revision, g.version \
             ORDER BY g.name LIMIT 10000",
        )
        .bind(since)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        Ok(rows.into_iter().map(GatewayStatus::from).collect())
    }
}

/// The filters of `f` but its range and cursor.
fn push_filter(qb: &mut QueryBuilder<Db>, f: &UsageFilter) {
    push_owner(
        qb,
        f.token_id.as_ref(),
        f.team_id.as_ref(),
        f.route.as_deref(),
        f.visible_teams.as_deref(),
    );
    if let Some(status) = f.status {
        qb.push(" AND status = ");
        qb.push_bind(i32::from(status));
    }
}

/// ` AND` conditions on the columns raw events and rollup detail rows share: token, team,
/// route, and the teams a caller may see (`None`: all).
pub(super) fn push_owner(
    qb: &mut QueryBuilder<Db>,
    token: Option<&TokenId>,
    team: Option<&TeamId>,
    route: Option<&str>,
    visible: Option<&[TeamId]>,
) {
    if let Some(t) = token {
        qb.push(" AND token_id = ");
        qb.push_bind(t.0.clone());
    }
    if let Some(t) = team {
        qb.push(" AND team_id = ");
        qb.push_bind(t.0.clone());
    }
    if let Some(r) = route {
        qb.push(" AND route = ");
        qb.push_bind(r.to_owned());
    }
    if let Some(teams) = visible {
        super::push_in(qb, "team_id", teams.iter().map(|t| t.0.clone()));
    }
}
