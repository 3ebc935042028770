//! Propagation latency: a committed RevokeToken until the token's key is gone from the local
//! SQLite KV.
//!
//! A control plane on `127.0.0.1:0`, a follower writing a fresh KV file (the real
//! `keygate-kv-sync` binary as a child process, or the same `Follower` in-process; batch
//! window 20 ms as shipped), `revocations` tokens created through the store and awaited in
//! the KV. Then, one at a time: RevokeToken through the gRPC API; the instant the call returns
//! is the commit (the server answers after its transaction committed, so the figure slightly
//! overstates nothing and understates by at most the response's trip over loopback); then a
//! separate read-only connection to the KV file reads `v1/token/<hash>` every `poll` until it
//! is gone, for at most `per_key_timeout`. The next revocation starts only then, so each one
//! meets an idle follower.

use super::Latency;
use super::follower::{ChildFollower, FollowerKind};
use super::plane::{Plane, poll_until};
use crate::BenchError;
use crate::control_plane::setup::Place;
use keygate_control_plane::testing::{Backend, with_key};
use keygate_kv::{KvBackend, SqliteKv};
use keygate_kv_record as rec;
use keygate_kv_sync::follow::Follower;
use keygate_kv_sync::plan;
use keygate_proto::v1 as pb;
use keygate_proto::v1::token_service_client::TokenServiceClient;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The follower's batch window for the SQLite KV, as `keygate-kv-sync` ships.
pub const LOCAL_BATCH_WINDOW: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Serialize)]
pub struct Options {
    pub revocations: usize,
    pub follower: FollowerKind,
    /// How often the KV is read while waiting for a key to go.
    pub poll: Duration,
    pub per_key_timeout: Duration,
    /// Wall-time cap of the revocation loop.
    pub budget: Duration,
    /// Concurrent store calls when creating the tokens first.
    pub create_concurrency: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct PropagationResult {
    /// [`FollowerKind::label`].
    pub kind: &'static str,
    pub follower: String,
    pub batch_window_ms: u64,
    pub poll_ms: f64,
    /// Tokens created (and revoked) for the measurement.
    pub tokens: usize,
    pub create_secs: f64,
    /// From the last create until all tokens were in the KV.
    pub initial_sync_secs: f64,
    /// Revocations that went through (measured + timed out).
    pub revoked: usize,
    /// Commit -> gone from the KV, for the revocations that made it within the timeout.
    pub latency: Latency,
    pub timeouts: usize,
    /// The loop stopped at its time budget before revoking every token.
    pub truncated: bool,
    /// The RevokeToken call itself (client send -> response).
    pub revoke_rpc: Latency,
    /// Token keys left in the KV at the end, and how many there should be.
    pub token_keys_left: usize,
    pub token_keys_expected: usize,
}

/// A follower writing `kv_path` until stopped.
enum Running {
    Child(Box<ChildFollower>),
    InProcess {
        stop: tokio::sync::watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    },
}

impl Running {
    async fn start(kind: &FollowerKind, plane: &Plane, kv_path: &Path) -> Result<Self, BenchError> {
        match kind {
            FollowerKind::Binary(bin) => Ok(Running::Child(Box::new(
                ChildFollower::spawn(
                    bin,
                    &plane.url(),
                    &plane.sync_key,
                    kv_path,
                    "bench-propagation",
                )
                .await?,
            ))),
            FollowerKind::InProcess => {
                let kv: Arc<dyn KvBackend> =
                    Arc::new(SqliteKv::open(kv_path).await.map_err(|e| {
                        BenchError::Setup(format!("open {}: {e}", kv_path.display()))
                    })?);
                let f = Follower::new(
                    &plane.url(),
                    &plane.sync_key,
                    kv,
                    "bench-propagation".into(),
                    Duration::from_secs(10),
                    None,
                )
                .map_err(|e| BenchError::Setup(e.to_string()))?
                .with_batch_window(LOCAL_BATCH_WINDOW);
                let (stop, rx) = tokio::sync::watch::channel(false);
                let task = tokio::spawn(async move { f.run(rx).await });
                Ok(Running::InProcess { stop, task })
            }
        }
    }

    async fn stop(self) {
        match self {
            Running::Child(child) => (*child).stop().await,
            Running::InProcess { stop, task } => {
                let _ = stop.send(true);
                let _ = task.await;
            }
        }
    }
}

async fn checkpoint(kv: &SqliteKv) -> Option<i64> {
    kv.get(rec::REVISION_KEY)
        .await
        .ok()
        .flatten()
        .and_then(|b| plan::read_checkpoint(&b))
}

/// Runs the propagation benchmark on a fresh control plane of `backend`.
pub async fn run(
    backend: Backend,
    place: &Place,
    opts: &Options,
) -> Result<PropagationResult, BenchError> {
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
) -> Result<PropagationResult, BenchError> {
    let mut b = tempfile::Builder::new();
    b.prefix("keygate-bench-kv-local-");
    let dir = match &place.work_dir {
        Some(w) => b.tempdir_in(w),
        None => b.tempdir(),
    }
    .map_err(|e| BenchError::Setup(format!("temp dir: {e}")))?;
    let kv_path = dir.path().join("kv.db");
    let follower = Running::start(&opts.follower, plane, &kv_path).await?;
    eprintln!("  follower: {}", opts.follower.describe());
    let out = with_follower(plane, &kv_path, opts).await;
    follower.stop().await;
    out
}

async fn with_follower(
    plane: &Plane,
    kv_path: &Path,
    opts: &Options,
) -> Result<PropagationResult, BenchError> {
    // The follower creates the file and reconciles (an empty state) first.
    let reader = poll_until(
        Duration::from_secs(30),
        Duration::from_millis(10),
        "the follower's first checkpoint",
        || async {
            let kv = SqliteKv::open_read_only(kv_path).await.ok()?;
            checkpoint(&kv).await?;
            Some(kv)
        },
    )
    .await?;

    let n = opts.revocations;
    let produced = plane
        .create_tokens(n, opts.create_concurrency, "propagation setup")
        .await?;
    let synced_from = Instant::now();
    let head = produced.head_after;
    poll_until(
        Duration::from_secs(60),
        Duration::from_millis(5),
        "the created tokens to reach the KV",
        || async {
            if checkpoint(&reader).await? < head {
                return None;
            }
            let keys = reader.list_keys(rec::TOKEN_PREFIX).await.ok()?;
            (keys.len() == n).then_some(())
        },
    )
    .await?;
    let initial_sync = synced_from.elapsed();
    eprintln!(
        "  {n} tokens created in {:.1} s, all in the KV {:.0} ms later; revoking one at a time",
        produced.wall.as_secs_f64(),
        initial_sync.as_secs_f64() * 1000.0
    );

    let channel = crate::control_plane::connect(&plane.url(), Duration::from_secs(10)).await?;
    let mut client = TokenServiceClient::new(channel);
    let mut latencies = Vec::with_capacity(n);
    let mut rpcs = Vec::with_capacity(n);
    let mut timeouts = 0;
    let mut revoked: usize = 0;
    let mut truncated = false;
    let started = Instant::now();
    let step = n.div_ceil(10).max(1);
    for (id, hash) in &produced.tokens {
        if started.elapsed() >= opts.budget {
            truncated = true;
            break;
        }
        let key = rec::token_key(hash).map_err(|e| BenchError::Setup(e.to_string()))?;
        let sent = Instant::now();
        client
            .revoke_token(with_key(
                plane.admin_key(),
                pb::RevokeTokenRequest {
                    id: id.0.clone(),
                    reason: "kv-sync benchmark".into(),
                },
            ))
            .await
            .map_err(|s| BenchError::Rpc(Box::new(s)))?;
        let committed = Instant::now();
        rpcs.push(committed - sent);
        revoked += 1;
        let deadline = committed + opts.per_key_timeout;
        loop {
            let present = reader
                .get(&key)
                .await
                .map_err(|e| BenchError::Setup(format!("reading the KV: {e}")))?;
            if present.is_none() {
                latencies.push(committed.elapsed());
                break;
            }
            if Instant::now() >= deadline {
                timeouts += 1;
                break;
            }
            tokio::time::sleep(opts.poll).await;
        }
        if revoked.is_multiple_of(step) {
            let l = Latency::of(latencies.clone());
            eprintln!(
                "  {revoked}/{n} revoked, {:.1} s: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {timeouts} timeouts",
                started.elapsed().as_secs_f64(),
                l.p50_ms,
                l.p99_ms,
                l.max_ms
            );
        }
    }

    // The end state: every revoked key gone, the others still there.
    let head = plane.head().await?;
    let _ = poll_until(
        Duration::from_secs(10),
        Duration::from_millis(5),
        "the final checkpoint",
        || async { (checkpoint(&reader).await? >= head).then_some(()) },
    )
    .await;
    let left = reader
        .list_keys(rec::TOKEN_PREFIX)
        .await
        .map_err(|e| BenchError::Setup(format!("reading the KV: {e}")))?
        .len();
    Ok(PropagationResult {
        kind: opts.follower.label(),
        follower: opts.follower.describe(),
        batch_window_ms: LOCAL_BATCH_WINDOW.as_millis() as u64,
        poll_ms: opts.poll.as_secs_f64() * 1000.0,
        tokens: n,
        create_secs: produced.wall.as_secs_f64(),
        initial_sync_secs: initial_sync.as_secs_f64(),
        revoked,
        latency: Latency::of(latencies),
        timeouts,
        truncated,
        revoke_rpc: Latency::of(rpcs),
        token_keys_left: left,
        token_keys_expected: n - revoked,
    })
}
