//! The store's own health: backend kind, a ping and the applied schema version.

use super::{IS_POSTGRES, SqlStore, db_err};
use crate::store::{SchemaVersion, StoreError, StoreResult, SystemStore};

#[async_trait::async_trait]
impl SystemStore for SqlStore {
    fn backend(&self) -> &'static str {
        if IS_POSTGRES { "postgres" } else { "sqlite" }
    }

    async fn ping(&self) -> StoreResult<()> {
        let (one,): (i32,) = sqlx::query_as("SELECT 1")
            .fetch_one(&self.read)
            .await
            .map_err(db_err)?;
        if one == 1 {
            Ok(())
        } else {
            Err(StoreError::Internal(format!("SELECT 1 answered {one}")))
        }
    }

    async fn schema_version(&self) -> StoreResult<SchemaVersion> {
        // sqlx's migration ledger (both dialects keep the same columns).
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT version, description FROM _sqlx_migrations WHERE success \
             ORDER BY version DESC LIMIT 1",
        )
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        let (version, description) = row.unwrap_or((0, String::new()));
        Ok(SchemaVersion {
            version,
            description,
        })
    }
}
