//! The hyper front end: every request the HTTP/1.1 fast path does not take (HTTP/2, HTTP/1.0,
//! upgrades, chunked or `Expect` requests, `https://` backends), taken through the request
//! pipeline's phases ([`keygate_gateway_pipeline::Exchange`]) with streaming bodies.
//!
//! Owns only hyper and tokio glue: `http` types to the core's and back, the backend call with
//! its timeout, upgrades, and completing a request's usage when its response body ends. Must
//! not: hold a request rule (the core and the pipeline do).

use crate::body::{Counted, OnDone};
use crate::host::{App, Arrived, Exchange, Peer, Worker, decision_headers, now_ms};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use keygate_gateway_core as core;
use keygate_gateway_pipeline::{Admission, Admitted, Facts, Failure, OwnedSubject, Subject};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a response streams: an error or preflight answer, or the backend's body.
pub type RespBody = Either<Full<Bytes>, OnDone<Counted<Incoming>, Box<dyn FnOnce() + Send>>>;

/// What the gateway adds to a forwarded request besides the route's credential.
pub struct Added<'a> {
    /// `X-Forwarded-For`: the TCP peer's address.
    pub ip: &'a str,
    /// `X-Forwarded-Host`: the caller's host ([`caller_host`]), if any.
    pub host: Option<HeaderValue>,
    pub request_id: &'a str,
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
    let x = Exchange::start(app, Arrived(started), now);
    let keep = x.usage_on();
    let user_agent = req.headers().get(header::USER_AGENT);
    let facts = Facts {
        method: req.method().as_str(),
        client_ip: &peer.ip,
        user_agent: user_agent.map_or(&b""[..], |v| v.as_bytes()),
        request_id: &request_id,
        revision: 0,
    };
    let Some(current) = worker.snapshot() else {
        return Ok(to_response(x.not_ready(app, &facts)));
    };
    let snap = &current.snap;
    let revision = snap.revision;

    let decision = decide(&req, &snap.routes, &snap.tokens, now, &app.core);
    let facts = Facts { revision, ..facts };
    let Admitted {
        mut fwd,
        rate_headers,
        exchange: mut x,
    } = match x.admit(decision, &snap.tokens, &facts, &app.limits, app) {
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
        client_ip: &peer.ip,
        user_agent: user_agent.as_ref().map_or(&b""[..], |v| v.as_bytes()),
        request_id: &request_id,
        revision,
    };
    let host = caller_host(&parts.uri, &parts.headers);
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
            let resp = x.failed(app, Failure::Unforwardable, &fwd, &rate_headers, &facts, 0);
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
    let mut resp = match tokio::time::timeout_at(deadline, worker.backends.request(out)).await {
        Ok(Ok(r)) => r,
        failed => {
            let failure = match &failed {
                Ok(Err(e)) => Failure::Backend(e),
                _ => Failure::Timeout,
            };
            let sent = request_bytes
                .as_ref()
                .map_or(0, |n| n.load(Ordering::Relaxed));
            let resp = x.failed(app, failure, &fwd, &rate_headers, &facts, sent);
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
        let public = core::public_base(app.public_url.as_deref(), "http", host);
        if let Some(new) = core::rewrite_location(loc, fwd.route, &public)
            && let Ok(v) = HeaderValue::from_str(&new)
        {
            rparts.headers.insert(header::LOCATION, v);
        }
    }
    answer.put(&mut MapSink(&mut rparts.headers));

    // Latency and status are known now; bytes when the response body ends.
    x.head_done(app, status.as_u16(), subject, &facts);
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
        x.finish(&*app, subject.subject(), sent, received);
    });
    let body = OnDone::new(Counted::new(rbody, response_bytes), done);
    Ok(Response::from_parts(rparts, Either::Right(body)))
}

/// The decision for a request hyper serves: RFC 9112 §3.2 first (an HTTP/1.1 request needs
/// exactly one `Host`, any request at most one: `bad_request` otherwise; HTTP/1.0 may omit
/// it, HTTP/2 carries `:authority`), then the core's on the target's path and query (an
/// absolute-form target's authority is not routed on).
pub fn decide<'r, B, T: core::TokenSource>(
    req: &Request<B>,
    routes: &'r core::Routes,
    tokens: &'r T,
    now_ms: i64,
    config: &core::Config,
) -> core::Decision<'r> {
    let hosts = req.headers().get_all(header::HOST).iter().count();
    if let Some(r) = core::check_host_fields(req.version() == http::Version::HTTP_11, hosts) {
        return core::Decision::Reject(r);
    }
    let h = decision_headers(req.headers());
    let incoming = h.incoming(req.method().as_str(), req.uri().path(), req.uri().query());
    core::decide_with(&incoming, routes, tokens, now_ms, config)
}

/// The host the caller addressed, for `X-Forwarded-Host` and redirects: an absolute-form
/// target's authority (RFC 9112 §3.2.2: it wins over `Host`; HTTP/2: `:authority`), without
/// userinfo, else the `Host` header as it arrived.
pub fn caller_host(uri: &http::Uri, headers: &HeaderMap) -> Option<HeaderValue> {
    uri.authority()
        .and_then(|a| {
            let host = a.as_str().rsplit('@').next().unwrap_or("");
            HeaderValue::from_str(host).ok()
        })
        .or_else(|| headers.get(header::HOST).cloned())
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

fn full(b: impl Into<Bytes>) -> RespBody {
    Either::Left(Full::new(b.into()))
}

/// The request headers for the backend: the caller's map filtered in place by the core's rule
/// ([`core::forwards_request_header`]), then the same additions in the same order as
/// [`core::forward_headers`] (kept equal by a test).
pub fn outgoing_headers(
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
}
