//! The change feed for edge followers: domain types ([`model`]) and the `SyncService` RPCs
//! ([`service`]): Watch (replay then live, resumable by revision), Snapshot (the edge state at
//! one revision), follower status, and outbox compaction.

pub mod model;
pub mod service;

pub use model::*;
pub use service::SyncApi;
