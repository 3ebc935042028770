//! Propagation latency end to end: a committed RevokeToken until the native gateway refuses
//! the token (401).
//!
//! A control plane on `127.0.0.1:0` ([`Plane`]), the real `keygate-kv-sync` binary following
//! it into a fresh local SQLite KV ([`ChildFollower`], batch window 20 ms as shipped), a tiny
//! hyper upstream ([`upstream`]) and the real `keygate-gateway` binary over that KV
//! ([`child`], KV poll interval 100 ms as shipped unless `--gateway-poll-ms` says otherwise).
//! One route `/p` (prefix stripped) to the upstream is created through the gRPC API, and
//! `revocations` tokens with scope `*` through the store; every one must pass through the
//! gateway (200) first. Then, one at a time: RevokeToken through the gRPC API; the instant
//! the call returns is t0 (the server answers after its transaction committed); from t0,
//! `GET /p/x` with the token's `X-API-Key` every `poll` over one keep-alive connection until
//! the gateway answers 401, for at most `per_key_timeout`; t1 is when that 401 arrived. Any
//! other status is an error and stops the run. The next revocation starts only then, after a
//! pause that is not measured (see [`spread_pause`]): without it each revocation would start
//! just after the gateway's previous KV poll and every sample would be about one poll interval.
//!
//! Owns: nothing the product uses. Must not: put load anywhere but `127.0.0.1`, run without a
//! time bound, or leave processes, servers or databases behind (the gateway and kv-sync are
//! stopped by their PIDs on every path, and killed when dropped).

pub mod child;
pub mod report;
pub mod upstream;

use crate::BenchError;
use crate::control_plane::setup::Place;
use crate::kv_sync::Latency;
use crate::kv_sync::follower::ChildFollower;
use crate::kv_sync::plane::{EDGE_KEY, Plane, TEAM, poll_until};
use crate::kv_sync::propagation::LOCAL_BATCH_WINDOW;
use base64::Engine as _;
use child::{ChildGateway, GatewayClient, Readiness};
use hyper::StatusCode;
use keygate_contracts::token::NewToken;
use keygate_control_plane::testing::{Backend, with_key};
use keygate_proto::v1 as pb;
use keygate_proto::v1::route_service_client::RouteServiceClient;
use keygate_proto::v1::token_service_client::TokenServiceClient;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use upstream::Upstream;

/// The gateway's KV poll interval as shipped (`KEYGATE_GATEWAY_POLL_MS`'s default).
pub const SHIPPED_GATEWAY_POLL_MS: u64 = 100;
/// The route every token calls, and the path requested under it.
pub const ROUTE_PREFIX: &str = "/p";
pub const PROBE_PATH: &str = "/p/x";

#[derive(Debug, Clone, Serialize)]
pub struct Options {
    pub revocations: usize,
    /// The `keygate-kv-sync` binary.
    pub kv_sync_bin: PathBuf,
    /// The `keygate-gateway` binary.
    pub gateway_bin: PathBuf,
    /// `KEYGATE_GATEWAY_POLL_MS` given to the gateway.
    pub gateway_poll_ms: u64,
    /// How often a revoked token is tried while the gateway still lets it through.
    pub poll: Duration,
    pub per_key_timeout: Duration,
    /// Wall-time cap of the revocation loop.
    pub budget: Duration,
    /// Concurrent store calls when creating the tokens first.
    pub create_concurrency: usize,
    /// Pause before each revocation by [`spread_pause`] (else none).
    pub spread: bool,
}

/// The unmeasured pause before revocation `i`: spread evenly over one gateway poll interval
/// (a golden-ratio sequence, so any run of revocations covers the interval evenly and runs are
/// repeatable). Each revocation starts right after the previous one was refused, which is
/// right after a gateway poll; the pause makes the revocations meet the gateway's poll timer
/// at every phase, as revocations arriving at random times do.
pub fn spread_pause(i: usize, gateway_poll: Duration) -> Duration {
    const GOLDEN: f64 = 0.618_033_988_749_894_9;
    gateway_poll.mul_f64((i as f64 * GOLDEN).fract())
}

#[derive(Debug, Clone, Serialize)]
pub struct GatewayPropagationResult {
    pub backend: &'static str,
    pub kv_sync: String,
    pub gateway: String,
    pub kv_sync_batch_window_ms: u64,
    pub gateway_poll_ms: u64,
    pub client_poll_ms: f64,
    /// Revocations were spread over the gateway's poll phase ([`spread_pause`]).
    pub spread: bool,
    /// Tokens created (and revoked) for the measurement.
    pub tokens: usize,
    pub create_secs: f64,
    /// From the last create until `/readyz` showed the head revision and every token.
    pub initial_sync_secs: f64,
    /// Revocations that went through (measured + timed out).
    pub revoked: usize,
    /// RevokeToken returned -> the gateway answered 401, for those within the timeout.
    pub latency: Latency,
    pub timeouts: usize,
    /// The loop stopped at its time budget before revoking every token.
    pub truncated: bool,
    /// The RevokeToken call itself (client send -> response).
    pub revoke_rpc: Latency,
    /// Every probe `GET /p/x` during the loop (send -> full answer, 200s and 401s): the
    /// measurement's own cost and resolution.
    pub probe: Latency,
    /// Probes answered 200 after their token's revocation (the gateway still let it through).
    pub probes_after_revoke_200: usize,
    /// Requests the upstream served (setup checks + probes answered 200).
    pub upstream_requests: u64,
    /// `/readyz` at the end: tokens the gateway holds, and how many there should be.
    pub gateway_tokens_left: usize,
    pub gateway_tokens_expected: usize,
    pub final_revision: i64,
    pub head_revision: i64,
}

/// Runs the benchmark on a fresh control plane of `backend`; stops everything it started,
/// also when the measurement fails.
pub async fn run(
    backend: Backend,
    place: &Place,
    opts: &Options,
) -> Result<GatewayPropagationResult, BenchError> {
    let plane = Plane::start(backend, place).await?;
    eprintln!("  control plane on {}", plane.url());
    let out = with_plane(backend, &plane, place, opts).await;
    let stopped = plane.stop().await;
    let out = out?;
    stopped?;
    Ok(out)
}

async fn with_plane(
    backend: Backend,
    plane: &Plane,
    place: &Place,
    opts: &Options,
) -> Result<GatewayPropagationResult, BenchError> {
    let mut b = tempfile::Builder::new();
    b.prefix("keygate-bench-gw-prop-");
    let dir = match &place.work_dir {
        Some(w) => b.tempdir_in(w),
        None => b.tempdir(),
    }
    .map_err(|e| BenchError::Setup(format!("temp dir: {e}")))?;
    let kv_path = dir.path().join("kv.db");
    let upstream = Upstream::start().await?;
    eprintln!("  upstream on {}", upstream.url());
    let out = with_upstream(backend, plane, &kv_path, &upstream, opts).await;
    upstream.stop().await;
    out
}

async fn with_upstream(
    backend: Backend,
    plane: &Plane,
    kv_path: &Path,
    upstream: &Upstream,
    opts: &Options,
) -> Result<GatewayPropagationResult, BenchError> {
    let follower = ChildFollower::spawn(
        &opts.kv_sync_bin,
        &plane.url(),
        &plane.sync_key,
        kv_path,
        "bench-gateway-propagation",
    )
    .await?;
    eprintln!("  kv-sync: {}", opts.kv_sync_bin.display());
    let out = with_follower(backend, plane, kv_path, upstream, opts).await;
    follower.stop().await;
    out
}

async fn with_follower(
    backend: Backend,
    plane: &Plane,
    kv_path: &Path,
    upstream: &Upstream,
    opts: &Options,
) -> Result<GatewayPropagationResult, BenchError> {
    let edge_key = base64::engine::general_purpose::STANDARD.encode(EDGE_KEY);
    let gateway =
        ChildGateway::spawn(&opts.gateway_bin, kv_path, &edge_key, opts.gateway_poll_ms).await?;
    eprintln!(
        "  gateway: {} (pid {}) on {}, admin {}, KV poll {} ms",
        opts.gateway_bin.display(),
        gateway.pid().unwrap_or(0),
        gateway.addr,
        gateway.admin_addr,
        opts.gateway_poll_ms
    );
    let client = GatewayClient::new(Duration::from_secs(2));
    let out = with_gateway(
        backend,
        plane,
        upstream,
        &client,
        gateway.addr,
        gateway.admin_addr,
        opts,
    )
    .await;
    drop(client);
    gateway.stop().await;
    out
}

/// Waits (bounded) until `/readyz` satisfies `ok`.
async fn await_readiness(
    client: &GatewayClient,
    admin: SocketAddr,
    within: Duration,
    what: &str,
    ok: impl Fn(&Readiness) -> bool,
) -> Result<Readiness, BenchError> {
    poll_until(within, Duration::from_millis(5), what, || async {
        client.readiness(admin).await.ok().filter(|r| ok(r))
    })
    .await
}

async fn with_gateway(
    backend: Backend,
    plane: &Plane,
    upstream: &Upstream,
    client: &GatewayClient,
    addr: SocketAddr,
    admin: SocketAddr,
    opts: &Options,
) -> Result<GatewayPropagationResult, BenchError> {
    // kv-sync's first snapshot (an empty route table and a checkpoint) makes it ready.
    await_readiness(
        client,
        admin,
        Duration::from_secs(30),
        "the gateway's /readyz 200 (kv-sync's first snapshot)",
        |r| r.ready,
    )
    .await?;

    let channel = crate::control_plane::connect(&plane.url(), Duration::from_secs(10)).await?;
    RouteServiceClient::new(channel.clone())
        .create_route(with_key(
            plane.admin_key(),
            pb::CreateRouteRequest {
                name: "gw-propagation".into(),
                team_id: TEAM.into(),
                path_prefix: ROUTE_PREFIX.into(),
                backend_url: upstream.url(),
                description: "keygate-bench gateway-propagation".into(),
                strip_prefix: true,
                ..Default::default()
            },
        ))
        .await
        .map_err(|s| BenchError::Rpc(Box::new(s)))?;

    let n = opts.revocations;
    let produced = plane
        .create_tokens(n, opts.create_concurrency, "gateway-propagation setup")
        .await?;
    let synced_from = Instant::now();
    let head = plane.head().await?;
    await_readiness(
        client,
        admin,
        Duration::from_secs(60),
        "the gateway to hold the head revision and every token",
        |r| r.revision >= head && r.tokens == n && r.routes == 1,
    )
    .await?;
    let initial_sync = synced_from.elapsed();
    let url = format!("http://{addr}{PROBE_PATH}");
    // Every token passes before any is revoked.
    for (i, secret) in produced.secrets.iter().enumerate() {
        poll_until(
            Duration::from_secs(5),
            Duration::from_millis(5),
            "a created token to pass the gateway",
            || async {
                client
                    .get(&url, Some(secret.expose()))
                    .await
                    .ok()
                    .map(|(s, _)| s)
                    .filter(|s| *s == StatusCode::OK)
            },
        )
        .await
        .map_err(|e| BenchError::Setup(format!("token {i}: {e}")))?;
    }
    eprintln!(
        "  {n} tokens created in {:.1} s, in the gateway {:.0} ms later (revision {head}); each \
         answered 200 through {ROUTE_PREFIX}; revoking one at a time",
        produced.wall.as_secs_f64(),
        initial_sync.as_secs_f64() * 1000.0
    );

    let mut tokens = TokenServiceClient::new(channel);
    let mut latencies = Vec::with_capacity(n);
    let mut rpcs = Vec::with_capacity(n);
    let mut probes = Vec::with_capacity(n * 32);
    let mut passed_after_revoke = 0;
    let mut timeouts = 0;
    let mut revoked: usize = 0;
    let mut truncated = false;
    let started = Instant::now();
    let step = n.div_ceil(10).max(1);
    let gateway_poll = Duration::from_millis(opts.gateway_poll_ms);
    for (i, ((id, _), secret)) in produced.tokens.iter().zip(&produced.secrets).enumerate() {
        if started.elapsed() >= opts.budget {
            truncated = true;
            break;
        }
        if opts.spread {
            tokio::time::sleep(spread_pause(i, gateway_poll)).await;
        }
        let sent = Instant::now();
        tokens
            .revoke_token(with_key(
                plane.admin_key(),
                pb::RevokeTokenRequest {
                    id: id.0.clone(),
                    reason: "gateway propagation benchmark".into(),
                },
            ))
            .await
            .map_err(|s| BenchError::Rpc(Box::new(s)))?;
        let t0 = Instant::now();
        rpcs.push(t0 - sent);
        revoked += 1;
        match until_refused(client, &url, secret, t0, opts, &mut probes).await? {
            Some((t1, passed)) => {
                latencies.push(t1 - t0);
                passed_after_revoke += passed;
            }
            None => timeouts += 1,
        }
        if revoked.is_multiple_of(step) {
            let l = Latency::of(latencies.clone());
            eprintln!(
                "  {revoked}/{n} revoked, {:.1} s: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, \
                 {timeouts} timeouts",
                started.elapsed().as_secs_f64(),
                l.p50_ms,
                l.p99_ms,
                l.max_ms
            );
        }
    }

    // The end state: the gateway at the head revision, holding exactly the unrevoked tokens.
    let head = plane.head().await?;
    let end = match await_readiness(
        client,
        admin,
        Duration::from_secs(10),
        "the gateway to reach the final head revision",
        |r| r.revision >= head,
    )
    .await
    {
        Ok(r) => r,
        Err(_) => client.readiness(admin).await.map_err(BenchError::Setup)?,
    };
    Ok(GatewayPropagationResult {
        backend: crate::control_plane::backend_name(backend),
        kv_sync: opts.kv_sync_bin.display().to_string(),
        gateway: opts.gateway_bin.display().to_string(),
        kv_sync_batch_window_ms: LOCAL_BATCH_WINDOW.as_millis() as u64,
        gateway_poll_ms: opts.gateway_poll_ms,
        client_poll_ms: opts.poll.as_secs_f64() * 1000.0,
        spread: opts.spread,
        tokens: n,
        create_secs: produced.wall.as_secs_f64(),
        initial_sync_secs: initial_sync.as_secs_f64(),
        revoked,
        latency: Latency::of(latencies),
        timeouts,
        truncated,
        revoke_rpc: Latency::of(rpcs),
        probe: Latency::of(probes),
        probes_after_revoke_200: passed_after_revoke,
        upstream_requests: upstream.served(),
        gateway_tokens_left: end.tokens,
        gateway_tokens_expected: n - revoked,
        final_revision: end.revision,
        head_revision: head,
    })
}

/// Tries `secret` from `t0` every `opts.poll` until the gateway answers 401: the instant that
/// answer arrived and how many 200s came before it, or `None` after `opts.per_key_timeout`.
/// Any status but 200 and 401, or a failed request, is an error.
async fn until_refused(
    client: &GatewayClient,
    url: &str,
    secret: &NewToken,
    t0: Instant,
    opts: &Options,
    probes: &mut Vec<Duration>,
) -> Result<Option<(Instant, usize)>, BenchError> {
    let deadline = t0 + opts.per_key_timeout;
    let mut tick = tokio::time::interval_at(t0.into(), opts.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut passed = 0;
    loop {
        tick.tick().await;
        let sent = Instant::now();
        let (status, body) = client
            .get(url, Some(secret.expose()))
            .await
            .map_err(|e| BenchError::Setup(format!("probing a revoked token: {e}")))?;
        let answered = Instant::now();
        probes.push(answered - sent);
        match status {
            StatusCode::UNAUTHORIZED => return Ok(Some((answered, passed))),
            StatusCode::OK => passed += 1,
            other => {
                return Err(BenchError::Setup(format!(
                    "the gateway answered {other} to a revoked token (expected 200 or 401): {}",
                    String::from_utf8_lossy(&body)
                )));
            }
        }
        if answered >= deadline {
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_cover_the_poll_interval_evenly() {
        let poll = Duration::from_millis(100);
        let mut tenths = [0; 10];
        for i in 0..1000 {
            let p = spread_pause(i, poll);
            assert!(p < poll);
            tenths[(p.as_secs_f64() * 100.0) as usize] += 1;
        }
        assert!(
            tenths.iter().all(|&n| (90..=110).contains(&n)),
            "{tenths:?}"
        );
        assert_eq!(spread_pause(0, poll), Duration::ZERO);
    }
}
