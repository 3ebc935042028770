//! A throwaway PostgreSQL database a benchmark creates on a server it is given, and drops
//! (closing any connection still open to it) when done. Its name starts with `kg_bench_`, and
//! only such names are ever dropped.

use crate::BenchError;
use sqlx::{AssertSqlSafe, Connection};

/// Prefix of every database a benchmark creates.
const PREFIX: &str = "kg_bench_";

/// A database this benchmark created.
#[derive(Debug, Clone)]
pub struct PgDatabase {
    admin_url: String,
    name: String,
    /// URL of the database.
    pub url: String,
}

impl PgDatabase {
    /// Creates `kg_bench_<what>_<pid>_<ms>` on the server of `admin_url`.
    pub async fn create(admin_url: &str, what: &str) -> Result<Self, BenchError> {
        let name = format!(
            "{PREFIX}{what}_{}_{}",
            std::process::id(),
            keygate_control_plane::time::now_ms()
        );
        let mut u = url::Url::parse(admin_url)
            .map_err(|e| BenchError::Setup(format!("bad PostgreSQL URL: {e}")))?;
        let mut conn = sqlx::PgConnection::connect(admin_url).await?;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        u.set_path(&format!("/{name}"));
        Ok(Self {
            admin_url: admin_url.to_owned(),
            name,
            url: u.to_string(),
        })
    }

    /// Drops the database, closing any connection still open to it.
    pub async fn drop_now(&self) -> Result<(), BenchError> {
        if !self.name.starts_with(PREFIX) {
            return Err(BenchError::Setup(format!(
                "refusing to drop {}: not made by a benchmark",
                self.name
            )));
        }
        let mut conn = sqlx::PgConnection::connect(&self.admin_url).await?;
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        Ok(())
    }
}
