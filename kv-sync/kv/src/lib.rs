//! KV backends for edge records.
//!
//! Owns: the [`KvBackend`] contract (written by kv-sync, implemented here for the local SQLite
//! file and in `keygate-kv-cloudflare` for Workers KV) and [`SqliteKv`], the embedded default
//! that the native gateway reads. Must not know the record format (that is
//! `keygate-kv-record`) or talk to the control plane.

mod backend;
mod sqlite;

pub use backend::{KvBackend, KvError, KvStats};
pub use sqlite::{Changes, LOG_KEEP, SqliteKv};
