//! kv-sync: keeps a KV store equal to the control plane's edge state.
//!
//! follow ([`follow`]) -> plan ([`plan`], pure) -> apply -> checkpoint. The checkpoint
//! (`v1/meta/revision`) is written to the KV itself, after the batch it covers, so a crash at
//! any point replays from the last checkpoint; every write is idempotent, so replay converges.
//! On first start, when the feed says "resync required", on request, and periodically, it
//! reconciles from a snapshot: extra keys are deleted, every live record is written.
//!
//! Owns: following, planning, applying, status reporting and metrics. Must not read the
//! control plane's database (only its API) or decode secrets (they arrive sealed to the edge
//! key and stay sealed).

pub mod config;
pub mod follow;
pub mod metrics;
pub mod plan;
