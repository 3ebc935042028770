//! The runner of the shared JSON test vectors (`gateway/core/vectors/*.json`, format in
//! `gateway/core/vectors/README.md`). Both front ends run the same files: the native host
//! through `tests/vectors.rs`, the Worker by handing each file's text to [`run`] (or by
//! driving its own HTTP stack with the parsed [`VectorFile`]).
//!
//! Strict on purpose: an unknown field anywhere (also inside the fixture's KV records) is an
//! error, and every expected field must be present (`null` where nothing is expected), so a
//! typo cannot silently skip a check.

use crate::decide::{Config, Decision, Incoming, TokenSource, decide_with};
use crate::headers::{AnswerHeaders, Client, connection_named, forward_headers};
use crate::rate::{RateState, gcra, ratelimit_headers};
use crate::redirect::rewrite_location;
use crate::routes::{EdgeKey, Routes};
use crate::tokens::{EdgeToken, Interner, TokenHash, TokenTable};
use keygate_kv_record::{BackendAuth, RouteRecord, RouteTable, TokenRecord};
use serde::{Deserialize, Deserializer, Serialize};
use std::cell::Cell;
use std::collections::HashMap;

/// A field that must be present but may be `null`.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    Option::deserialize(d)
}

/// One vector file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorFile {
    pub description: String,
    /// Needed by `compile`, `decide`, `headers` and `redirects` cases.
    #[serde(default)]
    pub fixture: Option<Fixture>,
    #[serde(default)]
    pub compile: Vec<CompileCase>,
    #[serde(default)]
    pub decide: Vec<DecideCase>,
    #[serde(default)]
    pub headers: Vec<HeaderCase>,
    #[serde(default)]
    pub redirects: Vec<RedirectCase>,
    #[serde(default)]
    pub answers: Vec<AnswerCase>,
    #[serde(default)]
    pub gcra: Vec<GcraCase>,
}

/// The routes, tokens and key a file's cases run against.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// Base64 of the 32-byte edge key the fixture's secrets are sealed to.
    pub edge_key: String,
    /// [`Config::legacy_prefixes`].
    pub legacy_prefixes: Vec<String>,
    /// The clock of every case that does not set its own.
    pub now_ms: i64,
    /// The `v1/routes` record, exactly as in KV.
    pub routes: serde_json::Value,
    /// Tokens as plaintext keys (hosts hash them) with their `v1/token/<hash>` records.
    pub tokens: Vec<FixtureToken>,
    /// Plaintext backend secrets: must never appear in a problem, a reject or a `Debug`.
    pub secrets: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureToken {
    pub key: String,
    pub record: serde_json::Value,
}

/// A route table that must compile, or fail with exactly these problems.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompileCase {
    pub name: String,
    pub routes: serde_json::Value,
    pub expect: CompileExpect,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum CompileExpect {
    /// Compiles, with this many routes.
    Ok { routes: usize },
    /// Refused with exactly these problems, in order.
    Problems(Vec<ProblemExpect>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProblemExpect {
    pub route: String,
    pub field: String,
}

/// Request parts. Absent header lists are empty, absent options are `None`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub api_key: Vec<String>,
    #[serde(default)]
    pub authorization: Vec<String>,
    #[serde(default)]
    pub origin: Option<String>,
    #[serde(default)]
    pub preflight_method: Option<String>,
}

impl Request {
    /// Runs `f` with the request as [`Incoming`] (which borrows slices of slices).
    pub fn with_incoming<R>(&self, f: impl FnOnce(&Incoming<'_>) -> R) -> R {
        let api_key: Vec<&[u8]> = self.api_key.iter().map(|s| s.as_bytes()).collect();
        let authorization: Vec<&[u8]> = self.authorization.iter().map(|s| s.as_bytes()).collect();
        let incoming = Incoming {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            api_key: &api_key,
            authorization: &authorization,
            origin: self.origin.as_deref().map(str::as_bytes),
            preflight_method: self.preflight_method.as_deref().map(str::as_bytes),
        };
        f(&incoming)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideCase {
    pub name: String,
    /// Overrides the fixture's `now_ms`.
    #[serde(default)]
    pub now_ms: Option<i64>,
    pub request: Request,
    pub expect: DecideExpect,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum DecideExpect {
    Forward(ExpectForward),
    Reject(ExpectReject),
    Preflight(ExpectPreflight),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectForward {
    /// Route name.
    pub route: String,
    pub url: String,
    pub token_id: String,
    pub team: String,
    pub token_rpm: u32,
    #[serde(deserialize_with = "nullable")]
    pub credential: Option<(String, String)>,
    #[serde(deserialize_with = "nullable")]
    pub cors_origin: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectReject {
    pub status: u16,
    pub error: String,
    #[serde(deserialize_with = "nullable")]
    pub route: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub allow: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub cors_origin: Option<String>,
    /// Token-store lookups the decision made: 0 proves it was decided from headers alone.
    /// A reject carries the key's hash exactly when a lookup happened.
    pub lookups: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectPreflight {
    pub status: u16,
    pub route: String,
    pub headers: Vec<(String, String)>,
}

/// `forward_headers` for a request that must be forwarded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderCase {
    pub name: String,
    pub request: Request,
    pub client: ClientSpec,
    pub request_id: String,
    /// Every incoming header in order, `[name, value]`.
    pub incoming: Vec<(String, String)>,
    /// Exactly the headers sent to the backend, in order.
    pub expect: Vec<(String, String)>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    pub ip: String,
    pub proto: String,
    pub host: String,
}

/// `rewrite_location` on the fixture route named `route`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectCase {
    pub name: String,
    pub route: String,
    pub public_base: String,
    pub location: String,
    /// The rewritten value, or `null` to leave the header alone.
    #[serde(deserialize_with = "nullable")]
    pub expect: Option<String>,
}

/// [`AnswerHeaders`]: which of the backend's response headers reach the caller, then the
/// gateway's own. No fixture needed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerCase {
    pub name: String,
    pub request_id: String,
    /// `x-keygate-revision`, or `null` before any configuration.
    #[serde(deserialize_with = "nullable")]
    pub revision: Option<String>,
    /// Rate-limit (or other) headers the gateway adds, `[name, value]`.
    pub extra: Vec<(String, String)>,
    /// The CORS origin allowed for this answer, or `null`.
    #[serde(deserialize_with = "nullable")]
    pub cors_origin: Option<String>,
    /// A 101 answer to an upgrade.
    pub upgrade: bool,
    /// The backend's response headers, in order.
    pub backend: Vec<(String, String)>,
    /// Exactly the caller's headers, names lower-case: the backend's that pass, in order, then
    /// the gateway's.
    pub expect: Vec<(String, String)>,
}

/// A sequence of `gcra` calls on one fresh state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcraCase {
    pub name: String,
    pub per_minute: u32,
    pub burst: u32,
    pub steps: Vec<GcraStep>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcraStep {
    pub now_ms: i64,
    pub expect: GcraExpect,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcraExpect {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    pub reset_secs: u64,
    pub retry_after_secs: u64,
    pub headers: Vec<(String, String)>,
}

/// What a file held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub compile: usize,
    pub decide: usize,
    pub headers: usize,
    pub redirects: usize,
    pub answers: usize,
    pub gcra: usize,
}

impl Summary {
    pub fn cases(&self) -> usize {
        self.compile + self.decide + self.headers + self.redirects + self.answers + self.gcra
    }
}

/// A fixture ready to decide with.
pub struct Loaded {
    pub key: EdgeKey,
    pub routes: Routes,
    /// The fixture's tokens as the decision reads them.
    pub tokens: TokenTable,
    /// The same tokens' records, by hash (for checks on what a reject may show).
    pub records: HashMap<TokenHash, TokenRecord>,
    pub config: Config,
    pub now_ms: i64,
    pub secrets: Vec<String>,
}

/// Parses a vector file.
pub fn parse(json: &str) -> Result<VectorFile, String> {
    serde_json::from_str(json).map_err(|e| format!("not a valid vector file: {e}"))
}

/// The JSON keys a fully populated value of `T` serialises: the record's known fields.
fn keys_of<T: Serialize>(full: &T) -> Vec<String> {
    match serde_json::to_value(full) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

fn check_keys(v: &serde_json::Value, known: &[String], at: &str) -> Result<(), String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("{at}: must be an object"))?;
    match obj.keys().find(|k| !known.contains(k)) {
        Some(k) => Err(format!("{at}: unknown field {k:?}")),
        None => Ok(()),
    }
}

/// Decodes a route table strictly: unknown fields in the table, a route or its auth fail.
pub fn route_table(v: &serde_json::Value) -> Result<RouteTable, String> {
    let auth = BackendAuth {
        kind: "basic".into(),
        header: "h".into(),
        username: "u".into(),
        sealed: "s".into(),
    };
    let route = RouteRecord {
        id: "i".into(),
        name: "n".into(),
        team: "t".into(),
        prefix: "/p".into(),
        backend: "http://b".into(),
        tags: vec!["t".into()],
        methods: vec!["GET".into()],
        strip: true,
        timeout_ms: 1,
        auth: auth.clone(),
        allowed_teams: vec!["t".into()],
        cors_origins: vec!["*".into()],
        rpm: 1,
    };
    let table = RouteTable {
        v: 1,
        routes: vec![route.clone()],
    };
    check_keys(v, &keys_of(&table), "routes")?;
    let routes = v["routes"]
        .as_array()
        .ok_or("routes.routes: must be an array")?;
    for (i, r) in routes.iter().enumerate() {
        check_keys(r, &keys_of(&route), &format!("routes.routes[{i}]"))?;
        check_keys(
            &r["auth"],
            &keys_of(&auth),
            &format!("routes.routes[{i}].auth"),
        )?;
    }
    serde_json::from_value(v.clone()).map_err(|e| format!("routes: {e}"))
}

/// Decodes a token record strictly.
pub fn token_record(v: &serde_json::Value, at: &str) -> Result<TokenRecord, String> {
    let full = TokenRecord {
        v: 1,
        id: "i".into(),
        team: "t".into(),
        scopes: vec!["*".into()],
        exp: Some(1),
        rpm: 1,
    };
    check_keys(v, &keys_of(&full), at)?;
    serde_json::from_value(v.clone()).map_err(|e| format!("{at}: {e}"))
}

/// Loads a fixture: decodes the key, compiles the routes, hashes the tokens.
pub fn load(f: &Fixture) -> Result<Loaded, String> {
    let key = EdgeKey::from_base64(&f.edge_key).map_err(|e| format!("fixture.edge_key: {e}"))?;
    let table = route_table(&f.routes)?;
    let routes = Routes::compile(&table, &key).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        format!("fixture.routes does not compile: {}", list.join("; "))
    })?;
    let mut records = HashMap::new();
    for (i, t) in f.tokens.iter().enumerate() {
        let record = token_record(&t.record, &format!("fixture.tokens[{i}].record"))?;
        if records.insert(TokenHash::of(&t.key), record).is_some() {
            return Err(format!("fixture.tokens[{i}]: duplicate key"));
        }
    }
    let mut interner = Interner::default();
    let tokens = TokenTable::from_tokens(records.iter().map(|(h, r)| (*h, interner.token(r))));
    Ok(Loaded {
        key,
        routes,
        tokens,
        records,
        config: Config {
            legacy_prefixes: f.legacy_prefixes.clone(),
        },
        now_ms: f.now_ms,
        secrets: f.secrets.clone(),
    })
}

/// A token source that counts lookups.
struct Counting<'a> {
    inner: &'a TokenTable,
    lookups: Cell<u32>,
}

impl TokenSource for Counting<'_> {
    fn token(&self, hash: &TokenHash) -> Option<&EdgeToken> {
        self.lookups.set(self.lookups.get() + 1);
        self.inner.get(hash)
    }
}

/// Runs every case of one file. `Ok` with what ran, or every failure (one line each).
pub fn run(json: &str) -> Result<Summary, Vec<String>> {
    let file = parse(json).map_err(|e| vec![e])?;
    let mut failures = Vec::new();
    let summary = Summary {
        compile: file.compile.len(),
        decide: file.decide.len(),
        headers: file.headers.len(),
        redirects: file.redirects.len(),
        answers: file.answers.len(),
        gcra: file.gcra.len(),
    };
    if summary.cases() == 0 {
        return Err(vec!["the file has no cases".into()]);
    }
    let mut names = std::collections::HashSet::new();
    let all_names = file
        .compile
        .iter()
        .map(|c| &c.name)
        .chain(file.decide.iter().map(|c| &c.name))
        .chain(file.headers.iter().map(|c| &c.name))
        .chain(file.redirects.iter().map(|c| &c.name))
        .chain(file.answers.iter().map(|c| &c.name))
        .chain(file.gcra.iter().map(|c| &c.name));
    for n in all_names {
        if !names.insert(n) {
            failures.push(format!("{n}: duplicate case name"));
        }
    }
    let needs_fixture = summary.compile + summary.decide + summary.headers + summary.redirects;
    let loaded = match (&file.fixture, needs_fixture) {
        (Some(f), _) => match load(f) {
            Ok(l) => Some(l),
            Err(e) => return Err(vec![e]),
        },
        (None, 0) => None,
        (None, _) => return Err(vec!["cases need a fixture but the file has none".into()]),
    };
    if let Some(l) = &loaded {
        for c in &file.compile {
            run_compile(c, l, &mut failures);
        }
        for c in &file.decide {
            run_decide(c, l, &mut failures);
        }
        for c in &file.headers {
            run_headers(c, l, &mut failures);
        }
        for c in &file.redirects {
            run_redirect(c, l, &mut failures);
        }
    }
    for c in &file.answers {
        run_answer(c, &mut failures);
    }
    for c in &file.gcra {
        run_gcra(c, &mut failures);
    }
    if failures.is_empty() {
        Ok(summary)
    } else {
        Err(failures)
    }
}

fn leaks(text: &str, l: &Loaded) -> Option<String> {
    l.secrets
        .iter()
        .find(|s| !s.is_empty() && text.contains(s.as_str()))
        .cloned()
}

fn run_compile(c: &CompileCase, l: &Loaded, failures: &mut Vec<String>) {
    let fail = |failures: &mut Vec<String>, m: String| failures.push(format!("{}: {m}", c.name));
    let table = match route_table(&c.routes) {
        Ok(t) => t,
        Err(e) => return fail(failures, e),
    };
    match (Routes::compile(&table, &l.key), &c.expect) {
        (Ok(r), CompileExpect::Ok { routes }) if r.len() == *routes => {
            if let Some(s) = leaks(&format!("{r:?}"), l) {
                fail(failures, format!("Debug of the routes shows secret {s:?}"));
            }
        }
        (Ok(r), want) => fail(
            failures,
            format!("compiled {} routes, want {want:?}", r.len()),
        ),
        (Err(problems), CompileExpect::Problems(want)) => {
            let got: Vec<(&str, &str)> = problems
                .iter()
                .map(|p| (p.route.as_str(), p.field.as_str()))
                .collect();
            let want: Vec<(&str, &str)> = want
                .iter()
                .map(|p| (p.route.as_str(), p.field.as_str()))
                .collect();
            if got != want {
                fail(failures, format!("problems {got:?}, want {want:?}"));
            }
            for p in &problems {
                if let Some(s) = leaks(&p.to_string(), l) {
                    fail(failures, format!("problem {p} shows secret {s:?}"));
                }
            }
        }
        (Err(problems), want) => {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            fail(
                failures,
                format!("refused ({}), want {want:?}", list.join("; ")),
            );
        }
    }
}

fn run_decide(c: &DecideCase, l: &Loaded, failures: &mut Vec<String>) {
    let mut fail = |m: String| failures.push(format!("{}: {m}", c.name));
    let tokens = Counting {
        inner: &l.tokens,
        lookups: Cell::new(0),
    };
    let now = c.now_ms.unwrap_or(l.now_ms);
    c.request.with_incoming(|req| {
        let decision = decide_with(req, &l.routes, &tokens, now, &l.config);
        if let Some(s) = leaks(&format!("{decision:?}"), l) {
            fail(format!("Debug of the decision shows secret {s:?}"));
        }
        match (&decision, &c.expect) {
            (Decision::Forward(f), DecideExpect::Forward(w)) => {
                let credential = f.credential().map(|(h, v)| (h.to_owned(), v.to_owned()));
                let got = (
                    f.route.name.as_str(),
                    f.url.as_str(),
                    &*f.token.id,
                    &*f.token.team,
                    f.token.rpm,
                    &credential,
                    &f.cors_origin,
                );
                let want = (
                    w.route.as_str(),
                    w.url.as_str(),
                    w.token_id.as_str(),
                    w.team.as_str(),
                    w.token_rpm,
                    &w.credential,
                    &w.cors_origin,
                );
                if got != want {
                    fail(format!("forward {got:?}, want {want:?}"));
                }
                if l.records.get(&f.token_hash).map(|t| t.id.as_str()) != Some(&*f.token.id) {
                    fail("token_hash is not the presented key's".into());
                }
            }
            (Decision::Reject(r), DecideExpect::Reject(w)) => {
                let got = (r.status, r.error, &r.route, &r.allow, &r.cors_origin);
                let want = (
                    w.status,
                    w.error.as_str(),
                    &w.route,
                    &w.allow,
                    &w.cors_origin,
                );
                if got != want {
                    fail(format!("reject {got:?} ({}), want {want:?}", r.message));
                }
                if tokens.lookups.get() != w.lookups {
                    fail(format!(
                        "{} lookups, want {}",
                        tokens.lookups.get(),
                        w.lookups
                    ));
                }
                if r.token_hash.is_some() != (w.lookups > 0) {
                    fail(format!(
                        "token_hash {:?} with {} lookups",
                        r.token_hash, w.lookups
                    ));
                }
                for k in c.request.api_key.iter().chain(&c.request.authorization) {
                    if k.len() > 8 && r.message.contains(k.trim_start_matches("Bearer ")) {
                        fail("the message shows the presented key".into());
                    }
                }
                if let Some(t) = r.token_hash.as_ref().and_then(|h| l.records.get(h)) {
                    for s in t.scopes.iter().filter(|s| s.len() > 1) {
                        if r.message.contains(s.as_str()) {
                            fail(format!("the message lists the token's scope {s:?}"));
                        }
                    }
                }
                if crate::GatewayError::from_code(r.error).map(|e| e.status()) != Some(r.status) {
                    fail("status does not match the error table".into());
                }
            }
            (Decision::Preflight(p), DecideExpect::Preflight(w)) => {
                let got = (p.status, p.route.as_str(), &p.headers);
                let want = (w.status, w.route.as_str(), &w.headers);
                if got != want {
                    fail(format!("preflight {got:?}, want {want:?}"));
                }
                if tokens.lookups.get() != 0 {
                    fail("a preflight looked a token up".into());
                }
            }
            (got, want) => fail(format!("decided {got:?}, want {want:?}")),
        }
    });
}

fn run_headers(c: &HeaderCase, l: &Loaded, failures: &mut Vec<String>) {
    let mut fail = |m: String| failures.push(format!("{}: {m}", c.name));
    c.request.with_incoming(|req| {
        let decision = decide_with(req, &l.routes, &l.tokens, l.now_ms, &l.config);
        let Decision::Forward(fwd) = decision else {
            return fail(format!("the request is not forwarded: {decision:?}"));
        };
        let client = Client {
            ip: &c.client.ip,
            proto: &c.client.proto,
            host: &c.client.host,
        };
        let incoming = c.incoming.iter().map(|(n, v)| (n.as_str(), v.as_bytes()));
        let got: Vec<(String, String)> = forward_headers(incoming, &fwd, &client, &c.request_id)
            .into_iter()
            .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        if got != c.expect {
            fail(format!("headers {got:?}, want {:?}", c.expect));
        }
    });
}

fn run_redirect(c: &RedirectCase, l: &Loaded, failures: &mut Vec<String>) {
    let Some(route) = l.routes.by_name(&c.route) else {
        return failures.push(format!("{}: no fixture route {:?}", c.name, c.route));
    };
    let got = rewrite_location(&c.location, route, &c.public_base);
    if got != c.expect {
        failures.push(format!(
            "{}: rewrote to {got:?}, want {:?}",
            c.name, c.expect
        ));
    }
}

fn run_answer(c: &AnswerCase, failures: &mut Vec<String>) {
    let extra: Vec<(&str, String)> = c
        .extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let answer = AnswerHeaders {
        request_id: &c.request_id,
        revision: c.revision.as_deref().map(str::as_bytes),
        extra: &extra,
        cors_origin: c.cors_origin.as_deref(),
    };
    let named = if c.upgrade {
        Vec::new()
    } else {
        connection_named(
            c.backend
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
                .map(|(_, v)| v.as_bytes()),
        )
    };
    let mut got: Vec<(String, Vec<u8>)> = c
        .backend
        .iter()
        .filter(|(n, _)| answer.passes(n, &named, c.upgrade))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    answer.put(&mut got);
    let got: Vec<(String, String)> = got
        .into_iter()
        .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    if got != c.expect {
        failures.push(format!("{}: headers {got:?}, want {:?}", c.name, c.expect));
    }
}

fn run_gcra(c: &GcraCase, failures: &mut Vec<String>) {
    let mut state = RateState::default();
    for (i, step) in c.steps.iter().enumerate() {
        let d = gcra(&mut state, c.per_minute, c.burst, step.now_ms);
        let w = &step.expect;
        let got = (
            d.allowed,
            d.limit,
            d.remaining,
            d.reset_secs,
            d.retry_after_secs,
        );
        let want = (
            w.allowed,
            w.limit,
            w.remaining,
            w.reset_secs,
            w.retry_after_secs,
        );
        if got != want {
            failures.push(format!("{} step {i}: {got:?}, want {want:?}", c.name));
        }
        let headers: Vec<(String, String)> = ratelimit_headers(&d)
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v))
            .collect();
        if headers != w.headers {
            failures.push(format!(
                "{} step {i}: headers {headers:?}, want {:?}",
                c.name, w.headers
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictness() {
        // Unknown top-level field.
        assert!(parse(r#"{"description":"x","decid":[]}"#).is_err());
        // A nullable expectation that is missing.
        let missing = r#"{"description":"x","redirects":[{"name":"a","route":"r","public_base":"b","location":"l"}]}"#;
        assert!(parse(missing).is_err(), "missing expect must fail");
        let present = r#"{"description":"x","redirects":[{"name":"a","route":"r","public_base":"b","location":"l","expect":null}]}"#;
        assert!(parse(present).is_ok());
        // Unknown field inside a KV record.
        let v: serde_json::Value = serde_json::from_str(
            r#"{"v":1,"routes":[{"id":"a","name":"a","team":"t","prefix":"/a","backend":"http://b","timeout_ms":1,"auth":{"type":"none"},"cors_origin":["*"]}]}"#,
        )
        .unwrap();
        assert!(route_table(&v).unwrap_err().contains("cors_origin"));
        let v: serde_json::Value =
            serde_json::from_str(r#"{"v":1,"id":"a","team":"t","scopes":[],"expires":1}"#).unwrap();
        assert!(token_record(&v, "t").unwrap_err().contains("expires"));
        assert_eq!(run(r#"{"description":"empty"}"#).unwrap_err().len(), 1);
    }
}
