//! The local KV: one SQLite file, table `kv(key, value)`, WAL mode so one writer (kv-sync) and
//! many readers (gateways) work at once. A batch of puts and deletes is one transaction, so a
//! crash never leaves half a batch.

use crate::backend::{KvBackend, KvError, KvStats};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub struct SqliteKv {
    pool: SqlitePool,
    requests: AtomicU64,
}

fn err(e: sqlx::Error) -> KvError {
    KvError::Transport(format!("sqlite kv: {e}"))
}

impl SqliteKv {
    /// Opens (creating if missing) the KV file for writing.
    pub async fn open(path: &Path) -> Result<Self, KvError> {
        Self::open_with(path, false).await
    }

    /// Opens an existing KV file read-only (gateways).
    pub async fn open_read_only(path: &Path) -> Result<Self, KvError> {
        Self::open_with(path, true).await
    }

    async fn open_with(path: &Path, read_only: bool) -> Result<Self, KvError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(!read_only)
            .read_only(read_only)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(if read_only { 4 } else { 1 })
            .connect_with(opts)
            .await
            .map_err(err)?;
        if !read_only {
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL)",
            )
            .execute(&pool)
            .await
            .map_err(err)?;
        }
        Ok(Self {
            pool,
            requests: AtomicU64::new(0),
        })
    }

    /// Applies puts and deletes in one transaction.
    pub async fn apply(
        &self,
        puts: &[(String, Vec<u8>)],
        deletes: &[String],
    ) -> Result<(), KvError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut tx = self.pool.begin().await.map_err(err)?;
        for (k, v) in puts {
            sqlx::query("INSERT INTO kv (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
                .bind(k)
                .bind(v)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        for k in deletes {
            sqlx::query("DELETE FROM kv WHERE key = $1")
                .bind(k)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)
    }

    /// Every pair under `prefix` (for tests and reconciliation).
    pub async fn dump(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, KvError> {
        sqlx::query_as(
            "SELECT key, value FROM kv WHERE substr(key, 1, length($1)) = $1 ORDER BY key",
        )
        .bind(prefix)
        .fetch_all(&self.pool)
        .await
        .map_err(err)
    }
}

#[async_trait::async_trait]
impl KvBackend for SqliteKv {
    async fn put_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        self.apply(pairs, &[]).await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), KvError> {
        self.apply(&[], keys).await
    }

    async fn apply_batch(
        &self,
        puts: &[(String, Vec<u8>)],
        deletes: &[String],
    ) -> Result<(), KvError> {
        self.apply(puts, deletes).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let row: Option<(Vec<u8>,)> = sqlx::query_as("SELECT value FROM kv WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        Ok(row.map(|r| r.0))
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT key FROM kv WHERE substr(key, 1, length($1)) = $1 ORDER BY key")
                .bind(prefix)
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    fn stats(&self) -> KvStats {
        KvStats {
            requests: self.requests.load(Ordering::Relaxed),
            ..KvStats::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_are_atomic_and_lists_are_prefixed() {
        let dir = tempfile::tempdir().unwrap();
        let kv = SqliteKv::open(&dir.path().join("kv.db")).await.unwrap();
        kv.apply_batch(
            &[
                ("v1/a".into(), b"1".to_vec()),
                ("v1/b".into(), b"2".to_vec()),
                ("x".into(), b"3".to_vec()),
            ],
            &[],
        )
        .await
        .unwrap();
        kv.apply_batch(
            &[("v1/a".into(), b"9".to_vec())],
            &["v1/b".into(), "v1/missing".into()],
        )
        .await
        .unwrap();
        assert_eq!(kv.list_keys("v1/").await.unwrap(), vec!["v1/a"]);
        assert_eq!(kv.get("v1/a").await.unwrap(), Some(b"9".to_vec()));
        let reader = SqliteKv::open_read_only(&dir.path().join("kv.db"))
            .await
            .unwrap();
        assert_eq!(reader.get("x").await.unwrap(), Some(b"3".to_vec()));
        // A prefix with LIKE metacharacters is matched literally.
        assert!(kv.list_keys("v1_").await.unwrap().is_empty());
    }
}
