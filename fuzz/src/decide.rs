//! `decide_invariants`: arbitrary request parts (method, path, query, `X-API-Key`,
//! `Authorization`, `Origin`, `Access-Control-Request-Method`, other headers) against the
//! vectors' two fixtures (decide.json: six routes, http and https backends with base paths;
//! root.json: a `/` route and a legacy prefix) or a route table built from the input (auth
//! none, arbitrary prefixes, backends, strip and methods; fixture keys as tokens with
//! arbitrary scopes and teams).
//!
//! Asserts, for every input:
//! - `decide_with` does not panic;
//! - a forward's URL parses, has the route backend's scheme, host and port, no userinfo or
//!   fragment, and its path is the backend's base path or under it;
//! - the caller's key is never forwarded: no header of `forward_headers` (the core's rule both
//!   front ends apply) carries a presented key, and no field of the forwarded query (split at
//!   `&` and `;`, name or value percent-decoded, also with `+` read as a space as form
//!   decoders do, a value also after `Bearer `) is a well-formed key;
//! - a refusal forwards nothing: a reject is a 4xx of the error table whose message holds no
//!   presented key; a preflight answer is 204 or 403.

use arbitrary::Arbitrary;
use keygate_gateway_core::vectors::Loaded;
use keygate_gateway_core::{
    Client, Config, Decision, Incoming, Interner, Routes, TokenHash, TokenTable, decide_with,
    forward_headers,
};
use keygate_kv_record::{BackendAuth, RouteRecord, RouteTable, TokenRecord};
use percent_encoding::percent_decode_str;

#[derive(Arbitrary, Debug)]
pub struct Input {
    table: Table,
    method: Method,
    path: Path,
    query: Option<Vec<Field>>,
    api_key: Vec<KeyText>,
    authorization: Vec<Auth>,
    origin: Option<Text>,
    preflight_method: Option<Method>,
    headers: Vec<(HeaderName, Text)>,
    now_offset_ms: i32,
}

#[derive(Arbitrary, Debug)]
enum Table {
    Decide,
    Root,
    Built {
        routes: Vec<BuiltRoute>,
        tokens: Vec<BuiltToken>,
    },
}

#[derive(Arbitrary, Debug)]
struct BuiltRoute {
    prefix: Vec<Seg>,
    backend: Backend,
    strip: bool,
    methods: Vec<Method>,
    teams: Vec<u8>,
    cors: bool,
}

#[derive(Arbitrary, Debug)]
enum Backend {
    Known(u8),
    Raw(String),
}

const BACKENDS: &[&str] = &[
    "http://b.internal",
    "http://b.internal/",
    "http://b.internal:8080/base",
    "http://b.internal:8080/base/",
    "https://b.internal/a/b/",
    "http://127.0.0.1:9/",
    "http://[::1]:9000/v1",
    "https://b.internal:443/x",
    "http://b.internal/%2e%2e/",
    "http://b.internal/a;b/",
];

#[derive(Arbitrary, Debug)]
struct BuiltToken {
    key: u8,
    team: u8,
    scopes: Vec<Scope>,
    exp: Option<i32>,
}

#[derive(Arbitrary, Debug)]
enum Scope {
    All,
    Route(u8),
    Tag(u8),
    Raw(String),
}

#[derive(Arbitrary, Debug, Clone)]
enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Patch,
    Raw(String),
}

impl Method {
    fn text(&self) -> String {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
            Self::Options => "OPTIONS",
            Self::Patch => "PATCH",
            Self::Raw(s) => s,
        }
        .to_owned()
    }
}

/// A path segment: the interesting ones by name, or any text.
#[derive(Arbitrary, Debug)]
enum Seg {
    Empty,
    Dot,
    DotDot,
    EncDot,
    EncSlash,
    EncBackslash,
    Api,
    X,
    Admin,
    Web,
    Open,
    Billing,
    V1,
    At,
    Colon,
    Semi,
    Key(KeyText),
    Raw(String),
}

impl Seg {
    fn text(&self) -> String {
        match self {
            Self::Empty => "",
            Self::Dot => ".",
            Self::DotDot => "..",
            Self::EncDot => "%2e",
            Self::EncSlash => "%2F",
            Self::EncBackslash => "%5c",
            Self::Api => "api",
            Self::X => "x",
            Self::Admin => "admin",
            Self::Web => "web",
            Self::Open => "open",
            Self::Billing => "billing",
            Self::V1 => "v1",
            Self::At => "x@evil.example",
            Self::Colon => "http:",
            Self::Semi => "..;",
            Self::Key(k) => return k.text(),
            Self::Raw(s) => s,
        }
        .to_owned()
    }
}

#[derive(Arbitrary, Debug)]
enum Path {
    Segments(Vec<Seg>, bool),
    Raw(String),
}

impl Path {
    fn text(&self) -> String {
        match self {
            Self::Segments(segs, trailing) => {
                let mut p = String::new();
                for s in segs {
                    p.push('/');
                    p.push_str(&s.text());
                }
                if *trailing || p.is_empty() {
                    p.push('/');
                }
                p
            }
            Self::Raw(s) => s.clone(),
        }
    }
}

/// A key as a caller may present it: one of the fixtures' valid keys, one with a character
/// changed (bad checksum), or any text.
#[derive(Arbitrary, Debug)]
enum KeyText {
    Fixture(u8),
    Changed(u8, u8, u8),
    Raw(String),
}

impl KeyText {
    fn text(&self) -> String {
        let keys = crate::fixture_keys();
        match self {
            Self::Fixture(i) => keys[usize::from(*i) % keys.len()].clone(),
            Self::Changed(i, at, c) => {
                let mut k = keys[usize::from(*i) % keys.len()].clone().into_bytes();
                let at = usize::from(*at) % k.len();
                k[at] = b"0aZ_-"[usize::from(*c) % 5];
                String::from_utf8(k).unwrap_or_default()
            }
            Self::Raw(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Auth {
    Bearer(KeyText, u8),
    Basic(Text),
    Raw(Text),
}

impl Auth {
    fn text(&self) -> String {
        match self {
            Self::Bearer(k, form) => {
                let scheme = ["Bearer ", "bearer ", "BEARER\t", "Bearer  "][usize::from(*form) % 4];
                format!("{scheme}{}", k.text())
            }
            Self::Basic(t) => format!("Basic {}", t.0),
            Self::Raw(t) => t.0.clone(),
        }
    }
}

/// A query field, often carrying a key in one of the ways a caller (or an attacker who wants
/// it logged at the backend) might write it.
#[derive(Arbitrary, Debug)]
enum Field {
    Raw(String),
    Value { name: Text, key: KeyText, enc: Enc },
    Name { key: KeyText, value: Text, enc: Enc },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Enc {
    Plain,
    Percent,
    PercentFirst,
    Bearer,
    BearerPlus,
    BearerEncoded,
    Padded,
    PlusPadded,
}

impl Enc {
    fn apply(self, key: &str) -> String {
        let all = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
        match self {
            Self::Plain => key.to_owned(),
            Self::Percent => all(key),
            Self::PercentFirst => {
                let mut c = key.chars();
                let first = c.next().map(|f| all(&f.to_string())).unwrap_or_default();
                format!("{first}{}", c.as_str())
            }
            Self::Bearer => format!("Bearer%20{key}"),
            Self::BearerPlus => format!("Bearer+{key}"),
            Self::BearerEncoded => format!("{}{key}", all("Bearer ")),
            Self::Padded => format!("%20{key}%20"),
            Self::PlusPadded => format!("+{key}+"),
        }
    }
}

impl Field {
    fn text(&self) -> String {
        match self {
            Self::Raw(s) => s.clone(),
            Self::Value { name, key, enc } => format!("{}={}", name.0, enc.apply(&key.text())),
            Self::Name { key, value, enc } => format!("{}={}", enc.apply(&key.text()), value.0),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Text(String);

#[derive(Arbitrary, Debug)]
enum HeaderName {
    Accept,
    Cookie,
    Connection,
    XForwardedFor,
    XBackendKey,
    Authorization,
    XApiKey,
    Host,
    ProxyAuthorization,
    Raw(String),
}

impl HeaderName {
    fn text(&self) -> String {
        match self {
            Self::Accept => "Accept",
            Self::Cookie => "Cookie",
            Self::Connection => "Connection",
            Self::XForwardedFor => "X-Forwarded-For",
            Self::XBackendKey => "X-Backend-Key",
            Self::Authorization => "Authorization",
            Self::XApiKey => "X-API-Key",
            Self::Host => "Host",
            Self::ProxyAuthorization => "Proxy-Authorization",
            Self::Raw(s) => s,
        }
        .to_owned()
    }
}

/// A route table and tokens built from the input (auth none: no sealing needed).
fn built(routes: &[BuiltRoute], tokens: &[BuiltToken]) -> Option<Loaded> {
    const TEAMS: [&str; 3] = ["team-a", "team-b", "team-c"];
    const TAGS: [&str; 2] = ["billing", "public"];
    let records: Vec<RouteRecord> = routes
        .iter()
        .take(6)
        .enumerate()
        .map(|(i, r)| {
            let mut prefix: String = r.prefix.iter().map(|s| format!("/{}", s.text())).collect();
            if prefix.is_empty() {
                prefix.push('/');
            }
            RouteRecord {
                id: format!("rte_{i}"),
                name: format!("r{i}"),
                team: "team-a".into(),
                prefix,
                backend: match &r.backend {
                    Backend::Known(k) => BACKENDS[usize::from(*k) % BACKENDS.len()].to_owned(),
                    Backend::Raw(s) => s.clone(),
                },
                tags: vec![TAGS[i % 2].into()],
                methods: r.methods.iter().take(4).map(Method::text).collect(),
                strip: r.strip,
                timeout_ms: 1000,
                auth: BackendAuth {
                    kind: "none".into(),
                    header: String::new(),
                    username: String::new(),
                    sealed: String::new(),
                },
                allowed_teams: r
                    .teams
                    .iter()
                    .take(2)
                    .map(|t| TEAMS[usize::from(*t) % 3].to_owned())
                    .collect(),
                cors_origins: if r.cors {
                    vec!["https://app.example.com".into()]
                } else {
                    vec![]
                },
                rpm: 0,
            }
        })
        .collect();
    let table = RouteTable {
        v: 1,
        routes: records,
    };
    let key = crate::decide_fixture().key.clone();
    let routes = Routes::compile(&table, &key).ok()?;
    let keys = crate::fixture_keys();
    let mut interner = Interner::default();
    let mut by_hash = std::collections::HashMap::new();
    for t in tokens.iter().take(8) {
        let scopes = t
            .scopes
            .iter()
            .take(4)
            .map(|s| match s {
                Scope::All => "*".to_owned(),
                Scope::Route(i) => format!("r{}", i % 6),
                Scope::Tag(i) => format!("tag:{}", TAGS[usize::from(*i) % 2]),
                Scope::Raw(s) => s.clone(),
            })
            .collect();
        let rec = TokenRecord {
            v: 1,
            id: format!("tok_{}", t.key),
            team: TEAMS[usize::from(t.team) % 3].into(),
            scopes,
            exp: t.exp.map(|d| crate::NOW_MS + i64::from(d)),
            rpm: 0,
        };
        by_hash.insert(TokenHash::of(&keys[usize::from(t.key) % keys.len()]), rec);
    }
    let tokens = TokenTable::from_tokens(by_hash.iter().map(|(h, r)| (*h, interner.token(r))));
    Some(Loaded {
        key,
        routes,
        tokens,
        records: by_hash,
        config: Config {
            legacy_prefixes: vec!["ntk".into()],
        },
        now_ms: crate::NOW_MS,
        secrets: vec![],
    })
}

/// Whether a query part, decoded the ways a backend may decode it, is a well-formed key
/// (or `Bearer <key>`).
fn holds_key(part: &str, config: &Config) -> bool {
    let plus = part.replace('+', " ");
    [part, plus.as_str()].into_iter().any(|p| {
        let Ok(decoded) = percent_decode_str(p).decode_utf8() else {
            return false;
        };
        let d = decoded.trim();
        let after_bearer = d
            .get(..7)
            .filter(|s| s.eq_ignore_ascii_case("bearer ") || s.eq_ignore_ascii_case("bearer\t"))
            .map(|_| d[7..].trim());
        [Some(d), after_bearer]
            .into_iter()
            .flatten()
            .any(|k| keygate_gateway_core::key::key_hash(k.as_bytes(), config).is_ok())
    })
}

/// One input: decide, then check every invariant.
pub fn run(input: &Input) {
    let owned;
    let l: &Loaded = match &input.table {
        Table::Decide => crate::decide_fixture(),
        Table::Root => crate::root_fixture(),
        Table::Built { routes, tokens } => match built(routes, tokens) {
            Some(l) => {
                owned = l;
                &owned
            }
            None => return,
        },
    };
    let method = input.method.text();
    let path = input.path.text();
    let query = input
        .query
        .as_ref()
        .map(|fields| fields.iter().map(Field::text).collect::<Vec<_>>().join("&"));
    let api_key: Vec<String> = input.api_key.iter().take(3).map(KeyText::text).collect();
    let authorization: Vec<String> = input.authorization.iter().take(3).map(Auth::text).collect();
    let origin = input.origin.as_ref().map(|t| t.0.clone());
    let preflight = input.preflight_method.as_ref().map(Method::text);
    let api_key_b: Vec<&[u8]> = api_key.iter().map(|s| s.as_bytes()).collect();
    let auth_b: Vec<&[u8]> = authorization.iter().map(|s| s.as_bytes()).collect();
    let incoming = Incoming {
        method: &method,
        path: &path,
        query: query.as_deref(),
        api_key: &api_key_b,
        authorization: &auth_b,
        origin: origin.as_deref().map(str::as_bytes),
        preflight_method: preflight.as_deref().map(str::as_bytes),
    };
    let now = l.now_ms + i64::from(input.now_offset_ms);
    let decision = decide_with(&incoming, &l.routes, &l.tokens, now, &l.config);

    // The keys this request presents (well-formed or not): none may be forwarded.
    let mut presented: Vec<String> = api_key.iter().map(|k| k.trim().to_owned()).collect();
    presented.extend(authorization.iter().filter_map(|a| {
        let a = a.trim();
        let (scheme, rest) = a.split_once([' ', '\t'])?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| rest.trim().to_owned())
    }));
    // Only keys long enough to be a key: a short text may well be a substring of anything.
    presented.retain(|k| k.len() >= 40);

    match &decision {
        Decision::Forward(fwd) => {
            let url = url::Url::parse(&fwd.url)
                .unwrap_or_else(|e| panic!("forward URL {:?} does not parse: {e}", fwd.url));
            let backend = fwd.route.backend_url();
            assert_eq!(url.scheme(), backend.scheme(), "{}", fwd.url);
            assert_eq!(url.host_str(), backend.host_str(), "{}", fwd.url);
            assert_eq!(
                url.port_or_known_default(),
                backend.port_or_known_default(),
                "{}",
                fwd.url
            );
            assert!(
                url.username().is_empty() && url.password().is_none(),
                "{}",
                fwd.url
            );
            assert!(url.fragment().is_none(), "{}", fwd.url);
            let base = backend.path().trim_end_matches('/');
            let p = url.path();
            assert!(
                p.starts_with(base) && (p.len() == base.len() || p.as_bytes()[base.len()] == b'/'),
                "forwarded path {p:?} leaves the backend's base path {base:?} ({})",
                fwd.url
            );
            if let Some(q) = url.query() {
                for field in q.split(['&', ';']) {
                    let (name, value) = field.split_once('=').unwrap_or((field, ""));
                    for part in [name, value] {
                        assert!(
                            !holds_key(part, &l.config),
                            "a key reaches the backend in the query: {q:?} (from {query:?})"
                        );
                    }
                }
            }
            // The headers the backend gets, from everything the caller sent.
            let mut sent: Vec<(String, Vec<u8>)> = Vec::new();
            for k in &api_key {
                sent.push(("X-API-Key".into(), k.clone().into_bytes()));
            }
            for a in &authorization {
                sent.push(("Authorization".into(), a.clone().into_bytes()));
            }
            for (n, v) in input.headers.iter().take(8) {
                // A header the caller chose freely may hold anything, a key too: it is only
                // the credential headers whose values must not pass.
                if presented.iter().any(|k| v.0.contains(k.as_str())) {
                    continue;
                }
                sent.push((n.text(), v.0.clone().into_bytes()));
            }
            let client = Client {
                ip: "203.0.113.7",
                proto: "http",
                host: "gw.example",
            };
            let out = forward_headers(
                sent.iter().map(|(n, v)| (n.as_str(), v.as_slice())),
                fwd,
                &client,
                "req-1",
            );
            for (name, value) in &out {
                let value = String::from_utf8_lossy(value);
                for k in &presented {
                    assert!(
                        !value.contains(k.as_str()),
                        "the caller's key reaches the backend in {name}"
                    );
                }
                assert!(
                    name != "x-api-key"
                        && !(name == "authorization"
                            && fwd.credential().map(|c| c.0) != Some("authorization")),
                    "the caller's {name} reaches the backend"
                );
            }
        }
        Decision::Reject(r) => {
            assert!(
                matches!(r.status, 400 | 401 | 403 | 404 | 405),
                "reject status {}",
                r.status
            );
            let kind = r.kind().expect("a reject's code is in the table");
            assert_eq!(kind.status(), r.status);
            for k in &presented {
                assert!(!r.message.contains(k.as_str()), "a reject names the key");
            }
        }
        Decision::Preflight(p) => {
            assert!(
                matches!(p.status, 204 | 403),
                "preflight status {}",
                p.status
            );
        }
    }
}
