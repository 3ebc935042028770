//! `PUT …/bulk`, `POST …/bulk/delete` (and the older `DELETE …/bulk`), `POST …/bulk/get`.
//! A write or delete is validated whole (one bad item fails the request with 400) before
//! anything is stored; keys a test marked with `fail_keys` are reported in
//! `unsuccessful_keys` (once, or as many times as asked) and left untouched.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::Uri;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    expiration, namespace, read_body, validate_key, validate_metadata_len, validate_value,
    with_items,
};
use crate::app::{App, Inner, ReceivedAt};
use crate::error::{ApiError, ok};
use crate::store::Record;

/// Body limit for bulk get (100 keys of 512 bytes fit with room to spare).
const BULK_GET_BODY: usize = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteItem {
    key: String,
    value: String,
    #[serde(default)]
    base64: bool,
    #[serde(default)]
    expiration: Option<u64>,
    #[serde(default)]
    expiration_ttl: Option<u64>,
    #[serde(default)]
    metadata: Option<Value>,
}

fn parse<T: for<'de> Deserialize<'de>>(raw: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(raw).map_err(|e| ApiError::invalid(format!("Invalid request body: {e}")))
}

fn check_count(n: usize, max: usize, what: &str) -> Result<(), ApiError> {
    if n > max {
        return Err(ApiError::invalid(format!(
            "You can {what} a maximum of {max} keys per request; this request has {n}."
        )));
    }
    Ok(())
}

fn bulk_result(stored: usize, unsuccessful: Vec<String>) -> Value {
    json!({"successful_key_count": stored, "unsuccessful_keys": unsuccessful})
}

pub(crate) async fn write(
    State(app): State<Arc<App>>,
    Extension(ReceivedAt(at)): Extension<ReceivedAt>,
    uri: Uri,
    body: Body,
) -> Result<Response, ApiError> {
    let ns_id = namespace(&app, &uri, "bulk write")?;
    let limits = app.cfg.limits;
    let raw = read_body(body, limits.max_bulk_body_bytes).await?;
    let items: Vec<WriteItem> = parse(&raw)?;
    check_count(items.len(), limits.max_bulk_items, "write")?;
    let now_unix = app.lock().now_unix();
    let mut records = Vec::with_capacity(items.len());
    for item in items {
        validate_key(&item.key, &limits)?;
        let value = if item.base64 {
            STANDARD
                .decode(item.value.as_bytes())
                .map_err(|_| ApiError::invalid("A value marked base64 is not valid base64."))?
        } else {
            item.value.into_bytes()
        };
        validate_value(value.len(), &limits)?;
        if let Some(m) = &item.metadata {
            validate_metadata_len(m.to_string().len(), &limits)?;
        }
        let expiration = expiration(
            now_unix,
            item.expiration,
            item.expiration_ttl,
            limits.min_expiration_secs,
        )?;
        records.push((
            item.key,
            Record {
                value,
                metadata: item.metadata,
                expiration,
            },
        ));
    }
    let n = records.len();

    let mut guard = app.lock();
    let inner: &mut Inner = &mut guard;
    inner.record_writes(&ns_id, records.iter().map(|(k, _)| k.as_str()), at);
    let now = Instant::now();
    let visible_at = now + inner.visibility_delay;
    let ns = inner
        .namespaces
        .get_mut(&ns_id)
        .ok_or(ApiError::NamespaceNotFound { op: "bulk write" })?;
    let mut unsuccessful = Vec::new();
    let mut stored = 0;
    for (key, record) in records {
        if Inner::take_failure(&mut inner.fail_keys, &key) {
            unsuccessful.push(key);
        } else {
            ns.put(&key, record, now, visible_at);
            stored += 1;
        }
    }
    Ok(with_items(ok(bulk_result(stored, unsuccessful)), n))
}

pub(crate) async fn delete(
    State(app): State<Arc<App>>,
    Extension(ReceivedAt(at)): Extension<ReceivedAt>,
    uri: Uri,
    body: Body,
) -> Result<Response, ApiError> {
    let ns_id = namespace(&app, &uri, "bulk delete")?;
    let limits = app.cfg.limits;
    let raw = read_body(body, limits.max_bulk_body_bytes).await?;
    let keys: Vec<String> = parse(&raw)?;
    check_count(keys.len(), limits.max_bulk_items, "delete")?;
    for k in &keys {
        validate_key(k, &limits)?;
    }
    let n = keys.len();

    let mut guard = app.lock();
    let inner: &mut Inner = &mut guard;
    inner.record_writes(&ns_id, keys.iter().map(String::as_str), at);
    let now = Instant::now();
    let visible_at = now + inner.visibility_delay;
    let ns = inner
        .namespaces
        .get_mut(&ns_id)
        .ok_or(ApiError::NamespaceNotFound { op: "bulk delete" })?;
    let mut unsuccessful = Vec::new();
    let mut deleted = 0;
    for key in keys {
        if Inner::take_failure(&mut inner.fail_keys, &key) {
            unsuccessful.push(key);
        } else {
            ns.delete(&key, now, visible_at);
            deleted += 1;
        }
    }
    Ok(with_items(ok(bulk_result(deleted, unsuccessful)), n))
}

#[derive(Deserialize)]
struct GetBody {
    keys: Vec<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(rename = "withMetadata", default)]
    with_metadata: bool,
}

pub(crate) async fn get(
    State(app): State<Arc<App>>,
    uri: Uri,
    body: Body,
) -> Result<Response, ApiError> {
    let ns_id = namespace(&app, &uri, "bulk get")?;
    let limits = app.cfg.limits;
    let raw = read_body(body, BULK_GET_BODY).await?;
    let req: GetBody = parse(&raw)?;
    if req.keys.len() > limits.max_bulk_get_keys {
        return Err(ApiError::invalid(format!(
            "You can request a maximum of {} keys",
            limits.max_bulk_get_keys
        )));
    }
    let as_json = match req.kind.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "\"{other}\" is not a valid type. Use \"json\" or \"text\""
            )));
        }
    };
    for k in &req.keys {
        validate_key(k, &limits)?;
    }
    let non_text =
        || ApiError::invalid("At least one of the requested keys corresponds to a non-text value");
    let inner = app.lock();
    let now_unix = inner.now_unix();
    let ns = inner
        .namespaces
        .get(&ns_id)
        .ok_or(ApiError::NamespaceNotFound { op: "bulk get" })?;
    let mut values = Map::new();
    for key in &req.keys {
        let Some(rec) = ns.get(key, Instant::now(), now_unix) else {
            values.insert(key.clone(), Value::Null);
            continue;
        };
        let text = std::str::from_utf8(&rec.value).map_err(|_| non_text())?;
        let value = if as_json {
            serde_json::from_str(text).map_err(|_| non_text())?
        } else {
            Value::String(text.to_owned())
        };
        let entry = if req.with_metadata {
            let mut e =
                json!({"value": value, "metadata": rec.metadata.clone().unwrap_or(Value::Null)});
            if let Some(exp) = rec.expiration {
                e["expiration"] = json!(exp);
            }
            e
        } else {
            value
        };
        values.insert(key.clone(), entry);
    }
    let n = req.keys.len();
    Ok(with_items(ok(json!({ "values": values })), n))
}
