//! Admission: what every host does with the core's decision.

use crate::exchange::{Exchange, Facts, Subject, error_answer};
use crate::host::{RateLimiter, Started, UsageSink};
use keygate_gateway_core::{self as core, Decision, GatewayError, Reject};

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
    pub fn admit<'s>(
        self,
        decision: Decision<'s>,
        tokens: &impl core::TokenSource,
        facts: &Facts<'_>,
        limiter: &impl RateLimiter,
        sink: &impl UsageSink,
    ) -> Admission<'s, T> {
        let request_id = facts.request_id;
        let revision = Some(facts.revision);
        let fwd = match decision {
            Decision::Reject(reject) => {
                let resp = error_answer(&reject, request_id, revision, &[]);
                let size = resp.body.len() as u64;
                let subject = Subject::refused(&reject, tokens, self.usage_on());
                self.answered(sink, reject.status, reject.error, subject, facts, 0, size);
                return Admission::Answer(resp);
            }
            Decision::Preflight(p) => {
                let r = core::Answer::preflight(&p, request_id);
                let subject = Subject {
                    route: &p.route,
                    ..Subject::default()
                };
                self.answered(sink, p.status, "", subject, facts, 0, 0);
                return Admission::Answer(r);
            }
            Decision::Forward(f) => f,
        };

        // Rate limits: the token's own and the route's per-token limit, both or neither charged.
        let mut rate_headers: Vec<(&'static str, String)> = Vec::new();
        let (token_rpm, route_rpm) = (fwd.token.rpm, fwd.route.rpm);
        if token_rpm > 0 || route_rpm > 0 {
            let d = limiter.charge(
                &fwd.token_hash,
                token_rpm,
                &fwd.route.id,
                route_rpm,
                self.at_ms(),
            );
            rate_headers = core::ratelimit_headers(&d);
            if !d.allowed {
                let reject = Reject::new(
                    GatewayError::RateLimited,
                    format!("rate limit of {} requests per minute exceeded", d.limit),
                );
                let resp = error_answer(&reject, request_id, revision, &rate_headers);
                let size = resp.body.len() as u64;
                let subject = Subject::forward(&fwd);
                self.answered(sink, reject.status, reject.error, subject, facts, 0, size);
                return Admission::Answer(resp);
            }
        }
        Admission::Forward(Admitted {
            fwd,
            rate_headers,
            exchange: self,
        })
    }
}
