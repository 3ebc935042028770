//! ExportUsage encoders: rollup rows or raw events as NDJSON (one object per line, field
//! names = the ClickHouse columns of `docs/analytics-clickhouse.md`, times as
//! `YYYY-MM-DD hh:mm:ss[.sss]` UTC so `FORMAT JSONEachRow` reads them) or RFC 4180 CSV (the
//! audit export's cell rules). Read page by page: memory stays flat however long the export.

use super::analytics::{ExportRow, Tier, UsageScope};
use super::model::{StoredUsageEvent, UsageFilter};
use crate::audit::export::csv_cell;
use crate::error::ApiError;
use crate::store::DynStore;
use crate::time::{Millis, rfc3339};
use base64::Engine;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Value, json};
use tonic::Status;

/// Rows read per page.
const PAGE: u32 = 2000;

const ROLLUP_COLUMNS: [&str; 17] = [
    "tier",
    "bucket",
    "token_id",
    "team_id",
    "route",
    "status",
    "error",
    "calls",
    "request_bytes",
    "response_bytes",
    "latency_sum_us",
    "latency_min_us",
    "latency_max_us",
    "latency_p50_us",
    "latency_p95_us",
    "latency_p99_us",
    "latency_sketch",
];

const EVENT_COLUMNS: [&str; 17] = [
    "at",
    "gateway",
    "event_id",
    "token_hash",
    "token_id",
    "team_id",
    "route",
    "method",
    "status",
    "error",
    "latency_us",
    "request_bytes",
    "response_bytes",
    "client_ip",
    "user_agent",
    "config_revision",
    "request_id",
];

/// `YYYY-MM-DD hh:mm:ss.sss` (UTC): what ClickHouse parses by default.
pub fn sql_time(ms: Millis) -> String {
    rfc3339(ms)
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_owned()
}

fn rollup_object(r: &ExportRow) -> Vec<(&'static str, Value)> {
    let (k, v) = (&r.key, &r.value);
    let q = |p| v.sketch.quantile(p).unwrap_or(0);
    vec![
        ("tier", json!(r.tier.name())),
        ("bucket", json!(sql_time(k.minute))),
        ("token_id", json!(k.token_id)),
        ("team_id", json!(k.team_id)),
        ("route", json!(k.route)),
        ("status", json!(k.status)),
        ("error", json!(k.error)),
        ("calls", json!(v.count)),
        ("request_bytes", json!(v.request_bytes)),
        ("response_bytes", json!(v.response_bytes)),
        ("latency_sum_us", json!(v.latency_sum_us)),
        ("latency_min_us", json!(v.latency_min_us)),
        ("latency_max_us", json!(v.latency_max_us)),
        ("latency_p50_us", json!(q(0.5))),
        ("latency_p95_us", json!(q(0.95))),
        ("latency_p99_us", json!(q(0.99))),
        (
            "latency_sketch",
            json!(base64::engine::general_purpose::STANDARD.encode(v.sketch.encode())),
        ),
    ]
}

fn event_object(s: &StoredUsageEvent) -> Vec<(&'static str, Value)> {
    let e = &s.event;
    vec![
        ("at", json!(sql_time(e.at))),
        ("gateway", json!(s.gateway)),
        ("event_id", json!(e.event_id)),
        ("token_hash", json!(e.token_hash)),
        (
            "token_id",
            json!(e.token_id.as_ref().map(|t| t.as_str()).unwrap_or("")),
        ),
        (
            "team_id",
            json!(e.team_id.as_ref().map(|t| t.as_str()).unwrap_or("")),
        ),
        ("route", json!(e.route)),
        ("method", json!(e.method)),
        ("status", json!(e.status)),
        ("error", json!(e.error)),
        ("latency_us", json!(e.latency_us)),
        ("request_bytes", json!(e.request_bytes)),
        ("response_bytes", json!(e.response_bytes)),
        ("client_ip", json!(e.client_ip)),
        ("user_agent", json!(e.user_agent)),
        ("config_revision", json!(e.config_revision)),
        ("request_id", json!(e.request_id)),
    ]
}

/// One line in the chosen format.
fn line(fields: Vec<(&'static str, Value)>, csv: bool) -> String {
    let mut s = if csv {
        fields
            .iter()
            .map(|(_, v)| match v {
                Value::String(s) => csv_cell(s),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(",")
    } else {
        Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()).to_string()
    };
    s.push_str(if csv { "\r\n" } else { "\n" });
    s
}

fn header(columns: &[&str], csv: bool) -> Option<Result<String, Status>> {
    csv.then(|| Ok(format!("{}\r\n", columns.join(","))))
}

/// Rollup rows of `tier` over `scope`, in bucket order.
pub fn rollup_lines(
    store: DynStore,
    scope: UsageScope,
    tier: Tier,
    csv: bool,
) -> BoxStream<'static, Result<String, Status>> {
    // State: Some(cursor) while pages remain (None inside = the first page).
    let pages = futures::stream::unfold(Some(None::<String>), move |state| {
        let (store, scope) = (store.clone(), scope.clone());
        async move {
            let after = state?;
            match store.export_rollups(&scope, tier, after, PAGE).await {
                Ok((rows, next)) => {
                    let lines: Vec<Result<String, Status>> = rows
                        .iter()
                        .map(|r| Ok(line(rollup_object(r), csv)))
                        .collect();
                    Some((futures::stream::iter(lines), next.map(Some)))
                }
                Err(e) => Some((
                    futures::stream::iter(vec![Err(Status::from(ApiError::from(e)))]),
                    None,
                )),
            }
        }
    })
    .flatten();
    futures::stream::iter(header(&ROLLUP_COLUMNS, csv))
        .chain(pages)
        .boxed()
}

/// Raw events over `scope`, newest first.
pub fn event_lines(
    store: DynStore,
    scope: UsageScope,
    csv: bool,
) -> BoxStream<'static, Result<String, Status>> {
    let filter = UsageFilter {
        team_id: scope.team_id.clone(),
        token_id: scope.token_id.clone(),
        route: scope.route.clone(),
        status: None,
        start: Some(scope.start),
        end: Some(scope.end),
        visible_teams: scope.visible_teams.clone(),
        limit: PAGE,
        after: None,
    };
    let keep = move |e: &StoredUsageEvent| {
        scope.status.is_none_or(|c| {
            let (lo, hi) = c.range();
            (lo..=hi).contains(&e.event.status)
        }) && scope.gateway.as_ref().is_none_or(|g| *g == e.gateway)
    };
    let pages = futures::stream::unfold(Some(filter), move |state| {
        let store = store.clone();
        let keep = keep.clone();
        async move {
            let mut filter = state?;
            match store.list_usage(&filter).await {
                Ok(page) => {
                    let next = match (page.more, page.items.last()) {
                        (true, Some(last)) => {
                            filter.after = Some((last.event.at, last.id));
                            Some(filter)
                        }
                        _ => None,
                    };
                    let lines: Vec<Result<String, Status>> = page
                        .items
                        .iter()
                        .filter(|e| keep(e))
                        .map(|e| Ok(line(event_object(e), csv)))
                        .collect();
                    Some((futures::stream::iter(lines), next))
                }
                Err(e) => Some((
                    futures::stream::iter(vec![Err(Status::from(ApiError::from(e)))]),
                    None,
                )),
            }
        }
    })
    .flatten();
    futures::stream::iter(header(&EVENT_COLUMNS, csv))
        .chain(pages)
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_rollup::{RollupKey, RollupValue};

    #[test]
    fn rollup_lines_in_both_formats() {
        let mut v = RollupValue::default();
        v.record(1500, 10, 20);
        v.record(2500, 0, 5);
        let row = ExportRow {
            tier: Tier::Hour,
            key: RollupKey {
                minute: 1_765_000_800_000,
                token_id: "tok_1".into(),
                team_id: "pay".into(),
                route: "billing".into(),
                status: 200,
                error: String::new(),
            },
            value: v,
        };
        let nd: Value = serde_json::from_str(&line(rollup_object(&row), false)).unwrap();
        assert_eq!(nd["calls"], 2);
        assert_eq!(nd["latency_sum_us"], 4000);
        assert_eq!(nd["bucket"], sql_time(1_765_000_800_000));
        assert!(!nd["bucket"].as_str().unwrap().contains('T'));
        let csv = line(rollup_object(&row), true);
        assert!(csv.ends_with("\r\n"));
        assert_eq!(csv.split(',').count(), ROLLUP_COLUMNS.len());
        assert!(csv.starts_with("hour,"));
    }
}
