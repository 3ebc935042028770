//! Invitations: domain types ([`model`]) and the `InvitationService` RPCs ([`service`]).

pub mod model;
pub mod service;

pub use model::*;
pub use service::InvitationApi;
