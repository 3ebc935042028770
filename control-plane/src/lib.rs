//! Keygate control plane: the gRPC (and grpc-web) API over tokens, routes, teams, audit and
//! gateway usage, backed by SQLite or PostgreSQL.
//!
//! Owns: validation of management input, the storage schema, the audit chain and the change
//! outbox. Must not depend on gateway or kv-sync code; the edge learns state only through the
//! change feed and snapshots this crate serves, and reports usage only through `UsageService`.
//!
//! Codemap: [`server`] wires services and layers; [`auth`] is the one layer that assigns
//! request ids and resolves the caller; [`tokens`], [`routes`], [`teams`], [`audit`],
//! [`usage`] each hold a resource's domain types and its RPC handlers; [`store`] is the
//! `Store` trait with its SQLite and PostgreSQL implementations; [`error`] maps every failure
//! to one client-visible error code.

pub mod auth;
pub mod authz;
pub mod bootstrap;
pub mod browser;
pub mod config;
pub mod context;
pub mod error;
pub mod ids;
pub mod pagination;
pub mod passwords;
pub mod policy;
pub mod secrets;
pub mod server;
pub mod store;
pub mod testing;
pub mod time;
pub mod web;

pub mod alerts;
pub mod audit;
pub mod dashboard;
pub mod import;
pub mod invitations;
pub mod routes;
pub mod service_accounts;
pub mod sessions;
pub mod sync;
pub mod system;
pub mod teams;
pub mod tokens;
pub mod usage;
pub mod users;
