//! One run of `keygate import old-system`: its options, reading, planning, the printed plan
//! and report, and the apply.

use super::model::{Applied, UsageFeed};
use super::old::{self, KvSource, OldSystem, ReadOptions};
use super::plan::{self, CLASSES, Existing, Options, Plan, Resolutions};
use crate::context::{Actor, RequestContext};
use crate::ids::TeamId;
use crate::routes::RouteFilter;
use crate::secrets::MasterKey;
use crate::store::{self, DynStore};
use crate::teams::TeamFilter;
use crate::time::now_ms;
use crate::tokens::TokenFilter;
use crate::users::UserFilter;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;

/// Where this run's mapping rows live (`import_map.source`).
pub const SOURCE: &str = "old-system";

/// `keygate import old-system`.
#[derive(clap::Args, Clone)]
#[command(
    after_help = "Problem classes and their --resolve actions:\n  see `keygate import old-system --list-classes` and docs/migrating.md"
)]
pub struct Args {
    /// The old system's PostgreSQL database (read-only access is enough).
    #[arg(
        long,
        env = "KEYGATE_IMPORT_OLD_DATABASE_URL",
        hide_env_values = true,
        required_unless_present = "list_classes"
    )]
    pub old_database_url: Option<String>,
    /// Cloudflare account id of the old KV namespace (with --old-kv-namespace and
    /// --old-kv-token: read secret values and KV-only tokens from it).
    #[arg(long, env = "KEYGATE_IMPORT_OLD_KV_ACCOUNT")]
    pub old_kv_account: Option<String>,
    /// The old KV namespace id.
    #[arg(long, env = "KEYGATE_IMPORT_OLD_KV_NAMESPACE")]
    pub old_kv_namespace: Option<String>,
    /// API token with read access to the old namespace.
    #[arg(long, env = "KEYGATE_IMPORT_OLD_KV_TOKEN", hide_env_values = true)]
    pub old_kv_token: Option<String>,
    /// Base URL of the KV REST API.
    #[arg(long, env = "KEYGATE_IMPORT_OLD_KV_URL", default_value = keygate_kv_cloudflare::DEFAULT_BASE_URL)]
    pub old_kv_url: String,
    /// JSON export of the old identity provider's users: each becomes an invitation with
    /// their team roles (and the system-admin flag).
    #[arg(long, value_name = "FILE")]
    pub idp_users: Option<PathBuf>,
    /// The team that owns imported routes (the old system had no route owner).
    #[arg(long, default_value = "core-team")]
    pub route_team: String,
    /// Import the last N days of usage logs as usage rollups (0: none).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=3650))]
    pub usage_days: u32,
    /// Usage log rows read and rolled up at a time while the apply runs (memory grows with
    /// it, a few KB per row; every chunk is in the one transaction).
    #[arg(long, default_value_t = 25_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub usage_chunk_rows: u32,
    /// Do not import the old audit log as historical entries.
    #[arg(long)]
    pub no_history: bool,
    /// Resolve every problem of a class: CLASS=ACTION (repeatable; --list-classes).
    #[arg(long = "resolve", value_name = "CLASS=ACTION")]
    pub resolve: Vec<String>,
    /// Print the plan and every problem; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the plan (and report) as JSON.
    #[arg(long)]
    pub json: bool,
    /// Where to write the invitation codes of imported users (CSV, mode 0600).
    #[arg(long, value_name = "FILE", default_value = "keygate-invitations.csv")]
    pub invitations_out: PathBuf,
    /// Lifetime of those invitations, in hours.
    #[arg(long, default_value_t = 720, value_parser = clap::value_parser!(u32).range(1..=720))]
    pub invitation_hours: u32,
    /// The old key format's prefix: imported tokens are marked with it.
    #[arg(long, default_value = "ntk")]
    pub legacy_prefix: String,
    /// List the problem classes and their actions, and exit.
    #[arg(long)]
    pub list_classes: bool,
    /// Keygate's data directory (its SQLite database and master key by default).
    #[arg(long, env = "KEYGATE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Keygate's database (default: keygate.db in the data directory).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Keygate's master key, base64 (default: master.key in the data directory).
    #[arg(long, env = "KEYGATE_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
}

/// Leaves out the old database URL (it may hold a password), the KV API token and the
/// master key.
impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field(
                "old_database_url",
                &self
                    .old_database_url
                    .as_deref()
                    .map(crate::config::redact_url),
            )
            .field("old_kv_account", &self.old_kv_account)
            .field("old_kv_namespace", &self.old_kv_namespace)
            .field("old_kv_url", &self.old_kv_url)
            .field("idp_users", &self.idp_users)
            .field("route_team", &self.route_team)
            .field("usage_days", &self.usage_days)
            .field("usage_chunk_rows", &self.usage_chunk_rows)
            .field("resolve", &self.resolve)
            .field("dry_run", &self.dry_run)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(crate::config::redact_url),
            )
            .finish_non_exhaustive()
    }
}

/// How a run ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied (or nothing to do).
    Applied,
    /// A dry run with no unresolved problem.
    Planned,
    /// Unresolved problems: nothing written.
    Refused,
}

impl Outcome {
    /// 0 applied or planned cleanly; 3 refused for problems.
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Applied | Self::Planned => 0,
            Self::Refused => 3,
        }
    }
}

/// Text of `--list-classes`.
pub fn classes_text() -> String {
    let mut out = String::from("CLASS                  ACTIONS            MEANING\n");
    for (class, actions, meaning) in CLASSES {
        out.push_str(&format!(
            "{class:<22} {:<18} {meaning}\n",
            actions.join("|")
        ));
    }
    out
}

fn progress_line(json: bool) -> impl Fn(&str, usize, usize) + Send + Sync {
    move |what: &str, done: usize, total: usize| {
        if !json {
            eprintln!("import: applying {what}: {done}/{total}");
        }
    }
}

/// Reads what the plan depends on from this installation.
async fn existing(store: &DynStore) -> anyhow::Result<Existing> {
    let map = store.import_map(SOURCE).await?;
    let mut ex = Existing {
        map,
        ..Existing::default()
    };
    let mut f = TeamFilter {
        limit: 500,
        ..TeamFilter::default()
    };
    loop {
        let page = store.list_teams(&f).await?;
        let last = page.items.last().cloned();
        ex.team_ids.extend(page.items.into_iter().map(|t| t.id.0));
        match (page.more, last) {
            (true, Some(t)) => f.after = Some(t.id),
            _ => break,
        }
    }
    let imported_routes: BTreeSet<&str> = ex
        .map
        .iter()
        .filter(|m| m.kind == "route")
        .map(|m| m.new_id.as_str())
        .collect();
    let mut f = RouteFilter {
        limit: 500,
        ..RouteFilter::default()
    };
    let mut foreign = Vec::new();
    loop {
        let page = store.list_routes(&f).await?;
        let last = page.items.last().map(|r| (r.name.clone(), r.id.clone()));
        for r in page.items {
            if !imported_routes.contains(r.id.as_str()) {
                foreign.push((r.name, r.path_prefix));
            }
        }
        match (page.more, last) {
            (true, Some(pos)) => f.after = Some(pos),
            _ => break,
        }
    }
    ex.foreign_routes = foreign;
    let mut f = TokenFilter {
        legacy: true,
        limit: 500,
        ..TokenFilter::default()
    };
    loop {
        let page = store.list_tokens(&f).await?;
        let last = page.items.last().map(|t| f.position_after(t));
        for t in page.items {
            let revoked = t.revoked_at.is_some();
            ex.imported_tokens.insert(t.id.0, (t.team_id.0, revoked));
        }
        match (page.more, last) {
            (true, Some(pos)) => f.after = Some(pos),
            _ => break,
        }
    }
    let mut f = UserFilter {
        limit: 500,
        ..UserFilter::default()
    };
    loop {
        let page = store.list_users(&f).await?;
        let last = page.items.last().cloned();
        ex.emails
            .extend(page.items.into_iter().map(|u| u.email.to_ascii_lowercase()));
        match (page.more, last) {
            (true, Some(u)) => f.after = Some((u.email, u.id)),
            _ => break,
        }
    }
    for inv in store.list_invitations(None).await? {
        ex.emails.insert(inv.email.to_ascii_lowercase());
    }
    Ok(ex)
}

fn load_key(args: &Args) -> anyhow::Result<MasterKey> {
    use anyhow::Context;
    match &args.master_key {
        Some(b64) => MasterKey::from_base64(b64).context("KEYGATE_MASTER_KEY"),
        None => {
            let path = args.data_dir.join("master.key");
            anyhow::ensure!(
                path.exists(),
                "no master key at {} (start the control plane once with this data directory, or set KEYGATE_MASTER_KEY): imported secrets must be sealed with the control plane's key",
                path.display()
            );
            Ok(MasterKey::load_or_create(&args.data_dir)?.0)
        }
    }
}

/// Runs the import as `args` say, printing to stdout (plan, report) and stderr (progress).
pub async fn run(args: &Args, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    if args.list_classes {
        write!(out, "{}", classes_text())?;
        return Ok(Outcome::Planned);
    }
    let resolutions = Resolutions::parse(&args.resolve).map_err(anyhow::Error::msg)?;
    names_check(args)?;
    let key = load_key(args)?;
    let url = crate::config::database_url_for(&args.data_dir, args.database_url.as_deref());
    let store = store::open(&url).await.map_err(|e| {
        anyhow::anyhow!(
            "opening Keygate's database {}: {e}",
            crate::config::redact_url(&url)
        )
    })?;
    let existing = existing(&store).await?;

    let cursor = |name: &str| {
        existing
            .map
            .iter()
            .find(|m| m.kind == "cursor" && m.old_id == name)
            .and_then(|m| m.new_id.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let now = now_ms();
    let read = ReadOptions {
        usage_since: (args.usage_days > 0).then(|| now - i64::from(args.usage_days) * 86_400_000),
        usage_after_id: cursor("token_usage_logs"),
        audit_after_id: (!args.no_history).then(|| cursor("audit_logs")),
    };
    let old_url = args
        .old_database_url
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("--old-database-url is required"))?;
    let quiet = args.json;
    let say = |m: String| {
        if !quiet {
            eprintln!("import: {m}");
        }
    };
    say("reading the old database".into());
    let (mut old, mut cursor): (OldSystem, _) = old::read_db(old_url, &read).await?;
    // Everything after the read is in this block so the old database's read transaction
    // (kept open for the usage rows) is ended on every way out.
    let outcome: anyhow::Result<Outcome> = async {
        say(format!(
            "read {} teams, {} routes, {} tokens, {} usage rows, {} audit rows",
            old.teams.len(),
            old.routes.len(),
            old.tokens.len(),
            old.usage.rows,
            old.audit.len()
        ));
        if let Some(src) = kv_source(args)? {
            say("reading the old KV namespace".into());
            let hashes = old.tokens.iter().map(|t| t.hash.clone()).collect();
            let names = plan::secret_names(&old.routes);
            old.kv = Some(old::read_kv(&src, &hashes, &names).await?);
        }
        anyhow::ensure!(
            existing.team_ids.contains(&args.route_team)
                || old.teams.iter().any(|t| t.id == args.route_team),
            "--route-team {}: no such team, here or in the old system",
            args.route_team
        );
        if let Some(path) = &args.idp_users {
            old.users = old::read_users(path)?;
            say(format!("read {} users", old.users.len()));
        }
        let run_id = format!("imp_{}", uuid::Uuid::now_v7().simple());
        let opts = Options {
            source: SOURCE.into(),
            run_id: run_id.clone(),
            now,
            route_team: TeamId(args.route_team.clone()),
            legacy_prefix: args.legacy_prefix.clone(),
            invitation_hours: args.invitation_hours,
            resolutions,
        };
        let plan = plan::plan(&old, &existing, &key, &opts);
        // The plan holds everything the apply needs (the usage rows come from the cursor);
        // the old rows need not stay in memory beside it.
        drop(old);
        let unresolved = plan.unresolved();
        // With --json the plan is written once, with the report, below.
        if !args.json {
            write_plan(out, &plan, args.dry_run)?;
        }
        if args.dry_run || unresolved > 0 {
            if args.json {
                writeln!(out, "{}", json_report(&plan, args.dry_run, None))?;
            }
            if unresolved > 0 {
                if !args.json {
                    writeln!(
                        out,
                        "\n{unresolved} problem(s) unresolved: nothing {}. Resolve each class with --resolve CLASS=ACTION (--list-classes), or fix the old rows, and run again.",
                        if args.dry_run {
                            "would be written"
                        } else {
                            "was written"
                        }
                    )?;
                }
                return Ok(Outcome::Refused);
            }
            if !args.json {
                writeln!(out, "\ndry run: nothing written.")?;
            }
            return Ok(Outcome::Planned);
        }
        if !plan.has_changes() {
            if args.json {
                writeln!(
                    out,
                    "{}",
                    json_report(&plan, false, Some(&Applied::default()))
                )?;
            } else {
                writeln!(
                    out,
                    "\nnothing changed in the old system since the last run; nothing written."
                )?;
            }
            return Ok(Outcome::Applied);
        }
        write_invitations(&args.invitations_out, &plan)?;
        let ctx = RequestContext {
            request_id: run_id.clone(),
            actor: Actor {
                kind: "import",
                id: run_id.clone(),
                name: "keygate import old-system".into(),
            },
            source_ip: String::new(),
            user_agent: "keygate-import".into(),
        };
        let progress = progress_line(args.json);
        let mut feed = match (cursor.as_mut(), plan.usage.as_ref()) {
            (Some(cursor), Some(map)) => Some(OldUsageFeed {
                cursor,
                map,
                chunk: args.usage_chunk_rows,
                done: 0,
                total: plan.usage_rows,
            }),
            _ => None,
        };
        let applied = store
            .apply_import(&ctx, &plan.batch, feed.as_mut().map(|f| f as &mut dyn UsageFeed), &progress)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "applying the import failed; nothing was written (the run is one transaction): {e}"
                )
            })?;
        if args.json {
            writeln!(out, "{}", json_report(&plan, false, Some(&applied)))?;
        } else {
            writeln!(
                out,
                "\napplied run {run_id}: {} audit rows, {} change events (revision {}). kv-sync pushes the changes to the KV store.",
                applied.audit_rows, applied.change_events, applied.head_revision
            )?;
            if !plan.invitation_codes.is_empty() {
                writeln!(
                    out,
                    "{} invitation code(s) written to {} (mode 0600): send each person theirs.",
                    plan.invitation_codes.len(),
                    args.invitations_out.display()
                )?;
            }
            if plan
                .batch
                .tokens
                .iter()
                .any(|t| matches!(t, super::TokenOp::Create { .. }))
            {
                writeln!(
                    out,
                    "Imported tokens keep their {}_ keys: run every gateway with KEYGATE_LEGACY_PREFIXES={} until `keygate token list --legacy` is empty (docs/migrating.md).",
                    args.legacy_prefix, args.legacy_prefix
                )?;
            }
        }
        Ok(Outcome::Applied)
    }
    .await;
    if let Some(c) = cursor {
        c.close().await;
    }
    outcome
}

/// The old usage rows as rollups, read chunk by chunk while the apply runs.
struct OldUsageFeed<'a> {
    cursor: &'a mut old::UsageCursor,
    map: &'a plan::UsageMap,
    /// Rows per chunk (`--usage-chunk-rows`).
    chunk: u32,
    done: u64,
    total: u64,
}

#[async_trait::async_trait]
impl UsageFeed for OldUsageFeed<'_> {
    async fn next_chunk(
        &mut self,
    ) -> Result<Option<Vec<(keygate_rollup::RollupKey, keygate_rollup::RollupValue)>>, String> {
        match self.cursor.next(self.chunk).await {
            Ok(Some((rows, buckets))) => {
                self.done += rows;
                Ok(Some(self.map.rollups(buckets)))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn position(&self) -> (u64, u64) {
        (self.done, self.total)
    }
}

fn names_check(args: &Args) -> anyhow::Result<()> {
    keygate_contracts::names::validate_team_id("--route-team", &args.route_team)
        .map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.rule))?;
    let p = &args.legacy_prefix;
    anyhow::ensure!(
        !p.is_empty()
            && p.len() <= 16
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "--legacy-prefix: must be 1-16 lowercase letters or digits"
    );
    Ok(())
}

fn kv_source(args: &Args) -> anyhow::Result<Option<KvSource>> {
    match (
        &args.old_kv_account,
        &args.old_kv_namespace,
        &args.old_kv_token,
    ) {
        (None, None, None) => Ok(None),
        (Some(a), Some(n), Some(t)) => Ok(Some(KvSource {
            base_url: args.old_kv_url.clone(),
            account_id: a.clone(),
            namespace_id: n.clone(),
            api_token: t.clone(),
        })),
        _ => anyhow::bail!(
            "--old-kv-account, --old-kv-namespace and --old-kv-token go together (all three, or none)"
        ),
    }
}

/// The invitation codes, CSV, created with mode 0600 (never printed).
fn write_invitations(path: &std::path::Path, plan: &Plan) -> anyhow::Result<()> {
    use anyhow::Context;
    if plan.invitation_codes.is_empty() {
        return Ok(());
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing invitation codes to {}", path.display()))?;
    writeln!(f, "email,system_admin,invitation_code")?;
    for (email, code, admin) in &plan.invitation_codes {
        writeln!(f, "{email},{admin},{}", code.expose())?;
    }
    Ok(())
}

fn write_plan(out: &mut dyn Write, plan: &Plan, dry_run: bool) -> std::io::Result<()> {
    writeln!(out, "{}", if dry_run { "PLAN (dry run)" } else { "PLAN" })?;
    writeln!(
        out,
        "  {:<16} {:>8} {:>8} {:>8} {:>10} {:>8}",
        "", "create", "update", "delete", "unchanged", "skipped"
    )?;
    for (kind, c) in &plan.counts {
        writeln!(
            out,
            "  {kind:<16} {:>8} {:>8} {:>8} {:>10} {:>8}",
            c.create, c.update, c.delete, c.unchanged, c.skipped
        )?;
    }
    if !plan.problems.is_empty() {
        writeln!(out, "\nPROBLEMS ({})", plan.problems.len())?;
        for p in &plan.problems {
            let how = match &p.resolution {
                Some(a) => format!("resolved: {a}"),
                None => {
                    let actions = CLASSES
                        .iter()
                        .find(|(c, _, _)| *c == p.class)
                        .map(|(_, a, _)| a.join("|"))
                        .unwrap_or_default();
                    format!("unresolved (--resolve {}={actions})", p.class)
                }
            };
            writeln!(
                out,
                "  {:<20} {:<22} {}  [{how}]",
                p.class, p.old_row, p.rule
            )?;
        }
    }
    if !plan.notes.is_empty() {
        writeln!(out, "\nNOTES")?;
        for n in &plan.notes {
            writeln!(out, "  {n}")?;
        }
    }
    writeln!(
        out,
        "\nThe old system's timestamps have no time zone; they were read as UTC."
    )?;
    Ok(())
}

fn json_report(plan: &Plan, dry_run: bool, applied: Option<&Applied>) -> String {
    serde_json::json!({
        "dry_run": dry_run,
        "run_id": plan.batch.run_id,
        "counts": plan.counts,
        "problems": plan.problems,
        "unresolved": plan.unresolved(),
        "notes": plan.notes,
        "usage_rows": plan.usage_rows,
        "applied": applied.map(|a| serde_json::json!({
            "audit_rows": a.audit_rows,
            "change_events": a.change_events,
            "head_revision": a.head_revision,
        })),
    })
    .to_string()
}
