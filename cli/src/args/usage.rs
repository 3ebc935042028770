//! Grammar of `keygate usage ...`: gateway usage events and gateway totals.

use clap::{Args, Subcommand};
use prost_types::Timestamp;

use super::parse_rfc3339;

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// List usage events reported by gateways, newest first (your teams' events; system
    /// admins see all).
    List(UsageListArgs),
    /// Every gateway that has reported, with its event and drop totals. System admins.
    Gateways,
}

#[derive(Debug, Args)]
pub struct UsageListArgs {
    /// Only events of this team.
    #[arg(long, value_name = "TEAM_ID")]
    pub team: Option<String>,
    /// Only events of this token id (`tok_...`).
    #[arg(long, value_name = "TOKEN_ID")]
    pub token: Option<String>,
    /// Only events of this route name.
    #[arg(long, value_name = "ROUTE")]
    pub route: Option<String>,
    /// Only events answered with this HTTP status.
    #[arg(long, value_name = "STATUS", value_parser = clap::value_parser!(u32).range(100..=599))]
    pub status: Option<u32>,
    /// Only events at or after this time: RFC 3339 (2025-01-31T00:00:00Z) or a duration ago
    /// (15m, 1h, 7d).
    #[arg(long, value_name = "TIME", value_parser = parse_since)]
    pub since: Option<Timestamp>,
    /// Only events before this time (same forms as --since).
    #[arg(long, value_name = "TIME", value_parser = parse_since)]
    pub until: Option<Timestamp>,
    /// Show at most this many events (fetched in pages of up to 1,000).
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    /// Continue from a previous listing's next-page token.
    #[arg(long, value_name = "TOKEN")]
    pub page_token: Option<String>,
}

/// `--since` / `--until`: an RFC 3339 time, or a duration before now (`15m`, `1h`, `7d`).
pub fn parse_since(raw: &str) -> Result<Timestamp, String> {
    parse_since_at(raw, std::time::SystemTime::now())
}

/// [`parse_since`] relative to `now`.
pub fn parse_since_at(raw: &str, now: std::time::SystemTime) -> Result<Timestamp, String> {
    let trimmed = raw.trim();
    if trimmed.contains('T') || trimmed.contains(':') {
        return parse_rfc3339(trimmed);
    }
    let ago = humantime::parse_duration(trimmed).map_err(|_| {
        format!("`{raw}` is neither an RFC 3339 time (2025-01-31T12:00:00Z) nor a duration such as 15m, 1h or 7d")
    })?;
    let at = now
        .checked_sub(ago)
        .ok_or_else(|| format!("`{raw}` reaches before the Unix epoch"))?;
    Ok(Timestamp::from(at))
}
