//! The compiled route table: every route validated, its secret opened, prefixes indexed.
//!
//! [`Routes::compile`] is all-or-nothing: one invalid route refuses the whole table, and the
//! host keeps serving its previous one. Problems name the route, the field and the rule,
//! never a secret.

use keygate_contracts::route::{
    self as rules, MAX_CORS_ORIGINS, METHODS, validate_backend_url, validate_cors_origin,
    validate_header_name, validate_method, validate_path_prefix, validate_rate_limit_per_minute,
    validate_timeout_ms,
};
use keygate_contracts::seal::{SLOT_API_KEY, SLOT_BASIC, SLOT_BEARER, SealError, SealKey};
use keygate_contracts::{FieldError, names};
use keygate_kv_record::{RouteRecord, RouteTable};
use rustc_hash::FxHashMap;
use std::collections::HashMap;
use url::Url;

/// The key route secrets are sealed to for the edge (the control plane's "edge key").
#[derive(Clone)]
pub struct EdgeKey(SealKey);

impl std::fmt::Debug for EdgeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeKey").field("id", &self.0.id()).finish()
    }
}

impl EdgeKey {
    /// From 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(SealKey::from_bytes(bytes))
    }

    /// From base64 (standard or URL-safe, padded or not) of 32 bytes.
    pub fn from_base64(s: &str) -> Result<Self, SealError> {
        SealKey::from_base64(s).map(Self)
    }

    /// The key's non-secret id (the `<kid>` of sealed values).
    pub fn id(&self) -> &str {
        self.0.id()
    }

    /// The underlying key.
    pub fn seal_key(&self) -> &SealKey {
        &self.0
    }
}

impl From<SealKey> for EdgeKey {
    fn from(k: SealKey) -> Self {
        Self(k)
    }
}

/// How the gateway authenticates to a route's backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    None,
    Bearer,
    ApiKey,
    Basic,
}

impl AuthKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "bearer" => Some(Self::Bearer),
            "api_key" => Some(Self::ApiKey),
            "basic" => Some(Self::Basic),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Bearer => "bearer",
            Self::ApiKey => "api_key",
            Self::Basic => "basic",
        }
    }

    /// The sealed-secret slot (second half of the AAD).
    pub fn slot(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Bearer => Some(SLOT_BEARER),
            Self::ApiKey => Some(SLOT_API_KEY),
            Self::Basic => Some(SLOT_BASIC),
        }
    }
}

/// One invalid field of one route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route {route}: {field}: {rule}")]
pub struct RouteProblem {
    /// The route id (`routes[<i>]` when the id itself is missing; empty for the table).
    pub route: String,
    /// The record field, e.g. `backend` or `auth.sealed`.
    pub field: String,
    /// The rule it broke. Never contains a secret.
    pub rule: String,
}

/// A compiled route. Everything but the backend credential is public; `Debug` redacts it.
pub struct Route {
    pub id: String,
    /// Unique slug; also the scope that grants it.
    pub name: String,
    pub team: String,
    pub prefix: String,
    /// The backend URL as normalised by the URL parser.
    pub backend: String,
    pub tags: Vec<String>,
    /// Upper-case method names; empty: every method.
    pub methods: Vec<String>,
    pub strip: bool,
    /// Backend timeout, milliseconds (the record's 0 becomes the default).
    pub timeout_ms: u32,
    /// Requests per minute per token on this route; 0: none.
    pub rpm: u32,
    /// Teams whose tokens may use the route; empty: every team.
    pub allowed_teams: Vec<String>,
    /// Allowed browser origins; empty: no CORS handling.
    pub cors_origins: Vec<String>,
    pub auth: AuthKind,
    /// `Allow` / `Access-Control-Allow-Methods` value.
    pub(crate) allow: String,
    pub(crate) backend_url: Url,
    /// The backend's path without its trailing `/` (`""` for the root).
    pub(crate) base_path: String,
    /// `scheme://host[:port]` of the backend as the URL parser serialises it.
    pub(crate) origin: String,
    /// Whether `base_path` is in the form the URL parser leaves unchanged, so the backend URL
    /// of a canonical request path can be assembled without re-parsing (see `decide`).
    pub(crate) canonical_base: bool,
    /// Header name (lower-case) and value to send to the backend.
    pub(crate) credential: Option<(String, String)>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("team", &self.team)
            .field("prefix", &self.prefix)
            .field("backend", &self.backend)
            .field("tags", &self.tags)
            .field("methods", &self.methods)
            .field("strip", &self.strip)
            .field("timeout_ms", &self.timeout_ms)
            .field("rpm", &self.rpm)
            .field("allowed_teams", &self.allowed_teams)
            .field("cors_origins", &self.cors_origins)
            .field("auth", &self.auth)
            .field(
                "credential",
                &self.credential.as_ref().map(|(h, _)| (h, "<redacted>")),
            )
            .finish()
    }
}

impl Route {
    /// Whether the route allows `method` (exact, case-sensitive; empty list: all).
    pub fn allows_method(&self, method: &str) -> bool {
        self.methods.is_empty() || self.methods.iter().any(|m| m == method)
    }

    /// The `Allow` header value: the route's methods, or every method the contract knows.
    pub fn allow_header(&self) -> &str {
        &self.allow
    }

    /// The parsed backend URL.
    pub fn backend_url(&self) -> &Url {
        &self.backend_url
    }

    /// The name of the header the backend credential goes in (lower-case), if any. The value
    /// is only handed out inside a [`crate::Forward`].
    pub fn credential_header(&self) -> Option<&str> {
        self.credential.as_ref().map(|(h, _)| h.as_str())
    }

    /// The value to put in `Access-Control-Allow-Origin` for a request from `origin`, if the
    /// route allows it: the origin itself, or `*` when the route allows every origin.
    pub fn cors_allow(&self, origin: &str) -> Option<&str> {
        self.cors_origins
            .iter()
            .find(|o| *o == origin)
            .or_else(|| self.cors_origins.iter().find(|o| *o == "*"))
            .map(String::as_str)
    }
}

/// The compiled, validated route table.
#[derive(Debug, Default)]
pub struct Routes {
    routes: Vec<Route>,
    /// FxHash: the keys are the table's own prefixes, fixed at compile time; requests only
    /// look up, so HashDoS resistance is not needed and a fast hash on short keys is.
    by_prefix: FxHashMap<String, usize>,
    longest_prefix: usize,
}

impl Routes {
    /// An empty table (every path is `route_not_found`).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Validates every route (prefix, backend URL http/https with a host, methods, header name
    /// of api_key, timeout bounds, auth kind, basic username, sealed secret opens with its
    /// AAD and is a valid header value, CORS origins, unique ids, names and prefixes) and
    /// opens the secrets. Any invalid route: `Err` with every problem.
    pub fn compile(table: &RouteTable, key: &EdgeKey) -> Result<Routes, Vec<RouteProblem>> {
        let mut problems = Vec::new();
        if table.v != 1 {
            problems.push(RouteProblem {
                route: String::new(),
                field: "v".into(),
                rule: format!("version {} is not 1", table.v),
            });
        }
        let mut routes = Vec::with_capacity(table.routes.len());
        let mut by_prefix =
            FxHashMap::with_capacity_and_hasher(table.routes.len(), Default::default());
        let mut ids = std::collections::HashSet::with_capacity(table.routes.len());
        let mut names_seen: HashMap<&str, &str> = HashMap::with_capacity(table.routes.len());
        let mut prefixes_seen: HashMap<&str, &str> = HashMap::with_capacity(table.routes.len());
        for (i, rec) in table.routes.iter().enumerate() {
            let label = if rec.id.is_empty() {
                format!("routes[{i}]")
            } else {
                rec.id.clone()
            };
            let mut p = Problems {
                route: &label,
                out: &mut problems,
            };
            if !ids.insert(rec.id.as_str()) {
                p.add("id", "duplicate route id");
            }
            if let Some(other) = names_seen.insert(&rec.name, &rec.id) {
                p.add("name", format!("duplicate of route {other}"));
            }
            if let Some(other) = prefixes_seen.insert(&rec.prefix, &rec.id) {
                p.add("prefix", format!("duplicate of route {other}"));
            }
            // Any problem refuses the table; the routes are only kept when there are none.
            if let Some(route) = compile_one(rec, key, &mut p) {
                by_prefix.insert(route.prefix.clone(), routes.len());
                routes.push(route);
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let longest_prefix = routes.iter().map(|r| r.prefix.len()).max().unwrap_or(0);
        Ok(Routes {
            routes,
            by_prefix,
            longest_prefix,
        })
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// The route named `name`.
    pub fn by_name(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.name == name)
    }

    /// The route whose prefix is the longest whole-segment match of a normalised `path`.
    ///
    /// Walks the path's own segment prefixes from the longest to `/` and looks each up in a
    /// hash map, so the cost depends on the path's depth, not on the number of routes.
    pub fn lookup(&self, path: &str) -> Option<&Route> {
        if !path.starts_with('/') {
            return None;
        }
        let mut candidate = path;
        loop {
            if candidate.len() <= self.longest_prefix
                && let Some(&i) = self.by_prefix.get(candidate)
            {
                let route = &self.routes[i];
                debug_assert!(rules::prefix_matches(&route.prefix, path));
                return Some(route);
            }
            match candidate.rfind('/') {
                _ if candidate == "/" => return None,
                Some(0) => candidate = "/",
                Some(at) => candidate = &candidate[..at],
                None => return None,
            }
        }
    }
}

struct Problems<'a> {
    route: &'a str,
    out: &'a mut Vec<RouteProblem>,
}

impl Problems<'_> {
    fn add(&mut self, field: impl Into<String>, rule: impl Into<String>) {
        self.out.push(RouteProblem {
            route: self.route.to_owned(),
            field: field.into(),
            rule: rule.into(),
        });
    }

    fn field(&mut self, e: FieldError) {
        self.add(e.field, e.rule);
    }
}

/// A header value the backend credential may take: visible ASCII and spaces/tabs inside.
fn is_header_value(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b == b'\t' || (0x20..=0x7e).contains(&b))
        && !s.starts_with([' ', '\t'])
        && !s.ends_with([' ', '\t'])
}

fn compile_one(rec: &RouteRecord, key: &EdgeKey, p: &mut Problems<'_>) -> Option<Route> {
    let before = p.out.len();
    if rec.id.is_empty() || !rec.id.bytes().all(|b| b.is_ascii_graphic()) {
        p.add("id", "must be non-empty visible ASCII");
    }
    if let Err(e) = names::validate_route_name("name", &rec.name) {
        p.field(e);
    }
    if rec.team.is_empty() {
        p.add("team", "is required");
    }
    if let Err(e) = validate_path_prefix("prefix", &rec.prefix) {
        p.field(e);
    }
    let backend = match validate_backend_url("backend", &rec.backend) {
        Ok(u) => Some(u),
        Err(e) => {
            p.field(e);
            None
        }
    };
    let mut methods = Vec::with_capacity(rec.methods.len());
    for (i, m) in rec.methods.iter().enumerate() {
        match validate_method(&format!("methods[{i}]"), m) {
            Ok(m) if !methods.contains(&m) => methods.push(m),
            Ok(_) => {}
            Err(e) => p.field(e),
        }
    }
    let timeout_ms = validate_timeout_ms("timeout_ms", rec.timeout_ms)
        .map_err(|e| p.field(e))
        .unwrap_or_default();
    if rec.cors_origins.len() > MAX_CORS_ORIGINS {
        p.add(
            "cors_origins",
            format!("at most {MAX_CORS_ORIGINS} origins are allowed"),
        );
    }
    for (i, o) in rec.cors_origins.iter().enumerate() {
        if let Err(e) = check_origin(&format!("cors_origins[{i}]"), o) {
            p.field(e);
        }
    }
    if let Err(e) = validate_rate_limit_per_minute("rpm", rec.rpm) {
        p.field(e);
    }
    let auth = AuthKind::parse(&rec.auth.kind);
    if auth.is_none() {
        p.add("auth.type", "must be one of none, bearer, api_key, basic");
    }
    let credential = auth.and_then(|kind| credential(rec, kind, key, p));
    if p.out.len() != before {
        return None;
    }
    let backend_url = backend?;
    let auth = auth?;
    let base_path = backend_url.path().trim_end_matches('/').to_owned();
    let origin = backend_url[..url::Position::BeforePath].to_owned();
    let canonical_base = crate::path::is_canonical_path(&base_path);
    let allow = if methods.is_empty() {
        METHODS.join(", ")
    } else {
        methods.join(", ")
    };
    Some(Route {
        id: rec.id.clone(),
        name: rec.name.clone(),
        team: rec.team.clone(),
        prefix: rec.prefix.clone(),
        backend: backend_url.as_str().to_owned(),
        tags: rec.tags.clone(),
        methods,
        strip: rec.strip,
        timeout_ms,
        rpm: rec.rpm,
        allowed_teams: rec.allowed_teams.clone(),
        cors_origins: rec.cors_origins.clone(),
        auth,
        allow,
        backend_url,
        base_path,
        origin,
        canonical_base,
        credential,
    })
}

/// Opens the route's sealed secret and builds the header it is sent in.
fn credential(
    rec: &RouteRecord,
    kind: AuthKind,
    key: &EdgeKey,
    p: &mut Problems<'_>,
) -> Option<(String, String)> {
    let Some(slot) = kind.slot() else {
        if !rec.auth.sealed.is_empty() {
            p.add("auth.sealed", "must be empty when the type is none");
        }
        return None;
    };
    let header = match kind {
        AuthKind::ApiKey => match validate_header_name("auth.header", &rec.auth.header) {
            Ok(()) => Some(rec.auth.header.to_ascii_lowercase()),
            Err(e) => {
                p.field(e);
                None
            }
        },
        _ => Some("authorization".to_owned()),
    };
    if kind == AuthKind::Basic {
        let u = &rec.auth.username;
        if u.is_empty() || u.contains(':') || !u.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            p.add(
                "auth.username",
                "must be 1 or more visible characters without ':'",
            );
        }
    }
    if rec.auth.sealed.is_empty() {
        p.add("auth.sealed", "is required for this auth type");
        return None;
    }
    let aad = keygate_contracts::seal::aad(&rec.id, slot);
    let secret = match key.0.open(&aad, &rec.auth.sealed) {
        Ok(s) => s,
        Err(_) => {
            p.add(
                "auth.sealed",
                format!(
                    "does not open with edge key {} for {aad} (sealed for another key, route or slot, or damaged)",
                    key.id()
                ),
            );
            return None;
        }
    };
    let secret = secret.expose();
    let valid = match kind {
        // A Basic password is base64-encoded, so any printable text is fine.
        AuthKind::Basic => !secret.is_empty() && !secret.chars().any(char::is_control),
        _ => is_header_value(secret),
    };
    if !valid {
        p.add(
            "auth.sealed",
            "the opened secret is not a valid header value (empty, control characters or non-ASCII)",
        );
        return None;
    }
    let value = match kind {
        AuthKind::Bearer => format!("Bearer {secret}"),
        AuthKind::ApiKey => secret.to_owned(),
        AuthKind::Basic => {
            use base64::Engine;
            let pair = format!("{}:{secret}", rec.auth.username);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        }
        AuthKind::None => return None,
    };
    Some((header?, value))
}

/// The contract's origin rule, and the stored value must already be the normalised origin
/// (what browsers send in `Origin`), since the gateway compares exactly.
fn check_origin(field: &str, v: &str) -> Result<(), FieldError> {
    let normal = validate_cors_origin(field, v)?;
    if normal != v {
        return Err(FieldError::new(
            field,
            "must be the normalised origin (lowercase, no default port, no trailing \"/\")",
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use keygate_kv_record::BackendAuth;

    /// A valid route record without credential (other modules' tests build on it).
    pub(crate) fn record(id: &str, prefix: &str) -> RouteRecord {
        RouteRecord {
            id: id.into(),
            name: id.replace('_', "-"),
            team: "team-a".into(),
            prefix: prefix.into(),
            backend: "http://svc.internal:8080/base".into(),
            tags: vec![],
            methods: vec![],
            strip: true,
            timeout_ms: 1000,
            auth: BackendAuth {
                kind: "none".into(),
                header: String::new(),
                username: String::new(),
                sealed: String::new(),
            },
            allowed_teams: vec![],
            cors_origins: vec![],
            rpm: 0,
        }
    }

    fn table(routes: Vec<RouteRecord>) -> RouteTable {
        RouteTable { v: 1, routes }
    }

    fn key() -> EdgeKey {
        EdgeKey::from_bytes(&[3; 32])
    }

    #[test]
    fn lookup_equals_a_linear_longest_prefix_scan() {
        let prefixes = [
            "/", "/api", "/api/x", "/api/x/y", "/api/xy", "/b.c", "/a/b/c/d",
        ];
        let recs = prefixes
            .iter()
            .enumerate()
            .map(|(i, p)| record(&format!("r{i}"), p))
            .collect();
        let routes = Routes::compile(&table(recs), &key()).unwrap();
        let paths = [
            "/",
            "/api",
            "/api/",
            "/api/x",
            "/api/x/",
            "/api/xy",
            "/api/xyz",
            "/api/x/y",
            "/api/x/yz",
            "/api/x/y/z",
            "/apix",
            "/b.c/d",
            "/b.cd",
            "/a/b/c",
            "/a/b/c/d/e",
            "/api/x@evil.com/y",
            "/api/x.evil.com",
        ];
        for path in paths {
            let linear = routes
                .iter()
                .filter(|r| rules::prefix_matches(&r.prefix, path))
                .max_by_key(|r| r.prefix.len())
                .map(|r| r.prefix.as_str());
            assert_eq!(
                routes.lookup(path).map(|r| r.prefix.as_str()),
                linear,
                "{path}"
            );
        }
        let no_root = Routes::compile(&table(vec![record("a", "/api/x")]), &key()).unwrap();
        assert!(no_root.lookup("/api/xy").is_none());
        assert!(no_root.lookup("/").is_none());
        assert!(no_root.lookup("").is_none());
    }

    #[test]
    fn every_problem_is_reported_without_secrets() {
        let k = key();
        let mut bad = record("rte_bad", "/api/");
        bad.name = "Bad Name".into();
        bad.backend = "ftp://x".into();
        bad.methods = vec!["BREW".into()];
        bad.timeout_ms = 400_000;
        bad.cors_origins = vec!["https://app.example.com/".into()];
        bad.auth.kind = "token".into();
        let mut wrong_aad = record("rte_aad", "/aad");
        wrong_aad.auth.kind = "bearer".into();
        wrong_aad.auth.sealed =
            k.0.seal_with_nonce("rte_other/bearer_token", "sekrit-value", &[1; 12]);
        let mut bad_header = record("rte_hdr", "/hdr");
        bad_header.auth.kind = "api_key".into();
        bad_header.auth.header = "Host".into();
        bad_header.auth.sealed =
            k.0.seal_with_nonce("rte_hdr/api_key", "sekrit-value", &[2; 12]);
        let mut crlf = record("rte_crlf", "/crlf");
        crlf.auth.kind = "bearer".into();
        crlf.auth.sealed =
            k.0.seal_with_nonce("rte_crlf/bearer_token", "x\r\nInjected: 1", &[3; 12]);
        let dup = record("rte_dup", "/aad");
        let problems =
            Routes::compile(&table(vec![bad, wrong_aad, bad_header, crlf, dup]), &k).unwrap_err();
        let got: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.route.as_str(), p.field.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("rte_bad", "name"),
                ("rte_bad", "prefix"),
                ("rte_bad", "backend"),
                ("rte_bad", "methods[0]"),
                ("rte_bad", "timeout_ms"),
                ("rte_bad", "cors_origins[0]"),
                ("rte_bad", "auth.type"),
                ("rte_aad", "auth.sealed"),
                ("rte_hdr", "auth.header"),
                ("rte_crlf", "auth.sealed"),
                ("rte_dup", "prefix"),
            ]
        );
        for p in &problems {
            assert!(!p.to_string().contains("sekrit"), "{p}");
            assert!(!p.to_string().contains("Injected"), "{p}");
        }
    }

    #[test]
    fn credentials_are_built_and_redacted() {
        let k = key();
        let mut basic = record("rte_basic", "/basic");
        basic.auth.kind = "basic".into();
        basic.auth.username = "svc".into();
        basic.auth.sealed =
            k.0.seal_with_nonce("rte_basic/basic_password", "p@ss:w", &[4; 12]);
        let mut api = record("rte_api", "/api");
        api.auth.kind = "api_key".into();
        api.auth.header = "X-Backend-Key".into();
        api.auth.sealed = k.0.seal_with_nonce("rte_api/api_key", "k123", &[5; 12]);
        let routes = Routes::compile(&table(vec![basic, api]), &k).unwrap();
        let b = routes.by_name("rte-basic").unwrap();
        // base64("svc:p@ss:w")
        assert_eq!(
            b.credential.as_ref().unwrap(),
            &(
                "authorization".to_owned(),
                "Basic c3ZjOnBAc3M6dw==".to_owned()
            )
        );
        let a = routes.by_name("rte-api").unwrap();
        assert_eq!(a.credential_header(), Some("x-backend-key"));
        assert!(!format!("{a:?}").contains("k123"));
        assert!(!format!("{routes:?}").contains("k123"));
        assert_eq!(a.allow_header(), METHODS.join(", "));
        assert_eq!(a.base_path, "/base");
    }

    #[test]
    fn origins() {
        for ok in [
            "*",
            "https://app.example.com",
            "http://localhost:5173",
            "https://[::1]:8443",
        ] {
            assert!(check_origin("o", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "null",
            "https://app.example.com/",
            "https://App.example.com",
            "https://app.example.com:443",
            "https://user@app.example.com",
            "ftp://x.com",
            "app.example.com",
        ] {
            assert!(check_origin("o", bad).is_err(), "{bad}");
        }
    }
}
