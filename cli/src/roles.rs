//! Team roles in requests and output: `--role admin` to `Role::Admin`, `ROLE_ADMIN` to
//! `admin`, and role lists as `core:admin,ops:viewer`, tables and JSON.
//!
//! Owns: the role conversions shared by users, members, invitations, service accounts and
//! `whoami`. Must not: decide what a role may do (the server does).

use keygate_proto::v1::{Role, TeamRole};
use serde_json::{Value, json};

use crate::args::{RoleArg, TeamRoleArg};
use crate::output::{self, NONE};

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Admin => Role::Admin,
            RoleArg::Manager => Role::Manager,
            RoleArg::Developer => Role::Developer,
            RoleArg::Viewer => Role::Viewer,
        }
    }
}

impl From<&TeamRoleArg> for TeamRole {
    fn from(arg: &TeamRoleArg) -> Self {
        TeamRole {
            team_id: arg.team_id.clone(),
            role: Role::from(arg.role) as i32,
        }
    }
}

/// The wire value of a `--role` argument.
pub fn wire(role: RoleArg) -> i32 {
    Role::from(role) as i32
}

/// A role's short lowercase name (`admin`), `unknown(N)` for a value this build does not
/// know.
pub fn name(role: i32) -> String {
    Role::try_from(role).map_or_else(
        |_| format!("unknown({role})"),
        |r| output::enum_name(r.as_str_name(), "ROLE_"),
    )
}

/// `core:admin,ops:viewer`, or `-` when there are none.
pub fn label(roles: &[TeamRole]) -> String {
    if roles.is_empty() {
        return NONE.to_owned();
    }
    roles
        .iter()
        .map(|r| format!("{}:{}", r.team_id, name(r.role)))
        .collect::<Vec<_>>()
        .join(",")
}

/// A team role as JSON: `{"team_id": "core", "role": "admin"}`.
pub fn team_role_json(r: &TeamRole) -> Value {
    json!({ "team_id": r.team_id, "role": name(r.role) })
}

pub fn team_roles_json(roles: &[TeamRole]) -> Value {
    Value::Array(roles.iter().map(team_role_json).collect())
}

/// A TEAM / ROLE table.
pub fn table(roles: &[TeamRole]) -> String {
    output::table(
        &["TEAM", "ROLE"],
        roles.iter().map(|r| vec![r.team_id.clone(), name(r.role)]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(team: &str, role: Role) -> TeamRole {
        TeamRole {
            team_id: team.into(),
            role: role as i32,
        }
    }

    #[test]
    fn names_labels_and_json() {
        assert_eq!(name(Role::Admin as i32), "admin");
        assert_eq!(name(Role::Viewer as i32), "viewer");
        assert_eq!(name(Role::Unspecified as i32), "unspecified");
        assert_eq!(name(42), "unknown(42)");
        let roles = [role("core", Role::Admin), role("ops", Role::Developer)];
        assert_eq!(label(&roles), "core:admin,ops:developer");
        assert_eq!(label(&[]), "-");
        assert_eq!(
            team_roles_json(&roles),
            json!([
                {"team_id": "core", "role": "admin"},
                {"team_id": "ops", "role": "developer"},
            ])
        );
        assert_eq!(table(&roles), "TEAM  ROLE\ncore  admin\nops   developer\n");
    }

    #[test]
    fn arguments_to_wire() {
        assert_eq!(wire(RoleArg::Manager), Role::Manager as i32);
        let arg = TeamRoleArg {
            team_id: "core".into(),
            role: RoleArg::Viewer,
        };
        assert_eq!(TeamRole::from(&arg), role("core", Role::Viewer));
    }
}
