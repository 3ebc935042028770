//! Token domain types and input validation (wire -> domain).

use crate::ids::{TeamId, TokenId};
use crate::pagination;
use crate::policy::{self, Action, Caller};
use crate::time::{Millis, from_timestamp, now_ms, to_timestamp, to_timestamp_opt};
use keygate_contracts::route::validate_rate_limit_per_minute;
use keygate_contracts::scope::{Scope, parse_scopes};
use keygate_contracts::{FieldError, FieldErrors, names};
use keygate_proto::v1 as pb;
use serde::Serialize;

/// Longest token lifetime, in days.
pub const MAX_EXPIRY_DAYS: u32 = 3650;
/// Longest rotation grace period, in seconds (30 days).
pub const MAX_GRACE_SECONDS: u32 = 30 * 86_400;

/// A token as stored (never its plaintext or hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Token {
    pub id: TokenId,
    pub team_id: TeamId,
    pub name: String,
    pub description: String,
    pub scopes: Vec<String>,
    pub preview: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub expires_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
    pub last_used_at: Option<Millis>,
    pub created_by: String,
    pub rotated_from_id: Option<TokenId>,
    pub replaced_by_id: Option<TokenId>,
    /// Requests per minute the gateway allows this token over all routes; 0: no limit.
    pub rate_limit_per_minute: u32,
    /// Key format prefix of a token imported with its old key (`ntk`); empty otherwise.
    pub legacy_prefix: String,
}

/// Lifecycle state, derived at read time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TokenStatus {
    Active,
    Expired,
    Revoked,
}

impl Token {
    pub fn status(&self, now: Millis) -> TokenStatus {
        if self.revoked_at.is_some() {
            TokenStatus::Revoked
        } else if self.expires_at.is_some_and(|e| e <= now) {
            TokenStatus::Expired
        } else {
            TokenStatus::Active
        }
    }
}

impl Token {
    /// What changing this token asks the policy, for `caller` (owned: it created it).
    pub fn change_action(&self, caller: &Caller) -> Action<'_> {
        Action::ChangeToken {
            team: &self.team_id,
            owned: self.created_by == caller.reference(),
        }
    }

    /// The wire form with `caller_can_change` answered by the policy for `caller`.
    pub fn to_pb_for(self, caller: &Caller) -> pb::Token {
        let can = policy::check(caller, &self.change_action(caller)).is_ok();
        pb::Token {
            caller_can_change: can,
            ..self.into()
        }
    }
}

impl From<TokenStatus> for pb::TokenStatus {
    fn from(s: TokenStatus) -> Self {
        match s {
            TokenStatus::Active => Self::Active,
            TokenStatus::Expired => Self::Expired,
            TokenStatus::Revoked => Self::Revoked,
        }
    }
}

impl From<Token> for pb::Token {
    fn from(t: Token) -> Self {
        let status = pb::TokenStatus::from(t.status(now_ms())) as i32;
        Self {
            id: t.id.0,
            name: t.name,
            team_id: t.team_id.0,
            description: t.description,
            scopes: t.scopes,
            status,
            preview: t.preview,
            created_at: Some(to_timestamp(t.created_at)),
            updated_at: Some(to_timestamp(t.updated_at)),
            expires_at: to_timestamp_opt(t.expires_at),
            revoked_at: to_timestamp_opt(t.revoked_at),
            last_used_at: to_timestamp_opt(t.last_used_at),
            created_by: t.created_by,
            rotated_from_id: t.rotated_from_id.map(|i| i.0).unwrap_or_default(),
            replaced_by_id: t.replaced_by_id.map(|i| i.0).unwrap_or_default(),
            rate_limit_per_minute: t.rate_limit_per_minute,
            legacy_prefix: t.legacy_prefix,
            // Only a caller-aware conversion (`to_pb_for`) can answer it.
            caller_can_change: false,
        }
    }
}

/// Everything the store needs to insert a token. The plaintext is not here.
#[derive(Debug, Clone)]
pub struct NewTokenRecord {
    pub id: TokenId,
    pub team_id: TeamId,
    pub name: String,
    pub description: String,
    pub scopes: Vec<Scope>,
    pub token_hash: String,
    pub preview: String,
    pub expires_at: Option<Millis>,
    /// Requests per minute; 0: no per-token limit.
    pub rate_limit_per_minute: u32,
}

/// Validated CreateToken input.
#[derive(Debug, Clone)]
pub struct CreateTokenInput {
    pub team_id: TeamId,
    pub name: String,
    pub description: String,
    pub scopes: Vec<Scope>,
    pub expires_at: Option<Millis>,
    pub rate_limit_per_minute: u32,
}

/// Expiry choice on the wire.
pub enum ExpiryChoice {
    Days(u32),
    Never(bool),
}

/// `expires_in_days` / `never_expires` -> absolute expiry (None = never).
pub fn expiry_from(
    choice: Option<ExpiryChoice>,
    now: Millis,
) -> Result<Option<Millis>, FieldError> {
    match choice {
        None => Err(FieldError::new(
            "expiry",
            "is required: set expires_in_days (1-3650) or never_expires",
        )),
        Some(ExpiryChoice::Never(true)) => Ok(None),
        Some(ExpiryChoice::Never(false)) => Err(FieldError::new(
            "never_expires",
            "must be true when set; use expires_in_days for an expiring token",
        )),
        Some(ExpiryChoice::Days(d)) if (1..=MAX_EXPIRY_DAYS).contains(&d) => {
            Ok(Some(now + i64::from(d) * 86_400_000))
        }
        Some(ExpiryChoice::Days(_)) => Err(FieldError::new(
            "expires_in_days",
            format!("must be between 1 and {MAX_EXPIRY_DAYS}"),
        )),
    }
}

fn validate_name(v: &str) -> Result<String, FieldError> {
    names::validate_text("name", v, 100, true, false)?;
    Ok(v.trim().to_owned())
}

fn validate_description(v: &str) -> Result<String, FieldError> {
    names::validate_text("description", v, 1000, false, true)?;
    Ok(v.to_owned())
}

fn validate_team(v: &str) -> Result<TeamId, FieldError> {
    names::validate_team_id("team_id", v)?;
    Ok(TeamId(v.to_owned()))
}

/// Every rule a CreateToken request breaks is reported, not only the first.
impl TryFrom<pb::CreateTokenRequest> for CreateTokenInput {
    type Error = FieldErrors;

    fn try_from(r: pb::CreateTokenRequest) -> Result<Self, FieldErrors> {
        use pb::create_token_request::Expiry;
        let choice = r.expiry.map(|e| match e {
            Expiry::ExpiresInDays(d) => ExpiryChoice::Days(d),
            Expiry::NeverExpires(b) => ExpiryChoice::Never(b),
        });
        let mut v = FieldErrors::new();
        let name = v.check(validate_name(&r.name));
        let team_id = v.check(validate_team(&r.team_id));
        let description = v.check(validate_description(&r.description));
        let scopes = v.check(parse_scopes("scopes", &r.scopes));
        let expires_at = v.check(expiry_from(choice, now_ms()));
        let rate_limit_per_minute = v.check(validate_rate_limit_per_minute(
            "rate_limit_per_minute",
            r.rate_limit_per_minute,
        ));
        let (
            Some(name),
            Some(team_id),
            Some(description),
            Some(scopes),
            Some(expires_at),
            Some(rate_limit_per_minute),
        ) = (
            name,
            team_id,
            description,
            scopes,
            expires_at,
            rate_limit_per_minute,
        )
        else {
            return Err(v);
        };
        Ok(Self {
            name,
            team_id,
            description,
            scopes,
            expires_at,
            rate_limit_per_minute,
        })
    }
}

/// Validated UpdateToken input; `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct TokenPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub scopes: Option<Vec<Scope>>,
    /// `Some(None)`: never expires.
    pub expires_at: Option<Option<Millis>>,
    /// `Some(0)`: no per-token limit.
    pub rate_limit_per_minute: Option<u32>,
}

impl TokenPatch {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.description.is_none()
            && self.scopes.is_none()
            && self.expires_at.is_none()
            && self.rate_limit_per_minute.is_none()
    }
}

/// Parses a token id field.
pub fn parse_token_id(field: &str, v: &str) -> Result<TokenId, FieldError> {
    let ok =
        v.len() == 36 && v.starts_with("tok_") && v[4..].bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(TokenId(v.to_owned()))
    } else {
        Err(FieldError::new(
            field,
            "must be a token id (tok_ followed by 32 hex digits)",
        ))
    }
}

/// Validates UpdateToken input, reporting every broken rule.
pub fn parse_update(r: pb::UpdateTokenRequest) -> Result<(TokenId, TokenPatch), FieldErrors> {
    use pb::update_token_request::Expiry;
    let mut v = FieldErrors::new();
    let id = v.check(parse_token_id("id", &r.id));
    let patch = TokenPatch {
        name: r.name.as_deref().and_then(|n| v.check(validate_name(n))),
        description: r
            .description
            .as_deref()
            .and_then(|d| v.check(validate_description(d))),
        scopes: r
            .scopes
            .and_then(|l| v.check(parse_scopes("scopes", &l.values))),
        expires_at: r.expiry.and_then(|e| {
            let choice = match e {
                Expiry::ExpiresInDays(d) => ExpiryChoice::Days(d),
                Expiry::NeverExpires(b) => ExpiryChoice::Never(b),
            };
            v.check(expiry_from(Some(choice), now_ms()))
        }),
        rate_limit_per_minute: r
            .rate_limit_per_minute
            .and_then(|n| v.check(validate_rate_limit_per_minute("rate_limit_per_minute", n))),
    };
    if v.is_empty() && patch.is_empty() {
        v.push(FieldError::new(
            "update",
            "nothing to change: set at least one of name, description, scopes, expiry, \
             rate_limit_per_minute",
        ));
    }
    match id {
        Some(id) if v.is_empty() => Ok((id, patch)),
        _ => Err(v),
    }
}

/// Sort order of ListTokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenSort {
    #[default]
    CreatedAt,
    Name,
    /// Never-used tokens sort as the oldest.
    LastUsedAt,
    /// Tokens that never expire sort last.
    ExpiresAt,
}

/// What never-used tokens sort as (older than any use).
pub const NEVER_USED_KEY: Millis = -1;
/// What never-expiring tokens sort as (after any expiry).
pub const NEVER_EXPIRES_KEY: Millis = Millis::MAX;

impl TokenSort {
    /// The name used in page tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreatedAt => "created_at",
            Self::Name => "name",
            Self::LastUsedAt => "last_used_at",
            Self::ExpiresAt => "expires_at",
        }
    }

    /// The sort key of `t`, as compared in SQL.
    pub fn key_of(self, t: &Token) -> SortKey {
        match self {
            Self::CreatedAt => SortKey::Int(t.created_at),
            Self::Name => SortKey::Text(t.name.clone()),
            Self::LastUsedAt => SortKey::Int(t.last_used_at.unwrap_or(NEVER_USED_KEY)),
            Self::ExpiresAt => SortKey::Int(t.expires_at.unwrap_or(NEVER_EXPIRES_KEY)),
        }
    }
}

/// A sort-key value in a page position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    Int(i64),
    Text(String),
}

/// Filters, order and page position for ListTokens.
#[derive(Debug, Clone)]
pub struct TokenFilter {
    pub team_id: Option<TeamId>,
    pub scope: Option<String>,
    pub status: Option<TokenStatus>,
    pub expiring_before: Option<Millis>,
    /// Only tokens used, but last before this time (never-used ones are left out).
    pub last_used_before: Option<Millis>,
    /// Only tokens never used.
    pub never_used: bool,
    /// Only tokens imported with their old key format (`legacy_prefix` set).
    pub legacy: bool,
    pub query: Option<String>,
    /// Only tokens of these teams (`None`: every team). Set from the caller, not the request.
    pub visible_teams: Option<Vec<TeamId>>,
    pub sort: TokenSort,
    /// Against the field's natural order (names Z-A, times newest first).
    pub descending: bool,
    pub limit: u32,
    /// Sort key and id of the last row of the previous page.
    pub after: Option<(SortKey, TokenId)>,
}

/// The default list: every token, newest first (created_at descending).
impl Default for TokenFilter {
    fn default() -> Self {
        Self {
            team_id: None,
            scope: None,
            status: None,
            expiring_before: None,
            last_used_before: None,
            never_used: false,
            legacy: false,
            query: None,
            visible_teams: None,
            sort: TokenSort::CreatedAt,
            descending: true,
            limit: pagination::DEFAULT_PAGE_SIZE,
            after: None,
        }
    }
}

impl TokenFilter {
    /// The page position just after `last` in this filter's order.
    pub fn position_after(&self, last: &Token) -> (SortKey, TokenId) {
        (self.sort.key_of(last), last.id.clone())
    }

    /// The page token that continues after `last`.
    pub fn next_token(&self, last: &Token) -> String {
        let key = match self.sort.key_of(last) {
            SortKey::Int(v) => v.to_string(),
            SortKey::Text(v) => v,
        };
        pagination::encode(
            &page_kind(self.sort, self.descending),
            &[key, last.id.0.clone()],
        )
    }
}

pub const PAGE_KIND: &str = "tokens";

/// Page tokens name the list, the sort field and the direction, so a token from another
/// order is refused.
fn page_kind(sort: TokenSort, descending: bool) -> String {
    format!("{PAGE_KIND}:{}:{descending}", sort.as_str())
}

impl TryFrom<pb::ListTokensRequest> for TokenFilter {
    type Error = FieldError;

    fn try_from(r: pb::ListTokensRequest) -> Result<Self, FieldError> {
        let team_id = (!r.team_id.is_empty())
            .then(|| validate_team(&r.team_id))
            .transpose()?;
        if !r.scope.is_empty() && !r.tag.is_empty() {
            return Err(FieldError::new("tag", "cannot be combined with scope"));
        }
        let scope = if !r.scope.is_empty() {
            Some(Scope::parse("scope", &r.scope)?.to_string())
        } else if !r.tag.is_empty() {
            names::validate_tag("tag", &r.tag)?;
            Some(format!("tag:{}", r.tag))
        } else {
            None
        };
        let status = match pb::TokenStatus::try_from(r.status) {
            Ok(pb::TokenStatus::Unspecified) => None,
            Ok(pb::TokenStatus::Active) => Some(TokenStatus::Active),
            Ok(pb::TokenStatus::Expired) => Some(TokenStatus::Expired),
            Ok(pb::TokenStatus::Revoked) => Some(TokenStatus::Revoked),
            Err(_) => return Err(FieldError::new("status", "is not a known token status")),
        };
        if r.never_used && r.last_used_before.is_some() {
            return Err(FieldError::new(
                "never_used",
                "cannot be combined with last_used_before (never-used tokens have no last use)",
            ));
        }
        names::validate_text("query", &r.query, 100, false, false)?;
        // Unspecified: the historic default, newest first (whatever `descending` says).
        let (sort, descending) = match pb::TokenSortField::try_from(r.sort_by) {
            Ok(pb::TokenSortField::Unspecified) => (TokenSort::CreatedAt, true),
            Ok(pb::TokenSortField::CreatedAt) => (TokenSort::CreatedAt, r.descending),
            Ok(pb::TokenSortField::Name) => (TokenSort::Name, r.descending),
            Ok(pb::TokenSortField::LastUsedAt) => (TokenSort::LastUsedAt, r.descending),
            Ok(pb::TokenSortField::ExpiresAt) => (TokenSort::ExpiresAt, r.descending),
            Err(_) => return Err(FieldError::new("sort_by", "is not a known sort field")),
        };
        let after = pagination::decode(&page_kind(sort, descending), &r.page_token, 2)?
            .map(|p| -> Result<_, FieldError> {
                let key = match sort {
                    TokenSort::Name => SortKey::Text(p[0].clone()),
                    _ => SortKey::Int(pagination::int_part(&p[0])?),
                };
                Ok((key, parse_token_id("page_token", &p[1])?))
            })
            .transpose()?;
        Ok(Self {
            team_id,
            scope,
            status,
            expiring_before: r.expiring_before.as_ref().map(from_timestamp),
            last_used_before: r.last_used_before.as_ref().map(from_timestamp),
            never_used: r.never_used,
            legacy: r.legacy,
            query: (!r.query.trim().is_empty()).then(|| r.query.trim().to_owned()),
            visible_teams: None,
            sort,
            descending,
            limit: pagination::page_size(r.page_size)?,
            after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(
        f: impl FnOnce(&mut pb::CreateTokenRequest),
    ) -> Result<CreateTokenInput, FieldErrors> {
        let mut r = pb::CreateTokenRequest {
            name: "ci".into(),
            team_id: "payments".into(),
            description: String::new(),
            scopes: vec!["*".into()],
            expiry: Some(pb::create_token_request::Expiry::ExpiresInDays(30)),
            rate_limit_per_minute: 0,
        };
        f(&mut r);
        CreateTokenInput::try_from(r)
    }

    #[test]
    fn create_validation_names_field_and_rule() {
        assert!(create(|_| {}).is_ok());
        type Mutation = Box<dyn Fn(&mut pb::CreateTokenRequest)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|r| r.name = String::new()), "name"),
            (Box::new(|r| r.name = "x".repeat(101)), "name"),
            (Box::new(|r| r.team_id = "Bad Team".into()), "team_id"),
            (Box::new(|r| r.scopes = vec![]), "scopes"),
            (Box::new(|r| r.scopes = vec!["tag:".into()]), "scopes[0]"),
            (Box::new(|r| r.expiry = None), "expiry"),
            (
                Box::new(|r| r.expiry = Some(pb::create_token_request::Expiry::ExpiresInDays(0))),
                "expires_in_days",
            ),
            (
                Box::new(|r| {
                    r.expiry = Some(pb::create_token_request::Expiry::ExpiresInDays(3651))
                }),
                "expires_in_days",
            ),
            (
                Box::new(|r| {
                    r.expiry = Some(pb::create_token_request::Expiry::NeverExpires(false))
                }),
                "never_expires",
            ),
            (
                Box::new(|r| r.description = "d".repeat(1001)),
                "description",
            ),
            (
                Box::new(|r| r.rate_limit_per_minute = 1_000_001),
                "rate_limit_per_minute",
            ),
        ];
        for (mutate, field) in cases {
            let e = create(|r| mutate(r)).unwrap_err();
            assert_eq!(e.fields(), [field], "{e}");
        }
        // Every broken rule is reported, in field order.
        let e = create(|r| {
            r.name = String::new();
            r.scopes = vec!["Bad Scope".into(), "*".into(), "tag:".into()];
            r.expiry = None;
        })
        .unwrap_err();
        assert_eq!(e.fields(), ["name", "scopes[0]", "scopes[2]", "expiry"]);
        assert!(e.to_string().ends_with("(and 3 more)"), "{e}");
    }

    #[test]
    fn status_is_derived() {
        let mut t = Token {
            id: TokenId("tok_1".into()),
            team_id: TeamId("t".into()),
            name: "n".into(),
            description: String::new(),
            scopes: vec![],
            preview: String::new(),
            created_at: 0,
            updated_at: 0,
            expires_at: Some(100),
            revoked_at: None,
            last_used_at: None,
            created_by: String::new(),
            rotated_from_id: None,
            replaced_by_id: None,
            rate_limit_per_minute: 0,
            legacy_prefix: String::new(),
        };
        assert_eq!(t.status(99), TokenStatus::Active);
        assert_eq!(t.status(100), TokenStatus::Expired);
        t.revoked_at = Some(50);
        assert_eq!(t.status(99), TokenStatus::Revoked);
    }

    #[test]
    fn update_needs_a_change_and_valid_id() {
        let r = pb::UpdateTokenRequest {
            id: "tok_0123456789abcdef0123456789abcdef".into(),
            ..Default::default()
        };
        assert_eq!(parse_update(r).unwrap_err().fields(), ["update"]);
        let r = pb::UpdateTokenRequest {
            id: "nope".into(),
            name: Some("x".into()),
            ..Default::default()
        };
        assert_eq!(parse_update(r).unwrap_err().fields(), ["id"]);
        let r = pb::UpdateTokenRequest {
            id: "nope".into(),
            name: Some(String::new()),
            rate_limit_per_minute: Some(2_000_000),
            ..Default::default()
        };
        assert_eq!(
            parse_update(r).unwrap_err().fields(),
            ["id", "name", "rate_limit_per_minute"]
        );
    }

    #[test]
    fn list_filter_sorts_and_refusals() {
        let parse = |r: pb::ListTokensRequest| TokenFilter::try_from(r);
        let d = parse(pb::ListTokensRequest::default()).unwrap();
        assert_eq!(
            (d.sort, d.descending),
            (TokenSort::CreatedAt, true),
            "newest first"
        );
        let both = parse(pb::ListTokensRequest {
            never_used: true,
            last_used_before: Some(to_timestamp(5)),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(both.field, "never_used");
        assert!(both.to_string().contains("last_used_before"), "{both}");
        assert_eq!(
            parse(pb::ListTokensRequest {
                sort_by: 42,
                ..Default::default()
            })
            .unwrap_err()
            .field,
            "sort_by"
        );
        for (field, sort) in [
            (pb::TokenSortField::CreatedAt, TokenSort::CreatedAt),
            (pb::TokenSortField::Name, TokenSort::Name),
            (pb::TokenSortField::LastUsedAt, TokenSort::LastUsedAt),
            (pb::TokenSortField::ExpiresAt, TokenSort::ExpiresAt),
        ] {
            let f = parse(pb::ListTokensRequest {
                sort_by: field as i32,
                ..Default::default()
            })
            .unwrap();
            assert_eq!((f.sort, f.descending), (sort, false), "natural order");
        }

        // A page token carries the order it continues; any other order refuses it.
        let mut last = Token {
            id: TokenId("tok_0123456789abcdef0123456789abcdef".into()),
            team_id: TeamId("t".into()),
            name: "b".into(),
            description: String::new(),
            scopes: vec![],
            preview: String::new(),
            created_at: 7,
            updated_at: 7,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            created_by: String::new(),
            rotated_from_id: None,
            replaced_by_id: None,
            rate_limit_per_minute: 0,
            legacy_prefix: String::new(),
        };
        let by_use = TokenFilter {
            sort: TokenSort::LastUsedAt,
            descending: false,
            ..Default::default()
        };
        let token = by_use.next_token(&last);
        let again = |sort_by: pb::TokenSortField, descending: bool| {
            parse(pb::ListTokensRequest {
                sort_by: sort_by as i32,
                descending,
                page_token: token.clone(),
                ..Default::default()
            })
        };
        let f = again(pb::TokenSortField::LastUsedAt, false).unwrap();
        assert_eq!(
            f.after,
            Some((SortKey::Int(NEVER_USED_KEY), last.id.clone()))
        );
        assert_eq!(f.after, Some(by_use.position_after(&last)));
        for (sort_by, descending) in [
            (pb::TokenSortField::LastUsedAt, true),
            (pb::TokenSortField::ExpiresAt, false),
            (pb::TokenSortField::Unspecified, false),
        ] {
            assert_eq!(again(sort_by, descending).unwrap_err().field, "page_token");
        }
        last.expires_at = None;
        assert_eq!(
            TokenSort::ExpiresAt.key_of(&last),
            SortKey::Int(NEVER_EXPIRES_KEY)
        );
        assert_eq!(TokenSort::Name.key_of(&last), SortKey::Text("b".into()));
    }

    #[test]
    fn rate_limit() {
        assert_eq!(
            create(|_| {}).unwrap().rate_limit_per_minute,
            0,
            "0: no limit"
        );
        for ok in [1, 600, 1_000_000] {
            let t = create(|r| r.rate_limit_per_minute = ok).unwrap();
            assert_eq!(t.rate_limit_per_minute, ok);
        }
        let e = create(|r| r.rate_limit_per_minute = 1_000_001).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rate_limit_per_minute: must be between 0 (no limit) and 1000000"
        );

        // Update: absent keeps, 0 removes, too large is refused with the field named.
        let id = "tok_0123456789abcdef0123456789abcdef";
        let update = |rpm: Option<u32>| {
            parse_update(pb::UpdateTokenRequest {
                id: id.into(),
                rate_limit_per_minute: rpm,
                ..Default::default()
            })
        };
        assert_eq!(update(None).unwrap_err().fields(), ["update"]);
        assert_eq!(update(Some(0)).unwrap().1.rate_limit_per_minute, Some(0));
        assert_eq!(
            update(Some(120)).unwrap().1.rate_limit_per_minute,
            Some(120)
        );
        let e = update(Some(2_000_000)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rate_limit_per_minute: must be between 0 (no limit) and 1000000"
        );
    }
}
