//! `TokenService` RPCs: validate, call the store, map the error.

use super::model::{CreateTokenInput, MAX_GRACE_SECONDS, TokenFilter, parse_token_id};
use crate::authz;
use crate::context;
use crate::error::ApiError;
use crate::ids::TokenId;
use crate::policy::{Action, Caller};
use crate::store::{DynStore, RotatedToken};
use crate::time::now_ms;
use crate::tokens::NewTokenRecord;
use crate::tokens::Token;
use keygate_contracts::names;
use keygate_contracts::token::{API_TOKEN_PREFIX, NewToken};
use keygate_proto::v1 as pb;
use keygate_proto::v1::token_service_server::TokenService;
use tonic::{Request, Response, Status};

pub struct TokenApi {
    store: DynStore,
}

impl TokenApi {
    pub fn new(store: DynStore) -> Self {
        Self { store }
    }

    /// Loads the token and asks policy whether `caller` may change it.
    async fn may_change(
        &self,
        ctx: &crate::context::RequestContext,
        caller: &Caller,
        id: &TokenId,
        attempted: &'static str,
    ) -> Result<Token, Status> {
        let token = self.store.get_token(id).await.map_err(ApiError::from)?;
        authz::change(
            &self.store,
            ctx,
            caller,
            token.change_action(caller),
            attempted,
            id.as_str(),
        )
        .await?;
        Ok(token)
    }
}

#[tonic::async_trait]
impl TokenService for TokenApi {
    async fn create_token(
        &self,
        req: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let input = CreateTokenInput::try_from(req.into_inner()).map_err(ApiError::from)?;
        authz::change(
            &self.store,
            &ctx,
            &caller,
            Action::CreateToken(&input.team_id),
            "token.create",
            input.team_id.as_str(),
        )
        .await?;
        let secret = NewToken::generate(API_TOKEN_PREFIX);
        let record = NewTokenRecord {
            id: TokenId::generate(),
            team_id: input.team_id,
            name: input.name,
            description: input.description,
            scopes: input.scopes,
            token_hash: secret.hash(),
            preview: secret.preview(),
            expires_at: input.expires_at,
            rate_limit_per_minute: input.rate_limit_per_minute,
        };
        let token = self
            .store
            .create_token(&ctx, record)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(token_id = %token.id, team = %token.team_id, "token created");
        Ok(Response::new(pb::CreateTokenResponse {
            token: Some(token.to_pb_for(&caller)),
            plaintext: secret.expose().to_owned(),
        }))
    }

    async fn get_token(
        &self,
        req: Request<pb::GetTokenRequest>,
    ) -> Result<Response<pb::GetTokenResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        let id = parse_token_id("id", &req.get_ref().id).map_err(ApiError::from)?;
        let token = self.store.get_token(&id).await.map_err(ApiError::from)?;
        authz::read(&caller, Action::ReadTokens(&token.team_id))?;
        Ok(Response::new(pb::GetTokenResponse {
            token: Some(token.to_pb_for(&caller)),
        }))
    }

    async fn list_tokens(
        &self,
        req: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        let mut filter = TokenFilter::try_from(req.into_inner()).map_err(ApiError::from)?;
        if let Some(team) = &filter.team_id {
            authz::read(&caller, Action::ReadTokens(team))?;
        }
        filter.visible_teams = caller.visible_teams();
        let (page, total_size) = futures::try_join!(
            self.store.list_tokens(&filter),
            self.store.count_tokens(&filter)
        )
        .map_err(ApiError::from)?;
        let next_page_token = match (page.more, page.items.last()) {
            (true, Some(last)) => filter.next_token(last),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListTokensResponse {
            tokens: page
                .items
                .into_iter()
                .map(|t| t.to_pb_for(&caller))
                .collect(),
            next_page_token,
            total_size,
        }))
    }

    async fn update_token(
        &self,
        req: Request<pb::UpdateTokenRequest>,
    ) -> Result<Response<pb::UpdateTokenResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let (id, patch) = super::model::parse_update(req.into_inner()).map_err(ApiError::from)?;
        self.may_change(&ctx, &caller, &id, "token.update").await?;
        let token = self
            .store
            .update_token(&ctx, &id, patch)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::UpdateTokenResponse {
            token: Some(token.to_pb_for(&caller)),
        }))
    }

    async fn revoke_token(
        &self,
        req: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let r = req.into_inner();
        let id = parse_token_id("id", &r.id).map_err(ApiError::from)?;
        names::validate_text("reason", &r.reason, 500, false, false).map_err(ApiError::from)?;
        self.may_change(&ctx, &caller, &id, "token.revoke").await?;
        let token = self
            .store
            .revoke_token(&ctx, &id, &r.reason)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(token_id = %token.id, "token revoked");
        Ok(Response::new(pb::RevokeTokenResponse {
            token: Some(token.to_pb_for(&caller)),
        }))
    }

    async fn rotate_token(
        &self,
        req: Request<pb::RotateTokenRequest>,
    ) -> Result<Response<pb::RotateTokenResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let r = req.into_inner();
        let id = parse_token_id("id", &r.id).map_err(ApiError::from)?;
        self.may_change(&ctx, &caller, &id, "token.rotate").await?;
        if r.grace_period_seconds > MAX_GRACE_SECONDS {
            return Err(ApiError::invalid(
                "grace_period_seconds",
                format!("must be between 0 and {MAX_GRACE_SECONDS} (30 days)"),
            )
            .into());
        }
        let secret = NewToken::generate(API_TOKEN_PREFIX);
        let new = RotatedToken {
            id: TokenId::generate(),
            token_hash: secret.hash(),
            preview: secret.preview(),
            grace_until: now_ms() + i64::from(r.grace_period_seconds) * 1000,
        };
        let (token, previous) = self
            .store
            .rotate_token(&ctx, &id, new)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(token_id = %token.id, previous = %previous.id, "token rotated");
        Ok(Response::new(pb::RotateTokenResponse {
            token: Some(token.to_pb_for(&caller)),
            plaintext: secret.expose().to_owned(),
            previous: Some(previous.to_pb_for(&caller)),
        }))
    }
}
