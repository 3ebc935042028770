//! Typed rows as the database returns them, and their conversion to domain types.

use crate::audit::AuditEvent;
use crate::ids::{
    InvitationId, KeyId, RouteId, ServiceAccountId, SessionId, TeamId, TokenId, UserId,
};
use crate::invitations::Invitation;
use crate::policy::Role;
use crate::routes::{AuthKind, BackendAuthInfo, Route};
use crate::service_accounts::ServiceAccount;
use crate::sessions::Session;
use crate::store::{ChangeEvent, ManagementKey, StoreError};
use crate::teams::Member;
use crate::teams::Team;
use crate::tokens::Token;
use crate::users::User;

fn json_vec(field: &str, s: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s)
        .map_err(|e| StoreError::Internal(format!("corrupt {field} column: {e}")))
}

/// A `rate_limit_per_minute` column (a 64-bit integer in both dialects) as `u32`.
pub(super) fn rate_limit(table: &str, v: i64) -> Result<u32, StoreError> {
    u32::try_from(v)
        .map_err(|_| StoreError::Internal(format!("corrupt {table}.rate_limit_per_minute {v}")))
}

pub const TOKEN_COLUMNS: &str = "id, team_id, name, description, scopes, preview, created_at, \
    updated_at, expires_at, revoked_at, last_used_at, created_by, rotated_from_id, replaced_by_id, \
    rate_limit_per_minute, legacy_prefix";

/// [`TOKEN_COLUMNS`] qualified with the alias `t` (for joins).
pub const TOKEN_COLUMNS_T: &str = "t.id, t.team_id, t.name, t.description, t.scopes, t.preview, \
    t.created_at, t.updated_at, t.expires_at, t.revoked_at, t.last_used_at, t.created_by, \
    t.rotated_from_id, t.replaced_by_id, t.rate_limit_per_minute, t.legacy_prefix";

#[derive(sqlx::FromRow)]
pub struct TokenRow {
    id: String,
    team_id: String,
    name: String,
    description: String,
    scopes: String,
    preview: String,
    created_at: i64,
    updated_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
    created_by: String,
    rotated_from_id: Option<String>,
    replaced_by_id: Option<String>,
    rate_limit_per_minute: i64,
    legacy_prefix: String,
}

impl TryFrom<TokenRow> for Token {
    type Error = StoreError;

    fn try_from(r: TokenRow) -> Result<Self, StoreError> {
        Ok(Self {
            scopes: json_vec("tokens.scopes", &r.scopes)?,
            id: TokenId(r.id),
            team_id: TeamId(r.team_id),
            name: r.name,
            description: r.description,
            preview: r.preview,
            created_at: r.created_at,
            updated_at: r.updated_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
            created_by: r.created_by,
            rotated_from_id: r.rotated_from_id.map(TokenId),
            replaced_by_id: r.replaced_by_id.map(TokenId),
            rate_limit_per_minute: rate_limit("tokens", r.rate_limit_per_minute)?,
            legacy_prefix: r.legacy_prefix,
        })
    }
}

pub const ROUTE_COLUMNS: &str = "r.id, r.team_id, r.name, r.path_prefix, r.backend_url, \
    r.description, r.tags, r.methods, r.strip_prefix, r.timeout_ms, r.auth_type, \
    r.auth_header_name, r.auth_username, r.created_at, r.updated_at, r.created_by, \
    r.cors_origins, r.rate_limit_per_minute, \
    (SELECT count(*) FROM route_secrets s WHERE s.route_id = r.id) AS secret_count, \
    (SELECT count(*) FROM route_allowed_teams a WHERE a.route_id = r.id) AS allowed_count";

#[derive(sqlx::FromRow)]
pub struct RouteRow {
    id: String,
    team_id: String,
    name: String,
    path_prefix: String,
    backend_url: String,
    description: String,
    tags: String,
    methods: String,
    strip_prefix: bool,
    timeout_ms: i64,
    auth_type: String,
    auth_header_name: String,
    auth_username: String,
    created_at: i64,
    updated_at: i64,
    created_by: String,
    cors_origins: String,
    rate_limit_per_minute: i64,
    secret_count: i64,
    allowed_count: i64,
}

impl RouteRow {
    /// Whether the route restricts which teams' tokens may use it (the list is read apart).
    pub fn restricted(&self) -> bool {
        self.allowed_count > 0
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

impl TryFrom<RouteRow> for Route {
    type Error = StoreError;

    fn try_from(r: RouteRow) -> Result<Self, StoreError> {
        let kind = AuthKind::parse(&r.auth_type).ok_or_else(|| {
            StoreError::Internal(format!("corrupt routes.auth_type {:?}", r.auth_type))
        })?;
        Ok(Self {
            tags: json_vec("routes.tags", &r.tags)?,
            methods: json_vec("routes.methods", &r.methods)?,
            id: RouteId(r.id),
            team_id: TeamId(r.team_id),
            name: r.name,
            path_prefix: r.path_prefix,
            backend_url: r.backend_url,
            description: r.description,
            strip_prefix: r.strip_prefix,
            timeout_ms: u32::try_from(r.timeout_ms).unwrap_or(u32::MAX),
            backend_auth: BackendAuthInfo {
                kind,
                header_name: r.auth_header_name,
                username: r.auth_username,
                secret_set: r.secret_count > 0,
            },
            created_at: r.created_at,
            updated_at: r.updated_at,
            created_by: r.created_by,
            allowed_team_ids: Vec::new(),
            cors_origins: json_vec("routes.cors_origins", &r.cors_origins)?,
            rate_limit_per_minute: rate_limit("routes", r.rate_limit_per_minute)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct TeamRow {
    id: String,
    name: String,
    description: String,
    color: String,
    icon: String,
    created_at: i64,
    updated_at: i64,
    created_by: String,
    member_count: i64,
    token_count: i64,
    route_count: i64,
}

impl From<TeamRow> for Team {
    fn from(r: TeamRow) -> Self {
        let c = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            id: TeamId(r.id),
            name: r.name,
            description: r.description,
            color: r.color,
            icon: r.icon,
            created_at: r.created_at,
            updated_at: r.updated_at,
            created_by: r.created_by,
            member_count: c(r.member_count),
            token_count: c(r.token_count),
            route_count: c(r.route_count),
        }
    }
}

pub const AUDIT_COLUMNS: &str = "seq, at, actor_type, actor_id, actor_name, action, entity_type, \
    entity_id, team_id, diff, source_ip, user_agent, request_id, prev_hash, hash";

#[derive(sqlx::FromRow)]
pub struct AuditRow {
    seq: i64,
    at: i64,
    actor_type: String,
    actor_id: String,
    actor_name: String,
    action: String,
    entity_type: String,
    entity_id: String,
    team_id: String,
    diff: String,
    source_ip: String,
    user_agent: String,
    request_id: String,
    prev_hash: String,
    hash: String,
}

impl From<AuditRow> for AuditEvent {
    fn from(r: AuditRow) -> Self {
        Self {
            seq: r.seq,
            at: r.at,
            actor_type: r.actor_type,
            actor_id: r.actor_id,
            actor_name: r.actor_name,
            action: r.action,
            entity_type: r.entity_type,
            entity_id: r.entity_id,
            team_id: r.team_id,
            diff: r.diff,
            source_ip: r.source_ip,
            user_agent: r.user_agent,
            request_id: r.request_id,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

pub const KEY_COLUMNS: &str = "id, service_account_id, name, preview, is_bootstrap, created_at, \
    expires_at, revoked_at, last_used_at, replaced_by_id";

#[derive(sqlx::FromRow)]
pub struct KeyRow {
    id: String,
    service_account_id: Option<String>,
    name: String,
    preview: String,
    is_bootstrap: bool,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
    replaced_by_id: Option<String>,
}

impl From<KeyRow> for ManagementKey {
    fn from(r: KeyRow) -> Self {
        Self {
            id: KeyId(r.id),
            service_account_id: r.service_account_id.map(ServiceAccountId),
            name: r.name,
            preview: r.preview,
            is_bootstrap: r.is_bootstrap,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
            replaced_by_id: r.replaced_by_id.map(KeyId),
        }
    }
}

pub const USER_COLUMNS: &str = "u.id, u.email, u.display_name, u.is_system_admin, u.disabled, \
    u.last_sign_in_at, u.created_at, u.updated_at";

#[derive(sqlx::FromRow)]
pub struct UserRow {
    id: String,
    email: String,
    display_name: String,
    is_system_admin: bool,
    disabled: bool,
    last_sign_in_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        Self {
            id: UserId(r.id),
            email: r.email,
            display_name: r.display_name,
            system_admin: r.is_system_admin,
            disabled: r.disabled,
            last_sign_in_at: r.last_sign_in_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

pub const SESSION_COLUMNS: &str = "s.id, s.user_id, s.created_at, s.expires_at, s.revoked_at, \
    s.last_used_at, s.source_ip, s.user_agent";

#[derive(sqlx::FromRow)]
pub struct SessionRow {
    id: String,
    user_id: String,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
    source_ip: String,
    user_agent: String,
}

impl From<SessionRow> for Session {
    fn from(r: SessionRow) -> Self {
        Self {
            id: SessionId(r.id),
            user_id: UserId(r.user_id),
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
            source_ip: r.source_ip,
            user_agent: r.user_agent,
        }
    }
}

pub fn parse_role(s: &str) -> Result<Role, StoreError> {
    Role::parse(s).ok_or_else(|| StoreError::Internal(format!("corrupt role {s:?}")))
}

#[derive(sqlx::FromRow)]
pub struct MemberRow {
    user_id: String,
    email: String,
    display_name: String,
    role: String,
    created_at: i64,
}

impl TryFrom<MemberRow> for Member {
    type Error = StoreError;

    fn try_from(r: MemberRow) -> Result<Self, StoreError> {
        Ok(Self {
            user_id: UserId(r.user_id),
            email: r.email,
            display_name: r.display_name,
            role: parse_role(&r.role)?,
            added_at: r.created_at,
        })
    }
}

pub const SA_COLUMNS: &str =
    "id, team_id, name, description, role, capability, created_at, created_by";

#[derive(sqlx::FromRow)]
pub struct ServiceAccountRow {
    id: String,
    team_id: String,
    name: String,
    description: String,
    role: String,
    capability: String,
    created_at: i64,
    created_by: String,
}

impl TryFrom<ServiceAccountRow> for ServiceAccount {
    type Error = StoreError;

    fn try_from(r: ServiceAccountRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: ServiceAccountId(r.id),
            team_id: TeamId(r.team_id),
            name: r.name,
            description: r.description,
            role: parse_role(&r.role)?,
            capability: crate::service_accounts::Capability::parse(&r.capability).ok_or_else(
                || StoreError::Internal(format!("corrupt capability {:?}", r.capability)),
            )?,
            created_at: r.created_at,
            created_by: r.created_by,
        })
    }
}

pub const INVITATION_COLUMNS: &str =
    "id, email, roles, created_at, expires_at, created_by, accepted_at, revoked_at, system_admin";

#[derive(sqlx::FromRow)]
pub struct InvitationRow {
    id: String,
    email: String,
    roles: String,
    created_at: i64,
    expires_at: i64,
    created_by: String,
    accepted_at: Option<i64>,
    revoked_at: Option<i64>,
    system_admin: bool,
}

/// `[{"team_id": ..., "role": ...}]` <-> role pairs.
pub fn roles_json(roles: &[(TeamId, Role)]) -> String {
    let v: Vec<serde_json::Value> = roles
        .iter()
        .map(|(t, r)| serde_json::json!({"team_id": t.0, "role": r.as_str()}))
        .collect();
    serde_json::Value::Array(v).to_string()
}

impl TryFrom<InvitationRow> for Invitation {
    type Error = StoreError;

    fn try_from(r: InvitationRow) -> Result<Self, StoreError> {
        let raw: Vec<serde_json::Value> = serde_json::from_str(&r.roles)
            .map_err(|e| StoreError::Internal(format!("corrupt invitations.roles: {e}")))?;
        let mut roles = Vec::with_capacity(raw.len());
        for v in raw {
            let team = v["team_id"].as_str().unwrap_or_default().to_owned();
            roles.push((
                TeamId(team),
                parse_role(v["role"].as_str().unwrap_or_default())?,
            ));
        }
        Ok(Self {
            id: InvitationId(r.id),
            email: r.email,
            roles,
            created_at: r.created_at,
            expires_at: r.expires_at,
            created_by: r.created_by,
            accepted_at: r.accepted_at,
            revoked_at: r.revoked_at,
            system_admin: r.system_admin,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct ChangeRow {
    revision: i64,
    at: i64,
    entity_type: String,
    entity_id: String,
    op: String,
    payload: String,
    audit_seq: i64,
}

impl From<ChangeRow> for ChangeEvent {
    fn from(r: ChangeRow) -> Self {
        Self {
            revision: r.revision,
            at: r.at,
            entity_type: r.entity_type,
            entity_id: r.entity_id,
            op: r.op,
            payload: r.payload,
            audit_seq: r.audit_seq,
        }
    }
}
