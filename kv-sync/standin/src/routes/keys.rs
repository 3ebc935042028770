//! `GET …/namespaces/{ns}/keys?prefix=&limit=&cursor=`: byte-ordered pages, an opaque cursor,
//! `cursor: ""` on the last page.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{RawQuery, namespace, query, with_items};
use crate::app::App;
use crate::error::{ApiError, ok_with_info};

/// Opaque to clients: base64url of `<generation>:<last key of the page>`.
fn encode_cursor(generation: u64, after: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{generation}:{after}"))
}

fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    let bad = || ApiError::invalid("Invalid cursor.");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (_, after) = text.split_once(':').ok_or_else(bad)?;
    Ok(after.to_owned())
}

pub(crate) async fn list(
    State(app): State<Arc<App>>,
    uri: Uri,
    q: RawQuery,
) -> Result<Response, ApiError> {
    let ns_id = namespace(&app, &uri, "list keys")?;
    let q = query(q)?;
    let limits = app.cfg.limits;
    let limit = match q.get("limit") {
        None => limits.max_list_limit,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|l| (limits.min_list_limit..=limits.max_list_limit).contains(l))
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "Invalid key_limit of {v}. Please specify an integer between {} and {}.",
                    limits.min_list_limit, limits.max_list_limit
                ))
            })?,
    };
    let prefix = q.get("prefix").cloned().unwrap_or_default();
    let after = match q.get("cursor").filter(|c| !c.is_empty()) {
        Some(c) => Some(decode_cursor(c)?),
        None => None,
    };

    let mut inner = app.lock();
    inner.cursor_generation += 1;
    let generation = inner.cursor_generation;
    if inner.empty_list_pages > 0 {
        // What KV does while it skips tombstones: nothing yet, but keep going.
        inner.empty_list_pages -= 1;
        let cursor = encode_cursor(generation, after.as_deref().unwrap_or(""));
        let resp = ok_with_info(json!([]), json!({"count": 0, "cursor": cursor}));
        return Ok(with_items(resp, 0));
    }
    let now_unix = inner.now_unix();
    let ns = inner
        .namespaces
        .get(&ns_id)
        .ok_or(ApiError::NamespaceNotFound { op: "list keys" })?;
    let (page, more) = ns.list(&prefix, after.as_deref(), limit, Instant::now(), now_unix);
    let cursor = match (more, page.last()) {
        (true, Some((last, _))) => encode_cursor(generation, last),
        _ => String::new(),
    };
    let items: Vec<Value> = page
        .iter()
        .map(|(name, rec)| {
            let mut item = json!({ "name": name });
            if let Some(e) = rec.expiration {
                item["expiration"] = json!(e);
            }
            if let Some(m) = &rec.metadata {
                item["metadata"] = m.clone();
            }
            item
        })
        .collect();
    let n = items.len();
    let resp = ok_with_info(Value::Array(items), json!({"count": n, "cursor": cursor}));
    Ok(with_items(resp, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        for key in ["", "a", "v1/token/ab", "ü:x", "%"] {
            assert_eq!(decode_cursor(&encode_cursor(7, key)).unwrap(), key);
        }
        assert!(decode_cursor("!!").is_err());
    }
}
