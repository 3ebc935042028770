//! The native rate limiter: every token's [`TokenLimits`] in one sharded map shared by the
//! workers (one entry per token, so one request locks one shard entry).

use dashmap::DashMap;
use keygate_gateway_core::{RateDecision, TokenHash};
use keygate_gateway_pipeline::{RateLimiter, TokenLimits};

#[derive(Default)]
pub struct Limits(DashMap<TokenHash, TokenLimits>);

impl Limits {
    /// Forgets the states that are back to full (their tokens are idle).
    pub fn prune(&self, now_ms: i64) {
        self.0.retain(|_, s| !s.is_idle(now_ms));
    }
}

impl RateLimiter for Limits {
    #[inline]
    fn charge(
        &self,
        token: &TokenHash,
        token_rpm: u32,
        route_id: &str,
        route_rpm: u32,
        now_ms: i64,
    ) -> RateDecision {
        self.0
            .entry(*token)
            .or_default()
            .charge(token_rpm, route_id, route_rpm, now_ms)
    }
}
