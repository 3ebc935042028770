//! The stand-in answered over real HTTP on 127.0.0.1 with a plain HTTP client: envelopes,
//! statuses and codes, limits, paging, key encoding, expiration, namespaces, bulk routes and
//! the test controls, as the reference sheet describes the real API.

use std::time::{Duration, Instant};

use keygate_kv_standin::{Limits, RateLimit, Route, StandIn, StandInConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TOKEN: &str = "standin-test-token";
const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";
const NS: &str = "fedcba9876543210fedcba9876543210";

fn config() -> StandInConfig {
    let mut cfg = StandInConfig::new(TOKEN, ACCOUNT, NS);
    cfg.rate_limit = None;
    cfg
}

struct Api {
    kv: StandIn,
    http: reqwest::Client,
}

/// One response, read whole.
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts a v4 error envelope with this status and first error code.
    fn assert_error(&self, status: u16, code: u64) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        let v = self.json();
        assert_eq!(v["success"], false, "{v}");
        assert_eq!(v["result"], Value::Null, "{v}");
        assert_eq!(v["messages"], json!([]), "{v}");
        assert_eq!(v["errors"][0]["code"], code, "{v}");
        assert!(
            v["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        v
    }

    /// Asserts a successful v4 envelope and returns it.
    fn assert_ok(&self) -> Value {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        let v = self.json();
        assert_eq!(v["success"], true, "{v}");
        assert_eq!(v["errors"], json!([]), "{v}");
        v
    }
}

impl Api {
    async fn start(cfg: StandInConfig) -> Api {
        Api {
            kv: StandIn::start(cfg).await.expect("stand-in starts"),
            http: reqwest::Client::new(),
        }
    }

    fn ns_url(&self, ns: &str, rest: &str) -> String {
        format!(
            "{}/accounts/{ACCOUNT}/storage/kv/namespaces/{ns}{rest}",
            self.kv.url()
        )
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.expect("request reaches the stand-in");
        Answer {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.bytes().await.expect("body").to_vec(),
        }
    }

    /// A request written byte for byte on a fresh connection, so the path reaches the server
    /// exactly as given (no dot-segment normalization).
    async fn raw(&self, method: &str, path: &str, body: &[u8]) -> Answer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = tokio::net::TcpStream::connect(self.kv.addr())
            .await
            .unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.kv.addr(),
            body.len()
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.write_all(body).await.unwrap();
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw).await.unwrap();
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("head ends");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = reqwest::header::HeaderMap::new();
        for line in head.lines().skip(1) {
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(
                    reqwest::header::HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
                    v.trim().parse().unwrap(),
                );
            }
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: raw[split + 4..].to_vec(),
        }
    }

    async fn call(&self, method: Method, url: &str, body: Option<Value>) -> Answer {
        let mut req = self.http.request(method, url).bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    async fn bulk_write(&self, items: Value) -> Answer {
        self.call(Method::PUT, &self.ns_url(NS, "/bulk"), Some(items))
            .await
    }

    async fn put_value(&self, encoded_key: &str, value: &[u8], query: &str) -> Answer {
        let url = format!(
            "{}{query}",
            self.ns_url(NS, &format!("/values/{encoded_key}"))
        );
        let req = self
            .http
            .put(url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/octet-stream")
            .body(value.to_vec());
        self.send(req).await
    }

    async fn get_value(&self, encoded_key: &str) -> Answer {
        let url = self.ns_url(NS, &format!("/values/{encoded_key}"));
        self.call(Method::GET, &url, None).await
    }

    async fn list(&self, query: &str) -> Answer {
        self.call(
            Method::GET,
            &self.ns_url(NS, &format!("/keys{query}")),
            None,
        )
        .await
    }
}

#[tokio::test]
async fn auth_failures_use_the_documented_codes() {
    let api = Api::start(config()).await;
    let url = api.ns_url(NS, "/keys");

    let none = api.send(api.http.get(&url)).await;
    none.assert_error(403, 10000);

    let wrong = api
        .send(api.http.get(&url).bearer_auth("not-the-token"))
        .await;
    let v = wrong.assert_error(403, 10000);
    assert_eq!(v["errors"][0]["message"], "Authentication error");

    for header in ["Basic abc", "Bearer", "Bearer two words", TOKEN] {
        let bad = api
            .send(api.http.get(&url).header("authorization", header))
            .await;
        let v = bad.assert_error(400, 6003);
        assert_eq!(
            v["errors"][0]["error_chain"][0]["code"], 6111,
            "{header}: {v}"
        );
    }
    assert_eq!(api.kv.count(Route::ListKeys), 6);
    // Auth comes before everything: an unknown namespace or route still answers 403.
    api.send(api.http.get(api.ns_url("0".repeat(32).as_str(), "/keys")))
        .await
        .assert_error(403, 10000);
    api.send(api.http.get(format!("{}/nowhere", api.kv.url())))
        .await
        .assert_error(403, 10000);
    api.kv.shutdown().await;
}

#[tokio::test]
async fn legacy_global_key_auth() {
    let mut cfg = config();
    cfg.global_key = Some(("ops@example.com".into(), "0123abcd".into()));
    let api = Api::start(cfg).await;
    let url = api.ns_url(NS, "/keys");
    let ok = api
        .send(
            api.http
                .get(&url)
                .header("x-auth-email", "ops@example.com")
                .header("x-auth-key", "0123abcd"),
        )
        .await;
    ok.assert_ok();
    let bad = api
        .send(
            api.http
                .get(&url)
                .header("x-auth-email", "ops@example.com")
                .header("x-auth-key", "not valid"),
        )
        .await;
    let v = bad.assert_error(400, 6003);
    assert_eq!(v["errors"][0]["error_chain"][0]["code"], 6103);
    api.kv.shutdown().await;
}

#[tokio::test]
async fn unknown_routes_accounts_and_namespaces() {
    let api = Api::start(config()).await;
    let base = api.kv.url();
    // Unknown path, legacy workers path, wrong method on a known path: 404, 7003.
    for (method, url) in [
        (Method::GET, format!("{base}/nowhere")),
        (
            Method::GET,
            format!("{base}/accounts/{ACCOUNT}/workers/namespaces/{NS}/keys"),
        ),
        (Method::PATCH, api.ns_url(NS, "/values/k")),
        (Method::GET, api.ns_url(NS, "/bulk")),
    ] {
        api.call(method.clone(), &url, None)
            .await
            .assert_error(404, 7003);
    }
    assert_eq!(api.kv.count(Route::Unknown), 4);
    // Another account: 404, 7003.
    let other = format!(
        "{base}/accounts/{}/storage/kv/namespaces/{NS}/keys",
        "1".repeat(32)
    );
    api.call(Method::GET, &other, None)
        .await
        .assert_error(404, 7003);
    // Unknown namespace, on every namespace route: 404, 10013 (before validation, so even a
    // bad limit or an invalid key reports the namespace).
    let ghost = "9".repeat(32);
    let long_key = format!("/values/{}", "k".repeat(513));
    let cases = [
        (Method::GET, "/keys?limit=1"),
        (Method::GET, long_key.as_str()),
        (Method::PUT, "/values/k"),
        (Method::DELETE, "/values/k"),
        (Method::GET, "/metadata/k"),
        (Method::PUT, "/bulk"),
        (Method::POST, "/bulk/delete"),
        (Method::DELETE, "/bulk"),
        (Method::POST, "/bulk/get"),
        (Method::GET, ""),
    ];
    for (method, rest) in cases {
        let v = api
            .call(method.clone(), &api.ns_url(&ghost, rest), Some(json!([])))
            .await
            .assert_error(404, 10013);
        assert!(
            v["errors"][0]["message"]
                .as_str()
                .unwrap()
                .ends_with("'namespace not found'"),
            "{method} {rest}: {v}"
        );
    }
    api.kv.shutdown().await;
}

#[tokio::test]
async fn missing_keys_are_404_10009() {
    let api = Api::start(config()).await;
    let v = api.get_value("missing").await.assert_error(404, 10009);
    assert_eq!(v["errors"][0]["message"], "get: 'key not found'");
    let v = api
        .call(Method::GET, &api.ns_url(NS, "/metadata/missing"), None)
        .await
        .assert_error(404, 10009);
    assert_eq!(v["errors"][0]["message"], "metadata: 'key not found'");
    // Deleting a missing key is success.
    let del = api
        .call(Method::DELETE, &api.ns_url(NS, "/values/missing"), None)
        .await;
    del.assert_ok();
    api.kv.shutdown().await;
}

#[tokio::test]
async fn values_round_trip_with_raw_and_multipart_bodies() {
    let api = Api::start(config()).await;
    let bytes: Vec<u8> = (0..=255u8).collect();
    api.put_value("bin", &bytes, "").await.assert_ok();
    let got = api.get_value("bin").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.headers["content-type"], "application/octet-stream");
    assert!(got.headers.get("expiration").is_none());
    assert_eq!(got.body, bytes);
    // No metadata: result null.
    let meta = api
        .call(Method::GET, &api.ns_url(NS, "/metadata/bin"), None)
        .await
        .assert_ok();
    assert_eq!(meta["result"], Value::Null);

    // multipart/form-data with value and metadata, as wrangler sends it.
    let boundary = "----standin-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"value\"\r\n\r\nhello multipart\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{{\"ver\":1}}\r\n\
         --{boundary}--\r\n"
    );
    let req = api
        .http
        .put(api.ns_url(NS, "/values/v1%2Ftoken%2Fab12"))
        .bearer_auth(TOKEN)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body);
    api.send(req).await.assert_ok();
    assert_eq!(
        api.get_value("v1%2Ftoken%2Fab12").await.body,
        b"hello multipart"
    );
    let meta = api
        .call(
            Method::GET,
            &api.ns_url(NS, "/metadata/v1%2Ftoken%2Fab12"),
            None,
        )
        .await
        .assert_ok();
    assert_eq!(meta["result"], json!({"ver": 1}));
    let listed = api.list("").await.assert_ok();
    assert_eq!(
        listed["result"],
        json!([{"name": "bin"}, {"name": "v1/token/ab12", "metadata": {"ver": 1}}])
    );
    // A write replaces value and metadata.
    api.put_value("v1%2Ftoken%2Fab12", b"plain", "")
        .await
        .assert_ok();
    let meta = api
        .call(
            Method::GET,
            &api.ns_url(NS, "/metadata/v1%2Ftoken%2Fab12"),
            None,
        )
        .await
        .assert_ok();
    assert_eq!(meta["result"], Value::Null);
    assert_eq!(api.kv.snapshot().len(), 2);
    api.kv.shutdown().await;
}

#[tokio::test]
async fn key_value_and_metadata_limits() {
    let mut cfg = config();
    cfg.limits = Limits {
        max_value_bytes: 1000,
        ..Limits::CLOUDFLARE
    };
    let api = Api::start(cfg).await;
    let k512 = "k".repeat(512);
    let k513 = "k".repeat(513);
    api.put_value(&k512, b"v", "").await.assert_ok();
    let v = api
        .put_value(&k513, b"v", "")
        .await
        .assert_error(414, 10001);
    assert!(
        v["errors"][0]["message"].as_str().unwrap().contains("513"),
        "{v}"
    );
    // 256 × "ü" is 512 bytes of key (1,536 characters of path): the limit is on the key.
    let umlauts = "%C3%BC".repeat(256);
    api.put_value(&umlauts, b"v", "").await.assert_ok();
    api.put_value(&format!("{umlauts}x"), b"v", "")
        .await
        .assert_error(414, 10001);
    // "." and "..": URL libraries normalize such segments away, so these go over a raw socket.
    for key in ["%2E", "%2E%2E", "%2e%2E"] {
        let path = format!("/client/v4/accounts/{ACCOUNT}/storage/kv/namespaces/{NS}/values/{key}");
        api.raw("PUT", &path, b"v").await.assert_error(400, 10001);
    }
    // "..." and ".x" are fine.
    api.put_value("...", b"v", "").await.assert_ok();
    // Value size.
    api.put_value("big", &[0; 1000], "").await.assert_ok();
    let v = api
        .put_value("big", &[0; 1001], "")
        .await
        .assert_error(413, 10001);
    assert_eq!(
        v["errors"][0]["message"],
        "Value length of 1001 exceeds limit of 1000."
    );
    // Metadata size (bulk).
    let meta = json!({"pad": "x".repeat(1020)});
    api.bulk_write(json!([{"key": "m", "value": "v", "metadata": meta}]))
        .await
        .assert_error(413, 10001);
    // Bulk keys follow the same rules.
    api.bulk_write(json!([{"key": k513, "value": "v"}]))
        .await
        .assert_error(414, 10001);
    api.bulk_write(json!([{"key": "", "value": "v"}]))
        .await
        .assert_error(400, 10001);
    // A failed request stores nothing, not even its valid items.
    api.bulk_write(json!([{"key": "fine", "value": "v"}, {"key": "..", "value": "v"}]))
        .await
        .assert_error(400, 10001);
    assert!(!api.kv.snapshot().contains_key("fine"));
    api.kv.shutdown().await;
}

#[tokio::test]
async fn list_limit_must_be_10_to_1000() {
    let api = Api::start(config()).await;
    for bad in ["9", "1001", "0", "-5", "ten"] {
        api.list(&format!("?limit={bad}"))
            .await
            .assert_error(400, 10001);
    }
    for good in ["10", "1000"] {
        api.list(&format!("?limit={good}")).await.assert_ok();
    }
    api.list("?cursor=not-a-cursor!")
        .await
        .assert_error(400, 10001);
    api.kv.shutdown().await;
}

#[tokio::test]
async fn list_pages_with_cursor_until_empty_string() {
    let api = Api::start(config()).await;
    // 2,500 keys in a shuffled order through bulk writes of 1,000.
    let mut names: Vec<String> = (0..2500)
        .map(|i| format!("k/{:04}", (i * 7919) % 2500))
        .collect();
    for chunk in names.chunks(1000) {
        let items: Vec<Value> = chunk
            .iter()
            .map(|k| json!({"key": k, "value": "v"}))
            .collect();
        let v = api.bulk_write(Value::Array(items)).await.assert_ok();
        assert_eq!(v["result"]["successful_key_count"], chunk.len());
        assert_eq!(v["result"]["unsuccessful_keys"], json!([]));
    }
    api.bulk_write(json!([{"key": "other", "value": "v"}, {"key": "k", "value": "prefix itself"}]))
        .await
        .assert_ok();
    names.push("k".into());
    names.sort();

    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = Vec::new();
    loop {
        let q = if cursor.is_empty() {
            "?prefix=k&limit=1000".to_owned()
        } else {
            format!("?prefix=k&limit=1000&cursor={cursor}")
        };
        let v = api.list(&q).await.assert_ok();
        let page = v["result"].as_array().unwrap();
        assert_eq!(v["result_info"]["count"], page.len());
        pages.push(page.len());
        seen.extend(page.iter().map(|i| i["name"].as_str().unwrap().to_owned()));
        cursor = v["result_info"]["cursor"]
            .as_str()
            .expect("cursor is always present")
            .to_owned();
        if cursor.is_empty() {
            break;
        }
        assert!(pages.len() < 10, "paging does not end");
    }
    assert_eq!(pages, [1000, 1000, 501]);
    assert_eq!(seen, names, "every key once, in byte order");
    let reqs = api.kv.requests();
    let list_items: Vec<usize> = reqs
        .iter()
        .filter(|r| r.route == Route::ListKeys)
        .map(|r| r.items)
        .collect();
    assert_eq!(list_items, [1000, 1000, 501]);
    // Default limit 1000; no prefix lists everything.
    let v = api.list("").await.assert_ok();
    assert_eq!(v["result"].as_array().unwrap().len(), 1000);
    api.kv.shutdown().await;
}

#[tokio::test]
async fn keys_sort_by_bytes() {
    let api = Api::start(config()).await;
    let keys = ["b", "a", "ü", "Z", "ab", "a/b", "aa", "~", "é"];
    let items: Vec<Value> = keys.iter().map(|k| json!({"key": k, "value": k})).collect();
    api.bulk_write(Value::Array(items)).await.assert_ok();
    let v = api.list("").await.assert_ok();
    let got: Vec<&str> = v["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    let mut want = keys.to_vec();
    want.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(got, want);
    api.kv.shutdown().await;
}

#[tokio::test]
async fn bulk_limits_items_and_body() {
    let mut cfg = config();
    cfg.limits = Limits {
        max_bulk_body_bytes: 2_000_000,
        ..Limits::CLOUDFLARE
    };
    let api = Api::start(cfg).await;
    let items = |n: usize| -> Value {
        Value::Array(
            (0..n)
                .map(|i| json!({"key": format!("k{i}"), "value": "v"}))
                .collect(),
        )
    };
    let v = api.bulk_write(items(10_001)).await.assert_error(400, 10001);
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("10000"),
        "{v}"
    );
    assert!(api.kv.snapshot().is_empty());
    let v = api.bulk_write(items(10_000)).await.assert_ok();
    assert_eq!(v["result"]["successful_key_count"], 10_000);

    let keys =
        |n: usize| -> Value { Value::Array((0..n).map(|i| json!(format!("k{i}"))).collect()) };
    api.call(
        Method::POST,
        &api.ns_url(NS, "/bulk/delete"),
        Some(keys(10_001)),
    )
    .await
    .assert_error(400, 10001);
    assert_eq!(api.kv.snapshot().len(), 10_000);

    // Body over the (lowered) limit: 413.
    let big = "x".repeat(1_000_000);
    api.bulk_write(json!([{"key": "a", "value": big}, {"key": "b", "value": big}]))
        .await
        .assert_error(413, 10001);
    // A body that is not the documented array: 400.
    api.bulk_write(json!({"key": "a"}))
        .await
        .assert_error(400, 10001);
    api.bulk_write(json!([{"key": "a", "value": "%%%", "base64": true}]))
        .await
        .assert_error(400, 10001);
    api.kv.shutdown().await;
}

#[tokio::test]
async fn bulk_write_base64_then_both_bulk_deletes() {
    let api = Api::start(config()).await;
    let v = api
        .bulk_write(json!([
            {"key": "v1/token/ab12", "value": "eyJ2IjoxfQ==", "base64": true, "metadata": {"ver": 1}},
            {"key": "v1/route/x", "value": "plain text"},
            {"key": "v1/route/y", "value": "y"},
        ]))
        .await
        .assert_ok();
    assert_eq!(
        v["result"],
        json!({"successful_key_count": 3, "unsuccessful_keys": []})
    );
    assert_eq!(api.get_value("v1%2Ftoken%2Fab12").await.body, br#"{"v":1}"#);
    assert_eq!(api.get_value("v1%2Froute%2Fx").await.body, b"plain text");

    let v = api
        .call(
            Method::POST,
            &api.ns_url(NS, "/bulk/delete"),
            Some(json!(["v1/route/x", "never-existed"])),
        )
        .await
        .assert_ok();
    assert_eq!(v["result"]["successful_key_count"], 2);
    let v = api
        .call(
            Method::DELETE,
            &api.ns_url(NS, "/bulk"),
            Some(json!(["v1/route/y"])),
        )
        .await
        .assert_ok();
    assert_eq!(v["result"]["successful_key_count"], 1);
    assert_eq!(
        api.kv.snapshot().keys().collect::<Vec<_>>(),
        ["v1/token/ab12"]
    );
    assert_eq!(api.kv.count(Route::BulkDelete), 1);
    assert_eq!(api.kv.count(Route::BulkDeleteLegacy), 1);
    api.kv.shutdown().await;
}

#[tokio::test]
async fn percent_encoded_keys_round_trip() {
    let api = Api::start(config()).await;
    // (key, its encodeURIComponent form)
    let keys = [
        ("v1/token/ab", "v1%2Ftoken%2Fab"),
        ("a b", "a%20b"),
        ("ü", "%C3%BC"),
        ("%", "%25"),
        ("%41", "%2541"),
        ("a?b#c&d=e+f", "a%3Fb%23c%26d%3De%2Bf"),
        ("colon:bang!", "colon%3Abang!"),
    ];
    for (i, (key, encoded)) in keys.iter().enumerate() {
        api.put_value(encoded, format!("value {i}").as_bytes(), "")
            .await
            .assert_ok();
        assert_eq!(
            api.get_value(encoded).await.body,
            format!("value {i}").as_bytes(),
            "{key}"
        );
        assert_eq!(api.kv.snapshot()[*key], format!("value {i}").as_bytes());
    }
    // Decoded exactly once: "%2541" is the key "%41", not "A".
    assert!(!api.kv.snapshot().contains_key("A"));
    let v = api.list("").await.assert_ok();
    let mut listed: Vec<String> = v["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    let mut want: Vec<String> = keys.iter().map(|(k, _)| k.to_string()).collect();
    want.sort();
    assert_eq!(listed, want);
    // A prefix with reserved characters goes through the query string.
    let v = api.list("?prefix=v1%2Ftoken%2F").await.assert_ok();
    assert_eq!(v["result"], json!([{"name": "v1/token/ab"}]));
    // Bulk-written keys read back through the encoded path too.
    api.bulk_write(json!([{"key": "x/ü %", "value": "bulk"}]))
        .await
        .assert_ok();
    assert_eq!(api.get_value("x%2F%C3%BC%20%25").await.body, b"bulk");
    // Not valid UTF-8 once decoded: 400.
    api.get_value("%FF").await.assert_error(400, 10001);
    api.kv.shutdown().await;
}

#[tokio::test]
async fn expiration_follows_the_test_clock() {
    let api = Api::start(config()).await;
    let now = 1_700_000_000;
    api.kv.set_now(now);
    assert_eq!(api.kv.now(), now);
    api.put_value("ttl", b"v", "?expiration_ttl=60")
        .await
        .assert_ok();
    api.put_value("abs", b"v", &format!("?expiration={}", now + 120))
        .await
        .assert_ok();
    // Both given: the TTL wins.
    api.put_value(
        "both",
        b"v",
        &format!("?expiration={}&expiration_ttl=300", now + 60),
    )
    .await
    .assert_ok();
    api.put_value("forever", b"v", "").await.assert_ok();
    // Too soon.
    let v = api
        .put_value("x", b"v", "?expiration_ttl=30")
        .await
        .assert_error(400, 10001);
    assert_eq!(
        v["errors"][0]["message"],
        "Invalid expiration_ttl of 30. Expiration TTL must be at least 60."
    );
    api.put_value("x", b"v", &format!("?expiration={}", now + 59))
        .await
        .assert_error(400, 10001);
    api.put_value("x", b"v", "?expiration=soon")
        .await
        .assert_error(400, 10001);
    api.bulk_write(json!([{"key": "x", "value": "v", "expiration_ttl": 59}]))
        .await
        .assert_error(400, 10001);

    let ttl = api.get_value("ttl").await;
    assert_eq!(ttl.headers["expiration"], (now + 60).to_string().as_str());
    let v = api.list("").await.assert_ok();
    assert_eq!(
        v["result"],
        json!([
            {"name": "abs", "expiration": now + 120},
            {"name": "both", "expiration": now + 300},
            {"name": "forever"},
            {"name": "ttl", "expiration": now + 60},
        ])
    );

    api.kv.set_now(now + 60); // "ttl" expires exactly now
    api.get_value("ttl").await.assert_error(404, 10009);
    api.kv.set_now(now + 120);
    api.get_value("abs").await.assert_error(404, 10009);
    let v = api.list("").await.assert_ok();
    assert_eq!(
        v["result"],
        json!([{"name": "both", "expiration": now + 300}, {"name": "forever"}])
    );
    let v = api
        .call(
            Method::POST,
            &api.ns_url(NS, "/bulk/get"),
            Some(json!({"keys": ["abs", "both"]})),
        )
        .await
        .assert_ok();
    assert_eq!(v["result"]["values"], json!({"abs": null, "both": "v"}));
    assert_eq!(api.kv.snapshot().len(), 2);
    api.kv.shutdown().await;
}

#[tokio::test]
async fn bulk_get_rules() {
    let api = Api::start(config()).await;
    api.bulk_write(json!([
        {"key": "t", "value": "text"},
        {"key": "j", "value": "{\"a\":1}", "metadata": {"m": true}},
        {"key": "bin", "value": "/w==", "base64": true},
    ]))
    .await
    .assert_ok();
    let url = api.ns_url(NS, "/bulk/get");
    let v = api
        .call(
            Method::POST,
            &url,
            Some(json!({"keys": ["t", "j", "none"]})),
        )
        .await
        .assert_ok();
    assert_eq!(
        v["result"]["values"],
        json!({"t": "text", "j": "{\"a\":1}", "none": null})
    );
    let v = api
        .call(
            Method::POST,
            &url,
            Some(json!({"keys": ["j"], "type": "json", "withMetadata": true})),
        )
        .await
        .assert_ok();
    assert_eq!(
        v["result"]["values"],
        json!({"j": {"value": {"a": 1}, "metadata": {"m": true}}})
    );
    let keys: Vec<String> = (0..101).map(|i| format!("k{i}")).collect();
    let v = api
        .call(Method::POST, &url, Some(json!({"keys": keys})))
        .await
        .assert_error(400, 10001);
    assert_eq!(
        v["errors"][0]["message"],
        "You can request a maximum of 100 keys"
    );
    let v = api
        .call(
            Method::POST,
            &url,
            Some(json!({"keys": ["t"], "type": "arrayBuffer"})),
        )
        .await
        .assert_error(400, 10001);
    assert_eq!(
        v["errors"][0]["message"],
        "\"arrayBuffer\" is not a valid type. Use \"json\" or \"text\""
    );
    api.call(Method::POST, &url, Some(json!({"keys": ["bin"]})))
        .await
        .assert_error(400, 10001);
    api.kv.shutdown().await;
}

#[tokio::test]
async fn namespaces_lifecycle() {
    let api = Api::start(config()).await;
    let root = format!("{}/accounts/{ACCOUNT}/storage/kv/namespaces", api.kv.url());
    let created = api
        .call(Method::POST, &root, Some(json!({"title": "second"})))
        .await
        .assert_ok();
    let id = created["result"]["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(created["result"]["title"], "second");
    assert_eq!(created["result"]["supports_url_encoding"], true);

    let dup = api
        .call(Method::POST, &root, Some(json!({"title": "second"})))
        .await
        .assert_error(400, 10014);
    assert!(
        dup["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );
    api.call(Method::POST, &root, Some(json!({"title": ""})))
        .await
        .assert_error(400, 10001);

    let list = api
        .call(
            Method::GET,
            &format!("{root}?order=title&direction=desc&per_page=1"),
            None,
        )
        .await
        .assert_ok();
    assert_eq!(list["result"].as_array().unwrap().len(), 1);
    assert_eq!(list["result"][0]["title"], "second");
    assert_eq!(
        list["result_info"],
        json!({"count": 1, "page": 1, "per_page": 1, "total_count": 2})
    );
    let page2 = api
        .call(
            Method::GET,
            &format!("{root}?order=title&direction=desc&per_page=1&page=2"),
            None,
        )
        .await
        .assert_ok();
    assert_eq!(page2["result"][0]["id"], NS);
    api.call(Method::GET, &format!("{root}?per_page=1001"), None)
        .await
        .assert_error(400, 10001);

    let renamed = api
        .call(
            Method::PUT,
            &format!("{root}/{id}"),
            Some(json!({"title": "renamed"})),
        )
        .await
        .assert_ok();
    assert_eq!(renamed["result"]["title"], "renamed");
    api.call(
        Method::PUT,
        &format!("{root}/{id}"),
        Some(json!({"title": "keygate-edge"})),
    )
    .await
    .assert_error(400, 10014);
    let got = api
        .call(Method::GET, &format!("{root}/{id}"), None)
        .await
        .assert_ok();
    assert_eq!(got["result"]["title"], "renamed");

    // Namespaces are separate key spaces.
    api.call(
        Method::PUT,
        &api.ns_url(&id, "/bulk"),
        Some(json!([{"key": "only-here", "value": "v"}])),
    )
    .await
    .assert_ok();
    assert_eq!(api.kv.snapshot_of(&id).unwrap().len(), 1);
    assert!(api.kv.snapshot().is_empty());

    api.call(Method::DELETE, &format!("{root}/{id}"), None)
        .await
        .assert_ok();
    api.call(Method::GET, &format!("{root}/{id}"), None)
        .await
        .assert_error(404, 10013);
    assert!(api.kv.snapshot_of(&id).is_none());
    api.kv.shutdown().await;
}

#[tokio::test]
async fn api_rate_limit_answers_429_971_with_retry_after() {
    let mut cfg = config();
    cfg.rate_limit = Some(RateLimit {
        requests: 5,
        window: Duration::from_secs(60),
    });
    let api = Api::start(cfg).await;
    for _ in 0..5 {
        api.list("").await.assert_ok();
    }
    let limited = api.list("").await;
    let v = limited.assert_error(429, 971);
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("throttling")
    );
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(api.kv.rate_limited(), 1);
    // Unauthenticated requests are not charged to the token.
    api.send(api.http.get(api.ns_url(NS, "/keys")))
        .await
        .assert_error(403, 10000);
    // Lifting the limit lets requests through again.
    api.kv.set_rate_limit(None);
    api.list("").await.assert_ok();
    api.kv.shutdown().await;
}

#[tokio::test]
async fn injected_failures_and_unsuccessful_keys() {
    let api = Api::start(config()).await;
    api.kv.fail_next(1, 429, Some(7));
    api.kv.fail_next(1, 503, None);
    api.kv.fail_next_non_json(1, 403);
    let first = api.list("").await;
    first.assert_error(429, 971);
    assert_eq!(first.headers["retry-after"], "7");
    api.list("").await.assert_error(503, 10001);
    let challenge = api.list("").await;
    assert_eq!(challenge.status, StatusCode::FORBIDDEN);
    assert_eq!(challenge.headers["cf-mitigated"], "challenge");
    assert!(serde_json::from_slice::<Value>(&challenge.body).is_err());
    assert!(challenge.headers.contains_key("cf-ray"));
    api.list("").await.assert_ok();

    api.kv.fail_keys(["b", "d"]);
    let v = api
        .bulk_write(json!([
            {"key": "a", "value": "1"}, {"key": "b", "value": "2"},
            {"key": "c", "value": "3"}, {"key": "d", "value": "4"},
        ]))
        .await
        .assert_ok();
    assert_eq!(
        v["result"],
        json!({"successful_key_count": 2, "unsuccessful_keys": ["b", "d"]})
    );
    assert_eq!(api.kv.snapshot().keys().collect::<Vec<_>>(), ["a", "c"]);
    // Only once: resending stores them.
    let v = api
        .bulk_write(json!([{"key": "b", "value": "2"}, {"key": "d", "value": "4"}]))
        .await
        .assert_ok();
    assert_eq!(v["result"]["unsuccessful_keys"], json!([]));
    assert_eq!(api.kv.snapshot().len(), 4);
    // Deletes too.
    api.kv.fail_keys(["a"]);
    let v = api
        .call(
            Method::POST,
            &api.ns_url(NS, "/bulk/delete"),
            Some(json!(["a", "c"])),
        )
        .await
        .assert_ok();
    assert_eq!(v["result"]["unsuccessful_keys"], json!(["a"]));
    assert_eq!(
        api.kv.snapshot().keys().collect::<Vec<_>>(),
        ["a", "b", "d"]
    );

    // Empty pages that still carry a cursor.
    api.kv.empty_list_pages(2);
    let mut cursor = String::new();
    let mut pages = 0;
    let mut names = Vec::new();
    loop {
        let q = if cursor.is_empty() {
            "?limit=10".to_owned()
        } else {
            format!("?limit=10&cursor={cursor}")
        };
        let v = api.list(&q).await.assert_ok();
        pages += 1;
        names.extend(
            v["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["name"].as_str().unwrap().to_owned()),
        );
        cursor = v["result_info"]["cursor"].as_str().unwrap().to_owned();
        if cursor.is_empty() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["a", "b", "d"]);
    api.kv.shutdown().await;
}

#[tokio::test]
async fn request_log_counters_and_write_times() {
    let api = Api::start(config()).await;
    api.put_value("k", b"1", "").await.assert_ok();
    api.bulk_write(json!([{"key": "k", "value": "2"}, {"key": "j", "value": "2"}]))
        .await
        .assert_ok();
    api.call(Method::DELETE, &api.ns_url(NS, "/values/k"), None)
        .await
        .assert_ok();
    api.get_value("j").await;

    let log = api.kv.requests();
    let summary: Vec<(&str, Route, u16, usize)> = log
        .iter()
        .map(|r| (r.method.as_str(), r.route, r.status, r.items))
        .collect();
    assert_eq!(
        summary,
        [
            ("PUT", Route::PutValue, 200, 1),
            ("PUT", Route::BulkWrite, 200, 2),
            ("DELETE", Route::DeleteValue, 200, 1),
            ("GET", Route::GetValue, 200, 1),
        ]
    );
    assert!(log[0].path.ends_with("/values/k"));
    assert!(log.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(api.kv.counters().values().sum::<u64>(), 4);
    assert_eq!(api.kv.write_times("k").len(), 3);
    assert_eq!(api.kv.write_times("j").len(), 1);
    let (key, gap) = api.kv.min_write_gap().unwrap();
    assert_eq!(key, "k");
    assert!(gap < Duration::from_secs(1), "written back to back");
    api.kv.clear_log();
    assert!(api.kv.requests().is_empty());
    assert!(api.kv.min_write_gap().is_none());
    api.kv.shutdown().await;
}

#[tokio::test]
async fn visibility_delay_hides_fresh_writes() {
    let delay = Duration::from_secs(2);
    let mut cfg = config();
    cfg.visibility_delay = delay;
    let api = Api::start(cfg).await;
    api.put_value("k", b"v1", "").await.assert_ok();
    let written = Instant::now();
    // The store holds it at once; readers do not see it yet.
    assert_eq!(api.kv.snapshot()["k"], b"v1");
    api.get_value("k").await.assert_error(404, 10009);
    assert!(
        api.list("").await.assert_ok()["result"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // It shows after the delay: poll with a deadline.
    let deadline = written + Duration::from_secs(20);
    loop {
        let got = api.get_value("k").await;
        if got.status == StatusCode::OK {
            assert_eq!(got.body, b"v1");
            break;
        }
        got.assert_error(404, 10009);
        assert!(Instant::now() < deadline, "never became visible");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(written.elapsed() >= delay - Duration::from_millis(100));
    api.kv.set_visibility_delay(Duration::ZERO);
    api.put_value("k", b"v2", "").await.assert_ok();
    assert_eq!(api.get_value("k").await.body, b"v2");
    api.kv.shutdown().await;
}
