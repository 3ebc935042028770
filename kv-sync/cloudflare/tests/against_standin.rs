//! `CloudflareKv` against the KV REST stand-in over real HTTP on 127.0.0.1: batching by count
//! and size, paging, key encoding, retries (429 with Retry-After, 5xx, unsuccessful keys),
//! pacing under the API rate limit, same-key write spacing, and no token in any output.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keygate_kv_cloudflare::{
    Backoff, BulkLimits, CloudflareConfig, CloudflareKv, KvBackend, KvError, RateLimit,
};
use keygate_kv_standin::{Limits, Route, StandIn, StandInConfig};

const TOKEN: &str = "cf-test-token-Zq9xW4";
const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";
const NS: &str = "fedcba9876543210fedcba9876543210";

async fn standin(adjust: impl FnOnce(&mut StandInConfig)) -> StandIn {
    let mut cfg = StandInConfig::new(TOKEN, ACCOUNT, NS);
    cfg.rate_limit = None;
    adjust(&mut cfg);
    StandIn::start(cfg).await.expect("stand-in starts")
}

/// The client pointed at the stand-in, with short backoffs and a generous rate so tests
/// that are not about pacing run quickly.
fn config(s: &StandIn) -> CloudflareConfig {
    CloudflareConfig {
        base_url: s.url(),
        max_retries: 5,
        backoff: Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(200),
            max_retry_after: Duration::from_secs(30),
        },
        rate_limit: RateLimit::per(10_000, Duration::from_secs(1)),
        ..CloudflareConfig::new(ACCOUNT, NS, TOKEN)
    }
}

fn client(cfg: CloudflareConfig) -> CloudflareKv {
    CloudflareKv::new(cfg).expect("client builds")
}

fn pairs(n: usize, tag: &str) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| (format!("k/{i:06}"), format!("{tag}-{i}").into_bytes()))
        .collect()
}

fn bulk_items(s: &StandIn, route: Route) -> Vec<usize> {
    s.requests()
        .iter()
        .filter(|r| r.route == route)
        .map(|r| r.items)
        .collect()
}

#[tokio::test]
async fn round_trip_25k_pairs_in_ceil_n_over_10k_bulk_calls() {
    let s = standin(|_| {}).await;
    let kv = client(config(&s));
    let data = pairs(25_000, "v");
    kv.put_many(&data).await.unwrap();

    assert_eq!(bulk_items(&s, Route::BulkWrite), [10_000, 10_000, 5_000]);
    let stats = kv.stats();
    assert_eq!(stats.bulk_writes, 3); // ceil(25,000 / 10,000)
    assert_eq!(stats.retries, 0);
    let want: BTreeMap<String, Vec<u8>> = data.iter().cloned().collect();
    assert_eq!(s.snapshot(), want);

    let keys = kv.list_keys("").await.unwrap();
    assert_eq!(keys.len(), 25_000);
    assert!(keys.iter().eq(want.keys()), "every key once, in byte order");
    assert_eq!(kv.stats().list_pages, 25); // pages of 1,000
    assert_eq!(bulk_items(&s, Route::ListKeys), vec![1000; 25]);
    let some = kv.list_keys("k/0123").await.unwrap();
    assert_eq!(some.len(), 100);
    assert_eq!(some[0], "k/012300");
    assert!(kv.list_keys("nothing-here/").await.unwrap().is_empty());

    assert_eq!(kv.get("k/024999").await.unwrap(), Some(b"v-24999".to_vec()));
    assert_eq!(kv.get("k/000000").await.unwrap(), Some(b"v-0".to_vec()));
    assert_eq!(kv.get("k/999999").await.unwrap(), None);

    // Delete 12,345 keys: two bulk deletes (POST …/bulk/delete).
    let gone: Vec<String> = data[..12_345].iter().map(|(k, _)| k.clone()).collect();
    kv.delete_many(&gone).await.unwrap();
    assert_eq!(bulk_items(&s, Route::BulkDelete), [10_000, 2_345]);
    assert_eq!(kv.stats().bulk_deletes, 2);
    assert_eq!(s.count(Route::BulkDeleteLegacy), 0);
    let left = kv.list_keys("").await.unwrap();
    assert_eq!(left.len(), 25_000 - 12_345);
    assert_eq!(left[0], "k/012345");
    assert_eq!(kv.get("k/000001").await.unwrap(), None);
    // Deleting missing keys again is success.
    kv.delete_many(&gone[..10]).await.unwrap();

    // Empty calls send nothing.
    let before = kv.stats().requests;
    kv.put_many(&[]).await.unwrap();
    kv.delete_many(&[]).await.unwrap();
    assert_eq!(kv.stats().requests, before);
    assert_eq!(s.rate_limited(), 0);
    s.shutdown().await;
}

#[tokio::test]
async fn bodies_over_the_size_limit_are_split() {
    // Both sides at 200 kB: two values of 120 kB (160 kB in base64) cannot share a request.
    let limit = 200_000;
    let s = standin(|c| {
        c.limits = Limits {
            max_bulk_body_bytes: limit,
            ..Limits::CLOUDFLARE
        }
    })
    .await;
    let mut cfg = config(&s);
    cfg.bulk.max_body_bytes = limit;
    let kv = client(cfg);
    let data = vec![
        ("big/a".to_owned(), vec![b'a'; 120_000]),
        ("big/b".to_owned(), vec![b'b'; 120_000]),
        ("small/1".to_owned(), vec![b'1'; 10]),
        ("small/2".to_owned(), vec![b'2'; 10]),
    ];
    kv.put_many(&data).await.unwrap();
    assert_eq!(bulk_items(&s, Route::BulkWrite), [1, 3]);
    assert!(s.requests().iter().all(|r| r.status == 200));
    let want: BTreeMap<_, _> = data.into_iter().collect();
    assert_eq!(s.snapshot(), want);

    // One value that cannot fit any request: refused before sending.
    let before = kv.stats().requests;
    let err = kv
        .put_many(&[("huge".to_owned(), vec![0; 160_000])])
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::Invalid(_)), "{err:?}");
    assert_eq!(kv.stats().requests, before);
    s.shutdown().await;
}

/// The real limits: three 24 MiB values are 100.7 MB of base64, over the 100 MB limit, so
/// they go as two requests (the stand-in enforces the same 100 MB).
#[tokio::test]
async fn default_limits_split_an_upload_over_100_mb() {
    let s = standin(|_| {}).await;
    let kv = client(config(&s));
    assert_eq!(config(&s).bulk, BulkLimits::CLOUDFLARE);
    let data: Vec<(String, Vec<u8>)> = (0..3u8)
        .map(|i| (format!("blob/{i}"), vec![i; 24 * 1024 * 1024]))
        .collect();
    kv.put_many(&data).await.unwrap();
    assert_eq!(bulk_items(&s, Route::BulkWrite), [2, 1]);
    let snap = s.snapshot();
    assert_eq!(snap.len(), 3);
    for (k, v) in &data {
        assert!(snap[k] == *v, "{k} differs");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn throttled_calls_wait_for_retry_after_then_succeed() {
    let s = standin(|_| {}).await;
    let kv = client(config(&s));
    s.fail_next(2, 429, Some(1));
    let data = pairs(3, "t");
    kv.put_many(&data).await.unwrap();

    let stats = kv.stats();
    assert_eq!(stats.throttled, 2);
    assert_eq!(stats.retries, 2);
    assert_eq!(stats.bulk_writes, 3);
    assert_eq!(s.snapshot(), data.iter().cloned().collect());
    let log = s.requests();
    let statuses: Vec<u16> = log.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 429, 200]);
    for w in log.windows(2) {
        let gap = w[1].at - w[0].at;
        assert!(
            gap >= Duration::from_secs(1),
            "retried {gap:?} after a 429 asking for 1 s"
        );
    }
    s.shutdown().await;
}

#[tokio::test]
async fn retry_after_longer_than_allowed_fails_fast() {
    let s = standin(|_| {}).await;
    let kv = client(config(&s));
    s.fail_next(1, 429, Some(3600));
    let err = kv.list_keys("").await.unwrap_err();
    match &err {
        KvError::Unavailable { retry_after, .. } => {
            assert_eq!(*retry_after, Some(Duration::from_secs(3600)))
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_transient());
    assert_eq!(s.requests().len(), 1);
    // The pause applies to the whole client: the next call fails at once without sending.
    match kv.get("k").await.unwrap_err() {
        KvError::Unavailable {
            attempts,
            retry_after: Some(left),
            ..
        } => {
            assert_eq!(attempts, 0);
            assert!(left > Duration::from_secs(3500), "{left:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.requests().len(), 1);
    s.shutdown().await;
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let s = standin(|_| {}).await;
    let kv = client(config(&s));
    let data = pairs(5, "e");
    kv.put_many(&data).await.unwrap();
    s.fail_next(2, 500, None);
    s.fail_next(2, 503, None);
    let keys = kv.list_keys("k/").await.unwrap();
    assert_eq!(keys.len(), 5);
    s.fail_next(1, 502, None);
    assert_eq!(kv.get("k/000004").await.unwrap(), Some(b"e-4".to_vec()));
    s.fail_next(3, 503, None);
    kv.delete_many(&["k/000000".to_owned()]).await.unwrap();
    assert_eq!(s.snapshot().len(), 4);
    let stats = kv.stats();
    assert_eq!(stats.retries, 8);
    assert_eq!(stats.throttled, 0);

    // More failures than retries: Unavailable, with the attempts made.
    let mut cfg = config(&s);
    cfg.max_retries = 2;
    let short = client(cfg);
    s.fail_next(3, 503, None);
    match short.get("k/000001").await.unwrap_err() {
        KvError::Unavailable { attempts, .. } => assert_eq!(attempts, 3),
        other => panic!("{other:?}"),
    }
    s.shutdown().await;
}

#[tokio::test]
async fn only_unsuccessful_keys_are_resent() {
    let s = standin(|_| {}).await;
    let kv = client(config(&s));
    let data = pairs(10, "u");
    s.fail_keys(["k/000001", "k/000007"]);
    kv.put_many(&data).await.unwrap();
    assert_eq!(bulk_items(&s, Route::BulkWrite), [10, 2]);
    assert_eq!(s.snapshot(), data.iter().cloned().collect());
    assert_eq!(kv.stats().retries, 1);

    s.clear_log();
    s.fail_keys(["k/000003"]);
    let keys: Vec<String> = data.iter().map(|(k, _)| k.clone()).collect();
    kv.delete_many(&keys[..5]).await.unwrap();
    assert_eq!(bulk_items(&s, Route::BulkDelete), [5, 1]);
    assert_eq!(s.snapshot().len(), 5);

    s.shutdown().await;
}

#[tokio::test]
async fn keys_failing_every_attempt_end_in_incomplete() {
    let s = standin(|_| {}).await;
    let mut cfg = config(&s);
    cfg.max_retries = 2;
    cfg.same_key_interval = Duration::from_millis(50);
    let kv = client(cfg);
    s.fail_keys_times(["bad"], 3);
    let result = kv
        .put_many(&[
            ("bad".to_owned(), b"1".to_vec()),
            ("good".to_owned(), b"2".to_vec()),
        ])
        .await;
    match result.unwrap_err() {
        KvError::Incomplete {
            op,
            count,
            attempts,
        } => {
            assert_eq!((op, count, attempts), ("stored", 1, 3));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.snapshot().keys().collect::<Vec<_>>(), ["good"]);
    assert_eq!(bulk_items(&s, Route::BulkWrite), [2, 1, 1]);
    s.shutdown().await;
}

#[tokio::test]
async fn pacing_keeps_under_the_api_rate_limit() {
    let budget = RateLimit::per(10, Duration::from_secs(2));
    let s = standin(|c| {
        c.rate_limit = Some(keygate_kv_standin::RateLimit {
            requests: budget.requests,
            window: budget.window,
        })
    })
    .await;
    let mut cfg = config(&s);
    cfg.rate_limit = budget;
    let kv = Arc::new(client(cfg));
    // 24 requests from 3 concurrent callers share the one budget.
    let mut tasks = Vec::new();
    for t in 0..3 {
        let kv = kv.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..8 {
                assert_eq!(kv.get(&format!("missing/{t}/{i}")).await.unwrap(), None);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.rate_limited(), 0, "the stand-in never had to refuse");
    assert_eq!(kv.stats().throttled, 0);
    let mut arrivals: Vec<_> = s.requests().iter().map(|r| r.at).collect();
    arrivals.sort();
    assert_eq!(arrivals.len(), 24);
    for (i, start) in arrivals.iter().enumerate() {
        let in_window = arrivals[i..]
            .iter()
            .take_while(|t| **t - *start < budget.window)
            .count();
        assert!(
            in_window <= budget.requests as usize,
            "{in_window} in one window"
        );
    }
    s.shutdown().await;
}

#[tokio::test]
async fn same_key_writes_are_at_least_a_second_apart() {
    let s = standin(|_| {}).await;
    let kv = Arc::new(client(config(&s))); // default same_key_interval: 1 s
    let one = |v: &str| vec![("hot".to_owned(), v.as_bytes().to_vec())];
    kv.put_many(&one("1")).await.unwrap();
    kv.put_many(&[
        ("hot".to_owned(), b"2".to_vec()),
        ("cold".to_owned(), b"c".to_vec()),
    ])
    .await
    .unwrap();
    kv.delete_many(&["hot".to_owned()]).await.unwrap();
    // Two callers at once.
    let (a, b) = {
        let (k1, k2) = (kv.clone(), kv.clone());
        tokio::join!(
            async move { k1.put_many(&[("hot".to_owned(), b"3".to_vec())]).await },
            async move { k2.put_many(&[("hot".to_owned(), b"4".to_vec())]).await },
        )
    };
    a.unwrap();
    b.unwrap();
    // A resent unsuccessful key is a write too.
    s.fail_keys(["hot"]);
    kv.put_many(&one("5")).await.unwrap();

    let times = s.write_times("hot");
    assert_eq!(times.len(), 7, "5 puts, 1 delete, 1 resent key");
    let (key, gap) = s.min_write_gap().unwrap();
    assert!(
        gap >= Duration::from_secs(1),
        "{key} written twice within {gap:?}"
    );
    assert_eq!(s.snapshot()["hot"], b"5");
    // Other keys are not held back by "hot".
    assert_eq!(s.write_times("cold").len(), 1);
    s.shutdown().await;
}

#[tokio::test]
async fn empty_pages_with_a_cursor_are_followed() {
    let s = standin(|_| {}).await;
    let kv = client(config(&s));
    kv.put_many(&pairs(1_500, "p")).await.unwrap();
    s.empty_list_pages(3);
    let keys = kv.list_keys("k/").await.unwrap();
    assert_eq!(keys.len(), 1_500);
    assert_eq!(bulk_items(&s, Route::ListKeys), [0, 0, 0, 1000, 500]);
    s.shutdown().await;
}

#[tokio::test]
async fn keys_are_percent_encoded_once() {
    let s = standin(|_| {}).await;
    let kv = client(config(&s));
    let keys = [
        "v1/token/ab",
        "a b",
        "ü",
        "%",
        "%41",
        "a?b#c&d=e+f",
        "colon:bang!",
        "...",
    ];
    let data: Vec<(String, Vec<u8>)> = keys
        .iter()
        .map(|k| (k.to_string(), format!("value of {k}").into_bytes()))
        .collect();
    kv.put_many(&data).await.unwrap();
    for (k, v) in &data {
        assert_eq!(kv.get(k).await.unwrap().as_ref(), Some(v), "{k}");
    }
    let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    want.sort();
    assert_eq!(kv.list_keys("").await.unwrap(), want);
    assert_eq!(kv.list_keys("v1/token/").await.unwrap(), ["v1/token/ab"]);
    assert_eq!(kv.list_keys("%").await.unwrap(), ["%", "%41"]);
    assert!(
        s.requests()
            .iter()
            .any(|r| r.path.ends_with("/values/v1%2Ftoken%2Fab"))
    );
    assert!(
        s.requests()
            .iter()
            .any(|r| r.path.ends_with("/values/%2541"))
    );
    // Invalid keys never leave the client.
    let before = kv.stats().requests;
    for bad in ["", ".", ".."] {
        assert!(
            matches!(kv.get(bad).await, Err(KvError::Invalid(_))),
            "{bad:?}"
        );
    }
    let long = "k".repeat(513);
    assert!(matches!(
        kv.put_many(&[(long.clone(), vec![])]).await,
        Err(KvError::Invalid(_))
    ));
    assert!(matches!(
        kv.delete_many(&[long]).await,
        Err(KvError::Invalid(_))
    ));
    assert_eq!(kv.stats().requests, before);
    s.shutdown().await;
}

#[tokio::test]
async fn auth_and_namespace_errors_are_not_retried() {
    let s = standin(|_| {}).await;
    let mut cfg = config(&s);
    cfg.api_token = "some-other-token".into();
    let wrong = client(cfg);
    match wrong.list_keys("").await.unwrap_err() {
        KvError::Auth { status, code } => assert_eq!((status, code), (403, Some(10000))),
        other => panic!("{other:?}"),
    }
    let mut cfg = config(&s);
    cfg.namespace_id = "9".repeat(32);
    let ghost = client(cfg);
    for err in [
        ghost.list_keys("").await.unwrap_err(),
        ghost.get("k").await.unwrap_err(),
        ghost.put_many(&pairs(1, "x")).await.unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                KvError::NamespaceNotFound {
                    status: 404,
                    code: Some(10013)
                }
            ),
            "{err:?}"
        );
        assert!(!err.is_transient());
    }
    assert_eq!(wrong.stats().retries + ghost.stats().retries, 0);
    assert_eq!(s.requests().len(), 4);
    s.shutdown().await;
}

#[tokio::test]
async fn non_json_answers_are_transport_errors() {
    let s = standin(|_| {}).await;
    let kv = client(config(&s));
    // A challenge page on a 403: not the API's answer, not retried.
    s.fail_next_non_json(1, 403);
    assert!(matches!(kv.list_keys("").await, Err(KvError::Transport(_))));
    assert_eq!(kv.stats().retries, 0);
    // On a 200 or a 502 it may be a passing proxy problem: retried.
    s.fail_next_non_json(1, 200);
    s.fail_next_non_json(1, 502);
    kv.put_many(&pairs(2, "n")).await.unwrap();
    assert_eq!(kv.stats().retries, 2);
    assert_eq!(s.snapshot().len(), 2);
    s.shutdown().await;
}

/// A `MakeWriter` collecting every log line.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn the_token_never_appears_in_debug_errors_or_logs() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = standin(|_| {}).await;
    let cfg = config(&s);
    let mut shown = vec![
        format!("{cfg:?}"),
        format!("{:?}", cfg.api_token),
        cfg.api_token.to_string(),
    ];
    let kv = client(cfg.clone());
    shown.push(format!("{kv:?}"));

    // Errors of every kind: auth (the stand-in expects another token), server errors past the
    // retries, non-JSON, transport (nothing listens), rejected.
    let mut errors = Vec::new();
    let mut other = cfg.clone();
    other.api_token = format!("{TOKEN}-but-wrong").into();
    errors.push(client(other).list_keys("").await.unwrap_err());
    let mut short = cfg.clone();
    short.max_retries = 1;
    let short = client(short);
    s.fail_next(2, 503, None);
    errors.push(short.get("k").await.unwrap_err());
    s.fail_next_non_json(1, 403);
    errors.push(kv.get("k").await.unwrap_err());
    s.fail_next(1, 429, Some(3600));
    errors.push(kv.get("k").await.unwrap_err());
    errors.push(kv.get("k").await.unwrap_err()); // paused
    client(config(&s)).put_many(&pairs(3, "ok")).await.unwrap();
    let addr = s.addr();
    s.shutdown().await;
    let mut gone = cfg.clone();
    gone.base_url = format!("http://{addr}/client/v4");
    gone.max_retries = 1;
    errors.push(client(gone).get("k").await.unwrap_err());
    let mut bad = cfg;
    bad.api_token = format!("{TOKEN}\n").into();
    errors.push(CloudflareKv::new(bad).unwrap_err());

    assert!(matches!(errors[0], KvError::Auth { .. }));
    assert!(matches!(errors[1], KvError::Unavailable { .. }));
    assert!(matches!(errors[2], KvError::Transport(_)));
    assert!(matches!(errors[3], KvError::Unavailable { .. }));
    assert!(matches!(errors[4], KvError::Unavailable { .. }));
    assert!(
        matches!(errors[5], KvError::Transport(_)),
        "{:?}",
        errors[5]
    );
    assert!(matches!(errors[6], KvError::Config(_)));
    for e in &errors {
        shown.push(e.to_string());
        shown.push(format!("{e:?}"));
    }
    let log_text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        log_text.contains("kv request failed"),
        "the failures were logged"
    );
    assert!(log_text.contains("cf_ray"), "with the cf-ray");
    shown.push(log_text);
    for text in &shown {
        assert!(!text.contains(TOKEN), "token leaked in: {text}");
        assert!(!text.contains("Zq9xW4"), "token leaked in: {text}");
    }
}
