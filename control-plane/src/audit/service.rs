//! `AuditService` RPCs.

use super::export::{csv_header, csv_row, ndjson_line};
use super::model::{AuditFilter, AuditPage, PAGE_KIND};
use crate::authz;
use crate::context;
use crate::error::ApiError;
use crate::ids::TeamId;
use crate::pagination;
use crate::policy::{Action, Caller};
use crate::store::DynStore;
use futures::StreamExt;
use futures::stream::BoxStream;
use keygate_proto::v1 as pb;
use keygate_proto::v1::audit_service_server::AuditService;
use tonic::{Request, Response, Status};

pub struct AuditApi {
    store: DynStore,
}

impl AuditApi {
    pub fn new(store: DynStore) -> Self {
        Self { store }
    }
}

/// Limits a filter to what the caller may read: one of its teams, or (system admins) all.
fn scope_filter(caller: &Caller, filter: &mut AuditFilter) -> Result<(), Status> {
    if let Some(team) = &filter.team_id {
        authz::read(caller, Action::ReadAudit(&TeamId(team.clone())))?;
    }
    filter.visible_teams = caller
        .visible_teams()
        .map(|teams| teams.into_iter().map(|t| t.0).collect());
    Ok(())
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_events(
        &self,
        req: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        let mut page = AuditPage::try_from(req.into_inner()).map_err(ApiError::from)?;
        scope_filter(&caller, &mut page.filter)?;
        let (items, total) = self.store.list_audit(&page).await.map_err(ApiError::from)?;
        let next_page_token = match (items.more, items.items.last()) {
            (true, Some(last)) => pagination::encode(PAGE_KIND, &[last.seq.to_string()]),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: items.items.into_iter().map(Into::into).collect(),
            next_page_token,
            total_size: total,
        }))
    }

    type ExportAuditEventsStream =
        BoxStream<'static, Result<pb::ExportAuditEventsResponse, Status>>;

    async fn export_audit_events(
        &self,
        req: Request<pb::ExportAuditEventsRequest>,
    ) -> Result<Response<Self::ExportAuditEventsStream>, Status> {
        let (caller, _) = context::caller(&req)?;
        let r = req.into_inner();
        let mut filter = AuditFilter::try_from(r.filter).map_err(ApiError::from)?;
        scope_filter(&caller, &mut filter)?;
        let csv = match pb::ExportFormat::try_from(r.format) {
            Ok(pb::ExportFormat::Unspecified | pb::ExportFormat::Ndjson) => false,
            Ok(pb::ExportFormat::Csv) => true,
            Err(_) => return Err(ApiError::invalid("format", "must be NDJSON or CSV").into()),
        };
        let header = csv.then(csv_header);
        let rows = self.store.export_audit(filter).map(move |r| {
            r.map(|e| if csv { csv_row(&e) } else { ndjson_line(&e) })
                .map_err(|e| Status::from(ApiError::from(e)))
        });
        let lines = futures::stream::iter(header.map(Ok)).chain(rows).boxed();
        let chunks = super::export::chunked(lines)
            .map(|c| c.map(|data| pb::ExportAuditEventsResponse { data }))
            .boxed();
        Ok(Response::new(chunks))
    }

    async fn verify_audit_chain(
        &self,
        req: Request<pb::VerifyAuditChainRequest>,
    ) -> Result<Response<pb::VerifyAuditChainResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        authz::read(&caller, Action::ReadGlobalAudit)?;
        let report = self
            .store
            .verify_audit_chain()
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(match report.first_bad {
            None => pb::VerifyAuditChainResponse {
                ok: true,
                events_checked: report.checked,
                first_bad_seq: 0,
                message: format!("audit chain intact: {} events verified", report.checked),
            },
            Some((seq, reason)) => pb::VerifyAuditChainResponse {
                ok: false,
                events_checked: report.checked,
                first_bad_seq: seq,
                message: format!("audit chain broken at seq {seq}: {reason}"),
            },
        }))
    }
}
