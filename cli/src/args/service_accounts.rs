//! Grammar of `keygate service-account ...` and its management keys.

use clap::{Args, Subcommand};

use super::{CreateExpiry, RoleArg, YesArg, parse_grace};

#[derive(Debug, Subcommand)]
pub enum ServiceAccountCommand {
    /// Create a service account owned by a team, with a role in it.
    Create(ServiceAccountCreateArgs),
    /// List service accounts of the teams you may see.
    List(ServiceAccountListArgs),
    /// Show one service account.
    Get(ServiceAccountIdArg),
    /// Delete a service account and revoke its keys.
    Delete(ServiceAccountDeleteArgs),
    /// Issue, list, revoke and rotate a service account's management keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Args)]
pub struct ServiceAccountIdArg {
    /// Service account id (`sa_...`).
    pub id: String,
}

#[derive(Debug, Args)]
pub struct ServiceAccountCreateArgs {
    /// Owning team's id.
    #[arg(long, value_name = "TEAM_ID")]
    pub team: String,
    /// Display name, 1-100 characters.
    #[arg(long)]
    pub name: String,
    /// Role in the owning team.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// Free text.
    #[arg(long)]
    pub description: Option<String>,
    /// Extra capability (system admins only): `sync` for kv-sync, `gateway` for gateways.
    #[arg(long, value_enum)]
    pub capability: Option<CapabilityArg>,
}

/// A service account capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CapabilityArg {
    Sync,
    Gateway,
}

#[derive(Debug, Args)]
pub struct ServiceAccountListArgs {
    /// Only this team's service accounts.
    #[arg(long, value_name = "TEAM_ID")]
    pub team: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServiceAccountDeleteArgs {
    /// Service account id (`sa_...`).
    pub id: String,
    #[command(flatten)]
    pub yes: YesArg,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Issue a management key (`kgm_...`); its plaintext is printed once.
    Create(KeyCreateArgs),
    /// List a service account's keys (never their plaintext).
    List(ServiceAccountIdArg),
    /// Revoke a key: the control plane refuses it from then on.
    Revoke(KeyIdArg),
    /// Issue a replacement key; the old one works for a grace period.
    Rotate(KeyRotateArgs),
}

#[derive(Debug, Args)]
pub struct KeyIdArg {
    /// Management key id (`mk_...`).
    pub id: String,
}

#[derive(Debug, Args)]
pub struct KeyCreateArgs {
    /// Service account id (`sa_...`).
    pub service_account_id: String,
    /// Display name of the key.
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub expiry: CreateExpiry,
    /// Print only the plaintext (for `KEY=$(keygate service-account key create ... --quiet)`).
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct KeyRotateArgs {
    /// Management key id (`mk_...`).
    pub id: String,
    /// How long the old key keeps working: seconds, or a duration such as 30m, 1h, 7d (at
    /// most 30 days, never past its expiry). 0, the default, revokes it now.
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = parse_grace)]
    pub grace: u32,
    /// Print only the new plaintext.
    #[arg(long, short)]
    pub quiet: bool,
}
