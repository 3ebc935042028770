//! The PostgreSQL store (production): one pool; several control-plane replicas may share the
//! database. Appends to the audit chain and change feed serialise on the `log_head` row lock,
//! so revision order equals commit order across replicas.

use super::{StoreError, StoreResult};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// The driver that `sql/` is compiled against in this module.
pub type Db = sqlx::Postgres;
/// Dialect switch for the few statements that differ.
const IS_POSTGRES: bool = true;

// The same SQL module is compiled once per dialect on purpose (see sql/mod.rs).
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

pub use sql::SqlStore as PgStore;

impl PgStore {
    /// Connects to `url` (`postgres://...`) and applies migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        // JIT off: it compiles each analytics aggregate anew (about 70 ms a call measured,
        // bench/README.md, usage analytics) and helps none of this store's statements.
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("bad postgres url: {e}")))?
            .options([("jit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await
            .map_err(sql::db_err)?;
        sqlx::migrate!("../migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Internal(format!("postgres migrations: {e}")))?;
        let store = Self::new(pool.clone(), pool.clone());
        // Wake local change-feed watchers on commits made by any replica. The listener has
        // its own connection (not one of the pool's), so closing the pool is not blocked.
        let mut listener = sqlx::postgres::PgListener::connect(url)
            .await
            .map_err(sql::db_err)?;
        listener
            .listen("keygate_changes")
            .await
            .map_err(sql::db_err)?;
        let waker = store.clone();
        tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    Ok(_) => waker.wake(),
                    Err(e) => {
                        tracing::warn!(error = %e, "change notification listener failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        waker.wake();
                    }
                }
            }
        });
        Ok(store)
    }
}
