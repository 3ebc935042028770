//! The in-memory configuration: every token record and the compiled route table at one KV
//! revision, swapped atomically. A loader task follows the local KV's change log: a
//! revocation is visible here one poll interval after kv-sync wrote it, with no restart.
//!
//! Failure rules: if the KV cannot be read, the last good snapshot keeps serving (and the
//! error shows in `/readyz` and the metrics); a route table that fails validation is refused
//! whole, the previous table stays, and every problem is logged and reported.

use arc_swap::ArcSwapOption;
use keygate_gateway_core::{EdgeKey, EdgeToken, Interner, Routes, TokenHash, TokenTable};
use keygate_kv::{Changes, SqliteKv};
use keygate_kv_record as rec;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One consistent view of the edge configuration.
pub struct Snapshot {
    /// The KV revision (kv-sync's checkpoint) this view includes; 0 if none was written.
    pub revision: i64,
    /// When kv-sync wrote that checkpoint (Unix ms); 0 if unknown.
    pub written_at_ms: i64,
    pub routes: Arc<Routes>,
    /// Every live token by hash; a new snapshot shares the large base map with the previous
    /// one and copies only the small overlay of recent changes (see `TokenTable`).
    pub tokens: TokenTable,
}

impl Snapshot {
    fn new(revision: (i64, i64), routes: Arc<Routes>, tokens: TokenTable) -> Self {
        Self {
            revision: revision.0,
            written_at_ms: revision.1,
            routes,
            tokens,
        }
    }
}

/// What the loader last saw, for `/readyz`, metrics and logs.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LoadStatus {
    /// The last KV read error, empty when the last read worked.
    pub kv_error: String,
    /// Problems of the newest route table, if it was refused (the previous one serves).
    pub route_problems: Vec<String>,
    /// Token records that could not be decoded (skipped).
    pub bad_records: u64,
    pub kv_errors_total: u64,
    pub route_tables_refused_total: u64,
    pub full_loads_total: u64,
}

/// The shared, swappable configuration.
#[derive(Default)]
pub struct ConfigState {
    current: ArcSwapOption<Snapshot>,
    /// Bumped after every store, so workers can keep their own handle to the snapshot and
    /// only reload it when this moves (a read of a rarely written word, no shared refcount).
    generation: AtomicU64,
    status: Mutex<LoadStatus>,
}

impl ConfigState {
    /// The current snapshot (cheap; hold it for one request).
    pub fn load(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// Changes whenever the snapshot is replaced; read it before [`Self::load`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn store(&self, snap: Snapshot) {
        self.current.store(Some(Arc::new(snap)));
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub fn status(&self) -> LoadStatus {
        self.status.lock().expect("status lock").clone()
    }

    fn set_kv_error(&self, e: String) {
        let mut s = self.status.lock().expect("status lock");
        if s.kv_error != e {
            tracing::warn!(error = %e, "cannot read the KV; serving the last good configuration");
        }
        s.kv_error = e;
        s.kv_errors_total += 1;
    }

    fn clear_kv_error(&self) {
        let mut s = self.status.lock().expect("status lock");
        if !s.kv_error.is_empty() {
            tracing::info!("KV readable again");
            s.kv_error.clear();
        }
    }
}

/// Follows the local KV into a [`ConfigState`].
pub struct Loader {
    path: PathBuf,
    key: EdgeKey,
    state: Arc<ConfigState>,
    kv: Option<SqliteKv>,
    /// (device, inode) of the file `kv` has open: a file replaced under the same path (kv-sync
    /// rebuilt it, an operator restored a copy) is noticed and reopened, never read stale.
    identity: Option<(u64, u64)>,
    seq: i64,
    full: bool,
    /// Shares teams and scope sets among token records (kept across polls).
    interner: Interner,
}

fn file_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).ok().map(|_| (0, 0))
    }
}

/// Log entries read per query while catching up.
const PAGE: u32 = 20_000;

impl Loader {
    pub fn new(path: PathBuf, key: EdgeKey, state: Arc<ConfigState>) -> Self {
        Self {
            path,
            key,
            state,
            kv: None,
            identity: None,
            seq: 0,
            full: true,
            interner: Interner::default(),
        }
    }

    /// Polls every `every` until `stop` turns true.
    pub async fn run(mut self, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            self.poll().await;
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// One poll: open the KV if needed, then a full load or the changes since the last one.
    pub async fn poll(&mut self) {
        let identity = file_identity(&self.path);
        if self.kv.is_some() && identity != self.identity {
            tracing::warn!(path = %self.path.display(), "the KV file was replaced or removed; reopening");
            self.kv = None;
        }
        if self.kv.is_none() {
            if !self.path.exists() {
                self.state.set_kv_error(format!(
                    "{} does not exist yet (is kv-sync running?)",
                    self.path.display()
                ));
                return;
            }
            match SqliteKv::open_read_only(&self.path).await {
                Ok(kv) => {
                    self.kv = Some(kv);
                    self.identity = identity;
                    self.full = true;
                }
                Err(e) => {
                    self.state.set_kv_error(e.to_string());
                    return;
                }
            }
        }
        let result = if self.full {
            self.load_full().await
        } else {
            self.load_changes().await
        };
        match result {
            Ok(()) => self.state.clear_kv_error(),
            Err(e) => {
                self.state.set_kv_error(e);
                // Reopen next time: the file may have been replaced.
                self.kv = None;
            }
        }
    }

    async fn load_full(&mut self) -> Result<(), String> {
        let kv = self.kv.as_ref().expect("opened");
        let (seq, pairs) = kv.load(rec::PREFIX).await.map_err(|e| e.to_string())?;
        // A full load starts a fresh interner, so teams and scope sets no longer used go.
        self.interner = Interner::default();
        let mut tokens = Vec::new();
        let mut routes = None;
        let mut revision = (0, 0);
        let mut bad = 0;
        for (k, v) in pairs {
            match classify(&k, Some(&v)) {
                Entry::Token(hash, Some(t)) => {
                    tokens.push((hash, self.interner.token(&t)));
                }
                Entry::Routes(Some(t)) => routes = Some(t),
                Entry::Revision(Some(r)) => revision = (r.revision, r.at),
                Entry::Bad => bad += 1,
                _ => {}
            }
        }
        let previous = self.state.load();
        let had_table = routes.is_some();
        let routes = match routes {
            Some(t) => self
                .compile(&t)
                .or_else(|| previous.as_ref().map(|p| p.routes.clone())),
            None => previous.as_ref().map(|p| p.routes.clone()),
        };
        {
            let mut s = self.state.status.lock().expect("status lock");
            s.full_loads_total += 1;
            s.bad_records = bad;
        }
        self.seq = seq;
        self.full = false;
        match routes {
            Some(routes) => {
                self.state.store(Snapshot::new(
                    revision,
                    routes,
                    TokenTable::from_tokens(tokens),
                ));
                tracing::info!(revision = revision.0, "configuration loaded");
            }
            None => {
                self.full = true;
                return Err(if had_table {
                    // Refused, with nothing older to fall back on: see route_problems.
                    "the KV's route table failed validation and no earlier one was loaded".into()
                } else {
                    // kv-sync has not finished its first snapshot.
                    "the KV holds no route table yet (is kv-sync running?)".into()
                });
            }
        }
        Ok(())
    }

    async fn load_changes(&mut self) -> Result<(), String> {
        let Some(current) = self.state.load() else {
            self.full = true;
            return Ok(());
        };
        let mut token_changes: Vec<(TokenHash, Option<EdgeToken>)> = Vec::new();
        let mut routes = current.routes.clone();
        let mut revision = (current.revision, current.written_at_ms);
        let mut changed = false;
        loop {
            let kv = self.kv.as_ref().expect("opened");
            match kv
                .changes_since(self.seq, PAGE)
                .await
                .map_err(|e| e.to_string())?
            {
                Changes::TooOld => {
                    tracing::info!("the KV's change log moved past this gateway; reloading");
                    return self.load_full().await;
                }
                Changes::Since { seq, pairs } => {
                    if seq == self.seq {
                        break;
                    }
                    self.seq = seq;
                    changed = true;
                    for (k, v) in pairs {
                        match classify(&k, v.as_deref()) {
                            Entry::Token(hash, t) => {
                                token_changes.push((hash, t.map(|t| self.interner.token(&t))));
                            }
                            Entry::Routes(Some(t)) => {
                                if let Some(r) = self.compile(&t) {
                                    routes = r;
                                }
                            }
                            Entry::Routes(None) => {
                                tracing::warn!(
                                    "the route table was deleted from the KV; keeping the previous one"
                                );
                            }
                            Entry::Revision(Some(r)) => revision = (r.revision, r.at),
                            Entry::Revision(None) | Entry::Other => {}
                            Entry::Bad => {
                                self.state.status.lock().expect("status lock").bad_records += 1;
                            }
                        }
                    }
                }
            }
        }
        if changed {
            let tokens = if token_changes.is_empty() {
                current.tokens.clone()
            } else {
                current.tokens.with_changes(token_changes)
            };
            self.state.store(Snapshot::new(revision, routes, tokens));
        }
        Ok(())
    }

    /// Compiles a route table; on failure keeps nothing, reports every problem.
    fn compile(&self, table: &rec::RouteTable) -> Option<Arc<Routes>> {
        match Routes::compile(table, &self.key) {
            Ok(r) => {
                self.state
                    .status
                    .lock()
                    .expect("status lock")
                    .route_problems
                    .clear();
                Some(Arc::new(r))
            }
            Err(problems) => {
                let problems: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
                for p in &problems {
                    tracing::error!(problem = %p, "route table refused; the previous table stays in force");
                }
                let mut s = self.state.status.lock().expect("status lock");
                s.route_problems = problems;
                s.route_tables_refused_total += 1;
                None
            }
        }
    }
}

enum Entry {
    Token(TokenHash, Option<rec::TokenRecord>),
    Routes(Option<rec::RouteTable>),
    Revision(Option<rec::RevisionRecord>),
    Bad,
    Other,
}

/// What a KV key holds; `value` is `None` for a deleted key.
fn classify(key: &str, value: Option<&[u8]>) -> Entry {
    let decode_err = |e: rec::RecordError| {
        tracing::warn!(error = %e, "skipping an undecodable KV record");
        Entry::Bad
    };
    if let Some(hex) = key.strip_prefix(rec::TOKEN_PREFIX) {
        let Some(hash) = TokenHash::from_hex(hex) else {
            tracing::warn!(
                key,
                "skipping a token record whose key is not a SHA-256 hex"
            );
            return Entry::Bad;
        };
        return match value {
            None => Entry::Token(hash, None),
            Some(v) => match rec::decode::<rec::TokenRecord>(key, v) {
                Ok(t) => Entry::Token(hash, Some(t)),
                Err(e) => decode_err(e),
            },
        };
    }
    if key == rec::ROUTES_KEY {
        return match value {
            None => Entry::Routes(None),
            Some(v) => match rec::decode::<rec::RouteTable>(key, v) {
                Ok(t) => Entry::Routes(Some(t)),
                Err(e) => decode_err(e),
            },
        };
    }
    if key == rec::REVISION_KEY {
        return match value {
            None => Entry::Revision(None),
            Some(v) => match rec::decode::<rec::RevisionRecord>(key, v) {
                Ok(r) => Entry::Revision(Some(r)),
                Err(e) => decode_err(e),
            },
        };
    }
    Entry::Other
}
