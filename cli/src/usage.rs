//! `keygate usage ...`: the requests gateways answered (usage events), each gateway's
//! totals, and the analytics views over the rollups (`analytics`: summary, top, token, route;
//! `stream`: tail, export).
//!
//! Owns: turning usage filters into `UsageService` requests, paging up to `--limit`, the event
//! and gateway table rows and JSON shapes. Must not: compute statistics (the server merges the
//! rollups; the CLI formats its answers).

pub mod analytics;
pub mod stream;

use keygate_proto::v1::{
    Gateway, ListGatewaysRequest, ListUsageEventsRequest, UsageEvent, UsageFilter,
};
use serde_json::{Value, json};

use crate::Context;
use crate::args::{UsageCommand, UsageListArgs};
use crate::client::CliError;
use crate::output::{self, NONE};

/// The server's largest page.
const MAX_PAGE: u32 = 1000;

const EVENT_HEADER: [&str; 10] = [
    "TIME", "GATEWAY", "TEAM", "TOKEN", "ROUTE", "METHOD", "STATUS", "ERROR", "LATENCY", "CLIENT",
];

const GATEWAY_HEADER: [&str; 6] = [
    "NAME",
    "LAST SEEN",
    "FIRST SEEN",
    "EVENTS",
    "DROPPED",
    "REPORTED BY",
];

pub(crate) async fn run(command: UsageCommand, ctx: &mut Context<'_>) -> Result<(), CliError> {
    match command {
        UsageCommand::List(args) => list(args, ctx).await,
        UsageCommand::Summary(args) => analytics::summary(args, ctx).await,
        UsageCommand::Top(args) => analytics::top(args, ctx).await,
        UsageCommand::Token(args) => analytics::token(args, ctx).await,
        UsageCommand::Route(args) => analytics::route(args, ctx).await,
        UsageCommand::Tail(args) => stream::tail(args, ctx).await,
        UsageCommand::Export(args) => stream::export(args, ctx).await,
        UsageCommand::Gateways => {
            let conn = ctx.connect().await?;
            let response = conn
                .call(conn.usage().list_gateways(ListGatewaysRequest {}))
                .await?;
            if ctx.json {
                let gateways: Vec<Value> = response.gateways.iter().map(gateway_json).collect();
                return ctx.print_json(&json!({ "gateways": gateways }));
            }
            if response.gateways.is_empty() {
                ctx.note("no gateway has reported usage")?;
                return Ok(());
            }
            ctx.out
                .write_all(gateway_table(&response.gateways).as_bytes())?;
            Ok(())
        }
    }
}

/// The request filter of `usage list`.
fn filter(args: &UsageListArgs) -> UsageFilter {
    UsageFilter {
        team_id: args.team.clone().unwrap_or_default(),
        token_id: args.token.clone().unwrap_or_default(),
        route: args.route.clone().unwrap_or_default(),
        status: args.status.unwrap_or(0),
        start_time: args.since,
        end_time: args.until,
    }
}

async fn list(args: UsageListArgs, ctx: &mut Context<'_>) -> Result<(), CliError> {
    let mut request = ListUsageEventsRequest {
        filter: Some(filter(&args)),
        page_size: 0,
        page_token: args.page_token.clone().unwrap_or_default(),
    };
    let conn = ctx.connect().await?;
    let mut events: Vec<UsageEvent> = Vec::new();
    let next_page_token = loop {
        let remaining = args.limit - events.len() as u32;
        request.page_size = remaining.min(MAX_PAGE);
        let page = conn
            .call(conn.usage().list_usage_events(request.clone()))
            .await?;
        events.extend(page.events);
        if page.next_page_token.is_empty() || events.len() as u32 >= args.limit {
            break page.next_page_token;
        }
        request.page_token = page.next_page_token;
    };

    if ctx.json {
        let value = json!({
            "events": events.iter().map(event_json).collect::<Vec<_>>(),
            "next_page_token": next_page_token,
        });
        return ctx.print_json(&value);
    }
    if events.is_empty() {
        ctx.note("no usage events found")?;
        return Ok(());
    }
    ctx.out.write_all(event_table(&events).as_bytes())?;
    if next_page_token.is_empty() {
        ctx.note(format_args!("{} events", events.len()))
    } else {
        ctx.note(format_args!(
            "{} events; more match: raise --limit, or continue with --page-token {next_page_token}",
            events.len()
        ))
    }
}

/// `850us`, `12.5ms`, `3.2s`.
pub fn latency(us: u64) -> String {
    if us < 1000 {
        format!("{us}us")
    } else if us < 10_000_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{:.1}s", us as f64 / 1_000_000.0)
    }
}

/// The usage table: one row per event.
pub fn event_table(events: &[UsageEvent]) -> String {
    output::table(
        &EVENT_HEADER,
        events.iter().map(|e| {
            vec![
                output::time_or(e.time.as_ref(), NONE),
                output::or_none(&e.gateway),
                output::or_none(&e.team_id),
                output::or_none(&e.token_id),
                output::or_none(&e.route),
                output::or_none(&e.method),
                e.status.to_string(),
                output::or_none(&e.error),
                latency(e.latency_us),
                output::or_none(&e.client_ip),
            ]
        }),
    )
}

/// A usage event as JSON: proto field names, `time` as RFC 3339 (`null` when absent).
pub fn event_json(e: &UsageEvent) -> Value {
    json!({
        "gateway": e.gateway,
        "event_id": e.event_id,
        "time": output::time_json(e.time.as_ref()),
        "token_hash": e.token_hash,
        "token_id": e.token_id,
        "team_id": e.team_id,
        "route": e.route,
        "method": e.method,
        "status": e.status,
        "error": e.error,
        "latency_us": e.latency_us,
        "request_bytes": e.request_bytes,
        "response_bytes": e.response_bytes,
        "client_ip": e.client_ip,
        "user_agent": e.user_agent,
        "config_revision": e.config_revision,
        "request_id": e.request_id,
    })
}

/// The gateway table: one row per gateway.
pub fn gateway_table(gateways: &[Gateway]) -> String {
    output::table(
        &GATEWAY_HEADER,
        gateways.iter().map(|g| {
            vec![
                g.name.clone(),
                output::time_or(g.last_seen_at.as_ref(), NONE),
                output::time_or(g.first_seen_at.as_ref(), NONE),
                g.events_total.to_string(),
                g.dropped_total.to_string(),
                output::or_none(&g.reported_by),
            ]
        }),
    )
}

/// A gateway as JSON: proto field names, RFC 3339 times.
pub fn gateway_json(g: &Gateway) -> Value {
    json!({
        "name": g.name,
        "reported_by": g.reported_by,
        "first_seen_at": output::time_json(g.first_seen_at.as_ref()),
        "last_seen_at": output::time_json(g.last_seen_at.as_ref()),
        "events_total": g.events_total,
        "dropped_total": g.dropped_total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command, parse_since_at};
    use clap::Parser;
    use clap::error::ErrorKind;
    use prost_types::Timestamp;
    use std::time::{Duration, SystemTime};

    const T0: i64 = 1_738_324_800; // 2025-01-31T12:00:00Z

    fn sample() -> UsageEvent {
        UsageEvent {
            event_id: "e-1".into(),
            time: Some(Timestamp {
                seconds: T0,
                nanos: 250_000_000,
            }),
            token_hash: "ab".repeat(32),
            token_id: "tok_1".into(),
            team_id: "core".into(),
            route: "billing".into(),
            method: "POST".into(),
            status: 502,
            error: "upstream_error".into(),
            latency_us: 12_345,
            request_bytes: 10,
            response_bytes: 20,
            client_ip: "192.0.2.1".into(),
            user_agent: "n8n".into(),
            config_revision: 7,
            request_id: "req-1".into(),
            gateway: "edge-1".into(),
        }
    }

    fn parse(args: &[&str]) -> Result<UsageCommand, clap::Error> {
        let argv = ["keygate", "usage"].into_iter().chain(args.iter().copied());
        match Cli::try_parse_from(argv)?.command {
            Command::Usage(command) => Ok(command),
            other => panic!("not a usage command: {other:?}"),
        }
    }

    #[test]
    fn table_and_json() {
        assert_eq!(
            event_table(&[sample()]),
            "TIME                  GATEWAY  TEAM  TOKEN  ROUTE    METHOD  STATUS  ERROR           LATENCY  CLIENT\n\
             2025-01-31T12:00:00Z  edge-1   core  tok_1  billing  POST    502     upstream_error  12.3ms   192.0.2.1\n"
        );
        let mut anonymous = sample();
        anonymous.token_id.clear();
        anonymous.team_id.clear();
        anonymous.error.clear();
        let row = event_table(&[anonymous]);
        assert!(
            row.lines()
                .nth(1)
                .unwrap()
                .contains("edge-1   -     -      billing"),
            "{row}"
        );
        let value = event_json(&sample());
        assert_eq!(value["time"], "2025-01-31T12:00:00Z");
        assert_eq!(value["status"], 502);
        assert_eq!(value["gateway"], "edge-1");
        assert_eq!(
            (latency(850), latency(1_000), latency(25_000_000)),
            ("850us".into(), "1.0ms".into(), "25.0s".into())
        );

        let g = Gateway {
            name: "edge-1".into(),
            reported_by: "service_account:sa_1".into(),
            first_seen_at: Some(Timestamp {
                seconds: T0,
                nanos: 0,
            }),
            last_seen_at: Some(Timestamp {
                seconds: T0 + 60,
                nanos: 0,
            }),
            events_total: 12,
            dropped_total: 3,
            ..Default::default()
        };
        assert_eq!(
            gateway_table(std::slice::from_ref(&g)),
            "NAME    LAST SEEN             FIRST SEEN            EVENTS  DROPPED  REPORTED BY\n\
             edge-1  2025-01-31T12:01:00Z  2025-01-31T12:00:00Z  12      3        service_account:sa_1\n"
        );
        assert_eq!(gateway_json(&g)["dropped_total"], 3);
    }

    #[test]
    fn parsing_and_filters() {
        let UsageCommand::List(args) = parse(&[
            "list",
            "--team",
            "core",
            "--token",
            "tok_1",
            "--route",
            "billing",
            "--status",
            "502",
            "--since",
            "2025-01-31T00:00:00Z",
            "--limit",
            "2500",
        ])
        .unwrap() else {
            panic!()
        };
        let f = filter(&args);
        assert_eq!(
            (
                f.team_id.as_str(),
                f.token_id.as_str(),
                f.route.as_str(),
                f.status
            ),
            ("core", "tok_1", "billing", 502)
        );
        assert_eq!(f.start_time.map(|t| t.seconds), Some(T0 - 12 * 3600));
        assert_eq!(f.end_time, None);
        assert_eq!(args.limit, 2500);
        let UsageCommand::List(args) = parse(&["list"]).unwrap() else {
            panic!()
        };
        assert_eq!((args.limit, filter(&args).status), (50, 0));
        assert!(matches!(
            parse(&["gateways"]).unwrap(),
            UsageCommand::Gateways
        ));
        let kind = |args: &[&str]| parse(args).unwrap_err().kind();
        assert_eq!(
            kind(&["list", "--status", "99"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(kind(&["list", "--limit", "0"]), ErrorKind::ValueValidation);
        assert_eq!(
            kind(&["list", "--since", "yesterday"]),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn since_accepts_a_duration_ago() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(T0 as u64);
        assert_eq!(parse_since_at("1h", now).unwrap().seconds, T0 - 3600);
        assert_eq!(parse_since_at("7d", now).unwrap().seconds, T0 - 7 * 86_400);
        assert_eq!(
            parse_since_at("2025-01-31T12:00:00Z", now).unwrap().seconds,
            T0
        );
        assert!(parse_since_at("soon", now).is_err());
    }
}
