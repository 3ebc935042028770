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
use crate::key::{key_hash, presented_key};
use crate::path::{check_query, normalize_path};
use crate::routes::{Route, Routes};
use keygate_contracts::route::METHODS;
use keygate_contracts::scope::Scope;
use keygate_kv_record::TokenRecord;
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

/// Where token records come from: a map in tests and benchmarks, a cache in front of KV in
/// the hosts. Synchronous and without `Send`: a Worker looks the hash up first (see
/// [`crate::key_hash_of`]) and passes what it found.
pub trait TokenSource {
    /// The live record of the token whose SHA-256 hex is `hash`; `None`: unknown or revoked.
    fn token(&self, hash: &str) -> Option<&TokenRecord>;
}

impl TokenSource for HashMap<String, TokenRecord> {
    fn token(&self, hash: &str) -> Option<&TokenRecord> {
        self.get(hash)
    }
}

impl<T: TokenSource + ?Sized> TokenSource for &T {
    fn token(&self, hash: &str) -> Option<&TokenRecord> {
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

/// Forward to the route's backend. `Debug` redacts the credential value.
pub struct Forward<'r> {
    pub route: &'r Route,
    pub token_id: String,
    /// SHA-256 hex of the presented key (rate-limit and usage key).
    pub token_hash: String,
    /// The token's team.
    pub team: String,
    /// The token's requests per minute; 0: none.
    pub token_rpm: u32,
    /// The full backend URL, query included.
    pub url: String,
    /// Header name (lower-case) and value of the backend credential.
    pub credential: Option<(String, String)>,
    /// `Access-Control-Allow-Origin` for the response, when the request's origin is allowed.
    pub cors_origin: Option<String>,
}

impl std::fmt::Debug for Forward<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forward")
            .field("route", &self.route.name)
            .field("token_id", &self.token_id)
            .field("token_hash", &self.token_hash)
            .field("team", &self.team)
            .field("token_rpm", &self.token_rpm)
            .field("url", &self.url)
            .field(
                "credential",
                &self.credential.as_ref().map(|(h, _)| (h, "<redacted>")),
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
    tokens: &T,
    now_ms: i64,
) -> Decision<'r> {
    decide_with(req, routes, tokens, now_ms, &Config::default())
}

/// Decides a request; see the module documentation for the order of checks.
pub fn decide_with<'r, T: TokenSource>(
    req: &Incoming,
    routes: &'r Routes,
    tokens: &T,
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

/// The SHA-256 hex of the request's key when it is present, unambiguous and well-formed,
/// else the error `decide` would answer. Hosts whose token store is asynchronous (a Worker
/// reading KV) look this hash up first, then call [`decide_with`] with what they found.
/// The error is `missing_key`, `ambiguous_key` or `invalid_key` (answer `Reject::of(e)`).
pub fn key_hash_of(req: &Incoming, config: &Config) -> Result<String, GatewayError> {
    let presented = presented_key(req.api_key, req.authorization)?;
    key_hash(presented, config)
}

fn forward<'r, T: TokenSource>(
    req: &Incoming,
    routes: &'r Routes,
    tokens: &T,
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
    if !route.allowed_teams.is_empty() && !route.allowed_teams.contains(&token.team) {
        return Err(refuse(
            GatewayError::Forbidden,
            "this API key's team may not use this route",
        ));
    }
    if !grants(token, route) {
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
    let url = backend_url(route, &path, req.query).ok_or_else(|| {
        refuse(
            GatewayError::BadRequest,
            "the forwarded URL would leave the route's backend",
        )
    })?;
    Ok(Forward {
        route,
        token_id: token.id.clone(),
        token_hash: hash,
        team: token.team.clone(),
        token_rpm: token.rpm,
        url,
        credential: route.credential.clone(),
        cors_origin: origin_str(req)
            .and_then(|o| route.cors_allow(o))
            .map(str::to_owned),
    })
}

/// Whether one of the token's scopes grants the route: `Scope::parse(s)` then
/// `Scope::grants`, with two shortcuts that give the same answer without allocating:
/// `*` is `Scope::All`, and a scope equal to the route's name is a valid `Scope::Route`
/// (the name passed the slug rule in `Routes::compile`). Any other non-`tag:` scope names
/// another route (or is malformed) and grants nothing. Malformed scopes grant nothing (KV
/// only holds validated scopes; this is defence in depth).
fn grants(token: &TokenRecord, route: &Route) -> bool {
    token.scopes.iter().any(|s| {
        if s == "*" || *s == route.name {
            return true;
        }
        s.starts_with("tag:")
            && Scope::parse("scope", s).is_ok_and(|scope| scope.grants(&route.name, &route.tags))
    })
}

/// The backend URL: the backend's base path (without its trailing `/`) + the path (minus
/// the prefix when `strip`), joined with exactly one `/`, then `?query`. That path-and-query
/// reference is parsed by the WHATWG URL parser against the backend URL (so the authority is
/// never assembled from strings), and the result is refused unless its scheme, host and port
/// are the backend's, it has no userinfo or fragment, and its path stays under the backend's
/// base path. A reference that could change the authority (`//host`, `/\host`) cannot pass
/// the path rules, and would fail this check if it did.
fn backend_url(route: &Route, path: &str, query: Option<&str>) -> Option<String> {
    let rest = if route.strip && route.prefix != "/" {
        &path[route.prefix.len()..]
    } else {
        path
    };
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
    use keygate_kv_record::{BackendAuth, RouteRecord, RouteTable};

    #[test]
    fn grants_equals_parse_then_grants() {
        let rec = |id: &str, name: &str, prefix: &str, tags: &[&str]| RouteRecord {
            id: id.into(),
            name: name.into(),
            team: "t".into(),
            prefix: prefix.into(),
            backend: "http://b".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            methods: vec![],
            strip: false,
            timeout_ms: 1,
            auth: BackendAuth {
                kind: "none".into(),
                header: String::new(),
                username: String::new(),
                sealed: String::new(),
            },
            allowed_teams: vec![],
            cors_origins: vec![],
            rpm: 0,
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
                let token = TokenRecord {
                    v: 1,
                    id: "t".into(),
                    team: "t".into(),
                    scopes: vec![s.into()],
                    exp: None,
                    rpm: 0,
                };
                let reference = Scope::parse("scope", s)
                    .is_ok_and(|scope| scope.grants(&route.name, &route.tags));
                assert_eq!(grants(&token, route), reference, "{s:?} on {}", route.name);
            }
        }
    }
}
