//! The usage history of the query benchmark, generated without IO: for each hour of `days`
//! days up to now, each token calls with probability [`Shape::p_call`], once, on one of its
//! routes, with status 200 and a value from the [`ValuePool`]; such a call comes with an extra
//! status-500 rollup with probability [`Shape::p_error`]. Each such rollup stands for one
//! gateway rollup at a random minute of its hour.
//!
//! The rows are exactly those `store/sql/rollups.rs` (`write`) would have produced ingesting
//! the same rollups from one gateway: per rollup, a detail row in the hour and day tiers and
//! series rows `total`, `team`, `route` and `gateway` in each, merged per bucket (the day
//! tier's values and sketches are the merge of its hours). The minute tier is written only
//! for rollups of the last [`Shape::minute_tier_ms`] (2 hours): older minute rows would not
//! change any answer of the benchmark, since queries read minutes only at the range's
//! unaligned end.
//!
//! The generator also returns what the answers must add up to ([`Generated`]), so the
//! benchmark can check the first answer of each query against it.

use super::catalog::{self, Catalog};
use super::values::ValuePool;
use super::{DIM_GATEWAY, DIM_ROUTE, DIM_TEAM, DIM_TOTAL, Rng};
use keygate_control_plane::usage::analytics::{DAY_MS, HOUR_MS, MINUTE_MS, Tier};
use keygate_rollup::RollupValue;
use std::collections::BTreeMap;

/// What to generate.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Shape {
    pub catalog: Catalog,
    /// Days of hours up to (and including) the current hour.
    pub days: u32,
    /// Probability that a token calls in a given hour.
    pub p_call: f64,
    /// Probability that such a call comes with an extra status-500 rollup.
    pub p_error: f64,
    /// Rollups this recent (by minute, before now) also get minute-tier rows.
    pub minute_tier_ms: i64,
    /// The one gateway that reported everything.
    pub gateway: String,
    pub seed: u64,
}

impl Shape {
    /// The issue's data set: 50 teams, 100 routes, `tokens` tokens, `days` days.
    pub fn issue(tokens: u32, days: u32) -> Self {
        Self {
            catalog: Catalog {
                teams: 50,
                routes: 100,
                tokens,
            },
            days,
            p_call: 0.3,
            p_error: 0.05,
            minute_tier_ms: 2 * HOUR_MS,
            gateway: "gw-bench".into(),
            seed: 12,
        }
    }
}

/// Detail table of a tier.
pub fn detail_table(t: Tier) -> &'static str {
    match t {
        Tier::Minute => "usage_rollup_minute",
        Tier::Hour => "usage_rollup_hour",
        Tier::Day => "usage_rollup_day",
    }
}

/// Series table of a tier.
pub fn series_table(t: Tier) -> &'static str {
    match t {
        Tier::Minute => "usage_series_minute",
        Tier::Hour => "usage_series_hour",
        Tier::Day => "usage_series_day",
    }
}

/// One row to write. Token, team and route are catalog numbers.
#[derive(Debug)]
pub enum Row<'a> {
    Detail {
        tier: Tier,
        bucket: i64,
        token: u32,
        team: u32,
        route: u32,
        status: u16,
        value: &'a RollupValue,
        sketch: &'a [u8],
    },
    Series {
        tier: Tier,
        dim: &'static str,
        key: &'a str,
        bucket: i64,
        status: u16,
        value: &'a RollupValue,
        sketch: &'a [u8],
    },
    /// A token's calls of one day (`usage_token_day`, migration 0012).
    TokenDay {
        bucket: i64,
        token: u32,
        team: u32,
        calls: u64,
        errors: u64,
    },
}

/// The per-token day table.
pub const TOKEN_DAY_TABLE: &str = "usage_token_day";

impl Row<'_> {
    pub fn table(&self) -> &'static str {
        match self {
            Row::Detail { tier, .. } => detail_table(*tier),
            Row::Series { tier, .. } => series_table(*tier),
            Row::TokenDay { .. } => TOKEN_DAY_TABLE,
        }
    }
}

/// What was generated, and what the answers must add up to.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Generated {
    /// Rollups generated (= hour-tier detail rows).
    pub rollups: u64,
    /// Rows per table.
    pub rows: BTreeMap<&'static str, u64>,
    pub calls: u64,
    pub errors: u64,
    /// Start of the first and of the last (current) hour.
    pub first_hour: i64,
    pub last_hour: i64,
    #[serde(skip)]
    pub team_calls: Vec<u64>,
    /// (calls, errors) per token.
    #[serde(skip)]
    pub token_calls: Vec<(u64, u64)>,
    /// Newest rollup minute per token (what ingestion sets `last_used_at` to).
    #[serde(skip)]
    pub last_used: Vec<Option<i64>>,
}

/// A series key: dimension 0 (total), 1 (team) or 2 (route), its number, status.
type SeriesKey = (u8, u32, u16);

fn dim_key(dim: u8, n: u32) -> (&'static str, String) {
    match dim {
        0 => (DIM_TOTAL, String::new()),
        1 => (DIM_TEAM, catalog::team_id(n)),
        _ => (DIM_ROUTE, catalog::route_name(n)),
    }
}

/// Writes the series rows of one bucket (`gateway` repeats `total`: one gateway reported all).
fn emit_series(
    tier: Tier,
    bucket: i64,
    series: &BTreeMap<SeriesKey, RollupValue>,
    gateway: &str,
    g: &mut Generated,
    sink: &mut dyn FnMut(Row<'_>),
) {
    for (&(dim, n, status), value) in series {
        let sketch = value.sketch.encode();
        let (dim_name, key) = dim_key(dim, n);
        let mut one = |dim: &'static str, key: &str| {
            sink(Row::Series {
                tier,
                dim,
                key,
                bucket,
                status,
                value,
                sketch: &sketch,
            });
            *g.rows.entry(series_table(tier)).or_default() += 1;
        };
        one(dim_name, &key);
        if dim == 0 {
            one(DIM_GATEWAY, gateway);
        }
    }
}

fn add_series(
    series: &mut BTreeMap<SeriesKey, RollupValue>,
    team: u32,
    route: u32,
    status: u16,
    v: &RollupValue,
) {
    for k in [(0, 0, status), (1, team, status), (2, route, status)] {
        series.entry(k).or_default().merge(v);
    }
}

/// Generates the history ending at `now` (epoch ms) and hands every row to `sink`.
pub fn generate(
    shape: &Shape,
    pool: &ValuePool,
    now: i64,
    sink: &mut dyn FnMut(Row<'_>),
) -> Generated {
    let c = &shape.catalog;
    let now_minute = keygate_rollup::minute_of(now);
    let last_hour = Tier::Hour.floor(now);
    let hours = i64::from(shape.days.max(1)) * 24;
    let first_hour = last_hour - (hours - 1) * HOUR_MS;
    let minute_cut = now_minute - shape.minute_tier_ms;
    let routes: Vec<Vec<u32>> = (0..c.tokens).map(|i| c.token_routes(i)).collect();
    let mut g = Generated {
        first_hour,
        last_hour,
        team_calls: vec![0; c.teams as usize],
        token_calls: vec![(0, 0); c.tokens as usize],
        last_used: vec![None; c.tokens as usize],
        ..Default::default()
    };
    for t in [Tier::Minute, Tier::Hour, Tier::Day] {
        g.rows.insert(detail_table(t), 0);
        g.rows.insert(series_table(t), 0);
    }
    g.rows.insert(TOKEN_DAY_TABLE, 0);
    let mut rng = Rng::new(shape.seed);
    let mut day = Tier::Day.floor(first_hour);
    let mut day_detail: BTreeMap<(u32, u32, u16), RollupValue> = BTreeMap::new();
    let mut day_series: BTreeMap<SeriesKey, RollupValue> = BTreeMap::new();
    let mut minute_series: BTreeMap<i64, BTreeMap<SeriesKey, RollupValue>> = BTreeMap::new();
    let flush_day = |day: i64,
                     detail: &mut BTreeMap<(u32, u32, u16), RollupValue>,
                     series: &mut BTreeMap<SeriesKey, RollupValue>,
                     g: &mut Generated,
                     sink: &mut dyn FnMut(Row<'_>)| {
        let mut per_token: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
        for (&(token, route, status), value) in detail.iter() {
            let t = per_token.entry(token).or_default();
            t.0 += value.count;
            if status >= 400 {
                t.1 += value.count;
            }
            let sketch = value.sketch.encode();
            sink(Row::Detail {
                tier: Tier::Day,
                bucket: day,
                token,
                team: c.token_team(token),
                route,
                status,
                value,
                sketch: &sketch,
            });
            *g.rows.entry(detail_table(Tier::Day)).or_default() += 1;
        }
        for (token, (calls, errors)) in per_token {
            sink(Row::TokenDay {
                bucket: day,
                token,
                team: c.token_team(token),
                calls,
                errors,
            });
            *g.rows.entry(TOKEN_DAY_TABLE).or_default() += 1;
        }
        emit_series(Tier::Day, day, series, &shape.gateway, g, sink);
        detail.clear();
        series.clear();
    };
    let mut hour = first_hour;
    while hour <= last_hour {
        if Tier::Day.floor(hour) != day {
            flush_day(day, &mut day_detail, &mut day_series, &mut g, sink);
            day = Tier::Day.floor(hour);
        }
        // Minutes of this hour that have begun.
        let minutes = ((now_minute - hour) / MINUTE_MS + 1).clamp(1, 60) as u64;
        let mut hour_series: BTreeMap<SeriesKey, RollupValue> = BTreeMap::new();
        for token in 0..c.tokens {
            if !rng.chance(shape.p_call) {
                continue;
            }
            let mine = &routes[token as usize];
            let route = mine[rng.below(mine.len() as u64) as usize];
            let minute = hour + rng.below(minutes) as i64 * MINUTE_MS;
            let team = c.token_team(token);
            let mut statuses = vec![(200u16, pool.pick(&mut rng))];
            if rng.chance(shape.p_error) {
                statuses.push((500, pool.pick(&mut rng)));
            }
            for (status, i) in statuses {
                let (value, sketch) = pool.get(i);
                g.rollups += 1;
                g.calls += value.count;
                g.team_calls[team as usize] += value.count;
                let tc = &mut g.token_calls[token as usize];
                tc.0 += value.count;
                if status >= 400 {
                    g.errors += value.count;
                    tc.1 += value.count;
                }
                let last = &mut g.last_used[token as usize];
                *last = Some(last.map_or(minute, |l| l.max(minute)));
                sink(Row::Detail {
                    tier: Tier::Hour,
                    bucket: hour,
                    token,
                    team,
                    route,
                    status,
                    value,
                    sketch,
                });
                *g.rows.entry(detail_table(Tier::Hour)).or_default() += 1;
                if minute >= minute_cut {
                    sink(Row::Detail {
                        tier: Tier::Minute,
                        bucket: minute,
                        token,
                        team,
                        route,
                        status,
                        value,
                        sketch,
                    });
                    *g.rows.entry(detail_table(Tier::Minute)).or_default() += 1;
                    add_series(
                        minute_series.entry(minute).or_default(),
                        team,
                        route,
                        status,
                        value,
                    );
                }
                day_detail
                    .entry((token, route, status))
                    .or_default()
                    .merge(value);
                add_series(&mut hour_series, team, route, status, value);
            }
        }
        emit_series(Tier::Hour, hour, &hour_series, &shape.gateway, &mut g, sink);
        for (k, v) in hour_series {
            day_series.entry(k).or_default().merge(&v);
        }
        hour += HOUR_MS;
    }
    flush_day(day, &mut day_detail, &mut day_series, &mut g, sink);
    for (minute, series) in &minute_series {
        emit_series(Tier::Minute, *minute, series, &shape.gateway, &mut g, sink);
    }
    debug_assert!(last_hour - first_hour < i64::from(shape.days.max(1)) * DAY_MS);
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_rollup::LatencySketch;
    use std::collections::HashMap;

    /// Everything a sink saw, decoded.
    #[derive(Default)]
    struct Seen {
        rows: HashMap<&'static str, u64>,
        /// (tier, bucket, token, route, status) -> value, detail rows.
        detail: BTreeMap<(Tier, i64, u32, u32, u16), RollupValue>,
        /// (tier, dim, key, bucket, status) -> value, series rows.
        series: BTreeMap<(Tier, &'static str, String, i64, u16), RollupValue>,
        /// (day, token) -> (calls, errors), token day rows.
        token_days: BTreeMap<(i64, u32), (u64, u64)>,
    }

    fn run(shape: &Shape, now: i64) -> (Generated, Seen) {
        let pool = ValuePool::new(5, 40, 50);
        let mut seen = Seen::default();
        let g = generate(shape, &pool, now, &mut |row| {
            *seen.rows.entry(row.table()).or_default() += 1;
            match row {
                Row::Detail {
                    tier,
                    bucket,
                    token,
                    team,
                    route,
                    status,
                    value,
                    sketch,
                } => {
                    assert_eq!(team, shape.catalog.token_team(token));
                    assert!(shape.catalog.token_routes(token).contains(&route));
                    assert_eq!(bucket, tier.floor(bucket), "bucket on the tier");
                    assert_eq!(&LatencySketch::decode(sketch).unwrap(), &value.sketch);
                    assert_eq!(value.sketch.count(), value.count);
                    let old = seen
                        .detail
                        .insert((tier, bucket, token, route, status), value.clone());
                    assert!(old.is_none(), "detail keys are unique");
                }
                Row::Series {
                    tier,
                    dim,
                    key,
                    bucket,
                    status,
                    value,
                    sketch,
                } => {
                    assert_eq!(&LatencySketch::decode(sketch).unwrap(), &value.sketch);
                    assert_eq!(value.sketch.count(), value.count);
                    let old = seen
                        .series
                        .insert((tier, dim, key.to_owned(), bucket, status), value.clone());
                    assert!(old.is_none(), "series keys are unique");
                }
                Row::TokenDay {
                    bucket,
                    token,
                    team,
                    calls,
                    errors,
                } => {
                    assert_eq!(team, shape.catalog.token_team(token));
                    assert_eq!(bucket, Tier::Day.floor(bucket), "bucket on the day");
                    let old = seen.token_days.insert((bucket, token), (calls, errors));
                    assert!(old.is_none(), "token day keys are unique");
                }
            }
        });
        (g, seen)
    }

    fn small() -> Shape {
        let mut s = Shape::issue(60, 3);
        s.catalog.teams = 4;
        s.catalog.routes = 7;
        s
    }

    /// 2025-03-10T10:25:30Z: mid-hour, so the current hour is partial.
    const NOW: i64 = 1_741_602_330_000;

    #[test]
    fn row_counts_match_the_shape() {
        let shape = small();
        let (g, seen) = run(&shape, NOW);
        for (table, n) in &g.rows {
            assert_eq!(seen.rows.get(table).copied().unwrap_or(0), *n, "{table}");
        }
        let hours = 3 * 24;
        assert_eq!(g.last_hour, Tier::Hour.floor(NOW));
        assert_eq!(g.first_hour, g.last_hour - (hours - 1) * HOUR_MS);
        // About p_call * (1 + p_error) rollups per token-hour.
        let expected = 60.0 * hours as f64 * 0.3 * 1.05;
        let got = g.rows[detail_table(Tier::Hour)] as f64;
        assert!(
            (got - expected).abs() < expected * 0.1,
            "{got} vs {expected}"
        );
        assert_eq!(g.rollups, g.rows[detail_table(Tier::Hour)]);
        // Errors are about 5 % of the rollups.
        let errors = seen
            .detail
            .keys()
            .filter(|k| k.0 == Tier::Hour && k.4 == 500)
            .count() as f64;
        assert!(errors > 0.02 * got && errors < 0.09 * got, "{errors}");
        // Minute rows: only the last 2 hours, never in the future.
        let cut = keygate_rollup::minute_of(NOW) - 2 * HOUR_MS;
        let minutes: Vec<i64> = seen
            .detail
            .keys()
            .filter(|k| k.0 == Tier::Minute)
            .map(|k| k.1)
            .collect();
        assert!(!minutes.is_empty());
        assert!(minutes.iter().all(|&m| m >= cut && m <= NOW));
        // Series per hour: total and gateway once per status, teams and routes within the
        // catalog.
        let teams: std::collections::HashSet<&String> = seen
            .series
            .keys()
            .filter(|k| k.1 == DIM_TEAM)
            .map(|k| &k.2)
            .collect();
        assert!(teams.len() <= 4);
    }

    #[test]
    fn tiers_and_series_add_up_like_ingestion() {
        let shape = small();
        let (g, seen) = run(&shape, NOW);
        // Hour detail rows merged per day are exactly the day rows (values and sketches).
        let mut days: BTreeMap<(i64, u32, u32, u16), RollupValue> = BTreeMap::new();
        let mut minutes_per_hour: BTreeMap<(i64, u32, u32, u16), RollupValue> = BTreeMap::new();
        for ((tier, bucket, token, route, status), v) in &seen.detail {
            match tier {
                Tier::Hour => days
                    .entry((Tier::Day.floor(*bucket), *token, *route, *status))
                    .or_default()
                    .merge(v),
                Tier::Minute => minutes_per_hour
                    .entry((Tier::Hour.floor(*bucket), *token, *route, *status))
                    .or_default()
                    .merge(v),
                Tier::Day => {}
            }
        }
        let stored_days: BTreeMap<(i64, u32, u32, u16), RollupValue> = seen
            .detail
            .iter()
            .filter(|(k, _)| k.0 == Tier::Day)
            .map(|(k, v)| ((k.1, k.2, k.3, k.4), v.clone()))
            .collect();
        assert_eq!(days, stored_days);
        // Token days are the day rows summed per token (errors: status >= 400).
        let mut token_days: BTreeMap<(i64, u32), (u64, u64)> = BTreeMap::new();
        for ((day, token, _, status), v) in &stored_days {
            let t = token_days.entry((*day, *token)).or_default();
            t.0 += v.count;
            if *status >= 400 {
                t.1 += v.count;
            }
        }
        assert_eq!(token_days, seen.token_days);
        // Every minute row is also (the whole of) an hour row.
        for ((hour, token, route, status), v) in &minutes_per_hour {
            assert_eq!(
                seen.detail
                    .get(&(Tier::Hour, *hour, *token, *route, *status)),
                Some(v)
            );
        }
        // Series: per tier, bucket and status, total = gateway = sum of teams = sum of routes
        // = sum of detail rows.
        for tier in [Tier::Minute, Tier::Hour, Tier::Day] {
            let mut by: BTreeMap<(&str, i64, u16), RollupValue> = BTreeMap::new();
            for ((t, dim, _, bucket, status), v) in &seen.series {
                if *t == tier {
                    by.entry((dim, *bucket, *status)).or_default().merge(v);
                }
            }
            let mut detail: BTreeMap<(i64, u16), RollupValue> = BTreeMap::new();
            for ((t, bucket, _, _, status), v) in &seen.detail {
                if *t == tier {
                    detail.entry((*bucket, *status)).or_default().merge(v);
                }
            }
            for ((bucket, status), v) in &detail {
                for dim in [DIM_TOTAL, DIM_GATEWAY, DIM_TEAM, DIM_ROUTE] {
                    assert_eq!(by.get(&(dim, *bucket, *status)), Some(v), "{tier:?} {dim}");
                }
            }
            assert_eq!(
                by.len(),
                detail.len() * 4,
                "{tier:?}: no series row without detail"
            );
        }
        // What the answers must add up to.
        let hour_calls: u64 = seen
            .detail
            .iter()
            .filter(|(k, _)| k.0 == Tier::Hour)
            .map(|(_, v)| v.count)
            .sum();
        assert_eq!(g.calls, hour_calls);
        assert_eq!(g.team_calls.iter().sum::<u64>(), g.calls);
        assert_eq!(g.token_calls.iter().map(|t| t.0).sum::<u64>(), g.calls);
        assert_eq!(g.token_calls.iter().map(|t| t.1).sum::<u64>(), g.errors);
        for (i, last) in g.last_used.iter().enumerate() {
            let newest = seen
                .detail
                .keys()
                .filter(|k| k.0 == Tier::Minute && k.2 == i as u32)
                .map(|k| k.1)
                .max();
            if let Some(m) = newest {
                assert_eq!(*last, Some(m));
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_rows() {
        let shape = small();
        let (a, _) = run(&shape, NOW);
        let (b, _) = run(&shape, NOW);
        assert_eq!(
            (a.calls, a.errors, a.rollups),
            (b.calls, b.errors, b.rollups)
        );
    }
}
