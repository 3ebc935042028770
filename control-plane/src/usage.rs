//! Usage events reported by gateways: domain types and validation ([`model`]) and the
//! `UsageService` RPCs ([`service`]). Telemetry, not configuration: storing a batch writes no
//! audit row and no change event (ARCHITECTURE.md, invariants).

pub mod analytics;
pub mod export;
pub mod model;
pub mod query;
pub mod service;

pub use model::*;
pub use service::UsageApi;
