//! Grammar of `keygate invite ...`.

use clap::{Args, Subcommand};

use super::{CodeSource, PasswordArgs, TeamRoleArg, parse_team_role};

#[derive(Debug, Subcommand)]
pub enum InviteCommand {
    /// Invite someone by email; the single-use code is printed once.
    Create(InviteCreateArgs),
    /// List pending invitations into teams you administer or manage.
    List(InviteListArgs),
    /// Revoke an invitation so that its code no longer works.
    Revoke(InviteIdArg),
    /// Create your account from an invitation code, and sign in.
    Accept(InviteAcceptArgs),
}

#[derive(Debug, Args)]
pub struct InviteCreateArgs {
    /// The invitee's email.
    #[arg(long)]
    pub email: String,
    /// A role to grant as TEAM:ROLE, e.g. core:developer (repeat for several teams).
    #[arg(
        long = "role",
        value_name = "TEAM:ROLE",
        required = true,
        value_parser = parse_team_role
    )]
    pub roles: Vec<TeamRoleArg>,
    /// Hours until the code expires (1-720; the server's default is 168, 7 days).
    #[arg(long, value_name = "HOURS", value_parser = clap::value_parser!(u32).range(1..=720))]
    pub expires_in_hours: Option<u32>,
    /// Print only the code (for `CODE=$(keygate invite create ... --quiet)`).
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct InviteListArgs {
    /// Only invitations into this team.
    #[arg(long, value_name = "TEAM_ID")]
    pub team: Option<String>,
}

#[derive(Debug, Args)]
pub struct InviteIdArg {
    /// Invitation id (`inv_...`).
    pub id: String,
}

#[derive(Debug, Args)]
pub struct InviteAcceptArgs {
    #[command(flatten)]
    pub code: CodeSource,
    /// Your display name.
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub password: PasswordArgs,
}
