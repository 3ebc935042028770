//! One case's database and servers: a fresh SQLite file in a temporary directory, or a fresh
//! database `kg_bench_*` on the PostgreSQL server the caller names; seeded in bulk through
//! the store's own connection (so migrations ran first) by [`seed`], then served on
//! `127.0.0.1:0` by [`Seeded::serve`]. [`Running::stop`] stops a server; [`Seeded::finish`]
//! removes the database this module created (and nothing else).
//!
//! [`Serve::AsShipped`] is [`TestServer::start_on`]: the control plane exactly as it ships.
//! (An earlier what-if mode ran it on a `TCP_NODELAY` listener; it found the 44 ms Nagle
//! floor, the server now sets `TCP_NODELAY` itself, and the mode was removed.)

use crate::BenchError;
use crate::dataset::{self, Progress, SeedTimings};
use crate::pg_database::PgDatabase;
use keygate_control_plane::store::postgres::PgStore;
use keygate_control_plane::store::sqlite::SqliteStore;
use keygate_control_plane::testing::{Backend, TestDb, TestServer};
use std::path::PathBuf;
use tempfile::TempDir;

/// How the control plane is started over the seeded database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Serve {
    /// [`TestServer::start_on`]: the server as it ships.
    #[default]
    AsShipped,
}

/// A control plane serving over a seeded database until [`Running::stop`].
pub struct Running {
    server: Server,
}

enum Server {
    Test(Box<TestServer>),
}

impl Running {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        match &self.server {
            Server::Test(s) => s.url(),
        }
    }

    /// A management key the server accepts.
    pub fn admin_key(&self) -> &str {
        match &self.server {
            Server::Test(s) => &s.admin_key,
        }
    }

    /// Stops the server and waits for it.
    pub async fn stop(self) {
        match self.server {
            Server::Test(s) => (*s).stop().await,
        }
    }
}

/// Where databases are created.
#[derive(Debug, Clone, Default)]
pub struct Place {
    /// Admin URL of a PostgreSQL server (`postgres://user@127.0.0.1:port/postgres`); this
    /// benchmark creates and drops its own databases there.
    pub pg_admin_url: Option<String>,
    /// Parent directory of the SQLite databases (default: the system temp directory).
    pub work_dir: Option<PathBuf>,
}

/// A seeded database.
pub struct Seeded {
    pub backend: Backend,
    pub db_url: String,
    pub seed: SeedTimings,
    sqlite_dir: Option<TempDir>,
    pg: Option<PgDatabase>,
}

fn progress_printer(label: String) -> impl FnMut(Progress) {
    let mut last = 0;
    move |p: Progress| {
        if p.done == p.total || p.done - last >= p.total.div_ceil(10) {
            last = p.done;
            let rate = p.done as f64 / p.elapsed.as_secs_f64().max(1e-9);
            eprintln!(
                "  seeding {label}: {}/{} tokens, {:.1} s ({rate:.0} tokens/s)",
                p.done,
                p.total,
                p.elapsed.as_secs_f64()
            );
        }
    }
}

/// Creates and seeds a database of `backend` with `tokens` tokens.
pub async fn seed(backend: Backend, tokens: u64, place: &Place) -> Result<Seeded, BenchError> {
    let label = format!("{} {tokens}", super::backend_name(backend));
    let mut progress = progress_printer(label.clone());
    let (url, seed, sqlite_dir, pg) = match backend {
        Backend::Sqlite => {
            let mut b = tempfile::Builder::new();
            b.prefix("keygate-bench-");
            let dir = match &place.work_dir {
                Some(w) => b.tempdir_in(w),
                None => b.tempdir(),
            }
            .map_err(|e| BenchError::Setup(format!("temp dir: {e}")))?;
            let url = format!("sqlite://{}", dir.path().join("keygate.db").display());
            let store = SqliteStore::connect(&url).await?;
            let seed = dataset::seed_sqlite(store.write_pool(), tokens, &mut progress).await;
            close_briefly(store.close()).await;
            (url, seed?, Some(dir), None)
        }
        Backend::Postgres => {
            let admin_url = place.pg_admin_url.clone().ok_or_else(|| {
                BenchError::Setup(
                    "PostgreSQL needs a server: set KEYGATE_TEST_PG_URL or --pg-url \
                     (for example `source scripts/lib/pg.sh && pg_start_throwaway`)"
                        .into(),
                )
            })?;
            let db = PgDatabase::create(&admin_url, "cp").await?;
            let store = PgStore::connect(&db.url).await?;
            let seed = dataset::seed_postgres(store.write_pool(), tokens, &mut progress).await;
            close_briefly(store.close()).await;
            let seed = match seed {
                Ok(s) => s,
                Err(e) => {
                    db.drop_now().await?;
                    return Err(e.into());
                }
            };
            (db.url.clone(), seed, None, Some(db))
        }
    };
    eprintln!(
        "  seeded {label} in {:.1} s (+ {:.1} s {})",
        seed.insert_secs,
        seed.finish_secs,
        match backend {
            Backend::Sqlite => "WAL checkpoint",
            Backend::Postgres => "VACUUM ANALYZE",
        }
    );
    Ok(Seeded {
        backend,
        db_url: url,
        seed,
        sqlite_dir,
        pg,
    })
}

impl Seeded {
    /// Starts a control plane over this database.
    pub async fn serve(&self, how: Serve) -> Result<Running, BenchError> {
        let server = match how {
            Serve::AsShipped => {
                let key_dir =
                    tempfile::tempdir().map_err(|e| BenchError::Setup(format!("temp dir: {e}")))?;
                Server::Test(Box::new(
                    TestServer::start_on(
                        TestDb {
                            url: self.db_url.clone(),
                            backend: self.backend,
                            dir: key_dir,
                        },
                        Vec::new(),
                    )
                    .await,
                ))
            }
        };
        Ok(Running { server })
    }

    /// Removes the database unless `keep`, in which case its URL is returned. Stop its
    /// servers first.
    pub async fn finish(self, keep: bool) -> Result<Option<String>, BenchError> {
        let url = self.db_url;
        if keep {
            if let Some(dir) = self.sqlite_dir {
                let _kept = dir.keep();
            }
            return Ok(Some(url));
        }
        if let Some(db) = &self.pg {
            db.drop_now().await?;
        }
        Ok(None)
    }
}

/// Closes the seeding store's pools, but waits at most a few seconds: `PgStore` keeps one
/// pooled connection checked out for its change-notification listener for as long as the
/// process runs, so its `close()` never completes. Idle connections are closed at once;
/// what is left is dropped with the database (`DROP DATABASE ... WITH (FORCE)`).
async fn close_briefly(close: impl std::future::Future<Output = ()>) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), close).await;
}
