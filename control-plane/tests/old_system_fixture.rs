//! The old-system fixture (`testing::old_system`) builds what it promises: the old database on
//! the PostgreSQL server of `KEYGATE_TEST_PG_URL`, the old KV layout in the KV stand-in, and a
//! bulk database for the benchmark.

use keygate_control_plane::testing::old_system::{self, OldKv};
use keygate_control_plane::testing::pg_admin_url;
use keygate_kv_standin::{StandIn, StandInConfig};
use serde_json::Value;
use sqlx::{Connection, PgConnection};

const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";
const NAMESPACE: &str = "fedcba9876543210fedcba9876543210";
const TOKEN: &str = "kv-test-token";

async fn count(conn: &mut PgConnection, table: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(conn)
        .await
        .unwrap_or_else(|e| panic!("count {table}: {e}"));
    n
}

async fn kv_get(client: &reqwest::Client, kv: &StandIn, key: &str) -> (u16, String) {
    let url = format!(
        "{}/accounts/{ACCOUNT}/storage/kv/namespaces/{NAMESPACE}/values/{}",
        kv.url(),
        percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC)
    );
    let resp = client
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("KV body"))
}

#[tokio::test]
async fn builds_seeds_and_drops_an_old_installation() {
    let admin = pg_admin_url();
    let upstream = "http://127.0.0.1:9";
    let fx = old_system::build(&admin, upstream).await;
    assert!(fx.url.contains("/old_"), "database name: {}", fx.url);

    let mut conn = PgConnection::connect(&fx.url)
        .await
        .expect("connect old db");
    for (table, n) in [
        ("teams", 3),
        ("routes", 9),
        ("tokens", 9),
        ("token_usage_logs", 65),
        ("audit_logs", 5),
    ] {
        assert_eq!(count(&mut conn, table).await, n, "rows in {table}");
    }
    let (hash, id): (String, i32) =
        sqlx::query_as("SELECT token_hash, id FROM tokens WHERE name = 'billing-bot'")
            .fetch_one(&mut conn)
            .await
            .expect("billing token row");
    assert_eq!(hash, fx.hash("billing"));
    assert_eq!(id, 1);
    let (orphan_id,): (i32,) = sqlx::query_as("SELECT id FROM tokens WHERE team_id = 'gone-team'")
        .fetch_one(&mut conn)
        .await
        .expect("orphan token row");
    assert_eq!(orphan_id, 6);
    assert!(fx.key("revoked").starts_with("ntk_") && fx.key("revoked").len() == 47);
    let problems = fx.planted_problems();
    assert_eq!(problems.len(), old_system::PLANTED_PROBLEMS.len() + 1);
    assert!(problems.contains(&(
        "kv_only_token".to_owned(),
        format!("kv/token:{}", fx.hash("kv_only"))
    )));
    let users: Value = serde_json::from_str(&fx.idp_users_json).expect("users JSON");
    assert_eq!(users.as_array().map(Vec::len), Some(4));

    fx.exec("DELETE FROM audit_logs WHERE entity_type = 'route'")
        .await;
    assert_eq!(count(&mut conn, "audit_logs").await, 2);
    conn.close().await.expect("close");

    let kv = StandIn::start(StandInConfig::new(TOKEN, ACCOUNT, NAMESPACE))
        .await
        .expect("start KV stand-in");
    fx.seed_kv(&OldKv {
        base_url: kv.url(),
        account_id: ACCOUNT.into(),
        namespace_id: NAMESPACE.into(),
        api_token: TOKEN.into(),
    })
    .await;
    let client = reqwest::Client::new();
    let (status, body) = kv_get(&client, &kv, "routes").await;
    assert_eq!(status, 200, "{body}");
    let routes: Value = serde_json::from_str(&body).expect("routes blob is JSON");
    assert_eq!(routes.as_object().map(|m| m.len()), Some(9));
    assert_eq!(routes["/api/billing"]["url"], "http://127.0.0.1:9/billing");
    assert_eq!(routes["/api/billing"]["auth"]["type"], "bearer");
    assert_eq!(
        routes["/api/billing"]["auth"]["config"]["token_ref"],
        "BILLING_TOKEN"
    );
    assert!(routes["/api/imagex"].get("auth").is_none());
    let (status, body) = kv_get(&client, &kv, "secret:BILLING_TOKEN").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("secret JSON"),
        serde_json::json!({"value": "bill-secret-1"})
    );
    assert_eq!(
        kv_get(&client, &kv, "secret:VAULT_TOKEN").await.0,
        404,
        "VAULT_TOKEN must be missing"
    );
    let (status, body) = kv_get(&client, &kv, &format!("token:{}", fx.hash("kv_only"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("token JSON")["created_at"],
        "2025-01-02T03:04:05"
    );
    for absent in ["db_only", "revoked"] {
        let key = format!("token:{}", fx.hash(absent));
        assert_eq!(kv_get(&client, &kv, &key).await.0, 404, "{absent} in KV");
    }
    // 9 DB tokens - db_only + kv_only, routes, 4 secrets.
    assert_eq!(kv.snapshot_of(NAMESPACE).map(|m| m.len()), Some(9 + 1 + 4));
    kv.shutdown().await;

    let bulk = old_system::build_bulk(&admin, upstream, 1_000, 10, 10_000).await;
    let mut conn = PgConnection::connect(&bulk).await.expect("connect bulk db");
    for (table, n) in [
        ("teams", 20),
        ("routes", 10),
        ("tokens", 1_000),
        ("token_usage_logs", 10_000),
    ] {
        assert_eq!(count(&mut conn, table).await, n, "bulk rows in {table}");
    }
    let (hash,): (String,) = sqlx::query_as("SELECT token_hash FROM tokens WHERE id = 42")
        .fetch_one(&mut conn)
        .await
        .expect("bulk token 42");
    assert_eq!(
        hash,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"ntk_bench42"))
    );
    let (unknown,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM token_usage_logs u WHERE NOT EXISTS \
         (SELECT 1 FROM tokens t WHERE t.token_hash = u.token_hash)",
    )
    .fetch_one(&mut conn)
    .await
    .expect("usage join");
    assert_eq!(unknown, 0, "every bulk usage row names a bulk token");
    conn.close().await.expect("close");

    old_system::drop_database(&admin, &bulk).await;
    let url = fx.url.clone();
    fx.drop_db().await;
    assert!(
        PgConnection::connect(&url).await.is_err(),
        "old database still exists"
    );
}
