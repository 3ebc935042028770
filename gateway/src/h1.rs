//! The HTTP/1.1 fast path: a connection's requests read straight from the socket, decided by
//! the core and admitted by the request pipeline ([`Exchange::admit`], the same phases as the
//! hyper path), and relayed to the
//! backend over a raw keep-alive connection of the worker's [`Pool`], headers written once
//! into a buffer, bodies streamed through without being reassembled.
//!
//! It owns only HTTP/1.1 mechanics: framing (RFC 9112), keep-alive, pipelining, timeouts,
//! backend connection reuse. It takes the plain requests (see [`wire::Request::fast`]) to
//! `http://` backends; at the first request it does not take (HTTP/1.0, `Expect`,
//! `Upgrade`, `Transfer-Encoding`, an `https://` backend, h2c prior knowledge, a head it
//! cannot parse...) it hands the connection, with every byte it has read and not used, to
//! hyper ([`End::Handoff`]), which serves it from that request on. A request is handed over
//! before anything about it happened (no rate-limit charge, no usage event), so hyper
//! decides it afresh.

mod backend;
pub mod wire;

pub use backend::Pool;

use crate::host::{self, App, Arrived, Exchange, Peer, Worker};
use bytes::{Buf, Bytes, BytesMut};
use keygate_gateway_core as core;
use keygate_gateway_core::Decision;
use keygate_gateway_pipeline::{self as pipeline, Admission, Admitted, Facts, Subject};
use std::cell::Cell;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use wire::{Framing, put_header};

/// How long an idle keep-alive connection from a caller stays open (nginx's default).
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);
/// How long a caller may take to send a whole request head once it started one.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Read buffers grow by this much when full.
const READ_CHUNK: usize = 16 * 1024;

/// How a connection ended on the fast path.
pub enum End {
    Closed,
    /// hyper serves the rest: the socket, with the bytes read and not yet used in front.
    Handoff(Rewind),
}

/// What to do after one exchange.
enum Next {
    KeepAlive,
    Close,
    Handoff,
}

/// Buffers a connection reuses from request to request.
#[derive(Default)]
struct Buffers {
    /// The head being written (to the backend, then to the caller).
    out: Vec<u8>,
    /// What the backend sent.
    rbuf: BytesMut,
    /// The caller's `Host`, for rewriting redirects.
    host: String,
    /// The request's method and `User-Agent`, for a raw usage event once the head is gone
    /// (copied only when usage reporting is on; reused, so no allocation per request).
    method: String,
    user_agent: Vec<u8>,
}

/// Serves one caller connection until it closes, fails, or goes to hyper.
pub async fn serve(
    worker: &Worker,
    pool: &Pool,
    mut stream: TcpStream,
    peer: &Peer,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> End {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut bufs = Buffers::default();
    loop {
        let head_len = loop {
            match wire::head_end(&buf) {
                Ok(Some(n)) => break n,
                Ok(None) => {}
                // Too large or malformed: hyper answers it (400 / 431).
                Err(()) => return End::Handoff(Rewind::new(buf.freeze(), stream)),
            }
            let idle = buf.is_empty();
            let deadline = tokio::time::Instant::now()
                + if idle {
                    KEEPALIVE_TIMEOUT
                } else {
                    HEAD_TIMEOUT
                };
            reserve(&mut buf);
            let read = tokio::select! {
                biased;
                r = tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)) => r,
                _ = stop.changed(), if idle => return End::Closed,
            };
            match read {
                Ok(Ok(n)) if n > 0 => {}
                _ => return End::Closed,
            }
        };
        let next = exchange(
            worker,
            pool,
            peer,
            &mut stream,
            &mut buf,
            head_len,
            &mut bufs,
        )
        .await;
        match next {
            Next::KeepAlive => {}
            Next::Close => {
                let _ = stream.shutdown().await;
                return End::Closed;
            }
            Next::Handoff => return End::Handoff(Rewind::new(buf.freeze(), stream)),
        }
    }
}

fn reserve(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
}

/// Writes a gateway answer (error, preflight) as an HTTP/1.1 response.
fn put_answer(out: &mut Vec<u8>, a: &core::Answer, head_only: bool, close: bool) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    wire::put_u64(out, u64::from(a.status));
    out.push(b' ');
    let reason = http::StatusCode::from_u16(a.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    a.put_headers(&mut Head(out));
    let bodiless = a.status == 204 || a.status == 304;
    if !bodiless {
        out.extend_from_slice(b"content-length: ");
        wire::put_u64(out, a.body.len() as u64);
        out.extend_from_slice(b"\r\n");
    }
    wire::put_date(out);
    if close {
        put_header(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only && !bodiless {
        out.extend_from_slice(a.body.as_bytes());
    }
}

/// Answers with `resp` and says what comes next.
async fn answer(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    resp: &core::Answer,
    head_only: bool,
    close: bool,
) -> Next {
    put_answer(out, resp, head_only, close);
    match stream.write_all(out).await {
        Ok(()) if !close => Next::KeepAlive,
        _ => Next::Close,
    }
}

/// Lower-cases an ASCII header name into `scratch` (names longer than it are rare: heap).
fn lower<'s>(name: &str, scratch: &'s mut [u8; 64], long: &'s mut String) -> &'s str {
    if name.len() <= scratch.len() {
        let s = &mut scratch[..name.len()];
        s.copy_from_slice(name.as_bytes());
        s.make_ascii_lowercase();
        // httparse admits only token characters (ASCII) in names.
        std::str::from_utf8(s).unwrap_or("")
    } else {
        *long = name.to_ascii_lowercase();
        long
    }
}

/// The decision for a request the fast path takes: RFC 9112 §3.2 first (an HTTP/1.1 request
/// needs exactly one `Host`: `bad_request` otherwise), then the core's.
pub fn decide<'r>(
    req: &wire::Request<'_, '_>,
    routes: &'r core::Routes,
    tokens: &'r impl core::TokenSource,
    now_ms: i64,
    config: &core::Config,
) -> Decision<'r> {
    // The fast path takes only HTTP/1.1 requests.
    if let Some(r) = core::check_host_fields(true, req.host_fields) {
        return Decision::Reject(r);
    }
    let incoming = req.decision.incoming(req.method, req.path, req.query);
    core::decide_with(&incoming, routes, tokens, now_ms, config)
}

/// A forwarded `http://` URL as the backend's authority and the origin-form target the
/// fast path sends (`None` when it has no authority or has userinfo: not forwardable).
pub fn split_backend_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, target) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    (!authority.is_empty() && !authority.contains('@')).then_some((authority, target))
}

/// The backend's request head: `<method> <target> HTTP/1.1`, `host` (the backend's), the
/// caller's headers [`core::forwards_request_header`] keeps (names lower-case, in the
/// caller's order), then what the gateway adds, in [`core::forward_headers`]'s order
/// (`x-forwarded-for`, `-proto`, `-host`, `x-request-id`, the route's credential).
pub fn write_backend_head(
    out: &mut Vec<u8>,
    req: &wire::Request<'_, '_>,
    target: &str,
    authority: &str,
    credential: Option<(&str, &str)>,
    peer_ip: &str,
    request_id: &str,
) {
    out.clear();
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    put_header(out, b"host", backend::host_value(authority).as_bytes());
    let credential_name = credential.map(|(n, _)| n);
    let (mut scratch, mut long) = ([0u8; 64], String::new());
    for h in req.headers {
        let name = lower(h.name, &mut scratch, &mut long);
        if core::forwards_request_header(name, &req.connection_named, credential_name) {
            put_header(out, name.as_bytes(), h.value);
        }
    }
    let client = core::Client {
        ip: peer_ip,
        // The native gateway does not terminate TLS.
        proto: "http",
        host: req
            .host
            .and_then(|h| std::str::from_utf8(h).ok())
            .unwrap_or(""),
    };
    core::put_forward_additions(&mut Head(out), &client, request_id, credential);
    out.extend_from_slice(b"\r\n");
}

/// An HTTP/1.1 head being written, as the core's [`core::HeaderSink`]: a header whose value
/// is not a valid header value is left out.
struct Head<'o>(&'o mut Vec<u8>);

impl core::HeaderSink for Head<'_> {
    fn put(&mut self, name: &str, value: &[u8]) {
        if wire::is_header_value(value) {
            put_header(self.0, name.as_bytes(), value);
        }
    }
}

/// What the response side needs to know about the request.
struct Reply<'a, 's> {
    app: &'a App,
    fwd: &'a core::Forward<'s>,
    rate_headers: &'a [(&'static str, String)],
    request_id: &'a str,
    revision: &'a [u8],
    /// Usage: who the request is counted for, and what a raw event copies.
    subject: Subject<'s>,
    facts: Facts<'a>,
    head_only: bool,
    client_close: bool,
    deadline: tokio::time::Instant,
}

/// One request on the fast path, from its parsed head to the end of the response.
async fn exchange(
    worker: &Worker,
    pool: &Pool,
    peer: &Peer,
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    head_len: usize,
    bufs: &mut Buffers,
) -> Next {
    let app = &*worker.app;
    let started = Instant::now();
    let now = host::now_ms();
    let mut headers = [httparse::EMPTY_HEADER; wire::MAX_HEADERS];
    let Some(req) = wire::parse_request(&buf[..head_len], &mut headers) else {
        return Next::Handoff;
    };
    if !req.fast {
        return Next::Handoff;
    }
    let head_only = req.method == "HEAD";
    // A body the gateway does not forward is not read: such a connection closes after the
    // answer.
    let refuse_close = req.close || req.content_length > 0;
    // (A request handed over below drops these unused: hyper starts its own.)
    let request_id = worker.request_id();
    let x = Exchange::start(app, Arrived(started), now);
    let facts = Facts {
        method: req.method,
        client_ip: &peer.ip,
        user_agent: req.user_agent,
        request_id: &request_id,
        revision: 0,
    };
    let Some(current) = worker.snapshot() else {
        let resp = x.not_ready(app, &facts);
        drop(req);
        buf.advance(head_len);
        return answer(stream, &mut bufs.out, &resp, head_only, refuse_close).await;
    };
    let snap = &current.snap;
    let decision = decide(&req, &snap.routes, &snap.tokens, now, &app.core);
    if let Decision::Forward(f) = &decision
        && !f.url.starts_with("http://")
    {
        return Next::Handoff;
    }
    let facts = Facts {
        revision: snap.revision,
        ..facts
    };
    let Admitted {
        fwd,
        rate_headers,
        exchange: mut x,
    } = match x.admit(decision, &snap.tokens, &facts, &app.limits, app) {
        Admission::Answer(resp) => {
            drop(req);
            buf.advance(head_len);
            return answer(stream, &mut bufs.out, &resp, head_only, refuse_close).await;
        }
        Admission::Forward(a) => a,
    };
    let subject = Subject::forward(&fwd);

    // The backend's request head: `<method> <path?query> HTTP/1.1`, its Host, the caller's
    // headers the core's rule forwards, then what the gateway adds (as the hyper path).
    let Some((authority, target)) = split_backend_url(&fwd.url) else {
        let resp = x.failed(
            app,
            pipeline::Failure::Unforwardable,
            &fwd,
            &rate_headers,
            &facts,
            0,
        );
        drop(req);
        buf.advance(head_len);
        return answer(stream, &mut bufs.out, &resp, head_only, refuse_close).await;
    };
    write_backend_head(
        &mut bufs.out,
        &req,
        target,
        authority,
        fwd.credential(),
        &peer.ip,
        &request_id,
    );
    bufs.host.clear();
    if let Some(host) = req.host.filter(|h| wire::is_header_value(h)) {
        bufs.host.push_str(std::str::from_utf8(host).unwrap_or(""));
    }
    let body_len = req.content_length;
    let client_close = req.close;
    let retry_ok = body_len == 0 && matches!(req.method, "GET" | "HEAD" | "OPTIONS" | "TRACE");
    bufs.method.clear();
    bufs.user_agent.clear();
    if x.usage_on() {
        bufs.method.push_str(req.method);
        bufs.user_agent.extend_from_slice(req.user_agent);
    }
    drop(req);
    buf.advance(head_len);
    let facts = Facts {
        method: &bufs.method,
        user_agent: &bufs.user_agent,
        client_ip: &peer.ip,
        request_id: &request_id,
        revision: snap.revision,
    };

    let timeout = Duration::from_millis(u64::from(fwd.route.timeout_ms.max(1)));
    // The deadline counts from when the request arrived, as on the hyper path.
    let deadline = tokio::time::Instant::from_std(started) + timeout;
    let reply = Reply {
        app,
        fwd: &fwd,
        rate_headers: &rate_headers,
        request_id: &request_id,
        revision: current.revision_header.as_bytes(),
        subject,
        facts,
        head_only,
        client_close,
        deadline,
    };

    let sent = Cell::new(0u64);
    let received = Cell::new(0u64);
    let body_done = Cell::new(body_len == 0);
    let mut backend: Option<TcpStream> = None;
    let outcome = loop {
        let reused;
        (reused, backend) = match pool.checkout(authority) {
            Some(s) => (true, Some(s)),
            None => match backend::connect(authority, deadline).await {
                Ok(s) => (false, Some(s)),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    break Relay::Failed(Failure::Timeout, false);
                }
                Err(e) => {
                    break Relay::Failed(
                        Failure::Backend(format!("tcp connect error: {e}")),
                        false,
                    );
                }
            },
        };
        let Some(conn) = backend.as_mut() else {
            break Relay::Failed(Failure::Backend("no connection".into()), false);
        };
        let (mut br, mut bw) = conn.split();
        if bw.write_all(&bufs.out).await.is_err() {
            if reused && retry_ok {
                continue;
            }
            break Relay::Failed(
                Failure::Backend("connection closed while sending the request".into()),
                false,
            );
        }
        let (mut cr, mut cw) = stream.split();
        let resp = relay(
            &mut br,
            &mut cw,
            &reply,
            &mut bufs.out,
            &mut bufs.rbuf,
            &bufs.host,
            &body_done,
            &received,
            &mut x,
        );
        let r = if body_len == 0 {
            resp.await
        } else {
            // The body goes up while the answer is read: a backend may answer early, or
            // stream its answer while it reads.
            let pump = pump(&mut cr, buf, &mut bw, body_len, &sent);
            tokio::pin!(pump, resp);
            let mut pumping = true;
            loop {
                tokio::select! {
                    biased;
                    r = &mut resp => break r,
                    p = &mut pump, if pumping => {
                        pumping = false;
                        match p {
                            Ok(()) => body_done.set(true),
                            Err(Pump::CallerGone) => break Relay::Aborted,
                            // The backend stopped reading: its answer (if any) still counts.
                            Err(Pump::BackendGone) => {}
                        }
                    }
                }
            }
        };
        match r {
            Relay::Failed(Failure::Backend(_), true) if reused && retry_ok => continue,
            r => break r,
        }
    };
    let received = match outcome {
        Relay::Done {
            backend_reusable,
            client_close: close,
            received,
        } => {
            let whole = body_done.get();
            if backend_reusable
                && whole
                && let Some(conn) = backend
            {
                pool.park(authority, conn);
            }
            x.finish(app, subject, sent.get(), received);
            return if close || !whole {
                Next::Close
            } else {
                Next::KeepAlive
            };
        }
        // The caller went away: still recorded if its answer had started (metrics have
        // counted it), with what was relayed.
        Relay::Aborted => x.head_is_done().then(|| received.get()),
        Relay::AbortedAfterHead(received) => Some(received),
        Relay::Failed(failure, _) => {
            let failure = match &failure {
                Failure::Timeout => pipeline::Failure::Timeout,
                Failure::Backend(e) => pipeline::Failure::Backend(e),
            };
            let resp = x.failed(app, failure, &fwd, &rate_headers, &facts, sent.get());
            let close = client_close || !body_done.get();
            return answer(stream, &mut bufs.out, &resp, head_only, close).await;
        }
    };
    // Broken after the answer started (caller or backend gone): the usage is complete with
    // what passed.
    if let Some(received) = received {
        x.finish(app, subject, sent.get(), received);
    }
    Next::Close
}

/// Why no answer came from the backend.
#[derive(Debug)]
enum Failure {
    Timeout,
    /// What went wrong, for the log (never for the caller).
    Backend(String),
}

/// How the response side of an exchange ended.
enum Relay {
    Done {
        backend_reusable: bool,
        client_close: bool,
        received: u64,
    },
    /// No response head: 502/504 (the flag: nothing at all came back, so a request without
    /// a body may go to a fresh connection).
    Failed(Failure, bool),
    /// The caller went away before an answer started.
    Aborted,
    /// The answer started and then broke (the caller or the backend went away, a malformed
    /// body): bytes of the body relayed.
    AbortedAfterHead(u64),
}

enum Pump {
    CallerGone,
    BackendGone,
}

/// Streams `len` body bytes from the caller (what `buf` already holds first) to the backend;
/// bytes beyond it stay in `buf` (the next pipelined request).
async fn pump<R, W>(
    cr: &mut R,
    buf: &mut BytesMut,
    bw: &mut W,
    mut left: u64,
    sent: &Cell<u64>,
) -> Result<(), Pump>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        if !buf.is_empty() {
            let take = (left.min(buf.len() as u64)) as usize;
            bw.write_all(&buf[..take])
                .await
                .map_err(|_| Pump::BackendGone)?;
            buf.advance(take);
            left -= take as u64;
            sent.set(sent.get() + take as u64);
        }
        if left == 0 {
            return Ok(());
        }
        reserve(buf);
        match cr.read_buf(buf).await {
            Ok(n) if n > 0 => {}
            _ => return Err(Pump::CallerGone),
        }
    }
}

/// Reads the backend's answer and relays it to the caller: the head rewritten (hop-by-hop
/// headers out, the gateway's headers in, redirects to the backend rewritten), the body as it
/// arrives.
#[allow(clippy::too_many_arguments)]
async fn relay<R, W>(
    br: &mut R,
    cw: &mut W,
    x: &Reply<'_, '_>,
    out: &mut Vec<u8>,
    rbuf: &mut BytesMut,
    host: &str,
    body_done: &Cell<bool>,
    relayed: &Cell<u64>,
    usage: &mut Exchange,
) -> Relay
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    rbuf.clear();
    let head = loop {
        if !rbuf.is_empty() {
            let mut hs = [httparse::EMPTY_HEADER; wire::MAX_HEADERS];
            let step = match wire::parse_response(rbuf, &mut hs, x.head_only) {
                Ok(Some(r)) if r.status < 200 => Err(Some(r.len)),
                Ok(Some(r)) => {
                    let close = x.client_close || r.framing == Framing::Close || !body_done.get();
                    write_head(out, &r, x, host, close);
                    Ok((r.status, r.framing, r.close, close, r.len))
                }
                Ok(None) => Err(None),
                Err(e) => {
                    return Relay::Failed(
                        Failure::Backend(format!("answer cannot be relayed: {e:?}")),
                        false,
                    );
                }
            };
            match step {
                Ok(h) => break h,
                // An interim 1xx answer: skipped (the caller asked for none).
                Err(Some(n)) => {
                    rbuf.advance(n);
                    continue;
                }
                Err(None) => {}
            }
        }
        reserve(rbuf);
        match tokio::time::timeout_at(x.deadline, br.read_buf(rbuf)).await {
            Err(_) => return Relay::Failed(Failure::Timeout, false),
            Ok(Ok(n)) if n > 0 => {}
            Ok(r) => {
                let what = match r {
                    Err(e) => format!("reading the answer: {e}"),
                    Ok(_) => "connection closed before an answer".to_owned(),
                };
                return Relay::Failed(Failure::Backend(what), rbuf.is_empty());
            }
        }
    };
    let (status, framing, backend_close, client_close, head_len) = head;
    usage.head_done(x.app, status, x.subject, &x.facts);
    rbuf.advance(head_len);

    // The first body bytes go out with the head, in one write.
    let mut received = 0u64;
    let mut chunked = wire::Chunked::default();
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => 0,
    };
    let first = match framing {
        Framing::Empty => 0,
        Framing::Length(_) => left.min(rbuf.len() as u64) as usize,
        Framing::Close => rbuf.len(),
        Framing::Chunked => match chunked.scan(rbuf) {
            Ok(n) => n,
            Err(e) => {
                return Relay::Failed(
                    Failure::Backend(format!("answer cannot be relayed: {e:?}")),
                    false,
                );
            }
        },
    };
    out.extend_from_slice(&rbuf[..first]);
    rbuf.advance(first);
    received += first as u64;
    relayed.set(received);
    left -= if let Framing::Length(_) = framing {
        first as u64
    } else {
        0
    };
    if cw.write_all(out).await.is_err() {
        return Relay::AbortedAfterHead(received);
    }
    let finished = |chunked: &wire::Chunked, left: u64| match framing {
        Framing::Empty => true,
        Framing::Length(_) => left == 0,
        Framing::Chunked => chunked.is_done(),
        Framing::Close => false,
    };
    while !finished(&chunked, left) {
        reserve(rbuf);
        match br.read_buf(rbuf).await {
            Ok(n) if n > 0 => {}
            // The end of a close-delimited body; for the others, a truncated answer.
            _ if framing == Framing::Close => break,
            _ => return Relay::AbortedAfterHead(received),
        }
        let n = match framing {
            Framing::Length(_) => left.min(rbuf.len() as u64) as usize,
            Framing::Chunked => match chunked.scan(rbuf) {
                Ok(n) => n,
                Err(_) => return Relay::AbortedAfterHead(received),
            },
            _ => rbuf.len(),
        };
        if cw.write_all(&rbuf[..n]).await.is_err() {
            return Relay::AbortedAfterHead(received);
        }
        rbuf.advance(n);
        received += n as u64;
        relayed.set(received);
        if let Framing::Length(_) = framing {
            left -= n as u64;
        }
    }
    // Bytes past the answer's end: the backend cannot be trusted with another request.
    let backend_reusable = !backend_close && framing != Framing::Close && rbuf.is_empty();
    Relay::Done {
        backend_reusable,
        client_close,
        received,
    }
}

/// The caller's response head for the backend's answer `r`.
fn write_head(
    out: &mut Vec<u8>,
    r: &wire::Response<'_, '_>,
    x: &Reply<'_, '_>,
    host: &str,
    close: bool,
) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    wire::put_u64(out, u64::from(r.status));
    out.push(b' ');
    let reason = if r.reason.is_empty() {
        http::StatusCode::from_u16(r.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("")
    } else {
        r.reason
    };
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let answer = core::AnswerHeaders {
        request_id: x.request_id,
        revision: Some(x.revision),
        extra: x.rate_headers,
        cors_origin: x.fwd.cors_origin.as_deref(),
    };
    let chunked = r.framing == Framing::Chunked;
    for h in r.headers {
        let name = h.name;
        if !answer.passes(name, &r.connection_named, false)
            || (chunked && name.eq_ignore_ascii_case("content-length"))
        {
            continue;
        }
        if name.eq_ignore_ascii_case("location")
            && wire::is_header_value(h.value)
            && let Ok(loc) = std::str::from_utf8(h.value)
        {
            let public = core::public_base(x.app.public_url.as_deref(), "http", host);
            if let Some(new) = core::rewrite_location(loc, x.fwd.route, &public)
                && wire::is_header_value(new.as_bytes())
            {
                put_header(out, b"location", new.as_bytes());
                continue;
            }
        }
        put_header(out, name.as_bytes(), h.value);
    }
    if chunked {
        put_header(out, b"transfer-encoding", b"chunked");
    }
    answer.put(&mut Head(out));
    if !r.has_date {
        wire::put_date(out);
    }
    if close {
        put_header(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
}

/// A socket with bytes already read from it put back in front, for hyper.
pub struct Rewind {
    pre: Bytes,
    io: TcpStream,
}

impl Rewind {
    pub fn new(pre: Bytes, io: TcpStream) -> Self {
        Self { pre, io }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.pre.is_empty() {
            let n = this.pre.len().min(buf.remaining());
            buf.put_slice(&this.pre[..n]);
            this.pre.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head written to the backend carries exactly the headers the core's
    /// `forward_headers` gives, for a caller trying every header it must not pass.
    #[test]
    fn backend_head_agrees_with_the_core() {
        let (routes, token) = (
            crate::fixtures::routes("api_key", "X-Backend-Key"),
            crate::fixtures::token(),
        );
        let fwd = crate::fixtures::forward(&routes, &token, None);
        let raw = "POST /echo/x?a=1 HTTP/1.1\r\n\
            Accept: */*\r\n\
            X-API-Key: kg_secret\r\n\
            Authorization: Bearer kg_secret\r\n\
            Connection: keep-alive, X-Drop-Me\r\n\
            X-Drop-Me: 1\r\n\
            X-Forwarded-For: 6.6.6.6\r\n\
            x-forwarded-host: evil\r\n\
            X-Request-Id: spoofed\r\n\
            X-Backend-Key: caller-made\r\n\
            Cookie: a=1\r\n\
            Proxy-Authorization: Basic x\r\n\
            TE: trailers\r\n\
            Host: gw.example\r\n\
            Content-Type: application/json\r\n\
            Content-Length: 2\r\n\
            X-Custom: 1\r\n\
            X-Custom: 2\r\n\r\n";
        let mut hs = [httparse::EMPTY_HEADER; wire::MAX_HEADERS];
        let req = wire::parse_request(raw.as_bytes(), &mut hs).unwrap();
        assert!(req.fast);
        let mut out = Vec::new();
        write_backend_head(
            &mut out,
            &req,
            "/x?a=1",
            "127.0.0.1:9",
            fwd.credential(),
            "10.0.0.1",
            "gw-1",
        );
        let text = String::from_utf8(out).unwrap();
        let (first, rest) = text.split_once("\r\n").unwrap();
        assert_eq!(first, "POST /x?a=1 HTTP/1.1");
        assert!(rest.ends_with("\r\n\r\n"));
        let got: Vec<(String, Vec<u8>)> = rest
            .trim_end()
            .split("\r\n")
            .map(|l| {
                let (k, v) = l.split_once(": ").unwrap();
                (k.to_owned(), v.as_bytes().to_vec())
            })
            .collect();
        assert_eq!(got[0], ("host".into(), b"127.0.0.1:9".to_vec()));
        let client = core::Client {
            ip: "10.0.0.1",
            proto: "http",
            host: "gw.example",
        };
        let want = core::forward_headers(
            req.headers.iter().map(|h| (h.name, h.value)),
            &fwd,
            &client,
            "gw-1",
        );
        // Same headers in the same order (after the backend's Host).
        assert_eq!(got[1..].to_vec(), want);
    }

    /// The caller's head for a backend answer keeps what the core's `AnswerHeaders::passes`
    /// keeps (hop-by-hop and `Connection`-named headers out), replaces the gateway's own
    /// headers, drops `Content-Length` beside chunked framing, and rewrites a redirect to the
    /// backend.
    #[test]
    fn response_head_follows_the_core() {
        use crate::metrics::Metrics;
        use crate::snapshot::ConfigState;
        use crate::usage::UsageHub;
        use std::sync::Arc;
        let (routes, token) = (
            crate::fixtures::routes("none", ""),
            crate::fixtures::token(),
        );
        let fwd = crate::fixtures::forward(&routes, &token, Some("https://app.example"));
        let app = host::App::new(
            Arc::new(ConfigState::default()),
            Arc::new(UsageHub::disabled()),
            Arc::new(Metrics::new()),
            core::Config::default(),
            None,
        );
        let rate = vec![("ratelimit-limit", "10".to_owned())];
        let x = Reply {
            app: &app,
            fwd: &fwd,
            rate_headers: &rate,
            request_id: "gw-1",
            revision: b"42",
            subject: Subject::forward(&fwd),
            facts: Facts {
                method: "GET",
                client_ip: "10.0.0.1",
                user_agent: b"",
                request_id: "gw-1",
                revision: 42,
            },
            head_only: false,
            client_close: false,
            deadline: tokio::time::Instant::now(),
        };
        let backend = "HTTP/1.1 302 Found\r\n\
            Content-Type: text/plain\r\n\
            Connection: keep-alive, X-Private\r\n\
            X-Private: 1\r\n\
            Keep-Alive: timeout=5\r\n\
            Transfer-Encoding: chunked\r\n\
            Content-Length: 99\r\n\
            Trailer: x\r\n\
            Upgrade: h2c\r\n\
            Proxy-Authenticate: Basic\r\n\
            X-Request-Id: backend-made\r\n\
            X-Keygate-Revision: 1\r\n\
            RateLimit-Limit: 5\r\n\
            Access-Control-Allow-Origin: *\r\n\
            Location: http://127.0.0.1:9/next?a=1\r\n\
            Set-Cookie: a=1\r\n\
            Set-Cookie: b=2\r\n\
            Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n";
        let mut hs = [httparse::EMPTY_HEADER; wire::MAX_HEADERS];
        let r = wire::parse_response(backend.as_bytes(), &mut hs, false)
            .unwrap()
            .unwrap();
        assert_eq!(r.framing, Framing::Chunked);
        let mut out = Vec::new();
        write_head(&mut out, &r, &x, "gw.example", true);
        let text = String::from_utf8(out).unwrap();
        let (first, rest) = text.split_once("\r\n").unwrap();
        assert_eq!(first, "HTTP/1.1 302 Found");
        let mut got: Vec<(String, String)> = rest
            .trim_end()
            .split("\r\n")
            .map(|l| {
                let (k, v) = l.split_once(": ").unwrap();
                (k.to_ascii_lowercase(), v.to_owned())
            })
            .collect();
        // The backend's end-to-end headers, then the gateway's (AnswerHeaders), the framing.
        let mut want: Vec<(String, String)> = [
            ("content-type", "text/plain"),
            ("location", "http://gw.example/echo/next?a=1"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("transfer-encoding", "chunked"),
            ("x-request-id", "gw-1"),
            ("x-keygate-revision", "42"),
            ("ratelimit-limit", "10"),
            ("access-control-allow-origin", "https://app.example"),
            ("vary", "Origin"),
            (
                "access-control-expose-headers",
                "x-request-id, ratelimit-limit, ratelimit-remaining, ratelimit-reset, retry-after",
            ),
            ("connection", "close"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn answers_are_framed() {
        let mut r = core::Answer {
            status: 401,
            headers: vec![
                ("x-request-id".into(), b"gw-1".to_vec()),
                ("x-bad".into(), b"a\r\nx-injected: 1".to_vec()),
            ],
            body: "{\"error\":\"x\"}".into(),
        };
        let mut out = Vec::new();
        put_answer(&mut out, &r, false, true);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{text}");
        assert!(text.contains("\r\nx-request-id: gw-1\r\n"), "{text}");
        assert!(
            !text.contains("x-bad") && !text.contains("x-injected"),
            "{text}"
        );
        assert!(text.contains("\r\ncontent-length: 13\r\n"), "{text}");
        assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n{\"error\":\"x\"}"), "{text}");
        // HEAD: the same head, no body.
        put_answer(&mut out, &r, true, false);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.ends_with("\r\n\r\n") && text.contains("content-length: 13"),
            "{text}"
        );
        // 204 (a preflight): neither a length nor a body.
        r.status = 204;
        put_answer(&mut out, &r, false, false);
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains("content-length") && text.ends_with("\r\n\r\n"),
            "{text}"
        );
    }
}
