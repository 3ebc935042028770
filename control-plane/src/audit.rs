//! The audit log: domain types, the hash chain ([`chain`]), exports ([`export`]) and the
//! `AuditService` RPCs ([`service`]).

pub mod chain;
pub mod export;
pub mod model;
pub mod service;

pub use model::*;
pub use service::AuditApi;
