//! Dashboard input rules (wire -> domain) and the answer (domain -> wire).

use crate::audit::AuditEvent;
use crate::ids::TeamId;
use crate::time::{Millis, to_timestamp};
use crate::tokens::Token;
use keygate_contracts::{FieldError, names};
use keygate_proto::v1 as pb;

pub const DAY_MS: Millis = 86_400_000;
/// Days in the "tokens created" series, today included.
pub const CREATED_DAYS: i64 = 30;

/// Validated GetDashboard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardRequest {
    /// Only this team; `None`: every team the caller may read.
    pub team_id: Option<TeamId>,
    pub expiring_within_days: u32,
    pub unused_for_days: u32,
    pub list_limit: u32,
}

fn in_range(field: &str, v: u32, default: u32, max: u32) -> Result<u32, FieldError> {
    match v {
        0 => Ok(default),
        v if v <= max => Ok(v),
        _ => Err(FieldError::new(
            field,
            format!("must be between 1 and {max} (0: {default})"),
        )),
    }
}

impl TryFrom<pb::GetDashboardRequest> for DashboardRequest {
    type Error = FieldError;

    fn try_from(r: pb::GetDashboardRequest) -> Result<Self, FieldError> {
        let team_id = if r.team_id.is_empty() {
            None
        } else {
            names::validate_team_id("team_id", &r.team_id)?;
            Some(TeamId(r.team_id))
        };
        Ok(Self {
            team_id,
            expiring_within_days: in_range("expiring_within_days", r.expiring_within_days, 7, 365)?,
            unused_for_days: in_range("unused_for_days", r.unused_for_days, 30, 365)?,
            list_limit: in_range("list_limit", r.list_limit, 10, 50)?,
        })
    }
}

/// What one dashboard covers and when.
#[derive(Debug, Clone)]
pub struct DashboardScope {
    /// `None`: everything (system admins).
    pub teams: Option<Vec<TeamId>>,
    pub now: Millis,
}

impl DashboardScope {
    /// Start of the first day of the "tokens created" series.
    pub fn created_since(&self) -> Millis {
        day_start(self.now) - (CREATED_DAYS - 1) * DAY_MS
    }
}

/// Start of the UTC day holding `ms`.
pub fn day_start(ms: Millis) -> Millis {
    ms.div_euclid(DAY_MS) * DAY_MS
}

/// Active tokens of one team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamTokenCount {
    pub team_id: TeamId,
    pub team_name: String,
    pub active_tokens: u64,
}

/// The aggregates only the dashboard reads (`store::DashboardStore`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DashboardCounts {
    pub routes: u64,
    pub teams: u64,
    pub users: u64,
    /// `(day start, tokens created that UTC day)` for days with any, oldest first.
    pub created_per_day: Vec<(Millis, u64)>,
    /// Every covered team, most active tokens first (then by id).
    pub tokens_per_team: Vec<TeamTokenCount>,
}

/// A count over every matching token and the first few of them.
#[derive(Debug, Clone, Default)]
pub struct TokenList {
    pub count: u64,
    pub first: Vec<Token>,
}

/// Today's traffic (since 00:00 UTC), from the usage rollups.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageToday {
    pub calls: u64,
    pub errors: u64,
    pub success_rate: f64,
}

/// The whole answer.
#[derive(Debug, Clone, Default)]
pub struct Dashboard {
    pub active_tokens: u64,
    pub counts: DashboardCounts,
    /// First day of the "tokens created" series.
    pub created_since: Millis,
    pub expiring: TokenList,
    pub unused: TokenList,
    pub never_used: TokenList,
    pub usage_today: UsageToday,
    pub recent_audit: Vec<AuditEvent>,
}

/// `CREATED_DAYS` days from `since`, each with its count (0 when `sparse` has none).
pub fn every_day(since: Millis, sparse: &[(Millis, u64)]) -> Vec<(Millis, u64)> {
    (0..CREATED_DAYS)
        .map(|i| {
            let day = since + i * DAY_MS;
            let n = sparse
                .iter()
                .find(|(d, _)| *d == day)
                .map_or(0, |(_, n)| *n);
            (day, n)
        })
        .collect()
}

impl Dashboard {
    /// The wire form; token lists carry `caller_can_change` for `caller`.
    pub fn to_pb(self, caller: &crate::policy::Caller) -> pb::GetDashboardResponse {
        let d = self;
        let tokens = |l: Vec<Token>| l.into_iter().map(|t| t.to_pb_for(caller)).collect();
        pb::GetDashboardResponse {
            active_tokens: d.active_tokens,
            routes: d.counts.routes,
            teams: d.counts.teams,
            users: d.counts.users,
            calls_today: d.usage_today.calls,
            errors_today: d.usage_today.errors,
            success_rate_today: d.usage_today.success_rate,
            expiring_count: d.expiring.count,
            expiring: tokens(d.expiring.first),
            unused_count: d.unused.count,
            unused: tokens(d.unused.first),
            never_used_count: d.never_used.count,
            never_used: tokens(d.never_used.first),
            tokens_created: every_day(d.created_since, &d.counts.created_per_day)
                .into_iter()
                .map(|(day, count)| pb::DayCount {
                    day: Some(to_timestamp(day)),
                    count,
                })
                .collect(),
            tokens_per_team: d
                .counts
                .tokens_per_team
                .into_iter()
                .map(|t| pb::TeamTokenCount {
                    team_id: t.team_id.0,
                    team_name: t.team_name,
                    active_tokens: t.active_tokens,
                })
                .collect(),
            recent_audit: d.recent_audit.into_iter().map(Into::into).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_defaults_and_limits() {
        let ok = DashboardRequest::try_from(pb::GetDashboardRequest::default()).unwrap();
        assert_eq!(
            ok,
            DashboardRequest {
                team_id: None,
                expiring_within_days: 7,
                unused_for_days: 30,
                list_limit: 10,
            }
        );
        let bad = |f: fn(&mut pb::GetDashboardRequest)| {
            let mut r = pb::GetDashboardRequest::default();
            f(&mut r);
            DashboardRequest::try_from(r).unwrap_err().field
        };
        assert_eq!(
            bad(|r| r.expiring_within_days = 366),
            "expiring_within_days"
        );
        assert_eq!(bad(|r| r.unused_for_days = 366), "unused_for_days");
        assert_eq!(bad(|r| r.list_limit = 51), "list_limit");
        assert_eq!(bad(|r| r.team_id = "Not A Team".into()), "team_id");
        let max = DashboardRequest::try_from(pb::GetDashboardRequest {
            team_id: "core".into(),
            expiring_within_days: 365,
            unused_for_days: 1,
            list_limit: 50,
        })
        .unwrap();
        assert_eq!(max.team_id, Some(TeamId("core".into())));
        assert_eq!(
            (
                max.expiring_within_days,
                max.unused_for_days,
                max.list_limit
            ),
            (365, 1, 50)
        );
    }

    #[test]
    fn every_day_of_the_series_is_present() {
        let now = 1_765_000_000_000 + 5 * 3_600_000;
        let scope = DashboardScope { teams: None, now };
        let since = scope.created_since();
        assert_eq!(since % DAY_MS, 0);
        assert_eq!(day_start(now) - since, 29 * DAY_MS, "today is the last day");
        let days = every_day(since, &[(since, 2), (day_start(now), 5)]);
        assert_eq!(days.len(), 30);
        assert_eq!(days[0], (since, 2));
        assert_eq!(days[29], (day_start(now), 5));
        assert!(days[1..29].iter().all(|(_, n)| *n == 0));
        assert!(days.windows(2).all(|w| w[1].0 - w[0].0 == DAY_MS));
        assert_eq!(day_start(-1), -DAY_MS, "before 1970 floors too");
    }
}
