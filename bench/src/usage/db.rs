//! A fresh database per run (a SQLite file in a temporary directory, or a `kg_bench_usage_*`
//! database on the PostgreSQL server the caller names), migrated by the store's own
//! `connect`, and what the usage tables hold and cost on disk ([`measure`]).

use crate::BenchError;
use keygate_control_plane::store::postgres::PgStore;
use keygate_control_plane::store::sqlite::SqliteStore;
use keygate_control_plane::testing::{Backend, TestDb, TestServer};
use serde::Serialize;
use sqlx::{AssertSqlSafe, Connection};
use std::collections::BTreeMap;
use std::path::Path;
use tempfile::TempDir;

/// The tables usage ingestion writes (migrations 0005 and 0008).
pub const USAGE_TABLES: [&str; 11] = [
    "usage_rollup_minute",
    "usage_rollup_hour",
    "usage_rollup_day",
    "usage_series_minute",
    "usage_series_hour",
    "usage_series_day",
    "usage_token_day",
    "usage_events",
    "usage_batches",
    "gateway_minutes",
    "gateways",
];

/// A database this benchmark created.
pub struct FreshDb {
    pub backend: Backend,
    pub url: String,
    sqlite_dir: Option<TempDir>,
    pg: Option<(String, String)>,
}

impl FreshDb {
    /// Creates and migrates a new database.
    pub async fn create(
        backend: Backend,
        pg_admin_url: Option<&str>,
        work_dir: Option<&Path>,
    ) -> Result<Self, BenchError> {
        let db = match backend {
            Backend::Sqlite => {
                let mut b = tempfile::Builder::new();
                b.prefix("keygate-bench-usage-");
                let dir = match work_dir {
                    Some(w) => b.tempdir_in(w),
                    None => b.tempdir(),
                }
                .map_err(|e| BenchError::Setup(format!("temp dir: {e}")))?;
                let url = format!("sqlite://{}", dir.path().join("keygate.db").display());
                Self {
                    backend,
                    url,
                    sqlite_dir: Some(dir),
                    pg: None,
                }
            }
            Backend::Postgres => {
                let admin = pg_admin_url.ok_or_else(|| {
                    BenchError::Setup(
                        "PostgreSQL needs a server: set KEYGATE_TEST_PG_URL or --pg-url".into(),
                    )
                })?;
                let name = format!(
                    "kg_bench_usage_{}_{}",
                    std::process::id(),
                    keygate_control_plane::time::now_ms()
                );
                let mut conn = sqlx::PgConnection::connect(admin).await?;
                sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
                let mut u = url::Url::parse(admin)
                    .map_err(|e| BenchError::Setup(format!("bad PostgreSQL URL: {e}")))?;
                u.set_path(&format!("/{name}"));
                Self {
                    backend,
                    url: u.to_string(),
                    sqlite_dir: None,
                    pg: Some((admin.to_owned(), name)),
                }
            }
        };
        // Migrate through the store, as the control plane does.
        // Its pools are closed, waiting at most a few seconds: `PgStore` keeps a connection for
        // its change listener that `close()` never returns (DROP ... WITH (FORCE) ends it).
        let brief = std::time::Duration::from_secs(2);
        let migrated = match backend {
            Backend::Sqlite => match SqliteStore::connect(&db.url).await {
                Ok(s) => {
                    let _ = tokio::time::timeout(brief, s.close()).await;
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Backend::Postgres => match PgStore::connect(&db.url).await {
                Ok(s) => {
                    let _ = tokio::time::timeout(brief, s.close()).await;
                    Ok(())
                }
                Err(e) => Err(e),
            },
        };
        if let Err(e) = migrated {
            db.remove().await?;
            return Err(e.into());
        }
        Ok(db)
    }

    /// Runs `statements` in one transaction.
    pub async fn execute_all(&self, statements: &[String]) -> Result<(), BenchError> {
        match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await?;
                let mut tx = c.begin().await?;
                for s in statements {
                    sqlx::query(AssertSqlSafe(s.clone()))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                c.close().await?;
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await?;
                let mut tx = c.begin().await?;
                for s in statements {
                    sqlx::query(AssertSqlSafe(s.clone()))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                c.close().await?;
            }
        }
        Ok(())
    }

    /// Starts the control plane over this database, as it ships (`TestServer::start_on`).
    pub async fn serve(&self) -> Result<TestServer, BenchError> {
        let key_dir =
            tempfile::tempdir().map_err(|e| BenchError::Setup(format!("temp dir: {e}")))?;
        Ok(TestServer::start_on(
            TestDb {
                url: self.url.clone(),
                backend: self.backend,
                dir: key_dir,
            },
            Vec::new(),
        )
        .await)
    }

    /// Removes the database unless `keep`, in which case its URL is returned.
    pub async fn finish(self, keep: bool) -> Result<Option<String>, BenchError> {
        if keep {
            if let Some(dir) = self.sqlite_dir {
                let _kept = dir.keep();
            }
            return Ok(Some(self.url));
        }
        self.remove().await?;
        Ok(None)
    }

    async fn remove(self) -> Result<(), BenchError> {
        if let Some((admin, name)) = &self.pg {
            let mut conn = sqlx::PgConnection::connect(admin).await?;
            sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await?;
            conn.close().await?;
        }
        drop(self.sqlite_dir);
        Ok(())
    }
}

/// What the database holds at one moment.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Measure {
    /// SQLite: `page_count * page_size` after a WAL checkpoint (free pages included);
    /// PostgreSQL: `pg_database_size`.
    pub database_bytes: u64,
    /// SQLite: free pages, in bytes.
    pub free_bytes: u64,
    /// Per usage table, with its indexes (SQLite: `dbstat`; PostgreSQL:
    /// `pg_total_relation_size`). Empty when SQLite was built without `dbstat`.
    pub table_bytes: BTreeMap<String, u64>,
    pub rows: BTreeMap<String, u64>,
}

impl Measure {
    /// Sum of [`Measure::table_bytes`].
    pub fn usage_bytes(&self) -> u64 {
        self.table_bytes.values().sum()
    }
}

/// Measures the usage tables of `db` (SQLite: checkpoints the WAL first, from a connection of
/// its own; the server may be running but should be idle).
pub async fn measure(db: &FreshDb) -> Result<Measure, BenchError> {
    let mut m = Measure::default();
    match db.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await?;
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut c)
                .await?;
            let (pages,): (i64,) = sqlx::query_as("PRAGMA page_count")
                .fetch_one(&mut c)
                .await?;
            let (size,): (i64,) = sqlx::query_as("PRAGMA page_size").fetch_one(&mut c).await?;
            let (free,): (i64,) = sqlx::query_as("PRAGMA freelist_count")
                .fetch_one(&mut c)
                .await?;
            m.database_bytes = (pages * size) as u64;
            m.free_bytes = (free * size) as u64;
            let per_table: Result<Vec<(String, i64)>, _> = sqlx::query_as(
                "SELECT m.tbl_name, CAST(SUM(d.pgsize) AS INTEGER) FROM dbstat d \
                 JOIN sqlite_master m ON m.name = d.name GROUP BY m.tbl_name",
            )
            .fetch_all(&mut c)
            .await;
            if let Ok(rows) = per_table {
                for (t, b) in rows {
                    if USAGE_TABLES.contains(&t.as_str()) {
                        m.table_bytes.insert(t, b as u64);
                    }
                }
            }
            for t in USAGE_TABLES {
                let (n,): (i64,) =
                    sqlx::query_as(AssertSqlSafe(format!("SELECT COUNT(*) FROM {t}")))
                        .fetch_one(&mut c)
                        .await?;
                m.rows.insert(t.to_owned(), n as u64);
            }
            c.close().await?;
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await?;
            let (size,): (i64,) = sqlx::query_as("SELECT pg_database_size(current_database())")
                .fetch_one(&mut c)
                .await?;
            m.database_bytes = size as u64;
            for t in USAGE_TABLES {
                let (b,): (i64,) = sqlx::query_as(AssertSqlSafe(format!(
                    "SELECT pg_total_relation_size('{t}')"
                )))
                .fetch_one(&mut c)
                .await?;
                m.table_bytes.insert(t.to_owned(), b as u64);
                let (n,): (i64,) =
                    sqlx::query_as(AssertSqlSafe(format!("SELECT COUNT(*) FROM {t}")))
                        .fetch_one(&mut c)
                        .await?;
                m.rows.insert(t.to_owned(), n as u64);
            }
            c.close().await?;
        }
    }
    Ok(m)
}
