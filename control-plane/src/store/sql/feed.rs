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
}
