//! `keygate usage summary|top|token|route`: the analytics views over the rollups.
//!
//! Owns: turning the query flags into `UsageQuery` and the four requests, and the human
//! (`key: value` blocks, tables, a sparkline of calls) and JSON shapes of their answers. Must
//! not: compute statistics (the server merges rollups and sketches; the CLI only formats).

use std::time::Duration;

use keygate_proto::v1::{
    GetRouteUsageRequest, GetRouteUsageResponse, GetTokenUsageRequest, GetTokenUsageResponse,
    GetUsageSummaryRequest, GetUsageSummaryResponse, ListTopUsageRequest, ListTopUsageResponse,
    StatusClass, StatusCount, TopDimension, TopOrder, TopUsageEntry, UsageBreakdown, UsagePoint,
    UsageQuery, UsageStats, UsageTier,
};
use prost_types::Timestamp;
use serde_json::{Value, json};

use crate::Context;
use crate::args::{
    StatusClassArg, TopByArg, TopOrderArg, UsageQueryArgs, UsageRouteArgs, UsageSummaryArgs,
    UsageTokenArgs, UsageTopArgs,
};
use crate::client::CliError;
use crate::export::byte_size;
use crate::output::{self, NONE};

const SERIES_HEADER: [&str; 7] = ["TIME", "CALLS", "ERRORS", "SUCCESS", "P50", "P95", "P99"];

/// The `UsageQuery` of the shared filter flags.
pub fn query(args: &UsageQueryArgs) -> UsageQuery {
    let (start_time, end_time) = args.range.bounds();
    UsageQuery {
        team_id: args.team.clone().unwrap_or_default(),
        token_id: args.token.clone().unwrap_or_default(),
        route: args.route.clone().unwrap_or_default(),
        gateway: args.gateway.clone().unwrap_or_default(),
        status_class: args.status.map_or(StatusClass::Unspecified, status_class) as i32,
        start_time,
        end_time,
    }
}

fn status_class(arg: StatusClassArg) -> StatusClass {
    match arg {
        StatusClassArg::Informational => StatusClass::StatusClass1xx,
        StatusClassArg::Success => StatusClass::StatusClass2xx,
        StatusClassArg::Redirect => StatusClass::StatusClass3xx,
        StatusClassArg::ClientError => StatusClass::StatusClass4xx,
        StatusClassArg::ServerError => StatusClass::StatusClass5xx,
        StatusClassArg::Errors => StatusClass::Errors,
    }
}

pub fn summary_request(args: &UsageSummaryArgs) -> GetUsageSummaryRequest {
    GetUsageSummaryRequest {
        query: Some(query(&args.query)),
        step_seconds: args.step.unwrap_or(0),
    }
}

pub fn top_request(args: &UsageTopArgs) -> ListTopUsageRequest {
    let by = match args.by {
        TopByArg::Token => TopDimension::Token,
        TopByArg::Route => TopDimension::Route,
        TopByArg::Team => TopDimension::Team,
        TopByArg::Error => TopDimension::ErrorCode,
        TopByArg::Ip => TopDimension::ClientIp,
    };
    let order = match args.order {
        TopOrderArg::Calls => TopOrder::Calls,
        TopOrderArg::Errors => TopOrder::Errors,
    };
    ListTopUsageRequest {
        query: Some(query(&args.query)),
        by: by as i32,
        order: order as i32,
        limit: args.limit,
    }
}

pub fn token_request(args: &UsageTokenArgs) -> GetTokenUsageRequest {
    let (start_time, end_time) = args.range.bounds();
    GetTokenUsageRequest {
        token_id: args.id.clone(),
        start_time,
        end_time,
        step_seconds: args.step.unwrap_or(0),
    }
}

pub fn route_request(args: &UsageRouteArgs) -> GetRouteUsageRequest {
    let (start_time, end_time) = args.range.bounds();
    GetRouteUsageRequest {
        route: args.name.clone(),
        start_time,
        end_time,
        step_seconds: args.step.unwrap_or(0),
        team_id: args.team.clone().unwrap_or_default(),
    }
}

pub(crate) async fn summary(args: UsageSummaryArgs, ctx: &mut Context<'_>) -> Result<(), CliError> {
    let conn = ctx.connect().await?;
    let response = conn
        .call(conn.usage().get_usage_summary(summary_request(&args)))
        .await?;
    if ctx.json {
        return ctx.print_json(&summary_json(&response));
    }
    ctx.out.write_all(summary_text(&response).as_bytes())?;
    Ok(())
}

pub(crate) async fn top(args: UsageTopArgs, ctx: &mut Context<'_>) -> Result<(), CliError> {
    let conn = ctx.connect().await?;
    let response = conn
        .call(conn.usage().list_top_usage(top_request(&args)))
        .await?;
    if ctx.json {
        return ctx.print_json(&top_json(&response));
    }
    if response.entries.is_empty() {
        return ctx.note("no calls in the range");
    }
    ctx.out
        .write_all(top_table(args.by, &response.entries).as_bytes())?;
    Ok(())
}

pub(crate) async fn token(args: UsageTokenArgs, ctx: &mut Context<'_>) -> Result<(), CliError> {
    let conn = ctx.connect().await?;
    let response = conn
        .call(conn.usage().get_token_usage(token_request(&args)))
        .await?;
    if ctx.json {
        return ctx.print_json(&token_json(&response));
    }
    ctx.out.write_all(token_text(&response).as_bytes())?;
    Ok(())
}

pub(crate) async fn route(args: UsageRouteArgs, ctx: &mut Context<'_>) -> Result<(), CliError> {
    let conn = ctx.connect().await?;
    let response = conn
        .call(conn.usage().get_route_usage(route_request(&args)))
        .await?;
    if ctx.json {
        return ctx.print_json(&route_json(&response));
    }
    ctx.out.write_all(route_text(&response).as_bytes())?;
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Formatting

/// A latency in milliseconds: `0.85ms`, `12.3ms`, `1234ms`.
pub fn millis(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if us < 1000 {
        format!("{ms:.2}ms")
    } else if us < 100_000 {
        format!("{ms:.1}ms")
    } else {
        format!("{ms:.0}ms")
    }
}

/// A success rate as a percentage rounded down to one decimal (so that a range with any error
/// never reads `100.0%`), or `-` without calls.
pub fn percent(rate: f64, calls: u64) -> String {
    if calls == 0 {
        return NONE.to_owned();
    }
    let tenths = (rate.clamp(0.0, 1.0) * 1000.0).floor() / 10.0;
    format!("{tenths:.1}%")
}

/// One block character per value, scaled to the largest: `▁` for 0, `▂`..`█` for the rest
/// (a non-zero value never looks like an empty step).
pub fn sparkline(values: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|&v| {
            if v == 0 || max == 0 {
                return BARS[0];
            }
            // 1..=7, proportional, rounded up.
            let level = (v as u128 * 7).div_ceil(max as u128) as usize;
            BARS[level.clamp(1, 7)]
        })
        .collect()
}

/// `hour`, `minute`, `day`, or `-` when the server did not say.
pub fn tier_name(tier: i32) -> String {
    match UsageTier::try_from(tier) {
        Ok(UsageTier::Unspecified) | Err(_) => NONE.to_owned(),
        Ok(tier) => output::enum_name(tier.as_str_name(), "USAGE_TIER_"),
    }
}

/// `1h (hour tier)`.
fn step_text(step_seconds: u32, tier: i32) -> String {
    let step = if step_seconds == 0 {
        NONE.to_owned()
    } else {
        humantime::format_duration(Duration::from_secs(step_seconds.into())).to_string()
    };
    format!("{step} ({} tier)", tier_name(tier))
}

/// The totals as `key: value` pairs: calls, errors, success, percentiles, latency, bytes.
fn stats_pairs(s: &UsageStats) -> Vec<(&'static str, String)> {
    let has_calls = s.calls > 0;
    let latency = |us: u64| {
        if has_calls {
            millis(us)
        } else {
            NONE.to_owned()
        }
    };
    vec![
        ("calls", s.calls.to_string()),
        ("errors", s.errors.to_string()),
        ("success", percent(s.success_rate, s.calls)),
        ("p50", latency(s.latency_p50_us)),
        ("p95", latency(s.latency_p95_us)),
        ("p99", latency(s.latency_p99_us)),
        (
            "latency",
            if has_calls {
                format!(
                    "avg {}, min {}, max {}",
                    millis(s.latency_avg_us),
                    millis(s.latency_min_us),
                    millis(s.latency_max_us)
                )
            } else {
                NONE.to_owned()
            },
        ),
        (
            "bytes",
            format!(
                "in {}, out {}",
                byte_size(s.request_bytes),
                byte_size(s.response_bytes)
            ),
        ),
    ]
}

/// `▁▂█ (max 120 per 1h)`, or `-` for an empty series.
fn trend(series: &[UsagePoint], step_seconds: u32) -> String {
    let calls: Vec<u64> = series
        .iter()
        .map(|p| p.stats.as_ref().map_or(0, |s| s.calls))
        .collect();
    if calls.is_empty() {
        return NONE.to_owned();
    }
    let max = calls.iter().copied().max().unwrap_or(0);
    let per = humantime::format_duration(Duration::from_secs(step_seconds.into()));
    format!("{} (max {max} per {per})", sparkline(&calls))
}

/// The series as a table: one row per step.
pub fn series_table(series: &[UsagePoint]) -> String {
    output::table(
        &SERIES_HEADER,
        series.iter().map(|p| {
            let s = p.stats.unwrap_or_default();
            let latency = |us: u64| {
                if s.calls > 0 {
                    millis(us)
                } else {
                    NONE.to_owned()
                }
            };
            vec![
                output::time_or(p.time.as_ref(), NONE),
                s.calls.to_string(),
                s.errors.to_string(),
                percent(s.success_rate, s.calls),
                latency(s.latency_p50_us),
                latency(s.latency_p95_us),
                latency(s.latency_p99_us),
            ]
        }),
    )
}

/// `usage summary`: the totals block, a sparkline of calls, then the series table.
pub fn summary_text(r: &GetUsageSummaryResponse) -> String {
    let total = r.total.unwrap_or_default();
    let mut pairs = vec![
        (
            "range",
            format!(
                "{} .. {}",
                output::time_or(r.start_time.as_ref(), NONE),
                output::time_or(r.end_time.as_ref(), NONE)
            ),
        ),
        ("step", step_text(r.step_seconds, r.tier)),
    ];
    pairs.extend(stats_pairs(&total));
    pairs.push(("trend", trend(&r.series, r.step_seconds)));
    let mut text = output::fields(&pairs);
    if !r.series.is_empty() {
        text.push('\n');
        text.push_str(&series_table(&r.series));
    }
    text
}

/// The header of the first column of `usage top --by ...`.
fn dimension_header(by: TopByArg) -> &'static str {
    match by {
        TopByArg::Token => "TOKEN",
        TopByArg::Route => "ROUTE",
        TopByArg::Team => "TEAM",
        TopByArg::Error => "ERROR",
        TopByArg::Ip => "CLIENT IP",
    }
}

/// `usage top`: one row per entry, in the server's order.
pub fn top_table(by: TopByArg, entries: &[TopUsageEntry]) -> String {
    output::table(
        &[dimension_header(by), "NAME", "CALLS", "ERRORS", "SUCCESS"],
        entries.iter().map(|e| {
            vec![
                output::or_none(&e.key),
                output::or_none(&e.label),
                e.calls.to_string(),
                e.errors.to_string(),
                percent(e.success_rate, e.calls),
            ]
        }),
    )
}

/// The status mix: one row per status, with its share of all calls.
pub fn status_table(statuses: &[StatusCount]) -> String {
    let all: u64 = statuses.iter().map(|s| s.calls).sum();
    output::table(
        &["STATUS", "CALLS", "SHARE"],
        statuses.iter().map(|s| {
            let share = if all == 0 {
                NONE.to_owned()
            } else {
                format!("{:.1}%", s.calls as f64 * 100.0 / all as f64)
            };
            vec![s.status.to_string(), s.calls.to_string(), share]
        }),
    )
}

/// Routes of a token, or tokens of a route: one row per key.
pub fn breakdown_table(key_header: &str, rows: &[UsageBreakdown]) -> String {
    output::table(
        &[
            key_header, "NAME", "CALLS", "ERRORS", "SUCCESS", "P50", "P95", "P99",
        ],
        rows.iter().map(|b| {
            let s = b.stats.unwrap_or_default();
            let latency = |us: u64| {
                if s.calls > 0 {
                    millis(us)
                } else {
                    NONE.to_owned()
                }
            };
            vec![
                output::or_none(&b.key),
                output::or_none(&b.label),
                s.calls.to_string(),
                s.errors.to_string(),
                percent(s.success_rate, s.calls),
                latency(s.latency_p50_us),
                latency(s.latency_p95_us),
                latency(s.latency_p99_us),
            ]
        }),
    )
}

/// The shared shape of `usage token` and `usage route`.
struct Detail<'a> {
    subject: (&'static str, &'a str),
    total: Option<&'a UsageStats>,
    series: &'a [UsagePoint],
    first_used_at: Option<&'a Timestamp>,
    last_used_at: Option<&'a Timestamp>,
    step_seconds: u32,
    tier: i32,
    statuses: &'a [StatusCount],
    breakdown: (&'static str, &'a [UsageBreakdown]),
}

fn detail_text(d: &Detail<'_>) -> String {
    let total = d.total.copied().unwrap_or_default();
    let mut pairs = vec![(d.subject.0, d.subject.1.to_owned())];
    pairs.extend(stats_pairs(&total));
    pairs.extend([
        ("first used", output::time_or(d.first_used_at, "never")),
        ("last used", output::time_or(d.last_used_at, "never")),
        ("step", step_text(d.step_seconds, d.tier)),
        ("trend", trend(d.series, d.step_seconds)),
    ]);
    let mut text = output::fields(&pairs);
    if !d.statuses.is_empty() {
        text.push('\n');
        text.push_str(&status_table(d.statuses));
    }
    if !d.breakdown.1.is_empty() {
        text.push('\n');
        text.push_str(&breakdown_table(d.breakdown.0, d.breakdown.1));
    }
    text
}

/// `usage token`: totals, first/last use, trend, status mix, routes used.
pub fn token_text(r: &GetTokenUsageResponse) -> String {
    detail_text(&Detail {
        subject: ("token", &r.token_id),
        total: r.total.as_ref(),
        series: &r.series,
        first_used_at: r.first_used_at.as_ref(),
        last_used_at: r.last_used_at.as_ref(),
        step_seconds: r.step_seconds,
        tier: r.tier,
        statuses: &r.statuses,
        breakdown: ("ROUTE", &r.routes),
    })
}

/// `usage route`: totals, first/last use, trend, status mix, tokens used.
pub fn route_text(r: &GetRouteUsageResponse) -> String {
    detail_text(&Detail {
        subject: ("route", &r.route),
        total: r.total.as_ref(),
        series: &r.series,
        first_used_at: r.first_used_at.as_ref(),
        last_used_at: r.last_used_at.as_ref(),
        step_seconds: r.step_seconds,
        tier: r.tier,
        statuses: &r.statuses,
        breakdown: ("TOKEN", &r.tokens),
    })
}

// ------------------------------------------------------------------------------------------
// JSON: proto field names, times as RFC 3339 (null when absent), tiers as short names.

pub fn stats_json(s: Option<&UsageStats>) -> Value {
    let s = s.copied().unwrap_or_default();
    json!({
        "calls": s.calls,
        "errors": s.errors,
        "success_rate": s.success_rate,
        "request_bytes": s.request_bytes,
        "response_bytes": s.response_bytes,
        "latency_avg_us": s.latency_avg_us,
        "latency_min_us": s.latency_min_us,
        "latency_max_us": s.latency_max_us,
        "latency_p50_us": s.latency_p50_us,
        "latency_p95_us": s.latency_p95_us,
        "latency_p99_us": s.latency_p99_us,
    })
}

fn series_json(series: &[UsagePoint]) -> Value {
    series
        .iter()
        .map(|p| {
            json!({
                "time": output::time_json(p.time.as_ref()),
                "stats": stats_json(p.stats.as_ref()),
            })
        })
        .collect()
}

fn tier_json(tier: i32) -> Value {
    match UsageTier::try_from(tier) {
        Ok(UsageTier::Unspecified) | Err(_) => Value::Null,
        Ok(_) => Value::String(tier_name(tier)),
    }
}

pub fn summary_json(r: &GetUsageSummaryResponse) -> Value {
    json!({
        "total": stats_json(r.total.as_ref()),
        "series": series_json(&r.series),
        "step_seconds": r.step_seconds,
        "start_time": output::time_json(r.start_time.as_ref()),
        "end_time": output::time_json(r.end_time.as_ref()),
        "tier": tier_json(r.tier),
    })
}

pub fn top_json(r: &ListTopUsageResponse) -> Value {
    let entries: Vec<Value> = r
        .entries
        .iter()
        .map(|e| {
            json!({
                "key": e.key,
                "label": e.label,
                "calls": e.calls,
                "errors": e.errors,
                "success_rate": e.success_rate,
            })
        })
        .collect();
    json!({ "entries": entries, "tier": tier_json(r.tier) })
}

fn statuses_json(statuses: &[StatusCount]) -> Value {
    statuses
        .iter()
        .map(|s| json!({ "status": s.status, "calls": s.calls }))
        .collect()
}

fn breakdown_json(rows: &[UsageBreakdown]) -> Value {
    rows.iter()
        .map(|b| json!({ "key": b.key, "label": b.label, "stats": stats_json(b.stats.as_ref()) }))
        .collect()
}

pub fn token_json(r: &GetTokenUsageResponse) -> Value {
    json!({
        "token_id": r.token_id,
        "total": stats_json(r.total.as_ref()),
        "series": series_json(&r.series),
        "routes": breakdown_json(&r.routes),
        "statuses": statuses_json(&r.statuses),
        "first_used_at": output::time_json(r.first_used_at.as_ref()),
        "last_used_at": output::time_json(r.last_used_at.as_ref()),
        "step_seconds": r.step_seconds,
        "tier": tier_json(r.tier),
    })
}

pub fn route_json(r: &GetRouteUsageResponse) -> Value {
    json!({
        "route": r.route,
        "total": stats_json(r.total.as_ref()),
        "series": series_json(&r.series),
        "tokens": breakdown_json(&r.tokens),
        "statuses": statuses_json(&r.statuses),
        "first_used_at": output::time_json(r.first_used_at.as_ref()),
        "last_used_at": output::time_json(r.last_used_at.as_ref()),
        "step_seconds": r.step_seconds,
        "tier": tier_json(r.tier),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command, UsageCommand};
    use clap::Parser;
    use clap::error::ErrorKind;

    const T0: i64 = 1_738_324_800; // 2025-01-31T12:00:00Z

    fn ts(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos: 0 })
    }

    fn parse(args: &[&str]) -> Result<UsageCommand, clap::Error> {
        let argv = ["keygate", "usage"].into_iter().chain(args.iter().copied());
        match Cli::try_parse_from(argv)?.command {
            Command::Usage(command) => Ok(command),
            other => panic!("not a usage command: {other:?}"),
        }
    }

    fn stats(calls: u64, errors: u64) -> UsageStats {
        UsageStats {
            calls,
            errors,
            success_rate: if calls == 0 {
                0.0
            } else {
                (calls - errors) as f64 / calls as f64
            },
            request_bytes: 2048,
            response_bytes: 3 << 20,
            latency_avg_us: 15_200,
            latency_min_us: 850,
            latency_max_us: 2_000_000,
            latency_p50_us: 12_345,
            latency_p95_us: 80_100,
            latency_p99_us: 120_400,
        }
    }

    #[test]
    fn summary_flags_make_the_query() {
        let UsageCommand::Summary(args) = parse(&[
            "summary",
            "--team",
            "core",
            "--token",
            "tok_1",
            "--route",
            "billing",
            "--gateway",
            "edge-1",
            "--status",
            "5xx",
            "--from",
            "2025-01-31T00:00:00Z",
            "--to",
            "2025-01-31T12:00:00Z",
            "--step",
            "1h",
        ])
        .unwrap() else {
            panic!()
        };
        let request = summary_request(&args);
        assert_eq!(request.step_seconds, 3600);
        let q = request.query.unwrap();
        assert_eq!(
            (
                q.team_id.as_str(),
                q.token_id.as_str(),
                q.route.as_str(),
                q.gateway.as_str()
            ),
            ("core", "tok_1", "billing", "edge-1")
        );
        assert_eq!(q.status_class, StatusClass::StatusClass5xx as i32);
        assert_eq!(q.start_time, ts(T0 - 12 * 3600));
        assert_eq!(q.end_time, ts(T0));

        // Defaults: everything to the server (24 h, its own step).
        let UsageCommand::Summary(args) = parse(&["summary"]).unwrap() else {
            panic!()
        };
        let request = summary_request(&args);
        assert_eq!(request.step_seconds, 0);
        assert_eq!(request.query, Some(UsageQuery::default()));

        // --since is a duration before now; the range ends now.
        let UsageCommand::Summary(args) =
            parse(&["summary", "--since", "7d", "--status", "errors"]).unwrap()
        else {
            panic!()
        };
        let q = query(&args.query);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let start = q.start_time.unwrap().seconds;
        assert!((now - 7 * 86_400 - start).abs() <= 5, "{start}");
        assert_eq!(q.end_time, None);
        assert_eq!(q.status_class, StatusClass::Errors as i32);
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        let kind = |args: &[&str]| parse(args).unwrap_err().kind();
        assert_eq!(
            kind(&["summary", "--since", "1h", "--from", "2025-01-31T00:00:00Z"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["summary", "--status", "502"]),
            ErrorKind::InvalidValue
        );
        assert_eq!(
            kind(&["summary", "--step", "90s"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            kind(&["summary", "--step", "0"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            kind(&["summary", "--from", "yesterday"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(kind(&["top", "--limit", "101"]), ErrorKind::ValueValidation);
        assert_eq!(kind(&["top", "--by", "user"]), ErrorKind::InvalidValue);
        assert_eq!(kind(&["token"]), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn top_token_and_route_requests() {
        let UsageCommand::Top(args) = parse(&[
            "top", "--by", "ip", "--order", "errors", "--limit", "5", "--team", "core",
        ])
        .unwrap() else {
            panic!()
        };
        let r = top_request(&args);
        assert_eq!(
            (r.by, r.order, r.limit),
            (TopDimension::ClientIp as i32, TopOrder::Errors as i32, 5)
        );
        assert_eq!(r.query.unwrap().team_id, "core");
        let UsageCommand::Top(args) = parse(&["top"]).unwrap() else {
            panic!()
        };
        let r = top_request(&args);
        assert_eq!(
            (r.by, r.order, r.limit),
            (TopDimension::Token as i32, TopOrder::Calls as i32, 10)
        );
        let by = |name: &str| {
            let UsageCommand::Top(args) = parse(&["top", "--by", name]).unwrap() else {
                panic!()
            };
            top_request(&args).by
        };
        assert_eq!(by("error"), TopDimension::ErrorCode as i32);
        assert_eq!(by("team"), TopDimension::Team as i32);
        assert_eq!(by("route"), TopDimension::Route as i32);

        let UsageCommand::Token(args) = parse(&[
            "token",
            "tok_1",
            "--since",
            "2025-01-31T00:00:00Z",
            "--step",
            "15m",
        ])
        .unwrap() else {
            panic!()
        };
        let r = token_request(&args);
        assert_eq!(
            (
                r.token_id.as_str(),
                r.start_time,
                r.end_time,
                r.step_seconds
            ),
            ("tok_1", ts(T0 - 12 * 3600), None, 900)
        );
        let UsageCommand::Route(args) = parse(&["route", "billing", "--team", "core"]).unwrap()
        else {
            panic!()
        };
        let r = route_request(&args);
        assert_eq!(
            (r.route.as_str(), r.team_id.as_str(), r.step_seconds),
            ("billing", "core", 0)
        );
    }

    #[test]
    fn number_formats() {
        assert_eq!(millis(850), "0.85ms");
        assert_eq!(millis(12_345), "12.3ms");
        assert_eq!(millis(120_400), "120ms");
        assert_eq!(millis(2_000_000), "2000ms");
        assert_eq!(percent(1.0, 10), "100.0%");
        // Rounded down: one error in 10,000 is not 100 %.
        assert_eq!(percent(0.9999, 10_000), "99.9%");
        assert_eq!(percent(0.0, 0), "-");
        assert_eq!(tier_name(UsageTier::Hour as i32), "hour");
        assert_eq!(tier_name(0), "-");
        assert_eq!(step_text(3600, UsageTier::Hour as i32), "1h (hour tier)");
    }

    #[test]
    fn sparklines_scale_to_the_largest_value() {
        assert_eq!(sparkline(&[]), "");
        assert_eq!(sparkline(&[0, 0]), "▁▁");
        assert_eq!(sparkline(&[0, 1, 7, 14]), "▁▂▅█");
        // A tiny non-zero value never looks empty.
        assert_eq!(sparkline(&[1, 1_000_000]), "▂█");
        assert_eq!(sparkline(&[u64::MAX, u64::MAX / 2]), "█▅");
    }

    fn summary_response() -> GetUsageSummaryResponse {
        GetUsageSummaryResponse {
            total: Some(stats(10, 1)),
            series: vec![
                UsagePoint {
                    time: ts(T0),
                    stats: Some(stats(10, 1)),
                },
                UsagePoint {
                    time: ts(T0 + 3600),
                    stats: Some(UsageStats::default()),
                },
            ],
            step_seconds: 3600,
            start_time: ts(T0),
            end_time: ts(T0 + 7200),
            tier: UsageTier::Hour as i32,
        }
    }

    #[test]
    fn summary_text_and_json() {
        assert_eq!(
            summary_text(&summary_response()),
            "range:   2025-01-31T12:00:00Z .. 2025-01-31T14:00:00Z\n\
             step:    1h (hour tier)\n\
             calls:   10\n\
             errors:  1\n\
             success: 90.0%\n\
             p50:     12.3ms\n\
             p95:     80.1ms\n\
             p99:     120ms\n\
             latency: avg 15.2ms, min 0.85ms, max 2000ms\n\
             bytes:   in 2.0 KiB, out 3.0 MiB\n\
             trend:   █▁ (max 10 per 1h)\n\
             \n\
             TIME                  CALLS  ERRORS  SUCCESS  P50     P95     P99\n\
             2025-01-31T12:00:00Z  10     1       90.0%    12.3ms  80.1ms  120ms\n\
             2025-01-31T13:00:00Z  0      0       -        -       -       -\n"
        );
        let value = summary_json(&summary_response());
        assert_eq!(value["total"]["calls"], 10);
        assert_eq!(value["total"]["latency_p95_us"], 80_100);
        assert_eq!(value["series"][1]["time"], "2025-01-31T13:00:00Z");
        assert_eq!(value["series"][1]["stats"]["calls"], 0);
        assert_eq!(value["tier"], "hour");
        assert_eq!(value["step_seconds"], 3600);
        assert_eq!(value["start_time"], "2025-01-31T12:00:00Z");

        // No calls: dashes, not zeros, for latencies; no table for an empty series.
        let empty = GetUsageSummaryResponse::default();
        let text = summary_text(&empty);
        assert!(text.contains("p50:     -\n"), "{text}");
        assert!(text.ends_with("trend:   -\n"), "{text}");
        assert_eq!(summary_json(&empty)["tier"], Value::Null);
    }

    #[test]
    fn top_table_and_json() {
        let entries = vec![
            TopUsageEntry {
                key: "tok_1".into(),
                label: "deploy bot".into(),
                calls: 10,
                errors: 1,
                success_rate: 0.9,
            },
            TopUsageEntry {
                key: String::new(),
                label: String::new(),
                calls: 3,
                errors: 3,
                success_rate: 0.0,
            },
        ];
        assert_eq!(
            top_table(TopByArg::Token, &entries),
            "TOKEN  NAME        CALLS  ERRORS  SUCCESS\n\
             tok_1  deploy bot  10     1       90.0%\n\
             -      -           3      3       0.0%\n"
        );
        assert!(top_table(TopByArg::Ip, &entries).starts_with("CLIENT IP  NAME"));
        let value = top_json(&ListTopUsageResponse {
            entries,
            tier: UsageTier::Minute as i32,
        });
        assert_eq!(value["entries"][0]["key"], "tok_1");
        assert_eq!(value["entries"][1]["errors"], 3);
        assert_eq!(value["tier"], "minute");
    }

    #[test]
    fn token_and_route_details() {
        let response = GetTokenUsageResponse {
            token_id: "tok_1".into(),
            total: Some(stats(10, 1)),
            series: vec![UsagePoint {
                time: ts(T0),
                stats: Some(stats(10, 1)),
            }],
            routes: vec![UsageBreakdown {
                key: "billing".into(),
                label: String::new(),
                stats: Some(stats(10, 1)),
            }],
            statuses: vec![
                StatusCount {
                    status: 200,
                    calls: 9,
                },
                StatusCount {
                    status: 502,
                    calls: 1,
                },
            ],
            first_used_at: ts(T0 - 86_400),
            last_used_at: ts(T0 + 59),
            step_seconds: 60,
            tier: UsageTier::Minute as i32,
        };
        let text = token_text(&response);
        assert!(
            text.starts_with("token:      tok_1\ncalls:      10\n"),
            "{text}"
        );
        assert!(
            text.contains("first used: 2025-01-30T12:00:00Z\nlast used:  2025-01-31T12:00:59Z\nstep:       1m (minute tier)\ntrend:      █ (max 10 per 1m)\n"),
            "{text}"
        );
        assert!(
            text.contains("\nSTATUS  CALLS  SHARE\n200     9      90.0%\n502     1      10.0%\n"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "\nROUTE    NAME  CALLS  ERRORS  SUCCESS  P50     P95     P99\n\
                 billing  -     10     1       90.0%    12.3ms  80.1ms  120ms\n"
            ),
            "{text}"
        );
        let value = token_json(&response);
        assert_eq!(value["routes"][0]["key"], "billing");
        assert_eq!(value["routes"][0]["stats"]["calls"], 10);
        assert_eq!(value["statuses"][1]["status"], 502);
        assert_eq!(value["last_used_at"], "2025-01-31T12:00:59Z");

        let never = GetRouteUsageResponse {
            route: "billing".into(),
            ..Default::default()
        };
        let text = route_text(&never);
        assert!(text.starts_with("route:      billing\n"), "{text}");
        assert!(
            text.contains("first used: never\nlast used:  never\n"),
            "{text}"
        );
        assert!(!text.contains("STATUS"), "{text}");
        let value = route_json(&never);
        assert_eq!(value["first_used_at"], Value::Null);
        assert_eq!(value["tokens"], json!([]));
    }
}
