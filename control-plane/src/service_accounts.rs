//! Service accounts and their management keys: domain types ([`model`]) and the
//! `ServiceAccountService` RPCs ([`service`]).

pub mod model;
pub mod service;

pub use model::*;
pub use service::ServiceAccountApi;
