//! `InvitationService` RPCs.

use super::model::{CreateInvitationInput, Invitation, NewInvitation};
use crate::authz;
use crate::context;
use crate::error::ApiError;
use crate::ids::{InvitationId, TeamId};
use crate::policy::{Action, Caller, Role, check};
use crate::sessions::INVITATION_PREFIX;
use crate::store::DynStore;
use crate::time::now_ms;
use keygate_contracts::names;
use keygate_contracts::token::NewToken;
use keygate_proto::v1 as pb;
use keygate_proto::v1::invitation_service_server::InvitationService;
use tonic::{Request, Response, Status};

pub struct InvitationApi {
    store: DynStore,
}

impl InvitationApi {
    pub fn new(store: DynStore) -> Self {
        Self { store }
    }
}

/// Whether `caller` could have created an invitation with these roles.
fn may_invite(caller: &Caller, inv: &Invitation) -> bool {
    inv.roles
        .iter()
        .all(|(team, role)| check(caller, &Action::Invite { team, role: *role }).is_ok())
        || inv.created_by == caller.reference()
}

#[tonic::async_trait]
impl InvitationService for InvitationApi {
    async fn create_invitation(
        &self,
        req: Request<pb::CreateInvitationRequest>,
    ) -> Result<Response<pb::CreateInvitationResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let r = req.into_inner();
        let CreateInvitationInput {
            email,
            roles,
            hours,
        } = CreateInvitationInput::try_from(&r).map_err(ApiError::from)?;
        for (team, role) in &roles {
            authz::change(
                &self.store,
                &ctx,
                &caller,
                Action::Invite { team, role: *role },
                "invitation.create",
                &email,
            )
            .await?;
        }
        let code = NewToken::generate(INVITATION_PREFIX);
        let inv = self
            .store
            .create_invitation(
                &ctx,
                NewInvitation {
                    id: InvitationId::generate(),
                    email,
                    roles,
                    code_hash: code.hash(),
                    expires_at: now_ms() + i64::from(hours) * 3_600_000,
                    system_admin: false,
                },
            )
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::CreateInvitationResponse {
            invitation: Some(inv.into()),
            code: code.expose().to_owned(),
        }))
    }

    async fn list_invitations(
        &self,
        req: Request<pb::ListInvitationsRequest>,
    ) -> Result<Response<pb::ListInvitationsResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        let team = &req.get_ref().team_id;
        let teams: Option<Vec<TeamId>> = if !team.is_empty() {
            names::validate_team_id("team_id", team).map_err(ApiError::from)?;
            let t = TeamId(team.clone());
            authz::read(&caller, Action::ListInvitations(&t))?;
            Some(vec![t])
        } else if caller.system_admin {
            None
        } else {
            let managed = caller.teams_with(Role::Manager);
            if let Some(first) = managed.first() {
                authz::read(&caller, Action::ListInvitations(first))?;
            } else {
                authz::read(&caller, Action::ListInvitations(&TeamId(String::new())))?;
            }
            Some(managed)
        };
        let list = self
            .store
            .list_invitations(teams.as_deref())
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListInvitationsResponse {
            invitations: list.into_iter().map(Into::into).collect(),
        }))
    }

    async fn revoke_invitation(
        &self,
        req: Request<pb::RevokeInvitationRequest>,
    ) -> Result<Response<pb::RevokeInvitationResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let id = InvitationId(req.get_ref().id.clone());
        let inv = self
            .store
            .get_invitation(&id)
            .await
            .map_err(ApiError::from)?;
        if !may_invite(&caller, &inv) {
            let (team, role) = inv
                .roles
                .first()
                .cloned()
                .unwrap_or((TeamId(String::new()), Role::Viewer));
            authz::change(
                &self.store,
                &ctx,
                &caller,
                Action::Invite { team: &team, role },
                "invitation.revoke",
                id.as_str(),
            )
            .await?;
        }
        let inv = self
            .store
            .revoke_invitation(&ctx, &id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::RevokeInvitationResponse {
            invitation: Some(inv.into()),
        }))
    }
}
