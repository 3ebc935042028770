//! A token's rate-limit state, and a single-threaded limiter over it (a Worker isolate, tests).

use crate::host::RateLimiter;
use keygate_gateway_core::{self as core, RateDecision, RateState, TokenHash};
use std::cell::RefCell;
use std::collections::HashMap;

/// A token's rate-limit state: its own limit and its per-route limits (one entry per token in
/// a host's map, so one request touches one entry).
#[derive(Debug, Default)]
pub struct TokenLimits {
    token: RateState,
    routes: HashMap<String, RateState>,
}

impl TokenLimits {
    /// [`RateLimiter::charge`] for this token: both limits or neither (GCRA, default burst).
    pub fn charge(
        &mut self,
        token_rpm: u32,
        route_id: &str,
        route_rpm: u32,
        now_ms: i64,
    ) -> RateDecision {
        let mut unlimited = RateState::default();
        let route_state = if route_rpm > 0 {
            // A warm route is charged in place: no allocation.
            if !self.routes.contains_key(route_id) {
                self.routes
                    .insert(route_id.to_owned(), RateState::default());
            }
            self.routes.get_mut(route_id).unwrap_or(&mut unlimited)
        } else {
            &mut unlimited
        };
        core::gcra_all(
            &mut [
                core::Limit {
                    state: &mut self.token,
                    per_minute: token_rpm,
                    burst: core::default_burst(token_rpm),
                },
                core::Limit {
                    state: route_state,
                    per_minute: route_rpm,
                    burst: core::default_burst(route_rpm),
                },
            ],
            now_ms,
        )
    }

    /// Back to a full bucket everywhere at `now_ms`: nothing to remember.
    pub fn is_idle(&self, now_ms: i64) -> bool {
        let now_us = u64::try_from(now_ms).unwrap_or(0).saturating_mul(1000);
        self.token.0 <= now_us && self.routes.values().all(|r| r.0 <= now_us)
    }
}

/// Rate limits held by one thread (a Worker isolate's own, or a test's).
#[derive(Debug, Default)]
pub struct LocalLimiter {
    tokens: RefCell<HashMap<TokenHash, TokenLimits>>,
}

impl LocalLimiter {
    /// Forgets the states that are back to full (their tokens are idle).
    pub fn prune(&self, now_ms: i64) {
        self.tokens.borrow_mut().retain(|_, s| !s.is_idle(now_ms));
    }

    /// Tokens with a state held.
    pub fn len(&self) -> usize {
        self.tokens.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RateLimiter for LocalLimiter {
    fn charge(
        &self,
        token: &TokenHash,
        token_rpm: u32,
        route_id: &str,
        route_rpm: u32,
        now_ms: i64,
    ) -> RateDecision {
        self.tokens
            .borrow_mut()
            .entry(*token)
            .or_default()
            .charge(token_rpm, route_id, route_rpm, now_ms)
    }
}
