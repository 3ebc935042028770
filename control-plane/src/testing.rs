//! Helpers for tests and benchmarks: throwaway databases (a SQLite file in a temp dir, or a
//! fresh database on the PostgreSQL server named by `KEYGATE_TEST_PG_URL`) and a real control
//! plane on `127.0.0.1:0`. Not used by the binary.

pub mod old_system;

use crate::alerts::AlertSettings;
use crate::context::RequestContext;
use crate::ids::{SessionId, TeamId, UserId};
use crate::passwords;
use crate::policy::Role;
use crate::secrets::MasterKey;
use crate::server::{ServerParts, serve};
use crate::sessions::service::AuthSettings;
use crate::sessions::{NewSession, SESSION_PREFIX};
use crate::store::{self, DynStore};
use crate::system::SystemSettings;
use crate::users::NewUser;
use keygate_contracts::token::NewToken;
use std::net::SocketAddr;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Environment variable naming the PostgreSQL server tests create databases on.
pub const PG_ENV: &str = "KEYGATE_TEST_PG_URL";

/// Which storage backend (SQLite, the embedded default, unless said otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    #[default]
    Sqlite,
    Postgres,
}

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    /// Holds the SQLite file (or nothing) until the test ends.
    pub dir: TempDir,
}

/// The admin URL of the test PostgreSQL server. Panics with instructions when unset: the
/// PostgreSQL half of the suite must not pass by being skipped.
pub fn pg_admin_url() -> String {
    std::env::var(PG_ENV).unwrap_or_else(|_| {
        panic!(
            "{PG_ENV} is not set. Run ./scripts/test.sh (it starts a throwaway PostgreSQL), \
             or set {PG_ENV}=postgres://user@127.0.0.1:port/postgres"
        )
    })
}

/// Creates a fresh, empty database for one test.
pub async fn test_db(backend: Backend) -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("keygate.db").display()),
        Backend::Postgres => {
            use sqlx::Connection;
            let admin = pg_admin_url();
            let name = format!("kg_test_{}", uuid::Uuid::now_v7().simple());
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to {PG_ENV}: {e}"));
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let mut u = url::Url::parse(&admin).expect("valid postgres url");
            u.set_path(&format!("/{name}"));
            u.to_string()
        }
    };
    TestDb { url, backend, dir }
}

/// A control plane serving on `127.0.0.1:<ephemeral>` until dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    /// Bearer credential (a session token) of the system admin `admin@keygate.test`.
    pub admin_key: String,
    pub admin_id: UserId,
    pub store: DynStore,
    pub db: TestDb,
    pub master_key: MasterKey,
    /// What the server runs with (its `store` is replaced on restart).
    parts: ServerParts,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

/// A user made for a test, with a live session.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: UserId,
    pub email: String,
    /// Session token.
    pub token: String,
}

/// Password every test user gets.
pub const TEST_PASSWORD: &str = "correct horse battery staple";

impl TestServer {
    /// Starts a server on a fresh database of `backend`.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, vec!["http://admin.test".into()]).await
    }

    /// Starts a server with the given CORS origins.
    pub async fn start_with(backend: Backend, cors_origins: Vec<String>) -> Self {
        Self::start_on(test_db(backend).await, cors_origins).await
    }

    /// Starts a server on an existing database (for example one a benchmark seeded), with a
    /// system admin `admin@keygate.test` (created if missing) signed in.
    pub async fn start_on(db: TestDb, cors_origins: Vec<String>) -> Self {
        Self::start_full(db, cors_origins, AuthSettings::default()).await
    }

    /// Starts a server with explicit sign-in settings (for rate-limit tests).
    pub async fn start_full(db: TestDb, cors_origins: Vec<String>, auth: AuthSettings) -> Self {
        Self::start_configured(db, cors_origins, auth, AlertSettings::default()).await
    }

    /// Starts a server on a fresh database of `backend` with alert settings (a webhook
    /// allow-list for receivers on 127.0.0.1). The evaluator does not run on its own: tests
    /// call `alerts::evaluate::run_once`.
    pub async fn start_with_alerts(backend: Backend, alerts: AlertSettings) -> Self {
        let db = test_db(backend).await;
        Self::start_configured(db, vec![], AuthSettings::default(), alerts).await
    }

    /// Starts a server on a fresh database of `backend` whose parts `adjust` changed first
    /// (system settings, cookie settings, the admin UI's directory, ...).
    pub async fn start_adjusted(backend: Backend, adjust: impl FnOnce(&mut ServerParts)) -> Self {
        let db = test_db(backend).await;
        Self::start_inner(
            db,
            vec!["http://admin.test".into()],
            AuthSettings::default(),
            AlertSettings::default(),
            adjust,
        )
        .await
    }

    async fn start_configured(
        db: TestDb,
        cors_origins: Vec<String>,
        auth: AuthSettings,
        alerts: AlertSettings,
    ) -> Self {
        Self::start_inner(db, cors_origins, auth, alerts, |_| {}).await
    }

    async fn start_inner(
        db: TestDb,
        cors_origins: Vec<String>,
        auth: AuthSettings,
        alerts: AlertSettings,
        adjust: impl FnOnce(&mut ServerParts),
    ) -> Self {
        let store = store::open(&db.url).await.expect("open store");
        let admin = match store
            .find_user_by_email("admin@keygate.test")
            .await
            .expect("lookup")
        {
            Some((u, _)) => u.id,
            None => {
                store
                    .create_user(
                        &RequestContext::system("test"),
                        NewUser {
                            id: UserId::generate(),
                            email: "admin@keygate.test".into(),
                            display_name: "Test Admin".into(),
                            password_hash: passwords::hash(TEST_PASSWORD),
                            system_admin: true,
                        },
                        &[],
                    )
                    .await
                    .expect("create admin")
                    .id
            }
        };
        let admin_key = session_for(&store, &admin).await;
        let master_key = MasterKey::from_bytes(&[42; 32]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut parts = ServerParts {
            store: store.clone(),
            master_key: master_key.clone(),
            cors_origins,
            auth,
            edge_key: MasterKey::from_bytes(&[7; 32]),
            alerts,
            system: SystemSettings::default(),
            public_url: None,
            admin_web: crate::web::AdminWebSource::Embedded,
        };
        adjust(&mut parts);
        let (tx, handle) = launch(listener, parts.clone());
        Self {
            addr,
            admin_key,
            admin_id: admin,
            store,
            db,
            master_key,
            parts,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Starts a server with no users at all (first-start setup tests). `admin_key` is empty.
    pub async fn start_empty(backend: Backend) -> Self {
        let db = test_db(backend).await;
        let store = store::open(&db.url).await.expect("open store");
        let master_key = MasterKey::from_bytes(&[42; 32]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let parts = ServerParts {
            store: store.clone(),
            master_key: master_key.clone(),
            cors_origins: vec![],
            auth: AuthSettings::default(),
            edge_key: MasterKey::from_bytes(&[7; 32]),
            alerts: AlertSettings::default(),
            system: SystemSettings::default(),
            public_url: None,
            admin_web: crate::web::AdminWebSource::Embedded,
        };
        let (tx, handle) = launch(listener, parts.clone());
        Self {
            addr,
            admin_key: String::new(),
            admin_id: UserId(String::new()),
            store,
            db,
            master_key,
            parts,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Creates a user (password [`TEST_PASSWORD`]) with team roles and a live session.
    pub async fn user(&self, email: &str, roles: &[(&str, Role)]) -> TestUser {
        let roles: Vec<(TeamId, Role)> = roles
            .iter()
            .map(|(t, r)| (TeamId((*t).into()), *r))
            .collect();
        let user = self
            .store
            .create_user(
                &RequestContext::system("test"),
                NewUser {
                    id: UserId::generate(),
                    email: email.into(),
                    display_name: email.split('@').next().unwrap_or(email).into(),
                    password_hash: passwords::hash(TEST_PASSWORD),
                    system_admin: false,
                },
                &roles,
            )
            .await
            .expect("create user");
        TestUser {
            token: session_for(&self.store, &user.id).await,
            id: user.id,
            email: email.into(),
        }
    }

    /// A management key of a new service account (in team `ops`, created if missing) with
    /// `capability`: what kv-sync (SYNC) and gateways (GATEWAY) authenticate with.
    pub async fn capability_key(&self, capability: crate::service_accounts::Capability) -> String {
        let team = TeamId("ops".into());
        crate::bootstrap::ensure_team(&self.store, &team, "Ops", "")
            .await
            .expect("create team ops");
        crate::bootstrap::create_capability_key(
            &self.store,
            &team,
            format!("{}-{}", capability.as_str(), rand::random::<u32>()),
            String::new(),
            capability,
        )
        .await
        .expect("create service account and key")
    }

    /// Stops the server and starts a new one on the same address over the same database,
    /// with a freshly opened store (new pools): what a process restart looks like to clients.
    pub async fn restart(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
        let store = store::open(&self.db.url).await.expect("reopen store");
        // The port was just released; binding it again can race the kernel briefly.
        let mut listener = None;
        for _ in 0..100 {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
        let listener = listener.expect("rebind the same port");
        self.parts.store = store.clone();
        let (tx, handle) = launch(listener, self.parts.clone());
        self.handle = Some(handle);
        self.shutdown = Some(tx);
        self.store = store;
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A connected HTTP/2 channel.
    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(self.url())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect")
    }

    /// Wraps `msg` in a request carrying the admin's credential.
    pub fn request<T>(&self, msg: T) -> tonic::Request<T> {
        with_key(&self.admin_key, msg)
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }
}

/// Serves `parts` on `listener` until the returned sender fires (or is dropped).
fn launch(
    listener: tokio::net::TcpListener,
    parts: ServerParts,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        serve(listener, parts, async {
            let _ = rx.await;
        })
        .await
        .expect("server");
    });
    (tx, handle)
}

/// Opens a 12-hour session for `user` directly in the store; returns its bearer token.
pub async fn session_for(store: &DynStore, user: &UserId) -> String {
    let token = NewToken::generate(SESSION_PREFIX);
    store
        .create_session(
            &RequestContext::system("test"),
            NewSession {
                id: SessionId::generate(),
                user_id: user.clone(),
                token_hash: token.hash(),
                expires_at: crate::time::now_ms() + 12 * 3_600_000,
            },
        )
        .await
        .expect("create session");
    token.expose().to_owned()
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

/// Wraps `msg` in a request with `authorization: Bearer <key>`.
pub fn with_key<T>(key: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("ascii key"),
    );
    r
}

/// For each `async fn NAME(backend: Backend)` in the calling module, declares the tests
/// `sqlite::NAME` and `postgres::NAME` running it on each storage backend (the PostgreSQL half
/// needs [`PG_ENV`]; `./scripts/test.sh` provides a server). The caller needs `tokio` with
/// its test macros.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A grpc-web answer as a browser sees it (HTTP/1.1, `application/grpc-web+proto`).
#[derive(Debug)]
pub struct GrpcWebAnswer {
    /// HTTP status (200 for any gRPC outcome).
    pub http_status: u16,
    /// The HTTP response headers (`set-cookie`, CORS, `x-request-id`, and for trailers-only
    /// answers `grpc-status`).
    pub headers: reqwest::header::HeaderMap,
    /// The first message frame, if any.
    pub message: Option<Vec<u8>>,
    /// `grpc-status` from the headers or the trailer frame.
    pub grpc_status: i32,
    pub grpc_message: String,
    /// Base64 `grpc-status-details-bin` (a `google.rpc.Status`), if sent.
    pub details_bin: Option<String>,
}

impl GrpcWebAnswer {
    /// The decoded first message.
    pub fn decode<M: prost::Message + Default>(&self) -> M {
        M::decode(self.message.as_deref().expect("a message frame")).expect("decodes")
    }
}

/// Calls `path` (`/keygate.v1.Service/Method`) over grpc-web on HTTP/1.1 with `headers`
/// added (e.g. `x-grpc-web`, `origin`, `cookie`, `authorization`), as a browser would.
pub async fn grpc_web_call(
    http: &reqwest::Client,
    base_url: &str,
    path: &str,
    msg: &impl prost::Message,
    headers: &[(&str, &str)],
) -> GrpcWebAnswer {
    let msg = msg.encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    body.extend_from_slice(&msg);
    let mut req = http
        .post(format!("{base_url}{path}"))
        .header("content-type", "application/grpc-web+proto")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("grpc-web call");
    let http_status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut grpc_status = header("grpc-status").and_then(|v| v.parse().ok());
    let mut grpc_message = header("grpc-message").unwrap_or_default();
    let mut details_bin = header("grpc-status-details-bin");
    let bytes = resp.bytes().await.expect("grpc-web body");
    let mut message = None;
    let mut i = 0usize;
    // Frames: flag 0x00 = message, 0x80 = trailers (`name:value` lines).
    while i + 5 <= bytes.len() {
        let flag = bytes[i];
        let len = u32::from_be_bytes(bytes[i + 1..i + 5].try_into().expect("4 bytes")) as usize;
        let frame = &bytes[i + 5..i + 5 + len];
        if flag & 0x80 == 0 {
            message.get_or_insert_with(|| frame.to_vec());
        } else {
            for line in String::from_utf8_lossy(frame).split("\r\n") {
                let Some((k, v)) = line.split_once(':') else {
                    continue;
                };
                let v = v.trim().to_owned();
                match k.trim().to_ascii_lowercase().as_str() {
                    "grpc-status" => grpc_status = v.parse().ok(),
                    "grpc-message" => grpc_message = v,
                    "grpc-status-details-bin" => details_bin = Some(v),
                    _ => {}
                }
            }
        }
        i += 5 + len;
    }
    GrpcWebAnswer {
        http_status,
        headers,
        message,
        grpc_status: grpc_status.unwrap_or(-1),
        grpc_message,
        details_bin,
    }
}
