//! [`CloudflareKv`]: the [`KvBackend`] over the Workers KV REST API.
//!
//! Every HTTP attempt passes, in order: the per-key write gate (writes only), the client-wide
//! pacer (rate budget and any 429 pause), the request, [`wire::classify`]. Retries wait with
//! exponential backoff and jitter, never less than the server's `Retry-After`.

mod batch;
mod pacing;
mod wire;

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::Rng as _;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, Url};

use crate::backend::{KvBackend, KvError, KvStats};
use crate::config::CloudflareConfig;
use batch::Batch;
use pacing::{KeyGate, Pacer};
use wire::{Answer, Kind, Verdict};

/// Page size of key listing (the API maximum).
const LIST_LIMIT: &str = "1000";

/// Everything but RFC 3986 unreserved characters is escaped in a path key, so `/`, `%`, `?`,
/// `#`, space and non-ASCII never change the path's meaning. `.` stays (a key is never `.`
/// or `..`, see [`batch::validate_key`]).
const KEY_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The path segment for `key`: percent-encoded once.
pub fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, KEY_SEGMENT).to_string()
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    bulk_writes: AtomicU64,
    bulk_deletes: AtomicU64,
    list_pages: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A Workers KV namespace reached over the REST API. Cheap to share behind an `Arc`; every
/// clone of the `Arc` shares one rate budget and one per-key write gate.
pub struct CloudflareKv {
    cfg: CloudflareConfig,
    http: reqwest::Client,
    /// `{base}/accounts/{account}/storage/kv/namespaces/{namespace}`
    namespace_url: String,
    pacer: Pacer,
    gate: KeyGate,
    counters: Counters,
}

impl fmt::Debug for CloudflareKv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudflareKv")
            .field("namespace_url", &self.namespace_url)
            .field("api_token", &self.cfg.api_token)
            .finish_non_exhaustive()
    }
}

impl CloudflareKv {
    /// Checks the configuration and builds the HTTP client. Sends nothing.
    pub fn new(cfg: CloudflareConfig) -> Result<Self, KvError> {
        cfg.validate()?;
        let namespace_url = format!(
            "{}/accounts/{}/storage/kv/namespaces/{}",
            cfg.base_url.trim_end_matches('/'),
            encode_key(&cfg.account_id),
            encode_key(&cfg.namespace_id),
        );
        Url::parse(&namespace_url)
            .map_err(|e| KvError::Config(format!("base_url does not form a URL: {e}")))?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", cfg.api_token.expose()))
            .map_err(|_| {
                KvError::Config("api_token has characters not allowed in a header".into())
            })?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("keygate-kv-sync/", env!("CARGO_PKG_VERSION")))
            .timeout(cfg.timeout)
            .connect_timeout(cfg.connect_timeout)
            .build()
            .map_err(|e| KvError::Config(format!("http client: {e}")))?;
        Ok(Self {
            pacer: Pacer::new(&cfg.rate_limit),
            gate: KeyGate::new(cfg.same_key_interval),
            namespace_url,
            http,
            counters: Counters::default(),
            cfg,
        })
    }

    fn url(&self, rest: &str) -> Url {
        Url::parse(&format!("{}{rest}", self.namespace_url)).expect("checked in new()")
    }

    fn bulk_request(&self, kind: Kind, body: Bytes) -> RequestBuilder {
        let (method, path) = match kind {
            Kind::BulkWrite => (Method::PUT, "/bulk"),
            _ => (Method::POST, "/bulk/delete"),
        };
        self.http
            .request(method, self.url(path))
            .header(CONTENT_TYPE, "application/json")
            .body(body)
    }

    /// Sends attempt number `attempt` of a call after pacing and classifies the answer.
    async fn attempt(&self, kind: Kind, req: RequestBuilder, attempt: u32) -> Verdict {
        if let Err(remaining) = self.pacer.ready(self.cfg.backoff.max_retry_after).await {
            return Verdict::Fail(KvError::Unavailable {
                attempts: attempt - 1,
                reason: format!(
                    "the store asked to pause all calls for {}s more",
                    remaining.as_secs()
                ),
                retry_after: Some(remaining),
            });
        }
        bump(&self.counters.requests);
        match kind {
            Kind::BulkWrite => bump(&self.counters.bulk_writes),
            Kind::BulkDelete => bump(&self.counters.bulk_deletes),
            Kind::List => bump(&self.counters.list_pages),
            Kind::Get => {}
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                return Verdict::Retry {
                    err: KvError::Transport(describe(&e)),
                    retry_after: None,
                };
            }
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let retry_after = wire::retry_after(&headers);
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Verdict::Retry {
                    err: KvError::Transport(describe(&e)),
                    retry_after: None,
                };
            }
        };
        let cf_ray = header_text(&headers, "cf-ray");
        if status == 429 {
            bump(&self.counters.throttled);
            if let Some(d) = retry_after {
                self.pacer.pause(d);
            }
        }
        let verdict = wire::classify(kind, status, retry_after, body);
        match &verdict {
            Verdict::Done(_) => {
                tracing::debug!(op = kind.name(), status, cf_ray, "kv request done");
            }
            Verdict::Retry { err, .. } | Verdict::Fail(err) => {
                let mitigated = header_text(&headers, "cf-mitigated");
                tracing::warn!(op = kind.name(), status, cf_ray, mitigated, error = %err, "kv request failed");
            }
        }
        verdict
    }

    /// How long to wait before attempt `attempt + 1`, or the error to give up with.
    fn retry_wait(&self, attempt: u32, retry_after: Option<Duration>) -> Result<Duration, KvError> {
        let b = &self.cfg.backoff;
        let exp = b
            .initial
            .saturating_mul(1u32 << (attempt - 1).min(20))
            .min(b.max);
        let mut rng = rand::rng();
        let jittered = exp.mul_f64(rng.random_range(0.5..=1.0));
        match retry_after {
            Some(ra) if ra > b.max_retry_after => Err(KvError::Unavailable {
                attempts: attempt,
                reason: format!("the store asked to wait {}s", ra.as_secs()),
                retry_after: Some(ra),
            }),
            // At least what the server asked, plus a little spread so callers don't align.
            Some(ra) => Ok(ra.max(jittered) + b.initial.mul_f64(rng.random_range(0.0..=0.25))),
            None => Ok(jittered),
        }
    }

    /// Runs one request with retries (reads only; bulk calls use [`Self::bulk`]).
    async fn run(&self, kind: Kind, make: impl Fn() -> RequestBuilder) -> Result<Answer, KvError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            if attempt > 1 {
                bump(&self.counters.retries);
            }
            match self.attempt(kind, make(), attempt).await {
                Verdict::Done(answer) => return Ok(answer),
                Verdict::Fail(err) => return Err(err),
                Verdict::Retry { err, retry_after } => {
                    self.back_off(kind, attempt, err, retry_after).await?;
                }
            }
        }
    }

    /// Sleeps before the next attempt, or returns the error when no attempt is left.
    async fn back_off(
        &self,
        kind: Kind,
        attempt: u32,
        err: KvError,
        retry_after: Option<Duration>,
    ) -> Result<(), KvError> {
        if attempt > self.cfg.max_retries {
            return Err(match err {
                KvError::Unavailable {
                    reason,
                    retry_after,
                    ..
                } => KvError::Unavailable {
                    attempts: attempt,
                    reason,
                    retry_after,
                },
                other => other,
            });
        }
        let wait = self.retry_wait(attempt, retry_after)?;
        tracing::info!(
            op = kind.name(),
            attempt,
            wait_ms = wait.as_millis() as u64,
            "kv retry"
        );
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// Sends one bulk batch until every key is acknowledged, resending only the keys a result
    /// lists in `unsuccessful_keys`.
    async fn bulk(&self, kind: Kind, mut batch: Batch) -> Result<(), KvError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            if attempt > 1 {
                bump(&self.counters.retries);
            }
            let verdict = {
                let _writing = self.gate.acquire(batch.keys()).await;
                tracing::debug!(
                    op = kind.name(),
                    items = batch.len(),
                    bytes = batch.body_len(),
                    attempt,
                    "kv bulk send"
                );
                self.attempt(kind, self.bulk_request(kind, batch.body()), attempt)
                    .await
            };
            match verdict {
                Verdict::Done(Answer::Envelope(env)) => {
                    let result = env.bulk_result()?;
                    if result.unsuccessful_keys.is_empty() {
                        return Ok(());
                    }
                    let failed: HashSet<&str> = result
                        .unsuccessful_keys
                        .iter()
                        .map(String::as_str)
                        .collect();
                    batch.retain_keys(&failed);
                    if batch.len() == 0 {
                        return Ok(());
                    }
                    tracing::warn!(
                        op = kind.name(),
                        unsuccessful = batch.len(),
                        attempt,
                        "kv bulk partly unsuccessful"
                    );
                    if attempt > self.cfg.max_retries {
                        return Err(KvError::Incomplete {
                            op: if kind == Kind::BulkWrite {
                                "stored"
                            } else {
                                "deleted"
                            },
                            count: batch.len(),
                            attempts: attempt,
                        });
                    }
                    tokio::time::sleep(self.retry_wait(attempt, None)?).await;
                }
                Verdict::Done(_) => return Ok(()),
                Verdict::Fail(err) => return Err(err),
                Verdict::Retry { err, retry_after } => {
                    self.back_off(kind, attempt, err, retry_after).await?;
                }
            }
        }
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A transport failure without the URL (it can hold a key) and without headers.
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect failed"
    } else if e.is_body() || e.is_decode() {
        "reading the body failed"
    } else {
        "request failed"
    };
    let mut msg = what.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[async_trait::async_trait]
impl KvBackend for CloudflareKv {
    fn max_batch_keys(&self) -> Option<usize> {
        Some(self.cfg.bulk.max_items)
    }

    async fn put_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        let batches = batch::plan_writes(pairs, &self.cfg.bulk)?;
        tracing::debug!(pairs = pairs.len(), batches = batches.len(), "kv put_many");
        for b in batches {
            self.bulk(Kind::BulkWrite, b).await?;
        }
        Ok(())
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), KvError> {
        let batches = batch::plan_deletes(keys, &self.cfg.bulk)?;
        tracing::debug!(keys = keys.len(), batches = batches.len(), "kv delete_many");
        for b in batches {
            self.bulk(Kind::BulkDelete, b).await?;
        }
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        batch::validate_key(key)?;
        let url = self.url(&format!("/values/{}", encode_key(key)));
        match self.run(Kind::Get, || self.http.get(url.clone())).await? {
            Answer::Raw(b) => Ok(Some(b.to_vec())),
            Answer::Missing => Ok(None),
            Answer::Envelope(_) => Err(KvError::Transport("a value read returned no body".into())),
        }
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let url = self.url("/keys");
        let mut keys = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![("limit", LIST_LIMIT)];
            if !prefix.is_empty() {
                query.push(("prefix", prefix));
            }
            if let Some(c) = &cursor {
                query.push(("cursor", c.as_str()));
            }
            let answer = self
                .run(Kind::List, || self.http.get(url.clone()).query(&query))
                .await?;
            let Answer::Envelope(env) = answer else {
                return Err(KvError::Transport("a key list returned no envelope".into()));
            };
            let (names, next) = env.key_page()?;
            keys.extend(names);
            match next {
                Some(c) => cursor = Some(c), // an empty page with a cursor: keep going
                None => break,
            }
        }
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    fn stats(&self) -> KvStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        KvStats {
            requests: get(&c.requests),
            bulk_writes: get(&c.bulk_writes),
            bulk_deletes: get(&c.bulk_deletes),
            list_pages: get(&c.list_pages),
            retries: get(&c.retries),
            throttled: get(&c.throttled),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_once_and_fully() {
        let table = [
            ("v1/token/ab", "v1%2Ftoken%2Fab"),
            ("a b", "a%20b"),
            ("ü", "%C3%BC"),
            ("%", "%25"),
            ("%2F", "%252F"),
            ("a:b!c?d#e&f+g", "a%3Ab%21c%3Fd%23e%26f%2Bg"),
            ("x.y-z_~", "x.y-z_~"),
        ];
        for (key, want) in table {
            assert_eq!(encode_key(key), want, "{key:?}");
        }
    }

    #[test]
    fn debug_redacts_the_token() {
        let kv = CloudflareKv::new(CloudflareConfig::new("acc", "ns", "tok-sekret")).unwrap();
        let shown = format!("{kv:?}");
        assert!(!shown.contains("tok-sekret"), "{shown}");
        assert!(shown.contains("/accounts/acc/storage/kv/namespaces/ns"));
    }

    #[test]
    fn config_errors_do_not_echo_the_token() {
        let cfg = CloudflareConfig::new("acc", "ns", "bad\ntoken-sekret");
        let err = CloudflareKv::new(cfg).unwrap_err();
        assert!(!err.to_string().contains("sekret"), "{err}");
    }

    #[test]
    fn retry_waits_grow_and_honour_retry_after() {
        let mut cfg = CloudflareConfig::new("acc", "ns", "t");
        cfg.backoff.initial = Duration::from_millis(100);
        cfg.backoff.max = Duration::from_millis(1000);
        cfg.backoff.max_retry_after = Duration::from_secs(10);
        let kv = CloudflareKv::new(cfg).unwrap();
        for _ in 0..50 {
            let w1 = kv.retry_wait(1, None).unwrap();
            assert!((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&w1));
            let w3 = kv.retry_wait(3, None).unwrap();
            assert!((Duration::from_millis(200)..=Duration::from_millis(400)).contains(&w3));
            let w9 = kv.retry_wait(9, None).unwrap();
            assert!((Duration::from_millis(500)..=Duration::from_millis(1000)).contains(&w9));
            let ra = kv.retry_wait(1, Some(Duration::from_secs(2))).unwrap();
            assert!(ra >= Duration::from_secs(2) && ra <= Duration::from_millis(2025));
        }
        assert!(matches!(
            kv.retry_wait(1, Some(Duration::from_secs(11))),
            Err(KvError::Unavailable {
                retry_after: Some(_),
                ..
            })
        ));
    }
}
