//! The command-line grammar of `keygate`: every subcommand, flag and environment variable.
//!
//! Owns: the clap definitions and the small value parsers they use (`--grace` durations,
//! RFC 3339 times, the redacted management key). Must not: touch the network, read files or
//! print; the resource modules turn these arguments into requests.

use std::convert::Infallible;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use prost_types::Timestamp;

use crate::client::Credential;

mod alerts;
mod auth;
mod dashboard;
mod invitations;
mod members;
mod service_accounts;
mod usage;
mod users;

pub use alerts::*;
pub use auth::*;
pub use dashboard::*;
pub use invitations::*;
pub use members::*;
pub use service_accounts::*;
pub use usage::*;
pub use users::*;

/// Where the control plane listens unless `--addr` / `KEYGATE_ADDR` says otherwise.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:7000";

/// The exit-code table, as a literal so that `concat!` can put it into the long help.
macro_rules! exit_codes_text {
    () => {
        "Exit codes:
  0  success
  1  Internal, Unknown, Cancelled, Aborted, Unimplemented, DataLoss,
     a broken audit chain, or any other local failure
  2  usage error: bad flags, no credentials, a refused confirmation
  3  Unauthenticated, PermissionDenied
  4  NotFound
  5  InvalidArgument, AlreadyExists, FailedPrecondition, OutOfRange;
     `import old-system`: a problem left unresolved (nothing written)
  6  Unavailable, DeadlineExceeded, or the control plane cannot be reached
  7  ResourceExhausted: rate limited (e.g. too many sign-in attempts); retry later"
    };
}

/// Exit-code table shown by `keygate --help`. `client::exit_code` is the one implementation;
/// a unit test there keeps the two in step.
pub const EXIT_CODES_HELP: &str = exit_codes_text!();

const LONG_ABOUT: &str = concat!(
    "Manage Keygate API tokens, routes, teams, users, invitations, service accounts and the \
audit log through the control plane's gRPC API.

Every call authenticates with a bearer credential: a management key from --key, --key-file, \
KEYGATE_KEY or KEYGATE_KEY_FILE (in that order), else the session stored by `keygate login` \
in $KEYGATE_CONFIG_DIR, $XDG_CONFIG_HOME/keygate or ~/.config/keygate (credentials.json), if \
it was signed in at the same --addr. Credentials and passwords are never printed.

Human-readable tables and `key: value` blocks go to stdout; notices, page hints and \
errors go to stderr. --json prints the response message as JSON instead. Errors read \
`error: <message> (code: <Code>, request id: <id>)`.

",
    exit_codes_text!()
);

/// `keygate`: the Keygate command-line client.
#[derive(Debug, Parser)]
#[command(
    name = "keygate",
    version,
    about = "Manage Keygate API tokens, routes, teams, users, service accounts and the audit log.",
    long_about = LONG_ABOUT,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted by every subcommand.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Control plane gRPC address (http://host:port).
    #[arg(
        long,
        global = true,
        env = "KEYGATE_ADDR",
        default_value = DEFAULT_ADDR,
        value_name = "URL"
    )]
    pub addr: String,

    /// Management key or session token [env: KEYGATE_KEY]. Prefer --key-file or the
    /// environment: a flag lands in shell history.
    #[arg(
        long,
        global = true,
        value_name = "KEY",
        conflicts_with = "key_file",
        value_parser = parse_key
    )]
    pub key: Option<Credential>,

    /// File holding the management key (or a session token), surrounding whitespace trimmed
    /// [env: KEYGATE_KEY_FILE].
    #[arg(long, global = true, value_name = "PATH")]
    pub key_file: Option<PathBuf>,

    /// Print the response message as JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    /// Give up on the control plane after this many seconds (connecting, or waiting for an
    /// answer or for the next export chunk).
    #[arg(
        long,
        global = true,
        value_name = "SECONDS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Issue, inspect, change, revoke and rotate API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Map URL path prefixes to backends.
    #[command(subcommand)]
    Route(RouteCommand),
    /// Manage the teams that own tokens and routes.
    #[command(subcommand)]
    Team(TeamCommand),
    /// Read, export and verify the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Sign in with email and password and store the session for later commands.
    Login(LoginArgs),
    /// End the stored session and delete it.
    Logout,
    /// Show whom the current credential belongs to, and its roles.
    Whoami,
    /// Create the first system admin with the one-time setup code, and sign in.
    Setup(SetupArgs),
    /// List and end your sessions.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Change your password.
    #[command(subcommand)]
    Password(PasswordCommand),
    /// List, inspect, change, disable and enable users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage who is in a team, and with which role.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Invite people into teams, and accept an invitation.
    #[command(subcommand)]
    Invite(InviteCommand),
    /// Manage service accounts and their management keys.
    #[command(subcommand, name = "service-account", alias = "sa")]
    ServiceAccount(ServiceAccountCommand),
    /// Edge sync followers (kv-sync): status and resync. System admins.
    #[command(subcommand)]
    Sync(SyncCommand),
    /// Requests the gateways answered: analytics (summary, top, token, route), live tail,
    /// export, raw events and gateway totals.
    #[command(subcommand)]
    Usage(UsageCommand),
    /// Alert rules that POST a signed webhook when a condition starts to hold, and their
    /// deliveries.
    #[command(subcommand)]
    Alert(AlertCommand),
    /// Move from the old system (its PostgreSQL database, KV namespace and user export)
    /// without re-issuing a key: plan with --dry-run, then apply; runs again apply only what
    /// changed. Runs on the control plane's machine: it writes to its database directly.
    #[command(subcommand)]
    Import(ImportCommand),
    /// The home page in one call: token, route, team and user counts, today's traffic,
    /// tokens expiring soon, unused or never used, tokens created per day, recent audit.
    Dashboard(DashboardArgs),
    /// This installation: version and gateway URL (`info`, no sign-in needed); the health of
    /// the database, change feed and gateways (`status`, system admins).
    #[command(subcommand)]
    System(SystemCommand),
    /// Print a shell completion script for bash, zsh, fish, elvish or powershell.
    ///
    /// bash: `keygate completions bash > ~/.local/share/bash-completion/completions/keygate`;
    /// zsh: `keygate completions zsh > "${fpath[1]}/_keygate"`;
    /// fish: `keygate completions fish > ~/.config/fish/completions/keygate.fish`.
    Completions(CompletionsArgs),
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import the old token manager: teams, routes with their secrets, tokens keeping their
    /// `ntk_` keys, users as invitations, optionally usage and audit history
    /// (docs/migrating.md). Exit 5 when a problem is unresolved (nothing written).
    #[command(name = "old-system")]
    OldSystem(Box<keygate_control_plane::import::run::Args>),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write the completion script for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Version, the gateway's public URL, the token prefix, whether usage is collected and
    /// whether first-start setup is due. Needs no credentials.
    Info,
    /// Database reachability, round trip and schema version; change-feed head and followers;
    /// gateways with the config revision they last reported.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Head revision, and each follower's position, lag and last error.
    Status,
    /// Ask one follower (or every follower) to rebuild its KV from a snapshot.
    Resync {
        /// Follower name (e.g. kv-sync/local); all followers when omitted.
        follower: Option<String>,
    },
}

impl Command {
    /// False for the commands that work without a credential: they sign in (`login`,
    /// `setup`, `invite accept`) or use only the stored session (`logout`).
    pub fn needs_credentials(&self) -> bool {
        !matches!(
            self,
            Command::Login(_)
                | Command::Logout
                | Command::Setup(_)
                | Command::Invite(InviteCommand::Accept(_))
                | Command::System(SystemCommand::Info)
                | Command::Completions(_)
                | Command::Import(_)
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

/// Cursor pagination flags of every list command.
#[derive(Debug, Args)]
pub struct PageArgs {
    /// Results per page (the server's default when left out).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: Option<u32>,
    /// Continue from a previous page's next-page token.
    #[arg(long, value_name = "TOKEN")]
    pub page_token: Option<String>,
    /// Follow next-page tokens until every result is listed.
    #[arg(long)]
    pub all: bool,
}

/// Skip the confirmation question.
#[derive(Debug, Args)]
pub struct YesArg {
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long, short)]
    pub yes: bool,
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token; its plaintext is printed once.
    Create(TokenCreateArgs),
    /// List tokens, newest first.
    List(TokenListArgs),
    /// Show one token (never its plaintext).
    Get(TokenIdArg),
    /// Change a token's name, description, scopes, expiry or rate limit.
    Update(TokenUpdateArgs),
    /// Revoke a token: the gateway refuses it from then on.
    Revoke(TokenRevokeArgs),
    /// Issue a replacement with the same settings; the old token works for a grace period.
    Rotate(TokenRotateArgs),
}

#[derive(Debug, Args)]
pub struct TokenIdArg {
    /// Token id (`tok_...`).
    pub id: String,
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// Display name, 1-100 characters.
    #[arg(long)]
    pub name: String,
    /// Owning team's id.
    #[arg(long, value_name = "TEAM_ID")]
    pub team: String,
    /// Free text, up to 1000 characters.
    #[arg(long)]
    pub description: Option<String>,
    /// Scope to grant: `*`, a route name, or `tag:<tag>`. Repeat for several.
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    #[command(flatten)]
    pub expiry: CreateExpiry,
    /// Requests per minute for this token over all routes (1-1000000); left out: no
    /// per-token limit.
    #[arg(long, value_name = "N")]
    pub rate_limit: Option<u32>,
    /// Print only the plaintext (for `TOKEN=$(keygate token create ... --quiet)`).
    #[arg(long, short)]
    pub quiet: bool,
}

/// Exactly one expiry choice is required when issuing a token.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct CreateExpiry {
    /// Expire this many days from now (1-3650).
    #[arg(long, value_name = "DAYS")]
    pub expires_in_days: Option<u32>,
    /// Never expire.
    #[arg(long)]
    pub never_expires: bool,
}

/// At most one expiry change; none keeps the current expiry.
#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
pub struct UpdateExpiry {
    /// Expire this many days from now (1-3650).
    #[arg(long, value_name = "DAYS")]
    pub expires_in_days: Option<u32>,
    /// Never expire.
    #[arg(long)]
    pub never_expires: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenStatusArg {
    Active,
    Expired,
    Revoked,
}

#[derive(Debug, Args)]
pub struct TokenListArgs {
    /// Only tokens of this team.
    #[arg(long, value_name = "TEAM_ID")]
    pub team: Option<String>,
    /// Only tokens holding exactly this scope.
    #[arg(long)]
    pub scope: Option<String>,
    /// Only tokens holding the scope `tag:<TAG>`.
    #[arg(long)]
    pub tag: Option<String>,
    /// Only tokens in this status.
    #[arg(long, value_enum)]
    pub status: Option<TokenStatusArg>,
    /// Only tokens expiring within this many days.
    #[arg(long, value_name = "DAYS")]
    pub expiring_within_days: Option<u32>,
    /// Case-insensitive substring of name or description.
    #[arg(long)]
    pub query: Option<String>,
    /// Only tokens used, but not within this many days (never-used ones are left out: ask
    /// for them with --never-used).
    #[arg(long, value_name = "DAYS", conflicts_with = "never_used")]
    pub unused_days: Option<u32>,
    /// Only tokens never used.
    #[arg(long)]
    pub never_used: bool,
    /// Only tokens imported from the old system that still work with their old key
    /// (`ntk_...`), with their last use: the keys to replace before legacy keys are turned
    /// off (docs/migrating.md). Active ones unless --status says otherwise.
    #[arg(long)]
    pub legacy: bool,
    /// Sort field (default: created, newest first). Never-used tokens sort as the oldest
    /// use; tokens that never expire after every expiry.
    #[arg(long, value_enum)]
    pub sort: Option<TokenSortArg>,
    /// Reverse the field's natural order (names Z-A, times newest first).
    #[arg(long)]
    pub desc: bool,
    #[command(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenSortArg {
    Created,
    Name,
    LastUsed,
    Expires,
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("token_changes")
        .required(true)
        .multiple(true)
        .args(["name", "description", "scopes", "expires_in_days", "never_expires", "rate_limit"])
))]
pub struct TokenUpdateArgs {
    /// Token id (`tok_...`).
    pub id: String,
    /// New display name.
    #[arg(long)]
    pub name: Option<String>,
    /// New description (empty clears it).
    #[arg(long)]
    pub description: Option<String>,
    /// Replace the scopes with these (repeat for several); left out, scopes are kept.
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    #[command(flatten)]
    pub expiry: UpdateExpiry,
    /// Requests per minute for this token over all routes; 0 removes the limit.
    #[arg(long, value_name = "N")]
    pub rate_limit: Option<u32>,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// Token id (`tok_...`).
    pub id: String,
    /// Note kept in the audit log, up to 500 characters.
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct TokenRotateArgs {
    /// Token id (`tok_...`).
    pub id: String,
    /// How long the old token keeps working: seconds, or a duration such as 30m, 1h, 7d
    /// (at most 30 days). 0, the default, revokes it now.
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = parse_grace)]
    pub grace: u32,
    /// Print only the new plaintext.
    #[arg(long, short)]
    pub quiet: bool,
}

// ---------------------------------------------------------------------------------------------
// Routes

#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    /// Create a route.
    Add(RouteAddArgs),
    /// List routes.
    List(RouteListArgs),
    /// Show one route.
    Get(RouteRefArg),
    /// Change a route; tags and methods are replaced when given.
    Update(RouteUpdateArgs),
    /// Delete a route and its stored backend secret.
    Delete(RouteDeleteArgs),
    /// Every tag in use, with how many routes carry it.
    Tags,
}

#[derive(Debug, Args)]
pub struct RouteRefArg {
    /// Route id (`rte_...`) or name.
    pub id_or_name: String,
}

/// Backend credential flags. Secrets never come from a plain flag (it would land in shell
/// history): name an environment variable, a file, or read stdin.
#[derive(Debug, Args)]
pub struct AuthArgs {
    /// Credential the gateway adds when it forwards to the backend.
    #[arg(long, value_enum, value_name = "KIND")]
    pub auth: Option<AuthKind>,
    /// Header that carries the key (with --auth api-key), e.g. X-API-Key.
    #[arg(long, value_name = "HEADER", requires = "auth")]
    pub auth_header: Option<String>,
    /// User name (with --auth basic).
    #[arg(long, value_name = "USER", requires = "auth")]
    pub auth_username: Option<String>,
    #[command(flatten)]
    pub secret: SecretSource,
}

/// Where the backend secret (bearer token, API key or password) is read from.
#[derive(Debug, Args)]
#[group(required = false, multiple = false, requires = "auth")]
pub struct SecretSource {
    /// Read the secret from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub auth_secret_env: Option<String>,
    /// Read the secret from this file (trailing newline removed).
    #[arg(long, value_name = "PATH")]
    pub auth_secret_file: Option<PathBuf>,
    /// Read the secret from stdin (trailing newline removed).
    #[arg(long)]
    pub auth_secret_stdin: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthKind {
    /// No credential.
    None,
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// `<--auth-header>: <secret>`.
    ApiKey,
    /// HTTP basic auth with --auth-username and the secret as password.
    Basic,
}

#[derive(Debug, Args)]
pub struct RouteAddArgs {
    /// Unique slug (lowercase letters, digits, `-`); also the token scope that grants it.
    #[arg(long)]
    pub name: String,
    /// Owning team's id.
    #[arg(long, value_name = "TEAM_ID")]
    pub team: String,
    /// Path prefix, starting with `/`.
    #[arg(long, value_name = "PREFIX")]
    pub path: String,
    /// Backend URL (absolute http or https).
    #[arg(long, value_name = "URL")]
    pub backend: String,
    /// Free text.
    #[arg(long)]
    pub description: Option<String>,
    /// Tag (repeat for several).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Allowed HTTP method (repeat for several); none allows all.
    #[arg(long = "method", value_name = "METHOD")]
    pub methods: Vec<String>,
    /// Remove the path prefix before forwarding.
    #[arg(long)]
    pub strip_prefix: bool,
    /// Backend timeout in milliseconds (1-300000; server default 30000).
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u32>,
    /// A team whose tokens may be granted this route (repeat for several); none: every
    /// team.
    #[arg(long = "allowed-team", value_name = "TEAM_ID")]
    pub allowed_teams: Vec<String>,
    /// A browser origin the gateway answers CORS for on this route, e.g.
    /// https://app.example.com, or `*` (repeat for several, at most 20); none: no CORS.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
    /// Requests per minute per token on this route (1-1000000); left out: no per-route limit.
    #[arg(long, value_name = "N")]
    pub rate_limit: Option<u32>,
    #[command(flatten)]
    pub auth: AuthArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RouteSort {
    Name,
    Path,
    Created,
    Updated,
}

#[derive(Debug, Args)]
pub struct RouteListArgs {
    /// Only routes of this team.
    #[arg(long, value_name = "TEAM_ID")]
    pub team: Option<String>,
    /// Only routes carrying this tag.
    #[arg(long)]
    pub tag: Option<String>,
    /// Case-insensitive substring of name, path, backend or description.
    #[arg(long)]
    pub query: Option<String>,
    /// Sort field (default: name).
    #[arg(long, value_enum)]
    pub sort: Option<RouteSort>,
    /// Sort descending.
    #[arg(long)]
    pub desc: bool,
    #[command(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("route_changes")
        .required(true)
        .multiple(true)
        .args([
            "name", "path", "backend", "description", "tags", "clear_tags", "methods",
            "clear_methods", "strip_prefix", "no_strip_prefix", "timeout_ms", "allowed_teams",
            "clear_allowed_teams", "cors_origins", "clear_cors_origins", "rate_limit", "auth",
        ])
))]
pub struct RouteUpdateArgs {
    /// Route id (`rte_...`) or name.
    pub id_or_name: String,
    /// Rename the route (this changes the scope that grants it).
    #[arg(long)]
    pub name: Option<String>,
    /// New path prefix.
    #[arg(long, value_name = "PREFIX")]
    pub path: Option<String>,
    /// New backend URL.
    #[arg(long, value_name = "URL")]
    pub backend: Option<String>,
    /// New description (empty clears it).
    #[arg(long)]
    pub description: Option<String>,
    /// Replace the tags with these (repeat for several).
    #[arg(long = "tag", value_name = "TAG", conflicts_with = "clear_tags")]
    pub tags: Vec<String>,
    /// Remove every tag.
    #[arg(long)]
    pub clear_tags: bool,
    /// Replace the allowed methods with these (repeat for several).
    #[arg(
        long = "method",
        value_name = "METHOD",
        conflicts_with = "clear_methods"
    )]
    pub methods: Vec<String>,
    /// Allow every method.
    #[arg(long)]
    pub clear_methods: bool,
    /// Remove the path prefix before forwarding.
    #[arg(long, conflicts_with = "no_strip_prefix")]
    pub strip_prefix: bool,
    /// Forward the path unchanged.
    #[arg(long)]
    pub no_strip_prefix: bool,
    /// Backend timeout in milliseconds.
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u32>,
    /// Replace the teams whose tokens may be granted this route with these (repeat for
    /// several).
    #[arg(
        long = "allowed-team",
        value_name = "TEAM_ID",
        conflicts_with = "clear_allowed_teams"
    )]
    pub allowed_teams: Vec<String>,
    /// Open the route to every team's tokens.
    #[arg(long)]
    pub clear_allowed_teams: bool,
    /// Replace the CORS origins with these (repeat for several; `*` alone allows any).
    #[arg(
        long = "cors-origin",
        value_name = "ORIGIN",
        conflicts_with = "clear_cors_origins"
    )]
    pub cors_origins: Vec<String>,
    /// Turn CORS handling off for this route.
    #[arg(long)]
    pub clear_cors_origins: bool,
    /// Requests per minute per token on this route; 0 removes the limit.
    #[arg(long, value_name = "N")]
    pub rate_limit: Option<u32>,
    /// Replace the backend credential; with the same kind, a left-out secret keeps the
    /// stored one.
    #[command(flatten)]
    pub auth: AuthArgs,
}

#[derive(Debug, Args)]
pub struct RouteDeleteArgs {
    /// Route id (`rte_...`) or name.
    pub id_or_name: String,
    #[command(flatten)]
    pub yes: YesArg,
}

// ---------------------------------------------------------------------------------------------
// Teams

#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Create a team.
    Create(TeamCreateArgs),
    /// List teams with their member, token and route counts.
    List(TeamListArgs),
    /// Show one team.
    Get(TeamIdArg),
    /// Change a team's name, description, color or icon.
    Update(TeamUpdateArgs),
    /// Delete a team (refused while it owns live tokens or routes, unless --cascade).
    Delete(TeamDeleteArgs),
    /// Become ADMIN of a team that has no members (needs ADMIN of another team, or system
    /// admin).
    Claim(TeamIdArg),
}

#[derive(Debug, Args)]
pub struct TeamIdArg {
    /// Team id (slug).
    pub id: String,
}

#[derive(Debug, Args)]
pub struct TeamCreateArgs {
    /// Team id: 2-40 lowercase letters, digits and `-`, starting with a letter.
    pub id: String,
    /// Display name.
    #[arg(long)]
    pub name: String,
    /// Free text.
    #[arg(long)]
    pub description: Option<String>,
    /// Color as `#rrggbb`.
    #[arg(long, value_name = "#RRGGBB")]
    pub color: Option<String>,
    /// Short icon text such as an emoji (up to 8 characters).
    #[arg(long)]
    pub icon: Option<String>,
}

#[derive(Debug, Args)]
pub struct TeamListArgs {
    /// Case-insensitive substring of id, name or description.
    #[arg(long)]
    pub query: Option<String>,
    #[command(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("team_changes")
        .required(true)
        .multiple(true)
        .args(["name", "description", "color", "icon"])
))]
pub struct TeamUpdateArgs {
    /// Team id (slug).
    pub id: String,
    /// New display name.
    #[arg(long)]
    pub name: Option<String>,
    /// New description (empty clears it).
    #[arg(long)]
    pub description: Option<String>,
    /// New color as `#rrggbb` (empty clears it).
    #[arg(long, value_name = "#RRGGBB")]
    pub color: Option<String>,
    /// New icon (empty clears it).
    #[arg(long)]
    pub icon: Option<String>,
}

#[derive(Debug, Args)]
pub struct TeamDeleteArgs {
    /// Team id (slug).
    pub id: String,
    /// Also revoke the team's tokens and delete its routes, in the same transaction.
    #[arg(long)]
    pub cascade: bool,
    #[command(flatten)]
    pub yes: YesArg,
}

// ---------------------------------------------------------------------------------------------
// Audit

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events, newest first, with the total matching count.
    List(AuditListArgs),
    /// Stream every matching event, oldest first, as NDJSON or CSV.
    Export(AuditExportArgs),
    /// Recompute the hash chain and report the first row that does not match.
    Verify,
}

/// Filters shared by `audit list` and `audit export`.
#[derive(Debug, Args)]
pub struct AuditFilterArgs {
    /// Only events by this actor id.
    #[arg(long, value_name = "ACTOR_ID")]
    pub actor: Option<String>,
    /// Only this action, e.g. `token.create`.
    #[arg(long)]
    pub action: Option<String>,
    /// Only this entity type: token, route, team, management_key.
    #[arg(long, value_name = "TYPE")]
    pub entity_type: Option<String>,
    /// Only this entity id.
    #[arg(long, value_name = "ID")]
    pub entity_id: Option<String>,
    /// Only events of this team.
    #[arg(long, value_name = "TEAM_ID")]
    pub team: Option<String>,
    /// Only events at or after this RFC 3339 time, e.g. 2025-01-31T00:00:00Z.
    #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
    pub since: Option<Timestamp>,
    /// Only events before this RFC 3339 time.
    #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
    pub until: Option<Timestamp>,
}

#[derive(Debug, Args)]
pub struct AuditListArgs {
    #[command(flatten)]
    pub filter: AuditFilterArgs,
    #[command(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormatArg {
    /// One JSON object per line.
    Ndjson,
    /// RFC 4180 CSV with a header row.
    Csv,
}

#[derive(Debug, Args)]
pub struct AuditExportArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = ExportFormatArg::Ndjson)]
    pub format: ExportFormatArg,
    #[command(flatten)]
    pub filter: AuditFilterArgs,
    /// Write to this file instead of stdout (replaced only when the export completes).
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------------------
// Value parsers

/// Wraps `--key` at once so that neither `Debug` nor a clap error can show it.
fn parse_key(raw: &str) -> Result<Credential, Infallible> {
    Ok(Credential::new(raw))
}

/// `--grace`: whole seconds (`3600`) or a humantime duration (`30m`, `1h`, `7d`, `1h30m`).
pub fn parse_grace(raw: &str) -> Result<u32, String> {
    let raw = raw.trim();
    let duration = if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        let secs = raw
            .parse::<u64>()
            .map_err(|_| format!("`{raw}` is too large"))?;
        Duration::from_secs(secs)
    } else {
        humantime::parse_duration(raw)
            .map_err(|e| format!("`{raw}` is not a duration such as 3600, 30m, 1h or 7d: {e}"))?
    };
    if duration.subsec_nanos() != 0 {
        return Err(format!("`{raw}` is not a whole number of seconds"));
    }
    u32::try_from(duration.as_secs()).map_err(|_| format!("`{raw}` is too large"))
}

/// `--since` / `--until`: an RFC 3339 time with `Z` or an offset.
pub fn parse_rfc3339(raw: &str) -> Result<Timestamp, String> {
    let time = chrono::DateTime::parse_from_rfc3339(raw.trim()).map_err(|e| {
        format!("`{raw}` is not an RFC 3339 time such as 2025-01-31T12:00:00Z: {e}")
    })?;
    Ok(Timestamp {
        seconds: time.timestamp(),
        // Always below 2e9 for a parsed time, so the cast cannot wrap.
        nanos: time.timestamp_subsec_nanos() as i32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("keygate").chain(args.iter().copied()))
    }

    fn kind(args: &[&str]) -> clap::error::ErrorKind {
        parse(args).expect_err("should be rejected").kind()
    }

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn long_help_lists_the_exit_codes() {
        assert!(LONG_ABOUT.ends_with(EXIT_CODES_HELP));
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = parse(&[
            "token",
            "list",
            "--json",
            "--addr",
            "http://h:1",
            "--timeout",
            "5",
        ])
        .unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.addr, "http://h:1");
        assert_eq!(cli.global.timeout, 5);
    }

    #[test]
    fn key_is_redacted_in_debug_output() {
        let cli = parse(&["--key", "mk_supersecret", "team", "list"]).unwrap();
        let shown = format!("{cli:?}");
        assert!(!shown.contains("supersecret"), "{shown}");
        assert_eq!(cli.global.key.unwrap().expose(), "mk_supersecret");
    }

    #[test]
    fn key_and_key_file_conflict() {
        use clap::error::ErrorKind;
        assert_eq!(
            kind(&["--key", "k", "--key-file", "f", "team", "list"]),
            ErrorKind::ArgumentConflict
        );
    }

    #[test]
    fn token_create_requires_exactly_one_expiry() {
        use clap::error::ErrorKind;
        let base = [
            "token", "create", "--name", "ci", "--team", "core", "--scope", "*",
        ];
        let with = |extra: &[&'static str]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            v
        };

        let cli = parse(&with(&["--expires-in-days", "30"])).unwrap();
        let Command::Token(TokenCommand::Create(args)) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(args.expiry.expires_in_days, Some(30));
        assert!(!args.expiry.never_expires);
        assert_eq!(args.scopes, ["*"]);

        let cli = parse(&with(&["--never-expires", "--quiet"])).unwrap();
        let Command::Token(TokenCommand::Create(args)) = cli.command else {
            panic!("wrong command")
        };
        assert!(args.expiry.never_expires);
        assert!(args.quiet);

        assert_eq!(kind(&with(&[])), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            kind(&with(&["--expires-in-days", "3", "--never-expires"])),
            ErrorKind::ArgumentConflict
        );
    }

    #[test]
    fn token_update_needs_a_change_and_at_most_one_expiry() {
        use clap::error::ErrorKind;
        assert_eq!(
            kind(&["token", "update", "tok_1"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&[
                "token",
                "update",
                "tok_1",
                "--expires-in-days",
                "3",
                "--never-expires"
            ]),
            ErrorKind::ArgumentConflict
        );
        let cli = parse(&["token", "update", "tok_1", "--scope", "a", "--scope", "b"]).unwrap();
        let Command::Token(TokenCommand::Update(args)) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(args.scopes, ["a", "b"]);
        assert!(parse(&["token", "update", "tok_1", "--never-expires"]).is_ok());
    }

    #[test]
    fn token_status_filter_takes_known_values_only() {
        use clap::error::ErrorKind;
        let cli = parse(&["token", "list", "--status", "revoked", "--all"]).unwrap();
        let Command::Token(TokenCommand::List(args)) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(args.status, Some(TokenStatusArg::Revoked));
        assert!(args.page.all);
        assert_eq!(
            kind(&["token", "list", "--status", "paused"]),
            ErrorKind::InvalidValue
        );
    }

    #[test]
    fn rotate_grace_accepts_seconds_and_durations() {
        let cli = parse(&["token", "rotate", "tok_1", "--grace", "1h"]).unwrap();
        let Command::Token(TokenCommand::Rotate(args)) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(args.grace, 3600);
        let cli = parse(&["token", "rotate", "tok_1"]).unwrap();
        let Command::Token(TokenCommand::Rotate(args)) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(args.grace, 0);
        assert_eq!(
            kind(&["token", "rotate", "tok_1", "--grace", "soon"]),
            clap::error::ErrorKind::ValueValidation
        );
    }

    #[test]
    fn grace_durations() {
        let cases: &[(&str, Result<u32, ()>)] = &[
            ("0", Ok(0)),
            ("90", Ok(90)),
            ("30s", Ok(30)),
            ("30m", Ok(1_800)),
            ("1h", Ok(3_600)),
            ("1h 30m", Ok(5_400)),
            ("1h30m", Ok(5_400)),
            ("7d", Ok(604_800)),
            ("30d", Ok(2_592_000)),
            (" 2h ", Ok(7_200)),
            ("", Err(())),
            ("1.5", Err(())),
            ("1500ms", Err(())),
            ("-5", Err(())),
            ("soon", Err(())),
            ("99999999999", Err(())),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_grace(raw).map_err(|_| ()), *want, "input {raw:?}");
        }
    }

    #[test]
    fn rfc3339_times() {
        let t = parse_rfc3339("2025-01-31T12:00:00Z").unwrap();
        assert_eq!((t.seconds, t.nanos), (1_738_324_800, 0));
        let t = parse_rfc3339("2025-01-31T14:00:00.5+02:00").unwrap();
        assert_eq!((t.seconds, t.nanos), (1_738_324_800, 500_000_000));
        assert!(parse_rfc3339("2025-01-31").is_err());
        assert!(parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn route_secret_sources_are_exclusive_and_need_auth() {
        use clap::error::ErrorKind;
        let base = [
            "route",
            "add",
            "--name",
            "billing",
            "--team",
            "core",
            "--path",
            "/billing",
            "--backend",
            "http://billing:8080",
        ];
        let with = |extra: &[&'static str]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            v
        };

        let cli = parse(&with(&[
            "--auth",
            "api-key",
            "--auth-header",
            "X-API-Key",
            "--auth-secret-env",
            "BILLING_KEY",
            "--method",
            "GET",
            "--method",
            "POST",
            "--tag",
            "money",
        ]))
        .unwrap();
        let Command::Route(RouteCommand::Add(args)) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(args.auth.auth, Some(AuthKind::ApiKey));
        assert_eq!(
            args.auth.secret.auth_secret_env.as_deref(),
            Some("BILLING_KEY")
        );
        assert_eq!(args.methods, ["GET", "POST"]);
        assert_eq!(args.tags, ["money"]);

        assert_eq!(
            kind(&with(&[
                "--auth",
                "bearer",
                "--auth-secret-env",
                "A",
                "--auth-secret-stdin"
            ])),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&with(&[
                "--auth",
                "bearer",
                "--auth-secret-file",
                "/f",
                "--auth-secret-env",
                "A"
            ])),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&with(&["--auth-secret-stdin"])),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&with(&["--auth-header", "X-Key"])),
            ErrorKind::MissingRequiredArgument
        );
        // There is no flag that takes the secret itself.
        assert_eq!(
            kind(&with(&["--auth", "bearer", "--auth-secret", "hunter2"])),
            ErrorKind::UnknownArgument
        );
    }

    #[test]
    fn route_update_flags() {
        use clap::error::ErrorKind;
        assert_eq!(
            kind(&["route", "update", "billing"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&["route", "update", "billing", "--tag", "a", "--clear-tags"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&[
                "route",
                "update",
                "billing",
                "--strip-prefix",
                "--no-strip-prefix"
            ]),
            ErrorKind::ArgumentConflict
        );
        let cli = parse(&["route", "update", "billing", "--clear-methods"]).unwrap();
        let Command::Route(RouteCommand::Update(args)) = cli.command else {
            panic!("wrong command")
        };
        assert!(args.clear_methods);
        assert!(parse(&["route", "update", "billing", "--auth", "none"]).is_ok());
    }

    #[test]
    fn route_list_sort_and_delete_confirmation_flag() {
        let cli = parse(&["route", "list", "--sort", "created", "--desc"]).unwrap();
        let Command::Route(RouteCommand::List(args)) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(args.sort, Some(RouteSort::Created));
        assert!(args.desc);
        let cli = parse(&["route", "delete", "billing", "-y"]).unwrap();
        let Command::Route(RouteCommand::Delete(args)) = cli.command else {
            panic!("wrong command")
        };
        assert!(args.yes.yes);
    }

    #[test]
    fn audit_filters_parse_times() {
        use clap::error::ErrorKind;
        let cli = parse(&[
            "audit",
            "export",
            "--format",
            "csv",
            "--since",
            "2025-01-01T00:00:00Z",
            "-o",
            "out.csv",
        ])
        .unwrap();
        let Command::Audit(AuditCommand::Export(args)) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(args.format, ExportFormatArg::Csv);
        assert_eq!(args.filter.since.map(|t| t.seconds), Some(1_735_689_600));
        assert_eq!(
            kind(&["audit", "list", "--until", "tomorrow"]),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn team_commands() {
        use clap::error::ErrorKind;
        assert!(
            parse(&[
                "team", "create", "core", "--name", "Core", "--color", "#00ff88"
            ])
            .is_ok()
        );
        assert_eq!(
            kind(&["team", "create", "core"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&["team", "update", "core"]),
            ErrorKind::MissingRequiredArgument
        );
        let cli = parse(&["team", "delete", "core", "--cascade", "--yes"]).unwrap();
        let Command::Team(TeamCommand::Delete(args)) = cli.command else {
            panic!("wrong command")
        };
        assert!(args.cascade && args.yes.yes);
    }

    #[test]
    fn login_setup_session_and_password_commands() {
        use clap::error::ErrorKind;
        let cli = parse(&["login", "--email", "ada@example.com", "--password-stdin"]).unwrap();
        let Command::Login(args) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(args.email.as_deref(), Some("ada@example.com"));
        assert!(args.password_stdin);
        let Command::Login(args) = parse(&["login"]).unwrap().command else {
            panic!("wrong command")
        };
        assert_eq!((args.email, args.password_stdin), (None, false));
        // stdin cannot carry both the email and the password.
        assert_eq!(
            kind(&["login", "--password-stdin"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&["login", "--password", "hunter2"]),
            ErrorKind::UnknownArgument
        );

        let cli = parse(&[
            "setup",
            "--code",
            "SETUP-SECRET-42",
            "--email",
            "root@example.com",
            "--name",
            "Root",
        ])
        .unwrap();
        assert!(!format!("{cli:?}").contains("SETUP-SECRET"), "{cli:?}");
        let Command::Setup(args) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(args.code.code.unwrap().expose(), "SETUP-SECRET-42");
        assert!(!args.password.password_stdin);
        let Command::Setup(args) = parse(&[
            "setup",
            "--code-file",
            "/run/code",
            "--email",
            "e",
            "--name",
            "n",
            "--password-stdin",
        ])
        .unwrap()
        .command
        else {
            panic!("wrong command")
        };
        assert_eq!(
            args.code.code_file.as_deref(),
            Some(std::path::Path::new("/run/code"))
        );
        assert!(args.password.password_stdin);
        assert_eq!(
            kind(&["setup", "--email", "e", "--name", "n"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&["setup", "--code", "c", "--name", "n"]),
            ErrorKind::MissingRequiredArgument
        );

        assert!(matches!(
            parse(&["session", "list"]).unwrap().command,
            Command::Session(SessionCommand::List)
        ));
        let Command::Session(SessionCommand::Revoke(args)) =
            parse(&["session", "revoke", "ses_1"]).unwrap().command
        else {
            panic!("wrong command")
        };
        assert_eq!(args.id, "ses_1");
        assert!(matches!(
            parse(&["password", "change"]).unwrap().command,
            Command::Password(PasswordCommand::Change)
        ));
        assert!(matches!(
            parse(&["logout"]).unwrap().command,
            Command::Logout
        ));
        assert!(matches!(
            parse(&["whoami", "--json"]).unwrap().command,
            Command::Whoami
        ));
    }

    #[test]
    fn which_commands_need_credentials() {
        let needs = |args: &[&str]| parse(args).unwrap().command.needs_credentials();
        assert!(!needs(&["login"]));
        assert!(!needs(&["logout"]));
        assert!(!needs(&[
            "setup", "--code", "c", "--email", "e", "--name", "n"
        ]));
        assert!(!needs(&["invite", "accept", "--code", "c", "--name", "n"]));
        assert!(!needs(&["system", "info"]));
        assert!(needs(&["system", "status"]));
        assert!(needs(&["invite", "list"]));
        assert!(needs(&["whoami"]));
        assert!(needs(&["session", "list"]));
        assert!(needs(&["password", "change"]));
        assert!(needs(&["team", "list"]));
    }
}
