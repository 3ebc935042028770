//! Route domain types and input validation (wire -> domain).

use crate::ids::{RouteId, TeamId};
use crate::pagination;
use crate::policy::{self, Action, Caller};
use crate::secrets::{MasterKey, SecretString};
use crate::time::{Millis, to_timestamp};
use keygate_contracts::{FieldError, FieldErrors, names, route as rules};
use keygate_proto::v1 as pb;
use serde::Serialize;

/// Most tags and methods per route.
pub const MAX_TAGS: usize = 20;

/// Which credential the gateway injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    None,
    Bearer,
    ApiKey,
    Basic,
}

impl AuthKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Bearer => "bearer",
            Self::ApiKey => "api_key",
            Self::Basic => "basic",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Self::None,
            "bearer" => Self::Bearer,
            "api_key" => Self::ApiKey,
            "basic" => Self::Basic,
            _ => return None,
        })
    }

    /// Name of the secret slot this kind stores, if any.
    pub fn secret_slot(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Bearer => Some("bearer_token"),
            Self::ApiKey => Some("api_key"),
            Self::Basic => Some("basic_password"),
        }
    }
}

/// What can be read back about a route's credential: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendAuthInfo {
    pub kind: AuthKind,
    pub header_name: String,
    pub username: String,
    pub secret_set: bool,
}

impl BackendAuthInfo {
    pub fn none() -> Self {
        Self {
            kind: AuthKind::None,
            header_name: String::new(),
            username: String::new(),
            secret_set: false,
        }
    }
}

/// A route as stored. Its secret values live in `route_secrets`, sealed, and are not here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub id: RouteId,
    pub team_id: TeamId,
    pub name: String,
    pub path_prefix: String,
    pub backend_url: String,
    pub description: String,
    pub tags: Vec<String>,
    pub methods: Vec<String>,
    pub strip_prefix: bool,
    pub timeout_ms: u32,
    pub backend_auth: BackendAuthInfo,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub created_by: String,
    /// Teams whose tokens may use the route; empty: every team.
    pub allowed_team_ids: Vec<TeamId>,
    /// Browser origins the gateway answers CORS for (normalised, sorted), or `["*"]`; empty:
    /// no CORS handling.
    pub cors_origins: Vec<String>,
    /// Requests per minute per token on this route; 0: no per-route limit.
    pub rate_limit_per_minute: u32,
}

impl Route {
    /// Whether a token of `team` may be granted this route.
    pub fn allows_team(&self, team: &TeamId) -> bool {
        self.allowed_team_ids.is_empty() || self.allowed_team_ids.contains(team)
    }

    /// What changing this route asks the policy, for `caller` (owned: it created it).
    pub fn change_action(&self, caller: &Caller) -> Action<'_> {
        Action::ChangeRoute {
            team: &self.team_id,
            owned: self.created_by == caller.reference(),
        }
    }

    /// The wire form with `caller_can_change` answered by the policy for `caller`.
    pub fn to_pb_for(self, caller: &Caller) -> pb::Route {
        let can = policy::check(caller, &self.change_action(caller)).is_ok();
        pb::Route {
            caller_can_change: can,
            ..self.into()
        }
    }
}

impl From<Route> for pb::Route {
    fn from(r: Route) -> Self {
        let auth_type = match r.backend_auth.kind {
            AuthKind::None => pb::BackendAuthType::None,
            AuthKind::Bearer => pb::BackendAuthType::Bearer,
            AuthKind::ApiKey => pb::BackendAuthType::ApiKey,
            AuthKind::Basic => pb::BackendAuthType::Basic,
        };
        Self {
            id: r.id.0,
            name: r.name,
            team_id: r.team_id.0,
            path_prefix: r.path_prefix,
            backend_url: r.backend_url,
            description: r.description,
            tags: r.tags,
            methods: r.methods,
            strip_prefix: r.strip_prefix,
            timeout_ms: r.timeout_ms,
            backend_auth: Some(pb::BackendAuthInfo {
                r#type: auth_type as i32,
                header_name: r.backend_auth.header_name,
                username: r.backend_auth.username,
                secret_set: r.backend_auth.secret_set,
            }),
            created_at: Some(to_timestamp(r.created_at)),
            updated_at: Some(to_timestamp(r.updated_at)),
            created_by: r.created_by,
            allowed_team_ids: r.allowed_team_ids.into_iter().map(|t| t.0).collect(),
            cors_origins: r.cors_origins,
            rate_limit_per_minute: r.rate_limit_per_minute,
            // Only a caller-aware conversion (`to_pb_for`) can answer it.
            caller_can_change: false,
        }
    }
}

/// Validated credential input. An empty secret means "keep the stored one" (update only).
#[derive(Debug, Clone)]
pub struct AuthInput {
    pub kind: AuthKind,
    pub header_name: String,
    pub username: String,
    pub secret: SecretString,
}

impl AuthInput {
    /// Seals the secret (if one was given) to `route` and its slot with `key`.
    pub fn seal(self, key: &MasterKey, route: &RouteId) -> AuthChange {
        let secret = match self.kind.secret_slot() {
            Some(slot) if !self.secret.is_empty() => Some(SealedSecret {
                slot,
                sealed: key.seal(&format!("{route}/{slot}"), &self.secret),
                key_id: key.id().to_owned(),
            }),
            _ => None,
        };
        AuthChange {
            kind: self.kind,
            header_name: self.header_name,
            username: self.username,
            secret,
        }
    }
}

/// A sealed secret ready to store.
#[derive(Debug, Clone)]
pub struct SealedSecret {
    pub slot: &'static str,
    pub sealed: String,
    pub key_id: String,
}

/// Credential change as the store applies it.
#[derive(Debug, Clone)]
pub struct AuthChange {
    pub kind: AuthKind,
    pub header_name: String,
    pub username: String,
    /// `None`: keep the stored secret (only valid when the kind is unchanged).
    pub secret: Option<SealedSecret>,
}

/// `require_secret`: an empty secret is refused (CreateRoute); otherwise it keeps the stored one.
fn parse_auth(
    field: &str,
    a: pb::BackendAuth,
    require_secret: bool,
) -> Result<AuthInput, FieldErrors> {
    use pb::backend_auth::Kind;
    let max_secret = 4096;
    let check_secret = |f: String, s: &str| -> Result<SecretString, FieldError> {
        if s.len() > max_secret {
            return Err(FieldError::new(
                f,
                format!("must be at most {max_secret} bytes"),
            ));
        }
        if s.chars().any(|c| c.is_control()) {
            return Err(FieldError::new(f, "must not contain control characters"));
        }
        Ok(SecretString::new(s))
    };
    let mut v = FieldErrors::new();
    let input = match a.kind {
        None => {
            return Err(
                FieldError::new(field, "must set one of none, bearer, api_key, basic").into(),
            );
        }
        Some(Kind::None(_)) => AuthInput {
            kind: AuthKind::None,
            header_name: String::new(),
            username: String::new(),
            secret: SecretString::default(),
        },
        Some(Kind::Bearer(b)) => AuthInput {
            kind: AuthKind::Bearer,
            header_name: String::new(),
            username: String::new(),
            secret: v
                .check(check_secret(format!("{field}.bearer.token"), &b.token))
                .unwrap_or_default(),
        },
        Some(Kind::ApiKey(k)) => {
            v.check(rules::validate_header_name(
                &format!("{field}.api_key.header_name"),
                &k.header_name,
            ));
            AuthInput {
                kind: AuthKind::ApiKey,
                header_name: k.header_name,
                username: String::new(),
                secret: v
                    .check(check_secret(format!("{field}.api_key.value"), &k.value))
                    .unwrap_or_default(),
            }
        }
        Some(Kind::Basic(b)) => {
            let f = format!("{field}.basic.username");
            if b.username.is_empty() || b.username.contains(':') || b.username.len() > 200 {
                v.push(FieldError::new(f, "must be 1-200 characters without ':'"));
            } else {
                v.check(names::validate_text(&f, &b.username, 200, true, false));
            }
            AuthInput {
                kind: AuthKind::Basic,
                header_name: String::new(),
                username: b.username,
                secret: v
                    .check(check_secret(format!("{field}.basic.password"), &b.password))
                    .unwrap_or_default(),
            }
        }
    };
    if require_secret && input.kind != AuthKind::None && input.secret.is_empty() {
        let slot = secret_field(input.kind);
        if !v.fields().contains(&slot) {
            v.push(FieldError::new(slot, "is required"));
        }
    }
    v.into_result()?;
    Ok(input)
}

/// Name of the secret field of each kind, for error messages.
pub fn secret_field(kind: AuthKind) -> &'static str {
    match kind {
        AuthKind::None => "backend_auth",
        AuthKind::Bearer => "backend_auth.bearer.token",
        AuthKind::ApiKey => "backend_auth.api_key.value",
        AuthKind::Basic => "backend_auth.basic.password",
    }
}

/// Validates each entry of a list field (`<field>[i]`), refusing duplicates (by the
/// validated value); reports every bad entry. Returned sorted.
fn validate_list<T: PartialEq + Ord + std::fmt::Display>(
    field: &str,
    raw: &[String],
    what: &str,
    one: impl Fn(&str, &str) -> Result<T, FieldError>,
) -> Result<Vec<T>, FieldErrors> {
    let mut v = FieldErrors::new();
    let mut out: Vec<T> = Vec::with_capacity(raw.len());
    for (i, item) in raw.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let Some(item) = v.check(one(&f, item)) else {
            continue;
        };
        if out.contains(&item) {
            v.push(FieldError::new(f, format!("duplicate {what} \"{item}\"")));
            continue;
        }
        out.push(item);
    }
    v.into_result()?;
    out.sort();
    Ok(out)
}

fn validate_tags(field: &str, raw: &[String]) -> Result<Vec<String>, FieldErrors> {
    if raw.len() > MAX_TAGS {
        return Err(FieldError::new(field, format!("at most {MAX_TAGS} tags are allowed")).into());
    }
    validate_list(field, raw, "tag", |f, t| {
        names::validate_tag(f, t).map(|_| t.to_owned())
    })
}

fn validate_methods(field: &str, raw: &[String]) -> Result<Vec<String>, FieldErrors> {
    validate_list(field, raw, "method", rules::validate_method)
}

/// CORS origins: at most [`rules::MAX_CORS_ORIGINS`], each `*` or an http(s) origin
/// (normalised), `*` only alone, no duplicates after normalisation. Returned sorted.
pub fn validate_cors_origins(field: &str, raw: &[String]) -> Result<Vec<String>, FieldErrors> {
    if raw.len() > rules::MAX_CORS_ORIGINS {
        return Err(FieldError::new(
            field,
            format!("at most {} origins are allowed", rules::MAX_CORS_ORIGINS),
        )
        .into());
    }
    let out = validate_list(field, raw, "origin", rules::validate_cors_origin)?;
    if out.len() > 1 && out.iter().any(|o| o == "*") {
        return Err(FieldError::new(
            field,
            "\"*\" allows every origin and must be the only entry",
        )
        .into());
    }
    Ok(out)
}

fn validate_url(v: &str) -> Result<String, FieldError> {
    Ok(rules::validate_backend_url("backend_url", v)?.to_string())
}

/// Validated CreateRoute input (secret still in plaintext: the service seals it).
#[derive(Debug, Clone)]
pub struct CreateRouteInput {
    pub team_id: TeamId,
    pub name: String,
    pub path_prefix: String,
    pub backend_url: String,
    pub description: String,
    pub tags: Vec<String>,
    pub methods: Vec<String>,
    pub strip_prefix: bool,
    pub timeout_ms: u32,
    pub auth: AuthInput,
    pub allowed_team_ids: Vec<TeamId>,
    pub cors_origins: Vec<String>,
    pub rate_limit_per_minute: u32,
}

impl CreateRouteInput {
    /// The route to insert as `id`, its secret sealed with `key`.
    pub fn into_new_route(self, id: RouteId, key: &MasterKey) -> NewRoute {
        let auth = self.auth.seal(key, &id);
        NewRoute {
            id,
            team_id: self.team_id,
            name: self.name,
            path_prefix: self.path_prefix,
            backend_url: self.backend_url,
            description: self.description,
            tags: self.tags,
            methods: self.methods,
            strip_prefix: self.strip_prefix,
            timeout_ms: self.timeout_ms,
            auth,
            allowed_team_ids: self.allowed_team_ids,
            cors_origins: self.cors_origins,
            rate_limit_per_minute: self.rate_limit_per_minute,
        }
    }
}

fn validate_teams(field: &str, raw: &[String]) -> Result<Vec<TeamId>, FieldErrors> {
    if raw.len() > 100 {
        return Err(FieldError::new(field, "at most 100 teams are allowed").into());
    }
    validate_list(field, raw, "team", |f, t| {
        names::validate_team_id(f, t).map(|_| TeamId(t.to_owned()))
    })
}

/// Every rule a CreateRoute request breaks is reported, not only the first.
impl TryFrom<pb::CreateRouteRequest> for CreateRouteInput {
    type Error = FieldErrors;

    fn try_from(r: pb::CreateRouteRequest) -> Result<Self, FieldErrors> {
        let mut v = FieldErrors::new();
        v.check(names::validate_route_name("name", &r.name));
        v.check(names::validate_team_id("team_id", &r.team_id));
        v.check(rules::validate_path_prefix("path_prefix", &r.path_prefix));
        let backend_url = v.check(validate_url(&r.backend_url));
        v.check(names::validate_text(
            "description",
            &r.description,
            1000,
            false,
            true,
        ));
        let tags = v.check(validate_tags("tags", &r.tags));
        let methods = v.check(validate_methods("methods", &r.methods));
        let timeout_ms = v.check(rules::validate_timeout_ms("timeout_ms", r.timeout_ms));
        let auth = match r.backend_auth {
            None => Some(AuthInput {
                kind: AuthKind::None,
                header_name: String::new(),
                username: String::new(),
                secret: SecretString::default(),
            }),
            Some(a) => v.check(parse_auth("backend_auth", a, true)),
        };
        let allowed_team_ids = v.check(validate_teams("allowed_team_ids", &r.allowed_team_ids));
        let cors_origins = v.check(validate_cors_origins("cors_origins", &r.cors_origins));
        let rate_limit_per_minute = v.check(rules::validate_rate_limit_per_minute(
            "rate_limit_per_minute",
            r.rate_limit_per_minute,
        ));
        let (
            Some(backend_url),
            Some(tags),
            Some(methods),
            Some(timeout_ms),
            Some(auth),
            Some(allowed_team_ids),
            Some(cors_origins),
            Some(rate_limit_per_minute),
        ) = (
            backend_url,
            tags,
            methods,
            timeout_ms,
            auth,
            allowed_team_ids,
            cors_origins,
            rate_limit_per_minute,
        )
        else {
            return Err(v);
        };
        v.into_result()?;
        Ok(Self {
            team_id: TeamId(r.team_id),
            name: r.name,
            path_prefix: r.path_prefix,
            backend_url,
            description: r.description,
            tags,
            methods,
            strip_prefix: r.strip_prefix,
            timeout_ms,
            auth,
            allowed_team_ids,
            cors_origins,
            rate_limit_per_minute,
        })
    }
}

/// A route row to insert (secret already sealed).
#[derive(Debug, Clone)]
pub struct NewRoute {
    pub id: RouteId,
    pub team_id: TeamId,
    pub name: String,
    pub path_prefix: String,
    pub backend_url: String,
    pub description: String,
    pub tags: Vec<String>,
    pub methods: Vec<String>,
    pub strip_prefix: bool,
    pub timeout_ms: u32,
    pub auth: AuthChange,
    pub allowed_team_ids: Vec<TeamId>,
    pub cors_origins: Vec<String>,
    pub rate_limit_per_minute: u32,
}

/// Validated UpdateRoute input (secret still in plaintext).
#[derive(Debug, Clone, Default)]
pub struct UpdateRouteInput {
    pub name: Option<String>,
    pub path_prefix: Option<String>,
    pub backend_url: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub methods: Option<Vec<String>>,
    pub strip_prefix: Option<bool>,
    pub timeout_ms: Option<u32>,
    pub auth: Option<AuthInput>,
    pub allowed_team_ids: Option<Vec<TeamId>>,
    pub cors_origins: Option<Vec<String>>,
    pub rate_limit_per_minute: Option<u32>,
}

/// Validates UpdateRoute input, reporting every broken rule; returns the route id or name
/// and the changes.
pub fn parse_update(r: pb::UpdateRouteRequest) -> Result<(String, UpdateRouteInput), FieldErrors> {
    let mut v = FieldErrors::new();
    if r.id.is_empty() {
        v.push(FieldError::new("id", "is required (route id or name)"));
    }
    let input = UpdateRouteInput {
        name: r
            .name
            .and_then(|n| v.check(names::validate_route_name("name", &n).map(|_| n))),
        path_prefix: r
            .path_prefix
            .and_then(|p| v.check(rules::validate_path_prefix("path_prefix", &p).map(|_| p))),
        backend_url: r
            .backend_url
            .as_deref()
            .and_then(|u| v.check(validate_url(u))),
        description: r.description.and_then(|d| {
            v.check(names::validate_text("description", &d, 1000, false, true).map(|_| d))
        }),
        tags: r
            .tags
            .and_then(|t| v.check(validate_tags("tags", &t.values))),
        methods: r
            .methods
            .and_then(|m| v.check(validate_methods("methods", &m.values))),
        strip_prefix: r.strip_prefix,
        timeout_ms: r
            .timeout_ms
            .and_then(|t| v.check(rules::validate_timeout_ms("timeout_ms", t))),
        auth: r
            .backend_auth
            .and_then(|a| v.check(parse_auth("backend_auth", a, false))),
        allowed_team_ids: r
            .allowed_team_ids
            .and_then(|l| v.check(validate_teams("allowed_team_ids", &l.values))),
        cors_origins: r
            .cors_origins
            .and_then(|l| v.check(validate_cors_origins("cors_origins", &l.values))),
        rate_limit_per_minute: r.rate_limit_per_minute.and_then(|n| {
            v.check(rules::validate_rate_limit_per_minute(
                "rate_limit_per_minute",
                n,
            ))
        }),
    };
    let empty = input.name.is_none()
        && input.path_prefix.is_none()
        && input.backend_url.is_none()
        && input.description.is_none()
        && input.tags.is_none()
        && input.methods.is_none()
        && input.strip_prefix.is_none()
        && input.timeout_ms.is_none()
        && input.auth.is_none()
        && input.allowed_team_ids.is_none()
        && input.cors_origins.is_none()
        && input.rate_limit_per_minute.is_none();
    if v.is_empty() && empty {
        v.push(FieldError::new(
            "update",
            "nothing to change: set at least one field",
        ));
    }
    v.into_result()?;
    Ok((r.id, input))
}

/// A validated patch as the store applies it (secret sealed).
#[derive(Debug, Clone, Default)]
pub struct RoutePatch {
    pub name: Option<String>,
    pub path_prefix: Option<String>,
    pub backend_url: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub methods: Option<Vec<String>>,
    pub strip_prefix: Option<bool>,
    pub timeout_ms: Option<u32>,
    pub auth: Option<AuthChange>,
    pub allowed_team_ids: Option<Vec<TeamId>>,
    pub cors_origins: Option<Vec<String>>,
    pub rate_limit_per_minute: Option<u32>,
}

/// Sort order of ListRoutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouteSort {
    #[default]
    Name,
    PathPrefix,
    CreatedAt,
    UpdatedAt,
}

impl RouteSort {
    pub fn column(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::PathPrefix => "path_prefix",
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "updated_at",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, Self::CreatedAt | Self::UpdatedAt)
    }
}

/// Filters, order and page position for ListRoutes.
#[derive(Debug, Clone, Default)]
pub struct RouteFilter {
    pub team_id: Option<TeamId>,
    pub tag: Option<String>,
    pub query: Option<String>,
    pub sort: RouteSort,
    pub descending: bool,
    pub limit: u32,
    /// Sort-key value (as text) and id of the last row of the previous page.
    pub after: Option<(String, RouteId)>,
}

pub const PAGE_KIND: &str = "routes";

impl TryFrom<pb::ListRoutesRequest> for RouteFilter {
    type Error = FieldError;

    fn try_from(r: pb::ListRoutesRequest) -> Result<Self, FieldError> {
        let sort = match pb::RouteSortField::try_from(r.sort_by) {
            Ok(pb::RouteSortField::Unspecified | pb::RouteSortField::Name) => RouteSort::Name,
            Ok(pb::RouteSortField::PathPrefix) => RouteSort::PathPrefix,
            Ok(pb::RouteSortField::CreatedAt) => RouteSort::CreatedAt,
            Ok(pb::RouteSortField::UpdatedAt) => RouteSort::UpdatedAt,
            Err(_) => return Err(FieldError::new("sort_by", "is not a known sort field")),
        };
        if !r.team_id.is_empty() {
            names::validate_team_id("team_id", &r.team_id)?;
        }
        if !r.tag.is_empty() {
            names::validate_tag("tag", &r.tag)?;
        }
        names::validate_text("query", &r.query, 100, false, false)?;
        let kind = format!("{PAGE_KIND}:{}:{}", sort.column(), r.descending);
        let after = pagination::decode(&kind, &r.page_token, 2)?
            .map(|p| (p[0].clone(), RouteId(p[1].clone())));
        if let (Some((v, _)), true) = (&after, sort.is_numeric()) {
            pagination::int_part(v)?;
        }
        Ok(Self {
            team_id: (!r.team_id.is_empty()).then_some(TeamId(r.team_id)),
            tag: (!r.tag.is_empty()).then_some(r.tag),
            query: (!r.query.trim().is_empty()).then(|| r.query.trim().to_owned()),
            sort,
            descending: r.descending,
            limit: pagination::page_size(r.page_size)?,
            after,
        })
    }
}

impl RouteFilter {
    /// The page token that continues after `last`.
    pub fn next_token(&self, last: &Route) -> String {
        let v = match self.sort {
            RouteSort::Name => last.name.clone(),
            RouteSort::PathPrefix => last.path_prefix.clone(),
            RouteSort::CreatedAt => last.created_at.to_string(),
            RouteSort::UpdatedAt => last.updated_at.to_string(),
        };
        let kind = format!("{PAGE_KIND}:{}:{}", self.sort.column(), self.descending);
        pagination::encode(&kind, &[v, last.id.0.clone()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> pb::CreateRouteRequest {
        pb::CreateRouteRequest {
            name: "payments".into(),
            team_id: "core".into(),
            path_prefix: "/api/payments".into(),
            backend_url: "https://pay.internal:8443/v2".into(),
            ..Default::default()
        }
    }

    #[test]
    fn create_validation() {
        assert!(CreateRouteInput::try_from(req()).is_ok());
        let cases: Vec<(pb::CreateRouteRequest, &str)> = vec![
            (
                pb::CreateRouteRequest {
                    path_prefix: "api".into(),
                    ..req()
                },
                "path_prefix",
            ),
            (
                pb::CreateRouteRequest {
                    backend_url: "http://u:p@evil.com".into(),
                    ..req()
                },
                "backend_url",
            ),
            (
                pb::CreateRouteRequest {
                    backend_url: "file:///etc".into(),
                    ..req()
                },
                "backend_url",
            ),
            (
                pb::CreateRouteRequest {
                    name: "Pay".into(),
                    ..req()
                },
                "name",
            ),
            (
                pb::CreateRouteRequest {
                    tags: vec!["a".into(), "a".into()],
                    ..req()
                },
                "tags[1]",
            ),
            (
                pb::CreateRouteRequest {
                    methods: vec!["FETCH".into()],
                    ..req()
                },
                "methods[0]",
            ),
            (
                pb::CreateRouteRequest {
                    timeout_ms: 400_000,
                    ..req()
                },
                "timeout_ms",
            ),
            (
                pb::CreateRouteRequest {
                    backend_auth: Some(pb::BackendAuth {
                        kind: Some(pb::backend_auth::Kind::Bearer(pb::BearerAuth::default())),
                    }),
                    ..req()
                },
                "backend_auth.bearer.token",
            ),
            (
                pb::CreateRouteRequest {
                    backend_auth: Some(pb::BackendAuth {
                        kind: Some(pb::backend_auth::Kind::ApiKey(pb::ApiKeyAuth {
                            header_name: "Host".into(),
                            value: "x".into(),
                        })),
                    }),
                    ..req()
                },
                "backend_auth.api_key.header_name",
            ),
        ];
        for (r, field) in cases {
            let e = CreateRouteInput::try_from(r).unwrap_err();
            assert_eq!(e.fields(), [field], "{e}");
        }
        // Every broken rule is reported, in field order.
        let e = CreateRouteInput::try_from(pb::CreateRouteRequest {
            name: "Pay".into(),
            path_prefix: "api".into(),
            methods: vec!["FETCH".into(), "GET".into(), "GET".into()],
            backend_auth: Some(pb::BackendAuth {
                kind: Some(pb::backend_auth::Kind::ApiKey(pb::ApiKeyAuth {
                    header_name: "Host".into(),
                    value: String::new(),
                })),
            }),
            ..req()
        })
        .unwrap_err();
        assert_eq!(
            e.fields(),
            [
                "name",
                "path_prefix",
                "methods[0]",
                "methods[2]",
                "backend_auth.api_key.header_name",
                "backend_auth.api_key.value"
            ]
        );
    }

    #[test]
    fn cors_origins_and_rate_limit() {
        let ok = CreateRouteInput::try_from(pb::CreateRouteRequest {
            cors_origins: vec![
                "https://b.example.com/".into(),
                "HTTP://A.example.com:80".into(),
            ],
            rate_limit_per_minute: 600,
            ..req()
        })
        .unwrap();
        assert_eq!(
            ok.cors_origins,
            ["http://a.example.com", "https://b.example.com"]
        );
        assert_eq!(ok.rate_limit_per_minute, 600);
        let origins = |o: &[&str]| pb::CreateRouteRequest {
            cors_origins: o.iter().map(|s| s.to_string()).collect(),
            ..req()
        };
        let cases: Vec<(pb::CreateRouteRequest, &str, &str)> = vec![
            (origins(&["https://a.com/app"]), "cors_origins[0]", "path"),
            (
                origins(&["https://a.com", "ftp://b.com"]),
                "cors_origins[1]",
                "scheme",
            ),
            (
                origins(&["https://a.com", "https://A.com/"]),
                "cors_origins[1]",
                "duplicate",
            ),
            (
                origins(&["*", "https://a.com"]),
                "cors_origins",
                "only entry",
            ),
            (
                origins(&["https://a.com"; 21]),
                "cors_origins",
                "at most 20",
            ),
            (
                pb::CreateRouteRequest {
                    rate_limit_per_minute: 1_000_001,
                    ..req()
                },
                "rate_limit_per_minute",
                "1000000",
            ),
        ];
        for (r, field, rule) in cases {
            let e = CreateRouteInput::try_from(r).unwrap_err();
            assert_eq!(e.fields(), [field], "{e}");
            assert!(e[0].rule.contains(rule), "{e}");
        }
        // Update: a present empty list clears, an absent one keeps; 0 removes the limit.
        let (_, patch) = parse_update(pb::UpdateRouteRequest {
            id: "pay".into(),
            cors_origins: Some(pb::StringList { values: vec![] }),
            rate_limit_per_minute: Some(0),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(patch.cors_origins, Some(vec![]));
        assert_eq!(patch.rate_limit_per_minute, Some(0));
        let e = parse_update(pb::UpdateRouteRequest {
            id: "pay".into(),
            cors_origins: Some(pb::StringList {
                values: vec!["nope".into()],
            }),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.fields(), ["cors_origins[0]"]);
    }
}
