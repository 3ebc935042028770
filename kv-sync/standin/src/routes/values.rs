//! Single keys: `GET/PUT/DELETE …/values/{key}` and `GET …/metadata/{key}`. A value PUT is
//! raw bytes, or `multipart/form-data` with `value` and `metadata` fields.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::{
    RawQuery, expiration, namespace, path_key, query, query_u64, read_body, validate_metadata_len,
    validate_value, with_items,
};
use crate::app::{App, ReceivedAt};
use crate::error::{ApiError, ok};
use crate::store::Record;

/// Room for multipart framing around the value and metadata.
const MULTIPART_SLACK: usize = 64 * 1024;

pub(crate) async fn get(State(app): State<Arc<App>>, uri: Uri) -> Result<Response, ApiError> {
    let ns = namespace(&app, &uri, "get")?;
    let key = path_key(&uri, &app.cfg.limits)?;
    let inner = app.lock();
    let now_unix = inner.now_unix();
    let rec = inner
        .namespaces
        .get(&ns)
        .and_then(|n| n.get(&key, Instant::now(), now_unix))
        .ok_or(ApiError::KeyNotFound { op: "get" })?;
    let mut resp = (StatusCode::OK, rec.value.clone()).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(e) = rec.expiration {
        headers.insert("expiration", HeaderValue::from(e));
    }
    Ok(with_items(resp, 1))
}

pub(crate) async fn metadata(State(app): State<Arc<App>>, uri: Uri) -> Result<Response, ApiError> {
    let ns = namespace(&app, &uri, "metadata")?;
    let key = path_key(&uri, &app.cfg.limits)?;
    let inner = app.lock();
    let now_unix = inner.now_unix();
    let rec = inner
        .namespaces
        .get(&ns)
        .and_then(|n| n.get(&key, Instant::now(), now_unix))
        .ok_or(ApiError::KeyNotFound { op: "metadata" })?;
    Ok(with_items(
        ok(rec.metadata.clone().unwrap_or(Value::Null)),
        1,
    ))
}

pub(crate) async fn put(
    State(app): State<Arc<App>>,
    Extension(ReceivedAt(at)): Extension<ReceivedAt>,
    uri: Uri,
    q: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let ns_id = namespace(&app, &uri, "put")?;
    let limits = app.cfg.limits;
    let key = path_key(&uri, &limits)?;
    let q = query(q)?;
    let at_unix = query_u64(&q, "expiration")?;
    let ttl = query_u64(&q, "expiration_ttl")?;
    let raw = read_body(
        body,
        limits.max_value_bytes + limits.max_metadata_bytes + MULTIPART_SLACK,
    )
    .await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (value, metadata) = if content_type.starts_with("multipart/form-data") {
        parse_multipart(content_type, raw).await?
    } else {
        (raw.to_vec(), None)
    };
    validate_value(value.len(), &limits)?;
    if let Some((_, text_len)) = &metadata {
        validate_metadata_len(*text_len, &limits)?;
    }

    let mut inner = app.lock();
    let expiration = expiration(inner.now_unix(), at_unix, ttl, limits.min_expiration_secs)?;
    let now = Instant::now();
    let visible_at = now + inner.visibility_delay;
    inner.record_writes(&ns_id, std::iter::once(key.as_str()), at);
    let ns = inner
        .namespaces
        .get_mut(&ns_id)
        .ok_or(ApiError::NamespaceNotFound { op: "put" })?;
    let record = Record {
        value,
        metadata: metadata.map(|(m, _)| m),
        expiration,
    };
    ns.put(&key, record, now, visible_at);
    Ok(with_items(ok(json!({})), 1))
}

/// The `value` field (text or file part) and the `metadata` field (JSON text, with its length).
async fn parse_multipart(
    content_type: &str,
    body: Bytes,
) -> Result<(Vec<u8>, Option<(Value, usize)>), ApiError> {
    let bad = |e: multer::Error| ApiError::invalid(format!("Invalid multipart body: {e}"));
    let boundary = multer::parse_boundary(content_type).map_err(bad)?;
    let stream = futures::stream::once(async move { Ok::<Bytes, Infallible>(body) });
    let mut form = multer::Multipart::new(stream, boundary);
    let mut value = None;
    let mut metadata = None;
    while let Some(field) = form.next_field().await.map_err(bad)? {
        match field.name() {
            Some("value") => value = Some(field.bytes().await.map_err(bad)?.to_vec()),
            Some("metadata") => {
                let text = field.text().await.map_err(bad)?;
                let parsed: Value = serde_json::from_str(&text)
                    .map_err(|_| ApiError::invalid("Invalid metadata JSON"))?;
                metadata = Some((parsed, text.len()));
            }
            _ => {}
        }
    }
    let value = value.ok_or_else(|| ApiError::invalid("Missing value field"))?;
    Ok((value, metadata))
}

pub(crate) async fn delete(
    State(app): State<Arc<App>>,
    Extension(ReceivedAt(at)): Extension<ReceivedAt>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let ns_id = namespace(&app, &uri, "delete")?;
    let key = path_key(&uri, &app.cfg.limits)?;
    let mut inner = app.lock();
    let now = Instant::now();
    let visible_at = now + inner.visibility_delay;
    inner.record_writes(&ns_id, std::iter::once(key.as_str()), at);
    inner
        .namespaces
        .get_mut(&ns_id)
        .ok_or(ApiError::NamespaceNotFound { op: "delete" })?
        .delete(&key, now, visible_at);
    Ok(with_items(ok(json!({})), 1))
}
