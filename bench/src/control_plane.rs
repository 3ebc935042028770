//! The control-plane benchmark: for one backend and one data-set size, seed a database in
//! bulk ([`crate::dataset`]), start the real tonic server on `127.0.0.1:0` over it
//! ([`setup`]), then measure ListTokens per filter ([`list`]) and CreateToken throughput
//! ([`create`]) through the generated gRPC client. Every phase is bounded in request count
//! and in time, and everything it starts stops with it.

pub mod create;
pub mod list;
pub mod setup;

use crate::BenchError;
use crate::stats::Summary;
use futures::future::BoxFuture;
use keygate_control_plane::testing::Backend;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};

/// Knobs of one run (the CLI's options).
#[derive(Debug, Clone, Serialize)]
pub struct Options {
    pub creates: usize,
    pub create_concurrency: usize,
    /// Measured ListTokens requests per filter.
    pub lists: usize,
    pub list_concurrency: usize,
    pub page_size: u32,
    /// List and create measurements are split into this many rounds; each round runs every
    /// filter on every server in turn, so slow drift of the machine hits all alike.
    pub rounds: usize,
    /// Wall-time cap per list filter and server (all rounds together).
    pub list_budget: Duration,
    /// Wall-time cap for the measured creates, per server (all rounds together).
    pub create_budget: Duration,
    /// Client-side deadline of one request.
    pub request_timeout: Duration,
}

/// Everything measured for one backend and size.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub backend: &'static str,
    pub tokens: u64,
    pub seed: crate::dataset::SeedTimings,
    /// One per server mode, in the order measured.
    pub runs: Vec<ServerRun>,
}

/// The figures of one server over the case's database.
#[derive(Debug, Clone, Serialize)]
pub struct ServerRun {
    /// [`serve_label`] of the mode.
    pub server: &'static str,
    pub lists: Vec<list::ListResult>,
    pub create: create::CreateResult,
}

/// A display name for `backend`.
pub fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    }
}

/// A display name for a server mode.
pub fn serve_label(how: setup::Serve) -> &'static str {
    match how {
        setup::Serve::AsShipped => "as shipped",
    }
}

/// Seeds one database, then measures it through one server per mode in `modes`, all
/// running at once: the list phase first (so every mode lists the same rows), then the
/// create phase, each interleaving the servers round by round. The servers and (unless
/// `keep_db`) the database are gone when this returns.
pub async fn run_case(
    backend: Backend,
    tokens: u64,
    place: &setup::Place,
    opts: &Options,
    modes: &[setup::Serve],
    keep_db: bool,
) -> Result<CaseResult, BenchError> {
    let seeded = setup::seed(backend, tokens, place).await?;
    let seed = seeded.seed;
    let measured = measure(&seeded, modes, opts).await;
    // Drop the database even when a phase failed.
    if let Some(url) = seeded.finish(keep_db).await? {
        eprintln!("  kept the database: {url}");
    }
    Ok(CaseResult {
        backend: backend_name(backend),
        tokens,
        seed,
        runs: measured?,
    })
}

async fn measure(
    seeded: &setup::Seeded,
    modes: &[setup::Serve],
    opts: &Options,
) -> Result<Vec<ServerRun>, BenchError> {
    let mut servers = Vec::with_capacity(modes.len());
    for &how in modes {
        let running = seeded.serve(how).await?;
        eprintln!(
            "  control plane ({}) on {}",
            serve_label(how),
            running.url()
        );
        servers.push((how, running));
    }
    let outcome = measure_servers(&servers, opts).await;
    for (_, s) in servers {
        s.stop().await;
    }
    outcome
}

async fn measure_servers(
    servers: &[(setup::Serve, setup::Running)],
    opts: &Options,
) -> Result<Vec<ServerRun>, BenchError> {
    let endpoints: Vec<(String, String)> = servers
        .iter()
        .map(|(_, s)| (s.url(), s.admin_key().to_owned()))
        .collect();
    eprintln!(
        "  ListTokens: {} filters x {} requests x {} server(s), page_size {}",
        list::FILTER_COUNT,
        opts.lists,
        servers.len(),
        opts.page_size
    );
    let lists = list::run(&endpoints, opts).await?;
    eprintln!(
        "  CreateToken: {} creates x {} server(s), {} concurrent clients",
        opts.creates,
        servers.len(),
        opts.create_concurrency
    );
    let creates = create::run(&endpoints, opts).await?;
    Ok(servers
        .iter()
        .zip(lists.into_iter().zip(creates))
        .map(|((how, _), (lists, create))| ServerRun {
            server: serve_label(*how),
            lists,
            create,
        })
        .collect())
}

/// An HTTP/2 connection to `url` with a per-request deadline.
pub async fn connect(url: &str, timeout: Duration) -> Result<Channel, BenchError> {
    Ok(Endpoint::from_shared(url.to_owned())
        .map_err(|e| BenchError::Setup(format!("bad url {url}: {e}")))?
        .timeout(timeout)
        .tcp_nodelay(true)
        .connect()
        .await?)
}

/// One request of a driven phase: `(client index, request number) -> outcome`.
pub type Step = Arc<dyn Fn(usize, usize) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// What a driven phase produced.
#[derive(Debug, Default)]
pub struct Driven {
    /// Latencies of the successful requests.
    pub latencies: Vec<Duration>,
    pub errors: usize,
    pub first_error: Option<String>,
    pub wall: Duration,
}

impl Driven {
    pub fn summary(self) -> Summary {
        crate::stats::summarise(self.latencies, self.errors, self.wall)
    }
}

/// Runs `total` requests over `clients` concurrent loops, stopping early once `budget` of
/// wall time has passed.
pub async fn drive(clients: usize, total: usize, budget: Duration, step: Step) -> Driven {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let stop_at = started + budget;
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients.max(1) {
        let next = next.clone();
        let step = step.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Driven::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total || Instant::now() >= stop_at {
                    break;
                }
                let t0 = Instant::now();
                match step(c, n).await {
                    Ok(()) => out.latencies.push(t0.elapsed()),
                    Err(e) => {
                        out.errors += 1;
                        out.first_error.get_or_insert(e);
                    }
                }
            }
            out
        }));
    }
    let mut all = Driven {
        latencies: Vec::with_capacity(total),
        ..Driven::default()
    };
    for t in tasks {
        match t.await {
            Ok(d) => all.merge(d),
            Err(e) => {
                all.errors += 1;
                all.first_error
                    .get_or_insert(format!("client task failed: {e}"));
            }
        }
    }
    all.wall = started.elapsed();
    all
}

impl Driven {
    /// Adds `other`'s requests and wall time to these.
    pub fn merge(&mut self, other: Driven) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.wall += other.wall;
    }
}
