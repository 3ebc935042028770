//! Keygate's native gateway: an HTTP server in front of backends (its own HTTP/1.1 fast path,
//! hyper for everything else). It reads the local KV
//! (written by kv-sync) into an in-memory snapshot, asks the pure decision core
//! (`keygate-gateway-core`) what to do with each request, and streams the request and the
//! response through without buffering.
//!
//! Codemap: [`config`] (flags and environment), [`snapshot`] (KV -> in-memory configuration,
//! swapped atomically), [`host`] (what both front ends share: the app state, each worker's
//! view, and the request pipeline's host traits, over `keygate-gateway-pipeline`), [`proxy`]
//! (the hyper front end), [`h1`] (the HTTP/1.1 fast path front end), [`pool`] (each worker's backend
//! connections), [`body`] (streaming byte counters), [`usage`] (per-worker rollups, the
//! raw-event budget and buffer, the sender), [`metrics`], [`server`] (listeners, admin endpoints, shutdown).

pub mod body;
pub mod config;
#[cfg(test)]
mod fixtures;
pub mod h1;
pub mod host;
pub mod metrics;
pub mod pool;
pub mod proxy;
pub mod server;
pub mod snapshot;
pub mod usage;

pub use config::Config;
pub use server::{Running, start};
