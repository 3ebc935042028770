//! A lean per-worker connection pool for plain `http://` backends.
//!
//! Every worker thread runs its own single-threaded runtime and owns one [`Backends`]: the
//! connections it opens are driven by tasks on that thread, so a request and its backend
//! connection never change threads. Against hyper-util's legacy `Client` (still used, inside
//! [`Backends`], for `https://` backends and every request this pool does not handle), a
//! request costs two uncontended lock round trips and two short hash lookups: no boxed
//! response future, no connector `Service` clone, no URI re-parsing, no task per request.
//!
//! # Design
//!
//! - Connections are keyed by the URI's authority (`host[:port]`, the scheme is always
//!   `http`). Each key has a list of parked [`http1::SendRequest`]s, the most recently parked
//!   last.
//! - **Checkout** scans the list from its newest end and takes the first sender that
//!   `is_ready()` (its connection is idle and waiting for a request); closed senders met on the
//!   way are dropped. When none is ready it connects a new `TcpStream` (TCP_NODELAY, keepalive
//!   60 s, connect timeout 10 s, as the legacy connector), handshakes HTTP/1.1 and spawns the
//!   connection task with `with_upgrades`, so a 101 answer hands the socket to the upgrade
//!   splice. That task is the only one spawned, once per connection.
//! - **Parking** happens as soon as the response head arrives, not when its body ends. The body
//!   goes to the caller as a bare `Incoming`, so the pool would need its own body wrapper to see
//!   the end; it does not need one: hyper marks the sender ready again by itself once the
//!   connection is idle (body read to its end, keep-alive kept). A sender whose body is still
//!   streaming stays parked, not ready, and checkout skips it. A small body arrives with its head,
//!   so its sender is usually ready before it is even parked (the legacy client relies on the
//!   same fact to skip its ready-watch task). A 101 answer's sender is never parked: that
//!   connection now belongs to the upgrade.
//! - **Bounds**: at most [`Limits::max_parked`] senders per authority (1024, the legacy
//!   `pool_max_idle_per_host`); one more is dropped, which closes its connection once the
//!   response in flight has been read.
//! - **Idle timeout** ([`Limits::idle_timeout`], 90 s): a sweeper task per pool (holding a
//!   `Weak`, so it ends with the pool) ticks [`IDLE_TICKS`] times per timeout. Parking stamps a
//!   sender with the current tick (no clock read per request); a sweep drops ready senders parked
//!   for more than [`IDLE_TICKS`] ticks (idle between 90 and 95 s) and re-stamps those still
//!   streaming.
//! - A request future dropped before its answer (the caller's timeout, a client gone) drops its
//!   sender: hyper then closes that connection, so a late answer is never read as the next
//!   request's.
//! - `serve_public` spawns its connections with `tokio::spawn`, which needs `Send` futures, so
//!   the state is an `Arc<Mutex<_>>`. Only the owning worker thread and its sweeper ever lock it,
//!   never across an `.await`: the lock is uncontended.
//!
//! # Retries
//!
//! A request is retried only when hyper gives it back unsent
//! ([`http1::SendRequest::try_send_request`] returns it when the connection went away before
//! writing it), and only when that connection came from the pool: the backend cannot have seen
//! the request, so it goes to the next ready sender or a new connection. A new connection
//! failing that way is not retried. This is the legacy client's rule
//! (`retry_canceled_requests`, reused connections only).
//! A request already written when the connection dies (the classic race: the backend closed an
//! idle keep-alive connection just as the request was sent, "connection closed before message
//! completed") is not replayed, again like the legacy client: the backend may have acted on it
//! and its body is a one-shot stream. It becomes the caller's 502. Closes the worker has already
//! seen never get that far: checkout drops `is_closed()` senders.

use bytes::Bytes;
use http::header::{HOST, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body, Incoming};
use hyper::client::conn::http1;
use hyper_util::client::legacy;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;
use tokio::net::TcpStream;

/// The client for what the pool does not handle (`https://` backends above all).
pub type Legacy<B> = legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, B>;

/// The legacy pooled client of the hyper front end: `https://` backends (and whatever
/// [`Backends`] does not handle itself).
pub type BackendClient = Legacy<crate::body::ReqBody>;

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
    legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(https)
}

/// How long a new connection may take, as the legacy connector's `connect_timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP keepalive time on backend connections, as the legacy connector's.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// Sweeps per idle timeout: a ready sender is dropped after idling between `IDLE_TICKS` and
/// `IDLE_TICKS + 1` ticks.
pub const IDLE_TICKS: u32 = 18;

/// The pool's bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most senders parked per authority.
    pub max_parked: usize,
    /// How long a connection may stay idle in the pool (swept every 18th of it, so it may
    /// stay up to an 18th longer).
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_parked: 1024,
            idle_timeout: Duration::from_secs(90),
        }
    }
}

/// Why a backend request failed. All of them are the caller's 502.
#[derive(Debug)]
pub enum BackendError {
    /// Connecting failed (refused, unreachable, name not resolved).
    Connect(std::io::Error),
    /// No connection within [`CONNECT_TIMEOUT`].
    ConnectTimeout,
    /// The HTTP/1 exchange failed (closed before an answer, malformed answer, ...).
    Http(hyper::Error),
    /// The legacy client failed (`https://` and other requests the pool does not handle).
    Legacy(legacy::Error),
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "tcp connect error: {e}"),
            Self::ConnectTimeout => write!(f, "tcp connect timed out after {CONNECT_TIMEOUT:?}"),
            Self::Http(e) => write!(f, "{e}"),
            Self::Legacy(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect(e) => Some(e),
            Self::ConnectTimeout => None,
            Self::Http(e) => Some(e),
            Self::Legacy(e) => Some(e),
        }
    }
}

/// One worker's backend connections. Cloning is one reference count.
pub struct Backends<B> {
    inner: Arc<Inner<B>>,
}

impl<B> Clone for Backends<B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<B> {
    hosts: Mutex<Hosts<B>>,
    h1: http1::Builder,
    legacy: Legacy<B>,
    limits: Limits,
}

struct Hosts<B> {
    /// FxHash: authorities come from the route table, not from callers.
    by_authority: FxHashMap<Box<str>, Host<B>>,
    /// Sweeps so far: the clock parked senders are stamped with.
    tick: u32,
}

/// One authority's parked senders and its `Host` header value (built once).
struct Host<B> {
    parked: Vec<Parked<B>>,
    host_header: HeaderValue,
}

struct Parked<B> {
    sender: http1::SendRequest<B>,
    /// The sweep tick it was parked at (or last seen busy at).
    tick: u32,
}

impl<B> Host<B> {
    /// The newest ready sender, dropping closed ones met on the way.
    fn take_ready(&mut self) -> Option<http1::SendRequest<B>> {
        let mut i = self.parked.len();
        while i > 0 {
            i -= 1;
            // `swap_remove` moves the last entry, already looked at, into `i`.
            let s = &self.parked[i].sender;
            if s.is_closed() {
                self.parked.swap_remove(i);
            } else if s.is_ready() {
                return Some(self.parked.swap_remove(i).sender);
            }
        }
        None
    }
}

impl<B> Backends<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// A pool with the default [`Limits`], `legacy` for the requests it does not handle.
    /// Called inside a runtime (the worker's), it starts its idle sweeper there.
    pub fn new(legacy: Legacy<B>) -> Self {
        Self::with_limits(legacy, Limits::default())
    }

    /// A pool with `limits` (tests use short ones).
    pub fn with_limits(legacy: Legacy<B>, limits: Limits) -> Self {
        let inner = Arc::new(Inner {
            hosts: Mutex::new(Hosts {
                by_authority: FxHashMap::default(),
                tick: 0,
            }),
            h1: {
                // Small requests: one flattened write beats a vectored one (see server.rs).
                let mut h1 = http1::Builder::new();
                h1.writev(false);
                h1
            },
            legacy,
            limits,
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(sweeper(Arc::downgrade(&inner)));
        }
        Self { inner }
    }

    /// Sends `req` (absolute URI, as the proxy builds it) and returns the response once its
    /// head has arrived; the body streams. `http://` requests go through the pool in
    /// origin-form with a `Host` header (the URI's host, and its port unless 80, as the legacy
    /// client sets it) unless the caller set one; everything else goes to the legacy client.
    pub async fn request(&self, mut req: Request<B>) -> Result<Response<Incoming>, BackendError> {
        let Some(authority) = take_http_authority(&mut req) else {
            return self
                .inner
                .legacy
                .request(req)
                .await
                .map_err(BackendError::Legacy);
        };
        loop {
            let (parked, host_header) = self.checkout(&authority);
            req.headers_mut().entry(HOST).or_insert(host_header);
            let reused = parked.is_some();
            let mut sender = match parked {
                Some(s) => s,
                // Boxed: the rare path's future stays out of every request's future.
                None => Box::pin(self.connect(&authority)).await?,
            };
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
                        self.park(&authority, sender);
                    }
                    return Ok(resp);
                }
                Err(mut e) => match e.take_message() {
                    // Never written: the backend cannot have seen it.
                    Some(r) if reused => req = r,
                    _ => return Err(BackendError::Http(e.into_error())),
                },
            }
        }
    }

    /// A ready parked sender for `authority`, if any, and the `Host` value to send there.
    fn checkout(&self, authority: &Authority) -> (Option<http1::SendRequest<B>>, HeaderValue) {
        let mut hosts = self.inner.lock();
        match hosts.by_authority.get_mut(authority.as_str()) {
            Some(h) => (h.take_ready(), h.host_header.clone()),
            None => {
                let host_header = host_header(authority);
                hosts.by_authority.insert(
                    authority.as_str().into(),
                    Host {
                        parked: Vec::new(),
                        host_header: host_header.clone(),
                    },
                );
                (None, host_header)
            }
        }
    }

    /// Puts `sender` back for the next request, unless its connection is closed or the list is
    /// full (then dropping it closes the connection after the response in flight). Re-creates
    /// the authority's entry if a sweep forgot it while the request was in flight.
    fn park(&self, authority: &Authority, sender: http1::SendRequest<B>) {
        let max = self.inner.limits.max_parked;
        if sender.is_closed() || max == 0 {
            return;
        }
        let mut hosts = self.inner.lock();
        let tick = hosts.tick;
        let parked = Parked { sender, tick };
        match hosts.by_authority.get_mut(authority.as_str()) {
            Some(h) if h.parked.len() < max => h.parked.push(parked),
            // Full: dropped here, its connection closes after the answer in flight.
            Some(_) => {}
            None => {
                hosts.by_authority.insert(
                    authority.as_str().into(),
                    Host {
                        parked: vec![parked],
                        host_header: host_header(authority),
                    },
                );
            }
        }
    }

    /// A new connection to `authority`, its connection task spawned on this thread.
    async fn connect(&self, authority: &Authority) -> Result<http1::SendRequest<B>, BackendError> {
        let host = authority.host();
        // `[::1]` in a URI, `::1` for the resolver.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = authority.port_u16().unwrap_or(80);
        let stream =
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port))).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(BackendError::Connect(e)),
                Err(_) => return Err(BackendError::ConnectTimeout),
            };
        let _ = stream.set_nodelay(true);
        let _ = socket2::SockRef::from(&stream)
            .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE));
        let (sender, conn) = self
            .inner
            .h1
            .handshake(TokioIo::new(stream))
            .await
            .map_err(BackendError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "backend connection ended with an error");
            }
        });
        Ok(sender)
    }
}

impl<B> Inner<B> {
    fn lock(&self) -> MutexGuard<'_, Hosts<B>> {
        // Nothing panics while holding it; a poisoned pool is still a consistent pool.
        self.hosts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One tick: drops closed senders and ready ones idle for more than [`IDLE_TICKS`] ticks,
    /// re-stamps busy ones, forgets authorities left without senders.
    fn sweep(&self) {
        let mut hosts = self.lock();
        hosts.tick = hosts.tick.wrapping_add(1);
        let now = hosts.tick;
        hosts.by_authority.retain(|_, h| {
            h.parked.retain_mut(|p| {
                if p.sender.is_closed() {
                    false
                } else if p.sender.is_ready() {
                    now.wrapping_sub(p.tick) <= IDLE_TICKS
                } else {
                    // Still streaming a body: busy, not idle.
                    p.tick = now;
                    true
                }
            });
            !h.parked.is_empty()
        });
    }
}

/// Sweeps `pool` [`IDLE_TICKS`] times per idle timeout until the pool is dropped.
async fn sweeper<B>(pool: Weak<Inner<B>>) {
    let Some(period) = pool
        .upgrade()
        .map(|p| (p.limits.idle_timeout / IDLE_TICKS).max(Duration::from_millis(1)))
    else {
        return;
    };
    loop {
        tokio::time::sleep(period).await;
        match pool.upgrade() {
            Some(p) => p.sweep(),
            None => return,
        }
    }
}

/// For a request the pool handles (`http://` absolute URI, HTTP/1.x, not `CONNECT`): its
/// authority, the URI rewritten to origin-form. Anything else is left untouched.
fn take_http_authority<B>(req: &mut Request<B>) -> Option<Authority> {
    let uri = req.uri();
    if uri.scheme() != Some(&Scheme::HTTP)
        || uri.authority().is_none()
        || req.method() == Method::CONNECT
        || !matches!(req.version(), Version::HTTP_11 | Version::HTTP_10)
    {
        return None;
    }
    let parts = std::mem::take(req.uri_mut()).into_parts();
    *req.uri_mut() = match parts.path_and_query {
        Some(pq) if pq.as_str() != "/" => Uri::from(pq),
        _ => Uri::default(),
    };
    parts.authority
}

/// The `Host` value the legacy client sends: the host, and the port unless it is 80.
fn host_header(authority: &Authority) -> HeaderValue {
    let value = match authority.port_u16() {
        Some(80) | None => authority.host(),
        Some(_) => authority
            .as_str()
            .rsplit_once('@')
            .map_or(authority.as_str(), |(_, a)| a),
    };
    HeaderValue::from_maybe_shared(Bytes::copy_from_slice(value.as_bytes()))
        .expect("an authority is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    type Pool = Backends<Empty<Bytes>>;

    fn legacy() -> Legacy<Empty<Bytes>> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https)
    }

    /// How the test upstream ends each answer.
    #[derive(Clone, Copy, PartialEq)]
    enum Mode {
        /// Keep-alive, one answer after another.
        KeepAlive,
        /// Close the socket after the answer, without saying so.
        CloseSilently,
        /// `connection: close`, then close.
        CloseAnnounced,
    }

    /// A raw HTTP/1.1 upstream counting accepted connections and requests, remembering the
    /// request heads it saw. Answers `ok` after `delay`.
    struct Upstream {
        addr: std::net::SocketAddr,
        accepted: Arc<AtomicUsize>,
        requests: Arc<AtomicUsize>,
        heads: Arc<Mutex<Vec<String>>>,
    }

    impl Upstream {
        async fn start(mode: Mode, delay: Duration) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let accepted = Arc::new(AtomicUsize::new(0));
            let requests = Arc::new(AtomicUsize::new(0));
            let heads = Arc::new(Mutex::new(Vec::new()));
            let (a, r, h) = (accepted.clone(), requests.clone(), heads.clone());
            tokio::spawn(async move {
                loop {
                    let (mut s, _) = listener.accept().await.unwrap();
                    a.fetch_add(1, Ordering::SeqCst);
                    let (r, h) = (r.clone(), h.clone());
                    tokio::spawn(async move {
                        let mut buf = Vec::new();
                        loop {
                            // Requests here have no body: a head ends the request.
                            let end = loop {
                                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                    break i + 4;
                                }
                                let mut chunk = [0u8; 4096];
                                match s.read(&mut chunk).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                                }
                            };
                            let head: Vec<u8> = buf.drain(..end).collect();
                            h.lock().unwrap().push(String::from_utf8(head).unwrap());
                            r.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(delay).await;
                            let answer: &[u8] = if mode == Mode::CloseAnnounced {
                                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                            } else {
                                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                            };
                            if s.write_all(answer).await.is_err() || mode != Mode::KeepAlive {
                                return;
                            }
                        }
                    });
                }
            });
            Self {
                addr,
                accepted,
                requests,
                heads,
            }
        }

        fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }

        fn accepted(&self) -> usize {
            self.accepted.load(Ordering::SeqCst)
        }

        fn authority(&self) -> Authority {
            self.addr.to_string().parse().unwrap()
        }
    }

    fn get(url: &str) -> Request<Empty<Bytes>> {
        Request::get(url).body(Empty::new()).unwrap()
    }

    /// Sends a GET and reads the whole answer.
    async fn fetch(pool: &Pool, url: &str) -> Result<(StatusCode, Bytes), BackendError> {
        let resp = pool.request(get(url)).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Ok((status, body))
    }

    fn parked(pool: &Pool, authority: &Authority) -> usize {
        pool.inner
            .lock()
            .by_authority
            .get(authority.as_str())
            .map_or(0, |h| h.parked.len())
    }

    #[tokio::test]
    async fn sequential_requests_reuse_one_connection() {
        let up = Upstream::start(Mode::KeepAlive, Duration::ZERO).await;
        let pool = Pool::new(legacy());
        for _ in 0..20 {
            let (status, body) = fetch(&pool, &up.url("/x")).await.unwrap();
            assert_eq!(status, StatusCode::OK);
            assert_eq!(&body[..], b"ok");
        }
        assert_eq!(up.accepted(), 1);
        assert_eq!(up.requests.load(Ordering::SeqCst), 20);
    }

    #[tokio::test]
    async fn concurrent_requests_open_several_connections_then_reuse_them() {
        let up = Upstream::start(Mode::KeepAlive, Duration::from_millis(50)).await;
        let pool = Pool::new(legacy());
        let url = up.url("/c");
        for _ in 0..3 {
            let all = futures::future::join_all((0..4).map(|_| fetch(&pool, &url))).await;
            assert!(all.iter().all(|r| r.as_ref().unwrap().0 == StatusCode::OK));
            assert_eq!(up.accepted(), 4);
        }
        assert_eq!(parked(&pool, &up.authority()), 4);
    }

    #[tokio::test]
    async fn sends_origin_form_with_the_uri_host_unless_the_caller_set_one() {
        let up = Upstream::start(Mode::KeepAlive, Duration::ZERO).await;
        let pool = Pool::new(legacy());
        fetch(&pool, &up.url("/a/b?c=d&e")).await.unwrap();
        fetch(&pool, &up.url("")).await.unwrap();
        let mut req = get(&up.url("/h"));
        req.headers_mut()
            .insert(HOST, HeaderValue::from_static("caller.example"));
        pool.request(req).await.unwrap();
        let heads = up.heads.lock().unwrap().clone();
        let host = format!("host: {}\r\n", up.addr);
        assert!(
            heads[0].starts_with("GET /a/b?c=d&e HTTP/1.1\r\n"),
            "{}",
            heads[0]
        );
        assert!(heads[0].contains(&host), "{}", heads[0]);
        assert!(heads[1].starts_with("GET / HTTP/1.1\r\n"), "{}", heads[1]);
        assert!(
            heads[2].contains("host: caller.example\r\n"),
            "{}",
            heads[2]
        );
        assert!(!heads[2].contains(&host), "{}", heads[2]);
        assert_eq!(heads.iter().filter(|h| h.contains("host:")).count(), 3);
    }

    #[test]
    fn host_header_is_the_legacy_clients() {
        let h = |a: &str| host_header(&a.parse().unwrap());
        assert_eq!(h("example.com"), "example.com");
        assert_eq!(h("example.com:80"), "example.com");
        assert_eq!(h("example.com:8080"), "example.com:8080");
        assert_eq!(h("[::1]:8080"), "[::1]:8080");
        assert_eq!(h("[::1]:80"), "[::1]");
        assert_eq!(h("user@example.com:81"), "example.com:81");
    }

    #[tokio::test]
    async fn a_backend_closing_after_each_answer_gets_fresh_connections() {
        // Announced: hyper closes the connection itself, the next request connects anew.
        let up = Upstream::start(Mode::CloseAnnounced, Duration::ZERO).await;
        let pool = Pool::new(legacy());
        for _ in 0..5 {
            assert_eq!(fetch(&pool, &up.url("/x")).await.unwrap().0, StatusCode::OK);
        }
        assert_eq!(up.accepted(), 5);

        // Silent: once the worker has seen the close, the parked sender is closed and skipped.
        let up = Upstream::start(Mode::CloseSilently, Duration::ZERO).await;
        for _ in 0..5 {
            assert_eq!(fetch(&pool, &up.url("/x")).await.unwrap().0, StatusCode::OK);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(up.accepted(), 5);
        assert_eq!(up.requests.load(Ordering::SeqCst), 5);
    }

    /// A parked connection that goes away with a request queued but not yet written gives the
    /// request back; it is sent again on another connection, and reaches the backend once.
    #[tokio::test]
    async fn an_unsent_request_on_a_dead_parked_connection_is_retried() {
        let up = Upstream::start(Mode::KeepAlive, Duration::ZERO).await;
        let pool = Pool::new(legacy());
        fetch(&pool, &up.url("/first")).await.unwrap();

        // A second connection whose task the test holds instead of spawning it: ready, parked
        // last (so checked out first), then dropped while the request waits in its queue.
        let stream = TcpStream::connect(up.addr).await.unwrap();
        let (sender, conn) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .unwrap();
        let mut conn = Box::pin(conn);
        assert!(futures::poll!(conn.as_mut()).is_pending());
        assert!(sender.is_ready());
        pool.park(&up.authority(), sender);
        assert_eq!(parked(&pool, &up.authority()), 2);

        let url = up.url("/retried");
        let mut req = Box::pin(fetch(&pool, &url));
        assert!(futures::poll!(req.as_mut()).is_pending());
        assert_eq!(
            parked(&pool, &up.authority()),
            1,
            "the dying sender was taken"
        );
        drop(conn);
        let (status, _) = req.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(up.requests.load(Ordering::SeqCst), 2);
        assert_eq!(up.accepted(), 2);
    }

    #[tokio::test]
    async fn a_failed_new_connection_is_a_connect_error() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        let pool = Pool::new(legacy());
        let err = fetch(&pool, &format!("http://127.0.0.1:{port}/"))
            .await
            .unwrap_err();
        assert!(matches!(err, BackendError::Connect(_)), "{err}");
    }

    #[tokio::test]
    async fn idle_connections_are_closed_after_the_idle_timeout() {
        let up = Upstream::start(Mode::KeepAlive, Duration::ZERO).await;
        let pool = Pool::with_limits(
            legacy(),
            Limits {
                idle_timeout: Duration::from_millis(360),
                ..Limits::default()
            },
        );
        fetch(&pool, &up.url("/x")).await.unwrap();
        assert_eq!(parked(&pool, &up.authority()), 1);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(
            parked(&pool, &up.authority()),
            1,
            "not idle long enough yet"
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(parked(&pool, &up.authority()), 0);
        assert!(pool.inner.lock().by_authority.is_empty());
        fetch(&pool, &up.url("/x")).await.unwrap();
        assert_eq!(up.accepted(), 2);
    }

    /// A request slower than the idle timeout: its sender is away, sweeps forget the empty
    /// authority meanwhile, and it is still parked (and reused) afterwards.
    #[tokio::test]
    async fn a_request_in_flight_across_sweeps_is_parked_after_it() {
        let up = Upstream::start(Mode::KeepAlive, Duration::from_millis(150)).await;
        let pool = Pool::with_limits(
            legacy(),
            Limits {
                idle_timeout: Duration::from_millis(36),
                ..Limits::default()
            },
        );
        fetch(&pool, &up.url("/slow")).await.unwrap();
        fetch(&pool, &up.url("/slow")).await.unwrap();
        assert_eq!(up.accepted(), 1);
    }

    #[tokio::test]
    async fn the_parked_list_is_bounded() {
        let up = Upstream::start(Mode::KeepAlive, Duration::from_millis(50)).await;
        let pool = Pool::with_limits(
            legacy(),
            Limits {
                max_parked: 2,
                ..Limits::default()
            },
        );
        let url = up.url("/b");
        let all = futures::future::join_all((0..5).map(|_| fetch(&pool, &url))).await;
        assert!(all.iter().all(Result::is_ok));
        assert_eq!(up.accepted(), 5);
        assert_eq!(parked(&pool, &up.authority()), 2);
    }

    /// A sender parked while its body still streams is skipped (not ready), and reused once
    /// the body has been read to its end.
    #[tokio::test]
    async fn a_connection_still_streaming_a_body_is_skipped_then_reused() {
        // Each answer sends its head and a first chunk, then waits for a permit to end.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let permits = Arc::new(tokio::sync::Semaphore::new(0));
        let (a, p) = (accepted.clone(), permits.clone());
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                a.fetch_add(1, Ordering::SeqCst);
                let p = p.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            let mut chunk = [0u8; 4096];
                            match s.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buf.clear();
                        let head =
                            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n";
                        if s.write_all(head).await.is_err() {
                            return;
                        }
                        p.acquire().await.unwrap().forget();
                        if s.write_all(b"0\r\n\r\n").await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let url = format!("http://{addr}/s");
        let authority: Authority = addr.to_string().parse().unwrap();
        let pool = Pool::new(legacy());

        let first = pool.request(get(&url)).await.unwrap();
        assert_eq!(
            parked(&pool, &authority),
            1,
            "parked as soon as the head arrived"
        );
        let second = pool.request(get(&url)).await.unwrap();
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "the busy one was skipped"
        );

        permits.add_permits(2);
        for r in [first, second] {
            assert_eq!(
                &r.into_body().collect().await.unwrap().to_bytes()[..],
                b"ok"
            );
        }
        for _ in 0..4 {
            permits.add_permits(1);
            let (status, body) = fetch(&pool, &url).await.unwrap();
            assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(parked(&pool, &authority), 2);
    }

    #[tokio::test]
    async fn other_schemes_go_to_the_legacy_client() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        let pool = Pool::new(legacy());
        let err = fetch(&pool, &format!("https://127.0.0.1:{port}/"))
            .await
            .unwrap_err();
        assert!(matches!(err, BackendError::Legacy(_)), "{err}");
        assert!(err.to_string().contains("onnect"), "{err}");
        assert!(pool.inner.lock().by_authority.is_empty());
        // Not absolute: the legacy client's own error, as before the pool.
        let err = fetch(&pool, "/relative").await.unwrap_err();
        assert!(matches!(err, BackendError::Legacy(_)), "{err}");
    }
}
