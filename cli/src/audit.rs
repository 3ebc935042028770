//! `keygate audit ...`: list, export and verify the hash-chained audit log.
//!
//! Owns: turning audit filters into `AuditService` requests, the event's table row and JSON
//! shape, and turning a broken chain into a failing exit code (`export` writes the stream).
//! Must not: reformat exported bytes or check hashes itself (the server recomputes the chain).

use keygate_proto::v1::{
    AuditEvent, AuditFilter, ExportAuditEventsRequest, ExportFormat, ListAuditEventsRequest,
    VerifyAuditChainRequest, VerifyAuditChainResponse,
};
use serde_json::{Value, json};

use crate::Context;
use crate::args::{AuditCommand, AuditExportArgs, AuditFilterArgs, AuditListArgs, ExportFormatArg};
use crate::client::CliError;
use crate::export;
use crate::output::{self, NONE};

const HEADER: [&str; 7] = [
    "SEQ",
    "TIME",
    "ACTOR",
    "ACTION",
    "ENTITY",
    "TEAM",
    "REQUEST ID",
];

pub(crate) async fn run(command: AuditCommand, ctx: &mut Context<'_>) -> Result<(), CliError> {
    match command {
        AuditCommand::List(args) => list(args, ctx).await,
        AuditCommand::Export(args) => export(args, ctx).await,
        AuditCommand::Verify => {
            let conn = ctx.connect().await?;
            let response = conn
                .call(conn.audit().verify_audit_chain(VerifyAuditChainRequest {}))
                .await?;
            if ctx.json {
                ctx.print_json(&verify_json(&response))?;
            } else {
                writeln!(ctx.out, "{}", verify_summary(&response))?;
            }
            if response.ok {
                Ok(())
            } else {
                Err(CliError::Failed(format!(
                    "audit chain verification failed at seq {}",
                    response.first_bad_seq
                )))
            }
        }
    }
}

fn filter(args: &AuditFilterArgs) -> AuditFilter {
    AuditFilter {
        actor_id: args.actor.clone().unwrap_or_default(),
        action: args.action.clone().unwrap_or_default(),
        entity_type: args.entity_type.clone().unwrap_or_default(),
        entity_id: args.entity_id.clone().unwrap_or_default(),
        team_id: args.team.clone().unwrap_or_default(),
        start_time: args.since,
        end_time: args.until,
    }
}

async fn list(args: AuditListArgs, ctx: &mut Context<'_>) -> Result<(), CliError> {
    let mut request = ListAuditEventsRequest {
        filter: Some(filter(&args.filter)),
        page_size: args.page.page_size.unwrap_or(0),
        page_token: args.page.page_token.clone().unwrap_or_default(),
    };
    let conn = ctx.connect().await?;
    let mut events = Vec::new();
    let (next_page_token, total) = loop {
        let page = conn
            .call(conn.audit().list_audit_events(request.clone()))
            .await?;
        events.extend(page.events);
        if !args.page.all || page.next_page_token.is_empty() {
            break (page.next_page_token, page.total_size);
        }
        request.page_token = page.next_page_token;
    };

    if ctx.json {
        let value = json!({
            "events": events.iter().map(event_json).collect::<Vec<_>>(),
            "next_page_token": next_page_token,
            "total_size": total,
        });
        return ctx.print_json(&value);
    }
    if !events.is_empty() {
        ctx.out.write_all(event_table(&events).as_bytes())?;
    }
    ctx.note(format_args!("{} of {total} matching events", events.len()))?;
    ctx.next_page_hint(&next_page_token)
}

async fn export(args: AuditExportArgs, ctx: &mut Context<'_>) -> Result<(), CliError> {
    let format = match args.format {
        ExportFormatArg::Ndjson => ExportFormat::Ndjson,
        ExportFormatArg::Csv => ExportFormat::Csv,
    };
    let request = ExportAuditEventsRequest {
        filter: Some(filter(&args.filter)),
        format: format as i32,
    };
    let destination = export::Destination::open(args.output.as_deref())?;
    let conn = ctx.connect().await?;
    let stream = conn
        .open_stream(conn.audit().export_audit_events(request))
        .await?;
    destination.write(&conn, stream, ctx).await
}

/// `key:mk_1` style actor, preferring the display name when there is one.
fn actor_label(e: &AuditEvent) -> String {
    if !e.actor_name.is_empty() {
        e.actor_name.clone()
    } else if e.actor_type.is_empty() {
        output::or_none(&e.actor_id)
    } else {
        format!("{}:{}", e.actor_type, e.actor_id)
    }
}

/// The audit table: one row per event.
pub fn event_table(events: &[AuditEvent]) -> String {
    output::table(
        &HEADER,
        events.iter().map(|e| {
            vec![
                e.seq.to_string(),
                output::time_or(e.time.as_ref(), NONE),
                actor_label(e),
                e.action.clone(),
                format!("{} {}", e.entity_type, e.entity_id)
                    .trim()
                    .to_owned(),
                output::or_none(&e.team_id),
                output::or_none(&e.request_id),
            ]
        }),
    )
}

/// An audit event as JSON: proto field names, `time` as RFC 3339 (`null` when absent),
/// `diff_json` as the string the server sent.
pub fn event_json(e: &AuditEvent) -> Value {
    json!({
        "seq": e.seq,
        "time": output::time_json(e.time.as_ref()),
        "actor_type": e.actor_type,
        "actor_id": e.actor_id,
        "actor_name": e.actor_name,
        "action": e.action,
        "entity_type": e.entity_type,
        "entity_id": e.entity_id,
        "team_id": e.team_id,
        "diff_json": e.diff_json,
        "source_ip": e.source_ip,
        "user_agent": e.user_agent,
        "request_id": e.request_id,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    })
}

fn verify_json(r: &VerifyAuditChainResponse) -> Value {
    json!({
        "ok": r.ok,
        "events_checked": r.events_checked,
        "first_bad_seq": r.first_bad_seq,
        "message": r.message,
    })
}

fn verify_summary(r: &VerifyAuditChainResponse) -> String {
    if r.ok {
        format!("audit chain ok: {} events checked", r.events_checked)
    } else {
        let detail = if r.message.is_empty() {
            String::new()
        } else {
            format!(": {}", r.message)
        };
        format!(
            "audit chain broken at seq {}{detail} ({} events checked)",
            r.first_bad_seq, r.events_checked
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::Timestamp;

    fn sample() -> AuditEvent {
        AuditEvent {
            seq: 7,
            time: Some(Timestamp {
                seconds: 1_738_324_800,
                nanos: 120_000_000,
            }),
            actor_type: "key".into(),
            actor_id: "mk_1".into(),
            actor_name: String::new(),
            action: "token.create".into(),
            entity_type: "token".into(),
            entity_id: "tok_1".into(),
            team_id: "core".into(),
            diff_json: r#"{"name":[null,"ci"]}"#.into(),
            source_ip: "127.0.0.1".into(),
            user_agent: "keygate-cli/0.1.0".into(),
            request_id: "req-1".into(),
            prev_hash: "0".repeat(64),
            hash: "a".repeat(64),
        }
    }

    #[test]
    fn table_and_json() {
        let text = event_table(&[sample()]);
        assert_eq!(
            text.lines().nth(1).unwrap(),
            "7    2025-01-31T12:00:00Z  key:mk_1  token.create  token tok_1  core  req-1"
        );
        let value = event_json(&sample());
        assert_eq!(value["time"], "2025-01-31T12:00:00Z");
        assert_eq!(value["seq"], 7);
        assert_eq!(value["diff_json"], r#"{"name":[null,"ci"]}"#);

        let mut timeless = sample();
        timeless.time = None;
        assert_eq!(event_json(&timeless)["time"], Value::Null);
    }

    #[test]
    fn filters() {
        let args = AuditFilterArgs {
            actor: Some("mk_1".into()),
            action: None,
            entity_type: Some("route".into()),
            entity_id: None,
            team: None,
            since: Some(Timestamp {
                seconds: 10,
                nanos: 0,
            }),
            until: None,
        };
        let f = filter(&args);
        assert_eq!(f.actor_id, "mk_1");
        assert_eq!(f.entity_type, "route");
        assert_eq!(f.action, "");
        assert_eq!(f.start_time.map(|t| t.seconds), Some(10));
        assert_eq!(f.end_time, None);
    }

    #[test]
    fn verify_messages() {
        let ok = VerifyAuditChainResponse {
            ok: true,
            events_checked: 12,
            first_bad_seq: 0,
            message: String::new(),
        };
        assert_eq!(verify_summary(&ok), "audit chain ok: 12 events checked");
        let bad = VerifyAuditChainResponse {
            ok: false,
            events_checked: 5,
            first_bad_seq: 5,
            message: "hash mismatch".into(),
        };
        assert_eq!(
            verify_summary(&bad),
            "audit chain broken at seq 5: hash mismatch (5 events checked)"
        );
        assert_eq!(verify_json(&bad)["first_bad_seq"], 5);
    }
}
