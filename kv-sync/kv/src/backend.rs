//! The store-facing contract kv-sync writes through: [`KvBackend`], its counters and its errors.
//! Object-safe: kv-sync holds an `Arc<dyn KvBackend>`.

use std::time::Duration;

/// A KV store that kv-sync writes edge records to.
#[async_trait::async_trait]
pub trait KvBackend: Send + Sync {
    /// Writes every pair (replacing values). Idempotent. Returns only when all pairs are stored.
    async fn put_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), KvError>;
    /// Deletes every key; deleting a missing key is success. Idempotent.
    async fn delete_many(&self, keys: &[String]) -> Result<(), KvError>;
    /// Writes `puts` and removes `deletes`. Backends that can do both in one transaction
    /// (the SQLite KV) override this to make the batch atomic; the default writes first.
    async fn apply_batch(
        &self,
        puts: &[(String, Vec<u8>)],
        deletes: &[String],
    ) -> Result<(), KvError> {
        if !puts.is_empty() {
            self.put_many(puts).await?;
        }
        if !deletes.is_empty() {
            self.delete_many(deletes).await?;
        }
        Ok(())
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Every key starting with `prefix`, in byte order.
    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KvError>;
    /// Counters for metrics and benchmarks.
    fn stats(&self) -> KvStats;
    /// The most keys one bulk call takes, if the store has such a limit: kv-sync caps its
    /// batches there so each batch costs one call.
    fn max_batch_keys(&self) -> Option<usize> {
        None
    }
}

/// Counters since the backend was created. Every HTTP attempt counts once in `requests` and
/// once in its kind (`bulk_writes`, `bulk_deletes`, `list_pages`; single reads only in
/// `requests`); `retries` counts attempts after the first for the same work (including
/// resending keys a bulk result reported unsuccessful); `throttled` counts 429 answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct KvStats {
    pub requests: u64,
    pub bulk_writes: u64,
    pub bulk_deletes: u64,
    pub list_pages: u64,
    pub retries: u64,
    pub throttled: u64,
}

/// Why a KV operation failed. Messages never contain credentials, keys or values.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The store kept answering "try later" (429, 5xx, 408) until the retries ran out, or asked
    /// for a wait longer than the client is allowed to sleep. Safe to retry the whole call later.
    #[error("kv store unavailable after {attempts} attempt(s): {reason}")]
    Unavailable {
        attempts: u32,
        reason: String,
        /// The last `Retry-After` the store sent, if any.
        retry_after: Option<Duration>,
    },
    /// The store refused the request as invalid; resending it unchanged will not help.
    #[error("kv store rejected the request: http {status}{}: {message}", fmt_code(*.code))]
    Rejected {
        status: u16,
        code: Option<u32>,
        message: String,
    },
    /// The credentials were refused: bad or under-privileged token, malformed header.
    #[error("kv store refused the credentials: http {status}{}", fmt_code(*.code))]
    Auth { status: u16, code: Option<u32> },
    /// The configured namespace (or account) does not exist.
    #[error("kv namespace not found: http {status}{}", fmt_code(*.code))]
    NamespaceNotFound { status: u16, code: Option<u32> },
    /// A bulk call still reported keys as unsuccessful after every retry; the other keys of the
    /// call are stored (or deleted).
    #[error("{count} key(s) not {op} after {attempts} attempt(s)")]
    Incomplete {
        op: &'static str,
        count: usize,
        attempts: u32,
    },
    /// The input breaks a KV limit (key length, value size); nothing was sent.
    #[error("invalid kv input: {0}")]
    Invalid(String),
    /// An HTTP-level failure (connect, timeout, reset) or a body that is not the API's JSON
    /// (for example a WAF challenge page).
    #[error("kv transport error: {0}")]
    Transport(String),
    /// The client configuration is unusable.
    #[error("kv client configuration: {0}")]
    Config(String),
}

fn fmt_code(code: Option<u32>) -> String {
    code.map(|c| format!(", code {c}")).unwrap_or_default()
}

impl KvError {
    /// Whether calling again later may succeed (the store or the network was the problem).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            KvError::Unavailable { .. } | KvError::Transport(_) | KvError::Incomplete { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_is_object_safe() {
        fn takes(_: Option<&dyn KvBackend>) {}
        takes(None);
    }

    #[test]
    fn error_messages() {
        let cases: Vec<(KvError, &str)> = vec![
            (
                KvError::Rejected {
                    status: 400,
                    code: Some(10001),
                    message: "bad".into(),
                },
                "kv store rejected the request: http 400, code 10001: bad",
            ),
            (
                KvError::Auth {
                    status: 403,
                    code: None,
                },
                "kv store refused the credentials: http 403",
            ),
            (
                KvError::Incomplete {
                    op: "stored",
                    count: 2,
                    attempts: 6,
                },
                "2 key(s) not stored after 6 attempt(s)",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }
}
