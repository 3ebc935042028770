//! Shared state behind the handlers: the store, the clock, admission (auth, rate limit,
//! injected failures) and what tests read back (request log, counters, per-key write times).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, Method, header};

use crate::config::{RateLimit, StandInConfig};
use crate::error::ApiError;
use crate::store::Namespace;

/// Which API operation a request addressed (by its route and method).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    ListNamespaces,
    CreateNamespace,
    GetNamespace,
    RenameNamespace,
    DeleteNamespace,
    ListKeys,
    GetValue,
    PutValue,
    DeleteValue,
    GetMetadata,
    /// `PUT …/bulk`
    BulkWrite,
    /// `POST …/bulk/delete`
    BulkDelete,
    /// `DELETE …/bulk` (older form)
    BulkDeleteLegacy,
    /// `POST …/bulk/get`
    BulkGet,
    Unknown,
}

/// Path templates, relative to `/client/v4`; the router and [`Route::of`] both use them.
pub(crate) mod paths {
    pub const NAMESPACES: &str = "/accounts/{account_id}/storage/kv/namespaces";
    pub const NAMESPACE: &str = "/accounts/{account_id}/storage/kv/namespaces/{namespace_id}";
    pub const KEYS: &str = "/accounts/{account_id}/storage/kv/namespaces/{namespace_id}/keys";
    pub const VALUE: &str =
        "/accounts/{account_id}/storage/kv/namespaces/{namespace_id}/values/{*key}";
    pub const METADATA: &str =
        "/accounts/{account_id}/storage/kv/namespaces/{namespace_id}/metadata/{*key}";
    pub const BULK: &str = "/accounts/{account_id}/storage/kv/namespaces/{namespace_id}/bulk";
    pub const BULK_DELETE: &str =
        "/accounts/{account_id}/storage/kv/namespaces/{namespace_id}/bulk/delete";
    pub const BULK_GET: &str =
        "/accounts/{account_id}/storage/kv/namespaces/{namespace_id}/bulk/get";
    pub const ROOT: &str = "/client/v4";
}

impl Route {
    /// `matched` is axum's matched path (with the `/client/v4` root).
    pub(crate) fn of(method: &Method, matched: Option<&str>) -> Route {
        let Some(rel) = matched.and_then(|m| m.strip_prefix(paths::ROOT)) else {
            return Route::Unknown;
        };
        match (rel, method.as_str()) {
            (paths::NAMESPACES, "GET") => Route::ListNamespaces,
            (paths::NAMESPACES, "POST") => Route::CreateNamespace,
            (paths::NAMESPACE, "GET") => Route::GetNamespace,
            (paths::NAMESPACE, "PUT") => Route::RenameNamespace,
            (paths::NAMESPACE, "DELETE") => Route::DeleteNamespace,
            (paths::KEYS, "GET") => Route::ListKeys,
            (paths::VALUE, "GET") => Route::GetValue,
            (paths::VALUE, "PUT") => Route::PutValue,
            (paths::VALUE, "DELETE") => Route::DeleteValue,
            (paths::METADATA, "GET") => Route::GetMetadata,
            (paths::BULK, "PUT") => Route::BulkWrite,
            (paths::BULK, "DELETE") => Route::BulkDeleteLegacy,
            (paths::BULK_DELETE, "POST") => Route::BulkDelete,
            (paths::BULK_GET, "POST") => Route::BulkGet,
            _ => Route::Unknown,
        }
    }

    /// Whether the route writes keys (counts toward the one-write-per-second rule).
    pub fn writes(self) -> bool {
        matches!(
            self,
            Route::PutValue
                | Route::DeleteValue
                | Route::BulkWrite
                | Route::BulkDelete
                | Route::BulkDeleteLegacy
        )
    }
}

/// One request as the stand-in answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLog {
    pub method: String,
    /// Raw (still percent-encoded) path.
    pub path: String,
    pub route: Route,
    pub status: u16,
    /// Items in a bulk request body, keys in a list page or bulk get, 1 for single-key calls.
    pub items: usize,
    /// When the request arrived.
    pub at: Instant,
}

/// Response extension: how many items the handler processed (for the log).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Items(pub usize);

/// Request extension: when the request arrived.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReceivedAt(pub Instant);

#[derive(Debug, Clone, Copy)]
struct Fault {
    status: u16,
    retry_after_secs: Option<u64>,
    non_json: bool,
}

pub(crate) struct Inner {
    pub namespaces: BTreeMap<String, Namespace>,
    clock: Option<u64>,
    pub visibility_delay: Duration,
    rate_limit: Option<RateLimit>,
    faults: VecDeque<Fault>,
    /// Key -> how many more bulk calls report it unsuccessful.
    pub fail_keys: HashMap<String, usize>,
    pub empty_list_pages: usize,
    pub cursor_generation: u64,
    log: Vec<RequestLog>,
    counters: BTreeMap<Route, u64>,
    rate_windows: HashMap<String, VecDeque<Instant>>,
    rate_limited: u64,
    /// (namespace, key) -> arrival times of the requests that wrote it.
    write_times: HashMap<(String, String), Vec<Instant>>,
}

impl Inner {
    /// Unix seconds: the test clock if set, else the system clock.
    pub fn now_unix(&self) -> u64 {
        self.clock.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
    }

    /// Whether this bulk call must report `key` unsuccessful (and consume one failure).
    pub fn take_failure(fail_keys: &mut HashMap<String, usize>, key: &str) -> bool {
        match fail_keys.get_mut(key) {
            Some(left) => {
                *left -= 1;
                if *left == 0 {
                    fail_keys.remove(key);
                }
                true
            }
            None => false,
        }
    }

    pub fn record_writes<'a>(
        &mut self,
        ns: &str,
        keys: impl Iterator<Item = &'a str>,
        at: Instant,
    ) {
        for k in keys {
            self.write_times
                .entry((ns.to_owned(), k.to_owned()))
                .or_default()
                .push(at);
        }
    }
}

/// Everything the handlers share.
pub(crate) struct App {
    pub cfg: StandInConfig,
    inner: Mutex<Inner>,
}

impl App {
    pub fn new(cfg: StandInConfig) -> Self {
        let mut namespaces = BTreeMap::new();
        namespaces.insert(
            cfg.namespace_id.clone(),
            Namespace::new(cfg.namespace_id.clone(), cfg.namespace_title.clone()),
        );
        let inner = Inner {
            namespaces,
            clock: None,
            visibility_delay: cfg.visibility_delay,
            rate_limit: cfg.rate_limit,
            faults: VecDeque::new(),
            fail_keys: HashMap::new(),
            empty_list_pages: 0,
            cursor_generation: 0,
            log: Vec::new(),
            counters: BTreeMap::new(),
            rate_windows: HashMap::new(),
            rate_limited: 0,
            write_times: HashMap::new(),
        };
        Self {
            cfg,
            inner: Mutex::new(inner),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking handler must not wedge the server for the rest of a test.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Auth, then the API rate limit, then any injected failure.
    pub fn admit(&self, headers: &HeaderMap, at: Instant) -> Result<(), ApiError> {
        let principal = self.authenticate(headers)?;
        let mut inner = self.lock();
        if let Some(limit) = inner.rate_limit {
            let window = inner.rate_windows.entry(principal).or_default();
            while window
                .front()
                .is_some_and(|t| at.saturating_duration_since(*t) >= limit.window)
            {
                window.pop_front();
            }
            if window.len() >= limit.requests as usize {
                let oldest = *window.front().expect("non-empty when over the limit");
                let wait = limit
                    .window
                    .saturating_sub(at.saturating_duration_since(oldest));
                inner.rate_limited += 1;
                return Err(ApiError::RateLimited {
                    retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                });
            }
            window.push_back(at);
        }
        if let Some(f) = inner.faults.pop_front() {
            return Err(ApiError::Injected {
                status: f.status,
                non_json: f.non_json,
                retry_after_secs: f.retry_after_secs,
            });
        }
        Ok(())
    }

    /// The principal's name for rate limiting.
    fn authenticate(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let text = value
                .to_str()
                .map_err(|_| ApiError::BadAuthHeader { chain_code: 6111 })?;
            let token = text
                .strip_prefix("Bearer ")
                .map(str::trim)
                .filter(|t| !t.is_empty() && !t.contains(char::is_whitespace))
                .ok_or(ApiError::BadAuthHeader { chain_code: 6111 })?;
            return if token == self.cfg.token {
                Ok("bearer".to_owned())
            } else {
                Err(ApiError::Auth)
            };
        }
        let email = headers.get("x-auth-email").and_then(|v| v.to_str().ok());
        let key = headers.get("x-auth-key");
        match (email, key, &self.cfg.global_key) {
            (Some(email), Some(key), Some((want_email, want_key))) => {
                let key = key
                    .to_str()
                    .ok()
                    .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric()))
                    .ok_or(ApiError::BadAuthHeader { chain_code: 6103 })?;
                if email == want_email && key == want_key {
                    Ok(format!("email:{email}"))
                } else {
                    Err(ApiError::Auth)
                }
            }
            _ => Err(ApiError::Auth),
        }
    }

    pub fn log(&self, entry: RequestLog) {
        let mut inner = self.lock();
        *inner.counters.entry(entry.route).or_default() += 1;
        inner.log.push(entry);
    }

    pub fn account_matches(&self, account: &str) -> bool {
        account == self.cfg.account_id
    }
}

/// Test controls, called through [`crate::StandIn`].
impl App {
    pub fn fail_next(&self, n: usize, status: u16, retry_after_secs: Option<u64>, non_json: bool) {
        let mut inner = self.lock();
        for _ in 0..n {
            inner.faults.push_back(Fault {
                status,
                retry_after_secs,
                non_json,
            });
        }
    }

    pub fn set_clock(&self, unix: Option<u64>) {
        self.lock().clock = unix;
    }

    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        let mut inner = self.lock();
        inner.rate_limit = limit;
        inner.rate_windows.clear();
    }

    pub fn requests(&self) -> Vec<RequestLog> {
        self.lock().log.clone()
    }

    pub fn counters(&self) -> BTreeMap<Route, u64> {
        self.lock().counters.clone()
    }

    pub fn rate_limited(&self) -> u64 {
        self.lock().rate_limited
    }

    pub fn clear_log(&self) {
        let mut inner = self.lock();
        inner.log.clear();
        inner.counters.clear();
        inner.rate_limited = 0;
        inner.write_times.clear();
    }

    pub fn write_times(&self, ns: &str, key: &str) -> Vec<Instant> {
        self.lock()
            .write_times
            .get(&(ns.to_owned(), key.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    pub fn min_write_gap(&self) -> Option<(String, Duration)> {
        let inner = self.lock();
        let mut best: Option<(String, Duration)> = None;
        for ((_, key), times) in &inner.write_times {
            let mut sorted = times.clone();
            sorted.sort();
            for pair in sorted.windows(2) {
                let gap = pair[1] - pair[0];
                if best.as_ref().is_none_or(|(_, b)| gap < *b) {
                    best = Some((key.clone(), gap));
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(limit: Option<RateLimit>) -> App {
        let mut cfg = StandInConfig::new("tok", "acc", "ns");
        cfg.rate_limit = limit;
        cfg.global_key = Some(("ops@example.com".into(), "abc123".into()));
        App::new(cfg)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn auth_table() {
        let a = app(None);
        type Case<'a> = (Vec<(&'static str, &'a str)>, Result<(), ApiError>);
        let cases: Vec<Case> = vec![
            (vec![("authorization", "Bearer tok")], Ok(())),
            (vec![("authorization", "Bearer nope")], Err(ApiError::Auth)),
            (
                vec![("authorization", "tok")],
                Err(ApiError::BadAuthHeader { chain_code: 6111 }),
            ),
            (
                vec![("authorization", "Bearer ")],
                Err(ApiError::BadAuthHeader { chain_code: 6111 }),
            ),
            (vec![], Err(ApiError::Auth)),
            (
                vec![
                    ("x-auth-email", "ops@example.com"),
                    ("x-auth-key", "abc123"),
                ],
                Ok(()),
            ),
            (
                vec![("x-auth-email", "ops@example.com"), ("x-auth-key", "zzz")],
                Err(ApiError::Auth),
            ),
            (
                vec![("x-auth-email", "ops@example.com"), ("x-auth-key", "a b")],
                Err(ApiError::BadAuthHeader { chain_code: 6103 }),
            ),
        ];
        for (h, want) in cases {
            assert_eq!(a.admit(&headers(&h), Instant::now()), want, "{h:?}");
        }
    }

    #[test]
    fn sliding_window_rate_limit() {
        let a = app(Some(RateLimit {
            requests: 3,
            window: Duration::from_secs(10),
        }));
        let h = headers(&[("authorization", "Bearer tok")]);
        let t0 = Instant::now();
        for i in 0..3 {
            a.admit(&h, t0 + Duration::from_secs(i)).unwrap();
        }
        assert_eq!(
            a.admit(&h, t0 + Duration::from_secs(3)),
            Err(ApiError::RateLimited {
                retry_after_secs: 7
            })
        );
        a.admit(&h, t0 + Duration::from_secs(10)).unwrap(); // the first one left the window
        assert_eq!(a.rate_limited(), 1);
    }

    #[test]
    fn injected_faults_come_after_auth_and_in_order() {
        let a = app(None);
        a.fail_next(1, 429, Some(2), false);
        a.fail_next(1, 503, None, false);
        assert_eq!(
            a.admit(&HeaderMap::new(), Instant::now()),
            Err(ApiError::Auth)
        );
        let h = headers(&[("authorization", "Bearer tok")]);
        assert!(matches!(
            a.admit(&h, Instant::now()),
            Err(ApiError::Injected {
                status: 429,
                retry_after_secs: Some(2),
                ..
            })
        ));
        assert!(matches!(
            a.admit(&h, Instant::now()),
            Err(ApiError::Injected { status: 503, .. })
        ));
        a.admit(&h, Instant::now()).unwrap();
    }

    #[test]
    fn routes_by_template_and_method() {
        let m = |p: &str| format!("/client/v4{p}");
        assert_eq!(
            Route::of(&Method::PUT, Some(&m(paths::BULK))),
            Route::BulkWrite
        );
        assert_eq!(
            Route::of(&Method::DELETE, Some(&m(paths::BULK))),
            Route::BulkDeleteLegacy
        );
        assert_eq!(
            Route::of(&Method::POST, Some(&m(paths::BULK_DELETE))),
            Route::BulkDelete
        );
        assert_eq!(
            Route::of(&Method::PATCH, Some(&m(paths::VALUE))),
            Route::Unknown
        );
        assert_eq!(Route::of(&Method::GET, None), Route::Unknown);
    }
}
