//! Keygate benchmarks (not tests): the harness behind the `keygate-bench` binary and the
//! criterion benches in `benches/`.
//!
//! Owns: the seeded data set ([`dataset`]), the control-plane Create/List benchmark
//! ([`control_plane`]), the kv-sync propagation and throughput benchmark ([`kv_sync`]), the
//! gateway benchmark's KV and wrk/nginx inputs ([`gateway`]; `bench/gateway.sh` runs it),
//! Revoke -> gateway refusal latency through the real binaries ([`gateway_propagation`]),
//! `keygate import old-system` at scale through the real binaries ([`import`]), the usage analytics query latency and ingestion storage cost ([`usage`]), the admin UI
//! benchmark's database ([`ui_seed`]; `admin-web/bench/ui.mjs` measures the UI), percentile
//! maths ([`stats`]) and presenting results ([`report`]).
//! Must not: be depended on by product code, judge anything in CI, or put load anywhere but
//! `127.0.0.1`. Every phase is bounded in requests and in time and stops by itself; the
//! databases and servers it starts are removed when a case ends.

pub mod control_plane;
pub mod dataset;
pub mod gateway;
pub mod gateway_propagation;
pub mod import;
pub mod kv_sync;
pub mod pg_database;
pub mod process;
pub mod report;
pub mod stats;
pub mod ui_seed;
pub mod usage;

use keygate_control_plane::store::StoreError;

/// Why a benchmark could not run (a failing request inside a measured phase is counted, not
/// raised).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot connect to the control plane: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("request failed: {}: {}", .0.code(), .0.message())]
    Rpc(Box<tonic::Status>),
    #[error("{0}")]
    Setup(String),
}
