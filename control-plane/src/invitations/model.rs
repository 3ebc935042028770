//! Invitation domain types.

use crate::ids::{InvitationId, TeamId};
use crate::policy::Role;
use crate::time::{Millis, to_timestamp, to_timestamp_opt};
use crate::users::{roles_to_pb, validate_email};
use keygate_contracts::{FieldError, FieldErrors, names};
use keygate_proto::v1 as pb;
use serde::Serialize;

/// Default and longest lifetime of an invitation, in hours.
pub const DEFAULT_EXPIRY_HOURS: u32 = 168;
pub const MAX_EXPIRY_HOURS: u32 = 720;
/// Most team roles in one invitation.
pub const MAX_ROLES: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invitation {
    pub id: InvitationId,
    pub email: String,
    pub roles: Vec<(TeamId, Role)>,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub created_by: String,
    pub accepted_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
    /// The person becomes a system admin on accepting (only imports set it).
    pub system_admin: bool,
}

impl From<Invitation> for pb::Invitation {
    fn from(i: Invitation) -> Self {
        Self {
            id: i.id.0,
            email: i.email,
            roles: roles_to_pb(i.roles),
            created_at: Some(to_timestamp(i.created_at)),
            expires_at: Some(to_timestamp(i.expires_at)),
            created_by: i.created_by,
            accepted_at: to_timestamp_opt(i.accepted_at),
            revoked_at: to_timestamp_opt(i.revoked_at),
            system_admin: i.system_admin,
        }
    }
}

/// An invitation to insert (the code only as its hash).
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub id: InvitationId,
    pub email: String,
    pub roles: Vec<(TeamId, Role)>,
    pub code_hash: String,
    pub expires_at: Millis,
    /// Only `keygate import old-system` sets it (an old super-admin); CreateInvitation cannot.
    pub system_admin: bool,
}

/// Validated CreateInvitation input.
#[derive(Debug, Clone)]
pub struct CreateInvitationInput {
    /// Normalised (lowercase).
    pub email: String,
    pub roles: Vec<(TeamId, Role)>,
    /// Lifetime in hours.
    pub hours: u32,
}

/// Every rule a CreateInvitation request breaks is reported, not only the first.
impl TryFrom<&pb::CreateInvitationRequest> for CreateInvitationInput {
    type Error = FieldErrors;

    fn try_from(r: &pb::CreateInvitationRequest) -> Result<Self, FieldErrors> {
        let mut v = FieldErrors::new();
        let email = v.check(validate_email("email", &r.email));
        let roles = v.check(parse_roles(&r.roles));
        let hours = match r.expires_in_hours {
            0 => DEFAULT_EXPIRY_HOURS,
            h if h <= MAX_EXPIRY_HOURS => h,
            _ => {
                v.push(FieldError::new(
                    "expires_in_hours",
                    format!("must be between 1 and {MAX_EXPIRY_HOURS}"),
                ));
                0
            }
        };
        match (email, roles) {
            (Some(email), Some(roles)) if v.is_empty() => Ok(Self {
                email,
                roles,
                hours,
            }),
            _ => Err(v),
        }
    }
}

fn parse_roles(raw: &[pb::TeamRole]) -> Result<Vec<(TeamId, Role)>, FieldErrors> {
    if raw.is_empty() || raw.len() > MAX_ROLES {
        return Err(FieldError::new("roles", format!("must list 1-{MAX_ROLES} team roles")).into());
    }
    let mut v = FieldErrors::new();
    let mut out: Vec<(TeamId, Role)> = Vec::with_capacity(raw.len());
    for (i, tr) in raw.iter().enumerate() {
        let field = format!("roles[{i}].team_id");
        let team_ok = v
            .check(names::validate_team_id(&field, &tr.team_id))
            .is_some();
        let role = v.check(Role::from_pb(&format!("roles[{i}].role"), tr.role));
        if team_ok && out.iter().any(|(t, _)| t.0 == tr.team_id) {
            v.push(FieldError::new(field, "each team may appear once"));
            continue;
        }
        if let (true, Some(role)) = (team_ok, role) {
            out.push((TeamId(tr.team_id.clone()), role));
        }
    }
    v.into_result()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_reports_every_field() {
        let tr = |team: &str, role: pb::Role| pb::TeamRole {
            team_id: team.into(),
            role: role as i32,
        };
        let ok = pb::CreateInvitationRequest {
            email: "Ada@Example.com".into(),
            roles: vec![tr("alpha", pb::Role::Developer)],
            expires_in_hours: 0,
        };
        let i = CreateInvitationInput::try_from(&ok).unwrap();
        assert_eq!(
            (i.email.as_str(), i.hours),
            ("ada@example.com", DEFAULT_EXPIRY_HOURS)
        );
        let e = CreateInvitationInput::try_from(&pb::CreateInvitationRequest {
            email: "nope".into(),
            roles: vec![
                tr("alpha", pb::Role::Developer),
                tr("Bad", pb::Role::Unspecified),
                tr("alpha", pb::Role::Viewer),
            ],
            expires_in_hours: MAX_EXPIRY_HOURS + 1,
        })
        .unwrap_err();
        assert_eq!(
            e.fields(),
            [
                "email",
                "roles[1].team_id",
                "roles[1].role",
                "roles[2].team_id",
                "expires_in_hours"
            ]
        );
    }
}
