//! Typed rows as the database returns them, and their conversion to domain types.

use crate::audit::AuditEvent;
use crate::ids::{KeyId, RouteId, TeamId, TokenId};
use crate::routes::{AuthKind, BackendAuthInfo, Route};
use crate::store::{ChangeEvent, ManagementKey, StoreError};
use crate::teams::Team;
use crate::tokens::Token;

fn json_vec(field: &str, s: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s)
        .map_err(|e| StoreError::Internal(format!("corrupt {field} column: {e}")))
}

pub const TOKEN_COLUMNS: &str = "id, team_id, name, description, scopes, preview, created_at, \
    updated_at, expires_at, revoked_at, last_used_at, created_by, rotated_from_id, replaced_by_id";

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
        })
    }
}

pub const ROUTE_COLUMNS: &str = "r.id, r.team_id, r.name, r.path_prefix, r.backend_url, \
    r.description, r.tags, r.methods, r.strip_prefix, r.timeout_ms, r.auth_type, \
    r.auth_header_name, r.auth_username, r.created_at, r.updated_at, r.created_by, \
    (SELECT count(*) FROM route_secrets s WHERE s.route_id = r.id) AS secret_count";

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
    secret_count: i64,
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

#[derive(sqlx::FromRow)]
pub struct KeyRow {
    id: String,
    name: String,
    preview: String,
    is_bootstrap: bool,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl From<KeyRow> for ManagementKey {
    fn from(r: KeyRow) -> Self {
        Self {
            id: KeyId(r.id),
            name: r.name,
            preview: r.preview,
            is_bootstrap: r.is_bootstrap,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        }
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
