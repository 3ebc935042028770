//! `AuthService` RPCs: sign-in (rate limited, constant work for unknown emails, audited),
//! sessions, password change, first-start setup and accepting invitations.

use super::model::{INVITATION_PREFIX, NewSession, SESSION_PREFIX, SETUP_PREFIX};
use crate::browser::{self, Transport};
use crate::context::{self, Actor, RequestContext};
use crate::error::{ApiError, ErrorCode};
use crate::ids::{SessionId, UserId};
use crate::passwords;
use crate::policy::{self, Caller, Principal};
use crate::store::{AuditRecord, DynStore};
use crate::time::now_ms;
use crate::users::{NewUser, User, roles_to_pb, to_pb, validate_display_name, validate_email};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use keygate_contracts::FieldErrors;
use keygate_contracts::token::{NewToken, check_format, sha256_hex};
use keygate_proto::v1 as pb;
use keygate_proto::v1::auth_service_server::AuthService;
use serde_json::json;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

/// Sign-in settings.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Session lifetime.
    pub session_ttl: Duration,
    /// Sign-in attempts allowed per account per minute.
    pub attempts_per_account: NonZeroU32,
    /// Sign-in attempts allowed per source address per minute.
    pub attempts_per_address: NonZeroU32,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(12 * 3600),
            attempts_per_account: NonZeroU32::new(10).expect("non-zero"),
            attempts_per_address: NonZeroU32::new(60).expect("non-zero"),
        }
    }
}

pub struct AuthApi {
    store: DynStore,
    settings: AuthSettings,
    per_account: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<String>,
    dummy_hash: Arc<String>,
}

const BAD_CREDENTIALS: &str = "invalid email or password";

impl AuthApi {
    pub fn new(store: DynStore, settings: AuthSettings) -> Self {
        Self {
            per_account: RateLimiter::keyed(Quota::per_minute(settings.attempts_per_account)),
            per_address: RateLimiter::keyed(Quota::per_minute(settings.attempts_per_address)),
            store,
            settings,
            dummy_hash: Arc::new(passwords::dummy_hash()),
        }
    }

    /// Refuses when either the account or the address is over its quota. Every attempt counts
    /// against both, so spraying many accounts from one address is throttled too.
    fn throttle(&self, email: &str, ip: &str) -> Result<(), Status> {
        let mut wait = None;
        for (limiter, key) in [(&self.per_account, email), (&self.per_address, ip)] {
            if limiter.len() > 100_000 {
                limiter.retain_recent();
            }
            if let Err(not_until) = limiter.check_key(&key.to_owned()) {
                let w = not_until.wait_time_from(DefaultClock::default().now());
                wait = Some(wait.map_or(w, |old: Duration| old.max(w)));
            }
        }
        match wait {
            None => Ok(()),
            Some(w) => Err(ApiError::new(
                ErrorCode::RateLimited,
                format!(
                    "too many sign-in attempts; retry in {} s",
                    w.as_secs().max(1)
                ),
            )
            .into()),
        }
    }

    /// Argon2 off the async runtime.
    async fn verify(password: String, hash: Arc<String>) -> bool {
        tokio::task::spawn_blocking(move || passwords::verify(&password, &hash))
            .await
            .unwrap_or(false)
    }

    async fn hash(password: String) -> Result<String, Status> {
        tokio::task::spawn_blocking(move || passwords::hash(&password))
            .await
            .map_err(|e| ApiError::internal(&e).into())
    }

    /// Opens a session for `user` and builds the sign-in answer.
    async fn open_session(
        &self,
        ctx: &RequestContext,
        user: User,
    ) -> Result<pb::SignInResponse, Status> {
        let token = NewToken::generate(SESSION_PREFIX);
        let ctx = ctx.as_actor(Actor {
            kind: "user",
            id: user.id.0.clone(),
            name: user.email.clone(),
        });
        let session = self
            .store
            .create_session(
                &ctx,
                NewSession {
                    id: SessionId::generate(),
                    user_id: user.id.clone(),
                    token_hash: token.hash(),
                    expires_at: now_ms() + self.settings.session_ttl.as_millis() as i64,
                },
            )
            .await
            .map_err(ApiError::from)?;
        let roles = self
            .store
            .user_roles(&user.id)
            .await
            .map_err(ApiError::from)?;
        let user = self
            .store
            .get_user(&user.id)
            .await
            .map_err(ApiError::from)?;
        Ok(pb::SignInResponse {
            session_token: token.expose().to_owned(),
            session: Some(session.to_pb(&session.id)),
            user: Some(to_pb(user, roles)),
        })
    }

    async fn audit_failure(
        &self,
        ctx: &RequestContext,
        user: Option<&UserId>,
        email: &str,
        reason: &str,
    ) {
        let record = AuditRecord {
            action: "auth.sign_in_failed",
            entity_type: "user",
            entity_id: user.map(|u| u.0.clone()).unwrap_or_default(),
            team_id: String::new(),
            detail: json!({"email": [null, email], "reason": [null, reason]}),
        };
        if let Err(e) = self.store.record_event(ctx, record).await {
            tracing::error!(error = %e, "could not audit a failed sign-in");
        }
    }

    /// The sign-in answer: for a browser, the session goes into the HttpOnly cookie and is
    /// left out of the body (`crate::browser`); other clients get it in the body.
    fn answer(
        &self,
        transport: Transport,
        mut resp: pb::SignInResponse,
    ) -> Result<Response<pb::SignInResponse>, Status> {
        if !transport.browser {
            return Ok(Response::new(resp));
        }
        let cookie = browser::session_cookie(
            &resp.session_token,
            self.settings.session_ttl,
            transport.secure,
        );
        resp.session_token.clear();
        let mut answer = Response::new(resp);
        answer.metadata_mut().insert(
            "set-cookie",
            MetadataValue::try_from(cookie.as_bytes()).map_err(|e| ApiError::internal(&e))?,
        );
        Ok(answer)
    }

    fn user_caller(caller: &Caller) -> Result<(&UserId, &SessionId), Status> {
        match &caller.principal {
            Principal::User { id, session } => Ok((id, session)),
            Principal::ServiceAccount { .. } => Err(ApiError::new(
                ErrorCode::FailedPrecondition,
                "only signed-in users have sessions and passwords; service accounts use keys",
            )
            .into()),
        }
    }

    /// `display_name` already validated.
    fn new_user(email: String, display_name: String, hash: String) -> NewUser {
        NewUser {
            id: UserId::generate(),
            email,
            display_name,
            password_hash: hash,
            system_admin: false,
        }
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn sign_in(
        &self,
        req: Request<pb::SignInRequest>,
    ) -> Result<Response<pb::SignInResponse>, Status> {
        let ctx = context::from_request(&req)?;
        let transport = context::transport(&req);
        let r = req.into_inner();
        let email = validate_email("email", &r.email).map_err(ApiError::from)?;
        if r.password.is_empty() || r.password.len() > 1024 {
            return Err(ApiError::unauthenticated(BAD_CREDENTIALS).into());
        }
        self.throttle(&email, &ctx.source_ip)?;
        let found = self
            .store
            .find_user_by_email(&email)
            .await
            .map_err(ApiError::from)?;
        // Verify against the real hash or a dummy one: the same work either way.
        let hash = match &found {
            Some((_, h)) => Arc::new(h.clone()),
            None => self.dummy_hash.clone(),
        };
        let password_ok = Self::verify(r.password, hash).await;
        match found {
            Some((user, _)) if password_ok && !user.disabled => {
                let resp = self.open_session(&ctx, user).await?;
                self.answer(transport, resp)
            }
            Some((user, _)) => {
                let why = if password_ok {
                    "account disabled"
                } else {
                    "wrong password"
                };
                self.audit_failure(&ctx, Some(&user.id), &email, why).await;
                Err(ApiError::unauthenticated(BAD_CREDENTIALS).into())
            }
            None => {
                self.audit_failure(&ctx, None, &email, "unknown email")
                    .await;
                Err(ApiError::unauthenticated(BAD_CREDENTIALS).into())
            }
        }
    }

    async fn sign_out(
        &self,
        req: Request<pb::SignOutRequest>,
    ) -> Result<Response<pb::SignOutResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let transport = context::transport(&req);
        let (user, session) = Self::user_caller(&caller)?;
        self.store
            .revoke_session(&ctx, user, session)
            .await
            .map_err(ApiError::from)?;
        let mut answer = Response::new(pb::SignOutResponse {});
        if transport.browser {
            let clear = browser::clear_cookie(transport.secure);
            answer.metadata_mut().insert(
                "set-cookie",
                MetadataValue::try_from(clear.as_bytes()).map_err(|e| ApiError::internal(&e))?,
            );
        }
        Ok(answer)
    }

    async fn get_current_user(
        &self,
        req: Request<pb::GetCurrentUserRequest>,
    ) -> Result<Response<pb::GetCurrentUserResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        let roles = roles_to_pb(caller.roles.clone().into_iter().collect());
        let allowed = policy::allowed(&caller);
        let owned = |v: Vec<&'static str>| v.into_iter().map(str::to_owned).collect::<Vec<_>>();
        let teams = allowed
            .teams
            .into_iter()
            .map(|(team, role, actions)| pb::TeamPermissions {
                team_id: team.0,
                role: role.to_pb() as i32,
                allowed_actions: owned(actions),
            })
            .collect();
        let allowed_actions = owned(allowed.global);
        let all_teams_allowed_actions = owned(allowed.all_teams);
        let mut resp = match &caller.principal {
            Principal::User { id, .. } => {
                let user = self.store.get_user(id).await.map_err(ApiError::from)?;
                pb::GetCurrentUserResponse {
                    user: Some(to_pb(user, caller.roles.clone().into_iter().collect())),
                    service_account_id: String::new(),
                    roles,
                    system_admin: caller.system_admin,
                    ..Default::default()
                }
            }
            Principal::ServiceAccount { id, .. } => pb::GetCurrentUserResponse {
                user: None,
                service_account_id: id.0.clone(),
                roles,
                system_admin: false,
                ..Default::default()
            },
        };
        resp.teams = teams;
        resp.allowed_actions = allowed_actions;
        resp.all_teams_allowed_actions = all_teams_allowed_actions;
        Ok(Response::new(resp))
    }

    async fn list_sessions(
        &self,
        req: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        let (user, current) = Self::user_caller(&caller)?;
        let sessions = self
            .store
            .list_sessions(user)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: sessions.iter().map(|s| s.to_pb(current)).collect(),
        }))
    }

    async fn revoke_session(
        &self,
        req: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::RevokeSessionResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let (user, _) = Self::user_caller(&caller)?;
        let id = SessionId(req.get_ref().id.clone());
        self.store
            .revoke_session(&ctx, user, &id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::RevokeSessionResponse {}))
    }

    async fn change_password(
        &self,
        req: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let (user, session) = Self::user_caller(&caller)?;
        let r = req.into_inner();
        passwords::validate("new_password", &r.new_password).map_err(ApiError::from)?;
        self.throttle(&caller.actor.name, &ctx.source_ip)?;
        let current = Arc::new(
            self.store
                .password_hash(user)
                .await
                .map_err(ApiError::from)?,
        );
        if !Self::verify(r.current_password, current).await {
            self.audit_failure(
                &ctx,
                Some(user),
                &caller.actor.name,
                "wrong current password",
            )
            .await;
            return Err(ApiError::invalid("current_password", "is incorrect").into());
        }
        let hash = Self::hash(r.new_password).await?;
        self.store
            .set_password(&ctx, user, hash, Some(session))
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ChangePasswordResponse {}))
    }

    async fn complete_setup(
        &self,
        req: Request<pb::CompleteSetupRequest>,
    ) -> Result<Response<pb::SignInResponse>, Status> {
        let ctx = context::from_request(&req)?;
        let transport = context::transport(&req);
        let r = req.into_inner();
        let invalid = || -> Status {
            ApiError::new(
                ErrorCode::FailedPrecondition,
                "invalid or expired setup code",
            )
            .into()
        };
        check_format(r.setup_code.trim(), SETUP_PREFIX, &[]).map_err(|_| invalid())?;
        let mut v = FieldErrors::new();
        let email = v.check(validate_email("email", &r.email));
        let display_name = v.check(validate_display_name("display_name", &r.display_name));
        v.check(passwords::validate("password", &r.password));
        let (Some(email), Some(display_name)) = (email, display_name) else {
            return Err(ApiError::from(v).into());
        };
        v.into_result().map_err(ApiError::from)?;
        self.throttle("setup", &ctx.source_ip)?;
        let hash = Self::hash(r.password).await?;
        let user = Self::new_user(email, display_name, hash);
        let user = self
            .store
            .complete_setup(
                &ctx.as_actor(Actor::system()),
                &sha256_hex(r.setup_code.trim()),
                user,
            )
            .await
            .map_err(ApiError::from)?;
        tracing::info!(user = %user.id, "first system admin created");
        let resp = self.open_session(&ctx, user).await?;
        self.answer(transport, resp)
    }

    async fn accept_invitation(
        &self,
        req: Request<pb::AcceptInvitationRequest>,
    ) -> Result<Response<pb::SignInResponse>, Status> {
        let ctx = context::from_request(&req)?;
        let transport = context::transport(&req);
        let r = req.into_inner();
        let invalid = || -> Status {
            ApiError::new(
                ErrorCode::FailedPrecondition,
                "invalid, used, revoked or expired invitation code",
            )
            .into()
        };
        check_format(r.code.trim(), INVITATION_PREFIX, &[]).map_err(|_| invalid())?;
        let mut v = FieldErrors::new();
        let display_name = v.check(validate_display_name("display_name", &r.display_name));
        v.check(passwords::validate("password", &r.password));
        let Some(display_name) = display_name else {
            return Err(ApiError::from(v).into());
        };
        v.into_result().map_err(ApiError::from)?;
        self.throttle("accept-invitation", &ctx.source_ip)?;
        let hash = Self::hash(r.password).await?;
        // The email comes from the invitation; this placeholder is replaced by the store.
        let user = Self::new_user(String::new(), display_name, hash);
        let user = self
            .store
            .accept_invitation(&ctx, &sha256_hex(r.code.trim()), user)
            .await
            .map_err(ApiError::from)?;
        let resp = self.open_session(&ctx, user).await?;
        self.answer(transport, resp)
    }
}
