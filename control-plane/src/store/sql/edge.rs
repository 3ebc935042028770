//! Edge state for the change feed: live tokens, the route table with sealed secrets, a
//! consistent snapshot, outbox compaction and follower status.

use super::rows::{ROUTE_COLUMNS, RouteRow, rate_limit};
use super::{Db, SqlStore, db_err};
use crate::ids::{TeamId, TokenId};
use crate::routes::Route;
use crate::store::{StoreError, StoreResult};
use crate::sync::{EdgeRouteSource, EdgeToken, Follower, SnapshotPart};
use crate::time::now_ms;
use futures::stream::BoxStream;
use sqlx::{AssertSqlSafe, Executor, Pool};

#[derive(sqlx::FromRow)]
struct EdgeTokenRow {
    id: String,
    team_id: String,
    scopes: String,
    token_hash: String,
    expires_at: Option<i64>,
    rate_limit_per_minute: i64,
}

impl TryFrom<EdgeTokenRow> for EdgeToken {
    type Error = StoreError;

    fn try_from(r: EdgeTokenRow) -> Result<Self, StoreError> {
        Ok(Self {
            scopes: serde_json::from_str(&r.scopes)
                .map_err(|e| StoreError::Internal(format!("corrupt tokens.scopes: {e}")))?,
            token_hash: r.token_hash,
            token_id: TokenId(r.id),
            team_id: TeamId(r.team_id),
            expires_at: r.expires_at,
            rate_limit_per_minute: rate_limit("tokens", r.rate_limit_per_minute)?,
        })
    }
}

const EDGE_TOKEN_COLUMNS: &str =
    "id, team_id, scopes, token_hash, expires_at, rate_limit_per_minute";

/// Every route with its allowed teams and sealed secrets, read through `conn`.
async fn routes_with_secrets(
    conn: &mut <Db as sqlx::Database>::Connection,
) -> StoreResult<Vec<EdgeRouteSource>> {
    let rows: Vec<RouteRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {ROUTE_COLUMNS} FROM routes r ORDER BY r.name"
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let mut routes: Vec<Route> = rows
        .into_iter()
        .map(Route::try_from)
        .collect::<Result<_, _>>()?;
    let allowed: Vec<(String, String)> =
        sqlx::query_as("SELECT route_id, team_id FROM route_allowed_teams ORDER BY team_id")
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
    for (rid, team) in allowed {
        if let Some(r) = routes.iter_mut().find(|r| r.id.0 == rid) {
            r.allowed_team_ids.push(TeamId(team));
        }
    }
    let secrets: Vec<(String, String, String)> =
        sqlx::query_as("SELECT route_id, slot, sealed FROM route_secrets ORDER BY route_id, slot")
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
    Ok(routes
        .into_iter()
        .map(|route| {
            let secrets = secrets
                .iter()
                .filter(|(rid, _, _)| *rid == route.id.0)
                .map(|(_, slot, sealed)| (slot.clone(), sealed.clone()))
                .collect();
            EdgeRouteSource { route, secrets }
        })
        .collect())
}

/// Streams a snapshot from one read transaction, so every part is at the same revision.
async fn run_snapshot(
    pool: Pool<Db>,
    page: u32,
    out: tokio::sync::mpsc::Sender<StoreResult<SnapshotPart>>,
) -> StoreResult<()> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    if super::IS_POSTGRES {
        tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(db_err)?;
    }
    // The first read fixes the snapshot (SQLite WAL read transaction, PostgreSQL repeatable read).
    let (revision,): (i64,) = sqlx::query_as("SELECT revision FROM log_head WHERE id = 1")
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
    if out
        .send(Ok(SnapshotPart::Revision(revision)))
        .await
        .is_err()
    {
        return Ok(());
    }
    let now = now_ms();
    let mut after = String::new();
    let mut count = 0u64;
    loop {
        let rows: Vec<EdgeTokenRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {EDGE_TOKEN_COLUMNS} FROM tokens WHERE revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $1) AND token_hash > $2 ORDER BY token_hash LIMIT $3"
        )))
        .bind(now)
        .bind(&after)
        .bind(i64::from(page))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let n = rows.len();
        if let Some(last) = rows.last() {
            after = last.token_hash.clone();
        }
        let tokens: Vec<EdgeToken> = rows
            .into_iter()
            .map(EdgeToken::try_from)
            .collect::<Result<_, _>>()?;
        count += tokens.len() as u64;
        if !tokens.is_empty() && out.send(Ok(SnapshotPart::Tokens(tokens))).await.is_err() {
            return Ok(());
        }
        if n < page as usize {
            break;
        }
    }
    let routes = routes_with_secrets(&mut tx).await?;
    if out.send(Ok(SnapshotPart::Routes(routes))).await.is_err() {
        return Ok(());
    }
    let _ = out.send(Ok(SnapshotPart::End(count))).await;
    tx.rollback().await.map_err(db_err)
}

#[derive(sqlx::FromRow)]
struct FollowerRow {
    follower: String,
    applied_revision: i64,
    last_error: String,
    applied_changes: i64,
    reported_at: i64,
    resync_requested: bool,
}

impl From<FollowerRow> for Follower {
    fn from(r: FollowerRow) -> Self {
        Self {
            follower: r.follower,
            applied_revision: r.applied_revision,
            last_error: r.last_error,
            applied_changes: r.applied_changes,
            reported_at: r.reported_at,
            resync_requested: r.resync_requested,
        }
    }
}

impl SqlStore {
    pub(super) async fn edge_tokens_impl(&self, ids: &[TokenId]) -> StoreResult<Vec<EdgeToken>> {
        let mut out = Vec::with_capacity(ids.len());
        // Bounded placeholder lists: SQLite allows 32,766 parameters, PostgreSQL 65,535.
        for chunk in ids.chunks(1000) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT {EDGE_TOKEN_COLUMNS} FROM tokens WHERE revoked_at IS NULL AND id IN ({})",
                placeholders.join(", ")
            );
            let mut q = sqlx::query_as::<_, EdgeTokenRow>(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.as_str());
            }
            let rows = q.fetch_all(&self.read).await.map_err(db_err)?;
            for r in rows {
                out.push(EdgeToken::try_from(r)?);
            }
        }
        Ok(out)
    }

    pub(super) async fn edge_token_by_hash_impl(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<EdgeToken>> {
        let sql = format!(
            "SELECT {EDGE_TOKEN_COLUMNS} FROM tokens WHERE revoked_at IS NULL AND token_hash = $1"
        );
        let row = sqlx::query_as::<_, EdgeTokenRow>(AssertSqlSafe(sql))
            .bind(token_hash)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.map(EdgeToken::try_from).transpose()
    }

    pub(super) async fn edge_routes_impl(&self) -> StoreResult<Vec<EdgeRouteSource>> {
        let mut conn = self.read.acquire().await.map_err(db_err)?;
        routes_with_secrets(&mut conn).await
    }

    pub(super) fn snapshot_impl(&self, page: u32) -> BoxStream<'static, StoreResult<SnapshotPart>> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let pool = self.read.clone();
        tokio::spawn(async move {
            let err_out = tx.clone();
            if let Err(e) = run_snapshot(pool, page.max(1), tx).await {
                let _ = err_out.send(Err(e)).await;
            }
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
    }

    pub(super) async fn compacted_revision_impl(&self) -> StoreResult<i64> {
        let (r,): (i64,) = sqlx::query_as("SELECT compacted_revision FROM log_head WHERE id = 1")
            .fetch_one(&self.read)
            .await
            .map_err(db_err)?;
        Ok(r)
    }

    pub(super) async fn compact_changes_impl(&self, before: i64) -> StoreResult<i64> {
        let mut tx = self.begin().await?;
        // Keep the newest event so a caught-up follower can always confirm its position.
        let (max_old,): (Option<i64>,) = sqlx::query_as(
            "SELECT max(revision) FROM change_events WHERE at < $1 \
             AND revision < (SELECT max(revision) FROM change_events)",
        )
        .bind(before)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(upto) = max_old else {
            tx.rollback().await.map_err(db_err)?;
            return self.compacted_revision_impl().await;
        };
        sqlx::query("DELETE FROM change_events WHERE revision <= $1")
            .bind(upto)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "UPDATE log_head SET compacted_revision = $1 WHERE id = 1 AND compacted_revision < $1",
        )
        .bind(upto)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.compacted_revision_impl().await
    }

    pub(super) async fn report_follower_impl(&self, f: &Follower) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let requested: Option<(bool,)> =
            sqlx::query_as("SELECT resync_requested FROM sync_followers WHERE follower = $1")
                .bind(&f.follower)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO sync_followers (follower, applied_revision, last_error, applied_changes, reported_at, resync_requested) \
             VALUES ($1, $2, $3, $4, $5, FALSE) ON CONFLICT (follower) DO UPDATE SET \
             applied_revision = excluded.applied_revision, last_error = excluded.last_error, \
             applied_changes = excluded.applied_changes, reported_at = excluded.reported_at, resync_requested = FALSE",
        )
        .bind(&f.follower)
        .bind(f.applied_revision)
        .bind(&f.last_error)
        .bind(f.applied_changes)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(requested.is_some_and(|(r,)| r))
    }

    pub(super) async fn list_followers_impl(&self) -> StoreResult<Vec<Follower>> {
        let rows: Vec<FollowerRow> = sqlx::query_as(
            "SELECT follower, applied_revision, last_error, applied_changes, reported_at, resync_requested \
             FROM sync_followers ORDER BY follower",
        )
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        Ok(rows.into_iter().map(Follower::from).collect())
    }

    pub(super) async fn request_resync_impl(&self, follower: Option<&str>) -> StoreResult<u32> {
        let r = match follower {
            Some(f) => {
                sqlx::query("UPDATE sync_followers SET resync_requested = TRUE WHERE follower = $1")
                    .bind(f)
                    .execute(&self.write)
                    .await
            }
            None => {
                sqlx::query("UPDATE sync_followers SET resync_requested = TRUE")
                    .execute(&self.write)
                    .await
            }
        }
        .map_err(db_err)?;
        Ok(u32::try_from(r.rows_affected()).unwrap_or(u32::MAX))
    }
}
