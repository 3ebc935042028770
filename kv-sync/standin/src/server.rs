//! [`StandIn`]: the HTTP server (axum on tokio), its router, the front layer every request
//! passes (request log, auth, rate limit, injected failures, `cf-ray`), and the test controls.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use rand::Rng as _;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::{App, Items, ReceivedAt, RequestLog, Route, paths};
use crate::config::{RateLimit, StandInConfig};
use crate::error::ApiError;
use crate::routes::{bulk, keys, namespaces, values};

fn router(app: Arc<App>) -> Router {
    let p = |rel: &str| format!("{}{rel}", paths::ROOT);
    Router::new()
        .route(
            &p(paths::NAMESPACES),
            get(namespaces::list).post(namespaces::create),
        )
        .route(
            &p(paths::NAMESPACE),
            get(namespaces::get)
                .put(namespaces::rename)
                .delete(namespaces::delete),
        )
        .route(&p(paths::KEYS), get(keys::list))
        .route(
            &p(paths::VALUE),
            get(values::get).put(values::put).delete(values::delete),
        )
        .route(&p(paths::METADATA), get(values::metadata))
        .route(&p(paths::BULK), put(bulk::write).delete(bulk::delete))
        .route(&p(paths::BULK_DELETE), post(bulk::delete))
        .route(&p(paths::BULK_GET), post(bulk::get))
        .fallback(no_route)
        .method_not_allowed_fallback(no_route)
        .layer(middleware::from_fn_with_state(app.clone(), front))
        .with_state(app)
}

async fn no_route() -> ApiError {
    ApiError::NoRoute
}

/// Every request: admission (auth, rate limit, injected failure), the handler, a `cf-ray`
/// header, one log entry.
async fn front(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let at = Instant::now();
    let route = Route::of(
        req.method(),
        req.extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let mut resp = match app.admit(req.headers(), at) {
        Ok(()) => {
            req.extensions_mut().insert(ReceivedAt(at));
            next.run(req).await
        }
        Err(e) => e.into_response(),
    };
    let ray = format!("{:016x}-LCL", rand::rng().random::<u64>());
    if let Ok(v) = HeaderValue::from_str(&ray) {
        resp.headers_mut().insert("cf-ray", v);
    }
    let status = resp.status().as_u16();
    let items = resp.extensions().get::<Items>().map_or(0, |i| i.0);
    tracing::debug!(
        method,
        path,
        ?route,
        status,
        items,
        cf_ray = ray,
        "standin request"
    );
    app.log(RequestLog {
        method,
        path,
        route,
        status,
        items,
        at,
    });
    resp
}

/// A running stand-in of the Cloudflare KV REST API. Dropping it stops the server.
pub struct StandIn {
    app: Arc<App>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for StandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandIn")
            .field("url", &self.url())
            .field("config", &self.app.cfg)
            .finish()
    }
}

impl StandIn {
    /// Binds `cfg.listen` (a free loopback port by default) and serves until shut down.
    /// The server accepts requests as soon as this returns.
    pub async fn start(cfg: StandInConfig) -> std::io::Result<StandIn> {
        let listener = TcpListener::bind(cfg.listen).await?;
        let addr = listener.local_addr()?;
        let app = Arc::new(App::new(cfg));
        let router = router(app.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "standin server stopped");
            }
        });
        tracing::info!(%addr, "standin listening");
        Ok(StandIn {
            app,
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Base URL ending in `/client/v4`, e.g. `http://127.0.0.1:41234/client/v4`.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, paths::ROOT)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn account_id(&self) -> &str {
        &self.app.cfg.account_id
    }

    /// The pre-created namespace.
    pub fn namespace_id(&self) -> &str {
        &self.app.cfg.namespace_id
    }

    /// Stops accepting, lets in-flight requests finish (at most 5 s), then returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }

    // ---- test controls ----

    /// The next `n` authenticated requests get `status` (429 answers carry code 971; others an
    /// error envelope), with `retry-after` when given. Nothing is stored for them.
    pub fn fail_next(&self, n: usize, status: u16, retry_after_secs: Option<u64>) {
        self.app.fail_next(n, status, retry_after_secs, false);
    }

    /// The next `n` authenticated requests get `status` with an HTML page (a WAF challenge).
    pub fn fail_next_non_json(&self, n: usize, status: u16) {
        self.app.fail_next(n, status, None, true);
    }

    /// The next bulk write or delete naming each of these keys reports it in
    /// `unsuccessful_keys` and leaves it unchanged (once per key).
    pub fn fail_keys<I, S>(&self, keys: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.fail_keys_times(keys, 1);
    }

    /// Like [`Self::fail_keys`], for the next `times` bulk calls naming each key.
    pub fn fail_keys_times<I, S>(&self, keys: I, times: usize)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut inner = self.app.lock();
        for k in keys {
            let k: String = k.into();
            if times == 0 {
                inner.fail_keys.remove(&k);
            } else {
                inner.fail_keys.insert(k, times);
            }
        }
    }

    /// The next `n` key-list answers are empty pages that still carry a cursor (as KV does
    /// while it skips tombstones).
    pub fn empty_list_pages(&self, n: usize) {
        self.app.lock().empty_list_pages = n;
    }

    /// What the pre-created namespace stores (latest writes, expired keys left out).
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        self.snapshot_of(&self.app.cfg.namespace_id)
            .unwrap_or_default()
    }

    /// [`Self::snapshot`] of any namespace; `None` if it does not exist.
    pub fn snapshot_of(&self, namespace_id: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let inner = self.app.lock();
        let now = inner.now_unix();
        inner.namespaces.get(namespace_id).map(|n| n.snapshot(now))
    }

    /// Every request answered so far, in arrival order of completion.
    pub fn requests(&self) -> Vec<RequestLog> {
        self.app.requests()
    }

    /// Requests per route.
    pub fn counters(&self) -> BTreeMap<Route, u64> {
        self.app.counters()
    }

    /// Requests answered for `route`.
    pub fn count(&self, route: Route) -> u64 {
        self.app.counters().get(&route).copied().unwrap_or(0)
    }

    /// Requests refused by the API rate limit (429, code 971), injected failures not included.
    pub fn rate_limited(&self) -> u64 {
        self.app.rate_limited()
    }

    /// Forgets the request log, counters and write times (not the data).
    pub fn clear_log(&self) {
        self.app.clear_log();
    }

    /// Arrival times of the requests that wrote (put or deleted) `key` in the pre-created
    /// namespace.
    pub fn write_times(&self, key: &str) -> Vec<Instant> {
        self.app.write_times(&self.app.cfg.namespace_id, key)
    }

    /// The closest two writes of one key came, and which key; `None` if no key was written
    /// twice.
    pub fn min_write_gap(&self) -> Option<(String, Duration)> {
        self.app.min_write_gap()
    }

    /// Fixes the clock used for expirations (unix seconds).
    pub fn set_now(&self, unix_s: u64) {
        self.app.set_clock(Some(unix_s));
    }

    /// Goes back to the system clock.
    pub fn use_system_clock(&self) {
        self.app.set_clock(None);
    }

    /// The clock used for expirations (unix seconds).
    pub fn now(&self) -> u64 {
        self.app.lock().now_unix()
    }

    /// Writes from now on become visible to reads and lists only after `delay`.
    pub fn set_visibility_delay(&self, delay: Duration) {
        self.app.lock().visibility_delay = delay;
    }

    /// Replaces the API rate limit (`None`: off) and forgets the current windows.
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        self.app.set_rate_limit(limit);
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
