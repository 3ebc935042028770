//! `keygate alert ...`: per-team alert rules (a condition and a signed webhook) and their
//! delivery attempts, through `AlertService`.
//!
//! Owns: turning `--when KIND` and the parameter flags into an `AlertCondition` (and merging
//! parameters into a rule's current condition on `update`), the rule and delivery table rows,
//! `key: value` blocks and JSON shapes, and showing a webhook secret once. Must not: validate
//! ranges the server validates (days, percentages, URLs) or evaluate conditions.

use keygate_proto::v1::alert_condition::Kind;
use keygate_proto::v1::{
    AlertCondition, AlertDelivery, AlertDeliveryStatus, AlertRule, CreateAlertRuleRequest,
    DeleteAlertRuleRequest, GatewayDroppingCondition, GatewaySilentCondition, GetAlertRuleRequest,
    ListAlertDeliveriesRequest, ListAlertRulesRequest, RouteErrorRateCondition,
    RouteLatencyCondition, SyncLagCondition, TestWebhookRequest, TokenExpiringCondition,
    TokenTrafficSpikeCondition, TokenUnusedCondition, UpdateAlertRuleRequest,
};
use serde_json::{Value, json};

use crate::Context;
use crate::args::{
    AlertCommand, AlertConditionArgs, AlertCreateArgs, AlertDeliveriesArgs, AlertKindArg,
    AlertListArgs, AlertUpdateArgs, DeliveryStatusArg,
};
use crate::client::CliError;
use crate::output::{self, NONE};

/// Printed on stderr right before a webhook secret.
const SHOWN_ONCE: &str = "This is the webhook signing secret. It is shown once: store it now, \
it cannot be read again (`keygate alert update ID --rotate-secret` issues a new one).";

const RULE_HEADER: [&str; 6] = ["ID", "TEAM", "NAME", "ENABLED", "CONDITION", "WEBHOOK"];

const DELIVERY_HEADER: [&str; 9] = [
    "TIME", "ID", "RULE", "KIND", "SUBJECT", "ATTEMPT", "STATUS", "HTTP", "ERROR",
];

pub(crate) async fn run(command: AlertCommand, ctx: &mut Context<'_>) -> Result<(), CliError> {
    match command {
        AlertCommand::List(args) => list(args, ctx).await,
        AlertCommand::Get { id } => {
            let conn = ctx.connect().await?;
            let response = conn
                .call(conn.alerts().get_alert_rule(GetAlertRuleRequest { id }))
                .await?;
            show_rule(ctx, response.rule)
        }
        AlertCommand::Create(args) => create(args, ctx).await,
        AlertCommand::Update(args) => update(args, ctx).await,
        AlertCommand::Delete { id, yes } => {
            ctx.confirm(&format!("delete alert rule {id}"), yes.yes)?;
            let conn = ctx.connect().await?;
            conn.call(
                conn.alerts()
                    .delete_alert_rule(DeleteAlertRuleRequest { id: id.clone() }),
            )
            .await?;
            if ctx.json {
                return ctx.print_json(&json!({}));
            }
            writeln!(ctx.out, "deleted alert rule {id}")?;
            Ok(())
        }
        AlertCommand::Deliveries(args) => deliveries(args, ctx).await,
        AlertCommand::Test { id } => {
            let conn = ctx.connect().await?;
            let response = conn
                .call(
                    conn.alerts()
                        .test_webhook(TestWebhookRequest { rule_id: id }),
                )
                .await?;
            let delivery = response
                .delivery
                .ok_or_else(|| CliError::missing("delivery"))?;
            if ctx.json {
                ctx.print_json(&json!({ "delivery": delivery_json(&delivery) }))?;
            } else {
                ctx.out
                    .write_all(output::fields(&delivery_fields(&delivery)).as_bytes())?;
            }
            if delivery.status == AlertDeliveryStatus::Succeeded as i32 {
                Ok(())
            } else {
                Err(CliError::Failed(format!(
                    "webhook test failed: {}",
                    delivery_outcome(&delivery)
                )))
            }
        }
    }
}

async fn list(args: AlertListArgs, ctx: &mut Context<'_>) -> Result<(), CliError> {
    let mut request = ListAlertRulesRequest {
        team_id: args.team.clone().unwrap_or_default(),
        page_size: args.page.page_size.unwrap_or(0),
        page_token: args.page.page_token.clone().unwrap_or_default(),
    };
    let conn = ctx.connect().await?;
    let mut rules = Vec::new();
    let next_page_token = loop {
        let page = conn
            .call(conn.alerts().list_alert_rules(request.clone()))
            .await?;
        rules.extend(page.rules);
        if !args.page.all || page.next_page_token.is_empty() {
            break page.next_page_token;
        }
        request.page_token = page.next_page_token;
    };
    if ctx.json {
        let rules: Vec<Value> = rules.iter().map(rule_json).collect();
        return ctx.print_json(&json!({ "rules": rules, "next_page_token": next_page_token }));
    }
    if rules.is_empty() {
        ctx.note("no alert rules")?;
    } else {
        ctx.out.write_all(rule_table(&rules).as_bytes())?;
    }
    ctx.next_page_hint(&next_page_token)
}

async fn create(args: AlertCreateArgs, ctx: &mut Context<'_>) -> Result<(), CliError> {
    let Some(kind) = args.condition.when else {
        return Err(CliError::usage(
            "--when KIND is required: what fires the alert (e.g. --when token-expiring --days 14)",
        ));
    };
    let condition = build_condition(kind, &args.condition, None)?;
    let request = CreateAlertRuleRequest {
        team_id: args.team,
        name: args.name,
        enabled: args.disabled.then_some(false),
        webhook_url: args.webhook,
        condition: Some(AlertCondition {
            kind: Some(condition),
        }),
    };
    let conn = ctx.connect().await?;
    let response = conn.call(conn.alerts().create_alert_rule(request)).await?;
    let rule = response.rule.ok_or_else(|| CliError::missing("rule"))?;
    show_secret(ctx, &rule, &response.webhook_secret, args.quiet)
}

async fn update(args: AlertUpdateArgs, ctx: &mut Context<'_>) -> Result<(), CliError> {
    let given = args.condition.given();
    let conn;
    let condition = match args.condition.when {
        Some(kind) => {
            let condition = build_condition(kind, &args.condition, None)?;
            conn = ctx.connect().await?;
            Some(condition)
        }
        None if given.is_empty() => {
            conn = ctx.connect().await?;
            None
        }
        None => {
            // Parameters alone change the current condition's.
            conn = ctx.connect().await?;
            let current = conn
                .call(conn.alerts().get_alert_rule(GetAlertRuleRequest {
                    id: args.id.clone(),
                }))
                .await?
                .rule
                .and_then(|r| r.condition)
                .and_then(|c| c.kind)
                .ok_or_else(|| CliError::missing("rule.condition"))?;
            Some(build_condition(
                kind_of(&current),
                &args.condition,
                Some(&current),
            )?)
        }
    };
    let request = UpdateAlertRuleRequest {
        id: args.id,
        name: args.name,
        enabled: args.enabled,
        webhook_url: args.webhook,
        condition: condition.map(|kind| AlertCondition { kind: Some(kind) }),
        rotate_secret: args.rotate_secret,
    };
    let response = conn.call(conn.alerts().update_alert_rule(request)).await?;
    let rule = response.rule.ok_or_else(|| CliError::missing("rule"))?;
    if args.rotate_secret {
        show_secret(ctx, &rule, &response.webhook_secret, args.quiet)
    } else {
        show_rule(ctx, Some(rule))
    }
}

async fn deliveries(args: AlertDeliveriesArgs, ctx: &mut Context<'_>) -> Result<(), CliError> {
    let status = match args.status {
        None => AlertDeliveryStatus::Unspecified,
        Some(DeliveryStatusArg::Succeeded) => AlertDeliveryStatus::Succeeded,
        Some(DeliveryStatusArg::Retrying) => AlertDeliveryStatus::Retrying,
        Some(DeliveryStatusArg::Failed) => AlertDeliveryStatus::Failed,
    };
    let mut request = ListAlertDeliveriesRequest {
        rule_id: args.rule.clone().unwrap_or_default(),
        team_id: args.team.clone().unwrap_or_default(),
        status: status as i32,
        page_size: args.page.page_size.unwrap_or(0),
        page_token: args.page.page_token.clone().unwrap_or_default(),
    };
    let conn = ctx.connect().await?;
    let mut deliveries = Vec::new();
    let next_page_token = loop {
        let page = conn
            .call(conn.alerts().list_alert_deliveries(request.clone()))
            .await?;
        deliveries.extend(page.deliveries);
        if !args.page.all || page.next_page_token.is_empty() {
            break page.next_page_token;
        }
        request.page_token = page.next_page_token;
    };
    if ctx.json {
        let deliveries: Vec<Value> = deliveries.iter().map(delivery_json).collect();
        return ctx
            .print_json(&json!({ "deliveries": deliveries, "next_page_token": next_page_token }));
    }
    if deliveries.is_empty() {
        ctx.note("no deliveries")?;
    } else {
        ctx.out.write_all(delivery_table(&deliveries).as_bytes())?;
    }
    ctx.next_page_hint(&next_page_token)
}

fn show_rule(ctx: &mut Context<'_>, rule: Option<AlertRule>) -> Result<(), CliError> {
    let rule = rule.ok_or_else(|| CliError::missing("rule"))?;
    if ctx.json {
        return ctx.print_json(&json!({ "rule": rule_json(&rule) }));
    }
    ctx.out
        .write_all(output::fields(&rule_fields(&rule)).as_bytes())?;
    Ok(())
}

/// The rule, then the secret alone on its own line, the shown-once notice on stderr (as
/// `token create` does); `--quiet`: the secret only.
fn show_secret(
    ctx: &mut Context<'_>,
    rule: &AlertRule,
    secret: &str,
    quiet: bool,
) -> Result<(), CliError> {
    if secret.is_empty() {
        return Err(CliError::missing("webhook_secret"));
    }
    if quiet {
        writeln!(ctx.out, "{secret}")?;
        return Ok(());
    }
    if ctx.json {
        return ctx.print_json(&json!({ "rule": rule_json(rule), "webhook_secret": secret }));
    }
    ctx.out
        .write_all(output::fields(&rule_fields(rule)).as_bytes())?;
    ctx.note(format_args!("\n{SHOWN_ONCE}"))?;
    writeln!(ctx.out, "{secret}")?;
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Conditions

fn kind_of(kind: &Kind) -> AlertKindArg {
    match kind {
        Kind::TokenExpiring(_) => AlertKindArg::TokenExpiring,
        Kind::TokenUnused(_) => AlertKindArg::TokenUnused,
        Kind::RouteErrorRate(_) => AlertKindArg::RouteErrorRate,
        Kind::RouteLatency(_) => AlertKindArg::RouteLatency,
        Kind::TokenTrafficSpike(_) => AlertKindArg::TokenTrafficSpike,
        Kind::SyncLag(_) => AlertKindArg::SyncLag,
        Kind::GatewaySilent(_) => AlertKindArg::GatewaySilent,
        Kind::GatewayDropping(_) => AlertKindArg::GatewayDropping,
    }
}

/// The kind's name on the command line (`token-expiring`).
fn flag_name(kind: AlertKindArg) -> String {
    clap::ValueEnum::to_possible_value(&kind)
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

/// The parameter flags a kind takes.
fn parameters(kind: AlertKindArg) -> &'static [&'static str] {
    match kind {
        AlertKindArg::TokenExpiring => &["--days"],
        AlertKindArg::TokenUnused => &["--days", "--include-never-used"],
        AlertKindArg::RouteErrorRate => &["--route", "--percent", "--window", "--min-calls"],
        AlertKindArg::RouteLatency => &["--route", "--p99", "--window", "--min-calls"],
        AlertKindArg::TokenTrafficSpike => &["--factor", "--min-calls"],
        AlertKindArg::SyncLag => &["--lag"],
        AlertKindArg::GatewaySilent => &["--silent-for"],
        AlertKindArg::GatewayDropping => &[],
    }
}

/// The condition of `kind` from the parameter flags, each missing one taken from `current`
/// (the rule's condition on `update`) when it is of the same kind. A flag the kind does not
/// take, or a required one missing, is a usage error.
pub fn build_condition(
    kind: AlertKindArg,
    p: &AlertConditionArgs,
    current: Option<&Kind>,
) -> Result<Kind, CliError> {
    let allowed = parameters(kind);
    if let Some(wrong) = p.given().into_iter().find(|f| !allowed.contains(f)) {
        let takes = if allowed.is_empty() {
            "no parameters".to_owned()
        } else {
            allowed.join(", ")
        };
        return Err(CliError::usage(format!(
            "{wrong} does not apply to {} (it takes {takes})",
            flag_name(kind)
        )));
    }
    let need = |flag: &str| CliError::usage(format!("{} needs {flag}", flag_name(kind)));
    Ok(match (kind, current) {
        (AlertKindArg::TokenExpiring, current) => {
            let base = match current {
                Some(Kind::TokenExpiring(c)) => Some(*c),
                _ => None,
            };
            Kind::TokenExpiring(TokenExpiringCondition {
                days: p
                    .days
                    .or(base.map(|c| c.days))
                    .ok_or_else(|| need("--days"))?,
            })
        }
        (AlertKindArg::TokenUnused, current) => {
            let base = match current {
                Some(Kind::TokenUnused(c)) => Some(*c),
                _ => None,
            };
            Kind::TokenUnused(TokenUnusedCondition {
                days: p
                    .days
                    .or(base.map(|c| c.days))
                    .ok_or_else(|| need("--days"))?,
                include_never_used: p
                    .include_never_used
                    .or(base.map(|c| c.include_never_used))
                    .unwrap_or(false),
            })
        }
        (AlertKindArg::RouteErrorRate, current) => {
            let base = match current {
                Some(Kind::RouteErrorRate(c)) => Some(c.clone()),
                _ => None,
            };
            Kind::RouteErrorRate(RouteErrorRateCondition {
                route: p
                    .route
                    .clone()
                    .or(base.as_ref().map(|c| c.route.clone()))
                    .unwrap_or_default(),
                percent: p
                    .percent
                    .or(base.as_ref().map(|c| c.percent))
                    .ok_or_else(|| need("--percent"))?,
                window_minutes: p
                    .window
                    .or(base.as_ref().map(|c| c.window_minutes))
                    .ok_or_else(|| need("--window"))?,
                min_calls: p
                    .min_calls
                    .or(base.as_ref().map(|c| c.min_calls))
                    .unwrap_or(0),
            })
        }
        (AlertKindArg::RouteLatency, current) => {
            let base = match current {
                Some(Kind::RouteLatency(c)) => Some(c.clone()),
                _ => None,
            };
            Kind::RouteLatency(RouteLatencyCondition {
                route: p
                    .route
                    .clone()
                    .or(base.as_ref().map(|c| c.route.clone()))
                    .unwrap_or_default(),
                p99_ms: p
                    .p99
                    .or(base.as_ref().map(|c| c.p99_ms))
                    .ok_or_else(|| need("--p99"))?,
                window_minutes: p
                    .window
                    .or(base.as_ref().map(|c| c.window_minutes))
                    .ok_or_else(|| need("--window"))?,
                min_calls: p
                    .min_calls
                    .or(base.as_ref().map(|c| c.min_calls))
                    .unwrap_or(0),
            })
        }
        (AlertKindArg::TokenTrafficSpike, current) => {
            let base = match current {
                Some(Kind::TokenTrafficSpike(c)) => Some(*c),
                _ => None,
            };
            Kind::TokenTrafficSpike(TokenTrafficSpikeCondition {
                factor: p
                    .factor
                    .or(base.map(|c| c.factor))
                    .ok_or_else(|| need("--factor"))?,
                min_calls: p.min_calls.or(base.map(|c| c.min_calls)).unwrap_or(0),
            })
        }
        (AlertKindArg::SyncLag, current) => {
            let base = match current {
                Some(Kind::SyncLag(c)) => Some(*c),
                _ => None,
            };
            Kind::SyncLag(SyncLagCondition {
                seconds: p
                    .lag
                    .or(base.map(|c| c.seconds))
                    .ok_or_else(|| need("--lag"))?,
            })
        }
        (AlertKindArg::GatewaySilent, current) => {
            let base = match current {
                Some(Kind::GatewaySilent(c)) => Some(*c),
                _ => None,
            };
            Kind::GatewaySilent(GatewaySilentCondition {
                minutes: p
                    .silent_for
                    .or(base.map(|c| c.minutes))
                    .ok_or_else(|| need("--silent-for"))?,
            })
        }
        (AlertKindArg::GatewayDropping, _) => Kind::GatewayDropping(GatewayDroppingCondition {}),
    })
}

/// `5m`, `1h30m`: a whole number of minutes.
fn minutes(m: u32) -> String {
    humantime::format_duration(std::time::Duration::from_secs(u64::from(m) * 60)).to_string()
}

fn min_calls(n: u32) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(", at least {n} calls")
    }
}

fn route_or_each(route: &str) -> String {
    if route.is_empty() {
        "each route".to_owned()
    } else {
        format!("route {route}")
    }
}

/// The condition in words, e.g. `route billing: error rate > 5% over 15m`.
pub fn describe(condition: Option<&AlertCondition>) -> String {
    let Some(kind) = condition.and_then(|c| c.kind.as_ref()) else {
        return NONE.to_owned();
    };
    match kind {
        Kind::TokenExpiring(c) => format!("token expires within {} days", c.days),
        Kind::TokenUnused(c) => format!(
            "token unused for {} days{}",
            c.days,
            if c.include_never_used {
                " (or never used)"
            } else {
                ""
            }
        ),
        Kind::RouteErrorRate(c) => format!(
            "{}: error rate > {}% over {}{}",
            route_or_each(&c.route),
            c.percent,
            minutes(c.window_minutes),
            min_calls(c.min_calls)
        ),
        Kind::RouteLatency(c) => format!(
            "{}: p99 > {}ms over {}{}",
            route_or_each(&c.route),
            c.p99_ms,
            minutes(c.window_minutes),
            min_calls(c.min_calls)
        ),
        Kind::TokenTrafficSpike(c) => format!(
            "token calls in an hour > {}x its 7-day hourly average{}",
            c.factor,
            min_calls(c.min_calls)
        ),
        Kind::SyncLag(c) => format!("sync follower > {}s behind", c.seconds),
        Kind::GatewaySilent(c) => format!("gateway silent for {}", minutes(c.minutes)),
        Kind::GatewayDropping(_) => "gateway dropped usage data in the last hour".to_owned(),
    }
}

/// The condition as proto JSON: `{"token_expiring": {"days": 14}}`, `null` when absent.
pub fn condition_json(condition: Option<&AlertCondition>) -> Value {
    let Some(kind) = condition.and_then(|c| c.kind.as_ref()) else {
        return Value::Null;
    };
    match kind {
        Kind::TokenExpiring(c) => json!({ "token_expiring": { "days": c.days } }),
        Kind::TokenUnused(c) => json!({ "token_unused": {
            "days": c.days, "include_never_used": c.include_never_used } }),
        Kind::RouteErrorRate(c) => json!({ "route_error_rate": {
            "route": c.route, "percent": c.percent, "window_minutes": c.window_minutes,
            "min_calls": c.min_calls } }),
        Kind::RouteLatency(c) => json!({ "route_latency": {
            "route": c.route, "p99_ms": c.p99_ms, "window_minutes": c.window_minutes,
            "min_calls": c.min_calls } }),
        Kind::TokenTrafficSpike(c) => json!({ "token_traffic_spike": {
            "factor": c.factor, "min_calls": c.min_calls } }),
        Kind::SyncLag(c) => json!({ "sync_lag": { "seconds": c.seconds } }),
        Kind::GatewaySilent(c) => json!({ "gateway_silent": { "minutes": c.minutes } }),
        Kind::GatewayDropping(_) => json!({ "gateway_dropping": {} }),
    }
}

// ------------------------------------------------------------------------------------------
// Rules and deliveries

pub fn rule_table(rules: &[AlertRule]) -> String {
    output::table(
        &RULE_HEADER,
        rules.iter().map(|r| {
            vec![
                r.id.clone(),
                r.team_id.clone(),
                r.name.clone(),
                output::yes_no(r.enabled).to_owned(),
                describe(r.condition.as_ref()),
                output::or_none(&r.webhook_url),
            ]
        }),
    )
}

pub fn rule_fields(r: &AlertRule) -> Vec<(&'static str, String)> {
    vec![
        ("id", r.id.clone()),
        ("team", r.team_id.clone()),
        ("name", r.name.clone()),
        ("enabled", output::yes_no(r.enabled).to_owned()),
        ("condition", describe(r.condition.as_ref())),
        ("system wide", output::yes_no(r.system_wide).to_owned()),
        ("webhook", output::or_none(&r.webhook_url)),
        (
            "secret issued",
            output::time_or(r.secret_issued_at.as_ref(), NONE),
        ),
        ("created", output::time_or(r.created_at.as_ref(), NONE)),
        ("created by", output::or_none(&r.created_by)),
        ("updated", output::time_or(r.updated_at.as_ref(), NONE)),
        ("updated by", output::or_none(&r.updated_by)),
    ]
}

pub fn rule_json(r: &AlertRule) -> Value {
    json!({
        "id": r.id,
        "team_id": r.team_id,
        "name": r.name,
        "enabled": r.enabled,
        "webhook_url": r.webhook_url,
        "condition": condition_json(r.condition.as_ref()),
        "system_wide": r.system_wide,
        "created_at": output::time_json(r.created_at.as_ref()),
        "updated_at": output::time_json(r.updated_at.as_ref()),
        "created_by": r.created_by,
        "updated_by": r.updated_by,
        "secret_issued_at": output::time_json(r.secret_issued_at.as_ref()),
    })
}

fn delivery_status(status: i32) -> String {
    match AlertDeliveryStatus::try_from(status) {
        Ok(AlertDeliveryStatus::Unspecified) | Err(_) => NONE.to_owned(),
        Ok(s) => output::enum_name(s.as_str_name(), "ALERT_DELIVERY_STATUS_"),
    }
}

/// `HTTP 500: ...`, `no answer: ...`, or `HTTP 204`.
fn delivery_outcome(d: &AlertDelivery) -> String {
    let answer = if d.http_status == 0 {
        "no answer".to_owned()
    } else {
        format!("HTTP {}", d.http_status)
    };
    if d.error.is_empty() {
        answer
    } else {
        format!("{answer}: {}", d.error)
    }
}

fn http_status(d: &AlertDelivery) -> String {
    if d.http_status == 0 {
        NONE.to_owned()
    } else {
        d.http_status.to_string()
    }
}

pub fn delivery_table(deliveries: &[AlertDelivery]) -> String {
    output::table(
        &DELIVERY_HEADER,
        deliveries.iter().map(|d| {
            let status = delivery_status(d.status);
            vec![
                output::time_or(d.attempted_at.as_ref(), NONE),
                d.id.clone(),
                d.rule_id.clone(),
                if d.test {
                    format!("{} (test)", d.kind)
                } else {
                    output::or_none(&d.kind)
                },
                output::or_none(&d.subject),
                d.attempt.to_string(),
                status,
                http_status(d),
                output::or_none(&d.error),
            ]
        }),
    )
}

pub fn delivery_fields(d: &AlertDelivery) -> Vec<(&'static str, String)> {
    vec![
        ("id", d.id.clone()),
        ("alert", output::or_none(&d.alert_id)),
        ("rule", d.rule_id.clone()),
        ("team", output::or_none(&d.team_id)),
        ("kind", output::or_none(&d.kind)),
        ("subject", output::or_none(&d.subject)),
        ("message", output::or_none(&d.message)),
        ("test", output::yes_no(d.test).to_owned()),
        ("attempt", d.attempt.to_string()),
        ("status", delivery_status(d.status)),
        ("http status", http_status(d)),
        ("error", output::or_none(&d.error)),
        ("duration", format!("{}ms", d.duration_ms)),
        ("attempted", output::time_or(d.attempted_at.as_ref(), NONE)),
        (
            "next attempt",
            output::time_or(d.next_attempt_at.as_ref(), NONE),
        ),
    ]
}

pub fn delivery_json(d: &AlertDelivery) -> Value {
    json!({
        "id": d.id,
        "alert_id": d.alert_id,
        "rule_id": d.rule_id,
        "team_id": d.team_id,
        "kind": d.kind,
        "subject": d.subject,
        "message": d.message,
        "test": d.test,
        "attempt": d.attempt,
        "status": match AlertDeliveryStatus::try_from(d.status) {
            Ok(AlertDeliveryStatus::Unspecified) | Err(_) => Value::Null,
            Ok(_) => Value::String(delivery_status(d.status)),
        },
        "http_status": d.http_status,
        "error": d.error,
        "duration_ms": d.duration_ms,
        "attempted_at": output::time_json(d.attempted_at.as_ref()),
        "next_attempt_at": output::time_json(d.next_attempt_at.as_ref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;
    use clap::error::ErrorKind;
    use prost_types::Timestamp;

    fn parse(args: &[&str]) -> Result<AlertCommand, clap::Error> {
        let argv = ["keygate", "alert"].into_iter().chain(args.iter().copied());
        match Cli::try_parse_from(argv)?.command {
            Command::Alert(command) => Ok(command),
            other => panic!("not an alert command: {other:?}"),
        }
    }

    fn condition_args(args: &[&str]) -> AlertConditionArgs {
        let argv: Vec<&str> = ["update", "alr_1"]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        match parse(&argv).unwrap() {
            AlertCommand::Update(args) => args.condition,
            other => panic!("{other:?}"),
        }
    }

    /// `--when` and parameters, built fresh (as `create` and `update --when` do).
    fn build(args: &[&str]) -> Result<Kind, String> {
        let p = condition_args(args);
        build_condition(p.when.expect("--when"), &p, None).map_err(|e| {
            assert_eq!(e.exit_code(), 2, "{e}");
            e.to_string()
        })
    }

    #[test]
    fn conditions_from_flags() {
        assert_eq!(
            build(&["--when", "token-expiring", "--days", "14"]),
            Ok(Kind::TokenExpiring(TokenExpiringCondition { days: 14 }))
        );
        assert_eq!(
            build(&[
                "--when",
                "token-unused",
                "--days",
                "30",
                "--include-never-used"
            ]),
            Ok(Kind::TokenUnused(TokenUnusedCondition {
                days: 30,
                include_never_used: true
            }))
        );
        assert_eq!(
            build(&[
                "--when",
                "route-error-rate",
                "--route",
                "billing",
                "--percent",
                "5",
                "--window",
                "15m",
                "--min-calls",
                "50"
            ]),
            Ok(Kind::RouteErrorRate(RouteErrorRateCondition {
                route: "billing".into(),
                percent: 5.0,
                window_minutes: 15,
                min_calls: 50
            }))
        );
        assert_eq!(
            build(&["--when", "route-latency", "--p99", "1.5s", "--window", "1h"]),
            Ok(Kind::RouteLatency(RouteLatencyCondition {
                route: String::new(),
                p99_ms: 1500,
                window_minutes: 60,
                min_calls: 0
            }))
        );
        assert_eq!(
            build(&["--when", "token-traffic-spike", "--factor", "2.5"]),
            Ok(Kind::TokenTrafficSpike(TokenTrafficSpikeCondition {
                factor: 2.5,
                min_calls: 0
            }))
        );
        assert_eq!(
            build(&["--when", "sync-lag", "--lag", "5m"]),
            Ok(Kind::SyncLag(SyncLagCondition { seconds: 300 }))
        );
        assert_eq!(
            build(&["--when", "gateway-silent", "--silent-for", "10m"]),
            Ok(Kind::GatewaySilent(GatewaySilentCondition { minutes: 10 }))
        );
        assert_eq!(
            build(&["--when", "gateway-dropping"]),
            Ok(Kind::GatewayDropping(GatewayDroppingCondition {}))
        );
    }

    #[test]
    fn wrong_or_missing_parameters_are_usage_errors() {
        for (args, message) in [
            (
                &["--when", "token-expiring"][..],
                "token-expiring needs --days",
            ),
            (
                &["--when", "token-expiring", "--days", "3", "--percent", "5"],
                "--percent does not apply to token-expiring (it takes --days)",
            ),
            (
                &["--when", "route-error-rate", "--window", "5m"],
                "route-error-rate needs --percent",
            ),
            (
                &["--when", "route-latency", "--p99", "250ms"],
                "route-latency needs --window",
            ),
            (
                &["--when", "gateway-dropping", "--days", "1"],
                "--days does not apply to gateway-dropping (it takes no parameters)",
            ),
        ] {
            assert_eq!(build(args), Err(message.to_owned()), "{args:?}");
        }
    }

    #[test]
    fn parameters_alone_change_the_current_condition() {
        let current = Kind::RouteErrorRate(RouteErrorRateCondition {
            route: "billing".into(),
            percent: 5.0,
            window_minutes: 15,
            min_calls: 50,
        });
        let p = condition_args(&["--percent", "10"]);
        assert_eq!(p.when, None);
        assert_eq!(
            build_condition(kind_of(&current), &p, Some(&current)).unwrap(),
            Kind::RouteErrorRate(RouteErrorRateCondition {
                route: "billing".into(),
                percent: 10.0,
                window_minutes: 15,
                min_calls: 50,
            })
        );
        let p = condition_args(&["--route="]);
        let Kind::RouteErrorRate(c) =
            build_condition(kind_of(&current), &p, Some(&current)).unwrap()
        else {
            panic!()
        };
        assert_eq!(c.route, "", "an empty --route means each route");

        let unused = Kind::TokenUnused(TokenUnusedCondition {
            days: 30,
            include_never_used: true,
        });
        let p = condition_args(&["--include-never-used=false"]);
        assert_eq!(
            build_condition(kind_of(&unused), &p, Some(&unused)).unwrap(),
            Kind::TokenUnused(TokenUnusedCondition {
                days: 30,
                include_never_used: false
            })
        );
        let p = condition_args(&["--factor", "3"]);
        let err = build_condition(kind_of(&unused), &p, Some(&unused)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--factor does not apply to token-unused (it takes --days, --include-never-used)"
        );
    }

    #[test]
    fn parsing() {
        let kind = |args: &[&str]| parse(args).unwrap_err().kind();
        // update needs something to change; --quiet only with --rotate-secret.
        assert_eq!(
            kind(&["update", "alr_1"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&["update", "alr_1", "--name", "x", "--quiet"]),
            ErrorKind::MissingRequiredArgument
        );
        assert!(parse(&["update", "alr_1", "--rotate-secret", "--quiet"]).is_ok());
        assert!(parse(&["update", "alr_1", "--enabled", "false"]).is_ok());
        assert_eq!(
            kind(&["update", "alr_1", "--window", "90s"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            kind(&["update", "alr_1", "--when", "token-leaked"]),
            ErrorKind::InvalidValue
        );
        assert_eq!(
            kind(&["create", "--team", "core", "--name", "x"]),
            ErrorKind::MissingRequiredArgument
        );
        let AlertCommand::Create(args) = parse(&[
            "create",
            "--team",
            "core",
            "--name",
            "x",
            "--webhook",
            "https://h.example.com/",
            "--disabled",
            "--when",
            "gateway-dropping",
            "-q",
        ])
        .unwrap() else {
            panic!()
        };
        assert!(args.disabled && args.quiet);
        let AlertCommand::Deliveries(args) = parse(&[
            "deliveries",
            "--rule",
            "alr_1",
            "--status",
            "failed",
            "--all",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(args.status, Some(DeliveryStatusArg::Failed));
        assert!(args.page.all);
        assert!(matches!(
            parse(&["delete", "alr_1", "--yes"]).unwrap(),
            AlertCommand::Delete { yes, .. } if yes.yes
        ));

        use crate::args::{parse_millis, parse_minutes};
        assert_eq!(parse_minutes("1h"), Ok(60));
        assert_eq!(parse_minutes("300"), Ok(5));
        assert!(parse_minutes("30s").is_err());
        assert!(parse_minutes("0m").is_err());
        assert_eq!(parse_millis("250ms"), Ok(250));
        assert_eq!(parse_millis("800"), Ok(800));
        assert_eq!(parse_millis("2s"), Ok(2000));
        assert!(parse_millis("1us").is_err());
    }

    fn ts(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos: 0 })
    }

    fn rule() -> AlertRule {
        AlertRule {
            id: "alr_1".into(),
            team_id: "core".into(),
            name: "errors".into(),
            enabled: true,
            webhook_url: "https://hooks.example.com/kg".into(),
            condition: Some(AlertCondition {
                kind: Some(Kind::RouteErrorRate(RouteErrorRateCondition {
                    route: "billing".into(),
                    percent: 5.0,
                    window_minutes: 15,
                    min_calls: 50,
                })),
            }),
            system_wide: false,
            created_at: ts(1_738_324_800),
            updated_at: ts(1_738_324_860),
            created_by: "user:usr_1".into(),
            updated_by: "user:usr_1".into(),
            secret_issued_at: ts(1_738_324_800),
        }
    }

    #[test]
    fn conditions_in_words_and_json() {
        let cond = |kind: Kind| AlertCondition { kind: Some(kind) };
        assert_eq!(
            describe(rule().condition.as_ref()),
            "route billing: error rate > 5% over 15m, at least 50 calls"
        );
        assert_eq!(
            describe(Some(&cond(Kind::RouteLatency(RouteLatencyCondition {
                route: String::new(),
                p99_ms: 800,
                window_minutes: 90,
                min_calls: 0,
            })))),
            "each route: p99 > 800ms over 1h 30m"
        );
        assert_eq!(
            describe(Some(&cond(Kind::TokenUnused(TokenUnusedCondition {
                days: 30,
                include_never_used: true
            })))),
            "token unused for 30 days (or never used)"
        );
        assert_eq!(
            describe(Some(&cond(Kind::GatewaySilent(GatewaySilentCondition {
                minutes: 10
            })))),
            "gateway silent for 10m"
        );
        assert_eq!(describe(None), "-");
        assert_eq!(
            condition_json(rule().condition.as_ref()),
            json!({ "route_error_rate": {
                "route": "billing", "percent": 5.0, "window_minutes": 15, "min_calls": 50 } })
        );
        assert_eq!(
            condition_json(Some(&cond(Kind::GatewayDropping(
                GatewayDroppingCondition {}
            )))),
            json!({ "gateway_dropping": {} })
        );
    }

    #[test]
    fn rule_output() {
        assert_eq!(
            rule_table(&[rule()]),
            "ID     TEAM  NAME    ENABLED  CONDITION                                                   WEBHOOK\n\
             alr_1  core  errors  yes      route billing: error rate > 5% over 15m, at least 50 calls  https://hooks.example.com/kg\n"
        );
        let text = output::fields(&rule_fields(&rule()));
        assert!(text.starts_with("id:            alr_1\n"), "{text}");
        assert!(
            text.contains("secret issued: 2025-01-31T12:00:00Z\n"),
            "{text}"
        );
        let value = rule_json(&rule());
        assert_eq!(value["enabled"], true);
        assert_eq!(value["updated_at"], "2025-01-31T12:01:00Z");
        assert_eq!(value["condition"]["route_error_rate"]["window_minutes"], 15);
        assert!(value.get("webhook_secret").is_none());
    }

    #[test]
    fn delivery_output() {
        let failed = AlertDelivery {
            id: "dlv_1".into(),
            alert_id: "alt_1".into(),
            rule_id: "alr_1".into(),
            team_id: "core".into(),
            kind: "route_error_rate".into(),
            subject: "billing".into(),
            message: "error rate 12% over 15m".into(),
            test: false,
            attempt: 2,
            status: AlertDeliveryStatus::Retrying as i32,
            http_status: 503,
            error: "receiver answered 503".into(),
            duration_ms: 120,
            attempted_at: ts(1_738_324_800),
            next_attempt_at: ts(1_738_324_860),
        };
        let test = AlertDelivery {
            id: "dlv_2".into(),
            kind: "route_error_rate".into(),
            subject: String::new(),
            test: true,
            attempt: 1,
            status: AlertDeliveryStatus::Failed as i32,
            http_status: 0,
            error: "connection refused".into(),
            next_attempt_at: None,
            ..failed.clone()
        };
        assert_eq!(
            delivery_table(&[failed.clone(), test.clone()]),
            "TIME                  ID     RULE   KIND                     SUBJECT  ATTEMPT  STATUS    HTTP  ERROR\n\
             2025-01-31T12:00:00Z  dlv_1  alr_1  route_error_rate         billing  2        retrying  503   receiver answered 503\n\
             2025-01-31T12:00:00Z  dlv_2  alr_1  route_error_rate (test)  -        1        failed    -     connection refused\n"
        );
        assert_eq!(delivery_outcome(&test), "no answer: connection refused");
        assert_eq!(delivery_outcome(&failed), "HTTP 503: receiver answered 503");
        let text = output::fields(&delivery_fields(&failed));
        assert!(
            text.contains("next attempt: 2025-01-31T12:01:00Z\n"),
            "{text}"
        );
        let value = delivery_json(&test);
        assert_eq!(value["status"], "failed");
        assert_eq!(value["test"], true);
        assert_eq!(value["next_attempt_at"], Value::Null);
    }
}
