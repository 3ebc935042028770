//! HTTP/1.1 on the wire for the fast path: request and response heads read with `httparse`,
//! the message-framing rules of RFC 9112 §6, chunked bodies checked as they pass through,
//! and heads written straight into a byte buffer.
//!
//! What the fast path does not handle is recognised here ([`Request::fast`] is false) and the
//! connection goes to hyper instead; nothing in this module decides about tokens or routes.

use crate::host::DecisionHeaders;
use std::time::SystemTime;

/// Most header fields in one head (hyper's default limit too).
pub const MAX_HEADERS: usize = 100;
/// Largest request or response head the fast path reads; a longer one goes to hyper
/// (requests) or is a bad gateway (responses).
pub const MAX_HEAD: usize = 64 * 1024;

/// Where a head ends in `buf`, if it is complete. `Err` when it is malformed or too large
/// for the fast path.
// `Err(())`: nothing more to say, hyper answers such a head (public for the fuzz targets).
#[allow(clippy::result_unit_err)]
pub fn head_end(buf: &[u8]) -> Result<Option<usize>, ()> {
    if let Some(i) = memchr::memmem::find(buf, b"\r\n\r\n") {
        return Ok(Some(i + 4));
    }
    // Bare-LF line ends are legal for a recipient to accept; let httparse tell.
    if memchr::memchr(b'\n', buf).is_some() {
        let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::Request::new(&mut h).parse(buf) {
            Ok(httparse::Status::Complete(n)) => return Ok(Some(n)),
            Ok(httparse::Status::Partial) => {}
            Err(_) => return Err(()),
        }
    }
    if buf.len() > MAX_HEAD {
        Err(())
    } else {
        Ok(None)
    }
}

/// A request head as the fast path sees it.
pub struct Request<'h, 'b> {
    pub method: &'b str,
    /// Origin-form target: the path and the query (without `?`).
    pub path: &'b str,
    pub query: Option<&'b str>,
    pub headers: &'h [httparse::Header<'b>],
    pub decision: DecisionHeaders<'b>,
    pub user_agent: &'b [u8],
    pub host: Option<&'b [u8]>,
    /// How many `Host` field lines the head carried (RFC 9112 §3.2 wants exactly one).
    pub host_fields: usize,
    /// Request body length (0: none).
    pub content_length: u64,
    /// The caller asked to close the connection after this exchange.
    pub close: bool,
    /// The lower-case names listed in `Connection` (empty when there is no such header).
    pub connection_named: Vec<String>,
    /// Whether the fast path takes this request: HTTP/1.1, origin-form visible-ASCII target,
    /// no `Transfer-Encoding`, at most one well-formed `Content-Length`, no `Upgrade`,
    /// `Expect` or `CONNECT`. Otherwise hyper serves the connection from this request on.
    pub fast: bool,
}

/// Parses a complete head (`buf` ends where [`head_end`] said). `None`: not parseable here
/// (hyper will answer it).
pub fn parse_request<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [httparse::Header<'b>; MAX_HEADERS],
) -> Option<Request<'h, 'b>> {
    let mut req = httparse::Request::new(headers);
    // The head must end exactly where `head_end` said: a bare-LF head followed by a CRLF one
    // (pipelined) is hyper's to split.
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n == buf.len() => {}
        _ => return None,
    }
    let (method, target, version) = (req.method?, req.path?, req.version?);
    let headers: &'h [httparse::Header<'b>] = req.headers;
    let mut fast = version == 1
        && method != "CONNECT"
        && target.starts_with('/')
        && target.bytes().all(is_plain_target_byte);
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut r = Request {
        method,
        path,
        query,
        headers,
        decision: DecisionHeaders::default(),
        user_agent: b"",
        host: None,
        host_fields: 0,
        content_length: 0,
        close: false,
        connection_named: Vec::new(),
        fast,
    };
    let mut lengths = 0;
    for h in headers {
        let (name, v) = (h.name, h.value);
        if r.decision.offer(name, v) {
            continue;
        }
        match name.len() {
            4 if name.eq_ignore_ascii_case("host") => {
                r.host_fields += 1;
                r.host.get_or_insert(v);
            }
            10 if name.eq_ignore_ascii_case("user-agent") && r.user_agent.is_empty() => {
                r.user_agent = v;
            }
            10 if name.eq_ignore_ascii_case("connection") => {
                for t in v.split(|&b| b == b',') {
                    let t = std::str::from_utf8(t).unwrap_or("").trim();
                    if t.eq_ignore_ascii_case("close") {
                        r.close = true;
                    }
                    if !t.is_empty() {
                        r.connection_named.push(t.to_ascii_lowercase());
                    }
                }
            }
            14 if name.eq_ignore_ascii_case("content-length") => {
                lengths += 1;
                match parse_length(v) {
                    Some(n) => r.content_length = n,
                    None => fast = false,
                }
            }
            6 if name.eq_ignore_ascii_case("expect") => fast = false,
            7 if name.eq_ignore_ascii_case("upgrade") => fast = false,
            17 if name.eq_ignore_ascii_case("transfer-encoding") => fast = false,
            _ => {}
        }
    }
    r.fast = fast && lengths <= 1 && !r.connection_named.iter().any(|t| t == "upgrade");
    Some(r)
}

/// Whether `b` may appear in a target the fast path takes: RFC 3986 `pchar`, `/` and `?`.
/// Every such target means the same to hyper's URI parser (no fragment `#`, nothing it
/// refuses or rewrites); targets with any other byte go to hyper.
fn is_plain_target_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%?".contains(&b)
}

/// A `Content-Length` value: 1 to 18 ASCII digits (no sign, no list).
fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 204, 304).
    Empty,
    Length(u64),
    Chunked,
    /// Until the backend closes the connection.
    Close,
}

/// A backend's response head.
pub struct Response<'h, 'b> {
    pub status: u16,
    pub reason: &'b str,
    pub headers: &'h [httparse::Header<'b>],
    pub framing: Framing,
    /// The backend will close the connection after this response.
    pub close: bool,
    /// The lower-case names listed in `Connection`.
    pub connection_named: Vec<String>,
    pub has_date: bool,
    /// Length of the head in the buffer.
    pub len: usize,
}

/// Why a backend's answer cannot be relayed (the caller's 502).
#[derive(Debug, PartialEq, Eq)]
pub enum BadResponse {
    Malformed,
    TooLarge,
    /// 101 to a request that asked for no upgrade.
    UnexpectedUpgrade,
    /// A transfer coding other than a final `chunked`, or conflicting lengths.
    Framing,
}

/// Parses a response head at the start of `buf`. `Ok(None)`: incomplete. 1xx interim
/// answers other than 101 are returned as is (the caller skips them: `status < 200`).
pub fn parse_response<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [httparse::Header<'b>; MAX_HEADERS],
    head_request: bool,
) -> Result<Option<Response<'h, 'b>>, BadResponse> {
    let mut resp = httparse::Response::new(headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(BadResponse::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(BadResponse::TooLarge),
        Err(_) => return Err(BadResponse::Malformed),
    };
    let (status, version) = (
        resp.code.ok_or(BadResponse::Malformed)?,
        resp.version.ok_or(BadResponse::Malformed)?,
    );
    if status == 101 {
        return Err(BadResponse::UnexpectedUpgrade);
    }
    let headers: &'h [httparse::Header<'b>] = resp.headers;
    let mut r = Response {
        status,
        reason: resp.reason.unwrap_or(""),
        headers,
        framing: Framing::Close,
        close: version == 0,
        connection_named: Vec::new(),
        has_date: false,
        len,
    };
    let (mut length, mut chunked) = (None::<u64>, false);
    for h in headers {
        let (name, v) = (h.name, h.value);
        match name.len() {
            4 if name.eq_ignore_ascii_case("date") => r.has_date = true,
            10 if name.eq_ignore_ascii_case("connection") => {
                for t in v.split(|&b| b == b',') {
                    let t = std::str::from_utf8(t).unwrap_or("").trim();
                    if t.eq_ignore_ascii_case("close") {
                        r.close = true;
                    } else if t.eq_ignore_ascii_case("keep-alive") && version == 0 {
                        r.close = false;
                    }
                    if !t.is_empty() {
                        r.connection_named.push(t.to_ascii_lowercase());
                    }
                }
            }
            14 if name.eq_ignore_ascii_case("content-length") => {
                let n = parse_length(v).ok_or(BadResponse::Framing)?;
                if length.is_some_and(|l| l != n) {
                    return Err(BadResponse::Framing);
                }
                length = Some(n);
            }
            17 if name.eq_ignore_ascii_case("transfer-encoding") => {
                // Only a final `chunked` delimits the body; anything else we cannot relay.
                let last = v.rsplit(|&b| b == b',').next().unwrap_or(b"");
                let last = std::str::from_utf8(last).unwrap_or("").trim();
                if !last.eq_ignore_ascii_case("chunked") || chunked {
                    return Err(BadResponse::Framing);
                }
                chunked = true;
            }
            _ => {}
        }
    }
    r.framing = if head_request || status < 200 || status == 204 || status == 304 {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    if r.framing == Framing::Close {
        r.close = true;
    }
    Ok(Some(r))
}

/// Checks a chunked body as its bytes pass (RFC 9112 §7.1): how much of the buffer belongs
/// to the body, and when it ended. The bytes themselves are relayed unchanged.
#[derive(Debug, Default)]
pub struct Chunked {
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// At a chunk-size line.
    #[default]
    Size,
    /// Inside a chunk's data: bytes left.
    Data(u64),
    /// The CRLF after a chunk's data: bytes left of it.
    DataEnd(u8),
    /// In the trailer section (after the last chunk).
    Trailer,
    Done,
}

/// Longest chunk-size line (with extensions) or trailer line accepted.
const MAX_LINE: usize = 4096;

impl Chunked {
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// How many leading bytes of `buf` belong to the body so far (all of them can be relayed);
    /// the rest is an incomplete line, kept for the next call with more bytes after it.
    pub fn scan(&mut self, buf: &[u8]) -> Result<usize, BadResponse> {
        let mut i = 0;
        while i < buf.len() {
            match self.state {
                ChunkState::Size => match httparse::parse_chunk_size(&buf[i..]) {
                    Ok(httparse::Status::Complete((n, size))) => {
                        i += n;
                        self.state = if size == 0 {
                            ChunkState::Trailer
                        } else {
                            ChunkState::Data(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if buf.len() - i > MAX_LINE => {
                        return Err(BadResponse::Malformed);
                    }
                    Ok(httparse::Status::Partial) => return Ok(i),
                    Err(_) => return Err(BadResponse::Malformed),
                },
                ChunkState::Data(left) => {
                    let take = left.min((buf.len() - i) as u64);
                    i += take as usize;
                    self.state = if take == left {
                        ChunkState::DataEnd(2)
                    } else {
                        ChunkState::Data(left - take)
                    };
                }
                ChunkState::DataEnd(left) => {
                    let want = if left == 2 { b'\r' } else { b'\n' };
                    if buf[i] != want {
                        return Err(BadResponse::Malformed);
                    }
                    i += 1;
                    self.state = if left == 2 {
                        ChunkState::DataEnd(1)
                    } else {
                        ChunkState::Size
                    };
                }
                ChunkState::Trailer => match memchr::memchr(b'\n', &buf[i..]) {
                    Some(end) => {
                        let line = &buf[i..i + end];
                        i += end + 1;
                        if line.is_empty() || line == b"\r" {
                            self.state = ChunkState::Done;
                        }
                    }
                    None if buf.len() - i > MAX_LINE => return Err(BadResponse::Malformed),
                    None => return Ok(i),
                },
                ChunkState::Done => return Ok(i),
            }
        }
        Ok(i)
    }
}

/// Appends `name: value\r\n`.
pub fn put_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends the decimal digits of `n`.
pub fn put_u64(out: &mut Vec<u8>, n: u64) {
    let mut b = itoa_buf(n);
    let (digits, start) = (&mut b.0, b.1);
    out.extend_from_slice(&digits[start..]);
}

fn itoa_buf(mut n: u64) -> ([u8; 20], usize) {
    let mut b = [0u8; 20];
    let mut i = b.len();
    loop {
        i -= 1;
        b[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return (b, i);
        }
    }
}

/// Whether `v` is a header value the `http` crate would accept (`HeaderValue::from_str`):
/// visible ASCII, spaces and tabs.
pub fn is_header_value(v: &[u8]) -> bool {
    v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
}

thread_local! {
    static DATE: std::cell::RefCell<(u64, [u8; 29])> = const { std::cell::RefCell::new((0, [0; 29])) };
}

/// Appends `date: <IMF-fixdate>\r\n`, formatted once per second per thread.
pub fn put_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs {
            let text = httpdate::fmt_http_date(now);
            if text.len() == 29 {
                d.1.copy_from_slice(text.as_bytes());
                d.0 = secs;
            }
        }
        put_header(out, b"date", &d.1);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_finds_crlf_and_bare_lf_heads() {
        assert_eq!(
            head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest"),
            Ok(Some(27))
        );
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: a\n\n"), Ok(Some(24)));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHo st: a\r\n\n"), Err(()));
        assert_eq!(head_end(&vec![b'a'; MAX_HEAD + 1]), Err(()));
    }

    fn request(raw: &str) -> (bool, u64, bool) {
        let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let r = parse_request(raw.as_bytes(), &mut h).expect("parses");
        (r.fast, r.content_length, r.close)
    }

    /// The requests the fast path takes, and those it leaves to hyper.
    #[test]
    fn fast_path_takes_only_plain_http11_requests() {
        let cases: &[(&str, bool)] = &[
            ("GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n", true),
            ("POST /a HTTP/1.1\r\nContent-Length: 12\r\n\r\n", true),
            ("GET /a HTTP/1.0\r\n\r\n", false),
            ("GET http://x/a HTTP/1.1\r\n\r\n", false),
            ("OPTIONS * HTTP/1.1\r\n\r\n", false),
            ("CONNECT x:443 HTTP/1.1\r\n\r\n", false),
            (
                "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
            ),
            (
                "POST /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
                false,
            ),
            ("POST /a HTTP/1.1\r\nContent-Length: +1\r\n\r\n", false),
            ("POST /a HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n", false),
            ("POST /a HTTP/1.1\r\nExpect: 100-continue\r\n\r\n", false),
            (
                "GET /a HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
                false,
            ),
            ("GET /a HTTP/1.1\r\nConnection: Upgrade\r\n\r\n", false),
            ("GET /a#frag HTTP/1.1\r\n\r\n", false),
            ("GET /a\\b HTTP/1.1\r\n\r\n", false),
            ("GET /a%2Fb?x=1&y=a:b@c HTTP/1.1\r\n\r\n", true),
        ];
        for (raw, fast) in cases {
            assert_eq!(request(raw).0, *fast, "{raw:?}");
        }
        assert_eq!(
            request("POST /a HTTP/1.1\r\ncontent-length: 42\r\n\r\n").1,
            42
        );
        assert!(request("GET /a HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n").2);
    }

    /// A bare-LF head with a CRLF head pipelined after it: `head_end` finds the second's end,
    /// so the fast path must not take the pair as one head.
    #[test]
    fn a_head_shorter_than_head_end_is_left_to_hyper() {
        let raw = b"GET /a HTTP/1.1\nHost: x\n\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
        let end = head_end(raw).unwrap().unwrap();
        assert_eq!(end, raw.len());
        let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert!(parse_request(&raw[..end], &mut h).is_none());
    }

    #[test]
    fn a_non_utf8_target_is_left_to_hyper() {
        let raw = b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n";
        let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
        if let Some(r) = parse_request(raw, &mut h) {
            assert!(!r.fast);
        }
    }

    fn response(raw: &str, head: bool) -> Result<Option<(Framing, bool)>, BadResponse> {
        let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
        parse_response(raw.as_bytes(), &mut h, head).map(|r| r.map(|r| (r.framing, r.close)))
    }

    /// RFC 9112 §6.3, in the order it gives.
    #[test]
    fn response_framing() {
        use Framing::*;
        let ok = |raw: &str, head| response(raw, head).unwrap().unwrap();
        assert_eq!(
            ok("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true),
            (Empty, false)
        );
        assert_eq!(ok("HTTP/1.1 204 No Content\r\n\r\n", false), (Empty, false));
        assert_eq!(
            ok(
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                false
            ),
            (Empty, false)
        );
        assert_eq!(ok("HTTP/1.1 100 Continue\r\n\r\n", false), (Empty, false));
        assert_eq!(
            ok(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n",
                false
            ),
            (Chunked, false)
        );
        assert_eq!(
            ok("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false),
            (Length(5), false)
        );
        assert_eq!(
            ok(
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nContent-Length: 5\r\n\r\n",
                false
            ),
            (Length(5), false)
        );
        assert_eq!(ok("HTTP/1.1 200 OK\r\n\r\n", false), (Close, true));
        assert_eq!(
            ok(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
                false
            ),
            (Length(1), true)
        );
        assert_eq!(
            ok("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false),
            (Length(1), true)
        );
        assert_eq!(
            ok(
                "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n",
                false
            ),
            (Length(1), false)
        );
        assert_eq!(
            response("HTTP/1.1 200 OK\r\nContent-Length: 5", false),
            Ok(None)
        );
        assert_eq!(
            response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false),
            Err(BadResponse::Framing)
        );
        assert_eq!(
            response(
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                false
            ),
            Err(BadResponse::Framing)
        );
        assert_eq!(
            response("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false),
            Err(BadResponse::Framing)
        );
        assert_eq!(
            response("HTTP/1.1 101 Switching Protocols\r\n\r\n", false),
            Err(BadResponse::UnexpectedUpgrade)
        );
        assert_eq!(
            response("HTTP/1.1 2OO OK\r\n\r\n", false),
            Err(BadResponse::Malformed)
        );
    }

    /// A chunked body split at every possible point scans to the same end.
    #[test]
    fn chunked_scan_at_every_split() {
        let body = b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for split in 0..=body.len() {
            let mut c = Chunked::default();
            let mut pending: Vec<u8> = Vec::new();
            let mut relayed = 0;
            for part in [&body[..split], &body[split..]] {
                pending.extend_from_slice(part);
                let n = c.scan(&pending).unwrap();
                relayed += n;
                pending.drain(..n);
            }
            assert!(c.is_done(), "split at {split}");
            assert_eq!(relayed, body.len());
            assert!(pending.is_empty());
        }
        // Bytes after the end are not the body's.
        let mut c = Chunked::default();
        assert_eq!(c.scan(b"0\r\n\r\nHTTP/1.1").unwrap(), 5);
        assert!(c.is_done());
    }

    #[test]
    fn chunked_scan_refuses_malformed_bodies() {
        for bad in [&b"zz\r\n"[..], b"3\r\nabcX", b"3\r\nabc\rX"] {
            assert_eq!(
                Chunked::default().scan(bad),
                Err(BadResponse::Malformed),
                "{bad:?}"
            );
        }
        let long = vec![b'1'; MAX_LINE + 10];
        assert!(Chunked::default().scan(&long).is_err());
    }

    #[test]
    fn numbers_and_dates() {
        let mut out = Vec::new();
        for n in [0u64, 7, 10, 1234567890123] {
            out.clear();
            put_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
        out.clear();
        put_date(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("date: ") && text.ends_with(" GMT\r\n"),
            "{text}"
        );
        assert!(httpdate::parse_http_date(text[6..text.len() - 2].trim()).is_ok());
    }
}
