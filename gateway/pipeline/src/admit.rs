//! Admission: what every host does with the core's decision.

use crate::exchange::{Exchange, Facts, Subject, error_answer};
use crate::host::{RateLimiter, Started, UsageSink};
use keygate_gateway_core::{self as core, Decision, GatewayError, RateDecision, Reject};

/// What [`Exchange::admit`] makes of a decision.
// Returned once per request and destructured at once: boxing the large variant would cost an
// allocation per forwarded request.
#[allow(clippy::large_enum_variant)]
pub enum Admission<'s, T> {
    /// The gateway answers itself (an error, a CORS preflight, a rate limit); metrics and the
    /// usage are recorded.
    Answer(core::Answer),
    /// Forward: the request passed the decision and its rate limits.
    Forward(Admitted<'s, T>),
}

/// A request to forward.
pub struct Admitted<'s, T> {
    pub fwd: core::Forward<'s>,
    /// `RateLimit-*` headers for the answer, when a limit applies.
    pub rate_headers: Vec<(&'static str, String)>,
    /// The request, to take on through its remaining phases.
    pub exchange: Exchange<T>,
}

impl<T: Started> Exchange<T> {
    /// Answers refused requests and preflights (attributed to the route, and to the token
    /// when `tokens` knows the refused key), and charges the token's and the route's rate
    /// limits (both or neither) at the request's arrival: a 429 with `RateLimit-*` and
    /// `Retry-After` when refused. `tokens` is the snapshot `decision` was made against, and
    /// `facts.revision` its revision.
    ///
    /// It is [`Exchange::screen`], then [`Admitted::rate`] with `limiter`'s decision; a host
    /// whose limiter is asynchronous (a Worker's rate-limiting binding) calls those two itself.
    pub fn admit<'s>(
        self,
        decision: Decision<'s>,
        tokens: &impl core::TokenSource,
        facts: &Facts<'_>,
        limiter: &impl RateLimiter,
        sink: &impl UsageSink,
    ) -> Admission<'s, T> {
        let admitted = match self.screen(decision, tokens, facts, sink) {
            Admission::Forward(a) => a,
            answer => return answer,
        };
        let Some((token_rpm, route_rpm)) = admitted.limits() else {
            return Admission::Forward(admitted);
        };
        let fwd = &admitted.fwd;
        let d = limiter.charge(
            &fwd.token_hash,
            token_rpm,
            &fwd.route.id,
            route_rpm,
            admitted.exchange.at_ms(),
        );
        admitted.rate(d, facts, sink)
    }

    /// The decision's outcome before rate limits: refusals and preflights answered (and
    /// recorded), a forward returned with no rate headers yet.
    pub fn screen<'s>(
        self,
        decision: Decision<'s>,
        tokens: &impl core::TokenSource,
        facts: &Facts<'_>,
        sink: &impl UsageSink,
    ) -> Admission<'s, T> {
        let request_id = facts.request_id;
        match decision {
            Decision::Reject(reject) => {
                let resp = error_answer(&reject, request_id, Some(facts.revision), &[]);
                let size = resp.body.len() as u64;
                let subject = Subject::refused(&reject, tokens, self.usage_on());
                self.answered(sink, reject.status, reject.error, subject, facts, 0, size);
                Admission::Answer(resp)
            }
            Decision::Preflight(p) => {
                let r = core::Answer::preflight(&p, request_id);
                let subject = Subject {
                    route: &p.route,
                    ..Subject::default()
                };
                self.answered(sink, p.status, "", subject, facts, 0, 0);
                Admission::Answer(r)
            }
            Decision::Forward(fwd) => Admission::Forward(Admitted {
                fwd,
                rate_headers: Vec::new(),
                exchange: self,
            }),
        }
    }
}

impl<'s, T: Started> Admitted<'s, T> {
    /// The limits to charge, `(token_rpm, route_rpm)`: `None` when neither is set (nothing
    /// to charge, no rate headers).
    pub fn limits(&self) -> Option<(u32, u32)> {
        let (token_rpm, route_rpm) = (self.fwd.token.rpm, self.fwd.route.rpm);
        (token_rpm > 0 || route_rpm > 0).then_some((token_rpm, route_rpm))
    }

    /// Applies the rate limiter's decision `d` (both limits charged, or neither): the
    /// `RateLimit-*` headers for the answer, or the 429 answer (recorded) when refused.
    pub fn rate(
        mut self,
        d: RateDecision,
        facts: &Facts<'_>,
        sink: &impl UsageSink,
    ) -> Admission<'s, T> {
        self.rate_headers = core::ratelimit_headers(&d);
        if d.allowed {
            return Admission::Forward(self);
        }
        let reject = Reject::new(
            GatewayError::RateLimited,
            format!("rate limit of {} requests per minute exceeded", d.limit),
        );
        let resp = error_answer(
            &reject,
            facts.request_id,
            Some(facts.revision),
            &self.rate_headers,
        );
        let size = resp.body.len() as u64;
        let subject = Subject::forward(&self.fwd);
        self.exchange
            .answered(sink, reject.status, reject.error, subject, facts, 0, size);
        Admission::Answer(resp)
    }
}
