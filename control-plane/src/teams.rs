//! Teams: domain types and validation ([`model`]) and the `TeamService` RPCs ([`service`]).

pub mod members;
pub mod model;
pub mod service;

pub use members::Member;
pub use model::*;
pub use service::TeamApi;
