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

/// The header names listed in `Connection` values, lower-case.
fn connection_tokens<'h>(headers: &[(&'h str, &'h [u8])]) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .filter_map(|t| std::str::from_utf8(t).ok())
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
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

/// The request headers to send to the backend, names lower-case, in the caller's order,
/// followed by `x-forwarded-for`, `x-forwarded-proto`, `x-forwarded-host`, `x-request-id` and
/// the route's credential.
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
    out.push(("x-forwarded-for".into(), client.ip.as_bytes().to_vec()));
    out.push(("x-forwarded-proto".into(), client.proto.as_bytes().to_vec()));
    if !client.host.is_empty() {
        out.push(("x-forwarded-host".into(), client.host.as_bytes().to_vec()));
    }
    out.push(("x-request-id".into(), request_id.as_bytes().to_vec()));
    if let Some((name, value)) = credential {
        out.push((name.to_owned(), value.as_bytes().to_vec()));
    }
    out
}

/// The backend's response headers to pass to the caller: hop-by-hop headers and headers
/// named in `Connection` dropped, names lower-case. (`Location` is the host's to rewrite with
/// [`crate::rewrite_location`].)
pub fn response_headers<'h>(
    incoming: impl Iterator<Item = (&'h str, &'h [u8])>,
) -> Vec<(String, Vec<u8>)> {
    let incoming: Vec<(&str, &[u8])> = incoming.collect();
    let named = connection_tokens(&incoming);
    incoming
        .into_iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v))
        .filter(|(n, _)| !is_hop_by_hop(n) && !named.contains(n))
        .map(|(n, v)| (n, v.to_vec()))
        .collect()
}

/// CORS headers for a forwarded response or an error, given the `cors_origin` of a
/// [`Forward`] or [`crate::Reject`]: `access-control-allow-origin`, `vary: Origin`, and
/// `access-control-expose-headers` for the request id and the rate-limit headers.
pub fn cors_response_headers(allow_origin: &str) -> Vec<(&'static str, String)> {
    vec![
        ("access-control-allow-origin", allow_origin.to_owned()),
        ("vary", "Origin".to_owned()),
        (
            "access-control-expose-headers",
            "x-request-id, ratelimit-limit, ratelimit-remaining, ratelimit-reset, retry-after"
                .to_owned(),
        ),
    ]
}
