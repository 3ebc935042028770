//! What a host supplies to the pipeline: a clock reading, a rate limiter and a usage sink.

use crate::exchange::UsageEvent;
use core::time::Duration;
use keygate_gateway_core::{RateDecision, Route, TokenHash};
use keygate_rollup::RollupKeyRef;

/// The host's monotonic reading of when a request arrived (native: an `Instant`; a Worker:
/// `Date.now()` at arrival). The pipeline never reads a clock: it asks this reading how long
/// ago it was, and only when it counts an answer.
pub trait Started {
    fn elapsed(&self) -> Duration;
}

/// Rate limits, keyed by token: the token's own limit and its per-route limits.
pub trait RateLimiter {
    /// Charges one request to the token's limit (`token_rpm` per minute, 0: none) and to the
    /// route's per-token limit (`route_rpm`, 0: none) at `now_ms`: both or neither, so a
    /// refused request costs nothing. Called only when one of them is set.
    fn charge(
        &self,
        token: &TokenHash,
        token_rpm: u32,
        route_id: &str,
        route_rpm: u32,
        now_ms: i64,
    ) -> RateDecision;
}

/// Where answered requests are counted: metrics, usage rollups and raw events.
pub trait UsageSink {
    /// Usage reporting is on (rollups and raw events); metrics are counted either way.
    fn enabled(&self) -> bool;
    /// Counts an answer in metrics: its route label (`-`: none matched), status and how long
    /// it took to its head.
    fn observe(&self, route: &str, status: u16, elapsed: Duration);
    /// Whether an answer gets a raw event (asked only when usage is on): [`wanted`], then the
    /// host's budget and first-success marks.
    fn keep(&self, status: u16, by_gateway: bool, at_ms: i64, token_id: &str) -> Keep;
    /// Counts one answered request in the rollups.
    fn record(
        &self,
        key: RollupKeyRef<'_>,
        latency_us: u64,
        request_bytes: u64,
        response_bytes: u64,
    );
    /// Queues a kept event (`keep` is what [`UsageSink::keep`] said, never [`Keep::No`]).
    fn push_event(&self, keep: Keep, event: UsageEvent);
    /// A backend failed or timed out ([`Failure::Backend`], [`Failure::Timeout`]): count it,
    /// log it with the request id. Never shown to the caller.
    fn backend_failed(&self, route: &Route, request_id: &str, failure: &Failure<'_>);
}

/// Why a forwarded request got no answer from its backend.
#[derive(Clone, Copy)]
pub enum Failure<'e> {
    /// The backend URL cannot be sent (a 400, before any byte went out).
    Unforwardable,
    /// No answer within the route's timeout (504).
    Timeout,
    /// The backend could not be reached or broke (502); what went wrong, for the log.
    Backend(&'e dyn core::fmt::Display),
}

/// Which raw event a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// None (within the rollups only).
    No,
    /// A refusal or 5xx event (within the host's budget).
    Event,
    /// The token's first success of the minute.
    FirstSuccess,
}

/// What a request's answer asks for, before the host's budget and first-success marks: every
/// refusal (status >= 400 answered by the gateway, 429 included) and every 5xx
/// (`by_gateway`: the gateway answered itself, else the backend did); a success (status <
/// 400) of a known token may be its first of the minute; a backend's 4xx gets none.
pub fn wanted(status: u16, by_gateway: bool, has_token: bool) -> Keep {
    if status >= 500 || (by_gateway && status >= 400) {
        Keep::Event
    } else if status < 400 && has_token {
        Keep::FirstSuccess
    } else {
        Keep::No
    }
}
