//! A local stand-in of the Cloudflare Workers KV REST API (v4), for tests and manual runs:
//! a real HTTP server on loopback that follows the reference sheet
//! (`shared/reference/cloudflare-kv-rest.md`, §15), because this machine cannot reach
//! Cloudflare.
//!
//! Owns: the routes under `/client/v4/accounts/{account}/storage/kv/namespaces` (namespaces,
//! key lists, values, metadata, bulk write/delete/get), the v4 envelope and error codes
//! (one table, [`error`]), the limits of §12, expiration by a clock tests control, the
//! API-wide rate limit, and test controls: injected failures, per-key bulk failures, the
//! request log, per-key write times, a visibility delay.
//!
//! Must not: be used as a production KV store (memory only, one process), depend on any
//! Keygate crate, or mock anything beyond the public API (no back doors for writing data:
//! tests write through HTTP like any client).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use keygate_kv_standin::{StandIn, StandInConfig};
//! let kv = StandIn::start(StandInConfig::new("token", "0123456789abcdef0123456789abcdef",
//!     "fedcba9876543210fedcba9876543210")).await?;
//! println!("{}", kv.url()); // http://127.0.0.1:PORT/client/v4
//! kv.fail_next(2, 429, Some(1));
//! kv.shutdown().await;
//! # Ok(()) }
//! ```

mod app;
pub mod config;
pub mod error;
mod routes;
mod server;
mod store;

pub use app::{RequestLog, Route};
pub use config::{Limits, RateLimit, StandInConfig};
pub use error::ApiError;
pub use server::StandIn;
