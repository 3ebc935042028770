//! The request pipeline every gateway host runs (the native gateway's two front ends and the
//! Cloudflare Worker): what happens between the core's decision and the host's IO.
//!
//! A request is one [`Exchange`], created when it arrives ([`Exchange::start`]) and taken
//! through the same phases by every host, as in pingora's `ProxyHttp`:
//!
//! 1. [`Exchange::not_ready`] (no configuration yet: the 503), or
//! 2. [`Exchange::admit`]: the core's [`Decision`](keygate_gateway_core::Decision) becomes the
//!    gateway's own answer (a refusal attributed to the token and route it names, a CORS
//!    preflight, a 429 with its `RateLimit-*` headers after the token's and the route's limits
//!    were charged both or neither), or a forward with its rate headers (a host with an
//!    asynchronous limiter runs its two steps: [`Exchange::screen`], then [`Admitted::rate`]);
//! 3. the host sends the request and reads the answer's head: [`Exchange::head_done`] (metrics
//!    now, the raw event prepared), or [`Exchange::failed`] (502 / 504 / unforwardable URL);
//! 4. [`Exchange::finish`] with the byte counts once the body ended.
//!
//! Each terminal phase takes the exchange by value, so a request is recorded at most once; a
//! request dropped before its answer's head is not recorded (it was not answered).
//!
//! Owns: the phases and their order, the answers the gateway gives itself around a decision
//! (not ready, rate limited, backend failures), who a request is counted for ([`Subject`]),
//! which raw usage events are wanted ([`wanted`]), the raw event's neutral form
//! ([`UsageEvent`]), and the per-token rate-limit state ([`TokenLimits`]). The host supplies its
//! clock reading ([`Started`]), its rate limiter ([`RateLimiter`]) and its usage sink
//! ([`UsageSink`]): generics, so nothing is dispatched dynamically on the request path.
//!
//! Must not: depend on tokio, hyper, `worker` or protobuf, do IO, read a clock (`Instant`
//! panics on `wasm32-unknown-unknown`), or put `Send` bounds on its traits. It builds for
//! `wasm32-unknown-unknown`.

mod admit;
mod exchange;
mod headers;
mod host;
mod limits;

pub use admit::{Admission, Admitted};
pub use exchange::{Exchange, Facts, OwnedSubject, Subject, UsageEvent, error_answer};
pub use headers::DecisionHeaders;
pub use host::{Failure, Keep, RateLimiter, Started, UsageSink, wanted};
pub use limits::{LocalLimiter, TokenLimits};

#[cfg(test)]
mod tests;
