//! Teams: domain types and validation ([`model`]) and the `TeamService` RPCs ([`service`]).

pub mod model;
pub mod service;

pub use model::*;
pub use service::TeamApi;
