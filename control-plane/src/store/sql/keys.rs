//! Management keys in SQL (hashes only).

use super::log::{Entry, Op, append};
use super::rows::KeyRow;
use super::{SqlStore, db_err};
use crate::context::RequestContext;
use crate::store::{KeyStore, ManagementKey, NewManagementKey, StoreError, StoreResult};
use crate::time::now_ms;
use serde_json::json;
use sqlx::AssertSqlSafe;

const KEY_COLUMNS: &str = "id, name, preview, is_bootstrap, created_at, expires_at, revoked_at";

#[async_trait::async_trait]
impl KeyStore for SqlStore {
    async fn create_management_key(
        &self,
        ctx: &RequestContext,
        k: NewManagementKey,
    ) -> StoreResult<ManagementKey> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO management_keys (id, name, key_hash, preview, is_bootstrap, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(k.id.as_str())
        .bind(&k.name)
        .bind(&k.key_hash)
        .bind(&k.preview)
        .bind(k.is_bootstrap)
        .bind(now_ms())
        .bind(k.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let row: KeyRow = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM management_keys WHERE id = $1"
        )))
        .bind(k.id.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        append(
            &mut tx,
            ctx,
            vec![Entry {
                action: "management_key.create",
                entity_type: "management_key",
                entity_id: k.id.0.clone(),
                team_id: String::new(),
                diff: json!({"name": [null, k.name], "preview": [null, k.preview], "is_bootstrap": [null, k.is_bootstrap]}),
                op: Op::Upsert,
                payload: json!({}),
            }],
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(row.into())
    }

    async fn find_management_key(&self, key_hash: &str) -> StoreResult<Option<ManagementKey>> {
        let row: Option<KeyRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM management_keys WHERE key_hash = $1"
        )))
        .bind(key_hash)
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        Ok(row.map(ManagementKey::from))
    }

    async fn count_management_keys(&self) -> StoreResult<u64> {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM management_keys")
            .fetch_one(&self.write)
            .await
            .map_err(db_err)?;
        u64::try_from(n).map_err(|_| StoreError::Internal("negative count".into()))
    }
}
