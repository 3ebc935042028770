//! Grammar of `keygate member ...`, and the team roles used by members, invitations and
//! service accounts.

use clap::{Args, Subcommand, ValueEnum};

use super::YesArg;

/// A per-team role, highest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Everything in the team, including members and roles.
    Admin,
    /// Tokens, routes, and DEVELOPER or VIEWER members.
    Manager,
    /// Tokens and routes.
    Developer,
    /// Read only.
    Viewer,
}

/// `TEAM:ROLE`, as `invite create --role core:developer` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamRoleArg {
    pub team_id: String,
    pub role: RoleArg,
}

/// Parses `TEAM:ROLE`, e.g. `core:admin`.
pub fn parse_team_role(raw: &str) -> Result<TeamRoleArg, String> {
    let expected = "expected TEAM:ROLE, e.g. core:developer, with ROLE one of admin, manager, \
                    developer, viewer";
    let Some((team, role)) = raw.trim().split_once(':') else {
        return Err(format!("`{raw}`: {expected}"));
    };
    let team = team.trim();
    if team.is_empty() {
        return Err(format!("`{raw}`: the team is empty; {expected}"));
    }
    let role = RoleArg::from_str(role.trim(), true)
        .map_err(|_| format!("`{raw}`: unknown role `{}`; {expected}", role.trim()))?;
    Ok(TeamRoleArg {
        team_id: team.to_owned(),
        role,
    })
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// List a team's members and their roles.
    List(MemberListArgs),
    /// Add a user to a team.
    Add(MemberAddArgs),
    /// Change a member's role.
    SetRole(MemberSetRoleArgs),
    /// Remove a member from a team (you may remove yourself, unless you are its last admin).
    Remove(MemberRemoveArgs),
}

#[derive(Debug, Args)]
pub struct MemberListArgs {
    /// Team id.
    pub team: String,
}

#[derive(Debug, Args)]
pub struct MemberAddArgs {
    /// Team id.
    pub team: String,
    /// The user's id (`usr_...`) or email.
    #[arg(value_name = "USER_ID_OR_EMAIL")]
    pub user: String,
    /// Role in the team.
    #[arg(long, value_enum)]
    pub role: RoleArg,
}

#[derive(Debug, Args)]
pub struct MemberSetRoleArgs {
    /// Team id.
    pub team: String,
    /// User id (`usr_...`).
    pub user_id: String,
    /// New role in the team.
    #[arg(long, value_enum)]
    pub role: RoleArg,
}

#[derive(Debug, Args)]
pub struct MemberRemoveArgs {
    /// Team id.
    pub team: String,
    /// User id (`usr_...`).
    pub user_id: String,
    #[command(flatten)]
    pub yes: YesArg,
}
