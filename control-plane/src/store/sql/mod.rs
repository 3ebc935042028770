//! SQL shared by both dialects. This module is compiled twice, once inside
//! `store::sqlite` and once inside `store::postgres`, each time against that parent's `Db`
//! driver type; the text of every statement is valid in both dialects (`$n` placeholders,
//! `RETURNING`, row-value comparisons, `ON CONFLICT`).

use super::{Db, IS_POSTGRES};
use crate::store::StoreError;
use sqlx::{Pool, Transaction};

mod alerts;
mod analytics;
mod audit;
mod dashboard;
mod edge;
mod feed;
mod import;
mod invitations;
mod keys;
mod log;
mod members;
mod rollups;
mod routes;
mod rows;
mod service_accounts;
mod sessions;
mod system;
mod teams;
mod tokens;
mod usage;
mod users;

/// A SQL-backed [`crate::store::Store`].
#[derive(Clone, Debug)]
pub struct SqlStore {
    write: Pool<Db>,
    read: Pool<Db>,
    /// Bumped after every commit (and, on PostgreSQL, on every NOTIFY from any replica):
    /// change-feed watchers wake on it instead of polling.
    commits: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    /// Bumped after a usage batch stored new events: live tails wake on it.
    usage_commits: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
}

#[cfg(test)]
impl SqlStore {
    /// The writer and the read pool, for tests of connection settings.
    #[allow(dead_code)] // compiled per dialect; only the SQLite store's tests use it
    pub(crate) fn pools(&self) -> (&Pool<Db>, &Pool<Db>) {
        (&self.write, &self.read)
    }
}

type Tx = Transaction<'static, Db>;

impl SqlStore {
    pub(super) fn new(write: Pool<Db>, read: Pool<Db>) -> Self {
        Self {
            write,
            read,
            commits: std::sync::Arc::new(tokio::sync::watch::channel(0).0),
            usage_commits: std::sync::Arc::new(tokio::sync::watch::channel(0).0),
        }
    }

    /// Commits and wakes change-feed watchers.
    async fn commit(&self, tx: Tx) -> Result<(), StoreError> {
        tx.commit().await.map_err(db_err)?;
        self.wake();
        Ok(())
    }

    /// Wakes live usage tails (new events were stored).
    fn usage_stored(&self) {
        self.usage_commits.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The change-feed wake-up, held weakly (a watcher task must not keep the store alive).
    #[allow(dead_code)] // compiled per dialect; only the SQLite store uses it
    pub(super) fn commits_weak(&self) -> std::sync::Weak<tokio::sync::watch::Sender<u64>> {
        std::sync::Arc::downgrade(&self.commits)
    }

    /// Wakes change-feed watchers (something may have committed).
    pub(super) fn wake(&self) {
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }

    async fn begin(&self) -> Result<Tx, StoreError> {
        self.write.begin().await.map_err(db_err)
    }

    /// The writer pool, for tests and benchmarks that seed data in bulk.
    pub fn write_pool(&self) -> &Pool<Db> {
        &self.write
    }

    /// Closes both pools.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// Maps a driver error to a [`StoreError`]; the text goes to logs only.
pub(super) fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::AlreadyExists("a record with the same unique value already exists".into())
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

/// `%needle%` for a case-insensitive `LIKE ... ESCAPE '\'`, with wildcards escaped.
fn like_pattern(needle: &str) -> String {
    let mut p = String::with_capacity(needle.len() + 2);
    p.push('%');
    for c in needle.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// ` AND <col> IN (...)`; an empty set matches nothing.
fn push_in(qb: &mut sqlx::QueryBuilder<Db>, col: &str, values: impl Iterator<Item = String>) {
    let values: Vec<String> = values.collect();
    if values.is_empty() {
        qb.push(" AND 1 = 0");
        return;
    }
    qb.push(format!(" AND {col} IN ("));
    let mut sep = qb.separated(", ");
    for v in values {
        sep.push_bind(v);
    }
    qb.push(")");
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).expect("strings serialise")
}

fn snapshot<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("domain types serialise")
}
