//! Usage domain types and input validation (wire -> domain).
//!
//! Two kinds of event fields are treated differently on purpose. Fields the gateway decides
//! itself (event id, time, key hash, token, team, route, status, error code, numbers, client
//! address) are validated and a bad one refuses the whole batch with a field-naming error:
//! it is a gateway bug. Fields copied from the client's request (`method`, `user_agent`,
//! `request_id`) are never refused: control characters are replaced and the value is
//! truncated, because one odd request must not make the gateway's whole batch fail.

use crate::ids::{TeamId, TokenId};
use crate::pagination;
use crate::time::{Millis, from_timestamp, to_timestamp, to_timestamp_opt};
use crate::tokens::parse_token_id;
use keygate_contracts::{FieldError, names};
use keygate_proto::v1 as pb;
use keygate_rollup::{Accumulator, LatencySketch, MINUTE_MS, RollupKey, RollupValue};
use serde::Serialize;

/// Most events one IngestUsage call may carry.
pub const MAX_EVENTS: usize = 5000;
/// Most rollups one IngestUsage call may carry.
pub const MAX_ROLLUPS: usize = 20_000;
/// Largest encoded latency sketch accepted (a full 1 µs - 2^40 µs range is far below).
pub const SKETCH_MAX_BYTES: usize = 8192;
/// Caps of the batch id and the gateway's version text.
pub const BATCH_ID_MAX: usize = 128;
pub const VERSION_MAX: usize = 64;
/// How far ahead of the control plane's clock an event time may be (gateway clock skew).
/// Beyond it the batch is refused: `last_used_at` only moves forward, so a future time
/// would stick.
pub const MAX_FUTURE_MS: Millis = 5 * 60_000;
/// Byte caps of the fields copied from the client's request (truncated, never refused).
pub const METHOD_MAX: usize = 16;
pub const USER_AGENT_MAX: usize = 512;
pub const REQUEST_ID_MAX: usize = 128;
/// Caps of the fields the gateway decides (refused when longer).
pub const EVENT_ID_MAX: usize = 128;
pub const ERROR_MAX: usize = 64;
pub const GATEWAY_MAX: usize = 100;
/// Default and largest ListUsageEvents page.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Kind tag of ListUsageEvents page tokens.
pub const PAGE_KIND: &str = "usage";

/// One request a gateway answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageEvent {
    pub event_id: String,
    pub at: Millis,
    /// Lowercase hex SHA-256 of the presented key; empty when none was presented.
    pub token_hash: String,
    pub token_id: Option<TokenId>,
    pub team_id: Option<TeamId>,
    /// Route name; empty when no route matched.
    pub route: String,
    pub method: String,
    pub status: u16,
    pub error: String,
    /// The following numbers are never negative (validated to fit `i64`).
    pub latency_us: i64,
    pub request_bytes: i64,
    pub response_bytes: i64,
    pub client_ip: String,
    pub user_agent: String,
    pub config_revision: i64,
    pub request_id: String,
}

/// An event as stored: with its row id (the list's tiebreaker) and reporting gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUsageEvent {
    pub id: i64,
    pub gateway: String,
    pub event: UsageEvent,
}

/// A validated IngestUsage call.
#[derive(Debug, Clone, Default)]
pub struct UsageBatch {
    pub gateway: String,
    /// Actor reference of the caller (`service_account:<id>`), kept on the gateway's row.
    pub reported_by: String,
    pub events: Vec<UsageEvent>,
    /// Events the gateway dropped since its last successful call.
    pub dropped: i64,
    /// Per-minute rollups, each key at most once (duplicates in a call are merged).
    pub rollups: Vec<(RollupKey, RollupValue)>,
    /// `(gateway, batch_id)` makes the whole call idempotent.
    pub batch_id: Option<String>,
    pub config_revision: i64,
    pub gateway_version: String,
    /// The events are samples of requests already in `rollups`; otherwise the store rolls
    /// the events up itself.
    pub events_sampled: bool,
    pub sampled_out: i64,
    /// Requests whose rollups the gateway dropped.
    pub rollups_dropped: i64,
}

/// What storing a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// New events stored.
    pub events: u32,
    /// Rollup keys stored (after merging duplicates).
    pub rollups: u32,
    /// The batch id had been stored before: nothing changed.
    pub replayed: bool,
}

/// A gateway's totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayStatus {
    pub name: String,
    pub reported_by: String,
    pub first_seen_at: Millis,
    pub last_seen_at: Millis,
    pub events_total: i64,
    pub dropped_total: i64,
    pub config_revision: i64,
    pub version: String,
    /// Sums over the minutes of arrival in the last hour.
    pub last_hour: GatewayHour,
}

/// What a gateway reported over the last hour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayHour {
    pub requests: i64,
    pub events: i64,
    pub events_dropped: i64,
    pub rollups_dropped: i64,
    pub sampled_out: i64,
}

/// Filters and page position for ListUsageEvents.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    pub team_id: Option<TeamId>,
    pub token_id: Option<TokenId>,
    pub route: Option<String>,
    pub status: Option<u16>,
    /// Inclusive.
    pub start: Option<Millis>,
    /// Exclusive.
    pub end: Option<Millis>,
    /// Only events of these teams (`None`: every event, including those without a team).
    /// Set from the caller, not the request.
    pub visible_teams: Option<Vec<TeamId>>,
    pub limit: u32,
    /// `(at, id)` of the last row of the previous page.
    pub after: Option<(Millis, i64)>,
}

/// `s` with control characters replaced by U+FFFD, cut to at most `max` bytes on a
/// character boundary.
pub fn sanitize(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for c in s.chars() {
        let c = if c.is_control() { '\u{FFFD}' } else { c };
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

fn non_negative(field: &str, v: u64) -> Result<i64, FieldError> {
    i64::try_from(v).map_err(|_| FieldError::new(field, format!("must be at most {}", i64::MAX)))
}

/// Validates the gateway name (also used before authorisation, as the audited target).
pub fn parse_gateway(v: &str) -> Result<String, FieldError> {
    names::validate_text("gateway", v, GATEWAY_MAX, true, false)?;
    Ok(v.to_owned())
}

/// 1-`max` printable ASCII characters, no spaces (event and batch ids).
fn is_printable_id(v: &str, max: usize) -> bool {
    !v.is_empty() && v.len() <= max && v.bytes().all(|b| b.is_ascii_graphic())
}

fn is_lower_hex_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The token and team a gateway attributed a request to (the same rules for events and
/// rollups): both empty, or a token id with its team, or a team alone.
fn parse_owner(
    f: &dyn Fn(&str) -> String,
    token_id: &str,
    team_id: String,
) -> Result<(Option<TokenId>, Option<TeamId>), FieldError> {
    let token_id = (!token_id.is_empty())
        .then(|| parse_token_id(&f("token_id"), token_id))
        .transpose()?;
    let team_id = if team_id.is_empty() {
        None
    } else {
        names::validate_team_id(&f("team_id"), &team_id)?;
        Some(TeamId(team_id))
    };
    if token_id.is_some() && team_id.is_none() {
        return Err(FieldError::new(
            f("team_id"),
            "is required when token_id is set",
        ));
    }
    Ok((token_id, team_id))
}

fn parse_route(f: &dyn Fn(&str) -> String, route: &str) -> Result<(), FieldError> {
    if !route.is_empty() {
        names::validate_route_name(&f("route"), route)?;
    }
    Ok(())
}

fn parse_status(f: &dyn Fn(&str) -> String, status: u32) -> Result<u16, FieldError> {
    match u16::try_from(status) {
        Ok(s) if (100..=599).contains(&s) => Ok(s),
        _ => Err(FieldError::new(f("status"), "must be 100..599")),
    }
}

fn parse_error_code(f: &dyn Fn(&str) -> String, error: &str) -> Result<(), FieldError> {
    if error.len() > ERROR_MAX
        || !error.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.' || b == b'-'
        })
    {
        return Err(FieldError::new(
            f("error"),
            format!("must be at most {ERROR_MAX} characters of [a-z0-9._-]"),
        ));
    }
    Ok(())
}

/// Times may be at most [`MAX_FUTURE_MS`] ahead of `now` and after the epoch.
fn parse_time(field: String, at: Millis, now: Millis) -> Result<Millis, FieldError> {
    if at <= 0 {
        return Err(FieldError::new(field, "must be after 1970-01-01"));
    }
    if at > now + MAX_FUTURE_MS {
        return Err(FieldError::new(
            field,
            "must not be more than 5 minutes ahead of the control plane's clock",
        ));
    }
    Ok(at)
}

fn parse_rollup(
    i: usize,
    r: pb::UsageRollup,
    now: Millis,
) -> Result<(RollupKey, RollupValue), FieldError> {
    let f = |name: &str| format!("rollups[{i}].{name}");
    let minute = match &r.minute {
        None => return Err(FieldError::new(f("minute"), "is required")),
        Some(ts) => parse_time(f("minute"), from_timestamp(ts), now)?,
    };
    if minute % MINUTE_MS != 0 {
        return Err(FieldError::new(
            f("minute"),
            "must be the start of a minute (a multiple of 60 seconds)",
        ));
    }
    let (token_id, team_id) = parse_owner(&f, &r.token_id, r.team_id)?;
    parse_route(&f, &r.route)?;
    let status = parse_status(&f, r.status)?;
    parse_error_code(&f, &r.error)?;
    if r.count == 0 {
        return Err(FieldError::new(f("count"), "must be at least 1"));
    }
    for (name, v) in [
        ("count", r.count),
        ("request_bytes", r.request_bytes),
        ("response_bytes", r.response_bytes),
        ("latency_sum_us", r.latency_sum_us),
        ("latency_max_us", r.latency_max_us),
    ] {
        non_negative(&f(name), v)?;
    }
    if r.latency_min_us > r.latency_max_us {
        return Err(FieldError::new(
            f("latency_min_us"),
            "must not be above latency_max_us",
        ));
    }
    if r.latency_sketch.len() > SKETCH_MAX_BYTES {
        return Err(FieldError::new(
            f("latency_sketch"),
            format!("must be at most {SKETCH_MAX_BYTES} bytes"),
        ));
    }
    let sketch = LatencySketch::decode(&r.latency_sketch)
        .map_err(|e| FieldError::new(f("latency_sketch"), e.to_string()))?;
    if sketch.count() != r.count {
        return Err(FieldError::new(
            f("latency_sketch"),
            format!("holds {} values but count is {}", sketch.count(), r.count),
        ));
    }
    Ok((
        RollupKey {
            minute,
            token_id: token_id.map(|t| t.0).unwrap_or_default(),
            team_id: team_id.map(|t| t.0).unwrap_or_default(),
            route: r.route,
            status,
            error: r.error,
        },
        RollupValue {
            count: r.count,
            request_bytes: r.request_bytes,
            response_bytes: r.response_bytes,
            latency_sum_us: r.latency_sum_us,
            latency_min_us: r.latency_min_us,
            latency_max_us: r.latency_max_us,
            sketch,
        },
    ))
}

fn parse_event(i: usize, e: pb::UsageEvent, now: Millis) -> Result<UsageEvent, FieldError> {
    let f = |name: &str| format!("events[{i}].{name}");
    if !is_printable_id(&e.event_id, EVENT_ID_MAX) {
        return Err(FieldError::new(
            f("event_id"),
            format!("must be 1-{EVENT_ID_MAX} printable ASCII characters"),
        ));
    }
    let at = match &e.time {
        None => return Err(FieldError::new(f("time"), "is required")),
        Some(ts) => parse_time(f("time"), from_timestamp(ts), now)?,
    };
    if !e.token_hash.is_empty() && !is_lower_hex_sha256(&e.token_hash) {
        return Err(FieldError::new(
            f("token_hash"),
            "must be empty or 64 lowercase hex digits",
        ));
    }
    let (token_id, team_id) = parse_owner(&f, &e.token_id, e.team_id)?;
    parse_route(&f, &e.route)?;
    let status = parse_status(&f, e.status)?;
    parse_error_code(&f, &e.error)?;
    if !e.client_ip.is_empty() && e.client_ip.parse::<std::net::IpAddr>().is_err() {
        return Err(FieldError::new(
            f("client_ip"),
            "must be empty or an IPv4 or IPv6 address",
        ));
    }
    if e.config_revision < 0 {
        return Err(FieldError::new(
            f("config_revision"),
            "must not be negative",
        ));
    }
    Ok(UsageEvent {
        latency_us: non_negative(&f("latency_us"), e.latency_us)?,
        request_bytes: non_negative(&f("request_bytes"), e.request_bytes)?,
        response_bytes: non_negative(&f("response_bytes"), e.response_bytes)?,
        event_id: e.event_id,
        at,
        token_hash: e.token_hash,
        token_id,
        team_id,
        route: e.route,
        method: sanitize(&e.method, METHOD_MAX),
        status,
        error: e.error,
        client_ip: e.client_ip,
        user_agent: sanitize(&e.user_agent, USER_AGENT_MAX),
        config_revision: e.config_revision,
        request_id: sanitize(&e.request_id, REQUEST_ID_MAX),
    })
}

/// Validates an IngestUsage request received at `now`. `reported_by` is left empty: the
/// handler sets it from the caller.
pub fn parse_ingest(r: pb::IngestUsageRequest, now: Millis) -> Result<UsageBatch, FieldError> {
    let gateway = parse_gateway(&r.gateway)?;
    if r.events.len() > MAX_EVENTS {
        return Err(FieldError::new(
            "events",
            format!("at most {MAX_EVENTS} per call"),
        ));
    }
    if r.rollups.len() > MAX_ROLLUPS {
        return Err(FieldError::new(
            "rollups",
            format!("at most {MAX_ROLLUPS} per call"),
        ));
    }
    let printable = |v: &str, max: usize| {
        v.len() <= max && v.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    };
    if !r.batch_id.is_empty() && !is_printable_id(&r.batch_id, BATCH_ID_MAX) {
        return Err(FieldError::new(
            "batch_id",
            format!("must be empty or 1-{BATCH_ID_MAX} printable ASCII characters"),
        ));
    }
    if !r.rollups.is_empty() && r.batch_id.is_empty() {
        return Err(FieldError::new(
            "batch_id",
            "is required when rollups are sent",
        ));
    }
    if !printable(&r.gateway_version, VERSION_MAX) {
        return Err(FieldError::new(
            "gateway_version",
            format!("must be at most {VERSION_MAX} printable ASCII characters"),
        ));
    }
    if r.config_revision < 0 {
        return Err(FieldError::new("config_revision", "must not be negative"));
    }
    let dropped = non_negative("dropped", r.dropped)?;
    let sampled_out = non_negative("sampled_out", r.sampled_out)?;
    let rollups_dropped = non_negative("rollups_dropped", r.rollups_dropped)?;
    let events = r
        .events
        .into_iter()
        .enumerate()
        .map(|(i, e)| parse_event(i, e, now))
        .collect::<Result<Vec<_>, _>>()?;
    let mut merged = Accumulator::new();
    for (i, x) in r.rollups.into_iter().enumerate() {
        let (k, v) = parse_rollup(i, x, now)?;
        merged.merge_value(k, v);
    }
    let mut rollups = merged.drain();
    rollups.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(UsageBatch {
        gateway,
        reported_by: String::new(),
        events,
        dropped,
        rollups,
        batch_id: (!r.batch_id.is_empty()).then_some(r.batch_id),
        config_revision: r.config_revision,
        gateway_version: r.gateway_version,
        events_sampled: r.events_sampled,
        sampled_out,
        rollups_dropped,
    })
}

impl TryFrom<pb::ListUsageEventsRequest> for UsageFilter {
    type Error = FieldError;

    fn try_from(r: pb::ListUsageEventsRequest) -> Result<Self, FieldError> {
        let f = r.filter.unwrap_or_default();
        let team_id = if f.team_id.is_empty() {
            None
        } else {
            names::validate_team_id("filter.team_id", &f.team_id)?;
            Some(TeamId(f.team_id))
        };
        let token_id = (!f.token_id.is_empty())
            .then(|| parse_token_id("filter.token_id", &f.token_id))
            .transpose()?;
        let route = if f.route.is_empty() {
            None
        } else {
            names::validate_route_name("filter.route", &f.route)?;
            Some(f.route)
        };
        let status = match f.status {
            0 => None,
            s @ 100..=599 => Some(s as u16),
            _ => {
                return Err(FieldError::new(
                    "filter.status",
                    "must be 0 (any) or 100..599",
                ));
            }
        };
        let start = f.start_time.as_ref().map(from_timestamp);
        let end = f.end_time.as_ref().map(from_timestamp);
        if let (Some(s), Some(e)) = (start, end)
            && e <= s
        {
            return Err(FieldError::new(
                "filter.end_time",
                "must be after filter.start_time",
            ));
        }
        let limit = match r.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n @ 1..=MAX_PAGE_SIZE => n,
            _ => {
                return Err(FieldError::new(
                    "page_size",
                    format!("must be between 1 and {MAX_PAGE_SIZE}"),
                ));
            }
        };
        let after = pagination::decode(PAGE_KIND, &r.page_token, 2)?
            .map(|p| -> Result<_, FieldError> {
                Ok((pagination::int_part(&p[0])?, pagination::int_part(&p[1])?))
            })
            .transpose()?;
        Ok(Self {
            team_id,
            token_id,
            route,
            status,
            start,
            end,
            visible_teams: None,
            limit,
            after,
        })
    }
}

/// The page token that continues after `last`.
pub fn next_page_token(last: &StoredUsageEvent) -> String {
    pagination::encode(PAGE_KIND, &[last.event.at.to_string(), last.id.to_string()])
}

impl From<StoredUsageEvent> for pb::UsageEvent {
    fn from(s: StoredUsageEvent) -> Self {
        let e = s.event;
        Self {
            event_id: e.event_id,
            time: Some(to_timestamp(e.at)),
            token_hash: e.token_hash,
            token_id: e.token_id.map(|t| t.0).unwrap_or_default(),
            team_id: e.team_id.map(|t| t.0).unwrap_or_default(),
            route: e.route,
            method: e.method,
            status: u32::from(e.status),
            error: e.error,
            latency_us: e.latency_us.max(0) as u64,
            request_bytes: e.request_bytes.max(0) as u64,
            response_bytes: e.response_bytes.max(0) as u64,
            client_ip: e.client_ip,
            user_agent: e.user_agent,
            config_revision: e.config_revision,
            request_id: e.request_id,
            gateway: s.gateway,
        }
    }
}

impl From<GatewayStatus> for pb::Gateway {
    fn from(g: GatewayStatus) -> Self {
        Self {
            name: g.name,
            reported_by: g.reported_by,
            first_seen_at: to_timestamp_opt(Some(g.first_seen_at)),
            last_seen_at: to_timestamp_opt(Some(g.last_seen_at)),
            events_total: g.events_total.max(0) as u64,
            dropped_total: g.dropped_total.max(0) as u64,
            config_revision: g.config_revision,
            version: g.version,
            events_dropped_last_hour: g.last_hour.events_dropped.max(0) as u64,
            rollups_dropped_last_hour: g.last_hour.rollups_dropped.max(0) as u64,
            requests_last_hour: g.last_hour.requests.max(0) as u64,
            sampled_out_last_hour: g.last_hour.sampled_out.max(0) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_750_000_000_000;

    fn event() -> pb::UsageEvent {
        pb::UsageEvent {
            event_id: "e-1".into(),
            time: Some(to_timestamp(NOW - 1000)),
            token_hash: "ab".repeat(32),
            token_id: "tok_0123456789abcdef0123456789abcdef".into(),
            team_id: "payments".into(),
            route: "billing".into(),
            method: "GET".into(),
            status: 200,
            latency_us: 1500,
            client_ip: "192.0.2.1".into(),
            user_agent: "curl/8".into(),
            config_revision: 7,
            request_id: "req-1".into(),
            ..Default::default()
        }
    }

    fn ingest(f: impl FnOnce(&mut pb::UsageEvent)) -> Result<UsageBatch, FieldError> {
        let mut ok = event();
        let mut bad = event();
        bad.event_id = "e-2".into();
        f(&mut bad);
        ok.event_id = "e-0".into();
        parse_ingest(
            pb::IngestUsageRequest {
                gateway: "edge-1".into(),
                events: vec![ok, bad],
                dropped: 3,
                ..Default::default()
            },
            NOW,
        )
    }

    #[test]
    fn valid_batch_maps_every_field() {
        let b = ingest(|_| {}).unwrap();
        assert_eq!(
            (b.gateway.as_str(), b.dropped, b.events.len()),
            ("edge-1", 3, 2)
        );
        let e = &b.events[1];
        assert_eq!(e.at, NOW - 1000);
        assert_eq!(e.team_id, Some(TeamId("payments".into())));
        assert_eq!(e.status, 200);
        // An anonymous request that matched nothing is fine too.
        let b = ingest(|e| {
            e.token_hash.clear();
            e.token_id.clear();
            e.team_id.clear();
            e.route.clear();
            e.client_ip.clear();
            e.status = 404;
            e.error = "no_route".into();
        })
        .unwrap();
        assert_eq!(b.events[1].token_id, None);
    }

    #[test]
    fn validation_names_the_event_and_field() {
        type Mutation = Box<dyn Fn(&mut pb::UsageEvent)>;
        let cases: Vec<(Mutation, &str, &str)> = vec![
            (
                Box::new(|e| e.event_id.clear()),
                "events[1].event_id",
                "printable",
            ),
            (
                Box::new(|e| e.event_id = "a b".into()),
                "events[1].event_id",
                "printable",
            ),
            (
                Box::new(|e| e.event_id = "x".repeat(129)),
                "events[1].event_id",
                "1-128",
            ),
            (Box::new(|e| e.time = None), "events[1].time", "is required"),
            (
                Box::new(|e| e.time = Some(to_timestamp(NOW + MAX_FUTURE_MS + 1))),
                "events[1].time",
                "5 minutes",
            ),
            (
                Box::new(|e| e.token_hash = "AB".repeat(32)),
                "events[1].token_hash",
                "hex",
            ),
            (
                Box::new(|e| e.token_id = "tok_x".into()),
                "events[1].token_id",
                "token id",
            ),
            (
                Box::new(|e| e.team_id.clear()),
                "events[1].team_id",
                "required when",
            ),
            (
                Box::new(|e| e.team_id = "Bad".into()),
                "events[1].team_id",
                "lowercase",
            ),
            (
                Box::new(|e| e.route = "a/b".into()),
                "events[1].route",
                "lowercase",
            ),
            (
                Box::new(|e| e.status = 99),
                "events[1].status",
                "must be 100..599",
            ),
            (
                Box::new(|e| e.status = 600),
                "events[1].status",
                "must be 100..599",
            ),
            (
                Box::new(|e| e.status = 70_000),
                "events[1].status",
                "must be 100..599",
            ),
            (
                Box::new(|e| e.error = "Bad Code".into()),
                "events[1].error",
                "[a-z0-9._-]",
            ),
            (
                Box::new(|e| e.client_ip = "example.com".into()),
                "events[1].client_ip",
                "IPv4",
            ),
            (
                Box::new(|e| e.latency_us = u64::MAX),
                "events[1].latency_us",
                "at most",
            ),
            (
                Box::new(|e| e.request_bytes = u64::MAX),
                "events[1].request_bytes",
                "at most",
            ),
            (
                Box::new(|e| e.config_revision = -1),
                "events[1].config_revision",
                "negative",
            ),
        ];
        for (mutate, field, rule) in cases {
            let e = ingest(|e| mutate(e)).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().contains(rule), "{e}");
        }
    }

    #[test]
    fn batch_level_rules() {
        let many = pb::IngestUsageRequest {
            gateway: "edge-1".into(),
            events: vec![event(); MAX_EVENTS + 1],
            ..Default::default()
        };
        let e = parse_ingest(many, NOW).unwrap_err();
        assert_eq!(e.to_string(), "events: at most 5000 per call");
        let e = parse_ingest(
            pb::IngestUsageRequest {
                gateway: String::new(),
                ..Default::default()
            },
            NOW,
        )
        .unwrap_err();
        assert_eq!(e.field, "gateway");
        // No events is a valid call (it reports drops and keeps the gateway's status fresh).
        let b = parse_ingest(
            pb::IngestUsageRequest {
                gateway: "edge-1".into(),
                events: vec![],
                dropped: 9,
                ..Default::default()
            },
            NOW,
        )
        .unwrap();
        assert_eq!(b.dropped, 9);
    }

    #[test]
    fn client_copied_fields_are_cleaned_not_refused() {
        let b = ingest(|e| {
            e.user_agent = format!("evil\u{1b}[31m{}", "é".repeat(400));
            e.method = "VERYLONGCUSTOMMETHODNAME".into();
            e.request_id = "r\n".repeat(100);
        })
        .unwrap();
        let e = &b.events[1];
        assert!(
            e.user_agent.len() <= USER_AGENT_MAX,
            "{}",
            e.user_agent.len()
        );
        assert!(e.user_agent.starts_with("evil\u{FFFD}[31m"));
        assert!(!e.user_agent.chars().any(char::is_control));
        assert_eq!(e.method, "VERYLONGCUSTOMME");
        assert!(e.request_id.len() <= REQUEST_ID_MAX);
        assert!(!e.request_id.contains('\n'));
        // Truncation never splits a character.
        assert_eq!(sanitize("ééé", 5), "éé");
    }

    #[test]
    fn list_filter_validation_and_cursor() {
        let req = |f: pb::UsageFilter, size: u32, token: &str| pb::ListUsageEventsRequest {
            filter: Some(f),
            page_size: size,
            page_token: token.into(),
        };
        let ok = UsageFilter::try_from(req(pb::UsageFilter::default(), 0, "")).unwrap();
        assert_eq!((ok.limit, ok.after), (DEFAULT_PAGE_SIZE, None));
        assert_eq!(
            UsageFilter::try_from(req(pb::UsageFilter::default(), 1001, ""))
                .unwrap_err()
                .field,
            "page_size"
        );
        for (f, field) in [
            (
                pb::UsageFilter {
                    status: 42,
                    ..Default::default()
                },
                "filter.status",
            ),
            (
                pb::UsageFilter {
                    team_id: "X".into(),
                    ..Default::default()
                },
                "filter.team_id",
            ),
            (
                pb::UsageFilter {
                    token_id: "nope".into(),
                    ..Default::default()
                },
                "filter.token_id",
            ),
            (
                pb::UsageFilter {
                    start_time: Some(to_timestamp(10)),
                    end_time: Some(to_timestamp(10)),
                    ..Default::default()
                },
                "filter.end_time",
            ),
        ] {
            assert_eq!(
                UsageFilter::try_from(req(f, 0, "")).unwrap_err().field,
                field
            );
        }
        let last = StoredUsageEvent {
            id: 17,
            gateway: "g".into(),
            event: parse_ingest(
                pb::IngestUsageRequest {
                    gateway: "g".into(),
                    events: vec![event()],
                    ..Default::default()
                },
                NOW,
            )
            .unwrap()
            .events
            .remove(0),
        };
        let token = next_page_token(&last);
        let f = UsageFilter::try_from(req(pb::UsageFilter::default(), 0, &token)).unwrap();
        assert_eq!(f.after, Some((NOW - 1000, 17)));
        let other = pagination::encode("tokens", &["1".into(), "2".into()]);
        assert_eq!(
            UsageFilter::try_from(req(pb::UsageFilter::default(), 0, &other))
                .unwrap_err()
                .field,
            "page_token"
        );
    }
}
