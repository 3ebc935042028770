//! [`StandInConfig`]: credentials, the pre-created namespace, limits and the API rate limit.
//! Defaults are Cloudflare's published values (reference sheet §12); tests shrink them.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// The limits of §12 of the reference sheet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub max_metadata_bytes: usize,
    /// Items per bulk write or delete.
    pub max_bulk_items: usize,
    /// Bytes of a bulk write or delete request body.
    pub max_bulk_body_bytes: usize,
    pub max_bulk_get_keys: usize,
    pub min_list_limit: usize,
    pub max_list_limit: usize,
    /// Minimum `expiration_ttl`, and minimum distance of `expiration` from now, in seconds.
    pub min_expiration_secs: u64,
}

impl Limits {
    pub const CLOUDFLARE: Limits = Limits {
        max_key_bytes: 512,
        max_value_bytes: 25 * 1024 * 1024,
        max_metadata_bytes: 1024,
        max_bulk_items: 10_000,
        max_bulk_body_bytes: 100_000_000,
        max_bulk_get_keys: 100,
        min_list_limit: 10,
        max_list_limit: 1000,
        min_expiration_secs: 60,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::CLOUDFLARE
    }
}

/// At most `requests` accepted per token in any sliding `window`; over it, 429 with code 971.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub window: Duration,
}

impl RateLimit {
    /// 1,200 requests per 5 minutes.
    pub const CLOUDFLARE: RateLimit = RateLimit {
        requests: 1200,
        window: Duration::from_secs(300),
    };
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::CLOUDFLARE
    }
}

/// How to start a [`crate::StandIn`]. `Debug` hides the token and the global key.
#[derive(Clone)]
pub struct StandInConfig {
    /// Accepted as `Authorization: Bearer <token>`.
    pub token: String,
    /// Optionally accepted as `X-Auth-Email` + `X-Auth-Key` (legacy scheme).
    pub global_key: Option<(String, String)>,
    pub account_id: String,
    /// Created at start, with `namespace_title`.
    pub namespace_id: String,
    pub namespace_title: String,
    /// `127.0.0.1:0` by default: a free port on loopback.
    pub listen: SocketAddr,
    pub limits: Limits,
    /// `None` turns the API rate limit off.
    pub rate_limit: Option<RateLimit>,
    /// Writes become visible to reads and lists only after this long (0: at once).
    pub visibility_delay: Duration,
}

impl StandInConfig {
    pub fn new(
        token: impl Into<String>,
        account_id: impl Into<String>,
        namespace_id: impl Into<String>,
    ) -> Self {
        Self {
            token: token.into(),
            global_key: None,
            account_id: account_id.into(),
            namespace_id: namespace_id.into(),
            namespace_title: "keygate-edge".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            limits: Limits::CLOUDFLARE,
            rate_limit: Some(RateLimit::CLOUDFLARE),
            visibility_delay: Duration::ZERO,
        }
    }
}

impl fmt::Debug for StandInConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandInConfig")
            .field("token", &"<redacted>")
            .field(
                "global_key",
                &self
                    .global_key
                    .as_ref()
                    .map(|(email, _)| (email, "<redacted>")),
            )
            .field("account_id", &self.account_id)
            .field("namespace_id", &self.namespace_id)
            .field("namespace_title", &self.namespace_title)
            .field("listen", &self.listen)
            .field("limits", &self.limits)
            .field("rate_limit", &self.rate_limit)
            .field("visibility_delay", &self.visibility_delay)
            .finish()
    }
}
