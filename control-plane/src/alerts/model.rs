//! Alert domain types and input validation (wire -> domain): rules and their one condition,
//! alerts waiting for delivery, and delivery attempts.

use crate::ids::{AlertId, AlertRuleId, DeliveryId, TeamId};
use crate::pagination;
use crate::time::{Millis, to_timestamp, to_timestamp_opt};
use keygate_contracts::{FieldError, FieldErrors, names};
use keygate_proto::v1 as pb;
use serde::{Deserialize, Serialize};

/// Longest webhook URL.
pub const MAX_WEBHOOK_URL_LEN: usize = 2048;
/// Default minimum calls of the route conditions.
pub const DEFAULT_ROUTE_MIN_CALLS: u32 = 20;
/// Default minimum calls of the traffic-spike condition.
pub const DEFAULT_SPIKE_MIN_CALLS: u32 = 100;
/// Largest `min_calls` accepted.
pub const MAX_MIN_CALLS: u32 = 100_000_000;
/// Prefix of webhook signing secrets.
pub const WEBHOOK_SECRET_PREFIX: &str = "whsec";

pub const RULES_PAGE_KIND: &str = "alert_rules";
pub const DELIVERIES_PAGE_KIND: &str = "alert_deliveries";

/// What a rule watches. Stored as JSON (`{"kind": "...", ...}`) next to its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Condition {
    /// A live token expires within `days`.
    TokenExpiring { days: u32 },
    /// A live token was last used more than `days` ago (or never, when asked, and created
    /// more than `days` ago).
    TokenUnused { days: u32, include_never_used: bool },
    /// Error rate above `percent` over `window_minutes`, for one route or each of the team's.
    RouteErrorRate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        route: Option<String>,
        percent: f64,
        window_minutes: u32,
        min_calls: u32,
    },
    /// p99 latency above `p99_ms` over `window_minutes`.
    RouteLatency {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        route: Option<String>,
        p99_ms: u32,
        window_minutes: u32,
        min_calls: u32,
    },
    /// A token's calls in the last hour above `factor` times its hourly average over the
    /// previous 7 days.
    TokenTrafficSpike { factor: f64, min_calls: u32 },
    /// System-wide: a follower more than `seconds` behind.
    SyncLag { seconds: u32 },
    /// System-wide: a gateway silent for `minutes`.
    GatewaySilent { minutes: u32 },
    /// System-wide: a gateway dropped usage data in the last hour.
    GatewayDropping,
}

impl Condition {
    /// The kind as stored and as sent in payloads (`token_expiring`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TokenExpiring { .. } => "token_expiring",
            Self::TokenUnused { .. } => "token_unused",
            Self::RouteErrorRate { .. } => "route_error_rate",
            Self::RouteLatency { .. } => "route_latency",
            Self::TokenTrafficSpike { .. } => "token_traffic_spike",
            Self::SyncLag { .. } => "sync_lag",
            Self::GatewaySilent { .. } => "gateway_silent",
            Self::GatewayDropping => "gateway_dropping",
        }
    }

    /// About the whole system rather than a team's resources: system admins only.
    pub fn system_wide(&self) -> bool {
        matches!(
            self,
            Self::SyncLag { .. } | Self::GatewaySilent { .. } | Self::GatewayDropping
        )
    }

    /// The route a route condition names, if any.
    pub fn route(&self) -> Option<&str> {
        match self {
            Self::RouteErrorRate { route, .. } | Self::RouteLatency { route, .. } => {
                route.as_deref()
            }
            _ => None,
        }
    }

    /// Validates the wire condition; `field` is its path (`condition`).
    pub fn from_pb(field: &str, c: Option<pb::AlertCondition>) -> Result<Self, FieldErrors> {
        use pb::alert_condition::Kind;
        let Some(kind) = c.and_then(|c| c.kind) else {
            return Err(FieldError::new(
                field,
                "is required: set exactly one of token_expiring, token_unused, \
                 route_error_rate, route_latency, token_traffic_spike, sync_lag, \
                 gateway_silent, gateway_dropping",
            )
            .into());
        };
        // Every broken parameter is recorded; the placeholder values of broken ones are
        // never used (the errors are returned instead).
        let mut v = FieldErrors::new();
        let f = |kind: &str, name: &str| format!("{field}.{kind}.{name}");
        let condition = match kind {
            Kind::TokenExpiring(c) => Self::TokenExpiring {
                days: v
                    .check(range_u32(&f("token_expiring", "days"), c.days, 1, 365))
                    .unwrap_or_default(),
            },
            Kind::TokenUnused(c) => Self::TokenUnused {
                days: v
                    .check(range_u32(&f("token_unused", "days"), c.days, 1, 365))
                    .unwrap_or_default(),
                include_never_used: c.include_never_used,
            },
            Kind::RouteErrorRate(c) => Self::RouteErrorRate {
                route: v
                    .check(route_name(&f("route_error_rate", "route"), &c.route))
                    .unwrap_or_default(),
                percent: v
                    .check(range_f64(
                        &f("route_error_rate", "percent"),
                        c.percent,
                        0.1,
                        100.0,
                    ))
                    .unwrap_or_default(),
                window_minutes: v
                    .check(range_u32(
                        &f("route_error_rate", "window_minutes"),
                        c.window_minutes,
                        1,
                        1440,
                    ))
                    .unwrap_or_default(),
                min_calls: v
                    .check(min_calls(
                        &f("route_error_rate", "min_calls"),
                        c.min_calls,
                        DEFAULT_ROUTE_MIN_CALLS,
                    ))
                    .unwrap_or_default(),
            },
            Kind::RouteLatency(c) => Self::RouteLatency {
                route: v
                    .check(route_name(&f("route_latency", "route"), &c.route))
                    .unwrap_or_default(),
                p99_ms: v
                    .check(range_u32(
                        &f("route_latency", "p99_ms"),
                        c.p99_ms,
                        1,
                        300_000,
                    ))
                    .unwrap_or_default(),
                window_minutes: v
                    .check(range_u32(
                        &f("route_latency", "window_minutes"),
                        c.window_minutes,
                        1,
                        1440,
                    ))
                    .unwrap_or_default(),
                min_calls: v
                    .check(min_calls(
                        &f("route_latency", "min_calls"),
                        c.min_calls,
                        DEFAULT_ROUTE_MIN_CALLS,
                    ))
                    .unwrap_or_default(),
            },
            Kind::TokenTrafficSpike(c) => Self::TokenTrafficSpike {
                factor: v
                    .check(range_f64(
                        &f("token_traffic_spike", "factor"),
                        c.factor,
                        1.5,
                        1000.0,
                    ))
                    .unwrap_or_default(),
                min_calls: v
                    .check(min_calls(
                        &f("token_traffic_spike", "min_calls"),
                        c.min_calls,
                        DEFAULT_SPIKE_MIN_CALLS,
                    ))
                    .unwrap_or_default(),
            },
            Kind::SyncLag(c) => Self::SyncLag {
                seconds: v
                    .check(range_u32(&f("sync_lag", "seconds"), c.seconds, 1, 86_400))
                    .unwrap_or_default(),
            },
            Kind::GatewaySilent(c) => Self::GatewaySilent {
                minutes: v
                    .check(range_u32(
                        &f("gateway_silent", "minutes"),
                        c.minutes,
                        1,
                        1440,
                    ))
                    .unwrap_or_default(),
            },
            Kind::GatewayDropping(_) => Self::GatewayDropping,
        };
        v.into_result()?;
        Ok(condition)
    }

    pub fn to_pb(&self) -> pb::AlertCondition {
        use pb::alert_condition::Kind;
        let kind = match self.clone() {
            Self::TokenExpiring { days } => {
                Kind::TokenExpiring(pb::TokenExpiringCondition { days })
            }
            Self::TokenUnused {
                days,
                include_never_used,
            } => Kind::TokenUnused(pb::TokenUnusedCondition {
                days,
                include_never_used,
            }),
            Self::RouteErrorRate {
                route,
                percent,
                window_minutes,
                min_calls,
            } => Kind::RouteErrorRate(pb::RouteErrorRateCondition {
                route: route.unwrap_or_default(),
                percent,
                window_minutes,
                min_calls,
            }),
            Self::RouteLatency {
                route,
                p99_ms,
                window_minutes,
                min_calls,
            } => Kind::RouteLatency(pb::RouteLatencyCondition {
                route: route.unwrap_or_default(),
                p99_ms,
                window_minutes,
                min_calls,
            }),
            Self::TokenTrafficSpike { factor, min_calls } => {
                Kind::TokenTrafficSpike(pb::TokenTrafficSpikeCondition { factor, min_calls })
            }
            Self::SyncLag { seconds } => Kind::SyncLag(pb::SyncLagCondition { seconds }),
            Self::GatewaySilent { minutes } => {
                Kind::GatewaySilent(pb::GatewaySilentCondition { minutes })
            }
            Self::GatewayDropping => Kind::GatewayDropping(pb::GatewayDroppingCondition {}),
        };
        pb::AlertCondition { kind: Some(kind) }
    }
}

fn range_u32(field: &str, v: u32, min: u32, max: u32) -> Result<u32, FieldError> {
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(FieldError::new(
            field,
            format!("must be between {min} and {max}"),
        ))
    }
}

fn range_f64(field: &str, v: f64, min: f64, max: f64) -> Result<f64, FieldError> {
    if v.is_finite() && v >= min && v <= max {
        Ok(v)
    } else {
        Err(FieldError::new(
            field,
            format!("must be between {min} and {max}"),
        ))
    }
}

fn min_calls(field: &str, v: u32, default: u32) -> Result<u32, FieldError> {
    match v {
        0 => Ok(default),
        _ => range_u32(field, v, 1, MAX_MIN_CALLS),
    }
}

fn route_name(field: &str, v: &str) -> Result<Option<String>, FieldError> {
    if v.is_empty() {
        return Ok(None);
    }
    names::validate_route_name(field, v)?;
    Ok(Some(v.to_owned()))
}

/// Checks a webhook URL's form: absolute `http`/`https`, a host, no credentials, no
/// fragment, at most [`MAX_WEBHOOK_URL_LEN`]. (Whether its address may be called is
/// `deliver::Allow`'s question.)
pub fn validate_webhook_url(field: &str, v: &str) -> Result<url::Url, FieldError> {
    if v.is_empty() {
        return Err(FieldError::new(field, "is required"));
    }
    if v.len() > MAX_WEBHOOK_URL_LEN {
        return Err(FieldError::new(
            field,
            format!("must be at most {MAX_WEBHOOK_URL_LEN} characters"),
        ));
    }
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(FieldError::new(field, "must not contain whitespace"));
    }
    let url = url::Url::parse(v)
        .map_err(|e| FieldError::new(field, format!("must be an absolute URL ({e})")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(FieldError::new(field, "scheme must be http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(FieldError::new(
            field,
            "must not contain credentials (user:password@)",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(FieldError::new(field, "must have a host"));
    }
    if url.fragment().is_some() {
        return Err(FieldError::new(field, "must not have a fragment"));
    }
    Ok(url)
}

fn validate_name(v: &str) -> Result<String, FieldError> {
    names::validate_text("name", v, 100, true, false)?;
    Ok(v.trim().to_owned())
}

fn validate_team(field: &str, v: &str) -> Result<TeamId, FieldError> {
    names::validate_team_id(field, v)?;
    Ok(TeamId(v.to_owned()))
}

/// Parses an `alr_` id field.
pub fn parse_rule_id(field: &str, v: &str) -> Result<AlertRuleId, FieldError> {
    let ok =
        v.len() == 36 && v.starts_with("alr_") && v[4..].bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(AlertRuleId(v.to_owned()))
    } else {
        Err(FieldError::new(
            field,
            "must be an alert rule id (alr_ followed by 32 hex digits)",
        ))
    }
}

/// An alert rule as stored (never its signing secret).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRule {
    pub id: AlertRuleId,
    pub team_id: TeamId,
    pub name: String,
    pub enabled: bool,
    pub webhook_url: String,
    pub condition: Condition,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub created_by: String,
    pub updated_by: String,
    pub secret_issued_at: Millis,
}

impl From<AlertRule> for pb::AlertRule {
    fn from(r: AlertRule) -> Self {
        Self {
            id: r.id.0,
            team_id: r.team_id.0,
            name: r.name,
            enabled: r.enabled,
            webhook_url: r.webhook_url,
            system_wide: r.condition.system_wide(),
            condition: Some(r.condition.to_pb()),
            created_at: Some(to_timestamp(r.created_at)),
            updated_at: Some(to_timestamp(r.updated_at)),
            created_by: r.created_by,
            updated_by: r.updated_by,
            secret_issued_at: Some(to_timestamp(r.secret_issued_at)),
        }
    }
}

/// Validated CreateAlertRule input (the route and the address are checked by the service).
#[derive(Debug, Clone)]
pub struct CreateAlertRuleInput {
    pub team_id: TeamId,
    pub name: String,
    pub enabled: bool,
    pub webhook_url: url::Url,
    pub condition: Condition,
}

/// Every rule a CreateAlertRule request breaks is reported, not only the first.
impl TryFrom<pb::CreateAlertRuleRequest> for CreateAlertRuleInput {
    type Error = FieldErrors;

    fn try_from(r: pb::CreateAlertRuleRequest) -> Result<Self, FieldErrors> {
        let mut v = FieldErrors::new();
        let team_id = v.check(validate_team("team_id", &r.team_id));
        let name = v.check(validate_name(&r.name));
        let webhook_url = v.check(validate_webhook_url("webhook_url", &r.webhook_url));
        let condition = v.check(Condition::from_pb("condition", r.condition));
        let (Some(team_id), Some(name), Some(webhook_url), Some(condition)) =
            (team_id, name, webhook_url, condition)
        else {
            return Err(v);
        };
        Ok(Self {
            team_id,
            name,
            enabled: r.enabled.unwrap_or(true),
            webhook_url,
            condition,
        })
    }
}

/// A rule to insert; its secret is already sealed.
#[derive(Debug, Clone)]
pub struct NewAlertRule {
    pub id: AlertRuleId,
    pub team_id: TeamId,
    pub name: String,
    pub enabled: bool,
    pub webhook_url: String,
    pub condition: Condition,
    pub secret_sealed: String,
}

/// Validated UpdateAlertRule input; `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct AlertRuleInput {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub webhook_url: Option<url::Url>,
    pub condition: Option<Condition>,
    pub rotate_secret: bool,
}

/// Validates UpdateAlertRule input, reporting every broken rule.
pub fn parse_update(
    r: pb::UpdateAlertRuleRequest,
) -> Result<(AlertRuleId, AlertRuleInput), FieldErrors> {
    let mut v = FieldErrors::new();
    let id = v.check(parse_rule_id("id", &r.id));
    let input = AlertRuleInput {
        name: r.name.as_deref().and_then(|n| v.check(validate_name(n))),
        enabled: r.enabled,
        webhook_url: r
            .webhook_url
            .as_deref()
            .and_then(|u| v.check(validate_webhook_url("webhook_url", u))),
        condition: r
            .condition
            .and_then(|c| v.check(Condition::from_pb("condition", Some(c)))),
        rotate_secret: r.rotate_secret,
    };
    if v.is_empty()
        && input.name.is_none()
        && input.enabled.is_none()
        && input.webhook_url.is_none()
        && input.condition.is_none()
        && !input.rotate_secret
    {
        v.push(FieldError::new(
            "update",
            "nothing to change: set at least one of name, enabled, webhook_url, condition, \
             rotate_secret",
        ));
    }
    match id {
        Some(id) if v.is_empty() => Ok((id, input)),
        _ => Err(v),
    }
}

/// A patch as the store applies it (a new secret already sealed).
#[derive(Debug, Clone, Default)]
pub struct AlertRulePatch {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub webhook_url: Option<String>,
    pub condition: Option<Condition>,
    pub secret_sealed: Option<String>,
}

/// Filters and page position for ListAlertRules.
#[derive(Debug, Clone, Default)]
pub struct AlertRuleFilter {
    pub team_id: Option<TeamId>,
    /// Only rules of these teams (`None`: every team). Set from the caller.
    pub visible_teams: Option<Vec<TeamId>>,
    pub limit: u32,
    /// `(created_at, id)` of the last row of the previous page.
    pub after: Option<(Millis, AlertRuleId)>,
}

impl TryFrom<pb::ListAlertRulesRequest> for AlertRuleFilter {
    type Error = FieldError;

    fn try_from(r: pb::ListAlertRulesRequest) -> Result<Self, FieldError> {
        let after = pagination::decode(RULES_PAGE_KIND, &r.page_token, 2)?
            .map(|p| -> Result<_, FieldError> {
                Ok((pagination::int_part(&p[0])?, AlertRuleId(p[1].clone())))
            })
            .transpose()?;
        Ok(Self {
            team_id: (!r.team_id.is_empty())
                .then(|| validate_team("team_id", &r.team_id))
                .transpose()?,
            visible_teams: None,
            limit: pagination::page_size(r.page_size)?,
            after,
        })
    }
}

/// Outcome of one delivery try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DeliveryStatus {
    Succeeded,
    /// Failed; another try is scheduled.
    Retrying,
    /// Failed; no other try follows.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "succeeded" => Self::Succeeded,
            "retrying" => Self::Retrying,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    fn to_pb(self) -> pb::AlertDeliveryStatus {
        match self {
            Self::Succeeded => pb::AlertDeliveryStatus::Succeeded,
            Self::Retrying => pb::AlertDeliveryStatus::Retrying,
            Self::Failed => pb::AlertDeliveryStatus::Failed,
        }
    }
}

/// An alert: one firing of a rule (or a test), delivered until it succeeds or 24 h passed.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub id: AlertId,
    pub rule_id: AlertRuleId,
    pub team_id: TeamId,
    pub kind: String,
    pub subject: String,
    pub message: String,
    pub details: serde_json::Value,
    pub fired_at: Millis,
    pub test: bool,
    /// Tries so far.
    pub attempts: u32,
    /// When the next try is due; `None`: delivered or given up.
    pub next_attempt_at: Option<Millis>,
}

impl Alert {
    /// A new alert, due now.
    pub fn new(
        rule: &AlertRule,
        subject: impl Into<String>,
        message: impl Into<String>,
        details: serde_json::Value,
        now: Millis,
        test: bool,
    ) -> Self {
        Self {
            id: AlertId::generate(),
            rule_id: rule.id.clone(),
            team_id: rule.team_id.clone(),
            kind: rule.condition.kind().to_owned(),
            subject: subject.into(),
            message: message.into(),
            details,
            fired_at: now,
            test,
            attempts: 0,
            next_attempt_at: Some(now),
        }
    }
}

/// One delivery try as stored and listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertDelivery {
    pub id: DeliveryId,
    pub alert_id: AlertId,
    pub rule_id: AlertRuleId,
    pub team_id: TeamId,
    pub kind: String,
    pub subject: String,
    pub message: String,
    pub test: bool,
    pub attempt: u32,
    pub status: DeliveryStatus,
    /// 0: no HTTP answer.
    pub http_status: u16,
    pub error: String,
    pub duration_ms: u32,
    pub attempted_at: Millis,
    pub next_attempt_at: Option<Millis>,
}

impl From<AlertDelivery> for pb::AlertDelivery {
    fn from(d: AlertDelivery) -> Self {
        Self {
            id: d.id.0,
            alert_id: d.alert_id.0,
            rule_id: d.rule_id.0,
            team_id: d.team_id.0,
            kind: d.kind,
            subject: d.subject,
            message: d.message,
            test: d.test,
            attempt: d.attempt,
            status: d.status.to_pb() as i32,
            http_status: u32::from(d.http_status),
            error: d.error,
            duration_ms: d.duration_ms,
            attempted_at: Some(to_timestamp(d.attempted_at)),
            next_attempt_at: to_timestamp_opt(d.next_attempt_at),
        }
    }
}

/// Filters and page position for ListAlertDeliveries.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub rule_id: Option<AlertRuleId>,
    pub team_id: Option<TeamId>,
    pub status: Option<DeliveryStatus>,
    /// Only deliveries of these teams (`None`: every team). Set from the caller.
    pub visible_teams: Option<Vec<TeamId>>,
    pub limit: u32,
    /// `(attempted_at, id)` of the last row of the previous page.
    pub after: Option<(Millis, DeliveryId)>,
}

impl TryFrom<pb::ListAlertDeliveriesRequest> for DeliveryFilter {
    type Error = FieldError;

    fn try_from(r: pb::ListAlertDeliveriesRequest) -> Result<Self, FieldError> {
        let status = match pb::AlertDeliveryStatus::try_from(r.status) {
            Ok(pb::AlertDeliveryStatus::Unspecified) => None,
            Ok(pb::AlertDeliveryStatus::Succeeded) => Some(DeliveryStatus::Succeeded),
            Ok(pb::AlertDeliveryStatus::Retrying) => Some(DeliveryStatus::Retrying),
            Ok(pb::AlertDeliveryStatus::Failed) => Some(DeliveryStatus::Failed),
            Err(_) => {
                return Err(FieldError::new("status", "is not a known delivery status"));
            }
        };
        let after = pagination::decode(DELIVERIES_PAGE_KIND, &r.page_token, 2)?
            .map(|p| -> Result<_, FieldError> {
                Ok((pagination::int_part(&p[0])?, DeliveryId(p[1].clone())))
            })
            .transpose()?;
        Ok(Self {
            rule_id: (!r.rule_id.is_empty())
                .then(|| parse_rule_id("rule_id", &r.rule_id))
                .transpose()?,
            team_id: (!r.team_id.is_empty())
                .then(|| validate_team("team_id", &r.team_id))
                .transpose()?,
            status,
            visible_teams: None,
            limit: pagination::page_size(r.page_size)?,
            after,
        })
    }
}

/// The recorded state of one rule about one subject (a token, route, follower or gateway):
/// what makes a rule fire once per crossing rather than every minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertState {
    pub subject: String,
    /// The condition held at the last evaluation (and an alert went out when it started).
    pub firing: bool,
    /// When it last fired.
    pub fired_at: Option<Millis>,
    /// When it last stopped holding.
    pub resolved_at: Option<Millis>,
    /// A condition-specific value remembered with the state (a token's `last_used_at` when
    /// it fired; a gateway's drop total).
    pub marker: Option<i64>,
    /// When `marker` last changed.
    pub marker_at: Option<Millis>,
}

impl AlertState {
    pub fn new(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            firing: false,
            fired_at: None,
            resolved_at: None,
            marker: None,
            marker_at: None,
        }
    }
}

/// Which live tokens of a team a token condition looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertTokenQuery {
    /// Every live (unrevoked, unexpired) token.
    Live,
    /// Live tokens expiring at or before this time.
    ExpiringBefore(Millis),
    /// Live tokens last used before `before` (and, when asked, never used and created
    /// before it).
    UnusedSince {
        before: Millis,
        include_never_used: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(
        f: impl FnOnce(&mut pb::CreateAlertRuleRequest),
    ) -> Result<CreateAlertRuleInput, FieldErrors> {
        let mut r = pb::CreateAlertRuleRequest {
            team_id: "payments".into(),
            name: "expiring".into(),
            enabled: None,
            webhook_url: "https://hooks.example.com/keygate".into(),
            condition: Some(pb::AlertCondition {
                kind: Some(pb::alert_condition::Kind::TokenExpiring(
                    pb::TokenExpiringCondition { days: 7 },
                )),
            }),
        };
        f(&mut r);
        CreateAlertRuleInput::try_from(r)
    }

    fn with(kind: pb::alert_condition::Kind) -> impl FnOnce(&mut pb::CreateAlertRuleRequest) {
        move |r| r.condition = Some(pb::AlertCondition { kind: Some(kind) })
    }

    fn error_rate(route: &str, percent: f64, window: u32, min: u32) -> pb::alert_condition::Kind {
        pb::alert_condition::Kind::RouteErrorRate(pb::RouteErrorRateCondition {
            route: route.into(),
            percent,
            window_minutes: window,
            min_calls: min,
        })
    }

    #[test]
    fn create_validation_names_field_and_rule() {
        use pb::alert_condition::Kind;
        let ok = create(|_| {}).unwrap();
        assert!(ok.enabled, "enabled by default");
        assert_eq!(ok.condition, Condition::TokenExpiring { days: 7 });
        let cases: Vec<(pb::CreateAlertRuleRequest, &str)> = {
            let base = || pb::CreateAlertRuleRequest {
                team_id: "payments".into(),
                name: "n".into(),
                enabled: None,
                webhook_url: "https://hooks.example.com/x".into(),
                condition: None,
            };
            let c = |k: Kind| pb::CreateAlertRuleRequest {
                condition: Some(pb::AlertCondition { kind: Some(k) }),
                ..base()
            };
            vec![
                (base(), "condition: is required"),
                (
                    pb::CreateAlertRuleRequest {
                        condition: Some(pb::AlertCondition { kind: None }),
                        ..base()
                    },
                    "condition: is required",
                ),
                (
                    c(Kind::TokenExpiring(pb::TokenExpiringCondition { days: 0 })),
                    "condition.token_expiring.days: must be between 1 and 365",
                ),
                (
                    c(Kind::TokenExpiring(pb::TokenExpiringCondition {
                        days: 366,
                    })),
                    "condition.token_expiring.days: must be between 1 and 365",
                ),
                (
                    c(Kind::TokenUnused(pb::TokenUnusedCondition {
                        days: 0,
                        include_never_used: true,
                    })),
                    "condition.token_unused.days: must be between 1 and 365",
                ),
                (
                    c(error_rate("", 0.05, 5, 0)),
                    "condition.route_error_rate.percent: must be between 0.1 and 100",
                ),
                (
                    c(error_rate("", 100.5, 5, 0)),
                    "condition.route_error_rate.percent: must be between 0.1 and 100",
                ),
                (
                    c(error_rate("", f64::NAN, 5, 0)),
                    "condition.route_error_rate.percent: must be between 0.1 and 100",
                ),
                (
                    c(error_rate("", 5.0, 0, 0)),
                    "condition.route_error_rate.window_minutes: must be between 1 and 1440",
                ),
                (
                    c(error_rate("", 5.0, 1441, 0)),
                    "condition.route_error_rate.window_minutes: must be between 1 and 1440",
                ),
                (
                    c(error_rate("Bad Route", 5.0, 5, 0)),
                    "condition.route_error_rate.route",
                ),
                (
                    c(Kind::RouteLatency(pb::RouteLatencyCondition {
                        route: String::new(),
                        p99_ms: 0,
                        window_minutes: 5,
                        min_calls: 0,
                    })),
                    "condition.route_latency.p99_ms: must be between 1 and 300000",
                ),
                (
                    c(Kind::TokenTrafficSpike(pb::TokenTrafficSpikeCondition {
                        factor: 1.4,
                        min_calls: 0,
                    })),
                    "condition.token_traffic_spike.factor: must be between 1.5 and 1000",
                ),
                (
                    c(Kind::TokenTrafficSpike(pb::TokenTrafficSpikeCondition {
                        factor: 1000.1,
                        min_calls: 0,
                    })),
                    "condition.token_traffic_spike.factor: must be between 1.5 and 1000",
                ),
                (
                    c(Kind::SyncLag(pb::SyncLagCondition { seconds: 0 })),
                    "condition.sync_lag.seconds: must be between 1 and 86400",
                ),
                (
                    c(Kind::GatewaySilent(pb::GatewaySilentCondition {
                        minutes: 1441,
                    })),
                    "condition.gateway_silent.minutes: must be between 1 and 1440",
                ),
            ]
        };
        for (r, want) in cases {
            let e = CreateAlertRuleInput::try_from(r).unwrap_err().to_string();
            assert!(e.starts_with(want), "{e} (wanted {want})");
        }
        type Mutation = Box<dyn FnOnce(&mut pb::CreateAlertRuleRequest)>;
        let fields: Vec<(Mutation, &str)> = vec![
            (Box::new(|r| r.name = String::new()), "name"),
            (Box::new(|r| r.name = "x".repeat(101)), "name"),
            (Box::new(|r| r.team_id = "Bad Team".into()), "team_id"),
            (Box::new(|r| r.webhook_url = String::new()), "webhook_url"),
            (
                Box::new(|r| r.webhook_url = "ftp://h/x".into()),
                "webhook_url",
            ),
            (
                Box::new(|r| r.webhook_url = "/relative".into()),
                "webhook_url",
            ),
            (
                Box::new(|r| r.webhook_url = "https://u:p@h.example/x".into()),
                "webhook_url",
            ),
            (
                Box::new(|r| r.webhook_url = "https://h.example/x#frag".into()),
                "webhook_url",
            ),
            (
                Box::new(|r| r.webhook_url = format!("https://h.example/{}", "x".repeat(2048))),
                "webhook_url",
            ),
        ];
        for (mutate, field) in fields {
            let e = create(mutate).unwrap_err();
            assert_eq!(e.fields(), [field], "{e}");
        }
        // Every broken rule is reported, the condition's parameters included.
        let e = create(|r| {
            r.team_id = "Bad Team".into();
            r.webhook_url = "ftp://x".into();
            with(error_rate("Bad Route", 0.0, 0, 5))(r);
        })
        .unwrap_err();
        assert_eq!(
            e.fields(),
            [
                "team_id",
                "webhook_url",
                "condition.route_error_rate.route",
                "condition.route_error_rate.percent",
                "condition.route_error_rate.window_minutes"
            ]
        );
    }

    #[test]
    fn defaults_and_round_trip() {
        use pb::alert_condition::Kind;
        let r = create(with(error_rate("", 2.5, 10, 0))).unwrap();
        assert_eq!(
            r.condition,
            Condition::RouteErrorRate {
                route: None,
                percent: 2.5,
                window_minutes: 10,
                min_calls: DEFAULT_ROUTE_MIN_CALLS
            }
        );
        let r = create(with(Kind::TokenTrafficSpike(
            pb::TokenTrafficSpikeCondition {
                factor: 3.0,
                min_calls: 0,
            },
        )))
        .unwrap();
        assert_eq!(
            r.condition,
            Condition::TokenTrafficSpike {
                factor: 3.0,
                min_calls: DEFAULT_SPIKE_MIN_CALLS
            }
        );
        for c in [
            Condition::TokenExpiring { days: 3 },
            Condition::TokenUnused {
                days: 30,
                include_never_used: true,
            },
            Condition::RouteErrorRate {
                route: Some("billing".into()),
                percent: 0.1,
                window_minutes: 1440,
                min_calls: 5,
            },
            Condition::RouteLatency {
                route: None,
                p99_ms: 250,
                window_minutes: 5,
                min_calls: 20,
            },
            Condition::TokenTrafficSpike {
                factor: 1.5,
                min_calls: 100,
            },
            Condition::SyncLag { seconds: 60 },
            Condition::GatewaySilent { minutes: 10 },
            Condition::GatewayDropping,
        ] {
            assert_eq!(Condition::from_pb("condition", Some(c.to_pb())).unwrap(), c);
            let json = serde_json::to_string(&c).unwrap();
            assert!(
                json.contains(&format!("\"kind\":\"{}\"", c.kind())),
                "{json}"
            );
            assert_eq!(serde_json::from_str::<Condition>(&json).unwrap(), c);
            assert_eq!(
                c.system_wide(),
                matches!(
                    c,
                    Condition::SyncLag { .. }
                        | Condition::GatewaySilent { .. }
                        | Condition::GatewayDropping
                )
            );
        }
    }

    #[test]
    fn update_needs_a_change_and_a_rule_id() {
        let id = "alr_0123456789abcdef0123456789abcdef";
        let r = pb::UpdateAlertRuleRequest {
            id: id.into(),
            ..Default::default()
        };
        assert_eq!(parse_update(r).unwrap_err().fields(), ["update"]);
        let r = pb::UpdateAlertRuleRequest {
            id: id.into(),
            rotate_secret: true,
            ..Default::default()
        };
        assert!(parse_update(r).unwrap().1.rotate_secret);
        let r = pb::UpdateAlertRuleRequest {
            id: "tok_0123456789abcdef0123456789abcdef".into(),
            enabled: Some(false),
            ..Default::default()
        };
        assert_eq!(parse_update(r).unwrap_err().fields(), ["id"]);
        let r = pb::UpdateAlertRuleRequest {
            id: id.into(),
            condition: Some(pb::AlertCondition { kind: None }),
            ..Default::default()
        };
        assert_eq!(parse_update(r).unwrap_err().fields(), ["condition"]);
    }

    #[test]
    fn delivery_filter() {
        let f = DeliveryFilter::try_from(pb::ListAlertDeliveriesRequest {
            status: pb::AlertDeliveryStatus::Retrying as i32,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(f.status, Some(DeliveryStatus::Retrying));
        let e = DeliveryFilter::try_from(pb::ListAlertDeliveriesRequest {
            status: 99,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.field, "status");
        let e = DeliveryFilter::try_from(pb::ListAlertDeliveriesRequest {
            page_token: pagination::encode(RULES_PAGE_KIND, &["1".into(), "x".into()]),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.field, "page_token");
        for s in [
            DeliveryStatus::Succeeded,
            DeliveryStatus::Retrying,
            DeliveryStatus::Failed,
        ] {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
    }
}
