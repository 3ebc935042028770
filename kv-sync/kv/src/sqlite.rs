//! The local KV: one SQLite file, table `kv(key, value)`, WAL mode so one writer (kv-sync) and
//! many readers (gateways) work at once. A batch of puts and deletes is one transaction, so a
//! crash never leaves half a batch.
//!
//! Readers follow changes without rereading everything: every batch also appends the keys it
//! touched to `kv_log(seq, key)` in the same transaction. A reader remembers the highest `seq`
//! it has seen and asks [`SqliteKv::changes_since`] for the keys written after it, with their
//! current values (`None`: deleted). The writer keeps the newest [`LOG_KEEP`] entries; a reader
//! further behind is told so ([`Changes::TooOld`]) and reloads with [`SqliteKv::load`].

use crate::backend::{KvBackend, KvError, KvStats};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Change-log entries the writer keeps (older ones are pruned after each batch).
pub const LOG_KEEP: i64 = 200_000;

/// Rows per multi-row statement (two parameters per put; SQLite allows 32,766).
const ROWS_PER_STATEMENT: usize = 500;

/// What changed since a reader's position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// Keys written after the position (each once, with its current value; `None`: deleted)
    /// and the new position.
    Since {
        seq: i64,
        pairs: Vec<(String, Option<Vec<u8>>)>,
    },
    /// The position is older than the log keeps: reload everything.
    TooOld,
}

pub struct SqliteKv {
    pool: SqlitePool,
    requests: AtomicU64,
}

fn err(e: sqlx::Error) -> KvError {
    KvError::Transport(format!("sqlite kv: {e}"))
}

/// The oldest and newest change-log positions. Two scalar subqueries, each answered from the
/// end of the rowid b-tree: SQLite applies its min/max optimisation only to a query with a
/// single `min()` or `max()`, and `SELECT min(seq), max(seq)` scanned the whole log on every
/// poll of every reader (a gateway polls every second: 7 % of a core idle at 100,000 tokens).
const LOG_BOUNDS: &str = "SELECT (SELECT min(seq) FROM kv_log), (SELECT max(seq) FROM kv_log)";

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
            sqlx::raw_sql(
                "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL); \
                 CREATE TABLE IF NOT EXISTS kv_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL);",
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
        for chunk in puts.chunks(ROWS_PER_STATEMENT) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO kv (key, value) ");
            q.push_values(chunk, |mut row, (k, v)| {
                row.push_bind(k).push_bind(v);
            });
            q.push(" ON CONFLICT (key) DO UPDATE SET value = excluded.value");
            q.build().execute(&mut *tx).await.map_err(err)?;
        }
        for chunk in deletes.chunks(ROWS_PER_STATEMENT * 2) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new("DELETE FROM kv WHERE key IN (");
            let mut list = q.separated(", ");
            for k in chunk {
                list.push_bind(k);
            }
            q.push(")");
            q.build().execute(&mut *tx).await.map_err(err)?;
        }
        let touched: Vec<&String> = puts.iter().map(|(k, _)| k).chain(deletes).collect();
        for chunk in touched.chunks(ROWS_PER_STATEMENT * 2) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO kv_log (key) ");
            q.push_values(chunk, |mut row, k| {
                row.push_bind(*k);
            });
            q.build().execute(&mut *tx).await.map_err(err)?;
        }
        if !touched.is_empty() {
            sqlx::query("DELETE FROM kv_log WHERE seq <= (SELECT max(seq) FROM kv_log) - $1")
                .bind(LOG_KEEP)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)
    }

    /// Every pair under `prefix` and the change-log position they are consistent with, read
    /// in one transaction (a reader's full load).
    pub async fn load(&self, prefix: &str) -> Result<(i64, Vec<(String, Vec<u8>)>), KvError> {
        let mut tx = self.pool.begin().await.map_err(err)?;
        let (seq,): (i64,) = sqlx::query_as("SELECT coalesce(max(seq), 0) FROM kv_log")
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?;
        let pairs = sqlx::query_as(
            "SELECT key, value FROM kv WHERE substr(key, 1, length($1)) = $1 ORDER BY key",
        )
        .bind(prefix)
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        tx.rollback().await.map_err(err)?;
        Ok((seq, pairs))
    }

    /// The keys written after `seq` with their current values, at most `limit` log entries
    /// at a time (call again until the position stops moving).
    pub async fn changes_since(&self, seq: i64, limit: u32) -> Result<Changes, KvError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut tx = self.pool.begin().await.map_err(err)?;
        let (oldest, newest): (Option<i64>, Option<i64>) = sqlx::query_as(LOG_BOUNDS)
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?;
        let newest = newest.unwrap_or(0);
        if newest <= seq {
            tx.rollback().await.map_err(err)?;
            return Ok(if newest < seq {
                // The file was replaced or rebuilt under the reader.
                Changes::TooOld
            } else {
                Changes::Since {
                    seq,
                    pairs: Vec::new(),
                }
            });
        }
        if oldest.is_some_and(|o| o > seq + 1) {
            tx.rollback().await.map_err(err)?;
            return Ok(Changes::TooOld);
        }
        let rows: Vec<(i64, String, Option<Vec<u8>>)> = sqlx::query_as(
            "SELECT l.seq, l.key, kv.value FROM kv_log l LEFT JOIN kv ON kv.key = l.key \
             WHERE l.seq > $1 ORDER BY l.seq LIMIT $2",
        )
        .bind(seq)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        tx.rollback().await.map_err(err)?;
        let upto = rows.last().map_or(seq, |r| r.0);
        let mut seen = std::collections::HashSet::new();
        let mut pairs = Vec::with_capacity(rows.len());
        // Newest first, so each key appears once; every value is the current one anyway.
        for (_, k, v) in rows.into_iter().rev() {
            if seen.insert(k.clone()) {
                pairs.push((k, v));
            }
        }
        pairs.reverse();
        Ok(Changes::Since { seq: upto, pairs })
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

    /// Every reader runs LOG_BOUNDS on each poll: it must not scan the log.
    #[tokio::test]
    async fn log_bounds_do_not_scan_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let kv = SqliteKv::open(&dir.path().join("kv.db")).await.unwrap();
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {LOG_BOUNDS}"
        )))
        .fetch_all(&kv.pool)
        .await
        .unwrap();
        let details: Vec<&str> = plan.iter().map(|r| r.3.as_str()).collect();
        assert!(
            details.iter().any(|d| d.starts_with("SEARCH kv_log"))
                && !details.iter().any(|d| d.starts_with("SCAN kv_log")),
            "{details:?}"
        );
    }

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

    #[tokio::test]
    async fn readers_follow_the_change_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.db");
        let kv = SqliteKv::open(&path).await.unwrap();
        // More rows than one statement holds, to cover chunking.
        let many: Vec<(String, Vec<u8>)> = (0..1_234)
            .map(|i| (format!("v1/t/{i:05}"), vec![b'x'; 3]))
            .collect();
        kv.apply_batch(&many, &[]).await.unwrap();
        let reader = SqliteKv::open_read_only(&path).await.unwrap();
        let (seq, pairs) = reader.load("v1/").await.unwrap();
        assert_eq!(pairs.len(), 1_234);
        assert_eq!(seq, 1_234);
        assert_eq!(
            reader.changes_since(seq, 100).await.unwrap(),
            Changes::Since { seq, pairs: vec![] }
        );
        let deletes: Vec<String> = (0..1_100).map(|i| format!("v1/t/{i:05}")).collect();
        kv.apply_batch(&[("v1/t/00001".into(), b"new".to_vec())], &deletes[2..])
            .await
            .unwrap();
        kv.apply_batch(&[("v1/t/00002".into(), b"newer".to_vec())], &[])
            .await
            .unwrap();
        // 00002 was deleted, then written again.
        assert_eq!(kv.list_keys("v1/").await.unwrap().len(), 1_234 - 1_098 + 1);
        // Paged: the first page has the put and some deletes, in log order.
        let Changes::Since { seq: s1, pairs } = reader.changes_since(seq, 10).await.unwrap() else {
            panic!("expected changes")
        };
        assert_eq!(s1, seq + 10);
        assert_eq!(pairs[0], ("v1/t/00001".into(), Some(b"new".to_vec())));
        assert_eq!(pairs[1], ("v1/t/00002".into(), Some(b"newer".to_vec())));
        assert!(pairs[2..].iter().all(|(_, v)| v.is_none()));
        let Changes::Since { seq: s2, pairs } = reader.changes_since(s1, 10_000).await.unwrap()
        else {
            panic!("expected changes")
        };
        assert_eq!(s2, seq + 1 + 1_098 + 1);
        // 00002 was written twice; it appears once, with its current value.
        assert_eq!(pairs.iter().filter(|(k, _)| k == "v1/t/00002").count(), 1);
        assert_eq!(
            pairs.last().unwrap(),
            &("v1/t/00002".into(), Some(b"newer".to_vec()))
        );
        // A position the log no longer holds, or beyond its end, asks for a reload.
        sqlx::query("DELETE FROM kv_log WHERE seq <= 5")
            .execute(&kv.pool)
            .await
            .unwrap();
        assert_eq!(reader.changes_since(2, 10).await.unwrap(), Changes::TooOld);
        assert_eq!(
            reader.changes_since(s2 + 5, 10).await.unwrap(),
            Changes::TooOld
        );
    }
}
