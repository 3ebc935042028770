//! End to end: a real control plane on 127.0.0.1:0 -> kv-sync (in-process follower) -> the
//! local SQLite KV -> the native gateway -> a real HTTP upstream on 127.0.0.1:0 that records
//! what it received. Nothing is mocked.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use keygate_control_plane::service_accounts::Capability;
use keygate_control_plane::testing::{Backend, TestServer, with_key};
use keygate_gateway::Running;

mod common;
use common::{follow_into, plain_route, put_records, test_config};
use keygate_kv::SqliteKv;

use keygate_proto::v1 as pb;
use keygate_proto::v1::route_service_client::RouteServiceClient;
use keygate_proto::v1::team_service_client::TeamServiceClient;
use keygate_proto::v1::token_service_client::TokenServiceClient;
use keygate_proto::v1::usage_service_client::UsageServiceClient;
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    body_len: u64,
    body_sha256: String,
}

impl Seen {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A real HTTP/1.1 upstream. Streams request bodies through a hash without keeping them.
/// Paths: `/base/redirect` answers 302 to an absolute URL on itself; `/base/slow` answers
/// after 2 s; `/base/download/<n>` streams n bytes; anything else answers `{"ok":true}`.
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let log = log.clone();
                        async move { Ok::<_, Infallible>(upstream(addr, req, log).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}/base", self.addr)
    }

    fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("upstream saw a request")
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

type UpBody = http_body_util::Either<
    Full<Bytes>,
    StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>,
>;

async fn upstream(
    me: SocketAddr,
    req: Request<Incoming>,
    log: Arc<Mutex<Vec<Seen>>>,
) -> Response<UpBody> {
    let (mut parts, mut body) = req.into_parts();
    // An upgrade (WebSocket): answer 101 and echo whatever the client sends afterwards.
    if parts.headers.get("upgrade").is_some() {
        let on_upgrade = parts
            .extensions
            .remove::<hyper::upgrade::OnUpgrade>()
            .unwrap();
        log.lock().unwrap().push(Seen {
            method: parts.method.to_string(),
            uri: parts.uri.to_string(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_owned()))
                .collect(),
            body_len: 0,
            body_sha256: String::new(),
        });
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut io = TokioIo::new(on_upgrade.await.unwrap());
            let mut buf = [0u8; 1024];
            while let Ok(n) = io.read(&mut buf).await {
                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        let mut r = Response::new(http_body_util::Either::Left(Full::new(Bytes::new())));
        *r.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
        r.headers_mut()
            .insert("connection", "upgrade".parse().unwrap());
        r.headers_mut()
            .insert("upgrade", "websocket".parse().unwrap());
        return r;
    }
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame.unwrap().into_data() {
            len += d.len() as u64;
            hasher.update(&d);
        }
    }
    let path = parts.uri.path().to_owned();
    log.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        uri: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_owned()))
            .collect(),
        body_len: len,
        body_sha256: hex::encode(hasher.finalize()),
    });
    let mut r = Response::new(http_body_util::Either::Left(Full::new(Bytes::from_static(
        b"{\"ok\":true}",
    ))));
    if path == "/base/redirect" {
        *r.status_mut() = http::StatusCode::FOUND;
        r.headers_mut().insert(
            "location",
            format!("http://{me}/base/next?a=1").parse().unwrap(),
        );
    } else if path == "/base/redirect-relative" {
        *r.status_mut() = http::StatusCode::SEE_OTHER;
        r.headers_mut()
            .insert("location", "/base/other".parse().unwrap());
    } else if path.ends_with("/slow") {
        tokio::time::sleep(Duration::from_secs(2)).await;
    } else if let Some(n) = path.strip_prefix("/base/download/") {
        // 1 MiB chunks, produced lazily by the iterator.
        let n: usize = n.parse().unwrap();
        let chunks: Vec<Result<Frame<Bytes>, Infallible>> = (0..n.div_ceil(1 << 20))
            .map(|i| {
                let size = (n - i * (1 << 20)).min(1 << 20);
                Ok(Frame::data(Bytes::from(vec![b'd'; size])))
            })
            .collect();
        // (The chunks exist in the upstream; what matters is the gateway's own memory, which
        // the test measures separately for the upload direction.)
        r = Response::new(http_body_util::Either::Right(StreamBody::new(
            futures::stream::iter(chunks),
        )));
    }
    r
}

async fn metrics_text(http: &reqwest::Client, g: &Running) -> String {
    http.get(format!("http://{}/metrics", g.admin_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A TCP relay to `target` on a fixed loopback port that starts down (nothing listens: the
/// port refuses connections) and is brought up by [`Relay::up`]: a control plane outage as
/// the gateway sees it, and its return on the same address.
struct Relay {
    addr: SocketAddr,
    target: SocketAddr,
    accept: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Relay {
    async fn down(target: SocketAddr) -> Self {
        // Reserve a free port, then let it go: down means nothing listens there.
        let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        Self {
            addr,
            target,
            accept: Mutex::new(None),
        }
    }

    async fn up(&self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        let target = self.target;
        let task = tokio::spawn(async move {
            // Dropped (aborting every relayed connection) when the accept task is aborted.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                conns.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        *self.accept.lock().unwrap() = Some(task);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(t) = self.accept.lock().unwrap().take() {
            t.abort();
        }
    }
}

/// The whole stack.
struct Stack {
    cp: TestServer,
    upstream: Upstream,
    gateway: Option<Running>,
    /// Between the gateway's usage sender and the control plane, when asked for.
    relay: Option<Relay>,
    _kv_dir: tempfile::TempDir,
    _follower: tokio::task::JoinHandle<()>,
    api_key: String,
    http: reqwest::Client,
}

/// How to build a [`Stack`].
#[derive(Clone, Copy, Default)]
struct Options {
    /// The control plane's database.
    backend: Backend,
    /// Give the gateway a GATEWAY service-account key so it reports usage (rollups every
    /// 50 ms, and raw events).
    usage: bool,
    /// The gateway's usage buffer (events), when not the default.
    usage_buffer: Option<u64>,
    /// Send usage through a [`Relay`] that starts down.
    usage_via_relay: bool,
    /// The usage flush interval in ms, when not 50.
    usage_flush_ms: Option<u64>,
    /// Refusal and 5xx events per second, when not the default.
    event_budget: Option<u32>,
}

impl Stack {
    async fn start() -> Self {
        Self::start_opts(Options::default()).await
    }

    async fn start_opts(o: Options) -> Self {
        let cp = TestServer::start(o.backend).await;
        let dir = tempfile::tempdir().unwrap();
        let kv_path = dir.path().join("kv.db");
        let handle = follow_into(&cp, &kv_path, "e2e").await;
        let mut config = test_config(kv_path);
        let mut relay = None;
        if o.usage {
            config.gateway_key = Some(cp.capability_key(Capability::Gateway).await);
            config.control_plane = cp.url();
            config.usage_flush_ms = o.usage_flush_ms.unwrap_or(50);
            config.name = "e2e-gateway".into();
            if let Some(n) = o.usage_buffer {
                config.usage_buffer = n;
            }
            if let Some(n) = o.event_budget {
                config.usage_event_budget = n;
            }
            if o.usage_via_relay {
                let r = Relay::down(cp.addr).await;
                config.control_plane = format!("http://{}", r.addr);
                relay = Some(r);
            }
        }
        let gateway = keygate_gateway::start(config).await.unwrap();
        let upstream = Upstream::start().await;
        Self {
            api_key: cp.admin_key.clone(),
            cp,
            upstream,
            gateway: Some(gateway),
            relay,
            _kv_dir: dir,
            _follower: handle,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    fn gw(&self) -> String {
        format!("http://{}", self.gateway.as_ref().unwrap().addr)
    }

    fn admin(&self) -> String {
        format!("http://{}", self.gateway.as_ref().unwrap().admin_addr)
    }

    async fn channel(&self) -> tonic::transport::Channel {
        self.cp.channel().await
    }

    async fn team(&self, id: &str) {
        TeamServiceClient::new(self.channel().await)
            .create_team(with_key(
                &self.api_key,
                pb::CreateTeamRequest {
                    id: id.into(),
                    name: id.into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }

    async fn route(&self, req: pb::CreateRouteRequest) -> pb::Route {
        RouteServiceClient::new(self.channel().await)
            .create_route(with_key(&self.api_key, req))
            .await
            .unwrap()
            .into_inner()
            .route
            .unwrap()
    }

    /// Returns (token id, plaintext).
    async fn token(&self, team: &str, scopes: &[&str]) -> (String, String) {
        self.token_limited(team, scopes, 0).await
    }

    async fn token_limited(&self, team: &str, scopes: &[&str], rpm: u32) -> (String, String) {
        let out = TokenServiceClient::new(self.channel().await)
            .create_token(with_key(
                &self.api_key,
                pb::CreateTokenRequest {
                    name: "e2e".into(),
                    team_id: team.into(),
                    scopes: scopes.iter().map(|s| s.to_string()).collect(),
                    expiry: Some(pb::create_token_request::Expiry::ExpiresInDays(30)),
                    rate_limit_per_minute: rpm,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        (out.token.unwrap().id, out.plaintext)
    }

    /// Team `alpha`, the [`echo_route`], and a token of `alpha` with `scopes`, in the gateway:
    /// (token id, plaintext).
    async fn echo_token(&self, scopes: &[&str]) -> (String, String) {
        self.team("alpha").await;
        self.route(echo_route(&self.upstream)).await;
        let token = self.token("alpha", scopes).await;
        self.synced().await;
        token
    }

    async fn revoke(&self, id: &str) {
        TokenServiceClient::new(self.channel().await)
            .revoke_token(with_key(
                &self.api_key,
                pb::RevokeTokenRequest {
                    id: id.into(),
                    reason: "e2e".into(),
                },
            ))
            .await
            .unwrap();
    }

    /// Waits until the gateway's configuration includes the control plane's head revision.
    async fn synced(&self) {
        let head = self.cp.store.head_revision().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r: serde_json::Value = self
                .http
                .get(format!("{}/readyz", self.admin()))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if r["revision"].as_i64().unwrap_or(0) >= head {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gateway did not reach revision {head}: {r}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The first page (100) of the control plane's usage events matching `filter`.
    async fn usage_events(&self, filter: pb::UsageFilter) -> Vec<pb::UsageEvent> {
        UsageServiceClient::new(self.channel().await)
            .list_usage_events(with_key(
                &self.api_key,
                pb::ListUsageEventsRequest {
                    filter: Some(filter),
                    page_size: 100,
                    page_token: String::new(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .events
    }

    /// Waits (up to `within`) until the control plane holds at least `n` usage events of
    /// token `id`, and returns them.
    async fn await_token_events(
        &self,
        id: &str,
        n: usize,
        within: Duration,
    ) -> Vec<pb::UsageEvent> {
        let deadline = Instant::now() + within;
        loop {
            let events = self
                .usage_events(pb::UsageFilter {
                    token_id: id.into(),
                    ..Default::default()
                })
                .await;
            if events.len() >= n {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "usage events missing: {events:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The control plane's usage totals for `query` (rollups; the default range: the last
    /// 24 hours).
    async fn usage_stats(&self, query: pb::UsageQuery) -> pb::UsageStats {
        UsageServiceClient::new(self.channel().await)
            .get_usage_summary(with_key(
                &self.api_key,
                pb::GetUsageSummaryRequest {
                    query: Some(query),
                    step_seconds: 0,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .total
            .unwrap_or_default()
    }

    /// Waits (up to 40 s) until the control plane counts at least `n` calls for `query`,
    /// and returns its totals.
    async fn await_calls(&self, query: pb::UsageQuery, n: u64) -> pb::UsageStats {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let stats = self.usage_stats(query.clone()).await;
            if stats.calls >= n {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "calls missing for {query:?}: {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The control plane's view of this gateway (`ListGateways`).
    async fn reported_gateway(&self) -> pb::Gateway {
        UsageServiceClient::new(self.channel().await)
            .list_gateways(with_key(&self.api_key, pb::ListGatewaysRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .gateways
            .into_iter()
            .find(|gw| gw.name == "e2e-gateway")
            .expect("the gateway is listed")
    }

    /// Waits (up to 40 s) until the gateway's metrics satisfy `ok`, and returns them.
    async fn await_metrics(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let g = self.gateway.as_ref().unwrap();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let text = metrics_text(&self.http, g).await;
            if ok(&text) {
                return text;
            }
            assert!(Instant::now() < deadline, "{what}:\n{text}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn get(&self, path: &str, key: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.gw()))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap()
    }
}

fn echo_route(up: &Upstream) -> pb::CreateRouteRequest {
    pb::CreateRouteRequest {
        name: "echo".into(),
        team_id: "alpha".into(),
        path_prefix: "/echo".into(),
        backend_url: up.url(),
        strip_prefix: true,
        backend_auth: Some(pb::BackendAuth {
            kind: Some(pb::backend_auth::Kind::Bearer(pb::BearerAuth {
                token: "backend-secret-123".into(),
            })),
        }),
        ..Default::default()
    }
}

async fn error_json(r: reqwest::Response) -> (u16, serde_json::Value) {
    let status = r.status().as_u16();
    let rid = r
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["request_id"].as_str(), rid.as_deref(), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "exactly error, message, request_id: {body}");
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_with_injected_credential_and_intact_bodies() {
    let s = Stack::start().await;
    let (_, key) = s.echo_token(&["echo"]).await;

    let r = s.get("/echo/items/7?x=1&y=%20z", &key).await;
    assert_eq!(r.status(), 200);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(r.headers().contains_key("x-keygate-revision"));
    assert_eq!(r.text().await.unwrap(), "{\"ok\":true}");
    let seen = s.upstream.last();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.uri, "/base/items/7?x=1&y=%20z");
    assert_eq!(
        seen.header("authorization"),
        vec!["Bearer backend-secret-123"]
    );
    assert!(seen.header("x-api-key").is_empty(), "caller key forwarded");
    assert_eq!(seen.header("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(seen.header("x-forwarded-proto"), vec!["http"]);
    assert_eq!(seen.header("x-request-id"), vec![rid.as_str()]);

    // The caller's Bearer key is not forwarded either, nor a spoofed X-Forwarded-For.
    let r = s
        .http
        .get(format!("{}/echo/b", s.gw()))
        .header("authorization", format!("Bearer {key}"))
        .header("x-forwarded-for", "6.6.6.6")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = s.upstream.last();
    assert_eq!(
        seen.header("authorization"),
        vec!["Bearer backend-secret-123"]
    );
    assert_eq!(seen.header("x-forwarded-for"), vec!["127.0.0.1"]);

    // Nor the key in the query string: the fields that carry it are removed (plain and
    // percent-encoded), the others arrive as sent.
    let encoded = key.replace('_', "%5F");
    let r = s
        .get(
            &format!("/echo/q?api_key={key}&x=1;token={encoded}&y=2"),
            &key,
        )
        .await;
    assert_eq!(r.status(), 200);
    let seen = s.upstream.last();
    assert_eq!(seen.uri, "/base/q?x=1&y=2");
    let r = s.get(&format!("/echo/q?api_key={key}"), &key).await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.upstream.last().uri, "/base/q");

    // Bodies arrive intact for every method that carries one.
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let want = hex::encode(Sha256::digest(&body));
        let r = s
            .http
            .request(method.parse().unwrap(), format!("{}/echo/upload", s.gw()))
            .header("x-api-key", &key)
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{method}");
        let seen = s.upstream.last();
        assert_eq!(seen.method, method);
        assert_eq!(seen.body_len, 300_000, "{method}");
        assert_eq!(seen.body_sha256, want, "{method}");
    }

    // Redirects from the backend point back at the gateway.
    let r = s.get("/echo/redirect", &key).await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("{}/echo/next?a=1", s.gw())
    );
    // An absolute-path reference under the backend's base path is rewritten too (to an
    // absolute URL on the gateway).
    let r = s.get("/echo/redirect-relative", &key).await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("{}/echo/other", s.gw())
    );
    // All of it went through the HTTP/1.1 fast path: no connection was handed to hyper.
    let m = metrics_text(&s.http, s.gateway.as_ref().unwrap()).await;
    assert_eq!(
        metric(&m, "keygate_gateway_hyper_handoffs_total"),
        0.0,
        "{m}"
    );
}

/// The value of an unlabelled metric in OpenMetrics text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

/// The sum of every series of a labelled metric (`name{...} value`) in OpenMetrics text.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix('{'))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// The current UTC minute (ms since the epoch / 60,000).
fn minute_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        / 60_000
}

/// Reads this process's resident memory high-water mark, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_body_streams_through_with_bounded_memory() {
    let s = Stack::start().await;
    let (_, key) = s.echo_token(&["*"]).await;
    // Warm up every path once so one-time allocations are behind us.
    assert_eq!(s.get("/echo/warm", &key).await.status(), 200);
    let before = peak_rss();

    const TOTAL: usize = 100 * 1024 * 1024;
    const CHUNK: usize = 256 * 1024;
    let mut hasher = Sha256::new();
    let chunk: Vec<u8> = (0..CHUNK).map(|i| (i % 253) as u8).collect();
    for _ in 0..TOTAL / CHUNK {
        hasher.update(&chunk);
    }
    let want = hex::encode(hasher.finalize());
    let chunk = Bytes::from(chunk);
    // Twice: chunked (the connection goes to hyper) and with a Content-Length (the HTTP/1.1
    // fast path).
    for with_length in [false, true] {
        let chunk = chunk.clone();
        let stream = futures::stream::iter(
            (0..TOTAL / CHUNK).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
        );
        let mut req = s
            .http
            .post(format!("{}/echo/big", s.gw()))
            .header("x-api-key", &key);
        if with_length {
            req = req.header("content-length", TOTAL.to_string());
        }
        let r = req
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "with_length {with_length}");
        let seen = s.upstream.last();
        assert_eq!(seen.body_len, TOTAL as u64);
        assert_eq!(seen.body_sha256, want);
        let grew = peak_rss().saturating_sub(before);
        // The client, the gateway and the upstream all live in this process: had any of them
        // buffered the body, the peak would have grown by at least 100 MiB.
        assert!(
            grew < 32 * 1024 * 1024,
            "peak memory grew by {} MiB while streaming 100 MiB (with_length {with_length})",
            grew >> 20
        );
        let handoffs = metric(
            &metrics_text(&s.http, s.gateway.as_ref().unwrap()).await,
            "keygate_gateway_hyper_handoffs_total",
        );
        // The chunked upload was handed to hyper; the sized one was not.
        assert_eq!(handoffs, 1.0, "with_length {with_length}");
    }

    // The response direction streams too (bytes counted as they pass).
    let r = s
        .get(&format!("/echo/download/{}", 20 * 1024 * 1024), &key)
        .await;
    assert_eq!(r.status(), 200);
    let mut n = 0usize;
    let mut stream = r.bytes_stream();
    use futures::StreamExt;
    while let Some(c) = stream.next().await {
        n += c.unwrap().len();
    }
    assert_eq!(n, 20 * 1024 * 1024);
}

async fn revocation_and_team_deletion_take_effect_without_restart(backend: Backend) {
    let s = Stack::start_opts(Options {
        backend,
        ..Options::default()
    })
    .await;
    s.team("alpha").await;
    s.team("beta").await;
    s.route(echo_route(&s.upstream)).await;
    let (id, key) = s.token("alpha", &["*"]).await;
    let (_, beta_key) = s.token("beta", &["*"]).await;
    s.synced().await;
    assert_eq!(s.get("/echo/x", &key).await.status(), 200);
    assert_eq!(s.get("/echo/x", &beta_key).await.status(), 200);

    let t0 = Instant::now();
    s.revoke(&id).await;
    loop {
        let r = s.get("/echo/x", &key).await;
        if r.status() == 401 {
            let (_, body) = error_json(r).await;
            assert_eq!(body["error"], "invalid_key");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "revocation not applied"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("revoke -> 401 in {:?}", t0.elapsed());
    let reached = s.upstream.count();

    TeamServiceClient::new(s.channel().await)
        .delete_team(with_key(
            &s.api_key,
            pb::DeleteTeamRequest {
                id: "beta".into(),
                cascade: true,
            },
        ))
        .await
        .unwrap();
    s.synced().await;
    let (status, body) = error_json(s.get("/echo/x", &beta_key).await).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_key")));
    // Nothing came back: neither key reached the upstream again.
    let (status, _) = error_json(s.get("/echo/x", &key).await).await;
    assert_eq!(status, 401);
    assert_eq!(s.upstream.count(), reached);
}

/// A GET with the path exactly as given (no client-side normalisation): (status, body).
async fn raw_get(base: &str, path: &str, key: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {key}\r\nConnection: close\r\n\r\n"
    );
    c.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_with_the_right_status() {
    let s = Stack::start().await;
    s.team("alpha").await;
    s.route(echo_route(&s.upstream)).await;
    let mut slow = echo_route(&s.upstream);
    slow.name = "slow".into();
    slow.path_prefix = "/slow".into();
    slow.timeout_ms = 300;
    slow.strip_prefix = false;
    slow.backend_url = format!("http://{}/base", s.upstream.addr);
    s.route(slow).await;
    // A backend nobody listens on.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let mut down = echo_route(&s.upstream);
    down.name = "down".into();
    down.path_prefix = "/down".into();
    down.backend_url = format!("http://{dead_addr}/");
    s.route(down).await;
    let mut getonly = echo_route(&s.upstream);
    getonly.name = "getonly".into();
    getonly.path_prefix = "/getonly".into();
    getonly.methods = vec!["GET".into()];
    s.route(getonly).await;
    let (_, echo_only) = s.token("alpha", &["echo"]).await;
    let (_, all) = s.token("alpha", &["*"]).await;
    s.synced().await;

    let r = s
        .http
        .get(format!("{}/echo/x", s.gw()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"keygate\"");
    let (st, b) = error_json(r).await;
    assert_eq!((st, b["error"].as_str()), (401, Some("missing_key")));
    let (st, b) = error_json(s.get("/echo/x", "kg_notarealkey").await).await;
    assert_eq!((st, b["error"].as_str()), (401, Some("invalid_key")));
    let (st, b) = error_json(s.get("/slow/x", &echo_only).await).await;
    assert_eq!((st, b["error"].as_str()), (403, Some("forbidden")));
    assert!(
        !b["message"].as_str().unwrap().contains("echo"),
        "scopes leaked: {b}"
    );
    let (st, b) = error_json(s.get("/nothing/here", &all).await).await;
    assert_eq!((st, b["error"].as_str()), (404, Some("route_not_found")));
    let r = s
        .http
        .post(format!("{}/getonly/x", s.gw()))
        .header("x-api-key", &all)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "GET");
    let (st, b) = error_json(r).await;
    assert_eq!((st, b["error"].as_str()), (405, Some("method_not_allowed")));
    // Paths that HTTP clients would normalise away are sent raw.
    for path in [
        "/echo/a/../../etc/passwd",
        "/echo/%2e%2e/x",
        "/echo/a%2fb",
        "/echo/a%5cb",
        "/echo//evil.com",
    ] {
        let (status, body) = raw_get(&s.gw(), path, &all).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("\"bad_request\""), "{path}: {body}");
    }
    let t = Instant::now();
    let (st, b) = error_json(s.get("/slow/slow", &all).await).await;
    assert_eq!((st, b["error"].as_str()), (504, Some("gateway_timeout")));
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    let (st, b) = error_json(s.get("/down/x", &all).await).await;
    assert_eq!((st, b["error"].as_str()), (502, Some("bad_gateway")));
    assert!(
        !b["message"].as_str().unwrap().contains("127.0.0.1"),
        "internals leaked: {b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_the_kv_exists_then_serves_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let g = keygate_gateway::start(test_config(dir.path().join("kv.db")))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let r = http
        .get(format!("http://{}/x", g.addr))
        .header("x-api-key", "kg_x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let (_, b) = error_json(r).await;
    assert_eq!(b["error"], "not_ready");
    let r = http
        .get(format!("http://{}/readyz", g.admin_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        http.get(format!("http://{}/healthz", g.admin_addr))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = metrics_text(&http, &g).await;
    // One request: one worker's series counts it.
    let answered: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("keygate_gateway_requests_total{route=\"-\",status=\"503\",worker=\"")
        })
        .collect();
    assert!(
        answered.len() == 1 && answered[0].ends_with("\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("keygate_gateway_ready 0"), "{metrics}");
    g.shutdown().await;
}

/// Every request is counted in the rollups the control plane stores (its totals and each
/// token's); raw events only for refusals and a token's first success of a minute, with
/// every field; `last_used_at` set.
async fn usage_reaches_the_control_plane_and_sets_last_used(backend: Backend) {
    let s = Stack::start_opts(Options {
        backend,
        usage: true,
        ..Options::default()
    })
    .await;
    let (id, key) = s.echo_token(&["echo"]).await;
    let first_minute = minute_now();
    // The token's first success of the minute: a raw event.
    let r = s
        .http
        .post(format!("{}/echo/two", s.gw()))
        .header("x-api-key", &key)
        .header("user-agent", "e2e-agent/1")
        .body(vec![b'x'; 1234])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(r.bytes().await.unwrap().len(), 11);
    // Another success in the same minute: in the rollups only.
    assert_eq!(s.get("/echo/one", &key).await.status(), 200);
    let same_minute = minute_now() == first_minute;
    // Refusals: raw events (within the budget), with or without a known token.
    assert_eq!(s.get("/nothing", &key).await.status(), 404);
    assert_eq!(s.get("/echo/x", "kg_bogus").await.status(), 401);

    let events = s.await_token_events(&id, 2, Duration::from_secs(10)).await;
    let post = events
        .iter()
        .find(|e| e.method == "POST")
        .expect("the first success");
    assert_eq!(post.status, 200);
    assert_eq!(post.route, "echo");
    assert_eq!(post.team_id, "alpha");
    assert_eq!(post.request_bytes, 1234);
    assert_eq!(post.response_bytes, 11);
    assert_eq!(post.user_agent, "e2e-agent/1");
    assert_eq!(post.client_ip, "127.0.0.1");
    assert_eq!(post.request_id, rid);
    assert_eq!(post.token_hash, keygate_contracts::token::sha256_hex(&key));
    assert!(post.config_revision > 0);
    let missing = events.iter().find(|e| e.status == 404).expect("the 404");
    assert_eq!(missing.error, "route_not_found");
    assert_eq!(missing.route, "");
    let successes = events.iter().filter(|e| e.status == 200).count();
    if same_minute {
        assert_eq!(successes, 1, "one success event per minute: {events:?}");
    }
    // The token's last use is set.
    let token = TokenServiceClient::new(s.channel().await)
        .get_token(with_key(&s.api_key, pb::GetTokenRequest { id: id.clone() }))
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert!(token.last_used_at.is_some(), "last_used_at not set");
    // The rejected unknown key was sent as well, without a token id.
    let all = s
        .usage_events(pb::UsageFilter {
            status: 401,
            ..Default::default()
        })
        .await;
    assert!(
        all.iter()
            .any(|e| e.error == "invalid_key" && e.token_id.is_empty()),
        "{all:?}"
    );

    // Every request is in the rollups, once: three of the token's (one error), four in all.
    let mine = s
        .await_calls(
            pb::UsageQuery {
                token_id: id.clone(),
                ..Default::default()
            },
            3,
        )
        .await;
    assert_eq!((mine.calls, mine.errors), (3, 1), "{mine:?}");
    assert_eq!(mine.request_bytes, 1234);
    assert!(mine.response_bytes > 22, "{mine:?}");
    let everything = s.await_calls(pb::UsageQuery::default(), 4).await;
    assert_eq!(
        (everything.calls, everything.errors),
        (4, 2),
        "{everything:?}"
    );
    let listed = UsageServiceClient::new(s.channel().await)
        .batch_get_token_usage(with_key(
            &s.api_key,
            pb::BatchGetTokenUsageRequest {
                token_ids: vec![id.clone()],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .usage;
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].calls, listed[0].errors), (3, 1));
    assert!(listed[0].last_used_at.is_some());
    // The gateway's own counts agree with what the control plane accepted.
    let text = s
        .await_metrics("the rollups are not all accepted", |t| {
            metric(t, "keygate_gateway_usage_rollup_requests_sent_total") >= 4.0
        })
        .await;
    assert_eq!(metric_sum(&text, "keygate_gateway_requests_total"), 4.0);
    assert_eq!(
        metric(&text, "keygate_gateway_usage_requests_counted_total"),
        4.0
    );
    assert_eq!(
        metric(&text, "keygate_gateway_usage_rollup_requests_sent_total"),
        4.0
    );
    assert_eq!(
        metric(&text, "keygate_gateway_usage_rollups_dropped_total"),
        0.0
    );
}

/// Whatever answers a request — the fast path or hyper, the backend or the gateway (refusal,
/// rate limit, preflight, 502) — it is counted exactly once: the gateway's request counter,
/// its rollups and the control plane's totals agree. Refusal and 5xx events stay within the
/// budget (the rest counted as sampled out); a token's first success of a minute is one event
/// however many workers served it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_request_is_counted_once_and_events_keep_to_the_budget() {
    let s = Stack::start_opts(Options {
        usage: true,
        event_budget: Some(2),
        ..Options::default()
    })
    .await;
    s.team("alpha").await;
    let mut echo = echo_route(&s.upstream);
    echo.cors_origins = vec!["https://app.example.com".into()];
    s.route(echo).await;
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let mut down = echo_route(&s.upstream);
    down.name = "down".into();
    down.path_prefix = "/down".into();
    down.backend_url = format!("http://{dead_addr}/");
    s.route(down).await;
    let (free_id, free) = s.token("alpha", &["*"]).await;
    let (_, limited) = s.token_limited("alpha", &["*"], 1).await;
    s.synced().await;

    let started = std::time::SystemTime::now();
    let first_minute = minute_now();
    let mut errors = 0;
    for _ in 0..3 {
        assert_eq!(s.get("/echo/x", &free).await.status(), 200);
    }
    assert_eq!(s.get("/echo/x", &limited).await.status(), 200);
    for _ in 0..2 {
        assert_eq!(s.get("/echo/x", &limited).await.status(), 429);
        errors += 1;
    }
    for _ in 0..2 {
        let r = s.http.get(format!("{}/echo/x", s.gw())).send().await;
        assert_eq!(r.unwrap().status(), 401);
        assert_eq!(s.get("/echo/x", "kg_bogus").await.status(), 401);
        errors += 2;
    }
    assert_eq!(s.get("/nothing", &free).await.status(), 404);
    assert_eq!(s.get("/down/x", &free).await.status(), 502);
    errors += 2;
    let r = s
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/echo/x", s.gw()))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // hyper serves HTTP/2 (prior knowledge).
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for _ in 0..2 {
        let r = h2
            .post(format!("{}/echo/h2", s.gw()))
            .header("x-api-key", &free)
            .body("over h2c")
            .send()
            .await
            .unwrap();
        assert_eq!(
            (r.version(), r.status().as_u16()),
            (reqwest::Version::HTTP_2, 200)
        );
        assert_eq!(r.bytes().await.unwrap().len(), 11);
    }
    let seconds = started.elapsed().unwrap().as_secs() + 2;
    let minutes = (minute_now() - first_minute + 1) as usize;
    let total = 15u64;

    let text = s
        .await_metrics("the rollups are not all accepted", |t| {
            metric(t, "keygate_gateway_usage_rollup_requests_sent_total") >= total as f64
        })
        .await;
    assert_eq!(
        metric_sum(&text, "keygate_gateway_requests_total"),
        total as f64
    );
    assert_eq!(
        metric(&text, "keygate_gateway_usage_requests_counted_total"),
        total as f64
    );
    assert_eq!(
        metric(&text, "keygate_gateway_usage_rollup_requests_sent_total"),
        total as f64
    );
    assert!(metric(&text, "keygate_gateway_hyper_handoffs_total") >= 1.0);
    let stats = s.await_calls(pb::UsageQuery::default(), total).await;
    assert_eq!((stats.calls, stats.errors), (total, errors), "{stats:?}");

    // Raw events: the refusals and the 502 within the budget (2 a second), the rest sampled
    // out. (Every hand-over with these requests is in, so the sampled-out count is final.)
    let sampled_out = metric(&text, "keygate_gateway_usage_events_sampled_out_total") as u64;
    assert!(
        sampled_out >= errors.saturating_sub(2 * seconds),
        "{sampled_out} sampled out of {errors} in about {seconds} s"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let events = loop {
        let events = s.usage_events(pb::UsageFilter::default()).await;
        let kept = events.iter().filter(|e| e.status >= 400).count() as u64;
        if kept + sampled_out >= errors {
            assert_eq!(kept + sampled_out, errors, "{events:?}");
            break events;
        }
        assert!(Instant::now() < deadline, "events missing: {events:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // One first-success event per token and minute, though h2c and HTTP/1.1 may have been
    // served by different workers.
    let free_successes = events
        .iter()
        .filter(|e| e.token_id == free_id && e.status == 200)
        .count();
    assert!(
        (1..=minutes).contains(&free_successes),
        "{free_successes} success events in {minutes} minute(s): {events:?}"
    );
    let gw = s.reported_gateway().await;
    assert_eq!(gw.sampled_out_last_hour, sampled_out, "{gw:?}");
    assert_eq!(gw.requests_last_hour, total, "{gw:?}");
}

/// Many callers at once over both front ends, some going away in the middle of an answer:
/// the gateway's request counter, the requests it handed to rollups and the control plane's
/// total agree exactly once everything is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_are_counted_exactly() {
    let s = Stack::start_opts(Options {
        usage: true,
        ..Options::default()
    })
    .await;
    let (_, key) = s.echo_token(&["echo"]).await;
    let mut callers = tokio::task::JoinSet::new();
    for c in 0..12 {
        let (gw, key) = (s.gw(), key.clone());
        callers.spawn(async move {
            // One caller in four speaks HTTP/2 (hyper), the others HTTP/1.1 (the fast path).
            let http = if c % 4 == 0 {
                reqwest::Client::builder()
                    .http2_prior_knowledge()
                    .build()
                    .unwrap()
            } else {
                reqwest::Client::new()
            };
            for i in 0..30 {
                let (path, key) = match i % 6 {
                    0 => ("/nothing", key.as_str()),
                    1 => ("/echo/x", "kg_bogus"),
                    2 => ("/echo/download/4194304", key.as_str()),
                    _ => ("/echo/x", key.as_str()),
                };
                let mut r = http
                    .get(format!("{gw}{path}"))
                    .header("x-api-key", key)
                    .send()
                    .await
                    .unwrap();
                if i % 6 == 2 {
                    // Gone after the first bytes of a 4 MiB answer.
                    let _ = r.chunk().await;
                    drop(r);
                } else {
                    let _ = r.bytes().await;
                }
            }
        });
    }
    while let Some(r) = callers.join_next().await {
        r.unwrap();
    }
    let text = s
        .await_metrics("the counts do not meet", |t| {
            let answered = metric_sum(t, "keygate_gateway_requests_total");
            answered > 0.0
                && metric(t, "keygate_gateway_usage_rollup_requests_sent_total") == answered
                && metric(t, "keygate_gateway_usage_rollups_pending") == 0.0
        })
        .await;
    let answered = metric_sum(&text, "keygate_gateway_requests_total") as u64;
    assert_eq!(answered, 12 * 30, "every request was answered");
    assert_eq!(
        metric(&text, "keygate_gateway_usage_requests_counted_total") as u64,
        answered
    );
    let stats = s.await_calls(pb::UsageQuery::default(), answered).await;
    assert_eq!(stats.calls, answered, "{stats:?}");
    assert_eq!(stats.errors, 12 * 10, "{stats:?}");
}

/// A gateway stopping reports what its workers counted since the last flush.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_reported_once_more_on_shutdown() {
    let mut s = Stack::start_opts(Options {
        usage: true,
        usage_flush_ms: Some(600_000),
        ..Options::default()
    })
    .await;
    let (id, key) = s.echo_token(&["echo"]).await;
    for n in 0..3 {
        assert_eq!(s.get(&format!("/echo/{n}"), &key).await.status(), 200);
    }
    assert_eq!(s.get("/nothing", &key).await.status(), 404);
    let text = metrics_text(&s.http, s.gateway.as_ref().unwrap()).await;
    assert_eq!(
        metric(&text, "keygate_gateway_usage_requests_counted_total"),
        0.0,
        "nothing handed over before the flush interval"
    );
    let app = s.gateway.as_ref().unwrap().app.clone();
    s.gateway.take().unwrap().shutdown().await;
    assert_eq!(app.usage.counters.requests_counted.get(), 4);
    assert_eq!(app.usage.counters.rollup_requests_sent.get(), 4);
    let stats = s
        .usage_stats(pb::UsageQuery {
            token_id: id.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!((stats.calls, stats.errors), (4, 1), "{stats:?}");
    let events = s
        .usage_events(pb::UsageFilter {
            token_id: id,
            ..Default::default()
        })
        .await;
    assert!(events.iter().any(|e| e.status == 404), "{events:?}");
    assert!(events.iter().any(|e| e.status == 200), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_rate_limit_and_cors_preflight() {
    let s = Stack::start().await;
    s.team("alpha").await;
    let mut r = echo_route(&s.upstream);
    r.rate_limit_per_minute = 3;
    r.cors_origins = vec!["https://app.example.com".into()];
    s.route(r).await;
    let (_, key) = s.token("alpha", &["echo"]).await;
    let (_, other) = s.token("alpha", &["echo"]).await;
    s.synced().await;

    // A preflight from an allowed origin is answered by the gateway, without a key.
    let reached = s.upstream.count();
    let r = s
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/echo/x", s.gw()))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(
        r.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("x-api-key")
    );
    // Another origin is refused.
    let r = s
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/echo/x", s.gw()))
        .header("origin", "https://evil.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        s.upstream.count(),
        reached,
        "preflights never reach the backend"
    );

    // 3 per minute per token: the 4th is refused with Retry-After, another token is not.
    for i in 0..3 {
        let r = s
            .http
            .get(format!("{}/echo/x", s.gw()))
            .header("x-api-key", &key)
            .header("origin", "https://app.example.com")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(r.headers()["ratelimit-limit"], "3");
        assert_eq!(
            r.headers()["ratelimit-remaining"],
            (2 - i).to_string().as_str()
        );
        assert_eq!(
            r.headers()["access-control-allow-origin"],
            "https://app.example.com"
        );
    }
    let r = s.get("/echo/x", &key).await;
    assert!(
        r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(r.headers()["ratelimit-remaining"], "0");
    let (st, b) = error_json(r).await;
    assert_eq!((st, b["error"].as_str()), (429, Some("rate_limited")));
    assert_eq!(s.get("/echo/x", &other).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_rate_limit_and_h2c() {
    let s = Stack::start().await;
    s.team("alpha").await;
    s.route(echo_route(&s.upstream)).await;
    let (_, limited) = s.token_limited("alpha", &["*"], 2).await;
    let (_, free) = s.token("alpha", &["*"]).await;
    s.synced().await;
    for _ in 0..2 {
        assert_eq!(s.get("/echo/x", &limited).await.status(), 200);
    }
    let (st, b) = error_json(s.get("/echo/x", &limited).await).await;
    assert_eq!((st, b["error"].as_str()), (429, Some("rate_limited")));
    // No limit on the other token: no RateLimit headers either.
    let r = s.get("/echo/x", &free).await;
    assert_eq!(r.status(), 200);
    assert!(!r.headers().contains_key("ratelimit-limit"));

    // HTTP/2 without TLS (prior knowledge) is served on the same port.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = h2
        .post(format!("{}/echo/h2", s.gw()))
        .header("x-api-key", &free)
        .body("over h2c")
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let seen = s.upstream.last();
    assert_eq!(seen.body_len, 8);
    assert!(seen.header("x-api-key").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_are_spliced_through() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Stack::start().await;
    let (_, key) = s.echo_token(&["echo"]).await;
    let addr = s.gw().trim_start_matches("http://").to_owned();
    let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let req = format!(
        "GET /echo/ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-API-Key: {key}\r\n\r\n"
    );
    c.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        c.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    // The upstream saw the upgrade without the caller's key, with the backend credential.
    let seen = s.upstream.last();
    assert_eq!(seen.header("upgrade"), vec!["websocket"]);
    assert!(seen.header("x-api-key").is_empty());
    assert_eq!(
        seen.header("authorization"),
        vec!["Bearer backend-secret-123"]
    );
    // Bytes flow both ways over the spliced connection.
    for msg in [&b"hello"[..], &b"over the gateway"[..]] {
        c.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut back))
            .await
            .expect("echo in time")
            .unwrap();
        assert_eq!(back, msg);
    }
}

async fn readyz(http: &reqwest::Client, g: &Running) -> serde_json::Value {
    http.get(format!("http://{}/readyz", g.admin_addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A route table that fails validation is refused whole (the previous one keeps serving, the
/// problems are reported); an unreadable KV leaves the last good configuration serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_route_tables_are_refused_and_an_unreadable_kv_keeps_the_last_good_config() {
    use keygate_contracts::token::NewToken;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kv_path = dir.path().join("kv.db");
    let kv = SqliteKv::open(&kv_path).await.unwrap();
    let first = NewToken::generate("kg").expose().to_owned();
    let second = NewToken::generate("kg").expose().to_owned();
    let good = keygate_kv_record::RouteTable {
        v: 1,
        routes: vec![plain_route("echo", "/echo", &upstream.url())],
    };
    put_records(&kv, Some(&good), &[(&first, "alpha")], 1).await;

    let g = keygate_gateway::start(test_config(kv_path.clone()))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let call = |key: String, path: &'static str| {
        let http = http.clone();
        let addr = g.addr;
        async move {
            http.get(format!("http://{addr}{path}"))
                .header("x-api-key", key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(call(first.clone(), "/echo/a").await, 200);

    // A table with one invalid route (an ftp backend) and a new route: refused whole.
    let mut bad = good.clone();
    bad.routes
        .push(plain_route("evil", "/evil", "ftp://127.0.0.1/"));
    bad.routes
        .push(plain_route("more", "/more", &upstream.url()));
    put_records(&kv, Some(&bad), &[(&second, "alpha")], 2).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let r = loop {
        let r = readyz(&http, &g).await;
        if r["revision"] == 2 {
            break r;
        }
        assert!(Instant::now() < deadline, "revision 2 not loaded: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let problems = r["route_problems"].to_string();
    assert!(
        problems.contains("rte_evil") && problems.contains("backend"),
        "{r}"
    );
    assert_eq!(r["routes"], 1, "the previous table stays: {r}");
    assert_eq!(call(first.clone(), "/echo/a").await, 200);
    assert_eq!(call(first.clone(), "/more/a").await, 404);
    // Tokens in the same batch still load.
    assert_eq!(call(second.clone(), "/echo/a").await, 200);
    let metrics = metrics_text(&http, &g).await;
    assert!(
        metrics.contains("keygate_gateway_route_tables_refused 1"),
        "{metrics}"
    );

    // The KV file becomes unreadable: the gateway keeps serving what it had, and says so.
    drop(kv);
    for suffix in ["", "-wal", "-shm"] {
        let p = format!("{}{suffix}", kv_path.display());
        let _ = std::fs::remove_file(&p);
    }
    std::fs::write(&kv_path, b"this is not a database, just garbage bytes").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let r = loop {
        let r = readyz(&http, &g).await;
        if r["kv_error"].as_str().is_some_and(|e| !e.is_empty()) {
            break r;
        }
        assert!(Instant::now() < deadline, "KV error not reported: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(r["ready"], true, "{r}");
    assert_eq!(call(first.clone(), "/echo/a").await, 200);
    assert_eq!(call(second, "/echo/b").await, 200);
    g.shutdown().await;
}

/// The control plane unreachable: the gateway keeps answering and counting. Its rollups wait
/// merged and arrive once when the control plane is back on the same address; its raw events
/// wait up to their bound (dropping the oldest, counted) and the newest arrive, with the drop
/// reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_rides_out_a_control_plane_outage() {
    let s = Stack::start_opts(Options {
        usage: true,
        usage_buffer: Some(3),
        usage_via_relay: true,
        ..Options::default()
    })
    .await;
    let (id, key) = s.echo_token(&["echo"]).await;

    // Outage: every request is still served. Two successes (one event: the first of the
    // minute), then five refusals (an event each).
    let first_minute = minute_now();
    for n in 0..2 {
        assert_eq!(s.get(&format!("/echo/{n}"), &key).await.status(), 200);
    }
    let success_events: u64 = if minute_now() == first_minute { 1 } else { 2 };
    let mut refusals = Vec::new();
    for _ in 0..5 {
        let r = s.get("/nothing", &key).await;
        assert_eq!(r.status(), 404);
        refusals.push(r.headers()["x-request-id"].to_str().unwrap().to_owned());
    }
    let text = s
        .await_metrics(
            "the sender never tried, or the workers did not hand over",
            |t| {
                metric(t, "keygate_gateway_usage_send_errors") >= 1.0
                    && metric(t, "keygate_gateway_usage_requests_counted_total") >= 7.0
            },
        )
        .await;
    assert_eq!(
        metric(&text, "keygate_gateway_usage_requests_counted_total"),
        7.0
    );
    let g = s.gateway.as_ref().unwrap();
    let ready = readyz(&s.http, g).await;
    assert_eq!(ready["usage_events_pending"], 3, "{ready}");
    assert_eq!(
        ready["usage_events_dropped"],
        success_events + 2,
        "the oldest go: {ready}"
    );
    assert!(
        ready["usage_rollups_pending"].as_u64().unwrap() >= 2,
        "{ready}"
    );
    assert!(
        s.usage_events(pb::UsageFilter {
            token_id: id.clone(),
            ..Default::default()
        })
        .await
        .is_empty()
    );

    // Back: the rollups arrive merged and once (7 calls, not more for the retries), and the
    // three newest events, once each, with the drop reported.
    s.relay.as_ref().unwrap().up().await;
    let mine = pb::UsageQuery {
        token_id: id.clone(),
        ..Default::default()
    };
    let stats = s.await_calls(mine.clone(), 7).await;
    assert_eq!((stats.calls, stats.errors), (7, 5), "{stats:?}");
    let events = s.await_token_events(&id, 3, Duration::from_secs(40)).await;
    let mut got: Vec<&str> = events.iter().map(|e| e.request_id.as_str()).collect();
    got.sort_unstable();
    let mut want: Vec<&str> = refusals[2..].iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(got, want);
    let text = s
        .await_metrics("the rollups are not all accepted", |t| {
            metric(t, "keygate_gateway_usage_rollup_requests_sent_total") >= 7.0
        })
        .await;
    assert_eq!(
        metric(&text, "keygate_gateway_usage_rollup_requests_sent_total"),
        7.0
    );
    assert_eq!(metric(&text, "keygate_gateway_usage_rollups_pending"), 0.0);
    assert_eq!(metric(&text, "keygate_gateway_usage_events_sent"), 3.0);
    assert_eq!(metric(&text, "keygate_gateway_usage_events_pending"), 0.0);
    assert_eq!(s.usage_stats(mine).await.calls, 7, "counted once");
    let me = s.reported_gateway().await;
    assert_eq!(
        (me.events_total, me.dropped_total),
        (3, success_events + 2),
        "{me:?}"
    );
    assert_eq!(me.requests_last_hour, 7, "{me:?}");
}

/// At the default flush interval (10 s), requests through the gateway show up within 15 s
/// of the last one in the summary, the per-token batch and detail, and a live tail started
/// before them.
async fn analytics_show_requests_within_15_s(backend: Backend) {
    let s = Stack::start_opts(Options {
        backend,
        usage: true,
        usage_flush_ms: Some(10_000),
        ..Options::default()
    })
    .await;
    let (id, key) = s.echo_token(&["echo"]).await;
    let mut usage = UsageServiceClient::new(s.channel().await);
    let mut tail = usage
        .tail_usage_events(with_key(
            &s.api_key,
            pb::TailUsageEventsRequest {
                filter: Some(pb::UsageFilter {
                    token_id: id.clone(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..5 {
        assert_eq!(s.get("/echo/a", &key).await.status(), 200);
    }
    assert_eq!(s.get("/nothing", &key).await.status(), 404);
    let last = Instant::now();
    let deadline = last + Duration::from_secs(15);

    // The tail: the token's first success of the minute (and the 404) as raw events.
    let ev = tokio::time::timeout_at(deadline.into(), tail.message())
        .await
        .expect("an event in the tail within 15 s")
        .unwrap()
        .expect("the tail is open");
    assert_eq!(ev.token_id, id);
    loop {
        let summary = usage
            .get_usage_summary(with_key(
                &s.api_key,
                pb::GetUsageSummaryRequest {
                    query: Some(pb::UsageQuery {
                        token_id: id.clone(),
                        ..Default::default()
                    }),
                    step_seconds: 0,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .total
            .unwrap_or_default();
        if summary.calls == 6 {
            assert_eq!(summary.errors, 1);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not in the summary within 15 s: {summary:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let batch = usage
        .batch_get_token_usage(with_key(
            &s.api_key,
            pb::BatchGetTokenUsageRequest {
                token_ids: vec![id.clone()],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .usage;
    assert_eq!((batch[0].calls, batch[0].errors), (6, 1));
    let detail = usage
        .get_token_usage(with_key(
            &s.api_key,
            pb::GetTokenUsageRequest {
                token_id: id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(detail.total.unwrap().calls, 6);
    let statuses: Vec<(u32, u64)> = detail
        .statuses
        .iter()
        .map(|x| (x.status, x.calls))
        .collect();
    assert_eq!(statuses, vec![(200, 5), (404, 1)]);
    assert!(detail.last_used_at.is_some());
    assert!(Instant::now() < deadline, "all answers within 15 s");
}

keygate_control_plane::on_both_backends!(
    revocation_and_team_deletion_take_effect_without_restart,
    usage_reaches_the_control_plane_and_sets_last_used,
    analytics_show_requests_within_15_s,
);
