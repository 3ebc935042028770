//! The permission matrix (tests/permission-matrix.txt) run against a real server, plus one
//! named test per privilege-escalation path from the design brief.

use keygate_contracts::scope::Scope;
use keygate_contracts::token::{API_TOKEN_PREFIX, MANAGEMENT_KEY_PREFIX, NewToken};
use keygate_control_plane::audit::{AuditFilter, AuditPage};
use keygate_control_plane::context::{Actor, RequestContext};
use keygate_control_plane::ids::{
    InvitationId, KeyId, RouteId, ServiceAccountId, SessionId, TeamId, TokenId, UserId,
};
use keygate_control_plane::invitations::NewInvitation;
use keygate_control_plane::policy::Role;
use keygate_control_plane::routes::{AuthChange, AuthKind, NewRoute};
use keygate_control_plane::service_accounts::{NewManagementKey, NewServiceAccount};
use keygate_control_plane::sessions::{NewSession, SESSION_PREFIX};
use keygate_control_plane::teams::NewTeam;
use keygate_control_plane::testing::{Backend, TestServer, TestUser};
use keygate_control_plane::time::now_ms;
use keygate_control_plane::tokens::NewTokenRecord;
use keygate_proto::v1 as pb;
use keygate_proto::v1::audit_service_client::AuditServiceClient;
use keygate_proto::v1::auth_service_client::AuthServiceClient;
use keygate_proto::v1::invitation_service_client::InvitationServiceClient;
use keygate_proto::v1::route_service_client::RouteServiceClient;
use keygate_proto::v1::service_account_service_client::ServiceAccountServiceClient;
use keygate_proto::v1::team_service_client::TeamServiceClient;
use keygate_proto::v1::token_service_client::TokenServiceClient;
use keygate_proto::v1::usage_service_client::UsageServiceClient;
use keygate_proto::v1::user_service_client::UserServiceClient;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

const CALLERS: [&str; 13] = [
    "sys",
    "admin",
    "manager",
    "developer",
    "viewer",
    "other",
    "disabled",
    "expired",
    "revoked",
    "none",
    "robot",
    "gateway",
    "sync",
];

/// The fixture every cell runs in.
struct World {
    s: TestServer,
    ch: Channel,
    creds: HashMap<&'static str, Option<String>>,
    users: HashMap<&'static str, TestUser>,
    n: AtomicU32,
}

fn sys_ctx() -> RequestContext {
    RequestContext::system("matrix")
}

impl World {
    async fn build(backend: Backend) -> Self {
        let s = TestServer::start(backend).await;
        let ch = s.channel().await;
        for t in ["alpha", "beta"] {
            s.store
                .create_team(
                    &sys_ctx(),
                    NewTeam {
                        id: TeamId(t.into()),
                        name: t.into(),
                        description: String::new(),
                        color: String::new(),
                        icon: String::new(),
                    },
                    None,
                )
                .await
                .unwrap();
        }
        let mut users = HashMap::new();
        let mut creds: HashMap<&'static str, Option<String>> = HashMap::new();
        creds.insert("sys", Some(s.admin_key.clone()));
        for (who, team, role) in [
            ("admin", "alpha", Role::Admin),
            ("manager", "alpha", Role::Manager),
            ("developer", "alpha", Role::Developer),
            ("viewer", "alpha", Role::Viewer),
            ("other", "beta", Role::Admin),
            ("disabled", "alpha", Role::Developer),
            ("expired", "alpha", Role::Developer),
        ] {
            let u = s.user(&format!("{who}@matrix.test"), &[(team, role)]).await;
            creds.insert(who, Some(u.token.clone()));
            users.insert(who, u);
        }
        // disabled: its session was live; disabling ends it and refuses the account.
        s.store
            .set_user_disabled(&sys_ctx(), &users["disabled"].id, true)
            .await
            .unwrap();
        // expired: a session whose lifetime is over.
        let expired = NewToken::generate(SESSION_PREFIX);
        s.store
            .create_session(
                &sys_ctx(),
                NewSession {
                    id: SessionId::generate(),
                    user_id: users["expired"].id.clone(),
                    token_hash: expired.hash(),
                    expires_at: now_ms() - 1000,
                },
            )
            .await
            .unwrap();
        creds.insert("expired", Some(expired.expose().to_owned()));
        // revoked: an ADMIN service account's key, revoked.
        let sa = s
            .store
            .create_service_account(
                &sys_ctx(),
                NewServiceAccount {
                    id: ServiceAccountId::generate(),
                    team_id: TeamId("alpha".into()),
                    name: "robot".into(),
                    description: String::new(),
                    role: Role::Admin,
                    capability: keygate_control_plane::service_accounts::Capability::None,
                },
            )
            .await
            .unwrap();
        let key = NewToken::generate(MANAGEMENT_KEY_PREFIX);
        let k = s
            .store
            .create_management_key(
                &sys_ctx(),
                NewManagementKey {
                    id: KeyId::generate(),
                    service_account_id: Some(sa.id),
                    name: "k".into(),
                    key_hash: key.hash(),
                    preview: key.preview(),
                    is_bootstrap: false,
                    expires_at: None,
                },
            )
            .await
            .unwrap();
        s.store
            .revoke_management_key(&sys_ctx(), &k.id)
            .await
            .unwrap();
        creds.insert("revoked", Some(key.expose().to_owned()));
        creds.insert("none", None);
        // Live service-account keys of alpha: a team role only (ADMIN), and VIEWERs with
        // each capability, as the README creates kv-sync's and a gateway's.
        use keygate_control_plane::service_accounts::Capability;
        for (who, role, capability) in [
            ("robot", Role::Admin, Capability::None),
            ("gateway", Role::Viewer, Capability::Gateway),
            ("sync", Role::Viewer, Capability::Sync),
        ] {
            let sa = s
                .store
                .create_service_account(
                    &sys_ctx(),
                    NewServiceAccount {
                        id: ServiceAccountId::generate(),
                        team_id: TeamId("alpha".into()),
                        name: who.into(),
                        description: String::new(),
                        role,
                        capability,
                    },
                )
                .await
                .unwrap();
            let key = NewToken::generate(MANAGEMENT_KEY_PREFIX);
            s.store
                .create_management_key(
                    &sys_ctx(),
                    NewManagementKey {
                        id: KeyId::generate(),
                        service_account_id: Some(sa.id),
                        name: "k".into(),
                        key_hash: key.hash(),
                        preview: key.preview(),
                        is_bootstrap: false,
                        expires_at: None,
                    },
                )
                .await
                .unwrap();
            creds.insert(who, Some(key.expose().to_owned()));
        }
        Self {
            s,
            ch,
            creds,
            users,
            n: AtomicU32::new(0),
        }
    }

    /// The teams where `who` holds a role now (`None` for the system admin: every team).
    /// The matrix's own cells add the people to other teams (mirror teams, created or
    /// claimed ones); service accounts stay in alpha.
    async fn teams_of(&self, who: &str) -> Option<BTreeSet<String>> {
        self.teams_with(who, Role::Viewer).await
    }

    /// The teams where `who` holds at least `min` now (`None` for the system admin).
    async fn teams_with(&self, who: &str, min: Role) -> Option<BTreeSet<String>> {
        if who == "sys" {
            return None;
        }
        let roles = match self.users.get(who) {
            Some(u) => self.s.store.user_roles(&u.id).await.unwrap(),
            None => {
                let role = if who == "robot" {
                    Role::Admin
                } else {
                    Role::Viewer
                };
                vec![(TeamId("alpha".into()), role)]
            }
        };
        Some(
            roles
                .into_iter()
                .filter(|(_, r)| *r >= min)
                .map(|(t, _)| t.0)
                .collect(),
        )
    }

    fn fresh(&self) -> u32 {
        self.n.fetch_add(1, Ordering::SeqCst)
    }

    fn req<T>(&self, who: &str, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        if let Some(c) = &self.creds[who] {
            r.metadata_mut()
                .insert("authorization", format!("Bearer {c}").parse().unwrap());
        }
        r
    }

    /// Context that makes `who` the creator (for "own" cases); the system otherwise.
    fn ctx_of(&self, who: &str) -> RequestContext {
        match self.users.get(who) {
            Some(u) => sys_ctx().as_actor(Actor {
                kind: "user",
                id: u.id.0.clone(),
                name: u.email.clone(),
            }),
            None => sys_ctx(),
        }
    }

    fn sys_actor(&self) -> RequestContext {
        sys_ctx().as_actor(Actor {
            kind: "user",
            id: self.s.admin_id.0.clone(),
            name: "admin@keygate.test".into(),
        })
    }

    async fn token(&self, ctx: &RequestContext) -> TokenId {
        self.token_in(ctx, "alpha").await
    }

    async fn token_in(&self, ctx: &RequestContext, team: &str) -> TokenId {
        let secret = NewToken::generate(API_TOKEN_PREFIX);
        self.s
            .store
            .create_token(
                ctx,
                NewTokenRecord {
                    id: TokenId::generate(),
                    team_id: TeamId(team.into()),
                    name: format!("t{}", self.fresh()),
                    description: String::new(),
                    scopes: vec![Scope::All],
                    token_hash: secret.hash(),
                    preview: secret.preview(),
                    expires_at: None,
                    rate_limit_per_minute: 0,
                },
            )
            .await
            .unwrap()
            .id
    }

    async fn route(&self, ctx: &RequestContext) -> RouteId {
        let n = self.fresh();
        self.s
            .store
            .create_route(
                ctx,
                NewRoute {
                    id: RouteId::generate(),
                    team_id: TeamId("alpha".into()),
                    name: format!("r{n}"),
                    path_prefix: format!("/r{n}"),
                    backend_url: "http://127.0.0.1:9/".into(),
                    description: String::new(),
                    tags: vec!["t".into()],
                    methods: vec![],
                    strip_prefix: false,
                    timeout_ms: 1000,
                    auth: AuthChange {
                        kind: AuthKind::None,
                        header_name: String::new(),
                        username: String::new(),
                        secret: None,
                    },
                    allowed_team_ids: vec![],
                    cors_origins: vec![],
                    rate_limit_per_minute: 0,
                },
            )
            .await
            .unwrap()
            .id
    }

    async fn user_in_alpha(&self, role: Role) -> UserId {
        let n = self.fresh();
        self.s
            .user(&format!("target{n}@matrix.test"), &[("alpha", role)])
            .await
            .id
    }

    /// A new team where the four alpha role-holders hold the same roles.
    async fn mirror_team(&self, with_members: bool) -> TeamId {
        let id = TeamId(format!("team-{}", self.fresh()));
        self.s
            .store
            .create_team(
                &sys_ctx(),
                NewTeam {
                    id: id.clone(),
                    name: id.0.clone(),
                    description: String::new(),
                    color: String::new(),
                    icon: String::new(),
                },
                None,
            )
            .await
            .unwrap();
        if with_members {
            for (who, role) in [
                ("admin", Role::Admin),
                ("manager", Role::Manager),
                ("developer", Role::Developer),
                ("viewer", Role::Viewer),
            ] {
                self.s
                    .store
                    .add_member(&sys_ctx(), &id, &self.users[who].id, role)
                    .await
                    .unwrap();
            }
        }
        id
    }

    async fn service_account(&self, role: Role) -> ServiceAccountId {
        self.service_account_in(role, "alpha").await
    }

    async fn service_account_in(&self, role: Role, team: &str) -> ServiceAccountId {
        self.s
            .store
            .create_service_account(
                &sys_ctx(),
                NewServiceAccount {
                    id: ServiceAccountId::generate(),
                    team_id: TeamId(team.into()),
                    name: format!("sa{}", self.fresh()),
                    description: String::new(),
                    role,
                    capability: keygate_control_plane::service_accounts::Capability::None,
                },
            )
            .await
            .unwrap()
            .id
    }

    async fn key(&self, sa: &ServiceAccountId) -> KeyId {
        let k = NewToken::generate(MANAGEMENT_KEY_PREFIX);
        self.s
            .store
            .create_management_key(
                &sys_ctx(),
                NewManagementKey {
                    id: KeyId::generate(),
                    service_account_id: Some(sa.clone()),
                    name: "k".into(),
                    key_hash: k.hash(),
                    preview: k.preview(),
                    is_bootstrap: false,
                    expires_at: None,
                },
            )
            .await
            .unwrap()
            .id
    }

    async fn invitation(&self) -> InvitationId {
        let code = NewToken::generate("kginv");
        self.s
            .store
            .create_invitation(
                &self.sys_actor(),
                NewInvitation {
                    id: InvitationId::generate(),
                    email: format!("invitee{}@matrix.test", self.fresh()),
                    roles: vec![(TeamId("alpha".into()), Role::Developer)],
                    code_hash: code.hash(),
                    expires_at: now_ms() + 3_600_000,
                    system_admin: false,
                },
            )
            .await
            .unwrap()
            .id
    }

    fn tr(team: &str, role: pb::Role) -> pb::TeamRole {
        pb::TeamRole {
            team_id: team.into(),
            role: role as i32,
        }
    }

    /// Sets up the target of `case` and calls it as `who`.
    async fn run(&self, case: &str, who: &str) -> Result<(), Status> {
        let ch = self.ch.clone();
        let mut teams = TeamServiceClient::new(ch.clone());
        let mut tokens = TokenServiceClient::new(ch.clone());
        let mut routes = RouteServiceClient::new(ch.clone());
        let mut audit = AuditServiceClient::new(ch.clone());
        let mut auth = AuthServiceClient::new(ch.clone());
        let mut users = UserServiceClient::new(ch.clone());
        let mut invites = InvitationServiceClient::new(ch.clone());
        let mut accounts = ServiceAccountServiceClient::new(ch.clone());
        let mut sync = keygate_proto::v1::sync_service_client::SyncServiceClient::new(ch.clone());
        let mut usage = UsageServiceClient::new(ch.clone());
        let alpha = || "alpha".to_string();
        match case {
            "TeamService.CreateTeam" => {
                let id = format!("new-{}", self.fresh());
                teams
                    .create_team(self.req(
                        who,
                        pb::CreateTeamRequest {
                            id,
                            name: "N".into(),
                            ..Default::default()
                        },
                    ))
                    .await
                    .map(drop)
            }
            "TeamService.GetTeam" => teams
                .get_team(self.req(who, pb::GetTeamRequest { id: alpha() }))
                .await
                .map(drop),
            "TeamService.ListTeams" => teams
                .list_teams(self.req(who, pb::ListTeamsRequest::default()))
                .await
                .map(drop),
            "TeamService.UpdateTeam" => teams
                .update_team(self.req(
                    who,
                    pb::UpdateTeamRequest {
                        id: alpha(),
                        description: Some(format!("d{}", self.fresh())),
                        ..Default::default()
                    },
                ))
                .await
                .map(drop),
            "TeamService.DeleteTeam" => {
                let t = self.mirror_team(true).await;
                teams
                    .delete_team(self.req(
                        who,
                        pb::DeleteTeamRequest {
                            id: t.0,
                            cascade: false,
                        },
                    ))
                    .await
                    .map(drop)
            }
            "TeamService.ClaimTeam" => {
                let t = self.mirror_team(false).await;
                teams
                    .claim_team(self.req(who, pb::ClaimTeamRequest { team_id: t.0 }))
                    .await
                    .map(drop)
            }
            "TeamService.ListMembers" => teams
                .list_members(self.req(who, pb::ListMembersRequest { team_id: alpha() }))
                .await
                .map(drop),
            "TeamService.AddMember:developer" | "TeamService.AddMember:admin" => {
                let n = self.fresh();
                let u = self.s.user(&format!("add{n}@matrix.test"), &[]).await;
                let role = if case.ends_with("admin") {
                    pb::Role::Admin
                } else {
                    pb::Role::Developer
                };
                teams
                    .add_member(self.req(
                        who,
                        pb::AddMemberRequest {
                            team_id: alpha(),
                            user: u.email,
                            role: role as i32,
                        },
                    ))
                    .await
                    .map(drop)
            }
            "TeamService.UpdateMemberRole:dev>viewer"
            | "TeamService.UpdateMemberRole:dev>manager"
            | "TeamService.UpdateMemberRole:admin>viewer" => {
                let (from, to) = match case.rsplit(':').next().unwrap() {
                    "dev>viewer" => (Role::Developer, pb::Role::Viewer),
                    "dev>manager" => (Role::Developer, pb::Role::Manager),
                    _ => (Role::Admin, pb::Role::Viewer),
                };
                let target = self.user_in_alpha(from).await;
                teams
                    .update_member_role(self.req(
                        who,
                        pb::UpdateMemberRoleRequest {
                            team_id: alpha(),
                            user_id: target.0,
                            role: to as i32,
                        },
                    ))
                    .await
                    .map(drop)
            }
            "TeamService.RemoveMember:developer" | "TeamService.RemoveMember:admin" => {
                let role = if case.ends_with("admin") {
                    Role::Admin
                } else {
                    Role::Developer
                };
                let target = self.user_in_alpha(role).await;
                teams
                    .remove_member(self.req(
                        who,
                        pb::RemoveMemberRequest {
                            team_id: alpha(),
                            user_id: target.0,
                        },
                    ))
                    .await
                    .map(drop)
            }
            "TokenService.CreateToken" => tokens
                .create_token(self.req(
                    who,
                    pb::CreateTokenRequest {
                        name: "x".into(),
                        team_id: alpha(),
                        scopes: vec!["*".into()],
                        expiry: Some(pb::create_token_request::Expiry::NeverExpires(true)),
                        ..Default::default()
                    },
                ))
                .await
                .map(drop),
            "TokenService.GetToken" => {
                let t = self.token(&self.sys_actor()).await;
                tokens
                    .get_token(self.req(who, pb::GetTokenRequest { id: t.0 }))
                    .await
                    .map(drop)
            }
            // Lists without a team filter: rows of alpha and beta are made first; the answer
            // must hold rows of exactly the teams the caller may see (`teams_of`).
            "TokenService.ListTokens:all" => {
                self.in_both_teams().await;
                let r = tokens
                    .list_tokens(self.req(
                        who,
                        pb::ListTokensRequest {
                            page_size: 500,
                            ..Default::default()
                        },
                    ))
                    .await?
                    .into_inner();
                only_visible(
                    self.teams_of(who).await,
                    case,
                    r.tokens.into_iter().map(|t| t.team_id),
                )
            }
            "AuditService.ListAuditEvents:all" => {
                self.in_both_teams().await;
                let r = audit
                    .list_audit_events(self.req(
                        who,
                        pb::ListAuditEventsRequest {
                            page_size: 500,
                            ..Default::default()
                        },
                    ))
                    .await?
                    .into_inner();
                only_visible(
                    self.teams_of(who).await,
                    case,
                    r.events.into_iter().map(|e| e.team_id),
                )
            }
            "UsageService.ListUsageEvents:all" => {
                self.in_both_teams().await;
                let r = usage
                    .list_usage_events(self.req(
                        who,
                        pb::ListUsageEventsRequest {
                            page_size: 500,
                            ..Default::default()
                        },
                    ))
                    .await?
                    .into_inner();
                only_visible(
                    self.teams_of(who).await,
                    case,
                    r.events.into_iter().map(|e| e.team_id),
                )
            }
            "UsageService.ListTopUsage:all" => {
                self.in_both_teams().await;
                let r = usage
                    .list_top_usage(self.req(
                        who,
                        pb::ListTopUsageRequest {
                            query: Some(pb::UsageQuery::default()),
                            by: pb::TopDimension::Team as i32,
                            limit: 100,
                            ..Default::default()
                        },
                    ))
                    .await?
                    .into_inner();
                only_visible(
                    self.teams_of(who).await,
                    case,
                    r.entries.into_iter().map(|e| e.key),
                )
            }
            "AlertService.ListAlertRules:all" => {
                self.in_both_teams().await;
                let r = alert_client(&ch)
                    .list_alert_rules(self.req(
                        who,
                        pb::ListAlertRulesRequest {
                            page_size: 500,
                            ..Default::default()
                        },
                    ))
                    .await?
                    .into_inner();
                only_visible(
                    self.teams_of(who).await,
                    case,
                    r.rules.into_iter().map(|x| x.team_id),
                )
            }
            "AlertService.ListAlertDeliveries:all" => {
                self.in_both_teams().await;
                let r = alert_client(&ch)
                    .list_alert_deliveries(self.req(
                        who,
                        pb::ListAlertDeliveriesRequest {
                            page_size: 500,
                            ..Default::default()
                        },
                    ))
                    .await?
                    .into_inner();
                only_visible(
                    self.teams_of(who).await,
                    case,
                    r.deliveries.into_iter().map(|d| d.team_id),
                )
            }
            // Service accounts are read by MANAGER+ of their team.
            "ServiceAccountService.ListServiceAccounts:all" => {
                self.in_both_teams().await;
                let r = accounts
                    .list_service_accounts(self.req(who, pb::ListServiceAccountsRequest::default()))
                    .await?
                    .into_inner();
                only_visible(
                    self.teams_with(who, Role::Manager).await,
                    case,
                    r.service_accounts.into_iter().map(|a| a.team_id),
                )
            }
            // Teams and routes are catalogues every signed-in caller reads whole.
            "TeamService.ListTeams:all" | "RouteService.ListRoutes:all" => {
                self.in_both_teams().await;
                let seen: Vec<String> = if case.starts_with("Team") {
                    teams
                        .list_teams(self.req(who, pb::ListTeamsRequest::default()))
                        .await?
                        .into_inner()
                        .teams
                        .into_iter()
                        .map(|t| t.id)
                        .collect()
                } else {
                    routes
                        .list_routes(self.req(
                            who,
                            pb::ListRoutesRequest {
                                page_size: 500,
                                ..Default::default()
                            },
                        ))
                        .await?
                        .into_inner()
                        .routes
                        .into_iter()
                        .map(|r| r.team_id)
                        .collect()
                };
                only_visible(None, case, seen)
            }
            "TokenService.ListTokens" => tokens
                .list_tokens(self.req(
                    who,
                    pb::ListTokensRequest {
                        team_id: alpha(),
                        ..Default::default()
                    },
                ))
                .await
                .map(drop),
            "TokenService.UpdateToken" | "TokenService.UpdateToken:own" => {
                let ctx = if case.ends_with(":own") {
                    self.ctx_of(who)
                } else {
                    self.sys_actor()
                };
                let t = self.token(&ctx).await;
                tokens
                    .update_token(self.req(
                        who,
                        pb::UpdateTokenRequest {
                            id: t.0,
                            name: Some("renamed".into()),
                            ..Default::default()
                        },
                    ))
                    .await
                    .map(drop)
            }
            "TokenService.RevokeToken" | "TokenService.RevokeToken:own" => {
                let ctx = if case.ends_with(":own") {
                    self.ctx_of(who)
                } else {
                    self.sys_actor()
                };
                let t = self.token(&ctx).await;
                tokens
                    .revoke_token(self.req(
                        who,
                        pb::RevokeTokenRequest {
                            id: t.0,
                            reason: String::new(),
                        },
                    ))
                    .await
                    .map(drop)
            }
            "TokenService.RotateToken" => {
                let t = self.token(&self.sys_actor()).await;
                tokens
                    .rotate_token(self.req(
                        who,
                        pb::RotateTokenRequest {
                            id: t.0,
                            grace_period_seconds: 60,
                        },
                    ))
                    .await
                    .map(drop)
            }
            "RouteService.CreateRoute" => {
                let n = self.fresh();
                routes
                    .create_route(self.req(
                        who,
                        pb::CreateRouteRequest {
                            name: format!("new{n}"),
                            team_id: alpha(),
                            path_prefix: format!("/new{n}"),
                            backend_url: "http://127.0.0.1:9".into(),
                            ..Default::default()
                        },
                    ))
                    .await
                    .map(drop)
            }
            "RouteService.GetRoute" => {
                let r = self.route(&self.sys_actor()).await;
                routes
                    .get_route(self.req(who, pb::GetRouteRequest { id: r.0 }))
                    .await
                    .map(drop)
            }
            "RouteService.ListRoutes" => routes
                .list_routes(self.req(who, pb::ListRoutesRequest::default()))
                .await
                .map(drop),
            "RouteService.ListRouteTags" => routes
                .list_route_tags(self.req(who, pb::ListRouteTagsRequest {}))
                .await
                .map(drop),
            "RouteService.UpdateRoute" | "RouteService.UpdateRoute:own" => {
                let ctx = if case.ends_with(":own") {
                    self.ctx_of(who)
                } else {
                    self.sys_actor()
                };
                let r = self.route(&ctx).await;
                routes
                    .update_route(self.req(
                        who,
                        pb::UpdateRouteRequest {
                            id: r.0,
                            description: Some("changed".into()),
                            ..Default::default()
                        },
                    ))
                    .await
                    .map(drop)
            }
            "RouteService.DeleteRoute" => {
                let r = self.route(&self.sys_actor()).await;
                routes
                    .delete_route(self.req(who, pb::DeleteRouteRequest { id: r.0 }))
                    .await
                    .map(drop)
            }
            "AuditService.ListAuditEvents" => audit
                .list_audit_events(self.req(
                    who,
                    pb::ListAuditEventsRequest {
                        filter: Some(pb::AuditFilter {
                            team_id: alpha(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ))
                .await
                .map(drop),
            "AuditService.ExportAuditEvents" => {
                let mut stream = audit
                    .export_audit_events(self.req(
                        who,
                        pb::ExportAuditEventsRequest {
                            filter: Some(pb::AuditFilter {
                                team_id: alpha(),
                                ..Default::default()
                            }),
                            format: 1,
                        },
                    ))
                    .await?
                    .into_inner();
                while stream.message().await?.is_some() {}
                Ok(())
            }
            "AuditService.VerifyAuditChain" => audit
                .verify_audit_chain(self.req(who, pb::VerifyAuditChainRequest {}))
                .await
                .map(drop),
            "AuthService.GetCurrentUser" => auth
                .get_current_user(self.req(who, pb::GetCurrentUserRequest {}))
                .await
                .map(drop),
            "AuthService.ListSessions" => auth
                .list_sessions(self.req(who, pb::ListSessionsRequest {}))
                .await
                .map(drop),
            "UserService.ListUsers" => users
                .list_users(self.req(who, pb::ListUsersRequest::default()))
                .await
                .map(drop),
            "UserService.GetUser" => {
                let u = self.user_in_alpha(Role::Developer).await;
                users
                    .get_user(self.req(who, pb::GetUserRequest { id: u.0 }))
                    .await
                    .map(drop)
            }
            "UserService.UpdateUser:name" => {
                let u = self.user_in_alpha(Role::Developer).await;
                users
                    .update_user(self.req(
                        who,
                        pb::UpdateUserRequest {
                            id: u.0,
                            display_name: Some("New Name".into()),
                            system_admin: None,
                        },
                    ))
                    .await
                    .map(drop)
            }
            "UserService.UpdateUser:system_admin" => {
                let u = self.user_in_alpha(Role::Developer).await;
                users
                    .update_user(self.req(
                        who,
                        pb::UpdateUserRequest {
                            id: u.0,
                            display_name: None,
                            system_admin: Some(true),
                        },
                    ))
                    .await
                    .map(drop)
            }
            "UserService.DisableUser" => {
                let u = self.user_in_alpha(Role::Developer).await;
                users
                    .disable_user(self.req(who, pb::DisableUserRequest { id: u.0 }))
                    .await
                    .map(drop)
            }
            "UserService.EnableUser" => {
                let u = self.user_in_alpha(Role::Developer).await;
                self.s
                    .store
                    .set_user_disabled(&sys_ctx(), &u, true)
                    .await
                    .unwrap();
                users
                    .enable_user(self.req(who, pb::EnableUserRequest { id: u.0 }))
                    .await
                    .map(drop)
            }
            "InvitationService.CreateInvitation:developer"
            | "InvitationService.CreateInvitation:admin" => {
                let role = if case.ends_with("admin") {
                    pb::Role::Admin
                } else {
                    pb::Role::Developer
                };
                invites
                    .create_invitation(self.req(
                        who,
                        pb::CreateInvitationRequest {
                            email: format!("inv{}@matrix.test", self.fresh()),
                            roles: vec![Self::tr("alpha", role)],
                            expires_in_hours: 0,
                        },
                    ))
                    .await
                    .map(drop)
            }
            "InvitationService.ListInvitations" => invites
                .list_invitations(self.req(who, pb::ListInvitationsRequest { team_id: alpha() }))
                .await
                .map(drop),
            "InvitationService.RevokeInvitation" => {
                let i = self.invitation().await;
                invites
                    .revoke_invitation(self.req(who, pb::RevokeInvitationRequest { id: i.0 }))
                    .await
                    .map(drop)
            }
            "ServiceAccountService.CreateServiceAccount:developer"
            | "ServiceAccountService.CreateServiceAccount:admin" => {
                let role = if case.ends_with("admin") {
                    pb::Role::Admin
                } else {
                    pb::Role::Developer
                };
                accounts
                    .create_service_account(self.req(
                        who,
                        pb::CreateServiceAccountRequest {
                            team_id: alpha(),
                            name: "bot".into(),
                            description: String::new(),
                            role: role as i32,
                            capability: 0,
                        },
                    ))
                    .await
                    .map(drop)
            }
            "ServiceAccountService.GetServiceAccount" => {
                let sa = self.service_account(Role::Developer).await;
                accounts
                    .get_service_account(self.req(who, pb::GetServiceAccountRequest { id: sa.0 }))
                    .await
                    .map(drop)
            }
            "ServiceAccountService.ListServiceAccounts" => accounts
                .list_service_accounts(
                    self.req(who, pb::ListServiceAccountsRequest { team_id: alpha() }),
                )
                .await
                .map(drop),
            "ServiceAccountService.DeleteServiceAccount" => {
                let sa = self.service_account(Role::Developer).await;
                accounts
                    .delete_service_account(
                        self.req(who, pb::DeleteServiceAccountRequest { id: sa.0 }),
                    )
                    .await
                    .map(drop)
            }
            "ServiceAccountService.CreateKey" => {
                let sa = self.service_account(Role::Developer).await;
                accounts
                    .create_key(self.req(
                        who,
                        pb::CreateKeyRequest {
                            service_account_id: sa.0,
                            name: "k".into(),
                            expiry: Some(pb::create_key_request::Expiry::ExpiresInDays(30)),
                        },
                    ))
                    .await
                    .map(drop)
            }
            "ServiceAccountService.ListKeys" => {
                let sa = self.service_account(Role::Developer).await;
                accounts
                    .list_keys(self.req(
                        who,
                        pb::ListKeysRequest {
                            service_account_id: sa.0,
                        },
                    ))
                    .await
                    .map(drop)
            }
            "ServiceAccountService.RevokeKey" | "ServiceAccountService.RotateKey" => {
                let sa = self.service_account(Role::Developer).await;
                let k = self.key(&sa).await;
                if case.ends_with("RevokeKey") {
                    accounts
                        .revoke_key(self.req(who, pb::RevokeKeyRequest { id: k.0 }))
                        .await
                        .map(drop)
                } else {
                    accounts
                        .rotate_key(self.req(
                            who,
                            pb::RotateKeyRequest {
                                id: k.0,
                                grace_period_seconds: 0,
                            },
                        ))
                        .await
                        .map(drop)
                }
            }
            "ServiceAccountService.CreateServiceAccount:sync" => accounts
                .create_service_account(self.req(
                    who,
                    pb::CreateServiceAccountRequest {
                        team_id: alpha(),
                        name: "syncer".into(),
                        description: String::new(),
                        role: pb::Role::Viewer as i32,
                        capability: pb::ServiceAccountCapability::Sync as i32,
                    },
                ))
                .await
                .map(drop),
            "SyncService.Watch" => {
                let mut stream = sync
                    .watch(self.req(
                        who,
                        pb::WatchRequest {
                            from_revision: 0,
                            follower: "matrix".into(),
                        },
                    ))
                    .await?
                    .into_inner();
                stream.message().await?;
                Ok(())
            }
            "SyncService.Snapshot" => {
                let mut stream = sync
                    .snapshot(self.req(who, pb::SnapshotRequest {}))
                    .await?
                    .into_inner();
                while stream.message().await?.is_some() {}
                Ok(())
            }
            "SyncService.ReportStatus" => sync
                .report_status(self.req(
                    who,
                    pb::ReportStatusRequest {
                        follower: "matrix".into(),
                        applied_revision: 1,
                        ..Default::default()
                    },
                ))
                .await
                .map(drop),
            "SyncService.LookupEdgeToken" => sync
                .lookup_edge_token(self.req(
                    who,
                    pb::LookupEdgeTokenRequest {
                        token_hash: "0".repeat(64),
                    },
                ))
                .await
                .map(drop),
            "SyncService.GetSyncStatus" => sync
                .get_sync_status(self.req(who, pb::GetSyncStatusRequest {}))
                .await
                .map(drop),
            "SyncService.RequestResync" => sync
                .request_resync(self.req(
                    who,
                    pb::RequestResyncRequest {
                        follower: String::new(),
                    },
                ))
                .await
                .map(drop),
            "UsageService.IngestUsage" => usage
                .ingest_usage(self.req(
                    who,
                    pb::IngestUsageRequest {
                        gateway: "matrix".into(),
                        events: vec![pb::UsageEvent {
                            event_id: format!("ev-{}", self.fresh()),
                            time: Some(prost_types::Timestamp {
                                seconds: now_ms() / 1000,
                                nanos: 0,
                            }),
                            method: "GET".into(),
                            status: 200,
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                ))
                .await
                .map(drop),
            "UsageService.ListUsageEvents" => usage
                .list_usage_events(self.req(
                    who,
                    pb::ListUsageEventsRequest {
                        filter: Some(pb::UsageFilter {
                            team_id: alpha(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ))
                .await
                .map(drop),
            "UsageService.ListGateways" => usage
                .list_gateways(self.req(who, pb::ListGatewaysRequest {}))
                .await
                .map(drop),
            "UsageService.GetUsageSummary" | "UsageService.GetUsageSummary:gateway" => usage
                .get_usage_summary(self.req(
                    who,
                    pb::GetUsageSummaryRequest {
                        query: Some(usage_query(case.ends_with(":gateway"))),
                        step_seconds: 0,
                    },
                ))
                .await
                .map(drop),
            "UsageService.ListTopUsage" => usage
                .list_top_usage(self.req(
                    who,
                    pb::ListTopUsageRequest {
                        query: Some(usage_query(false)),
                        ..Default::default()
                    },
                ))
                .await
                .map(drop),
            "UsageService.BatchGetTokenUsage" => {
                let t = self.token(&self.sys_actor()).await;
                usage
                    .batch_get_token_usage(self.req(
                        who,
                        pb::BatchGetTokenUsageRequest {
                            token_ids: vec![t.0],
                            ..Default::default()
                        },
                    ))
                    .await
                    .map(drop)
            }
            "UsageService.GetTokenUsage" => {
                let t = self.token(&self.sys_actor()).await;
                usage
                    .get_token_usage(self.req(
                        who,
                        pb::GetTokenUsageRequest {
                            token_id: t.0,
                            ..Default::default()
                        },
                    ))
                    .await
                    .map(drop)
            }
            "UsageService.GetRouteUsage" | "UsageService.GetRouteUsage:team" => {
                let r = self.route(&self.sys_actor()).await;
                usage
                    .get_route_usage(self.req(
                        who,
                        pb::GetRouteUsageRequest {
                            route: r.0,
                            team_id: if case.ends_with(":team") {
                                alpha()
                            } else {
                                String::new()
                            },
                            ..Default::default()
                        },
                    ))
                    .await
                    .map(drop)
            }
            "UsageService.TailUsageEvents" => usage
                .tail_usage_events(self.req(
                    who,
                    pb::TailUsageEventsRequest {
                        filter: Some(pb::UsageFilter {
                            team_id: alpha(),
                            ..Default::default()
                        }),
                    },
                ))
                .await
                .map(drop),
            "UsageService.ExportUsage" => {
                // The refusal comes with the stream's first message for streams that
                // start before checking; ours checks first, so the call itself answers.
                usage
                    .export_usage(self.req(
                        who,
                        pb::ExportUsageRequest {
                            query: Some(usage_query(false)),
                            ..Default::default()
                        },
                    ))
                    .await
                    .map(drop)
            }
            "AlertService.CreateAlertRule" | "AlertService.CreateAlertRule:system" => {
                let condition = if case.ends_with(":system") {
                    alert_condition(true)
                } else {
                    alert_condition(false)
                };
                alert_client(&ch)
                    .create_alert_rule(self.req(
                        who,
                        pb::CreateAlertRuleRequest {
                            team_id: alpha(),
                            name: format!("rule {}", self.fresh()),
                            enabled: None,
                            webhook_url: "https://hooks.example.com/keygate".into(),
                            condition: Some(condition),
                        },
                    ))
                    .await
                    .map(drop)
            }
            "AlertService.GetAlertRule" => {
                let id = self.alert_rule(false).await;
                alert_client(&ch)
                    .get_alert_rule(self.req(who, pb::GetAlertRuleRequest { id: id.0 }))
                    .await
                    .map(drop)
            }
            "AlertService.ListAlertRules" => alert_client(&ch)
                .list_alert_rules(self.req(
                    who,
                    pb::ListAlertRulesRequest {
                        team_id: alpha(),
                        ..Default::default()
                    },
                ))
                .await
                .map(drop),
            "AlertService.UpdateAlertRule"
            | "AlertService.UpdateAlertRule:system"
            | "AlertService.UpdateAlertRule:to-system" => {
                let id = self.alert_rule(case.ends_with(":system")).await;
                let condition = case.ends_with(":to-system").then(|| alert_condition(true));
                alert_client(&ch)
                    .update_alert_rule(self.req(
                        who,
                        pb::UpdateAlertRuleRequest {
                            id: id.0,
                            name: Some(format!("renamed {}", self.fresh())),
                            condition,
                            ..Default::default()
                        },
                    ))
                    .await
                    .map(drop)
            }
            "AlertService.DeleteAlertRule" | "AlertService.DeleteAlertRule:system" => {
                let id = self.alert_rule(case.ends_with(":system")).await;
                alert_client(&ch)
                    .delete_alert_rule(self.req(who, pb::DeleteAlertRuleRequest { id: id.0 }))
                    .await
                    .map(drop)
            }
            "AlertService.ListAlertDeliveries" => alert_client(&ch)
                .list_alert_deliveries(self.req(
                    who,
                    pb::ListAlertDeliveriesRequest {
                        team_id: alpha(),
                        ..Default::default()
                    },
                ))
                .await
                .map(drop),
            "AlertService.TestWebhook" => {
                // The receiver address is loopback and not allow-listed: the try is refused
                // before any connection, and the call still succeeds with that outcome.
                let id = self.alert_rule(false).await;
                alert_client(&ch)
                    .test_webhook(self.req(who, pb::TestWebhookRequest { rule_id: id.0 }))
                    .await
                    .map(drop)
            }
            // Without a team: the caller's own teams (anyone signed in); with one: VIEWER+.
            "DashboardService.GetDashboard" | "DashboardService.GetDashboard:team" => {
                keygate_proto::v1::dashboard_service_client::DashboardServiceClient::new(ch.clone())
                    .get_dashboard(self.req(
                        who,
                        pb::GetDashboardRequest {
                            team_id: if case.ends_with(":team") {
                                alpha()
                            } else {
                                String::new()
                            },
                            ..Default::default()
                        },
                    ))
                    .await
                    .map(drop)
            }
            "SystemService.GetServerInfo" => {
                keygate_proto::v1::system_service_client::SystemServiceClient::new(ch.clone())
                    .get_server_info(self.req(who, pb::GetServerInfoRequest {}))
                    .await
                    .map(drop)
            }
            "SystemService.GetSystemStatus" => {
                keygate_proto::v1::system_service_client::SystemServiceClient::new(ch.clone())
                    .get_system_status(self.req(who, pb::GetSystemStatusRequest {}))
                    .await
                    .map(drop)
            }
            other => panic!("permission-matrix.txt names a case this test cannot run: {other}"),
        }
    }
}

/// Checks a list answer made without a team filter: no row of a team outside `mine` (the
/// caller's teams; `None`: it may see every team), and rows of each of alpha and beta (where
/// rows were just made) that it may see, so an answer that hides everything fails too.
fn only_visible(
    mine: Option<BTreeSet<String>>,
    case: &str,
    teams: impl IntoIterator<Item = String>,
) -> Result<(), Status> {
    let seen: BTreeSet<String> = teams.into_iter().collect();
    if let Some(mine) = &mine {
        let foreign: Vec<&String> = seen.difference(mine).collect();
        if !foreign.is_empty() {
            return Err(Status::internal(format!(
                "{case}: rows of teams {foreign:?} the caller may not see"
            )));
        }
    }
    let missing: Vec<&str> = ["alpha", "beta"]
        .into_iter()
        .filter(|t| mine.as_ref().is_none_or(|m| m.contains(*t)) && !seen.contains(*t))
        .collect();
    if !missing.is_empty() {
        return Err(Status::internal(format!(
            "{case}: no rows of its teams {missing:?} (saw {seen:?})"
        )));
    }
    Ok(())
}

/// Team alpha's usage over the last hour (or one gateway's, system admins only).
fn usage_query(gateway: bool) -> pb::UsageQuery {
    if gateway {
        pb::UsageQuery {
            gateway: "matrix".into(),
            ..Default::default()
        }
    } else {
        pb::UsageQuery {
            team_id: "alpha".into(),
            ..Default::default()
        }
    }
}

fn alert_client(
    ch: &Channel,
) -> keygate_proto::v1::alert_service_client::AlertServiceClient<Channel> {
    keygate_proto::v1::alert_service_client::AlertServiceClient::new(ch.clone())
}

/// A team condition (expiring tokens) or a system-wide one (a silent gateway).
fn alert_condition(system_wide: bool) -> pb::AlertCondition {
    use pb::alert_condition::Kind;
    pb::AlertCondition {
        kind: Some(if system_wide {
            Kind::GatewaySilent(pb::GatewaySilentCondition { minutes: 5 })
        } else {
            Kind::TokenExpiring(pb::TokenExpiringCondition { days: 7 })
        }),
    }
}

impl World {
    /// Rows in alpha and in beta of everything the team-scoped lists show: a token each
    /// (with its audit row), a route each, an alert rule each, and a usage event and rollup
    /// each reported by the gateway key.
    async fn in_both_teams(&self) {
        for team in ["alpha", "beta"] {
            let t = self.token_in(&self.sys_actor(), team).await;
            let rule = self.alert_rule_in(false, team).await;
            // A delivery row: the target is loopback and not allow-listed, so the try is
            // refused before any connection and listed with that outcome.
            // Its audit row is setup's: the request id marks it so.
            let mut req = self.req("sys", pb::TestWebhookRequest { rule_id: rule.0 });
            req.metadata_mut()
                .insert("x-request-id", "matrix".parse().unwrap());
            alert_client(&self.ch).test_webhook(req).await.unwrap();
            self.service_account_in(Role::Viewer, team).await;
            let n = self.fresh();
            self.s
                .store
                .create_route(
                    &self.sys_actor(),
                    NewRoute {
                        id: RouteId::generate(),
                        team_id: TeamId(team.into()),
                        name: format!("r{n}"),
                        path_prefix: format!("/r{n}"),
                        backend_url: "http://127.0.0.1:9/".into(),
                        description: String::new(),
                        tags: vec![],
                        methods: vec![],
                        strip_prefix: false,
                        timeout_ms: 1000,
                        auth: AuthChange {
                            kind: AuthKind::None,
                            header_name: String::new(),
                            username: String::new(),
                            secret: None,
                        },
                        allowed_team_ids: vec![],
                        cors_origins: vec![],
                        rate_limit_per_minute: 0,
                    },
                )
                .await
                .unwrap();
            UsageServiceClient::new(self.ch.clone())
                .ingest_usage(self.req(
                    "gateway",
                    pb::IngestUsageRequest {
                        gateway: "matrix".into(),
                        events: vec![pb::UsageEvent {
                            event_id: format!("ev-{}", self.fresh()),
                            time: Some(prost_types::Timestamp {
                                seconds: now_ms() / 1000,
                                nanos: 0,
                            }),
                            token_id: t.0,
                            team_id: team.into(),
                            method: "GET".into(),
                            status: 200,
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                ))
                .await
                .unwrap();
        }
    }

    /// An alert rule of alpha made by the system admin, with a real sealed secret.
    async fn alert_rule(&self, system_wide: bool) -> keygate_control_plane::ids::AlertRuleId {
        self.alert_rule_in(system_wide, "alpha").await
    }

    async fn alert_rule_in(
        &self,
        system_wide: bool,
        team: &str,
    ) -> keygate_control_plane::ids::AlertRuleId {
        use keygate_control_plane::alerts::{self, Condition, NewAlertRule};
        let id = keygate_control_plane::ids::AlertRuleId::generate();
        let sealed = self.s.master_key.seal(
            &alerts::deliver::secret_aad(&id),
            &keygate_control_plane::secrets::SecretString::new("whsec_matrix".to_owned()),
        );
        self.s
            .store
            .create_alert_rule(
                &self.sys_actor(),
                NewAlertRule {
                    id,
                    team_id: TeamId(team.into()),
                    name: format!("rule {}", self.fresh()),
                    enabled: true,
                    webhook_url: "http://127.0.0.1:9/hook".into(),
                    condition: if system_wide {
                        Condition::GatewaySilent { minutes: 5 }
                    } else {
                        Condition::TokenExpiring { days: 7 }
                    },
                    secret_sealed: sealed,
                },
            )
            .await
            .unwrap()
            .id
    }
}

struct Row {
    case: String,
    mutation: bool,
    expect: Vec<char>,
}

fn matrix() -> Vec<Row> {
    let text = include_str!("permission-matrix.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 2 + CALLERS.len(), "malformed matrix line: {l}");
            let expect: Vec<char> = f[2..].iter().map(|c| c.chars().next().unwrap()).collect();
            assert!(
                expect.iter().all(|c| "YNUF".contains(*c)),
                "bad outcome in: {l}"
            );
            Row {
                case: f[0].to_owned(),
                mutation: match f[1] {
                    "m" => true,
                    "r" => false,
                    k => panic!("bad kind {k} in: {l}"),
                },
                expect,
            }
        })
        .collect()
}

/// Audit rows written after `seq`, oldest first.
async fn audit_after(w: &World, seq: i64) -> Vec<keygate_control_plane::audit::AuditEvent> {
    let (page, _) =
        w.s.store
            .list_audit(&AuditPage {
                filter: AuditFilter::default(),
                limit: 500,
                before_seq: None,
            })
            .await
            .unwrap();
    let mut rows: Vec<_> = page.items.into_iter().filter(|e| e.seq > seq).collect();
    rows.reverse();
    rows
}

/// Setup writes through the store with these request ids; calls get server-made ones.
fn is_setup(request_id: &str) -> bool {
    request_id == "matrix" || request_id == "test"
}

async fn permission_matrix(backend: Backend) {
    let w = World::build(backend).await;
    let mut failures = Vec::new();
    let mut cells = 0;
    for row in matrix() {
        for (i, who) in CALLERS.iter().enumerate() {
            cells += 1;
            let want = row.expect[i];
            let seq_before = audit_after(&w, 0).await.last().map_or(0, |e| e.seq);
            let head_before = w.s.store.head_revision().await.unwrap();
            let got = w.run(&row.case, who).await;
            let ok = match (want, &got) {
                ('Y', Ok(())) => true,
                ('N', Err(s)) => s.code() == Code::PermissionDenied,
                ('U', Err(s)) => s.code() == Code::Unauthenticated,
                ('F', Err(s)) => s.code() == Code::FailedPrecondition,
                _ => false,
            };
            if !ok {
                failures.push(format!(
                    "{} as {who}: expected {want}, got {}",
                    row.case,
                    match &got {
                        Ok(()) => "OK".to_string(),
                        Err(s) => format!("{:?}: {}", s.code(), s.message()),
                    }
                ));
                continue;
            }
            if want == 'Y' {
                continue;
            }
            // A refused call changes nothing: every change event after the setup belongs to
            // the setup, and the call itself wrote only what the design says (one
            // `authz.denied` row for a refused change, nothing for a refused read or an
            // unauthenticated call).
            let rows = audit_after(&w, seq_before).await;
            let by_seq: HashMap<i64, &keygate_control_plane::audit::AuditEvent> =
                rows.iter().map(|e| (e.seq, e)).collect();
            for c in w.s.store.list_changes(head_before, 1000).await.unwrap() {
                let origin = by_seq
                    .get(&c.audit_seq)
                    .map(|e| e.request_id.as_str())
                    .unwrap_or("?");
                if !is_setup(origin) {
                    failures.push(format!(
                        "{} as {who}: the refused call wrote change {} ({})",
                        row.case, c.revision, c.entity_type
                    ));
                }
            }
            let from_call: Vec<&str> = rows
                .iter()
                .filter(|e| !is_setup(&e.request_id))
                .map(|e| e.action.as_str())
                .collect();
            // A SYNC key is refused outside SyncService by the auth layer, which audits
            // every such call, reads included.
            let gated = *who == "sync" && !row.case.starts_with("SyncService.");
            let expected: Vec<&str> = if want == 'N' && (row.mutation || gated) {
                vec!["authz.denied"]
            } else {
                vec![]
            };
            if from_call != expected {
                failures.push(format!(
                    "{} as {who}: audit rows from the call {from_call:?}, expected {expected:?}",
                    row.case
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cells >= 1190, "the matrix covers {cells} cells");
}

/// Each permission `GetCurrentUser` names, with the matrix row whose outcome it predicts
/// (team permissions are about team "alpha"; global ones about no team in particular).
const PERMISSION_ROWS: &[(&str, &str)] = &[
    ("team.update", "TeamService.UpdateTeam"),
    ("team.delete", "TeamService.DeleteTeam"),
    ("team.members.read", "TeamService.ListMembers"),
    ("team.members.manage", "TeamService.AddMember:developer"),
    (
        "team.members.manage_privileged",
        "TeamService.AddMember:admin",
    ),
    ("token.read", "TokenService.GetToken"),
    ("token.create", "TokenService.CreateToken"),
    ("token.update", "TokenService.UpdateToken"),
    ("token.update_own", "TokenService.UpdateToken:own"),
    ("route.create", "RouteService.CreateRoute"),
    ("route.update", "RouteService.UpdateRoute"),
    ("route.update_own", "RouteService.UpdateRoute:own"),
    ("audit.read", "AuditService.ListAuditEvents"),
    ("usage.read", "UsageService.ListUsageEvents"),
    ("invitation.read", "InvitationService.ListInvitations"),
    (
        "invitation.create",
        "InvitationService.CreateInvitation:developer",
    ),
    (
        "invitation.create_privileged",
        "InvitationService.CreateInvitation:admin",
    ),
    (
        "service_account.read",
        "ServiceAccountService.ListServiceAccounts",
    ),
    (
        "service_account.manage",
        "ServiceAccountService.CreateServiceAccount:developer",
    ),
    (
        "service_account.manage_privileged",
        "ServiceAccountService.CreateServiceAccount:admin",
    ),
    ("alert.read", "AlertService.ListAlertRules"),
    ("alert.manage", "AlertService.CreateAlertRule"),
    ("alert.manage_system", "AlertService.CreateAlertRule:system"),
    ("team.create", "TeamService.CreateTeam"),
    ("team.claim", "TeamService.ClaimTeam"),
    ("user.list", "UserService.ListUsers"),
    ("user.manage", "UserService.DisableUser"),
    ("audit.read_all", "AuditService.VerifyAuditChain"),
    ("gateway.read", "UsageService.ListGateways"),
    ("sync.manage", "SyncService.GetSyncStatus"),
    (
        "service_account.grant_capability",
        "ServiceAccountService.CreateServiceAccount:sync",
    ),
    ("system.status.read", "SystemService.GetSystemStatus"),
];

/// The output-only flags and GetCurrentUser's allowed actions agree with the matrix: for
/// every signed-in caller, `caller_can_change` on a Token, Route and Team (get and list) is
/// the matrix's UpdateToken / UpdateRoute / UpdateTeam outcome, and each named permission is
/// the outcome of its row.
async fn caller_flags_follow_the_matrix(backend: Backend) {
    let w = World::build(backend).await;
    let rows: HashMap<String, Vec<char>> =
        matrix().into_iter().map(|r| (r.case, r.expect)).collect();
    let cell = |case: &str, who: &str| -> bool {
        let i = CALLERS.iter().position(|c| *c == who).unwrap();
        let row = rows
            .get(case)
            .unwrap_or_else(|| panic!("no matrix row {case}"));
        row[i] == 'Y'
    };
    let mut tokens = TokenServiceClient::new(w.ch.clone());
    let mut routes = RouteServiceClient::new(w.ch.clone());
    let mut teams = TeamServiceClient::new(w.ch.clone());
    let mut auth = AuthServiceClient::new(w.ch.clone());
    let mut failures = Vec::new();
    let mut named = BTreeSet::new();
    for who in ["sys", "admin", "manager", "developer", "viewer", "other"] {
        for own in [false, true] {
            let suffix = if own { ":own" } else { "" };
            let ctx = if own { w.ctx_of(who) } else { w.sys_actor() };
            // Tokens: GetToken and ListTokens, where the caller may read them.
            let t = w.token(&ctx).await;
            let want = cell(&format!("TokenService.UpdateToken{suffix}"), who);
            match tokens
                .get_token(w.req(who, pb::GetTokenRequest { id: t.0.clone() }))
                .await
            {
                Ok(r) => {
                    let got = r.into_inner().token.unwrap().caller_can_change;
                    if got != want {
                        failures.push(format!(
                            "GetToken{suffix} as {who}: flag {got}, matrix {want}"
                        ));
                    }
                    let list = tokens
                        .list_tokens(w.req(
                            who,
                            pb::ListTokensRequest {
                                team_id: "alpha".into(),
                                query: String::new(),
                                page_size: 500,
                                ..Default::default()
                            },
                        ))
                        .await
                        .unwrap()
                        .into_inner();
                    let listed = list
                        .tokens
                        .iter()
                        .find(|x| x.id == t.0)
                        .map(|x| x.caller_can_change);
                    if listed != Some(want) {
                        failures.push(format!(
                            "ListTokens{suffix} as {who}: flag {listed:?}, matrix {want}"
                        ));
                    }
                }
                Err(e) => assert!(!cell("TokenService.GetToken", who), "{who}: {e:?}"),
            }
            // Routes: readable by every signed-in caller.
            let r = w.route(&ctx).await;
            let want = cell(&format!("RouteService.UpdateRoute{suffix}"), who);
            let got = routes
                .get_route(w.req(who, pb::GetRouteRequest { id: r.0.clone() }))
                .await
                .unwrap()
                .into_inner()
                .route
                .unwrap()
                .caller_can_change;
            if got != want {
                failures.push(format!(
                    "GetRoute{suffix} as {who}: flag {got}, matrix {want}"
                ));
            }
            let listed = routes
                .list_routes(w.req(
                    who,
                    pb::ListRoutesRequest {
                        page_size: 500,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .routes
                .into_iter()
                .find(|x| x.id == r.0)
                .map(|x| x.caller_can_change);
            if listed != Some(want) {
                failures.push(format!(
                    "ListRoutes{suffix} as {who}: flag {listed:?}, matrix {want}"
                ));
            }
        }
        // Teams.
        let want = cell("TeamService.UpdateTeam", who);
        let got = teams
            .get_team(w.req(who, pb::GetTeamRequest { id: "alpha".into() }))
            .await
            .unwrap()
            .into_inner()
            .team
            .unwrap()
            .caller_can_change;
        let listed = teams
            .list_teams(w.req(who, pb::ListTeamsRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .teams
            .into_iter()
            .find(|x| x.id == "alpha")
            .map(|x| x.caller_can_change);
        if got != want || listed != Some(want) {
            failures.push(format!(
                "Get/ListTeams as {who}: flags {got}/{listed:?}, matrix {want}"
            ));
        }
        // Named permissions.
        let me = auth
            .get_current_user(w.req(who, pb::GetCurrentUserRequest {}))
            .await
            .unwrap()
            .into_inner();
        let mut in_alpha: BTreeSet<String> = me.all_teams_allowed_actions.iter().cloned().collect();
        if let Some(t) = me.teams.iter().find(|t| t.team_id == "alpha") {
            assert_eq!(
                t.role,
                me.roles.iter().find(|r| r.team_id == "alpha").unwrap().role
            );
            in_alpha.extend(t.allowed_actions.iter().cloned());
        }
        let global: BTreeSet<String> = me.allowed_actions.iter().cloned().collect();
        let given: BTreeSet<String> = in_alpha.union(&global).cloned().collect();
        for name in &given {
            if !PERMISSION_ROWS.iter().any(|(p, _)| p == name) {
                failures.push(format!("{who}: permission {name} has no matrix row here"));
            }
        }
        named.extend(given.iter().cloned());
        for (name, row) in PERMISSION_ROWS {
            let got = given.contains(*name);
            let want = cell(row, who);
            if got != want {
                failures.push(format!(
                    "{who}: {name} given {got}, matrix {row} says {want}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The system admin is given every permission: each was checked against its row.
    assert_eq!(named.len(), PERMISSION_ROWS.len(), "{named:?}");
}

/// Every RPC of every Keygate service appears in the matrix, or is named here with the test
/// that covers it.
#[test]
fn matrix_covers_every_rpc() {
    use prost::Message;
    let fds = prost_types::FileDescriptorSet::decode(keygate_proto::FILE_DESCRIPTOR_SET).unwrap();
    let elsewhere: BTreeSet<&str> = [
        "AuthService.SignIn",
        "AuthService.CompleteSetup",
        "AuthService.AcceptInvitation",
        "AuthService.SignOut",
        "AuthService.RevokeSession",
        "AuthService.ChangePassword",
    ]
    .into_iter()
    .collect();
    let covered: BTreeSet<String> = matrix()
        .into_iter()
        .map(|r| r.case.split(':').next().unwrap().to_owned())
        .collect();
    let mut missing = Vec::new();
    for f in &fds.file {
        for svc in &f.service {
            for m in &svc.method {
                let name = format!("{}.{}", svc.name(), m.name());
                if !covered.contains(&name) && !elsewhere.contains(name.as_str()) {
                    missing.push(name);
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "RPCs missing from permission-matrix.txt: {missing:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Named escalation paths (design brief, item 7, and the issue's list). Each fails if the
// hole reopens.

struct Two {
    s: TestServer,
}

impl Two {
    async fn new() -> Self {
        let s = TestServer::start(Backend::Sqlite).await;
        for t in ["alpha", "beta"] {
            TeamServiceClient::new(s.channel().await)
                .create_team(s.request(pb::CreateTeamRequest {
                    id: t.into(),
                    name: t.into(),
                    ..Default::default()
                }))
                .await
                .unwrap();
        }
        Self { s }
    }

    fn req<T>(&self, who: &TestUser, msg: T) -> Request<T> {
        keygate_control_plane::testing::with_key(&who.token, msg)
    }
}

#[tokio::test]
async fn escalation_manager_cannot_demote_or_remove_an_admin() {
    let w = Two::new().await;
    let admin = w.s.user("a@x.test", &[("alpha", Role::Admin)]).await;
    let manager = w.s.user("m@x.test", &[("alpha", Role::Manager)]).await;
    let mut teams = TeamServiceClient::new(w.s.channel().await);
    let e = teams
        .update_member_role(w.req(
            &manager,
            pb::UpdateMemberRoleRequest {
                team_id: "alpha".into(),
                user_id: admin.id.0.clone(),
                role: pb::Role::Viewer as i32,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = teams
        .remove_member(w.req(
            &manager,
            pb::RemoveMemberRequest {
                team_id: "alpha".into(),
                user_id: admin.id.0.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let members = teams
        .list_members(w.req(
            &admin,
            pb::ListMembersRequest {
                team_id: "alpha".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .members;
    let a = members
        .iter()
        .find(|m| m.user_id == admin.id.0)
        .expect("admin still a member");
    assert_eq!(a.role, pb::Role::Admin as i32);
}

#[tokio::test]
async fn escalation_inviting_into_a_team_without_power() {
    let w = Two::new().await;
    let admin_alpha = w.s.user("a@x.test", &[("alpha", Role::Admin)]).await;
    let mut inv = InvitationServiceClient::new(w.s.channel().await);
    // The old hole: any team admin could invite anyone as ADMIN of any team.
    let e = inv
        .create_invitation(w.req(
            &admin_alpha,
            pb::CreateInvitationRequest {
                email: "eve@x.test".into(),
                roles: vec![World::tr("beta", pb::Role::Admin)],
                expires_in_hours: 0,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // Mixing a team where they have power with one where they have none is refused whole.
    let e = inv
        .create_invitation(w.req(
            &admin_alpha,
            pb::CreateInvitationRequest {
                email: "eve@x.test".into(),
                roles: vec![
                    World::tr("alpha", pb::Role::Viewer),
                    World::tr("beta", pb::Role::Viewer),
                ],
                expires_in_hours: 0,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(w.s.store.list_invitations(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn escalation_granting_a_role_above_the_granters() {
    let w = Two::new().await;
    let manager = w.s.user("m@x.test", &[("alpha", Role::Manager)]).await;
    let newbie = w.s.user("n@x.test", &[]).await;
    let dev = w.s.user("d@x.test", &[("alpha", Role::Developer)]).await;
    let mut teams = TeamServiceClient::new(w.s.channel().await);
    for role in [pb::Role::Admin, pb::Role::Manager] {
        let e = teams
            .add_member(w.req(
                &manager,
                pb::AddMemberRequest {
                    team_id: "alpha".into(),
                    user: newbie.email.clone(),
                    role: role as i32,
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{role:?}");
        let e = teams
            .update_member_role(w.req(
                &manager,
                pb::UpdateMemberRoleRequest {
                    team_id: "alpha".into(),
                    user_id: dev.id.0.clone(),
                    role: role as i32,
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{role:?}");
        let e = InvitationServiceClient::new(w.s.channel().await)
            .create_invitation(w.req(
                &manager,
                pb::CreateInvitationRequest {
                    email: "x@x.test".into(),
                    roles: vec![World::tr("alpha", role)],
                    expires_in_hours: 0,
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{role:?}");
        let e = ServiceAccountServiceClient::new(w.s.channel().await)
            .create_service_account(w.req(
                &manager,
                pb::CreateServiceAccountRequest {
                    team_id: "alpha".into(),
                    name: "bot".into(),
                    description: String::new(),
                    role: role as i32,
                    capability: 0,
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{role:?}");
    }
    // And a manager cannot raise themselves.
    let e = teams
        .update_member_role(w.req(
            &manager,
            pb::UpdateMemberRoleRequest {
                team_id: "alpha".into(),
                user_id: manager.id.0.clone(),
                role: pb::Role::Admin as i32,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
}

async fn alpha_token(w: &Two, creator: &TestUser) -> String {
    TokenServiceClient::new(w.s.channel().await)
        .create_token(w.req(
            creator,
            pb::CreateTokenRequest {
                name: "t".into(),
                team_id: "alpha".into(),
                scopes: vec!["*".into()],
                expiry: Some(pb::create_token_request::Expiry::ExpiresInDays(1)),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap()
        .id
}

#[tokio::test]
async fn escalation_viewer_revoking_a_token() {
    let w = Two::new().await;
    let dev = w.s.user("d@x.test", &[("alpha", Role::Developer)]).await;
    let viewer = w.s.user("v@x.test", &[("alpha", Role::Viewer)]).await;
    let id = alpha_token(&w, &dev).await;
    let mut tokens = TokenServiceClient::new(w.s.channel().await);
    let e = tokens
        .revoke_token(w.req(
            &viewer,
            pb::RevokeTokenRequest {
                id: id.clone(),
                reason: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let t = tokens
        .get_token(w.req(&viewer, pb::GetTokenRequest { id }))
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert_eq!(t.status, pb::TokenStatus::Active as i32);
}

#[tokio::test]
async fn escalation_developer_editing_another_members_token() {
    let w = Two::new().await;
    let dev1 = w.s.user("d1@x.test", &[("alpha", Role::Developer)]).await;
    let dev2 = w.s.user("d2@x.test", &[("alpha", Role::Developer)]).await;
    let id = alpha_token(&w, &dev1).await;
    let mut tokens = TokenServiceClient::new(w.s.channel().await);
    let e = tokens
        .update_token(w.req(
            &dev2,
            pb::UpdateTokenRequest {
                id: id.clone(),
                name: Some("mine now".into()),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    for call in ["revoke", "rotate"] {
        let e = match call {
            "revoke" => tokens
                .revoke_token(w.req(
                    &dev2,
                    pb::RevokeTokenRequest {
                        id: id.clone(),
                        reason: String::new(),
                    },
                ))
                .await
                .map(drop),
            _ => tokens
                .rotate_token(w.req(
                    &dev2,
                    pb::RotateTokenRequest {
                        id: id.clone(),
                        grace_period_seconds: 0,
                    },
                ))
                .await
                .map(drop),
        }
        .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{call}");
    }
    // Its creator may.
    tokens
        .update_token(w.req(
            &dev1,
            pb::UpdateTokenRequest {
                id,
                name: Some("renamed".into()),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn escalation_removed_member_keeps_no_access() {
    let w = Two::new().await;
    let admin = w.s.user("a@x.test", &[("alpha", Role::Admin)]).await;
    let dev = w.s.user("d@x.test", &[("alpha", Role::Developer)]).await;
    let id = alpha_token(&w, &dev).await;
    let mut tokens = TokenServiceClient::new(w.s.channel().await);
    tokens
        .get_token(w.req(&dev, pb::GetTokenRequest { id: id.clone() }))
        .await
        .unwrap();
    TeamServiceClient::new(w.s.channel().await)
        .remove_member(w.req(
            &admin,
            pb::RemoveMemberRequest {
                team_id: "alpha".into(),
                user_id: dev.id.0.clone(),
            },
        ))
        .await
        .unwrap();
    // Same session, next call: roles are resolved per request, so access is gone at once.
    let e = tokens
        .get_token(w.req(&dev, pb::GetTokenRequest { id: id.clone() }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = tokens
        .revoke_token(w.req(
            &dev,
            pb::RevokeTokenRequest {
                id,
                reason: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "not even their own token");
    let listed = tokens
        .list_tokens(w.req(&dev, pb::ListTokensRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .tokens;
    assert!(listed.is_empty(), "list shows nothing of teams they left");
}

#[tokio::test]
async fn the_last_admin_cannot_be_removed_or_demoted() {
    let w = Two::new().await;
    let admin = w.s.user("a@x.test", &[("alpha", Role::Admin)]).await;
    let mut teams = TeamServiceClient::new(w.s.channel().await);
    // alpha was created by the system admin, who is its other ADMIN; remove them first.
    teams
        .remove_member(w.s.request(pb::RemoveMemberRequest {
            team_id: "alpha".into(),
            user_id: w.s.admin_id.0.clone(),
        }))
        .await
        .unwrap();
    let e = teams
        .remove_member(w.req(
            &admin,
            pb::RemoveMemberRequest {
                team_id: "alpha".into(),
                user_id: admin.id.0.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("last ADMIN"), "{}", e.message());
    let e = teams
        .update_member_role(w.req(
            &admin,
            pb::UpdateMemberRoleRequest {
                team_id: "alpha".into(),
                user_id: admin.id.0.clone(),
                role: pb::Role::Viewer as i32,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn route_team_restriction_is_enforced_on_token_scopes() {
    let w = Two::new().await;
    let mut routes = RouteServiceClient::new(w.s.channel().await);
    routes
        .create_route(w.s.request(pb::CreateRouteRequest {
            name: "ledger".into(),
            team_id: "beta".into(),
            path_prefix: "/ledger".into(),
            backend_url: "http://127.0.0.1:9".into(),
            allowed_team_ids: vec!["beta".into()],
            ..Default::default()
        }))
        .await
        .unwrap();
    let mut tokens = TokenServiceClient::new(w.s.channel().await);
    let mk = |team: &str| pb::CreateTokenRequest {
        name: "t".into(),
        team_id: team.into(),
        scopes: vec!["ledger".into()],
        expiry: Some(pb::create_token_request::Expiry::ExpiresInDays(1)),
        ..Default::default()
    };
    let e = tokens
        .create_token(w.s.request(mk("alpha")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        e.message(),
        "scopes: route \"ledger\" does not allow tokens of team \"alpha\""
    );
    tokens.create_token(w.s.request(mk("beta"))).await.unwrap();
    let r = routes
        .get_route(w.s.request(pb::GetRouteRequest {
            id: "ledger".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .route
        .unwrap();
    assert_eq!(r.allowed_team_ids, vec!["beta"]);
    // Opening it up again allows alpha.
    routes
        .update_route(w.s.request(pb::UpdateRouteRequest {
            id: "ledger".into(),
            allowed_team_ids: Some(pb::StringList { values: vec![] }),
            ..Default::default()
        }))
        .await
        .unwrap();
    tokens.create_token(w.s.request(mk("alpha"))).await.unwrap();
}

keygate_control_plane::on_both_backends!(permission_matrix, caller_flags_follow_the_matrix,);
