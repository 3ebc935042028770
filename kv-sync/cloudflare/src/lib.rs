//! kv-sync's Cloudflare Workers KV backend: [`CloudflareKv`], a [`KvBackend`] over the KV REST
//! API v4 (`/accounts/{account}/storage/kv/namespaces/{namespace}/…`).
//!
//! Owns: talking to that API within its published limits — bulk writes (`PUT …/bulk`, values
//! base64) and bulk deletes (`POST …/bulk/delete`) split at 10,000 items and 100 MB of body,
//! cursor-paged key listing, single value reads with percent-encoded keys, `Authorization:
//! Bearer` auth, retries with backoff, jitter and `Retry-After` (resending only the keys a bulk
//! result reports unsuccessful), one client-wide request budget (1,200 per 5 minutes) and at
//! most one write per second to the same key.
//!
//! Must not: know what the keys and values mean (the record format belongs to its own crate),
//! decide what to sync (kv-sync's planner does), or print, log or return the API token. Keys
//! and values are not logged either (keys can be token hashes).
//!
//! ```no_run
//! # async fn demo() -> Result<(), keygate_kv_cloudflare::KvError> {
//! use keygate_kv_cloudflare::{CloudflareConfig, CloudflareKv, KvBackend};
//! let kv = CloudflareKv::new(CloudflareConfig::new("account-id", "namespace-id", "api-token"))?;
//! kv.put_many(&[("v1/meta/revision".to_owned(), b"42".to_vec())]).await?;
//! assert_eq!(kv.get("v1/meta/revision").await?, Some(b"42".to_vec()));
//! # Ok(()) }
//! ```

pub mod backend;
pub mod client;
pub mod config;

pub use backend::{KvBackend, KvError, KvStats};
pub use client::{CloudflareKv, encode_key};
pub use config::{ApiToken, Backoff, BulkLimits, CloudflareConfig, DEFAULT_BASE_URL, RateLimit};
