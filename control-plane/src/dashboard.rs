//! The admin UI's home page in one call: `DashboardService.GetDashboard` over the caller's
//! teams (system admins: everything) or one team.
//!
//! Owns: the dashboard's input rules and answer ([`model`]) and its handler ([`service`]),
//! which composes reads other resources already offer (token lists and counts, the audit
//! list, usage analytics) with the few aggregates only the dashboard needs
//! (`store::DashboardStore`). Must not: write anything, or show a caller a team it may not
//! read.

pub mod model;
pub mod service;

pub use model::*;
pub use service::DashboardApi;
