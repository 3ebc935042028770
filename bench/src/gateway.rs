//! Inputs of the gateway benchmark (`bench/gateway.sh`): a local KV holding tokens, a route
//! table and a revision, exactly as kv-sync would leave it, plus the files wrk and nginx read.
//!
//! Owns: the benchmark's token and route set and the files `keys.txt`, `paths.txt` and
//! `nginx-keys.map`. Must not: build KV keys or values itself (`keygate_kv_record` does),
//! write to an existing KV, or start any server (the script starts them).

use keygate_contracts::route::validate_backend_url;
use keygate_contracts::token::NewToken;
use keygate_control_plane::config::write_private_file;
use keygate_control_plane::secrets::MasterKey;
use keygate_kv::{KvBackend, KvError, SqliteKv};
use keygate_kv_record::{
    self as rec, BackendAuth, REVISION_KEY, ROUTES_KEY, RevisionRecord, RouteRecord, RouteTable,
    TokenRecord,
};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Team that owns every seeded route and token.
pub const TEAM: &str = "team-bench";
/// Most routes `svcNNN` can be named with three digits.
pub const MAX_ROUTES: usize = 1000;

/// What `keygate-bench gateway-seed` writes.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    /// The local KV file to create (must not exist).
    pub kv: PathBuf,
    /// The edge key file to create (must not exist): base64 of 32 random bytes, mode 0600.
    pub edge_key: PathBuf,
    /// Directory for `keys.txt`, `paths.txt` and `nginx-keys.map` (created if missing).
    pub out: PathBuf,
    pub tokens: usize,
    pub routes: usize,
    /// Backend URL of every route.
    pub upstream: String,
    /// Every n-th token is scoped to one route instead of `*` (0: none).
    pub scoped_every: usize,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeded {
    pub tokens: usize,
    /// Tokens scoped to a single route (the others hold `*`).
    pub route_scoped: usize,
    pub routes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("edge key {0}: {1}")]
    EdgeKey(String, String),
    #[error("local KV: {0}")]
    Kv(#[from] KvError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SeedError + '_ {
    move |source| SeedError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Route `i`'s name, `svc000`..`svc999`; its prefix is `/` + the name.
pub fn route_name(i: usize) -> String {
    format!("svc{i:03}")
}

/// The route table: `routes` routes `svcNNN` with prefix `/svcNNN`, all to `upstream`, prefix
/// stripped, any method, no backend credential.
pub fn route_table(routes: usize, upstream: &str) -> RouteTable {
    RouteTable {
        v: 1,
        routes: (0..routes)
            .map(|i| RouteRecord {
                id: format!("rte_bench_{i:03}"),
                name: route_name(i),
                team: TEAM.to_owned(),
                prefix: format!("/{}", route_name(i)),
                backend: upstream.to_owned(),
                tags: Vec::new(),
                methods: Vec::new(),
                strip: true,
                timeout_ms: 30_000,
                auth: BackendAuth {
                    kind: "none".to_owned(),
                    header: String::new(),
                    username: String::new(),
                    sealed: String::new(),
                },
                allowed_teams: Vec::new(),
                cors_origins: Vec::new(),
                rpm: 0,
            })
            .collect(),
    }
}

/// Token `i`'s route: its scope when it is route-scoped, and the route of its request path.
fn token_route(i: usize, routes: usize) -> usize {
    i % routes
}

fn is_route_scoped(i: usize, scoped_every: usize) -> bool {
    scoped_every > 0 && i % scoped_every == scoped_every - 1
}

/// Writes the KV, the edge key and the wrk/nginx inputs. Line `i` of `paths.txt` is a path
/// that key `i` of `keys.txt` may call.
pub async fn seed(o: &SeedOptions) -> Result<Seeded, SeedError> {
    if o.tokens == 0 {
        return Err(SeedError::Invalid("--tokens must be at least 1".into()));
    }
    if !(1..=MAX_ROUTES).contains(&o.routes) {
        return Err(SeedError::Invalid(format!(
            "--routes must be between 1 and {MAX_ROUTES}"
        )));
    }
    validate_backend_url("upstream", &o.upstream)
        .map_err(|e| SeedError::Invalid(format!("--upstream: {e}")))?;
    for p in [&o.kv, &o.edge_key] {
        if p.exists() {
            return Err(SeedError::Invalid(format!(
                "{} exists; gateway-seed only creates new files",
                p.display()
            )));
        }
    }
    std::fs::create_dir_all(&o.out).map_err(io_err(&o.out))?;

    let (_key, created) = MasterKey::load_or_create_file(&o.edge_key)
        .map_err(|e| SeedError::EdgeKey(o.edge_key.display().to_string(), e.to_string()))?;
    if !created {
        return Err(SeedError::EdgeKey(
            o.edge_key.display().to_string(),
            "appeared while seeding".into(),
        ));
    }

    let mut puts = Vec::with_capacity(o.tokens + 2);
    let mut keys = String::new();
    let mut paths = String::new();
    let mut map = String::new();
    let mut route_scoped = 0;
    for i in 0..o.tokens {
        let token = NewToken::generate("kg");
        let route = route_name(token_route(i, o.routes));
        let scopes = if is_route_scoped(i, o.scoped_every) {
            route_scoped += 1;
            vec![route.clone()]
        } else {
            vec!["*".to_owned()]
        };
        let record = TokenRecord {
            v: 1,
            id: crate::dataset::token_id(i as u64),
            team: TEAM.to_owned(),
            scopes,
            exp: None,
            rpm: 0,
        };
        let key = rec::token_key(&token.hash())
            .map_err(|e| SeedError::Invalid(format!("token hash: {e}")))?;
        puts.push((key, rec::encode(&record)));
        let _ = writeln!(keys, "{}", token.expose());
        let _ = writeln!(paths, "/{route}/items/{i}");
        let _ = writeln!(map, "\"{}\" 1;", token.expose());
    }
    puts.push((
        ROUTES_KEY.to_owned(),
        rec::encode(&route_table(o.routes, &o.upstream)),
    ));
    puts.push((
        REVISION_KEY.to_owned(),
        rec::encode(&RevisionRecord {
            v: 1,
            revision: 1,
            at: keygate_control_plane::time::now_ms(),
        }),
    ));

    let kv = SqliteKv::open(&o.kv).await?;
    kv.apply_batch(&puts, &[]).await?;

    for (name, body) in [
        ("keys.txt", &keys),
        ("paths.txt", &paths),
        ("nginx-keys.map", &map),
    ] {
        let path = o.out.join(name);
        write_private_file(&path, body).map_err(io_err(&path))?;
    }
    Ok(Seeded {
        tokens: o.tokens,
        route_scoped,
        routes: o.routes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn seeds_records_the_gateway_reads_and_paired_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let o = SeedOptions {
            kv: dir.path().join("kv.db"),
            edge_key: dir.path().join("edge.key"),
            out: dir.path().join("out"),
            tokens: 25,
            routes: 7,
            upstream: "http://127.0.0.1:9".into(),
            scoped_every: 10,
        };
        let s = seed(&o).await.unwrap();
        assert_eq!((s.tokens, s.route_scoped, s.routes), (25, 2, 7));

        let keys = std::fs::read_to_string(o.out.join("keys.txt")).unwrap();
        let paths = std::fs::read_to_string(o.out.join("paths.txt")).unwrap();
        let map = std::fs::read_to_string(o.out.join("nginx-keys.map")).unwrap();
        let keys: Vec<&str> = keys.lines().collect();
        let paths: Vec<&str> = paths.lines().collect();
        assert_eq!((keys.len(), paths.len(), map.lines().count()), (25, 25, 25));
        assert_eq!(map.lines().next().unwrap(), format!("\"{}\" 1;", keys[0]));

        let kv = SqliteKv::open_read_only(&o.kv).await.unwrap();
        let table: RouteTable =
            rec::decode(ROUTES_KEY, &kv.get(ROUTES_KEY).await.unwrap().unwrap()).unwrap();
        assert_eq!(table.routes.len(), 7);
        assert_eq!(table.routes[3].prefix, "/svc003");
        assert_eq!(table.routes[3].auth.kind, "none");
        for (i, (key, path)) in keys.iter().zip(&paths).enumerate() {
            let k = rec::token_key(&keygate_contracts::token::sha256_hex(key)).unwrap();
            let t: TokenRecord = rec::decode(&k, &kv.get(&k).await.unwrap().unwrap()).unwrap();
            // Each key may call its own path.
            let route = path.split('/').nth(1).unwrap();
            assert!(
                t.scopes == ["*"] || t.scopes == [route],
                "token {i}: {t:?} {path}"
            );
            assert_eq!(t.scopes == [route], i % 10 == 9);
            // Ids and team as the control plane makes them: usage events that carry them
            // (bench/gateway.sh --usage) must pass its ingestion checks.
            keygate_control_plane::tokens::parse_token_id("id", &t.id).unwrap();
            keygate_contracts::names::validate_team_id("team", &t.team).unwrap();
        }
        assert!(kv.get(REVISION_KEY).await.unwrap().is_some());

        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&o.edge_key).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert!(MasterKey::from_base64(&std::fs::read_to_string(&o.edge_key).unwrap()).is_ok());
        // Never into an existing KV.
        assert!(seed(&o).await.is_err());
    }
}
