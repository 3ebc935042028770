//! Routes: domain types and validation ([`model`]) and the `RouteService` RPCs ([`service`]).

pub mod model;
pub mod service;

pub use model::*;
pub use service::RouteApi;
