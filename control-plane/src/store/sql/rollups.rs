//! Writing usage rollups into the tiers: every rollup is added to the minute, hour and day
//! detail tables and to the per-dimension series tables of each tier, in the ingesting
//! transaction. Numbers add up in SQL terms, but sketches are merged in Rust, so each write
//! reads the rows it changes first ([`lookup`]: one index lookup per key), merges, and upserts
//! the result. The
//! caller serialises these read-modify-writes: SQLite has one writer; on PostgreSQL the
//! ingesting transaction holds [`USAGE_LOCK`] (an advisory lock) first.

use super::{Db, IS_POSTGRES, Tx, db_err};
use crate::store::StoreResult;
use crate::usage::analytics::Tier;
use keygate_rollup::{LatencySketch, RollupKey, RollupValue};
use sqlx::QueryBuilder;
use std::collections::BTreeMap;

/// The advisory lock key (PostgreSQL) that serialises rollup writes across replicas.
pub(super) const USAGE_LOCK: i64 = 0x6b67_7573_6167; // "kgusag"
/// Keys per statement (13 binds per row; far below both dialects' limits).
const CHUNK: usize = 400;

/// Detail table of a tier.
pub(super) fn detail_table(t: Tier) -> &'static str {
    match t {
        Tier::Minute => "usage_rollup_minute",
        Tier::Hour => "usage_rollup_hour",
        Tier::Day => "usage_rollup_day",
    }
}

/// Series table of a tier.
pub(super) fn series_table(t: Tier) -> &'static str {
    match t {
        Tier::Minute => "usage_series_minute",
        Tier::Hour => "usage_series_hour",
        Tier::Day => "usage_series_day",
    }
}

/// Calls per (UTC day, token, team), for rankings by token (migration 0012).
pub(super) const TOKEN_DAY_TABLE: &str = "usage_token_day";

/// The dimensions of the series tables.
pub(super) const DIM_TOTAL: &str = "total";
pub(super) const DIM_TEAM: &str = "team";
pub(super) const DIM_ROUTE: &str = "route";
pub(super) const DIM_GATEWAY: &str = "gateway";

/// Key of a series row: (dim, dim_key, bucket, status).
type SeriesKey = (&'static str, String, i64, u16);

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn unclamp(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The value columns as stored, in table order.
pub(super) const VALUE_COLUMNS: &str = "calls, request_bytes, response_bytes, latency_sum_us, \
     latency_min_us, latency_max_us, sketch";
/// [`VALUE_COLUMNS`] of the alias `t`.
const VALUE_COLUMNS_T: &str = "t.calls, t.request_bytes, t.response_bytes, t.latency_sum_us, \
     t.latency_min_us, t.latency_max_us, t.sketch";

/// A row's value columns.
#[derive(sqlx::FromRow)]
pub(super) struct ValueCols {
    pub calls: i64,
    pub request_bytes: i64,
    pub response_bytes: i64,
    pub latency_sum_us: i64,
    pub latency_min_us: i64,
    pub latency_max_us: i64,
    pub sketch: Vec<u8>,
}

impl ValueCols {
    /// The stored value. A sketch that does not decode (it cannot: only this module writes
    /// it) is replaced by an empty one and logged, so one bad row never fails a query.
    pub fn value(self) -> RollupValue {
        let sketch = LatencySketch::decode(&self.sketch).unwrap_or_else(|e| {
            tracing::error!(error = %e, "stored latency sketch does not decode; ignoring it");
            LatencySketch::new()
        });
        RollupValue {
            count: unclamp(self.calls),
            request_bytes: unclamp(self.request_bytes),
            response_bytes: unclamp(self.response_bytes),
            latency_sum_us: unclamp(self.latency_sum_us),
            latency_min_us: unclamp(self.latency_min_us),
            latency_max_us: unclamp(self.latency_max_us),
            sketch,
        }
    }
}

fn push_value(sep: &mut sqlx::query_builder::Separated<'_, Db, &'static str>, v: &RollupValue) {
    sep.push_bind(clamp(v.count))
        .push_bind(clamp(v.request_bytes))
        .push_bind(clamp(v.response_bytes))
        .push_bind(clamp(v.latency_sum_us))
        .push_bind(clamp(v.latency_min_us))
        .push_bind(clamp(v.latency_max_us))
        .push_bind(v.sketch.encode());
}

const UPDATE_VALUES: &str = " DO UPDATE SET calls = excluded.calls, \
     request_bytes = excluded.request_bytes, response_bytes = excluded.response_bytes, \
     latency_sum_us = excluded.latency_sum_us, latency_min_us = excluded.latency_min_us, \
     latency_max_us = excluded.latency_max_us, sketch = excluded.sketch";

/// Adds `rollups` (reported by `gateway`) to every tier.
pub(super) async fn write(
    tx: &mut Tx,
    gateway: &str,
    rollups: &[(RollupKey, RollupValue)],
) -> StoreResult<()> {
    if rollups.is_empty() {
        return Ok(());
    }
    for tier in Tier::ALL {
        let mut detail: BTreeMap<RollupKey, RollupValue> = BTreeMap::new();
        let mut series: BTreeMap<SeriesKey, RollupValue> = BTreeMap::new();
        for (k, v) in rollups {
            let bucket = tier.floor(k.minute);
            let mut dk = k.clone();
            dk.minute = bucket;
            detail.entry(dk).or_default().merge(v);
            for (dim, key) in [
                (DIM_TOTAL, ""),
                (DIM_TEAM, k.team_id.as_str()),
                (DIM_ROUTE, k.route.as_str()),
                (DIM_GATEWAY, gateway),
            ] {
                series
                    .entry((dim, key.to_owned(), bucket, k.status))
                    .or_default()
                    .merge(v);
            }
        }
        let detail: Vec<_> = detail.into_iter().collect();
        for chunk in detail.chunks(CHUNK) {
            write_detail(tx, tier, chunk).await?;
        }
        let series: Vec<_> = series.into_iter().collect();
        for chunk in series.chunks(CHUNK) {
            write_series(tx, tier, chunk).await?;
        }
    }
    write_token_days(tx, rollups).await
}

/// Adds each rollup's calls (and calls with status >= 400) to its token's day row. Plain
/// sums, so one upsert without reading first.
async fn write_token_days(tx: &mut Tx, rollups: &[(RollupKey, RollupValue)]) -> StoreResult<()> {
    let mut days: BTreeMap<(i64, &str, &str), (i64, i64)> = BTreeMap::new();
    for (k, v) in rollups {
        let calls = clamp(v.count);
        let e = days
            .entry((Tier::Day.floor(k.minute), &k.token_id, &k.team_id))
            .or_default();
        e.0 = e.0.saturating_add(calls);
        if k.status >= 400 {
            e.1 = e.1.saturating_add(calls);
        }
    }
    let days: Vec<_> = days.into_iter().collect();
    for chunk in days.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(format!(
            "INSERT INTO {TOKEN_DAY_TABLE} (bucket, token_id, team_id, calls, errors) "
        ));
        qb.push_values(
            chunk,
            |mut sep, ((bucket, token, team), (calls, errors))| {
                sep.push_bind(*bucket)
                    .push_bind((*token).to_owned())
                    .push_bind((*team).to_owned())
                    .push_bind(*calls)
                    .push_bind(*errors);
            },
        );
        qb.push(format!(
            " ON CONFLICT (bucket, token_id, team_id) DO UPDATE SET \
             calls = {TOKEN_DAY_TABLE}.calls + excluded.calls, \
             errors = {TOKEN_DAY_TABLE}.errors + excluded.errors"
        ));
        qb.build().execute(&mut **tx).await.map_err(db_err)?;
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct DetailRow {
    bucket: i64,
    token_id: String,
    team_id: String,
    route: String,
    status: i32,
    error: String,
    #[sqlx(flatten)]
    value: ValueCols,
}

/// Ends a `SELECT <t.columns> FROM (` whose VALUES list holds the keys: joins `table` (as
/// `t`) on `cols`, looking each key up in the table's primary key. Not a row-value
/// `IN ((...), ...)`: PostgreSQL made that an index condition on the columns every key of a
/// (sorted) chunk shares and filtered the rest, reading every stored row of, say, one
/// dimension per chunk, so writing 1M rollups grew with the square of the rows
/// (bench/README.md, "Import from the old system"). On PostgreSQL a LATERAL subquery makes
/// the per-key lookup certain; SQLite's planner loops over the VALUES and seeks anyway.
fn lookup(qb: &mut QueryBuilder<Db>, table: &str, cols: &[&str]) {
    if IS_POSTGRES {
        let conds: Vec<String> = cols.iter().map(|c| format!("x.{c} = k.{c}")).collect();
        qb.push(format!(
            ") AS k ({}) CROSS JOIN LATERAL (SELECT * FROM {table} x WHERE {}) t",
            cols.join(", "),
            conds.join(" AND ")
        ));
    } else {
        let conds: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("t.{c} = k.column{}", i + 1))
            .collect();
        qb.push(format!(") AS k JOIN {table} t ON {}", conds.join(" AND ")));
    }
}

async fn write_detail(
    tx: &mut Tx,
    tier: Tier,
    chunk: &[(RollupKey, RollupValue)],
) -> StoreResult<()> {
    let table = detail_table(tier);
    let mut qb = QueryBuilder::<Db>::new(format!(
        "SELECT t.bucket, t.token_id, t.team_id, t.route, t.status, t.error, {VALUE_COLUMNS_T} FROM ("
    ));
    qb.push_values(chunk, |mut sep, (k, _)| {
        sep.push_bind(k.minute)
            .push_bind(k.token_id.clone())
            .push_bind(k.team_id.clone())
            .push_bind(k.route.clone())
            .push_bind(i32::from(k.status))
            .push_bind(k.error.clone());
    });
    lookup(
        &mut qb,
        table,
        &["bucket", "token_id", "team_id", "route", "status", "error"],
    );
    let rows: Vec<DetailRow> = qb
        .build_query_as()
        .persistent(false)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_err)?;
    let mut stored: BTreeMap<RollupKey, RollupValue> = rows
        .into_iter()
        .map(|r| {
            (
                RollupKey {
                    minute: r.bucket,
                    token_id: r.token_id,
                    team_id: r.team_id,
                    route: r.route,
                    status: u16::try_from(r.status).unwrap_or(0),
                    error: r.error,
                },
                r.value.value(),
            )
        })
        .collect();
    let mut qb = QueryBuilder::<Db>::new(format!(
        "INSERT INTO {table} (bucket, token_id, team_id, route, status, error, {VALUE_COLUMNS}) "
    ));
    qb.push_values(chunk, |mut sep, (k, v)| {
        let merged = match stored.remove(k) {
            Some(mut old) => {
                old.merge(v);
                old
            }
            None => v.clone(),
        };
        sep.push_bind(k.minute)
            .push_bind(k.token_id.clone())
            .push_bind(k.team_id.clone())
            .push_bind(k.route.clone())
            .push_bind(i32::from(k.status))
            .push_bind(k.error.clone());
        push_value(&mut sep, &merged);
    });
    qb.push(" ON CONFLICT (bucket, token_id, team_id, route, status, error)");
    qb.push(UPDATE_VALUES);
    qb.build().execute(&mut **tx).await.map_err(db_err)?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct SeriesRow {
    dim: String,
    dim_key: String,
    bucket: i64,
    status: i32,
    #[sqlx(flatten)]
    value: ValueCols,
}

async fn write_series(
    tx: &mut Tx,
    tier: Tier,
    chunk: &[(SeriesKey, RollupValue)],
) -> StoreResult<()> {
    let table = series_table(tier);
    let mut qb = QueryBuilder::<Db>::new(format!(
        "SELECT t.dim, t.dim_key, t.bucket, t.status, {VALUE_COLUMNS_T} FROM ("
    ));
    qb.push_values(chunk, |mut sep, ((dim, key, bucket, status), _)| {
        sep.push_bind(*dim)
            .push_bind(key.clone())
            .push_bind(*bucket)
            .push_bind(i32::from(*status));
    });
    lookup(&mut qb, table, &["dim", "dim_key", "bucket", "status"]);
    let rows: Vec<SeriesRow> = qb
        .build_query_as()
        .persistent(false)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_err)?;
    let mut stored: BTreeMap<(String, String, i64, i32), RollupValue> = rows
        .into_iter()
        .map(|r| ((r.dim, r.dim_key, r.bucket, r.status), r.value.value()))
        .collect();
    let mut qb = QueryBuilder::<Db>::new(format!(
        "INSERT INTO {table} (dim, dim_key, bucket, status, {VALUE_COLUMNS}) "
    ));
    qb.push_values(chunk, |mut sep, ((dim, key, bucket, status), v)| {
        let merged =
            match stored.remove(&((*dim).to_owned(), key.clone(), *bucket, i32::from(*status))) {
                Some(mut old) => {
                    old.merge(v);
                    old
                }
                None => v.clone(),
            };
        sep.push_bind(*dim)
            .push_bind(key.clone())
            .push_bind(*bucket)
            .push_bind(i32::from(*status));
        push_value(&mut sep, &merged);
    });
    qb.push(" ON CONFLICT (dim, dim_key, bucket, status)");
    qb.push(UPDATE_VALUES);
    qb.build().execute(&mut **tx).await.map_err(db_err)?;
    Ok(())
}
