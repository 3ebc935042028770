//! kv-sync end to end: a real control plane on 127.0.0.1:0, real KV stores (the local SQLite
//! KV, and the Cloudflare stand-in over HTTP), faults injected. Every test ends by comparing
//! every key of the KV with what the control plane says the edge state is.
//!
//! Each test runs twice: `sqlite::NAME` with the control plane on SQLite and `postgres::NAME`
//! with it on PostgreSQL (a fresh database on the server named by `KEYGATE_TEST_PG_URL`;
//! without it those tests fail, they are not skipped; `./scripts/test.sh` starts a throwaway
//! server).

use keygate_control_plane::service_accounts::Capability;
use keygate_control_plane::testing::{Backend, TestServer};
use keygate_kv::{KvBackend, SqliteKv};
use keygate_kv_record as rec;
use keygate_kv_sync::follow::Follower;
use keygate_kv_sync::plan;
use keygate_proto::v1 as pb;
use keygate_proto::v1::route_service_client::RouteServiceClient;
use keygate_proto::v1::team_service_client::TeamServiceClient;
use keygate_proto::v1::token_service_client::TokenServiceClient;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

keygate_control_plane::on_both_backends!(
    local_kv_follows_revocations_team_deletion_and_sealed_secrets,
    follower_far_behind_after_compaction_resyncs_without_resurrecting,
    cloudflare_standin_with_429s_and_500s_converges,
    random_operations_with_random_crashes_converge,
    sigkill_mid_stream_then_restart_converges,
    control_plane_restart_while_following,
    cloudflare_backlog_goes_out_in_full_bulk_calls,
    kv_holds_records_built_by_hand_after_a_crash_mid_snapshot,
);

/// A SYNC service account key.
async fn sync_key(s: &TestServer) -> String {
    s.capability_key(Capability::Sync).await
}

/// What the KV must hold: the control plane's snapshot, encoded, plus the checkpoint.
async fn expected(s: &TestServer, key: &str) -> (BTreeMap<String, Vec<u8>>, i64) {
    let mut client =
        keygate_proto::v1::sync_service_client::SyncServiceClient::new(s.channel().await);
    let mut stream = client
        .snapshot(keygate_control_plane::testing::with_key(
            key,
            pb::SnapshotRequest {},
        ))
        .await
        .unwrap()
        .into_inner();
    let mut out = BTreeMap::new();
    let mut revision = 0;
    while let Some(m) = stream.message().await.unwrap() {
        use pb::snapshot_response::Part;
        match m.part.unwrap() {
            Part::Revision(r) => revision = r,
            Part::Tokens(p) => {
                for t in p.tokens {
                    out.insert(
                        rec::token_key(&t.token_hash).unwrap(),
                        rec::encode(&plan::token_record(&t)),
                    );
                }
            }
            Part::Routes(t) => {
                out.insert(
                    rec::ROUTES_KEY.to_string(),
                    rec::encode(&plan::route_table(&t)),
                );
            }
            Part::EndTokenCount(_) => {}
        }
    }
    (out, revision)
}

/// Everything under `v1/` except the checkpoint, and the checkpoint's revision.
async fn kv_state(kv: &dyn KvBackend) -> (BTreeMap<String, Vec<u8>>, Option<i64>) {
    let mut out = BTreeMap::new();
    for k in kv.list_keys(rec::PREFIX).await.unwrap() {
        // The follower runs concurrently: a listed key may be gone by now.
        if let Some(v) = kv.get(&k).await.unwrap() {
            out.insert(k, v);
        }
    }
    let cp = out
        .remove(rec::REVISION_KEY)
        .and_then(|b| plan::read_checkpoint(&b));
    (out, cp)
}

/// Sealing uses a fresh nonce each time, so the same secret seals to different bytes: compare
/// route tables with each sealed secret replaced by what it opens to under the edge key.
fn normalize(mut m: BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    if let Some(raw) = m.get(rec::ROUTES_KEY) {
        let mut t: rec::RouteTable = rec::decode(rec::ROUTES_KEY, raw).unwrap();
        let edge = keygate_control_plane::secrets::MasterKey::from_bytes(&[7; 32]);
        for r in &mut t.routes {
            if !r.auth.sealed.is_empty() {
                let slot = match r.auth.kind.as_str() {
                    "bearer" => "bearer_token",
                    "api_key" => "api_key",
                    _ => "basic_password",
                };
                let plain = edge
                    .open(&format!("{}/{slot}", r.id), &r.auth.sealed)
                    .expect("sealed to the edge key");
                r.auth.sealed = format!(
                    "opens-to:{}",
                    keygate_contracts::token::sha256_hex(plain.expose())
                );
            }
        }
        m.insert(rec::ROUTES_KEY.into(), rec::encode(&t));
    }
    m
}

/// Waits (bounded) until the KV equals the control plane's edge state, key by key.
async fn converge(s: &TestServer, key: &str, kv: &dyn KvBackend, within: Duration) {
    converge_with(s, key, within, || async { kv_state(kv).await }).await
}

/// The same, reading the KV through `read` (the stand-in's own view for Cloudflare, so the
/// test's reads do not eat the follower's request budget).
async fn converge_with<F, Fut>(s: &TestServer, key: &str, within: Duration, read: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = (BTreeMap<String, Vec<u8>>, Option<i64>)>,
{
    let deadline = Instant::now() + within;
    loop {
        let (want, head) = expected(s, key).await;
        let (got, cp) = read().await;
        let (want, got) = (normalize(want), normalize(got));
        if got == want && cp == Some(head) {
            return;
        }
        if Instant::now() > deadline {
            let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
            let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
            let stale: Vec<_> = want
                .iter()
                .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
                .map(|(k, _)| k)
                .collect();
            panic!(
                "KV did not converge: checkpoint {cp:?} vs head {head}; missing {missing:?}; extra {extra:?}; stale {stale:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn follower(s: &TestServer, key: &str, kv: Arc<dyn KvBackend>) -> Arc<Follower> {
    Arc::new(
        Follower::new(
            &s.url(),
            key,
            kv,
            "test".into(),
            Duration::from_millis(200),
            None,
        )
        .unwrap(),
    )
}

fn spawn(
    f: Arc<Follower>,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let h = tokio::spawn(async move { f.run(rx).await });
    (tx, h)
}

struct Api {
    teams: TeamServiceClient<tonic::transport::Channel>,
    tokens: TokenServiceClient<tonic::transport::Channel>,
    routes: RouteServiceClient<tonic::transport::Channel>,
    key: String,
}

impl Api {
    async fn new(s: &TestServer) -> Self {
        let ch = s.channel().await;
        Self {
            teams: TeamServiceClient::new(ch.clone()),
            tokens: TokenServiceClient::new(ch.clone()),
            routes: RouteServiceClient::new(ch),
            key: s.admin_key.clone(),
        }
    }
    fn r<T>(&self, m: T) -> tonic::Request<T> {
        keygate_control_plane::testing::with_key(&self.key, m)
    }
    async fn team(&mut self, id: &str) {
        let r = self.r(pb::CreateTeamRequest {
            id: id.into(),
            name: id.into(),
            ..Default::default()
        });
        self.teams.create_team(r).await.unwrap();
    }
    async fn token(&mut self, team: &str, scopes: &[&str]) -> (String, String) {
        let r = self.r(pb::CreateTokenRequest {
            name: "t".into(),
            team_id: team.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            expiry: Some(pb::create_token_request::Expiry::ExpiresInDays(30)),
            ..Default::default()
        });
        let out = self.tokens.create_token(r).await.unwrap().into_inner();
        (
            out.token.unwrap().id,
            keygate_contracts::token::sha256_hex(&out.plaintext),
        )
    }
    async fn revoke(&mut self, id: &str) {
        let r = self.r(pb::RevokeTokenRequest {
            id: id.into(),
            reason: String::new(),
        });
        self.tokens.revoke_token(r).await.unwrap();
    }
}

async fn local_kv_follows_revocations_team_deletion_and_sealed_secrets(backend: Backend) {
    let s = TestServer::start(backend).await;
    let key = sync_key(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let kv: Arc<dyn KvBackend> = Arc::new(SqliteKv::open(&dir.path().join("kv.db")).await.unwrap());
    let mut api = Api::new(&s).await;
    api.team("alpha").await;
    api.team("doomed").await;
    let r = api.r(pb::CreateRouteRequest {
        name: "billing".into(),
        team_id: "alpha".into(),
        path_prefix: "/billing".into(),
        backend_url: "http://127.0.0.1:9/".into(),
        backend_auth: Some(pb::BackendAuth {
            kind: Some(pb::backend_auth::Kind::Bearer(pb::BearerAuth {
                token: "plain-backend-secret".into(),
            })),
        }),
        ..Default::default()
    });
    let route = api
        .routes
        .create_route(r)
        .await
        .unwrap()
        .into_inner()
        .route
        .unwrap();
    let (keep, _) = api.token("alpha", &["billing"]).await;
    let (revoked, revoked_hash) = api.token("alpha", &["*"]).await;
    let (_, doomed_hash) = api.token("doomed", &["*"]).await;
    let (_stop, _h) = spawn(follower(&s, &key, kv.clone()));
    converge(&s, &key, kv.as_ref(), Duration::from_secs(10)).await;

    api.revoke(&revoked).await;
    let r = api.r(pb::DeleteTeamRequest {
        id: "doomed".into(),
        cascade: true,
    });
    api.teams.delete_team(r).await.unwrap();
    converge(&s, &key, kv.as_ref(), Duration::from_secs(10)).await;
    let keys = kv.list_keys("v1/token/").await.unwrap();
    assert!(
        !keys.contains(&format!("v1/token/{revoked_hash}")),
        "revoked token gone"
    );
    assert!(
        !keys.contains(&format!("v1/token/{doomed_hash}")),
        "deleted team's token gone"
    );
    assert_eq!(keys.len(), 1, "only {keep} is left");
    // Secrets are in KV only sealed to the edge key, bound to their route.
    let table: rec::RouteTable = rec::decode(
        rec::ROUTES_KEY,
        &kv.get(rec::ROUTES_KEY).await.unwrap().unwrap(),
    )
    .unwrap();
    let sealed = &table.routes[0].auth.sealed;
    let raw = kv.get(rec::ROUTES_KEY).await.unwrap().unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains("plain-backend-secret"));
    let edge = keygate_control_plane::secrets::MasterKey::from_bytes(&[7; 32]);
    assert_eq!(
        edge.open(&format!("{}/bearer_token", route.id), sealed)
            .unwrap()
            .expose(),
        "plain-backend-secret"
    );
    assert!(
        s.master_key
            .open(&format!("{}/bearer_token", route.id), sealed)
            .is_err(),
        "not the at-rest key"
    );
}

async fn follower_far_behind_after_compaction_resyncs_without_resurrecting(backend: Backend) {
    let s = TestServer::start(backend).await;
    let key = sync_key(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let kv: Arc<dyn KvBackend> = Arc::new(SqliteKv::open(&dir.path().join("kv.db")).await.unwrap());
    let mut api = Api::new(&s).await;
    api.team("alpha").await;
    let (a, a_hash) = api.token("alpha", &["*"]).await;
    let f = follower(&s, &key, kv.clone());
    let (stop, h) = spawn(f.clone());
    converge(&s, &key, kv.as_ref(), Duration::from_secs(10)).await;
    stop.send(true).unwrap();
    h.await.unwrap();
    // While it is stopped: revoke a, add more, then compact everything old.
    api.revoke(&a).await;
    for _ in 0..5 {
        api.token("alpha", &["*"]).await;
    }
    let compacted = s
        .store
        .compact_changes(keygate_control_plane::time::now_ms() + 1)
        .await
        .unwrap();
    assert!(
        compacted > f.checkpoint().await.unwrap().unwrap(),
        "the follower's position was compacted away"
    );
    let (_stop, _h) = spawn(f.clone());
    converge(&s, &key, kv.as_ref(), Duration::from_secs(10)).await;
    assert!(
        kv.get(&format!("v1/token/{a_hash}"))
            .await
            .unwrap()
            .is_none(),
        "a revoked token never comes back"
    );
    assert!(
        f.state.snapshots.load(std::sync::atomic::Ordering::Relaxed) >= 2,
        "it resynced"
    );
}

async fn cloudflare_standin_with_429s_and_500s_converges(backend: Backend) {
    use keygate_kv_standin::{StandIn, StandInConfig};
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let s = TestServer::start(backend).await;
    let key = sync_key(&s).await;
    let account = "0123456789abcdef0123456789abcdef";
    let ns = "fedcba9876543210fedcba9876543210";
    let standin = StandIn::start(StandInConfig::new("cf-test-token", account, ns))
        .await
        .unwrap();
    let mut cf = keygate_kv_cloudflare::CloudflareConfig::new(account, ns, "cf-test-token");
    cf.base_url = standin.url();
    cf.backoff.initial = Duration::from_millis(50);
    let kv: Arc<dyn KvBackend> = Arc::new(keygate_kv_cloudflare::CloudflareKv::new(cf).unwrap());
    let mut api = Api::new(&s).await;
    api.team("alpha").await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(api.token("alpha", &["*"]).await.0);
    }
    standin.fail_next(2, 429, Some(1));
    let f = Follower::new(
        &s.url(),
        &key,
        kv.clone(),
        "test".into(),
        Duration::from_millis(500),
        None,
    )
    .unwrap()
    // A short window, so that the follower itself would write the checkpoint key more often
    // than once a second: only the client's per-key gate keeps those writes apart.
    .with_batch_window(Duration::from_millis(50));
    let f = Arc::new(f);
    let (_stop, _h) = spawn(f.clone());
    let held = || async {
        let mut m = standin.snapshot();
        let cp = m
            .remove(rec::REVISION_KEY)
            .and_then(|b| plan::read_checkpoint(&b));
        (m, cp)
    };
    converge_with(&s, &key, Duration::from_secs(30), held).await;
    standin.fail_next(3, 500, None);
    for (i, id) in ids.iter().take(7).enumerate() {
        let before = f.state.batches.load(std::sync::atomic::Ordering::Relaxed);
        api.revoke(id).await;
        // The first three each in a batch of their own (each one checkpointed), the rest
        // at once.
        if i < 3 {
            let deadline = Instant::now() + Duration::from_secs(15);
            while f.state.batches.load(std::sync::atomic::Ordering::Relaxed) == before {
                assert!(Instant::now() < deadline, "revocation {i} was not applied");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    converge_with(&s, &key, Duration::from_secs(30), held).await;
    // The pacing was put to the test: the checkpoint key was written by the snapshot and
    // after each of the three single-revocation batches, back to back.
    let checkpoints = standin.write_times(rec::REVISION_KEY).len();
    assert!(
        checkpoints >= 4,
        "the checkpoint key was written {checkpoints} times, expected at least 4"
    );
    let (k, gap) = standin
        .min_write_gap()
        .expect("some key was written twice (the pacing was exercised)");
    assert!(
        gap >= Duration::from_millis(950),
        "key {k} written twice within {gap:?}"
    );
    assert!(
        kv.stats().retries >= 3,
        "retries happened: {:?}",
        kv.stats()
    );
    // The stand-in's own view agrees key by key.
    let (want, _) = expected(&s, &key).await;
    let mut held = standin.snapshot();
    held.remove(rec::REVISION_KEY);
    assert_eq!(normalize(held), normalize(want));
}

/// Environment variable: the seeds `random_operations_with_random_crashes_converge` runs.
const SEED_ENV: &str = "KEYGATE_KV_SYNC_CRASH_SEEDS";

/// Fault injection over the real KV, one per follower instance. It writes every bulk write
/// one key at a time (as a KV without multi-key transactions does: Workers KV, or any store
/// once a batch spans two bulk calls), so a crash can land between two keys of one batch. It
/// records what actually reached the KV — data keys written since this follower's last
/// checkpoint, and how far the bulk write in progress got — so a test can tell where each
/// crash landed instead of assuming it. Armed with a trap, it stops forever (a crash point)
/// after the n-th key of its next bulk data write and says so through `trapped`.
struct CrashKv {
    inner: Arc<dyn KvBackend>,
    seen: std::sync::Mutex<Landing>,
    trapped: tokio::sync::Notify,
}

/// Where a follower's writes stood when it died.
#[derive(Debug, Default, Clone, Copy)]
struct Landing {
    /// Data keys written (put or deleted) after the follower's last checkpoint write.
    uncovered: usize,
    /// Keys of the bulk data write in progress that reached the KV, and its size (0 and 0
    /// when none is in progress).
    written: usize,
    size: usize,
    /// Stop after this many keys of the next bulk data write (`None`: never).
    trap_after: Option<usize>,
}

impl Landing {
    /// Data reached the KV and its checkpoint did not.
    fn mid_batch(&self) -> bool {
        self.uncovered > 0
    }
    /// Inside one bulk write: some of its keys reached the KV, some did not.
    fn inside_a_write(&self) -> bool {
        self.written > 0 && self.written < self.size
    }
}

enum Op<'a> {
    Put(&'a (String, Vec<u8>)),
    Delete(&'a String),
}

impl CrashKv {
    fn new(inner: Arc<dyn KvBackend>, trap_after: Option<usize>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            seen: std::sync::Mutex::new(Landing {
                trap_after,
                ..Landing::default()
            }),
            trapped: tokio::sync::Notify::new(),
        })
    }

    fn landing(&self) -> Landing {
        *self.seen.lock().unwrap()
    }

    async fn write(&self, ops: Vec<Op<'_>>) -> Result<(), keygate_kv::KvError> {
        let size = ops
            .iter()
            .filter(|op| !matches!(op, Op::Put((k, _)) if k == rec::REVISION_KEY))
            .count();
        {
            let mut s = self.seen.lock().unwrap();
            s.written = 0;
            s.size = size;
        }
        for op in ops {
            let checkpoint = match op {
                Op::Put(pair) => {
                    self.inner.put_many(std::slice::from_ref(pair)).await?;
                    pair.0 == rec::REVISION_KEY
                }
                Op::Delete(key) => {
                    self.inner.delete_many(std::slice::from_ref(key)).await?;
                    false
                }
            };
            let hold = {
                let mut s = self.seen.lock().unwrap();
                if checkpoint {
                    s.uncovered = 0;
                    false
                } else {
                    s.uncovered += 1;
                    s.written += 1;
                    let hit = s.trap_after.is_some_and(|n| s.written >= n.min(s.size));
                    if hit {
                        s.trap_after = None;
                    }
                    hit
                }
            };
            if hold {
                self.trapped.notify_one();
                std::future::pending::<()>().await;
            }
        }
        let mut s = self.seen.lock().unwrap();
        (s.written, s.size) = (0, 0);
        Ok(())
    }
}

#[async_trait::async_trait]
impl KvBackend for CrashKv {
    async fn put_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), keygate_kv::KvError> {
        self.write(pairs.iter().map(Op::Put).collect()).await
    }
    async fn delete_many(&self, keys: &[String]) -> Result<(), keygate_kv::KvError> {
        self.write(keys.iter().map(Op::Delete).collect()).await
    }
    async fn apply_batch(
        &self,
        puts: &[(String, Vec<u8>)],
        deletes: &[String],
    ) -> Result<(), keygate_kv::KvError> {
        let ops = puts.iter().map(Op::Put);
        self.write(ops.chain(deletes.iter().map(Op::Delete)).collect())
            .await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, keygate_kv::KvError> {
        self.inner.get(key).await
    }
    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, keygate_kv::KvError> {
        self.inner.list_keys(prefix).await
    }
    fn stats(&self) -> keygate_kv::KvStats {
        self.inner.stats()
    }
    fn max_batch_keys(&self) -> Option<usize> {
        self.inner.max_batch_keys()
    }
}

/// A follower task over its own [`CrashKv`] around the shared KV.
struct Running {
    kv: Arc<CrashKv>,
    _stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(s: &TestServer, key: &str, kv: &Arc<dyn KvBackend>, trap: Option<usize>) -> Self {
        let crash = CrashKv::new(kv.clone(), trap);
        let (stop, task) = spawn(follower(s, key, crash.clone()));
        Self {
            kv: crash,
            _stop: stop,
            task,
        }
    }

    /// Kills the follower (its task aborted wherever it is) and says where its writes stood.
    async fn kill(self) -> Landing {
        self.task.abort();
        let _ = self.task.await;
        self.kv.landing()
    }
}

/// Prints the seed when the test fails with it.
struct SeedOnFailure(u64, Backend);

impl Drop for SeedOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "random crashes FAILED on {:?} with seed {}: re-run with {SEED_ENV}={} \
                 cargo nextest run -p keygate-kv-sync --test follow random_operations",
                self.1, self.0, self.0
            );
        }
    }
}

/// Random creates / updates / revokes / team deletions with the follower killed at random
/// points always converge to the control plane's state.
///
/// A crash step kills the running follower at a random moment (often while it is idle,
/// between batches), makes two changes while nothing follows, then starts a follower armed
/// to stop after the first key of its first bulk write (the backlog, or its first snapshot)
/// and kills it there. Where every crash landed is read from what reached the KV, not
/// assumed: each seed must have had a crash mid-batch (data written, its checkpoint not)
/// and one inside a bulk write (some of its keys written, some not), or the test fails.
///
/// Seeds: 7, 42 and a fresh random one per run; a failing seed is printed. To re-run given
/// seeds (comma-separated): `KEYGATE_KV_SYNC_CRASH_SEEDS=1234,99 cargo nextest run
/// -p keygate-kv-sync --test follow random_operations` (with `KEYGATE_TEST_PG_URL` set for
/// the PostgreSQL half).
async fn random_operations_with_random_crashes_converge(backend: Backend) {
    let seeds: Vec<u64> = match std::env::var(SEED_ENV) {
        Ok(v) => v
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{SEED_ENV}={v}: not a list of seeds"))
            })
            .collect(),
        Err(_) => vec![7, 42, rand::random()],
    };
    for seed in seeds {
        let _report = SeedOnFailure(seed, backend);
        random_crashes(backend, seed).await;
    }
}

async fn random_crashes(backend: Backend, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let s = TestServer::start(backend).await;
    let key = sync_key(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let kv: Arc<dyn KvBackend> = Arc::new(SqliteKv::open(&dir.path().join("kv.db")).await.unwrap());
    let mut api = Api::new(&s).await;
    let teams = ["t-a", "t-b", "t-c"];
    for t in teams {
        api.team(t).await;
    }
    let mut live: Vec<(String, &str)> = Vec::new();
    let mut dead_teams = Vec::new();
    let mut running = Running::start(&s, &key, &kv, None);
    let mut landings = Vec::new();
    // 60 random steps, then always one crash step.
    for step in 0..=60 {
        let op = if step == 60 {
            9
        } else {
            rng.random_range(0..10)
        };
        match op {
            0..=4 => {
                let t = teams[rng.random_range(0..teams.len())];
                if !dead_teams.contains(&t) {
                    let (id, _) = api.token(t, &["*"]).await;
                    live.push((id, t));
                }
            }
            5 | 6 if !live.is_empty() => {
                let (id, _) = live.swap_remove(rng.random_range(0..live.len()));
                api.revoke(&id).await;
            }
            7 if !live.is_empty() => {
                let (id, _) = &live[rng.random_range(0..live.len())];
                let r = api.r(pb::UpdateTokenRequest {
                    id: id.clone(),
                    scopes: Some(pb::StringList {
                        values: vec!["tag:x".into()],
                    }),
                    ..Default::default()
                });
                api.tokens.update_token(r).await.unwrap();
            }
            8 if dead_teams.len() < 2 => {
                let t = teams[dead_teams.len()];
                let r = api.r(pb::DeleteTeamRequest {
                    id: t.into(),
                    cascade: true,
                });
                api.teams.delete_team(r).await.unwrap();
                live.retain(|(_, team)| *team != t);
                dead_teams.push(t);
            }
            _ => {
                // At a random moment.
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..20))).await;
                landings.push(("random", running.kill().await));
                // Trapped: a backlog of two changes, stopped after its first key.
                let t = *teams.iter().find(|t| !dead_teams.contains(t)).unwrap();
                for _ in 0..2 {
                    let (id, _) = api.token(t, &["*"]).await;
                    live.push((id, t));
                }
                let trapped = Running::start(&s, &key, &kv, Some(1));
                // If the trap is not reached in time, the kill lands wherever it lands (and
                // counts for what it is).
                let _ =
                    tokio::time::timeout(Duration::from_secs(10), trapped.kv.trapped.notified())
                        .await;
                landings.push(("trapped", trapped.kill().await));
                running = Running::start(&s, &key, &kv, None);
            }
        }
    }
    converge(&s, &key, &*kv, Duration::from_secs(15)).await;
    let count = |kind: &str, f: fn(&Landing) -> bool| {
        landings
            .iter()
            .filter(|(k, l)| (kind.is_empty() || *k == kind) && f(l))
            .count()
    };
    let mid_batch = count("", Landing::mid_batch);
    let inside = count("", Landing::inside_a_write);
    eprintln!(
        "seed {seed} on {backend:?}: {} crashes, {mid_batch} mid-batch ({} of them at a random \
         moment), {inside} inside a bulk write ({} at a random moment)",
        landings.len(),
        count("random", Landing::mid_batch),
        count("random", Landing::inside_a_write),
    );
    assert!(
        mid_batch > 0,
        "seed {seed}: no crash landed mid-batch (data written, its checkpoint not): {landings:?}"
    );
    assert!(
        inside > 0,
        "seed {seed}: no crash landed inside a bulk write: {landings:?}"
    );
    running.kill().await;
}

/// The revision the control plane's feed is at (only the revision part of a snapshot).
async fn head_revision(s: &TestServer, key: &str) -> i64 {
    let mut client =
        keygate_proto::v1::sync_service_client::SyncServiceClient::new(s.channel().await);
    let mut stream = client
        .snapshot(keygate_control_plane::testing::with_key(
            key,
            pb::SnapshotRequest {},
        ))
        .await
        .unwrap()
        .into_inner();
    let mut revision = None;
    while let Some(m) = stream.message().await.unwrap() {
        if let Some(pb::snapshot_response::Part::Revision(r)) = m.part {
            revision = Some(r);
        }
    }
    revision.expect("a snapshot starts with its revision")
}

/// What the KV must hold, written by hand as JSON from the management API's view (GetToken,
/// ListRoutes) and the test's own inputs (plaintexts, backend secrets by route name),
/// following the v1 record format: `v1/token/<sha256 of the plaintext>` for each active
/// token, `v1/routes` with every route by name, empty and zero fields left out, each secret
/// shown as `opens-to:<plaintext>`.
async fn records_by_hand(
    api: &mut Api,
    tokens: &[(String, String)],
    secrets: &BTreeMap<&str, &str>,
) -> BTreeMap<String, serde_json::Value> {
    use serde_json::{Value, json};
    let mut out = BTreeMap::new();
    for (id, plaintext) in tokens {
        let r = api.r(pb::GetTokenRequest { id: id.clone() });
        let t = api
            .tokens
            .get_token(r)
            .await
            .unwrap()
            .into_inner()
            .token
            .unwrap();
        if t.status != pb::TokenStatus::Active as i32 {
            continue;
        }
        let mut v = json!({"v": 1, "id": t.id, "team": t.team_id, "scopes": t.scopes});
        if let Some(e) = t.expires_at {
            v["exp"] = json!(e.seconds * 1000 + i64::from(e.nanos) / 1_000_000);
        }
        if t.rate_limit_per_minute != 0 {
            v["rpm"] = json!(t.rate_limit_per_minute);
        }
        let hash = keygate_contracts::token::sha256_hex(plaintext);
        out.insert(format!("v1/token/{hash}"), v);
    }
    let r = api.r(pb::ListRoutesRequest {
        sort_by: pb::RouteSortField::Name as i32,
        page_size: 500,
        ..Default::default()
    });
    let listed = api.routes.list_routes(r).await.unwrap().into_inner().routes;
    let mut routes = Vec::new();
    for r in listed {
        let mut v = json!({
            "id": r.id, "name": r.name, "team": r.team_id, "prefix": r.path_prefix,
            "backend": r.backend_url, "timeout_ms": r.timeout_ms,
        });
        let put_list = |v: &mut Value, field: &str, list: Vec<String>| {
            if !list.is_empty() {
                v[field] = json!(list);
            }
        };
        put_list(&mut v, "tags", r.tags);
        put_list(&mut v, "methods", r.methods);
        if r.strip_prefix {
            v["strip"] = json!(true);
        }
        let a = r.backend_auth.unwrap_or_default();
        let kind = match pb::BackendAuthType::try_from(a.r#type) {
            Ok(pb::BackendAuthType::Bearer) => "bearer",
            Ok(pb::BackendAuthType::ApiKey) => "api_key",
            Ok(pb::BackendAuthType::Basic) => "basic",
            _ => "none",
        };
        let mut auth = json!({ "type": kind });
        if !a.header_name.is_empty() {
            auth["header"] = json!(a.header_name);
        }
        if !a.username.is_empty() {
            auth["username"] = json!(a.username);
        }
        if a.secret_set {
            auth["sealed"] = json!(format!("opens-to:{}", secrets[r.name.as_str()]));
        }
        v["auth"] = auth;
        put_list(
            &mut v,
            "allowed_teams",
            r.allowed_team_ids.into_iter().collect(),
        );
        put_list(&mut v, "cors_origins", r.cors_origins);
        if r.rate_limit_per_minute != 0 {
            v["rpm"] = json!(r.rate_limit_per_minute);
        }
        routes.push(v);
    }
    out.insert("v1/routes".into(), json!({"v": 1, "routes": routes}));
    out
}

/// The KV as plain JSON (not through the record crate), each sealed secret replaced by what
/// it opens to under the edge key and the route's AAD; and the checkpoint's JSON apart.
async fn kv_as_json(
    kv: &dyn KvBackend,
) -> (
    BTreeMap<String, serde_json::Value>,
    Option<serde_json::Value>,
) {
    let edge = keygate_control_plane::secrets::MasterKey::from_bytes(&[7; 32]);
    let mut out = BTreeMap::new();
    for k in kv.list_keys("v1/").await.unwrap() {
        let raw = kv.get(&k).await.unwrap().expect("a listed key has a value");
        let mut v: serde_json::Value = serde_json::from_slice(&raw)
            .unwrap_or_else(|e| panic!("{k} is not JSON ({e}): {raw:?}"));
        if k == "v1/routes" {
            for r in v["routes"].as_array_mut().into_iter().flatten() {
                let slot = match r["auth"]["type"].as_str() {
                    Some("bearer") => "bearer_token",
                    Some("api_key") => "api_key",
                    _ => "basic_password",
                };
                let aad = format!("{}/{slot}", r["id"].as_str().unwrap_or_default());
                if let Some(sealed) = r["auth"]["sealed"].as_str() {
                    let opened = match edge.open(&aad, sealed) {
                        Ok(p) => format!("opens-to:{}", p.expose()),
                        Err(e) => format!("does not open under the edge key ({e}): {sealed}"),
                    };
                    r["auth"]["sealed"] = serde_json::json!(opened);
                }
            }
        }
        out.insert(k, v);
    }
    let checkpoint = out.remove("v1/meta/revision");
    (out, checkpoint)
}

/// The KV checked against records built by hand, independently of kv-sync's encoder (and of
/// `expected()` above, which uses it): every expected value is written here as JSON from the
/// test's own inputs and the management API's answers (GetToken, ListRoutes — not the sync
/// feed), and the KV is read as plain JSON, not with the record crate. A mistake shared by
/// kv-sync's encoder and `expected()` cannot hide here.
///
/// Faults: the first follower is killed after the first key of its first snapshot (nothing
/// checkpointed); while nothing follows a token is revoked, one updated, one created, a route
/// changed and another deleted; a second follower must leave exactly the expected records.
async fn kv_holds_records_built_by_hand_after_a_crash_mid_snapshot(backend: Backend) {
    use pb::backend_auth::Kind;
    let s = TestServer::start(backend).await;
    let key = sync_key(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let kv: Arc<dyn KvBackend> = Arc::new(SqliteKv::open(&dir.path().join("kv.db")).await.unwrap());
    let mut api = Api::new(&s).await;
    api.team("alpha").await;
    api.team("beta").await;
    let secrets: BTreeMap<&str, &str> = [
        ("billing", "bearer-secret-1"),
        ("search", "api-key-secret-2"),
        ("ledger", "basic-secret-3"),
    ]
    .into();
    let routes = [
        pb::CreateRouteRequest {
            name: "billing".into(),
            team_id: "alpha".into(),
            path_prefix: "/billing".into(),
            backend_url: "http://127.0.0.1:9/api".into(),
            tags: vec!["money".into()],
            methods: vec!["GET".into(), "POST".into()],
            strip_prefix: true,
            timeout_ms: 1500,
            backend_auth: Some(pb::BackendAuth {
                kind: Some(Kind::Bearer(pb::BearerAuth {
                    token: secrets["billing"].into(),
                })),
            }),
            allowed_team_ids: vec!["alpha".into()],
            cors_origins: vec!["https://app.example.com".into()],
            rate_limit_per_minute: 120,
            ..Default::default()
        },
        pb::CreateRouteRequest {
            name: "search".into(),
            team_id: "beta".into(),
            path_prefix: "/search".into(),
            backend_url: "http://127.0.0.1:9/".into(),
            backend_auth: Some(pb::BackendAuth {
                kind: Some(Kind::ApiKey(pb::ApiKeyAuth {
                    header_name: "X-Api-Key".into(),
                    value: secrets["search"].into(),
                })),
            }),
            ..Default::default()
        },
        pb::CreateRouteRequest {
            name: "ledger".into(),
            team_id: "alpha".into(),
            path_prefix: "/ledger".into(),
            backend_url: "https://127.0.0.1:9/".into(),
            backend_auth: Some(pb::BackendAuth {
                kind: Some(Kind::Basic(pb::BasicAuth {
                    username: "svc".into(),
                    password: secrets["ledger"].into(),
                })),
            }),
            ..Default::default()
        },
        pb::CreateRouteRequest {
            name: "public".into(),
            team_id: "beta".into(),
            path_prefix: "/public".into(),
            backend_url: "http://127.0.0.1:9/".into(),
            ..Default::default()
        },
    ];
    for r in routes {
        let r = api.r(r);
        api.routes.create_route(r).await.unwrap();
    }
    let mut tokens: Vec<(String, String)> = Vec::new();
    let mut create = async |api: &mut Api, team: &str, scopes: &[&str], days: u32, rpm: u32| {
        let r = api.r(pb::CreateTokenRequest {
            name: "t".into(),
            team_id: team.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            expiry: Some(if days == 0 {
                pb::create_token_request::Expiry::NeverExpires(true)
            } else {
                pb::create_token_request::Expiry::ExpiresInDays(days)
            }),
            rate_limit_per_minute: rpm,
            ..Default::default()
        });
        let out = api.tokens.create_token(r).await.unwrap().into_inner();
        let id = out.token.unwrap().id;
        tokens.push((id.clone(), out.plaintext));
        id
    };
    let updated = create(&mut api, "alpha", &["billing"], 30, 60).await;
    create(&mut api, "beta", &["tag:money"], 0, 0).await;
    let revoked = create(&mut api, "alpha", &["*"], 7, 0).await;

    // The first follower dies after the first key of its snapshot.
    let first = Running::start(&s, &key, &kv, Some(1));
    tokio::time::timeout(Duration::from_secs(10), first.kv.trapped.notified())
        .await
        .expect("the first follower reached its first bulk write");
    let landing = first.kill().await;
    assert!(
        landing.inside_a_write() && landing.written == 1,
        "{landing:?}"
    );
    assert_eq!(
        kv.list_keys("v1/").await.unwrap().len(),
        1,
        "one key, no checkpoint"
    );

    // Changes while nothing follows.
    api.revoke(&revoked).await;
    let r = api.r(pb::UpdateTokenRequest {
        id: updated,
        scopes: Some(pb::StringList {
            values: vec!["billing".into(), "tag:money".into()],
        }),
        rate_limit_per_minute: Some(90),
        ..Default::default()
    });
    api.tokens.update_token(r).await.unwrap();
    create(&mut api, "beta", &["search"], 1, 5).await;
    let r = api.r(pb::UpdateRouteRequest {
        id: "billing".into(),
        timeout_ms: Some(2500),
        methods: Some(pb::StringList {
            values: vec!["GET".into()],
        }),
        ..Default::default()
    });
    api.routes.update_route(r).await.unwrap();
    let r = api.r(pb::DeleteRouteRequest {
        id: "public".into(),
    });
    api.routes.delete_route(r).await.unwrap();

    let second = Running::start(&s, &key, &kv, None);
    let want = records_by_hand(&mut api, &tokens, &secrets).await;
    assert_eq!(want.len(), 4, "three live tokens and the route table");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let head = head_revision(&s, &key).await;
        let (got, checkpoint) = kv_as_json(&*kv).await;
        let at = checkpoint.as_ref().map(|c| (&c["v"], &c["revision"]));
        if got == want && at == Some((&serde_json::json!(1), &serde_json::json!(head))) {
            break;
        }
        if Instant::now() > deadline {
            panic!(
                "the KV does not hold the records built by hand (checkpoint {checkpoint:?}, \
                 head {head})\n want: {}\n got:  {}",
                serde_json::to_string_pretty(&want).unwrap(),
                serde_json::to_string_pretty(&got).unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    second.kill().await;
}

/// The real binary, SIGKILLed in the middle of a stream of changes and restarted.
async fn sigkill_mid_stream_then_restart_converges(backend: Backend) {
    let s = TestServer::start(backend).await;
    let key = sync_key(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let kv_path = dir.path().join("kv.db");
    let spawn_bin = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_keygate-kv-sync"))
            .env("KEYGATE_ADDR", s.url())
            .env("KEYGATE_SYNC_KEY", &key)
            .env("KEYGATE_KV_PATH", &kv_path)
            .env("KEYGATE_SYNC_METRICS_LISTEN", "127.0.0.1:0")
            .env("KEYGATE_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut api = Api::new(&s).await;
    api.team("alpha").await;
    let mut child = spawn_bin();
    let mut ids = Vec::new();
    for i in 0..120 {
        ids.push(api.token("alpha", &["*"]).await.0);
        if i % 3 == 0 {
            let id = ids.swap_remove(0);
            api.revoke(&id).await;
        }
        if i == 60 {
            // SIGKILL: no chance to finish the batch or write the checkpoint.
            child.kill().unwrap();
            child.wait().unwrap();
            child = spawn_bin();
        }
    }
    let kv = SqliteKv::open_read_only(&kv_path).await;
    // The file exists once the binary opened it; wait for convergence through a reader.
    let kv: Arc<dyn KvBackend> = match kv {
        Ok(k) => Arc::new(k),
        Err(_) => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Arc::new(SqliteKv::open_read_only(&kv_path).await.unwrap())
        }
    };
    converge(&s, &key, kv.as_ref(), Duration::from_secs(20)).await;
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The control plane restarts (same database, same address) while kv-sync follows: the
/// follower reconnects from its checkpoint and misses nothing.
async fn control_plane_restart_while_following(backend: Backend) {
    let mut s = TestServer::start(backend).await;
    let key = sync_key(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let kv: Arc<dyn KvBackend> = Arc::new(SqliteKv::open(&dir.path().join("kv.db")).await.unwrap());
    let mut api = Api::new(&s).await;
    api.team("alpha").await;
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(api.token("alpha", &["*"]).await.0);
    }
    let (_stop, _h) = spawn(follower(&s, &key, kv.clone()));
    converge(&s, &key, kv.as_ref(), Duration::from_secs(10)).await;
    s.restart().await;
    // New connections to the restarted server.
    let mut api = Api::new(&s).await;
    for id in ids.iter().take(4) {
        api.revoke(id).await;
    }
    for _ in 0..5 {
        api.token("alpha", &["*"]).await;
    }
    converge(&s, &key, kv.as_ref(), Duration::from_secs(15)).await;
}

/// Records the size of every batch a follower applies, passing everything on.
struct Recording {
    inner: Arc<dyn KvBackend>,
    batches: std::sync::Mutex<Vec<usize>>,
    other_writes: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl KvBackend for Recording {
    async fn put_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), keygate_kv::KvError> {
        self.other_writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.put_many(pairs).await
    }
    async fn delete_many(&self, keys: &[String]) -> Result<(), keygate_kv::KvError> {
        self.other_writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.delete_many(keys).await
    }
    async fn apply_batch(
        &self,
        puts: &[(String, Vec<u8>)],
        deletes: &[String],
    ) -> Result<(), keygate_kv::KvError> {
        self.batches
            .lock()
            .unwrap()
            .push(puts.len() + deletes.len());
        self.inner.apply_batch(puts, deletes).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, keygate_kv::KvError> {
        self.inner.get(key).await
    }
    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, keygate_kv::KvError> {
        self.inner.list_keys(prefix).await
    }
    fn stats(&self) -> keygate_kv::KvStats {
        self.inner.stats()
    }
    fn max_batch_keys(&self) -> Option<usize> {
        self.inner.max_batch_keys()
    }
}

/// A backlog larger than one bulk call is pushed in full batches of exactly the bulk size
/// (one call each), and the checkpoint is written once the feed goes quiet, not per batch.
async fn cloudflare_backlog_goes_out_in_full_bulk_calls(backend: Backend) {
    use keygate_kv_standin::{StandIn, StandInConfig};
    let s = TestServer::start(backend).await;
    let key = sync_key(&s).await;
    let account = "0123456789abcdef0123456789abcdef";
    let ns = "fedcba9876543210fedcba9876543210";
    let standin = StandIn::start(StandInConfig::new("cf-test-token", account, ns))
        .await
        .unwrap();
    let cf = |max_items: usize| {
        let mut cf = keygate_kv_cloudflare::CloudflareConfig::new(account, ns, "cf-test-token");
        cf.base_url = standin.url();
        cf.bulk.max_items = max_items;
        // Checkpoints are one key written at most once a second; don't wait in the test.
        cf.same_key_interval = Duration::from_millis(1);
        Arc::new(keygate_kv_cloudflare::CloudflareKv::new(cf).unwrap())
    };
    let held = || async {
        let mut m = standin.snapshot();
        let cp = m
            .remove(rec::REVISION_KEY)
            .and_then(|b| plan::read_checkpoint(&b));
        (m, cp)
    };
    let mut api = Api::new(&s).await;
    api.team("alpha").await;
    // A first follower takes the snapshot and leaves a checkpoint.
    let first = cf(100);
    let (stop, h) = spawn(Arc::new(
        Follower::new(
            &s.url(),
            &key,
            first,
            "test".into(),
            Duration::from_secs(60),
            None,
        )
        .unwrap()
        .with_batch_window(Duration::from_millis(200)),
    ));
    converge_with(&s, &key, Duration::from_secs(30), held).await;
    stop.send(true).unwrap();
    h.await.unwrap();
    // 250 token changes while nobody follows.
    for _ in 0..250 {
        api.token("alpha", &["*"]).await;
    }
    let cloudflare = cf(100);
    let kv = Arc::new(Recording {
        inner: cloudflare.clone(),
        batches: Default::default(),
        other_writes: Default::default(),
    });
    let f = Follower::new(
        &s.url(),
        &key,
        kv.clone(),
        "test".into(),
        Duration::from_secs(60),
        None,
    )
    .unwrap()
    .with_batch_window(Duration::from_millis(200));
    let (_stop, _h) = spawn(Arc::new(f));
    converge_with(&s, &key, Duration::from_secs(30), held).await;
    // 100 + 100 + 50 pairs: three batches of at most the bulk size, three data calls, then
    // one checkpoint write (the only write outside a batch).
    assert_eq!(*kv.batches.lock().unwrap(), vec![100, 100, 50]);
    assert_eq!(
        kv.other_writes.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let stats = cloudflare.stats();
    assert_eq!(stats.bulk_writes, 4, "{stats:?}");
    assert_eq!(stats.bulk_deletes, 0, "{stats:?}");
    assert_eq!(stats.retries, 0, "{stats:?}");
}
