//! API tokens: domain types and validation ([`model`]) and the `TokenService` RPCs
//! ([`service`]).

pub mod model;
pub mod service;

pub use model::*;
pub use service::TokenApi;
