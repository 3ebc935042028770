//! Usage analytics: the rollup tiers, how a query's range is planned over them, the domain
//! types of the answers, and the [`AnalyticsStore`] trait the query RPCs read through (so a
//! column store can serve it later: `docs/analytics-clickhouse.md`).
//!
//! Tiers: every ingested rollup is added to the minute, hour and day tier at once (no
//! compaction lag), each as detail rows `(bucket, token, team, route, status, error)` and as
//! per-dimension series rows (`total`, `team`, `route`, `gateway`). A query reads the coarsest
//! tier whose bucket divides its step, and finer tiers only for the unaligned edges of its
//! range ([`plan`]). Parts of a range older than a tier's retention are widened to the next
//! coarser bucket, and the answer says which range it covers.

use crate::ids::{TeamId, TokenId};
use crate::store::StoreResult;
use crate::time::Millis;
use keygate_rollup::{LatencySketch, RollupValue};

pub const MINUTE_MS: Millis = 60_000;
pub const HOUR_MS: Millis = 60 * MINUTE_MS;
pub const DAY_MS: Millis = 24 * HOUR_MS;

/// Longest range one query may cover.
pub const MAX_RANGE_MS: Millis = 400 * DAY_MS;
/// Most series points one answer may hold.
pub const MAX_POINTS: i64 = 1000;
/// Most token ids one BatchGetTokenUsage call may ask for.
pub const MAX_BATCH_TOKENS: usize = 500;

/// A rollup tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    Minute,
    Hour,
    Day,
}

impl Tier {
    /// Finest first.
    pub const ALL: [Tier; 3] = [Tier::Minute, Tier::Hour, Tier::Day];

    pub fn bucket_ms(self) -> Millis {
        match self {
            Tier::Minute => MINUTE_MS,
            Tier::Hour => HOUR_MS,
            Tier::Day => DAY_MS,
        }
    }

    /// How long the tier's rows are kept.
    pub fn retention_ms(self) -> Millis {
        match self {
            Tier::Minute => 48 * HOUR_MS,
            Tier::Hour => 90 * DAY_MS,
            Tier::Day => 400 * DAY_MS,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tier::Minute => "minute",
            Tier::Hour => "hour",
            Tier::Day => "day",
        }
    }

    /// The next finer tier.
    pub fn finer(self) -> Option<Tier> {
        match self {
            Tier::Minute => None,
            Tier::Hour => Some(Tier::Minute),
            Tier::Day => Some(Tier::Hour),
        }
    }

    /// Start of the bucket holding `ms`.
    pub fn floor(self, ms: Millis) -> Millis {
        ms.div_euclid(self.bucket_ms()) * self.bucket_ms()
    }

    /// Smallest bucket start `>= ms`.
    pub fn ceil(self, ms: Millis) -> Millis {
        let f = self.floor(ms);
        if f == ms { f } else { f + self.bucket_ms() }
    }
}

/// A status class filter: an inclusive range of statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    Informational,
    Success,
    Redirect,
    ClientError,
    ServerError,
    /// status >= 400
    Errors,
}

impl StatusClass {
    pub fn range(self) -> (u16, u16) {
        match self {
            StatusClass::Informational => (100, 199),
            StatusClass::Success => (200, 299),
            StatusClass::Redirect => (300, 399),
            StatusClass::ClientError => (400, 499),
            StatusClass::ServerError => (500, 599),
            StatusClass::Errors => (400, 599),
        }
    }
}

/// Whether a status counts as an error (and not as a success).
pub fn is_error(status: u16) -> bool {
    status >= 400
}

/// What one analytics query covers. `start`/`end` are minute-aligned (`end` exclusive) and
/// already widened for retention ([`align_range`]).
#[derive(Debug, Clone, Default)]
pub struct UsageScope {
    pub team_id: Option<TeamId>,
    pub token_id: Option<TokenId>,
    pub route: Option<String>,
    pub gateway: Option<String>,
    pub status: Option<StatusClass>,
    /// Only these teams' calls (`None`: every call, including those without a team). Set
    /// from the caller, never from the request.
    pub visible_teams: Option<Vec<TeamId>>,
    pub start: Millis,
    pub end: Millis,
}

/// One piece of a planned range: read `tier` over `[start, end)` (both on its buckets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub tier: Tier,
    pub start: Millis,
    pub end: Millis,
}

/// `[start, end)` widened so that every part is served by a tier that still holds it at
/// `now`: parts older than the minute tier's retention align to hours, older than the hour
/// tier's to days. Both ends are minute-aligned afterwards (start down, end up).
pub fn align_range(start: Millis, end: Millis, now: Millis) -> (Millis, Millis) {
    let align = |t: Millis, up: bool| -> Millis {
        let tier = tier_holding(t, now);
        if up { tier.ceil(t) } else { tier.floor(t) }
    };
    (align(start, false), align(end, true))
}

/// The coarsest tier whose bucket divides `step` (use the whole range as the step for
/// totals).
pub fn tier_for_step(step: Millis) -> Tier {
    *Tier::ALL
        .iter()
        .rev()
        .find(|t| step % t.bucket_ms() == 0)
        .unwrap_or(&Tier::Minute)
}

/// The finest tier that still holds data from `start` at `now` (the thresholds of
/// [`align_range`]).
pub fn tier_holding(start: Millis, now: Millis) -> Tier {
    if start < now - Tier::Hour.retention_ms() + HOUR_MS {
        Tier::Day
    } else if start < now - Tier::Minute.retention_ms() + 5 * MINUTE_MS {
        Tier::Hour
    } else {
        Tier::Minute
    }
}

/// Covers minute-aligned `[start, end)` with the fewest rows: `top` for the aligned middle,
/// finer tiers for the unaligned edges. Spans are in time order and do not overlap.
pub fn plan(start: Millis, end: Millis, top: Tier) -> Vec<Span> {
    let mut out = Vec::new();
    plan_into(start, end, top, &mut out);
    out.sort_by_key(|s| s.start);
    out
}

fn plan_into(start: Millis, end: Millis, tier: Tier, out: &mut Vec<Span>) {
    if start >= end {
        return;
    }
    let (a, b) = (tier.ceil(start), tier.floor(end));
    match tier.finer() {
        None => out.push(Span { tier, start, end }),
        Some(_) if a >= b => plan_into(start, end, tier.finer().unwrap_or(tier), out),
        Some(finer) => {
            plan_into(start, a, finer, out);
            out.push(Span {
                tier,
                start: a,
                end: b,
            });
            plan_into(b, end, finer, out);
        }
    }
}

/// Aggregated requests: exact counts and latency sum/min/max, percentiles from the merged
/// sketch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub calls: u64,
    pub errors: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub latency_sum_us: u64,
    pub latency_min_us: u64,
    pub latency_max_us: u64,
    pub sketch: LatencySketch,
}

impl Stats {
    /// Adds the requests of one rollup row with status `status`.
    pub fn add(&mut self, status: u16, v: &RollupValue) {
        if v.count == 0 {
            return;
        }
        if self.calls == 0 {
            self.latency_min_us = v.latency_min_us;
        } else {
            self.latency_min_us = self.latency_min_us.min(v.latency_min_us);
        }
        self.latency_max_us = self.latency_max_us.max(v.latency_max_us);
        self.calls = self.calls.saturating_add(v.count);
        if is_error(status) {
            self.errors = self.errors.saturating_add(v.count);
        }
        self.request_bytes = self.request_bytes.saturating_add(v.request_bytes);
        self.response_bytes = self.response_bytes.saturating_add(v.response_bytes);
        self.latency_sum_us = self.latency_sum_us.saturating_add(v.latency_sum_us);
        self.sketch.merge(&v.sketch);
    }

    pub fn merge(&mut self, o: &Stats) {
        if o.calls == 0 {
            return;
        }
        if self.calls == 0 {
            self.latency_min_us = o.latency_min_us;
        } else {
            self.latency_min_us = self.latency_min_us.min(o.latency_min_us);
        }
        self.latency_max_us = self.latency_max_us.max(o.latency_max_us);
        self.calls = self.calls.saturating_add(o.calls);
        self.errors = self.errors.saturating_add(o.errors);
        self.request_bytes = self.request_bytes.saturating_add(o.request_bytes);
        self.response_bytes = self.response_bytes.saturating_add(o.response_bytes);
        self.latency_sum_us = self.latency_sum_us.saturating_add(o.latency_sum_us);
        self.sketch.merge(&o.sketch);
    }

    pub fn success_rate(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            (self.calls - self.errors) as f64 / self.calls as f64
        }
    }
}

/// A series answer: the total and one [`Stats`] per step (epoch-aligned steps covering the
/// range, empty ones included).
#[derive(Debug, Clone, Default)]
pub struct SeriesAnswer {
    pub total: Stats,
    /// `(step start, stats)`, in time order.
    pub points: Vec<(Millis, Stats)>,
    /// The finest tier read.
    pub tier: Option<Tier>,
}

/// What a ranking ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopBy {
    Token,
    Route,
    Team,
    ErrorCode,
    /// From raw events: rollups carry no client address.
    ClientIp,
}

/// One ranked entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopRow {
    pub key: String,
    pub calls: u64,
    pub errors: u64,
}

/// Calls and errors of one token over a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenTotals {
    pub token_id: TokenId,
    pub calls: u64,
    pub errors: u64,
}

/// What analytics answers show about a token besides its counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFacts {
    pub id: TokenId,
    pub name: String,
    pub team_id: TeamId,
    pub last_used_at: Option<Millis>,
}

/// A detail row as exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRow {
    pub tier: Tier,
    pub key: keygate_rollup::RollupKey,
    pub value: RollupValue,
}

/// The analytics read side. Implemented by the SQL store; a column store may implement it
/// later. Every method honours `scope.visible_teams`.
#[async_trait::async_trait]
pub trait AnalyticsStore: Send + Sync + 'static {
    /// Total and series at `step` (a multiple of a minute) over `scope`.
    async fn usage_series(&self, scope: &UsageScope, step: Millis) -> StoreResult<SeriesAnswer>;
    /// The `limit` largest entries by calls (or errors when `by_errors`).
    async fn usage_top(
        &self,
        scope: &UsageScope,
        by: TopBy,
        by_errors: bool,
        limit: u32,
    ) -> StoreResult<(Vec<TopRow>, Tier)>;
    /// Stats per key of `by` (Token or Route), most calls first, at most `limit`.
    async fn usage_breakdown(
        &self,
        scope: &UsageScope,
        by: TopBy,
        limit: u32,
    ) -> StoreResult<Vec<(String, Stats)>>;
    /// Calls per exact status over `scope`, by status.
    async fn usage_statuses(&self, scope: &UsageScope) -> StoreResult<Vec<(u16, u64)>>;
    /// Calls and errors of each of `ids` over `[start, end)`; ids without calls are left out.
    async fn token_totals(
        &self,
        ids: &[TokenId],
        start: Millis,
        end: Millis,
    ) -> StoreResult<Vec<TokenTotals>>;
    /// Name, team and last use of those of `ids` that exist (any order).
    async fn token_facts(&self, ids: &[TokenId]) -> StoreResult<Vec<TokenFacts>>;
    /// Display names of those of `ids` that exist.
    async fn team_names(&self, ids: &[String]) -> StoreResult<Vec<(String, String)>>;
    /// Start of the first and the last minute with calls in `scope`, over everything kept
    /// (the range of `scope` is ignored).
    async fn first_last_use(&self, scope: &UsageScope) -> StoreResult<Option<(Millis, Millis)>>;
    /// Detail rows of `tier` over `scope`, in bucket order, `limit` from position `after`
    /// (an opaque row offset the store understands); for exports.
    async fn export_rollups(
        &self,
        scope: &UsageScope,
        tier: Tier,
        after: Option<String>,
        limit: u32,
    ) -> StoreResult<(Vec<ExportRow>, Option<String>)>;
    /// Deletes rows older than each tier's retention, batch ids and gateway minutes older
    /// than 48 h; returns rows deleted.
    async fn apply_rollup_retention(&self, now: Millis) -> StoreResult<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_765_000_000_000 / DAY_MS * DAY_MS; // a UTC midnight

    #[test]
    fn plan_uses_coarse_tiers_in_the_middle() {
        let s = T0 + 3 * HOUR_MS + 7 * MINUTE_MS;
        let e = T0 + 3 * DAY_MS + 2 * HOUR_MS + 5 * MINUTE_MS;
        let p = plan(s, e, Tier::Day);
        assert_eq!(
            p,
            vec![
                Span {
                    tier: Tier::Minute,
                    start: s,
                    end: T0 + 4 * HOUR_MS
                },
                Span {
                    tier: Tier::Hour,
                    start: T0 + 4 * HOUR_MS,
                    end: T0 + DAY_MS
                },
                Span {
                    tier: Tier::Day,
                    start: T0 + DAY_MS,
                    end: T0 + 3 * DAY_MS
                },
                Span {
                    tier: Tier::Hour,
                    start: T0 + 3 * DAY_MS,
                    end: T0 + 3 * DAY_MS + 2 * HOUR_MS
                },
                Span {
                    tier: Tier::Minute,
                    start: T0 + 3 * DAY_MS + 2 * HOUR_MS,
                    end: e
                },
            ]
        );
        // Covering, ordered, no overlap, on the tiers' buckets: for many ranges.
        for (s, e) in [
            (T0, T0 + MINUTE_MS),
            (T0 + 59 * MINUTE_MS, T0 + 61 * MINUTE_MS),
            (T0, T0 + 400 * DAY_MS),
            (T0 + 13 * MINUTE_MS, T0 + 14 * HOUR_MS),
        ] {
            for top in Tier::ALL {
                let p = plan(s, e, top);
                assert_eq!(p.first().unwrap().start, s);
                assert_eq!(p.last().unwrap().end, e);
                for w in p.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                }
                for sp in &p {
                    assert!(sp.tier <= top);
                    assert_eq!(sp.start % sp.tier.bucket_ms(), 0);
                    assert_eq!(sp.end % sp.tier.bucket_ms(), 0);
                }
            }
        }
    }

    #[test]
    fn ranges_widen_where_fine_tiers_are_gone() {
        let now = T0 + 10 * DAY_MS + 30 * MINUTE_MS;
        // Recent: minute precision.
        let (s, e) = align_range(now - HOUR_MS - 30_001, now - 1, now);
        assert_eq!((s % MINUTE_MS, e % MINUTE_MS), (0, 0));
        assert_eq!(s, Tier::Minute.floor(now - HOUR_MS - 30_001));
        // Five days ago: hour precision at the start.
        let (s, _) = align_range(now - 5 * DAY_MS, now, now);
        assert_eq!(s, Tier::Hour.floor(now - 5 * DAY_MS));
        // A hundred days ago: day precision.
        let (s, _) = align_range(now - 100 * DAY_MS, now, now);
        assert_eq!(s % DAY_MS, 0);
    }

    #[test]
    fn tier_for_step_picks_the_coarsest_divisor() {
        assert_eq!(tier_for_step(MINUTE_MS), Tier::Minute);
        assert_eq!(tier_for_step(30 * MINUTE_MS), Tier::Minute);
        assert_eq!(tier_for_step(3 * HOUR_MS), Tier::Hour);
        assert_eq!(tier_for_step(7 * DAY_MS), Tier::Day);
    }
}
