//! `keygate-bench`: runs Keygate's benchmarks and prints (and optionally saves) the figures.
//! See bench/README.md for what is measured and the reference results.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use keygate_bench::control_plane::setup::{Place, Serve};
use keygate_bench::control_plane::{self, Options};
use keygate_bench::report::{self, Machine, Report};
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::ControlPlane(args) => control_plane_bench(args).await,
    }
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
