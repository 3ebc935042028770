//! The control plane a kv-sync case runs against: the real server ([`TestServer`]) on
//! `127.0.0.1:0` over a fresh database (a SQLite file in a temporary directory, or a
//! `kg_bench_kvsync_*` database this module creates and drops on the PostgreSQL server the
//! caller names), a team, and a management key of a SYNC service account for the follower.
//!
//! Token changes are produced through the store API (`Store::create_token`, the call the
//! CreateToken RPC makes after authorisation), which writes the token, its audit entry and one
//! change event in one transaction, exactly as the API does.

use crate::BenchError;
use crate::control_plane::setup::Place;
use futures::StreamExt;
use keygate_contracts::scope::Scope;
use keygate_contracts::token::{API_TOKEN_PREFIX, MANAGEMENT_KEY_PREFIX, NewToken};
use keygate_control_plane::context::RequestContext;
use keygate_control_plane::ids::{KeyId, ServiceAccountId, TeamId, TokenId};
use keygate_control_plane::policy::Role;
use keygate_control_plane::service_accounts::{Capability, NewManagementKey, NewServiceAccount};
use keygate_control_plane::store::DynStore;
use keygate_control_plane::teams::NewTeam;
use keygate_control_plane::testing::{Backend, TestDb, TestServer};
use keygate_control_plane::tokens::NewTokenRecord;
use sqlx::{AssertSqlSafe, Connection};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The team every benchmark token belongs to.
pub const TEAM: &str = "kv-bench";

/// The edge key the control plane seals route secrets to: [`TestServer`] always serves with
/// these 32 bytes (`control-plane/src/testing.rs`). A gateway reading what kv-sync wrote
/// from this plane needs the same key.
pub const EDGE_KEY: [u8; 32] = [7; 32];

fn ctx() -> RequestContext {
    RequestContext::system("keygate-bench")
}

/// A running control plane with a SYNC key.
pub struct Plane {
    server: TestServer,
    /// Management key of the SYNC service account (what `KEYGATE_SYNC_KEY` holds).
    pub sync_key: String,
    pub team: TeamId,
    pg: Option<PgDb>,
}

struct PgDb {
    admin_url: String,
    name: String,
}

/// Tokens produced through the store, and how long producing took.
pub struct Produced {
    /// `(id, sha256 hex of the plaintext)` in creation order.
    pub tokens: Vec<(TokenId, String)>,
    /// The plaintexts, in the same order (for callers that present the keys).
    pub secrets: Vec<NewToken>,
    pub wall: Duration,
    /// Head revision before and after.
    pub head_before: i64,
    pub head_after: i64,
}

impl Plane {
    /// Starts a control plane over a fresh database of `backend`.
    pub async fn start(backend: Backend, place: &Place) -> Result<Self, BenchError> {
        let mut b = tempfile::Builder::new();
        b.prefix("keygate-bench-kv-");
        let dir = match &place.work_dir {
            Some(w) => b.tempdir_in(w),
            None => b.tempdir(),
        }
        .map_err(|e| BenchError::Setup(format!("temp dir: {e}")))?;
        let (url, pg) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("keygate.db").display()),
                None,
            ),
            Backend::Postgres => {
                let admin_url = place.pg_admin_url.clone().ok_or_else(|| {
                    BenchError::Setup(
                        "PostgreSQL needs a server: set KEYGATE_TEST_PG_URL or --pg-url".into(),
                    )
                })?;
                let name = format!(
                    "kg_bench_kvsync_{}_{}",
                    std::process::id(),
                    keygate_control_plane::time::now_ms()
                );
                let mut conn = sqlx::PgConnection::connect(&admin_url).await?;
                sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
                let mut u = url::Url::parse(&admin_url)
                    .map_err(|e| BenchError::Setup(format!("bad PostgreSQL URL: {e}")))?;
                u.set_path(&format!("/{name}"));
                (u.to_string(), Some(PgDb { admin_url, name }))
            }
        };
        let server = TestServer::start_on(TestDb { url, backend, dir }, Vec::new()).await;
        let team = TeamId(TEAM.into());
        let mut plane = Self {
            server,
            sync_key: String::new(),
            team,
            pg,
        };
        plane
            .server
            .store
            .create_team(
                &ctx(),
                NewTeam {
                    id: plane.team.clone(),
                    name: "kv-sync benchmark".into(),
                    description: String::new(),
                    color: String::new(),
                    icon: String::new(),
                },
                None,
            )
            .await?;
        plane.sync_key = plane.create_sync_key().await?;
        Ok(plane)
    }

    async fn create_sync_key(&self) -> Result<String, BenchError> {
        let store = &self.server.store;
        let sa = store
            .create_service_account(
                &ctx(),
                NewServiceAccount {
                    id: ServiceAccountId::generate(),
                    team_id: self.team.clone(),
                    name: "kv-sync".into(),
                    description: String::new(),
                    role: Role::Viewer,
                    capability: Capability::Sync,
                },
            )
            .await?;
        let k = NewToken::generate(MANAGEMENT_KEY_PREFIX);
        store
            .create_management_key(
                &ctx(),
                NewManagementKey {
                    id: KeyId::generate(),
                    service_account_id: Some(sa.id),
                    name: "kv-sync bench".into(),
                    key_hash: k.hash(),
                    preview: k.preview(),
                    is_bootstrap: false,
                    expires_at: None,
                },
            )
            .await?;
        Ok(k.expose().to_owned())
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Bearer credential of the system admin (for RevokeToken).
    pub fn admin_key(&self) -> &str {
        &self.server.admin_key
    }

    pub fn store(&self) -> &DynStore {
        &self.server.store
    }

    /// The newest committed revision.
    pub async fn head(&self) -> Result<i64, BenchError> {
        Ok(self.server.store.head_revision().await?)
    }

    /// Creates `n` live tokens (scope `*`, expiring in 90 days) with `concurrency` calls in
    /// flight; each writes one change event. Prints progress every tenth under `label`.
    pub async fn create_tokens(
        &self,
        n: usize,
        concurrency: usize,
        label: &str,
    ) -> Result<Produced, BenchError> {
        let head_before = self.head().await?;
        let store = self.server.store.clone();
        let team = self.team.clone();
        let expires = keygate_control_plane::time::now_ms() + 90 * 86_400_000;
        let started = Instant::now();
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let step = n.div_ceil(10).max(1);
        let mut results = futures::stream::iter(0..n)
            .map(|i| {
                let store = store.clone();
                let team = team.clone();
                let done = done.clone();
                async move {
                    let secret = NewToken::generate(API_TOKEN_PREFIX);
                    let id = TokenId::generate();
                    store
                        .create_token(
                            &ctx(),
                            NewTokenRecord {
                                id: id.clone(),
                                team_id: team,
                                name: format!("kv-bench-{i}"),
                                description: "created by keygate-bench kv-sync".into(),
                                scopes: vec![Scope::All],
                                token_hash: secret.hash(),
                                preview: secret.preview(),
                                expires_at: Some(expires),
                                rate_limit_per_minute: 0,
                            },
                        )
                        .await?;
                    let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    if d.is_multiple_of(step) || d == n {
                        let secs = started.elapsed().as_secs_f64();
                        eprintln!(
                            "  {label}: {d}/{n} tokens created, {secs:.1} s ({:.0}/s)",
                            d as f64 / secs.max(1e-9)
                        );
                    }
                    Ok::<_, BenchError>((id, secret.hash(), secret))
                }
            })
            .buffered(concurrency.max(1));
        let mut tokens = Vec::with_capacity(n);
        let mut secrets = Vec::with_capacity(n);
        while let Some(r) = results.next().await {
            let (id, hash, secret) = r?;
            tokens.push((id, hash));
            secrets.push(secret);
        }
        let wall = started.elapsed();
        Ok(Produced {
            tokens,
            secrets,
            wall,
            head_before,
            head_after: self.head().await?,
        })
    }

    /// Stops the server and drops the PostgreSQL database this plane created (the SQLite
    /// file goes with its temporary directory).
    pub async fn stop(self) -> Result<(), BenchError> {
        self.server.stop().await;
        if let Some(db) = self.pg {
            let mut conn = sqlx::PgConnection::connect(&db.admin_url).await?;
            sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                db.name
            )))
            .execute(&mut conn)
            .await?;
            conn.close().await?;
        }
        Ok(())
    }
}

/// Waits (polling every `every`, bounded by `within`) until `check` returns `Some`.
pub async fn poll_until<T, F, Fut>(
    within: Duration,
    every: Duration,
    what: &str,
    mut check: F,
) -> Result<T, BenchError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Setup(format!(
                "timed out after {:.0} s waiting for {what}",
                within.as_secs_f64()
            )));
        }
        tokio::time::sleep(every).await;
    }
}
