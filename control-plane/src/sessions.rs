//! Sign-in and sessions: domain types ([`model`]) and the `AuthService` RPCs ([`service`]),
//! including the first-start setup and accepting invitations.

pub mod model;
pub mod service;

pub use model::*;
pub use service::AuthApi;
