//! People: domain types ([`model`]) and the `UserService` RPCs ([`service`]).

pub mod model;
pub mod service;

pub use model::*;
pub use service::UserApi;
