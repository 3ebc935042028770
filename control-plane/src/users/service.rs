//! `UserService` RPCs.

use super::model::{PAGE_KIND, UserFilter, parse_user_id, to_pb};
use crate::authz;
use crate::context;
use crate::error::ApiError;
use crate::ids::{TeamId, UserId};
use crate::pagination;
use crate::policy::{Action, Caller, Role};
use crate::store::DynStore;
use keygate_contracts::names;
use keygate_proto::v1 as pb;
use keygate_proto::v1::user_service_server::UserService;
use tonic::{Request, Response, Status};

pub struct UserApi {
    store: DynStore,
}

impl UserApi {
    pub fn new(store: DynStore) -> Self {
        Self { store }
    }

    /// The target's roles that the caller may see, and whether the caller manages them
    /// (ADMIN or MANAGER of a team they are in).
    async fn visible_roles(
        &self,
        caller: &Caller,
        user: &UserId,
    ) -> Result<(Vec<(TeamId, Role)>, bool), Status> {
        let roles = self.store.user_roles(user).await.map_err(ApiError::from)?;
        if caller.system_admin || caller.user_id() == Some(user) {
            return Ok((roles, true));
        }
        let manages = roles
            .iter()
            .any(|(t, _)| caller.role(t).is_some_and(|r| r >= Role::Manager));
        let shown = roles
            .into_iter()
            .filter(|(t, _)| caller.role(t).is_some())
            .collect();
        Ok((shown, manages))
    }

    async fn user_pb(&self, caller: &Caller, id: &UserId) -> Result<pb::User, Status> {
        let user = self.store.get_user(id).await.map_err(ApiError::from)?;
        let (roles, _) = self.visible_roles(caller, id).await?;
        Ok(to_pb(user, roles))
    }
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn list_users(
        &self,
        req: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        authz::read(&caller, Action::ListUsers)?;
        let r = req.into_inner();
        names::validate_text("query", &r.query, 100, false, false).map_err(ApiError::from)?;
        let team_id = if r.team_id.is_empty() {
            None
        } else {
            names::validate_team_id("team_id", &r.team_id).map_err(ApiError::from)?;
            Some(TeamId(r.team_id))
        };
        let after = pagination::decode(PAGE_KIND, &r.page_token, 2)
            .map_err(ApiError::from)?
            .map(|p| (p[0].clone(), UserId(p[1].clone())));
        let filter = UserFilter {
            query: (!r.query.trim().is_empty()).then(|| r.query.trim().to_owned()),
            team_id,
            visible_teams: (!caller.system_admin).then(|| caller.teams_with(Role::Manager)),
            limit: pagination::page_size(r.page_size).map_err(ApiError::from)?,
            after,
        };
        let page = self
            .store
            .list_users(&filter)
            .await
            .map_err(ApiError::from)?;
        let next_page_token = match (page.more, page.items.last()) {
            (true, Some(last)) => {
                pagination::encode(PAGE_KIND, &[last.email.clone(), last.id.0.clone()])
            }
            _ => String::new(),
        };
        let mut users = Vec::with_capacity(page.items.len());
        for u in page.items {
            let (roles, _) = self.visible_roles(&caller, &u.id).await?;
            users.push(to_pb(u, roles));
        }
        Ok(Response::new(pb::ListUsersResponse {
            users,
            next_page_token,
        }))
    }

    async fn get_user(
        &self,
        req: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        let id = parse_user_id("id", &req.get_ref().id).map_err(ApiError::from)?;
        let (_, manages) = self.visible_roles(&caller, &id).await?;
        let is_self = caller.user_id() == Some(&id);
        authz::read(
            &caller,
            Action::ReadUser {
                is_self,
                manages_them: manages,
            },
        )?;
        Ok(Response::new(pb::GetUserResponse {
            user: Some(self.user_pb(&caller, &id).await?),
        }))
    }

    async fn update_user(
        &self,
        req: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::UpdateUserResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let r = req.into_inner();
        let (id, patch) = super::model::parse_update(&r).map_err(ApiError::from)?;
        let is_self = caller.user_id() == Some(&id);
        if patch.display_name.is_some() {
            authz::change(
                &self.store,
                &ctx,
                &caller,
                Action::RenameUser { is_self },
                "user.update",
                id.as_str(),
            )
            .await?;
        }
        if patch.system_admin.is_some() {
            authz::change(
                &self.store,
                &ctx,
                &caller,
                Action::SetSystemAdmin,
                "user.update",
                id.as_str(),
            )
            .await?;
        }
        self.store
            .update_user(&ctx, &id, patch)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::UpdateUserResponse {
            user: Some(self.user_pb(&caller, &id).await?),
        }))
    }

    async fn disable_user(
        &self,
        req: Request<pb::DisableUserRequest>,
    ) -> Result<Response<pb::DisableUserResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let id = parse_user_id("id", &req.get_ref().id).map_err(ApiError::from)?;
        authz::change(
            &self.store,
            &ctx,
            &caller,
            Action::DisableUser,
            "user.disable",
            id.as_str(),
        )
        .await?;
        if caller.user_id() == Some(&id) {
            return Err(ApiError::new(
                crate::error::ErrorCode::FailedPrecondition,
                "you cannot disable yourself",
            )
            .into());
        }
        self.store
            .set_user_disabled(&ctx, &id, true)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::DisableUserResponse {
            user: Some(self.user_pb(&caller, &id).await?),
        }))
    }

    async fn enable_user(
        &self,
        req: Request<pb::EnableUserRequest>,
    ) -> Result<Response<pb::EnableUserResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let id = parse_user_id("id", &req.get_ref().id).map_err(ApiError::from)?;
        authz::change(
            &self.store,
            &ctx,
            &caller,
            Action::DisableUser,
            "user.enable",
            id.as_str(),
        )
        .await?;
        self.store
            .set_user_disabled(&ctx, &id, false)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::EnableUserResponse {
            user: Some(self.user_pb(&caller, &id).await?),
        }))
    }
}
