//! `UsageService` RPCs: validate, call the store, map the error.

use super::analytics::{
    MAX_BATCH_TOKENS, SeriesAnswer, Stats, Tier, TokenFacts, TopBy, UsageScope,
};
use super::model::{UsageFilter, next_page_token, parse_gateway, parse_ingest};
use super::{export, query};
use crate::authz;
use crate::context;
use crate::error::{ApiError, ErrorCode};
use crate::ids::{TeamId, TokenId};
use crate::policy::Action;
use crate::policy::Caller;
use crate::store::DynStore;
use crate::time::now_ms;
use crate::time::{Millis, to_timestamp, to_timestamp_opt};
use crate::tokens::parse_token_id;
use futures::StreamExt;
use futures::stream::BoxStream;
use keygate_contracts::names;
use keygate_proto::v1 as pb;
use keygate_proto::v1::usage_service_server::UsageService;
use std::collections::HashMap;
use tonic::{Request, Response, Status};

/// Largest IngestUsage request accepted: 5,000 events with every text field at its cap fit.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

pub struct UsageApi {
    store: DynStore,
    /// `KEYGATE_USAGE_INGESTION`: when false, IngestUsage refuses every report.
    ingestion: bool,
}

impl UsageApi {
    pub fn new(store: DynStore) -> Self {
        Self {
            store,
            ingestion: true,
        }
    }

    /// Whether IngestUsage accepts reports (GetServerInfo's `usage_enabled`).
    pub fn with_ingestion(mut self, enabled: bool) -> Self {
        self.ingestion = enabled;
        self
    }
}

#[tonic::async_trait]
impl UsageService for UsageApi {
    async fn ingest_usage(
        &self,
        req: Request<pb::IngestUsageRequest>,
    ) -> Result<Response<pb::IngestUsageResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        // The gateway name first: it is the target a refusal is audited with. The events
        // are validated only for callers allowed to send them.
        let gateway = parse_gateway(&req.get_ref().gateway).map_err(ApiError::from)?;
        authz::change(
            &self.store,
            &ctx,
            &caller,
            Action::IngestUsage,
            "usage.ingest",
            &gateway,
        )
        .await?;
        if !self.ingestion {
            return Err(ApiError::new(
                ErrorCode::FailedPrecondition,
                "usage ingestion is disabled on this control plane (KEYGATE_USAGE_INGESTION)",
            )
            .into());
        }
        let mut batch = parse_ingest(req.into_inner(), now_ms()).map_err(ApiError::from)?;
        batch.reported_by = caller.reference();
        let outcome = self
            .store
            .ingest_usage(&batch)
            .await
            .map_err(ApiError::from)?;
        tracing::debug!(
            gateway = %batch.gateway,
            events = batch.events.len(),
            accepted = outcome.events,
            rollups = outcome.rollups,
            replayed = outcome.replayed,
            dropped = batch.dropped,
            "usage ingested"
        );
        if !outcome.replayed && (batch.dropped > 0 || batch.rollups_dropped > 0) {
            tracing::warn!(gateway = %batch.gateway, events_dropped = batch.dropped, rollup_requests_dropped = batch.rollups_dropped, "gateway dropped usage data");
        }
        Ok(Response::new(pb::IngestUsageResponse {
            accepted: outcome.events,
            rollups_accepted: outcome.rollups,
            replayed: outcome.replayed,
        }))
    }

    async fn list_usage_events(
        &self,
        req: Request<pb::ListUsageEventsRequest>,
    ) -> Result<Response<pb::ListUsageEventsResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        let mut filter = UsageFilter::try_from(req.into_inner()).map_err(ApiError::from)?;
        if let Some(team) = &filter.team_id {
            authz::read(&caller, Action::ReadUsage(team))?;
        }
        // Without a team filter a non-admin sees the events of its own teams only (events
        // with no team, such as unknown keys, only system admins see).
        filter.visible_teams = caller.visible_teams();
        let page = self
            .store
            .list_usage(&filter)
            .await
            .map_err(ApiError::from)?;
        let next_page_token = match (page.more, page.items.last()) {
            (true, Some(last)) => next_page_token(last),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListUsageEventsResponse {
            events: page.items.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn list_gateways(
        &self,
        req: Request<pb::ListGatewaysRequest>,
    ) -> Result<Response<pb::ListGatewaysResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        authz::read(&caller, Action::ReadGateways)?;
        let gateways = self.store.list_gateways().await.map_err(ApiError::from)?;
        Ok(Response::new(pb::ListGatewaysResponse {
            gateways: gateways.into_iter().map(Into::into).collect(),
        }))
    }

    type TailUsageEventsStream = BoxStream<'static, Result<pb::UsageEvent, Status>>;
    type ExportUsageStream = BoxStream<'static, Result<pb::ExportUsageChunk, Status>>;

    async fn get_usage_summary(
        &self,
        req: Request<pb::GetUsageSummaryRequest>,
    ) -> Result<Response<pb::GetUsageSummaryResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        let r = req.into_inner();
        let now = now_ms();
        let mut scope = query::parse_query(r.query, now).map_err(ApiError::from)?;
        let step = query::parse_step(r.step_seconds, scope.start, scope.end, now)
            .map_err(ApiError::from)?;
        self.authorize(&caller, &mut scope).await?;
        let a = self
            .store
            .usage_series(&scope, step)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::GetUsageSummaryResponse {
            total: Some((&a.total).into()),
            series: query::points_to_pb(&a),
            step_seconds: (step / 1000) as u32,
            start_time: Some(to_timestamp(scope.start)),
            end_time: Some(to_timestamp(scope.end)),
            tier: query::tier_to_pb(a.tier),
        }))
    }

    async fn list_top_usage(
        &self,
        req: Request<pb::ListTopUsageRequest>,
    ) -> Result<Response<pb::ListTopUsageResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        let r = req.into_inner();
        let now = now_ms();
        let mut scope = query::parse_query(r.query, now).map_err(ApiError::from)?;
        query::widen_long_ranking(&mut scope, now);
        let (by, by_errors, limit) =
            query::parse_top(r.by, r.order, r.limit).map_err(ApiError::from)?;
        self.authorize(&caller, &mut scope).await?;
        let (rows, tier) = self
            .store
            .usage_top(&scope, by, by_errors, limit)
            .await
            .map_err(ApiError::from)?;
        let labels = self
            .labels(&caller, by, rows.iter().map(|r| r.key.clone()))
            .await?;
        Ok(Response::new(pb::ListTopUsageResponse {
            entries: rows
                .into_iter()
                .map(|r| pb::TopUsageEntry {
                    label: labels.get(&r.key).cloned().unwrap_or_default(),
                    success_rate: success_rate(r.calls, r.errors),
                    key: r.key,
                    calls: r.calls,
                    errors: r.errors,
                })
                .collect(),
            tier: query::tier_to_pb(Some(tier)),
        }))
    }

    async fn batch_get_token_usage(
        &self,
        req: Request<pb::BatchGetTokenUsageRequest>,
    ) -> Result<Response<pb::BatchGetTokenUsageResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        let r = req.into_inner();
        if r.token_ids.is_empty() || r.token_ids.len() > MAX_BATCH_TOKENS {
            return Err(ApiError::invalid(
                "token_ids",
                format!("must hold 1-{MAX_BATCH_TOKENS} token ids"),
            )
            .into());
        }
        let ids = r
            .token_ids
            .iter()
            .enumerate()
            .map(|(i, id)| parse_token_id(&format!("token_ids[{i}]"), id))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ApiError::from)?;
        let (start, end) = query::parse_range(
            "",
            r.start_time.as_ref(),
            r.end_time.as_ref(),
            query::DEFAULT_TOKEN_RANGE_MS,
            now_ms(),
        )
        .map_err(ApiError::from)?;
        // Whole UTC days: a list page's figure reads only the day tier (one index range per
        // token instead of the hour and minute tiers at the edges too).
        let (start, end) = (Tier::Day.floor(start), Tier::Day.ceil(end));
        // Only tokens the caller may read: the others are left out, as if unknown.
        let facts: HashMap<TokenId, TokenFacts> = self
            .store
            .token_facts(&ids)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .filter(|f| authz::read(&caller, Action::ReadUsage(&f.team_id)).is_ok())
            .map(|f| (f.id.clone(), f))
            .collect();
        let visible: Vec<TokenId> = facts.keys().cloned().collect();
        let totals: HashMap<TokenId, (u64, u64)> = self
            .store
            .token_totals(&visible, start, end)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .map(|t| (t.token_id, (t.calls, t.errors)))
            .collect();
        let mut seen = std::collections::HashSet::new();
        let usage = ids
            .into_iter()
            .filter(|id| facts.contains_key(id) && seen.insert(id.clone()))
            .map(|id| {
                let (calls, errors) = totals.get(&id).copied().unwrap_or((0, 0));
                pb::TokenUsage {
                    last_used_at: to_timestamp_opt(facts[&id].last_used_at),
                    token_id: id.0,
                    calls,
                    errors,
                }
            })
            .collect();
        Ok(Response::new(pb::BatchGetTokenUsageResponse { usage }))
    }

    async fn get_token_usage(
        &self,
        req: Request<pb::GetTokenUsageRequest>,
    ) -> Result<Response<pb::GetTokenUsageResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        let r = req.into_inner();
        let now = now_ms();
        let token_id = parse_token_id("token_id", &r.token_id).map_err(ApiError::from)?;
        let (start, end, step) = query::parse_detail(
            r.start_time.as_ref(),
            r.end_time.as_ref(),
            r.step_seconds,
            now,
        )
        .map_err(ApiError::from)?;
        let token = self
            .store
            .get_token(&token_id)
            .await
            .map_err(ApiError::from)?;
        authz::read(&caller, Action::ReadUsage(&token.team_id))?;
        let scope = UsageScope {
            token_id: Some(token_id.clone()),
            start,
            end,
            ..Default::default()
        };
        let d = self.detail(&scope, step, TopBy::Route).await?;
        Ok(Response::new(pb::GetTokenUsageResponse {
            token_id: token_id.0,
            total: Some((&d.series.total).into()),
            series: query::points_to_pb(&d.series),
            routes: d.breakdown(&HashMap::new()),
            statuses: d.statuses(),
            first_used_at: to_timestamp_opt(d.first_last.map(|f| f.0)),
            // The token's own record is exact to the request (rollups to the minute).
            last_used_at: to_timestamp_opt(token.last_used_at.or(d.first_last.map(|f| f.1))),
            step_seconds: (step / 1000) as u32,
            tier: query::tier_to_pb(d.series.tier),
        }))
    }

    async fn get_route_usage(
        &self,
        req: Request<pb::GetRouteUsageRequest>,
    ) -> Result<Response<pb::GetRouteUsageResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        let r = req.into_inner();
        let now = now_ms();
        if r.route.is_empty() {
            return Err(ApiError::invalid("route", "is required (a route name or id)").into());
        }
        let team_id = if r.team_id.is_empty() {
            None
        } else {
            names::validate_team_id("team_id", &r.team_id).map_err(ApiError::from)?;
            Some(TeamId(r.team_id))
        };
        let (start, end, step) = query::parse_detail(
            r.start_time.as_ref(),
            r.end_time.as_ref(),
            r.step_seconds,
            now,
        )
        .map_err(ApiError::from)?;
        let route = self
            .store
            .get_route(&r.route)
            .await
            .map_err(ApiError::from)?;
        authz::read(&caller, Action::ReadRoutes)?;
        if let Some(t) = &team_id {
            authz::read(&caller, Action::ReadUsage(t))?;
        }
        // The route's own team sees every call to it; other callers their teams' calls.
        let owner = authz::read(&caller, Action::ReadUsage(&route.team_id)).is_ok();
        let scope = UsageScope {
            route: Some(route.name.clone()),
            team_id,
            visible_teams: if owner { None } else { caller.visible_teams() },
            start,
            end,
            ..Default::default()
        };
        let d = self.detail(&scope, step, TopBy::Token).await?;
        let labels = self
            .labels(
                &caller,
                TopBy::Token,
                d.breakdown.iter().map(|(k, _)| k.clone()),
            )
            .await?;
        Ok(Response::new(pb::GetRouteUsageResponse {
            route: route.name,
            total: Some((&d.series.total).into()),
            series: query::points_to_pb(&d.series),
            tokens: d.breakdown(&labels),
            statuses: d.statuses(),
            first_used_at: to_timestamp_opt(d.first_last.map(|f| f.0)),
            last_used_at: to_timestamp_opt(d.first_last.map(|f| f.1)),
            step_seconds: (step / 1000) as u32,
            tier: query::tier_to_pb(d.series.tier),
        }))
    }

    async fn tail_usage_events(
        &self,
        req: Request<pb::TailUsageEventsRequest>,
    ) -> Result<Response<Self::TailUsageEventsStream>, Status> {
        let (caller, _) = context::caller(&req)?;
        let r = req.into_inner();
        let mut filter = UsageFilter::try_from(pb::ListUsageEventsRequest {
            filter: r.filter,
            ..Default::default()
        })
        .map_err(ApiError::from)?;
        if let Some(team) = &filter.team_id {
            authz::read(&caller, Action::ReadUsage(team))?;
        }
        filter.visible_teams = caller.visible_teams();
        let store = self.store.clone();
        let mut after = store.last_usage_event_id().await.map_err(ApiError::from)?;
        let mut wake = store.subscribe_usage();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<pb::UsageEvent, Status>>(256);
        tokio::spawn(async move {
            loop {
                // Woken by this replica's ingestion; other replicas' events are seen by
                // polling.
                tokio::select! {
                    _ = wake.changed() => {}
                    _ = tokio::time::sleep(TAIL_POLL) => {}
                    _ = tx.closed() => return,
                }
                loop {
                    let events = match store.usage_events_after(&filter, after, TAIL_PAGE).await {
                        Ok(e) => e,
                        Err(e) => {
                            let _ = tx.send(Err(ApiError::from(e).into())).await;
                            return;
                        }
                    };
                    let full = events.len() == TAIL_PAGE as usize;
                    for e in events {
                        after = after.max(e.id);
                        if tx.send(Ok(e.into())).await.is_err() {
                            return;
                        }
                    }
                    if !full {
                        break;
                    }
                }
            }
        });
        Ok(Response::new(
            tokio_stream::wrappers::ReceiverStream::new(rx).boxed(),
        ))
    }

    async fn export_usage(
        &self,
        req: Request<pb::ExportUsageRequest>,
    ) -> Result<Response<Self::ExportUsageStream>, Status> {
        let (caller, _) = context::caller(&req)?;
        let r = req.into_inner();
        let mut scope = query::parse_query(r.query, now_ms()).map_err(ApiError::from)?;
        let csv = match pb::ExportFormat::try_from(r.format) {
            Ok(pb::ExportFormat::Unspecified | pb::ExportFormat::Ndjson) => false,
            Ok(pb::ExportFormat::Csv) => true,
            Err(_) => return Err(ApiError::invalid("format", "must be NDJSON or CSV").into()),
        };
        let events = match pb::ExportKind::try_from(r.kind) {
            Ok(pb::ExportKind::Unspecified | pb::ExportKind::Rollups) => false,
            Ok(pb::ExportKind::Events) => true,
            Err(_) => return Err(ApiError::invalid("kind", "must be ROLLUPS or EVENTS").into()),
        };
        if !events && scope.gateway.is_some() {
            return Err(ApiError::invalid(
                "query.gateway",
                "rollup exports are per team, token and route (rollup rows carry no gateway)",
            )
            .into());
        }
        let tier = query::parse_tier(r.tier).map_err(ApiError::from)?;
        self.authorize(&caller, &mut scope).await?;
        let tier = tier.unwrap_or_else(|| query::coarsest_covering(scope.start, scope.end));
        let lines = if events {
            export::event_lines(self.store.clone(), scope, csv)
        } else {
            export::rollup_lines(self.store.clone(), scope, tier, csv)
        };
        Ok(Response::new(
            crate::audit::export::chunked(lines)
                .map(|c| c.map(|data| pb::ExportUsageChunk { data }))
                .boxed(),
        ))
    }
}

/// Newest events per tail read, and how often a tail polls for other replicas' events.
const TAIL_PAGE: u32 = 500;
const TAIL_POLL: std::time::Duration = std::time::Duration::from_secs(2);

fn success_rate(calls: u64, errors: u64) -> f64 {
    if calls == 0 {
        0.0
    } else {
        (calls - errors.min(calls)) as f64 / calls as f64
    }
}

/// The parts of a token or route detail answer.
struct Detail {
    series: SeriesAnswer,
    breakdown: Vec<(String, Stats)>,
    statuses: Vec<(u16, u64)>,
    first_last: Option<(Millis, Millis)>,
}

impl Detail {
    fn breakdown(&self, labels: &HashMap<String, String>) -> Vec<pb::UsageBreakdown> {
        self.breakdown
            .iter()
            .map(|(k, s)| pb::UsageBreakdown {
                key: k.clone(),
                label: labels.get(k).cloned().unwrap_or_default(),
                stats: Some(s.into()),
            })
            .collect()
    }

    fn statuses(&self) -> Vec<pb::StatusCount> {
        self.statuses
            .iter()
            .map(|(status, calls)| pb::StatusCount {
                status: u32::from(*status),
                calls: *calls,
            })
            .collect()
    }
}

impl UsageApi {
    /// Checks the caller may read what `scope` names, and limits it to the caller's teams.
    async fn authorize(&self, caller: &Caller, scope: &mut UsageScope) -> Result<(), Status> {
        if let Some(team) = &scope.team_id {
            authz::read(caller, Action::ReadUsage(team))?;
        }
        if let Some(token) = &scope.token_id {
            let t = self.store.get_token(token).await.map_err(ApiError::from)?;
            authz::read(caller, Action::ReadUsage(&t.team_id))?;
        }
        if scope.gateway.is_some() {
            // A gateway serves every team: its counts are for system admins.
            authz::read(caller, Action::ReadGateways)?;
        }
        scope.visible_teams = caller.visible_teams();
        Ok(())
    }

    async fn detail(&self, scope: &UsageScope, step: Millis, by: TopBy) -> Result<Detail, Status> {
        let s = &self.store;
        let (series, breakdown, statuses, first_last) = tokio::try_join!(
            s.usage_series(scope, step),
            s.usage_breakdown(scope, by, query::BREAKDOWN_LIMIT),
            s.usage_statuses(scope),
            s.first_last_use(scope),
        )
        .map_err(ApiError::from)?;
        Ok(Detail {
            series,
            breakdown,
            statuses,
            first_last,
        })
    }

    /// Readable names of ranked keys: token names (tokens the caller may read) and team
    /// names.
    async fn labels(
        &self,
        caller: &Caller,
        by: TopBy,
        keys: impl Iterator<Item = String>,
    ) -> Result<HashMap<String, String>, Status> {
        let keys: Vec<String> = keys.filter(|k| !k.is_empty()).collect();
        Ok(match by {
            TopBy::Token => {
                let ids: Vec<TokenId> = keys.into_iter().map(TokenId).collect();
                self.store
                    .token_facts(&ids)
                    .await
                    .map_err(ApiError::from)?
                    .into_iter()
                    .filter(|f| authz::read(caller, Action::ReadUsage(&f.team_id)).is_ok())
                    .map(|f| (f.id.0, f.name))
                    .collect()
            }
            TopBy::Team => self
                .store
                .team_names(&keys)
                .await
                .map_err(ApiError::from)?
                .into_iter()
                .collect(),
            _ => HashMap::new(),
        })
    }
}
