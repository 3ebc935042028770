//! Helpers the gateway's test binaries share: a gateway configuration on free loopback
//! ports, and edge records written straight into a local KV as kv-sync would leave them.
#![allow(dead_code)] // each test binary uses its own subset

use base64::Engine;
use keygate_gateway::Config;
use keygate_kv::{KvBackend, SqliteKv};

/// A gateway on free loopback ports over `kv_path`, polling fast, with the edge key the test
/// control plane seals route secrets to ([7; 32]).
pub fn test_config(kv_path: std::path::PathBuf) -> Config {
    let mut config = Config::defaults();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.admin_listen = "127.0.0.1:0".parse().unwrap();
    config.kv_path = kv_path;
    config.edge_key = Some(base64::engine::general_purpose::STANDARD.encode([7u8; 32]));
    config.poll_ms = 20;
    config
}

/// Writes edge records straight into a local KV, as kv-sync would.
pub async fn put_records(
    kv: &SqliteKv,
    routes: Option<&keygate_kv_record::RouteTable>,
    tokens: &[(&str, &str)],
    revision: i64,
) {
    use keygate_kv_record as rec;
    let mut puts: Vec<(String, Vec<u8>)> = tokens
        .iter()
        .map(|(plaintext, team)| {
            let hash = keygate_contracts::token::sha256_hex(plaintext);
            (
                rec::token_key(&hash).unwrap(),
                rec::encode(&rec::TokenRecord {
                    v: 1,
                    id: format!("tok_{}", &hash[..8]),
                    team: (*team).into(),
                    scopes: vec!["*".into()],
                    exp: None,
                    rpm: 0,
                }),
            )
        })
        .collect();
    if let Some(t) = routes {
        puts.push((rec::ROUTES_KEY.into(), rec::encode(t)));
    }
    puts.push((
        rec::REVISION_KEY.into(),
        rec::encode(&rec::RevisionRecord {
            v: 1,
            revision,
            at: 0,
        }),
    ));
    kv.apply_batch(&puts, &[]).await.unwrap();
}

pub fn plain_route(name: &str, prefix: &str, backend: &str) -> keygate_kv_record::RouteRecord {
    keygate_kv_record::RouteRecord {
        id: format!("rte_{name}"),
        name: name.into(),
        team: "alpha".into(),
        prefix: prefix.into(),
        backend: backend.into(),
        tags: vec![],
        methods: vec![],
        strip: true,
        timeout_ms: 5000,
        auth: keygate_kv_record::BackendAuth {
            kind: "none".into(),
            header: String::new(),
            username: String::new(),
            sealed: String::new(),
        },
        allowed_teams: vec![],
        cors_origins: vec![],
        rpm: 0,
    }
}

/// kv-sync following `cp` into a new local KV at `kv_path` (in-process, as `name`), until the
/// returned task is aborted or the test ends.
pub async fn follow_into(
    cp: &keygate_control_plane::testing::TestServer,
    kv_path: &std::path::Path,
    name: &str,
) -> tokio::task::JoinHandle<()> {
    let sync_key = cp
        .capability_key(keygate_control_plane::service_accounts::Capability::Sync)
        .await;
    let kv: std::sync::Arc<dyn KvBackend> =
        std::sync::Arc::new(SqliteKv::open(kv_path).await.unwrap());
    let follower = std::sync::Arc::new(
        keygate_kv_sync::follow::Follower::new(
            &cp.url(),
            &sync_key,
            kv,
            name.into(),
            std::time::Duration::from_secs(1),
            None,
        )
        .unwrap(),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _keep = stop_tx;
        follower.run(stop_rx).await
    })
}
