//! The change outbox in SQL.

use super::rows::ChangeRow;
use super::{SqlStore, db_err};
use crate::store::{ChangeEvent, FeedStore, StoreResult};

#[async_trait::async_trait]
impl FeedStore for SqlStore {
    async fn list_changes(&self, after: i64, limit: u32) -> StoreResult<Vec<ChangeEvent>> {
        let rows: Vec<ChangeRow> = sqlx::query_as(
            "SELECT revision, at, entity_type, entity_id, op, payload, audit_seq FROM change_events \
             WHERE revision > $1 ORDER BY revision LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        Ok(rows.into_iter().map(ChangeEvent::from).collect())
    }

    async fn head_revision(&self) -> StoreResult<i64> {
        let (r,): (i64,) = sqlx::query_as("SELECT revision FROM log_head WHERE id = 1")
            .fetch_one(&self.read)
            .await
            .map_err(db_err)?;
        Ok(r)
    }

    async fn compacted_revision(&self) -> StoreResult<i64> {
        self.compacted_revision_impl().await
    }

    async fn compact_changes(&self, before: i64) -> StoreResult<i64> {
        self.compact_changes_impl(before).await
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits.subscribe()
    }

    async fn edge_tokens(
        &self,
        ids: &[crate::ids::TokenId],
    ) -> StoreResult<Vec<crate::sync::EdgeToken>> {
        self.edge_tokens_impl(ids).await
    }

    async fn edge_token_by_hash(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<crate::sync::EdgeToken>> {
        self.edge_token_by_hash_impl(token_hash).await
    }

    async fn edge_routes(&self) -> StoreResult<Vec<crate::sync::EdgeRouteSource>> {
        self.edge_routes_impl().await
    }

    fn snapshot(
        &self,
        page: u32,
    ) -> futures::stream::BoxStream<'static, StoreResult<crate::sync::SnapshotPart>> {
        self.snapshot_impl(page)
    }

    async fn report_follower(&self, f: &crate::sync::Follower) -> StoreResult<bool> {
        self.report_follower_impl(f).await
    }

    async fn list_followers(&self) -> StoreResult<Vec<crate::sync::Follower>> {
        self.list_followers_impl().await
    }

    async fn request_resync(&self, follower: Option<&str>) -> StoreResult<u32> {
        self.request_resync_impl(follower).await
    }
}
