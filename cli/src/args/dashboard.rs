//! `keygate dashboard` flags.

use clap::Args;

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Only this team (default: every team you may read; system admins: everything).
    #[arg(long, value_name = "TEAM_ID")]
    pub team: Option<String>,
    /// "Expiring soon" window in days, 1-365 (server default 7).
    #[arg(long, value_name = "DAYS")]
    pub expiring_within_days: Option<u32>,
    /// "Unused" threshold in days, 1-365 (server default 30).
    #[arg(long, value_name = "DAYS")]
    pub unused_days: Option<u32>,
    /// Items per list (expiring, unused, never used, audit), 1-50 (server default 10).
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
}
