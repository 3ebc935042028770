//! Throughput: `changes` token changes into the local SQLite KV and into the Cloudflare KV
//! stand-in, by both paths kv-sync has. The batch windows are the shipped ones (20 ms for
//! SQLite, 1 s for Cloudflare). The follow path into the local KV runs once per follower kind
//! asked for (the `keygate-kv-sync` binary as a child process, and/or the in-process
//! `Follower`); everything else runs the follower in-process, so the Cloudflare client's
//! counters and the calls into each KV can be read.
//!
//! One control plane per case. Before anything is produced, `repeats` local KVs and
//! `repeats` stand-ins are each brought to the current revision by a follower's own snapshot
//! reconcile (so each holds a checkpoint, as a follower that was running would). Then
//! `changes` tokens are created through the store (one change event each; timed on its own)
//! while every follower is stopped. Each repeat then measures:
//!
//! - follow, local: start the follower (spawn the binary on the KV file, or run the
//!   in-process one); time until its checkpoint (written after each batch) reaches the head
//!   revision, i.e. until all `changes` changes are in the KV, reading the KV file every
//!   `poll`;
//! - follow, Cloudflare: the same into its stand-in (default client limits: 10,000 items per
//!   bulk call, 1,200 requests per 5 minutes; the stand-in enforces the same rate limit);
//! - snapshot, local: `Follower::reconcile` of the `changes` live tokens into an empty KV;
//! - snapshot, Cloudflare: the same into an empty stand-in.
//!
//! Every run ends by checking the KV holds exactly `changes` token keys and the checkpoint is
//! at the head.

use super::follower::{ChildFollower, FollowerKind};
use super::metered::{Metered, Tally, stats_delta};
use super::plane::{Plane, poll_until};
use crate::BenchError;
use crate::control_plane::setup::Place;
use keygate_control_plane::testing::Backend;
use keygate_kv::{KvBackend, KvStats, SqliteKv};
use keygate_kv_cloudflare::{CloudflareConfig, CloudflareKv};
use keygate_kv_record as rec;
use keygate_kv_standin::{StandIn, StandInConfig};
use keygate_kv_sync::follow::Follower;
use keygate_kv_sync::plan;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The follower's batch window for Workers KV, as `keygate-kv-sync` ships it.
pub const CLOUDFLARE_BATCH_WINDOW: Duration = Duration::from_secs(1);
/// Items per bulk call of the Cloudflare client (its default, the API maximum).
pub const BULK_ITEMS: u64 = 10_000;

const CF_TOKEN: &str = "bench-cf-api-token";
const CF_ACCOUNT: &str = "0123456789abcdef0123456789abcdef";
const CF_NAMESPACE: &str = "fedcba9876543210fedcba9876543210";

#[derive(Debug, Clone, Serialize)]
pub struct Options {
    pub changes: usize,
    pub produce_concurrency: usize,
    pub repeats: usize,
    /// Wall-time cap of one run into the local KV.
    pub local_timeout: Duration,
    /// Wall-time cap of one run into the stand-in.
    pub cloudflare_timeout: Duration,
    /// Measure the Cloudflare stand-in too.
    pub cloudflare: bool,
    /// How often the follower's applied revision is read while waiting.
    pub poll: Duration,
    /// How the follower runs on the follow path into the local KV (each is measured).
    pub local_followers: Vec<FollowerKind>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Produce {
    pub concurrency: usize,
    pub wall_secs: f64,
    pub per_sec: f64,
    pub head_before: i64,
    pub head_after: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThroughputResult {
    pub changes: usize,
    pub produce: Produce,
    pub runs: Vec<PathRun>,
}

/// Where a run wrote.
pub const LOCAL: &str = "local SQLite KV";
pub const CLOUDFLARE: &str = "Cloudflare stand-in";
/// Which path.
pub const FOLLOW: &str = "follow";
pub const SNAPSHOT: &str = "snapshot";

/// The stand-in's view of one run.
#[derive(Debug, Clone, Serialize)]
pub struct StandInCounts {
    /// Requests per API route.
    pub routes: BTreeMap<String, u64>,
    /// Requests it refused with its rate limit (429, code 971).
    pub rate_limited: u64,
    /// Requests that wrote the checkpoint key.
    pub checkpoint_writes: usize,
    /// Closest two writes of one key, in ms (Cloudflare allows one per second).
    pub min_write_gap_ms: Option<f64>,
}

/// The request budget: at most `ceil(N / 10,000)` bulk calls plus retries.
#[derive(Debug, Clone, Serialize)]
pub struct BulkCheck {
    /// Pairs written and keys deleted by data calls (checkpoints not included).
    pub pairs: u64,
    pub deletes: u64,
    /// Bulk write and delete requests of data calls (every attempt).
    pub bulk_writes: u64,
    pub bulk_deletes: u64,
    /// Retries of data calls.
    pub retries: u64,
    /// `ceil(pairs / 10,000) + ceil(deletes / 10,000) + retries`.
    pub allowed: u64,
    /// The fewest bulk requests the follower's calls allowed: each batch is its own call, so
    /// each batch's last bulk request may be partly filled.
    pub per_call_minimum: u64,
    /// Checkpoint writes (one bulk write each, plus retries), counted apart.
    pub checkpoint_bulk_writes: u64,
    pub checkpoint_retries: u64,
    pub ok: bool,
}

impl BulkCheck {
    fn of(t: &Tally) -> Self {
        let d = &t.data;
        let allowed =
            d.puts.div_ceil(BULK_ITEMS) + d.deletes.div_ceil(BULK_ITEMS) + d.stats.retries;
        Self {
            pairs: d.puts,
            deletes: d.deletes,
            bulk_writes: d.stats.bulk_writes,
            bulk_deletes: d.stats.bulk_deletes,
            retries: d.stats.retries,
            allowed,
            per_call_minimum: d.min_bulk_requests,
            checkpoint_bulk_writes: t.checkpoint.stats.bulk_writes,
            checkpoint_retries: t.checkpoint.stats.retries,
            ok: d.stats.bulk_writes + d.stats.bulk_deletes <= allowed,
        }
    }
}

/// One measured run.
#[derive(Debug, Clone, Serialize)]
pub struct PathRun {
    pub repeat: usize,
    pub kv: &'static str,
    pub path: &'static str,
    /// [`FollowerKind::label`] of the follower that ran.
    pub follower: &'static str,
    pub batch_window_ms: u64,
    pub from_revision: i64,
    pub to_revision: i64,
    pub wall_secs: f64,
    /// Token changes (follow) or live tokens (snapshot) per second of wall time.
    pub per_sec: f64,
    /// Batches the follower applied (follow path; a snapshot is one batch).
    pub batches: u64,
    /// Follow rounds that failed and were retried.
    pub follower_errors: u64,
    /// The follower's calls into the KV (in-process followers only).
    pub tally: Tally,
    /// The KV client's own counters over the run (for the binary: from its `/metrics`,
    /// which has requests, retries and throttled).
    pub kv_stats: KvStats,
    pub standin: Option<StandInCounts>,
    pub bulk_check: Option<BulkCheck>,
    /// Token keys in the KV after the run, and the checkpoint.
    pub token_keys: usize,
    pub checkpoint: Option<i64>,
    /// `token_keys == changes` and `checkpoint == to_revision`.
    pub verified: bool,
}

/// One repeat's KVs for the follow path, each at the revision before the changes.
struct Prepared {
    /// One local KV per follower kind.
    locals: Vec<(FollowerKind, Target)>,
    cf: Option<Target>,
}

/// A KV under test with its follower.
struct Target {
    kv_name: &'static str,
    window: Duration,
    metered: Arc<Metered>,
    follower: Arc<Follower>,
    place: Store,
}

enum Store {
    Local {
        dir: TempDir,
        kv: Arc<SqliteKv>,
    },
    Cloudflare {
        standin: StandIn,
        client: Arc<CloudflareKv>,
    },
}

impl Target {
    async fn local(plane: &Plane, place: &Place, label: &str) -> Result<Self, BenchError> {
        let mut b = tempfile::Builder::new();
        b.prefix("keygate-bench-kv-local-");
        let dir = match &place.work_dir {
            Some(w) => b.tempdir_in(w),
            None => b.tempdir(),
        }
        .map_err(|e| BenchError::Setup(format!("temp dir: {e}")))?;
        let kv = Arc::new(
            SqliteKv::open(&dir.path().join("kv.db"))
                .await
                .map_err(|e| BenchError::Setup(format!("local KV: {e}")))?,
        );
        let metered = Arc::new(Metered::new(kv.clone(), u64::MAX));
        let follower = follower(
            plane,
            metered.clone(),
            label,
            super::propagation::LOCAL_BATCH_WINDOW,
        )?;
        Ok(Self {
            kv_name: LOCAL,
            window: super::propagation::LOCAL_BATCH_WINDOW,
            metered,
            follower,
            place: Store::Local { dir, kv },
        })
    }

    async fn cloudflare(plane: &Plane, label: &str) -> Result<Self, BenchError> {
        let standin = StandIn::start(StandInConfig::new(CF_TOKEN, CF_ACCOUNT, CF_NAMESPACE))
            .await
            .map_err(|e| BenchError::Setup(format!("stand-in: {e}")))?;
        let mut cfg = CloudflareConfig::new(CF_ACCOUNT, CF_NAMESPACE, CF_TOKEN);
        cfg.base_url = standin.url();
        let client = Arc::new(
            CloudflareKv::new(cfg).map_err(|e| BenchError::Setup(format!("cloudflare kv: {e}")))?,
        );
        let metered = Arc::new(Metered::new(client.clone(), BULK_ITEMS));
        let follower = follower(plane, metered.clone(), label, CLOUDFLARE_BATCH_WINDOW)?;
        Ok(Self {
            kv_name: CLOUDFLARE,
            window: CLOUDFLARE_BATCH_WINDOW,
            metered,
            follower,
            place: Store::Cloudflare { standin, client },
        })
    }

    fn stats(&self) -> KvStats {
        match &self.place {
            Store::Local { kv, .. } => kv.stats(),
            Store::Cloudflare { client, .. } => client.stats(),
        }
    }

    /// Token keys held and the checkpoint, read from the store itself (for the stand-in its
    /// own memory, so the check costs the client no requests).
    async fn contents(&self) -> Result<(usize, Option<i64>), BenchError> {
        match &self.place {
            Store::Local { kv, .. } => {
                let keys = kv
                    .list_keys(rec::TOKEN_PREFIX)
                    .await
                    .map_err(|e| BenchError::Setup(format!("reading the KV: {e}")))?;
                let cp = kv
                    .get(rec::REVISION_KEY)
                    .await
                    .map_err(|e| BenchError::Setup(format!("reading the KV: {e}")))?
                    .and_then(|b| plan::read_checkpoint(&b));
                Ok((keys.len(), cp))
            }
            Store::Cloudflare { standin, .. } => {
                let held = standin.snapshot();
                let n = held
                    .keys()
                    .filter(|k| k.starts_with(rec::TOKEN_PREFIX))
                    .count();
                let cp = held
                    .get(rec::REVISION_KEY)
                    .and_then(|b| plan::read_checkpoint(b));
                Ok((n, cp))
            }
        }
    }

    fn standin(&self) -> Option<&StandIn> {
        match &self.place {
            Store::Cloudflare { standin, .. } => Some(standin),
            Store::Local { .. } => None,
        }
    }

    async fn shutdown(self) {
        if let Store::Cloudflare { standin, .. } = self.place {
            standin.shutdown().await;
        }
    }
}

fn follower(
    plane: &Plane,
    kv: Arc<Metered>,
    label: &str,
    window: Duration,
) -> Result<Arc<Follower>, BenchError> {
    let kv: Arc<dyn KvBackend> = kv;
    Ok(Arc::new(
        Follower::new(
            &plane.url(),
            &plane.sync_key,
            kv,
            format!("bench-{label}"),
            Duration::from_secs(10),
            None,
        )
        .map_err(|e| BenchError::Setup(e.to_string()))?
        .with_batch_window(window),
    ))
}

/// Runs the throughput benchmark on a fresh control plane of `backend`.
pub async fn run(
    backend: Backend,
    place: &Place,
    opts: &Options,
) -> Result<ThroughputResult, BenchError> {
    let plane = Plane::start(backend, place).await?;
    eprintln!("  control plane on {}", plane.url());
    let out = measure(&plane, place, opts).await;
    plane.stop().await?;
    out
}

async fn measure(
    plane: &Plane,
    place: &Place,
    opts: &Options,
) -> Result<ThroughputResult, BenchError> {
    let repeats = opts.repeats.max(1);
    eprintln!(
        "  preparing {repeats} local KV(s){} at the current revision (snapshot reconcile)",
        if opts.cloudflare {
            format!(" and {repeats} stand-in(s)")
        } else {
            String::new()
        }
    );
    let mut follows: Vec<Prepared> = Vec::with_capacity(repeats);
    for r in 0..repeats {
        let mut locals = Vec::new();
        for kind in &opts.local_followers {
            let label = format!("local-follow-{}-{r}", kind.label());
            let local = Target::local(plane, place, &label).await?;
            local.follower.reconcile().await.map_err(follow_err)?;
            locals.push((kind.clone(), local));
        }
        let cf = if opts.cloudflare {
            let cf = Target::cloudflare(plane, &format!("cf-follow-{r}")).await?;
            cf.follower.reconcile().await.map_err(follow_err)?;
            Some(cf)
        } else {
            None
        };
        follows.push(Prepared { locals, cf });
    }

    eprintln!(
        "  producing {} token changes through the store ({} concurrent), followers stopped",
        opts.changes, opts.produce_concurrency
    );
    let produced = plane
        .create_tokens(opts.changes, opts.produce_concurrency, "producing")
        .await?;
    let produce = Produce {
        concurrency: opts.produce_concurrency,
        wall_secs: produced.wall.as_secs_f64(),
        per_sec: opts.changes as f64 / produced.wall.as_secs_f64().max(1e-9),
        head_before: produced.head_before,
        head_after: produced.head_after,
    };
    drop(produced.tokens);
    let head = produce.head_after;

    let mut runs = Vec::new();
    for (r, Prepared { locals, cf }) in follows.into_iter().enumerate() {
        for (kind, local) in locals {
            let run = match &kind {
                FollowerKind::Binary(bin) => {
                    follow_binary(r, local, bin, plane, head, opts).await?
                }
                FollowerKind::InProcess => follow(r, local, head, opts).await?,
            };
            report_progress(&run);
            runs.push(run);
        }
        if let Some(cf) = cf {
            let run = follow(r, cf, head, opts).await?;
            report_progress(&run);
            runs.push(run);
        }
        let local = Target::local(plane, place, &format!("local-snapshot-{r}")).await?;
        let run = snapshot(r, local, opts).await?;
        report_progress(&run);
        runs.push(run);
        if opts.cloudflare {
            let cf = Target::cloudflare(plane, &format!("cf-snapshot-{r}")).await?;
            let run = snapshot(r, cf, opts).await?;
            report_progress(&run);
            runs.push(run);
        }
    }
    Ok(ThroughputResult {
        changes: opts.changes,
        produce,
        runs,
    })
}

fn follow_err(e: keygate_kv_sync::follow::FollowError) -> BenchError {
    BenchError::Setup(format!("follower: {e}"))
}

fn report_progress(r: &PathRun) {
    eprintln!(
        "  [{}] {} -> {} ({}): {:.2} s ({:.0}/s), {} batches, {} KV requests{}{}",
        r.repeat + 1,
        r.path,
        r.kv,
        r.follower,
        r.wall_secs,
        r.per_sec,
        r.batches,
        r.kv_stats.requests,
        if r.verified { "" } else { ", NOT VERIFIED" },
        r.bulk_check
            .as_ref()
            .map(|b| format!(
                ", data bulk writes {} (allowed {}), checkpoint writes {}",
                b.bulk_writes, b.allowed, b.checkpoint_bulk_writes
            ))
            .unwrap_or_default()
    );
}

/// Starts the stopped follower of `t` and times it to `head`.
async fn follow(
    repeat: usize,
    t: Target,
    head: i64,
    opts: &Options,
) -> Result<PathRun, BenchError> {
    let f = t.follower.clone();
    let from = f.state.applied_revision.load(Ordering::Relaxed);
    let batches0 = f.state.batches.load(Ordering::Relaxed);
    let errors0 = f.state.errors.load(Ordering::Relaxed);
    if let Some(s) = t.standin() {
        s.clear_log();
    }
    t.metered.take();
    let stats0 = t.stats();
    let timeout = if t.kv_name == CLOUDFLARE {
        opts.cloudflare_timeout
    } else {
        opts.local_timeout
    };
    let (stop, rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let task = tokio::spawn({
        let f = f.clone();
        async move { f.run(rx).await }
    });
    let reached = poll_until(
        timeout,
        opts.poll,
        "the checkpoint to reach the head",
        || {
            let f = f.clone();
            async move { (f.state.applied_revision.load(Ordering::Relaxed) >= head).then_some(()) }
        },
    )
    .await;
    let wall = started.elapsed();
    let _ = stop.send(true);
    let _ = task.await;
    reached?;
    let m = Measured {
        path: FOLLOW,
        follower: FollowerKind::InProcess.label(),
        from,
        to: head,
        wall,
        batches: f.state.batches.load(Ordering::Relaxed) - batches0,
        errors: f.state.errors.load(Ordering::Relaxed) - errors0,
        kv_stats: stats_delta(&t.stats(), &stats0),
    };
    finish(repeat, t, m, opts).await
}

/// Spawns the `keygate-kv-sync` binary on the local KV file of `t` (at its checkpoint) and
/// times it to `head`, reading the checkpoint from the file.
async fn follow_binary(
    repeat: usize,
    t: Target,
    bin: &std::path::Path,
    plane: &Plane,
    head: i64,
    opts: &Options,
) -> Result<PathRun, BenchError> {
    let Store::Local { dir, kv } = &t.place else {
        return Err(BenchError::Setup(
            "the binary follows only the local KV".into(),
        ));
    };
    let kv = kv.clone();
    let kv_path = dir.path().join("kv.db");
    let read_cp = || {
        let kv = kv.clone();
        async move {
            kv.get(rec::REVISION_KEY)
                .await
                .ok()
                .flatten()
                .and_then(|b| plan::read_checkpoint(&b))
        }
    };
    let from = read_cp().await.unwrap_or(0);
    t.metered.take();
    let started = Instant::now();
    let child = ChildFollower::spawn(
        bin,
        &plane.url(),
        &plane.sync_key,
        &kv_path,
        &format!("bench-local-follow-binary-{repeat}"),
    )
    .await?;
    let reached = poll_until(
        opts.local_timeout,
        opts.poll,
        "the checkpoint to reach the head",
        || async { (read_cp().await? >= head).then_some(()) },
    )
    .await;
    let wall = started.elapsed();
    let metrics = child.metrics().await;
    child.stop().await;
    reached?;
    let metrics = metrics?;
    let get = |name: &str| metrics.get(name).copied().unwrap_or(0.0) as u64;
    let m = Measured {
        path: FOLLOW,
        follower: FollowerKind::Binary(bin.to_owned()).label(),
        from,
        to: head,
        wall,
        batches: get("keygate_sync_batches_total"),
        errors: get("keygate_sync_errors_total"),
        kv_stats: KvStats {
            requests: get("keygate_sync_kv_requests_total"),
            retries: get("keygate_sync_kv_retries_total"),
            throttled: get("keygate_sync_kv_throttled_total"),
            ..KvStats::default()
        },
    };
    finish(repeat, t, m, opts).await
}

/// Reconciles the empty KV of `t` from a snapshot, timed.
async fn snapshot(repeat: usize, t: Target, opts: &Options) -> Result<PathRun, BenchError> {
    if let Some(s) = t.standin() {
        s.clear_log();
    }
    t.metered.take();
    let stats0 = t.stats();
    let timeout = if t.kv_name == CLOUDFLARE {
        opts.cloudflare_timeout
    } else {
        opts.local_timeout
    };
    let started = Instant::now();
    let revision = tokio::time::timeout(timeout, t.follower.reconcile())
        .await
        .map_err(|_| {
            BenchError::Setup(format!(
                "snapshot into the {} took over {:.0} s",
                t.kv_name,
                timeout.as_secs_f64()
            ))
        })?
        .map_err(follow_err)?;
    let wall = started.elapsed();
    let m = Measured {
        path: SNAPSHOT,
        follower: FollowerKind::InProcess.label(),
        from: 0,
        to: revision,
        wall,
        batches: 1,
        errors: 0,
        kv_stats: stats_delta(&t.stats(), &stats0),
    };
    finish(repeat, t, m, opts).await
}

/// What a run measured, before the KV is inspected.
struct Measured {
    path: &'static str,
    follower: &'static str,
    from: i64,
    to: i64,
    wall: Duration,
    batches: u64,
    errors: u64,
    kv_stats: KvStats,
}

async fn finish(
    repeat: usize,
    t: Target,
    m: Measured,
    opts: &Options,
) -> Result<PathRun, BenchError> {
    let tally = t.metered.take();
    let standin = t.standin().map(|s| StandInCounts {
        routes: s
            .counters()
            .into_iter()
            .map(|(r, n)| (format!("{r:?}"), n))
            .collect(),
        rate_limited: s.rate_limited(),
        checkpoint_writes: s.write_times(rec::REVISION_KEY).len(),
        min_write_gap_ms: s.min_write_gap().map(|(_, d)| d.as_secs_f64() * 1000.0),
    });
    let bulk_check = (t.kv_name == CLOUDFLARE).then(|| BulkCheck::of(&tally));
    let (token_keys, checkpoint) = t.contents().await?;
    let run = PathRun {
        repeat,
        kv: t.kv_name,
        path: m.path,
        follower: m.follower,
        batch_window_ms: t.window.as_millis() as u64,
        from_revision: m.from,
        to_revision: m.to,
        wall_secs: m.wall.as_secs_f64(),
        per_sec: opts.changes as f64 / m.wall.as_secs_f64().max(1e-9),
        batches: m.batches,
        follower_errors: m.errors,
        tally,
        kv_stats: m.kv_stats,
        standin,
        bulk_check,
        token_keys,
        checkpoint,
        verified: token_keys == opts.changes && checkpoint == Some(m.to),
    };
    t.shutdown().await;
    Ok(run)
}
