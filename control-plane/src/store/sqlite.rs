//! The SQLite store (embedded default): one file in the data directory, WAL mode, one writer
//! connection (SQLite serialises writers anyway; one connection avoids busy-snapshot errors)
//! and a small pool of readers.

use super::{StoreError, StoreResult};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

/// The driver that `sql/` is compiled against in this module.
pub type Db = sqlx::Sqlite;
/// Dialect switch for the few statements that differ.
const IS_POSTGRES: bool = false;

// The same SQL module is compiled once per dialect on purpose (see sql/mod.rs).
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

pub use sql::SqlStore as SqliteStore;

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path/to/file.db`) and
    /// applies migrations. Durability: WAL with `synchronous=NORMAL`, which survives a
    /// process crash; a power loss can drop the last commits (see ARCHITECTURE.md).
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("bad sqlite url: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone())
            .await
            .map_err(sql::db_err)?;
        sqlx::migrate!("../migrations/sqlite")
            .run(&write)
            .await
            .map_err(|e| StoreError::Internal(format!("sqlite migrations: {e}")))?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.read_only(true))
            .await
            .map_err(sql::db_err)?;
        Ok(Self::new(write, read))
    }
}
