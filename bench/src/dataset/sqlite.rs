//! Bulk seeding of a migrated SQLite database: recursive-CTE chunks in one transaction on
//! the store's single writer connection, then a WAL checkpoint so reads start from the main
//! file. No `ANALYZE`: the control plane does not run it either, so the planner sees what a
//! real deployment sees.

use super::{CHUNK, Dialect, Progress, SeedTimings, fixed_rows, token_id, token_select};
use sqlx::{AssertSqlSafe, Connection, SqlitePool};
use std::time::Instant;

/// Page cache for the seeding connection (KiB, as a negative `cache_size`): the random
/// `token_hash` index thrashes SQLite's default 2 MB cache.
const SEED_CACHE_KIB: i64 = 512 * 1024;

/// Inserts the data set of [`super`] with `total` tokens. `progress` is called after each
/// chunk. Everything commits at once.
pub async fn seed_sqlite(
    pool: &SqlitePool,
    total: u64,
    progress: &mut dyn FnMut(Progress),
) -> Result<SeedTimings, sqlx::Error> {
    let started = Instant::now();
    let now = keygate_control_plane::time::now_ms();
    let mut conn = pool.acquire().await?;
    sqlx::query(AssertSqlSafe(format!(
        "PRAGMA cache_size = -{SEED_CACHE_KIB}"
    )))
    .execute(&mut *conn)
    .await?;
    let mut tx = conn.begin().await?;
    for stmt in fixed_rows(now) {
        sqlx::query(AssertSqlSafe(stmt)).execute(&mut *tx).await?;
    }
    let (columns, select) = token_select(Dialect::Sqlite, total, now);
    let mut lo = 0;
    while lo < total {
        let hi = (lo + CHUNK).min(total) - 1;
        sqlx::query(AssertSqlSafe(format!(
            "WITH RECURSIVE g(i) AS (SELECT {lo} UNION ALL SELECT i + 1 FROM g WHERE i < {hi}) \
             INSERT INTO tokens ({columns}) {select} FROM g"
        )))
        .execute(&mut *tx)
        .await?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO token_scopes (token_id, scope, created_at) \
             SELECT t.id, j.value, t.created_at FROM tokens t, json_each(t.scopes) j \
             WHERE t.id BETWEEN '{}' AND '{}'",
            token_id(lo),
            token_id(hi)
        )))
        .execute(&mut *tx)
        .await?;
        progress(Progress {
            done: hi + 1,
            total,
            elapsed: started.elapsed(),
        });
        lo = hi + 1;
    }
    tx.commit().await?;
    let insert_secs = started.elapsed().as_secs_f64();
    let finishing = Instant::now();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut *conn)
        .await?;
    sqlx::query("PRAGMA cache_size = -2000")
        .execute(&mut *conn)
        .await?;
    Ok(SeedTimings {
        insert_secs,
        finish_secs: finishing.elapsed().as_secs_f64(),
    })
}
