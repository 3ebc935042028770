//! Starting and stopping a gateway: the KV loader, the usage sender (and each worker's
//! usage hand-over), the public listener
//! (each connection served by the HTTP/1.1 fast path [`crate::h1`] first, by hyper — HTTP/1.1,
//! h2c, upgrades — from the first request the fast path does not take) and the admin
//! listener (`/healthz`, `/readyz`, `/metrics`).

use crate::config::Config;
use crate::h1;
use crate::host::{self, App};
use crate::metrics::Metrics;
use crate::proxy;
use crate::snapshot::{ConfigState, Loader};
use crate::usage::{self, UsageHub};
use anyhow::Context;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use keygate_gateway_core as core;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A started gateway. Dropping it does not stop it; call [`Running::shutdown`].
pub struct Running {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub app: Arc<App>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets requests in flight finish (up to 10 s), reports usage once more
    /// (the workers' last rollups and the events still buffered).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let workers = self.workers;
        let _ = tokio::task::spawn_blocking(move || {
            for w in workers {
                let _ = w.join();
            }
        })
        .await;
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
    }
}

/// Binds `addr` with `SO_REUSEPORT`, so each worker thread can have its own listener on the
/// same port and the kernel spreads connections over them.
fn reuseport_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// How many worker threads serve the public listener: `KEYGATE_GATEWAY_WORKERS`, else one
/// per CPU.
fn worker_count(configured: usize) -> usize {
    if configured > 0 {
        configured
    } else {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }
}

/// Starts everything from `config`. Fails on configuration errors (bad edge key, port in
/// use); a missing or unreadable KV is not an error: the gateway answers 503 until it loads.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    start_with(config, None).await
}

/// A public listener handed over by whoever started the gateway (systemd socket activation,
/// `scripts/run.sh`), taken by [`inherited_listener`].
pub struct Inherited(std::net::TcpListener);

/// The public listener passed by the socket-activation protocol (`LISTEN_FDS=1`, the socket
/// at fd 3; `LISTEN_PID`, when set, must be this process), if any. Reads and clears those
/// variables, so call it once, before any other thread starts. A passed socket outlives the
/// gateway process: while a supervisor restarts the gateway, new connections wait in the
/// socket's backlog instead of being refused.
pub fn inherited_listener() -> anyhow::Result<Option<Inherited>> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    anyhow::ensure!(
        fds.len() == 1,
        "LISTEN_FDS={}: the gateway takes exactly one socket (its public listener)",
        fds.len()
    );
    let l = fds
        .take_tcp_listener(0)
        .context("LISTEN_FDS: fd 3 is not a listening TCP socket")?
        .context("LISTEN_FDS: fd 3 was already taken")?;
    Ok(Some(Inherited(l)))
}

/// [`start`], serving on `inherited` (when given) instead of binding `config.listen`.
pub async fn start_with(config: Config, inherited: Option<Inherited>) -> anyhow::Result<Running> {
    let key_text = config.edge_key_text().map_err(anyhow::Error::msg)?;
    let edge_key =
        core::EdgeKey::from_base64(&key_text).map_err(|e| anyhow::anyhow!("edge key: {e}"))?;
    let gateway_key = config
        .gateway_key_text()
        .map_err(anyhow::Error::msg)?
        .filter(|k| !k.is_empty());
    if gateway_key.is_none() {
        tracing::warn!(
            "no gateway key (KEYGATE_GATEWAY_KEY / KEYGATE_GATEWAY_KEY_FILE): usage is not reported (requests are counted in metrics only)"
        );
    }

    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let state = Arc::new(ConfigState::default());
    let mut loader = Loader::new(config.kv_path.clone(), edge_key, state.clone());
    // One load before listening, so a gateway started on a ready KV never answers 503.
    loader.poll().await;
    let mut tasks = vec![tokio::spawn(loader.run(config.poll(), stop_rx.clone()))];

    let metrics = Arc::new(Metrics::new());
    let usage = Arc::new(UsageHub::new(
        usage::Settings {
            enabled: gateway_key.is_some(),
            buffer: config.usage_buffer as usize,
            flush: Duration::from_millis(config.usage_flush_ms),
            event_budget: config.usage_event_budget,
            max_pending_rollups: config.usage_max_pending_rollups as usize,
        },
        metrics.usage.clone(),
    ));
    // Each worker thread holds a sender and hands its rollups over through it; the channel
    // closes when the last worker thread has ended, which tells the usage sender that every
    // request is counted.
    let mut handover = None;
    if let Some(key) = gateway_key {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        handover = Some(tx);
        tasks.push(tokio::spawn(usage::run_sender(
            usage.clone(),
            rx,
            state.clone(),
            usage::Target {
                addr: config.control_plane.clone(),
                key,
                gateway: config.name.clone(),
            },
            stop_rx.clone(),
        )));
    }
    let app = Arc::new(App::new(
        state.clone(),
        usage.clone(),
        metrics.clone(),
        core::Config {
            legacy_prefixes: config.legacy_prefixes.clone(),
        },
        config.public_url.clone(),
    ));

    // The public listener: one thread per worker, each with a single-threaded runtime, its
    // own SO_REUSEPORT listener and its own backend pool, so a request never changes threads
    // (the way nginx runs one event loop per worker process).
    // A handed-over socket is shared by the workers (each accepts on its own clone of it).
    let mut listeners = Vec::new();
    let addr = match inherited {
        Some(Inherited(l)) => {
            l.set_nonblocking(true)?;
            let addr = l.local_addr()?;
            for _ in 1..worker_count(config.workers) {
                listeners.push(l.try_clone()?);
            }
            listeners.push(l);
            tracing::info!(%addr, "serving on the listener handed over (LISTEN_FDS)");
            addr
        }
        None => {
            let first = reuseport_listener(config.listen)
                .with_context(|| format!("listening on {}", config.listen))?;
            let addr = first.local_addr()?;
            listeners.push(first);
            for _ in 1..worker_count(config.workers) {
                listeners.push(
                    reuseport_listener(addr).with_context(|| format!("listening on {addr}"))?,
                );
            }
            addr
        }
    };
    let mut workers = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let app = app.clone();
        let stop = stop_rx.clone();
        let handover = handover.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting a worker runtime")?;
        workers.push(
            std::thread::Builder::new()
                .name(format!("gateway-worker-{i}"))
                .spawn(move || {
                    app.usage.install_worker();
                    rt.block_on(async {
                        crate::metrics::set_thread_worker(i);
                        match TcpListener::from_std(l) {
                            // A LocalSet: connection tasks hold the thread's own pool.
                            Ok(l) => {
                                tokio::task::LocalSet::new()
                                    .run_until(serve_public(
                                        l,
                                        app.clone(),
                                        i,
                                        stop,
                                        handover.clone(),
                                    ))
                                    .await
                            }
                            Err(e) => tracing::error!(error = %e, "worker listener failed"),
                        }
                    });
                    // Requests still open were dropped with the runtime (and recorded if
                    // answered): hand over the last counts, then close this worker's end.
                    drop(rt);
                    if let Some(tx) = handover
                        && let Some(h) = app.usage.hand_over()
                    {
                        let _ = tx.send(h);
                    }
                })
                .context("starting a worker thread")?,
        );
    }
    let admin = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("listening on {} (admin)", config.admin_listen))?;
    let admin_addr = admin.local_addr()?;
    tasks.push(tokio::spawn(serve_admin(
        admin,
        app.clone(),
        stop_rx.clone(),
    )));
    // Idle rate-limit states are forgotten once a minute.
    {
        let app = app.clone();
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(60)) => app.prune_limits(now_ms()),
                    _ = stop.changed() => return,
                }
            }
        }));
    }
    tracing::info!(%addr, %admin_addr, "gateway listening");
    Ok(Running {
        addr,
        admin_addr,
        app,
        stop,
        tasks,
        workers,
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn serve_public(
    listener: TcpListener,
    app: Arc<App>,
    index: usize,
    mut stop: tokio::sync::watch::Receiver<bool>,
    handover: Option<tokio::sync::mpsc::UnboundedSender<usage::Handover>>,
) {
    // This worker's rollups go to the usage sender every flush interval.
    if let Some(tx) = handover {
        let app = app.clone();
        tokio::task::spawn_local(async move {
            let every = app.usage.flush_every();
            let mut next = tokio::time::Instant::now() + every;
            loop {
                tokio::time::sleep_until(next).await;
                next += every;
                if let Some(h) = app.usage.hand_over()
                    && tx.send(h).is_err()
                {
                    return;
                }
            }
        });
    }
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Flatten each response into one buffer and one write(2): API answers are mostly small,
    // and copying a few hundred bytes is cheaper than hyper's queue of buffers + writev.
    // Large bodies pass through hyper's bounded write buffer (one extra memcpy per chunk).
    builder.http1().writev(false);
    let builder = Rc::new(builder);
    let worker = Arc::new(host::Worker::new(
        app,
        host::Backends::new(crate::pool::backend_client()),
        index,
    ));
    // The fast path's backend connections, this thread's only.
    let pool = Rc::new(h1::Pool::default());
    {
        let pool = Rc::downgrade(&pool);
        tokio::task::spawn_local(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                match pool.upgrade() {
                    Some(p) => p.sweep(),
                    None => return,
                }
            }
        });
    }
    // This worker's own stop signal (connections wait on it between requests; a channel
    // local to the thread keeps them off the shared one), and a sender per connection so
    // shutdown can wait for the last one to end.
    let (local_stop, local_rx) = tokio::sync::watch::channel(false);
    let (alive, mut all_ended) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, don't spin or exit.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (worker, pool, builder) = (worker.clone(), pool.clone(), builder.clone());
                let mut stop = local_rx.clone();
                let alive = alive.clone();
                tokio::task::spawn_local(async move {
                    let _alive = alive;
                    let peer = host::Peer::new(peer);
                    let io = match h1::serve(&worker, &pool, stream, &peer, &mut stop).await {
                        h1::End::Closed => return,
                        h1::End::Handoff(io) => io,
                    };
                    worker.app.metrics.handoffs.inc();
                    drop(pool);
                    let service = service_fn(move |req: Request<Incoming>| {
                        proxy::handle(worker.clone(), req, peer.clone())
                    });
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                    tokio::pin!(conn);
                    let ended = tokio::select! {
                        r = conn.as_mut() => Some(r),
                        _ = stop.changed() => None,
                    };
                    let result = match ended {
                        Some(r) => r,
                        None => {
                            conn.as_mut().graceful_shutdown();
                            conn.await
                        }
                    };
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let _ = local_stop.send(true);
    drop(alive);
    if tokio::time::timeout(Duration::from_secs(10), all_ended.recv())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after 10 s; closing them");
    }
}

async fn serve_admin(
    listener: TcpListener,
    app: Arc<App>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let app = app.clone();
                let service = service_fn(move |req: Request<Incoming>| {
                    let app = app.clone();
                    async move { Ok::<_, std::convert::Infallible>(admin(&app, req.uri().path())) }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = stop.changed() => return,
        }
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

/// `/readyz` body.
#[derive(serde::Serialize)]
struct Readiness {
    ready: bool,
    revision: i64,
    kv_age_seconds: Option<f64>,
    tokens: usize,
    routes: usize,
    #[serde(flatten)]
    status: crate::snapshot::LoadStatus,
    usage_events_pending: usize,
    usage_events_dropped: u64,
    /// Rollup rows held for the control plane (pending and in flight).
    usage_rollups_pending: u64,
    /// Requests whose rollups were dropped, since start.
    usage_rollups_dropped: u64,
}

fn readiness(app: &App) -> Readiness {
    let snap = app.state.load();
    let status = app.state.status();
    Readiness {
        ready: snap.is_some(),
        revision: snap.as_ref().map_or(0, |s| s.revision),
        kv_age_seconds: snap
            .as_ref()
            .filter(|s| s.written_at_ms > 0)
            .map(|s| (now_ms() - s.written_at_ms) as f64 / 1000.0),
        tokens: snap.as_ref().map_or(0, |s| s.tokens.len()),
        routes: snap.as_ref().map_or(0, |s| s.routes.len()),
        status,
        usage_events_pending: app.usage.events.len(),
        usage_events_dropped: app.usage.events.dropped_total.load(Ordering::Relaxed),
        usage_rollups_pending: app.usage.rollups_pending(),
        usage_rollups_dropped: app.usage.counters.rollups_dropped.get(),
    }
}

fn admin(app: &App, path: &str) -> Response<Full<Bytes>> {
    match path {
        "/healthz" => text(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => {
            let r = readiness(app);
            let status = if r.ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let body = serde_json::to_string(&r).unwrap_or_default();
            text(status, "application/json", body)
        }
        "/metrics" => {
            let r = readiness(app);
            let m = &app.metrics;
            m.config_revision.set(r.revision);
            m.kv_age_seconds.set(r.kv_age_seconds.unwrap_or(-1.0));
            m.tokens.set(r.tokens as i64);
            m.routes.set(r.routes as i64);
            m.ready.set(i64::from(r.ready));
            m.kv_errors.set(r.status.kv_errors_total as i64);
            m.route_tables_refused
                .set(r.status.route_tables_refused_total as i64);
            m.usage_pending.set(r.usage_events_pending as i64);
            m.usage_dropped.set(r.usage_events_dropped as i64);
            m.usage_sent
                .set(app.usage.events.sent_total.load(Ordering::Relaxed) as i64);
            m.usage_send_errors
                .set(app.usage.events.send_errors_total.load(Ordering::Relaxed) as i64);
            m.usage_rollups_pending.set(r.usage_rollups_pending as i64);
            text(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                m.encode(),
            )
        }
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}
