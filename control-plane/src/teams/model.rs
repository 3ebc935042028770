//! Team domain types and input validation (wire -> domain).

use crate::ids::{RouteId, TeamId, TokenId};
use crate::pagination;
use crate::policy::{self, Action, Caller};
use crate::time::{Millis, to_timestamp};
use keygate_contracts::{FieldError, FieldErrors, names};
use keygate_proto::v1 as pb;
use serde::Serialize;

/// A team with its counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Team {
    pub id: TeamId,
    pub name: String,
    pub description: String,
    pub color: String,
    pub icon: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub created_by: String,
    #[serde(skip)]
    pub member_count: u32,
    #[serde(skip)]
    pub token_count: u32,
    #[serde(skip)]
    pub route_count: u32,
}

impl From<Team> for pb::Team {
    fn from(t: Team) -> Self {
        Self {
            id: t.id.0,
            name: t.name,
            description: t.description,
            color: t.color,
            icon: t.icon,
            member_count: t.member_count,
            token_count: t.token_count,
            route_count: t.route_count,
            created_at: Some(to_timestamp(t.created_at)),
            updated_at: Some(to_timestamp(t.updated_at)),
            created_by: t.created_by,
            // Only a caller-aware conversion (`to_pb_for`) can answer it.
            caller_can_change: false,
        }
    }
}

impl Team {
    /// The wire form with `caller_can_change` (UpdateTeam) answered by the policy.
    pub fn to_pb_for(self, caller: &Caller) -> pb::Team {
        let can = policy::check(caller, &Action::UpdateTeam(&self.id)).is_ok();
        pb::Team {
            caller_can_change: can,
            ..self.into()
        }
    }
}

fn validate_color(v: &str) -> Result<(), FieldError> {
    let ok = v.is_empty()
        || (v.len() == 7 && v.starts_with('#') && v[1..].bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new("color", "must be empty or \"#rrggbb\""))
    }
}

fn validate_icon(v: &str) -> Result<(), FieldError> {
    names::validate_text("icon", v, 8, false, false)
}

/// Validated CreateTeam input.
#[derive(Debug, Clone)]
pub struct NewTeam {
    pub id: TeamId,
    pub name: String,
    pub description: String,
    pub color: String,
    pub icon: String,
}

/// Every rule a CreateTeam request breaks is reported, not only the first.
impl TryFrom<pb::CreateTeamRequest> for NewTeam {
    type Error = FieldErrors;

    fn try_from(r: pb::CreateTeamRequest) -> Result<Self, FieldErrors> {
        let mut v = FieldErrors::new();
        v.check(names::validate_team_id("id", &r.id));
        v.check(names::validate_text("name", &r.name, 100, true, false));
        v.check(names::validate_text(
            "description",
            &r.description,
            1000,
            false,
            true,
        ));
        v.check(validate_color(&r.color));
        v.check(validate_icon(&r.icon));
        v.into_result()?;
        Ok(Self {
            id: TeamId(r.id),
            name: r.name.trim().to_owned(),
            description: r.description,
            color: r.color.to_ascii_lowercase(),
            icon: r.icon,
        })
    }
}

/// Validated UpdateTeam input.
#[derive(Debug, Clone, Default)]
pub struct TeamPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub color: Option<String>,
    pub icon: Option<String>,
}

/// Validates UpdateTeam input, reporting every broken rule.
pub fn parse_update(r: pb::UpdateTeamRequest) -> Result<(TeamId, TeamPatch), FieldErrors> {
    {
        let mut v = FieldErrors::new();
        v.check(names::validate_team_id("id", &r.id));
        if let Some(n) = &r.name {
            v.check(names::validate_text("name", n, 100, true, false));
        }
        if let Some(d) = &r.description {
            v.check(names::validate_text("description", d, 1000, false, true));
        }
        if let Some(c) = &r.color {
            v.check(validate_color(c));
        }
        if let Some(i) = &r.icon {
            v.check(validate_icon(i));
        }
        v.into_result()?;
        let patch = TeamPatch {
            name: r.name.map(|n| n.trim().to_owned()),
            description: r.description,
            color: r.color.map(|c| c.to_ascii_lowercase()),
            icon: r.icon,
        };
        if patch.name.is_none()
            && patch.description.is_none()
            && patch.color.is_none()
            && patch.icon.is_none()
        {
            return Err(
                FieldError::new("update", "nothing to change: set at least one field").into(),
            );
        }
        Ok((TeamId(r.id), patch))
    }
}

/// Filters and page position for ListTeams (ordered by id).
#[derive(Debug, Clone, Default)]
pub struct TeamFilter {
    pub query: Option<String>,
    pub limit: u32,
    pub after: Option<TeamId>,
}

pub const PAGE_KIND: &str = "teams";

impl TryFrom<pb::ListTeamsRequest> for TeamFilter {
    type Error = FieldError;

    fn try_from(r: pb::ListTeamsRequest) -> Result<Self, FieldError> {
        names::validate_text("query", &r.query, 100, false, false)?;
        Ok(Self {
            query: (!r.query.trim().is_empty()).then(|| r.query.trim().to_owned()),
            limit: pagination::page_size(r.page_size)?,
            after: pagination::decode(PAGE_KIND, &r.page_token, 1)?.map(|p| TeamId(p[0].clone())),
        })
    }
}

/// What DeleteTeam did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TeamDeletion {
    pub revoked_token_ids: Vec<TokenId>,
    pub deleted_route_ids: Vec<RouteId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_validation() {
        let ok = pb::CreateTeamRequest {
            id: "payments".into(),
            name: "Payments".into(),
            color: "#A0B1C2".into(),
            icon: "💳".into(),
            ..Default::default()
        };
        let t = NewTeam::try_from(ok.clone()).unwrap();
        assert_eq!(t.color, "#a0b1c2");
        for (r, field) in [
            (
                pb::CreateTeamRequest {
                    id: "P".into(),
                    ..ok.clone()
                },
                "id",
            ),
            (
                pb::CreateTeamRequest {
                    name: " ".into(),
                    ..ok.clone()
                },
                "name",
            ),
            (
                pb::CreateTeamRequest {
                    color: "red".into(),
                    ..ok.clone()
                },
                "color",
            ),
            (
                pb::CreateTeamRequest {
                    icon: "x".repeat(9),
                    ..ok.clone()
                },
                "icon",
            ),
        ] {
            assert_eq!(NewTeam::try_from(r).unwrap_err().fields(), [field]);
        }
        let e = NewTeam::try_from(pb::CreateTeamRequest {
            id: "P".into(),
            color: "red".into(),
            ..ok.clone()
        })
        .unwrap_err();
        assert_eq!(e.fields(), ["id", "color"]);
    }
}
