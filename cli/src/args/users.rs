//! Grammar of `keygate user ...`.

use clap::{ArgAction, ArgGroup, Args, Subcommand};

use super::{PageArgs, YesArg};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List users (needs ADMIN or MANAGER in some team; system admins see everyone).
    List(UserListArgs),
    /// Show one user and their team roles.
    Get(UserIdArg),
    /// Change a user's display name or system-admin flag.
    Update(UserUpdateArgs),
    /// Disable an account and end its sessions at once (system admins only).
    Disable(UserDisableArgs),
    /// Enable a disabled account again (system admins only).
    Enable(UserIdArg),
}

#[derive(Debug, Args)]
pub struct UserIdArg {
    /// User id (`usr_...`).
    pub id: String,
}

#[derive(Debug, Args)]
pub struct UserListArgs {
    /// Case-insensitive substring of email or display name.
    #[arg(long)]
    pub query: Option<String>,
    /// Only members of this team.
    #[arg(long, value_name = "TEAM_ID")]
    pub team: Option<String>,
    #[command(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("user_changes")
        .required(true)
        .multiple(true)
        .args(["name", "system_admin"])
))]
pub struct UserUpdateArgs {
    /// User id (`usr_...`).
    pub id: String,
    /// New display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Grant (true) or take away (false) the system-admin flag.
    #[arg(long, value_name = "true|false", action = ArgAction::Set)]
    pub system_admin: Option<bool>,
}

#[derive(Debug, Args)]
pub struct UserDisableArgs {
    /// User id (`usr_...`).
    pub id: String,
    #[command(flatten)]
    pub yes: YesArg,
}
