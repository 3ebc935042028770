//! Bulk seeding of a migrated PostgreSQL database: `generate_series` chunks, then
//! `VACUUM ANALYZE` so the planner has statistics (as autovacuum would after a bulk load).

use super::{CHUNK, Dialect, Progress, SeedTimings, fixed_rows, token_id, token_select};
use sqlx::{AssertSqlSafe, PgPool};
use std::time::Instant;

async fn exec(pool: &PgPool, sql: String) -> Result<(), sqlx::Error> {
    sqlx::query(AssertSqlSafe(sql)).execute(pool).await?;
    Ok(())
}

/// Inserts the data set of [`super`] with `total` tokens. `progress` is called after each
/// chunk. Each chunk commits on its own.
pub async fn seed_postgres(
    pool: &PgPool,
    total: u64,
    progress: &mut dyn FnMut(Progress),
) -> Result<SeedTimings, sqlx::Error> {
    let started = Instant::now();
    let now = keygate_control_plane::time::now_ms();
    for stmt in fixed_rows(now) {
        exec(pool, stmt).await?;
    }
    let (columns, select) = token_select(Dialect::Postgres, total, now);
    let mut lo = 0;
    while lo < total {
        let hi = (lo + CHUNK).min(total) - 1;
        exec(
            pool,
            format!(
                "INSERT INTO tokens ({columns}) {select} \
                 FROM generate_series({lo}::bigint, {hi}::bigint) AS g(i)"
            ),
        )
        .await?;
        exec(
            pool,
            format!(
                "INSERT INTO token_scopes (token_id, scope, created_at) \
                 SELECT t.id, s.scope, t.created_at FROM tokens t \
                 CROSS JOIN LATERAL jsonb_array_elements_text(t.scopes::jsonb) AS s(scope) \
                 WHERE t.id BETWEEN '{}' AND '{}'",
                token_id(lo),
                token_id(hi)
            ),
        )
        .await?;
        progress(Progress {
            done: hi + 1,
            total,
            elapsed: started.elapsed(),
        });
        lo = hi + 1;
    }
    let insert_secs = started.elapsed().as_secs_f64();
    let finishing = Instant::now();
    exec(
        pool,
        "VACUUM ANALYZE teams, routes, route_tags, tokens, token_scopes".into(),
    )
    .await?;
    Ok(SeedTimings {
        insert_secs,
        finish_secs: finishing.elapsed().as_secs_f64(),
    })
}
