//! [`CloudflareConfig`]: where the namespace is, the token, and the budgets the client keeps
//! (rate, retries, batch sizes). Defaults are Cloudflare's published limits; tests shrink them.

use std::fmt;
use std::time::Duration;

use crate::backend::KvError;

/// The production API root.
pub const DEFAULT_BASE_URL: &str = "https://api.cloudflare.com/client/v4";

/// A Cloudflare API token. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token itself, for the `Authorization` header only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for ApiToken {
    fn from(token: String) -> Self {
        Self(token)
    }
}

impl From<&str> for ApiToken {
    fn from(token: &str) -> Self {
        Self(token.to_owned())
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

impl fmt::Display for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The API-wide request budget: at most `requests` in any `window`. Cloudflare's is 1,200
/// requests per 5 minutes per user (dashboard included).
///
/// The client spends it through one token bucket of `burst` cells refilled at
/// `(requests - burst) / window`, so any window sees at most `requests` of its calls (as long as
/// network jitter stays below one refill period, 0.25 s with the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub window: Duration,
    pub burst: u32,
}

impl RateLimit {
    /// 1,200 requests per 5 minutes with a burst of 10: about 3.97 requests/s sustained.
    pub const CLOUDFLARE: RateLimit = RateLimit {
        requests: 1200,
        window: Duration::from_secs(300),
        burst: 10,
    };

    /// The budget `requests` per `window` with a burst of a tenth of it (1 to 10).
    pub fn per(requests: u32, window: Duration) -> Self {
        Self {
            requests,
            window,
            burst: (requests / 10).clamp(1, 10),
        }
    }

    /// The refill period of the bucket.
    pub(crate) fn period(&self) -> Duration {
        self.window / (self.requests - self.burst)
    }

    fn validate(&self) -> Result<(), KvError> {
        if self.burst == 0 || self.burst >= self.requests || self.window.is_zero() {
            return Err(KvError::Config(format!(
                "rate limit needs 0 < burst < requests and a window: {} requests per {:?}, burst {}",
                self.requests, self.window, self.burst
            )));
        }
        Ok(())
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::CLOUDFLARE
    }
}

/// Exponential backoff with jitter between retries: attempt `n` waits a random time in
/// `[d/2, d]` with `d = min(max, initial * 2^n)`; a `Retry-After` answer waits at least that long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// Longest `Retry-After` the client sleeps through; a longer one fails the call with
    /// [`KvError::Unavailable`] carrying it.
    pub max_retry_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

/// Per-request and per-value limits of the bulk endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkLimits {
    /// Items per bulk write or bulk delete (API maximum 10,000).
    pub max_items: usize,
    /// Bytes of JSON request body per bulk call, measured after base64 (API maximum 100 MB).
    pub max_body_bytes: usize,
    /// Bytes of one value before encoding (API maximum 25 MiB).
    pub max_value_bytes: usize,
}

impl BulkLimits {
    pub const CLOUDFLARE: BulkLimits = BulkLimits {
        max_items: 10_000,
        max_body_bytes: 100_000_000,
        max_value_bytes: 25 * 1024 * 1024,
    };
}

impl Default for BulkLimits {
    fn default() -> Self {
        Self::CLOUDFLARE
    }
}

/// Everything [`crate::CloudflareKv::new`] needs. Start from [`CloudflareConfig::new`] and
/// override fields: `CloudflareConfig { max_retries: 2, ..CloudflareConfig::new(a, n, t) }`.
#[derive(Debug, Clone)]
pub struct CloudflareConfig {
    /// API root up to and including `/client/v4`, no trailing slash needed.
    pub base_url: String,
    pub account_id: String,
    pub namespace_id: String,
    pub api_token: ApiToken,
    /// Retries after the first attempt of each request (429, 5xx, 408, transport errors, and
    /// keys a bulk result reported unsuccessful).
    pub max_retries: u32,
    pub rate_limit: RateLimit,
    pub backoff: Backoff,
    pub bulk: BulkLimits,
    /// Minimum time between two writes (put or delete) of the same key, measured from the end
    /// of the previous write's response to the start of the next request. Cloudflare allows one
    /// write per second per key.
    pub same_key_interval: Duration,
    /// Whole-request HTTP timeout (a 100 MB bulk upload must fit in it).
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

impl CloudflareConfig {
    /// Cloudflare's production endpoint and limits.
    pub fn new(
        account_id: impl Into<String>,
        namespace_id: impl Into<String>,
        api_token: impl Into<ApiToken>,
    ) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            account_id: account_id.into(),
            namespace_id: namespace_id.into(),
            api_token: api_token.into(),
            max_retries: 5,
            rate_limit: RateLimit::CLOUDFLARE,
            backoff: Backoff::default(),
            bulk: BulkLimits::CLOUDFLARE,
            same_key_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), KvError> {
        let bad = |what: &str| Err(KvError::Config(what.to_owned()));
        if !(self.base_url.starts_with("https://") || self.base_url.starts_with("http://")) {
            return bad("base_url must be an http(s) URL");
        }
        if self.account_id.is_empty() || self.namespace_id.is_empty() {
            return bad("account_id and namespace_id are required");
        }
        if self.api_token.expose().is_empty() {
            return bad("api_token is empty");
        }
        if self.bulk.max_items == 0 || self.bulk.max_body_bytes < 64 {
            return bad("bulk limits must allow at least one item");
        }
        self.rate_limit.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_never_printed() {
        let cfg = CloudflareConfig::new("a", "n", "sekret-token-123");
        let shown = format!("{cfg:?} {} {:?}", cfg.api_token, cfg.api_token);
        assert!(!shown.contains("sekret"), "{shown}");
    }

    #[test]
    fn defaults_are_cloudflare_limits() {
        let cfg = CloudflareConfig::new("a", "n", "t");
        assert_eq!(cfg.base_url, "https://api.cloudflare.com/client/v4");
        assert_eq!(cfg.bulk.max_items, 10_000);
        assert_eq!(cfg.bulk.max_body_bytes, 100_000_000);
        assert_eq!(cfg.bulk.max_value_bytes, 26_214_400);
        assert_eq!(cfg.rate_limit.requests, 1200);
        assert_eq!(cfg.rate_limit.window, Duration::from_secs(300));
        assert_eq!(cfg.same_key_interval, Duration::from_secs(1));
        cfg.validate().unwrap();
    }

    #[test]
    fn rate_limit_period_keeps_the_window_budget() {
        let table = [
            (RateLimit::CLOUDFLARE, Duration::from_secs(300) / 1190),
            (
                RateLimit::per(20, Duration::from_secs(2)),
                Duration::from_millis(2000) / 18,
            ),
            (
                RateLimit::per(5, Duration::from_secs(1)),
                Duration::from_millis(250),
            ),
        ];
        for (limit, period) in table {
            assert_eq!(limit.period(), period, "{limit:?}");
            // burst + refills within one window never exceed the budget
            let refills = limit.window.as_nanos() / limit.period().as_nanos();
            assert!(u128::from(limit.burst) + refills <= u128::from(limit.requests));
        }
        assert!(
            RateLimit {
                requests: 5,
                window: Duration::from_secs(1),
                burst: 5
            }
            .validate()
            .is_err()
        );
    }
}
