//! Grammar of `keygate usage ...`: raw usage events, gateway totals, and the analytics
//! views over the rollups (summary, top, one token, one route, live tail, export).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use prost_types::Timestamp;

use super::{ExportFormatArg, parse_rfc3339};

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// List usage events reported by gateways, newest first (your teams' events; system
    /// admins see all).
    List(UsageListArgs),
    /// Every gateway that has reported, with its event and drop totals. System admins.
    Gateways,
    /// Totals (calls, errors, success rate, latency percentiles, bytes) and a series over a
    /// range.
    Summary(UsageSummaryArgs),
    /// The top tokens, routes, teams, error codes or client IPs by calls or errors.
    Top(UsageTopArgs),
    /// One token: totals, percentiles, first/last use, routes used, status mix.
    Token(UsageTokenArgs),
    /// One route: totals, percentiles, first/last use, tokens used, status mix.
    Route(UsageRouteArgs),
    /// Print new usage events as gateways report them, until Ctrl-C.
    Tail(UsageTailArgs),
    /// Stream rollups or raw events as CSV or NDJSON to stdout or a file.
    Export(UsageExportArgs),
}

/// The time range of an analytics query: `--since` (a duration before now) or
/// `--from`/`--to`. Default: the last 24 hours.
#[derive(Debug, Default, Args)]
pub struct UsageRangeArgs {
    /// Range start as a duration before now (24h, 7d, 90m) or an RFC 3339 time; the range
    /// ends now [default: 24h].
    #[arg(long, value_name = "DURATION", value_parser = parse_since, conflicts_with_all = ["from", "to"])]
    pub since: Option<Timestamp>,
    /// Range start, RFC 3339 (inclusive; default: 24 hours before --to).
    #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
    pub from: Option<Timestamp>,
    /// Range end, RFC 3339 (exclusive; default: now).
    #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
    pub to: Option<Timestamp>,
}

impl UsageRangeArgs {
    /// `(start, end)` for the request; `None` leaves the server's default.
    pub fn bounds(&self) -> (Option<Timestamp>, Option<Timestamp>) {
        match self.since {
            Some(since) => (Some(since), None),
            None => (self.from, self.to),
        }
    }
}

/// What an analytics query covers (`UsageQuery`).
#[derive(Debug, Default, Args)]
pub struct UsageQueryArgs {
    /// Only this team's calls.
    #[arg(long, value_name = "TEAM_ID")]
    pub team: Option<String>,
    /// Only this token's calls (`tok_...`).
    #[arg(long, value_name = "TOKEN_ID")]
    pub token: Option<String>,
    /// Only this route's calls (route name).
    #[arg(long, value_name = "ROUTE")]
    pub route: Option<String>,
    /// Only calls through this gateway (combines with --status and the range only).
    #[arg(long, value_name = "NAME")]
    pub gateway: Option<String>,
    /// Only calls answered with this class of status (`errors`: 400 and above).
    #[arg(long, value_name = "CLASS", value_enum)]
    pub status: Option<StatusClassArg>,
    #[command(flatten)]
    pub range: UsageRangeArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusClassArg {
    #[value(name = "1xx")]
    Informational,
    #[value(name = "2xx")]
    Success,
    #[value(name = "3xx")]
    Redirect,
    #[value(name = "4xx")]
    ClientError,
    #[value(name = "5xx")]
    ServerError,
    /// Status 400 and above.
    Errors,
}

#[derive(Debug, Args)]
pub struct UsageSummaryArgs {
    #[command(flatten)]
    pub query: UsageQueryArgs,
    /// Time per series point, a whole number of minutes (1m, 15m, 1h, 1d) [default: the
    /// server picks about 60 points].
    #[arg(long, value_name = "DURATION", value_parser = parse_step)]
    pub step: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TopByArg {
    Token,
    Route,
    Team,
    /// The gateway's error code (`invalid_key`, `rate_limited`, ...).
    Error,
    /// Client IP address (from sampled raw events, not from every request).
    Ip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TopOrderArg {
    Calls,
    Errors,
}

#[derive(Debug, Args)]
pub struct UsageTopArgs {
    /// What to rank.
    #[arg(long, value_enum, default_value_t = TopByArg::Token)]
    pub by: TopByArg,
    /// Rank by calls or by errors.
    #[arg(long, value_enum, default_value_t = TopOrderArg::Calls)]
    pub order: TopOrderArg,
    /// How many entries (1-100).
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub limit: u32,
    #[command(flatten)]
    pub query: UsageQueryArgs,
}

#[derive(Debug, Args)]
pub struct UsageTokenArgs {
    /// Token id (`tok_...`).
    pub id: String,
    #[command(flatten)]
    pub range: UsageRangeArgs,
    /// Time per series point, a whole number of minutes [default: the server picks].
    #[arg(long, value_name = "DURATION", value_parser = parse_step)]
    pub step: Option<u32>,
}

#[derive(Debug, Args)]
pub struct UsageRouteArgs {
    /// Route name.
    pub name: String,
    /// Only this team's calls (needed when your teams do not own the route).
    #[arg(long, value_name = "TEAM_ID")]
    pub team: Option<String>,
    #[command(flatten)]
    pub range: UsageRangeArgs,
    /// Time per series point, a whole number of minutes [default: the server picks].
    #[arg(long, value_name = "DURATION", value_parser = parse_step)]
    pub step: Option<u32>,
}

#[derive(Debug, Args)]
pub struct UsageTailArgs {
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportKindArg {
    /// Per-minute (or hour, day) counts with latency statistics.
    Rollups,
    /// Raw events (refusals, 5xx and sampled successes).
    Events,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UsageTierArg {
    Minute,
    Hour,
    Day,
}

#[derive(Debug, Args)]
pub struct UsageExportArgs {
    /// Rollups or raw events.
    #[arg(long, value_enum, default_value_t = ExportKindArg::Rollups)]
    pub kind: ExportKindArg,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ExportFormatArg::Ndjson)]
    pub format: ExportFormatArg,
    /// Rollups only: the tier to export [default: the coarsest covering the range].
    #[arg(long, value_enum)]
    pub tier: Option<UsageTierArg>,
    #[command(flatten)]
    pub query: UsageQueryArgs,
    /// Write to this file instead of stdout (replaced only when the export completes).
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,
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

/// `--step`: a duration of whole minutes (`1m`, `15m`, `1h`, `1d`, or seconds `3600`), as
/// seconds.
pub fn parse_step(raw: &str) -> Result<u32, String> {
    let seconds = super::parse_grace(raw)?;
    if seconds == 0 || seconds % 60 != 0 {
        return Err(format!(
            "`{raw}` is not a whole number of minutes such as 1m, 15m, 1h or 1d"
        ));
    }
    Ok(seconds)
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
