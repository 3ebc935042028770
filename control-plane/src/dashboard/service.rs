//! `DashboardService` RPC: validate, scope to what the caller may read, load, map the error.

use super::model::{
    DAY_MS, Dashboard, DashboardRequest, DashboardScope, TokenList, UsageToday, day_start,
};
use crate::audit::{AuditFilter, AuditPage};
use crate::authz;
use crate::context;
use crate::error::ApiError;
use crate::policy::Action;
use crate::store::{DynStore, StoreResult};
use crate::time::now_ms;
use crate::tokens::{TokenFilter, TokenSort, TokenStatus};
use crate::usage::analytics::{Tier, UsageScope};
use keygate_proto::v1 as pb;
use keygate_proto::v1::dashboard_service_server::DashboardService;
use tonic::{Request, Response, Status};

pub struct DashboardApi {
    store: DynStore,
}

impl DashboardApi {
    pub fn new(store: DynStore) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl DashboardService for DashboardApi {
    async fn get_dashboard(
        &self,
        req: Request<pb::GetDashboardRequest>,
    ) -> Result<Response<pb::GetDashboardResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        let input = DashboardRequest::try_from(req.into_inner()).map_err(ApiError::from)?;
        // A dashboard reads the covered teams' tokens and audit rows: VIEWER+ of each.
        let teams = match &input.team_id {
            Some(team) => {
                authz::read(&caller, Action::ReadTokens(team))?;
                self.store.get_team(team).await.map_err(ApiError::from)?;
                Some(vec![team.clone()])
            }
            None => caller.visible_teams(),
        };
        let scope = DashboardScope {
            teams,
            now: now_ms(),
        };
        let dashboard = load(&self.store, &input, &scope)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(dashboard.to_pb(&caller)))
    }
}

/// Reads everything the dashboard shows over `scope`, concurrently.
async fn load(
    store: &DynStore,
    input: &DashboardRequest,
    scope: &DashboardScope,
) -> StoreResult<Dashboard> {
    let active = TokenFilter {
        status: Some(TokenStatus::Active),
        visible_teams: scope.teams.clone(),
        limit: input.list_limit,
        ..Default::default()
    };
    let days = |n: u32| i64::from(n) * DAY_MS;
    // Soonest expiry first.
    let expiring = TokenFilter {
        expiring_before: Some(scope.now + days(input.expiring_within_days)),
        sort: TokenSort::ExpiresAt,
        descending: false,
        ..active.clone()
    };
    // Least recently used first.
    let unused = TokenFilter {
        last_used_before: Some(scope.now - days(input.unused_for_days)),
        sort: TokenSort::LastUsedAt,
        descending: false,
        ..active.clone()
    };
    // Waiting the longest first.
    let never_used = TokenFilter {
        never_used: true,
        sort: TokenSort::CreatedAt,
        descending: false,
        ..active.clone()
    };
    let audit = AuditPage {
        filter: AuditFilter {
            visible_teams: scope
                .teams
                .as_ref()
                .map(|t| t.iter().map(|t| t.0.clone()).collect()),
            ..Default::default()
        },
        limit: input.list_limit,
        before_seq: None,
    };
    let created_since = scope.created_since();
    let list = |f: TokenFilter| async move {
        let (page, count) = futures::try_join!(store.list_tokens(&f), store.count_tokens(&f))?;
        StoreResult::Ok(TokenList {
            count,
            first: page.items,
        })
    };
    // Today so far, as one step: 00:00 UTC up to the end of the current minute.
    let today = UsageScope {
        visible_teams: scope.teams.clone(),
        start: day_start(scope.now),
        end: Tier::Minute.ceil(scope.now + 1),
        ..Default::default()
    };
    let (active_tokens, counts, expiring, unused, never_used, (audit, _), usage) = futures::try_join!(
        store.count_tokens(&active),
        store.dashboard_counts(scope.teams.as_deref(), created_since, scope.now),
        list(expiring),
        list(unused),
        list(never_used),
        store.list_audit(&audit),
        store.usage_series(&today, today.end - today.start),
    )?;
    Ok(Dashboard {
        active_tokens,
        counts,
        created_since,
        expiring,
        unused,
        never_used,
        usage_today: UsageToday {
            calls: usage.total.calls,
            errors: usage.total.errors,
            success_rate: usage.total.success_rate(),
        },
        recent_audit: audit.items,
    })
}
