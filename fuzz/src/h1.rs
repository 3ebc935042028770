//! `h1_differential`: the same bytes to the HTTP/1.1 fast path and to hyper, compared on what
//! would reach the backend.
//!
//! Fast path (the functions `h1::serve` / `exchange` call, in order): `wire::head_end`,
//! `wire::parse_request`, `Request::fast` (false: the connection goes to hyper, so there is
//! nothing to compare), `h1::decide` (RFC 9112 §3.2 `Host` rule, then the core's decision),
//! `h1::split_backend_url` and `h1::write_backend_head` (the head written for the backend,
//! parsed back here), the body length from `Content-Length`.
//!
//! Hyper: the bytes into hyper-util's `auto::Builder` (as `server::serve_public` builds it)
//! over an in-memory duplex, the request hyper hands the service captured, then what
//! `proxy::handle` does with it: `proxy::decide` (the same `Host` rule, then the core's),
//! the backend URI from the forward's URL (its origin-form path and query is what the pool
//! sends), `proxy::outgoing_headers` with `proxy::caller_host`, and the body's framing as the
//! backend client will send it (an exact size hint: `Content-Length`; none: chunked).
//!
//! For every request the fast path takes, asserts that hyper also accepts it and that both
//! agree on: the decision (forward URL, or reject status and code, or preflight); the
//! method; the request target the backend gets; the forwarded headers (with a fixed forward
//! carrying an `api_key` credential, so the header rule is compared on every input, not only
//! on the few with a valid key); the body framing (none / `Content-Length: n`; never chunked,
//! the fast path does not take `Transfer-Encoding`).
//!
//! Accepted differences, not compared (each on purpose):
//! - The order of *different* header names: hyper's `HeaderMap` groups the values of one name
//!   at its first occurrence, the fast path keeps the caller's order. HTTP gives no meaning
//!   to the order of different field names (RFC 9110 §5.3); the order of one name's values
//!   is compared and is the same.
//! - `Host` to the backend: the fast path writes `backend::host_value(authority)`, hyper's
//!   client pool sets its own from the same URL (`pool::host_header`): both are derived from
//!   the route's backend URL, never from the request; e2e tests check the value.
//! - Requests the fast path does not take (HTTP/1.0, absolute-form, `Transfer-Encoding`,
//!   `Expect`, `Upgrade`, odd target bytes, heads it cannot parse): hyper serves those on
//!   both paths, there is only one behaviour.
//! - A complete head whose request hyper refuses is a failure, but a head the fast path
//!   sees as incomplete (no `head_end` yet) is not compared: the fast path reads more bytes
//!   first, and hyper at end of input refuses.

use bytes::Bytes;
use http::{HeaderMap, Method, Uri, Version};
use http_body::Body;
use keygate_gateway::h1::{self, wire};
use keygate_gateway::proxy;
use keygate_gateway_core::{self as core, Decision, Forward};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;

/// The TCP peer both paths see.
const PEER_IP: &str = "203.0.113.9";
const REQUEST_ID: &str = "gw-fuzz-1";

/// What reaches the backend, in a form both paths can be compared in.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Forward {
        url: String,
        method: String,
        target: String,
        body: Framing,
    },
    Reject {
        status: u16,
        error: &'static str,
    },
    Preflight {
        status: u16,
    },
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// Header values by lower-case name, each name's values in order.
type Headers = BTreeMap<String, Vec<Vec<u8>>>;

/// The fixed forward the header rule is compared with: decide.json's `api-x-admin` route
/// (an `api_key` credential in `x-backend-key`).
fn fixed_forward() -> Forward<'static> {
    let l = crate::decide_fixture();
    let key = &crate::fixture_keys()[0];
    let hash = core::TokenHash::of(key);
    Forward {
        route: l.routes.by_name("api-x-admin").expect("the fixture route"),
        token: l.tokens.get(&hash).expect("the fixture token"),
        token_hash: hash,
        url: "https://admin.internal/x".into(),
        cors_origin: None,
    }
}

fn outcome(d: &Decision<'_>, method: &str, target: &str, body: Framing) -> Outcome {
    match d {
        Decision::Forward(f) => Outcome::Forward {
            url: f.url.clone(),
            method: method.to_owned(),
            target: target.to_owned(),
            body,
        },
        Decision::Reject(r) => Outcome::Reject {
            status: r.status,
            error: r.error,
        },
        Decision::Preflight(p) => Outcome::Preflight { status: p.status },
    }
}

/// The fast path's view: `None` when it does not take the request (hyper serves it).
pub fn fast(bytes: &[u8]) -> Option<(Outcome, Headers)> {
    let n = match wire::head_end(bytes) {
        Ok(Some(n)) => n,
        _ => return None,
    };
    let mut hs = [httparse::EMPTY_HEADER; wire::MAX_HEADERS];
    let req = wire::parse_request(&bytes[..n], &mut hs)?;
    if !req.fast {
        return None;
    }
    let l = crate::decide_fixture();
    let d = h1::decide(&req, &l.routes, &l.tokens, crate::NOW_MS, &l.config);
    let body = match req.content_length {
        0 => Framing::None,
        n => Framing::Length(n),
    };
    let mut out = Vec::new();
    let target = match &d {
        Decision::Forward(f) => {
            // An https:// backend: the fast path hands the connection to hyper.
            if !f.url.starts_with("http://") {
                return None;
            }
            let (authority, target) =
                h1::split_backend_url(&f.url).expect("a decided http:// URL has an authority");
            h1::write_backend_head(
                &mut out,
                &req,
                target,
                authority,
                f.credential(),
                PEER_IP,
                REQUEST_ID,
            );
            let (method, t, _) = parse_head(&out);
            assert_eq!(method, req.method, "the backend head's method");
            assert_eq!(t, target, "the backend head's target");
            target.to_owned()
        }
        _ => String::new(),
    };
    let o = outcome(&d, req.method, &target, body);
    // The header rule with the fixed forward.
    let f = fixed_forward();
    let (authority, target) = ("admin.internal", "/x");
    h1::write_backend_head(
        &mut out,
        &req,
        target,
        authority,
        f.credential(),
        PEER_IP,
        REQUEST_ID,
    );
    let (_, _, headers) = parse_head(&out);
    Some((o, headers))
}

/// Method, target and headers (without `host`, see the module's notes) of a head the fast
/// path wrote.
fn parse_head(head: &[u8]) -> (String, String, Headers) {
    let mut hs = [httparse::EMPTY_HEADER; wire::MAX_HEADERS + 16];
    let mut r = httparse::Request::new(&mut hs);
    match r.parse(head) {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, head.len(), "one whole head"),
        other => panic!("the fast path wrote a head that does not parse: {other:?}"),
    }
    let mut headers = Headers::new();
    for h in r.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        if name != "host" {
            headers.entry(name).or_default().push(h.value.to_vec());
        }
    }
    (
        r.method.unwrap_or("").to_owned(),
        r.path.unwrap_or("").to_owned(),
        headers,
    )
}

/// The parts of the request hyper handed the service.
struct Seen {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    exact: Option<u64>,
}

thread_local! {
    static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
}

/// The first request hyper's server reads from `bytes` (then end of input), `None` when it
/// refuses them.
fn hyper_parse(bytes: &[u8]) -> Option<Seen> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    let seen: Arc<Mutex<Option<Seen>>> = Arc::default();
    RT.with(|rt| {
        rt.block_on(async {
            // Room for the input and for every answer hyper writes back (read after the
            // connection ends), so neither side ever waits for the other.
            let (mut client, server) = tokio::io::duplex(bytes.len() + (1 << 20));
            client
                .write_all(bytes)
                .await
                .expect("the duplex holds the input");
            client.shutdown().await.expect("end of input");
            let s = seen.clone();
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let mut slot = s.lock().expect("not poisoned");
                    if slot.is_none() {
                        let exact = req.body().size_hint().exact();
                        let (p, _) = req.into_parts();
                        *slot = Some(Seen {
                            method: p.method,
                            uri: p.uri,
                            version: p.version,
                            headers: p.headers,
                            exact,
                        });
                    }
                    async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Empty::<Bytes>::new(),
                        ))
                    }
                });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().writev(false);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(server), service);
            let _ = conn.await;
            drop(client);
        })
    });
    seen.lock().expect("not poisoned").take()
}

/// Hyper's view of the same bytes: `None` when hyper refuses them.
pub fn hyper(bytes: &[u8]) -> Option<(Outcome, Headers)> {
    let seen = hyper_parse(bytes)?;
    let l = crate::decide_fixture();
    let mut req = http::Request::new(());
    *req.method_mut() = seen.method.clone();
    *req.uri_mut() = seen.uri.clone();
    *req.version_mut() = seen.version;
    *req.headers_mut() = seen.headers.clone();
    let d = proxy::decide(&req, &l.routes, &l.tokens, crate::NOW_MS, &l.config);
    let body = match seen.exact {
        Some(0) => Framing::None,
        Some(n) => Framing::Length(n),
        None => Framing::Chunked,
    };
    let target = match &d {
        Decision::Forward(f) => {
            let uri = Uri::try_from(f.url.as_str()).expect("a forward URL is a URI");
            uri.path_and_query().map_or("/", |p| p.as_str()).to_owned()
        }
        _ => String::new(),
    };
    let o = outcome(&d, seen.method.as_str(), &target, body);
    let f = fixed_forward();
    let added = proxy::Added {
        ip: PEER_IP,
        host: proxy::caller_host(&seen.uri, &seen.headers),
        request_id: REQUEST_ID,
    };
    let out = proxy::outgoing_headers(seen.headers, f.credential(), added);
    let mut headers = Headers::new();
    for (k, v) in &out {
        headers
            .entry(k.as_str().to_owned())
            .or_default()
            .push(v.as_bytes().to_vec());
    }
    Some((o, headers))
}

/// One input through both paths.
pub fn run(bytes: &[u8]) {
    let Some(fast) = fast(bytes) else {
        return;
    };
    let Some(hyper) = hyper(bytes) else {
        panic!("the fast path takes a request hyper refuses: {fast:?}");
    };
    if std::env::var_os("KEYGATE_FUZZ_TRACE").is_some() {
        eprintln!("compared: {:?}", fast.0);
    }
    assert_eq!(fast.0, hyper.0, "the two front ends decide differently");
    assert_eq!(
        fast.1, hyper.1,
        "the two front ends forward different headers"
    );
}
