//! The request path: decide with the pure core, rate-limit, forward with streaming bodies,
//! answer errors as JSON, and record each answered request's usage once ([`Usage`]).

use crate::body::{Counted, OnDone};
use crate::metrics::Metrics;
use crate::snapshot::ConfigState;
use crate::usage::{Keep, UsageHub};
use bytes::Bytes;
use dashmap::DashMap;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use keygate_gateway_core as core;
use keygate_gateway_core::{Decision, GatewayError, Reject};
use keygate_proto::v1 as pb;
use keygate_rollup::RollupKeyRef;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a response streams: an error or preflight answer, or the backend's body.
pub type RespBody = Either<Full<Bytes>, OnDone<Counted<Incoming>, Box<dyn FnOnce() + Send>>>;
/// What a forwarded request streams.
pub type ReqBody = Counted<Incoming>;
/// The legacy pooled client: `https://` backends (and whatever [`Backends`] does not handle).
pub type BackendClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, ReqBody>;
/// One worker's backend connections: its own pool for `http://`, [`BackendClient`] for the rest.
pub type Backends = crate::pool::Backends<ReqBody>;

static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// A token's rate-limit state: its own limit and its per-route limits (one map entry per
/// token, so one request locks one entry).
#[derive(Default)]
struct LimitState {
    token: core::RateState,
    routes: std::collections::HashMap<String, core::RateState>,
}

impl LimitState {
    /// Back to a full bucket everywhere: nothing to remember.
    fn is_idle(&self, now_us: u64) -> bool {
        self.token.0 <= now_us && self.routes.values().all(|r| r.0 <= now_us)
    }
}

/// Everything a request needs, shared by every connection.
pub struct App {
    pub state: Arc<ConfigState>,
    pub usage: Arc<UsageHub>,
    pub metrics: Arc<Metrics>,
    pub core: core::Config,
    pub public_url: Option<String>,
    limits: DashMap<core::TokenHash, LimitState>,
    boot: u32,
}

impl App {
    pub fn new(
        state: Arc<ConfigState>,
        usage: Arc<UsageHub>,
        metrics: Arc<Metrics>,
        core: core::Config,
        public_url: Option<String>,
    ) -> Self {
        Self {
            state,
            usage,
            metrics,
            core,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
            limits: DashMap::new(),
            boot: rand::random(),
        }
    }

    /// Forgets rate-limit states that are back to full (their tokens are idle).
    pub fn prune_limits(&self, now_ms: i64) {
        let now_us = u64::try_from(now_ms).unwrap_or(0).saturating_mul(1000);
        self.limits.retain(|_, s| !s.is_idle(now_us));
    }
}

/// One worker thread's view of the gateway: the shared [`App`], its own backend pool, request
/// id counter and handle to the current snapshot.
///
/// Nothing here is written by another worker, so a request touches no cache line another core
/// writes: two workers incrementing one shared counter (an `Arc`'s refcount, a request id
/// sequence) would pass that line back and forth between cores on every request, which on
/// this kind of machine costs more than the request's own decision. Per-request clones are of
/// the worker's own `Arc`s; the shared snapshot is re-fetched only when the loader replaced it.
pub struct Worker {
    pub app: Arc<App>,
    pub backends: Backends,
    /// The high 8 bits of this worker's request ids' counter part.
    index: u8,
    seq: AtomicU64,
    snapshot: std::sync::Mutex<Option<(u64, Arc<WorkerSnapshot>)>>,
}

/// The current snapshot as one worker holds it.
pub struct WorkerSnapshot {
    pub snap: Arc<crate::snapshot::Snapshot>,
    /// `X-Keygate-Revision`, formatted once per snapshot and worker.
    pub revision_header: HeaderValue,
}

impl Worker {
    pub fn new(app: Arc<App>, backends: Backends, index: usize) -> Self {
        Self {
            app,
            backends,
            index: (index % 256) as u8,
            seq: AtomicU64::new(0),
            snapshot: std::sync::Mutex::new(None),
        }
    }

    /// The current snapshot: this worker's handle, refreshed when the loader stored a new one.
    pub fn snapshot(&self) -> Option<Arc<WorkerSnapshot>> {
        let generation = self.app.state.generation();
        let mut cached = self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((g, s)) = &*cached
            && *g == generation
        {
            return Some(s.clone());
        }
        let snap = self.app.state.load()?;
        let fresh = Arc::new(WorkerSnapshot {
            revision_header: HeaderValue::from(snap.revision),
            snap,
        });
        *cached = Some((generation, fresh.clone()));
        Some(fresh)
    }

    /// `gw-` + 8 hex digits of this process's boot id + 12 of the worker index (2) and its
    /// counter (10): unique per process run, cheap (no formatting machinery on the hot path).
    pub fn request_id(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = (u64::from(self.index) << 40)
            | (self.seq.fetch_add(1, Ordering::Relaxed) & 0xff_ffff_ffff);
        let boot = self.app.boot;
        let mut out = [0u8; 23];
        out[..3].copy_from_slice(b"gw-");
        for i in 0..8 {
            out[3 + i] = HEX[((boot >> (28 - 4 * i)) & 0xf) as usize];
        }
        for i in 0..12 {
            out[11 + i] = HEX[((n >> (44 - 4 * i)) & 0xf) as usize];
        }
        String::from_utf8(out.to_vec()).expect("ASCII")
    }
}

/// The caller's connection, formatted once per connection rather than per request.
#[derive(Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub ip: Arc<str>,
}

impl Peer {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            ip: addr.ip().to_string().into(),
        }
    }
}

/// What the gateway adds to a forwarded request besides the route's credential.
struct Added<'a> {
    /// `X-Forwarded-For`: the TCP peer's address.
    ip: &'a str,
    /// `X-Forwarded-Host`: the caller's `Host` (or HTTP/2 `:authority`), if any.
    host: Option<HeaderValue>,
    request_id: &'a str,
}

/// A pooled HTTP/1.1 + HTTP/2 client to backends, http and https (webpki roots).
pub fn backend_client() -> BackendClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(https)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Every value of one request header, on the stack for the usual zero to two values.
type Values<'a> = smallvec::SmallVec<[&'a [u8]; 2]>;

/// The request headers the decision reads, gathered in one pass over the map (cheaper than
/// one hashed lookup per name).
#[derive(Default)]
pub struct DecisionHeaders<'a> {
    api_key: Values<'a>,
    authorization: Values<'a>,
    /// The first value, as `HeaderMap::get` gives.
    origin: Option<&'a [u8]>,
    preflight_method: Option<&'a [u8]>,
}

impl<'a> DecisionHeaders<'a> {
    /// Takes one header of a raw head (`name` in any case) if the decision reads it; whether
    /// it did.
    pub fn offer(&mut self, name: &str, v: &'a [u8]) -> bool {
        match name.len() {
            9 if name.eq_ignore_ascii_case("x-api-key") => self.api_key.push(v),
            13 if name.eq_ignore_ascii_case("authorization") => self.authorization.push(v),
            6 if name.eq_ignore_ascii_case("origin") => {
                self.origin.get_or_insert(v);
            }
            29 if name.eq_ignore_ascii_case("access-control-request-method") => {
                self.preflight_method.get_or_insert(v);
            }
            _ => return false,
        }
        true
    }

    pub fn of(h: &'a HeaderMap) -> Self {
        let mut d = Self::default();
        for (name, value) in h {
            let v = value.as_bytes();
            if name == X_API_KEY {
                d.api_key.push(v);
            } else if name == header::AUTHORIZATION {
                d.authorization.push(v);
            } else if name == header::ORIGIN {
                d.origin.get_or_insert(v);
            } else if name == header::ACCESS_CONTROL_REQUEST_METHOD {
                d.preflight_method.get_or_insert(v);
            }
        }
        d
    }
}

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

    /// A refused request: the route once routing happened; the token when the snapshot knows
    /// the key (refused for scope, route, method or expiry), looked up only when usage is on.
    fn refused(reject: &'a Reject, snap: &'a crate::snapshot::Snapshot, usage_on: bool) -> Self {
        let token = reject
            .token_hash
            .as_ref()
            .filter(|_| usage_on)
            .and_then(|h| snap.tokens.get(h));
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

/// A [`Subject`] that outlives the request: the hyper front end completes a forwarded
/// request's usage when its response body ends, after the decision's borrows are gone. (The
/// HTTP/1.1 fast path, which serves the plain requests, completes it while they last.)
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
    pub peer: &'a Peer,
    pub user_agent: &'a [u8],
    pub request_id: &'a str,
    /// The config revision decided with (0 before any configuration).
    pub revision: i64,
}

/// One request's usage, from its arrival to its answer: counted in metrics when the answer's
/// head is known and, when usage reporting is on, recorded exactly once in the worker's
/// rollups (with its bytes, once they are known), with a raw event when one is kept
/// ([`crate::usage::UsageHub::keep`]). Nothing is copied or allocated for a request whose
/// event is not kept.
pub struct Usage {
    started: Instant,
    /// Arrival, ms since the epoch: the rollup minute and the event time.
    at_ms: i64,
    /// Usage reporting is on.
    on: bool,
    /// The answer's status and latency once its head is known (status 0: not yet).
    status: u16,
    latency_us: u64,
    /// The raw event, when this request's is kept: completed with its bytes by [`Usage::push`].
    event: Option<(Keep, Box<pb::UsageEvent>)>,
}

/// `v` as `HeaderValue::to_str` gives it: visible ASCII (and tabs), else empty.
fn visible_ascii(v: &[u8]) -> &str {
    if v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        std::str::from_utf8(v).unwrap_or("")
    } else {
        ""
    }
}

/// A raw event (bytes still 0).
fn usage_event(
    at_ms: i64,
    status: u16,
    error: &str,
    latency_us: u64,
    subject: &Subject<'_>,
    facts: &Facts<'_>,
) -> pb::UsageEvent {
    pb::UsageEvent {
        time: Some(timestamp(at_ms)),
        token_hash: subject.token_hash.map(|h| h.hex()).unwrap_or_default(),
        token_id: subject.token_id.to_owned(),
        team_id: subject.team_id.to_owned(),
        route: subject.route.to_owned(),
        method: facts.method.to_owned(),
        status: u32::from(status),
        error: error.to_owned(),
        latency_us,
        client_ip: facts.peer.ip.to_string(),
        user_agent: visible_ascii(facts.user_agent).chars().take(512).collect(),
        config_revision: facts.revision,
        request_id: facts.request_id.to_owned(),
        ..Default::default()
    }
}

impl Usage {
    /// A request's usage, started when it arrived (`started`, `now` in ms since the epoch).
    pub fn start(app: &App, started: Instant, now: i64) -> Self {
        Self {
            started,
            at_ms: now,
            on: app.usage.enabled(),
            status: 0,
            latency_us: 0,
            event: None,
        }
    }

    /// When the request arrived.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Whether the answer's head is known (metrics counted it): a forwarded request must then
    /// reach [`Usage::push`].
    pub fn head_is_done(&self) -> bool {
        self.status != 0
    }

    fn key<'k>(&self, subject: &Subject<'k>, status: u16, error: &'k str) -> RollupKeyRef<'k> {
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
    fn answered(
        self,
        app: &App,
        status: u16,
        error: &'static str,
        subject: Subject<'_>,
        facts: &Facts<'_>,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        let elapsed = self.started.elapsed();
        app.metrics
            .observe(subject.route_label(), status, elapsed.as_secs_f64());
        if !self.on {
            return;
        }
        let latency_us = elapsed.as_micros() as u64;
        let keep = app.usage.keep(status, true, self.at_ms, subject.token_id);
        if keep != Keep::No {
            let mut e = usage_event(self.at_ms, status, error, latency_us, &subject, facts);
            e.request_bytes = request_bytes;
            e.response_bytes = response_bytes;
            app.usage.push_event(keep, e, self.at_ms);
        }
        app.usage.record(
            self.key(&subject, status, error),
            latency_us,
            request_bytes,
            response_bytes,
        );
    }

    /// A forwarded request's response head is known: metrics now; status, latency and the
    /// event (when kept) for [`Usage::push`], which records it when the body ends.
    pub fn head_done(&mut self, app: &App, status: u16, subject: Subject<'_>, facts: &Facts<'_>) {
        let elapsed = self.started.elapsed();
        app.metrics
            .observe(subject.route_label(), status, elapsed.as_secs_f64());
        if !self.on {
            return;
        }
        self.status = status;
        self.latency_us = elapsed.as_micros() as u64;
        let keep = app.usage.keep(status, false, self.at_ms, subject.token_id);
        if keep != Keep::No {
            let e = usage_event(self.at_ms, status, "", self.latency_us, &subject, facts);
            self.event = Some((keep, Box::new(e)));
        }
    }

    /// Records a forwarded request whose head was answered, with its byte counts (usage on
    /// only; nothing when no head was answered: the request was not answered).
    pub fn push(self, app: &App, subject: Subject<'_>, request_bytes: u64, response_bytes: u64) {
        if !self.on || self.status == 0 {
            return;
        }
        app.usage.record(
            self.key(&subject, self.status, ""),
            self.latency_us,
            request_bytes,
            response_bytes,
        );
        if let Some((keep, mut e)) = self.event {
            e.request_bytes = request_bytes;
            e.response_bytes = response_bytes;
            app.usage.push_event(keep, *e, self.at_ms);
        }
    }

    /// A forwarded request that failed before a response head (backend error, timeout, a
    /// URL that cannot be sent): its JSON answer, recorded.
    pub fn failed(
        self,
        app: &App,
        reject: Reject,
        facts: &Facts<'_>,
        rate_headers: &[(&'static str, String)],
        subject: Subject<'_>,
        request_bytes: u64,
    ) -> core::Answer {
        let resp = error_response(
            &reject,
            facts.request_id,
            Some(facts.revision),
            rate_headers,
        );
        let size = resp.body.len() as u64;
        self.answered(
            app,
            reject.status,
            reject.error,
            subject,
            facts,
            request_bytes,
            size,
        );
        resp
    }
}

fn full(b: impl Into<Bytes>) -> RespBody {
    Either::Left(Full::new(b.into()))
}

/// The JSON error answer for `reject` (the core's [`core::Answer::error`]).
fn error_response(
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

/// A gateway answer as hyper's response.
fn to_response(a: core::Answer) -> Response<RespBody> {
    let mut r = Response::new(full(a.body));
    *r.status_mut() = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in &a.headers {
        core::HeaderSink::put(&mut MapSink(r.headers_mut()), k, v);
    }
    r
}

/// An `http::HeaderMap` as the core's [`core::HeaderSink`]: headers are appended; a name or
/// value `http` refuses is left out.
pub struct MapSink<'m>(pub &'m mut HeaderMap);

impl core::HeaderSink for MapSink<'_> {
    fn put(&mut self, name: &str, value: &[u8]) {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            self.0.append(n, v);
        }
    }
}

/// The 503 answer before any configuration is loaded, recorded.
pub fn not_ready(app: &App, usage: Usage, facts: &Facts<'_>) -> core::Answer {
    let reject = Reject::of(GatewayError::NotReady);
    let resp = error_response(
        &reject,
        facts.request_id,
        None,
        &[("retry-after", "1".into())],
    );
    let size = resp.body.len() as u64;
    usage.answered(
        app,
        reject.status,
        reject.error,
        Subject::default(),
        facts,
        0,
        size,
    );
    resp
}

/// What [`admit`] makes of a decision.
// Returned once per request and destructured at once: boxing the large variant would cost an
// allocation per forwarded request.
#[allow(clippy::large_enum_variant)]
pub enum Admission<'s> {
    /// The gateway answers itself (an error, a CORS preflight, a rate limit); metrics and the
    /// usage event are recorded.
    Answer(core::Answer),
    /// Forward: the request passed the decision and its rate limits.
    Forward(Admitted<'s>),
}

/// A request to forward.
pub struct Admitted<'s> {
    pub fwd: core::Forward<'s>,
    /// `RateLimit-*` headers for the answer, when a limit applies.
    pub rate_headers: Vec<(&'static str, String)>,
    pub usage: Usage,
}

/// What every front end does with the core's decision (HTTP/1 fast path and hyper alike):
/// answers refused requests and preflights, attributes the usage event, and charges the
/// token's and the route's rate limits (both or neither). `snap` is the snapshot `decision`
/// was made against, `now` the request's arrival in ms since the epoch.
pub fn admit<'s>(
    app: &App,
    snap: &'s crate::snapshot::Snapshot,
    decision: Decision<'s>,
    usage: Usage,
    facts: &Facts<'_>,
    now: i64,
) -> Admission<'s> {
    let request_id = facts.request_id;
    let revision = Some(snap.revision);
    let fwd = match decision {
        Decision::Reject(reject) => {
            let resp = error_response(&reject, request_id, revision, &[]);
            let size = resp.body.len() as u64;
            let subject = Subject::refused(&reject, snap, usage.on);
            usage.answered(app, reject.status, reject.error, subject, facts, 0, size);
            return Admission::Answer(resp);
        }
        Decision::Preflight(p) => {
            let r = core::Answer::preflight(&p, request_id);
            let subject = Subject {
                route: &p.route,
                ..Subject::default()
            };
            usage.answered(app, p.status, "", subject, facts, 0, 0);
            return Admission::Answer(r);
        }
        Decision::Forward(f) => f,
    };

    // Rate limits: the token's own and the route's per-token limit, both or neither charged.
    let mut rate_headers: Vec<(&'static str, String)> = Vec::new();
    let token_rpm = fwd.token.rpm;
    if token_rpm > 0 || fwd.route.rpm > 0 {
        let d = {
            let mut entry = app.limits.entry(fwd.token_hash).or_default();
            let state = &mut *entry;
            let mut route_state = if fwd.route.rpm > 0 {
                state.routes.remove(&fwd.route.id).unwrap_or_default()
            } else {
                core::RateState::default()
            };
            let d = core::gcra_all(
                &mut [
                    core::Limit {
                        state: &mut state.token,
                        per_minute: token_rpm,
                        burst: core::default_burst(token_rpm),
                    },
                    core::Limit {
                        state: &mut route_state,
                        per_minute: fwd.route.rpm,
                        burst: core::default_burst(fwd.route.rpm),
                    },
                ],
                now,
            );
            if fwd.route.rpm > 0 {
                state.routes.insert(fwd.route.id.clone(), route_state);
            }
            d
        };
        rate_headers = core::ratelimit_headers(&d);
        if !d.allowed {
            let reject = Reject::new(
                GatewayError::RateLimited,
                format!("rate limit of {} requests per minute exceeded", d.limit),
            );
            let resp = error_response(&reject, request_id, revision, &rate_headers);
            let size = resp.body.len() as u64;
            let subject = Subject::forward(&fwd);
            usage.answered(app, reject.status, reject.error, subject, facts, 0, size);
            return Admission::Answer(resp);
        }
    }
    Admission::Forward(Admitted {
        fwd,
        rate_headers,
        usage,
    })
}

/// A backend that failed (`error`) or did not answer within the route's timeout (`None`):
/// counted, logged with the request id, and the caller's 502 / 504. The answer never names
/// the backend.
pub fn backend_failure(
    app: &App,
    route: &core::Route,
    request_id: &str,
    error: Option<&dyn std::fmt::Display>,
) -> Reject {
    match error {
        Some(e) => {
            app.metrics.backend_errors.inc();
            tracing::warn!(route = %route.name, request_id = %request_id, error = %e, "backend request failed");
            Reject::of(GatewayError::BadGateway)
        }
        None => {
            app.metrics.backend_timeouts.inc();
            tracing::warn!(route = %route.name, request_id = %request_id, timeout_ms = route.timeout_ms, "backend timed out");
            Reject::of(GatewayError::GatewayTimeout)
        }
    }
}

/// The request headers the decision reads, as the core wants them.
pub fn incoming<'a>(
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    h: &'a DecisionHeaders<'_>,
) -> core::Incoming<'a> {
    core::Incoming {
        method,
        path,
        query,
        api_key: h.api_key.as_slice(),
        authorization: h.authorization.as_slice(),
        origin: h.origin,
        preflight_method: h.preflight_method,
    }
}

/// Handles one request with `backends`, the calling worker thread's own connection pool
/// (connections stay on the thread that opened them). Never fails: every problem becomes a JSON error answer.
pub async fn handle(
    worker: Arc<Worker>,
    req: Request<Incoming>,
    peer: Peer,
) -> Result<Response<RespBody>, Infallible> {
    let app: &App = &worker.app;
    let started = Instant::now();
    let now = now_ms();
    let request_id = worker.request_id();
    let keep = app.usage.enabled();
    let usage = Usage::start(app, started, now);
    let user_agent = req.headers().get(header::USER_AGENT);
    let facts = Facts {
        method: req.method().as_str(),
        peer: &peer,
        user_agent: user_agent.map_or(&b""[..], |v| v.as_bytes()),
        request_id: &request_id,
        revision: 0,
    };
    let Some(current) = worker.snapshot() else {
        return Ok(to_response(not_ready(app, usage, &facts)));
    };
    let snap = &current.snap;
    let revision = snap.revision;

    let decision = {
        let h = DecisionHeaders::of(req.headers());
        let incoming = incoming(
            req.method().as_str(),
            req.uri().path(),
            req.uri().query(),
            &h,
        );
        core::decide_with(&incoming, &snap.routes, &snap.tokens, now, &app.core)
    };
    let facts = Facts { revision, ..facts };
    let Admitted {
        mut fwd,
        rate_headers,
        mut usage,
    } = match admit(app, snap, decision, usage, &facts, now) {
        Admission::Answer(r) => return Ok(to_response(r)),
        Admission::Forward(a) => a,
    };
    let subject = Subject::forward(&fwd);
    // What a raw event copies, kept past the request's head (usage on only; a header
    // value's clone shares its bytes).
    let user_agent = user_agent.filter(|_| keep).cloned();

    let (mut parts, body) = req.into_parts();
    let method = parts.method.clone();
    let facts = Facts {
        method: method.as_str(),
        peer: &peer,
        user_agent: user_agent.as_ref().map_or(&b""[..], |v| v.as_bytes()),
        request_id: &request_id,
        revision,
    };
    // The caller's Host (HTTP/2: :authority), kept as the header value it arrived as.
    let host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let upgrade = parts.headers.get(header::UPGRADE).cloned();
    // Bytes are only counted for usage.
    let request_bytes = keep.then(|| Arc::new(AtomicU64::new(0)));
    let counted = match &request_bytes {
        Some(n) => Counted::new(body, n.clone()),
        None => Counted::uncounted(body),
    };
    let mut out = Request::new(counted);
    *out.method_mut() = std::mem::take(&mut parts.method);
    {
        let headers = out.headers_mut();
        *headers = outgoing_headers(
            std::mem::take(&mut parts.headers),
            fwd.credential(),
            Added {
                ip: &peer.ip,
                host: host.clone(),
                request_id: &request_id,
            },
        );
        if let Some(u) = upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, u);
        }
    }
    // The URL string moves into the URI (parsed, not copied).
    match http::Uri::try_from(std::mem::take(&mut fwd.url)) {
        Ok(uri) => *out.uri_mut() = uri,
        Err(_) => {
            let reject = Reject::new(GatewayError::BadRequest, "the request cannot be forwarded");
            let resp = usage.failed(app, reject, &facts, &[], subject, 0);
            return Ok(to_response(resp));
        }
    };
    let client_upgrade = out
        .headers()
        .contains_key(header::UPGRADE)
        .then(|| parts.extensions.remove::<hyper::upgrade::OnUpgrade>())
        .flatten();

    let timeout = Duration::from_millis(u64::from(fwd.route.timeout_ms.max(1)));
    // The deadline counts from when the request arrived (and saves a clock read).
    let deadline = tokio::time::Instant::from_std(started) + timeout;
    let outcome = match tokio::time::timeout_at(deadline, worker.backends.request(out)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(backend_failure(app, fwd.route, &request_id, Some(&e))),
        Err(_) => Err(backend_failure(app, fwd.route, &request_id, None)),
    };
    let mut resp = match outcome {
        Ok(r) => r,
        Err(reject) => {
            let sent = request_bytes
                .as_ref()
                .map_or(0, |n| n.load(Ordering::Relaxed));
            let resp = usage.failed(app, reject, &facts, &rate_headers, subject, sent);
            return Ok(to_response(resp));
        }
    };
    let status = resp.status();

    // WebSocket and other upgrades: splice the two upgraded connections together.
    if status == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_up) = client_upgrade
    {
        let backend_up = hyper::upgrade::on(&mut resp);
        let rid = request_id.clone();
        tokio::spawn(async move {
            match tokio::try_join!(client_up, backend_up) {
                Ok((c, b)) => {
                    let mut c = hyper_util::rt::TokioIo::new(c);
                    let mut b = hyper_util::rt::TokioIo::new(b);
                    let _ = tokio::io::copy_bidirectional(&mut c, &mut b).await;
                }
                Err(e) => tracing::debug!(request_id = %rid, error = %e, "upgrade failed"),
            }
        });
    }

    let (mut rparts, rbody) = resp.into_parts();
    let answer = core::AnswerHeaders {
        request_id: &request_id,
        revision: Some(current.revision_header.as_bytes()),
        extra: &rate_headers,
        cors_origin: fwd.cors_origin.as_deref(),
    };
    keep_passing(
        &mut rparts.headers,
        &answer,
        status == StatusCode::SWITCHING_PROTOCOLS,
    );
    if let Some(loc) = rparts
        .headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
    {
        let host = host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("");
        let public = core::public_base(app.public_url.as_deref(), host);
        if let Some(new) = core::rewrite_location(loc, fwd.route, &public)
            && let Ok(v) = HeaderValue::from_str(&new)
        {
            rparts.headers.insert(header::LOCATION, v);
        }
    }
    answer.put(&mut MapSink(&mut rparts.headers));

    // Latency and status are known now; bytes when the response body ends.
    usage.head_done(app, status.as_u16(), subject, &facts);
    let Some(request_bytes) = request_bytes else {
        // Usage off: the body streams through untouched.
        let body = OnDone::inert(Counted::uncounted(rbody));
        return Ok(Response::from_parts(rparts, Either::Right(body)));
    };
    let response_bytes = Arc::new(AtomicU64::new(0));
    let (rb, app) = (response_bytes.clone(), worker.app.clone());
    let subject = OwnedSubject::of(subject);
    let done: Box<dyn FnOnce() + Send> = Box::new(move || {
        let (sent, received) = (
            request_bytes.load(Ordering::Relaxed),
            rb.load(Ordering::Relaxed),
        );
        usage.push(&app, subject.subject(), sent, received);
    });
    let body = OnDone::new(Counted::new(rbody, response_bytes), done);
    Ok(Response::from_parts(rparts, Either::Right(body)))
}

/// The request headers for the backend: the caller's map filtered in place by the core's rule
/// ([`core::forwards_request_header`]), then the same additions in the same order as
/// [`core::forward_headers`] (kept equal by a test).
fn outgoing_headers(
    mut h: HeaderMap,
    credential: Option<(&str, &str)>,
    added: Added<'_>,
) -> HeaderMap {
    let named = core::connection_named(h.get_all(header::CONNECTION).iter().map(|v| v.as_bytes()));
    let credential_name = credential.map(|(n, _)| n);
    // Usually two or three names go (the key, Host, Connection): no allocation for those.
    let mut drop: [Option<HeaderName>; 4] = Default::default();
    let mut more: Vec<HeaderName> = Vec::new();
    let mut n = 0;
    for k in h.keys() {
        if !core::forwards_request_header(k.as_str(), &named, credential_name) {
            match drop.get_mut(n) {
                Some(slot) => *slot = Some(k.clone()),
                None => more.push(k.clone()),
            }
            n += 1;
        }
    }
    for k in drop.into_iter().flatten().chain(more) {
        h.remove(k);
    }
    let client = core::Client {
        ip: added.ip,
        // The native gateway does not terminate TLS.
        proto: "http",
        host: added
            .host
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .unwrap_or(""),
    };
    core::put_forward_additions(&mut MapSink(&mut h), &client, added.request_id, credential);
    h
}

/// Keeps the backend's response headers that reach the caller ([`core::AnswerHeaders::passes`]),
/// in place; an upgrade answer keeps `Connection` and `Upgrade`.
fn keep_passing(h: &mut HeaderMap, answer: &core::AnswerHeaders<'_>, upgrade: bool) {
    let named = if upgrade {
        Vec::new()
    } else {
        core::connection_named(h.get_all(header::CONNECTION).iter().map(|v| v.as_bytes()))
    };
    let drop: Vec<HeaderName> = h
        .keys()
        .filter(|k| !answer.passes(k.as_str(), &named, upgrade))
        .cloned()
        .collect();
    for k in drop {
        h.remove(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A forwarded answer's headers on the hyper path: the backend's filtered in place by the
    /// core's rule, then the gateway's own; an upgrade keeps `Connection` and `Upgrade`.
    #[test]
    fn answer_headers_follow_the_core() {
        let backend: &[(&str, &str)] = &[
            ("content-type", "text/plain"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("upgrade", "h2c"),
            ("proxy-authenticate", "Basic"),
            ("proxy-connection", "close"),
            ("x-request-id", "backend-made"),
            ("x-keygate-revision", "0"),
            ("ratelimit-limit", "999"),
            ("access-control-allow-origin", "*"),
            ("vary", "Accept"),
            ("x-ok", "2"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
        ];
        let headers = |upgrade: bool| {
            let mut h = HeaderMap::new();
            for (k, v) in backend {
                h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
            }
            let rate = [("ratelimit-limit", "10".to_owned())];
            let answer = core::AnswerHeaders {
                request_id: "gw-1",
                revision: Some(b"42"),
                extra: &rate,
                cors_origin: Some("https://app.example"),
            };
            keep_passing(&mut h, &answer, upgrade);
            answer.put(&mut MapSink(&mut h));
            let mut got: Vec<(String, String)> = h
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
                .collect();
            got.sort();
            got
        };
        let pairs = |v: &[(&str, &str)]| {
            let mut v: Vec<(String, String)> = v
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            v.sort();
            v
        };
        let mut want = vec![
            ("content-type", "text/plain"),
            ("vary", "Accept"),
            ("vary", "Origin"),
            ("x-ok", "2"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("x-request-id", "gw-1"),
            ("x-keygate-revision", "42"),
            ("ratelimit-limit", "10"),
            ("access-control-allow-origin", "https://app.example"),
            (
                "access-control-expose-headers",
                "x-request-id, ratelimit-limit, ratelimit-remaining, ratelimit-reset, retry-after",
            ),
        ];
        assert_eq!(headers(false), pairs(&want));
        // An upgrade answer: Connection and Upgrade stay, and so does what Connection names
        // (it names headers of the upgraded exchange, not hop-by-hop ones).
        want.extend([
            ("connection", "keep-alive, x-private"),
            ("upgrade", "h2c"),
            ("x-private", "1"),
        ]);
        assert_eq!(headers(true), pairs(&want));
    }

    /// The in-place request filter produces what the core's `forward_headers` produces.
    #[test]
    fn outgoing_headers_agree_with_the_core() {
        let (routes, token) = (
            crate::fixtures::routes("api_key", "X-Backend-Key"),
            crate::fixtures::token(),
        );
        let fwd = crate::fixtures::forward(&routes, &token, None);
        assert_eq!(fwd.credential(), Some(("x-backend-key", "s3cret")));
        let client = core::Client {
            ip: "10.0.0.1",
            proto: "http",
            host: "gw.example",
        };
        let incoming: &[(&str, &str)] = &[
            ("accept", "*/*"),
            ("x-api-key", "kg_secret"),
            ("authorization", "Bearer kg_secret"),
            ("connection", "keep-alive, x-drop-me"),
            ("x-drop-me", "1"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-request-id", "spoofed"),
            ("x-backend-key", "caller-made"),
            ("cookie", "a=1"),
            ("host", "gw.example"),
            ("content-type", "application/json"),
            ("x-custom", "1"),
            ("x-custom", "2"),
        ];
        let mut h = HeaderMap::new();
        for (k, v) in incoming {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let mut want = core::forward_headers(
            incoming.iter().map(|(k, v)| (*k, v.as_bytes())),
            &fwd,
            &client,
            "gw-1",
        );
        let added = Added {
            ip: "10.0.0.1",
            host: Some(HeaderValue::from_static("gw.example")),
            request_id: "gw-1",
        };
        let mut got: Vec<(String, Vec<u8>)> = outgoing_headers(h, fwd.credential(), added)
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want);
    }

    /// The one-pass gathering gives what `get_all` / `get` give, for repeated names too.
    #[test]
    fn decision_headers_equal_lookups() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("x-api-key", "a"), ("accept", "*/*")],
            &[("x-api-key", "a"), ("x-api-key", "b"), ("x-api-key", "c")],
            &[
                ("authorization", "Basic x"),
                ("origin", "https://a"),
                ("authorization", "Bearer k"),
                ("origin", "https://b"),
                ("access-control-request-method", "PUT"),
                ("authorization", "Bearer j"),
            ],
        ];
        for case in cases {
            let mut h = HeaderMap::new();
            for (k, v) in *case {
                h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
            }
            let d = DecisionHeaders::of(&h);
            let all = |n: &HeaderName| -> Vec<&[u8]> {
                h.get_all(n).iter().map(|v| v.as_bytes()).collect()
            };
            assert_eq!(d.api_key.as_slice(), all(&X_API_KEY), "{case:?}");
            assert_eq!(d.authorization.as_slice(), all(&header::AUTHORIZATION));
            assert_eq!(d.origin, h.get(header::ORIGIN).map(|v| v.as_bytes()));
            assert_eq!(
                d.preflight_method,
                h.get(header::ACCESS_CONTROL_REQUEST_METHOD)
                    .map(|v| v.as_bytes())
            );
        }
    }

    #[test]
    fn request_ids_are_unique_and_well_formed() {
        let app = App::new(
            Arc::new(ConfigState::default()),
            Arc::new(UsageHub::disabled()),
            Arc::new(Metrics::new()),
            core::Config::default(),
            None,
        );
        let app = Arc::new(app);
        let pool = || Backends::new(backend_client());
        let (w0, w1) = (
            Worker::new(app.clone(), pool(), 0),
            Worker::new(app, pool(), 1),
        );
        let a = w0.request_id();
        let b = w0.request_id();
        let c = w1.request_id();
        assert_ne!(a, b);
        assert_ne!(a, c, "workers count apart");
        assert_eq!(a[..11], c[..11], "same boot id");
        assert_eq!(a.len(), 23);
        assert!(a.starts_with("gw-"));
        assert!(a[3..].bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
