//! Header rules the hosts apply when forwarding: what reaches the backend, and what of the
//! backend's response reaches the caller.

use crate::decide::Forward;

/// Hop-by-hop headers (RFC 9110 §7.6.1 plus the historic `keep-alive`, `proxy-connection`):
/// never forwarded in either direction.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers the gateway never forwards besides the hop-by-hop ones: the caller's
/// credentials (`x-api-key`, `authorization`, `cookie`), headers the gateway sets itself from
/// what it observed (`x-forwarded-*`, `forwarded`, `x-real-ip`, `x-request-id`), and `host`
/// (the client library sets the backend's).
pub const NOT_FORWARDED: &[&str] = &[
    "x-api-key",
    "authorization",
    "cookie",
    "forwarded",
    "x-real-ip",
    "x-request-id",
    "host",
];

/// RFC 9112 §3.2: a server answers 400 to an HTTP/1.1 request without a `Host` header field
/// and to any request with more than one. `http_1_1`: the request's version is HTTP/1.1
/// (HTTP/1.0 may omit `Host`; HTTP/2 carries `:authority` instead and is not checked here);
/// `host_fields`: how many `Host` field lines the request carried. Both front ends apply it
/// before the decision, also to absolute-form targets (whose authority wins over `Host`).
/// `Some`: the `bad_request` to answer.
pub fn check_host_fields(http_1_1: bool, host_fields: usize) -> Option<crate::Reject> {
    let message = match host_fields {
        0 if http_1_1 => "an HTTP/1.1 request needs a Host header",
        0 | 1 => return None,
        _ => "more than one Host header",
    };
    Some(crate::Reject::new(crate::GatewayError::BadRequest, message))
}

/// Whether `name` (any case) is a hop-by-hop header.
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// What the gateway observed about the caller's connection.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// The peer address as seen by the gateway (becomes `x-forwarded-for`).
    pub ip: &'a str,
    /// `http` or `https` (becomes `x-forwarded-proto`).
    pub proto: &'a str,
    /// The `Host` the caller asked for (becomes `x-forwarded-host`; omitted when empty).
    pub host: &'a str,
}

/// The header names listed in `Connection` values (`values`: every `Connection` value),
/// lower-case: the headers that go with the hop-by-hop ones.
pub fn connection_named<'v>(values: impl Iterator<Item = &'v [u8]>) -> Vec<String> {
    values
        .flat_map(|v| v.split(|&b| b == b','))
        .filter_map(|t| std::str::from_utf8(t).ok())
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// [`connection_named`] over a whole header list.
fn connection_tokens<'h>(headers: &[(&'h str, &'h [u8])]) -> Vec<String> {
    connection_named(
        headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
            .map(|(_, v)| *v),
    )
}

/// Whether a caller's request header (`lower`: its lower-case name) is forwarded:
/// the rule [`forward_headers`] applies, for hosts that filter their own header map in place.
/// `connection_named`: the lower-case names listed in the request's `Connection` values;
/// `credential_name`: the route credential's header, if any.
pub fn forwards_request_header(
    lower: &str,
    connection_named: &[String],
    credential_name: Option<&str>,
) -> bool {
    !(is_hop_by_hop(lower)
        || NOT_FORWARDED.contains(&lower)
        || lower.starts_with("x-forwarded-")
        || connection_named.iter().any(|n| n == lower)
        || credential_name == Some(lower))
}

/// Where a host writes a head's headers: an HTTP/1.1 buffer, an `http::HeaderMap`, a
/// Worker's `Headers`, a list in tests. Every header rule below writes through one, so each
/// rule exists once whatever the host. Names come lower-case; a sink skips a value its
/// medium cannot carry (not a valid header value).
pub trait HeaderSink {
    fn put(&mut self, name: &str, value: &[u8]);
}

impl HeaderSink for Vec<(String, Vec<u8>)> {
    fn put(&mut self, name: &str, value: &[u8]) {
        self.push((name.to_owned(), value.to_vec()));
    }
}

/// What the gateway adds to a forwarded request after the caller's headers it keeps
/// ([`forwards_request_header`]): `x-forwarded-for`, `x-forwarded-proto`,
/// `x-forwarded-host` (when the caller named a host), `x-request-id`, and the route's
/// credential (`fwd.credential()`).
pub fn put_forward_additions(
    sink: &mut impl HeaderSink,
    client: &Client,
    request_id: &str,
    credential: Option<(&str, &str)>,
) {
    sink.put("x-forwarded-for", client.ip.as_bytes());
    sink.put("x-forwarded-proto", client.proto.as_bytes());
    if !client.host.is_empty() {
        sink.put("x-forwarded-host", client.host.as_bytes());
    }
    sink.put("x-request-id", request_id.as_bytes());
    if let Some((name, value)) = credential {
        sink.put(name, value.as_bytes());
    }
}

/// The request headers to send to the backend, names lower-case, in the caller's order,
/// followed by [`put_forward_additions`]: the whole request rule as a list (test vectors,
/// and hosts that build a new header list rather than filter their own).
///
/// Dropped: hop-by-hop headers and every header named in `Connection`; [`NOT_FORWARDED`];
/// every `x-forwarded-*`; and any caller header with the credential's name (so a caller
/// cannot add a second value next to the gateway's).
pub fn forward_headers<'h>(
    incoming: impl Iterator<Item = (&'h str, &'h [u8])>,
    fwd: &Forward,
    client: &Client,
    request_id: &str,
) -> Vec<(String, Vec<u8>)> {
    let incoming: Vec<(&str, &[u8])> = incoming.collect();
    let named = connection_tokens(&incoming);
    let credential = fwd.credential();
    let credential_name = credential.map(|(h, _)| h);
    let mut out = Vec::with_capacity(incoming.len() + 5);
    for (name, value) in incoming {
        let lower = name.to_ascii_lowercase();
        if forwards_request_header(&lower, &named, credential_name) {
            out.push((lower, value.to_vec()));
        }
    }
    put_forward_additions(&mut out, client, request_id, credential);
    out
}

/// Headers a browser may read from an answer with CORS (request id and rate limits).
const CORS_EXPOSED: &str =
    "x-request-id, ratelimit-limit, ratelimit-remaining, ratelimit-reset, retry-after";

/// The gateway's own headers on an answer to the caller, forwarded or its own (an error, a
/// preflight), and with them the rule of which backend response headers reach the caller.
#[derive(Clone, Copy, Debug, Default)]
pub struct AnswerHeaders<'a> {
    /// `x-request-id`.
    pub request_id: &'a str,
    /// `x-keygate-revision`, formatted (none before any configuration was loaded).
    pub revision: Option<&'a [u8]>,
    /// Rate-limit headers when a limit applied (`ratelimit-*`, `retry-after`), or another
    /// `retry-after`.
    pub extra: &'a [(&'a str, String)],
    /// CORS for this origin, when the route allows the caller's (`Forward::cors_origin`,
    /// `Reject::cors_origin`).
    pub cors_origin: Option<&'a str>,
}

impl AnswerHeaders<'_> {
    /// Whether the backend's response header `name` (any case) reaches the caller. Dropped:
    /// hop-by-hop headers (an `upgrade` answer keeps `connection` and `upgrade`), headers
    /// named in the response's `Connection` (`connection_named`, lower-case), and those the
    /// gateway sets itself on this answer: `x-request-id`, `x-keygate-revision`, its
    /// `extra` headers, and with CORS `access-control-allow-origin` and
    /// `access-control-expose-headers` (`vary` is added to, not replaced). `Location` passes,
    /// for the host to rewrite ([`crate::rewrite_location`], [`public_base`]).
    pub fn passes<S: AsRef<str>>(&self, name: &str, connection_named: &[S], upgrade: bool) -> bool {
        let is = |other: &str| name.eq_ignore_ascii_case(other);
        if is_hop_by_hop(name) && !(upgrade && (is("connection") || is("upgrade"))) {
            return false;
        }
        !(connection_named.iter().any(|n| is(n.as_ref()))
            || is("x-request-id")
            || is("x-keygate-revision")
            || self.extra.iter().any(|(k, _)| is(k))
            || (self.cors_origin.is_some()
                && (is("access-control-allow-origin") || is("access-control-expose-headers"))))
    }

    /// Writes the gateway's own headers (after the backend's that [`passes`](Self::passes)):
    /// `x-request-id`, `x-keygate-revision`, the `extra` headers, then CORS
    /// (`access-control-allow-origin`, `vary: Origin`, `access-control-expose-headers`).
    pub fn put(&self, sink: &mut impl HeaderSink) {
        sink.put("x-request-id", self.request_id.as_bytes());
        if let Some(rev) = self.revision {
            sink.put("x-keygate-revision", rev);
        }
        for (k, v) in self.extra {
            sink.put(k, v.as_bytes());
        }
        if let Some(origin) = self.cors_origin {
            sink.put("access-control-allow-origin", origin.as_bytes());
            sink.put("vary", b"Origin");
            sink.put("access-control-expose-headers", CORS_EXPOSED.as_bytes());
        }
    }
}

/// The headers of an answer the gateway gives itself for `reject` (its body is
/// [`crate::Reject::body`]): `content-type: application/json`, `cache-control: no-store`,
/// `www-authenticate` on a 401, `allow` on a 405, then `answer`'s (with the reject's CORS
/// origin when `answer` has none).
pub fn put_error_headers(
    sink: &mut impl HeaderSink,
    reject: &crate::Reject,
    answer: &AnswerHeaders,
) {
    sink.put("content-type", b"application/json");
    sink.put("cache-control", b"no-store");
    if reject.status == 401 {
        sink.put("www-authenticate", b"Bearer realm=\"keygate\"");
    }
    if let Some(allow) = reject.allow.as_deref() {
        sink.put("allow", allow.as_bytes());
    }
    AnswerHeaders {
        cors_origin: answer.cors_origin.or(reject.cors_origin.as_deref()),
        ..*answer
    }
    .put(sink);
}

/// The public base URL that rewritten `Location` headers point at: the configured public URL
/// of the gateway, else `proto://` + the host the caller asked for (`proto`: the scheme the
/// caller used, as in [`Client::proto`]).
pub fn public_base<'a>(
    public_url: Option<&'a str>,
    proto: &str,
    host: &str,
) -> std::borrow::Cow<'a, str> {
    match public_url {
        Some(u) => std::borrow::Cow::Borrowed(u),
        None => std::borrow::Cow::Owned(format!("{proto}://{host}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9112 §3.2: exactly one `Host` on HTTP/1.1; none is fine on HTTP/1.0; never two.
    #[test]
    fn host_fields() {
        for (http_1_1, n, ok) in [
            (true, 0, false),
            (true, 1, true),
            (true, 2, false),
            (true, 3, false),
            (false, 0, true),
            (false, 1, true),
            (false, 2, false),
        ] {
            let got = check_host_fields(http_1_1, n);
            assert_eq!(got.is_none(), ok, "http/1.1 {http_1_1}, {n} Host fields");
            if let Some(r) = got {
                assert_eq!((r.status, r.error), (400, "bad_request"));
            }
        }
    }
}
