//! `ServiceAccountService` RPCs: accounts and their management keys.

use super::model::{
    Capability, CreateKeyInput, CreateServiceAccountInput, NewManagementKey, NewServiceAccount,
    ServiceAccount, parse_service_account_id,
};
use crate::authz;
use crate::context::{self, RequestContext};
use crate::error::ApiError;
use crate::ids::{KeyId, ServiceAccountId, TeamId};
use crate::policy::{Action, Caller, Role};
use crate::store::DynStore;
use crate::time::now_ms;
use crate::tokens::MAX_GRACE_SECONDS;
use keygate_contracts::names;
use keygate_contracts::token::{MANAGEMENT_KEY_PREFIX, NewToken};
use keygate_proto::v1 as pb;
use keygate_proto::v1::service_account_service_server::ServiceAccountService;
use tonic::{Request, Response, Status};

pub struct ServiceAccountApi {
    store: DynStore,
}

impl ServiceAccountApi {
    pub fn new(store: DynStore) -> Self {
        Self { store }
    }

    /// Loads the account and asks policy whether `caller` may manage it.
    async fn managed(
        &self,
        ctx: &RequestContext,
        caller: &Caller,
        id: &ServiceAccountId,
        attempted: &'static str,
    ) -> Result<ServiceAccount, Status> {
        let sa = self
            .store
            .get_service_account(id)
            .await
            .map_err(ApiError::from)?;
        authz::change(
            &self.store,
            ctx,
            caller,
            Action::ManageServiceAccount {
                team: &sa.team_id,
                role: sa.role,
            },
            attempted,
            id.as_str(),
        )
        .await?;
        Ok(sa)
    }

    /// The account owning a key, checked like [`Self::managed`].
    async fn key_account(
        &self,
        ctx: &RequestContext,
        caller: &Caller,
        key: &KeyId,
        attempted: &'static str,
    ) -> Result<(), Status> {
        let k = self
            .store
            .get_management_key(key)
            .await
            .map_err(ApiError::from)?;
        let sa = k.service_account_id.ok_or_else(|| {
            ApiError::from(crate::store::StoreError::NotFound {
                entity: "management key",
                id: key.0.clone(),
            })
        })?;
        self.managed(ctx, caller, &sa, attempted).await.map(|_| ())
    }
}

fn sa_id(v: &str) -> Result<ServiceAccountId, Status> {
    Ok(parse_service_account_id("service_account_id", v).map_err(ApiError::from)?)
}

fn key_id(v: &str) -> Result<KeyId, Status> {
    if v.starts_with("mk_") && v.len() == 35 {
        Ok(KeyId(v.to_owned()))
    } else {
        Err(ApiError::invalid(
            "id",
            "must be a management key id (mk_ followed by 32 hex digits)",
        )
        .into())
    }
}

#[tonic::async_trait]
impl ServiceAccountService for ServiceAccountApi {
    async fn create_service_account(
        &self,
        req: Request<pb::CreateServiceAccountRequest>,
    ) -> Result<Response<pb::CreateServiceAccountResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let r = req.into_inner();
        let CreateServiceAccountInput {
            team_id: team,
            name,
            description,
            role,
            capability,
        } = CreateServiceAccountInput::try_from(r).map_err(ApiError::from)?;
        if capability != Capability::None {
            authz::change(
                &self.store,
                &ctx,
                &caller,
                Action::GrantCapability,
                "service_account.create",
                &name,
            )
            .await?;
        }
        authz::change(
            &self.store,
            &ctx,
            &caller,
            Action::ManageServiceAccount { team: &team, role },
            "service_account.create",
            &name,
        )
        .await?;
        let sa = self
            .store
            .create_service_account(
                &ctx,
                NewServiceAccount {
                    id: ServiceAccountId::generate(),
                    team_id: team,
                    name,
                    description,
                    role,
                    capability,
                },
            )
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::CreateServiceAccountResponse {
            service_account: Some(sa.into()),
        }))
    }

    async fn get_service_account(
        &self,
        req: Request<pb::GetServiceAccountRequest>,
    ) -> Result<Response<pb::GetServiceAccountResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        let id = sa_id(&req.get_ref().id)?;
        let sa = self
            .store
            .get_service_account(&id)
            .await
            .map_err(ApiError::from)?;
        authz::read(&caller, Action::ReadServiceAccounts(&sa.team_id))?;
        Ok(Response::new(pb::GetServiceAccountResponse {
            service_account: Some(sa.into()),
        }))
    }

    async fn list_service_accounts(
        &self,
        req: Request<pb::ListServiceAccountsRequest>,
    ) -> Result<Response<pb::ListServiceAccountsResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        let team = &req.get_ref().team_id;
        let teams = if !team.is_empty() {
            names::validate_team_id("team_id", team).map_err(ApiError::from)?;
            let t = TeamId(team.clone());
            authz::read(&caller, Action::ReadServiceAccounts(&t))?;
            Some(vec![t])
        } else if caller.system_admin {
            None
        } else {
            Some(caller.teams_with(Role::Manager))
        };
        let list = self
            .store
            .list_service_accounts(teams.as_deref())
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListServiceAccountsResponse {
            service_accounts: list.into_iter().map(Into::into).collect(),
        }))
    }

    async fn delete_service_account(
        &self,
        req: Request<pb::DeleteServiceAccountRequest>,
    ) -> Result<Response<pb::DeleteServiceAccountResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let id = sa_id(&req.get_ref().id)?;
        self.managed(&ctx, &caller, &id, "service_account.delete")
            .await?;
        self.store
            .delete_service_account(&ctx, &id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::DeleteServiceAccountResponse {}))
    }

    async fn create_key(
        &self,
        req: Request<pb::CreateKeyRequest>,
    ) -> Result<Response<pb::CreateKeyResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let r = req.into_inner();
        let CreateKeyInput {
            service_account_id: id,
            name,
            expires_at,
        } = CreateKeyInput::try_from(r).map_err(ApiError::from)?;
        self.managed(&ctx, &caller, &id, "management_key.create")
            .await?;
        let secret = NewToken::generate(MANAGEMENT_KEY_PREFIX);
        let key = self
            .store
            .create_management_key(
                &ctx,
                NewManagementKey {
                    id: KeyId::generate(),
                    service_account_id: Some(id),
                    name,
                    key_hash: secret.hash(),
                    preview: secret.preview(),
                    is_bootstrap: false,
                    expires_at,
                },
            )
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::CreateKeyResponse {
            key: Some(key.into()),
            plaintext: secret.expose().to_owned(),
        }))
    }

    async fn list_keys(
        &self,
        req: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        let id = sa_id(&req.get_ref().service_account_id)?;
        let sa = self
            .store
            .get_service_account(&id)
            .await
            .map_err(ApiError::from)?;
        authz::read(&caller, Action::ReadServiceAccounts(&sa.team_id))?;
        let keys = self
            .store
            .list_management_keys(&id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListKeysResponse {
            keys: keys.into_iter().map(Into::into).collect(),
        }))
    }

    async fn revoke_key(
        &self,
        req: Request<pb::RevokeKeyRequest>,
    ) -> Result<Response<pb::RevokeKeyResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let id = key_id(&req.get_ref().id)?;
        self.key_account(&ctx, &caller, &id, "management_key.revoke")
            .await?;
        let key = self
            .store
            .revoke_management_key(&ctx, &id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::RevokeKeyResponse {
            key: Some(key.into()),
        }))
    }

    async fn rotate_key(
        &self,
        req: Request<pb::RotateKeyRequest>,
    ) -> Result<Response<pb::RotateKeyResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let r = req.into_inner();
        let id = key_id(&r.id)?;
        if r.grace_period_seconds > MAX_GRACE_SECONDS {
            return Err(ApiError::invalid(
                "grace_period_seconds",
                format!("must be between 0 and {MAX_GRACE_SECONDS} (30 days)"),
            )
            .into());
        }
        self.key_account(&ctx, &caller, &id, "management_key.rotate")
            .await?;
        let old = self
            .store
            .get_management_key(&id)
            .await
            .map_err(ApiError::from)?;
        let secret = NewToken::generate(MANAGEMENT_KEY_PREFIX);
        let (key, previous) = self
            .store
            .rotate_management_key(
                &ctx,
                &id,
                NewManagementKey {
                    id: KeyId::generate(),
                    service_account_id: old.service_account_id.clone(),
                    name: old.name.clone(),
                    key_hash: secret.hash(),
                    preview: secret.preview(),
                    is_bootstrap: false,
                    expires_at: old.expires_at,
                },
                now_ms() + i64::from(r.grace_period_seconds) * 1000,
            )
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::RotateKeyResponse {
            key: Some(key.into()),
            plaintext: secret.expose().to_owned(),
            previous: Some(previous.into()),
        }))
    }
}
