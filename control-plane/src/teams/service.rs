//! `TeamService` RPCs: validate, call the store, map the error.

use super::model::{NewTeam, PAGE_KIND, TeamFilter};
use crate::context;
use crate::error::ApiError;
use crate::ids::TeamId;
use crate::pagination;
use crate::store::DynStore;
use keygate_contracts::names;
use keygate_proto::v1 as pb;
use keygate_proto::v1::team_service_server::TeamService;
use tonic::{Request, Response, Status};

pub struct TeamApi {
    store: DynStore,
}

impl TeamApi {
    pub fn new(store: DynStore) -> Self {
        Self { store }
    }
}

fn team_id(v: &str) -> Result<TeamId, Status> {
    names::validate_team_id("id", v).map_err(ApiError::from)?;
    Ok(TeamId(v.to_owned()))
}

#[tonic::async_trait]
impl TeamService for TeamApi {
    async fn create_team(
        &self,
        req: Request<pb::CreateTeamRequest>,
    ) -> Result<Response<pb::CreateTeamResponse>, Status> {
        let ctx = context::from_request(&req)?;
        let input = NewTeam::try_from(req.into_inner()).map_err(ApiError::from)?;
        let team = self
            .store
            .create_team(&ctx, input)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(team = %team.id, "team created");
        Ok(Response::new(pb::CreateTeamResponse {
            team: Some(team.into()),
        }))
    }

    async fn get_team(
        &self,
        req: Request<pb::GetTeamRequest>,
    ) -> Result<Response<pb::GetTeamResponse>, Status> {
        let id = team_id(&req.get_ref().id)?;
        let team = self.store.get_team(&id).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::GetTeamResponse {
            team: Some(team.into()),
        }))
    }

    async fn list_teams(
        &self,
        req: Request<pb::ListTeamsRequest>,
    ) -> Result<Response<pb::ListTeamsResponse>, Status> {
        let filter = TeamFilter::try_from(req.into_inner()).map_err(ApiError::from)?;
        let page = self
            .store
            .list_teams(&filter)
            .await
            .map_err(ApiError::from)?;
        let next_page_token = match (page.more, page.items.last()) {
            (true, Some(last)) => pagination::encode(PAGE_KIND, std::slice::from_ref(&last.id.0)),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListTeamsResponse {
            teams: page.items.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn update_team(
        &self,
        req: Request<pb::UpdateTeamRequest>,
    ) -> Result<Response<pb::UpdateTeamResponse>, Status> {
        let ctx = context::from_request(&req)?;
        let (id, patch) = super::model::parse_update(req.into_inner()).map_err(ApiError::from)?;
        let team = self
            .store
            .update_team(&ctx, &id, patch)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::UpdateTeamResponse {
            team: Some(team.into()),
        }))
    }

    async fn delete_team(
        &self,
        req: Request<pb::DeleteTeamRequest>,
    ) -> Result<Response<pb::DeleteTeamResponse>, Status> {
        let ctx = context::from_request(&req)?;
        let r = req.into_inner();
        let id = team_id(&r.id)?;
        let done = self
            .store
            .delete_team(&ctx, &id, r.cascade)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(
            team = %id,
            revoked_tokens = done.revoked_token_ids.len(),
            deleted_routes = done.deleted_route_ids.len(),
            "team deleted"
        );
        Ok(Response::new(pb::DeleteTeamResponse {
            revoked_token_ids: done.revoked_token_ids.into_iter().map(|i| i.0).collect(),
            deleted_route_ids: done.deleted_route_ids.into_iter().map(|i| i.0).collect(),
        }))
    }
}
