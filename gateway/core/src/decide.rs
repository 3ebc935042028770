//! `decide`: request parts + route table + token store + now -> forward, reject or answer a
//! CORS preflight.
//!
//! Order of checks (the first failure answers):
//! 1. CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) on a safe
//!    path whose route has `cors_origins`: answered here without a key (204, or 403 when the
//!    origin or method is not allowed). Any other preflight continues as a normal request.
//! 2. Key presence and ambiguity (`missing_key`, `ambiguous_key`).
//! 3. Key format and checksum, no lookup (`invalid_key`).
//! 4. Lookup by SHA-256 (`invalid_key` when absent: unknown or revoked), expiry
//!    (`expired_key` when `exp <= now_ms`).
//! 5. Path and query safety (`bad_request`).
//! 6. Routing, longest whole-segment prefix (`route_not_found`).
//! 7. Team allow-list, then scopes (`forbidden`).
//! 8. Method (`method_not_allowed` with `Allow`).
//! 9. The forwarded URL: the path-and-query reference parsed against the backend URL by the
//!    URL parser; scheme, host and port must be the backend's and the path must stay under
//!    the backend's path (`bad_request`).
//!
//! So an unauthenticated caller only ever sees 401s (or a preflight answer) and cannot probe
//! which routes exist, and a token that may not use a route learns nothing about its methods.

use crate::error::{GatewayError, Reject};
use crate::key::{key_hash, presented_key, query_without_keys};
use crate::path::{check_query, is_canonical_query, normalize_path};
use crate::routes::{Route, Routes};
use crate::tokens::{EdgeToken, TokenHash, TokenTable};
use keygate_contracts::route::METHODS;
use std::collections::HashMap;

/// `Access-Control-Allow-Headers` of a preflight answer.
pub const CORS_ALLOW_HEADERS: &str = "x-api-key, authorization, content-type";
/// `Access-Control-Max-Age` of a preflight answer, seconds.
pub const CORS_MAX_AGE_SECS: u32 = 600;

/// Gateway-wide decision settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Old token prefixes (without `_`) accepted without a checksum, e.g. `ntk` for tokens
    /// imported from the old system. Empty by default.
    pub legacy_prefixes: Vec<String>,
}

/// Where token records come from: a [`TokenTable`] in the native gateway and the benchmarks,
/// a map in tests. Synchronous and without `Send`: a Worker looks the hash up in KV first
/// (see [`crate::key_hash_of`]) and passes what it found.
pub trait TokenSource {
    /// The live token whose key hashes to `hash`; `None`: unknown or revoked.
    fn token(&self, hash: &TokenHash) -> Option<&EdgeToken>;
}

impl TokenSource for TokenTable {
    #[inline]
    fn token(&self, hash: &TokenHash) -> Option<&EdgeToken> {
        self.get(hash)
    }
}

impl<S: std::hash::BuildHasher> TokenSource for HashMap<TokenHash, EdgeToken, S> {
    fn token(&self, hash: &TokenHash) -> Option<&EdgeToken> {
        self.get(hash)
    }
}

impl<T: TokenSource + ?Sized> TokenSource for &T {
    fn token(&self, hash: &TokenHash) -> Option<&EdgeToken> {
        (**self).token(hash)
    }
}

/// The parts of a request the decision needs. Header values are raw bytes, every value of a
/// repeated header separately.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub method: &'a str,
    /// The raw path as received (no query).
    pub path: &'a str,
    /// The raw query without `?`.
    pub query: Option<&'a str>,
    /// Every `X-API-Key` value.
    pub api_key: &'a [&'a [u8]],
    /// Every `Authorization` value.
    pub authorization: &'a [&'a [u8]],
    pub origin: Option<&'a [u8]>,
    /// `Access-Control-Request-Method`.
    pub preflight_method: Option<&'a [u8]>,
}

/// What to do with a request.
#[derive(Debug)]
pub enum Decision<'r> {
    Forward(Forward<'r>),
    Reject(Reject),
    Preflight(Preflight),
}

/// Forward to the route's backend. Borrows the route and the token record from the tables
/// it was decided against (nothing is copied per request but the URL). `Debug` redacts the
/// credential value.
pub struct Forward<'r> {
    pub route: &'r Route,
    /// The token's record (id, team, requests per minute).
    pub token: &'r EdgeToken,
    /// SHA-256 of the presented key (rate-limit and usage key; [`TokenHash::hex`] for usage).
    pub token_hash: TokenHash,
    /// The full backend URL, query included.
    pub url: String,
    /// `Access-Control-Allow-Origin` for the response, when the request's origin is allowed.
    pub cors_origin: Option<String>,
}

impl<'r> Forward<'r> {
    /// Header name (lower-case) and value of the route's backend credential.
    pub fn credential(&self) -> Option<(&'r str, &'r str)> {
        self.route
            .credential
            .as_ref()
            .map(|(h, v)| (h.as_str(), v.as_str()))
    }
}

impl std::fmt::Debug for Forward<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forward")
            .field("route", &self.route.name)
            .field("token_id", &self.token.id)
            .field("token_hash", &self.token_hash)
            .field("team", &self.token.team)
            .field("token_rpm", &self.token.rpm)
            .field("url", &self.url)
            .field(
                "credential",
                &self.credential().map(|(h, _)| (h, "<redacted>")),
            )
            .field("cors_origin", &self.cors_origin)
            .finish()
    }
}

/// Answer a CORS preflight directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    /// 204.
    pub status: u16,
    /// Lower-case names: `access-control-allow-origin`, `access-control-allow-methods`,
    /// `access-control-allow-headers`, `access-control-max-age`, `vary`.
    pub headers: Vec<(String, String)>,
    /// The route's name.
    pub route: String,
}

/// [`decide_with`] and the default [`Config`] (no legacy prefixes).
pub fn decide<'r, T: TokenSource>(
    req: &Incoming,
    routes: &'r Routes,
    tokens: &'r T,
    now_ms: i64,
) -> Decision<'r> {
    decide_with(req, routes, tokens, now_ms, &Config::default())
}

/// Decides a request; see the module documentation for the order of checks.
pub fn decide_with<'r, T: TokenSource>(
    req: &Incoming,
    routes: &'r Routes,
    tokens: &'r T,
    now_ms: i64,
    config: &Config,
) -> Decision<'r> {
    if let Some(d) = preflight(req, routes) {
        return d;
    }
    match forward(req, routes, tokens, now_ms, config) {
        Ok(f) => Decision::Forward(f),
        Err(r) => {
            let mut r = *r;
            if r.cors_origin.is_none() {
                r.cors_origin = cors_for(req, routes);
            }
            Decision::Reject(r)
        }
    }
}

/// The SHA-256 of the request's key when it is present, unambiguous and well-formed, else
/// the error `decide` would answer. Hosts whose token store is asynchronous (a Worker
/// reading KV) look this hash up first ([`TokenHash::hex`] is the KV key), then call
/// [`decide_with`] with what they found.
/// The error is `missing_key`, `ambiguous_key` or `invalid_key` (answer `Reject::of(e)`).
pub fn key_hash_of(req: &Incoming, config: &Config) -> Result<TokenHash, GatewayError> {
    let presented = presented_key(req.api_key, req.authorization)?;
    key_hash(presented, config)
}

fn forward<'r, T: TokenSource>(
    req: &Incoming,
    routes: &'r Routes,
    tokens: &'r T,
    now_ms: i64,
    config: &Config,
) -> Result<Forward<'r>, Box<Reject>> {
    let hash = key_hash_of(req, config).map_err(|e| Box::new(Reject::of(e)))?;
    let fail = |r: Reject| Box::new(r.with_hash(&hash));
    let Some(token) = tokens.token(&hash) else {
        return Err(fail(Reject::of(GatewayError::InvalidKey)));
    };
    if token.exp.is_some_and(|exp| exp <= now_ms) {
        return Err(fail(Reject::of(GatewayError::ExpiredKey)));
    }
    let bad = |e: crate::path::PathError| Reject::new(GatewayError::BadRequest, e.to_string());
    let path = normalize_path(req.path).map_err(|e| fail(bad(e)))?;
    if let Some(q) = req.query {
        check_query(q).map_err(|e| fail(bad(e)))?;
    }
    let Some(route) = routes.lookup(&path) else {
        return Err(fail(Reject::of(GatewayError::RouteNotFound)));
    };
    let refuse = |kind: GatewayError, message: &str| {
        fail(Reject::new(kind, message).with_route(&route.name))
    };
    if !route.allowed_teams.is_empty() && !route.allowed_teams.iter().any(|t| **t == *token.team) {
        return Err(refuse(
            GatewayError::Forbidden,
            "this API key's team may not use this route",
        ));
    }
    if !token.scopes.grants(route) {
        return Err(refuse(
            GatewayError::Forbidden,
            GatewayError::Forbidden.default_message(),
        ));
    }
    if !route.allows_method(req.method) {
        let mut r = refuse(
            GatewayError::MethodNotAllowed,
            GatewayError::MethodNotAllowed.default_message(),
        );
        r.allow = Some(route.allow.clone());
        return Err(r);
    }
    // A caller's key given in the URL goes no further than here (headers: `forward_headers`).
    let query = req.query.and_then(|q| query_without_keys(q, config));
    let url = backend_url(route, &path, query.as_deref()).ok_or_else(|| {
        refuse(
            GatewayError::BadRequest,
            "the forwarded URL would leave the route's backend",
        )
    })?;
    Ok(Forward {
        route,
        token,
        token_hash: hash,
        url,
        cors_origin: origin_str(req)
            .and_then(|o| route.cors_allow(o))
            .map(str::to_owned),
    })
}

/// The backend URL: the backend's base path (without its trailing `/`) + the path (minus
/// the prefix when `strip`), joined with exactly one `/`, then `?query`. That path-and-query
/// reference is parsed by the WHATWG URL parser against the backend URL (so the authority is
/// never assembled from strings), and the result is refused unless its scheme, host and port
/// are the backend's, it has no userinfo or fragment, and its path stays under the backend's
/// base path. A reference that could change the authority (`//host`, `/\host`) cannot pass
/// the path rules, and would fail this check if it did.
///
/// Fast path: when the reference is already in the form the parser leaves unchanged (every
/// normalised path is, and so is a query without `"`, `<`, `>`, `'`; the backend's base path
/// is checked once when routes are compiled), parsing it against the backend would give
/// `origin + reference` exactly, with the backend's own scheme, host and port and a path
/// under its base, so that string is the result. Debug builds (all tests, every vector)
/// check it against the parser; a test compares the two over generated paths and queries.
fn backend_url(route: &Route, path: &str, query: Option<&str>) -> Option<String> {
    let rest = if route.strip && route.prefix != "/" {
        &path[route.prefix.len()..]
    } else {
        path
    };
    if route.canonical_base && query.is_none_or(is_canonical_query) {
        let fast = join_canonical(route, rest, query);
        debug_assert_eq!(Some(&fast), parsed_backend_url(route, rest, query).as_ref());
        return Some(fast);
    }
    parsed_backend_url(route, rest, query)
}

/// `origin + base path + rest + ?query` (a normalised path and canonical query).
fn join_canonical(route: &Route, rest: &str, query: Option<&str>) -> String {
    let mut url = String::with_capacity(
        route.origin.len() + route.base_path.len() + rest.len() + query.map_or(1, |q| q.len() + 2),
    );
    url.push_str(&route.origin);
    url.push_str(&route.base_path);
    url.push_str(rest);
    if route.base_path.is_empty() && rest.is_empty() {
        url.push('/');
    }
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// The backend URL by the URL parser, with the same-origin and under-base checks.
fn parsed_backend_url(route: &Route, rest: &str, query: Option<&str>) -> Option<String> {
    let mut reference = String::with_capacity(
        route.base_path.len() + rest.len() + query.map_or(1, |q| q.len() + 2),
    );
    reference.push_str(&route.base_path);
    reference.push_str(rest);
    if reference.is_empty() {
        reference.push('/');
    }
    if let Some(q) = query {
        reference.push('?');
        reference.push_str(q);
    }
    let b = &route.backend_url;
    let url = b.join(&reference).ok()?;
    let same_origin = url.scheme() == b.scheme()
        && url.host() == b.host()
        && url.port_or_known_default() == b.port_or_known_default()
        && url.username().is_empty()
        && url.password().is_none()
        && url.fragment().is_none();
    let under_base = match url.path().strip_prefix(route.base_path.as_str()) {
        Some(after) => after.is_empty() || after.starts_with('/'),
        None => false,
    };
    (same_origin && under_base).then(|| url.into())
}

fn origin_str<'a>(req: &Incoming<'a>) -> Option<&'a str> {
    req.origin.and_then(|o| std::str::from_utf8(o).ok())
}

/// The `Access-Control-Allow-Origin` a reject may carry: only when the path is safe and its
/// route allows the request's origin.
fn cors_for(req: &Incoming, routes: &Routes) -> Option<String> {
    let origin = origin_str(req)?;
    let path = normalize_path(req.path).ok()?;
    let route = routes.lookup(&path)?;
    route.cors_allow(origin).map(str::to_owned)
}

fn preflight<'r>(req: &Incoming, routes: &'r Routes) -> Option<Decision<'r>> {
    if req.method != "OPTIONS" {
        return None;
    }
    let (origin, wanted) = (req.origin?, req.preflight_method?);
    let path = normalize_path(req.path).ok()?;
    let route = routes.lookup(&path)?;
    if route.cors_origins.is_empty() {
        return None;
    }
    let forbidden = |message: &str| {
        Some(Decision::Reject(
            Reject::new(GatewayError::Forbidden, message).with_route(&route.name),
        ))
    };
    let Some(allow_origin) = std::str::from_utf8(origin)
        .ok()
        .and_then(|o| route.cors_allow(o))
    else {
        return forbidden("this origin may not call this route");
    };
    let wanted = std::str::from_utf8(wanted).unwrap_or("").trim();
    let method_ok = if route.methods.is_empty() {
        METHODS.contains(&wanted)
    } else {
        route.allows_method(wanted)
    };
    if !method_ok {
        return forbidden("this method may not be used cross-origin on this route");
    }
    let headers = vec![
        (
            "access-control-allow-origin".into(),
            allow_origin.to_owned(),
        ),
        ("access-control-allow-methods".into(), route.allow.clone()),
        (
            "access-control-allow-headers".into(),
            CORS_ALLOW_HEADERS.to_owned(),
        ),
        (
            "access-control-max-age".into(),
            CORS_MAX_AGE_SECS.to_string(),
        ),
        ("vary".into(), "Origin".to_owned()),
    ];
    Some(Decision::Preflight(Preflight {
        status: 204,
        headers,
        route: route.name.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::EdgeKey;
    use crate::routes::tests::record as route_record;
    use keygate_contracts::scope::Scope;
    use keygate_kv_record::{RouteRecord, RouteTable};

    /// The fast URL join gives what the URL parser gives, for every normalised path and
    /// accepted query generated here (over backends with and without a base path, and
    /// with and without prefix stripping); and queries it cannot take go the parser's way.
    #[test]
    fn fast_backend_url_equals_the_parser() {
        let record = |id: &str, prefix: &str, backend: &str, strip: bool| RouteRecord {
            backend: backend.into(),
            strip,
            ..route_record(id, prefix)
        };
        let table = RouteTable {
            v: 1,
            routes: vec![
                record("a", "/a", "http://b.internal:8080", false),
                record("b", "/b", "https://b.internal/base/", true),
                record("c", "/c/d", "http://10.0.0.1:81/x/y", true),
                record("d", "/", "http://[::1]:9000/r", false),
                record("e", "/e", "http://B.Internal:80/%7Euser/", true),
            ],
        };
        let routes = Routes::compile(&table, &EdgeKey::from_bytes(&[0; 32])).unwrap();
        // Path pieces: every class the path rules accept, including escapes they keep.
        let pieces = [
            "x",
            "A.b",
            "~u",
            "-_",
            "!$&'()*+,;=",
            ":@",
            "%20",
            "%2F",
            "%C3%A9",
            "a;b",
            "..a",
            ".a.",
            "%25",
            "",
            "seg",
        ];
        let queries = [
            None,
            Some(""),
            Some("a=1&b=2"),
            Some("q=%20x/y?z"),
            Some("x={}|^`"),
            Some("quote=\"a\""),
            Some("lt=<"),
            Some("it's"),
            Some("b=\\"),
        ];
        let mut checked = 0;
        for route in routes.iter() {
            let prefix = if route.prefix == "/" {
                ""
            } else {
                route.prefix.as_str()
            };
            for (i, a) in pieces.iter().enumerate() {
                for b in pieces.iter().skip(i % 3) {
                    for raw in [
                        format!("{prefix}/{a}"),
                        format!("{prefix}/{a}/{b}"),
                        format!("{prefix}/{a}/{b}/"),
                    ] {
                        let Ok(path) = normalize_path(&raw) else {
                            continue;
                        };
                        let Some(matched) = routes.lookup(&path) else {
                            continue;
                        };
                        for q in queries {
                            if q.is_some_and(|q| check_query(q).is_err()) {
                                continue;
                            }
                            let rest = if matched.strip && matched.prefix != "/" {
                                &path[matched.prefix.len()..]
                            } else {
                                &path[..]
                            };
                            let parsed = parsed_backend_url(matched, rest, q);
                            assert_eq!(backend_url(matched, &path, q), parsed, "{raw} {q:?}");
                            if matched.canonical_base && q.is_none_or(is_canonical_query) {
                                assert_eq!(
                                    Some(join_canonical(matched, rest, q)),
                                    parsed,
                                    "{raw} {q:?}"
                                );
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 1000, "only {checked} fast-path cases");
    }

    #[test]
    fn grants_equals_parse_then_grants() {
        let rec = |id: &str, name: &str, prefix: &str, tags: &[&str]| RouteRecord {
            name: name.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..route_record(id, prefix)
        };
        let table = RouteTable {
            v: 1,
            routes: vec![
                rec("a", "pay", "/pay", &["billing", "x.y"]),
                rec("b", "pay-v2", "/pay2", &[]),
                rec("c", "7", "/seven", &["Bad Tag"]),
            ],
        };
        let routes = Routes::compile(&table, &EdgeKey::from_bytes(&[0; 32])).unwrap();
        let scopes = [
            "*",
            "pay",
            "pay-v2",
            "Pay",
            "pay ",
            "",
            "**",
            "tag:billing",
            "tag:bill",
            "tag:x.y",
            "tag:",
            "tag:Bad Tag",
            "tag:billing ",
            "7",
            "tag:7",
        ];
        for route in routes.iter() {
            for s in scopes {
                let set = crate::tokens::ScopeSet::parse(&[s.to_owned()]);
                let reference = Scope::parse("scope", s)
                    .is_ok_and(|scope| scope.grants(&route.name, &route.tags));
                assert_eq!(set.grants(route), reference, "{s:?} on {}", route.name);
            }
        }
    }
}
