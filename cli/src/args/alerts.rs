//! Grammar of `keygate alert ...`: per-team alert rules with a webhook, and their deliveries.

use clap::{ArgGroup, Args, Subcommand, ValueEnum};

use super::{PageArgs, YesArg};

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// List alert rules, newest first (every rule of your teams without --team).
    List(AlertListArgs),
    /// Show one rule.
    Get {
        /// Rule id (`alr_...`).
        id: String,
    },
    /// Create a rule; prints its webhook signing secret once.
    Create(AlertCreateArgs),
    /// Change a rule's name, state, webhook or condition, or rotate its secret.
    Update(AlertUpdateArgs),
    /// Delete a rule with its firings, pending deliveries and delivery history.
    Delete {
        /// Rule id (`alr_...`).
        id: String,
        #[command(flatten)]
        yes: YesArg,
    },
    /// Delivery attempts, newest first.
    Deliveries(AlertDeliveriesArgs),
    /// Send one signed test payload to a rule's webhook now; exit 1 if it failed.
    Test {
        /// Rule id (`alr_...`).
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct AlertListArgs {
    /// Only this team's rules.
    #[arg(long, value_name = "TEAM_ID")]
    pub team: Option<String>,
    #[command(flatten)]
    pub page: PageArgs,
}

/// The condition kinds (`AlertCondition.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AlertKindArg {
    /// A live token expires within --days (once per token).
    TokenExpiring,
    /// A live token was last used more than --days ago (--include-never-used: or never,
    /// and created more than --days ago).
    TokenUnused,
    /// A route's error rate over --window is above --percent (with at least --min-calls).
    RouteErrorRate,
    /// A route's p99 latency over --window is above --p99 (with at least --min-calls).
    RouteLatency,
    /// A token's calls in the last hour are more than --factor times its hourly average of
    /// the previous 7 days (with at least --min-calls): a leak signal.
    TokenTrafficSpike,
    /// System admins: a kv-sync follower is more than --lag behind.
    SyncLag,
    /// System admins: a gateway has not reported for --silent-for.
    GatewaySilent,
    /// System admins: a gateway dropped usage data in the last hour.
    GatewayDropping,
}

/// `--when KIND` and the parameters of the kinds. Each parameter belongs to some kinds
/// only; giving one that the kind does not take is a usage error.
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Condition")]
pub struct AlertConditionArgs {
    /// What fires the alert.
    #[arg(long, value_enum, value_name = "KIND")]
    pub when: Option<AlertKindArg>,
    /// token-expiring, token-unused: days (1-365).
    #[arg(long, value_name = "N")]
    pub days: Option<u32>,
    /// token-unused: also tokens never used (created more than --days ago);
    /// `--include-never-used=false` turns it off.
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub include_never_used: Option<bool>,
    /// route-error-rate, route-latency: the route name ('' or left out: each route the team
    /// owns).
    #[arg(long, value_name = "ROUTE")]
    pub route: Option<String>,
    /// route-error-rate: error percentage (0.1-100) above which it fires.
    #[arg(long, value_name = "PERCENT")]
    pub percent: Option<f64>,
    /// route-latency: p99 latency above which it fires (250ms, 1s).
    #[arg(long, value_name = "DURATION", value_parser = parse_millis)]
    pub p99: Option<u32>,
    /// route-error-rate, route-latency: the window the rate is measured over, whole minutes
    /// (5m, 1h; at most 24h).
    #[arg(long, value_name = "DURATION", value_parser = parse_minutes)]
    pub window: Option<u32>,
    /// route-error-rate, route-latency, token-traffic-spike: fewer calls than this in the
    /// window never fire (0: the server's default).
    #[arg(long, value_name = "N")]
    pub min_calls: Option<u32>,
    /// token-traffic-spike: how many times the usual hourly calls (1.5-1000).
    #[arg(long, value_name = "FACTOR")]
    pub factor: Option<f64>,
    /// sync-lag: how far behind, whole seconds (30s, 5m).
    #[arg(long, value_name = "DURATION", value_parser = super::parse_grace)]
    pub lag: Option<u32>,
    /// gateway-silent: how long without a report, whole minutes (10m, 1h).
    #[arg(long, value_name = "DURATION", value_parser = parse_minutes)]
    pub silent_for: Option<u32>,
}

impl AlertConditionArgs {
    /// The parameter flags given, as `--name`.
    pub fn given(&self) -> Vec<&'static str> {
        [
            ("--days", self.days.is_some()),
            ("--include-never-used", self.include_never_used.is_some()),
            ("--route", self.route.is_some()),
            ("--percent", self.percent.is_some()),
            ("--p99", self.p99.is_some()),
            ("--window", self.window.is_some()),
            ("--min-calls", self.min_calls.is_some()),
            ("--factor", self.factor.is_some()),
            ("--lag", self.lag.is_some()),
            ("--silent-for", self.silent_for.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }
}

#[derive(Debug, Args)]
pub struct AlertCreateArgs {
    /// The team that owns the rule.
    #[arg(long, value_name = "TEAM_ID")]
    pub team: String,
    /// 1-100 characters.
    #[arg(long)]
    pub name: String,
    /// Where to POST the signed payload (http or https).
    #[arg(long, value_name = "URL")]
    pub webhook: String,
    /// Create the rule disabled.
    #[arg(long)]
    pub disabled: bool,
    #[command(flatten)]
    pub condition: AlertConditionArgs,
    /// Print only the webhook secret (for `SECRET=$(keygate alert create ... --quiet)`).
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("alert_changes")
        .required(true)
        .multiple(true)
        .args([
            "name", "enabled", "webhook", "rotate_secret", "when", "days", "include_never_used",
            "route", "percent", "p99", "window", "min_calls", "factor", "lag", "silent_for",
        ])
))]
pub struct AlertUpdateArgs {
    /// Rule id (`alr_...`).
    pub id: String,
    #[arg(long)]
    pub name: Option<String>,
    /// Turn the rule on or off.
    #[arg(long, value_name = "BOOL")]
    pub enabled: Option<bool>,
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// Issue a new signing secret (printed once); the old one stops signing at once.
    #[arg(long)]
    pub rotate_secret: bool,
    /// The condition: --when replaces it; parameters without --when change the current
    /// condition's.
    #[command(flatten)]
    pub condition: AlertConditionArgs,
    /// With --rotate-secret: print only the new secret.
    #[arg(long, short, requires = "rotate_secret")]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeliveryStatusArg {
    Succeeded,
    Retrying,
    Failed,
}

#[derive(Debug, Args)]
pub struct AlertDeliveriesArgs {
    /// Only attempts of this rule.
    #[arg(long, value_name = "RULE_ID")]
    pub rule: Option<String>,
    /// Only attempts of this team's rules.
    #[arg(long, value_name = "TEAM_ID")]
    pub team: Option<String>,
    /// Only attempts with this outcome.
    #[arg(long, value_enum)]
    pub status: Option<DeliveryStatusArg>,
    #[command(flatten)]
    pub page: PageArgs,
}

/// A duration of whole minutes (`5m`, `1h`, or seconds `300`), as minutes.
pub fn parse_minutes(raw: &str) -> Result<u32, String> {
    let seconds = super::parse_grace(raw)?;
    if seconds == 0 || seconds % 60 != 0 {
        return Err(format!(
            "`{raw}` is not a whole number of minutes such as 5m or 1h"
        ));
    }
    Ok(seconds / 60)
}

/// A latency such as `250ms` or `1s` (a bare number is milliseconds), as milliseconds.
pub fn parse_millis(raw: &str) -> Result<u32, String> {
    let raw = raw.trim();
    let duration = if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        let ms = raw
            .parse::<u64>()
            .map_err(|_| format!("`{raw}` is too large"))?;
        std::time::Duration::from_millis(ms)
    } else {
        humantime::parse_duration(raw)
            .map_err(|e| format!("`{raw}` is not a duration such as 250ms or 1s: {e}"))?
    };
    if duration.subsec_nanos() % 1_000_000 != 0 {
        return Err(format!("`{raw}` is not a whole number of milliseconds"));
    }
    u32::try_from(duration.as_millis()).map_err(|_| format!("`{raw}` is too large"))
}
