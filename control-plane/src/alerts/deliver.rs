//! Webhook delivery: the payload, its signature, which addresses may be called, one HTTP
//! try, and the retry schedule.
//!
//! The contract (ARCHITECTURE.md, "Alert webhooks"): `POST` of a JSON body with
//! `Content-Type: application/json`, `Keygate-Delivery: <delivery id>` and
//! `Keygate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, where
//! the key is the rule's whole `whsec_...` secret as UTF-8 bytes. 2xx is success; anything
//! else (or no answer within 10 s) is retried after 30 s, 1 min, 2 min, ... (at most 1 h
//! apart) until 24 h after the alert fired. Redirects are not followed.

use super::model::{Alert, AlertDelivery, DeliveryStatus};
use crate::context::RequestContext;
use crate::ids::DeliveryId;
use crate::secrets::{MasterKey, SecretString};
use crate::store::{DynStore, StoreResult};
use crate::time::{Millis, now_ms, rfc3339};
use hmac::{Hmac, Mac};
use keygate_contracts::FieldError;
use serde::Serialize;
use sha2::Sha256;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

pub const SIGNATURE_HEADER: &str = "Keygate-Signature";
pub const DELIVERY_HEADER: &str = "Keygate-Delivery";
/// How long one try may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Tries stop this long after the alert fired.
pub const RETRY_WINDOW_MS: Millis = 24 * 3_600_000;
const FIRST_RETRY_MS: Millis = 30_000;
const MAX_RETRY_MS: Millis = 3_600_000;
/// Longest error text kept per try.
const MAX_ERROR_LEN: usize = 300;

/// The pause after `tries` failed tries: 30 s, 1 min, 2 min, ... at most 1 h.
pub fn retry_delay_ms(tries: u32) -> Millis {
    let doublings = tries.saturating_sub(1).min(20);
    (FIRST_RETRY_MS << doublings).min(MAX_RETRY_MS)
}

/// When the next try of `alert` is due after its `tries`-th failed at `now`; `None` when it
/// should not be tried again (a test, or past the 24 h window).
pub fn next_attempt(alert: &Alert, tries: u32, now: Millis) -> Option<Millis> {
    if alert.test {
        return None;
    }
    let next = now + retry_delay_ms(tries);
    (next <= alert.fired_at + RETRY_WINDOW_MS).then_some(next)
}

/// Hex HMAC-SHA256 of `"<t>.<body>"` under `secret`.
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The `Keygate-Signature` header value.
pub fn signature_header(secret: &[u8], t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", sign(secret, t, body))
}

#[derive(Serialize)]
struct Payload<'a> {
    id: &'a str,
    rule_id: &'a str,
    team_id: &'a str,
    kind: &'a str,
    subject: &'a str,
    message: &'a str,
    fired_at: String,
    details: &'a serde_json::Value,
    test: bool,
}

/// The JSON body sent for `alert` (the same bytes for each of its tries).
pub fn payload(alert: &Alert) -> Vec<u8> {
    serde_json::to_vec(&Payload {
        id: alert.id.as_str(),
        rule_id: alert.rule_id.as_str(),
        team_id: alert.team_id.as_str(),
        kind: &alert.kind,
        subject: &alert.subject,
        message: &alert.message,
        fired_at: rfc3339(alert.fired_at),
        details: &alert.details,
        test: alert.test,
    })
    .expect("payloads serialise")
}

/// Private addresses that may be called anyway: `KEYGATE_ALERT_WEBHOOK_ALLOW`, host names
/// (exact, case-insensitive) or networks (`10.0.0.0/8`, `127.0.0.1`, `::1`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allow {
    hosts: Vec<String>,
    nets: Vec<(IpAddr, u8)>,
}

impl Allow {
    /// Parses the entries (empty ones are skipped). The error names the bad entry.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut allow = Self::default();
        for e in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let (addr, prefix) = match e.split_once('/') {
                Some((a, p)) => (a, Some(p)),
                None => (e, None),
            };
            match addr.parse::<IpAddr>() {
                Ok(ip) => {
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    let prefix = match prefix {
                        None => max,
                        Some(p) => p
                            .parse::<u8>()
                            .ok()
                            .filter(|p| *p <= max)
                            .ok_or_else(|| format!("\"{e}\": prefix length must be 0-{max}"))?,
                    };
                    allow.nets.push((ip, prefix));
                }
                Err(_) if prefix.is_none() && is_host_name(addr) => {
                    allow.hosts.push(addr.to_ascii_lowercase());
                }
                Err(_) => {
                    return Err(format!(
                        "\"{e}\" is neither a host name, an IP address nor a CIDR network"
                    ));
                }
            }
        }
        Ok(allow)
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.nets.is_empty()
    }

    fn names_host(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    fn covers(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets
            .iter()
            .any(|(net, prefix)| match (canonical(*net), ip) {
                (IpAddr::V4(n), IpAddr::V4(a)) => same_prefix(&n.octets(), &a.octets(), *prefix),
                (IpAddr::V6(n), IpAddr::V6(a)) => same_prefix(&n.octets(), &a.octets(), *prefix),
                _ => false,
            })
    }
}

fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn same_prefix(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    if a[..full] != b[..full] {
        return false;
    }
    let rest = prefix % 8;
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[full] & mask == b[full] & mask
    }
}

/// IPv4-mapped (`::ffff:a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`) addresses as the IPv4
/// address they reach.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let o = v6.octets();
                return IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// Why an address may not be called without the allow-list, if it may not.
pub fn restricted(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_unspecified() || o[0] == 0 {
                Some("unspecified")
            } else if v4.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if v4.is_multicast() || v4.is_broadcast() {
                Some("multicast")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if (first & 0xfe00) == 0xfc00 {
                Some("private")
            } else if (first & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if v6.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

fn refusal(host: &str, ip: IpAddr, why: &str) -> String {
    format!(
        "{host} is a {why} address ({ip}); webhooks may call it only when \
         KEYGATE_ALERT_WEBHOOK_ALLOW names it"
    )
}

/// The check at rule creation and update: a URL whose host is a literal restricted address
/// (or `localhost`) is refused unless allowed. Names are checked again, resolved, at each try.
pub fn check_literal(field: &str, url: &url::Url, allow: &Allow) -> Result<(), FieldError> {
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if (d == "localhost" || d.ends_with(".localhost")) && !allow.names_host(&d) {
                return Err(FieldError::new(
                    field,
                    refusal(&d, IpAddr::V6(Ipv6Addr::LOCALHOST), "loopback"),
                ));
            }
            return Ok(());
        }
        None => return Err(FieldError::new(field, "must have a host")),
    };
    match restricted(ip) {
        Some(why) if !allow.covers(ip) => {
            Err(FieldError::new(field, refusal(&ip.to_string(), ip, why)))
        }
        _ => Ok(()),
    }
}

/// The addresses a try may connect to: every address the host resolves to must be public,
/// or allowed (by its network, or by the host's name).
pub async fn resolve(url: &url::Url, allow: &Allow) -> Result<Vec<SocketAddr>, String> {
    let port = url
        .port_or_known_default()
        .ok_or_else(|| "the URL has no port".to_owned())?;
    let (host, addrs): (String, Vec<SocketAddr>) = match url.host() {
        Some(url::Host::Ipv4(v4)) => (v4.to_string(), vec![SocketAddr::new(v4.into(), port)]),
        Some(url::Host::Ipv6(v6)) => (v6.to_string(), vec![SocketAddr::new(v6.into(), port)]),
        Some(url::Host::Domain(d)) => {
            let found = tokio::time::timeout(TIMEOUT, tokio::net::lookup_host((d, port)))
                .await
                .map_err(|_| format!("resolving {d} timed out"))?
                .map_err(|e| format!("cannot resolve {d}: {e}"))?;
            (d.to_owned(), found.collect())
        }
        None => return Err("the URL has no host".into()),
    };
    if addrs.is_empty() {
        return Err(format!("{host} has no address"));
    }
    if allow.names_host(&host) {
        return Ok(addrs);
    }
    for a in &addrs {
        if let Some(why) = restricted(a.ip())
            && !allow.covers(a.ip())
        {
            return Err(refusal(&host, a.ip(), why));
        }
    }
    Ok(addrs)
}

/// What one try came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// 0: no HTTP answer.
    pub http_status: u16,
    /// Empty on success.
    pub error: String,
    pub duration_ms: u32,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.error.is_empty() && (200..300).contains(&self.http_status)
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// An HTTP client error without the URL (it may carry a token in its path or query) and
/// with its causes, which say what went wrong ("connection refused").
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", TIMEOUT.as_secs());
    }
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// Sends `body` to `url` once, signed with `secret`: checks the resolved addresses first
/// and connects only to those.
pub async fn post(
    url: &url::Url,
    allow: &Allow,
    secret: &SecretString,
    delivery: &DeliveryId,
    body: Vec<u8>,
) -> Outcome {
    let started = Instant::now();
    let elapsed = |s: Instant| u32::try_from(s.elapsed().as_millis()).unwrap_or(u32::MAX);
    let failed = |error: String, status: u16| Outcome {
        http_status: status,
        error: truncate(error),
        duration_ms: elapsed(started),
    };
    let addrs = match resolve(url, allow).await {
        Ok(a) => a,
        Err(e) => return failed(e, 0),
    };
    let mut client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .no_proxy()
        .user_agent(concat!("keygate-alerts/", env!("CARGO_PKG_VERSION")));
    if let Some(url::Host::Domain(d)) = url.host() {
        // Connect to the addresses just checked, not to whatever a second lookup returns.
        client = client.resolve_to_addrs(d, &addrs);
    }
    let client = match client.build() {
        Ok(c) => c,
        Err(e) => return failed(describe(e), 0),
    };
    let t = now_ms() / 1000;
    let signature = signature_header(secret.expose().as_bytes(), t, &body);
    let sent = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature)
        .header(DELIVERY_HEADER, delivery.as_str())
        .body(body)
        .send()
        .await;
    match sent {
        Ok(resp) => {
            let status = resp.status();
            if status.is_success() {
                Outcome {
                    http_status: status.as_u16(),
                    error: String::new(),
                    duration_ms: elapsed(started),
                }
            } else {
                failed(format!("the receiver answered {status}"), status.as_u16())
            }
        }
        Err(e) => failed(describe(e), 0),
    }
}

/// The AAD a rule's signing secret is sealed with.
pub fn secret_aad(rule: &crate::ids::AlertRuleId) -> String {
    format!("{rule}/webhook_secret")
}

/// Makes one try of `alert` now and records it (delivery row, the alert's next due time and
/// the audit row, with `ctx`'s actor). `now` is the evaluator's clock for the schedule.
pub async fn attempt(
    store: &DynStore,
    key: &MasterKey,
    allow: &Allow,
    alert: &Alert,
    now: Millis,
    ctx: &RequestContext,
) -> StoreResult<AlertDelivery> {
    let rule = store.get_alert_rule(&alert.rule_id).await?;
    let id = DeliveryId::generate();
    let sealed = store.alert_rule_secret(&alert.rule_id).await?;
    let outcome = match (
        key.open(&secret_aad(&rule.id), &sealed),
        url::Url::parse(&rule.webhook_url),
    ) {
        (Ok(secret), Ok(url)) => post(&url, allow, &secret, &id, payload(alert)).await,
        (Err(_), _) => Outcome {
            http_status: 0,
            error: "the signing secret cannot be opened with the master key; rotate it".into(),
            duration_ms: 0,
        },
        (_, Err(_)) => Outcome {
            http_status: 0,
            error: "the webhook URL is not valid".into(),
            duration_ms: 0,
        },
    };
    let tries = alert.attempts + 1;
    let next = if outcome.succeeded() {
        None
    } else {
        next_attempt(alert, tries, now)
    };
    let status = match (outcome.succeeded(), next) {
        (true, _) => DeliveryStatus::Succeeded,
        (false, Some(_)) => DeliveryStatus::Retrying,
        (false, None) => DeliveryStatus::Failed,
    };
    let delivery = AlertDelivery {
        id,
        alert_id: alert.id.clone(),
        rule_id: alert.rule_id.clone(),
        team_id: alert.team_id.clone(),
        kind: alert.kind.clone(),
        subject: alert.subject.clone(),
        message: alert.message.clone(),
        test: alert.test,
        attempt: tries,
        status,
        http_status: outcome.http_status,
        error: outcome.error,
        duration_ms: outcome.duration_ms,
        attempted_at: now,
        next_attempt_at: next,
    };
    store.record_delivery(ctx, &delivery).await?;
    tracing::info!(
        alert_id = %delivery.alert_id,
        rule_id = %delivery.rule_id,
        delivery_id = %delivery.id,
        attempt = delivery.attempt,
        status = delivery.status.as_str(),
        http_status = delivery.http_status,
        "alert delivery"
    );
    Ok(delivery)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AlertId, AlertRuleId, TeamId};

    #[test]
    fn signature_matches_an_independent_vector() {
        // Computed with Python's hmac module, not with this code.
        let secret = b"whsec_3t9QeXgM2vLk8PzR1sYbN4cWd7HjA0uFi5oTnE6rKx";
        let body = br#"{"id":"alt_1","test":true}"#;
        assert_eq!(
            sign(secret, 1_767_225_600, body),
            "6dfb80dc732ea31c8316da2b102f61f32b0f974156bb697e6bd9d9e1f5adf5be"
        );
        assert_eq!(
            signature_header(secret, 1_767_225_600, body),
            "t=1767225600,v1=6dfb80dc732ea31c8316da2b102f61f32b0f974156bb697e6bd9d9e1f5adf5be"
        );
        assert_ne!(
            sign(secret, 1_767_225_601, body),
            sign(secret, 1_767_225_600, body)
        );
    }

    fn alert(test: bool) -> Alert {
        Alert {
            id: AlertId("alt_1".into()),
            rule_id: AlertRuleId("alr_1".into()),
            team_id: TeamId("a".into()),
            kind: "token_expiring".into(),
            subject: "tok_1".into(),
            message: "m".into(),
            details: serde_json::json!({"days_left": 3}),
            fired_at: 1_000_000,
            test,
            attempts: 0,
            next_attempt_at: Some(1_000_000),
        }
    }

    #[test]
    fn retries_back_off_to_an_hour_for_a_day() {
        let delays: Vec<Millis> = (1..=9).map(retry_delay_ms).collect();
        assert_eq!(
            delays,
            vec![
                30_000, 60_000, 120_000, 240_000, 480_000, 960_000, 1_920_000, 3_600_000, 3_600_000
            ]
        );
        assert_eq!(retry_delay_ms(u32::MAX), 3_600_000);
        let a = alert(false);
        assert_eq!(next_attempt(&a, 1, a.fired_at), Some(a.fired_at + 30_000));
        // Walk the schedule: every retry within 24 h of firing, then none.
        let (mut now, mut tries) = (a.fired_at, 1);
        while let Some(next) = next_attempt(&a, tries, now) {
            assert!(next <= a.fired_at + RETRY_WINDOW_MS);
            now = next;
            tries += 1;
        }
        assert!(now + retry_delay_ms(tries) > a.fired_at + RETRY_WINDOW_MS);
        assert!((28..=35).contains(&tries), "{tries} tries in 24 h");
        assert_eq!(
            next_attempt(&alert(true), 1, 0),
            None,
            "tests are not retried"
        );
    }

    #[test]
    fn payload_has_the_documented_fields() {
        let v: serde_json::Value = serde_json::from_slice(&payload(&alert(true))).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = vec![
            "id", "rule_id", "team_id", "kind", "subject", "message", "fired_at", "details", "test",
        ];
        want.sort();
        let mut keys = keys;
        keys.sort();
        assert_eq!(keys, want);
        assert_eq!(v["fired_at"], "1970-01-01T00:16:40.000Z");
        assert_eq!(v["test"], true);
        assert_eq!(v["details"]["days_left"], 3);
    }

    #[test]
    fn restricted_addresses() {
        for (ip, why) in [
            ("127.0.0.1", Some("loopback")),
            ("127.8.9.10", Some("loopback")),
            ("::1", Some("loopback")),
            ("10.1.2.3", Some("private")),
            ("172.16.0.1", Some("private")),
            ("172.31.255.255", Some("private")),
            ("192.168.1.1", Some("private")),
            ("100.64.0.1", Some("private")),
            ("fd00::1", Some("private")),
            ("169.254.169.254", Some("link-local")),
            ("fe80::1", Some("link-local")),
            ("0.0.0.0", Some("unspecified")),
            ("0.1.2.3", Some("unspecified")),
            ("::", Some("unspecified")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::ffff:169.254.169.254", Some("link-local")),
            ("64:ff9b::a00:1", Some("private")),
            ("224.0.0.1", Some("multicast")),
            ("8.8.8.8", None),
            ("172.32.0.1", None),
            ("100.128.0.1", None),
            ("2606:4700::1111", None),
        ] {
            assert_eq!(restricted(ip.parse().unwrap()), why, "{ip}");
        }
    }

    #[test]
    fn allow_list_parses_and_covers() {
        let a = Allow::parse(&[
            "127.0.0.1".into(),
            " 10.0.0.0/8 ".into(),
            "hooks.internal".into(),
            "fd00::/8".into(),
            String::new(),
        ])
        .unwrap();
        assert!(a.covers("127.0.0.1".parse().unwrap()));
        assert!(a.covers("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!a.covers("127.0.0.2".parse().unwrap()));
        assert!(a.covers("10.200.3.4".parse().unwrap()));
        assert!(!a.covers("11.0.0.1".parse().unwrap()));
        assert!(a.covers("fd12::1".parse().unwrap()));
        assert!(!a.covers("fe80::1".parse().unwrap()));
        assert!(a.names_host("HOOKS.internal"));
        for bad in ["10.0.0.0/33", "::1/129", "a b", "host/8", "1.2.3.4/x"] {
            assert!(Allow::parse(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(Allow::parse(&[]).unwrap().is_empty());
    }

    #[test]
    fn literal_private_urls_are_refused_unless_allowed() {
        let none = Allow::default();
        let url = |s: &str| url::Url::parse(s).unwrap();
        for u in [
            "http://127.0.0.1:8080/hook",
            "http://[::1]/hook",
            "https://10.0.0.5/x",
            "http://169.254.169.254/latest/meta-data",
            "http://0.0.0.0/",
            "http://localhost:9000/",
            "http://api.localhost/",
            "http://[::ffff:7f00:1]/",
        ] {
            let e = check_literal("webhook_url", &url(u), &none).unwrap_err();
            assert_eq!(e.field, "webhook_url");
            assert!(e.rule.contains("KEYGATE_ALERT_WEBHOOK_ALLOW"), "{e}");
        }
        assert!(check_literal("webhook_url", &url("https://hooks.example.com/x"), &none).is_ok());
        assert!(check_literal("webhook_url", &url("https://8.8.8.8/x"), &none).is_ok());
        let allow = Allow::parse(&["127.0.0.1".into(), "localhost".into()]).unwrap();
        assert!(check_literal("webhook_url", &url("http://127.0.0.1:1/x"), &allow).is_ok());
        assert!(check_literal("webhook_url", &url("http://localhost:1/x"), &allow).is_ok());
        assert!(check_literal("webhook_url", &url("http://127.0.0.2:1/x"), &allow).is_err());
    }

    #[tokio::test]
    async fn resolution_checks_every_address() {
        let none = Allow::default();
        let url = |s: &str| url::Url::parse(s).unwrap();
        let e = resolve(&url("http://localhost:1/x"), &none)
            .await
            .unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        let e = resolve(&url("http://127.0.0.1:1/x"), &none)
            .await
            .unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        let by_name = Allow::parse(&["localhost".into()]).unwrap();
        assert!(
            resolve(&url("http://localhost:1/x"), &by_name)
                .await
                .is_ok()
        );
        let by_net = Allow::parse(&["127.0.0.0/8".into(), "::1".into()]).unwrap();
        let addrs = resolve(&url("http://localhost:7/x"), &by_net)
            .await
            .unwrap();
        assert!(addrs.iter().all(|a| a.port() == 7 && a.ip().is_loopback()));
    }
}
