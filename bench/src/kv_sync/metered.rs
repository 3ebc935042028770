//! [`Metered`]: a pass-through [`KvBackend`] that tallies what the follower asks of the real
//! backend under it, split into data writes, checkpoint writes and reads, with the backend's
//! own counters ([`KvStats`]) attributed to each by difference (the follower makes one call
//! at a time). Instrumentation only: every call goes to the wrapped backend unchanged (a
//! batch stays one call, so the SQLite KV still writes it in one transaction).

use keygate_kv::{KvBackend, KvError, KvStats};
use keygate_kv_record as rec;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What one kind of call added up to.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Part {
    /// Calls the follower made.
    pub calls: u64,
    /// Pairs written and keys deleted in those calls.
    pub puts: u64,
    pub deletes: u64,
    /// The fewest bulk requests those calls could take at `items_per_request` each:
    /// the sum over calls of `ceil(puts / n) + ceil(deletes / n)`.
    pub min_bulk_requests: u64,
    /// The backend's counters, summed over these calls.
    pub stats: KvStats,
    /// Time spent inside these calls.
    pub busy_secs: f64,
}

/// Everything [`Metered`] saw since it was made or last [`Metered::take`]n.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    /// `apply_batch`, `delete_many` and `put_many` of anything but the checkpoint alone.
    pub data: Part,
    /// `put_many` of the checkpoint key alone (the follower writes it after every batch).
    pub checkpoint: Part,
    /// `get` and `list_keys`.
    pub reads: Part,
}

/// Counters `after - before`.
pub fn stats_delta(after: &KvStats, before: &KvStats) -> KvStats {
    KvStats {
        requests: after.requests - before.requests,
        bulk_writes: after.bulk_writes - before.bulk_writes,
        bulk_deletes: after.bulk_deletes - before.bulk_deletes,
        list_pages: after.list_pages - before.list_pages,
        retries: after.retries - before.retries,
        throttled: after.throttled - before.throttled,
    }
}

fn add_stats(into: &mut KvStats, d: &KvStats) {
    into.requests += d.requests;
    into.bulk_writes += d.bulk_writes;
    into.bulk_deletes += d.bulk_deletes;
    into.list_pages += d.list_pages;
    into.retries += d.retries;
    into.throttled += d.throttled;
}

#[derive(Clone, Copy)]
enum Kind {
    Data,
    Checkpoint,
    Read,
}

/// The wrapper.
pub struct Metered {
    inner: Arc<dyn KvBackend>,
    items_per_request: u64,
    tally: Mutex<Tally>,
}

impl Metered {
    /// Wraps `inner`; `items_per_request` is its bulk call size (10,000 for Workers KV; for
    /// the SQLite KV, which has no bulk requests, pass `u64::MAX` to count one per call).
    pub fn new(inner: Arc<dyn KvBackend>, items_per_request: u64) -> Self {
        Self {
            inner,
            items_per_request: items_per_request.max(1),
            tally: Mutex::new(Tally::default()),
        }
    }

    /// The tally so far, resetting it.
    pub fn take(&self) -> Tally {
        std::mem::take(&mut *self.tally.lock().expect("tally lock"))
    }

    async fn metered<T>(
        &self,
        kind: Kind,
        puts: usize,
        deletes: usize,
        call: impl std::future::Future<Output = Result<T, KvError>>,
    ) -> Result<T, KvError> {
        let before = self.inner.stats();
        let t0 = Instant::now();
        let out = call.await;
        let busy = t0.elapsed();
        let d = stats_delta(&self.inner.stats(), &before);
        let n = self.items_per_request;
        let mut t = self.tally.lock().expect("tally lock");
        let part = match kind {
            Kind::Data => &mut t.data,
            Kind::Checkpoint => &mut t.checkpoint,
            Kind::Read => &mut t.reads,
        };
        part.calls += 1;
        part.puts += puts as u64;
        part.deletes += deletes as u64;
        part.min_bulk_requests += (puts as u64).div_ceil(n) + (deletes as u64).div_ceil(n);
        add_stats(&mut part.stats, &d);
        part.busy_secs += busy.as_secs_f64();
        out
    }
}

fn is_checkpoint(pairs: &[(String, Vec<u8>)]) -> bool {
    pairs.len() == 1 && pairs[0].0 == rec::REVISION_KEY
}

#[async_trait::async_trait]
impl KvBackend for Metered {
    async fn put_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        let kind = if is_checkpoint(pairs) {
            Kind::Checkpoint
        } else {
            Kind::Data
        };
        self.metered(kind, pairs.len(), 0, self.inner.put_many(pairs))
            .await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), KvError> {
        self.metered(Kind::Data, 0, keys.len(), self.inner.delete_many(keys))
            .await
    }

    async fn apply_batch(
        &self,
        puts: &[(String, Vec<u8>)],
        deletes: &[String],
    ) -> Result<(), KvError> {
        self.metered(
            Kind::Data,
            puts.len(),
            deletes.len(),
            self.inner.apply_batch(puts, deletes),
        )
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.metered(Kind::Read, 0, 0, self.inner.get(key)).await
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        self.metered(Kind::Read, 0, 0, self.inner.list_keys(prefix))
            .await
    }

    fn stats(&self) -> KvStats {
        self.inner.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_kv::SqliteKv;

    #[tokio::test]
    async fn splits_checkpoint_from_data_and_passes_through() {
        let dir = tempfile::tempdir().unwrap();
        let kv: Arc<dyn KvBackend> =
            Arc::new(SqliteKv::open(&dir.path().join("kv.db")).await.unwrap());
        let m = Metered::new(kv.clone(), 2);
        let pairs: Vec<(String, Vec<u8>)> =
            (0..5).map(|i| (format!("v1/token/{i}"), vec![1])).collect();
        m.apply_batch(&pairs, &["v1/token/x".into()]).await.unwrap();
        m.put_many(&[(rec::REVISION_KEY.into(), b"{}".to_vec())])
            .await
            .unwrap();
        assert_eq!(m.list_keys("v1/token/").await.unwrap().len(), 5);
        let t = m.take();
        assert_eq!((t.data.calls, t.data.puts, t.data.deletes), (1, 5, 1));
        assert_eq!(t.data.min_bulk_requests, 3 + 1);
        assert_eq!((t.checkpoint.calls, t.checkpoint.puts), (1, 1));
        assert_eq!(t.reads.calls, 1);
        assert_eq!(m.take().data.calls, 0, "take resets");
        assert!(kv.get(rec::REVISION_KEY).await.unwrap().is_some());
    }
}
