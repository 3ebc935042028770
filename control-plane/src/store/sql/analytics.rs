//! The analytics read side over the rollup tiers ([`AnalyticsStore`]). Every query covers its
//! range with the spans of [`plan`] (coarsest tier in the middle, finer tiers at the edges)
//! and reads either a series table (one dimension: total, team, route, gateway) or the detail
//! table when the filters need it (a token, team and route together, a ranking by token or
//! error code). Totals are summed in SQL; sketches are merged in Rust. Raw events are read
//! only for the client-address ranking, which rollups cannot answer.

use super::rollups::{
    DIM_GATEWAY, DIM_ROUTE, DIM_TEAM, DIM_TOTAL, TOKEN_DAY_TABLE, VALUE_COLUMNS, ValueCols,
    detail_table, series_table,
};
use super::{Db, SqlStore, db_err};
use crate::ids::TokenId;
use crate::store::{StoreError, StoreResult};
use crate::time::Millis;
use crate::usage::analytics::{
    AnalyticsStore, DAY_MS, ExportRow, HOUR_MS, SeriesAnswer, Span, Stats, Tier, TokenFacts,
    TokenTotals, TopBy, TopRow, UsageScope, plan, tier_for_step, tier_holding,
};
use keygate_rollup::RollupKey;
use sqlx::QueryBuilder;
use std::collections::HashMap;

/// Rows per retention DELETE statement (keeps the SQLite writer free between them).
const DELETE_CHUNK: i64 = 5000;
/// How long replay protection and gateway minutes are kept.
const BATCH_RETENTION_MS: Millis = 48 * HOUR_MS;

/// Which table family a scope reads.
#[derive(Debug, Clone)]
enum Source {
    /// A series table: `dim` with one of `keys`.
    Series {
        dim: &'static str,
        keys: Vec<String>,
    },
    /// The detail table with the scope's filters.
    Detail,
    /// `usage_token_day`: calls and errors per (day, token, team); day spans only.
    TokenDay,
}

fn source(s: &UsageScope) -> Source {
    let one = |dim, key: &str| Source::Series {
        dim,
        keys: vec![key.to_owned()],
    };
    if s.token_id.is_some() {
        return Source::Detail;
    }
    if let Some(g) = &s.gateway {
        return one(DIM_GATEWAY, g);
    }
    match (&s.team_id, &s.route, &s.visible_teams) {
        (Some(t), None, _) => one(DIM_TEAM, t.as_str()),
        (None, Some(r), None) => one(DIM_ROUTE, r),
        (None, None, None) => one(DIM_TOTAL, ""),
        (None, None, Some(teams)) => Source::Series {
            dim: DIM_TEAM,
            keys: teams.iter().map(|t| t.0.clone()).collect(),
        },
        _ => Source::Detail,
    }
}

fn table(src: &Source, tier: Tier) -> &'static str {
    match src {
        Source::Series { .. } => series_table(tier),
        Source::Detail => detail_table(tier),
        Source::TokenDay => TOKEN_DAY_TABLE,
    }
}

/// ` WHERE ...` for one span of `src` (the table is chosen by the caller).
fn push_where(qb: &mut QueryBuilder<Db>, s: &UsageScope, src: &Source, span: &Span) {
    qb.push(" WHERE bucket >= ");
    qb.push_bind(span.start);
    qb.push(" AND bucket < ");
    qb.push_bind(span.end);
    push_filters(qb, s, src);
}

/// The scope's filters (no range).
fn push_filters(qb: &mut QueryBuilder<Db>, s: &UsageScope, src: &Source) {
    match src {
        Source::Series { dim, keys } => {
            qb.push(" AND dim = ");
            qb.push_bind(*dim);
            super::push_in(qb, "dim_key", keys.iter().cloned());
        }
        Source::Detail => super::usage::push_owner(
            qb,
            s.token_id.as_ref(),
            s.team_id.as_ref(),
            s.route.as_deref(),
            s.visible_teams.as_deref(),
        ),
        // Chosen only without token, route, gateway or status filters (`top_source`).
        Source::TokenDay => {
            super::usage::push_owner(
                qb,
                None,
                s.team_id.as_ref(),
                None,
                s.visible_teams.as_deref(),
            );
            return;
        }
    }
    push_status_class(qb, s);
}

fn push_status_class(qb: &mut QueryBuilder<Db>, s: &UsageScope) {
    if let Some(class) = s.status {
        let (lo, hi) = class.range();
        qb.push(" AND status BETWEEN ");
        qb.push_bind(i32::from(lo));
        qb.push(" AND ");
        qb.push_bind(i32::from(hi));
    }
}

/// The column a ranking groups by, in the detail table.
fn key_column(by: TopBy) -> &'static str {
    match by {
        TopBy::Token => "token_id",
        TopBy::Route => "route",
        TopBy::Team => "team_id",
        TopBy::ErrorCode => "error",
        TopBy::ClientIp => "client_ip",
    }
}

/// A ranking's source: a series table when its dimension is the grouping and nothing else
/// restricts the rows; `usage_token_day` for tokens over whole days filtered at most by team;
/// else the detail table.
fn top_source(s: &UsageScope, by: TopBy, spans: &[Span]) -> (Source, &'static str) {
    let unfiltered = s.token_id.is_none() && s.gateway.is_none() && s.route.is_none();
    match by {
        TopBy::Token
            if unfiltered && s.status.is_none() && spans.iter().all(|sp| sp.tier == Tier::Day) =>
        {
            (Source::TokenDay, "token_id")
        }
        TopBy::Route if unfiltered && s.team_id.is_none() && s.visible_teams.is_none() => (
            Source::Series {
                dim: DIM_ROUTE,
                keys: Vec::new(),
            },
            "dim_key",
        ),
        TopBy::Team if unfiltered => (
            Source::Series {
                dim: DIM_TEAM,
                keys: Vec::new(),
            },
            "dim_key",
        ),
        _ => (Source::Detail, key_column(by)),
    }
}

/// Like [`push_filters`] for a ranking source: a series source without keys ranks every
/// key of its dimension (within the visible teams when it is the team dimension).
fn push_top_filters(qb: &mut QueryBuilder<Db>, s: &UsageScope, src: &Source) {
    match src {
        Source::Series { dim, keys } if keys.is_empty() => {
            qb.push(" AND dim = ");
            qb.push_bind(*dim);
            if *dim == DIM_TEAM {
                if let Some(t) = &s.team_id {
                    qb.push(" AND dim_key = ");
                    qb.push_bind(t.0.clone());
                }
                if let Some(teams) = &s.visible_teams {
                    super::push_in(qb, "dim_key", teams.iter().map(|t| t.0.clone()));
                }
            }
            push_status_class(qb, s);
        }
        _ => push_filters(qb, s, src),
    }
}

#[derive(sqlx::FromRow)]
struct BucketRow {
    bucket: i64,
    status: i32,
    #[sqlx(flatten)]
    value: ValueCols,
}

#[derive(sqlx::FromRow)]
struct KeyedRow {
    k: String,
    status: i32,
    #[sqlx(flatten)]
    value: ValueCols,
}

#[derive(sqlx::FromRow)]
struct CountRow {
    k: String,
    calls: Option<i64>,
    errors: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct ExportDbRow {
    bucket: i64,
    token_id: String,
    team_id: String,
    route: String,
    status: i32,
    error: String,
    #[sqlx(flatten)]
    value: ValueCols,
}

fn status_of(v: i32) -> u16 {
    u16::try_from(v).unwrap_or(0)
}

fn count(v: Option<i64>) -> u64 {
    u64::try_from(v.unwrap_or(0)).unwrap_or(0)
}

/// What [`SqlStore::ranked`] groups by and how it ranks.
struct Ranking<'a> {
    src: &'a Source,
    /// The grouping column (or expression) of `src`'s table.
    col: &'a str,
    by_errors: bool,
    limit: Option<u32>,
}

impl SqlStore {
    /// Runs a ranking built as `SELECT k, calls, errors ...`.
    async fn top_rows(&self, mut qb: QueryBuilder<Db>) -> StoreResult<Vec<TopRow>> {
        let rows: Vec<CountRow> = qb
            .build_query_as()
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|r| TopRow {
                key: r.k,
                calls: count(r.calls),
                errors: count(r.errors),
            })
            .collect())
    }

    /// `SELECT k, calls, errors` ranked, over `spans` (UNION ALL of one SELECT per span);
    /// `extra` adds conditions to each SELECT.
    async fn ranked(
        &self,
        s: &UsageScope,
        spans: &[Span],
        r: Ranking<'_>,
        extra: impl Fn(&mut QueryBuilder<Db>),
    ) -> StoreResult<Vec<TopRow>> {
        let Ranking {
            src,
            col,
            by_errors,
            limit,
        } = r;
        if spans.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb = QueryBuilder::<Db>::new(
            "SELECT k, CAST(SUM(c) AS BIGINT) AS calls, CAST(SUM(e) AS BIGINT) AS errors FROM (",
        );
        for (i, span) in spans.iter().enumerate() {
            if i > 0 {
                qb.push(" UNION ALL ");
            }
            let errors = match src {
                Source::TokenDay => "errors",
                _ => "CASE WHEN status >= 400 THEN calls ELSE 0 END",
            };
            qb.push(format!(
                "SELECT {col} AS k, calls AS c, {errors} AS e FROM {} WHERE bucket >= ",
                table(src, span.tier)
            ));
            qb.push_bind(span.start);
            qb.push(" AND bucket < ");
            qb.push_bind(span.end);
            push_top_filters(&mut qb, s, src);
            extra(&mut qb);
        }
        qb.push(") u GROUP BY k");
        qb.push(if by_errors {
            " ORDER BY errors DESC, calls DESC, k"
        } else {
            " ORDER BY calls DESC, k"
        });
        if let Some(n) = limit {
            qb.push(" LIMIT ");
            qb.push_bind(i64::from(n));
        }
        self.top_rows(qb).await
    }

    /// Client addresses ranked from raw events (rollups carry none).
    async fn top_client_ips(
        &self,
        s: &UsageScope,
        by_errors: bool,
        limit: u32,
    ) -> StoreResult<Vec<TopRow>> {
        let mut qb = QueryBuilder::<Db>::new(
            "SELECT client_ip AS k, CAST(COUNT(*) AS BIGINT) AS calls, \
             CAST(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS BIGINT) AS errors \
             FROM usage_events WHERE at >= ",
        );
        qb.push_bind(s.start);
        qb.push(" AND at < ");
        qb.push_bind(s.end);
        if let Some(g) = &s.gateway {
            qb.push(" AND gateway = ");
            qb.push_bind(g.clone());
        }
        push_filters(&mut qb, s, &Source::Detail);
        qb.push(" GROUP BY client_ip");
        qb.push(if by_errors {
            " ORDER BY errors DESC, calls DESC, k"
        } else {
            " ORDER BY calls DESC, k"
        });
        qb.push(" LIMIT ");
        qb.push_bind(i64::from(limit));
        self.top_rows(qb).await
    }

    /// MIN or MAX bucket of the detail rows of `tier` within `[from, to)`.
    async fn edge_bucket(
        &self,
        s: &UsageScope,
        tier: Tier,
        from: Millis,
        to: Millis,
        max: bool,
    ) -> StoreResult<Option<Millis>> {
        let src = source(s);
        let mut qb = QueryBuilder::<Db>::new(format!(
            "SELECT {}(bucket) FROM {}",
            if max { "MAX" } else { "MIN" },
            table(&src, tier)
        ));
        push_where(
            &mut qb,
            s,
            &src,
            &Span {
                tier,
                start: from,
                end: to,
            },
        );
        let (v,): (Option<i64>,) = qb
            .build_query_as()
            .fetch_one(&self.read)
            .await
            .map_err(db_err)?;
        Ok(v)
    }

    /// Deletes rows of `table` with `col < before` in chunks, by `key` (its primary key).
    async fn delete_older(
        &self,
        table: &str,
        key: &str,
        col: &str,
        before: Millis,
    ) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            // Table and column names are this module's constants, never input.
            let n = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE ({key}) IN \
                 (SELECT {key} FROM {table} WHERE {col} < $1 LIMIT $2)"
            )))
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
}

#[async_trait::async_trait]
impl AnalyticsStore for SqlStore {
    async fn usage_series(&self, s: &UsageScope, step: Millis) -> StoreResult<SeriesAnswer> {
        if step <= 0 || s.end <= s.start {
            return Err(StoreError::Internal(format!(
                "bad usage series request: step {step}, range {}..{}",
                s.start, s.end
            )));
        }
        let first = s.start.div_euclid(step) * step;
        let n = usize::try_from((s.end - first + step - 1) / step).unwrap_or(0);
        let mut points: Vec<(Millis, Stats)> = (0..n)
            .map(|i| (first + i as i64 * step, Stats::default()))
            .collect();
        let mut total = Stats::default();
        // The coarsest tier the step allows, but never finer than what still holds the start.
        let top = tier_for_step(step).max(tier_holding(s.start, crate::time::now_ms()));
        let spans = plan(s.start, s.end, top);
        let src = source(s);
        for span in &spans {
            let mut qb = QueryBuilder::<Db>::new(format!(
                "SELECT bucket, status, {VALUE_COLUMNS} FROM {}",
                table(&src, span.tier)
            ));
            push_where(&mut qb, s, &src, span);
            let rows: Vec<BucketRow> = qb
                .build_query_as()
                .fetch_all(&self.read)
                .await
                .map_err(db_err)?;
            for r in rows {
                let status = status_of(r.status);
                let v = r.value.value();
                let i = usize::try_from((r.bucket - first).div_euclid(step)).unwrap_or(usize::MAX);
                if let Some((_, p)) = points.get_mut(i) {
                    p.add(status, &v);
                }
                total.add(status, &v);
            }
        }
        Ok(SeriesAnswer {
            total,
            points,
            tier: spans.iter().map(|sp| sp.tier).min(),
        })
    }

    async fn usage_top(
        &self,
        s: &UsageScope,
        by: TopBy,
        by_errors: bool,
        limit: u32,
    ) -> StoreResult<(Vec<TopRow>, Tier)> {
        let spans = plan(s.start, s.end, Tier::Day);
        let tier = spans.iter().map(|sp| sp.tier).min().unwrap_or(Tier::Day);
        if by == TopBy::ClientIp {
            return Ok((self.top_client_ips(s, by_errors, limit).await?, tier));
        }
        let (src, col) = top_source(s, by, &spans);
        let only_errors = |qb: &mut QueryBuilder<Db>| {
            if by == TopBy::ErrorCode {
                qb.push(" AND error <> ''");
            }
        };
        let rank = Ranking {
            src: &src,
            col,
            by_errors,
            limit: Some(limit),
        };
        let rows = self.ranked(s, &spans, rank, only_errors).await?;
        Ok((rows, tier))
    }

    async fn usage_breakdown(
        &self,
        s: &UsageScope,
        by: TopBy,
        limit: u32,
    ) -> StoreResult<Vec<(String, Stats)>> {
        let spans = plan(s.start, s.end, Tier::Day);
        let col = key_column(by);
        let rank = Ranking {
            src: &Source::Detail,
            col,
            by_errors: false,
            limit: Some(limit),
        };
        let top = self.ranked(s, &spans, rank, |_| {}).await?;
        if top.is_empty() {
            return Ok(Vec::new());
        }
        let mut stats: HashMap<String, Stats> = top
            .iter()
            .map(|t| (t.key.clone(), Stats::default()))
            .collect();
        for span in &spans {
            let mut qb = QueryBuilder::<Db>::new(format!(
                "SELECT {col} AS k, status, {VALUE_COLUMNS} FROM {}",
                detail_table(span.tier)
            ));
            push_where(&mut qb, s, &Source::Detail, span);
            super::push_in(&mut qb, col, top.iter().map(|t| t.key.clone()));
            let rows: Vec<KeyedRow> = qb
                .build_query_as()
                .fetch_all(&self.read)
                .await
                .map_err(db_err)?;
            for r in rows {
                if let Some(st) = stats.get_mut(&r.k) {
                    st.add(status_of(r.status), &r.value.value());
                }
            }
        }
        Ok(top
            .into_iter()
            .map(|t| {
                let st = stats.remove(&t.key).unwrap_or_default();
                (t.key, st)
            })
            .collect())
    }

    async fn usage_statuses(&self, s: &UsageScope) -> StoreResult<Vec<(u16, u64)>> {
        let spans = plan(s.start, s.end, Tier::Day);
        let src = source(s);
        let rank = Ranking {
            src: &src,
            col: "CAST(status AS TEXT)",
            by_errors: false,
            limit: None,
        };
        let rows = self.ranked(s, &spans, rank, |_| {}).await?;
        let mut out: Vec<(u16, u64)> = rows
            .into_iter()
            .filter_map(|r| r.key.parse::<u16>().ok().map(|st| (st, r.calls)))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    async fn token_totals(
        &self,
        ids: &[TokenId],
        start: Millis,
        end: Millis,
    ) -> StoreResult<Vec<TokenTotals>> {
        if ids.is_empty() || end <= start {
            return Ok(Vec::new());
        }
        let spans = plan(start, end, Tier::Day);
        let scope = UsageScope {
            start,
            end,
            ..Default::default()
        };
        let rank = Ranking {
            src: &Source::Detail,
            col: "token_id",
            by_errors: false,
            limit: None,
        };
        let rows = self
            .ranked(&scope, &spans, rank, |qb| {
                super::push_in(qb, "token_id", ids.iter().map(|t| t.0.clone()))
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| TokenTotals {
                token_id: TokenId(r.key),
                calls: r.calls,
                errors: r.errors,
            })
            .collect())
    }

    async fn token_facts(&self, ids: &[TokenId]) -> StoreResult<Vec<TokenFacts>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut qb = QueryBuilder::<Db>::new(
                "SELECT id, name, team_id, last_used_at FROM tokens WHERE 1 = 1",
            );
            super::push_in(&mut qb, "id", chunk.iter().map(|t| t.0.clone()));
            let rows: Vec<(String, String, String, Option<i64>)> = qb
                .build_query_as()
                .fetch_all(&self.read)
                .await
                .map_err(db_err)?;
            out.extend(rows.into_iter().map(|(id, name, team, last)| TokenFacts {
                id: TokenId(id),
                name,
                team_id: crate::ids::TeamId(team),
                last_used_at: last,
            }));
        }
        Ok(out)
    }

    async fn team_names(&self, ids: &[String]) -> StoreResult<Vec<(String, String)>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let mut qb = QueryBuilder::<Db>::new("SELECT id, name FROM teams WHERE 1 = 1");
            super::push_in(&mut qb, "id", chunk.iter().cloned());
            let rows: Vec<(String, String)> = qb
                .build_query_as()
                .fetch_all(&self.read)
                .await
                .map_err(db_err)?;
            out.extend(rows);
        }
        Ok(out)
    }

    async fn first_last_use(&self, s: &UsageScope) -> StoreResult<Option<(Millis, Millis)>> {
        // The first (last) day with calls, then its first (last) hour, then minute, as far
        // as the finer tiers still hold them.
        let all = (i64::MIN / 2, i64::MAX / 2);
        let Some(first_day) = self.edge_bucket(s, Tier::Day, all.0, all.1, false).await? else {
            return Ok(None);
        };
        let last_day = self
            .edge_bucket(s, Tier::Day, all.0, all.1, true)
            .await?
            .unwrap_or(first_day);
        let mut first = first_day;
        if let Some(h) = self
            .edge_bucket(s, Tier::Hour, first_day, first_day + DAY_MS, false)
            .await?
        {
            first = h;
            if let Some(m) = self
                .edge_bucket(s, Tier::Minute, h, h + HOUR_MS, false)
                .await?
            {
                first = m;
            }
        }
        let mut last = last_day;
        if let Some(h) = self
            .edge_bucket(s, Tier::Hour, last_day, last_day + DAY_MS, true)
            .await?
        {
            last = h;
            if let Some(m) = self
                .edge_bucket(s, Tier::Minute, h, h + HOUR_MS, true)
                .await?
            {
                last = m;
            }
        }
        Ok(Some((first, last)))
    }

    async fn export_rollups(
        &self,
        s: &UsageScope,
        tier: Tier,
        after: Option<String>,
        limit: u32,
    ) -> StoreResult<(Vec<ExportRow>, Option<String>)> {
        let mut qb = QueryBuilder::<Db>::new(format!(
            "SELECT bucket, token_id, team_id, route, status, error, {VALUE_COLUMNS} FROM {}",
            detail_table(tier)
        ));
        push_where(
            &mut qb,
            s,
            &Source::Detail,
            &Span {
                tier,
                start: tier.floor(s.start),
                end: tier.ceil(s.end),
            },
        );
        if let Some(after) = &after {
            let k: (i64, String, String, String, i32, String) = serde_json::from_str(after)
                .map_err(|_| StoreError::Internal("bad export cursor".into()))?;
            qb.push(" AND (bucket, token_id, team_id, route, status, error) > (");
            let mut sep = qb.separated(", ");
            sep.push_bind(k.0)
                .push_bind(k.1)
                .push_bind(k.2)
                .push_bind(k.3)
                .push_bind(k.4)
                .push_bind(k.5);
            qb.push(")");
        }
        qb.push(" ORDER BY bucket, token_id, team_id, route, status, error LIMIT ");
        qb.push_bind(i64::from(limit) + 1);
        let rows: Vec<ExportDbRow> = qb
            .build_query_as()
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        let more = rows.len() > limit as usize;
        let out: Vec<ExportRow> = rows
            .into_iter()
            .take(limit as usize)
            .map(|r| ExportRow {
                tier,
                key: RollupKey {
                    minute: r.bucket,
                    token_id: r.token_id,
                    team_id: r.team_id,
                    route: r.route,
                    status: status_of(r.status),
                    error: r.error,
                },
                value: r.value.value(),
            })
            .collect();
        let next = match (more, out.last()) {
            (true, Some(last)) => Some(
                serde_json::to_string(&(
                    last.key.minute,
                    &last.key.token_id,
                    &last.key.team_id,
                    &last.key.route,
                    i32::from(last.key.status),
                    &last.key.error,
                ))
                .expect("a tuple serialises"),
            ),
            _ => None,
        };
        Ok((out, next))
    }

    async fn apply_rollup_retention(&self, now: Millis) -> StoreResult<u64> {
        let mut total = 0;
        for tier in Tier::ALL {
            let before = tier.floor(now - tier.retention_ms());
            total += self
                .delete_older(
                    detail_table(tier),
                    "bucket, token_id, team_id, route, status, error",
                    "bucket",
                    before,
                )
                .await?;
            total += self
                .delete_older(
                    series_table(tier),
                    "dim, dim_key, bucket, status",
                    "bucket",
                    before,
                )
                .await?;
        }
        total += self
            .delete_older(
                TOKEN_DAY_TABLE,
                "bucket, token_id, team_id",
                "bucket",
                Tier::Day.floor(now - Tier::Day.retention_ms()),
            )
            .await?;
        total += self
            .delete_older(
                "usage_batches",
                "gateway, batch_id",
                "at",
                now - BATCH_RETENTION_MS,
            )
            .await?;
        total += self
            .delete_older(
                "gateway_minutes",
                "gateway, minute",
                "minute",
                now - BATCH_RETENTION_MS,
            )
            .await?;
        Ok(total)
    }
}
