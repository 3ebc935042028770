//! Handlers, one module per resource, and what they share: reading the raw path (account,
//! namespace, key decoded exactly once), body limits, key and expiration rules.
//! Order of checks in every handler: (auth is done by the front layer) account, namespace,
//! then validation.

pub(crate) mod bulk;
pub(crate) mod keys;
pub(crate) mod namespaces;
pub(crate) mod values;

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::Uri;
use axum::response::Response;
use bytes::Bytes;
use percent_encoding::percent_decode_str;

use crate::app::{App, Items};
use crate::config::Limits;
use crate::error::ApiError;

/// Query parameters, or 400 in the API's envelope.
pub(crate) type RawQuery = Result<Query<HashMap<String, String>>, QueryRejection>;

pub(crate) fn query(q: RawQuery) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::invalid(format!("Invalid query string: {e}")))
}

/// The still-encoded parts of `/client/v4/accounts/{a}/storage/kv/namespaces[/{ns}[/{tail}]]`.
struct RawTarget<'a> {
    account: &'a str,
    namespace: Option<&'a str>,
    tail: Option<&'a str>,
}

fn raw_target(path: &str) -> Option<RawTarget<'_>> {
    let rest = path.strip_prefix("/client/v4/accounts/")?;
    let (account, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("storage/kv/namespaces")?;
    if rest.is_empty() {
        return Some(RawTarget {
            account,
            namespace: None,
            tail: None,
        });
    }
    let rest = rest.strip_prefix('/')?;
    let (namespace, tail) = match rest.split_once('/') {
        Some((ns, tail)) => (ns, Some(tail)),
        None => (rest, None),
    };
    Some(RawTarget {
        account,
        namespace: Some(namespace),
        tail,
    })
}

/// Percent-decodes a path segment exactly once; `%2541` becomes `%41`, not `A`.
pub(crate) fn decode_once(raw: &str) -> Result<String, ApiError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::invalid("The path is not valid UTF-8 once percent-decoded"))
}

/// Checks the account of the path.
pub(crate) fn account(app: &App, uri: &Uri) -> Result<(), ApiError> {
    let target = raw_target(uri.path()).ok_or(ApiError::NoRoute)?;
    if app.account_matches(&decode_once(target.account)?) {
        Ok(())
    } else {
        Err(ApiError::UnknownAccount {
            path: uri.path().to_owned(),
        })
    }
}

/// Checks the account, then that the namespace exists; returns its id.
pub(crate) fn namespace(app: &App, uri: &Uri, op: &'static str) -> Result<String, ApiError> {
    account(app, uri)?;
    let target = raw_target(uri.path()).ok_or(ApiError::NoRoute)?;
    let ns = decode_once(target.namespace.ok_or(ApiError::NoRoute)?)?;
    if app.lock().namespaces.contains_key(&ns) {
        Ok(ns)
    } else {
        Err(ApiError::NamespaceNotFound { op })
    }
}

/// The key of a `…/values/{key}` or `…/metadata/{key}` path, decoded once and validated.
pub(crate) fn path_key(uri: &Uri, limits: &Limits) -> Result<String, ApiError> {
    let tail = raw_target(uri.path())
        .and_then(|t| t.tail)
        .ok_or(ApiError::NoRoute)?;
    let raw = tail
        .strip_prefix("values/")
        .or_else(|| tail.strip_prefix("metadata/"))
        .ok_or(ApiError::NoRoute)?;
    let key = decode_once(raw)?;
    validate_key(&key, limits)?;
    Ok(key)
}

/// §12: 1 to 512 bytes of UTF-8, not `.` or `..` (Miniflare's texts and statuses).
pub(crate) fn validate_key(key: &str, limits: &Limits) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::invalid("Key names must not be empty"));
    }
    if key == "." || key == ".." {
        return Err(ApiError::invalid(format!(
            "Illegal key name \"{key}\". Please use a different name."
        )));
    }
    if key.len() > limits.max_key_bytes {
        return Err(ApiError::Invalid {
            status: 414,
            message: format!(
                "UTF-8 encoded length of {} exceeds key length limit of {}.",
                key.len(),
                limits.max_key_bytes
            ),
        });
    }
    Ok(())
}

pub(crate) fn validate_value(len: usize, limits: &Limits) -> Result<(), ApiError> {
    if len > limits.max_value_bytes {
        return Err(ApiError::too_large(format!(
            "Value length of {len} exceeds limit of {}.",
            limits.max_value_bytes
        )));
    }
    Ok(())
}

pub(crate) fn validate_metadata_len(len: usize, limits: &Limits) -> Result<(), ApiError> {
    if len > limits.max_metadata_bytes {
        return Err(ApiError::too_large(format!(
            "Metadata length of {len} exceeds limit of {}.",
            limits.max_metadata_bytes
        )));
    }
    Ok(())
}

/// §6: absolute unix seconds; the TTL wins when both are given; each must reach at least
/// `min` seconds past `now`.
pub(crate) fn expiration(
    now: u64,
    expiration: Option<u64>,
    ttl: Option<u64>,
    min: u64,
) -> Result<Option<u64>, ApiError> {
    if let Some(ttl) = ttl {
        if ttl < min {
            return Err(ApiError::invalid(format!(
                "Invalid expiration_ttl of {ttl}. Expiration TTL must be at least {min}."
            )));
        }
        return Ok(Some(now.saturating_add(ttl)));
    }
    if let Some(at) = expiration {
        if at < now.saturating_add(min) {
            return Err(ApiError::invalid(format!(
                "Invalid expiration of {at}. Expiration times must be at least {min} seconds in the future."
            )));
        }
        return Ok(Some(at));
    }
    Ok(None)
}

/// An unsigned integer query parameter, if present.
pub(crate) fn query_u64(q: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    q.get(name)
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| ApiError::invalid(format!("Invalid {name} of {v}.")))
        })
        .transpose()
}

/// Reads a body of at most `limit` bytes; more is 413.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(format!("Request body is larger than {limit} bytes.")))
}

/// Tags a response with the item count for the request log.
pub(crate) fn with_items(mut resp: Response, n: usize) -> Response {
    resp.extensions_mut().insert(Items(n));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_target_splits_without_decoding() {
        let t =
            raw_target("/client/v4/accounts/acc/storage/kv/namespaces/ns/values/v1%2Ftoken%2Fab")
                .unwrap();
        assert_eq!(
            (t.account, t.namespace, t.tail),
            ("acc", Some("ns"), Some("values/v1%2Ftoken%2Fab"))
        );
        let t = raw_target("/client/v4/accounts/acc/storage/kv/namespaces").unwrap();
        assert_eq!((t.namespace, t.tail), (None, None));
        assert!(raw_target("/client/v4/accounts/acc/workers/namespaces").is_none());
    }

    #[test]
    fn decodes_exactly_once() {
        let table = [
            ("v1%2Ftoken%2Fab", "v1/token/ab"),
            ("a%20b", "a b"),
            ("%C3%BC", "ü"),
            ("%25", "%"),
            ("%2541", "%41"),
            ("plain", "plain"),
        ];
        for (raw, want) in table {
            assert_eq!(decode_once(raw).unwrap(), want);
        }
        assert!(decode_once("%FF").is_err());
    }

    #[test]
    fn expiration_rules() {
        let now = 1_000;
        type Want = Result<Option<u64>, ()>;
        let table: [(Option<u64>, Option<u64>, Want); 7] = [
            (None, None, Ok(None)),
            (None, Some(60), Ok(Some(1_060))),
            (None, Some(59), Err(())),
            (Some(1_060), None, Ok(Some(1_060))),
            (Some(1_059), None, Err(())),
            (Some(5), Some(120), Ok(Some(1_120))), // the TTL wins
            (Some(9_999), Some(30), Err(())),
        ];
        for (at, ttl, want) in table {
            assert_eq!(
                expiration(now, at, ttl, 60).map_err(|_| ()),
                want,
                "{at:?} {ttl:?}"
            );
        }
    }

    #[test]
    fn key_rules() {
        let l = Limits::CLOUDFLARE;
        let status = |k: &str| validate_key(k, &l).err().map(|e| e.status_and_code().0);
        assert_eq!(status("ok"), None);
        assert_eq!(status(""), Some(400));
        assert_eq!(status("."), Some(400));
        assert_eq!(status(".."), Some(400));
        assert_eq!(status("..."), None);
        assert_eq!(status(&"k".repeat(512)), None);
        assert_eq!(status(&"k".repeat(513)), Some(414));
    }
}
