//! HTTP/1.1 on the wire (RFC 9110, RFC 9112): the gateway's public listener spoken to over raw
//! TCP, in front of raw TCP upstreams that script their side byte by byte and record what they
//! received. These tests pin what HTTP/1.1 requires of the gateway (message framing, persistent
//! connections, pipelining, request-smuggling defences, streaming in both directions, its own
//! error answers) and accept every answer the RFCs allow where several are valid, so that any
//! HTTP/1 implementation of the gateway can be held to them.
//!
//! Harness: a local KV written directly (no control plane), one token, one worker thread, every
//! wait bounded so that a hang fails instead of blocking.

use keygate_contracts::token::NewToken;
use keygate_gateway::Running;
use keygate_kv::SqliteKv;
use keygate_kv_record::{RouteRecord, RouteTable};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

mod common;

/// The bound on every wait.
const WAIT: Duration = Duration::from_secs(10);

async fn within<F: Future>(what: &str, f: F) -> F::Output {
    within_for(WAIT, what, f).await
}

async fn within_for<F: Future>(limit: Duration, what: &str, f: F) -> F::Output {
    match tokio::time::timeout(limit, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

fn lossy(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(2000)]).into_owned();
    if b.len() > 2000 {
        format!("{s}... ({} bytes)", b.len())
    } else {
        s
    }
}

/// Deterministic test bytes (every byte value, CR and LF included).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Asserts two bodies are equal without printing megabytes.
fn assert_same(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: got {} bytes, want {}; first difference at {at:?}",
            got.len(),
            want.len()
        );
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn eof(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, format!("EOF {what}"))
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/// A request or response head, parsed strictly (RFC 9112 §2, §5).
#[derive(Debug, Clone)]
struct Head {
    /// The request line or status line.
    line: String,
    /// Field names lower-cased, values without surrounding whitespace, in order.
    fields: Vec<(String, String)>,
    raw: Vec<u8>,
}

impl Head {
    fn parse(raw: &[u8]) -> Result<Self, String> {
        let text = String::from_utf8_lossy(raw);
        let text = text
            .strip_suffix("\r\n\r\n")
            .ok_or("a head not ending in CRLF CRLF")?;
        let mut lines = text.split("\r\n");
        let line = lines.next().unwrap_or_default().to_owned();
        let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        let mut fields = Vec::new();
        for l in lines {
            if l.starts_with([' ', '\t']) {
                return Err(format!("obsolete line folding (RFC 9112 §5.2): {l:?}"));
            }
            let (name, value) = l
                .split_once(':')
                .ok_or_else(|| format!("a field line without ':': {l:?}"))?;
            if name.is_empty() || !name.bytes().all(tchar) {
                return Err(format!("an invalid field name (RFC 9112 §5.1): {l:?}"));
            }
            fields.push((
                name.to_ascii_lowercase(),
                value.trim_matches([' ', '\t']).to_owned(),
            ));
        }
        Ok(Self {
            line,
            fields,
            raw: raw.to_vec(),
        })
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.all(name).first().copied()
    }

    fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|(k, _)| k == name)
    }

    /// The members of every `name` field's comma-separated list, lower-cased.
    fn tokens(&self, name: &str) -> Vec<String> {
        self.all(name)
            .iter()
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect()
    }

    fn word(&self, i: usize) -> &str {
        self.line.split(' ').nth(i).unwrap_or("")
    }

    fn method(&self) -> &str {
        self.word(0)
    }

    fn target(&self) -> &str {
        self.word(1)
    }

    fn status(&self) -> u16 {
        self.word(1).parse().unwrap_or(0)
    }

    fn text(&self) -> String {
        lossy(&self.raw)
    }
}

/// How a message body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    Close,
}

/// The Content-Length, if any; several values must agree (RFC 9110 §8.6).
fn content_length(head: &Head) -> Result<Option<usize>, String> {
    let mut n = None;
    for v in head
        .all("content-length")
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
    {
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("an invalid Content-Length {v:?}"));
        }
        let v: usize = v.parse().map_err(|_| format!("Content-Length {v:?}"))?;
        if n.is_some_and(|n| n != v) {
            return Err("conflicting Content-Length values".into());
        }
        n = Some(v);
    }
    Ok(n)
}

/// A request's framing as the gateway sent it to a backend.
fn request_framing(head: &Head) -> Result<Framing, String> {
    let te = head.tokens("transfer-encoding");
    match (te.last(), content_length(head)?) {
        (Some(_), Some(_)) => {
            Err("both Transfer-Encoding and Content-Length (RFC 9112 §6.2)".into())
        }
        (Some(last), None) if last == "chunked" => Ok(Framing::Chunked),
        (Some(_), None) => Err("a Transfer-Encoding not ending in chunked (RFC 9112 §6.3)".into()),
        (None, Some(n)) => Ok(Framing::Length(n)),
        (None, None) => Ok(Framing::Empty),
    }
}

/// A response's framing as the gateway sent it to the client, for a request of `method`.
fn response_framing(head: &Head, method: &str) -> Result<Framing, String> {
    let status = head.status();
    let te = head.tokens("transfer-encoding");
    let cl = content_length(head)?;
    if (100..200).contains(&status) || status == 204 {
        if !te.is_empty() || cl.is_some() {
            return Err(format!(
                "a {status} with Transfer-Encoding or Content-Length (RFC 9110 §8.6, RFC 9112 §6.1)"
            ));
        }
        return Ok(Framing::Empty);
    }
    if !te.is_empty() && cl.is_some() {
        return Err("both Transfer-Encoding and Content-Length (RFC 9112 §6.2)".into());
    }
    if method == "HEAD" || status == 304 {
        return Ok(Framing::Empty);
    }
    Ok(match (te.last(), cl) {
        (Some(last), _) if last == "chunked" => Framing::Chunked,
        (Some(_), _) => Framing::Close,
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::Close,
    })
}

/// A response as the client read it.
struct Resp {
    head: Head,
    body: Vec<u8>,
    framing: Framing,
}

impl Resp {
    fn status(&self) -> u16 {
        self.head.status()
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.head.get(name)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", lossy(&self.body)))
    }

    /// Whether the connection may carry another request after this response.
    fn persistent(&self) -> bool {
        self.framing != Framing::Close
            && !self.head.tokens("connection").iter().any(|t| t == "close")
            && self.head.line.starts_with("HTTP/1.1")
    }
}

fn describe(r: &Resp) -> String {
    format!("{}{}", r.head.text(), lossy(&r.body))
}

// ---------------------------------------------------------------------------------------------
// One TCP connection, either side
// ---------------------------------------------------------------------------------------------

struct Wire {
    rd: OwnedReadHalf,
    /// Taken by tests that write from another task.
    wr: Option<OwnedWriteHalf>,
    buf: Vec<u8>,
    /// Bytes read from the socket so far (shared by an upstream's connections).
    received: Arc<AtomicUsize>,
}

impl Wire {
    fn new(s: TcpStream, received: Arc<AtomicUsize>) -> Self {
        let _ = s.set_nodelay(true);
        let (rd, wr) = s.into_split();
        Self {
            rd,
            wr: Some(wr),
            buf: Vec::new(),
            received,
        }
    }

    async fn connect(addr: SocketAddr) -> Self {
        let s = within("a TCP connection", TcpStream::connect(addr))
            .await
            .expect("connect");
        Self::new(s, Arc::default())
    }

    /// Reads what the socket has; `Ok(0)` at EOF.
    async fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = vec![0u8; 65536];
        let n = self.rd.read(&mut chunk).await?;
        self.received.fetch_add(n, Ordering::SeqCst);
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// The next head; `None` at EOF before any byte of it.
    async fn head(&mut self) -> io::Result<Option<Head>> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                let raw: Vec<u8> = self.buf.drain(..i + 4).collect();
                return Head::parse(&raw).map(Some).map_err(invalid);
            }
            if self.fill().await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(eof("inside a head"))
                };
            }
        }
    }

    /// One line without its CRLF.
    async fn line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let mut l: Vec<u8> = self.buf.drain(..i + 2).collect();
                l.truncate(i);
                return Ok(l);
            }
            if self.fill().await? == 0 {
                return Err(eof("inside a line"));
            }
        }
    }

    /// Between 1 and `max` bytes.
    async fn some(&mut self, max: usize) -> io::Result<Vec<u8>> {
        if self.buf.is_empty() && self.fill().await? == 0 {
            return Err(eof("inside a body"));
        }
        let n = max.min(self.buf.len());
        Ok(self.buf.drain(..n).collect())
    }

    async fn take_into(&mut self, n: usize, out: &mut Vec<u8>) -> io::Result<()> {
        let mut left = n;
        while left > 0 {
            let p = self.some(left).await?;
            left -= p.len();
            out.extend_from_slice(&p);
        }
        Ok(())
    }

    /// A chunk-size line (RFC 9112 §7.1), extensions ignored.
    async fn chunk_size(&mut self) -> io::Result<usize> {
        let line = self.line().await?;
        let size = line.split(|&b| b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(size)
            .unwrap_or("")
            .trim_end_matches([' ', '\t']);
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(format!("a bad chunk-size line {:?}", lossy(&line))));
        }
        usize::from_str_radix(size, 16).map_err(|e| invalid(e.to_string()))
    }

    /// The rest of a chunked body (trailers read and dropped).
    async fn chunked_into(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        loop {
            let n = self.chunk_size().await?;
            if n == 0 {
                while !self.line().await?.is_empty() {}
                return Ok(());
            }
            self.take_into(n, out).await?;
            if !self.line().await?.is_empty() {
                return Err(invalid("chunk data not followed by CRLF"));
            }
        }
    }

    /// A body with `framing`; on error `out` holds what arrived.
    async fn body_into(&mut self, framing: Framing, out: &mut Vec<u8>) -> io::Result<()> {
        match framing {
            Framing::Empty => Ok(()),
            Framing::Length(n) => self.take_into(n, out).await,
            Framing::Chunked => self.chunked_into(out).await,
            Framing::Close => loop {
                out.append(&mut self.buf);
                if self.fill().await? == 0 {
                    return Ok(());
                }
            },
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        let wr = self.wr.as_mut().expect("the write half");
        within("a write", wr.write_all(bytes))
            .await
            .expect("writing to the gateway");
    }

    /// The next final response (interim 1xx ones skipped, RFC 9110 §15.2), unbounded.
    async fn read_response(&mut self, method: &str) -> Resp {
        loop {
            let head = self
                .head()
                .await
                .unwrap_or_else(|e| panic!("reading a response head: {e}"))
                .expect("the connection closed before a response");
            if (100..200).contains(&head.status()) && head.status() != 101 {
                continue;
            }
            let framing =
                response_framing(&head, method).unwrap_or_else(|e| panic!("{e}: {}", head.text()));
            let mut body = Vec::new();
            if let Err(e) = self.body_into(framing, &mut body).await {
                panic!(
                    "reading a {framing:?} body after {}: {e} ({} bytes arrived)",
                    head.text(),
                    body.len()
                );
            }
            return Resp {
                head,
                body,
                framing,
            };
        }
    }

    async fn response(&mut self, method: &str) -> Resp {
        within("a response", self.read_response(method)).await
    }

    /// The peer closes (EOF or reset) without sending anything more.
    async fn expect_closed(&mut self) {
        within("the gateway to close the connection", async {
            loop {
                assert!(
                    self.buf.is_empty(),
                    "bytes after the last response: {:?}",
                    lossy(&self.buf)
                );
                match self.fill().await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// Upstreams
// ---------------------------------------------------------------------------------------------

/// What an upstream received of one request.
#[derive(Debug, Clone)]
struct Seen {
    head: Head,
    body: Vec<u8>,
    /// The body ended as its framing says (false: the connection ended first, or only the head
    /// was read).
    complete: bool,
}

#[derive(Default, Clone)]
struct Log {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// HTTP errors in what the gateway sent (checked by [`Upstream::seen`]).
    problems: Arc<Mutex<Vec<String>>>,
    /// Requests whose head arrived and whose body is still being read.
    in_flight: Arc<AtomicUsize>,
}

/// One accepted connection of a scripted upstream.
struct UpConn {
    w: Wire,
    log: Log,
}

impl UpConn {
    /// A request head; bad HTTP is recorded as a problem.
    async fn head(&mut self) -> Option<Head> {
        match self.w.head().await {
            Ok(h) => h,
            Err(e) => {
                if e.kind() == io::ErrorKind::InvalidData {
                    self.problem(format!("unparsable request head: {e}"));
                }
                None
            }
        }
    }

    /// A whole request, recorded; `None` at EOF (a cut-off body is recorded as incomplete).
    async fn request(&mut self) -> Option<Seen> {
        let head = self.head().await?;
        let framing = match request_framing(&head) {
            Ok(f) => f,
            Err(e) => {
                self.problem(format!("{e}: {}", head.text()));
                return None;
            }
        };
        self.log.in_flight.fetch_add(1, Ordering::SeqCst);
        let mut body = Vec::new();
        let result = self.w.body_into(framing, &mut body).await;
        if let Err(e) = &result
            && e.kind() == io::ErrorKind::InvalidData
        {
            self.problem(format!("bad request body framing: {e}: {}", head.text()));
        }
        let seen = Seen {
            head,
            body,
            complete: result.is_ok(),
        };
        self.log.seen.lock().unwrap().push(seen.clone());
        self.log.in_flight.fetch_sub(1, Ordering::SeqCst);
        result.ok().map(|()| seen)
    }

    /// A request head only, recorded with no body.
    async fn head_only(&mut self) -> Option<Head> {
        let head = self.head().await?;
        self.log.seen.lock().unwrap().push(Seen {
            head: head.clone(),
            body: Vec::new(),
            complete: false,
        });
        Some(head)
    }

    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.w
            .wr
            .as_mut()
            .expect("write half")
            .write_all(bytes)
            .await
    }

    fn problem(&self, p: String) {
        self.log.problems.lock().unwrap().push(p);
    }

    /// Reads and drops whatever arrives until EOF (bounded).
    async fn drain(&mut self) {
        let _ = tokio::time::timeout(WAIT, async {
            while let Ok(n) = self.w.fill().await {
                self.w.buf.clear();
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
}

/// A raw TCP upstream on 127.0.0.1 whose per-connection behaviour a test scripts.
struct Upstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    received: Arc<AtomicUsize>,
    log: Log,
}

impl Upstream {
    async fn start<F, Fut>(script: F) -> Self
    where
        F: Fn(UpConn) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up = Self {
            addr: listener.local_addr().unwrap(),
            accepted: Arc::default(),
            received: Arc::default(),
            log: Log::default(),
        };
        let (accepted, received, log) = (up.accepted.clone(), up.received.clone(), up.log.clone());
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let conn = UpConn {
                    w: Wire::new(s, received.clone()),
                    log: log.clone(),
                };
                tokio::spawn(script(conn));
            }
        });
        up
    }

    /// Answers every request of every connection with `reply(request)`, keeping connections.
    async fn serve<F>(reply: F) -> Self
    where
        F: Fn(&Seen) -> Vec<u8> + Send + Sync + 'static,
    {
        let reply = Arc::new(reply);
        Self::start(move |mut c| {
            let reply = reply.clone();
            async move {
                while let Some(req) = c.request().await {
                    if c.write(&reply(&req)).await.is_err() {
                        return;
                    }
                }
            }
        })
        .await
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }

    /// Every request recorded so far; fails on any HTTP error in what the gateway sent.
    fn seen(&self) -> Vec<Seen> {
        let problems = self.log.problems.lock().unwrap().clone();
        assert!(
            problems.is_empty(),
            "the gateway sent bad HTTP: {problems:#?}"
        );
        self.log.seen.lock().unwrap().clone()
    }

    /// Waits until no request body is still being read.
    async fn settled(&self) {
        within("the upstream to finish reading request bodies", async {
            while self.log.in_flight.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
}

/// `200 OK` with `body` and its Content-Length.
fn ok(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// One chunk of a chunked body.
fn chunk(data: &[u8]) -> Vec<u8> {
    let mut c = format!("{:x}\r\n", data.len()).into_bytes();
    c.extend_from_slice(data);
    c.extend_from_slice(b"\r\n");
    c
}

// ---------------------------------------------------------------------------------------------
// The gateway
// ---------------------------------------------------------------------------------------------

/// A route `prefix` (stripped) to `backend`, no credential, 5 s timeout.
fn route(prefix: &str, backend: &str) -> RouteRecord {
    common::plain_route(prefix.trim_start_matches('/'), prefix, backend)
}

struct Gateway {
    running: Option<Running>,
    addr: SocketAddr,
    key: String,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// A gateway (one worker) over a fresh KV holding `routes`, ready to serve.
    async fn start(routes: Vec<RouteRecord>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kv_path = dir.path().join("kv.db");
        let kv = SqliteKv::open(&kv_path).await.unwrap();
        let key = NewToken::generate("kg").expose().to_owned();
        common::put_records(
            &kv,
            Some(&RouteTable { v: 1, routes }),
            &[(&key, "alpha")],
            1,
        )
        .await;
        // One worker, so connection counts at the upstream are exact.
        let mut config = common::test_config(kv_path);
        config.workers = 1;
        let running = keygate_gateway::start(config).await.unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            let mut c = Wire::connect(running.admin_addr).await;
            c.send(b"GET /readyz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
                .await;
            let r = c.response("GET").await;
            if r.status() == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "never ready: {}", describe(&r));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            addr: running.addr,
            running: Some(running),
            key,
            _dir: dir,
        }
    }

    async fn client(&self) -> Wire {
        Wire::connect(self.addr).await
    }

    /// A request head with Host, the valid key and `extra` fields.
    fn head(&self, method: &str, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
        let mut h = format!(
            "{method} {path} HTTP/1.1\r\nHost: gateway.test\r\nX-API-Key: {}\r\n",
            self.key
        );
        for (k, v) in extra {
            h.push_str(&format!("{k}: {v}\r\n"));
        }
        h.push_str("\r\n");
        h.into_bytes()
    }

    fn get(&self, path: &str) -> Vec<u8> {
        self.head("GET", path, &[])
    }

    /// Caller connections the fast path handed to hyper so far.
    fn handoffs(&self) -> u64 {
        self.running
            .as_ref()
            .map_or(0, |r| r.app.metrics.handoffs.get())
    }

    async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), r.shutdown()).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------------

/// RFC 9112 §6.2/§6.3: a Content-Length request body reaches the backend byte-exact under
/// consistent framing, without the caller's key and with the gateway's X-Request-Id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_request_body_reaches_the_backend_byte_exact() {
    let up = Upstream::serve(|_| ok(b"stored")).await;
    let gw = Gateway::start(vec![route("/r", &up.url())]).await;
    let body = pattern(300_000, 1);
    let mut c = gw.client().await;
    let mut req = gw.head(
        "POST",
        "/r/upload",
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", &body.len().to_string()),
        ],
    );
    req.extend_from_slice(&body);
    c.send(&req).await;
    let r = c.response("POST").await;
    assert_eq!(r.status(), 200, "{}", describe(&r));
    assert_eq!(r.body, b"stored");

    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!((s.head.method(), s.head.target()), ("POST", "/upload"));
    assert!(s.complete);
    assert_same(&s.body, &body, "the body the backend got");
    match request_framing(&s.head).unwrap() {
        Framing::Length(n) => assert_eq!(n, body.len()),
        Framing::Chunked => {}
        other => panic!("framing {other:?}: {}", s.head.text()),
    }
    assert!(!s.head.has("x-api-key"), "{}", s.head.text());
    let ids = s.head.all("x-request-id");
    assert_eq!(ids.len(), 1, "{}", s.head.text());
    assert_eq!(Some(ids[0]), r.get("x-request-id"));
    gw.stop().await;
}

/// RFC 9112 §7.1: a chunked request body (chunk extensions, upper-case hex, split across
/// writes, no trailers) reaches the backend de-chunked byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_request_body_reaches_the_backend_byte_exact() {
    let up = Upstream::serve(|_| ok(b"stored")).await;
    let gw = Gateway::start(vec![route("/r", &up.url())]).await;
    let big = pattern(70_000, 2);
    let mut encoded = Vec::new();
    encoded.extend_from_slice(b"4;ext=1\r\nWiki\r\n");
    encoded.extend_from_slice(b"5 ; name=\"quoted value\"\r\npedia\r\n");
    encoded.extend_from_slice(b"E\r\n in\r\n\r\nchunks.\r\n");
    encoded.extend_from_slice(format!("{:X}\r\n", big.len()).as_bytes());
    encoded.extend_from_slice(&big);
    encoded.extend_from_slice(b"\r\n0\r\n\r\n");
    let mut want = b"Wikipedia in\r\n\r\nchunks.".to_vec();
    want.extend_from_slice(&big);

    let mut c = gw.client().await;
    c.send(&gw.head("POST", "/r/upload", &[("Transfer-Encoding", "chunked")]))
        .await;
    let (small, rest) = encoded.split_at(60);
    for piece in small.chunks(3) {
        c.send(piece).await;
    }
    c.send(rest).await;
    let r = c.response("POST").await;
    assert_eq!(r.status(), 200, "{}", describe(&r));

    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].complete);
    assert_same(&seen[0].body, &want, "the de-chunked body");
    match request_framing(&seen[0].head).unwrap() {
        Framing::Length(n) => assert_eq!(n, want.len()),
        Framing::Chunked => {}
        other => panic!("framing {other:?}: {}", seen[0].head.text()),
    }
    gw.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Persistent connections
// ---------------------------------------------------------------------------------------------

/// RFC 9112 §9.3.2: pipelined requests written in one go are answered in order, even when an
/// earlier one is slower at the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let up = Upstream::start(|mut c| async move {
        while let Some(req) = c.request().await {
            if req.head.target().ends_with("slow") {
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            let body = format!("you asked for {}", req.head.target());
            if c.write(&ok(body.as_bytes())).await.is_err() {
                return;
            }
        }
    })
    .await;
    let gw = Gateway::start(vec![route("/r", &up.url())]).await;
    let mut c = gw.client().await;
    for paths in [
        &["/slow", "/fast"][..],
        &["/one-slow", "/two", "/three"][..],
    ] {
        let batch: Vec<u8> = paths
            .iter()
            .flat_map(|p| gw.get(&format!("/r{p}")))
            .collect();
        c.send(&batch).await;
        for p in paths {
            let r = c.response("GET").await;
            assert_eq!(r.status(), 200, "{}", describe(&r));
            assert_eq!(lossy(&r.body), format!("you asked for {p}"));
        }
    }
    gw.stop().await;
}

/// RFC 9112 §9.3: an HTTP/1.1 connection persists by default; 20 sequential requests on one
/// client connection succeed over at most 2 backend connections (one worker).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_serves_sequential_requests_over_reused_backend_connections() {
    let up = Upstream::serve(|s| ok(s.head.target().as_bytes())).await;
    let gw = Gateway::start(vec![route("/r", &up.url())]).await;
    let mut c = gw.client().await;
    for i in 0..20 {
        c.send(&gw.get(&format!("/r/n{i}"))).await;
        let r = c.response("GET").await;
        assert_eq!(r.status(), 200, "request {i}: {}", describe(&r));
        assert_eq!(lossy(&r.body), format!("/n{i}"));
        assert!(r.persistent(), "request {i}: {}", r.head.text());
    }
    assert_eq!(up.seen().len(), 20);
    assert!(
        up.accepted() <= 2,
        "the backend accepted {} connections for 20 sequential requests",
        up.accepted()
    );
    gw.stop().await;
}

/// RFC 9110 §9.3.2, RFC 9112 §6.3: a HEAD answer carries the backend's Content-Length and no
/// body, and the connection then serves a GET correctly (also pipelined).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_answers_have_headers_and_no_body() {
    let up = Upstream::serve(|s| {
        if s.head.method() == "HEAD" {
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1234\r\n\r\n".to_vec()
        } else {
            ok(b"the get body")
        }
    })
    .await;
    let gw = Gateway::start(vec![route("/r", &up.url())]).await;
    let mut c = gw.client().await;
    c.send(&gw.head("HEAD", "/r/doc", &[])).await;
    let r = c.response("HEAD").await;
    assert_eq!(r.status(), 200, "{}", describe(&r));
    assert_eq!(r.get("content-length"), Some("1234"), "{}", r.head.text());
    c.send(&gw.get("/r/doc")).await;
    let r = c.response("GET").await;
    assert_eq!((r.status(), &r.body[..]), (200, &b"the get body"[..]));

    let mut batch = gw.head("HEAD", "/r/doc", &[]);
    batch.extend(gw.get("/r/doc"));
    c.send(&batch).await;
    let r = c.response("HEAD").await;
    assert_eq!(r.get("content-length"), Some("1234"), "{}", r.head.text());
    let r = c.response("GET").await;
    assert_eq!((r.status(), &r.body[..]), (200, &b"the get body"[..]));
    let methods: Vec<String> = up
        .seen()
        .iter()
        .map(|s| s.head.method().to_owned())
        .collect();
    assert_eq!(methods, ["HEAD", "GET", "HEAD", "GET"]);
    gw.stop().await;
}

/// RFC 9110 §15.3.5, §15.4.5, RFC 9112 §6.3: 204 and 304 answers carry no body (a 204 no
/// Content-Length either) and the connection serves the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_content_and_not_modified_have_no_body() {
    let up = Upstream::serve(|s| match s.head.target() {
        "/none" => b"HTTP/1.1 204 No Content\r\nX-Done: 1\r\n\r\n".to_vec(),
        "/same" => {
            b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 50\r\n\r\n".to_vec()
        }
        _ => ok(b"fresh"),
    })
    .await;
    let gw = Gateway::start(vec![route("/r", &up.url())]).await;
    let mut c = gw.client().await;
    let check = |r: &Resp, path: &str| match path {
        "/r/none" => {
            assert_eq!(r.status(), 204, "{}", describe(r));
            assert_eq!(r.get("x-done"), Some("1"));
        }
        "/r/same" => {
            assert_eq!(r.status(), 304, "{}", describe(r));
            assert_eq!(r.get("etag"), Some("\"v1\""));
            // RFC 9110 §8.6: absent, or the length a 200 would have had.
            assert!(
                matches!(r.get("content-length"), None | Some("50")),
                "{}",
                r.head.text()
            );
        }
        _ => assert_eq!((r.status(), &r.body[..]), (200, &b"fresh"[..])),
    };
    let paths = ["/r/none", "/r/same", "/r/fresh"];
    for p in paths {
        c.send(&gw.head("GET", p, &[("If-None-Match", "\"v1\"")]))
            .await;
        check(&c.response("GET").await, p);
    }
    let batch: Vec<u8> = paths
        .iter()
        .flat_map(|p| gw.head("GET", p, &[("If-None-Match", "\"v1\"")]))
        .collect();
    c.send(&batch).await;
    for p in paths {
        check(&c.response("GET").await, p);
    }
    gw.stop().await;
}

/// RFC 9112 §9.3: an HTTP/1.0 request without keep-alive is answered without chunked framing
/// (§6.1), then the connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_without_keep_alive_is_answered_then_closed() {
    let up = Upstream::serve(|s| {
        if s.head.target() == "/chunky" {
            let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            r.extend(chunk(b"chunked "));
            r.extend(chunk(b"upstream"));
            r.extend_from_slice(b"0\r\n\r\n");
            r
        } else {
            ok(b"one-oh")
        }
    })
    .await;
    let gw = Gateway::start(vec![route("/r", &up.url())]).await;
    for (path, want) in [
        ("/r/plain", &b"one-oh"[..]),
        ("/r/chunky", b"chunked upstream"),
    ] {
        let mut c = gw.client().await;
        let req = format!(
            "GET {path} HTTP/1.0\r\nHost: gateway.test\r\nX-API-Key: {}\r\n\r\n",
            gw.key
        );
        c.send(req.as_bytes()).await;
        let r = c.response("GET").await;
        assert_eq!(r.status(), 200, "{}", describe(&r));
        assert!(r.head.line.starts_with("HTTP/1."), "{}", r.head.line);
        assert!(
            !r.head.has("transfer-encoding"),
            "Transfer-Encoding to an HTTP/1.0 client: {}",
            r.head.text()
        );
        assert_eq!(r.body, want, "{}", describe(&r));
        c.expect_closed().await;
    }
    gw.stop().await;
}

/// RFC 9112 §9.6: after answering a request with `Connection: close` the gateway closes the
/// connection and processes no further request sent on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_is_answered_then_closed() {
    let up = Upstream::serve(|s| ok(s.head.target().as_bytes())).await;
    let gw = Gateway::start(vec![route("/r", &up.url())]).await;
    let mut c = gw.client().await;
    let mut batch = gw.head("GET", "/r/first", &[("Connection", "close")]);
    batch.extend(gw.get("/r/second"));
    c.send(&batch).await;
    let r = c.response("GET").await;
    assert_eq!((r.status(), &r.body[..]), (200, &b"/first"[..]));
    c.expect_closed().await;
    let targets: Vec<String> = up
        .seen()
        .iter()
        .map(|s| s.head.target().to_owned())
        .collect();
    assert_eq!(targets, ["/first"]);
    gw.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Request smuggling and limits
// ---------------------------------------------------------------------------------------------

/// RFC 9112 §6.1, §6.3: ambiguous or invalid request framing (conflicting or non-numeric
/// Content-Length, a Transfer-Encoding not ending in chunked) gets 400 (501 for an unknown
/// coding), nothing reaches the backend, and the connection is closed; a request with both
/// Content-Length and chunked is refused the same way, or processed by chunked alone with the
/// connection closed after it, never leaking the trailing bytes as a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_request_framing_is_refused_and_closes_the_connection() {
    let up = Upstream::serve(|s| ok(s.head.target().as_bytes())).await;
    let gw = Gateway::start(vec![route("/r", &up.url())]).await;
    let start = format!(
        "POST /r/x HTTP/1.1\r\nHost: gateway.test\r\nX-API-Key: {}\r\n",
        gw.key
    );
    let cases: [(&str, &str, &[u16]); 6] = [
        (
            "two different Content-Length values",
            "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            &[400],
        ),
        (
            "a non-numeric Content-Length",
            "Content-Length: five\r\n\r\nhello",
            &[400],
        ),
        (
            "a signed Content-Length",
            "Content-Length: +5\r\n\r\nhello",
            &[400],
        ),
        (
            "a list of different Content-Lengths",
            "Content-Length: 5, 6\r\n\r\nhello!",
            &[400],
        ),
        (
            "Transfer-Encoding: gzip",
            "Transfer-Encoding: gzip\r\n\r\nhello",
            &[400, 501],
        ),
        (
            "Transfer-Encoding: chunked, gzip",
            "Transfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            &[400, 501],
        ),
    ];
    for (name, rest, statuses) in cases {
        let mut c = gw.client().await;
        c.send(format!("{start}{rest}").as_bytes()).await;
        let r = c.response("POST").await;
        assert!(statuses.contains(&r.status()), "{name}: {}", describe(&r));
        c.expect_closed().await;
        assert_eq!(up.received(), 0, "{name}: the backend received bytes");
    }

    // Content-Length and chunked: under chunked the body is "hello" and a GET follows; under
    // Content-Length the body would be "5\r\nh". The GET must never be processed.
    let mut c = gw.client().await;
    let smuggled = format!(
        "{start}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n\
         GET /r/smuggled HTTP/1.1\r\nHost: gateway.test\r\nX-API-Key: {}\r\n\r\n",
        gw.key
    );
    c.send(smuggled.as_bytes()).await;
    let r = c.response("POST").await;
    c.expect_closed().await;
    let seen = up.seen();
    if (400..=501).contains(&r.status()) {
        assert_eq!(up.received(), 0, "refused, yet the backend received bytes");
    } else {
        assert_eq!(r.status(), 200, "{}", describe(&r));
        assert_eq!(seen.len(), 1, "{seen:#?}");
        assert_eq!(seen[0].head.target(), "/x");
        assert_eq!(seen[0].body, b"hello", "processed by chunked alone");
        assert!(
            content_length(&seen[0].head)
                .unwrap()
                .is_none_or(|n| n == 5),
            "the received Content-Length must not be forwarded: {}",
            seen[0].head.text()
        );
    }
    assert!(
        seen.iter().all(|s| !s.head.target().contains("smuggled")),
        "{seen:#?}"
    );
    gw.stop().await;
}

/// RFC 9110 §15.5 / RFC 6585 §5: an oversized request head (200 fields, or a 1 MB field value)
/// gets 431 or 400 and nothing reaches the backend; the gateway keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_heads_are_refused() {
    let up = Upstream::serve(|_| ok(b"fine")).await;
    let gw = Gateway::start(vec![route("/r", &up.url())]).await;

    let fields: Vec<(String, String)> = (0..200)
        .map(|i| (format!("X-Filler-{i}"), format!("value {i}")))
        .collect();
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut c = gw.client().await;
    c.send(&gw.head("GET", "/r/many", &fields)).await;
    let r = c.response("GET").await;
    assert!(
        matches!(r.status(), 431 | 400),
        "200 fields: {}",
        describe(&r)
    );
    drop(c);

    // 1 MB: written from its own task, since the gateway may stop reading (and reset).
    let value = "a".repeat(1 << 20);
    let big = gw.head("GET", "/r/big", &[("X-Big", &value)]);
    let mut c = gw.client().await;
    let mut wr = c.wr.take().unwrap();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&big).await;
        wr
    });
    let r = c.response("GET").await;
    assert!(
        matches!(r.status(), 431 | 400),
        "a 1 MB field: {}",
        describe(&r)
    );
    writer.abort();
    assert_eq!(up.received(), 0, "the backend received bytes");

    let mut c = gw.client().await;
    c.send(&gw.get("/r/after")).await;
    assert_eq!(c.response("GET").await.body, b"fine");
    gw.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// RFC 9112 §6.3 (rule 8): a close-delimited backend response reaches an HTTP/1.1 client intact,
/// re-framed, or close-delimited with `Connection: close`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_delimited_backend_response_arrives_intact() {
    let body = pattern(300_000, 10);
    let sent = body.clone();
    let up = Upstream::start(move |mut c| {
        let body = body.clone();
        async move {
            if c.request().await.is_none() {
                return;
            }
            let _ = c
                .write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
                .await;
            for piece in body.chunks(10_000) {
                if c.write(piece).await.is_err() {
                    return;
                }
            }
            // Dropping the connection ends the body.
        }
    })
    .await;
    let gw = Gateway::start(vec![route("/r", &up.url())]).await;
    let mut c = gw.client().await;
    c.send(&gw.get("/r/stream")).await;
    let r = c.response("GET").await;
    assert_eq!(r.status(), 200, "{}", r.head.text());
    assert_same(&r.body, &sent, "the close-delimited body");
    if r.framing == Framing::Close {
        assert!(
            r.head.tokens("connection").iter().any(|t| t == "close"),
            "close-delimited to an HTTP/1.1 client without Connection: close: {}",
            r.head.text()
        );
        c.expect_closed().await;
    } else if r.persistent() {
        c.send(&gw.get("/r/again")).await;
        let r = c.response("GET").await;
        assert_same(&r.body, &sent, "the second close-delimited body");
    }
    gw.stop().await;
}

/// RFC 9112 §7.1: a chunked backend response (extensions, varied sizes, a trailer) reaches the
/// client intact, and the connection stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_backend_response_arrives_intact() {
    let data = pattern(100_000, 11);
    let sent = data.clone();
    let up = Upstream::start(move |mut c| {
        let data = data.clone();
        async move {
            while c.request().await.is_some() {
                let r: io::Result<()> = async {
                    c.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                        .await?;
                    let mut rest = &data[..];
                    let first = [26, 1, 100, 8192, 65536, 3];
                    for (i, n) in first.into_iter().enumerate() {
                        let (piece, tail) = rest.split_at(n);
                        rest = tail;
                        if i == 0 {
                            let mut c0 = format!("{n:x};note=first\r\n").into_bytes();
                            c0.extend_from_slice(piece);
                            c0.extend_from_slice(b"\r\n");
                            c.write(&c0).await?;
                        } else {
                            c.write(&chunk(piece)).await?;
                        }
                    }
                    c.write(&chunk(rest)).await?;
                    c.write(b"0\r\nX-Checksum: abc\r\n\r\n").await
                }
                .await;
                if r.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    let gw = Gateway::start(vec![route("/r", &up.url())]).await;
    let mut c = gw.client().await;
    c.send(&gw.get("/r/chunks")).await;
    let r = c.response("GET").await;
    assert_eq!(r.status(), 200, "{}", r.head.text());
    assert_same(&r.body, &sent, "the chunked body");
    assert!(r.persistent(), "{}", r.head.text());
    c.send(&gw.get("/r/chunks")).await;
    assert_same(
        &c.response("GET").await.body,
        &sent,
        "the second chunked body",
    );
    gw.stop().await;
}

/// RFC 9110 §10.1.1: with `Expect: 100-continue` the gateway asks for the content with
/// 100 (Continue) (this backend accepts it), and the content then reaches the backend intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_gets_the_body_through() {
    let up = Upstream::start(|mut c| async move {
        loop {
            let Some(head) = c.head().await else { return };
            if head.tokens("expect").iter().any(|t| t == "100-continue")
                && c.write(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err()
            {
                return;
            }
            let framing = match request_framing(&head) {
                Ok(f) => f,
                Err(e) => return c.problem(e),
            };
            let mut body = Vec::new();
            let done = c.w.body_into(framing, &mut body).await.is_ok();
            let reply = ok(format!("got {} bytes", body.len()).as_bytes());
            c.log.seen.lock().unwrap().push(Seen {
                head,
                body,
                complete: done,
            });
            if !done || c.write(&reply).await.is_err() {
                return;
            }
        }
    })
    .await;
    let gw = Gateway::start(vec![route("/r", &up.url())]).await;
    let body = pattern(200_000, 13);
    let mut c = gw.client().await;
    c.send(&gw.head(
        "POST",
        "/r/upload",
        &[
            ("Content-Length", &body.len().to_string()),
            ("Expect", "100-continue"),
        ],
    ))
    .await;
    let first = within("100 (Continue) or a final answer", c.head())
        .await
        .expect("reading")
        .expect("closed before any answer");
    assert_eq!(
        first.status(),
        100,
        "the gateway answered before the content, though the backend accepts it: {}",
        first.text()
    );
    c.send(&body).await;
    let r = c.response("POST").await;
    assert_eq!(r.status(), 200, "{}", describe(&r));
    assert_eq!(lossy(&r.body), "got 200000 bytes");
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_same(&seen[0].body, &body, "the body after 100 (Continue)");
    gw.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Broken peers
// ---------------------------------------------------------------------------------------------

/// RFC 9112 §8: a client that disconnects mid-body (Content-Length or chunked) does not stop the
/// gateway, and the cut-off request never reaches the backend as a complete one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnecting_mid_body_leaves_the_gateway_serving() {
    let up = Upstream::serve(|s| ok(s.head.target().as_bytes())).await;
    let gw = Gateway::start(vec![route("/r", &up.url())]).await;

    let mut c = gw.client().await;
    c.send(&gw.head("POST", "/r/sized", &[("Content-Length", "1048576")]))
        .await;
    c.send(&pattern(10_240, 14)).await;
    drop(c);

    let mut c = gw.client().await;
    c.send(&gw.head("POST", "/r/chunked", &[("Transfer-Encoding", "chunked")]))
        .await;
    c.send(&chunk(&pattern(10_240, 15))).await;
    c.send(b"2800\r\nonly a little").await;
    drop(c);

    let mut c = gw.client().await;
    c.send(&gw.get("/r/after")).await;
    let r = c.response("GET").await;
    assert_eq!((r.status(), &r.body[..]), (200, &b"/after"[..]));
    up.settled().await;
    for s in up.seen() {
        assert!(
            s.head.method() != "POST" || !s.complete,
            "a cut-off upload reached the backend as complete ({} bytes): {}",
            s.body.len(),
            s.head.text()
        );
    }
    gw.stop().await;
}

/// RFC 9112 §8: a backend that closes mid-body (Content-Length 100000, 1000 bytes sent) ends the
/// client's response early and detectably incomplete, without a hang; the gateway keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_closing_mid_body_ends_the_client_response() {
    let data = pattern(1000, 15);
    let sent = data.clone();
    let up = Upstream::start(move |mut c| {
        let data = data.clone();
        async move {
            while let Some(req) = c.request().await {
                if req.head.target() == "/ok" {
                    if c.write(&ok(b"fine")).await.is_err() {
                        return;
                    }
                    continue;
                }
                let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
                r.extend_from_slice(&data);
                let _ = c.write(&r).await;
                return;
            }
        }
    })
    .await;
    let gw = Gateway::start(vec![route("/r", &up.url())]).await;
    let mut c = gw.client().await;
    c.send(&gw.get("/r/truncated")).await;
    let head = within("a response head", c.head())
        .await
        .expect("reading")
        .expect("closed before a response");
    if head.status() == 200 {
        let framing = response_framing(&head, "GET").unwrap();
        let mut got = Vec::new();
        let end = within("the truncated body to end", c.body_into(framing, &mut got)).await;
        assert!(got.len() < 100_000, "{} bytes", got.len());
        assert_same(&got, &sent[..got.len()], "the truncated body's prefix");
        if framing != Framing::Close {
            assert!(
                end.is_err(),
                "a truncated {framing:?} body looked complete: {}",
                head.text()
            );
        }
    } else {
        assert_eq!(head.status(), 502, "{}", head.text());
    }

    let mut c = gw.client().await;
    c.send(&gw.get("/r/ok")).await;
    assert_eq!(c.response("GET").await.body, b"fine");
    gw.stop().await;
}

/// RFC 9112 §9.6, RFC 9110 §15.5.14: a backend answering 413 after the head alone, while the
/// client is still uploading 4 MB, gets its answer to the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_backend_answer_reaches_a_client_still_uploading() {
    let up = Upstream::start(|mut c| async move {
        if c.head_only().await.is_none() {
            return;
        }
        let _ = c
            .write(
                b"HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain\r\n\
                  Content-Length: 9\r\nConnection: close\r\n\r\ntoo large",
            )
            .await;
        if let Some(wr) = c.w.wr.as_mut() {
            let _ = wr.shutdown().await;
        }
        // Lingering close (RFC 9112 §9.6): drain what still arrives so no reset destroys the
        // answer.
        c.drain().await;
    })
    .await;
    let gw = Gateway::start(vec![route("/r", &up.url())]).await;
    let mut c = gw.client().await;
    let mut wr = c.wr.take().unwrap();
    let head = gw.head("POST", "/r/upload", &[("Content-Length", "4194304")]);
    let body = pattern(4 << 20, 16);
    let writer = tokio::spawn(async move {
        if wr.write_all(&head).await.is_ok() {
            let _ = wr.write_all(&body).await;
        }
        wr
    });
    let r = c.response("POST").await;
    assert_eq!(r.status(), 413, "{}", describe(&r));
    assert_eq!(r.body, b"too large");
    writer.abort();
    gw.stop().await;
}

/// RFC 9112 §9.3: the request and response bodies stream at the same time: a backend echoing a
/// 16 MB upload as it reads it returns exactly those bytes, without a deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_duplex_echo_of_16_mb() {
    let up = Upstream::start(|mut c| async move {
        let Some(head) = c.head().await else { return };
        let framing = match request_framing(&head) {
            Ok(f) => f,
            Err(e) => return c.problem(e),
        };
        let r: io::Result<()> = async {
            c.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await?;
            match framing {
                Framing::Length(mut left) => {
                    while left > 0 {
                        let p = c.w.some(left.min(65536)).await?;
                        left -= p.len();
                        c.write(&chunk(&p)).await?;
                    }
                }
                Framing::Chunked => loop {
                    let n = c.w.chunk_size().await?;
                    if n == 0 {
                        while !c.w.line().await?.is_empty() {}
                        break;
                    }
                    let mut left = n;
                    while left > 0 {
                        let p = c.w.some(left.min(65536)).await?;
                        left -= p.len();
                        c.write(&chunk(&p)).await?;
                    }
                    if !c.w.line().await?.is_empty() {
                        return Err(invalid("chunk data not followed by CRLF"));
                    }
                },
                _ => {}
            }
            c.write(b"0\r\n\r\n").await
        }
        .await;
        if let Err(e) = r
            && e.kind() == io::ErrorKind::InvalidData
        {
            c.problem(e.to_string());
        }
        c.drain().await;
    })
    .await;
    let gw = Gateway::start(vec![route("/r", &up.url())]).await;
    let total = 16 << 20;
    let body = pattern(total, 17);
    let want = Sha256::digest(&body);
    let mut c = gw.client().await;
    let mut wr = c.wr.take().unwrap();
    let head = gw.head("POST", "/r/echo", &[("Content-Length", &total.to_string())]);
    let writer = tokio::spawn(async move {
        wr.write_all(&head).await?;
        for p in body.chunks(65536) {
            wr.write_all(p).await?;
        }
        // Kept open: a half-close is not what is under test.
        Ok::<_, io::Error>(wr)
    });
    let r = within_for(
        Duration::from_secs(30),
        "the 16 MB echo",
        c.read_response("POST"),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.head.text());
    assert_eq!(r.body.len(), total);
    assert!(Sha256::digest(&r.body) == want, "the echo differs");
    let _wr = within("the upload to finish", writer)
        .await
        .unwrap()
        .expect("uploading");
    // The echo records nothing; this checks what the gateway sent was valid HTTP.
    assert!(up.seen().is_empty());
    gw.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The gateway's own answers
// ---------------------------------------------------------------------------------------------

/// A backend slower than the route's timeout_ms (300) gets the client a 504 JSON
/// `gateway_timeout`, and the connection stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_timeout_is_a_504_json() {
    let silent = Upstream::start(|mut c| async move {
        if c.request().await.is_some() {
            c.drain().await;
        }
    })
    .await;
    let up = Upstream::serve(|_| ok(b"fine")).await;
    let mut slow = route("/slow", &silent.url());
    slow.timeout_ms = 300;
    let gw = Gateway::start(vec![slow, route("/ok", &up.url())]).await;
    let mut c = gw.client().await;
    let started = Instant::now();
    c.send(&gw.get("/slow/x")).await;
    let r = c.response("GET").await;
    assert_eq!(r.status(), 504, "{}", describe(&r));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(
        r.get("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{}",
        r.head.text()
    );
    assert_eq!(r.json()["error"], "gateway_timeout", "{}", describe(&r));
    assert!(r.persistent(), "{}", r.head.text());
    c.send(&gw.get("/ok/x")).await;
    assert_eq!(c.response("GET").await.body, b"fine");
    gw.stop().await;
}

/// A backend refusing connections gets the client a 502 JSON `bad_gateway`, and the connection
/// stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_backend_is_a_502_json() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let up = Upstream::serve(|_| ok(b"fine")).await;
    let gw = Gateway::start(vec![
        route("/gone", &format!("http://127.0.0.1:{port}")),
        route("/ok", &up.url()),
    ])
    .await;
    let mut c = gw.client().await;
    c.send(&gw.get("/gone/x")).await;
    let r = c.response("GET").await;
    assert_eq!(r.status(), 502, "{}", describe(&r));
    assert_eq!(r.json()["error"], "bad_gateway", "{}", describe(&r));
    assert!(r.persistent(), "{}", r.head.text());
    c.send(&gw.get("/ok/x")).await;
    assert_eq!(c.response("GET").await.body, b"fine");
    gw.stop().await;
}

/// RFC 9110 §7.6.1: hop-by-hop fields (`Connection`, the fields it names, `Keep-Alive`, `TE`)
/// are not forwarded in either direction; X-Request-Id and X-Keygate-Revision are added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_named_fields_are_not_forwarded() {
    let up = Upstream::serve(|_| {
        b"HTTP/1.1 200 OK\r\nConnection: x-secret, keep-alive\r\nX-Secret: 1\r\n\
          Keep-Alive: timeout=5, max=100\r\nX-Public: yes\r\nContent-Length: 2\r\n\r\nok"
            .to_vec()
    })
    .await;
    let gw = Gateway::start(vec![route("/r", &up.url())]).await;
    let mut c = gw.client().await;
    c.send(&gw.head(
        "GET",
        "/r/x",
        &[
            ("Connection", "x-hop, keep-alive"),
            ("X-Hop", "1"),
            ("Keep-Alive", "300"),
            ("TE", "trailers"),
            ("X-Kept", "2"),
        ],
    ))
    .await;
    let r = c.response("GET").await;
    assert_eq!(
        (r.status(), &r.body[..]),
        (200, &b"ok"[..]),
        "{}",
        describe(&r)
    );
    assert!(!r.head.has("x-secret"), "{}", r.head.text());
    assert!(!r.head.has("keep-alive"), "{}", r.head.text());
    assert!(
        !r.head.tokens("connection").iter().any(|t| t == "x-secret"),
        "{}",
        r.head.text()
    );
    assert_eq!(r.get("x-public"), Some("yes"));
    assert!(
        r.get("x-request-id").is_some_and(|v| !v.is_empty()),
        "{}",
        r.head.text()
    );
    assert_eq!(r.get("x-keygate-revision"), Some("1"), "{}", r.head.text());

    let seen = up.seen();
    let h = &seen[0].head;
    for name in ["x-hop", "keep-alive", "te"] {
        assert!(!h.has(name), "{name} forwarded: {}", h.text());
    }
    assert!(
        !h.tokens("connection").iter().any(|t| t == "x-hop"),
        "{}",
        h.text()
    );
    assert_eq!(h.get("x-kept"), Some("2"));
    gw.stop().await;
}

/// The gateway's own error answers (401, 404) keep the connection usable; a refused request's
/// body is never read as a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_error_answers_keep_the_connection_usable() {
    let up = Upstream::serve(|s| ok(s.head.target().as_bytes())).await;
    let gw = Gateway::start(vec![route("/r", &up.url())]).await;
    let mut c = gw.client().await;
    c.send(b"GET /r/x HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
        .await;
    let r = c.response("GET").await;
    assert_eq!(r.status(), 401, "{}", describe(&r));
    assert_eq!(r.json()["error"], "missing_key");
    assert!(r.head.has("www-authenticate"), "{}", r.head.text());
    assert!(r.persistent(), "{}", r.head.text());

    c.send(b"GET /r/x HTTP/1.1\r\nHost: gateway.test\r\nX-API-Key: kg_nope\r\n\r\n")
        .await;
    let r = c.response("GET").await;
    assert_eq!(r.status(), 401, "{}", describe(&r));
    assert_eq!(r.json()["error"], "invalid_key");

    c.send(&gw.get("/nowhere")).await;
    let r = c.response("GET").await;
    assert_eq!(r.status(), 404, "{}", describe(&r));
    assert_eq!(r.json()["error"], "route_not_found");

    c.send(&gw.get("/r/fine")).await;
    let r = c.response("GET").await;
    assert_eq!((r.status(), &r.body[..]), (200, &b"/fine"[..]));

    // A refused POST whose body looks like a request, pipelined with a real one: the body is
    // skipped (or the connection closed), never served.
    let inner = gw.get("/r/inner");
    let mut batch = format!(
        "POST /r/x HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: {}\r\n\r\n",
        inner.len()
    )
    .into_bytes();
    batch.extend_from_slice(&inner);
    batch.extend(gw.get("/r/after"));
    c.send(&batch).await;
    let r = c.response("POST").await;
    assert_eq!(r.status(), 401, "{}", describe(&r));
    if r.persistent() {
        let r = c.response("GET").await;
        assert_eq!(
            (r.status(), &r.body[..]),
            (200, &b"/after"[..]),
            "{}",
            describe(&r)
        );
    } else {
        c.expect_closed().await;
    }
    assert!(
        up.seen().iter().all(|s| s.head.target() != "/inner"),
        "a refused request's body was served as a request"
    );
    gw.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Host (RFC 9112 §3.2) and absolute-form targets (§3.2.2)
// ---------------------------------------------------------------------------------------------

/// `r` is the gateway's own 400: `{"error":"bad_request","message","request_id"}` with the
/// request id of its `X-Request-Id`.
fn assert_bad_request(r: &Resp, what: &str) {
    assert_eq!(r.status(), 400, "{what}: {}", describe(r));
    let v = r.json();
    assert_eq!(v["error"], "bad_request", "{what}: {}", describe(r));
    assert!(
        v["message"].as_str().is_some_and(|m| m.contains("Host")),
        "{what}: {}",
        describe(r)
    );
    assert_eq!(
        v["request_id"].as_str(),
        r.get("x-request-id"),
        "{what}: {}",
        describe(r)
    );
    assert_eq!(v.as_object().map(|o| o.len()), Some(3), "{what}");
    assert_eq!(r.get("content-type"), Some("application/json"), "{what}");
}

/// RFC 9112 §3.2 on the fast path: an HTTP/1.1 request without `Host`, or with two (also two
/// equal ones), is answered 400 `bad_request` in the gateway's error shape before anything
/// else is checked (no key: still 400, not 401), nothing reaches the backend, and the
/// connection serves the next request; with one `Host` the request is forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_path_refuses_http_1_1_without_exactly_one_host() {
    let up = Upstream::serve(|s| ok(s.head.target().as_bytes())).await;
    let gw = Gateway::start(vec![route("/r", &up.url())]).await;
    let key = gw.key.clone();
    let mut c = gw.client().await;
    for (what, req) in [
        (
            "no Host",
            format!("GET /r/none HTTP/1.1\r\nX-API-Key: {key}\r\n\r\n"),
        ),
        (
            "two Hosts",
            format!(
                "GET /r/two HTTP/1.1\r\nHost: gateway.test\r\nX-API-Key: {key}\r\nHost: other.test\r\n\r\n"
            ),
        ),
        (
            "two equal Hosts",
            format!(
                "GET /r/same HTTP/1.1\r\nHost: gateway.test\r\nhost: gateway.test\r\nX-API-Key: {key}\r\n\r\n"
            ),
        ),
        (
            "no Host and no key",
            "GET /r/nokey HTTP/1.1\r\n\r\n".to_owned(),
        ),
    ] {
        c.send(req.as_bytes()).await;
        let r = c.response("GET").await;
        assert_bad_request(&r, what);
        assert!(r.persistent(), "{what}: {}", r.head.text());
    }
    c.send(&gw.get("/r/fine")).await;
    let r = c.response("GET").await;
    assert_eq!(
        (r.status(), &r.body[..]),
        (200, &b"/fine"[..]),
        "{}",
        describe(&r)
    );
    assert_eq!(
        gw.handoffs(),
        0,
        "the fast path answered every one of these"
    );
    let targets: Vec<String> = up
        .seen()
        .iter()
        .map(|s| s.head.target().to_owned())
        .collect();
    assert_eq!(targets, ["/fine"]);
    gw.stop().await;
}

/// The same rule on the hyper path, and absolute-form targets over the wire (RFC 9112 §3.2.2;
/// the fast path leaves them to hyper). Each case is the first request of its own connection,
/// one the fast path does not take (a chunked upload, an absolute-form target, HTTP/1.0), so
/// hyper serves it (counted by the handoff metric). Without `Host` or with two: 400
/// `bad_request`, nothing reaches the backend. With one: the backend gets the route's
/// origin-form target and its own `Host`, and `X-Forwarded-Host` is the target's authority,
/// which wins over `Host`. HTTP/1.0 may omit `Host`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_path_refuses_http_1_1_without_exactly_one_host_and_takes_absolute_form() {
    let up = Upstream::serve(|s| ok(s.head.target().as_bytes())).await;
    let gw = Gateway::start(vec![route("/r", &up.url())]).await;
    let key = gw.key.clone();
    let chunked = "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let refused = [
        (
            "chunked, no Host",
            "POST",
            format!("POST /r/c1 HTTP/1.1\r\nX-API-Key: {key}\r\n{chunked}"),
        ),
        (
            "chunked, two Hosts",
            "POST",
            format!(
                "POST /r/c2 HTTP/1.1\r\nHost: gateway.test\r\nHost: other.test\r\nX-API-Key: {key}\r\n{chunked}"
            ),
        ),
        (
            "absolute-form, no Host",
            "GET",
            format!("GET http://gateway.test/r/a1 HTTP/1.1\r\nX-API-Key: {key}\r\n\r\n"),
        ),
        (
            "absolute-form, two Hosts",
            "GET",
            format!(
                "GET http://gateway.test/r/a2 HTTP/1.1\r\nHost: gateway.test\r\nHost: gateway.test\r\nX-API-Key: {key}\r\n\r\n"
            ),
        ),
        (
            "HTTP/1.0, two Hosts",
            "GET",
            format!(
                "GET /r/h2 HTTP/1.0\r\nHost: gateway.test\r\nHost: other.test\r\nX-API-Key: {key}\r\n\r\n"
            ),
        ),
    ];
    for (what, method, req) in &refused {
        let mut c = gw.client().await;
        c.send(req.as_bytes()).await;
        let r = c.response(method).await;
        assert_bad_request(&r, what);
    }
    assert_eq!(
        gw.handoffs(),
        refused.len() as u64,
        "hyper answered every one of these"
    );
    assert!(
        up.seen().is_empty(),
        "a refused request reached the backend"
    );

    // Accepted: absolute-form with a Host that names another host, and a query.
    let mut c = gw.client().await;
    c.send(
        format!(
            "GET http://gateway.test:8080/r/abs?q=1 HTTP/1.1\r\nHost: other.test\r\nX-API-Key: {key}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    let r = c.response("GET").await;
    assert_eq!(
        (r.status(), &r.body[..]),
        (200, &b"/abs?q=1"[..]),
        "{}",
        describe(&r)
    );
    // Accepted: HTTP/1.0 without Host; a chunked upload with one Host.
    let mut c = gw.client().await;
    c.send(format!("GET /r/old HTTP/1.0\r\nX-API-Key: {key}\r\n\r\n").as_bytes())
        .await;
    let r = c.response("GET").await;
    assert_eq!(
        (r.status(), &r.body[..]),
        (200, &b"/old"[..]),
        "{}",
        describe(&r)
    );
    let mut c = gw.client().await;
    c.send(
        format!("POST /r/up HTTP/1.1\r\nHost: gateway.test\r\nX-API-Key: {key}\r\n{chunked}")
            .as_bytes(),
    )
    .await;
    let r = c.response("POST").await;
    assert_eq!(
        (r.status(), &r.body[..]),
        (200, &b"/up"[..]),
        "{}",
        describe(&r)
    );
    assert_eq!(gw.handoffs(), refused.len() as u64 + 3);

    up.settled().await;
    let seen = up.seen();
    let targets: Vec<&str> = seen.iter().map(|s| s.head.target()).collect();
    assert_eq!(targets, ["/abs?q=1", "/old", "/up"]);
    let abs = &seen[0].head;
    assert_eq!(abs.method(), "GET");
    assert_eq!(
        abs.all("host"),
        [up.addr.to_string().as_str()],
        "the backend's own Host, never the caller's: {}",
        abs.text()
    );
    assert_eq!(
        abs.all("x-forwarded-host"),
        ["gateway.test:8080"],
        "the absolute-form target's authority wins over Host: {}",
        abs.text()
    );
    assert!(!abs.has("x-api-key"), "{}", abs.text());
    assert!(
        seen[1].head.all("x-forwarded-host").is_empty(),
        "HTTP/1.0 without Host: no X-Forwarded-Host: {}",
        seen[1].head.text()
    );
    assert_eq!(seen[2].body, b"hello");
    gw.stop().await;
}
