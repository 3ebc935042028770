//! The pipeline's phases driven as a host drives them, against a recording sink.

use crate::*;
use keygate_gateway_core::{self as core, Decision, vectors};
use keygate_rollup::RollupKeyRef;
use std::cell::RefCell;
use std::time::Duration;

const NOW: i64 = 1_767_225_600_000;
/// tok_all (scope `*`, 3 requests per minute).
const ALL: &str = "kg_20Jz06uzy3Ojv1BvW72GHW8qGNqsqLEHMdYLl0fth933DsYCL";
/// tok_web (scope `web` only).
const WEB: &str = "kg_CiBfkNoKtZLgLRxak3Tm3cyjlmPphR1qmb0QkLVcpuu0D8eSo";

const FIXTURE: &str = r#"{
  "description": "pipeline",
  "fixture": {
    "edge_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    "legacy_prefixes": [],
    "now_ms": 1767225600000,
    "routes": {"v": 1, "routes": [
      {"id": "rte_web", "name": "web", "team": "team-a", "prefix": "/web",
       "backend": "http://web.internal/", "strip": true, "timeout_ms": 1000,
       "auth": {"type": "none"}, "cors_origins": ["https://app.example"]},
      {"id": "rte_limited", "name": "limited", "team": "team-a", "prefix": "/limited",
       "backend": "http://limited.internal/", "strip": true, "timeout_ms": 1000,
       "auth": {"type": "none"}, "rpm": 2}
    ]},
    "tokens": [
      {"key": "kg_20Jz06uzy3Ojv1BvW72GHW8qGNqsqLEHMdYLl0fth933DsYCL",
       "record": {"v": 1, "id": "tok_all", "team": "team-a", "scopes": ["*"], "rpm": 3}},
      {"key": "kg_CiBfkNoKtZLgLRxak3Tm3cyjlmPphR1qmb0QkLVcpuu0D8eSo",
       "record": {"v": 1, "id": "tok_web", "team": "team-b", "scopes": ["web"]}}
    ],
    "secrets": []
  }
}"#;

fn loaded() -> vectors::Loaded {
    let file = vectors::parse(FIXTURE).unwrap();
    vectors::load(file.fixture.as_ref().unwrap()).unwrap()
}

/// A request that arrived `.0` ago.
struct Ago(Duration);

impl Started for Ago {
    fn elapsed(&self) -> Duration {
        self.0
    }
}

/// A rollup key as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Recorded {
    token_id: String,
    team_id: String,
    route: String,
    status: u16,
    error: String,
    latency_us: u64,
    request_bytes: u64,
    response_bytes: u64,
}

/// Keeps every wanted event and remembers every call.
#[derive(Default)]
struct Sink {
    off: bool,
    observed: RefCell<Vec<(String, u16, Duration)>>,
    recorded: RefCell<Vec<Recorded>>,
    events: RefCell<Vec<(Keep, UsageEvent)>>,
    failures: RefCell<Vec<(String, String)>>,
}

impl UsageSink for Sink {
    fn enabled(&self) -> bool {
        !self.off
    }
    fn observe(&self, route: &str, status: u16, elapsed: Duration) {
        self.observed
            .borrow_mut()
            .push((route.to_owned(), status, elapsed));
    }
    fn keep(&self, status: u16, by_gateway: bool, _at_ms: i64, token_id: &str) -> Keep {
        assert!(!self.off, "keep asked with usage off");
        wanted(status, by_gateway, !token_id.is_empty())
    }
    fn record(
        &self,
        k: RollupKeyRef<'_>,
        latency_us: u64,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        assert!(!self.off, "recorded with usage off");
        assert_eq!(k.minute, keygate_rollup::minute_of(NOW));
        self.recorded.borrow_mut().push(Recorded {
            token_id: k.token_id.into(),
            team_id: k.team_id.into(),
            route: k.route.into(),
            status: k.status,
            error: k.error.into(),
            latency_us,
            request_bytes,
            response_bytes,
        });
    }
    fn push_event(&self, keep: Keep, event: UsageEvent) {
        assert_ne!(keep, Keep::No);
        self.events.borrow_mut().push((keep, event));
    }
    fn backend_failed(&self, route: &core::Route, request_id: &str, failure: &Failure<'_>) {
        let what = match failure {
            Failure::Unforwardable => "unforwardable".to_owned(),
            Failure::Timeout => "timeout".to_owned(),
            Failure::Backend(e) => e.to_string(),
        };
        assert_eq!(request_id, "gw-1");
        self.failures.borrow_mut().push((route.name.clone(), what));
    }
}

fn facts(revision: i64) -> Facts<'static> {
    Facts {
        method: "GET",
        client_ip: "10.0.0.1",
        user_agent: b"curl/8",
        request_id: "gw-1",
        revision,
    }
}

/// A request as the hosts hand it to the core.
struct Req {
    method: &'static str,
    path: &'static str,
    key: Option<&'static str>,
    origin: Option<&'static str>,
    preflight: Option<&'static str>,
}

impl Req {
    fn get(path: &'static str, key: Option<&'static str>) -> Self {
        Self {
            method: "GET",
            path,
            key,
            origin: None,
            preflight: None,
        }
    }

    fn decide<'l>(&self, l: &'l vectors::Loaded) -> Decision<'l> {
        let keys: Vec<&[u8]> = self.key.iter().map(|k| k.as_bytes()).collect();
        let incoming = core::Incoming {
            method: self.method,
            path: self.path,
            query: None,
            api_key: &keys,
            authorization: &[],
            origin: self.origin.map(str::as_bytes),
            preflight_method: self.preflight.map(str::as_bytes),
        };
        core::decide_with(&incoming, &l.routes, &l.tokens, NOW, &l.config)
    }
}

fn start(sink: &Sink) -> Exchange<Ago> {
    Exchange::start(sink, Ago(Duration::from_micros(1500)), NOW)
}

fn header<'a>(a: &'a core::Answer, name: &str) -> Option<&'a str> {
    a.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| std::str::from_utf8(v).unwrap())
}

fn admit<'l>(
    sink: &Sink,
    limiter: &LocalLimiter,
    l: &'l vectors::Loaded,
    req: &Req,
) -> Admission<'l, Ago> {
    start(sink).admit(req.decide(l), &l.tokens, &facts(7), limiter, sink)
}

fn answer(a: Admission<'_, Ago>) -> core::Answer {
    match a {
        Admission::Answer(a) => a,
        Admission::Forward(f) => panic!("forwarded to {}", f.fwd.url),
    }
}

fn forward(a: Admission<'_, Ago>) -> Admitted<'_, Ago> {
    match a {
        Admission::Forward(f) => f,
        Admission::Answer(a) => panic!("answered {} {}", a.status, a.body),
    }
}

/// A refusal of a key the snapshot knows is counted for that token and the route; one with
/// no usable key for nobody; with usage off nothing is recorded but metrics.
#[test]
fn refusals_are_attributed() {
    let (l, limiter) = (loaded(), LocalLimiter::default());
    let sink = Sink::default();
    let a = answer(admit(
        &sink,
        &limiter,
        &l,
        &Req::get("/limited/x", Some(WEB)),
    ));
    assert_eq!(a.status, 403);
    assert_eq!(header(&a, "x-request-id"), Some("gw-1"));
    assert_eq!(header(&a, "x-keygate-revision"), Some("7"));
    assert_eq!(
        *sink.recorded.borrow(),
        [Recorded {
            token_id: "tok_web".into(),
            team_id: "team-b".into(),
            route: "limited".into(),
            status: 403,
            error: "forbidden".into(),
            latency_us: 1500,
            request_bytes: 0,
            response_bytes: a.body.len() as u64,
        }]
    );
    let events = sink.events.borrow();
    let (keep, e) = &events[0];
    assert_eq!(*keep, Keep::Event);
    assert_eq!(e.token_hash, core::TokenHash::of(WEB).hex());
    assert_eq!(
        (e.token_id.as_str(), e.route.as_str()),
        ("tok_web", "limited")
    );
    assert_eq!((e.status, e.error, e.time_ms), (403, "forbidden", NOW));
    assert_eq!(
        (e.user_agent.as_str(), e.client_ip.as_str()),
        ("curl/8", "10.0.0.1")
    );
    assert_eq!((e.config_revision, e.request_id.as_str()), (7, "gw-1"));
    assert_eq!(e.response_bytes, a.body.len() as u64);
    assert_eq!(sink.observed.borrow()[0].0, "limited");
    drop(events);

    // No key: nobody, no route (the metrics' label is `-`).
    let sink = Sink::default();
    let a = answer(admit(&sink, &limiter, &l, &Req::get("/web", None)));
    assert_eq!(a.status, 401);
    let r = &sink.recorded.borrow()[0];
    assert_eq!(
        (r.token_id.as_str(), r.route.as_str(), r.error.as_str()),
        ("", "", "missing_key")
    );
    assert_eq!(sink.observed.borrow()[0].0, "-");

    // Usage off: metrics only.
    let sink = Sink {
        off: true,
        ..Sink::default()
    };
    let a = answer(admit(
        &sink,
        &limiter,
        &l,
        &Req::get("/limited/x", Some(WEB)),
    ));
    assert_eq!(a.status, 403);
    assert!(sink.recorded.borrow().is_empty());
    assert_eq!(sink.observed.borrow().len(), 1);
}

/// A CORS preflight is answered by the gateway, counted for its route, with no event.
#[test]
fn preflight_is_answered_and_counted() {
    let (l, limiter, sink) = (loaded(), LocalLimiter::default(), Sink::default());
    let req = Req {
        method: "OPTIONS",
        path: "/web/x",
        key: None,
        origin: Some("https://app.example"),
        preflight: Some("GET"),
    };
    let a = answer(admit(&sink, &limiter, &l, &req));
    assert_eq!(a.status, 204);
    assert!(a.body.is_empty());
    assert_eq!(
        header(&a, "access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(header(&a, "x-request-id"), Some("gw-1"));
    let r = &sink.recorded.borrow()[0];
    assert_eq!(
        (r.route.as_str(), r.status, r.error.as_str()),
        ("web", 204, "")
    );
    assert_eq!((r.request_bytes, r.response_bytes), (0, 0));
    assert!(sink.events.borrow().is_empty());
    assert!(limiter.is_empty(), "a preflight is not charged");
}

/// The token's limit (3/min) and the route's (2/min) are charged both or neither: the
/// route's refusal leaves the token one request, and the 429 carries `RateLimit-*` and
/// `Retry-After`.
#[test]
fn rate_limits_charge_both_or_neither() {
    let (l, limiter, sink) = (loaded(), LocalLimiter::default(), Sink::default());
    for remaining in ["1", "0"] {
        let f = forward(admit(
            &sink,
            &limiter,
            &l,
            &Req::get("/limited/x", Some(ALL)),
        ));
        let h = |n: &str| {
            f.rate_headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
        };
        assert_eq!(
            h("ratelimit-limit").unwrap().1,
            "2",
            "the route's limit is the tighter"
        );
        assert_eq!(h("ratelimit-remaining").unwrap().1, remaining);
        assert!(h("retry-after").is_none());
        assert!(sink.recorded.borrow().is_empty(), "recorded when answered");
    }
    let a = answer(admit(
        &sink,
        &limiter,
        &l,
        &Req::get("/limited/x", Some(ALL)),
    ));
    assert_eq!(a.status, 429);
    assert!(a.body.contains("rate_limited"), "{}", a.body);
    assert!(
        a.body
            .contains("rate limit of 2 requests per minute exceeded")
    );
    assert_eq!(header(&a, "ratelimit-limit"), Some("2"));
    assert_eq!(header(&a, "ratelimit-remaining"), Some("0"));
    assert_eq!(header(&a, "retry-after"), Some("30"));
    assert!(header(&a, "ratelimit-reset").is_some());
    assert_eq!(header(&a, "x-keygate-revision"), Some("7"));
    {
        let r = &sink.recorded.borrow()[0];
        assert_eq!(
            (r.token_id.as_str(), r.route.as_str()),
            ("tok_all", "limited")
        );
        assert_eq!((r.status, r.error.as_str()), (429, "rate_limited"));
        assert_eq!(sink.events.borrow()[0].0, Keep::Event);
    }

    // The refused request did not cost the token: one left on a route without a limit.
    let f = forward(admit(&sink, &limiter, &l, &Req::get("/web", Some(ALL))));
    let limit = f.rate_headers.iter().find(|(k, _)| *k == "RateLimit-Limit");
    assert_eq!(limit.map(|(_, v)| v.as_str()), Some("3"));
    let a = answer(admit(&sink, &limiter, &l, &Req::get("/web", Some(ALL))));
    assert_eq!(a.status, 429);
    assert!(
        a.body
            .contains("rate limit of 3 requests per minute exceeded")
    );

    // A minute later the buckets are full again, and forgotten.
    limiter.prune(NOW);
    assert_eq!(limiter.len(), 1);
    limiter.prune(NOW + 60_000);
    assert!(limiter.is_empty());
}

/// A forwarded request is recorded once, at its finish, with its bytes; dropped or finished
/// before its answer's head, not at all.
#[test]
fn a_forward_is_recorded_once_at_its_finish() {
    let (l, limiter, sink) = (loaded(), LocalLimiter::default(), Sink::default());
    let Admitted {
        fwd, mut exchange, ..
    } = forward(admit(&sink, &limiter, &l, &Req::get("/web/a", Some(WEB))));
    let subject = Subject::forward(&fwd);
    assert!(!exchange.head_is_done());
    exchange.head_done(&sink, 200, subject, &facts(7));
    assert!(exchange.head_is_done());
    assert_eq!(
        sink.observed.borrow().as_slice(),
        [("web".to_owned(), 200, Duration::from_micros(1500))]
    );
    assert!(
        sink.recorded.borrow().is_empty(),
        "not before the body ended"
    );
    exchange.finish(&sink, subject, 10, 20);
    assert_eq!(
        *sink.recorded.borrow(),
        [Recorded {
            token_id: "tok_web".into(),
            team_id: "team-b".into(),
            route: "web".into(),
            status: 200,
            error: String::new(),
            latency_us: 1500,
            request_bytes: 10,
            response_bytes: 20,
        }]
    );
    {
        let events = sink.events.borrow();
        let (keep, e) = &events[0];
        assert_eq!(*keep, Keep::FirstSuccess);
        assert_eq!((e.request_bytes, e.response_bytes, e.error), (10, 20, ""));
    }

    // Dropped before the head, or finished without one: not answered, not recorded.
    let sink = Sink::default();
    let f = forward(admit(&sink, &limiter, &l, &Req::get("/web/b", Some(WEB))));
    drop(f);
    let f = forward(admit(&sink, &limiter, &l, &Req::get("/web/c", Some(WEB))));
    f.exchange.finish(&sink, Subject::forward(&f.fwd), 1, 2);
    assert!(sink.recorded.borrow().is_empty());
    assert!(sink.observed.borrow().is_empty());
}

/// A backend failure answers 502 / 504 with the rate headers and is told to the sink; a URL
/// that cannot be sent answers 400 without them.
#[test]
fn failures_answer_and_are_recorded() {
    let (l, limiter) = (loaded(), LocalLimiter::default());
    let cases: [(Failure<'_>, u16, &str, bool); 3] = [
        (Failure::Timeout, 504, "gateway_timeout", true),
        (Failure::Backend(&"refused"), 502, "bad_gateway", true),
        (Failure::Unforwardable, 400, "bad_request", false),
    ];
    for (failure, status, error, rate) in cases {
        let sink = Sink::default();
        let f = forward(admit(
            &sink,
            &limiter,
            &l,
            &Req::get("/limited/x", Some(ALL)),
        ));
        assert!(!f.rate_headers.is_empty());
        let a = f
            .exchange
            .failed(&sink, failure, &f.fwd, &f.rate_headers, &facts(7), 5);
        assert_eq!(a.status, status);
        assert!(a.body.contains(error), "{}", a.body);
        assert_eq!(header(&a, "ratelimit-limit").is_some(), rate, "{error}");
        let r = &sink.recorded.borrow()[0];
        assert_eq!(
            (r.status, r.error.as_str(), r.route.as_str()),
            (status, error, "limited")
        );
        assert_eq!(
            (r.request_bytes, r.response_bytes),
            (5, a.body.len() as u64)
        );
        assert_eq!(sink.failures.borrow().len(), usize::from(rate), "{error}");
        // The limiter is per test: start a fresh minute for the next case.
        limiter.prune(NOW + 60_000);
    }
}

/// Before any configuration: 503 with `Retry-After: 1`, no revision, counted for nobody.
#[test]
fn not_ready_answers_503() {
    let sink = Sink::default();
    let a = start(&sink).not_ready(&sink, &facts(0));
    assert_eq!(a.status, 503);
    assert!(a.body.contains("not_ready"), "{}", a.body);
    assert_eq!(header(&a, "retry-after"), Some("1"));
    assert_eq!(header(&a, "x-request-id"), Some("gw-1"));
    assert_eq!(header(&a, "x-keygate-revision"), None);
    let r = &sink.recorded.borrow()[0];
    assert_eq!(
        (r.route.as_str(), r.status, r.error.as_str()),
        ("", 503, "not_ready")
    );
    assert_eq!(r.response_bytes, a.body.len() as u64);
    assert_eq!(sink.observed.borrow()[0].0, "-");
    assert_eq!(sink.events.borrow()[0].1.config_revision, 0);
}

/// A host with an asynchronous limiter runs `screen`, asks its limiter, then `rate`: the
/// same answers as `admit`.
#[test]
fn screen_then_rate_is_admit() {
    let l = loaded();
    let (by_admit, by_steps) = (LocalLimiter::default(), LocalLimiter::default());
    let (sink_a, sink_s) = (Sink::default(), Sink::default());
    let reqs = [
        Req::get("/limited/x", Some(ALL)),
        Req::get("/limited/x", Some(ALL)),
        Req::get("/limited/x", Some(ALL)),
        Req::get("/web", Some(WEB)),
        Req::get("/limited/x", Some(WEB)),
    ];
    let outcome = |a: Admission<'_, Ago>| match a {
        Admission::Answer(a) => (a.status, a.headers, a.body, Vec::new()),
        Admission::Forward(f) => (0, Vec::new(), f.fwd.url.clone(), f.rate_headers),
    };
    for req in &reqs {
        let want = outcome(admit(&sink_a, &by_admit, &l, req));
        let facts = facts(7);
        let got = match start(&sink_s).screen(req.decide(&l), &l.tokens, &facts, &sink_s) {
            Admission::Forward(f) => match f.limits() {
                Some((token_rpm, route_rpm)) => {
                    let (hash, route) = (f.fwd.token_hash, f.fwd.route.id.clone());
                    let d = by_steps.charge(&hash, token_rpm, &route, route_rpm, NOW);
                    f.rate(d, &facts, &sink_s)
                }
                None => Admission::Forward(f),
            },
            answer => answer,
        };
        assert_eq!(outcome(got), want, "{}", req.path);
    }
    assert_eq!(*sink_s.recorded.borrow(), *sink_a.recorded.borrow());
    assert_eq!(sink_s.recorded.borrow().len(), 2, "the 429 and the 403");
}
