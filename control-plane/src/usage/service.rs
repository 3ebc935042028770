//! `UsageService` RPCs: validate, call the store, map the error.

use super::model::{UsageFilter, next_page_token, parse_gateway, parse_ingest};
use crate::authz;
use crate::context;
use crate::error::ApiError;
use crate::policy::Action;
use crate::store::DynStore;
use crate::time::now_ms;
use keygate_proto::v1 as pb;
use keygate_proto::v1::usage_service_server::UsageService;
use tonic::{Request, Response, Status};

/// Largest IngestUsage request accepted: 5,000 events with every text field at its cap fit.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

pub struct UsageApi {
    store: DynStore,
}

impl UsageApi {
    pub fn new(store: DynStore) -> Self {
        Self { store }
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
        let mut batch = parse_ingest(req.into_inner(), now_ms()).map_err(ApiError::from)?;
        batch.reported_by = caller.reference();
        let accepted = self
            .store
            .ingest_usage(&batch)
            .await
            .map_err(ApiError::from)?;
        tracing::debug!(
            gateway = %batch.gateway,
            events = batch.events.len(),
            accepted,
            dropped = batch.dropped,
            "usage ingested"
        );
        if batch.dropped > 0 {
            tracing::warn!(gateway = %batch.gateway, dropped = batch.dropped, "gateway dropped usage events");
        }
        Ok(Response::new(pb::IngestUsageResponse {
            accepted,
            ..Default::default()
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

    type TailUsageEventsStream = futures::stream::BoxStream<'static, Result<pb::UsageEvent, Status>>;
    type ExportUsageStream =
        futures::stream::BoxStream<'static, Result<pb::ExportUsageChunk, Status>>;

    async fn get_usage_summary(
        &self,
        _req: Request<pb::GetUsageSummaryRequest>,
    ) -> Result<Response<pb::GetUsageSummaryResponse>, Status> {
        Err(Status::unimplemented("in progress"))
    }
    async fn list_top_usage(
        &self,
        _req: Request<pb::ListTopUsageRequest>,
    ) -> Result<Response<pb::ListTopUsageResponse>, Status> {
        Err(Status::unimplemented("in progress"))
    }
    async fn batch_get_token_usage(
        &self,
        _req: Request<pb::BatchGetTokenUsageRequest>,
    ) -> Result<Response<pb::BatchGetTokenUsageResponse>, Status> {
        Err(Status::unimplemented("in progress"))
    }
    async fn get_token_usage(
        &self,
        _req: Request<pb::GetTokenUsageRequest>,
    ) -> Result<Response<pb::GetTokenUsageResponse>, Status> {
        Err(Status::unimplemented("in progress"))
    }
    async fn get_route_usage(
        &self,
        _req: Request<pb::GetRouteUsageRequest>,
    ) -> Result<Response<pb::GetRouteUsageResponse>, Status> {
        Err(Status::unimplemented("in progress"))
    }
    async fn tail_usage_events(
        &self,
        _req: Request<pb::TailUsageEventsRequest>,
    ) -> Result<Response<Self::TailUsageEventsStream>, Status> {
        Err(Status::unimplemented("in progress"))
    }
    async fn export_usage(
        &self,
        _req: Request<pb::ExportUsageRequest>,
    ) -> Result<Response<Self::ExportUsageStream>, Status> {
        Err(Status::unimplemented("in progress"))
    }
}
