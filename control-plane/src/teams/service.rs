//! `TeamService` RPCs: teams and their membership. Validate, ask policy, call the store, map
//! the error.

use super::model::{NewTeam, PAGE_KIND, TeamFilter};
use crate::authz;
use crate::context;
use crate::error::ApiError;
use crate::ids::{TeamId, UserId};
use crate::pagination;
use crate::policy::{Action, Role};
use crate::store::{DynStore, StoreError};
use crate::users::{parse_user_id, validate_email};
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

    /// The member's current role (NotFound if not a member).
    async fn role_of(&self, team: &TeamId, user: &UserId) -> Result<Role, Status> {
        let roles = self.store.user_roles(user).await.map_err(ApiError::from)?;
        roles
            .into_iter()
            .find(|(t, _)| t == team)
            .map(|(_, r)| r)
            .ok_or_else(|| {
                ApiError::from(StoreError::NotFound {
                    entity: "member",
                    id: format!("{user} in team {team}"),
                })
                .into()
            })
    }
}

fn team_id(field: &str, v: &str) -> Result<TeamId, Status> {
    names::validate_team_id(field, v).map_err(ApiError::from)?;
    Ok(TeamId(v.to_owned()))
}

#[tonic::async_trait]
impl TeamService for TeamApi {
    async fn create_team(
        &self,
        req: Request<pb::CreateTeamRequest>,
    ) -> Result<Response<pb::CreateTeamResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let input = NewTeam::try_from(req.into_inner()).map_err(ApiError::from)?;
        authz::change(
            &self.store,
            &ctx,
            &caller,
            Action::CreateTeam,
            "team.create",
            input.id.as_str(),
        )
        .await?;
        let team = self
            .store
            .create_team(&ctx, input, caller.user_id())
            .await
            .map_err(ApiError::from)?;
        tracing::info!(team = %team.id, "team created");
        // The creating user is now the team's ADMIN (the caller was resolved before).
        let mut caller = caller;
        if caller.user_id().is_some() {
            caller
                .roles
                .insert(team.id.clone(), crate::policy::Role::Admin);
        }
        Ok(Response::new(pb::CreateTeamResponse {
            team: Some(team.to_pb_for(&caller)),
        }))
    }

    async fn get_team(
        &self,
        req: Request<pb::GetTeamRequest>,
    ) -> Result<Response<pb::GetTeamResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        authz::read(&caller, Action::ReadTeams)?;
        let id = team_id("id", &req.get_ref().id)?;
        let team = self.store.get_team(&id).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::GetTeamResponse {
            team: Some(team.to_pb_for(&caller)),
        }))
    }

    async fn list_teams(
        &self,
        req: Request<pb::ListTeamsRequest>,
    ) -> Result<Response<pb::ListTeamsResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        authz::read(&caller, Action::ReadTeams)?;
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
            teams: page
                .items
                .into_iter()
                .map(|t| t.to_pb_for(&caller))
                .collect(),
            next_page_token,
        }))
    }

    async fn update_team(
        &self,
        req: Request<pb::UpdateTeamRequest>,
    ) -> Result<Response<pb::UpdateTeamResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let (id, patch) = super::model::parse_update(req.into_inner()).map_err(ApiError::from)?;
        authz::change(
            &self.store,
            &ctx,
            &caller,
            Action::UpdateTeam(&id),
            "team.update",
            id.as_str(),
        )
        .await?;
        let team = self
            .store
            .update_team(&ctx, &id, patch)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::UpdateTeamResponse {
            team: Some(team.to_pb_for(&caller)),
        }))
    }

    async fn delete_team(
        &self,
        req: Request<pb::DeleteTeamRequest>,
    ) -> Result<Response<pb::DeleteTeamResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let r = req.into_inner();
        let id = team_id("id", &r.id)?;
        authz::change(
            &self.store,
            &ctx,
            &caller,
            Action::DeleteTeam(&id),
            "team.delete",
            id.as_str(),
        )
        .await?;
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

    async fn claim_team(
        &self,
        req: Request<pb::ClaimTeamRequest>,
    ) -> Result<Response<pb::ClaimTeamResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let id = team_id("team_id", &req.get_ref().team_id)?;
        let team = self.store.get_team(&id).await.map_err(ApiError::from)?;
        authz::change(
            &self.store,
            &ctx,
            &caller,
            Action::ClaimTeam {
                team: &id,
                has_members: team.member_count > 0,
            },
            "team.claim",
            id.as_str(),
        )
        .await?;
        let user = caller.user_id().ok_or_else(|| {
            ApiError::new(
                crate::error::ErrorCode::PermissionDenied,
                "permission denied: service accounts cannot claim teams",
            )
        })?;
        let m = self
            .store
            .claim_team(&ctx, &id, user)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ClaimTeamResponse {
            member: Some(m.into()),
        }))
    }

    async fn list_members(
        &self,
        req: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        let id = team_id("team_id", &req.get_ref().team_id)?;
        authz::read(&caller, Action::ListMembers(&id))?;
        self.store.get_team(&id).await.map_err(ApiError::from)?;
        let members = self.store.list_members(&id).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::ListMembersResponse {
            members: members.into_iter().map(Into::into).collect(),
        }))
    }

    async fn add_member(
        &self,
        req: Request<pb::AddMemberRequest>,
    ) -> Result<Response<pb::AddMemberResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let r = req.into_inner();
        let team = team_id("team_id", &r.team_id)?;
        let role = Role::from_pb("role", r.role).map_err(ApiError::from)?;
        authz::change(
            &self.store,
            &ctx,
            &caller,
            Action::AddMember { team: &team, role },
            "member.add",
            &r.user,
        )
        .await?;
        let user = if r.user.starts_with("usr_") {
            parse_user_id("user", &r.user).map_err(ApiError::from)?
        } else {
            let email = validate_email("user", &r.user).map_err(ApiError::from)?;
            self.store
                .find_user_by_email(&email)
                .await
                .map_err(ApiError::from)?
                .map(|(u, _)| u.id)
                .ok_or_else(|| {
                    ApiError::from(StoreError::NotFound {
                        entity: "user",
                        id: email.clone(),
                    })
                })?
        };
        let m = self
            .store
            .add_member(&ctx, &team, &user, role)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::AddMemberResponse {
            member: Some(m.into()),
        }))
    }

    async fn update_member_role(
        &self,
        req: Request<pb::UpdateMemberRoleRequest>,
    ) -> Result<Response<pb::UpdateMemberRoleResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let r = req.into_inner();
        let team = team_id("team_id", &r.team_id)?;
        let user = parse_user_id("user_id", &r.user_id).map_err(ApiError::from)?;
        let new = Role::from_pb("role", r.role).map_err(ApiError::from)?;
        let current = self.role_of(&team, &user).await?;
        authz::change(
            &self.store,
            &ctx,
            &caller,
            Action::ChangeMemberRole {
                team: &team,
                current,
                new,
            },
            "member.update_role",
            user.as_str(),
        )
        .await?;
        let m = self
            .store
            .update_member_role(&ctx, &team, &user, new)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::UpdateMemberRoleResponse {
            member: Some(m.into()),
        }))
    }

    async fn remove_member(
        &self,
        req: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let r = req.into_inner();
        let team = team_id("team_id", &r.team_id)?;
        let user = parse_user_id("user_id", &r.user_id).map_err(ApiError::from)?;
        let current = self.role_of(&team, &user).await?;
        let is_self = caller.user_id() == Some(&user);
        authz::change(
            &self.store,
            &ctx,
            &caller,
            Action::RemoveMember {
                team: &team,
                current,
                is_self,
            },
            "member.remove",
            user.as_str(),
        )
        .await?;
        self.store
            .remove_member(&ctx, &team, &user)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::RemoveMemberResponse {}))
    }
}
