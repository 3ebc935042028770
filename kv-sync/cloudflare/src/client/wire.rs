//! The API's wire shapes (the v4 envelope, list and bulk results) and the one place that turns
//! an HTTP answer into "done", "retry" or "fail".

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use serde::Deserialize;

use crate::backend::KvError;

/// What a request was for; decides how a 404 reads and which counter it bumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    BulkWrite,
    BulkDelete,
    List,
    Get,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::BulkWrite => "bulk_write",
            Kind::BulkDelete => "bulk_delete",
            Kind::List => "list_keys",
            Kind::Get => "get",
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    pub success: bool,
    #[serde(default)]
    pub errors: Vec<ApiMessage>,
    #[serde(default)]
    pub result: serde_json::Value,
    #[serde(default)]
    pub result_info: Option<ResultInfo>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ApiMessage {
    pub code: u32,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ResultInfo {
    #[serde(default)]
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct KeyItem {
    pub name: String,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct BulkResult {
    #[serde(default)]
    pub unsuccessful_keys: Vec<String>,
}

impl Envelope {
    fn empty_success() -> Self {
        Self {
            success: true,
            errors: Vec::new(),
            result: serde_json::Value::Null,
            result_info: None,
        }
    }

    fn first_error(&self) -> (Option<u32>, String) {
        match self.errors.first() {
            Some(e) => (Some(e.code), e.message.clone()),
            None => (None, String::new()),
        }
    }

    /// A bulk result; `null` or `{}` (older API answers) mean every key succeeded.
    pub fn bulk_result(&self) -> Result<BulkResult, KvError> {
        if self.result.is_null() {
            return Ok(BulkResult::default());
        }
        serde_json::from_value(self.result.clone())
            .map_err(|e| KvError::Transport(format!("unexpected bulk result shape: {e}")))
    }

    /// The names of a key-list page and the cursor of the next one (`None` at the end).
    pub fn key_page(self) -> Result<(Vec<String>, Option<String>), KvError> {
        let items: Vec<KeyItem> = if self.result.is_null() {
            Vec::new()
        } else {
            serde_json::from_value(self.result)
                .map_err(|e| KvError::Transport(format!("unexpected key list shape: {e}")))?
        };
        let cursor = self
            .result_info
            .and_then(|i| i.cursor)
            .filter(|c| !c.is_empty());
        Ok((items.into_iter().map(|i| i.name).collect(), cursor))
    }
}

/// A usable answer.
#[derive(Debug)]
pub(crate) enum Answer {
    /// A value GET's raw bytes.
    Raw(Bytes),
    /// A successful envelope.
    Envelope(Envelope),
    /// A value GET of a key that does not exist (404, code 10009).
    Missing,
}

/// What to do with one HTTP answer.
#[derive(Debug)]
pub(crate) enum Verdict {
    Done(Answer),
    /// Worth another attempt; `err` is returned if none is left.
    Retry {
        err: KvError,
        retry_after: Option<Duration>,
    },
    Fail(KvError),
}

/// `Retry-After` in seconds (integer or decimal), or `retry-after-ms`. HTTP dates are ignored
/// (the API sends seconds).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    text("retry-after")
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// Decides on the HTTP status and on the envelope's `success` field. A body that should be an
/// envelope but is not JSON is a transport error (retried when the status was 2xx or 5xx).
pub(crate) fn classify(
    kind: Kind,
    status: u16,
    retry_after: Option<Duration>,
    body: Bytes,
) -> Verdict {
    if kind == Kind::Get && (200..300).contains(&status) {
        return Verdict::Done(Answer::Raw(body));
    }
    if (200..300).contains(&status) && body.iter().all(u8::is_ascii_whitespace) {
        return Verdict::Done(Answer::Envelope(Envelope::empty_success()));
    }
    let envelope: Option<Envelope> = serde_json::from_slice(&body).ok();
    let not_json = || {
        KvError::Transport(format!(
            "http {status} with a body that is not the API's JSON"
        ))
    };
    let Some(env) = envelope else {
        return if (200..300).contains(&status) || status >= 500 || status == 429 || status == 408 {
            Verdict::Retry {
                err: not_json(),
                retry_after,
            }
        } else {
            Verdict::Fail(not_json())
        };
    };
    let (code, message) = env.first_error();
    match status {
        200..=299 if env.success => Verdict::Done(Answer::Envelope(env)),
        200..=299 => Verdict::Fail(KvError::Rejected {
            status,
            code,
            message,
        }),
        429 | 408 | 500..=599 => Verdict::Retry {
            err: KvError::Unavailable {
                attempts: 0,
                reason: match code {
                    Some(c) => format!("http {status}, code {c}"),
                    None => format!("http {status}"),
                },
                retry_after,
            },
            retry_after,
        },
        401 | 403 => Verdict::Fail(KvError::Auth { status, code }),
        400 if code == Some(6003) => Verdict::Fail(KvError::Auth { status, code }),
        404 => match code {
            Some(10009) if kind == Kind::Get => Verdict::Done(Answer::Missing),
            Some(10013) | Some(7000) | Some(7003) => {
                Verdict::Fail(KvError::NamespaceNotFound { status, code })
            }
            _ => Verdict::Fail(KvError::Rejected {
                status,
                code,
                message,
            }),
        },
        _ => Verdict::Fail(KvError::Rejected {
            status,
            code,
            message,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_err(code: u32) -> Bytes {
        Bytes::from(format!(
            r#"{{"success":false,"errors":[{{"code":{code},"message":"m"}}],"messages":[],"result":null}}"#
        ))
    }

    fn ok_body() -> Bytes {
        Bytes::from_static(br#"{"success":true,"errors":[],"messages":[],"result":null}"#)
    }

    #[derive(Debug, PartialEq)]
    enum Want {
        Raw,
        Env,
        Missing,
        Retry,
        Auth,
        Rejected,
        NoNamespace,
        Transport,
    }

    fn outcome(v: Verdict) -> Want {
        match v {
            Verdict::Done(Answer::Raw(_)) => Want::Raw,
            Verdict::Done(Answer::Envelope(_)) => Want::Env,
            Verdict::Done(Answer::Missing) => Want::Missing,
            Verdict::Retry { .. } => Want::Retry,
            Verdict::Fail(KvError::Auth { .. }) => Want::Auth,
            Verdict::Fail(KvError::Rejected { .. }) => Want::Rejected,
            Verdict::Fail(KvError::NamespaceNotFound { .. }) => Want::NoNamespace,
            Verdict::Fail(KvError::Transport(_)) => Want::Transport,
            Verdict::Fail(e) => panic!("unexpected {e:?}"),
        }
    }

    #[test]
    fn classification_table() {
        let html = Bytes::from_static(b"<html>challenge</html>");
        let table: Vec<(Kind, u16, Bytes, Want)> = vec![
            (Kind::Get, 200, Bytes::from_static(b"not json"), Want::Raw),
            (Kind::BulkWrite, 200, ok_body(), Want::Env),
            (Kind::BulkWrite, 204, Bytes::new(), Want::Env),
            (Kind::BulkWrite, 200, env_err(10001), Want::Rejected),
            (Kind::BulkWrite, 200, html.clone(), Want::Retry),
            (Kind::BulkWrite, 403, html.clone(), Want::Transport),
            (Kind::BulkWrite, 502, html, Want::Retry),
            (Kind::BulkWrite, 429, env_err(971), Want::Retry),
            (Kind::BulkWrite, 500, env_err(10001), Want::Retry),
            (Kind::BulkWrite, 503, env_err(10001), Want::Retry),
            (Kind::BulkWrite, 408, env_err(10001), Want::Retry),
            (Kind::List, 403, env_err(10000), Want::Auth),
            (Kind::List, 401, env_err(10000), Want::Auth),
            (Kind::List, 400, env_err(6003), Want::Auth),
            (Kind::List, 400, env_err(10001), Want::Rejected),
            (Kind::Get, 404, env_err(10009), Want::Missing),
            (Kind::Get, 404, env_err(10013), Want::NoNamespace),
            (Kind::List, 404, env_err(10009), Want::Rejected),
            (Kind::List, 404, env_err(10013), Want::NoNamespace),
            (Kind::List, 404, env_err(7003), Want::NoNamespace),
            (Kind::BulkWrite, 413, env_err(10001), Want::Rejected),
        ];
        for (kind, status, body, want) in table {
            assert_eq!(
                outcome(classify(kind, status, None, body)),
                want,
                "{kind:?} {status}"
            );
        }
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after", "0.5".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(500)));
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
    }

    #[test]
    fn key_pages_and_bulk_results() {
        let page: Envelope = serde_json::from_str(
            r#"{"success":true,"errors":[],"messages":[],"result":[{"name":"a"},{"name":"b","expiration":1}],"result_info":{"count":2,"cursor":"abc"}}"#,
        )
        .unwrap();
        assert_eq!(
            page.key_page().unwrap(),
            (vec!["a".to_owned(), "b".to_owned()], Some("abc".to_owned()))
        );
        for info in [r#"{"cursor":""}"#, r#"{"cursor":null}"#, r#"{}"#] {
            let last: Envelope = serde_json::from_str(&format!(
                r#"{{"success":true,"result":[],"result_info":{info}}}"#
            ))
            .unwrap();
            assert_eq!(last.key_page().unwrap(), (vec![], None), "{info}");
        }
        for (result, failed) in [
            ("null", 0),
            ("{}", 0),
            (r#"{"successful_key_count":1,"unsuccessful_keys":["x"]}"#, 1),
        ] {
            let env: Envelope =
                serde_json::from_str(&format!(r#"{{"success":true,"result":{result}}}"#)).unwrap();
            assert_eq!(env.bulk_result().unwrap().unsuccessful_keys.len(), failed);
        }
    }
}
