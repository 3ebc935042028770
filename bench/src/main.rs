//! `keygate-bench`: runs Keygate's benchmarks and prints (and optionally saves) the figures.
//! See bench/README.md for what is measured and the reference results.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use keygate_bench::control_plane::setup::{Place, Serve};
use keygate_bench::control_plane::{self, Options};
use keygate_bench::gateway::{self, SeedOptions};
use keygate_bench::gateway_propagation::{self as gw_prop, report as gw_report};
use keygate_bench::import as import_bench;
use keygate_bench::kv_sync::follower::FollowerKind;
use keygate_bench::kv_sync::{self, propagation, report as kv_report, throughput};
use keygate_bench::report::{self, Code, Machine, Report};
use keygate_bench::ui_seed;
use keygate_bench::usage::{self, queries as usage_queries, report as usage_report};
use keygate_control_plane::testing::{Backend, PG_ENV};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "keygate-bench",
    about = "Keygate benchmarks (load on 127.0.0.1 only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// CreateToken and ListTokens through the real gRPC server over seeded databases.
    ControlPlane(ControlPlaneArgs),
    /// kv-sync: Revoke -> local KV propagation latency, and token changes pushed into the
    /// local KV and the Cloudflare KV stand-in (follow and snapshot paths).
    KvSync(KvSyncArgs),
    /// Writes the gateway benchmark's inputs (`bench/gateway.sh` runs it): a new local KV with
    /// tokens, routes and a revision, an edge key file, and keys.txt, paths.txt and
    /// nginx-keys.map for wrk and nginx.
    GatewaySeed(GatewaySeedArgs),
    /// Revoke -> the native gateway refuses the token: control plane, the `keygate-kv-sync`
    /// and `keygate-gateway` binaries and a local upstream, one revocation at a time.
    GatewayPropagation(GatewayPropagationArgs),
    /// Usage analytics queries (summary, token detail, batch, top) through the real gRPC
    /// server over 30 days of hourly rollups for 10,000 tokens on PostgreSQL (seeded with COPY,
    /// bypassing ingestion).
    UsageQueries(UsageQueriesArgs),
    /// Bytes on disk of one hour of a gateway's usage flushes through the real IngestUsage
    /// RPC, at each request rate over the same keys.
    UsageStorage(UsageStorageArgs),
    /// Creates the admin UI benchmark's SQLite database (`admin-web/bench/ui.mjs` runs it):
    /// the control-plane data set plus last use, routes to an upstream and a few real keys;
    /// prints what the rows add up to as JSON.
    UiSeed(UiSeedArgs),
    /// `keygate import old-system` through the real binaries: an old PostgreSQL database
    /// (tokens, routes, usage rows) imported into a fresh control plane with kv-sync following
    /// it into a local KV; import wall time, peak RSS, and propagation to the KV.
    Import(ImportArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum BackendArg {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ServerArg {
    Shipped,
}

#[derive(clap::Args, Debug)]
struct ControlPlaneArgs {
    /// Storage backend(s) to measure.
    #[arg(long, value_enum, default_value = "both")]
    backend: BackendArg,
    /// Data-set sizes (tokens seeded before measuring), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    tokens: Vec<u64>,
    /// Measured CreateToken requests.
    #[arg(long, default_value_t = 5000)]
    creates: usize,
    /// Concurrent CreateToken clients (one HTTP/2 connection each).
    #[arg(long, default_value_t = 16)]
    create_concurrency: usize,
    /// Measured ListTokens requests per filter.
    #[arg(long, default_value_t = 300)]
    lists: usize,
    /// Concurrent ListTokens clients (1 measures latency without queueing).
    #[arg(long, default_value_t = 1)]
    list_concurrency: usize,
    /// ListTokens page size (1-500).
    #[arg(long, default_value_t = 100)]
    page_size: u32,
    /// Interleaved rounds the list and create requests are split into.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Wall-time cap per list filter and server, in seconds.
    #[arg(long, default_value_t = 20)]
    list_budget_secs: u64,
    /// Wall-time cap for the measured creates per server, in seconds.
    #[arg(long, default_value_t = 120)]
    create_budget_secs: u64,
    /// Client deadline of one request, in seconds.
    #[arg(long, default_value_t = 30)]
    request_timeout_secs: u64,
    /// PostgreSQL admin URL; the benchmark creates (and drops) its own databases there.
    #[arg(long, env = PG_ENV)]
    pg_url: Option<String>,
    /// Directory for the SQLite databases (default: the system temp directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep each seeded database after its case and print where it is.
    #[arg(long)]
    keep_db: bool,
    /// Which server to measure over each seeded database: `shipped` (TestServer, exactly as
    /// the control plane ships; it sets TCP_NODELAY on accepted connections).
    #[arg(long, value_enum, default_value = "shipped")]
    server: ServerArg,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PhaseArg {
    All,
    Propagation,
    Throughput,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FollowerArg {
    /// The `keygate-kv-sync` binary as a child process.
    Binary,
    /// The same follower library on the benchmark's own runtime.
    InProcess,
    /// Each of them in turn.
    Both,
}

#[derive(clap::Args, Debug)]
struct KvSyncArgs {
    /// Control-plane storage backend(s).
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: BackendArg,
    /// Which measurements to run.
    #[arg(long, value_enum, default_value = "all")]
    phase: PhaseArg,
    /// Tokens created and then revoked one at a time.
    #[arg(long, default_value_t = 1000)]
    revocations: usize,
    /// How the follower runs in the propagation phase and on the follow path into the local
    /// KV (the other throughput runs are in-process, to read the KV clients' counters). The
    /// targets are judged on the binary when it ran.
    #[arg(long, value_enum, default_value = "both")]
    follower: FollowerArg,
    /// The `keygate-kv-sync` binary (default: next to this one; build it with
    /// `cargo build --release -p keygate-kv-sync`).
    #[arg(long)]
    kv_sync_bin: Option<PathBuf>,
    /// How often the KV is read while waiting for a revoked key to go, in ms.
    #[arg(long, default_value_t = 1)]
    poll_ms: u64,
    /// Longest wait for one revoked key, in ms.
    #[arg(long, default_value_t = 5000)]
    revoke_timeout_ms: u64,
    /// Wall-time cap of the revocation loop, in seconds.
    #[arg(long, default_value_t = 300)]
    propagation_budget_secs: u64,
    /// Token changes pushed in the throughput phase.
    #[arg(long, default_value_t = 100_000)]
    changes: usize,
    /// Concurrent store calls producing them.
    #[arg(long, default_value_t = 8)]
    produce_concurrency: usize,
    /// Runs of each throughput path (the report gives every run and the median).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Wall-time cap of one throughput run into the local KV, in seconds.
    #[arg(long, default_value_t = 120)]
    local_timeout_secs: u64,
    /// Wall-time cap of one throughput run into the Cloudflare stand-in, in seconds.
    #[arg(long, default_value_t = 600)]
    cloudflare_timeout_secs: u64,
    /// Skip the Cloudflare stand-in.
    #[arg(long)]
    no_cloudflare: bool,
    /// PostgreSQL admin URL; the benchmark creates (and drops) its own databases there.
    #[arg(long, env = PG_ENV)]
    pg_url: Option<String>,
    /// Directory for the databases and KV files (default: the system temp directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct GatewaySeedArgs {
    /// The local KV file to create (must not exist).
    #[arg(long)]
    kv: PathBuf,
    /// The edge key file to create (must not exist): base64 of 32 random bytes, mode 0600.
    #[arg(long)]
    edge_key: PathBuf,
    /// Directory for keys.txt, paths.txt and nginx-keys.map.
    #[arg(long)]
    out: PathBuf,
    /// Tokens to seed.
    #[arg(long, default_value_t = 1000)]
    tokens: usize,
    /// Routes `svc000`.. to seed (at most 1000).
    #[arg(long, default_value_t = 100)]
    routes: usize,
    /// Backend URL of every route.
    #[arg(long)]
    upstream: String,
    /// Every n-th token is scoped to its route instead of `*` (0: every token holds `*`).
    #[arg(long, default_value_t = 10)]
    scoped_every: usize,
}

#[derive(clap::Args, Debug)]
struct GatewayPropagationArgs {
    /// Control-plane storage backend(s).
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: BackendArg,
    /// Tokens created and then revoked one at a time.
    #[arg(long, default_value_t = 1000)]
    revocations: usize,
    /// How often a revoked token is tried against the gateway until it is refused, in ms.
    #[arg(long, default_value_t = 5)]
    poll_ms: u64,
    /// Longest wait for one revoked token to be refused, in ms.
    #[arg(long, default_value_t = 5000)]
    revoke_timeout_ms: u64,
    /// Wall-time cap of the revocation loop, in seconds.
    #[arg(long, default_value_t = 300)]
    budget_secs: u64,
    /// `KEYGATE_GATEWAY_POLL_MS` for the gateway (how often it reads the KV's change log;
    /// 100 is the shipped default).
    #[arg(long, default_value_t = gw_prop::SHIPPED_GATEWAY_POLL_MS)]
    gateway_poll_ms: u64,
    /// Concurrent store calls creating the tokens.
    #[arg(long, default_value_t = 8)]
    create_concurrency: usize,
    /// No unmeasured pause before each revocation: each then starts just after the gateway's
    /// previous KV poll, and every sample is about one poll interval.
    #[arg(long)]
    no_spread: bool,
    /// The `keygate-kv-sync` binary (default: next to this one).
    #[arg(long)]
    kv_sync_bin: Option<PathBuf>,
    /// The `keygate-gateway` binary (default: next to this one; build it with
    /// `cargo build --release -p keygate-gateway`).
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
    /// PostgreSQL admin URL; the benchmark creates (and drops) its own databases there.
    #[arg(long, env = PG_ENV)]
    pg_url: Option<String>,
    /// Directory for the databases and KV files (default: the system temp directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct UsageQueriesArgs {
    /// PostgreSQL admin URL; the benchmark creates (and drops) its own database there.
    #[arg(long, env = PG_ENV)]
    pg_url: Option<String>,
    /// Tokens with usage.
    #[arg(long, default_value_t = 10_000)]
    tokens: u32,
    /// Days of hourly rollups up to now.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Measured requests per call.
    #[arg(long, default_value_t = 200)]
    iterations: usize,
    /// Interleaved rounds the measured requests are split into.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Unmeasured requests per call first.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Wall-time cap of one call's measured requests, in seconds.
    #[arg(long, default_value_t = 120)]
    budget_secs: u64,
    /// Client deadline of one request, in seconds.
    #[arg(long, default_value_t = 30)]
    request_timeout_secs: u64,
    /// Keep the seeded database and print its URL (for EXPLAIN).
    #[arg(long)]
    keep_db: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct UsageStorageArgs {
    /// SQLite (the default, as `./scripts/run.sh` runs the control plane).
    #[arg(long, conflicts_with = "pg_url")]
    sqlite: bool,
    /// PostgreSQL admin URL instead of SQLite; the benchmark creates (and drops) its own
    /// databases there. (Not read from the environment: SQLite is the default.)
    #[arg(long)]
    pg_url: Option<String>,
    /// Distinct (token, route, status) keys the traffic uses.
    #[arg(long, default_value_t = 1000)]
    keys: u32,
    /// Request rates per second, comma separated; each runs on a fresh database.
    #[arg(long, value_delimiter = ',', default_value = "1000,50000")]
    rate: Vec<u64>,
    /// Simulated minutes of traffic.
    #[arg(long, default_value_t = 60)]
    minutes: u32,
    /// Gateway flush interval, in seconds.
    #[arg(long, default_value_t = 10)]
    flush_secs: u32,
    /// Share of requests the gateway refuses.
    #[arg(long, default_value_t = 0.02)]
    refusal_share: f64,
    /// Refusal events kept per second (the rest are sampled out).
    #[arg(long, default_value_t = 200)]
    event_budget: u64,
    /// Bytes one request costs stored as a raw event, for the comparison.
    #[arg(long, default_value_t = 474.0)]
    bytes_per_event_row: f64,
    /// Client deadline of one request, in seconds.
    #[arg(long, default_value_t = 60)]
    request_timeout_secs: u64,
    /// Directory for the SQLite databases (default: the system temp directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep each database and print where it is.
    #[arg(long)]
    keep_db: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ImporterOutputArg {
    /// The text output: plan, problems, and progress lines on stderr (timed per phase).
    Text,
    /// `--json`: one JSON report, no progress lines.
    Json,
}

#[derive(clap::Args, Debug)]
struct ImportArgs {
    /// Tokens in the old database.
    #[arg(long, default_value_t = 100_000)]
    tokens: u32,
    /// Routes in the old database.
    #[arg(long, default_value_t = 1000)]
    routes: u32,
    /// Usage log rows in the old database (over the last 30 days).
    #[arg(long, default_value_t = 1_000_000)]
    usage_rows: u64,
    /// Keygate storage backend(s) to import into.
    #[arg(long, value_enum, default_value = "both")]
    backend: BackendArg,
    /// `--usage-days` for the importer.
    #[arg(long, default_value_t = 30)]
    usage_days: u32,
    /// `--resolve CLASS=ACTION` for the importer (repeatable; replaces the default set, which
    /// resolves every problem the bulk data has).
    #[arg(long)]
    resolve: Vec<String>,
    /// How the importer reports: text (progress lines, timed per phase) or its `--json`.
    #[arg(long, value_enum, default_value = "text")]
    importer_output: ImporterOutputArg,
    /// Where the release binaries `keygate`, `keygate-control-plane` and `keygate-kv-sync`
    /// are (`cargo build --release -p keygate-cli -p keygate-control-plane -p keygate-kv-sync`).
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// How often the KV is read while the imported tokens propagate, in ms.
    #[arg(long, default_value_t = 100)]
    poll_ms: u64,
    /// Longest wait for the propagation, in seconds.
    #[arg(long, default_value_t = 600)]
    propagation_timeout_secs: u64,
    /// Longest the importer may run, in seconds.
    #[arg(long, default_value_t = 3600)]
    import_timeout_secs: u64,
    /// PostgreSQL admin URL: the old database (and Keygate's on PostgreSQL) are created and
    /// dropped there.
    #[arg(long, env = PG_ENV)]
    pg_url: Option<String>,
    /// Directory for the data directories and KV files (default: the system temp directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

/// What the bulk old database needs resolved: routes with a bearer secret (every 4th) have
/// no old KV to read it from, `/svc1` is a raw prefix of `/svc10`, and tokens scoped to a
/// skipped route lose that scope.
const IMPORT_RESOLVE: &[&str] = &[
    "missing_secret=skip",
    "deleted_route_scope=drop",
    "path_conflict=accept",
];

#[derive(clap::Args, Debug)]
struct UiSeedArgs {
    /// The SQLite file to create (must not exist); the control plane then runs on it with
    /// `DATABASE_URL=sqlite://<file>`.
    #[arg(long)]
    db: PathBuf,
    /// Tokens to seed.
    #[arg(long, default_value_t = 10_000)]
    tokens: u64,
    /// Base URL every route's backend points at (`<url>/<route path>`).
    #[arg(long, default_value = "http://127.0.0.1:9")]
    backend_url: String,
    /// Active `*` tokens given real keys, for gateway traffic.
    #[arg(long, default_value_t = 0)]
    traffic_keys: usize,
    /// Where their plaintexts go, one a line (mode as created; delete after the run).
    #[arg(long)]
    keys_out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::ControlPlane(args) => control_plane_bench(args).await,
        Command::KvSync(args) => kv_sync_bench(args).await,
        Command::GatewaySeed(args) => gateway_seed(args).await,
        Command::GatewayPropagation(args) => gateway_propagation_bench(args).await,
        Command::UsageQueries(args) => usage_queries_bench(args).await,
        Command::UsageStorage(args) => usage_storage_bench(args).await,
        Command::UiSeed(args) => ui_seed(args).await,
        Command::Import(args) => import_bench_run(args).await,
    }
}

async fn ui_seed(a: UiSeedArgs) -> anyhow::Result<()> {
    if a.tokens == 0 || (a.traffic_keys > 0 && a.keys_out.is_none()) {
        bail!("--tokens must be at least 1; --traffic-keys needs --keys-out");
    }
    let opts = ui_seed::Options {
        db: a.db,
        tokens: a.tokens,
        backend_url: a.backend_url,
        traffic_keys: a.traffic_keys,
        keys_out: a.keys_out,
    };
    let seeded = ui_seed::run(&opts).await.context("ui-seed")?;
    println!("{}", serde_json::to_string_pretty(&seeded)?);
    Ok(())
}

/// The run's closing line: date, commit, machine, load and total time.
fn closing_line(date_utc: &str, code: &Code, machine: &Machine, started: Instant) -> String {
    format!(
        "\n{date_utc}, commit {}{}, {} CPUs ({}), kernel {}, loadavg {} -> {}, total {:.0} s",
        code.commit,
        if code.dirty { " (dirty)" } else { "" },
        machine.nproc,
        machine.cpu,
        machine.kernel,
        machine.loadavg_start,
        machine.loadavg_end,
        started.elapsed().as_secs_f64()
    )
}

fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(value)?;
    std::fs::write(path, json + "\n").with_context(|| format!("write {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

async fn usage_queries_bench(a: UsageQueriesArgs) -> anyhow::Result<()> {
    let Some(pg_url) = a.pg_url.clone() else {
        bail!(
            "usage-queries runs on PostgreSQL: set {PG_ENV} or --pg-url \
             (`source scripts/lib/pg.sh && pg_start_throwaway` starts a throwaway one)"
        );
    };
    if a.tokens < 600 || a.days == 0 || a.iterations == 0 {
        bail!(
            "--tokens must be at least 600 (batches of 500 ids), --days and --iterations at least 1"
        );
    }
    let opts = usage_queries::Options {
        tokens: a.tokens,
        days: a.days,
        iterations: a.iterations,
        rounds: a.rounds.max(1),
        warmup: a.warmup,
        batch: 500,
        budget: Duration::from_secs(a.budget_secs),
        request_timeout: Duration::from_secs(a.request_timeout_secs),
    };
    let RunStart {
        date_utc,
        command,
        code,
        load_start,
        started,
    } = RunStart::begin("usage-queries");
    let result = usage_queries::run(&pg_url, &opts, a.keep_db)
        .await
        .context("usage-queries")?;
    print!("{}", usage_report::queries_table(&result));
    let machine = Machine::describe(load_start);
    println!("{}", closing_line(&date_utc, &code, &machine, started));
    if let Some(path) = &a.json_out {
        write_json(
            path,
            &usage_report::QueriesReport {
                date_utc,
                command,
                code,
                machine,
                options: opts,
                seeding_note: usage_report::SEEDING_NOTE,
                result,
            },
        )?;
    }
    Ok(())
}

async fn usage_storage_bench(a: UsageStorageArgs) -> anyhow::Result<()> {
    let backend = if a.pg_url.is_some() && !a.sqlite {
        Backend::Postgres
    } else {
        Backend::Sqlite
    };
    if a.rate.is_empty() || a.rate.contains(&0) || a.keys < 10 || a.minutes == 0 {
        bail!("--rate needs rates of at least 1, --keys at least 10, --minutes at least 1");
    }
    if a.flush_secs == 0 || 60 % a.flush_secs != 0 {
        bail!("--flush-secs must divide a minute");
    }
    let opts = usage::storage::Options {
        backend: control_plane::backend_name(backend),
        keys: a.keys,
        rates: a.rate.clone(),
        minutes: a.minutes,
        flush_secs: a.flush_secs,
        refusal_share: a.refusal_share.clamp(0.0, 1.0),
        event_budget: a.event_budget,
        bytes_per_event_row: a.bytes_per_event_row,
        request_timeout: Duration::from_secs(a.request_timeout_secs),
    };
    let RunStart {
        date_utc,
        command,
        code,
        load_start,
        started,
    } = RunStart::begin(&format!("usage-storage ({})", opts.backend));
    let rates = usage::storage::run(
        backend,
        a.pg_url.as_deref(),
        a.work_dir.as_deref(),
        &opts,
        a.keep_db,
    )
    .await
    .context("usage-storage")?;
    print!("{}", usage_report::storage_table(&opts, &rates));
    let machine = Machine::describe(load_start);
    println!("{}", closing_line(&date_utc, &code, &machine, started));
    if let Some(path) = &a.json_out {
        write_json(
            path,
            &usage_report::StorageReport {
                date_utc,
                command,
                code,
                machine,
                options: opts,
                rates,
            },
        )?;
    }
    Ok(())
}

async fn gateway_seed(a: GatewaySeedArgs) -> anyhow::Result<()> {
    let o = SeedOptions {
        kv: a.kv,
        edge_key: a.edge_key,
        out: a.out,
        tokens: a.tokens,
        routes: a.routes,
        upstream: a.upstream,
        scoped_every: a.scoped_every,
    };
    let s = gateway::seed(&o).await.context("gateway-seed")?;
    eprintln!(
        "seeded {} tokens ({} scoped to one route, the rest `*`) and {} routes into {}; \
         edge key {}; wrk/nginx inputs in {}",
        s.tokens,
        s.route_scoped,
        s.routes,
        o.kv.display(),
        o.edge_key.display(),
        o.out.display()
    );
    Ok(())
}

async fn control_plane_bench(a: ControlPlaneArgs) -> anyhow::Result<()> {
    if !(1..=500).contains(&a.page_size) {
        bail!("--page-size must be between 1 and 500");
    }
    if a.tokens.is_empty() || a.tokens.iter().any(|&n| n < 2_100) {
        bail!("--tokens needs sizes of at least 2100 (the deep-page filter walks 20 pages)");
    }
    let backends = match a.backend {
        BackendArg::Sqlite => vec![Backend::Sqlite],
        BackendArg::Postgres => vec![Backend::Postgres],
        BackendArg::Both => vec![Backend::Sqlite, Backend::Postgres],
    };
    if backends.contains(&Backend::Postgres) && a.pg_url.is_none() {
        bail!(
            "PostgreSQL needs a server: set {PG_ENV} or --pg-url \
             (`source scripts/lib/pg.sh && pg_start_throwaway` starts a throwaway one)"
        );
    }
    let opts = Options {
        creates: a.creates,
        create_concurrency: a.create_concurrency.max(1),
        lists: a.lists,
        list_concurrency: a.list_concurrency.max(1),
        page_size: a.page_size,
        rounds: a.rounds.max(1),
        list_budget: Duration::from_secs(a.list_budget_secs),
        create_budget: Duration::from_secs(a.create_budget_secs),
        request_timeout: Duration::from_secs(a.request_timeout_secs),
    };
    let place = Place {
        pg_admin_url: a.pg_url.clone(),
        work_dir: a.work_dir.clone(),
    };
    let modes = match a.server {
        ServerArg::Shipped => vec![Serve::AsShipped],
    };
    let date_utc = keygate_control_plane::time::rfc3339(keygate_control_plane::time::now_ms());
    let command = redacted_command();
    let load_start = report::loadavg();
    let started = Instant::now();
    eprintln!("keygate-bench control-plane, {date_utc}, loadavg {load_start}");

    let mut cases = Vec::new();
    for &backend in &backends {
        for &tokens in &a.tokens {
            eprintln!(
                "\n[{:>6.1} s] case {} {}",
                started.elapsed().as_secs_f64(),
                control_plane::backend_name(backend),
                report::size_label(tokens)
            );
            let case = control_plane::run_case(backend, tokens, &place, &opts, &modes, a.keep_db)
                .await
                .with_context(|| {
                    format!("case {} {tokens}", control_plane::backend_name(backend))
                })?;
            print!("{}", report::case_table(&case, &opts));
            cases.push(case);
        }
    }
    print!("{}", report::scaling_table(&cases));
    let targets = report::targets(&cases);
    println!();
    for t in &targets {
        println!("{}", t.line);
    }
    let machine = Machine::describe(load_start);
    println!(
        "\n{date_utc}, {} CPUs ({}), kernel {}, loadavg {} -> {}, total {:.0} s",
        machine.nproc,
        machine.cpu,
        machine.kernel,
        machine.loadavg_start,
        machine.loadavg_end,
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &a.json_out {
        let report = Report {
            date_utc,
            command,
            machine,
            options: opts,
            cases,
            targets,
        };
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn kv_sync_bin(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("keygate-kv-sync"),
    };
    if !path.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release -p keygate-kv-sync`, pass \
             --kv-sync-bin, or use --follower in-process",
            path.display()
        );
    }
    Ok(path)
}

async fn kv_sync_bench(a: KvSyncArgs) -> anyhow::Result<()> {
    keygate_logging::init_stderr("warn", keygate_logging::Format::Text);
    let backends = match a.backend {
        BackendArg::Sqlite => vec![Backend::Sqlite],
        BackendArg::Postgres => vec![Backend::Postgres],
        BackendArg::Both => vec![Backend::Sqlite, Backend::Postgres],
    };
    if backends.contains(&Backend::Postgres) && a.pg_url.is_none() {
        bail!(
            "PostgreSQL needs a server: set {PG_ENV} or --pg-url \
             (`source scripts/lib/pg.sh && pg_start_throwaway` starts a throwaway one)"
        );
    }
    let run_propagation = a.phase != PhaseArg::Throughput;
    let run_throughput = a.phase != PhaseArg::Propagation;
    if run_propagation && a.revocations == 0 {
        bail!("--revocations must be at least 1");
    }
    if run_throughput && a.changes == 0 {
        bail!("--changes must be at least 1");
    }
    let kinds = match a.follower {
        FollowerArg::Binary => vec![FollowerKind::Binary(kv_sync_bin(a.kv_sync_bin)?)],
        FollowerArg::InProcess => vec![FollowerKind::InProcess],
        FollowerArg::Both => vec![
            FollowerKind::Binary(kv_sync_bin(a.kv_sync_bin)?),
            FollowerKind::InProcess,
        ],
    };
    let prop_opts: Vec<propagation::Options> = if run_propagation {
        kinds
            .iter()
            .map(|k| propagation::Options {
                revocations: a.revocations,
                follower: k.clone(),
                poll: Duration::from_millis(a.poll_ms.max(1)),
                per_key_timeout: Duration::from_millis(a.revoke_timeout_ms),
                budget: Duration::from_secs(a.propagation_budget_secs),
                create_concurrency: a.produce_concurrency.max(1),
            })
            .collect()
    } else {
        Vec::new()
    };
    let tp_opts = run_throughput.then(|| throughput::Options {
        changes: a.changes,
        produce_concurrency: a.produce_concurrency.max(1),
        repeats: a.repeats.max(1),
        local_timeout: Duration::from_secs(a.local_timeout_secs),
        cloudflare_timeout: Duration::from_secs(a.cloudflare_timeout_secs),
        cloudflare: !a.no_cloudflare,
        poll: Duration::from_millis(a.poll_ms.max(1)),
        local_followers: kinds.clone(),
    });
    let place = Place {
        pg_admin_url: a.pg_url.clone(),
        work_dir: a.work_dir.clone(),
    };
    let date_utc = keygate_control_plane::time::rfc3339(keygate_control_plane::time::now_ms());
    let command = redacted_command();
    let load_start = report::loadavg();
    let started = Instant::now();
    eprintln!("keygate-bench kv-sync, {date_utc}, loadavg {load_start}");

    let mut cases = Vec::new();
    for &backend in &backends {
        let name = kv_sync::backend_name(backend);
        let mut case = kv_sync::Case {
            backend: name,
            propagation: Vec::new(),
            throughput: None,
        };
        for o in &prop_opts {
            eprintln!(
                "\n[{:>6.1} s] {name}: propagation, {} revocations, {} follower",
                started.elapsed().as_secs_f64(),
                o.revocations,
                o.follower.label()
            );
            let p = propagation::run(backend, &place, o)
                .await
                .with_context(|| format!("propagation on {name}"))?;
            print!("{}", kv_report::propagation_table(name, &p));
            case.propagation.push(p);
        }
        if let Some(o) = &tp_opts {
            eprintln!(
                "\n[{:>6.1} s] {name}: throughput, {} changes, {} repeat(s)",
                started.elapsed().as_secs_f64(),
                o.changes,
                o.repeats
            );
            let t = throughput::run(backend, &place, o)
                .await
                .with_context(|| format!("throughput on {name}"))?;
            print!("{}", kv_report::throughput_table(name, &t));
            case.throughput = Some(t);
        }
        cases.push(case);
    }
    let targets = kv_report::targets(&cases);
    println!();
    for t in &targets {
        println!("{}", t.line);
    }
    let machine = Machine::describe(load_start);
    println!(
        "\n{date_utc}, {} CPUs ({}), kernel {}, loadavg {} -> {}, total {:.0} s",
        machine.nproc,
        machine.cpu,
        machine.kernel,
        machine.loadavg_start,
        machine.loadavg_end,
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &a.json_out {
        let report = kv_report::KvSyncReport {
            date_utc,
            command,
            machine,
            options: kv_report::RunOptions {
                propagation: prop_opts,
                throughput: tp_opts,
            },
            cases,
            targets,
        };
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn gateway_bin(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("keygate-gateway"),
    };
    if !path.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release -p keygate-gateway` or pass \
             --gateway-bin",
            path.display()
        );
    }
    Ok(path)
}

async fn gateway_propagation_bench(a: GatewayPropagationArgs) -> anyhow::Result<()> {
    let backends = match a.backend {
        BackendArg::Sqlite => vec![Backend::Sqlite],
        BackendArg::Postgres => vec![Backend::Postgres],
        BackendArg::Both => vec![Backend::Sqlite, Backend::Postgres],
    };
    if backends.contains(&Backend::Postgres) && a.pg_url.is_none() {
        bail!(
            "PostgreSQL needs a server: set {PG_ENV} or --pg-url \
             (`source scripts/lib/pg.sh && pg_start_throwaway` starts a throwaway one)"
        );
    }
    if a.revocations == 0 {
        bail!("--revocations must be at least 1");
    }
    if !(10..=60_000).contains(&a.gateway_poll_ms) {
        bail!("--gateway-poll-ms must be between 10 and 60000 (what the gateway accepts)");
    }
    let opts = gw_prop::Options {
        revocations: a.revocations,
        kv_sync_bin: kv_sync_bin(a.kv_sync_bin)?,
        gateway_bin: gateway_bin(a.gateway_bin)?,
        gateway_poll_ms: a.gateway_poll_ms,
        poll: Duration::from_millis(a.poll_ms.max(1)),
        per_key_timeout: Duration::from_millis(a.revoke_timeout_ms),
        budget: Duration::from_secs(a.budget_secs),
        create_concurrency: a.create_concurrency.max(1),
        spread: !a.no_spread,
    };
    let place = Place {
        pg_admin_url: a.pg_url.clone(),
        work_dir: a.work_dir.clone(),
    };
    let date_utc = keygate_control_plane::time::rfc3339(keygate_control_plane::time::now_ms());
    let command = redacted_command();
    let code = Code::describe();
    let load_start = report::loadavg();
    let started = Instant::now();
    eprintln!(
        "keygate-bench gateway-propagation, {date_utc}, commit {}{}, loadavg {load_start}",
        code.commit,
        if code.dirty {
            " (+ uncommitted changes)"
        } else {
            ""
        }
    );

    let mut results = Vec::new();
    for &backend in &backends {
        let name = kv_sync::backend_name(backend);
        eprintln!(
            "\n[{:>6.1} s] {name}: {} revocations, gateway KV poll {} ms, probe every {} ms",
            started.elapsed().as_secs_f64(),
            opts.revocations,
            opts.gateway_poll_ms,
            opts.poll.as_millis()
        );
        let r = gw_prop::run(backend, &place, &opts)
            .await
            .with_context(|| format!("gateway propagation on {name}"))?;
        print!("{}", gw_report::table(&r));
        results.push(r);
    }
    let targets: Vec<_> = results.iter().map(gw_report::target).collect();
    println!();
    for t in &targets {
        println!("{}", t.line);
    }
    let machine = Machine::describe(load_start);
    println!(
        "\n{date_utc}, commit {}{}, {} CPUs ({}), kernel {}, loadavg {} -> {}, total {:.0} s",
        code.commit,
        if code.dirty { " (dirty)" } else { "" },
        machine.nproc,
        machine.cpu,
        machine.kernel,
        machine.loadavg_start,
        machine.loadavg_end,
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &a.json_out {
        let report = gw_report::GatewayPropagationReport {
            date_utc,
            command,
            code,
            machine,
            options: opts,
            results,
            targets,
        };
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The `--json-out` document of `keygate-bench import`.
#[derive(serde::Serialize)]
struct ImportReport {
    date_utc: String,
    command: String,
    code: Code,
    machine: Machine,
    options: import_bench::Options,
    results: Vec<import_bench::ImportResult>,
    /// Backends whose run failed, and why.
    errors: Vec<(&'static str, String)>,
}

async fn import_bench_run(a: ImportArgs) -> anyhow::Result<()> {
    let Some(pg_url) = a.pg_url.clone() else {
        bail!(
            "import reads the old system from PostgreSQL: set {PG_ENV} or --pg-url \
             (`source scripts/lib/pg.sh && pg_start_throwaway` starts a throwaway one)"
        );
    };
    if a.tokens == 0 || a.routes == 0 {
        bail!("--tokens and --routes must be at least 1");
    }
    for bin in ["keygate", "keygate-control-plane", "keygate-kv-sync"] {
        let p = a.bin_dir.join(bin);
        if !p.exists() {
            bail!(
                "{} is missing: cargo build --release -p keygate-cli -p keygate-control-plane \
                 -p keygate-kv-sync (or give --bin-dir)",
                p.display()
            );
        }
    }
    let bin_dir = std::fs::canonicalize(&a.bin_dir)
        .with_context(|| format!("--bin-dir {}", a.bin_dir.display()))?;
    let opts = import_bench::Options {
        tokens: a.tokens,
        routes: a.routes,
        usage_rows: a.usage_rows,
        usage_days: a.usage_days,
        resolve: if a.resolve.is_empty() {
            IMPORT_RESOLVE.iter().map(|s| (*s).to_owned()).collect()
        } else {
            a.resolve.clone()
        },
        importer_output: match a.importer_output {
            ImporterOutputArg::Text => import_bench::ImporterOutput::Text,
            ImporterOutputArg::Json => import_bench::ImporterOutput::Json,
        },
        bin_dir,
        poll: Duration::from_millis(a.poll_ms.max(1)),
        propagation_timeout: Duration::from_secs(a.propagation_timeout_secs),
        import_timeout: Duration::from_secs(a.import_timeout_secs),
    };
    let backends = match a.backend {
        BackendArg::Sqlite => vec![Backend::Sqlite],
        BackendArg::Postgres => vec![Backend::Postgres],
        BackendArg::Both => vec![Backend::Sqlite, Backend::Postgres],
    };
    let RunStart {
        date_utc,
        command,
        code,
        load_start,
        started,
    } = RunStart::begin("import");
    let mut results = Vec::new();
    let mut failed = Vec::new();
    let mut errors = Vec::new();
    for &backend in &backends {
        let name = control_plane::backend_name(backend);
        eprintln!("\n[{:>6.1} s] {name}", started.elapsed().as_secs_f64());
        match import_bench::run(backend, &pg_url, a.work_dir.as_deref(), &opts).await {
            Ok(r) => {
                print!("{}", import_bench::table(&r, &opts));
                if !r.tokens_ok {
                    failed.push(name);
                }
                results.push(r);
            }
            Err(e) => {
                println!("\n== import from the old system - {name}: FAILED: {e}");
                failed.push(name);
                errors.push((name, e.to_string()));
            }
        }
    }
    let machine = Machine::describe(load_start);
    println!("{}", closing_line(&date_utc, &code, &machine, started));
    if let Some(path) = &a.json_out {
        write_json(
            path,
            &ImportReport {
                date_utc,
                command,
                code,
                machine,
                options: opts,
                results,
                errors,
            },
        )?;
    }
    if !failed.is_empty() {
        bail!(
            "failed, or imported tokens are not --tokens {}, on {failed:?}",
            a.tokens
        );
    }
    Ok(())
}

/// What every benchmark run records about its start: when, the command, the code, the load.
struct RunStart {
    date_utc: String,
    command: String,
    code: Code,
    load_start: String,
    started: Instant,
}

impl RunStart {
    /// Records the start and prints `keygate-bench <title>, <date>, commit <c>[ (dirty)],
    /// loadavg <l>`.
    fn begin(title: &str) -> Self {
        let date_utc = keygate_control_plane::time::rfc3339(keygate_control_plane::time::now_ms());
        let code = Code::describe();
        let load_start = report::loadavg();
        eprintln!(
            "keygate-bench {title}, {date_utc}, commit {}{}, loadavg {load_start}",
            code.commit,
            if code.dirty { " (dirty)" } else { "" }
        );
        Self {
            date_utc,
            command: redacted_command(),
            code,
            load_start,
            started: Instant::now(),
        }
    }
}

/// The command line, without the value of `--pg-url` (it may hold a password).
fn redacted_command() -> String {
    let mut out = Vec::new();
    let mut hide_next = false;
    for arg in std::env::args() {
        if hide_next {
            out.push("<redacted>".to_owned());
            hide_next = false;
        } else if arg == "--pg-url" {
            out.push(arg);
            hide_next = true;
        } else if arg.starts_with("--pg-url=") {
            out.push("--pg-url=<redacted>".to_owned());
        } else {
            out.push(arg);
        }
    }
    out.join(" ")
}
