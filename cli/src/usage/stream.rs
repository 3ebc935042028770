//! `keygate usage tail|export`: the two server-streaming usage calls.
//!
//! Owns: the tail's one-line event format and NDJSON, stopping a tail on Ctrl-C, and the
//! export request (writing its bytes is `crate::export`'s). Must not: reformat exported bytes.

use keygate_proto::v1::{
    ExportFormat, ExportKind, ExportUsageRequest, TailUsageEventsRequest, UsageEvent, UsageFilter,
    UsageTier,
};

use crate::Context;
use crate::args::{ExportFormatArg, ExportKindArg, UsageExportArgs, UsageTailArgs, UsageTierArg};
use crate::client::CliError;
use crate::export::Destination;
use crate::output::{self, NONE};

use super::{analytics, event_json, latency};

pub fn tail_request(args: &UsageTailArgs) -> TailUsageEventsRequest {
    TailUsageEventsRequest {
        filter: Some(UsageFilter {
            team_id: args.team.clone().unwrap_or_default(),
            token_id: args.token.clone().unwrap_or_default(),
            route: args.route.clone().unwrap_or_default(),
            status: args.status.unwrap_or(0),
            start_time: None,
            end_time: None,
        }),
    }
}

pub(crate) async fn tail(args: UsageTailArgs, ctx: &mut Context<'_>) -> Result<(), CliError> {
    let conn = ctx.connect().await?;
    let mut stream = conn
        .open_stream(conn.usage().tail_usage_events(tail_request(&args)))
        .await?;
    // After the response headers: from here on, new events reach this tail.
    ctx.note("tailing usage events (Ctrl-C to stop)")?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let event = tokio::select! {
            biased;
            _ = &mut ctrl_c => return Ok(()),
            event = conn.next_untimed(&mut stream) => event?,
        };
        let Some(event) = event else {
            return ctx.note("the control plane ended the tail");
        };
        if ctx.json {
            serde_json::to_writer(&mut *ctx.out, &event_json(&event))
                .map_err(std::io::Error::from)?;
            writeln!(ctx.out)?;
        } else {
            writeln!(ctx.out, "{}", tail_line(&event))?;
        }
        // Each event as it arrives, also through a pipe.
        ctx.out.flush()?;
    }
}

/// One tail line: time, status, error, route, token, latency, client IP; `-` for empty
/// fields, columns padded so that consecutive lines align (a token id is 36 characters).
pub fn tail_line(e: &UsageEvent) -> String {
    let line = format!(
        "{}  {:<3}  {:<16}  {:<16}  {:<36}  {:>8}  {}",
        output::time_or(e.time.as_ref(), NONE),
        e.status,
        output::or_none(&e.error),
        output::or_none(&e.route),
        output::or_none(&e.token_id),
        latency(e.latency_us),
        output::or_none(&e.client_ip),
    );
    line.trim_end().to_owned()
}

pub fn export_request(args: &UsageExportArgs) -> Result<ExportUsageRequest, CliError> {
    let kind = match args.kind {
        ExportKindArg::Rollups => ExportKind::Rollups,
        ExportKindArg::Events => ExportKind::Events,
    };
    let format = match args.format {
        ExportFormatArg::Ndjson => ExportFormat::Ndjson,
        ExportFormatArg::Csv => ExportFormat::Csv,
    };
    let tier = match (args.tier, args.kind) {
        (None, _) => UsageTier::Unspecified,
        (Some(_), ExportKindArg::Events) => {
            return Err(CliError::usage(
                "--tier applies to --kind rollups only (events are not rolled up)",
            ));
        }
        (Some(UsageTierArg::Minute), _) => UsageTier::Minute,
        (Some(UsageTierArg::Hour), _) => UsageTier::Hour,
        (Some(UsageTierArg::Day), _) => UsageTier::Day,
    };
    Ok(ExportUsageRequest {
        query: Some(analytics::query(&args.query)),
        kind: kind as i32,
        format: format as i32,
        tier: tier as i32,
    })
}

pub(crate) async fn export(args: UsageExportArgs, ctx: &mut Context<'_>) -> Result<(), CliError> {
    let request = export_request(&args)?;
    let destination = Destination::open(args.output.as_deref())?;
    let conn = ctx.connect().await?;
    let stream = conn.open_stream(conn.usage().export_usage(request)).await?;
    destination.write(&conn, stream, ctx).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command, UsageCommand};
    use clap::Parser;
    use prost_types::Timestamp;

    fn parse(args: &[&str]) -> UsageCommand {
        let argv = ["keygate", "usage"].into_iter().chain(args.iter().copied());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Usage(command) => command,
            other => panic!("not a usage command: {other:?}"),
        }
    }

    fn export_args(args: &[&str]) -> UsageExportArgs {
        let argv: Vec<&str> = std::iter::once("export")
            .chain(args.iter().copied())
            .collect();
        match parse(&argv) {
            UsageCommand::Export(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tail_lines_align_and_mark_empty_fields() {
        let event = UsageEvent {
            time: Some(Timestamp {
                seconds: 1_738_324_800,
                nanos: 0,
            }),
            status: 502,
            error: "upstream_error".into(),
            route: "billing".into(),
            token_id: "tok_01a24e93a97475889ad7b7f18e5985eb".into(),
            latency_us: 12_345,
            client_ip: "192.0.2.1".into(),
            ..Default::default()
        };
        assert_eq!(
            tail_line(&event),
            "2025-01-31T12:00:00Z  502  upstream_error    billing           tok_01a24e93a97475889ad7b7f18e5985eb    12.3ms  192.0.2.1"
        );
        let anonymous = UsageEvent {
            status: 401,
            error: "missing_key".into(),
            latency_us: 80,
            ..event
        };
        let line = tail_line(&UsageEvent {
            route: String::new(),
            token_id: String::new(),
            client_ip: String::new(),
            ..anonymous
        });
        assert_eq!(
            line,
            "2025-01-31T12:00:00Z  401  missing_key       -                 -                                         80us  -"
        );
    }

    #[test]
    fn tail_filters() {
        let UsageCommand::Tail(args) = parse(&["tail", "--team", "core", "--status", "429"]) else {
            panic!()
        };
        let filter = tail_request(&args).filter.unwrap();
        assert_eq!((filter.team_id.as_str(), filter.status), ("core", 429));
        assert_eq!((filter.start_time, filter.end_time), (None, None));
    }

    #[test]
    fn export_requests() {
        let r = export_request(&export_args(&[])).unwrap();
        assert_eq!(
            (r.kind, r.format, r.tier),
            (
                ExportKind::Rollups as i32,
                ExportFormat::Ndjson as i32,
                UsageTier::Unspecified as i32
            )
        );
        let r = export_request(&export_args(&[
            "--kind", "rollups", "--format", "csv", "--tier", "day", "--team", "core", "--since",
            "30d",
        ]))
        .unwrap();
        assert_eq!(
            (r.kind, r.format, r.tier),
            (
                ExportKind::Rollups as i32,
                ExportFormat::Csv as i32,
                UsageTier::Day as i32
            )
        );
        let q = r.query.unwrap();
        assert_eq!(q.team_id, "core");
        assert!(q.start_time.is_some());

        let args = export_args(&["--kind", "events", "--output", "usage.ndjson"]);
        assert_eq!(
            args.output.as_deref(),
            Some(std::path::Path::new("usage.ndjson"))
        );
        assert_eq!(
            export_request(&args).unwrap().kind,
            ExportKind::Events as i32
        );
        let err =
            export_request(&export_args(&["--kind", "events", "--tier", "hour"])).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--tier"), "{err}");
    }
}
