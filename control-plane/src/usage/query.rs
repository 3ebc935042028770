//! Analytics requests (wire -> domain): ranges, steps, filters, status classes; and the
//! answers (domain -> wire).

use super::analytics::{
    DAY_MS, HOUR_MS, MAX_POINTS, MAX_RANGE_MS, MINUTE_MS, SeriesAnswer, Stats, StatusClass, Tier,
    TopBy, UsageScope, align_range, tier_holding,
};
use crate::ids::TeamId;
use crate::time::{Millis, from_timestamp, to_timestamp};
use crate::tokens::parse_token_id;
use keygate_contracts::{FieldError, names};
use keygate_proto::v1 as pb;

/// Default range of a query without a start: the last 24 hours.
pub const DEFAULT_RANGE_MS: Millis = DAY_MS;
/// Default range of BatchGetTokenUsage: the last 30 days.
pub const DEFAULT_TOKEN_RANGE_MS: Millis = 30 * DAY_MS;
/// Default and largest ranking size.
pub const DEFAULT_TOP: u32 = 10;
pub const MAX_TOP: u32 = 100;
/// Entries of the routes-used / tokens-used breakdowns.
pub const BREAKDOWN_LIMIT: u32 = 100;
/// Steps chosen when the request leaves it to the server (about 60 points or fewer).
const AUTO_STEPS: [Millis; 11] = [
    MINUTE_MS,
    5 * MINUTE_MS,
    10 * MINUTE_MS,
    15 * MINUTE_MS,
    30 * MINUTE_MS,
    HOUR_MS,
    3 * HOUR_MS,
    6 * HOUR_MS,
    12 * HOUR_MS,
    DAY_MS,
    7 * DAY_MS,
];
const AUTO_POINTS: Millis = 90;

/// Validates `[start, end)` (defaults: `end` = now, `start` = end - `default_range`) and
/// aligns it to what the tiers hold at `now`.
pub fn parse_range(
    field: &str,
    start: Option<&prost_types::Timestamp>,
    end: Option<&prost_types::Timestamp>,
    default_range: Millis,
    now: Millis,
) -> Result<(Millis, Millis), FieldError> {
    let end = end.map(from_timestamp).unwrap_or(now);
    let start = start.map(from_timestamp).unwrap_or(end - default_range);
    let f = |n: &str| {
        if field.is_empty() {
            n.to_owned()
        } else {
            format!("{field}.{n}")
        }
    };
    if end <= start {
        return Err(FieldError::new(f("end_time"), "must be after start_time"));
    }
    if end - start > MAX_RANGE_MS {
        return Err(FieldError::new(
            f("end_time"),
            "must be at most 400 days after start_time",
        ));
    }
    Ok(align_range(start, end, now))
}

/// The step of a series over `[start, end)`: `seconds` = 0 picks one; otherwise a multiple
/// of the bucket of the finest tier holding `start`, with at most 1,000 points.
pub fn parse_step(
    seconds: u32,
    start: Millis,
    end: Millis,
    now: Millis,
) -> Result<Millis, FieldError> {
    let floor = tier_holding(start, now).bucket_ms();
    let points = |step: Millis| (end - start + step - 1) / step;
    if seconds == 0 {
        return Ok(AUTO_STEPS
            .iter()
            .copied()
            .find(|s| s % floor == 0 && points(*s) <= AUTO_POINTS)
            .unwrap_or(7 * DAY_MS));
    }
    let step = Millis::from(seconds) * 1000;
    if step % floor != 0 {
        return Err(FieldError::new(
            "step_seconds",
            format!(
                "must be a multiple of {} for this range (finer buckets are no longer kept)",
                floor / 1000
            ),
        ));
    }
    if points(step) > MAX_POINTS {
        return Err(FieldError::new(
            "step_seconds",
            format!("must give at most {MAX_POINTS} points over the range"),
        ));
    }
    Ok(step)
}

/// The range (default: the last 24 hours) and step of a token or route detail request.
pub fn parse_detail(
    start: Option<&prost_types::Timestamp>,
    end: Option<&prost_types::Timestamp>,
    step_seconds: u32,
    now: Millis,
) -> Result<(Millis, Millis, Millis), FieldError> {
    let (start, end) = parse_range("", start, end, DEFAULT_RANGE_MS, now)?;
    let step = parse_step(step_seconds, start, end, now)?;
    Ok((start, end, step))
}

pub fn parse_status_class(field: &str, v: i32) -> Result<Option<StatusClass>, FieldError> {
    Ok(match pb::StatusClass::try_from(v) {
        Ok(pb::StatusClass::Unspecified) => None,
        Ok(pb::StatusClass::StatusClass1xx) => Some(StatusClass::Informational),
        Ok(pb::StatusClass::StatusClass2xx) => Some(StatusClass::Success),
        Ok(pb::StatusClass::StatusClass3xx) => Some(StatusClass::Redirect),
        Ok(pb::StatusClass::StatusClass4xx) => Some(StatusClass::ClientError),
        Ok(pb::StatusClass::StatusClass5xx) => Some(StatusClass::ServerError),
        Ok(pb::StatusClass::Errors) => Some(StatusClass::Errors),
        Err(_) => return Err(FieldError::new(field, "unknown status class")),
    })
}

fn opt_team(field: &str, v: String) -> Result<Option<TeamId>, FieldError> {
    if v.is_empty() {
        return Ok(None);
    }
    names::validate_team_id(field, &v)?;
    Ok(Some(TeamId(v)))
}

fn opt_route(field: &str, v: String) -> Result<Option<String>, FieldError> {
    if v.is_empty() {
        return Ok(None);
    }
    names::validate_route_name(field, &v)?;
    Ok(Some(v))
}

/// A `UsageQuery` (absent = everything the caller may see over the last 24 hours). The
/// caller's visibility is set by the handler.
pub fn parse_query(q: Option<pb::UsageQuery>, now: Millis) -> Result<UsageScope, FieldError> {
    let q = q.unwrap_or_default();
    let (start, end) = parse_range(
        "query",
        q.start_time.as_ref(),
        q.end_time.as_ref(),
        DEFAULT_RANGE_MS,
        now,
    )?;
    let gateway = if q.gateway.is_empty() {
        None
    } else {
        names::validate_text("query.gateway", &q.gateway, super::GATEWAY_MAX, true, false)?;
        Some(q.gateway)
    };
    let scope = UsageScope {
        team_id: opt_team("query.team_id", q.team_id)?,
        token_id: (!q.token_id.is_empty())
            .then(|| parse_token_id("query.token_id", &q.token_id))
            .transpose()?,
        route: opt_route("query.route", q.route)?,
        gateway,
        status: parse_status_class("query.status_class", q.status_class)?,
        visible_teams: None,
        start,
        end,
    };
    if scope.gateway.is_some()
        && (scope.team_id.is_some() || scope.token_id.is_some() || scope.route.is_some())
    {
        return Err(FieldError::new(
            "query.gateway",
            "combines only with status_class and the range (gateways are not counted per team, token or route)",
        ));
    }
    Ok(scope)
}

/// Rankings over 7 days or more start at 00:00 UTC of their first day, and one that ends
/// now ends at the next midnight (no calls lie beyond now): such a ranking then reads the
/// day tier alone instead of every token's hours of the two partial days.
pub fn widen_long_ranking(scope: &mut UsageScope, now: Millis) {
    if scope.end - scope.start >= 7 * DAY_MS {
        scope.start = Tier::Day.floor(scope.start);
        if scope.end >= Tier::Minute.floor(now) {
            scope.end = Tier::Day.ceil(scope.end);
        }
    }
}

pub fn parse_top(by: i32, order: i32, limit: u32) -> Result<(TopBy, bool, u32), FieldError> {
    let by = match pb::TopDimension::try_from(by) {
        Ok(pb::TopDimension::Unspecified | pb::TopDimension::Token) => TopBy::Token,
        Ok(pb::TopDimension::Route) => TopBy::Route,
        Ok(pb::TopDimension::Team) => TopBy::Team,
        Ok(pb::TopDimension::ErrorCode) => TopBy::ErrorCode,
        Ok(pb::TopDimension::ClientIp) => TopBy::ClientIp,
        Err(_) => return Err(FieldError::new("by", "unknown dimension")),
    };
    let by_errors = match pb::TopOrder::try_from(order) {
        Ok(pb::TopOrder::Unspecified | pb::TopOrder::Calls) => false,
        Ok(pb::TopOrder::Errors) => true,
        Err(_) => return Err(FieldError::new("order", "unknown order")),
    };
    let limit = match limit {
        0 => DEFAULT_TOP,
        n @ 1..=MAX_TOP => n,
        _ => {
            return Err(FieldError::new(
                "limit",
                format!("must be between 1 and {MAX_TOP}"),
            ));
        }
    };
    Ok((by, by_errors, limit))
}

/// The default tier of a rollup export over `[start, end)`: days for ranges of two days or
/// more, hours for two hours or more, else minutes; never finer than what holds `start`.
pub fn coarsest_covering(start: Millis, end: Millis) -> Tier {
    let by_len = if end - start >= 2 * DAY_MS {
        Tier::Day
    } else if end - start >= 2 * HOUR_MS {
        Tier::Hour
    } else {
        Tier::Minute
    };
    by_len.max(tier_holding(start, crate::time::now_ms()))
}

pub fn parse_tier(v: i32) -> Result<Option<Tier>, FieldError> {
    Ok(match pb::UsageTier::try_from(v) {
        Ok(pb::UsageTier::Unspecified) => None,
        Ok(pb::UsageTier::Minute) => Some(Tier::Minute),
        Ok(pb::UsageTier::Hour) => Some(Tier::Hour),
        Ok(pb::UsageTier::Day) => Some(Tier::Day),
        Err(_) => return Err(FieldError::new("tier", "unknown tier")),
    })
}

pub fn tier_to_pb(t: Option<Tier>) -> i32 {
    match t {
        None => pb::UsageTier::Unspecified,
        Some(Tier::Minute) => pb::UsageTier::Minute,
        Some(Tier::Hour) => pb::UsageTier::Hour,
        Some(Tier::Day) => pb::UsageTier::Day,
    }
    .into()
}

impl From<&Stats> for pb::UsageStats {
    fn from(s: &Stats) -> Self {
        let q = |p: f64| s.sketch.quantile(p).unwrap_or(0);
        Self {
            calls: s.calls,
            errors: s.errors,
            success_rate: s.success_rate(),
            request_bytes: s.request_bytes,
            response_bytes: s.response_bytes,
            latency_avg_us: s.latency_sum_us.checked_div(s.calls).unwrap_or(0),
            latency_min_us: s.latency_min_us,
            latency_max_us: s.latency_max_us,
            latency_p50_us: q(0.5),
            latency_p95_us: q(0.95),
            latency_p99_us: q(0.99),
        }
    }
}

/// The series points of an answer.
pub fn points_to_pb(a: &SeriesAnswer) -> Vec<pb::UsagePoint> {
    a.points
        .iter()
        .map(|(t, s)| pb::UsagePoint {
            time: Some(to_timestamp(*t)),
            stats: Some(s.into()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_765_000_000_000;

    #[test]
    fn ranges_default_validate_and_align() {
        let (s, e) = parse_range("query", None, None, DEFAULT_RANGE_MS, NOW).unwrap();
        assert_eq!((s % MINUTE_MS, e % MINUTE_MS), (0, 0));
        assert!(e >= NOW && e - s >= DAY_MS);
        let ts = |ms| Some(to_timestamp(ms));
        let err =
            parse_range("query", ts(NOW).as_ref(), ts(NOW).as_ref(), DAY_MS, NOW).unwrap_err();
        assert_eq!(err.field, "query.end_time");
        let err = parse_range(
            "",
            ts(NOW - 401 * DAY_MS).as_ref(),
            ts(NOW).as_ref(),
            DAY_MS,
            NOW,
        )
        .unwrap_err();
        assert!(err.to_string().contains("400 days"), "{err}");
    }

    #[test]
    fn steps_are_chosen_or_checked() {
        let (s, e) = (NOW - DAY_MS, NOW);
        assert_eq!(parse_step(0, s, e, NOW).unwrap(), 30 * MINUTE_MS);
        assert_eq!(
            parse_step(0, NOW - 30 * DAY_MS, NOW, NOW).unwrap(),
            12 * HOUR_MS
        );
        assert_eq!(
            parse_step(60, NOW - 12 * HOUR_MS, e, NOW).unwrap(),
            MINUTE_MS
        );
        assert_eq!(parse_step(3600, s, e, NOW).unwrap(), HOUR_MS);
        assert_eq!(parse_step(90, s, e, NOW).unwrap_err().field, "step_seconds");
        // Older than 48 hours: hours at least.
        let err = parse_step(60, NOW - 5 * DAY_MS, NOW, NOW).unwrap_err();
        assert!(err.to_string().contains("3600"), "{err}");
        // Too many points.
        let err = parse_step(60, s, e, NOW).unwrap_err();
        assert!(err.to_string().contains("1000 points"), "{err}");
    }

    #[test]
    fn query_filters_are_validated() {
        let q = |f: fn(&mut pb::UsageQuery)| {
            let mut q = pb::UsageQuery::default();
            f(&mut q);
            parse_query(Some(q), NOW)
        };
        assert_eq!(
            q(|q| q.team_id = "Bad".into()).unwrap_err().field,
            "query.team_id"
        );
        assert_eq!(
            q(|q| q.token_id = "x".into()).unwrap_err().field,
            "query.token_id"
        );
        assert_eq!(
            q(|q| q.route = "a/b".into()).unwrap_err().field,
            "query.route"
        );
        assert_eq!(
            q(|q| q.status_class = 42).unwrap_err().field,
            "query.status_class"
        );
        let e = q(|q| {
            q.gateway = "edge-1".into();
            q.route = "billing".into();
        })
        .unwrap_err();
        assert_eq!(e.field, "query.gateway");
        let ok = q(|q| q.status_class = pb::StatusClass::Errors as i32).unwrap();
        assert_eq!(ok.status, Some(StatusClass::Errors));
        assert_eq!(
            parse_top(0, 0, 0).unwrap(),
            (TopBy::Token, false, DEFAULT_TOP)
        );
        assert_eq!(parse_top(0, 0, 101).unwrap_err().field, "limit");
    }
}
