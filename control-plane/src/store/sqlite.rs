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
            .foreign_keys(true)
            // Page cache, in KiB (negative): the single writer gets 64 MiB so usage ingestion
            // and index maintenance stay off the read() path (measured: about 20-25 % more
            // usage events/s than SQLite's 2 MiB default, bench/README.md); readers 16 MiB.
            .pragma("cache_size", "-65536");
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
            .connect_with(opts.clone().read_only(true).pragma("cache_size", "-16384"))
            .await
            .map_err(sql::db_err)?;
        let store = Self::new(write, read);
        watch_other_writers(&store, opts);
        Ok(store)
    }
}

/// How often the store looks for commits made by another process on the same file.
const OTHER_WRITERS_POLL: Duration = Duration::from_millis(250);

/// Commits by another process on the same file (`keygate import old-system` writes directly)
/// do not pass through this store's wake-up, so change-feed watchers would only see them at
/// their next heartbeat. `PRAGMA data_version` changes when any other connection commits;
/// polling it on a connection of its own wakes the watchers within [`OTHER_WRITERS_POLL`].
/// Ends when the store is dropped.
fn watch_other_writers(store: &SqliteStore, opts: SqliteConnectOptions) {
    use sqlx::Connection;
    let commits = store.commits_weak();
    tokio::spawn(async move {
        let Ok(mut conn) = sqlx::SqliteConnection::connect_with(&opts.read_only(true)).await else {
            return;
        };
        let mut last: Option<i64> = None;
        loop {
            tokio::time::sleep(OTHER_WRITERS_POLL).await;
            let Some(commits) = commits.upgrade() else {
                return;
            };
            if let Ok((v,)) = sqlx::query_as::<_, (i64,)>("PRAGMA data_version")
                .fetch_one(&mut conn)
                .await
            {
                if last.is_some_and(|l| l != v) {
                    commits.send_modify(|n| *n = n.wrapping_add(1));
                }
                last = Some(v);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::SqliteStore;

    #[tokio::test]
    async fn connections_get_their_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("keygate.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        let (write, read) = store.pools();
        let size = |pool| async move {
            let (n,): (i64,) = sqlx::query_as("PRAGMA cache_size")
                .fetch_one(pool)
                .await
                .unwrap();
            n
        };
        assert_eq!(size(write).await, -65536);
        assert_eq!(size(read).await, -16384);
    }
}
