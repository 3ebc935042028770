//! `usage-storage`: what one hour of one gateway's usage reports costs on disk.
//!
//! For each request rate, a fresh database (SQLite by default, as `./scripts/run.sh` runs the
//! control plane) gets the teams, routes and tokens of the keys ([`super::traffic::keys`]); the
//! real control plane serves it on `127.0.0.1:0`, and a simulated gateway
//! ([`super::traffic::Simulator`]) sends `minutes` minutes of flushes (every 10 s) through
//! IngestUsage with a GATEWAY service account's key, as the gateway does: the rollups of the
//! interval in calls of at most 20,000 rows with a batch id, then its raw events in calls of
//! at most 5,000. The simulated time is the last `minutes` minutes before the start; flushes
//! are sent back to back, not in real time. The usage tables are measured before and after
//! ([`super::db::measure`]).

use super::db::{FreshDb, Measure, measure};
use super::traffic::{Flush, Simulator, TrafficShape, keys, rollup_to_pb};
use crate::BenchError;
use crate::control_plane::connect;
use crate::stats::{Summary, summarise};
use keygate_control_plane::service_accounts::Capability;
use keygate_control_plane::testing::{Backend, with_key};
use keygate_control_plane::time::now_ms;
use keygate_proto::v1 as pb;
use keygate_proto::v1::usage_service_client::UsageServiceClient;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Rows per IngestUsage call (the API's limits).
const ROLLUPS_PER_CALL: usize = 20_000;
const EVENTS_PER_CALL: usize = 5_000;

/// Knobs of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Options {
    pub backend: &'static str,
    pub keys: u32,
    pub rates: Vec<u64>,
    pub minutes: u32,
    pub flush_secs: u32,
    pub refusal_share: f64,
    pub event_budget: u64,
    /// Bytes one stored request cost as a raw event (measured earlier), for the comparison.
    pub bytes_per_event_row: f64,
    pub request_timeout: Duration,
}

/// What one rate cost.
#[derive(Debug, Clone, Serialize)]
pub struct RateResult {
    pub rate: u64,
    pub requests: u64,
    pub flushes: u64,
    pub rollups_sent: u64,
    pub events_sent: u64,
    pub sampled_out: u64,
    /// Latency of the IngestUsage calls (rollup and event calls together).
    pub ingest: Summary,
    pub rollup_calls: Summary,
    pub event_calls: Summary,
    pub before: Measure,
    pub after: Measure,
    /// Growth of the database (SQLite: page_count * page_size; PostgreSQL: database size).
    pub database_growth_bytes: i64,
    /// Growth per usage table (with its indexes).
    pub table_growth_bytes: BTreeMap<String, i64>,
    /// Growth of the usage tables without `usage_events`.
    pub rollup_growth_bytes: i64,
    pub event_growth_bytes: i64,
    /// `event_growth_bytes` per stored event.
    pub bytes_per_stored_event: f64,
    /// One raw event per request instead: rate x seconds x `bytes_per_event_row`.
    pub one_row_per_request_bytes: f64,
    pub wall_secs: f64,
    /// Answers that disagreed with what was sent (accepted counts), if any.
    pub problems: Vec<String>,
}

/// Runs every rate, each on a fresh database.
pub async fn run(
    backend: Backend,
    pg_admin_url: Option<&str>,
    work_dir: Option<&std::path::Path>,
    o: &Options,
    keep_db: bool,
) -> Result<Vec<RateResult>, BenchError> {
    let mut out = Vec::new();
    for &rate in &o.rates {
        eprintln!("\n  rate {rate}/s, {} keys, {} minutes", o.keys, o.minutes);
        let db = FreshDb::create(backend, pg_admin_url, work_dir).await?;
        let r = run_rate(&db, rate, o).await;
        if let Some(url) = db.finish(keep_db).await? {
            eprintln!("  kept the database: {url}");
        }
        out.push(r?);
    }
    Ok(out)
}

async fn run_rate(db: &FreshDb, rate: u64, o: &Options) -> Result<RateResult, BenchError> {
    let started = Instant::now();
    let (keys, catalog) = keys(o.keys, 50, 100);
    db.execute_all(&catalog.statements(now_ms(), &[])).await?;
    let server = db.serve().await?;
    let outcome = async {
        let gateway_key = server.capability_key(Capability::Gateway).await;
        let before = measure(db).await?;
        let channel = connect(&server.url(), o.request_timeout).await?;
        let client = UsageServiceClient::new(channel);
        let sent = send_hour(client, &gateway_key, keys, rate, o).await?;
        let after = measure(db).await?;
        Ok::<_, BenchError>((before, sent, after))
    }
    .await;
    server.stop().await;
    let (before, sent, after) = outcome?;
    let growth = |t: &str| {
        after.table_bytes.get(t).copied().unwrap_or(0) as i64
            - before.table_bytes.get(t).copied().unwrap_or(0) as i64
    };
    let table_growth_bytes: BTreeMap<String, i64> = after
        .table_bytes
        .keys()
        .map(|t| (t.clone(), growth(t)))
        .collect();
    let event_growth_bytes = growth("usage_events");
    let rollup_growth_bytes = table_growth_bytes
        .iter()
        .filter(|(t, _)| t.as_str() != "usage_events")
        .map(|(_, b)| b)
        .sum();
    let stored_events = after.rows.get("usage_events").copied().unwrap_or(0);
    let seconds = f64::from(o.minutes) * 60.0;
    Ok(RateResult {
        rate,
        requests: sent.requests,
        flushes: sent.flushes,
        rollups_sent: sent.rollups,
        events_sent: sent.events,
        sampled_out: sent.sampled_out,
        ingest: summarise(sent.all_calls, 0, sent.wall),
        rollup_calls: summarise(sent.rollup_calls, 0, sent.wall),
        event_calls: summarise(sent.event_calls, 0, sent.wall),
        database_growth_bytes: after.database_bytes as i64 - before.database_bytes as i64,
        table_growth_bytes,
        rollup_growth_bytes,
        event_growth_bytes,
        bytes_per_stored_event: if stored_events > 0 {
            event_growth_bytes as f64 / stored_events as f64
        } else {
            0.0
        },
        one_row_per_request_bytes: rate as f64 * seconds * o.bytes_per_event_row,
        before,
        after,
        wall_secs: started.elapsed().as_secs_f64(),
        problems: sent.problems,
    })
}

#[derive(Default)]
struct Sent {
    requests: u64,
    flushes: u64,
    rollups: u64,
    events: u64,
    sampled_out: u64,
    all_calls: Vec<Duration>,
    rollup_calls: Vec<Duration>,
    event_calls: Vec<Duration>,
    wall: Duration,
    problems: Vec<String>,
}

/// Simulates the flushes on a blocking thread (one flush ahead) and sends each.
async fn send_hour(
    mut client: UsageServiceClient<tonic::transport::Channel>,
    key: &str,
    keys: Vec<super::traffic::Key>,
    rate: u64,
    o: &Options,
) -> Result<Sent, BenchError> {
    let flush_ms = i64::from(o.flush_secs.max(1)) * 1000;
    let flushes = i64::from(o.minutes) * 60_000 / flush_ms;
    let start = keygate_rollup::minute_of(now_ms()) - i64::from(o.minutes) * 60_000;
    let shape = TrafficShape {
        keys: o.keys,
        rate,
        flush_ms,
        refusal_share: o.refusal_share,
        event_budget: o.event_budget,
        seed: 0x7374_6f72 ^ rate,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Flush>(2);
    let simulator = tokio::task::spawn_blocking(move || {
        let mut sim = Simulator::new(shape, keys);
        for f in 0..flushes {
            if tx.blocking_send(sim.flush(start + f * flush_ms)).is_err() {
                return;
            }
        }
    });
    let mut s = Sent::default();
    let began = Instant::now();
    let mut f = 0u64;
    let gateway = "gw-bench".to_owned();
    while let Some(flush) = rx.recv().await {
        s.flushes += 1;
        s.requests += flush.requests;
        s.sampled_out += flush.sampled_out;
        let rollups: Vec<pb::UsageRollup> = flush
            .rollups
            .iter()
            .map(|(k, v)| rollup_to_pb(k, v))
            .collect();
        for (i, chunk) in rollups.chunks(ROLLUPS_PER_CALL).enumerate() {
            let req = pb::IngestUsageRequest {
                gateway: gateway.clone(),
                rollups: chunk.to_vec(),
                batch_id: format!("r-{f}-{i}"),
                sampled_out: if i == 0 { flush.sampled_out } else { 0 },
                config_revision: 42,
                gateway_version: "bench".into(),
                ..Default::default()
            };
            let t0 = Instant::now();
            let r = client
                .ingest_usage(with_key(key, req))
                .await
                .map_err(|e| BenchError::Rpc(Box::new(e)))?
                .into_inner();
            let took = t0.elapsed();
            s.all_calls.push(took);
            s.rollup_calls.push(took);
            s.rollups += chunk.len() as u64;
            if r.rollups_accepted as usize != chunk.len() {
                s.problems.push(format!(
                    "flush {f}: {} of {} rollups accepted",
                    r.rollups_accepted,
                    chunk.len()
                ));
            }
        }
        for (i, chunk) in flush.events.chunks(EVENTS_PER_CALL).enumerate() {
            let req = pb::IngestUsageRequest {
                gateway: gateway.clone(),
                events: chunk.to_vec(),
                batch_id: format!("e-{f}-{i}"),
                config_revision: 42,
                gateway_version: "bench".into(),
                events_sampled: true,
                ..Default::default()
            };
            let t0 = Instant::now();
            let r = client
                .ingest_usage(with_key(key, req))
                .await
                .map_err(|e| BenchError::Rpc(Box::new(e)))?
                .into_inner();
            let took = t0.elapsed();
            s.all_calls.push(took);
            s.event_calls.push(took);
            s.events += chunk.len() as u64;
            if r.accepted as usize != chunk.len() {
                s.problems.push(format!(
                    "flush {f}: {} of {} events accepted",
                    r.accepted,
                    chunk.len()
                ));
            }
        }
        f += 1;
        if f.is_multiple_of(60) {
            eprintln!(
                "  {f}/{flushes} flushes ({} simulated minutes), {:.1} s",
                f * flush_ms as u64 / 60_000,
                began.elapsed().as_secs_f64()
            );
        }
    }
    s.wall = began.elapsed();
    simulator
        .await
        .map_err(|e| BenchError::Setup(format!("traffic simulator: {e}")))?;
    Ok(s)
}
