//! The admin UI benchmark's database (`keygate-bench ui-seed`; `admin-web/bench/ui.mjs` runs
//! it): a new SQLite file, migrated by the store's own `connect`, holding the control-plane
//! benchmark's data set ([`crate::dataset`]: 100 teams, 20 tagged routes, `n` tokens with
//! revoked, expired, expiring and never-expiring ones, `*`/route/tag scopes with their
//! `token_scopes` rows) plus what a UI shows and the control-plane data set leaves out:
//!
//! - `last_used_at` on 60 % of the tokens: 40 % within the last 7 days, 20 % 7 to 90 days
//!   ago (never before the token was created, never after it was revoked);
//! - every route's backend URL pointing at `--backend-url` (the benchmark's upstream);
//! - `--traffic-keys` active `*` tokens given real keys (`NewToken`, as CreateToken makes
//!   them: hash and preview replaced), whose plaintexts are written to `--keys-out`, so the
//!   benchmark can send gateway traffic and the dashboard has usage to draw.
//!
//! It writes no user: the control plane started on the file prints a setup code as on any
//! first start. What the rows add up to (the answers the UI must show) is printed as JSON.
//!
//! Must not: touch a database it did not create (the file must not exist).

use crate::BenchError;
use crate::dataset::{self, DAY_MS, Progress};
use keygate_contracts::token::{API_TOKEN_PREFIX, NewToken};
use keygate_control_plane::store::sqlite::SqliteStore;
use serde::Serialize;
use sqlx::{AssertSqlSafe, SqlitePool};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What to seed.
#[derive(Debug, Clone, Serialize)]
pub struct Options {
    pub db: PathBuf,
    pub tokens: u64,
    pub backend_url: String,
    pub traffic_keys: usize,
    pub keys_out: Option<PathBuf>,
}

/// What the seeded rows add up to, as the API should answer it.
#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    pub tokens: i64,
    pub teams: i64,
    pub routes: i64,
    /// Not revoked and not expired at seeding time.
    pub active: i64,
    pub revoked: i64,
    /// Expired and not revoked.
    pub expired: i64,
    /// Tokens of `team-7`.
    pub team_7: i64,
    /// Tokens whose name or description contains `deploy` (case-insensitive).
    pub query_deploy: i64,
    /// Tokens whose name or description contains `zephyr`.
    pub query_zephyr: i64,
    pub used: i64,
    pub never_used_active: i64,
    /// The newest token's name (the default list's first row).
    pub newest_name: String,
    /// The most recently used token's name (`?sort=last_used&desc=1`).
    pub last_used_name: String,
}

/// The seeding's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Seeded {
    pub db_url: String,
    pub seed_secs: f64,
    pub counts: Counts,
    /// Token ids given real keys (their plaintexts are in `keys_out`).
    pub traffic_token_ids: Vec<String>,
}

/// Creates, migrates and seeds the database.
pub async fn run(o: &Options) -> Result<Seeded, BenchError> {
    if o.db.exists() {
        return Err(BenchError::Setup(format!(
            "{} exists: ui-seed only creates new databases",
            o.db.display()
        )));
    }
    let started = Instant::now();
    let url = format!("sqlite://{}", o.db.display());
    let store = SqliteStore::connect(&url).await?;
    let pool = store.write_pool();
    let mut progress = |p: Progress| {
        eprintln!(
            "  seeding: {}/{} tokens, {:.1} s",
            p.done,
            p.total,
            p.elapsed.as_secs_f64()
        )
    };
    dataset::seed_sqlite(pool, o.tokens, &mut progress).await?;
    let now = keygate_control_plane::time::now_ms();
    set_last_used(pool, now).await?;
    sqlx::query("UPDATE routes SET backend_url = $1 || path_prefix")
        .bind(o.backend_url.trim_end_matches('/'))
        .execute(pool)
        .await?;
    let (ids, keys) = real_keys(pool, o.traffic_keys, now).await?;
    if let Some(path) = &o.keys_out {
        write_keys(path, &keys)?;
    }
    let counts = counts(pool, now).await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(pool)
        .await?;
    store.close().await;
    Ok(Seeded {
        db_url: url,
        seed_secs: started.elapsed().as_secs_f64(),
        counts,
        traffic_token_ids: ids,
    })
}

/// 40 % used within 7 days, 20 % 7-90 days ago, 40 % never (by rowid, which is the data
/// set's row number + 1 in a new table); clamped to the token's creation and revocation.
async fn set_last_used(pool: &SqlitePool, now: i64) -> Result<(), sqlx::Error> {
    let week = 7 * DAY_MS;
    let older = 83 * DAY_MS;
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE tokens SET last_used_at = min(COALESCE(revoked_at, {now}), max(created_at, \
           CASE WHEN rowid % 10 < 4 THEN {now} - (rowid * 7919) % {week} \
                ELSE {now} - {week} - (rowid * 104729) % {older} END)) \
         WHERE rowid % 10 < 6"
    )))
    .execute(pool)
    .await?;
    Ok(())
}

/// Gives `n` of the newest active, never-expiring `*` tokens real keys.
async fn real_keys(
    pool: &SqlitePool,
    n: usize,
    now: i64,
) -> Result<(Vec<String>, Vec<String>), sqlx::Error> {
    let ids: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM tokens WHERE scopes = '[\"*\"]' AND revoked_at IS NULL \
         AND expires_at IS NULL AND created_at < $1 ORDER BY created_at DESC LIMIT $2",
    )
    .bind(now)
    .bind(n as i64)
    .fetch_all(pool)
    .await?;
    let mut keys = Vec::with_capacity(ids.len());
    for (id,) in &ids {
        let t = NewToken::generate(API_TOKEN_PREFIX);
        sqlx::query("UPDATE tokens SET token_hash = $1, preview = $2 WHERE id = $3")
            .bind(t.hash())
            .bind(t.preview())
            .bind(id)
            .execute(pool)
            .await?;
        keys.push(t.expose().to_owned());
    }
    Ok((ids.into_iter().map(|(id,)| id).collect(), keys))
}

fn write_keys(path: &Path, keys: &[String]) -> Result<(), BenchError> {
    let mut text = keys.join("\n");
    text.push('\n');
    std::fs::write(path, text)
        .map_err(|e| BenchError::Setup(format!("write {}: {e}", path.display())))
}

async fn counts(pool: &SqlitePool, now: i64) -> Result<Counts, sqlx::Error> {
    let one = |sql: String| async move {
        let (n,): (i64,) = sqlx::query_as(AssertSqlSafe(sql)).fetch_one(pool).await?;
        Ok::<i64, sqlx::Error>(n)
    };
    let active_sql = format!("revoked_at IS NULL AND (expires_at IS NULL OR expires_at > {now})");
    let name = |sql: &'static str| async move {
        let (s,): (String,) = sqlx::query_as(sql).fetch_one(pool).await?;
        Ok::<String, sqlx::Error>(s)
    };
    Ok(Counts {
        tokens: one("SELECT count(*) FROM tokens".into()).await?,
        teams: one("SELECT count(*) FROM teams".into()).await?,
        routes: one("SELECT count(*) FROM routes".into()).await?,
        active: one(format!("SELECT count(*) FROM tokens WHERE {active_sql}")).await?,
        revoked: one("SELECT count(*) FROM tokens WHERE revoked_at IS NOT NULL".into()).await?,
        expired: one(format!(
            "SELECT count(*) FROM tokens WHERE revoked_at IS NULL AND expires_at <= {now}"
        ))
        .await?,
        team_7: one("SELECT count(*) FROM tokens WHERE team_id = 'team-7'".into()).await?,
        query_deploy: one(
            "SELECT count(*) FROM tokens WHERE lower(name || ' ' || description) LIKE '%deploy%'"
                .into(),
        )
        .await?,
        query_zephyr: one(
            "SELECT count(*) FROM tokens WHERE lower(name || ' ' || description) LIKE '%zephyr%'"
                .into(),
        )
        .await?,
        used: one("SELECT count(*) FROM tokens WHERE last_used_at IS NOT NULL".into()).await?,
        never_used_active: one(format!(
            "SELECT count(*) FROM tokens WHERE last_used_at IS NULL AND {active_sql}"
        ))
        .await?,
        newest_name: name("SELECT name FROM tokens ORDER BY created_at DESC, id DESC LIMIT 1")
            .await?,
        last_used_name: name(
            "SELECT name FROM tokens ORDER BY COALESCE(last_used_at, -1) DESC, id DESC LIMIT 1",
        )
        .await?,
    })
}
