//! One request's context from its arrival to its answer: who it is counted for, what a raw
//! event copies, and recording it exactly once.

use crate::host::{Failure, Keep, Started, UsageSink};
use keygate_gateway_core::{self as core, GatewayError, Reject};
use keygate_rollup::RollupKeyRef;

/// Who a request is counted for: its rollup key's token, team and route (`""`: none), and
/// the hash of the key it presented (for a raw event).
#[derive(Clone, Copy, Default)]
pub struct Subject<'a> {
    pub token_hash: Option<core::TokenHash>,
    pub token_id: &'a str,
    pub team_id: &'a str,
    pub route: &'a str,
}

impl<'a> Subject<'a> {
    /// A request that passed the decision: its token and route.
    pub fn forward(fwd: &core::Forward<'a>) -> Self {
        Self {
            token_hash: Some(fwd.token_hash),
            token_id: &fwd.token.id,
            team_id: &fwd.token.team,
            route: &fwd.route.name,
        }
    }

    /// A refused request: the route once routing happened; the token when `tokens` knows the
    /// key (refused for scope, route, method or expiry), looked up only when usage is on.
    pub(crate) fn refused(
        reject: &'a Reject,
        tokens: &'a impl core::TokenSource,
        usage_on: bool,
    ) -> Self {
        let token = reject
            .token_hash
            .as_ref()
            .filter(|_| usage_on)
            .and_then(|h| tokens.token(h));
        Self {
            token_hash: reject.token_hash,
            token_id: token.map_or("", |t| &t.id),
            team_id: token.map_or("", |t| &t.team),
            route: reject.route.as_deref().unwrap_or(""),
        }
    }

    /// The metrics' route label: the name, or `-` when no route matched.
    fn route_label(&self) -> &'a str {
        if self.route.is_empty() {
            "-"
        } else {
            self.route
        }
    }
}

/// A [`Subject`] that outlives the request: a host that finishes a forwarded request when its
/// response body ends, after the decision's borrows are gone (the hyper front end).
pub struct OwnedSubject {
    token_id: String,
    team_id: String,
    route: String,
}

impl OwnedSubject {
    pub fn of(s: Subject<'_>) -> Self {
        Self {
            token_id: s.token_id.to_owned(),
            team_id: s.team_id.to_owned(),
            route: s.route.to_owned(),
        }
    }

    pub fn subject(&self) -> Subject<'_> {
        Subject {
            token_hash: None,
            token_id: &self.token_id,
            team_id: &self.team_id,
            route: &self.route,
        }
    }
}

/// What the caller sent that a raw usage event copies; read only when one is kept.
#[derive(Clone, Copy)]
pub struct Facts<'a> {
    pub method: &'a str,
    pub client_ip: &'a str,
    /// The raw `User-Agent` value (empty: none).
    pub user_agent: &'a [u8],
    pub request_id: &'a str,
    /// The config revision decided with (0 before any configuration).
    pub revision: i64,
}

/// A raw usage event, as the pipeline hands it to the host's [`UsageSink::push_event`] (which
/// converts it to its wire form).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageEvent {
    /// The request's arrival, ms since the epoch.
    pub time_ms: i64,
    /// Lowercase hex of the presented key's hash (empty: none could be hashed).
    pub token_hash: String,
    pub token_id: String,
    pub team_id: String,
    pub route: String,
    pub method: String,
    pub status: u16,
    /// The gateway's error code (empty: none).
    pub error: &'static str,
    pub latency_us: u64,
    pub client_ip: String,
    /// Visible ASCII only (else empty), at most 512 characters.
    pub user_agent: String,
    pub config_revision: i64,
    pub request_id: String,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

impl UsageEvent {
    /// An event (bytes still 0).
    fn new(
        at_ms: i64,
        status: u16,
        error: &'static str,
        latency_us: u64,
        subject: &Subject<'_>,
        facts: &Facts<'_>,
    ) -> Self {
        Self {
            time_ms: at_ms,
            token_hash: subject.token_hash.map(|h| h.hex()).unwrap_or_default(),
            token_id: subject.token_id.to_owned(),
            team_id: subject.team_id.to_owned(),
            route: subject.route.to_owned(),
            method: facts.method.to_owned(),
            status,
            error,
            latency_us,
            client_ip: facts.client_ip.to_owned(),
            user_agent: visible_ascii(facts.user_agent).chars().take(512).collect(),
            config_revision: facts.revision,
            request_id: facts.request_id.to_owned(),
            request_bytes: 0,
            response_bytes: 0,
        }
    }
}

/// `v` as `http::HeaderValue::to_str` gives it: visible ASCII (and tabs), else empty.
fn visible_ascii(v: &[u8]) -> &str {
    if v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        std::str::from_utf8(v).unwrap_or("")
    } else {
        ""
    }
}

/// The JSON error answer for `reject` ([`core::Answer::error`]) with the gateway's headers:
/// the request id, the revision (none before any configuration) and `extra` (rate limits).
pub fn error_answer(
    reject: &Reject,
    request_id: &str,
    revision: Option<i64>,
    extra: &[(&'static str, String)],
) -> core::Answer {
    let revision = revision.map(|v| v.to_string());
    core::Answer::error(
        reject,
        &core::AnswerHeaders {
            request_id,
            revision: revision.as_deref().map(str::as_bytes),
            extra,
            cors_origin: None,
        },
    )
}

/// One request, from its arrival to its answer: counted in metrics when the answer's head is
/// known and, when usage reporting is on, recorded exactly once in the host's rollups (with its
/// bytes, once they are known), with a raw event when one is kept ([`UsageSink::keep`]).
/// Nothing is copied or allocated for a request whose event is not kept.
///
/// Every phase that ends the request takes it by value, so it cannot be recorded twice:
///
/// ```compile_fail
/// # use keygate_gateway_pipeline::*;
/// fn twice<T: Started, S: UsageSink>(x: Exchange<T>, sink: &S) {
///     x.finish(sink, Subject::default(), 0, 0);
///     x.finish(sink, Subject::default(), 0, 0); // use of moved value
/// }
/// ```
///
/// Dropped before its answer's head, a request is not recorded (it was not answered).
pub struct Exchange<T> {
    started: T,
    /// Arrival, ms since the epoch: the rollup minute, the event time, rate limiting's now.
    at_ms: i64,
    /// Usage reporting is on.
    on: bool,
    /// The answer's status and latency once its head is known (status 0: not yet).
    status: u16,
    latency_us: u64,
    /// The raw event, when this request's is kept: completed with its bytes by
    /// [`Exchange::finish`].
    event: Option<(Keep, Box<UsageEvent>)>,
}

impl<T: Started> Exchange<T> {
    /// A request that arrived at `started` (the host's monotonic reading) and `at_ms` (ms
    /// since the epoch).
    pub fn start(sink: &impl UsageSink, started: T, at_ms: i64) -> Self {
        Self {
            started,
            at_ms,
            on: sink.enabled(),
            status: 0,
            latency_us: 0,
            event: None,
        }
    }

    /// When the request arrived, ms since the epoch.
    pub fn at_ms(&self) -> i64 {
        self.at_ms
    }

    /// Usage reporting is on for this request (byte counts are wanted).
    pub fn usage_on(&self) -> bool {
        self.on
    }

    /// Whether the answer's head is known (metrics counted it): a forwarded request must then
    /// reach [`Exchange::finish`].
    pub fn head_is_done(&self) -> bool {
        self.status != 0
    }

    pub(crate) fn key<'k>(
        &self,
        subject: &Subject<'k>,
        status: u16,
        error: &'k str,
    ) -> RollupKeyRef<'k> {
        RollupKeyRef {
            minute: keygate_rollup::minute_of(self.at_ms),
            token_id: subject.token_id,
            team_id: subject.team_id,
            route: subject.route,
            status,
            error,
        }
    }

    /// The gateway answered itself (refusal, preflight, rate limit, 502/504, not ready):
    /// metrics, and when usage is on, the rollup (and the event, when kept).
    #[allow(clippy::too_many_arguments)] // each is one fact of the answer
    pub(crate) fn answered(
        self,
        sink: &impl UsageSink,
        status: u16,
        error: &'static str,
        subject: Subject<'_>,
        facts: &Facts<'_>,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        let elapsed = self.started.elapsed();
        sink.observe(subject.route_label(), status, elapsed);
        if !self.on {
            return;
        }
        let latency_us = elapsed.as_micros() as u64;
        let keep = sink.keep(status, true, self.at_ms, subject.token_id);
        if keep != Keep::No {
            let mut e = UsageEvent::new(self.at_ms, status, error, latency_us, &subject, facts);
            e.request_bytes = request_bytes;
            e.response_bytes = response_bytes;
            sink.push_event(keep, e);
        }
        sink.record(
            self.key(&subject, status, error),
            latency_us,
            request_bytes,
            response_bytes,
        );
    }

    /// The 503 answer before any configuration is loaded, recorded.
    pub fn not_ready(self, sink: &impl UsageSink, facts: &Facts<'_>) -> core::Answer {
        let reject = Reject::of(GatewayError::NotReady);
        let resp = error_answer(
            &reject,
            facts.request_id,
            None,
            &[("retry-after", "1".into())],
        );
        let size = resp.body.len() as u64;
        self.answered(
            sink,
            reject.status,
            reject.error,
            Subject::default(),
            facts,
            0,
            size,
        );
        resp
    }

    /// A forwarded request's response head is known: metrics now; status, latency and the
    /// event (when kept) for [`Exchange::finish`], which records it when the body ends.
    pub fn head_done(
        &mut self,
        sink: &impl UsageSink,
        status: u16,
        subject: Subject<'_>,
        facts: &Facts<'_>,
    ) {
        let elapsed = self.started.elapsed();
        sink.observe(subject.route_label(), status, elapsed);
        if !self.on {
            return;
        }
        self.status = status;
        self.latency_us = elapsed.as_micros() as u64;
        let keep = sink.keep(status, false, self.at_ms, subject.token_id);
        if keep != Keep::No {
            let e = UsageEvent::new(self.at_ms, status, "", self.latency_us, &subject, facts);
            self.event = Some((keep, Box::new(e)));
        }
    }

    /// Records a forwarded request whose head was answered, with its byte counts (usage on
    /// only; nothing when no head was answered: the request was not answered).
    pub fn finish(
        self,
        sink: &impl UsageSink,
        subject: Subject<'_>,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        if !self.on || self.status == 0 {
            return;
        }
        sink.record(
            self.key(&subject, self.status, ""),
            self.latency_us,
            request_bytes,
            response_bytes,
        );
        if let Some((keep, mut e)) = self.event {
            e.request_bytes = request_bytes;
            e.response_bytes = response_bytes;
            sink.push_event(keep, *e);
        }
    }

    /// A forwarded request that failed before a response head (`failure`): the backend
    /// failure counted and logged by the sink, the caller's JSON answer (400 for an
    /// unforwardable URL, without rate headers; 502 / 504 with them), recorded with the
    /// `request_bytes` sent.
    pub fn failed(
        self,
        sink: &impl UsageSink,
        failure: Failure<'_>,
        fwd: &core::Forward<'_>,
        rate_headers: &[(&'static str, String)],
        facts: &Facts<'_>,
        request_bytes: u64,
    ) -> core::Answer {
        let (reject, extra) = match failure {
            Failure::Unforwardable => (
                Reject::new(GatewayError::BadRequest, "the request cannot be forwarded"),
                &[][..],
            ),
            Failure::Timeout => {
                sink.backend_failed(fwd.route, facts.request_id, &failure);
                (Reject::of(GatewayError::GatewayTimeout), rate_headers)
            }
            Failure::Backend(_) => {
                sink.backend_failed(fwd.route, facts.request_id, &failure);
                (Reject::of(GatewayError::BadGateway), rate_headers)
            }
        };
        let resp = error_answer(&reject, facts.request_id, Some(facts.revision), extra);
        let size = resp.body.len() as u64;
        self.answered(
            sink,
            reject.status,
            reject.error,
            Subject::forward(fwd),
            facts,
            request_bytes,
            size,
        );
        resp
    }
}
