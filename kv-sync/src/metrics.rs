//! Follower state, shared between the loop and the `/metrics` + `/healthz` endpoint.
//! Metric names are defined here and nowhere else.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// What the follower knows about itself.
#[derive(Default)]
pub struct State {
    pub applied_revision: AtomicI64,
    pub head_revision: AtomicI64,
    /// Commit time (epoch ms) of the newest applied change.
    pub applied_commit_ms: AtomicI64,
    pub applied_changes: AtomicU64,
    pub batches: AtomicU64,
    pub snapshots: AtomicU64,
    pub errors: AtomicU64,
    pub last_error: Mutex<String>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl State {
    pub fn lag_revisions(&self) -> i64 {
        (self.head_revision.load(Ordering::Relaxed) - self.applied_revision.load(Ordering::Relaxed))
            .max(0)
    }

    /// Seconds between the newest applied change's commit and now, while behind; 0 when caught up.
    pub fn lag_seconds(&self) -> f64 {
        if self.lag_revisions() == 0 {
            return 0.0;
        }
        let at = self.applied_commit_ms.load(Ordering::Relaxed);
        if at == 0 {
            0.0
        } else {
            ((now_ms() - at).max(0) as f64) / 1000.0
        }
    }

    pub fn set_error(&self, e: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().expect("lock") = e.to_owned();
    }

    pub fn clear_error(&self) {
        self.last_error.lock().expect("lock").clear();
    }

    pub fn last_error(&self) -> String {
        self.last_error.lock().expect("lock").clone()
    }

    /// Prometheus text format.
    pub fn render(&self, kv: &keygate_kv::KvStats) -> String {
        let g =
            |n: &str, h: &str, v: String| format!("# HELP {n} {h}\n# TYPE {n} gauge\n{n} {v}\n");
        let c = |n: &str, h: &str, v: u64| format!("# HELP {n} {h}\n# TYPE {n} counter\n{n} {v}\n");
        [
            g(
                "keygate_sync_applied_revision",
                "Newest revision written to the KV.",
                self.applied_revision.load(Ordering::Relaxed).to_string(),
            ),
            g(
                "keygate_sync_head_revision",
                "Newest revision the control plane reported.",
                self.head_revision.load(Ordering::Relaxed).to_string(),
            ),
            g(
                "keygate_sync_lag_revisions",
                "Revisions not yet applied.",
                self.lag_revisions().to_string(),
            ),
            g(
                "keygate_sync_lag_seconds",
                "Age of the newest applied change while behind.",
                format!("{:.3}", self.lag_seconds()),
            ),
            c(
                "keygate_sync_applied_changes_total",
                "Changes applied.",
                self.applied_changes.load(Ordering::Relaxed),
            ),
            c(
                "keygate_sync_batches_total",
                "Batches applied.",
                self.batches.load(Ordering::Relaxed),
            ),
            c(
                "keygate_sync_snapshots_total",
                "Full reconciliations.",
                self.snapshots.load(Ordering::Relaxed),
            ),
            c(
                "keygate_sync_errors_total",
                "Errors (each followed by a retry).",
                self.errors.load(Ordering::Relaxed),
            ),
            c(
                "keygate_sync_kv_requests_total",
                "Requests made to the KV store.",
                kv.requests,
            ),
            c(
                "keygate_sync_kv_retries_total",
                "KV requests retried.",
                kv.retries,
            ),
            c(
                "keygate_sync_kv_throttled_total",
                "KV answers that said slow down (429).",
                kv.throttled,
            ),
        ]
        .concat()
    }
}
