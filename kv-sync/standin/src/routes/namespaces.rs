//! `GET/POST …/namespaces`, `GET/PUT/DELETE …/namespaces/{ns}`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use rand::Rng as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{RawQuery, account, namespace, query, read_body, with_items};
use crate::app::App;
use crate::error::{ApiError, ok, ok_with_info};
use crate::store::Namespace;

const MAX_TITLE_BYTES: usize = 512;
const BODY_LIMIT: usize = 64 * 1024;

fn view(ns: &Namespace) -> Value {
    json!({"id": ns.id, "title": ns.title, "supports_url_encoding": true})
}

fn number(
    q: &std::collections::HashMap<String, String>,
    name: &str,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::invalid(format!("Invalid {name} of {v}."))),
    }
}

pub(crate) async fn list(
    State(app): State<Arc<App>>,
    uri: Uri,
    q: RawQuery,
) -> Result<Response, ApiError> {
    account(&app, &uri)?;
    let q = query(q)?;
    let page = number(&q, "page", 1, usize::MAX)?;
    let per_page = number(&q, "per_page", 20, 1000)?;
    let by_title = match q.get("order").map(String::as_str) {
        None | Some("id") => false,
        Some("title") => true,
        Some(o) => return Err(ApiError::invalid(format!("Invalid order of {o}."))),
    };
    let descending = match q.get("direction").map(String::as_str) {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(d) => return Err(ApiError::invalid(format!("Invalid direction of {d}."))),
    };
    let inner = app.lock();
    let mut all: Vec<&Namespace> = inner.namespaces.values().collect();
    if by_title {
        all.sort_by(|a, b| a.title.cmp(&b.title));
    }
    if descending {
        all.reverse();
    }
    let total = all.len();
    let items: Vec<Value> = all
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(view)
        .collect();
    let n = items.len();
    let info = json!({"count": n, "page": page, "per_page": per_page, "total_count": total});
    Ok(with_items(ok_with_info(Value::Array(items), info), n))
}

#[derive(Deserialize)]
struct TitleBody {
    title: String,
    #[serde(default)]
    jurisdiction: Option<String>,
}

async fn title_body(body: Body) -> Result<TitleBody, ApiError> {
    let raw = read_body(body, BODY_LIMIT).await?;
    let parsed: TitleBody = serde_json::from_slice(&raw)
        .map_err(|e| ApiError::invalid(format!("Invalid request body: {e}")))?;
    if parsed.title.trim().is_empty() || parsed.title.len() > MAX_TITLE_BYTES {
        return Err(ApiError::invalid(format!(
            "A namespace title must be 1 to {MAX_TITLE_BYTES} bytes."
        )));
    }
    if let Some(j) = &parsed.jurisdiction
        && !matches!(j.as_str(), "eu" | "us" | "fedramp")
    {
        return Err(ApiError::invalid(format!("Invalid jurisdiction of {j}.")));
    }
    Ok(parsed)
}

pub(crate) async fn create(
    State(app): State<Arc<App>>,
    uri: Uri,
    body: Body,
) -> Result<Response, ApiError> {
    account(&app, &uri)?;
    let req = title_body(body).await?;
    let mut inner = app.lock();
    if inner.namespaces.values().any(|n| n.title == req.title) {
        return Err(ApiError::DuplicateTitle {
            op: "create namespace",
        });
    }
    let id: String = {
        let mut rng = rand::rng();
        (0..16)
            .map(|_| format!("{:02x}", rng.random::<u8>()))
            .collect()
    };
    let ns = Namespace::new(id.clone(), req.title);
    let result = view(&ns);
    inner.namespaces.insert(id, ns);
    Ok(with_items(ok(result), 1))
}

pub(crate) async fn get(State(app): State<Arc<App>>, uri: Uri) -> Result<Response, ApiError> {
    let id = namespace(&app, &uri, "get namespace")?;
    let inner = app.lock();
    let ns = inner
        .namespaces
        .get(&id)
        .ok_or(ApiError::NamespaceNotFound {
            op: "get namespace",
        })?;
    Ok(with_items(ok(view(ns)), 1))
}

pub(crate) async fn rename(
    State(app): State<Arc<App>>,
    uri: Uri,
    body: Body,
) -> Result<Response, ApiError> {
    let id = namespace(&app, &uri, "rename namespace")?;
    let req = title_body(body).await?;
    let mut inner = app.lock();
    if inner
        .namespaces
        .values()
        .any(|n| n.title == req.title && n.id != id)
    {
        return Err(ApiError::DuplicateTitle {
            op: "rename namespace",
        });
    }
    let ns = inner
        .namespaces
        .get_mut(&id)
        .ok_or(ApiError::NamespaceNotFound {
            op: "rename namespace",
        })?;
    ns.title = req.title;
    Ok(with_items(ok(view(ns)), 1))
}

pub(crate) async fn delete(State(app): State<Arc<App>>, uri: Uri) -> Result<Response, ApiError> {
    let id = namespace(&app, &uri, "delete namespace")?;
    app.lock().namespaces.remove(&id);
    Ok(with_items(ok(Value::Null), 1))
}
