//! `keygate dashboard`: the admin UI's home page on the terminal.
//!
//! Owns: turning the dashboard flags into a `GetDashboard` request and the answer into
//! `key: value` counts, small tables and JSON. Must not: compute anything the server did not
//! send.

use keygate_proto::v1::{DayCount, GetDashboardRequest, GetDashboardResponse, TeamTokenCount};
use serde_json::{Value, json};

use crate::Context;
use crate::args::DashboardArgs;
use crate::audit::{event_json, event_table};
use crate::client::CliError;
use crate::output::{self, NONE};
use crate::tokens::{token_json, token_table};

pub(crate) async fn run(args: DashboardArgs, ctx: &mut Context<'_>) -> Result<(), CliError> {
    let request = request(&args);
    let conn = ctx.connect().await?;
    let response = conn.call(conn.dashboard().get_dashboard(request)).await?;
    if ctx.json {
        return ctx.print_json(&dashboard_json(&response));
    }
    ctx.out.write_all(dashboard_text(&response).as_bytes())?;
    Ok(())
}

fn request(args: &DashboardArgs) -> GetDashboardRequest {
    GetDashboardRequest {
        team_id: args.team.clone().unwrap_or_default(),
        expiring_within_days: args.expiring_within_days.unwrap_or(0),
        unused_for_days: args.unused_days.unwrap_or(0),
        list_limit: args.limit.unwrap_or(0),
    }
}

/// `97.5%`, or `-` without calls.
fn rate(d: &GetDashboardResponse) -> String {
    if d.calls_today == 0 {
        NONE.to_owned()
    } else {
        format!("{:.1}%", d.success_rate_today * 100.0)
    }
}

fn day(d: &DayCount) -> String {
    output::time_or(d.day.as_ref(), NONE)
        .split('T')
        .next()
        .unwrap_or(NONE)
        .to_owned()
}

/// The counts block, then one section per list (left out when empty).
pub fn dashboard_text(d: &GetDashboardResponse) -> String {
    let mut text = output::fields(&[
        ("active tokens", d.active_tokens.to_string()),
        ("routes", d.routes.to_string()),
        ("teams", d.teams.to_string()),
        ("users", d.users.to_string()),
        ("calls today", d.calls_today.to_string()),
        ("errors today", d.errors_today.to_string()),
        ("success today", rate(d)),
        ("expiring soon", d.expiring_count.to_string()),
        ("unused", d.unused_count.to_string()),
        ("never used", d.never_used_count.to_string()),
    ]);
    let mut section = |title: String, body: String| {
        text.push('\n');
        text.push_str(&title);
        text.push('\n');
        text.push_str(&body);
    };
    for (title, count, tokens) in [
        ("Expiring soon", d.expiring_count, &d.expiring),
        ("Unused", d.unused_count, &d.unused),
        ("Never used", d.never_used_count, &d.never_used),
    ] {
        if !tokens.is_empty() {
            section(
                format!("{title} ({} of {count}):", tokens.len()),
                token_table(tokens),
            );
        }
    }
    if !d.tokens_per_team.is_empty() {
        section(
            "Active tokens per team:".into(),
            output::table(
                &["TEAM", "NAME", "ACTIVE TOKENS"],
                d.tokens_per_team.iter().map(|t| {
                    vec![
                        t.team_id.clone(),
                        output::or_none(&t.team_name),
                        t.active_tokens.to_string(),
                    ]
                }),
            ),
        );
    }
    if !d.tokens_created.is_empty() {
        let total: u64 = d.tokens_created.iter().map(|c| c.count).sum();
        section(
            format!(
                "Tokens created per day ({total} in {} days):",
                d.tokens_created.len()
            ),
            output::table(
                &["DAY", "CREATED"],
                d.tokens_created
                    .iter()
                    .filter(|c| c.count > 0)
                    .map(|c| vec![day(c), c.count.to_string()]),
            ),
        );
    }
    if !d.recent_audit.is_empty() {
        section("Recent audit events:".into(), event_table(&d.recent_audit));
    }
    text
}

fn team_json(t: &TeamTokenCount) -> Value {
    json!({
        "team_id": t.team_id,
        "team_name": t.team_name,
        "active_tokens": t.active_tokens,
    })
}

/// The response as JSON: proto field names, RFC 3339 times.
pub fn dashboard_json(d: &GetDashboardResponse) -> Value {
    let tokens = |l: &[keygate_proto::v1::Token]| l.iter().map(token_json).collect::<Vec<_>>();
    json!({
        "active_tokens": d.active_tokens,
        "routes": d.routes,
        "teams": d.teams,
        "users": d.users,
        "calls_today": d.calls_today,
        "errors_today": d.errors_today,
        "success_rate_today": d.success_rate_today,
        "expiring_count": d.expiring_count,
        "expiring": tokens(&d.expiring),
        "unused_count": d.unused_count,
        "unused": tokens(&d.unused),
        "never_used_count": d.never_used_count,
        "never_used": tokens(&d.never_used),
        "tokens_created": d.tokens_created.iter().map(|c| json!({
            "day": output::time_json(c.day.as_ref()),
            "count": c.count,
        })).collect::<Vec<_>>(),
        "tokens_per_team": d.tokens_per_team.iter().map(team_json).collect::<Vec<_>>(),
        "recent_audit": d.recent_audit.iter().map(event_json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;
    use prost_types::Timestamp;

    fn args(argv: &[&str]) -> DashboardArgs {
        let argv = ["keygate", "dashboard"]
            .into_iter()
            .chain(argv.iter().copied());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Dashboard(a) => a,
            other => panic!("not the dashboard: {other:?}"),
        }
    }

    #[test]
    fn flags_become_the_request() {
        assert_eq!(request(&args(&[])), GetDashboardRequest::default());
        let r = request(&args(&[
            "--team",
            "core",
            "--expiring-within-days",
            "14",
            "--unused-days",
            "60",
            "--limit",
            "5",
        ]));
        assert_eq!(r.team_id, "core");
        assert_eq!(
            (r.expiring_within_days, r.unused_for_days, r.list_limit),
            (14, 60, 5)
        );
    }

    #[test]
    fn text_and_json() {
        let d = GetDashboardResponse {
            active_tokens: 12,
            routes: 3,
            teams: 2,
            users: 5,
            calls_today: 200,
            errors_today: 5,
            success_rate_today: 0.975,
            never_used_count: 4,
            tokens_per_team: vec![TeamTokenCount {
                team_id: "core".into(),
                team_name: "Core".into(),
                active_tokens: 12,
            }],
            tokens_created: vec![
                DayCount {
                    day: Some(Timestamp {
                        seconds: 1_738_281_600,
                        nanos: 0,
                    }),
                    count: 0,
                },
                DayCount {
                    day: Some(Timestamp {
                        seconds: 1_738_368_000,
                        nanos: 0,
                    }),
                    count: 2,
                },
            ],
            ..Default::default()
        };
        let text = dashboard_text(&d);
        assert!(text.contains("active tokens: 12\n"), "{text}");
        assert!(text.contains("success today: 97.5%\n"), "{text}");
        assert!(text.contains("never used:    4\n"), "{text}");
        assert!(
            text.contains("Tokens created per day (2 in 2 days):\n"),
            "{text}"
        );
        assert!(text.contains("2025-02-01  2\n"), "{text}");
        assert!(
            !text.contains("2025-01-31"),
            "empty days are left out: {text}"
        );
        assert!(
            !text.contains("Expiring soon ("),
            "empty lists are left out: {text}"
        );
        let value = dashboard_json(&d);
        assert_eq!(value["tokens_per_team"][0]["active_tokens"], 12);
        assert_eq!(value["tokens_created"][1]["day"], "2025-02-01T00:00:00Z");
        assert_eq!(value["success_rate_today"], 0.975);
        assert_eq!(
            rate(&GetDashboardResponse::default()),
            NONE,
            "no calls: no rate"
        );
    }
}
