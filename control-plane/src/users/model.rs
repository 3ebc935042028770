//! User domain types and validation.

use crate::ids::{TeamId, UserId};
use crate::policy::Role;
use crate::time::{Millis, to_timestamp, to_timestamp_opt};
use keygate_contracts::{FieldError, FieldErrors, names};
use keygate_proto::v1 as pb;
use serde::Serialize;

/// A person's account (never its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    pub system_admin: bool,
    pub disabled: bool,
    pub last_sign_in_at: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A user with the team roles the caller may see.
pub fn to_pb(u: User, roles: Vec<(TeamId, Role)>) -> pb::User {
    pb::User {
        id: u.id.0,
        email: u.email,
        display_name: u.display_name,
        system_admin: u.system_admin,
        disabled: u.disabled,
        last_sign_in_at: to_timestamp_opt(u.last_sign_in_at),
        created_at: Some(to_timestamp(u.created_at)),
        updated_at: Some(to_timestamp(u.updated_at)),
        roles: roles_to_pb(roles),
    }
}

pub fn roles_to_pb(roles: Vec<(TeamId, Role)>) -> Vec<pb::TeamRole> {
    roles
        .into_iter()
        .map(|(t, r)| pb::TeamRole {
            team_id: t.0,
            role: r.to_pb() as i32,
        })
        .collect()
}

/// A user to insert.
#[derive(Clone)]
pub struct NewUser {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
    pub system_admin: bool,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("system_admin", &self.system_admin)
            .finish_non_exhaustive()
    }
}

/// Normalises and checks an email address (lowercased; a pragmatic shape check: one `@`,
/// non-empty local part, a dotted domain, no spaces, at most 254 characters).
pub fn validate_email(field: &str, v: &str) -> Result<String, FieldError> {
    let e = v.trim().to_lowercase();
    let ok = e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && match e.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
    if ok {
        Ok(e)
    } else {
        Err(FieldError::new(
            field,
            "must be an email address like name@example.com",
        ))
    }
}

pub fn validate_display_name(field: &str, v: &str) -> Result<String, FieldError> {
    names::validate_text(field, v, 100, true, false)?;
    Ok(v.trim().to_owned())
}

/// Changes to a user.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub display_name: Option<String>,
    pub system_admin: Option<bool>,
}

/// Validates UpdateUser input, reporting every broken rule.
pub fn parse_update(r: &pb::UpdateUserRequest) -> Result<(UserId, UserPatch), FieldErrors> {
    let mut v = FieldErrors::new();
    let id = v.check(parse_user_id("id", &r.id));
    let display_name = r
        .display_name
        .as_deref()
        .and_then(|n| v.check(validate_display_name("display_name", n)));
    if v.is_empty() && r.display_name.is_none() && r.system_admin.is_none() {
        v.push(FieldError::new(
            "update",
            "nothing to change: set display_name or system_admin",
        ));
    }
    match id {
        Some(id) if v.is_empty() => Ok((
            id,
            UserPatch {
                display_name,
                system_admin: r.system_admin,
            },
        )),
        _ => Err(v),
    }
}

/// Filters and page position for ListUsers (ordered by email).
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub query: Option<String>,
    pub team_id: Option<TeamId>,
    /// Only members of these teams (`None`: everyone).
    pub visible_teams: Option<Vec<TeamId>>,
    pub limit: u32,
    /// `(email, id)` of the last row of the previous page.
    pub after: Option<(String, UserId)>,
}

pub const PAGE_KIND: &str = "users";

pub fn parse_user_id(field: &str, v: &str) -> Result<UserId, FieldError> {
    if v.starts_with("usr_") && v.len() == 36 && v[4..].bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(UserId(v.to_owned()))
    } else {
        Err(FieldError::new(
            field,
            "must be a user id (usr_ followed by 32 hex digits)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            validate_email("email", " Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@x.com",
            "a b@x.com",
            "a@x",
            "a@@x.com",
            "a@.com",
        ] {
            assert!(validate_email("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn update_reports_every_field() {
        let e = parse_update(&pb::UpdateUserRequest {
            id: "nope".into(),
            display_name: Some(" ".into()),
            system_admin: None,
        })
        .unwrap_err();
        assert_eq!(e.fields(), ["id", "display_name"]);
        let e = parse_update(&pb::UpdateUserRequest {
            id: "usr_0123456789abcdef0123456789abcdef".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.fields(), ["update"]);
    }
}
